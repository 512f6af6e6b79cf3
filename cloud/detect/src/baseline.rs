//! Robust streaming baselines: the building block of every per-series detector.
//!
//! # Design
//!
//! A [`Baseline`] tracks a level (EWMA) and a spread (EWMA of absolute deviations, a
//! streaming MAD; `σ ≈ 1.4826 · MAD`). It is O(1) in memory once warm:
//!
//! * **Warm-up.** The first `warmup` values are kept and the baseline starts from their
//!   median and MAD, so one early outlier cannot seed it.
//! * **Huber-clipped updates.** A residual is clipped to `±HUBER_K · σ` before it moves the
//!   level or the spread, so outliers do not drag the baseline; a value already scored as
//!   anomalous moves it ten times slower still, so a persistent shift is learnt (a new
//!   regime) but over hours of samples, not minutes.
//! * **Scale floor.** `σ` never falls below `max(REL_FLOOR · |level|, resolution, ε)`:
//!   deadbanded or quantised data (a steady value re-sent on heartbeat) has a MAD of zero,
//!   and a z-score against zero is meaningless. `resolution` is the smallest non-zero step
//!   the series has shown (its register quantum); `REL_FLOOR` is small (0.1 %) because the
//!   series scores also floor σ by the typical sample-to-sample step
//!   ([`crate::series::SeriesState::score`]), ≈ σ for white noise and ≈ the deadband for
//!   report-by-exception data.
//!
//! [`Seasonal`] keeps one small baseline per UTC hour of day and says whether it explains
//! the series better than the global baseline (compared by the EWMA of absolute one-step
//! errors of both, measured before each update).
//!
//! *Invariant:* non-finite input is ignored by the callers; nothing here can become NaN
//! from finite input (divisions are by floored scales).

use serde::{Deserialize, Serialize};

/// Residual clip, in σ.
pub const HUBER_K: f64 = 3.0;
/// EWMA weight of a new value (level and spread): a memory of ~100 samples.
pub const ALPHA: f64 = 0.02;
/// Scale floor relative to the level.
pub const REL_FLOOR: f64 = 0.001;
/// Absolute scale floor.
pub const EPSILON: f64 = 1e-9;
/// MAD → σ of a normal distribution.
pub const MAD_TO_SIGMA: f64 = 1.4826;

/// Median of `values` (which it sorts); 0 for none.
pub fn median(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        0.5 * (values[n / 2 - 1] + values[n / 2])
    }
}

/// A robust level and spread of one series.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Baseline {
    /// Values collected during warm-up (emptied once warm).
    #[serde(default)]
    pub warm: Vec<f64>,
    /// Level (None until warm).
    #[serde(default)]
    pub level: Option<f64>,
    /// EWMA of absolute deviations (MAD estimate).
    #[serde(default)]
    pub mad: f64,
    /// Smallest non-zero step seen between consecutive values.
    #[serde(default)]
    pub resolution: f64,
    /// Values seen.
    #[serde(default)]
    pub n: u64,
    #[serde(default)]
    last: Option<f64>,
}

impl Baseline {
    /// Whether it may score.
    pub fn is_warm(&self) -> bool {
        self.level.is_some()
    }

    /// The robust σ with its floors (None until warm).
    pub fn scale(&self) -> Option<f64> {
        let level = self.level?;
        Some(
            (MAD_TO_SIGMA * self.mad)
                .max(REL_FLOOR * level.abs())
                .max(self.resolution)
                .max(EPSILON),
        )
    }

    /// Signed robust z-score of `x` (None until warm).
    pub fn z(&self, x: f64) -> Option<f64> {
        let (level, scale) = (self.level?, self.scale()?);
        Some((x - level) / scale)
    }

    /// Learns `x` (finite). `anomalous`: `x` was scored beyond the firing threshold.
    pub fn update(&mut self, x: f64, warmup: u32, anomalous: bool) {
        if !x.is_finite() {
            return;
        }
        if let Some(last) = self.last {
            let step = (x - last).abs();
            // Ignore float noise: a step must be visible at the values' magnitude; and an
            // anomalous jump says nothing about the series' quantum unless it is small
            // (≤ 1 % of the value: the first deadband step of a series steady until then).
            let visible = step > 1e-9 * (x.abs() + last.abs());
            let quantum_like = !anomalous || step <= 0.01 * x.abs().max(last.abs());
            if visible && quantum_like && (self.resolution == 0.0 || step < self.resolution) {
                self.resolution = step;
            }
        }
        self.last = Some(x);
        self.n = self.n.saturating_add(1);
        let Some(level) = self.level else {
            self.warm.push(x);
            if self.warm.len() >= warmup.max(1) as usize {
                let mut values = std::mem::take(&mut self.warm);
                let m = median(&mut values);
                let mut devs: Vec<f64> = values.iter().map(|v| (v - m).abs()).collect();
                let mad = median(&mut devs);
                self.mad = if mad.is_finite() { mad } else { f64::MAX / 4.0 };
                self.level = Some(m);
            }
            return;
        };
        let scale = self.scale().unwrap_or(EPSILON);
        let residual = (x - level).clamp(-HUBER_K * scale, HUBER_K * scale);
        let alpha = if anomalous { ALPHA * 0.1 } else { ALPHA };
        let (new_level, new_mad) = (
            level + alpha * residual,
            self.mad + alpha * (residual.abs() - self.mad),
        );
        // Values near f64::MAX can overflow the arithmetic: such an update is skipped.
        if new_level.is_finite() && new_mad.is_finite() {
            self.level = Some(new_level);
            self.mad = new_mad;
        }
    }
}

