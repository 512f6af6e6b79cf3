//! Alerts of a tenant and what people do with them: `GET …/alerts` (filters, newest
//! first, paged), `GET …/alerts/{alert}` (with its history and comments), `POST
//! …/acknowledge`, `POST …/resolve`, `PUT …/assignee`, `POST …/comments`; the live feed
//! `GET …/alerts/stream` (server-sent events); detection's findings `GET …/findings`; and
//! silences (`GET|POST …/silences`, `DELETE …/silences/{silence}` ends one). Reading is for
//! every role, acting on alerts and silences for operators. Every change is audited and
//! appended to the alert's history (see `store::alerts` for the lifecycle).

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use chrono::{DateTime, Utc};
use detect::FindingKind;
use futures_util::Stream;
use serde::{Deserialize, Serialize};
use store::alerts::{self as sql, AlertFilter, AlertRow, Change, FindingFilter};
use store::{DeviceId, UserId, WellId};
use tokio::sync::broadcast::error::RecvError;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::access::Caller;
use crate::extract::{
    AlertParam, DEFAULT_PAGE, JsonBody, SilenceParam, parse_choice, parse_id_cursor, parse_limit,
    parse_query_id, parse_time, split_page,
};
use crate::{ApiError, ApiQuery, ApiState, ErrorResponse, TenantScope};

pub(crate) fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(list_alerts))
        .routes(routes!(alert_stream))
        .routes(routes!(get_alert))
        .routes(routes!(acknowledge_alert))
        .routes(routes!(resolve_alert))
        .routes(routes!(assign_alert))
        .routes(routes!(comment_alert))
        .routes(routes!(list_findings))
        .routes(routes!(list_silences, create_silence))
        .routes(routes!(expire_silence))
}

const STATES: [&str; 4] = ["open", "firing", "acknowledged", "resolved"];
const SEVERITIES: [&str; 3] = ["info", "warning", "critical"];

/// An alert.
#[derive(Debug, Serialize, ToSchema)]
pub struct AlertDto {
    /// Id.
    pub id: i64,
    /// Deduplication key: one open alert per fingerprint (tenant, device, kind, subject).
    pub fingerprint: String,
    /// What: `pump_off`, `rod_part`, `h2s_high`, `pressure_anomaly`, ...
    #[schema(example = "pump_off")]
    pub kind: String,
    /// On what within the device: a metric, `rule:<id>`, or absent for the device.
    pub subject: Option<String>,
    /// `info`, `warning` or `critical`.
    pub severity: String,
    /// `firing`, `acknowledged` or `resolved`.
    pub state: String,
    /// One line in words.
    pub summary: String,
    /// Device id and name, gateway, well id and name.
    pub device_id: Option<i64>,
    /// See `device_id`.
    pub device: Option<String>,
    /// See `device_id`.
    pub gateway: Option<String>,
    /// See `device_id`.
    pub well_id: Option<i64>,
    /// See `device_id`.
    pub well: Option<String>,
    /// Why: values, baseline, score, threshold, the detector or rule, the model.
    #[schema(value_type = Object)]
    pub evidence: serde_json::Value,
    /// Started firing.
    pub started_at: DateTime<Utc>,
    /// Newest firing of its condition.
    pub last_fired_at: DateTime<Utc>,
    /// The condition cleared then; it resolves after the hold time unless it fires again.
    pub condition_cleared_at: Option<DateTime<Utc>>,
    /// Acknowledged when and by whom.
    pub acknowledged_at: Option<DateTime<Utc>>,
    /// See `acknowledged_at`.
    pub acknowledged_by: Option<String>,
    /// Resolved when and by whom (`auto` when its condition cleared).
    pub resolved_at: Option<DateTime<Utc>>,
    /// See `resolved_at`.
    pub resolved_by: Option<String>,
    /// Assignee.
    pub assignee_user_id: Option<i64>,
    /// See `assignee_user_id`.
    pub assignee: Option<String>,
    /// Escalations so far.
    pub escalation_level: i32,
    /// Re-opened often lately: its firing is told once it holds.
    pub flapping: bool,
    /// The silence that keeps it from being told.
    pub silence_id: Option<i64>,
    /// When its firing was told to the destinations.
    pub notified_at: Option<DateTime<Utc>>,
}

