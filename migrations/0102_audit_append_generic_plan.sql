-- audit_append_batch's statements take arrays whose length changes with every batch. PL/pgSQL's
-- plan cache compares the generic plan (which guesses 100 elements per array) with custom plans
-- (which see the real, usually smaller, length) and keeps choosing custom plans: every call
-- re-planned its statements, about 30% of the server's time per batch under load (perf). The
-- plans do not depend on the array contents, so the generic plan is always the right one.
ALTER FUNCTION audit_append_batch(uuid[], bigint[], bytea[], bigint[], bytea[], timestamptz[],
    uuid[], bigint[], timestamptz[], uuid[], timestamptz[], bytea[], bytea[], text[])
    SET plan_cache_mode = force_generic_plan;
