//! Alerts: opened and cleared by detection's signals, resolved after a hold time,
//! acknowledged, assigned, commented, silenced and escalated; and the outbox of what each
//! destination is owed.
//!
//! # Lifecycle
//!
//! - A *paging* activation of a condition ([`record_signals`]) opens an alert keyed by its
//!   **fingerprint** (tenant, device, finding kind, subject): at most one alert per
//!   fingerprint is open (`firing` or `acknowledged`; a partial unique index), so a repeat
//!   updates it instead of opening another.
//! - The condition clearing sets `condition_cleared_at`; [`resolve_cleared`] resolves the
//!   alert once it stayed clear for the hold time. Firing again within the hold time
//!   re-arms the same alert silently (`refired`): flapping within the hold time never
//!   notifies twice.
//! - **Flap damping** beyond the hold: a fingerprint that resolved `flap_threshold` times
//!   within `flap_window` opens its next alert `flapping`; its firing is told only once it
//!   has held for the hold time ([`notify_pending`]).
//! - **Silences** (kind, well and device matchers, all optional, with an end): an alert
//!   opened while one matches is recorded, not told; told when the silence ends if it is
//!   still open.
//! - **Escalation** ([`escalate`]): firing, told and unacknowledged for `after` → severity
//!   one step up, told again as `escalated`.
//!
//! Every change appends to `alert_events` (the API's history); API changes are also in the
//! audit log (the caller's transaction).
//!
//! # Outbox
//!
//! A message owed to a destination is an `alert_deliveries` row inserted in the same
//! transaction as the change it tells, with a snapshot of the alert as it was then, and
//! `NOTIFY wellpulse_outbox`; the delivery worker claims due rows with a lease
//! ([`claim_due`]), so several instances never send the same row at once, and a worker that
//! dies leaves rows that are claimed again when the lease ends: no alert is lost across a
//! restart. Every change also `NOTIFY wellpulse_alerts` (`{tenant_id, alert_id, event}`)
//! for live streams.

use chrono::{DateTime, Duration, Utc};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};

use crate::{Db, DbError, DeviceId, TenantId, UserId, WellId};

/// Channel woken when a delivery is due.
pub const OUTBOX_CHANNEL: &str = "wellpulse_outbox";
/// Channel told of every alert change (`{"tenant_id", "alert_id", "event"}`).
pub const ALERTS_CHANNEL: &str = "wellpulse_alerts";
/// What destination secrets are sealed as (see `certificates::CaKey::seal_as`).
pub const DESTINATION_SECRET: &str = "alert-destination-secret";

/// Severity order, for SQL comparisons.
const SEVERITY_ORDER: &str = "ARRAY['info', 'warning', 'critical']";

/// Timing of the lifecycle (from `[alerts]`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AlertPolicy {
    /// A cleared condition resolves its alert after this long.
    pub hold: Duration,
    /// Flap damping: resolutions of one fingerprint counted over this window ...
    pub flap_window: Duration,
    /// ... at or above this count open the next alert `flapping`.
    pub flap_threshold: i64,
}

/// One signal of detection, to record.
#[derive(Debug, Clone, PartialEq)]
pub struct SignalRecord<'a> {
    /// Owner.
    pub tenant: TenantId,
    /// Device.
    pub device: DeviceId,
    /// Finding kind.
    pub kind: &'a str,
    /// Metric, `rule:<id>` or none.
    pub subject: Option<&'a str>,
    /// `info`, `warning`, `critical`.
    pub severity: &'a str,
    /// Became active or cleared.
    pub active: bool,
    /// May page (live data).
    pub page: bool,
    /// Time of the sample.
    pub at: DateTime<Utc>,
    /// Evidence JSON.
    pub evidence: serde_json::Value,
    /// One line for the alert.
    pub summary: String,
}

/// What [`record_signals`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Recorded {
    /// Findings stored.
    pub findings: u64,
    /// Alerts opened.
    pub opened: u64,
    /// Alerts whose condition cleared.
    pub cleared: u64,
    /// Messages queued for destinations.
    pub queued: u64,
}

/// The fingerprint of a condition.
pub fn fingerprint(
    tenant: TenantId,
    device: DeviceId,
    kind: &str,
    subject: Option<&str>,
) -> String {
    format!(
        "wellpulse/{tenant}/{device}/{kind}/{}",
        subject.unwrap_or("-")
    )
}

fn rank(severity: &str) -> u8 {
    match severity {
        "critical" => 2,
        "warning" => 1,
        _ => 0,
    }
}

/// An open alert of a fingerprint: id, condition cleared at, severity, told at.
type OpenAlert = (i64, Option<DateTime<Utc>>, String, Option<DateTime<Utc>>);

/// Stores `signals` as findings and applies the paging ones to alerts (in the caller's
/// transaction: a detection worker's scoring transaction or the silence sweep's).
pub async fn record_signals(
    conn: &mut PgConnection,
    signals: &[SignalRecord<'_>],
    policy: &AlertPolicy,
) -> Result<Recorded, DbError> {
    let mut done = Recorded::default();
    for s in signals {
        let finding: i64 = sqlx::query_scalar(
            "INSERT INTO findings (tenant_id, device_id, kind, subject, severity, active, at,
                                   historical, evidence)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
        )
        .bind(s.tenant)
        .bind(s.device)
        .bind(s.kind)
        .bind(s.subject)
        .bind(s.severity)
        .bind(s.active)
        .bind(s.at)
        .bind(!s.page)
        .bind(&s.evidence)
        .fetch_one(&mut *conn)
        .await?;
        done.findings += 1;
        if !s.page {
            continue;
        }
        let print = fingerprint(s.tenant, s.device, s.kind, s.subject);
        let open: Option<OpenAlert> = sqlx::query_as(
            "SELECT id, condition_cleared_at, severity, notified_at FROM alerts
                 WHERE tenant_id = $1 AND fingerprint = $2 AND state <> 'resolved' FOR UPDATE",
        )
        .bind(s.tenant)
        .bind(&print)
        .fetch_optional(&mut *conn)
        .await?;
        let alert = match (open, s.active) {
            (None, false) => None,
            (None, true) => {
                let id = open_alert(conn, s, &print, policy).await?;
                done.opened += 1;
                done.queued += notify_if_due(conn, s.tenant, id).await?;
                Some(id)
            }
            (Some((id, cleared, severity, notified)), true) => {
                sqlx::query(
                    "UPDATE alerts SET last_fired_at = $2, evidence = $3, condition_cleared_at = NULL,
                            updated_at = now() WHERE id = $1",
                )
                .bind(id)
                .bind(s.at)
                .bind(&s.evidence)
                .execute(&mut *conn)
                .await?;
                if cleared.is_some() {
                    event(conn, s.tenant, id, "refired", None, serde_json::json!({})).await?;
                }
                if rank(s.severity) > rank(&severity) {
                    sqlx::query("UPDATE alerts SET severity = $2 WHERE id = $1")
                        .bind(id)
                        .bind(s.severity)
                        .execute(&mut *conn)
                        .await?;
                    let detail = serde_json::json!({ "from": severity, "to": s.severity });
                    event(conn, s.tenant, id, "severity_raised", None, detail).await?;
                    if notified.is_some() {
                        done.queued += enqueue(conn, s.tenant, id, "escalated", None).await?;
                    }
                }
                Some(id)
            }
            (Some((id, cleared, _, _)), false) => {
                if cleared.is_none() {
                    sqlx::query(
                        "UPDATE alerts SET condition_cleared_at = $2, updated_at = now() WHERE id = $1",
                    )
                    .bind(id)
                    .bind(s.at)
                    .execute(&mut *conn)
                    .await?;
                    event(
                        conn,
                        s.tenant,
                        id,
                        "condition_cleared",
                        None,
                        serde_json::json!({}),
                    )
                    .await?;
                    done.cleared += 1;
                }
                Some(id)
            }
        };
        if let Some(id) = alert {
            sqlx::query("UPDATE findings SET alert_id = $2 WHERE id = $1")
                .bind(finding)
                .bind(id)
                .execute(&mut *conn)
                .await?;
        }
    }
    Ok(done)
}

