//! Well production and wellhead pressures.
//!
//! # Rates
//!
//! With `q(t)` the Arps oil rate ([`super::decline`]), water cut `wc` and gas-oil ratio
//! `GOR` (scf/bbl):
//!
//! * oil `qo = q(t)·m_liq(t)` bbl/d, water `qw = qo·wc/(1−wc)` bbl/d,
//! * produced gas `qg = q(t)·GOR/1000·m_gas(t)` Mcf/d.
//!
//! `m_liq`, `m_gas` are the production multipliers of the lift equipment's regime and the
//! shut-in valve (see [`super::pump`]); plunger-lift wells produce on the decline (the
//! meters report the cycle-averaged rate). Cumulative volumes are the Arps closed form
//! minus `(1 − m)·ΔQ` over every piece of time where `m ≠ 1` (pieces cut at failure
//! boundaries and client writes), so totals are exactly the integral of the rates.
//!
//! # Pressures (psi) and temperature
//!
//! * line `pl = pl₀·(1 + 0.05·n₃₀ₘ + 0.02·n₅ₘ)` — sales-line pressure wandering with the
//!   gathering system (smooth noise with 30 and 5 minute knots);
//! * tubing `pt = pl + 10 + k_fl·((qo+qw)/100)^0.6 + 0.5·qg/100` — flow-line friction grows
//!   with the liquid rate (plunger wells: see [`super::plunger`]);
//! * casing `pc = pl + Δc + 0.01·qg` — casing-head gas vented into the flow line;
//! * wellhead temperature `T = ambient + 35·q_liq/(q_liq + 150)` °F — warm produced fluid.

use super::Eval;
use super::params::{DAY_MS, Lift, SimMs};
use super::timeline::pieces;

