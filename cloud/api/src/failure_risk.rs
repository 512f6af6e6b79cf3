//! Predictive maintenance (failure risk) per tenant:
//! `POST …/failure-risk/models` trains a model now on the tenant's daily rollups and
//! failure records (tenant admins), `GET …/failure-risk/models` is the model registry,
//! `POST …/failure-risk/models/{version}/activate` rolls back (or picks a candidate) by hand,
//! `GET …/failure-risk` the fleet ranked by 30-day risk and
//! `GET …/wells/{well}/failure-risk` one well's risk with its top factors in words.
//!
//! A trained model is registered with its algorithm, features, training window, data hash
//! and held-out metrics; it becomes the active model only when it beats the one in use on
//! the same held-out wells (`ml::maintenance::train_and_compare`). Promotion recomputes
//! every well's prediction once and caches it stamped with the model version; the server's
//! hourly `failure_risk` job ([`refresh_failure_risk`]) recomputes the cache with the
//! active model from newer rollups; reads never recompute. Training is audited.
//!
//! Training as a job: `POST …/failure-risk/training-jobs` queues one (tenant admins; one
//! open job per tenant), the server's `failure_risk_training` worker
//! ([`run_training_jobs`]) runs it with its stage and progress visible at
//! `GET …/failure-risk/training-jobs/{job}`, and `failure_risk_training_schedule`
//! ([`schedule_training`]) queues one for every tenant whose newest model is older than a
//! week. A job's model is registered and promoted by the same rule as a direct training.

use std::collections::{BTreeMap, HashMap};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use ml::maintenance::{self, Lift, Model, RollupRow, TrainOptions, WellHistory};
use store::failure_risk::{self as sql, ModelKind, ModelRecord, NewModel, PredictionRow};

const FR: ModelKind = ModelKind::FailureRisk;

use crate::access::Caller;
use crate::extract::{ModelVersionParam, TrainingJobParam, parse_limit, require_well};
use crate::training::{
    RegisteredModelDto, RegisteredModelList, TrainedBy, TrainingJobDto, TrainingJobList,
};
use crate::{ApiError, ApiQuery, ApiState, ErrorResponse, TenantScope, WellParam};

pub(crate) fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(list_models, train_model))
        .routes(routes!(activate_model))
        .routes(routes!(fleet_risk))
        .routes(routes!(well_risk))
        .routes(routes!(request_training, list_training_jobs))
        .routes(routes!(get_training_job))
}

/// Days of history read for training and prediction.
const HISTORY_DAYS: u64 = 425;

/// A factor raising a well's risk.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RiskFactorDto {
    /// Feature (`fillage_trend`, `fillage_drop`, `load_range_change`,
    /// `load_range_jitter`, `motor_current_change`, `runtime_drop`, `cycle_change`,
    /// `days_since_workover`).
    pub feature: String,
    /// Its value in the feature's unit.
    pub value: f64,
    /// Its term in the 30-day log-odds.
    pub contribution: f64,
    /// In words, e.g. "pump fillage 12.4 points below its 30-day baseline".
    pub words: String,
}

/// A well's failure risk.
#[derive(Debug, Serialize, ToSchema)]
pub struct WellRiskDto {
    /// Well.
    pub well_id: i64,
    /// Day scored (the well's latest day with rollups).
    pub day: NaiveDate,
    /// `rod_pump`, `esp` or `plunger_lift` (from the well's metrics).
    pub lift: String,
    /// Probability of a failure within 7 days.
    pub p7: f64,
    /// Within 14 days.
    pub p14: f64,
    /// Within 30 days.
    pub p30: f64,
    /// Top factors raising the 30-day risk, largest first.
    pub factors: Vec<RiskFactorDto>,
    /// Version of the model that made it.
    pub model_version: i32,
    /// When it was computed.
    pub computed_at: DateTime<Utc>,
}

fn risk_dto(r: PredictionRow) -> WellRiskDto {
    WellRiskDto {
        well_id: r.well.0,
        day: r.day,
        lift: r.lift,
        p7: r.p7,
        p14: r.p14,
        p30: r.p30,
        factors: serde_json::from_value(r.factors).unwrap_or_default(),
        model_version: r.model_version,
        computed_at: r.computed_at,
    }
}

/// The fleet ranked by 30-day risk.
#[derive(Debug, Serialize, ToSchema)]
pub struct FleetRiskDto {
    /// Wells, highest 30-day risk first (empty until a model is active).
    pub items: Vec<WellRiskDto>,
}

