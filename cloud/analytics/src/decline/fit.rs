//! Nonlinear least-squares fit of one Arps model to a production history.
//!
//! **Objective.** Residuals are taken in log-rate, `rᵢ = ln qᵢ,obs − ln q̂(tᵢ)`: production
//! noise is multiplicative (a 5 % error at 1000 bbl/d and at 20 bbl/d weigh the same), and
//! early high rates do not swamp the late-time decline that drives the EUR. The sum
//! `SSE = Σ rᵢ²` is minimised by Levenberg–Marquardt (crate `levenberg-marquardt`, MINPACK
//! algorithm) over the unconstrained parameters `φ` of the (private) `params` module, with
//! an analytic Jacobian, so `qᵢ > 0`, `Dᵢ > 0` (`Dᵢ > D_term` for the modified hyperbolic) and
//! `0 < b < 2` hold throughout.
//!
//! **Initial guesses.** Each Arps form is linear in `t` after a transform: `ln q`
//! (exponential), `1/q` (harmonic) and `q^(−b)` (hyperbolic with a given `b`), so ordinary
//! linear regressions give `(qᵢ, Dᵢ)`; for the hyperbolic forms this is done on a grid of `b`
//! and the starts are ranked by SSE. The best start is refined, the next one tried if the
//! first does not converge. (The modified hyperbolic is first started from the hyperbolic
//! solution, see [`select`](super::select).)
//!
//! **Bounds on `b`.** If the optimum lies at a bound (`b < 0.001` or `b > 1.999`, where the
//! logistic map flattens), `b` is pinned there and `(qᵢ, Dᵢ)` re-fitted; the fit reports
//! `b_at_bound` and no standard error for `b`.
//!
//! **Uncertainty.** At the solution `σ² = SSE/(n − p)` and `Cov(φ) = σ² (JᵀJ)⁻¹` (`p` fitted
//! parameters, `J` the Jacobian of the residuals). Standard errors of `qᵢ, Dᵢ, b` follow by
//! the delta method. Because `φ` is logarithmic in `qᵢ` and `Dᵢ`, their uncertainty is
//! log-normal, which is what the Monte Carlo samples.
//!
//! A fit whose decline collapses to zero (`Dᵢ < 1e-8/d`, or `Dᵢ − D_term` for the modified
//! hyperbolic) means the rates do not decline; it is reported as
//! [`DeclineError::NotDeclining`] rather than as a meaningless curve.
//!
//! **Model comparison.** `AICc = n ln(SSE/n) + 2k + 2k(k + 1)/(n − k − 1)` with
//! `k = parameters + 1` (the noise variance), so a fit needs `n ≥ parameters + 3` points.
//! A history must also cover at least 6 months ([`MIN_HISTORY_MONTHS`]): decline parameters
//! from shorter histories are not meaningful, and the caller gets a clear error.

use levenberg_marquardt::{LeastSquaresProblem, LevenbergMarquardt, TerminationReason};
use nalgebra::storage::Owned;
use nalgebra::{DMatrix, DVector, Dyn};

use super::model::B_MAX;
use super::params::{Natural, ParamMap};
use super::{Decline, DeclineError, DeclineModel, History, ModelKind};

/// Months of history a fit needs.
pub const MIN_HISTORY_MONTHS: f64 = 6.0;

/// `b` closer than this to 0 or 2 is treated as at the bound.
const B_BOUND_TOLERANCE: f64 = 1e-3;

/// Grid of `b` values for the hyperbolic initial guesses.
const B_GRID: [f64; 7] = [0.2, 0.5, 0.8, 1.1, 1.4, 1.7, 1.95];

/// A fitted (excess) nominal decline below this, 1/d (≈ 0.0004 %/yr), is no decline at all.
const MIN_DECLINE: f64 = 1e-8;

/// Fallback initial decline when the data do not decline: 0.0001/d ≈ 3.6 %/yr nominal.
const FLAT_DECLINE_GUESS: f64 = 1e-4;

/// What to fit.
#[derive(Debug, Clone, PartialEq)]
pub struct FitOptions {
    /// Terminal decline of the modified hyperbolic (not fitted: it is an engineering input,
    /// not identifiable from early-life data). Default 8 %/yr tangent-effective.
    pub terminal_decline: Option<Decline>,
    /// Models fitted by [`fit_all`](super::fit_all). Default: all four.
    pub candidates: Vec<ModelKind>,
}

