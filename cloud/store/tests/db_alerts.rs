//! The alert lifecycle in SQL (`store::alerts`): opening by fingerprint, dedup, refiring
//! within the hold time, resolving after it, flap damping, silences, escalation, the
//! outbox rows each change owes, and tenant isolation of every read.

use chrono::{Duration, Utc};
use store::alerts::{self, AlertPolicy, Change, DestinationInput, SignalRecord};
use store::{Db, DeviceId, TenantId};
use testkit::db::{TestDb, birth, fixture};

const POLICY: AlertPolicy = AlertPolicy {
    hold: Duration::seconds(60),
    flap_window: Duration::hours(1),
    flap_threshold: 2,
};

async fn device(db: &Db, f: &testkit::db::Fixture) -> DeviceId {
    db.apply_birth(
        f.gateway,
        &birth(1, Utc::now().timestamp_millis(), &["h2s_ppm"]),
        Utc::now(),
    )
    .await
    .unwrap();
    sqlx::query_scalar("SELECT id FROM devices WHERE gateway_id = $1")
        .bind(f.gateway)
        .fetch_one(db.pool())
        .await
        .unwrap()
}

fn signal(
    tenant: TenantId,
    device: DeviceId,
    active: bool,
    at: chrono::DateTime<Utc>,
) -> SignalRecord<'static> {
    SignalRecord {
        tenant,
        device,
        kind: "h2s_high",
        subject: Some("h2s_ppm"),
        severity: "critical",
        active,
        page: true,
        at,
        evidence: serde_json::json!({ "detector": "threshold", "value": 25.0, "detail": "H2S 25 ppm" }),
        summary: "H2S above threshold — gas-1, h2s_ppm".to_owned(),
    }
}

