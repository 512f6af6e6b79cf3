//! Decline-curve endpoint: 24 months of synthetic production recover the generating model,
//! the forecast series are ready to chart, and short histories are refused with 422.

use serde_json::Value;
use testkit::analytics::*;

const YEAR: f64 = 365.25;

fn num(v: &Value, what: &str) -> f64 {
    v.as_f64()
        .unwrap_or_else(|| panic!("{what} is not a number: {v}"))
}

fn check_series_ordering(body: &Value) {
    for series in ["forecast", "cumulative"] {
        let points = body[series].as_array().unwrap();
        assert_eq!(points.len(), 20 * 12 + 1, "{series}: monthly over 20 years");
        let mut last_time = String::new();
        for p in points {
            let (p10, p50, p90) = (
                num(&p["p10"], "p10"),
                num(&p["p50"], "p50"),
                num(&p["p90"], "p90"),
            );
            assert!(p10 >= p50 && p50 >= p90 && p90 >= 0.0, "{series}: {p}");
            let time = p["time"].as_str().unwrap().to_owned();
            assert!(time > last_time, "{series}: times ascend");
            last_time = time;
        }
    }
    let eur = &body["eur"];
    assert!(
        num(&eur["p10"], "eur") >= num(&eur["p50"], "eur")
            && num(&eur["p50"], "eur") >= num(&eur["p90"], "eur")
    );
    assert_eq!(body["history"].as_array().unwrap().len(), 24);
}