/// One well's risk.
#[derive(Debug, Serialize, ToSchema)]
pub struct WellRiskResponse {
    /// Well.
    pub well_id: i64,
    /// Its latest risk; absent when no active model scored it (no model yet, not a lift
    /// well, or fewer than 44 days of rollups).
    pub risk: Option<WellRiskDto>,
}

/// Query of the fleet ranking.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct FleetQuery {
    /// At most this many wells: 1 to the server's `max_page_size` (default 100).
    #[param(value_type = Option<u32>, minimum = 1, example = 100)]
    pub limit: Option<String>,
}

fn lift_name(l: Lift) -> &'static str {
    match l {
        Lift::RodPump => "rod_pump",
        Lift::Esp => "esp",
        Lift::PlungerLift => "plunger_lift",
    }
}

/// Lift wells' histories with their well ids.
type Histories = Vec<(store::WellId, WellHistory)>;

/// Every lift well's history from the tenant's rollups and interventions, and the active
/// model (version, document).
async fn histories(
    db: &store::Db,
    tenant: store::TenantId,
    today: NaiveDate,
) -> Result<(Histories, Option<(i32, serde_json::Value)>), ApiError> {
    let to = today + chrono::Days::new(1);
    let from = to - chrono::Days::new(HISTORY_DAYS);
    let mut tx = db.begin_tenant(tenant).await?;
    let rollups = sql::rollups(&mut tx, tenant, &maintenance::ROLLUP_METRICS, from, to).await?;
    let events = sql::events(&mut tx, tenant).await?;
    let active = sql::active_model(&mut tx, tenant, FR).await?;
    tx.commit().await?;
    let mut by_well: BTreeMap<store::WellId, Vec<&sql::WellRollup>> = BTreeMap::new();
    for r in &rollups {
        by_well.entry(r.well).or_default().push(r);
    }
    let mut failures: HashMap<store::WellId, Vec<NaiveDate>> = HashMap::new();
    let mut workovers: HashMap<store::WellId, Vec<NaiveDate>> = HashMap::new();
    for (well, kind, day) in events {
        let list = if kind == "failure" {
            &mut failures
        } else {
            &mut workovers
        };
        list.entry(well).or_default().push(day);
    }
    let mut out = Vec::new();
    for (well, rows) in by_well {
        let first = rows.iter().map(|r| r.day).min().unwrap_or(from);
        let last = rows.iter().map(|r| r.day).max().unwrap_or(from);
        let rows: Vec<RollupRow<'_>> = rows
            .iter()
            .map(|r| RollupRow {
                day: r.day,
                metric: &r.metric,
                avg: r.avg,
                min: r.min,
                max: r.max,
            })
            .collect();
        if let Some(h) = maintenance::history_from_rollups(
            well.0.to_string(),
            first,
            last + chrono::Days::new(1),
            &rows,
            failures.remove(&well).unwrap_or_default(),
            workovers.remove(&well).unwrap_or_default(),
        ) {
            out.push((well, h));
        }
    }
    Ok((out, active))
}

/// Each lift well's risk on its latest scored day.
fn predictions(
    model: &Model,
    version: i32,
    wells: &Histories,
    now: DateTime<Utc>,
) -> Vec<PredictionRow> {
    let mut rows = Vec::new();
    for (well, h) in wells {
        let Some(i) = maintenance::scored_days(h).last().copied() else {
            continue;
        };
        let p = model.predict_at(h, i);
        rows.push(PredictionRow {
            well: *well,
            day: p.day,
            model_version: version,
            lift: lift_name(h.lift).to_owned(),
            p7: p.probability[0],
            p14: p.probability[1],
            p30: p.probability[2],
            factors: serde_json::to_value(&p.factors).unwrap_or_default(),
            computed_at: now,
        });
    }
    rows
}

