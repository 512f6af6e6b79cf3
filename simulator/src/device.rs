//! A simulated device: a firmware profile bound to a well, its register layout, and the
//! translation of model values into registers.
//!
//! # From model to registers
//!
//! For each tag: the engineering value comes from the model ([`crate::model::Eval`]) by the
//! tag's canonical metric, then [`Tag::from_engineering`] gives the raw value and
//! [`Tag::encode`] the registers — the exact inverse of what a client decoding with the same
//! profile does, so `decode(read) == expected()`. Rules:
//!
//! * Gauges and states are clamped into the tag's valid range (and the data type's range)
//!   before encoding; the model is built to stay inside typical ranges anyway.
//! * Counters (vocabulary kind `Counter`) are floored to whole raw units and, for integer
//!   types, wrap around the data type's range like a real totaliser would.
//! * Metrics the model does not know read as a documented constant: the middle of the
//!   tag's valid range, or the tag's `offset` (raw 0) when it has no range.
//! * Custom metrics (`custom.<name>`) read as a seeded signal of their declared kind
//!   ([`custom_value`]): a gauge moves slowly around a seeded level inside its valid range,
//!   a counter counts 1 to 10 raw units per simulated minute, a state steps through up to 5
//!   codes of its range every 5 to 15 simulated minutes.
//! * String info tags (no metric) read as seeded text chosen by tag name: `serial` →
//!   `"<PROFILE INITIALS>-<6 digits>"`, `firmware`/`version` → `"<1-4>.<00-19>.<00-29>"`,
//!   `model` → the profile's model, `vendor`/`manufacturer` → its vendor, `well`/`site`/
//!   `location`/`lease`/`station`/`tank` → the well name, anything else → the device name; truncated to the
//!   tag's capacity.
//! * Writable tags whose metric the model consumes (`strokes_per_minute`,
//!   `motor_frequency_hz`, `alarm_output_on` and the alarm setpoints) read what the model
//!   makes of the write; any other writable tag holds the last written value.
//! * A sensor-frozen failure makes one tag read its value from the second the failure began.
//!
//! # Register image
//!
//! All tags of a device are evaluated together once per simulated second (and again after
//! any write or injected failure) into a register image, cached in the device; a request
//! copies from the image, so a poll costs a lock and a copy, not a model evaluation.

use std::sync::{Arc, Mutex};

use firmware_profiles::vocabulary::MetricKind;
use firmware_profiles::{DataType, Profile, RawValue, RegisterType, Tag};

use crate::failure::Failure;
use crate::model::params::SimMs;
use crate::model::{DeviceInfo, Eval, Role};
use crate::noise::{hash_str, key, unit};

/// Writable metrics whose reading the model derives from the written value itself.
const MODEL_AWARE_WRITABLE: &[&str] = &[
    "strokes_per_minute",
    "motor_frequency_hz",
    "alarm_output_on",
    "h2s_alarm_low_setpoint_ppm",
    "h2s_alarm_high_setpoint_ppm",
];

/// One table's mapped addresses, ascending, each with the tags (and word within the tag)
/// that make it up. Several bit-in-register tags may share an address.
#[derive(Debug, Default)]
pub(crate) struct Space {
    pub addrs: Vec<u16>,
    pub slots: Vec<Vec<(usize, u16)>>,
}

impl Space {
    fn build(profile: &Profile, table: RegisterType) -> Space {
        let mut entries: Vec<(u16, usize, u16)> = Vec::new();
        for (i, tag) in profile.tags.iter().enumerate() {
            if tag.register == table {
                for w in 0..tag.register_count() {
                    entries.push((tag.address + w, i, w));
                }
            }
        }
        entries.sort_unstable();
        let mut space = Space::default();
        for (addr, tag, word) in entries {
            if space.addrs.last() != Some(&addr) {
                space.addrs.push(addr);
                space.slots.push(Vec::new());
            }
            space
                .slots
                .last_mut()
                .expect("just pushed")
                .push((tag, word));
        }
        space
    }

    /// Index of `addr` in the space, if mapped.
    pub fn find(&self, addr: u16) -> Option<usize> {
        self.addrs.binary_search(&addr).ok()
    }

