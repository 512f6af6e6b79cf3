//! Fixed gas detection (H₂S electrochemical + catalytic LEL) and site power.
//!
//! * Baselines: H₂S `c₀` 0–2 ppm, LEL 0–1.5 %LEL (seeded), plus slow smooth drift
//!   (±0.15 ppm / ±0.2 %LEL, 2 min knots).
//! * Excursions (small leaks, tank venting while gauging): each simulated UTC day has 0, 1
//!   or 2 of them (probabilities 0.92 / 0.07 / 0.01), one per half-day slot so they never
//!   overlap; gas H₂S (60 %) or combustibles; duration 6–40 min; peak log-uniform 2–25 ppm
//!   or 3–30 %LEL; shape `A·sin²(π·(t − s)/D)`.
//! * Alarms compare the noise-free concentration with the thresholds: H₂S low / high are the
//!   writable setpoints (defaults 10 / 20 ppm), LEL alarm at 10 %LEL. Alarms are
//!   non-latching (active while above the threshold). The relay output is on while an
//!   alarm is active unless a client wrote 0 to it during the current alarm (silence).
//! * Alarm count: excursions since first production whose concentration crossed the
//!   alarm threshold (H₂S low setpoint in force at the crossing, or the LEL threshold)
//!   at or before `t`. The crossing time of `c₀ + A·sin²(πx/D)` through `th` is
//!   `s + D/π·asin(√((th − c₀)/A))`.
//! * Maintenance: bump test / calibration every 30–180 days (state 2 "calibration" for
//!   20 min), H₂S cell replaced at 90 % of its 18–36 month life.
//! * Power and enclosure: see [`super::site`].

use crate::noise::{hash_str, key, range, unit};

use super::Eval;
use super::params::{DAY_MS, MINUTE_MS, SimMs};

const H2S_LOW_DEFAULT_PPM: f64 = 10.0;
const H2S_HIGH_DEFAULT_PPM: f64 = 20.0;
const LEL_ALARM_PCT: f64 = 10.0;
const CALIBRATION_VISIT_MS: i64 = 20 * MINUTE_MS;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gas {
    H2s,
    Combustible,
}

#[derive(Debug, Clone, Copy)]
struct Excursion {
    gas: Gas,
    start: SimMs,
    duration: i64,
    peak: f64,
}

impl Excursion {
    fn level(&self, t: SimMs) -> f64 {
        if t < self.start || t >= self.start + self.duration {
            return 0.0;
        }
        let x = (t - self.start) as f64 / self.duration as f64;
        self.peak * (std::f64::consts::PI * x).sin().powi(2)
    }

    /// When the excursion (on top of `base`) first reaches `threshold`, if it does.
    fn crossing(&self, base: f64, threshold: f64) -> Option<SimMs> {
        let need = (threshold - base) / self.peak;
        if need > 1.0 {
            return None;
        }
        let x = need.max(0.0).sqrt().asin() / std::f64::consts::PI;
        Some(self.start + (x * self.duration as f64).ceil() as i64)
    }
}

