-- People, machines and their access: users with roles per tenant, sign-in sessions (an
-- access token and a rotating refresh token per row, one family per sign-in), sign-in
-- failure throttling, one-time tokens (invitations, password resets), API keys, tenant
-- status, and the append-only audit log. See `store::identity` and `store::audit`.
--
-- Secrets are never stored: passwords as argon2id PHC strings, tokens and API key secrets
-- as SHA-256 digests (they are 256-bit random values, so a slow hash adds nothing).

ALTER TABLE tenants
    ADD COLUMN status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
    ADD COLUMN status_changed_at timestamptz NOT NULL DEFAULT now();

CREATE TABLE users (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- As entered; `email_key` (trimmed, lower case) is what identifies the user.
    email           text NOT NULL,
    email_key       text NOT NULL UNIQUE CHECK (email_key = lower(btrim(email_key))),
    display_name    text NOT NULL DEFAULT '',
    -- argon2id PHC string; NULL until the invitation is accepted.
    password_hash   text,
    platform_admin  boolean NOT NULL DEFAULT false,
    disabled_at     timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE memberships (
    tenant_id   bigint NOT NULL REFERENCES tenants (id),
    user_id     bigint NOT NULL REFERENCES users (id),
    role        text NOT NULL CHECK (role IN ('tenant_admin', 'operator', 'viewer')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, user_id)
);
CREATE INDEX memberships_user ON memberships (user_id);

-- One row per issued token pair. Refreshing marks the row `rotated_at` and inserts the
-- next row of the same family; presenting a rotated refresh token again revokes the
-- whole family (it was stolen, or the client is broken).
CREATE TABLE auth_sessions (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    family              uuid NOT NULL,
    user_id             bigint NOT NULL REFERENCES users (id),
    access_hash         bytea NOT NULL UNIQUE,
    access_expires_at   timestamptz NOT NULL,
    refresh_hash        bytea NOT NULL UNIQUE,
    refresh_expires_at  timestamptz NOT NULL,
    created_at          timestamptz NOT NULL DEFAULT now(),
    rotated_at          timestamptz,
    revoked_at          timestamptz,
    client_addr         text
);
CREATE INDEX auth_sessions_family ON auth_sessions (family);
CREATE INDEX auth_sessions_user ON auth_sessions (user_id) WHERE revoked_at IS NULL;

-- Failed sign-ins by email key, whether or not a user has that email: the answer to a
-- locked-out address is the same for everybody.
CREATE TABLE sign_in_failures (
    email_key       text PRIMARY KEY,
    failures        integer NOT NULL,
    last_failure_at timestamptz NOT NULL,
    locked_until    timestamptz
);

CREATE TABLE one_time_tokens (
    token_hash  bytea PRIMARY KEY,
    purpose     text NOT NULL CHECK (purpose IN ('invitation', 'password_reset')),
    user_id     bigint NOT NULL REFERENCES users (id),
    -- Invitations: the tenant and role granted on acceptance.
    tenant_id   bigint REFERENCES tenants (id),
    role        text CHECK (role IN ('tenant_admin', 'operator', 'viewer')),
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CHECK ((purpose = 'invitation') = (tenant_id IS NOT NULL AND role IS NOT NULL))
);
CREATE INDEX one_time_tokens_user ON one_time_tokens (user_id);

CREATE TABLE api_keys (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id     bigint NOT NULL REFERENCES tenants (id),
    -- The public part of the key (`wpk_<prefix>_<secret>`), shown in lists.
    prefix        text NOT NULL UNIQUE CHECK (prefix ~ '^[0-9a-f]{12}$'),
    secret_hash   bytea NOT NULL,
    name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    role          text NOT NULL CHECK (role IN ('tenant_admin', 'operator', 'viewer')),
    created_by    text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz,
    last_used_at  timestamptz,
    revoked_at    timestamptz
);
CREATE INDEX api_keys_tenant ON api_keys (tenant_id, id);

-- Every mutation, in the transaction that made it. `tenant_id` is NULL for platform-level
-- actions and is not a foreign key: the trail outlives a deleted tenant.
CREATE TABLE audit_log (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id    bigint,
    at           timestamptz NOT NULL DEFAULT now(),
    actor        text NOT NULL,
    action       text NOT NULL,
    target       text NOT NULL,
    before       jsonb,
    after        jsonb,
    client_addr  text,
    request_id   text
);
CREATE INDEX audit_log_tenant ON audit_log (tenant_id, id);

-- Append-only, for every role including the owner: rows can be added and read, never
-- changed or removed.
CREATE FUNCTION wellpulse_audit_log_append_only() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION wellpulse_audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION wellpulse_audit_log_append_only();

-- Anything that changes who may do what notifies channel `wellpulse_auth`: every API
-- instance drops its cached principals and tenants on it, so sign-out, revocation,
-- role changes and suspension take effect at once everywhere.
CREATE FUNCTION wellpulse_notify_auth() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    PERFORM pg_notify('wellpulse_auth', TG_TABLE_NAME);
    RETURN NULL;
END
$$;
CREATE TRIGGER auth_changed AFTER UPDATE OR DELETE ON auth_sessions
    FOR EACH STATEMENT EXECUTE FUNCTION wellpulse_notify_auth();
CREATE TRIGGER auth_changed AFTER INSERT OR UPDATE OR DELETE ON memberships
    FOR EACH STATEMENT EXECUTE FUNCTION wellpulse_notify_auth();
CREATE TRIGGER auth_changed AFTER UPDATE OF password_hash, platform_admin, disabled_at OR DELETE ON users
    FOR EACH STATEMENT EXECUTE FUNCTION wellpulse_notify_auth();
CREATE TRIGGER auth_changed AFTER UPDATE OF role, expires_at, revoked_at OR DELETE ON api_keys
    FOR EACH STATEMENT EXECUTE FUNCTION wellpulse_notify_auth();
CREATE TRIGGER auth_changed AFTER UPDATE OF status, slug OR DELETE ON tenants
    FOR EACH STATEMENT EXECUTE FUNCTION wellpulse_notify_auth();

-- Row-level security for what tenant-scoped transactions may touch.
ALTER TABLE memberships ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON memberships USING (tenant_id = wellpulse_current_tenant());
ALTER TABLE api_keys ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON api_keys USING (tenant_id = wellpulse_current_tenant());
ALTER TABLE audit_log ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON audit_log USING (tenant_id = wellpulse_current_tenant());
-- A tenant sees the users who are its members, and only their public columns.
ALTER TABLE users ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_members ON users USING (EXISTS (
    SELECT 1 FROM memberships m
    WHERE m.user_id = users.id AND m.tenant_id = wellpulse_current_tenant()));

GRANT SELECT, INSERT, UPDATE, DELETE ON memberships, api_keys TO wellpulse_tenant;
GRANT SELECT, INSERT ON audit_log TO wellpulse_tenant;
GRANT SELECT (id, email, email_key, display_name, disabled_at, created_at) ON users
    TO wellpulse_tenant;
-- Sessions, failures and one-time tokens are the authentication service's own: tenant
-- transactions get no access to them at all.
REVOKE ALL ON auth_sessions, sign_in_failures, one_time_tokens FROM wellpulse_tenant;
-- A tenant-scoped transaction reads its own tenant row and never changes it: status,
-- plan and slug belong to platform administration.
REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON tenants FROM wellpulse_tenant;
