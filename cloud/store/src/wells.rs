//! Wells and their series, as readers see them (the API): keyset-paginated lists and
//! single rows. Every read takes a connection opened with
//! [`Db::begin_tenant`](crate::Db::begin_tenant) **and** the tenant id, and filters on
//! `tenant_id` explicitly: row-level security is the guarantee, the explicit filter keeps
//! each query correct on its own and lets the planner use the `(tenant_id, …)` indexes.
//! Registration of wells is in [`registry`](crate::registry).

use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};

use crate::{DbError, SeriesId, SiteId, TenantId, WellId, collect};

const WELL_SELECT: &str = "
    SELECT w.id, w.api_number, w.name, w.lease, w.field, w.county, w.state,
           w.site_id, s.name AS site_name,
           (SELECT count(*) FROM devices d WHERE d.well_id = w.id) AS device_count
    FROM wells w JOIN sites s ON s.tenant_id = w.tenant_id AND s.id = w.site_id";

/// A well of the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
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
}

/// A series with the labels a reader needs to tell it apart from its siblings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeriesRow {
    /// Series id.
    pub id: SeriesId,
    /// Canonical metric (or `vendor:<tag>`).
    pub metric: String,
    /// Engineering unit.
    pub unit: String,
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
    })
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
        "SELECT s.id, s.metric, s.unit, s.tag, d.name AS device, g.slug AS gateway
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
            tag: r.try_get("tag")?,
            device: r.try_get("device")?,
            gateway: r.try_get("gateway")?,
        });
    }
    Ok(Some(series))
}
