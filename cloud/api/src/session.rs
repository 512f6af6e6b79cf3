//! Signing in and out: `POST /api/v1/auth/{sign-in,refresh,sign-out}`, `GET /api/v1/auth/me`,
//! password reset by email and invitation acceptance.
//!
//! Sign-in answers the same 401 for an unknown email and a wrong password, after the same
//! argon2 work (a decoy hash for unknown emails). Failures are counted per email whether or
//! not it exists; past the allowance the email is locked for a growing time (429 with
//! `Retry-After`, again the same for every email). The public endpoints are also limited
//! per client address. A password reset request is always answered 202.

use std::net::IpAddr;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use store::DbError;
use store::identity::{self, NewSession, Refresh, TokenPurpose, digest};

use crate::access::{Caller, Origin, PrincipalKind};
use crate::credentials::{
    self, ACCESS_PREFIX, ONE_TIME_PREFIX, REFRESH_PREFIX, decoy_hash, hash_password,
    password_problem, verify_password,
};
use crate::extract::JsonBody;
use crate::{ApiError, ApiState, ErrorResponse};

pub(crate) fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(sign_in))
        .routes(routes!(refresh))
        .routes(routes!(sign_out))
        .routes(routes!(me))
        .routes(routes!(request_password_reset))
        .routes(routes!(confirm_password_reset))
        .routes(routes!(accept_invitation))
}

/// Email and password.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignInBody {
    /// Email address (any case).
    #[schema(example = "ana@example.com")]
    pub email: String,
    /// Password.
    #[schema(example = "correct horse battery staple")]
    pub password: String,
}

/// A token pair.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokensDto {
    /// Send as `Authorization: Bearer <access_token>`.
    pub access_token: String,
    /// Exchange at `/api/v1/auth/refresh` for the next pair; usable once.
    pub refresh_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds the access token works.
    pub expires_in: u64,
    /// Seconds the refresh token works.
    pub refresh_expires_in: u64,
}

/// A refresh token.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshBody {
    /// The refresh token of the current pair.
    pub refresh_token: String,
}

/// Who the credential belongs to.
#[derive(Debug, Serialize, ToSchema)]
pub struct MeDto {
    /// How the audit log names this caller.
    pub actor: String,
    /// `user` or `api_key`.
    pub kind: String,
    /// Whether the caller administers the platform.
    pub platform_admin: bool,
    /// The tenants the caller has a role in.
    pub tenants: Vec<GrantDto>,
}

/// A role in a tenant.
#[derive(Debug, Serialize, ToSchema)]
pub struct GrantDto {
    /// Tenant id.
    pub tenant: String,
    /// `viewer`, `operator` or `tenant_admin`.
    pub role: String,
}

/// Whose password to reset.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetRequestBody {
    /// The account's email.
    pub email: String,
}

/// The emailed token and the new password.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetConfirmBody {
    /// The token from the email link.
    pub token: String,
    /// The new password (12 to 1,024 characters).
    pub password: String,
}

/// The emailed invitation token, and a password for a new account.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcceptInvitationBody {
    /// The token from the email link.
    pub token: String,
    /// Required when the invited email has no account yet (12 to 1,024 characters).
    pub password: Option<String>,
}

/// The response to every failed sign-in, whatever failed.
fn bad_credentials() -> ApiError {
    ApiError::Unauthenticated("the email or the password is wrong".to_owned())
}

fn locked(until: chrono::DateTime<Utc>) -> ApiError {
    ApiError::TooManyRequests {
        message: "too many failed sign-ins for this email; wait before trying again".to_owned(),
        retry_after: (until - Utc::now()).to_std().unwrap_or_default(),
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::Internal(Box::new(e)))
}

