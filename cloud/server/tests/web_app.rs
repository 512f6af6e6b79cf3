//! The web app end to end: the real `wellpulse-cloud run` (embedded broker, ingester with
//! detection, API serving the built `web/dist` through `[api] web_dir`) over a fresh
//! database, set up through the API the way people would (a platform administrator creates
//! the tenant; its administrator, an operator and a viewer accept emailed invitations; a
//! site, a well, a detection rule and a gateway with its device are created), then
//! Playwright drives Debian's Chromium through `web/tests/app.spec.ts`: sign-in, the fleet,
//! an alert that fires *after* the page loaded arriving without a reload, an operator
//! acknowledging it (checked through the API), a viewer seeing no action buttons, the well
//! chart with its alert marker.
//!
//! What the browser cannot do itself — a gateway publishing, an email arriving, an agent
//! starting with the configuration it downloaded, Stripe completing a Checkout Session —
//! it asks of this test through one loopback HTTP server ([`Control`], its routes named
//! by the `WP_*_URL` variables). A second gateway reports the casing pressure of two more
//! wells, which the browser sorts the fleet by while the values change.
//!
//! `web/tests/admin.spec.ts` covers the administration pages (as the tenant administrator
//! and the platform administrator), the pages of emailed links, the role checks and the
//! reports, and billing (against testkit's fake Stripe); every page is checked with
//! axe-core. A well seeded with two years of daily oil shows its production, decline fan
//! chart and emissions on its page, and the models' outlook (its production gap, why it
//! has no emissions forecast, no failure-risk model yet). Screenshots go to
//! `target/tmp/web-screenshots/`, one PNG per page.
//!
//! Needs Node.js, `web/node_modules` and a built `web/dist` (`scripts/services.sh`:
//! `wp_ensure_web`, which `./test.sh` runs); without them the test fails saying so.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use testkit::http;
use testkit::mqtt::*;
use testkit::smtp::SmtpSink;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpListener;
use tokio::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_wellpulse-cloud");
const API_NUMBER: &str = "42-329-40001";
const WELL: &str = "Smith 1H";
/// The two wells whose casing pressure the fleet is sorted by, live.
const CASING_WELLS: [(&str, &str); 2] =
    [("42-329-40011", "Garza 11H"), ("42-329-40012", "Ortiz 12H")];
const WEBHOOK_SECRET: &str = "whsec_wellpulse_web_app_test";

fn web_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../web")
}

fn password() -> String {
    format!("pw-{:032x}", rand::random::<u128>())
}

