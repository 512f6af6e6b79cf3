//! The emissions and production-gap model registries: training on the tenant's own wells
//! (`ml::emissions::train_and_compare`, `ml::optimization::train_and_compare`), promotion
//! only when the new model beats the one in use on held-out wells, rollback, and the
//! training jobs of both kinds (`crate::training_jobs` claims them). Promotion or rollback
//! recomputes the tenant's forecasts at once: the active version is part of every
//! forecast's stamp and of its inputs hash.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use analytics::emissions::gwp::GwpSet;
use ml::emissions::{self as emis, EmissionsModel};
use ml::optimization::{self as opt, GapModel};
use store::TenantId;
use store::emissions::EmissionSource;
use store::failure_risk::{ModelKind, ModelRecord, NewModel, TrainingJob};

use super::{DEFAULT_PRICE, gap_wells, read_inputs, refresh_tenant, setup};
use crate::access::Caller;
use crate::extract::ModelVersionParam;
use crate::training::{self, RegisteredModelDto, RegisteredModelList, TrainedBy, TrainingJobDto};
use crate::{ApiError, ApiState, ErrorResponse, TenantScope};

const EMISSIONS: ModelKind = ModelKind::Emissions;
const GAPS: ModelKind = ModelKind::ProductionGap;

pub(super) fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(list_emissions_models, train_emissions_model))
        .routes(routes!(activate_emissions_model))
        .routes(routes!(request_emissions_training))
        .routes(routes!(list_gap_models, train_gap_model))
        .routes(routes!(activate_gap_model))
        .routes(routes!(request_gap_training))
}

