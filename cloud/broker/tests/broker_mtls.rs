//! Optional mutual TLS at the front listener, with real TLS clients (rumqttc over rustls)
//! presenting certificates the store issued: a gateway logs in with its own valid
//! certificate (and its password); without one a `required` listener refuses it; another
//! gateway's certificate, another tenant's, or a forged one with the right name and serial
//! is refused; a revoked certificate is refused at the next login and its live session
//! is kicked. Refusals carry the protocol's code: 3.1.1 0x05 / MQTT 5 0x87 for the
//! certificate, 0x04 / 0x86 for the password.

use std::time::Duration;

use broker::ClientCertificates;
use rumqttc::{TlsConfiguration, Transport};
use store::certificates::IssuedCertificate;
use testkit::mqtt::{DEADLINE, TestDb, init_tracing};
use testkit::mtls::{MtlsBroker, client_tls, issue_certificate};

type V5Code = rumqttc::v5::mqttbytes::v5::ConnectReturnCode;

const A: (&str, &str) = ("acme", "gw-a");
const B: (&str, &str) = ("acme", "gw-b");
const C: (&str, &str) = ("globex", "gw-c");

fn secret((tenant, gateway): (&str, &str)) -> String {
    format!("secret-of-{tenant}-{gateway}-0123456789")
}

/// A client certificate to present: (certificate PEM, key PEM).
type Presented<'a> = Option<(&'a str, &'a str)>;

fn pair(c: &IssuedCertificate) -> Presented<'_> {
    Some((c.certificate_pem.as_str(), c.private_key_pem.as_str()))
}

/// The CONNACK code of an MQTT 3.1.1 login as `who` (0: accepted); `None` when the TLS
/// handshake or the connection failed before a CONNACK.
async fn v4_code(
    broker: &MtlsBroker,
    who: (&str, &str),
    password: &str,
    cert: Presented<'_>,
) -> Option<u8> {
    let mut options = rumqttc::MqttOptions::new(
        broker::gateway_client_id(who.0, who.1),
        "localhost",
        broker.tls4.port(),
    );
    options.set_credentials(format!("{}/{}", who.0, who.1), password);
    options.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
        client_tls(&broker.ca, cert),
    )));
    let (_client, mut eventloop) = rumqttc::AsyncClient::new(options, 10);
    tokio::time::timeout(DEADLINE, async {
        loop {
            match eventloop.poll().await {
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(ack))) => {
                    return Some(ack.code as u8);
                }
                Ok(_) => {}
                Err(rumqttc::ConnectionError::ConnectionRefused(code)) => return Some(code as u8),
                Err(_) => return None,
            }
        }
    })
    .await
    .expect("CONNECT outcome within the deadline")
}

/// The CONNACK code of an MQTT 5 login as `who`; `None` before a CONNACK.
async fn v5_code(
    broker: &MtlsBroker,
    who: (&str, &str),
    password: &str,
    cert: Presented<'_>,
) -> Option<V5Code> {
    let mut options = rumqttc::v5::MqttOptions::new(
        broker::gateway_client_id(who.0, who.1),
        "localhost",
        broker.tls5.port(),
    );
    options.set_credentials(format!("{}/{}", who.0, who.1), password);
    options.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
        client_tls(&broker.ca, cert),
    )));
    let (_client, mut eventloop) = rumqttc::v5::AsyncClient::new(options, 10);
    tokio::time::timeout(DEADLINE, async {
        loop {
            match eventloop.poll().await {
                Ok(rumqttc::v5::Event::Incoming(rumqttc::v5::Incoming::ConnAck(ack))) => {
                    return Some(ack.code);
                }
                Ok(_) => {}
                Err(rumqttc::v5::ConnectionError::ConnectionRefused(code)) => return Some(code),
                Err(_) => return None,
            }
        }
    })
    .await
    .expect("CONNECT outcome within the deadline")
}

struct Setup {
    db: TestDb,
    broker: MtlsBroker,
    a: IssuedCertificate,
    b: IssuedCertificate,
    c: IssuedCertificate,
    _dir: tempfile::TempDir,
}

