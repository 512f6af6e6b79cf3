//! Gateways: provisioning, what the ingester learns about them, and their status as readers
//! (the API) see it.
//!
//! - [`Db::record_gateway_activity`]: after an ingest commit, one statement updates every
//!   gateway of the round (last seen, online, buffer status, clock skew). One statement
//!   per round rather than one per gateway: small statements are the slow part of the
//!   protocol, and a round may hold batches of dozens of gateways.
//! - [`Db::mark_silent_gateways_offline`]: the maintenance loop's safety net for a lost
//!   last will.
//! - [`Db::provision_gateway`]: tenant, site and gateway in one transaction, idempotent
//!   (re-provisioning rotates the secret).
//! - Credentials through the API ([`create_gateway`], [`rotate_credentials`],
//!   [`revoke_credentials`], in the caller's tenant-scoped transaction): a rotation keeps
//!   the previous secret (and its message key) valid until the overlap window ends, so an
//!   agent is reconfigured without a gap; a revocation bars the gateway until new
//!   credentials are issued (its next login is refused; the caller kicks the live session).
//! - [`Db::gateway_may_log_in`]: the one question the MQTT broker asks at every CONNECT
//!   ("may this gateway log in with this password now?"). Everything that can bar a
//!   gateway (its credential, its tenant's status) belongs in this one function.
//! - [`Db::notify_broker_kick`] / [`Db::broker_kicks`]: the `wp_broker_kick` channel
//!   (PostgreSQL `NOTIFY`/`LISTEN`) through which any cloud instance asks every embedded
//!   broker to disconnect a gateway (`tenant/gateway`) or a whole tenant (`tenant`).
//! - [`Db::gateway_logins`]: every registered gateway as `(tenant, gateway)`, the input
//!   of the generated Mosquitto ACL.
//! - Message keys ([`wire::seal`]): the ingester accepts a gateway's messages only when
//!   sealed with one of its keys ([`Db::gateway_message_keys`], current first). Provisioning
//!   derives the key from the secret and stores only the key, replacing every earlier key
//!   as it replaces the password hash (a re-provisioned gateway may have leaked its old
//!   secret). A rotation with an overlap window adds the new key in front
//!   ([`Db::add_gateway_message_key`], at most [`MAX_MESSAGE_KEYS`] kept) and retires the
//!   old ones once every agent has the new credentials
//!   ([`Db::retire_previous_message_keys`]).

use std::time::Duration;

use chrono::{DateTime, Utc};

use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};

use crate::registry::{MIN_SECRET_LEN, hash_secret};
use crate::{Db, DbError, DeviceId, GatewayId, SiteId, TenantId, WellId, boot_from_db, collect};

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
    /// Buffer epoch of its newest committed batch.
    pub epoch: Option<u64>,
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

/// The PostgreSQL notification channel of broker kick requests. Payload: `tenant` or
/// `tenant/gateway`.
pub const BROKER_KICK_CHANNEL: &str = "wp_broker_kick";

/// A `LISTEN wp_broker_kick` session (see [`Db::broker_kicks`]).
#[derive(Debug)]
pub struct BrokerKicks {
    listener: sqlx::postgres::PgListener,
}

impl BrokerKicks {
    /// The next kick request's payload (`tenant` or `tenant/gateway`). After a lost
    /// connection the listener reconnects and listens again; requests sent meanwhile are
    /// lost (a kicked gateway whose credential was revoked is refused at its next login
    /// anyway).
    pub async fn recv(&mut self) -> Result<String, DbError> {
        let n = self.listener.recv().await?;
        Ok(n.payload().to_owned())
    }
}
/// Message keys kept per gateway: the current one and the previous one while a rotation's
/// overlap window lasts.
pub const MAX_MESSAGE_KEYS: usize = 2;

