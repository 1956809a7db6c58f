-- Rate limits and token budgets are data (editable through the API), not configuration.
-- NULL limit = unlimited.

CREATE TABLE tenant_limits (
    tenant_id             uuid PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    requests_per_minute   integer CHECK (requests_per_minute > 0),
    tokens_per_minute     integer CHECK (tokens_per_minute > 0),
    -- Tokens (prompt + completion) per calendar month (UTC).
    monthly_token_budget  bigint CHECK (monthly_token_budget >= 0),
    updated_at            timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE tenant_limits ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenant_limits FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON tenant_limits
    USING (enclave_tenant_visible(tenant_id)) WITH CHECK (enclave_tenant_visible(tenant_id));

-- Fixed one-minute windows shared by every gateway. `subject` is the tenant id (tenant-wide
-- counter) or an API key id. UNLOGGED: counters are worthless after a crash and skipping WAL
-- halves the cost of the per-request upsert.
CREATE UNLOGGED TABLE rate_windows (
    tenant_id     uuid NOT NULL,
    subject       uuid NOT NULL,
    window_start  timestamptz NOT NULL,
    requests      integer NOT NULL DEFAULT 0,
    tokens        bigint NOT NULL DEFAULT 0,
    CONSTRAINT rate_windows_pkey PRIMARY KEY (tenant_id, subject, window_start)
);
ALTER TABLE rate_windows ENABLE ROW LEVEL SECURITY;
ALTER TABLE rate_windows FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON rate_windows
    USING (enclave_tenant_visible(tenant_id)) WITH CHECK (enclave_tenant_visible(tenant_id));

-- Durable usage per tenant and month: what the budget is checked against and billed from.
CREATE TABLE usage_counters (
    tenant_id     uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    period_start  date NOT NULL,
    requests      bigint NOT NULL DEFAULT 0,
    tokens        bigint NOT NULL DEFAULT 0,
    CONSTRAINT usage_counters_pkey PRIMARY KEY (tenant_id, period_start)
);
ALTER TABLE usage_counters ENABLE ROW LEVEL SECURITY;
ALTER TABLE usage_counters FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON usage_counters
    USING (enclave_tenant_visible(tenant_id)) WITH CHECK (enclave_tenant_visible(tenant_id));

GRANT SELECT, INSERT, UPDATE, DELETE ON tenant_limits, rate_windows, usage_counters TO enclave_app;
