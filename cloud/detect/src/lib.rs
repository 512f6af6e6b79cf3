//! `detect`: anomaly detection for well telemetry. Pure: no I/O, no async, no clock (every
//! time is passed in). The ingester runs it on every stored batch (the `store` keeps
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
//!
//! # How `observe` works
//!
//! Samples are sorted by time and processed one instant at a time (a poll's frame shares
//! its timestamp). For each sample newer than its series' newest, the series
//! ([`series::SeriesState`]: robust level, rate of change, hour-of-day baselines, frozen
//! value tracker) scores it *before* learning it. Then the instant's checks run — baseline
//! findings of the metrics it updated ([`findings::baseline`]), tenant rules ([`rules`]),
//! per-metric sensor checks, the device-level bad-quality check, the lift, threshold and
//! tank checks on the device's current values ([`findings`]) — and each feeds its
//! [`condition::Condition`], which adds the hysteresis and emits transitions. The model,
//! if any, scores the device's current values once per batch.
//!
//! # Modules
//!
//! - [`baseline`]: robust EWMA level/spread with warm-up, Huber clipping, scale floors;
//!   hour-of-day baselines.
//! - [`series`]: per-metric state built on them (rate, jitter, frozen values, quality).
//! - [`condition`]: sustain/clear hysteresis, late paging of historical activations.
//! - [`findings`]: the typed findings of the canonical metrics.
//! - [`rules`], [`model`], [`offline`]: tenant rules, the PCA well model, CSV scoring.
//!
//! # Invariants
//!
//! - Pure and deterministic: same state and samples, same signals and state.
//! - Non-finite values are dropped at the door; no state becomes NaN from finite input.
//! - A sample older than (or as old as) its series' newest moves nothing.
//! - A condition emits only transitions; an activation's severity is the one of the check
//!   that activated it (an H2S condition raised at the warning level stays a warning
//!   until it clears).
//! - The state is bounded: one [`series::SeriesState`] per metric (24 hourly baselines at
//!   most), one condition per (kind, subject) seen anomalous, a bounded window per rate rule.
//! - Quality benchmark: `cargo bench -p detect --bench quality` (simulated fleet scored
//!   against the simulator's failure schedule; see the bench's docs for the matching).

pub mod baseline;
pub mod condition;
pub mod findings;
pub mod model;
pub mod offline;
pub mod rules;
pub mod series;
#[cfg(test)]
mod tests;

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
    /// The name of the tenant's rule that fired, for rule findings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
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
    /// Series state per metric.
    #[serde(default)]
    pub series: BTreeMap<String, series::SeriesState>,
    /// Current good value per metric (what the lift checks and the model see).
    #[serde(default)]
    pub latest: BTreeMap<String, f64>,
    /// Conditions by [`condition::key`].
    #[serde(default)]
    pub conditions: BTreeMap<String, condition::Condition>,
    /// EWMA of the gaps between distinct sample times (ms).
    #[serde(default)]
    pub interval_ms: Option<f64>,
    /// Tenant rule states by rule id.
    #[serde(default)]
    pub rules: BTreeMap<i64, rules::RuleState>,
    /// Tank water-share tracking.
    #[serde(default)]
    pub water_cut: findings::WaterCut,
}

/// Version of [`DeviceState`]'s stored form, its first byte. Bump it with any change to
/// the state's types (fields, their order, enum variants): the stored form names nothing,
/// so a state of another version is unreadable and starts afresh. The golden test of the
/// form (`tests.rs`) fails until it is bumped.
pub const STATE_FORMAT: u8 = 1;

impl DeviceState {
    /// The stored form of the state, what the store keeps between batches: a version
    /// byte, then the state in postcard (compact binary; floats exact). A warm rod-pump
    /// state of 20 metrics is a third of its JSON size and many times faster to write and
    /// read (`cargo bench -p detect --bench observe`).
    pub fn to_bytes(&self) -> Vec<u8> {
        // A DeviceState is plain data: serialising it into a vector cannot fail.
        postcard::to_extend(self, vec![STATE_FORMAT]).unwrap_or_default()
    }

