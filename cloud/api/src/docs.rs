//! The OpenAPI document (`/api/openapi.json`) and Swagger UI for it (`/api/docs`).
//!
//! The document is generated from the code: `utoipa` derives the schemas of the DTOs and
//! the parameters of the extractors, `#[utoipa::path]` describes each handler, and
//! `utoipa_axum` collects exactly the routes the router serves. It is rendered to JSON
//! once, when the router is built, after [`document_page_limit`] has written the server's
//! page limit into it.
//!
//! # The docs page
//!
//! `/api/docs` is Swagger UI, served from this binary: its files come from the
//! `utoipa-swagger-ui` crate with the `vendored` feature (the Swagger UI release is a zip
//! inside the `utoipa-swagger-ui-vendored` crate, so the build downloads nothing) and are
//! embedded in the binary. Nothing is loaded from another origin, so the page works on an
//! isolated network.
//!
//! - `/api/docs` is the page itself ([`PAGE`]), a documented operation like any other.
//! - The files it loads are served at the fixed paths of [`DOCS_ASSETS`], under
//!   `/api/docs/`. They are the only routes of the API that are not in the OpenAPI
//!   document: they are files, not operations. Each is registered explicitly, no
//!   wildcard, so any other path under `/api/docs/` is the API's `no_route` 404.
//! - `swagger-initializer.js` is rendered by `utoipa_swagger_ui::serve` from
//!   [`swagger_config`]: the spec is `openapi.json` relative to the page, so the page also
//!   works behind a path-prefixing proxy; the base layout (no URL bar to load other
//!   documents); no online validator (Swagger UI would send the document to a third
//!   party's validator by default).
//! - The page and its files are answered with [`CSP`]: scripts, styles, images and
//!   requests from this origin only. Two allowances, both needed by Swagger UI: inline
//!   styles (`'unsafe-inline'` in `style-src` only, never in `script-src`) and `data:`
//!   images (the icons inside its CSS).
//!
//! The Swagger UI release is fixed by the `utoipa-swagger-ui-vendored` version in
//! `Cargo.lock`; `api_openapi.rs` checks what the page and its files reference and renders
//! the page in headless Chromium, recording every request the browser makes.

use std::sync::{Arc, LazyLock};

use axum::body::Body;
use axum::extract::Extension;
use axum::http::{HeaderValue, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use utoipa::openapi::path::ParameterIn;
use utoipa::openapi::{OpenApi, RefOr, Schema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use utoipa_swagger_ui::Config;

use super::ApiState;
use super::error::ApiError;

/// The docs page. Every reference is relative (`docs/…` from `/api/docs`), so the page
/// works under any path prefix; no inline script (the CSP forbids it).
pub(crate) const PAGE: &str = r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>WellPulse API</title>
<link rel="stylesheet" type="text/css" href="docs/swagger-ui.css">
<link rel="stylesheet" type="text/css" href="docs/index.css">
<link rel="icon" type="image/png" href="docs/favicon-32x32.png" sizes="32x32">
<link rel="icon" type="image/png" href="docs/favicon-16x16.png" sizes="16x16">
</head>
<body>
<div id="swagger-ui"></div>
<script src="docs/swagger-ui-bundle.js" charset="utf-8"></script>
<script src="docs/swagger-ui-standalone-preset.js" charset="utf-8"></script>
<script src="docs/swagger-initializer.js" charset="utf-8"></script>
</body>
</html>
"#;

/// The Swagger UI files the page loads: the only routes not in the OpenAPI document.
pub const DOCS_ASSETS: [&str; 7] = [
    "/api/docs/swagger-ui.css",
    "/api/docs/index.css",
    "/api/docs/favicon-32x32.png",
    "/api/docs/favicon-16x16.png",
    "/api/docs/swagger-ui-bundle.js",
    "/api/docs/swagger-ui-standalone-preset.js",
    "/api/docs/swagger-initializer.js",
];

/// Everything from this origin only; inline styles and `data:` images because Swagger UI
/// needs them; no inline or evaluated script, no frames, no forms, no `<base>`.
pub(crate) const CSP: &str = "default-src 'none'; script-src 'self'; \
                              style-src 'self' 'unsafe-inline'; img-src 'self' data:; \
                              connect-src 'self'; base-uri 'none'; form-action 'none'; \
                              frame-ancestors 'none'";

/// Swagger UI's configuration, written into `swagger-initializer.js`.
pub(crate) fn swagger_config() -> Config<'static> {
    Config::new(["openapi.json"])
        .use_base_layout()
        .validator_url("none")
}

/// The configuration every `swagger-initializer.js` response is rendered from.
static CONFIG: LazyLock<Arc<Config<'static>>> = LazyLock::new(|| Arc::new(swagger_config()));

pub(crate) fn routes() -> OpenApiRouter<ApiState> {
    let router = OpenApiRouter::new()
        .routes(routes!(openapi_json))
        .routes(routes!(docs_page));
    DOCS_ASSETS.into_iter().fold(router, |router, path| {
        let file = path.trim_start_matches("/api/docs/");
        router.route(path, get(move || asset(file)))
    })
}

/// The rendered OpenAPI document, shared by all requests.
#[derive(Debug, Clone)]
pub(crate) struct SpecDocument(Arc<str>);

impl SpecDocument {
    pub(crate) fn new(spec: &OpenApi) -> SpecDocument {
        let json = spec.to_pretty_json().unwrap_or_else(|error| {
            tracing::error!(%error, "cannot render the OpenAPI document");
            r#"{"error":"the OpenAPI document could not be rendered"}"#.to_owned()
        });
        SpecDocument(json.into())
    }
}

/// States in the document the page limit the server enforces: `maximum` of every `limit`
/// query parameter is the configured `max_page_size`.
pub(crate) fn document_page_limit(spec: &mut OpenApi, max_page_size: u32) {
    for item in spec.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.options,
            &mut item.head,
            &mut item.patch,
            &mut item.trace,
        ];
        for operation in operations.into_iter().flatten() {
            let limits = operation
                .parameters
                .iter_mut()
                .flatten()
                .filter(|p| p.name == "limit" && p.parameter_in == ParameterIn::Query);
            for parameter in limits {
                if let Some(RefOr::T(Schema::Object(schema))) = &mut parameter.schema {
                    schema.maximum = Some(max_page_size.into());
                }
            }
        }
    }
}

