//! `detect`: anomaly detection for well telemetry. Pure: no I/O, no async, no clock (every
//! time is passed in). The cloud runs it inside the ingest transaction (the `store` keeps
//! each device's [`DeviceState`] and the findings); `wellpulse-cloud detect --input` runs
//! the same detectors over a CSV file ([`offline`]).
//!
//! # The public contract (used by `ingest`, `alerts`, `api`, `server`)
//!
//! - [`Detector::observe`]: one device's samples of one batch → [`Signal`]s, the
//!   transitions of its *conditions* (a condition is one finding kind on one subject:
//!   `pump_off` on the device, `pressure_anomaly` on `tubing_pressure_psi`, rule 7 ...).
//!   A condition becomes active (signal `active = true`) and later clears (`active =
//!   false`); while it stays active nothing more is emitted. Signals of a historical
//!   batch have `page = false`; the first live observation of a condition that became
//!   active in historical data emits it again with `page = true`.
//! - [`Detector::check_silence`]: the device has sent nothing for longer than its learned
//!   interval allows → a `device_silent` signal (cleared by the next sample in `observe`).
//! - [`DeviceState`] is serde (the store keeps it as JSON); a state that fails to decode
//!   is replaced by a fresh one (detectors warm up again), never an error.
//! - [`model::WellModel`]: a per-well multivariate model, trained by [`model::train`] on
//!   rollup rows, scored inside `observe` when the caller passes it.

pub mod model;
pub mod offline;
pub mod rules;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use model::WellModel;
pub use rules::{Rule, RuleCondition};

/// What an operator is told happened. Serialized in `snake_case` (the API and the store
/// use [`FindingKind::as_str`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// Liquid or gas rate well below its baseline.
    ProductionDrop,
    /// Liquid or gas rate well above its baseline.
    ProductionSpike,
    /// A pressure (tubing, casing, line, intake, discharge, static) off its baseline.
    PressureAnomaly,
    /// Water share of the liquid rising fast: a possible leak (tank water level/volume
    /// rising faster than oil).
    WaterCutSpike,
    /// Rod pump: fillage low / controller idling.
    PumpOff,
    /// Rod part (ESP: broken shaft): loads collapse, the controller trips.
    RodPart,
    /// Gas lock / gas interference: erratic low fillage or current.
    GasLock,
    /// Plunger lift: the plunger does not arrive.
    PlungerNotArriving,
    /// Tank level at or above its high-level setpoint (or the gauge's alarm).
    TankHighLevel,
    /// H2S above its threshold.
    H2sHigh,
    /// Combustible gas (LEL) above its threshold.
    LelHigh,
    /// A sensor that fails: bad or out-of-range readings, or frozen (stuck) values.
    SensorFailure,
    /// The device has sent nothing for longer than its poll interval allows.
    DeviceSilent,
    /// A tenant threshold rule.
    ThresholdRule,
    /// A tenant rate-of-change rule.
    RateRule,
    /// The well's multivariate model scores its current state as unusual.
    WellAnomaly,
}

impl FindingKind {
    /// Every kind, in declaration order.
    pub const ALL: [FindingKind; 16] = [
        FindingKind::ProductionDrop,
        FindingKind::ProductionSpike,
        FindingKind::PressureAnomaly,
        FindingKind::WaterCutSpike,
        FindingKind::PumpOff,
        FindingKind::RodPart,
        FindingKind::GasLock,
        FindingKind::PlungerNotArriving,
        FindingKind::TankHighLevel,
        FindingKind::H2sHigh,
        FindingKind::LelHigh,
        FindingKind::SensorFailure,
        FindingKind::DeviceSilent,
        FindingKind::ThresholdRule,
        FindingKind::RateRule,
        FindingKind::WellAnomaly,
    ];

