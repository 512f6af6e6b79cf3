//! The tenant lifecycle: create, list, suspend and reactivate, and the lookup every
//! authorized request makes ([`tenant_access`]).
//!
//! Plans: a tenant names its plan; the plan's quotas ([`PlanLimits`]) are configuration,
//! checked with [`check_quota`] in the transaction that would exceed them.
//!
//! A suspended tenant keeps all its data; its people get a 403 that says so, and its
//! gateways are refused at login. Changing the status notifies channel `wellpulse_auth`
//! (a trigger), so cached authorization everywhere sees it at once.

use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};

use crate::{DbError, TenantId, collect};

/// Whether a tenant may use the system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TenantStatus {
    /// In service.
    Active,
    /// Data kept, access refused.
    Suspended,
    /// Scheduled for deletion: access refused, data kept until the due time; can still be
    /// cancelled (reactivated).
    Deleting,
    /// Data exported and purged; the row remains (slug reserved, audit and usage kept).
    Deleted,
}

impl TenantStatus {
    /// The stored (and API) name.
    pub fn as_str(self) -> &'static str {
        match self {
            TenantStatus::Active => "active",
            TenantStatus::Suspended => "suspended",
            TenantStatus::Deleting => "deleting",
            TenantStatus::Deleted => "deleted",
        }
    }

    fn parse(raw: &str) -> Result<TenantStatus, sqlx::Error> {
        match raw {
            "active" => Ok(TenantStatus::Active),
            "suspended" => Ok(TenantStatus::Suspended),
            "deleting" => Ok(TenantStatus::Deleting),
            "deleted" => Ok(TenantStatus::Deleted),
            other => Err(sqlx::Error::ColumnDecode {
                index: "status".to_owned(),
                source: format!("unknown tenant status {other:?}").into(),
            }),
        }
    }
}

/// A tenant as authorization needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantAccess {
    /// Database id.
    pub id: TenantId,
    /// Slug (path and MQTT topic segment).
    pub slug: String,
    /// Status.
    pub status: TenantStatus,
    /// Plan name (its quotas are configuration).
    pub plan: String,
}

/// The quotas of a plan; `None` is unlimited.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlanLimits {
    /// Registered wells.
    pub max_wells: Option<u32>,
    /// Registered gateways.
    pub max_gateways: Option<u32>,
    /// Samples stored per UTC day (reported, never enforced by dropping data).
    pub max_samples_per_day: Option<u64>,
    /// API requests per minute for the whole tenant.
    pub api_requests_per_minute: Option<u32>,
    /// How long the tenant's telemetry history is kept
    /// ([`crate::maintenance::expire_plan_telemetry`]).
    pub retention: Option<std::time::Duration>,
}

/// A quota a request would exceed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaExceeded {
    /// Which quota: `wells` or `gateways`.
    pub quota: &'static str,
    /// The plan's limit.
    pub limit: u32,
    /// What the tenant has now.
    pub used: i64,
}

/// Checks that one more `quota` (`wells` or `gateways`) fits `limit` (run in the
/// transaction that adds it: a per-tenant transaction lock keeps two requests from both
/// taking the last one).
pub async fn check_quota(
    conn: &mut PgConnection,
    tenant: TenantId,
    quota: &'static str,
    limit: Option<u32>,
) -> Result<Result<(), QuotaExceeded>, DbError> {
    let Some(limit) = limit else {
        return Ok(Ok(()));
    };
    let table = match quota {
        "wells" => "wells",
        "gateways" => "gateways",
        other => {
            return Err(DbError::invalid(
                "quota",
                format!("unknown quota {other:?}"),
            ));
        }
    };
    // One quota check per tenant at a time, until the transaction ends (tenant-scoped
    // transactions may not lock the tenant row itself).
    sqlx::query("SELECT pg_advisory_xact_lock(1364543044, ($1 % 2147483647)::int)")
        .bind(tenant)
        .execute(&mut *conn)
        .await?;
    let used: i64 = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM {table} WHERE tenant_id = $1"
    ))
    .bind(tenant)
    .fetch_one(conn)
    .await?;
    Ok(if used < i64::from(limit) {
        Ok(())
    } else {
        Err(QuotaExceeded { quota, limit, used })
    })
}

