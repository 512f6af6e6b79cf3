-- Training jobs: a model trained per tenant on demand (the API) or on a schedule (the
-- server's `model_training_schedule` job), run by the server's `model_training` worker,
-- with their stage and progress visible through the API. At most one open (queued or
-- running) job per tenant and model. Their outcome is the registered model's version (or
-- the error); promotion stays the registry's rule (only a model beating the one in use on
-- held-out wells becomes active).

CREATE TABLE training_jobs (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id       bigint NOT NULL REFERENCES tenants (id),
    model           text NOT NULL CHECK (model IN ('failure_risk')),
    trigger         text NOT NULL CHECK (trigger IN ('on_demand', 'scheduled')),
    requested_by    text NOT NULL,
    status          text NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed')),
    stage           text NOT NULL DEFAULT 'queued',
    progress        double precision NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 1),
    model_version   integer,
    error           text,
    requested_at    timestamptz NOT NULL DEFAULT now(),
    started_at      timestamptz,
    finished_at     timestamptz
);
CREATE UNIQUE INDEX training_jobs_one_open ON training_jobs (tenant_id, model)
    WHERE status IN ('queued', 'running');
CREATE INDEX training_jobs_queue ON training_jobs (requested_at) WHERE status = 'queued';

ALTER TABLE training_jobs ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON training_jobs USING (tenant_id = wellpulse_current_tenant());
GRANT SELECT, INSERT, UPDATE ON training_jobs TO wellpulse_tenant;
