//! Authentication and authorization: one layer, driven by the OpenAPI document.
//!
//! # Where each route's rule comes from
//!
//! Every operation declares its access in its `#[utoipa::path]` with `security(...)`:
//!
//! | declaration                               | [`Policy`]         | who may call              |
//! |-------------------------------------------|--------------------|---------------------------|
//! | `security(())`                            | `Public`           | anyone                    |
//! | `security(("bearer" = []))`               | `SignedIn`         | any valid credential      |
//! | `security(("bearer" = ["viewer"]))` etc.  | `Tenant(role)`     | that role or more in `{tenant}` |
//! | `security(("bearer" = ["platform_admin"]))` | `Platform`       | platform administrators   |
//!
//! [`PolicyTable::from_spec`] reads those declarations from the same document the routes
//! are registered with, and refuses to build a router with an operation that declares
//! nothing: the documentation and the enforcement are one thing, and a new route cannot be
//! forgotten (the route-coverage test reads the same document from the outside).
//!
//! # The layer ([`authorize`])
//!
//! For the matched route: public → pass. Otherwise the `Authorization: Bearer` credential
//! is authenticated (an access token or an API key, see [`crate::credentials`]) into a
//! [`Principal`] — 401 if missing, malformed, expired or revoked — and rate-limited per
//! principal (429). A tenant route then resolves `{tenant}`: an unknown tenant and a tenant
//! the principal has no role in both answer **404** (ids do not leak); a suspended tenant
//! answers 403 `tenant_suspended` (platform administrators excepted); a role below the
//! declared one answers 403 `forbidden`; the tenant's own rate limit applies (429). The
//! grant goes into the request for [`crate::TenantScope`], and the principal for
//! [`Caller`] (who, from where, which request: what the audit log records).
//!
//! # Revocation takes effect at once
//!
//! Principals and tenants are cached per instance, keyed by the credential's digest, so
//! an authenticated request costs no database round trip. The cache is only used while
//! this instance listens on PostgreSQL channel `wellpulse_auth`, which triggers notify on
//! every change that narrows access (sign-out, refresh reuse, role change, key revoked,
//! tenant suspended, password reset); each notification empties the cache. When the
//! listening connection is lost the cache is emptied and bypassed until it is back, so a
//! missed notification can never keep a revoked credential alive. The instance that makes
//! such a change also empties its own cache right after the commit, so the change holds
//! from its very next request; other instances follow within the notification's latency.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, FromRequestParts, MatchedPath, RawPathParams, Request, State};
use axum::http::request::Parts;
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::Response;
use chrono::{DateTime, Utc};
use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde_json::Value as Json;
use utoipa::openapi::OpenApi as Spec;
use uuid::Uuid;

use base::ct_eq;
use store::audit::AuditEntry;
use store::identity::{self, Membership, Role, digest};
use store::notify::Notice;
use store::tenants::{self, TenantAccess, TenantStatus};
use store::{ApiKeyId, Db, DbError, TenantId, UserId};

use crate::credentials::{self, ACCESS_PREFIX, KEY_PREFIX};
use crate::error::current_request_id;
use crate::extract::TenantGrant;
use crate::{ApiError, ApiState};

/// Options of authentication and rate limiting (part of `[api]` in `cloud.toml`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthOptions {
    /// How long an access token works.
    pub access_ttl: Duration,
    /// How long a refresh token works (and so a session without activity).
    pub refresh_ttl: Duration,
    /// How long an invitation link works.
    pub invitation_ttl: Duration,
    /// How long a password-reset link works.
    pub reset_ttl: Duration,
    /// Failed sign-ins of one email allowed before it is locked.
    pub sign_in_free_failures: u32,
    /// First lock after too many failures; doubles with each further failure.
    pub sign_in_base_lock: Duration,
    /// Longest lock.
    pub sign_in_max_lock: Duration,
    /// Requests per minute one principal (user session or API key) may make.
    pub principal_requests_per_minute: u32,
    /// Requests per minute all principals of one tenant may make together.
    pub tenant_requests_per_minute: u32,
    /// Sign-in, refresh and reset requests per minute from one client address.
    pub public_requests_per_minute: u32,
}

