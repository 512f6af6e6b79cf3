//! The Arps decline models in closed form.
//!
//! Time `t` is in days from the model origin (`t = 0`, where `q = qᵢ`); rates are volumes per
//! day; cumulative volumes are rate × days. `Dᵢ` is the nominal decline per day (see
//! [`conversions`](super::conversions) for effective declines).
//!
//! | model | `q(t)` | `Np(t)` | `D(t)` |
//! |---|---|---|---|
//! | exponential (`b = 0`) | `qᵢ e^(−Dᵢt)` | `qᵢ (1 − e^(−Dᵢt)) / Dᵢ` | `Dᵢ` |
//! | harmonic (`b = 1`) | `qᵢ / (1 + Dᵢt)` | `qᵢ ln(1 + Dᵢt) / Dᵢ` | `Dᵢ / (1 + Dᵢt)` |
//! | hyperbolic | `qᵢ (1 + bDᵢt)^(−1/b)` | `qᵢ (1 − (1 + bDᵢt)^(1 − 1/b)) / ((1 − b)Dᵢ)` | `Dᵢ / (1 + bDᵢt)` |
//!
//! The **modified hyperbolic** (Robertson 1988) follows the hyperbolic until its
//! instantaneous nominal decline falls to the terminal decline `D_term`, at
//! `t* = (1/D_term − 1/Dᵢ)/b`, and is exponential at `D_term` afterwards:
//! `q(t) = q(t*) e^(−D_term (t − t*))`, `Np(t) = Np(t*) + q(t*)(1 − e^(−D_term (t − t*)))/D_term`.
//! It needs `Dᵢ > D_term > 0`. Rate, cumulative and decline are continuous at `t*`.
//!
//! Time to reach a rate `q < qᵢ`: exponential `ln(qᵢ/q)/Dᵢ`; hyperbolic and harmonic
//! `((qᵢ/q)^b − 1)/(bDᵢ)`; modified hyperbolic: the hyperbolic time while `q ≥ q(t*)`, else
//! `t* + ln(q(t*)/q)/D_term`.
//!
//! The hyperbolic forms are evaluated through `ln_1p`/`exp_m1` so that they stay accurate for
//! `b → 0` and `b → 1` (the cumulative's `(1 − b)` denominator); below `b = 1e-10` the
//! exponential limit is used. Times before the origin are clamped to `t = 0`.
//!
//! EUR is `Np(t_end)` where `t_end` is the earlier of the time the rate reaches the
//! economic-limit rate and the maximum time, both measured from the model origin; remaining
//! reserves at time `now` are `Np(t_end) − Np(min(now, t_end))`.

use std::fmt;

use super::conversions::B_EPSILON;
use super::{Decline, DeclineError};

/// Upper bound of the hyperbolic exponent accepted by the models and the fit.
pub const B_MAX: f64 = 2.0;

/// The Arps model families.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ModelKind {
    /// `b = 0`.
    Exponential,
    /// `b = 1`.
    Harmonic,
    /// `0 ≤ b ≤ 2`.
    Hyperbolic,
    /// Hyperbolic switching to exponential at a terminal decline.
    ModifiedHyperbolic,
}

impl ModelKind {
    /// Every model, in the order they are fitted and reported.
    pub const ALL: [ModelKind; 4] = [
        ModelKind::Exponential,
        ModelKind::Harmonic,
        ModelKind::Hyperbolic,
        ModelKind::ModifiedHyperbolic,
    ];

    /// Stable lower-case name (`"exponential"`, `"harmonic"`, `"hyperbolic"`,
    /// `"modified_hyperbolic"`), suitable for an API.
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Exponential => "exponential",
            ModelKind::Harmonic => "harmonic",
            ModelKind::Hyperbolic => "hyperbolic",
            ModelKind::ModifiedHyperbolic => "modified_hyperbolic",
        }
    }

    /// Number of fitted parameters (`qᵢ, Dᵢ` and, for the hyperbolic forms, `b`; the
    /// terminal decline of the modified hyperbolic is an input, not fitted).
    pub fn parameter_count(self) -> usize {
        match self {
            ModelKind::Exponential | ModelKind::Harmonic => 2,
            ModelKind::Hyperbolic | ModelKind::ModifiedHyperbolic => 3,
        }
    }
}

