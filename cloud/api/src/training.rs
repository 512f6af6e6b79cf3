//! What the API says of per-tenant models and their training jobs, whatever the kind
//! (failure risk, emissions): the registered models and the jobs of the one queue
//! (`training_jobs`), and the audit entry of a model a job trained. Not an area: the `failure_risk` and `forecasts` areas' routes show
//! and queue them with these types; `training_jobs` runs the queue.

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

/// A registered model of any kind (failure risk, emissions).
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

/// What the audit log keeps of a model just trained and registered.
pub(crate) fn trained_json(record: &ModelRecord) -> serde_json::Value {
    serde_json::json!({
        "version": record.version, "status": record.status, "reason": record.reason,
        "data_hash": record.data_hash,
    })
}

/// The audit entry of a model a training job registered (`<kind>_model.train` on
/// `<kind>_model:<version>`, under the job's requester, the job as the request).
pub(crate) async fn audit_trained_by_job(
    tx: &mut sqlx::PgConnection,
    job: &sql::TrainingJob,
    kind: ModelKind,
    record: &ModelRecord,
) -> Result<(), ApiError> {
    let action = format!("{}_model.train", kind.name());
    let target = format!("{}_model:{}", kind.name(), record.version);
    let request = format!("training_job:{}", job.id);
    store::audit::record(
        tx,
        &store::audit::AuditEntry {
            tenant: Some(job.tenant),
            actor: &job.requested_by,
            action: &action,
            target: &target,
            before: None,
            after: Some(trained_json(record)),
            client_addr: None,
            request_id: Some(&request),
        },
    )
    .await?;
    Ok(())
}