async fn record(db: &Db, signals: &[SignalRecord<'_>]) -> alerts::Recorded {
    let mut tx = db.pool().begin().await.unwrap();
    let done = alerts::record_signals(&mut tx, signals, &POLICY)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    done
}

async fn count(db: &Db, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(db.pool()).await.unwrap()
}

async fn webhook(db: &Db, tenant: TenantId, min_severity: &str) -> i64 {
    let mut tx = db.begin_tenant(tenant).await.unwrap();
    let d = alerts::create_destination(
        &mut tx,
        tenant,
        &DestinationInput {
            name: &format!("hook-{min_severity}"),
            kind: "webhook",
            url: "http://127.0.0.1:9/hook",
            min_severity,
            enabled: true,
        },
        None,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    d.id
}

#[tokio::test]
async fn an_alert_opens_once_refires_silently_and_resolves_after_the_hold_time() {
    let test = TestDb::plain("alerts_life").await;
    let db = &test.db;
    let f = fixture(db, "acme").await;
    let dev = device(db, &f).await;
    webhook(db, f.tenant, "info").await;
    webhook(db, f.tenant, "critical").await;
    let t0 = Utc::now() - Duration::minutes(10);

    let done = record(db, &[signal(f.tenant, dev, true, t0)]).await;
    assert_eq!((done.findings, done.opened, done.queued), (1, 1, 2));
    // The same condition again: the same alert, nothing more told.
    let done = record(
        db,
        &[signal(f.tenant, dev, true, t0 + Duration::seconds(1))],
    )
    .await;
    assert_eq!((done.opened, done.queued), (0, 0));
    assert_eq!(count(db, "SELECT count(*) FROM alerts").await, 1);

    // Clears, fires again within the hold time: re-armed, not resolved, not told.
    record(
        db,
        &[signal(f.tenant, dev, false, t0 + Duration::seconds(2))],
    )
    .await;
    record(
        db,
        &[signal(f.tenant, dev, true, t0 + Duration::seconds(3))],
    )
    .await;
    assert_eq!(
        alerts::resolve_cleared(db, Utc::now(), POLICY.hold)
            .await
            .unwrap(),
        0
    );
    let events: Vec<String> = sqlx::query_scalar("SELECT event FROM alert_events ORDER BY id")
        .fetch_all(db.pool())
        .await
        .unwrap();
    assert_eq!(events, ["firing", "condition_cleared", "refired"]);

    // Clears for good: resolved once the hold time passed, and told where it was told.
    record(
        db,
        &[signal(f.tenant, dev, false, t0 + Duration::seconds(4))],
    )
    .await;
    assert_eq!(
        alerts::resolve_cleared(db, t0 + Duration::seconds(30), POLICY.hold)
            .await
            .unwrap(),
        0,
        "not before the hold time"
    );
    assert_eq!(
        alerts::resolve_cleared(db, Utc::now(), POLICY.hold)
            .await
            .unwrap(),
        1
    );
    let told: Vec<(String, i64)> = sqlx::query_as(
        "SELECT event, count(*) FROM alert_deliveries GROUP BY event ORDER BY event",
    )
    .fetch_all(db.pool())
    .await
    .unwrap();
    assert_eq!(told, [("firing".to_owned(), 2), ("resolved".to_owned(), 2)]);
    // The snapshot is the alert as destinations see it.
    let snap: serde_json::Value = sqlx::query_scalar(
        "SELECT snapshot FROM alert_deliveries WHERE event = 'resolved' LIMIT 1",
    )
    .fetch_one(db.pool())
    .await
    .unwrap();
    assert_eq!(snap["state"], "resolved");
    assert_eq!(snap["labels"]["well"], "Smith 1H");
    assert_eq!(snap["labels"]["device"], "rpc-1");
    assert_eq!(snap["labels"]["tenant"], "acme");

    // A historical activation is a finding, never an alert.
    let mut old = signal(f.tenant, dev, true, t0 - Duration::days(3));
    old.page = false;
    let done = record(db, &[old]).await;
    assert_eq!((done.findings, done.opened), (1, 0));
    assert_eq!(
        count(db, "SELECT count(*) FROM findings WHERE historical").await,
        1
    );
    test.finish().await;
}

#[tokio::test]
async fn flapping_silences_escalation_and_people_are_handled() {
    let test = TestDb::plain("alerts_flap").await;
    let db = &test.db;
    let f = fixture(db, "acme").await;
    let dev = device(db, &f).await;
    webhook(db, f.tenant, "info").await;
    let now = Utc::now();

    // Two open/resolve cycles within the flap window: the third alert is flapping.
    for _ in 0..2 {
        record(db, &[signal(f.tenant, dev, true, now)]).await;
        let mut tx = db.begin_tenant(f.tenant).await.unwrap();
        let id: i64 = sqlx::query_scalar("SELECT max(id) FROM alerts")
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        assert!(matches!(
            alerts::resolve(&mut tx, f.tenant, id, "op@acme")
                .await
                .unwrap(),
            Change::Done(_)
        ));
        tx.commit().await.unwrap();
    }
    let done = record(db, &[signal(f.tenant, dev, true, now)]).await;
    assert_eq!((done.opened, done.queued), (1, 0), "flapping: not told yet");
    assert_eq!(
        alerts::notify_pending(db, now, POLICY.hold).await.unwrap(),
        0
    );
    assert_eq!(
        alerts::notify_pending(db, now + Duration::minutes(2), POLICY.hold)
            .await
            .unwrap(),
        1,
        "told once it held for the hold time"
    );
    // Escalation: told, unacknowledged for long enough.
    assert_eq!(
        alerts::escalate(db, Utc::now(), Duration::minutes(30))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        alerts::escalate(db, Utc::now() + Duration::hours(1), Duration::minutes(30))
            .await
            .unwrap(),
        1
    );

    // People: acknowledge (told), a second time is no change, a comment, an assignment to
    // a non-member refused.
    let mut tx = db.begin_tenant(f.tenant).await.unwrap();
    let id: i64 = sqlx::query_scalar("SELECT max(id) FROM alerts")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert!(
        matches!(alerts::acknowledge(&mut tx, f.tenant, id, "op@acme").await.unwrap(), Change::Done(a) if a.state == "acknowledged")
    );
    assert!(matches!(
        alerts::acknowledge(&mut tx, f.tenant, id, "op@acme")
            .await
            .unwrap(),
        Change::Unchanged(_)
    ));
    assert!(
        alerts::comment(&mut tx, f.tenant, id, "op@acme", "crew dispatched")
            .await
            .unwrap()
            .is_some()
    );
    assert!(matches!(
        alerts::assign(
            &mut tx,
            f.tenant,
            id,
            Some(store::UserId(999_999)),
            "op@acme"
        )
        .await
        .unwrap(),
        Change::Conflict(_)
    ));
    tx.commit().await.unwrap();

    // A silence on the kind: the next alert of another device's condition is recorded, not told.
    let mut tx = db.begin_tenant(f.tenant).await.unwrap();
    alerts::create_silence(
        &mut tx,
        f.tenant,
        &alerts::NewSilence {
            kind: Some("pump_off"),
            well: None,
            device: None,
            starts_at: None,
            ends_at: Utc::now() + Duration::hours(1),
            comment: "workover",
            created_by: "op@acme",
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let mut pump = signal(f.tenant, dev, true, now);
    pump.kind = "pump_off";
    pump.subject = None;
    let done = record(db, &[pump]).await;
    assert_eq!((done.opened, done.queued), (1, 0));
    assert_eq!(
        count(
            db,
            "SELECT count(*) FROM alerts WHERE silence_id IS NOT NULL"
        )
        .await,
        1
    );

    // Another tenant sees none of it.
    let other = fixture(db, "rival").await;
    let mut tx = db.begin_tenant(other.tenant).await.unwrap();
    let seen = alerts::list(
        &mut tx,
        other.tenant,
        &alerts::AlertFilter {
            limit: 100,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(seen.is_empty());
    assert!(
        alerts::get(&mut tx, other.tenant, id)
            .await
            .unwrap()
            .is_none()
    );
    let rls: i64 = sqlx::query_scalar("SELECT count(*) FROM alerts")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(rls, 0, "row-level security hides other tenants' alerts");
    tx.commit().await.unwrap();
    test.finish().await;
}

#[tokio::test]
async fn the_outbox_is_claimed_once_and_retried_after_a_lease() {
    let test = TestDb::plain("alerts_outbox").await;
    let db = &test.db;
    let f = fixture(db, "acme").await;
    let dev = device(db, &f).await;
    webhook(db, f.tenant, "info").await;
    record(db, &[signal(f.tenant, dev, true, Utc::now())]).await;

    let first = alerts::claim_due(db, Duration::seconds(30), 10)
        .await
        .unwrap();
    assert_eq!(first.len(), 1);
    assert!(
        alerts::claim_due(db, Duration::seconds(30), 10)
            .await
            .unwrap()
            .is_empty(),
        "leased"
    );
    // A worker that dies keeps the lease until it ends; then the row is claimed again.
    sqlx::query("UPDATE alert_deliveries SET lease_until = now() - interval '1 second'")
        .execute(db.pool())
        .await
        .unwrap();
    let again = alerts::claim_due(db, Duration::seconds(30), 10)
        .await
        .unwrap();
    assert_eq!((again.len(), again[0].attempts), (1, 2));
    alerts::finish_delivery(
        db,
        again[0].id,
        &alerts::AttemptResult::Failed {
            status: Some(503),
            error: "busy".into(),
            retry_at: None,
        },
    )
    .await
    .unwrap();
    assert_eq!(
        count(
            db,
            "SELECT count(*) FROM alert_deliveries WHERE state = 'dead'"
        )
        .await,
        1
    );
    let last: Option<String> = sqlx::query_scalar("SELECT last_error FROM alert_destinations")
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert_eq!(last.as_deref(), Some("busy"));
    test.finish().await;
}