/// Inserts a new firing alert (flapping and silence decided here) and its first event.
async fn open_alert(
    conn: &mut PgConnection,
    s: &SignalRecord<'_>,
    print: &str,
    policy: &AlertPolicy,
) -> Result<i64, DbError> {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO alerts (tenant_id, fingerprint, kind, subject, severity, state, device_id,
                             well_id, summary, evidence, started_at, last_fired_at, flapping,
                             silence_id)
         SELECT $1, $2, $3, $4, $5, 'firing', $6, d.well_id, $7, $8, $9, $9,
                (SELECT count(*) FROM alerts p WHERE p.tenant_id = $1 AND p.fingerprint = $2
                   AND p.state = 'resolved' AND p.resolved_at > $9 - $10::interval) >= $11,
                (SELECT x.id FROM alert_silences x
                  WHERE x.tenant_id = $1 AND x.starts_at <= now() AND x.ends_at > now()
                    AND (x.kind IS NULL OR x.kind = $3)
                    AND (x.device_id IS NULL OR x.device_id = $6)
                    AND (x.well_id IS NULL OR x.well_id = d.well_id)
                  ORDER BY x.ends_at DESC LIMIT 1)
         FROM devices d WHERE d.id = $6
         RETURNING id",
    )
    .bind(s.tenant)
    .bind(print)
    .bind(s.kind)
    .bind(s.subject)
    .bind(s.severity)
    .bind(s.device)
    .bind(&s.summary)
    .bind(&s.evidence)
    .bind(s.at)
    .bind(policy.flap_window)
    .bind(policy.flap_threshold)
    .fetch_one(&mut *conn)
    .await?;
    event(conn, s.tenant, id, "firing", None, serde_json::json!({})).await?;
    Ok(id)
}

/// Tells a new alert's firing unless it is silenced or flapping; returns messages queued.
async fn notify_if_due(conn: &mut PgConnection, tenant: TenantId, id: i64) -> Result<u64, DbError> {
    let due: bool = sqlx::query_scalar(
        "UPDATE alerts SET notified_at = now()
         WHERE id = $1 AND silence_id IS NULL AND NOT flapping RETURNING true",
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?
    .unwrap_or(false);
    if !due {
        let why: (Option<i64>, bool) =
            sqlx::query_as("SELECT silence_id, flapping FROM alerts WHERE id = $1")
                .bind(id)
                .fetch_one(&mut *conn)
                .await?;
        let detail = match why {
            (Some(silence), _) => serde_json::json!({ "silence_id": silence }),
            _ => serde_json::json!({ "flapping": true }),
        };
        let name = if why.0.is_some() {
            "silenced"
        } else {
            "flapping"
        };
        event(conn, tenant, id, name, None, detail).await?;
        return Ok(0);
    }
    enqueue(conn, tenant, id, "firing", None).await
}

/// Appends to an alert's history and tells live streams. Changes the system makes
/// (detection opening, refiring or clearing, the lifecycle jobs resolving, escalating or
/// telling) are also written to the audit log with actor `system`; people's changes are
/// audited by the API with their identity, origin and request id.
pub async fn event(
    conn: &mut PgConnection,
    tenant: TenantId,
    alert: i64,
    name: &str,
    actor: Option<&str>,
    detail: serde_json::Value,
) -> Result<(), DbError> {
    sqlx::query(
        "WITH e AS (INSERT INTO alert_events (tenant_id, alert_id, event, actor, detail)
                    VALUES ($1, $2, $3, $4, $5))
         SELECT pg_notify($6, json_build_object('tenant_id', $1::bigint, 'alert_id', $2::bigint,
                                                 'event', $3::text)::text)",
    )
    .bind(tenant)
    .bind(alert)
    .bind(name)
    .bind(actor)
    .bind(&detail)
    .bind(ALERTS_CHANNEL)
    .execute(&mut *conn)
    .await?;
    if actor.is_none_or(|a| a == "auto") {
        let target = format!("alert:{alert}");
        crate::audit::record(
            conn,
            &crate::audit::AuditEntry {
                tenant: Some(tenant),
                actor: "system",
                action: &format!("alert.{name}"),
                target: &target,
                before: None,
                after: Some(serde_json::json!({ "alert_id": alert, "detail": detail })),
                client_addr: None,
                request_id: None,
            },
        )
        .await?;
    }
    Ok(())
}

/// The alert as destinations see it (`alerts::deliver::AlertView` without its URL).
fn snapshot_sql() -> String {
    "jsonb_build_object(
        'id', a.id, 'tenant', t.slug, 'fingerprint', a.fingerprint, 'kind', a.kind,
        'severity', a.severity, 'state', a.state, 'summary', a.summary,
        'labels', jsonb_strip_nulls(jsonb_build_object(
            'tenant', t.slug, 'kind', a.kind, 'severity', a.severity, 'site', s.name,
            'well', w.name, 'api_number', w.api_number, 'gateway', g.slug, 'device', dv.name,
            'subject', a.subject)),
        'started_at', a.started_at, 'resolved_at', a.resolved_at, 'evidence', a.evidence)"
        .to_owned()
}

