//! The request middleware: one function wrapping every route and fallback.
//!
//! For each request it
//! 1. takes the caller's `x-request-id` if it is a sane token (1-64 characters of
//!    `[A-Za-z0-9._-]`, so a proxy's id flows through) or makes one (UUID v4, hex);
//! 2. runs the request inside a tracing span carrying that id and in the task-local
//!    [`REQUEST_ID`] scope, so errors rendered anywhere below carry it in their body;
//! 3. bounds it by `request_timeout` (dropping the handler future also drops its
//!    database work) and answers 503 `timeout` when it is exceeded;
//! 4. echoes the id in the `x-request-id` response header, counts the response by status
//!    class ([`ApiMetrics`], rendered by `/metrics`) and logs it at debug level.

use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::Instrument;

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

fn request_id(request: &Request) -> String {
    let sane = |id: &&str| {
        (1..=64).contains(&id.len())
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    };
    request
        .headers()
        .get(&X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(sane)
        .map_or_else(|| uuid::Uuid::new_v4().simple().to_string(), str::to_owned)
}

/// See the module docs.
pub(crate) async fn request_context(
    State(state): State<ApiState>,
    request: Request,
    next: Next,
) -> Response {
    let id = request_id(&request);
    let span = tracing::info_span!(
        "http",
        request_id = %id,
        method = %request.method(),
        path = %request.uri().path(),
    );
    let started = Instant::now();
    let timeout = state.options().request_timeout;
    let metrics = &state.metrics;
    let bounded = async move {
        match tokio::time::timeout(timeout, next.run(request)).await {
            Ok(response) => response,
            Err(_) => {
                metrics.timeouts.inc();
                ApiError::Timeout(timeout).into_response()
            }
        }
    };
    let mut response = REQUEST_ID
        .scope(id.clone(), bounded)
        .instrument(span.clone())
        .await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(X_REQUEST_ID.clone(), value);
    }
    metrics.record(response.status());
    span.in_scope(|| {
        tracing::debug!(
            status = response.status().as_u16(),
            elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
            "request served"
        );
    });
    response
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

    #[test]
    fn sane_incoming_ids_are_kept_others_replaced() {
        assert_eq!(request_id(&with_header("abc-123.x_y")), "abc-123.x_y");
        for bad in ["", "has space", &"a".repeat(65), "semi;colon"] {
            let id = request_id(&with_header(bad));
            assert_eq!(id.len(), 32, "{bad:?} -> {id}");
            assert_ne!(id, bad);
        }
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
