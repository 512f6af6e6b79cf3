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
//! The browser makes the alert fire through a one-route helper this test serves
//! (`WP_TRIGGER_URL`): each `POST` publishes one sealed batch with a tubing pressure above
//! the rule's limit from the gateway's MQTT session and answers once the cloud acked it.
//! A second helper (`WP_MAIL_URL`) hands the browser the emails the cloud sends after the
//! set-up (invitations, password resets), so it follows their links as people would.
//!
//! `web/tests/admin.spec.ts` covers the administration pages (as the tenant administrator
//! and the platform administrator), the pages of emailed links, the role checks and the
//! reports, and billing (against testkit's fake Stripe); every page is checked with
//! axe-core. A well seeded with two years of daily oil shows its production, decline fan
//! chart and emissions on its page. Screenshots go to
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
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_wellpulse-cloud");
const API_NUMBER: &str = "42-329-40001";
const WELL: &str = "Smith 1H";

fn web_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../web")
}

fn password() -> String {
    format!("pw-{:032x}", rand::random::<u128>())
}

fn write_config(dir: &Path, database_url: &str, smtp_port: u16, stripe: &str) -> PathBuf {
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
listen = "127.0.0.1:0"
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
public_url = "http://127.0.0.1"
# Billing against the fake Stripe of testkit (Checkout and the Customer Portal included).
[billing]
api_base = "{stripe}"
api_key = "sk_test_wellpulse_web"
webhook_secrets = ["whsec_wellpulse_web_app_test"]
success_url = "http://127.0.0.1/billing/done"
cancel_url = "http://127.0.0.1/billing"
portal_return_url = "http://127.0.0.1/billing"
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

/// Serves `POST /` on loopback: each request publishes one batch that breaks the rule.
async fn serve_trigger(gateway: Arc<FakeGateway>, seq: Arc<AtomicU64>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let (gateway, seq) = (Arc::clone(&gateway), Arc::clone(&seq));
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && socket.read(&mut byte).await.unwrap_or(0) == 1
                {
                    head.push(byte[0]);
                }
                let n = seq.fetch_add(1, Ordering::SeqCst);
                // 250 psi (raw × 0.1), well above the rule's 100 psi.
                gateway.send_until_acked(&batch(n, 1, now_ms(), 2500)).await;
                let _ = socket
                    .write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
                    .await;
            });
        }
    });
    url
}

/// Serves `GET /` on loopback: the next email the cloud sends (JSON: `to`, `subject`,
/// `body`), waiting up to 30 s for it; 504 when none comes.
async fn serve_mail(mail: SmtpSink) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let mail = Arc::new(tokio::sync::Mutex::new(mail));
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mail = Arc::clone(&mail);
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && socket.read(&mut byte).await.unwrap_or(0) == 1
                {
                    head.push(byte[0]);
                }
                let next = mail.lock().await.next(Duration::from_secs(30)).await;
                let (status, body) = match next {
                    Some(m) => (
                        "200 OK",
                        json!({ "to": m.to, "subject": m.subject, "body": m.body }).to_string(),
                    ),
                    None => (
                        "504 Gateway Timeout",
                        json!({ "error": "no email" }).to_string(),
                    ),
                };
                let answer = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(answer.as_bytes()).await;
            });
        }
    });
    url
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

