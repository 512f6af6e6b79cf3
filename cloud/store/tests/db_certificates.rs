//! Gateway client certificates against PostgreSQL: one CA per tenant made on first use,
//! its key sealed (never in clear), certificates issued, listed and revoked, the broker's
//! question at login, and tenant isolation by row-level security.

use std::time::Duration;

use store::DbError;
use store::certificates::{self, CaKey, CertificateStatus, PresentedIdentity};
use testkit::db::{TestDb, fixture};

const SECRET: &str = "test-ca-key-0123456789abcdef0123456789";

fn key() -> CaKey {
    CaKey::from_secret(SECRET).unwrap()
}

/// The DER inside a PEM block.
fn der_of(pem: &str) -> Vec<u8> {
    x509_parser::pem::parse_x509_pem(pem.as_bytes())
        .unwrap()
        .1
        .contents
}

#[tokio::test]
async fn a_tenant_ca_is_made_once_and_its_key_is_sealed() {
    let test = TestDb::plain("cert_ca").await;
    let db = &test.db;
    let a = fixture(db, "acme").await;
    let mut tx = db.begin_tenant(a.tenant).await.unwrap();
    let first = certificates::tenant_ca(&mut tx, a.tenant, "acme", &key())
        .await
        .unwrap();
    let again = certificates::tenant_ca(&mut tx, a.tenant, "acme", &key())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(first, again, "made once, then read");
    assert!(
        first
            .certificate_pem
            .starts_with("-----BEGIN CERTIFICATE-----")
    );
    let ca = PresentedIdentity::read(&first.certificate_der).unwrap();
    assert_eq!(ca.common_name.as_deref(), Some("WellPulse gateway CA acme"));

    // Issue once so the key is opened and used; then look at what the table holds.
    let mut tx = db.begin_tenant(a.tenant).await.unwrap();
    let issued = certificates::issue_gateway_certificate(
        &mut tx,
        a.tenant,
        "acme",
        "gw-01",
        Duration::from_secs(30 * 86_400),
        &key(),
        "test",
    )
    .await
    .unwrap()
    .expect("gateway exists");
    tx.commit().await.unwrap();
    let (rows, sealed): (i64, Vec<u8>) =
        sqlx::query_as("SELECT count(*) OVER (), key_sealed FROM tenant_certificate_authorities")
            .fetch_one(db.pool())
            .await
            .unwrap();
    assert_eq!(rows, 1);
    // The CA key in clear is a PKCS#8 document: no window of the table's bytes is one,
    // and the issued key's bytes are not stored anywhere either.
    let dump: Vec<u8> = sqlx::query_scalar(
        "SELECT convert_to(string_agg(t::text, ''), 'UTF8') FROM
            (SELECT * FROM tenant_certificate_authorities) t",
    )
    .fetch_one(db.pool())
    .await
    .unwrap();
    let pkcs8_ec_oid = [0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
    assert!(
        !sealed
            .windows(pkcs8_ec_oid.len())
            .any(|w| w == pkcs8_ec_oid)
    );
    assert!(!String::from_utf8_lossy(&dump).contains("PRIVATE KEY"));
    // The private scalar of the gateway's key (ECPrivateKey: version 1, OCTET STRING of 32).
    let pkcs8 = der_of(&issued.private_key_pem);
    let at = pkcs8
        .windows(5)
        .position(|w| w == [0x02, 0x01, 0x01, 0x04, 0x20])
        .expect("an EC private key")
        + 5;
    let scalar = &pkcs8[at..at + 32];
    let certs: Vec<u8> = sqlx::query_scalar(
        "SELECT string_agg(certificate_der, ''::bytea) FROM gateway_certificates",
    )
    .fetch_one(db.pool())
    .await
    .unwrap();
    assert!(!certs.windows(32).any(|w| w == scalar));
    assert!(!dump.windows(32).any(|w| w == scalar));

    // Another server secret cannot open it: a clear error, no certificate.
    let other = CaKey::from_secret("another-server-secret-0123456789abcdef").unwrap();
    let mut tx = db.begin_tenant(a.tenant).await.unwrap();
    let err = certificates::issue_gateway_certificate(
        &mut tx,
        a.tenant,
        "acme",
        "gw-01",
        Duration::from_secs(86_400),
        &other,
        "test",
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, DbError::CaKey(ref m) if m.contains("ca_key")),
        "{err}"
    );
    drop(tx);
    test.finish().await;
}

