//! Ingest audit of a tenant: the messages the ingester refused, and counters.
//!
//! Both read the database (`ingest_rejections`, `ingested_batches`), so they cover every
//! ingester instance of the deployment and survive restarts; the in-memory counters of
//! this process's ingester are on `/metrics` (operator scope: they mix all tenants).
//! Rejections of messages whose tenant could not be resolved belong to no tenant and
//! are visible to operators only (in the database and the ingester's log).

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{
    DEFAULT_PAGE, PageQuery, parse_id_cursor, parse_limit, parse_time, rfc3339, split_page,
};
use super::{ApiError, ApiQuery, ApiState, ErrorResponse, TenantScope};
use store::rejections::{self as queries, RejectionRow};

pub(crate) fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(rejections))
        .routes(routes!(counters))
}

/// A message the ingester refused.
#[derive(Debug, Serialize, ToSchema)]
pub struct Rejection {
    /// Rejection id (newer ones are larger).
    pub id: i64,
    /// When it was refused.
    pub time: DateTime<Utc>,
    /// Gateway id from the topic.
    #[schema(example = "gw-001")]
    pub gateway: String,
    /// MQTT topic.
    #[schema(example = "wp/v1/acme/gw-001/data")]
    pub topic: String,
    /// Reason code: `bad_topic`, `unknown_gateway`, `malformed`, `incompatible_version`,
    /// `unknown_boot`, `unknown_alias`, `out_of_range`, `invalid_content`, `seq_conflict`,
    /// `storage_refused`, …
    #[schema(example = "malformed")]
    pub reason: String,
    /// What exactly was wrong.
    pub detail: String,
    /// Payload size, bytes.
    pub payload_size: i32,
}

impl From<RejectionRow> for Rejection {
    fn from(r: RejectionRow) -> Rejection {
        let (reason, detail) = match r.reason.split_once(':') {
            Some((code, detail)) => (code.trim().to_owned(), detail.trim().to_owned()),
            None => (r.reason.clone(), String::new()),
        };
        Rejection {
            id: r.id,
            time: r.time,
            gateway: r.gateway,
            topic: r.topic,
            reason,
            detail,
            payload_size: r.payload_size,
        }
    }
}

/// A page of rejections.
#[derive(Debug, Serialize, ToSchema)]
pub struct RejectionPage {
    /// Rejections, newest first.
    pub items: Vec<Rejection>,
    /// Pass as `cursor` to get older ones; absent on the last page.
    pub next_cursor: Option<String>,
}

/// Recent messages the ingester refused for this tenant, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/tenants/{tenant}/ingest/rejections",
    security(("bearer" = ["viewer"])),
    tag = "ingest",
    operation_id = "ingest_rejections",
    params(TenantScope, PageQuery),
    responses(
        (status = 200, description = "A page of rejections", body = RejectionPage),
        (status = 400, description = "Invalid parameter", body = ErrorResponse),
        (status = 404, description = "Unknown tenant", body = ErrorResponse),
        (status = 503, description = "Database unavailable", body = ErrorResponse),
    )
)]
async fn rejections(
    State(state): State<ApiState>,
    scope: TenantScope,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Json<RejectionPage>, ApiError> {
    let limit = parse_limit(
        query.limit.as_deref(),
        DEFAULT_PAGE,
        state.options().max_page_size,
    )?;
    let before = parse_id_cursor(query.cursor.as_deref())?;
    let mut tx = scope.begin(state.db()).await?;
    let rows = queries::list_rejections(&mut tx, scope.id, before, i64::from(limit) + 1).await?;
    tx.commit().await?;
    let (rows, next_cursor) = split_page(rows, limit, |r| r.id.to_string());
    Ok(Json(RejectionPage {
        items: rows.into_iter().map(Rejection::from).collect(),
        next_cursor,
    }))
}

/// Parameters of the counters endpoint.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CountersQuery {
    /// Count from this time on (RFC 3339; default 24 hours ago).
    #[param(value_type = Option<DateTime<Utc>>)]
    pub since: Option<String>,
}

/// Rejections of one reason.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReasonCount {
    /// Reason code.
    #[schema(example = "unknown_boot")]
    pub reason: String,
    /// Rejections.
    pub count: i64,
}

/// Ingest activity of a tenant over a period.
#[derive(Debug, Serialize, ToSchema)]
pub struct IngestCounters {
    /// Start of the period.
    pub since: DateTime<Utc>,
    /// End of the period (the time of the request).
    pub until: DateTime<Utc>,
    /// Batches stored.
    pub batches: i64,
    /// Of which backlog replay (`historical`).
    pub historical_batches: i64,
    /// Samples stored.
    pub samples: i64,
    /// When the newest batch was received.
    pub last_batch_at: Option<DateTime<Utc>>,
    /// Refused messages per reason, most frequent first.
    pub rejections: Vec<ReasonCount>,
}

/// Ingest counters of this tenant: batches, samples, rejections by reason.
#[utoipa::path(
    get,
    path = "/api/v1/tenants/{tenant}/ingest/counters",
    security(("bearer" = ["viewer"])),
    tag = "ingest",
    operation_id = "ingest_counters",
    params(TenantScope, CountersQuery),
    responses(
        (status = 200, description = "Counters since `since`", body = IngestCounters),
        (status = 400, description = "Invalid parameter", body = ErrorResponse),
        (status = 404, description = "Unknown tenant", body = ErrorResponse),
        (status = 503, description = "Database unavailable", body = ErrorResponse),
    )
)]
async fn counters(
    State(state): State<ApiState>,
    scope: TenantScope,
    ApiQuery(query): ApiQuery<CountersQuery>,
) -> Result<Json<IngestCounters>, ApiError> {
    let until = Utc::now();
    let since = match query.since.as_deref() {
        Some(raw) => parse_time("since", raw)?,
        None => until - chrono::Duration::days(1),
    };
    if since > until {
        return Err(ApiError::query(
            "since",
            format!("must not be in the future (now is {})", rfc3339(until)),
        ));
    }
    let mut tx = scope.begin(state.db()).await?;
    let counts = queries::ingest_counts(&mut tx, scope.id, since).await?;
    tx.commit().await?;
    Ok(Json(IngestCounters {
        since,
        until,
        batches: counts.batches,
        historical_batches: counts.historical_batches,
        samples: counts.samples,
        last_batch_at: counts.last_batch_at,
        rejections: counts
            .rejections
            .into_iter()
            .map(|(reason, count)| ReasonCount { reason, count })
            .collect(),
    }))
}
