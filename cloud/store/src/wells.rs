//! Wells and their series, as readers see them (the API): keyset-paginated lists and
//! single rows. Every read takes a connection opened with
//! [`Db::begin_tenant`](crate::Db::begin_tenant) **and** the tenant id, and filters on
//! `tenant_id` explicitly: row-level security is the guarantee, the explicit filter keeps
//! each query correct on its own and lets the planner use the `(tenant_id, …)` indexes.
//! Registration of wells from the command line is in [`registry`](crate::registry); the
//! API's create, update and delete are [`create_well`], [`update_well`] and
//! [`delete_well`] (a well with devices or production history cannot be deleted: set its
//! status instead).

use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};

use crate::{DbError, SeriesId, SiteId, TenantId, WellId, collect};

const WELL_SELECT: &str = "
    SELECT w.id, w.api_number, w.name, w.lease, w.field, w.county, w.state,
           w.site_id, s.name AS site_name, w.status, w.latitude, w.longitude,
           (SELECT count(*) FROM devices d WHERE d.well_id = w.id) AS device_count
    FROM wells w JOIN sites s ON s.tenant_id = w.tenant_id AND s.id = w.site_id";

/// A well of the registry.
#[derive(Debug, Clone, PartialEq)]
pub struct WellRow {
    /// Database id.
    pub id: WellId,
    /// API well number.
    pub api_number: String,
    /// Display name.
    pub name: String,
    /// Lease name.
    pub lease: String,
    /// Field name.
    pub field: String,
    /// County.
    pub county: String,
    /// State (postal code).
    pub state: String,
    /// Site id.
    pub site_id: SiteId,
    /// Site name.
    pub site_name: String,
    /// Devices linked to the well.
    pub device_count: i64,
    /// Status: drilling, completed, producing, injecting, shut_in,
    /// temporarily_abandoned, plugged_abandoned.
    pub status: String,
    /// Surface location (latitude, longitude) in degrees.
    pub location: Option<(f64, f64)>,
}

/// A series with the labels a reader needs to tell it apart from its siblings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeriesRow {
    /// Series id.
    pub id: SeriesId,
    /// Canonical metric, `custom.<name>`, or `vendor:<tag>`.
    pub metric: String,
    /// Engineering unit.
    pub unit: String,
    /// How the metric aggregates (`gauge`, `counter`, `state`) as the birth declared it;
    /// `None` for births that predate metric kinds.
    pub kind: Option<String>,
    /// Vendor tag name in the device's profile.
    pub tag: String,
    /// Device name.
    pub device: String,
    /// Gateway id (MQTT).
    pub gateway: String,
}

fn well_row(r: &PgRow) -> Result<WellRow, sqlx::Error> {
    Ok(WellRow {
        id: r.try_get("id")?,
        api_number: r.try_get("api_number")?,
        name: r.try_get("name")?,
        lease: r.try_get("lease")?,
        field: r.try_get("field")?,
        county: r.try_get("county")?,
        state: r.try_get("state")?,
        site_id: r.try_get("site_id")?,
        site_name: r.try_get("site_name")?,
        device_count: r.try_get("device_count")?,
        status: r.try_get("status")?,
        location: r
            .try_get::<Option<f64>, _>("latitude")?
            .zip(r.try_get::<Option<f64>, _>("longitude")?),
    })
}

/// The statuses a well can have.
pub const WELL_STATUSES: [&str; 7] = [
    "drilling",
    "completed",
    "producing",
    "injecting",
    "shut_in",
    "temporarily_abandoned",
    "plugged_abandoned",
];