/// Recomputes every tenant's cached risks with its active model from the current rollups
/// (no training): the server's `failure_risk` job, so new data reaches the predictions
/// without a request recomputing anything. Returns the wells scored per tenant.
pub async fn refresh_failure_risk(
    db: &store::Db,
    now: DateTime<Utc>,
) -> Result<Vec<(store::TenantId, usize)>, ApiError> {
    let mut conn = db.pool().acquire().await.map_err(store::DbError::from)?;
    let tenants = sql::tenants_with_active_model(&mut conn, FR).await?;
    drop(conn);
    let mut out = Vec::new();
    for tenant in tenants {
        let (wells, active) = histories(db, tenant, now.date_naive()).await?;
        let Some((version, doc)) = active else {
            continue;
        };
        let Ok(model) = serde_json::from_value::<Model>(doc) else {
            tracing::warn!(
                tenant = tenant.0,
                version,
                "the active failure-risk model does not decode: predictions kept"
            );
            continue;
        };
        let rows = tokio::task::spawn_blocking(move || predictions(&model, version, &wells, now))
            .await
            .map_err(|e| ApiError::Internal(e.into()))?;
        let mut tx = db.begin_tenant(tenant).await?;
        // Only while that model is still the active one (a promotion may have raced us).
        if sql::active_model(&mut tx, tenant, FR).await?.map(|a| a.0) == Some(version) {
            sql::replace_predictions(&mut tx, tenant, &rows).await?;
        }
        tx.commit().await?;
        out.push((tenant, rows.len()));
    }
    Ok(out)
}

#[utoipa::path(
    get,
    path = "/api/v1/tenants/{tenant}/failure-risk/models",
    security(("bearer" = ["viewer"])),
    tag = "maintenance",
    operation_id = "list_failure_risk_models",
    params(TenantScope),
    responses(
        (status = 200, description = "Every model trained for the tenant, newest first", body = RegisteredModelList),
        (status = 400, description = "Invalid parameter", body = ErrorResponse),
        (status = 404, description = "Unknown tenant", body = ErrorResponse),
    )
)]
async fn list_models(
    State(state): State<ApiState>,
    scope: TenantScope,
) -> Result<Json<RegisteredModelList>, ApiError> {
    Ok(Json(
        crate::training::list_models(state.db(), &scope, FR).await?,
    ))
}

#[utoipa::path(
    post,
    path = "/api/v1/tenants/{tenant}/failure-risk/models",
    security(("bearer" = ["tenant_admin"])),
    tag = "maintenance",
    operation_id = "train_failure_risk_model",
    params(TenantScope),
    responses(
        (status = 201, description = "Trained and registered; active if it beat the model in use on held-out wells (then every well's risk was recomputed with it)", body = RegisteredModelDto),
        (status = 400, description = "Invalid parameter", body = ErrorResponse),
        (status = 404, description = "Unknown tenant", body = ErrorResponse),
        (status = 422, description = "Not enough data: fewer than 3 lift wells with 44 days of rollups, or no failure recorded", body = ErrorResponse),
    )
)]
async fn train_model(
    State(state): State<ApiState>,
    scope: TenantScope,
    caller: Caller,
) -> Result<(StatusCode, Json<RegisteredModelDto>), ApiError> {
    let now = Utc::now();
    let (wells, active) = histories(state.db(), scope.id, now.date_naive()).await?;
    let compared_with = active.as_ref().map(|a| a.0);
    let outcome = fit(&wells, active).await?;
    let mut tx = scope.begin(state.db()).await?;
    let record = register(&mut tx, scope.id, now, &wells, &outcome, compared_with).await?;
    crate::training::audit_trained(&mut tx, TrainedBy::Caller(&scope, &caller), FR, &record)
        .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(record.into())))
}

/// Trains a model on `wells` and compares it with the active one on held-out wells.
async fn fit(
    wells: &Histories,
    active: Option<(i32, serde_json::Value)>,
) -> Result<maintenance::TrainOutcome, ApiError> {
    let active_model: Option<Model> = crate::training::read_active(FR, active)?.map(|(_, m)| m);
    let histories: Vec<WellHistory> = wells.iter().map(|(_, h)| h.clone()).collect();
    tokio::task::spawn_blocking(move || {
        maintenance::train_and_compare(&histories, active_model.as_ref(), TrainOptions::default())
    })
    .await
    .map_err(|e| ApiError::Internal(e.into()))?
    .map_err(|e| ApiError::Unprocessable {
        message: format!("cannot train a failure-risk model: {e}"),
        problems: Vec::new(),
    })
}

