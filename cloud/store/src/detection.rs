//! Detection's storage: the backlog of stored batches still to be scored, each device's
//! detector state (read `FOR UPDATE` and written back in the scoring transaction), the
//! tenants' rules, the per-well models and the training data they are fitted on.
//!
//! The backlog (`detection_backlog`) is filled by the ingest transaction itself
//! ([`crate::IngestTx::queue_for_detection`]); a scoring transaction first claims its
//! batches with [`claim_backlog`] (deleting their rows), and scores only those it claimed,
//! so a batch is scored once whether the live worker or a [`Db::stale_backlog`] sweep
//! gets to it first.
//!
//! The state (opaque bytes, `detect::DeviceState::to_bytes`) and the models (jsonb) are
//! documents this crate does not interpret (`detect::DeviceState`, `detect::WellModel`):
//! the `detect` crate owns their shape, the store keeps them. Rows of one transaction are
//! locked in device-id order, so two ingesters scoring batches of the same devices never
//! deadlock.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, Row};

use crate::query::quality_from_db;
use crate::telemetry::{batch_key_of, key_arrays};
use crate::{
    BatchKey, Db, DbError, DeviceId, SeriesId, TelemetryRow, TenantId, WellId, boot_from_db,
    boot_to_db,
};

/// A stored batch still in the detection backlog, as the sweep reads it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingBatch {
    /// (gateway, epoch, seq).
    pub key: BatchKey,
    /// The boot whose aliases named its series.
    pub boot_id: u64,
    /// Backlog replay rather than live data.
    pub historical: bool,
    /// Its oldest and newest sample times.
    pub span: Option<(DateTime<Utc>, DateTime<Utc>)>,
}

/// Claims batches for scoring in `conn`'s transaction: deletes their backlog rows and
/// returns the keys that were pending (a batch another transaction claimed, or never
/// queued, is not returned). A concurrent claim of the same batch waits for this
/// transaction and then finds nothing.
pub async fn claim_backlog(
    conn: &mut PgConnection,
    keys: &[BatchKey],
) -> Result<HashSet<BatchKey>, DbError> {
    let mut sorted = keys.to_vec();
    sorted.sort_unstable();
    let (gw, epoch, seq) = key_arrays(sorted.into_iter());
    let rows = sqlx::query(
        "DELETE FROM detection_backlog d
         USING unnest($1::bigint[], $2::bigint[], $3::bigint[]) AS k(gateway_id, epoch, seq)
         WHERE d.gateway_id = k.gateway_id AND d.epoch = k.epoch AND d.seq = k.seq
         RETURNING d.gateway_id, d.epoch, d.seq",
    )
    .bind(&gw)
    .bind(&epoch)
    .bind(&seq)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(batch_key_of)
        .collect::<Result<_, sqlx::Error>>()
        .map_err(DbError::from)
}

