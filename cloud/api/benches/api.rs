//! HTTP API benchmark (`cargo bench -p api --bench api`).
//!
//! * `api_telemetry_24h_bucketed_p95_ms` (and `_p50_ms`): one well with one day of 1 s
//!   data (86,400 samples of `tubing_pressure_psi`, stored through the ingest transaction,
//!   rollups computed by a maintenance pass), the API served on a loopback port, and
//!   `GET …/wells/{well}/telemetry?metric=tubing_pressure_psi&from=now-24h&to=now&bucket=1m`
//!   (1,440 buckets) sent sequentially over fresh HTTP connections; latency is measured
//!   from connect to the last byte. Target: p95 < 50 ms.
//!
//! The storage engineer's `query_24h_bucketed_p95_ms` (benches/ingest.rs) measures the
//! same read at the database layer; this one adds the tenant lookup, the tenant-scoped
//! transaction, validation, JSON and HTTP.
//!
//! Needs the development PostgreSQL (`WELLPULSE_PG_ADMIN_URL`, default
//! `postgres://postgres@127.0.0.1:5432/postgres`); uses a scratch database it drops.

#[allow(dead_code)] // the tests' client; the bench uses part of it
use std::time::{Duration, Instant};

use api::{ApiOptions, ApiState};
use chrono::{DateTime, DurationRound, Utc};
use store::{BackendChoice, BatchRecord, Db, StorageOptions, TelemetryRow, WellId, maintenance};
use testkit::scratch::ScratchDb;
use tokio::net::TcpListener;
use wire::Quality;

const SAMPLES: i64 = 86_400;
const WARM_UP: usize = 20;
const RUNS: usize = 300;

/// One tenant, well and gateway with a day of 1 s data ending at `end`.
async fn seed(db: &Db, end: DateTime<Utc>) -> WellId {
    let testkit::db::Fixture { well, gateway, .. } = testkit::db::fixture(db, "acme").await;
    let start = end - chrono::Duration::seconds(SAMPLES);
    let map = db
        .apply_birth(
            gateway,
            &testkit::db::birth(1, start.timestamp_millis(), &["tubing_pressure_psi"]),
            start,
        )
        .await
        .expect("birth");
    let series = map.get(0, 0).expect("alias").series_id;
    for (seq, chunk) in (0..SAMPLES).collect::<Vec<_>>().chunks(3600).enumerate() {
        let mut tx = db.begin_ingest().await.expect("ingest tx");
        let mut writer = tx
            .record_batch(BatchRecord {
                epoch: 0,
                gateway,
                seq: seq as u64,
                boot_id: 1,
                historical: false,
                received_at: end,
            })
            .expect("batch")
            .expect("new batch");
        for &i in chunk {
            writer
                .push(&TelemetryRow {
                    ts_ms: start.timestamp_millis() + i * 1000,
                    series_id: series,
                    value: Some(1500.0 + 50.0 * (i as f64 / 900.0).sin()),
                    quality: Quality::Good,
                })
                .expect("row");
        }
        tx.commit().await.expect("commit");
    }
    maintenance::run_once(db).await.expect("maintenance");
    well
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1].as_secs_f64() * 1e3
}

async fn bench() -> (f64, f64) {
    let scratch = ScratchDb::create("bench_api").await.expect("scratch db");
    let options = StorageOptions {
        backend: BackendChoice::Postgres,
        ..StorageOptions::default()
    };
    let db = Db::connect_with(scratch.url(), options)
        .await
        .expect("connect");
    db.migrate().await.expect("migrate");
    let end = Utc::now()
        .duration_trunc(chrono::Duration::minutes(1))
        .expect("minute");
    let well = seed(&db, end).await;

    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let state = ApiState::new(db.clone(), ApiOptions::default());
    let token = testkit::auth::platform_admin_token(&db).await;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(api::serve(listener, state, async move {
        let _ = stopped.await;
    }));

    let fmt = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let target = format!(
        "/api/v1/tenants/acme/wells/{}/telemetry?metric=tubing_pressure_psi&from={}&to={}&bucket=1m",
        well.0,
        fmt(end - chrono::Duration::hours(24)),
        fmt(end)
    );
    let mut latencies = Vec::with_capacity(RUNS);
    for run in 0..WARM_UP + RUNS {
        let started = Instant::now();
        let response = testkit::http::send_as(addr, &token, "GET", &target, None).await;
        let elapsed = started.elapsed();
        assert_eq!(response.status, 200, "{}", response.text());
        if run == 0 {
            let body = response.json();
            let buckets = body["series"][0]["buckets"].as_array().map_or(0, Vec::len);
            assert_eq!(buckets, 1440, "a day of 1-minute buckets");
            let count: i64 = body["series"][0]["buckets"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|b| b["count"].as_i64().unwrap_or(0))
                .sum();
            assert_eq!(count, SAMPLES, "every sample counted");
        }
        if run >= WARM_UP {
            latencies.push(elapsed);
        }
    }
    latencies.sort_unstable();
    let _ = stop.send(());
    let _ = server.await;
    db.pool().close().await;
    scratch.drop_db().await.expect("drop scratch db");
    (percentile(&latencies, 50.0), percentile(&latencies, 95.0))
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs this too (quickly
    // enough: seeding is a few seconds).
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let (p50, p95) = runtime.block_on(bench());
    println!("BENCH api_telemetry_24h_bucketed_p50_ms {p50:.2} ms");
    println!("BENCH api_telemetry_24h_bucketed_p95_ms {p95:.2} ms");
}
