//! The TimescaleDB back-end. Runs only where the server offers the extension (it needs
//! `shared_preload_libraries = 'timescaledb'`); elsewhere it prints why it skipped.
//!
//! Checks: the hypertable and its chunk interval, compression settings, the policies
//! (and that a restart with other options replaces them), the continuous aggregates
//! (real-time before refresh, materialized after) against aggregates computed from raw
//! data, bucketed queries, and that maintenance runs on this back-end too.

use std::time::Duration;

use chrono::{DurationRound, TimeDelta, Utc};
use sqlx::Row;
use store::{Backend, BackendChoice, Db, StorageOptions, maintenance};
use testkit::db::{
    TestDb, Values, Writer, assert_queries_match_raw, assert_rollups_match_raw, fixture, samples,
    tenant_rows_before, three_series, timescale_or_skip, two_plans_with_history,
};

/// `(column, segmentby index, orderby index, orderby ascending)`.
type CompressionColumn = (String, Option<i16>, Option<i16>, Option<bool>);

fn options(compress_after_days: u64) -> StorageOptions {
    StorageOptions {
        backend: BackendChoice::Timescale,
        chunk_interval: Duration::from_secs(86_400),
        compress_after: Duration::from_secs(compress_after_days * 86_400),
        retention: Some(Duration::from_secs(30 * 86_400)),
        partitions_ahead_days: 7,
    }
}

/// `(proc_name, config)` of the background jobs of the telemetry relations.
async fn jobs(db: &Db) -> Vec<(String, serde_json::Value)> {
    sqlx::query(
        "SELECT j.proc_name::text AS proc, j.config
         FROM timescaledb_information.jobs j
         WHERE j.proc_name IN ('policy_compression', 'policy_retention',
                               'policy_refresh_continuous_aggregate')
         ORDER BY 1, 2::text",
    )
    .fetch_all(db.pool())
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get("proc"), r.get("config")))
    .collect()
}

