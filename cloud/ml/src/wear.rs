//! A simulated fleet of wearing artificial-lift wells at daily-rollup resolution, with its
//! failure schedule as ground truth: the training and evaluation data of predictive
//! maintenance (`cargo bench -p ml`, tests).
//!
//! Why not the Modbus simulator: its scheduled failures (pump-off, rod part, gas lock,
//! device faults) are drawn independently per 6-hour slot and last minutes to hours, with
//! no precursor, so by construction nothing can predict them days ahead. Real lift
//! failures wear in: this fleet models that, at the resolution the model reads (one
//! rollup per day), and keeps the parts that make it hard.
//!
//! # Model
//!
//! - Lift mix 60 % rod pump, 25 % ESP, 15 % plunger lift; per-well levels and noise.
//! - Failures: Weibull wear-out (shape 1.6, scale ~ 230 days) on the days since the last
//!   workover; a well that failed is down 2–7 days (runtime 0, other rollups absent), then
//!   a workover repairs it and resets its age. Initial ages are uniform in 0–400 days.
//! - 75 % of failures wear in over a precursor of 8–40 days, severity growing to the
//!   failure: rod pump fillage falls, load range rises and swings, pump-off cycles rise,
//!   runtime falls; ESP motor current rises, restarts rise, runtime falls; plunger arrivals
//!   fall, runtime falls. The other 25 % are sudden (no precursor): no model sees them
//!   coming, and they stay in the evaluation.
//! - Confounders: benign episodes (every ~120 days per well, 3–12 days: low inflow, a
//!   power dip) that look like a mild precursor and pass; slow reservoir decline of
//!   fillage; 3 % of rollups missing.
//!
//! Deterministic in the seed (ChaCha8).

use std::collections::HashMap;

use chrono::NaiveDate;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

use crate::maintenance::{DailyRollup, Lift, WellHistory};

/// Fleet options.
#[derive(Debug, Clone, PartialEq)]
pub struct WearOptions {
    /// Wells.
    pub wells: usize,
    /// Days of history per well.
    pub days: usize,
    /// Seed.
    pub seed: u64,
    /// First day.
    pub start: NaiveDate,
    /// Share of failures without precursor.
    pub sudden_share: f64,
}

impl Default for WearOptions {
    fn default() -> Self {
        WearOptions {
            wells: 200,
            days: 365 + 60,
            seed: 1,
            start: NaiveDate::from_ymd_opt(2025, 1, 1).expect("valid date"),
            sudden_share: 0.25,
        }
    }
}

/// The fleet and its failure schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct WearFleet {
    /// Wells with rollups, workovers and failures.
    pub wells: Vec<WellHistory>,
    /// (well, failure day) → whether it had a precursor.
    pub schedule: HashMap<(String, NaiveDate), bool>,
}

struct Levels {
    fillage: f64,
    load: f64,
    current: f64,
    runtime: f64,
    cycles: f64,
}

