//! Tank battery: a 400 bbl, 240 in (20 ft) oil stock tank with water bottoms, gauged by a
//! radar / float gauge reporting the product (top of fluid) and interface (oil/water)
//! levels.
//!
//! * Oil flows in at `qo`; a fraction `c` (0.5–2 %) of the produced water carries over from
//!   the separator and settles as water bottoms.
//! * Trucks haul on a schedule: every `T` hours from first production plus a seeded phase,
//!   `T` sized so that two intervals of inflow at the 2026-01-01 rate fill 90 % of the
//!   usable volume (`8 h ≤ T ≤ 7 d`). About 10 % of the hauls are missed (never two in a
//!   row), so levels occasionally climb past the high-level alarm. A haul draws the water
//!   bottoms down to 2 in and the oil down to a 10 in heel, linearly over 45 min (or a
//!   third of the interval) while production keeps flowing in.
//! * Volumes `V = level·(400/240)` bbl/in; product level `(Vo + Vw)/k`, interface `Vw/k`.
//! * Level rate (in/h) is the gauge's own derivative: the change over the last minute × 60.
//! * High-level switch at 85 % (204 in); the gauge alarm compares the product level with
//!   the writable `tank_high_level_setpoint_in` (default 204 in).
//! * Fluid temperature follows the ambient cycle, damped by the tank's thermal mass.

use crate::noise::{hash_str, key, unit};

use super::Eval;
use super::params::{HOUR_MS, MINUTE_MS, REFERENCE_EPOCH_MS, SimMs};

const CAPACITY_BBL: f64 = 400.0;
const HEIGHT_IN: f64 = 240.0;
const OIL_HEEL_IN: f64 = 10.0;
const WATER_HEEL_IN: f64 = 2.0;
const HIGH_SWITCH_IN: f64 = 0.85 * HEIGHT_IN;
const HAUL_MISS_PROBABILITY: f64 = 0.10;

fn bbl_per_in() -> f64 {
    CAPACITY_BBL / HEIGHT_IN
}

/// Tank layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layer {
    Oil,
    Water,
}

