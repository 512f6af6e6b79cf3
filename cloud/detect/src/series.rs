//! Per-series streaming state: level and rate baselines, hour-of-day baselines, the frozen
//! value tracker and the quality counters of one metric of one device.
//!
//! # Invariants
//!
//! * O(1) state per series (24 hourly baselines at most), serde with defaults.
//! * Only samples newer than the series' newest move it ([`SeriesState::learn`]); older
//!   ones are only scored ([`SeriesState::score`]).
//! * Non-finite values never reach it (the caller drops them).
//!
//! # Frozen sensors
//!
//! The agent sends deadbanded data with a heartbeat: a steady series legitimately repeats
//! its value. A run of identical values is therefore only suspicious for a series that
//! usually *changes* from one sample to the next (`change_frac`, an EWMA of "differs from
//! the previous sample", frozen while a run lasts so the run cannot erase its own
//! history), that is not a counter or a state, and whose repeated value is not exactly 0
//! (an idle motor or a closed valve reads 0 on purpose). The run must be long enough to be
//! improbable for that series ([`SeriesState::stuck_samples`]) and last [`STUCK_MS`]. A
//! bad reading breaks a run (nothing is known across the gap). Only *noisy* series qualify
//! (their changes reverse direction often, [`NOISY_FLIP_FRAC`]): a smooth series repeats a
//! quantised value for an hour at a daily peak, which minutes of data cannot tell from a
//! frozen one — for those the agent's `stale_after` (quality `Stale`) is the signal.

use serde::{Deserialize, Serialize};

use crate::baseline::{Baseline, Seasonal};

/// Samples of an identical value before a changing series counts as stuck.
pub const STUCK_SAMPLES: u32 = 5;
/// ... spanning at least this long (ms).
pub const STUCK_MS: i64 = 5 * 60_000;
/// Fraction of consecutive samples that change for a series to count as "changing".
pub const CHANGING_FRAC: f64 = 0.8;
/// EWMA weight of the change fraction (a memory of ~20 samples).
const CHANGE_ALPHA: f64 = 0.05;
/// Share of direction reversals above which a series' changes are noise (a smooth or
/// trending series, e.g. a temperature at its daily peak or a filling tank, legitimately
/// holds a quantised value for long and is never called stuck).
pub const NOISY_FLIP_FRAC: f64 = 0.35;
/// Steps in the recent-jitter window.
pub const RECENT_STEPS: usize = 5;
/// Chance, under the series' own change rate, of a run as long as the one flagged.
pub const STUCK_CHANCE: f64 = 1e-5;

/// The score of one value against a series' baselines.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Score {
    /// Signed robust z of the level (None until warm).
    pub z: Option<f64>,
    /// Baseline level used.
    pub level: Option<f64>,
    /// Its scale.
    pub scale: Option<f64>,
    /// Whether the hour-of-day baseline was used.
    pub seasonal: bool,
    /// Signed robust z of the per-second change since the previous sample.
    pub rate_z: Option<f64>,
}

impl Score {
    /// The larger of |z| and |rate z| (0 when cold).
    pub fn magnitude(&self) -> f64 {
        self.z
            .map_or(0.0, f64::abs)
            .max(self.rate_z.map_or(0.0, f64::abs))
    }
}