/// Issues a new pair: stores the digests, returns the tokens.
async fn issue(
    state: &ApiState,
    conn: &mut sqlx::PgConnection,
    user: store::UserId,
    rotate: Option<&[u8]>,
    addr: Option<IpAddr>,
) -> Result<(Option<Refresh>, TokensDto), ApiError> {
    let opts = &state.access().options;
    let now = Utc::now();
    let (access, access_hash) = credentials::new_token(ACCESS_PREFIX);
    let (refresh_token, refresh_hash) = credentials::new_token(REFRESH_PREFIX);
    let ttl = |d: std::time::Duration| TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX);
    let addr = addr.map(|a| a.to_string());
    let pair = NewSession {
        user,
        access_hash: &access_hash,
        access_expires_at: now + ttl(opts.access_ttl),
        refresh_hash: &refresh_hash,
        refresh_expires_at: now + ttl(opts.refresh_ttl),
        client_addr: addr.as_deref(),
    };
    let outcome = match rotate {
        None => {
            identity::start_session(conn, &pair).await?;
            None
        }
        Some(old) => Some(identity::rotate_refresh(conn, old, &pair, now).await?),
    };
    Ok((
        outcome,
        TokensDto {
            access_token: access,
            refresh_token,
            token_type: "Bearer".to_owned(),
            expires_in: opts.access_ttl.as_secs(),
            refresh_expires_in: opts.refresh_ttl.as_secs(),
        },
    ))
}

#[utoipa::path(
    post,
    path = "/api/v1/auth/sign-in",
    security(()),
    tag = "auth",
    operation_id = "sign_in",
    request_body(content = SignInBody, content_type = "application/json"),
    responses(
        (status = 200, description = "Signed in", body = TokensDto),
        (status = 400, description = "Malformed body", body = ErrorResponse),
        (status = 401, description = "Wrong email or password (the same answer for both)", body = ErrorResponse),
        (status = 429, description = "Too many failures for this email, or requests from this address; see `Retry-After`", body = ErrorResponse),
    )
)]
async fn sign_in(
    State(state): State<ApiState>,
    origin: Origin,
    JsonBody(body): JsonBody<SignInBody>,
) -> Result<Json<TokensDto>, ApiError> {
    state.access().limit_address(origin.ip)?;
    if body.password.chars().count() > credentials::MAX_PASSWORD_CHARS {
        return Err(bad_credentials());
    }
    let mut conn = state.db().pool().acquire().await.map_err(DbError::from)?;
    let now = Utc::now();
    if let Some(until) = identity::sign_in_locked_until(&mut conn, &body.email, now).await? {
        return Err(locked(until));
    }
    let user = identity::user_by_email(&mut conn, &body.email).await?;
    let stored = user
        .as_ref()
        .and_then(|u| u.password_hash.clone())
        .unwrap_or_else(|| decoy_hash().to_owned());
    let password = body.password.clone();
    let matches = blocking(move || verify_password(&stored, &password)).await?;
    let user = match user {
        Some(u) if matches && u.password_hash.is_some() && !u.disabled => u,
        _ => {
            let policy = state.access().options.throttle();
            identity::record_sign_in_failure(&mut conn, &body.email, now, &policy).await?;
            tracing::info!(client = ?origin.ip, "failed sign-in");
            return Err(bad_credentials());
        }
    };
    identity::clear_sign_in_failures(&mut conn, &body.email).await?;
    let (_, tokens) = issue(&state, &mut conn, user.id, None, origin.ip).await?;
    tracing::info!(user = %user.id, "signed in");
    Ok(Json(tokens))
}

