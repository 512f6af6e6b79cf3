//! Gas measurement: an electronic flow computer with an orifice meter run (sales), a flare
//! meter, a fuel meter and a vent (tank vapour) meter.
//!
//! * Sales gas `Qs = (1 − f_flare)·qg`; flare `f_flare·qg`; vent `v·qo/1000` (tank flash,
//!   `v` scf/bbl); fuel a constant `q_fuel` (heater, engine; metered separately from the
//!   sales line). Totals are the exact integrals: `(1 − f)·Gp`, `f·Gp`, `v·Np/1000`,
//!   `q_fuel·days`.
//! * Orifice (AGA-3 form `Q ∝ d²·√(hw·Pf)`): `hw = hw₀·(Q/Q₀)²·(d₀/d)⁴·(Pf₀/Pf)`, with the
//!   plate `d₀ = β·D` sized for `hw₀` (40–90 inH₂O) at the rate of 2026-01-01, `Pf` the
//!   absolute static pressure (static + the writable atmospheric pressure). Writing another
//!   orifice bore changes the differential accordingly.
//! * Energy `E = Q·HV/1000` MMBtu (HV 1000–1300 Btu/scf); gas gravity
//!   `SG = 0.6 + 0.0011·(HV − 1000)`.
//! * Contract day: starts at the writable `contract_hour` (default 9, device clock = UTC).
//!   "Today" is `V(t) − V(day start)`, "yesterday" the previous whole contract day, flow
//!   time today the minutes since the day start with the shut-in valve open.
//! * Flowing temperature follows the ambient cycle: `T = T₀ + 8·diurnal + 1.5·n`.

use super::Eval;
use super::params::{DAY_MS, HOUR_MS, REFERENCE_EPOCH_MS, SimMs};
use super::timeline::pieces;

/// Default contract hour of the flow computers.
pub(crate) const DEFAULT_CONTRACT_HOUR: f64 = 9.0;
const DP_RANGE_INH2O: f64 = 250.0;
const DEFAULT_LOW_FLOW_CUTOFF_INH2O: f64 = 0.5;

