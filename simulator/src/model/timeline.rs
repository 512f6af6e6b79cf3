//! The mutable part of a well's history, and exact integration over it.
//!
//! A well's state at time *t* is a pure function of its seeded parameters and two lists:
//!
//! * failure **windows** `[start, end)` (scheduled from the seed, or injected), and
//! * setpoint **writes** `(device, tag, at, value)` made by Modbus clients.
//!
//! Both lists only ever contain entries at or after the simulator's clock origin, so the
//! history before it is the undisturbed model. Running totals (strokes, run time, produced
//! volumes) are integrated in closed form: the interval `[online, t]` is cut at every
//! window boundary and write time, and on each piece the regime is constant, so each piece
//! is integrated analytically. The number of pieces is the number of events, not the
//! length of the interval, which keeps a read cheap however old the well is.
//!
//! Run patterns of a pump inside a piece:
//!
//! * `Continuous`: running all the time; `Stopped`: never.
//! * `Duty { anchor, period, on }`: pump-off control — runs `on` ms, idles `period − on` ms,
//!   phase anchored at the start of the pump-off condition. Running time from the anchor to
//!   `x` is `F(x) = ⌊x/P⌋·on + min(x mod P, on)`.
//! * `RunUntil { stop }`: runs until the controller trips at `stop` (rod part, broken
//!   shaft), then stays down.

use crate::fault::{Failure, FailureSource};

use super::params::{MINUTE_MS, SimMs};

/// One failure window on one device of a well.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Window {
    /// Index of the device within its well.
    pub device: usize,
    pub failure: Failure,
    pub start: SimMs,
    pub end: SimMs,
    /// Tag index frozen by [`Failure::SensorFrozen`].
    pub frozen_tag: Option<usize>,
    pub source: FailureSource,
}

impl Window {
    pub fn active(&self, t: SimMs) -> bool {
        self.start <= t && t < self.end
    }
}

/// A setpoint (or any writable tag) written by a client.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Write {
    pub device: usize,
    pub tag: usize,
    pub at: SimMs,
    /// Engineering value written.
    pub value: f64,
}

/// Failure windows and writes of one well. `generation` changes on every mutation so that
/// cached register images can be invalidated.
#[derive(Debug, Default)]
pub(crate) struct WellHistory {
    pub windows: Vec<Window>,
    pub writes: Vec<Write>,
    pub generation: u64,
}

impl WellHistory {
    /// The value last written to `(device, tag)` at or before `t`, if any.
    pub fn written(&self, device: usize, tag: usize, t: SimMs) -> Option<Write> {
        self.writes
            .iter()
            .filter(|w| w.device == device && w.tag == tag && w.at <= t)
            .max_by_key(|w| w.at)
            .copied()
    }

    /// Writes to `(device, tag)` strictly inside `(a, b)`, as time cut points.
    pub fn write_times(&self, device: usize, tag: usize, a: SimMs, b: SimMs) -> Vec<SimMs> {
        self.writes
            .iter()
            .filter(|w| w.device == device && w.tag == tag && a < w.at && w.at < b)
            .map(|w| w.at)
            .collect()
    }

    /// Windows of `device` active at `t`.
    pub fn active_on(&self, device: usize, t: SimMs) -> impl Iterator<Item = &Window> {
        self.windows
            .iter()
            .filter(move |w| w.device == device && w.active(t))
    }

    /// The physical (process) failure of `device` active at `t`, by severity.
    pub fn physical_on(&self, device: usize, t: SimMs) -> Option<&Window> {
        self.active_on(device, t)
            .filter(|w| w.failure.is_physical())
            .max_by_key(|w| severity(&w.failure))
    }
}

fn severity(f: &Failure) -> u8 {
    match f {
        Failure::RodPart => 3,
        Failure::GasLock => 2,
        Failure::PumpOff => 1,
        _ => 0,
    }
}

/// Sorted unique cut points strictly inside `(a, b)`, with `a` and `b` at the ends.
pub(crate) fn pieces(a: SimMs, b: SimMs, mut cuts: Vec<SimMs>) -> Vec<SimMs> {
    cuts.retain(|c| a < *c && *c < b);
    cuts.push(a);
    cuts.push(b);
    cuts.sort_unstable();
    cuts.dedup();
    cuts
}

/// How a pump runs over a piece of time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum RunPattern {
    Continuous,
    Stopped,
    Duty { anchor: SimMs, period: i64, on: i64 },
    RunUntil { stop: SimMs },
}

