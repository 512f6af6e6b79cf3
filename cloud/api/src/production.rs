//! Daily production per well, manual corrections, on-demand re-derivation and monthly
//! totals.
//!
//! ```text
//! GET  /api/v1/tenants/{tenant}/wells/{well}/production?from=&to=
//! POST /api/v1/tenants/{tenant}/wells/{well}/production/corrections     (JSON body)
//! POST /api/v1/tenants/{tenant}/wells/{well}/production/derive?from=&to=
//! GET  /api/v1/tenants/{tenant}/production/monthly?month=YYYY-MM
//! ```
//!
//! Figures come from `daily_production`, which the production job
//! ([`production`]) derives from telemetry: every figure carries its method and
//! coverage (and gaps), a figure without data has no volume (never a silent zero), and a
//! manual correction takes precedence with the telemetry-derived figure shown beside it.
//! Posting a correction re-derives its day at once (and that day's emissions), so the
//! response already shows the corrected figure.
//!
//! Days are UTC calendar dates `YYYY-MM-DD`; `from` is inclusive and `to` exclusive.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use analytics::production::{Method, Quantity};

use super::extract::{
    MAX_READ_DAYS, month_range, parse_day_range, parse_month, require_well, required, shown,
    strict_date,
};
use super::{ApiError, ApiQuery, ApiState, ErrorResponse, TenantScope, WellParam};
use crate::access::Caller;
use ::production::{JobError, period_total};
use store::production::{self as sql, DailyRow, NewCorrection};
use store::{DbError, TenantId, WellId};

pub(crate) fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(well_production))
        .routes(routes!(post_correction))
        .routes(routes!(derive))
        .routes(routes!(monthly))
}

/// Longest range of an on-demand derivation (it reads telemetry; keep it within the
/// request timeout).
pub(crate) const MAX_DERIVE_DAYS: i64 = 92;
/// Largest daily volume a correction may carry, bbl or Mcf.
const MAX_CORRECTION_VOLUME: f64 = 1.0e7;

/// Maps job errors: a bad range is the caller's, the rest is the database's.
pub(crate) fn job_error(error: JobError) -> ApiError {
    match error {
        JobError::Db(e) => ApiError::from(e),
        JobError::Range { reason, .. } => ApiError::query("to", reason),
    }
}

/// A produced quantity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum QuantityName {
    /// Oil or condensate, bbl.
    Oil,
    /// Gas produced, Mcf.
    Gas,
    /// Produced water, bbl.
    Water,
    /// Gas flared, Mcf.
    Flared,
    /// Gas vented, Mcf.
    Vented,
    /// Lease fuel gas, Mcf.
    Fuel,
}

impl From<Quantity> for QuantityName {
    fn from(q: Quantity) -> QuantityName {
        match q {
            Quantity::Oil => QuantityName::Oil,
            Quantity::Gas => QuantityName::Gas,
            Quantity::Water => QuantityName::Water,
            Quantity::Flared => QuantityName::Flared,
            Quantity::Vented => QuantityName::Vented,
            Quantity::Fuel => QuantityName::Fuel,
        }
    }
}

/// How a figure was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MethodName {
    /// Closing − opening tank stock + hauled (run tickets).
    TankGauge,
    /// Delta of a running-total counter.
    MeterTotal,
    /// Flow computer's latched previous-day volume.
    FlowComputerDaily,
    /// Integral of a rate gauge.
    RateIntegration,
    /// Operator-entered correction (takes precedence).
    ManualCorrection,
    /// No data: the volume is unknown.
    Missing,
    /// Imported history (`wellpulse-cloud import`).
    Import,
}

impl From<Method> for MethodName {
    fn from(m: Method) -> MethodName {
        match m {
            Method::TankGauge => MethodName::TankGauge,
            Method::MeterTotal => MethodName::MeterTotal,
            Method::FlowComputerDaily => MethodName::FlowComputerDaily,
            Method::RateIntegration => MethodName::RateIntegration,
            Method::ManualCorrection => MethodName::ManualCorrection,
            Method::Missing => MethodName::Missing,
            Method::Import => MethodName::Import,
        }
    }
}

/// A part of the day without data.
#[derive(Debug, Serialize, ToSchema)]
pub struct GapDto {
    /// Start (inclusive).
    pub start: DateTime<Utc>,
    /// End (exclusive).
    pub end: DateTime<Utc>,
}

