//! Failure modes, the seeded failure schedule, and its JSON export.
//!
//! # Kinds
//!
//! Process failures change the physics of the well (see [`crate::model`]):
//! [`Failure::PumpOff`], [`Failure::RodPart`] (a broken shaft on an ESP),
//! [`Failure::GasLock`]; they apply to lift equipment (rod pump controllers, ESP drives)
//! only. Device failures change how the device answers: [`Failure::SensorFrozen`] (one
//! tag keeps the value it had when the failure began), [`Failure::DeviceSilent`] (no
//! response at all, the client times out), [`Failure::SlowResponse`] (answers after a
//! delay), [`Failure::Exception`] (answers every request with a Modbus exception code).
//!
//! # Schedule
//!
//! Simulated time is cut into slots of `W = max(6 h, 2 × max_duration)` aligned on the Unix
//! epoch. For each device and each slot starting inside `[origin, origin + horizon)`, a
//! hash of `(seed, device name, slot)` decides whether a failure happens (probability
//! `min(1, rate_per_day × W / 1 day)`), its kind (uniform among the configured kinds that
//! apply to the device), duration (log-uniform in `[min_duration, max_duration]`), start
//! (uniform such that it ends inside the slot), frozen tag and exception code. Windows of
//! one device therefore never overlap, and the schedule is a pure function of the seed, the
//! device names, the plan and the clock origin.

use serde::{Deserialize, Serialize};

use crate::config::FailurePlan;
use crate::model::params::{DAY_MS, HOUR_MS, SimMs};
use crate::model::timeline::Window;
use crate::noise::{hash_str, key, unit};

pub use crate::fault::{Failure, FailureKind, FailureSource};

/// One failure, as ground truth for tests and ML (a boundary type: exported as JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailureEvent {
    /// Well name.
    pub well: String,
    /// Device name (as in the endpoint list).
    pub device: String,
    /// What failed.
    pub kind: FailureKind,
    /// Frozen tag name (`sensor_frozen` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// Response delay in ms (`slow_response` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u64>,
    /// Modbus exception code (`exception` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exception_code: Option<u8>,
    /// Start, wall-clock UTC ms (the time base of gateway timestamps).
    pub start_ms: i64,
    /// End (exclusive), wall-clock UTC ms.
    pub end_ms: i64,
    /// Start, simulated ms (equals `start_ms` when `time_scale` is 1).
    pub sim_start_ms: i64,
    /// End (exclusive), simulated ms.
    pub sim_end_ms: i64,
    /// Scheduled or injected.
    pub source: FailureSource,
}

/// The file written by `--export-schedule`: the run's clock and every failure event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScheduleFile {
    /// Fleet seed.
    pub seed: u64,
    /// Simulated seconds per wall-clock second.
    pub time_scale: f64,
    /// Clock origin (wall-clock = simulated time at this instant), UTC ms.
    pub clock_origin_ms: i64,
    /// End of the scheduled horizon, simulated ms.
    pub horizon_end_sim_ms: i64,
    /// Events sorted by start, then device.
    pub events: Vec<FailureEvent>,
}

impl ScheduleFile {
    /// Pretty JSON text.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("schedule types always serialize")
    }

    /// Parses JSON written by [`ScheduleFile::to_json`].
    pub fn from_json(text: &str) -> Result<ScheduleFile, serde_json::Error> {
        serde_json::from_str(text)
    }
}

/// What the scheduler needs to know about a device.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ScheduleTarget<'a> {
    pub name: &'a str,
    /// Index of the device within its well.
    pub index: usize,
    /// Whether process failures apply (lift equipment).
    pub lift: bool,
    /// Tag indices a sensor-frozen failure may pick (measured values).
    pub freezable_tags: &'a [usize],
}

/// Kinds of `plan` that apply to `target`.
pub(crate) fn applicable(plan: &FailurePlan, target: &ScheduleTarget<'_>) -> Vec<FailureKind> {
    plan.kinds
        .iter()
        .copied()
        .filter(|k| match k {
            k if k.is_physical() => target.lift,
            FailureKind::SensorFrozen => !target.freezable_tags.is_empty(),
            _ => true,
        })
        .collect()
}

/// Slot length of the schedule, ms.
fn slot_ms(plan: &FailurePlan) -> i64 {
    (6 * HOUR_MS).max(2 * plan.max_duration.as_millis() as i64)
}

