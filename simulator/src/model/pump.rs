//! Operating regime of pumped lift equipment (rod pumps and ESPs) and exact run-time
//! integrals.
//!
//! # Regime at time t (first match wins)
//!
//! 1. `Stopped` — a client wrote 0 to the `pump_run_command` coil (state 0).
//! 2. A process failure window on the device: `RodPart` (runs until the controller trips
//!    on load loss / underload — 10 min for a rod pump, 3 min for an ESP — then state 3),
//!    `GasLock` (keeps running), `PumpOff` (duty cycle, below).
//! 3. `Poc` (rod pumps) — the fillage the pump achieves at its current speed is below the
//!    written `pump_fillage_setpoint_pct`, so the pump-off controller cycles the pump.
//! 4. `Normal` — running continuously.
//!
//! Duty cycles (`PumpOff`, `Poc`): a rod pump runs 18 min and idles for
//! `pump_idle_time_setpoint_min` (default 12 min); an ESP on underload runs 35 min and
//! waits 25 min to restart. The phase is anchored at the latest event of the device
//! (failure start/end or client write) at or before t — a controller restarts its cycle
//! after a setting change.
//!
//! # Production multipliers (liquid, gas)
//!
//! Normal 1 / 1 · Poc 0.9 / 0.98 · PumpOff 0.75 / 0.95 · RodPart 0 / 0.35 (casing-head gas
//! keeps flowing) · GasLock 0.15 / 0.6 · Stopped 0 / 0.35. A shut-in valve closed by a
//! client (`valve_open` coil of the flow computer written 0) stops everything (0 / 0).
//!
//! # Integrals
//!
//! Strokes, run hours, energy and starts are integrated exactly over pieces cut at every
//! event of the device; inside a piece the regime and the setpoints are constant and the
//! run pattern is integrated in closed form ([`RunPattern::running_ms`]). Starts are the
//! off→on transitions: the duty-cycle restarts inside a piece
//! (`⌊(b−anchor)/P⌋ − ⌊(a−anchor)/P⌋`) plus the piece boundaries where a stopped pump
//! starts again.

use super::Eval;
use super::Role;
use super::params::{MINUTE_MS, SimMs};
use super::timeline::{
    ESP_SHAFT_TRIP_MS, ESP_UNDERLOAD_ON_MS, ESP_UNDERLOAD_PERIOD_MS, ROD_PART_TRIP_MS,
    ROD_POC_ON_MS, RunPattern, pieces,
};
use crate::fault::Failure;

/// Default idle time of a rod-pump POC after a pump-off, minutes.
pub(crate) const DEFAULT_IDLE_MIN: f64 = 12.0;
/// Default pump-off fillage setpoint, percent.
pub(crate) const DEFAULT_FILLAGE_SETPOINT_PCT: f64 = 75.0;

/// What a pumped lift device is doing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Regime {
    Normal,
    Poc,
    PumpOff,
    RodPart { start: SimMs },
    GasLock { start: SimMs },
    Stopped { since: SimMs },
}

impl Regime {
    /// Liquid and gas rate multipliers.
    pub fn multipliers(self) -> (f64, f64) {
        match self {
            Regime::Normal => (1.0, 1.0),
            Regime::Poc => (0.9, 0.98),
            Regime::PumpOff => (0.75, 0.95),
            Regime::RodPart { .. } => (0.0, 0.35),
            Regime::GasLock { .. } => (0.15, 0.6),
            Regime::Stopped { .. } => (0.0, 0.35),
        }
    }
}

/// Regime and run pattern of a lift device at a time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct LiftState {
    pub regime: Regime,
    pub pattern: RunPattern,
}

