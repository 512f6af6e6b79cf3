//! Maintenance and failure records of a well:
//! `GET|POST /api/v1/tenants/{tenant}/wells/{well}/interventions`,
//! `PUT|DELETE …/interventions/{intervention}`. Everyone reads them; operators record them
//! (failures are what failure prediction learns from). Every change is audited.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use store::interventions::{self as queries, Intervention, InterventionFields};

use crate::access::Caller;
use crate::extract::{
    DEFAULT_PAGE, InterventionParam, JsonBody, PageQuery, parse_id_cursor, parse_limit,
    require_well, split_page,
};
use crate::{ApiError, ApiQuery, ApiState, ErrorResponse, TenantScope, WellParam};

pub(crate) fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(list_interventions, create_intervention))
        .routes(routes!(update_intervention, delete_intervention))
}

/// A maintenance or failure record.
#[derive(Debug, Serialize, ToSchema)]
pub struct InterventionDto {
    /// Record id.
    pub id: i64,
    /// Well id.
    pub well_id: i64,
    /// `failure`, `workover`, `maintenance` or `inspection`.
    #[schema(example = "failure")]
    pub kind: String,
    /// `rod_pump`, `rods`, `tubing`, `esp`, `plunger`, `gas_lift`, `wellhead`,
    /// `separator`, `tank`, `compressor`, `meter`, `controller` or `other`.
    #[schema(example = "rods")]
    pub equipment: String,
    /// For failures, how it failed (e.g. `rod_part`); else empty.
    #[schema(example = "rod_part")]
    pub failure_mode: String,
    /// Start (for a failure: when it failed).
    pub started_at: DateTime<Utc>,
    /// Back in service, if over.
    pub ended_at: Option<DateTime<Utc>>,
    /// Cost in US dollars.
    pub cost_usd: Option<f64>,
    /// Notes.
    pub notes: String,
    /// Who recorded it.
    pub created_by: String,
    /// When it was recorded.
    pub created_at: DateTime<Utc>,
}

impl From<Intervention> for InterventionDto {
    fn from(i: Intervention) -> InterventionDto {
        InterventionDto {
            id: i.id,
            well_id: i.well_id.0,
            kind: i.kind,
            equipment: i.equipment,
            failure_mode: i.failure_mode,
            started_at: i.started_at,
            ended_at: i.ended_at,
            cost_usd: i.cost_usd,
            notes: i.notes,
            created_by: i.created_by,
            created_at: i.created_at,
        }
    }
}

fn record_json(i: &Intervention) -> serde_json::Value {
    serde_json::json!({
        "kind": i.kind, "equipment": i.equipment, "failure_mode": i.failure_mode,
        "started_at": i.started_at, "ended_at": i.ended_at, "cost_usd": i.cost_usd,
        "notes": i.notes,
    })
}

/// A page of records, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct InterventionPage {
    /// Records, newest start first.
    pub items: Vec<InterventionDto>,
    /// Pass as `cursor` for older records; absent on the last page.
    pub next_cursor: Option<String>,
}

/// A record to create, or the new fields of one (a PUT replaces them all).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InterventionBody {
    /// `failure`, `workover`, `maintenance` or `inspection`.
    #[schema(example = "failure")]
    pub kind: String,
    /// The equipment concerned (see [`InterventionDto::equipment`]).
    #[schema(example = "rods")]
    pub equipment: String,
    /// For failures: how it failed, `[a-z0-9_]`, at most 40 (e.g. `rod_part`).
    #[serde(default)]
    #[schema(example = "rod_part")]
    pub failure_mode: String,
    /// Start (RFC 3339).
    pub started_at: DateTime<Utc>,
    /// End, if over.
    pub ended_at: Option<DateTime<Utc>>,
    /// Cost in US dollars.
    pub cost_usd: Option<f64>,
    /// Notes (at most 4,000 characters).
    #[serde(default)]
    pub notes: String,
}

impl InterventionBody {
    fn fields(&self) -> InterventionFields<'_> {
        InterventionFields {
            kind: &self.kind,
            equipment: &self.equipment,
            failure_mode: &self.failure_mode,
            started_at: self.started_at,
            ended_at: self.ended_at,
            cost_usd: self.cost_usd,
            notes: &self.notes,
        }
    }
}

fn not_found(scope: &TenantScope, id: i64) -> ApiError {
    ApiError::NotFound(format!(
        "record {id} of this well in tenant `{}`",
        scope.slug
    ))
}

