//! Decline-rate conventions and conversions.
//!
//! Three ways of quoting a decline are in use, each over a period (a day or a year):
//!
//! * **nominal** `D = −d ln q / dt` (continuous, instantaneous), the quantity the Arps
//!   equations use;
//! * **tangent-effective** `Dₑ = 1 − e^(−D)`: the fractional drop of an *exponential*
//!   decline over one period, i.e. `D = −ln(1 − Dₑ)`;
//! * **secant-effective** `Dₛ = 1 − q(P)/qᵢ` of a *hyperbolic* decline over one period
//!   `P`: `Dₛ = 1 − (1 + b·D)^(−1/b)`, i.e. `D = ((1 − Dₛ)^(−b) − 1)/b`. It depends on
//!   `b`; as `b → 0` it tends to the tangent-effective decline (used below `b = 1e-10`).
//!
//! Nominal declines scale with the period: `D_day = D_year / 365.25`. Effective declines do
//! not; they are converted through the nominal decline of the same period. The year is
//! **365.25 days** ([`DAYS_PER_YEAR`]) and the month 30.4375 days ([`DAYS_PER_MONTH`]), the
//! conventions of the petbox-dca library, against which this module is checked.
//!
//! Internally every model works in nominal decline per day; [`Decline`] is the typed value
//! at the API boundary, converted with the `b` of the model it parameterises (petbox-dca
//! quotes the initial decline of a modified hyperbolic as secant-effective with the initial
//! `b`, and its terminal decline as tangent-effective).
//!
//! Valid inputs: nominal declines finite and `>= 0`; effective declines in `[0, 1)`
//! (a 100 % effective decline is an infinite nominal one); `b` finite and `>= 0`.

use super::DeclineError;

/// Days per year used by every conversion (petbox-dca convention).
pub const DAYS_PER_YEAR: f64 = 365.25;
/// Days per month: a twelfth of [`DAYS_PER_YEAR`].
pub const DAYS_PER_MONTH: f64 = DAYS_PER_YEAR / 12.0;
/// Below this `b` the hyperbolic forms are replaced by their exponential limits.
pub(crate) const B_EPSILON: f64 = 1e-10;

/// Nominal decline from a tangent-effective one over the same period: `−ln(1 − Dₑ)`.
pub fn nominal_from_tangent(d_eff: f64) -> f64 {
    -(-d_eff).ln_1p()
}

/// Tangent-effective decline from a nominal one over the same period: `1 − e^(−D)`.
pub fn tangent_from_nominal(d_nom: f64) -> f64 {
    -(-d_nom).exp_m1()
}

/// Nominal decline from a secant-effective one over the same period:
/// `((1 − Dₛ)^(−b) − 1)/b` (tangent conversion for `b → 0`).
pub fn nominal_from_secant(d_sec: f64, b: f64) -> f64 {
    if b < B_EPSILON {
        return nominal_from_tangent(d_sec);
    }
    (-b * (-d_sec).ln_1p()).exp_m1() / b
}

/// Secant-effective decline from a nominal one over the same period:
/// `1 − (1 + b·D)^(−1/b)` (tangent conversion for `b → 0`).
pub fn secant_from_nominal(d_nom: f64, b: f64) -> f64 {
    if b < B_EPSILON {
        return tangent_from_nominal(d_nom);
    }
    -(-(b * d_nom).ln_1p() / b).exp_m1()
}

/// How a decline value is quoted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeclineBasis {
    /// `D = −d ln q/dt`.
    Nominal,
    /// `1 − e^(−D·P)`, the effective decline of an exponential over the period.
    TangentEffective,
    /// `1 − (1 + b·D·P)^(−1/b)`, the effective decline of a hyperbolic over the period.
    SecantEffective,
}

/// The period a decline is quoted over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeclinePeriod {
    /// One day.
    Day,
    /// One year of [`DAYS_PER_YEAR`] days.
    Year,
}

impl DeclinePeriod {
    /// Length of the period in days.
    pub fn days(self) -> f64 {
        match self {
            DeclinePeriod::Day => 1.0,
            DeclinePeriod::Year => DAYS_PER_YEAR,
        }
    }
}

/// A decline rate with its basis and period, e.g. "80 %/yr secant-effective".
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decline {
    /// The number: a rate per period (nominal) or a fraction in `[0, 1)` (effective).
    pub value: f64,
    /// How `value` is quoted.
    pub basis: DeclineBasis,
    /// The period `value` refers to.
    pub period: DeclinePeriod,
}

impl Decline {
    /// A decline quoted as `value` on `basis` over `period`.
    pub const fn new(value: f64, basis: DeclineBasis, period: DeclinePeriod) -> Self {
        Decline {
            value,
            basis,
            period,
        }
    }

    /// Nominal decline per day (`1/d`), the internal unit of the models.
    pub const fn nominal_per_day(value: f64) -> Self {
        Self::new(value, DeclineBasis::Nominal, DeclinePeriod::Day)
    }

    /// Nominal decline per year (`1/yr`).
    pub const fn nominal_per_year(value: f64) -> Self {
        Self::new(value, DeclineBasis::Nominal, DeclinePeriod::Year)
    }

    /// Tangent-effective decline per year (fraction, e.g. `0.08` for 8 %/yr).
    pub const fn tangent_effective_per_year(value: f64) -> Self {
        Self::new(value, DeclineBasis::TangentEffective, DeclinePeriod::Year)
    }

