//! Shared fixtures of the storage integration tests (`tests/db_*.rs`).

use std::time::Duration;

use crate::scratch::ScratchDb;
use chrono::{DateTime, TimeDelta, Utc};
use sqlx::Row;
use store::{
    Backend, BackendChoice, BatchRecord, Bucket, Db, GatewayId, NewWell, SeriesId, SiteId,
    StorageOptions, TelemetryRow, TenantId, WellId,
};
use wire::Quality;

/// A migrated scratch database; drop it with [`TestDb::finish`].
pub struct TestDb {
    pub db: Db,
    scratch: ScratchDb,
}

impl TestDb {
    /// A fresh database set up for the plain PostgreSQL back-end.
    pub async fn plain(prefix: &str) -> TestDb {
        TestDb::with_options(
            prefix,
            StorageOptions {
                backend: BackendChoice::Postgres,
                ..StorageOptions::default()
            },
        )
        .await
    }

    /// A fresh database migrated with `options`.
    pub async fn with_options(prefix: &str, options: StorageOptions) -> TestDb {
        let test = TestDb::unmigrated(prefix, options).await;
        test.db.migrate().await.expect("migrations apply");
        test
    }

    /// A fresh database with nothing in it.
    pub async fn unmigrated(prefix: &str, options: StorageOptions) -> TestDb {
        let scratch = ScratchDb::create(prefix)
            .await
            .expect("create scratch database");
        let db = Db::connect_with(scratch.url(), options)
            .await
            .expect("connect to scratch database");
        TestDb { db, scratch }
    }

    pub fn url(&self) -> &str {
        self.scratch.url()
    }

    /// A second pool on the same database, as another process would have (close it before
    /// [`TestDb::finish`]).
    pub async fn connect_same(test: &TestDb) -> Db {
        Db::connect_with(test.url(), test.db.options().clone())
            .await
            .expect("connect to scratch database")
    }

    /// Closes the pool and drops the database.
    pub async fn finish(self) {
        self.db.close().await;
        self.scratch.drop_db().await.expect("drop scratch database");
    }
}

/// Whether a TimescaleDB-only test runs on this server: `true` when the server offers the
/// extension; otherwise it says on stderr that `what` is skipped and returns `false`, or
/// panics when `WP_REQUIRE_TIMESCALE=1` (a run meant to cover the TimescaleDB path must
/// not pass by skipping it).
pub async fn timescale_or_skip(what: &str) -> bool {
    let probe = TestDb::unmigrated("ts_probe", StorageOptions::default()).await;
    let available = timescale_available(&probe.db).await;
    probe.finish().await;
    if !available {
        let required = std::env::var("WP_REQUIRE_TIMESCALE").is_ok_and(|v| v == "1");
        assert!(
            !required,
            "{what}: WP_REQUIRE_TIMESCALE=1 but `timescaledb` is not in pg_available_extensions"
        );
        eprintln!(
            "skipping {what}: `timescaledb` is not in pg_available_extensions on this server"
        );
    }
    available
}

/// Whether this server offers TimescaleDB.
pub async fn timescale_available(db: &Db) -> bool {
    let mut conn = db.pool().acquire().await.unwrap();
    store::schema::timescale_available(&mut conn).await.unwrap()
}

/// One tenant with a site, a well and a gateway.
pub struct Fixture {
    pub tenant: TenantId,
    pub site: SiteId,
    pub well: WellId,
    pub gateway: GatewayId,
    pub secret: String,
}

pub async fn fixture(db: &Db, tenant_slug: &str) -> Fixture {
    let tenant = db
        .create_tenant(tenant_slug, "Permian Operating")
        .await
        .unwrap();
    let site = db
        .create_site(tenant, "Pad 7", Some((31.9, -102.1)))
        .await
        .unwrap();
    let well = db
        .create_well(&NewWell {
            tenant,
            site,
            api_number: "42-329-12345-00-00",
            name: "Smith 1H",
            lease: "Smith",
            field: "Spraberry",
            county: "Midland",
            state: "TX",
        })
        .await
        .unwrap();
    let secret = store::registry::generate_gateway_secret();
    let gateway = db
        .create_gateway(tenant, site, "gw-01", &secret)
        .await
        .unwrap();
    Fixture {
        tenant,
        site,
        well,
        gateway,
        secret,
    }
}

/// A metric catalog entry.
pub fn metric(alias: u16, canonical: &str, scale: f64) -> wire::MetricEntry {
    wire::MetricEntry {
        alias,
        canonical: canonical.to_string(),
        tag: format!("tag_{canonical}"),
        unit: "psi".to_string(),
        scale,
        offset: 0.0,
        writable: false,
        kind: None,
    }
}

