//! Devices of a tenant's gateways, in tenant-scoped transactions: read one with its series,
//! register one ahead of its gateway's birth, link it to a well, delete it.
//!
//! A device is normally created by its gateway's birth (the agent's config names it); one
//! registered here first is adopted by the birth that names it (same gateway and name), and
//! keeps the well it was linked to: a birth links only devices without a well. A device
//! whose series hold history cannot be deleted (a foreign-key violation the API answers
//! 409): remove it from the agent's config instead; it stays for its history.

use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};

use crate::gateways::DeviceRow;
use crate::{DbError, DeviceId, GatewayId, SeriesId, TenantId, WellId, collect};

/// One series (metric) of a device.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesRow {
    /// Database id.
    pub id: SeriesId,
    /// Canonical metric name, `custom.<name>`, or `vendor:<tag>`.
    pub metric: String,
    /// `canonical`, `custom` or `vendor` (derived from the name by the database).
    pub namespace: String,
    /// How the metric aggregates as the birth declared it; `None` for older births.
    pub kind: Option<String>,
    /// Engineering unit.
    pub unit: String,
    /// Vendor tag name in the device's firmware profile.
    pub tag: String,
}

/// A device with its gateway and series.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceDetail {
    /// The device.
    pub device: DeviceRow,
    /// Its gateway's MQTT id.
    pub gateway: String,
    /// Its series by metric.
    pub series: Vec<SeriesRow>,
}

const DEVICE_SELECT: &str = "
    SELECT d.id, d.name, d.profile, d.well_id, g.slug AS gateway,
           (d.last_boot_id IS NOT DISTINCT FROM g.last_boot_id
            AND d.last_boot_id IS NOT NULL) AS current,
           (SELECT count(*) FROM series s WHERE s.device_id = d.id) AS series_count
    FROM devices d JOIN gateways g ON g.id = d.gateway_id";

fn device_row(r: &PgRow) -> Result<DeviceRow, sqlx::Error> {
    Ok(DeviceRow {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        profile: r.try_get("profile")?,
        well_id: r.try_get("well_id")?,
        current: r.try_get("current")?,
        series_count: r.try_get("series_count")?,
    })
}

/// One device of a tenant with its series; `None` if the tenant has no such device.
pub async fn device(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: DeviceId,
) -> Result<Option<DeviceDetail>, DbError> {
    let Some(row) = sqlx::query(&format!(
        "{DEVICE_SELECT} WHERE d.tenant_id = $1 AND d.id = $2"
    ))
    .bind(tenant)
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?
    else {
        return Ok(None);
    };
    let series = sqlx::query(
        "SELECT id, metric, namespace, kind, unit, tag FROM series
         WHERE tenant_id = $1 AND device_id = $2 ORDER BY metric",
    )
    .bind(tenant)
    .bind(id)
    .fetch_all(&mut *conn)
    .await?;
    Ok(Some(DeviceDetail {
        device: device_row(&row)?,
        gateway: row.try_get("gateway")?,
        series: collect(&series, |r| {
            Ok(SeriesRow {
                id: r.try_get("id")?,
                metric: r.try_get("metric")?,
                namespace: r.try_get("namespace")?,
                kind: r.try_get("kind")?,
                unit: r.try_get("unit")?,
                tag: r.try_get("tag")?,
            })
        })?,
    }))
}

/// Refuses a well the tenant does not have (an invalid field, not a missing device).
async fn check_well(
    conn: &mut PgConnection,
    tenant: TenantId,
    well: Option<WellId>,
) -> Result<(), DbError> {
    let Some(well) = well else {
        return Ok(());
    };
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM wells WHERE tenant_id = $1 AND id = $2)")
            .bind(tenant)
            .bind(well)
            .fetch_one(conn)
            .await?;
    if exists {
        Ok(())
    } else {
        Err(DbError::invalid(
            "well_id",
            format!("no well {well} in this tenant"),
        ))
    }
}

/// Registers a device of `gateway` ahead of its birth. A name the gateway already has is a
/// unique violation.
pub async fn create_device(
    conn: &mut PgConnection,
    tenant: TenantId,
    gateway: GatewayId,
    name: &str,
    profile: &str,
    well: Option<WellId>,
) -> Result<DeviceDetail, DbError> {
    check_well(conn, tenant, well).await?;
    let id: DeviceId = sqlx::query_scalar(
        "INSERT INTO devices (tenant_id, gateway_id, name, profile, well_id)
         VALUES ($1, $2, $3, $4, $5) RETURNING id",
    )
    .bind(tenant)
    .bind(gateway)
    .bind(name)
    .bind(profile)
    .bind(well)
    .fetch_one(&mut *conn)
    .await?;
    device(conn, tenant, id)
        .await?
        .ok_or_else(|| DbError::NotFound(format!("device {id}")))
}

/// Links a device to a well, or unlinks it (`None`). Returns the device before and after;
/// `None` if no such device.
pub async fn set_device_well(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: DeviceId,
    well: Option<WellId>,
) -> Result<Option<(DeviceDetail, DeviceDetail)>, DbError> {
    let Some(before) = device(conn, tenant, id).await? else {
        return Ok(None);
    };
    check_well(conn, tenant, well).await?;
    sqlx::query(
        "UPDATE devices SET well_id = $3, updated_at = now() WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant)
    .bind(id)
    .bind(well)
    .execute(&mut *conn)
    .await?;
    let after = device(conn, tenant, id)
        .await?
        .ok_or_else(|| DbError::NotFound(format!("device {id}")))?;
    Ok(Some((before, after)))
}

/// Deletes a device without series. Returns it; `None` if no such device.
pub async fn delete_device(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: DeviceId,
) -> Result<Option<DeviceDetail>, DbError> {
    let Some(before) = device(conn, tenant, id).await? else {
        return Ok(None);
    };
    sqlx::query("DELETE FROM devices WHERE tenant_id = $1 AND id = $2")
        .bind(tenant)
        .bind(id)
        .execute(conn)
        .await?;
    Ok(Some(before))
}

/// A device's name (empty when there is no such device).
pub async fn device_name(conn: &mut PgConnection, device: DeviceId) -> Result<String, DbError> {
    let name: Option<String> = sqlx::query_scalar("SELECT name FROM devices WHERE id = $1")
        .bind(device)
        .fetch_optional(conn)
        .await?;
    Ok(name.unwrap_or_default())
}