impl Db {
    /// Backlog batches received before `before` (left behind by an ingester that stopped
    /// before scoring them, or refused by a full queue), oldest first, at most `limit`.
    pub async fn stale_backlog(
        &self,
        before: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<PendingBatch>, DbError> {
        let rows = sqlx::query(
            "SELECT d.gateway_id, d.epoch, d.seq, b.boot_id, b.historical, b.min_time, b.max_time
             FROM detection_backlog d
             JOIN ingested_batches b USING (gateway_id, epoch, seq)
             WHERE d.received_at < $1
             ORDER BY d.received_at LIMIT $2",
        )
        .bind(before)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                let min: Option<DateTime<Utc>> = r.try_get("min_time")?;
                let max: Option<DateTime<Utc>> = r.try_get("max_time")?;
                Ok(PendingBatch {
                    key: batch_key_of(r)?,
                    boot_id: boot_from_db(r.try_get("boot_id")?),
                    historical: r.try_get("historical")?,
                    span: min.zip(max),
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(DbError::from)
    }

    /// The stored samples of a pending batch, read back: its boot's series within its
    /// time span. (Samples of the gateway's other batches in the same span, if any, are
    /// read too: batches of one gateway rarely overlap in time.)
    pub async fn pending_samples(
        &self,
        batch: &PendingBatch,
    ) -> Result<Vec<TelemetryRow>, DbError> {
        let Some((from, to)) = batch.span else {
            return Ok(Vec::new());
        };
        let rows = sqlx::query(
            "SELECT t.series_id, t.time, t.value, t.quality FROM telemetry t
             WHERE t.series_id IN (SELECT series_id FROM series_aliases
                                   WHERE gateway_id = $1 AND boot_id = $2)
               AND t.time >= $3 AND t.time <= $4",
        )
        .bind(batch.key.0)
        .bind(boot_to_db(batch.boot_id))
        .bind(from)
        .bind(to)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                let time: DateTime<Utc> = r.try_get("time")?;
                Ok(TelemetryRow {
                    ts_ms: time.timestamp_millis(),
                    series_id: r.try_get("series_id")?,
                    value: r.try_get("value")?,
                    quality: quality_from_db(r.try_get("quality")?)?,
                })
            })
            .collect()
    }
}

/// What detection needs to know of a series: whose it is and what it measures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeriesInfo {
    /// Owner.
    pub tenant: TenantId,
    /// Device.
    pub device: DeviceId,
    /// Metric name (canonical, `custom.<name>` or `vendor:<tag>`).
    pub metric: String,
    /// The device's firmware profile.
    pub profile: String,
    /// The device's name.
    pub device_name: String,
}

impl Db {
    /// The owner, device and metric of each series (unknown ids are left out).
    pub async fn series_info(
        &self,
        ids: &[SeriesId],
    ) -> Result<Vec<(SeriesId, SeriesInfo)>, DbError> {
        let rows = sqlx::query(
            "SELECT s.id, s.tenant_id, s.device_id, s.metric, d.profile, d.name
             FROM series s JOIN devices d ON d.id = s.device_id
             WHERE s.id = ANY($1)",
        )
        .bind(ids)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("id")?,
                    SeriesInfo {
                        tenant: r.try_get("tenant_id")?,
                        device: r.try_get("device_id")?,
                        metric: r.try_get("metric")?,
                        profile: r.try_get("profile")?,
                        device_name: r.try_get("name")?,
                    },
                ))
            })
            .collect()
    }
}

/// Locks the detector state rows of `devices` (creating empty ones) and returns each
/// device's state (`None` for a device seen for the first time).
pub async fn lock_states(
    conn: &mut PgConnection,
    devices: &[(DeviceId, TenantId)],
) -> Result<HashMap<DeviceId, Option<Vec<u8>>>, DbError> {
    let mut sorted = devices.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let ids: Vec<DeviceId> = sorted.iter().map(|(d, _)| *d).collect();
    let mut out = select_states(conn, &ids).await?;
    if out.len() == ids.len() {
        return Ok(out);
    }
    // A device's first batch: its row appears (the insert takes no lock on rows that
    // exist), then it is locked like the others. Locks stay in device-id order: the new
    // ids are locked after the existing ones, but rows no other transaction could lock
    // before they existed.
    let (new_ids, new_tenants): (Vec<DeviceId>, Vec<TenantId>) = sorted
        .into_iter()
        .filter(|(d, _)| !out.contains_key(d))
        .unzip();
    sqlx::query(
        "INSERT INTO detector_states (device_id, tenant_id, state)
         SELECT d, t, NULL FROM unnest($1::bigint[], $2::bigint[]) AS x(d, t)
         ON CONFLICT (device_id) DO NOTHING",
    )
    .bind(&new_ids)
    .bind(&new_tenants)
    .execute(&mut *conn)
    .await?;
    out.extend(select_states(conn, &new_ids).await?);
    Ok(out)
}

