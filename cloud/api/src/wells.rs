//! The well registry and the metrics each well reports.
//!
//! A well's metrics are the series of the devices linked to it, grouped by metric: one
//! metric can have several series (two devices measuring the same thing), which the
//! telemetry endpoint returns side by side. Metrics from the canonical vocabulary carry its
//! kind and description; custom metrics (`custom.<name>`, declared by a device's profile)
//! carry the kind and unit their birth declared, and are queried by that name; a tag an
//! older agent sent without a metric appears as `vendor:<tag>` without either (and cannot
//! be queried by the telemetry endpoint).

use analytics::api_number::ApiNumber;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use firmware_profiles::vocabulary::{self, MetricKind};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{
    DEFAULT_PAGE, JsonBody, LocationDto, PageQuery, SiteRef, parse_id_cursor, parse_limit,
    split_page, well_not_found,
};
use super::{ApiError, ApiQuery, ApiState, ErrorResponse, TenantScope, WellParam};
use crate::access::Caller;
use store::wells::{self as queries, SeriesRow, WellFields, WellRow};
use store::{SiteId, WellId};

pub(crate) fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(list_wells, create_well))
        .routes(routes!(get_well, update_well, delete_well))
        .routes(routes!(well_metrics))
}

/// A well of the registry.
#[derive(Debug, Serialize, ToSchema)]
pub struct Well {
    /// Well id (use it in `/wells/{well}/…`).
    pub id: i64,
    /// API (American Petroleum Institute) well number.
    #[schema(example = "42-329-12345-00-00")]
    pub api_number: String,
    /// Display name.
    #[schema(example = "Smith 1H")]
    pub name: String,
    /// Lease name.
    pub lease: String,
    /// Field name.
    pub field: String,
    /// County.
    pub county: String,
    /// State (postal code).
    #[schema(example = "TX")]
    pub state: String,
    /// Site (pad) of the well.
    pub site: SiteRef,
    /// Devices linked to the well.
    pub device_count: i64,
    /// `drilling`, `completed`, `producing`, `injecting`, `shut_in`,
    /// `temporarily_abandoned` or `plugged_abandoned`.
    #[schema(example = "producing")]
    pub status: String,
    /// Surface location, if known.
    pub location: Option<LocationDto>,
}

/// A page of wells.
#[derive(Debug, Serialize, ToSchema)]
pub struct WellPage {
    /// Wells ordered by id.
    pub items: Vec<Well>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// How a metric aggregates.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MetricKindDto {
    /// A level or rate sampled at a point in time.
    Gauge,
    /// A monotonic running total.
    Counter,
    /// A code or a boolean (0/1).
    State,
}

impl From<MetricKind> for MetricKindDto {
    fn from(kind: MetricKind) -> MetricKindDto {
        match kind {
            MetricKind::Gauge => MetricKindDto::Gauge,
            MetricKind::Counter => MetricKindDto::Counter,
            MetricKind::State => MetricKindDto::State,
        }
    }
}

/// One series of a metric.
#[derive(Debug, Serialize, ToSchema)]
pub struct SeriesInfo {
    /// Series id.
    pub series_id: i64,
    /// Device name.
    #[schema(example = "rpc-1")]
    pub device: String,
    /// Gateway id.
    #[schema(example = "gw-001")]
    pub gateway: String,
    /// Vendor tag name in the device's firmware profile.
    pub tag: String,
    /// Unit the device reports.
    #[schema(example = "psi")]
    pub unit: String,
}

/// Which names a metric belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MetricNamespace {
    /// The canonical vocabulary (what analytics read).
    Canonical,
    /// `custom.<name>`: declared by a device's profile, with its own unit and kind.
    Custom,
    /// `vendor:<tag>`: a tag an older agent sent without a metric.
    Vendor,
}

impl MetricNamespace {
    fn of(metric: &str) -> MetricNamespace {
        if metric.starts_with(vocabulary::CUSTOM_NAMESPACE) {
            MetricNamespace::Custom
        } else if metric.starts_with("vendor:") {
            MetricNamespace::Vendor
        } else {
            MetricNamespace::Canonical
        }
    }
}

/// A metric a well reports.
#[derive(Debug, Serialize, ToSchema)]
pub struct MetricInfo {
    /// Canonical metric name, `custom.<name>` for a custom metric, or `vendor:<tag>` for a
    /// tag without a metric.
    #[schema(example = "tubing_pressure_psi")]
    pub metric: String,
    /// Which names the metric belongs to.
    pub namespace: MetricNamespace,
    /// Engineering unit.
    #[schema(example = "psi")]
    pub unit: String,
    /// How the metric aggregates (canonical and custom metrics).
    pub kind: Option<MetricKindDto>,
    /// What the metric means (canonical metrics only).
    pub description: Option<String>,
    /// Series carrying it (one per device).
    pub series: Vec<SeriesInfo>,
}