impl Default for FitOptions {
    fn default() -> Self {
        FitOptions {
            terminal_decline: Some(Decline::tangent_effective_per_year(0.08)),
            candidates: ModelKind::ALL.to_vec(),
        }
    }
}

impl FitOptions {
    /// The terminal decline as nominal per day.
    pub(crate) fn terminal_nominal(&self) -> Result<Option<f64>, DeclineError> {
        self.terminal_decline
            .map(|d| d.to_nominal_per_day(0.0))
            .transpose()
    }
}

/// Goodness of fit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FitStatistics {
    /// Number of data points `n`.
    pub points: usize,
    /// Model parameters (2 or 3; a `b` pinned at a bound still counts).
    pub parameters: usize,
    /// `Σ (ln q_obs − ln q̂)²`.
    pub sse: f64,
    /// Residual standard deviation in `ln q`, `√(SSE/(n − p))` (≈ relative rate error).
    pub sigma: f64,
    /// Root-mean-square rate error, volume/day.
    pub rmse: f64,
    /// Small-sample Akaike information criterion (lower is better).
    pub aicc: f64,
    /// Residual evaluations used by the optimiser.
    pub evaluations: usize,
}

/// One-sigma standard errors of the fitted physical parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StandardErrors {
    /// Of `qᵢ`, volume/day.
    pub qi: f64,
    /// Of `Dᵢ`, nominal 1/day.
    pub di: f64,
    /// Of `b` (`None` when `b` is fixed by the model or pinned at a bound).
    pub b: Option<f64>,
}

/// A fitted model with its statistics and parameter uncertainty.
#[derive(Debug, Clone)]
pub struct Fit {
    model: DeclineModel,
    statistics: FitStatistics,
    standard_errors: StandardErrors,
    b_at_bound: bool,
    map: ParamMap,
    phi: DVector<f64>,
    covariance: DMatrix<f64>,
    covariance_cholesky: DMatrix<f64>,
}

impl Fit {
    /// The best-fit model.
    pub fn model(&self) -> &DeclineModel {
        &self.model
    }

    /// The model family.
    pub fn kind(&self) -> ModelKind {
        self.model.kind()
    }

    /// Goodness of fit.
    pub fn statistics(&self) -> &FitStatistics {
        &self.statistics
    }

    /// Standard errors of `qᵢ`, `Dᵢ`, `b`.
    pub fn standard_errors(&self) -> &StandardErrors {
        &self.standard_errors
    }

    /// True when the optimum of `b` lay at 0 or 2 and `b` was pinned there.
    pub fn b_at_bound(&self) -> bool {
        self.b_at_bound
    }

    /// `σ² (JᵀJ)⁻¹` in the fitted parameterisation `φ = (ln qᵢ, ln Dᵢ [or ln(Dᵢ − D_term)],
    /// logit(b/2))`, restricted to the parameters actually fitted.
    pub fn covariance(&self) -> &DMatrix<f64> {
        &self.covariance
    }

    /// Number of fitted parameters (the dimension of the covariance).
    pub(crate) fn dim(&self) -> usize {
        self.map.dim()
    }

    /// The model at `φ̂ + L z` (`L Lᵀ = Cov(φ)`, `z` standard normal of length `dim`).
    pub(crate) fn perturbed_model(&self, z: &[f64]) -> Result<DeclineModel, DeclineError> {
        let z = DVector::from_column_slice(z);
        let phi = &self.phi + &self.covariance_cholesky * z;
        self.map.model(phi.as_slice())
    }
}

/// Fit one model to a history (at least 6 months).
pub fn fit_model(
    history: &History,
    kind: ModelKind,
    options: &FitOptions,
) -> Result<Fit, DeclineError> {
    check_history(history)?;
    let data = Data::new(history);
    fit_kind(&data, kind, options.terminal_nominal()?, None)
}

/// Fail with [`DeclineError::InsufficientHistory`] below [`MIN_HISTORY_MONTHS`].
pub(crate) fn check_history(history: &History) -> Result<(), DeclineError> {
    let months = history.months();
    if months < MIN_HISTORY_MONTHS {
        return Err(DeclineError::InsufficientHistory {
            months,
            required: MIN_HISTORY_MONTHS,
            points: history.len(),
        });
    }
    Ok(())
}

/// Times and log-rates of a history.
#[derive(Debug)]
pub(crate) struct Data<'a> {
    times: &'a [f64],
    rates: &'a [f64],
    log_rates: Vec<f64>,
}

impl<'a> Data<'a> {
    pub fn new(history: &'a History) -> Self {
        Data {
            times: history.times(),
            rates: history.rates(),
            log_rates: history.rates().iter().map(|q| q.ln()).collect(),
        }
    }
}

