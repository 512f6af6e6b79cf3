//! Platform administration: tenants (`GET|POST /api/v1/admin/tenants`,
//! `POST /api/v1/admin/tenants/{slug}/{suspend,reactivate}`) and the whole audit log
//! (`GET /api/v1/admin/audit`). Only platform administrators reach these routes; a
//! tenant's own audit log is `GET /api/v1/tenants/{tenant}/audit` for its administrators.
//!
//! Suspending keeps every row; the tenant's people get 403 `tenant_suspended` at once
//! (the status change notifies every API instance), and its gateways are refused at login.

use axum::Json;
use axum::extract::{FromRequestParts, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::openapi::path::{Parameter, ParameterIn};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use store::DbError;
use store::audit::{self, AuditRecord, AuditScope};
use store::identity::Role;
use store::tenants::{self, Tenant, TenantStatus};

use crate::access::Caller;
use crate::extract::{
    DEFAULT_PAGE, InvitationDto, JsonBody, PageQuery, SlugPageQuery, check_slug, kick_from_brokers,
    parse_id_cursor, parse_limit, parse_slug_cursor, send_invitation, split_page,
};
use crate::{ApiError, ApiQuery, ApiState, ErrorResponse, TenantScope};

pub(crate) fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(list_tenants, create_tenant))
        .routes(routes!(suspend_tenant))
        .routes(routes!(reactivate_tenant))
        .routes(routes!(set_plan))
        .routes(routes!(schedule_deletion))
        .routes(routes!(export_tenant))
        .routes(routes!(tenant_usage_admin))
        .routes(routes!(tenant_usage))
        .routes(routes!(platform_audit))
        .routes(routes!(tenant_audit))
}

/// A tenant.
#[derive(Debug, Serialize, ToSchema)]
pub struct TenantDto {
    /// Tenant id (path and MQTT topic segment).
    pub slug: String,
    /// Display name.
    pub name: String,
    /// `active`, `suspended`, `deleting` (scheduled, data kept) or `deleted` (exported and
    /// purged).
    pub status: String,
    /// When the status last changed.
    pub status_changed_at: DateTime<Utc>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// Plan (its quotas are the server's configuration).
    #[schema(example = "standard")]
    pub plan: String,
    /// When a scheduled deletion happens (status `deleting`).
    pub deletion_due_at: Option<DateTime<Utc>>,
    /// Where the data of a deleted tenant was exported.
    pub exported_to: Option<String>,
}

impl From<&Tenant> for TenantDto {
    fn from(t: &Tenant) -> TenantDto {
        TenantDto {
            slug: t.slug.clone(),
            name: t.name.clone(),
            status: t.status.as_str().to_owned(),
            status_changed_at: t.status_changed_at,
            created_at: t.created_at,
            plan: t.plan.clone(),
            deletion_due_at: t.deletion_due_at,
            exported_to: t.exported_to.clone(),
        }
    }
}

fn tenant_json(t: &Tenant) -> serde_json::Value {
    json!({ "slug": t.slug, "name": t.name, "status": t.status.as_str(), "plan": t.plan })
}

fn known_plan(state: &ApiState, plan: &str) -> Result<(), ApiError> {
    if state.options().plans.contains_key(plan) {
        Ok(())
    } else {
        let known: Vec<&str> = state.options().plans.keys().map(String::as_str).collect();
        Err(ApiError::BadRequest(format!(
            "unknown plan {plan:?}: this server's plans are {}",
            known.join(", ")
        )))
    }
}

/// A page of tenants.
#[derive(Debug, Serialize, ToSchema)]
pub struct TenantPage {
    /// Tenants by slug.
    pub items: Vec<TenantDto>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

#[utoipa::path(
    get,
    path = "/api/v1/admin/tenants",
    security(("bearer" = ["platform_admin"])),
    tag = "admin",
    operation_id = "list_tenants",
    params(SlugPageQuery),
    responses(
        (status = 200, description = "Every tenant", body = TenantPage),
        (status = 400, description = "Invalid parameter", body = ErrorResponse),
        (status = 401, description = "No valid credentials", body = ErrorResponse),
        (status = 403, description = "Not a platform administrator", body = ErrorResponse),
    )
)]
async fn list_tenants(
    State(state): State<ApiState>,
    ApiQuery(query): ApiQuery<SlugPageQuery>,
) -> Result<Json<TenantPage>, ApiError> {
    let limit = parse_limit(
        query.limit.as_deref(),
        DEFAULT_PAGE,
        state.options().max_page_size,
    )?;
    let after = parse_slug_cursor(query.cursor.as_deref())?;
    let mut conn = state.db().pool().acquire().await.map_err(DbError::from)?;
    let rows = tenants::tenants(&mut conn, after, limit + 1).await?;
    let (rows, next_cursor) = split_page(rows, limit, |t| t.slug.clone());
    Ok(Json(TenantPage {
        items: rows.iter().map(TenantDto::from).collect(),
        next_cursor,
    }))
}

