//! Where a tenant's alerts go: `GET|POST …/alert-destinations`, `GET|PUT|DELETE
//! …/alert-destinations/{destination}`, `POST …/{destination}/test` ("send test alert")
//! and `GET …/{destination}/deliveries` (the delivery log: every message with its state,
//! attempts, last status and error). Kinds: `webhook` (Standard Webhooks signature,
//! CloudEvents 1.0 body; its signing secret `whsec_…` is made here and shown once),
//! `alertmanager` (Prometheus Alertmanager's `POST /api/v2/alerts`) and `pagerduty`
//! (Events API v2; the integration's routing key is given here, kept sealed, never shown
//! again). Secrets are sealed under `[tenancy] ca_key` (503 `secrets_unavailable`
//! without it). Reading is for every role; changing and testing for tenant admins. Every
//! change is audited (never with a secret).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use store::alerts::{self as sql, DESTINATION_SECRET, DestinationInput, DestinationRow};
use store::certificates::CaKey;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::access::Caller;
use crate::extract::{DEFAULT_PAGE, DestinationParam, JsonBody, parse_limit, sealing_key};
use crate::{ApiError, ApiQuery, ApiState, ErrorResponse, TenantScope};

pub(crate) fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(list_destinations, create_destination))
        .routes(routes!(
            get_destination,
            update_destination,
            delete_destination
        ))
        .routes(routes!(test_destination))
        .routes(routes!(list_deliveries))
}

const KINDS: [&str; 3] = ["webhook", "alertmanager", "pagerduty"];

/// An alert destination.
#[derive(Debug, Serialize, ToSchema)]
pub struct DestinationDto {
    /// Id.
    pub id: i64,
    /// Name (unique in the tenant).
    pub name: String,
    /// `webhook`, `alertmanager` or `pagerduty`.
    pub kind: String,
    /// Target: the webhook URL, the Alertmanager base URL, or PagerDuty's events endpoint.
    pub url: String,
    /// Whether a secret (signing secret, routing key) is set.
    pub has_secret: bool,
    /// Least severity sent: `info`, `warning`, `critical`.
    pub min_severity: String,
    /// Sending.
    pub enabled: bool,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last successful delivery.
    pub last_delivered_at: Option<DateTime<Utc>>,
    /// Last error and when.
    pub last_error: Option<String>,
    /// See `last_error`.
    pub last_error_at: Option<DateTime<Utc>>,
    /// Messages waiting (first attempt or retry).
    pub pending: i64,
    /// Messages given up after the retry limit (dead letters; see the delivery log).
    pub dead: i64,
}

impl From<DestinationRow> for DestinationDto {
    fn from(d: DestinationRow) -> DestinationDto {
        DestinationDto {
            id: d.id,
            name: d.name,
            kind: d.kind,
            url: d.url,
            has_secret: d.has_secret,
            min_severity: d.min_severity,
            enabled: d.enabled,
            created_at: d.created_at,
            last_error_at: d.last_error.as_ref().map(|e| e.1),
            last_error: d.last_error.map(|e| e.0),
            last_delivered_at: d.last_delivered_at,
            pending: d.pending,
            dead: d.dead,
        }
    }
}

/// A destination just created: with its webhook signing secret, shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedDestinationDto {
    /// The destination.
    #[serde(flatten)]
    pub destination: DestinationDto,
    /// `webhook` only: the signing secret (`whsec_` + base64), for the receiver to verify
    /// `webhook-signature` (Standard Webhooks). Never shown again.
    pub signing_secret: Option<String>,
}

fn destination_json(d: &DestinationDto) -> serde_json::Value {
    serde_json::json!({ "name": d.name, "kind": d.kind, "url": d.url,
                        "min_severity": d.min_severity, "enabled": d.enabled,
                        "has_secret": d.has_secret })
}

/// A destination to create, or the new content of one (a PUT replaces it; the kind
/// stays).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DestinationBody {
    /// 1 to 200 characters, unique in the tenant.
    #[schema(example = "Ops webhook")]
    pub name: String,
    /// `webhook`, `alertmanager` or `pagerduty` (ignored by a PUT).
    #[schema(example = "webhook")]
    pub kind: String,
    /// `http` or `https` URL.
    #[schema(example = "https://hooks.example.com/wellpulse")]
    pub url: String,
    /// `pagerduty` only: the integration's routing key (required when creating).
    pub routing_key: Option<String>,
    /// `info` (default), `warning` or `critical`.
    pub min_severity: Option<String>,
    /// Default true.
    pub enabled: Option<bool>,
}

struct Checked {
    name: String,
    kind: &'static str,
    url: String,
    min_severity: &'static str,
    enabled: bool,
}