#[tokio::test]
async fn certificates_are_issued_listed_revoked_and_checked_at_login() {
    let test = TestDb::plain("cert_issue").await;
    let db = &test.db;
    let a = fixture(db, "acme").await;
    let issue = |gateway: &'static str, days: u64| {
        let db = db.clone();
        let tenant = a.tenant;
        async move {
            let mut tx = db.begin_tenant(tenant).await.unwrap();
            let out = certificates::issue_gateway_certificate(
                &mut tx,
                tenant,
                "acme",
                gateway,
                Duration::from_secs(days * 86_400),
                &key(),
                "user:1 ana@example.com",
            )
            .await;
            tx.commit().await.unwrap();
            out
        }
    };
    let one = issue("gw-01", 397).await.unwrap().unwrap();
    let two = issue("gw-01", 10).await.unwrap().unwrap();
    assert_ne!(one.serial, two.serial);
    assert_eq!(one.serial.len(), 32);
    assert!(
        one.private_key_pem
            .starts_with("-----BEGIN PRIVATE KEY-----")
    );
    assert_eq!(
        one.not_after - one.not_before,
        chrono::TimeDelta::days(397) + chrono::TimeDelta::hours(1)
    );
    // Unknown gateway, absurd validity.
    assert!(issue("gw-nope", 10).await.unwrap().is_none());
    assert!(matches!(
        issue("gw-01", 5000).await,
        Err(DbError::Invalid { .. })
    ));

    // The certificate names the gateway, carries the recorded serial, chains to the CA.
    let der = der_of(&one.certificate_pem);
    let id = PresentedIdentity::read(&der).unwrap();
    assert_eq!(id.common_name.as_deref(), Some("acme/gw-01"));
    assert_eq!(id.uris, vec!["urn:wellpulse:gateway:acme/gw-01".to_owned()]);
    assert_eq!(id.serial, one.serial);
    assert!(id.names("acme", "gw-01"));
    assert!(!id.names("acme", "gw-02"));
    assert!(!id.names("globex", "gw-01"));

    let mut tx = db.begin_tenant(a.tenant).await.unwrap();
    let listed = certificates::list_gateway_certificates(&mut tx, a.tenant, "gw-01")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].serial, two.serial, "newest first");
    assert!(
        listed
            .iter()
            .all(|c| c.revoked_at.is_none() && c.gateway == "gw-01")
    );
    assert_eq!(listed[1].issued_by, "user:1 ana@example.com");
    assert!(
        certificates::list_gateway_certificates(&mut tx, a.tenant, "gw-nope")
            .await
            .unwrap()
            .is_none()
    );
    drop(tx);

    // The broker's question.
    let ca_der = der_of(&one.ca_pem);
    assert_eq!(
        db.gateway_certificate_status("acme", "gw-01", &one.serial)
            .await
            .unwrap(),
        CertificateStatus::Valid {
            ca_der: ca_der.clone(),
            certificate_der: der.clone()
        }
    );
    for (tenant, gateway, serial) in [
        ("acme", "gw-02", one.serial.as_str()),
        ("globex", "gw-01", one.serial.as_str()),
        ("acme", "gw-01", "00000000000000000000000000000001"),
    ] {
        assert_eq!(
            db.gateway_certificate_status(tenant, gateway, serial)
                .await
                .unwrap(),
            CertificateStatus::Unknown,
            "{tenant}/{gateway} {serial}"
        );
    }

    // Revocation: once, idempotent, unknown serial is None; login answers Revoked.
    let mut tx = db.begin_tenant(a.tenant).await.unwrap();
    let (before, after) =
        certificates::revoke_gateway_certificate(&mut tx, a.tenant, "gw-01", &one.serial)
            .await
            .unwrap()
            .unwrap();
    assert!(before.revoked_at.is_none());
    let revoked_at = after.revoked_at.unwrap();
    let (_, again) =
        certificates::revoke_gateway_certificate(&mut tx, a.tenant, "gw-01", &one.serial)
            .await
            .unwrap()
            .unwrap();
    assert_eq!(again.revoked_at, Some(revoked_at));
    assert!(
        certificates::revoke_gateway_certificate(&mut tx, a.tenant, "gw-01", "ab")
            .await
            .unwrap()
            .is_none()
    );
    tx.commit().await.unwrap();
    assert_eq!(
        db.gateway_certificate_status("acme", "gw-01", &one.serial)
            .await
            .unwrap(),
        CertificateStatus::Revoked
    );
    assert!(matches!(
        db.gateway_certificate_status("acme", "gw-01", &two.serial)
            .await
            .unwrap(),
        CertificateStatus::Valid { .. }
    ));

    // Out of its validity: expired.
    sqlx::query("UPDATE gateway_certificates SET not_after = now() - interval '1 s', not_before = now() - interval '2 days' WHERE serial = $1")
        .bind(&two.serial)
        .execute(db.pool())
        .await
        .unwrap();
    assert_eq!(
        db.gateway_certificate_status("acme", "gw-01", &two.serial)
            .await
            .unwrap(),
        CertificateStatus::Expired
    );
    test.finish().await;
}

