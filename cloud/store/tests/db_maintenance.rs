//! Maintenance on the plain PostgreSQL back-end: rollups from dirty ranges (late backfill
//! included) against aggregates computed directly from raw data, bucketed queries, daily
//! partitions ahead, the DEFAULT partition, and retention.

use std::time::Duration;

use chrono::{DateTime, DurationRound, NaiveDate, TimeDelta, Utc};
use store::maintenance::{self, run_once_at};
use store::{Db, StorageOptions, TelemetryRow};
use testkit::db::{
    TestDb, Values, Writer, assert_queries_match_raw, assert_rollups_match_raw, assert_same,
    fixture, rollup, samples, tenant_rows_before, three_series, two_plans_with_history,
};
use wire::Quality;

#[tokio::test]
async fn rollups_and_bucketed_queries_match_raw_data_after_late_inserts() {
    let test = TestDb::plain("maint_rollups").await;
    let db = &test.db;
    let f = fixture(db, "acme").await;
    let series = three_series(db, f.gateway).await;
    let mut writer = Writer {
        gateway: f.gateway,
        seq: 0,
    };
    let mut values = Values(42);
    // Three hours across UTC midnight, yesterday to today, in 30-minute batches.
    let midnight = Utc::now().duration_trunc(TimeDelta::days(1)).unwrap();
    let start = midnight - TimeDelta::minutes(90);
    for half_hour in 0..6 {
        let from = start + TimeDelta::minutes(30 * half_hour);
        let rows = samples(&series, from, 1800, 10, &mut values);
        writer.write(db, &rows, Utc::now()).await;
    }
    let report = maintenance::run_once(db).await.unwrap();
    assert!(report.dirty_ranges >= 6, "{report:?}");
    assert!(
        report
            .partitions_created
            .iter()
            .any(|p| p.ends_with(&yyyymmdd(start)))
    );
    assert_rollups_match_raw(db).await;

    // Late backfill: between existing samples, before the start, and a new day.
    let late = samples(
        &series[..2],
        start + TimeDelta::seconds(5),
        3600,
        20,
        &mut values,
    );
    writer.write(db, &late, Utc::now()).await;
    let mut extremes = samples(
        &series[1..],
        start - TimeDelta::hours(30),
        120,
        7,
        &mut values,
    );
    extremes.push(TelemetryRow {
        ts_ms: (midnight + TimeDelta::seconds(3)).timestamp_millis(),
        series_id: series[2],
        value: Some(1e9),
        quality: Quality::Good,
    });
    writer.write(db, &extremes, Utc::now()).await;

    // Before maintenance, queries are already exact (pending ranges come from raw) ...
    let (from, to) = (start - TimeDelta::hours(31), start + TimeDelta::hours(4));
    assert_queries_match_raw(db, &series, from, to).await;
    // ... and after it, from the recomputed rollups.
    let report = maintenance::run_once(db).await.unwrap();
    assert_eq!(report.dirty_ranges, 4, "{report:?}");
    assert_rollups_match_raw(db).await;
    assert_queries_match_raw(db, &series, from, to).await;
    let pending: i64 = sqlx::query_scalar("SELECT count(*) FROM rollup_dirty")
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert_eq!(pending, 0);

    // Idempotent: nothing left to do.
    let again = maintenance::run_once(db).await.unwrap();
    assert_eq!(again, maintenance::Report::default());
    assert_rollups_match_raw(db).await;
    test.finish().await;
}

fn yyyymmdd(t: DateTime<Utc>) -> String {
    t.format("%Y%m%d").to_string()
}

fn day(t: DateTime<Utc>) -> NaiveDate {
    t.date_naive()
}

async fn count(db: &Db, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(db.pool()).await.unwrap()
}

async fn partition_of(db: &Db, ts: DateTime<Utc>) -> String {
    sqlx::query_scalar("SELECT tableoid::regclass::text FROM telemetry WHERE time = $1 LIMIT 1")
        .bind(ts)
        .fetch_one(db.pool())
        .await
        .unwrap()
}

async fn partitions(db: &Db) -> Vec<String> {
    let mut names: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
         WHERE i.inhparent = 'telemetry'::regclass",
    )
    .fetch_all(db.pool())
    .await
    .unwrap();
    names.sort();
    names
}

