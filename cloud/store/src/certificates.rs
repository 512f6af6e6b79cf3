//! Gateway client certificates (optional mutual TLS): one certificate authority per
//! tenant, the certificates it issues to the tenant's gateways, their revocation, and the
//! broker's question at every CONNECT that presents one.
//!
//! - **The tenant CA** ([`tenant_ca`]) is made with `rcgen` the first time a certificate
//!   of the tenant is issued (ECDSA P-256, 20 years, path length 0, subject `CN=WellPulse
//!   gateway CA {tenant}`). Two concurrent first issues race on the primary key: one CA
//!   wins (`ON CONFLICT DO NOTHING`), both use it.
//! - **Its private key is never stored in clear.** [`CaKey`] (from `cloud.toml`'s
//!   `[tenancy] ca_key`, a server secret) derives an AES-256-GCM key with HKDF-SHA256; the
//!   PKCS#8 key is sealed as `version (1) ‖ nonce (12 random bytes) ‖ ciphertext ‖ tag`,
//!   with `wellpulse/v1/tenant-ca-key/{tenant id}` as associated data, so a sealed key
//!   copied to another tenant's row does not open. A wrong `ca_key` is
//!   [`DbError::CaKey`], never a certificate signed by garbage.
//! - **A gateway certificate** ([`issue_gateway_certificate`]): a fresh ECDSA P-256 key
//!   generated here, returned once and never stored; subject `CN={tenant}/{gateway}`
//!   (the gateway's MQTT username) and the URI SAN `urn:wellpulse:gateway:{tenant}/{gateway}`;
//!   extended key usage client authentication only; a 128-bit random serial (recorded,
//!   lower-case hex); validity from an hour ago (clock skew) for the requested time.
//! - **Revocation** ([`revoke_gateway_certificate`]) marks the serial; the broker asks
//!   [`Db::gateway_certificate_status`] at every CONNECT, so a revoked (or expired)
//!   certificate is refused at the next login. The caller kicks the live session.
//!
//! The API's functions run in the caller's tenant-scoped transaction (row-level security
//! on both tables); the broker's question runs on the pool, like
//! [`Db::gateway_may_log_in`].

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use rcgen::string::Ia5String;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, SanType, SerialNumber,
};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};

use crate::{Db, DbError, TenantId, collect};

/// Shortest accepted `[tenancy] ca_key` (characters): 32 random bytes in base64 are 44.
pub const MIN_CA_KEY_LEN: usize = 32;
/// Longest validity of a gateway certificate (10 years; the CA lives 20).
pub const MAX_VALIDITY: Duration = Duration::from_secs(3650 * 24 * 3600);
/// The default validity of a gateway certificate: 397 days, the CA/Browser Forum's bound.
pub const DEFAULT_VALIDITY: Duration = Duration::from_secs(397 * 24 * 3600);

const SEAL_VERSION: u8 = 1;
const CA_YEARS: i64 = 20;

/// The server secret that seals tenant CA keys at rest (see the module docs). `Debug`
/// never shows it.
#[derive(Clone)]
pub struct CaKey(LessSafeKeyBox);

#[derive(Clone)]
struct LessSafeKeyBox(std::sync::Arc<LessSafeKey>);

impl std::fmt::Debug for CaKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CaKey(***)")
    }
}

/// The purpose a tenant CA's private key is sealed for.
const CA_KEY_PURPOSE: &str = "tenant-ca-key";

impl CaKey {
    /// Derives the sealing key from the configured secret (at least [`MIN_CA_KEY_LEN`]
    /// characters; e.g. `openssl rand -base64 32`).
    pub fn from_secret(secret: &str) -> Result<CaKey, DbError> {
        if secret.len() < MIN_CA_KEY_LEN {
            return Err(DbError::CaKey(format!(
                "[tenancy] ca_key must be at least {MIN_CA_KEY_LEN} characters (e.g. `openssl rand -base64 32`)"
            )));
        }
        let salt = ring::hkdf::Salt::new(ring::hkdf::HKDF_SHA256, b"wellpulse/v1/ca-key-salt");
        let prk = salt.extract(secret.as_bytes());
        let okm = prk
            .expand(&[b"wellpulse/v1/tenant-ca-key"], &AES_256_GCM)
            .map_err(|_| DbError::CaKey("cannot derive the sealing key".to_owned()))?;
        Ok(CaKey(LessSafeKeyBox(std::sync::Arc::new(
            LessSafeKey::new(UnboundKey::from(okm)),
        ))))
    }

