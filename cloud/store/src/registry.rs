//! Registry: tenants, sites, wells, gateways and their credentials, births and alias maps.
//!
//! # Gateway credentials
//!
//! Gateway secrets are machine-generated tokens ([`generate_gateway_secret`]: 256 random
//! bits), so a salted SHA-256 (`sha256$<salt hex>$<digest hex>`) is enough: a slow password
//! hash protects low-entropy human passwords, which these are not. Secrets shorter than
//! [`MIN_SECRET_LEN`] are refused. Verification compares digests in constant time and
//! hashes even for unknown gateways, so timing does not reveal which gateway ids exist.
//! The stored format names its algorithm, so a slower hash can be added later.
//!
//! # Births
//!
//! [`Db::apply_birth`] stores one boot's catalog in one transaction: the birth row (catalog
//! as JSON), devices upserted by `(gateway, name)` (names are stable, aliases are not),
//! series upserted by `(device, canonical metric)`, and the alias rows
//! `(gateway, boot, device alias, metric alias) → (series, scale, offset)` used to decode
//! that boot's batches. Applying the same birth twice gives the same result. A birth is
//! *current* unless another boot of the gateway has a later birth time; only a current
//! birth updates the gateway's and devices' descriptive fields (agent version, profile,
//! device info), so a re-published old birth (for backlog replay) cannot roll them back.
//! A metric without a canonical name gets the series metric `vendor:<tag>`. A custom metric
//! (`custom.<name>`) keeps its name, unit and kind; its name and unit must follow the
//! vocabulary's rules for custom metrics (`firmware_profiles::vocabulary::check_custom_name`
//! and `check_unit`: snake_case, never a canonical name), or the birth is refused as
//! invalid. Any other dotted namespace is refused too. The series' `namespace` column
//! (`canonical`, `custom`, `vendor`) is derived from the name by the database.
//!
//! Devices are linked to wells by an operator ([`Db::assign_device_well`]) or, when a
//! current birth's device info carries a `well` entry equal to a well's API number or name
//! in the same tenant, automatically (never overriding an existing link).

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde_json::{Map, Value as Json, json};
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, Row};

use crate::{
    Db, DbError, DeviceId, GatewayId, SeriesId, SiteId, TenantId, WellId, boot_from_db, boot_to_db,
};

/// Shortest gateway secret accepted.
pub const MIN_SECRET_LEN: usize = 16;
const SALT_LEN: usize = 16;

/// A gateway as the ingester and the broker authenticator need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayInfo {
    /// Database id.
    pub id: GatewayId,
    /// Owning tenant.
    pub tenant_id: TenantId,
    /// Tenant slug (MQTT topic segment).
    pub tenant_slug: String,
    /// Site the gateway is installed at.
    pub site_id: SiteId,
    /// Gateway id in MQTT topics.
    pub slug: String,
    /// Whether a session is open.
    pub online: bool,
    /// Boot id of the latest (current) birth.
    pub last_boot_id: Option<u64>,
}

/// A well to register.
#[derive(Debug, Clone)]
pub struct NewWell<'a> {
    /// Owning tenant.
    pub tenant: TenantId,
    /// Site of the well.
    pub site: SiteId,
    /// API well number, e.g. `42-123-45678-00-00` (dashes optional).
    pub api_number: &'a str,
    /// Display name.
    pub name: &'a str,
    /// Lease name.
    pub lease: &'a str,
    /// Field name.
    pub field: &'a str,
    /// County.
    pub county: &'a str,
    /// State (postal code).
    pub state: &'a str,
}

/// How to decode one (device alias, metric alias) of a boot.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AliasEntry {
    /// Target series.
    pub series_id: SeriesId,
    /// Engineering value = raw * scale + offset.
    pub scale: f64,
    /// See `scale`.
    pub offset: f64,
}

impl AliasEntry {
    /// The engineering value of a raw value.
    pub fn engineering(&self, raw: f64) -> f64 {
        raw * self.scale + self.offset
    }
}

