//! Stripe for tests, never the real one:
//!
//! - [`LocalStripe`]: `localstripe` (PyPI), a stateful Stripe-compatible server, started
//!   on a free loopback port by `localstripe_server.py` beside this crate, which prints
//!   `READY <port>` once it listens (the helper waits on that line, not on time) and stops
//!   when the helper is dropped (its standard input closes).
//! - [`FakeStripe`]: what localstripe lacks — Checkout Sessions, Customer Portal sessions,
//!   Billing Meter events and their summaries — plus customers (idempotency keys honoured)
//!   and invoices set by the test. Every request body is checked against the parameters
//!   Stripe's API reference documents for the endpoint (unknown or missing parameters are
//!   answered 400 `invalid_request_error`, as Stripe does) and recorded for the test to
//!   read. Meter events are deduplicated by `identifier` as Stripe does; a test can make
//!   the fake accept an event and then answer 500 (a lost response), so the sender retries.
//! - [`sign`]: a `Stripe-Signature` header made by Stripe's official Python library
//!   (`stripe.WebhookSignature`), never by our own code.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::process::{Child, Command};

/// Billing options for tests against a fake or local Stripe at `api_base`: the `standard`
/// plan with prices `price_standard_{base,wells,samples}`, meters `mtr_wells`
/// (`wellpulse_active_wells`) and `mtr_samples` (`wellpulse_samples`), webhook secrets
/// `secrets`, a 7-day grace and a 30-day retention, one attempt per call (tests drive
/// retries themselves).
pub fn billing_options(api_base: &str, secrets: &[&str]) -> billing::BillingOptions {
    billing::BillingOptions {
        stripe: billing::StripeOptions {
            api_base: api_base.parse().expect("a URL"),
            api_key: base::Secret::new("sk_test_wellpulse"),
            api_version: billing::client::DEFAULT_API_VERSION.to_owned(),
            timeout: std::time::Duration::from_secs(10),
            max_attempts: 1,
            backoff_min: std::time::Duration::from_millis(10),
            backoff_max: std::time::Duration::from_millis(20),
        },
        webhook_secrets: secrets.iter().map(|s| base::Secret::new(*s)).collect(),
        tolerance_secs: billing::signature::DEFAULT_TOLERANCE_SECS,
        policy: billing::Policy {
            grace_secs: 7 * 86_400,
            retention_secs: 30 * 86_400,
        },
        plans: [(
            "standard".to_owned(),
            billing::PlanPrices {
                base_price: "price_standard_base".into(),
                active_wells_price: "price_standard_wells".into(),
                samples_price: "price_standard_samples".into(),
                monthly_fee: 49_900,
            },
        )]
        .into(),
        active_wells_meter: billing::Meter {
            event_name: "wellpulse_active_wells".into(),
            id: "mtr_wells".into(),
        },
        samples_meter: billing::Meter {
            event_name: "wellpulse_samples".into(),
            id: "mtr_samples".into(),
        },
        success_url:
            "https://wellpulse.test/t/{TENANT}/admin/billing?checkout=done&session={CHECKOUT_SESSION_ID}"
                .into(),
        cancel_url: "https://wellpulse.test/t/{TENANT}/admin/billing?checkout=cancelled".into(),
        portal_return_url: "https://wellpulse.test/t/{TENANT}/admin/billing".into(),
    }
}

/// The meters of [`billing_options`], for [`FakeStripe::start`].
pub const FAKE_METERS: [(&str, &str); 2] = [
    ("mtr_wells", "wellpulse_active_wells"),
    ("mtr_samples", "wellpulse_samples"),
];

/// A running localstripe on 127.0.0.1.
pub struct LocalStripe {
    port: u16,
    _child: Child,
}

