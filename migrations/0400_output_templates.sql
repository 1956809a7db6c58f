-- Tenant output templates: a named minijinja template plus the JSON schema of the data it
-- renders. A request with `response_format: {"type": "template", ...}` is generated under the
-- schema (constrained decoding) and the JSON is rendered with the template. Every change is a
-- new immutable version numbered 1, 2, ... per (tenant, name); exactly one version per name is
-- active (the newest unless rolled back), like policy versions.
-- Also: a default `response_format` per API key and per adapter alias, used when a request
-- names none.

CREATE TABLE output_template_versions (
    tenant_id     uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name          text NOT NULL CHECK (name ~ '^[a-z0-9][a-z0-9_-]{0,63}$'),
    version       integer NOT NULL CHECK (version > 0),
    -- The JSON schema the generated data follows, as submitted (already compiled by the engine).
    schema        jsonb NOT NULL,
    -- The minijinja source, as submitted (already parsed).
    template      text NOT NULL CHECK (length(template) <= 65536),
    comment       text CHECK (comment IS NULL OR length(comment) <= 1000),
    created_by    uuid,
    created_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT output_template_versions_pkey PRIMARY KEY (tenant_id, name, version)
);
ALTER TABLE output_template_versions ENABLE ROW LEVEL SECURITY;
ALTER TABLE output_template_versions FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON output_template_versions
    USING (enclave_tenant_visible(tenant_id)) WITH CHECK (enclave_tenant_visible(tenant_id));

-- Versions are immutable: the application may only read and append.
CREATE FUNCTION output_template_versions_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'output template versions are immutable';
END $$;
CREATE TRIGGER output_template_versions_no_update BEFORE UPDATE ON output_template_versions
    FOR EACH ROW EXECUTE FUNCTION output_template_versions_immutable();

CREATE TABLE output_template_active (
    tenant_id     uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name          text NOT NULL,
    version       integer NOT NULL,
    activated_by  uuid,
    activated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT output_template_active_pkey PRIMARY KEY (tenant_id, name),
    CONSTRAINT output_template_active_version_fkey FOREIGN KEY (tenant_id, name, version)
        REFERENCES output_template_versions (tenant_id, name, version)
);
ALTER TABLE output_template_active ENABLE ROW LEVEL SECURITY;
ALTER TABLE output_template_active FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON output_template_active
    USING (enclave_tenant_visible(tenant_id)) WITH CHECK (enclave_tenant_visible(tenant_id));

GRANT SELECT, INSERT ON output_template_versions TO enclave_app;
GRANT SELECT, INSERT, UPDATE ON output_template_active TO enclave_app;

-- Defaults: the `response_format` object (as a request would send it) applied when a request
-- has none. NULL: free text. The tables keep their own RLS and grants (UPDATE already granted).
ALTER TABLE api_keys ADD COLUMN default_response_format jsonb;
ALTER TABLE adapter_aliases ADD COLUMN default_response_format jsonb;
