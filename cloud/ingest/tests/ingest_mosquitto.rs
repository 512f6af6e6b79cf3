//! The ingest flow against a private Mosquitto started from `broker-config/` (shared
//! subscriptions, ACL, username-bound client ids), with the ingester connected over TLS,
//! including a broker crash and restart.

use ingest::{MqttTls, RejectReason};
use testkit::mqtt::*;
use wire::CommandKind;
use wire::topic::Kind;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_through_mosquitto_with_tls() {
    init_tracing();
    let test = TestDb::new("ing_mosq").await;
    let secret = test.provision("gw-1").await;
    let mosquitto = Mosquitto::start(&[("acme/gw-1", &secret)]);
    ingest_through(test, mosquitto, &secret).await;
}

/// The same with the shipped `mosquitto-dynsec.conf`: the roles that
/// `wellpulse-cloud mosquitto-dynsec` applies let the real ingester through its shared
/// groups (data, births, command results), its acks, commands and state, and they
/// survive a broker restart (the plugin keeps them in its file).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_through_mosquitto_with_dynamic_security() {
    init_tracing();
    let test = TestDb::new("ing_mosq_dynsec").await;
    let secret = test.provision("gw-1").await;
    let mosquitto = Mosquitto::start_dynsec(&[("acme/gw-1", &secret)]).await;
    ingest_through(test, mosquitto, &secret).await;
}

async fn ingest_through(test: TestDb, mut mosquitto: Mosquitto, secret: &str) {
    let mut endpoint = ingester_endpoint(mosquitto.tls, "ignored-by-mosquitto", INGESTER_USER);
    endpoint.host = "localhost".to_owned();
    endpoint.tls = Some(MqttTls {
        ca_file: Some(mosquitto.ca_file.clone()),
    });
    let ingester = start_ingester(&test.db, &endpoint, test_options()).await;
    let stats = stats_of(&ingester);
    let gw = FakeGateway::connect(mosquitto.plain, TENANT, "gw-1", secret).await;

    // Birth, then data stored with engineering values and acked.
    gw.send_birth(&test, &birth(3)).await;
    let b = batch(1, 3, 1_700_004_000_000, 2500);
    gw.send_until_acked(&b).await;
    let rows = test.telemetry().await;
    assert_eq!(rows.len(), 3);
    assert!(rows.contains(&(
        1_700_004_000_000,
        "tubing_pressure_psi".to_owned(),
        Some(250.0),
        0
    )));

    // Re-sent: stored once, acked twice.
    gw.publish(Kind::Data, b.encode().unwrap()).await;
    wait_until("second ack", || async { gw.ack_count(1) >= 2 }).await;
    assert_eq!(test.count("telemetry").await, 3);

    // Malformed: rejected, counted, nothing stored, not acked.
    gw.publish(Kind::Data, b"\x00garbage".to_vec()).await;
    wait_until("malformed rejection", || {
        let stats = stats.clone();
        async move { stats.snapshot().rejected(RejectReason::Malformed) == 1 }
    })
    .await;

    // Unknown boot: a rebirth command reaches the gateway through the ACL.
    gw.publish(
        Kind::Data,
        batch(2, 77, 1_700_004_001_000, 1).encode().unwrap(),
    )
    .await;
    wait_until("rebirth command", || async {
        gw.commands()
            .iter()
            .any(|c| c.kind == CommandKind::Rebirth { boot_id: Some(77) })
    })
    .await;
    assert!(!gw.acked(2));
    assert_eq!(test.count("telemetry").await, 3);
    let s = stats.snapshot();
    assert_eq!((s.batches_stored, s.batches_duplicate), (1, 1));

    // The broker crashes and comes back: the ingester reconnects (with backoff) and
    // resubscribes, and data flows again.
    mosquitto.restart();
    wait_until("ingester reconnected and resubscribed", || {
        let stats = stats.clone();
        async move {
            let s = stats.snapshot();
            s.mqtt_connects >= 2 && s.mqtt_subscribed >= 2
        }
    })
    .await;
    assert!(stats.snapshot().mqtt_errors >= 1);
    gw.send_until_acked(&batch(3, 3, 1_700_004_002_000, 7))
        .await;
    assert_eq!(test.count("telemetry").await, 6);
    ingester.abort();
    test.finish().await;
}
