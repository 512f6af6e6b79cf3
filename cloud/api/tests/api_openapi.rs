//! The OpenAPI document: valid OpenAPI 3.1 JSON, listing exactly the routes the router
//! serves (checked from the outside: every documented operation is routed, every other
//! method on a documented path is 405, unknown paths are 404), and the docs page that
//! renders it (self-contained; rendered by headless Chromium when it is installed).

use std::collections::{BTreeSet, HashSet};
use std::time::Duration;

use serde_json::Value;
use testkit::api::{TestApi, seed};
use testkit::http;

const METHODS: [&str; 7] = ["get", "post", "put", "patch", "delete", "head", "options"];

/// Every (method, path template) of the document.
fn operations(spec: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for method in METHODS {
            if item.get(method).is_some() {
                out.push((method.to_owned(), path.clone()));
            }
        }
    }
    out
}

/// Collects every `$ref` in a JSON value.
fn refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                if key == "$ref" {
                    out.push(v.as_str().unwrap_or_default().to_owned());
                } else {
                    refs(v, out);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

#[tokio::test]
async fn the_served_document_is_valid_openapi_3_1() {
    let api = TestApi::start("api_openapi_valid").await;
    let response = api.get("/api/openapi.json").await;
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-type"), Some("application/json"));
    let spec = response.json();
    assert_eq!(
        spec,
        serde_json::to_value(api::openapi()).unwrap(),
        "served document == generated document"
    );
    assert!(
        spec["openapi"].as_str().unwrap().starts_with("3.1."),
        "{}",
        spec["openapi"]
    );
    assert_eq!(spec["info"]["title"], "WellPulse API");
    assert!(spec["info"]["version"].is_string());

    let schemas = spec["components"]["schemas"].as_object().unwrap();
    let mut all_refs = Vec::new();
    refs(&spec, &mut all_refs);
    assert!(!all_refs.is_empty());
    for r in &all_refs {
        let name = r
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("foreign $ref {r}"));
        assert!(schemas.contains_key(name), "dangling $ref {r}");
    }
    let tags: HashSet<_> = spec["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    let mut operation_ids = HashSet::new();
    for (method, path) in operations(&spec) {
        let op = &spec["paths"][&path][&method];
        let id = op["operationId"]
            .as_str()
            .unwrap_or_else(|| panic!("{method} {path}: no operationId"));
        assert!(
            operation_ids.insert(id.to_owned()),
            "duplicate operationId {id}"
        );
        let tag = op["tags"][0]
            .as_str()
            .unwrap_or_else(|| panic!("{id}: no tag"));
        assert!(tags.contains(tag), "{id}: undeclared tag {tag}");
        assert!(op["responses"]["200"].is_object(), "{id}: no 200 response");
        // Every `{param}` of the template is a declared, required path parameter.
        let declared: HashSet<&str> = op["parameters"]
            .as_array()
            .map(|ps| {
                ps.iter()
                    .filter(|p| p["in"] == "path" && p["required"] == true)
                    .map(|p| p["name"].as_str().unwrap())
                    .collect()
            })
            .unwrap_or_default();
        let in_template: HashSet<&str> = path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .collect();
        assert_eq!(declared, in_template, "{id}: path parameters");
        for limit in op["parameters"].as_array().into_iter().flatten() {
            if limit["name"] == "limit" {
                assert_eq!(
                    limit["schema"]["maximum"], 10_000,
                    "{id}: documented page limit"
                );
                assert_eq!(limit["schema"]["minimum"], 1, "{id}");
            }
        }
        // Tenant routes document their 4xx answers with the error body.
        if path.starts_with("/api/v1/tenants/") {
            for status in ["400", "404", "503"] {
                let body =
                    &op["responses"][status]["content"]["application/json"]["schema"]["$ref"];
                assert_eq!(body, "#/components/schemas/ErrorResponse", "{id}: {status}");
            }
        }
    }
    api.finish().await;
}

#[tokio::test]
async fn the_document_states_the_configured_page_limit() {
    let api = TestApi::with(
        "api_openapi_limit",
        testkit::api::Setup {
            options: api::ApiOptions {
                max_page_size: 50,
                ..api::ApiOptions::default()
            },
            ..testkit::api::Setup::default()
        },
    )
    .await;
    let spec = api.get("/api/openapi.json").await.json();
    let telemetry = &spec["paths"]["/api/v1/tenants/{tenant}/wells/{well}/telemetry"]["get"];
    let limit = telemetry["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "limit")
        .unwrap();
    assert_eq!(limit["schema"]["maximum"], 50);
    api.db.create_tenant("acme", "Acme").await.unwrap();
    let refused = api.get("/api/v1/tenants/acme/wells?limit=51").await;
    assert_eq!(
        refused.error_message(),
        "invalid query parameter `limit`: must be an integer from 1 to 50, got `51`"
    );
    api.finish().await;
}

/// Fills a path template with values that exist in the seeded fleet.
fn concrete(path: &str, well: i64) -> String {
    path.replace("{tenant}", "acme")
        .replace("{well}", &well.to_string())
        .replace("{gateway}", "gw-01")
}

#[tokio::test]
async fn the_router_serves_exactly_the_documented_routes() {
    let api = TestApi::start("api_openapi_routes").await;
    let fleet = seed(&api.db, 10, 30).await;
    let spec = api.get("/api/openapi.json").await.json();
    let documented = operations(&spec);

    // The endpoints are all there.
    let paths: BTreeSet<&str> = documented.iter().map(|(_, p)| p.as_str()).collect();
    for required in [
        "/health",
        "/ready",
        "/metrics",
        "/api/openapi.json",
        "/api/docs",
        "/api/v1/tenants/{tenant}/gateways",
        "/api/v1/tenants/{tenant}/gateways/{gateway}",
        "/api/v1/tenants/{tenant}/wells",
        "/api/v1/tenants/{tenant}/wells/{well}",
        "/api/v1/tenants/{tenant}/wells/{well}/metrics",
        "/api/v1/tenants/{tenant}/wells/{well}/telemetry",
        "/api/v1/tenants/{tenant}/ingest/rejections",
        "/api/v1/tenants/{tenant}/ingest/counters",
    ] {
        assert!(paths.contains(required), "{required} is not documented");
    }

    for path in &paths {
        let target = concrete(path, fleet.smith.0);
        let allowed: Vec<&str> = documented
            .iter()
            .filter(|(_, p)| p == path)
            .map(|(m, _)| m.as_str())
            .collect();
        for method in ["get", "post", "put", "patch", "delete"] {
            let response = http::request(
                api.addr,
                &method.to_uppercase(),
                &target,
                &[("content-length", "0")],
            )
            .await;
            if allowed.contains(&method) {
                // Routed to its handler: anything but the fallbacks (a 400 for missing
                // query parameters proves the handler ran).
                assert_ne!(response.status, 405, "{method} {target}");
                if response.status == 404 {
                    assert_ne!(response.error_code(), "no_route", "{method} {target}");
                }
                assert!(
                    matches!(response.status, 200 | 400),
                    "{method} {target}: {} {}",
                    response.status,
                    response.text()
                );
            } else {
                assert_eq!(
                    response.status, 405,
                    "{method} {target} is served but not documented"
                );
                assert_eq!(response.error_code(), "method_not_allowed");
            }
        }
    }
    // Anything else is not routed.
    for target in [
        "/",
        "/api",
        "/api/v1/tenants",
        "/api/v1/tenants/acme",
        "/api/docs/x",
        "/ready/",
    ] {
        let response = api.get(target).await;
        assert_eq!(response.status, 404, "{target}");
        assert_eq!(response.error_code(), "no_route", "{target}");
    }
    api.finish().await;
}

#[tokio::test]
async fn the_docs_page_is_self_contained() {
    let api = TestApi::start("api_docs_page").await;
    let page = api.get("/api/docs").await;
    assert_eq!(page.status, 200);
    assert!(
        page.header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    let csp = page.header("content-security-policy").unwrap();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("connect-src 'self'"),
        "{csp}"
    );
    let html = page.text();
    assert!(html.contains("openapi.json"));
    assert!(html.contains("Try it"));
    for external in ["http://", "https://", "src=", "<link", "@import"] {
        assert!(!html.contains(external), "the page references {external}");
    }
    assert!(
        !html.contains("innerHTML"),
        "DOM is built with textContent only"
    );
    api.finish().await;
}

fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|bin| {
            std::process::Command::new(bin)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
}

/// Renders the page in headless Chromium and checks the DOM lists every operation and
/// schema. Skipped (with a note) on machines without Chromium.
#[tokio::test]
async fn headless_chromium_renders_every_operation() {
    let Some(browser) = chromium() else {
        eprintln!("skipped: no chromium on this machine");
        return;
    };
    let api = TestApi::start("api_docs_chromium").await;
    let profile = tempfile::tempdir().unwrap();
    let output = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::new(browser)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--virtual-time-budget=10000",
                "--dump-dom",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg(format!("http://{}/api/docs", api.addr))
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("chromium finished within 120 s")
    .expect("chromium runs");
    let dom = String::from_utf8_lossy(&output.stdout);
    assert!(
        dom.contains("data-ready=\"true\""),
        "page did not finish rendering:\n{dom}"
    );
    let spec = serde_json::to_value(api::openapi()).unwrap();
    for (method, path) in operations(&spec) {
        let id = spec["paths"][&path][&method]["operationId"]
            .as_str()
            .unwrap();
        assert!(
            dom.contains(&format!("id=\"op-{id}\"")),
            "operation {id} not rendered"
        );
    }
    for name in spec["components"]["schemas"].as_object().unwrap().keys() {
        assert!(
            dom.contains(&format!("id=\"schema-{name}\"")),
            "schema {name} not rendered"
        );
    }
    api.finish().await;
}