/// The alias map of one boot of one gateway.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AliasMap {
    entries: HashMap<(u16, u16), AliasEntry>,
}

impl AliasMap {
    /// The entry for a (device alias, metric alias).
    pub fn get(&self, device: u16, metric: u16) -> Option<&AliasEntry> {
        self.entries.get(&(device, metric))
    }

    /// Number of (device, metric) aliases.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the map has no alias.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// All entries, keyed by (device alias, metric alias).
    pub fn iter(&self) -> impl Iterator<Item = (&(u16, u16), &AliasEntry)> {
        self.entries.iter()
    }
}

/// A refused MQTT message, for the audit table `ingest_rejections`.
#[derive(Debug, Clone)]
pub struct Rejection<'a> {
    /// Tenant id when the tenant slug resolved.
    pub tenant_id: Option<TenantId>,
    /// Tenant segment of the topic (may be unknown or malformed).
    pub tenant: &'a str,
    /// Gateway segment of the topic.
    pub gateway: &'a str,
    /// Full topic.
    pub topic: &'a str,
    /// Why the message was refused.
    pub reason: &'a str,
    /// Payload size in bytes.
    pub payload_size: usize,
}

/// A fresh random gateway secret (64 hex characters).
pub fn generate_gateway_secret() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

/// The stored form of a secret: `sha256$<salt hex>$<digest hex>`.
pub fn hash_secret(secret: &str) -> String {
    let salt: [u8; SALT_LEN] = rand::random();
    format!(
        "sha256${}${}",
        hex::encode(salt),
        hex::encode(digest(&salt, secret))
    )
}

/// Whether `secret` matches a stored hash (constant-time digest comparison).
pub fn verify_secret(stored: &str, secret: &str) -> bool {
    let mut parts = stored.split('$');
    let (Some("sha256"), Some(salt), Some(expected), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let (Ok(salt), Ok(expected)) = (hex::decode(salt), hex::decode(expected)) else {
        return false;
    };
    base::ct_eq(&expected, &digest(&salt, secret))
}

fn digest(salt: &[u8], secret: &str) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(salt);
    hasher.update(secret.as_bytes());
    hasher.finalize().into()
}

pub(crate) fn check_secret(secret: &str) -> Result<(), DbError> {
    if secret.len() < MIN_SECRET_LEN {
        return Err(DbError::invalid(
            "gateway secret",
            format!("must be at least {MIN_SECRET_LEN} characters (use a generated token)"),
        ));
    }
    Ok(())
}

const GATEWAY_INFO_SELECT: &str = "
    SELECT g.id, g.tenant_id, t.slug AS tenant_slug, g.site_id, g.slug, g.online,
           g.last_boot_id, g.credential_hash, g.revoked_at IS NOT NULL AS revoked,
           CASE WHEN g.previous_valid_until > now() THEN g.previous_credential_hash END
               AS previous_hash
    FROM gateways g JOIN tenants t ON t.id = g.tenant_id";

fn gateway_info(row: &sqlx::postgres::PgRow) -> Result<GatewayInfo, sqlx::Error> {
    Ok(GatewayInfo {
        id: row.try_get("id")?,
        tenant_id: row.try_get("tenant_id")?,
        tenant_slug: row.try_get("tenant_slug")?,
        site_id: row.try_get("site_id")?,
        slug: row.try_get("slug")?,
        online: row.try_get("online")?,
        last_boot_id: row
            .try_get::<Option<i64>, _>("last_boot_id")?
            .map(boot_from_db),
    })
}

impl Db {
    /// Creates a tenant; `slug` is its MQTT topic segment.
    pub async fn create_tenant(&self, slug: &str, name: &str) -> Result<TenantId, DbError> {
        wire::topic::validate_id(slug)
            .map_err(|e| DbError::invalid("tenant slug", e.to_string()))?;
        Ok(
            sqlx::query_scalar("INSERT INTO tenants (slug, name) VALUES ($1, $2) RETURNING id")
                .bind(slug)
                .bind(name)
                .fetch_one(&self.pool)
                .await?,
        )
    }