/// Refreshes every aggregate completely. The refresh policies start running as soon as they
/// are added, and TimescaleDB refuses a refresh overlapping one in progress (SQLSTATE 55P03),
/// so a refresh that collides with a policy run is retried.
async fn refresh_all(db: &Db) {
    for view in ["telemetry_1m", "telemetry_1h", "telemetry_1d"] {
        let mut attempt = 0;
        loop {
            let result = sqlx::query(&format!(
                "CALL refresh_continuous_aggregate('{view}', NULL, NULL)"
            ))
            .execute(db.pool())
            .await;
            match result {
                Ok(_) => break,
                Err(sqlx::Error::Database(e))
                    if e.code().as_deref() == Some("55P03") && attempt < 50 =>
                {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("refresh {view}: {e}"),
            }
        }
    }
}

#[tokio::test]
async fn timescale_backend_stores_compresses_and_aggregates() {
    if !timescale_or_skip("TimescaleDB back-end test (plain PostgreSQL: db_maintenance)").await {
        return;
    }

    let test = TestDb::with_options("ts_backend", options(7)).await;
    let db = &test.db;
    assert_eq!(db.backend().await.unwrap(), Backend::Timescale);

    let interval: String = sqlx::query_scalar(
        "SELECT time_interval::text FROM timescaledb_information.dimensions
         WHERE hypertable_name = 'telemetry' AND column_name = 'time'",
    )
    .fetch_one(db.pool())
    .await
    .unwrap();
    assert_eq!(interval, "1 day");
    let compression: Vec<CompressionColumn> = sqlx::query_as(
        "SELECT attname::text, segmentby_column_index, orderby_column_index, orderby_asc
         FROM timescaledb_information.compression_settings
         WHERE hypertable_name = 'telemetry' ORDER BY attname",
    )
    .fetch_all(db.pool())
    .await
    .unwrap();
    assert!(
        compression.contains(&("series_id".into(), Some(1), None, None)),
        "{compression:?}"
    );
    assert!(
        compression.contains(&("time".into(), None, Some(1), Some(false))),
        "{compression:?}"
    );
    let caggs: Vec<(String, bool)> = sqlx::query_as(
        "SELECT view_name::text, materialized_only FROM timescaledb_information.continuous_aggregates
         ORDER BY view_name",
    )
    .fetch_all(db.pool())
    .await
    .unwrap();
    assert_eq!(
        caggs,
        vec![
            ("telemetry_1d".into(), false),
            ("telemetry_1h".into(), false),
            ("telemetry_1m".into(), false)
        ]
    );

    let jobs_7 = jobs(db).await;
    let procs: Vec<&str> = jobs_7.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        procs,
        vec![
            "policy_compression",
            "policy_refresh_continuous_aggregate",
            "policy_refresh_continuous_aggregate",
            "policy_refresh_continuous_aggregate",
            "policy_retention"
        ]
    );
    let compress_after = |jobs: &[(String, serde_json::Value)]| {
        jobs.iter()
            .find(|(p, _)| p == "policy_compression")
            .map(|(_, c)| c["compress_after"].as_str().unwrap_or_default().to_string())
            .unwrap()
    };
    assert_eq!(compress_after(&jobs_7), "7 days");

    // A restart with another compress_after replaces the policies instead of piling up.
    let restarted = Db::connect_with(test.url(), options(3)).await.unwrap();
    assert_eq!(restarted.migrate().await.unwrap(), Backend::Timescale);
    let jobs_3 = jobs(&restarted).await;
    assert_eq!(jobs_3.len(), 5);
    assert_eq!(compress_after(&jobs_3), "3 days");
    restarted.pool().close().await;

    // Data across midnight, then a late backfill; aggregates match raw data both through
    // the real-time part (before refresh) and the materialized part (after). The policies
    // are paused so that no refresh runs between the writes (see `pause_jobs`).
    pause_jobs(db).await;
    let f = fixture(db, "acme").await;
    let series = three_series(db, f.gateway).await;
    let mut writer = Writer {
        gateway: f.gateway,
        seq: 0,
    };
    let mut values = Values(9);
    let midnight = Utc::now().duration_trunc(TimeDelta::days(1)).unwrap();
    let start = midnight - TimeDelta::minutes(90);
    for half_hour in 0..6 {
        let from = start + TimeDelta::minutes(30 * half_hour);
        writer
            .write(
                db,
                &samples(&series, from, 1800, 10, &mut values),
                Utc::now(),
            )
            .await;
    }
    let dirty: i64 = sqlx::query_scalar("SELECT count(*) FROM rollup_dirty")
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert_eq!(dirty, 0, "TimescaleDB tracks invalidations itself");
    let (from, to) = (start - TimeDelta::hours(1), start + TimeDelta::hours(4));
    assert_rollups_match_raw(db).await;
    assert_queries_match_raw(db, &series, from, to).await;
    refresh_all(db).await;
    assert_rollups_match_raw(db).await;
    let late = samples(
        &series[..2],
        start + TimeDelta::seconds(5),
        3600,
        20,
        &mut values,
    );
    writer.write(db, &late, Utc::now()).await;
    refresh_all(db).await;
    assert_rollups_match_raw(db).await;
    assert_queries_match_raw(db, &series, from, to).await;

    // Maintenance has no partitions to manage here but runs cleanly.
    let report = maintenance::run_once(db).await.unwrap();
    assert!(report.partitions_created.is_empty() && report.dirty_ranges == 0);
    test.finish().await;
}

/// Id of the background job `proc` of `telemetry` (or of the aggregate `view`).
async fn job_id(db: &Db, proc: &str, view: Option<&str>) -> i32 {
    sqlx::query_scalar(
        "SELECT job_id FROM timescaledb_information.jobs
         WHERE proc_name = $1 AND hypertable_name = coalesce($2, 'telemetry')",
    )
    .bind(proc)
    .bind(view)
    .fetch_one(db.pool())
    .await
    .unwrap()
}

/// Stops the scheduler from starting the telemetry jobs (they first run right when they are
/// added) and waits for running ones to finish, so the test decides when aggregates are
/// materialized. While a refresh policy runs between writes, buckets below the aggregate's
/// watermark show what was materialized until the next run, not the latest raw data.
async fn pause_jobs(db: &Db) {
    sqlx::query(
        "SELECT alter_job(job_id, scheduled => false) FROM timescaledb_information.jobs
         WHERE proc_name IN ('policy_compression', 'policy_retention',
                             'policy_refresh_continuous_aggregate')",
    )
    .execute(db.pool())
    .await
    .unwrap();
    for _ in 0..200 {
        let running: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM timescaledb_information.job_stats
             WHERE job_id >= 1000 AND job_status = 'Running'",
        )
        .fetch_one(db.pool())
        .await
        .unwrap();
        if running == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("TimescaleDB jobs still running after 10 s");
}

async fn run_job(db: &Db, job: i32) {
    sqlx::query("CALL run_job($1)")
        .bind(job)
        .execute(db.pool())
        .await
        .unwrap_or_else(|e| panic!("run_job({job}): {e}"));
}