    /// The `snake_case` name (API, store, alert labels).
    pub fn as_str(self) -> &'static str {
        match self {
            FindingKind::ProductionDrop => "production_drop",
            FindingKind::ProductionSpike => "production_spike",
            FindingKind::PressureAnomaly => "pressure_anomaly",
            FindingKind::WaterCutSpike => "water_cut_spike",
            FindingKind::PumpOff => "pump_off",
            FindingKind::RodPart => "rod_part",
            FindingKind::GasLock => "gas_lock",
            FindingKind::PlungerNotArriving => "plunger_not_arriving",
            FindingKind::TankHighLevel => "tank_high_level",
            FindingKind::H2sHigh => "h2s_high",
            FindingKind::LelHigh => "lel_high",
            FindingKind::SensorFailure => "sensor_failure",
            FindingKind::DeviceSilent => "device_silent",
            FindingKind::ThresholdRule => "threshold_rule",
            FindingKind::RateRule => "rate_rule",
            FindingKind::WellAnomaly => "well_anomaly",
        }
    }

    /// The kind named `name` ([`FindingKind::as_str`]).
    pub fn parse(name: &str) -> Option<FindingKind> {
        FindingKind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// One line an operator understands, for alert summaries.
    pub fn describe(self) -> &'static str {
        match self {
            FindingKind::ProductionDrop => "production dropped below its baseline",
            FindingKind::ProductionSpike => "production spiked above its baseline",
            FindingKind::PressureAnomaly => "pressure off its baseline",
            FindingKind::WaterCutSpike => "water cut rising fast (possible leak)",
            FindingKind::PumpOff => "pump-off: fillage low, pump idling",
            FindingKind::RodPart => "rod part: loads collapsed, pump tripped",
            FindingKind::GasLock => "gas lock: erratic low fillage or current",
            FindingKind::PlungerNotArriving => "plunger not arriving",
            FindingKind::TankHighLevel => "tank at high level",
            FindingKind::H2sHigh => "H2S above threshold",
            FindingKind::LelHigh => "combustible gas (LEL) above threshold",
            FindingKind::SensorFailure => "sensor failure",
            FindingKind::DeviceSilent => "device silent",
            FindingKind::ThresholdRule => "threshold rule",
            FindingKind::RateRule => "rate-of-change rule",
            FindingKind::WellAnomaly => "unusual well state (multivariate model)",
        }
    }
}

/// How urgent a finding is.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Worth a look.
    Info,
    /// Needs attention this shift.
    #[default]
    Warning,
    /// Needs attention now (people's safety, equipment damage, lost production).
    Critical,
}

impl Severity {
    /// Every severity, least first.
    pub const ALL: [Severity; 3] = [Severity::Info, Severity::Warning, Severity::Critical];

    /// `info`, `warning` or `critical`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }

    /// The severity named `name`.
    pub fn parse(name: &str) -> Option<Severity> {
        Severity::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// One step up (critical stays critical): escalation.
    pub fn escalated(self) -> Severity {
        match self {
            Severity::Info => Severity::Warning,
            Severity::Warning | Severity::Critical => Severity::Critical,
        }
    }
}

/// Why a finding was raised: what an operator and a pipeline need to judge it.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Evidence {
    /// The metric the finding is about, if one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<String>,
    /// The offending value (engineering units).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// What was expected (the baseline level, or the rule's limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<f64>,
    /// The baseline's robust spread (MAD scaled to a standard deviation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale: Option<f64>,
    /// The anomaly score (robust z-score, model score, ...); larger is more unusual.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    /// The score or value at which it fires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// The detector or rule that fired, e.g. `robust_ewma`, `stuck`, `pump_off`,
    /// `rule:7`, `model`.
    pub detector: String,
    /// The model in use, `pca@<version>`, for model findings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Other values that support it (metric → value), e.g. fillage and pump state.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub values: BTreeMap<String, f64>,
    /// One sentence in words.
    pub detail: String,
}

/// A condition's transition (see the crate docs).
#[derive(Debug, Clone, PartialEq)]
pub struct Signal {
    /// What.
    pub kind: FindingKind,
    /// On what, within the device: a metric name, `rule:<id>`, or `None` for the device.
    pub subject: Option<String>,
    /// Became active (`true`) or cleared (`false`).
    pub active: bool,
    /// Whether it may page people (false for historical data).
    pub page: bool,
    /// How urgent.
    pub severity: Severity,
    /// Time of the sample that caused the transition (UTC ms).
    pub ts_ms: i64,
    /// Why.
    pub evidence: Evidence,
}