    /// The associated data binding a sealed value to its purpose and tenant.
    fn aad_for(purpose: &str, tenant: TenantId) -> String {
        format!("wellpulse/v1/{purpose}/{}", tenant.0)
    }

    /// Seals `plain` for `tenant`.
    fn seal(&self, tenant: TenantId, plain: &[u8]) -> Result<Vec<u8>, DbError> {
        self.seal_as(CA_KEY_PURPOSE, tenant, plain)
    }

    /// Seals another secret of `tenant` (e.g. an alert destination's signing secret) under
    /// the same server key, bound to `purpose` and the tenant: a value sealed for one
    /// purpose or tenant never opens as another.
    pub fn seal_as(
        &self,
        purpose: &str,
        tenant: TenantId,
        plain: &[u8],
    ) -> Result<Vec<u8>, DbError> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| DbError::CaKey("no randomness for a nonce".to_owned()))?;
        let mut body = plain.to_vec();
        self.0
            .0
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(Self::aad_for(purpose, tenant).as_bytes()),
                &mut body,
            )
            .map_err(|_| DbError::CaKey(format!("cannot seal the {purpose}")))?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + body.len());
        out.push(SEAL_VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// Opens what [`CaKey::seal`] sealed for `tenant`.
    fn open(&self, tenant: TenantId, sealed: &[u8]) -> Result<Vec<u8>, DbError> {
        self.open_as(CA_KEY_PURPOSE, tenant, sealed)
    }

    /// Opens what [`CaKey::seal_as`] sealed for `purpose` and `tenant`.
    pub fn open_as(
        &self,
        purpose: &str,
        tenant: TenantId,
        sealed: &[u8],
    ) -> Result<Vec<u8>, DbError> {
        let refused = || {
            DbError::CaKey(format!(
                "the {purpose} of tenant {tenant} does not open with the configured [tenancy] ca_key \
                 (was ca_key changed?)"
            ))
        };
        let (&version, rest) = sealed.split_first().ok_or_else(refused)?;
        if version != SEAL_VERSION || rest.len() < NONCE_LEN {
            return Err(refused());
        }
        let (nonce, body) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| refused())?;
        let mut body = body.to_vec();
        let plain = self
            .0
            .0
            .open_in_place(
                nonce,
                Aad::from(Self::aad_for(purpose, tenant).as_bytes()),
                &mut body,
            )
            .map_err(|_| refused())?;
        Ok(plain.to_vec())
    }
}

fn pki(what: &'static str) -> impl Fn(rcgen::Error) -> DbError {
    move |e| DbError::CaKey(format!("{what}: {e}"))
}

/// A tenant's certificate authority (its public half).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantCa {
    /// The CA certificate, PEM (what gateways' configs may carry).
    pub certificate_pem: String,
    /// The CA certificate, DER.
    pub certificate_der: Vec<u8>,
    /// When it was made.
    pub created_at: DateTime<Utc>,
}

fn ca_subject(tenant_slug: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "WellPulse");
    dn.push(
        DnType::CommonName,
        format!("WellPulse gateway CA {tenant_slug}"),
    );
    dn
}

fn offset_time(t: DateTime<Utc>) -> Result<time::OffsetDateTime, DbError> {
    time::OffsetDateTime::from_unix_timestamp(t.timestamp())
        .map_err(|e| DbError::invalid("certificate validity", e.to_string()))
}

