//! What the API says and does of per-tenant models and their training jobs, whatever the
//! kind (failure risk, emissions, production gaps): the registered models and the jobs of
//! the one queue (`training_jobs`), listing models, queuing a job, activating a version,
//! and the audit entries of a model trained. Not an area: the `failure_risk` and
//! `forecasts` areas' routes call these with their kind; `training_jobs` runs the queue.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use store::failure_risk::{self as sql, ModelKind, ModelRecord};

use crate::access::Caller;
use crate::{ApiError, TenantScope};

/// A training job.
#[derive(Debug, Serialize, ToSchema)]
pub struct TrainingJobDto {
    /// Id.
    pub id: i64,
    /// The kind of model it trains: `failure_risk`, `emissions` or `production_gap`.
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

/// A registered model of any kind (failure risk, emissions, production gaps).
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

/// The tenant's active model of a kind read from its stored document: `None` when none is
/// active; a document this build cannot read is an error (500), never taken for "no
/// model", which would let training replace a model it was not compared with and
/// refreshes serve the untrained defaults under the registered version.
pub(crate) fn read_active<M: serde::de::DeserializeOwned>(
    kind: ModelKind,
    active: Option<(i32, serde_json::Value)>,
) -> Result<Option<(i32, M)>, ApiError> {
    active
        .map(|(version, doc)| {
            serde_json::from_value(doc)
                .map(|m| (version, m))
                .map_err(|e| {
                    ApiError::Internal(
                        format!(
                            "the active {} model {version} does not read: {e}",
                            kind.name()
                        )
                        .into(),
                    )
                })
        })
        .transpose()
}

/// The tenant's active model of a kind, read ([`read_active`]).
pub(crate) async fn active_model<M: serde::de::DeserializeOwned>(
    db: &store::Db,
    tenant: store::TenantId,
    kind: ModelKind,
) -> Result<Option<(i32, M)>, ApiError> {
    let mut tx = db.begin_tenant(tenant).await?;
    let active = sql::active_model(&mut tx, tenant, kind).await?;
    tx.commit().await?;
    read_active(kind, active)
}

/// Every registered model of a kind in the caller's tenant, newest first.
pub(crate) async fn list_models(
    db: &store::Db,
    scope: &TenantScope,
    kind: ModelKind,
) -> Result<RegisteredModelList, ApiError> {
    let mut tx = scope.begin(db).await?;
    let rows = sql::models(&mut tx, scope.id, kind).await?;
    tx.commit().await?;
    Ok(RegisteredModelList {
        items: rows.into_iter().map(Into::into).collect(),
    })
}

/// Queues an on-demand training job of a kind for the caller's tenant, audited
/// (`<kind>_training.request` on `training_job:<id>`) when it is new; the kind's job
/// already queued or running is answered unchanged.
pub(crate) async fn request_training(
    db: &store::Db,
    scope: &TenantScope,
    caller: &Caller,
    kind: ModelKind,
) -> Result<TrainingJobDto, ApiError> {
    let mut tx = scope.begin(db).await?;
    let (job, new) = sql::enqueue_training(
        &mut tx,
        scope.id,
        kind,
        "on_demand",
        &caller.principal.actor,
    )
    .await?;
    if new {
        let target = format!("training_job:{}", job.id);
        let action = format!("{}_training.request", kind.name());
        store::audit::record(
            &mut tx,
            &caller.audit(
                Some(scope.id),
                &action,
                &target,
                None,
                Some(serde_json::json!({ "trigger": "on_demand" })),
            ),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(job.into())
}

/// Makes a registered model of a kind the tenant's active one in the caller's transaction,
/// audited (`<kind>_model.activate`, the active version before and after): a rollback, or a
/// candidate chosen by hand. Returns the record and the model read from its document as
/// `M` (a document this build cannot read is a 500; nothing changes, as the caller's
/// transaction is dropped). An unknown version is 404.
pub(crate) async fn activate_model<M: serde::de::DeserializeOwned>(
    tx: &mut sqlx::PgConnection,
    scope: &TenantScope,
    caller: &Caller,
    kind: ModelKind,
    version: i64,
) -> Result<(ModelRecord, M), ApiError> {
    let not_found = || {
        ApiError::NotFound(format!(
            "{} model version {version} in tenant `{}`",
            kind.name().replace('_', "-"),
            scope.slug
        ))
    };
    let version = i32::try_from(version).map_err(|_| not_found())?;
    let before: Option<i32> = sql::active_model(tx, scope.id, kind).await?.map(|a| a.0);
    let (record, doc) = sql::activate(tx, scope.id, kind, version)
        .await?
        .ok_or_else(not_found)?;
    let model: M = serde_json::from_value(doc).map_err(|e| ApiError::Internal(e.into()))?;
    let target = format!("{}_model:{version}", kind.name());
    let action = format!("{}_model.activate", kind.name());
    store::audit::record(
        tx,
        &caller.audit(
            Some(scope.id),
            &action,
            &target,
            Some(serde_json::json!({ "active_version": before })),
            Some(serde_json::json!({ "active_version": version })),
        ),
    )
    .await?;
    Ok((record, model))
}

/// What the audit log keeps of a model just trained and registered.
fn trained_json(record: &ModelRecord) -> serde_json::Value {
    serde_json::json!({
        "version": record.version, "status": record.status, "reason": record.reason,
        "data_hash": record.data_hash,
    })
}

/// Who asked for a model to be trained: a caller of the API, or a training job (on
/// demand or scheduled).
#[derive(Debug, Clone, Copy)]
pub(crate) enum TrainedBy<'a> {
    /// A tenant admin, through the train route.
    Caller(&'a TenantScope, &'a Caller),
    /// A job of the queue, under its requester, the job as the request.
    Job(&'a sql::TrainingJob),
}

/// The audit entry of a model trained and registered (`<kind>_model.train` on
/// `<kind>_model:<version>`), under whoever asked for it.
pub(crate) async fn audit_trained(
    tx: &mut sqlx::PgConnection,
    by: TrainedBy<'_>,
    kind: ModelKind,
    record: &ModelRecord,
) -> Result<(), ApiError> {
    let action = format!("{}_model.train", kind.name());
    let target = format!("{}_model:{}", kind.name(), record.version);
    let after = Some(trained_json(record));
    let request = match by {
        TrainedBy::Job(job) => format!("training_job:{}", job.id),
        TrainedBy::Caller(..) => String::new(),
    };
    let entry = match by {
        TrainedBy::Caller(scope, caller) => {
            caller.audit(Some(scope.id), &action, &target, None, after)
        }
        TrainedBy::Job(job) => store::audit::AuditEntry {
            tenant: Some(job.tenant),
            actor: &job.requested_by,
            action: &action,
            target: &target,
            before: None,
            after,
            client_addr: None,
            request_id: Some(&request),
        },
    };
    store::audit::record(tx, &entry).await?;
    Ok(())
}