/// A tenant to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTenantBody {
    /// Tenant id: 1-63 of a-z, 0-9, `_`, `-` (it becomes the gateways' MQTT topic segment).
    #[schema(example = "permian-ops")]
    pub slug: String,
    /// Display name.
    #[schema(example = "Permian Operating LLC")]
    pub name: String,
    /// Email of its first tenant administrator, who is sent an invitation.
    #[schema(example = "admin@permian-ops.example")]
    pub admin_email: String,
    /// Plan (one of the server's; default: its default plan).
    pub plan: Option<String>,
}

/// A created tenant and the invitation of its first administrator.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedTenantDto {
    /// The tenant.
    pub tenant: TenantDto,
    /// The invitation sent.
    pub invitation: InvitationDto,
}

#[utoipa::path(
    post,
    path = "/api/v1/admin/tenants",
    security(("bearer" = ["platform_admin"])),
    tag = "admin",
    operation_id = "create_tenant",
    request_body(content = NewTenantBody, content_type = "application/json"),
    responses(
        (status = 201, description = "Created, and its first administrator invited", body = CreatedTenantDto),
        (status = 400, description = "Invalid slug, name or email", body = ErrorResponse),
        (status = 401, description = "No valid credentials", body = ErrorResponse),
        (status = 403, description = "Not a platform administrator", body = ErrorResponse),
        (status = 409, description = "The slug is taken", body = ErrorResponse),
        (status = 503, description = "Outgoing mail is not configured or the relay refused (nothing was created)", body = ErrorResponse),
    )
)]
async fn create_tenant(
    State(state): State<ApiState>,
    caller: Caller,
    JsonBody(body): JsonBody<NewTenantBody>,
) -> Result<(StatusCode, Json<CreatedTenantDto>), ApiError> {
    check_slug("slug", &body.slug).map_err(|_| {
        ApiError::BadRequest(format!(
            "slug {:?} must be 1-63 characters of a-z, 0-9, '_' and '-' starting with a letter or digit",
            body.slug
        ))
    })?;
    store::identity::check_email(&body.admin_email)?;
    let plan = body
        .plan
        .clone()
        .unwrap_or_else(|| state.options().default_plan.clone());
    known_plan(&state, &plan)?;
    let mut tx = state.db().pool().begin().await.map_err(DbError::from)?;
    if tenants::tenant_by_slug(&mut tx, &body.slug)
        .await?
        .is_some()
    {
        return Err(ApiError::Conflict(format!("tenant `{}` exists", body.slug)));
    }
    let tenant = tenants::create_tenant(&mut tx, &body.slug, &body.name, &plan).await?;
    let target = format!("tenant:{}", tenant.slug);
    audit::record(
        &mut tx,
        &caller.audit(
            Some(tenant.id),
            "tenant.create",
            &target,
            None,
            Some(tenant_json(&tenant)),
        ),
    )
    .await?;
    let invitation = send_invitation(
        &state,
        &mut tx,
        (tenant.id, &tenant.slug),
        &body.admin_email,
        "",
        Role::TenantAdmin,
    )
    .await?;
    let member = format!("member:{}", invitation.user_id);
    audit::record(
        &mut tx,
        &caller.audit(
            Some(tenant.id),
            "member.invite",
            &member,
            None,
            Some(json!({ "email": invitation.email, "role": invitation.role })),
        ),
    )
    .await?;
    tx.commit().await.map_err(DbError::from)?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedTenantDto {
            tenant: TenantDto::from(&tenant),
            invitation,
        }),
    ))
}

/// The `{slug}` path segment of platform routes: a tenant id. (Not `{tenant}`: that name
/// marks routes the tenant's own members use.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlugParam(pub String);

