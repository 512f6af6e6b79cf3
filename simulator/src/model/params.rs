//! Per-well physical parameters drawn from the fleet seed.
//!
//! Each well gets a ChaCha8 stream seeded with `key(seed, hash(well name))`; the parameters
//! are drawn from it in a fixed order, *all of them for every well* (also those its lift
//! type does not use), so adding a field at the end never changes the earlier ones and a
//! well's parameters depend only on the seed and its name.
//!
//! Ranges are typical of Permian-basin style onshore wells; distributions are uniform
//! unless stated (rates are log-uniform). The lift type shapes the draw:
//!
//! | quantity | rod pump | ESP | plunger lift (gas well) | flowing |
//! |---|---|---|---|---|
//! | initial oil rate qi, bbl/d | 60–400 | 150–600 | 4–30 (condensate) | 100–600 |
//! | gas-oil ratio, scf/bbl | 400–2500 | 200–1200 | 15 000–60 000 | 800–3000 |
//! | water cut (fraction of liquid) | 0.30–0.85 | 0.60–0.90 | 0.30–0.70 | 0.10–0.50 |
//!
//! Common to all: nominal initial decline Di 0.6–2.2 /yr, hyperbolic b 0.4–1.2, first
//! production 60–2000 days before [`REFERENCE_EPOCH_MS`], pump (or plunger bumper spring)
//! depth 4 500–9 500 ft, sales-line pressure 60–250 psi. Gas heating value 1050–1300
//! Btu/scf for oil wells (associated gas), 1000–1150 for gas wells.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::decline::Arps;
use crate::noise::{hash_str, key};

/// Simulated milliseconds since the Unix epoch.
pub(crate) type SimMs = i64;

/// Milliseconds per day / hour / minute.
pub(crate) const DAY_MS: i64 = 86_400_000;
pub(crate) const HOUR_MS: i64 = 3_600_000;
pub(crate) const MINUTE_MS: i64 = 60_000;

/// 2026-01-01T00:00:00Z. Wells' ages, tank haul intervals and meter plates are defined
/// relative to this fixed date so that a well's state depends on absolute simulated time,
/// never on when the simulator was started.
pub(crate) const REFERENCE_EPOCH_MS: SimMs = 1_767_225_600_000;

/// Artificial-lift method of a well (decided by the devices configured on it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lift {
    RodPump,
    Esp,
    Plunger,
    Flowing,
}

/// Everything physical about one well. Units are in the field names.
#[derive(Debug, Clone)]
pub(crate) struct WellParams {
    /// Noise key of the well (seed ⊕ well name).
    pub key: u64,
    pub lift: Lift,
    /// First production (simulated ms).
    pub online_ms: SimMs,
    /// Oil (condensate) decline, bbl/d.
    pub oil: Arps,
    pub gor_scf_bbl: f64,
    pub water_cut: f64,
    pub pump_depth_ft: f64,
    pub line_psi: f64,
    /// Flow-line friction coefficient: tubing over line pressure is `k·(q_liquid/100)^0.6` psi.
    pub flowline_psi_per_100bpd: f64,
    /// Casing pressure above line pressure (casing-head gas back-pressure), psi.
    pub casing_over_line_psi: f64,
    // Rod pump (API pumping unit on a VSD).
    pub spm: f64,
    pub stroke_in: f64,
    pub plunger_dia_in: f64,
    pub rod_lb_per_ft: f64,
    pub fillage_base: f64,
    /// Fraction of the rod string still hanging after a rod part.
    pub part_fraction: f64,
    pub fluid_over_pump_ft: f64,
    pub motor_nameplate_a: f64,
    /// Drive frequency at the seeded speed, Hz.
    pub vsd_base_hz: f64,
    /// Gearbox torque and structure load at normal operation, fraction of rating.
    pub gearbox_fraction: f64,
    pub structure_fraction: f64,
    // ESP.
    pub esp_hz: f64,
    pub esp_nameplate_a: f64,
    pub esp_motor_volts: f64,
    pub submergence_ft: f64,
    pub motor_rise_f: f64,
    pub vibration_g: f64,
    pub unbalance_pct: f64,
    // Plunger lift cycle.
    pub close_min: f64,
    pub travel_min: f64,
    pub afterflow_min: f64,
    /// Casing pressure at the end of blow-down above line pressure, psi.
    pub casing_min_over_line_psi: f64,
    /// Casing pressure build-up towards which a shut-in tends, psi, and its time constant.
    pub casing_buildup_psi: f64,
    pub buildup_tau_min: f64,
    /// Fraction of cycles whose plunger does not arrive.
    pub miss_fraction: f64,
    // Gas measurement.
    pub hw_design_inh2o: f64,
    pub meter_tube_in: f64,
    pub beta: f64,
    pub flow_temp_base_f: f64,
    pub heating_value_btu_scf: f64,
    pub co2_pct: f64,
    pub n2_pct: f64,
    pub atmospheric_psi: f64,
    pub flare_fraction: f64,
    pub vent_scf_per_bbl: f64,
    pub fuel_mcfd: f64,
    // Tank battery.
    pub haul_phase_h: f64,
    /// Fraction of the produced water carried over into the oil tank (water bottoms).
    pub carry_over: f64,
    // Gas detector and site.
    pub h2s_base_ppm: f64,
    pub lel_base_pct: f64,
    pub ambient_mean_f: f64,
    pub battery_nominal_v: f64,
    pub sensor_life_days: f64,
    pub calibration_interval_days: f64,
}

