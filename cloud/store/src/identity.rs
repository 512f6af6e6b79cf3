//! Identity: users and their roles per tenant, sign-in sessions, sign-in throttling,
//! one-time tokens (invitations, password resets) and API keys.
//!
//! # What is stored
//!
//! Never a secret: passwords arrive here already hashed (argon2id PHC strings, made by the
//! API), and tokens and API key secrets as SHA-256 digests ([`digest`]): they are 256-bit
//! random values, so a fast hash is enough and lookups are by digest.
//!
//! # Sessions
//!
//! A sign-in starts a *family* (a UUID). Each row of `auth_sessions` is one token pair:
//! a short-lived access token and a refresh token. [`rotate_refresh`] exchanges a refresh
//! token for the next pair of the same family, under a row lock, and marks the old row
//! rotated; presenting a rotated (or revoked) refresh token again revokes the whole family
//! — the token was copied, and neither copy may go on. Sign-out revokes the family; a
//! password reset or a disabled user revokes all of the user's families.
//!
//! Triggers notify channel `wellpulse_auth` on every change that narrows access (session
//! revoked, membership or role changed, key revoked, tenant suspended), in the changing
//! transaction: API instances cache principals and drop the cache on it (see the API's
//! `auth` module), so such changes take effect at once.
//!
//! # Who may call what
//!
//! Authentication reads (`*_by_*`, sessions, failures, one-time tokens) run on the owner
//! connection: they happen before any tenant is known. Reads and writes of one tenant's
//! members and keys run in a tenant-scoped transaction ([`crate::Db::begin_tenant`]), where
//! row-level security confines them to that tenant whatever the query says.

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use crate::{ApiKeyId, DbError, TenantId, UserId, collect};

/// A user's role in a tenant, from most to least powerful. Platform administration is
/// not a tenant role: it is a flag of the user ([`UserAuth::platform_admin`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// Reads everything of the tenant.
    Viewer,
    /// Also records and corrects operational data (production corrections, derivations,
    /// alert handling).
    Operator,
    /// Also manages the tenant's people, keys, registry and gateways.
    TenantAdmin,
}

impl Role {
    /// Every role, least powerful first.
    pub const ALL: [Role; 3] = [Role::Viewer, Role::Operator, Role::TenantAdmin];