/// Fit `kind`, from `start` if given (else from the regression guesses).
pub(crate) fn fit_kind(
    data: &Data<'_>,
    kind: ModelKind,
    d_term: Option<f64>,
    start: Option<Natural>,
) -> Result<Fit, DeclineError> {
    let required = kind.parameter_count() + 3;
    if data.times.len() < required {
        return Err(DeclineError::TooFewPoints {
            model: kind,
            required,
            points: data.times.len(),
        });
    }
    let map = ParamMap::new(kind, d_term)?;
    let mut outcome = start.map(|s| minimize(data, map, &map.encode(s)));
    if !outcome.as_ref().is_some_and(|o| converged(&o.1)) {
        for s in initial_guesses(data, &map).iter().take(2) {
            let attempt = minimize(data, map, &map.encode(*s));
            let done = converged(&attempt.1);
            outcome = Some(attempt);
            if done {
                break;
            }
        }
    }
    let Some((mut phi, mut termination, mut evaluations)) = outcome else {
        return Err(not_converged(kind, "no valid starting point"));
    };
    let mut map = map;
    let mut b_at_bound = false;
    if map.b_is_fitted() {
        let n = map.natural(phi.as_slice());
        if let Some(bound) = bound_of(n.b) {
            map = map.with_fixed_b(bound);
            let (pinned, reason, used) = minimize(data, map, &map.encode(n));
            (phi, termination, b_at_bound) = (pinned, reason, true);
            evaluations += used;
        }
    }
    if !converged(&termination) {
        return Err(not_converged(kind, &describe(&termination)));
    }
    // φ₁ is ln Dᵢ, or ln(Dᵢ − D_term) for the modified hyperbolic.
    if phi[1].exp() < MIN_DECLINE {
        let terminal = match kind {
            ModelKind::ModifiedHyperbolic => ", or declining no faster than the terminal decline",
            _ => "",
        };
        return Err(DeclineError::NotDeclining {
            model: kind,
            terminal,
        });
    }
    finish(data, map, phi, b_at_bound, evaluations)
}

fn bound_of(b: f64) -> Option<f64> {
    if b < B_BOUND_TOLERANCE {
        Some(0.0)
    } else if b > B_MAX - B_BOUND_TOLERANCE {
        Some(B_MAX)
    } else {
        None
    }
}

fn converged(reason: &TerminationReason) -> bool {
    // `NoImprovementPossible`: the tolerances are at machine precision, i.e. we are there.
    reason.was_successful() || matches!(reason, TerminationReason::NoImprovementPossible(_))
}

fn describe(reason: &TerminationReason) -> String {
    match reason {
        TerminationReason::LostPatience => "iteration limit reached".to_owned(),
        TerminationReason::Numerical(what) => format!("non-finite {what}"),
        other => format!("{other:?}"),
    }
}

fn not_converged(model: ModelKind, reason: &str) -> DeclineError {
    DeclineError::NotConverged {
        model,
        reason: reason.to_owned(),
    }
}

/// Run Levenberg–Marquardt from `phi0`: `(φ, termination, evaluations)`.
fn minimize(
    data: &Data<'_>,
    map: ParamMap,
    phi0: &[f64],
) -> (DVector<f64>, TerminationReason, usize) {
    let problem = Problem {
        data,
        map,
        phi: DVector::from_column_slice(phi0),
    };
    let (problem, report) = LevenbergMarquardt::new().minimize(problem);
    (
        problem.phi,
        report.termination,
        report.number_of_evaluations,
    )
}

