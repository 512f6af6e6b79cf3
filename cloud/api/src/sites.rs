//! Sites (pads, facilities) of a tenant: `GET|POST /api/v1/tenants/{tenant}/sites`,
//! `GET|PUT|DELETE …/sites/{site}`. Reading is for every role, changing for tenant admins;
//! a site with wells or gateways cannot be deleted (409). Every change is audited.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use store::SiteId;
use store::sites::{self as queries, SiteFields, SiteRow};

use crate::access::Caller;
use crate::extract::{
    DEFAULT_PAGE, JsonBody, LocationDto, PageQuery, SiteParam, parse_id_cursor, parse_limit,
    split_page,
};
use crate::{ApiError, ApiQuery, ApiState, ErrorResponse, TenantScope};

pub(crate) fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(list_sites, create_site))
        .routes(routes!(get_site, update_site, delete_site))
}

/// A site.
#[derive(Debug, Serialize, ToSchema)]
pub struct SiteDto {
    /// Site id.
    pub id: i64,
    /// Name (unique in the tenant).
    #[schema(example = "Pad 7")]
    pub name: String,
    /// Surface location.
    pub location: Option<LocationDto>,
    /// State (two-letter postal code), or empty.
    #[schema(example = "TX")]
    pub state: String,
    /// Operator number with the state's regulator, or empty.
    #[schema(example = "123456")]
    pub operator_number: String,
    /// Wells at the site.
    pub well_count: i64,
    /// Gateways installed at the site.
    pub gateway_count: i64,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

impl From<SiteRow> for SiteDto {
    fn from(s: SiteRow) -> SiteDto {
        SiteDto {
            id: s.id.0,
            name: s.name,
            location: s.location.map(LocationDto::from),
            state: s.state,
            operator_number: s.operator_number,
            well_count: s.well_count,
            gateway_count: s.gateway_count,
            created_at: s.created_at,
            updated_at: s.updated_at,
        }
    }
}

fn site_json(s: &SiteRow) -> serde_json::Value {
    serde_json::json!({ "name": s.name, "location": s.location, "state": s.state,
                        "operator_number": s.operator_number })
}

/// A page of sites.
#[derive(Debug, Serialize, ToSchema)]
pub struct SitePage {
    /// Sites by id.
    pub items: Vec<SiteDto>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// A site to create, or the new fields of one (a PUT replaces them all).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SiteBody {
    /// Name (1 to 200 characters, unique in the tenant).
    #[schema(example = "Pad 7")]
    pub name: String,
    /// Surface location.
    pub location: Option<LocationDto>,
    /// State (two-letter postal code).
    #[serde(default)]
    #[schema(example = "TX")]
    pub state: String,
    /// Operator number with the state's regulator.
    #[serde(default)]
    #[schema(example = "123456")]
    pub operator_number: String,
}

impl SiteBody {
    fn fields(&self) -> SiteFields<'_> {
        SiteFields {
            name: &self.name,
            location: self.location.map(|l| (l.latitude, l.longitude)),
            state: &self.state,
            operator_number: &self.operator_number,
        }
    }
}

fn not_found(scope: &TenantScope, site: SiteId) -> ApiError {
    ApiError::NotFound(format!("site {site} of tenant `{}`", scope.slug))
}

#[utoipa::path(
    get,
    path = "/api/v1/tenants/{tenant}/sites",
    security(("bearer" = ["viewer"])),
    tag = "wells",
    operation_id = "list_sites",
    params(TenantScope, PageQuery),
    responses(
        (status = 200, description = "Sites by id", body = SitePage),
        (status = 400, description = "Invalid parameter", body = ErrorResponse),
    )
)]
async fn list_sites(
    State(state): State<ApiState>,
    scope: TenantScope,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Json<SitePage>, ApiError> {
    let limit = parse_limit(
        query.limit.as_deref(),
        DEFAULT_PAGE,
        state.options().max_page_size,
    )?;
    let after = parse_id_cursor(query.cursor.as_deref())?.map(SiteId);
    let mut tx = scope.begin(state.db()).await?;
    let rows = queries::list_sites(&mut tx, scope.id, after, i64::from(limit) + 1).await?;
    tx.commit().await?;
    let (rows, next_cursor) = split_page(rows, limit, |s| s.id.to_string());
    Ok(Json(SitePage {
        items: rows.into_iter().map(SiteDto::from).collect(),
        next_cursor,
    }))
}

#[utoipa::path(
    post,
    path = "/api/v1/tenants/{tenant}/sites",
    security(("bearer" = ["tenant_admin"])),
    tag = "wells",
    operation_id = "create_site",
    params(TenantScope),
    request_body(content = SiteBody, content_type = "application/json"),
    responses(
        (status = 201, description = "Created", body = SiteDto),
        (status = 400, description = "Invalid field (the message names it)", body = ErrorResponse),
        (status = 409, description = "The name is taken", body = ErrorResponse),
    )
)]
async fn create_site(
    State(state): State<ApiState>,
    scope: TenantScope,
    caller: Caller,
    JsonBody(body): JsonBody<SiteBody>,
) -> Result<(StatusCode, Json<SiteDto>), ApiError> {
    let mut tx = scope.begin(state.db()).await?;
    let row = queries::create_site(&mut tx, scope.id, &body.fields()).await?;
    let target = format!("site:{}", row.id);
    store::audit::record(
        &mut tx,
        &caller.audit(
            Some(scope.id),
            "site.create",
            &target,
            None,
            Some(site_json(&row)),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(row.into())))
}

