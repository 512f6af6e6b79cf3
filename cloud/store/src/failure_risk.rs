//! SQL of predictive maintenance (failure risk): the training data (daily rollups of the
//! lift metrics and the registry's failures and workovers), the model registry
//! (`ml_models`, shared by every [`ModelKind`]: failure risk, emissions, production gaps), the training
//! jobs of every kind, and the failure-risk prediction cache (`failure_risk_predictions`).
//!
//! Runs inside the tenant's scoped transaction; models and predictions are JSON documents
//! written by the `ml` crate (the store does not interpret them).

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::Value as Json;
use sqlx::{PgConnection, Row};

use crate::{DbError, TenantId, WellId, collect};

/// One daily rollup of one of a well's series.
#[derive(Debug, Clone, PartialEq)]
pub struct WellRollup {
    /// Well (through its device).
    pub well: WellId,
    /// Canonical metric.
    pub metric: String,
    /// UTC day.
    pub day: NaiveDate,
    /// Mean, minimum and maximum of the day's good samples.
    pub avg: f64,
    /// Minimum.
    pub min: f64,
    /// Maximum.
    pub max: f64,
}

/// Daily rollups of `metrics` of the tenant's wells for days in `[from, to)`.
pub async fn rollups(
    conn: &mut PgConnection,
    tenant: TenantId,
    metrics: &[&str],
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<WellRollup>, DbError> {
    let rows = sqlx::query(
        "SELECT d.well_id, s.metric, (r.bucket AT TIME ZONE 'UTC')::date AS day,
                r.avg, r.min, r.max
         FROM telemetry_1d r
         JOIN series s ON s.id = r.series_id
         JOIN devices d ON d.id = s.device_id
         WHERE s.tenant_id = $1 AND d.well_id IS NOT NULL AND s.metric = ANY($2)
           AND r.bucket >= $3::date AT TIME ZONE 'UTC' AND r.bucket < $4::date AT TIME ZONE 'UTC'
         ORDER BY d.well_id, day",
    )
    .bind(tenant)
    .bind(metrics)
    .bind(from)
    .bind(to)
    .fetch_all(conn)
    .await?;
    collect(&rows, |r| {
        Ok(WellRollup {
            well: r.try_get("well_id")?,
            metric: r.try_get("metric")?,
            day: r.try_get("day")?,
            avg: r.try_get("avg")?,
            min: r.try_get("min")?,
            max: r.try_get("max")?,
        })
    })
}

/// Failures and workovers of the tenant's wells: (well, kind, UTC day it started).
pub async fn events(
    conn: &mut PgConnection,
    tenant: TenantId,
) -> Result<Vec<(WellId, String, NaiveDate)>, DbError> {
    let rows = sqlx::query(
        "SELECT well_id, kind, (started_at AT TIME ZONE 'UTC')::date AS day
         FROM well_interventions
         WHERE tenant_id = $1 AND kind IN ('failure', 'workover')
         ORDER BY well_id, started_at",
    )
    .bind(tenant)
    .fetch_all(conn)
    .await?;
    collect(&rows, |r| {
        Ok((r.try_get("well_id")?, r.try_get("kind")?, r.try_get("day")?))
    })
}

/// The kind of a registered model (`ml_models.kind`, `training_jobs.model`): one registry,
/// one promotion rule and one job queue for every per-tenant model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ModelKind {
    /// Predictive maintenance (`ml::maintenance::Model`).
    FailureRisk,
    /// Emissions forecasts (`ml::emissions::EmissionsModel`).
    Emissions,
    /// Production gaps (`ml::optimization::GapModel`).
    ProductionGap,
}

impl ModelKind {
    /// Stored name.
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::FailureRisk => "failure_risk",
            ModelKind::Emissions => "emissions",
            ModelKind::ProductionGap => "production_gap",
        }
    }

    /// Every kind.
    pub const ALL: [ModelKind; 3] = [
        ModelKind::FailureRisk,
        ModelKind::Emissions,
        ModelKind::ProductionGap,
    ];
}

