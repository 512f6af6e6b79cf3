//! A tenant's people and machines, managed by its administrators:
//! `GET /api/v1/tenants/{tenant}/members`, `POST …/invitations`,
//! `PUT|DELETE …/members/{user}`, and API keys at `GET|POST …/api-keys`,
//! `DELETE …/api-keys/{key}`.
//!
//! Nobody grants more than they have: a tenant admin invites and creates keys up to
//! `tenant_admin`; a tenant never loses its last administrator. An API key is shown once,
//! in the response that creates it. Every change is audited in its transaction.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use store::identity::{self, ApiKey, Member, NewApiKey, Role};
use store::{ApiKeyId, UserId};

use crate::access::Caller;
use crate::credentials;
use crate::extract::{
    DEFAULT_PAGE, InvitationDto, JsonBody, KeyParam, PageQuery, UserParam, parse_id_cursor,
    parse_limit, send_invitation, split_page,
};
use crate::{ApiError, ApiQuery, ApiState, ErrorResponse, TenantScope};

pub(crate) fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(list_members))
        .routes(routes!(invite))
        .routes(routes!(set_role, remove_member))
        .routes(routes!(list_keys, create_key))
        .routes(routes!(revoke_key))
}

fn role_param(raw: &str) -> Result<Role, ApiError> {
    Role::parse(raw).ok_or_else(|| {
        ApiError::BadRequest(format!(
            "invalid role {raw:?}: must be `viewer`, `operator` or `tenant_admin`"
        ))
    })
}

fn no_escalation(scope: &TenantScope, role: Role) -> Result<(), ApiError> {
    if scope.role.includes(role) {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!(
            "you cannot grant `{role}`, which is more than your own `{}`",
            scope.role
        )))
    }
}

/// A member.
#[derive(Debug, Serialize, ToSchema)]
pub struct MemberDto {
    /// User id.
    pub user_id: i64,
    /// Email.
    pub email: String,
    /// Display name.
    pub display_name: String,
    /// Role in this tenant.
    pub role: String,
    /// When the role was granted.
    pub since: DateTime<Utc>,
}

impl From<Member> for MemberDto {
    fn from(m: Member) -> MemberDto {
        MemberDto {
            user_id: m.user_id.0,
            email: m.email,
            display_name: m.display_name,
            role: m.role.as_str().to_owned(),
            since: m.since,
        }
    }
}

/// A page of members.
#[derive(Debug, Serialize, ToSchema)]
pub struct MemberPage {
    /// Members by user id.
    pub items: Vec<MemberDto>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

#[utoipa::path(
    get,
    path = "/api/v1/tenants/{tenant}/members",
    security(("bearer" = ["tenant_admin"])),
    tag = "people",
    operation_id = "list_members",
    params(TenantScope, PageQuery),
    responses(
        (status = 200, description = "Members of the tenant", body = MemberPage),
        (status = 400, description = "Invalid parameter", body = ErrorResponse),
        (status = 401, description = "No valid credentials", body = ErrorResponse),
        (status = 403, description = "Not a tenant admin, or the tenant is suspended", body = ErrorResponse),
        (status = 404, description = "Unknown tenant", body = ErrorResponse),
    )
)]
async fn list_members(
    State(state): State<ApiState>,
    scope: TenantScope,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Json<MemberPage>, ApiError> {
    let limit = parse_limit(
        query.limit.as_deref(),
        DEFAULT_PAGE,
        state.options().max_page_size,
    )?;
    let after = parse_id_cursor(query.cursor.as_deref())?.map(UserId);
    let mut tx = scope.begin(state.db()).await?;
    let rows = identity::members(&mut tx, scope.id, after, limit + 1).await?;
    tx.commit().await?;
    let (rows, next_cursor) = split_page(rows, limit, |m| m.user_id.0.to_string());
    Ok(Json(MemberPage {
        items: rows.into_iter().map(MemberDto::from).collect(),
        next_cursor,
    }))
}

/// Whom to invite, with which role.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InviteBody {
    /// Email address to send the invitation to.
    #[schema(example = "bo@example.com")]
    pub email: String,
    /// `viewer`, `operator` or `tenant_admin` (at most your own role).
    #[schema(example = "operator")]
    pub role: String,
    /// Name shown in member lists (for a new account).
    pub display_name: Option<String>,
}

