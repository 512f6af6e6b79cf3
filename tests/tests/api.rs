//! Simulator → agents → embedded broker → ingester → PostgreSQL → HTTP API: what operators
//! see through the API is what the simulated devices read.

use std::time::Duration;

use api::{ApiOptions, ApiState};
use chrono::{SecondsFormat, Utc};
use testkit::http;
use tests::stack::{BrokerKind, Stack, TENANT};
use tokio::net::TcpListener;

const BROKER_BIN: &str = env!("CARGO_BIN_EXE_wp-test-broker");

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn api_serves_what_the_wells_measured() -> anyhow::Result<()> {
    let stack = Stack::start(BrokerKind::Embedded, 2, BROKER_BIN).await?;
    let started = Utc::now() - chrono::Duration::seconds(5);
    stack.wait_rows(300, Duration::from_secs(120)).await?;

    let stats = std::sync::Arc::clone(stack.ingester.as_ref().expect("ingester").stats());
    let state = ApiState::new(stack.db.clone(), ApiOptions::default()).with_ingester(stats);
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(api::serve(listener, state, async {
        let _ = stopped.await;
    }));
    // An operator's read-only colleague: a viewer of the tenant.
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

    // Gateways: both online, with a birth and buffer status from their batches.
    let gateways = get(format!("/api/v1/tenants/{TENANT}/gateways")).await;
    assert_eq!(gateways.status, 200, "{}", gateways.text());
    let body = gateways.json();
    let items = body["items"].as_array().expect("gateway items");
    assert_eq!(items.len(), 2, "{body}");
    for g in items {
        assert_eq!(g["status"], "online", "{g}");
    }

    // Wells: the agents' devices were linked to their wells by the births.
    let wells = get(format!("/api/v1/tenants/{TENANT}/wells")).await;
    assert_eq!(wells.status, 200, "{}", wells.text());
    let wells = wells.json();
    let well_id = wells["items"][0]["id"]
        .as_i64()
        .unwrap_or_else(|| panic!("no well id in {wells}"));
    let metrics = get(format!("/api/v1/tenants/{TENANT}/wells/{well_id}/metrics")).await;
    assert_eq!(metrics.status, 200, "{}", metrics.text());
    assert!(
        metrics.text().contains("tubing_pressure_psi"),
        "{}",
        metrics.text()
    );

    // Raw telemetry through the API equals the rows in the database.
    let (from, to) = (
        started.to_rfc3339_opts(SecondsFormat::Millis, true),
        Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
    );
    let path = format!(
        "/api/v1/tenants/{TENANT}/wells/{well_id}/telemetry?metric=tubing_pressure_psi&from={from}&to={to}&bucket=raw"
    );
    let raw = get(path.clone()).await;
    assert_eq!(raw.status, 200, "{}", raw.text());
    let raw = raw.json();
    let samples = raw["series"][0]["samples"].as_array().expect("raw samples");
    assert!(!samples.is_empty(), "{raw}");
    let series_id = raw["series"][0]["series_id"].as_i64().expect("series id");
    let stored: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM telemetry WHERE series_id = $1 AND time >= $2 AND time < $3",
    )
    .bind(series_id)
    .bind(started)
    .bind(chrono::DateTime::parse_from_rfc3339(&to)?)
    .fetch_one(stack.db.pool())
    .await?;
    assert_eq!(
        samples.len() as i64,
        stored,
        "API and database disagree on the raw samples"
    );

    // Bucketed telemetry (after a maintenance pass refreshed the rollups).
    store::maintenance::run_once(&stack.db).await?;
    let bucketed = get(path.replace("bucket=raw", "bucket=1m")).await;
    assert_eq!(bucketed.status, 200, "{}", bucketed.text());
    let buckets = bucketed.json();
    let count: i64 = buckets["series"][0]["buckets"]
        .as_array()
        .expect("buckets")
        .iter()
        .map(|b| b["count"].as_i64().unwrap_or(0))
        .sum();
    assert_eq!(
        count, stored,
        "1-minute buckets must count every raw sample"
    );

    // A bad parameter is a precise 400, another tenant's well a 404.
    let bad = get(path.replace("tubing_pressure_psi", "tubing_pressure")).await;
    assert_eq!(bad.status, 400);
    assert!(bad.text().contains("metric"), "{}", bad.text());
    let other = get(format!("/api/v1/tenants/other-tenant/wells/{well_id}/telemetry?metric=tubing_pressure_psi&from={from}&to={to}")).await;
    assert_eq!(other.status, 404, "{}", other.text());

    let _ = stop.send(());
    server.await??;
    stack.finish().await
}
