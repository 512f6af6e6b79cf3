//! Step 5b: detection inside the ingest transaction.
//!
//! After the round's new batches and samples are written, and before the commit, their
//! samples are grouped by device, each device's detector state row is locked (device-id
//! order) and decoded, `detect::Detector::observe` advances it, and the signals go to
//! `store::alerts::record_signals` (findings, alerts, outbox) while the states are written
//! back — all in the transaction that stores the samples. Consequences:
//!
//! - a batch is scored exactly once: a duplicate is never written, so never scored, and a
//!   rolled-back round leaves no finding behind;
//! - several ingesters sharing a subscription serialize on a device's state row, so they
//!   never both open the same alert (and the alerts table's unique open fingerprint is a
//!   second lock);
//! - the state survives a restart (it is in the database), and an alert's notifications
//!   are committed with it.
//!
//! What detection needs besides the rows — each series' device and metric, the tenants'
//! rules, the devices' active models — is read before the transaction into [`Prepared`]
//! (series info is cached for good: a series never changes device or metric; rules are
//! read again after [`RULES_TTL`], models after [`MODELS_TTL`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use alerts::signals::{decode_state, rule_of, signal_records};
use chrono::{DateTime, Utc};
use detect::{Detector, DeviceContext, DeviceState, Rule, Sample, Signal, WellModel};
use store::alerts::AlertPolicy;
use store::detection::{SeriesInfo, StateUpdate};
use store::{
    BatchKey, Db, DbError, DeviceId, IngestOutcome, PgConnection, SeriesId, TelemetryRow, TenantId,
};
use tracing::warn;

/// How long a tenant's rules are used before being read again.
pub const RULES_TTL: Duration = Duration::from_secs(5);
/// How long a device's active model is used before being read again.
pub const MODELS_TTL: Duration = Duration::from_secs(60);
/// Most series kept in the info cache (cleared when full).
const SERIES_CACHE_LIMIT: usize = 1_000_000;

/// Detection's options (from `[detection]` and `[alerts]` in `cloud.toml`).
#[derive(Debug, Clone, PartialEq)]
pub struct DetectionOptions {
    /// The detectors' tuning.
    pub detect: detect::DetectOptions,
    /// The alert lifecycle's timing.
    pub policy: AlertPolicy,
}

impl Default for DetectionOptions {
    fn default() -> Self {
        DetectionOptions {
            detect: detect::DetectOptions::default(),
            policy: AlertPolicy {
                hold: chrono::Duration::minutes(5),
                flap_window: chrono::Duration::hours(1),
                flap_threshold: 3,
            },
        }
    }
}

/// One batch of the round, as detection sees it.
#[derive(Debug)]
pub(crate) struct BatchInput<'a> {
    pub key: BatchKey,
    pub historical: bool,
    pub rows: &'a [TelemetryRow],
}

/// What a round's detection did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Scored {
    pub devices: u64,
    pub samples: u64,
    pub findings: u64,
    pub alerts_opened: u64,
    /// Time in the detectors.
    pub scoring: Duration,
    /// Time in the database (states, findings).
    pub storage: Duration,
}

/// The caches, and the detector.
pub(crate) struct Detection {
    detector: Detector,
    policy: AlertPolicy,
    series: HashMap<SeriesId, Arc<SeriesInfo>>,
    rules: HashMap<TenantId, (Instant, Arc<Vec<Rule>>)>,
    models: HashMap<DeviceId, (Instant, Option<Arc<WellModel>>)>,
}

impl std::fmt::Debug for Detection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Detection")
            .field("series", &self.series.len())
            .finish_non_exhaustive()
    }
}

/// What one round's transaction needs, read before it.
#[derive(Debug, Default)]
pub(crate) struct Prepared {
    detector: Detector,
    policy: Option<AlertPolicy>,
    series: HashMap<SeriesId, Arc<SeriesInfo>>,
    rules: HashMap<TenantId, Arc<Vec<Rule>>>,
    models: HashMap<DeviceId, Arc<WellModel>>,
}

impl Detection {
    pub(crate) fn new(options: &DetectionOptions) -> Detection {
        Detection {
            detector: Detector::new(options.detect.clone()),
            policy: options.policy,
            series: HashMap::new(),
            rules: HashMap::new(),
            models: HashMap::new(),
        }
    }

