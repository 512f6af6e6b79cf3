//! The fleet: wells, their devices, and the shared, lock-protected history of each well.
//!
//! Built once from a [`FleetConfig`]: profiles are resolved (built-in, or `profile_dir`
//! first), each well's device list is fixed (alternatives `"a|b"` picked from the seed),
//! devices get unit ids 1, 2, … and names `"{well}-{profile id}"` (a `-2`, `-3` suffix for
//! repeats), the well's lift type follows from its lift equipment, its parameters are drawn,
//! and the seeded failure schedule is laid into its history.
//!
//! Concurrency: each well's [`WellHistory`] sits behind an `RwLock`. Reads (every Modbus
//! request, `expected()`) take the read lock; writes and injections take the write lock
//! briefly and bump the well's generation, which invalidates the cached register images of
//! its devices.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, RwLock, RwLockReadGuard};
use std::time::Duration;

use firmware_profiles::{Profile, RawValue};

use crate::clock::SimClock;
use crate::config::FleetConfig;
use crate::device::{Device, Image};
use crate::error::SimError;
use crate::failure::{Failure, FailureEvent, FailureSource, ScheduleTarget, scheduled_windows};
use crate::model::params::{Lift, SimMs, WellParams};
use crate::model::timeline::{WellHistory, Window, Write};
use crate::model::{DeviceInfo, Eval, Role};
use crate::noise::{hash_str, key, unit};

/// One well.
#[derive(Debug)]
pub(crate) struct Well {
    pub name: String,
    pub params: WellParams,
    /// Global indices of its devices, in unit-id order.
    pub devices: Vec<usize>,
    pub infos: Vec<DeviceInfo>,
    history: RwLock<WellHistory>,
}

impl Well {
    pub fn history(&self) -> RwLockReadGuard<'_, WellHistory> {
        self.history.read().unwrap_or_else(|e| e.into_inner())
    }

    fn mutate(&self, f: impl FnOnce(&mut WellHistory)) {
        let mut h = self.history.write().unwrap_or_else(|e| e.into_inner());
        f(&mut h);
        h.generation += 1;
    }

    /// The device answering to `unit` (255 = the well's first device, as for a Modbus TCP
    /// server addressed without a unit id).
    pub fn device_by_unit(&self, unit: u8, devices: &[Device]) -> Option<usize> {
        if unit == 255 {
            return self.devices.first().copied();
        }
        self.devices
            .iter()
            .copied()
            .find(|d| devices[*d].unit_id == unit)
    }
}

/// How a device answers at a moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct CommState {
    pub silent: bool,
    pub delay: Option<Duration>,
    pub exception: Option<u8>,
}

/// The simulated fleet.
#[derive(Debug)]
pub(crate) struct Fleet {
    pub seed: u64,
    pub clock: SimClock,
    pub wells: Vec<Well>,
    pub devices: Vec<Device>,
    by_name: HashMap<String, usize>,
    pub horizon_end: SimMs,
}

/// Resolves profile ids: `profile_dir` first, then the built-in profiles.
struct ProfileSource {
    dir: Vec<(String, Arc<Profile>)>,
    cache: HashMap<String, Arc<Profile>>,
}

impl ProfileSource {
    fn new(dir: Option<&Path>) -> Result<ProfileSource, SimError> {
        let dir = match dir {
            Some(d) => firmware_profiles::load_dir(d)?
                .into_iter()
                .map(|(id, p)| (id, Arc::new(p)))
                .collect(),
            None => Vec::new(),
        };
        Ok(ProfileSource {
            dir,
            cache: HashMap::new(),
        })
    }

    fn get(&mut self, id: &str) -> Result<Arc<Profile>, SimError> {
        if let Some((_, p)) = self.dir.iter().find(|(i, _)| i == id) {
            return Ok(Arc::clone(p));
        }
        if let Some(p) = self.cache.get(id) {
            return Ok(Arc::clone(p));
        }
        let p = firmware_profiles::builtin_profile(id)
            .map(Arc::new)
            .ok_or_else(|| {
                let mut known: Vec<&str> = firmware_profiles::builtin()
                    .iter()
                    .map(|(i, _)| *i)
                    .collect();
                known.extend(self.dir.iter().map(|(i, _)| i.as_str()));
                SimError::UnknownProfile {
                    id: id.to_owned(),
                    known: known.join(", "),
                }
            })?;
        self.cache.insert(id.to_owned(), Arc::clone(&p));
        Ok(p)
    }
}

