//! Decline-curve analysis of a well: Arps fits, the chosen model, EUR and a probabilistic
//! forecast ready to chart.
//!
//! ```text
//! GET /api/v1/tenants/{tenant}/wells/{well}/decline?metric=oil|gas   (required)
//!     &model=auto|exponential|hyperbolic|harmonic|modified_hyperbolic
//!     &economic_limit=&years=&draws=
//! ```
//!
//! # History
//!
//! The well's stored daily figures (`daily_production`) are rolled up per calendar month
//! into a **producing-day rate**: the month's known volume divided by its days with a
//! positive volume, placed at the mean time of those days (the middle of a full month).
//! Monthly points are the industry's
//! usual decline basis (daily scatter averages out); dividing by producing days rather than
//! calendar days keeps downtime from looking like decline. Months without production are
//! left out (shut-in is not decline). `t = 0` (where the fitted `qᵢ` applies) is the time
//! of the first monthly point.
//!
//! # Fit, forecast, EUR
//!
//! `analytics::decline` fits the requested model (or, with `model=auto`, all four and picks
//! the lowest AICc), then runs a Monte Carlo over the fit's parameter covariance (seeded, so
//! the same request gives the same answer). The forecast runs monthly from the last history
//! point for `years`; a draw stops producing at the earlier of the economic-limit rate and
//! the end of the forecast, so EUR is bounded by both. P90 is the low case and P10 the high
//! case (SPE-PRMS). Fewer than 6 months of history, or a history that does not decline, is
//! answered 422 with the reason.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Datelike, NaiveDate, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use analytics::decline::{
    DAYS_PER_YEAR, DeclineBasis, DeclineError, DeclinePeriod, EconomicLimits, EurLimit, Fit,
    FitOptions, ForecastOptions, History, ModelKind, Percentiles, fit_all, monte_carlo,
};
use analytics::production::Quantity;

use super::error::UnprocessableResponse;
use super::extract::{require_well, required, shown};
use super::{ApiError, ApiQuery, ApiState, ErrorResponse, TenantScope, WellParam};
use store::DbError;
use store::production::quantity_history;

pub(crate) fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new().routes(routes!(decline))
}

/// Most forecast years.
const MAX_YEARS: u32 = 50;
/// Default forecast years.
const DEFAULT_YEARS: u32 = 20;
/// Most Monte Carlo draws.
const MAX_DRAWS: u32 = 10_000;
/// Default Monte Carlo draws.
const DEFAULT_DRAWS: u32 = 1_000;
/// Seed of the Monte Carlo generator (fixed: the same request gives the same forecast).
const SEED: u64 = 0x5750_4443_4100_0001;

/// A decline model (or `auto`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ModelName {
    /// Fit all four and choose by AICc (request only).
    Auto,
    /// `b = 0`.
    Exponential,
    /// `b = 1`.
    Harmonic,
    /// `0 < b < 2`.
    Hyperbolic,
    /// Hyperbolic switching to an exponential tail at 8 %/yr (tangent-effective).
    ModifiedHyperbolic,
}

impl From<ModelKind> for ModelName {
    fn from(k: ModelKind) -> ModelName {
        match k {
            ModelKind::Exponential => ModelName::Exponential,
            ModelKind::Harmonic => ModelName::Harmonic,
            ModelKind::Hyperbolic => ModelName::Hyperbolic,
            ModelKind::ModifiedHyperbolic => ModelName::ModifiedHyperbolic,
        }
    }
}

/// Query of the decline endpoint.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeclineQuery {
    /// `oil` (bbl/d) or `gas` (Mcf/d).
    #[param(value_type = String, example = "oil")]
    pub metric: Option<String>,
    /// `auto` (default), `exponential`, `hyperbolic`, `harmonic`, `modified_hyperbolic`.
    #[param(value_type = Option<ModelName>, inline)]
    pub model: Option<String>,
    /// Economic-limit rate, bbl/d or Mcf/d, greater than 0 (default 1 bbl/d for oil,
    /// 10 Mcf/d for gas).
    #[param(value_type = Option<f64>, example = 2.0)]
    pub economic_limit: Option<String>,
    /// Forecast years, 1 to 50 (default 20); also bounds the EUR.
    #[param(value_type = Option<u32>, example = 20)]
    pub years: Option<String>,
    /// Monte Carlo draws, 100 to 10,000 (default 1,000).
    #[param(value_type = Option<u32>, example = 1000)]
    pub draws: Option<String>,
}