/// The telemetry-derived figure kept beside a manual correction.
#[derive(Debug, Serialize, ToSchema)]
pub struct DerivedFigureDto {
    /// Derived volume; absent when unknown.
    pub volume: Option<f64>,
    /// Derivation method.
    pub method: MethodName,
    /// Covered fraction of the day, 0 to 1.
    pub coverage: f64,
}

/// The correction a figure comes from.
#[derive(Debug, Serialize, ToSchema)]
pub struct CorrectionRefDto {
    /// Correction id.
    pub id: Option<i64>,
    /// Reference (correction id, ticket number, author).
    #[schema(example = "correction #7, ticket RT-1182, by j.smith")]
    pub reference: String,
}

/// One daily figure.
#[derive(Debug, Serialize, ToSchema)]
pub struct FigureDto {
    /// Quantity.
    pub quantity: QuantityName,
    /// Volume in `unit`; absent when unknown (no data), never a silent zero.
    pub volume: Option<f64>,
    /// `bbl` (oil, water) or `Mcf` (gas quantities).
    #[schema(example = "bbl")]
    pub unit: String,
    /// How the volume was obtained.
    pub method: MethodName,
    /// Covered fraction of the day, 0 to 1.
    pub coverage: f64,
    /// Volume known for the whole day.
    pub complete: bool,
    /// Parts of the day without data.
    pub gaps: Vec<GapDto>,
    /// For a manual correction: the telemetry-derived figure.
    pub derived: Option<DerivedFigureDto>,
    /// For a manual correction: which one.
    pub correction: Option<CorrectionRefDto>,
    /// Oil and water: tank stock at the end of the day, bbl.
    pub closing_stock_bbl: Option<f64>,
    /// Counter rollovers/resets and derivation issues.
    pub notes: Vec<String>,
    /// When the figure was derived.
    pub derived_at: DateTime<Utc>,
}

impl From<&DailyRow> for FigureDto {
    fn from(r: &DailyRow) -> FigureDto {
        FigureDto {
            quantity: r.quantity.into(),
            volume: r.volume,
            unit: r.quantity.unit().to_owned(),
            method: r.method.into(),
            coverage: r.coverage,
            complete: r.is_complete(),
            gaps: r
                .gaps
                .iter()
                .map(|&(start, end)| GapDto { start, end })
                .collect(),
            derived: r.derived.map(|d| DerivedFigureDto {
                volume: d.volume,
                method: d.method.into(),
                coverage: d.coverage,
            }),
            correction: r
                .correction_reference
                .as_ref()
                .map(|reference| CorrectionRefDto {
                    id: r.correction_id,
                    reference: reference.clone(),
                }),
            closing_stock_bbl: r.closing_stock,
            notes: r.notes.clone(),
            derived_at: r.derived_at,
        }
    }
}

/// The six figures of one day.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProductionDayDto {
    /// UTC day.
    #[schema(value_type = String, format = Date, example = "2024-03-01")]
    pub day: NaiveDate,
    /// Oil, gas, water, flared, vented, fuel.
    pub figures: Vec<FigureDto>,
}

/// Daily production of a well.
#[derive(Debug, Serialize, ToSchema)]
pub struct WellProductionDto {
    /// Well id.
    pub well_id: i64,
    /// First day (inclusive).
    #[schema(value_type = String, format = Date)]
    pub from: NaiveDate,
    /// Last day (exclusive).
    #[schema(value_type = String, format = Date)]
    pub to: NaiveDate,
    /// Derived days, oldest first.
    pub days: Vec<ProductionDayDto>,
    /// Days of the range not derived yet (see `POST …/production/derive`).
    #[schema(value_type = Vec<String>)]
    pub not_derived: Vec<NaiveDate>,
}

fn well_production_dto(
    well: WellId,
    from: NaiveDate,
    to: NaiveDate,
    rows: &[DailyRow],
) -> WellProductionDto {
    let mut days: Vec<ProductionDayDto> = Vec::new();
    for r in rows {
        match days.last_mut() {
            Some(d) if d.day == r.day => d.figures.push(r.into()),
            _ => days.push(ProductionDayDto {
                day: r.day,
                figures: vec![r.into()],
            }),
        }
    }
    let not_derived = from
        .iter_days()
        .take_while(|d| *d < to)
        .filter(|d| !days.iter().any(|x| x.day == *d))
        .collect();
    WellProductionDto {
        well_id: well.0,
        from,
        to,
        days,
        not_derived,
    }
}