#[utoipa::path(
    post,
    path = "/api/v1/auth/refresh",
    security(()),
    tag = "auth",
    operation_id = "refresh",
    request_body(content = RefreshBody, content_type = "application/json"),
    responses(
        (status = 200, description = "The next pair; the presented refresh token is used up", body = TokensDto),
        (status = 400, description = "Malformed body", body = ErrorResponse),
        (status = 401, description = "Unknown, expired or already used refresh token (a reused one revokes its whole session)", body = ErrorResponse),
        (status = 429, description = "Too many requests from this address", body = ErrorResponse),
    )
)]
async fn refresh(
    State(state): State<ApiState>,
    origin: Origin,
    JsonBody(body): JsonBody<RefreshBody>,
) -> Result<Json<TokensDto>, ApiError> {
    state.access().limit_address(origin.ip)?;
    if !credentials::is_token(&body.refresh_token, REFRESH_PREFIX) {
        return Err(ApiError::Unauthenticated(
            "the refresh token is malformed".to_owned(),
        ));
    }
    let mut tx = state.db().pool().begin().await.map_err(DbError::from)?;
    let old = digest(&body.refresh_token);
    let (outcome, tokens) = issue(&state, &mut tx, store::UserId(0), Some(&old), origin.ip).await?;
    match outcome {
        Some(Refresh::Rotated { .. }) => {
            tx.commit().await.map_err(DbError::from)?;
            // The previous access token ended with the rotation.
            state.access().forget();
            Ok(Json(tokens))
        }
        Some(Refresh::Reused { user, family }) => {
            let actor = format!("user:{user}");
            let target = format!("session:{family}");
            store::audit::record(
                &mut tx,
                &origin.audit(
                    &actor,
                    None,
                    "session.refresh_reuse_revoked",
                    &target,
                    None,
                    None,
                ),
            )
            .await?;
            tx.commit().await.map_err(DbError::from)?;
            state.access().forget();
            tracing::warn!(%user, %family, "a used refresh token was presented again; session revoked");
            Err(ApiError::Unauthenticated(
                "this refresh token was already used; the session is revoked, sign in again"
                    .to_owned(),
            ))
        }
        _ => Err(ApiError::Unauthenticated(
            "the refresh token is unknown or expired; sign in again".to_owned(),
        )),
    }
}

#[utoipa::path(
    post,
    path = "/api/v1/auth/sign-out",
    security(("bearer" = [])),
    tag = "auth",
    operation_id = "sign_out",
    responses(
        (status = 204, description = "The session (every token of it) is revoked, at once"),
        (status = 400, description = "An API key cannot sign out: revoke it instead", body = ErrorResponse),
        (status = 401, description = "No valid credentials", body = ErrorResponse),
    )
)]
async fn sign_out(State(state): State<ApiState>, caller: Caller) -> Result<StatusCode, ApiError> {
    let PrincipalKind::User { family, .. } = caller.principal.kind else {
        return Err(ApiError::BadRequest(
            "an API key does not sign out; an administrator revokes it".to_owned(),
        ));
    };
    let mut tx = state.db().pool().begin().await.map_err(DbError::from)?;
    identity::revoke_family(&mut tx, family).await?;
    let target = format!("session:{family}");
    store::audit::record(
        &mut tx,
        &caller.audit(None, "session.sign_out", &target, None, None),
    )
    .await?;
    tx.commit().await.map_err(DbError::from)?;
    state.access().forget();
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    get,
    path = "/api/v1/auth/me",
    security(("bearer" = [])),
    tag = "auth",
    operation_id = "me",
    responses(
        (status = 200, description = "The caller and its roles", body = MeDto),
        (status = 401, description = "No valid credentials", body = ErrorResponse),
    )
)]
async fn me(caller: Caller) -> Json<MeDto> {
    let p = caller.principal;
    Json(MeDto {
        kind: match p.kind {
            PrincipalKind::User { .. } => "user",
            PrincipalKind::ApiKey { .. } => "api_key",
        }
        .to_owned(),
        actor: p.actor,
        platform_admin: p.platform_admin,
        tenants: p
            .grants
            .into_iter()
            .map(|g| GrantDto {
                tenant: g.tenant_slug,
                role: g.role.as_str().to_owned(),
            })
            .collect(),
    })
}