impl<S: Send + Sync> FromRequestParts<S> for SlugParam {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Path(slug) =
            axum::extract::Path::<String>::from_request_parts(parts, state)
                .await
                .map_err(|r| ApiError::BadRequest(format!("invalid path: {}", r.body_text())))?;
        check_slug("slug", &slug)?;
        Ok(SlugParam(slug))
    }
}

impl IntoParams for SlugParam {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        let mut params = TenantScope::into_params(|| Some(ParameterIn::Path));
        for p in &mut params {
            p.name = "slug".to_owned();
        }
        params
    }
}

async fn set_status(
    state: &ApiState,
    caller: &Caller,
    slug: &str,
    status: TenantStatus,
    action: &str,
) -> Result<Json<TenantDto>, ApiError> {
    let mut tx = state.db().pool().begin().await.map_err(DbError::from)?;
    let (before, after) = tenants::set_tenant_status(&mut tx, slug, status)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("tenant `{slug}`")))?;
    if before.status != after.status {
        let target = format!("tenant:{slug}");
        audit::record(
            &mut tx,
            &caller.audit(
                Some(after.id),
                action,
                &target,
                Some(tenant_json(&before)),
                Some(tenant_json(&after)),
            ),
        )
        .await?;
    }
    tx.commit().await.map_err(DbError::from)?;
    state.access().forget();
    if after.status != TenantStatus::Active {
        kick_from_brokers(state, slug).await;
    }
    Ok(Json(TenantDto::from(&after)))
}

#[utoipa::path(
    post,
    path = "/api/v1/admin/tenants/{slug}/suspend",
    security(("bearer" = ["platform_admin"])),
    tag = "admin",
    operation_id = "suspend_tenant",
    params(SlugParam),
    responses(
        (status = 200, description = "Suspended (data kept; its users get 403 at once; its gateways are disconnected and refused)", body = TenantDto),
        (status = 400, description = "Invalid slug", body = ErrorResponse),
        (status = 401, description = "No valid credentials", body = ErrorResponse),
        (status = 403, description = "Not a platform administrator", body = ErrorResponse),
        (status = 404, description = "Unknown tenant", body = ErrorResponse),
    )
)]
async fn suspend_tenant(
    State(state): State<ApiState>,
    caller: Caller,
    SlugParam(slug): SlugParam,
) -> Result<Json<TenantDto>, ApiError> {
    set_status(
        &state,
        &caller,
        &slug,
        TenantStatus::Suspended,
        "tenant.suspend",
    )
    .await
}

#[utoipa::path(
    post,
    path = "/api/v1/admin/tenants/{slug}/reactivate",
    security(("bearer" = ["platform_admin"])),
    tag = "admin",
    operation_id = "reactivate_tenant",
    params(SlugParam),
    responses(
        (status = 200, description = "Active again", body = TenantDto),
        (status = 400, description = "Invalid slug", body = ErrorResponse),
        (status = 401, description = "No valid credentials", body = ErrorResponse),
        (status = 403, description = "Not a platform administrator", body = ErrorResponse),
        (status = 404, description = "Unknown tenant", body = ErrorResponse),
    )
)]
async fn reactivate_tenant(
    State(state): State<ApiState>,
    caller: Caller,
    SlugParam(slug): SlugParam,
) -> Result<Json<TenantDto>, ApiError> {
    set_status(
        &state,
        &caller,
        &slug,
        TenantStatus::Active,
        "tenant.reactivate",
    )
    .await
}

/// An audit log entry.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditDto {
    /// Position in the log.
    pub id: i64,
    /// When.
    pub at: DateTime<Utc>,
    /// Who: `user:<id> <email>`, `key:<prefix>`, `system`.
    pub actor: String,
    /// What, as `subject.verb`.
    pub action: String,
    /// On what.
    pub target: String,
    /// The object before (absent when created).
    pub before: Option<serde_json::Value>,
    /// The object after (absent when deleted).
    pub after: Option<serde_json::Value>,
    /// Client address.
    pub client_addr: Option<String>,
    /// Request id.
    pub request_id: Option<String>,
}

impl From<AuditRecord> for AuditDto {
    fn from(r: AuditRecord) -> AuditDto {
        AuditDto {
            id: r.id,
            at: r.at,
            actor: r.actor,
            action: r.action,
            target: r.target,
            before: r.before,
            after: r.after,
            client_addr: r.client_addr,
            request_id: r.request_id,
        }
    }
}

/// A page of the audit log, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    /// Entries, newest first.
    pub items: Vec<AuditDto>,
    /// Pass as `cursor` for older entries; absent on the last page.
    pub next_cursor: Option<String>,
}