/// Log-uniform draw in `[lo, hi)`.
fn log_uniform(rng: &mut ChaCha8Rng, lo: f64, hi: f64) -> f64 {
    (rng.random_range(lo.ln()..hi.ln())).exp()
}

impl WellParams {
    /// Draws the parameters of well `name` of lift type `lift` from `seed`.
    pub fn draw(seed: u64, name: &str, lift: Lift) -> WellParams {
        let well_key = key(&[seed, hash_str(name)]);
        let mut rng = ChaCha8Rng::seed_from_u64(well_key);
        let r = &mut rng;
        let (qi_range, gor_range, wc_range) = match lift {
            Lift::RodPump => ((60.0, 400.0), (400.0, 2500.0), (0.30, 0.85)),
            Lift::Esp => ((150.0, 600.0), (200.0, 1200.0), (0.60, 0.90)),
            Lift::Plunger => ((4.0, 30.0), (15_000.0, 60_000.0), (0.30, 0.70)),
            Lift::Flowing => ((100.0, 600.0), (800.0, 3000.0), (0.10, 0.50)),
        };
        let qi = log_uniform(r, qi_range.0, qi_range.1);
        let di = r.random_range(0.6..2.2);
        let b = r.random_range(0.4..1.2);
        let age_days = r.random_range(60.0..2000.0);
        let heating_value = r.random_range(0.0..1.0);
        WellParams {
            key: well_key,
            lift,
            online_ms: REFERENCE_EPOCH_MS - (age_days * DAY_MS as f64) as i64,
            oil: Arps::from_annual(qi, di, b),
            gor_scf_bbl: log_uniform(r, gor_range.0, gor_range.1),
            water_cut: r.random_range(wc_range.0..wc_range.1),
            pump_depth_ft: r.random_range(4500.0..9500.0),
            line_psi: r.random_range(60.0..250.0),
            flowline_psi_per_100bpd: r.random_range(8.0..25.0),
            casing_over_line_psi: r.random_range(5.0..40.0),
            spm: (r.random_range(5.0..10.0f64) * 10.0).round() / 10.0,
            stroke_in: [86.0, 100.0, 120.0, 144.0, 168.0][r.random_range(0..5)],
            plunger_dia_in: [1.25, 1.5, 1.75, 2.0, 2.25][r.random_range(0..5)],
            rod_lb_per_ft: r.random_range(1.4..2.0),
            fillage_base: r.random_range(0.86..0.97),
            part_fraction: r.random_range(0.15..0.5),
            fluid_over_pump_ft: r.random_range(80.0..300.0),
            motor_nameplate_a: r.random_range(30.0..75.0),
            vsd_base_hz: r.random_range(45.0..55.0f64).round(),
            gearbox_fraction: r.random_range(0.6..0.9),
            structure_fraction: r.random_range(0.55..0.85),
            esp_hz: (r.random_range(48.0..60.0f64)).round(),
            esp_nameplate_a: r.random_range(40.0..110.0),
            esp_motor_volts: [1100.0, 1500.0, 2300.0, 3300.0][r.random_range(0..4)],
            submergence_ft: r.random_range(400.0..1600.0),
            motor_rise_f: r.random_range(25.0..60.0),
            vibration_g: r.random_range(0.05..0.25),
            unbalance_pct: r.random_range(1.0..4.0),
            close_min: r.random_range(30.0..90.0f64).round(),
            travel_min: r.random_range(3.0..12.0),
            afterflow_min: r.random_range(30.0..150.0f64).round(),
            casing_min_over_line_psi: r.random_range(30.0..80.0),
            casing_buildup_psi: r.random_range(120.0..300.0),
            buildup_tau_min: r.random_range(20.0..60.0),
            miss_fraction: r.random_range(0.01..0.06),
            hw_design_inh2o: r.random_range(40.0..90.0),
            meter_tube_in: [2.067, 3.068, 4.026][r.random_range(0..3)],
            beta: r.random_range(0.3..0.6),
            flow_temp_base_f: r.random_range(65.0..105.0),
            heating_value_btu_scf: match lift {
                Lift::Plunger => 1000.0 + 150.0 * heating_value,
                _ => 1050.0 + 250.0 * heating_value,
            },
            co2_pct: r.random_range(0.3..3.0),
            n2_pct: r.random_range(0.5..3.0),
            atmospheric_psi: r.random_range(13.0..14.6),
            flare_fraction: r.random_range(0.005..0.04),
            vent_scf_per_bbl: r.random_range(5.0..40.0),
            fuel_mcfd: r.random_range(3.0..18.0),
            haul_phase_h: r.random_range(0.0..24.0),
            carry_over: r.random_range(0.005..0.02),
            h2s_base_ppm: r.random_range(0.0..2.0),
            lel_base_pct: r.random_range(0.0..1.5),
            ambient_mean_f: r.random_range(55.0..80.0),
            battery_nominal_v: r.random_range(12.5..12.9),
            sensor_life_days: r.random_range(540.0..1100.0),
            calibration_interval_days: [30.0, 60.0, 90.0, 180.0][r.random_range(0..4)],
        }
    }

