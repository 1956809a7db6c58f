-- Group commit in one round trip: the writer chains a batch in memory from the chain heads it
-- last saw, and this function stores it atomically only if those heads are still current
-- (another process may append to the same chains). Called as a single statement, so the
-- statement's implicit transaction is the batch's transaction: one round trip and one WAL
-- flush per batch instead of seven round trips.
--
-- Returns the number of tenants whose head moved (0 = stored). On a non-zero answer nothing was
-- written; the caller re-reads the heads and chains again.
CREATE FUNCTION audit_append_batch(
    head_tenants uuid[], expected_seqs bigint[], expected_hashes bytea[],
    new_seqs bigint[], new_hashes bytea[], new_lasts timestamptz[],
    ev_tenants uuid[], ev_seqs bigint[], ev_inserted timestamptz[], ev_record_ids uuid[],
    ev_times timestamptz[], ev_prevs bytea[], ev_hashes bytea[], ev_records text[])
    RETURNS integer
    LANGUAGE plpgsql
    AS $$
DECLARE
    stale integer;
BEGIN
    PERFORM set_config('enclave.rls_bypass', 'on', true);
    -- Lock in tenant order, as every writer does, so concurrent batches cannot deadlock.
    PERFORM 1 FROM audit_chain_heads WHERE tenant_id = ANY(head_tenants)
        ORDER BY tenant_id FOR UPDATE;
    SELECT count(*) INTO stale
    FROM unnest(head_tenants, expected_seqs, expected_hashes) AS e(t, s, h)
    LEFT JOIN audit_chain_heads c ON c.tenant_id = e.t
    WHERE c.tenant_id IS NULL OR c.seq <> e.s OR c.hash <> e.h;
    IF stale > 0 THEN
        RETURN stale;
    END IF;
    INSERT INTO audit_events (tenant_id, seq, inserted_at, record_id, event_time, prev_hash, hash, record)
    SELECT t, s, i, r, e, p, h, j::jsonb
    FROM unnest(ev_tenants, ev_seqs, ev_inserted, ev_record_ids, ev_times, ev_prevs, ev_hashes,
                ev_records) AS u(t, s, i, r, e, p, h, j);
    UPDATE audit_chain_heads c
    SET seq = u.s, hash = u.h, last_inserted_at = u.l, updated_at = now()
    FROM unnest(head_tenants, new_seqs, new_hashes, new_lasts) AS u(t, s, h, l)
    WHERE c.tenant_id = u.t;
    RETURN 0;
END
$$;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'enclave_app') THEN
        GRANT EXECUTE ON FUNCTION audit_append_batch(uuid[], bigint[], bytea[], bigint[], bytea[],
            timestamptz[], uuid[], bigint[], timestamptz[], uuid[], timestamptz[], bytea[], bytea[],
            text[]) TO enclave_app;
    END IF;
END
$$;