#[tokio::test]
async fn partitions_are_created_ahead_and_dropped_by_retention() {
    let options = StorageOptions {
        backend: store::BackendChoice::Postgres,
        retention: Some(Duration::from_secs(30 * 86_400)),
        partitions_ahead_days: 7,
        ..StorageOptions::default()
    };
    let test = TestDb::with_options("maint_parts", options).await;
    let db = &test.db;
    let f = fixture(db, "acme").await;
    let series = three_series(db, f.gateway).await;
    let mut writer = Writer {
        gateway: f.gateway,
        seq: 0,
    };
    let now = Utc::now();
    let then = now - TimeDelta::days(40);
    let today_parts = partitions(db).await;
    assert_eq!(today_parts.len(), 9, "{today_parts:?}");

    // Maintenance "40 days ago" creates that day and 7 ahead.
    let report = run_once_at(db, then).await.unwrap();
    assert_eq!(report.partitions_created.len(), 8, "{report:?}");
    assert!(report.partitions_created[0].ends_with(&yyyymmdd(then)));
    assert!(report.partitions_dropped.is_empty());

    // A sample on a day with a partition lands there; days without go to DEFAULT.
    let noon =
        |t: DateTime<Utc>| t.duration_trunc(TimeDelta::days(1)).unwrap() + TimeDelta::hours(12);
    let (in_part, in_default, oldest) = (
        noon(then),
        noon(now - TimeDelta::days(50)),
        noon(now - TimeDelta::days(60)),
    );
    let one = |ts: DateTime<Utc>, value: f64| TelemetryRow {
        ts_ms: ts.timestamp_millis(),
        series_id: series[0],
        value: Some(value),
        quality: Quality::Good,
    };
    for ts in [in_part, in_default, oldest] {
        writer.write(db, &[one(ts, 1.0)], then).await;
    }
    assert_eq!(
        partition_of(db, in_part).await,
        format!("telemetry_p{}", yyyymmdd(in_part))
    );
    assert_eq!(partition_of(db, in_default).await, "telemetry_default");

    // The next run moves the DEFAULT rows into partitions of their own days.
    let report = run_once_at(db, then).await.unwrap();
    let expected: Vec<String> = [oldest, in_default]
        .iter()
        .map(|t| format!("telemetry_p{}", yyyymmdd(*t)))
        .collect();
    assert_eq!(report.partitions_created, expected);
    assert_eq!(report.rows_moved, 2);
    assert_eq!(partition_of(db, in_default).await, expected[1]);
    assert_eq!(count(db, "SELECT count(*) FROM telemetry_1d").await, 3);

    // Late rows: one for the oldest day (which will be past the retention), one for a day
    // without partition (DEFAULT). Then maintenance at the real date.
    writer
        .write(db, &[one(oldest + TimeDelta::minutes(1), 500.0)], now)
        .await;
    let in_default_old = noon(now - TimeDelta::days(45));
    writer.write(db, &[one(in_default_old, 3.0)], now).await;
    let day_before = rollup(db, "telemetry_1d").await;
    let report = run_once_at(db, now).await.unwrap();
    assert_eq!(report.partitions_dropped.len(), 10, "{report:?}");
    assert_eq!(report.default_rows_expired, 1);
    assert_eq!(
        report.bookkeeping_expired, 3,
        "the batches received 40 days ago"
    );
    assert!(report.partitions_created.is_empty(), "{report:?}");
    assert_eq!(report.dirty_ranges, 2);
    assert_eq!(
        report.rollup_rows, 0,
        "buckets older than the retention are left alone"
    );
    assert_eq!(partitions(db).await, today_parts);
    assert_eq!(count(db, "SELECT count(*) FROM telemetry").await, 0);
    // Rollups outlive the raw data, and the late row did not wipe the oldest day's.
    assert_same(
        "telemetry_1d",
        &rollup(db, "telemetry_1d").await,
        &day_before,
    );
    assert_eq!(day_before.len(), 3);
    assert!(day(now) > day(then));

    // Idempotent.
    let again = run_once_at(db, now).await.unwrap();
    assert_eq!(again, maintenance::Report::default());
    test.finish().await;
}

/// A plan's retention deletes only its tenants' samples older than the cutoff; the rollups
/// follow at the next maintenance run; another plan's tenant keeps everything.
#[tokio::test]
async fn a_plans_retention_expires_only_its_tenants_old_history() {
    let test = TestDb::plain("maint_plan_retention").await;
    let db = &test.db;
    let now = Utc::now().duration_trunc(TimeDelta::hours(1)).unwrap();
    let (short, long) = two_plans_with_history(db, now, &[12, 8, 1]).await;
    run_once_at(db, now).await.unwrap();
    let future = now + TimeDelta::days(1);
    let (short_before, long_before) = (
        tenant_rows_before(db, short.tenant, future).await,
        tenant_rows_before(db, long.tenant, future).await,
    );
    assert_eq!(short_before, long_before);

    let plans = [
        (
            "starter".to_owned(),
            store::tenants::PlanLimits {
                retention: Some(Duration::from_secs(10 * 86_400)),
                ..Default::default()
            },
        ),
        ("standard".to_owned(), store::tenants::PlanLimits::default()),
    ]
    .into();
    let deleted = maintenance::expire_plan_telemetry(db, &plans, now)
        .await
        .unwrap();
    let cutoff = now - TimeDelta::days(10);
    assert_eq!(
        tenant_rows_before(db, short.tenant, cutoff).await,
        0,
        "old history expired"
    );
    assert_eq!(
        deleted,
        [(
            "starter".to_owned(),
            (short_before - tenant_rows_before(db, short.tenant, future).await) as u64
        )]
    );
    assert!(deleted[0].1 > 0);
    assert!(
        tenant_rows_before(db, short.tenant, future).await > 0,
        "recent history kept"
    );
    assert_eq!(
        tenant_rows_before(db, long.tenant, future).await,
        long_before,
        "other plans untouched"
    );

    // The rollups of the expired days follow at the next maintenance run.
    let report = run_once_at(db, now).await.unwrap();
    assert!(report.dirty_ranges > 0, "{report:?}");
    assert_rollups_match_raw(db).await;
    test.finish().await;
}
