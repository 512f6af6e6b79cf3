-- One model registry for every kind of per-tenant model: the failure-risk registry
-- (0044) becomes `ml_models` with a `kind`, so emissions models are registered, promoted
-- and rolled back by the same rule and code. Versions still count per tenant (across
-- kinds), so a version names one model and the failure-risk predictions' foreign key
-- stands; at most one model of each kind is active per tenant. Training jobs (0047) may
-- train either kind.

ALTER TABLE failure_risk_models RENAME TO ml_models;
ALTER TABLE ml_models ADD COLUMN kind text NOT NULL DEFAULT 'failure_risk'
    CHECK (kind IN ('failure_risk', 'emissions'));
DROP INDEX failure_risk_models_one_active;
CREATE UNIQUE INDEX ml_models_one_active ON ml_models (tenant_id, kind)
    WHERE status = 'active';

ALTER TABLE training_jobs DROP CONSTRAINT training_jobs_model_check;
ALTER TABLE training_jobs ADD CONSTRAINT training_jobs_model_check
    CHECK (model IN ('failure_risk', 'emissions'));