    /// For each address of `[start, start + count)`: `Some(slot index)` when mapped, `None`
    /// for a readable hole (an unmapped run of at most `max_gap` addresses between two
    /// mapped ones). `Err(())` when any address is neither.
    pub fn plan(&self, start: u16, count: u16, max_gap: u16) -> Result<Vec<Option<usize>>, ()> {
        let end = u32::from(start) + u32::from(count);
        if end > 0x1_0000 {
            return Err(());
        }
        let mut i = self.addrs.partition_point(|a| *a < start);
        let mut out = Vec::with_capacity(usize::from(count));
        for addr in u32::from(start)..end {
            if self.addrs.get(i).is_some_and(|a| u32::from(*a) == addr) {
                out.push(Some(i));
                i += 1;
            } else {
                let bridged = i > 0
                    && i < self.addrs.len()
                    && u32::from(self.addrs[i] - self.addrs[i - 1] - 1) <= u32::from(max_gap);
                if !bridged {
                    return Err(());
                }
                out.push(None);
            }
        }
        Ok(out)
    }
}

/// Register layout of a profile: the four tables.
#[derive(Debug)]
pub(crate) struct Layout {
    pub coils: Space,
    pub discrete: Space,
    pub input: Space,
    pub holding: Space,
}

impl Layout {
    fn build(profile: &Profile) -> Layout {
        Layout {
            coils: Space::build(profile, RegisterType::Coil),
            discrete: Space::build(profile, RegisterType::DiscreteInput),
            input: Space::build(profile, RegisterType::InputRegister),
            holding: Space::build(profile, RegisterType::HoldingRegister),
        }
    }

    pub fn space(&self, table: RegisterType) -> &Space {
        match table {
            RegisterType::Coil => &self.coils,
            RegisterType::DiscreteInput => &self.discrete,
            RegisterType::InputRegister => &self.input,
            RegisterType::HoldingRegister => &self.holding,
        }
    }
}

/// All of a device's values at one simulated second, as raw values and table contents.
#[derive(Debug)]
pub(crate) struct Image {
    pub second: SimMs,
    pub generation: u64,
    pub coils: Vec<bool>,
    pub discrete: Vec<bool>,
    pub input: Vec<u16>,
    pub holding: Vec<u16>,
}

/// A simulated device.
#[derive(Debug)]
pub(crate) struct Device {
    pub name: String,
    pub well: usize,
    /// Index within the well.
    pub index: usize,
    pub profile_id: String,
    pub profile: Arc<Profile>,
    pub unit_id: u8,
    pub layout: Layout,
    /// Seeded text of each string tag (`None` for other tags).
    texts: Vec<Option<String>>,
    /// Whether each tag is a counter.
    counters: Vec<bool>,
    cache: Mutex<Option<Arc<Image>>>,
}

impl Device {
    pub fn new(
        seed: u64,
        name: String,
        (well, well_name): (usize, &str),
        index: usize,
        (profile_id, profile): (String, Arc<Profile>),
        unit_id: u8,
    ) -> Device {
        let texts = profile
            .tags
            .iter()
            .map(|t| match t.data_type {
                DataType::String { registers } => Some(info_text(
                    seed,
                    &name,
                    well_name,
                    &profile_id,
                    &profile,
                    &t.name,
                    usize::from(registers) * 2,
                )),
                _ => None,
            })
            .collect();
        let counters = profile
            .tags
            .iter()
            .map(|t| t.metric_kind() == Some(MetricKind::Counter))
            .collect();
        Device {
            layout: Layout::build(&profile),
            name,
            well,
            index,
            profile_id,
            profile,
            unit_id,
            texts,
            counters,
            cache: Mutex::new(None),
        }
    }

    /// What the model needs to know about this device.
    pub fn info(&self, seed: u64) -> DeviceInfo {
        let metrics = self.profile.tags.iter().filter_map(|t| t.metric.as_deref());
        DeviceInfo {
            key: key(&[seed, hash_str(&self.name)]),
            role: Role::classify(metrics),
            metric_tags: self
                .profile
                .tags
                .iter()
                .enumerate()
                .filter_map(|(i, t)| t.metric.clone().map(|m| (m, i)))
                .collect(),
            alarm_base: None,
        }
    }

    /// Indices of the tags a sensor-frozen failure may pick: measured values (read-only
    /// tags of gauge metrics).
    pub fn freezable_tags(&self) -> Vec<usize> {
        self.profile
            .tags
            .iter()
            .enumerate()
            .filter(|(_, t)| !t.writable && t.metric_kind() == Some(MetricKind::Gauge))
            .map(|(i, _)| i)
            .collect()
    }

