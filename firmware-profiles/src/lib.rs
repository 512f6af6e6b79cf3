//! Firmware profiles: device register maps as data, the canonical metric vocabulary, and
//! the register codec shared by the agent (which polls devices) and the simulator (which
//! serves them).
//!
//! A *profile* describes one device model: Modbus transport defaults and a list of *tags*.
//! Each tag says where a value lives (register table, address, data type, byte and word
//! order), how to turn the raw register content into engineering units (scale, offset,
//! unit), what is plausible (valid range), how to report it (deadband, poll group), whether
//! setpoint writes are allowed, and which canonical metric of the [`vocabulary`] it is.
//! Analytics and dashboards only ever see canonical metrics, never vendor registers.
//!
//! # Modules
//!
//! * [`file`](mod@file): the TOML format (serde types, `deny_unknown_fields`, defaults).
//! * [`model`]: the validated domain types ([`Profile`], [`Tag`], ...), no serde.
//! * [`codec`]: registers <-> raw values <-> engineering values.
//! * [`vocabulary`]: canonical metric names, units and kinds.
//! * [`error`]: [`ProfileError`], listing every rule violation of a file at once.
//! * `validate` (private): the rules, applied by [`parse_profile`].
//!
//! Loading is a pipeline: TOML text -> [`file::ProfileFile`] (syntax, unknown keys, types,
//! humantime durations) -> [`Profile`] (shape: `bit` / `registers` keys fit `type`) ->
//! validation (semantics). A [`Profile`] handed out by this crate has passed all three.
//!
//! # Usage
//!
//! ```
//! use firmware_profiles::{RawValue, builtin_profile};
//!
//! let profile = builtin_profile("rod-pump-controller").expect("shipped profile");
//! let (alias, tag) = profile.tag_for_metric("tubing_pressure_psi").expect("mapped");
//! assert_eq!((tag.address, tag.register_count()), (15, 1));
//! // Register content 1234 is psi x10:
//! let raw = tag.decode(&[1234]).unwrap();
//! assert_eq!(raw, RawValue::Int(1234));
//! assert_eq!(tag.to_engineering(&raw), Some(123.4));
//! // A setpoint write goes the other way:
//! let spm = profile.tag("speed_setpoint").unwrap();
//! assert!(spm.writable && spm.in_valid_range(8.5));
//! let regs = spm.encode(&spm.from_engineering(8.5).unwrap()).unwrap();
//! assert_eq!(regs, vec![85]);
//! assert_eq!(profile.tags[usize::from(alias)].name, "tubing_pressure");
//! ```
//!
//! # File format
//!
//! One UTF-8 TOML file per device model, `profiles/<id>.toml`; the file stem is the profile
//! id the agent and simulator configs refer to. Unknown keys are errors.
//!
//! ```toml
//! model = "Example RTU"          # required, non-empty
//! vendor = "Acme"                # required
//! description = "What it is."    # optional
//!
//! [transport]                    # optional table; all keys optional
//! unit_id = 1                    # Modbus unit id, default 1
//! timeout = "1s"                 # humantime ("500ms", "2s"), > 0, default "1s"
//! max_registers_per_request = 64 # 1..=125, default 125
//! max_bits_per_request = 2000    # 1..=2000, default 2000
//! max_gap = 4                    # undeclared registers the planner may bridge, default 0
//! baud_rate = 9600               # RTU only, > 0, default 9600
//! data_bits = 8                  # RTU only, 7 or 8, default 8
//! parity = "none"                # RTU only, none | even | odd, default "none"
//! stop_bits = 1                  # RTU only, 1 or 2, default 1
//!
//! [[tags]]                              # one table per tag; order = metric alias
//! name = "tubing_pressure"              # required, unique, snake_case [a-z0-9_]
//! metric = "tubing_pressure_psi"        # canonical metric, or custom.<name>; omit only for string info tags
//! # kind = "gauge"                      # custom metrics only: gauge | counter | state
//! register = "holding_register"         # coil | discrete_input | input_register | holding_register
//! address = 100                         # zero-based protocol address (40101 -> 100)
//! type = "u16"                          # bool u16 i16 u32 i32 f32 u64 i64 f64 string bit
//! # bit = 3                             # with type = "bit" only: 0..=15, 0 = LSB
//! # registers = 8                       # with type = "string" only: 2 ASCII chars each
//! byte_order = "big"                    # big (default) | little: bytes within a register
//! word_order = "high_first"             # high_first (default) | low_first: for 32/64-bit
//! scale = 0.1                           # engineering = raw * scale + offset; default 1
//! offset = 0.0                          # default 0
//! unit = "psi"                          # the metric's vocabulary unit (custom: 1-16 of [A-Za-z0-9%/._^-])
//! valid_range = [0, 5000]               # engineering units, min < max; needed if writable
//! deadband = 1.0                        # engineering units, >= 0, default 0 = every poll
//! poll_group = "fast"                   # required; intervals are set in the agent config
//! writable = false                      # coils and holding registers only; default false
//! description = "Tubing pressure, psi x10"
//! ```
//!
//! # Writing a profile from a vendor register map
//!
//! 1. **Addresses.** Use the zero-based protocol address. Vendor manuals often print
//!    Modicon numbers: 00001 = coil 0, 10001 = discrete input 0, 30001 = input register 0,
//!    40001 = holding register 0. Enron Modbus devices use their register numbers
//!    (5001, 7001, ...) as addresses directly.
//! 2. **Register table.** Coils and discrete inputs take `type = "bool"`. A flag inside a
//!    status word is `type = "bit"` with `bit = n` on the input or holding register; several
//!    bit tags may share one register as long as their bits differ.
//! 3. **Data type and orders.** 32-bit values span 2 registers, 64-bit values 4, strings
//!    `registers`. If a known value reads wrong, try the word order first (`low_first` is
//!    common for counters, "CDAB"), then `byte_order = "little"` ("BADC"). The `codec`
//!    module documents the exact layouts; `tests/codec_golden.rs` has worked examples.
//! 4. **Scaling.** The manual's "x10" means `scale = 0.1`. Offsets handle biased encodings
//!    (e.g. temperature stored as degF + 40: `offset = -40`). Boolean and string tags take
//!    no scaling.
//! 5. **Metric and unit.** Pick the canonical metric ([`vocabulary::all`]) that means
//!    exactly this quantity and copy its unit; each metric at most once per profile. If none
//!    fits, add one to the vocabulary (append only) rather than bending a near miss, or,
//!    for a value only this device has (a generic register bank, a vendor diagnostic),
//!    declare a custom metric: `metric = "custom.<snake_case name>"` with its own `unit` and
//!    `kind = "gauge" | "counter" | "state"` (see [`vocabulary`], "Custom metrics").
//!    Custom metrics are stored and served by their full name but never read by
//!    analytics; a custom name may not be a canonical name, and any namespace other than
//!    `custom.` is refused. String tags (serial number, firmware version) carry no metric
//!    and no unit.
//! 6. **Range, deadband, poll group.** `valid_range` is the physically plausible span (the
//!    transmitter range), not the alarm limits; readings outside are flagged uncertain.
//!    Counters (running totals) have no range. `deadband` suppresses reports that changed
//!    less than it. Use `"fast"` for live values and `"slow"` for totals, statistics,
//!    setpoints and identity.
//! 7. **Setpoints.** `writable = true` only on holding registers and coils, and a writable
//!    numeric tag needs `valid_range`: the agent refuses writes outside it.
//! 8. **Transport.** Set the device's request limits (`max_registers_per_request`) and
//!    `max_gap = 0` unless the device tolerates reads of unmapped registers.
//! 9. **Order.** The tag index is its metric alias on the wire: once a profile ships,
//!    append new tags at the end and never reorder or remove tags.
//!
//! Loading reports every broken rule with the file and tag name; the full list of rules
//! is [`error::Problem`].