/// A model to register.
#[derive(Debug, Clone, PartialEq)]
pub struct NewModel<'a> {
    /// Algorithm name.
    pub algorithm: &'a str,
    /// Feature names, in column order.
    pub features: Vec<&'a str>,
    /// Training window.
    pub window: (NaiveDate, NaiveDate),
    /// SHA-256 (hex) of the training data.
    pub data_hash: &'a str,
    /// Wells trained on.
    pub wells: i32,
    /// Rows trained on.
    pub training_rows: i32,
    /// Held-out metrics (and the model in use's on the same wells).
    pub metrics: Json,
    /// The model itself.
    pub model: Json,
    /// Becomes the active model (the previous active one is retired).
    pub promote: bool,
    /// Why it was or was not promoted.
    pub reason: &'a str,
    /// The active version it was measured against (`None`: none was active). A promotion
    /// stands only while that is still the active one: a model measured against one since
    /// replaced (a concurrent training, a rollback) is registered as a candidate, and its
    /// reason says so.
    pub compared_with: Option<i32>,
}

/// A registered model (without its document unless asked).
#[derive(Debug, Clone, PartialEq)]
pub struct ModelRecord {
    /// Version, 1, 2, …
    pub version: i32,
    /// Algorithm.
    pub algorithm: String,
    /// Features.
    pub features: Vec<String>,
    /// Training window.
    pub window_start: NaiveDate,
    /// End of the training window.
    pub window_end: NaiveDate,
    /// SHA-256 of the training data.
    pub data_hash: String,
    /// Wells trained on.
    pub wells: i32,
    /// Rows trained on.
    pub training_rows: i32,
    /// Held-out metrics.
    pub metrics: Json,
    /// `active`, `candidate` or `retired`.
    pub status: String,
    /// Why it was or was not promoted.
    pub reason: String,
    /// When trained.
    pub trained_at: DateTime<Utc>,
    /// When promoted.
    pub promoted_at: Option<DateTime<Utc>>,
}

const MODEL_COLUMNS: &str = "version, algorithm, features, window_start, window_end, data_hash,
    wells, training_rows, metrics, status, reason, trained_at, promoted_at";

fn model_record(r: &sqlx::postgres::PgRow) -> Result<ModelRecord, sqlx::Error> {
    Ok(ModelRecord {
        version: r.try_get("version")?,
        algorithm: r.try_get("algorithm")?,
        features: r.try_get("features")?,
        window_start: r.try_get("window_start")?,
        window_end: r.try_get("window_end")?,
        data_hash: r.try_get("data_hash")?,
        wells: r.try_get("wells")?,
        training_rows: r.try_get("training_rows")?,
        metrics: r.try_get("metrics")?,
        status: r.try_get("status")?,
        reason: r.try_get("reason")?,
        trained_at: r.try_get("trained_at")?,
        promoted_at: r.try_get("promoted_at")?,
    })
}

