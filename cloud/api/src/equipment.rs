//! The equipment inventory behind emissions: each emission source's component counts
//! (valves, connectors, flanges, … by service) and pneumatic controllers (by bleed type).
//!
//! ```text
//! GET /api/v1/tenants/{tenant}/emission-sources
//! PUT /api/v1/tenants/{tenant}/emission-sources/{source}/counts
//! ```
//!
//! Equipment-leak and pneumatic emissions (40 CFR 98 Subpart W population methods) are
//! counts × factors, so these counts are the activity data; a change is audited with the
//! counts before and after, and applies to days derived from then on.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use store::emissions::{
    self as sql, BLEEDS, EQUIPMENT, EmissionSource, KINDS, SERVICES, by_name, name_of,
};

use crate::access::Caller;
use crate::extract::{JsonBody, SourceParam};
use crate::{ApiError, ApiState, ErrorResponse, TenantScope};

pub(crate) fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(list_sources))
        .routes(routes!(set_counts))
}

/// A count of components of one kind in one service.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ComponentCount {
    /// `valve`, `connector`, `flange`, `open_ended_line`, `pressure_relief_valve`, `pump`,
    /// `other`, `wellhead`, `separator`, `meters_piping`, `compressor`, `dehydrator`,
    /// `heater` or `storage_vessel`.
    #[schema(example = "valve")]
    pub equipment: String,
    /// `gas`, `light_crude`, `heavy_crude` or `crude`.
    #[schema(example = "gas")]
    pub service: String,
    /// How many.
    #[schema(example = 24)]
    pub count: u32,
}

/// A count of pneumatic devices of one bleed type.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PneumaticCount {
    /// `continuous_high`, `intermittent`, `continuous_low` or `pump`.
    #[schema(example = "intermittent")]
    pub bleed: String,
    /// How many.
    #[schema(example = 3)]
    pub count: u32,
}

/// An emission source with its equipment counts.
#[derive(Debug, Serialize, ToSchema)]
pub struct SourceDto {
    /// Source id.
    pub id: i64,
    /// Name (unique per site).
    pub name: String,
    /// `combustion`, `flare`, `vent`, `equipment_leaks` or `pneumatics`.
    pub kind: String,
    /// Site id.
    pub site_id: i64,
    /// Well id, for well-level sources.
    pub well_id: Option<i64>,
    /// Component counts.
    pub components: Vec<ComponentCount>,
    /// Pneumatic device counts.
    pub pneumatics: Vec<PneumaticCount>,
}

impl From<&EmissionSource> for SourceDto {
    fn from(s: &EmissionSource) -> SourceDto {
        SourceDto {
            id: s.id,
            name: s.name.clone(),
            kind: name_of(KINDS, s.kind).to_owned(),
            site_id: s.site_id.0,
            well_id: s.well_id.map(|w| w.0),
            components: s
                .components
                .iter()
                .map(|(e, svc, n)| ComponentCount {
                    equipment: name_of(EQUIPMENT, *e).to_owned(),
                    service: name_of(SERVICES, *svc).to_owned(),
                    count: *n,
                })
                .collect(),
            pneumatics: s
                .pneumatics
                .iter()
                .map(|(b, n)| PneumaticCount {
                    bleed: name_of(BLEEDS, *b).to_owned(),
                    count: *n,
                })
                .collect(),
        }
    }
}

/// The tenant's emission sources.
#[derive(Debug, Serialize, ToSchema)]
pub struct SourceList {
    /// Sources by id.
    pub items: Vec<SourceDto>,
}

#[utoipa::path(
    get,
    path = "/api/v1/tenants/{tenant}/emission-sources",
    security(("bearer" = ["viewer"])),
    tag = "emissions",
    operation_id = "list_emission_sources",
    params(TenantScope),
    responses(
        (status = 200, description = "Emission sources with their equipment counts", body = SourceList),
        (status = 400, description = "Invalid tenant id", body = ErrorResponse),
    )
)]
async fn list_sources(
    State(state): State<ApiState>,
    scope: TenantScope,
) -> Result<Json<SourceList>, ApiError> {
    let mut tx = scope.begin(state.db()).await?;
    let sources = sql::tenant_sources(&mut tx, scope.id).await?;
    tx.commit().await?;
    Ok(Json(SourceList {
        items: sources.iter().map(SourceDto::from).collect(),
    }))
}

/// The new counts of a source (replacing all its counts).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CountsBody {
    /// Component counts (one entry per equipment and service).
    #[serde(default)]
    pub components: Vec<ComponentCount>,
    /// Pneumatic device counts (one entry per bleed type).
    #[serde(default)]
    pub pneumatics: Vec<PneumaticCount>,
}

fn unknown(field: &str, value: &str) -> ApiError {
    ApiError::BadRequest(format!("invalid JSON body: unknown {field} {value:?}"))
}

#[utoipa::path(
    put,
    path = "/api/v1/tenants/{tenant}/emission-sources/{source}/counts",
    security(("bearer" = ["tenant_admin"])),
    tag = "emissions",
    operation_id = "set_emission_source_counts",
    params(TenantScope, SourceParam),
    request_body(content = CountsBody, content_type = "application/json"),
    responses(
        (status = 200, description = "The source with its new counts", body = SourceDto),
        (status = 400, description = "Unknown equipment, service or bleed type, or one listed twice", body = ErrorResponse),
        (status = 404, description = "Unknown source", body = ErrorResponse),
    )
)]
async fn set_counts(
    State(state): State<ApiState>,
    scope: TenantScope,
    caller: Caller,
    SourceParam(source): SourceParam,
    JsonBody(body): JsonBody<CountsBody>,
) -> Result<Json<SourceDto>, ApiError> {
    let mut components = Vec::new();
    for c in &body.components {
        let e =
            by_name(EQUIPMENT, &c.equipment).ok_or_else(|| unknown("equipment", &c.equipment))?;
        let s = by_name(SERVICES, &c.service).ok_or_else(|| unknown("service", &c.service))?;
        if components.iter().any(|(e2, s2, _)| *e2 == e && *s2 == s) {
            return Err(ApiError::BadRequest(format!(
                "invalid JSON body: {} in {} service is listed twice",
                c.equipment, c.service
            )));
        }
        components.push((e, s, c.count));
    }
    let mut pneumatics = Vec::new();
    for p in &body.pneumatics {
        let b = by_name(BLEEDS, &p.bleed).ok_or_else(|| unknown("bleed type", &p.bleed))?;
        if pneumatics.iter().any(|(b2, _)| *b2 == b) {
            return Err(ApiError::BadRequest(format!(
                "invalid JSON body: bleed type {} is listed twice",
                p.bleed
            )));
        }
        pneumatics.push((b, p.count));
    }
    let mut tx = scope.begin(state.db()).await?;
    let (before, after) =
        sql::set_source_counts(&mut tx, scope.id, source, &components, &pneumatics)
            .await?
            .ok_or_else(|| {
                ApiError::NotFound(format!(
                    "emission source {source} of tenant `{}`",
                    scope.slug
                ))
            })?;
    let (before, after) = (SourceDto::from(&before), SourceDto::from(&after));
    let counts = |s: &SourceDto| serde_json::json!({ "components": s.components, "pneumatics": s.pneumatics });
    let target = format!("emission_source:{source}");
    store::audit::record(
        &mut tx,
        &caller.audit(
            Some(scope.id),
            "emission_source.set_counts",
            &target,
            Some(counts(&before)),
            Some(counts(&after)),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(after))
}
