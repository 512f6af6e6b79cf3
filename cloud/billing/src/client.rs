//! A small Stripe API client: the calls billing makes, form-encoded as Stripe's API takes
//! them, and nothing else. The only module of this crate that does I/O.
//!
//! - Every create call carries an `Idempotency-Key` chosen by the caller from what it
//!   creates (`wp-customer-<tenant id>`, …), so a retry — ours or after a crash — never
//!   creates twice.
//! - Every request pins `Stripe-Version` ([`StripeOptions::api_version`]) and sends the
//!   secret key as a bearer token; the key is a [`Secret`], never in `Debug` or a log.
//! - Failures are classified ([`StripeError::transience`]): network errors, 409 (an
//!   idempotent request still in flight), 429 and 5xx are retried with [`Backoff`] up to
//!   `max_attempts`; other 4xx are the request's fault and returned at once.
//! - Billing Meter events (`POST /v1/billing/meter_events`) carry an `identifier`, so a
//!   retry after a timeout is counted once by Stripe. Legacy usage records are not used.
//!
//! TLS is rustls with ring handed to reqwest (`use_preconfigured_tls`), as for alert
//! delivery; `api_base` may be `http://127.0.0.1:…` for a local Stripe-compatible server
//! (tests and the demo run `localstripe`).

use std::sync::Arc;
use std::time::Duration;

use base::{Backoff, Secret, Transience};
/// The HTTP method of [`Stripe::call`].
pub use reqwest::Method;
use serde_json::Value;

/// Where and how to reach Stripe.
#[derive(Debug, Clone)]
pub struct StripeOptions {
    /// `https://api.stripe.com` in production.
    pub api_base: url::Url,
    /// The secret API key (`sk_…`, or a restricted `rk_…`).
    pub api_key: Secret,
    /// The pinned `Stripe-Version`.
    pub api_version: String,
    /// Longest one attempt may take.
    pub timeout: Duration,
    /// Attempts per call (1 = no retry).
    pub max_attempts: u32,
    /// First retry delay.
    pub backoff_min: Duration,
    /// Largest retry delay.
    pub backoff_max: Duration,
}

/// The API version requests pin: Billing Meters are there and so is the upcoming-invoice
/// preview; legacy usage records, which we never use, are still documented in it.
pub const DEFAULT_API_VERSION: &str = "2024-09-30.acacia";

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum StripeError {
    /// Stripe answered with an error status.
    #[error("Stripe answered {status}: {kind} {code}: {message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// `error.type`.
        kind: String,
        /// `error.code` (may be empty).
        code: String,
        /// `error.message`.
        message: String,
    },
    /// Stripe could not be reached or did not answer in time.
    #[error("cannot reach Stripe: {0}")]
    Network(String),
    /// The answer was not the JSON expected.
    #[error("unexpected answer from Stripe: {0}")]
    Decode(String),
    /// The client could not be built (TLS configuration).
    #[error("Stripe client: {0}")]
    Setup(String),
}

impl StripeError {
    /// Whether retrying can succeed.
    pub fn transience(&self) -> Transience {
        match self {
            StripeError::Network(_) => Transience::Temporary,
            StripeError::Api { status, .. }
                if *status == 409 || *status == 429 || *status >= 500 =>
            {
                Transience::Temporary
            }
            _ => Transience::Permanent,
        }
    }