/// Registers a trained model in the caller's transaction and, when it is promoted,
/// recomputes every well's cached risk with it.
async fn register(
    tx: &mut sqlx::PgConnection,
    tenant: store::TenantId,
    now: DateTime<Utc>,
    wells: &Histories,
    outcome: &maintenance::TrainOutcome,
    compared_with: Option<i32>,
) -> Result<ModelRecord, ApiError> {
    let model_json =
        serde_json::to_value(&outcome.model).map_err(|e| ApiError::Internal(e.into()))?;
    let metrics = serde_json::json!({
        "model": outcome.metrics,
        "model_in_use": outcome.active_metrics,
        "held_out_wells": outcome.wells.1,
    });
    let features: Vec<&str> = outcome.model.features.iter().map(|f| f.name()).collect();
    let record = sql::insert_model(
        &mut *tx,
        tenant,
        FR,
        &NewModel {
            algorithm: &outcome.model.algorithm,
            features,
            window: outcome.model.window,
            data_hash: &outcome.model.data_hash,
            wells: i32::try_from(outcome.wells.0).unwrap_or(i32::MAX),
            training_rows: i32::try_from(outcome.model.rows).unwrap_or(i32::MAX),
            metrics,
            model: model_json,
            promote: outcome.promote,
            reason: &outcome.reason,
            compared_with,
        },
    )
    .await?;
    if record.status == "active" {
        let rows = predictions(&outcome.model, record.version, wells, now);
        sql::replace_predictions(&mut *tx, tenant, &rows).await?;
    }
    Ok(record)
}

/// Runs a failure-risk training job (`crate::training_jobs::run_training_jobs` claims it).
pub(crate) async fn run_job(
    db: &store::Db,
    conn: &mut sqlx::PgConnection,
    job: &sql::TrainingJob,
) -> Result<i32, ApiError> {
    let now = Utc::now();
    let (wells, active) = histories(db, job.tenant, now.date_naive()).await?;
    let compared_with = active.as_ref().map(|a| a.0);
    sql::training_stage(conn, job.id, "training", 0.4).await?;
    let outcome = fit(&wells, active).await?;
    sql::training_stage(conn, job.id, "registering", 0.8).await?;
    let mut tx = db.begin_tenant(job.tenant).await?;
    let record = register(&mut tx, job.tenant, now, &wells, &outcome, compared_with).await?;
    crate::training::audit_trained(&mut tx, TrainedBy::Job(job), FR, &record).await?;
    tx.commit().await?;
    Ok(record.version)
}

#[utoipa::path(
    post,
    path = "/api/v1/tenants/{tenant}/failure-risk/training-jobs",
    security(("bearer" = ["tenant_admin"])),
    tag = "maintenance",
    operation_id = "request_failure_risk_training",
    params(TenantScope),
    responses(
        (status = 202, description = "Queued (or the job already queued or running, unchanged); the server's training worker runs it, its progress is the job's", body = TrainingJobDto),
        (status = 400, description = "Invalid parameter", body = ErrorResponse),
        (status = 404, description = "Unknown tenant", body = ErrorResponse),
    )
)]
async fn request_training(
    State(state): State<ApiState>,
    scope: TenantScope,
    caller: Caller,
) -> Result<(StatusCode, Json<TrainingJobDto>), ApiError> {
    let job = crate::training::request_training(state.db(), &scope, &caller, FR).await?;
    Ok((StatusCode::ACCEPTED, Json(job)))
}

/// Query of the job list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct JobsQuery {
    /// At most this many jobs: 1 to the server's `max_page_size` (default 20).
    #[param(value_type = Option<u32>, minimum = 1, example = 20)]
    pub limit: Option<String>,
}

#[utoipa::path(
    get,
    path = "/api/v1/tenants/{tenant}/failure-risk/training-jobs",
    security(("bearer" = ["viewer"])),
    tag = "maintenance",
    operation_id = "list_failure_risk_training_jobs",
    params(TenantScope, JobsQuery),
    responses(
        (status = 200, description = "Training jobs (on demand and scheduled), newest first, with their stage and progress", body = TrainingJobList),
        (status = 400, description = "Invalid parameter", body = ErrorResponse),
        (status = 404, description = "Unknown tenant", body = ErrorResponse),
    )
)]
async fn list_training_jobs(
    State(state): State<ApiState>,
    scope: TenantScope,
    ApiQuery(query): ApiQuery<JobsQuery>,
) -> Result<Json<TrainingJobList>, ApiError> {
    let limit = parse_limit(query.limit.as_deref(), 20, state.options().max_page_size)?;
    let mut tx = scope.begin(state.db()).await?;
    let jobs = sql::training_jobs(&mut tx, scope.id, i64::from(limit)).await?;
    tx.commit().await?;
    Ok(Json(TrainingJobList {
        items: jobs.into_iter().map(Into::into).collect(),
    }))
}