const SNAPSHOT_JOINS: &str = "JOIN tenants t ON t.id = a.tenant_id
     LEFT JOIN devices dv ON dv.id = a.device_id
     LEFT JOIN gateways g ON g.id = dv.gateway_id
     LEFT JOIN wells w ON w.id = a.well_id
     LEFT JOIN sites s ON s.id = COALESCE(w.site_id, g.site_id)";

/// Queues `event` of alert `id` for every enabled destination of the tenant whose minimum
/// severity it meets (only destinations of `kind` when given); returns how many.
pub async fn enqueue(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: i64,
    event: &str,
    kind: Option<&str>,
) -> Result<u64, DbError> {
    let done = sqlx::query(&format!(
        "INSERT INTO alert_deliveries (tenant_id, destination_id, alert_id, event, snapshot)
         SELECT d.tenant_id, d.id, a.id, $3, {snapshot}
         FROM alerts a JOIN alert_destinations d ON d.tenant_id = a.tenant_id
         {SNAPSHOT_JOINS}
         WHERE a.tenant_id = $1 AND a.id = $2 AND d.enabled AND ($4::text IS NULL OR d.kind = $4)
           AND array_position({SEVERITY_ORDER}, a.severity)
               >= array_position({SEVERITY_ORDER}, d.min_severity)",
        snapshot = snapshot_sql()
    ))
    .bind(tenant)
    .bind(id)
    .bind(event)
    .bind(kind)
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() > 0 {
        wake_outbox(conn).await?;
    }
    Ok(done.rows_affected())
}

async fn wake_outbox(conn: &mut PgConnection) -> Result<(), DbError> {
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(OUTBOX_CHANNEL)
        .execute(conn)
        .await?;
    Ok(())
}

/// Alerts whose condition stayed clear for the hold time: resolved, and told where their
/// firing was. Returns how many.
pub async fn resolve_cleared(db: &Db, now: DateTime<Utc>, hold: Duration) -> Result<u64, DbError> {
    let mut tx = db.pool().begin().await?;
    let rows: Vec<(i64, TenantId, Option<DateTime<Utc>>)> = sqlx::query_as(
        "UPDATE alerts SET state = 'resolved', resolved_at = $1, resolved_by = 'auto',
                updated_at = now()
         WHERE state <> 'resolved' AND condition_cleared_at <= $1 - $2::interval
         RETURNING id, tenant_id, notified_at",
    )
    .bind(now)
    .bind(hold)
    .fetch_all(&mut *tx)
    .await?;
    for (id, tenant, notified) in &rows {
        let detail = serde_json::json!({ "hold_s": hold.num_seconds() });
        event(&mut tx, *tenant, *id, "resolved", Some("auto"), detail).await?;
        if notified.is_some() {
            enqueue(&mut tx, *tenant, *id, "resolved", None).await?;
        }
    }
    tx.commit().await?;
    Ok(rows.len() as u64)
}

/// Firing alerts told at least `after` ago and still unacknowledged: severity one step
/// up, told as `escalated`. Returns how many.
pub async fn escalate(db: &Db, now: DateTime<Utc>, after: Duration) -> Result<u64, DbError> {
    let mut tx = db.pool().begin().await?;
    let rows: Vec<(i64, TenantId, String)> = sqlx::query_as(
        "UPDATE alerts SET escalation_level = escalation_level + 1, escalated_at = $1,
                severity = CASE severity WHEN 'info' THEN 'warning' ELSE 'critical' END,
                updated_at = now()
         WHERE state = 'firing' AND escalation_level = 0 AND notified_at <= $1 - $2::interval
         RETURNING id, tenant_id, severity",
    )
    .bind(now)
    .bind(after)
    .fetch_all(&mut *tx)
    .await?;
    for (id, tenant, severity) in &rows {
        let detail = serde_json::json!({ "severity": severity, "after_s": after.num_seconds() });
        event(&mut tx, *tenant, *id, "escalated", None, detail).await?;
        enqueue(&mut tx, *tenant, *id, "escalated", None).await?;
    }
    tx.commit().await?;
    Ok(rows.len() as u64)
}

/// Open alerts not told yet whose reason ended: a flapping one that held for the hold
/// time, or a silenced one whose silence ended. Returns how many were told.
pub async fn notify_pending(db: &Db, now: DateTime<Utc>, hold: Duration) -> Result<u64, DbError> {
    let mut tx = db.pool().begin().await?;
    let rows: Vec<(i64, TenantId)> = sqlx::query_as(
        "UPDATE alerts a SET notified_at = $1, silence_id = NULL, flapping = false,
                updated_at = now()
         WHERE a.state = 'firing' AND a.notified_at IS NULL AND a.condition_cleared_at IS NULL
           AND (a.silence_id IS NULL OR NOT EXISTS (
                   SELECT 1 FROM alert_silences x WHERE x.id = a.silence_id AND x.ends_at > $1))
           AND (NOT a.flapping OR a.started_at <= $1 - $2::interval)
         RETURNING a.id, a.tenant_id",
    )
    .bind(now)
    .bind(hold)
    .fetch_all(&mut *tx)
    .await?;
    for (id, tenant) in &rows {
        event(
            &mut tx,
            *tenant,
            *id,
            "notified",
            None,
            serde_json::json!({}),
        )
        .await?;
        enqueue(&mut tx, *tenant, *id, "firing", None).await?;
    }
    tx.commit().await?;
    Ok(rows.len() as u64)
}

/// Open, told alerts re-sent to Alertmanager destinations that had no message of them for
/// `interval` (Alertmanager resolves an alert it stops hearing about). Returns how many.
pub async fn resend_open(db: &Db, now: DateTime<Utc>, interval: Duration) -> Result<u64, DbError> {
    let mut tx = db.pool().begin().await?;
    let done = sqlx::query(&format!(
        "INSERT INTO alert_deliveries (tenant_id, destination_id, alert_id, event, snapshot)
         SELECT d.tenant_id, d.id, a.id, 'resend', {snapshot}
         FROM alerts a JOIN alert_destinations d ON d.tenant_id = a.tenant_id
         {SNAPSHOT_JOINS}
         WHERE a.state <> 'resolved' AND a.notified_at IS NOT NULL AND d.enabled
           AND d.kind = 'alertmanager'
           AND array_position({SEVERITY_ORDER}, a.severity)
               >= array_position({SEVERITY_ORDER}, d.min_severity)
           AND NOT EXISTS (SELECT 1 FROM alert_deliveries x
                           WHERE x.alert_id = a.id AND x.destination_id = d.id
                             AND x.created_at > $1 - $2::interval)",
        snapshot = snapshot_sql()
    ))
    .bind(now)
    .bind(interval)
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() > 0 {
        wake_outbox(&mut tx).await?;
    }
    tx.commit().await?;
    Ok(done.rows_affected())
}

