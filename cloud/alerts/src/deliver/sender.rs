//! The HTTP sender: POSTs a rendered [`HttpRequest`] and classifies the outcome.
//!
//! - **TLS is rustls with ring**, configured here ([`rustls::ClientConfig::builder_with_provider`]
//!   with `rustls::crypto::ring::default_provider()`) and handed to reqwest with
//!   `use_preconfigured_tls`: the process never installs a default crypto provider.
//!   Trusted roots: Mozilla's (webpki-roots) plus the system's store, so an on-premises
//!   Alertmanager behind a private CA works once its CA is installed on the host.
//! - **No redirects.** A 3xx is a permanent failure: following it would replay a signed body
//!   (or a PagerDuty routing key) to a host the destination did not name.
//! - **One deadline per attempt** covering connection, TLS, request and response; a time-out
//!   is retryable.
//! - **Classification** ([`Attempt`]): 2xx delivered; 408, 425, 429, 5xx, network errors and
//!   time-outs retryable; other statuses (4xx, 3xx) permanent. The error text holds the
//!   status and at most [`ERROR_BODY_LIMIT`] bytes of the response body, and never the URL
//!   (it may hold credentials) or the request.

use std::sync::Arc;
use std::time::Duration;

use super::HttpRequest;

/// Bytes of an error response's body kept in [`Attempt::Failed::error`].
pub const ERROR_BODY_LIMIT: usize = 2048;

/// The `User-Agent` of deliveries: `WellPulse-Alerts/<version>`.
pub fn user_agent() -> &'static str {
    concat!("WellPulse-Alerts/", env!("CARGO_PKG_VERSION"))
}

/// The outcome of one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// The destination answered 2xx.
    Delivered {
        /// HTTP status.
        status: u16,
    },
    /// Anything else.
    Failed {
        /// HTTP status when there was a response.
        status: Option<u16>,
        /// What went wrong, for people (status, start of the response body, or the
        /// network error); never the URL or the request.
        error: String,
        /// Whether trying again later can succeed (408, 425, 429, 5xx, network errors,
        /// time-outs).
        retryable: bool,
    },
}

impl Attempt {
    /// Whether it was delivered.
    pub fn is_delivered(&self) -> bool {
        matches!(self, Attempt::Delivered { .. })
    }
}

/// Why a [`Sender`] cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum SenderError {
    /// The TLS configuration.
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    /// The HTTP client.
    #[error("HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

/// Sends rendered requests. Cheap to clone (one connection pool shared).
#[derive(Debug, Clone)]
pub struct Sender {
    client: reqwest::Client,
}

impl Sender {
    /// A sender trusting Mozilla's roots and the system's, with `timeout` for each attempt
    /// (connecting included).
    pub fn new(timeout: Duration) -> Result<Sender, SenderError> {
        let mut roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        // The system store adds private CAs; an unreadable one only costs those.
        let native = rustls_native_certs::load_native_certs();
        for error in &native.errors {
            tracing::debug!(%error, "system CA certificates: skipped");
        }
        let (added, ignored) = roots.add_parsable_certificates(native.certs);
        tracing::debug!(
            added,
            ignored,
            "system CA certificates loaded for alert delivery"
        );
        Sender::with_roots(timeout, roots)
    }

    /// A sender trusting exactly `roots` (tests, private deployments).
    pub fn with_roots(
        timeout: Duration,
        roots: rustls::RootCertStore,
    ) -> Result<Sender, SenderError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(timeout)
            .timeout(timeout)
            .user_agent(user_agent())
            .build()?;
        Ok(Sender { client })
    }

    /// POSTs `req` and reports the outcome; never panics, never retries.
    pub async fn send(&self, req: &HttpRequest) -> Attempt {
        let mut builder = self.client.post(&req.url).body(req.body.clone());
        for (name, value) in &req.headers {
            builder = builder.header(name, value);
        }
        let response = match builder.send().await {
            Ok(response) => response,
            Err(e) => {
                // A request that cannot be built (bad URL or header) fails the same way
                // every time; anything on the way (DNS, connect, TLS, time-out) may pass.
                let retryable = !e.is_builder();
                return Attempt::Failed {
                    status: None,
                    error: describe(&e),
                    retryable,
                };
            }
        };
        let status = response.status();
        if status.is_success() {
            return Attempt::Delivered {
                status: status.as_u16(),
            };
        }
        let code = status.as_u16();
        let retryable = matches!(code, 408 | 425 | 429) || status.is_server_error();
        let mut error = format!("HTTP {status}");
        if status.is_redirection() {
            error.push_str(": redirect not followed (point the destination at the final URL)");
        }
        let body = read_prefix(response, ERROR_BODY_LIMIT).await;
        let body = body.trim();
        if !body.is_empty() {
            error.push_str(": ");
            error.push_str(body);
        }
        Attempt::Failed {
            status: Some(code),
            error,
            retryable,
        }
    }
}

/// The first `limit` bytes of the body (less if it fails or ends), as text with control
/// characters replaced by spaces. Stops reading once `limit` is reached.
async fn read_prefix(mut response: reqwest::Response, limit: usize) -> String {
    let mut bytes = Vec::new();
    while bytes.len() < limit {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                bytes.extend_from_slice(&chunk[..chunk.len().min(limit - bytes.len())])
            }
            Ok(None) | Err(_) => break,
        }
    }
    let truncated = bytes.len() >= limit;
    let mut text: String = String::from_utf8_lossy(&bytes)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if truncated {
        text.push('…');
    }
    text
}

/// The error and its causes, without the URL.
fn describe(e: &reqwest::Error) -> String {
    let mut parts = Vec::new();
    if e.is_timeout() {
        parts.push("timed out".to_owned());
    } else if e.is_connect() {
        parts.push("cannot connect".to_owned());
    }
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        let text = cause.to_string();
        if !parts.contains(&text) {
            parts.push(text);
        }
        source = cause.source();
    }
    if parts.is_empty() {
        parts.push(reqwest_kind(e).to_owned());
    }
    parts.join(": ")
}

fn reqwest_kind(e: &reqwest::Error) -> &'static str {
    if e.is_builder() {
        "invalid request (URL or header)"
    } else if e.is_request() {
        "request failed"
    } else if e.is_body() {
        "request body failed"
    } else {
        "HTTP error"
    }
}
