//! The ingest pipeline end to end: fake gateway → embedded rumqttd → ingester → PostgreSQL,
//! and the acks and commands coming back.

use std::sync::Arc;

use ingest::{IngestStats, Ingester, RejectReason};
use testkit::mqtt::*;
use wire::topic::Kind;
use wire::{CommandKind, Death};

/// Database, broker, one provisioned gateway `gw-1` connected, one ingester.
struct Env {
    db: TestDb,
    broker: Broker,
    gw: FakeGateway,
    ingester: Ingester,
    stats: Arc<IngestStats>,
}

async fn env(prefix: &str) -> Env {
    init_tracing();
    let db = TestDb::new(prefix).await;
    let secret = db.provision("gw-1").await;
    let broker = Broker::start(&db.db).await;
    let ingester = start_ingester(
        &db.db,
        &broker.ingester_endpoint("ingest-a"),
        test_options(),
    )
    .await;
    let stats = stats_of(&ingester);
    let gw = FakeGateway::connect(broker.v4, TENANT, "gw-1", &secret).await;
    Env {
        db,
        broker,
        gw,
        ingester,
        stats,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn birth_creates_series_and_data_is_stored_with_engineering_values() {
    let env = env("ing_birth").await;
    env.gw.send_birth(&env.db, &birth(11)).await;
    assert_eq!(env.db.count("series").await, 3);
    let info = env
        .db
        .db
        .lookup_gateway(TENANT, "gw-1")
        .await
        .unwrap()
        .unwrap();
    assert!(info.online);
    assert_eq!(info.last_boot_id, Some(11));

    let ts = 1_700_000_100_000;
    env.gw.send_until_acked(&batch(1, 11, ts, 1234)).await;
    let rows = env.db.telemetry().await;
    assert_eq!(
        rows,
        vec![
            (ts, "flow_temperature_f".to_owned(), Some(60.0), 0),
            (ts, "tubing_pressure_psi".to_owned(), Some(123.4), 0),
            (ts, "valve_open".to_owned(), Some(1.0), 0),
        ]
    );
    // The gateway status is written off the ack path: poll for it.
    let pool = env.db.db.pool().clone();
    wait_until("buffer status recorded", || {
        let pool = pool.clone();
        async move {
            let pending: Option<i64> = sqlx::query_scalar(
                "SELECT buffer_pending_batches FROM gateways WHERE slug = 'gw-1'",
            )
            .fetch_one(&pool)
            .await
            .unwrap();
            pending == Some(3)
        }
    })
    .await;
    let s = env.stats.snapshot();
    assert_eq!(
        (s.batches_stored, s.samples_stored, s.births_applied),
        (1, 3, 1)
    );
    assert_eq!(s.rejected_total(), 0);

    // A death of an older boot is ignored; the current boot's death ends the session.
    env.gw
        .publish(
            Kind::Death,
            Death {
                boot_id: 10,
                ts_ms: ts,
            }
            .encode(),
        )
        .await;
    env.gw
        .publish(
            Kind::Death,
            Death {
                boot_id: 11,
                ts_ms: ts,
            }
            .encode(),
        )
        .await;
    let stats = env.stats.clone();
    wait_until("two deaths processed", || {
        let stats = stats.clone();
        async move { stats.snapshot().deaths_processed == 2 }
    })
    .await;
    let info = env
        .db
        .db
        .lookup_gateway(TENANT, "gw-1")
        .await
        .unwrap()
        .unwrap();
    assert!(!info.online);
    env.ingester.abort();
    env.db.finish().await;
    drop(env.broker);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resent_batch_is_stored_once_and_acked_twice() {
    let env = env("ing_dup").await;
    env.gw.send_birth(&env.db, &birth(21)).await;
    let b = batch(7, 21, 1_700_000_200_000, 50);
    env.gw.send_until_acked(&b).await;
    // The agent did not see the ack (say) and re-sends.
    env.gw.publish(Kind::Data, b.encode().unwrap()).await;
    let gw = &env.gw;
    wait_until("second ack", || async { gw.ack_count(7) >= 2 }).await;
    assert_eq!(env.db.count("telemetry").await, 3);
    assert_eq!(env.db.count("ingested_batches").await, 1);
    let s = env.stats.snapshot();
    assert_eq!((s.batches_stored, s.batches_duplicate), (1, 1));
    env.ingester.abort();
    env.db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_delivered_twice_in_one_round_is_stored_once_and_counted_as_duplicate() {
    let env = env("ing_dup_round").await;
    env.gw.send_birth(&env.db, &birth(22)).await;
    // Back to back: both copies arrive within one round of the ingester.
    let b = batch(9, 22, 1_700_000_300_000, 60);
    let bytes = b.encode().unwrap();
    env.gw.publish(Kind::Data, bytes.clone()).await;
    env.gw.publish(Kind::Data, bytes).await;
    let stats = &env.stats;
    wait_until("both copies handled", || async {
        let s = stats.snapshot();
        s.batches_stored + s.batches_duplicate >= 2
    })
    .await;
    let s = env.stats.snapshot();
    assert_eq!((s.batches_stored, s.batches_duplicate), (1, 1));
    assert_eq!(env.db.count("telemetry").await, 3);
    assert_eq!(env.db.count("ingested_batches").await, 1);
    let gw = &env.gw;
    wait_until("acked", || async { gw.acked(9) }).await;
    env.ingester.abort();
    env.db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_refused_for_good_gets_one_negative_ack_and_one_rejection_record() {
    let env = env("ing_nack").await;
    env.gw.send_birth(&env.db, &birth(31)).await;
    env.gw.send_birth(&env.db, &birth(32)).await;
    // Seq 5 is stored under boot 31; the same seq under boot 32 is a conflict (a gateway
    // whose sequence went backwards), refused for good.
    env.gw
        .send_until_acked(&batch(5, 31, 1_700_000_400_000, 70))
        .await;
    let stale = batch(5, 32, 1_700_000_500_000, 80).encode().unwrap();
    env.gw.publish(Kind::Data, stale.clone()).await;
    let gw = &env.gw;
    wait_until("negative ack", || async { !gw.rejections_of(5).is_empty() }).await;
    let nack = &env.gw.rejections_of(5)[0];
    assert!(nack.permanent, "{nack:?}");
    assert_eq!(nack.reason, "seq_conflict");
    assert!(nack.detail.contains("boot 31"), "{}", nack.detail);
    // An agent that ignores negative acks re-sends: counted again, recorded once.
    env.gw.publish(Kind::Data, stale).await;
    let stats = &env.stats;
    wait_until("second refusal", || async {
        stats.snapshot().rejected(RejectReason::SeqConflict) >= 2
    })
    .await;
    wait_until("second negative ack", || async {
        gw.rejections_of(5).len() >= 2
    })
    .await;
    assert_eq!(
        env.db.rejections().await.len(),
        1,
        "{:?}",
        env.db.rejections().await
    );
    assert_eq!(env.db.count("ingested_batches").await, 1);
    assert!(env.stats.snapshot().nacks_published >= 2);
    env.ingester.abort();
    env.db.finish().await;
}

/// A hand-made data batch `{0: 99, 1: 1, 2: 1, 3: false}` from schema version 99.
fn future_version_batch() -> Vec<u8> {
    vec![0xa4, 0x00, 0x18, 0x63, 0x01, 0x01, 0x02, 0x01, 0x03, 0xf4]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_messages_are_rejected_counted_recorded_and_nothing_is_stored() {
    let env = env("ing_reject").await;
    env.db.provision_in("globex", "gw-9").await;
    env.gw.send_birth(&env.db, &birth(31)).await;
    let good = batch(2, 31, 1_700_000_300_000, 10).encode().unwrap();
    let cases: [(&str, &str, Vec<u8>, RejectReason); 5] = [
        (
            TENANT,
            "gw-1",
            b"\xff\x00not cbor".to_vec(),
            RejectReason::Malformed,
        ),
        (
            TENANT,
            "gw-1",
            future_version_batch(),
            RejectReason::IncompatibleVersion,
        ),
        // gw-1 exists, but not under tenant globex: the wrong tenant.
        ("globex", "gw-1", good.clone(), RejectReason::UnknownGateway),
        ("initech", "gw-1", good.clone(), RejectReason::UnknownTenant),
        (TENANT, "gw-404", good.clone(), RejectReason::UnknownGateway),
    ];
    // Straight into rumqttd, past the broker's front listener (which would drop the
    // spoofed topics): the ingester must hold on its own, as behind any broker.
    // The payloads are sealed with gw-1's own key, so what is refused is their content
    // (an unsealed or foreign-sealed one is refused earlier, as `unauthenticated`).
    let (direct, password) = env.broker.direct_v4();
    let mut spoofer = FakeGateway::connect(direct, TENANT, "spoofer", &password).await;
    spoofer.key = env.gw.key.clone();
    for (tenant, gateway, payload, _) in &cases {
        spoofer
            .publish_on(tenant, gateway, Kind::Data, payload.clone())
            .await;
    }
    let stats = env.stats.clone();
    wait_until("five rejections", || {
        let stats = stats.clone();
        async move { stats.snapshot().rejected_total() >= 5 }
    })
    .await;
    let s = env.stats.snapshot();
    for reason in [
        RejectReason::Malformed,
        RejectReason::IncompatibleVersion,
        RejectReason::UnknownTenant,
    ] {
        assert_eq!(s.rejected(reason), 1, "{reason:?}");
    }
    assert_eq!(s.rejected(RejectReason::UnknownGateway), 2);
    assert_eq!(env.db.count("telemetry").await, 0);
    assert_eq!(env.db.count("ingested_batches").await, 0);
    let recorded = env.db.rejections().await;
    assert_eq!(recorded.len(), 5, "{recorded:?}");
    for (_, _, _, reason) in &cases {
        assert!(
            recorded.iter().any(|r| r.starts_with(reason.as_str())),
            "{reason:?} not recorded in {recorded:?}"
        );
    }
    assert!(
        !env.gw.acked(1) && !env.gw.acked(2),
        "rejected data must not be acked"
    );

    // The ingester is still running and stores good data.
    env.gw
        .send_until_acked(&batch(2, 31, 1_700_000_300_000, 10))
        .await;
    assert_eq!(env.db.count("telemetry").await, 3);
    env.ingester.abort();
    env.db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_boot_gets_a_rebirth_request_and_no_ack_until_the_birth_arrives() {
    let env = env("ing_rebirth").await;
    let b = batch(5, 99, 1_700_000_400_000, 77);
    env.gw.publish(Kind::Data, b.encode().unwrap()).await;
    let gw = &env.gw;
    wait_until("rebirth command", || async {
        gw.commands()
            .iter()
            .any(|c| c.kind == CommandKind::Rebirth { boot_id: Some(99) })
    })
    .await;
    assert!(!env.gw.acked(5));
    assert_eq!(env.db.count("telemetry").await, 0);
    assert!(env.stats.snapshot().rejected(RejectReason::UnknownBoot) >= 1);

    // The agent answers with the stored birth; its re-sent batch is then stored.
    env.gw.send_birth(&env.db, &birth(99)).await;
    env.gw.send_until_acked(&b).await;
    assert_eq!(env.db.count("telemetry").await, 3);
    env.ingester.abort();
    env.db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_seq_gap_beyond_the_window_requests_a_rebirth_of_the_current_session() {
    let env = env("ing_gap").await;
    env.gw.send_birth(&env.db, &birth(41)).await;
    env.gw
        .send_until_acked(&batch(1, 41, 1_700_000_500_000, 1))
        .await;
    env.gw
        .send_until_acked(&batch(30, 41, 1_700_000_501_000, 2))
        .await;
    assert!(
        env.gw.commands().is_empty(),
        "a jump within the window is normal"
    );
    let far = 30 + test_options().seq_gap_window + 1;
    env.gw
        .send_until_acked(&batch(far, 41, 1_700_000_502_000, 3))
        .await;
    let gw = &env.gw;
    wait_until("rebirth command", || async {
        gw.commands()
            .iter()
            .any(|c| c.kind == CommandKind::Rebirth { boot_id: None })
    })
    .await;
    assert_eq!(env.stats.snapshot().seq_gaps, 1);
    assert_eq!(env.db.count("telemetry").await, 9);
    env.ingester.abort();
    env.db.finish().await;
}

/// A gateway whose buffer started over (new epoch) re-uses seqs the cloud stored from the
/// old buffer: both batches are stored, once each; a replay within an epoch is still a
/// duplicate (acked again, stored once).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_of_two_epochs_with_overlapping_seqs_are_both_stored_exactly_once() {
    let env = env("ing_epochs").await;
    env.gw.send_birth(&env.db, &birth(41)).await;
    let in_epoch = |epoch: u64, seq: u64, boot: u64, ts: i64| {
        let mut b = batch(seq, boot, ts, 100 + seq as i64);
        b.header.epoch = epoch;
        b
    };
    let (old, new) = (0x1111_u64, 0xffff_0000_0000_2222_u64);
    for seq in 1..=3 {
        env.gw
            .send_until_acked(&in_epoch(old, seq, 41, 1_700_000_600_000 + seq as i64))
            .await;
    }
    env.gw.send_birth(&env.db, &birth(42)).await;
    for seq in 1..=3 {
        env.gw
            .send_until_acked(&in_epoch(new, seq, 42, 1_700_000_700_000 + seq as i64))
            .await;
    }
    // Replays of both epochs.
    env.gw
        .publish(
            Kind::Data,
            in_epoch(old, 2, 41, 1_700_000_600_002).encode().unwrap(),
        )
        .await;
    env.gw
        .publish(
            Kind::Data,
            in_epoch(new, 2, 42, 1_700_000_700_002).encode().unwrap(),
        )
        .await;
    let stats = &env.stats;
    wait_until("replays handled", || async {
        stats.snapshot().batches_duplicate >= 2
    })
    .await;
    let s = env.stats.snapshot();
    assert_eq!((s.batches_stored, s.batches_duplicate), (6, 2));
    assert_eq!(s.rejected_total(), 0, "no seq conflict across epochs");
    assert_eq!(env.db.count("ingested_batches").await, 6);
    assert_eq!(env.db.count("telemetry").await, 18);
    let epochs: Vec<(i64, i64)> =
        sqlx::query_as("SELECT epoch, count(*) FROM ingested_batches GROUP BY epoch ORDER BY 1")
            .fetch_all(env.db.db.pool())
            .await
            .unwrap();
    assert_eq!(
        epochs,
        vec![(store::boot_to_db(new), 3), (store::boot_to_db(old), 3)]
    );
    let pool = env.db.db.pool().clone();
    wait_until("gateway epoch recorded", || {
        let pool = pool.clone();
        async move {
            let epoch: Option<i64> =
                sqlx::query_scalar("SELECT buffer_epoch FROM gateways WHERE slug = 'gw-1'")
                    .fetch_one(&pool)
                    .await
                    .unwrap();
            epoch == Some(store::boot_to_db(new))
        }
    })
    .await;
    env.ingester.abort();
    env.db.finish().await;
}

/// A gateway whose batches are all refused (an agent before epochs that lost its buffer:
/// its seqs start again under a new boot) is connected but stores nothing: its status
/// records the refusal after the last stored batch, which the API shows as unhealthy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_whose_batches_are_refused_is_recorded_as_refusing() {
    let env = env("ing_refusing").await;
    env.gw.send_birth(&env.db, &birth(51)).await;
    env.gw
        .send_until_acked(&batch(1, 51, 1_700_000_800_000, 1))
        .await;
    let row = |db: store::Db| async move {
        let tenant = tenant_id(&db).await;
        let mut tx = db.begin_tenant(tenant).await.unwrap();
        store::gateways::gateway(&mut tx, tenant, "gw-1")
            .await
            .unwrap()
            .unwrap()
    };
    let db = env.db.db.clone();
    wait_until("stored recorded", || {
        let db = db.clone();
        async move { row(db).await.data_stored_at.is_some() }
    })
    .await;
    assert!(!row(env.db.db.clone()).await.refusing());
    env.gw.send_birth(&env.db, &birth(52)).await;
    env.gw
        .publish(
            Kind::Data,
            batch(1, 52, 1_700_000_900_000, 2).encode().unwrap(),
        )
        .await;
    let gw = &env.gw;
    wait_until("negative ack", || async { !gw.rejections_of(1).is_empty() }).await;
    wait_until("refusal recorded", || {
        let db = db.clone();
        async move { row(db).await.refusing() }
    })
    .await;
    let g = row(env.db.db.clone()).await;
    assert!(g.online, "connected");
    assert_eq!(
        g.data_refused.as_ref().map(|(_, r)| r.as_str()),
        Some("seq_conflict")
    );
    env.ingester.abort();
    env.db.finish().await;
}

async fn tenant_id(db: &store::Db) -> store::TenantId {
    sqlx::query_scalar("SELECT tenant_id FROM gateways WHERE slug = 'gw-1'")
        .fetch_one(db.pool())
        .await
        .unwrap()
}