/// Schedules a tenant's deletion at `due` (owner connection): access is refused from now
/// on, the data stays until the deletion job exports and purges it. Returns the tenant
/// before and after; `None` if there is no such tenant.
pub async fn schedule_deletion(
    conn: &mut PgConnection,
    slug: &str,
    due: DateTime<Utc>,
) -> Result<Option<(Tenant, Tenant)>, DbError> {
    let Some(before) = tenant_by_slug(conn, slug).await? else {
        return Ok(None);
    };
    if before.status == TenantStatus::Deleted {
        return Err(DbError::invalid(
            "tenant status",
            format!("tenant `{slug}` is already deleted"),
        ));
    }
    let after = sqlx::query(&format!(
        "UPDATE tenants SET status = 'deleting', status_changed_at = now(), deletion_due_at = $2
         WHERE id = $1 RETURNING {TENANT_COLUMNS}"
    ))
    .bind(before.id)
    .bind(due)
    .fetch_one(conn)
    .await?;
    Ok(Some((before, tenant(&after)?)))
}

/// Tenants whose deletion is due at `now` (owner connection).
pub async fn deletions_due(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
) -> Result<Vec<Tenant>, DbError> {
    let rows = sqlx::query(&format!(
        "SELECT {TENANT_COLUMNS} FROM tenants WHERE status = 'deleting' AND deletion_due_at <= $1
         ORDER BY deletion_due_at"
    ))
    .bind(now)
    .fetch_all(conn)
    .await?;
    collect(&rows, tenant)
}

/// Puts a tenant on a plan (owner connection). Returns the tenant before and after.
pub async fn set_tenant_plan(
    conn: &mut PgConnection,
    slug: &str,
    plan: &str,
) -> Result<Option<(Tenant, Tenant)>, DbError> {
    let Some(before) = tenant_by_slug(conn, slug).await? else {
        return Ok(None);
    };
    let row = sqlx::query(&format!(
        "UPDATE tenants SET plan = $2 WHERE id = $1 RETURNING {TENANT_COLUMNS}"
    ))
    .bind(before.id)
    .bind(plan)
    .fetch_one(conn)
    .await?;
    Ok(Some((before, tenant(&row)?)))
}

/// The tenant with this slug (owner connection).
pub async fn tenant_access(
    conn: &mut PgConnection,
    slug: &str,
) -> Result<Option<TenantAccess>, DbError> {
    let row = sqlx::query("SELECT id, slug, status, plan FROM tenants WHERE slug = $1")
        .bind(slug)
        .fetch_optional(conn)
        .await?;
    row.map(|r| {
        Ok(TenantAccess {
            id: r.try_get("id")?,
            slug: r.try_get("slug")?,
            status: TenantStatus::parse(&r.try_get::<String, _>("status")?)?,
            plan: r.try_get("plan")?,
        })
    })
    .transpose()
    .map_err(|e: sqlx::Error| e.into())
}

/// A tenant as platform administrators see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    /// Database id.
    pub id: TenantId,
    /// Slug.
    pub slug: String,
    /// Display name.
    pub name: String,
    /// Status.
    pub status: TenantStatus,
    /// When the status last changed.
    pub status_changed_at: DateTime<Utc>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// Plan name.
    pub plan: String,
    /// When a scheduled deletion happens.
    pub deletion_due_at: Option<DateTime<Utc>>,
    /// Where its data was exported before it was purged.
    pub exported_to: Option<String>,
}

const TENANT_COLUMNS: &str =
    "id, slug, name, status, status_changed_at, created_at, plan, deletion_due_at, exported_to";

