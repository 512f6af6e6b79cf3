//! Plans, quotas and usage through the API: a quota exceeded gives its documented error
//! and loses nothing; the tenant's plan sets its request rate; usage is counted per day
//! (samples exactly once from what was stored, API calls from the access layer).

use std::collections::BTreeMap;
use std::time::Duration;

use api::ApiOptions;
use serde_json::json;
use store::identity::Role;
use store::tenants::PlanLimits;
use testkit::api::{Setup, TestApi, seed};
use testkit::auth;

fn plans() -> BTreeMap<String, PlanLimits> {
    [
        ("standard".to_owned(), PlanLimits::default()),
        (
            "small".to_owned(),
            PlanLimits {
                max_wells: Some(3),
                max_gateways: Some(2),
                max_samples_per_day: Some(1000),
                api_requests_per_minute: Some(40),
                retention: Some(Duration::from_secs(30 * 86_400)),
            },
        ),
    ]
    .into()
}

async fn start(prefix: &str) -> TestApi {
    TestApi::with(
        prefix,
        Setup {
            options: ApiOptions {
                plans: plans(),
                usage_flush_interval: Duration::from_millis(100),
                ..ApiOptions::default()
            },
            ..Setup::default()
        },
    )
    .await
}

#[tokio::test]
async fn a_well_over_the_plan_quota_is_refused_naming_the_quota_and_nothing_is_lost() {
    let api = start("api_quota_wells").await;
    let fleet = seed(&api.db, 5, 30).await;
    let unknown = api
        .request(
            "PUT",
            "/api/v1/admin/tenants/acme/plan",
            Some(&json!({ "plan": "gold" })),
        )
        .await;
    assert_eq!(unknown.status, 400);
    assert!(
        unknown.error_message().contains("standard"),
        "{}",
        unknown.text()
    );
    let set = api
        .request(
            "PUT",
            "/api/v1/admin/tenants/acme/plan",
            Some(&json!({ "plan": "small" })),
        )
        .await;
    assert_eq!(set.status, 200, "{}", set.text());
    assert_eq!(set.json()["plan"], "small");

    let admin = auth::member_token(&api.db, fleet.acme, Role::TenantAdmin).await;
    let site = api
        .request_as(
            &admin,
            "POST",
            "/api/v1/tenants/acme/sites",
            Some(&json!({ "name": "Pad Q" })),
        )
        .await
        .json()["id"]
        .as_i64()
        .unwrap();
    let well = |n: u32| json!({ "site_id": site, "api_number": format!("42-329-{:05}", 50000 + n), "name": format!("Q{n}") });
    // acme has 2 wells; the plan allows 3.
    let third = api
        .request_as(&admin, "POST", "/api/v1/tenants/acme/wells", Some(&well(1)))
        .await;
    assert_eq!(third.status, 201, "{}", third.text());
    let fourth = api
        .request_as(&admin, "POST", "/api/v1/tenants/acme/wells", Some(&well(2)))
        .await;
    assert_eq!(fourth.status, 403, "{}", fourth.text());
    assert_eq!(fourth.error_code(), "quota_exceeded");
    assert_eq!(
        fourth.error_message(),
        "quota `wells` exceeded: plan `small` allows 3, the tenant has 3"
    );
    let wells = api
        .request_as(&admin, "GET", "/api/v1/tenants/acme/wells", None)
        .await
        .json();
    assert_eq!(
        wells["items"].as_array().unwrap().len(),
        3,
        "everything stored is kept"
    );
    // Telemetry of the existing wells still reads.
    let r = api
        .request_as(
            &admin,
            "GET",
            &format!("/api/v1/tenants/acme/wells/{}/metrics", fleet.smith.0),
            None,
        )
        .await;
    assert_eq!(r.status, 200);
    // The usage page shows the plan and its quotas.
    let today = chrono::Utc::now().date_naive();
    let usage = api
        .request_as(
            &admin,
            "GET",
            &format!(
                "/api/v1/tenants/acme/usage?from={today}&to={}",
                today.succ_opt().unwrap()
            ),
            None,
        )
        .await;
    assert_eq!(usage.status, 200, "{}", usage.text());
    assert_eq!(usage.json()["plan"], "small");
    assert_eq!(usage.json()["quotas"]["max_wells"], 3);
    assert_eq!(usage.json()["quotas"]["retention_days"], 30);
    api.finish().await;
}

