//! Storage benchmarks (`cargo bench -p cloud --bench ingest`).
//!
//! * `ingest_samples_per_s`: 1,000,000 samples over 500 series (5 gateways × 5 devices ×
//!   20 metrics, 1 s apart) through the ingest transaction API — 400-sample batches
//!   (4 polls × 100 series of one gateway), [`BATCHES_PER_TX`] batches per transaction,
//!   including the `ingested_batches` rows and dirty-range marking.
//! * `psql_copy_rows_per_s`: the same rows, as one binary COPY file, loaded by
//!   `psql -c "\copy telemetry ... (FORMAT binary)"` into a database with the same schema,
//!   in the same run (absolute rates vary ±20 % between runs; the ratio is what counts).
//! * `query_24h_bucketed_p95_ms`: one well with 20 series of 1 s data over the last 24 h,
//!   after a maintenance pass; p95 of `bucketed_for_well` over 24 h in 1-minute buckets.
//!
//! Each measurement runs [`ROUNDS`] times on fresh databases and reports the best round.
//! Every database is created and dropped by the bench.

use std::time::{Duration, Instant};

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use store::{
    AliasMap, Backend, BatchRecord, CopyEncoder, Db, GatewayId, NewWell, StorageOptions,
    TelemetryRow, maintenance,
};
use testkit::scratch::ScratchDb;

const GATEWAYS: usize = 5;
const DEVICES: usize = 5;
const METRICS: usize = 20;
const SERIES_PER_GATEWAY: usize = DEVICES * METRICS;
const STEPS: usize = 2000; // 2000 s × 500 series = 1,000,000 samples
const POLLS_PER_BATCH: usize = 4; // 4 × 100 = 400 samples per batch
const BATCHES_PER_TX: usize = 48; // the ingester's default round size
const ROUNDS: usize = 3;
const QUERY_METRICS: usize = 20;
const QUERY_RUNS: usize = 200;

type Batch = (BatchRecord, Vec<TelemetryRow>);

fn birth(boot_id: u64, ts_ms: i64, well: Option<&str>, devices: usize) -> wire::Birth {
    wire::Birth {
        boot_id,
        ts_ms,
        agent_version: "bench".into(),
        config_hash: "bench".into(),
        devices: (0..devices)
            .map(|d| wire::DeviceEntry {
                alias: d as u16,
                name: format!("dev-{d}"),
                profile: "rod-pump-controller".into(),
                info: well
                    .map(|w| vec![("well".into(), w.into())])
                    .unwrap_or_default(),
                metrics: (0..METRICS)
                    .map(|m| wire::MetricEntry {
                        alias: m as u16,
                        canonical: format!("metric_{m}"),
                        tag: format!("tag_{m}"),
                        unit: "psi".into(),
                        scale: 0.1,
                        offset: 0.0,
                        writable: false,
                        kind: None,
                    })
                    .collect(),
            })
            .collect(),
    }
}

/// Creates, migrates and populates the registry of a bench database.
async fn setup(
    prefix: &str,
    well_api: Option<&str>,
    devices: usize,
) -> (ScratchDb, Db, Vec<(GatewayId, AliasMap)>) {
    let scratch = ScratchDb::create(prefix).await.expect("create database");
    let db = Db::connect_with(scratch.url(), StorageOptions::default())
        .await
        .expect("connect");
    db.migrate().await.expect("migrate");
    let tenant = db.create_tenant("bench", "Bench").await.unwrap();
    let site = db.create_site(tenant, "site", None).await.unwrap();
    if let Some(api) = well_api {
        db.create_well(&NewWell {
            tenant,
            site,
            api_number: api,
            name: "Bench 1H",
            lease: "",
            field: "",
            county: "",
            state: "TX",
        })
        .await
        .unwrap();
    }
    let gateways = if well_api.is_some() { 1 } else { GATEWAYS };
    let mut maps = Vec::new();
    for g in 0..gateways {
        let secret = store::registry::generate_gateway_secret();
        let gateway = db
            .create_gateway(tenant, site, &format!("gw-{g}"), &secret)
            .await
            .unwrap();
        let now = Utc::now();
        let map = db
            .apply_birth(
                gateway,
                &birth(1, now.timestamp_millis(), well_api, devices),
                now,
            )
            .await
            .unwrap();
        maps.push((gateway, map));
    }
    (scratch, db, maps)
}

/// Wire-sized batches of `steps` polls of every series, starting at `start`.
fn make_batches(maps: &[(GatewayId, AliasMap)], start: DateTime<Utc>, steps: usize) -> Vec<Batch> {
    let mut batches = Vec::new();
    let mut seq = vec![0u64; maps.len()];
    for first_step in (0..steps).step_by(POLLS_PER_BATCH) {
        for (g, (gateway, map)) in maps.iter().enumerate() {
            let mut keys: Vec<_> = map.iter().collect();
            keys.sort_by_key(|(k, _)| **k);
            let mut rows = Vec::with_capacity(POLLS_PER_BATCH * keys.len());
            for step in first_step..(first_step + POLLS_PER_BATCH).min(steps) {
                let ts_ms = start.timestamp_millis() + step as i64 * 1000;
                for ((device, metric), entry) in &keys {
                    let raw = ((step * 7 + usize::from(*device) * 13 + usize::from(*metric)) % 1000)
                        as f64;
                    rows.push(TelemetryRow {
                        ts_ms,
                        series_id: entry.series_id,
                        value: Some(entry.engineering(raw)),
                        quality: if step % 97 == 0 {
                            wire::Quality::Stale
                        } else {
                            wire::Quality::Good
                        },
                    });
                }
            }
            seq[g] += 1;
            let record = BatchRecord {
                epoch: 0,
                gateway: *gateway,
                seq: seq[g],
                boot_id: 1,
                historical: false,
                received_at: Utc::now(),
            };
            batches.push((record, rows));
        }
    }
    batches
}