/// A validated request.
#[derive(Debug, Clone, Copy, PartialEq)]
struct DeclineRequest {
    quantity: Quantity,
    model: Option<ModelKind>,
    economic_limit: f64,
    years: u32,
    draws: u32,
}

fn parse_u32(
    name: &'static str,
    raw: Option<&str>,
    default: u32,
    min: u32,
    max: u32,
) -> Result<u32, ApiError> {
    let Some(raw) = raw else { return Ok(default) };
    raw.parse::<u32>()
        .ok()
        .filter(|v| (min..=max).contains(v))
        .ok_or_else(|| {
            ApiError::query(
                name,
                format!("must be an integer from {min} to {max}, got {}", shown(raw)),
            )
        })
}

impl DeclineQuery {
    fn validate(self) -> Result<DeclineRequest, ApiError> {
        let quantity = match required("metric", self.metric)?.as_str() {
            "oil" => Quantity::Oil,
            "gas" => Quantity::Gas,
            other => {
                return Err(ApiError::query(
                    "metric",
                    format!("must be oil or gas, got {}", shown(other)),
                ));
            }
        };
        let model = match self.model.as_deref() {
            None | Some("auto") => None,
            Some(name) => Some(
                ModelKind::ALL
                    .into_iter()
                    .find(|k| k.name() == name)
                    .ok_or_else(|| {
                        ApiError::query(
                            "model",
                            format!(
                                "must be one of auto, exponential, hyperbolic, harmonic, modified_hyperbolic, got {}",
                                shown(name)
                            ),
                        )
                    })?,
            ),
        };
        let default_limit = if quantity == Quantity::Oil { 1.0 } else { 10.0 };
        let economic_limit = match self.economic_limit.as_deref() {
            None => default_limit,
            Some(raw) => raw
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && *v > 0.0)
                .ok_or_else(|| {
                    ApiError::query(
                        "economic_limit",
                        format!(
                            "must be a rate greater than 0 in {}/d, got {}",
                            quantity.unit(),
                            shown(raw)
                        ),
                    )
                })?,
        };
        Ok(DeclineRequest {
            quantity,
            model,
            economic_limit,
            years: parse_u32("years", self.years.as_deref(), DEFAULT_YEARS, 1, MAX_YEARS)?,
            draws: parse_u32(
                "draws",
                self.draws.as_deref(),
                DEFAULT_DRAWS,
                100,
                MAX_DRAWS,
            )?,
        })
    }
}

/// One month of history.
#[derive(Debug, Clone, Copy, PartialEq)]
struct MonthPoint {
    first_day: NaiveDate,
    /// Mean time of the month's producing days (their middles): the middle of the month
    /// for a full month, the middle of the producing part for a partial one (e.g. the
    /// month in progress), so a partial month's rate is not placed too late or too early.
    mid: DateTime<Utc>,
    volume: f64,
    producing_days: u32,
}

fn noon(day: NaiveDate) -> DateTime<Utc> {
    day.and_hms_opt(12, 0, 0).unwrap_or_default().and_utc()
}

/// Places a month at the mean of its producing days' offsets (ms from its first noon).
fn finish_month(m: &mut MonthPoint, offsets: &mut Vec<i64>) {
    if let Some(n) = i64::try_from(offsets.len()).ok().filter(|n| *n > 0) {
        m.mid = noon(m.first_day) + TimeDelta::milliseconds(offsets.iter().sum::<i64>() / n);
    }
    offsets.clear();
}

