//! schemathesis (from PyPI; `scripts/services.sh` installs it) against the served OpenAPI
//! document, with a platform administrator's credentials over seeded data and a real SMTP
//! sink for the operations that send mail: no operation may answer 5xx, every response
//! must match its documented status codes, content type and schema, and **every
//! operation must answer 2xx at least once**. Operations that only succeed on particular
//! data get it from `schemathesis.toml` written by the test: the ids of records seeded to
//! be deleted, a complete month for the regulatory reports, a well with two years of
//! production for the decline curve, tokens for sign-in, refresh, sign-out, invitation and
//! password reset taken from real flows (the mail sink), fresh values for a new well,
//! rod-pump wells wearing toward failures for training a failure-risk model.
//! The HAR report of the run is read back to check the 2xx of every operation.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use analytics::emissions::SourceKind;
use analytics::emissions::factors::{Equipment, Service};
use api::{ApiOptions, AuthOptions};
use chrono::{TimeDelta, Utc};
use mail::{MailOptions, Mailer, SmtpSecurity};
use serde_json::{Value, json};
use store::emissions::{EmissionSource, insert_source};
use store::identity::Role;
use testkit::analytics::{WellSite, register_filings, seed_march, seed_oil, source};
use testkit::api::{Setup, TestApi, seed};
use testkit::smtp::SmtpSink;

const PASSWORD: &str = "correct horse battery staple 42";

/// The operation (method, path template) of the served document a request was for: the
/// template with the fewest parameters among those matching it segment by segment.
fn operation_of<'a>(
    ops: &'a [(String, String)],
    method: &str,
    path: &str,
) -> Option<&'a (String, String)> {
    let segments: Vec<&str> = path.split('/').collect();
    ops.iter()
        .filter(|(m, template)| {
            let t: Vec<&str> = template.split('/').collect();
            m == method
                && t.len() == segments.len()
                && t.iter()
                    .zip(&segments)
                    .all(|(t, s)| t == s || (t.starts_with('{') && t.ends_with('}')))
        })
        .min_by_key(|(_, template)| template.matches('{').count())
}