#[utoipa::path(
    post,
    path = "/api/v1/tenants/{tenant}/invitations",
    security(("bearer" = ["tenant_admin"])),
    tag = "people",
    operation_id = "invite_member",
    params(TenantScope),
    request_body(content = InviteBody, content_type = "application/json"),
    responses(
        (status = 202, description = "Invitation emailed", body = InvitationDto),
        (status = 400, description = "Invalid email or role", body = ErrorResponse),
        (status = 401, description = "No valid credentials", body = ErrorResponse),
        (status = 403, description = "Not a tenant admin, a role above your own, or the tenant is suspended", body = ErrorResponse),
        (status = 404, description = "Unknown tenant", body = ErrorResponse),
        (status = 409, description = "Already a member", body = ErrorResponse),
        (status = 503, description = "Outgoing mail is not configured or the relay refused", body = ErrorResponse),
    )
)]
async fn invite(
    State(state): State<ApiState>,
    scope: TenantScope,
    caller: Caller,
    JsonBody(body): JsonBody<InviteBody>,
) -> Result<(StatusCode, Json<InvitationDto>), ApiError> {
    let role = role_param(&body.role)?;
    no_escalation(&scope, role)?;
    identity::check_email(&body.email)?;
    // The user row is platform-wide: written on the owner connection, in one transaction
    // with the token, the audit entry and the mail (a relay refusal undoes it all).
    let mut tx = state
        .db()
        .pool()
        .begin()
        .await
        .map_err(store::DbError::from)?;
    if let Some(existing) = identity::user_by_email(&mut tx, &body.email).await?
        && identity::memberships_of(&mut tx, existing.id)
            .await?
            .iter()
            .any(|m| m.tenant_id == scope.id)
    {
        return Err(ApiError::Conflict(format!(
            "{} is already a member of `{}`",
            body.email.trim(),
            scope.slug
        )));
    }
    let sent = send_invitation(
        &state,
        &mut tx,
        (scope.id, &scope.slug),
        &body.email,
        body.display_name.as_deref().unwrap_or(""),
        role,
    )
    .await?;
    let target = format!("member:{}", sent.user_id);
    store::audit::record(
        &mut tx,
        &caller.audit(
            Some(scope.id),
            "member.invite",
            &target,
            None,
            Some(json!({ "email": sent.email, "role": sent.role })),
        ),
    )
    .await?;
    tx.commit().await.map_err(store::DbError::from)?;
    Ok((StatusCode::ACCEPTED, Json(sent)))
}

/// A new role.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleBody {
    /// `viewer`, `operator` or `tenant_admin`.
    #[schema(example = "viewer")]
    pub role: String,
}

#[utoipa::path(
    put,
    path = "/api/v1/tenants/{tenant}/members/{user}",
    security(("bearer" = ["tenant_admin"])),
    tag = "people",
    operation_id = "set_member_role",
    params(TenantScope, UserParam),
    request_body(content = RoleBody, content_type = "application/json"),
    responses(
        (status = 200, description = "Role changed (takes effect at once)", body = MemberDto),
        (status = 400, description = "Invalid role or user id", body = ErrorResponse),
        (status = 401, description = "No valid credentials", body = ErrorResponse),
        (status = 403, description = "Not a tenant admin, a role above your own, or the tenant is suspended", body = ErrorResponse),
        (status = 404, description = "Unknown tenant or not a member", body = ErrorResponse),
        (status = 409, description = "It would leave the tenant without an administrator", body = ErrorResponse),
    )
)]
async fn set_role(
    State(state): State<ApiState>,
    scope: TenantScope,
    caller: Caller,
    UserParam(user): UserParam,
    JsonBody(body): JsonBody<RoleBody>,
) -> Result<Json<MemberDto>, ApiError> {
    let role = role_param(&body.role)?;
    no_escalation(&scope, role)?;
    let mut tx = scope.begin(state.db()).await?;
    let current = member(&mut tx, &scope, user).await?;
    identity::set_membership(&mut tx, scope.id, user, role).await?;
    if current.role == Role::TenantAdmin
        && role != Role::TenantAdmin
        && identity::count_role(&mut tx, scope.id, Role::TenantAdmin).await? == 0
    {
        return Err(last_admin());
    }
    let target = format!("member:{user}");
    store::audit::record(
        &mut tx,
        &caller.audit(
            Some(scope.id),
            "member.set_role",
            &target,
            Some(json!({ "role": current.role.as_str() })),
            Some(json!({ "role": role.as_str() })),
        ),
    )
    .await?;
    let updated = member(&mut tx, &scope, user).await?;
    tx.commit().await?;
    state.access().forget();
    Ok(Json(updated.into()))
}