    /// Raw value of tag `tag` for the device evaluated by `eval` (whose `t` is a whole
    /// simulated second).
    pub fn raw_value(&self, tag: usize, eval: &Eval<'_>) -> RawValue {
        if let Some(text) = &self.texts[tag] {
            return RawValue::Text(text.clone());
        }
        let frozen_since = eval
            .h
            .active_on(self.index, eval.t)
            .find(|w| w.failure == Failure::SensorFrozen && w.frozen_tag == Some(tag))
            .map(|w| w.start - w.start.rem_euclid(1000));
        let eval = frozen_since.map_or(*eval, |t| eval.at(t));
        let t = &self.profile.tags[tag];
        let eng = self.engineering(tag, t, &eval);
        encode_raw(t, eng, self.counters[tag])
    }

    fn engineering(&self, index: usize, tag: &Tag, eval: &Eval<'_>) -> f64 {
        let metric = tag.metric.as_deref().unwrap_or_default();
        if tag.writable
            && !MODEL_AWARE_WRITABLE.contains(&metric)
            && let Some(w) = eval.h.written(self.index, index, eval.t)
        {
            return w.value;
        }
        if tag.is_custom() {
            return custom_value(tag, eval);
        }
        eval.metric(metric).unwrap_or_else(|| fallback(tag))
    }

    /// The cached image if it is for `second` and `generation`.
    pub fn cached(&self, second: SimMs, generation: u64) -> Option<Arc<Image>> {
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache
            .as_ref()
            .filter(|i| i.second == second && i.generation == generation)
            .cloned()
    }

    /// Evaluates every tag into a register image and caches it.
    pub fn render(&self, eval: &Eval<'_>, generation: u64) -> Arc<Image> {
        let raws: Vec<RawValue> = (0..self.profile.tags.len())
            .map(|i| self.raw_value(i, eval))
            .collect();
        let image = Arc::new(Image {
            second: eval.t,
            generation,
            coils: self.bits(&self.layout.coils, &raws),
            discrete: self.bits(&self.layout.discrete, &raws),
            input: self.words(&self.layout.input, &raws),
            holding: self.words(&self.layout.holding, &raws),
        });
        *self.cache.lock().unwrap_or_else(|e| e.into_inner()) = Some(Arc::clone(&image));
        image
    }

    fn bits(&self, space: &Space, raws: &[RawValue]) -> Vec<bool> {
        space
            .slots
            .iter()
            .map(|slot| matches!(raws[slot[0].0], RawValue::Bool(true)))
            .collect()
    }

    fn words(&self, space: &Space, raws: &[RawValue]) -> Vec<u16> {
        let encoded: Vec<Option<Vec<u16>>> = raws
            .iter()
            .zip(&self.profile.tags)
            .map(|(raw, tag)| {
                (!tag.register.is_bit_table() && !matches!(tag.data_type, DataType::Bit { .. }))
                    .then(|| {
                        tag.encode(raw)
                            .unwrap_or_else(|_| vec![0; tag.register_count().into()])
                    })
            })
            .collect();
        space
            .slots
            .iter()
            .map(|slot| {
                slot.iter().fold(0u16, |acc, (tag, word)| {
                    let t = &self.profile.tags[*tag];
                    match (&encoded[*tag], t.data_type) {
                        (Some(words), _) => words[usize::from(*word)],
                        (None, DataType::Bit { .. }) => {
                            let on = matches!(raws[*tag], RawValue::Bool(true));
                            t.merge_bit(acc, on).unwrap_or(acc)
                        }
                        (None, _) => acc,
                    }
                })
            })
            .collect()
    }
}

