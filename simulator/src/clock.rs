//! Simulated time.
//!
//! `sim(w) = origin + (w − origin)·scale` for wall-clock UTC ms `w`. With `scale = 1`
//! simulated time *is* wall-clock time, whatever the origin, so two simulators with the same
//! seed serve the same values at the same instant. Values are functions of the simulated
//! **second** (`⌊sim/1000⌋·1000`): every read inside one simulated second sees the same
//! value.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::model::params::SimMs;

/// Wall-clock UTC milliseconds now.
pub fn now_ms() -> i64 {
    system_time_ms(SystemTime::now())
}

/// UTC milliseconds of a `SystemTime` (negative before 1970).
pub(crate) fn system_time_ms(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_millis() as i64,
        Err(e) => -(e.duration().as_millis() as i64),
    }
}

/// Mapping between wall-clock and simulated time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct SimClock {
    /// Wall-clock ms at which simulated time equals wall-clock time.
    pub origin_ms: i64,
    /// Simulated ms per wall-clock ms.
    pub scale: f64,
}

impl SimClock {
    /// Simulated ms at wall-clock ms `wall`.
    pub fn sim_ms(&self, wall: i64) -> SimMs {
        if self.scale == 1.0 {
            return wall;
        }
        self.origin_ms + ((wall - self.origin_ms) as f64 * self.scale).floor() as i64
    }

    /// Wall-clock ms at simulated ms `sim` (inverse of [`SimClock::sim_ms`] up to rounding).
    pub fn wall_ms(&self, sim: SimMs) -> i64 {
        if self.scale == 1.0 {
            return sim;
        }
        self.origin_ms + ((sim - self.origin_ms) as f64 / self.scale).round() as i64
    }

    /// The simulated second (as ms) containing wall-clock ms `wall`.
    pub fn sim_second(&self, wall: i64) -> SimMs {
        let s = self.sim_ms(wall);
        s - s.rem_euclid(1000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_scale_is_identity() {
        let c = SimClock {
            origin_ms: 123,
            scale: 1.0,
        };
        assert_eq!(c.sim_ms(1_800_000_000_500), 1_800_000_000_500);
        assert_eq!(c.sim_second(1_800_000_000_500), 1_800_000_000_000);
    }

    #[test]
    fn scaled_clock_runs_faster_from_origin() {
        let c = SimClock {
            origin_ms: 1_000_000,
            scale: 60.0,
        };
        assert_eq!(c.sim_ms(1_000_000), 1_000_000);
        assert_eq!(c.sim_ms(1_001_000), 1_060_000);
        assert_eq!(c.wall_ms(1_060_000), 1_001_000);
        assert_eq!(c.sim_second(1_000_010), 1_000_000);
    }

    #[test]
    fn pre_epoch_times_are_negative() {
        let t = UNIX_EPOCH - std::time::Duration::from_millis(1500);
        assert_eq!(system_time_ms(t), -1500);
    }
}