    /// The stored (and API) name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::TenantAdmin => "tenant_admin",
        }
    }

    /// Parses a stored (or API) name.
    pub fn parse(raw: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == raw)
    }

    /// Whether this role includes everything `needed` may do.
    pub fn includes(self, needed: Role) -> bool {
        self >= needed
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

fn role_of(row: &PgRow, column: &str) -> Result<Role, sqlx::Error> {
    let raw: String = row.try_get(column)?;
    Role::parse(&raw).ok_or_else(|| sqlx::Error::ColumnDecode {
        index: column.to_owned(),
        source: format!("unknown role {raw:?}").into(),
    })
}

/// SHA-256 of a token or key secret: its stored form.
pub fn digest(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

/// The identifying form of an email address: trimmed, lower case.
pub fn email_key(email: &str) -> String {
    email.trim().to_lowercase()
}

// ---------------------------------------------------------------------------------------
// Users
// ---------------------------------------------------------------------------------------

/// A user as sign-in and authentication need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserAuth {
    /// Database id.
    pub id: UserId,
    /// Email as entered.
    pub email: String,
    /// argon2id PHC string; `None` until an invitation is accepted.
    pub password_hash: Option<String>,
    /// Whether the user administers the platform (every tenant).
    pub platform_admin: bool,
    /// Whether the user was disabled (cannot sign in; sessions revoked).
    pub disabled: bool,
}

const USER_AUTH_COLUMNS: &str =
    "id, email, password_hash, platform_admin, disabled_at IS NOT NULL AS disabled";

fn user_auth(row: &PgRow) -> Result<UserAuth, sqlx::Error> {
    Ok(UserAuth {
        id: row.try_get("id")?,
        email: row.try_get("email")?,
        password_hash: row.try_get("password_hash")?,
        platform_admin: row.try_get("platform_admin")?,
        disabled: row.try_get("disabled")?,
    })
}

/// The user with this email (any case, surrounding spaces ignored).
pub async fn user_by_email(
    conn: &mut PgConnection,
    email: &str,
) -> Result<Option<UserAuth>, DbError> {
    let row = sqlx::query(&format!(
        "SELECT {USER_AUTH_COLUMNS} FROM users WHERE email_key = $1"
    ))
    .bind(email_key(email))
    .fetch_optional(conn)
    .await?;
    Ok(row.as_ref().map(user_auth).transpose()?)
}

/// The user with this id.
pub async fn user_by_id(conn: &mut PgConnection, id: UserId) -> Result<Option<UserAuth>, DbError> {
    let row = sqlx::query(&format!(
        "SELECT {USER_AUTH_COLUMNS} FROM users WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await?;
    Ok(row.as_ref().map(user_auth).transpose()?)
}

/// A user to create.
#[derive(Debug, Clone)]
pub struct NewUser<'a> {
    /// Email as entered (must contain `@`).
    pub email: &'a str,
    /// Display name (may be empty).
    pub display_name: &'a str,
    /// argon2id PHC string, or `None` for an invited user who has not set one yet.
    pub password_hash: Option<&'a str>,
    /// Platform administrator.
    pub platform_admin: bool,
}

/// Validates an email address enough to route mail to it: one `@`, something on both
/// sides, a dot in the domain, no spaces or control characters, at most 254 bytes.
pub fn check_email(email: &str) -> Result<(), DbError> {
    let email = email.trim();
    let ok = email.len() <= 254
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && match email.split_once('@') {
            Some((local, domain)) => {
                !local.is_empty()
                    && !domain.contains('@')
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
            }
            None => false,
        };
    if ok {
        Ok(())
    } else {
        Err(DbError::invalid(
            "email",
            format!("{email:?} is not an email address"),
        ))
    }
}

/// Creates a user, or returns the existing one with that email (its fields unchanged).
/// The flag says whether it was created.
pub async fn ensure_user(
    conn: &mut PgConnection,
    new: &NewUser<'_>,
) -> Result<(UserId, bool), DbError> {
    check_email(new.email)?;
    let created: Option<UserId> = sqlx::query_scalar(
        "INSERT INTO users (email, email_key, display_name, password_hash, platform_admin)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (email_key) DO NOTHING
         RETURNING id",
    )
    .bind(new.email.trim())
    .bind(email_key(new.email))
    .bind(new.display_name.trim())
    .bind(new.password_hash)
    .bind(new.platform_admin)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(id) = created {
        return Ok((id, true));
    }
    let id = sqlx::query_scalar("SELECT id FROM users WHERE email_key = $1")
        .bind(email_key(new.email))
        .fetch_one(conn)
        .await?;
    Ok((id, false))
}

/// Sets a user's password hash and revokes every session of the user.
pub async fn set_password(
    conn: &mut PgConnection,
    user: UserId,
    password_hash: &str,
) -> Result<(), DbError> {
    sqlx::query("UPDATE users SET password_hash = $2 WHERE id = $1")
        .bind(user)
        .bind(password_hash)
        .execute(&mut *conn)
        .await?;
    revoke_user_sessions(conn, user).await
}

/// Makes a user a platform administrator (or not).
pub async fn set_platform_admin(
    conn: &mut PgConnection,
    user: UserId,
    admin: bool,
) -> Result<(), DbError> {
    sqlx::query("UPDATE users SET platform_admin = $2 WHERE id = $1")
        .bind(user)
        .bind(admin)
        .execute(conn)
        .await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Memberships
// ---------------------------------------------------------------------------------------

/// One tenant a user belongs to, as authorization needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    /// Tenant id.
    pub tenant_id: TenantId,
    /// Tenant slug.
    pub tenant_slug: String,
    /// The user's role there.
    pub role: Role,
}

/// Every tenant the user belongs to (owner connection).
pub async fn memberships_of(
    conn: &mut PgConnection,
    user: UserId,
) -> Result<Vec<Membership>, DbError> {
    let rows = sqlx::query(
        "SELECT m.tenant_id, t.slug, m.role FROM memberships m
         JOIN tenants t ON t.id = m.tenant_id
         WHERE m.user_id = $1 ORDER BY t.slug",
    )
    .bind(user)
    .fetch_all(conn)
    .await?;
    collect(&rows, |r| {
        Ok(Membership {
            tenant_id: r.try_get("tenant_id")?,
            tenant_slug: r.try_get("slug")?,
            role: role_of(r, "role")?,
        })
    })
}

/// Gives a user a role in a tenant (replacing the role it had). Returns the previous role.
pub async fn set_membership(
    conn: &mut PgConnection,
    tenant: TenantId,
    user: UserId,
    role: Role,
) -> Result<Option<Role>, DbError> {
    let before: Option<String> = sqlx::query_scalar(
        "SELECT role FROM memberships WHERE tenant_id = $1 AND user_id = $2 FOR UPDATE",
    )
    .bind(tenant)
    .bind(user)
    .fetch_optional(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO memberships (tenant_id, user_id, role) VALUES ($1, $2, $3)
         ON CONFLICT (tenant_id, user_id) DO UPDATE SET role = excluded.role",
    )
    .bind(tenant)
    .bind(user)
    .bind(role.as_str())
    .execute(conn)
    .await?;
    Ok(before.as_deref().and_then(Role::parse))
}

/// Removes a user from a tenant. Returns the role it had, `None` if it was no member.
pub async fn remove_membership(
    conn: &mut PgConnection,
    tenant: TenantId,
    user: UserId,
) -> Result<Option<Role>, DbError> {
    let role: Option<String> = sqlx::query_scalar(
        "DELETE FROM memberships WHERE tenant_id = $1 AND user_id = $2 RETURNING role",
    )
    .bind(tenant)
    .bind(user)
    .fetch_optional(conn)
    .await?;
    Ok(role.as_deref().and_then(Role::parse))
}

/// A member of a tenant as its administrators see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// User id.
    pub user_id: UserId,
    /// Email.
    pub email: String,
    /// Display name.
    pub display_name: String,
    /// Role in the tenant.
    pub role: Role,
    /// When the membership was granted.
    pub since: DateTime<Utc>,
}

/// One page of a tenant's members, by user id after `after` (tenant-scoped transaction).
pub async fn members(
    conn: &mut PgConnection,
    tenant: TenantId,
    after: Option<UserId>,
    limit: u32,
) -> Result<Vec<Member>, DbError> {
    let rows = sqlx::query(
        "SELECT m.user_id, u.email, u.display_name, m.role, m.created_at
         FROM memberships m JOIN users u ON u.id = m.user_id
         WHERE m.tenant_id = $1 AND ($2::bigint IS NULL OR m.user_id > $2)
         ORDER BY m.user_id LIMIT $3",
    )
    .bind(tenant)
    .bind(after)
    .bind(i64::from(limit))
    .fetch_all(conn)
    .await?;
    collect(&rows, |r| {
        Ok(Member {
            user_id: r.try_get("user_id")?,
            email: r.try_get("email")?,
            display_name: r.try_get("display_name")?,
            role: role_of(r, "role")?,
            since: r.try_get("created_at")?,
        })
    })
}

/// One member of a tenant (tenant-scoped transaction).
pub async fn member(
    conn: &mut PgConnection,
    tenant: TenantId,
    user: UserId,
) -> Result<Option<Member>, DbError> {
    let row = sqlx::query(
        "SELECT m.user_id, u.email, u.display_name, m.role, m.created_at
         FROM memberships m JOIN users u ON u.id = m.user_id
         WHERE m.tenant_id = $1 AND m.user_id = $2",
    )
    .bind(tenant)
    .bind(user)
    .fetch_optional(conn)
    .await?;
    row.map(|r| {
        Ok(Member {
            user_id: r.try_get("user_id")?,
            email: r.try_get("email")?,
            display_name: r.try_get("display_name")?,
            role: role_of(&r, "role")?,
            since: r.try_get("created_at")?,
        })
    })
    .transpose()
    .map_err(|e: sqlx::Error| e.into())
}

/// How many members of a tenant have `role`.
pub async fn count_role(
    conn: &mut PgConnection,
    tenant: TenantId,
    role: Role,
) -> Result<i64, DbError> {
    Ok(
        sqlx::query_scalar("SELECT count(*) FROM memberships WHERE tenant_id = $1 AND role = $2")
            .bind(tenant)
            .bind(role.as_str())
            .fetch_one(conn)
            .await?,
    )
}

// ---------------------------------------------------------------------------------------
// Sessions
// ---------------------------------------------------------------------------------------

/// A token pair to store (digests only).
#[derive(Debug, Clone)]
pub struct NewSession<'a> {
    /// The user signing in.
    pub user: UserId,
    /// Digest of the access token.
    pub access_hash: &'a [u8],
    /// When the access token stops working.
    pub access_expires_at: DateTime<Utc>,
    /// Digest of the refresh token.
    pub refresh_hash: &'a [u8],
    /// When the refresh token (and so the family) stops working.
    pub refresh_expires_at: DateTime<Utc>,
    /// Where the request came from.
    pub client_addr: Option<&'a str>,
}