/// Producing-day rate per calendar month from daily volumes (see the module docs).
fn monthly_history(days: &[(NaiveDate, Option<f64>)]) -> Vec<MonthPoint> {
    let mut out: Vec<MonthPoint> = Vec::new();
    let mut offsets_ms: Vec<i64> = Vec::new();
    for &(day, volume) in days {
        let first_day = day.with_day(1).unwrap_or(day);
        if out.last().is_none_or(|m| m.first_day != first_day) {
            if let Some(m) = out.last_mut() {
                finish_month(m, &mut offsets_ms);
            }
            out.push(MonthPoint {
                first_day,
                mid: noon(first_day),
                volume: 0.0,
                producing_days: 0,
            });
        }
        if let Some(m) = out.last_mut()
            && let Some(v) = volume.filter(|v| *v > 0.0)
        {
            m.volume += v;
            m.producing_days += 1;
            offsets_ms.push((noon(day) - noon(first_day)).num_milliseconds());
        }
    }
    if let Some(m) = out.last_mut() {
        finish_month(m, &mut offsets_ms);
    }
    out.retain(|m| m.producing_days > 0);
    out
}

fn days_between(origin: DateTime<Utc>, t: DateTime<Utc>) -> f64 {
    (t - origin).num_milliseconds() as f64 / 86_400_000.0
}

fn at(origin: DateTime<Utc>, days: f64) -> DateTime<Utc> {
    origin + TimeDelta::milliseconds((days * 86_400_000.0).round() as i64)
}

/// A history point.
#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryPointDto {
    /// Mean time of the month's producing days (the middle of a full month).
    pub time: DateTime<Utc>,
    /// Producing-day rate, volume/day.
    pub rate: f64,
    /// Volume of the month.
    pub volume: f64,
    /// Days with production.
    pub producing_days: u32,
}

/// A fitted model.
#[derive(Debug, Serialize, ToSchema)]
pub struct FitDto {
    /// Model.
    pub model: ModelName,
    /// Initial rate at `origin`, volume/day.
    pub qi: f64,
    /// Standard error of `qi`.
    pub qi_standard_error: f64,
    /// Initial nominal decline, 1/year.
    pub di_nominal_per_year: f64,
    /// Standard error of the nominal decline, 1/year.
    pub di_standard_error_per_year: f64,
    /// Initial decline as the secant-effective annual decline (fraction).
    pub di_secant_effective_per_year: f64,
    /// Hyperbolic exponent (0 exponential, 1 harmonic).
    pub b: f64,
    /// Standard error of `b` (absent when fixed by the model or pinned at a bound).
    pub b_standard_error: Option<f64>,
    /// The optimum of `b` lay at 0 or 2 and `b` was pinned there.
    pub b_at_bound: bool,
    /// Terminal nominal decline, 1/year (modified hyperbolic).
    pub terminal_decline_nominal_per_year: Option<f64>,
    /// Switch to the exponential tail (modified hyperbolic).
    pub switch_time: Option<DateTime<Utc>>,
    /// Small-sample Akaike information criterion (lower is better): the selection score.
    pub aicc: f64,
    /// Residual standard deviation in ln(rate) (≈ relative rate error).
    pub sigma: f64,
    /// Root-mean-square rate error, volume/day.
    pub rmse: f64,
    /// History points fitted.
    pub points: usize,
}

fn fit_dto(fit: &Fit, origin: DateTime<Utc>) -> FitDto {
    let m = fit.model();
    let se = fit.standard_errors();
    let st = fit.statistics();
    FitDto {
        model: fit.kind().into(),
        qi: m.qi(),
        qi_standard_error: se.qi,
        di_nominal_per_year: m.di() * DAYS_PER_YEAR,
        di_standard_error_per_year: se.di * DAYS_PER_YEAR,
        di_secant_effective_per_year: m
            .initial_decline(DeclineBasis::SecantEffective, DeclinePeriod::Year)
            .map_or(f64::NAN, |d| d.value),
        b: m.b(),
        b_standard_error: se.b,
        b_at_bound: fit.b_at_bound(),
        terminal_decline_nominal_per_year: m.terminal_decline().map(|d| d * DAYS_PER_YEAR),
        switch_time: m.switch_time().map(|t| at(origin, t)),
        aicc: st.aicc,
        sigma: st.sigma,
        rmse: st.rmse,
        points: st.points,
    }
}

