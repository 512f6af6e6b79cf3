//! Detection's settings: a tenant's threshold and rate rules on canonical metrics
//! (`GET|POST …/detection-rules`, `GET|PUT|DELETE …/detection-rules/{rule}`; reading for
//! every role, changing for tenant admins) and the per-well multivariate models (`GET
//! …/wells/{well}/models` lists every version with its training window and metrics;
//! `POST …/wells/{well}/models/train` trains now). The ingesters read rules again within
//! five seconds of a change and models within a minute. Every change is audited.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use detect::{RuleCondition, Severity};
use firmware_profiles::vocabulary;
use serde::{Deserialize, Serialize};
use store::detection::{self as sql, ModelRow, RuleInput, RuleRow};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::access::Caller;
use crate::extract::{JsonBody, RuleParam, well_not_found};
use crate::{ApiError, ApiState, ErrorResponse, TenantScope, WellParam};

pub(crate) fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(list_rules, create_rule))
        .routes(routes!(get_rule, update_rule, delete_rule))
        .routes(routes!(list_models))
        .routes(routes!(train_models))
}

/// When a rule fires: `{"type": "above", "value": 1500}`, `{"type": "below", "value": 40}`
/// or `{"type": "rate", "change": 200, "window_ms": 600000}` (changed by more than
/// `change` either way within the window).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ConditionDto {
    /// Above a limit.
    Above {
        /// Limit.
        value: f64,
    },
    /// Below a limit.
    Below {
        /// Limit.
        value: f64,
    },
    /// Changed by more than `change` within `window_ms`.
    Rate {
        /// Absolute change, > 0.
        change: f64,
        /// Window (ms), 1 s to 1 day.
        window_ms: i64,
    },
}

impl ConditionDto {
    fn check(&self) -> Result<RuleCondition, ApiError> {
        let bad = |why: &str| {
            Err(ApiError::BadRequest(format!(
                "invalid JSON body: condition: {why}"
            )))
        };
        match *self {
            ConditionDto::Above { value } | ConditionDto::Below { value } if !value.is_finite() => {
                bad("value must be a finite number")
            }
            ConditionDto::Above { value } => Ok(RuleCondition::Above { value }),
            ConditionDto::Below { value } => Ok(RuleCondition::Below { value }),
            ConditionDto::Rate { change, .. } if !(change.is_finite() && change > 0.0) => {
                bad("change must be a positive number")
            }
            ConditionDto::Rate { window_ms, .. } if !(1_000..=86_400_000).contains(&window_ms) => {
                bad("window_ms must be from 1000 (1 s) to 86400000 (1 day)")
            }
            ConditionDto::Rate { change, window_ms } => {
                Ok(RuleCondition::Rate { change, window_ms })
            }
        }
    }
}

/// A tenant's detection rule.
#[derive(Debug, Serialize, ToSchema)]
pub struct RuleDto {
    /// Id (its alerts' subject is `rule:<id>`).
    pub id: i64,
    /// Name.
    pub name: String,
    /// Canonical metric it watches, on every device that reports it.
    #[schema(example = "tubing_pressure_psi")]
    pub metric: String,
    /// When it fires.
    pub condition: ConditionDto,
    /// `info`, `warning` or `critical`.
    pub severity: String,
    /// How long the condition must hold before it fires (ms).
    pub for_ms: i64,
    /// Applied.
    pub enabled: bool,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

impl TryFrom<RuleRow> for RuleDto {
    type Error = ApiError;