/// Query of the daily production endpoints.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DayRangeQuery {
    /// First day, `YYYY-MM-DD` (inclusive).
    #[param(value_type = String, format = Date, example = "2024-03-01")]
    pub from: Option<String>,
    /// Day after the last, `YYYY-MM-DD` (exclusive), after `from`; at most 366 days later
    /// (92 for a derivation).
    #[param(value_type = String, format = Date, example = "2024-04-01")]
    pub to: Option<String>,
}

/// Daily production figures of a well with method and coverage.
#[utoipa::path(
    get,
    path = "/api/v1/tenants/{tenant}/wells/{well}/production",
    security(("bearer" = ["viewer"])),
    tag = "production",
    operation_id = "well_production",
    params(TenantScope, WellParam, DayRangeQuery),
    responses(
        (status = 200, description = "Daily figures, oldest first", body = WellProductionDto),
        (status = 400, description = "Invalid parameter (the message names it)", body = ErrorResponse),
        (status = 404, description = "Unknown tenant or well", body = ErrorResponse),
        (status = 503, description = "Database unavailable or request timed out", body = ErrorResponse),
    )
)]
async fn well_production(
    State(state): State<ApiState>,
    scope: TenantScope,
    WellParam(well): WellParam,
    ApiQuery(query): ApiQuery<DayRangeQuery>,
) -> Result<Json<WellProductionDto>, ApiError> {
    let (from, to) = parse_day_range(query.from, query.to, MAX_READ_DAYS)?;
    let mut tx = scope.begin(state.db()).await?;
    require_well(&mut tx, &scope, well).await?;
    let rows = sql::daily_rows(&mut tx, well, from, to).await?;
    tx.commit().await.map_err(DbError::from)?;
    Ok(Json(well_production_dto(well, from, to, &rows)))
}

/// Re-derives the daily production of a well (and the tenant's emissions) for a range.
#[utoipa::path(
    post,
    path = "/api/v1/tenants/{tenant}/wells/{well}/production/derive",
    security(("bearer" = ["operator"])),
    tag = "production",
    operation_id = "derive_well_production",
    params(TenantScope, WellParam, DayRangeQuery),
    responses(
        (status = 200, description = "The re-derived figures", body = WellProductionDto),
        (status = 400, description = "Invalid parameter (the message names it)", body = ErrorResponse),
        (status = 404, description = "Unknown tenant or well", body = ErrorResponse),
        (status = 503, description = "Database unavailable or request timed out", body = ErrorResponse),
    )
)]
async fn derive(
    State(state): State<ApiState>,
    scope: TenantScope,
    caller: Caller,
    WellParam(well): WellParam,
    ApiQuery(query): ApiQuery<DayRangeQuery>,
) -> Result<Json<WellProductionDto>, ApiError> {
    let (from, to) = parse_day_range(query.from, query.to, MAX_DERIVE_DAYS)?;
    let mut tx = scope.begin(state.db()).await?;
    require_well(&mut tx, &scope, well).await?;
    let rows = rederive(&mut tx, scope.id, well, from, to).await?;
    let target = format!("well:{well}");
    store::audit::record(
        &mut tx,
        &caller.audit(
            Some(scope.id),
            "production.derive",
            &target,
            None,
            Some(serde_json::json!({ "from": from, "to": to, "rows": rows.len() })),
        ),
    )
    .await?;
    tx.commit().await.map_err(DbError::from)?;
    Ok(Json(well_production_dto(well, from, to, &rows)))
}

async fn rederive(
    conn: &mut sqlx::PgConnection,
    tenant: TenantId,
    well: WellId,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<DailyRow>, ApiError> {
    let settings = ::production::DerivationSettings::default();
    let rows = ::production::derive_well(conn, tenant, well, from, to, &settings)
        .await
        .map_err(job_error)?;
    ::production::derive_emissions(conn, tenant, from, to, &settings)
        .await
        .map_err(job_error)?;
    Ok(rows)
}

/// A manual correction (run ticket, third-party statement) of one daily figure.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CorrectionBody {
    /// UTC day, `YYYY-MM-DD`, not in the future.
    #[schema(value_type = String, format = Date, example = "2024-03-05")]
    pub day: Option<Value>,
    /// `oil`, `gas`, `water`, `flared`, `vented` or `fuel`.
    #[schema(value_type = String, example = "oil")]
    pub quantity: Option<Value>,
    /// Corrected daily volume, bbl (oil, water) or Mcf (gas quantities), 0 to 10,000,000.
    #[schema(value_type = f64, example = 152.5)]
    pub volume: Option<Value>,
    /// Run ticket or statement number (up to 64 characters).
    #[schema(value_type = Option<String>, example = "RT-1182")]
    pub ticket_number: Option<Value>,
    /// Who enters the correction (1 to 128 characters).
    #[schema(value_type = String, example = "j.smith")]
    pub author: Option<Value>,
    /// Free note (up to 2,000 characters).
    #[schema(value_type = Option<String>)]
    pub note: Option<Value>,
}