#[utoipa::path(
    get,
    path = "/api/v1/tenants/{tenant}/wells/{well}/interventions",
    security(("bearer" = ["viewer"])),
    tag = "wells",
    operation_id = "list_interventions",
    params(TenantScope, WellParam, PageQuery),
    responses(
        (status = 200, description = "The well's maintenance and failure records", body = InterventionPage),
        (status = 400, description = "Invalid parameter", body = ErrorResponse),
        (status = 404, description = "Unknown well", body = ErrorResponse),
    )
)]
async fn list_interventions(
    State(state): State<ApiState>,
    scope: TenantScope,
    WellParam(well): WellParam,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Json<InterventionPage>, ApiError> {
    let limit = parse_limit(
        query.limit.as_deref(),
        DEFAULT_PAGE,
        state.options().max_page_size,
    )?;
    let before = parse_id_cursor(query.cursor.as_deref())?;
    let mut tx = scope.begin(state.db()).await?;
    require_well(&mut tx, &scope, well).await?;
    let rows = queries::list(&mut tx, scope.id, well, before, i64::from(limit) + 1).await?;
    tx.commit().await?;
    let (rows, next_cursor) = split_page(rows, limit, |r| r.id.to_string());
    Ok(Json(InterventionPage {
        items: rows.into_iter().map(InterventionDto::from).collect(),
        next_cursor,
    }))
}

#[utoipa::path(
    post,
    path = "/api/v1/tenants/{tenant}/wells/{well}/interventions",
    security(("bearer" = ["operator"])),
    tag = "wells",
    operation_id = "create_intervention",
    params(TenantScope, WellParam),
    request_body(content = InterventionBody, content_type = "application/json"),
    responses(
        (status = 201, description = "Recorded", body = InterventionDto),
        (status = 400, description = "Invalid field (the message names it)", body = ErrorResponse),
        (status = 404, description = "Unknown well", body = ErrorResponse),
    )
)]
async fn create_intervention(
    State(state): State<ApiState>,
    scope: TenantScope,
    caller: Caller,
    WellParam(well): WellParam,
    JsonBody(body): JsonBody<InterventionBody>,
) -> Result<(StatusCode, Json<InterventionDto>), ApiError> {
    let mut tx = scope.begin(state.db()).await?;
    require_well(&mut tx, &scope, well).await?;
    let row = queries::create(
        &mut tx,
        scope.id,
        well,
        &body.fields(),
        &caller.principal.actor,
    )
    .await?;
    let target = format!("intervention:{}", row.id);
    store::audit::record(
        &mut tx,
        &caller.audit(
            Some(scope.id),
            "intervention.create",
            &target,
            None,
            Some(record_json(&row)),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(row.into())))
}

#[utoipa::path(
    put,
    path = "/api/v1/tenants/{tenant}/wells/{well}/interventions/{intervention}",
    security(("bearer" = ["operator"])),
    tag = "wells",
    operation_id = "update_intervention",
    params(TenantScope, WellParam, InterventionParam),
    request_body(content = InterventionBody, content_type = "application/json"),
    responses(
        (status = 200, description = "Updated", body = InterventionDto),
        (status = 400, description = "Invalid field (the message names it)", body = ErrorResponse),
        (status = 404, description = "Unknown well or record", body = ErrorResponse),
    )
)]
async fn update_intervention(
    State(state): State<ApiState>,
    scope: TenantScope,
    caller: Caller,
    WellParam(well): WellParam,
    InterventionParam(id): InterventionParam,
    JsonBody(body): JsonBody<InterventionBody>,
) -> Result<Json<InterventionDto>, ApiError> {
    let mut tx = scope.begin(state.db()).await?;
    let (before, after) = queries::update(&mut tx, scope.id, well, id, &body.fields())
        .await?
        .ok_or_else(|| not_found(&scope, id))?;
    let target = format!("intervention:{id}");
    store::audit::record(
        &mut tx,
        &caller.audit(
            Some(scope.id),
            "intervention.update",
            &target,
            Some(record_json(&before)),
            Some(record_json(&after)),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(after.into()))
}

#[utoipa::path(
    delete,
    path = "/api/v1/tenants/{tenant}/wells/{well}/interventions/{intervention}",
    security(("bearer" = ["operator"])),
    tag = "wells",
    operation_id = "delete_intervention",
    params(TenantScope, WellParam, InterventionParam),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "Invalid parameter", body = ErrorResponse),
        (status = 404, description = "Unknown well or record", body = ErrorResponse),
    )
)]
async fn delete_intervention(
    State(state): State<ApiState>,
    scope: TenantScope,
    caller: Caller,
    WellParam(well): WellParam,
    InterventionParam(id): InterventionParam,
) -> Result<StatusCode, ApiError> {
    let mut tx = scope.begin(state.db()).await?;
    let before = queries::delete(&mut tx, scope.id, well, id)
        .await?
        .ok_or_else(|| not_found(&scope, id))?;
    let target = format!("intervention:{id}");
    store::audit::record(
        &mut tx,
        &caller.audit(
            Some(scope.id),
            "intervention.delete",
            &target,
            Some(record_json(&before)),
            None,
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
