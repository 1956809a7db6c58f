-- Audit trail: append-only, per-tenant hash chain, monthly partitions, signed checkpoints.
--
-- * `audit_events` is partitioned by `inserted_at` (when the writer stored the row, monotonic
--   per tenant under the chain-head lock), so dropping a month drops a prefix of every tenant's
--   chain; `audit_prune_anchors` keeps the last pruned (seq, hash) so verification can resume.
-- * The application role may INSERT and SELECT audit rows, never UPDATE or DELETE; triggers
--   refuse UPDATE, DELETE and TRUNCATE even for the owner. Retention drops whole partitions
--   through audit_prune_partitions(), which only the owner may run.
-- * The derived columns used by queries are GENERATED from the record, so they cannot drift
--   from what the hash covers (event_time is checked by verification instead: text to
--   timestamptz is not immutable).

CREATE TABLE audit_chain_heads (
    tenant_id         uuid PRIMARY KEY,
    seq               bigint NOT NULL CHECK (seq >= 0),
    hash              bytea NOT NULL CHECK (length(hash) = 32),
    last_inserted_at  timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE audit_chain_heads ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_chain_heads FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON audit_chain_heads
    USING (enclave_tenant_visible(tenant_id)) WITH CHECK (enclave_tenant_visible(tenant_id));

CREATE TABLE audit_events (
    tenant_id        uuid NOT NULL,
    seq              bigint NOT NULL CHECK (seq > 0),
    inserted_at      timestamptz NOT NULL,
    record_id        uuid NOT NULL,
    event_time       timestamptz NOT NULL,
    prev_hash        bytea NOT NULL CHECK (length(prev_hash) = 32),
    hash             bytea NOT NULL CHECK (length(hash) = 32),
    record           jsonb NOT NULL,
    actor_kind       text GENERATED ALWAYS AS (record -> 'actor' ->> 'kind') STORED,
    actor_id         text GENERATED ALWAYS AS (record -> 'actor' ->> 'id') STORED,
    action           text GENERATED ALWAYS AS (record ->> 'action') STORED,
    phase            text GENERATED ALWAYS AS (record ->> 'phase') STORED,
    model            text GENERATED ALWAYS AS (record ->> 'model') STORED,
    adapter_version  text GENERATED ALWAYS AS (record ->> 'adapter_version') STORED,
    policy_outcome   text GENERATED ALWAYS AS (record -> 'policy' ->> 'outcome') STORED,
    status_code      integer GENERATED ALWAYS AS ((record ->> 'status_code')::integer) STORED,
    request_id       text GENERATED ALWAYS AS (record ->> 'request_id') STORED,
    -- The partition key must be part of the key; (tenant_id, seq) uniqueness is kept by the
    -- chain-head lock and checked by verification.
    CONSTRAINT audit_events_pkey PRIMARY KEY (tenant_id, seq, inserted_at)
) PARTITION BY RANGE (inserted_at);
CREATE INDEX audit_events_record_id_idx ON audit_events (record_id);
CREATE INDEX audit_events_time_idx ON audit_events (tenant_id, event_time);
CREATE INDEX audit_events_request_idx ON audit_events (tenant_id, request_id);
ALTER TABLE audit_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_events FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON audit_events
    USING (enclave_tenant_visible(tenant_id)) WITH CHECK (enclave_tenant_visible(tenant_id));

-- Signed statements "tenant T's chain had head H at seq N" (Ed25519 over the message built by
-- enclave-audit's checkpoint module). A DBA who rewrites a whole chain cannot forge these.
CREATE TABLE audit_checkpoints (
    tenant_id   uuid NOT NULL,
    seq         bigint NOT NULL CHECK (seq >= 0),
    hash        bytea NOT NULL CHECK (length(hash) = 32),
    signed_at   timestamptz NOT NULL,
    key_id      text NOT NULL CHECK (length(key_id) BETWEEN 1 AND 64),
    public_key  bytea NOT NULL CHECK (length(public_key) = 32),
    signature   bytea NOT NULL CHECK (length(signature) = 64),
    CONSTRAINT audit_checkpoints_pkey PRIMARY KEY (tenant_id, seq, key_id)
);
ALTER TABLE audit_checkpoints ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_checkpoints FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON audit_checkpoints
    USING (enclave_tenant_visible(tenant_id)) WITH CHECK (enclave_tenant_visible(tenant_id));

-- Where each tenant's chain resumes after retention dropped its oldest partitions.
CREATE TABLE audit_prune_anchors (
    tenant_id     uuid PRIMARY KEY,
    through_seq   bigint NOT NULL CHECK (through_seq > 0),
    through_hash  bytea NOT NULL CHECK (length(through_hash) = 32),
    pruned_at     timestamptz NOT NULL DEFAULT now(),
    partition     text NOT NULL
);
ALTER TABLE audit_prune_anchors ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_prune_anchors FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON audit_prune_anchors
    USING (enclave_tenant_visible(tenant_id)) WITH CHECK (enclave_tenant_visible(tenant_id));

CREATE FUNCTION audit_refuse_change() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_checkpoints_append_only BEFORE UPDATE OR DELETE ON audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_checkpoints_no_truncate BEFORE TRUNCATE ON audit_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();

-- Creates the month partition holding `at` (UTC months) unless it exists. SECURITY DEFINER so
-- the writer (application role, which owns nothing) can create next month's partition; it
-- can do nothing else with it.
CREATE FUNCTION audit_ensure_partition(at timestamptz) RETURNS text
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp
    AS $$
DECLARE
    month_start timestamp := date_trunc('month', at AT TIME ZONE 'UTC');
    part text := 'audit_events_p' || to_char(month_start, 'YYYYMM');
BEGIN
    IF to_regclass(part) IS NULL THEN
        BEGIN
            EXECUTE format('CREATE TABLE %I PARTITION OF audit_events FOR VALUES FROM (%L) TO (%L)',
                           part, month_start AT TIME ZONE 'UTC',
                           (month_start + interval '1 month') AT TIME ZONE 'UTC');
        EXCEPTION WHEN duplicate_table OR unique_violation THEN
            NULL; -- another writer created it concurrently
        END;
    END IF;
    RETURN part;
END
$$;
REVOKE ALL ON FUNCTION audit_ensure_partition(timestamptz) FROM PUBLIC;

-- Retention: drops every month partition that ends at or before `cutoff`, first recording per
-- tenant the last (seq, hash) it held. Owner only; `enclave audit prune` writes its own audit
-- record before calling it.
CREATE FUNCTION audit_prune_partitions(cutoff timestamptz)
    RETURNS TABLE (partition_name text, row_count bigint)
    LANGUAGE plpgsql
    AS $$
DECLARE
    p record;
    upper_bound timestamptz;
BEGIN
    PERFORM set_config('enclave.rls_bypass', 'on', true);
    FOR p IN
        SELECT c.relname::text AS relname
        FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'audit_events'::regclass AND c.relname ~ '^audit_events_p[0-9]{6}$'
        ORDER BY c.relname
    LOOP
        upper_bound := (to_date(substr(p.relname, 15), 'YYYYMM') + interval '1 month')::timestamp
                       AT TIME ZONE 'UTC';
        CONTINUE WHEN upper_bound > cutoff;
        EXECUTE format(
            'INSERT INTO audit_prune_anchors AS a (tenant_id, through_seq, through_hash, partition)
             SELECT DISTINCT ON (tenant_id) tenant_id, seq, hash, %L FROM %I ORDER BY tenant_id, seq DESC
             ON CONFLICT (tenant_id) DO UPDATE
               SET through_seq = excluded.through_seq, through_hash = excluded.through_hash,
                   pruned_at = now(), partition = excluded.partition
               WHERE excluded.through_seq > a.through_seq', p.relname, p.relname);
        EXECUTE format('SELECT count(*) FROM %I', p.relname) INTO row_count;
        EXECUTE format('DROP TABLE %I', p.relname);
        partition_name := p.relname;
        RETURN NEXT;
    END LOOP;
END
$$;
REVOKE ALL ON FUNCTION audit_prune_partitions(timestamptz) FROM PUBLIC;

SELECT audit_ensure_partition(now());
SELECT audit_ensure_partition(now() + interval '1 month');

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'enclave_app') THEN
        GRANT SELECT, INSERT ON audit_events, audit_checkpoints TO enclave_app;
        GRANT SELECT ON audit_prune_anchors TO enclave_app;
        GRANT SELECT, INSERT, UPDATE ON audit_chain_heads TO enclave_app;
        GRANT EXECUTE ON FUNCTION audit_ensure_partition(timestamptz) TO enclave_app;
    END IF;
END
$$;
