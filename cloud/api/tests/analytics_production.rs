//! Daily production from seeded telemetry: hand-computed figures, manual corrections,
//! idempotent re-derivation, late backfill picked up by the periodic job, and the
//! production endpoints' parameter checks.

use analytics::production::{Method, Quantity};
use chrono::{TimeDelta, Utc};
use production::{self, DerivationSettings, JobOptions};
use serde_json::{Value, json};
use store::production::daily_rows;
use testkit::analytics::*;

fn figure<'a>(days: &'a Value, day: &str, quantity: &str) -> &'a Value {
    days.as_array()
        .unwrap()
        .iter()
        .find(|d| d["day"] == day)
        .unwrap_or_else(|| panic!("day {day} missing"))["figures"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["quantity"] == quantity)
        .unwrap_or_else(|| panic!("{quantity} missing on {day}"))
}

#[tokio::test]
async fn production_from_tank_and_meter_telemetry_matches_hand_computed_values() {
    let test = TestDb::new("an_prod").await;
    let db = &test.db;
    let mut site = WellSite::create(db, "acme", "42-329-10001", "TX").await;
    let profile = Profile::march_2024();
    let rows = profile.rows(
        &site,
        t("2024-03-06T00:00:00Z"),
        t("2024-03-10T01:00:00Z"),
        &[],
    );
    site.ingest(db, &rows).await;
    site.haul(db, &profile).await;
    maintain(db).await;

    let api = Api::start(db).await;
    let base = format!("/api/v1/tenants/acme/wells/{}/production", site.well);
    let derived = api
        .post(
            &format!("{base}/derive?from=2024-03-07&to=2024-03-10"),
            None,
        )
        .await;
    assert_eq!(derived.status, 200, "{}", derived.text());
    let got = api
        .get(&format!("{base}?from=2024-03-07&to=2024-03-11"))
        .await;
    assert_eq!(got.status, 200, "{}", got.text());
    let body = got.json();
    assert_eq!(body["not_derived"], json!(["2024-03-10"]));
    let days = &body["days"];
    assert_eq!(days.as_array().unwrap().len(), 3);
    // Hand-computed: the stocks and counters are linear in time, so each day's figure is
    // the daily slope; on 2024-03-08 a 500 bbl haul leaves the tank (closing − opening +
    // hauled = 700 − 1100 + 500 = 100 bbl).
    for d in ["2024-03-07", "2024-03-08", "2024-03-09"] {
        for (quantity, method, expected) in [
            ("oil", "tank_gauge", OIL_PER_DAY),
            ("water", "tank_gauge", WATER_PER_DAY),
            ("gas", "meter_total", GAS_PER_DAY),
            ("flared", "meter_total", FLARED_PER_DAY),
            ("fuel", "meter_total", FUEL_PER_DAY),
        ] {
            let f = figure(days, d, quantity);
            assert_eq!(f["method"], method, "{d} {quantity}: {f}");
            close(
                f["volume"].as_f64().unwrap(),
                expected,
                1e-9,
                &format!("{d} {quantity}"),
            );
            assert_eq!(f["coverage"], 1.0, "{d} {quantity}");
            assert_eq!(f["complete"], true, "{d} {quantity}");
            assert_eq!(f["gaps"], json!([]));
        }
        // No vent meter: unknown, never a silent zero.
        let vented = figure(days, d, "vented");
        assert_eq!(vented["method"], "missing");
        assert_eq!(vented["volume"], Value::Null);
        assert_eq!(vented["complete"], false);
        assert_eq!(vented["coverage"], 0.0);
    }
    let oil8 = figure(days, "2024-03-08", "oil");
    close(
        oil8["closing_stock_bbl"].as_f64().unwrap(),
        profile.value("oil_volume_bbl", t("2024-03-09T00:00:00Z")),
        1e-9,
        "closing stock",
    );
    close(
        oil8["closing_stock_bbl"].as_f64().unwrap(),
        700.0,
        1e-9,
        "closing stock",
    );
    test.finish().await;
}

