//! Usage per tenant per UTC day (`tenant_usage_daily`): what quotas, the admin pages and
//! billing read.
//!
//! [`refresh_day`] recomputes a day's samples, active wells, gateways online and storage
//! estimate from what is stored (idempotent: run it as often as wanted; the usage job
//! refreshes today and yesterday). API calls are counted by the API instances and added
//! with [`add_api_calls`]. Samples come from `ingested_batches`, which holds each stored
//! batch exactly once, so a re-delivered batch is never counted twice.

use chrono::NaiveDate;
use sqlx::{PgConnection, Row};

use crate::{DbError, TenantId, collect};

/// One tenant's usage on one day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DailyUsage {
    /// Tenant.
    pub tenant: TenantId,
    /// UTC day.
    pub day: NaiveDate,
    /// Samples stored.
    pub samples_ingested: i64,
    /// Wells with data.
    pub active_wells: i32,
    /// Gateways that delivered data.
    pub gateways_online: i32,
    /// Authenticated API requests.
    pub api_calls: i64,
    /// Estimated telemetry storage, bytes.
    pub storage_bytes: i64,
}

/// Recomputes every tenant's figures of `day` (owner connection). Returns how many
/// tenants had usage.
pub async fn refresh_day(conn: &mut PgConnection, day: NaiveDate) -> Result<u64, DbError> {
    // Storage: the telemetry relations' size shared out by each tenant's stored samples.
    let done = sqlx::query(
        "WITH day_batches AS (
             SELECT b.tenant_id, b.gateway_id, b.samples
             FROM ingested_batches b
             WHERE b.received_at >= $1::date AND b.received_at < $1::date + 1
         ), per_tenant AS (
             SELECT tenant_id, sum(samples)::bigint AS samples,
                    count(DISTINCT gateway_id)::int AS gateways
             FROM day_batches GROUP BY tenant_id
         ), wells AS (
             SELECT d.tenant_id, count(DISTINCT d.well_id)::int AS wells
             FROM devices d
             WHERE d.well_id IS NOT NULL
               AND d.gateway_id IN (SELECT DISTINCT gateway_id FROM day_batches)
             GROUP BY d.tenant_id
         ), stored AS (
             SELECT tenant_id, sum(samples)::numeric AS samples FROM ingested_batches
             WHERE received_at < $1::date + 1 GROUP BY tenant_id
         ), total AS (
             SELECT coalesce(sum(samples), 0) AS samples FROM stored
         ), bytes AS (
             SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::numeric AS bytes
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
               AND c.relname LIKE 'telemetry%'
         )
         INSERT INTO tenant_usage_daily AS u
             (tenant_id, day, samples_ingested, active_wells, gateways_online, storage_bytes)
         SELECT p.tenant_id, $1::date, p.samples, coalesce(w.wells, 0), p.gateways,
                CASE WHEN total.samples = 0 THEN 0
                     ELSE (bytes.bytes * coalesce(s.samples, 0) / total.samples)::bigint END
         FROM per_tenant p
         LEFT JOIN wells w ON w.tenant_id = p.tenant_id
         LEFT JOIN stored s ON s.tenant_id = p.tenant_id
         CROSS JOIN total CROSS JOIN bytes
         ON CONFLICT (tenant_id, day) DO UPDATE SET
             samples_ingested = excluded.samples_ingested,
             active_wells = excluded.active_wells,
             gateways_online = excluded.gateways_online,
             storage_bytes = excluded.storage_bytes,
             updated_at = now()",
    )
    .bind(day)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// Adds API calls counted by an API instance (owner connection).
pub async fn add_api_calls(
    conn: &mut PgConnection,
    tenant: TenantId,
    day: NaiveDate,
    calls: i64,
) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO tenant_usage_daily AS u (tenant_id, day, api_calls) VALUES ($1, $2, $3)
         ON CONFLICT (tenant_id, day) DO UPDATE SET api_calls = u.api_calls + excluded.api_calls,
                                                    updated_at = now()",
    )
    .bind(tenant)
    .bind(day)
    .bind(calls)
    .execute(conn)
    .await?;
    Ok(())
}

/// A tenant's usage on the days `from..=to` that have any, oldest first (tenant-scoped
/// transaction or owner connection).
pub async fn usage(
    conn: &mut PgConnection,
    tenant: TenantId,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<DailyUsage>, DbError> {
    let rows = sqlx::query(
        "SELECT tenant_id, day, samples_ingested, active_wells, gateways_online, api_calls,
                storage_bytes
         FROM tenant_usage_daily WHERE tenant_id = $1 AND day BETWEEN $2 AND $3 ORDER BY day",
    )
    .bind(tenant)
    .bind(from)
    .bind(to)
    .fetch_all(conn)
    .await?;
    collect(&rows, |r| {
        Ok(DailyUsage {
            tenant: r.try_get("tenant_id")?,
            day: r.try_get("day")?,
            samples_ingested: r.try_get("samples_ingested")?,
            active_wells: r.try_get("active_wells")?,
            gateways_online: r.try_get("gateways_online")?,
            api_calls: r.try_get("api_calls")?,
            storage_bytes: r.try_get("storage_bytes")?,
        })
    })
}
