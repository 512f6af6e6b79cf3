//! Every operation of the OpenAPI document, read at run time, against the access layer:
//! no credentials → 401; a tenant route in a tenant the caller has no role in → 404
//! (whether it exists or not: ids do not leak); a role below the declared one → 403;
//! the declared role → past the layer (its handler answers). A route added later is
//! covered by declaring its security, without editing this test; a route that declares
//! none makes the router refuse to build (the first test below).

use serde_json::Value;
use store::identity::Role;
use testkit::api::{TestApi, seed};
use testkit::auth;

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// What an operation declares: `None` for public, else the scopes of `bearer`.
fn declared(op: &Value) -> Option<Vec<String>> {
    let security = op["security"]
        .as_array()
        .expect("every operation declares security");
    if security
        .iter()
        .any(|r| r.as_object().is_some_and(|o| o.is_empty()))
    {
        return None;
    }
    Some(
        security[0]["bearer"]
            .as_array()
            .expect("bearer scheme")
            .iter()
            .map(|s| s.as_str().unwrap().to_owned())
            .collect(),
    )
}

fn target(path: &str, tenant: &str, well: i64) -> String {
    path.replace("{tenant}", tenant)
        .replace("{well}", &well.to_string())
        .replace("{gateway}", "gw-01")
        .replace("{slug}", tenant)
        .replace("{user}", "1")
        .replace("{key}", "1")
        .replace("{site}", "1")
        .replace("{intervention}", "1")
        .replace("{source}", "1")
        .replace("{device}", "1")
        .replace("{serial}", "0123456789abcdef0123456789abcdef")
}

#[test]
fn an_operation_without_declared_security_cannot_be_served() {
    let mut spec = api::openapi();
    let item = spec.paths.paths.values_mut().next().unwrap();
    let op = item.get.as_mut().or(item.post.as_mut()).unwrap();
    op.security = None;
    let refused = std::panic::catch_unwind(|| api::PolicyTable::from_spec(&spec));
    assert!(
        refused.is_err(),
        "an undeclared operation must not get a policy"
    );
    // …while the real document maps every operation.
    let table = api::PolicyTable::from_spec(&api::openapi());
    assert_eq!(
        table.get(&axum::http::Method::GET, "/health"),
        Some(api::Policy::Public)
    );
    assert_eq!(
        table.get(
            &axum::http::Method::POST,
            "/api/v1/tenants/{tenant}/wells/{well}/production/corrections"
        ),
        Some(api::Policy::Tenant(Role::Operator))
    );
}