impl Eval<'_> {
    /// First haul and haul interval, ms.
    fn haul_schedule(&self) -> (SimMs, i64) {
        let q_ref = self.p.oil.rate(self.p.age_days(REFERENCE_EPOCH_MS))
            * (1.0 + self.p.carry_over * self.p.wor());
        let usable = CAPACITY_BBL - (OIL_HEEL_IN + WATER_HEEL_IN) * bbl_per_in();
        let interval_h = (0.45 * usable / q_ref.max(1e-6) * 24.0)
            .clamp(8.0, 168.0)
            .round();
        let first = self.p.online_ms + (self.p.haul_phase_h * HOUR_MS as f64) as i64;
        (first, (interval_h * HOUR_MS as f64) as i64)
    }

    fn haul_missed(&self, k: i64) -> bool {
        let raw =
            |k: i64| unit(key(&[self.p.key, hash_str("haul"), k as u64])) < HAUL_MISS_PROBABILITY;
        raw(k) && !raw(k - 1)
    }

    /// Index of the last haul that happened at or before `t` (negative: none yet).
    fn last_haul(&self, t: SimMs) -> i64 {
        let (first, interval) = self.haul_schedule();
        let mut k = (t - first).div_euclid(interval);
        if k >= 0 && self.haul_missed(k) {
            k -= 1;
        }
        k
    }

    fn inflow_cum(&self, layer: Layer, t: SimMs) -> f64 {
        match layer {
            Layer::Oil => self.oil_cum(t),
            Layer::Water => self.water_cum(t) * self.p.carry_over,
        }
    }

    /// Height of one layer at `t`, inches.
    fn layer_in(&self, layer: Layer, t: SimMs) -> f64 {
        let heel = match layer {
            Layer::Oil => OIL_HEEL_IN,
            Layer::Water => WATER_HEEL_IN,
        };
        let (first, interval) = self.haul_schedule();
        let since =
            |from: SimMs| (self.inflow_cum(layer, t) - self.inflow_cum(layer, from)) / bbl_per_in();
        let k = self.last_haul(t);
        if k < 0 {
            return heel + since(self.p.online_ms);
        }
        let start = first + k * interval;
        let drain = (45 * MINUTE_MS).min(interval / 3);
        let mut level = heel + since(start);
        if t < start + drain {
            let previous = self.last_haul(start - 1);
            let from = if previous < 0 {
                self.p.online_ms
            } else {
                first + previous * interval
            };
            let before =
                (self.inflow_cum(layer, start) - self.inflow_cum(layer, from)) / bbl_per_in();
            level += before * (1.0 - (t - start) as f64 / drain as f64);
        }
        level
    }

    /// Product (top of fluid) and interface levels at `t`, inches.
    fn levels(&self, t: SimMs) -> (f64, f64) {
        let water = self.layer_in(Layer::Water, t).min(HEIGHT_IN);
        let product = (water + self.layer_in(Layer::Oil, t)).min(HEIGHT_IN);
        (product, water)
    }

    pub fn tank_metric(&self, metric: &str) -> Option<f64> {
        let levels = || self.levels(self.t);
        let product = || levels().0;
        let flag = |b: bool| f64::from(u8::from(b));
        let v = match metric {
            "oil_level_in" => product(),
            "water_level_in" => levels().1,
            "oil_volume_bbl" => {
                let (product, interface) = levels();
                (product - interface) * bbl_per_in()
            }
            "water_volume_bbl" => levels().1 * bbl_per_in(),
            "fluid_level_rate_in_hr" => (product() - self.levels(self.t - MINUTE_MS).0) * 60.0,
            "tank_temperature_f" => {
                self.p.ambient_mean_f + 6.0 * self.diurnal() + 0.5 * self.process("tank", 1800.0)
            }
            "tank_high_level" => flag(product() >= HIGH_SWITCH_IN),
            "tank_high_level_setpoint_in" => HIGH_SWITCH_IN,
            "tank_level_alarm" => flag(
                product()
                    >= self.setpoint(
                        self.dev,
                        "tank_high_level_setpoint_in",
                        self.t,
                        HIGH_SWITCH_IN,
                    ),
            ),
            "gauge_fault" => 0.0,
            _ => return None,
        };
        Some(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::params::{DAY_MS, Lift, WellParams};
    use crate::model::testutil::device;
    use crate::model::timeline::WellHistory;
    use crate::model::{DeviceInfo, Role};

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
    fn tank_fills_between_hauls_and_drops_at_hauls() {
        let p = WellParams::draw(3, "well-001", Lift::RodPump);
        let d = vec![device("tank", Role::TankGauge, &[])];
        let h = WellHistory::default();
        let e = eval(&p, &h, &d, REFERENCE_EPOCH_MS);
        let (first, interval) = e.haul_schedule();
        let mut k = (REFERENCE_EPOCH_MS + 20 * DAY_MS - first) / interval;
        if e.haul_missed(k) {
            k += 1;
        }
        let haul = first + k * interval;
        let level = |t| e.at(t).tank_metric("oil_level_in").unwrap();
        let before = level(haul - 1000);
        let after = level(haul + 2 * HOUR_MS);
        assert!(before > OIL_HEEL_IN + WATER_HEEL_IN + 1.0, "{before}");
        assert!(
            after < before,
            "haul lowered the level: {before} -> {after}"
        );
        assert!(
            e.at(haul + 10 * MINUTE_MS)
                .tank_metric("fluid_level_rate_in_hr")
                .unwrap()
                < 0.0
        );
        let mut prev = level(haul + HOUR_MS);
        let mut t = haul + HOUR_MS;
        while t < haul + interval - MINUTE_MS {
            t += 10 * MINUTE_MS;
            let l = level(t);
            assert!(l >= prev - 1e-9, "level only rises between hauls");
            prev = l;
        }
    }

    #[test]
    fn volumes_match_levels_and_never_overflow_after_reference_date() {
        for i in 0..40 {
            for lift in [Lift::RodPump, Lift::Esp, Lift::Plunger, Lift::Flowing] {
                let p = WellParams::draw(i, "w", lift);
                let d = vec![device("t", Role::TankGauge, &[])];
                let h = WellHistory::default();
                for day in 0..30 {
                    let t = REFERENCE_EPOCH_MS + day * DAY_MS + (day * 7919 % 24) * HOUR_MS;
                    let e = eval(&p, &h, &d, t);
                    let m = |n| e.tank_metric(n).unwrap();
                    let (product, interface) = (m("oil_level_in"), m("water_level_in"));
                    assert!(
                        product < HEIGHT_IN && interface <= product,
                        "{lift:?} {product}"
                    );
                    let total = m("oil_volume_bbl") + m("water_volume_bbl");
                    assert!((total - product * bbl_per_in()).abs() < 1e-9);
                    assert!(m("oil_volume_bbl") <= CAPACITY_BBL);
                }
            }
        }
    }
}