/// The tenant's CA, made (and its key sealed with `key`) on first use.
pub async fn tenant_ca(
    conn: &mut PgConnection,
    tenant: TenantId,
    tenant_slug: &str,
    key: &CaKey,
) -> Result<TenantCa, DbError> {
    if let Some(ca) = read_ca(conn, tenant).await? {
        return Ok(ca);
    }
    let ca_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(pki("CA key"))?;
    let mut params = CertificateParams::default();
    params.distinguished_name = ca_subject(tenant_slug);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.serial_number = Some(SerialNumber::from_slice(&random_serial()?));
    let now = Utc::now();
    params.not_before = offset_time(now - TimeDelta::hours(1))?;
    params.not_after = offset_time(now + TimeDelta::days(365 * CA_YEARS))?;
    let cert = params.self_signed(&ca_key).map_err(pki("CA certificate"))?;
    let sealed = key.seal(tenant, ca_key.serialized_der())?;
    sqlx::query(
        "INSERT INTO tenant_certificate_authorities (tenant_id, certificate_pem, certificate_der, key_sealed)
         VALUES ($1, $2, $3, $4) ON CONFLICT (tenant_id) DO NOTHING",
    )
    .bind(tenant)
    .bind(cert.pem())
    .bind(cert.der().as_ref())
    .bind(&sealed)
    .execute(&mut *conn)
    .await?;
    read_ca(conn, tenant)
        .await?
        .ok_or_else(|| DbError::NotFound(format!("certificate authority of tenant {tenant}")))
}

async fn read_ca(conn: &mut PgConnection, tenant: TenantId) -> Result<Option<TenantCa>, DbError> {
    let row = sqlx::query(
        "SELECT certificate_pem, certificate_der, created_at
         FROM tenant_certificate_authorities WHERE tenant_id = $1",
    )
    .bind(tenant)
    .fetch_optional(conn)
    .await?;
    row.map(|r| {
        Ok(TenantCa {
            certificate_pem: r.try_get("certificate_pem")?,
            certificate_der: r.try_get("certificate_der")?,
            created_at: r.try_get("created_at")?,
        })
    })
    .transpose()
    .map_err(|e: sqlx::Error| DbError::from(e))
}

/// 16 random bytes, a positive DER integer with no leading zero byte (so the hex of the
/// bytes is the serial exactly as any parser reads it back).
fn random_serial() -> Result<[u8; 16], DbError> {
    let mut serial = [0u8; 16];
    SystemRandom::new()
        .fill(&mut serial)
        .map_err(|_| DbError::CaKey("no randomness for a serial".to_owned()))?;
    serial[0] = (serial[0] & 0x7f).max(1);
    Ok(serial)
}

/// The URI SAN of a gateway certificate.
pub fn gateway_uri(tenant_slug: &str, gateway_slug: &str) -> String {
    format!("urn:wellpulse:gateway:{tenant_slug}/{gateway_slug}")
}

/// A certificate just issued: the only time its private key exists outside the gateway.
#[derive(Clone, PartialEq, Eq)]
pub struct IssuedCertificate {
    /// Serial, lower-case hex.
    pub serial: String,
    /// The gateway's certificate, PEM.
    pub certificate_pem: String,
    /// Its private key, PKCS#8 PEM (never stored).
    pub private_key_pem: String,
    /// The tenant CA's certificate, PEM.
    pub ca_pem: String,
    /// Start of validity.
    pub not_before: DateTime<Utc>,
    /// End of validity.
    pub not_after: DateTime<Utc>,
}

impl std::fmt::Debug for IssuedCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedCertificate")
            .field("serial", &self.serial)
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