impl Default for AuthOptions {
    fn default() -> Self {
        AuthOptions {
            access_ttl: Duration::from_secs(15 * 60),
            refresh_ttl: Duration::from_secs(30 * 24 * 3600),
            invitation_ttl: Duration::from_secs(7 * 24 * 3600),
            reset_ttl: Duration::from_secs(3600),
            sign_in_free_failures: 5,
            sign_in_base_lock: Duration::from_secs(30),
            sign_in_max_lock: Duration::from_secs(15 * 60),
            principal_requests_per_minute: 1200,
            tenant_requests_per_minute: 6000,
            public_requests_per_minute: 60,
        }
    }
}

impl AuthOptions {
    /// The sign-in throttling policy of the store.
    pub(crate) fn throttle(&self) -> identity::ThrottlePolicy {
        let delta = |d: Duration| chrono::TimeDelta::from_std(d).unwrap_or(chrono::TimeDelta::MAX);
        identity::ThrottlePolicy {
            free_failures: i32::try_from(self.sign_in_free_failures).unwrap_or(i32::MAX),
            window: delta(self.sign_in_max_lock.max(Duration::from_secs(900))),
            base_lock: delta(self.sign_in_base_lock),
            max_lock: delta(self.sign_in_max_lock),
        }
    }
}

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// How the caller is named in the audit log: `user:<id> <email>` or `key:<prefix>`.
    pub actor: String,
    /// A person or a machine.
    pub kind: PrincipalKind,
    /// Administers the platform (every tenant, platform routes).
    pub platform_admin: bool,
    /// The tenants the principal has a role in.
    pub grants: Vec<Membership>,
    /// When the credential stops working.
    pub expires_at: Option<DateTime<Utc>>,
}

/// A person (session) or a machine (API key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrincipalKind {
    /// A signed-in user.
    User {
        /// The user.
        id: UserId,
        /// The session family (what sign-out revokes).
        family: Uuid,
    },
    /// An API key.
    ApiKey {
        /// The key.
        id: ApiKeyId,
    },
}

impl Principal {
    /// The role this principal has in `tenant` (platform administrators: tenant admin).
    pub fn role_in(&self, tenant: TenantId) -> Option<Role> {
        let granted = self
            .grants
            .iter()
            .find(|g| g.tenant_id == tenant)
            .map(|g| g.role);
        if self.platform_admin {
            Some(Role::TenantAdmin)
        } else {
            granted
        }
    }

    fn rate_key(&self) -> String {
        self.actor.split(' ').next().unwrap_or_default().to_owned()
    }
}

/// What an operation requires (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Anyone.
    Public,
    /// Any valid credential.
    SignedIn,
    /// At least this role in the path's `{tenant}`.
    Tenant(Role),
    /// A platform administrator.
    Platform,
}

/// Name of the security scheme every operation refers to.
pub const BEARER: &str = "bearer";
/// The scope that marks platform-administrator operations.
pub const PLATFORM_SCOPE: &str = "platform_admin";

/// The policy of every operation, by method and path template.
#[derive(Debug, Clone, Default)]
pub struct PolicyTable(HashMap<(Method, String), Policy>);

impl PolicyTable {
    /// Reads every operation's declared security. Panics on an operation that declares
    /// none or declares something this layer does not know: a router with an unprotected
    /// route by omission must not start (every test would fail first).
    pub fn from_spec(spec: &Spec) -> PolicyTable {
        let mut table = HashMap::new();
        for (path, item) in &spec.paths.paths {
            for (method, op) in operations(item) {
                let policy = policy_of(path, op)
                    .unwrap_or_else(|problem| panic!("{method} {path}: {problem}"));
                table.insert((method, path.clone()), policy);
            }
        }
        PolicyTable(table)
    }

    /// Marks a route that is not an operation (a docs page file) public.
    pub fn insert_public(&mut self, path: &str) {
        self.0
            .insert((Method::GET, path.to_owned()), Policy::Public);
    }

    /// The policy of a route.
    pub fn get(&self, method: &Method, path: &str) -> Option<Policy> {
        self.0.get(&(method.clone(), path.to_owned())).copied()
    }
}

