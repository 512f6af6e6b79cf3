//! Devices of a tenant's gateways: `POST /api/v1/tenants/{tenant}/gateways/{gateway}/devices`
//! registers one ahead of the gateway's birth (the birth that names it adopts it),
//! `GET|PUT|DELETE …/devices/{device}` reads one with its series, links it to a well (or
//! unlinks it) and deletes one that has no history. The list of a gateway's devices is in
//! its detail (`GET …/gateways/{gateway}`). Reading is for every role, linking for
//! operators, registering and deleting for tenant admins. Every change is audited.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use firmware_profiles::vocabulary;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use store::devices::{self as queries, DeviceDetail as DeviceDetailRow};
use store::{DeviceId, WellId};

use crate::access::Caller;
use crate::extract::{
    Device, DeviceParam, GatewayParam, JsonBody, check_device, gateway_not_found,
};
use crate::{ApiError, ApiState, ErrorResponse, TenantScope};

pub(crate) fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(create_device))
        .routes(routes!(get_device, update_device, delete_device))
}

/// One series (metric) of a device.
#[derive(Debug, Serialize, ToSchema)]
pub struct SeriesDto {
    /// Series id.
    pub id: i64,
    /// Canonical metric name, `custom.<name>` for a custom metric of the device's profile,
    /// or `vendor:<tag>` for a tag an older agent sent without a metric.
    #[schema(example = "tubing_pressure_psi")]
    pub metric: String,
    /// `canonical`, `custom` or `vendor`.
    #[schema(example = "canonical")]
    pub namespace: String,
    /// How the metric aggregates: `gauge`, `counter` or `state` (the vocabulary's for a
    /// canonical metric, the profile's for a custom one); absent when unknown.
    #[schema(example = "gauge")]
    pub kind: Option<String>,
    /// Engineering unit.
    #[schema(example = "psi")]
    pub unit: String,
    /// Vendor tag in the device's firmware profile.
    #[schema(example = "TUBING_PRESS")]
    pub tag: String,
}

/// A device with its gateway and series.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeviceDetail {
    /// The device.
    #[serde(flatten)]
    pub device: Device,
    /// Its gateway (id as in MQTT topics).
    #[schema(example = "gw-001")]
    pub gateway: String,
    /// Its series by metric (empty until its gateway's birth names it).
    pub series: Vec<SeriesDto>,
}

impl From<DeviceDetailRow> for DeviceDetail {
    fn from(d: DeviceDetailRow) -> DeviceDetail {
        DeviceDetail {
            device: d.device.into(),
            gateway: d.gateway,
            series: d
                .series
                .into_iter()
                .map(|s| SeriesDto {
                    id: s.id.0,
                    kind: s.kind.or_else(|| {
                        vocabulary::lookup(&s.metric).map(|d| d.kind.as_str().to_owned())
                    }),
                    metric: s.metric,
                    namespace: s.namespace,
                    unit: s.unit,
                    tag: s.tag,
                })
                .collect(),
        }
    }
}

fn device_json(d: &DeviceDetailRow) -> serde_json::Value {
    serde_json::json!({ "gateway": d.gateway, "name": d.device.name,
                        "profile": d.device.profile, "well_id": d.device.well_id.map(|w| w.0) })
}

/// A device to register ahead of its gateway's birth.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDeviceBody {
    /// Name as in the agent's config (1-64 of letters, digits, '.', '_' and '-'; unique on
    /// the gateway).
    #[schema(example = "well-17a-pump")]
    pub name: String,
    /// Built-in firmware profile id.
    #[schema(example = "rod-pump-controller")]
    pub profile: String,
    /// Well the device measures.
    pub well_id: Option<i64>,
}

/// The well a device measures (a PUT replaces it; `null` unlinks).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceWellBody {
    /// Well id, or `null`.
    pub well_id: Option<i64>,
}

fn well_id(id: Option<i64>) -> Result<Option<WellId>, ApiError> {
    match id {
        Some(id) if id < 1 => Err(ApiError::BadRequest(format!(
            "invalid JSON body: well_id {id} must be a positive integer or null"
        ))),
        other => Ok(other.map(WellId)),
    }
}

fn not_found(scope: &TenantScope, device: DeviceId) -> ApiError {
    ApiError::NotFound(format!("device {device} of tenant `{}`", scope.slug))
}