/// Issues a client certificate to gateway `gateway_slug` of `tenant` (see the module
/// docs), valid for `validity` (1 hour to [`MAX_VALIDITY`]). `None` if no such gateway.
pub async fn issue_gateway_certificate(
    conn: &mut PgConnection,
    tenant: TenantId,
    tenant_slug: &str,
    gateway_slug: &str,
    validity: Duration,
    key: &CaKey,
    issued_by: &str,
) -> Result<Option<IssuedCertificate>, DbError> {
    if !(Duration::from_secs(3600)..=MAX_VALIDITY).contains(&validity) {
        return Err(DbError::invalid(
            "certificate validity",
            format!(
                "must be from 1 hour to {} days",
                MAX_VALIDITY.as_secs() / 86_400
            ),
        ));
    }
    let gateway: Option<crate::GatewayId> =
        sqlx::query_scalar("SELECT id FROM gateways WHERE tenant_id = $1 AND slug = $2")
            .bind(tenant)
            .bind(gateway_slug)
            .fetch_optional(&mut *conn)
            .await?;
    let Some(gateway) = gateway else {
        return Ok(None);
    };
    let ca = tenant_ca(conn, tenant, tenant_slug, key).await?;
    let sealed: Vec<u8> = sqlx::query_scalar(
        "SELECT key_sealed FROM tenant_certificate_authorities WHERE tenant_id = $1",
    )
    .bind(tenant)
    .fetch_one(&mut *conn)
    .await?;
    let ca_pkcs8 = key.open(tenant, &sealed)?;
    let ca_key = KeyPair::try_from(ca_pkcs8.as_slice()).map_err(pki("stored CA key"))?;
    let issuer = Issuer::from_ca_cert_der(&ca.certificate_der.as_slice().into(), ca_key)
        .map_err(pki("stored CA certificate"))?;

    let gateway_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(pki("gateway key"))?;
    let serial = random_serial()?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "WellPulse");
    dn.push(DnType::CommonName, format!("{tenant_slug}/{gateway_slug}"));
    params.distinguished_name = dn;
    let uri = Ia5String::try_from(gateway_uri(tenant_slug, gateway_slug))
        .map_err(|e| DbError::invalid("gateway id", e.to_string()))?;
    params.subject_alt_names = vec![SanType::URI(uri)];
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.use_authority_key_identifier_extension = true;
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    let now = Utc::now();
    let not_before = now - TimeDelta::hours(1);
    let not_after = now
        + TimeDelta::from_std(validity)
            .map_err(|e| DbError::invalid("certificate validity", e.to_string()))?;
    // Whole seconds, as X.509 stores them, so the recorded validity is the certificate's.
    let not_before = DateTime::from_timestamp(not_before.timestamp(), 0).unwrap_or(not_before);
    let not_after = DateTime::from_timestamp(not_after.timestamp(), 0).unwrap_or(not_after);
    params.not_before = offset_time(not_before)?;
    params.not_after = offset_time(not_after)?;
    let cert = params
        .signed_by(&gateway_key, &issuer)
        .map_err(pki("gateway certificate"))?;
    let serial = hex::encode(serial);
    sqlx::query(
        "INSERT INTO gateway_certificates
             (tenant_id, gateway_id, serial, certificate_der, not_before, not_after, issued_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(tenant)
    .bind(gateway)
    .bind(&serial)
    .bind(cert.der().as_ref())
    .bind(not_before)
    .bind(not_after)
    .bind(issued_by)
    .execute(&mut *conn)
    .await?;
    Ok(Some(IssuedCertificate {
        serial,
        certificate_pem: cert.pem(),
        private_key_pem: gateway_key.serialize_pem(),
        ca_pem: ca.certificate_pem,
        not_before,
        not_after,
    }))
}

/// A certificate as listed (never its key: that was shown once).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateRow {
    /// Serial, lower-case hex.
    pub serial: String,
    /// The gateway's id.
    pub gateway: String,
    /// Start of validity.
    pub not_before: DateTime<Utc>,
    /// End of validity.
    pub not_after: DateTime<Utc>,
    /// When it was issued.
    pub issued_at: DateTime<Utc>,
    /// Who issued it (the audit actor).
    pub issued_by: String,
    /// When it was revoked.
    pub revoked_at: Option<DateTime<Utc>>,
}

const CERTIFICATE_SELECT: &str = "
    SELECT c.serial, g.slug AS gateway, c.not_before, c.not_after, c.issued_at, c.issued_by,
           c.revoked_at
    FROM gateway_certificates c
    JOIN gateways g ON g.tenant_id = c.tenant_id AND g.id = c.gateway_id";