/// The operations of a path item with their methods.
pub fn operations(
    item: &utoipa::openapi::PathItem,
) -> impl Iterator<Item = (Method, &utoipa::openapi::path::Operation)> {
    [
        (Method::GET, &item.get),
        (Method::POST, &item.post),
        (Method::PUT, &item.put),
        (Method::PATCH, &item.patch),
        (Method::DELETE, &item.delete),
        (Method::HEAD, &item.head),
        (Method::OPTIONS, &item.options),
    ]
    .into_iter()
    .filter_map(|(m, op)| op.as_ref().map(|op| (m, op)))
}

/// The policy an operation declares.
pub fn policy_of(path: &str, op: &utoipa::openapi::path::Operation) -> Result<Policy, String> {
    let requirements = op
        .security
        .as_ref()
        .ok_or("declares no `security` (use `security(())` for a public operation)")?;
    let value = serde_json::to_value(requirements).map_err(|e| e.to_string())?;
    let list = value.as_array().cloned().unwrap_or_default();
    if list
        .iter()
        .any(|r| r.as_object().is_some_and(|o| o.is_empty()))
    {
        return Ok(Policy::Public);
    }
    let [requirement] = list.as_slice() else {
        return Err(format!("expected one security requirement, got {value}"));
    };
    let scopes: Vec<String> = requirement
        .get(BEARER)
        .and_then(Json::as_array)
        .ok_or_else(|| format!("security requirement {requirement} is not `{BEARER}`"))?
        .iter()
        .filter_map(|s| s.as_str().map(str::to_owned))
        .collect();
    let tenant_path = path.contains("{tenant}");
    match scopes.as_slice() {
        [] if !tenant_path => Ok(Policy::SignedIn),
        [scope] if scope == PLATFORM_SCOPE && !tenant_path => Ok(Policy::Platform),
        [scope] if tenant_path => Role::parse(scope)
            .map(Policy::Tenant)
            .ok_or_else(|| format!("unknown role `{scope}`")),
        _ => Err(format!(
            "scopes {scopes:?} do not fit the path (a `{{tenant}}` path needs exactly one role)"
        )),
    }
}

/// Adds the answers of this layer to every operation that does not document them: 401
/// and 429 wherever a credential is needed, 403 where a role is (and a suspended tenant),
/// 404 for a tenant route (unknown tenant, or one the caller has no role in), and 503
/// where the database is read to authorize. Each with the JSON error body.
pub(crate) fn document_access_responses(spec: &mut Spec) {
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
    let error = |description: &str| {
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorResponse")))
                    .build(),
            )
            .build()
    };
    for (path, item) in spec.paths.paths.iter_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for op in operations.into_iter().flatten() {
            let Ok(policy) = policy_of(path, op) else {
                continue;
            };
            let mut add = |status: &str, description: &str| {
                op.responses
                    .responses
                    .entry(status.to_owned())
                    .or_insert_with(|| error(description).into());
            };
            if policy == Policy::Public {
                continue;
            }
            add(
                "401",
                "No credentials, or an expired, revoked or unknown one",
            );
            add(
                "429",
                "Rate limit of the credential or the tenant exceeded; see `Retry-After`",
            );
            add("503", "Database unavailable or request timed out");
            match policy {
                Policy::Tenant(_) => {
                    add(
                        "403",
                        "The credential's role in the tenant is not enough, or the tenant is suspended",
                    );
                    add(
                        "404",
                        "Unknown tenant, or one this credential has no role in",
                    );
                }
                Policy::Platform => add("403", "Not a platform administrator"),
                Policy::Public | Policy::SignedIn => {}
            }
        }
    }
}

type KeyedLimiter<K> = DefaultKeyedRateLimiter<K>;

/// Authentication state of one API instance: caches, limiters, the options.
pub(crate) struct Access {
    db: Db,
    pub(crate) options: AuthOptions,
    principals: RwLock<HashMap<Vec<u8>, Principal>>,
    tenants: RwLock<HashMap<String, TenantAccess>>,
    listening: AtomicBool,
    per_principal: KeyedLimiter<String>,
    per_tenant: Mutex<HashMap<TenantId, (u32, Arc<DirectLimiter>)>>,
    per_address: KeyedLimiter<IpAddr>,
    key_touched: Mutex<HashMap<ApiKeyId, Instant>>,
    plans: std::collections::BTreeMap<String, tenants::PlanLimits>,
    /// Authenticated requests per tenant since the last flush to `tenant_usage_daily`.
    calls: Mutex<HashMap<TenantId, i64>>,
}