impl Eval<'_> {
    fn sales_fraction(&self) -> f64 {
        1.0 - self.p.flare_fraction
    }

    /// Sales gas through the meter since first production, Mcf.
    fn sales_total(&self, t: SimMs) -> f64 {
        self.gas_cum(t) * self.sales_fraction()
    }

    fn static_pressure(&self) -> f64 {
        self.line_pressure() + 2.0 + 0.2 * self.process("static", 30.0)
    }

    fn atmospheric(&self) -> f64 {
        self.setpoint(
            self.dev,
            "atmospheric_pressure_psi",
            self.t,
            self.p.atmospheric_psi,
        )
    }

    fn orifice_default(&self) -> f64 {
        (self.p.beta * self.p.meter_tube_in * 1000.0).round() / 1000.0
    }

    /// Orifice differential pressure (not limited to the transmitter range), inH2O.
    fn differential_pressure(&self) -> f64 {
        let reference_t = REFERENCE_EPOCH_MS + 30 * DAY_MS;
        let q_ref = self.p.oil.rate(self.p.age_days(reference_t)) * self.p.gor_scf_bbl / 1000.0;
        let pf_ref = self.p.line_psi + 2.0 + self.p.atmospheric_psi;
        let pf = self.static_pressure() + self.atmospheric();
        let ratio = self.gas_rate(self.t) / q_ref;
        let d0 = self.orifice_default();
        let d = self.setpoint(self.dev, "orifice_diameter_in", self.t, d0);
        self.p.hw_design_inh2o * ratio * ratio * (d0 / d).powi(4) * pf_ref / pf
    }

    /// Start of the contract day containing `t`.
    fn contract_day_start(&self, t: SimMs) -> SimMs {
        let hour = self.setpoint(self.dev, "contract_hour", t, DEFAULT_CONTRACT_HOUR);
        let offset = (hour * HOUR_MS as f64) as i64;
        (t - offset).div_euclid(DAY_MS) * DAY_MS + offset
    }

    /// Minutes in `[a, b]` with the shut-in valve (`valve_open` coil) open.
    fn flow_minutes(&self, a: SimMs, b: SimMs) -> f64 {
        let Some(tag) = self.device().metric_tags.get("valve_open") else {
            return (b - a) as f64 / 60_000.0;
        };
        let cuts = self.h.write_times(self.dev, *tag, a, b);
        pieces(a, b, cuts)
            .windows(2)
            .filter(|p| {
                self.h
                    .written(self.dev, *tag, p[0])
                    .is_none_or(|w| w.value != 0.0)
            })
            .map(|p| (p[1] - p[0]) as f64 / 60_000.0)
            .sum()
    }

    fn heating_value(&self) -> f64 {
        self.p.heating_value_btu_scf
    }

    /// Gas measurement metrics.
    pub fn meter_metric(&self, metric: &str) -> Option<f64> {
        let t = self.t;
        let hv = self.heating_value() / 1000.0;
        let sales_rate = || self.gas_rate(t) * self.sales_fraction();
        let today = || self.contract_day_start(t);
        let v = match metric {
            "static_pressure_psi" => self.measured(metric, self.static_pressure(), 0.001),
            "differential_pressure_inh2o" => {
                self.measured(metric, self.differential_pressure(), 0.004)
            }
            "dp_high_alarm" => f64::from(u8::from(self.differential_pressure() > DP_RANGE_INH2O)),
            "flow_temperature_f" => {
                self.p.flow_temp_base_f
                    + 8.0 * self.diurnal()
                    + 1.5 * self.process("flowtemp", 600.0)
            }
            "gas_rate_mcfd" => self.measured(metric, sales_rate(), 0.005),
            "gas_energy_rate_mmbtud" => self.measured(metric, sales_rate() * hv, 0.005),
            "gas_volume_total_mcf" => self.sales_total(t),
            "gas_energy_total_mmbtu" => self.sales_total(t) * hv,
            "gas_volume_today_mcf" => self.sales_total(t) - self.sales_total(today()),
            "gas_energy_today_mmbtu" => (self.sales_total(t) - self.sales_total(today())) * hv,
            "gas_volume_yesterday_mcf" => {
                self.sales_total(today()) - self.sales_total(today() - DAY_MS)
            }
            "flow_time_today_min" => self.flow_minutes(today(), t),
            "gas_heating_value_btu_scf" => self.heating_value(),
            "gas_specific_gravity" => 0.6 + 0.0011 * (self.heating_value() - 1000.0),
            "gas_co2_mol_pct" => self.p.co2_pct,
            "gas_n2_mol_pct" => self.p.n2_pct,
            "orifice_diameter_in" => self.orifice_default(),
            "meter_tube_diameter_in" => self.p.meter_tube_in,
            "atmospheric_pressure_psi" => self.p.atmospheric_psi,
            "dp_low_flow_cutoff_inh2o" => DEFAULT_LOW_FLOW_CUTOFF_INH2O,
            "contract_hour" => DEFAULT_CONTRACT_HOUR,
            "flare_gas_rate_mcfd" => {
                self.measured(metric, self.gas_rate(t) * self.p.flare_fraction, 0.01)
            }
            "flare_gas_mcf" => self.gas_cum(t) * self.p.flare_fraction,
            "vent_gas_rate_mcfd" => self.measured(
                metric,
                self.oil_rate(t) * self.p.vent_scf_per_bbl / 1000.0,
                0.01,
            ),
            "vent_gas_mcf" => self.oil_cum(t) * self.p.vent_scf_per_bbl / 1000.0,
            "fuel_gas_rate_mcfd" => self.measured(metric, self.p.fuel_mcfd, 0.01),
            "fuel_gas_mcf" => self.p.fuel_mcfd * self.p.age_days(t).max(0.0),
            // The shut-in valve of the meter run: open unless a client closed it.
            "valve_open" => 1.0,
            _ => return None,
        };
        Some(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::params::{Lift, WellParams};
    use crate::model::testutil::device;
    use crate::model::timeline::{WellHistory, Write};
    use crate::model::{DeviceInfo, Role};

    fn setup() -> (WellParams, Vec<DeviceInfo>) {
        (
            WellParams::draw(3, "well-001", Lift::RodPump),
            vec![device(
                "fc",
                Role::FlowComputer,
                &["valve_open", "orifice_diameter_in", "contract_hour"],
            )],
        )
    }

    fn eval<'a>(p: &'a WellParams, h: &'a WellHistory, d: &'a [DeviceInfo], t: SimMs) -> Eval<'a> {
        Eval {
            p,
            h,
            devices: d,
            dev: 0,
            t,
        }
    }

    #[test]
    fn today_and_yesterday_follow_the_contract_day() {
        let (p, d) = setup();
        let h = WellHistory::default();
        // 14:00 UTC: the contract day began at 09:00.
        let t = REFERENCE_EPOCH_MS + 40 * DAY_MS + 14 * HOUR_MS;
        let e = eval(&p, &h, &d, t);
        let today = e.meter_metric("gas_volume_today_mcf").unwrap();
        let yesterday = e.meter_metric("gas_volume_yesterday_mcf").unwrap();
        let rate = e.gas_rate(t) * e.sales_fraction();
        assert!(
            (today - rate * 5.0 / 24.0).abs() < 0.01 * today,
            "{today} {rate}"
        );
        assert!((yesterday - rate).abs() < 0.02 * yesterday);
        assert_eq!(e.meter_metric("flow_time_today_min"), Some(300.0));
    }

    #[test]
    fn differential_is_near_design_and_follows_the_plate() {
        let (p, d) = setup();
        let mut h = WellHistory::default();
        let t = REFERENCE_EPOCH_MS + 30 * DAY_MS;
        let hw = eval(&p, &h, &d, t).differential_pressure();
        assert!((hw / p.hw_design_inh2o - 1.0).abs() < 0.15, "{hw}");
        let d0 = eval(&p, &h, &d, t).orifice_default();
        h.writes.push(Write {
            device: 0,
            tag: 1,
            at: t - 1000,
            value: d0 * 1.1,
        });
        let hw2 = eval(&p, &h, &d, t).differential_pressure();
        assert!((hw2 / hw - 1.1f64.powi(-4)).abs() < 1e-9);
    }

    #[test]
    fn closed_valve_stops_flow_time() {
        let (p, d) = setup();
        let mut h = WellHistory::default();
        let day = REFERENCE_EPOCH_MS + 50 * DAY_MS + 9 * HOUR_MS;
        h.writes.push(Write {
            device: 0,
            tag: 0,
            at: day + HOUR_MS,
            value: 0.0,
        });
        h.writes.push(Write {
            device: 0,
            tag: 0,
            at: day + 2 * HOUR_MS,
            value: 1.0,
        });
        let e = eval(&p, &h, &d, day + 3 * HOUR_MS);
        assert_eq!(e.meter_metric("flow_time_today_min"), Some(120.0));
        assert_eq!(
            e.at(day + 90 * 60_000).meter_metric("gas_rate_mcfd"),
            Some(0.0)
        );
    }
}