    /// A state from its stored form. States stored as JSON (before the compact form)
    /// are still read.
    pub fn from_bytes(bytes: &[u8]) -> Result<DeviceState, StateError> {
        match bytes.split_first() {
            Some((&STATE_FORMAT, rest)) => {
                postcard::from_bytes(rest).map_err(|e| StateError(e.to_string()))
            }
            Some((b'{', _)) => serde_json::from_slice(bytes).map_err(|e| StateError(e.to_string())),
            Some((v, _)) => Err(StateError(format!(
                "stored form {v}, this version reads {STATE_FORMAT}"
            ))),
            None => Err(StateError("empty".into())),
        }
    }
}

/// A stored device state that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unreadable detector state: {0}")]
pub struct StateError(String);

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
    ///
    /// Samples are processed by timestamp (a poll's frame shares one); after each
    /// instant the checks of the metrics it updated, the device-level checks and the
    /// lift/threshold checks run, then (once per batch) the model. Non-finite values are
    /// dropped; samples not newer than their series' newest are scored but move nothing.
    pub fn observe(
        &self,
        state: &mut DeviceState,
        ctx: &DeviceContext<'_>,
        samples: &[Sample<'_>],
        live: bool,
    ) -> Vec<Signal> {
        let o = &self.options;
        let mut out = Vec::new();
        let mut order: Vec<&Sample<'_>> = samples
            .iter()
            .filter(|s| s.value.is_none_or(f64::is_finite))
            .collect();
        order.sort_by_key(|s| s.ts_ms);
        if live {
            let now = order
                .last()
                .map_or(state.last_ts_ms.unwrap_or(0), |s| s.ts_ms);
            for c in state.conditions.values_mut() {
                out.extend(c.late_page(now));
            }
        }
        let mut i = 0;
        while i < order.len() {
            let ts = order[i].ts_ms;
            let mut j = i;
            while j < order.len() && order[j].ts_ms == ts {
                j += 1;
            }
            self.instant(state, ctx, &order[i..j], live, &mut out);
            i = j;
        }
        if let (Some(model), Some(ts)) = (ctx.model, state.last_ts_ms)
            && let Some(check) = model::check(model, &state.latest, ts)
        {
            step(state, check, o.sustain_samples, live, &mut out);
        }
        out
    }

    /// One instant (samples sharing `ts`).
    fn instant(
        &self,
        state: &mut DeviceState,
        ctx: &DeviceContext<'_>,
        group: &[&Sample<'_>],
        live: bool,
        out: &mut Vec<Signal>,
    ) {
        let o = &self.options;
        let ts = group[0].ts_ms;
        let newer = state.last_ts_ms.is_none_or(|t| ts > t);
        if newer {
            if let Some(last) = state.last_ts_ms {
                let gap = (ts - last) as f64;
                state.interval_ms = Some(match state.interval_ms {
                    Some(m) => m + 0.1 * (gap - m),
                    None => gap,
                });
            }
            state.last_ts_ms = Some(ts);
            let key = condition::key(FindingKind::DeviceSilent, None);
            if let Some(c) = state.conditions.get_mut(&key)
                && c.active
            {
                let ev = Evidence {
                    detector: "silence".into(),
                    detail: "the device sends samples again".into(),
                    ..Evidence::default()
                };
                let mut s = c.set(false, ts, c.severity, ev);
                s.page = live;
                out.push(s);
            }
        }
        let mut checks = Vec::new();
        let mut any_new = false;
        for s in group {
            if !state.series.contains_key(s.metric) {
                state
                    .series
                    .insert(s.metric.to_owned(), series::SeriesState::default());
            }
            let Some(series) = state.series.get_mut(s.metric) else {
                continue;
            };
            if series.last_ts.is_some_and(|t| s.ts_ms <= t) {
                continue; // older than the series' newest: nothing to learn
            }
            any_new = true;
            series.quality = quality_code(s.quality);
            series.stale = s.quality == wire::Quality::Stale;
            let Some(x) = s.value else {
                if s.quality == wire::Quality::Bad {
                    state.latest.remove(s.metric);
                    series.run_len = 0;
                }
                checks.push((s.metric, None));
                continue;
            };
            if s.quality == wire::Quality::Uncertain {
                state.latest.remove(s.metric);
                checks.push((s.metric, None));
                continue;
            }
            let score = series.score(s.ts_ms, x, o.warmup_samples);
            let anomalous = score.magnitude() > o.z_threshold;
            let judged = findings::judged(s.metric);
            series.learn_with(s.ts_ms, x, o.warmup_samples, anomalous, judged.is_some());
            match state.latest.get_mut(s.metric) {
                Some(latest) => *latest = x,
                None => {
                    state.latest.insert(s.metric.to_owned(), x);
                }
            }
            checks.push((s.metric, Some((x, score, judged))));
        }
        if !any_new {
            return;
        }
        self.derived(state, ts);
        // The device did not answer this poll: every sample of the instant is bad (the
        // agent sends nothing else for a device that does not answer). Bad metrics next
        // to good ones are the metrics' own failures.
        let all_bad = group.iter().all(|s| s.quality == wire::Quality::Bad);
        let active: Vec<FindingKind> = state
            .conditions
            .values()
            .filter(|c| c.active && c.subject.is_none())
            .map(|c| c.kind)
            .collect();
        let mut pending = Vec::new();
        let mut wc = std::mem::take(&mut state.water_cut);
        {
            let tracked = condition::Tracked::of(state.conditions.values());
            let view = findings::View {
                ts,
                latest: &state.latest,
                series: &state.series,
                opts: o,
                active: &active,
                tracked: &tracked,
            };
            for (metric, scored) in &checks {
                let Some(series) = state.series.get(*metric) else {
                    continue;
                };
                if let Some((x, score, judged)) = scored {
                    if let Some(judged) = judged {
                        findings::baseline(&view, metric, *judged, *x, score, &mut pending);
                    }
                    for rule in ctx.rules.iter().filter(|r| r.metric == *metric) {
                        let st = state.rules.entry(rule.id).or_default();
                        pending.extend(rule.evaluate(st, ts, *x, &tracked));
                    }
                }
                if series.last_value.is_some() {
                    pending.extend(sensor_check(&view, metric, series, all_bad));
                }
            }
            pending.extend(device_bad_check(&view, all_bad, state.series.len()));
            findings::lift(&view, &mut pending);
            findings::thresholds(&view, &mut pending);
            pending.extend(findings::water_cut(&mut wc, &view));
        }
        state.water_cut = wc;
        // Sensor findings are not evidence while a lift condition says the pump is down.
        let lift_down = [
            FindingKind::RodPart,
            FindingKind::PumpOff,
            FindingKind::GasLock,
        ]
        .iter()
        .any(|k| state.conditions.get(k.as_str()).is_some_and(|c| c.active))
            || state.latest.get("pump_state").is_some_and(|s| *s != 1.0);
        for mut check in pending {
            if lift_down
                && check.kind == FindingKind::SensorFailure
                && check.evidence.detector == "stuck"
            {
                check.anomalous = false;
            }
            step(state, check, o.sustain_samples, live, out);
        }
    }

    /// Derived series: the polished-rod load range of a rod pump while it runs.
    fn derived(&self, state: &mut DeviceState, ts: i64) {
        let (Some(p), Some(m), Some(1.0)) = (
            state.latest.get("rod_load_peak_lbf"),
            state.latest.get("rod_load_min_lbf"),
            state.latest.get("pump_state"),
        ) else {
            return;
        };
        let range = p - m;
        let series = state
            .series
            .entry(findings::LOAD_RANGE.to_owned())
            .or_default();
        if series.last_ts.is_some_and(|t| ts <= t) {
            return;
        }
        let collapsed = series.level.level.is_some_and(|b| range < 0.4 * b);
        series.learn_with(ts, range, self.options.warmup_samples, collapsed, false);
    }

    /// A `device_silent` signal when the device has sent nothing for longer than its
    /// learned sample interval allows at `now_ms` (once per silence; the next sample
    /// clears it in `observe`).
    pub fn check_silence(&self, state: &mut DeviceState, now_ms: i64) -> Option<Signal> {
        let last = state.last_ts_ms?;
        let interval = state.interval_ms?;
        let limit = (interval * self.options.silent_factor)
            .max(self.options.silent_min_ms as f64)
            .min(i64::MAX as f64) as i64;
        let gap = now_ms.saturating_sub(last);
        if gap <= limit {
            return None;
        }
        let key = condition::key(FindingKind::DeviceSilent, None);
        let c = state
            .conditions
            .entry(key)
            .or_insert_with(|| condition::Condition::new(FindingKind::DeviceSilent, None));
        if c.active {
            return None;
        }
        let ev = Evidence {
            value: Some(gap as f64 / 1000.0),
            baseline: Some(interval / 1000.0),
            threshold: Some(limit as f64 / 1000.0),
            score: Some(gap as f64 / interval.max(1.0)),
            detector: "silence".into(),
            detail: format!(
                "no sample for {} s; the device usually sends every {:.0} s",
                gap / 1000,
                interval / 1000.0
            ),
            ..Evidence::default()
        };
        Some(c.set(true, now_ms, Severity::Warning, ev))
    }
}

/// Feeds `check` to its condition; pushes the transition.
fn step(
    state: &mut DeviceState,
    check: condition::Check,
    sustain: u32,
    live: bool,
    out: &mut Vec<Signal>,
) {
    let key = condition::key(check.kind, check.subject.as_deref());
    let c = match state.conditions.get_mut(&key) {
        Some(c) => c,
        None if !check.anomalous => return,
        None => state
            .conditions
            .entry(key)
            .or_insert_with(|| condition::Condition::new(check.kind, check.subject.clone())),
    };
    out.extend(c.step(check, sustain, live));
}

fn quality_code(q: wire::Quality) -> u8 {
    match q {
        wire::Quality::Good => 0,
        wire::Quality::Bad => 1,
        wire::Quality::Stale => 2,
        wire::Quality::Uncertain => 3,
    }
}

/// A metric's own sensor check: frozen, out of range, or bad while others answer.
fn sensor_check(
    v: &findings::View<'_>,
    metric: &str,
    s: &series::SeriesState,
    all_bad: bool,
) -> Option<condition::Check> {
    let gauge = firmware_profiles::vocabulary::lookup(metric)
        .is_none_or(|d| d.kind == firmware_profiles::vocabulary::MetricKind::Gauge);
    let stuck = gauge && s.quality != 1 && (s.stale || s.stuck(v.opts.warmup_samples));
    let (anomalous, detector) = if s.quality == 3 {
        (true, "out_of_range")
    } else if s.quality == 1 && !all_bad {
        (true, "bad_quality")
    } else if stuck {
        (true, "stuck")
    } else {
        (false, "sensor")
    };
    let ts = v.ts;
    condition::Check::gated(
        v.tracked,
        FindingKind::SensorFailure,
        Some(metric),
        anomalous,
        Severity::Warning,
        ts,
        || Evidence {
            metric: Some(metric.to_owned()),
            value: s.last_value,
            baseline: s.level.level,
            scale: s.level.scale(),
            score: Some(f64::from(s.run_len)),
            threshold: Some(f64::from(series::STUCK_SAMPLES)),
            detector: detector.to_owned(),
            values: BTreeMap::from([("change_fraction".to_owned(), s.run_frac)]),
            detail: match detector {
                "out_of_range" => format!("{metric} reads outside its valid range"),
                "bad_quality" => format!("{metric} gives no usable reading"),
                "stuck" => format!(
                    "{metric} repeated {} exactly {} times over {} s; it usually changes",
                    s.last_value.unwrap_or(0.0),
                    s.run_len,
                    (ts - s.run_start) / 1000
                ),
                _ => format!("{metric} reads normally"),
            },
            rule: None,
            model: None,
        },
    )
}

/// The device-level bad-quality check: every metric bad (the device does not answer).
fn device_bad_check(
    v: &findings::View<'_>,
    all_bad: bool,
    metrics: usize,
) -> Option<condition::Check> {
    condition::Check::gated(
        v.tracked,
        FindingKind::SensorFailure,
        None,
        all_bad,
        Severity::Warning,
        v.ts,
        || Evidence {
            value: Some(metrics as f64),
            detector: "bad_quality".into(),
            detail: if all_bad {
                format!("none of the device's {metrics} metrics gives a usable reading")
            } else {
                "the device answers".into()
            },
            ..Evidence::default()
        },
    )
}