/// `api`: where the API listens, known before it starts so that Stripe's pages can send
/// the browser back to it.
fn write_config(
    dir: &Path,
    database_url: &str,
    smtp_port: u16,
    stripe: &str,
    api: std::net::SocketAddr,
) -> PathBuf {
    let path = dir.join("cloud.toml");
    let text = format!(
        r#"
[database]
url = "{database_url}"
[broker]
client_id = "wp-ingester-web"
username = "{INGESTER_USER}"
password = "{INGESTER_PASSWORD}"
[broker.embedded]
config = "{broker}"
listener = "dev5"
[ingest]
max_batch_delay = "20ms"
[storage]
backend = "postgres"
# The reports' seeded month is in 2024.
retention = "forever"
[api]
listen = "{api}"
request_timeout = "60s"
web_dir = "{web}"
[api.auth]
public_requests_per_minute = 600
[plans.standard]
[plans.starter]
max_wells = 25
max_gateways = 10
[mail]
host = "127.0.0.1"
port = {smtp_port}
security = "none"
from = "WellPulse <no-reply@wellpulse.test>"
public_url = "http://{api}"
# Billing against the fake Stripe of testkit (Checkout and the Customer Portal included).
[billing]
api_base = "{stripe}"
api_key = "sk_test_wellpulse_web"
webhook_secrets = ["{WEBHOOK_SECRET}"]
success_url = "http://{api}/t/{{TENANT}}/admin/billing?checkout=done&session={{CHECKOUT_SESSION_ID}}"
cancel_url = "http://{api}/t/{{TENANT}}/admin/billing?checkout=cancelled"
portal_return_url = "http://{api}/t/{{TENANT}}/admin/billing"
[billing.meters]
active_wells = {{ event_name = "wellpulse_active_wells", id = "mtr_wells" }}
samples_over_allowance = {{ event_name = "wellpulse_samples", id = "mtr_samples" }}
[billing.plans.standard]
base_price = "price_standard_base"
active_wells_price = "price_standard_wells"
samples_price = "price_standard_samples"
monthly_fee = 49900
"#,
        broker = broker_config_dir().join("rumqttd-dev.toml").display(),
        web = web_dir().join("dist").display(),
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// The value after `key=` in a log line.
fn field(line: &str, key: &str) -> Option<String> {
    let rest = line.split(&format!("{key}=")).nth(1)?;
    Some(rest.split_whitespace().next()?.to_owned())
}

fn ok(response: &http::Response, what: &str) -> Value {
    assert!(
        (200..300).contains(&response.status),
        "{what}: {} {}",
        response.status,
        response.text()
    );
    if response.body.is_empty() {
        Value::Null
    } else {
        response.json()
    }
}

async fn sign_in(addr: std::net::SocketAddr, email: &str, password: &str) -> String {
    let body = json!({ "email": email, "password": password });
    let answer = http::post_json(addr, "/api/v1/auth/sign-in", Some(&body)).await;
    ok(&answer, "sign in")["access_token"]
        .as_str()
        .expect("an access token")
        .to_owned()
}

/// Accepts the next emailed invitation (to `email`) with a new password.
async fn accept_invitation(
    addr: std::net::SocketAddr,
    mail: &mut SmtpSink,
    email: &str,
    password: &str,
) {
    let message = mail
        .next(Duration::from_secs(30))
        .await
        .expect("an invitation email");
    assert!(message.to.iter().any(|t| t == email), "{message:?}");
    let token = message.token_after("token=").expect("a token in the link");
    let body = json!({ "token": token, "password": password });
    let answer = http::post_json(addr, "/api/v1/auth/invitations/accept", Some(&body)).await;
    ok(&answer, "accept the invitation");
}

/// Agents the browser started, stopped at the end of the test.
type Agents = Arc<
    tokio::sync::Mutex<
        Vec<(
            tokio::sync::oneshot::Sender<()>,
            tokio::task::JoinHandle<anyhow::Result<()>>,
        )>,
    >,
>;

/// The world outside the browser, at the browser's request: one loopback HTTP server whose
/// routes the `WP_*_URL` variables name.
///
/// - `POST /trigger`: publishes one batch from Smith 1H's gateway with a tubing pressure
///   of 250 psi, well above the rule's 100 psi; answers once the cloud acked it.
/// - `POST /casing?device=0|1&psi=…`: one batch of casing pressure from the gateway of
///   the two casing wells (no rule watches it); answers once acked.
/// - `GET /mail`: the next email the cloud sends (JSON: `to`, `subject`, `body`), waiting
///   up to 30 s; 504 when none comes.
/// - `POST /agent`: the body is an `agent.toml` the browser downloaded; the real agent is
///   started with it, after the installer's three local choices are made (where the
///   buffer lives, where metrics listen, and the broker's address, which this test's
///   embedded broker picked at start). Answers 204 once the agent task runs.
/// - `POST /stripe/checkout/{session}`: the customer paid on the Checkout page the app
///   opened; answers the session's `success_url`, where Stripe sends the browser.
/// - `POST /stripe/checkout/{session}/events`: Stripe telling the cloud — the
///   subscription to the session's prices and its first paid invoice set in the fake
///   Stripe, and `checkout.session.completed` then `invoice.paid`
///   delivered to the cloud's webhook, signed by Stripe's library (each must be applied).
/// - `POST /stripe/payment-failed`: the next invoice's payment fails
///   (`invoice.payment_failed`, signed and delivered).
/// - `POST /simulator/failure?kind=pump_off|rod_part|gas_lock`: the simulated well the
///   scenario's agent polls starts that failure, for ten minutes.
#[derive(Clone)]
struct Control {
    tubing: Arc<FakeGateway>,
    casing: Arc<FakeGateway>,
    seq: Arc<AtomicU64>,
    mail: Arc<tokio::sync::Mutex<SmtpSink>>,
    agents: Agents,
    dir: PathBuf,
    broker: std::net::SocketAddr,
    api: std::net::SocketAddr,
    stripe: testkit::stripe::FakeStripe,
    simulator: Arc<simulator::Simulator>,
    sim_device: String,
}

impl Control {
    /// Serves the routes; returns the base URL (ending in `/`).
    async fn serve(self) -> String {
        use axum::routing::{get, post};
        let app = axum::Router::new()
            .route("/trigger", post(trigger))
            .route("/casing", post(casing))
            .route("/mail", get(next_mail))
            .route("/agent", post(start_agent))
            .route("/stripe/checkout/{session}", post(checkout_paid))
            .route("/stripe/checkout/{session}/events", post(checkout_events))
            .route("/stripe/payment-failed", post(payment_failed))
            .route("/simulator/failure", post(sim_failure))
            .with_state(self);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        url
    }

    fn next_seq(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::SeqCst)
    }
}

type Answer = (axum::http::StatusCode, String);

async fn trigger(axum::extract::State(c): axum::extract::State<Control>) -> axum::http::StatusCode {
    // 250 psi (raw × 0.1), well above the rule's 100 psi.
    c.tubing
        .send_until_acked(&batch(c.next_seq(), 1, now_ms(), 2500))
        .await;
    axum::http::StatusCode::NO_CONTENT
}

#[derive(serde::Deserialize)]
struct CasingQuery {
    device: u16,
    psi: f64,
}

async fn casing(
    axum::extract::State(c): axum::extract::State<Control>,
    axum::extract::Query(q): axum::extract::Query<CasingQuery>,
) -> axum::http::StatusCode {
    c.casing
        .send_until_acked(&casing_batch(c.next_seq(), q.device, q.psi))
        .await;
    axum::http::StatusCode::NO_CONTENT
}

async fn next_mail(axum::extract::State(c): axum::extract::State<Control>) -> Answer {
    match c.mail.lock().await.next(Duration::from_secs(30)).await {
        Some(m) => (
            axum::http::StatusCode::OK,
            json!({ "to": m.to, "subject": m.subject, "body": m.body }).to_string(),
        ),
        None => (
            axum::http::StatusCode::GATEWAY_TIMEOUT,
            json!({ "error": "no email" }).to_string(),
        ),
    }
}

async fn start_agent(
    axum::extract::State(c): axum::extract::State<Control>,
    issued: String,
) -> axum::http::StatusCode {
    let gateway = issued
        .lines()
        .find_map(|l| l.strip_prefix("id = "))
        .map(|v| v.trim_matches('"').to_owned())
        .expect("the agent.toml names its gateway");
    let data_dir = c.dir.join(&gateway);
    std::fs::create_dir_all(&data_dir).unwrap();
    let metrics = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let toml: String = issued
        .lines()
        .map(|line| {
            if line.starts_with("data_dir = ") {
                format!("data_dir = {:?}", data_dir.display().to_string())
            } else if line.starts_with("listen = ") {
                format!("listen = \"{metrics}\"")
            } else if line.starts_with("url = \"mqtt://") {
                format!("url = \"mqtt://{}\"", c.broker)
            } else {
                line.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let path = c.dir.join(format!("{gateway}.toml"));
    std::fs::write(&path, toml).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        agent::run(&path, async {
            let _ = stopped.await;
        })
        .await
    });
    c.agents.lock().await.push((stop, task));
    axum::http::StatusCode::NO_CONTENT
}

/// Stripe's webhook deliveries to the cloud, signed by Stripe's library: 200 when each was
/// applied, else 502 saying which was not (the browser test shows it).
async fn deliver_events(c: &Control, events: &[Vec<u8>]) -> Answer {
    for body in events {
        let r = testkit::stripe::deliver(c.api, body, WEBHOOK_SECRET).await;
        let outcome = if r.status == 200 {
            r.json()["outcome"].as_str().unwrap_or_default().to_owned()
        } else {
            String::new()
        };
        if !outcome.starts_with("applied") {
            return (
                axum::http::StatusCode::BAD_GATEWAY,
                format!("the webhook answered {} {}", r.status, r.text()),
            );
        }
    }
    (axum::http::StatusCode::OK, String::new())
}

async fn checkout_paid(
    axum::extract::State(c): axum::extract::State<Control>,
    axum::extract::Path(session): axum::extract::Path<String>,
) -> Answer {
    match c.stripe.checkout_session(&session) {
        Some(opened) => (
            axum::http::StatusCode::OK,
            opened
                .param("success_url")
                .unwrap_or_default()
                .replace("{CHECKOUT_SESSION_ID}", &session),
        ),
        None => (
            axum::http::StatusCode::NOT_FOUND,
            format!("no Checkout Session {session}"),
        ),
    }
}

async fn checkout_events(
    axum::extract::State(c): axum::extract::State<Control>,
    axum::extract::Path(session): axum::extract::Path<String>,
) -> Answer {
    let Some(opened) = c.stripe.checkout_session(&session) else {
        return (
            axum::http::StatusCode::NOT_FOUND,
            format!("no Checkout Session {session}"),
        );
    };
    let param = |k: &str| opened.param(k).unwrap_or_default().to_owned();
    let (customer, tenant) = (param("customer"), param("client_reference_id"));
    let now = chrono::Utc::now().timestamp();
    let paid = testkit::stripe::invoice("in_web_1", &customer, now, "paid", 49_900);
    c.stripe.set_invoice(paid.clone());
    c.stripe.set_subscription(testkit::stripe::subscription(
        &customer,
        now,
        &(0..3)
            .map(|i| {
                opened
                    .param(&format!("line_items[{i}][price]"))
                    .unwrap_or_default()
            })
            .collect::<Vec<_>>(),
    ));
    deliver_events(
        &c,
        &[
            testkit::stripe::event(
                "evt_web_1",
                "checkout.session.completed",
                now,
                testkit::stripe::checkout_completed(&session, &customer, &tenant, now),
            ),
            testkit::stripe::event("evt_web_2", "invoice.paid", now, paid),
        ],
    )
    .await
}

async fn payment_failed(axum::extract::State(c): axum::extract::State<Control>) -> Answer {
    let Some(customer) = c
        .stripe
        .requests()
        .iter()
        .find(|r| r.path == "/v1/checkout/sessions")
        .and_then(|r| r.param("customer").map(str::to_owned))
    else {
        return (
            axum::http::StatusCode::CONFLICT,
            "no customer yet".to_owned(),
        );
    };
    let now = chrono::Utc::now().timestamp();
    let open = testkit::stripe::invoice("in_web_2", &customer, now, "open", 49_900);
    c.stripe.set_invoice(open.clone());
    deliver_events(
        &c,
        &[testkit::stripe::event(
            "evt_web_3",
            "invoice.payment_failed",
            now,
            open,
        )],
    )
    .await
}

#[derive(serde::Deserialize)]
struct FailureQuery {
    kind: simulator::FailureKind,
}

async fn sim_failure(
    axum::extract::State(c): axum::extract::State<Control>,
    axum::extract::Query(q): axum::extract::Query<FailureQuery>,
) -> Answer {
    use simulator::{Failure, FailureKind};
    let failure = match q.kind {
        FailureKind::PumpOff => Failure::PumpOff,
        FailureKind::RodPart => Failure::RodPart,
        FailureKind::GasLock => Failure::GasLock,
        other => {
            return (
                axum::http::StatusCode::BAD_REQUEST,
                format!("{other:?} is not a process failure"),
            );
        }
    };
    match c
        .simulator
        .try_inject(&c.sim_device, failure, Duration::from_secs(600))
    {
        Ok(()) => (axum::http::StatusCode::NO_CONTENT, String::new()),
        Err(e) => (axum::http::StatusCode::CONFLICT, e.to_string()),
    }
}

/// The casing gateway's birth: two devices, each measuring one well's casing pressure.
fn casing_birth() -> wire::Birth {
    let mut b = birth(1);
    let template = b.devices[0].clone();
    b.devices = (0..2u16)
        .map(|alias| {
            let mut d = template.clone();
            d.alias = alias;
            d.name = format!("casing-{alias}");
            d.metrics.truncate(1);
            d.metrics[0].canonical = "casing_pressure_psi".to_owned();
            d.metrics[0].tag = "casing".to_owned();
            d
        })
        .collect();
    b
}

/// One casing pressure (psi, scaled by the birth's 0.1) of one casing device, now.
fn casing_batch(seq: u64, device: u16, psi: f64) -> wire::Batch {
    let mut b = batch(seq, 1, now_ms(), 0);
    let mut frame = b.frames[0].clone();
    frame.device = device;
    frame.samples.truncate(1);
    frame.samples[0].value = Some(wire::Value::Int((psi * 10.0).round() as i64));
    b.frames = vec![frame];
    b
}

async fn create_well(
    addr: std::net::SocketAddr,
    token: &str,
    site: i64,
    api_number: &str,
    name: &str,
) -> i64 {
    let lease = name.split_whitespace().next().unwrap_or(name);
    let well = http::send_as(
        addr,
        token,
        "POST",
        &format!("/api/v1/tenants/{TENANT}/wells"),
        Some(
            &json!({ "site_id": site, "api_number": api_number, "name": name,
                      "lease": lease, "field": "Spraberry", "county": "Midland", "state": "NM" }),
        ),
    )
    .await;
    ok(&well, "create the well")["id"].as_i64().unwrap()
}

/// A gateway provisioned through the API with one device per `(name, API number, well)`,
/// connected with its secret, its `birth` applied, and each device linked to its well.
async fn online_gateway(
    (addr, token, test, broker): (std::net::SocketAddr, &str, &TestDb, std::net::SocketAddr),
    gateway: &str,
    site: i64,
    birth: &wire::Birth,
    devices: &[(&str, &str, i64)],
) -> FakeGateway {
    let tenant = |rest: &str| format!("/api/v1/tenants/{TENANT}{rest}");
    let provisioned: Vec<Value> = devices
        .iter()
        .map(|(name, api_number, _)| {
            json!({ "name": name, "profile": "rod-pump-controller", "tcp": "127.0.0.1:1502", "well": api_number })
        })
        .collect();
    let created = http::send_as(
        addr,
        token,
        "POST",
        &tenant("/gateways"),
        Some(&json!({ "gateway": gateway, "site_id": site, "devices": provisioned })),
    )
    .await;
    let secret = ok(&created, "create the gateway")["password"]
        .as_str()
        .expect("the gateway's secret, shown once")
        .to_owned();
    let gw = FakeGateway::connect(broker, TENANT, gateway, &secret).await;
    gw.send_birth(test, birth).await;
    let detail = http::send_as(
        addr,
        token,
        "GET",
        &tenant(&format!("/gateways/{gateway}")),
        None,
    )
    .await;
    let detail = ok(&detail, "the gateway");
    for (name, _, well) in devices {
        let device = detail["devices"]
            .as_array()
            .and_then(|d| d.iter().find(|d| d["name"] == *name))
            .and_then(|d| d["id"].as_i64())
            .unwrap_or_else(|| panic!("{name} on the gateway: {detail}"));
        let linked = http::send_as(
            addr,
            token,
            "PUT",
            &tenant(&format!("/devices/{device}")),
            Some(&json!({ "well_id": well })),
        )
        .await;
        ok(&linked, "link the device to the well");
    }
    gw
}

fn now_ms() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_app_signs_in_shows_the_fleet_and_follows_alerts_live() {
    init_tracing();
    let web = web_dir();
    assert!(
        web.join("dist/index.html").is_file() && web.join("node_modules/.bin/playwright").exists(),
        "the web app is not built: run `source scripts/services.sh && wp_ensure_web` \
         (npm ci and vite build in web/), as ./test.sh does"
    );
    let test = TestDb::new("web_app").await;
    let mut mail = SmtpSink::start().await;
    let dir = tempfile::tempdir().unwrap();
    let stripe = testkit::stripe::FakeStripe::start(&testkit::stripe::FAKE_METERS).await;
    let api_addr: std::net::SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let config = write_config(
        dir.path(),
        test.scratch.url(),
        mail.port(),
        &stripe.url(),
        api_addr,
    );
    let config = config.to_str().unwrap();

    // The first platform administrator, password from the environment only.
    let admin_password = password();
    let out = Command::new(BIN)
        .args([
            "create-admin",
            "--config",
            config,
            "--email",
            "root@wellpulse.test",
        ])
        .env("WELLPULSE_ADMIN_PASSWORD", &admin_password)
        .env("RUST_LOG", "warn")
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let mut child = Command::new(BIN)
        .args(["run", "--config", config])
        .env("RUST_LOG", "info,rumqttd=off")
        .env("NO_COLOR", "1")
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let (mut api, mut broker, mut subscribed) = (None, None, false);
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while api.is_none() || broker.is_none() || !subscribed {
        let line = tokio::time::timeout_at(deadline, lines.next_line())
            .await
            .expect("run logs its listeners")
            .unwrap()
            .expect("run keeps running");
        if line.contains("HTTP API listening") {
            api = field(&line, "addr");
        }
        if line.contains("embedded MQTT broker listening") && line.contains("listener=dev4") {
            broker = field(&line, "addr");
        }
        subscribed |= line.contains("MQTT subscriptions active");
    }
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains("ERROR") {
                eprintln!("[cloud] {line}");
            }
        }
    });
    let addr: std::net::SocketAddr = api.unwrap().parse().unwrap();
    assert_eq!(
        addr, api_addr,
        "the API listens where the configuration says"
    );
    let broker: std::net::SocketAddr = broker.unwrap().parse().unwrap();

    // The tenant and its people, through the API and the emailed invitations.
    let root = sign_in(addr, "root@wellpulse.test", &admin_password).await;
    let created = http::send_as(
        addr,
        &root,
        "POST",
        "/api/v1/admin/tenants",
        Some(&json!({ "slug": TENANT, "name": "Acme Energy", "admin_email": "boss@acme.test" })),
    )
    .await;
    ok(&created, "create the tenant");
    let boss_password = password();
    accept_invitation(addr, &mut mail, "boss@acme.test", &boss_password).await;
    let boss = sign_in(addr, "boss@acme.test", &boss_password).await;
    let tenant = |rest: &str| format!("/api/v1/tenants/{TENANT}{rest}");
    let mut people = Vec::new();
    for (email, role) in [("olga@acme.test", "operator"), ("vic@acme.test", "viewer")] {
        let invited = http::send_as(
            addr,
            &boss,
            "POST",
            &tenant("/invitations"),
            Some(&json!({ "email": email, "role": role })),
        )
        .await;
        ok(&invited, "invite");
        let secret = password();
        accept_invitation(addr, &mut mail, email, &secret).await;
        people.push((email, secret));
    }

    // A site, a well, the rule, and a gateway whose device measures the well.
    let site = http::send_as(
        addr,
        &boss,
        "POST",
        &tenant("/sites"),
        Some(&json!({ "name": "Pad 1", "state": "TX", "operator_number": "123456" })),
    )
    .await;
    let site = ok(&site, "create the site")["id"].as_i64().unwrap();
    let well = create_well(addr, &boss, site, API_NUMBER, WELL).await;
    let rule = http::send_as(
        addr,
        &boss,
        "POST",
        &tenant("/detection-rules"),
        Some(
            &json!({ "name": "Tubing pressure high", "metric": "tubing_pressure_psi",
                      "condition": { "type": "above", "value": 100.0 }, "severity": "critical" }),
        ),
    )
    .await;
    ok(&rule, "create the rule");

    // The gateway comes online and reports a normal pressure (50 psi).
    let gw = online_gateway(
        (addr, &boss, &test, broker),
        "gw-1",
        site,
        &birth(1),
        &[("pump-1", API_NUMBER, well)],
    )
    .await;
    gw.send_until_acked(&batch(1, 1, now_ms() - 60_000, 500))
        .await;
    gw.send_until_acked(&batch(2, 1, now_ms(), 500)).await;
    // Two wells on their own site whose casing pressure (no rule watches it) the browser
    // sorts the fleet by: 80 and 60 psi to start with.
    let casing_site = http::send_as(
        addr,
        &boss,
        "POST",
        &tenant("/sites"),
        Some(&json!({ "name": "Pad C", "state": "NM" })),
    )
    .await;
    let casing_site = ok(&casing_site, "create the casing wells' site")["id"]
        .as_i64()
        .unwrap();
    let mut casing_devices = Vec::new();
    for (i, (api_number, name)) in CASING_WELLS.iter().enumerate() {
        let id = create_well(addr, &boss, casing_site, api_number, name).await;
        casing_devices.push((format!("casing-{i}"), *api_number, id));
    }
    let casing_devices: Vec<(&str, &str, i64)> = casing_devices
        .iter()
        .map(|(n, a, w)| (n.as_str(), *a, *w))
        .collect();
    let casing = online_gateway(
        (addr, &boss, &test, broker),
        "gw-2",
        casing_site,
        &casing_birth(),
        &casing_devices,
    )
    .await;
    let seq = Arc::new(AtomicU64::new(3));
    for (device, psi) in [(0, 80.0), (1, 60.0)] {
        casing
            .send_until_acked(&casing_batch(
                seq.fetch_add(1, Ordering::SeqCst),
                device,
                psi,
            ))
            .await;
    }
    let metrics = http::send_as(
        addr,
        &boss,
        "GET",
        &tenant(&format!("/wells/{well}/metrics")),
        None,
    )
    .await;
    let metrics = ok(&metrics, "the well's metrics");
    assert!(
        metrics["metrics"]
            .as_array()
            .is_some_and(|m| m.iter().any(|m| m["metric"] == "tubing_pressure_psi")),
        "the device is the well's: {metrics}"
    );

    // A month that can be filed (March 2024, seeded as the analytics tests do) for the
    // reports page, on its own site and gateway: the tenant's one Texas well (Smith 1H is
    // in New Mexico, so the Form PR has no lease without data). Seeded through a handle
    // without retention, which would refuse 2024 samples.
    let seeding = store::Db::connect_with(
        test.scratch.url(),
        store::StorageOptions {
            backend: store::BackendChoice::Postgres,
            retention: None,
            ..store::StorageOptions::default()
        },
    )
    .await
    .unwrap();
    let tenant_id = seeding
        .tenant_by_slug(TENANT)
        .await
        .unwrap()
        .expect("the tenant");
    let mut filed = testkit::analytics::WellSite::create_in(
        &seeding,
        tenant_id,
        TENANT,
        "Pad R",
        "gw-report",
        "42-329-30001",
        "TX",
    )
    .await;
    testkit::analytics::seed_march(&seeding, &mut filed, &[]).await;
    testkit::analytics::register_filings(&seeding, tenant_id, &filed, None).await;
    // Two years of oil declining 60 % a year, up to ten days ago: the well page's daily
    // production and decline forecast.
    let start = (chrono::Utc::now() - chrono::TimeDelta::days(730)).date_naive();
    testkit::analytics::seed_oil(&seeding, tenant_id, filed.well, start, 720, |t| {
        400.0 * (-t / 365.25 * 0.6).exp()
    })
    .await;
    // Its wellhead's leaking components: emissions by source and gas on the well page.
    {
        use analytics::emissions::SourceKind;
        use analytics::emissions::factors::{Equipment, Service};
        let mut conn = seeding.pool().acquire().await.unwrap();
        store::emissions::insert_source(
            &mut conn,
            tenant_id,
            &store::emissions::EmissionSource {
                components: vec![(Equipment::Valve, Service::Gas, 12)],
                ..testkit::analytics::source(&filed, "Wellhead leaks", SourceKind::EquipmentLeaks)
            },
        )
        .await
        .unwrap();
    }
    seeding.pool().close().await;
    // The models' caches for the well page's outlook: the history well's production gap
    // (its own decline), and why it has no emissions forecast (its leak factors end with
    // RY2024).
    let refreshed = http::send_as(addr, &boss, "POST", &tenant("/forecasts/refresh"), None).await;
    ok(&refreshed, "refresh the forecasts");

    // The Modbus well the scenario's agent polls (one rod-pump controller), and the helper
    // that starts the agent with the configuration the browser downloaded.
    let simulator = Arc::new(
        simulator::Simulator::start(
            simulator::FleetConfig {
                seed: 11,
                wells: 1,
                devices_per_well: vec!["rod-pump-controller".to_owned()],
                // An hour of the well per minute, so its values move past the agent's
                // deadbands while the browser watches.
                time_scale: 60.0,
                ..simulator::FleetConfig::default()
            },
            [127, 0, 0, 1].into(),
        )
        .await
        .unwrap(),
    );
    let pump = simulator
        .endpoints()
        .into_iter()
        .next()
        .expect("a simulated device");
    let agents: Agents = Arc::default();

    // The browser.
    let (operator, viewer) = (&people[0], &people[1]);
    let control = Control {
        tubing: Arc::new(gw),
        casing: Arc::new(casing),
        seq,
        mail: Arc::new(tokio::sync::Mutex::new(mail)),
        agents: Arc::clone(&agents),
        dir: dir.path().to_owned(),
        broker,
        api: addr,
        stripe: stripe.clone(),
        simulator: Arc::clone(&simulator),
        sim_device: pump.device.clone(),
    }
    .serve()
    .await;
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("web-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let mut playwright = Command::new("npx")
        .args(["--no-install", "playwright", "test"])
        .current_dir(&web)
        .env("WP_BASE_URL", format!("http://{addr}"))
        .env("WP_TENANT", TENANT)
        .env("WP_WELL", WELL)
        .env("WP_WELL_ID", well.to_string())
        .env("WP_HISTORY_WELL_ID", filed.well.0.to_string())
        .env("WP_OPERATOR_EMAIL", operator.0)
        .env("WP_OPERATOR_PASSWORD", &operator.1)
        .env("WP_VIEWER_EMAIL", viewer.0)
        .env("WP_VIEWER_PASSWORD", &viewer.1)
        .env("WP_TRIGGER_URL", format!("{control}trigger"))
        .env("WP_CASING_URL", format!("{control}casing"))
        .env(
            "WP_CASING_WELLS",
            CASING_WELLS.map(|(_, name)| name).join(","),
        )
        .env("WP_MAIL_URL", format!("{control}mail"))
        .env("WP_AGENT_URL", format!("{control}agent"))
        .env("WP_STRIPE_URL", format!("{control}stripe"))
        .env("WP_SIM_URL", format!("{control}simulator"))
        .env("WP_SIM_TCP", pump.addr.to_string())
        .env("WP_SIM_UNIT", pump.unit_id.to_string())
        .env("WP_SIM_PROFILE", &pump.profile)
        .env("WP_ADMIN_EMAIL", "boss@acme.test")
        .env("WP_ADMIN_PASSWORD", &boss_password)
        .env("WP_ROOT_EMAIL", "root@wellpulse.test")
        .env("WP_ROOT_PASSWORD", &admin_password)
        .env("WP_SCREENSHOTS", &shots)
        .env("CI", "1")
        .kill_on_drop(true)
        .spawn()
        .expect("npx runs (Node.js and npm: scripts/services.sh wp_ensure_node)");
    let status = tokio::time::timeout(Duration::from_secs(480), playwright.wait())
        .await
        .expect("the browser tests finish within 8 minutes")
        .unwrap();
    assert!(
        status.success(),
        "the browser tests failed (their output is above)"
    );
    assert!(child.try_wait().unwrap().is_none(), "run is still running");

    // What the browser did is what the API has: the operator acknowledged the alert.
    let operator_token = sign_in(addr, operator.0, &operator.1).await;
    let alerts = http::send_as(addr, &operator_token, "GET", &tenant("/alerts"), None).await;
    let alerts = ok(&alerts, "list alerts");
    // (The scenario's simulated well fires the same rule: its alert is not this one.)
    let alert = alerts["items"]
        .as_array()
        .and_then(|a| a.iter().find(|a| a["well_id"] == well))
        .unwrap_or_else(|| panic!("an alert at {WELL}: {alerts}"));
    assert_eq!(alert["state"], "acknowledged", "{alerts}");
    assert_eq!(alert["well_id"], well, "{alerts}");
    assert!(
        alert["acknowledged_by"]
            .as_str()
            .is_some_and(|by| by.contains(operator.0)),
        "{alerts}"
    );

    for (stop, task) in agents.lock().await.drain(..) {
        let _ = stop.send(());
        task.await.unwrap().expect("the agent stops cleanly");
    }
    child.kill().await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    test.finish().await;
}