#[utoipa::path(
    get,
    path = "/api/v1/tenants/{tenant}/failure-risk/training-jobs/{job}",
    security(("bearer" = ["viewer"])),
    tag = "maintenance",
    operation_id = "get_failure_risk_training_job",
    params(TenantScope, TrainingJobParam),
    responses(
        (status = 200, description = "The job with its stage and progress", body = TrainingJobDto),
        (status = 400, description = "Invalid parameter", body = ErrorResponse),
        (status = 404, description = "Unknown tenant or job", body = ErrorResponse),
    )
)]
async fn get_training_job(
    State(state): State<ApiState>,
    scope: TenantScope,
    TrainingJobParam(job): TrainingJobParam,
) -> Result<Json<TrainingJobDto>, ApiError> {
    let mut tx = scope.begin(state.db()).await?;
    let found = sql::training_job(&mut tx, scope.id, job).await?;
    tx.commit().await?;
    found
        .map(|j| Json(j.into()))
        .ok_or_else(|| ApiError::NotFound(format!("training job {job} of tenant `{}`", scope.slug)))
}

#[utoipa::path(
    post,
    path = "/api/v1/tenants/{tenant}/failure-risk/models/{version}/activate",
    security(("bearer" = ["tenant_admin"])),
    tag = "maintenance",
    operation_id = "activate_failure_risk_model",
    params(TenantScope, ModelVersionParam),
    responses(
        (status = 200, description = "The model is the active one (a rollback, or a candidate chosen by hand); every well's risk was recomputed with it", body = RegisteredModelDto),
        (status = 400, description = "Invalid parameter", body = ErrorResponse),
        (status = 404, description = "Unknown tenant or model version", body = ErrorResponse),
    )
)]
async fn activate_model(
    State(state): State<ApiState>,
    scope: TenantScope,
    caller: Caller,
    ModelVersionParam(version): ModelVersionParam,
) -> Result<Json<RegisteredModelDto>, ApiError> {
    let now = Utc::now();
    let (wells, _) = histories(state.db(), scope.id, now.date_naive()).await?;
    let mut tx = scope.begin(state.db()).await?;
    let (record, model): (_, Model) =
        crate::training::activate_model(&mut tx, &scope, &caller, FR, version).await?;
    let rows = predictions(&model, record.version, &wells, now);
    sql::replace_predictions(&mut tx, scope.id, &rows).await?;
    tx.commit().await?;
    Ok(Json(record.into()))
}

#[utoipa::path(
    get,
    path = "/api/v1/tenants/{tenant}/failure-risk",
    security(("bearer" = ["viewer"])),
    tag = "maintenance",
    operation_id = "fleet_failure_risk",
    params(TenantScope, FleetQuery),
    responses(
        (status = 200, description = "Wells ranked by the probability of a failure within 30 days (cached predictions of the active model)", body = FleetRiskDto),
        (status = 400, description = "Invalid parameter", body = ErrorResponse),
        (status = 404, description = "Unknown tenant", body = ErrorResponse),
    )
)]
async fn fleet_risk(
    State(state): State<ApiState>,
    scope: TenantScope,
    ApiQuery(query): ApiQuery<FleetQuery>,
) -> Result<Json<FleetRiskDto>, ApiError> {
    let limit = parse_limit(query.limit.as_deref(), 100, state.options().max_page_size)?;
    let mut tx = scope.begin(state.db()).await?;
    let rows = sql::ranked(&mut tx, scope.id, i64::from(limit)).await?;
    tx.commit().await?;
    Ok(Json(FleetRiskDto {
        items: rows.into_iter().map(risk_dto).collect(),
    }))
}

#[utoipa::path(
    get,
    path = "/api/v1/tenants/{tenant}/wells/{well}/failure-risk",
    security(("bearer" = ["viewer"])),
    tag = "maintenance",
    operation_id = "well_failure_risk",
    params(TenantScope, WellParam),
    responses(
        (status = 200, description = "The well's cached risk with its top factors", body = WellRiskResponse),
        (status = 400, description = "Invalid parameter", body = ErrorResponse),
        (status = 404, description = "Unknown well", body = ErrorResponse),
    )
)]
async fn well_risk(
    State(state): State<ApiState>,
    scope: TenantScope,
    WellParam(well): WellParam,
) -> Result<Json<WellRiskResponse>, ApiError> {
    let mut tx = scope.begin(state.db()).await?;
    require_well(&mut tx, &scope, well).await?;
    let row = sql::prediction(&mut tx, scope.id, well).await?;
    tx.commit().await?;
    Ok(Json(WellRiskResponse {
        well_id: well.0,
        risk: row.map(risk_dto),
    }))
}