impl fmt::Display for ModelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where the modified hyperbolic switches to its exponential tail.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Switch {
    /// Terminal nominal decline, 1/d.
    d_term: f64,
    /// Switch time `t*`, days.
    time: f64,
    /// `q(t*)`.
    rate: f64,
    /// `Np(t*)`.
    cumulative: f64,
}

/// An Arps decline model with validated parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DeclineModel {
    kind: ModelKind,
    qi: f64,
    di: f64,
    b: f64,
    d_term: Option<f64>,
    switch: Option<Switch>,
}

impl DeclineModel {
    /// `q = qᵢ e^(−Dᵢt)`.
    pub fn exponential(qi: f64, di: Decline) -> Result<Self, DeclineError> {
        Self::from_nominal(
            ModelKind::Exponential,
            qi,
            di.to_nominal_per_day(0.0)?,
            0.0,
            None,
        )
    }

    /// `q = qᵢ / (1 + Dᵢt)`; a secant-effective `di` is converted with `b = 1`.
    pub fn harmonic(qi: f64, di: Decline) -> Result<Self, DeclineError> {
        Self::from_nominal(
            ModelKind::Harmonic,
            qi,
            di.to_nominal_per_day(1.0)?,
            1.0,
            None,
        )
    }

    /// `q = qᵢ (1 + bDᵢt)^(−1/b)` with `0 ≤ b ≤ 2`; a secant-effective `di` uses this `b`.
    pub fn hyperbolic(qi: f64, di: Decline, b: f64) -> Result<Self, DeclineError> {
        validate_b(b)?;
        Self::from_nominal(
            ModelKind::Hyperbolic,
            qi,
            di.to_nominal_per_day(b)?,
            b,
            None,
        )
    }

    /// Hyperbolic with `b` switching to exponential when its nominal decline reaches
    /// `d_term` (a secant-effective `di` uses `b`; `d_term` is an exponential decline, so its
    /// secant and tangent forms coincide).
    pub fn modified_hyperbolic(
        qi: f64,
        di: Decline,
        b: f64,
        d_term: Decline,
    ) -> Result<Self, DeclineError> {
        validate_b(b)?;
        let di = di.to_nominal_per_day(b)?;
        let d_term = d_term.to_nominal_per_day(0.0)?;
        Self::from_nominal(ModelKind::ModifiedHyperbolic, qi, di, b, Some(d_term))
    }

    /// Build from nominal declines per day (`d_term` is used by the modified hyperbolic only).
    pub(crate) fn from_nominal(
        kind: ModelKind,
        qi: f64,
        di: f64,
        b: f64,
        d_term: Option<f64>,
    ) -> Result<Self, DeclineError> {
        positive("qi", qi)?;
        positive("initial decline", di)?;
        validate_b(b)?;
        let mut model = DeclineModel {
            kind,
            qi,
            di,
            b,
            d_term: None,
            switch: None,
        };
        if kind == ModelKind::ModifiedHyperbolic {
            let d_term = d_term.ok_or(DeclineError::InvalidParameter {
                name: "terminal decline",
                value: f64::NAN,
                reason: "the modified hyperbolic needs a terminal decline",
            })?;
            positive("terminal decline", d_term)?;
            if di <= d_term {
                return Err(DeclineError::InvalidParameter {
                    name: "initial decline",
                    value: di,
                    reason: "must exceed the terminal decline (nominal, 1/d)",
                });
            }
            model.d_term = Some(d_term);
            model.switch = model.switch_point(d_term);
        }
        Ok(model)
    }