#[tokio::test]
async fn the_plan_sets_the_tenant_rate_and_usage_counts_calls_and_samples_once() {
    let api = start("api_quota_usage").await;
    let fleet = seed(&api.db, 5, 30).await;
    api.request(
        "PUT",
        "/api/v1/admin/tenants/acme/plan",
        Some(&json!({ "plan": "small" })),
    )
    .await;
    // Two principals share the tenant's 40 requests per minute.
    let a = auth::member_token(&api.db, fleet.acme, Role::Viewer).await;
    let b = auth::member_token(&api.db, fleet.acme, Role::TenantAdmin).await;
    let mut ok = 0;
    let mut limited = None;
    for i in 0..60 {
        let token = if i % 2 == 0 { &a } else { &b };
        let r = api
            .request_as(token, "GET", "/api/v1/tenants/acme/wells", None)
            .await;
        match r.status {
            200 => ok += 1,
            429 => {
                limited = Some(r);
                break;
            }
            other => panic!("unexpected {other}: {}", r.text()),
        }
    }
    let limited = limited.expect("the tenant's rate ran out");
    assert_eq!(ok, 40);
    assert!(
        limited.error_message().contains("plan `small`"),
        "{}",
        limited.text()
    );
    // The other tenant is unaffected.
    let other = auth::member_token(&api.db, fleet.other, Role::Viewer).await;
    assert_eq!(
        api.request_as(&other, "GET", "/api/v1/tenants/other/wells", None)
            .await
            .status,
        200
    );

    // Samples: recomputed from what was stored, twice, counted once.
    let mut conn = api.db.pool().acquire().await.unwrap();
    let days: Vec<chrono::NaiveDate> = sqlx::query_scalar(
        "SELECT DISTINCT (received_at AT TIME ZONE 'UTC')::date FROM ingested_batches WHERE tenant_id = $1",
    )
    .bind(fleet.acme)
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    let stored: i64 = sqlx::query_scalar(
        "SELECT sum(samples)::bigint FROM ingested_batches WHERE tenant_id = $1",
    )
    .bind(fleet.acme)
    .fetch_one(&mut *conn)
    .await
    .unwrap();
    for day in &days {
        store::usage::refresh_day(&mut conn, *day).await.unwrap();
        store::usage::refresh_day(&mut conn, *day).await.unwrap();
    }
    let first = *days.iter().min().unwrap();
    let last = *days.iter().max().unwrap();
    let rows = store::usage::usage(&mut conn, fleet.acme, first, last)
        .await
        .unwrap();
    assert_eq!(rows.iter().map(|d| d.samples_ingested).sum::<i64>(), stored);
    assert!(
        rows.iter()
            .all(|d| d.gateways_online >= 1 && d.storage_bytes > 0),
        "{rows:?}"
    );
    drop(conn);

    // API calls reach the usage table (the flush runs every 100 ms here).
    let today = chrono::Utc::now().date_naive();
    let path = format!(
        "/api/v1/admin/tenants/acme/usage?from={today}&to={}",
        today.succ_opt().unwrap()
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let usage = api.get(&path).await.json();
        let calls = usage["days"]
            .as_array()
            .and_then(|d| d.last())
            .map_or(0, |d| d["api_calls"].as_i64().unwrap_or(0));
        if calls >= 40 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "API calls not counted: {usage}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    api.finish().await;
}