impl From<AlertRow> for AlertDto {
    fn from(a: AlertRow) -> AlertDto {
        AlertDto {
            id: a.id,
            fingerprint: a.fingerprint,
            kind: a.kind,
            subject: a.subject,
            severity: a.severity,
            state: a.state,
            summary: a.summary,
            device_id: a.device.as_ref().map(|d| d.0.0),
            device: a.device.map(|d| d.1),
            gateway: a.gateway,
            well_id: a.well.as_ref().map(|w| w.0.0),
            well: a.well.map(|w| w.1),
            evidence: a.evidence,
            started_at: a.started_at,
            last_fired_at: a.last_fired_at,
            condition_cleared_at: a.condition_cleared_at,
            acknowledged_at: a.acknowledged.as_ref().map(|x| x.0),
            acknowledged_by: a.acknowledged.map(|x| x.1),
            resolved_at: a.resolved.as_ref().map(|x| x.0),
            resolved_by: a.resolved.map(|x| x.1),
            assignee_user_id: a.assignee.as_ref().map(|x| x.0.0),
            assignee: a.assignee.map(|x| x.1),
            escalation_level: a.escalation_level,
            flapping: a.flapping,
            silence_id: a.silence_id,
            notified_at: a.notified_at,
        }
    }
}

fn alert_json(a: &AlertDto) -> serde_json::Value {
    serde_json::json!({ "state": a.state, "severity": a.severity,
                        "assignee_user_id": a.assignee_user_id })
}

/// A page of alerts, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct AlertPage {
    /// Alerts.
    pub items: Vec<AlertDto>,
    /// Pass as `cursor` for older alerts; absent on the last page.
    pub next_cursor: Option<String>,
}

/// Filters of the alert list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AlertQuery {
    /// `open` (firing or acknowledged), `firing`, `acknowledged` or `resolved`.
    #[param(example = "open")]
    pub state: Option<String>,
    /// At least this severity: `info`, `warning`, `critical`.
    pub severity: Option<String>,
    /// Only this kind (e.g. `pump_off`).
    pub kind: Option<String>,
    /// Only this well.
    #[param(value_type = Option<i64>, minimum = 1)]
    pub well: Option<String>,
    /// Only this device.
    #[param(value_type = Option<i64>, minimum = 1)]
    pub device: Option<String>,
    /// Most items: 1 to the server's `max_page_size` (default 100).
    #[param(value_type = Option<u32>, minimum = 1)]
    pub limit: Option<String>,
    /// `next_cursor` of the previous page.
    #[param(pattern = "^[1-9][0-9]{0,17}$")]
    pub cursor: Option<String>,
}

fn check_kind(raw: Option<&str>) -> Result<Option<&str>, ApiError> {
    match raw {
        Some(k) if FindingKind::parse(k).is_none() => Err(ApiError::query(
            "kind",
            format!(
                "must be a finding kind ({}), got {k:?}",
                FindingKind::ALL.map(FindingKind::as_str).join(", ")
            ),
        )),
        other => Ok(other),
    }
}

#[utoipa::path(
    get,
    path = "/api/v1/tenants/{tenant}/alerts",
    security(("bearer" = ["viewer"])),
    tag = "alerts",
    operation_id = "list_alerts",
    params(TenantScope, AlertQuery),
    responses(
        (status = 200, description = "Alerts, newest first", body = AlertPage),
        (status = 400, description = "Invalid parameter", body = ErrorResponse),
    )
)]
async fn list_alerts(
    State(state): State<ApiState>,
    scope: TenantScope,
    ApiQuery(q): ApiQuery<AlertQuery>,
) -> Result<Json<AlertPage>, ApiError> {
    let limit = parse_limit(
        q.limit.as_deref(),
        DEFAULT_PAGE,
        state.options().max_page_size,
    )?;
    let filter = AlertFilter {
        state: parse_choice("state", q.state.as_deref(), &STATES)?,
        min_severity: parse_choice("severity", q.severity.as_deref(), &SEVERITIES)?,
        kind: check_kind(q.kind.as_deref())?,
        well: parse_query_id("well", q.well.as_deref())?.map(WellId),
        device: parse_query_id("device", q.device.as_deref())?.map(DeviceId),
        before_id: parse_id_cursor(q.cursor.as_deref())?,
        limit: i64::from(limit) + 1,
    };
    let mut tx = scope.begin(state.db()).await?;
    let rows = sql::list(&mut tx, scope.id, &filter).await?;
    tx.commit().await?;
    let (rows, next_cursor) = split_page(rows, limit, |r| r.id.to_string());
    Ok(Json(AlertPage {
        items: rows.into_iter().map(AlertDto::from).collect(),
        next_cursor,
    }))
}