/// A birth with one device `rpc-1` (linked to the fixture well by its API number) carrying
/// `metrics` canonical metrics.
pub fn birth(boot_id: u64, ts_ms: i64, metrics: &[&str]) -> wire::Birth {
    wire::Birth {
        boot_id,
        ts_ms,
        agent_version: "0.1.0".to_string(),
        config_hash: "abc123".to_string(),
        devices: vec![wire::DeviceEntry {
            alias: 0,
            name: "rpc-1".to_string(),
            profile: "rod-pump-controller".to_string(),
            info: vec![("well".to_string(), "42-329-12345-00-00".to_string())],
            metrics: metrics
                .iter()
                .enumerate()
                .map(|(i, m)| metric(i as u16, m, 0.1))
                .collect(),
        }],
    }
}

/// The backend a test database actually uses.
pub async fn backend(db: &Db) -> Backend {
    db.backend().await.unwrap()
}

/// Deterministic pseudo-random values (an LCG), so failures reproduce.
pub struct Values(pub u64);

impl Values {
    pub fn next_value(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 11) % 100_000) as f64 / 100.0 - 200.0
    }
}

pub fn quality(i: usize) -> Quality {
    match i {
        i if i % 7 == 0 => Quality::Bad,
        i if i % 11 == 0 => Quality::Stale,
        i if i % 13 == 0 => Quality::Uncertain,
        _ => Quality::Good,
    }
}

pub struct Writer {
    pub gateway: GatewayId,
    pub seq: u64,
}

impl Writer {
    /// One transaction holding one batch of the given samples.
    pub async fn write(&mut self, db: &Db, rows: &[TelemetryRow], received_at: DateTime<Utc>) {
        self.seq += 1;
        let mut tx = db.begin_ingest().await.unwrap();
        let mut batch = tx
            .record_batch(BatchRecord {
                epoch: 0,
                gateway: self.gateway,
                seq: self.seq,
                boot_id: 1,
                historical: true,
                received_at,
            })
            .unwrap()
            .unwrap();
        for row in rows {
            batch.push(row).unwrap();
        }
        assert_eq!(tx.commit().await.unwrap().stored.len(), 1);
    }
}

/// Samples every `step_s` seconds in `[from, from + span_s)` for each series.
pub fn samples(
    series: &[SeriesId],
    from: DateTime<Utc>,
    span_s: i64,
    step_s: i64,
    values: &mut Values,
) -> Vec<TelemetryRow> {
    let mut rows = Vec::new();
    let mut i = 0;
    for t in (0..span_s).step_by(step_s as usize) {
        for s in series {
            i += 1;
            let q = quality(i);
            rows.push(TelemetryRow {
                ts_ms: (from + TimeDelta::seconds(t)).timestamp_millis(),
                series_id: *s,
                value: (q != Quality::Bad).then(|| values.next_value()),
                quality: q,
            });
        }
    }
    rows
}

/// Aggregates of good samples computed straight from raw data, bucketed by `bucket_sql`
/// (an expression of `time`), written independently of the code under test.
pub async fn reference(db: &Db, bucket_sql: &str) -> Vec<Bucket> {
    let sql = format!(
        "WITH good AS (
             SELECT series_id, time, value, {bucket_sql} AS b
             FROM telemetry WHERE quality = 0 AND value IS NOT NULL
         ),
         agg AS (
             SELECT series_id, b, avg(value) AS avg, min(value) AS min, max(value) AS max,
                    sum(value) AS sum, count(*) AS count
             FROM good GROUP BY series_id, b
         ),
         f AS (SELECT DISTINCT ON (series_id, b) series_id, b, value FROM good
               ORDER BY series_id, b, time),
         l AS (SELECT DISTINCT ON (series_id, b) series_id, b, value FROM good
               ORDER BY series_id, b, time DESC)
         SELECT agg.*, f.value AS first, l.value AS last
         FROM agg JOIN f USING (series_id, b) JOIN l USING (series_id, b)
         ORDER BY series_id, b"
    );
    let rows = sqlx::query(&(sql)).fetch_all(db.pool()).await.unwrap();
    rows.iter().map(bucket_of).collect()
}

pub fn bucket_of(r: &sqlx::postgres::PgRow) -> Bucket {
    Bucket {
        series_id: r.get("series_id"),
        bucket: r.get("b"),
        avg: r.get("avg"),
        min: r.get("min"),
        max: r.get("max"),
        sum: r.get("sum"),
        count: r.get("count"),
        first: r.get("first"),
        last: r.get("last"),
    }
}