/// Zero-padded well number width: at least 3 digits.
fn well_name(prefix: &str, n: usize, total: usize) -> String {
    let width = total.to_string().len().max(3);
    format!("{prefix}-{n:0width$}")
}

/// The profile id chosen for entry `entry` (`"a|b|c"`) of `well`.
fn choose(seed: u64, well: &str, index: usize, entry: &str) -> String {
    let alternatives: Vec<&str> = entry.split('|').map(str::trim).collect();
    let u = unit(key(&[
        seed,
        hash_str(well),
        hash_str("device-choice"),
        index as u64,
    ]));
    let i = ((u * alternatives.len() as f64) as usize).min(alternatives.len() - 1);
    alternatives[i].to_owned()
}

impl Fleet {
    /// Builds the fleet; `start_ms` is the wall-clock start (default clock origin).
    pub fn build(cfg: &FleetConfig, start_ms: i64) -> Result<Fleet, SimError> {
        cfg.validate()?;
        let origin_ms = cfg
            .clock_origin
            .map_or(start_ms, crate::clock::system_time_ms);
        let clock = SimClock {
            origin_ms,
            scale: cfg.time_scale,
        };
        let mut source = ProfileSource::new(cfg.profile_dir.as_deref())?;
        let mut fleet = Fleet {
            seed: cfg.seed,
            clock,
            wells: Vec::with_capacity(cfg.wells),
            devices: Vec::new(),
            by_name: HashMap::new(),
            horizon_end: origin_ms + cfg.failures.horizon.as_millis() as i64,
        };
        for n in 1..=cfg.wells {
            fleet.add_well(cfg, &mut source, well_name(&cfg.well_prefix, n, cfg.wells))?;
        }
        Ok(fleet)
    }

    fn add_well(
        &mut self,
        cfg: &FleetConfig,
        source: &mut ProfileSource,
        name: String,
    ) -> Result<(), SimError> {
        let well = self.wells.len();
        let mut globals = Vec::new();
        let mut used: HashMap<String, usize> = HashMap::new();
        for (i, entry) in cfg.devices_per_well.iter().enumerate() {
            let id = choose(cfg.seed, &name, i, entry);
            let profile = source.get(&id)?;
            let count = used.entry(id.clone()).or_default();
            *count += 1;
            let device_name = if *count == 1 {
                format!("{name}-{id}")
            } else {
                format!("{name}-{id}-{count}")
            };
            let unit_id = u8::try_from(i + 1).expect("validated: at most 247 devices per well");
            let device = Device::new(
                cfg.seed,
                device_name.clone(),
                (well, &name),
                i,
                (id, profile),
                unit_id,
            );
            self.by_name.insert(device_name, self.devices.len());
            globals.push(self.devices.len());
            self.devices.push(device);
        }
        let infos: Vec<DeviceInfo> = globals
            .iter()
            .map(|d| self.devices[*d].info(cfg.seed))
            .collect();
        let lift = infos
            .iter()
            .find_map(|i| i.role.lift())
            .unwrap_or(Lift::Flowing);
        let params = WellParams::draw(cfg.seed, &name, lift);
        let mut infos = infos;
        let origin_day = self
            .clock
            .origin_ms
            .div_euclid(crate::model::params::DAY_MS);
        for dev in 0..infos.len() {
            if infos[dev].role == Role::GasDetector {
                let empty = WellHistory::default();
                let eval = Eval {
                    p: &params,
                    h: &empty,
                    devices: &infos,
                    dev,
                    t: self.clock.origin_ms,
                };
                let base = eval.alarms_before_day(origin_day);
                infos[dev].alarm_base = Some((origin_day, base));
            }
        }
        let mut history = WellHistory::default();
        for (i, d) in globals.iter().enumerate() {
            let device = &self.devices[*d];
            let freezable = device.freezable_tags();
            let target = ScheduleTarget {
                name: &device.name,
                index: i,
                lift: infos[i].role.lift().is_some(),
                freezable_tags: &freezable,
            };
            history.windows.extend(scheduled_windows(
                cfg.seed,
                &cfg.failures,
                &target,
                self.clock.origin_ms,
                self.horizon_end,
            ));
        }
        history.windows.sort_by_key(|w| (w.start, w.device));
        self.wells.push(Well {
            params,
            name,
            devices: globals,
            infos,
            history: RwLock::new(history),
        });
        Ok(())
    }

