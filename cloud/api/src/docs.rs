//! The OpenAPI document (`/api/openapi.json`) and a browser for it (`/api/docs`).
//!
//! The document is generated from the code: `utoipa` derives the schemas of the DTOs and
//! the parameters of the extractors, `#[utoipa::path]` describes each handler, and
//! `utoipa_axum` collects exactly the routes the router serves. It is rendered to JSON
//! once, when the router is built.
//!
//! The browser is one self-contained HTML page (markup and CSS in `docs/page.html`,
//! vanilla JavaScript in `docs/explorer.js`, both compiled in with `include_str!`): no
//! CDN, no asset download at build time, so it works on an isolated network. It fetches
//! `openapi.json` (relative URL, so it also works behind a path-prefixing proxy) and
//! renders the operations by tag with their parameters, responses and schemas, and a
//! "try it" form that sends the request from the browser. It builds the DOM with
//! `textContent` only, never `innerHTML`, and the page is served with a Content Security
//! Policy that allows no external source at all.

use std::sync::Arc;

use axum::extract::Extension;
use axum::http::header;
use axum::response::{Html, IntoResponse};
use utoipa::openapi::path::ParameterIn;
use utoipa::openapi::{OpenApi, RefOr, Schema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::ApiState;

/// The page: markup and styles, then the script.
const PAGE: &str = concat!(
    include_str!("docs/page.html"),
    "<script>\n",
    include_str!("docs/explorer.js"),
    "</script>\n</body>\n</html>\n"
);

/// Allows the inline style and script of the page and requests to this origin only.
const CSP: &str = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
                   connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; \
                   frame-ancestors 'none'";

pub(crate) fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(openapi_json))
        .routes(routes!(docs_page))
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

/// A browsable, self-contained view of the OpenAPI document with a "try it" form.
#[utoipa::path(
    get,
    path = "/api/docs",
    tag = "docs",
    operation_id = "docs",
    responses((status = 200, description = "HTML page", content_type = "text/html"))
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