/// An alert as the API shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertRow {
    /// Id.
    pub id: i64,
    /// Fingerprint.
    pub fingerprint: String,
    /// Finding kind.
    pub kind: String,
    /// Metric, rule or none.
    pub subject: Option<String>,
    /// Severity.
    pub severity: String,
    /// `firing`, `acknowledged`, `resolved`.
    pub state: String,
    /// Device id and name.
    pub device: Option<(DeviceId, String)>,
    /// Gateway slug.
    pub gateway: Option<String>,
    /// Well id and name.
    pub well: Option<(WellId, String)>,
    /// One line.
    pub summary: String,
    /// Evidence of the newest firing.
    pub evidence: serde_json::Value,
    /// Started.
    pub started_at: DateTime<Utc>,
    /// Newest firing.
    pub last_fired_at: DateTime<Utc>,
    /// Condition cleared at (resolving after the hold time).
    pub condition_cleared_at: Option<DateTime<Utc>>,
    /// Acknowledged at and by.
    pub acknowledged: Option<(DateTime<Utc>, String)>,
    /// Resolved at and by.
    pub resolved: Option<(DateTime<Utc>, String)>,
    /// Assignee (user id and email).
    pub assignee: Option<(UserId, String)>,
    /// Escalations so far.
    pub escalation_level: i32,
    /// Flapping.
    pub flapping: bool,
    /// Silenced by.
    pub silence_id: Option<i64>,
    /// When its firing was told.
    pub notified_at: Option<DateTime<Utc>>,
}

const ALERT_SELECT: &str = "SELECT a.id, a.fingerprint, a.kind, a.subject, a.severity, a.state,
        a.device_id, dv.name AS device_name, g.slug AS gateway, a.well_id, w.name AS well_name,
        a.summary, a.evidence, a.started_at, a.last_fired_at, a.condition_cleared_at,
        a.acknowledged_at, a.acknowledged_by, a.resolved_at, a.resolved_by,
        a.assignee_user_id, u.email AS assignee_email, a.escalation_level, a.flapping,
        a.silence_id, a.notified_at
     FROM alerts a
     LEFT JOIN devices dv ON dv.id = a.device_id
     LEFT JOIN gateways g ON g.id = dv.gateway_id
     LEFT JOIN wells w ON w.id = a.well_id
     LEFT JOIN users u ON u.id = a.assignee_user_id";

fn pair<A, B>(a: Option<A>, b: Option<B>) -> Option<(A, B)> {
    a.zip(b)
}

fn alert_row(r: &PgRow) -> Result<AlertRow, sqlx::Error> {
    Ok(AlertRow {
        id: r.try_get("id")?,
        fingerprint: r.try_get("fingerprint")?,
        kind: r.try_get("kind")?,
        subject: r.try_get("subject")?,
        severity: r.try_get("severity")?,
        state: r.try_get("state")?,
        device: pair(r.try_get("device_id")?, r.try_get("device_name")?),
        gateway: r.try_get("gateway")?,
        well: pair(r.try_get("well_id")?, r.try_get("well_name")?),
        summary: r.try_get("summary")?,
        evidence: r.try_get("evidence")?,
        started_at: r.try_get("started_at")?,
        last_fired_at: r.try_get("last_fired_at")?,
        condition_cleared_at: r.try_get("condition_cleared_at")?,
        acknowledged: pair(r.try_get("acknowledged_at")?, r.try_get("acknowledged_by")?),
        resolved: pair(r.try_get("resolved_at")?, r.try_get("resolved_by")?),
        assignee: pair(r.try_get("assignee_user_id")?, r.try_get("assignee_email")?),
        escalation_level: r.try_get("escalation_level")?,
        flapping: r.try_get("flapping")?,
        silence_id: r.try_get("silence_id")?,
        notified_at: r.try_get("notified_at")?,
    })
}

/// Which alerts to list.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AlertFilter<'a> {
    /// Only this state; `open` means firing or acknowledged.
    pub state: Option<&'a str>,
    /// At least this severity.
    pub min_severity: Option<&'a str>,
    /// Only this kind.
    pub kind: Option<&'a str>,
    /// Only this well.
    pub well: Option<WellId>,
    /// Only this device.
    pub device: Option<DeviceId>,
    /// Ids below this (paging, newest first).
    pub before_id: Option<i64>,
    /// At most this many.
    pub limit: i64,
}

/// A tenant's alerts, newest first.
pub async fn list(
    conn: &mut PgConnection,
    tenant: TenantId,
    f: &AlertFilter<'_>,
) -> Result<Vec<AlertRow>, DbError> {
    let rows = sqlx::query(&format!(
        "{ALERT_SELECT}
         WHERE a.tenant_id = $1
           AND ($2::text IS NULL OR a.state = $2 OR ($2 = 'open' AND a.state <> 'resolved'))
           AND ($3::text IS NULL OR array_position({SEVERITY_ORDER}, a.severity)
                                    >= array_position({SEVERITY_ORDER}, $3))
           AND ($4::text IS NULL OR a.kind = $4)
           AND ($5::bigint IS NULL OR a.well_id = $5)
           AND ($6::bigint IS NULL OR a.device_id = $6)
           AND ($7::bigint IS NULL OR a.id < $7)
         ORDER BY a.id DESC LIMIT $8"
    ))
    .bind(tenant)
    .bind(f.state)
    .bind(f.min_severity)
    .bind(f.kind)
    .bind(f.well)
    .bind(f.device)
    .bind(f.before_id)
    .bind(f.limit)
    .fetch_all(conn)
    .await?;
    crate::collect(&rows, alert_row)
}

/// One alert of a tenant.
pub async fn get(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: i64,
) -> Result<Option<AlertRow>, DbError> {
    let row = sqlx::query(&format!(
        "{ALERT_SELECT} WHERE a.tenant_id = $1 AND a.id = $2"
    ))
    .bind(tenant)
    .bind(id)
    .fetch_optional(conn)
    .await?;
    Ok(row.as_ref().map(alert_row).transpose()?)
}

