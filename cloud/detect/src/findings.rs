//! Typed findings: what the canonical metrics of the firmware profiles say about a well,
//! as a production engineer reads them. Each function turns the device's current values
//! (and its series baselines) into [`Check`]s; the conditions add hysteresis.
//!
//! # Rules
//!
//! * **Rod part** (critical): the controller tripped (`pump_state` 3), or the polished-rod
//!   load range (peak − min) collapsed below 40 % of its baseline: the rods hang free. ESP
//!   (broken shaft): tripped, or current below 45 % of its baseline, steady, while running.
//! * **Pump-off**: the controller idles pumped-off (`pump_state` 2), or fillage below 55 %
//!   and smooth (a pump-off ramp); ESP: waiting to restart, or underload alarm with current
//!   at 45–80 % of baseline.
//! * **Gas lock**: running continuously with fillage below 65 % and *erratic* (recent
//!   steps far above the series' normal jitter, or going up and down where a pump-off
//!   ramps down steadily); ESP: current below 75 % of baseline and erratic.
//!   Rod part wins over both (fillage is ≈ 0 on a parted string), gas lock over pump-off
//!   (an active gas lock is not re-diagnosed as pump-off when its fillage calms a while).
//!   "Erratic" is the median of the last five steps, so one restart jump is not.
//! * **Plunger not arriving**: the controller's non-arrival alarm.
//! * **Tank high level**: the gauge's high-level switch, or a level at/above the setpoint.
//! * **H2S / LEL**: at/above the warning threshold, at once (people's safety); critical
//!   severity at/above the critical threshold.
//! * **Production drop / spike**: production rate metrics (`*_rate_mcfd`, `*_rate_bpd`,
//!   not flare/fuel/vent) beyond `z_threshold` of their robust (or hour-of-day) baseline.
//! * **Pressure anomaly**: `*_pressure_psi` (not setpoints or limits) beyond `z_threshold`
//!   in level or in rate of change.
//! * **Water cut spike**: over ≥ 30 min windows without a haul, the water share of the
//!   tank's liquid gain beyond its baseline by `z_threshold` and at least 10 points.
//! * **Sensor failure**: a frozen value ([`crate::series`]), a reading out of the profile's
//!   valid range (`Uncertain`), a bad reading on some metrics (all bad: the device), a
//!   device's own fault flag.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::condition::{Check, Tracked};
use crate::series::{Score, SeriesState};
use crate::{DetectOptions, Evidence, FindingKind, Severity};

/// Process conditions must stay normal this long before they clear (longer than a
/// pump-off controller's run period).
pub const PROCESS_CLEAR_HOLD_MS: i64 = 30 * 60_000;
/// Derived series: polished-rod load range.
pub const LOAD_RANGE: &str = "rod_load_range_lbf";
/// Water-cut windows.
const WATER_WINDOW_MS: i64 = 30 * 60_000;

/// What the checks see at one instant.
#[derive(Debug)]
pub struct View<'a> {
    /// Time.
    pub ts: i64,
    /// Current value of each metric (good readings only).
    pub latest: &'a BTreeMap<String, f64>,
    /// Series states.
    pub series: &'a BTreeMap<String, SeriesState>,
    /// Options.
    pub opts: &'a DetectOptions,
    /// Device-level conditions active before this instant.
    pub active: &'a [FindingKind],
    /// The conditions a normal check can change (the others' evidence is not built).
    pub tracked: &'a Tracked<'a>,
}

impl View<'_> {
    fn active(&self, kind: FindingKind) -> bool {
        self.active.contains(&kind)
    }

    fn get(&self, m: &str) -> Option<f64> {
        self.latest.get(m).copied()
    }

    fn values(&self, names: &[&str]) -> BTreeMap<String, f64> {
        names
            .iter()
            .filter_map(|n| self.get(n).map(|v| ((*n).to_owned(), v)))
            .collect()
    }

    /// A check at this instant, if it can change its condition ([`Check::gated`]).
    fn check(
        &self,
        kind: FindingKind,
        subject: Option<&str>,
        anomalous: bool,
        severity: Severity,
        evidence: impl FnOnce() -> Evidence,
    ) -> Option<Check> {
        Check::gated(
            self.tracked,
            kind,
            subject,
            anomalous,
            severity,
            self.ts,
            evidence,
        )
    }
}

fn evidence(detector: &str, metric: Option<&str>, value: Option<f64>, detail: String) -> Evidence {
    Evidence {
        metric: metric.map(str::to_owned),
        value,
        detector: detector.to_owned(),
        detail,
        ..Evidence::default()
    }
}