/// One entry of an alert's history.
#[derive(Debug, Serialize, ToSchema)]
pub struct AlertEventDto {
    /// When.
    pub at: DateTime<Utc>,
    /// `firing`, `refired`, `condition_cleared`, `resolved`, `acknowledged`, `assigned`,
    /// `commented`, `escalated`, `severity_raised`, `silenced`, `flapping`, `notified`.
    pub event: String,
    /// Who, for people's actions.
    pub actor: Option<String>,
    /// Details.
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
}

/// A comment on an alert.
#[derive(Debug, Serialize, ToSchema)]
pub struct CommentDto {
    /// Id.
    pub id: i64,
    /// Who.
    pub author: String,
    /// Text.
    pub body: String,
    /// When.
    pub created_at: DateTime<Utc>,
}

impl From<sql::CommentRow> for CommentDto {
    fn from(c: sql::CommentRow) -> CommentDto {
        CommentDto {
            id: c.id,
            author: c.author,
            body: c.body,
            created_at: c.created_at,
        }
    }
}

/// An alert with its history and comments.
#[derive(Debug, Serialize, ToSchema)]
pub struct AlertDetail {
    /// The alert.
    #[serde(flatten)]
    pub alert: AlertDto,
    /// Its history, oldest first.
    pub events: Vec<AlertEventDto>,
    /// Its comments, oldest first.
    pub comments: Vec<CommentDto>,
}

fn not_found(scope: &TenantScope, id: i64) -> ApiError {
    ApiError::NotFound(format!("alert {id} of tenant `{}`", scope.slug))
}

#[utoipa::path(
    get,
    path = "/api/v1/tenants/{tenant}/alerts/{alert}",
    security(("bearer" = ["viewer"])),
    tag = "alerts",
    operation_id = "get_alert",
    params(TenantScope, AlertParam),
    responses(
        (status = 200, description = "The alert, its history and comments", body = AlertDetail),
        (status = 400, description = "Invalid parameter", body = ErrorResponse),
        (status = 404, description = "Unknown alert", body = ErrorResponse),
    )
)]
async fn get_alert(
    State(state): State<ApiState>,
    scope: TenantScope,
    AlertParam(id): AlertParam,
) -> Result<Json<AlertDetail>, ApiError> {
    let mut tx = scope.begin(state.db()).await?;
    let alert = sql::get(&mut tx, scope.id, id)
        .await?
        .ok_or_else(|| not_found(&scope, id))?;
    let events = sql::events(&mut tx, scope.id, id).await?;
    let comments = sql::comments(&mut tx, scope.id, id).await?;
    tx.commit().await?;
    Ok(Json(AlertDetail {
        alert: alert.into(),
        events: events
            .into_iter()
            .map(|e| AlertEventDto {
                at: e.at,
                event: e.event,
                actor: e.actor,
                detail: e.detail,
            })
            .collect(),
        comments: comments.into_iter().map(CommentDto::from).collect(),
    }))
}