/// One entry of an alert's history.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRow {
    /// When.
    pub at: DateTime<Utc>,
    /// What (`firing`, `refired`, `condition_cleared`, `resolved`, `acknowledged`, ...).
    pub event: String,
    /// Who, for people's actions.
    pub actor: Option<String>,
    /// Details.
    pub detail: serde_json::Value,
}

/// An alert's history, oldest first.
pub async fn events(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: i64,
) -> Result<Vec<EventRow>, DbError> {
    let rows = sqlx::query(
        "SELECT at, event, actor, detail FROM alert_events
         WHERE tenant_id = $1 AND alert_id = $2 ORDER BY id",
    )
    .bind(tenant)
    .bind(id)
    .fetch_all(conn)
    .await?;
    crate::collect(&rows, |r| {
        Ok(EventRow {
            at: r.try_get("at")?,
            event: r.try_get("event")?,
            actor: r.try_get("actor")?,
            detail: r.try_get("detail")?,
        })
    })
}

/// A comment.
#[derive(Debug, Clone, PartialEq)]
pub struct CommentRow {
    /// Id.
    pub id: i64,
    /// Who.
    pub author: String,
    /// Text.
    pub body: String,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// An alert's comments, oldest first.
pub async fn comments(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: i64,
) -> Result<Vec<CommentRow>, DbError> {
    let rows = sqlx::query(
        "SELECT id, author, body, created_at FROM alert_comments
         WHERE tenant_id = $1 AND alert_id = $2 ORDER BY id",
    )
    .bind(tenant)
    .bind(id)
    .fetch_all(conn)
    .await?;
    crate::collect(&rows, comment_row)
}

fn comment_row(r: &PgRow) -> Result<CommentRow, sqlx::Error> {
    Ok(CommentRow {
        id: r.try_get("id")?,
        author: r.try_get("author")?,
        body: r.try_get("body")?,
        created_at: r.try_get("created_at")?,
    })
}

/// What a person's action on an alert came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// Done; the alert after it.
    Done(AlertRow),
    /// Nothing to do (already so); the alert as it is.
    Unchanged(AlertRow),
    /// Not possible in its state (e.g. acknowledging a resolved alert).
    Conflict(String),
    /// No such alert.
    NotFound,
}

async fn after(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: i64,
    done: bool,
) -> Result<Change, DbError> {
    Ok(match get(conn, tenant, id).await? {
        Some(a) if done => Change::Done(a),
        Some(a) => Change::Unchanged(a),
        None => Change::NotFound,
    })
}

/// Acknowledges a firing alert (told to destinations that were told of its firing).
pub async fn acknowledge(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: i64,
    actor: &str,
) -> Result<Change, DbError> {
    by_hand(conn, tenant, id, actor, "acknowledged").await
}

/// Resolves an open alert by hand (told where its firing was). A condition still active
/// does not re-open it until it clears and fires again.
pub async fn resolve(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: i64,
    actor: &str,
) -> Result<Change, DbError> {
    by_hand(conn, tenant, id, actor, "resolved").await
}

/// A person moving an open alert to `to` (`acknowledged` or `resolved`): recorded with
/// who and when, appended to its history, told where its firing was told. Already there:
/// unchanged; acknowledging a resolved alert: a conflict.
async fn by_hand(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: i64,
    actor: &str,
    to: &'static str,
) -> Result<Change, DbError> {
    let state: Option<(String, Option<DateTime<Utc>>)> = sqlx::query_as(
        "SELECT state, notified_at FROM alerts WHERE tenant_id = $1 AND id = $2 FOR UPDATE",
    )
    .bind(tenant)
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    let notified = match state {
        None => return Ok(Change::NotFound),
        Some((s, _)) if s == to => return after(conn, tenant, id, false).await,
        Some((s, _)) if s == "resolved" => {
            return Ok(Change::Conflict("the alert is resolved".to_owned()));
        }
        Some((_, notified)) => notified,
    };
    sqlx::query(
        "UPDATE alerts SET state = $3, updated_at = now(),
                acknowledged_at = CASE WHEN $3 = 'acknowledged' THEN now() ELSE acknowledged_at END,
                acknowledged_by = CASE WHEN $3 = 'acknowledged' THEN $4 ELSE acknowledged_by END,
                resolved_at = CASE WHEN $3 = 'resolved' THEN now() ELSE resolved_at END,
                resolved_by = CASE WHEN $3 = 'resolved' THEN $4 ELSE resolved_by END
         WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant)
    .bind(id)
    .bind(to)
    .bind(actor)
    .execute(&mut *conn)
    .await?;
    event(conn, tenant, id, to, Some(actor), serde_json::json!({})).await?;
    if notified.is_some() {
        enqueue(conn, tenant, id, to, None).await?;
    }
    after(conn, tenant, id, true).await
}

/// Assigns an alert to a member of the tenant (`None` unassigns). `Conflict` when the
/// user is not a member.
pub async fn assign(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: i64,
    user: Option<UserId>,
    actor: &str,
) -> Result<Change, DbError> {
    if let Some(user) = user {
        let member: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM memberships WHERE tenant_id = $1 AND user_id = $2)",
        )
        .bind(tenant)
        .bind(user)
        .fetch_one(&mut *conn)
        .await?;
        if !member {
            return Ok(Change::Conflict(format!(
                "user {user} is not a member of this tenant"
            )));
        }
    }
    let done = sqlx::query(
        "UPDATE alerts SET assignee_user_id = $3, updated_at = now()
         WHERE tenant_id = $1 AND id = $2 AND assignee_user_id IS DISTINCT FROM $3",
    )
    .bind(tenant)
    .bind(id)
    .bind(user)
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() > 0 {
        let detail = serde_json::json!({ "user_id": user.map(|u| u.0) });
        event(conn, tenant, id, "assigned", Some(actor), detail).await?;
    }
    after(conn, tenant, id, done.rows_affected() > 0).await
}

/// Adds a comment; `None` when there is no such alert.
pub async fn comment(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: i64,
    author: &str,
    body: &str,
) -> Result<Option<CommentRow>, DbError> {
    let row = sqlx::query(
        "INSERT INTO alert_comments (tenant_id, alert_id, author, body)
         SELECT tenant_id, id, $3, $4 FROM alerts WHERE tenant_id = $1 AND id = $2
         RETURNING id, author, body, created_at",
    )
    .bind(tenant)
    .bind(id)
    .bind(author)
    .bind(body)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(r) = row else { return Ok(None) };
    let c = comment_row(&r)?;
    event(
        conn,
        tenant,
        id,
        "commented",
        Some(author),
        serde_json::json!({ "comment_id": c.id }),
    )
    .await?;
    Ok(Some(c))
}