#[utoipa::path(
    post,
    path = "/api/v1/auth/password-reset",
    security(()),
    tag = "auth",
    operation_id = "request_password_reset",
    request_body(content = ResetRequestBody, content_type = "application/json"),
    responses(
        (status = 202, description = "If the email has an account, a reset link was sent to it (the same answer either way)"),
        (status = 400, description = "Malformed body", body = ErrorResponse),
        (status = 429, description = "Too many requests from this address", body = ErrorResponse),
        (status = 503, description = "Outgoing mail is not configured", body = ErrorResponse),
    )
)]
async fn request_password_reset(
    State(state): State<ApiState>,
    origin: Origin,
    JsonBody(body): JsonBody<ResetRequestBody>,
) -> Result<StatusCode, ApiError> {
    state.access().limit_address(origin.ip)?;
    let mailer = state.mailer()?;
    let mut conn = state.db().pool().acquire().await.map_err(DbError::from)?;
    let Some(user) = identity::user_by_email(&mut conn, &body.email).await? else {
        return Ok(StatusCode::ACCEPTED);
    };
    if user.disabled {
        return Ok(StatusCode::ACCEPTED);
    }
    let (token, hash) = credentials::new_token(ONE_TIME_PREFIX);
    let ttl = state.access().options.reset_ttl;
    let expires = Utc::now() + TimeDelta::from_std(ttl).unwrap_or(TimeDelta::MAX);
    identity::insert_one_time_token(
        &mut conn,
        &hash,
        user.id,
        TokenPurpose::PasswordReset,
        expires,
    )
    .await?;
    let mail = mail::Mail {
        to: user.email.clone(),
        subject: "Reset your WellPulse password".to_owned(),
        body: format!(
            "Someone asked to reset the password of this WellPulse account.\n\n\
             To choose a new password, open:\n{}/reset-password?token={token}\n\n\
             The link works once, for {}. If you did not ask for it, ignore this message.\n",
            mailer.public_url(),
            humantime::format_duration(ttl)
        ),
    };
    mailer
        .send(&mail)
        .await
        .map_err(|e| ApiError::MailUnavailable(e.to_string()))?;
    Ok(StatusCode::ACCEPTED)
}

#[utoipa::path(
    post,
    path = "/api/v1/auth/password-reset/confirm",
    security(()),
    tag = "auth",
    operation_id = "confirm_password_reset",
    request_body(content = ResetConfirmBody, content_type = "application/json"),
    responses(
        (status = 204, description = "Password changed; every session of the account is revoked"),
        (status = 400, description = "Malformed body, a password that breaks the rules, or a link that is invalid, used or expired", body = ErrorResponse),
        (status = 429, description = "Too many requests from this address", body = ErrorResponse),
    )
)]
async fn confirm_password_reset(
    State(state): State<ApiState>,
    origin: Origin,
    JsonBody(body): JsonBody<ResetConfirmBody>,
) -> Result<StatusCode, ApiError> {
    state.access().limit_address(origin.ip)?;
    if let Some(problem) = password_problem(&body.password) {
        return Err(ApiError::BadRequest(format!("password {problem}")));
    }
    let token = one_time(&body.token)?;
    let password = body.password.clone();
    let hash = blocking(move || hash_password(&password)).await?;
    let mut tx = state.db().pool().begin().await.map_err(DbError::from)?;
    let used = identity::consume_one_time_token(&mut tx, &digest(token), false, Utc::now())
        .await?
        .ok_or_else(invalid_link)?;
    identity::set_password(&mut tx, used.user, &hash).await?;
    if let Some(user) = identity::user_by_id(&mut tx, used.user).await? {
        identity::clear_sign_in_failures(&mut tx, &user.email).await?;
    }
    let actor = format!("user:{}", used.user);
    store::audit::record(
        &mut tx,
        &origin.audit(&actor, None, "user.password_reset", &actor, None, None),
    )
    .await?;
    tx.commit().await.map_err(DbError::from)?;
    state.access().forget();
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    post,
    path = "/api/v1/auth/invitations/accept",
    security(()),
    tag = "auth",
    operation_id = "accept_invitation",
    request_body(content = AcceptInvitationBody, content_type = "application/json"),
    responses(
        (status = 204, description = "The role is granted; sign in with the email and password"),
        (status = 400, description = "Malformed body, a missing or rule-breaking password, or a link that is invalid, used or expired", body = ErrorResponse),
        (status = 429, description = "Too many requests from this address", body = ErrorResponse),
    )
)]
async fn accept_invitation(
    State(state): State<ApiState>,
    origin: Origin,
    JsonBody(body): JsonBody<AcceptInvitationBody>,
) -> Result<StatusCode, ApiError> {
    state.access().limit_address(origin.ip)?;
    let token = one_time(&body.token)?;
    let new_hash = match &body.password {
        Some(password) => {
            if let Some(problem) = password_problem(password) {
                return Err(ApiError::BadRequest(format!("password {problem}")));
            }
            let password = password.clone();
            Some(blocking(move || hash_password(&password)).await?)
        }
        None => None,
    };
    let mut tx = state.db().pool().begin().await.map_err(DbError::from)?;
    let used = identity::consume_one_time_token(&mut tx, &digest(token), true, Utc::now())
        .await?
        .ok_or_else(invalid_link)?;
    let TokenPurpose::Invitation { tenant, role } = used.purpose else {
        return Err(invalid_link());
    };
    let user = identity::user_by_id(&mut tx, used.user)
        .await?
        .ok_or_else(invalid_link)?;
    match (&user.password_hash, &new_hash) {
        (None, None) => {
            return Err(ApiError::BadRequest(
                "password is required: this email has no account yet".to_owned(),
            ));
        }
        (None, Some(hash)) => identity::set_password(&mut tx, user.id, hash).await?,
        // An existing account keeps its password; the invitation only adds the role.
        (Some(_), _) => {}
    }
    let before = identity::set_membership(&mut tx, tenant, user.id, role).await?;
    let actor = format!("user:{} {}", user.id, user.email);
    let target = format!("member:{}", user.id);
    store::audit::record(
        &mut tx,
        &origin.audit(
            &actor,
            Some(tenant),
            "member.accept_invitation",
            &target,
            before.map(|r| serde_json::json!({ "role": r.as_str() })),
            Some(serde_json::json!({ "role": role.as_str() })),
        ),
    )
    .await?;
    tx.commit().await.map_err(DbError::from)?;
    state.access().forget();
    Ok(StatusCode::NO_CONTENT)
}