impl LocalStripe {
    /// Starts localstripe and waits until it listens.
    pub async fn start() -> LocalStripe {
        let crate::python::Helper {
            child,
            port,
            mut lines,
        } = crate::python::start(
            "localstripe_server.py",
            "localstripe",
            "scripts/services.sh installs it",
        )
        .await;
        // Keep draining its output so it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        LocalStripe {
            port,
            _child: child,
        }
    }

    /// Its base URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Makes localstripe deliver every event to `url`, signed with `secret` (its own
    /// `/_config/webhooks` extension).
    pub async fn register_webhook(&self, url: &str, secret: &str) {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("url", url)
            .append_pair("secret", secret)
            .finish();
        let r = crate::http::send(
            std::net::SocketAddr::from(([127, 0, 0, 1], self.port)),
            "POST",
            "/_config/webhooks/wellpulse",
            &[("content-type", "application/x-www-form-urlencoded")],
            Some(body.as_bytes()),
        )
        .await;
        assert_eq!(r.status, 200, "registering the webhook: {}", r.text());
    }
}

/// A `Stripe-Signature` header for `payload` signed at `timestamp` with `secret`, made by
/// Stripe's Python library (`stripe.WebhookSignature._compute_signature`, what
/// `stripe.Webhook.construct_event` checks against). The secret goes through the
/// environment, never a command line.
pub async fn sign(payload: &[u8], secret: &str, timestamp: i64) -> String {
    let script = "import os, sys, stripe\n\
        payload = sys.stdin.buffer.read().decode('utf-8')\n\
        t = int(os.environ['WP_SIGN_AT'])\n\
        mac = stripe.WebhookSignature._compute_signature('%d.%s' % (t, payload), os.environ['WP_SIGN_SECRET'])\n\
        print('t=%d,%s=%s' % (t, stripe.WebhookSignature.EXPECTED_SCHEME, mac))\n";
    let mut child = Command::new("python3")
        .args(["-c", script])
        .env("WP_SIGN_SECRET", secret)
        .env("WP_SIGN_AT", timestamp.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 with stripe (scripts/services.sh installs it)");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(payload).await.expect("write payload");
    drop(stdin);
    let out = child.wait_with_output().await.expect("python3 signs");
    assert!(
        out.status.success(),
        "stripe's library failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .to_owned()
}

/// Whether Stripe's Python library accepts `header` for `payload` under `secret` now
/// (`stripe.Webhook.construct_event`).
pub async fn stripe_library_accepts(payload: &[u8], header: &str, secret: &str) -> bool {
    let script = "import os, sys, stripe\n\
        payload = sys.stdin.buffer.read().decode('utf-8')\n\
        try:\n    stripe.Webhook.construct_event(payload, os.environ['WP_SIGN_HEADER'], os.environ['WP_SIGN_SECRET'])\n    print('ok')\n\
        except Exception as e:\n    print('refused', e)\n";
    let mut child = Command::new("python3")
        .args(["-c", script])
        .env("WP_SIGN_SECRET", secret)
        .env("WP_SIGN_HEADER", header)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 with stripe");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(payload).await.expect("write payload");
    drop(stdin);
    let out = child.wait_with_output().await.expect("python3 runs");
    String::from_utf8_lossy(&out.stdout).starts_with("ok")
}

/// One request the fake received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// Method.
    pub method: String,
    /// Path.
    pub path: String,
    /// Form (or query) parameters in order.
    pub params: Vec<(String, String)>,
    /// `Idempotency-Key`.
    pub idempotency_key: Option<String>,
    /// `Stripe-Version`.
    pub stripe_version: Option<String>,
    /// Whether a bearer key was sent.
    pub authorized: bool,
}

impl Recorded {
    /// The value of a parameter.
    pub fn param(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// A meter event the fake counted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CountedEvent {
    /// `event_name`.
    pub event_name: String,
    /// `payload[stripe_customer_id]`.
    pub customer: String,
    /// `payload[value]`.
    pub value: i64,
    /// `timestamp`.
    pub timestamp: i64,
}

#[derive(Default)]
struct FakeState {
    requests: Vec<Recorded>,
    customers: BTreeMap<String, String>,
    meters: BTreeMap<String, String>,
    events: BTreeMap<String, CountedEvent>,
    lose_meter_responses: u32,
    invoices: BTreeMap<String, Value>,
    subscriptions: BTreeMap<String, Value>,
    /// Checkout Sessions created, by id: their parameters.
    sessions: BTreeMap<String, Vec<(String, String)>>,
    next: u64,
}

/// The fake Stripe (see the module doc).
#[derive(Clone)]
pub struct FakeStripe {
    addr: std::net::SocketAddr,
    state: Arc<Mutex<FakeState>>,
}

fn stripe_error(status: StatusCode, message: impl Into<String>) -> Response {
    (
        status,
        axum::Json(json!({ "error": {
            "type": "invalid_request_error", "code": "parameter_invalid", "message": message.into(),
        }})),
    )
        .into_response()
}

/// The top-level name of a form key (`line_items[0][price]` → `line_items`).
fn root(key: &str) -> &str {
    key.split('[').next().unwrap_or(key)
}

/// Checks `params` against the documented parameters of an endpoint: every key's root is
/// documented, every required key is present.
fn check(
    params: &[(String, String)],
    documented: &[&str],
    required: &[&str],
) -> Result<(), String> {
    for (k, _) in params {
        if !documented.contains(&root(k)) {
            return Err(format!("Received unknown parameter: {k}"));
        }
    }
    for r in required {
        if !params.iter().any(|(k, _)| k == r) {
            return Err(format!("Missing required param: {r}."));
        }
    }
    Ok(())
}

fn parse_form(text: &str) -> Vec<(String, String)> {
    url::form_urlencoded::parse(text.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

impl FakeStripe {
    /// Starts the fake on a free loopback port. `meters` maps each meter id (`mtr_…`) to
    /// its `event_name`.
    pub async fn start(meters: &[(&str, &str)]) -> FakeStripe {
        let state = Arc::new(Mutex::new(FakeState {
            meters: meters
                .iter()
                .map(|(id, name)| ((*id).to_owned(), (*name).to_owned()))
                .collect(),
            ..FakeState::default()
        }));
        let app = Router::new()
            .route("/v1/customers", post(customers))
            .route("/v1/checkout/sessions", post(checkout))
            .route("/v1/billing_portal/sessions", post(portal))
            .route("/v1/billing/meter_events", post(meter_event))
            .route("/v1/billing/meters/{id}/event_summaries", get(summaries))
            .route("/v1/invoices", get(list_invoices))
            .route("/v1/invoices/upcoming", get(upcoming))
            .route("/v1/invoices/{id}", get(get_invoice))
            .route("/v1/subscriptions/{id}", get(get_subscription))
            .with_state(Arc::clone(&state));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeStripe { addr, state }
    }

    /// Its base URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state.lock().unwrap().requests.clone()
    }

    /// The meter events counted (one per identifier).
    pub fn counted(&self) -> Vec<CountedEvent> {
        self.state
            .lock()
            .unwrap()
            .events
            .values()
            .cloned()
            .collect()
    }

    /// The next `n` meter events are counted, then answered 500 as if the response were
    /// lost on the way back.
    pub fn lose_meter_responses(&self, n: u32) {
        self.state.lock().unwrap().lose_meter_responses = n;
    }

    /// Sets what `GET /v1/subscriptions/{id}` answers for a subscription.
    pub fn set_subscription(&self, subscription: Value) {
        let id = subscription["id"]
            .as_str()
            .expect("subscription id")
            .to_owned();
        self.state
            .lock()
            .unwrap()
            .subscriptions
            .insert(id, subscription);
    }

    /// Sets what `GET /v1/invoices/{id}` (and the list) answer for an invoice.
    pub fn set_invoice(&self, invoice: Value) {
        let id = invoice["id"].as_str().expect("invoice id").to_owned();
        self.state.lock().unwrap().invoices.insert(id, invoice);
    }

    /// The parameters a Checkout Session was created with, if it was created here.
    pub fn checkout_session(&self, id: &str) -> Option<Recorded> {
        let st = self.state.lock().unwrap();
        st.sessions.get(id).map(|params| Recorded {
            method: "POST".to_owned(),
            path: "/v1/checkout/sessions".to_owned(),
            params: params.clone(),
            idempotency_key: None,
            stripe_version: None,
            authorized: true,
        })
    }
}

/// A webhook event as Stripe sends it (`object` in `data.object`), serialized.
pub fn event(id: &str, kind: &str, created: i64, object: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "id": id, "object": "event", "type": kind, "created": created,
        "api_version": billing::client::DEFAULT_API_VERSION, "livemode": false,
        "data": { "object": object },
    }))
    .expect("JSON")
}

