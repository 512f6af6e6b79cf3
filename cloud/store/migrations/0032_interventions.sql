-- Maintenance and failure records of wells ("interventions"): what failed or was done,
-- when, and what it cost. Failures are the labels of failure prediction; workovers reset
-- "days since last workover".

CREATE TABLE well_interventions (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id     bigint NOT NULL,
    well_id       bigint NOT NULL,
    kind          text NOT NULL CHECK (kind IN ('failure', 'workover', 'maintenance', 'inspection')),
    -- The equipment concerned.
    equipment     text NOT NULL CHECK (equipment IN ('rod_pump', 'rods', 'tubing', 'esp',
                      'plunger', 'gas_lift', 'wellhead', 'separator', 'tank', 'compressor',
                      'meter', 'controller', 'other')),
    -- For failures: how it failed (e.g. rod_part, pump_stuck, motor_burnout, tubing_leak).
    failure_mode  text NOT NULL DEFAULT '' CHECK (failure_mode ~ '^[a-z0-9_]{0,40}$'),
    started_at    timestamptz NOT NULL,
    ended_at      timestamptz CHECK (ended_at IS NULL OR ended_at >= started_at),
    cost_usd      double precision CHECK (cost_usd >= 0 AND cost_usd < 'Infinity'),
    notes         text NOT NULL DEFAULT '' CHECK (length(notes) <= 4000),
    created_by    text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (tenant_id, well_id) REFERENCES wells (tenant_id, id),
    CHECK (kind = 'failure' OR failure_mode = '')
);
CREATE INDEX well_interventions_well ON well_interventions (tenant_id, well_id, started_at);

ALTER TABLE well_interventions ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON well_interventions USING (tenant_id = wellpulse_current_tenant());
GRANT SELECT, INSERT, UPDATE, DELETE ON well_interventions TO wellpulse_tenant;
