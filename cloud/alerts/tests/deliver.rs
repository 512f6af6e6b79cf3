//! Delivery formats against their specifications, and the sender against a real receiver.
//!
//! - Webhooks: sent to a receiver on loopback, whose signature is checked three ways: by an
//!   implementation of the Standard Webhooks algorithm written here from the specification
//!   (RustCrypto's HMAC, not the ring code that signs), by our `verify`, and by the
//!   specification's reference library for Python (`standardwebhooks`).
//! - Alertmanager, PagerDuty and CloudEvents bodies are validated against the published
//!   schemas transcribed in `tests/data/` (Python's `jsonschema`, formats checked); each
//!   schema also refuses a broken document, so a schema that accepts anything fails.
//! - The sender: retryable and permanent statuses, refused connections, time-outs,
//!   redirects not followed, TLS through the ring provider.
//!
//! Python packages: `source scripts/services.sh && wp_ensure_standardwebhooks &&
//! wp_ensure_jsonschema` (`wp_ensure_all` includes them). Missing ones fail the tests.

use std::collections::{BTreeMap, VecDeque};
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alerts::deliver::{
    AlertView, Attempt, Destination, DestinationKind, Event, HttpRequest, Message, RenderError,
    Sender, render, user_agent, webhook,
};
use axum::http::{HeaderMap, StatusCode, Uri};
use base::Secret;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::{DateTime, TimeZone, Utc};
use hmac::{Hmac, Mac};
use tokio::sync::mpsc;

const EVENTS: [Event; 6] = [
    Event::Firing,
    Event::Acknowledged,
    Event::Resolved,
    Event::Resend,
    Event::Escalated,
    Event::Test,
];

fn alert(event: Event) -> AlertView {
    let labels = BTreeMap::from([
        ("tenant".to_owned(), "acme".to_owned()),
        ("kind".to_owned(), "flatline".to_owned()),
        ("site".to_owned(), "north-pad".to_owned()),
        ("well".to_owned(), "W-7".to_owned()),
        ("gateway".to_owned(), "gw-1".to_owned()),
        ("device".to_owned(), "rtu-3".to_owned()),
        ("metric".to_owned(), "tubing_pressure".to_owned()),
        ("device.model".to_owned(), "ROC800".to_owned()),
        ("empty".to_owned(), String::new()),
    ]);
    let started_at = Utc.with_ymd_and_hms(2026, 3, 1, 6, 30, 0).unwrap();
    AlertView {
        id: 42,
        tenant: "acme".into(),
        fingerprint: "9f2c1e7a44b0d8e1".into(),
        kind: "flatline".into(),
        severity: if event == Event::Escalated {
            "critical"
        } else {
            "warning"
        }
        .into(),
        state: match event {
            Event::Acknowledged => "acknowledged",
            Event::Resolved => "resolved",
            _ => "firing",
        }
        .into(),
        summary: "Tubing pressure on W-7 has not changed for 2 h".into(),
        labels,
        started_at,
        resolved_at: (event == Event::Resolved).then(|| started_at + chrono::Duration::hours(3)),
        evidence: serde_json::json!({"window_s": 7200, "value": 1312.5, "unit": "psi"}),
        url: "https://app.wellpulse.example/t/acme/alerts/42".into(),
    }
}

fn message(event: Event) -> Message {
    Message {
        id: format!("msg_{}", event.as_str()),
        event,
        alert: alert(event),
        at: Utc.with_ymd_and_hms(2026, 3, 1, 9, 30, 0).unwrap(),
    }
}

fn destination(kind: DestinationKind, url: &str, secret: Option<&str>) -> Destination {
    Destination {
        id: 7,
        kind,
        url: url.into(),
        secret: secret.map(Secret::new),
    }
}

fn header<'a>(req: &'a HttpRequest, name: &str) -> &'a str {
    req.headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("header {name} missing"))
}

fn body_json(req: &HttpRequest) -> serde_json::Value {
    serde_json::from_slice(&req.body).expect("the body is JSON")
}

// ---------------------------------------------------------------------------------------
// Python helpers

