//! The web app's files (`web_dir`) served as the router's fallback: `index.html` for the
//! app's own routes, the built assets, a 404 for a missing file, and never anything but
//! the API's JSON errors under `/api`; no credential needed (they are static files).

use testkit::api::{Setup, TestApi};
use testkit::http;

const INDEX: &str = "<!doctype html><html><head><script type=\"module\" src=\"/assets/app-1a2b.js\"></script></head><body><div id=\"app\"></div></body></html>";
const SCRIPT: &str = "console.log('wellpulse');";

#[tokio::test]
async fn the_fallback_serves_the_app_and_never_hides_api_errors() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("index.html"), INDEX).unwrap();
    std::fs::create_dir(dir.path().join("assets")).unwrap();
    std::fs::write(dir.path().join("assets/app-1a2b.js"), SCRIPT).unwrap();
    api::check_web_dir(dir.path()).expect("a directory with index.html");
    assert!(api::check_web_dir(&dir.path().join("assets")).is_err());

    let api = TestApi::with(
        "api_web",
        Setup {
            options: api::ApiOptions {
                web_dir: Some(dir.path().to_owned()),
                ..api::ApiOptions::default()
            },
            ..Setup::default()
        },
    )
    .await;

    // The page, at the root and at any client-side route, with the strict policy.
    for target in ["/", "/alerts", "/wells/7", "/t/acme/fleet?sort=name"] {
        let response = http::get(api.addr, target).await;
        assert_eq!(response.status, 200, "{target}");
        assert_eq!(response.text(), INDEX, "{target}");
        assert!(
            response
                .header("content-type")
                .is_some_and(|t| t.starts_with("text/html")),
            "{target}"
        );
        assert_eq!(response.header("cache-control"), Some("no-cache"));
        let csp = response.header("content-security-policy").expect("a CSP");
        assert!(csp.contains("default-src 'none'"), "{csp}");
        assert!(csp.contains("script-src 'self';"), "{csp}");
        assert!(csp.contains("connect-src 'self'"), "{csp}");
        assert!(!csp.contains("unsafe"), "{csp}");
        assert_eq!(response.header("x-content-type-options"), Some("nosniff"));
    }

    // Built files as they are, cached for good (their names carry a content hash).
    let response = http::get(api.addr, "/assets/app-1a2b.js").await;
    assert_eq!(response.status, 200);
    assert_eq!(response.text(), SCRIPT);
    assert!(
        response
            .header("content-type")
            .is_some_and(|t| t.contains("javascript")),
        "{:?}",
        response.header("content-type")
    );
    assert!(
        response
            .header("cache-control")
            .is_some_and(|c| c.contains("immutable"))
    );
    // A missing file is a 404, not the page; no escape from the directory.
    for target in ["/assets/missing.js", "/favicon.ico", "/../Cargo.toml"] {
        let response = http::get(api.addr, target).await;
        assert_eq!(response.status, 404, "{target}");
        assert_ne!(response.text(), INDEX, "{target}");
    }

    // The API keeps its JSON errors: unknown paths under /api, other methods.
    for target in [
        "/api",
        "/api/nope",
        "/api/v1/tenants",
        "/api/docs/index.html",
    ] {
        let response = http::get(api.addr, target).await;
        assert_eq!(response.status, 404, "{target}");
        assert_eq!(response.error_code(), "no_route", "{target}");
        assert!(response.json()["error"]["request_id"].is_string());
    }
    let response = http::request(api.addr, "POST", "/alerts", &[("content-length", "0")]).await;
    assert_eq!(response.status, 405);
    assert_eq!(response.error_code(), "method_not_allowed");
    // Documented routes are untouched, and still guarded.
    assert_eq!(http::get(api.addr, "/health").await.status, 200);
    let response = http::get(api.addr, "/api/v1/tenants/acme/wells").await;
    assert_eq!(response.status, 401);
    assert_eq!(response.error_code(), "unauthenticated");
    api.finish().await;
}