async fn audit_page(
    conn: &mut sqlx::PgConnection,
    scope: AuditScope,
    query: &PageQuery,
    max: u32,
) -> Result<AuditPage, ApiError> {
    let limit = parse_limit(query.limit.as_deref(), DEFAULT_PAGE, max)?;
    let before = parse_id_cursor(query.cursor.as_deref())?;
    let rows = audit::entries(conn, scope, before, limit + 1).await?;
    let (rows, next_cursor) = split_page(rows, limit, |r| r.id.to_string());
    Ok(AuditPage {
        items: rows.into_iter().map(AuditDto::from).collect(),
        next_cursor,
    })
}

#[utoipa::path(
    get,
    path = "/api/v1/admin/audit",
    security(("bearer" = ["platform_admin"])),
    tag = "admin",
    operation_id = "platform_audit",
    params(PageQuery),
    responses(
        (status = 200, description = "Every tenant's entries and the platform's own", body = AuditPage),
        (status = 400, description = "Invalid parameter", body = ErrorResponse),
        (status = 401, description = "No valid credentials", body = ErrorResponse),
        (status = 403, description = "Not a platform administrator", body = ErrorResponse),
    )
)]
async fn platform_audit(
    State(state): State<ApiState>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Json<AuditPage>, ApiError> {
    let mut conn = state.db().pool().acquire().await.map_err(DbError::from)?;
    let page = audit_page(
        &mut conn,
        AuditScope::All,
        &query,
        state.options().max_page_size,
    )
    .await?;
    Ok(Json(page))
}

#[utoipa::path(
    get,
    path = "/api/v1/tenants/{tenant}/audit",
    security(("bearer" = ["tenant_admin"])),
    tag = "people",
    operation_id = "tenant_audit",
    params(TenantScope, PageQuery),
    responses(
        (status = 200, description = "This tenant's entries", body = AuditPage),
        (status = 400, description = "Invalid parameter", body = ErrorResponse),
        (status = 401, description = "No valid credentials", body = ErrorResponse),
        (status = 403, description = "Not a tenant admin, or the tenant is suspended", body = ErrorResponse),
        (status = 404, description = "Unknown tenant", body = ErrorResponse),
    )
)]
async fn tenant_audit(
    State(state): State<ApiState>,
    scope: TenantScope,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Json<AuditPage>, ApiError> {
    let mut tx = scope.begin(state.db()).await?;
    let page = audit_page(
        &mut tx,
        AuditScope::Tenant(scope.id),
        &query,
        state.options().max_page_size,
    )
    .await?;
    tx.commit().await?;
    Ok(Json(page))
}

/// A plan to put a tenant on.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanBody {
    /// One of the server's plans.
    #[schema(example = "standard")]
    pub plan: String,
}

#[utoipa::path(
    put,
    path = "/api/v1/admin/tenants/{slug}/plan",
    security(("bearer" = ["platform_admin"])),
    tag = "admin",
    operation_id = "set_tenant_plan",
    params(SlugParam),
    request_body(content = PlanBody, content_type = "application/json"),
    responses(
        (status = 200, description = "The tenant on its new plan (quotas apply from the next request)", body = TenantDto),
        (status = 400, description = "Unknown plan", body = ErrorResponse),
        (status = 404, description = "Unknown tenant", body = ErrorResponse),
    )
)]
async fn set_plan(
    State(state): State<ApiState>,
    caller: Caller,
    SlugParam(slug): SlugParam,
    JsonBody(body): JsonBody<PlanBody>,
) -> Result<Json<TenantDto>, ApiError> {
    known_plan(&state, &body.plan)?;
    let mut tx = state.db().pool().begin().await.map_err(DbError::from)?;
    let (before, after) = tenants::set_tenant_plan(&mut tx, &slug, &body.plan)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("tenant `{slug}`")))?;
    let target = format!("tenant:{slug}");
    audit::record(
        &mut tx,
        &caller.audit(
            Some(after.id),
            "tenant.set_plan",
            &target,
            Some(tenant_json(&before)),
            Some(tenant_json(&after)),
        ),
    )
    .await?;
    tx.commit().await.map_err(DbError::from)?;
    state.access().forget();
    Ok(Json(TenantDto::from(&after)))
}

