//! Probabilistic (P10/P50/P90) forecasts by Monte Carlo over the fit's parameter uncertainty.
//!
//! **Sampling.** Parameters are drawn from the multivariate normal `N(φ̂, σ²(JᵀJ)⁻¹)` of the
//! fit, as `φ = φ̂ + L z` with `L` the Cholesky factor of the covariance and `z` standard
//! normal, from a ChaCha20 generator seeded by the caller (same seed, same forecast, on any
//! machine and thread). `φ` is the unconstrained parameterisation of the (private) `params`
//! module, so every draw has `qᵢ > 0`, `Dᵢ > 0` (`> D_term`) and `0 < b < 2`; draws that
//! still fail validation or give a non-finite EUR are rejected and redrawn (at most
//! `4 × draws` attempts; the count is reported).
//!
//! **Abandonment.** Each draw produces until the earlier of its economic-limit rate and the
//! maximum time; after that its rate is 0 and its cumulative stays at its EUR. Hence the
//! cumulative percentile at a forecast time at or beyond every draw's end equals the EUR
//! percentile.
//!
//! **Percentiles** follow the SPE-PRMS exceedance convention: P90 is the *low* case (90 %
//! probability that the outcome is at least this), P50 the median, P10 the high case. They
//! are sample quantiles with linear interpolation between order statistics (Hyndman–Fan
//! type 7), taken independently at every time step for the rate and cumulative series and
//! over the draws for EUR and remaining reserves, so `P10 ≥ P50 ≥ P90` everywhere. They are
//! computed exactly, cheaply, by the (private) `quantiles` module.
//!
//! Only parameter uncertainty is propagated (not the residual scatter of individual days),
//! which is the uncertainty of the *trend* a reserves forecast needs.

use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use rand_distr::{Distribution, StandardNormal};

use super::fit::Fit;
use super::quantiles::QuantileTracker;
use super::{DAYS_PER_MONTH, DeclineError, DeclineModel, EconomicLimits, Eur, ModelKind};

/// Most draws a forecast accepts (a guard against runaway requests, 100× the usual 1,000).
pub const MAX_DRAWS: usize = 100_000;
/// Most forecast steps a forecast accepts (over 270 years of daily steps).
pub const MAX_STEPS: usize = 100_000;

/// Monte Carlo and forecast-grid settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ForecastOptions {
    /// Number of valid parameter draws (1 to [`MAX_DRAWS`]; 1,000 is typical).
    pub draws: usize,
    /// Seed of the ChaCha20 generator.
    pub seed: u64,
    /// Forecast step, days.
    pub step: f64,
    /// Number of steps after the start (at most [`MAX_STEPS`]; the series has `steps + 1`
    /// points).
    pub steps: usize,
    /// Abandonment: economic-limit rate and/or maximum time (days from the model origin).
    pub limits: EconomicLimits,
}

impl ForecastOptions {
    /// 1,000 draws, monthly steps (30.4375 d) over `years`, seed 0.
    pub fn monthly(years: usize, limits: EconomicLimits) -> Self {
        ForecastOptions {
            draws: 1000,
            seed: 0,
            step: DAYS_PER_MONTH,
            steps: years * 12,
            limits,
        }
    }

    fn validate(&self, start: f64) -> Result<(), DeclineError> {
        self.limits.validate()?;
        let invalid = |name, value, reason| DeclineError::InvalidParameter {
            name,
            value,
            reason,
        };
        if !(1..=MAX_DRAWS).contains(&self.draws) {
            return Err(invalid(
                "draws",
                self.draws as f64,
                "must be between 1 and 100,000",
            ));
        }
        if self.steps > MAX_STEPS {
            return Err(invalid(
                "forecast steps",
                self.steps as f64,
                "must be at most 100,000",
            ));
        }
        if !(self.step.is_finite() && self.step > 0.0) {
            return Err(invalid(
                "forecast step",
                self.step,
                "must be finite and > 0",
            ));
        }
        if !(start.is_finite() && start >= 0.0) {
            return Err(invalid("forecast start", start, "must be finite and >= 0"));
        }
        Ok(())
    }
}

/// A quantity's P10 (high), P50 (median) and P90 (low) values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Percentiles {
    /// Exceeded with 10 % probability (high case).
    pub p10: f64,
    /// Median.
    pub p50: f64,
    /// Exceeded with 90 % probability (low case).
    pub p90: f64,
}

/// One forecast time step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ForecastPoint {
    /// Days from the model origin.
    pub time: f64,
    /// Rate percentiles, volume/day.
    pub rate: Percentiles,
    /// Cumulative-from-origin percentiles, volume.
    pub cumulative: Percentiles,
    /// Rate of the best-fit parameters (0 after its end of life).
    pub best_fit_rate: f64,
    /// Cumulative of the best-fit parameters.
    pub best_fit_cumulative: f64,
}