#[tokio::test]
async fn every_operation_answers_401_404_403_and_lets_the_right_role_through() {
    let api = TestApi::start("api_access_matrix").await;
    let fleet = seed(&api.db, 5, 30).await;
    let spec = api.get("/api/openapi.json").await.json();
    let other_admin = auth::member_token(&api.db, fleet.other, Role::TenantAdmin).await;
    let viewer = auth::member_token(&api.db, fleet.acme, Role::Viewer).await;
    let operator = auth::member_token(&api.db, fleet.acme, Role::Operator).await;
    let mut checked = 0;
    for (path, item) in spec["paths"].as_object().unwrap() {
        for method in METHODS {
            let Some(op) = item.get(method) else { continue };
            let id = op["operationId"].as_str().unwrap();
            let verb = method.to_uppercase();
            let Some(scopes) = declared(op) else {
                continue;
            };
            checked += 1;
            let own = target(path, "acme", fleet.smith.0);

            // No credentials, a malformed one, an unknown one: 401.
            let none =
                testkit::http::request(api.addr, &verb, &own, &[("content-length", "0")]).await;
            assert_eq!(
                none.status,
                401,
                "{id} without credentials: {}",
                none.text()
            );
            assert_eq!(none.error_code(), "unauthenticated", "{id}");
            assert!(none.header("www-authenticate").is_some(), "{id}");
            let unknown = format!("wpat_{}", "0".repeat(64));
            let forged = api.request_as(&unknown, &verb, &own, None).await;
            assert_eq!(forged.status, 401, "{id} with an unknown token");

            let role = scopes.first().map(String::as_str);
            match role {
                Some("platform_admin") => {
                    // A tenant's own administrator is not a platform administrator.
                    let r = api.request_as(&other_admin, &verb, &own, None).await;
                    assert_eq!(r.status, 403, "{id} as a tenant admin: {}", r.text());
                }
                Some(role) => {
                    let needed = Role::parse(role).unwrap();
                    // Another tenant's administrator: 404 for an existing tenant and for
                    // one that does not exist, with the same message shape.
                    let r = api.request_as(&other_admin, &verb, &own, None).await;
                    assert_eq!(r.status, 404, "{id} from another tenant: {}", r.text());
                    assert_eq!(r.error_message(), "tenant `acme` not found", "{id}");
                    let missing = target(path, "no-such-tenant", fleet.smith.0);
                    let r = api.request_as(&other_admin, &verb, &missing, None).await;
                    assert_eq!(
                        r.error_message(),
                        "tenant `no-such-tenant` not found",
                        "{id}"
                    );
                    // A role below the declared one: 403.
                    let below = Role::ALL.into_iter().filter(|r| *r < needed);
                    for lower in below {
                        let token = auth::member_token(&api.db, fleet.acme, lower).await;
                        let r = api.request_as(&token, &verb, &own, None).await;
                        assert_eq!(r.status, 403, "{id} as {lower}: {}", r.text());
                        assert_eq!(r.error_code(), "forbidden", "{id}");
                    }
                    // The declared role: the handler answers (it may still refuse the
                    // empty request, but not for who is asking).
                    let token = match needed {
                        Role::Viewer => viewer.clone(),
                        Role::Operator => operator.clone(),
                        Role::TenantAdmin => {
                            auth::member_token(&api.db, fleet.acme, Role::TenantAdmin).await
                        }
                    };
                    let r = api.request_as(&token, &verb, &own, None).await;
                    assert!(
                        !matches!(r.status, 401 | 403 | 429),
                        "{id} as {needed}: {} {}",
                        r.status,
                        r.text()
                    );
                    if r.status == 404 {
                        assert_ne!(r.error_message(), "tenant `acme` not found", "{id}");
                    }
                }
                None => {
                    // Any valid credential.
                    let token = auth::member_token(&api.db, fleet.acme, Role::Viewer).await;
                    let r = api.request_as(&token, &verb, &own, None).await;
                    assert!(!matches!(r.status, 401 | 403), "{id}: {}", r.text());
                }
            }
        }
    }
    assert!(checked >= 25, "only {checked} protected operations");
    api.finish().await;
}

#[tokio::test]
async fn a_suspended_tenant_answers_403_to_its_people_at_once_and_keeps_its_data() {
    let api = TestApi::start("api_access_suspend").await;
    let fleet = seed(&api.db, 5, 30).await;
    let viewer = auth::member_token(&api.db, fleet.acme, Role::TenantAdmin).await;
    let wells = "/api/v1/tenants/acme/wells";
    assert_eq!(
        api.request_as(&viewer, "GET", wells, None).await.status,
        200
    );
    // Cached now; the suspension must still take effect at once, and every broker is
    // asked to disconnect the tenant's gateways.
    let mut kicks = api.db.broker_kicks().await.unwrap();
    let r = api.post("/api/v1/admin/tenants/acme/suspend", None).await;
    let kicked = tokio::time::timeout(std::time::Duration::from_secs(30), kicks.recv())
        .await
        .expect("a kick request")
        .unwrap();
    assert_eq!(kicked, "acme");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["status"], "suspended");
    let refused = api.request_as(&viewer, "GET", wells, None).await;
    assert_eq!(refused.status, 403);
    assert_eq!(refused.error_code(), "tenant_suspended");
    assert!(
        refused.error_message().contains("suspended"),
        "{}",
        refused.text()
    );
    // The other tenant is unaffected; the platform administrator still sees the data.
    let other = auth::member_token(&api.db, fleet.other, Role::Viewer).await;
    assert_eq!(
        api.request_as(&other, "GET", "/api/v1/tenants/other/wells", None)
            .await
            .status,
        200
    );
    let kept = api.get(wells).await;
    assert_eq!(kept.status, 200);
    assert_eq!(kept.json()["items"].as_array().unwrap().len(), 2);
    let r = api
        .post("/api/v1/admin/tenants/acme/reactivate", None)
        .await;
    assert_eq!(r.json()["status"], "active");
    assert_eq!(
        api.request_as(&viewer, "GET", wells, None).await.status,
        200
    );
    // Both changes are in the audit log, with before and after.
    let log = api.get("/api/v1/admin/audit").await.json();
    let actions: Vec<&str> = log["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions[..2], ["tenant.reactivate", "tenant.suspend"]);
    assert_eq!(log["items"][1]["before"]["status"], "active");
    assert_eq!(log["items"][1]["after"]["status"], "suspended");
    assert_eq!(log["items"][1]["actor"], "user:1 admin@wellpulse.test");
    assert!(log["items"][1]["request_id"].is_string());
    drop(kicks);
    api.finish().await;
}

