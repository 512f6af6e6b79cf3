-- Emissions forecasts and production-gap assessments (`ml::emissions`, `ml::optimization`):
-- the prediction cache, the runs that filled it, and the tenant's methane-intensity targets.
--
-- * `ml_forecasts`: the latest forecast per subject (a well's or a site's emissions, a
--   well's production gap), stamped with the model version that made it and the day it
--   starts; `rank_value` orders the fleet lists (30-day CO2e under AR5, kg; the gap's
--   shortfall, bbl/d). Read by the API, never recomputed per request.
-- * `ml_forecast_runs`: per tenant and kind, the SHA-256 of the inputs the cache was
--   computed from (the refresh job recomputes only when the inputs changed: new data),
--   the subjects it could not forecast, and its held-out metrics (a backtest on the
--   tenant's own last 30 days).
-- * `methane_targets`: the tenant's own intensity targets, compared with every forecast.

CREATE TABLE ml_forecasts (
    tenant_id       bigint NOT NULL REFERENCES tenants (id),
    kind            text NOT NULL CHECK (kind IN ('emissions_well', 'emissions_site', 'production_gap')),
    subject_id      bigint NOT NULL CHECK (subject_id > 0),
    model_version   text NOT NULL,
    start_day       date NOT NULL,
    rank_value      double precision NOT NULL CHECK (rank_value > '-Infinity' AND rank_value < 'Infinity'),
    payload         jsonb NOT NULL,
    computed_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, kind, subject_id)
);
CREATE INDEX ml_forecasts_rank ON ml_forecasts (tenant_id, kind, rank_value DESC);

CREATE TABLE ml_forecast_runs (
    tenant_id       bigint NOT NULL REFERENCES tenants (id),
    kind            text NOT NULL CHECK (kind IN ('emissions', 'production_gap')),
    inputs_hash     text NOT NULL CHECK (inputs_hash ~ '^[0-9a-f]{64}$'),
    model_version   text NOT NULL,
    subjects        integer NOT NULL CHECK (subjects >= 0),
    problems        jsonb NOT NULL DEFAULT '[]',
    metrics         jsonb NOT NULL DEFAULT '{}',
    computed_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, kind)
);

CREATE TABLE methane_targets (
    tenant_id               bigint PRIMARY KEY REFERENCES tenants (id),
    kg_ch4_per_boe          double precision CHECK (kg_ch4_per_boe > 0 AND kg_ch4_per_boe < 'Infinity'),
    percent_of_sales_gas    double precision CHECK (percent_of_sales_gas > 0 AND percent_of_sales_gas <= 100),
    percent_of_gas_produced double precision CHECK (percent_of_gas_produced > 0 AND percent_of_gas_produced <= 100),
    gas_ch4_fraction        double precision NOT NULL DEFAULT 0.8 CHECK (gas_ch4_fraction > 0 AND gas_ch4_fraction <= 1),
    updated_at              timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE ml_forecasts ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON ml_forecasts USING (tenant_id = wellpulse_current_tenant());
GRANT SELECT, INSERT, UPDATE, DELETE ON ml_forecasts TO wellpulse_tenant;
ALTER TABLE ml_forecast_runs ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON ml_forecast_runs USING (tenant_id = wellpulse_current_tenant());
GRANT SELECT, INSERT, UPDATE, DELETE ON ml_forecast_runs TO wellpulse_tenant;
ALTER TABLE methane_targets ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON methane_targets USING (tenant_id = wellpulse_current_tenant());
GRANT SELECT, INSERT, UPDATE, DELETE ON methane_targets TO wellpulse_tenant;