    fn try_from(r: RuleRow) -> Result<RuleDto, ApiError> {
        let condition = serde_json::from_value(r.condition).map_err(|e| {
            ApiError::Internal(
                format!("stored rule {} has an unreadable condition: {e}", r.id).into(),
            )
        })?;
        Ok(RuleDto {
            id: r.id,
            name: r.name,
            metric: r.metric,
            condition,
            severity: r.severity,
            for_ms: r.for_ms,
            enabled: r.enabled,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

/// A rule to create, or the new content of one (a PUT replaces it all).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleBody {
    /// 1 to 200 characters.
    #[schema(example = "Tubing pressure high")]
    pub name: String,
    /// A canonical metric name.
    #[schema(example = "tubing_pressure_psi")]
    pub metric: String,
    /// When it fires.
    pub condition: ConditionDto,
    /// `info`, `warning` (default) or `critical`.
    pub severity: Option<String>,
    /// Hold before firing (ms, 0 to 1 day; default 0).
    pub for_ms: Option<i64>,
    /// Applied (default true).
    pub enabled: Option<bool>,
}

struct CheckedRule {
    name: String,
    metric: String,
    condition: serde_json::Value,
    severity: &'static str,
    for_ms: i64,
    enabled: bool,
}

impl RuleBody {
    fn check(&self) -> Result<CheckedRule, ApiError> {
        let bad = |why: String| ApiError::BadRequest(format!("invalid JSON body: {why}"));
        let name = self.name.trim();
        if name.is_empty() || name.chars().count() > 200 {
            return Err(bad("name must be 1 to 200 characters".to_owned()));
        }
        if vocabulary::lookup(&self.metric).is_none() {
            return Err(bad(format!(
                "metric {:?} is not a canonical metric name",
                self.metric
            )));
        }
        let condition = self.condition.check()?;
        let severity = match self.severity.as_deref() {
            None => Severity::Warning,
            Some(s) => Severity::parse(s).ok_or_else(|| {
                bad(format!(
                    "severity must be info, warning or critical, got {s:?}"
                ))
            })?,
        };
        let for_ms = self.for_ms.unwrap_or(0);
        if !(0..=86_400_000).contains(&for_ms) {
            return Err(bad("for_ms must be from 0 to 86400000 (1 day)".to_owned()));
        }
        Ok(CheckedRule {
            name: name.to_owned(),
            metric: self.metric.clone(),
            condition: serde_json::to_value(condition).unwrap_or_default(),
            severity: severity.as_str(),
            for_ms,
            enabled: self.enabled.unwrap_or(true),
        })
    }
}

impl CheckedRule {
    fn input(&self) -> RuleInput<'_> {
        RuleInput {
            name: &self.name,
            metric: &self.metric,
            condition: &self.condition,
            severity: self.severity,
            for_ms: self.for_ms,
            enabled: self.enabled,
        }
    }
}

fn rule_json(r: &RuleDto) -> serde_json::Value {
    serde_json::json!({ "name": r.name, "metric": r.metric, "condition": r.condition,
                        "severity": r.severity, "for_ms": r.for_ms, "enabled": r.enabled })
}

fn rule_not_found(scope: &TenantScope, id: i64) -> ApiError {
    ApiError::NotFound(format!("rule {id} of tenant `{}`", scope.slug))
}

#[utoipa::path(
    get,
    path = "/api/v1/tenants/{tenant}/detection-rules",
    security(("bearer" = ["viewer"])),
    tag = "detection",
    operation_id = "list_detection_rules",
    params(TenantScope),
    responses(
        (status = 400, description = "Invalid parameter", body = ErrorResponse),
        (status = 200, description = "The tenant's rules", body = [RuleDto]))
)]
async fn list_rules(
    State(state): State<ApiState>,
    scope: TenantScope,
) -> Result<Json<Vec<RuleDto>>, ApiError> {
    let mut tx = scope.begin(state.db()).await?;
    let rows = sql::rules(&mut tx, scope.id).await?;
    tx.commit().await?;
    Ok(Json(
        rows.into_iter()
            .map(RuleDto::try_from)
            .collect::<Result<_, _>>()?,
    ))
}

#[utoipa::path(
    post,
    path = "/api/v1/tenants/{tenant}/detection-rules",
    security(("bearer" = ["tenant_admin"])),
    tag = "detection",
    operation_id = "create_detection_rule",
    params(TenantScope),
    request_body(content = RuleBody, content_type = "application/json"),
    responses(
        (status = 201, description = "Created; applied within five seconds", body = RuleDto),
        (status = 400, description = "Invalid name, metric, condition or timing (the message names it)", body = ErrorResponse),
    )
)]
async fn create_rule(
    State(state): State<ApiState>,
    scope: TenantScope,
    caller: Caller,
    JsonBody(body): JsonBody<RuleBody>,
) -> Result<(StatusCode, Json<RuleDto>), ApiError> {
    let checked = body.check()?;
    let mut tx = scope.begin(state.db()).await?;
    let rule = RuleDto::try_from(sql::create_rule(&mut tx, scope.id, &checked.input()).await?)?;
    let target = format!("detection_rule:{}", rule.id);
    store::audit::record(
        &mut tx,
        &caller.audit(
            Some(scope.id),
            "detection_rule.create",
            &target,
            None,
            Some(rule_json(&rule)),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(rule)))
}