/// Applies a person's change, audits it, answers the alert.
async fn change(
    state: &ApiState,
    scope: &TenantScope,
    caller: &Caller,
    id: i64,
    action: &str,
    run: impl AsyncFnOnce(&mut store::PgConnection, &str) -> Result<Change, store::DbError>,
) -> Result<Json<AlertDto>, ApiError> {
    let mut tx = scope.begin(state.db()).await?;
    let before = sql::get(&mut tx, scope.id, id)
        .await?
        .ok_or_else(|| not_found(scope, id))?;
    let before = alert_json(&before.into());
    let alert = match run(&mut tx, &caller.principal.actor).await? {
        Change::NotFound => return Err(not_found(scope, id)),
        Change::Conflict(why) => return Err(ApiError::Conflict(why)),
        Change::Unchanged(a) => {
            tx.commit().await?;
            return Ok(Json(a.into()));
        }
        Change::Done(a) => AlertDto::from(a),
    };
    let target = format!("alert:{id}");
    store::audit::record(
        &mut tx,
        &caller.audit(
            Some(scope.id),
            action,
            &target,
            Some(before),
            Some(alert_json(&alert)),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(alert))
}

#[utoipa::path(
    post,
    path = "/api/v1/tenants/{tenant}/alerts/{alert}/acknowledge",
    security(("bearer" = ["operator"])),
    tag = "alerts",
    operation_id = "acknowledge_alert",
    params(TenantScope, AlertParam),
    responses(
        (status = 400, description = "Invalid parameter", body = ErrorResponse),
        (status = 200, description = "Acknowledged (or already was); destinations told of its firing are told", body = AlertDto),
        (status = 404, description = "Unknown alert", body = ErrorResponse),
        (status = 409, description = "The alert is resolved", body = ErrorResponse),
    )
)]
async fn acknowledge_alert(
    State(state): State<ApiState>,
    scope: TenantScope,
    caller: Caller,
    AlertParam(id): AlertParam,
) -> Result<Json<AlertDto>, ApiError> {
    let tenant = scope.id;
    change(
        &state,
        &scope,
        &caller,
        id,
        "alert.acknowledge",
        async move |conn, actor| sql::acknowledge(conn, tenant, id, actor).await,
    )
    .await
}

#[utoipa::path(
    post,
    path = "/api/v1/tenants/{tenant}/alerts/{alert}/resolve",
    security(("bearer" = ["operator"])),
    tag = "alerts",
    operation_id = "resolve_alert",
    params(TenantScope, AlertParam),
    responses(
        (status = 400, description = "Invalid parameter", body = ErrorResponse),
        (status = 200, description = "Resolved (or already was); a condition still active does not re-open it until it clears and fires again", body = AlertDto),
        (status = 404, description = "Unknown alert", body = ErrorResponse),
    )
)]
async fn resolve_alert(
    State(state): State<ApiState>,
    scope: TenantScope,
    caller: Caller,
    AlertParam(id): AlertParam,
) -> Result<Json<AlertDto>, ApiError> {
    let tenant = scope.id;
    change(
        &state,
        &scope,
        &caller,
        id,
        "alert.resolve",
        async move |conn, actor| sql::resolve(conn, tenant, id, actor).await,
    )
    .await
}

/// Who an alert is assigned to.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssigneeBody {
    /// A member's user id, or `null` to unassign.
    pub user_id: Option<i64>,
}

#[utoipa::path(
    put,
    path = "/api/v1/tenants/{tenant}/alerts/{alert}/assignee",
    security(("bearer" = ["operator"])),
    tag = "alerts",
    operation_id = "assign_alert",
    params(TenantScope, AlertParam),
    request_body(content = AssigneeBody, content_type = "application/json"),
    responses(
        (status = 200, description = "Assigned", body = AlertDto),
        (status = 400, description = "Invalid body", body = ErrorResponse),
        (status = 404, description = "Unknown alert", body = ErrorResponse),
        (status = 409, description = "The user is not a member of the tenant", body = ErrorResponse),
    )
)]
async fn assign_alert(
    State(state): State<ApiState>,
    scope: TenantScope,
    caller: Caller,
    AlertParam(id): AlertParam,
    JsonBody(body): JsonBody<AssigneeBody>,
) -> Result<Json<AlertDto>, ApiError> {
    let user = match body.user_id {
        Some(u) if u < 1 => {
            return Err(ApiError::BadRequest(format!(
                "invalid JSON body: user_id {u} must be a positive integer or null"
            )));
        }
        other => other.map(UserId),
    };
    let tenant = scope.id;
    change(
        &state,
        &scope,
        &caller,
        id,
        "alert.assign",
        async move |conn, actor| sql::assign(conn, tenant, id, user, actor).await,
    )
    .await
}