    /// Global index of the device named `name`.
    pub fn device_index(&self, name: &str) -> Result<usize, SimError> {
        self.by_name
            .get(name)
            .copied()
            .ok_or_else(|| SimError::UnknownDevice {
                name: name.to_owned(),
            })
    }

    fn eval<'a>(&'a self, d: &Device, h: &'a WellHistory, second: SimMs) -> Eval<'a> {
        let well = &self.wells[d.well];
        Eval {
            p: &well.params,
            h,
            devices: &well.infos,
            dev: d.index,
            t: second,
        }
    }

    /// Raw value of `tag` (by name) of device `name` at wall-clock `at_ms`.
    pub fn expected(&self, name: &str, tag: &str, at_ms: i64) -> Option<RawValue> {
        let d = &self.devices[*self.by_name.get(name)?];
        let index = d.profile.tags.iter().position(|t| t.name == tag)?;
        let h = self.wells[d.well].history();
        let eval = self.eval(d, &h, self.clock.sim_second(at_ms));
        Some(d.raw_value(index, &eval))
    }

    /// The register image of device `d` at wall-clock `now_ms` (cached per second).
    pub fn image(&self, d: usize, now_ms: i64) -> Arc<Image> {
        let device = &self.devices[d];
        let second = self.clock.sim_second(now_ms);
        let h = self.wells[device.well].history();
        if let Some(image) = device.cached(second, h.generation) {
            return image;
        }
        device.render(&self.eval(device, &h, second), h.generation)
    }

    /// How device `d` answers at wall-clock `now_ms`.
    pub fn comm_state(&self, d: usize, now_ms: i64) -> CommState {
        let device = &self.devices[d];
        let t = self.clock.sim_ms(now_ms);
        let h = self.wells[device.well].history();
        let mut state = CommState::default();
        for w in h.active_on(device.index, t) {
            match w.failure {
                Failure::DeviceSilent => state.silent = true,
                Failure::SlowResponse(delay) => {
                    state.delay = Some(state.delay.map_or(delay, |d| d.max(delay)));
                }
                Failure::Exception(code) => state.exception = Some(code),
                _ => {}
            }
        }
        state
    }

    /// Records client writes `(tag index, engineering value)` to device `d` at wall-clock
    /// `now_ms`; they take effect from the start of the current simulated second.
    pub fn write(&self, d: usize, now_ms: i64, values: &[(usize, f64)]) {
        let device = &self.devices[d];
        let at = self.clock.sim_second(now_ms);
        self.wells[device.well].mutate(|h| {
            for (tag, value) in values {
                h.writes.push(Write {
                    device: device.index,
                    tag: *tag,
                    at,
                    value: *value,
                });
            }
        });
        tracing::debug!(device = %device.name, writes = values.len(), "setpoint write");
    }

    /// Adds a failure window on device `name` from the simulated second of wall-clock
    /// `now_ms` for `duration` (wall-clock; scaled to simulated time).
    pub fn inject(
        &self,
        name: &str,
        failure: Failure,
        duration: Duration,
        now_ms: i64,
    ) -> Result<(), SimError> {
        let d = self.device_index(name)?;
        let device = &self.devices[d];
        let well = &self.wells[device.well];
        let not_applicable = || SimError::NotApplicable {
            device: name.to_owned(),
            kind: failure.kind(),
        };
        if failure.is_physical() && well.infos[device.index].role.lift().is_none() {
            return Err(not_applicable());
        }
        // From the start of the current simulated second, like writes: the very next read
        // sees the failure.
        let start = self.clock.sim_second(now_ms);
        let length = (duration.as_millis() as f64 * self.clock.scale).ceil() as i64;
        let frozen_tag = match failure {
            Failure::SensorFrozen => {
                let candidates = device.freezable_tags();
                if candidates.is_empty() {
                    return Err(not_applicable());
                }
                let u = unit(key(&[self.seed, hash_str(name), start as u64]));
                Some(candidates[((u * candidates.len() as f64) as usize).min(candidates.len() - 1)])
            }
            _ => None,
        };
        well.mutate(|h| {
            h.windows.push(Window {
                device: device.index,
                failure,
                start,
                end: start + length.max(1),
                frozen_tag,
                source: FailureSource::Injected,
            });
        });
        tracing::info!(device = name, ?failure, ?duration, "failure injected");
        Ok(())
    }

