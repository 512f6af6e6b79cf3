-- WellPulse cloud schema, part 1: registry, ingest bookkeeping and tenant isolation.
--
-- The telemetry relations (telemetry, telemetry_1m, telemetry_1h, telemetry_1d) depend on
-- the storage back-end (TimescaleDB hypertable + continuous aggregates, or plain
-- PostgreSQL range partitions + rollup tables); `cloud::db::schema` creates them right
-- after the migrations, once, and records the choice in `storage_meta`.
--
-- Conventions:
-- * every tenant-owned table carries `tenant_id` and is reached from its parent through a
--   composite foreign key `(tenant_id, parent_id)`, so a row can never point at another
--   tenant's parent;
-- * ids are `bigint GENERATED ALWAYS AS IDENTITY`;
-- * u64 values from the wire (boot ids) are stored bit-cast into `bigint`; sequence numbers
--   must fit into 63 bits (checked in Rust);
-- * row-level security: see the end of this file.

CREATE TABLE storage_meta (
    singleton   boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    backend     text NOT NULL CHECK (backend IN ('timescaledb', 'postgres')),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE tenants (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    slug        text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
    name        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE sites (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id   bigint NOT NULL REFERENCES tenants (id),
    name        text NOT NULL,
    latitude    double precision CHECK (latitude BETWEEN -90 AND 90),
    longitude   double precision CHECK (longitude BETWEEN -180 AND 180),
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, name),
    UNIQUE (tenant_id, id)
);

CREATE TABLE wells (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id   bigint NOT NULL,
    site_id     bigint NOT NULL,
    -- API (American Petroleum Institute) well number, e.g. 42-123-45678-00-00.
    api_number  text NOT NULL CHECK (api_number ~ '^[0-9]{2}-?[0-9]{3}-?[0-9]{5}(-?[0-9]{2}){0,2}$'),
    name        text NOT NULL,
    lease       text NOT NULL DEFAULT '',
    field       text NOT NULL DEFAULT '',
    county      text NOT NULL DEFAULT '',
    state       text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (tenant_id, site_id) REFERENCES sites (tenant_id, id),
    UNIQUE (tenant_id, api_number),
    UNIQUE (tenant_id, id)
);

CREATE TABLE gateways (
    id                      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id               bigint NOT NULL,
    site_id                 bigint NOT NULL,
    -- The gateway id used in MQTT topics (`wp/v1/{tenant}/{gateway}/...`).
    slug                    text NOT NULL CHECK (slug ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
    -- `sha256$<salt hex>$<digest hex>`; never the secret itself.
    credential_hash         text NOT NULL CHECK (credential_hash LIKE 'sha256$%$%'),
    online                  boolean NOT NULL DEFAULT false,
    last_seen               timestamptz,
    last_birth_at           timestamptz,
    last_boot_id            bigint,
    agent_version           text,
    config_hash             text,
    -- wire::BufferStatus as last reported by the gateway.
    buffer_pending_batches  bigint,
    buffer_pending_bytes    bigint,
    buffer_oldest_age_ms    bigint,
    buffer_dropped_samples  bigint,
    buffer_dropped_batches  bigint,
    buffer_status_at        timestamptz,
    -- gateway clock minus cloud receive time (positive = gateway ahead).
    clock_skew_ms           bigint,
    created_at              timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (tenant_id, site_id) REFERENCES sites (tenant_id, id),
    UNIQUE (tenant_id, slug),
    UNIQUE (tenant_id, id)
);

CREATE TABLE gateway_births (
    tenant_id       bigint NOT NULL,
    gateway_id      bigint NOT NULL,
    boot_id         bigint NOT NULL,
    received_at     timestamptz NOT NULL,
    birth_time      timestamptz NOT NULL,
    agent_version   text NOT NULL,
    config_hash     text NOT NULL,
    -- The device/metric catalog of the birth, as JSON (for audit and the API).
    catalog         jsonb NOT NULL,
    PRIMARY KEY (gateway_id, boot_id),
    FOREIGN KEY (tenant_id, gateway_id) REFERENCES gateways (tenant_id, id)
);

CREATE TABLE devices (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id       bigint NOT NULL,
    gateway_id      bigint NOT NULL,
    -- Device name from the agent config: stable across boots (aliases are not).
    name            text NOT NULL,
    profile         text NOT NULL,
    well_id         bigint,
    info            jsonb NOT NULL DEFAULT '{}'::jsonb,
    last_boot_id    bigint,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (tenant_id, gateway_id) REFERENCES gateways (tenant_id, id),
    FOREIGN KEY (tenant_id, well_id) REFERENCES wells (tenant_id, id),
    UNIQUE (gateway_id, name),
    UNIQUE (tenant_id, id)
);
CREATE INDEX devices_well_idx ON devices (well_id) WHERE well_id IS NOT NULL;

CREATE TABLE series (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id       bigint NOT NULL,
    device_id       bigint NOT NULL,
    -- Canonical metric name (firmware-profiles vocabulary), or `vendor:<tag>` for a tag
    -- without a canonical name.
    metric          text NOT NULL,
    unit            text NOT NULL,
    -- Vendor tag name in the device's firmware profile (latest birth).
    tag             text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (tenant_id, device_id) REFERENCES devices (tenant_id, id),
    UNIQUE (device_id, metric),
    UNIQUE (tenant_id, id)
);

-- How to decode the batches of one boot: (device alias, metric alias) -> series, and the
-- scale/offset that turn the raw value into engineering units.
CREATE TABLE series_aliases (
    tenant_id       bigint NOT NULL,
    gateway_id      bigint NOT NULL,
    boot_id         bigint NOT NULL,
    device_alias    integer NOT NULL CHECK (device_alias BETWEEN 0 AND 65535),
    metric_alias    integer NOT NULL CHECK (metric_alias BETWEEN 0 AND 65535),
    series_id       bigint NOT NULL,
    scale           double precision NOT NULL,
    value_offset    double precision NOT NULL,
    PRIMARY KEY (gateway_id, boot_id, device_alias, metric_alias),
    FOREIGN KEY (gateway_id, boot_id) REFERENCES gateway_births (gateway_id, boot_id)
        ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, series_id) REFERENCES series (tenant_id, id)
);

-- Exactly-once storage: one row per committed batch, written in the same transaction as
-- the batch's samples. `seq` is durable and strictly increasing per gateway across
-- restarts (design.md), so it alone identifies a batch of a gateway.
CREATE TABLE ingested_batches (
    tenant_id       bigint NOT NULL,
    gateway_id      bigint NOT NULL,
    seq             bigint NOT NULL CHECK (seq >= 0),
    boot_id         bigint NOT NULL,
    received_at     timestamptz NOT NULL,
    samples         integer NOT NULL CHECK (samples >= 0),
    min_time        timestamptz,
    max_time        timestamptz,
    historical      boolean NOT NULL,
    PRIMARY KEY (gateway_id, seq),
    FOREIGN KEY (tenant_id, gateway_id) REFERENCES gateways (tenant_id, id)
);
CREATE INDEX ingested_batches_received_idx ON ingested_batches (received_at);

-- Audit trail of messages the ingester refused (bad topic, unknown gateway, malformed
-- CBOR, unknown boot, ...). Tenant and gateway are kept as text because they may not
-- exist; `tenant_id` is filled in when the tenant is known.
CREATE TABLE ingest_rejections (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    time            timestamptz NOT NULL DEFAULT now(),
    tenant_id       bigint REFERENCES tenants (id),
    tenant          text NOT NULL,
    gateway         text NOT NULL,
    topic           text NOT NULL,
    reason          text NOT NULL,
    payload_size    integer NOT NULL CHECK (payload_size >= 0)
);
CREATE INDEX ingest_rejections_time_idx ON ingest_rejections (time);

-- Plain PostgreSQL back-end only: time ranges of telemetry written since the rollups were
-- last recomputed. Written by the ingest transaction, consumed by maintenance.
CREATE TABLE rollup_dirty (
    series_id       bigint NOT NULL,
    from_time       timestamptz NOT NULL,
    to_time         timestamptz NOT NULL CHECK (to_time >= from_time)
);
CREATE INDEX rollup_dirty_series_idx ON rollup_dirty (series_id, from_time);

-- Row-level security. The owner (ingester, maintenance, migrations) bypasses it; request
-- handlers run tenant-scoped transactions as role `wellpulse_tenant` with
-- `wellpulse.tenant_id` set (see `Db::begin_tenant`), and then only see their tenant's rows.
DO $$
BEGIN
    CREATE ROLE wellpulse_tenant NOLOGIN;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;
END
$$;

CREATE FUNCTION wellpulse_current_tenant() RETURNS bigint
    LANGUAGE sql STABLE
    AS $$ SELECT nullif(current_setting('wellpulse.tenant_id', true), '')::bigint $$;

ALTER TABLE tenants ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON tenants USING (id = wellpulse_current_tenant());

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['sites', 'wells', 'gateways', 'gateway_births', 'devices',
                             'series', 'series_aliases', 'ingested_batches',
                             'ingest_rejections']
    LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY tenant_isolation ON %I USING (tenant_id = wellpulse_current_tenant())', t);
    END LOOP;
END
$$;

GRANT USAGE ON SCHEMA public TO wellpulse_tenant;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO wellpulse_tenant;
GRANT EXECUTE ON FUNCTION wellpulse_current_tenant() TO wellpulse_tenant;