/// State of one series.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SeriesState {
    /// Level baseline.
    #[serde(default)]
    pub level: Baseline,
    /// Baseline of per-second differences.
    #[serde(default)]
    pub rate: Baseline,
    /// Hour-of-day baselines.
    #[serde(default)]
    pub seasonal: Seasonal,
    /// Baseline of absolute sample-to-sample steps (normal jitter).
    #[serde(default)]
    pub step: Baseline,
    /// The last few signed steps (newest last); the median of their sizes is the recent
    /// jitter, so one jump (a restart) is not "erratic" but steady large steps are.
    #[serde(default)]
    pub recent_steps: Vec<f64>,
    /// Newest sample time.
    #[serde(default)]
    pub last_ts: Option<i64>,
    /// Newest value.
    #[serde(default)]
    pub last_value: Option<f64>,
    /// EWMA of "changed since the previous sample".
    #[serde(default)]
    pub change_frac: f64,
    /// Samples counted in `change_frac`.
    #[serde(default)]
    pub change_n: u64,
    /// Length of the current run of identical values.
    #[serde(default)]
    pub run_len: u32,
    /// Start of that run.
    #[serde(default)]
    pub run_start: i64,
    /// `change_frac` when the run started.
    #[serde(default)]
    pub run_frac: f64,
    /// EWMA of "this change reverses the direction of the previous one": near 0 for a
    /// smooth or trending series, ½ or more for a noisy one.
    #[serde(default)]
    pub flip_frac: f64,
    /// Changes counted in `flip_frac`.
    #[serde(default)]
    pub flip_n: u64,
    /// Direction of the last change (−1, 0, 1).
    #[serde(default)]
    pub last_sign: i8,
    /// Quality of the newest sample (wire code).
    #[serde(default)]
    pub quality: u8,
    /// The newest sample was flagged stale by the agent.
    #[serde(default)]
    pub stale: bool,
}

impl SeriesState {
    /// Scores `x` at `ts` without learning it.
    pub fn score(&self, ts: i64, x: f64, warmup: u32) -> Score {
        let (base, seasonal) = match self.seasonal.active(ts, warmup) {
            Some(b) => (b, true),
            None => (&self.level, false),
        };
        let rate_z = match (self.last_ts, self.last_value) {
            (Some(t0), Some(x0)) if ts > t0 => {
                // A step of a few quanta (resolution, or 0.1 % of the level) within one
                // sample is never a rate anomaly, whatever the learnt spread of rates.
                let dt = (ts - t0) as f64 / 1000.0;
                let quantum = self
                    .level
                    .resolution
                    .max(crate::baseline::REL_FLOOR * self.level.level.unwrap_or(x0).abs());
                let r = (x - x0) / dt;
                match (self.rate.level, self.rate.scale()) {
                    (Some(l), Some(sc)) => Some((r - l) / sc.max(2.0 * quantum / dt)),
                    _ => None,
                }
            }
            _ => None,
        };
        // The typical step between consecutive samples floors the scale too: ≈ σ for
        // white noise, ≈ the deadband for report-by-exception data.
        let scale = base.scale().map(|s| s.max(self.step.level.unwrap_or(0.0)));
        let z = match (base.level, scale) {
            (Some(l), Some(s)) => Some((x - l) / s),
            _ => None,
        };
        Score {
            z,
            level: base.level,
            scale,
            seasonal,
            rate_z,
        }
    }

    /// Learns `x` at `ts` (newer than `last_ts`), `anomalous` as scored, hour-of-day
    /// baselines included.
    pub fn learn(&mut self, ts: i64, x: f64, warmup: u32, anomalous: bool) {
        self.learn_with(ts, x, warmup, anomalous, true);
    }

    /// [`SeriesState::learn`], with the hour-of-day baselines only if `seasonal` (they
    /// are most of a series' state: kept only for series whose level is judged).
    pub fn learn_with(&mut self, ts: i64, x: f64, warmup: u32, anomalous: bool, seasonal: bool) {
        if let (Some(t0), Some(x0)) = (self.last_ts, self.last_value)
            && ts > t0
        {
            let dt = (ts - t0) as f64 / 1000.0;
            self.rate.update((x - x0) / dt, warmup, anomalous);
            let step = (x - x0).abs();
            self.step.update(step, warmup, false);
            if self.recent_steps.len() >= RECENT_STEPS {
                self.recent_steps.remove(0);
            }
            self.recent_steps.push(x - x0);
            let changed = x != x0;
            if changed {
                let sign: i8 = if x > x0 { 1 } else { -1 };
                if self.last_sign != 0 {
                    let flip = f64::from(u8::from(sign != self.last_sign));
                    self.flip_frac += CHANGE_ALPHA * (flip - self.flip_frac);
                    self.flip_n = self.flip_n.saturating_add(1);
                }
                self.last_sign = sign;
            }
            if changed || self.run_len == 0 {
                self.run_len = 1;
                self.run_start = ts;
                self.run_frac = self.change_frac;
            } else {
                self.run_len = self.run_len.saturating_add(1);
            }
            if self.run_len <= STUCK_SAMPLES {
                self.change_frac +=
                    CHANGE_ALPHA * (f64::from(u8::from(changed)) - self.change_frac);
                self.change_n = self.change_n.saturating_add(1);
            }
        } else if self.last_ts.is_none() {
            self.run_len = 1;
            self.run_start = ts;
        }
        if seasonal {
            self.seasonal
                .update(ts, x, self.level.level, warmup, anomalous);
        }
        self.level.update(x, warmup, anomalous);
        self.last_ts = Some(ts);
        self.last_value = Some(x);
    }