/// Stores the first pair of a new family (a sign-in). Returns the family.
pub async fn start_session(conn: &mut PgConnection, new: &NewSession<'_>) -> Result<Uuid, DbError> {
    let family = Uuid::new_v4();
    insert_pair(conn, family, new).await?;
    Ok(family)
}

async fn insert_pair(
    conn: &mut PgConnection,
    family: Uuid,
    new: &NewSession<'_>,
) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO auth_sessions (family, user_id, access_hash, access_expires_at,
                                    refresh_hash, refresh_expires_at, client_addr)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(family)
    .bind(new.user)
    .bind(new.access_hash)
    .bind(new.access_expires_at)
    .bind(new.refresh_hash)
    .bind(new.refresh_expires_at)
    .bind(new.client_addr)
    .execute(conn)
    .await?;
    Ok(())
}

/// What presenting a refresh token did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refresh {
    /// The next pair was stored; the presented one is rotated.
    Rotated {
        /// The user.
        user: UserId,
        /// The family, unchanged.
        family: Uuid,
    },
    /// The token had been used (or its family revoked) before: the family is revoked now.
    Reused {
        /// The user.
        user: UserId,
        /// The revoked family.
        family: Uuid,
    },
    /// No such token, or it expired.
    Invalid,
}

/// Exchanges a refresh token (by digest) for the pair in `next` (whose `user` is
/// ignored: the family's user is kept). Run in a transaction: the presented row is locked.
pub async fn rotate_refresh(
    conn: &mut PgConnection,
    refresh_hash: &[u8],
    next: &NewSession<'_>,
    now: DateTime<Utc>,
) -> Result<Refresh, DbError> {
    let row = sqlx::query(
        "SELECT id, family, user_id, refresh_expires_at, rotated_at IS NOT NULL AS rotated,
                revoked_at IS NOT NULL AS revoked
         FROM auth_sessions WHERE refresh_hash = $1 FOR UPDATE",
    )
    .bind(refresh_hash)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else {
        return Ok(Refresh::Invalid);
    };
    let id: i64 = row.try_get("id")?;
    let family: Uuid = row.try_get("family")?;
    let user: UserId = row.try_get("user_id")?;
    let expires: DateTime<Utc> = row.try_get("refresh_expires_at")?;
    if row.try_get::<bool, _>("rotated")? || row.try_get::<bool, _>("revoked")? {
        revoke_family(conn, family).await?;
        return Ok(Refresh::Reused { user, family });
    }
    if expires <= now {
        return Ok(Refresh::Invalid);
    }
    // The old access token ends with the rotation: one live pair per family.
    sqlx::query("UPDATE auth_sessions SET rotated_at = $2, access_expires_at = least(access_expires_at, $2) WHERE id = $1")
        .bind(id)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    let next = NewSession {
        user,
        // A family never outlives its first refresh token's lifetime window: rotation
        // extends it by the configured lifetime from now, as issued by the caller.
        ..next.clone()
    };
    insert_pair(conn, family, &next).await?;
    Ok(Refresh::Rotated { user, family })
}

