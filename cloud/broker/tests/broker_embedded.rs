//! The embedded rumqttd: database-backed gateway authentication with client-id binding,
//! the ingester's own credentials, and a TLS listener.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use base::Secret;
use broker::{BrokerAuth, EmbeddedBroker};
use ingest::MqttTls;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, TlsConfiguration, Transport};
use testkit::mqtt::*;

/// (what, client id, username/password, accepted?)
type AuthCase<'a> = (&'a str, &'a str, Option<(&'a str, &'a str)>, bool);

/// Whether an MQTT 3.1.1 CONNECT with these credentials is accepted.
async fn connects(
    addr: SocketAddr,
    client_id: &str,
    login: Option<(&str, &str)>,
    tls: Option<&Path>,
) -> bool {
    let mut options = MqttOptions::new(client_id, "localhost", addr.port());
    options.set_keep_alive(Duration::from_secs(30));
    if let Some((user, password)) = login {
        options.set_credentials(user, password);
    }
    if let Some(ca) = tls {
        options.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
            Arc::new(client_tls(ca)),
        )));
    }
    let (_client, mut eventloop) = AsyncClient::new(options, 10);
    let outcome = tokio::time::timeout(DEADLINE, async {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                    return ack.code == rumqttc::ConnectReturnCode::Success;
                }
                Ok(_) => {}
                Err(_) => return false,
            }
        }
    })
    .await;
    outcome.expect("CONNECT outcome within the deadline")
}

fn client_tls(ca: &Path) -> rustls::ClientConfig {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateways_and_the_ingester_authenticate_and_client_ids_are_bound() {
    init_tracing();
    let test = TestDb::new("brk_auth").await;
    let secret = test.provision("gw-1").await;
    test.provision_in("globex", "gw-1").await;
    let broker = Broker::start(&test.db).await;
    let addr = broker.v4;
    let gw = "acme/gw-1";
    let cases: [AuthCase<'_>; 8] = [
        (
            "registered gateway",
            "wp-acme-gw-1",
            Some((gw, &secret)),
            true,
        ),
        (
            "wrong secret",
            "wp-acme-gw-1",
            Some((gw, "wrong-secret-wrong-secret")),
            false,
        ),
        (
            "another gateway's client id",
            "wp-globex-gw-1",
            Some((gw, &secret)),
            false,
        ),
        (
            "unknown gateway",
            "wp-acme-gw-2",
            Some(("acme/gw-2", &secret)),
            false,
        ),
        ("no credentials", "wp-acme-gw-1", None, false),
        (
            "not a gateway username",
            "x",
            Some(("acme", &secret)),
            false,
        ),
        (
            "ingester",
            "any-ingester-id",
            Some((INGESTER_USER, INGESTER_PASSWORD)),
            true,
        ),
        (
            "ingester, wrong password",
            "any-ingester-id",
            Some((INGESTER_USER, "nope")),
            false,
        ),
    ];
    for (what, client_id, login, expected) in cases {
        assert_eq!(
            connects(addr, client_id, login, None).await,
            expected,
            "{what}"
        );
    }
    test.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_listeners_serve_gateways_and_the_ingester() {
    init_tracing();
    let test = TestDb::new("brk_tls").await;
    let secret = test.provision("gw-1").await;
    let dir = tempfile::tempdir().unwrap();
    generate_certificate(dir.path());
    let (crt, key, ca) = (
        dir.path().join("broker.crt"),
        dir.path().join("broker.key"),
        dir.path().join("ca.crt"),
    );
    let text = format!(
        r#"
        id = 0
        [router]
        max_connections = 100
        max_outgoing_packet_count = 200
        max_segment_size = 1048576
        max_segment_count = 4
        [v4.tls4]
        name = "tls4"
        listen = "127.0.0.1:0"
        next_connection_delay_ms = 0
            [v4.tls4.tls]
            certpath = "{crt}"
            keypath = "{key}"
            [v4.tls4.connections]
            connection_timeout_ms = 5000
            max_payload_size = 1048576
            max_inflight_count = 100
        [v5.tls5]
        name = "tls5"
        listen = "127.0.0.1:0"
        next_connection_delay_ms = 0
            [v5.tls5.tls]
            certpath = "{crt}"
            keypath = "{key}"
            [v5.tls5.connections]
            connection_timeout_ms = 5000
            max_payload_size = 1048576
            max_inflight_count = 100
        "#,
        crt = crt.display(),
        key = key.display()
    );
    let config: rumqttd::Config = toml::from_str(&text).unwrap();
    let auth = BrokerAuth::new(
        test.db.clone(),
        INGESTER_USER.to_owned(),
        Secret::new(INGESTER_PASSWORD),
    );
    let broker = tokio::task::spawn_blocking(move || EmbeddedBroker::start(config, auth))
        .await
        .unwrap()
        .unwrap();
    let (tls4, tls5) = (
        broker.listener("tls4").unwrap().clone(),
        broker.listener("tls5").unwrap().clone(),
    );
    assert!(tls4.tls && tls5.tls);

    let login = Some(("acme/gw-1", secret.as_str()));
    assert!(connects(tls4.connect_addr(), "wp-acme-gw-1", login, Some(&ca)).await);

    // The ingester over MQTT 5 + TLS, verifying the broker certificate by name.
    let mut endpoint = ingester_endpoint(tls5.connect_addr(), "ingest-tls", INGESTER_USER);
    endpoint.host = "localhost".to_owned();
    endpoint.tls = Some(MqttTls {
        ca_file: Some(ca.clone()),
    });
    let ingester = start_ingester(&test.db, &endpoint, test_options()).await;
    ingester.abort();
    test.finish().await;
}