/// A comment to add.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CommentBody {
    /// 1 to 4,000 characters.
    #[schema(example = "Crew on the way, ETA 40 min")]
    pub body: String,
}

#[utoipa::path(
    post,
    path = "/api/v1/tenants/{tenant}/alerts/{alert}/comments",
    security(("bearer" = ["operator"])),
    tag = "alerts",
    operation_id = "comment_alert",
    params(TenantScope, AlertParam),
    request_body(content = CommentBody, content_type = "application/json"),
    responses(
        (status = 201, description = "Added", body = CommentDto),
        (status = 400, description = "Empty or too long", body = ErrorResponse),
        (status = 404, description = "Unknown alert", body = ErrorResponse),
    )
)]
async fn comment_alert(
    State(state): State<ApiState>,
    scope: TenantScope,
    caller: Caller,
    AlertParam(id): AlertParam,
    JsonBody(body): JsonBody<CommentBody>,
) -> Result<(StatusCode, Json<CommentDto>), ApiError> {
    let text = body.body.trim();
    if text.is_empty() || text.chars().count() > 4000 {
        return Err(ApiError::BadRequest(
            "invalid JSON body: body must be 1 to 4,000 characters".to_owned(),
        ));
    }
    let mut tx = scope.begin(state.db()).await?;
    let comment = sql::comment(&mut tx, scope.id, id, &caller.principal.actor, text)
        .await?
        .ok_or_else(|| not_found(&scope, id))?;
    let target = format!("alert:{id}");
    store::audit::record(
        &mut tx,
        &caller.audit(
            Some(scope.id),
            "alert.comment",
            &target,
            None,
            Some(serde_json::json!({ "comment_id": comment.id, "body": comment.body })),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(comment.into())))
}

/// One server-sent event of the alert stream.
#[derive(Debug, Serialize, ToSchema)]
pub struct AlertStreamEvent {
    /// `ready`, `alert` or `resync`.
    pub event: String,
    /// For `alert`: JSON `{"event", "alert"}`; for `ready`: the tenant.
    pub data: String,
    /// For `alert`: the alert's id.
    pub id: Option<String>,
}