/// Serves `POST /` on loopback: the body is an `agent.toml` the browser downloaded; the
/// real agent is started with it, after the installer's three local choices are made
/// (where the buffer lives, where metrics listen, and the broker's address, which this
/// test's embedded broker picked at start). Answers 204 once the agent task runs.
async fn serve_agent(dir: PathBuf, broker: std::net::SocketAddr, agents: Agents) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let (dir, agents) = (dir.clone(), Arc::clone(&agents));
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && socket.read(&mut byte).await.unwrap_or(0) == 1
                {
                    head.push(byte[0]);
                }
                let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                let mut body = vec![0u8; length];
                socket.read_exact(&mut body).await.unwrap();
                let issued = String::from_utf8(body).unwrap();
                let gateway = issued
                    .lines()
                    .find_map(|l| l.strip_prefix("id = "))
                    .map(|v| v.trim_matches('"').to_owned())
                    .expect("the agent.toml names its gateway");
                let data_dir = dir.join(&gateway);
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
                            format!("url = \"mqtt://{broker}\"")
                        } else {
                            line.to_owned()
                        }
                    })
                    .collect::<Vec<_>>()
                    .join("\n");
                let path = dir.join(format!("{gateway}.toml"));
                std::fs::write(&path, toml).unwrap();
                let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
                let task = tokio::spawn(async move {
                    agent::run(&path, async {
                        let _ = stopped.await;
                    })
                    .await
                });
                agents.lock().await.push((stop, task));
                let _ = socket
                    .write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
                    .await;
            });
        }
    });
    url
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
    let config = write_config(dir.path(), test.scratch.url(), mail.port(), &stripe.url());
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
    let well = http::send_as(
        addr,
        &boss,
        "POST",
        &tenant("/wells"),
        Some(
            &json!({ "site_id": site, "api_number": API_NUMBER, "name": WELL,
                      "lease": "Smith", "field": "Spraberry", "county": "Midland", "state": "NM" }),
        ),
    )
    .await;
    let well = ok(&well, "create the well")["id"].as_i64().unwrap();
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
    let gateway = http::send_as(
        addr,
        &boss,
        "POST",
        &tenant("/gateways"),
        Some(&json!({ "gateway": "gw-1", "site_id": site, "devices": [
            { "name": "pump-1", "profile": "rod-pump-controller", "tcp": "127.0.0.1:1502", "well": API_NUMBER }
        ] })),
    )
    .await;
    let secret = ok(&gateway, "create the gateway")["password"]
        .as_str()
        .expect("the gateway's secret, shown once")
        .to_owned();

    // The gateway comes online and reports a normal pressure (50 psi).
    let gw = FakeGateway::connect(broker, TENANT, "gw-1", &secret).await;
    gw.send_birth(&test, &birth(1)).await;
    let detail = http::send_as(addr, &boss, "GET", &tenant("/gateways/gw-1"), None).await;
    let detail = ok(&detail, "the gateway");
    let device = detail["devices"]
        .as_array()
        .and_then(|d| d.iter().find(|d| d["name"] == "pump-1"))
        .and_then(|d| d["id"].as_i64())
        .unwrap_or_else(|| panic!("pump-1 on the gateway: {detail}"));
    let linked = http::send_as(
        addr,
        &boss,
        "PUT",
        &tenant(&format!("/devices/{device}")),
        Some(&json!({ "well_id": well })),
    )
    .await;
    ok(&linked, "link the device to the well");
    gw.send_until_acked(&batch(1, 1, now_ms() - 60_000, 500))
        .await;
    gw.send_until_acked(&batch(2, 1, now_ms(), 500)).await;
    let trigger = serve_trigger(Arc::new(gw), Arc::new(AtomicU64::new(3))).await;
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

    // The Modbus well the scenario's agent polls (one rod-pump controller), and the helper
    // that starts the agent with the configuration the browser downloaded.
    let simulator = simulator::Simulator::start(
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
    .unwrap();
    let pump = simulator
        .endpoints()
        .into_iter()
        .next()
        .expect("a simulated device");
    let agents: Agents = Arc::default();
    let agent_url = serve_agent(dir.path().to_owned(), broker, Arc::clone(&agents)).await;

    // The browser.
    let (operator, viewer) = (&people[0], &people[1]);
    let mail_url = serve_mail(mail).await;
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
        .env("WP_TRIGGER_URL", &trigger)
        .env("WP_MAIL_URL", &mail_url)
        .env("WP_AGENT_URL", &agent_url)
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
    let status = tokio::time::timeout(Duration::from_secs(300), playwright.wait())
        .await
        .expect("the browser tests finish within 5 minutes")
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