/// An invoice of subscription `sub_1` (`paid` ones fully paid), in US cents.
pub fn invoice(id: &str, customer: &str, created: i64, status: &str, amount: i64) -> Value {
    json!({
        "id": id, "object": "invoice", "customer": customer, "subscription": "sub_1",
        "created": created, "status": status, "amount_due": amount,
        "amount_paid": if status == "paid" { amount } else { 0 }, "currency": "usd",
        "hosted_invoice_url": format!("https://invoice.stripe.test/{id}"),
    })
}

/// Subscription `sub_1` of `customer`, active since `created`, to `prices`.
pub fn subscription(customer: &str, created: i64, prices: &[&str]) -> Value {
    let items: Vec<Value> = prices
        .iter()
        .enumerate()
        .map(|(i, p)| json!({ "id": format!("si_{i}"), "price": { "id": p } }))
        .collect();
    json!({ "id": "sub_1", "object": "subscription", "customer": customer, "status": "active",
            "created": created, "items": { "object": "list", "data": items } })
}

/// A completed subscription Checkout Session of `tenant` (its `client_reference_id`),
/// starting subscription `sub_1`.
pub fn checkout_completed(id: &str, customer: &str, tenant: &str, created: i64) -> Value {
    json!({
        "id": id, "object": "checkout.session", "customer": customer,
        "subscription": "sub_1", "client_reference_id": tenant, "created": created,
        "mode": "subscription", "payment_status": "paid",
    })
}