fn one_time(token: &str) -> Result<&str, ApiError> {
    if credentials::is_token(token, ONE_TIME_PREFIX) {
        Ok(token)
    } else {
        Err(invalid_link())
    }
}

fn invalid_link() -> ApiError {
    ApiError::BadRequest("the link is invalid, already used or expired".to_owned())
}

/// Creates a platform administrator, or makes an existing user one with this password
/// (the `create-admin` command of the server: how a new installation gets its first
/// account). Audited as `system:cli`.
pub async fn create_platform_admin(
    db: &store::Db,
    email: &str,
    password: &base::Secret,
) -> Result<store::UserId, ApiError> {
    if let Some(problem) = password_problem(password.expose()) {
        return Err(ApiError::BadRequest(format!("password {problem}")));
    }
    let secret = password.clone();
    let hash = blocking(move || hash_password(secret.expose())).await?;
    let mut tx = db.pool().begin().await.map_err(DbError::from)?;
    let (id, created) = identity::ensure_user(
        &mut tx,
        &identity::NewUser {
            email,
            display_name: "",
            password_hash: Some(&hash),
            platform_admin: true,
        },
    )
    .await?;
    if !created {
        identity::set_password(&mut tx, id, &hash).await?;
        identity::set_platform_admin(&mut tx, id, true).await?;
    }
    let target = format!("user:{id}");
    store::audit::record(
        &mut tx,
        &store::audit::AuditEntry {
            tenant: None,
            actor: "system:cli",
            action: if created {
                "user.create_platform_admin"
            } else {
                "user.make_platform_admin"
            },
            target: &target,
            before: None,
            after: Some(serde_json::json!({ "email": email.trim(), "platform_admin": true })),
            client_addr: None,
            request_id: None,
        },
    )
    .await?;
    tx.commit().await.map_err(DbError::from)?;
    Ok(id)
}