#![warn(missing_docs)]

pub mod codec;
pub mod error;
pub mod file;
pub mod model;
mod validate;
pub mod vocabulary;

use std::path::Path;
use std::sync::OnceLock;

pub use codec::CodecError;
pub use error::{Issue, Problem, ProfileError};
pub use model::{
    ByteOrder, DataType, Parity, Profile, RawValue, RegisterType, Tag, TransportDefaults, WordOrder,
};

/// Parses and validates profile text. `source_name` (usually the file name) labels errors.
pub fn parse_profile(source_name: &str, toml: &str) -> Result<Profile, ProfileError> {
    let file: file::ProfileFile = toml::from_str(toml).map_err(|e| ProfileError::Syntax {
        source_name: source_name.to_owned(),
        message: e.to_string().trim_end().to_owned(),
    })?;
    let invalid = |issues| ProfileError::Invalid {
        source_name: source_name.to_owned(),
        issues,
    };
    let profile = file.into_profile().map_err(invalid)?;
    let issues = validate::validate(&profile);
    if issues.is_empty() {
        Ok(profile)
    } else {
        Err(invalid(issues))
    }
}

/// Reads, parses and validates one profile file.
pub fn load_profile(path: &Path) -> Result<Profile, ProfileError> {
    let text = std::fs::read_to_string(path).map_err(|source| ProfileError::Io {
        path: path.to_owned(),
        source,
    })?;
    let name = path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    parse_profile(&name, &text)
}