/// A validated correction.
#[derive(Debug, Clone, PartialEq)]
struct ValidCorrection {
    day: NaiveDate,
    quantity: Quantity,
    volume: f64,
    ticket_number: String,
    author: String,
    note: String,
}

fn body_error(field: &str, problem: impl std::fmt::Display) -> ApiError {
    ApiError::BadRequest(format!("invalid body field `{field}`: {problem}"))
}

fn body_text(
    field: &str,
    value: Option<Value>,
    required: bool,
    max: usize,
) -> Result<String, ApiError> {
    match value {
        None | Some(Value::Null) if required => Err(body_error(field, "is required")),
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) if required && s.trim().is_empty() => {
            Err(body_error(field, "must not be blank"))
        }
        Some(Value::String(s)) if s.chars().count() > max => Err(body_error(
            field,
            format!(
                "must be at most {max} characters, got {}",
                s.chars().count()
            ),
        )),
        Some(Value::String(s)) => Ok(s.trim().to_owned()),
        Some(other) => Err(body_error(field, format!("must be a string, got {other}"))),
    }
}

impl CorrectionBody {
    fn validate(self, today: NaiveDate) -> Result<ValidCorrection, ApiError> {
        let day_text = body_text("day", self.day, true, 10)?;
        let day = strict_date(&day_text).ok_or_else(|| {
            body_error(
                "day",
                format!("must be a date YYYY-MM-DD, got {}", shown(&day_text)),
            )
        })?;
        if day > today {
            return Err(body_error(
                "day",
                format!("{day} is in the future (today is {today} UTC)"),
            ));
        }
        let quantity_text = body_text("quantity", self.quantity, true, 16)?;
        let quantity = sql::quantity_from_name(&quantity_text).ok_or_else(|| {
            body_error(
                "quantity",
                format!(
                    "must be one of oil, gas, water, flared, vented, fuel, got {}",
                    shown(&quantity_text)
                ),
            )
        })?;
        let volume = match self.volume {
            Some(Value::Number(n)) => n.as_f64().unwrap_or(f64::NAN),
            None | Some(Value::Null) => return Err(body_error("volume", "is required")),
            Some(other) => {
                return Err(body_error(
                    "volume",
                    format!("must be a number, got {other}"),
                ));
            }
        };
        if !(0.0..=MAX_CORRECTION_VOLUME).contains(&volume) {
            return Err(body_error(
                "volume",
                format!(
                    "must be from 0 to {MAX_CORRECTION_VOLUME} {}, got {volume}",
                    quantity.unit()
                ),
            ));
        }
        Ok(ValidCorrection {
            day,
            quantity,
            volume,
            ticket_number: body_text("ticket_number", self.ticket_number, false, 64)?,
            author: body_text("author", self.author, true, 128)?,
            note: body_text("note", self.note, false, 2000)?,
        })
    }
}

/// A stored correction.
#[derive(Debug, Serialize, ToSchema)]
pub struct CorrectionDto {
    /// Correction id.
    pub id: i64,
    /// Well id.
    pub well_id: i64,
    /// UTC day.
    #[schema(value_type = String, format = Date)]
    pub day: NaiveDate,
    /// Quantity corrected.
    pub quantity: QuantityName,
    /// Corrected volume in `unit`.
    pub volume: f64,
    /// `bbl` or `Mcf`.
    pub unit: String,
    /// Run ticket or statement number.
    pub ticket_number: String,
    /// Who entered it.
    pub author: String,
    /// Note.
    pub note: String,
    /// When it was entered.
    pub created_at: DateTime<Utc>,
}

/// The correction and the re-derived figure it now determines.
#[derive(Debug, Serialize, ToSchema)]
pub struct CorrectionResultDto {
    /// The stored correction.
    pub correction: CorrectionDto,
    /// The daily figure after re-derivation (method `manual_correction`).
    pub figure: FigureDto,
}

