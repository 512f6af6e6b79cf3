//! Fit every candidate model and pick the best by AICc.
//!
//! **Rule.** The fit with the lowest AICc wins (AICc trades goodness of fit against the
//! number of parameters and corrects for small samples, which decline histories are).
//! Fits whose AICc differ by less than [`AICC_TIE`] are tied; ties go to the fewer
//! parameters, then to the order exponential, harmonic, modified hyperbolic, hyperbolic.
//! The modified hyperbolic is fitted starting from the hyperbolic solution, so when its
//! switch to the terminal decline lies beyond the history the two fits are the same on the
//! data and the tie goes to the modified hyperbolic, whose terminal decline bounds the EUR
//! (the usual reserves practice for `b ≥ 1`).
//!
//! A candidate that cannot be fitted (too few points, no convergence, singular covariance)
//! is recorded with its error and the others still compete; only if none fits is the result
//! an error. A history shorter than 6 months fails up front.

use std::cmp::Ordering;

use super::fit::{Data, Fit, FitOptions, check_history, fit_kind};
use super::params::Natural;
use super::{DeclineError, History, ModelKind};

/// AICc differences below this are ties.
pub const AICC_TIE: f64 = 1e-6;

/// Every fitted candidate, the failures, and the selected best fit.
#[derive(Debug, Clone)]
pub struct FitSet {
    fits: Vec<Fit>,
    failures: Vec<(ModelKind, DeclineError)>,
    best: usize,
}

impl FitSet {
    /// The selected fit.
    pub fn best(&self) -> &Fit {
        &self.fits[self.best]
    }

    /// All successful fits, in [`ModelKind::ALL`] order.
    pub fn fits(&self) -> &[Fit] {
        &self.fits
    }

    /// The fit of one model, if it succeeded.
    pub fn get(&self, kind: ModelKind) -> Option<&Fit> {
        self.fits.iter().find(|f| f.kind() == kind)
    }

    /// Candidates that could not be fitted, with why.
    pub fn failures(&self) -> &[(ModelKind, DeclineError)] {
        &self.failures
    }
}

/// Fit every candidate of `options` and select the best (see the module docs).
pub fn fit_all(history: &History, options: &FitOptions) -> Result<FitSet, DeclineError> {
    check_history(history)?;
    let d_term = options.terminal_nominal()?;
    let data = Data::new(history);
    let mut fits: Vec<Fit> = Vec::new();
    let mut failures = Vec::new();
    for kind in ModelKind::ALL {
        if !options.candidates.contains(&kind) {
            continue;
        }
        let start = match (kind, d_term) {
            (ModelKind::ModifiedHyperbolic, Some(d_term)) => fits
                .iter()
                .find(|f| f.kind() == ModelKind::Hyperbolic)
                .map(|f| f.model())
                .filter(|m| m.di() > d_term)
                .map(|m| Natural {
                    qi: m.qi(),
                    di: m.di(),
                    b: m.b(),
                }),
            _ => None,
        };
        match fit_kind(&data, kind, d_term, start) {
            Ok(fit) => fits.push(fit),
            Err(e) => failures.push((kind, e)),
        }
    }
    let best = (0..fits.len())
        .min_by(|&a, &b| compare(&fits[a], &fits[b]))
        .ok_or_else(|| DeclineError::NoModelFitted(failures.clone()))?;
    Ok(FitSet {
        fits,
        failures,
        best,
    })
}

fn compare(a: &Fit, b: &Fit) -> Ordering {
    let (sa, sb) = (a.statistics(), b.statistics());
    if (sa.aicc - sb.aicc).abs() >= AICC_TIE {
        return sa.aicc.total_cmp(&sb.aicc);
    }
    sa.parameters
        .cmp(&sb.parameters)
        .then(preference(a.kind()).cmp(&preference(b.kind())))
}

fn preference(kind: ModelKind) -> u8 {
    match kind {
        ModelKind::Exponential => 0,
        ModelKind::Harmonic => 1,
        ModelKind::ModifiedHyperbolic => 2,
        ModelKind::Hyperbolic => 3,
    }
}