/// The metrics of a well.
#[derive(Debug, Serialize, ToSchema)]
pub struct WellMetrics {
    /// Well id.
    pub well_id: i64,
    /// Metrics ordered by name.
    pub metrics: Vec<MetricInfo>,
}

impl From<WellRow> for Well {
    fn from(w: WellRow) -> Well {
        Well {
            id: w.id.0,
            api_number: w.api_number,
            name: w.name,
            lease: w.lease,
            field: w.field,
            county: w.county,
            state: w.state,
            site: SiteRef {
                id: w.site_id.0,
                name: w.site_name,
            },
            device_count: w.device_count,
            status: w.status,
            location: w.location.map(LocationDto::from),
        }
    }
}

/// A well to create, or the new fields of one (a PUT replaces them all).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WellBody {
    /// Site id (`id` in the site list) the well is on.
    #[schema(example = 1)]
    pub site_id: i64,
    /// API well number: 10, 12 or 14 digits, dashes optional (stored as
    /// `SS-CCC-UUUUU[-TT[-EE]]`); state and county codes are checked.
    #[schema(example = "42-329-12345-00-00")]
    pub api_number: String,
    /// Display name.
    #[schema(example = "Smith 1H")]
    pub name: String,
    /// Lease name.
    #[serde(default)]
    pub lease: String,
    /// Field name.
    #[serde(default)]
    pub field: String,
    /// County.
    #[serde(default)]
    pub county: String,
    /// State (two-letter postal code).
    #[serde(default)]
    #[schema(example = "TX")]
    pub state: String,
    /// Status (default `producing`).
    #[schema(example = "producing")]
    pub status: Option<String>,
    /// Surface location.
    pub location: Option<LocationDto>,
}

impl WellBody {
    fn fields(&self) -> Result<(String, String), ApiError> {
        let api_number = ApiNumber::parse(&self.api_number)
            .map_err(|e| ApiError::BadRequest(format!("invalid api_number: {e}")))?
            .canonical();
        let status = self
            .status
            .clone()
            .unwrap_or_else(|| "producing".to_owned());
        Ok((api_number, status))
    }
}

fn well_json(w: &WellRow) -> serde_json::Value {
    serde_json::json!({
        "api_number": w.api_number, "name": w.name, "site_id": w.site_id.0,
        "lease": w.lease, "field": w.field, "county": w.county, "state": w.state,
        "status": w.status, "location": w.location,
    })
}

/// Registers a well.
#[utoipa::path(
    post,
    path = "/api/v1/tenants/{tenant}/wells",
    security(("bearer" = ["tenant_admin"])),
    tag = "wells",
    operation_id = "create_well",
    params(TenantScope),
    request_body(content = WellBody, content_type = "application/json"),
    responses(
        (status = 201, description = "Registered", body = Well),
        (status = 400, description = "Invalid field (the message names it), e.g. an API number whose state code is no state", body = ErrorResponse),
        (status = 403, description = "`quota_exceeded`: the plan's `wells` quota is used up (nothing stored changes)", body = ErrorResponse),
        (status = 409, description = "The API number is registered already", body = ErrorResponse),
    )
)]
async fn create_well(
    State(state): State<ApiState>,
    scope: TenantScope,
    caller: Caller,
    JsonBody(body): JsonBody<WellBody>,
) -> Result<(StatusCode, Json<Well>), ApiError> {
    let (api_number, status) = body.fields()?;
    let mut tx = scope.begin(state.db()).await?;
    let limits = state.options().plan(&scope.plan);
    store::tenants::check_quota(&mut tx, scope.id, "wells", limits.max_wells)
        .await?
        .map_err(|q| ApiError::QuotaExceeded {
            quota: q.quota,
            plan: scope.plan.clone(),
            limit: q.limit,
            used: q.used,
        })?;
    let row = queries::create_well(
        &mut tx,
        scope.id,
        &WellFields {
            site: SiteId(body.site_id),
            api_number: &api_number,
            name: &body.name,
            lease: &body.lease,
            field: &body.field,
            county: &body.county,
            state: &body.state,
            status: &status,
            location: body.location.map(|l| (l.latitude, l.longitude)),
        },
    )
    .await?;
    let target = format!("well:{}", row.id);
    store::audit::record(
        &mut tx,
        &caller.audit(
            Some(scope.id),
            "well.create",
            &target,
            None,
            Some(well_json(&row)),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(row.into())))
}