/// Registers a model under the next version; when `promote`, retires the active one
/// first. Concurrent trainings of one tenant serialize on the tenant's row lock.
pub async fn insert_model(
    conn: &mut PgConnection,
    tenant: TenantId,
    kind: ModelKind,
    m: &NewModel<'_>,
) -> Result<ModelRecord, DbError> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('ml_models'), $1::int)")
        .bind(i32::try_from(tenant.0 % i64::from(i32::MAX)).unwrap_or(0))
        .execute(&mut *conn)
        .await?;
    let active: Option<i32> = sqlx::query_scalar(
        "SELECT version FROM ml_models
         WHERE tenant_id = $1 AND kind = $2 AND status = 'active'",
    )
    .bind(tenant)
    .bind(kind.name())
    .fetch_optional(&mut *conn)
    .await?;
    let promote = m.promote && active == m.compared_with;
    let reason = if m.promote && !promote {
        format!(
            "{}; not promoted: the model in use changed while it trained (active now: {})",
            m.reason,
            active.map_or_else(|| "none".to_owned(), |v| format!("version {v}"))
        )
    } else {
        m.reason.to_owned()
    };
    if promote {
        sqlx::query(
            "UPDATE ml_models SET status = 'retired'
             WHERE tenant_id = $1 AND kind = $2 AND status = 'active'",
        )
        .bind(tenant)
        .bind(kind.name())
        .execute(&mut *conn)
        .await?;
    }
    let row = sqlx::query(&format!(
        "INSERT INTO ml_models (tenant_id, version, algorithm, features, window_start,
             window_end, data_hash, wells, training_rows, metrics, model, status, reason,
             promoted_at, kind)
         SELECT $1, COALESCE(max(version), 0) + 1, $2, $3, $4, $5, $6, $7, $8, $9, $10,
                CASE WHEN $11 THEN 'active' ELSE 'candidate' END, $12,
                CASE WHEN $11 THEN now() END, $13
         FROM ml_models WHERE tenant_id = $1
         RETURNING {MODEL_COLUMNS}"
    ))
    .bind(tenant)
    .bind(m.algorithm)
    .bind(&m.features)
    .bind(m.window.0)
    .bind(m.window.1)
    .bind(m.data_hash)
    .bind(m.wells)
    .bind(m.training_rows)
    .bind(&m.metrics)
    .bind(&m.model)
    .bind(promote)
    .bind(&reason)
    .bind(kind.name())
    .fetch_one(conn)
    .await?;
    Ok(model_record(&row)?)
}

/// Makes `version` the active model by hand (a rollback, or a candidate an engineer
/// trusts), retiring the active one; returns it with its document (`None`: no such
/// version). Activating the active model changes nothing.
pub async fn activate(
    conn: &mut PgConnection,
    tenant: TenantId,
    kind: ModelKind,
    version: i32,
) -> Result<Option<(ModelRecord, Json)>, DbError> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('ml_models'), $1::int)")
        .bind(i32::try_from(tenant.0 % i64::from(i32::MAX)).unwrap_or(0))
        .execute(&mut *conn)
        .await?;
    let exists: Option<String> = sqlx::query_scalar(
        "SELECT status FROM ml_models WHERE tenant_id = $1 AND version = $2 AND kind = $3",
    )
    .bind(tenant)
    .bind(version)
    .bind(kind.name())
    .fetch_optional(&mut *conn)
    .await?;
    match exists.as_deref() {
        None => return Ok(None),
        Some("active") => {}
        Some(_) => {
            sqlx::query(
                "UPDATE ml_models SET status = 'retired'
                 WHERE tenant_id = $1 AND kind = $2 AND status = 'active'",
            )
            .bind(tenant)
            .bind(kind.name())
            .execute(&mut *conn)
            .await?;
            sqlx::query(
                "UPDATE ml_models
                 SET status = 'active', promoted_at = now(), reason = 'activated by hand'
                 WHERE tenant_id = $1 AND version = $2",
            )
            .bind(tenant)
            .bind(version)
            .execute(&mut *conn)
            .await?;
        }
    }
    let row = sqlx::query(&format!(
        "SELECT {MODEL_COLUMNS}, model FROM ml_models
         WHERE tenant_id = $1 AND version = $2"
    ))
    .bind(tenant)
    .bind(version)
    .fetch_one(conn)
    .await?;
    Ok(Some((model_record(&row)?, row.try_get("model")?)))
}

/// The tenant's models, newest first.
pub async fn models(
    conn: &mut PgConnection,
    tenant: TenantId,
    kind: ModelKind,
) -> Result<Vec<ModelRecord>, DbError> {
    let rows = sqlx::query(&format!(
        "SELECT {MODEL_COLUMNS} FROM ml_models WHERE tenant_id = $1 AND kind = $2
         ORDER BY version DESC"
    ))
    .bind(tenant)
    .bind(kind.name())
    .fetch_all(conn)
    .await?;
    collect(&rows, model_record)
}

/// Tenants with an active model (owner connection: the periodic refresh).
pub async fn tenants_with_active_model(
    conn: &mut PgConnection,
    kind: ModelKind,
) -> Result<Vec<TenantId>, DbError> {
    Ok(sqlx::query_scalar(
        "SELECT tenant_id FROM ml_models WHERE status = 'active' AND kind = $1
         ORDER BY tenant_id",
    )
    .bind(kind.name())
    .fetch_all(conn)
    .await?)
}