/// The states of `ids` (sorted), locked in that order.
async fn select_states(
    conn: &mut PgConnection,
    ids: &[DeviceId],
) -> Result<HashMap<DeviceId, Option<Vec<u8>>>, DbError> {
    let rows = sqlx::query(
        "SELECT device_id, state FROM detector_states
         WHERE device_id = ANY($1) ORDER BY device_id FOR UPDATE",
    )
    .bind(ids)
    .fetch_all(&mut *conn)
    .await?;
    let mut out = HashMap::with_capacity(rows.len());
    for r in rows {
        out.insert(r.try_get("device_id")?, r.try_get("state")?);
    }
    Ok(out)
}

/// A device's detector state after a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct StateUpdate {
    /// Device.
    pub device: DeviceId,
    /// `detect::DeviceState` in its stored form.
    pub state: Vec<u8>,
    /// Newest sample seen.
    pub last_sample_at: Option<DateTime<Utc>>,
}

/// Writes back the states [`lock_states`] locked.
pub async fn save_states(conn: &mut PgConnection, updates: &[StateUpdate]) -> Result<(), DbError> {
    if updates.is_empty() {
        return Ok(());
    }
    let ids: Vec<DeviceId> = updates.iter().map(|u| u.device).collect();
    let states: Vec<&[u8]> = updates.iter().map(|u| u.state.as_slice()).collect();
    let last: Vec<Option<DateTime<Utc>>> = updates.iter().map(|u| u.last_sample_at).collect();
    sqlx::query(
        "UPDATE detector_states s
         SET state = x.state, updated_at = now(),
             last_sample_at = GREATEST(s.last_sample_at, x.last_sample_at)
         FROM unnest($1::bigint[], $2::bytea[], $3::timestamptz[]) AS x(device_id, state, last_sample_at)
         WHERE s.device_id = x.device_id",
    )
    .bind(&ids)
    .bind(&states)
    .bind(&last)
    .execute(conn)
    .await?;
    Ok(())
}

/// A device whose newest sample is older than asked (the silence sweep's candidates),
/// locked for the caller's transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct QuietDevice {
    /// Owner.
    pub tenant: TenantId,
    /// Device.
    pub device: DeviceId,
    /// Its state (stored form).
    pub state: Vec<u8>,
}

/// Devices with a state whose newest sample is older than `before`, locked (skipping rows
/// an ingester holds: that device is not quiet).
pub async fn quiet_devices(
    conn: &mut PgConnection,
    before: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<QuietDevice>, DbError> {
    let rows = sqlx::query(
        "SELECT s.device_id, s.tenant_id, s.state FROM detector_states s
         JOIN tenants t ON t.id = s.tenant_id
         WHERE s.last_sample_at < $1 AND s.state IS NOT NULL AND t.status = 'active'
         ORDER BY s.device_id LIMIT $2
         FOR UPDATE OF s SKIP LOCKED",
    )
    .bind(before)
    .bind(limit)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(QuietDevice {
                tenant: r.try_get("tenant_id")?,
                device: r.try_get("device_id")?,
                state: r.try_get("state")?,
            })
        })
        .collect()
}