    /// The tenant with this slug.
    pub async fn tenant_by_slug(&self, slug: &str) -> Result<Option<TenantId>, DbError> {
        Ok(sqlx::query_scalar("SELECT id FROM tenants WHERE slug = $1")
            .bind(slug)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// Creates a site; `location` is (latitude, longitude) in degrees.
    pub async fn create_site(
        &self,
        tenant: TenantId,
        name: &str,
        location: Option<(f64, f64)>,
    ) -> Result<SiteId, DbError> {
        Ok(sqlx::query_scalar(
            "INSERT INTO sites (tenant_id, name, latitude, longitude)
             VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(tenant)
        .bind(name)
        .bind(location.map(|l| l.0))
        .bind(location.map(|l| l.1))
        .fetch_one(&self.pool)
        .await?)
    }

    /// Registers a well unless the tenant already has one with this API number; returns
    /// its id either way (idempotent, for provisioning scripts).
    pub async fn provision_well(&self, well: &NewWell<'_>) -> Result<WellId, DbError> {
        let existing: Option<WellId> =
            sqlx::query_scalar("SELECT id FROM wells WHERE tenant_id = $1 AND api_number = $2")
                .bind(well.tenant)
                .bind(well.api_number)
                .fetch_optional(&self.pool)
                .await?;
        match existing {
            Some(id) => Ok(id),
            None => self.create_well(well).await,
        }
    }

    /// Creates a well.
    pub async fn create_well(&self, well: &NewWell<'_>) -> Result<WellId, DbError> {
        Ok(sqlx::query_scalar(
            "INSERT INTO wells (tenant_id, site_id, api_number, name, lease, field, county, state)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
        )
        .bind(well.tenant)
        .bind(well.site)
        .bind(well.api_number)
        .bind(well.name)
        .bind(well.lease)
        .bind(well.field)
        .bind(well.county)
        .bind(well.state)
        .fetch_one(&self.pool)
        .await?)
    }

    /// Replaces a gateway's secret (credential rotation without overlap): its message keys
    /// are replaced by the one derived from the new secret.
    pub async fn set_gateway_secret(
        &self,
        gateway: GatewayId,
        secret: &str,
    ) -> Result<(), DbError> {
        check_secret(secret)?;
        let done = sqlx::query(
            "UPDATE gateways SET credential_hash = $2, message_keys = ARRAY[$3::bytea]
             WHERE id = $1",
        )
        .bind(gateway)
        .bind(hash_secret(secret))
        .bind(
            wire::MessageKey::derive(secret.as_bytes())
                .as_bytes()
                .as_slice(),
        )
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(DbError::NotFound(format!("gateway {gateway}")));
        }
        Ok(())
    }

    /// The gateway `gateway_slug` of tenant `tenant_slug`, if it exists.
    pub async fn lookup_gateway(
        &self,
        tenant_slug: &str,
        gateway_slug: &str,
    ) -> Result<Option<GatewayInfo>, DbError> {
        let row = sqlx::query(&format!(
            "{GATEWAY_INFO_SELECT} WHERE t.slug = $1 AND g.slug = $2"
        ))
        .bind(tenant_slug)
        .bind(gateway_slug)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(gateway_info).transpose()?)
    }

    /// The gateway if `secret` is its credential; `None` for an unknown gateway or a wrong
    /// secret (indistinguishable to the caller, and in timing).
    pub async fn verify_gateway_credential(
        &self,
        tenant_slug: &str,
        gateway_slug: &str,
        secret: &str,
    ) -> Result<Option<GatewayInfo>, DbError> {
        let row = sqlx::query(&format!(
            "{GATEWAY_INFO_SELECT} WHERE t.slug = $1 AND g.slug = $2"
        ))
        .bind(tenant_slug)
        .bind(gateway_slug)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            // Same work as a real check.
            let _ = verify_secret("sha256$00000000000000000000000000000000$00", secret);
            return Ok(None);
        };
        let stored: String = row.try_get("credential_hash")?;
        let previous: Option<String> = row.try_get("previous_hash")?;
        // Both hashes are checked (same work either way); a revoked gateway matches none.
        let current = verify_secret(&stored, secret);
        let overlap = previous.is_some_and(|p| verify_secret(&p, secret));
        let revoked: bool = row.try_get("revoked")?;
        if (current || overlap) && !revoked {
            Ok(Some(gateway_info(&row)?))
        } else {
            Ok(None)
        }
    }