/// Statistics and covariance at the solution.
fn finish(
    data: &Data<'_>,
    map: ParamMap,
    phi: DVector<f64>,
    b_at_bound: bool,
    evaluations: usize,
) -> Result<Fit, DeclineError> {
    let kind = map.kind();
    let model = map.model(phi.as_slice())?;
    let problem = Problem { data, map, phi };
    let (residuals, jacobian) = problem.evaluate(true);
    let n = data.times.len();
    let p = map.dim();
    let sse = residuals.norm_squared();
    let sigma2 = sse / (n - p) as f64;
    let singular = DeclineError::SingularCovariance { model: kind };
    let information = jacobian.tr_mul(&jacobian);
    let inverse = information.cholesky().ok_or(singular.clone())?.inverse();
    let covariance = &inverse * sigma2;
    let covariance_cholesky = inverse.cholesky().ok_or(singular)?.l() * sigma2.sqrt();

    let natural = map.natural(problem.phi.as_slice());
    let chain = map.chain(&natural);
    let se = |j: usize| chain[j] * covariance[(j, j)].sqrt();
    let standard_errors = StandardErrors {
        qi: natural.qi * se(0),
        di: se(1),
        b: map.b_is_fitted().then(|| se(2)),
    };
    let rmse = (data
        .times
        .iter()
        .zip(data.rates)
        .map(|(&t, &q)| (q - model.rate(t)).powi(2))
        .sum::<f64>()
        / n as f64)
        .sqrt();
    let statistics = FitStatistics {
        points: n,
        parameters: kind.parameter_count(),
        sse,
        sigma: sigma2.sqrt(),
        rmse,
        aicc: aicc(sse, n, kind.parameter_count()),
        evaluations,
    };
    Ok(Fit {
        model,
        statistics,
        standard_errors,
        b_at_bound,
        map,
        phi: problem.phi,
        covariance,
        covariance_cholesky,
    })
}

/// AICc of a least-squares fit with `parameters` model parameters (+1 for the variance).
fn aicc(sse: f64, n: usize, parameters: usize) -> f64 {
    let k = (parameters + 1) as f64;
    let n_f = n as f64;
    n_f * (sse / n_f).max(f64::MIN_POSITIVE).ln() + 2.0 * k + 2.0 * k * (k + 1.0) / (n_f - k - 1.0)
}

/// Starting points ranked by SSE, best first.
fn initial_guesses(data: &Data<'_>, map: &ParamMap) -> Vec<Natural> {
    let t = data.times;
    let exponential = {
        let (a, slope) = linear_regression(t, data.log_rates.iter().copied());
        (a.exp(), -slope)
    };
    let mut candidates: Vec<Natural> = match map.kind() {
        ModelKind::Exponential => vec![guess(exponential, 0.0)],
        ModelKind::Harmonic => {
            let (a, slope) = linear_regression(t, data.rates.iter().map(|q| 1.0 / q));
            let harmonic = (a > 0.0).then(|| (1.0 / a, slope / a));
            vec![guess(harmonic.unwrap_or(exponential), 1.0)]
        }
        ModelKind::Hyperbolic | ModelKind::ModifiedHyperbolic => {
            let mut grid: Vec<Natural> = B_GRID
                .iter()
                .filter_map(|&b| {
                    let (a, slope) = linear_regression(t, data.rates.iter().map(|q| q.powf(-b)));
                    // q^(−b) = qᵢ^(−b) (1 + bDᵢt): intercept qᵢ^(−b), slope qᵢ^(−b)·b·Dᵢ.
                    (a > 0.0 && slope > 0.0).then(|| guess((a.powf(-1.0 / b), slope / (a * b)), b))
                })
                .collect();
            grid.push(guess(exponential, 0.5));
            grid
        }
    };
    let mut scored: Vec<(f64, Natural)> = candidates
        .drain(..)
        .filter_map(|n| {
            let phi = map.encode(n);
            let sse = Problem {
                data,
                map: *map,
                phi: DVector::from_vec(phi),
            }
            .evaluate(false)
            .0
            .norm_squared();
            sse.is_finite().then_some((sse, n))
        })
        .collect();
    scored.sort_by(|a, b| a.0.total_cmp(&b.0));
    scored.into_iter().map(|(_, n)| n).collect()
}

/// A start from a regression `(qᵢ, Dᵢ)`, with a small positive decline if the data rise.
fn guess((qi, di): (f64, f64), b: f64) -> Natural {
    let qi = if qi.is_finite() && qi > 0.0 { qi } else { 1.0 };
    let di = if di.is_finite() && di > 0.0 {
        di
    } else {
        FLAT_DECLINE_GUESS
    };
    Natural { qi, di, b }
}

/// Ordinary least squares `y = a + s·x`: `(a, s)`.
fn linear_regression(x: &[f64], y: impl Iterator<Item = f64>) -> (f64, f64) {
    let n = x.len() as f64;
    let (mut sx, mut sy, mut sxx, mut sxy) = (0.0, 0.0, 0.0, 0.0);
    for (&xi, yi) in x.iter().zip(y) {
        sx += xi;
        sy += yi;
        sxx += xi * xi;
        sxy += xi * yi;
    }
    let slope = (n * sxy - sx * sy) / (n * sxx - sx * sx);
    ((sy - slope * sx) / n, slope)
}

