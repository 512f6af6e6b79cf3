//! Detection after the commit: every stored batch is scored once, by the ingester that
//! stored it, or — when that ingester stopped before scoring it — by the backlog sweep of
//! the next one; re-sent batches are not scored again.

use std::time::Duration;

use chrono::{DateTime, Utc};
use ingest::{DetectionOptions, IngestOptions};
use store::{BatchRecord, TelemetryRow};
use testkit::mqtt::*;
use wire::Quality;
use wire::topic::Kind;

const BOOT: u64 = 7;
const T0: i64 = 1_700_000_000_000;

fn with_detection(sweep: Duration) -> IngestOptions {
    IngestOptions {
        detection: Some(DetectionOptions {
            backlog_sweep: sweep,
            ..DetectionOptions::default()
        }),
        ..test_options()
    }
}

/// The detector state row of the gateway's one device: (newest sample seen, state bytes).
async fn device_state(test: &TestDb) -> Option<(Option<DateTime<Utc>>, usize)> {
    sqlx::query_as::<_, (Option<DateTime<Utc>>, Option<Vec<u8>>)>(
        "SELECT last_sample_at, state FROM detector_states",
    )
    .fetch_optional(test.db.pool())
    .await
    .unwrap()
    .map(|(at, state)| (at, state.map_or(0, |s| s.len())))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_batches_are_scored_after_the_commit_once_each() {
    init_tracing();
    let test = TestDb::new("ing_detect_live").await;
    let secret = test.provision("gw-1").await;
    let broker = Broker::start(&test.db).await;
    let ingester = start_ingester(
        &test.db,
        &broker.ingester_endpoint("ingest-a"),
        with_detection(Duration::from_secs(30)),
    )
    .await;
    let stats = stats_of(&ingester);
    let gw = FakeGateway::connect(broker.v4, TENANT, "gw-1", &secret).await;
    gw.send_birth(&test, &birth(BOOT)).await;

    for seq in 1..=5 {
        gw.send_until_acked(&batch(seq, BOOT, T0 + seq as i64 * 1000, 1000))
            .await;
    }
    wait_until("five batches scored", || async {
        stats.snapshot().batches_scored == 5
    })
    .await;
    let s = stats.snapshot();
    assert_eq!(s.samples_scored, 15, "three samples per batch");
    assert_eq!(s.batches_swept, 0, "nothing was left behind");
    assert_eq!(
        test.count("detection_backlog").await,
        0,
        "every batch claimed"
    );
    let (newest, size) = device_state(&test).await.expect("a detector state row");
    assert_eq!(
        newest.map(|t| t.timestamp_millis()),
        Some(T0 + 5000),
        "the state saw the newest sample"
    );
    assert!(size > 0, "the state is stored");

    // A re-sent batch is acked again and neither stored nor scored again (it is queued
    // in the round that finds it duplicate, before that round's acks).
    let before = stats.snapshot().batches_duplicate;
    gw.publish(
        Kind::Data,
        batch(3, BOOT, T0 + 3000, 1000).encode().unwrap(),
    )
    .await;
    wait_until("the duplicate round", || async {
        stats.snapshot().batches_duplicate > before
    })
    .await;
    assert_eq!(stats.snapshot().batches_scored, 5);
    assert_eq!(test.count("detection_backlog").await, 0);

    ingester.abort();
    test.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_an_ingester_stored_but_never_scored_is_scored_by_the_next_ones_sweep() {
    init_tracing();
    let test = TestDb::new("ing_detect_sweep").await;
    let secret = test.provision("gw-1").await;
    let broker = Broker::start(&test.db).await;
    // The birth goes through an ingester without detection.
    let plain = start_ingester(
        &test.db,
        &broker.ingester_endpoint("ingest-plain"),
        IngestOptions {
            detection: None,
            ..test_options()
        },
    )
    .await;
    let gw = FakeGateway::connect(broker.v4, TENANT, "gw-1", &secret).await;
    gw.send_birth(&test, &birth(BOOT)).await;
    plain.abort();

    // What an ingester leaves behind when it stops between its commit and its scoring: a
    // batch stored, in the backlog, received a minute ago.
    let gateway = test.gateway_id("gw-1").await;
    let aliases = test
        .db
        .alias_map(gateway, BOOT)
        .await
        .unwrap()
        .expect("aliases");
    let series = |metric: u16| aliases.get(0, metric).expect("alias").series_id;
    let mut tx = test.db.begin_ingest().await.unwrap();
    tx.queue_for_detection();
    let record = BatchRecord {
        gateway,
        epoch: 0,
        seq: 1,
        boot_id: BOOT,
        historical: false,
        received_at: Utc::now() - chrono::Duration::minutes(1),
    };
    let mut writer = tx.record_batch(record).unwrap().expect("a new batch");
    for (i, ts) in [T0, T0 + 1000].into_iter().enumerate() {
        for metric in 0..2u16 {
            writer
                .push(&TelemetryRow {
                    ts_ms: ts,
                    series_id: series(metric),
                    value: Some(100.0 + i as f64),
                    quality: Quality::Good,
                })
                .unwrap();
        }
    }
    tx.commit().await.unwrap();
    assert_eq!(test.count("detection_backlog").await, 1);
    assert!(device_state(&test).await.is_none(), "not scored yet");

    // The next ingester's first sweep (at start) scores it, with its samples read back.
    let next = start_ingester(
        &test.db,
        &broker.ingester_endpoint("ingest-b"),
        with_detection(Duration::from_secs(5)),
    )
    .await;
    let stats = stats_of(&next);
    wait_until("the left-behind batch scored", || async {
        stats.snapshot().batches_scored == 1
    })
    .await;
    let s = stats.snapshot();
    assert_eq!(s.batches_swept, 1);
    assert_eq!(s.samples_scored, 4, "both frames' two samples, read back");
    assert_eq!(test.count("detection_backlog").await, 0);
    let (newest, _) = device_state(&test).await.expect("a detector state row");
    assert_eq!(newest.map(|t| t.timestamp_millis()), Some(T0 + 1000));

    // Scored once: a claim of the same batch now finds nothing to score.
    let mut tx = test.db.pool().begin().await.unwrap();
    let claimed = store::detection::claim_backlog(&mut tx, &[record.key()])
        .await
        .unwrap();
    assert!(claimed.is_empty(), "the batch was claimed by the sweep");
    tx.rollback().await.unwrap();

    next.abort();
    test.finish().await;
}