#[utoipa::path(
    get,
    path = "/api/v1/tenants/{tenant}/alerts/stream",
    security(("bearer" = ["viewer"])),
    tag = "alerts",
    operation_id = "alert_stream",
    params(TenantScope),
    responses(
        (status = 400, description = "Invalid parameter", body = ErrorResponse),
        (status = 200, description = "Server-sent events: `ready` once (data: the tenant), then one `alert` event per change of one of the tenant's alerts (data: `{\"event\": what happened, \"alert\": the alert as the list shows it}`, id: the alert's id), and `resync` when this stream fell behind (read the list again). A comment line every 15 s keeps it open.", content_type = "text/event-stream", body = AlertStreamEvent),
    )
)]
async fn alert_stream(
    State(state): State<ApiState>,
    scope: TenantScope,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let feed = state.alert_feed().subscribe();
    let db = state.db().clone();
    let ready = SseEvent::default().event("ready").data(scope.slug.clone());
    let first = futures_util::stream::once(async move { Ok(ready) });
    let changes =
        futures_util::stream::unfold((feed, db, scope), |(mut feed, db, scope)| async move {
            loop {
                let event = match feed.recv().await {
                    Ok(notice) if notice.tenant_id == scope.id.0 => {
                        match alert_of(&db, &scope, notice.alert_id).await {
                            Some(alert) => {
                                let data =
                                    serde_json::json!({ "event": notice.event, "alert": alert });
                                SseEvent::default()
                                    .event("alert")
                                    .id(notice.alert_id.to_string())
                                    .data(data.to_string())
                            }
                            None => SseEvent::default().event("resync").data(""),
                        }
                    }
                    Ok(_) => continue,
                    Err(RecvError::Lagged(_)) => SseEvent::default().event("resync").data(""),
                    Err(RecvError::Closed) => return None,
                };
                return Some((Ok(event), (feed, db, scope)));
            }
        });
    let stream = futures_util::StreamExt::chain(first, changes);
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

/// An alert as the stream shows it (`None` when it cannot be read now).
async fn alert_of(db: &store::Db, scope: &TenantScope, id: i64) -> Option<AlertDto> {
    let mut tx = scope.begin(db).await.ok()?;
    let row = sql::get(&mut tx, scope.id, id).await.ok().flatten();
    tx.commit().await.ok()?;
    row.map(AlertDto::from)
}

/// A finding: one transition of a detected condition.
#[derive(Debug, Serialize, ToSchema)]
pub struct FindingDto {
    /// Id.
    pub id: i64,
    /// Device id and name.
    pub device_id: i64,
    /// See `device_id`.
    pub device: String,
    /// The device's well.
    pub well_id: Option<i64>,
    /// Kind.
    pub kind: String,
    /// Metric, `rule:<id>` or absent.
    pub subject: Option<String>,
    /// Severity.
    pub severity: String,
    /// Became active (`true`) or cleared.
    pub active: bool,
    /// Time of the sample.
    pub at: DateTime<Utc>,
    /// From historical (backfilled) data: scored and stored, never paged.
    pub historical: bool,
    /// Evidence.
    #[schema(value_type = Object)]
    pub evidence: serde_json::Value,
    /// The alert it opened or touched.
    pub alert_id: Option<i64>,
}

/// Filters of the finding list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct FindingQuery {
    /// Only this well.
    #[param(value_type = Option<i64>, minimum = 1)]
    pub well: Option<String>,
    /// Only this device.
    #[param(value_type = Option<i64>, minimum = 1)]
    pub device: Option<String>,
    /// From (RFC 3339).
    pub from: Option<String>,
    /// To, exclusive (RFC 3339).
    pub to: Option<String>,
    /// Most items: 1 to the server's `max_page_size` (default 100).
    #[param(value_type = Option<u32>, minimum = 1)]
    pub limit: Option<String>,
}

#[utoipa::path(
    get,
    path = "/api/v1/tenants/{tenant}/findings",
    security(("bearer" = ["viewer"])),
    tag = "alerts",
    operation_id = "list_findings",
    params(TenantScope, FindingQuery),
    responses(
        (status = 200, description = "Findings, newest first", body = [FindingDto]),
        (status = 400, description = "Invalid parameter", body = ErrorResponse),
    )
)]
async fn list_findings(
    State(state): State<ApiState>,
    scope: TenantScope,
    ApiQuery(q): ApiQuery<FindingQuery>,
) -> Result<Json<Vec<FindingDto>>, ApiError> {
    let limit = parse_limit(
        q.limit.as_deref(),
        DEFAULT_PAGE,
        state.options().max_page_size,
    )?;
    let filter = FindingFilter {
        well: parse_query_id("well", q.well.as_deref())?.map(WellId),
        device: parse_query_id("device", q.device.as_deref())?.map(DeviceId),
        from: q
            .from
            .as_deref()
            .map(|t| parse_time("from", t))
            .transpose()?,
        to: q.to.as_deref().map(|t| parse_time("to", t)).transpose()?,
        limit: i64::from(limit),
    };
    let mut tx = scope.begin(state.db()).await?;
    let rows = sql::findings(&mut tx, scope.id, &filter).await?;
    tx.commit().await?;
    Ok(Json(
        rows.into_iter()
            .map(|f| FindingDto {
                id: f.id,
                device_id: f.device.0.0,
                device: f.device.1,
                well_id: f.well.map(|w| w.0),
                kind: f.kind,
                subject: f.subject,
                severity: f.severity,
                active: f.active,
                at: f.at,
                historical: f.historical,
                evidence: f.evidence,
                alert_id: f.alert_id,
            })
            .collect(),
    ))
}