impl WearFleet {
    /// Generates the fleet.
    pub fn generate(o: &WearOptions) -> WearFleet {
        let mut rng = ChaCha8Rng::seed_from_u64(o.seed);
        let noise = Normal::new(0.0, 1.0).expect("valid normal");
        let mut wells = Vec::with_capacity(o.wells);
        let mut schedule = HashMap::new();
        for w in 0..o.wells {
            let lift = match rng.random::<f64>() {
                x if x < 0.60 => Lift::RodPump,
                x if x < 0.85 => Lift::Esp,
                _ => Lift::PlungerLift,
            };
            let lv = Levels {
                fillage: 75.0 + 20.0 * rng.random::<f64>(),
                load: 6000.0 + 6000.0 * rng.random::<f64>(),
                current: 25.0 + 40.0 * rng.random::<f64>(),
                runtime: 18.0 + 5.5 * rng.random::<f64>(),
                cycles: match lift {
                    Lift::RodPump => 6.0 + 10.0 * rng.random::<f64>(),
                    Lift::Esp => 0.5 + rng.random::<f64>(),
                    Lift::PlungerLift => 15.0 + 20.0 * rng.random::<f64>(),
                },
            };
            let name = format!("well-{w:04}");
            let age0: u32 = rng.random_range(0..400);
            let scale = 200.0 + 60.0 * rng.random::<f64>();
            let shape = 1.6;
            // Failures: sample successive Weibull lifetimes from the age at start.
            let mut failures: Vec<(usize, usize, bool, usize)> = Vec::new(); // (day, precursor, sudden, down)
            let mut t = 0usize;
            let mut age = f64::from(age0);
            while t < o.days {
                // Conditional Weibull residual life given survival to `age`.
                let u: f64 = rng.random::<f64>().max(1e-12);
                let total = scale * ((age / scale).powf(shape) - u.ln()).powf(1.0 / shape);
                let life = (total - age).max(1.0).round() as usize;
                let day = t + life;
                if day >= o.days {
                    break;
                }
                let sudden = rng.random::<f64>() < o.sudden_share;
                let precursor = if sudden { 0 } else { rng.random_range(8..=40) };
                let down = rng.random_range(2..=7);
                failures.push((day, precursor, sudden, down));
                t = day + down + 1;
                age = 0.0;
            }
            // Benign episodes.
            let mut episodes: Vec<(usize, usize, f64)> = Vec::new();
            let mut e = 0usize;
            loop {
                e += rng.random_range(40..200);
                if e >= o.days {
                    break;
                }
                episodes.push((e, rng.random_range(3..=12), 0.3 + 0.4 * rng.random::<f64>()));
            }
            let mut days = Vec::with_capacity(o.days);
            let mut workovers = Vec::new();
            let mut fail_days = Vec::new();
            for d in 0..o.days {
                // Severity of wear now (0 healthy … 1 at failure) and whether down.
                let mut severity = 0.0;
                let mut down = false;
                for (fd, pre, _, dn) in &failures {
                    if d >= *fd && d <= fd + dn {
                        down = true;
                    }
                    if *pre > 0 && d < *fd && d + pre >= *fd {
                        let x = 1.0 - (*fd - d) as f64 / *pre as f64;
                        severity = f64::max(severity, x.powf(1.5));
                    }
                }
                let mut benign = 0.0;
                for (s, len, mag) in &episodes {
                    if d >= *s && d < s + len {
                        benign = *mag;
                    }
                }
                if down {
                    days.push(DailyRollup {
                        runtime_hr: Some(0.0),
                        ..DailyRollup::default()
                    });
                    continue;
                }
                let mut n = |sd: f64| sd * noise.sample(&mut rng);
                let decline = d as f64 / 365.0 * 4.0;
                let mut r = DailyRollup::default();
                match lift {
                    Lift::RodPump => {
                        r.fillage_pct = Some(
                            (lv.fillage - decline - 28.0 * severity - 10.0 * benign + n(2.5))
                                .clamp(5.0, 100.0),
                        );
                        r.load_range_lbf = Some(
                            lv.load * (1.0 + 0.16 * severity + 0.03 * benign)
                                + n(lv.load * (0.02 + 0.10 * severity)),
                        );
                        r.motor_current_a = Some(lv.current * (1.0 + 0.04 * severity) + n(1.0));
                        r.cycles = Some(
                            (lv.cycles * (1.0 + 1.0 * severity + 0.4 * benign) + n(1.5)).max(0.0),
                        );
                    }
                    Lift::Esp => {
                        r.motor_current_a = Some(
                            lv.current * (1.0 + 0.20 * severity - 0.08 * benign)
                                + n(0.8 + 2.0 * severity),
                        );
                        r.cycles = Some(
                            (lv.cycles + 3.0 * severity + 1.0 * benign + n(0.5))
                                .max(0.0)
                                .round(),
                        );
                    }
                    Lift::PlungerLift => {
                        r.cycles = Some(
                            (lv.cycles * (1.0 - 0.45 * severity - 0.2 * benign) + n(2.0)).max(0.0),
                        );
                    }
                }
                r.runtime_hr =
                    Some((lv.runtime - 4.5 * severity - 3.0 * benign + n(0.8)).clamp(0.0, 24.0));
                // Missing rollups (communications, a device swapped).
                for v in [
                    &mut r.fillage_pct,
                    &mut r.load_range_lbf,
                    &mut r.motor_current_a,
                    &mut r.runtime_hr,
                    &mut r.cycles,
                ] {
                    if rng.random::<f64>() < 0.03 {
                        *v = None;
                    }
                }
                days.push(r);
            }
            for (fd, _, sudden, dn) in &failures {
                let day = o.start + chrono::Days::new(*fd as u64);
                fail_days.push(day);
                workovers.push(o.start + chrono::Days::new((fd + dn + 1) as u64));
                schedule.insert((name.clone(), day), !sudden);
            }
            wells.push(WellHistory {
                well: name,
                lift,
                start: o.start,
                days,
                workovers,
                failures: fail_days,
                age_at_start: Some(age0),
            });
        }
        WearFleet { wells, schedule }
    }

    /// Whether the failure of `well` on `day` wore in (had a precursor).
    pub fn precursor(&self, well: &str, day: NaiveDate) -> bool {
        self.schedule
            .get(&(well.to_owned(), day))
            .copied()
            .unwrap_or(false)
    }

    /// Splits wells into (training, held out): every well whose index falls in the held-out
    /// share, spread evenly over the fleet.
    pub fn split(&self, held_out: f64) -> (Vec<WellHistory>, Vec<WellHistory>) {
        let every = (1.0 / held_out.clamp(0.01, 1.0)).round().max(1.0) as usize;
        let mut train = Vec::new();
        let mut test = Vec::new();
        for (i, w) in self.wells.iter().enumerate() {
            if i % every == every - 1 {
                test.push(w.clone());
            } else {
                train.push(w.clone());
            }
        }
        (train, test)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_failures_are_down_then_repaired() {
        let o = WearOptions {
            wells: 20,
            days: 200,
            ..WearOptions::default()
        };
        let a = WearFleet::generate(&o);
        assert_eq!(a, WearFleet::generate(&o));
        let failures: usize = a.wells.iter().map(|w| w.failures.len()).sum();
        assert!(failures > 5, "{failures}");
        for w in &a.wells {
            assert_eq!(w.failures.len(), w.workovers.len());
            for (f, r) in w.failures.iter().zip(&w.workovers) {
                assert!(r > f);
                let i = (*f - w.start).num_days() as usize;
                assert_eq!(w.days[i].runtime_hr, Some(0.0), "down on the failure day");
            }
        }
    }
}