fn certificate_row(r: &PgRow) -> Result<CertificateRow, sqlx::Error> {
    Ok(CertificateRow {
        serial: r.try_get("serial")?,
        gateway: r.try_get("gateway")?,
        not_before: r.try_get("not_before")?,
        not_after: r.try_get("not_after")?,
        issued_at: r.try_get("issued_at")?,
        issued_by: r.try_get("issued_by")?,
        revoked_at: r.try_get("revoked_at")?,
    })
}

/// Every certificate issued to gateway `gateway_slug`, newest first; `None` if no such
/// gateway.
pub async fn list_gateway_certificates(
    conn: &mut PgConnection,
    tenant: TenantId,
    gateway_slug: &str,
) -> Result<Option<Vec<CertificateRow>>, DbError> {
    let exists: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM gateways WHERE tenant_id = $1 AND slug = $2)",
    )
    .bind(tenant)
    .bind(gateway_slug)
    .fetch_one(&mut *conn)
    .await?;
    if !exists {
        return Ok(None);
    }
    let rows = sqlx::query(&format!(
        "{CERTIFICATE_SELECT}
         WHERE c.tenant_id = $1 AND g.slug = $2
         ORDER BY c.issued_at DESC, c.serial"
    ))
    .bind(tenant)
    .bind(gateway_slug)
    .fetch_all(conn)
    .await?;
    collect(&rows, certificate_row).map(Some)
}

/// Revokes certificate `serial` of gateway `gateway_slug` (again: keeps the first time).
/// Returns it as before and after the change; `None` if the gateway has no such
/// certificate.
pub async fn revoke_gateway_certificate(
    conn: &mut PgConnection,
    tenant: TenantId,
    gateway_slug: &str,
    serial: &str,
) -> Result<Option<(CertificateRow, CertificateRow)>, DbError> {
    let before = sqlx::query(&format!(
        "{CERTIFICATE_SELECT}
         WHERE c.tenant_id = $1 AND g.slug = $2 AND c.serial = $3
         FOR UPDATE OF c"
    ))
    .bind(tenant)
    .bind(gateway_slug)
    .bind(serial)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(before) = before.as_ref().map(certificate_row).transpose()? else {
        return Ok(None);
    };
    let revoked_at: DateTime<Utc> = sqlx::query_scalar(
        "UPDATE gateway_certificates SET revoked_at = coalesce(revoked_at, now())
         WHERE tenant_id = $1 AND serial = $2 RETURNING revoked_at",
    )
    .bind(tenant)
    .bind(serial)
    .fetch_one(&mut *conn)
    .await?;
    let after = CertificateRow {
        revoked_at: Some(revoked_at),
        ..before.clone()
    };
    Ok(Some((before, after)))
}

/// What the broker learns about a presented certificate ([`Db::gateway_certificate_status`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertificateStatus {
    /// Issued to this gateway, not revoked, within its validity: check the chain against
    /// `ca_der` (the tenant's CA) and compare the presented certificate with
    /// `certificate_der` (the one issued).
    Valid {
        /// The tenant CA's certificate, DER.
        ca_der: Vec<u8>,
        /// The certificate issued under this serial, DER.
        certificate_der: Vec<u8>,
    },
    /// Issued to this gateway and revoked.
    Revoked,
    /// Issued to this gateway, outside its validity.
    Expired,
    /// No certificate with this serial was issued to this gateway.
    Unknown,
}