/// A silence: alerts matching all of its matchers are recorded but not told while it lasts.
#[derive(Debug, Serialize, ToSchema)]
pub struct SilenceDto {
    /// Id.
    pub id: i64,
    /// Only alerts of this kind (absent: any).
    pub kind: Option<String>,
    /// Only alerts of this well (absent: any).
    pub well_id: Option<i64>,
    /// Only alerts of this device (absent: any).
    pub device_id: Option<i64>,
    /// In force from.
    pub starts_at: DateTime<Utc>,
    /// Until.
    pub ends_at: DateTime<Utc>,
    /// Why.
    pub comment: String,
    /// Who.
    pub created_by: String,
    /// When.
    pub created_at: DateTime<Utc>,
}

impl From<sql::SilenceRow> for SilenceDto {
    fn from(s: sql::SilenceRow) -> SilenceDto {
        SilenceDto {
            id: s.id,
            kind: s.kind,
            well_id: s.well.map(|w| w.0),
            device_id: s.device.map(|d| d.0),
            starts_at: s.starts_at,
            ends_at: s.ends_at,
            comment: s.comment,
            created_by: s.created_by,
            created_at: s.created_at,
        }
    }
}

/// Which silences.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SilenceQuery {
    /// `true`: only those in force now.
    #[param(value_type = Option<bool>)]
    pub active: Option<String>,
}

#[utoipa::path(
    get,
    path = "/api/v1/tenants/{tenant}/silences",
    security(("bearer" = ["viewer"])),
    tag = "alerts",
    operation_id = "list_silences",
    params(TenantScope, SilenceQuery),
    responses(
        (status = 200, description = "Silences, newest first", body = [SilenceDto]),
        (status = 400, description = "Invalid parameter", body = ErrorResponse),
    )
)]
async fn list_silences(
    State(state): State<ApiState>,
    scope: TenantScope,
    ApiQuery(q): ApiQuery<SilenceQuery>,
) -> Result<Json<Vec<SilenceDto>>, ApiError> {
    let active = parse_choice("active", q.active.as_deref(), &["true", "false"])? == Some("true");
    let mut tx = scope.begin(state.db()).await?;
    let rows = sql::silences(&mut tx, scope.id, active).await?;
    tx.commit().await?;
    Ok(Json(rows.into_iter().map(SilenceDto::from).collect()))
}

/// A silence to create: matchers (all optional) and an end, as a time or a duration.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SilenceBody {
    /// Only alerts of this kind.
    pub kind: Option<String>,
    /// Only alerts of this well.
    pub well_id: Option<i64>,
    /// Only alerts of this device.
    pub device_id: Option<i64>,
    /// Start (default now).
    pub starts_at: Option<DateTime<Utc>>,
    /// End; or give `duration`.
    pub ends_at: Option<DateTime<Utc>>,
    /// Length from the start, e.g. `2h`, `30m` (at most 90 days).
    #[schema(example = "2h")]
    pub duration: Option<String>,
    /// Why (at most 1,000 characters).
    #[serde(default)]
    pub comment: String,
}

const MAX_SILENCE: Duration = Duration::from_secs(90 * 24 * 3600);

fn positive(field: &str, id: Option<i64>) -> Result<Option<i64>, ApiError> {
    match id {
        Some(i) if i < 1 => Err(ApiError::BadRequest(format!(
            "invalid JSON body: {field} {i} must be a positive integer or null"
        ))),
        other => Ok(other),
    }
}

