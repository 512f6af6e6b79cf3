//! Electric submersible pump: VSD, downhole motor and pump, downhole gauge.
//!
//! Frequency `F` (Hz) is the seeded value or the written `motor_frequency_setpoint_hz`;
//! `I_np` the motor nameplate current, `V_np` its voltage (1100–3300 V).
//!
//! * Load by the affinity laws (shaft power ∝ F³): current fraction
//!   `L(F) = 0.30 + 0.55·(F/60)³` of nameplate; voltage at constant V/Hz `V = V_np·F/60`;
//!   input power `P = √3·V·I·0.85/1000` kW; energy `∫ P dt` over running time.
//! * Intake pressure `PIP = Pc + 0.433·SG·H_sub − 6·(F − F₀)` (submergence `H_sub`; faster
//!   draws the fluid level down), discharge `PDP = Pt + 0.433·SG·L + 40·q_liq/1000`.
//! * Motor winding temperature `T_bh + ΔT·(I/(0.85·I_np))²`, `T_bh = 70 + 0.0145·L` °F;
//!   intake temperature `T_bh`.
//! * Underload alarm when `I < underload setpoint × I_np` (default 70 % of the normal load
//!   fraction), overload above 115 % of nameplate.
//!
//! Failures: *gas lock* — current 32 % ± 12 % of nameplate and erratic, no liquid, the
//! fluid level climbs so `PIP → Pc + 0.433·SG·(H_sub + 1500)` with a 2 h time constant,
//! motor temperature +60 °F over ~1 h (no cooling flow), vibration ×2, phase unbalance +2 %;
//! *pump-off* (underload) — runs 35 min at 62 % of the normal load, trips and waits 25 min
//! (state 2) while the intake pressure recovers; *rod part* is read as a broken shaft —
//! no-load current (27 %), no flow, underload trip after 3 min (state 3). Fault code 1
//! (underload) while tripped or waiting to restart, 0 otherwise. Starts are counted from
//! commissioning (1) plus every restart.

use super::Eval;
use super::params::{HOUR_MS, SimMs};
use super::pump::Regime;

const POWER_FACTOR: f64 = 0.85;

