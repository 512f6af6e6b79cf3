//! The delivery worker against real receivers on loopback and a real database: retries
//! until a failing receiver recovers, a worker killed mid-retry is taken over by another
//! (no alert lost), Alertmanager hears an open alert again while it fires and `endsAt` when
//! it resolves, PagerDuty gets trigger / acknowledge / resolve under one dedup key.

use std::time::Duration;

use alerts::deliver::webhook;
use alerts::outbox::{Outbox, OutboxOptions};
use chrono::Utc;
use store::alerts::{self as sql, AlertPolicy, DESTINATION_SECRET, DestinationInput, SignalRecord};
use store::certificates::CaKey;
use store::{Db, DeviceId, TenantId};
use testkit::db::{TestDb, birth, fixture};
use testkit::receiver::Receiver;

const CA_KEY: &str = "outbox-test-sealing-secret-0123456789abcdef";
const POLICY: AlertPolicy = AlertPolicy {
    hold: chrono::Duration::seconds(1),
    flap_window: chrono::Duration::hours(1),
    flap_threshold: 100,
};
const WAIT: Duration = Duration::from_secs(20);

fn options() -> OutboxOptions {
    OutboxOptions {
        retry_min: Duration::from_millis(50),
        retry_max: Duration::from_millis(200),
        request_timeout: Duration::from_secs(2),
        lease: Duration::from_secs(1),
        public_url: "https://app.example".into(),
        ..OutboxOptions::default()
    }
}

struct Setup {
    test: TestDb,
    tenant: TenantId,
    device: DeviceId,
    key: CaKey,
}

async fn setup(prefix: &str) -> Setup {
    let test = TestDb::plain(prefix).await;
    let f = fixture(&test.db, "acme").await;
    let now = Utc::now();
    test.db
        .apply_birth(
            f.gateway,
            &birth(1, now.timestamp_millis(), &["pump_fillage_pct"]),
            now,
        )
        .await
        .unwrap();
    let device = sqlx::query_scalar("SELECT id FROM devices")
        .fetch_one(test.db.pool())
        .await
        .unwrap();
    Setup {
        test,
        tenant: f.tenant,
        device,
        key: CaKey::from_secret(CA_KEY).unwrap(),
    }
}

