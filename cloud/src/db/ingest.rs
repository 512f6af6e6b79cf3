//! SQL of the ingester and of gateway provisioning that the registry does not cover.
//!
//! - [`Db::record_gateway_activity`]: after an ingest commit, one statement updates every
//!   gateway of the round (last seen, online, buffer status, clock skew). One statement
//!   per round rather than one per gateway: small statements are the slow part of the
//!   protocol, and a round may hold batches of dozens of gateways.
//! - [`Db::mark_silent_gateways_offline`]: the maintenance loop's safety net for a lost
//!   last will.
//! - [`Db::provision_gateway`]: tenant, site and gateway in one transaction, idempotent
//!   (re-provisioning rotates the secret).

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::registry::{MIN_SECRET_LEN, hash_secret};
use super::{Db, DbError, GatewayId, SiteId, TenantId};

/// What one ingest round learned about a gateway.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GatewayActivity {
    /// The gateway.
    pub gateway: GatewayId,
    /// When its newest message of the round was received.
    pub seen_at: DateTime<Utc>,
    /// Its newest reported buffer status, if any batch carried one.
    pub buffer: Option<wire::BufferStatus>,
    /// Gateway clock minus receive time (ms) of its newest live batch.
    pub clock_skew_ms: Option<i64>,
}

/// Result of [`Db::provision_gateway`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Provisioned {
    /// The tenant (created if it did not exist).
    pub tenant: TenantId,
    /// The site (created if it did not exist).
    pub site: SiteId,
    /// The gateway.
    pub gateway: GatewayId,
    /// Whether the gateway was created (`false`: it existed and its secret was replaced).
    pub created: bool,
}

