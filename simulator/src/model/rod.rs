//! Rod pump: beam pumping unit on a VSD with a pump-off controller (POC).
//!
//! Symbols: speed `N` (spm; seeded, or the written `strokes_per_minute_setpoint`), stroke
//! length `S` (in), plunger diameter `d` (in), pump depth `L` (ft), rod string weight `w`
//! (lb/ft), liquid specific gravity `SG`, fluid level over the pump `H` (ft), fillage `f`.
//!
//! * Rod weight in air `Wr = w·L`, buoyant `Wrf = Wr·(1 − 0.127·SG)` (steel 490 lb/ft³).
//! * Fluid load on the plunger `Fo = 0.340·SG·d²·(L − H)` (0.433 psi/ft × π/4).
//! * Mills acceleration factor `α = S·N²/70 500`.
//! * Peak polished-rod load `PPRL = Wrf + Fo + α·Wr` (fluid load carried on the upstroke);
//!   minimum `MPRL = Wrf − α·Wr − 0.3·(1 − f)·Fo` (fluid pound on an incompletely filled
//!   barrel deepens the downstroke dip).
//! * Fillage at normal operation `f = min(1, f₀·N₀/N)` (inflow-limited: faster pumping fills
//!   the barrel less), ±1.2 % wander. During a duty cycle the fillage of successive strokes
//!   falls linearly over the 18 min run (pump-off failure: 72 → 42 %; setpoint POC: from
//!   `f + 15 %` to just under the setpoint) and the idle period shows the last stroke.
//! * Polished-rod power `PRHP = (PPRL − MPRL)·S·N·0.75·(0.3 + 0.7·f)/396 000` hp (card
//!   area ≈ load range × stroke, shrinking with fillage); motor input power
//!   `PRHP·0.746/0.55` kW (55 % surface efficiency).
//! * Motor current `I = I_np·(0.45 + 0.35·f)·√(N/N₀)`; drive frequency `F = F₀·N/N₀`;
//!   6-pole motor speed `20·F·0.98` rpm.
//! * Gearbox loading `g₀·(PPRL − MPRL)/(PPRL₀ − MPRL₀)`, structure loading
//!   `s₀·PPRL/PPRL₀` (index 0 = normal operation at the seeded speed).
//! * Fluid level over the pump: `H₀` at normal operation; a duty cycle draws it down to
//!   `0.25·H₀` while running and it recovers while idle; with no pumping (rod part, stopped)
//!   it rises `1500·(1 − e^(−Δt/4 h))` ft. Intake pressure `Pc + 0.30·H` (gassy oil column).
//! * Parted rods: loads collapse to the hanging part `Wp = k·Wrf`: `PPRL = Wp·(1 + α)`,
//!   `MPRL = Wp·(1 − α)`; fillage ≈ 0; net stroke 0; trip after 10 min (state 3).
//! * Load limits (writable): high `1.15·PPRL₀`, low halfway between `MPRL₀` and the parted
//!   `MPRL`; the alarms compare the (noise-free) last-card loads with them.
//! * Totals: strokes `∫ N·running dt`, run hours, starts; "today" counters reset at 00:00 UTC;
//!   inferred production today is the liquid produced since midnight.

use super::Eval;
use super::params::{DAY_MS, HOUR_MS, MINUTE_MS, SimMs};
use super::pump::{DEFAULT_FILLAGE_SETPOINT_PCT, DEFAULT_IDLE_MIN, Regime};
use super::timeline::RunPattern;

/// Peak and minimum polished-rod loads, lbf.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Loads {
    peak: f64,
    min: f64,
}