type DirectLimiter = governor::DefaultDirectRateLimiter;

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Access")
            .field("options", &self.options)
            .field("listening", &self.listening)
            .finish_non_exhaustive()
    }
}

/// Largest number of cached principals or tenants before the cache is emptied.
const CACHE_MAX: usize = 10_000;
/// How often an API key's `last_used_at` is written at most.
const KEY_TOUCH_EVERY: Duration = Duration::from_secs(60);
/// The channel the triggers notify.
const CHANNEL: &str = "wellpulse_auth";

fn direct(n: u32) -> DirectLimiter {
    let n = NonZeroU32::new(n.max(1)).expect("max(1) is not zero");
    RateLimiter::direct(Quota::per_minute(n))
}

fn per_minute<K: std::hash::Hash + Eq + Clone>(n: u32) -> KeyedLimiter<K> {
    let n = NonZeroU32::new(n.max(1)).expect("max(1) is not zero");
    RateLimiter::keyed(Quota::per_minute(n))
}

impl Access {
    pub(crate) fn new(
        db: Db,
        options: AuthOptions,
        plans: std::collections::BTreeMap<String, tenants::PlanLimits>,
    ) -> Access {
        Access {
            per_principal: per_minute(options.principal_requests_per_minute),
            per_tenant: Mutex::default(),
            per_address: per_minute(options.public_requests_per_minute),
            plans,
            calls: Mutex::default(),
            db,
            options,
            principals: RwLock::default(),
            tenants: RwLock::default(),
            listening: AtomicBool::new(false),
            key_touched: Mutex::default(),
        }
    }

