//! A generic Modbus device described with custom metrics, end to end: the simulator serves
//! the shipped `generic-40-holding` profile (40 holding registers named `custom.*`) over
//! Modbus TCP, the real agent polls it and announces the custom names, units and kinds in
//! its birth, the ingester stores them as custom series, and the HTTP API lists them and
//! serves their telemetry by those names — values equal to what the simulated registers
//! held — while canonical names stay untouched.

use std::time::Duration;

use api::{ApiOptions, ApiState};
use chrono::{SecondsFormat, Utc};
use testkit::http;
use tests::stack::{BrokerKind, Stack, TENANT};
use tokio::net::TcpListener;

const BROKER_BIN: &str = env!("CARGO_BIN_EXE_wp-test-broker");

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_generic_device_is_read_back_by_its_custom_metric_names() -> anyhow::Result<()> {
    let stack =
        Stack::start_fleet(BrokerKind::Embedded, 1, &["generic-40-holding"], BROKER_BIN).await?;
    let started = Utc::now() - chrono::Duration::seconds(5);
    // 40 registers a second: a few seconds of polls.
    stack.wait_rows(400, Duration::from_secs(120)).await?;

    // Stored as custom series, with the kinds and units of the profile.
    let series: Vec<(String, String, Option<String>, String)> =
        sqlx::query_as("SELECT metric, unit, kind, namespace FROM series ORDER BY metric")
            .fetch_all(stack.db.pool())
            .await?;
    assert_eq!(series.len(), 40, "{series:?}");
    assert!(
        series
            .iter()
            .all(|(m, _, _, ns)| m.starts_with("custom.") && ns == "custom")
    );
    let find = |name: &str| series.iter().find(|s| s.0 == name).cloned();
    assert_eq!(
        find("custom.analog_05"),
        Some((
            "custom.analog_05".into(),
            "raw".into(),
            Some("gauge".into()),
            "custom".into()
        ))
    );
    assert_eq!(
        find("custom.counter_01").and_then(|s| s.2),
        Some("counter".into())
    );
    assert_eq!(
        find("custom.status_03").map(|s| (s.1, s.2)),
        Some(("code".into(), Some("state".into())))
    );
    // What is stored is what the simulated registers held.
    let compared = stack.verify_values(300).await?;
    assert!(compared >= 300, "{compared} values compared");

    let stats = std::sync::Arc::clone(stack.ingester.as_ref().expect("ingester").stats());
    let state = ApiState::new(stack.db.clone(), ApiOptions::default()).with_ingester(stats);
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(api::serve(listener, state, async {
        let _ = stopped.await;
    }));
    let tenant = stack
        .db
        .tenant_by_slug(TENANT)
        .await?
        .expect("tenant registered");
    let viewer =
        testkit::auth::member_token(&stack.db, tenant, store::identity::Role::Viewer).await;
    let get = |target: String| {
        let viewer = viewer.clone();
        async move { http::send_as(addr, &viewer, "GET", &target, None).await }
    };

    // The well's metrics list the custom names with their namespace, kind and unit.
    let wells = get(format!("/api/v1/tenants/{TENANT}/wells")).await;
    assert_eq!(wells.status, 200, "{}", wells.text());
    let wells = wells.json();
    let well_id = wells["items"][0]["id"]
        .as_i64()
        .unwrap_or_else(|| panic!("no well id in {wells}"));
    let metrics = get(format!("/api/v1/tenants/{TENANT}/wells/{well_id}/metrics")).await;
    assert_eq!(metrics.status, 200, "{}", metrics.text());
    let metrics = metrics.json();
    let list = metrics["metrics"].as_array().expect("metrics");
    assert_eq!(list.len(), 40, "{metrics}");
    let counter = list
        .iter()
        .find(|m| m["metric"] == "custom.counter_02")
        .unwrap_or_else(|| panic!("custom.counter_02 in {metrics}"));
    assert_eq!(counter["namespace"], "custom", "{counter}");
    assert_eq!(counter["kind"], "counter", "{counter}");
    assert_eq!(counter["unit"], "count", "{counter}");
    assert_eq!(counter["series"][0]["tag"], "hr_34", "{counter}");

    // The device's series carry the custom names, their namespace and kind.
    let device_id: i64 = sqlx::query_scalar("SELECT id FROM devices")
        .fetch_one(stack.db.pool())
        .await?;
    let device = get(format!("/api/v1/tenants/{TENANT}/devices/{device_id}")).await;
    assert_eq!(device.status, 200, "{}", device.text());
    let device = device.json();
    let status = device["series"]
        .as_array()
        .expect("series")
        .iter()
        .find(|s| s["metric"] == "custom.status_01")
        .unwrap_or_else(|| panic!("custom.status_01 in {device}"))
        .clone();
    assert_eq!(
        (&status["namespace"], &status["kind"], &status["unit"]),
        (&"custom".into(), &"state".into(), &"code".into()),
        "{status}"
    );

    // Telemetry by custom name: the API's samples are the stored rows, and registers that
    // hold different signals read back differently.
    let (from, to) = (
        started.to_rfc3339_opts(SecondsFormat::Millis, true),
        Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
    );
    let telemetry = |metric: &str| {
        format!(
            "/api/v1/tenants/{TENANT}/wells/{well_id}/telemetry?metric={metric}&from={from}&to={to}&bucket=raw"
        )
    };
    let mut last_values = Vec::new();
    for metric in ["custom.analog_00", "custom.analog_17", "custom.counter_00"] {
        let resp = get(telemetry(metric)).await;
        assert_eq!(resp.status, 200, "{metric}: {}", resp.text());
        let body = resp.json();
        assert_eq!(body["metric"], metric, "{body}");
        let series = body["series"].as_array().expect("series");
        assert_eq!(series.len(), 1, "{body}");
        let samples = series[0]["samples"].as_array().expect("samples");
        assert!(!samples.is_empty(), "{metric}: {body}");
        let series_id = series[0]["series_id"].as_i64().expect("series id");
        let stored: Vec<f64> = sqlx::query_scalar(
            "SELECT value FROM telemetry WHERE series_id = $1 AND time >= $2 AND time < $3
             ORDER BY time",
        )
        .bind(series_id)
        .bind(started)
        .bind(chrono::DateTime::parse_from_rfc3339(&to)?)
        .fetch_all(stack.db.pool())
        .await?;
        let served: Vec<f64> = samples
            .iter()
            .map(|s| s["value"].as_f64().expect("value"))
            .collect();
        assert_eq!(served, stored, "{metric}: API and database disagree");
        last_values.push(*served.last().expect("a sample"));
    }
    assert_eq!(
        get(telemetry("custom.analog_00")).await.json()["unit"],
        "raw"
    );
    assert!(
        last_values[0] != last_values[1] || last_values[1] != last_values[2],
        "distinct registers read distinct values: {last_values:?}"
    );

    // Canonical names are not shadowed: this well reports none of them.
    let canonical = get(telemetry("stroke_count_total")).await;
    assert_eq!(canonical.status, 200, "{}", canonical.text());
    assert_eq!(canonical.json()["series"], serde_json::json!([]));
    // Unknown namespaces and custom names that would shadow a canonical one: precise 400s.
    for (metric, expected) in [
        ("vendor.analog_00", "unknown namespace"),
        ("custom.stroke_count_total", "never shadows a canonical one"),
    ] {
        let bad = get(telemetry(metric)).await;
        assert_eq!(bad.status, 400, "{metric}: {}", bad.text());
        assert!(bad.text().contains(expected), "{metric}: {}", bad.text());
    }

    let _ = stop.send(());
    server.await??;
    stack.finish().await
}