/// What a lift device's values say at one instant, and the evidence to show for it.
struct LiftReading {
    rod_part: bool,
    pump_off: bool,
    gas_lock: bool,
    /// Low fillage alone must outlast the erratic test's window (a gas lock's first
    /// samples look like a pump-off's); an idling controller is proof at once.
    slow_pump_off: bool,
    /// Metrics shown as the evidence's related values.
    names: &'static [&'static str],
    /// Derived related values.
    extras: [(&'static str, Option<f64>); 2],
    value: Option<f64>,
    range: Option<f64>,
    base: Option<f64>,
}

/// Lift checks (rod pump or ESP), if the device is lift equipment.
pub fn lift(v: &View<'_>, out: &mut Vec<Check>) {
    let Some(state) = v.get("pump_state") else {
        return;
    };
    let running = state == 1.0;
    let lift = if let Some(fill) = v.get("pump_fillage_pct") {
        let range = match (v.get("rod_load_peak_lbf"), v.get("rod_load_min_lbf")) {
            (Some(p), Some(m)) => Some(p - m),
            _ => None,
        };
        let range_base = v.series.get(LOAD_RANGE).and_then(|s| s.level.level);
        let collapsed = matches!((range, range_base), (Some(r), Some(b)) if b > 0.0 && r < 0.4 * b);
        let erratic = v
            .series
            .get("pump_fillage_pct")
            .and_then(|s| s.erratic(1.0));
        let rod_part = state == 3.0 || (running && collapsed);
        let gas_lock = !rod_part && running && fill < 65.0 && erratic.is_some();
        let pump_off = !rod_part
            && !gas_lock
            && !v.active(FindingKind::GasLock)
            && (state == 2.0 || (running && fill < 55.0 && erratic.is_none()));
        LiftReading {
            rod_part,
            pump_off,
            gas_lock,
            slow_pump_off: state != 2.0 && !rod_part,
            names: &[
                "pump_state",
                "pump_fillage_pct",
                "rod_load_peak_lbf",
                "rod_load_min_lbf",
                "motor_current_a",
            ],
            extras: [
                ("load_range_baseline_lbf", range_base),
                ("fillage_jitter_ratio", erratic),
            ],
            value: Some(fill),
            range,
            base: range_base,
        }
    } else if let Some(current) = v.get("motor_current_a") {
        let series = v.series.get("motor_current_a");
        let base = series.and_then(|s| s.level.level).filter(|b| *b > 0.0);
        let ratio = base.map(|b| current / b);
        let erratic = series.and_then(|s| s.erratic(0.05 * base.unwrap_or(0.0)));
        let underload = v.get("underload_alarm") == Some(1.0);
        let low = |x: f64| running && ratio.is_some_and(|r| r < x);
        let rod_part = state == 3.0 || (low(0.45) && erratic.is_none());
        let gas_lock = !rod_part && low(0.75) && erratic.is_some();
        let pump_off = !rod_part
            && !gas_lock
            && !v.active(FindingKind::GasLock)
            && (state == 2.0 || (low(0.8) && underload && erratic.is_none()));
        LiftReading {
            rod_part,
            pump_off,
            gas_lock,
            slow_pump_off: state != 2.0 && !rod_part,
            names: &[
                "pump_state",
                "motor_current_a",
                "underload_alarm",
                "pump_intake_pressure_psi",
            ],
            extras: [
                ("current_baseline_a", base),
                ("current_jitter_ratio", erratic),
            ],
            value: Some(current),
            range: None,
            base,
        }
    } else {
        return;
    };
    let LiftReading {
        rod_part,
        pump_off,
        gas_lock,
        slow_pump_off,
        names,
        extras,
        value,
        range,
        base,
    } = lift;
    let make = |kind: FindingKind,
                anomalous: bool,
                severity: Severity,
                detail: &dyn Fn() -> String|
     -> Option<Check> {
        let mut c = v.check(kind, None, anomalous, severity, || {
            let mut e = evidence(kind.as_str(), None, value, detail());
            e.values = v.values(names);
            for (name, x) in extras {
                if let Some(x) = x {
                    e.values.insert(name.to_owned(), x);
                }
            }
            e.baseline = base;
            e.score = range;
            e
        })?;
        c.clear_hold_ms = PROCESS_CLEAR_HOLD_MS;
        Some(c)
    };
    let shown =
        |x: Option<f64>, digits: usize| x.map_or("unknown".into(), |x| format!("{x:.digits$}"));
    out.extend(make(
        FindingKind::RodPart,
        rod_part,
        Severity::Critical,
        &|| {
            format!(
                "pump state {state}: loads or current collapsed toward the hanging weight \
                 (baseline {}), the string is parted or the controller tripped",
                shown(base, 0)
            )
        },
    ));
    if let Some(mut c) = make(FindingKind::PumpOff, pump_off, Severity::Warning, &|| {
        format!(
            "pump state {state}, fillage/current {}: the pump displaces more than flows in",
            shown(value, 1)
        )
    }) {
        if slow_pump_off {
            c.sustain = Some(2 * crate::series::RECENT_STEPS as u32);
        }
        out.push(c);
    }
    out.extend(make(
        FindingKind::GasLock,
        gas_lock,
        Severity::Warning,
        &|| {
            format!(
                "running with low, erratic fillage/current ({}): gas interference",
                shown(value, 1)
            )
        },
    ));
}

/// Threshold checks: plunger, tank, gas, device fault flags.
pub fn thresholds(v: &View<'_>, out: &mut Vec<Check>) {
    if let Some(alarm) = v.get("plunger_non_arrival_alarm") {
        out.extend(v.check(
            FindingKind::PlungerNotArriving,
            None,
            alarm == 1.0,
            Severity::Warning,
            || {
                let mut e = evidence(
                    "plunger_non_arrival",
                    Some("plunger_non_arrival_alarm"),
                    Some(alarm),
                    "the controller reports the plunger did not arrive at surface".into(),
                );
                e.values = v.values(&["plunger_misses_today", "plunger_travel_time_s"]);
                e
            },
        ));
    }
    let level = match (v.get("oil_level_in"), v.get("water_level_in")) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    let setpoint = v.get("tank_high_level_setpoint_in");
    let switch = v.get("tank_high_level");
    if level.is_some() || switch.is_some() {
        let high = switch == Some(1.0) || matches!((level, setpoint), (Some(l), Some(s)) if l >= s);
        out.extend(v.check(
            FindingKind::TankHighLevel,
            None,
            high,
            Severity::Warning,
            || {
                let mut e = evidence(
                    "tank_high_level",
                    Some("oil_level_in"),
                    level,
                    format!(
                        "tank level {} in against a high-level setpoint of {} in",
                        level.map_or("unknown".into(), |l| format!("{l:.1}")),
                        setpoint.map_or("unknown".into(), |s| format!("{s:.1}"))
                    ),
                );
                e.threshold = setpoint;
                e.values = v.values(&["tank_high_level", "water_level_in", "oil_level_in"]);
                e
            },
        ));
    }
    let gas = [
        (
            "h2s_ppm",
            FindingKind::H2sHigh,
            v.opts.h2s_warning_ppm,
            v.opts.h2s_critical_ppm,
            "ppm",
        ),
        (
            "lel_pct",
            FindingKind::LelHigh,
            v.opts.lel_warning_pct,
            v.opts.lel_critical_pct,
            "%LEL",
        ),
    ];
    for (metric, kind, warn, crit, unit) in gas {
        let Some(x) = v.get(metric) else { continue };
        let severity = if x >= crit {
            Severity::Critical
        } else {
            Severity::Warning
        };
        let check = v.check(kind, Some(metric), x >= warn, severity, || {
            let mut e = evidence(
                metric,
                Some(metric),
                Some(x),
                format!("{metric} at {x:.1} {unit} (warning {warn}, critical {crit})"),
            );
            e.threshold = Some(if x >= crit { crit } else { warn });
            e
        });
        if let Some(mut c) = check {
            c.immediate = true;
            out.push(c);
        }
    }
    for metric in ["detector_fault", "gauge_fault", "gauge_comm_fault"] {
        let Some(x) = v.get(metric) else { continue };
        out.extend(v.check(
            FindingKind::SensorFailure,
            Some(metric),
            x == 1.0,
            Severity::Warning,
            || {
                evidence(
                    "device_fault",
                    Some(metric),
                    Some(x),
                    format!("the device reports its own fault ({metric})"),
                )
            },
        ));
    }
}

/// The metrics the baseline checks judge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Judged {
    /// A production rate (`*_rate_mcfd`, `*_rate_bpd`, not flare/fuel/vent).
    Production,
    /// A process pressure (`*_pressure_psi`, not setpoints or limits).
    Pressure,
}