async fn destination(s: &Setup, kind: &str, url: &str, secret: Option<&str>) {
    let sealed = secret.map(|x| {
        s.key
            .seal_as(DESTINATION_SECRET, s.tenant, x.as_bytes())
            .unwrap()
    });
    let mut tx = s.test.db.begin_tenant(s.tenant).await.unwrap();
    sql::create_destination(
        &mut tx,
        s.tenant,
        &DestinationInput {
            name: kind,
            kind,
            url,
            min_severity: "info",
            enabled: true,
        },
        sealed.as_deref(),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
}

async fn fire(db: &Db, s: &Setup, active: bool) {
    let mut tx = db.pool().begin().await.unwrap();
    sql::record_signals(
        &mut tx,
        &[SignalRecord {
            tenant: s.tenant,
            device: s.device,
            kind: "pump_off",
            subject: None,
            severity: "warning",
            active,
            page: true,
            at: Utc::now(),
            evidence: serde_json::json!({ "detector": "pump_off", "detail": "fillage 31 %" }),
            summary: "pump-off: fillage low, pump idling — rpc-1".into(),
        }],
        &POLICY,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
}

/// Waits until every delivery is in `state` (the worker records after the receiver
/// answered); panics after [`WAIT`].
async fn settled(db: &Db, state: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while states(db).await.iter().any(|s| s.1 != state) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "deliveries never all {state}: {:?}",
            states(db).await
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn states(db: &Db) -> Vec<(String, String, i32)> {
    sqlx::query_as("SELECT event, state, attempts FROM alert_deliveries ORDER BY id")
        .fetch_all(db.pool())
        .await
        .unwrap()
}

#[tokio::test]
async fn a_receiver_that_fails_three_times_still_gets_the_alert() {
    let s = setup("outbox_retry").await;
    let receiver = Receiver::start(&[503, 500, 429]).await;
    let secret = webhook::generate_secret();
    destination(&s, "webhook", &receiver.url("/hook"), Some(&secret)).await;
    fire(&s.test.db, &s, true).await;
    let worker = tokio::spawn(
        Outbox::new(s.test.db.clone(), Some(s.key.clone()), options())
            .unwrap()
            .run(),
    );

    let delivered = receiver
        .next_matching(WAIT, |r| r.status == 200)
        .await
        .expect("delivered");
    settled(&s.test.db, "delivered").await;
    worker.abort();
    let all = receiver.all();
    assert_eq!(all.len(), 4, "three failures, then delivered");
    let ids: Vec<_> = all
        .iter()
        .map(|r| r.header("webhook-id").unwrap().to_owned())
        .collect();
    assert!(
        ids.iter().all(|id| id == &ids[0]),
        "one message id across retries: {ids:?}"
    );
    let headers: Vec<(String, String)> = delivered.headers.clone();
    webhook::verify(
        &secret,
        &headers,
        &delivered.body,
        Utc::now(),
        Duration::from_secs(300),
    )
    .expect("the signature verifies");
    let event = delivered.json();
    assert_eq!(event["type"], "com.wellpulse.alert.firing", "{event}");
    assert_eq!(event["data"]["alert"]["kind"], "pump_off");
    assert!(
        event["data"]["alert"]["url"]
            .as_str()
            .unwrap()
            .starts_with("https://app.example/alerts/")
    );
    // The delivery log says so.
    let log = states(&s.test.db).await;
    assert_eq!(log, [("firing".to_owned(), "delivered".to_owned(), 4)]);
    s.test.finish().await;
}

#[tokio::test]
async fn a_worker_killed_mid_retry_is_taken_over_and_nothing_is_lost() {
    let s = setup("outbox_kill").await;
    let receiver = Receiver::start(&[503]).await;
    let secret = webhook::generate_secret();
    destination(&s, "webhook", &receiver.url("/hook"), Some(&secret)).await;
    fire(&s.test.db, &s, true).await;
    let slow = OutboxOptions {
        retry_min: Duration::from_secs(2),
        retry_max: Duration::from_secs(2),
        ..options()
    };
    let first = tokio::spawn(
        Outbox::new(s.test.db.clone(), Some(s.key.clone()), slow)
            .unwrap()
            .run(),
    );
    let failed = receiver.next(WAIT).await.expect("first attempt");
    assert_eq!(failed.status, 503);
    // Killed between attempts, as a process crash would: the row stays owed.
    first.abort();
    let _ = first.await;
    assert_eq!(states(&s.test.db).await[0].1, "pending");

    let second = tokio::spawn(
        Outbox::new(s.test.db.clone(), Some(s.key.clone()), options())
            .unwrap()
            .run(),
    );
    let delivered = receiver
        .next(WAIT)
        .await
        .expect("delivered by the new worker");
    settled(&s.test.db, "delivered").await;
    second.abort();
    assert_eq!(delivered.status, 200);
    assert_eq!(delivered.header("webhook-id"), failed.header("webhook-id"));
    s.test.finish().await;
}

#[tokio::test]
async fn alertmanager_hears_an_open_alert_again_and_its_end_and_pagerduty_its_lifecycle() {
    let s = setup("outbox_am_pd").await;
    let am = Receiver::start(&[]).await;
    let pd = Receiver::start(&[]).await;
    destination(&s, "alertmanager", &am.url(""), None).await;
    destination(
        &s,
        "pagerduty",
        &pd.url("/v2/enqueue"),
        Some("R0UTINGKEY123"),
    )
    .await;
    let worker = tokio::spawn(
        Outbox::new(s.test.db.clone(), Some(s.key.clone()), options())
            .unwrap()
            .run(),
    );
    fire(&s.test.db, &s, true).await;

    let firing = am.next(WAIT).await.expect("alertmanager: firing");
    assert_eq!(firing.path, "/api/v2/alerts");
    let body = firing.json();
    assert_eq!(body[0]["labels"]["alertname"], "pump_off", "{body}");
    let ends = chrono::DateTime::parse_from_rfc3339(body[0]["endsAt"].as_str().unwrap()).unwrap();
    assert!(ends > Utc::now(), "still firing: endsAt ahead");
    let trigger = pd.next(WAIT).await.expect("pagerduty: trigger").json();
    assert_eq!(trigger["event_action"], "trigger");
    assert_eq!(trigger["routing_key"], "R0UTINGKEY123");
    let dedup = trigger["dedup_key"].as_str().unwrap().to_owned();

    // While firing, Alertmanager hears it again (PagerDuty does not need to).
    assert_eq!(
        sql::resend_open(&s.test.db, Utc::now(), chrono::Duration::zero())
            .await
            .unwrap(),
        1
    );
    let again = am.next(WAIT).await.expect("alertmanager: re-sent").json();
    assert_eq!(again[0]["labels"], body[0]["labels"]);

    // Acknowledged by someone: PagerDuty acknowledges under the same key.
    let mut tx = s.test.db.begin_tenant(s.tenant).await.unwrap();
    let id: i64 = sqlx::query_scalar("SELECT id FROM alerts")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    sql::acknowledge(&mut tx, s.tenant, id, "op@acme")
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let ack = pd.next(WAIT).await.expect("pagerduty: acknowledge").json();
    assert_eq!(
        (ack["event_action"].as_str(), ack["dedup_key"].as_str()),
        (Some("acknowledge"), Some(dedup.as_str()))
    );
    am.next(WAIT)
        .await
        .expect("alertmanager: acknowledged (still firing there)");

    // The condition clears and holds: resolved, endsAt in the past, PagerDuty resolves.
    fire(&s.test.db, &s, false).await;
    let later = Utc::now() + chrono::Duration::seconds(2);
    assert_eq!(
        sql::resolve_cleared(&s.test.db, later, POLICY.hold)
            .await
            .unwrap(),
        1
    );
    let resolved = am.next(WAIT).await.expect("alertmanager: resolved").json();
    let ends =
        chrono::DateTime::parse_from_rfc3339(resolved[0]["endsAt"].as_str().unwrap()).unwrap();
    assert!(ends <= later, "endsAt is the resolution: {resolved}");
    let resolve = pd.next(WAIT).await.expect("pagerduty: resolve").json();
    assert_eq!(
        (
            resolve["event_action"].as_str(),
            resolve["dedup_key"].as_str()
        ),
        (Some("resolve"), Some(dedup.as_str()))
    );
    worker.abort();
    s.test.finish().await;
}