/// The engineering value of a custom metric (see the module docs): no physical model knows
/// it, so it is a seeded signal of its declared kind, a pure function of (seed, well,
/// metric, time) like every other value.
pub(crate) fn custom_value(tag: &Tag, eval: &Eval<'_>) -> f64 {
    let metric = tag.metric.as_deref().unwrap_or_default();
    // A seeded spread per metric, in [0, 1).
    let spread = unit(key(&[eval.device().key, hash_str(metric)]));
    match tag.metric_kind() {
        Some(MetricKind::Counter) => {
            // 1 to 10 raw units per simulated minute, since the epoch of simulated time.
            let per_minute = 1.0 + (spread * 10.0).floor();
            tag.offset + tag.scale * (eval.secs() / 60.0 * per_minute).floor()
        }
        Some(MetricKind::State) => {
            // A code that changes every 5 to 15 simulated minutes.
            let period_s = 300.0 + spread * 600.0;
            let step = (eval.secs() / period_s).floor() + (spread * 97.0).floor();
            let (lo, hi) = tag.valid_range.unwrap_or((0.0, 3.0));
            lo + step.rem_euclid((hi - lo).floor().clamp(1.0, 4.0) + 1.0)
        }
        _ => {
            // A slow process around a seeded level within the range.
            let (lo, hi) = tag
                .valid_range
                .unwrap_or((tag.offset, tag.offset + 1000.0 * tag.scale.abs()));
            let level = lo + (hi - lo) * (0.2 + 0.6 * spread);
            let swing = (hi - lo) * 0.1 * eval.process(metric, 120.0 + spread * 600.0);
            (level + swing).clamp(lo, hi)
        }
    }
}

/// The engineering value served for a metric the model does not know.
pub(crate) fn fallback(tag: &Tag) -> f64 {
    match tag.valid_range {
        Some((lo, _)) if tag.data_type.is_boolean() => f64::from(u8::from(lo > 0.0)),
        Some((lo, hi)) => (lo + hi) / 2.0,
        None if tag.data_type.is_boolean() => 0.0,
        None => tag.offset,
    }
}

/// Inclusive raw bounds of an integer data type.
fn int_bounds(data_type: DataType) -> Option<(i64, i64)> {
    Some(match data_type {
        DataType::U16 => (0, i64::from(u16::MAX)),
        DataType::I16 => (i64::from(i16::MIN), i64::from(i16::MAX)),
        DataType::U32 => (0, i64::from(u32::MAX)),
        DataType::I32 => (i64::from(i32::MIN), i64::from(i32::MAX)),
        DataType::U64 => (0, i64::MAX),
        DataType::I64 => (i64::MIN, i64::MAX),
        _ => return None,
    })
}

/// Engineering value → raw value with the clamping / wrapping rules of the module docs.
pub(crate) fn encode_raw(tag: &Tag, eng: f64, counter: bool) -> RawValue {
    let eng = if eng.is_finite() { eng } else { fallback(tag) };
    if tag.data_type.is_boolean() {
        return RawValue::Bool(eng >= 0.5);
    }
    let bounds = int_bounds(tag.data_type);
    if counter && let Some((lo, hi)) = bounds {
        let raw = ((eng - tag.offset) / tag.scale).floor();
        let span = (hi as i128) - (lo as i128) + 1;
        let wrapped = (raw as i128 - lo as i128).rem_euclid(span) + lo as i128;
        return RawValue::Int(wrapped as i64);
    }
    let eng = match tag.valid_range {
        Some((lo, hi)) => eng.clamp(lo, hi),
        None => eng,
    };
    match tag.from_engineering(eng) {
        Ok(raw) => raw,
        Err(_) => match bounds {
            Some((lo, hi)) => {
                let raw = ((eng - tag.offset) / tag.scale).round();
                RawValue::Int(raw.clamp(lo as f64, hi as f64) as i64)
            }
            None => RawValue::Float(if eng > 0.0 {
                f64::from(f32::MAX)
            } else {
                f64::from(f32::MIN)
            }),
        },
    }
}