impl Eval<'_> {
    fn esp_hz_at(&self, dev: usize, t: SimMs) -> f64 {
        self.setpoint(dev, "motor_frequency_setpoint_hz", t, self.p.esp_hz)
    }

    /// Normal current as a fraction of nameplate at frequency `f`.
    fn esp_load(f: f64) -> f64 {
        0.30 + 0.55 * (f / 60.0).powi(3)
    }

    /// Noise-free current fraction of nameplate while running in `regime`.
    fn esp_fraction(&self, regime: Regime, f: f64) -> f64 {
        match regime {
            Regime::Normal | Regime::Poc => Self::esp_load(f),
            Regime::PumpOff => 0.62 * Self::esp_load(f),
            Regime::GasLock { .. } => 0.32,
            Regime::RodPart { .. } => 0.27,
            Regime::Stopped { .. } => 0.0,
        }
    }

    /// Noise-free input power while running in `regime` at `t`, kW.
    fn esp_power(&self, dev: usize, t: SimMs, regime: Regime) -> f64 {
        let f = self.esp_hz_at(dev, t);
        let volts = self.p.esp_motor_volts * f / 60.0;
        let amps = self.p.esp_nameplate_a * self.esp_fraction(regime, f);
        3f64.sqrt() * volts * amps * POWER_FACTOR / 1000.0
    }

    fn esp_current(&self, dev: usize, noisy: bool) -> f64 {
        if !self.running(dev) {
            return 0.0;
        }
        let regime = self.lift_state(dev, self.t).regime;
        let np = self.p.esp_nameplate_a;
        let fraction = self.esp_fraction(regime, self.esp_hz_at(dev, self.t));
        match (noisy, regime) {
            (false, _) => np * fraction,
            (true, Regime::GasLock { .. }) => {
                np * (fraction + 0.12 * self.white("gaslock-current"))
            }
            (true, _) => self.measured("motor_current_a", np * fraction, 0.01),
        }
    }

    fn underload_setpoint(&self, dev: usize) -> f64 {
        let default = (70.0 * Self::esp_load(self.p.esp_hz)).round();
        self.setpoint(dev, "underload_setpoint_pct", self.t, default)
    }

    fn bottom_hole_temperature(&self) -> f64 {
        70.0 + 0.0145 * self.p.pump_depth_ft
    }

    fn esp_pip(&self, dev: usize) -> f64 {
        let grad = 0.433 * self.p.liquid_sg();
        let pc = self.casing_pressure();
        let flowing = (pc + grad * self.p.submergence_ft
            - 6.0 * (self.esp_hz_at(dev, self.t) - self.p.esp_hz))
            .max(pc + 15.0);
        let rising = |since: SimMs| {
            let static_p = pc + grad * (self.p.submergence_ft + 1500.0);
            let dt_h = (self.t - since) as f64 / HOUR_MS as f64;
            flowing + (static_p - flowing) * (1.0 - (-dt_h / 2.0).exp())
        };
        let state = self.lift_state(dev, self.t);
        match state.regime {
            Regime::Normal | Regime::Poc => flowing,
            Regime::GasLock { start } | Regime::RodPart { start } => rising(start),
            Regime::Stopped { since } => rising(since),
            Regime::PumpOff => match state.pattern {
                super::timeline::RunPattern::Duty { anchor, period, on } => {
                    let phase = (self.t - anchor).rem_euclid(period);
                    let idle = (phase - on).max(0) as f64 / (period - on) as f64;
                    pc + 25.0 + 150.0 * idle
                }
                _ => pc + 25.0,
            },
        }
    }

    fn esp_motor_temperature(&self, dev: usize) -> f64 {
        let bottom_hole = self.bottom_hole_temperature();
        let rise = self.p.motor_rise_f;
        let v = if !self.running(dev) {
            bottom_hole + 5.0
        } else if let Regime::GasLock { start } = self.lift_state(dev, self.t).regime {
            let dt_h = (self.t - start) as f64 / HOUR_MS as f64;
            bottom_hole + rise + 60.0 * (1.0 - (-dt_h).exp())
        } else {
            let ratio = self.esp_current(dev, false) / (0.85 * self.p.esp_nameplate_a);
            bottom_hole + rise * ratio * ratio
        };
        v + 0.5 * self.process("esptemp", 300.0)
    }

    fn esp_vibration(&self, dev: usize) -> f64 {
        if !self.running(dev) {
            return 0.01;
        }
        let base = self.p.vibration_g * (1.0 + 0.1 * self.process("vibration", 120.0));
        match self.lift_state(dev, self.t).regime {
            Regime::GasLock { .. } => base * (2.0 + 0.8 * self.white("vibration")),
            Regime::RodPart { .. } => base * 0.5,
            _ => self.measured("vibration_g", base, 0.05),
        }
    }

    /// Metrics of an ESP drive (`dev` is the device being read).
    pub fn esp_metric(&self, metric: &str) -> Option<f64> {
        let dev = self.dev;
        let t = self.t;
        let running = self.running(dev);
        let flag = |b: bool| f64::from(u8::from(b));
        let hz = if running { self.esp_hz_at(dev, t) } else { 0.0 };
        let v = match metric {
            "motor_frequency_hz" => self.measured(metric, hz, 0.001),
            "motor_current_a" => self.esp_current(dev, true),
            "motor_voltage_v" => self.measured(metric, self.p.esp_motor_volts * hz / 60.0, 0.003),
            "motor_power_kw" => {
                3f64.sqrt() * self.p.esp_motor_volts * hz / 60.0
                    * self.esp_current(dev, true)
                    * POWER_FACTOR
                    / 1000.0
            }
            "current_unbalance_pct" => {
                let base = self.p.unbalance_pct + 0.2 * self.process("unbalance", 300.0);
                match self.lift_state(dev, t).regime {
                    Regime::GasLock { .. } => base + 2.0 + self.white(metric),
                    _ => base,
                }
            }
            "pump_intake_pressure_psi" => self.measured(metric, self.esp_pip(dev), 0.002),
            "pump_discharge_pressure_psi" => {
                let column = 0.433 * self.p.liquid_sg() * self.p.pump_depth_ft;
                let liquid = self.oil_rate(t) + self.water_rate(t);
                let friction = if running { 40.0 * liquid / 1000.0 } else { 0.0 };
                self.measured(metric, self.tubing_pressure() + column + friction, 0.002)
            }
            "pump_intake_temperature_f" => {
                self.bottom_hole_temperature() + 1.5 * self.process("intaketemp", 600.0)
            }
            "motor_temperature_f" => self.esp_motor_temperature(dev),
            "vibration_g" => self.esp_vibration(dev),
            "pump_state" => self.pump_state_code(dev),
            "drive_fault_code" => flag(matches!(self.pump_state_code(dev) as u8, 2 | 3)),
            "underload_alarm" => flag(
                running
                    && 100.0 * self.esp_current(dev, false) / self.p.esp_nameplate_a
                        < self.underload_setpoint(dev),
            ),
            "motor_overload_alarm" => {
                flag(self.esp_current(dev, false) > 1.15 * self.p.esp_nameplate_a)
            }
            "gauge_comm_fault" => 0.0,
            "motor_energy_kwh" => {
                let (_, kw_ms) = self.run_integral(dev, self.p.online_ms, t, |at, regime| {
                    self.esp_power(dev, at, regime)
                });
                kw_ms / HOUR_MS as f64
            }
            "pump_runtime_total_hr" => self.run_hours(dev, self.p.online_ms, t),
            "pump_runtime_today_hr" => self.run_hours(dev, self.day_start(t), t),
            "motor_starts_total" => (1 + self.starts(dev, self.p.online_ms, t)) as f64,
            "motor_frequency_setpoint_hz" => self.p.esp_hz,
            "underload_setpoint_pct" => self.underload_setpoint(dev),
            "pump_intake_pressure_low_limit_psi" => 50.0,
            "pump_run_command" => 1.0,
            _ => return None,
        };
        Some(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fault::{Failure, FailureSource};
    use crate::model::params::{DAY_MS, Lift, REFERENCE_EPOCH_MS, WellParams};
    use crate::model::testutil::device;
    use crate::model::timeline::{WellHistory, Window, Write};
    use crate::model::{DeviceInfo, Role};

    const T0: SimMs = REFERENCE_EPOCH_MS + 200 * DAY_MS;

    fn setup() -> (WellParams, Vec<DeviceInfo>) {
        (
            WellParams::draw(11, "well-007", Lift::Esp),
            vec![device("esp", Role::Esp, &["motor_frequency_setpoint_hz"])],
        )
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
    fn gas_lock_drops_current_raises_intake_pressure_and_alarms() {
        let (p, d) = setup();
        let mut h = WellHistory::default();
        let before_i = read(&p, &h, &d, T0, "motor_current_a");
        let before_pip = read(&p, &h, &d, T0, "pump_intake_pressure_psi");
        assert_eq!(read(&p, &h, &d, T0, "underload_alarm"), 0.0);
        h.windows.push(Window {
            device: 0,
            failure: Failure::GasLock,
            start: T0,
            end: T0 + 6 * HOUR_MS,
            frozen_tag: None,
            source: FailureSource::Injected,
        });
        let later = T0 + 3 * HOUR_MS;
        assert!(read(&p, &h, &d, later, "motor_current_a") < 0.65 * before_i);
        assert!(read(&p, &h, &d, later, "pump_intake_pressure_psi") > before_pip + 150.0);
        assert_eq!(read(&p, &h, &d, later, "underload_alarm"), 1.0);
        assert_eq!(read(&p, &h, &d, later, "pump_state"), 1.0);
    }

    #[test]
    fn frequency_setpoint_follows_affinity_laws_and_energy_integrates_power() {
        let (p, d) = setup();
        let mut h = WellHistory::default();
        let i0 = read(&p, &h, &d, T0, "motor_current_a");
        let e0 = read(&p, &h, &d, T0, "motor_energy_kwh");
        let e1 = read(&p, &h, &d, T0 + HOUR_MS, "motor_energy_kwh");
        let kw = Eval {
            p: &p,
            h: &h,
            devices: &d,
            dev: 0,
            t: T0,
        }
        .esp_power(0, T0, Regime::Normal);
        assert!((e1 - e0 - kw).abs() < 1e-6 * kw, "{} vs {kw}", e1 - e0);
        h.writes.push(Write {
            device: 0,
            tag: 0,
            at: T0 - 1000,
            value: p.esp_hz - 8.0,
        });
        assert!(read(&p, &h, &d, T0, "motor_current_a") < i0);
        let hz = read(&p, &h, &d, T0, "motor_frequency_hz");
        assert!((hz - (p.esp_hz - 8.0)).abs() < 0.1);
    }

    #[test]
    fn broken_shaft_trips_and_counts_a_restart_afterwards() {
        let (p, d) = setup();
        let mut h = WellHistory::default();
        h.windows.push(Window {
            device: 0,
            failure: Failure::RodPart,
            start: T0,
            end: T0 + HOUR_MS,
            frozen_tag: None,
            source: FailureSource::Injected,
        });
        assert_eq!(read(&p, &h, &d, T0 + HOUR_MS / 2, "pump_state"), 3.0);
        assert_eq!(read(&p, &h, &d, T0 + HOUR_MS / 2, "drive_fault_code"), 1.0);
        assert_eq!(read(&p, &h, &d, T0 - 1000, "motor_starts_total"), 1.0);
        assert_eq!(
            read(&p, &h, &d, T0 + 2 * HOUR_MS, "motor_starts_total"),
            2.0
        );
        assert_eq!(read(&p, &h, &d, T0 + 2 * HOUR_MS, "drive_fault_code"), 0.0);
    }
}