/// The active model's version and document.
pub async fn active_model(
    conn: &mut PgConnection,
    tenant: TenantId,
    kind: ModelKind,
) -> Result<Option<(i32, Json)>, DbError> {
    let row = sqlx::query(
        "SELECT version, model FROM ml_models
         WHERE tenant_id = $1 AND kind = $2 AND status = 'active'",
    )
    .bind(tenant)
    .bind(kind.name())
    .fetch_optional(conn)
    .await?;
    Ok(match row {
        Some(r) => Some((r.try_get("version")?, r.try_get("model")?)),
        None => None,
    })
}

/// One cached prediction.
#[derive(Debug, Clone, PartialEq)]
pub struct PredictionRow {
    /// Well.
    pub well: WellId,
    /// Day scored.
    pub day: NaiveDate,
    /// Model version that made it.
    pub model_version: i32,
    /// `rod_pump`, `esp` or `plunger_lift`.
    pub lift: String,
    /// Probabilities of a failure within 7, 14, 30 days.
    pub p7: f64,
    /// 14 days.
    pub p14: f64,
    /// 30 days.
    pub p30: f64,
    /// The factors, as the `ml` crate wrote them.
    pub factors: Json,
    /// When computed.
    pub computed_at: DateTime<Utc>,
}

/// Replaces the tenant's cached predictions with `rows` (one statement each way).
pub async fn replace_predictions(
    conn: &mut PgConnection,
    tenant: TenantId,
    rows: &[PredictionRow],
) -> Result<(), DbError> {
    sqlx::query("DELETE FROM failure_risk_predictions WHERE tenant_id = $1")
        .bind(tenant)
        .execute(&mut *conn)
        .await?;
    if rows.is_empty() {
        return Ok(());
    }
    let col = |f: fn(&PredictionRow) -> f64| rows.iter().map(f).collect::<Vec<f64>>();
    sqlx::query(
        "INSERT INTO failure_risk_predictions (tenant_id, well_id, day, model_version, lift,
             p7, p14, p30, factors, computed_at)
         SELECT $1, x.well, x.day, x.version, x.lift, x.p7, x.p14, x.p30, x.factors, x.at
         FROM unnest($2::bigint[], $3::date[], $4::int[], $5::text[], $6::float8[],
                     $7::float8[], $8::float8[], $9::jsonb[], $10::timestamptz[])
              AS x(well, day, version, lift, p7, p14, p30, factors, at)",
    )
    .bind(tenant)
    .bind(rows.iter().map(|r| r.well).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.day).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.model_version).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.lift.clone()).collect::<Vec<_>>())
    .bind(col(|r| r.p7))
    .bind(col(|r| r.p14))
    .bind(col(|r| r.p30))
    .bind(rows.iter().map(|r| r.factors.clone()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.computed_at).collect::<Vec<_>>())
    .execute(conn)
    .await?;
    Ok(())
}

const PREDICTION_COLUMNS: &str =
    "well_id, day, model_version, lift, p7, p14, p30, factors, computed_at";

fn prediction_row(r: &sqlx::postgres::PgRow) -> Result<PredictionRow, sqlx::Error> {
    Ok(PredictionRow {
        well: r.try_get("well_id")?,
        day: r.try_get("day")?,
        model_version: r.try_get("model_version")?,
        lift: r.try_get("lift")?,
        p7: r.try_get("p7")?,
        p14: r.try_get("p14")?,
        p30: r.try_get("p30")?,
        factors: r.try_get("factors")?,
        computed_at: r.try_get("computed_at")?,
    })
}

/// The tenant's cached predictions, highest 30-day risk first, at most `limit`.
pub async fn ranked(
    conn: &mut PgConnection,
    tenant: TenantId,
    limit: i64,
) -> Result<Vec<PredictionRow>, DbError> {
    let rows = sqlx::query(&format!(
        "SELECT {PREDICTION_COLUMNS} FROM failure_risk_predictions WHERE tenant_id = $1
         ORDER BY p30 DESC, p14 DESC, well_id LIMIT $2"
    ))
    .bind(tenant)
    .bind(limit)
    .fetch_all(conn)
    .await?;
    collect(&rows, prediction_row)
}