/// Replaces a well's fields.
#[utoipa::path(
    put,
    path = "/api/v1/tenants/{tenant}/wells/{well}",
    security(("bearer" = ["tenant_admin"])),
    tag = "wells",
    operation_id = "update_well",
    params(TenantScope, WellParam),
    request_body(content = WellBody, content_type = "application/json"),
    responses(
        (status = 200, description = "Updated", body = Well),
        (status = 400, description = "Invalid field (the message names it)", body = ErrorResponse),
        (status = 404, description = "Unknown well", body = ErrorResponse),
        (status = 409, description = "The API number belongs to another well", body = ErrorResponse),
    )
)]
async fn update_well(
    State(state): State<ApiState>,
    scope: TenantScope,
    caller: Caller,
    WellParam(well): WellParam,
    JsonBody(body): JsonBody<WellBody>,
) -> Result<Json<Well>, ApiError> {
    let (api_number, status) = body.fields()?;
    let mut tx = scope.begin(state.db()).await?;
    let (before, after) = queries::update_well(
        &mut tx,
        scope.id,
        well,
        &WellFields {
            site: SiteId(body.site_id),
            api_number: &api_number,
            name: &body.name,
            lease: &body.lease,
            field: &body.field,
            county: &body.county,
            state: &body.state,
            status: &status,
            location: body.location.map(|l| (l.latitude, l.longitude)),
        },
    )
    .await?
    .ok_or_else(|| well_not_found(&scope, well))?;
    let target = format!("well:{well}");
    store::audit::record(
        &mut tx,
        &caller.audit(
            Some(scope.id),
            "well.update",
            &target,
            Some(well_json(&before)),
            Some(well_json(&after)),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(after.into()))
}

/// Deletes a well that has no devices and no production history (otherwise set its
/// status, e.g. `plugged_abandoned`).
#[utoipa::path(
    delete,
    path = "/api/v1/tenants/{tenant}/wells/{well}",
    security(("bearer" = ["tenant_admin"])),
    tag = "wells",
    operation_id = "delete_well",
    params(TenantScope, WellParam),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "Invalid parameter", body = ErrorResponse),
        (status = 404, description = "Unknown well", body = ErrorResponse),
        (status = 409, description = "The well has devices or history", body = ErrorResponse),
    )
)]
async fn delete_well(
    State(state): State<ApiState>,
    scope: TenantScope,
    caller: Caller,
    WellParam(well): WellParam,
) -> Result<StatusCode, ApiError> {
    let mut tx = scope.begin(state.db()).await?;
    let before = queries::delete_well(&mut tx, scope.id, well)
        .await?
        .ok_or_else(|| well_not_found(&scope, well))?;
    let target = format!("well:{well}");
    store::audit::record(
        &mut tx,
        &caller.audit(
            Some(scope.id),
            "well.delete",
            &target,
            Some(well_json(&before)),
            None,
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

impl From<SeriesRow> for SeriesInfo {
    fn from(s: SeriesRow) -> SeriesInfo {
        SeriesInfo {
            series_id: s.id.0,
            device: s.device,
            gateway: s.gateway,
            tag: s.tag,
            unit: s.unit,
        }
    }
}

/// Groups series (ordered by metric) into metrics.
fn group_metrics(series: Vec<SeriesRow>) -> Vec<MetricInfo> {
    let mut metrics: Vec<MetricInfo> = Vec::new();
    for s in series {
        if metrics.last().is_none_or(|m| m.metric != s.metric) {
            let def = vocabulary::lookup(&s.metric);
            let namespace = MetricNamespace::of(&s.metric);
            let declared = match namespace {
                MetricNamespace::Custom => s.kind.as_deref().and_then(MetricKind::parse),
                _ => None,
            };
            metrics.push(MetricInfo {
                metric: s.metric.clone(),
                namespace,
                unit: def.map_or_else(|| s.unit.clone(), |d| d.unit.to_owned()),
                kind: def.map(|d| d.kind).or(declared).map(Into::into),
                description: def.map(|d| d.description.to_owned()),
                series: Vec::new(),
            });
        }
        if let Some(metric) = metrics.last_mut() {
            metric.series.push(s.into());
        }
    }
    metrics
}

/// List the wells of a tenant.
#[utoipa::path(
    get,
    path = "/api/v1/tenants/{tenant}/wells",
    security(("bearer" = ["viewer"])),
    tag = "wells",
    operation_id = "list_wells",
    params(TenantScope, PageQuery),
    responses(
        (status = 200, description = "A page of wells", body = WellPage),
        (status = 400, description = "Invalid parameter", body = ErrorResponse),
        (status = 404, description = "Unknown tenant", body = ErrorResponse),
        (status = 503, description = "Database unavailable", body = ErrorResponse),
    )
)]
async fn list_wells(
    State(state): State<ApiState>,
    scope: TenantScope,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Json<WellPage>, ApiError> {
    let limit = parse_limit(
        query.limit.as_deref(),
        DEFAULT_PAGE,
        state.options().max_page_size,
    )?;
    let after = parse_id_cursor(query.cursor.as_deref())?.map(WellId);
    let mut tx = scope.begin(state.db()).await?;
    let rows = queries::list_wells(&mut tx, scope.id, after, i64::from(limit) + 1).await?;
    tx.commit().await?;
    let (rows, next_cursor) = split_page(rows, limit, |w| w.id.to_string());
    Ok(Json(WellPage {
        items: rows.into_iter().map(Well::from).collect(),
        next_cursor,
    }))
}

/// One well.
#[utoipa::path(
    get,
    path = "/api/v1/tenants/{tenant}/wells/{well}",
    security(("bearer" = ["viewer"])),
    tag = "wells",
    operation_id = "get_well",
    params(TenantScope, WellParam),
    responses(
        (status = 200, description = "The well", body = Well),
        (status = 400, description = "Invalid parameter", body = ErrorResponse),
        (status = 404, description = "Unknown tenant or well", body = ErrorResponse),
        (status = 503, description = "Database unavailable", body = ErrorResponse),
    )
)]
async fn get_well(
    State(state): State<ApiState>,
    scope: TenantScope,
    WellParam(well): WellParam,
) -> Result<Json<Well>, ApiError> {
    let mut tx = scope.begin(state.db()).await?;
    let row = queries::well(&mut tx, scope.id, well).await?;
    tx.commit().await?;
    row.map(|w| Json(w.into()))
        .ok_or_else(|| well_not_found(&scope, well))
}