    fn switch_point(&self, d_term: f64) -> Option<Switch> {
        if self.b < B_EPSILON {
            return None; // constant decline Dᵢ > D_term: never reaches the terminal decline
        }
        let time = (1.0 / d_term - 1.0 / self.di) / self.b;
        let (rate, cumulative) = self.hyperbolic_at(time);
        Some(Switch {
            d_term,
            time,
            rate,
            cumulative,
        })
    }

    /// The model family.
    pub fn kind(&self) -> ModelKind {
        self.kind
    }

    /// Initial rate `qᵢ` (volume/day at `t = 0`).
    pub fn qi(&self) -> f64 {
        self.qi
    }

    /// Initial nominal decline `Dᵢ`, 1/day.
    pub fn di(&self) -> f64 {
        self.di
    }

    /// Hyperbolic exponent (0 for exponential, 1 for harmonic).
    pub fn b(&self) -> f64 {
        self.b
    }

    /// Terminal nominal decline, 1/day (modified hyperbolic only).
    pub fn terminal_decline(&self) -> Option<f64> {
        self.d_term
    }

    /// Time of the switch to the exponential tail, days (modified hyperbolic with `b > 0`).
    pub fn switch_time(&self) -> Option<f64> {
        self.switch.map(|s| s.time)
    }

    /// `Dᵢ` expressed on another basis and period.
    pub fn initial_decline(
        &self,
        basis: super::DeclineBasis,
        period: super::DeclinePeriod,
    ) -> Result<Decline, DeclineError> {
        Decline::from_nominal_per_day(self.di, basis, period, self.b)
    }

    /// Rate `q(t)`, volume/day.
    pub fn rate(&self, t: f64) -> f64 {
        self.rate_and_cumulative(t).0
    }

    /// Cumulative volume `Np(t)` from `t = 0`.
    pub fn cumulative(&self, t: f64) -> f64 {
        self.rate_and_cumulative(t).1
    }

    /// `(q(t), Np(t))`, sharing the work of both.
    pub fn rate_and_cumulative(&self, t: f64) -> (f64, f64) {
        let t = t.max(0.0);
        match self.switch {
            Some(s) if t > s.time => {
                let (rate, added) = exponential_segment(s.rate, s.d_term, t - s.time);
                (rate, s.cumulative + added)
            }
            _ => self.hyperbolic_at(t),
        }
    }

    /// Instantaneous nominal decline `D(t) = −d ln q/dt`, 1/day.
    pub fn decline(&self, t: f64) -> f64 {
        let t = t.max(0.0);
        match self.switch {
            Some(s) if t > s.time => s.d_term,
            _ => self.di / (1.0 + self.b * self.di * t),
        }
    }

    /// Time (days from the origin) at which the rate falls to `q`; `Some(0.0)` if `q ≥ qᵢ`,
    /// `None` if it never does (`q ≤ 0` or not a number).
    pub fn time_to_rate(&self, q: f64) -> Option<f64> {
        if q.is_nan() || q <= 0.0 {
            return None;
        }
        if q >= self.qi {
            return Some(0.0);
        }
        match self.switch {
            Some(s) if q < s.rate => Some(s.time + (s.rate / q).ln() / s.d_term),
            _ => Some(hyperbolic_time(self.qi, self.di, self.b, q)),
        }
    }

    /// When production stops under `limits`: the earlier of the economic-limit rate and the
    /// maximum time.
    pub fn end_time(&self, limits: &EconomicLimits) -> Result<EndOfLife, DeclineError> {
        limits.validate()?;
        let by_rate = limits.min_rate.and_then(|q| self.time_to_rate(q));
        Ok(match (by_rate, limits.max_time) {
            (Some(tr), Some(tm)) if tm < tr => EndOfLife::new(tm, EurLimit::MaxTime),
            (Some(tr), _) => EndOfLife::new(tr, EurLimit::EconomicRate),
            (None, Some(tm)) => EndOfLife::new(tm, EurLimit::MaxTime),
            (None, None) => return Err(DeclineError::NoEconomicLimit),
        })
    }

