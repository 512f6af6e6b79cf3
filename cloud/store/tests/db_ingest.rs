//! Registry, births, credentials and the exactly-once ingest transaction.

use chrono::{DateTime, TimeDelta, Utc};
use store::{
    BatchRecord, Db, DbError, GatewayId, IngestTx, Rejection, SeqConflict, SeriesId, TelemetryRow,
};
use testkit::db::{TestDb, birth, fixture, metric};
use wire::Quality;

fn record(gateway: GatewayId, seq: u64, boot_id: u64) -> BatchRecord {
    BatchRecord {
        epoch: 0,
        gateway,
        seq,
        boot_id,
        historical: false,
        received_at: Utc::now(),
    }
}

/// Stages a batch of `n` good samples of `series`, one per second from `start_ms`.
fn stage(
    tx: &mut IngestTx,
    record: BatchRecord,
    series: SeriesId,
    start_ms: i64,
    n: usize,
) -> bool {
    let Some(mut batch) = tx.record_batch(record).unwrap() else {
        return false;
    };
    for i in 0..n {
        batch
            .push(&TelemetryRow {
                ts_ms: start_ms + i as i64 * 1000,
                series_id: series,
                value: Some(i as f64),
                quality: Quality::Good,
            })
            .unwrap();
    }
    true
}

async fn count(db: &Db, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(db.pool()).await.unwrap()
}

async fn one_series(db: &Db, gateway: GatewayId) -> SeriesId {
    let now = Utc::now();
    let map = db
        .apply_birth(
            gateway,
            &birth(7, now.timestamp_millis(), &["tubing_pressure_psi"]),
            now,
        )
        .await
        .unwrap();
    map.get(0, 0).unwrap().series_id
}

fn in_epoch(epoch: u64, gateway: GatewayId, seq: u64, boot_id: u64) -> BatchRecord {
    BatchRecord {
        epoch,
        ..record(gateway, seq, boot_id)
    }
}

/// A gateway whose buffer started over (a new epoch) sends seqs the cloud already stored
/// from the old buffer: both are stored, exactly once each; a replay within either epoch
/// is still a duplicate, and a seq reused within one epoch under another boot is still a
/// conflict.
#[tokio::test]
async fn batches_of_two_epochs_with_overlapping_seqs_are_both_stored_once() {
    let test = TestDb::plain("ingest_epochs").await;
    let db = &test.db;
    let f = fixture(db, "acme").await;
    let series = one_series(db, f.gateway).await;
    let t0 = Utc::now().timestamp_millis() - 600_000;
    let (old, new) = (0xaaaa_u64, u64::MAX - 5); // the second is a negative bigint

    let mut tx = db.begin_ingest().await.unwrap();
    for seq in 1..=3 {
        let start = t0 + seq as i64 * 10_000;
        assert!(stage(
            &mut tx,
            in_epoch(old, f.gateway, seq, 7),
            series,
            start,
            5
        ));
    }
    let outcome = tx.commit().await.unwrap();
    assert_eq!(outcome.stored.len(), 3);

    // The new buffer's seqs 1..=2 (another boot), in one transaction with a replay of
    // old seq 3 and, in the same round, new seq 1 again.
    let mut tx = db.begin_ingest().await.unwrap();
    assert!(!tx.is_duplicate(f.gateway, new, 1).await.unwrap());
    assert!(tx.is_duplicate(f.gateway, old, 1).await.unwrap());
    for seq in 1..=2 {
        let start = t0 + 100_000 + seq as i64 * 10_000;
        assert!(stage(
            &mut tx,
            in_epoch(new, f.gateway, seq, 9),
            series,
            start,
            5
        ));
    }
    assert!(stage(
        &mut tx,
        in_epoch(old, f.gateway, 3, 7),
        series,
        t0 + 30_000,
        5
    ));
    assert!(!stage(
        &mut tx,
        in_epoch(new, f.gateway, 1, 9),
        series,
        t0,
        5
    ));
    let outcome = tx.commit().await.unwrap();
    assert_eq!(
        outcome.stored,
        vec![(f.gateway, new, 1), (f.gateway, new, 2)]
    );
    assert_eq!(
        outcome.duplicates,
        vec![(f.gateway, old, 3), (f.gateway, new, 1)]
    );
    assert!(outcome.conflicts.is_empty(), "{:?}", outcome.conflicts);

    // Within an epoch a seq under another boot is still a conflict.
    let mut tx = db.begin_ingest().await.unwrap();
    assert!(stage(
        &mut tx,
        in_epoch(new, f.gateway, 2, 10),
        series,
        t0,
        5
    ));
    let outcome = tx.commit().await.unwrap();
    assert_eq!(
        outcome.conflicts,
        vec![SeqConflict {
            gateway: f.gateway,
            epoch: new,
            seq: 2,
            stored_boot_id: 9,
            incoming_boot_id: 10,
        }]
    );
    assert_eq!(count(db, "SELECT count(*) FROM ingested_batches").await, 5);
    assert_eq!(count(db, "SELECT count(*) FROM telemetry").await, 25);
}

