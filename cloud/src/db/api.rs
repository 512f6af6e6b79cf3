//! SQL of the HTTP API ([`crate::api`]): registry and status reads, ingest audit reads,
//! readiness checks.
//!
//! Every tenant-owned read takes a `PgConnection` that the caller opened with
//! [`Db::begin_tenant`](super::Db::begin_tenant) **and** the tenant id, and filters on
//! `tenant_id` explicitly: row-level security is the guarantee, the explicit filter keeps
//! each query correct on its own and lets the planner use the `(tenant_id, …)` indexes.
//!
//! Lists are keyset-paginated (`WHERE key > $cursor ORDER BY key LIMIT n`), never by
//! offset, so a page costs the same wherever it is and rows added meanwhile do not shift
//! later pages. Callers ask for one row more than they return to learn whether another
//! page exists.
//!
//! Telemetry itself is read through [`query`](super::query) (the storage layer's raw and
//! bucketed reads); this module only resolves a well's series with their labels.

use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgPool, Row};

use super::{DbError, DeviceId, GatewayId, SeriesId, SiteId, TenantId, WellId, boot_from_db};

/// The buffer status a gateway reported in its latest batch header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BufferRow {
    /// Batches waiting in the gateway's buffer.
    pub pending_batches: i64,
    /// Bytes waiting in the gateway's buffer.
    pub pending_bytes: i64,
    /// Age of the oldest waiting batch (ms).
    pub oldest_age_ms: i64,
    /// Samples dropped by the buffer limits since the agent's buffer was created.
    pub dropped_samples: i64,
    /// Batches dropped by the buffer limits.
    pub dropped_batches: i64,
    /// When the cloud received that status.
    pub reported_at: DateTime<Utc>,
}

/// The current birth of a gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BirthRow {
    /// Boot id of the session.
    pub boot_id: u64,
    /// When the cloud received the birth.
    pub received_at: DateTime<Utc>,
    /// Birth time by the gateway's clock (`None` if the birth row was removed).
    pub birth_time: Option<DateTime<Utc>>,
    /// Agent version announced in the birth.
    pub agent_version: String,
    /// Hash of the agent configuration announced in the birth.
    pub config_hash: String,
    /// Devices in the birth catalog.
    pub device_count: i64,
}

/// A gateway's status as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayRow {
    /// Database id.
    pub id: GatewayId,
    /// Gateway id in MQTT topics.
    pub slug: String,
    /// Site id.
    pub site_id: SiteId,
    /// Site name.
    pub site_name: String,
    /// Whether an MQTT session is open.
    pub online: bool,
    /// Last message from the gateway.
    pub last_seen: Option<DateTime<Utc>>,
    /// Current birth, once one was received.
    pub birth: Option<BirthRow>,
    /// Latest reported buffer status.
    pub buffer: Option<BufferRow>,
    /// Gateway clock minus cloud receive time of the latest live batch (ms).
    pub clock_skew_ms: Option<i64>,
}

/// A device of a gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRow {
    /// Database id.
    pub id: DeviceId,
    /// Device name from the agent config (stable across boots).
    pub name: String,
    /// Firmware profile id.
    pub profile: String,
    /// Well the device measures, if linked.
    pub well_id: Option<WellId>,
    /// Whether the gateway's current birth lists the device.
    pub current: bool,
    /// Series (metrics) of the device.
    pub series_count: i64,
}

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

/// A refused MQTT message of a tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectionRow {
    /// Row id (increasing with time).
    pub id: i64,
    /// When it was refused.
    pub time: DateTime<Utc>,
    /// Gateway segment of the topic.
    pub gateway: String,
    /// Full topic.
    pub topic: String,
    /// `<reason code>: <detail>` as recorded by the ingester.
    pub reason: String,
    /// Payload size in bytes.
    pub payload_size: i32,
}

/// Ingest activity of a tenant since some time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestCountsRow {
    /// Batches stored.
    pub batches: i64,
    /// Of which backlog replay.
    pub historical_batches: i64,
    /// Samples stored.
    pub samples: i64,
    /// Newest batch receive time.
    pub last_batch_at: Option<DateTime<Utc>>,
    /// Rejections per reason code, most frequent first.
    pub rejections: Vec<(String, i64)>,
}

/// State of the schema migrations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationState {
    /// Migrations this build knows.
    pub known: usize,
    /// Versions this build knows that the database has not applied successfully.
    pub pending: Vec<i64>,
    /// Whether the storage back-end was set up (`storage_meta` has its row).
    pub storage_ready: bool,
}