    /// Estimated ultimate recovery under `limits`.
    pub fn eur(&self, limits: &EconomicLimits) -> Result<Eur, DeclineError> {
        let end = self.end_time(limits)?;
        let (rate, volume) = self.rate_and_cumulative(end.time);
        Ok(Eur {
            volume,
            end_time: end.time,
            end_rate: rate,
            limited_by: end.limited_by,
        })
    }

    /// Remaining reserves from `now` (days) to the end of life: `Np(t_end) − Np(now)`, zero
    /// once `now` is past the end of life.
    pub fn remaining(&self, now: f64, limits: &EconomicLimits) -> Result<f64, DeclineError> {
        let eur = self.eur(limits)?;
        Ok(eur.volume - self.cumulative(now.min(eur.end_time)))
    }

    /// Rate and cumulative of the hyperbolic segment (exponential and harmonic included).
    fn hyperbolic_at(&self, t: f64) -> (f64, f64) {
        let (qi, d, b) = (self.qi, self.di, self.b);
        if b < B_EPSILON {
            return exponential_segment(qi, d, t);
        }
        let growth = b * d * t;
        // ln is cheaper than ln_1p and, once x > 0.01, as accurate (to ~1e-14 relative).
        let log_growth = if growth > 0.01 {
            (1.0 + growth).ln()
        } else {
            growth.ln_1p()
        };
        let rate = qi * (-log_growth / b).exp();
        let one_minus_b = 1.0 - b;
        // Np = qᵢ(1 − y)/((1 − b)Dᵢ) with x = bDᵢt and y = (1 + x)^(1 − 1/b) = e^(−exponent)
        // = (q/qᵢ)(1 + x), exponent = (1 − b)/b · ln(1 + x).
        let exponent = one_minus_b / b * log_growth;
        let cumulative = if exponent.abs() > CANCELLATION_GUARD {
            // 1 − y is at least 1e-3 here, so the subtraction loses under 1e-12 relative.
            (qi - rate * (1.0 + growth)) / (one_minus_b * d)
        } else if one_minus_b.abs() < 1e-9 {
            qi * log_growth / (b * d)
        } else {
            qi * -(-exponent).exp_m1() / (one_minus_b * d)
        };
        (rate, cumulative)
    }
}

/// Below this magnitude, `1 − e^(−x)` is computed with `exp_m1` instead of a subtraction.
/// Above it the subtraction is as accurate (to ~1e-13) and saves a transcendental call, which
/// matters in the Monte Carlo's hundreds of thousands of evaluations.
const CANCELLATION_GUARD: f64 = 1e-3;

/// Rate and added volume of an exponential decline from `q0` at nominal `d` after `dt`.
fn exponential_segment(q0: f64, d: f64, dt: f64) -> (f64, f64) {
    let decay = d * dt;
    let rate = q0 * (-decay).exp();
    let added = if decay > CANCELLATION_GUARD {
        (q0 - rate) / d
    } else {
        q0 * -(-decay).exp_m1() / d
    };
    (rate, added)
}

/// Time for `qᵢ (1 + bDt)^(−1/b)` to fall to `q < qᵢ`.
fn hyperbolic_time(qi: f64, d: f64, b: f64, q: f64) -> f64 {
    let log_ratio = (qi / q).ln();
    if b < B_EPSILON {
        log_ratio / d
    } else {
        (b * log_ratio).exp_m1() / (b * d)
    }
}

fn validate_b(b: f64) -> Result<(), DeclineError> {
    if (0.0..=B_MAX).contains(&b) {
        Ok(())
    } else {
        Err(DeclineError::InvalidParameter {
            name: "b",
            value: b,
            reason: "the hyperbolic exponent must be in [0, 2]",
        })
    }
}