    /// The distinct series of `rows`.
    pub(crate) fn wanted<'a>(rows: impl Iterator<Item = &'a TelemetryRow>) -> Vec<SeriesId> {
        let mut wanted: Vec<SeriesId> = rows.map(|r| r.series_id).collect();
        wanted.sort_unstable();
        wanted.dedup();
        wanted
    }

    /// Reads what the caches lack (or hold for too long) for the series `wanted`.
    pub(crate) async fn fetch(&self, db: &Db, wanted: &[SeriesId]) -> Result<Fetched, DbError> {
        let now = Instant::now();
        let missing: Vec<SeriesId> = wanted
            .iter()
            .copied()
            .filter(|s| !self.series.contains_key(s))
            .collect();
        let mut fetched = Fetched::default();
        if !missing.is_empty() {
            fetched.series = db.series_info(&missing).await?;
        }
        let infos = wanted
            .iter()
            .filter_map(|s| self.series.get(s).map(Arc::as_ref))
            .chain(fetched.series.iter().map(|(_, i)| i));
        let (mut tenants, mut devices): (Vec<TenantId>, Vec<DeviceId>) =
            infos.map(|i| (i.tenant, i.device)).unzip();
        tenants.sort_unstable();
        tenants.dedup();
        devices.sort_unstable();
        devices.dedup();
        fetched.rule_tenants = tenants
            .into_iter()
            .filter(|t| {
                self.rules
                    .get(t)
                    .is_none_or(|(at, _)| now.duration_since(*at) > RULES_TTL)
            })
            .collect();
        if !fetched.rule_tenants.is_empty() {
            fetched.rules = db.enabled_rules(&fetched.rule_tenants).await?;
        }
        fetched.model_devices = devices
            .into_iter()
            .filter(|d| {
                self.models
                    .get(d)
                    .is_none_or(|(at, _)| now.duration_since(*at) > MODELS_TTL)
            })
            .collect();
        if !fetched.model_devices.is_empty() {
            fetched.models = db.active_models(&fetched.model_devices).await?;
        }
        Ok(fetched)
    }

    /// Takes `fetched` into the caches and returns what the round's transaction needs.
    pub(crate) fn absorb(&mut self, fetched: Fetched, wanted: &[SeriesId]) -> Prepared {
        let now = Instant::now();
        if self.series.len() + fetched.series.len() > SERIES_CACHE_LIMIT {
            self.series.clear();
        }
        for (id, info) in fetched.series {
            self.series.insert(id, Arc::new(info));
        }
        let mut fresh: HashMap<TenantId, Vec<Rule>> = fetched
            .rule_tenants
            .iter()
            .map(|t| (*t, Vec::new()))
            .collect();
        for row in &fetched.rules {
            match rule_of(row) {
                Ok(rule) => fresh.entry(row.tenant).or_default().push(rule),
                Err(e) => warn!(rule = row.id, error = %e, "unreadable detection rule skipped"),
            }
        }
        for (tenant, rules) in fresh {
            self.rules.insert(tenant, (now, Arc::new(rules)));
        }
        for d in &fetched.model_devices {
            self.models.insert(*d, (now, None));
        }
        for row in fetched.models {
            match serde_json::from_value::<WellModel>(row.model) {
                Ok(model) => {
                    self.models.insert(row.device, (now, Some(Arc::new(model))));
                }
                Err(e) => warn!(device = %row.device, version = row.version, error = %e,
                                "unreadable detection model skipped"),
            }
        }
        let mut prepared = Prepared {
            detector: self.detector.clone(),
            policy: Some(self.policy),
            ..Prepared::default()
        };
        for id in wanted {
            let Some(info) = self.series.get(id) else {
                continue;
            };
            if let Some((_, rules)) = self.rules.get(&info.tenant) {
                prepared.rules.insert(info.tenant, Arc::clone(rules));
            }
            if let Some((_, Some(model))) = self.models.get(&info.device) {
                prepared.models.insert(info.device, Arc::clone(model));
            }
            prepared.series.insert(*id, Arc::clone(info));
        }
        prepared
    }
}

