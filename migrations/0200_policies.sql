-- Tenant policy documents (sensitive words, patterns, PII, detectors), layered by the gateway on
-- top of the platform baseline shipped in policies/. Every change is a new immutable version;
-- exactly one version per tenant is active (or none: the baseline alone applies). Rollback is
-- activating an older version.

CREATE TABLE policy_versions (
    tenant_id     uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    version       integer NOT NULL CHECK (version > 0),
    -- The document exactly as submitted, in the format it was submitted in.
    format        text NOT NULL CHECK (format IN ('toml', 'json')),
    source        text NOT NULL CHECK (length(source) <= 16777216),
    name          text,
    comment       text CHECK (comment IS NULL OR length(comment) <= 1000),
    created_by    uuid,
    created_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT policy_versions_pkey PRIMARY KEY (tenant_id, version)
);
ALTER TABLE policy_versions ENABLE ROW LEVEL SECURITY;
ALTER TABLE policy_versions FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON policy_versions
    USING (enclave_tenant_visible(tenant_id)) WITH CHECK (enclave_tenant_visible(tenant_id));

-- Versions are immutable: the application may only read and append.
CREATE FUNCTION policy_versions_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'policy versions are immutable';
END $$;
CREATE TRIGGER policy_versions_no_update BEFORE UPDATE ON policy_versions
    FOR EACH ROW EXECUTE FUNCTION policy_versions_immutable();

CREATE TABLE policy_active (
    tenant_id     uuid PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    version       integer NOT NULL,
    activated_by  uuid,
    activated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT policy_active_version_fkey FOREIGN KEY (tenant_id, version)
        REFERENCES policy_versions (tenant_id, version)
);
ALTER TABLE policy_active ENABLE ROW LEVEL SECURITY;
ALTER TABLE policy_active FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON policy_active
    USING (enclave_tenant_visible(tenant_id)) WITH CHECK (enclave_tenant_visible(tenant_id));

GRANT SELECT, INSERT ON policy_versions TO enclave_app;
GRANT SELECT, INSERT, UPDATE ON policy_active TO enclave_app;