/// Whether (and as what) the baseline checks judge `metric`. Asked once per sample.
pub fn judged(metric: &str) -> Option<Judged> {
    if (metric.ends_with("_rate_mcfd") || metric.ends_with("_rate_bpd"))
        && !["flare_", "fuel_", "vent_"]
            .iter()
            .any(|p| metric.starts_with(p))
    {
        return Some(Judged::Production);
    }
    let pressure = metric.ends_with("_pressure_psi")
        && !metric
            .split('_')
            .any(|word| word == "setpoint" || word == "limit");
    pressure.then_some(Judged::Pressure)
}

/// Baseline checks of one judged metric's new value.
pub fn baseline(
    v: &View<'_>,
    metric: &str,
    judged: Judged,
    x: f64,
    s: &Score,
    out: &mut Vec<Check>,
) {
    let thr = v.opts.z_threshold;
    let detector = if s.seasonal {
        "seasonal"
    } else {
        "robust_ewma"
    };
    let make = |kind: FindingKind, anomalous: bool, severity, score: Option<f64>, det: &str| {
        v.check(kind, Some(metric), anomalous, severity, || Evidence {
            metric: Some(metric.to_owned()),
            value: Some(x),
            baseline: s.level,
            scale: s.scale,
            score,
            threshold: Some(thr),
            detector: det.to_owned(),
            rule: None,
            model: None,
            values: BTreeMap::new(),
            detail: format!(
                "{metric} at {x:.2} against a baseline of {} (robust z {})",
                s.level.map_or("unknown".into(), |l| format!("{l:.2}")),
                score.map_or("unknown".into(), |z| format!("{z:.1}"))
            ),
        })
    };
    if judged == Judged::Production {
        let z = s.z;
        out.extend(make(
            FindingKind::ProductionDrop,
            z.is_some_and(|z| z < -thr),
            Severity::Warning,
            z,
            detector,
        ));
        out.extend(make(
            FindingKind::ProductionSpike,
            z.is_some_and(|z| z > thr),
            Severity::Info,
            z,
            detector,
        ));
    } else {
        let level = s.z.is_some_and(|z| z.abs() > thr);
        let rate = s.rate_z.is_some_and(|z| z.abs() > thr);
        let (score, det) = if level || !rate {
            (s.z, detector)
        } else {
            (s.rate_z, "rate")
        };
        out.extend(make(
            FindingKind::PressureAnomaly,
            level || rate,
            Severity::Warning,
            score,
            det,
        ));
    }
}