/// A silence.
#[derive(Debug, Clone, PartialEq)]
pub struct SilenceRow {
    /// Id.
    pub id: i64,
    /// Matchers (none: every alert of the tenant).
    pub kind: Option<String>,
    /// See `kind`.
    pub well: Option<WellId>,
    /// See `kind`.
    pub device: Option<DeviceId>,
    /// In force from.
    pub starts_at: DateTime<Utc>,
    /// In force until.
    pub ends_at: DateTime<Utc>,
    /// Why.
    pub comment: String,
    /// Who.
    pub created_by: String,
    /// When.
    pub created_at: DateTime<Utc>,
}

const SILENCE_COLUMNS: &str =
    "id, kind, well_id, device_id, starts_at, ends_at, comment, created_by, created_at";

fn silence_row(r: &PgRow) -> Result<SilenceRow, sqlx::Error> {
    Ok(SilenceRow {
        id: r.try_get("id")?,
        kind: r.try_get("kind")?,
        well: r.try_get("well_id")?,
        device: r.try_get("device_id")?,
        starts_at: r.try_get("starts_at")?,
        ends_at: r.try_get("ends_at")?,
        comment: r.try_get("comment")?,
        created_by: r.try_get("created_by")?,
        created_at: r.try_get("created_at")?,
    })
}

/// A tenant's silences (`active`: only those in force now).
pub async fn silences(
    conn: &mut PgConnection,
    tenant: TenantId,
    active: bool,
) -> Result<Vec<SilenceRow>, DbError> {
    let rows = sqlx::query(&format!(
        "SELECT {SILENCE_COLUMNS} FROM alert_silences
         WHERE tenant_id = $1 AND (NOT $2 OR (starts_at <= now() AND ends_at > now()))
         ORDER BY id DESC"
    ))
    .bind(tenant)
    .bind(active)
    .fetch_all(conn)
    .await?;
    crate::collect(&rows, silence_row)
}

/// A silence to create.
#[derive(Debug, Clone, PartialEq)]
pub struct NewSilence<'a> {
    /// Matchers.
    pub kind: Option<&'a str>,
    /// See `kind`.
    pub well: Option<WellId>,
    /// See `kind`.
    pub device: Option<DeviceId>,
    /// Start (`None`: now).
    pub starts_at: Option<DateTime<Utc>>,
    /// End.
    pub ends_at: DateTime<Utc>,
    /// Why.
    pub comment: &'a str,
    /// Who.
    pub created_by: &'a str,
}

/// Creates a silence. Wells and devices of other tenants fail their foreign keys
/// (`DbError` of class 23).
pub async fn create_silence(
    conn: &mut PgConnection,
    tenant: TenantId,
    s: &NewSilence<'_>,
) -> Result<SilenceRow, DbError> {
    let row = sqlx::query(&format!(
        "INSERT INTO alert_silences (tenant_id, kind, well_id, device_id, starts_at, ends_at,
                                     comment, created_by)
         VALUES ($1, $2, $3, $4, COALESCE($5, now()), $6, $7, $8) RETURNING {SILENCE_COLUMNS}"
    ))
    .bind(tenant)
    .bind(s.kind)
    .bind(s.well)
    .bind(s.device)
    .bind(s.starts_at)
    .bind(s.ends_at)
    .bind(s.comment)
    .bind(s.created_by)
    .fetch_one(conn)
    .await?;
    Ok(silence_row(&row)?)
}

/// Ends a silence now; the silence after it (`None`: no such silence).
pub async fn expire_silence(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: i64,
) -> Result<Option<SilenceRow>, DbError> {
    let row = sqlx::query(&format!(
        "UPDATE alert_silences SET ends_at = GREATEST(starts_at + interval '1 microsecond', now())
         WHERE tenant_id = $1 AND id = $2 RETURNING {SILENCE_COLUMNS}"
    ))
    .bind(tenant)
    .bind(id)
    .fetch_optional(conn)
    .await?;
    Ok(row.as_ref().map(silence_row).transpose()?)
}

/// A destination as the API shows it (never its secret).
#[derive(Debug, Clone, PartialEq)]
pub struct DestinationRow {
    /// Id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// `webhook`, `alertmanager`, `pagerduty`.
    pub kind: String,
    /// Target URL.
    pub url: String,
    /// Whether a secret is set.
    pub has_secret: bool,
    /// Least severity sent.
    pub min_severity: String,
    /// Sending.
    pub enabled: bool,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last successful delivery.
    pub last_delivered_at: Option<DateTime<Utc>>,
    /// Last error and when.
    pub last_error: Option<(String, DateTime<Utc>)>,
    /// Messages waiting and given up.
    pub pending: i64,
    /// See `pending`.
    pub dead: i64,
}

const DESTINATION_SELECT: &str = "SELECT d.id, d.name, d.kind, d.url, d.secret_sealed IS NOT NULL AS has_secret,
        d.min_severity, d.enabled, d.created_at, d.last_delivered_at, d.last_error, d.last_error_at,
        (SELECT count(*) FROM alert_deliveries x WHERE x.destination_id = d.id AND x.state = 'pending') AS pending,
        (SELECT count(*) FROM alert_deliveries x WHERE x.destination_id = d.id AND x.state = 'dead') AS dead
     FROM alert_destinations d";

fn destination_row(r: &PgRow) -> Result<DestinationRow, sqlx::Error> {
    Ok(DestinationRow {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        kind: r.try_get("kind")?,
        url: r.try_get("url")?,
        has_secret: r.try_get("has_secret")?,
        min_severity: r.try_get("min_severity")?,
        enabled: r.try_get("enabled")?,
        created_at: r.try_get("created_at")?,
        last_delivered_at: r.try_get("last_delivered_at")?,
        last_error: pair(r.try_get("last_error")?, r.try_get("last_error_at")?),
        pending: r.try_get("pending")?,
        dead: r.try_get("dead")?,
    })
}