#[utoipa::path(
    get,
    path = "/api/v1/tenants/{tenant}/detection-rules/{rule}",
    security(("bearer" = ["viewer"])),
    tag = "detection",
    operation_id = "get_detection_rule",
    params(TenantScope, RuleParam),
    responses(
        (status = 400, description = "Invalid parameter", body = ErrorResponse),
        (status = 200, description = "The rule", body = RuleDto),
        (status = 404, description = "Unknown rule", body = ErrorResponse),
    )
)]
async fn get_rule(
    State(state): State<ApiState>,
    scope: TenantScope,
    RuleParam(id): RuleParam,
) -> Result<Json<RuleDto>, ApiError> {
    let mut tx = scope.begin(state.db()).await?;
    let row = sql::rule(&mut tx, scope.id, id).await?;
    tx.commit().await?;
    Ok(Json(RuleDto::try_from(
        row.ok_or_else(|| rule_not_found(&scope, id))?,
    )?))
}

#[utoipa::path(
    put,
    path = "/api/v1/tenants/{tenant}/detection-rules/{rule}",
    security(("bearer" = ["tenant_admin"])),
    tag = "detection",
    operation_id = "update_detection_rule",
    params(TenantScope, RuleParam),
    request_body(content = RuleBody, content_type = "application/json"),
    responses(
        (status = 200, description = "Replaced", body = RuleDto),
        (status = 400, description = "Invalid field", body = ErrorResponse),
        (status = 404, description = "Unknown rule", body = ErrorResponse),
    )
)]
async fn update_rule(
    State(state): State<ApiState>,
    scope: TenantScope,
    caller: Caller,
    RuleParam(id): RuleParam,
    JsonBody(body): JsonBody<RuleBody>,
) -> Result<Json<RuleDto>, ApiError> {
    let checked = body.check()?;
    let mut tx = scope.begin(state.db()).await?;
    let before = sql::rule(&mut tx, scope.id, id)
        .await?
        .ok_or_else(|| rule_not_found(&scope, id))?;
    let before = rule_json(&RuleDto::try_from(before)?);
    let rule = sql::update_rule(&mut tx, scope.id, id, &checked.input())
        .await?
        .ok_or_else(|| rule_not_found(&scope, id))?;
    let rule = RuleDto::try_from(rule)?;
    let target = format!("detection_rule:{id}");
    store::audit::record(
        &mut tx,
        &caller.audit(
            Some(scope.id),
            "detection_rule.update",
            &target,
            Some(before),
            Some(rule_json(&rule)),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(rule))
}

#[utoipa::path(
    delete,
    path = "/api/v1/tenants/{tenant}/detection-rules/{rule}",
    security(("bearer" = ["tenant_admin"])),
    tag = "detection",
    operation_id = "delete_detection_rule",
    params(TenantScope, RuleParam),
    responses(
        (status = 400, description = "Invalid parameter", body = ErrorResponse),
        (status = 204, description = "Deleted; its open alerts resolve as usual"),
        (status = 404, description = "Unknown rule", body = ErrorResponse),
    )
)]
async fn delete_rule(
    State(state): State<ApiState>,
    scope: TenantScope,
    caller: Caller,
    RuleParam(id): RuleParam,
) -> Result<StatusCode, ApiError> {
    let mut tx = scope.begin(state.db()).await?;
    let before = sql::rule(&mut tx, scope.id, id)
        .await?
        .ok_or_else(|| rule_not_found(&scope, id))?;
    let before = rule_json(&RuleDto::try_from(before)?);
    sql::delete_rule(&mut tx, scope.id, id).await?;
    let target = format!("detection_rule:{id}");
    store::audit::record(
        &mut tx,
        &caller.audit(
            Some(scope.id),
            "detection_rule.delete",
            &target,
            Some(before),
            None,
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A version of a well's multivariate model.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelDto {
    /// Device whose series it reads.
    pub device_id: i64,
    /// Version (per device, from 1); findings name `<algorithm>@<version>`.
    pub version: i32,
    /// Algorithm (`pca`: reconstruction error of standardized one-minute means).
    pub algorithm: String,
    /// Features (metrics), in column order.
    pub features: Vec<String>,
    /// Training window.
    pub trained_from: DateTime<Utc>,
    /// See `trained_from`.
    pub trained_to: DateTime<Utc>,
    /// One-minute rows trained on.
    pub training_rows: i32,
    /// Training metrics (explained variance, error quantiles, threshold).
    #[schema(value_type = Object)]
    pub metrics: serde_json::Value,
    /// SHA-256 of the training matrix.
    pub data_hash: String,
    /// The version in use.
    pub active: bool,
    /// Trained at.
    pub created_at: DateTime<Utc>,
}

impl From<ModelRow> for ModelDto {
    fn from(m: ModelRow) -> ModelDto {
        ModelDto {
            device_id: m.device.0,
            version: m.version,
            algorithm: m.algorithm,
            features: m.features,
            trained_from: m.trained_from,
            trained_to: m.trained_to,
            training_rows: m.training_rows,
            metrics: m.metrics,
            data_hash: m.data_hash,
            active: m.active,
            created_at: m.created_at,
        }
    }
}

#[utoipa::path(
    get,
    path = "/api/v1/tenants/{tenant}/wells/{well}/models",
    security(("bearer" = ["viewer"])),
    tag = "detection",
    operation_id = "list_well_models",
    params(TenantScope, WellParam),
    responses(
        (status = 400, description = "Invalid parameter", body = ErrorResponse),
        (status = 200, description = "Every model version of the well's devices, newest first", body = [ModelDto]),
        (status = 404, description = "Unknown well", body = ErrorResponse),
    )
)]
async fn list_models(
    State(state): State<ApiState>,
    scope: TenantScope,
    WellParam(well): WellParam,
) -> Result<Json<Vec<ModelDto>>, ApiError> {
    let mut tx = scope.begin(state.db()).await?;
    if store::wells::well(&mut tx, scope.id, well).await?.is_none() {
        return Err(well_not_found(&scope, well));
    }
    let rows = sql::models_of_well(&mut tx, scope.id, well).await?;
    tx.commit().await?;
    Ok(Json(rows.into_iter().map(ModelDto::from).collect()))
}