#[tokio::test]
async fn a_sign_out_on_one_instance_holds_on_another_within_a_second() {
    let api = TestApi::start("api_access_notify").await;
    let fleet = seed(&api.db, 5, 30).await;
    // A second API instance over the same database (another replica behind a balancer).
    let other = api::ApiServer::bind(
        "127.0.0.1:0".parse().unwrap(),
        api::ApiState::new(api.db.clone(), api::ApiOptions::default()),
    )
    .await
    .unwrap();
    let other_addr = other.local_addr().unwrap();
    let server = tokio::spawn(other.run());
    let viewer = auth::member_token(&api.db, fleet.acme, Role::Viewer).await;
    let wells = "/api/v1/tenants/acme/wells";
    // Used (and so cached) on both instances.
    for _ in 0..3 {
        assert_eq!(
            api.request_as(&viewer, "GET", wells, None).await.status,
            200
        );
        let r = testkit::http::send_as(other_addr, &viewer, "GET", wells, None).await;
        assert_eq!(r.status, 200);
    }
    let out = api
        .request_as(&viewer, "POST", "/api/v1/auth/sign-out", None)
        .await;
    assert_eq!(out.status, 204);
    let signed_out = std::time::Instant::now();
    assert_eq!(
        api.request_as(&viewer, "GET", wells, None).await.status,
        401
    );
    // The other instance learns it from PostgreSQL's notification.
    loop {
        let r = testkit::http::send_as(other_addr, &viewer, "GET", wells, None).await;
        if r.status == 401 {
            break;
        }
        assert_eq!(r.status, 200);
        assert!(
            signed_out.elapsed() < std::time::Duration::from_secs(1),
            "the other instance still accepts a signed-out token after 1 s"
        );
        tokio::task::yield_now().await;
    }
    server.abort();
    api.finish().await;
}

#[tokio::test]
async fn a_tenant_scheduled_for_deletion_is_refused_can_be_exported_and_reactivated() {
    let export_dir = tempfile::tempdir().unwrap();
    let api = TestApi::with(
        "api_access_deletion",
        testkit::api::Setup {
            options: api::ApiOptions {
                export_dir: export_dir.path().to_owned(),
                ..api::ApiOptions::default()
            },
            ..testkit::api::Setup::default()
        },
    )
    .await;
    let fleet = seed(&api.db, 5, 30).await;
    let viewer = auth::member_token(&api.db, fleet.acme, Role::Viewer).await;
    let wells = "/api/v1/tenants/acme/wells";
    let r = api.post("/api/v1/admin/tenants/acme/delete", None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["status"], "deleting");
    assert!(r.json()["deletion_due_at"].is_string());
    let refused = api.request_as(&viewer, "GET", wells, None).await;
    assert_eq!(refused.status, 403);
    assert_eq!(refused.error_code(), "tenant_deleting");

    let export = api.post("/api/v1/admin/tenants/acme/export", None).await;
    assert_eq!(export.status, 200, "{}", export.text());
    let files = export.json()["files"].as_array().unwrap().clone();
    let wells_file = files.iter().find(|f| f["file"] == "wells.csv").unwrap();
    assert_eq!(wells_file["rows"], 2);
    let telemetry = files.iter().find(|f| f["file"] == "telemetry.csv").unwrap();
    assert!(telemetry["rows"].as_i64().unwrap() > 0);
    let dir = std::path::PathBuf::from(export.json()["dir"].as_str().unwrap());
    assert!(dir.starts_with(export_dir.path()));
    assert!(dir.join("manifest.json").is_file());

    let back = api
        .post("/api/v1/admin/tenants/acme/reactivate", None)
        .await;
    assert_eq!(back.json()["status"], "active");
    assert!(back.json()["deletion_due_at"].is_null());
    assert_eq!(
        api.request_as(&viewer, "GET", wells, None).await.status,
        200
    );
    api.finish().await;
}