pub async fn rollup(db: &Db, table: &str) -> Vec<Bucket> {
    let sql = format!(
        "SELECT series_id, bucket AS b, avg, min, max, sum, count, first, last
         FROM {table} ORDER BY series_id, bucket"
    );
    let rows = sqlx::query(&(sql)).fetch_all(db.pool()).await.unwrap();
    rows.iter().map(bucket_of).collect()
}

pub fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

pub fn assert_same(what: &str, actual: &[Bucket], expected: &[Bucket]) {
    assert_eq!(actual.len(), expected.len(), "{what}: bucket count");
    for (a, e) in actual.iter().zip(expected) {
        let same = a.series_id == e.series_id
            && a.bucket == e.bucket
            && a.count == e.count
            && a.min == e.min
            && a.max == e.max
            && a.first == e.first
            && a.last == e.last
            && close(a.avg, e.avg)
            && close(a.sum, e.sum);
        assert!(same, "{what}: got {a:?}, expected {e:?}");
    }
}

pub const LEVELS: [(&str, &str); 3] = [
    (
        "telemetry_1m",
        "date_bin('1 minute', time, TIMESTAMPTZ '2000-01-01 00:00:00+00')",
    ),
    (
        "telemetry_1h",
        "date_bin('1 hour', time, TIMESTAMPTZ '2000-01-01 00:00:00+00')",
    ),
    (
        "telemetry_1d",
        "date_bin('1 day', time, TIMESTAMPTZ '2000-01-01 00:00:00+00')",
    ),
];

pub async fn assert_rollups_match_raw(db: &Db) {
    for (table, bucket_sql) in LEVELS {
        assert_same(
            table,
            &rollup(db, table).await,
            &reference(db, bucket_sql).await,
        );
    }
}

pub async fn assert_queries_match_raw(
    db: &Db,
    series: &[SeriesId],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) {
    for width_s in [60, 90, 300, 3600, 7200, 86_400] {
        let width = Duration::from_secs(width_s);
        let got = db.bucketed(series, from, to, width).await.unwrap();
        let bucket_sql =
            format!("date_bin('{width_s} seconds', time, TIMESTAMPTZ '2000-01-01 00:00:00+00')");
        let expected: Vec<Bucket> = reference(db, &bucket_sql)
            .await
            .into_iter()
            .filter(|b| series.contains(&b.series_id))
            .filter(|b| b.bucket + TimeDelta::seconds(width_s as i64) > from && b.bucket < to)
            .collect();
        assert!(!expected.is_empty());
        assert_same(&format!("bucketed {width_s}s"), &got, &expected);
    }
}

pub async fn three_series(db: &Db, gateway: GatewayId) -> Vec<SeriesId> {
    let now = Utc::now();
    let map = db
        .apply_birth(
            gateway,
            &birth(
                1,
                now.timestamp_millis(),
                &["tubing_pressure_psi", "casing_pressure_psi", "h2s_ppm"],
            ),
            now,
        )
        .await
        .unwrap();
    (0..3).map(|m| map.get(0, m).unwrap().series_id).collect()
}

/// Two tenants with the same history — samples of three series every 10 minutes for an
/// hour, `days_ago` days before `now` — the first (`short`) on plan `starter`, the second
/// (`long`) on the default plan: the fixture of the plan-retention tests of both back-ends.
pub async fn two_plans_with_history(
    db: &Db,
    now: DateTime<Utc>,
    days_ago: &[i64],
) -> (Fixture, Fixture) {
    let short = fixture(db, "short").await;
    let long = fixture(db, "long").await;
    let mut conn = db.pool().acquire().await.unwrap();
    store::tenants::set_tenant_plan(&mut conn, "short", "starter")
        .await
        .unwrap()
        .expect("tenant short exists");
    drop(conn);
    let mut values = Values(7);
    for f in [&short, &long] {
        let series = three_series(db, f.gateway).await;
        let mut writer = Writer {
            gateway: f.gateway,
            seq: 0,
        };
        for days in days_ago {
            let from = now - TimeDelta::days(*days);
            writer
                .write(db, &samples(&series, from, 600, 6, &mut values), Utc::now())
                .await;
        }
    }
    (short, long)
}

/// Telemetry rows of `tenant` older than `before`.
pub async fn tenant_rows_before(db: &Db, tenant: TenantId, before: DateTime<Utc>) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM telemetry t JOIN series s ON s.id = t.series_id
          WHERE s.tenant_id = $1 AND t.time < $2",
    )
    .bind(tenant)
    .bind(before)
    .fetch_one(db.pool())
    .await
    .unwrap()
}