/// Delivers `body` to the API at `addr` as Stripe does: `POST /api/v1/billing/webhook`
/// signed now with `secret` by Stripe's library. Returns the answer.
pub async fn deliver(
    addr: std::net::SocketAddr,
    body: &[u8],
    secret: &str,
) -> crate::http::Response {
    let header = sign(body, secret, chrono::Utc::now().timestamp()).await;
    crate::http::send(
        addr,
        "POST",
        "/api/v1/billing/webhook",
        &[
            ("content-type", "application/json"),
            ("stripe-signature", &header),
        ],
        Some(body),
    )
    .await
}

type Shared = State<Arc<Mutex<FakeState>>>;

fn record(
    state: &Mutex<FakeState>,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    params: &[(String, String)],
) {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    state.lock().unwrap().requests.push(Recorded {
        method: method.to_string(),
        path: path.to_owned(),
        params: params.to_vec(),
        idempotency_key: header("idempotency-key"),
        stripe_version: header("stripe-version"),
        authorized: header("authorization").is_some_and(|a| a.starts_with("Bearer sk_")),
    });
}

fn unauthorized(headers: &HeaderMap) -> Option<Response> {
    let ok = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.starts_with("Bearer sk_"));
    (!ok).then(|| stripe_error(StatusCode::UNAUTHORIZED, "Invalid API Key provided"))
}

async fn customers(State(s): Shared, headers: HeaderMap, body: String) -> Response {
    let params = parse_form(&body);
    record(&s, &Method::POST, "/v1/customers", &headers, &params);
    if let Some(r) = unauthorized(&headers) {
        return r;
    }
    if let Err(e) = check(
        &params,
        &[
            "name",
            "description",
            "email",
            "metadata",
            "phone",
            "address",
            "expand",
        ],
        &[],
    ) {
        return stripe_error(StatusCode::BAD_REQUEST, e);
    }
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut st = s.lock().unwrap();
    st.next += 1;
    let fresh = format!("cus_fake{}", st.next);
    let id = match key {
        Some(k) => st.customers.entry(k).or_insert(fresh).clone(),
        None => fresh,
    };
    axum::Json(json!({ "id": id, "object": "customer" })).into_response()
}

