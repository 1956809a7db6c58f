-- Core tenancy: tenants, users, memberships, API keys.
--
-- Conventions every later migration follows (audit, adapters, ...):
--  * Migrations run as the owner/migrator role. The application connects as `enclave_app`, which
--    owns nothing, has no BYPASSRLS, and gets explicit per-table grants (never default privileges,
--    so an append-only table can grant INSERT/SELECT only).
--  * Every tenant-scoped table has `tenant_id uuid NOT NULL`, ROW LEVEL SECURITY enabled AND forced,
--    and the policy `tenant_isolation` built from enclave_tenant_visible(tenant_id). The store sets
--    `enclave.tenant_id` with SET LOCAL semantics per transaction (Store::tenant_tx); cross-tenant
--    system work (API-key lookup by prefix, platform-admin listings) sets `enclave.rls_bypass`
--    (Store::system_tx). Without either setting a query sees no tenant rows at all.

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'enclave_app') THEN
        -- Operators with an external server give it LOGIN and a password, or grant it to the
        -- login role the gateway uses. The embedded cluster creates it with LOGIN beforehand.
        CREATE ROLE enclave_app NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
    END IF;
END
$$;

GRANT USAGE ON SCHEMA public TO enclave_app;

-- The tenant the current transaction acts for; NULL when unset. `nullif` because a custom
-- setting that was once SET LOCAL reads back as '' (not NULL) after its transaction ends.
CREATE FUNCTION enclave_current_tenant() RETURNS uuid
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT nullif(current_setting('enclave.tenant_id', true), '')::uuid $$;

CREATE FUNCTION enclave_rls_bypass() RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT coalesce(current_setting('enclave.rls_bypass', true), '') = 'on' $$;

CREATE FUNCTION enclave_tenant_visible(row_tenant uuid) RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT row_tenant = enclave_current_tenant() OR enclave_rls_bypass() $$;

CREATE TABLE tenants (
    id          uuid PRIMARY KEY,
    slug        text NOT NULL CONSTRAINT tenants_slug_unique UNIQUE
                CHECK (slug ~ '^[a-z][a-z0-9-]{2,39}$'),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    status      text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE tenants ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenants FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON tenants
    USING (enclave_tenant_visible(id)) WITH CHECK (enclave_tenant_visible(id));

-- Users are platform-wide (one person may belong to several tenants), so no RLS here; what a
-- user may touch inside a tenant is decided by `memberships`, which is tenant-scoped.
CREATE TABLE users (
    id                 uuid PRIMARY KEY,
    email              text NOT NULL CHECK (email = lower(email) AND length(email) <= 254),
    -- argon2id PHC string; NULL = no password login (e.g. external IdP only, or deleted).
    password_hash      text CHECK (password_hash IS NULL OR password_hash LIKE '$argon2id$%'),
    is_platform_admin  boolean NOT NULL DEFAULT false,
    disabled_at        timestamptz,
    -- Soft delete keeps the id resolvable for audit records; the email becomes free again.
    deleted_at         timestamptz,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email_unique ON users (email) WHERE deleted_at IS NULL;

CREATE TABLE memberships (
    tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role        text NOT NULL CHECK (role IN ('tenant_admin', 'developer', 'auditor')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT memberships_pkey PRIMARY KEY (tenant_id, user_id)
);
CREATE INDEX memberships_user_idx ON memberships (user_id);
ALTER TABLE memberships ENABLE ROW LEVEL SECURITY;
ALTER TABLE memberships FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON memberships
    USING (enclave_tenant_visible(tenant_id)) WITH CHECK (enclave_tenant_visible(tenant_id));

CREATE TABLE api_keys (
    id                   uuid PRIMARY KEY,
    tenant_id            uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name                 text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    -- The visible part of the key (`enc_<prefix>_...`), unique so a lookup finds one row.
    prefix               text NOT NULL CONSTRAINT api_keys_prefix_unique UNIQUE,
    -- SHA-256 of the secret part. Keys carry >= 256 random bits, so a fast hash is enough:
    -- brute force is hopeless without a slow KDF, and verification stays cheap per request.
    secret_hash          bytea NOT NULL CHECK (length(secret_hash) = 32),
    scopes               text[] NOT NULL,
    requests_per_minute  integer CHECK (requests_per_minute > 0),
    tokens_per_minute    integer CHECK (tokens_per_minute > 0),
    expires_at           timestamptz,
    revoked_at           timestamptz,
    last_used_at         timestamptz,
    created_by           uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX api_keys_tenant_idx ON api_keys (tenant_id, created_at);
ALTER TABLE api_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE api_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON api_keys
    USING (enclave_tenant_visible(tenant_id)) WITH CHECK (enclave_tenant_visible(tenant_id));

GRANT SELECT, INSERT, UPDATE, DELETE ON tenants, users, memberships, api_keys TO enclave_app;
