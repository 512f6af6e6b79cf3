//! Telemetry through HTTP checked against the database: bucketed results equal a direct
//! SQL aggregate of the raw rows (good samples only), for every bucket width, aligned and
//! unaligned ranges, including data newer than the last maintenance run; raw paging with
//! `next_from` returns every sample exactly once.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::Row;
use store::SeriesId;
use testkit::api::{Fleet, TestApi, seed, ts};

/// (series, bucket start, avg, min, max, count) straight from `telemetry`.
type Expected = Vec<(i64, DateTime<Utc>, f64, f64, f64, i64)>;

async fn direct_aggregate(
    api: &TestApi,
    series: &[SeriesId],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    width_secs: i64,
) -> Expected {
    // The API widens [from, to) to whole buckets aligned to 2000-01-01 UTC.
    let rows = sqlx::query(
        "WITH r AS (
             SELECT date_bin($4 * INTERVAL '1 second', $2::timestamptz, TIMESTAMPTZ '2000-01-01 00:00:00+00') AS f,
                    date_bin($4 * INTERVAL '1 second', $3::timestamptz - INTERVAL '1 microsecond',
                             TIMESTAMPTZ '2000-01-01 00:00:00+00') + $4 * INTERVAL '1 second' AS t
         )
         SELECT series_id, date_bin($4 * INTERVAL '1 second', time, TIMESTAMPTZ '2000-01-01 00:00:00+00') AS b,
                avg(value) AS avg, min(value) AS min, max(value) AS max, count(*) AS n
         FROM telemetry, r
         WHERE series_id = ANY($1) AND time >= r.f AND time < r.t
           AND quality = 0 AND value IS NOT NULL
         GROUP BY 1, 2 ORDER BY 2, 1",
    )
    .bind(series.iter().map(|s| s.0).collect::<Vec<_>>())
    .bind(from)
    .bind(to)
    .bind(width_secs as f64)
    .fetch_all(api.db.pool())
    .await
    .unwrap();
    rows.iter()
        .map(|r| {
            (
                r.get("series_id"),
                r.get("b"),
                r.get("avg"),
                r.get("min"),
                r.get("max"),
                r.get("n"),
            )
        })
        .collect()
}

fn from_api(body: &Value) -> Expected {
    let mut out = Vec::new();
    for series in body["series"].as_array().unwrap() {
        for b in series["buckets"].as_array().unwrap() {
            out.push((
                series["series_id"].as_i64().unwrap(),
                b["time"].as_str().unwrap().parse().unwrap(),
                b["avg"].as_f64().unwrap(),
                b["min"].as_f64().unwrap(),
                b["max"].as_f64().unwrap(),
                b["count"].as_i64().unwrap(),
            ));
        }
    }
    out.sort_by_key(|e| (e.1, e.0));
    out
}

/// Relative comparison: serde_json's default float parser may be one ulp off.
fn close(a: f64, b: f64, tolerance: f64) -> bool {
    (a - b).abs() <= tolerance * b.abs().max(1.0)
}

fn assert_same(what: &str, api: &Expected, sql: &Expected) {
    let keys = |e: &Expected| {
        e.iter()
            .map(|b| (b.0, b.1))
            .collect::<std::collections::BTreeSet<_>>()
    };
    let (from_api, from_sql) = (keys(api), keys(sql));
    assert_eq!(
        api.len(),
        sql.len(),
        "{what}: bucket count; only in the API: {:?}; only in SQL: {:?}",
        from_api.difference(&from_sql).collect::<Vec<_>>(),
        from_sql.difference(&from_api).collect::<Vec<_>>()
    );
    assert!(!sql.is_empty(), "{what}: the case must cover data");
    for (a, s) in api.iter().zip(sql) {
        assert_eq!(
            (a.0, a.1, a.5),
            (s.0, s.1, s.5),
            "{what}: series/bucket/count"
        );
        for (name, got, want, tolerance) in [
            ("min", a.3, s.3, 1e-12),
            ("max", a.4, s.4, 1e-12),
            ("avg", a.2, s.2, 1e-9),
        ] {
            assert!(
                close(got, want, tolerance),
                "{what}: {name} {got} vs {want} at {}",
                a.1
            );
        }
    }
}

async fn bucketed(
    api: &TestApi,
    fleet: &Fleet,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    bucket: &str,
) -> Value {
    let response = api
        .get(&format!(
            "/api/v1/tenants/acme/wells/{}/telemetry?metric=tubing_pressure_psi&from={}&to={}&bucket={bucket}",
            fleet.smith.0,
            ts(from),
            ts(to)
        ))
        .await;
    assert_eq!(response.status, 200, "{}", response.text());
    response.json()
}

