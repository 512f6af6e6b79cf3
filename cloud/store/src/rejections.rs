//! The ingest audit trail as readers see it: refused messages of a tenant and its ingest
//! counts. (The ingester writes rejections through [`registry`](crate::registry).)

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, Row};

use crate::{DbError, TenantId, collect};

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