async fn compressed_chunks(db: &Db) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM timescaledb_information.chunks
         WHERE hypertable_name = 'telemetry' AND is_compressed",
    )
    .fetch_one(db.pool())
    .await
    .unwrap()
}

#[tokio::test]
async fn timescale_accepts_the_shortest_compress_after() {
    if !timescale_or_skip("short compress_after test").await {
        return;
    }
    // The smallest settings `StorageOptions::validate` accepts.
    let options = StorageOptions {
        backend: BackendChoice::Timescale,
        chunk_interval: Duration::from_secs(3600),
        compress_after: Duration::from_secs(3600),
        retention: Some(Duration::from_secs(3600 + 2 * 86_400)),
        partitions_ahead_days: 1,
    };
    let test = TestDb::with_options("ts_short", options.clone()).await;
    let db = &test.db;
    let windows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT hypertable_name::text, config->>'start_offset', config->>'end_offset'
         FROM timescaledb_information.jobs
         WHERE proc_name = 'policy_refresh_continuous_aggregate'
         ORDER BY 1",
    )
    .fetch_all(db.pool())
    .await
    .unwrap();
    // Back to one day short of the retention; the daily level at least two buckets.
    assert_eq!(
        windows,
        vec![
            ("telemetry_1d".into(), "3 days".into(), "1 day".into()),
            (
                "telemetry_1h".into(),
                "1 day 02:00:00".into(),
                "01:00:00".into()
            ),
            (
                "telemetry_1m".into(),
                "1 day 01:01:00".into(),
                "00:01:00".into()
            ),
        ]
    );

    // Raw data kept forever: the aggregates are refreshed without a lower bound.
    let forever = Db::connect_with(
        test.url(),
        StorageOptions {
            retention: None,
            ..options
        },
    )
    .await
    .unwrap();
    forever.migrate().await.unwrap();
    let starts: Vec<Option<String>> = sqlx::query_scalar(
        "SELECT config->>'start_offset' FROM timescaledb_information.jobs
         WHERE proc_name = 'policy_refresh_continuous_aggregate'",
    )
    .fetch_all(forever.pool())
    .await
    .unwrap();
    assert_eq!(starts, vec![None, None, None]);
    let retention_jobs: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM timescaledb_information.jobs WHERE proc_name = 'policy_retention'",
    )
    .fetch_one(forever.pool())
    .await
    .unwrap();
    assert_eq!(retention_jobs, 0);
    forever.pool().close().await;
    test.finish().await;
}