/// A tenant rule (`detect::Rule` plus its bookkeeping).
#[derive(Debug, Clone, PartialEq)]
pub struct RuleRow {
    /// Id.
    pub id: i64,
    /// Owner.
    pub tenant: TenantId,
    /// Name.
    pub name: String,
    /// Canonical metric.
    pub metric: String,
    /// `detect::RuleCondition` as JSON.
    pub condition: serde_json::Value,
    /// `info`, `warning`, `critical`.
    pub severity: String,
    /// Hold (ms).
    pub for_ms: i64,
    /// Applied.
    pub enabled: bool,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

const RULE_COLUMNS: &str =
    "id, tenant_id, name, metric, condition, severity, for_ms, enabled, created_at, updated_at";

fn rule_row(r: &sqlx::postgres::PgRow) -> Result<RuleRow, DbError> {
    Ok(RuleRow {
        id: r.try_get("id")?,
        tenant: r.try_get("tenant_id")?,
        name: r.try_get("name")?,
        metric: r.try_get("metric")?,
        condition: r.try_get("condition")?,
        severity: r.try_get("severity")?,
        for_ms: r.try_get("for_ms")?,
        enabled: r.try_get("enabled")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

impl Db {
    /// The enabled rules of `tenants` (the ingester's cache).
    pub async fn enabled_rules(&self, tenants: &[TenantId]) -> Result<Vec<RuleRow>, DbError> {
        let rows = sqlx::query(&format!(
            "SELECT {RULE_COLUMNS} FROM detection_rules
             WHERE tenant_id = ANY($1) AND enabled ORDER BY id"
        ))
        .bind(tenants)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(rule_row).collect()
    }
}

/// A tenant's rules.
pub async fn rules(conn: &mut PgConnection, tenant: TenantId) -> Result<Vec<RuleRow>, DbError> {
    let rows = sqlx::query(&format!(
        "SELECT {RULE_COLUMNS} FROM detection_rules WHERE tenant_id = $1 ORDER BY id"
    ))
    .bind(tenant)
    .fetch_all(conn)
    .await?;
    rows.iter().map(rule_row).collect()
}

/// One rule of a tenant.
pub async fn rule(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: i64,
) -> Result<Option<RuleRow>, DbError> {
    let row = sqlx::query(&format!(
        "SELECT {RULE_COLUMNS} FROM detection_rules WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(tenant)
    .bind(id)
    .fetch_optional(conn)
    .await?;
    row.as_ref().map(rule_row).transpose()
}

/// A rule to create or the new content of one.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleInput<'a> {
    /// Name.
    pub name: &'a str,
    /// Canonical metric.
    pub metric: &'a str,
    /// Condition JSON.
    pub condition: &'a serde_json::Value,
    /// Severity.
    pub severity: &'a str,
    /// Hold (ms).
    pub for_ms: i64,
    /// Applied.
    pub enabled: bool,
}

/// Creates a rule.
pub async fn create_rule(
    conn: &mut PgConnection,
    tenant: TenantId,
    rule: &RuleInput<'_>,
) -> Result<RuleRow, DbError> {
    let row = sqlx::query(&format!(
        "INSERT INTO detection_rules (tenant_id, name, metric, condition, severity, for_ms, enabled)
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {RULE_COLUMNS}"
    ))
    .bind(tenant)
    .bind(rule.name)
    .bind(rule.metric)
    .bind(rule.condition)
    .bind(rule.severity)
    .bind(rule.for_ms)
    .bind(rule.enabled)
    .fetch_one(conn)
    .await?;
    rule_row(&row)
}

/// Replaces a rule; `None` when there is no such rule.
pub async fn update_rule(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: i64,
    rule: &RuleInput<'_>,
) -> Result<Option<RuleRow>, DbError> {
    let row = sqlx::query(&format!(
        "UPDATE detection_rules SET name = $3, metric = $4, condition = $5, severity = $6,
                for_ms = $7, enabled = $8, updated_at = now()
         WHERE tenant_id = $1 AND id = $2 RETURNING {RULE_COLUMNS}"
    ))
    .bind(tenant)
    .bind(id)
    .bind(rule.name)
    .bind(rule.metric)
    .bind(rule.condition)
    .bind(rule.severity)
    .bind(rule.for_ms)
    .bind(rule.enabled)
    .fetch_optional(conn)
    .await?;
    row.as_ref().map(rule_row).transpose()
}

/// Deletes a rule; whether it existed.
pub async fn delete_rule(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: i64,
) -> Result<bool, DbError> {
    let done = sqlx::query("DELETE FROM detection_rules WHERE tenant_id = $1 AND id = $2")
        .bind(tenant)
        .bind(id)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// A stored model version.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelRow {
    /// Row id.
    pub id: i64,
    /// Well.
    pub well: WellId,
    /// Device whose series it reads.
    pub device: DeviceId,
    /// Version (per device, from 1).
    pub version: i32,
    /// Algorithm.
    pub algorithm: String,
    /// Feature metrics.
    pub features: Vec<String>,
    /// `detect::WellModel` as JSON.
    pub model: serde_json::Value,
    /// Training window.
    pub trained_from: DateTime<Utc>,
    /// See `trained_from`.
    pub trained_to: DateTime<Utc>,
    /// Rows trained on.
    pub training_rows: i32,
    /// Training metrics.
    pub metrics: serde_json::Value,
    /// SHA-256 of the training matrix.
    pub data_hash: String,
    /// In use.
    pub active: bool,
    /// Stored.
    pub created_at: DateTime<Utc>,
}

const MODEL_COLUMNS: &str = "id, well_id, device_id, version, algorithm, features, model, \
     trained_from, trained_to, training_rows, metrics, data_hash, active, created_at";

fn model_row(r: &sqlx::postgres::PgRow) -> Result<ModelRow, DbError> {
    Ok(ModelRow {
        id: r.try_get("id")?,
        well: r.try_get("well_id")?,
        device: r.try_get("device_id")?,
        version: r.try_get("version")?,
        algorithm: r.try_get("algorithm")?,
        features: r.try_get("features")?,
        model: r.try_get("model")?,
        trained_from: r.try_get("trained_from")?,
        trained_to: r.try_get("trained_to")?,
        training_rows: r.try_get("training_rows")?,
        metrics: r.try_get("metrics")?,
        data_hash: r.try_get("data_hash")?,
        active: r.try_get("active")?,
        created_at: r.try_get("created_at")?,
    })
}

impl Db {
    /// The active model of each of `devices` that has one.
    pub async fn active_models(&self, devices: &[DeviceId]) -> Result<Vec<ModelRow>, DbError> {
        let rows = sqlx::query(&format!(
            "SELECT {MODEL_COLUMNS} FROM detection_models WHERE active AND device_id = ANY($1)"
        ))
        .bind(devices)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(model_row).collect()
    }

    /// Devices linked to a well, with their tenant and profile: what training visits.
    pub async fn training_targets(&self) -> Result<Vec<TrainingTarget>, DbError> {
        let rows = sqlx::query(
            "SELECT d.tenant_id, d.well_id, d.id AS device_id, d.profile
             FROM devices d JOIN tenants t ON t.id = d.tenant_id
             WHERE d.well_id IS NOT NULL AND t.status = 'active' ORDER BY d.id",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(TrainingTarget {
                    tenant: r.try_get("tenant_id")?,
                    well: r.try_get("well_id")?,
                    device: r.try_get("device_id")?,
                    profile: r.try_get("profile")?,
                })
            })
            .collect()
    }

    /// One-minute averages of `device`'s good samples in `[from, to)`: one row per minute
    /// in which every returned metric has a value, columns in `metrics` order. Metrics are
    /// the device's gauge series (canonical names) with at least `min_rows` minutes.
    pub async fn training_matrix(
        &self,
        device: DeviceId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        min_rows: i64,
    ) -> Result<(Vec<String>, Vec<Vec<f64>>), DbError> {
        let mut conn = self.pool().acquire().await?;
        let metrics: Vec<(SeriesId, String)> = sqlx::query_as(
            "SELECT s.id, s.metric FROM series s JOIN telemetry_1m r ON r.series_id = s.id
             WHERE s.device_id = $1 AND s.metric !~ '[:.]' AND r.bucket >= $2 AND r.bucket < $3
             GROUP BY s.id, s.metric HAVING count(*) >= $4 ORDER BY s.metric",
        )
        .bind(device)
        .bind(from)
        .bind(to)
        .bind(min_rows)
        .fetch_all(&mut *conn)
        .await?;
        let ids: Vec<SeriesId> = metrics.iter().map(|m| m.0).collect();
        let rows = sqlx::query(
            "SELECT bucket, array_agg(avg ORDER BY ord) AS values
             FROM telemetry_1m r JOIN unnest($1::bigint[]) WITH ORDINALITY AS x(series_id, ord)
                  ON x.series_id = r.series_id
             WHERE r.bucket >= $2 AND r.bucket < $3 AND r.avg IS NOT NULL
             GROUP BY bucket HAVING count(*) = cardinality($1::bigint[]) ORDER BY bucket",
        )
        .bind(&ids)
        .bind(from)
        .bind(to)
        .fetch_all(&mut *conn)
        .await?;
        let matrix = rows
            .iter()
            .map(|r| r.try_get::<Vec<f64>, _>("values"))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((metrics.into_iter().map(|m| m.1).collect(), matrix))
    }
}

/// A device a model may be trained for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrainingTarget {
    /// Owner.
    pub tenant: TenantId,
    /// Its well.
    pub well: WellId,
    /// The device.
    pub device: DeviceId,
    /// Its profile.
    pub profile: String,
}

/// A newly trained model to store.
#[derive(Debug, Clone, PartialEq)]
pub struct NewModel<'a> {
    /// Target.
    pub target: &'a TrainingTarget,
    /// Algorithm.
    pub algorithm: &'a str,
    /// Features.
    pub features: &'a [String],
    /// The model JSON (its `version` is set by [`store_model`]).
    pub model: serde_json::Value,
    /// Training window.
    pub trained_from: DateTime<Utc>,
    /// See `trained_from`.
    pub trained_to: DateTime<Utc>,
    /// Rows.
    pub training_rows: i32,
    /// Metrics.
    pub metrics: serde_json::Value,
    /// SHA-256 of the matrix, hex.
    pub data_hash: &'a str,
}