/// The least-squares problem handed to Levenberg–Marquardt.
struct Problem<'d, 'a> {
    data: &'d Data<'a>,
    map: ParamMap,
    phi: DVector<f64>,
}

impl Problem<'_, '_> {
    /// Residuals `ln q_obs − ln q̂` and, if asked, their Jacobian.
    fn evaluate(&self, with_jacobian: bool) -> (DVector<f64>, DMatrix<f64>) {
        let n = self.data.times.len();
        let p = self.map.dim();
        let natural = self.map.natural(self.phi.as_slice());
        let mut residuals = DVector::zeros(n);
        let mut jacobian = DMatrix::zeros(if with_jacobian { n } else { 0 }, p);
        let mut grad = [0.0; 3];
        for (i, (&t, &log_q)) in self.data.times.iter().zip(&self.data.log_rates).enumerate() {
            residuals[i] = log_q - self.map.log_rate_grad(&natural, t, &mut grad);
            if with_jacobian {
                for j in 0..p {
                    jacobian[(i, j)] = -grad[j];
                }
            }
        }
        (residuals, jacobian)
    }
}

impl LeastSquaresProblem<f64, Dyn, Dyn> for Problem<'_, '_> {
    type ResidualStorage = Owned<f64, Dyn>;
    type JacobianStorage = Owned<f64, Dyn, Dyn>;
    type ParameterStorage = Owned<f64, Dyn>;

    fn set_params(&mut self, x: &DVector<f64>) {
        self.phi.copy_from(x);
    }

    fn params(&self) -> DVector<f64> {
        self.phi.clone()
    }

    fn residuals(&self) -> Option<DVector<f64>> {
        Some(self.evaluate(false).0)
    }

    fn jacobian(&self) -> Option<DMatrix<f64>> {
        Some(self.evaluate(true).1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use levenberg_marquardt::differentiate_numerically;

    fn history() -> History {
        let model = DeclineModel::hyperbolic(900.0, Decline::nominal_per_day(0.004), 1.2).unwrap();
        let points: Vec<_> = (0..24)
            .map(|m| {
                let t = (m as f64 + 0.5) * crate::decline::DAYS_PER_MONTH;
                (t, model.rate(t) * (1.0 + 0.03 * ((m * 7 % 5) as f64 - 2.0)))
            })
            .collect();
        History::new(&points).unwrap()
    }

    #[test]
    fn analytic_jacobian_matches_numerical() {
        let history = history();
        let data = Data::new(&history);
        for kind in ModelKind::ALL {
            let map = ParamMap::new(kind, Some(2e-4)).unwrap();
            let phi = map.encode(Natural {
                qi: 700.0,
                di: 0.003,
                b: 0.9,
            });
            let mut problem = Problem {
                data: &data,
                map,
                phi: DVector::from_vec(phi),
            };
            let analytic = problem.jacobian().unwrap();
            let numeric = differentiate_numerically(&mut problem).unwrap();
            assert!((analytic - numeric).amax() < 1e-6, "{kind}");
        }
    }

    #[test]
    fn regression_is_exact_on_a_line() {
        let x = [0.0, 1.0, 2.0, 3.0];
        let (a, s) = linear_regression(&x, x.iter().map(|v| 2.0 - 0.5 * v));
        assert!((a - 2.0).abs() < 1e-12 && (s + 0.5).abs() < 1e-12);
    }

    #[test]
    fn non_convergence_is_reported_in_words() {
        let err = not_converged(
            ModelKind::Hyperbolic,
            &describe(&TerminationReason::LostPatience),
        );
        assert_eq!(
            err.to_string(),
            "hyperbolic fit did not converge: iteration limit reached"
        );
        assert!(!converged(&TerminationReason::LostPatience));
        assert!(converged(&TerminationReason::NoImprovementPossible("gtol")));
    }

    #[test]
    fn aicc_penalises_parameters() {
        assert!(aicc(1.0, 30, 3) > aicc(1.0, 30, 2));
        assert!(aicc(0.5, 30, 2) < aicc(1.0, 30, 2));
    }

    #[test]
    fn too_few_points_for_the_hyperbolic() {
        let points: Vec<_> = (0..5)
            .map(|m| (m as f64 * 40.0, 100.0 - m as f64))
            .collect();
        let history = History::new(&points).unwrap();
        let err = fit_kind(&Data::new(&history), ModelKind::Hyperbolic, None, None).unwrap_err();
        assert_eq!(
            err,
            DeclineError::TooFewPoints {
                model: ModelKind::Hyperbolic,
                required: 6,
                points: 5
            }
        );
    }
}