async fn setup(prefix: &str, mode: ClientCertificates) -> Setup {
    init_tracing();
    let db = TestDb::new(prefix).await;
    for (t, g) in [A, B, C] {
        assert_eq!(db.provision_in(t, g).await, secret((t, g)));
    }
    let a = issue_certificate(&db.db, A.0, A.1).await;
    let b = issue_certificate(&db.db, B.0, B.1).await;
    let c = issue_certificate(&db.db, C.0, C.1).await;
    let dir = tempfile::tempdir().unwrap();
    let broker = MtlsBroker::start(&db.db, dir.path(), mode).await;
    Setup {
        db,
        broker,
        a,
        b,
        c,
        _dir: dir,
    }
}

/// A certificate made outside WellPulse that copies A's name, URI and serial, signed by
/// a CA of its own: it parses and names A, but is not what A's tenant CA issued.
fn forged_like(real: &IssuedCertificate) -> (String, String) {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, SanType, SerialNumber,
    };
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::default();
    ca.distinguished_name
        .push(DnType::OrganizationName, "WellPulse");
    ca.distinguished_name
        .push(DnType::CommonName, "WellPulse gateway CA acme");
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let mut leaf = CertificateParams::default();
    leaf.distinguished_name
        .push(DnType::OrganizationName, "WellPulse");
    leaf.distinguished_name
        .push(DnType::CommonName, "acme/gw-a");
    leaf.subject_alt_names = vec![SanType::URI(
        "urn:wellpulse:gateway:acme/gw-a".try_into().unwrap(),
    )];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    leaf.serial_number = Some(SerialNumber::from_slice(&hex_bytes(&real.serial)));
    let cert = leaf.signed_by(&key, &issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

fn hex_bytes(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn required_client_certificates_admit_only_the_gateways_own() {
    let s = setup("brk_mtls_req", ClientCertificates::Required).await;
    let (pa, forged) = (secret(A), forged_like(&s.a));
    let forged = Some((forged.0.as_str(), forged.1.as_str()));
    // Its own certificate and password: in, on both protocols.
    assert_eq!(v4_code(&s.broker, A, &pa, pair(&s.a)).await, Some(0));
    assert_eq!(
        v5_code(&s.broker, A, &pa, pair(&s.a)).await,
        Some(V5Code::Success)
    );
    // (what, certificate presented with A's login, 3.1.1 code, MQTT 5 code)
    let cases: [(&str, Presented<'_>, u8, V5Code); 4] = [
        ("no certificate", None, 0x05, V5Code::NotAuthorized),
        (
            "another gateway's certificate",
            pair(&s.b),
            0x05,
            V5Code::NotAuthorized,
        ),
        (
            "another tenant's CA",
            pair(&s.c),
            0x05,
            V5Code::NotAuthorized,
        ),
        (
            "forged with A's name and serial",
            forged,
            0x05,
            V5Code::NotAuthorized,
        ),
    ];
    for (what, cert, v4, v5) in cases {
        assert_eq!(v4_code(&s.broker, A, &pa, cert).await, Some(v4), "{what}");
        assert_eq!(v5_code(&s.broker, A, &pa, cert).await, Some(v5), "{what}");
    }
    // The password is still required with a valid certificate.
    assert_eq!(
        v4_code(&s.broker, A, "wrong-secret-wrong-secret", pair(&s.a)).await,
        Some(0x04)
    );
    assert_eq!(
        v5_code(&s.broker, A, "wrong-secret-wrong-secret", pair(&s.a)).await,
        Some(V5Code::BadUserNamePassword)
    );
    // The other gateways with their own certificates: in.
    assert_eq!(v4_code(&s.broker, B, &secret(B), pair(&s.b)).await, Some(0));
    assert_eq!(v4_code(&s.broker, C, &secret(C), pair(&s.c)).await, Some(0));
    let refused = s.broker.broker.metrics().login_count("certificate");
    assert_eq!(refused, 8, "every certificate refusal counted");
    s.db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn optional_client_certificates_are_checked_when_presented() {
    let s = setup("brk_mtls_opt", ClientCertificates::Optional).await;
    let pa = secret(A);
    assert_eq!(v4_code(&s.broker, A, &pa, None).await, Some(0));
    assert_eq!(v4_code(&s.broker, A, &pa, pair(&s.a)).await, Some(0));
    assert_eq!(v4_code(&s.broker, A, &pa, pair(&s.b)).await, Some(0x05));
    assert_eq!(
        v5_code(&s.broker, A, &pa, pair(&s.c)).await,
        Some(V5Code::NotAuthorized)
    );
    assert_eq!(
        v5_code(&s.broker, A, &pa, None).await,
        Some(V5Code::Success)
    );
    s.db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_certificate_is_kicked_and_refused_at_the_next_login() {
    let s = setup("brk_mtls_revoke", ClientCertificates::Required).await;
    let mut kicks = broker::spawn_kick_listener(s.db.db.clone(), s.broker.broker.kicker().clone());
    kicks.ready().await;
    let pa = secret(A);

    // A live session of A, and one of B that must survive.
    let live = |who: (&'static str, &'static str), cert: &IssuedCertificate| {
        let mut options = rumqttc::MqttOptions::new(
            broker::gateway_client_id(who.0, who.1),
            "localhost",
            s.broker.tls4.port(),
        );
        options.set_credentials(format!("{}/{}", who.0, who.1), secret(who));
        options.set_keep_alive(Duration::from_secs(30));
        options.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
            client_tls(&s.broker.ca, pair(cert)),
        )));
        let (client, mut eventloop) = rumqttc::AsyncClient::new(options, 10);
        let (tx, rx) = tokio::sync::watch::channel(Status::Connecting);
        let task = tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(_))) => {
                        let _ = tx.send(Status::Connected);
                    }
                    Ok(_) => {}
                    Err(_) => {
                        let _ = tx.send(Status::Lost);
                        return;
                    }
                }
            }
        });
        (client, rx, task)
    };
    let (_ca, mut a_status, _ta) = live(A, &s.a);
    let (_cb, mut b_status, _tb) = live(B, &s.b);
    for status in [&mut a_status, &mut b_status] {
        tokio::time::timeout(DEADLINE, status.wait_for(|s| *s == Status::Connected))
            .await
            .expect("connected")
            .unwrap();
    }
    let kicker = s.broker.broker.kicker();
    assert_eq!(kicker.connected(A.0, A.1), 1);

    // Revoke A's certificate as the API does: commit, then ask every broker to kick.
    let tenant: i64 = sqlx::query_scalar("SELECT id FROM tenants WHERE slug = 'acme'")
        .fetch_one(s.db.db.pool())
        .await
        .unwrap();
    let mut tx = s.db.db.begin_tenant(store::TenantId(tenant)).await.unwrap();
    store::certificates::revoke_gateway_certificate(
        &mut tx,
        store::TenantId(tenant),
        A.1,
        &s.a.serial,
    )
    .await
    .unwrap()
    .expect("certificate exists");
    tx.commit().await.unwrap();
    s.db.db.notify_broker_kick("acme/gw-a").await.unwrap();

    tokio::time::timeout(DEADLINE, a_status.wait_for(|s| *s == Status::Lost))
        .await
        .expect("A's session kicked")
        .unwrap();
    assert_eq!(kicker.connected(A.0, A.1), 0);
    // The revoked certificate no longer logs in; B's session is untouched.
    assert_eq!(v4_code(&s.broker, A, &pa, pair(&s.a)).await, Some(0x05));
    assert_eq!(
        v5_code(&s.broker, A, &pa, pair(&s.a)).await,
        Some(V5Code::NotAuthorized)
    );
    assert_eq!(*b_status.borrow(), Status::Connected);
    assert_eq!(kicker.connected(B.0, B.1), 1);
    // A new certificate for A works.
    let renewed = issue_certificate(&s.db.db, A.0, A.1).await;
    assert_eq!(v4_code(&s.broker, A, &pa, pair(&renewed)).await, Some(0));
    drop(kicks);
    s.db.finish().await;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Connecting,
    Connected,
    Lost,
}
