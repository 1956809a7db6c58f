-- Per-tenant audit settings: how a tenant's records are stored (raw, or with PII masked before
-- hashing) and how long they are kept at least (`enclave audit prune --retention`).
--
-- One row per chain: a tenant's id, or the nil UUID for the platform chain (platform-level
-- events), which is why `tenant_id` has no foreign key to `tenants`. No row = the defaults:
-- raw records, kept forever. Tenant-scoped with forced row-level security like every tenant
-- table; `enclave audit prune` reads every row as the owner through `enclave.rls_bypass`.

CREATE TABLE audit_settings (
    tenant_id       uuid PRIMARY KEY,
    redaction       text NOT NULL DEFAULT 'raw' CHECK (redaction IN ('raw', 'pii_masked')),
    -- Minimum number of days a record is kept; NULL = forever. 36500 days is a century.
    retention_days  integer CHECK (retention_days BETWEEN 1 AND 36500),
    updated_by      uuid,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE audit_settings ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_settings FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON audit_settings
    USING (enclave_tenant_visible(tenant_id)) WITH CHECK (enclave_tenant_visible(tenant_id));

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'enclave_app') THEN
        GRANT SELECT, INSERT, UPDATE ON audit_settings TO enclave_app;
    END IF;
END
$$;
