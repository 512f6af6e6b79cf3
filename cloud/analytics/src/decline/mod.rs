//! Decline-curve analysis: Arps models, fitting, EUR and probabilistic forecasts.
//!
//! A well's production rate declines as its reservoir depletes; the empirical Arps (1945)
//! family describes that decline with an initial rate `qᵢ`, an initial nominal decline `Dᵢ`
//! and a hyperbolic exponent `b`. This module fits those models to a well's production
//! history, selects the best, and forecasts rates, cumulative production, EUR (estimated
//! ultimate recovery) and remaining reserves with P10/P50/P90 uncertainty. It is pure:
//! numbers in, numbers out, no I/O.
//!
//! # Pipeline (what the HTTP layer calls)
//!
//! ```text
//! History::new / History::from_dates   validated (t, q) points (≥ 6 months for a fit)
//!   → fit_all(&history, &FitOptions)   every model by Levenberg–Marquardt, best by AICc
//!   → monte_carlo(fits.best(), start, &ForecastOptions)   P10/P50/P90 series + EUR
//! analyze(&history, &AnalysisOptions) does all three.
//! ```
//!
//! # Equations (time in days, rates in volume/day, `D` nominal per day)
//!
//! * exponential `q = qᵢe^(−Dᵢt)`, `Np = qᵢ(1 − e^(−Dᵢt))/Dᵢ`;
//! * harmonic `q = qᵢ/(1 + Dᵢt)`, `Np = qᵢ ln(1 + Dᵢt)/Dᵢ`;
//! * hyperbolic `q = qᵢ(1 + bDᵢt)^(−1/b)`, `Np = qᵢ(1 − (1 + bDᵢt)^(1−1/b))/((1 − b)Dᵢ)`,
//!   `D(t) = Dᵢ/(1 + bDᵢt)`;
//! * modified hyperbolic (Robertson 1988): hyperbolic until `D(t)` reaches `D_term` at
//!   `t* = (1/D_term − 1/Dᵢ)/b`, exponential at `D_term` after.
//!
//! Decline conversions over a period `P` (year = 365.25 d): tangent-effective
//! `Dₑ = 1 − e^(−D)` ⇔ `D = −ln(1 − Dₑ)`; secant-effective
//! `Dₛ = 1 − (1 + bD)^(−1/b)` ⇔ `D = ((1 − Dₛ)^(−b) − 1)/b`; `D_day = D_year/365.25`.
//! Details in [`conversions`], [`model`]; fitting in [`fit`], [`select`]; uncertainty in
//! [`monte_carlo`](mod@monte_carlo).
//!
//! # Conventions
//!
//! * `t = 0` is the decline origin (where `q = qᵢ`); forecasts and EUR limits are in days
//!   from it. EUR is the model cumulative from `t = 0` to abandonment (the earlier of an
//!   economic-limit rate and a maximum time); remaining reserves run from the forecast start.
//! * The modified hyperbolic's `Dᵢ` is commonly quoted secant-effective (converted with its
//!   `b`) and its `D_term` tangent-effective, as in petbox-dca.
//! * P90 is the low case, P10 the high case (SPE-PRMS exceedance probabilities).
//!
//! # Verification
//!
//! Rates, cumulatives, the switch time, the time to an economic limit and the EUR of a
//! modified hyperbolic (`qᵢ = 1000 bbl/d`, `Dᵢ = 0.8/yr` secant-effective, `b = 1.5`,
//! `D_term = 0.08/yr` tangent-effective, limit 5 bbl/d → 13,246.137 d, 570,156.511 bbl)
//! match values computed with petbox-dca to 1e-12 relative (`tests/decline_reference.rs`).
//!
//! # References
//!
//! * Arps, J. J. 1945. Analysis of Decline Curves. *Trans. AIME* 160: 228–247. SPE-945228-G.
//! * Robertson, S. 1988. Generalized Hyperbolic Equation. SPE-18731-MS.
//! * SPE/WPC/AAPG/SPEE/SEG/SPWLA/EAGE. 2018. *Petroleum Resources Management System*
//!   (SPE-PRMS), for the P90/P50/P10 (1P/2P/3P) exceedance convention.
//! * Fulford, D. S. et al. petbox-dca (Python decline-curve library), source of the
//!   reference values and of the 365.25-day year and decline conventions.
//! * Burnham, K. P., Anderson, D. R. 2002. *Model Selection and Multimodel Inference*, for AICc.

pub mod conversions;
mod error;
pub mod fit;
mod history;
pub mod model;
pub mod monte_carlo;
mod params;
mod quantiles;
pub mod select;

pub use conversions::{
    DAYS_PER_MONTH, DAYS_PER_YEAR, Decline, DeclineBasis, DeclinePeriod, nominal_from_secant,
    nominal_from_tangent, secant_from_nominal, tangent_from_nominal,
};
pub use error::DeclineError;
pub use fit::{Fit, FitOptions, FitStatistics, MIN_HISTORY_MONTHS, StandardErrors, fit_model};
pub use history::History;
pub use model::{DeclineModel, EconomicLimits, EndOfLife, Eur, EurLimit, ModelKind};
pub use monte_carlo::{
    ForecastOptions, ForecastPoint, MAX_DRAWS, MAX_STEPS, Percentiles, ProbabilisticForecast,
    monte_carlo,
};
pub use select::{FitSet, fit_all};

/// Options of [`analyze`].
#[derive(Debug, Clone, PartialEq)]
pub struct AnalysisOptions {
    /// Models to fit and the terminal decline.
    pub fit: FitOptions,
    /// Monte Carlo and forecast grid.
    pub forecast: ForecastOptions,
}

/// Result of [`analyze`].
#[derive(Debug, Clone)]
pub struct DeclineAnalysis {
    /// All fits and the selected one.
    pub fits: FitSet,
    /// Probabilistic forecast of the selected fit from the end of the history.
    pub forecast: ProbabilisticForecast,
}

/// Fit all models, select the best, and forecast it from the last history point.
pub fn analyze(
    history: &History,
    options: &AnalysisOptions,
) -> Result<DeclineAnalysis, DeclineError> {
    let fits = fit_all(history, &options.fit)?;
    let forecast = monte_carlo(fits.best(), history.last_time(), &options.forecast)?;
    Ok(DeclineAnalysis { fits, forecast })
}