#[utoipa::path(
    delete,
    path = "/api/v1/tenants/{tenant}/members/{user}",
    security(("bearer" = ["tenant_admin"])),
    tag = "people",
    operation_id = "remove_member",
    params(TenantScope, UserParam),
    responses(
        (status = 204, description = "Removed (takes effect at once)"),
        (status = 400, description = "Invalid user id", body = ErrorResponse),
        (status = 401, description = "No valid credentials", body = ErrorResponse),
        (status = 403, description = "Not a tenant admin, or the tenant is suspended", body = ErrorResponse),
        (status = 404, description = "Unknown tenant or not a member", body = ErrorResponse),
        (status = 409, description = "It would leave the tenant without an administrator", body = ErrorResponse),
    )
)]
async fn remove_member(
    State(state): State<ApiState>,
    scope: TenantScope,
    caller: Caller,
    UserParam(user): UserParam,
) -> Result<StatusCode, ApiError> {
    let mut tx = scope.begin(state.db()).await?;
    let current = member(&mut tx, &scope, user).await?;
    identity::remove_membership(&mut tx, scope.id, user).await?;
    if current.role == Role::TenantAdmin
        && identity::count_role(&mut tx, scope.id, Role::TenantAdmin).await? == 0
    {
        return Err(last_admin());
    }
    let target = format!("member:{user}");
    store::audit::record(
        &mut tx,
        &caller.audit(
            Some(scope.id),
            "member.remove",
            &target,
            Some(json!({ "email": current.email, "role": current.role.as_str() })),
            None,
        ),
    )
    .await?;
    tx.commit().await?;
    state.access().forget();
    Ok(StatusCode::NO_CONTENT)
}

async fn member(
    tx: &mut sqlx::PgConnection,
    scope: &TenantScope,
    user: UserId,
) -> Result<Member, ApiError> {
    identity::member(tx, scope.id, user)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("member {user} of `{}`", scope.slug)))
}

fn last_admin() -> ApiError {
    ApiError::Conflict("a tenant keeps at least one tenant_admin".to_owned())
}

// ---------------------------------------------------------------------------------------
// API keys

/// An API key (never its secret, except once in [`NewKeyDto`]).
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyDto {
    /// Key id.
    pub id: i64,
    /// Public prefix: the key reads `wpk_<prefix>_…`.
    pub prefix: String,
    /// Name.
    pub name: String,
    /// Role the key acts with.
    pub role: String,
    /// Who created it.
    pub created_by: String,
    /// When.
    pub created_at: DateTime<Utc>,
    /// When it stops working, if ever.
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was last used (recorded at most once a minute).
    pub last_used_at: Option<DateTime<Utc>>,
    /// When it was revoked.
    pub revoked_at: Option<DateTime<Utc>>,
}

impl From<ApiKey> for ApiKeyDto {
    fn from(k: ApiKey) -> ApiKeyDto {
        ApiKeyDto {
            id: k.id.0,
            prefix: k.prefix,
            name: k.name,
            role: k.role.as_str().to_owned(),
            created_by: k.created_by,
            created_at: k.created_at,
            expires_at: k.expires_at,
            last_used_at: k.last_used_at,
            revoked_at: k.revoked_at,
        }
    }
}

fn key_json(k: &ApiKey) -> serde_json::Value {
    json!({ "prefix": k.prefix, "name": k.name, "role": k.role.as_str(),
            "expires_at": k.expires_at, "revoked_at": k.revoked_at })
}

/// A page of keys.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyPage {
    /// Keys by id.
    pub items: Vec<ApiKeyDto>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// A key to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKeyBody {
    /// Name (1 to 100 characters), e.g. what uses it.
    #[schema(example = "SCADA export")]
    pub name: String,
    /// `viewer`, `operator` or `tenant_admin` (at most your own role).
    #[schema(example = "viewer")]
    pub role: String,
    /// Days until it expires (1 to 3650); omit for a key that does not expire.
    #[schema(minimum = 1, maximum = 3650, example = 90)]
    pub expires_in_days: Option<u32>,
}

/// A new key: the only time its secret is shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct NewKeyDto {
    /// The key: send as `Authorization: Bearer <key>`. Shown once; store it now.
    pub key: String,
    /// Its record.
    #[serde(flatten)]
    pub record: ApiKeyDto,
}

