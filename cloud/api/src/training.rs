//! Training jobs of every kind of per-tenant model (`training_jobs`, one queue): the
//! server's `failure_risk_training` worker ([`run_training_jobs`]) claims the oldest queued
//! job of any tenant and runs the training of its kind (`failure_risk::run_job`,
//! `forecasts::run_emissions_job`), recording its stage and progress;
//! `failure_risk_training_schedule` ([`schedule_training`]) queues a scheduled job for
//! every tenant whose newest model of a kind is older than the period. Not an area: the
//! areas' routes queue and show jobs with these types.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use store::failure_risk::{self as sql, ModelKind, ModelRecord};

use crate::ApiError;

/// A training job.
#[derive(Debug, Serialize, ToSchema)]
pub struct TrainingJobDto {
    /// Id.
    pub id: i64,
    /// The kind of model it trains: `failure_risk` or `emissions`.
    pub model: String,
    /// `on_demand` or `scheduled`.
    pub trigger: String,
    /// Who asked (the caller's actor, or `schedule`).
    pub requested_by: String,
    /// `queued`, `running`, `succeeded` or `failed`.
    pub status: String,
    /// What it is doing: `queued`, `reading data`, `training`, `registering`, then its
    /// status.
    pub stage: String,
    /// 0 to 1.
    pub progress: f64,
    /// The model it registered (active only if it beat the one in use).
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

impl From<sql::TrainingJob> for TrainingJobDto {
    fn from(j: sql::TrainingJob) -> Self {
        TrainingJobDto {
            id: j.id,
            model: j.model,
            trigger: j.trigger,
            requested_by: j.requested_by,
            status: j.status,
            stage: j.stage,
            progress: j.progress,
            model_version: j.model_version,
            error: j.error,
            requested_at: j.requested_at,
            started_at: j.started_at,
            finished_at: j.finished_at,
        }
    }
}

/// Jobs, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct TrainingJobList {
    /// Jobs.
    pub items: Vec<TrainingJobDto>,
}

/// A registered model of any kind (the failure-risk area keeps its own, older schema).
#[derive(Debug, Serialize, ToSchema)]
pub struct RegisteredModelDto {
    /// Version (counted per tenant across kinds), stamped on every prediction it makes.
    pub version: i32,
    /// Algorithm, e.g. `decline_subpart_w_episodes_calibrated`.
    pub algorithm: String,
    /// What it predicts from.
    pub features: Vec<String>,
    /// First day trained on.
    pub window_start: NaiveDate,
    /// Last day trained on.
    pub window_end: NaiveDate,
    /// SHA-256 of the training data.
    pub data_hash: String,
    /// Wells trained on.
    pub wells: i32,
    /// Well-days trained on.
    pub training_rows: i32,
    /// Metrics on the wells held out of training (`model`) and of the model in use on the
    /// same wells (`model_in_use`), and what the training chose (`parameters`).
    #[schema(value_type = Object)]
    pub metrics: serde_json::Value,
    /// `active`, `candidate` (did not beat the model in use) or `retired`.
    pub status: String,
    /// Why it was or was not promoted.
    pub reason: String,
    /// When trained.
    pub trained_at: DateTime<Utc>,
    /// When it became active.
    pub promoted_at: Option<DateTime<Utc>>,
}

impl From<ModelRecord> for RegisteredModelDto {
    fn from(m: ModelRecord) -> Self {
        RegisteredModelDto {
            version: m.version,
            algorithm: m.algorithm,
            features: m.features,
            window_start: m.window_start,
            window_end: m.window_end,
            data_hash: m.data_hash,
            wells: m.wells,
            training_rows: m.training_rows,
            metrics: m.metrics,
            status: m.status,
            reason: m.reason,
            trained_at: m.trained_at,
            promoted_at: m.promoted_at,
        }
    }
}

/// Registered models of a kind, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct RegisteredModelList {
    /// Models.
    pub items: Vec<RegisteredModelDto>,
}

/// Runs every queued training job of any kind, oldest first, with its stage and progress
/// visible (`GET …/failure-risk/training-jobs/{job}`): the server's
/// `failure_risk_training` worker. A job that fails records why; the next job goes on.
/// Returns the jobs run.
pub async fn run_training_jobs(db: &store::Db) -> Result<usize, ApiError> {
    let mut done = 0;
    loop {
        let mut conn = db.pool().acquire().await.map_err(store::DbError::from)?;
        let Some(job) = sql::claim_training(&mut conn).await? else {
            return Ok(done);
        };
        let outcome = match job.model.as_str() {
            "emissions" => crate::forecasts::run_emissions_job(db, &mut conn, &job).await,
            _ => crate::failure_risk::run_job(db, &mut conn, &job).await,
        };
        let error = outcome.as_ref().err().map(ToString::to_string);
        if let Some(e) = &error {
            tracing::warn!(tenant = job.tenant.0, job = job.id, model = %job.model, error = %e, "training job failed");
        }
        sql::finish_training(
            &mut conn,
            job.id,
            match (&outcome, &error) {
                (Ok(version), _) => Ok(*version),
                (Err(_), Some(e)) => Err(e.as_str()),
                (Err(_), None) => Err("failed"),
            },
        )
        .await?;
        done += 1;
    }
}

/// Queues a scheduled training job for every tenant and kind whose newest model is older
/// than `every` (and that has no open job for it): the server's
/// `failure_risk_training_schedule` job. Tenants without any model of a kind are left
/// alone (their first model is asked for). Returns the tenants queued (once per kind).
pub async fn schedule_training(
    db: &store::Db,
    now: DateTime<Utc>,
    every: std::time::Duration,
) -> Result<Vec<store::TenantId>, ApiError> {
    let before =
        now - chrono::TimeDelta::from_std(every).map_err(|e| ApiError::Internal(e.into()))?;
    let mut queued = Vec::new();
    for kind in ModelKind::ALL {
        let mut conn = db.pool().acquire().await.map_err(store::DbError::from)?;
        let due = sql::tenants_due_for_training(&mut conn, kind, before).await?;
        drop(conn);
        for tenant in due {
            let mut tx = db.begin_tenant(tenant).await?;
            let (job, new) =
                sql::enqueue_training(&mut tx, tenant, kind, "scheduled", "schedule").await?;
            if new {
                let target = format!("training_job:{}", job.id);
                let action = format!("{}_training.request", kind.name());
                store::audit::record(
                    &mut tx,
                    &store::audit::AuditEntry {
                        tenant: Some(tenant),
                        actor: "schedule",
                        action: &action,
                        target: &target,
                        before: None,
                        after: Some(serde_json::json!({ "trigger": "scheduled" })),
                        client_addr: None,
                        request_id: None,
                    },
                )
                .await?;
                queued.push(tenant);
            }
            tx.commit().await?;
        }
    }
    Ok(queued)
}
