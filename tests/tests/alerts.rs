//! Trouble at a well reaches people and pipelines, once: simulator (a rod part injected
//! into a rod-pump controller) → agent → embedded broker → **two** ingesters sharing the
//! subscription (each scoring what it stored, right after the commit) → outbox → a signed webhook, a
//! PagerDuty receiver and the API's live stream, on loopback. Then an operator acknowledges
//! through the API and both destinations hear it under the same keys; every change is in
//! the audit log.

use std::time::Duration;

use alerts::deliver::webhook;
use alerts::outbox::{Outbox, OutboxOptions};
use api::{ApiOptions, ApiState};
use base::Secret;
use chrono::Utc;
use simulator::Failure;
use store::identity::Role;
use testkit::http;
use testkit::receiver::Receiver;
use tests::stack::{BrokerKind, Stack, TENANT};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

const BROKER_BIN: &str = env!("CARGO_BIN_EXE_wp-test-broker");
const CA_KEY: &str = "e2e-alerts-sealing-secret-0123456789abcdef";
const WAIT: Duration = Duration::from_secs(90);

/// Opens the tenant's alert stream and returns its lines as they come.
async fn open_stream(
    addr: std::net::SocketAddr,
    token: &str,
) -> tokio::sync::mpsc::UnboundedReceiver<String> {
    let mut stream = TcpStream::connect(addr).await.expect("connect to the API");
    let request = format!(
        "GET /api/v1/tenants/{TENANT}/alerts/stream HTTP/1.1\r\nHost: {addr}\r\n\
         Authorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut lines = BufReader::new(stream).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// The next `data:` line after an `event: <name>` line.
async fn next_event(
    lines: &mut tokio::sync::mpsc::UnboundedReceiver<String>,
    name: &str,
) -> String {
    let wanted = format!("event: {name}");
    tokio::time::timeout(WAIT, async {
        let mut armed = false;
        while let Some(line) = lines.recv().await {
            if line == wanted {
                armed = true;
            } else if armed && let Some(data) = line.strip_prefix("data: ") {
                return data.to_owned();
            }
        }
        panic!("the stream ended before `{name}`")
    })
    .await
    .unwrap_or_else(|_| panic!("no `{name}` event on the stream"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rod_part_reaches_a_signed_webhook_pagerduty_and_the_stream_once() -> anyhow::Result<()> {
    let stack = Stack::start_fleet(
        BrokerKind::Embedded,
        1,
        &["rod-pump-controller", "gas-detector"],
        BROKER_BIN,
    )
    .await?;
    let second = stack.start_extra_ingester("b")?;
    stack.wait_rows(200, Duration::from_secs(120)).await?;

    let options = ApiOptions {
        ca_key: Some(Secret::new(CA_KEY)),
        ..ApiOptions::default()
    };
    let state = ApiState::new(stack.db.clone(), options);
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(api::serve(listener, state, std::future::pending::<()>()));
    let tenant = stack.db.tenant_by_slug(TENANT).await?.expect("tenant");
    let admin = testkit::auth::member_token(&stack.db, tenant, Role::TenantAdmin).await;
    let operator = testkit::auth::member_token(&stack.db, tenant, Role::Operator).await;

    // Destinations: a webhook (its signing secret shown once) and PagerDuty.
    let hook = Receiver::start(&[]).await;
    let pager = Receiver::start(&[]).await;
    let created = http::send_as(
        addr,
        &admin,
        "POST",
        &format!("/api/v1/tenants/{TENANT}/alert-destinations"),
        Some(&serde_json::json!({ "name": "ops", "kind": "webhook", "url": hook.url("/hook") })),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.text());
    let secret = created.json()["signing_secret"]
        .as_str()
        .expect("secret")
        .to_owned();
    let created = http::send_as(
        addr,
        &admin,
        "POST",
        &format!("/api/v1/tenants/{TENANT}/alert-destinations"),
        Some(&serde_json::json!({ "name": "pager", "kind": "pagerduty",
                                  "url": pager.url("/v2/enqueue"), "routing_key": "R0UT1NG" })),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.text());
    assert!(
        created.json()["signing_secret"].is_null(),
        "a routing key is never shown back"
    );

    let key = store::certificates::CaKey::from_secret(CA_KEY)?;
    let outbox = Outbox::new(stack.db.clone(), Some(key), OutboxOptions::default())
        .map_err(anyhow::Error::msg)?;
    let worker = tokio::spawn(outbox.run());
    let mut stream = open_stream(addr, &operator).await;
    assert_eq!(next_event(&mut stream, "ready").await, TENANT);

    // The rod parts.
    let pump = stack
        .simulator
        .endpoints()
        .into_iter()
        .find(|e| e.profile == "rod-pump-controller")
        .expect("a rod pump");
    let injected = Utc::now();
    stack
        .simulator
        .inject(&pump.device, Failure::RodPart, Duration::from_secs(600));

    let fired = hook
        .next_matching(WAIT, |r| {
            let e = r.json();
            e["type"] == "com.wellpulse.alert.firing" && e["data"]["alert"]["kind"] == "rod_part"
        })
        .await
        .expect("a firing webhook for the rod part");
    webhook::verify(
        &secret,
        &fired.headers,
        &fired.body,
        Utc::now(),
        Duration::from_secs(300),
    )
    .expect("the webhook signature verifies with the secret shown at creation");
    let event = fired.json();
    let alert = &event["data"]["alert"];
    assert_eq!(alert["kind"], "rod_part", "{event}");
    assert_eq!(alert["severity"], "critical", "{event}");
    assert_eq!(alert["labels"]["device"], pump.device.as_str());
    assert_eq!(alert["labels"]["well"], pump.well.as_str());
    assert!(
        alert["evidence"]["detail"]
            .as_str()
            .is_some_and(|d| !d.is_empty()),
        "{event}"
    );
    let started = chrono::DateTime::parse_from_rfc3339(alert["started_at"].as_str().unwrap())?;
    assert!(
        started >= injected - chrono::Duration::seconds(2),
        "{started} vs {injected}"
    );

    let trigger = pager
        .next_matching(WAIT, |r| {
            let e = r.json();
            e["event_action"] == "trigger"
                && e["dedup_key"]
                    .as_str()
                    .is_some_and(|k| k.contains("/rod_part/"))
        })
        .await
        .expect("a PagerDuty trigger")
        .json();
    assert_eq!(trigger["event_action"], "trigger", "{trigger}");
    assert_eq!(trigger["routing_key"], "R0UT1NG");
    let dedup = trigger["dedup_key"].as_str().unwrap().to_owned();
    loop {
        let live: serde_json::Value =
            serde_json::from_str(&next_event(&mut stream, "alert").await)?;
        if live["alert"]["kind"] == "rod_part" {
            assert_eq!(live["event"], "firing", "{live}");
            break;
        }
    }

    // Two ingesters stored this device's batches, and opened one alert, told once.
    let stored_by_second = second.stats().snapshot().batches_stored;
    let stored_by_first = stack
        .ingester
        .as_ref()
        .expect("ingester")
        .stats()
        .snapshot()
        .batches_stored;
    assert!(
        stored_by_first > 0 && stored_by_second > 0,
        "{stored_by_first} / {stored_by_second}"
    );
    let (alerts, firings): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM alerts WHERE kind = 'rod_part'),
                (SELECT count(*) FROM alert_deliveries d JOIN alerts a ON a.id = d.alert_id
                  WHERE a.kind = 'rod_part' AND d.event = 'firing')",
    )
    .fetch_one(stack.db.pool())
    .await?;
    assert_eq!(
        (alerts, firings),
        (1, 2),
        "one alert, one firing per destination"
    );

    // The API shows it; an operator acknowledges; both destinations hear it.
    let list = http::send_as(
        addr,
        &operator,
        "GET",
        &format!("/api/v1/tenants/{TENANT}/alerts?state=open&kind=rod_part"),
        None,
    )
    .await;
    assert_eq!(list.status, 200, "{}", list.text());
    let id = list.json()["items"][0]["id"].as_i64().expect("the alert");
    let ack = http::send_as(
        addr,
        &operator,
        "POST",
        &format!("/api/v1/tenants/{TENANT}/alerts/{id}/acknowledge"),
        None,
    )
    .await;
    assert_eq!(ack.status, 200, "{}", ack.text());
    assert_eq!(ack.json()["state"], "acknowledged");
    let pd_ack = pager
        .next_matching(WAIT, |r| r.json()["event_action"] == "acknowledge")
        .await
        .expect("a PagerDuty acknowledge")
        .json();
    assert_eq!(pd_ack["dedup_key"], dedup.as_str());
    let hook_ack = hook
        .next_matching(WAIT, |r| {
            let e = r.json();
            e["type"] == "com.wellpulse.alert.acknowledged" && e["data"]["alert"]["id"] == id
        })
        .await
        .expect("an acknowledged webhook");
    assert_eq!(hook_ack.json()["subject"], event["subject"]);
    let detail = http::send_as(
        addr,
        &operator,
        "GET",
        &format!("/api/v1/tenants/{TENANT}/alerts/{id}"),
        None,
    )
    .await;
    let events: Vec<String> = detail.json()["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        events.starts_with(&["firing".to_owned()]) && events.contains(&"acknowledged".to_owned()),
        "{events:?}"
    );

    // Another tenant's admin does not see it.
    let rival = stack.db.create_tenant("rival", "Rival Oil").await?;
    let outsider = testkit::auth::member_token(&stack.db, rival, Role::TenantAdmin).await;
    let peek = http::send_as(
        addr,
        &outsider,
        "GET",
        &format!("/api/v1/tenants/{TENANT}/alerts/{id}"),
        None,
    )
    .await;
    assert_eq!(peek.status, 404, "{}", peek.text());
    let own = http::send_as(
        addr,
        &outsider,
        "GET",
        &format!("/api/v1/tenants/rival/alerts/{id}"),
        None,
    )
    .await;
    assert_eq!(own.status, 404, "{}", own.text());

    let audited: Vec<String> = sqlx::query_scalar("SELECT action FROM audit_log ORDER BY id")
        .fetch_all(stack.db.pool())
        .await?;
    for action in ["alert_destination.create", "alert.acknowledge"] {
        assert!(
            audited.iter().any(|a| a == action),
            "{action} not audited: {audited:?}"
        );
    }
    worker.abort();
    server.abort();
    second.abort();
    stack.finish().await
}
