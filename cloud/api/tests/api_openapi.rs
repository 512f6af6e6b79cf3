//! The OpenAPI document: valid OpenAPI 3.1 JSON, listing exactly the routes the router
//! serves (checked from the outside: every documented operation is routed, every other
//! method on a documented path is 405, unknown paths are 404), and the docs page that
//! renders it: Swagger UI served by the API itself, referencing no other origin, rendered
//! by headless Chromium (Debian's `/usr/bin/chromium`, which `scripts/services.sh`
//! installs; the test fails without it).

use std::collections::{BTreeSet, HashSet};
use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use testkit::api::{Setup, TestApi, seed};
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
        let success = op["responses"]
            .as_object()
            .unwrap()
            .keys()
            .any(|status| status.starts_with('2'));
        assert!(success, "{id}: no 2xx response");
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
            for status in ["400", "401", "403", "404", "429", "503"] {
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
        .replace("{slug}", "acme")
        .replace("{user}", "1")
        .replace("{key}", "1")
        .replace("{site}", "1")
        .replace("{intervention}", "1")
        .replace("{source}", "1")
        .replace("{serial}", "0123456789abcdef0123456789abcdef")
}

#[tokio::test]
async fn the_router_serves_exactly_the_documented_routes() {
    // Billing against the fake Stripe (else a 503 by design).
    let stripe = testkit::stripe::FakeStripe::start(&testkit::stripe::FAKE_METERS).await;
    let api = TestApi::with(
        "api_openapi_routes",
        Setup {
            // Gateway client certificates can be issued (else a 503 by design).
            options: api::ApiOptions {
                ca_key: Some(base::Secret::new(testkit::mtls::CA_KEY)),
                ..api::ApiOptions::default()
            },
            billing: Some(testkit::stripe::billing_options(
                &stripe.url(),
                &["whsec_routes"],
            )),
            ..Setup::default()
        },
    )
    .await;
    let fleet = seed(&api.db, 10, 30).await;
    let spec = api.get("/api/openapi.json").await.json();
    let documented = operations(&spec);

    // The issue's endpoints are all there.
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
            // A fresh platform administrator each time: `sign-out` ends its session.
            let token = testkit::auth::platform_admin_token(&api.db).await;
            let response =
                http::send_as(api.addr, &token, &method.to_uppercase(), &target, None).await;
            if allowed.contains(&method) {
                // Routed to its handler: anything but the fallbacks (a 400 for missing
                // query parameters or body proves the handler ran; a 404 names what the
                // handler did not find; a 422 the data it lacked, e.g. training without
                // history).
                assert_ne!(response.status, 405, "{method} {target}");
                if response.status == 404 {
                    assert_ne!(response.error_code(), "no_route", "{method} {target}");
                }
                assert!(
                    matches!(response.status, 200..=299 | 400 | 404 | 409 | 422),
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
    // The docs page's Swagger UI files: routed (GET only) but not operations, so not in
    // the document.
    for asset in api::DOCS_ASSETS {
        assert!(
            !paths.contains(asset),
            "{asset} is documented as an operation"
        );
        for method in ["get", "post", "put", "patch", "delete"] {
            let response = http::request(
                api.addr,
                &method.to_uppercase(),
                asset,
                &[("content-length", "0")],
            )
            .await;
            if method == "get" {
                assert_eq!(response.status, 200, "{method} {asset}");
                assert!(!response.body.is_empty(), "{asset}");
            } else {
                assert_eq!(response.status, 405, "{method} {asset}");
                assert_eq!(response.error_code(), "method_not_allowed");
            }
        }
    }
    // Anything else is not routed, including the Swagger UI files the page does not load.
    for target in [
        "/",
        "/api",
        "/api/v1/tenants",
        "/api/v1/tenants/acme",
        "/api/docs/",
        "/api/docs/x",
        "/api/docs/index.html",
        "/api/docs/oauth2-redirect.html",
        "/api/docs/swagger-ui-bundle.js.map",
        "/api/docs/swagger-ui.js",
        "/api/docs/docs/swagger-ui.css",
        "/ready/",
    ] {
        let response = api.get(target).await;
        assert_eq!(response.status, 404, "{target}");
        assert_eq!(response.error_code(), "no_route", "{target}");
    }
    api.finish().await;
}

/// The docs page's policy: every directive allows this origin at most, plus the two
/// allowances Swagger UI needs (inline styles, `data:` images); nothing else.
fn assert_strict_csp(csp: &str) {
    let directives: Vec<(&str, Vec<&str>)> = csp
        .split(';')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|d| {
            let mut words = d.split_whitespace();
            (words.next().unwrap(), words.collect())
        })
        .collect();
    let sources = |name: &str| {
        directives
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, s)| s.clone())
            .unwrap_or_else(|| panic!("no {name} in {csp}"))
    };
    assert_eq!(sources("default-src"), ["'none'"], "{csp}");
    assert_eq!(sources("script-src"), ["'self'"], "{csp}");
    assert_eq!(sources("connect-src"), ["'self'"], "{csp}");
    assert_eq!(sources("frame-ancestors"), ["'none'"], "{csp}");
    assert_eq!(sources("base-uri"), ["'none'"], "{csp}");
    for (name, sources) in &directives {
        for source in sources {
            let allowed = match *source {
                "'self'" | "'none'" => true,
                "'unsafe-inline'" => *name == "style-src",
                "data:" => *name == "img-src",
                _ => false,
            };
            assert!(allowed, "{name} allows {source}: {csp}");
        }
    }
}