async fn checkout(State(s): Shared, headers: HeaderMap, body: String) -> Response {
    let params = parse_form(&body);
    record(
        &s,
        &Method::POST,
        "/v1/checkout/sessions",
        &headers,
        &params,
    );
    if let Some(r) = unauthorized(&headers) {
        return r;
    }
    // Stripe's API reference, Create a Checkout Session (the parameters we may use).
    let documented = [
        "mode",
        "customer",
        "client_reference_id",
        "success_url",
        "cancel_url",
        "line_items",
        "subscription_data",
        "metadata",
        "allow_promotion_codes",
        "billing_address_collection",
        "customer_update",
        "locale",
        "expand",
        "ui_mode",
        "automatic_tax",
        "tax_id_collection",
        "payment_method_types",
        "expires_at",
    ];
    if let Err(e) = check(&params, &documented, &["mode", "line_items[0][price]"]) {
        return stripe_error(StatusCode::BAD_REQUEST, e);
    }
    let get = |k: &str| params.iter().find(|(p, _)| p == k).map(|(_, v)| v.as_str());
    if !matches!(get("mode"), Some("payment" | "setup" | "subscription")) {
        return stripe_error(StatusCode::BAD_REQUEST, "Invalid mode");
    }
    if get("success_url").is_none() && get("ui_mode") != Some("embedded") {
        return stripe_error(
            StatusCode::BAD_REQUEST,
            "Missing required param: success_url.",
        );
    }
    if get("client_reference_id").is_some_and(|c| c.len() > 200) {
        return stripe_error(StatusCode::BAD_REQUEST, "client_reference_id is too long");
    }
    for (k, v) in &params {
        if k.starts_with("line_items[") && k.ends_with("[price]") && !v.starts_with("price_") {
            return stripe_error(StatusCode::BAD_REQUEST, format!("No such price: '{v}'"));
        }
        if k.starts_with("line_items[") && k.ends_with("[quantity]") && v.parse::<u32>().is_err() {
            return stripe_error(StatusCode::BAD_REQUEST, format!("Invalid integer: {v}"));
        }
    }
    let mut st = s.lock().unwrap();
    st.next += 1;
    let id = format!("cs_test_fake{}", st.next);
    st.sessions.insert(id.clone(), params.clone());
    axum::Json(json!({
        "id": id, "object": "checkout.session", "mode": get("mode"),
        "customer": get("customer"), "client_reference_id": get("client_reference_id"),
        "url": format!("https://checkout.stripe.test/c/pay/{id}"),
    }))
    .into_response()
}

async fn portal(State(s): Shared, headers: HeaderMap, body: String) -> Response {
    let params = parse_form(&body);
    record(
        &s,
        &Method::POST,
        "/v1/billing_portal/sessions",
        &headers,
        &params,
    );
    if let Some(r) = unauthorized(&headers) {
        return r;
    }
    // Stripe's API reference, Create a portal session.
    let documented = [
        "customer",
        "return_url",
        "configuration",
        "flow_data",
        "locale",
        "on_behalf_of",
        "expand",
    ];
    if let Err(e) = check(&params, &documented, &["customer"]) {
        return stripe_error(StatusCode::BAD_REQUEST, e);
    }
    let mut st = s.lock().unwrap();
    st.next += 1;
    let id = format!("bps_fake{}", st.next);
    axum::Json(json!({
        "id": id, "object": "billing_portal.session",
        "url": format!("https://billing.stripe.test/p/session/{id}"),
    }))
    .into_response()
}

