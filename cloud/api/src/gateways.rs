//! Gateways of a tenant and their status.
//!
//! The status comes from what the ingester records: `online` (birth seen / death or
//! silence not yet), `last_seen` (newest message), the current birth (boot id, agent
//! version, config hash, device count), the buffer status of the newest batch header
//! that carried one (with the buffer epoch of the newest stored batch), the clock skew of
//! the newest live batch, and whether its batches are being refused: a gateway connected
//! but whose batches are refused for good, none stored since, is `unhealthy`. Boot ids are random
//! `u64`s and are sent as decimal strings (JavaScript numbers lose precision above 2^53).

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{
    DEFAULT_PAGE, Device, SiteRef, SlugPageQuery, gateway_not_found, parse_limit,
    parse_slug_cursor, split_page,
};
use super::{ApiError, ApiQuery, ApiState, ErrorResponse, GatewayParam, TenantScope};
use store::gateways::{self as queries, BirthRow, BufferRow, GatewayRow};

pub(crate) fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(list_gateways))
        .routes(routes!(get_gateway))
}

/// Connection state of a gateway.
#[derive(Debug, Clone, Copy, Serialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum GatewayStatus {
    /// An MQTT session is open.
    Online,
    /// The session ended (death message) or the gateway fell silent.
    Offline,
    /// Connected, but its batches are refused for good (none stored since the last
    /// refusal): data is not arriving. See `refusal`.
    Unhealthy,
}

/// The latest permanent refusal of a gateway's batches.
#[derive(Debug, Serialize, ToSchema)]
pub struct Refusal {
    /// When a batch was last refused.
    pub at: DateTime<Utc>,
    /// The reason code (as in the negative ack), e.g. `seq_conflict`.
    #[schema(example = "seq_conflict")]
    pub reason: String,
}

/// The gateway's current session as announced by its birth message.
#[derive(Debug, Serialize, ToSchema)]
pub struct LastBirth {
    /// Boot id of the session: 16 hex digits, as the agent logs it.
    #[schema(example = "deadbeef00c0ffee")]
    pub boot_id: String,
    /// When the cloud received the birth.
    pub received_at: DateTime<Utc>,
    /// Birth time by the gateway's clock.
    pub birth_time: Option<DateTime<Utc>>,
    /// Agent version.
    #[schema(example = "0.1.0")]
    pub agent_version: String,
    /// Hash of the agent configuration.
    pub config_hash: String,
}

/// The gateway's store-and-forward buffer as reported in its newest batch header.
#[derive(Debug, Serialize, ToSchema)]
pub struct BufferStatus {
    /// Batches waiting to be sent or acknowledged.
    pub pending_batches: i64,
    /// Bytes waiting.
    pub pending_bytes: i64,
    /// Age of the oldest waiting batch, ms.
    pub oldest_age_ms: i64,
    /// Samples dropped by the buffer limits (total since the buffer was created).
    pub dropped_samples: i64,
    /// Batches dropped by the buffer limits, a full disk or damage (total since the buffer
    /// was created).
    pub dropped_batches: i64,
    /// Epoch of the buffer that numbered the newest stored batch (16 hex digits; a new
    /// epoch means the gateway's buffer started over: lost or salvaged). Absent for agents
    /// that predate epochs.
    #[schema(example = "0123456789abcdef")]
    pub epoch: Option<String>,
    /// When the cloud received this status.
    pub reported_at: DateTime<Utc>,
}

/// A gateway and its status.
#[derive(Debug, Serialize, ToSchema)]
pub struct Gateway {
    /// Gateway id (as in its MQTT topics).
    #[schema(example = "gw-001")]
    pub id: String,
    /// Site the gateway is installed at.
    pub site: SiteRef,
    /// Online, offline, or unhealthy (connected but its batches are refused).
    pub status: GatewayStatus,
    /// The newest permanent refusal of its batches, if any.
    pub refusal: Option<Refusal>,
    /// When a batch of the gateway was last stored (or found stored).
    pub data_stored_at: Option<DateTime<Utc>>,
    /// Newest message received from the gateway.
    pub last_seen: Option<DateTime<Utc>>,
    /// Current session; absent until a birth was received.
    pub last_birth: Option<LastBirth>,
    /// Buffer status; absent until a batch carried one.
    pub buffer: Option<BufferStatus>,
    /// Gateway clock minus cloud receive time of the newest live batch, ms (positive:
    /// the gateway clock is ahead).
    pub clock_skew_ms: Option<i64>,
    /// Devices in the current birth catalog.
    pub device_count: i64,
}

/// A gateway with its devices.
#[derive(Debug, Serialize, ToSchema)]
pub struct GatewayDetail {
    /// The gateway and its status.
    #[serde(flatten)]
    pub gateway: Gateway,
    /// Its devices, by name.
    pub devices: Vec<Device>,
}