    /// Every failure window of the fleet (scheduled within the horizon, and injected), as
    /// events sorted by start.
    pub fn events(&self) -> Vec<FailureEvent> {
        let mut events = Vec::new();
        for well in &self.wells {
            let h = well.history();
            for w in &h.windows {
                let device = &self.devices[well.devices[w.device]];
                events.push(FailureEvent {
                    well: well.name.clone(),
                    device: device.name.clone(),
                    kind: w.failure.kind(),
                    tag: w.frozen_tag.map(|t| device.profile.tags[t].name.clone()),
                    delay_ms: match w.failure {
                        Failure::SlowResponse(d) => Some(d.as_millis() as u64),
                        _ => None,
                    },
                    exception_code: match w.failure {
                        Failure::Exception(c) => Some(c),
                        _ => None,
                    },
                    start_ms: self.clock.wall_ms(w.start),
                    end_ms: self.clock.wall_ms(w.end),
                    sim_start_ms: w.start,
                    sim_end_ms: w.end,
                    source: w.source,
                });
            }
        }
        events.sort_by(|a, b| (a.start_ms, &a.device).cmp(&(b.start_ms, &b.device)));
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_pad_to_the_fleet_size() {
        assert_eq!(well_name("well", 7, 10), "well-007");
        assert_eq!(well_name("pad", 42, 5000), "pad-0042");
    }

    #[test]
    fn alternatives_are_picked_per_well_deterministically() {
        let entry = "rod-pump-controller|esp-drive|plunger-lift-controller";
        let picks: Vec<String> = (0..60)
            .map(|i| choose(1, &format!("well-{i:03}"), 0, entry))
            .collect();
        for alt in entry.split('|') {
            assert!(picks.iter().any(|p| p == alt), "{alt} never chosen");
        }
        assert_eq!(
            choose(1, "well-001", 0, entry),
            choose(1, "well-001", 0, entry)
        );
        assert_eq!(choose(1, "well-001", 0, "tank-gauge"), "tank-gauge");
    }
}

#[cfg(test)]
mod model_range_tests {
    use super::*;
    use crate::config::FailurePlan;
    use crate::model::params::DAY_MS;

    /// A fleet with every shipped profile and a high failure rate.
    fn busy_fleet(seed: u64) -> Fleet {
        let cfg = FleetConfig {
            seed,
            wells: 16,
            devices_per_well: vec![
                "rod-pump-controller|esp-drive|plunger-lift-controller".into(),
                "gas-flow-computer".into(),
                "tank-gauge".into(),
                "gas-detector".into(),
            ],
            failures: FailurePlan {
                rate_per_day: 6.0,
                ..FailurePlan::default()
            },
            ..FleetConfig::default()
        };
        Fleet::build(&cfg, 1_790_000_000_000).unwrap()
    }

    #[test]
    fn every_modelled_value_is_inside_the_tags_valid_range() {
        let mut violations = Vec::new();
        let mut unknown = std::collections::BTreeSet::new();
        for seed in [1, 2] {
            let fleet = busy_fleet(seed);
            for device in &fleet.devices {
                let well = &fleet.wells[device.well];
                let h = well.history();
                for step in 0..40 {
                    let t = fleet.clock.origin_ms + step * (DAY_MS / 9) + step * 7_777_000;
                    let t = t - t.rem_euclid(1000);
                    let eval = fleet.eval(device, &h, t);
                    for tag in &device.profile.tags {
                        let Some(metric) = tag.metric.as_deref() else {
                            continue;
                        };
                        let Some(v) = eval.metric(metric) else {
                            unknown.insert(format!("{}:{metric}", device.profile_id));
                            continue;
                        };
                        let ok = v.is_finite()
                            && tag
                                .valid_range
                                .is_none_or(|(lo, hi)| (lo..=hi).contains(&v));
                        if !ok && violations.len() < 40 {
                            violations.push(format!(
                                "{} {} {metric} = {v} not in {:?}",
                                device.name, tag.name, tag.valid_range
                            ));
                        }
                    }
                }
            }
        }
        assert!(unknown.is_empty(), "metrics without a model: {unknown:?}");
        assert!(violations.is_empty(), "{violations:#?}");
    }
}