/// The session behind an access token (by digest), if it is live at `now`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveSession {
    /// The user.
    pub user: UserId,
    /// The family (what sign-out revokes).
    pub family: Uuid,
    /// When the access token expires.
    pub access_expires_at: DateTime<Utc>,
}

/// Looks up a live access token: not expired, not rotated away, not revoked.
pub async fn live_session(
    conn: &mut PgConnection,
    access_hash: &[u8],
    now: DateTime<Utc>,
) -> Result<Option<LiveSession>, DbError> {
    let row = sqlx::query(
        "SELECT user_id, family, access_expires_at FROM auth_sessions
         WHERE access_hash = $1 AND revoked_at IS NULL AND access_expires_at > $2",
    )
    .bind(access_hash)
    .bind(now)
    .fetch_optional(conn)
    .await?;
    row.map(|r| {
        Ok(LiveSession {
            user: r.try_get("user_id")?,
            family: r.try_get("family")?,
            access_expires_at: r.try_get("access_expires_at")?,
        })
    })
    .transpose()
    .map_err(|e: sqlx::Error| e.into())
}

/// Revokes every pair of a family (sign-out, refresh-token reuse).
pub async fn revoke_family(conn: &mut PgConnection, family: Uuid) -> Result<(), DbError> {
    sqlx::query(
        "UPDATE auth_sessions SET revoked_at = now() WHERE family = $1 AND revoked_at IS NULL",
    )
    .bind(family)
    .execute(conn)
    .await?;
    Ok(())
}