/// A page of gateways.
#[derive(Debug, Serialize, ToSchema)]
pub struct GatewayPage {
    /// Gateways ordered by id.
    pub items: Vec<Gateway>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

impl From<BirthRow> for LastBirth {
    fn from(b: BirthRow) -> LastBirth {
        LastBirth {
            boot_id: wire::HexId(b.boot_id).to_string(),
            received_at: b.received_at,
            birth_time: b.birth_time,
            agent_version: b.agent_version,
            config_hash: b.config_hash,
        }
    }
}

impl BufferStatus {
    fn of(b: BufferRow, epoch: Option<u64>) -> BufferStatus {
        BufferStatus {
            pending_batches: b.pending_batches,
            pending_bytes: b.pending_bytes,
            oldest_age_ms: b.oldest_age_ms,
            dropped_samples: b.dropped_samples,
            dropped_batches: b.dropped_batches,
            epoch: epoch.filter(|e| *e != 0).map(|e| format!("{e:016x}")),
            reported_at: b.reported_at,
        }
    }
}

impl From<GatewayRow> for Gateway {
    fn from(g: GatewayRow) -> Gateway {
        let refusing = g.refusing();
        Gateway {
            id: g.slug,
            site: SiteRef {
                id: g.site_id.0,
                name: g.site_name,
            },
            status: match (g.online, refusing) {
                (false, _) => GatewayStatus::Offline,
                (true, true) => GatewayStatus::Unhealthy,
                (true, false) => GatewayStatus::Online,
            },
            refusal: g.data_refused.map(|(at, reason)| Refusal { at, reason }),
            data_stored_at: g.data_stored_at,
            last_seen: g.last_seen,
            device_count: g.birth.as_ref().map_or(0, |b| b.device_count),
            last_birth: g.birth.map(LastBirth::from),
            buffer: g.buffer.map(|b| BufferStatus::of(b, g.buffer_epoch)),
            clock_skew_ms: g.clock_skew_ms,
        }
    }
}

/// List the gateways of a tenant with their status.
#[utoipa::path(
    get,
    path = "/api/v1/tenants/{tenant}/gateways",
    security(("bearer" = ["viewer"])),
    tag = "gateways",
    operation_id = "list_gateways",
    params(TenantScope, SlugPageQuery),
    responses(
        (status = 200, description = "A page of gateways", body = GatewayPage),
        (status = 400, description = "Invalid parameter", body = ErrorResponse),
        (status = 404, description = "Unknown tenant", body = ErrorResponse),
        (status = 503, description = "Database unavailable", body = ErrorResponse),
    )
)]
async fn list_gateways(
    State(state): State<ApiState>,
    scope: TenantScope,
    ApiQuery(query): ApiQuery<SlugPageQuery>,
) -> Result<Json<GatewayPage>, ApiError> {
    let limit = parse_limit(
        query.limit.as_deref(),
        DEFAULT_PAGE,
        state.options().max_page_size,
    )?;
    let after = parse_slug_cursor(query.cursor.as_deref())?;
    let mut tx = scope.begin(state.db()).await?;
    let rows = queries::list_gateways(&mut tx, scope.id, after, i64::from(limit) + 1).await?;
    tx.commit().await?;
    let (rows, next_cursor) = split_page(rows, limit, |g| g.slug.clone());
    Ok(Json(GatewayPage {
        items: rows.into_iter().map(Gateway::from).collect(),
        next_cursor,
    }))
}

/// One gateway: status and devices.
#[utoipa::path(
    get,
    path = "/api/v1/tenants/{tenant}/gateways/{gateway}",
    security(("bearer" = ["viewer"])),
    tag = "gateways",
    operation_id = "get_gateway",
    params(TenantScope, GatewayParam),
    responses(
        (status = 200, description = "The gateway", body = GatewayDetail),
        (status = 400, description = "Invalid parameter", body = ErrorResponse),
        (status = 404, description = "Unknown tenant or gateway", body = ErrorResponse),
        (status = 503, description = "Database unavailable", body = ErrorResponse),
    )
)]
async fn get_gateway(
    State(state): State<ApiState>,
    scope: TenantScope,
    GatewayParam(slug): GatewayParam,
) -> Result<Json<GatewayDetail>, ApiError> {
    let mut tx = scope.begin(state.db()).await?;
    let row = queries::gateway(&mut tx, scope.id, &slug)
        .await?
        .ok_or_else(|| gateway_not_found(&scope, &slug))?;
    let devices = queries::gateway_devices(&mut tx, scope.id, row.id).await?;
    tx.commit().await?;
    Ok(Json(GatewayDetail {
        gateway: Gateway::from(row),
        devices: devices.into_iter().map(Device::from).collect(),
    }))
}