impl Eval<'_> {
    /// Production multipliers (liquid, gas) at `t`.
    fn multipliers(&self, t: SimMs) -> (f64, f64) {
        self.lift_multipliers(t)
    }

    /// Nominal (undisturbed) cumulative oil at `t`, bbl.
    fn nominal_oil_cum(&self, t: SimMs) -> f64 {
        self.p.oil.cumulative(self.p.age_days(t))
    }

    /// Cumulative oil in bbl (`gas = false`), or the oil-equivalent basis of gas, at `t`.
    fn cum_basis(&self, t: SimMs, gas: bool) -> f64 {
        let mut total = self.nominal_oil_cum(t);
        let cuts: Vec<SimMs> = self
            .h
            .windows
            .iter()
            .filter(|w| w.failure.is_physical() && w.start < t)
            .flat_map(|w| [w.start, w.end])
            .chain(self.h.writes.iter().map(|w| w.at).filter(|at| *at < t))
            .collect();
        let Some(first) = cuts.iter().copied().min() else {
            return total;
        };
        for piece in pieces(first, t, cuts).windows(2) {
            let (l, g) = self.multipliers(piece[0]);
            let m = if gas { g } else { l };
            if m != 1.0 {
                total -=
                    (1.0 - m) * (self.nominal_oil_cum(piece[1]) - self.nominal_oil_cum(piece[0]));
            }
        }
        total
    }

    /// Oil rate, bbl/d.
    pub fn oil_rate(&self, t: SimMs) -> f64 {
        self.p.oil.rate(self.p.age_days(t)) * self.multipliers(t).0
    }

    /// Water rate, bbl/d.
    pub fn water_rate(&self, t: SimMs) -> f64 {
        self.oil_rate(t) * self.p.wor()
    }

    /// Produced gas rate, Mcf/d.
    pub fn gas_rate(&self, t: SimMs) -> f64 {
        self.p.oil.rate(self.p.age_days(t)) * self.p.gor_scf_bbl / 1000.0 * self.multipliers(t).1
    }

    /// Cumulative oil, bbl.
    pub fn oil_cum(&self, t: SimMs) -> f64 {
        self.cum_basis(t, false)
    }

    /// Cumulative water, bbl.
    pub fn water_cum(&self, t: SimMs) -> f64 {
        self.cum_basis(t, false) * self.p.wor()
    }

    /// Cumulative produced gas, Mcf.
    pub fn gas_cum(&self, t: SimMs) -> f64 {
        self.cum_basis(t, true) * self.p.gor_scf_bbl / 1000.0
    }

    /// Liquid (oil + water) produced in `[a, b]`, bbl.
    pub fn liquid_between(&self, a: SimMs, b: SimMs) -> f64 {
        (self.cum_basis(b, false) - self.cum_basis(a, false)) * (1.0 + self.p.wor())
    }

    /// Sales-line pressure, psi.
    pub fn line_pressure(&self) -> f64 {
        self.p.line_psi
            * (1.0 + 0.05 * self.process("line", 1800.0) + 0.02 * self.process("line5", 300.0))
    }

    /// Tubing (wellhead) pressure, psi.
    pub fn tubing_pressure(&self) -> f64 {
        if let Some(dev) = self.plunger_device() {
            return self.plunger_pressures(dev).1;
        }
        let liquid = self.oil_rate(self.t) + self.water_rate(self.t);
        self.line_pressure()
            + 10.0
            + self.p.flowline_psi_per_100bpd * (liquid / 100.0).powf(0.6)
            + 0.5 * self.gas_rate(self.t) / 100.0
            + 0.8 * self.process("tubing", 60.0)
    }

    /// Casing pressure, psi.
    pub fn casing_pressure(&self) -> f64 {
        if let Some(dev) = self.plunger_device() {
            return self.plunger_pressures(dev).0;
        }
        self.line_pressure()
            + self.p.casing_over_line_psi
            + 0.01 * self.gas_rate(self.t)
            + 0.5 * self.process("casing", 120.0)
    }

    /// The plunger controller of a plunger-lifted well.
    fn plunger_device(&self) -> Option<usize> {
        if self.p.lift != Lift::Plunger {
            return None;
        }
        self.lift_device(super::Role::Plunger)
    }

    /// Ambient temperature, degF.
    pub fn ambient(&self) -> f64 {
        self.p.ambient_mean_f + 12.0 * self.diurnal() + 1.5 * self.process("ambient", 900.0)
    }

    /// Start of the simulated UTC day containing `t`.
    pub fn day_start(&self, t: SimMs) -> SimMs {
        t - t.rem_euclid(DAY_MS)
    }

    /// Well-level metrics any device may carry: pressures, rates, wellhead temperature.
    pub fn production_metric(&self, metric: &str) -> Option<f64> {
        let t = self.t;
        let v = match metric {
            "line_pressure_psi" => self.measured(metric, self.line_pressure(), 0.002),
            "tubing_pressure_psi" => self.measured(metric, self.tubing_pressure(), 0.002),
            "casing_pressure_psi" => self.measured(metric, self.casing_pressure(), 0.002),
            "oil_rate_bpd" => self.measured(metric, self.oil_rate(t), 0.005),
            "water_rate_bpd" => self.measured(metric, self.water_rate(t), 0.005),
            "wellhead_temperature_f" => {
                let liquid = self.oil_rate(t) + self.water_rate(t);
                self.ambient() + 35.0 * liquid / (liquid + 150.0)
            }
            _ => return None,
        };
        Some(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fault::{Failure, FailureSource};
    use crate::model::params::{HOUR_MS, REFERENCE_EPOCH_MS, WellParams};
    use crate::model::testutil::device;
    use crate::model::timeline::{WellHistory, Window, Write};
    use crate::model::{DeviceInfo, Role};

    fn eval<'a>(
        p: &'a WellParams,
        h: &'a WellHistory,
        devs: &'a [DeviceInfo],
        t: SimMs,
    ) -> Eval<'a> {
        Eval {
            p,
            h,
            devices: devs,
            dev: 0,
            t,
        }
    }

    fn rod_well() -> (WellParams, Vec<DeviceInfo>) {
        let p = WellParams::draw(3, "well-001", Lift::RodPump);
        let devs = vec![
            device(
                "rpc",
                Role::RodPump,
                &["stroke_count_total", "pump_run_command"],
            ),
            device("fc", Role::FlowComputer, &["valve_open"]),
        ];
        (p, devs)
    }

    fn rod_part(start: SimMs, end: SimMs) -> Window {
        Window {
            device: 0,
            failure: Failure::RodPart,
            start,
            end,
            frozen_tag: None,
            source: FailureSource::Injected,
        }
    }

    #[test]
    fn totals_integrate_rates_including_failures_and_shut_ins() {
        let (p, devs) = rod_well();
        let mut h = WellHistory::default();
        let t0 = REFERENCE_EPOCH_MS + 100 * DAY_MS;
        h.windows.push(rod_part(t0 + HOUR_MS, t0 + 3 * HOUR_MS));
        // Shut-in valve closed for 30 minutes, stop command for 20.
        h.writes.push(Write {
            device: 1,
            tag: 0,
            at: t0 + 3 * HOUR_MS + 600_000,
            value: 0.0,
        });
        h.writes.push(Write {
            device: 1,
            tag: 0,
            at: t0 + 3 * HOUR_MS + 2_400_000,
            value: 1.0,
        });
        h.writes.push(Write {
            device: 0,
            tag: 1,
            at: t0 + 30 * 60_000,
            value: 0.0,
        });
        h.writes.push(Write {
            device: 0,
            tag: 1,
            at: t0 + 50 * 60_000,
            value: 1.0,
        });
        let e = eval(&p, &h, &devs, t0);
        let step = 1000;
        let (mut oil, mut gas) = (0.0, 0.0);
        let mut t = t0;
        while t < t0 + 4 * HOUR_MS {
            let mid = t + step / 2;
            oil += e.oil_rate(mid) * step as f64 / DAY_MS as f64;
            gas += e.gas_rate(mid) * step as f64 / DAY_MS as f64;
            t += step;
        }
        let d_oil = e.oil_cum(t0 + 4 * HOUR_MS) - e.oil_cum(t0);
        let d_gas = e.gas_cum(t0 + 4 * HOUR_MS) - e.gas_cum(t0);
        assert!(
            (oil - d_oil).abs() < 1e-6 * d_oil.max(1.0),
            "{oil} vs {d_oil}"
        );
        assert!(
            (gas - d_gas).abs() < 1e-6 * d_gas.max(1.0),
            "{gas} vs {d_gas}"
        );
        assert_eq!(e.oil_rate(t0 + 2 * HOUR_MS), 0.0);
        assert!(e.gas_rate(t0 + 2 * HOUR_MS) > 0.0);
        assert_eq!(e.gas_rate(t0 + 3 * HOUR_MS + 900_000), 0.0, "shut in");
        assert_eq!(e.oil_rate(t0 + 40 * 60_000), 0.0, "stopped");
        assert!(e.oil_rate(t0 + 4 * HOUR_MS) > 0.0);
    }

    #[test]
    fn tubing_pressure_drops_when_liquid_stops() {
        let (p, devs) = rod_well();
        let mut h = WellHistory::default();
        let t0 = REFERENCE_EPOCH_MS + 10 * DAY_MS;
        h.windows.push(rod_part(t0, t0 + HOUR_MS));
        let e = eval(&p, &h, &devs, t0 - 1000);
        let liquid = e.oil_rate(t0 - 1000) + e.water_rate(t0 - 1000);
        let drop = p.flowline_psi_per_100bpd * (liquid / 100.0).powf(0.6);
        let before = e.tubing_pressure();
        let during = e.at(t0 + 1000).tubing_pressure();
        assert!(drop > 1.0, "{drop}");
        assert!(
            during < before - 0.9 * drop,
            "{before} -> {during} (drop {drop})"
        );
    }
}