#[tokio::test]
async fn duplicate_batches_are_skipped_within_and_across_transactions() {
    let test = TestDb::plain("ingest_dup").await;
    let db = &test.db;
    let f = fixture(db, "acme").await;
    let series = one_series(db, f.gateway).await;
    let t0 = Utc::now().timestamp_millis() - 60_000;

    let mut tx = db.begin_ingest().await.unwrap();
    assert!(stage(&mut tx, record(f.gateway, 1, 7), series, t0, 10));
    assert!(stage(
        &mut tx,
        record(f.gateway, 2, 7),
        series,
        t0 + 10_000,
        10
    ));
    // The same seq again in the same transaction is not staged twice, but reported: a
    // re-delivery of the same batch is a duplicate, a stale one under another boot is a
    // conflict.
    assert!(!stage(&mut tx, record(f.gateway, 1, 7), series, t0, 10));
    assert!(!stage(&mut tx, record(f.gateway, 2, 8), series, t0, 10));
    assert!(tx.is_duplicate(f.gateway, 0, 2).await.unwrap());
    assert!(!tx.is_duplicate(f.gateway, 0, 3).await.unwrap());
    let outcome = tx.commit().await.unwrap();
    assert_eq!(outcome.stored, vec![(f.gateway, 0, 1), (f.gateway, 0, 2)]);
    assert_eq!(outcome.duplicates, vec![(f.gateway, 0, 1)]);
    assert_eq!(
        outcome.conflicts,
        vec![SeqConflict {
            gateway: f.gateway,
            epoch: 0,
            seq: 2,
            stored_boot_id: 7,
            incoming_boot_id: 8,
        }]
    );
    assert_eq!(outcome.samples, 20);

    // Re-delivery of seq 2 next to a new seq 3.
    let mut tx = db.begin_ingest().await.unwrap();
    assert!(tx.is_duplicate(f.gateway, 0, 2).await.unwrap());
    assert!(stage(
        &mut tx,
        record(f.gateway, 2, 7),
        series,
        t0 + 10_000,
        10
    ));
    assert!(stage(
        &mut tx,
        record(f.gateway, 3, 7),
        series,
        t0 + 20_000,
        5
    ));
    let outcome = tx.commit().await.unwrap();
    assert_eq!(outcome.stored, vec![(f.gateway, 0, 3)]);
    assert_eq!(outcome.duplicates, vec![(f.gateway, 0, 2)]);
    assert_eq!(outcome.samples, 5);
    let committed: Vec<_> = outcome.committed().collect();
    assert_eq!(committed, vec![(f.gateway, 0, 3), (f.gateway, 0, 2)]);

    assert_eq!(count(db, "SELECT count(*) FROM telemetry").await, 25);
    let (samples, min, max, tenant): (i32, DateTime<Utc>, DateTime<Utc>, i64) = sqlx::query_as(
        "SELECT samples, min_time, max_time, tenant_id FROM ingested_batches WHERE seq = 3",
    )
    .fetch_one(db.pool())
    .await
    .unwrap();
    assert_eq!(samples, 5);
    assert_eq!(min.timestamp_millis(), t0 + 20_000);
    assert_eq!(max.timestamp_millis(), t0 + 24_000);
    assert_eq!(tenant, f.tenant.0);
    test.finish().await;
}