fn tenant(row: &PgRow) -> Result<Tenant, sqlx::Error> {
    Ok(Tenant {
        id: row.try_get("id")?,
        slug: row.try_get("slug")?,
        name: row.try_get("name")?,
        status: TenantStatus::parse(&row.try_get::<String, _>("status")?)?,
        status_changed_at: row.try_get("status_changed_at")?,
        created_at: row.try_get("created_at")?,
        plan: row.try_get("plan")?,
        deletion_due_at: row.try_get("deletion_due_at")?,
        exported_to: row.try_get("exported_to")?,
    })
}

/// Creates a tenant on `plan` (owner connection). A slug in use is a unique violation.
pub async fn create_tenant(
    conn: &mut PgConnection,
    slug: &str,
    name: &str,
    plan: &str,
) -> Result<Tenant, DbError> {
    wire::topic::validate_id(slug).map_err(|e| DbError::invalid("tenant slug", e.to_string()))?;
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(DbError::invalid(
            "tenant name",
            "must be 1 to 200 characters",
        ));
    }
    let row = sqlx::query(&format!(
        "INSERT INTO tenants (slug, name, plan) VALUES ($1, $2, $3) RETURNING {TENANT_COLUMNS}"
    ))
    .bind(slug)
    .bind(name)
    .bind(plan)
    .fetch_one(conn)
    .await?;
    Ok(tenant(&row)?)
}

/// The tenant with this slug, all fields (owner connection).
pub async fn tenant_by_slug(
    conn: &mut PgConnection,
    slug: &str,
) -> Result<Option<Tenant>, DbError> {
    let row = sqlx::query(&format!(
        "SELECT {TENANT_COLUMNS} FROM tenants WHERE slug = $1"
    ))
    .bind(slug)
    .fetch_optional(conn)
    .await?;
    Ok(row.as_ref().map(tenant).transpose()?)
}

/// One page of tenants by slug after `after` (owner connection).
pub async fn tenants(
    conn: &mut PgConnection,
    after: Option<&str>,
    limit: u32,
) -> Result<Vec<Tenant>, DbError> {
    let rows = sqlx::query(&format!(
        "SELECT {TENANT_COLUMNS} FROM tenants WHERE ($1::text IS NULL OR slug > $1)
         ORDER BY slug LIMIT $2"
    ))
    .bind(after)
    .bind(i64::from(limit))
    .fetch_all(conn)
    .await?;
    collect(&rows, tenant)
}

/// Sets a tenant's status to active or suspended (owner connection; reactivating also
/// cancels a scheduled deletion). Returns the tenant before and after, `None` if there is
/// no such tenant. Setting the status it already has changes nothing; a deleted tenant
/// cannot come back.
pub async fn set_tenant_status(
    conn: &mut PgConnection,
    slug: &str,
    status: TenantStatus,
) -> Result<Option<(Tenant, Tenant)>, DbError> {
    if !matches!(status, TenantStatus::Active | TenantStatus::Suspended) {
        return Err(DbError::invalid(
            "tenant status",
            "use schedule_deletion to delete a tenant",
        ));
    }
    let before = sqlx::query(&format!(
        "SELECT {TENANT_COLUMNS} FROM tenants WHERE slug = $1 FOR UPDATE"
    ))
    .bind(slug)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(before) = before.as_ref().map(tenant).transpose()? else {
        return Ok(None);
    };
    if before.status == status {
        return Ok(Some((before.clone(), before)));
    }
    if before.status == TenantStatus::Deleted {
        return Err(DbError::invalid(
            "tenant status",
            format!("tenant `{slug}` was deleted; its data is gone"),
        ));
    }
    let after = sqlx::query(&format!(
        "UPDATE tenants SET status = $2, status_changed_at = now(), deletion_due_at = NULL
         WHERE id = $1 RETURNING {TENANT_COLUMNS}"
    ))
    .bind(before.id)
    .bind(status.as_str())
    .fetch_one(conn)
    .await?;
    Ok(Some((before, tenant(&after)?)))
}