    /// The HTTP status of an API error.
    pub fn status(&self) -> Option<u16> {
        match self {
            StripeError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// Form parameters in order (`line_items[0][price]` style keys).
pub type Form = Vec<(String, String)>;

fn param(form: &mut Form, key: impl Into<String>, value: impl Into<String>) {
    form.push((key.into(), value.into()));
}

/// A Stripe client. Cheap to clone.
#[derive(Clone)]
pub struct Stripe {
    http: reqwest::Client,
    options: Arc<StripeOptions>,
}

impl std::fmt::Debug for Stripe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stripe")
            .field("api_base", &self.options.api_base.as_str())
            .field("api_version", &self.options.api_version)
            .finish_non_exhaustive()
    }
}

/// A summary of a meter's events over one window.
#[derive(Debug, Clone, PartialEq)]
pub struct MeterSummary {
    /// Window start (unix seconds).
    pub start_time: i64,
    /// Window end (unix seconds, exclusive).
    pub end_time: i64,
    /// Sum (or count) of the events in the window.
    pub aggregated_value: f64,
}

impl Stripe {
    /// A client trusting Mozilla's roots.
    pub fn new(options: StripeOptions) -> Result<Stripe, StripeError> {
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| StripeError::Setup(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(options.timeout)
            .timeout(options.timeout)
            .user_agent(concat!("wellpulse-cloud/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| StripeError::Setup(e.to_string()))?;
        Ok(Stripe {
            http,
            options: Arc::new(options),
        })
    }

    /// The options.
    pub fn options(&self) -> &StripeOptions {
        &self.options
    }

    async fn once(
        &self,
        method: reqwest::Method,
        path: &str,
        form: &Form,
        idempotency_key: Option<&str>,
    ) -> Result<Value, StripeError> {
        let url = self
            .options
            .api_base
            .join(path)
            .map_err(|e| StripeError::Setup(format!("bad path {path:?}: {e}")))?;
        let mut req = self
            .http
            .request(method.clone(), url)
            .bearer_auth(self.options.api_key.expose())
            .header("Stripe-Version", &self.options.api_version);
        if let Some(key) = idempotency_key {
            req = req.header("Idempotency-Key", key);
        }
        req = if method == reqwest::Method::GET {
            req.query(form)
        } else {
            req.form(form)
        };
        let response = req.send().await.map_err(|e| {
            if e.is_builder() {
                StripeError::Setup(e.without_url().to_string())
            } else {
                StripeError::Network(e.without_url().to_string())
            }
        })?;
        let status = response.status().as_u16();
        let body = response
            .bytes()
            .await
            .map_err(|e| StripeError::Network(e.without_url().to_string()))?;
        let json: Value = serde_json::from_slice(&body).map_err(|e| {
            if status >= 500 {
                StripeError::Api {
                    status,
                    kind: "api_error".into(),
                    code: String::new(),
                    message: "non-JSON error body".into(),
                }
            } else {
                StripeError::Decode(format!("{path}: {e}"))
            }
        })?;
        if (200..300).contains(&status) {
            return Ok(json);
        }
        let error = json.get("error").cloned().unwrap_or(Value::Null);
        let field = |k: &str| {
            error
                .get(k)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned()
        };
        Err(StripeError::Api {
            status,
            kind: field("type"),
            code: field("code"),
            message: field("message"),
        })
    }

    /// One call with retries on temporary failures.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        form: &Form,
        idempotency_key: Option<&str>,
    ) -> Result<Value, StripeError> {
        let mut backoff = Backoff::new(self.options.backoff_min, self.options.backoff_max);
        let mut attempt = 1;
        loop {
            match self.once(method.clone(), path, form, idempotency_key).await {
                Ok(v) => return Ok(v),
                Err(e) if e.transience().is_temporary() && attempt < self.options.max_attempts => {
                    let delay = backoff.next_delay();
                    tracing::warn!(error = %e, path, attempt, ?delay, "Stripe call failed; retrying");
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn id(v: &Value, what: &str) -> Result<String, StripeError> {
        v.get("id")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| StripeError::Decode(format!("{what} without an id")))
    }

    /// Creates the tenant's customer (idempotency key `wp-customer-<tenant id>`: created
    /// once). Returns its id.
    pub async fn create_customer(
        &self,
        tenant_id: i64,
        slug: &str,
        name: &str,
    ) -> Result<String, StripeError> {
        let mut form = Form::new();
        param(&mut form, "name", name);
        param(&mut form, "description", format!("WellPulse tenant {slug}"));
        param(&mut form, "metadata[wellpulse_tenant]", slug);
        let key = format!("wp-customer-{tenant_id}");
        let v = self
            .call(reqwest::Method::POST, "/v1/customers", &form, Some(&key))
            .await?;
        Stripe::id(&v, "customer")
    }

    /// Creates a subscription of `customer` to `prices` (the plan's base price and the
    /// metered usage prices). Returns the subscription object. Items name their price as
    /// `items[n][plan]`: Stripe takes a price id there (prices are compatible with the
    /// Plans API), and so does localstripe, which has no `price` parameter.
    pub async fn create_subscription(
        &self,
        customer: &str,
        prices: &[&str],
        idempotency_key: &str,
    ) -> Result<Value, StripeError> {
        let mut form = Form::new();
        param(&mut form, "customer", customer);
        for (i, price) in prices.iter().enumerate() {
            param(&mut form, format!("items[{i}][plan]"), *price);
        }
        self.call(
            reqwest::Method::POST,
            "/v1/subscriptions",
            &form,
            Some(idempotency_key),
        )
        .await
    }

    /// Creates a Checkout Session (mode `subscription`) for `customer`: the base price
    /// with quantity 1, metered prices without a quantity (Stripe refuses one on them).
    /// `client_reference_id` is the tenant slug. Returns the session (`id`, `url`).
    #[allow(clippy::too_many_arguments)]
    pub async fn create_checkout_session(
        &self,
        customer: &str,
        slug: &str,
        base_price: &str,
        metered_prices: &[&str],
        success_url: &str,
        cancel_url: &str,
        idempotency_key: &str,
    ) -> Result<Value, StripeError> {
        let mut form = Form::new();
        param(&mut form, "mode", "subscription");
        param(&mut form, "customer", customer);
        param(&mut form, "client_reference_id", slug);
        param(&mut form, "success_url", success_url);
        param(&mut form, "cancel_url", cancel_url);
        param(&mut form, "line_items[0][price]", base_price);
        param(&mut form, "line_items[0][quantity]", "1");
        for (i, price) in metered_prices.iter().enumerate() {
            param(&mut form, format!("line_items[{}][price]", i + 1), *price);
        }
        param(
            &mut form,
            "subscription_data[metadata][wellpulse_tenant]",
            slug,
        );
        self.call(
            reqwest::Method::POST,
            "/v1/checkout/sessions",
            &form,
            Some(idempotency_key),
        )
        .await
    }

    /// Creates a Customer Portal session (change payment method, plan, cancel). Returns
    /// the session (`id`, `url`).
    pub async fn create_portal_session(
        &self,
        customer: &str,
        return_url: &str,
        idempotency_key: &str,
    ) -> Result<Value, StripeError> {
        let mut form = Form::new();
        param(&mut form, "customer", customer);
        param(&mut form, "return_url", return_url);
        self.call(
            reqwest::Method::POST,
            "/v1/billing_portal/sessions",
            &form,
            Some(idempotency_key),
        )
        .await
    }

    /// The customer's invoices, newest first (at most `limit`, ≤ 100).
    pub async fn list_invoices(
        &self,
        customer: &str,
        limit: u32,
    ) -> Result<Vec<Value>, StripeError> {
        let mut form = Form::new();
        param(&mut form, "customer", customer);
        param(&mut form, "limit", limit.clamp(1, 100).to_string());
        let v = self
            .call(reqwest::Method::GET, "/v1/invoices", &form, None)
            .await?;
        list(v)
    }

    /// The customer's upcoming invoice (the estimate of the period so far); `None` when
    /// there is none to preview (no subscription: Stripe answers 404).
    pub async fn upcoming_invoice(&self, customer: &str) -> Result<Option<Value>, StripeError> {
        let mut form = Form::new();
        param(&mut form, "customer", customer);
        match self
            .call(reqwest::Method::GET, "/v1/invoices/upcoming", &form, None)
            .await
        {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.status() == Some(404) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The current state of an invoice (to decide an out-of-order event).
    pub async fn invoice(&self, id: &str) -> Result<Value, StripeError> {
        self.call(
            reqwest::Method::GET,
            &format!("/v1/invoices/{}", path_segment(id)?),
            &Form::new(),
            None,
        )
        .await
    }

    /// The current state of a subscription (to decide a plan change).
    pub async fn subscription(&self, id: &str) -> Result<Value, StripeError> {
        self.call(
            Method::GET,
            &format!("/v1/subscriptions/{}", path_segment(id)?),
            &Form::new(),
            None,
        )
        .await
    }

    /// Sends one Billing Meter event: `value` for `customer` on the meter whose
    /// `event_name` it is, at `timestamp` (unix seconds), under `identifier` (Stripe
    /// counts an identifier once).
    pub async fn meter_event(
        &self,
        event_name: &str,
        customer: &str,
        value: i64,
        identifier: &str,
        timestamp: i64,
    ) -> Result<Value, StripeError> {
        let mut form = Form::new();
        param(&mut form, "event_name", event_name);
        param(&mut form, "payload[stripe_customer_id]", customer);
        param(&mut form, "payload[value]", value.to_string());
        param(&mut form, "identifier", identifier);
        param(&mut form, "timestamp", timestamp.to_string());
        // The identifier already makes the event idempotent at Stripe; the key makes the
        // request itself idempotent too.
        self.call(
            reqwest::Method::POST,
            "/v1/billing/meter_events",
            &form,
            Some(identifier),
        )
        .await
    }

    /// The meter's per-day summaries for `customer` over `[start, end)` (unix seconds,
    /// aligned to days).
    pub async fn meter_event_summaries(
        &self,
        meter_id: &str,
        customer: &str,
        start: i64,
        end: i64,
    ) -> Result<Vec<MeterSummary>, StripeError> {
        let mut form = Form::new();
        param(&mut form, "customer", customer);
        param(&mut form, "start_time", start.to_string());
        param(&mut form, "end_time", end.to_string());
        param(&mut form, "value_grouping_window", "day");
        param(&mut form, "limit", "100");
        let v = self
            .call(
                reqwest::Method::GET,
                &format!(
                    "/v1/billing/meters/{}/event_summaries",
                    path_segment(meter_id)?
                ),
                &form,
                None,
            )
            .await?;
        list(v)?
            .iter()
            .map(|s| {
                let int = |k: &str| {
                    s.get(k)
                        .and_then(Value::as_i64)
                        .ok_or_else(|| StripeError::Decode(format!("meter summary without {k}")))
                };
                Ok(MeterSummary {
                    start_time: int("start_time")?,
                    end_time: int("end_time")?,
                    aggregated_value: s
                        .get("aggregated_value")
                        .and_then(Value::as_f64)
                        .ok_or_else(|| {
                            StripeError::Decode("meter summary without aggregated_value".into())
                        })?,
                })
            })
            .collect()
    }
}

fn list(v: Value) -> Result<Vec<Value>, StripeError> {
    match v.get("data") {
        Some(Value::Array(items)) => Ok(items.clone()),
        _ => Err(StripeError::Decode("a list without `data`".into())),
    }
}

/// An id fit for a path segment (Stripe ids are `[A-Za-z0-9_]`).
fn path_segment(id: &str) -> Result<&str, StripeError> {
    if !id.is_empty()
        && id.len() <= 255
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        Ok(id)
    } else {
        Err(StripeError::Setup(format!("not a Stripe id: {id:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_classified() {
        let api = |status| StripeError::Api {
            status,
            kind: String::new(),
            code: String::new(),
            message: String::new(),
        };
        for s in [409, 429, 500, 502, 503] {
            assert!(api(s).transience().is_temporary(), "{s}");
        }
        for s in [400, 401, 402, 403, 404] {
            assert!(!api(s).transience().is_temporary(), "{s}");
        }
        assert!(
            StripeError::Network("reset".into())
                .transience()
                .is_temporary()
        );
        assert!(!StripeError::Decode("x".into()).transience().is_temporary());
    }

    #[test]
    fn ids_are_checked_before_reaching_a_path() {
        assert!(path_segment("in_1AbC").is_ok());
        assert!(path_segment("../v1/customers").is_err());
        assert!(path_segment("").is_err());
    }

    #[test]
    fn the_key_is_not_in_debug_output() {
        let stripe = Stripe::new(StripeOptions {
            api_base: "http://127.0.0.1:1".parse().unwrap(),
            api_key: Secret::new("sk_test_secret_value"),
            api_version: DEFAULT_API_VERSION.into(),
            timeout: Duration::from_secs(1),
            max_attempts: 1,
            backoff_min: Duration::from_millis(10),
            backoff_max: Duration::from_millis(10),
        })
        .unwrap();
        assert!(!format!("{stripe:?}").contains("sk_test"));
    }
}