/// Scheduled failure windows of one device whose slots start in `[from, to)`.
pub(crate) fn scheduled_windows(
    seed: u64,
    plan: &FailurePlan,
    target: &ScheduleTarget<'_>,
    from: SimMs,
    to: SimMs,
) -> Vec<Window> {
    let kinds = applicable(plan, target);
    if plan.rate_per_day <= 0.0 || kinds.is_empty() {
        return Vec::new();
    }
    let slot = slot_ms(plan);
    let probability = (plan.rate_per_day * slot as f64 / DAY_MS as f64).min(1.0);
    let first = from.div_euclid(slot) + i64::from(from.rem_euclid(slot) != 0);
    let (min_d, max_d) = (
        plan.min_duration.as_millis() as f64,
        plan.max_duration.as_millis() as f64,
    );
    let device_key = hash_str(target.name);
    let mut windows = Vec::new();
    let mut k = first;
    while k * slot < to {
        let h = |part: u64| unit(key(&[seed, device_key, k as u64, part]));
        if h(0) < probability {
            let kind = kinds[((h(1) * kinds.len() as f64) as usize).min(kinds.len() - 1)];
            let duration = (min_d.ln() + (max_d.ln() - min_d.ln()) * h(2)).exp() as i64;
            let start = k * slot + (h(3) * (slot - duration) as f64) as i64;
            let pick = |len: usize| ((h(4) * len as f64) as usize).min(len.saturating_sub(1));
            let failure = match kind {
                FailureKind::PumpOff => Failure::PumpOff,
                FailureKind::RodPart => Failure::RodPart,
                FailureKind::GasLock => Failure::GasLock,
                FailureKind::SensorFrozen => Failure::SensorFrozen,
                FailureKind::DeviceSilent => Failure::DeviceSilent,
                FailureKind::SlowResponse => Failure::SlowResponse(plan.slow_delay),
                FailureKind::Exception => {
                    Failure::Exception(plan.exception_codes[pick(plan.exception_codes.len())])
                }
            };
            windows.push(Window {
                device: target.index,
                failure,
                start,
                end: start + duration,
                frozen_tag: (kind == FailureKind::SensorFrozen)
                    .then(|| target.freezable_tags[pick(target.freezable_tags.len())]),
                source: FailureSource::Scheduled,
            });
        }
        k += 1;
    }
    windows
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(rate: f64) -> FailurePlan {
        FailurePlan {
            rate_per_day: rate,
            ..FailurePlan::default()
        }
    }

    const TAGS: [usize; 3] = [0, 2, 5];

    fn target(lift: bool) -> ScheduleTarget<'static> {
        ScheduleTarget {
            name: "well-001-rod-pump-controller",
            index: 0,
            lift,
            freezable_tags: &TAGS,
        }
    }

    #[test]
    fn zero_rate_schedules_nothing() {
        assert!(scheduled_windows(1, &plan(0.0), &target(true), 0, 100 * DAY_MS).is_empty());
    }

    #[test]
    fn schedule_is_deterministic_non_overlapping_and_in_range() {
        let p = plan(2.0);
        let from = 1_767_225_600_123;
        let to = from + 30 * DAY_MS;
        let a = scheduled_windows(9, &p, &target(true), from, to);
        let b = scheduled_windows(9, &p, &target(true), from, to);
        assert_eq!(a, b);
        let c = scheduled_windows(10, &p, &target(true), from, to);
        assert_ne!(a, c);
        // About rate × days events (slots cap the rate at one per slot).
        assert!((30..=90).contains(&a.len()), "{}", a.len());
        for pair in a.windows(2) {
            assert!(pair[0].end <= pair[1].start);
        }
        for w in &a {
            assert!(w.start >= from && w.start < to + slot_ms(&p));
            let d = w.end - w.start;
            assert!(d >= p.min_duration.as_millis() as i64 - 1);
            assert!(d <= p.max_duration.as_millis() as i64);
            match w.failure {
                Failure::SensorFrozen => assert!(TAGS.contains(&w.frozen_tag.unwrap())),
                Failure::Exception(code) => assert!(p.exception_codes.contains(&code)),
                _ => assert!(w.frozen_tag.is_none()),
            }
        }
    }

    #[test]
    fn process_failures_only_on_lift_equipment() {
        let p = plan(4.0);
        let ws = scheduled_windows(3, &p, &target(false), 0, 60 * DAY_MS);
        assert!(!ws.is_empty());
        assert!(ws.iter().all(|w| !w.failure.is_physical()));
        let ws = scheduled_windows(3, &p, &target(true), 0, 60 * DAY_MS);
        assert!(ws.iter().any(|w| w.failure.is_physical()));
    }

    #[test]
    fn schedule_file_round_trips_through_json() {
        let file = ScheduleFile {
            seed: 4,
            time_scale: 60.0,
            clock_origin_ms: 1_767_225_600_000,
            horizon_end_sim_ms: 1_767_225_600_000 + DAY_MS,
            events: vec![FailureEvent {
                well: "well-001".into(),
                device: "well-001-esp-drive".into(),
                kind: FailureKind::Exception,
                tag: None,
                delay_ms: None,
                exception_code: Some(6),
                start_ms: 1,
                end_ms: 2,
                sim_start_ms: 3,
                sim_end_ms: 4,
                source: FailureSource::Injected,
            }],
        };
        let text = file.to_json();
        assert!(text.contains("\"exception\"") && text.contains("\"injected\""));
        assert_eq!(ScheduleFile::from_json(&text).unwrap(), file);
    }
}