#[tokio::test]
async fn bucketed_results_equal_a_direct_sql_aggregate() {
    let api = TestApi::start("api_buckets_sql").await;
    // 52 hours at 30 s: spans three UTC days, so 1d buckets are partial and whole.
    let fleet = seed(&api.db, 52 * 120, 30).await;
    // Append an hour the maintenance has not rolled up yet (freshness through raw data).
    let late = Fleet {
        start: fleet.end(),
        samples: 120,
        ..fleet.clone()
    };
    testkit::api::ingest_more(&api.db, &late).await;
    let series = fleet.tubing;
    let minute = chrono::Duration::minutes(1);
    let cases = [
        (
            "1m",
            60,
            fleet.start + minute * 17,
            fleet.start + minute * 17 + chrono::Duration::hours(3),
        ),
        ("5m", 300, fleet.start, late.end()),
        (
            "1h",
            3600,
            fleet.start + chrono::Duration::seconds(1234),
            late.end() - chrono::Duration::seconds(77),
        ),
        (
            "1d",
            86_400,
            fleet.start - chrono::Duration::days(1),
            late.end() + chrono::Duration::days(1),
        ),
    ];
    for (bucket, width, from, to) in cases {
        let body = bucketed(&api, &fleet, from, to, bucket).await;
        assert!(body["next_from"].is_null(), "{bucket}: not paged");
        let sql = direct_aggregate(&api, &series, from, to, width).await;
        assert_same(bucket, &from_api(&body), &sql);
    }
    // The appended hour alone (not rolled up yet; minute-aligned, so 1m buckets cover
    // exactly it): every good sample of it is counted.
    let body = bucketed(&api, &fleet, late.start, late.end(), "1m").await;
    let sql = direct_aggregate(&api, &series, late.start, late.end(), 60).await;
    assert_same("late 1m", &from_api(&body), &sql);
    let counted: i64 = from_api(&body).iter().map(|b| b.5).sum();
    let good = (0..late.samples)
        .filter(|&i| testkit::api::sample(i, 0.0).1 == wire::Quality::Good)
        .count() as i64;
    assert_eq!(counted, 2 * good);
    api.finish().await;
}

#[tokio::test]
async fn raw_paging_with_next_from_returns_every_sample_once() {
    let api = TestApi::start("api_raw_paging").await;
    let fleet = seed(&api.db, 200, 30).await;
    let base = format!(
        "/api/v1/tenants/acme/wells/{}/telemetry?metric=tubing_pressure_psi&to={}&limit=37",
        fleet.smith.0,
        ts(fleet.end())
    );
    let mut from = fleet.start;
    let mut seen: Vec<(i64, String, Option<f64>, String)> = Vec::new();
    let mut pages = 0;
    loop {
        let page = api.get(&format!("{base}&from={}", ts(from))).await;
        assert_eq!(page.status, 200, "{}", page.text());
        let body = page.json();
        let mut count = 0;
        for series in body["series"].as_array().unwrap() {
            for s in series["samples"].as_array().unwrap() {
                count += 1;
                seen.push((
                    series["series_id"].as_i64().unwrap(),
                    s["time"].as_str().unwrap().to_owned(),
                    s["value"].as_f64(),
                    s["quality"].as_str().unwrap().to_owned(),
                ));
            }
        }
        assert!(
            count <= 37 && count % 2 == 0,
            "a timestamp is never split: {count}"
        );
        pages += 1;
        match body["next_from"].as_str() {
            Some(next) => from = next.parse().unwrap(),
            None => break,
        }
    }
    assert_eq!(pages, 12, "400 samples at 36 per page");
    seen.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    let rows = sqlx::query(
        "SELECT series_id, time, value, quality FROM telemetry WHERE series_id = ANY($1) ORDER BY 1, 2",
    )
    .bind(fleet.tubing.iter().map(|s| s.0).collect::<Vec<_>>())
    .fetch_all(api.db.pool())
    .await
    .unwrap();
    let expected: Vec<(i64, String, Option<f64>, String)> = rows
        .iter()
        .map(|r| {
            let quality = match r.get::<i16, _>("quality") {
                0 => "good",
                1 => "bad",
                2 => "stale",
                _ => "uncertain",
            };
            (
                r.get("series_id"),
                ts(r.get("time")),
                r.get("value"),
                quality.to_owned(),
            )
        })
        .collect();
    assert_eq!(seen.len(), 400);
    assert_eq!(seen.len(), expected.len());
    for (got, want) in seen.iter().zip(&expected) {
        assert_eq!((got.0, &got.1, &got.3), (want.0, &want.1, &want.3));
        match (got.2, want.2) {
            (Some(g), Some(w)) => assert!(close(g, w, 1e-12), "{got:?} vs {want:?}"),
            (g, w) => assert_eq!(g, w, "{got:?}"),
        }
    }
    api.finish().await;
}