/// This API's OpenAPI 3.1 document.
#[utoipa::path(
    get,
    path = "/api/openapi.json",
    security(()),
    tag = "docs",
    operation_id = "openapi",
    responses((status = 200, description = "OpenAPI 3.1 document", content_type = "application/json"))
)]
async fn openapi_json(Extension(spec): Extension<SpecDocument>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        spec.0.to_string(),
    )
}

/// Swagger UI over this document, served from the API itself (no external origin).
#[utoipa::path(
    get,
    path = "/api/docs",
    security(()),
    tag = "docs",
    operation_id = "docs",
    responses((status = 200, description = "HTML page (Swagger UI)", content_type = "text/html"))
)]
async fn docs_page() -> impl IntoResponse {
    (
        [
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Html(PAGE),
    )
}

/// One Swagger UI file, from the files embedded in the binary.
async fn asset(file: &'static str) -> Result<Response, ApiError> {
    let found = utoipa_swagger_ui::serve(file, Arc::clone(&CONFIG))
        .map_err(|error| ApiError::Internal(error.to_string().into()))?
        .ok_or_else(|| {
            ApiError::Internal(format!("Swagger UI file {file} is not embedded").into())
        })?;
    let content_type = HeaderValue::from_str(&found.content_type)
        .map_err(|error| ApiError::Internal(Box::new(error)))?;
    Ok((
        [
            (header::CONTENT_TYPE, content_type),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CSP),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        Body::from(found.bytes),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_is_embedded_and_referenced_by_the_page() {
        for path in DOCS_ASSETS {
            let file = path.trim_start_matches("/api/docs/");
            let found = utoipa_swagger_ui::serve(file, Arc::clone(&CONFIG))
                .unwrap()
                .unwrap_or_else(|| panic!("{file} is not embedded"));
            assert!(!found.bytes.is_empty(), "{file}");
            assert!(PAGE.contains(&format!("\"docs/{file}\"")), "{file}");
        }
    }

    #[test]
    fn the_initializer_loads_this_document_without_a_validator() {
        let found = utoipa_swagger_ui::serve("swagger-initializer.js", Arc::clone(&CONFIG))
            .unwrap()
            .unwrap();
        let script = String::from_utf8(found.bytes.into_owned()).unwrap();
        assert!(script.contains(r#""url": "openapi.json""#), "{script}");
        assert!(script.contains(r#""validatorUrl": "none""#), "{script}");
        assert!(script.contains(r#""layout": "BaseLayout""#), "{script}");
        assert!(!script.contains("{{config}}"), "{script}");
    }
}