/// The fields of a well a caller sets. `api_number` must already be canonical
/// (`analytics::api_number`).
#[derive(Debug, Clone, PartialEq)]
pub struct WellFields<'a> {
    /// Site the well is on (of the same tenant).
    pub site: SiteId,
    /// Canonical API well number.
    pub api_number: &'a str,
    /// Name.
    pub name: &'a str,
    /// Lease.
    pub lease: &'a str,
    /// Field.
    pub field: &'a str,
    /// County.
    pub county: &'a str,
    /// State (postal code).
    pub state: &'a str,
    /// One of [`WELL_STATUSES`].
    pub status: &'a str,
    /// Location in degrees.
    pub location: Option<(f64, f64)>,
}

fn check_well(fields: &WellFields<'_>) -> Result<(), DbError> {
    let name = fields.name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(DbError::invalid("well name", "must be 1 to 200 characters"));
    }
    if !WELL_STATUSES.contains(&fields.status) {
        return Err(DbError::invalid(
            "well status",
            format!(
                "{:?} must be one of {}",
                fields.status,
                WELL_STATUSES.join(", ")
            ),
        ));
    }
    for (what, v) in [
        ("lease", fields.lease),
        ("field", fields.field),
        ("county", fields.county),
    ] {
        if v.chars().count() > 200 {
            return Err(DbError::invalid(what, "must be at most 200 characters"));
        }
    }
    if !(fields.state.is_empty()
        || (fields.state.len() == 2 && fields.state.bytes().all(|b| b.is_ascii_uppercase())))
    {
        return Err(DbError::invalid(
            "well state",
            format!(
                "{:?} must be a two-letter postal code such as TX",
                fields.state
            ),
        ));
    }
    if let Some((lat, lon)) = fields.location
        && !((-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon))
    {
        return Err(DbError::invalid(
            "well location",
            format!("({lat}, {lon}) is not a latitude and longitude in degrees"),
        ));
    }
    Ok(())
}

async fn require_site(
    conn: &mut PgConnection,
    tenant: TenantId,
    site: SiteId,
) -> Result<(), DbError> {
    let found: Option<i64> =
        sqlx::query_scalar("SELECT id FROM sites WHERE tenant_id = $1 AND id = $2")
            .bind(tenant)
            .bind(site)
            .fetch_optional(conn)
            .await?;
    found.map(|_| ()).ok_or_else(|| {
        DbError::invalid("site", format!("site {site} does not exist in this tenant"))
    })
}

/// Creates a well. An API number in use in the tenant is a unique violation.
pub async fn create_well(
    conn: &mut PgConnection,
    tenant: TenantId,
    fields: &WellFields<'_>,
) -> Result<WellRow, DbError> {
    check_well(fields)?;
    require_site(conn, tenant, fields.site).await?;
    let id: WellId = sqlx::query_scalar(
        "INSERT INTO wells (tenant_id, site_id, api_number, name, lease, field, county, state,
                            status, latitude, longitude)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
    )
    .bind(tenant)
    .bind(fields.site)
    .bind(fields.api_number)
    .bind(fields.name.trim())
    .bind(fields.lease.trim())
    .bind(fields.field.trim())
    .bind(fields.county.trim())
    .bind(fields.state)
    .bind(fields.status)
    .bind(fields.location.map(|l| l.0))
    .bind(fields.location.map(|l| l.1))
    .fetch_one(&mut *conn)
    .await?;
    well(conn, tenant, id)
        .await?
        .ok_or_else(|| DbError::NotFound(format!("well {id}")))
}

/// Replaces a well's fields. Returns it before and after; `None` if no such well.
pub async fn update_well(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: WellId,
    fields: &WellFields<'_>,
) -> Result<Option<(WellRow, WellRow)>, DbError> {
    check_well(fields)?;
    let Some(before) = well(conn, tenant, id).await? else {
        return Ok(None);
    };
    require_site(conn, tenant, fields.site).await?;
    sqlx::query(
        "UPDATE wells SET site_id = $3, api_number = $4, name = $5, lease = $6, field = $7,
                          county = $8, state = $9, status = $10, latitude = $11,
                          longitude = $12, updated_at = now()
         WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant)
    .bind(id)
    .bind(fields.site)
    .bind(fields.api_number)
    .bind(fields.name.trim())
    .bind(fields.lease.trim())
    .bind(fields.field.trim())
    .bind(fields.county.trim())
    .bind(fields.state)
    .bind(fields.status)
    .bind(fields.location.map(|l| l.0))
    .bind(fields.location.map(|l| l.1))
    .execute(&mut *conn)
    .await?;
    let after = well(conn, tenant, id)
        .await?
        .ok_or_else(|| DbError::NotFound(format!("well {id}")))?;
    Ok(Some((before, after)))
}

