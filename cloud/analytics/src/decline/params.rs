//! The unconstrained parameterisation the optimiser works in, and `ln q` with its gradient.
//!
//! Least squares runs on `φ`, which maps onto the physical parameters so that every `φ ∈ ℝᵖ`
//! is a valid model (the bounds are built in rather than enforced by clamping):
//!
//! * `φ₀ = ln qᵢ` (`qᵢ > 0`);
//! * `φ₁ = ln Dᵢ` (`Dᵢ > 0`), or `ln(Dᵢ − D_term)` for the modified hyperbolic (`Dᵢ > D_term`);
//! * `φ₂ = ln(b / (2 − b))`, i.e. `b = 2 / (1 + e^(−φ₂))` (`0 < b < 2`), present only when
//!   `b` is fitted (hyperbolic and modified hyperbolic, unless pinned at a bound).
//!
//! The same map turns Monte Carlo draws of `φ` into models, so draws respect the bounds too;
//! standard errors of the physical parameters follow by the delta method with the
//! derivatives returned by [`ParamMap::chain`].
//!
//! `ln q` and its partial derivatives are analytic. For the hyperbolic segment, with
//! `x = bDᵢt`: `ln q = ln qᵢ − ln(1 + x)/b`, `∂/∂Dᵢ = −t/(1 + x)`,
//! `∂/∂b = (ln(1 + x) − x/(1 + x))/b²` (series `(Dᵢt)²(1/2 − 2x/3 + 3x²/4)` for small `x`).
//! After the modified hyperbolic's switch, with `ρ = Dᵢ/D_term`:
//! `ln q = ln qᵢ − D_term·t + (1 − 1/ρ − ln ρ)/b`, `∂/∂Dᵢ = (1/ρ − 1)/(b·Dᵢ)`,
//! `∂/∂b = −(1 − 1/ρ − ln ρ)/b²`.

use super::conversions::B_EPSILON;
use super::model::B_MAX;
use super::{DeclineError, DeclineModel, ModelKind};

/// Physical parameters (`Dᵢ` nominal per day).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Natural {
    pub qi: f64,
    pub di: f64,
    pub b: f64,
}

/// How `φ` maps onto a model of one kind.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct ParamMap {
    kind: ModelKind,
    d_term: f64,
    fixed_b: Option<f64>,
}

impl ParamMap {
    /// The map of `kind`; `d_term` (nominal per day) is required by the modified hyperbolic.
    pub fn new(kind: ModelKind, d_term: Option<f64>) -> Result<Self, DeclineError> {
        let d_term = match (kind, d_term) {
            (ModelKind::ModifiedHyperbolic, None) => {
                return Err(DeclineError::InvalidParameter {
                    name: "terminal decline",
                    value: f64::NAN,
                    reason: "the modified hyperbolic needs a terminal decline",
                });
            }
            (ModelKind::ModifiedHyperbolic, Some(d)) => d,
            _ => 0.0,
        };
        let fixed_b = match kind {
            ModelKind::Exponential => Some(0.0),
            ModelKind::Harmonic => Some(1.0),
            ModelKind::Hyperbolic | ModelKind::ModifiedHyperbolic => None,
        };
        Ok(ParamMap {
            kind,
            d_term,
            fixed_b,
        })
    }

    /// The same map with `b` pinned (at a bound).
    pub fn with_fixed_b(self, b: f64) -> Self {
        ParamMap {
            fixed_b: Some(b),
            ..self
        }
    }

    pub fn kind(&self) -> ModelKind {
        self.kind
    }

    pub fn d_term(&self) -> Option<f64> {
        (self.kind == ModelKind::ModifiedHyperbolic).then_some(self.d_term)
    }

    /// Number of components of `φ`.
    pub fn dim(&self) -> usize {
        if self.fixed_b.is_some() { 2 } else { 3 }
    }

    pub fn b_is_fitted(&self) -> bool {
        self.fixed_b.is_none()
    }

    pub fn natural(&self, phi: &[f64]) -> Natural {
        let offset = if self.kind == ModelKind::ModifiedHyperbolic {
            self.d_term
        } else {
            0.0
        };
        Natural {
            qi: phi[0].exp(),
            di: offset + phi[1].exp(),
            b: self
                .fixed_b
                .unwrap_or_else(|| B_MAX / (1.0 + (-phi[2]).exp())),
        }
    }

    /// `φ` of physical parameters; a fitted `b` is moved into `[0.01, 1.99]` and a modified
    /// hyperbolic `Dᵢ` above `1.05 D_term` so that the start is well inside the domain.
    pub fn encode(&self, n: Natural) -> Vec<f64> {
        let mut phi = vec![n.qi.ln()];
        if self.kind == ModelKind::ModifiedHyperbolic {
            phi.push((n.di.max(1.05 * self.d_term) - self.d_term).ln());
        } else {
            phi.push(n.di.ln());
        }
        if self.fixed_b.is_none() {
            let b = n.b.clamp(0.01, B_MAX - 0.01);
            phi.push((b / (B_MAX - b)).ln());
        }
        phi
    }