/// Seeded text of a string info tag (see the module docs).
fn info_text(
    seed: u64,
    device: &str,
    well: &str,
    profile_id: &str,
    profile: &Profile,
    tag: &str,
    capacity: usize,
) -> String {
    let h = |part: u64| key(&[seed, hash_str(device), hash_str(tag), part]);
    let name = tag.to_ascii_lowercase();
    let has = |words: &[&str]| words.iter().any(|w| name.contains(w));
    let text = if has(&["serial"]) {
        let initials: String = profile_id
            .split(['-', '_'])
            .filter_map(|w| w.chars().next())
            .map(|c| c.to_ascii_uppercase())
            .collect();
        format!("{initials}-{:06}", h(0) % 1_000_000)
    } else if has(&["firmware", "version"]) {
        format!(
            "{}.{:02}.{:02}",
            1 + (unit(h(1)) * 4.0) as u32,
            (unit(h(2)) * 20.0) as u32,
            (unit(h(3)) * 30.0) as u32
        )
    } else if has(&["model"]) {
        profile.model.clone()
    } else if has(&["vendor", "manufacturer"]) {
        profile.vendor.clone()
    } else if has(&["well", "site", "location", "lease", "station", "tank"]) {
        well.to_owned()
    } else {
        device.to_owned()
    };
    text.chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .take(capacity)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(tags: &str) -> Profile {
        firmware_profiles::parse_profile(
            "test.toml",
            &format!("model = \"M\"\nvendor = \"V\"\n[transport]\nmax_gap = 2\n{tags}"),
        )
        .unwrap()
    }

    const TAGS: &str = r#"
[[tags]]
name = "a"
metric = "tubing_pressure_psi"
register = "holding_register"
address = 10
type = "f32"
unit = "psi"
poll_group = "p"
[[tags]]
name = "b"
metric = "stroke_count_total"
register = "holding_register"
address = 14
type = "u16"
unit = "count"
poll_group = "p"
[[tags]]
name = "c"
metric = "valve_open"
register = "holding_register"
address = 15
type = "bit"
bit = 3
unit = "bool"
poll_group = "p"
[[tags]]
name = "d"
metric = "tank_high_level"
register = "holding_register"
address = 15
type = "bit"
bit = 0
unit = "bool"
poll_group = "p"
[[tags]]
name = "serial_no"
register = "holding_register"
address = 30
type = "string"
registers = 4
poll_group = "p"
"#;

    #[test]
    fn layout_merges_bits_and_plans_gaps() {
        let p = profile(TAGS);
        let s = Space::build(&p, RegisterType::HoldingRegister);
        assert_eq!(s.addrs[..4], [10, 11, 14, 15]);
        assert_eq!(s.slots[3].len(), 2);
        // 12..13 is a 2-register hole: bridged with max_gap 2.
        assert_eq!(
            s.plan(10, 6, 2).unwrap(),
            vec![Some(0), Some(1), None, None, Some(2), Some(3)]
        );
        assert!(s.plan(10, 6, 1).is_err(), "hole wider than max_gap");
        assert!(s.plan(9, 2, 2).is_err(), "before the first register");
        assert_eq!(s.plan(15, 2, 20).unwrap(), vec![Some(3), None]);
        assert!(
            s.plan(15, 2, 2).is_err(),
            "14-register hole up to the string"
        );
        assert!(s.plan(34, 1, 100).is_err(), "after the last register");
        assert!(s.plan(65_535, 2, 2).is_err(), "past the address space");
    }

    #[test]
    fn counters_wrap_and_gauges_clamp() {
        let p = profile(TAGS);
        let counter = &p.tags[1];
        assert_eq!(encode_raw(counter, 65_537.9, true), RawValue::Int(1));
        let mut ranged = p.tags[0].clone();
        ranged.valid_range = Some((0.0, 100.0));
        assert_eq!(encode_raw(&ranged, 250.0, false), RawValue::Float(100.0));
        let mut u16_gauge = p.tags[1].clone();
        u16_gauge.valid_range = None;
        assert_eq!(encode_raw(&u16_gauge, -5.0, false), RawValue::Int(0));
        assert_eq!(encode_raw(&p.tags[2], 1.0, false), RawValue::Bool(true));
    }

    #[test]
    fn fallback_is_inside_the_valid_range() {
        let p = profile(TAGS);
        let mut t = p.tags[0].clone();
        t.valid_range = Some((10.0, 30.0));
        assert_eq!(fallback(&t), 20.0);
        t.valid_range = None;
        t.offset = -40.0;
        assert_eq!(fallback(&t), -40.0);
    }

    #[test]
    fn info_text_is_seeded_and_fits() {
        let p = profile(TAGS);
        let a = info_text(
            1,
            "well-001-x",
            "well-001",
            "rod-pump-controller",
            &p,
            "serial_no",
            8,
        );
        let b = info_text(
            2,
            "well-001-x",
            "well-001",
            "rod-pump-controller",
            &p,
            "serial_no",
            8,
        );
        assert!(a.starts_with("RPC-") && a.len() == 8, "{a}");
        assert_ne!(a, b);
        let v = info_text(1, "d", "w", "x", &p, "firmware_version", 8);
        assert!(v.split('.').count() == 3, "{v}");
        assert_eq!(info_text(1, "d", "w", "x", &p, "model_name", 1), "M");
    }
}