    /// Links a device to a well (or unlinks it with `None`).
    pub async fn assign_device_well(
        &self,
        device: DeviceId,
        well: Option<WellId>,
    ) -> Result<(), DbError> {
        let done = sqlx::query("UPDATE devices SET well_id = $2, updated_at = now() WHERE id = $1")
            .bind(device)
            .bind(well)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(DbError::NotFound(format!("device {device}")));
        }
        Ok(())
    }

    /// The device of a gateway by name.
    pub async fn device_by_name(
        &self,
        gateway: GatewayId,
        name: &str,
    ) -> Result<Option<DeviceId>, DbError> {
        Ok(
            sqlx::query_scalar("SELECT id FROM devices WHERE gateway_id = $1 AND name = $2")
                .bind(gateway)
                .bind(name)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// Marks a gateway online (session opened or traffic seen).
    pub async fn mark_gateway_online(
        &self,
        gateway: GatewayId,
        at: DateTime<Utc>,
    ) -> Result<(), DbError> {
        sqlx::query(
            "UPDATE gateways SET online = true, last_seen = greatest(last_seen, $2) WHERE id = $1",
        )
        .bind(gateway)
        .bind(at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Marks a gateway offline after a death. A death carrying the boot id of an older
    /// session (delivered late) is ignored; returns whether the gateway was marked offline.
    pub async fn mark_gateway_offline(
        &self,
        gateway: GatewayId,
        boot_id: Option<u64>,
        at: DateTime<Utc>,
    ) -> Result<bool, DbError> {
        let done = sqlx::query(
            "UPDATE gateways SET online = false, last_seen = greatest(last_seen, $3)
             WHERE id = $1 AND ($2::bigint IS NULL OR last_boot_id IS NULL OR last_boot_id = $2)",
        )
        .bind(gateway)
        .bind(boot_id.map(boot_to_db))
        .bind(at)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records what a batch header said about the gateway: its buffer status (when present)
    /// and the clock skew (gateway clock minus receive time, ms). Also marks it seen.
    pub async fn update_gateway_status(
        &self,
        gateway: GatewayId,
        status: Option<&wire::BufferStatus>,
        clock_skew_ms: Option<i64>,
        at: DateTime<Utc>,
    ) -> Result<(), DbError> {
        let clamp = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        sqlx::query(
            "UPDATE gateways SET
                 last_seen = greatest(last_seen, $2),
                 buffer_pending_batches = coalesce($3, buffer_pending_batches),
                 buffer_pending_bytes   = coalesce($4, buffer_pending_bytes),
                 buffer_oldest_age_ms   = coalesce($5, buffer_oldest_age_ms),
                 buffer_dropped_samples = coalesce($6, buffer_dropped_samples),
                 buffer_dropped_batches = coalesce($7, buffer_dropped_batches),
                 buffer_status_at = CASE WHEN $3::bigint IS NULL THEN buffer_status_at ELSE $2 END,
                 clock_skew_ms = coalesce($8, clock_skew_ms)
             WHERE id = $1",
        )
        .bind(gateway)
        .bind(at)
        .bind(status.map(|s| clamp(s.pending_batches)))
        .bind(status.map(|s| clamp(s.pending_bytes)))
        .bind(status.map(|s| clamp(s.oldest_age_ms)))
        .bind(status.map(|s| clamp(s.dropped_samples)))
        .bind(status.map(|s| clamp(s.dropped_batches)))
        .bind(clock_skew_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Appends a refused message to `ingest_rejections`.
    pub async fn record_rejection(&self, rejection: &Rejection<'_>) -> Result<(), DbError> {
        sqlx::query(
            "INSERT INTO ingest_rejections (tenant_id, tenant, gateway, topic, reason, payload_size)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(rejection.tenant_id)
        .bind(rejection.tenant)
        .bind(rejection.gateway)
        .bind(rejection.topic)
        .bind(rejection.reason)
        .bind(i32::try_from(rejection.payload_size).unwrap_or(i32::MAX))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Stores a birth (see the module docs) and returns the alias map of its boot.
    pub async fn apply_birth(
        &self,
        gateway: GatewayId,
        birth: &wire::Birth,
        received_at: DateTime<Utc>,
    ) -> Result<AliasMap, DbError> {
        let catalog = Catalog::from_birth(birth)?;
        let birth_time = DateTime::<Utc>::from_timestamp_millis(birth.ts_ms)
            .ok_or_else(|| DbError::invalid("birth", format!("timestamp {} ms", birth.ts_ms)))?;
        let boot = boot_to_db(birth.boot_id);
        let mut tx = self.pool.begin().await?;
        // Row lock: births of one gateway are applied one at a time.
        let tenant: TenantId =
            sqlx::query_scalar("SELECT tenant_id FROM gateways WHERE id = $1 FOR UPDATE")
                .bind(gateway)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or_else(|| DbError::NotFound(format!("gateway {gateway}")))?;
        let current: bool = sqlx::query_scalar(
            "SELECT NOT EXISTS (SELECT 1 FROM gateway_births
                                WHERE gateway_id = $1 AND boot_id <> $2 AND birth_time > $3)",
        )
        .bind(gateway)
        .bind(boot)
        .bind(birth_time)
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO gateway_births (tenant_id, gateway_id, boot_id, received_at, birth_time,
                                         agent_version, config_hash, catalog)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (gateway_id, boot_id) DO UPDATE SET
                 received_at = excluded.received_at, birth_time = excluded.birth_time,
                 agent_version = excluded.agent_version, config_hash = excluded.config_hash,
                 catalog = excluded.catalog",
        )
        .bind(tenant)
        .bind(gateway)
        .bind(boot)
        .bind(received_at)
        .bind(birth_time)
        .bind(&birth.agent_version)
        .bind(&birth.config_hash)
        .bind(&catalog.json)
        .execute(&mut *tx)
        .await?;
        let devices = upsert_devices(&mut tx, tenant, gateway, boot, birth, current).await?;
        let series = upsert_series(&mut tx, tenant, birth, &devices, current).await?;
        let map = replace_aliases(&mut tx, tenant, gateway, boot, birth, &devices, &series).await?;
        if current {
            sqlx::query(
                "UPDATE gateways SET last_birth_at = $2, last_boot_id = $3, agent_version = $4,
                     config_hash = $5, online = true, last_seen = greatest(last_seen, $2)
                 WHERE id = $1",
            )
            .bind(gateway)
            .bind(received_at)
            .bind(boot)
            .bind(&birth.agent_version)
            .bind(&birth.config_hash)
            .execute(&mut *tx)
            .await?;
            link_devices_to_wells(&mut tx, gateway).await?;
        }
        tx.commit().await?;
        Ok(map)
    }

    /// The alias map of a boot, or `None` when no birth of that boot is stored (the
    /// ingester then asks the gateway to re-publish it).
    pub async fn alias_map(
        &self,
        gateway: GatewayId,
        boot_id: u64,
    ) -> Result<Option<AliasMap>, DbError> {
        let mut conn = self.pool.acquire().await?;
        let known: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM gateway_births WHERE gateway_id = $1 AND boot_id = $2)",
        )
        .bind(gateway)
        .bind(boot_to_db(boot_id))
        .fetch_one(&mut *conn)
        .await?;
        if !known {
            return Ok(None);
        }
        let rows = sqlx::query(
            "SELECT device_alias, metric_alias, series_id, scale, value_offset
             FROM series_aliases WHERE gateway_id = $1 AND boot_id = $2",
        )
        .bind(gateway)
        .bind(boot_to_db(boot_id))
        .fetch_all(&mut *conn)
        .await?;
        let mut entries = HashMap::with_capacity(rows.len());
        for row in rows {
            let device: i32 = row.try_get("device_alias")?;
            let metric: i32 = row.try_get("metric_alias")?;
            let key = (
                u16::try_from(device)
                    .map_err(|_| DbError::invalid("device alias", "out of range"))?,
                u16::try_from(metric)
                    .map_err(|_| DbError::invalid("metric alias", "out of range"))?,
            );
            entries.insert(
                key,
                AliasEntry {
                    series_id: row.try_get("series_id")?,
                    scale: row.try_get("scale")?,
                    offset: row.try_get("value_offset")?,
                },
            );
        }
        Ok(Some(AliasMap { entries }))
    }
}

/// A validated birth catalog and its JSON form.
struct Catalog {
    json: Json,
}

impl Catalog {
    fn from_birth(birth: &wire::Birth) -> Result<Catalog, DbError> {
        let mut names = HashSet::new();
        let mut aliases = HashSet::new();
        let mut devices = Vec::with_capacity(birth.devices.len());
        for device in &birth.devices {
            if device.name.is_empty() || !names.insert(device.name.as_str()) {
                return Err(DbError::invalid(
                    "birth",
                    format!("device name {:?} is empty or repeated", device.name),
                ));
            }
            if !aliases.insert(device.alias) {
                return Err(DbError::invalid(
                    "birth",
                    format!("device alias {} is repeated", device.alias),
                ));
            }
            let mut metric_aliases = HashSet::new();
            let mut metric_names = HashSet::new();
            let mut metrics = Vec::with_capacity(device.metrics.len());
            for metric in &device.metrics {
                let problem = if !metric_aliases.insert(metric.alias) {
                    Some(format!("metric alias {} is repeated", metric.alias))
                } else if let Err(e) = check_metric_name(metric) {
                    Some(e)
                } else if !metric_names.insert(series_metric(metric)) {
                    Some(format!("metric {:?} is repeated", series_metric(metric)))
                } else if !metric.scale.is_finite() || !metric.offset.is_finite() {
                    Some(format!(
                        "metric {:?} has a non-finite scale or offset",
                        metric.tag
                    ))
                } else {
                    None
                };
                if let Some(problem) = problem {
                    return Err(DbError::invalid(
                        "birth",
                        format!("device {:?}: {problem}", device.name),
                    ));
                }
                metrics.push(json!({
                    "alias": metric.alias, "canonical": metric.canonical, "tag": metric.tag,
                    "unit": metric.unit, "scale": metric.scale, "offset": metric.offset,
                    "writable": metric.writable, "kind": metric.kind.map(kind_name),
                }));
            }
            devices.push(json!({
                "alias": device.alias, "name": device.name, "profile": device.profile,
                "info": info_json(&device.info), "metrics": metrics,
            }));
        }
        Ok(Catalog {
            json: json!({ "devices": devices }),
        })
    }
}

/// The database name of a metric kind.
fn kind_name(kind: wire::MetricKind) -> &'static str {
    match kind {
        wire::MetricKind::Gauge => "gauge",
        wire::MetricKind::Counter => "counter",
        wire::MetricKind::State => "state",
    }
}

/// A custom metric's name and unit follow the vocabulary's rules; no other namespace exists.
/// Names without a namespace are left as they are (births of every agent version carry
/// them; analytics only look up the names they know).
fn check_metric_name(metric: &wire::MetricEntry) -> Result<(), String> {
    use firmware_profiles::vocabulary::{self, MetricName};
    if !metric.canonical.contains('.') {
        return Ok(());
    }
    match vocabulary::parse_metric_name(&metric.canonical) {
        Ok(MetricName::Custom(_)) => vocabulary::check_unit(&metric.unit)
            .map_err(|reason| format!("custom metric {:?}: {reason}", metric.canonical)),
        Ok(MetricName::Canonical(_)) => Ok(()),
        Err(e) => Err(e.to_string()),
    }
}

/// The series metric of a catalog entry: its canonical name, or `vendor:<tag>`.
pub fn series_metric(metric: &wire::MetricEntry) -> String {
    if metric.canonical.is_empty() {
        format!("vendor:{}", metric.tag)
    } else {
        metric.canonical.clone()
    }
}

fn info_json(info: &[(String, String)]) -> Json {
    Json::Object(
        info.iter()
            .map(|(k, v)| (k.clone(), Json::String(v.clone())))
            .collect::<Map<_, _>>(),
    )
}

async fn upsert_devices(
    conn: &mut PgConnection,
    tenant: TenantId,
    gateway: GatewayId,
    boot: i64,
    birth: &wire::Birth,
    current: bool,
) -> Result<HashMap<String, DeviceId>, DbError> {
    let names: Vec<&str> = birth.devices.iter().map(|d| d.name.as_str()).collect();
    let profiles: Vec<&str> = birth.devices.iter().map(|d| d.profile.as_str()).collect();
    let infos: Vec<Json> = birth.devices.iter().map(|d| info_json(&d.info)).collect();
    let rows = sqlx::query(
        "INSERT INTO devices (tenant_id, gateway_id, name, profile, info, last_boot_id)
         SELECT $1, $2, d.name, d.profile, d.info, $3
         FROM unnest($4::text[], $5::text[], $6::jsonb[]) AS d(name, profile, info)
         ON CONFLICT (gateway_id, name) DO UPDATE SET
             profile = CASE WHEN $7 THEN excluded.profile ELSE devices.profile END,
             info = CASE WHEN $7 THEN excluded.info ELSE devices.info END,
             last_boot_id = CASE WHEN $7 THEN excluded.last_boot_id ELSE devices.last_boot_id END,
             updated_at = CASE WHEN $7 THEN now() ELSE devices.updated_at END
         RETURNING id, name",
    )
    .bind(tenant)
    .bind(gateway)
    .bind(boot)
    .bind(&names)
    .bind(&profiles)
    .bind(&infos)
    .bind(current)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("name")?, r.try_get("id")?)))
        .collect::<Result<_, sqlx::Error>>()
        .map_err(DbError::from)
}