/// The metrics a well reports, with units and series ids.
#[utoipa::path(
    get,
    path = "/api/v1/tenants/{tenant}/wells/{well}/metrics",
    security(("bearer" = ["viewer"])),
    tag = "wells",
    operation_id = "well_metrics",
    params(TenantScope, WellParam),
    responses(
        (status = 200, description = "Metrics of the well", body = WellMetrics),
        (status = 400, description = "Invalid parameter", body = ErrorResponse),
        (status = 404, description = "Unknown tenant or well", body = ErrorResponse),
        (status = 503, description = "Database unavailable", body = ErrorResponse),
    )
)]
async fn well_metrics(
    State(state): State<ApiState>,
    scope: TenantScope,
    WellParam(well): WellParam,
) -> Result<Json<WellMetrics>, ApiError> {
    let mut tx = scope.begin(state.db()).await?;
    let series = queries::well_series(&mut tx, scope.id, well, None).await?;
    tx.commit().await?;
    let series = series.ok_or_else(|| well_not_found(&scope, well))?;
    Ok(Json(WellMetrics {
        well_id: well.0,
        metrics: group_metrics(series),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use store::SeriesId;

    fn row(id: i64, metric: &str, device: &str) -> SeriesRow {
        SeriesRow {
            id: SeriesId(id),
            metric: metric.to_owned(),
            unit: "u".to_owned(),
            kind: metric.starts_with("custom.").then(|| "counter".to_owned()),
            tag: format!("t{id}"),
            device: device.to_owned(),
            gateway: "gw".to_owned(),
        }
    }

    #[test]
    fn series_are_grouped_by_metric_with_vocabulary_details() {
        let metrics = group_metrics(vec![
            row(1, "casing_pressure_psi", "a"),
            row(2, "tubing_pressure_psi", "a"),
            row(3, "tubing_pressure_psi", "b"),
            row(4, "vendor:fw_rev", "a"),
            row(5, "custom.counter_00", "a"),
        ]);
        let names: Vec<_> = metrics.iter().map(|m| m.metric.as_str()).collect();
        assert_eq!(
            names,
            [
                "casing_pressure_psi",
                "tubing_pressure_psi",
                "vendor:fw_rev",
                "custom.counter_00"
            ]
        );
        assert_eq!(metrics[3].namespace, MetricNamespace::Custom);
        assert!(matches!(metrics[3].kind, Some(MetricKindDto::Counter)));
        assert_eq!(
            (metrics[3].unit.as_str(), metrics[3].description.as_ref()),
            ("u", None)
        );
        assert_eq!(metrics[2].namespace, MetricNamespace::Vendor);
        assert_eq!(metrics[0].namespace, MetricNamespace::Canonical);
        assert_eq!(metrics[1].series.len(), 2);
        assert_eq!(metrics[1].unit, "psi");
        assert!(matches!(metrics[1].kind, Some(MetricKindDto::Gauge)));
        assert!(metrics[2].kind.is_none() && metrics[2].description.is_none());
        assert_eq!(metrics[2].unit, "u");
    }
}