    /// A changing series repeating one non-zero value for long enough.
    pub fn stuck(&self, warmup: u32) -> bool {
        let Some(ts) = self.last_ts else { return false };
        let value = self.last_value.unwrap_or(0.0);
        self.change_n >= u64::from(warmup)
            && self.flip_n >= u64::from(warmup)
            && self.flip_frac >= NOISY_FLIP_FRAC
            && self.run_frac >= CHANGING_FRAC
            && f64::from(self.run_len) >= self.stuck_samples()
            && ts - self.run_start >= STUCK_MS
            && value != 0.0
    }

    /// Run length flagged as stuck: at least [`STUCK_SAMPLES`], and long enough that a
    /// series changing with its historical frequency `p` repeats that long by chance
    /// (`(1 − p)^(n−1)`) less than [`STUCK_CHANCE`].
    pub fn stuck_samples(&self) -> f64 {
        let repeat = (1.0 - self.run_frac).clamp(0.01, 0.99);
        (1.0 + STUCK_CHANCE.ln() / repeat.ln())
            .ceil()
            .max(f64::from(STUCK_SAMPLES))
    }

    /// Median size of the recent steps (0 with none).
    pub fn jitter(&self) -> f64 {
        let mut v: Vec<f64> = self.recent_steps.iter().map(|d| d.abs()).collect();
        crate::baseline::median(&mut v)
    }

    /// Direction reversals among the recent non-zero steps.
    pub fn reversals(&self) -> usize {
        let signs: Vec<bool> = self
            .recent_steps
            .iter()
            .filter(|d| **d != 0.0)
            .map(|d| *d > 0.0)
            .collect();
        signs.windows(2).filter(|w| w[0] != w[1]).count()
    }

    /// Erratic: recent steps of at least `min_step` (median) that are either far above the
    /// series' normal steps or keep reversing direction (≥ 2 reversals: a fluctuation, not
    /// a ramp); with the jitter's ratio to `min_step`.
    pub fn erratic(&self, min_step: f64) -> Option<f64> {
        let normal = self.step.level?;
        let scale = self.step.scale()?;
        if self.recent_steps.len() < RECENT_STEPS {
            return None;
        }
        let jitter = self.jitter();
        let big = jitter > normal + 6.0 * scale;
        let wobbling = self.reversals() >= 2;
        (jitter > min_step && (big || wobbling)).then_some(jitter / min_step.max(f64::EPSILON))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changing_series_that_repeats_is_stuck_a_steady_one_is_not() {
        let mut s = SeriesState::default();
        for i in 0..60 {
            s.learn(i * 10_000, 100.0 + ((i * 5) % 7) as f64, 30, false);
        }
        assert!(!s.stuck(30));
        for i in 60..100 {
            s.learn(i * 60_000, 42.0, 30, false);
        }
        assert!(s.stuck(30));

        let mut steady = SeriesState::default();
        for i in 0..200 {
            steady.learn(i * 60_000, 5.0, 30, false);
        }
        assert!(!steady.stuck(30));
    }

    #[test]
    fn erratic_jitter_is_recognised() {
        let mut s = SeriesState::default();
        for i in 0..100 {
            s.learn(i * 10_000, 50.0 + 0.1 * ((i % 3) as f64), 30, false);
        }
        assert!(s.erratic(1.0).is_none());
        for i in 100..110 {
            s.learn(i * 10_000, if i % 2 == 0 { 30.0 } else { 45.0 }, 30, false);
        }
        assert!(s.erratic(1.0).is_some());
    }
}