const GATEWAY_SELECT: &str = "
    SELECT g.id, g.slug, g.site_id, s.name AS site_name, g.online, g.last_seen,
           g.last_birth_at, g.last_boot_id, g.agent_version, g.config_hash,
           b.birth_time, coalesce(jsonb_array_length(b.catalog -> 'devices'), 0)::bigint AS device_count,
           g.buffer_pending_batches, g.buffer_pending_bytes, g.buffer_oldest_age_ms,
           g.buffer_dropped_samples, g.buffer_dropped_batches, g.buffer_status_at,
           g.clock_skew_ms
    FROM gateways g
    JOIN sites s ON s.tenant_id = g.tenant_id AND s.id = g.site_id
    LEFT JOIN gateway_births b ON b.gateway_id = g.id AND b.boot_id = g.last_boot_id";

fn gateway_row(r: &PgRow) -> Result<GatewayRow, sqlx::Error> {
    let birth = match (
        r.try_get::<Option<i64>, _>("last_boot_id")?,
        r.try_get::<Option<DateTime<Utc>>, _>("last_birth_at")?,
    ) {
        (Some(boot), Some(received_at)) => Some(BirthRow {
            boot_id: boot_from_db(boot),
            received_at,
            birth_time: r.try_get("birth_time")?,
            agent_version: r
                .try_get::<Option<String>, _>("agent_version")?
                .unwrap_or_default(),
            config_hash: r
                .try_get::<Option<String>, _>("config_hash")?
                .unwrap_or_default(),
            device_count: r.try_get("device_count")?,
        }),
        _ => None,
    };
    let buffer = match (
        r.try_get::<Option<i64>, _>("buffer_pending_batches")?,
        r.try_get::<Option<DateTime<Utc>>, _>("buffer_status_at")?,
    ) {
        (Some(pending_batches), Some(reported_at)) => Some(BufferRow {
            pending_batches,
            pending_bytes: r
                .try_get::<Option<i64>, _>("buffer_pending_bytes")?
                .unwrap_or(0),
            oldest_age_ms: r
                .try_get::<Option<i64>, _>("buffer_oldest_age_ms")?
                .unwrap_or(0),
            dropped_samples: r
                .try_get::<Option<i64>, _>("buffer_dropped_samples")?
                .unwrap_or(0),
            dropped_batches: r
                .try_get::<Option<i64>, _>("buffer_dropped_batches")?
                .unwrap_or(0),
            reported_at,
        }),
        _ => None,
    };
    Ok(GatewayRow {
        id: r.try_get("id")?,
        slug: r.try_get("slug")?,
        site_id: r.try_get("site_id")?,
        site_name: r.try_get("site_name")?,
        online: r.try_get("online")?,
        last_seen: r.try_get("last_seen")?,
        birth,
        buffer,
        clock_skew_ms: r.try_get("clock_skew_ms")?,
    })
}

fn collect<T>(
    rows: &[PgRow],
    map: impl Fn(&PgRow) -> Result<T, sqlx::Error>,
) -> Result<Vec<T>, DbError> {
    rows.iter()
        .map(map)
        .collect::<Result<_, _>>()
        .map_err(DbError::from)
}