/// A well's cached prediction.
pub async fn prediction(
    conn: &mut PgConnection,
    tenant: TenantId,
    well: WellId,
) -> Result<Option<PredictionRow>, DbError> {
    let row = sqlx::query(&format!(
        "SELECT {PREDICTION_COLUMNS} FROM failure_risk_predictions
         WHERE tenant_id = $1 AND well_id = $2"
    ))
    .bind(tenant)
    .bind(well)
    .fetch_optional(conn)
    .await?;
    Ok(match row {
        Some(r) => Some(prediction_row(&r)?),
        None => None,
    })
}

/// A training job (`training_jobs`).
#[derive(Debug, Clone, PartialEq)]
pub struct TrainingJob {
    /// Id.
    pub id: i64,
    /// Tenant.
    pub tenant: TenantId,
    /// The kind of model it trains (`failure_risk`, `emissions`).
    pub model: String,
    /// `on_demand` or `scheduled`.
    pub trigger: String,
    /// Who asked (`user:…`, `key:…`, or `schedule`).
    pub requested_by: String,
    /// `queued`, `running`, `succeeded` or `failed`.
    pub status: String,
    /// What it is doing.
    pub stage: String,
    /// 0..=1.
    pub progress: f64,
    /// The model it registered.
    pub model_version: Option<i32>,
    /// Why it failed.
    pub error: Option<String>,
    /// When asked.
    pub requested_at: DateTime<Utc>,
    /// When started.
    pub started_at: Option<DateTime<Utc>>,
    /// When finished.
    pub finished_at: Option<DateTime<Utc>>,
}

const JOB_COLUMNS: &str = "id, tenant_id, model, trigger, requested_by, status, stage, progress, \
                           model_version, error, requested_at, started_at, finished_at";

fn job_row(r: &sqlx::postgres::PgRow) -> Result<TrainingJob, sqlx::Error> {
    Ok(TrainingJob {
        id: r.try_get("id")?,
        tenant: r.try_get("tenant_id")?,
        model: r.try_get("model")?,
        trigger: r.try_get("trigger")?,
        requested_by: r.try_get("requested_by")?,
        status: r.try_get("status")?,
        stage: r.try_get("stage")?,
        progress: r.try_get("progress")?,
        model_version: r.try_get("model_version")?,
        error: r.try_get("error")?,
        requested_at: r.try_get("requested_at")?,
        started_at: r.try_get("started_at")?,
        finished_at: r.try_get("finished_at")?,
    })
}

/// Queues a training job for a kind of model; when one is already queued or running,
/// returns it instead (`false`: not newly queued).
pub async fn enqueue_training(
    conn: &mut PgConnection,
    tenant: TenantId,
    kind: ModelKind,
    trigger: &str,
    requested_by: &str,
) -> Result<(TrainingJob, bool), DbError> {
    let row = sqlx::query(&format!(
        "INSERT INTO training_jobs (tenant_id, model, trigger, requested_by, status)
         VALUES ($1, $4, $2, $3, 'queued')
         ON CONFLICT (tenant_id, model) WHERE status IN ('queued', 'running') DO NOTHING
         RETURNING {JOB_COLUMNS}"
    ))
    .bind(tenant)
    .bind(trigger)
    .bind(requested_by)
    .bind(kind.name())
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(r) = row {
        return Ok((job_row(&r)?, true));
    }
    let open = sqlx::query(&format!(
        "SELECT {JOB_COLUMNS} FROM training_jobs
         WHERE tenant_id = $1 AND model = $2 AND status IN ('queued', 'running')"
    ))
    .bind(tenant)
    .bind(kind.name())
    .fetch_one(conn)
    .await?;
    Ok((job_row(&open)?, false))
}

