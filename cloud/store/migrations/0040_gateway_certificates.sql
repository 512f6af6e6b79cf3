-- Optional mutual TLS for gateways: one certificate authority per tenant, created on first
-- use, and the client certificates it issued to the tenant's gateways.
--
-- The CA's private key is never stored in clear: `key_sealed` is its PKCS#8 DER sealed with
-- AES-256-GCM under the server's `[tenancy] ca_key` (version byte, 96-bit nonce,
-- ciphertext and tag; the tenant id is authenticated with it, so a sealed key cannot be
-- moved to another tenant). A gateway's private key is generated when its certificate is
-- issued, shown once and never stored.

CREATE TABLE tenant_certificate_authorities (
    tenant_id        bigint PRIMARY KEY REFERENCES tenants (id),
    certificate_pem  text NOT NULL CHECK (certificate_pem LIKE '-----BEGIN CERTIFICATE-----%'),
    certificate_der  bytea NOT NULL,
    key_sealed       bytea NOT NULL CHECK (length(key_sealed) > 29),
    created_at       timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE gateway_certificates (
    tenant_id        bigint NOT NULL REFERENCES tenant_certificate_authorities (tenant_id),
    gateway_id       bigint NOT NULL,
    -- The certificate's serial number, lower-case hex (16 random bytes).
    serial           text NOT NULL CHECK (serial ~ '^[0-9a-f]{32}$'),
    certificate_der  bytea NOT NULL,
    not_before       timestamptz NOT NULL,
    not_after        timestamptz NOT NULL CHECK (not_after > not_before),
    issued_at        timestamptz NOT NULL DEFAULT now(),
    issued_by        text NOT NULL,
    revoked_at       timestamptz,
    PRIMARY KEY (tenant_id, serial),
    FOREIGN KEY (tenant_id, gateway_id) REFERENCES gateways (tenant_id, id)
);
CREATE INDEX gateway_certificates_gateway ON gateway_certificates (tenant_id, gateway_id, issued_at);

ALTER TABLE tenant_certificate_authorities ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON tenant_certificate_authorities
    USING (tenant_id = wellpulse_current_tenant());
GRANT SELECT, INSERT ON tenant_certificate_authorities TO wellpulse_tenant;

ALTER TABLE gateway_certificates ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON gateway_certificates
    USING (tenant_id = wellpulse_current_tenant());
GRANT SELECT, INSERT, UPDATE ON gateway_certificates TO wellpulse_tenant;
