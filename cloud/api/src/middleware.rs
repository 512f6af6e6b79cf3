//! The request layers around every route and fallback, outermost first:
//!
//! 1. [`drop_insane_request_id`]: a caller's `x-request-id` is kept only if it is a sane
//!    token (1-64 characters of `[A-Za-z0-9._-]`), so a proxy's id flows through;
//! 2. `tower_http::request_id`: sets an id where there is none ([`MakeHexId`], UUID v4
//!    in hex) and echoes it in the `x-request-id` response header;
//! 3. `tower_http::trace`: a tracing span per request carrying the id, and a debug line
//!    per response;
//! 4. [`scope_and_count`]: runs the request in the task-local [`REQUEST_ID`] scope, so
//!    errors rendered anywhere below carry the id in their body; counts responses by
//!    status class ([`ApiMetrics`]) and turns the timeout layer's bare 503 into the API's
//!    JSON `timeout` error;
//! 5. `tower_http::timeout`: bounds the request by `request_timeout` (dropping the handler
//!    future also drops its database work).

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tower_http::request_id::{MakeRequestId, RequestId};

use super::ApiState;
use super::error::{ApiError, REQUEST_ID};

/// The request id header, in and out.
pub(crate) static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ClassLabel {
    class: &'static str,
}

/// Request counters by response status class, registered in the process's registry.
#[derive(Debug, Default)]
pub(crate) struct ApiMetrics {
    responses: Family<ClassLabel, Counter>,
    timeouts: Counter,
}

impl ApiMetrics {
    fn record(&self, status: StatusCode) {
        const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];
        let class = usize::from(status.as_u16() / 100).clamp(1, 5) - 1;
        self.responses
            .get_or_create(&ClassLabel {
                class: CLASSES[class],
            })
            .inc();
    }

    /// Registers `wellpulse_api_*` in `registry`.
    pub(crate) fn register(&self, registry: &mut Registry) {
        registry.register(
            "wellpulse_api_responses",
            "HTTP API responses by status class",
            self.responses.clone(),
        );
        registry.register(
            "wellpulse_api_timeouts",
            "Requests answered 503 because they exceeded the request timeout",
            self.timeouts.clone(),
        );
    }
}

/// Layer 1: removes a caller's `x-request-id` that is not a sane token.
pub(crate) async fn drop_insane_request_id(mut request: Request) -> Request {
    let sane = request
        .headers()
        .get(&X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .is_some_and(is_sane_id);
    if !sane {
        request.headers_mut().remove(&X_REQUEST_ID);
    }
    request
}

fn is_sane_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Layer 2's id maker: a UUID v4 in hex (32 characters).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct MakeHexId;

impl MakeRequestId for MakeHexId {
    fn make_request_id<B>(&mut self, _: &axum::http::Request<B>) -> Option<RequestId> {
        HeaderValue::from_str(&uuid::Uuid::new_v4().simple().to_string())
            .ok()
            .map(RequestId::new)
    }
}

/// Layer 3's span: the request id, method and path.
pub(crate) fn span_for(request: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    let id = request
        .headers()
        .get(&X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    tracing::info_span!(
        "http",
        request_id = %id,
        method = %request.method(),
        path = %request.uri().path(),
    )
}

/// Layer 4; see the module docs.
pub(crate) async fn scope_and_count(
    State(state): State<ApiState>,
    request: Request,
    next: Next,
) -> Response {
    let id = request
        .headers()
        .get(&X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let timeout = state.options().request_timeout;
    let metrics = Arc::clone(&state.metrics);
    REQUEST_ID
        .scope(id, async move {
            let mut response = next.run(request).await;
            // Every API error carries a JSON body; a bare 503 is the timeout layer's.
            let bare = !response.headers().contains_key(header::CONTENT_TYPE);
            if response.status() == StatusCode::SERVICE_UNAVAILABLE && bare {
                metrics.timeouts.inc();
                response = ApiError::Timeout(timeout).into_response();
            }
            metrics.record(response.status());
            response
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_header(value: &str) -> Request {
        Request::builder()
            .header("x-request-id", value)
            .body(axum::body::Body::empty())
            .unwrap()
    }

    #[tokio::test]
    async fn sane_incoming_ids_are_kept_others_dropped() {
        let kept = drop_insane_request_id(with_header("abc-123.x_y")).await;
        assert_eq!(kept.headers()["x-request-id"], "abc-123.x_y");
        for bad in ["", "has space", &"a".repeat(65), "semi;colon"] {
            let dropped = drop_insane_request_id(with_header(bad)).await;
            assert!(!dropped.headers().contains_key("x-request-id"), "{bad:?}");
        }
        let id = MakeHexId.make_request_id(&with_header("x")).unwrap();
        assert_eq!(id.header_value().len(), 32);
    }

    #[test]
    fn responses_are_counted_by_class() {
        let metrics = ApiMetrics::default();
        metrics.record(StatusCode::OK);
        metrics.record(StatusCode::NOT_FOUND);
        metrics.record(StatusCode::BAD_REQUEST);
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(
            text.contains("wellpulse_api_responses_total{class=\"2xx\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("wellpulse_api_responses_total{class=\"4xx\"} 2\n"),
            "{text}"
        );
        assert!(text.contains("wellpulse_api_timeouts_total 0\n"), "{text}");
    }
}