    /// Empties the caches: a notification arrived, listening stopped, or a handler of this
    /// instance just committed a change that narrows access (it does not wait for its own
    /// notification to come back, so its next request already sees the change).
    pub(crate) fn forget(&self) {
        self.principals
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        self.tenants
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    fn caching(&self) -> bool {
        self.listening.load(Ordering::Acquire)
    }

    /// Listens for changes of access until the process ends; reconnects with backoff.
    pub(crate) async fn listen(self: Arc<Self>) {
        self.db
            .follow(CHANNEL, "access changes", |notice| match notice {
                // Whatever changed while nobody listened is forgotten with the cache.
                Notice::Connected => {
                    self.forget();
                    self.listening.store(true, Ordering::Release);
                }
                Notice::Payload(_) => self.forget(),
                Notice::Lost => {
                    self.listening.store(false, Ordering::Release);
                    self.forget();
                }
            })
            .await;
    }

    /// Authenticates a bearer credential.
    pub(crate) async fn authenticate(&self, token: &str) -> Result<Principal, ApiError> {
        let hash = digest(token);
        let now = Utc::now();
        if self.caching() {
            let cached = self
                .principals
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .get(&hash)
                .cloned();
            if let Some(p) = cached {
                if p.expires_at.is_none_or(|t| t > now) {
                    self.touch_key(&p);
                    return Ok(p);
                }
                return Err(expired());
            }
        }
        let principal = if credentials::is_token(token, ACCESS_PREFIX) {
            self.session_principal(&hash, now).await?
        } else if let Some(prefix) = credentials::api_key_prefix(token) {
            self.key_principal(prefix, &hash, now).await?
        } else if token.starts_with(KEY_PREFIX) || token.starts_with(ACCESS_PREFIX) {
            return Err(ApiError::Unauthenticated(
                "the bearer credential is malformed".to_owned(),
            ));
        } else {
            return Err(ApiError::Unauthenticated(
                "the bearer credential is neither an access token (wpat_…) nor an API key (wpk_…)"
                    .to_owned(),
            ));
        };
        let principal = principal.ok_or_else(expired)?;
        if self.caching() {
            let mut cache = self.principals.write().unwrap_or_else(|p| p.into_inner());
            if cache.len() >= CACHE_MAX {
                cache.clear();
            }
            cache.insert(hash, principal.clone());
        }
        self.touch_key(&principal);
        Ok(principal)
    }

    async fn session_principal(
        &self,
        hash: &[u8],
        now: DateTime<Utc>,
    ) -> Result<Option<Principal>, ApiError> {
        let mut conn = self.db.pool().acquire().await.map_err(DbError::from)?;
        let Some(session) = identity::live_session(&mut conn, hash, now).await? else {
            return Ok(None);
        };
        let Some(user) = identity::user_by_id(&mut conn, session.user).await? else {
            return Ok(None);
        };
        if user.disabled {
            return Ok(None);
        }
        let grants = identity::memberships_of(&mut conn, user.id).await?;
        Ok(Some(Principal {
            actor: format!("user:{} {}", user.id, user.email),
            kind: PrincipalKind::User {
                id: user.id,
                family: session.family,
            },
            platform_admin: user.platform_admin,
            grants,
            expires_at: Some(session.access_expires_at),
        }))
    }

    async fn key_principal(
        &self,
        prefix: &str,
        hash: &[u8],
        now: DateTime<Utc>,
    ) -> Result<Option<Principal>, ApiError> {
        let mut conn = self.db.pool().acquire().await.map_err(DbError::from)?;
        let Some(key) = identity::api_key_by_prefix(&mut conn, prefix).await? else {
            return Ok(None);
        };
        if !ct_eq(&key.secret_hash, hash) || key.revoked || key.expires_at.is_some_and(|t| t <= now)
        {
            return Ok(None);
        }
        Ok(Some(Principal {
            actor: format!("key:{prefix}"),
            kind: PrincipalKind::ApiKey { id: key.id },
            platform_admin: false,
            grants: vec![Membership {
                tenant_id: key.tenant_id,
                tenant_slug: key.tenant_slug,
                role: key.role,
            }],
            expires_at: key.expires_at,
        }))
    }

    /// Records an API key's use, at most once a minute per key, off the request path.
    fn touch_key(&self, principal: &Principal) {
        let PrincipalKind::ApiKey { id } = principal.kind else {
            return;
        };
        {
            let mut touched = self.key_touched.lock().unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            if touched
                .get(&id)
                .is_some_and(|t| now.duration_since(*t) < KEY_TOUCH_EVERY)
            {
                return;
            }
            if touched.len() >= CACHE_MAX {
                touched.clear();
            }
            touched.insert(id, now);
        }
        let db = self.db.clone();
        tokio::spawn(async move {
            let result = async {
                let mut conn = db.pool().acquire().await?;
                identity::touch_api_key(&mut conn, id, Utc::now()).await
            }
            .await;
            if let Err(error) = result {
                tracing::debug!(%error, "cannot record an API key's last use");
            }
        });
    }

    /// The tenant with this slug (cached like principals).
    async fn tenant(&self, slug: &str) -> Result<Option<TenantAccess>, ApiError> {
        if self.caching()
            && let Some(t) = self
                .tenants
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .get(slug)
        {
            return Ok(Some(t.clone()));
        }
        let mut conn = self.db.pool().acquire().await.map_err(DbError::from)?;
        let tenant = tenants::tenant_access(&mut conn, slug).await?;
        if self.caching()
            && let Some(t) = &tenant
        {
            let mut cache = self.tenants.write().unwrap_or_else(|p| p.into_inner());
            if cache.len() >= CACHE_MAX {
                cache.clear();
            }
            cache.insert(slug.to_owned(), t.clone());
        }
        Ok(tenant)
    }

    fn limit<K: std::hash::Hash + Eq + Clone>(
        limiter: &KeyedLimiter<K>,
        key: &K,
        what: &str,
    ) -> Result<(), ApiError> {
        limiter.check_key(key).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            ApiError::TooManyRequests {
                message: format!("rate limit of {what} exceeded; retry later"),
                retry_after: wait.max(Duration::from_secs(1)),
            }
        })
    }

    /// Applies the tenant's limit: its plan's `api_requests_per_minute`, else the
    /// configured `tenant_requests_per_minute`. Counts the call for usage.
    fn limit_tenant(&self, tenant: &TenantAccess) -> Result<(), ApiError> {
        let rate = self
            .plans
            .get(&tenant.plan)
            .and_then(|p| p.api_requests_per_minute)
            .unwrap_or(self.options.tenant_requests_per_minute);
        let limiter = {
            let mut limiters = self.per_tenant.lock().unwrap_or_else(|p| p.into_inner());
            let entry = limiters
                .entry(tenant.id)
                .or_insert_with(|| (0, Arc::new(direct(rate))));
            if entry.0 != rate {
                *entry = (rate, Arc::new(direct(rate)));
            }
            Arc::clone(&entry.1)
        };
        limiter.check().map_err(|not_until| ApiError::TooManyRequests {
            message: format!(
                "rate limit of tenant `{}` exceeded ({rate} requests per minute on plan `{}`); retry later",
                tenant.slug, tenant.plan
            ),
            retry_after: not_until
                .wait_time_from(DefaultClock::default().now())
                .max(Duration::from_secs(1)),
        })?;
        *self
            .calls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(tenant.id)
            .or_default() += 1;
        Ok(())
    }

    /// Adds the counted API calls to `tenant_usage_daily` every `every` until the process
    /// ends (a failed flush keeps the counts for the next one; at most `every` of counts
    /// is lost when the process stops).
    pub(crate) async fn flush_usage(self: Arc<Self>, every: Duration) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            self.flush_calls().await;
        }
    }

    /// Adds the counted API calls to the usage table now.
    pub(crate) async fn flush_calls(&self) {
        let counted = std::mem::take(&mut *self.calls.lock().unwrap_or_else(|p| p.into_inner()));
        if counted.is_empty() {
            return;
        }
        let day = Utc::now().date_naive();
        let result = async {
            let mut conn = self.db.pool().acquire().await?;
            for (tenant, calls) in &counted {
                store::usage::add_api_calls(&mut conn, *tenant, day, *calls).await?;
            }
            Ok::<_, DbError>(())
        }
        .await;
        if let Err(error) = result {
            tracing::warn!(%error, "cannot record API usage; kept for the next attempt");
            let mut calls = self.calls.lock().unwrap_or_else(|p| p.into_inner());
            for (tenant, n) in counted {
                *calls.entry(tenant).or_default() += n;
            }
        }
    }

    /// Applies the per-address limit of public authentication endpoints.
    pub(crate) fn limit_address(&self, addr: Option<IpAddr>) -> Result<(), ApiError> {
        match addr {
            Some(ip) => Access::limit(&self.per_address, &ip, "this client address"),
            None => Ok(()),
        }
    }
}