fn clamp(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl Db {
    /// Marks the gateways seen and online (traffic proves a live session) and stores their
    /// reported buffer status and clock skew, all in one statement.
    pub async fn record_gateway_activity(
        &self,
        activity: &[GatewayActivity],
    ) -> Result<(), DbError> {
        if activity.is_empty() {
            return Ok(());
        }
        let buffer = |f: fn(&wire::BufferStatus) -> u64| -> Vec<Option<i64>> {
            activity
                .iter()
                .map(|a| a.buffer.as_ref().map(|s| clamp(f(s))))
                .collect()
        };
        let ids: Vec<GatewayId> = activity.iter().map(|a| a.gateway).collect();
        let seen: Vec<DateTime<Utc>> = activity.iter().map(|a| a.seen_at).collect();
        let skew: Vec<Option<i64>> = activity.iter().map(|a| a.clock_skew_ms).collect();
        sqlx::query(
            "UPDATE gateways g SET
                 online = true,
                 last_seen = greatest(g.last_seen, a.seen_at),
                 buffer_pending_batches = coalesce(a.pending_batches, g.buffer_pending_batches),
                 buffer_pending_bytes   = coalesce(a.pending_bytes, g.buffer_pending_bytes),
                 buffer_oldest_age_ms   = coalesce(a.oldest_age_ms, g.buffer_oldest_age_ms),
                 buffer_dropped_samples = coalesce(a.dropped_samples, g.buffer_dropped_samples),
                 buffer_dropped_batches = coalesce(a.dropped_batches, g.buffer_dropped_batches),
                 buffer_status_at = CASE WHEN a.pending_batches IS NULL THEN g.buffer_status_at
                                         ELSE a.seen_at END,
                 clock_skew_ms = coalesce(a.clock_skew_ms, g.clock_skew_ms)
             FROM unnest($1::bigint[], $2::timestamptz[], $3::bigint[], $4::bigint[],
                         $5::bigint[], $6::bigint[], $7::bigint[], $8::bigint[])
                  AS a(gateway_id, seen_at, pending_batches, pending_bytes, oldest_age_ms,
                       dropped_samples, dropped_batches, clock_skew_ms)
             WHERE g.id = a.gateway_id",
        )
        .bind(&ids)
        .bind(&seen)
        .bind(buffer(|s| s.pending_batches))
        .bind(buffer(|s| s.pending_bytes))
        .bind(buffer(|s| s.oldest_age_ms))
        .bind(buffer(|s| s.dropped_samples))
        .bind(buffer(|s| s.dropped_batches))
        .bind(&skew)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Marks offline every online gateway not heard from for `silent_for` (its last will
    /// was lost, e.g. the broker restarted). Returns how many were marked.
    pub async fn mark_silent_gateways_offline(&self, silent_for: Duration) -> Result<u64, DbError> {
        let cutoff = Utc::now()
            - chrono::Duration::from_std(silent_for).map_err(|e| DbError::Invalid {
                what: "offline_after",
                reason: e.to_string(),
            })?;
        let done = sqlx::query(
            "UPDATE gateways SET online = false
             WHERE online AND (last_seen IS NULL OR last_seen < $1)",
        )
        .bind(cutoff)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected())
    }

    /// Creates (or re-keys) gateway `gateway_slug` of tenant `tenant_slug` at site
    /// `site_name`, creating the tenant and the site when missing, in one transaction.
    /// Refuses a gateway whose MQTT client id `wp-{tenant}-{gateway}` would equal another
    /// gateway's (ids may contain '-', so e.g. `a-b`/`c` and `a`/`b-c` would collide and
    /// could take over each other's broker session).
    pub async fn provision_gateway(
        &self,
        tenant_slug: &str,
        site_name: &str,
        gateway_slug: &str,
        secret: &str,
    ) -> Result<Provisioned, DbError> {
        for (what, id) in [("tenant id", tenant_slug), ("gateway id", gateway_slug)] {
            wire::topic::validate_id(id).map_err(|e| DbError::Invalid {
                what,
                reason: e.to_string(),
            })?;
        }
        if secret.len() < MIN_SECRET_LEN {
            return Err(DbError::Invalid {
                what: "gateway secret",
                reason: format!("must be at least {MIN_SECRET_LEN} characters"),
            });
        }
        let mut tx = self.pool().begin().await?;
        // Serialise provisioning so the client-id collision check cannot race.
        sqlx::query("LOCK TABLE gateways IN SHARE ROW EXCLUSIVE MODE")
            .execute(&mut *tx)
            .await?;
        let client_id = format!("wp-{tenant_slug}-{gateway_slug}");
        let collides: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM gateways g JOIN tenants t ON t.id = g.tenant_id
                            WHERE 'wp-' || t.slug || '-' || g.slug = $1
                              AND NOT (t.slug = $2 AND g.slug = $3))",
        )
        .bind(&client_id)
        .bind(tenant_slug)
        .bind(gateway_slug)
        .fetch_one(&mut *tx)
        .await?;
        if collides {
            return Err(DbError::Invalid {
                what: "gateway id",
                reason: format!("MQTT client id {client_id:?} is already used by another gateway"),
            });
        }
        let tenant: TenantId = sqlx::query_scalar(
            "INSERT INTO tenants (slug, name) VALUES ($1, $1)
             ON CONFLICT (slug) DO UPDATE SET slug = excluded.slug RETURNING id",
        )
        .bind(tenant_slug)
        .fetch_one(&mut *tx)
        .await?;
        let site: SiteId = sqlx::query_scalar(
            "INSERT INTO sites (tenant_id, name) VALUES ($1, $2)
             ON CONFLICT (tenant_id, name) DO UPDATE SET name = excluded.name RETURNING id",
        )
        .bind(tenant)
        .bind(site_name)
        .fetch_one(&mut *tx)
        .await?;
        let (gateway, created): (GatewayId, bool) = sqlx::query_as(
            "INSERT INTO gateways (tenant_id, site_id, slug, credential_hash)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (tenant_id, slug) DO UPDATE SET credential_hash = excluded.credential_hash
             RETURNING id, (xmax = 0) AS created",
        )
        .bind(tenant)
        .bind(site)
        .bind(gateway_slug)
        .bind(hash_secret(secret))
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Provisioned {
            tenant,
            site,
            gateway,
            created,
        })
    }
}