impl Eval<'_> {
    fn excursions(&self, day: i64) -> Vec<Excursion> {
        let k = |i: u64| key(&[self.p.key, hash_str("excursion"), day as u64, i]);
        let draw = unit(k(0));
        let count = if draw < 0.92 {
            0
        } else if draw < 0.99 {
            1
        } else {
            2
        };
        (0..count)
            .map(|i| {
                let h = k(i + 1);
                let gas = if unit(key(&[h, 1])) < 0.6 {
                    Gas::H2s
                } else {
                    Gas::Combustible
                };
                let duration = (range(key(&[h, 2]), 6.0, 40.0) * MINUTE_MS as f64) as i64;
                let slot = DAY_MS / 2;
                let start = day * DAY_MS
                    + i as i64 * slot
                    + (unit(key(&[h, 3])) * (slot - duration) as f64) as i64;
                let (lo, hi): (f64, f64) = match gas {
                    Gas::H2s => (2.0, 25.0),
                    Gas::Combustible => (3.0, 30.0),
                };
                let peak = range(key(&[h, 4]), lo.ln(), hi.ln()).exp();
                Excursion {
                    gas,
                    start,
                    duration,
                    peak,
                }
            })
            .collect()
    }

    fn base(&self, gas: Gas) -> f64 {
        match gas {
            Gas::H2s => self.p.h2s_base_ppm,
            Gas::Combustible => self.p.lel_base_pct,
        }
    }

    /// Noise-free concentration and the excursion causing it (if any) at `self.t`.
    fn concentration(&self, gas: Gas) -> (f64, Option<Excursion>) {
        let day = self.t.div_euclid(DAY_MS);
        let active = self
            .excursions(day)
            .into_iter()
            .find(|e| e.gas == gas && e.level(self.t) > 0.0);
        let bump = active.map_or(0.0, |e| e.level(self.t));
        (self.base(gas) + bump, active)
    }

    fn h2s_thresholds(&self, t: SimMs) -> (f64, f64) {
        (
            self.setpoint(
                self.dev,
                "h2s_alarm_low_setpoint_ppm",
                t,
                H2S_LOW_DEFAULT_PPM,
            ),
            self.setpoint(
                self.dev,
                "h2s_alarm_high_setpoint_ppm",
                t,
                H2S_HIGH_DEFAULT_PPM,
            ),
        )
    }

    /// Threshold of the alarm an excursion of `gas` trips, in force at `t`.
    fn alarm_threshold(&self, gas: Gas, t: SimMs) -> f64 {
        match gas {
            Gas::H2s => self.h2s_thresholds(t).0,
            Gas::Combustible => LEL_ALARM_PCT,
        }
    }

    /// Time the current alarm started, if an alarm is active now.
    fn active_alarm_since(&self) -> Option<SimMs> {
        [Gas::H2s, Gas::Combustible]
            .into_iter()
            .filter_map(|gas| {
                let (c, e) = self.concentration(gas);
                let e = e?;
                let threshold = self.alarm_threshold(gas, self.t);
                (c >= threshold).then(|| e.crossing(self.base(gas), threshold).unwrap_or(e.start))
            })
            .min()
    }

    /// Alarms of the excursions of days `[from_day, to_day)` that crossed their threshold at
    /// or before `until`.
    fn alarms_in_days(&self, from_day: i64, to_day: i64, until: SimMs) -> u64 {
        let mut count = 0;
        for day in from_day..to_day {
            for e in self.excursions(day) {
                if e.start < self.p.online_ms || e.start > until {
                    continue;
                }
                // The threshold in force when the excursion began decides whether it alarmed.
                let threshold = self.alarm_threshold(e.gas, e.start);
                if e.crossing(self.base(e.gas), threshold)
                    .is_some_and(|at| at <= until)
                {
                    count += 1;
                }
            }
        }
        count
    }

    /// Alarms before day `day` with no client writes — precomputed per detector (see
    /// [`super::DeviceInfo::alarm_base`]) because it walks every day since first production.
    pub(crate) fn alarms_before_day(&self, day: i64) -> u64 {
        self.alarms_in_days(self.p.online_ms.div_euclid(DAY_MS), day, SimMs::MAX)
    }

    fn alarm_count(&self) -> f64 {
        let first_day = self.p.online_ms.div_euclid(DAY_MS);
        let last_day = self.t.div_euclid(DAY_MS);
        let (from_day, base) = match self.device().alarm_base {
            Some((day, base)) if (first_day..=last_day).contains(&day) => (day, base),
            _ => (first_day, 0),
        };
        (base + self.alarms_in_days(from_day, last_day + 1, self.t)) as f64
    }

    fn alarm_output(&self) -> bool {
        let Some(since) = self.active_alarm_since() else {
            return false;
        };
        let silenced = self
            .device()
            .metric_tags
            .get("alarm_output_on")
            .and_then(|tag| self.h.written(self.dev, *tag, self.t))
            .is_some_and(|w| w.at >= since && w.value == 0.0);
        !silenced
    }

    /// Start of the current calibration interval (the last calibration), ms.
    fn last_calibration(&self) -> SimMs {
        let interval = (self.p.calibration_interval_days * DAY_MS as f64) as i64;
        let phase = (unit(key(&[self.p.key, hash_str("calibration")])) * interval as f64) as i64;
        let first = self.p.online_ms + phase;
        if self.t < first {
            return self.p.online_ms;
        }
        first + (self.t - first).div_euclid(interval) * interval
    }

    pub fn detector_metric(&self, metric: &str) -> Option<f64> {
        let flag = |b: bool| f64::from(u8::from(b));
        let v = match metric {
            "h2s_ppm" => {
                self.concentration(Gas::H2s).0
                    + 0.15 * self.process("h2s", 120.0)
                    + 0.05 * self.white(metric)
            }
            "lel_pct" => {
                self.concentration(Gas::Combustible).0
                    + 0.2 * self.process("lel", 120.0)
                    + 0.05 * self.white(metric)
            }
            "h2s_alarm_low" => {
                flag(self.concentration(Gas::H2s).0 >= self.h2s_thresholds(self.t).0)
            }
            "h2s_alarm_high" => {
                flag(self.concentration(Gas::H2s).0 >= self.h2s_thresholds(self.t).1)
            }
            "lel_alarm" => flag(self.concentration(Gas::Combustible).0 >= LEL_ALARM_PCT),
            "h2s_alarm_low_setpoint_ppm" => self.h2s_thresholds(self.t).0,
            "h2s_alarm_high_setpoint_ppm" => self.h2s_thresholds(self.t).1,
            "alarm_output_on" => flag(self.alarm_output()),
            "gas_alarm_count_total" => self.alarm_count(),
            "detector_fault" => 0.0,
            "detector_state" => flag(self.t - self.last_calibration() < CALIBRATION_VISIT_MS) * 2.0,
            "calibration_age_d" => (self.t - self.last_calibration()) as f64 / DAY_MS as f64,
            "sensor_life_pct" => {
                let life = self.p.sensor_life_days * DAY_MS as f64;
                let replaced_every = 0.9 * life;
                let age = ((self.t - self.p.online_ms) as f64).rem_euclid(replaced_every);
                100.0 * (1.0 - age / life)
            }
            _ => return None,
        };
        Some(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::params::{Lift, REFERENCE_EPOCH_MS, WellParams};
    use crate::model::testutil::device;
    use crate::model::timeline::{WellHistory, Write};
    use crate::model::{DeviceInfo, Role};

    fn setup() -> (WellParams, Vec<DeviceInfo>) {
        (
            WellParams::draw(5, "well-003", Lift::RodPump),
            vec![device(
                "gd",
                Role::GasDetector,
                &["h2s_alarm_low_setpoint_ppm", "alarm_output_on"],
            )],
        )
    }

    /// Finds a day with an H2S excursion that crosses the default low alarm.
    fn alarming_excursion(e: &Eval<'_>) -> Excursion {
        let start_day = REFERENCE_EPOCH_MS / DAY_MS;
        (start_day..start_day + 2000)
            .flat_map(|d| e.excursions(d))
            .find(|x| x.gas == Gas::H2s && x.crossing(e.base(Gas::H2s), 10.0).is_some())
            .expect("an alarming excursion within 2000 days")
    }

    #[test]
    fn excursion_raises_concentration_and_alarms() {
        let (p, d) = setup();
        let h = WellHistory::default();
        let e = Eval {
            p: &p,
            h: &h,
            devices: &d,
            dev: 0,
            t: REFERENCE_EPOCH_MS,
        };
        let x = alarming_excursion(&e);
        let cross = x.crossing(p.h2s_base_ppm, 10.0).unwrap();
        let at = |t| e.at(t);
        assert_eq!(at(cross - 1000).metric("h2s_alarm_low"), Some(0.0));
        assert_eq!(at(cross).metric("h2s_alarm_low"), Some(1.0));
        assert_eq!(at(cross).metric("alarm_output_on"), Some(1.0));
        let n0 = at(cross - 1000).metric("gas_alarm_count_total").unwrap();
        let n1 = at(cross).metric("gas_alarm_count_total").unwrap();
        assert_eq!(n1, n0 + 1.0);
        let mid = x.start + x.duration / 2;
        assert!(at(mid).metric("h2s_ppm").unwrap() > p.h2s_base_ppm + 5.0);
        assert!(at(x.start + x.duration + 1000).metric("h2s_ppm").unwrap() < 3.0);
    }

    #[test]
    fn silencing_and_raising_the_setpoint_take_effect() {
        let (p, d) = setup();
        let mut h = WellHistory::default();
        let probe = Eval {
            p: &p,
            h: &h,
            devices: &d,
            dev: 0,
            t: REFERENCE_EPOCH_MS,
        };
        let x = alarming_excursion(&probe);
        let cross = x.crossing(p.h2s_base_ppm, 10.0).unwrap();
        h.writes.push(Write {
            device: 0,
            tag: 1,
            at: cross + 1000,
            value: 0.0,
        });
        let e = |h: &WellHistory, t| {
            Eval {
                p: &p,
                h,
                devices: &d,
                dev: 0,
                t,
            }
            .metric("alarm_output_on")
            .unwrap()
        };
        assert_eq!(e(&h, cross), 1.0);
        assert_eq!(e(&h, cross + 2000), 0.0);
        // A threshold above the peak means no alarm at all.
        let mut h2 = WellHistory::default();
        h2.writes.push(Write {
            device: 0,
            tag: 0,
            at: x.start - 1000,
            value: 99.0,
        });
        let low = |t| {
            Eval {
                p: &p,
                h: &h2,
                devices: &d,
                dev: 0,
                t,
            }
            .metric("h2s_alarm_low")
            .unwrap()
        };
        assert_eq!(low(x.start + x.duration / 2), 0.0);
    }

    #[test]
    fn cached_alarm_base_gives_the_same_count() {
        let (p, mut d) = setup();
        let h = WellHistory::default();
        let t = REFERENCE_EPOCH_MS + 300 * DAY_MS + 12_345_000;
        let count = |d: &[DeviceInfo]| {
            Eval {
                p: &p,
                h: &h,
                devices: d,
                dev: 0,
                t,
            }
            .metric("gas_alarm_count_total")
            .unwrap()
        };
        let full = count(&d);
        assert!(full > 0.0);
        let day = (REFERENCE_EPOCH_MS + 100 * DAY_MS) / DAY_MS;
        let base = Eval {
            p: &p,
            h: &h,
            devices: &d,
            dev: 0,
            t,
        }
        .alarms_before_day(day);
        d[0].alarm_base = Some((day, base));
        assert_eq!(count(&d), full);
    }
}