fn expired() -> ApiError {
    ApiError::Unauthenticated(
        "the credential is expired, revoked or unknown; sign in again".to_owned(),
    )
}

/// The bearer credential of a request, if any.
fn bearer(parts: &Parts) -> Result<Option<&str>, ApiError> {
    let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| {
        ApiError::Unauthenticated("the Authorization header is not text".to_owned())
    })?;
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => Ok(Some(token.trim())),
        _ => Err(ApiError::Unauthenticated(
            "the Authorization header must be `Bearer <token>`".to_owned(),
        )),
    }
}

/// Where a request comes from and its id: what the audit log records besides the actor
/// (the client address is absent when the server runs without connect info).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Origin {
    /// The client's address.
    pub(crate) ip: Option<IpAddr>,
    ip_text: Option<String>,
    request_id: String,
}

impl Origin {
    /// An audit entry of `actor` acting from here.
    pub(crate) fn audit<'a>(
        &'a self,
        actor: &'a str,
        tenant: Option<TenantId>,
        action: &'a str,
        target: &'a str,
        before: Option<Json>,
        after: Option<Json>,
    ) -> AuditEntry<'a> {
        AuditEntry {
            tenant,
            actor,
            action,
            target,
            before,
            after,
            client_addr: self.ip_text.as_deref(),
            request_id: Some(&self.request_id),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Origin {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let ip = client_ip(parts);
        Ok(Origin {
            ip,
            ip_text: ip.map(|ip| ip.to_string()),
            request_id: current_request_id(),
        })
    }
}

/// The client's address, when the server was started with connect info.
pub(crate) fn client_ip(parts: &Parts) -> Option<IpAddr> {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
}