fn clamp(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl Db {
    /// Whether gateway `gateway` of tenant `tenant` may log in to the MQTT broker with
    /// `password` now: the gateway exists, the password matches its stored credential,
    /// and the tenant is active (not suspended, scheduled for deletion or deleted). Asked at
    /// every CONNECT, so a re-keyed credential or a suspended tenant is refused at once.
    pub async fn gateway_may_log_in(
        &self,
        tenant: &str,
        gateway: &str,
        password: &str,
    ) -> Result<bool, DbError> {
        // The credential is checked whatever the tenant's state: the same work either way.
        let credential = self
            .verify_gateway_credential(tenant, gateway, password)
            .await?
            .is_some();
        let active: Option<bool> =
            sqlx::query_scalar("SELECT status = 'active' FROM tenants WHERE slug = $1")
                .bind(tenant)
                .fetch_optional(&self.pool)
                .await?;
        Ok(credential && active == Some(true))
    }

    /// Asks every embedded broker listening on [`BROKER_KICK_CHANNEL`] to disconnect
    /// `target`: `tenant/gateway` (one gateway) or `tenant` (all its gateways). Call it
    /// after the change that bars the login (revoked credential, suspended tenant) is
    /// committed, so the kicked gateway cannot log straight back in.
    pub async fn notify_broker_kick(&self, target: &str) -> Result<(), DbError> {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(BROKER_KICK_CHANNEL)
            .bind(target)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Starts listening on [`BROKER_KICK_CHANNEL`]; returns once `LISTEN` is in effect.
    pub async fn broker_kicks(&self) -> Result<BrokerKicks, DbError> {
        let mut listener = sqlx::postgres::PgListener::connect_with(&self.pool).await?;
        listener.listen(BROKER_KICK_CHANNEL).await?;
        Ok(BrokerKicks { listener })
    }

    /// Every registered gateway as `(tenant slug, gateway slug)`, ordered.
    pub async fn gateway_logins(&self) -> Result<Vec<(String, String)>, DbError> {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT t.slug, g.slug FROM gateways g JOIN tenants t ON t.id = g.tenant_id
             ORDER BY t.slug, g.slug",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows)
    }

    /// Marks the gateways seen and online (traffic proves a live session), with data
    /// committed at `seen_at`, and stores their reported buffer status, buffer epoch and
    /// clock skew, all in one statement.
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
        let epoch: Vec<Option<i64>> = activity
            .iter()
            .map(|a| a.epoch.map(crate::boot_to_db))
            .collect();
        sqlx::query(
            "UPDATE gateways g SET
                 online = true,
                 last_seen = greatest(g.last_seen, a.seen_at),
                 data_stored_at = greatest(g.data_stored_at, a.seen_at),
                 buffer_epoch = coalesce(a.epoch, g.buffer_epoch),
                 buffer_pending_batches = coalesce(a.pending_batches, g.buffer_pending_batches),
                 buffer_pending_bytes   = coalesce(a.pending_bytes, g.buffer_pending_bytes),
                 buffer_oldest_age_ms   = coalesce(a.oldest_age_ms, g.buffer_oldest_age_ms),
                 buffer_dropped_samples = coalesce(a.dropped_samples, g.buffer_dropped_samples),
                 buffer_dropped_batches = coalesce(a.dropped_batches, g.buffer_dropped_batches),
                 buffer_status_at = CASE WHEN a.pending_batches IS NULL THEN g.buffer_status_at
                                         ELSE a.seen_at END,
                 clock_skew_ms = coalesce(a.clock_skew_ms, g.clock_skew_ms)
             FROM unnest($1::bigint[], $2::timestamptz[], $3::bigint[], $4::bigint[],
                         $5::bigint[], $6::bigint[], $7::bigint[], $8::bigint[], $9::bigint[])
                  AS a(gateway_id, seen_at, pending_batches, pending_bytes, oldest_age_ms,
                       dropped_samples, dropped_batches, clock_skew_ms, epoch)
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
        .bind(&epoch)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Records that a data batch of `gateway` was refused for good at `at`, and why.
    pub async fn record_gateway_refusal(
        &self,
        gateway: GatewayId,
        at: DateTime<Utc>,
        reason: &str,
    ) -> Result<(), DbError> {
        sqlx::query(
            "UPDATE gateways SET data_refused_at = greatest(data_refused_at, $2),
                                 data_refusal_reason = $3
             WHERE id = $1",
        )
        .bind(gateway)
        .bind(at)
        .bind(reason)
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
        let key = wire::MessageKey::derive(secret.as_bytes());
        let (gateway, created): (GatewayId, bool) = sqlx::query_as(
            "INSERT INTO gateways (tenant_id, site_id, slug, credential_hash, message_keys)
             VALUES ($1, $2, $3, $4, ARRAY[$5::bytea])
             ON CONFLICT (tenant_id, slug) DO UPDATE
                 SET credential_hash = excluded.credential_hash,
                     message_keys = excluded.message_keys
             RETURNING id, (xmax = 0) AS created",
        )
        .bind(tenant)
        .bind(site)
        .bind(gateway_slug)
        .bind(hash_secret(secret))
        .bind(key.as_bytes().as_slice())
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

impl Db {
    /// The keys a gateway's messages may be sealed with, current first; empty for a
    /// gateway provisioned before message keys existed (its messages are refused).
    pub async fn gateway_message_keys(
        &self,
        gateway: GatewayId,
    ) -> Result<Vec<wire::MessageKey>, DbError> {
        let keys: Option<Vec<Vec<u8>>> =
            sqlx::query_scalar("SELECT message_keys FROM gateways WHERE id = $1")
                .bind(gateway)
                .fetch_optional(self.pool())
                .await?;
        let keys = keys.ok_or_else(|| DbError::NotFound(format!("gateway {gateway}")))?;
        keys.iter()
            .map(|k| {
                wire::MessageKey::from_slice(k).ok_or_else(|| {
                    DbError::invalid(
                        "message key",
                        format!("gateway {gateway} has a key of {} bytes, not 32", k.len()),
                    )
                })
            })
            .collect()
    }

    /// Starts a rotation's overlap window: `key` becomes the gateway's current key and the
    /// current one stays valid as the previous (older ones are dropped, so at most
    /// [`MAX_MESSAGE_KEYS`] remain). Adding the current key again changes nothing.
    pub async fn add_gateway_message_key(
        &self,
        gateway: GatewayId,
        key: &wire::MessageKey,
    ) -> Result<(), DbError> {
        let done = sqlx::query(
            "UPDATE gateways
             SET message_keys = (ARRAY[$2::bytea] || array_remove(message_keys, $2::bytea))[1:$3]
             WHERE id = $1",
        )
        .bind(gateway)
        .bind(key.as_bytes().as_slice())
        .bind(MAX_MESSAGE_KEYS as i32)
        .execute(self.pool())
        .await?;
        if done.rows_affected() == 0 {
            return Err(DbError::NotFound(format!("gateway {gateway}")));
        }
        Ok(())
    }

    /// Ends a rotation's overlap window: only the current key stays valid.
    pub async fn retire_previous_message_keys(&self, gateway: GatewayId) -> Result<(), DbError> {
        let done =
            sqlx::query("UPDATE gateways SET message_keys = message_keys[1:1] WHERE id = $1")
                .bind(gateway)
                .execute(self.pool())
                .await?;
        if done.rows_affected() == 0 {
            return Err(DbError::NotFound(format!("gateway {gateway}")));
        }
        Ok(())
    }
}

// Reads for the API: every read takes a connection opened with `Db::begin_tenant` and
// the tenant id, and filters on `tenant_id` explicitly as well.

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
    /// Epoch of the buffer that numbered the newest stored batch.
    pub buffer_epoch: Option<u64>,
    /// When a batch was last stored (or found stored).
    pub data_stored_at: Option<DateTime<Utc>>,
    /// When a batch was last refused for good, and why.
    pub data_refused: Option<(DateTime<Utc>, String)>,
}

impl GatewayRow {
    /// Whether the gateway's data is being refused: a batch was refused for good and
    /// none has been stored since. Such a gateway may be connected but delivers nothing.
    pub fn refusing(&self) -> bool {
        match (&self.data_refused, self.data_stored_at) {
            (Some((refused, _)), Some(stored)) => *refused > stored,
            (Some(_), None) => true,
            (None, _) => false,
        }
    }
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

const GATEWAY_SELECT: &str = "
    SELECT g.id, g.slug, g.site_id, s.name AS site_name, g.online, g.last_seen,
           g.last_birth_at, g.last_boot_id, g.agent_version, g.config_hash,
           b.birth_time, coalesce(jsonb_array_length(b.catalog -> 'devices'), 0)::bigint AS device_count,
           g.buffer_pending_batches, g.buffer_pending_bytes, g.buffer_oldest_age_ms,
           g.buffer_dropped_samples, g.buffer_dropped_batches, g.buffer_status_at,
           g.clock_skew_ms, g.buffer_epoch, g.data_stored_at, g.data_refused_at,
           g.data_refusal_reason
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
        buffer_epoch: r
            .try_get::<Option<i64>, _>("buffer_epoch")?
            .map(boot_from_db),
        data_stored_at: r.try_get("data_stored_at")?,
        data_refused: r
            .try_get::<Option<DateTime<Utc>>, _>("data_refused_at")?
            .map(|at| -> Result<_, sqlx::Error> {
                Ok((
                    at,
                    r.try_get::<Option<String>, _>("data_refusal_reason")?
                        .unwrap_or_default(),
                ))
            })
            .transpose()?,
    })
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

impl Db {
    /// Creates a gateway with its secret (stored hashed only) and the message key derived
    /// from it (see [`crate::gateways`]).
    pub async fn create_gateway(
        &self,
        tenant: TenantId,
        site: SiteId,
        slug: &str,
        secret: &str,
    ) -> Result<GatewayId, DbError> {
        let mut conn = self.pool.acquire().await?;
        create_gateway(&mut conn, tenant, site, slug, secret).await
    }
}

/// Creates a gateway with its secret (stored hashed only) and the message key derived from
/// it, in the caller's transaction (tenant-scoped or not).
pub async fn create_gateway(
    conn: &mut sqlx::PgConnection,
    tenant: TenantId,
    site: crate::SiteId,
    slug: &str,
    secret: &str,
) -> Result<GatewayId, DbError> {
    wire::topic::validate_id(slug).map_err(|e| DbError::invalid("gateway id", e.to_string()))?;
    crate::registry::check_secret(secret)?;
    let found: Option<i64> =
        sqlx::query_scalar("SELECT id FROM sites WHERE tenant_id = $1 AND id = $2")
            .bind(tenant)
            .bind(site)
            .fetch_optional(&mut *conn)
            .await?;
    if found.is_none() {
        return Err(DbError::invalid(
            "site",
            format!("site {site} does not exist in this tenant"),
        ));
    }
    Ok(sqlx::query_scalar(
        "INSERT INTO gateways (tenant_id, site_id, slug, credential_hash, message_keys)
         VALUES ($1, $2, $3, $4, ARRAY[$5::bytea]) RETURNING id",
    )
    .bind(tenant)
    .bind(site)
    .bind(slug)
    .bind(crate::registry::hash_secret(secret))
    .bind(
        wire::MessageKey::derive(secret.as_bytes())
            .as_bytes()
            .as_slice(),
    )
    .fetch_one(conn)
    .await?)
}

/// The state of a gateway's credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialState {
    /// The gateway.
    pub gateway: GatewayId,
    /// When the current credentials were issued.
    pub issued_at: chrono::DateTime<chrono::Utc>,
    /// Until when the previous secret still works (a rotation's overlap window).
    pub previous_valid_until: Option<chrono::DateTime<chrono::Utc>>,
    /// When the credentials were revoked (no secret works).
    pub revoked_at: Option<chrono::DateTime<chrono::Utc>>,
}

fn credential_state(row: &sqlx::postgres::PgRow) -> Result<CredentialState, sqlx::Error> {
    use sqlx::Row;
    Ok(CredentialState {
        gateway: row.try_get("id")?,
        issued_at: row.try_get("credentials_issued_at")?,
        previous_valid_until: row.try_get("previous_valid_until")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

/// Issues new credentials for gateway `slug` of `tenant`: `secret` becomes current, the
/// current one stays valid until `overlap_until` (`None`: at once invalid), with their
/// message keys in the same order. Clears a revocation. `None` if no such gateway.
pub async fn rotate_credentials(
    conn: &mut sqlx::PgConnection,
    tenant: TenantId,
    slug: &str,
    secret: &str,
    overlap_until: Option<chrono::DateTime<chrono::Utc>>,
) -> Result<Option<CredentialState>, DbError> {
    crate::registry::check_secret(secret)?;
    let key = wire::MessageKey::derive(secret.as_bytes());
    let row = sqlx::query(
        "UPDATE gateways SET
             previous_credential_hash = CASE WHEN $4::timestamptz IS NULL OR revoked_at IS NOT NULL
                                             THEN NULL ELSE credential_hash END,
             previous_valid_until = CASE WHEN revoked_at IS NOT NULL THEN NULL ELSE $4 END,
             message_keys = CASE WHEN $4::timestamptz IS NULL OR revoked_at IS NOT NULL
                                 THEN ARRAY[$5::bytea]
                                 ELSE ARRAY[$5::bytea] || message_keys[1:1] END,
             credential_hash = $3,
             credentials_issued_at = now(),
             revoked_at = NULL
         WHERE tenant_id = $1 AND slug = $2
         RETURNING id, credentials_issued_at, previous_valid_until, revoked_at",
    )
    .bind(tenant)
    .bind(slug)
    .bind(crate::registry::hash_secret(secret))
    .bind(overlap_until)
    .bind(key.as_bytes().as_slice())
    .fetch_optional(conn)
    .await?;
    Ok(row.as_ref().map(credential_state).transpose()?)
}

/// Revokes gateway `slug`'s credentials: no secret works and its message keys are gone
/// until [`rotate_credentials`] issues new ones. `None` if no such gateway.
pub async fn revoke_credentials(
    conn: &mut sqlx::PgConnection,
    tenant: TenantId,
    slug: &str,
) -> Result<Option<CredentialState>, DbError> {
    let row = sqlx::query(
        "UPDATE gateways SET previous_credential_hash = NULL, previous_valid_until = NULL,
                             message_keys = '{}', revoked_at = coalesce(revoked_at, now())
         WHERE tenant_id = $1 AND slug = $2
         RETURNING id, credentials_issued_at, previous_valid_until, revoked_at",
    )
    .bind(tenant)
    .bind(slug)
    .fetch_optional(conn)
    .await?;
    Ok(row.as_ref().map(credential_state).transpose()?)
}