#[tokio::test]
async fn concurrent_ingesters_store_a_redelivered_batch_once() {
    let test = TestDb::plain("ingest_race").await;
    let db = &test.db;
    let f = fixture(db, "acme").await;
    let series = one_series(db, f.gateway).await;
    let t0 = Utc::now().timestamp_millis();
    let mut a = db.begin_ingest().await.unwrap();
    let mut b = db.begin_ingest().await.unwrap();
    stage(&mut a, record(f.gateway, 9, 7), series, t0, 50);
    stage(&mut b, record(f.gateway, 9, 7), series, t0, 50);
    let (ra, rb) = tokio::join!(a.commit(), b.commit());
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert_eq!(ra.stored.len() + rb.stored.len(), 1, "{ra:?} {rb:?}");
    assert_eq!(ra.duplicates.len() + rb.duplicates.len(), 1);
    assert_eq!(count(db, "SELECT count(*) FROM telemetry").await, 50);
    test.finish().await;
}

#[tokio::test]
async fn reused_seq_with_another_boot_is_a_conflict_and_not_stored() {
    let test = TestDb::plain("ingest_conflict").await;
    let db = &test.db;
    let f = fixture(db, "acme").await;
    let series = one_series(db, f.gateway).await;
    let t0 = Utc::now().timestamp_millis();
    let mut tx = db.begin_ingest().await.unwrap();
    stage(&mut tx, record(f.gateway, 1, 7), series, t0, 3);
    tx.commit().await.unwrap();
    let mut tx = db.begin_ingest().await.unwrap();
    stage(
        &mut tx,
        record(f.gateway, 1, u64::MAX),
        series,
        t0 + 60_000,
        3,
    );
    let outcome = tx.commit().await.unwrap();
    assert!(outcome.stored.is_empty() && outcome.duplicates.is_empty());
    assert_eq!(
        outcome.conflicts,
        vec![SeqConflict {
            gateway: f.gateway,
            epoch: 0,
            seq: 1,
            stored_boot_id: 7,
            incoming_boot_id: u64::MAX,
        }]
    );
    assert_eq!(count(db, "SELECT count(*) FROM telemetry").await, 3);
    test.finish().await;
}

#[tokio::test]
async fn a_failing_commit_stores_nothing_of_the_transaction() {
    let test = TestDb::plain("ingest_atomic").await;
    let db = &test.db;
    let f = fixture(db, "acme").await;
    let series = one_series(db, f.gateway).await;
    let t0 = Utc::now().timestamp_millis();
    let mut tx = db.begin_ingest().await.unwrap();
    stage(&mut tx, record(f.gateway, 1, 7), series, t0, 3);
    stage(&mut tx, record(GatewayId(999_999), 1, 7), series, t0, 3);
    let err = tx.commit().await.unwrap_err();
    assert!(matches!(err, DbError::NotFound(_)), "{err}");
    assert_eq!(count(db, "SELECT count(*) FROM telemetry").await, 0);
    assert_eq!(count(db, "SELECT count(*) FROM ingested_batches").await, 0);
    assert_eq!(count(db, "SELECT count(*) FROM rollup_dirty").await, 0);
    // Unrepresentable times are refused at push time, before anything is sent.
    let mut tx = db.begin_ingest().await.unwrap();
    let mut batch = tx.record_batch(record(f.gateway, 2, 7)).unwrap().unwrap();
    let bad = TelemetryRow {
        ts_ms: i64::MAX,
        series_id: series,
        value: Some(1.0),
        quality: Quality::Good,
    };
    assert!(matches!(batch.push(&bad), Err(DbError::Invalid { .. })));
    assert_eq!(batch.sample_count(), 0);
    tx.rollback().await.unwrap();
    test.finish().await;
}