#[tokio::test]
async fn a_correction_takes_precedence_and_rederiving_is_idempotent() {
    let test = TestDb::new("an_corr").await;
    let db = &test.db;
    let mut site = WellSite::create(db, "acme", "42-329-10002", "TX").await;
    let profile = Profile::march_2024();
    let rows = profile.rows(
        &site,
        t("2024-03-07T00:00:00Z"),
        t("2024-03-10T01:00:00Z"),
        &[],
    );
    site.ingest(db, &rows).await;
    site.haul(db, &profile).await;
    maintain(db).await;

    let settings = DerivationSettings::default();
    let mut conn = db.pool().acquire().await.unwrap();
    let (from, to) = (day("2024-03-08"), day("2024-03-10"));
    let first = production::derive_well(&mut conn, site.tenant, site.well, from, to, &settings)
        .await
        .unwrap();
    assert_eq!(first.len(), 12, "six figures per day");
    let stored_first = daily_rows(&mut conn, site.well, from, to).await.unwrap();
    let second = production::derive_well(&mut conn, site.tenant, site.well, from, to, &settings)
        .await
        .unwrap();
    let stored_second = daily_rows(&mut conn, site.well, from, to).await.unwrap();
    assert_eq!(stored_second.len(), 12);
    let strip = |rows: &[store::production::DailyRow]| {
        rows.iter()
            .map(|r| {
                let mut r = r.clone();
                r.derived_at = chrono::DateTime::<Utc>::UNIX_EPOCH;
                r
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(
        strip(&stored_first),
        strip(&stored_second),
        "re-deriving changes nothing"
    );
    assert_eq!(strip(&first), strip(&second));
    drop(conn);

    let api = Api::start(db).await;
    let path = format!("/api/v1/tenants/acme/wells/{}/production", site.well);
    let posted = api
        .post(
            &format!("{path}/corrections"),
            Some(&json!({
                "day": "2024-03-08", "quantity": "oil", "volume": 95.5,
                "ticket_number": "RT-1182", "author": "j.smith", "note": "LACT proving"
            })),
        )
        .await;
    assert_eq!(posted.status, 200, "{}", posted.text());
    let posted = posted.json();
    let correction_id = posted["correction"]["id"].as_i64().unwrap();
    // The correction is in the tenant's audit log: who, what, under which request.
    let log = api.get("/api/v1/tenants/acme/audit").await.json();
    let entry = &log["items"][0];
    assert_eq!(entry["action"], "production.correct");
    assert_eq!(entry["after"]["id"], correction_id);
    assert_eq!(entry["actor"], "user:1 admin@wellpulse.test");
    let f = &posted["figure"];
    assert_eq!(f["method"], "manual_correction");
    assert_eq!(f["volume"], 95.5);
    assert_eq!(f["derived"]["method"], "tank_gauge");
    close(
        f["derived"]["volume"].as_f64().unwrap(),
        100.0,
        1e-9,
        "derived oil",
    );
    assert_eq!(f["correction"]["id"], correction_id);
    assert!(
        f["correction"]["reference"]
            .as_str()
            .unwrap()
            .contains("ticket RT-1182, by j.smith"),
        "{f}"
    );

    // A later correction supersedes the earlier one; both are kept.
    let later = api
        .post(
            &format!("{path}/corrections"),
            Some(
                &json!({"day": "2024-03-08", "quantity": "oil", "volume": 97, "author": "a.jones"}),
            ),
        )
        .await;
    assert_eq!(later.status, 200, "{}", later.text());
    let got = api
        .get(&format!("{path}?from=2024-03-08&to=2024-03-09"))
        .await
        .json();
    let oil = figure(&got["days"], "2024-03-08", "oil");
    assert_eq!(oil["volume"], 97.0);
    assert_eq!(oil["method"], "manual_correction");
    let gas = figure(&got["days"], "2024-03-08", "gas");
    assert_eq!(
        gas["method"], "meter_total",
        "other quantities keep their derivation"
    );

    // The periodic job re-derives the day and keeps the correction in force.
    let mut conn = db.pool().acquire().await.unwrap();
    production::derive_well(&mut conn, site.tenant, site.well, from, to, &settings)
        .await
        .unwrap();
    let rows = daily_rows(&mut conn, site.well, from, from + TimeDelta::days(1))
        .await
        .unwrap();
    let oil = rows.iter().find(|r| r.quantity == Quantity::Oil).unwrap();
    assert_eq!(
        (oil.method, oil.volume),
        (Method::ManualCorrection, Some(97.0))
    );
    let corrections: i64 =
        sqlx::query_scalar("SELECT count(*) FROM production_corrections WHERE well_id = $1")
            .bind(site.well)
            .fetch_one(&mut *conn)
            .await
            .unwrap();
    assert_eq!(corrections, 2);
    drop(conn);
    test.finish().await;
}

#[tokio::test]
async fn late_backfill_is_picked_up_by_the_periodic_job() {
    let test = TestDb::new("an_backfill").await;
    let db = &test.db;
    let mut site = WellSite::create(db, "acme", "42-329-10003", "TX").await;
    let profile = Profile::march_2024();
    let grid = t("2024-03-06T23:00:00Z");
    let end = t("2024-03-10T01:00:00Z");
    // The gas counter is silent across midnight 03-08 → 03-09: both days get a gap.
    let hole = (t("2024-03-08T23:00:00Z"), t("2024-03-09T01:00:00Z"));
    let rows = profile.rows(
        &site,
        grid,
        end,
        &[("gas_volume_total_mcf", hole.0, hole.1)],
    );
    site.ingest(db, &rows).await;
    maintain(db).await;

    // Batches received up to the run count (no settle delay: the test commits before it).
    let options = JobOptions {
        ingest_settle: std::time::Duration::ZERO,
        ..JobOptions::default()
    };
    let report = production::run_once(db, &options, Utc::now())
        .await
        .unwrap();
    assert_eq!(report.failed_tenants, 0);
    assert!(report.well_days >= 4, "{report:?}");
    let mut conn = db.pool().acquire().await.unwrap();
    let gas = |rows: &[store::production::DailyRow], d: &str| {
        rows.iter()
            .find(|r| r.quantity == Quantity::Gas && r.day == day(d))
            .cloned()
            .unwrap()
    };
    let before = daily_rows(&mut conn, site.well, day("2024-03-07"), day("2024-03-10"))
        .await
        .unwrap();
    for d in ["2024-03-08", "2024-03-09"] {
        let g = gas(&before, d);
        assert!(!g.is_complete(), "{d}: {g:?}");
        assert!(g.coverage < 1.0);
        assert!(!g.gaps.is_empty());
    }
    assert!(gas(&before, "2024-03-07").is_complete());

    // The gateway's backlog arrives later: the next run re-derives the affected days.
    let backfill = profile.metric_rows(&site, "gas_volume_total_mcf", hole.0, hole.1, grid);
    assert!(!backfill.is_empty());
    site.ingest(db, &backfill).await;
    maintain(db).await;
    production::run_once(db, &options, Utc::now())
        .await
        .unwrap();
    let after = daily_rows(&mut conn, site.well, day("2024-03-07"), day("2024-03-10"))
        .await
        .unwrap();
    for d in ["2024-03-08", "2024-03-09"] {
        let g = gas(&after, d);
        assert!(g.is_complete(), "{d}: {g:?}");
        close(g.volume.unwrap(), GAS_PER_DAY, 1e-9, d);
    }
    drop(conn);
    test.finish().await;
}

#[tokio::test]
async fn bad_parameters_and_bodies_get_precise_400s() {
    let test = TestDb::new("an_params").await;
    let db = &test.db;
    let site = WellSite::create(db, "acme", "42-329-10004", "TX").await;
    let api = Api::start(db).await;
    let base = format!("/api/v1/tenants/acme/wells/{}/production", site.well);
    for (path, message) in [
        (
            format!("{base}?from=2024-03-07"),
            "invalid query parameter `to`: is required",
        ),
        (
            format!("{base}?from=2024-03-07&to=2024-03-07"),
            "invalid query parameter `from`: must be before `to`",
        ),
        (
            format!("{base}?from=03/07/2024&to=2024-03-08"),
            "invalid query parameter `from`: must be a date YYYY-MM-DD",
        ),
        (
            format!("{base}?from=2023-01-01&to=2024-03-08"),
            "invalid query parameter `to`: the range spans 432 days, more than the 366 allowed",
        ),
        (
            format!("{base}?from=2024-03-01&to=2024-03-08&unit=bbl"),
            "invalid query string: unknown field `unit`",
        ),
        (
            "/api/v1/tenants/acme/production/monthly?month=2024-13".to_string(),
            "invalid query parameter `month`: must be a month YYYY-MM",
        ),
    ] {
        let r = api.get(&path).await;
        assert_eq!(r.status, 400, "{path}: {}", r.text());
        let m = r.json()["error"]["message"].as_str().unwrap().to_owned();
        assert!(m.starts_with(message), "{path}: {m}");
    }
    let r = api
        .post(
            &format!("{base}/derive?from=2024-01-01&to=2024-06-01"),
            None,
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(
        r.text().contains("more than the 92 allowed"),
        "{}",
        r.text()
    );
    for (body, message) in [
        (
            json!({"day": "2024-03-08", "quantity": "oil", "volume": 1}),
            "invalid body field `author`: is required",
        ),
        (
            json!({"day": "2024-03-08", "quantity": "oil", "volume": -1, "author": "a"}),
            "invalid body field `volume`: must be from 0",
        ),
        (
            json!({"day": "2999-03-08", "quantity": "oil", "volume": 1, "author": "a"}),
            "invalid body field `day`: 2999-03-08 is in the future",
        ),
        (
            json!({"day": "2024-03-08", "quantity": "brine", "volume": 1, "author": "a"}),
            "invalid body field `quantity`: must be one of",
        ),
        (
            json!({"day": "2024-03-08", "quantity": "oil", "volume": 1, "author": "a", "x": 1}),
            "invalid JSON body: unknown field `x`",
        ),
    ] {
        let r = api.post(&format!("{base}/corrections"), Some(&body)).await;
        assert_eq!(r.status, 400, "{body}: {}", r.text());
        let m = r.json()["error"]["message"].as_str().unwrap().to_owned();
        assert!(m.starts_with(message), "{body}: {m}");
    }
    let r = api
        .get("/api/v1/tenants/acme/wells/999999/production?from=2024-03-01&to=2024-03-02")
        .await;
    assert_eq!(r.status, 404);
    test.finish().await;
}

#[tokio::test]
async fn monthly_totals_report_completeness() {
    let test = TestDb::new("an_monthly").await;
    let db = &test.db;
    let mut site = WellSite::create(db, "acme", "42-329-10005", "TX").await;
    let profile = Profile::march_2024();
    let rows = profile.rows(
        &site,
        t("2024-03-01T00:00:00Z"),
        t("2024-03-05T00:00:00Z"),
        &[],
    );
    site.ingest(db, &rows).await;
    maintain(db).await;
    let mut conn = db.pool().acquire().await.unwrap();
    production::derive_well(
        &mut conn,
        site.tenant,
        site.well,
        day("2024-03-02"),
        day("2024-03-04"),
        &DerivationSettings::default(),
    )
    .await
    .unwrap();
    drop(conn);
    let api = Api::start(db).await;
    let r = api
        .get("/api/v1/tenants/acme/production/monthly?month=2024-03")
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.json();
    assert_eq!(body["days"], 31);
    let well = &body["wells"][0];
    assert_eq!(well["well_id"], site.well.0);
    let gas = well["totals"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["quantity"] == "gas")
        .unwrap();
    close(
        gas["total"].as_f64().unwrap(),
        2.0 * GAS_PER_DAY,
        1e-9,
        "gas total",
    );
    assert_eq!(gas["complete_days"], 2);
    // 29 days were never derived: they count as incomplete, not as zero days.
    assert_eq!(gas["incomplete_days"].as_array().unwrap().len(), 29);
    assert_eq!(gas["incomplete_days"][0], "2024-03-01");
    assert_eq!(gas["methods"], json!(["meter_total"]));
    test.finish().await;
}
