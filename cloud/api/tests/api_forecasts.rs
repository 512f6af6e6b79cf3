//! Emissions forecasts and production gaps through the HTTP API: nothing is served before a
//! refresh; a refresh forecasts every well with sources (and its site) from the stored
//! production, stamps the model version, and a second refresh on the same inputs changes
//! nothing; new data or new targets recompute; CO2e follows the `gwp` parameter and dollars
//! the price; the fleet lists are ranked; bad parameters are 400s; another tenant sees 404;
//! refreshes and targets are audited and for tenant admins only.

use chrono::{TimeDelta, Utc};
use serde_json::{Value, json};
use store::identity::Role;
use testkit::api::{TestApi, seed};
use testkit::auth;
use testkit::forecasts::{DAYS, WELLS, seed_production, seed_production_wells};

fn band(v: &Value) -> (f64, f64, f64) {
    (
        v["low"].as_f64().unwrap(),
        v["p50"].as_f64().unwrap(),
        v["high"].as_f64().unwrap(),
    )
}

fn horizon(forecast: &Value, days: u64) -> &Value {
    forecast["horizons"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["days"] == days)
        .unwrap_or_else(|| panic!("no {days}-day horizon in {forecast}"))
}

#[tokio::test]
async fn forecasts_are_refreshed_on_new_inputs_stamped_and_served_ranked() {
    let api = TestApi::start("api_forecasts").await;
    let fleet = seed(&api.db, 5, 30).await;
    let admin = auth::member_token(&api.db, fleet.acme, Role::TenantAdmin).await;
    let viewer = auth::member_token(&api.db, fleet.acme, Role::Viewer).await;
    let other = auth::member_token(&api.db, fleet.other, Role::TenantAdmin).await;
    let s = seed_production(&api.db, fleet.acme).await;
    let base = "/api/v1/tenants/acme";

    // Nothing before a refresh: reads never compute.
    let r = api
        .request_as(&viewer, "GET", &format!("{base}/emissions-forecast"), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["items"], json!([]));
    let well0 = format!("{base}/wells/{}", s.wells[0].0);
    let r = api
        .request_as(&viewer, "GET", &format!("{well0}/emissions-forecast"), None)
        .await;
    assert_eq!(r.json()["forecast"], Value::Null);

    // Viewers may not refresh; an admin's refresh forecasts every well and the site.
    let refresh = format!("{base}/forecasts/refresh");
    let r = api.request_as(&viewer, "POST", &refresh, None).await;
    assert_eq!(r.status, 403);
    let r = api.request_as(&admin, "POST", &refresh, None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let out = r.json();
    assert_eq!(out["emissions_recomputed"], true);
    assert_eq!(out["emissions_subjects"], WELLS as u64 + 1, "{out}");
    assert_eq!(out["gaps_recomputed"], true);
    assert_eq!(out["gap_wells"], WELLS as u64, "{out}");
    // The runs: model versions, and the held-out backtest on the tenant's last 30 days.
    let r = api
        .request_as(&viewer, "GET", &format!("{base}/forecasts/runs"), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let runs = r.json();
    let emissions = &runs["items"][0];
    assert_eq!(emissions["kind"], "emissions", "{runs}");
    assert_eq!(emissions["model_version"], "emissions-decline-subpart-w/2");
    assert_eq!(emissions["inputs_hash"].as_str().unwrap().len(), 64);
    assert_eq!(emissions["metrics"]["wells"], WELLS as u64, "{runs}");
    let mape = emissions["metrics"]["mape_30d_percent"].as_f64().unwrap();
    let base_mape = emissions["metrics"]["baseline_last_month_mape_30d_percent"]
        .as_f64()
        .unwrap();
    assert!(mape < 15.0 && base_mape > 0.0, "{runs}");
    let gaps_run = &runs["items"][1];
    assert_eq!(gaps_run["kind"], "production_gap");
    assert_eq!(
        gaps_run["metrics"]["categories"]["underperforming"], 1,
        "{runs}"
    );
    assert_eq!(
        gaps_run["metrics"]["categories"]["on_target"],
        WELLS as u64 - 1,
        "{runs}"
    );
    // The same inputs: nothing recomputed.
    let r = api.request_as(&admin, "POST", &refresh, None).await;
    let again = r.json();
    assert_eq!(again["emissions_recomputed"], false, "{again}");
    assert_eq!(again["gaps_recomputed"], false, "{again}");

    // One well: 90 days from today, stamped, CO2e = CO2 + 28 CH4 + 265 N2O under AR5.
    let r = api
        .request_as(&viewer, "GET", &format!("{well0}/emissions-forecast"), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let f = r.json()["forecast"].clone();
    assert_eq!(f["model_version"], "emissions-decline-subpart-w/2");
    assert_eq!(f["subject"], "well");
    assert_eq!(f["gwp"]["set"], "AR5");
    assert_eq!(f["start_day"], json!(Utc::now().date_naive()));
    assert!(
        [
            "exponential",
            "harmonic",
            "hyperbolic",
            "modified_hyperbolic"
        ]
        .contains(&f["gas_method"].as_str().unwrap()),
        "{}",
        f["gas_method"]
    );
    let days = f["days"].as_array().unwrap();
    assert_eq!(days.len(), 90);
    let mut sum30 = 0.0;
    for d in days {
        let m = &d["masses"];
        let (lo, p50, hi) = band(&m["co2e_kg"]);
        assert!(lo <= p50 && p50 <= hi && lo >= 0.0, "{d}");
        let expected = m["co2_kg"]["p50"].as_f64().unwrap()
            + 28.0 * m["ch4_kg"]["p50"].as_f64().unwrap()
            + 265.0 * m["n2o_kg"]["p50"].as_f64().unwrap();
        assert!((p50 - expected).abs() <= 1e-9 * expected.max(1.0), "{d}");
        // 3 % of the gas is flared.
        let a = &d["activity"];
        let (g, fl) = (
            a["gas_mcf"]["p50"].as_f64().unwrap(),
            a["flared_mcf"]["p50"].as_f64().unwrap(),
        );
        assert!((fl - 0.03 * g).abs() < 1e-6 * g.max(1.0), "{d}");
    }
    for d in &days[..30] {
        sum30 += d["masses"]["co2e_kg"]["p50"].as_f64().unwrap();
    }
    let h30 = horizon(&f, 30);
    let total30 = h30["masses"]["co2e_kg"]["p50"].as_f64().unwrap();
    assert!(
        (total30 - sum30).abs() < 1e-6 * sum30,
        "{total30} vs {sum30}"
    );
    let intensity = &h30["intensity"];
    assert!(
        intensity["kg_ch4_per_boe"]["p50"].as_f64().unwrap() > 0.0,
        "{intensity}"
    );
    assert!(
        intensity["comparisons"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "OGCI upstream methane intensity target"),
        "{intensity}"
    );

    // Another GWP set changes CO2e, not the masses.
    let r = api
        .request_as(
            &viewer,
            "GET",
            &format!("{well0}/emissions-forecast?gwp=AR6"),
            None,
        )
        .await;
    let f6 = r.json()["forecast"].clone();
    assert_eq!(f6["gwp"]["set"], "AR6");
    assert_eq!(
        horizon(&f6, 30)["masses"]["ch4_kg"],
        h30["masses"]["ch4_kg"]
    );
    assert!(
        horizon(&f6, 30)["masses"]["co2e_kg"]["p50"]
            .as_f64()
            .unwrap()
            > total30
    );

    // The fleet ranked by 30-day CO2e; the site is its wells plus its separators.
    let r = api
        .request_as(
            &viewer,
            "GET",
            &format!("{base}/emissions-forecast?by=well&horizon=30&limit=50"),
            None,
        )
        .await;
    let items = r.json()["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), WELLS);
    let co2e: Vec<f64> = items
        .iter()
        .map(|i| horizon(i, 30)["masses"]["co2e_kg"]["p50"].as_f64().unwrap())
        .collect();
    assert!(co2e.windows(2).all(|w| w[0] >= w[1]), "{co2e:?}");
    assert!(items.iter().all(|i| i["days"].is_null()));
    let r = api
        .request_as(
            &viewer,
            "GET",
            &format!("{base}/emissions-forecast?by=site"),
            None,
        )
        .await;
    let sites = r.json()["items"].as_array().unwrap().clone();
    assert_eq!(sites.len(), 1);
    assert_eq!(sites[0]["id"], s.site.0);
    let site_total = horizon(&sites[0], 30)["masses"]["co2e_kg"]["p50"]
        .as_f64()
        .unwrap();
    let wells_total: f64 = co2e.iter().sum();
    assert!(site_total > wells_total, "the separators add to the wells");
    let r = api
        .request_as(
            &viewer,
            "GET",
            &format!("{base}/sites/{}/emissions-forecast", s.site.0),
            None,
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["forecast"]["days"].as_array().unwrap().len(), 90);

    // Production gaps: the well down every other day ranks first, for downtime.
    let r = api
        .request_as(
            &viewer,
            "GET",
            &format!("{base}/production-gaps?price_per_bbl=80"),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let gaps = r.json();
    let first = &gaps["items"][0];
    assert_eq!(first["well_id"], s.wells[WELLS - 1].0, "{gaps}");
    assert_eq!(first["category"], "underperforming", "{first}");
    assert_eq!(first["model_version"], "gap-decline-peers/1");
    let top = &first["opportunities"][0];
    assert_eq!(top["cause"], "downtime", "{first}");
    let uplift = top["uplift_bbl_per_day"].as_f64().unwrap();
    assert!(uplift > 0.0);
    assert!((top["uplift_dollars_per_day"].as_f64().unwrap() - 80.0 * uplift).abs() < 1e-6);
    let (lo, p50, hi) = band(&first["gap_bbl_per_day"]);
    assert!(lo <= p50 && p50 <= hi && hi < 0.0, "{first}");
    for g in gaps["items"].as_array().unwrap()[1..].iter() {
        assert_eq!(g["category"], "on_target", "{g}");
    }
    let r = api
        .request_as(
            &viewer,
            "GET",
            &format!("{base}/production-gaps?category=on_target"),
            None,
        )
        .await;
    assert_eq!(r.json()["items"].as_array().unwrap().len(), WELLS - 1);
    let r = api
        .request_as(&viewer, "GET", &format!("{well0}/production-gap"), None)
        .await;
    let g = r.json()["gap"].clone();
    assert_eq!(g["category"], "on_target", "{g}");
    assert!(g["own_decline_bbl_per_day"].as_f64().unwrap() > 0.0, "{g}");
    assert_eq!(g["peers"], WELLS as u64 - 1, "{g}");

    // Targets: a tenant admin sets them; the next refresh compares with them.
    let targets = format!("{base}/methane-targets");
    let r = api.request_as(&viewer, "GET", &targets, None).await;
    assert_eq!(r.json()["kg_ch4_per_boe"], Value::Null);
    let body = json!({"kg_ch4_per_boe": 1e-6, "percent_of_sales_gas": null,
                      "percent_of_gas_produced": 50.0, "gas_ch4_fraction": 0.78});
    let r = api.request_as(&viewer, "PUT", &targets, Some(&body)).await;
    assert_eq!(r.status, 403);
    let r = api.request_as(&admin, "PUT", &targets, Some(&body)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let bad = json!({"kg_ch4_per_boe": -1.0, "percent_of_sales_gas": null,
                     "percent_of_gas_produced": null, "gas_ch4_fraction": null});
    let r = api.request_as(&admin, "PUT", &targets, Some(&bad)).await;
    assert_eq!(r.status, 400, "{}", r.text());
    let r = api.request_as(&admin, "POST", &refresh, None).await;
    let out = r.json();
    assert_eq!(out["emissions_recomputed"], true, "{out}");
    assert_eq!(out["gaps_recomputed"], false, "{out}");
    let r = api
        .request_as(&viewer, "GET", &format!("{well0}/emissions-forecast"), None)
        .await;
    let f = r.json()["forecast"].clone();
    let comparisons = horizon(&f, 30)["intensity"]["comparisons"]
        .as_array()
        .unwrap()
        .clone();
    let tenant: Vec<&Value> = comparisons
        .iter()
        .filter(|c| c["name"] == "tenant target")
        .collect();
    assert_eq!(tenant.len(), 2, "{comparisons:?}");
    assert!(
        tenant
            .iter()
            .any(|c| c["basis"] == "kg_ch4_per_boe" && c["exceeded"] == true)
    );
    assert!(
        tenant
            .iter()
            .any(|c| c["basis"] == "percent_of_gas_produced" && c["exceeded"] == false)
    );

    // New data: a changed figure recomputes the gaps.
    let mut conn = api.db.pool().acquire().await.unwrap();
    sqlx::query(
        "UPDATE daily_production SET volume = volume * 0.5
         WHERE well_id = $1 AND quantity = 'oil' AND day = $2",
    )
    .bind(s.wells[0])
    .bind(s.first_day + TimeDelta::days(DAYS - 1))
    .execute(&mut *conn)
    .await
    .unwrap();
    drop(conn);
    let r = api.request_as(&admin, "POST", &refresh, None).await;
    let out = r.json();
    assert_eq!(out["gaps_recomputed"], true, "{out}");

    // Bad parameters are 400s; another tenant's well or site is not found.
    for q in [
        "emissions-forecast?horizon=45",
        "emissions-forecast?by=lease",
        "emissions-forecast?gwp=AR9",
        "emissions-forecast?limit=0",
        "emissions-forecast?colour=blue",
        "production-gaps?price_per_bbl=-1",
        "production-gaps?price_per_bbl=abc",
        "production-gaps?category=great",
    ] {
        let r = api
            .request_as(&viewer, "GET", &format!("{base}/{q}"), None)
            .await;
        assert_eq!(r.status, 400, "{q}: {}", r.text());
    }
    let r = api
        .request_as(&other, "GET", &format!("{well0}/emissions-forecast"), None)
        .await;
    assert_eq!(r.status, 404);
    let r = api
        .request_as(
            &other,
            "GET",
            &format!(
                "/api/v1/tenants/other/wells/{}/production-gap",
                s.wells[0].0
            ),
            None,
        )
        .await;
    assert_eq!(r.status, 404, "{}", r.text());
    let r = api
        .request_as(
            &other,
            "GET",
            &format!(
                "/api/v1/tenants/other/sites/{}/emissions-forecast",
                s.site.0
            ),
            None,
        )
        .await;
    assert_eq!(r.status, 404, "{}", r.text());
    let r = api
        .request_as(
            &other,
            "GET",
            "/api/v1/tenants/other/emissions-forecast",
            None,
        )
        .await;
    assert_eq!(
        r.json()["items"],
        json!([]),
        "the other tenant has no forecast"
    );

    // Audited.
    let log = api
        .request_as(&admin, "GET", &format!("{base}/audit?limit=100"), None)
        .await
        .json();
    let count = |action: &str| {
        log["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["action"] == action)
            .count()
    };
    assert_eq!(count("forecasts.refresh"), 4, "{log}");
    assert_eq!(count("methane_targets.set"), 1, "{log}");
}

/// The emissions model registry: a training registers a model trained on the tenant's own
/// wells and promotes it (forecasts recomputed and stamped with its version); the same data
/// again gives a candidate that does not beat it and is not promoted; activation by hand
/// switches and rolls back (audited, forecasts re-stamped); training as a job; another
/// tenant sees 404; bad versions are 400, unknown ones 404.
#[tokio::test]
async fn emissions_models_are_trained_promoted_on_held_out_wells_and_rolled_back() {
    let api = TestApi::start("api_emissions_models").await;
    let fleet = seed(&api.db, 5, 30).await;
    let admin = auth::member_token(&api.db, fleet.acme, Role::TenantAdmin).await;
    let viewer = auth::member_token(&api.db, fleet.acme, Role::Viewer).await;
    let other = auth::member_token(&api.db, fleet.other, Role::TenantAdmin).await;
    let s = seed_production(&api.db, fleet.acme).await;
    let base = "/api/v1/tenants/acme";
    let models = format!("{base}/emissions-forecast/models");
    let well0 = format!("{base}/wells/{}/emissions-forecast", s.wells[0].0);
    let stamp = |v: &Value| format!("emissions-decline-subpart-w/2@{v}");

    let r = api.request_as(&viewer, "POST", &models, None).await;
    assert_eq!(r.status, 403, "viewers may not train");
    let first = first_model(&api, &admin, base, "emissions-forecast").await;
    assert_eq!(first["algorithm"], "decline_subpart_w_episodes_calibrated");
    assert_eq!(first["data_hash"].as_str().unwrap().len(), 64);
    assert_eq!(first["wells"], 6, "two thirds of the 8 wells: {first}");
    assert_eq!(first["metrics"]["held_out_wells"], 2, "{first}");
    let mape = first["metrics"]["model"]["mape_30d_percent"]
        .as_f64()
        .unwrap();
    assert!(mape.is_finite() && mape >= 0.0, "{first}");
    assert!(
        first["metrics"]["parameters"]["fraction_window_days"].is_u64(),
        "{first}"
    );
    assert_eq!(
        first["window_end"],
        json!(Utc::now().date_naive() - TimeDelta::days(1))
    );
    // Its activation recomputed the forecasts with it, stamped with its version.
    let f = api.request_as(&viewer, "GET", &well0, None).await.json();
    assert_eq!(
        f["forecast"]["model_version"],
        stamp(&first["version"]),
        "{f}"
    );
    let runs = api
        .request_as(&viewer, "GET", &format!("{base}/forecasts/runs"), None)
        .await
        .json();
    assert_eq!(runs["items"][0]["model_version"], stamp(&first["version"]));

    // Again: measured against the model in use, on too few held-out wells to replace it.
    let r = api.request_as(&admin, "POST", &models, None).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let second = r.json();
    assert_eq!(second["status"], "candidate", "{second}");
    assert_eq!(
        second["reason"],
        "measured on 2 held-out wells: at least 5 are needed to replace the model in use"
    );
    assert_eq!(
        second["metrics"]["model_in_use"]["mape_30d_percent"],
        first["metrics"]["model"]["mape_30d_percent"]
    );
    let f = api.request_as(&viewer, "GET", &well0, None).await.json();
    assert_eq!(f["forecast"]["model_version"], stamp(&first["version"]));
    let list = api.request_as(&viewer, "GET", &models, None).await.json();
    let statuses: Vec<_> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["version"].clone(), m["status"].clone()))
        .collect();
    assert_eq!(
        statuses,
        vec![
            (second["version"].clone(), json!("candidate")),
            (first["version"].clone(), json!("active"))
        ]
    );

    // By hand: the candidate, then back to the first (a rollback); forecasts follow.
    let activate = |v: &Value| format!("{models}/{v}/activate");
    let r = api
        .request_as(&admin, "POST", &activate(&second["version"]), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["status"], "active");
    let f = api.request_as(&viewer, "GET", &well0, None).await.json();
    assert_eq!(f["forecast"]["model_version"], stamp(&second["version"]));
    let r = api
        .request_as(&admin, "POST", &activate(&first["version"]), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let f = api.request_as(&viewer, "GET", &well0, None).await.json();
    assert_eq!(f["forecast"]["model_version"], stamp(&first["version"]));
    let list = api.request_as(&viewer, "GET", &models, None).await.json();
    assert_eq!(list["items"][1]["status"], "active", "{list}");
    assert_eq!(list["items"][0]["status"], "retired", "{list}");
    registry_refusals(
        &api,
        [&admin, &viewer, &other],
        base,
        "emissions-forecast",
        &first,
    )
    .await;

    let third = training_job(
        &api,
        [&admin, &viewer],
        base,
        "emissions-forecast",
        "emissions",
    )
    .await;
    // Failure-risk routes do not see emissions models.
    assert_eq!(
        api.request_as(
            &admin,
            "POST",
            &format!("{base}/failure-risk/models/{third}/activate"),
            None
        )
        .await
        .status,
        404
    );

    // Every mutation is audited.
    assert_eq!(
        audit_counts(&api, &admin, base, "emissions").await,
        (3, 3, 1)
    );
    api.finish().await;
}

#[tokio::test]
async fn production_gap_models_are_trained_measured_on_held_out_wells_and_rolled_back() {
    let api = TestApi::start("api_gap_models").await;
    let fleet = seed(&api.db, 5, 30).await;
    let admin = auth::member_token(&api.db, fleet.acme, Role::TenantAdmin).await;
    let viewer = auth::member_token(&api.db, fleet.acme, Role::Viewer).await;
    let other = auth::member_token(&api.db, fleet.other, Role::TenantAdmin).await;
    // 15 wells: 5 held out, enough to replace the model in use.
    let s = seed_production_wells(&api.db, fleet.acme, 15).await;
    let base = "/api/v1/tenants/acme";
    let models = format!("{base}/production-gaps/models");
    let activate = |v: &Value| format!("{models}/{v}/activate");
    let down_well = s.wells.last().unwrap().0;
    let gap_of = async |well: i64| {
        api.request_as(
            &viewer,
            "GET",
            &format!("{base}/wells/{well}/production-gap"),
            None,
        )
        .await
        .json()["gap"]
            .clone()
    };
    let stamp = |v: &Value| format!("gap-decline-peers/1@{v}");

    // A poor model in use: a 14-day guard and peers a month back learn every impairment
    // away.
    let poor = {
        let mut tx = api.db.begin_tenant(fleet.acme).await.unwrap();
        let day = Utc::now().date_naive();
        let record = store::failure_risk::insert_model(
            &mut tx,
            fleet.acme,
            store::failure_risk::ModelKind::ProductionGap,
            &store::failure_risk::NewModel {
                algorithm: "decline_peers_inverse_variance",
                features: vec!["oil"],
                window: (day, day),
                data_hash: &"0".repeat(64),
                wells: 1,
                training_rows: 1,
                metrics: json!({}),
                model: json!({ "guard_days": 14, "peer_lag_days": 30, "age_factor": 1.0 }),
                promote: true,
                reason: "set by the test",
                compared_with: None,
            },
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        json!(record.version)
    };
    let r = api
        .request_as(&admin, "POST", &format!("{base}/forecasts/refresh"), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(gap_of(down_well).await["model_version"], stamp(&poor));

    let r = api.request_as(&viewer, "POST", &models, None).await;
    assert_eq!(r.status, 403, "viewers may not train");
    let r = api.request_as(&admin, "POST", &models, None).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let first = r.json();
    assert_eq!(first["status"], "active", "{first}");
    let reason = first["reason"].as_str().unwrap();
    assert!(
        reason.contains("beats") && reason.contains("of the model in use"),
        "{reason}"
    );
    assert_eq!(first["algorithm"], "decline_peers_inverse_variance");
    assert_eq!(first["wells"], 10, "two thirds of the 15 wells: {first}");
    assert_eq!(first["metrics"]["held_out_wells"], 5, "{first}");
    assert_eq!(first["data_hash"].as_str().unwrap().len(), 64);
    let m = &first["metrics"];
    for key in ["mdape_percent", "mdape_impaired_percent", "score_percent"] {
        let v = m["model"][key].as_f64().unwrap();
        assert!(v.is_finite() && v >= 0.0, "{key}: {first}");
    }
    assert!(
        m["model"]["score_percent"].as_f64().unwrap()
            < m["model_in_use"]["score_percent"].as_f64().unwrap() - 0.1,
        "{first}"
    );
    assert_eq!(
        (&m["model"]["wells"], &m["model_in_use"]["wells"]),
        (&json!(5), &json!(5)),
        "both measured on the same held-out wells: {first}"
    );
    assert_eq!(m["candidates"].as_array().unwrap().len(), 27, "{first}");
    let p = &m["parameters"];
    assert!(
        [30, 60, 90].contains(&p["guard_days"].as_i64().unwrap()),
        "{p}"
    );
    assert!(
        [180, 270, 365].contains(&p["peer_lag_days"].as_i64().unwrap()),
        "{p}"
    );
    // The trained model assesses every gap: the well down every other day still ranks
    // first, for its downtime.
    let gaps = api
        .request_as(&viewer, "GET", &format!("{base}/production-gaps"), None)
        .await
        .json();
    let top = &gaps["items"][0];
    assert_eq!(top["well_id"], down_well, "{gaps}");
    assert_eq!(top["model_version"], stamp(&first["version"]), "{top}");
    assert_eq!(top["opportunities"][0]["cause"], "downtime", "{top}");

    // The same data again: no better on the held-out wells than the model in use.
    let r = api.request_as(&admin, "POST", &models, None).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let second = r.json();
    assert_eq!(second["status"], "candidate", "{second}");
    let reason = second["reason"].as_str().unwrap();
    assert!(
        reason.contains("does not beat") && reason.contains("the model in use"),
        "{reason}"
    );
    assert_eq!(
        second["metrics"]["model_in_use"]["score_percent"],
        first["metrics"]["model"]["score_percent"]
    );
    assert_eq!(
        gap_of(down_well).await["model_version"],
        stamp(&first["version"])
    );

    // By hand: the candidate, then back to the first (a rollback); gaps follow.
    let r = api
        .request_as(&admin, "POST", &activate(&second["version"]), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        gap_of(down_well).await["model_version"],
        stamp(&second["version"])
    );
    let r = api
        .request_as(&admin, "POST", &activate(&first["version"]), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["status"], "active");
    assert_eq!(
        gap_of(down_well).await["model_version"],
        stamp(&first["version"])
    );
    let list = api.request_as(&viewer, "GET", &models, None).await.json();
    let statuses: Vec<_> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["version"].clone(), m["status"].clone()))
        .collect();
    assert_eq!(
        statuses,
        vec![
            (second["version"].clone(), json!("retired")),
            (first["version"].clone(), json!("active")),
            (poor.clone(), json!("retired"))
        ]
    );
    let runs = api
        .request_as(&viewer, "GET", &format!("{base}/forecasts/runs"), None)
        .await
        .json();
    assert!(
        runs["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["model_version"] == stamp(&first["version"])),
        "{runs}"
    );
    registry_refusals(
        &api,
        [&admin, &viewer, &other],
        base,
        "production-gaps",
        &first,
    )
    .await;
    // Emissions routes do not see gap models.
    assert_eq!(
        api.request_as(
            &admin,
            "POST",
            &format!(
                "{base}/emissions-forecast/models/{}/activate",
                first["version"]
            ),
            None
        )
        .await
        .status,
        404
    );

    training_job(
        &api,
        [&admin, &viewer],
        base,
        "production-gaps",
        "production_gap",
    )
    .await;

    // Every mutation is audited.
    assert_eq!(
        audit_counts(&api, &admin, base, "production_gap").await,
        (3, 2, 1)
    );
    api.finish().await;
}

/// What every model registry (`…/<area>/models`) refuses: an unknown version (404), a
/// version that is not a number (400), a viewer's activation (403), and anything from
/// another tenant's member (404). `tokens`: an admin, a viewer, another tenant's admin.
async fn registry_refusals(
    api: &TestApi,
    tokens: [&str; 3],
    base: &str,
    area: &str,
    model: &Value,
) {
    let [admin, viewer, other] = tokens;
    let models = format!("{base}/{area}/models");
    let activate = |v: &Value| format!("{models}/{v}/activate");
    for (token, path, status) in [
        (admin, activate(&json!(99)), 404),
        (admin, format!("{models}/x/activate"), 400),
        (viewer, activate(&model["version"]), 403),
    ] {
        let r = api.request_as(token, "POST", &path, None).await;
        assert_eq!(r.status, status, "{path}: {}", r.text());
    }
    for (method, path) in [
        ("GET", models.clone()),
        ("POST", models.clone()),
        ("POST", activate(&model["version"])),
        ("POST", format!("{base}/{area}/training-jobs")),
    ] {
        let r = api.request_as(other, method, &path, None).await;
        assert_eq!(r.status, 404, "{method} {path}: {}", r.text());
    }
}

/// Training as a job: asked twice while queued (one job of `kind`), run by the worker,
/// succeeded; its model is the newest, a candidate (the same data as the model in use).
/// Returns its version. `tokens`: an admin and a viewer.
async fn training_job(
    api: &TestApi,
    tokens: [&str; 2],
    base: &str,
    area: &str,
    kind: &str,
) -> Value {
    let [admin, viewer] = tokens;
    let jobs = format!("{base}/{area}/training-jobs");
    let r = api.request_as(admin, "POST", &jobs, None).await;
    assert_eq!(r.status, 202, "{}", r.text());
    let job = r.json();
    assert_eq!(
        (&job["model"], &job["status"]),
        (&json!(kind), &json!("queued"))
    );
    let r = api.request_as(admin, "POST", &jobs, None).await;
    assert_eq!(
        r.json()["id"],
        job["id"],
        "asked again while queued: the same job"
    );
    assert_eq!(api::run_training_jobs(&api.db).await.unwrap(), 1);
    let done = api
        .request_as(
            viewer,
            "GET",
            &format!("{base}/failure-risk/training-jobs/{}", job["id"]),
            None,
        )
        .await
        .json();
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["progress"], 1.0);
    let version = done["model_version"].clone();
    let models = format!("{base}/{area}/models");
    let list = api.request_as(viewer, "GET", &models, None).await.json();
    assert_eq!(list["items"][0]["version"], version, "{list}");
    assert_eq!(list["items"][0]["status"], "candidate", "{list}");
    version
}

/// The audit log's entries of a kind's models: (trained, activated, training asked).
async fn audit_counts(api: &TestApi, admin: &str, base: &str, kind: &str) -> (usize, usize, usize) {
    let log = api
        .request_as(admin, "GET", &format!("{base}/audit"), None)
        .await
        .json();
    let count = |action: String| {
        log["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["action"] == action.as_str())
            .count()
    };
    (
        count(format!("{kind}_model.train")),
        count(format!("{kind}_model.activate")),
        count(format!("{kind}_training.request")),
    )
}

/// A registry's first model (`…/<area>/models`) on the 8 seeded wells, trained by a tenant
/// admin: measured on the 2 held-out wells only, too few to replace the untrained defaults
/// (in use until then), so a candidate that recomputes nothing; then activated by hand so
/// the test goes on with a registered model. Returns it as activated.
async fn first_model(api: &TestApi, admin: &str, base: &str, area: &str) -> Value {
    let models = format!("{base}/{area}/models");
    let runs = format!("{base}/forecasts/runs");
    let before = api.request_as(admin, "GET", &runs, None).await.json();
    let r = api.request_as(admin, "POST", &models, None).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let first = r.json();
    assert_eq!(first["status"], "candidate", "{first}");
    assert_eq!(
        first["reason"],
        "measured on 2 held-out wells: at least 5 are needed to replace the untrained defaults"
    );
    let after = api.request_as(admin, "GET", &runs, None).await.json();
    assert_eq!(before, after, "a candidate recomputes nothing");
    let r = api
        .request_as(
            admin,
            "POST",
            &format!("{models}/{}/activate", first["version"]),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}