#[tokio::test]
async fn every_write_to_telemetry_records_dirty_ranges_per_series() {
    let test = TestDb::plain("ingest_dirty").await;
    let db = &test.db;
    let f = fixture(db, "acme").await;
    let series = one_series(db, f.gateway).await;
    let t0 = Utc::now().timestamp_millis() - 3_600_000;
    let mut tx = db.begin_ingest().await.unwrap();
    stage(&mut tx, record(f.gateway, 1, 7), series, t0, 10);
    stage(&mut tx, record(f.gateway, 2, 7), series, t0 - 500_000, 2);
    tx.commit().await.unwrap();
    let ranges = || async {
        sqlx::query_as::<_, (i64, DateTime<Utc>, DateTime<Utc>)>(
            "SELECT series_id, from_time, to_time FROM rollup_dirty ORDER BY from_time",
        )
        .fetch_all(db.pool())
        .await
        .unwrap()
    };
    // One COPY: one range covering both batches.
    let after_ingest = ranges().await;
    assert_eq!(after_ingest.len(), 1);
    assert_eq!(after_ingest[0].0, series.0);
    assert_eq!(after_ingest[0].1.timestamp_millis(), t0 - 500_000);
    assert_eq!(after_ingest[0].2.timestamp_millis(), t0 + 9_000);
    // Corrections by other writers are tracked too.
    let at = |ms: i64| DateTime::<Utc>::from_timestamp_millis(ms).unwrap();
    sqlx::query("UPDATE telemetry SET value = 42 WHERE time = $1")
        .bind(at(t0 + 3_000))
        .execute(db.pool())
        .await
        .unwrap();
    sqlx::query("DELETE FROM telemetry WHERE time = $1")
        .bind(at(t0 + 5_000))
        .execute(db.pool())
        .await
        .unwrap();
    let all = ranges().await;
    assert_eq!(all.len(), 4, "{all:?}");
    let singles: Vec<i64> = all[1..].iter().map(|r| r.1.timestamp_millis()).collect();
    assert_eq!(singles, vec![t0 + 3_000, t0 + 3_000, t0 + 5_000]);
    test.finish().await;
}

#[tokio::test]
async fn births_are_idempotent_and_give_the_alias_map_of_their_boot() {
    let test = TestDb::plain("ingest_birth").await;
    let db = &test.db;
    let f = fixture(db, "acme").await;
    let now = Utc::now();
    let first = birth(
        1,
        now.timestamp_millis(),
        &["tubing_pressure_psi", "casing_pressure_psi"],
    );
    let map1 = db.apply_birth(f.gateway, &first, now).await.unwrap();
    assert_eq!(db.apply_birth(f.gateway, &first, now).await.unwrap(), map1);
    assert_eq!(
        db.alias_map(f.gateway, 1).await.unwrap(),
        Some(map1.clone())
    );
    assert_eq!(db.alias_map(f.gateway, 2).await.unwrap(), None);
    assert_eq!(map1.len(), 2);
    let entry = map1.get(0, 0).unwrap();
    assert_eq!(entry.engineering(1234.0), 123.4);

    // Boot 2 reorders the metrics (new aliases) and adds one: same series by name.
    let mut second = birth(
        2,
        now.timestamp_millis() + 1000,
        &[
            "casing_pressure_psi",
            "tubing_pressure_psi",
            "line_pressure_psi",
        ],
    );
    second.agent_version = "0.2.0".into();
    let map2 = db.apply_birth(f.gateway, &second, now).await.unwrap();
    assert_eq!(
        map2.get(0, 1).unwrap().series_id,
        map1.get(0, 0).unwrap().series_id
    );
    assert_eq!(
        map2.get(0, 0).unwrap().series_id,
        map1.get(0, 1).unwrap().series_id
    );
    assert_eq!(count(db, "SELECT count(*) FROM series").await, 3);
    assert_eq!(count(db, "SELECT count(*) FROM devices").await, 1);
    // Boot 1's map is still there for its backlog.
    assert_eq!(db.alias_map(f.gateway, 1).await.unwrap(), Some(map1));

    // Re-publishing the old birth does not roll the gateway back.
    db.apply_birth(f.gateway, &first, now).await.unwrap();
    let info = db.lookup_gateway("acme", "gw-01").await.unwrap().unwrap();
    assert_eq!(info.last_boot_id, Some(2));
    let version: String = sqlx::query_scalar("SELECT agent_version FROM gateways")
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert_eq!(version, "0.2.0");

    // The device's `well` info linked it to the well; queries by well find its series.
    let series = db
        .series_for_well(f.well, "tubing_pressure_psi")
        .await
        .unwrap();
    assert_eq!(series, vec![map1_series(db, f.gateway).await]);
    test.finish().await;
}

async fn map1_series(db: &Db, gateway: GatewayId) -> SeriesId {
    db.alias_map(gateway, 1)
        .await
        .unwrap()
        .unwrap()
        .get(0, 0)
        .unwrap()
        .series_id
}

