//! The binary COPY encoder against a text-INSERT reference, property-tested.
//!
//! Each case encodes random rows (times across years 1–9999, finite values of every
//! magnitude including ±0 and subnormals, missing values, NaN/∞, all qualities) with
//! `CopyEncoder` and loads them with a binary COPY into `telemetry`, inserts the same rows
//! as SQL text literals into a reference table, and compares the stored rows bit for bit
//! (`float8send`, microsecond timestamps).

use chrono::DateTime;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use sqlx::{PgPool, Row};
use store::copy::COPY_TELEMETRY;
use store::{CopyEncoder, SeriesId, TelemetryRow};
use testkit::db::TestDb;

/// 0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999Z in Unix ms.
const MIN_MS: i64 = -62_135_596_800_000;
const MAX_MS: i64 = 253_402_300_799_999;

fn value() -> impl Strategy<Value = Option<f64>> {
    prop_oneof![
        4 => any::<f64>().prop_filter("finite", |v| v.is_finite()).prop_map(Some),
        2 => (-1e6f64..1e6).prop_map(Some),
        1 => Just(None),
        1 => prop::sample::select(vec![
            0.0, -0.0, f64::MIN_POSITIVE, 5e-324, -5e-324, f64::MAX, f64::MIN, f64::EPSILON,
            f64::NAN, f64::INFINITY, f64::NEG_INFINITY,
        ])
        .prop_map(Some),
    ]
}

fn quality() -> impl Strategy<Value = wire::Quality> {
    prop::sample::select(vec![
        wire::Quality::Good,
        wire::Quality::Bad,
        wire::Quality::Stale,
        wire::Quality::Uncertain,
    ])
}

fn rows() -> impl Strategy<Value = Vec<(i64, Option<f64>, wire::Quality)>> {
    prop::collection::vec((MIN_MS..=MAX_MS, value(), quality()), 1..60)
}

/// The SQL literal of a row as the reference expects it stored.
fn reference_values(series: i64, ts_ms: i64, value: Option<f64>, quality: wire::Quality) -> String {
    let time = DateTime::from_timestamp_millis(ts_ms)
        .unwrap()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ");
    let (value, quality) = match value {
        Some(v) if v.is_finite() => (format!("'{v:?}'::float8"), quality.code()),
        Some(_) => ("NULL".to_string(), wire::Quality::Bad.code()),
        None => ("NULL".to_string(), quality.code()),
    };
    format!("('{time}'::timestamptz, {series}, {value}, {quality})")
}

type Stored = Vec<(i64, i64, Option<Vec<u8>>, i16)>;

async fn stored(pool: &PgPool, table: &str) -> Stored {
    sqlx::query(&format!(
        "SELECT series_id, (extract(epoch FROM time) * 1000000)::bigint AS us,
                float8send(value) AS bits, quality
         FROM {table} ORDER BY series_id"
    ))
    .fetch_all(pool)
    .await
    .unwrap()
    .iter()
    .map(|r| {
        (
            r.get("series_id"),
            r.get("us"),
            r.get("bits"),
            r.get("quality"),
        )
    })
    .collect()
}

async fn check_case(
    pool: &PgPool,
    case: &[(i64, Option<f64>, wire::Quality)],
) -> Result<(), TestCaseError> {
    sqlx::query("TRUNCATE telemetry, reference")
        .execute(pool)
        .await
        .unwrap();
    let mut encoder = CopyEncoder::new();
    let mut literals = Vec::new();
    for (i, (ts_ms, value, quality)) in case.iter().enumerate() {
        let series = i as i64;
        encoder
            .push(&TelemetryRow {
                ts_ms: *ts_ms,
                series_id: SeriesId(series),
                value: *value,
                quality: *quality,
            })
            .unwrap();
        literals.push(reference_values(series, *ts_ms, *value, *quality));
    }
    let mut conn = pool.acquire().await.unwrap();
    let mut copy = conn.copy_in_raw(COPY_TELEMETRY).await.unwrap();
    copy.send(encoder.to_copy_payload()).await.unwrap();
    let copied = copy.finish().await.unwrap();
    prop_assert_eq!(copied as usize, case.len());
    sqlx::query(&format!(
        "INSERT INTO reference VALUES {}",
        literals.join(", ")
    ))
    .execute(&mut *conn)
    .await
    .unwrap();
    drop(conn);
    prop_assert_eq!(
        stored(pool, "telemetry").await,
        stored(pool, "reference").await
    );
    Ok(())
}

#[test]
fn binary_copy_stores_exactly_what_text_inserts_store() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let test = runtime.block_on(async {
        let test = TestDb::plain("copy_prop").await;
        sqlx::query("CREATE TABLE reference (LIKE telemetry)")
            .execute(test.db.pool())
            .await
            .unwrap();
        test
    });
    let mut runner = TestRunner::new(Config {
        cases: 48,
        ..Config::default()
    });
    let pool = test.db.pool().clone();
    let result = runner.run(&rows(), |case| runtime.block_on(check_case(&pool, &case)));
    runtime.block_on(test.finish());
    result.unwrap();
}

#[test]
fn copy_payload_round_trips_timestamps_at_the_edges() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let test = TestDb::plain("copy_edges").await;
        sqlx::query("CREATE TABLE reference (LIKE telemetry)")
            .execute(test.db.pool())
            .await
            .unwrap();
        // Unix epoch, PostgreSQL epoch, just before it, and the bounds of the range.
        let edges = [0, 946_684_800_000, 946_684_799_999, MIN_MS, MAX_MS, -1];
        let case: Vec<_> = edges
            .iter()
            .map(|ts| (*ts, Some(1.5), wire::Quality::Uncertain))
            .collect();
        check_case(test.db.pool(), &case).await.unwrap();
        test.finish().await;
    });
}
