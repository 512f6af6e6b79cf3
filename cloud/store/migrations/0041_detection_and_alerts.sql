-- Live detection and alerts.
--
-- Detection runs inside the ingest transaction: a device's detector state is read FOR UPDATE,
-- advanced by the batch and written back with the batch's samples, its findings, the alerts
-- they open or clear and the deliveries those alerts owe (the outbox). Several ingesters
-- therefore serialize on a device's state row, a batch is scored exactly once (a duplicate
-- is never stored, so never scored), and an alert's notification is committed with the
-- alert or not at all.

-- One row per device: the `detect::DeviceState` as JSON text in `bytea` (NULL until the
-- device's first batch). Written with every batch and read only by the code that wrote it,
-- so the server never parses it (no jsonb) nor compresses it (STORAGE EXTERNAL).
CREATE TABLE detector_states (
    device_id       bigint PRIMARY KEY,
    tenant_id       bigint NOT NULL,
    state           bytea,
    -- Newest sample seen (the silence sweep's question).
    last_sample_at  timestamptz,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (tenant_id, device_id) REFERENCES devices (tenant_id, id)
);
ALTER TABLE detector_states ALTER COLUMN state SET STORAGE EXTERNAL;
CREATE INDEX detector_states_last_sample ON detector_states (last_sample_at);

-- Tenant rules on canonical metrics (`detect::Rule`).
CREATE TABLE detection_rules (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id       bigint NOT NULL REFERENCES tenants (id),
    name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    metric          text NOT NULL,
    -- `detect::RuleCondition` as JSON: {"type": "above"|"below", "value": x} or
    -- {"type": "rate", "change": x, "window_ms": n}.
    condition       jsonb NOT NULL,
    severity        text NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    for_ms          bigint NOT NULL DEFAULT 0 CHECK (for_ms >= 0),
    enabled         boolean NOT NULL DEFAULT true,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id)
);

-- Per-well multivariate models: every version kept, one active per device.
CREATE TABLE detection_models (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id       bigint NOT NULL,
    well_id         bigint NOT NULL,
    device_id       bigint NOT NULL,
    version         integer NOT NULL CHECK (version > 0),
    algorithm       text NOT NULL,
    features        text[] NOT NULL,
    -- `detect::WellModel` as JSON.
    model           jsonb NOT NULL,
    trained_from    timestamptz NOT NULL,
    trained_to      timestamptz NOT NULL,
    training_rows   integer NOT NULL,
    -- Training metrics (explained variance, error quantiles, threshold).
    metrics         jsonb NOT NULL,
    -- SHA-256 of the training matrix.
    data_hash       text NOT NULL,
    active          boolean NOT NULL DEFAULT true,
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (device_id, version),
    FOREIGN KEY (tenant_id, well_id) REFERENCES wells (tenant_id, id),
    FOREIGN KEY (tenant_id, device_id) REFERENCES devices (tenant_id, id)
);
CREATE UNIQUE INDEX detection_models_active ON detection_models (device_id) WHERE active;

-- Alerts: one open alert per fingerprint (tenant, kind, device, subject).
CREATE TABLE alerts (
    id                    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id             bigint NOT NULL REFERENCES tenants (id),
    fingerprint           text NOT NULL,
    kind                  text NOT NULL,
    subject               text,
    severity              text NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    state                 text NOT NULL CHECK (state IN ('firing', 'acknowledged', 'resolved')),
    device_id             bigint,
    well_id               bigint,
    summary               text NOT NULL,
    -- Evidence of the newest firing (`detect::Evidence`).
    evidence              jsonb NOT NULL,
    started_at            timestamptz NOT NULL,
    last_fired_at         timestamptz NOT NULL,
    -- The condition cleared at this time; resolved after the hold time unless it fires again.
    condition_cleared_at  timestamptz,
    acknowledged_at       timestamptz,
    acknowledged_by       text,
    resolved_at           timestamptz,
    resolved_by           text,
    assignee_user_id      bigint REFERENCES users (id),
    escalation_level      integer NOT NULL DEFAULT 0,
    escalated_at          timestamptz,
    -- Re-opened too often recently: its firing is told only once it holds.
    flapping              boolean NOT NULL DEFAULT false,
    -- When its firing was handed to the destinations (NULL: not yet, or silenced).
    notified_at           timestamptz,
    silence_id            bigint,
    updated_at            timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, device_id) REFERENCES devices (tenant_id, id),
    FOREIGN KEY (tenant_id, well_id) REFERENCES wells (tenant_id, id)
);
CREATE UNIQUE INDEX alerts_open_fingerprint ON alerts (tenant_id, fingerprint)
    WHERE state <> 'resolved';
CREATE INDEX alerts_tenant_started ON alerts (tenant_id, started_at DESC);
CREATE INDEX alerts_open ON alerts (state, condition_cleared_at) WHERE state <> 'resolved';