#[tokio::test]
async fn inconsistent_births_are_refused_without_side_effects() {
    let test = TestDb::plain("ingest_badbirth").await;
    let db = &test.db;
    let f = fixture(db, "acme").await;
    let now = Utc::now();
    let mut repeated_metric = birth(1, now.timestamp_millis(), &["h2s_ppm", "h2s_ppm"]);
    let mut repeated_alias = birth(1, now.timestamp_millis(), &["h2s_ppm"]);
    repeated_alias.devices[0]
        .metrics
        .push(metric(0, "lel_pct", 1.0));
    let mut nan_scale = birth(1, now.timestamp_millis(), &["h2s_ppm"]);
    nan_scale.devices[0].metrics[0].scale = f64::NAN;
    let mut twin_devices = birth(1, now.timestamp_millis(), &["h2s_ppm"]);
    let mut twin = twin_devices.devices[0].clone();
    twin.alias = 1;
    twin_devices.devices.push(twin);
    repeated_metric.devices[0].name = "gas-1".into();
    for bad in [repeated_metric, repeated_alias, nan_scale, twin_devices] {
        let err = db.apply_birth(f.gateway, &bad, now).await.unwrap_err();
        assert!(matches!(err, DbError::Invalid { .. }), "{err}");
    }
    assert_eq!(count(db, "SELECT count(*) FROM gateway_births").await, 0);
    assert_eq!(count(db, "SELECT count(*) FROM devices").await, 0);
    let err = db
        .apply_birth(GatewayId(999_999), &birth(1, 0, &["h2s_ppm"]), now)
        .await
        .unwrap_err();
    assert!(matches!(err, DbError::NotFound(_)), "{err}");
    test.finish().await;
}

#[tokio::test]
async fn custom_metrics_are_stored_with_their_kind_and_bad_ones_refused() {
    let test = TestDb::plain("ingest_custom").await;
    let db = &test.db;
    let f = fixture(db, "acme").await;
    let now = Utc::now();
    let mut good = birth(
        1,
        now.timestamp_millis(),
        &[
            "tubing_pressure_psi",
            "custom.separator_level",
            "custom.valve_cycles",
        ],
    );
    good.devices[0].metrics[1].kind = Some(wire::MetricKind::Gauge);
    good.devices[0].metrics[2].kind = Some(wire::MetricKind::Counter);
    good.devices[0].metrics[2].unit = "count".into();
    let map = db.apply_birth(f.gateway, &good, now).await.unwrap();
    assert_eq!(map.len(), 3);
    let rows: Vec<(String, String, Option<String>, String)> =
        sqlx::query_as("SELECT metric, unit, kind, namespace FROM series ORDER BY metric")
            .fetch_all(db.pool())
            .await
            .unwrap();
    let owned = |m: &str, u: &str, k: Option<&str>, ns: &str| {
        (
            m.to_owned(),
            u.to_owned(),
            k.map(str::to_owned),
            ns.to_owned(),
        )
    };
    assert_eq!(
        rows,
        vec![
            owned("custom.separator_level", "psi", Some("gauge"), "custom"),
            owned("custom.valve_cycles", "count", Some("counter"), "custom"),
            owned("tubing_pressure_psi", "psi", None, "canonical"),
        ]
    );
    // A later birth without kinds (an older agent) keeps the declared kind.
    let mut older = good.clone();
    older.boot_id = 2;
    older.ts_ms += 1000;
    older.devices[0]
        .metrics
        .iter_mut()
        .for_each(|m| m.kind = None);
    db.apply_birth(f.gateway, &older, now).await.unwrap();
    assert_eq!(
        count(db, "SELECT count(*) FROM series WHERE kind IS NOT NULL").await,
        2
    );

    for (name, unit, expected) in [
        ("vendor.flow", "psi", "unknown metric namespace \"vendor\""),
        ("custom.h2s_ppm", "ppm", "never shadows a canonical one"),
        ("custom.Flow", "psi", "must be snake_case"),
        ("custom.flow", "deg C", "may only hold ASCII letters"),
        ("custom.flow", "", "unit must be 1 to 16 bytes"),
    ] {
        let mut bad = birth(3, now.timestamp_millis() + 5000, &[name]);
        bad.devices[0].metrics[0].unit = unit.into();
        let err = db.apply_birth(f.gateway, &bad, now).await.unwrap_err();
        assert!(matches!(err, DbError::Invalid { .. }), "{name}: {err}");
        assert!(err.to_string().contains(expected), "{name}: {err}");
    }
    assert_eq!(count(db, "SELECT count(*) FROM gateway_births").await, 2);
    test.finish().await;
}