fn i32_of(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<serde_json::Value, ApiError> {
    serde_json::to_value(value).map_err(|e| ApiError::Internal(e.into()))
}

/// A model of either kind, trained and compared with the one in use.
/// With the active version it was compared with (`None`: the untrained defaults).
enum Trained {
    Emissions((emis::EmissionsOutcome, Option<i32>)),
    Gaps((opt::GapOutcome, Option<i32>)),
}

/// Records a job's stage and progress (nothing for a caller's training).
async fn stage(
    conn: Option<&mut sqlx::PgConnection>,
    by: TrainedBy<'_>,
    name: &str,
    progress: f64,
) -> Result<(), ApiError> {
    if let (Some(conn), TrainedBy::Job(job)) = (conn, by) {
        store::failure_risk::training_stage(conn, job.id, name, progress).await?;
    }
    Ok(())
}

/// Trains a model of `kind` for `tenant` on its data before `now`'s day, registers it (active
/// only when it beat the one in use) and audits it in one transaction, then recomputes the
/// tenant's forecasts when it was promoted (if that fails, the hourly refresh does). A job's stage and progress are recorded on
/// `job_conn` as it goes.
async fn train_and_register(
    db: &store::Db,
    tenant: TenantId,
    kind: ModelKind,
    by: TrainedBy<'_>,
    mut job_conn: Option<&mut sqlx::PgConnection>,
) -> Result<ModelRecord, ApiError> {
    let now = Utc::now();
    stage(job_conn.as_deref_mut(), by, "training", 0.3).await?;
    let trained = if kind == GAPS {
        Trained::Gaps(train_gaps(db, tenant, now).await?)
    } else {
        Trained::Emissions(train_emissions(db, tenant, now).await?)
    };
    stage(job_conn, by, "registering", 0.8).await?;
    let mut tx = db.begin_tenant(tenant).await?;
    let record = match &trained {
        Trained::Emissions(outcome) => register_emissions(&mut tx, tenant, outcome).await?,
        Trained::Gaps(outcome) => register_gaps(&mut tx, tenant, outcome).await?,
    };
    training::audit_trained(&mut tx, by, kind, &record).await?;
    tx.commit().await?;
    // The model is registered either way: a refresh that fails now is the hourly job's to
    // make, not a failed training.
    if record.status == "active"
        && let Err(e) = refresh_tenant(db, tenant, now).await
    {
        tracing::warn!(tenant = tenant.0, version = record.version, error = %e,
            "forecasts not recomputed after a promotion: the hourly refresh will");
    }
    Ok(record)
}

/// Runs an emissions or production-gap training job (`crate::training_jobs` claims it).
pub(crate) async fn run_job(
    db: &store::Db,
    conn: &mut sqlx::PgConnection,
    job: &TrainingJob,
    kind: ModelKind,
) -> Result<i32, ApiError> {
    let record = train_and_register(db, job.tenant, kind, TrainedBy::Job(job), Some(conn)).await?;
    Ok(record.version)
}

// ---------------------------------------------------------------------------------------
// Emissions.

/// Trains an emissions model on the tenant's wells with sources (days before today) and
/// compares it with the active one on held-out wells (`ml::emissions::train_and_compare`).
async fn train_emissions(
    db: &store::Db,
    tenant: TenantId,
    now: DateTime<Utc>,
) -> Result<(emis::EmissionsOutcome, Option<i32>), ApiError> {
    let start = now.date_naive();
    let inputs = read_inputs(db, tenant, start).await?;
    let active: Option<(i32, EmissionsModel)> =
        training::active_model(db, tenant, EMISSIONS).await?;
    let compared_with = active.as_ref().map(|a| a.0);
    let active = active.map(|a| a.1);
    tokio::task::spawn_blocking(move || {
        let mut wells = Vec::new();
        for w in &inputs.wells {
            let own: Vec<&EmissionSource> = inputs
                .sources
                .iter()
                .filter(|s| s.well_id == Some(w.id))
                .collect();
            if let (Some(s), Some(days)) = (setup(&own), inputs.days.get(&w.id)) {
                wells.push((days.as_slice(), s));
            }
        }
        let training: Vec<emis::TrainingWell<'_>> = wells
            .iter()
            .map(|(history, setup)| emis::TrainingWell { history, setup })
            .collect();
        emis::train_and_compare(&training, active.as_ref(), start, GwpSet::Ar5)
    })
    .await
    .map_err(|e| ApiError::Internal(e.into()))?
    .map_err(|e| ApiError::Unprocessable {
        message: format!("cannot train an emissions model: {e}"),
        problems: Vec::new(),
    })
    .map(|outcome| (outcome, compared_with))
}

/// Registers a trained emissions model in the caller's transaction (active only when it
/// beat the one in use).
async fn register_emissions(
    tx: &mut sqlx::PgConnection,
    tenant: TenantId,
    (outcome, compared_with): &(emis::EmissionsOutcome, Option<i32>),
) -> Result<ModelRecord, ApiError> {
    let m = &outcome.fit.model;
    let metrics = serde_json::json!({
        "model": outcome.metrics,
        "model_in_use": outcome.active_metrics,
        "held_out_wells": outcome.wells.1,
        "parameters": {
            "fraction_window_days": m.fraction_window_days,
            "anchor_days": m.anchor_days,
            "episodes_pooled": m.episode_durations.iter().sum::<u32>(),
            "calibration": m.calibration,
        },
        "training_backtests": outcome.fit.windows.iter().map(|(a, w, mape)| serde_json::json!({
            "anchor_days": a, "fraction_window_days": w, "mape_30d_percent": 100.0 * mape,
        })).collect::<Vec<_>>(),
    });
    Ok(store::failure_risk::insert_model(
        tx,
        tenant,
        EMISSIONS,
        &NewModel {
            algorithm: emis::ALGORITHM,
            features: emis::INPUTS.to_vec(),
            window: outcome.window,
            data_hash: &outcome.data_hash,
            wells: i32_of(outcome.wells.0),
            training_rows: i32_of(outcome.rows),
            metrics,
            model: to_json(m)?,
            promote: outcome.promote,
            reason: &outcome.reason,
            compared_with: *compared_with,
        },
    )
    .await?)
}

#[utoipa::path(
    get,
    path = "/api/v1/tenants/{tenant}/emissions-forecast/models",
    security(("bearer" = ["viewer"])),
    tag = "emissions",
    operation_id = "list_emissions_models",
    params(TenantScope),
    responses(
        (status = 200, description = "Every emissions model trained for the tenant, newest first", body = RegisteredModelList),
        (status = 400, description = "Invalid parameter", body = ErrorResponse),
        (status = 404, description = "Unknown tenant", body = ErrorResponse),
    )
)]
async fn list_emissions_models(
    State(state): State<ApiState>,
    scope: TenantScope,
) -> Result<Json<RegisteredModelList>, ApiError> {
    Ok(Json(
        training::list_models(state.db(), &scope, EMISSIONS).await?,
    ))
}

#[utoipa::path(
    post,
    path = "/api/v1/tenants/{tenant}/emissions-forecast/models",
    security(("bearer" = ["tenant_admin"])),
    tag = "emissions",
    operation_id = "train_emissions_model",
    params(TenantScope),
    responses(
        (status = 201, description = "Trained on two thirds of the wells with sources (their own past: episode durations, windows chosen by backtest, calibrated intervals) and registered; active if its held-out 30-day MAPE beat the model in use's on the other third (then every forecast was recomputed with it)", body = RegisteredModelDto),
        (status = 400, description = "Invalid parameter", body = ErrorResponse),
        (status = 404, description = "Unknown tenant", body = ErrorResponse),
        (status = 422, description = "Not enough data: fewer than 3 wells with sources, or none with 90 days of production", body = ErrorResponse),
    )
)]
async fn train_emissions_model(
    State(state): State<ApiState>,
    scope: TenantScope,
    caller: Caller,
) -> Result<(StatusCode, Json<RegisteredModelDto>), ApiError> {
    let by = TrainedBy::Caller(&scope, &caller);
    let record = train_and_register(state.db(), scope.id, EMISSIONS, by, None).await?;
    Ok((StatusCode::CREATED, Json(record.into())))
}

