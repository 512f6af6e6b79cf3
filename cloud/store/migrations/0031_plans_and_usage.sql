-- Plans and usage. A tenant is on a plan (its quotas are configuration: `[plans.<name>]`
-- in cloud.toml); usage is counted per tenant per day for quotas, the admin pages and
-- billing.

ALTER TABLE tenants
    ADD COLUMN plan text NOT NULL DEFAULT 'standard' CHECK (plan ~ '^[a-z0-9_-]{1,32}$');

CREATE TABLE tenant_usage_daily (
    tenant_id         bigint NOT NULL REFERENCES tenants (id),
    day               date NOT NULL,
    -- Samples stored that day (exactly once: from ingested_batches).
    samples_ingested  bigint NOT NULL DEFAULT 0,
    -- Wells with a device whose gateway delivered data that day.
    active_wells      integer NOT NULL DEFAULT 0,
    -- Gateways that delivered data that day.
    gateways_online   integer NOT NULL DEFAULT 0,
    -- Authenticated API requests (counted by the API instances, added up).
    api_calls         bigint NOT NULL DEFAULT 0,
    -- Estimated telemetry storage at the end of the day, in bytes.
    storage_bytes     bigint NOT NULL DEFAULT 0,
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, day)
);

ALTER TABLE tenant_usage_daily ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON tenant_usage_daily USING (tenant_id = wellpulse_current_tenant());
GRANT SELECT ON tenant_usage_daily TO wellpulse_tenant;