/// Days of usage to read: `from` and `to` (exclusive), at most 366 days.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UsageQuery {
    /// First day, `YYYY-MM-DD`.
    #[param(value_type = String, format = Date, example = "2026-12-01")]
    pub from: Option<String>,
    /// Day after the last, `YYYY-MM-DD` (exclusive).
    #[param(value_type = String, format = Date, example = "2026-12-08")]
    pub to: Option<String>,
}

/// One day of a tenant's usage.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageDayDto {
    /// UTC day.
    pub day: chrono::NaiveDate,
    /// Samples stored (each exactly once).
    pub samples_ingested: i64,
    /// Wells with data that day.
    pub active_wells: i32,
    /// Gateways that delivered data that day.
    pub gateways_online: i32,
    /// Authenticated API requests.
    pub api_calls: i64,
    /// Estimated telemetry storage, bytes.
    pub storage_bytes: i64,
}

/// A plan's quotas (absent: unlimited).
#[derive(Debug, Serialize, ToSchema)]
pub struct QuotasDto {
    /// Registered wells.
    pub max_wells: Option<u32>,
    /// Registered gateways.
    pub max_gateways: Option<u32>,
    /// Samples per day (reported, never enforced by dropping data).
    pub max_samples_per_day: Option<u64>,
    /// API requests per minute, whole tenant.
    pub api_requests_per_minute: Option<u32>,
    /// Days of telemetry history kept (older samples are deleted; daily production and
    /// reports are kept).
    pub retention_days: Option<u64>,
}

/// A tenant's plan and usage.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageDto {
    /// Tenant id.
    pub tenant: String,
    /// Plan.
    pub plan: String,
    /// Its quotas.
    pub quotas: QuotasDto,
    /// Days with usage, oldest first.
    pub days: Vec<UsageDayDto>,
}

async fn usage_dto(
    state: &ApiState,
    conn: &mut sqlx::PgConnection,
    tenant: (store::TenantId, &str, &str),
    query: UsageQuery,
) -> Result<UsageDto, ApiError> {
    let (from, to) = crate::extract::parse_day_range(query.from, query.to, 366)?;
    let last = to.pred_opt().unwrap_or(to);
    let days = store::usage::usage(conn, tenant.0, from, last).await?;
    let limits = state.options().plan(tenant.2);
    Ok(UsageDto {
        tenant: tenant.1.to_owned(),
        plan: tenant.2.to_owned(),
        quotas: QuotasDto {
            max_wells: limits.max_wells,
            max_gateways: limits.max_gateways,
            max_samples_per_day: limits.max_samples_per_day,
            api_requests_per_minute: limits.api_requests_per_minute,
            retention_days: limits.retention.map(|r| r.as_secs() / 86_400),
        },
        days: days
            .into_iter()
            .map(|d| UsageDayDto {
                day: d.day,
                samples_ingested: d.samples_ingested,
                active_wells: d.active_wells,
                gateways_online: d.gateways_online,
                api_calls: d.api_calls,
                storage_bytes: d.storage_bytes,
            })
            .collect(),
    })
}

#[utoipa::path(
    get,
    path = "/api/v1/tenants/{tenant}/usage",
    security(("bearer" = ["tenant_admin"])),
    tag = "people",
    operation_id = "tenant_usage",
    params(TenantScope, UsageQuery),
    responses(
        (status = 200, description = "The tenant's plan, quotas and daily usage", body = UsageDto),
        (status = 400, description = "Invalid parameter", body = ErrorResponse),
    )
)]
async fn tenant_usage(
    State(state): State<ApiState>,
    scope: TenantScope,
    ApiQuery(query): ApiQuery<UsageQuery>,
) -> Result<Json<UsageDto>, ApiError> {
    let mut tx = scope.begin(state.db()).await?;
    let dto = usage_dto(&state, &mut tx, (scope.id, &scope.slug, &scope.plan), query).await?;
    tx.commit().await?;
    Ok(Json(dto))
}

#[utoipa::path(
    get,
    path = "/api/v1/admin/tenants/{slug}/usage",
    security(("bearer" = ["platform_admin"])),
    tag = "admin",
    operation_id = "tenant_usage_admin",
    params(SlugParam, UsageQuery),
    responses(
        (status = 200, description = "The tenant's plan, quotas and daily usage", body = UsageDto),
        (status = 400, description = "Invalid parameter", body = ErrorResponse),
        (status = 404, description = "Unknown tenant", body = ErrorResponse),
    )
)]
async fn tenant_usage_admin(
    State(state): State<ApiState>,
    SlugParam(slug): SlugParam,
    ApiQuery(query): ApiQuery<UsageQuery>,
) -> Result<Json<UsageDto>, ApiError> {
    let mut conn = state.db().pool().acquire().await.map_err(DbError::from)?;
    let tenant = tenants::tenant_by_slug(&mut conn, &slug)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("tenant `{slug}`")))?;
    let dto = usage_dto(
        &state,
        &mut conn,
        (tenant.id, &tenant.slug, &tenant.plan),
        query,
    )
    .await?;
    Ok(Json(dto))
}