async fn ingest(db: &Db, batches: &[Batch]) -> u64 {
    let mut samples = 0;
    for group in batches.chunks(BATCHES_PER_TX) {
        let mut tx = db.begin_ingest().await.expect("begin");
        for (record, rows) in group {
            let mut writer = tx.record_batch(*record).unwrap().expect("not staged twice");
            for row in rows {
                writer.push(row).unwrap();
            }
        }
        let outcome = tx.commit().await.expect("commit");
        assert_eq!(outcome.stored.len(), group.len());
        samples += outcome.samples;
    }
    samples
}

async fn bench_ingest(start: DateTime<Utc>) -> f64 {
    let (scratch, db, maps) = setup("bench_ingest", None, DEVICES).await;
    let batches = make_batches(&maps, start, STEPS);
    let began = Instant::now();
    let samples = ingest(&db, &batches).await;
    let rate = samples as f64 / began.elapsed().as_secs_f64();
    assert_eq!(samples as usize, GATEWAYS * SERIES_PER_GATEWAY * STEPS);
    db.pool().close().await;
    scratch.drop_db().await.unwrap();
    rate
}

async fn bench_psql(start: DateTime<Utc>) -> f64 {
    let (scratch, db, maps) = setup("bench_psql", None, DEVICES).await;
    let mut encoder = CopyEncoder::new();
    for (_, rows) in make_batches(&maps, start, STEPS) {
        for row in &rows {
            encoder.push(row).unwrap();
        }
    }
    let rows = encoder.row_count();
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), encoder.to_copy_payload()).unwrap();
    let command = format!(
        "\\copy telemetry (time, series_id, value, quality) FROM '{}' WITH (FORMAT binary)",
        file.path().display()
    );
    let began = Instant::now();
    let status = tokio::process::Command::new("psql")
        .args([
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            scratch.url(),
            "-c",
            &command,
        ])
        .status()
        .await
        .expect("run psql");
    let elapsed = began.elapsed();
    assert!(status.success(), "psql \\copy failed");
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM telemetry")
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert_eq!(stored as usize, rows);
    db.pool().close().await;
    scratch.drop_db().await.unwrap();
    rows as f64 / elapsed.as_secs_f64()
}

async fn bench_query() -> f64 {
    let api = "42-329-00001-00-00";
    let (scratch, db, maps) = setup("bench_query", Some(api), 1).await;
    let well = sqlx::query_scalar("SELECT id FROM wells")
        .fetch_one(db.pool())
        .await
        .unwrap();
    let end = Utc::now().duration_trunc(TimeDelta::seconds(1)).unwrap();
    let start = end - TimeDelta::days(1);
    let batches = make_batches(&maps, start, 86_400);
    ingest(&db, &batches).await;
    drop(batches);
    maintenance::run_once(&db).await.expect("maintenance");
    let backend = db.backend().await.expect("backend");
    println!("# query bench back-end: {}", backend.as_str());
    if backend == Backend::Timescale {
        // What the refresh policies (every minute for the 1-minute level) keep materialized
        // in steady state; without it the whole day would be aggregated in real time.
        for view in ["telemetry_1m", "telemetry_1h", "telemetry_1d"] {
            sqlx::query(&format!(
                "CALL refresh_continuous_aggregate('{view}', $1::timestamptz, $2::timestamptz)"
            ))
            .bind(start - TimeDelta::days(1))
            .bind(end)
            .execute(db.pool())
            .await
            .expect("refresh continuous aggregate");
        }
    }
    sqlx::query("ANALYZE").execute(db.pool()).await.unwrap();
    let mut times = Vec::with_capacity(QUERY_RUNS);
    for run in 0..QUERY_RUNS {
        let metric = format!("metric_{}", run % QUERY_METRICS);
        let began = Instant::now();
        let buckets = db
            .bucketed_for_well(well, &metric, start, end, Duration::from_secs(60))
            .await
            .unwrap();
        times.push(began.elapsed());
        assert!(buckets.len() >= 1440, "{} buckets", buckets.len());
    }
    times.sort();
    db.pool().close().await;
    scratch.drop_db().await.unwrap();
    times[times.len() * 95 / 100].as_secs_f64() * 1000.0
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async {
        // Today, 01:00 UTC: inside a partition created at set-up on either back-end.
        let start = Utc::now().duration_trunc(TimeDelta::days(1)).unwrap() + TimeDelta::hours(1);
        let (mut ours, mut psql) = (0f64, 0f64);
        for _ in 0..ROUNDS {
            ours = ours.max(bench_ingest(start).await);
            psql = psql.max(bench_psql(start).await);
        }
        println!("BENCH ingest_samples_per_s {ours:.0} samples/s");
        println!("BENCH psql_copy_rows_per_s {psql:.0} rows/s");
        println!("BENCH ingest_vs_psql_ratio {:.3} ratio", ours / psql);
        let p95 = bench_query().await;
        println!("BENCH query_24h_bucketed_p95_ms {p95:.2} ms");
    });
}
