//! Gateway client certificates through the API: issued with the key shown once (never
//! stored or audited), listed, revoked (audited before and after, every broker asked to
//! kick the gateway), 4xx on bad input, another tenant's gateway 404, and a clear 503
//! when the server has no `[tenancy] ca_key`.

use std::path::Path;
use std::time::Duration;

use store::identity::Role;
use testkit::api::{Setup, TestApi, seed};
use testkit::auth;

fn options(ca_key: Option<&str>) -> api::ApiOptions {
    api::ApiOptions {
        ca_key: ca_key.map(base::Secret::new),
        gateway_certificate_validity: Duration::from_secs(90 * 86_400),
        ..api::ApiOptions::default()
    }
}

fn der_of(pem: &str) -> Vec<u8> {
    x509_parser::pem::parse_x509_pem(pem.as_bytes())
        .unwrap()
        .1
        .contents
}

#[tokio::test]
async fn certificates_are_issued_once_listed_and_revoked_with_a_kick() {
    let api = TestApi::with(
        "api_gw_certs",
        Setup {
            options: options(Some(testkit::mtls::CA_KEY)),
            ..Setup::default()
        },
    )
    .await;
    let fleet = seed(&api.db, 5, 30).await;
    let admin = auth::member_token(&api.db, fleet.acme, Role::TenantAdmin).await;
    let base = "/api/v1/tenants/acme/gateways/gw-01/certificates";

    let r = api.request_as(&admin, "POST", base, None).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let issued = r.json();
    let serial = issued["serial"].as_str().unwrap().to_owned();
    let key_pem = issued["private_key_pem"].as_str().unwrap().to_owned();
    let cert_pem = issued["certificate_pem"].as_str().unwrap();
    assert!(key_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
    assert!(cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
    assert!(
        issued["ca_pem"]
            .as_str()
            .unwrap()
            .starts_with("-----BEGIN CERTIFICATE-----")
    );
    let identity = store::certificates::PresentedIdentity::read(&der_of(cert_pem)).unwrap();
    assert!(identity.names("acme", "gw-01"));
    assert_eq!(identity.serial, serial);
    let not_before: chrono::DateTime<chrono::Utc> =
        issued["not_before"].as_str().unwrap().parse().unwrap();
    let not_after: chrono::DateTime<chrono::Utc> =
        issued["not_after"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        not_after - not_before,
        chrono::TimeDelta::days(90) + chrono::TimeDelta::hours(1),
        "the configured validity (from an hour back)"
    );
    // The [mqtt.tls] lines slot into the issued agent.toml and the agent accepts them.
    let tls = issued["agent_toml_tls"].as_str().unwrap();
    let agent_toml = format!(
        "[gateway]\ntenant = \"acme\"\nid = \"gw-01\"\ndata_dir = \"/tmp\"\n\n\
         [mqtt]\nurl = \"mqtts://mqtt.wellpulse.test:8883\"\npassword = \"{}\"\n\n{tls}\n\
         [[device]]\nname = \"d\"\nprofile = \"rod-pump-controller\"\ntcp = \"10.0.0.1:502\"\npoll = {{ fast = \"1s\", slow = \"60s\" }}\n",
        "a".repeat(64)
    );
    let config = agent::config::Config::from_bytes(
        Path::new("agent.toml"),
        Path::new("/tmp"),
        agent_toml.as_bytes(),
    )
    .unwrap_or_else(|e| panic!("{e}\n{agent_toml}"));
    let tls = config.mqtt.tls.expect("[mqtt.tls]");
    assert_eq!(
        tls.client_cert.as_deref(),
        Some(Path::new("/etc/wellpulse/gw-01.crt"))
    );
    assert_eq!(
        tls.client_key.as_deref(),
        Some(Path::new("/etc/wellpulse/gw-01.key"))
    );

    // A second one; the list shows both, newest first, never a key.
    let second = api.request_as(&admin, "POST", base, None).await;
    assert_eq!(second.status, 201);
    let second_serial = second.json()["serial"].as_str().unwrap().to_owned();
    let list = api.request_as(&admin, "GET", base, None).await;
    assert_eq!(list.status, 200, "{}", list.text());
    let listed = list.json();
    assert_eq!(listed["gateway"], "gw-01");
    let certs = listed["certificates"].as_array().unwrap();
    assert_eq!(certs.len(), 2);
    assert_eq!(certs[0]["serial"], second_serial.as_str());
    assert_eq!(certs[1]["serial"], serial.as_str());
    assert!(
        certs
            .iter()
            .all(|c| c["valid"] == true && c["revoked_at"].is_null())
    );
    assert!(!list.text().contains("PRIVATE KEY"));

    // Revocation: the certificate is refused at login, and every broker is asked to kick.
    let mut kicks = api.db.broker_kicks().await.unwrap();
    let r = api
        .request_as(&admin, "POST", &format!("{base}/{serial}/revoke"), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.json()["revoked_at"].is_string());
    assert_eq!(r.json()["valid"], false);
    let kicked = tokio::time::timeout(Duration::from_secs(30), kicks.recv())
        .await
        .expect("a kick request")
        .unwrap();
    assert_eq!(kicked, "acme/gw-01");
    assert_eq!(
        api.db
            .gateway_certificate_status("acme", "gw-01", &serial)
            .await
            .unwrap(),
        store::certificates::CertificateStatus::Revoked
    );
    let list = api.request_as(&admin, "GET", base, None).await.json();
    assert_eq!(list["certificates"][1]["valid"], false);
    assert_eq!(list["certificates"][0]["valid"], true);

    // Audited: issue twice, revoke once with before and after; no key in the log.
    let log = api
        .request_as(&admin, "GET", "/api/v1/tenants/acme/audit", None)
        .await;
    assert_eq!(log.status, 200);
    let items = log.json()["items"].as_array().unwrap().clone();
    let actions: Vec<&str> = items
        .iter()
        .map(|i| i["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions[..3],
        [
            "gateway.revoke_certificate",
            "gateway.issue_certificate",
            "gateway.issue_certificate"
        ]
    );
    assert_eq!(items[0]["target"], "gateway:gw-01");
    assert!(items[0]["before"]["revoked_at"].is_null());
    assert!(items[0]["after"]["revoked_at"].is_string());
    assert_eq!(items[2]["after"]["serial"], serial.as_str());
    assert!(!log.text().contains("PRIVATE KEY"));
    assert!(!log.text().contains(&key_pem[40..80]));

    // Bad input and unknown things.
    for (method, path, status) in [
        ("POST", format!("{base}/{}/revoke", "XYZ"), 400),
        ("POST", format!("{base}/{}/revoke", "0".repeat(31)), 400),
        ("POST", format!("{base}/{}/revoke", "0".repeat(32)), 404),
        (
            "POST",
            "/api/v1/tenants/acme/gateways/Bad%20Id/certificates".to_owned(),
            400,
        ),
        (
            "POST",
            "/api/v1/tenants/acme/gateways/gw-99/certificates".to_owned(),
            404,
        ),
        (
            "GET",
            "/api/v1/tenants/acme/gateways/gw-99/certificates".to_owned(),
            404,
        ),
        // acme's serial under acme's other gateway.
        (
            "POST",
            format!("/api/v1/tenants/acme/gateways/gw-02/certificates/{second_serial}/revoke"),
            404,
        ),
    ] {
        let r = api.request_as(&admin, method, &path, None).await;
        assert_eq!(r.status, status, "{method} {path}: {}", r.text());
    }

    // Another tenant: its admin gets 404 for acme's gateway; its own gw-01 has its own CA
    // and none of acme's certificates.
    let other_admin = auth::member_token(&api.db, fleet.other, Role::TenantAdmin).await;
    let r = api.request_as(&other_admin, "GET", base, None).await;
    assert_eq!(r.status, 404);
    let r = api
        .request_as(
            &other_admin,
            "POST",
            &format!("{base}/{second_serial}/revoke"),
            None,
        )
        .await;
    assert_eq!(r.status, 404);
    let theirs = "/api/v1/tenants/other/gateways/gw-01/certificates";
    let listed = api
        .request_as(&other_admin, "GET", theirs, None)
        .await
        .json();
    assert_eq!(listed["certificates"].as_array().unwrap().len(), 0);
    let r = api
        .request_as(
            &other_admin,
            "POST",
            &format!("{theirs}/{second_serial}/revoke"),
            None,
        )
        .await;
    assert_eq!(r.status, 404, "acme's serial is not theirs");
    let r = api.request_as(&other_admin, "POST", theirs, None).await;
    assert_eq!(r.status, 201);
    assert_ne!(r.json()["ca_pem"], issued["ca_pem"], "a CA per tenant");
    // Still valid at acme: the other tenant's revocation attempt changed nothing.
    assert!(matches!(
        api.db
            .gateway_certificate_status("acme", "gw-01", &second_serial)
            .await
            .unwrap(),
        store::certificates::CertificateStatus::Valid { .. }
    ));
    drop(kicks);
    api.finish().await;
}

#[tokio::test]
async fn without_a_ca_key_nothing_is_issued_and_the_answer_says_why() {
    let api = TestApi::with(
        "api_gw_certs_off",
        Setup {
            options: options(None),
            ..Setup::default()
        },
    )
    .await;
    let fleet = seed(&api.db, 5, 30).await;
    let admin = auth::member_token(&api.db, fleet.acme, Role::TenantAdmin).await;
    let base = "/api/v1/tenants/acme/gateways/gw-01/certificates";
    let r = api.request_as(&admin, "POST", base, None).await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.error_code(), "certificates_unavailable");
    assert!(
        r.error_message().contains("ca_key"),
        "{}",
        r.error_message()
    );
    let made: i64 = sqlx::query_scalar("SELECT count(*) FROM tenant_certificate_authorities")
        .fetch_one(api.db.pool())
        .await
        .unwrap();
    assert_eq!(made, 0);
    // Listing still works (nothing issued).
    let r = api.request_as(&admin, "GET", base, None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["certificates"].as_array().unwrap().len(), 0);
    api.finish().await;
}