/// Revokes every session of a user (password changed, user disabled).
pub async fn revoke_user_sessions(conn: &mut PgConnection, user: UserId) -> Result<(), DbError> {
    sqlx::query(
        "UPDATE auth_sessions SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL",
    )
    .bind(user)
    .execute(conn)
    .await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Sign-in throttling
// ---------------------------------------------------------------------------------------

/// How failed sign-ins lock an address: after `free_failures` failures within
/// `window`, each further failure locks it for `base_lock` doubled per extra failure, at
/// most `max_lock`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottlePolicy {
    /// Failures allowed before the first lock.
    pub free_failures: i32,
    /// Failures older than this are forgotten.
    pub window: chrono::TimeDelta,
    /// First lock duration.
    pub base_lock: chrono::TimeDelta,
    /// Longest lock.
    pub max_lock: chrono::TimeDelta,
}

/// Until when sign-ins for this email are refused, if they are at `now`.
pub async fn sign_in_locked_until(
    conn: &mut PgConnection,
    email: &str,
    now: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, DbError> {
    let until: Option<Option<DateTime<Utc>>> =
        sqlx::query_scalar("SELECT locked_until FROM sign_in_failures WHERE email_key = $1")
            .bind(email_key(email))
            .fetch_optional(conn)
            .await?;
    Ok(until.flatten().filter(|t| *t > now))
}

/// Counts a failed sign-in for this email (known or not); returns the lock it now has.
pub async fn record_sign_in_failure(
    conn: &mut PgConnection,
    email: &str,
    now: DateTime<Utc>,
    policy: &ThrottlePolicy,
) -> Result<Option<DateTime<Utc>>, DbError> {
    let failures: i32 = sqlx::query_scalar(
        "INSERT INTO sign_in_failures (email_key, failures, last_failure_at)
         VALUES ($1, 1, $2)
         ON CONFLICT (email_key) DO UPDATE SET
             failures = CASE WHEN sign_in_failures.last_failure_at < $2 - $3::interval
                             THEN 1 ELSE sign_in_failures.failures + 1 END,
             last_failure_at = $2
         RETURNING failures",
    )
    .bind(email_key(email))
    .bind(now)
    .bind(interval(policy.window))
    .fetch_one(&mut *conn)
    .await?;
    let over = failures - policy.free_failures;
    if over <= 0 {
        return Ok(None);
    }
    let factor = 1i32 << (over - 1).min(20);
    let lock = (policy.base_lock * factor).min(policy.max_lock);
    let until = now + lock;
    sqlx::query("UPDATE sign_in_failures SET locked_until = $2 WHERE email_key = $1")
        .bind(email_key(email))
        .bind(until)
        .execute(conn)
        .await?;
    Ok(Some(until))
}

/// Forgets the failures of an email after a successful sign-in.
pub async fn clear_sign_in_failures(conn: &mut PgConnection, email: &str) -> Result<(), DbError> {
    sqlx::query("DELETE FROM sign_in_failures WHERE email_key = $1")
        .bind(email_key(email))
        .execute(conn)
        .await?;
    Ok(())
}

fn interval(d: chrono::TimeDelta) -> String {
    format!("{} milliseconds", d.num_milliseconds())
}

// ---------------------------------------------------------------------------------------
// One-time tokens
// ---------------------------------------------------------------------------------------

/// What a one-time token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenPurpose {
    /// Join a tenant with a role (and set a password if the user has none).
    Invitation {
        /// The tenant.
        tenant: TenantId,
        /// The role granted.
        role: Role,
    },
    /// Set a new password.
    PasswordReset,
}