/// Stores a model as the device's next version and makes it the active one; returns the
/// version.
pub async fn store_model(db: &Db, m: &NewModel<'_>) -> Result<i32, DbError> {
    let mut tx = db.pool().begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('detection_models', $1))")
        .bind(m.target.device.0)
        .execute(&mut *tx)
        .await?;
    let version: i32 = sqlx::query_scalar(
        "SELECT COALESCE(max(version), 0) + 1 FROM detection_models WHERE device_id = $1",
    )
    .bind(m.target.device)
    .fetch_one(&mut *tx)
    .await?;
    let mut model = m.model.clone();
    if let Some(obj) = model.as_object_mut() {
        obj.insert("version".to_owned(), serde_json::Value::from(version));
    }
    sqlx::query("UPDATE detection_models SET active = false WHERE device_id = $1 AND active")
        .bind(m.target.device)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO detection_models (tenant_id, well_id, device_id, version, algorithm,
             features, model, trained_from, trained_to, training_rows, metrics, data_hash)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(m.target.tenant)
    .bind(m.target.well)
    .bind(m.target.device)
    .bind(version)
    .bind(m.algorithm)
    .bind(m.features)
    .bind(&model)
    .bind(m.trained_from)
    .bind(m.trained_to)
    .bind(m.training_rows)
    .bind(&m.metrics)
    .bind(m.data_hash)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(version)
}

/// The model versions of a well's devices, newest first.
pub async fn models_of_well(
    conn: &mut PgConnection,
    tenant: TenantId,
    well: WellId,
) -> Result<Vec<ModelRow>, DbError> {
    let rows = sqlx::query(&format!(
        "SELECT {MODEL_COLUMNS} FROM detection_models WHERE tenant_id = $1 AND well_id = $2
         ORDER BY created_at DESC, id DESC"
    ))
    .bind(tenant)
    .bind(well)
    .fetch_all(conn)
    .await?;
    rows.iter().map(model_row).collect()
}
