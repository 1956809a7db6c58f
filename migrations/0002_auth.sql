-- Sessions (refresh tokens), JWT signing keys, failed-login throttling. All platform-level
-- (looked up before any tenant is known), so no RLS; none of them holds a usable secret:
-- tokens are stored as SHA-256 hashes, signing keys sealed (see `seal`).

CREATE TABLE refresh_tokens (
    id           uuid PRIMARY KEY,
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- The tenant the session acts in; NULL for a platform admin's platform session.
    tenant_id    uuid REFERENCES tenants (id) ON DELETE CASCADE,
    -- All tokens descended from one login share a family; reuse of a rotated token revokes it.
    family_id    uuid NOT NULL,
    token_hash   bytea NOT NULL CONSTRAINT refresh_tokens_hash_unique UNIQUE
                 CHECK (length(token_hash) = 32),
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    -- Set when the token is exchanged for a new one (then `replaced_by` names the successor).
    used_at      timestamptz,
    replaced_by  uuid REFERENCES refresh_tokens (id) ON DELETE SET NULL,
    revoked_at   timestamptz
);
CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user_idx ON refresh_tokens (user_id);

CREATE TABLE signing_keys (
    kid          text PRIMARY KEY CHECK (length(kid) BETWEEN 1 AND 64),
    algorithm    text NOT NULL CHECK (algorithm = 'EdDSA'),
    public_key   bytea NOT NULL CHECK (length(public_key) = 32),
    -- The Ed25519 seed. `seal` says how it is protected at rest: 'plain' (relying on database
    -- access control), or an AEAD under a key-encryption key that lives outside the database.
    private_key  bytea NOT NULL,
    seal         text NOT NULL CHECK (seal IN ('plain', 'xchacha20poly1305')),
    -- active: signs new tokens (exactly one); verify_only: rotated out, still verifies tokens
    -- issued before the rotation; retired: verifies nothing (private key erased).
    status       text NOT NULL CHECK (status IN ('active', 'verify_only', 'retired')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    rotated_at   timestamptz,
    retired_at   timestamptz
);
CREATE UNIQUE INDEX signing_keys_one_active ON signing_keys ((true)) WHERE status = 'active';

CREATE TABLE login_throttle (
    email            text NOT NULL,
    client_ip        text NOT NULL,
    failures         integer NOT NULL CHECK (failures >= 0),
    last_failure_at  timestamptz NOT NULL,
    locked_until     timestamptz,
    CONSTRAINT login_throttle_pkey PRIMARY KEY (email, client_ip)
);

GRANT SELECT, INSERT, UPDATE, DELETE ON refresh_tokens, signing_keys, login_throttle TO enclave_app;