/// One sample of a device, engineering value (`None`: no value, e.g. quality bad).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample<'a> {
    /// UTC ms.
    pub ts_ms: i64,
    /// Canonical metric name, or `custom.<name>`.
    pub metric: &'a str,
    /// Engineering value.
    pub value: Option<f64>,
    /// As on the wire (`Uncertain`: outside the profile's valid range).
    pub quality: wire::Quality,
}

/// What `observe` knows of the device besides its samples.
#[derive(Debug, Clone, Copy, Default)]
pub struct DeviceContext<'a> {
    /// Its firmware profile's name (`rod-pump-controller`, ...).
    pub profile: &'a str,
    /// Its well's active model, if it has one.
    pub model: Option<&'a WellModel>,
    /// The tenant's rules (all of them; `observe` applies those whose metric it sees).
    pub rules: &'a [Rule],
}

/// Tuning, with defaults that suit the simulator and real fleets alike (not fitted to one
/// data set).
#[derive(Debug, Clone, PartialEq)]
pub struct DetectOptions {
    /// Samples a series needs before its baseline may fire.
    pub warmup_samples: u32,
    /// Robust z-score at which a baseline detector fires.
    pub z_threshold: f64,
    /// Consecutive anomalous samples before a condition is active (and normal ones before
    /// it clears).
    pub sustain_samples: u32,
    /// H2S ppm: warning (OSHA ceiling 10) and critical.
    pub h2s_warning_ppm: f64,
    /// See `h2s_warning_ppm`.
    pub h2s_critical_ppm: f64,
    /// Combustible gas %LEL: warning and critical.
    pub lel_warning_pct: f64,
    /// See `lel_warning_pct`.
    pub lel_critical_pct: f64,
    /// A device is silent after this many times its learned sample interval ...
    pub silent_factor: f64,
    /// ... and at least this long (ms).
    pub silent_min_ms: i64,
}

impl Default for DetectOptions {
    fn default() -> DetectOptions {
        DetectOptions {
            warmup_samples: 30,
            z_threshold: 6.0,
            sustain_samples: 3,
            h2s_warning_ppm: 10.0,
            h2s_critical_ppm: 20.0,
            lel_warning_pct: 10.0,
            lel_critical_pct: 20.0,
            silent_factor: 5.0,
            silent_min_ms: 60_000,
        }
    }
}

/// One device's detector state: baselines per series, active conditions, timing. Kept by
/// the store between batches (JSON) so detection survives a restart.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct DeviceState {
    /// Newest sample time seen (UTC ms).
    #[serde(default)]
    pub last_ts_ms: Option<i64>,
    // The implementation adds its fields (all `#[serde(default)]`, so older states load).
}

/// The detectors, with their options.
#[derive(Debug, Clone, Default)]
pub struct Detector {
    options: DetectOptions,
}

impl Detector {
    /// A detector with `options`.
    pub fn new(options: DetectOptions) -> Detector {
        Detector { options }
    }

    /// Its options.
    pub fn options(&self) -> &DetectOptions {
        &self.options
    }

    /// Feeds one batch's samples of one device (in time order within each metric) and
    /// returns the conditions that changed. `live = false` for historical batches.
    pub fn observe(
        &self,
        state: &mut DeviceState,
        ctx: &DeviceContext<'_>,
        samples: &[Sample<'_>],
        live: bool,
    ) -> Vec<Signal> {
        let _ = (ctx, live);
        if let Some(last) = samples.iter().map(|s| s.ts_ms).max() {
            state.last_ts_ms = Some(state.last_ts_ms.map_or(last, |t| t.max(last)));
        }
        Vec::new()
    }

    /// A `device_silent` signal when the device has sent nothing for longer than its
    /// learned sample interval allows at `now_ms` (once per silence; the next sample
    /// clears it in `observe`).
    pub fn check_silence(&self, state: &mut DeviceState, now_ms: i64) -> Option<Signal> {
        let _ = (state, now_ms);
        None
    }
}