impl TokenPurpose {
    fn name(self) -> &'static str {
        match self {
            TokenPurpose::Invitation { .. } => "invitation",
            TokenPurpose::PasswordReset => "password_reset",
        }
    }
}

/// Stores a one-time token (by digest).
pub async fn insert_one_time_token(
    conn: &mut PgConnection,
    token_hash: &[u8],
    user: UserId,
    purpose: TokenPurpose,
    expires_at: DateTime<Utc>,
) -> Result<(), DbError> {
    let (tenant, role) = match purpose {
        TokenPurpose::Invitation { tenant, role } => (Some(tenant), Some(role.as_str())),
        TokenPurpose::PasswordReset => (None, None),
    };
    sqlx::query(
        "INSERT INTO one_time_tokens (token_hash, purpose, user_id, tenant_id, role, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(token_hash)
    .bind(purpose.name())
    .bind(user)
    .bind(tenant)
    .bind(role)
    .bind(expires_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// A consumed one-time token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsedToken {
    /// The user it was issued to.
    pub user: UserId,
    /// What it was for.
    pub purpose: TokenPurpose,
}

/// Uses a one-time token of the given kind (`invitation` or `password_reset` as in
/// [`TokenPurpose`]): succeeds once, before it expires.
pub async fn consume_one_time_token(
    conn: &mut PgConnection,
    token_hash: &[u8],
    invitation: bool,
    now: DateTime<Utc>,
) -> Result<Option<UsedToken>, DbError> {
    let purpose = if invitation {
        "invitation"
    } else {
        "password_reset"
    };
    let row = sqlx::query(
        "UPDATE one_time_tokens SET used_at = $3
         WHERE token_hash = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > $3
         RETURNING user_id, tenant_id, role",
    )
    .bind(token_hash)
    .bind(purpose)
    .bind(now)
    .fetch_optional(conn)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let user: UserId = row.try_get("user_id")?;
    let purpose = if invitation {
        TokenPurpose::Invitation {
            tenant: row.try_get("tenant_id")?,
            role: role_of(&row, "role")?,
        }
    } else {
        TokenPurpose::PasswordReset
    };
    Ok(Some(UsedToken { user, purpose }))
}

// ---------------------------------------------------------------------------------------
// API keys
// ---------------------------------------------------------------------------------------

/// An API key as its tenant's administrators see it (never its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// Database id.
    pub id: ApiKeyId,
    /// The public prefix (`wpk_<prefix>_…`).
    pub prefix: String,
    /// Name given at creation.
    pub name: String,
    /// Role it acts with.
    pub role: Role,
    /// Who created it (an actor string of the audit log).
    pub created_by: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it stops working, if ever.
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was last used (recorded at most once a minute).
    pub last_used_at: Option<DateTime<Utc>>,
    /// When it was revoked.
    pub revoked_at: Option<DateTime<Utc>>,
}

const API_KEY_COLUMNS: &str =
    "id, prefix, name, role, created_by, created_at, expires_at, last_used_at, revoked_at";

fn api_key(row: &PgRow) -> Result<ApiKey, sqlx::Error> {
    Ok(ApiKey {
        id: row.try_get("id")?,
        prefix: row.try_get("prefix")?,
        name: row.try_get("name")?,
        role: role_of(row, "role")?,
        created_by: row.try_get("created_by")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        last_used_at: row.try_get("last_used_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

/// A key to create (the secret only as its digest).
#[derive(Debug, Clone)]
pub struct NewApiKey<'a> {
    /// Public prefix: 12 lower-case hex digits.
    pub prefix: &'a str,
    /// Digest of the secret part.
    pub secret_hash: &'a [u8],
    /// Name (1–100 characters).
    pub name: &'a str,
    /// Role.
    pub role: Role,
    /// Actor creating it.
    pub created_by: &'a str,
    /// Expiry.
    pub expires_at: Option<DateTime<Utc>>,
}

/// Creates an API key of `tenant` (tenant-scoped transaction).
pub async fn create_api_key(
    conn: &mut PgConnection,
    tenant: TenantId,
    new: &NewApiKey<'_>,
) -> Result<ApiKey, DbError> {
    let name = new.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(DbError::invalid(
            "API key name",
            "must be 1 to 100 characters",
        ));
    }
    let row = sqlx::query(&format!(
        "INSERT INTO api_keys (tenant_id, prefix, secret_hash, name, role, created_by, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {API_KEY_COLUMNS}"
    ))
    .bind(tenant)
    .bind(new.prefix)
    .bind(new.secret_hash)
    .bind(name)
    .bind(new.role.as_str())
    .bind(new.created_by)
    .bind(new.expires_at)
    .fetch_one(conn)
    .await?;
    Ok(api_key(&row)?)
}

/// One page of a tenant's keys by id after `after` (tenant-scoped transaction).
pub async fn api_keys(
    conn: &mut PgConnection,
    tenant: TenantId,
    after: Option<ApiKeyId>,
    limit: u32,
) -> Result<Vec<ApiKey>, DbError> {
    let rows = sqlx::query(&format!(
        "SELECT {API_KEY_COLUMNS} FROM api_keys
         WHERE tenant_id = $1 AND ($2::bigint IS NULL OR id > $2) ORDER BY id LIMIT $3"
    ))
    .bind(tenant)
    .bind(after)
    .bind(i64::from(limit))
    .fetch_all(conn)
    .await?;
    collect(&rows, api_key)
}

/// Revokes a key of `tenant` (tenant-scoped transaction). Returns the key before and
/// after, `None` if the tenant has no such key.
pub async fn revoke_api_key(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: ApiKeyId,
) -> Result<Option<(ApiKey, ApiKey)>, DbError> {
    let before = sqlx::query(&format!(
        "SELECT {API_KEY_COLUMNS} FROM api_keys WHERE tenant_id = $1 AND id = $2 FOR UPDATE"
    ))
    .bind(tenant)
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(before) = before else {
        return Ok(None);
    };
    let after = sqlx::query(&format!(
        "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now())
         WHERE tenant_id = $1 AND id = $2 RETURNING {API_KEY_COLUMNS}"
    ))
    .bind(tenant)
    .bind(id)
    .fetch_one(conn)
    .await?;
    Ok(Some((api_key(&before)?, api_key(&after)?)))
}

/// A key as authentication needs it (owner connection).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyAuth {
    /// Database id.
    pub id: ApiKeyId,
    /// Tenant it belongs to.
    pub tenant_id: TenantId,
    /// Tenant slug.
    pub tenant_slug: String,
    /// Digest of its secret.
    pub secret_hash: Vec<u8>,
    /// Role.
    pub role: Role,
    /// Expiry.
    pub expires_at: Option<DateTime<Utc>>,
    /// Whether it was revoked.
    pub revoked: bool,
}

/// The key with this prefix.
pub async fn api_key_by_prefix(
    conn: &mut PgConnection,
    prefix: &str,
) -> Result<Option<KeyAuth>, DbError> {
    let row = sqlx::query(
        "SELECT k.id, k.tenant_id, t.slug, k.secret_hash, k.role, k.expires_at,
                k.revoked_at IS NOT NULL AS revoked
         FROM api_keys k JOIN tenants t ON t.id = k.tenant_id WHERE k.prefix = $1",
    )
    .bind(prefix)
    .fetch_optional(conn)
    .await?;
    row.map(|r| {
        Ok(KeyAuth {
            id: r.try_get("id")?,
            tenant_id: r.try_get("tenant_id")?,
            tenant_slug: r.try_get("slug")?,
            secret_hash: r.try_get("secret_hash")?,
            role: role_of(&r, "role")?,
            expires_at: r.try_get("expires_at")?,
            revoked: r.try_get("revoked")?,
        })
    })
    .transpose()
    .map_err(|e: sqlx::Error| e.into())
}

/// Records that a key was used (owner connection; callers throttle how often).
pub async fn touch_api_key(
    conn: &mut PgConnection,
    id: ApiKeyId,
    at: DateTime<Utc>,
) -> Result<(), DbError> {
    sqlx::query("UPDATE api_keys SET last_used_at = greatest(last_used_at, $2) WHERE id = $1")
        .bind(id)
        .bind(at)
        .execute(conn)
        .await?;
    Ok(())
}
