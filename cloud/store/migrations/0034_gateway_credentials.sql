-- Gateway credentials managed through the API: a rotation keeps the previous secret valid
-- for an overlap window (so the agent can be reconfigured without losing its session);
-- a revocation bars the gateway until new credentials are issued.

ALTER TABLE gateways
    ADD COLUMN previous_credential_hash text,
    ADD COLUMN previous_valid_until timestamptz,
    ADD COLUMN credentials_issued_at timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN revoked_at timestamptz,
    ADD CHECK ((previous_credential_hash IS NULL) = (previous_valid_until IS NULL));