impl Eval<'_> {
    /// Phase within a duty cycle, as a fraction of the running part (`None` when idle).
    fn duty_progress(pattern: RunPattern, t: SimMs) -> Option<f64> {
        match pattern {
            RunPattern::Duty { anchor, period, on } => {
                let phase = (t - anchor).rem_euclid(period);
                (phase < on).then(|| phase as f64 / on as f64)
            }
            _ => Some(0.0),
        }
    }

    /// Fillage (fraction) of the last stroke of rod pump `dev` at the evaluation time.
    fn rod_fillage(&self, dev: usize, noisy: bool) -> f64 {
        let state = self.lift_state(dev, self.t);
        let ramp = |hi: f64, lo: f64| match Self::duty_progress(state.pattern, self.t) {
            Some(x) => hi - (hi - lo) * x,
            None => lo,
        };
        let wander = |amp: f64, what: &str, period: f64| {
            if noisy {
                amp * self.process(what, period)
            } else {
                0.0
            }
        };
        match state.regime {
            Regime::Normal | Regime::Stopped { .. } => {
                (self.normal_fillage(dev, self.t) + wander(0.012, "fillage", 300.0)).min(1.0)
            }
            Regime::Poc => {
                let nominal = self.normal_fillage(dev, self.t);
                let setpoint = self.fillage_setpoint(dev, self.t) / 100.0;
                ramp((nominal + 0.15).min(1.0), (setpoint - 0.01).max(0.0))
            }
            Regime::PumpOff => ramp(0.72, 0.42),
            Regime::GasLock { .. } => 0.48 + wander(0.10, "gasinterference", 45.0),
            Regime::RodPart { .. } => {
                0.02 + if noisy {
                    0.015 * self.white("fillage").abs()
                } else {
                    0.0
                }
            }
        }
    }

    fn rod_loads(&self, spm: f64, fillage: f64, parted: bool, noisy: bool) -> Loads {
        let p = self.p;
        let sg = p.liquid_sg();
        let wr = p.rod_lb_per_ft * p.pump_depth_ft;
        let wrf = wr * (1.0 - 0.127 * sg);
        let alpha = p.stroke_in * spm * spm / 70_500.0;
        if parted {
            let hanging = p.part_fraction * wrf;
            return Loads {
                peak: hanging * (1.0 + alpha),
                min: hanging * (1.0 - alpha),
            };
        }
        let wander = if noisy {
            0.02 * self.process("fluidload", 600.0)
        } else {
            0.0
        };
        let fo = 0.340
            * sg
            * p.plunger_dia_in.powi(2)
            * (p.pump_depth_ft - p.fluid_over_pump_ft)
            * (1.0 + wander);
        Loads {
            peak: wrf + fo + alpha * wr,
            min: wrf - alpha * wr - 0.3 * (1.0 - fillage) * fo,
        }
    }

    /// Loads at normal operation at the seeded speed (the reference for limits and ratings).
    fn nominal_loads(&self) -> Loads {
        self.rod_loads(self.p.spm, self.p.fillage_base, false, false)
    }

    fn current_loads(&self, dev: usize, noisy: bool) -> Loads {
        let parted = matches!(self.lift_state(dev, self.t).regime, Regime::RodPart { .. });
        let spm = self.spm_at(dev, self.t);
        self.rod_loads(spm, self.rod_fillage(dev, noisy), parted, noisy)
    }

    fn load_limits(&self, dev: usize) -> (f64, f64) {
        let nominal = self.nominal_loads();
        let parted = self.rod_loads(self.p.spm, 0.0, true, false);
        let round = |x: f64| (x / 100.0).round() * 100.0;
        let high = round(1.15 * nominal.peak).clamp(1000.0, 50_000.0);
        let low = round((nominal.min + parted.min) / 2.0).clamp(0.0, 30_000.0);
        (
            self.setpoint(dev, "rod_load_high_limit_lbf", self.t, high),
            self.setpoint(dev, "rod_load_low_limit_lbf", self.t, low),
        )
    }

    fn polished_rod_hp(&self, dev: usize, noisy: bool) -> f64 {
        if !self.running(dev) {
            return 0.0;
        }
        let loads = self.current_loads(dev, noisy);
        let f = self.rod_fillage(dev, noisy);
        (loads.peak - loads.min)
            * self.p.stroke_in
            * self.spm_at(dev, self.t)
            * 0.75
            * (0.3 + 0.7 * f)
            / 396_000.0
    }

    fn rod_current(&self, dev: usize) -> f64 {
        if !self.running(dev) {
            return 0.0;
        }
        let np = self.p.motor_nameplate_a;
        let load = match self.lift_state(dev, self.t).regime {
            Regime::RodPart { .. } => 0.35,
            _ => {
                (0.45 + 0.35 * self.rod_fillage(dev, false))
                    * (self.spm_at(dev, self.t) / self.p.spm).sqrt()
            }
        };
        np * load
    }

    fn rod_drive_hz(&self, dev: usize) -> f64 {
        if !self.running(dev) {
            return 0.0;
        }
        self.p.vsd_base_hz * self.spm_at(dev, self.t) / self.p.spm
    }

    /// Fluid level above the pump, ft.
    fn rod_fluid_level(&self, dev: usize) -> f64 {
        let h0 = self.p.fluid_over_pump_ft;
        let state = self.lift_state(dev, self.t);
        let rising = |since: SimMs| {
            let dt_h = (self.t - since) as f64 / HOUR_MS as f64;
            h0 + 1500.0 * (1.0 - (-dt_h / 4.0).exp())
        };
        match (state.regime, state.pattern) {
            (Regime::RodPart { start }, _) => rising(start),
            (Regime::Stopped { since }, _) => rising(since),
            (Regime::GasLock { .. }, _) => 1.4 * h0,
            (_, RunPattern::Duty { anchor, period, on }) => {
                let phase = (self.t - anchor).rem_euclid(period);
                if phase < on {
                    h0 * (1.0 - 0.75 * phase as f64 / on as f64)
                } else {
                    h0 * (0.25 + 0.75 * (phase - on) as f64 / (period - on) as f64)
                }
            }
            _ => h0 * (1.0 + 0.05 * self.process("fluidlevel", 900.0)),
        }
    }

    /// Metrics of a rod pump controller (`dev` is the device being read).
    pub fn rod_metric(&self, metric: &str) -> Option<f64> {
        let dev = self.dev;
        let t = self.t;
        let flag = |b: bool| f64::from(u8::from(b));
        let running = self.running(dev);
        let today = self.day_start(t);
        let v = match metric {
            "pump_state" => self.pump_state_code(dev),
            "strokes_per_minute" if running => self.measured(metric, self.spm_at(dev, t), 0.002),
            "strokes_per_minute" => 0.0,
            "pump_fillage_pct" => 100.0 * self.rod_fillage(dev, true),
            "rod_load_peak_lbf" => self.measured(metric, self.current_loads(dev, true).peak, 0.004),
            "rod_load_min_lbf" => self.measured(metric, self.current_loads(dev, true).min, 0.004),
            "rod_load_high_alarm" => {
                flag(self.current_loads(dev, false).peak > self.load_limits(dev).0)
            }
            "rod_load_low_alarm" => {
                flag(self.current_loads(dev, false).min < self.load_limits(dev).1)
            }
            "rod_load_high_limit_lbf" => self.load_limits(dev).0,
            "rod_load_low_limit_lbf" => self.load_limits(dev).1,
            "polished_rod_power_hp" => self.polished_rod_hp(dev, true),
            "motor_power_kw" => self.polished_rod_hp(dev, true) * 0.746 / 0.55,
            "motor_current_a" => self.measured(metric, self.rod_current(dev), 0.03),
            "motor_overload_alarm" => flag(self.rod_current(dev) > 1.15 * self.p.motor_nameplate_a),
            "motor_frequency_hz" => self.measured(metric, self.rod_drive_hz(dev), 0.001),
            "motor_speed_rpm" => self.measured(metric, self.rod_drive_hz(dev) * 20.0 * 0.98, 0.001),
            "motor_running" => flag(running),
            "fluid_level_above_pump_ft" => self.rod_fluid_level(dev),
            "pump_intake_pressure_psi" => self.measured(
                metric,
                self.casing_pressure() + 0.30 * self.rod_fluid_level(dev),
                0.002,
            ),
            "gearbox_load_pct" if running => {
                let (now, nominal) = (self.current_loads(dev, true), self.nominal_loads());
                100.0 * self.p.gearbox_fraction * (now.peak - now.min)
                    / (nominal.peak - nominal.min)
            }
            "gearbox_load_pct" => 0.0,
            "structure_load_pct" => {
                100.0 * self.p.structure_fraction * self.current_loads(dev, true).peak
                    / self.nominal_loads().peak
            }
            "pump_net_stroke_in" => match self.lift_state(dev, t).regime {
                Regime::RodPart { .. } => 0.0,
                _ => self.p.stroke_in * self.rod_fillage(dev, true) * 0.92,
            },
            "stroke_count_total" => {
                let (_, strokes_ms) =
                    self.run_integral(dev, self.p.online_ms, t, |at, _| self.spm_at(dev, at));
                (strokes_ms / MINUTE_MS as f64).floor()
            }
            "pump_runtime_today_hr" => self.run_hours(dev, today, t),
            "pump_runtime_yesterday_hr" => self.run_hours(dev, today - DAY_MS, today),
            "pump_runtime_total_hr" => self.run_hours(dev, self.p.online_ms, t),
            "pump_cycles_today" => self.starts(dev, today, t) as f64,
            "fluid_production_today_bbl" => self.liquid_between(today, t),
            "fluid_production_yesterday_bbl" => self.liquid_between(today - DAY_MS, today),
            "strokes_per_minute_setpoint" => self.p.spm,
            "pump_fillage_setpoint_pct" => DEFAULT_FILLAGE_SETPOINT_PCT,
            "pump_idle_time_setpoint_min" => DEFAULT_IDLE_MIN,
            "pump_run_command" | "control_mode_auto" => 1.0,
            "vibration_switch_trip" => 0.0,
            _ => return None,
        };
        Some(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fault::{Failure, FailureSource};
    use crate::model::params::{Lift, REFERENCE_EPOCH_MS, WellParams};
    use crate::model::testutil::device;
    use crate::model::timeline::{WellHistory, Window, Write};
    use crate::model::{DeviceInfo, Role};

    const T0: SimMs = REFERENCE_EPOCH_MS + 200 * DAY_MS;

    fn setup() -> (WellParams, Vec<DeviceInfo>) {
        (
            WellParams::draw(11, "well-007", Lift::RodPump),
            vec![device(
                "rpc",
                Role::RodPump,
                &["strokes_per_minute_setpoint", "pump_run_command"],
            )],
        )
    }

    fn window(failure: Failure, start: SimMs, end: SimMs) -> Window {
        Window {
            device: 0,
            failure,
            start,
            end,
            frozen_tag: None,
            source: FailureSource::Injected,
        }
    }

    fn read(p: &WellParams, h: &WellHistory, d: &[DeviceInfo], t: SimMs, m: &str) -> f64 {
        Eval {
            p,
            h,
            devices: d,
            dev: 0,
            t,
        }
        .metric(m)
        .unwrap()
    }

    #[test]
    fn strokes_follow_speed_and_stop_on_rod_part() {
        let (p, d) = setup();
        let mut h = WellHistory::default();
        let strokes = |h: &WellHistory, t| read(&p, h, &d, t, "stroke_count_total");
        let per_hour = strokes(&h, T0 + HOUR_MS) - strokes(&h, T0);
        assert!((per_hour - p.spm * 60.0).abs() <= 1.0, "{per_hour}");
        h.windows
            .push(window(Failure::RodPart, T0, T0 + 4 * HOUR_MS));
        let during = strokes(&h, T0 + 2 * HOUR_MS) - strokes(&h, T0);
        assert!((during - p.spm * 10.0).abs() <= 1.0, "{during}");
        assert_eq!(read(&p, &h, &d, T0 + HOUR_MS, "pump_state"), 3.0);
        assert_eq!(read(&p, &h, &d, T0 + 60_000, "pump_state"), 1.0);
        let peak = read(&p, &h, &d, T0 + 60_000, "rod_load_peak_lbf");
        let min = read(&p, &h, &d, T0 + 60_000, "rod_load_min_lbf");
        let normal_peak = read(&p, &h, &d, T0 - 60_000, "rod_load_peak_lbf");
        assert!(
            peak < 0.8 * normal_peak && min < peak,
            "{peak} {min} {normal_peak}"
        );
        assert_eq!(read(&p, &h, &d, T0 + 60_000, "rod_load_low_alarm"), 1.0);
        assert_eq!(read(&p, &h, &d, T0 - 60_000, "rod_load_low_alarm"), 0.0);
        assert_eq!(read(&p, &h, &d, T0 - 60_000, "rod_load_high_alarm"), 0.0);
    }

    #[test]
    fn speed_setpoint_changes_stroke_rate_fillage_and_drive_frequency() {
        let (p, d) = setup();
        let mut h = WellHistory::default();
        let fill_before = read(&p, &h, &d, T0 + 2 * HOUR_MS, "pump_fillage_pct");
        let spm = (p.spm * 1.2 * 10.0).round() / 10.0;
        h.writes.push(Write {
            device: 0,
            tag: 0,
            at: T0 + HOUR_MS,
            value: spm,
        });
        let strokes = |t| read(&p, &h, &d, t, "stroke_count_total");
        let two_hours = strokes(T0 + 2 * HOUR_MS) - strokes(T0);
        assert!(
            (two_hours - (p.spm + spm) * 60.0).abs() <= 1.0,
            "{two_hours}"
        );
        let fill_after = read(&p, &h, &d, T0 + 2 * HOUR_MS, "pump_fillage_pct");
        assert!(
            fill_after < fill_before - 5.0,
            "{fill_before} -> {fill_after}"
        );
        let hz = read(&p, &h, &d, T0 + 2 * HOUR_MS, "motor_frequency_hz");
        assert!((hz - p.vsd_base_hz * spm / p.spm).abs() < 0.1);
    }

    #[test]
    fn pump_off_cycles_between_running_and_idle() {
        let (p, d) = setup();
        let mut h = WellHistory::default();
        h.windows
            .push(window(Failure::PumpOff, T0, T0 + 3 * HOUR_MS));
        let state = |t| read(&p, &h, &d, t, "pump_state");
        assert_eq!(state(T0 + 5 * MINUTE_MS), 1.0);
        assert_eq!(state(T0 + 20 * MINUTE_MS), 2.0);
        assert_eq!(state(T0 + 31 * MINUTE_MS), 1.0);
        assert_eq!(
            read(&p, &h, &d, T0 + 20 * MINUTE_MS, "strokes_per_minute"),
            0.0
        );
        assert!(read(&p, &h, &d, T0 + 10 * MINUTE_MS, "pump_fillage_pct") < 65.0);
        // Restarts at 30 and 60 minutes (18 min running + 12 min idle).
        assert_eq!(
            read(&p, &h, &d, T0 + 65 * MINUTE_MS, "pump_cycles_today"),
            2.0
        );
    }

    #[test]
    fn stop_command_stops_the_pump_and_fluid_rises() {
        let (p, d) = setup();
        let mut h = WellHistory::default();
        h.writes.push(Write {
            device: 0,
            tag: 1,
            at: T0,
            value: 0.0,
        });
        assert_eq!(read(&p, &h, &d, T0 + HOUR_MS, "pump_state"), 0.0);
        assert_eq!(read(&p, &h, &d, T0 + HOUR_MS, "motor_current_a"), 0.0);
        let level = read(&p, &h, &d, T0 + 4 * HOUR_MS, "fluid_level_above_pump_ft");
        assert!(level > p.fluid_over_pump_ft + 500.0, "{level}");
    }
}