/// Hour-of-day baselines.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Seasonal {
    /// One per UTC hour (empty until the first value).
    #[serde(default)]
    pub hours: Vec<Baseline>,
    /// EWMA of |x − global level| (one-step error of the global baseline).
    #[serde(default)]
    pub global_err: f64,
    /// EWMA of |x − hour level| (one-step error of the seasonal baseline).
    #[serde(default)]
    pub seasonal_err: f64,
    /// Values compared.
    #[serde(default)]
    pub compared: u64,
}

/// Hour of day (UTC) of `ts_ms`.
pub fn hour_of_day(ts_ms: i64) -> usize {
    (ts_ms.div_euclid(3_600_000).rem_euclid(24)) as usize
}

impl Seasonal {
    /// Nothing learnt yet.
    pub fn is_empty(&self) -> bool {
        self.hours.is_empty()
    }

    /// The baseline of `ts_ms`'s hour, if it should be used instead of the global one:
    /// every hour warm and the seasonal errors clearly smaller (by 20 %).
    pub fn active(&self, ts_ms: i64, warmup: u32) -> Option<&Baseline> {
        if self.hours.len() != 24 || self.hours.iter().any(|b| !b.is_warm()) {
            return None;
        }
        if self.compared < u64::from(warmup) * 24 || self.seasonal_err >= 0.8 * self.global_err {
            return None;
        }
        Some(&self.hours[hour_of_day(ts_ms)])
    }

    /// Learns `x` at `ts_ms`, given the global level before its update.
    pub fn update(
        &mut self,
        ts_ms: i64,
        x: f64,
        global: Option<f64>,
        warmup: u32,
        anomalous: bool,
    ) {
        if self.hours.len() != 24 {
            self.hours = vec![Baseline::default(); 24];
        }
        let hour = &mut self.hours[hour_of_day(ts_ms)];
        if let (Some(g), Some(s)) = (global, hour.level) {
            let ge = self.global_err + ALPHA * ((x - g).abs() - self.global_err);
            let se = self.seasonal_err + ALPHA * ((x - s).abs() - self.seasonal_err);
            if ge.is_finite() && se.is_finite() {
                self.global_err = ge;
                self.seasonal_err = se;
                self.compared = self.compared.saturating_add(1);
            }
        }
        hour.update(x, warmup, anomalous);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noise(i: u64) -> f64 {
        // Deterministic pseudo-noise in [-1, 1].
        let x = i
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((x >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
    }

    #[test]
    fn warms_up_on_the_median_and_scores_outliers() {
        let mut b = Baseline::default();
        for i in 0..200 {
            b.update(100.0 + noise(i), 30, false);
        }
        assert!((b.level.unwrap() - 100.0).abs() < 0.5);
        assert!(b.z(100.5).unwrap().abs() < 3.0);
        assert!(b.z(120.0).unwrap() > 6.0);
    }

    #[test]
    fn outliers_do_not_drag_the_level() {
        let mut b = Baseline::default();
        for i in 0..100 {
            b.update(10.0 + 0.1 * noise(i), 30, false);
        }
        for _ in 0..5 {
            b.update(1e6, 30, true);
        }
        assert!((b.level.unwrap() - 10.0).abs() < 0.2, "{:?}", b.level);
    }

    #[test]
    fn constant_series_has_a_floored_scale() {
        let mut b = Baseline::default();
        for _ in 0..50 {
            b.update(0.0, 30, false);
        }
        assert!(b.scale().unwrap() > 0.0);
        assert!(b.z(0.0).unwrap() == 0.0);
    }

    #[test]
    fn seasonal_takes_over_only_when_it_explains_better() {
        let mut s = Seasonal::default();
        let mut g = Baseline::default();
        for i in 0..(24 * 60 * 4) {
            let ts = i as i64 * 60_000;
            let x = 100.0
                + 50.0 * (hour_of_day(ts) as f64 / 24.0 * std::f64::consts::TAU).sin()
                + noise(i);
            s.update(ts, x, g.level, 30, false);
            g.update(x, 30, false);
        }
        assert!(s.active(0, 30).is_some());
        let mut flat = Seasonal::default();
        let mut g = Baseline::default();
        for i in 0..(24 * 60 * 4) {
            let x = 100.0 + noise(i);
            flat.update(i as i64 * 60_000, x, g.level, 30, false);
            g.update(x, 30, false);
        }
        assert!(flat.active(0, 30).is_none());
    }
}