/// What [`Detection::fetch`] read.
#[derive(Debug, Default)]
pub(crate) struct Fetched {
    series: Vec<(SeriesId, SeriesInfo)>,
    rule_tenants: Vec<TenantId>,
    rules: Vec<store::detection::RuleRow>,
    model_devices: Vec<DeviceId>,
    models: Vec<store::detection::ModelRow>,
}

impl Prepared {
    /// Scores the round's new batches in the open transaction `conn`.
    pub(crate) async fn score(
        &self,
        conn: &mut PgConnection,
        batches: &[BatchInput<'_>],
        outcome: &IngestOutcome,
    ) -> Result<Scored, DbError> {
        let Some(policy) = self.policy else {
            return Ok(Scored::default());
        };
        // (device, historical) → samples, in batch order.
        let mut groups: BTreeMap<(DeviceId, bool), (TenantId, Vec<Sample<'_>>)> = BTreeMap::new();
        for b in batches.iter().filter(|b| outcome.stored.contains(&b.key)) {
            for row in b.rows {
                let Some(info) = self.series.get(&row.series_id) else {
                    continue;
                };
                groups
                    .entry((info.device, b.historical))
                    .or_insert_with(|| (info.tenant, Vec::new()))
                    .1
                    .push(Sample {
                        ts_ms: row.ts_ms,
                        metric: &info.metric,
                        value: row.value,
                        quality: row.quality,
                    });
            }
        }
        if groups.is_empty() {
            return Ok(Scored::default());
        }
        let devices: Vec<(DeviceId, TenantId)> =
            groups.iter().map(|((d, _), (t, _))| (*d, *t)).collect();
        let mut scored = Scored::default();
        let started = Instant::now();
        let mut states: HashMap<DeviceId, DeviceState> =
            store::detection::lock_states(conn, &devices)
                .await?
                .into_iter()
                .map(|(d, stored)| (d, decode_state(d, stored.as_deref())))
                .collect();
        scored.storage += started.elapsed();
        let started = Instant::now();
        let profiles: HashMap<DeviceId, &SeriesInfo> = self
            .series
            .values()
            .map(|i| (i.device, i.as_ref()))
            .collect();
        let no_rules: Vec<Rule> = Vec::new();
        let mut signals: Vec<(TenantId, DeviceId, Vec<Signal>)> = Vec::new();
        // Historical first (`false` < `true` is live), so live data sees the newest state.
        let mut ordered: Vec<_> = groups.into_iter().collect();
        ordered.sort_by_key(|((d, historical), _)| (!*historical, *d));
        for ((device, historical), (tenant, mut samples)) in ordered {
            samples.sort_by_key(|s| s.ts_ms);
            let state = states.entry(device).or_default();
            let ctx = DeviceContext {
                profile: profiles.get(&device).map_or("", |i| i.profile.as_str()),
                model: self.models.get(&device).map(Arc::as_ref),
                rules: self
                    .rules
                    .get(&tenant)
                    .map_or(&no_rules[..], |r| r.as_slice()),
            };
            let found = self.detector.observe(state, &ctx, &samples, !historical);
            scored.samples += samples.len() as u64;
            if !found.is_empty() {
                signals.push((tenant, device, found));
            }
        }
        scored.devices = states.len() as u64;
        let updates: Vec<StateUpdate> = states
            .into_iter()
            .map(|(device, state)| StateUpdate {
                device,
                last_sample_at: state
                    .last_ts_ms
                    .and_then(DateTime::<Utc>::from_timestamp_millis),
                state: state.to_bytes(),
            })
            .collect();
        scored.scoring += started.elapsed();
        let started = Instant::now();
        for (tenant, device, found) in &signals {
            let name = profiles.get(device).map_or("", |i| i.device_name.as_str());
            let records = signal_records(*tenant, *device, name, found);
            let done = store::alerts::record_signals(conn, &records, &policy).await?;
            scored.findings += done.findings;
            scored.alerts_opened += done.opened;
        }
        store::detection::save_states(conn, &updates).await?;
        scored.storage += started.elapsed();
        Ok(scored)
    }
}