/// What on-demand training did.
#[derive(Debug, Serialize, ToSchema)]
pub struct TrainingDto {
    /// Models stored: device id and version.
    pub trained: Vec<TrainedDto>,
    /// Devices not trained, with why (e.g. too little history).
    pub skipped: Vec<SkippedDto>,
}

/// A model stored.
#[derive(Debug, Serialize, ToSchema)]
pub struct TrainedDto {
    /// Device.
    pub device_id: i64,
    /// New version.
    pub version: i32,
}

/// A device not trained.
#[derive(Debug, Serialize, ToSchema)]
pub struct SkippedDto {
    /// Device.
    pub device_id: i64,
    /// Why.
    pub reason: String,
}

#[utoipa::path(
    post,
    path = "/api/v1/tenants/{tenant}/wells/{well}/models/train",
    security(("bearer" = ["tenant_admin"])),
    tag = "detection",
    operation_id = "train_well_models",
    params(TenantScope, WellParam),
    responses(
        (status = 400, description = "Invalid parameter", body = ErrorResponse),
        (status = 200, description = "Trained on the recent history of the well's devices; the new versions are active", body = TrainingDto),
        (status = 404, description = "Unknown well", body = ErrorResponse),
    )
)]
async fn train_models(
    State(state): State<ApiState>,
    scope: TenantScope,
    caller: Caller,
    WellParam(well): WellParam,
) -> Result<Json<TrainingDto>, ApiError> {
    let mut tx = scope.begin(state.db()).await?;
    if store::wells::well(&mut tx, scope.id, well).await?.is_none() {
        return Err(well_not_found(&scope, well));
    }
    tx.commit().await?;
    let report = alerts::training::train_well(
        state.db(),
        scope.id,
        well,
        &state.options().training,
        Utc::now(),
    )
    .await?;
    let dto = TrainingDto {
        trained: report
            .trained
            .iter()
            .map(|&(device_id, version)| TrainedDto { device_id, version })
            .collect(),
        skipped: report
            .skipped
            .iter()
            .map(|(device_id, reason)| SkippedDto {
                device_id: *device_id,
                reason: reason.clone(),
            })
            .collect(),
    };
    let mut tx = scope.begin(state.db()).await?;
    let target = format!("well:{well}");
    store::audit::record(
        &mut tx,
        &caller.audit(
            Some(scope.id),
            "detection_model.train",
            &target,
            None,
            Some(serde_json::json!({ "trained": report.trained })),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(dto))
}