#[utoipa::path(
    post,
    path = "/api/v1/tenants/{tenant}/gateways/{gateway}/devices",
    security(("bearer" = ["tenant_admin"])),
    tag = "gateways",
    operation_id = "create_device",
    params(TenantScope, GatewayParam),
    request_body(content = NewDeviceBody, content_type = "application/json"),
    responses(
        (status = 201, description = "Registered; the gateway's birth that names it adopts it", body = DeviceDetail),
        (status = 400, description = "Invalid name, profile or well (the message names it)", body = ErrorResponse),
        (status = 404, description = "Unknown gateway", body = ErrorResponse),
        (status = 409, description = "The gateway already has a device of that name", body = ErrorResponse),
    )
)]
async fn create_device(
    State(state): State<ApiState>,
    scope: TenantScope,
    caller: Caller,
    GatewayParam(gateway): GatewayParam,
    JsonBody(body): JsonBody<NewDeviceBody>,
) -> Result<(StatusCode, Json<DeviceDetail>), ApiError> {
    check_device("", &body.name, &body.profile)?;
    let well = well_id(body.well_id)?;
    let mut tx = scope.begin(state.db()).await?;
    let gw = store::gateways::gateway(&mut tx, scope.id, &gateway)
        .await?
        .ok_or_else(|| gateway_not_found(&scope, &gateway))?;
    let row =
        queries::create_device(&mut tx, scope.id, gw.id, &body.name, &body.profile, well).await?;
    let target = format!("device:{}", row.device.id);
    store::audit::record(
        &mut tx,
        &caller.audit(
            Some(scope.id),
            "device.create",
            &target,
            None,
            Some(device_json(&row)),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(row.into())))
}

#[utoipa::path(
    get,
    path = "/api/v1/tenants/{tenant}/devices/{device}",
    security(("bearer" = ["viewer"])),
    tag = "gateways",
    operation_id = "get_device",
    params(TenantScope, DeviceParam),
    responses(
        (status = 200, description = "The device with its series", body = DeviceDetail),
        (status = 400, description = "Invalid parameter", body = ErrorResponse),
        (status = 404, description = "Unknown device", body = ErrorResponse),
    )
)]
async fn get_device(
    State(state): State<ApiState>,
    scope: TenantScope,
    DeviceParam(device): DeviceParam,
) -> Result<Json<DeviceDetail>, ApiError> {
    let mut tx = scope.begin(state.db()).await?;
    let row = queries::device(&mut tx, scope.id, device).await?;
    tx.commit().await?;
    row.map(|d| Json(d.into()))
        .ok_or_else(|| not_found(&scope, device))
}

#[utoipa::path(
    put,
    path = "/api/v1/tenants/{tenant}/devices/{device}",
    security(("bearer" = ["operator"])),
    tag = "gateways",
    operation_id = "update_device",
    params(TenantScope, DeviceParam),
    request_body(content = DeviceWellBody, content_type = "application/json"),
    responses(
        (status = 200, description = "Linked (or unlinked); births no longer change the link", body = DeviceDetail),
        (status = 400, description = "Invalid or unknown well", body = ErrorResponse),
        (status = 404, description = "Unknown device", body = ErrorResponse),
    )
)]
async fn update_device(
    State(state): State<ApiState>,
    scope: TenantScope,
    caller: Caller,
    DeviceParam(device): DeviceParam,
    JsonBody(body): JsonBody<DeviceWellBody>,
) -> Result<Json<DeviceDetail>, ApiError> {
    let well = well_id(body.well_id)?;
    let mut tx = scope.begin(state.db()).await?;
    let (before, after) = queries::set_device_well(&mut tx, scope.id, device, well)
        .await?
        .ok_or_else(|| not_found(&scope, device))?;
    let target = format!("device:{device}");
    store::audit::record(
        &mut tx,
        &caller.audit(
            Some(scope.id),
            "device.update",
            &target,
            Some(device_json(&before)),
            Some(device_json(&after)),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(after.into()))
}

#[utoipa::path(
    delete,
    path = "/api/v1/tenants/{tenant}/devices/{device}",
    security(("bearer" = ["tenant_admin"])),
    tag = "gateways",
    operation_id = "delete_device",
    params(TenantScope, DeviceParam),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "Invalid parameter", body = ErrorResponse),
        (status = 404, description = "Unknown device", body = ErrorResponse),
        (status = 409, description = "The device has series with history", body = ErrorResponse),
    )
)]
async fn delete_device(
    State(state): State<ApiState>,
    scope: TenantScope,
    caller: Caller,
    DeviceParam(device): DeviceParam,
) -> Result<StatusCode, ApiError> {
    let mut tx = scope.begin(state.db()).await?;
    let current = queries::device(&mut tx, scope.id, device)
        .await?
        .ok_or_else(|| not_found(&scope, device))?;
    if current.device.series_count > 0 {
        return Err(ApiError::Conflict(format!(
            "device {device} has {} series with history: remove it from its gateway's agent \
             config instead (it stays for its history)",
            current.device.series_count
        )));
    }
    let before = queries::delete_device(&mut tx, scope.id, device)
        .await?
        .ok_or_else(|| not_found(&scope, device))?;
    let target = format!("device:{device}");
    store::audit::record(
        &mut tx,
        &caller.audit(
            Some(scope.id),
            "device.delete",
            &target,
            Some(device_json(&before)),
            None,
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