fn python(script: &str, args: &[&Path], stdin: &[u8]) -> (bool, String) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(script);
    let mut child = Command::new("python3")
        .arg(&script)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 must be installed to run the delivery format tests");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("ModuleNotFoundError"),
        "a Python package is missing: `source scripts/services.sh && wp_ensure_standardwebhooks \
         && wp_ensure_jsonschema` (or pip install standardwebhooks 'jsonschema[format-nongpl]'):\n{stderr}"
    );
    assert!(
        out.status.success() || out.status.code() == Some(1),
        "{} crashed:\n{stdout}\n{stderr}",
        script.display()
    );
    (out.status.success(), stdout)
}

fn schema(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// Validates each document against the schema: one "ok" / "invalid: …" line each.
fn validate(schema_file: &str, documents: &[serde_json::Value]) -> Vec<String> {
    let input = serde_json::to_vec(documents).unwrap();
    let (_, stdout) = python("validate_schema.py", &[&schema(schema_file)], &input);
    let lines: Vec<String> = stdout.lines().map(str::to_owned).collect();
    assert_eq!(
        lines.len(),
        documents.len(),
        "one verdict per document: {stdout}"
    );
    lines
}

fn assert_all_valid(schema_file: &str, documents: &[serde_json::Value]) {
    for (verdict, document) in validate(schema_file, documents).iter().zip(documents) {
        assert_eq!(verdict, "ok", "{schema_file}: {document:#}");
    }
}

/// Verifies with Python's `standardwebhooks`: whether it accepted, and what it said.
fn python_verifies(secret: &str, headers: &[(String, String)], body: &[u8]) -> (bool, String) {
    let headers: BTreeMap<&str, &str> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let input = serde_json::json!({
        "secret": secret,
        "headers": headers,
        "body": std::str::from_utf8(body).unwrap(),
    });
    python(
        "standardwebhooks_verify.py",
        &[],
        &serde_json::to_vec(&input).unwrap(),
    )
}

/// The Standard Webhooks signature written from the specification, independently of the
/// crate's code: HMAC-SHA256 keyed with base64(secret without `whsec_`), over
/// `{id}.{timestamp}.{body}`, base64, each signature `v1,<sig>`, space-separated.
fn spec_signature_valid(secret: &str, id: &str, timestamp: &str, body: &[u8], sigs: &str) -> bool {
    let key = B64.decode(secret.strip_prefix("whsec_").unwrap()).unwrap();
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    let expected = B64.encode(mac.finalize().into_bytes());
    sigs.split(' ')
        .any(|sig| sig.split_once(',') == Some(("v1", expected.as_str())))
}

// ---------------------------------------------------------------------------------------
// A receiver on loopback

#[derive(Debug, Clone)]
struct Received {
    path: String,
    headers: HeaderMap,
    body: Vec<u8>,
}

#[derive(Debug, Clone)]
enum Reply {
    Status(u16, &'static str),
    Redirect(&'static str),
    Hang,
}

/// An HTTP server on 127.0.0.1 answering from a script (200 once it is exhausted) and
/// reporting every request it got. Stopped when dropped.
struct Receiver {
    addr: SocketAddr,
    received: mpsc::UnboundedReceiver<Received>,
    server: tokio::task::JoinHandle<()>,
}

impl Receiver {
    async fn start(script: Vec<Reply>) -> Receiver {
        let script = Arc::new(Mutex::new(VecDeque::from(script)));
        let (tx, received) = mpsc::unbounded_channel();
        let handler = move |uri: Uri, headers: HeaderMap, body: axum::body::Bytes| {
            let script = Arc::clone(&script);
            let tx = tx.clone();
            async move {
                tx.send(Received {
                    path: uri.path().to_owned(),
                    headers,
                    body: body.to_vec(),
                })
                .unwrap();
                let reply = script.lock().unwrap().pop_front();
                match reply.unwrap_or(Reply::Status(200, "")) {
                    Reply::Status(code, body) => {
                        (StatusCode::from_u16(code).unwrap(), body).into_response()
                    }
                    Reply::Redirect(to) => axum::response::Redirect::temporary(to).into_response(),
                    Reply::Hang => std::future::pending().await,
                }
            }
        };
        use axum::response::IntoResponse;
        let app = axum::Router::new().fallback(handler);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Receiver {
            addr,
            received,
            server,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Requests received so far (the sender has its answer, so they have all arrived).
    fn drain(&mut self) -> Vec<Received> {
        let mut out = Vec::new();
        while let Ok(r) = self.received.try_recv() {
            out.push(r);
        }
        out
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn sender() -> Sender {
    Sender::new(Duration::from_secs(10)).unwrap()
}

fn post(url: String) -> HttpRequest {
    HttpRequest {
        url,
        headers: vec![("content-type".into(), "application/json".into())],
        body: b"{}".to_vec(),
    }
}

// ---------------------------------------------------------------------------------------
// Webhooks

#[tokio::test]
async fn webhook_is_delivered_signed_and_verifies_with_the_spec_ours_and_python() {
    let mut receiver = Receiver::start(vec![]).await;
    let secret = webhook::generate_secret();
    let dest = destination(
        DestinationKind::Webhook,
        &receiver.url("/hooks/wellpulse"),
        Some(&secret),
    );
    let msg = message(Event::Firing);
    let now = Utc::now();
    let req = render(&dest, &msg, now).unwrap();
    assert_eq!(
        sender().send(&req).await,
        Attempt::Delivered { status: 200 }
    );

    let got = receiver.drain();
    assert_eq!(got.len(), 1);
    let got = &got[0];
    assert_eq!(got.path, "/hooks/wellpulse");
    assert_eq!(got.body, req.body, "the body arrives byte for byte");
    let h = |name: &str| got.headers[name].to_str().unwrap().to_owned();
    assert_eq!(
        h("content-type"),
        "application/cloudevents+json; charset=utf-8"
    );
    assert_eq!(h("user-agent"), user_agent());
    assert_eq!(h("webhook-id"), msg.id);
    assert_eq!(h("webhook-timestamp"), now.timestamp().to_string());
    assert!(h("webhook-signature").starts_with("v1,"));

    // 1. The algorithm as the specification states it.
    assert!(spec_signature_valid(
        &secret,
        &h("webhook-id"),
        &h("webhook-timestamp"),
        &got.body,
        &h("webhook-signature"),
    ));
    // 2. Ours, as documented for receivers.
    let headers: Vec<(String, String)> = ["webhook-id", "webhook-timestamp", "webhook-signature"]
        .iter()
        .map(|name| (name.to_string(), h(name)))
        .collect();
    let tolerance = Duration::from_secs(300);
    webhook::verify(&secret, &headers, &got.body, Utc::now(), tolerance).unwrap();
    // 3. The reference library.
    let (ok, said) = python_verifies(&secret, &headers, &got.body);
    assert!(ok, "standardwebhooks refused: {said}");

    // Another secret does not verify anywhere.
    let other = webhook::generate_secret();
    assert!(!spec_signature_valid(
        &other,
        &h("webhook-id"),
        &h("webhook-timestamp"),
        &got.body,
        &h("webhook-signature"),
    ));
    assert_eq!(
        webhook::verify(&other, &headers, &got.body, Utc::now(), tolerance),
        Err(webhook::VerifyError::NoMatch)
    );
    assert!(!python_verifies(&other, &headers, &got.body).0);
}

#[test]
fn webhook_with_a_tampered_body_or_id_fails_verification() {
    let secret = webhook::generate_secret();
    let dest = destination(
        DestinationKind::Webhook,
        "https://hooks.example/x",
        Some(&secret),
    );
    let now = Utc::now();
    let req = render(&dest, &message(Event::Resolved), now).unwrap();
    let tolerance = Duration::from_secs(300);
    webhook::verify(&secret, &req.headers, &req.body, now, tolerance).unwrap();
    assert!(python_verifies(&secret, &req.headers, &req.body).0);

    let tampered = String::from_utf8(req.body.clone())
        .unwrap()
        .replace("\"resolved\"", "\"firing\"");
    assert_ne!(tampered.as_bytes(), req.body);
    assert_eq!(
        webhook::verify(&secret, &req.headers, tampered.as_bytes(), now, tolerance),
        Err(webhook::VerifyError::NoMatch)
    );
    let (ok, said) = python_verifies(&secret, &req.headers, tampered.as_bytes());
    assert!(!ok, "standardwebhooks accepted a tampered body: {said}");
    assert!(!spec_signature_valid(
        &secret,
        header(&req, "webhook-id"),
        header(&req, "webhook-timestamp"),
        tampered.as_bytes(),
        header(&req, "webhook-signature"),
    ));

    let mut other_id = req.headers.clone();
    other_id
        .iter_mut()
        .find(|(k, _)| k == "webhook-id")
        .unwrap()
        .1 = "msg_other".into();
    assert_eq!(
        webhook::verify(&secret, &other_id, &req.body, now, tolerance),
        Err(webhook::VerifyError::NoMatch)
    );
    assert!(!python_verifies(&secret, &other_id, &req.body).0);

    let without_signature: Vec<_> = req
        .headers
        .iter()
        .filter(|(k, _)| k != "webhook-signature")
        .cloned()
        .collect();
    assert_eq!(
        webhook::verify(&secret, &without_signature, &req.body, now, tolerance),
        Err(webhook::VerifyError::MissingHeader("webhook-signature"))
    );
}

#[test]
fn webhook_outside_the_tolerance_fails_verification() {
    let secret = webhook::generate_secret();
    let dest = destination(
        DestinationKind::Webhook,
        "https://hooks.example/x",
        Some(&secret),
    );
    let tolerance = Duration::from_secs(300);
    let now = Utc::now();
    for skew in [
        chrono::Duration::minutes(-10),
        chrono::Duration::minutes(10),
    ] {
        let req = render(&dest, &message(Event::Firing), now + skew).unwrap();
        assert!(matches!(
            webhook::verify(&secret, &req.headers, &req.body, now, tolerance),
            Err(webhook::VerifyError::OutsideTolerance(_))
        ));
        let (ok, said) = python_verifies(&secret, &req.headers, &req.body);
        assert!(
            !ok,
            "standardwebhooks accepted a timestamp {skew} away: {said}"
        );
    }
    // At the edge of the tolerance it still verifies.
    let req = render(
        &dest,
        &message(Event::Firing),
        now - chrono::Duration::minutes(4),
    )
    .unwrap();
    webhook::verify(&secret, &req.headers, &req.body, now, tolerance).unwrap();
}

#[test]
fn webhook_body_is_a_cloudevent_with_every_required_attribute() {
    let secret = webhook::generate_secret();
    let dest = destination(
        DestinationKind::Webhook,
        "https://hooks.example/x",
        Some(&secret),
    );
    let now = Utc::now();
    let mut events = Vec::new();
    for event in EVENTS {
        let msg = message(event);
        let req = render(&dest, &msg, now).unwrap();
        let ce = body_json(&req);
        assert_eq!(ce["specversion"], "1.0");
        assert_eq!(ce["id"], msg.id.as_str());
        assert_eq!(
            ce["id"],
            header(&req, "webhook-id"),
            "one id for both layers"
        );
        assert_eq!(ce["source"], "/wellpulse/tenants/acme");
        assert_eq!(
            ce["type"],
            format!("com.wellpulse.alert.{}", event.as_str()).as_str()
        );
        assert_eq!(ce["subject"], "9f2c1e7a44b0d8e1");
        assert_eq!(ce["datacontenttype"], "application/json");
        let time = DateTime::parse_from_rfc3339(ce["time"].as_str().unwrap()).unwrap();
        assert_eq!(time, msg.at);
        assert_eq!(ce["data"]["event"], event.as_str());
        assert_eq!(
            ce["data"]["alert"],
            serde_json::to_value(&msg.alert).unwrap()
        );
        events.push(ce);
    }
    assert_all_valid("cloudevents.schema.json", &events);

    // The schema is not a rubber stamp.
    let mut broken = events[0].clone();
    broken.as_object_mut().unwrap().remove("source");
    let mut bad_time = events[0].clone();
    bad_time["time"] = "yesterday".into();
    for verdict in validate("cloudevents.schema.json", &[broken, bad_time]) {
        assert!(verdict.starts_with("invalid"), "{verdict}");
    }
}

#[test]
fn webhook_needs_a_valid_secret_and_url() {
    let msg = message(Event::Test);
    let now = Utc::now();
    let url = "https://hooks.example/x";
    assert_eq!(
        render(&destination(DestinationKind::Webhook, url, None), &msg, now),
        Err(RenderError::MissingSecret {
            dest: 7,
            what: "signing secret"
        })
    );
    for bad in ["whsec_not base64!", "whsec_c2hvcnQ="] {
        let err = render(
            &destination(DestinationKind::Webhook, url, Some(bad)),
            &msg,
            now,
        )
        .unwrap_err();
        assert!(
            matches!(err, RenderError::BadSecret { dest: 7, .. }),
            "{err}"
        );
        assert!(!err.to_string().contains(bad), "the secret is never shown");
    }
    let secret = webhook::generate_secret();
    for bad in ["ftp://hooks.example/x", "not a url", "/relative"] {
        let err = render(
            &destination(DestinationKind::Webhook, bad, Some(&secret)),
            &msg,
            now,
        )
        .unwrap_err();
        assert!(
            matches!(err, RenderError::BadUrl { dest: 7, .. }),
            "{bad}: {err}"
        );
    }
}

#[test]
fn webhook_secret_with_two_keys_signs_for_both_during_a_rotation() {
    let (old, new) = (webhook::generate_secret(), webhook::generate_secret());
    let both = format!("{new} {old}");
    let dest = destination(
        DestinationKind::Webhook,
        "https://hooks.example/x",
        Some(&both),
    );
    let now = Utc::now();
    let req = render(&dest, &message(Event::Firing), now).unwrap();
    assert_eq!(header(&req, "webhook-signature").split(' ').count(), 2);
    for secret in [&old, &new] {
        let tolerance = Duration::from_secs(300);
        webhook::verify(secret, &req.headers, &req.body, now, tolerance).unwrap();
        assert!(python_verifies(secret, &req.headers, &req.body).0);
    }
}

// ---------------------------------------------------------------------------------------
// Alertmanager

#[test]
fn alertmanager_bodies_validate_against_the_api_v2_schema() {
    let dest = destination(
        DestinationKind::Alertmanager,
        "http://am.example:9093",
        None,
    );
    let now = Utc.with_ymd_and_hms(2026, 3, 1, 9, 31, 0).unwrap();
    let bodies: Vec<_> = EVENTS
        .iter()
        .map(|&event| {
            let req = render(&dest, &message(event), now).unwrap();
            assert_eq!(req.url, "http://am.example:9093/api/v2/alerts");
            assert_eq!(header(&req, "content-type"), "application/json");
            body_json(&req)
        })
        .collect();
    assert_all_valid("alertmanager-postable-alerts.schema.json", &bodies);

    let mut no_labels = bodies[0].clone();
    no_labels[0].as_object_mut().unwrap().remove("labels");
    let mut bad_name = bodies[0].clone();
    bad_name[0]["labels"]["device.model"] = "x".into();
    let mut number = bodies[0].clone();
    number[0]["annotations"]["evidence"] = 3.into();
    let verdicts = validate(
        "alertmanager-postable-alerts.schema.json",
        &[no_labels, bad_name, number],
    );
    for verdict in verdicts {
        assert!(verdict.starts_with("invalid"), "{verdict}");
    }
}

#[test]
fn alertmanager_alert_is_identified_by_labels_and_leased_while_firing() {
    let now = Utc.with_ymd_and_hms(2026, 3, 1, 9, 31, 0).unwrap();
    let dest = destination(DestinationKind::Alertmanager, "https://am.example/", None);
    let render_one = |event| body_json(&render(&dest, &message(event), now).unwrap())[0].clone();

    let firing = render_one(Event::Firing);
    let labels = firing["labels"].as_object().unwrap();
    assert_eq!(labels["alertname"], "flatline");
    assert_eq!(labels["severity"], "warning");
    assert_eq!(labels["tenant"], "acme");
    assert_eq!(labels["fingerprint"], "9f2c1e7a44b0d8e1");
    assert_eq!(labels["well"], "W-7");
    assert_eq!(labels["device_model"], "ROC800");
    assert!(!labels.contains_key("empty"), "empty labels are absent");
    assert!(!labels.contains_key("test"));
    assert_eq!(firing["startsAt"], "2026-03-01T06:30:00.000Z");
    let ends = DateTime::parse_from_rfc3339(firing["endsAt"].as_str().unwrap()).unwrap();
    let lease = (ends.with_timezone(&Utc) - now).to_std().unwrap();
    assert_eq!(lease, alerts::deliver::alertmanager::VALIDITY);
    assert!(alerts::deliver::alertmanager::RESEND_EVERY * 3 < lease);
    assert_eq!(
        firing["generatorURL"],
        "https://app.wellpulse.example/t/acme/alerts/42"
    );
    assert_eq!(
        firing["annotations"]["summary"],
        message(Event::Firing).alert.summary
    );
    let evidence: serde_json::Value =
        serde_json::from_str(firing["annotations"]["evidence"].as_str().unwrap()).unwrap();
    assert_eq!(evidence["unit"], "psi");

    // Acknowledged and re-sent: the same alert, still firing.
    for event in [Event::Acknowledged, Event::Resend] {
        let again = render_one(event);
        assert_eq!(again["labels"], firing["labels"], "{event:?}");
        assert_eq!(again["endsAt"], firing["endsAt"], "{event:?}");
    }
    assert_eq!(
        render_one(Event::Acknowledged)["annotations"]["state"],
        "acknowledged"
    );

    // Resolved: same labels, ends when it resolved.
    let resolved = render_one(Event::Resolved);
    assert_eq!(resolved["labels"], firing["labels"]);
    assert_eq!(resolved["endsAt"], "2026-03-01T09:30:00.000Z");

    assert_eq!(render_one(Event::Test)["labels"]["test"], "true");
}

#[test]
fn alertmanager_url_gets_the_api_path_once() {
    let msg = message(Event::Firing);
    let now = Utc::now();
    for (given, expected) in [
        ("http://am:9093", "http://am:9093/api/v2/alerts"),
        ("http://am:9093/", "http://am:9093/api/v2/alerts"),
        (
            "https://ops.example/alertmanager",
            "https://ops.example/alertmanager/api/v2/alerts",
        ),
        (
            "http://am:9093/api/v2/alerts",
            "http://am:9093/api/v2/alerts",
        ),
        (
            "http://am:9093/api/v2/alerts/",
            "http://am:9093/api/v2/alerts",
        ),
        (
            "http://am:9093/x?tenant=1",
            "http://am:9093/x/api/v2/alerts?tenant=1",
        ),
    ] {
        let dest = destination(DestinationKind::Alertmanager, given, None);
        assert_eq!(render(&dest, &msg, now).unwrap().url, expected, "{given}");
    }
}

// ---------------------------------------------------------------------------------------
// PagerDuty

const ROUTING_KEY: &str = "R0123456789ABCDEF0123456789ABCDE";

#[test]
fn pagerduty_bodies_validate_against_the_events_v2_schema() {
    let dest = destination(DestinationKind::Pagerduty, "", Some(ROUTING_KEY));
    let now = Utc::now();
    let mut bodies = Vec::new();
    for event in EVENTS {
        let req = render(&dest, &message(event), now).unwrap();
        assert_eq!(req.url, "https://events.pagerduty.com/v2/enqueue");
        assert_eq!(header(&req, "content-type"), "application/json");
        bodies.push(body_json(&req));
    }
    // A summary beyond PagerDuty's 1024 characters is cut, on a character boundary.
    let mut long = message(Event::Firing);
    long.alert.summary = "é".repeat(3000);
    let long = body_json(&render(&dest, &long, now).unwrap());
    assert_eq!(
        long["payload"]["summary"].as_str().unwrap().chars().count(),
        1024
    );
    bodies.push(long);
    assert_all_valid("pagerduty-event.schema.json", &bodies);

    let mut trigger_without_payload = bodies[0].clone();
    trigger_without_payload
        .as_object_mut()
        .unwrap()
        .remove("payload");
    let mut bad_severity = bodies[0].clone();
    bad_severity["payload"]["severity"] = "fatal".into();
    let mut no_key = bodies[2].clone();
    no_key.as_object_mut().unwrap().remove("routing_key");
    let verdicts = validate(
        "pagerduty-event.schema.json",
        &[trigger_without_payload, bad_severity, no_key],
    );
    for verdict in verdicts {
        assert!(verdict.starts_with("invalid"), "{verdict}");
    }
}

#[test]
fn pagerduty_events_follow_the_alert_lifecycle() {
    let dest = destination(
        DestinationKind::Pagerduty,
        "https://events.eu.pagerduty.com/v2/enqueue",
        Some(ROUTING_KEY),
    );
    let now = Utc::now();
    let pd = |event| {
        let req = render(&dest, &message(event), now).unwrap();
        assert_eq!(req.url, "https://events.eu.pagerduty.com/v2/enqueue");
        body_json(&req)
    };
    for (event, action) in [
        (Event::Firing, "trigger"),
        (Event::Resend, "trigger"),
        (Event::Escalated, "trigger"),
        (Event::Test, "trigger"),
        (Event::Acknowledged, "acknowledge"),
        (Event::Resolved, "resolve"),
    ] {
        let body = pd(event);
        assert_eq!(body["event_action"], action, "{event:?}");
        assert_eq!(body["routing_key"], ROUTING_KEY);
        assert_eq!(body["dedup_key"], "9f2c1e7a44b0d8e1", "{event:?}");
        assert_eq!(
            body.get("payload").is_some(),
            action == "trigger",
            "{event:?}"
        );
    }
    let firing = pd(Event::Firing);
    let payload = &firing["payload"];
    assert_eq!(payload["severity"], "warning");
    assert_eq!(payload["source"], "acme/W-7");
    assert_eq!(payload["component"], "tubing_pressure");
    assert_eq!(payload["group"], "north-pad");
    assert_eq!(payload["class"], "flatline");
    assert_eq!(payload["timestamp"], "2026-03-01T06:30:00.000Z");
    assert_eq!(payload["custom_details"]["evidence"]["value"], 1312.5);
    assert_eq!(
        firing["links"][0]["href"],
        "https://app.wellpulse.example/t/acme/alerts/42"
    );
    assert_eq!(firing["client"], "WellPulse");
    assert_eq!(pd(Event::Escalated)["payload"]["severity"], "critical");
}

#[test]
fn pagerduty_needs_a_routing_key() {
    let msg = message(Event::Firing);
    for secret in [None, Some(""), Some("  ")] {
        let dest = destination(DestinationKind::Pagerduty, "", secret);
        assert_eq!(
            render(&dest, &msg, Utc::now()),
            Err(RenderError::MissingSecret {
                dest: 7,
                what: "routing key"
            })
        );
    }
}

// ---------------------------------------------------------------------------------------
// Sender

#[tokio::test]
async fn server_error_is_retryable_then_delivered() {
    let mut receiver = Receiver::start(vec![Reply::Status(500, "database is down")]).await;
    let sender = sender();
    let req = post(receiver.url("/in"));
    match sender.send(&req).await {
        Attempt::Failed {
            status: Some(500),
            error,
            retryable: true,
        } => assert!(error.contains("database is down"), "{error}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(sender.send(&req).await, Attempt::Delivered { status: 200 });
    let got = receiver.drain();
    assert_eq!(got.len(), 2);
    assert!(got.iter().all(|r| r.body == b"{}" && r.path == "/in"));
}

#[tokio::test]
async fn statuses_are_classified() {
    let script = vec![
        Reply::Status(400, "bad event"),
        Reply::Status(401, ""),
        Reply::Status(404, ""),
        Reply::Status(408, ""),
        Reply::Status(425, ""),
        Reply::Status(429, "slow down"),
        Reply::Status(502, ""),
        Reply::Status(503, ""),
        Reply::Status(202, ""),
        Reply::Status(204, ""),
    ];
    let expected: Vec<(u16, Option<bool>)> = vec![
        (400, Some(false)),
        (401, Some(false)),
        (404, Some(false)),
        (408, Some(true)),
        (425, Some(true)),
        (429, Some(true)),
        (502, Some(true)),
        (503, Some(true)),
        (202, None),
        (204, None),
    ];
    let receiver = Receiver::start(script).await;
    let sender = sender();
    let req = post(receiver.url("/"));
    for (code, retry) in expected {
        let attempt = sender.send(&req).await;
        match (attempt, retry) {
            (Attempt::Delivered { status }, None) => assert_eq!(status, code),
            (
                Attempt::Failed {
                    status,
                    retryable,
                    error,
                },
                Some(retry),
            ) => {
                assert_eq!(status, Some(code));
                assert_eq!(retryable, retry, "{code}");
                assert!(error.contains(&code.to_string()), "{error}");
            }
            (attempt, _) => panic!("{code}: {attempt:?}"),
        }
    }
}

#[tokio::test]
async fn error_body_is_read_only_in_part() {
    static BIG: std::sync::LazyLock<&'static str> =
        std::sync::LazyLock::new(|| "x".repeat(1 << 20).leak());
    let receiver = Receiver::start(vec![Reply::Status(400, *BIG)]).await;
    match sender().send(&post(receiver.url("/"))).await {
        Attempt::Failed { error, .. } => {
            assert!(error.len() < 2200, "{} bytes kept", error.len());
            assert!(error.contains("xxxx"));
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn refused_connection_is_retryable() {
    let addr = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    }; // closed: nothing listens there now
    let req = post(format!("http://{addr}/hook"));
    match sender().send(&req).await {
        Attempt::Failed {
            status: None,
            error,
            retryable: true,
        } => {
            assert!(error.contains("connect"), "{error}");
            assert!(
                !error.contains(&addr.to_string()),
                "no URL in errors: {error}"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn timeout_is_retryable() {
    let mut receiver = Receiver::start(vec![Reply::Hang]).await;
    let sender = Sender::new(Duration::from_millis(300)).unwrap();
    match sender.send(&post(receiver.url("/slow"))).await {
        Attempt::Failed {
            status: None,
            error,
            retryable: true,
        } => assert!(error.contains("timed out"), "{error}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        receiver.drain().len(),
        1,
        "the request reached the receiver"
    );
}

#[tokio::test]
async fn redirect_is_not_followed() {
    let mut receiver = Receiver::start(vec![Reply::Redirect("/elsewhere")]).await;
    match sender().send(&post(receiver.url("/hook"))).await {
        Attempt::Failed {
            status: Some(307),
            error,
            retryable: false,
        } => assert!(error.contains("redirect not followed"), "{error}"),
        other => panic!("{other:?}"),
    }
    let got = receiver.drain();
    assert_eq!(got.len(), 1, "only the first request: {got:?}");
    assert_eq!(got[0].path, "/hook");
}

#[tokio::test]
async fn invalid_request_is_permanent() {
    let mut req = post("http://127.0.0.1:1/".into());
    req.headers.push(("bad header".into(), "x".into()));
    match sender().send(&req).await {
        Attempt::Failed {
            status: None,
            retryable: false,
            ..
        } => {}
        other => panic!("{other:?}"),
    }
}

/// A TLS server on 127.0.0.1 with a certificate from a CA of its own: answers one request
/// with 204 and returns what it read.
async fn tls_server() -> (
    SocketAddr,
    rustls::pki_types::CertificateDer<'static>,
    tokio::task::JoinHandle<Vec<u8>>,
) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::default();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            // A client that refuses the certificate fails the handshake: wait for the next.
            let Ok(mut tls) = acceptor.accept(tcp).await else {
                continue;
            };
            let mut read = Vec::new();
            let mut buf = [0u8; 4096];
            loop {
                let n = tls.read(&mut buf).await.unwrap();
                assert!(n > 0, "the client closed before a whole request");
                read.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&read);
                if let Some(end) = text.find("\r\n\r\n") {
                    let length: usize = text[..end]
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("content-length")
                                .then(|| v.trim().parse().unwrap())
                        })
                        .unwrap_or(0);
                    if read.len() >= end + 4 + length {
                        break;
                    }
                }
            }
            tls.write_all(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n")
                .await
                .unwrap();
            tls.shutdown().await.unwrap();
            return read;
        }
    });
    (addr, ca_cert.der().clone(), server)
}

#[tokio::test]
async fn tls_uses_the_ring_provider_and_checks_the_certificate() {
    let (addr, ca, server) = tls_server().await;
    let req = post(format!("https://{addr}/hook"));

    // Public roots only: the private CA is refused, and a retry may succeed once fixed.
    match sender().send(&req).await {
        Attempt::Failed {
            status: None,
            error,
            retryable: true,
        } => assert!(error.to_lowercase().contains("certificate"), "{error}"),
        other => panic!("{other:?}"),
    }

    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca).unwrap();
    let trusting = Sender::with_roots(Duration::from_secs(10), roots).unwrap();
    assert_eq!(
        trusting.send(&req).await,
        Attempt::Delivered { status: 204 }
    );
    let read = String::from_utf8(server.await.unwrap()).unwrap();
    assert!(read.starts_with("POST /hook HTTP/1.1\r\n"), "{read}");
    assert!(read.ends_with("\r\n\r\n{}"), "{read}");
}