    /// `[∂ ln qᵢ/∂φ₀ · qᵢ, ∂Dᵢ/∂φ₁, ∂b/∂φ₂]`: multiply natural partials (w.r.t. `ln qᵢ`,
    /// `Dᵢ`, `b`) by these to get partials w.r.t. `φ`.
    pub fn chain(&self, n: &Natural) -> [f64; 3] {
        let d_di = if self.kind == ModelKind::ModifiedHyperbolic {
            n.di - self.d_term
        } else {
            n.di
        };
        [1.0, d_di, n.b * (1.0 - n.b / B_MAX)]
    }

    pub fn model(&self, phi: &[f64]) -> Result<DeclineModel, DeclineError> {
        let n = self.natural(phi);
        DeclineModel::from_nominal(self.kind, n.qi, n.di, n.b, self.d_term())
    }

    /// `ln q(t)` and its gradient w.r.t. `φ` (written to `grad[..dim]`).
    pub fn log_rate_grad(&self, n: &Natural, t: f64, grad: &mut [f64]) -> f64 {
        let (log_q, d_di, d_b) = self.log_rate_partials(n, t);
        let chain = self.chain(n);
        grad[0] = 1.0;
        grad[1] = d_di * chain[1];
        if self.fixed_b.is_none() {
            grad[2] = d_b * chain[2];
        }
        log_q
    }

    /// `(ln q, ∂ ln q/∂Dᵢ, ∂ ln q/∂b)` at `t`.
    fn log_rate_partials(&self, n: &Natural, t: f64) -> (f64, f64, f64) {
        let Natural { qi, di, b } = *n;
        if b < B_EPSILON {
            return (qi.ln() - di * t, -t, 0.0);
        }
        if self.kind == ModelKind::ModifiedHyperbolic {
            let switch = (1.0 / self.d_term - 1.0 / di) / b;
            if t > switch {
                let rho = di / self.d_term;
                let shape = 1.0 - 1.0 / rho - rho.ln();
                let log_q = qi.ln() - self.d_term * t + shape / b;
                return (log_q, (1.0 / rho - 1.0) / (b * di), -shape / (b * b));
            }
        }
        let c = di * t;
        let x = b * c;
        let log_growth = x.ln_1p();
        let d_b = if x < 1e-3 {
            c * c * (0.5 - 2.0 * x / 3.0 + 0.75 * x * x)
        } else {
            (log_growth - x / (1.0 + x)) / (b * b)
        };
        (qi.ln() - log_growth / b, -t / (1.0 + x), d_b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Analytic gradient against central differences, across the MH switch.
    #[test]
    fn gradient_matches_finite_differences() {
        let cases = [
            (
                ParamMap::new(ModelKind::Exponential, None).unwrap(),
                vec![6.0, -6.0],
            ),
            (
                ParamMap::new(ModelKind::Harmonic, None).unwrap(),
                vec![6.0, -5.0],
            ),
            (
                ParamMap::new(ModelKind::Hyperbolic, None).unwrap(),
                vec![6.0, -4.0, 0.3],
            ),
            (
                ParamMap::new(ModelKind::Hyperbolic, None).unwrap(),
                vec![6.0, -4.0, -9.0],
            ),
            (
                ParamMap::new(ModelKind::ModifiedHyperbolic, Some(2.3e-4)).unwrap(),
                vec![6.9, -4.0, 1.1],
            ),
        ];
        for (map, phi) in cases {
            for t in [0.0, 3.0, 400.0, 3000.0, 9000.0] {
                let mut grad = [0.0; 3];
                map.log_rate_grad(&map.natural(&phi), t, &mut grad);
                for j in 0..map.dim() {
                    let h = 1e-6;
                    let mut up = phi.clone();
                    up[j] += h;
                    let mut down = phi.clone();
                    down[j] -= h;
                    let mut scratch = [0.0; 3];
                    let f_up = map.log_rate_grad(&map.natural(&up), t, &mut scratch);
                    let f_down = map.log_rate_grad(&map.natural(&down), t, &mut scratch);
                    let numeric = (f_up - f_down) / (2.0 * h);
                    assert!(
                        (grad[j] - numeric).abs() <= 1e-6 * (1.0 + numeric.abs()),
                        "{:?} t={t} j={j}: {} vs {numeric}",
                        map.kind(),
                        grad[j]
                    );
                }
            }
        }
    }

    #[test]
    fn log_rate_matches_the_model() {
        let map = ParamMap::new(ModelKind::ModifiedHyperbolic, Some(2.3e-4)).unwrap();
        let phi = [6.9, -4.0, 1.1];
        let model = map.model(&phi).unwrap();
        let n = map.natural(&phi);
        for t in [0.0, 50.0, 5000.0, 20000.0] {
            let mut grad = [0.0; 3];
            let log_q = map.log_rate_grad(&n, t, &mut grad);
            assert!((log_q - model.rate(t).ln()).abs() < 1e-12, "t = {t}");
        }
    }

    #[test]
    fn natural_round_trip() {
        let map = ParamMap::new(ModelKind::ModifiedHyperbolic, Some(2e-4)).unwrap();
        let n = Natural {
            qi: 800.0,
            di: 0.01,
            b: 1.3,
        };
        let back = map.natural(&map.encode(n));
        assert!((back.qi - n.qi).abs() < 1e-9 && (back.di - n.di).abs() < 1e-15);
        assert!((back.b - n.b).abs() < 1e-12);
    }
}