/// A tenant's destinations.
pub async fn destinations(
    conn: &mut PgConnection,
    tenant: TenantId,
) -> Result<Vec<DestinationRow>, DbError> {
    let rows = sqlx::query(&format!(
        "{DESTINATION_SELECT} WHERE d.tenant_id = $1 ORDER BY d.id"
    ))
    .bind(tenant)
    .fetch_all(conn)
    .await?;
    crate::collect(&rows, destination_row)
}

/// One destination.
pub async fn destination(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: i64,
) -> Result<Option<DestinationRow>, DbError> {
    let row = sqlx::query(&format!(
        "{DESTINATION_SELECT} WHERE d.tenant_id = $1 AND d.id = $2"
    ))
    .bind(tenant)
    .bind(id)
    .fetch_optional(conn)
    .await?;
    Ok(row.as_ref().map(destination_row).transpose()?)
}

/// A destination's content.
#[derive(Debug, Clone, PartialEq)]
pub struct DestinationInput<'a> {
    /// Name.
    pub name: &'a str,
    /// Kind.
    pub kind: &'a str,
    /// URL.
    pub url: &'a str,
    /// Least severity.
    pub min_severity: &'a str,
    /// Sending.
    pub enabled: bool,
}

/// Creates a destination with its sealed secret.
pub async fn create_destination(
    conn: &mut PgConnection,
    tenant: TenantId,
    d: &DestinationInput<'_>,
    secret_sealed: Option<&[u8]>,
) -> Result<DestinationRow, DbError> {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO alert_destinations (tenant_id, name, kind, url, secret_sealed, min_severity, enabled)
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
    )
    .bind(tenant)
    .bind(d.name)
    .bind(d.kind)
    .bind(d.url)
    .bind(secret_sealed)
    .bind(d.min_severity)
    .bind(d.enabled)
    .fetch_one(&mut *conn)
    .await?;
    destination(conn, tenant, id)
        .await?
        .ok_or_else(|| DbError::invalid("destination", "vanished after insert"))
}

/// Updates a destination (its kind stays; `secret_sealed` replaces the secret when given).
pub async fn update_destination(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: i64,
    d: &DestinationInput<'_>,
    secret_sealed: Option<&[u8]>,
) -> Result<Option<DestinationRow>, DbError> {
    let done = sqlx::query(
        "UPDATE alert_destinations SET name = $3, url = $4, min_severity = $5, enabled = $6,
                secret_sealed = COALESCE($7, secret_sealed), updated_at = now()
         WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant)
    .bind(id)
    .bind(d.name)
    .bind(d.url)
    .bind(d.min_severity)
    .bind(d.enabled)
    .bind(secret_sealed)
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() == 0 {
        return Ok(None);
    }
    destination(conn, tenant, id).await
}

/// Deletes a destination and its delivery log; whether it existed.
pub async fn delete_destination(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: i64,
) -> Result<bool, DbError> {
    sqlx::query("DELETE FROM alert_deliveries WHERE tenant_id = $1 AND destination_id = $2")
        .bind(tenant)
        .bind(id)
        .execute(&mut *conn)
        .await?;
    let done = sqlx::query("DELETE FROM alert_destinations WHERE tenant_id = $1 AND id = $2")
        .bind(tenant)
        .bind(id)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// Queues a test message (a made-up alert, `snapshot`) for one destination; the
/// delivery's id, `None` when there is no such destination.
pub async fn enqueue_test(
    conn: &mut PgConnection,
    tenant: TenantId,
    destination: i64,
    snapshot: &serde_json::Value,
) -> Result<Option<i64>, DbError> {
    let id: Option<i64> = sqlx::query_scalar(
        "INSERT INTO alert_deliveries (tenant_id, destination_id, event, snapshot)
         SELECT tenant_id, id, 'test', $3 FROM alert_destinations WHERE tenant_id = $1 AND id = $2
         RETURNING id",
    )
    .bind(tenant)
    .bind(destination)
    .bind(snapshot)
    .fetch_optional(&mut *conn)
    .await?;
    if id.is_some() {
        wake_outbox(conn).await?;
    }
    Ok(id)
}

/// One message of the delivery log.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryRow {
    /// Id (also the message id receivers see).
    pub id: i64,
    /// Alert (none for tests).
    pub alert_id: Option<i64>,
    /// Why sent.
    pub event: String,
    /// `pending`, `delivered`, `dead`.
    pub state: String,
    /// Attempts so far.
    pub attempts: i32,
    /// Next attempt (pending).
    pub next_attempt_at: DateTime<Utc>,
    /// Last HTTP status.
    pub last_status: Option<i32>,
    /// Last error.
    pub last_error: Option<String>,
    /// Queued.
    pub created_at: DateTime<Utc>,
    /// Delivered.
    pub delivered_at: Option<DateTime<Utc>>,
}

/// A destination's newest messages.
pub async fn deliveries(
    conn: &mut PgConnection,
    tenant: TenantId,
    destination: i64,
    limit: i64,
) -> Result<Vec<DeliveryRow>, DbError> {
    let rows = sqlx::query(
        "SELECT id, alert_id, event, state, attempts, next_attempt_at, last_status, last_error,
                created_at, delivered_at
         FROM alert_deliveries WHERE tenant_id = $1 AND destination_id = $2
         ORDER BY id DESC LIMIT $3",
    )
    .bind(tenant)
    .bind(destination)
    .bind(limit)
    .fetch_all(conn)
    .await?;
    crate::collect(&rows, |r| {
        Ok(DeliveryRow {
            id: r.try_get("id")?,
            alert_id: r.try_get("alert_id")?,
            event: r.try_get("event")?,
            state: r.try_get("state")?,
            attempts: r.try_get("attempts")?,
            next_attempt_at: r.try_get("next_attempt_at")?,
            last_status: r.try_get("last_status")?,
            last_error: r.try_get("last_error")?,
            created_at: r.try_get("created_at")?,
            delivered_at: r.try_get("delivered_at")?,
        })
    })
}

/// A message claimed for sending.
#[derive(Debug, Clone, PartialEq)]
pub struct DueDelivery {
    /// Id.
    pub id: i64,
    /// Owner.
    pub tenant: TenantId,
    /// Destination id, kind, URL and sealed secret.
    pub destination: i64,
    /// See `destination`.
    pub kind: String,
    /// See `destination`.
    pub url: String,
    /// See `destination`.
    pub secret_sealed: Option<Vec<u8>>,
    /// Why sent.
    pub event: String,
    /// The alert as it was.
    pub snapshot: serde_json::Value,
    /// Attempts including this one.
    pub attempts: i32,
    /// Queued.
    pub created_at: DateTime<Utc>,
}

