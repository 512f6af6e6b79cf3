-- Predictive maintenance (failure risk): the model registry and the prediction cache.
--
-- * `failure_risk_models`: every model trained for a tenant, by version (1, 2, …), with
--   what it was trained on (algorithm, features, training window, SHA-256 of the training
--   data, wells and rows) and its metrics on wells held out of training. At most one is
--   `active` (partial unique index): a new model becomes active only when it beats the
--   active one on the same held-out wells; otherwise it stays a `candidate`, with the
--   reason. The one it replaces is `retired`.
-- * `failure_risk_predictions`: the latest prediction per well, stamped with the model
--   version that made it; computed when a model is promoted, read by the API, never
--   recomputed per request.

CREATE TABLE failure_risk_models (
    tenant_id       bigint NOT NULL REFERENCES tenants (id),
    version         integer NOT NULL CHECK (version > 0),
    algorithm       text NOT NULL,
    features        text[] NOT NULL,
    window_start    date NOT NULL,
    window_end      date NOT NULL CHECK (window_end >= window_start),
    data_hash       text NOT NULL CHECK (data_hash ~ '^[0-9a-f]{64}$'),
    wells           integer NOT NULL CHECK (wells >= 0),
    training_rows   integer NOT NULL CHECK (training_rows >= 0),
    metrics         jsonb NOT NULL,
    model           jsonb NOT NULL,
    status          text NOT NULL CHECK (status IN ('active', 'candidate', 'retired')),
    reason          text NOT NULL DEFAULT '',
    trained_at      timestamptz NOT NULL DEFAULT now(),
    promoted_at     timestamptz,
    PRIMARY KEY (tenant_id, version)
);
CREATE UNIQUE INDEX failure_risk_models_one_active ON failure_risk_models (tenant_id)
    WHERE status = 'active';

CREATE TABLE failure_risk_predictions (
    tenant_id       bigint NOT NULL,
    well_id         bigint PRIMARY KEY,
    day             date NOT NULL,
    model_version   integer NOT NULL,
    lift            text NOT NULL CHECK (lift IN ('rod_pump', 'esp', 'plunger_lift')),
    p7              double precision NOT NULL CHECK (p7 BETWEEN 0 AND 1),
    p14             double precision NOT NULL CHECK (p14 BETWEEN 0 AND 1),
    p30             double precision NOT NULL CHECK (p30 BETWEEN 0 AND 1),
    factors         jsonb NOT NULL,
    computed_at     timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (tenant_id, well_id) REFERENCES wells (tenant_id, id),
    FOREIGN KEY (tenant_id, model_version) REFERENCES failure_risk_models (tenant_id, version)
);
CREATE INDEX failure_risk_predictions_rank ON failure_risk_predictions (tenant_id, p30 DESC);

ALTER TABLE failure_risk_models ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON failure_risk_models USING (tenant_id = wellpulse_current_tenant());
GRANT SELECT, INSERT, UPDATE ON failure_risk_models TO wellpulse_tenant;
ALTER TABLE failure_risk_predictions ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON failure_risk_predictions USING (tenant_id = wellpulse_current_tenant());
GRANT SELECT, INSERT, UPDATE, DELETE ON failure_risk_predictions TO wellpulse_tenant;
