//! The TimescaleDB back-end. Runs only where the server offers the extension (it needs
//! `shared_preload_libraries = 'timescaledb'`); elsewhere it prints why it skipped.
//!
//! Checks: the hypertable and its chunk interval, compression settings, the policies
//! (and that a restart with other options replaces them), the continuous aggregates
//! (real-time before refresh, materialized after) against aggregates computed from raw
//! data, bucketed queries, and that maintenance runs on this back-end too.

mod db_support;

use std::time::Duration;

use chrono::{DurationRound, TimeDelta, Utc};
use cloud::db::{Backend, BackendChoice, Db, StorageOptions, maintenance};
use db_support::{
    TestDb, Values, Writer, assert_queries_match_raw, assert_rollups_match_raw, fixture, samples,
    three_series, timescale_available,
};
use sqlx::Row;

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

async fn refresh_all(db: &Db) {
    for view in ["telemetry_1m", "telemetry_1h", "telemetry_1d"] {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "CALL refresh_continuous_aggregate('{view}', NULL, NULL)"
        )))
        .execute(db.pool())
        .await
        .unwrap();
    }
}

#[tokio::test]
async fn timescale_backend_stores_compresses_and_aggregates() {
    let probe = TestDb::unmigrated("ts_probe", StorageOptions::default()).await;
    if !timescale_available(&probe.db).await {
        eprintln!(
            "skipping TimescaleDB back-end test: `timescaledb` is not in pg_available_extensions \
             on this server (plain PostgreSQL back-end is covered by db_maintenance)"
        );
        probe.finish().await;
        return;
    }
    probe.finish().await;

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
    // the real-time part (before refresh) and the materialized part (after).
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