#[utoipa::path(
    get,
    path = "/api/v1/tenants/{tenant}/sites/{site}",
    security(("bearer" = ["viewer"])),
    tag = "wells",
    operation_id = "get_site",
    params(TenantScope, SiteParam),
    responses(
        (status = 200, description = "The site", body = SiteDto),
        (status = 400, description = "Invalid parameter", body = ErrorResponse),
        (status = 404, description = "Unknown site", body = ErrorResponse),
    )
)]
async fn get_site(
    State(state): State<ApiState>,
    scope: TenantScope,
    SiteParam(site): SiteParam,
) -> Result<Json<SiteDto>, ApiError> {
    let mut tx = scope.begin(state.db()).await?;
    let row = queries::site(&mut tx, scope.id, site).await?;
    tx.commit().await?;
    row.map(|s| Json(s.into()))
        .ok_or_else(|| not_found(&scope, site))
}

#[utoipa::path(
    put,
    path = "/api/v1/tenants/{tenant}/sites/{site}",
    security(("bearer" = ["tenant_admin"])),
    tag = "wells",
    operation_id = "update_site",
    params(TenantScope, SiteParam),
    request_body(content = SiteBody, content_type = "application/json"),
    responses(
        (status = 200, description = "Updated", body = SiteDto),
        (status = 400, description = "Invalid field (the message names it)", body = ErrorResponse),
        (status = 404, description = "Unknown site", body = ErrorResponse),
        (status = 409, description = "The name is taken", body = ErrorResponse),
    )
)]
async fn update_site(
    State(state): State<ApiState>,
    scope: TenantScope,
    caller: Caller,
    SiteParam(site): SiteParam,
    JsonBody(body): JsonBody<SiteBody>,
) -> Result<Json<SiteDto>, ApiError> {
    let mut tx = scope.begin(state.db()).await?;
    let (before, after) = queries::update_site(&mut tx, scope.id, site, &body.fields())
        .await?
        .ok_or_else(|| not_found(&scope, site))?;
    let target = format!("site:{site}");
    store::audit::record(
        &mut tx,
        &caller.audit(
            Some(scope.id),
            "site.update",
            &target,
            Some(site_json(&before)),
            Some(site_json(&after)),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(after.into()))
}

#[utoipa::path(
    delete,
    path = "/api/v1/tenants/{tenant}/sites/{site}",
    security(("bearer" = ["tenant_admin"])),
    tag = "wells",
    operation_id = "delete_site",
    params(TenantScope, SiteParam),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "Invalid parameter", body = ErrorResponse),
        (status = 404, description = "Unknown site", body = ErrorResponse),
        (status = 409, description = "The site still has wells or gateways", body = ErrorResponse),
    )
)]
async fn delete_site(
    State(state): State<ApiState>,
    scope: TenantScope,
    caller: Caller,
    SiteParam(site): SiteParam,
) -> Result<StatusCode, ApiError> {
    let mut tx = scope.begin(state.db()).await?;
    let before = queries::delete_site(&mut tx, scope.id, site)
        .await?
        .ok_or_else(|| not_found(&scope, site))?;
    let target = format!("site:{site}");
    store::audit::record(
        &mut tx,
        &caller.audit(
            Some(scope.id),
            "site.delete",
            &target,
            Some(site_json(&before)),
            None,
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
