-- Tenant LoRA adapters. An adapter is a tenant's name; its versions are immutable and
-- content-addressed (SHA-256 over the PEFT config and weights, see enclave_store::AdapterBlobs),
-- with the files under the data directory; aliases (`prod`, `canary`, ...) are movable pointers
-- to versions. A version an alias points to cannot be deleted (FK RESTRICT), nor can an adapter
-- that still has aliases.

CREATE TABLE adapters (
    tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name        text NOT NULL CHECK (name ~ '^[a-z0-9][a-z0-9._-]{0,63}$' AND name <> 'base'),
    -- The next version number; kept here so that deleting the newest version never lets its
    -- number be given to different content.
    next_number integer NOT NULL DEFAULT 1 CHECK (next_number > 0),
    created_by  uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT adapters_pkey PRIMARY KEY (tenant_id, name)
);

CREATE TABLE adapter_versions (
    tenant_id          uuid NOT NULL,
    adapter_name       text NOT NULL,
    digest             text NOT NULL CHECK (digest ~ '^[0-9a-f]{64}$'),
    -- 1, 2, 3 ... per adapter in upload order (`name@v2`); never reused.
    number             integer NOT NULL CHECK (number > 0),
    size_bytes         bigint NOT NULL CHECK (size_bytes > 0),
    -- The largest rank over all modules (rank_pattern may vary it per module).
    rank               integer NOT NULL CHECK (rank > 0),
    targets            text[] NOT NULL,
    -- The served base model the version was validated against.
    base_model         text NOT NULL,
    base_architecture  text NOT NULL,
    -- `base_model_name_or_path` from adapter_config.json, when present.
    declared_base      text,
    warnings           text[] NOT NULL DEFAULT '{}',
    created_by         uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at         timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT adapter_versions_pkey PRIMARY KEY (tenant_id, adapter_name, digest),
    CONSTRAINT adapter_versions_number_unique UNIQUE (tenant_id, adapter_name, number),
    CONSTRAINT adapter_versions_adapter_fkey FOREIGN KEY (tenant_id, adapter_name)
        REFERENCES adapters (tenant_id, name) ON DELETE RESTRICT
);

CREATE TABLE adapter_aliases (
    tenant_id     uuid NOT NULL,
    adapter_name  text NOT NULL,
    alias         text NOT NULL CHECK (alias ~ '^[a-z][a-z0-9_-]{0,31}$'),
    digest        text NOT NULL,
    updated_by    uuid REFERENCES users (id) ON DELETE SET NULL,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT adapter_aliases_pkey PRIMARY KEY (tenant_id, adapter_name, alias),
    CONSTRAINT adapter_aliases_version_fkey FOREIGN KEY (tenant_id, adapter_name, digest)
        REFERENCES adapter_versions (tenant_id, adapter_name, digest) ON DELETE RESTRICT
);
CREATE INDEX adapter_aliases_version_idx ON adapter_aliases (tenant_id, adapter_name, digest);

ALTER TABLE adapters ENABLE ROW LEVEL SECURITY;
ALTER TABLE adapters FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON adapters
    USING (enclave_tenant_visible(tenant_id)) WITH CHECK (enclave_tenant_visible(tenant_id));
ALTER TABLE adapter_versions ENABLE ROW LEVEL SECURITY;
ALTER TABLE adapter_versions FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON adapter_versions
    USING (enclave_tenant_visible(tenant_id)) WITH CHECK (enclave_tenant_visible(tenant_id));
ALTER TABLE adapter_aliases ENABLE ROW LEVEL SECURITY;
ALTER TABLE adapter_aliases FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON adapter_aliases
    USING (enclave_tenant_visible(tenant_id)) WITH CHECK (enclave_tenant_visible(tenant_id));

-- Versions are immutable: the app may insert and delete them, never update.
GRANT SELECT, INSERT, UPDATE, DELETE ON adapters, adapter_aliases TO enclave_app;
GRANT SELECT, INSERT, DELETE ON adapter_versions TO enclave_app;