impl Eval<'_> {
    /// Event times of device `dev` (failure window boundaries, client writes).
    fn device_events(&self, dev: usize) -> impl Iterator<Item = SimMs> + '_ {
        let windows = self
            .h
            .windows
            .iter()
            .filter(move |w| w.device == dev && w.failure.is_physical())
            .flat_map(|w| [w.start, w.end]);
        let writes = self
            .h
            .writes
            .iter()
            .filter(move |w| w.device == dev)
            .map(|w| w.at);
        windows.chain(writes)
    }

    /// Latest event of `dev` at or before `t` (first production if none).
    fn anchor(&self, dev: usize, t: SimMs) -> SimMs {
        self.device_events(dev)
            .filter(|e| *e <= t)
            .max()
            .unwrap_or(self.p.online_ms)
            .max(self.p.online_ms)
    }

    /// Pieces `[a, b]` cut at every event of `dev`.
    pub(crate) fn device_pieces(&self, dev: usize, a: SimMs, b: SimMs) -> Vec<SimMs> {
        pieces(a, b, self.device_events(dev).collect())
    }

    /// Whether the run command of `dev` is on at `t`, and since when it is off.
    fn stopped_since(&self, dev: usize, t: SimMs) -> Option<SimMs> {
        let tag = self.devices[dev].metric_tags.get("pump_run_command")?;
        self.h
            .written(dev, *tag, t)
            .filter(|w| w.value == 0.0)
            .map(|w| w.at)
    }

    /// Pump-off duty cycle of `dev` anchored at `anchor`.
    fn duty(&self, dev: usize, t: SimMs, anchor: SimMs) -> RunPattern {
        if self.devices[dev].role == Role::Esp {
            return RunPattern::Duty {
                anchor,
                period: ESP_UNDERLOAD_PERIOD_MS,
                on: ESP_UNDERLOAD_ON_MS,
            };
        }
        let idle = self.setpoint(dev, "pump_idle_time_setpoint_min", t, DEFAULT_IDLE_MIN);
        RunPattern::Duty {
            anchor,
            period: ROD_POC_ON_MS + (idle * MINUTE_MS as f64) as i64,
            on: ROD_POC_ON_MS,
        }
    }

    /// Regime and run pattern of lift device `dev` at `t`.
    pub(crate) fn lift_state(&self, dev: usize, t: SimMs) -> LiftState {
        if let Some(since) = self.stopped_since(dev, t) {
            return LiftState {
                regime: Regime::Stopped { since },
                pattern: RunPattern::Stopped,
            };
        }
        let esp = self.devices[dev].role == Role::Esp;
        match self.h.physical_on(dev, t).map(|w| (w.failure, w.start)) {
            Some((Failure::RodPart, start)) => LiftState {
                regime: Regime::RodPart { start },
                pattern: RunPattern::RunUntil {
                    stop: start
                        + if esp {
                            ESP_SHAFT_TRIP_MS
                        } else {
                            ROD_PART_TRIP_MS
                        },
                },
            },
            Some((Failure::GasLock, start)) => LiftState {
                regime: Regime::GasLock { start },
                pattern: RunPattern::Continuous,
            },
            Some(_) => LiftState {
                regime: Regime::PumpOff,
                pattern: self.duty(dev, t, self.anchor(dev, t)),
            },
            None if !esp && self.normal_fillage(dev, t) * 100.0 < self.fillage_setpoint(dev, t) => {
                LiftState {
                    regime: Regime::Poc,
                    pattern: self.duty(dev, t, self.anchor(dev, t)),
                }
            }
            None => LiftState {
                regime: Regime::Normal,
                pattern: RunPattern::Continuous,
            },
        }
    }

    /// Fillage (fraction) a rod pump achieves at its current speed with nothing wrong:
    /// `min(1, f₀·N₀/N)`.
    pub(crate) fn normal_fillage(&self, dev: usize, t: SimMs) -> f64 {
        (self.p.fillage_base * self.p.spm / self.spm_at(dev, t).max(0.1)).min(1.0)
    }

    pub(crate) fn fillage_setpoint(&self, dev: usize, t: SimMs) -> f64 {
        self.setpoint(
            dev,
            "pump_fillage_setpoint_pct",
            t,
            DEFAULT_FILLAGE_SETPOINT_PCT,
        )
    }

    /// Rod pump speed setpoint at `t`, spm.
    pub(crate) fn spm_at(&self, dev: usize, t: SimMs) -> f64 {
        self.setpoint(dev, "strokes_per_minute_setpoint", t, self.p.spm)
    }

    /// Whether lift device `dev` runs at the evaluation time.
    pub(crate) fn running(&self, dev: usize) -> bool {
        self.lift_state(dev, self.t).pattern.running(self.t)
    }

    /// Pump state code: 0 stopped, 1 running, 2 pumped-off idle, 3 fault.
    pub(crate) fn pump_state_code(&self, dev: usize) -> f64 {
        let state = self.lift_state(dev, self.t);
        match state.regime {
            Regime::Stopped { .. } => 0.0,
            _ if state.pattern.running(self.t) => 1.0,
            Regime::RodPart { .. } => 3.0,
            _ => 2.0,
        }
    }

    /// `(running ms, Σ weight·running ms)` of `dev` over `[a, b]`, `weight` evaluated at the
    /// start of each piece (it must be constant between events).
    pub(crate) fn run_integral(
        &self,
        dev: usize,
        a: SimMs,
        b: SimMs,
        weight: impl Fn(SimMs, Regime) -> f64,
    ) -> (f64, f64) {
        if b <= a {
            return (0.0, 0.0);
        }
        let (mut run, mut weighted) = (0.0, 0.0);
        for piece in self.device_pieces(dev, a, b).windows(2) {
            let state = self.lift_state(dev, piece[0]);
            let ms = state.pattern.running_ms(piece[0], piece[1]) as f64;
            run += ms;
            if ms > 0.0 {
                weighted += ms * weight(piece[0], state.regime);
            }
        }
        (run, weighted)
    }

    /// Running hours of `dev` in `[a, b]`.
    pub(crate) fn run_hours(&self, dev: usize, a: SimMs, b: SimMs) -> f64 {
        self.run_integral(dev, a.max(self.p.online_ms), b, |_, _| 0.0)
            .0
            / 3_600_000.0
    }

    /// Number of starts (off → on transitions) of `dev` in `(a, b]`.
    pub(crate) fn starts(&self, dev: usize, a: SimMs, b: SimMs) -> u64 {
        if b <= a {
            return 0;
        }
        let mut count = 0;
        for piece in self.device_pieces(dev, a, b).windows(2) {
            let pattern = self.lift_state(dev, piece[0]).pattern;
            if let RunPattern::Duty { anchor, period, on } = pattern
                && on > 0
            {
                let k = |x: SimMs| (x - anchor).div_euclid(period);
                count += (k(piece[1]) - k(piece[0])).max(0) as u64;
            }
            let before = self.lift_state(dev, piece[0] - 1).pattern;
            if piece[0] > a && pattern.running(piece[0]) && !before.running(piece[0] - 1) {
                count += 1;
            }
        }
        count
    }

    /// Production multipliers of the well at `t` from its lift equipment and shut-in valve.
    pub(crate) fn lift_multipliers(&self, t: SimMs) -> (f64, f64) {
        let mut m = (1.0, 1.0);
        for (dev, info) in self.devices.iter().enumerate() {
            match info.role {
                Role::RodPump | Role::Esp => {
                    let (l, g) = self.lift_state(dev, t).regime.multipliers();
                    m = (m.0 * l, m.1 * g);
                }
                Role::Plunger => {}
                _ => {
                    let shut = info
                        .metric_tags
                        .get("valve_open")
                        .and_then(|tag| self.h.written(dev, *tag, t))
                        .is_some_and(|w| w.value == 0.0);
                    if shut {
                        m = (0.0, 0.0);
                    }
                }
            }
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fault::FailureSource;
    use crate::model::DeviceInfo;
    use crate::model::params::{DAY_MS, HOUR_MS, Lift, REFERENCE_EPOCH_MS, WellParams};
    use crate::model::testutil::device;
    use crate::model::timeline::{WellHistory, Window, Write};

    const T0: SimMs = REFERENCE_EPOCH_MS + 100 * DAY_MS;

    fn rod() -> (WellParams, Vec<DeviceInfo>) {
        (
            WellParams::draw(21, "well-010", Lift::RodPump),
            vec![device(
                "rpc",
                Role::RodPump,
                &[
                    "pump_run_command",
                    "pump_fillage_setpoint_pct",
                    "strokes_per_minute_setpoint",
                    "pump_idle_time_setpoint_min",
                ],
            )],
        )
    }

    fn eval<'a>(p: &'a WellParams, h: &'a WellHistory, d: &'a [DeviceInfo]) -> Eval<'a> {
        Eval {
            p,
            h,
            devices: d,
            dev: 0,
            t: T0,
        }
    }

    fn write(tag: usize, at: SimMs, value: f64) -> Write {
        Write {
            device: 0,
            tag,
            at,
            value,
        }
    }

    #[test]
    fn run_command_stops_and_restarts() {
        let (p, d) = rod();
        let mut h = WellHistory::default();
        h.writes.push(write(0, T0, 0.0));
        h.writes.push(write(0, T0 + HOUR_MS, 1.0));
        let e = eval(&p, &h, &d);
        assert!(matches!(
            e.lift_state(0, T0 + 1000).regime,
            Regime::Stopped { .. }
        ));
        assert_eq!(e.lift_state(0, T0 + HOUR_MS).regime, Regime::Normal);
        let hours = e.run_hours(0, T0 - HOUR_MS, T0 + 2 * HOUR_MS);
        assert!((hours - 2.0).abs() < 1e-9);
        assert_eq!(e.starts(0, T0 - HOUR_MS, T0 + 2 * HOUR_MS), 1);
        assert_eq!(e.lift_multipliers(T0 + 1000), (0.0, 0.35));
    }

    #[test]
    fn high_fillage_setpoint_makes_the_pump_cycle() {
        let (p, d) = rod();
        let mut h = WellHistory::default();
        h.writes.push(write(1, T0, 99.0));
        h.writes.push(write(3, T0, 8.0));
        let e = eval(&p, &h, &d);
        assert_eq!(e.lift_state(0, T0 + 1000).regime, Regime::Poc);
        // 18 min on, 8 min idle: 26 min period.
        let hours = e.run_hours(0, T0, T0 + 26 * 60_000 * 10);
        assert!((hours - 3.0).abs() < 1e-9, "{hours}");
        // Restarts at 26, 52, ..., 260 min (the end is included).
        assert_eq!(e.starts(0, T0, T0 + 26 * 60_000 * 10), 10);
    }

    #[test]
    fn pump_off_window_cycles_and_counts_starts() {
        let (p, d) = rod();
        let mut h = WellHistory::default();
        h.windows.push(Window {
            device: 0,
            failure: Failure::PumpOff,
            start: T0,
            end: T0 + 45 * 60_000,
            frozen_tag: None,
            source: FailureSource::Injected,
        });
        let e = eval(&p, &h, &d);
        // Runs 0-18, idles 18-30, runs 30-45 (window ends while running): one restart.
        assert_eq!(e.starts(0, T0 - HOUR_MS, T0 + 2 * HOUR_MS), 1);
        let run = e.run_hours(0, T0, T0 + HOUR_MS);
        assert!((run - (60.0 - 12.0) / 60.0).abs() < 1e-9, "{run}");
    }
}
