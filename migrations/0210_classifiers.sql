-- Tenant-trained classifiers (character n-gram, one-vs-rest logistic regression) that a policy
-- document's `classifier` detector references as `<name>` (latest) or `<name>@v<n>`. Every
-- training run is a new immutable version of the named classifier, kept with the held-out
-- metrics it was trained with, so what a policy enforces can always be traced back.

CREATE TABLE classifier_versions (
    tenant_id         uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name              text NOT NULL CHECK (name ~ '^[a-z0-9][a-z0-9_-]{0,63}$'),
    version           integer NOT NULL CHECK (version > 0),
    -- Labels the classifier reports, sorted; each is a policy category name.
    labels            text[] NOT NULL CHECK (cardinality(labels) >= 2),
    -- The trained model as the policy crate serialises it (JSON text, kept byte for byte).
    model             text NOT NULL CHECK (length(model) <= 67108864),
    -- Decision threshold per label: {"<label>": 0.5, ...}.
    thresholds        jsonb NOT NULL,
    -- Held-out evaluation: per label precision/recall/F1, support and counts.
    metrics           jsonb NOT NULL,
    -- Training hyper-parameters (reproducibility).
    config            jsonb NOT NULL,
    train_examples    integer NOT NULL CHECK (train_examples >= 0),
    holdout_examples  integer NOT NULL CHECK (holdout_examples >= 0),
    -- SHA-256 (hex) of the canonical training set, to tell identical uploads apart.
    data_sha256       text NOT NULL CHECK (data_sha256 ~ '^[0-9a-f]{64}$'),
    comment           text CHECK (comment IS NULL OR length(comment) <= 1000),
    created_by        uuid,
    created_at        timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT classifier_versions_pkey PRIMARY KEY (tenant_id, name, version)
);
ALTER TABLE classifier_versions ENABLE ROW LEVEL SECURITY;
ALTER TABLE classifier_versions FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON classifier_versions
    USING (enclave_tenant_visible(tenant_id)) WITH CHECK (enclave_tenant_visible(tenant_id));

-- Versions are immutable: the application may only read and append.
CREATE FUNCTION classifier_versions_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'classifier versions are immutable';
END $$;
CREATE TRIGGER classifier_versions_no_update BEFORE UPDATE ON classifier_versions
    FOR EACH ROW EXECUTE FUNCTION classifier_versions_immutable();

GRANT SELECT, INSERT ON classifier_versions TO enclave_app;