#[tokio::test]
async fn gateway_credentials_verify_only_the_right_secret() {
    let test = TestDb::plain("ingest_cred").await;
    let db = &test.db;
    let f = fixture(db, "acme").await;
    let ok = db
        .verify_gateway_credential("acme", "gw-01", &f.secret)
        .await
        .unwrap()
        .expect("right secret accepted");
    assert_eq!(
        (ok.id, ok.tenant_id, ok.site_id),
        (f.gateway, f.tenant, f.site)
    );
    assert_eq!(
        (ok.tenant_slug.as_str(), ok.slug.as_str()),
        ("acme", "gw-01")
    );
    for (tenant, gateway, secret) in [
        ("acme", "gw-01", "not-the-secret-at-all"),
        ("acme", "gw-02", f.secret.as_str()),
        ("other", "gw-01", f.secret.as_str()),
    ] {
        let verdict = db
            .verify_gateway_credential(tenant, gateway, secret)
            .await
            .unwrap();
        assert!(verdict.is_none(), "{tenant}/{gateway}");
    }
    let stored: String = sqlx::query_scalar("SELECT credential_hash FROM gateways")
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert!(!stored.contains(&f.secret));
    // Rotation: the old secret stops working.
    let new_secret = store::registry::generate_gateway_secret();
    db.set_gateway_secret(f.gateway, &new_secret).await.unwrap();
    assert!(
        db.verify_gateway_credential("acme", "gw-01", &f.secret)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        db.verify_gateway_credential("acme", "gw-01", &new_secret)
            .await
            .unwrap()
            .is_some()
    );
    assert!(matches!(
        db.create_gateway(f.tenant, f.site, "gw-02", "short").await,
        Err(DbError::Invalid { .. })
    ));
    assert!(matches!(
        db.create_gateway(f.tenant, f.site, "Bad Id!", &new_secret)
            .await,
        Err(DbError::Invalid { .. })
    ));
    test.finish().await;
}

#[tokio::test]
async fn gateway_status_online_offline_and_rejections() {
    let test = TestDb::plain("ingest_status").await;
    let db = &test.db;
    let f = fixture(db, "acme").await;
    let now = Utc::now();
    db.apply_birth(
        f.gateway,
        &birth(5, now.timestamp_millis(), &["h2s_ppm"]),
        now,
    )
    .await
    .unwrap();
    assert!(
        db.lookup_gateway("acme", "gw-01")
            .await
            .unwrap()
            .unwrap()
            .online
    );
    let status = wire::BufferStatus {
        pending_batches: 12,
        pending_bytes: 34_000,
        oldest_age_ms: 56_000,
        dropped_samples: 7,
        dropped_batches: 1,
    };
    db.update_gateway_status(
        f.gateway,
        Some(&status),
        Some(-1500),
        now + TimeDelta::seconds(5),
    )
    .await
    .unwrap();
    // A later header without status keeps the last known status.
    db.update_gateway_status(f.gateway, None, None, now + TimeDelta::seconds(6))
        .await
        .unwrap();
    let row: (i64, i64, i64, i64, i64, i64, DateTime<Utc>) = sqlx::query_as(
        "SELECT buffer_pending_batches, buffer_pending_bytes, buffer_oldest_age_ms,
                buffer_dropped_samples, buffer_dropped_batches, clock_skew_ms, last_seen
         FROM gateways",
    )
    .fetch_one(db.pool())
    .await
    .unwrap();
    assert_eq!(
        (row.0, row.1, row.2, row.3, row.4, row.5),
        (12, 34_000, 56_000, 7, 1, -1500)
    );
    assert_eq!(
        row.6.timestamp_millis(),
        (now + TimeDelta::seconds(6)).timestamp_millis()
    );

    // A late death of an older session is ignored; the current one's is not.
    assert!(
        !db.mark_gateway_offline(f.gateway, Some(4), now)
            .await
            .unwrap()
    );
    assert!(
        db.lookup_gateway("acme", "gw-01")
            .await
            .unwrap()
            .unwrap()
            .online
    );
    assert!(
        db.mark_gateway_offline(f.gateway, Some(5), now)
            .await
            .unwrap()
    );
    assert!(
        !db.lookup_gateway("acme", "gw-01")
            .await
            .unwrap()
            .unwrap()
            .online
    );
    db.mark_gateway_online(f.gateway, now).await.unwrap();
    assert!(
        db.lookup_gateway("acme", "gw-01")
            .await
            .unwrap()
            .unwrap()
            .online
    );

    db.record_rejection(&Rejection {
        tenant_id: None,
        tenant: "nobody",
        gateway: "gw-x",
        topic: "wp/v1/nobody/gw-x/data",
        reason: "unknown tenant",
        payload_size: 123,
    })
    .await
    .unwrap();
    let (reason, size): (String, i32) =
        sqlx::query_as("SELECT reason, payload_size FROM ingest_rejections")
            .fetch_one(db.pool())
            .await
            .unwrap();
    assert_eq!((reason.as_str(), size), ("unknown tenant", 123));
    test.finish().await;
}

