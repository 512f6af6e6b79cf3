//! Readiness and degraded operation: the database going away (503 `unavailable`, /ready
//! naming the failed check) and coming back, a stalled database (503 `timeout`),
//! migrations missing, the ingester absent or disconnected. /health stays 200 throughout.

use std::sync::atomic::Ordering;
use std::time::Duration;

use api::ApiOptions;
use serde_json::Value;
use testkit::api::{Setup, TestApi, wait_until};

fn check<'a>(body: &'a Value, name: &str) -> &'a Value {
    body["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name} in {body}"))
}

#[tokio::test]
async fn ready_turns_503_while_the_database_is_unreachable() {
    let api = TestApi::with(
        "api_ready_db",
        Setup {
            via_proxy: true,
            ..Setup::default()
        },
    )
    .await;
    api.db.create_tenant("acme", "Acme").await.unwrap();
    assert_eq!(api.get("/ready").await.status, 200);
    assert_eq!(api.get("/api/v1/tenants/acme/wells").await.status, 200);

    api.proxy().cut();
    let ready = api.get("/ready").await;
    assert_eq!(ready.status, 503, "{}", ready.text());
    let body = ready.json();
    assert_eq!(body["status"], "not_ready");
    assert_eq!(check(&body, "database")["ok"], false);
    assert_eq!(check(&body, "database")["detail"], "unreachable");
    assert_eq!(check(&body, "migrations")["ok"], false);
    assert_eq!(
        check(&body, "migrations")["detail"],
        "not checked: the database is unreachable"
    );
    assert_eq!(check(&body, "ingester")["ok"], true);

    let wells = api.get("/api/v1/tenants/acme/wells").await;
    assert_eq!(wells.status, 503, "{}", wells.text());
    assert_eq!(wells.error_code(), "unavailable");
    assert_eq!(
        wells.error_message(),
        "the database is unavailable; retry later"
    );
    assert_eq!(wells.header("retry-after"), Some("5"));
    assert_eq!(
        api.get("/health").await.status,
        200,
        "liveness is independent"
    );

    api.proxy().restore();
    wait_until("ready again", || async {
        api.get("/ready").await.status == 200
    })
    .await;
    assert_eq!(api.get("/api/v1/tenants/acme/wells").await.status, 200);
    api.finish().await;
}

#[tokio::test]
async fn a_stalled_database_answers_503_timeout_within_the_request_timeout() {
    let api = TestApi::with(
        "api_timeout",
        Setup {
            via_proxy: true,
            options: ApiOptions {
                request_timeout: Duration::from_millis(700),
                ..ApiOptions::default()
            },
            ..Setup::default()
        },
    )
    .await;
    api.db.create_tenant("acme", "Acme").await.unwrap();
    assert_eq!(api.get("/api/v1/tenants/acme/gateways").await.status, 200);
    api.proxy().stall();
    let started = std::time::Instant::now();
    let response = api.get("/api/v1/tenants/acme/gateways").await;
    assert_eq!(response.status, 503, "{}", response.text());
    assert_eq!(response.error_code(), "timeout");
    assert_eq!(
        response.error_message(),
        "the request did not complete within 700ms"
    );
    assert!(started.elapsed() < Duration::from_secs(30));
    // /ready bounds its own database check and reports the stall.
    let ready = api.get("/ready").await;
    assert_eq!(ready.status, 503);
    assert_eq!(api.get("/health").await.status, 200);
    api.proxy().restore();
    let metrics = api.get("/metrics").await.text();
    assert!(
        metrics.contains("wellpulse_api_timeouts_total 2\n")
            || metrics.contains("wellpulse_api_timeouts_total 1\n"),
        "{metrics}"
    );
    api.finish().await;
}

#[tokio::test]
async fn ready_requires_the_migrations() {
    let api = TestApi::with(
        "api_ready_unmigrated",
        Setup {
            migrate: false,
            ..Setup::default()
        },
    )
    .await;
    let ready = api.get("/ready").await;
    assert_eq!(ready.status, 503, "{}", ready.text());
    let body = ready.json();
    assert_eq!(check(&body, "database")["ok"], true);
    let migrations = check(&body, "migrations");
    assert_eq!(migrations["ok"], false);
    assert!(
        migrations["detail"].as_str().unwrap().contains("pending"),
        "{migrations}"
    );
    // Requests needing the schema fail with a generic 500 (the cause is logged, /ready
    // says what is missing); nothing of the SQL error leaks. (Authenticating a credential
    // is the first such need.)
    let token = format!("wpat_{}", "0".repeat(64));
    let wells = api
        .request_as(&token, "GET", "/api/v1/tenants/acme/wells", None)
        .await;
    assert_eq!(wells.status, 500, "{}", wells.text());
    assert_eq!(wells.error_code(), "internal");
    assert!(!wells.text().contains("relation"), "{}", wells.text());
    api.db.migrate().await.unwrap();
    assert_eq!(api.get("/ready").await.status, 200);
    api.finish().await;
}

#[tokio::test]
async fn ready_follows_the_ingester_connection() {
    let api = TestApi::start("api_ready_ingester").await;
    assert_eq!(api.get("/ready").await.status, 200);
    // Connection lost: errors counted, no reconnect.
    api.stats.mqtt_errors.fetch_add(1, Ordering::Relaxed);
    let ready = api.get("/ready").await;
    assert_eq!(ready.status, 503);
    let body = ready.json();
    let ingester = check(&body, "ingester");
    assert_eq!(ingester["ok"], false);
    assert_eq!(
        ingester["detail"],
        "MQTT connection lost (1 errors since the last connect); reconnecting"
    );
    assert_eq!(check(&body, "database")["ok"], true);
    // Reconnected and subscribed again.
    api.stats.mqtt_connects.fetch_add(1, Ordering::Relaxed);
    api.stats.mqtt_subscribed.fetch_add(1, Ordering::Relaxed);
    assert_eq!(api.get("/ready").await.status, 200);
    api.finish().await;

    let alone = TestApi::with(
        "api_ready_no_ingester",
        Setup {
            ingester: false,
            ..Setup::default()
        },
    )
    .await;
    let ready = alone.get("/ready").await;
    assert_eq!(ready.status, 503);
    assert_eq!(
        check(&ready.json(), "ingester")["detail"],
        "no ingester runs in this process"
    );
    alone.finish().await;
}
