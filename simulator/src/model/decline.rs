//! Arps decline curves: rate and closed-form cumulative production.
//!
//! With `qi` the initial rate (volume/day), `Di` the nominal initial decline (1/day) and `b`
//! the hyperbolic exponent, time `t` in days since first production:
//!
//! | case | rate q(t) | cumulative Q(t) = ∫₀ᵗ q dτ |
//! |---|---|---|
//! | exponential, b = 0 | qi·e^(−Di·t) | (qi/Di)·(1 − e^(−Di·t)) |
//! | harmonic, b = 1 | qi/(1 + Di·t) | (qi/Di)·ln(1 + Di·t) |
//! | hyperbolic, 0 < b | qi/(1 + b·Di·t)^(1/b) | qi/((1 − b)·Di)·(1 − (1 + b·Di·t)^((b−1)/b)) |
//!
//! The hyperbolic cumulative is evaluated with `exp_m1`/`ln_1p` so it stays accurate for `b`
//! close to 1. Times before first production give rate 0 and cumulative 0.

/// An Arps decline curve. Rates are per day, times in days.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Arps {
    /// Initial rate (volume per day).
    pub qi: f64,
    /// Nominal initial decline rate (1/day).
    pub di: f64,
    /// Hyperbolic exponent (0 = exponential, 1 = harmonic).
    pub b: f64,
}

const B_EPS: f64 = 1e-9;

impl Arps {
    /// Builds a curve from a nominal decline given per year (the usual reporting unit).
    pub fn from_annual(qi: f64, di_per_year: f64, b: f64) -> Arps {
        Arps {
            qi,
            di: di_per_year / 365.25,
            b,
        }
    }

    /// Rate at `t` days after first production.
    pub fn rate(&self, t: f64) -> f64 {
        if t < 0.0 {
            return 0.0;
        }
        if self.b.abs() < B_EPS {
            self.qi * (-self.di * t).exp()
        } else {
            self.qi / (1.0 + self.b * self.di * t).powf(1.0 / self.b)
        }
    }

    /// Cumulative volume from first production to `t` days.
    pub fn cumulative(&self, t: f64) -> f64 {
        if t <= 0.0 {
            return 0.0;
        }
        let (qi, di, b) = (self.qi, self.di, self.b);
        if b.abs() < B_EPS {
            -qi / di * (-di * t).exp_m1()
        } else if (b - 1.0).abs() < B_EPS {
            qi / di * (di * t).ln_1p()
        } else {
            let x = (b - 1.0) / b * (b * di * t).ln_1p();
            -qi / ((1.0 - b) * di) * x.exp_m1()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Trapezoid integral of the rate, to check the closed forms.
    fn numeric_cum(a: &Arps, t: f64) -> f64 {
        let n = 20_000;
        let h = t / f64::from(n);
        (0..n)
            .map(|i| {
                let x = f64::from(i) * h;
                (a.rate(x) + a.rate(x + h)) * h / 2.0
            })
            .sum()
    }

    #[test]
    fn special_cases_match_numeric_integral() {
        for b in [0.0, 0.5, 1.0, 1.4] {
            let a = Arps::from_annual(500.0, 1.2, b);
            let t = 900.0;
            let (exact, num) = (a.cumulative(t), numeric_cum(&a, t));
            assert!((exact - num).abs() / num < 1e-6, "b={b}: {exact} vs {num}");
        }
    }

    #[test]
    fn rate_at_zero_is_qi_and_nothing_before_start() {
        let a = Arps::from_annual(300.0, 1.5, 0.9);
        assert_eq!(a.rate(0.0), 300.0);
        assert_eq!(a.rate(-1.0), 0.0);
        assert_eq!(a.cumulative(-5.0), 0.0);
    }

    #[test]
    fn textbook_value() {
        // qi = 300 bbl/d, Di = 1.5/yr, b = 0.9, t = 2 years: q = 300 / (1 + 0.9*1.5*2)^(1/0.9).
        let a = Arps::from_annual(300.0, 1.5, 0.9);
        let q = a.rate(2.0 * 365.25);
        assert!((q - 300.0 / 3.7f64.powf(1.0 / 0.9)).abs() < 1e-9);
    }

    proptest! {
        #[test]
        fn cumulative_derivative_is_rate(qi in 1.0..2000.0f64, di in 0.1..3.0f64,
                                         b in 0.0..1.5f64, t in 1.0..3000.0f64) {
            let a = Arps::from_annual(qi, di, b);
            let h = 1e-3;
            let d = (a.cumulative(t + h) - a.cumulative(t - h)) / (2.0 * h);
            prop_assert!((d - a.rate(t)).abs() <= 1e-5 * qi.max(1.0), "{} vs {}", d, a.rate(t));
        }

        #[test]
        fn rate_declines_and_cumulative_grows(qi in 1.0..2000.0f64, di in 0.1..3.0f64,
                                               b in 0.0..1.5f64, t in 0.0..3000.0f64) {
            let a = Arps::from_annual(qi, di, b);
            prop_assert!(a.rate(t + 1.0) <= a.rate(t));
            prop_assert!(a.cumulative(t + 1.0) > a.cumulative(t));
        }
    }
}