#[tokio::test]
async fn tenants_see_only_their_own_ca_and_certificates() {
    let test = TestDb::plain("cert_rls").await;
    let db = &test.db;
    let a = fixture(db, "acme").await;
    let b = fixture(db, "bravo").await;
    let mut serials = Vec::new();
    for (tenant, slug) in [(a.tenant, "acme"), (b.tenant, "bravo")] {
        let mut tx = db.begin_tenant(tenant).await.unwrap();
        let issued = certificates::issue_gateway_certificate(
            &mut tx,
            tenant,
            slug,
            "gw-01",
            Duration::from_secs(86_400),
            &key(),
            "test",
        )
        .await
        .unwrap()
        .unwrap();
        tx.commit().await.unwrap();
        serials.push(issued.serial);
    }
    // Two CAs, distinct.
    let cas: Vec<String> =
        sqlx::query_scalar("SELECT certificate_pem FROM tenant_certificate_authorities")
            .fetch_all(db.pool())
            .await
            .unwrap();
    assert_eq!(cas.len(), 2);
    assert_ne!(cas[0], cas[1]);

    // Tenant A's transaction with queries that forget the tenant filter.
    let mut tx = db.begin_tenant(a.tenant).await.unwrap();
    for sql in [
        "SELECT count(*) FROM tenant_certificate_authorities",
        "SELECT count(*) FROM gateway_certificates",
    ] {
        let n: i64 = sqlx::query_scalar(sql).fetch_one(&mut *tx).await.unwrap();
        assert_eq!(n, 1, "{sql}");
    }
    let changed = sqlx::query("UPDATE gateway_certificates SET revoked_at = now()")
        .execute(&mut *tx)
        .await
        .unwrap()
        .rows_affected();
    assert_eq!(changed, 1, "only A's own certificate");
    // B's serial through A's scope: not found.
    assert!(
        certificates::revoke_gateway_certificate(&mut tx, b.tenant, "gw-01", &serials[1])
            .await
            .unwrap()
            .is_none()
    );
    drop(tx);
    assert!(matches!(
        db.gateway_certificate_status("bravo", "gw-01", &serials[1])
            .await
            .unwrap(),
        CertificateStatus::Valid { .. }
    ));
    test.finish().await;
}

#[tokio::test]
async fn a_purged_tenant_loses_its_ca_and_certificates_and_others_keep_theirs() {
    let test = TestDb::plain("cert_purge").await;
    let db = &test.db;
    let a = fixture(db, "acme").await;
    let b = fixture(db, "bravo").await;
    for (tenant, slug) in [(a.tenant, "acme"), (b.tenant, "bravo")] {
        let mut tx = db.begin_tenant(tenant).await.unwrap();
        certificates::issue_gateway_certificate(
            &mut tx,
            tenant,
            slug,
            "gw-01",
            Duration::from_secs(86_400),
            &key(),
            "test",
        )
        .await
        .unwrap()
        .unwrap();
        tx.commit().await.unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let manifest =
        store::lifecycle::export_tenant(db, a.tenant, "acme", dir.path(), chrono::Utc::now())
            .await
            .unwrap();
    let exported = |file: &str| {
        manifest
            .files
            .iter()
            .find(|f| f.file == file)
            .unwrap_or_else(|| panic!("{file} exported"))
            .rows
    };
    assert_eq!(exported("gateway_certificates.csv"), 1);
    assert_eq!(exported("tenant_certificate_authorities.csv"), 1);
    store::lifecycle::purge_tenant(db, a.tenant, "acme", &manifest.dir)
        .await
        .unwrap();
    for (table, expected) in [
        ("tenant_certificate_authorities", 1i64),
        ("gateway_certificates", 1),
    ] {
        let left: Vec<i64> = sqlx::query_scalar(&format!("SELECT tenant_id FROM {table}"))
            .fetch_all(db.pool())
            .await
            .unwrap();
        assert_eq!(left.len() as i64, expected, "{table}");
        assert_eq!(left[0], b.tenant.0, "{table}: only bravo's row is left");
    }
    test.finish().await;
}