#[tokio::test]
async fn timescale_policies_compress_backfill_and_expire() {
    if !timescale_or_skip("TimescaleDB policy test").await {
        return;
    }
    let test = TestDb::with_options("ts_policies", options(7)).await;
    let db = &test.db;
    pause_jobs(db).await;
    let f = fixture(db, "acme").await;
    let series = three_series(db, f.gateway).await;
    let mut writer = Writer {
        gateway: f.gateway,
        seq: 0,
    };
    let mut values = Values(17);
    let today = Utc::now().duration_trunc(TimeDelta::days(1)).unwrap();
    let old = today - TimeDelta::days(40); // past the 30-day retention
    let cold = today - TimeDelta::days(10); // past compress_after, within retention
    let warm = today - TimeDelta::hours(3);
    for from in [old, cold, warm] {
        writer
            .write(
                db,
                &samples(&series, from, 7200, 30, &mut values),
                Utc::now(),
            )
            .await;
    }
    for view in ["telemetry_1m", "telemetry_1h", "telemetry_1d"] {
        run_job(
            db,
            job_id(db, "policy_refresh_continuous_aggregate", Some(view)).await,
        )
        .await;
    }
    refresh_all(db).await;
    assert_rollups_match_raw(db).await;

    // The compression policy compresses the chunks older than compress_after only.
    assert_eq!(compressed_chunks(db).await, 0);
    run_job(db, job_id(db, "policy_compression", None).await).await;
    assert_eq!(compressed_chunks(db).await, 2, "the old and the cold day");
    let compressed_rows: i64 =
        sqlx::query_scalar("SELECT count(*) FROM telemetry WHERE time < now() - INTERVAL '7 days'")
            .fetch_one(db.pool())
            .await
            .unwrap();
    assert_eq!(compressed_rows, 2 * 3 * 240);

    // Late backlog into a compressed chunk (older than compress_after) is stored and reaches
    // the aggregates through the refresh policies alone.
    let late = samples(
        &series[..2],
        cold + TimeDelta::seconds(15),
        3600,
        30,
        &mut values,
    );
    writer.write(db, &late, Utc::now()).await;
    let raw = db
        .raw_series(&series, cold, cold + TimeDelta::hours(2), 10_000)
        .await
        .unwrap();
    assert_eq!(raw.len(), 3 * 240 + 2 * 120);
    for view in ["telemetry_1m", "telemetry_1h", "telemetry_1d"] {
        run_job(
            db,
            job_id(db, "policy_refresh_continuous_aggregate", Some(view)).await,
        )
        .await;
    }
    assert_rollups_match_raw(db).await;
    assert_queries_match_raw(db, &series, cold, cold + TimeDelta::hours(2)).await;

    // Tenant-scoped reads (role wellpulse_tenant) reach the hypertable and the aggregates.
    let mut tx = db.begin_tenant(f.tenant).await.unwrap();
    for width in [60, 3600, 86_400] {
        let scoped = store::query::bucketed(
            &mut tx,
            &series,
            cold,
            cold + TimeDelta::hours(2),
            Duration::from_secs(width),
        )
        .await
        .unwrap();
        let pooled = db
            .bucketed(
                &series,
                cold,
                cold + TimeDelta::hours(2),
                Duration::from_secs(width),
            )
            .await
            .unwrap();
        assert!(!scoped.is_empty());
        assert_eq!(scoped, pooled, "{width}s");
    }
    let scoped_raw = store::query::raw(&mut tx, &series, cold, cold + TimeDelta::hours(2), 10_000)
        .await
        .unwrap();
    assert_eq!(scoped_raw.len(), raw.len());
    tx.rollback().await.unwrap();

    // The retention policy drops the raw data older than 30 days; the rollups keep it.
    let day_rows_before = testkit::db::rollup(db, "telemetry_1d").await;
    run_job(db, job_id(db, "policy_retention", None).await).await;
    let oldest: chrono::DateTime<Utc> = sqlx::query_scalar("SELECT min(time) FROM telemetry")
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert_eq!(oldest, cold);
    for view in ["telemetry_1m", "telemetry_1h", "telemetry_1d"] {
        run_job(
            db,
            job_id(db, "policy_refresh_continuous_aggregate", Some(view)).await,
        )
        .await;
    }
    let day_rows_after = testkit::db::rollup(db, "telemetry_1d").await;
    assert_eq!(day_rows_after, day_rows_before);
    assert!(day_rows_after.iter().any(|b| b.bucket == old));
    test.finish().await;
}

/// A plan's retention on the hypertable: the plan's tenants lose their samples older than
/// the cutoff, compressed chunks included; other tenants keep theirs; the continuous
/// aggregates follow at their refresh.
#[tokio::test]
async fn a_plans_retention_reaches_compressed_chunks_and_the_aggregates_follow() {
    if !timescale_or_skip("TimescaleDB plan retention test").await {
        return;
    }
    let test = TestDb::with_options("ts_plan_retention", options(7)).await;
    let db = &test.db;
    pause_jobs(db).await;
    let now = Utc::now().duration_trunc(TimeDelta::hours(1)).unwrap();
    let (short, long) = two_plans_with_history(db, now, &[20, 12, 1]).await;
    // Compress what is older than a week, as the policy would.
    sqlx::query(
        "SELECT compress_chunk(c, if_not_compressed => true)
           FROM show_chunks('telemetry', older_than => now() - INTERVAL '7 days') c",
    )
    .execute(db.pool())
    .await
    .unwrap();
    assert!(compressed_chunks(db).await >= 2);
    refresh_all(db).await;

    let future = now + TimeDelta::days(1);
    let cutoff = now - TimeDelta::days(10);
    let long_before = tenant_rows_before(db, long.tenant, future).await;
    assert!(tenant_rows_before(db, short.tenant, cutoff).await > 0);
    let plans = [(
        "starter".to_owned(),
        store::tenants::PlanLimits {
            retention: Some(Duration::from_secs(10 * 86_400)),
            ..Default::default()
        },
    )]
    .into();
    let deleted = maintenance::expire_plan_telemetry(db, &plans, now)
        .await
        .unwrap();
    assert!(deleted[0].1 > 0, "{deleted:?}");
    assert_eq!(
        tenant_rows_before(db, short.tenant, cutoff).await,
        0,
        "compressed history expired"
    );
    assert!(
        tenant_rows_before(db, short.tenant, future).await > 0,
        "recent history kept"
    );
    assert_eq!(
        tenant_rows_before(db, long.tenant, future).await,
        long_before
    );
    refresh_all(db).await;
    assert_rollups_match_raw(db).await;
    test.finish().await;
}