/// `scheme://host` of every absolute http(s) URL in a text.
fn origins(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for scheme in ["http://", "https://"] {
        for (at, _) in text.match_indices(scheme) {
            let rest = &text[at + scheme.len()..];
            let host: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':'))
                .collect();
            if !host.is_empty() {
                out.insert(format!("{scheme}{host}"));
            }
        }
    }
    out
}

/// Where the quoted string that `text` starts with ends (its closing quote), skipping
/// backslash-escaped characters.
fn closing_quote(text: &str, quote: char) -> usize {
    let mut escaped = false;
    for (at, c) in text.char_indices().skip(1) {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            c if c == quote => return at,
            _ => {}
        }
    }
    panic!("unterminated string: {text:.60}")
}

/// The values of every `attr="…"` in an HTML text.
fn attribute_values<'a>(html: &'a str, attr: &str) -> Vec<&'a str> {
    let needle = format!(" {attr}=\"");
    html.match_indices(&needle)
        .map(|(at, _)| {
            let rest = &html[at + needle.len()..];
            &rest[..rest.find('"').unwrap()]
        })
        .collect()
}

/// Origins the Swagger UI scripts name as text, none of which the page loads: XML
/// namespaces, JSON Schema and OpenAPI dialect ids, links in error messages and licence
/// comments, example values of the `uri` formats, a hashtag/mention link builder, and the
/// online validator, which the initializer turns off (`validatorUrl: "none"`). A new
/// Swagger UI release that names another origin fails here until someone has looked at it;
/// the policy would block it anyway, and the Chromium test records every request made.
const INERT_ORIGINS_IN_SCRIPTS: [&str; 16] = [
    "http://fb.me",
    "http://www.w3.org",
    "https://example.com",
    "https://github.com",
    "https://instagram.com",
    "https://json-schema.org",
    "https://reactjs.org",
    "https://redux.js.org",
    "https://soundcloud.com",
    "https://spdx.org",
    "https://spec.openapis.org",
    "https://swagger.io",
    "https://twitter.com",
    "https://validator.swagger.io",
    "https://www.facebook.com",
    "https://www.tiktok.com",
];

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
    assert_strict_csp(page.header("content-security-policy").unwrap());
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
    let html = page.text();
    assert_eq!(origins(&html), BTreeSet::new(), "the page names an origin");
    assert!(!html.contains("//"), "no absolute or scheme-relative URL");
    for forbidden in ["<base", "<iframe", "<object", "<embed", "<style", "@import"] {
        assert!(!html.contains(forbidden), "the page has {forbidden:?}");
    }
    // No inline event handler (`onload="…"` and the like).
    for (at, _) in html.match_indices(" on") {
        let name: String = html[at + 1..]
            .chars()
            .take_while(char::is_ascii_alphabetic)
            .collect();
        assert!(
            !html[at + 1 + name.len()..].starts_with('='),
            "inline handler {name}"
        );
    }
    // No inline script: every script element loads a file.
    assert_eq!(
        html.matches("<script").count(),
        html.matches("<script src=\"").count(),
        "inline script"
    );

    // The page references exactly the UI files, relatively (`docs/…` from `/api/docs`).
    let mut references: Vec<&str> = attribute_values(&html, "src");
    references.extend(attribute_values(&html, "href"));
    let resolved: BTreeSet<String> = references
        .iter()
        .map(|r| {
            let file = r
                .strip_prefix("docs/")
                .unwrap_or_else(|| panic!("{r} is not a relative docs/ reference"));
            format!("/api/docs/{file}")
        })
        .collect();
    let assets: BTreeSet<String> = api::DOCS_ASSETS.iter().map(|a| a.to_string()).collect();
    assert_eq!(
        resolved, assets,
        "the page loads exactly the served UI files"
    );

    let mut script_origins = BTreeSet::new();
    for asset in api::DOCS_ASSETS {
        let response = api.get(asset).await;
        assert_eq!(response.status, 200, "{asset}");
        assert_strict_csp(response.header("content-security-policy").unwrap());
        assert_eq!(response.header("x-content-type-options"), Some("nosniff"));
        let content_type = response.header("content-type").unwrap();
        let text = response.text();
        match Path::new(asset).extension().and_then(|e| e.to_str()) {
            Some("css") => {
                assert!(
                    content_type.starts_with("text/css"),
                    "{asset}: {content_type}"
                );
                assert!(!text.contains("@import"), "{asset}");
                // Every url(…) is an inline data: URL (whose SVG names its XML namespace),
                // and nothing outside them names an origin.
                let mut rest = text.as_str();
                let mut outside = String::new();
                while let Some(at) = rest.find("url(") {
                    outside.push_str(&rest[..at]);
                    let target = &rest[at + 4..];
                    let end = match target.chars().next() {
                        Some(quote @ ('"' | '\'')) => closing_quote(target, quote) + 1,
                        _ => target.find(')').unwrap(),
                    };
                    let url = target[..end].trim_matches(['"', '\'']);
                    assert!(url.starts_with("data:"), "{asset}: url({url:.60})");
                    rest = &target[end..];
                }
                outside.push_str(rest);
                assert_eq!(origins(&outside), BTreeSet::new(), "{asset}");
            }
            Some("js") => {
                assert!(
                    content_type.contains("javascript"),
                    "{asset}: {content_type}"
                );
                script_origins.extend(origins(&text));
            }
            Some("png") => assert_eq!(content_type, "image/png", "{asset}"),
            other => panic!("{asset}: unexpected kind of file {other:?}"),
        }
    }
    assert_eq!(
        script_origins,
        INERT_ORIGINS_IN_SCRIPTS
            .iter()
            .map(|o| o.to_string())
            .collect(),
        "origins named by the Swagger UI scripts changed: check that none is loaded"
    );

    // The initializer loads this API's document, relative to the page, and no validator.
    let initializer = api.get("/api/docs/swagger-initializer.js").await.text();
    assert_eq!(origins(&initializer), BTreeSet::new(), "{initializer}");
    assert!(
        initializer.contains(r#""url": "openapi.json""#),
        "{initializer}"
    );
    assert!(
        initializer.contains(r#""validatorUrl": "none""#),
        "{initializer}"
    );
    api.finish().await;
}

/// Debian's chromium; `scripts/services.sh` installs it.
const CHROMIUM: &str = "/usr/bin/chromium";

/// The URLs of the requests the browser started, each with its initiator (the origin of
/// the document that asked for it; `None` for the navigation and the browser's own).
fn started_requests(net_log: &Value) -> Vec<(String, Option<String>)> {
    let start_job = &net_log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"];
    assert!(start_job.is_number(), "no URL_REQUEST_START_JOB in the log");
    net_log["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|event| &event["type"] == start_job)
        .filter_map(|event| {
            // The event's end carries no parameters; its beginning has the request.
            let params = &event["params"];
            let url = params["url"].as_str()?;
            let initiator = params["initiator"]
                .as_str()
                .filter(|i| *i != "not an origin")
                .map(str::to_owned);
            Some((url.to_owned(), initiator))
        })
        .collect()
}

/// Renders the docs page in headless Chromium and checks that Swagger UI shows every
/// operation of the document, and that the browser requested nothing from another origin.
#[tokio::test]
async fn headless_chromium_renders_every_operation() {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: install Debian's chromium (`source scripts/services.sh; \
         wp_ensure_all` does, as root)"
    );
    let api = TestApi::start("api_docs_chromium").await;
    let profile = tempfile::tempdir().unwrap();
    let net_log = profile.path().join("net-log.json");
    let origin = format!("http://{}", api.addr);
    let output = tokio::time::timeout(
        Duration::from_secs(180),
        tokio::process::Command::new(CHROMIUM)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--virtual-time-budget=30000",
                "--dump-dom",
                // Only this machine's loopback resolves: the browser's own background
                // requests (time, updates) go nowhere.
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            ])
            .arg(format!(
                "--user-data-dir={}",
                profile.path().join("profile").display()
            ))
            .arg(format!("--log-net-log={}", net_log.display()))
            .arg(format!("{origin}/api/docs"))
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("chromium finished within 180 s")
    .expect("chromium runs");
    let dom = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "chromium failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );

    let spec = serde_json::to_value(api::openapi()).unwrap();
    let title = spec["info"]["title"].as_str().unwrap();
    assert!(
        dom.contains(title),
        "Swagger UI did not render the document:\n{dom}"
    );
    for (method, path) in operations(&spec) {
        let op = &spec["paths"][&path][&method];
        let id = op["operationId"].as_str().unwrap();
        let tag = op["tags"][0].as_str().unwrap();
        assert!(
            dom.contains(&format!("id=\"operations-{tag}-{id}\"")),
            "operation {tag}/{id} ({method} {path}) not rendered"
        );
    }

    // Every request the page made went to this server: its files and the document.
    let log: Value = serde_json::from_slice(&std::fs::read(&net_log).unwrap())
        .unwrap_or_else(|e| panic!("chromium's network log is not JSON: {e}"));
    let requests = started_requests(&log);
    let page = format!("{origin}/api/docs");
    assert!(
        requests
            .iter()
            .any(|(url, by)| *url == page && by.is_none()),
        "{page} was not loaded: {requests:#?}"
    );
    let by_page: BTreeSet<&str> = requests
        .iter()
        .filter(|(_, by)| by.is_some())
        .map(|(url, by)| {
            assert_eq!(by.as_deref(), Some(origin.as_str()), "{url}");
            url.strip_prefix(&origin)
                .unwrap_or_else(|| panic!("the page requested {url}, outside {origin}"))
        })
        .collect();
    // (Of the two icons, a browser loads the one it prefers.)
    let loaded = api::DOCS_ASSETS.iter().filter(|a| !a.ends_with(".png"));
    for expected in loaded.chain(&["/api/openapi.json"]) {
        assert!(
            by_page.contains(expected),
            "{expected} was not requested: {by_page:#?}"
        );
    }
    api.finish().await;
}