#[utoipa::path(
    get,
    path = "/api/v1/tenants/{tenant}/api-keys",
    security(("bearer" = ["tenant_admin"])),
    tag = "people",
    operation_id = "list_api_keys",
    params(TenantScope, PageQuery),
    responses(
        (status = 200, description = "The tenant's keys (revoked ones included)", body = ApiKeyPage),
        (status = 400, description = "Invalid parameter", body = ErrorResponse),
        (status = 401, description = "No valid credentials", body = ErrorResponse),
        (status = 403, description = "Not a tenant admin, or the tenant is suspended", body = ErrorResponse),
        (status = 404, description = "Unknown tenant", body = ErrorResponse),
    )
)]
async fn list_keys(
    State(state): State<ApiState>,
    scope: TenantScope,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Json<ApiKeyPage>, ApiError> {
    let limit = parse_limit(
        query.limit.as_deref(),
        DEFAULT_PAGE,
        state.options().max_page_size,
    )?;
    let after = parse_id_cursor(query.cursor.as_deref())?.map(ApiKeyId);
    let mut tx = scope.begin(state.db()).await?;
    let rows = identity::api_keys(&mut tx, scope.id, after, limit + 1).await?;
    tx.commit().await?;
    let (rows, next_cursor) = split_page(rows, limit, |k| k.id.0.to_string());
    Ok(Json(ApiKeyPage {
        items: rows.into_iter().map(ApiKeyDto::from).collect(),
        next_cursor,
    }))
}

#[utoipa::path(
    post,
    path = "/api/v1/tenants/{tenant}/api-keys",
    security(("bearer" = ["tenant_admin"])),
    tag = "people",
    operation_id = "create_api_key",
    params(TenantScope),
    request_body(content = NewKeyBody, content_type = "application/json"),
    responses(
        (status = 201, description = "Created; `key` is shown this once", body = NewKeyDto),
        (status = 400, description = "Invalid name, role or expiry", body = ErrorResponse),
        (status = 401, description = "No valid credentials", body = ErrorResponse),
        (status = 403, description = "Not a tenant admin, a role above your own, or the tenant is suspended", body = ErrorResponse),
        (status = 404, description = "Unknown tenant", body = ErrorResponse),
    )
)]
async fn create_key(
    State(state): State<ApiState>,
    scope: TenantScope,
    caller: Caller,
    JsonBody(body): JsonBody<NewKeyBody>,
) -> Result<(StatusCode, Json<NewKeyDto>), ApiError> {
    let role = role_param(&body.role)?;
    no_escalation(&scope, role)?;
    let expires_at = match body.expires_in_days {
        Some(days @ 1..=3650) => Some(Utc::now() + TimeDelta::days(i64::from(days))),
        Some(days) => {
            return Err(ApiError::BadRequest(format!(
                "expires_in_days must be 1 to 3650, got {days}"
            )));
        }
        None => None,
    };
    let (key, prefix, hash) = credentials::new_api_key();
    let mut tx = scope.begin(state.db()).await?;
    let record = identity::create_api_key(
        &mut tx,
        scope.id,
        &NewApiKey {
            prefix: &prefix,
            secret_hash: &hash,
            name: &body.name,
            role,
            created_by: &caller.principal.actor,
            expires_at,
        },
    )
    .await?;
    let target = format!("api_key:{prefix}");
    store::audit::record(
        &mut tx,
        &caller.audit(
            Some(scope.id),
            "api_key.create",
            &target,
            None,
            Some(key_json(&record)),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(NewKeyDto {
            key,
            record: record.into(),
        }),
    ))
}

#[utoipa::path(
    delete,
    path = "/api/v1/tenants/{tenant}/api-keys/{key}",
    security(("bearer" = ["tenant_admin"])),
    tag = "people",
    operation_id = "revoke_api_key",
    params(TenantScope, KeyParam),
    responses(
        (status = 204, description = "Revoked (refused from now on, everywhere)"),
        (status = 400, description = "Invalid key id", body = ErrorResponse),
        (status = 401, description = "No valid credentials", body = ErrorResponse),
        (status = 403, description = "Not a tenant admin, or the tenant is suspended", body = ErrorResponse),
        (status = 404, description = "Unknown tenant or key", body = ErrorResponse),
    )
)]
async fn revoke_key(
    State(state): State<ApiState>,
    scope: TenantScope,
    caller: Caller,
    KeyParam(key): KeyParam,
) -> Result<StatusCode, ApiError> {
    let mut tx = scope.begin(state.db()).await?;
    let (before, after) = identity::revoke_api_key(&mut tx, scope.id, key)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("API key {key}")))?;
    let target = format!("api_key:{}", before.prefix);
    store::audit::record(
        &mut tx,
        &caller.audit(
            Some(scope.id),
            "api_key.revoke",
            &target,
            Some(key_json(&before)),
            Some(key_json(&after)),
        ),
    )
    .await?;
    tx.commit().await?;
    state.access().forget();
    Ok(StatusCode::NO_CONTENT)
}