-- Findings: every condition transition detection made (historical ones included).
CREATE TABLE findings (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id   bigint NOT NULL,
    device_id   bigint NOT NULL,
    kind        text NOT NULL,
    subject     text,
    severity    text NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    -- Became active (true) or cleared (false).
    active      boolean NOT NULL,
    at          timestamptz NOT NULL,
    historical  boolean NOT NULL,
    evidence    jsonb NOT NULL,
    alert_id    bigint REFERENCES alerts (id),
    created_at  timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (tenant_id, device_id) REFERENCES devices (tenant_id, id)
);
CREATE INDEX findings_tenant_at ON findings (tenant_id, at DESC);
CREATE INDEX findings_device_at ON findings (device_id, at DESC);

-- What happened to an alert, in order (also the API's history).
CREATE TABLE alert_events (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id   bigint NOT NULL,
    alert_id    bigint NOT NULL,
    at          timestamptz NOT NULL DEFAULT now(),
    event       text NOT NULL,
    actor       text,
    detail      jsonb NOT NULL DEFAULT '{}'::jsonb,
    FOREIGN KEY (tenant_id, alert_id) REFERENCES alerts (tenant_id, id)
);
CREATE INDEX alert_events_alert ON alert_events (alert_id, id);

CREATE TABLE alert_comments (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id   bigint NOT NULL,
    alert_id    bigint NOT NULL,
    author      text NOT NULL,
    body        text NOT NULL CHECK (length(body) BETWEEN 1 AND 4000),
    created_at  timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (tenant_id, alert_id) REFERENCES alerts (tenant_id, id)
);
CREATE INDEX alert_comments_alert ON alert_comments (alert_id, id);

-- Silences: alerts matching every given matcher are recorded but not delivered.
CREATE TABLE alert_silences (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id   bigint NOT NULL REFERENCES tenants (id),
    kind        text,
    well_id     bigint,
    device_id   bigint,
    starts_at   timestamptz NOT NULL DEFAULT now(),
    ends_at     timestamptz NOT NULL,
    comment     text NOT NULL DEFAULT '',
    created_by  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CHECK (ends_at > starts_at),
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, well_id) REFERENCES wells (tenant_id, id),
    FOREIGN KEY (tenant_id, device_id) REFERENCES devices (tenant_id, id)
);

-- Where a tenant's alerts go. The secret (webhook signing secret, PagerDuty routing key)
-- is sealed like the tenant CA keys (AES-256-GCM under `[tenancy] ca_key`).
CREATE TABLE alert_destinations (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id       bigint NOT NULL REFERENCES tenants (id),
    name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    kind            text NOT NULL CHECK (kind IN ('webhook', 'alertmanager', 'pagerduty')),
    url             text NOT NULL,
    secret_sealed   bytea,
    min_severity    text NOT NULL DEFAULT 'info' CHECK (min_severity IN ('info', 'warning', 'critical')),
    enabled         boolean NOT NULL DEFAULT true,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    last_delivered_at timestamptz,
    last_error      text,
    last_error_at   timestamptz,
    UNIQUE (tenant_id, id),
    UNIQUE (tenant_id, name)
);

-- The outbox: one row per message owed to a destination, written in the transaction that
-- changed the alert; `snapshot` is the alert as it was then.
CREATE TABLE alert_deliveries (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id       bigint NOT NULL,
    destination_id  bigint NOT NULL,
    alert_id        bigint,
    event           text NOT NULL CHECK (event IN ('firing', 'acknowledged', 'resolved', 'resend', 'escalated', 'test')),
    snapshot        jsonb NOT NULL,
    state           text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'dead')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    lease_until     timestamptz,
    last_status     integer,
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    delivered_at    timestamptz,
    FOREIGN KEY (tenant_id, destination_id) REFERENCES alert_destinations (tenant_id, id),
    FOREIGN KEY (tenant_id, alert_id) REFERENCES alerts (tenant_id, id)
);
CREATE INDEX alert_deliveries_due ON alert_deliveries (next_attempt_at) WHERE state = 'pending';
CREATE INDEX alert_deliveries_destination ON alert_deliveries (destination_id, id DESC);

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['detector_states', 'detection_rules', 'detection_models', 'alerts',
                             'findings', 'alert_events', 'alert_comments', 'alert_silences',
                             'alert_destinations', 'alert_deliveries'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY tenant_isolation ON %I USING (tenant_id = wellpulse_current_tenant())', t);
    END LOOP;
END $$;
GRANT SELECT ON detector_states, detection_models, findings TO wellpulse_tenant;
GRANT SELECT, INSERT, UPDATE, DELETE ON detection_rules, alert_destinations TO wellpulse_tenant;
GRANT SELECT, INSERT, UPDATE ON alerts, alert_silences TO wellpulse_tenant;
-- A destination deleted takes its delivery log with it.
GRANT SELECT, INSERT, UPDATE, DELETE ON alert_deliveries TO wellpulse_tenant;
GRANT SELECT, INSERT ON alert_events, alert_comments TO wellpulse_tenant;