async fn upsert_series(
    conn: &mut PgConnection,
    tenant: TenantId,
    birth: &wire::Birth,
    devices: &HashMap<String, DeviceId>,
    current: bool,
) -> Result<HashMap<(DeviceId, String), SeriesId>, DbError> {
    let (mut device_ids, mut metrics, mut units, mut tags) = (vec![], vec![], vec![], vec![]);
    let mut kinds: Vec<Option<String>> = vec![];
    for device in &birth.devices {
        let id = devices[&device.name];
        for metric in &device.metrics {
            device_ids.push(id);
            metrics.push(series_metric(metric));
            units.push(metric.unit.as_str());
            tags.push(metric.tag.as_str());
            kinds.push(metric.kind.map(|k| kind_name(k).to_owned()));
        }
    }
    let rows = sqlx::query(
        "INSERT INTO series (tenant_id, device_id, metric, unit, tag, kind)
         SELECT $1, s.device_id, s.metric, s.unit, s.tag, s.kind
         FROM unnest($2::bigint[], $3::text[], $4::text[], $5::text[], $7::text[])
              AS s(device_id, metric, unit, tag, kind)
         ON CONFLICT (device_id, metric) DO UPDATE SET
             unit = CASE WHEN $6 THEN excluded.unit ELSE series.unit END,
             tag = CASE WHEN $6 THEN excluded.tag ELSE series.tag END,
             kind = CASE WHEN $6 THEN coalesce(excluded.kind, series.kind) ELSE series.kind END
         RETURNING id, device_id, metric",
    )
    .bind(tenant)
    .bind(&device_ids)
    .bind(&metrics)
    .bind(&units)
    .bind(&tags)
    .bind(current)
    .bind(&kinds)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok((
                (r.try_get("device_id")?, r.try_get("metric")?),
                r.try_get("id")?,
            ))
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(DbError::from)
}