/// Enters a manual correction; it takes precedence over the derived figure.
#[utoipa::path(
    post,
    path = "/api/v1/tenants/{tenant}/wells/{well}/production/corrections",
    security(("bearer" = ["operator"])),
    tag = "production",
    operation_id = "post_production_correction",
    params(TenantScope, WellParam),
    request_body(content = CorrectionBody, content_type = "application/json"),
    responses(
        (status = 200, description = "Correction stored and the day re-derived", body = CorrectionResultDto),
        (status = 400, description = "Invalid body (the message names the field)", body = ErrorResponse),
        (status = 404, description = "Unknown tenant or well", body = ErrorResponse),
        (status = 503, description = "Database unavailable or request timed out", body = ErrorResponse),
    )
)]
async fn post_correction(
    State(state): State<ApiState>,
    scope: TenantScope,
    caller: Caller,
    WellParam(well): WellParam,
    body: Bytes,
) -> Result<Json<CorrectionResultDto>, ApiError> {
    let body: CorrectionBody = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))?;
    let valid = body.validate(Utc::now().date_naive())?;
    let mut tx = scope.begin(state.db()).await?;
    require_well(&mut tx, &scope, well).await?;
    let stored = sql::insert_correction(
        &mut tx,
        scope.id,
        &NewCorrection {
            well_id: well,
            day: valid.day,
            quantity: valid.quantity,
            volume: valid.volume,
            ticket_number: &valid.ticket_number,
            author: &valid.author,
            note: &valid.note,
        },
    )
    .await?;
    let next = valid.day + TimeDelta::days(1);
    let rows = rederive(&mut tx, scope.id, well, valid.day, next).await?;
    let target = format!("well:{well}");
    store::audit::record(
        &mut tx,
        &caller.audit(
            Some(scope.id),
            "production.correct",
            &target,
            None,
            Some(serde_json::json!({
                "id": stored.id, "day": stored.day, "quantity": stored.quantity.name(),
                "volume": stored.volume, "ticket_number": stored.ticket_number,
                "author": stored.author, "note": stored.note,
            })),
        ),
    )
    .await?;
    tx.commit().await.map_err(DbError::from)?;
    let figure = rows
        .iter()
        .find(|r| r.quantity == valid.quantity)
        .map(FigureDto::from)
        .ok_or_else(|| ApiError::Internal("the corrected day was not re-derived".into()))?;
    Ok(Json(CorrectionResultDto {
        correction: CorrectionDto {
            id: stored.id,
            well_id: stored.well_id.0,
            day: stored.day,
            quantity: stored.quantity.into(),
            volume: stored.volume,
            unit: stored.quantity.unit().to_owned(),
            ticket_number: stored.ticket_number,
            author: stored.author,
            note: stored.note,
            created_at: stored.created_at,
        },
        figure,
    }))
}

/// Query of the monthly totals.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct MonthQuery {
    /// Production month, `YYYY-MM`.
    #[param(value_type = String, example = "2024-03")]
    pub month: Option<String>,
}

/// Monthly total of one quantity of one well.
#[derive(Debug, Serialize, ToSchema)]
pub struct MonthlyTotalDto {
    /// Quantity.
    pub quantity: QuantityName,
    /// Sum of the known daily volumes, in `unit`.
    pub total: f64,
    /// `bbl` or `Mcf`.
    pub unit: String,
    /// Days whose figure is complete.
    pub complete_days: u32,
    /// Days whose figure is missing, has gaps or was not derived.
    #[schema(value_type = Vec<String>)]
    pub incomplete_days: Vec<NaiveDate>,
    /// Methods used over the month.
    pub methods: Vec<MethodName>,
}

/// Monthly totals of one well.
#[derive(Debug, Serialize, ToSchema)]
pub struct WellMonthDto {
    /// Well id.
    pub well_id: i64,
    /// Well name.
    pub name: String,
    /// API number.
    pub api_number: String,
    /// The six quantities.
    pub totals: Vec<MonthlyTotalDto>,
}

/// Monthly production of every well of a tenant.
#[derive(Debug, Serialize, ToSchema)]
pub struct MonthlyProductionDto {
    /// Month, `YYYY-MM`.
    #[schema(example = "2024-03")]
    pub month: String,
    /// Days in the month.
    pub days: u32,
    /// Wells, by id.
    pub wells: Vec<WellMonthDto>,
}