/// A candidate model that could not be fitted.
#[derive(Debug, Serialize, ToSchema)]
pub struct FitFailureDto {
    /// Model.
    pub model: ModelName,
    /// Why.
    pub error: String,
}

/// P10 (high), P50, P90 (low) and the best-fit value.
#[derive(Debug, Serialize, ToSchema)]
pub struct RangeDto {
    /// Exceeded with 10 % probability (high case).
    pub p10: f64,
    /// Median.
    pub p50: f64,
    /// Exceeded with 90 % probability (low case).
    pub p90: f64,
    /// Of the best-fit parameters.
    pub best_fit: f64,
}

fn range(p: Percentiles, best_fit: f64) -> RangeDto {
    RangeDto {
        p10: p.p10,
        p50: p.p50,
        p90: p.p90,
        best_fit,
    }
}

/// One point of a forecast series.
#[derive(Debug, Serialize, ToSchema)]
pub struct SeriesPointDto {
    /// Time.
    pub time: DateTime<Utc>,
    /// High case.
    pub p10: f64,
    /// Median.
    pub p50: f64,
    /// Low case.
    pub p90: f64,
    /// Best-fit parameters.
    pub best_fit: f64,
}

/// End of life of the best fit.
#[derive(Debug, Serialize, ToSchema)]
pub struct EndOfLifeDto {
    /// Abandonment time.
    pub time: DateTime<Utc>,
    /// Rate then, volume/day.
    pub rate: f64,
    /// `economic_limit` or `forecast_horizon`.
    #[schema(example = "economic_limit")]
    pub limited_by: String,
}

/// Decline analysis of a well.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeclineDto {
    /// Well id.
    pub well_id: i64,
    /// `oil` or `gas`.
    pub metric: String,
    /// Rate unit: `bbl/d` or `Mcf/d`.
    pub rate_unit: String,
    /// Volume unit: `bbl` or `Mcf`.
    pub volume_unit: String,
    /// Requested model.
    pub model_requested: ModelName,
    /// Chosen model.
    pub chosen_model: ModelName,
    /// Selection criterion (`AICc`, lower is better) and the chosen model's score.
    pub selection_criterion: String,
    /// AICc of the chosen model.
    pub selection_score: f64,
    /// `t = 0` of the fit: the time of the first monthly point.
    pub origin: DateTime<Utc>,
    /// Monthly history that was fitted.
    pub history: Vec<HistoryPointDto>,
    /// Parameters of the chosen model.
    pub parameters: FitDto,
    /// Every fitted candidate.
    pub fits: Vec<FitDto>,
    /// Candidates that could not be fitted.
    pub failures: Vec<FitFailureDto>,
    /// Economic-limit rate used, volume/day.
    pub economic_limit: f64,
    /// Forecast horizon.
    pub forecast_end: DateTime<Utc>,
    /// Estimated ultimate recovery (from `origin` to abandonment), volume.
    pub eur: RangeDto,
    /// Remaining reserves from the last history point, volume.
    pub remaining: RangeDto,
    /// End of life of the best fit.
    pub end_of_life: EndOfLifeDto,
    /// Rate forecast, monthly from the last history point, volume/day.
    pub forecast: Vec<SeriesPointDto>,
    /// Cumulative forecast from `origin`, volume.
    pub cumulative: Vec<SeriesPointDto>,
    /// Valid Monte Carlo draws.
    pub draws: usize,
    /// Draws rejected as invalid.
    pub rejected_draws: usize,
}

fn decline_error(error: DeclineError) -> ApiError {
    ApiError::unprocessable(error.to_string())
}