async fn replace_aliases(
    conn: &mut PgConnection,
    tenant: TenantId,
    gateway: GatewayId,
    boot: i64,
    birth: &wire::Birth,
    devices: &HashMap<String, DeviceId>,
    series: &HashMap<(DeviceId, String), SeriesId>,
) -> Result<AliasMap, DbError> {
    let mut entries = HashMap::new();
    for device in &birth.devices {
        let device_id = devices[&device.name];
        for metric in &device.metrics {
            let series_id = series[&(device_id, series_metric(metric))];
            entries.insert(
                (device.alias, metric.alias),
                AliasEntry {
                    series_id,
                    scale: metric.scale,
                    offset: metric.offset,
                },
            );
        }
    }
    sqlx::query("DELETE FROM series_aliases WHERE gateway_id = $1 AND boot_id = $2")
        .bind(gateway)
        .bind(boot)
        .execute(&mut *conn)
        .await?;
    let (mut dev, mut met, mut ser, mut scale, mut offset) =
        (vec![], vec![], vec![], vec![], vec![]);
    for ((d, m), e) in &entries {
        dev.push(i32::from(*d));
        met.push(i32::from(*m));
        ser.push(e.series_id);
        scale.push(e.scale);
        offset.push(e.offset);
    }
    sqlx::query(
        "INSERT INTO series_aliases (tenant_id, gateway_id, boot_id, device_alias, metric_alias,
                                     series_id, scale, value_offset)
         SELECT $1, $2, $3, a.* FROM unnest($4::int[], $5::int[], $6::bigint[],
                                            $7::float8[], $8::float8[]) AS a",
    )
    .bind(tenant)
    .bind(gateway)
    .bind(boot)
    .bind(&dev)
    .bind(&met)
    .bind(&ser)
    .bind(&scale)
    .bind(&offset)
    .execute(&mut *conn)
    .await?;
    Ok(AliasMap { entries })
}

