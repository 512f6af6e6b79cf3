//! The cloud stores only what the gateway itself sealed. A hostile gateway with a valid
//! login (here of another tenant) publishes on the victim's topics through a broker that
//! lets it (the embedded rumqttd has no topic ACL): a birth that rescales the victim's
//! pressures, a batch with the victim's boot id and a future seq, a death. None is stored
//! or applied, none is acked (an ack would make the victim's agent delete a batch the cloud
//! never stored), each is counted as `unauthenticated` and recorded as an aggregate; the
//! victim's genuine batch with that seq is then stored normally.

use std::sync::Arc;

use ingest::{IngestStats, RejectReason};
use testkit::mqtt::*;
use wire::topic::{Kind, topic};
use wire::{Death, MessageKey};

async fn wait_unauthenticated(stats: &Arc<IngestStats>, n: u64) {
    wait_until("forgeries refused", || {
        let stats = stats.clone();
        async move { stats.snapshot().rejected(RejectReason::Unauthenticated) >= n }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_births_batches_and_deaths_are_refused_and_the_victim_is_unaffected() {
    init_tracing();
    let db = TestDb::new("ing_auth").await;
    let victim_secret = db.provision("gw-1").await;
    let hostile_secret = db.provision_in("globex", "gw-evil").await;
    let broker = Broker::start(&db.db).await;
    let ingester = start_ingester(
        &db.db,
        &broker.ingester_endpoint("ingest-auth"),
        test_options(),
    )
    .await;
    let stats = stats_of(&ingester);
    let victim = FakeGateway::connect(broker.v4, TENANT, "gw-1", &victim_secret).await;
    // Straight into rumqttd, past the broker's front listener (which would refuse the
    // victim's topics): the second lock must hold on its own, as behind a broker mistake.
    // Its messages are sealed with its own key, all its real login would give it.
    let (direct, password) = broker.direct_v4();
    let mut hostile = FakeGateway::connect(direct, "globex", "gw-evil", &password).await;
    hostile.key = wire::MessageKey::derive(hostile_secret.as_bytes());

    victim.send_birth(&db, &birth(11)).await;
    let ts = 1_700_000_100_000;
    victim.send_until_acked(&batch(1, 11, ts, 1234)).await;

    // The forgeries: a birth of the victim's boot rescaling its pressure by 1000, a birth of
    // a new boot, a batch of the victim's boot with a future seq, a death.
    let mut rescaled = birth(11);
    rescaled.devices[0].metrics[0].scale *= 1000.0;
    let mut new_boot = birth(12);
    new_boot.devices[0].metrics[0].scale *= 1000.0;
    let future = batch(50, 11, ts + 1000, 9999).encode().unwrap();
    let death = Death {
        boot_id: 11,
        ts_ms: ts,
    }
    .encode();
    let messages = [
        (Kind::Birth, rescaled.encode()),
        (Kind::Birth, new_boot.encode()),
        (Kind::Data, future.clone()),
        (Kind::Death, death),
    ];
    let victim_topic = |kind| topic(TENANT, "gw-1", kind);
    // A key the hostile side could have guessed or stolen from elsewhere is no better.
    let guessed = MessageKey::derive(b"secret-of-acme-gw-2-0123456789");
    let mut sent = 0;
    for (kind, message) in &messages {
        // Sealed with the hostile gateway's own key (all its login gives it) ...
        hostile
            .publish_on(TENANT, "gw-1", *kind, message.clone())
            .await;
        // ... unsealed ...
        hostile
            .publish_raw_on(TENANT, "gw-1", *kind, message.clone())
            .await;
        // ... sealed with another key ...
        let payload = wire::seal::seal(&guessed, &victim_topic(*kind), message);
        hostile.publish_raw_on(TENANT, "gw-1", *kind, payload).await;
        // ... and sealed by the victim for another kind, replayed on this one.
        let other = if *kind == Kind::Data {
            Kind::Birth
        } else {
            Kind::Data
        };
        let payload = wire::seal::seal(&victim.key, &victim_topic(other), message);
        hostile.publish_raw_on(TENANT, "gw-1", *kind, payload).await;
        sent += 4;
    }
    wait_unauthenticated(&stats, sent).await;

    let s = stats.snapshot();
    assert_eq!(s.rejected(RejectReason::Unauthenticated), sent);
    assert_eq!(s.rejected_total(), sent, "nothing else was even looked at");
    assert_eq!((s.births_applied, s.deaths_processed), (1, 0));
    assert_eq!(db.count("ingested_batches").await, 1);
    assert_eq!(db.count("telemetry").await, 3);
    assert!(!victim.acked(50), "a forged batch was acked to the victim");
    assert!(
        victim.rejections_of(50).is_empty(),
        "a forged batch was refused to the victim"
    );
    let gw = db.gateway_id("gw-1").await;
    let aliases = db.db.alias_map(gw, 11).await.unwrap().expect("boot 11");
    assert_eq!(aliases.get(0, 0).expect("pressure").scale, 0.1);
    assert!(db.db.alias_map(gw, 12).await.unwrap().is_none());
    let info = db.db.lookup_gateway(TENANT, "gw-1").await.unwrap().unwrap();
    assert!(info.online, "a forged death took the victim offline");
    assert_eq!(info.last_boot_id, Some(11));
    // Recorded as aggregates: one row per victim topic (birth, data, death), not per message.
    let recorded = db.rejections().await;
    assert_eq!(recorded.len(), 3, "{recorded:?}");
    assert!(
        recorded.iter().all(|r| r.starts_with("unauthenticated: ")),
        "{recorded:?}"
    );

    // The victim's own batch with the seq the forgery tried to take is stored normally,
    // with the victim's scale.
    victim
        .send_until_acked(&batch(50, 11, ts + 1000, 4321))
        .await;
    let rows = db.telemetry().await;
    assert!(
        rows.contains(&(ts + 1000, "tubing_pressure_psi".to_owned(), Some(432.1), 0)),
        "{rows:?}"
    );
    assert_eq!(db.count("ingested_batches").await, 2);
    assert_eq!(victim.unauthenticated(), 0, "the cloud seals what it sends");
    assert_eq!(stats.snapshot().batches_duplicate, 0);
    ingester.abort();
    db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_key_is_accepted_during_the_overlap_and_answered_with_that_key() {
    init_tracing();
    let db = TestDb::new("ing_auth_rot").await;
    let secret = db.provision("gw-1").await;
    let broker = Broker::start(&db.db).await;
    let ingester = start_ingester(
        &db.db,
        &broker.ingester_endpoint("ingest-rot"),
        test_options(),
    )
    .await;
    let stats = stats_of(&ingester);
    let gw = FakeGateway::connect(broker.v4, TENANT, "gw-1", &secret).await;
    // The rotation starts before the ingester reads the keys: the new key is current, the
    // gateway still uses the old one (the previous key), and its data is still accepted.
    let id = db.gateway_id("gw-1").await;
    let next = MessageKey::derive(b"next-secret-of-gw-1-0123456789");
    db.db.add_gateway_message_key(id, &next).await.unwrap();
    gw.send_birth(&db, &birth(21)).await;
    gw.send_until_acked(&batch(1, 21, 1_700_000_200_000, 5))
        .await;
    assert_eq!(
        gw.unauthenticated(),
        0,
        "acks are sealed with the key in use"
    );
    assert_eq!(stats.snapshot().rejected(RejectReason::Unauthenticated), 0);
    ingester.abort();
    db.finish().await;
}
