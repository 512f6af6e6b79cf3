//! Sites (pads, facilities): create, read, update, delete, in tenant-scoped transactions.
//! A site that still has wells or gateways cannot be deleted (a foreign-key violation,
//! which the API answers 409).

use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};

use crate::{DbError, SiteId, TenantId, collect};

/// A site.
#[derive(Debug, Clone, PartialEq)]
pub struct SiteRow {
    /// Database id.
    pub id: SiteId,
    /// Name (unique in the tenant).
    pub name: String,
    /// Surface location (latitude, longitude) in degrees.
    pub location: Option<(f64, f64)>,
    /// State (postal code, e.g. `TX`), or empty.
    pub state: String,
    /// Operator number with the state's regulator, or empty.
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

/// The fields of a site a caller sets.
#[derive(Debug, Clone, PartialEq)]
pub struct SiteFields<'a> {
    /// Name.
    pub name: &'a str,
    /// Location in degrees.
    pub location: Option<(f64, f64)>,
    /// State postal code or empty.
    pub state: &'a str,
    /// Operator number or empty.
    pub operator_number: &'a str,
}

const SITE_SELECT: &str = "
    SELECT s.id, s.name, s.latitude, s.longitude, s.state, s.operator_number, s.created_at,
           s.updated_at,
           (SELECT count(*) FROM wells w WHERE w.site_id = s.id) AS well_count,
           (SELECT count(*) FROM gateways g WHERE g.site_id = s.id) AS gateway_count
    FROM sites s";

fn site_row(r: &PgRow) -> Result<SiteRow, sqlx::Error> {
    let lat: Option<f64> = r.try_get("latitude")?;
    let lon: Option<f64> = r.try_get("longitude")?;
    Ok(SiteRow {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        location: lat.zip(lon),
        state: r.try_get("state")?,
        operator_number: r.try_get("operator_number")?,
        well_count: r.try_get("well_count")?,
        gateway_count: r.try_get("gateway_count")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

fn check(fields: &SiteFields<'_>) -> Result<(), DbError> {
    let name = fields.name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(DbError::invalid("site name", "must be 1 to 200 characters"));
    }
    if !(fields.state.is_empty()
        || (fields.state.len() == 2 && fields.state.bytes().all(|b| b.is_ascii_uppercase())))
    {
        return Err(DbError::invalid(
            "site state",
            format!(
                "{:?} must be a two-letter postal code such as TX",
                fields.state
            ),
        ));
    }
    if fields.operator_number.chars().count() > 32 {
        return Err(DbError::invalid(
            "operator number",
            "must be at most 32 characters",
        ));
    }
    if let Some((lat, lon)) = fields.location
        && !((-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon))
    {
        return Err(DbError::invalid(
            "site location",
            format!("({lat}, {lon}) is not a latitude and longitude in degrees"),
        ));
    }
    Ok(())
}

/// One page of a tenant's sites by id after `after`.
pub async fn list_sites(
    conn: &mut PgConnection,
    tenant: TenantId,
    after: Option<SiteId>,
    limit: i64,
) -> Result<Vec<SiteRow>, DbError> {
    let rows = sqlx::query(&format!(
        "{SITE_SELECT} WHERE s.tenant_id = $1 AND ($2::bigint IS NULL OR s.id > $2)
         ORDER BY s.id LIMIT $3"
    ))
    .bind(tenant)
    .bind(after)
    .bind(limit)
    .fetch_all(conn)
    .await?;
    collect(&rows, site_row)
}

/// One site of a tenant.
pub async fn site(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: SiteId,
) -> Result<Option<SiteRow>, DbError> {
    let row = sqlx::query(&format!(
        "{SITE_SELECT} WHERE s.tenant_id = $1 AND s.id = $2"
    ))
    .bind(tenant)
    .bind(id)
    .fetch_optional(conn)
    .await?;
    Ok(row.as_ref().map(site_row).transpose()?)
}

/// Creates a site. A name in use is a unique violation.
pub async fn create_site(
    conn: &mut PgConnection,
    tenant: TenantId,
    fields: &SiteFields<'_>,
) -> Result<SiteRow, DbError> {
    check(fields)?;
    let id: SiteId = sqlx::query_scalar(
        "INSERT INTO sites (tenant_id, name, latitude, longitude, state, operator_number)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
    )
    .bind(tenant)
    .bind(fields.name.trim())
    .bind(fields.location.map(|l| l.0))
    .bind(fields.location.map(|l| l.1))
    .bind(fields.state)
    .bind(fields.operator_number.trim())
    .fetch_one(&mut *conn)
    .await?;
    site(conn, tenant, id)
        .await?
        .ok_or_else(|| DbError::NotFound(format!("site {id}")))
}

/// Replaces a site's fields. Returns the site before and after; `None` if no such site.
pub async fn update_site(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: SiteId,
    fields: &SiteFields<'_>,
) -> Result<Option<(SiteRow, SiteRow)>, DbError> {
    check(fields)?;
    let Some(before) = site(conn, tenant, id).await? else {
        return Ok(None);
    };
    sqlx::query(
        "UPDATE sites SET name = $3, latitude = $4, longitude = $5, state = $6,
                          operator_number = $7, updated_at = now()
         WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant)
    .bind(id)
    .bind(fields.name.trim())
    .bind(fields.location.map(|l| l.0))
    .bind(fields.location.map(|l| l.1))
    .bind(fields.state)
    .bind(fields.operator_number.trim())
    .execute(&mut *conn)
    .await?;
    let after = site(conn, tenant, id)
        .await?
        .ok_or_else(|| DbError::NotFound(format!("site {id}")))?;
    Ok(Some((before, after)))
}

/// Deletes a site with no wells and no gateways. Returns it; `None` if no such site.
pub async fn delete_site(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: SiteId,
) -> Result<Option<SiteRow>, DbError> {
    let Some(before) = site(conn, tenant, id).await? else {
        return Ok(None);
    };
    sqlx::query("DELETE FROM sites WHERE tenant_id = $1 AND id = $2")
        .bind(tenant)
        .bind(id)
        .execute(conn)
        .await?;
    Ok(Some(before))
}