/// Water-share tracking of a tank.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct WaterCut {
    /// Window start: (ts, oil, water).
    #[serde(default)]
    pub anchor: Option<(i64, f64, f64)>,
    /// Baseline of the water share per window.
    #[serde(default)]
    pub share: SeriesState,
}

/// The water-cut check of a tank, when a window completes.
pub fn water_cut(wc: &mut WaterCut, v: &View<'_>) -> Option<Check> {
    let (oil_m, water_m) = if v.latest.contains_key("oil_volume_bbl") {
        ("oil_volume_bbl", "water_volume_bbl")
    } else {
        ("oil_level_in", "water_level_in")
    };
    let (oil, water) = (v.get(oil_m)?, v.get(water_m)?);
    let Some((t0, o0, w0)) = wc.anchor else {
        wc.anchor = Some((v.ts, oil, water));
        return None;
    };
    if v.ts - t0 < WATER_WINDOW_MS {
        return None;
    }
    wc.anchor = Some((v.ts, oil, water));
    let (d_oil, d_water) = (oil - o0, water - w0);
    if d_oil < 0.0 || d_water < 0.0 || d_oil + d_water <= 0.0 {
        return None; // a haul or a drain: no production window
    }
    let share = d_water / (d_oil + d_water);
    let warmup = (v.opts.warmup_samples / 3).max(5);
    let score = wc.share.score(v.ts, share, warmup);
    let thr = v.opts.z_threshold;
    let anomalous =
        score.z.is_some_and(|z| z > thr) && score.level.is_some_and(|l| share - l >= 0.10);
    wc.share.learn_with(v.ts, share, warmup, anomalous, false);
    let mut c = v.check(
        FindingKind::WaterCutSpike,
        None,
        anomalous,
        Severity::Warning,
        || {
            let mut e = evidence(
                "water_cut",
                Some(water_m),
                Some(share),
                format!(
                    "water is {:.0} % of the tank's gain over the last window, baseline {}",
                    100.0 * share,
                    score
                        .level
                        .map_or("unknown".into(), |l| format!("{:.0} %", 100.0 * l))
                ),
            );
            e.baseline = score.level;
            e.scale = score.scale;
            e.score = score.z;
            e.threshold = Some(thr);
            e.values = BTreeMap::from([(oil_m.to_owned(), d_oil), (water_m.to_owned(), d_water)]);
            e
        },
    )?;
    c.sustain = Some(2);
    Some(c)
}