fn positive(name: &'static str, value: f64) -> Result<(), DeclineError> {
    if value.is_finite() && value > 0.0 {
        Ok(())
    } else {
        Err(DeclineError::InvalidParameter {
            name,
            value,
            reason: "must be finite and > 0",
        })
    }
}

/// When a well is abandoned: an economic-limit rate, a maximum time, or both (whichever
/// comes first). Times are days from the model origin.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct EconomicLimits {
    /// Abandonment rate, volume/day (> 0).
    pub min_rate: Option<f64>,
    /// Maximum life, days from the model origin (> 0).
    pub max_time: Option<f64>,
}

impl EconomicLimits {
    /// Abandon at an economic-limit rate only.
    pub fn rate(min_rate: f64) -> Self {
        EconomicLimits {
            min_rate: Some(min_rate),
            max_time: None,
        }
    }

    /// Abandon at a maximum time only.
    pub fn time(max_time: f64) -> Self {
        EconomicLimits {
            min_rate: None,
            max_time: Some(max_time),
        }
    }

    /// Abandon at whichever of the two comes first.
    pub fn rate_and_time(min_rate: f64, max_time: f64) -> Self {
        EconomicLimits {
            min_rate: Some(min_rate),
            max_time: Some(max_time),
        }
    }

    pub(crate) fn validate(&self) -> Result<(), DeclineError> {
        if self.min_rate.is_none() && self.max_time.is_none() {
            return Err(DeclineError::NoEconomicLimit);
        }
        if let Some(q) = self.min_rate {
            positive("economic-limit rate", q)?;
        }
        if let Some(t) = self.max_time {
            positive("maximum time", t)?;
        }
        Ok(())
    }
}

/// Which limit ended production.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EurLimit {
    /// The rate fell to the economic limit.
    EconomicRate,
    /// The maximum time was reached first.
    MaxTime,
}

/// End of life of a model under some [`EconomicLimits`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EndOfLife {
    /// Days from the model origin.
    pub time: f64,
    /// Which limit applied.
    pub limited_by: EurLimit,
}

impl EndOfLife {
    fn new(time: f64, limited_by: EurLimit) -> Self {
        EndOfLife { time, limited_by }
    }
}