async fn meter_event(State(s): Shared, headers: HeaderMap, body: String) -> Response {
    let params = parse_form(&body);
    record(
        &s,
        &Method::POST,
        "/v1/billing/meter_events",
        &headers,
        &params,
    );
    if let Some(r) = unauthorized(&headers) {
        return r;
    }
    // Stripe's API reference, Create a billing meter event.
    let documented = ["event_name", "payload", "identifier", "timestamp", "expand"];
    if let Err(e) = check(
        &params,
        &documented,
        &[
            "event_name",
            "payload[stripe_customer_id]",
            "payload[value]",
        ],
    ) {
        return stripe_error(StatusCode::BAD_REQUEST, e);
    }
    let get = |k: &str| {
        params
            .iter()
            .find(|(p, _)| p == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let Ok(value) = get("payload[value]").parse::<i64>() else {
        return stripe_error(
            StatusCode::BAD_REQUEST,
            "payload[value] must be a whole number",
        );
    };
    let timestamp = get("timestamp").parse::<i64>().unwrap_or(0);
    let now = chrono::Utc::now().timestamp();
    if timestamp != 0 && (timestamp < now - 35 * 86_400 || timestamp > now + 300) {
        return stripe_error(
            StatusCode::BAD_REQUEST,
            "timestamp must be within the past 35 calendar days or up to 5 minutes in the future",
        );
    }
    let identifier = get("identifier");
    if identifier.len() > 100 || get("event_name").len() > 100 {
        return stripe_error(StatusCode::BAD_REQUEST, "identifier or event_name too long");
    }
    let mut st = s.lock().unwrap();
    if !st.meters.values().any(|n| *n == get("event_name")) {
        return stripe_error(
            StatusCode::BAD_REQUEST,
            "No active meter for this event_name",
        );
    }
    // Stripe enforces an identifier's uniqueness: a repeat is not counted again.
    st.events.entry(identifier.clone()).or_insert(CountedEvent {
        event_name: get("event_name"),
        customer: get("payload[stripe_customer_id]"),
        value,
        timestamp,
    });
    if st.lose_meter_responses > 0 {
        st.lose_meter_responses -= 1;
        return (StatusCode::INTERNAL_SERVER_ERROR, "response lost").into_response();
    }
    axum::Json(json!({
        "object": "billing.meter_event", "event_name": get("event_name"),
        "identifier": identifier, "timestamp": timestamp,
        "payload": { "stripe_customer_id": get("payload[stripe_customer_id]"), "value": get("payload[value]") },
    }))
    .into_response()
}

async fn summaries(
    State(s): Shared,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let params = parse_form(query.as_deref().unwrap_or(""));
    let path = format!("/v1/billing/meters/{id}/event_summaries");
    record(&s, &Method::GET, &path, &headers, &params);
    if let Some(r) = unauthorized(&headers) {
        return r;
    }
    // Stripe's API reference, List billing meter event summaries.
    let documented = [
        "customer",
        "start_time",
        "end_time",
        "value_grouping_window",
        "limit",
        "starting_after",
        "ending_before",
        "expand",
    ];
    if let Err(e) = check(
        &params,
        &documented,
        &["customer", "start_time", "end_time"],
    ) {
        return stripe_error(StatusCode::BAD_REQUEST, e);
    }
    let get = |k: &str| params.iter().find(|(p, _)| p == k).map(|(_, v)| v.clone());
    let (Some(start), Some(end)) = (
        get("start_time").and_then(|v| v.parse::<i64>().ok()),
        get("end_time").and_then(|v| v.parse::<i64>().ok()),
    ) else {
        return stripe_error(
            StatusCode::BAD_REQUEST,
            "start_time and end_time are timestamps",
        );
    };
    if start % 60 != 0 || end % 60 != 0 || start >= end {
        return stripe_error(
            StatusCode::BAD_REQUEST,
            "times must be aligned with minute boundaries",
        );
    }
    let window = match get("value_grouping_window").as_deref() {
        None => end - start,
        Some("day") => 86_400,
        Some("hour") => 3600,
        Some(_) => return stripe_error(StatusCode::BAD_REQUEST, "Invalid value_grouping_window"),
    };
    let st = s.lock().unwrap();
    let Some(name) = st.meters.get(&id).cloned() else {
        return stripe_error(StatusCode::NOT_FOUND, format!("No such meter: '{id}'"));
    };
    let customer = get("customer").unwrap_or_default();
    let mut data = Vec::new();
    let mut t = start;
    while t < end {
        let w_end = (t + window).min(end);
        let value: i64 = st
            .events
            .values()
            .filter(|e| e.event_name == name && e.customer == customer)
            .filter(|e| t <= e.timestamp && e.timestamp < w_end)
            .map(|e| e.value)
            .sum();
        data.push(json!({
            "id": format!("mtrusg_{t}"), "object": "billing.meter_event_summary",
            "aggregated_value": value as f64, "start_time": t, "end_time": w_end, "meter": id,
        }));
        t = w_end;
    }
    axum::Json(json!({ "object": "list", "data": data, "has_more": false })).into_response()
}

async fn list_invoices(State(s): Shared, headers: HeaderMap, RawQuery(q): RawQuery) -> Response {
    let params = parse_form(q.as_deref().unwrap_or(""));
    record(&s, &Method::GET, "/v1/invoices", &headers, &params);
    if let Some(r) = unauthorized(&headers) {
        return r;
    }
    let customer = params
        .iter()
        .find(|(k, _)| k == "customer")
        .map(|(_, v)| v.clone());
    let st = s.lock().unwrap();
    let data: Vec<Value> = st
        .invoices
        .values()
        .filter(|i| customer.is_none() || i["customer"].as_str() == customer.as_deref())
        .cloned()
        .collect();
    axum::Json(json!({ "object": "list", "data": data, "has_more": false })).into_response()
}

async fn upcoming(State(s): Shared, headers: HeaderMap, RawQuery(q): RawQuery) -> Response {
    let params = parse_form(q.as_deref().unwrap_or(""));
    record(&s, &Method::GET, "/v1/invoices/upcoming", &headers, &params);
    if let Some(r) = unauthorized(&headers) {
        return r;
    }
    // A customer with an active subscription set by the test has its next period's
    // invoice: the plan's base fee, a month after the subscription started.
    let customer = params
        .iter()
        .find(|(k, _)| k == "customer")
        .map(|(_, v)| v.as_str());
    let st = s.lock().unwrap();
    let next = st.subscriptions.values().find(|sub| {
        customer.is_some() && sub["customer"].as_str() == customer && sub["status"] == "active"
    });
    match next {
        Some(sub) => axum::Json(json!({
            "object": "invoice", "customer": customer, "subscription": sub["id"],
            "status": "draft", "amount_due": 49_900, "amount_paid": 0, "currency": "usd",
            "created": sub["created"].as_i64().unwrap_or(0) + 30 * 86_400,
        }))
        .into_response(),
        None => stripe_error(StatusCode::NOT_FOUND, "No upcoming invoices for customer"),
    }
}

async fn get_invoice(State(s): Shared, Path(id): Path<String>, headers: HeaderMap) -> Response {
    record(
        &s,
        &Method::GET,
        &format!("/v1/invoices/{id}"),
        &headers,
        &[],
    );
    if let Some(r) = unauthorized(&headers) {
        return r;
    }
    match s.lock().unwrap().invoices.get(&id) {
        Some(i) => axum::Json(i.clone()).into_response(),
        None => stripe_error(StatusCode::NOT_FOUND, format!("No such invoice: '{id}'")),
    }
}

async fn get_subscription(
    State(s): Shared,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    record(
        &s,
        &Method::GET,
        &format!("/v1/subscriptions/{id}"),
        &headers,
        &[],
    );
    if let Some(r) = unauthorized(&headers) {
        return r;
    }
    match s.lock().unwrap().subscriptions.get(&id) {
        Some(v) => axum::Json(v.clone()).into_response(),
        None => stripe_error(
            StatusCode::NOT_FOUND,
            format!("No such subscription: '{id}'"),
        ),
    }
}