/// Monthly production totals per well, with completeness.
#[utoipa::path(
    get,
    path = "/api/v1/tenants/{tenant}/production/monthly",
    security(("bearer" = ["viewer"])),
    tag = "production",
    operation_id = "monthly_production",
    params(TenantScope, MonthQuery),
    responses(
        (status = 200, description = "Totals per well and quantity", body = MonthlyProductionDto),
        (status = 400, description = "Invalid parameter (the message names it)", body = ErrorResponse),
        (status = 404, description = "Unknown tenant", body = ErrorResponse),
        (status = 503, description = "Database unavailable or request timed out", body = ErrorResponse),
    )
)]
async fn monthly(
    State(state): State<ApiState>,
    scope: TenantScope,
    ApiQuery(query): ApiQuery<MonthQuery>,
) -> Result<Json<MonthlyProductionDto>, ApiError> {
    let month = parse_month(&required("month", query.month)?)?;
    let (from, to) = month_range(month);
    let mut tx = scope.begin(state.db()).await?;
    let wells = sql::tenant_wells(&mut tx, scope.id).await?;
    let rows = sql::tenant_daily_rows(&mut tx, scope.id, from, to).await?;
    tx.commit().await.map_err(DbError::from)?;
    let wells = wells
        .into_iter()
        .map(|w| {
            let own: Vec<&DailyRow> = rows.iter().filter(|r| r.well_id == w.id).collect();
            WellMonthDto {
                well_id: w.id.0,
                name: w.name,
                api_number: w.api_number,
                totals: Quantity::ALL
                    .into_iter()
                    .map(|q| {
                        let t = period_total(&own, q, 1, from, to);
                        MonthlyTotalDto {
                            quantity: q.into(),
                            total: t.total,
                            unit: q.unit().to_owned(),
                            complete_days: t.complete_days,
                            incomplete_days: t
                                .incomplete_days
                                .iter()
                                .filter_map(|ms| DateTime::from_timestamp_millis(*ms))
                                .map(|t| t.date_naive())
                                .collect(),
                            methods: t.methods.into_iter().map(MethodName::from).collect(),
                        }
                    })
                    .collect(),
            }
        })
        .collect();
    Ok(Json(MonthlyProductionDto {
        month: month.to_string(),
        days: month.days().unwrap_or(0),
        wells,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(pairs: &[(&str, Value)]) -> CorrectionBody {
        let map: serde_json::Map<String, Value> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect();
        serde_json::from_value(Value::Object(map)).unwrap()
    }

    fn today() -> NaiveDate {
        "2024-06-01".parse().unwrap()
    }

    #[test]
    fn corrections_are_validated_field_by_field() {
        let ok = body(&[
            ("day", "2024-03-05".into()),
            ("quantity", "oil".into()),
            ("volume", 152.5.into()),
            ("author", "j.smith".into()),
        ])
        .validate(today())
        .unwrap();
        assert_eq!(ok.quantity, Quantity::Oil);
        assert_eq!(ok.volume, 152.5);
        let cases: [(&[(&str, Value)], &str); 6] = [
            (
                &[
                    ("quantity", "oil".into()),
                    ("volume", 1.into()),
                    ("author", "a".into()),
                ],
                "invalid body field `day`: is required",
            ),
            (
                &[
                    ("day", "2024-07-01".into()),
                    ("quantity", "oil".into()),
                    ("volume", 1.into()),
                    ("author", "a".into()),
                ],
                "invalid body field `day`: 2024-07-01 is in the future",
            ),
            (
                &[
                    ("day", "2024-03-05".into()),
                    ("quantity", "condensate".into()),
                    ("volume", 1.into()),
                    ("author", "a".into()),
                ],
                "invalid body field `quantity`: must be one of oil, gas, water, flared, vented, fuel",
            ),
            (
                &[
                    ("day", "2024-03-05".into()),
                    ("quantity", "gas".into()),
                    ("volume", (-1).into()),
                    ("author", "a".into()),
                ],
                "invalid body field `volume`: must be from 0 to",
            ),
            (
                &[
                    ("day", "2024-03-05".into()),
                    ("quantity", "gas".into()),
                    ("volume", "12".into()),
                    ("author", "a".into()),
                ],
                "invalid body field `volume`: must be a number",
            ),
            (
                &[
                    ("day", "2024-03-05".into()),
                    ("quantity", "gas".into()),
                    ("volume", 1.into()),
                    ("author", "  ".into()),
                ],
                "invalid body field `author`: must not be blank",
            ),
        ];
        for (pairs, expected) in cases {
            let e = body(pairs).validate(today()).unwrap_err().to_string();
            assert!(e.starts_with(expected), "{e} / {expected}");
        }
        assert!(
            serde_json::from_str::<CorrectionBody>(r#"{"dya": "2024-03-05"}"#)
                .unwrap_err()
                .to_string()
                .contains("unknown field `dya`")
        );
    }
}