/// A probabilistic forecast of one fitted model.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbabilisticForecast {
    /// The model family forecast.
    pub model: ModelKind,
    /// Series at `start + k·step`, `k = 0..=steps`.
    pub points: Vec<ForecastPoint>,
    /// EUR percentiles (cumulative from the model origin to abandonment).
    pub eur: Percentiles,
    /// Remaining reserves from the forecast start to abandonment.
    pub remaining: Percentiles,
    /// EUR of the best-fit parameters.
    pub best_fit_eur: Eur,
    /// Remaining reserves of the best-fit parameters.
    pub best_fit_remaining: f64,
    /// Valid draws used.
    pub draws: usize,
    /// Draws rejected as invalid.
    pub rejected_draws: usize,
}

/// One valid parameter draw with its end of life.
#[derive(Debug, Clone, Copy)]
struct Draw {
    model: DeclineModel,
    end_time: f64,
    eur: f64,
    remaining: f64,
}

impl Draw {
    fn new(model: DeclineModel, start: f64, limits: &EconomicLimits) -> Option<Self> {
        let eur = model.eur(limits).ok()?;
        let remaining = eur.volume - model.cumulative(start.min(eur.end_time));
        (eur.volume.is_finite() && eur.end_time.is_finite()).then_some(Draw {
            model,
            end_time: eur.end_time,
            eur: eur.volume,
            remaining,
        })
    }

    /// `(rate, cumulative)` at `t`, with production stopped after the end of life.
    fn at(&self, t: f64) -> (f64, f64) {
        if t > self.end_time {
            (0.0, self.eur)
        } else {
            self.model.rate_and_cumulative(t)
        }
    }
}

/// Forecast `fit` from `start` (days from the model origin, usually the last history time).
pub fn monte_carlo(
    fit: &Fit,
    start: f64,
    options: &ForecastOptions,
) -> Result<ProbabilisticForecast, DeclineError> {
    options.validate(start)?;
    let best =
        Draw::new(*fit.model(), start, &options.limits).ok_or(DeclineError::InvalidParameter {
            name: "best-fit EUR",
            value: f64::NAN,
            reason: "the best-fit model has no finite EUR under these limits",
        })?;
    let (draws, rejected_draws) = sample(fit, start, options);
    if draws.len() < options.draws {
        return Err(DeclineError::TooManyRejectedDraws {
            accepted: draws.len(),
            requested: options.draws,
        });
    }

    let mut rates = vec![0.0; draws.len()];
    let mut cumulatives = vec![0.0; draws.len()];
    let mut rate_quantiles = QuantileTracker::new(draws.len());
    let mut cumulative_quantiles = QuantileTracker::new(draws.len());
    let points = (0..=options.steps)
        .map(|k| {
            let time = start + k as f64 * options.step;
            for ((rate, cumulative), draw) in rates.iter_mut().zip(&mut cumulatives).zip(&draws) {
                (*rate, *cumulative) = draw.at(time);
            }
            let (best_fit_rate, best_fit_cumulative) = best.at(time);
            ForecastPoint {
                time,
                rate: rate_quantiles.percentiles(&rates),
                cumulative: cumulative_quantiles.percentiles(&cumulatives),
                best_fit_rate,
                best_fit_cumulative,
            }
        })
        .collect();
    let eurs: Vec<f64> = draws.iter().map(|d| d.eur).collect();
    let remaining: Vec<f64> = draws.iter().map(|d| d.remaining).collect();
    Ok(ProbabilisticForecast {
        model: fit.kind(),
        points,
        eur: QuantileTracker::new(draws.len()).percentiles(&eurs),
        remaining: QuantileTracker::new(draws.len()).percentiles(&remaining),
        best_fit_eur: fit.model().eur(&options.limits)?,
        best_fit_remaining: best.remaining,
        draws: draws.len(),
        rejected_draws,
    })
}

/// Valid draws (up to `options.draws`) and the number rejected.
fn sample(fit: &Fit, start: f64, options: &ForecastOptions) -> (Vec<Draw>, usize) {
    let mut rng = ChaCha20Rng::seed_from_u64(options.seed);
    let dim = fit.dim();
    let mut z = [0.0; 3];
    let mut draws = Vec::with_capacity(options.draws);
    let mut rejected = 0;
    let max_attempts = options.draws.saturating_mul(4);
    for _ in 0..max_attempts {
        if draws.len() == options.draws {
            break;
        }
        for zj in &mut z[..dim] {
            *zj = StandardNormal.sample(&mut rng);
        }
        let draw = fit
            .perturbed_model(&z[..dim])
            .ok()
            .and_then(|m| Draw::new(m, start, &options.limits));
        match draw {
            Some(d) => draws.push(d),
            None => rejected += 1,
        }
    }
    (draws, rejected)
}