async fn link_devices_to_wells(conn: &mut PgConnection, gateway: GatewayId) -> Result<(), DbError> {
    sqlx::query(
        "UPDATE devices d SET well_id = w.id
         FROM wells w
         WHERE d.gateway_id = $1 AND d.well_id IS NULL AND d.info ? 'well'
           AND w.tenant_id = d.tenant_id
           AND (w.api_number = d.info->>'well' OR w.name = d.info->>'well')",
    )
    .bind(gateway)
    .execute(conn)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_hash_verifies_only_the_right_secret() {
        let secret = generate_gateway_secret();
        assert_eq!(secret.len(), 64);
        let stored = hash_secret(&secret);
        assert!(stored.starts_with("sha256$"));
        assert!(!stored.contains(&secret));
        assert!(verify_secret(&stored, &secret));
        assert!(!verify_secret(&stored, "wrong-secret-wrong-secret"));
        // Salted: the same secret hashes differently each time.
        assert_ne!(hash_secret(&secret), stored);
    }

    #[test]
    fn malformed_stored_hashes_never_verify() {
        for stored in [
            "",
            "sha256$",
            "sha256$zz$zz",
            "md5$00$00",
            "sha256$00$00$00",
        ] {
            assert!(!verify_secret(stored, "anything-at-all-16"), "{stored}");
        }
    }

    #[test]
    fn short_secrets_are_refused() {
        assert!(check_secret("short").is_err());
        assert!(check_secret(&generate_gateway_secret()).is_ok());
    }
}
