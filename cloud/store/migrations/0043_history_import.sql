-- History import (`wellpulse-cloud import`, `store::history`): a tenant's years of
-- production from its own records or a regulator's publication, in the tables telemetry
-- feeds, so reports, decline curves and the ML features read one history.
--
-- * `daily_production` gains the method `import` and the row's `disposition` (where the
--   volume went). An imported figure never replaces a telemetry-derived or corrected one
--   (the import skips those days), and the derivation never replaces an imported figure
--   with `missing` (see `store::production::upsert_daily`).
-- * `daily_runtime`: hours on production per well and day (imported; 0..24).
--
-- Natural keys make re-imports idempotent: (well, day, quantity) and (well, day).

ALTER TABLE daily_production DROP CONSTRAINT daily_production_method_check;
ALTER TABLE daily_production ADD CONSTRAINT daily_production_method_check
    CHECK (method IN ('tank_gauge', 'meter_total', 'flow_computer_daily', 'rate_integration',
                      'manual_correction', 'missing', 'import'));
ALTER TABLE daily_production ADD COLUMN disposition text
    CHECK (disposition IN ('sold', 'lease_use', 'flared', 'vented', 'injected', 'stored', 'other'));

CREATE TABLE daily_runtime (
    tenant_id   bigint NOT NULL,
    well_id     bigint NOT NULL,
    day         date NOT NULL,
    hours_on    double precision NOT NULL CHECK (hours_on BETWEEN 0 AND 24),
    source      text NOT NULL CHECK (source IN ('import')),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (well_id, day),
    FOREIGN KEY (tenant_id, well_id) REFERENCES wells (tenant_id, id)
);
CREATE INDEX daily_runtime_tenant_day_idx ON daily_runtime (tenant_id, day);

ALTER TABLE daily_runtime ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON daily_runtime USING (tenant_id = wellpulse_current_tenant());
GRANT SELECT, INSERT, UPDATE, DELETE ON daily_runtime TO wellpulse_tenant;