impl Db {
    /// Whether the certificate with `serial` (lower-case hex) may log gateway
    /// `gateway` of tenant `tenant` in now. Asked at every CONNECT presenting a
    /// certificate, so a revocation holds from the next login.
    pub async fn gateway_certificate_status(
        &self,
        tenant: &str,
        gateway: &str,
        serial: &str,
    ) -> Result<CertificateStatus, DbError> {
        let row = sqlx::query(
            "SELECT c.certificate_der, c.revoked_at IS NOT NULL AS revoked,
                    now() BETWEEN c.not_before AND c.not_after AS current,
                    a.certificate_der AS ca_der
             FROM gateway_certificates c
             JOIN gateways g ON g.tenant_id = c.tenant_id AND g.id = c.gateway_id
             JOIN tenants t ON t.id = c.tenant_id
             JOIN tenant_certificate_authorities a ON a.tenant_id = c.tenant_id
             WHERE t.slug = $1 AND g.slug = $2 AND c.serial = $3",
        )
        .bind(tenant)
        .bind(gateway)
        .bind(serial)
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else {
            return Ok(CertificateStatus::Unknown);
        };
        if row.try_get::<bool, _>("revoked")? {
            return Ok(CertificateStatus::Revoked);
        }
        if !row.try_get::<bool, _>("current")? {
            return Ok(CertificateStatus::Expired);
        }
        Ok(CertificateStatus::Valid {
            ca_der: row.try_get("ca_der")?,
            certificate_der: row.try_get("certificate_der")?,
        })
    }
}

/// Who a presented certificate names, read from its DER.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresentedIdentity {
    /// The subject's common name (`{tenant}/{gateway}` for certificates issued here).
    pub common_name: Option<String>,
    /// The URI subject alternative names.
    pub uris: Vec<String>,
    /// The serial, lower-case hex of its content bytes.
    pub serial: String,
}

impl PresentedIdentity {
    /// Reads a certificate; `None` when it does not parse.
    pub fn read(der: &[u8]) -> Option<PresentedIdentity> {
        let (rest, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        if !rest.is_empty() {
            return None;
        }
        let mut names = cert.subject().iter_common_name();
        let common_name = match (names.next(), names.next()) {
            (Some(cn), None) => Some(cn.as_str().ok()?.to_owned()),
            (None, _) => None,
            // Two common names: ambiguous, trusted for neither.
            (Some(_), Some(_)) => return None,
        };
        let uris = match cert.subject_alternative_name().ok()? {
            Some(san) => san
                .value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    x509_parser::extensions::GeneralName::URI(u) => Some((*u).to_owned()),
                    _ => None,
                })
                .collect(),
            None => Vec::new(),
        };
        Some(PresentedIdentity {
            common_name,
            uris,
            serial: hex::encode(cert.raw_serial()),
        })
    }

    /// Whether it names exactly gateway `{tenant}/{gateway}`: the common name is the
    /// username and every URI SAN is the gateway's URI (at least one).
    pub fn names(&self, tenant: &str, gateway: &str) -> bool {
        let uri = gateway_uri(tenant, gateway);
        self.common_name.as_deref() == Some(format!("{tenant}/{gateway}").as_str())
            && !self.uris.is_empty()
            && self.uris.iter().all(|u| *u == uri)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_keys_open_only_with_the_same_secret_and_tenant() {
        let key = CaKey::from_secret("0123456789abcdef0123456789abcdef").unwrap();
        let sealed = key.seal(TenantId(1), b"private key bytes").unwrap();
        assert_eq!(sealed[0], SEAL_VERSION);
        assert!(!sealed.windows(17).any(|w| w == b"private key bytes"));
        assert_eq!(
            key.open(TenantId(1), &sealed).unwrap(),
            b"private key bytes"
        );
        // Another tenant's row, another secret, a flipped bit: refused.
        assert!(matches!(
            key.open(TenantId(2), &sealed),
            Err(DbError::CaKey(_))
        ));
        let other = CaKey::from_secret("another-secret-of-32-characters!!").unwrap();
        assert!(other.open(TenantId(1), &sealed).is_err());
        let mut flipped = sealed.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert!(key.open(TenantId(1), &flipped).is_err());
        assert!(key.open(TenantId(1), &sealed[..5]).is_err());
        // Two seals of the same key differ (random nonces).
        assert_ne!(sealed, key.seal(TenantId(1), b"private key bytes").unwrap());
        assert!(CaKey::from_secret("short").is_err());
        assert_eq!(format!("{key:?}"), "CaKey(***)");
    }

    #[test]
    fn serials_are_positive_without_a_leading_zero() {
        for _ in 0..200 {
            let s = random_serial().unwrap();
            assert!((1..=0x7f).contains(&s[0]), "{s:?}");
        }
    }
}