/// What the layer needs: the state and the policy of every route.
#[derive(Debug, Clone)]
pub(crate) struct Guard {
    pub(crate) state: ApiState,
    pub(crate) policies: Arc<PolicyTable>,
}

/// The layer (see the module docs). Installed with `route_layer`, so the route is known.
pub(crate) async fn authorize(
    State(Guard { state, policies }): State<Guard>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let (mut parts, body) = request.into_parts();
    let path = parts
        .extensions
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let policy = policies
        .get(&parts.method, &path)
        .ok_or_else(|| ApiError::Internal(format!("no access policy for {path}").into()))?;
    if policy == Policy::Public {
        return Ok(next.run(Request::from_parts(parts, body)).await);
    }
    let access = state.access();
    let token = bearer(&parts)?.ok_or_else(|| {
        ApiError::Unauthenticated(
            "this operation needs `Authorization: Bearer <access token or API key>`".to_owned(),
        )
    })?;
    let principal = access.authenticate(token).await?;
    Access::limit(
        &access.per_principal,
        &principal.rate_key(),
        "this credential",
    )?;
    match policy {
        Policy::Public | Policy::SignedIn => {}
        Policy::Platform => {
            if !principal.platform_admin {
                return Err(ApiError::Forbidden(
                    "only platform administrators may do this".to_owned(),
                ));
            }
        }
        Policy::Tenant(needed) => {
            let (grant, tenant) = tenant_grant(&state, &mut parts, &principal, needed).await?;
            access.limit_tenant(&tenant)?;
            parts.extensions.insert(grant);
        }
    }
    parts.extensions.insert(principal);
    Ok(next.run(Request::from_parts(parts, body)).await)
}

async fn tenant_grant(
    state: &ApiState,
    parts: &mut Parts,
    principal: &Principal,
    needed: Role,
) -> Result<(TenantGrant, TenantAccess), ApiError> {
    let params = RawPathParams::from_request_parts(parts, &())
        .await
        .map_err(|r| ApiError::BadRequest(format!("invalid path: {}", r.body_text())))?;
    let slug = params
        .iter()
        .find(|(k, _)| *k == "tenant")
        .map(|(_, v)| v.to_owned())
        .ok_or_else(|| ApiError::Internal("tenant route without `{tenant}`".into()))?;
    crate::extract::check_slug("tenant", &slug)?;
    let not_found = || ApiError::NotFound(format!("tenant `{slug}`"));
    let tenant = state.access().tenant(&slug).await?.ok_or_else(not_found)?;
    let role = principal.role_in(tenant.id).ok_or_else(not_found)?;
    match tenant.status {
        TenantStatus::Deleted => return Err(not_found()),
        TenantStatus::Active => {}
        _ if principal.platform_admin => {}
        TenantStatus::Suspended => return Err(ApiError::TenantSuspended(slug)),
        TenantStatus::Deleting => return Err(ApiError::TenantDeleting(slug)),
    }
    if !role.includes(needed) {
        return Err(ApiError::Forbidden(format!(
            "this needs the `{needed}` role in tenant `{slug}`; this credential has `{role}`"
        )));
    }
    let grant = TenantGrant {
        id: tenant.id,
        slug,
        role,
        plan: tenant.plan.clone(),
    };
    Ok((grant, tenant))
}

/// The authenticated caller of a request, for handlers that act on its behalf and audit
/// what they do.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Who.
    pub principal: Principal,
    /// From where, under which request id.
    pub(crate) origin: Origin,
}

impl Caller {
    /// An audit entry of this caller.
    pub(crate) fn audit<'a>(
        &'a self,
        tenant: Option<TenantId>,
        action: &'a str,
        target: &'a str,
        before: Option<Json>,
        after: Option<Json>,
    ) -> AuditEntry<'a> {
        self.origin
            .audit(&self.principal.actor, tenant, action, target, before, after)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let principal = parts
            .extensions
            .get::<Principal>()
            .cloned()
            .ok_or_else(|| {
                ApiError::Internal("Caller used on a route the access layer does not guard".into())
            })?;
        let Ok(origin) = Origin::from_request_parts(parts, &()).await;
        Ok(Caller { principal, origin })
    }
}