#[utoipa::path(
    post,
    path = "/api/v1/admin/tenants/{slug}/delete",
    security(("bearer" = ["platform_admin"])),
    tag = "admin",
    operation_id = "schedule_tenant_deletion",
    params(SlugParam),
    responses(
        (status = 200, description = "Scheduled: access refused from now on; after the grace period its data is exported, then purged. Reactivating cancels it.", body = TenantDto),
        (status = 400, description = "Already deleted", body = ErrorResponse),
        (status = 404, description = "Unknown tenant", body = ErrorResponse),
    )
)]
async fn schedule_deletion(
    State(state): State<ApiState>,
    caller: Caller,
    SlugParam(slug): SlugParam,
) -> Result<Json<TenantDto>, ApiError> {
    let grace = chrono::TimeDelta::from_std(state.options().deletion_grace)
        .unwrap_or(chrono::TimeDelta::MAX);
    let mut tx = state.db().pool().begin().await.map_err(DbError::from)?;
    let (before, after) = tenants::schedule_deletion(&mut tx, &slug, Utc::now() + grace)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("tenant `{slug}`")))?;
    let target = format!("tenant:{slug}");
    audit::record(
        &mut tx,
        &caller.audit(
            Some(after.id),
            "tenant.schedule_deletion",
            &target,
            Some(tenant_json(&before)),
            Some(json!({ "status": after.status.as_str(), "deletion_due_at": after.deletion_due_at })),
        ),
    )
    .await?;
    tx.commit().await.map_err(DbError::from)?;
    state.access().forget();
    kick_from_brokers(&state, &slug).await;
    Ok(Json(TenantDto::from(&after)))
}

/// A file of an export.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExportFileDto {
    /// File name (`<table>.csv`).
    pub file: String,
    /// Rows, header excluded.
    pub rows: i64,
    /// SHA-256 of the file, hex.
    pub sha256: String,
}

/// What an export wrote.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExportDto {
    /// The directory on the server (also holds `manifest.json`).
    pub dir: String,
    /// Every file.
    pub files: Vec<ExportFileDto>,
}

#[utoipa::path(
    post,
    path = "/api/v1/admin/tenants/{slug}/export",
    security(("bearer" = ["platform_admin"])),
    tag = "admin",
    operation_id = "export_tenant",
    params(SlugParam),
    responses(
        (status = 200, description = "Every table the tenant owns (and its audit log) written as CSV with a manifest, from one consistent snapshot", body = ExportDto),
        (status = 400, description = "Invalid slug", body = ErrorResponse),
        (status = 404, description = "Unknown or deleted tenant", body = ErrorResponse),
    )
)]
async fn export_tenant(
    State(state): State<ApiState>,
    caller: Caller,
    SlugParam(slug): SlugParam,
) -> Result<Json<ExportDto>, ApiError> {
    let mut conn = state.db().pool().acquire().await.map_err(DbError::from)?;
    let tenant = tenants::tenant_by_slug(&mut conn, &slug)
        .await?
        .filter(|t| t.status != TenantStatus::Deleted)
        .ok_or_else(|| ApiError::NotFound(format!("tenant `{slug}`")))?;
    let manifest = store::lifecycle::export_tenant(
        state.db(),
        tenant.id,
        &tenant.slug,
        &state.options().export_dir,
        Utc::now(),
    )
    .await?;
    let dir = manifest.dir.display().to_string();
    let target = format!("tenant:{slug}");
    audit::record(
        &mut conn,
        &caller.audit(
            Some(tenant.id),
            "tenant.export",
            &target,
            None,
            Some(json!({ "dir": dir })),
        ),
    )
    .await?;
    Ok(Json(ExportDto {
        dir,
        files: manifest
            .files
            .into_iter()
            .map(|f| ExportFileDto {
                file: f.file,
                rows: f.rows,
                sha256: f.sha256,
            })
            .collect(),
    }))
}