/// Claims up to `limit` due messages for `lease` (oldest first; rows another worker holds
/// are skipped).
pub async fn claim_due(db: &Db, lease: Duration, limit: i64) -> Result<Vec<DueDelivery>, DbError> {
    let rows = sqlx::query(
        "WITH due AS (
             SELECT id FROM alert_deliveries
             WHERE state = 'pending' AND next_attempt_at <= now()
               AND (lease_until IS NULL OR lease_until < now())
             ORDER BY next_attempt_at, id LIMIT $2 FOR UPDATE SKIP LOCKED)
         UPDATE alert_deliveries x SET lease_until = now() + $1::interval, attempts = x.attempts + 1
         FROM due, alert_destinations d
         WHERE x.id = due.id AND d.id = x.destination_id
         RETURNING x.id, x.tenant_id, x.destination_id, d.kind, d.url, d.secret_sealed, x.event,
                   x.snapshot, x.attempts, x.created_at",
    )
    .bind(lease)
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    crate::collect(&rows, |r| {
        Ok(DueDelivery {
            id: r.try_get("id")?,
            tenant: r.try_get("tenant_id")?,
            destination: r.try_get("destination_id")?,
            kind: r.try_get("kind")?,
            url: r.try_get("url")?,
            secret_sealed: r.try_get("secret_sealed")?,
            event: r.try_get("event")?,
            snapshot: r.try_get("snapshot")?,
            attempts: r.try_get("attempts")?,
            created_at: r.try_get("created_at")?,
        })
    })
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq)]
pub enum AttemptResult {
    /// Delivered with this status.
    Delivered(i32),
    /// Failed; tried again at `retry_at`, or never again (dead) when `None`.
    Failed {
        /// HTTP status, if one came back.
        status: Option<i32>,
        /// What went wrong.
        error: String,
        /// Next attempt.
        retry_at: Option<DateTime<Utc>>,
    },
}

/// Records an attempt's outcome on the message and its destination.
pub async fn finish_delivery(db: &Db, id: i64, result: &AttemptResult) -> Result<(), DbError> {
    let mut tx = db.pool().begin().await?;
    match result {
        AttemptResult::Delivered(status) => {
            sqlx::query(
                "WITH x AS (UPDATE alert_deliveries SET state = 'delivered', delivered_at = now(),
                                   last_status = $2, lease_until = NULL
                            WHERE id = $1 RETURNING destination_id)
                 UPDATE alert_destinations SET last_delivered_at = now()
                 WHERE id = (SELECT destination_id FROM x)",
            )
            .bind(id)
            .bind(status)
            .execute(&mut *tx)
            .await?;
        }
        AttemptResult::Failed {
            status,
            error,
            retry_at,
        } => {
            sqlx::query(
                "WITH x AS (UPDATE alert_deliveries
                            SET state = CASE WHEN $4::timestamptz IS NULL THEN 'dead' ELSE 'pending' END,
                                next_attempt_at = COALESCE($4, next_attempt_at),
                                last_status = $2, last_error = $3, lease_until = NULL
                            WHERE id = $1 RETURNING destination_id)
                 UPDATE alert_destinations SET last_error = $3, last_error_at = now()
                 WHERE id = (SELECT destination_id FROM x)",
            )
            .bind(id)
            .bind(status)
            .bind(error)
            .bind(retry_at)
            .execute(&mut *tx)
            .await?;
        }
    }
    tx.commit().await?;
    Ok(())
}

/// When the next pending message is due (`None`: none pending).
pub async fn next_due(db: &Db) -> Result<Option<DateTime<Utc>>, DbError> {
    Ok(sqlx::query_scalar(
        "SELECT min(GREATEST(next_attempt_at, COALESCE(lease_until, next_attempt_at)))
         FROM alert_deliveries WHERE state = 'pending'",
    )
    .fetch_one(db.pool())
    .await?)
}

/// Findings of a tenant, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct FindingRow {
    /// Id.
    pub id: i64,
    /// Device id and name.
    pub device: (DeviceId, String),
    /// Well.
    pub well: Option<WellId>,
    /// Kind.
    pub kind: String,
    /// Subject.
    pub subject: Option<String>,
    /// Severity.
    pub severity: String,
    /// Became active or cleared.
    pub active: bool,
    /// Sample time.
    pub at: DateTime<Utc>,
    /// From historical data.
    pub historical: bool,
    /// Evidence.
    pub evidence: serde_json::Value,
    /// Alert it opened or touched.
    pub alert_id: Option<i64>,
}

/// Which findings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FindingFilter {
    /// Only this well.
    pub well: Option<WellId>,
    /// Only this device.
    pub device: Option<DeviceId>,
    /// From.
    pub from: Option<DateTime<Utc>>,
    /// To (exclusive).
    pub to: Option<DateTime<Utc>>,
    /// At most.
    pub limit: i64,
}

/// A tenant's findings, newest first.
pub async fn findings(
    conn: &mut PgConnection,
    tenant: TenantId,
    f: &FindingFilter,
) -> Result<Vec<FindingRow>, DbError> {
    let rows = sqlx::query(
        "SELECT x.id, x.device_id, dv.name AS device_name, dv.well_id, x.kind, x.subject,
                x.severity, x.active, x.at, x.historical, x.evidence, x.alert_id
         FROM findings x JOIN devices dv ON dv.id = x.device_id
         WHERE x.tenant_id = $1 AND ($2::bigint IS NULL OR dv.well_id = $2)
           AND ($3::bigint IS NULL OR x.device_id = $3)
           AND ($4::timestamptz IS NULL OR x.at >= $4) AND ($5::timestamptz IS NULL OR x.at < $5)
         ORDER BY x.at DESC, x.id DESC LIMIT $6",
    )
    .bind(tenant)
    .bind(f.well)
    .bind(f.device)
    .bind(f.from)
    .bind(f.to)
    .bind(f.limit)
    .fetch_all(conn)
    .await?;
    crate::collect(&rows, |r| {
        Ok(FindingRow {
            id: r.try_get("id")?,
            device: (r.try_get("device_id")?, r.try_get("device_name")?),
            well: r.try_get("well_id")?,
            kind: r.try_get("kind")?,
            subject: r.try_get("subject")?,
            severity: r.try_get("severity")?,
            active: r.try_get("active")?,
            at: r.try_get("at")?,
            historical: r.try_get("historical")?,
            evidence: r.try_get("evidence")?,
            alert_id: r.try_get("alert_id")?,
        })
    })
}