impl DestinationBody {
    fn check(&self) -> Result<Checked, ApiError> {
        let bad = |why: String| ApiError::BadRequest(format!("invalid JSON body: {why}"));
        let name = self.name.trim();
        if name.is_empty() || name.chars().count() > 200 {
            return Err(bad("name must be 1 to 200 characters".to_owned()));
        }
        let kind = KINDS.into_iter().find(|k| *k == self.kind).ok_or_else(|| {
            bad(format!(
                "kind must be one of {}, got {:?}",
                KINDS.join(", "),
                self.kind
            ))
        })?;
        let url =
            url::Url::parse(&self.url).map_err(|e| bad(format!("url {:?}: {e}", self.url)))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(bad(format!(
                "url {:?} must be an http or https URL with a host",
                self.url
            )));
        }
        if self.url.len() > 2000 {
            return Err(bad("url is longer than 2,000 characters".to_owned()));
        }
        let min_severity = match self.min_severity.as_deref() {
            None => "info",
            Some(s) => detect::Severity::parse(s)
                .ok_or_else(|| {
                    bad(format!(
                        "min_severity must be info, warning or critical, got {s:?}"
                    ))
                })?
                .as_str(),
        };
        if let Some(key) = &self.routing_key
            && (kind != "pagerduty" || key.trim().is_empty() || key.len() > 200)
        {
            return Err(bad(
                "routing_key is for pagerduty destinations only, 1 to 200 characters".to_owned(),
            ));
        }
        Ok(Checked {
            name: name.to_owned(),
            kind,
            url: self.url.clone(),
            min_severity,
            enabled: self.enabled.unwrap_or(true),
        })
    }
}

impl Checked {
    fn input(&self) -> DestinationInput<'_> {
        DestinationInput {
            name: &self.name,
            kind: self.kind,
            url: &self.url,
            min_severity: self.min_severity,
            enabled: self.enabled,
        }
    }
}

fn secrets_key(state: &ApiState) -> Result<CaKey, ApiError> {
    sealing_key(state, || {
        ApiError::SecretsUnavailable(
            "destination secrets cannot be kept on this server ([tenancy] ca_key is not set)"
                .to_owned(),
        )
    })
}

fn seal(key: &CaKey, scope: &TenantScope, secret: &str) -> Result<Vec<u8>, ApiError> {
    key.seal_as(DESTINATION_SECRET, scope.id, secret.as_bytes())
        .map_err(|e| ApiError::SecretsUnavailable(e.to_string()))
}

fn not_found(scope: &TenantScope, id: i64) -> ApiError {
    ApiError::NotFound(format!("alert destination {id} of tenant `{}`", scope.slug))
}

#[utoipa::path(
    get,
    path = "/api/v1/tenants/{tenant}/alert-destinations",
    security(("bearer" = ["viewer"])),
    tag = "alerts",
    operation_id = "list_alert_destinations",
    params(TenantScope),
    responses(
        (status = 400, description = "Invalid parameter", body = ErrorResponse),
        (status = 200, description = "The tenant's destinations with their delivery health", body = [DestinationDto]))
)]
async fn list_destinations(
    State(state): State<ApiState>,
    scope: TenantScope,
) -> Result<Json<Vec<DestinationDto>>, ApiError> {
    let mut tx = scope.begin(state.db()).await?;
    let rows = sql::destinations(&mut tx, scope.id).await?;
    tx.commit().await?;
    Ok(Json(rows.into_iter().map(DestinationDto::from).collect()))
}

#[utoipa::path(
    post,
    path = "/api/v1/tenants/{tenant}/alert-destinations",
    security(("bearer" = ["tenant_admin"])),
    tag = "alerts",
    operation_id = "create_alert_destination",
    params(TenantScope),
    request_body(content = DestinationBody, content_type = "application/json"),
    responses(
        (status = 201, description = "Created; a webhook's signing secret is in the answer, once", body = CreatedDestinationDto),
        (status = 400, description = "Invalid name, kind, URL, severity or routing key", body = ErrorResponse),
        (status = 409, description = "A destination of that name exists", body = ErrorResponse),
        (status = 503, description = "`secrets_unavailable`: `[tenancy] ca_key` is not set", body = ErrorResponse),
    )
)]
async fn create_destination(
    State(state): State<ApiState>,
    scope: TenantScope,
    caller: Caller,
    JsonBody(body): JsonBody<DestinationBody>,
) -> Result<(StatusCode, Json<CreatedDestinationDto>), ApiError> {
    let checked = body.check()?;
    let secret = match checked.kind {
        "webhook" => Some(alerts::deliver::webhook::generate_secret()),
        "pagerduty" => Some(body.routing_key.clone().ok_or_else(|| {
            ApiError::BadRequest(
                "invalid JSON body: a pagerduty destination needs its routing_key".to_owned(),
            )
        })?),
        _ => None,
    };
    let sealed = match &secret {
        Some(s) => Some(seal(&secrets_key(&state)?, &scope, s)?),
        None => None,
    };
    let mut tx = scope.begin(state.db()).await?;
    let row =
        sql::create_destination(&mut tx, scope.id, &checked.input(), sealed.as_deref()).await?;
    let dto = DestinationDto::from(row);
    let target = format!("alert_destination:{}", dto.id);
    store::audit::record(
        &mut tx,
        &caller.audit(
            Some(scope.id),
            "alert_destination.create",
            &target,
            None,
            Some(destination_json(&dto)),
        ),
    )
    .await?;
    tx.commit().await?;
    let signing_secret = (checked.kind == "webhook").then_some(secret).flatten();
    Ok((
        StatusCode::CREATED,
        Json(CreatedDestinationDto {
            destination: dto,
            signing_secret,
        }),
    ))
}