#[tokio::test]
async fn raw_queries_return_values_and_qualities_in_time_order() {
    let test = TestDb::plain("ingest_raw").await;
    let db = &test.db;
    let f = fixture(db, "acme").await;
    let series = one_series(db, f.gateway).await;
    let t0 = Utc::now().timestamp_millis() / 1000 * 1000 - 100_000;
    let qualities = [
        Quality::Good,
        Quality::Bad,
        Quality::Stale,
        Quality::Uncertain,
    ];
    let mut tx = db.begin_ingest().await.unwrap();
    let mut batch = tx.record_batch(record(f.gateway, 1, 7)).unwrap().unwrap();
    for i in (0..20i64).rev() {
        let quality = qualities[i as usize % 4];
        batch
            .push(&TelemetryRow {
                ts_ms: t0 + i * 1000,
                series_id: series,
                value: (quality != Quality::Bad).then_some(i as f64 * 0.5),
                quality,
            })
            .unwrap();
    }
    tx.commit().await.unwrap();
    let from = DateTime::from_timestamp_millis(t0 + 2000).unwrap();
    let to = DateTime::from_timestamp_millis(t0 + 20_000).unwrap();
    let samples = db
        .raw_for_well(f.well, "tubing_pressure_psi", from, to, 5)
        .await
        .unwrap();
    assert_eq!(samples.len(), 5);
    for (k, s) in samples.iter().enumerate() {
        let i = k as i64 + 2;
        assert_eq!(s.time.timestamp_millis(), t0 + i * 1000);
        assert_eq!(s.quality, qualities[i as usize % 4]);
        let expected = (s.quality != Quality::Bad).then_some(i as f64 * 0.5);
        assert_eq!(s.value, expected);
        assert_eq!(s.series_id, series);
    }
    let none = db
        .raw_for_well(f.well, "no_such_metric", from, to, 5)
        .await
        .unwrap();
    assert!(none.is_empty());
    test.finish().await;
}

#[tokio::test]
async fn the_broker_login_question_follows_rotation_and_the_registry_lists_every_gateway() {
    let test = TestDb::plain("ingest_login").await;
    let db = &test.db;
    let f = fixture(db, "acme").await;
    assert!(
        db.gateway_may_log_in("acme", "gw-01", &f.secret)
            .await
            .unwrap()
    );
    assert!(
        !db.gateway_may_log_in("acme", "gw-01", "wrong-secret-123456")
            .await
            .unwrap()
    );
    assert!(
        !db.gateway_may_log_in("acme", "gw-09", &f.secret)
            .await
            .unwrap()
    );
    let new_secret = store::registry::generate_gateway_secret();
    db.set_gateway_secret(f.gateway, &new_secret).await.unwrap();
    assert!(
        !db.gateway_may_log_in("acme", "gw-01", &f.secret)
            .await
            .unwrap(),
        "revoked"
    );
    assert!(
        db.gateway_may_log_in("acme", "gw-01", &new_secret)
            .await
            .unwrap()
    );
    db.provision_gateway("globex", "pad", "gw-02", &new_secret)
        .await
        .unwrap();
    assert_eq!(
        db.gateway_logins().await.unwrap(),
        vec![
            ("acme".to_owned(), "gw-01".to_owned()),
            ("globex".to_owned(), "gw-02".to_owned())
        ]
    );
    // A kick request reaches a listener.
    let mut kicks = db.broker_kicks().await.unwrap();
    db.notify_broker_kick("acme/gw-01").await.unwrap();
    let got = tokio::time::timeout(std::time::Duration::from_secs(30), kicks.recv())
        .await
        .expect("the notification arrives")
        .unwrap();
    assert_eq!(got, "acme/gw-01");
    // The listener's connection goes back before the pool closes (closing waits for it).
    drop(kicks);
    test.finish().await;
}
