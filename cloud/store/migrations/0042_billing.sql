-- Billing with Stripe. A tenant's billing account links it to its Stripe customer and
-- subscription and holds the billing state machine's state (cloud/billing); Stripe events
-- are stored once by id (a replay is acknowledged and ignored); meter reports record each
-- tenant-day-meter value sent to Stripe Billing Meters, under the identifier that makes a
-- retry count once, and what reconciliation read back.

CREATE TABLE billing_accounts (
    tenant_id             bigint PRIMARY KEY REFERENCES tenants (id),
    -- Created once per tenant (idempotency key `wp-customer-<tenant id>`).
    customer_id           text UNIQUE CHECK (customer_id ~ '^cus_[A-Za-z0-9]{1,250}$'),
    subscription_id       text,
    subscription_created  timestamptz,
    status                text NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'active', 'past_due', 'suspended', 'canceled')),
    grace_until           timestamptz,
    delete_at             timestamptz,
    latest_invoice_id     text,
    latest_invoice_created timestamptz,
    latest_invoice_paid   boolean,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    -- A suspended account keeps the end of the grace period that suspended it.
    CHECK (status <> 'past_due' OR grace_until IS NOT NULL),
    CHECK ((status = 'canceled') = (delete_at IS NOT NULL)),
    CHECK ((latest_invoice_id IS NULL) = (latest_invoice_created IS NULL))
);
CREATE INDEX billing_accounts_grace ON billing_accounts (grace_until) WHERE status = 'past_due';

CREATE TABLE stripe_events (
    id           text PRIMARY KEY CHECK (id ~ '^evt_[A-Za-z0-9_]{1,250}$'),
    type         text NOT NULL,
    created      timestamptz NOT NULL,
    -- The tenant the event's customer belongs to (NULL: no tenant has that customer).
    tenant_id    bigint REFERENCES tenants (id),
    received_at  timestamptz NOT NULL DEFAULT now(),
    -- `applied:<transition>` or `ignored:<why>`.
    outcome      text NOT NULL,
    payload      jsonb NOT NULL
);
CREATE INDEX stripe_events_tenant ON stripe_events (tenant_id, created DESC);

CREATE TABLE billing_meter_reports (
    tenant_id      bigint NOT NULL REFERENCES tenants (id),
    day            date NOT NULL,
    meter          text NOT NULL CHECK (meter IN ('active_wells', 'samples_over_allowance')),
    value          bigint NOT NULL CHECK (value >= 0),
    identifier     text NOT NULL UNIQUE,
    status         text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
    attempts       integer NOT NULL DEFAULT 0,
    last_error     text,
    sent_at        timestamptz,
    -- What Stripe's meter event summary said for the day, and when it was read.
    stripe_value   bigint,
    reconciled_at  timestamptz,
    PRIMARY KEY (tenant_id, day, meter)
);
CREATE INDEX billing_meter_reports_due ON billing_meter_reports (status) WHERE status <> 'sent';

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['billing_accounts', 'stripe_events', 'billing_meter_reports'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY tenant_isolation ON %I USING (tenant_id = wellpulse_current_tenant())', t);
    END LOOP;
END $$;
GRANT SELECT ON billing_accounts, billing_meter_reports TO wellpulse_tenant;