/// Estimated ultimate recovery.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Eur {
    /// `Np(t_end)`, volume.
    pub volume: f64,
    /// End of life, days from the model origin.
    pub end_time: f64,
    /// Rate at the end of life, volume/day.
    pub end_rate: f64,
    /// Which limit ended production.
    pub limited_by: EurLimit,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, rel: f64) -> bool {
        (a - b).abs() <= rel * b.abs()
    }

    fn nominal(d: f64) -> Decline {
        Decline::nominal_per_day(d)
    }

    #[test]
    fn hyperbolic_reduces_to_exponential_and_harmonic() {
        let exp = DeclineModel::exponential(100.0, nominal(0.002)).unwrap();
        let near_exp = DeclineModel::hyperbolic(100.0, nominal(0.002), 1e-12).unwrap();
        let harm = DeclineModel::harmonic(100.0, nominal(0.002)).unwrap();
        let near_harm = DeclineModel::hyperbolic(100.0, nominal(0.002), 1.0 + 1e-7).unwrap();
        for t in [0.0, 10.0, 365.25, 5000.0] {
            assert!(close(exp.rate(t), near_exp.rate(t), 1e-9));
            assert!(close(
                exp.cumulative(t) + 1e-300,
                near_exp.cumulative(t) + 1e-300,
                1e-9
            ));
            assert!(close(harm.rate(t), near_harm.rate(t), 1e-6));
            assert!(close(
                harm.cumulative(t) + 1e-300,
                near_harm.cumulative(t) + 1e-300,
                1e-6
            ));
        }
    }

    #[test]
    fn cumulative_is_the_integral_of_rate() {
        let models = [
            DeclineModel::exponential(500.0, nominal(0.003)).unwrap(),
            DeclineModel::harmonic(500.0, nominal(0.003)).unwrap(),
            DeclineModel::hyperbolic(500.0, nominal(0.003), 0.6).unwrap(),
            DeclineModel::modified_hyperbolic(500.0, nominal(0.01), 1.4, nominal(0.0003)).unwrap(),
        ];
        for m in models {
            // Composite Simpson on [0, 4000] d (passes the MH switch at ~2300 d).
            let (a, b, n) = (0.0, 4000.0, 40_000);
            let h = (b - a) / n as f64;
            let mut sum = m.rate(a) + m.rate(b);
            for i in 1..n {
                let w = if i % 2 == 1 { 4.0 } else { 2.0 };
                sum += w * m.rate(a + i as f64 * h);
            }
            let integral = sum * h / 3.0;
            assert!(close(m.cumulative(b), integral, 1e-9), "{:?}", m.kind());
        }
    }

    #[test]
    fn decline_is_minus_log_derivative() {
        let m =
            DeclineModel::modified_hyperbolic(500.0, nominal(0.01), 1.4, nominal(0.0003)).unwrap();
        for t in [1.0, 100.0, 1000.0, 5000.0] {
            let h = 1e-3;
            let numeric = -((m.rate(t + h)).ln() - (m.rate(t - h)).ln()) / (2.0 * h);
            assert!(close(m.decline(t), numeric, 1e-6), "t = {t}");
        }
    }

    #[test]
    fn time_to_rate_inverts_rate() {
        let m =
            DeclineModel::modified_hyperbolic(500.0, nominal(0.01), 1.4, nominal(0.0003)).unwrap();
        for t in [0.5, 100.0, 2000.0, 2400.0, 9000.0] {
            let back = m.time_to_rate(m.rate(t)).unwrap();
            assert!(close(back, t, 1e-9), "t = {t}: {back}");
        }
        assert_eq!(m.time_to_rate(600.0), Some(0.0));
        assert_eq!(m.time_to_rate(0.0), None);
    }

    #[test]
    fn modified_hyperbolic_needs_initial_above_terminal() {
        let err = DeclineModel::modified_hyperbolic(100.0, nominal(0.001), 1.0, nominal(0.002))
            .unwrap_err();
        assert!(err.to_string().contains("terminal"), "{err}");
        assert!(DeclineModel::hyperbolic(100.0, nominal(0.001), 2.5).is_err());
        assert!(DeclineModel::exponential(-1.0, nominal(0.001)).is_err());
        assert!(DeclineModel::exponential(1.0, nominal(0.0)).is_err());
    }

    #[test]
    fn eur_takes_the_earlier_limit() {
        let m = DeclineModel::exponential(100.0, nominal(0.001)).unwrap();
        let by_rate = m.eur(&EconomicLimits::rate(10.0)).unwrap();
        assert_eq!(by_rate.limited_by, EurLimit::EconomicRate);
        assert!(close(by_rate.end_time, 10f64.ln() / 0.001, 1e-12));
        assert!(close(by_rate.volume, 90.0 / 0.001, 1e-12));
        let by_time = m.eur(&EconomicLimits::rate_and_time(10.0, 1000.0)).unwrap();
        assert_eq!(by_time.limited_by, EurLimit::MaxTime);
        assert!(close(by_time.volume, m.cumulative(1000.0), 1e-15));
        let remaining = m.remaining(1000.0, &EconomicLimits::rate(10.0)).unwrap();
        assert!(close(
            remaining,
            by_rate.volume - m.cumulative(1000.0),
            1e-12
        ));
        assert_eq!(m.remaining(1e6, &EconomicLimits::rate(10.0)).unwrap(), 0.0);
        assert_eq!(
            m.eur(&EconomicLimits::default()).unwrap_err(),
            DeclineError::NoEconomicLimit
        );
    }
}