#[utoipa::path(
    post,
    path = "/api/v1/tenants/{tenant}/emissions-forecast/models/{version}/activate",
    security(("bearer" = ["tenant_admin"])),
    tag = "emissions",
    operation_id = "activate_emissions_model",
    params(TenantScope, ModelVersionParam),
    responses(
        (status = 200, description = "The model is the active one (a rollback, or a candidate chosen by hand); every forecast was recomputed with it", body = RegisteredModelDto),
        (status = 400, description = "Invalid parameter", body = ErrorResponse),
        (status = 404, description = "Unknown tenant or emissions model version", body = ErrorResponse),
    )
)]
async fn activate_emissions_model(
    State(state): State<ApiState>,
    scope: TenantScope,
    caller: Caller,
    ModelVersionParam(version): ModelVersionParam,
) -> Result<Json<RegisteredModelDto>, ApiError> {
    let mut tx = scope.begin(state.db()).await?;
    let (record, _): (_, EmissionsModel) =
        training::activate_model(&mut tx, &scope, &caller, EMISSIONS, version).await?;
    tx.commit().await?;
    refresh_tenant(state.db(), scope.id, Utc::now()).await?;
    Ok(Json(record.into()))
}

#[utoipa::path(
    post,
    path = "/api/v1/tenants/{tenant}/emissions-forecast/training-jobs",
    security(("bearer" = ["tenant_admin"])),
    tag = "emissions",
    operation_id = "request_emissions_training",
    params(TenantScope),
    responses(
        (status = 202, description = "Queued (or the emissions job already queued or running, unchanged); the server's training worker runs it, its stage and progress at GET …/failure-risk/training-jobs/{job}", body = TrainingJobDto),
        (status = 400, description = "Invalid parameter", body = ErrorResponse),
        (status = 404, description = "Unknown tenant", body = ErrorResponse),
    )
)]
async fn request_emissions_training(
    State(state): State<ApiState>,
    scope: TenantScope,
    caller: Caller,
) -> Result<(StatusCode, Json<TrainingJobDto>), ApiError> {
    let job = training::request_training(state.db(), &scope, &caller, EMISSIONS).await?;
    Ok((StatusCode::ACCEPTED, Json(job)))
}

// ---------------------------------------------------------------------------------------
// Production gaps.

/// Trains a gap model on the tenant's wells with production (its parameters chosen on two
/// thirds of them) and compares it with the active one, or the untrained defaults, on the
/// other third (`ml::optimization::train_and_compare`).
async fn train_gaps(
    db: &store::Db,
    tenant: TenantId,
    now: DateTime<Utc>,
) -> Result<(opt::GapOutcome, Option<i32>), ApiError> {
    let start = now.date_naive();
    let inputs = read_inputs(db, tenant, start).await?;
    let active: Option<(i32, GapModel)> = training::active_model(db, tenant, GAPS).await?;
    let compared_with = active.as_ref().map(|a| a.0);
    let active = active.map(|a| a.1);
    tokio::task::spawn_blocking(move || {
        let wells = gap_wells(&inputs, start);
        opt::train_and_compare(
            &wells,
            active.as_ref(),
            &opt::Options::new(start, DEFAULT_PRICE),
        )
    })
    .await
    .map_err(|e| ApiError::Internal(e.into()))?
    .map_err(|e| ApiError::Unprocessable {
        message: format!("cannot train a production-gap model: {e}"),
        problems: Vec::new(),
    })
    .map(|outcome| (outcome, compared_with))
}

/// Registers a trained gap model in the caller's transaction (active only when it beat the
/// one in use).
async fn register_gaps(
    tx: &mut sqlx::PgConnection,
    tenant: TenantId,
    (outcome, compared_with): &(opt::GapOutcome, Option<i32>),
) -> Result<ModelRecord, ApiError> {
    let metrics = serde_json::json!({
        "model": outcome.metrics,
        "model_in_use": outcome.active_metrics,
        "held_out_wells": outcome.wells.1,
        "parameters": outcome.fit.model,
        "training": outcome.fit.metrics,
        "candidates": outcome.fit.candidates.iter().map(|(m, s)| serde_json::json!({
            "parameters": m, "score_percent": s.score_percent,
        })).collect::<Vec<_>>(),
    });
    Ok(store::failure_risk::insert_model(
        tx,
        tenant,
        GAPS,
        &NewModel {
            algorithm: opt::ALGORITHM,
            features: opt::INPUTS.to_vec(),
            window: outcome.window,
            data_hash: &outcome.data_hash,
            wells: i32_of(outcome.wells.0),
            training_rows: i32_of(outcome.rows),
            metrics,
            model: to_json(&outcome.fit.model)?,
            promote: outcome.promote,
            reason: &outcome.reason,
            compared_with: *compared_with,
        },
    )
    .await?)
}

