-- Production-gap models join the registry (0048): their parameters are chosen per tenant,
-- registered, promoted and rolled back like the other kinds, and trained by the same
-- job queue.

ALTER TABLE ml_models DROP CONSTRAINT ml_models_kind_check;
ALTER TABLE ml_models ADD CONSTRAINT ml_models_kind_check
    CHECK (kind IN ('failure_risk', 'emissions', 'production_gap'));

ALTER TABLE training_jobs DROP CONSTRAINT training_jobs_model_check;
ALTER TABLE training_jobs ADD CONSTRAINT training_jobs_model_check
    CHECK (model IN ('failure_risk', 'emissions', 'production_gap'));