    /// Days since first production at `t` (negative before).
    pub fn age_days(&self, t: SimMs) -> f64 {
        (t - self.online_ms) as f64 / DAY_MS as f64
    }

    /// Specific gravity of the produced liquid mix (oil 0.85, brine 1.07).
    pub fn liquid_sg(&self) -> f64 {
        0.85 * (1.0 - self.water_cut) + 1.07 * self.water_cut
    }

    /// Water produced per barrel of oil.
    pub fn wor(&self) -> f64 {
        self.water_cut / (1.0 - self.water_cut)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_and_name_give_same_params() {
        let a = WellParams::draw(7, "well-001", Lift::RodPump);
        let b = WellParams::draw(7, "well-001", Lift::RodPump);
        assert_eq!(a.oil, b.oil);
        assert_eq!(a.line_psi, b.line_psi);
        let c = WellParams::draw(8, "well-001", Lift::RodPump);
        assert_ne!(a.oil, c.oil);
        let d = WellParams::draw(7, "well-002", Lift::RodPump);
        assert_ne!(a.oil, d.oil);
    }

    #[test]
    fn ranges_depend_on_lift() {
        for i in 0..200 {
            let name = format!("w{i}");
            let gas = WellParams::draw(1, &name, Lift::Plunger);
            assert!(gas.gor_scf_bbl >= 15_000.0 && gas.oil.qi < 30.0);
            let esp = WellParams::draw(1, &name, Lift::Esp);
            assert!(esp.oil.qi >= 150.0 && esp.water_cut >= 0.6);
            assert!(esp.online_ms < REFERENCE_EPOCH_MS - 59 * DAY_MS);
        }
    }
}