#[utoipa::path(
    get,
    path = "/api/v1/tenants/{tenant}/production-gaps/models",
    security(("bearer" = ["viewer"])),
    tag = "production",
    operation_id = "list_production_gap_models",
    params(TenantScope),
    responses(
        (status = 200, description = "Every production-gap model trained for the tenant, newest first", body = RegisteredModelList),
        (status = 400, description = "Invalid parameter", body = ErrorResponse),
        (status = 404, description = "Unknown tenant", body = ErrorResponse),
    )
)]
async fn list_gap_models(
    State(state): State<ApiState>,
    scope: TenantScope,
) -> Result<Json<RegisteredModelList>, ApiError> {
    Ok(Json(training::list_models(state.db(), &scope, GAPS).await?))
}

#[utoipa::path(
    post,
    path = "/api/v1/tenants/{tenant}/production-gaps/models",
    security(("bearer" = ["tenant_admin"])),
    tag = "production",
    operation_id = "train_production_gap_model",
    params(TenantScope),
    responses(
        (status = 201, description = "The own decline's guard, the peers' lag and age factor chosen on two thirds of the wells (each well's expectation against the potential it made, as it is and with an injected impairment) and registered; active if its held-out error beat the model in use's (or the untrained defaults') on the other third (then every gap was assessed again with it)", body = RegisteredModelDto),
        (status = 400, description = "Invalid parameter", body = ErrorResponse),
        (status = 404, description = "Unknown tenant", body = ErrorResponse),
        (status = 422, description = "Not enough data: fewer than 3 wells with production, or none with both an expectation and a recent potential", body = ErrorResponse),
    )
)]
async fn train_gap_model(
    State(state): State<ApiState>,
    scope: TenantScope,
    caller: Caller,
) -> Result<(StatusCode, Json<RegisteredModelDto>), ApiError> {
    let by = TrainedBy::Caller(&scope, &caller);
    let record = train_and_register(state.db(), scope.id, GAPS, by, None).await?;
    Ok((StatusCode::CREATED, Json(record.into())))
}

#[utoipa::path(
    post,
    path = "/api/v1/tenants/{tenant}/production-gaps/models/{version}/activate",
    security(("bearer" = ["tenant_admin"])),
    tag = "production",
    operation_id = "activate_production_gap_model",
    params(TenantScope, ModelVersionParam),
    responses(
        (status = 200, description = "The model is the active one (a rollback, or a candidate chosen by hand); every gap was assessed again with it", body = RegisteredModelDto),
        (status = 400, description = "Invalid parameter", body = ErrorResponse),
        (status = 404, description = "Unknown tenant or production-gap model version", body = ErrorResponse),
    )
)]
async fn activate_gap_model(
    State(state): State<ApiState>,
    scope: TenantScope,
    caller: Caller,
    ModelVersionParam(version): ModelVersionParam,
) -> Result<Json<RegisteredModelDto>, ApiError> {
    let mut tx = scope.begin(state.db()).await?;
    let (record, _): (_, GapModel) =
        training::activate_model(&mut tx, &scope, &caller, GAPS, version).await?;
    tx.commit().await?;
    refresh_tenant(state.db(), scope.id, Utc::now()).await?;
    Ok(Json(record.into()))
}

#[utoipa::path(
    post,
    path = "/api/v1/tenants/{tenant}/production-gaps/training-jobs",
    security(("bearer" = ["tenant_admin"])),
    tag = "production",
    operation_id = "request_production_gap_training",
    params(TenantScope),
    responses(
        (status = 202, description = "Queued (or the production-gap job already queued or running, unchanged); the server's training worker runs it, its stage and progress at GET …/failure-risk/training-jobs/{job}", body = TrainingJobDto),
        (status = 400, description = "Invalid parameter", body = ErrorResponse),
        (status = 404, description = "Unknown tenant", body = ErrorResponse),
    )
)]
async fn request_gap_training(
    State(state): State<ApiState>,
    scope: TenantScope,
    caller: Caller,
) -> Result<(StatusCode, Json<TrainingJobDto>), ApiError> {
    let job = training::request_training(state.db(), &scope, &caller, GAPS).await?;
    Ok((StatusCode::ACCEPTED, Json(job)))
}