/// Fitted decline model, EUR P10/P50/P90 and the probabilistic forecast series.
#[utoipa::path(
    get,
    path = "/api/v1/tenants/{tenant}/wells/{well}/decline",
    security(("bearer" = ["viewer"])),
    tag = "decline",
    operation_id = "well_decline",
    params(TenantScope, WellParam, DeclineQuery),
    responses(
        (status = 200, description = "Fits, chosen model, EUR and forecast series", body = DeclineDto),
        (status = 400, description = "Invalid parameter (the message names it)", body = ErrorResponse),
        (status = 404, description = "Unknown tenant or well", body = ErrorResponse),
        (status = 422, description = "Fewer than 6 months of history, no decline, or no model fits", body = UnprocessableResponse),
        (status = 503, description = "Database unavailable or request timed out", body = ErrorResponse),
    )
)]
async fn decline(
    State(state): State<ApiState>,
    scope: TenantScope,
    WellParam(well): WellParam,
    ApiQuery(query): ApiQuery<DeclineQuery>,
) -> Result<Json<DeclineDto>, ApiError> {
    let req = query.validate()?;
    let mut tx = scope.begin(state.db()).await?;
    require_well(&mut tx, &scope, well).await?;
    let days = quantity_history(&mut tx, well, req.quantity).await?;
    tx.commit().await.map_err(DbError::from)?;
    let months = monthly_history(&days);
    let origin = months
        .first()
        .map_or(DateTime::<Utc>::UNIX_EPOCH, |m| m.mid);
    let points: Vec<(f64, f64)> = months
        .iter()
        .map(|m| {
            (
                days_between(origin, m.mid),
                m.volume / f64::from(m.producing_days),
            )
        })
        .collect();
    // Fitting and sampling are CPU work: keep them off the async workers.
    let analysis = tokio::task::spawn_blocking(move || analyze(&points, req))
        .await
        .map_err(|e| ApiError::Internal(Box::new(e)))??;
    let (fits, forecast, history_end) = analysis;
    let best = fits.best();
    let unit = req.quantity.unit();
    let last = forecast.points.last().map_or(history_end, |p| p.time);
    Ok(Json(DeclineDto {
        well_id: well.0,
        metric: req.quantity.name().to_owned(),
        rate_unit: format!("{unit}/d"),
        volume_unit: unit.to_owned(),
        model_requested: req.model.map_or(ModelName::Auto, ModelName::from),
        chosen_model: best.kind().into(),
        selection_criterion: "AICc".to_owned(),
        selection_score: best.statistics().aicc,
        origin,
        history: months
            .iter()
            .map(|m| HistoryPointDto {
                time: m.mid,
                rate: m.volume / f64::from(m.producing_days),
                volume: m.volume,
                producing_days: m.producing_days,
            })
            .collect(),
        parameters: fit_dto(best, origin),
        fits: fits.fits().iter().map(|f| fit_dto(f, origin)).collect(),
        failures: fits
            .failures()
            .iter()
            .map(|(k, e)| FitFailureDto {
                model: (*k).into(),
                error: e.to_string(),
            })
            .collect(),
        economic_limit: req.economic_limit,
        forecast_end: at(origin, last),
        eur: range(forecast.eur, forecast.best_fit_eur.volume),
        remaining: range(forecast.remaining, forecast.best_fit_remaining),
        end_of_life: EndOfLifeDto {
            time: at(origin, forecast.best_fit_eur.end_time),
            rate: forecast.best_fit_eur.end_rate,
            limited_by: match forecast.best_fit_eur.limited_by {
                EurLimit::EconomicRate => "economic_limit",
                EurLimit::MaxTime => "forecast_horizon",
            }
            .to_owned(),
        },
        forecast: forecast
            .points
            .iter()
            .map(|p| SeriesPointDto {
                time: at(origin, p.time),
                p10: p.rate.p10,
                p50: p.rate.p50,
                p90: p.rate.p90,
                best_fit: p.best_fit_rate,
            })
            .collect(),
        cumulative: forecast
            .points
            .iter()
            .map(|p| SeriesPointDto {
                time: at(origin, p.time),
                p10: p.cumulative.p10,
                p50: p.cumulative.p50,
                p90: p.cumulative.p90,
                best_fit: p.best_fit_cumulative,
            })
            .collect(),
        draws: forecast.draws,
        rejected_draws: forecast.rejected_draws,
    }))
}