#[utoipa::path(
    get,
    path = "/api/v1/tenants/{tenant}/alert-destinations/{destination}",
    security(("bearer" = ["viewer"])),
    tag = "alerts",
    operation_id = "get_alert_destination",
    params(TenantScope, DestinationParam),
    responses(
        (status = 400, description = "Invalid parameter", body = ErrorResponse),
        (status = 200, description = "The destination", body = DestinationDto),
        (status = 404, description = "Unknown destination", body = ErrorResponse),
    )
)]
async fn get_destination(
    State(state): State<ApiState>,
    scope: TenantScope,
    DestinationParam(id): DestinationParam,
) -> Result<Json<DestinationDto>, ApiError> {
    let mut tx = scope.begin(state.db()).await?;
    let row = sql::destination(&mut tx, scope.id, id).await?;
    tx.commit().await?;
    Ok(Json(row.ok_or_else(|| not_found(&scope, id))?.into()))
}

#[utoipa::path(
    put,
    path = "/api/v1/tenants/{tenant}/alert-destinations/{destination}",
    security(("bearer" = ["tenant_admin"])),
    tag = "alerts",
    operation_id = "update_alert_destination",
    params(TenantScope, DestinationParam),
    request_body(content = DestinationBody, content_type = "application/json"),
    responses(
        (status = 200, description = "Replaced (a pagerduty routing_key, when given, replaces the old one)", body = DestinationDto),
        (status = 400, description = "Invalid field", body = ErrorResponse),
        (status = 404, description = "Unknown destination", body = ErrorResponse),
        (status = 409, description = "A destination of that name exists", body = ErrorResponse),
    )
)]
async fn update_destination(
    State(state): State<ApiState>,
    scope: TenantScope,
    caller: Caller,
    DestinationParam(id): DestinationParam,
    JsonBody(mut body): JsonBody<DestinationBody>,
) -> Result<Json<DestinationDto>, ApiError> {
    let mut tx = scope.begin(state.db()).await?;
    let before = sql::destination(&mut tx, scope.id, id)
        .await?
        .ok_or_else(|| not_found(&scope, id))?;
    body.kind = before.kind.clone();
    let checked = body.check()?;
    let sealed = match &body.routing_key {
        Some(key) => Some(seal(&secrets_key(&state)?, &scope, key)?),
        None => None,
    };
    let before = destination_json(&before.into());
    let row = sql::update_destination(&mut tx, scope.id, id, &checked.input(), sealed.as_deref())
        .await?
        .ok_or_else(|| not_found(&scope, id))?;
    let dto = DestinationDto::from(row);
    let target = format!("alert_destination:{id}");
    store::audit::record(
        &mut tx,
        &caller.audit(
            Some(scope.id),
            "alert_destination.update",
            &target,
            Some(before),
            Some(destination_json(&dto)),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(dto))
}

#[utoipa::path(
    delete,
    path = "/api/v1/tenants/{tenant}/alert-destinations/{destination}",
    security(("bearer" = ["tenant_admin"])),
    tag = "alerts",
    operation_id = "delete_alert_destination",
    params(TenantScope, DestinationParam),
    responses(
        (status = 400, description = "Invalid parameter", body = ErrorResponse),
        (status = 204, description = "Deleted with its delivery log; messages still waiting are dropped"),
        (status = 404, description = "Unknown destination", body = ErrorResponse),
    )
)]
async fn delete_destination(
    State(state): State<ApiState>,
    scope: TenantScope,
    caller: Caller,
    DestinationParam(id): DestinationParam,
) -> Result<StatusCode, ApiError> {
    let mut tx = scope.begin(state.db()).await?;
    let before = sql::destination(&mut tx, scope.id, id)
        .await?
        .ok_or_else(|| not_found(&scope, id))?;
    sql::delete_destination(&mut tx, scope.id, id).await?;
    let target = format!("alert_destination:{id}");
    store::audit::record(
        &mut tx,
        &caller.audit(
            Some(scope.id),
            "alert_destination.delete",
            &target,
            Some(destination_json(&before.into())),
            None,
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A test message queued.
#[derive(Debug, Serialize, ToSchema)]
pub struct TestQueuedDto {
    /// The delivery's id (see the delivery log; receivers see `msg_<id>`).
    pub delivery_id: i64,
}

#[utoipa::path(
    post,
    path = "/api/v1/tenants/{tenant}/alert-destinations/{destination}/test",
    security(("bearer" = ["tenant_admin"])),
    tag = "alerts",
    operation_id = "test_alert_destination",
    params(TenantScope, DestinationParam),
    responses(
        (status = 400, description = "Invalid parameter", body = ErrorResponse),
        (status = 202, description = "A test alert is queued; its outcome shows in the delivery log", body = TestQueuedDto),
        (status = 404, description = "Unknown destination", body = ErrorResponse),
    )
)]
async fn test_destination(
    State(state): State<ApiState>,
    scope: TenantScope,
    caller: Caller,
    DestinationParam(id): DestinationParam,
) -> Result<(StatusCode, Json<TestQueuedDto>), ApiError> {
    let now = Utc::now();
    let labels = [
        ("tenant", scope.slug.as_str()),
        ("kind", "test"),
        ("severity", "info"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let snapshot = alerts::deliver::AlertView {
        id: 0,
        tenant: scope.slug.clone(),
        fingerprint: format!("wellpulse/{}/test/{id}", scope.id),
        kind: "test".to_owned(),
        severity: "info".to_owned(),
        state: "firing".to_owned(),
        summary: format!("Test alert from WellPulse to destination {id}: delivery works"),
        labels,
        started_at: now,
        resolved_at: None,
        evidence: serde_json::json!({ "detector": "test", "detail": "sent by `send test alert`" }),
        url: String::new(),
    };
    let mut tx = scope.begin(state.db()).await?;
    let delivery = sql::enqueue_test(
        &mut tx,
        scope.id,
        id,
        &serde_json::to_value(&snapshot).unwrap_or_default(),
    )
    .await?
    .ok_or_else(|| not_found(&scope, id))?;
    let target = format!("alert_destination:{id}");
    store::audit::record(
        &mut tx,
        &caller.audit(
            Some(scope.id),
            "alert_destination.test",
            &target,
            None,
            Some(serde_json::json!({ "delivery_id": delivery })),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(TestQueuedDto {
            delivery_id: delivery,
        }),
    ))
}

/// One message of a destination's delivery log.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryDto {
    /// Id (`msg_<id>` to receivers).
    pub id: i64,
    /// The alert (absent for test messages).
    pub alert_id: Option<i64>,
    /// `firing`, `acknowledged`, `resolved`, `resend`, `escalated` or `test`.
    pub event: String,
    /// `pending`, `delivered` or `dead`.
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

/// Paging of the delivery log.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeliveryQuery {
    /// Most items: 1 to the server's `max_page_size` (default 100).
    #[param(value_type = Option<u32>, minimum = 1)]
    pub limit: Option<String>,
}

#[utoipa::path(
    get,
    path = "/api/v1/tenants/{tenant}/alert-destinations/{destination}/deliveries",
    security(("bearer" = ["viewer"])),
    tag = "alerts",
    operation_id = "list_alert_deliveries",
    params(TenantScope, DestinationParam, DeliveryQuery),
    responses(
        (status = 200, description = "The newest messages, newest first", body = [DeliveryDto]),
        (status = 400, description = "Invalid parameter", body = ErrorResponse),
        (status = 404, description = "Unknown destination", body = ErrorResponse),
    )
)]
async fn list_deliveries(
    State(state): State<ApiState>,
    scope: TenantScope,
    DestinationParam(id): DestinationParam,
    ApiQuery(q): ApiQuery<DeliveryQuery>,
) -> Result<Json<Vec<DeliveryDto>>, ApiError> {
    let limit = parse_limit(
        q.limit.as_deref(),
        DEFAULT_PAGE,
        state.options().max_page_size,
    )?;
    let mut tx = scope.begin(state.db()).await?;
    if sql::destination(&mut tx, scope.id, id).await?.is_none() {
        return Err(not_found(&scope, id));
    }
    let rows = sql::deliveries(&mut tx, scope.id, id, i64::from(limit)).await?;
    tx.commit().await?;
    Ok(Json(
        rows.into_iter()
            .map(|d| DeliveryDto {
                id: d.id,
                alert_id: d.alert_id,
                event: d.event,
                state: d.state,
                attempts: d.attempts,
                next_attempt_at: d.next_attempt_at,
                last_status: d.last_status,
                last_error: d.last_error,
                created_at: d.created_at,
                delivered_at: d.delivered_at,
            })
            .collect(),
    ))
}