/// Claims the oldest queued job of any tenant (the worker's own connection, not a tenant
/// transaction): it becomes `running`. Two workers never claim one job.
pub async fn claim_training(conn: &mut PgConnection) -> Result<Option<TrainingJob>, DbError> {
    // A job left running by a worker that stopped would block its tenant for good.
    sqlx::query(
        "UPDATE training_jobs SET status = 'failed', stage = 'failed', progress = 1,
                                  error = 'abandoned: the worker running it stopped',
                                  finished_at = now()
         WHERE status = 'running' AND started_at < now() - interval '1 hour'",
    )
    .execute(&mut *conn)
    .await?;
    let row = sqlx::query(&format!(
        "UPDATE training_jobs SET status = 'running', stage = 'reading data',
                                  progress = 0.05, started_at = now()
         WHERE id = (SELECT id FROM training_jobs WHERE status = 'queued'
                     ORDER BY requested_at, id LIMIT 1 FOR UPDATE SKIP LOCKED)
         RETURNING {JOB_COLUMNS}"
    ))
    .fetch_optional(conn)
    .await?;
    Ok(row.as_ref().map(job_row).transpose()?)
}

/// Records a running job's stage.
pub async fn training_stage(
    conn: &mut PgConnection,
    id: i64,
    stage: &str,
    progress: f64,
) -> Result<(), DbError> {
    sqlx::query(
        "UPDATE training_jobs SET stage = $2, progress = $3 WHERE id = $1 AND status = 'running'",
    )
    .bind(id)
    .bind(stage)
    .bind(progress.clamp(0.0, 1.0))
    .execute(conn)
    .await?;
    Ok(())
}

/// Finishes a running job: the model it registered, or why it failed.
pub async fn finish_training(
    conn: &mut PgConnection,
    id: i64,
    outcome: Result<i32, &str>,
) -> Result<(), DbError> {
    let (status, version, error) = match outcome {
        Ok(v) => ("succeeded", Some(v), None),
        Err(e) => ("failed", None, Some(e)),
    };
    sqlx::query(
        "UPDATE training_jobs SET status = $2, stage = $2, progress = 1, model_version = $3,
                                  error = $4, finished_at = now()
         WHERE id = $1",
    )
    .bind(id)
    .bind(status)
    .bind(version)
    .bind(error)
    .execute(conn)
    .await?;
    Ok(())
}

/// One job of a tenant.
pub async fn training_job(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: i64,
) -> Result<Option<TrainingJob>, DbError> {
    let row = sqlx::query(&format!(
        "SELECT {JOB_COLUMNS} FROM training_jobs WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(tenant)
    .bind(id)
    .fetch_optional(conn)
    .await?;
    Ok(row.as_ref().map(job_row).transpose()?)
}

/// A tenant's jobs, newest first.
pub async fn training_jobs(
    conn: &mut PgConnection,
    tenant: TenantId,
    limit: i64,
) -> Result<Vec<TrainingJob>, DbError> {
    let rows = sqlx::query(&format!(
        "SELECT {JOB_COLUMNS} FROM training_jobs WHERE tenant_id = $1
         ORDER BY requested_at DESC, id DESC LIMIT $2"
    ))
    .bind(tenant)
    .bind(limit)
    .fetch_all(conn)
    .await?;
    collect(&rows, job_row)
}

/// Tenants whose newest model of a kind was trained before `before` and that have no
/// open job for it: due for scheduled retraining (the worker's own connection).
pub async fn tenants_due_for_training(
    conn: &mut PgConnection,
    kind: ModelKind,
    before: DateTime<Utc>,
) -> Result<Vec<TenantId>, DbError> {
    Ok(sqlx::query_scalar(
        "SELECT m.tenant_id FROM ml_models m WHERE m.kind = $2
         GROUP BY m.tenant_id HAVING max(m.trained_at) < $1
            AND NOT EXISTS (SELECT 1 FROM training_jobs j WHERE j.tenant_id = m.tenant_id
                            AND j.model = $2 AND j.status IN ('queued', 'running'))
         ORDER BY m.tenant_id",
    )
    .bind(before)
    .bind(kind.name())
    .fetch_all(conn)
    .await?)
}