#[utoipa::path(
    post,
    path = "/api/v1/tenants/{tenant}/silences",
    security(("bearer" = ["operator"])),
    tag = "alerts",
    operation_id = "create_silence",
    params(TenantScope),
    request_body(content = SilenceBody, content_type = "application/json"),
    responses(
        (status = 201, description = "Created", body = SilenceDto),
        (status = 400, description = "Invalid matcher, time or duration (the message names it)", body = ErrorResponse),
        (status = 404, description = "Unknown well or device", body = ErrorResponse),
    )
)]
async fn create_silence(
    State(state): State<ApiState>,
    scope: TenantScope,
    caller: Caller,
    JsonBody(body): JsonBody<SilenceBody>,
) -> Result<(StatusCode, Json<SilenceDto>), ApiError> {
    check_kind(body.kind.as_deref()).map_err(|_| {
        ApiError::BadRequest(format!(
            "invalid JSON body: kind must be a finding kind ({})",
            FindingKind::ALL.map(FindingKind::as_str).join(", ")
        ))
    })?;
    if body.comment.chars().count() > 1000 {
        return Err(ApiError::BadRequest(
            "invalid JSON body: comment is longer than 1,000 characters".to_owned(),
        ));
    }
    let well = positive("well_id", body.well_id)?.map(WellId);
    let device = positive("device_id", body.device_id)?.map(DeviceId);
    let start = body.starts_at.unwrap_or_else(Utc::now);
    let end = match (body.ends_at, body.duration.as_deref()) {
        (Some(end), None) => end,
        (None, Some(d)) => {
            let d = humantime::parse_duration(d).map_err(|e| {
                ApiError::BadRequest(format!("invalid JSON body: duration {d:?}: {e}"))
            })?;
            if d.is_zero() || d > MAX_SILENCE {
                return Err(ApiError::BadRequest(
                    "invalid JSON body: duration must be more than 0 and at most 90 days"
                        .to_owned(),
                ));
            }
            start + chrono::Duration::from_std(d).unwrap_or_default()
        }
        _ => {
            return Err(ApiError::BadRequest(
                "invalid JSON body: give exactly one of ends_at and duration".to_owned(),
            ));
        }
    };
    if end <= start || end - start > chrono::Duration::from_std(MAX_SILENCE).unwrap_or_default() {
        return Err(ApiError::BadRequest(
            "invalid JSON body: the silence must end after it starts, within 90 days".to_owned(),
        ));
    }
    let mut tx = scope.begin(state.db()).await?;
    if let Some(w) = well
        && store::wells::well(&mut tx, scope.id, w).await?.is_none()
    {
        return Err(ApiError::NotFound(format!(
            "well {w} of tenant `{}`",
            scope.slug
        )));
    }
    if let Some(d) = device
        && store::devices::device(&mut tx, scope.id, d)
            .await?
            .is_none()
    {
        return Err(ApiError::NotFound(format!(
            "device {d} of tenant `{}`",
            scope.slug
        )));
    }
    let row = sql::create_silence(
        &mut tx,
        scope.id,
        &sql::NewSilence {
            kind: body.kind.as_deref(),
            well,
            device,
            starts_at: Some(start),
            ends_at: end,
            comment: &body.comment,
            created_by: &caller.principal.actor,
        },
    )
    .await?;
    let dto = SilenceDto::from(row);
    let target = format!("silence:{}", dto.id);
    store::audit::record(
        &mut tx,
        &caller.audit(
            Some(scope.id),
            "silence.create",
            &target,
            None,
            Some(
                serde_json::json!({ "kind": dto.kind, "well_id": dto.well_id,
                                     "device_id": dto.device_id, "starts_at": dto.starts_at,
                                     "ends_at": dto.ends_at, "comment": dto.comment }),
            ),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(dto)))
}

#[utoipa::path(
    delete,
    path = "/api/v1/tenants/{tenant}/silences/{silence}",
    security(("bearer" = ["operator"])),
    tag = "alerts",
    operation_id = "expire_silence",
    params(TenantScope, SilenceParam),
    responses(
        (status = 400, description = "Invalid parameter", body = ErrorResponse),
        (status = 200, description = "Ended now (kept in the list); open alerts it held back are told at the next lifecycle run", body = SilenceDto),
        (status = 404, description = "Unknown silence", body = ErrorResponse),
    )
)]
async fn expire_silence(
    State(state): State<ApiState>,
    scope: TenantScope,
    caller: Caller,
    SilenceParam(id): SilenceParam,
) -> Result<Json<SilenceDto>, ApiError> {
    let mut tx = scope.begin(state.db()).await?;
    let row = sql::expire_silence(&mut tx, scope.id, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("silence {id} of tenant `{}`", scope.slug)))?;
    let dto = SilenceDto::from(row);
    let target = format!("silence:{id}");
    store::audit::record(
        &mut tx,
        &caller.audit(
            Some(scope.id),
            "silence.expire",
            &target,
            None,
            Some(serde_json::json!({ "ends_at": dto.ends_at })),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(dto))
}