#[tokio::test]
async fn schemathesis_finds_no_server_error_no_schema_violation_and_a_2xx_everywhere() {
    let mut sink = SmtpSink::start().await;
    let mailer = Mailer::new(MailOptions {
        host: "127.0.0.1".to_owned(),
        port: sink.port(),
        security: SmtpSecurity::None,
        credentials: None,
        from: "WellPulse <no-reply@wellpulse.test>".to_owned(),
        public_url: "https://wellpulse.test".to_owned(),
        timeout: Duration::from_secs(10),
    })
    .unwrap();
    // Billing against the fake Stripe (Checkout, Portal and invoices answer there).
    let stripe = testkit::stripe::FakeStripe::start(&testkit::stripe::FAKE_METERS).await;
    let api = TestApi::with(
        "api_schemathesis",
        Setup {
            billing: Some(testkit::stripe::billing_options(
                &stripe.url(),
                &["whsec_schemathesis"],
            )),
            options: ApiOptions {
                request_timeout: Duration::from_secs(60),
                auth: AuthOptions {
                    principal_requests_per_minute: 1_000_000,
                    tenant_requests_per_minute: 1_000_000,
                    public_requests_per_minute: 1_000_000,
                    ..AuthOptions::default()
                },
                // Gateway client certificates can be issued (a 2xx to reach).
                ca_key: Some(base::Secret::new(testkit::mtls::CA_KEY)),
                ..ApiOptions::default()
            },
            mailer: Some(mailer),
            ..Setup::default()
        },
    )
    .await;
    let fleet = seed(&api.db, 5, 60).await;
    // Rod-pump wells wearing toward failures: training a failure-risk model succeeds.
    let risk = testkit::failure_risk::seed_rod_pumps(&api.db, fleet.acme, "Risk pad", 9, 150).await;
    // A training job to read back.
    let training_job = {
        let mut tx = api.db.begin_tenant(fleet.acme).await.unwrap();
        let (job, _) = store::failure_risk::enqueue_training(
            &mut tx,
            fleet.acme,
            store::failure_risk::ModelKind::FailureRisk,
            "on_demand",
            "seed",
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        job.id
    };
    let db = &api.db;
    let admin_as = |method: &'static str, path: String, body: Value| {
        let api = &api;
        async move {
            let r = api.request_as(&api.token, method, &path, Some(&body)).await;
            assert!(r.status < 300, "{method} {path}: {}", r.text());
            r.json()
        }
    };

    // Records made to be deleted, and fresh values for a new well.
    let spare_well = admin_as(
        "POST",
        "/api/v1/tenants/acme/wells".into(),
        json!({ "site_id": 1, "api_number": "42-329-77001", "name": "Spare 1" }),
    )
    .await["id"]
        .as_i64()
        .unwrap();
    let spare_device = admin_as(
        "POST",
        "/api/v1/tenants/acme/gateways/gw-02/devices".into(),
        json!({ "name": "spare-meter", "profile": "gas-flow-computer" }),
    )
    .await["id"]
        .as_i64()
        .unwrap();
    let id_of = |v: Value| v["id"].as_i64().unwrap();
    // A failure-risk model (version 1) to activate.
    admin_as(
        "POST",
        "/api/v1/tenants/acme/failure-risk/models".into(),
        Value::Null,
    )
    .await;
    // Wells with production and sources: an emissions model trains (and one to activate).
    testkit::forecasts::seed_production(&api.db, fleet.acme).await;
    let emissions_version = admin_as(
        "POST",
        "/api/v1/tenants/acme/emissions-forecast/models".into(),
        Value::Null,
    )
    .await["version"]
        .as_i64()
        .unwrap();
    // A production-gap model to activate.
    let gap_version = admin_as(
        "POST",
        "/api/v1/tenants/acme/production-gaps/models".into(),
        Value::Null,
    )
    .await["version"]
        .as_i64()
        .unwrap();
    // A gateway client certificate to revoke.
    let spare_serial = admin_as(
        "POST",
        "/api/v1/tenants/acme/gateways/gw-01/certificates".into(),
        Value::Null,
    )
    .await["serial"]
        .as_str()
        .unwrap()
        .to_owned();
    let spare_site = id_of(
        admin_as(
            "POST",
            "/api/v1/tenants/acme/sites".into(),
            json!({ "name": "Spare pad" }),
        )
        .await,
    );
    let kept_site = id_of(
        admin_as(
            "POST",
            "/api/v1/tenants/acme/sites".into(),
            json!({ "name": "Kept pad" }),
        )
        .await,
    );
    let spare_key = id_of(
        admin_as(
            "POST",
            "/api/v1/tenants/acme/api-keys".into(),
            json!({ "name": "spare", "role": "viewer" }),
        )
        .await,
    );
    let intervention = |notes: &'static str| {
        admin_as(
            "POST",
            format!("/api/v1/tenants/acme/wells/{}/interventions", fleet.smith.0),
            json!({ "kind": "maintenance", "equipment": "rods", "started_at": "2026-01-05T00:00:00Z", "notes": notes }),
        )
    };
    let (kept_record, spare_record) = (
        id_of(intervention("kept").await),
        id_of(intervention("spare").await),
    );
    let member = |email: &'static str| async move {
        let user = testkit::auth::user(db, email, false).await;
        let mut conn = db.pool().acquire().await.unwrap();
        store::identity::set_membership(&mut conn, fleet.acme, user, Role::Viewer)
            .await
            .unwrap();
        user.0
    };
    let (promoted, removed) = (
        member("promoted@acme.test").await,
        member("removed@acme.test").await,
    );
    // Alerts opened as detection opens them, a silence, rules and destinations to act on.
    let alerting = testkit::api::seed_alerts(db, &fleet).await;

    // A complete March 2024 for the reports, two years of oil for the decline curve, and an
    // emission source, in a tenant of their own.
    let mut texas = WellSite::create(db, "filings", "42-329-30001", "TX").await;
    let mut nm = WellSite::create_in(
        db,
        texas.tenant,
        "filings",
        "Pad NM",
        "gw-2",
        "30-015-45123",
        "NM",
    )
    .await;
    seed_march(db, &mut texas, &[]).await;
    seed_march(db, &mut nm, &[]).await;
    register_filings(db, texas.tenant, &texas, Some(&nm)).await;
    // In a tenant of its own: a well without filing fields would spoil the reports.
    let history = WellSite::create(db, "history", "42-329-30003", "TX").await;
    let start = (Utc::now() - TimeDelta::days(730)).date_naive();
    seed_oil(db, history.tenant, history.well, start, 720, |t| {
        400.0 * (-t / 365.25 * 0.6).exp()
    })
    .await;
    let source = {
        let mut conn = db.pool().acquire().await.unwrap();
        insert_source(
            &mut conn,
            texas.tenant,
            &EmissionSource {
                components: vec![(Equipment::Valve, Service::Gas, 12)],
                ..source(&texas, "Wellhead leaks", SourceKind::EquipmentLeaks)
            },
        )
        .await
        .unwrap()
    };

    // Credentials from real flows: a password, a session to refresh and one to end, an
    // emailed invitation and an emailed reset link.
    let signer = "signer@wellpulse.test";
    api::create_platform_admin(db, signer, &base::Secret::new(PASSWORD))
        .await
        .unwrap();
    // One user per flow: a password reset ends its user's sessions.
    let refresher = "refresher@wellpulse.test";
    api::create_platform_admin(db, refresher, &base::Secret::new(PASSWORD))
        .await
        .unwrap();
    let resetter = "resetter@wellpulse.test";
    api::create_platform_admin(db, resetter, &base::Secret::new(PASSWORD))
        .await
        .unwrap();
    let signed_in = api
        .post(
            "/api/v1/auth/sign-in",
            Some(&json!({ "email": refresher, "password": PASSWORD })),
        )
        .await
        .json();
    let refresh_token = signed_in["refresh_token"].as_str().unwrap().to_owned();
    let leaving = testkit::auth::user(db, "leaving@wellpulse.test", true).await;
    let ending = testkit::auth::session_token(db, leaving).await;
    admin_as(
        "POST",
        "/api/v1/tenants/acme/invitations".into(),
        json!({ "email": "invitee@acme.test", "role": "viewer" }),
    )
    .await;
    let invitation = sink
        .next(Duration::from_secs(30))
        .await
        .and_then(|m| m.token_after("token="))
        .expect("an invitation mail");
    let r = api
        .post(
            "/api/v1/auth/password-reset",
            Some(&json!({ "email": resetter })),
        )
        .await;
    assert!(r.status < 300, "{}", r.text());
    let reset = sink
        .next(Duration::from_secs(30))
        .await
        .and_then(|m| m.token_after("token="))
        .expect("a reset mail");

    let report = tempfile::tempdir().unwrap();
    let junit = report.path().join("junit.xml");
    let har = report.path().join("run.har");
    let config = format!(
        r#"headers = {{ Authorization = "Bearer {token}" }}

[[operations]]
include-operation-id = "delete_well"
parameters = {{ tenant = "acme", well = {spare_well} }}

[[operations]]
include-operation-id = "create_well"
parameters = {{ tenant = "acme", "body.api_number" = "42-329-77002", "body.name" = "New 2", "body.site_id" = 1, "body.status" = "producing", "body.state" = "TX", "body.county" = "Midland", "body.lease" = "New Lease", "body.field" = "Spraberry" }}

[[operations]]
include-operation-id = "create_device"
parameters = {{ tenant = "acme", gateway = "gw-02", "body.name" = "new-meter", "body.profile" = "tank-gauge", "body.well_id" = {jones} }}

[[operations]]
include-operation-id = "issue_gateway_certificate"
parameters = {{ tenant = "acme", gateway = "gw-01" }}

[[operations]]
include-operation-id = "list_gateway_certificates"
parameters = {{ tenant = "acme", gateway = "gw-01" }}

[[operations]]
include-operation-id = "revoke_gateway_certificate"
parameters = {{ tenant = "acme", gateway = "gw-01", serial = "{spare_serial}" }}

[[operations]]
include-operation-id = "delete_site"
parameters = {{ tenant = "acme", site = {spare_site} }}

[[operations]]
include-operation-id = "update_site"
parameters = {{ tenant = "acme", site = {kept_site}, "body.name" = "Kept pad 2", "body.state" = "TX" }}

[[operations]]
include-operation-id = "revoke_api_key"
parameters = {{ tenant = "acme", key = {spare_key} }}

[[operations]]
include-operation-id = "update_intervention"
parameters = {{ tenant = "acme", well = {smith}, intervention = {kept_record} }}

[[operations]]
include-operation-id = "delete_intervention"
parameters = {{ tenant = "acme", well = {smith}, intervention = {spare_record} }}

[[operations]]
include-operation-id = "delete_device"
parameters = {{ tenant = "acme", device = {spare_device} }}

[[operations]]
include-operation-id = "set_member_role"
parameters = {{ tenant = "acme", user = {promoted} }}

[[operations]]
include-operation-id = "remove_member"
parameters = {{ tenant = "acme", user = {removed} }}

[[operations]]
include-operation-id = "form_pr_report"
parameters = {{ tenant = "filings", month = "2024-03" }}

[[operations]]
include-operation-id = "c115_report"
parameters = {{ tenant = "filings", month = "2024-03" }}

[[operations]]
include-operation-id = "well_decline"
parameters = {{ tenant = "history", well = {decline_well} }}

[[operations]]
include-operation-id = "set_emission_source_counts"
parameters = {{ tenant = "filings", source = {source} }}

[[operations]]
include-operation-id = "alert_stream"
max-stream-events = 1

[[operations]]
include-operation-id = "latest_stream"
max-stream-events = 1

[[operations]]
include-operation-id = "get_alert"
parameters = {{ tenant = "acme", alert = {alert_c} }}

[[operations]]
include-operation-id = "acknowledge_alert"
parameters = {{ tenant = "acme", alert = {alert_a} }}

[[operations]]
include-operation-id = "resolve_alert"
parameters = {{ tenant = "acme", alert = {alert_b} }}

[[operations]]
include-operation-id = "assign_alert"
parameters = {{ tenant = "acme", alert = {alert_c}, "body.user_id" = {promoted} }}

[[operations]]
include-operation-id = "comment_alert"
parameters = {{ tenant = "acme", alert = {alert_c}, "body.body" = "crew dispatched" }}

[[operations]]
include-operation-id = "create_silence"
parameters = {{ tenant = "acme", "body.kind" = "pump_off", "body.duration" = "2h", "body.comment" = "workover" }}

[[operations]]
include-operation-id = "expire_silence"
parameters = {{ tenant = "acme", silence = {silence} }}

[[operations]]
include-operation-id = "create_detection_rule"
parameters = {{ tenant = "acme", "body.name" = "High tubing", "body.metric" = "tubing_pressure_psi", "body.severity" = "warning", "body.for_ms" = 0 }}

[[operations]]
include-operation-id = "get_detection_rule"
parameters = {{ tenant = "acme", rule = {rule_kept} }}

[[operations]]
include-operation-id = "update_detection_rule"
parameters = {{ tenant = "acme", rule = {rule_kept}, "body.name" = "Kept rule", "body.metric" = "casing_pressure_psi", "body.severity" = "critical", "body.for_ms" = 60000 }}

[[operations]]
include-operation-id = "delete_detection_rule"
parameters = {{ tenant = "acme", rule = {rule_spare} }}

[[operations]]
include-operation-id = "list_well_models"
parameters = {{ tenant = "acme", well = {smith} }}

[[operations]]
include-operation-id = "train_well_models"
parameters = {{ tenant = "acme", well = {smith} }}

[[operations]]
include-operation-id = "train_failure_risk_model"
parameters = {{ tenant = "acme" }}

[[operations]]
include-operation-id = "list_failure_risk_models"
parameters = {{ tenant = "acme" }}

[[operations]]
include-operation-id = "activate_failure_risk_model"
parameters = {{ tenant = "acme", version = 1 }}

[[operations]]
include-operation-id = "fleet_failure_risk"
parameters = {{ tenant = "acme", limit = "50" }}

[[operations]]
include-operation-id = "well_failure_risk"
parameters = {{ tenant = "acme", well = {risk_well} }}

[[operations]]
include-operation-id = "request_failure_risk_training"
parameters = {{ tenant = "acme" }}

[[operations]]
include-operation-id = "list_failure_risk_training_jobs"
parameters = {{ tenant = "acme", limit = "20" }}

[[operations]]
include-operation-id = "get_failure_risk_training_job"
parameters = {{ tenant = "acme", job = {training_job} }}

[[operations]]
include-operation-id = "train_emissions_model"
parameters = {{ tenant = "acme" }}

[[operations]]
include-operation-id = "list_emissions_models"
parameters = {{ tenant = "acme" }}

[[operations]]
include-operation-id = "activate_emissions_model"
parameters = {{ tenant = "acme", version = {emissions_version} }}

[[operations]]
include-operation-id = "request_emissions_training"
parameters = {{ tenant = "acme" }}

[[operations]]
include-operation-id = "train_production_gap_model"
parameters = {{ tenant = "acme" }}

[[operations]]
include-operation-id = "list_production_gap_models"
parameters = {{ tenant = "acme" }}

[[operations]]
include-operation-id = "activate_production_gap_model"
parameters = {{ tenant = "acme", version = {gap_version} }}

[[operations]]
include-operation-id = "request_production_gap_training"
parameters = {{ tenant = "acme" }}

[[operations]]
include-operation-id = "list_forecast_runs"
parameters = {{ tenant = "acme" }}

[[operations]]
include-operation-id = "refresh_forecasts"
parameters = {{ tenant = "acme" }}

[[operations]]
include-operation-id = "fleet_emissions_forecast"
parameters = {{ tenant = "acme", by = "well", horizon = "30", gwp = "AR5", limit = "50" }}

[[operations]]
include-operation-id = "well_emissions_forecast"
parameters = {{ tenant = "acme", well = {risk_well}, gwp = "AR5" }}

[[operations]]
include-operation-id = "site_emissions_forecast"
parameters = {{ tenant = "acme", site = {kept_site}, gwp = "AR4" }}

[[operations]]
include-operation-id = "fleet_production_gaps"
parameters = {{ tenant = "acme", price_per_bbl = "70", category = "on_target", limit = "50" }}

[[operations]]
include-operation-id = "well_production_gap"
parameters = {{ tenant = "acme", well = {risk_well}, price_per_bbl = "65" }}

[[operations]]
include-operation-id = "get_methane_targets"
parameters = {{ tenant = "acme" }}

[[operations]]
include-operation-id = "put_methane_targets"
parameters = {{ tenant = "acme", "body.kg_ch4_per_boe" = 0.5, "body.percent_of_sales_gas" = 0.2, "body.percent_of_gas_produced" = 0.3, "body.gas_ch4_fraction" = 0.8 }}

[[operations]]
include-operation-id = "create_alert_destination"
parameters = {{ tenant = "acme", "body.kind" = "alertmanager", "body.url" = "http://127.0.0.1:9/am", "body.min_severity" = "warning" }}

[[operations]]
include-operation-id = "get_alert_destination"
parameters = {{ tenant = "acme", destination = {dest_kept} }}

[[operations]]
include-operation-id = "update_alert_destination"
parameters = {{ tenant = "acme", destination = {dest_kept}, "body.name" = "kept-am", "body.kind" = "alertmanager", "body.url" = "http://127.0.0.1:9/am2", "body.min_severity" = "critical" }}

[[operations]]
include-operation-id = "delete_alert_destination"
parameters = {{ tenant = "acme", destination = {dest_spare} }}

[[operations]]
include-operation-id = "test_alert_destination"
parameters = {{ tenant = "acme", destination = {dest_kept} }}

[[operations]]
include-operation-id = "list_alert_deliveries"
parameters = {{ tenant = "acme", destination = {dest_kept} }}

[[operations]]
include-operation-id = "create_billing_checkout"
parameters = {{ tenant = "acme", "body.plan" = "standard" }}

[[operations]]
include-operation-id = "create_billing_portal"
parameters = {{ tenant = "acme" }}

[[operations]]
include-operation-id = "billing_overview"
parameters = {{ tenant = "acme" }}

[[operations]]
include-operation-id = "sign_in"
parameters = {{ "body.email" = "{signer}", "body.password" = "{PASSWORD}" }}

[[operations]]
include-operation-id = "refresh"
parameters = {{ "body.refresh_token" = "{refresh_token}" }}

[[operations]]
include-operation-id = "sign_out"
headers = {{ Authorization = "Bearer {ending}" }}

[[operations]]
include-operation-id = "accept_invitation"
parameters = {{ "body.token" = "{invitation}", "body.password" = "{PASSWORD}" }}

[[operations]]
include-operation-id = "confirm_password_reset"
parameters = {{ "body.token" = "{reset}", "body.password" = "{PASSWORD}" }}
"#,
        token = api.token,
        decline_well = history.well.0,
        jones = fleet.jones.0,
        smith = fleet.smith.0,
        risk_well = risk.wells[0].0,
        training_job = training_job,
        alert_a = alerting.alerts[0],
        alert_b = alerting.alerts[1],
        alert_c = alerting.alerts[2],
        silence = alerting.silence,
        rule_kept = alerting.rules[0],
        rule_spare = alerting.rules[1],
        dest_kept = alerting.destinations[0],
        dest_spare = alerting.destinations[1],
    );
    std::fs::write(report.path().join("schemathesis.toml"), config).unwrap();
    let spec = format!("http://{}/api/openapi.json", api.addr);
    let output = tokio::process::Command::new("schemathesis")
        .args(["run", &spec])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
            "--max-examples",
            "15",
            "--seed",
            "20261206",
            "--request-timeout",
            "60",
            "--report",
            "junit,har",
            "--report-har-path",
        ])
        .arg(&har)
        .arg("--report-junit-path")
        .arg(&junit)
        .env("NO_COLOR", "1")
        // schemathesis reads schemathesis.toml and keeps a cache in its working
        // directory: the run's own.
        .current_dir(report.path())
        .stdin(Stdio::null())
        .output()
        .await
        .expect("schemathesis runs (scripts/services.sh installs it from PyPI)");
    let text = String::from_utf8_lossy(&output.stdout);
    println!("{text}");
    // WP_SCHEMATHESIS_HAR=path keeps the run's requests and responses for a post-mortem.
    if let Ok(keep) = std::env::var("WP_SCHEMATHESIS_HAR") {
        std::fs::copy(&har, keep).unwrap();
    }
    assert!(
        output.status.success(),
        "schemathesis found problems:\n{text}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );

    // Every operation of the document answered 2xx at least once.
    let document: Value = api.get("/api/openapi.json").await.json();
    let ops: Vec<(String, String)> = document["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .map(move |method| (method.to_uppercase(), path.clone()))
        })
        .collect();
    let recorded: Value = serde_json::from_slice(&std::fs::read(&har).unwrap()).unwrap();
    let mut statuses: BTreeMap<&(String, String), Vec<u64>> =
        ops.iter().map(|op| (op, Vec::new())).collect();
    for entry in recorded["log"]["entries"].as_array().unwrap() {
        let url = entry["request"]["url"].as_str().unwrap();
        let path = url
            .split_once("://")
            .and_then(|(_, rest)| rest.find('/').map(|i| &rest[i..]))
            .unwrap_or(url);
        let path = path.split('?').next().unwrap();
        let method = entry["request"]["method"].as_str().unwrap();
        if let Some(op) = operation_of(&ops, method, path) {
            statuses
                .get_mut(op)
                .unwrap()
                .push(entry["response"]["status"].as_u64().unwrap());
        }
    }
    // The document itself is what schemathesis loads (not a test case); this test read it.
    // The Stripe webhook accepts only bodies signed with the endpoint's secret within five
    // minutes, which generated bodies cannot be: its 2xx is `api_billing.rs`'s (payloads
    // signed by Stripe's library); here it must only never answer 5xx.
    let without: Vec<String> = statuses
        .iter()
        .filter(|((_, path), _)| path != "/api/openapi.json" && path != "/api/v1/billing/webhook")
        .filter(|(_, s)| !s.iter().any(|s| (200..300).contains(s)))
        .map(|((m, p), s)| format!("{m} {p} {s:?}"))
        .collect();
    assert!(
        without.is_empty(),
        "operations that never answered 2xx:\n{}",
        without.join("\n")
    );
    api.finish().await;
}