impl RunPattern {
    /// Whether the pump runs at `t`.
    pub fn running(&self, t: SimMs) -> bool {
        match *self {
            RunPattern::Continuous => true,
            RunPattern::Stopped => false,
            RunPattern::Duty { anchor, period, on } => (t - anchor).rem_euclid(period) < on,
            RunPattern::RunUntil { stop } => t < stop,
        }
    }

    /// Milliseconds of running time inside `[a, b]` (`a <= b`).
    pub fn running_ms(&self, a: SimMs, b: SimMs) -> i64 {
        match *self {
            RunPattern::Continuous => b - a,
            RunPattern::Stopped => 0,
            RunPattern::Duty { anchor, period, on } => {
                let f = |x: i64| {
                    let x = x - anchor;
                    x.div_euclid(period) * on + x.rem_euclid(period).min(on)
                };
                f(b) - f(a)
            }
            RunPattern::RunUntil { stop } => (b.min(stop) - a).max(0),
        }
    }
}

/// Running part of a rod-pump pump-off control cycle (the idle part is a setpoint).
pub(crate) const ROD_POC_ON_MS: i64 = 18 * MINUTE_MS;
/// Underload restart cycle of an ESP: 60 min period, 35 min running.
pub(crate) const ESP_UNDERLOAD_PERIOD_MS: i64 = 60 * MINUTE_MS;
pub(crate) const ESP_UNDERLOAD_ON_MS: i64 = 35 * MINUTE_MS;
/// Time for a controller to detect a rod part (load loss) / broken shaft and trip.
pub(crate) const ROD_PART_TRIP_MS: i64 = 10 * MINUTE_MS;
pub(crate) const ESP_SHAFT_TRIP_MS: i64 = 3 * MINUTE_MS;

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn duty_running_time_counts_whole_and_partial_cycles() {
        let p = RunPattern::Duty {
            anchor: 1000,
            period: 100,
            on: 60,
        };
        assert_eq!(p.running_ms(1000, 1100), 60);
        assert_eq!(p.running_ms(1000, 1250), 60 + 60 + 50);
        assert_eq!(p.running_ms(1070, 1170), 60);
        assert!(p.running(1059) && !p.running(1060) && p.running(1100));
        // Before the anchor the same periodic pattern extends backwards.
        assert_eq!(p.running_ms(900, 1000), 60);
    }

    #[test]
    fn run_until_stops() {
        let p = RunPattern::RunUntil { stop: 500 };
        assert_eq!(p.running_ms(0, 400), 400);
        assert_eq!(p.running_ms(400, 900), 100);
        assert_eq!(p.running_ms(600, 900), 0);
        assert!(p.running(499) && !p.running(500));
    }

    #[test]
    fn pieces_sorts_and_clips() {
        assert_eq!(
            pieces(10, 20, vec![15, 5, 25, 12, 15]),
            vec![10, 12, 15, 20]
        );
        assert_eq!(pieces(10, 10, vec![]), vec![10]);
    }

    #[test]
    fn last_write_wins_and_future_writes_are_ignored() {
        let mut h = WellHistory::default();
        for (at, value) in [(100, 1.0), (300, 3.0), (200, 2.0)] {
            h.writes.push(Write {
                device: 0,
                tag: 4,
                at,
                value,
            });
        }
        assert_eq!(h.written(0, 4, 99), None);
        assert_eq!(h.written(0, 4, 250).map(|w| w.value), Some(2.0));
        assert_eq!(h.written(0, 4, 300).map(|w| w.value), Some(3.0));
        assert_eq!(h.written(1, 4, 300), None);
        assert_eq!(h.write_times(0, 4, 100, 300), vec![200]);
    }

    proptest! {
        #[test]
        fn duty_running_time_is_additive_and_matches_sampling(
            anchor in -10_000i64..10_000, period in 2i64..500, on_frac in 0.0..1.0f64,
            a in -5_000i64..5_000, len in 0i64..3_000, split in 0.0..1.0f64) {
            let on = ((period as f64) * on_frac) as i64;
            let p = RunPattern::Duty { anchor, period, on };
            let b = a + len;
            let m = a + (len as f64 * split) as i64;
            prop_assert_eq!(p.running_ms(a, b), p.running_ms(a, m) + p.running_ms(m, b));
            let sampled = (a..b).filter(|t| p.running(*t)).count() as i64;
            prop_assert_eq!(p.running_ms(a, b), sampled);
        }
    }
}
