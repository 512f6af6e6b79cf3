//! The tenant lifecycle: create, list, suspend and reactivate, and the lookup every
//! authorized request makes ([`tenant_access`]).
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
}

impl TenantStatus {
    /// The stored (and API) name.
    pub fn as_str(self) -> &'static str {
        match self {
            TenantStatus::Active => "active",
            TenantStatus::Suspended => "suspended",
        }
    }

    fn parse(raw: &str) -> Result<TenantStatus, sqlx::Error> {
        match raw {
            "active" => Ok(TenantStatus::Active),
            "suspended" => Ok(TenantStatus::Suspended),
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
}

/// The tenant with this slug (owner connection).
pub async fn tenant_access(
    conn: &mut PgConnection,
    slug: &str,
) -> Result<Option<TenantAccess>, DbError> {
    let row = sqlx::query("SELECT id, slug, status FROM tenants WHERE slug = $1")
        .bind(slug)
        .fetch_optional(conn)
        .await?;
    row.map(|r| {
        Ok(TenantAccess {
            id: r.try_get("id")?,
            slug: r.try_get("slug")?,
            status: TenantStatus::parse(&r.try_get::<String, _>("status")?)?,
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
}

const TENANT_COLUMNS: &str = "id, slug, name, status, status_changed_at, created_at";

fn tenant(row: &PgRow) -> Result<Tenant, sqlx::Error> {
    Ok(Tenant {
        id: row.try_get("id")?,
        slug: row.try_get("slug")?,
        name: row.try_get("name")?,
        status: TenantStatus::parse(&row.try_get::<String, _>("status")?)?,
        status_changed_at: row.try_get("status_changed_at")?,
        created_at: row.try_get("created_at")?,
    })
}

/// Creates a tenant (owner connection). A slug in use is a unique violation.
pub async fn create_tenant(
    conn: &mut PgConnection,
    slug: &str,
    name: &str,
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
        "INSERT INTO tenants (slug, name) VALUES ($1, $2) RETURNING {TENANT_COLUMNS}"
    ))
    .bind(slug)
    .bind(name)
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

/// Sets a tenant's status (owner connection). Returns the tenant before and after, `None`
/// if there is no such tenant. Setting the status it already has changes nothing.
pub async fn set_tenant_status(
    conn: &mut PgConnection,
    slug: &str,
    status: TenantStatus,
) -> Result<Option<(Tenant, Tenant)>, DbError> {
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
    let after = sqlx::query(&format!(
        "UPDATE tenants SET status = $2, status_changed_at = now() WHERE id = $1
         RETURNING {TENANT_COLUMNS}"
    ))
    .bind(before.id)
    .bind(status.as_str())
    .fetch_one(conn)
    .await?;
    Ok(Some((before, tenant(&after)?)))
}