    /// Secant-effective decline per year (fraction), converted with the model's `b`.
    pub const fn secant_effective_per_year(value: f64) -> Self {
        Self::new(value, DeclineBasis::SecantEffective, DeclinePeriod::Year)
    }

    /// This decline as a nominal decline per day; `b` is used only by the secant basis.
    pub fn to_nominal_per_day(self, b: f64) -> Result<f64, DeclineError> {
        validate_b(b)?;
        let per_period = match self.basis {
            DeclineBasis::Nominal => {
                check(
                    "nominal decline",
                    self.value,
                    self.value.is_finite() && self.value >= 0.0,
                    "must be finite and >= 0",
                )?;
                self.value
            }
            DeclineBasis::TangentEffective => {
                check_effective("tangent-effective decline", self.value)?;
                nominal_from_tangent(self.value)
            }
            DeclineBasis::SecantEffective => {
                check_effective("secant-effective decline", self.value)?;
                nominal_from_secant(self.value, b)
            }
        };
        Ok(per_period / self.period.days())
    }

    /// Express a nominal decline per day on `basis` over `period` (`b` for the secant basis).
    pub fn from_nominal_per_day(
        d_nom_per_day: f64,
        basis: DeclineBasis,
        period: DeclinePeriod,
        b: f64,
    ) -> Result<Self, DeclineError> {
        validate_b(b)?;
        check(
            "nominal decline",
            d_nom_per_day,
            d_nom_per_day.is_finite() && d_nom_per_day >= 0.0,
            "must be finite and >= 0",
        )?;
        let d = d_nom_per_day * period.days();
        let value = match basis {
            DeclineBasis::Nominal => d,
            DeclineBasis::TangentEffective => tangent_from_nominal(d),
            DeclineBasis::SecantEffective => secant_from_nominal(d, b),
        };
        Ok(Self::new(value, basis, period))
    }

    /// The same decline on another basis and/or period (`b` for the secant basis).
    pub fn convert(
        self,
        basis: DeclineBasis,
        period: DeclinePeriod,
        b: f64,
    ) -> Result<Self, DeclineError> {
        Self::from_nominal_per_day(self.to_nominal_per_day(b)?, basis, period, b)
    }
}

fn validate_b(b: f64) -> Result<(), DeclineError> {
    check("b", b, b.is_finite() && b >= 0.0, "must be finite and >= 0")
}

fn check_effective(name: &'static str, value: f64) -> Result<(), DeclineError> {
    check(
        name,
        value,
        (0.0..1.0).contains(&value),
        "must be in [0, 1)",
    )
}

fn check(
    name: &'static str,
    value: f64,
    ok: bool,
    reason: &'static str,
) -> Result<(), DeclineError> {
    if ok {
        Ok(())
    } else {
        Err(DeclineError::InvalidParameter {
            name,
            value,
            reason,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, rel: f64) -> bool {
        (a - b).abs() <= rel * b.abs().max(f64::MIN_POSITIVE)
    }

    #[test]
    fn petbox_reference_conversions() {
        // Values printed by petbox-dca 2.3.1 (`nominal_from_secant(0.8, 1.5)` etc.).
        assert!(close(
            nominal_from_secant(0.8, 1.5),
            6.786893258332634,
            1e-14
        ));
        assert!(close(
            nominal_from_tangent(0.08),
            0.08338160893905106,
            1e-14
        ));
        assert!(close(secant_from_nominal(2.0, 0.5), 0.75, 1e-14));
        assert!(close(tangent_from_nominal(0.5), 0.3934693402873666, 1e-14));
    }

    #[test]
    fn secant_tends_to_tangent_as_b_vanishes() {
        for d in [0.01, 0.3, 0.9] {
            let limit = nominal_from_tangent(d);
            assert!(close(nominal_from_secant(d, 1e-7), limit, 1e-6));
            assert_eq!(nominal_from_secant(d, 0.0), limit);
        }
    }

    #[test]
    fn secant_at_b1_is_harmonic() {
        // Harmonic: q(1)/qi = 1/(1+D), so Ds = D/(1+D).
        assert!(close(secant_from_nominal(3.0, 1.0), 0.75, 1e-14));
    }

    #[test]
    fn per_year_and_per_day() {
        let yearly = Decline::nominal_per_year(DAYS_PER_YEAR * 0.001);
        assert!(close(yearly.to_nominal_per_day(0.0).unwrap(), 0.001, 1e-15));
        let daily_eff = Decline::new(0.001, DeclineBasis::TangentEffective, DeclinePeriod::Day);
        let as_year = daily_eff
            .convert(DeclineBasis::TangentEffective, DeclinePeriod::Year, 0.0)
            .unwrap();
        let expected = 1.0 - (1.0f64 - 0.001).powf(DAYS_PER_YEAR);
        assert!(close(as_year.value, expected, 1e-12));
    }

    #[test]
    fn rejects_out_of_range() {
        assert!(
            Decline::tangent_effective_per_year(1.0)
                .to_nominal_per_day(0.0)
                .is_err()
        );
        assert!(
            Decline::secant_effective_per_year(-0.1)
                .to_nominal_per_day(1.0)
                .is_err()
        );
        assert!(
            Decline::nominal_per_year(f64::NAN)
                .to_nominal_per_day(0.0)
                .is_err()
        );
        let err = Decline::secant_effective_per_year(0.5)
            .to_nominal_per_day(-1.0)
            .unwrap_err();
        assert!(err.to_string().contains("invalid b = -1"), "{err}");
    }
}