/// Deletes a well that nothing refers to (no devices, no production or emissions
/// history). Returns it; `None` if no such well.
pub async fn delete_well(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: WellId,
) -> Result<Option<WellRow>, DbError> {
    let Some(before) = well(conn, tenant, id).await? else {
        return Ok(None);
    };
    sqlx::query("DELETE FROM wells WHERE tenant_id = $1 AND id = $2")
        .bind(tenant)
        .bind(id)
        .execute(conn)
        .await?;
    Ok(Some(before))
}

/// Wells of a tenant ordered by id, after `after` (exclusive), at most `limit`.
pub async fn list_wells(
    conn: &mut PgConnection,
    tenant: TenantId,
    after: Option<WellId>,
    limit: i64,
) -> Result<Vec<WellRow>, DbError> {
    let rows = sqlx::query(&format!(
        "{WELL_SELECT}
         WHERE w.tenant_id = $1 AND ($2::bigint IS NULL OR w.id > $2)
         ORDER BY w.id LIMIT $3"
    ))
    .bind(tenant)
    .bind(after)
    .bind(limit)
    .fetch_all(conn)
    .await?;
    collect(&rows, well_row)
}

/// One well of a tenant.
pub async fn well(
    conn: &mut PgConnection,
    tenant: TenantId,
    well: WellId,
) -> Result<Option<WellRow>, DbError> {
    let row = sqlx::query(&format!(
        "{WELL_SELECT} WHERE w.tenant_id = $1 AND w.id = $2"
    ))
    .bind(tenant)
    .bind(well)
    .fetch_optional(conn)
    .await?;
    Ok(row.as_ref().map(well_row).transpose()?)
}

/// The series of a well, optionally of one metric only, ordered by metric and id.
/// `None` when the tenant has no such well; `Some(vec![])` when the well has no series
/// (of that metric). One round trip either way.
pub async fn well_series(
    conn: &mut PgConnection,
    tenant: TenantId,
    well: WellId,
    metric: Option<&str>,
) -> Result<Option<Vec<SeriesRow>>, DbError> {
    let rows = sqlx::query(
        "SELECT s.id, s.metric, s.unit, s.kind, s.tag, d.name AS device, g.slug AS gateway
         FROM wells w
         LEFT JOIN (series s
                    JOIN devices d ON d.id = s.device_id
                    JOIN gateways g ON g.id = d.gateway_id)
                ON d.well_id = w.id AND ($3::text IS NULL OR s.metric = $3)
         WHERE w.tenant_id = $1 AND w.id = $2
         ORDER BY s.metric, s.id",
    )
    .bind(tenant)
    .bind(well)
    .bind(metric)
    .fetch_all(conn)
    .await?;
    if rows.is_empty() {
        return Ok(None);
    }
    let mut series = Vec::with_capacity(rows.len());
    for r in &rows {
        let Some(id) = r.try_get::<Option<SeriesId>, _>("id")? else {
            continue;
        };
        series.push(SeriesRow {
            id,
            metric: r.try_get("metric")?,
            unit: r.try_get("unit")?,
            kind: r.try_get("kind")?,
            tag: r.try_get("tag")?,
            device: r.try_get("device")?,
            gateway: r.try_get("gateway")?,
        });
    }
    Ok(Some(series))
}