/// Gateways of a tenant ordered by slug, after `after` (exclusive), at most `limit`.
pub async fn list_gateways(
    conn: &mut PgConnection,
    tenant: TenantId,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<GatewayRow>, DbError> {
    let rows = sqlx::query(&format!(
        "{GATEWAY_SELECT}
         WHERE g.tenant_id = $1 AND ($2::text IS NULL OR g.slug > $2)
         ORDER BY g.slug LIMIT $3"
    ))
    .bind(tenant)
    .bind(after)
    .bind(limit)
    .fetch_all(conn)
    .await?;
    collect(&rows, gateway_row)
}

/// One gateway of a tenant by its MQTT id.
pub async fn gateway(
    conn: &mut PgConnection,
    tenant: TenantId,
    slug: &str,
) -> Result<Option<GatewayRow>, DbError> {
    let row = sqlx::query(&format!(
        "{GATEWAY_SELECT} WHERE g.tenant_id = $1 AND g.slug = $2"
    ))
    .bind(tenant)
    .bind(slug)
    .fetch_optional(conn)
    .await?;
    Ok(row.as_ref().map(gateway_row).transpose()?)
}

/// Devices of a gateway, by name.
pub async fn gateway_devices(
    conn: &mut PgConnection,
    tenant: TenantId,
    gateway: GatewayId,
) -> Result<Vec<DeviceRow>, DbError> {
    let rows = sqlx::query(
        "SELECT d.id, d.name, d.profile, d.well_id,
                (d.last_boot_id IS NOT DISTINCT FROM g.last_boot_id) AS current,
                (SELECT count(*) FROM series s WHERE s.device_id = d.id) AS series_count
         FROM devices d JOIN gateways g ON g.id = d.gateway_id
         WHERE d.tenant_id = $1 AND d.gateway_id = $2
         ORDER BY d.name",
    )
    .bind(tenant)
    .bind(gateway)
    .fetch_all(conn)
    .await?;
    collect(&rows, |r| {
        Ok(DeviceRow {
            id: r.try_get("id")?,
            name: r.try_get("name")?,
            profile: r.try_get("profile")?,
            well_id: r.try_get("well_id")?,
            current: r.try_get("current")?,
            series_count: r.try_get("series_count")?,
        })
    })
}

const WELL_SELECT: &str = "
    SELECT w.id, w.api_number, w.name, w.lease, w.field, w.county, w.state,
           w.site_id, s.name AS site_name,
           (SELECT count(*) FROM devices d WHERE d.well_id = w.id) AS device_count
    FROM wells w JOIN sites s ON s.tenant_id = w.tenant_id AND s.id = w.site_id";

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

/// Rejections of a tenant, newest first, before row id `before` (exclusive), at most
/// `limit`.
pub async fn list_rejections(
    conn: &mut PgConnection,
    tenant: TenantId,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<RejectionRow>, DbError> {
    let rows = sqlx::query(
        "SELECT id, time, gateway, topic, reason, payload_size
         FROM ingest_rejections
         WHERE tenant_id = $1 AND ($2::bigint IS NULL OR id < $2)
         ORDER BY id DESC LIMIT $3",
    )
    .bind(tenant)
    .bind(before)
    .bind(limit)
    .fetch_all(conn)
    .await?;
    collect(&rows, |r| {
        Ok(RejectionRow {
            id: r.try_get("id")?,
            time: r.try_get("time")?,
            gateway: r.try_get("gateway")?,
            topic: r.try_get("topic")?,
            reason: r.try_get("reason")?,
            payload_size: r.try_get("payload_size")?,
        })
    })
}

/// Batches, samples and rejections of a tenant received at or after `since`.
pub async fn ingest_counts(
    conn: &mut PgConnection,
    tenant: TenantId,
    since: DateTime<Utc>,
) -> Result<IngestCountsRow, DbError> {
    let totals = sqlx::query(
        "SELECT count(*) AS batches,
                count(*) FILTER (WHERE historical) AS historical_batches,
                coalesce(sum(samples), 0)::bigint AS samples,
                max(received_at) AS last_batch_at
         FROM ingested_batches WHERE tenant_id = $1 AND received_at >= $2",
    )
    .bind(tenant)
    .bind(since)
    .fetch_one(&mut *conn)
    .await?;
    let rejections = sqlx::query(
        "SELECT split_part(reason, ':', 1) AS code, count(*) AS n
         FROM ingest_rejections WHERE tenant_id = $1 AND time >= $2
         GROUP BY 1 ORDER BY 2 DESC, 1",
    )
    .bind(tenant)
    .bind(since)
    .fetch_all(&mut *conn)
    .await?;
    Ok(IngestCountsRow {
        batches: totals.try_get("batches")?,
        historical_batches: totals.try_get("historical_batches")?,
        samples: totals.try_get("samples")?,
        last_batch_at: totals.try_get("last_batch_at")?,
        rejections: collect(&rejections, |r| Ok((r.try_get("code")?, r.try_get("n")?)))?,
    })
}

/// One round trip to the database.
pub async fn ping(pool: &PgPool) -> Result<(), DbError> {
    sqlx::query("SELECT 1").execute(pool).await?;
    Ok(())
}

/// Which of this build's migrations the database has applied, and whether the storage
/// back-end is set up.
pub async fn migration_state(pool: &PgPool) -> Result<MigrationState, DbError> {
    let known: Vec<i64> = sqlx::migrate!("./migrations")
        .iter()
        .filter(|m| m.migration_type.is_up_migration())
        .map(|m| m.version)
        .collect();
    let mut conn = pool.acquire().await?;
    let has_table: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
        .fetch_one(&mut *conn)
        .await?;
    let applied: Vec<i64> = if has_table {
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
            .fetch_all(&mut *conn)
            .await?
    } else {
        Vec::new()
    };
    let storage_ready = super::schema::stored_backend(pool).await?.is_some();
    Ok(MigrationState {
        known: known.len(),
        pending: known.into_iter().filter(|v| !applied.contains(v)).collect(),
        storage_ready,
    })
}