/// Loads every `*.toml` file of a directory (not recursive), sorted by file name, as
/// `(profile id = file stem, profile)`. Any bad file fails the whole load.
pub fn load_dir(dir: &Path) -> Result<Vec<(String, Profile)>, ProfileError> {
    let io_error = |source| ProfileError::Io {
        path: dir.to_owned(),
        source,
    };
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_error)? {
        let path = entry.map_err(io_error)?.path();
        if path.is_file() && path.extension().is_some_and(|e| e == "toml") {
            paths.push(path);
        }
    }
    paths.sort();
    let mut profiles: Vec<(String, Profile)> = Vec::with_capacity(paths.len());
    for path in paths {
        let id = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        if profiles.iter().any(|(existing, _)| *existing == id) {
            return Err(ProfileError::DuplicateId { path, id });
        }
        let profile = load_profile(&path)?;
        profiles.push((id, profile));
    }
    Ok(profiles)
}

/// The shipped profiles as `(profile id, TOML text)`, compiled into the binary.
pub fn builtin() -> &'static [(&'static str, &'static str)] {
    BUILTIN
}

static BUILTIN: &[(&str, &str)] = &[
    (
        "rod-pump-controller",
        include_str!("../profiles/rod-pump-controller.toml"),
    ),
    (
        "gas-flow-computer",
        include_str!("../profiles/gas-flow-computer.toml"),
    ),
    ("esp-drive", include_str!("../profiles/esp-drive.toml")),
    (
        "plunger-lift-controller",
        include_str!("../profiles/plunger-lift-controller.toml"),
    ),
    ("tank-gauge", include_str!("../profiles/tank-gauge.toml")),
    (
        "gas-detector",
        include_str!("../profiles/gas-detector.toml"),
    ),
    (
        "generic-40-holding",
        include_str!("../profiles/generic-40-holding.toml"),
    ),
];

/// The shipped profile with this id, parsed (and cached after the first call).
pub fn builtin_profile(id: &str) -> Option<Profile> {
    static PARSED: OnceLock<Vec<(&'static str, Profile)>> = OnceLock::new();
    let parsed = PARSED.get_or_init(|| {
        BUILTIN
            .iter()
            .filter_map(|(id, text)| {
                // The test suite proves every shipped profile valid; were one broken anyway,
                // it would read as absent here rather than abort the process.
                parse_profile(&format!("{id}.toml"), text)
                    .ok()
                    .map(|profile| (*id, profile))
            })
            .collect()
    });
    parsed
        .iter()
        .find(|(candidate, _)| *candidate == id)
        .map(|(_, profile)| profile.clone())
}