#[tokio::test]
async fn decline_fits_recover_the_generating_models() {
    let test = TestDb::new("an_decline").await;
    let db = &test.db;
    let exp = WellSite::create(db, "acme", "42-329-40001", "TX").await;
    let hyp = WellSite::create_in(
        db,
        exp.tenant,
        "acme",
        "Pad 2",
        "gw-2",
        "42-329-40002",
        "TX",
    )
    .await;
    let short = WellSite::create_in(
        db,
        exp.tenant,
        "acme",
        "Pad 3",
        "gw-3",
        "42-329-40003",
        "TX",
    )
    .await;
    let start = day("2022-01-01");
    // Exponential: qi 500 bbl/d, 60 %/yr nominal.
    let d_exp = 0.6 / YEAR;
    seed_oil(db, exp.tenant, exp.well, start, 730, |t| {
        500.0 * (-d_exp * t).exp()
    })
    .await;
    // Hyperbolic: qi 800 bbl/d, Di 150 %/yr nominal, b = 0.8.
    let (qi, di, b) = (800.0, 1.5 / YEAR, 0.8);
    let hyperbolic = move |t: f64| qi * (1.0 + b * di * t).powf(-1.0 / b);
    seed_oil(db, hyp.tenant, hyp.well, start, 730, hyperbolic).await;
    seed_oil(db, short.tenant, short.well, start, 120, |t| {
        300.0 * (-d_exp * t).exp()
    })
    .await;
    let api = Api::start(db).await;
    // The fit's origin is the middle of January 2022 (15.5 days after the first day).
    let t0 = 15.5;

    let r = api
        .get(&format!(
            "/api/v1/tenants/acme/wells/{}/decline?metric=oil&economic_limit=2",
            exp.well
        ))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.json();
    assert_eq!(body["model_requested"], "auto");
    assert_eq!(body["chosen_model"], "exponential", "{}", body["fits"]);
    assert_eq!(body["selection_criterion"], "AICc");
    assert_eq!(body["selection_score"], body["parameters"]["aicc"]);
    assert_eq!(body["origin"], "2022-01-16T12:00:00Z");
    let p = &body["parameters"];
    close(
        num(&p["qi"], "qi"),
        500.0 * (-d_exp * t0).exp(),
        0.02,
        "exponential qi",
    );
    close(
        num(&p["di_nominal_per_year"], "di"),
        0.6,
        0.03,
        "exponential Di",
    );
    assert!(num(&p["qi_standard_error"], "se") > 0.0);
    assert_eq!(
        body["fits"].as_array().unwrap().len() + body["failures"].as_array().unwrap().len(),
        4
    );
    check_series_ordering(&body);
    assert_eq!(body["rate_unit"], "bbl/d");
    assert_eq!(body["economic_limit"], 2.0);
    assert_eq!(body["end_of_life"]["limited_by"], "economic_limit");
    // EUR of the best fit: the history's cumulative plus the exponential tail to 2 bbl/d.
    let q_end = 500.0 * (-d_exp * 730.0).exp();
    let eur_by_hand = 500.0 * (1.0 - (-d_exp * 730.0).exp()) / d_exp + (q_end - 2.0) / d_exp;
    close(
        num(&body["eur"]["best_fit"], "eur"),
        eur_by_hand,
        0.05,
        "EUR",
    );

    let r = api
        .get(&format!(
            "/api/v1/tenants/acme/wells/{}/decline?metric=oil",
            hyp.well
        ))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.json();
    let chosen = body["chosen_model"].as_str().unwrap();
    assert!(
        chosen == "hyperbolic" || chosen == "modified_hyperbolic",
        "{chosen}: {}",
        body["fits"]
    );
    let p = &body["parameters"];
    close(num(&p["b"], "b"), b, 0.2, "hyperbolic b");
    close(num(&p["qi"], "qi"), hyperbolic(t0), 0.05, "hyperbolic qi");
    let di_at_origin = di / (1.0 + b * di * t0) * YEAR;
    close(
        num(&p["di_nominal_per_year"], "di"),
        di_at_origin,
        0.2,
        "hyperbolic Di",
    );
    assert!(p["b_standard_error"].as_f64().is_some());
    check_series_ordering(&body);

    let r = api
        .get(&format!(
            "/api/v1/tenants/acme/wells/{}/decline?metric=oil&model=exponential&years=5&draws=200",
            hyp.well
        ))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.json();
    assert_eq!(
        body["chosen_model"], "exponential",
        "the requested model is fitted"
    );
    assert_eq!(body["fits"].as_array().unwrap().len(), 1);
    assert_eq!(body["forecast"].as_array().unwrap().len(), 5 * 12 + 1);
    assert_eq!(body["draws"], 200);

    let r = api
        .get(&format!(
            "/api/v1/tenants/acme/wells/{}/decline?metric=oil",
            short.well
        ))
        .await;
    assert_eq!(r.status, 422, "{}", r.text());
    let body = r.json();
    assert_eq!(body["error"]["code"], "unprocessable");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("decline-curve fitting needs at least 6 months of production history, got 3.9 months (4 points)"),
        "{message}"
    );

    for (query, message) in [
        (
            "model=auto",
            "invalid query parameter `metric`: is required",
        ),
        (
            "metric=water",
            "invalid query parameter `metric`: must be oil or gas",
        ),
        (
            "metric=oil&model=arps",
            "invalid query parameter `model`: must be one of auto",
        ),
        (
            "metric=oil&economic_limit=-1",
            "invalid query parameter `economic_limit`",
        ),
        (
            "metric=gas&years=0",
            "invalid query parameter `years`: must be an integer from 1 to 50",
        ),
        (
            "metric=gas&draws=1000000",
            "invalid query parameter `draws`",
        ),
    ] {
        let r = api
            .get(&format!(
                "/api/v1/tenants/acme/wells/{}/decline?{query}",
                exp.well
            ))
            .await;
        assert_eq!(r.status, 400, "{query}: {}", r.text());
        let m = r.json()["error"]["message"].as_str().unwrap().to_owned();
        assert!(m.starts_with(message), "{query}: {m}");
    }
    let r = api
        .get("/api/v1/tenants/acme/wells/987654/decline?metric=gas")
        .await;
    assert_eq!(r.status, 404);
    test.finish().await;
}