type Analysis = (
    analytics::decline::FitSet,
    analytics::decline::ProbabilisticForecast,
    f64,
);

fn analyze(points: &[(f64, f64)], req: DeclineRequest) -> Result<Analysis, ApiError> {
    let history = History::new(points).map_err(decline_error)?;
    let options = FitOptions {
        candidates: req
            .model
            .map_or_else(|| ModelKind::ALL.to_vec(), |k| vec![k]),
        ..FitOptions::default()
    };
    let fits = fit_all(&history, &options).map_err(decline_error)?;
    let start = history.last_time();
    let horizon = start + f64::from(req.years) * DAYS_PER_YEAR;
    let forecast_options = ForecastOptions {
        draws: req.draws as usize,
        seed: SEED,
        steps: req.years as usize * 12,
        limits: EconomicLimits::rate_and_time(req.economic_limit, horizon),
        ..ForecastOptions::monthly(req.years as usize, EconomicLimits::time(horizon))
    };
    let forecast = monte_carlo(fits.best(), start, &forecast_options).map_err(decline_error)?;
    Ok((fits, forecast, start))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &[(&str, &str)]) -> DeclineQuery {
        let mut q = DeclineQuery::default();
        for (k, v) in pairs {
            let v = Some((*v).to_owned());
            match *k {
                "metric" => q.metric = v,
                "model" => q.model = v,
                "economic_limit" => q.economic_limit = v,
                "years" => q.years = v,
                "draws" => q.draws = v,
                _ => unreachable!(),
            }
        }
        q
    }

    #[test]
    fn defaults_and_bad_parameters() {
        assert_eq!(
            query(&[]).validate().unwrap_err().to_string(),
            "invalid query parameter `metric`: is required"
        );
        let req = query(&[("metric", "oil")]).validate().unwrap();
        assert_eq!(req.quantity, Quantity::Oil);
        assert_eq!(req.model, None);
        assert_eq!((req.economic_limit, req.years, req.draws), (1.0, 20, 1000));
        let gas = query(&[("metric", "gas"), ("model", "harmonic")])
            .validate()
            .unwrap();
        assert_eq!(
            (gas.quantity, gas.model, gas.economic_limit),
            (Quantity::Gas, Some(ModelKind::Harmonic), 10.0)
        );
        let cases = [
            (
                ("metric", "water"),
                "invalid query parameter `metric`: must be oil or gas",
            ),
            (
                ("model", "arps"),
                "invalid query parameter `model`: must be one of auto",
            ),
            (
                ("economic_limit", "0"),
                "invalid query parameter `economic_limit`: must be a rate greater than 0",
            ),
            (
                ("years", "51"),
                "invalid query parameter `years`: must be an integer from 1 to 50",
            ),
            (
                ("draws", "10"),
                "invalid query parameter `draws`: must be an integer from 100 to 10000",
            ),
        ];
        for (pair, expected) in cases {
            let e = query(&[("metric", "oil"), pair])
                .validate()
                .unwrap_err()
                .to_string();
            assert!(e.starts_with(expected), "{e}");
        }
    }

    #[test]
    fn months_use_producing_days_and_skip_shut_in() {
        let d = |s: &str| s.parse::<NaiveDate>().unwrap();
        let days = [
            (d("2024-01-30"), Some(10.0)),
            (d("2024-01-31"), Some(20.0)),
            (d("2024-02-01"), Some(0.0)),
            (d("2024-02-02"), None),
            (d("2024-03-01"), Some(8.0)),
            (d("2024-03-02"), Some(0.0)),
        ];
        let months = monthly_history(&days);
        assert_eq!(months.len(), 2, "February produced nothing");
        assert_eq!((months[0].volume, months[0].producing_days), (30.0, 2));
        // The two producing days of January are its 30th and 31st.
        assert_eq!(months[0].mid.to_rfc3339(), "2024-01-31T00:00:00+00:00");
        assert_eq!((months[1].volume, months[1].producing_days), (8.0, 1));
        assert_eq!(months[1].mid.to_rfc3339(), "2024-03-01T12:00:00+00:00");
    }
}
