//! Step 7: detection, right after the commit, off the ingest transaction.
//!
//! The ingest transaction records its new batches in `detection_backlog` (in the statement
//! that inserts their bookkeeping rows, so it costs no round trip) and, once committed and
//! acknowledged, the pipeline hands their rows to this module's [`Worker`] through a
//! bounded queue. The worker takes everything queued at once and scores it in one
//! transaction of its own, on its own connection, while the pipeline goes on with the next
//! rounds:
//!
//! 1. [`store::detection::claim_backlog`] deletes the batches' backlog rows; only the
//!    batches it returns are scored (a batch is scored exactly once, whoever claims it);
//! 2. the samples are grouped by device, each device's detector state row is locked
//!    (device-id order) and decoded, and `detect::Detector::observe` advances it;
//! 3. the signals go to `store::alerts::record_signals` (findings, alerts, outbox) and the
//!    states are written back; then the commit.
//!
//! Consequences:
//!
//! - a rolled-back scoring leaves its batches in the backlog, never half-scored;
//! - several ingesters sharing a subscription serialize on a device's state row, so they
//!   never both open the same alert (and the alerts table's unique open fingerprint is a
//!   second lock);
//! - the state survives a restart (it is in the database), and an alert's notifications
//!   are committed with it;
//! - a batch committed by an ingester that stopped before scoring it stays in the backlog:
//!   every ingester sweeps the backlog when it starts and every
//!   [`DetectionOptions::backlog_sweep`], scoring what has waited longer than that (its
//!   samples read back from `telemetry`);
//! - the ingest rate does not wait on detection's round trips, and under load the worker's
//!   transactions cover several rounds each (one state write per device per transaction);
//!   a full queue holds the pipeline (backpressure), it never drops work.
//!
//! What detection needs besides the rows — each series' device and metric, the tenants'
//! rules, the devices' active models — is read before the scoring transaction into
//! [`Prepared`] (series info is cached for good: a series never changes device or metric;
//! rules are read again after [`RULES_TTL`], models after [`MODELS_TTL`]).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use alerts::signals::{decode_state, rule_of, signal_records};
use chrono::{DateTime, Utc};
use detect::{Detector, DeviceContext, DeviceState, Rule, Sample, Signal, WellModel};
use store::alerts::AlertPolicy;
use store::detection::{SeriesInfo, StateUpdate};
use store::{BatchKey, Db, DbError, DeviceId, PgConnection, SeriesId, TelemetryRow, TenantId};
use tokio::sync::mpsc;
use tracing::{debug, error, info, warn};

use super::IngestOptions;
use super::pipeline::retry;
use super::stats::{IngestStats, add};

/// How long a tenant's rules are used before being read again.
pub const RULES_TTL: Duration = Duration::from_secs(5);
/// How long a device's active model is used before being read again.
pub const MODELS_TTL: Duration = Duration::from_secs(60);
/// Most series kept in the info cache (cleared when full).
const SERIES_CACHE_LIMIT: usize = 1_000_000;
/// Rounds the queue to the worker holds before the pipeline waits.
pub(crate) const QUEUE_ROUNDS: usize = 256;
/// Most samples one scoring transaction takes (what is queued beyond waits for the next).
const MAX_SAMPLES_PER_TX: usize = 200_000;
/// Backlog batches one sweep reads back per query.
const SWEEP_PAGE: i64 = 200;

/// Detection's options (from `[detection]` and `[alerts]` in `cloud.toml`).
#[derive(Debug, Clone, PartialEq)]
pub struct DetectionOptions {
    /// The detectors' tuning.
    pub detect: detect::DetectOptions,
    /// The alert lifecycle's timing.
    pub policy: AlertPolicy,
    /// How often the backlog is swept, and how long a batch waits in it before a sweep
    /// scores it (one left behind by an ingester that stopped before scoring it).
    pub backlog_sweep: Duration,
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
            backlog_sweep: Duration::from_secs(30),
        }
    }
}

/// A stored batch to score.
#[derive(Debug)]
pub(crate) struct Scoring {
    pub key: BatchKey,
    pub historical: bool,
    pub rows: Vec<TelemetryRow>,
}

/// What a scoring transaction did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Scored {
    pub batches: u64,
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
    /// Scores the batches of `batches` that are in `claimed`, in the open transaction
    /// `conn`.
    async fn score(
        &self,
        conn: &mut PgConnection,
        batches: &[Scoring],
        claimed: &HashSet<BatchKey>,
    ) -> Result<Scored, DbError> {
        let Some(policy) = self.policy else {
            return Ok(Scored::default());
        };
        // (device, historical) → samples, in batch order.
        let mut groups: BTreeMap<(DeviceId, bool), (TenantId, Vec<Sample<'_>>)> = BTreeMap::new();
        for b in batches.iter().filter(|b| claimed.contains(&b.key)) {
            for row in &b.rows {
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

/// Claims, scores and commits one scoring transaction.
async fn score_tx(db: &Db, prepared: &Prepared, batches: &[Scoring]) -> Result<Scored, DbError> {
    let keys: Vec<BatchKey> = batches.iter().map(|b| b.key).collect();
    let mut tx = db.pool().begin().await?;
    let started = Instant::now();
    let claimed = store::detection::claim_backlog(&mut tx, &keys).await?;
    let claiming = started.elapsed();
    let mut scored = prepared.score(&mut tx, batches, &claimed).await?;
    let started = Instant::now();
    tx.commit().await?;
    scored.storage += claiming + started.elapsed();
    scored.batches = claimed.len() as u64;
    Ok(scored)
}

/// Takes batches out of the backlog unscored (after a permanent scoring error: retrying
/// cannot help, and the sweep must not try them forever).
async fn release(db: &Db, batches: &[Scoring]) -> Result<(), DbError> {
    let keys: Vec<BatchKey> = batches.iter().map(|b| b.key).collect();
    let mut tx = db.pool().begin().await?;
    store::detection::claim_backlog(&mut tx, &keys).await?;
    tx.commit().await?;
    Ok(())
}

/// The detection worker: scores what the pipeline committed, and sweeps the backlog.
pub(crate) struct Worker {
    db: Db,
    stats: Arc<IngestStats>,
    options: IngestOptions,
    sweep: Duration,
    detection: Detection,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("detection", &self.detection)
            .finish_non_exhaustive()
    }
}

impl Worker {
    pub(crate) fn new(
        db: Db,
        stats: Arc<IngestStats>,
        options: IngestOptions,
        detection: &DetectionOptions,
    ) -> Worker {
        Worker {
            db,
            stats,
            options,
            sweep: detection.backlog_sweep,
            detection: Detection::new(detection),
        }
    }

    /// Scores what arrives on `rx` until it closes; sweeps the backlog at start and every
    /// `backlog_sweep`.
    pub(crate) async fn run(mut self, mut rx: mpsc::Receiver<Vec<Scoring>>) {
        let mut sweep = tokio::time::interval(self.sweep);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                work = rx.recv() => {
                    let Some(mut batches) = work else { break };
                    let mut samples: usize = batches.iter().map(|b| b.rows.len()).sum();
                    while samples < MAX_SAMPLES_PER_TX {
                        let Ok(more) = rx.try_recv() else { break };
                        samples += more.iter().map(|b| b.rows.len()).sum::<usize>();
                        batches.extend(more);
                    }
                    self.score(&batches).await;
                }
                _ = sweep.tick() => self.sweep().await,
            }
        }
        info!("ingest pipeline stopped; detection worker ends");
    }

    /// Scores `batches` in one transaction (retried while the database is away). A
    /// permanent error leaves them stored but unscored, logged.
    async fn score(&mut self, batches: &[Scoring]) {
        if batches.is_empty() {
            return;
        }
        let wanted = Detection::wanted(batches.iter().flat_map(|b| b.rows.iter()));
        let db = self.db.clone();
        let detection = &self.detection;
        let fetched = retry(&self.stats, &self.options, "detection inputs", || {
            detection.fetch(&db, &wanted)
        })
        .await;
        let result = match fetched {
            Ok(fetched) => {
                let prepared = self.detection.absorb(fetched, &wanted);
                retry(&self.stats, &self.options, "detection transaction", || {
                    score_tx(&db, &prepared, batches)
                })
                .await
            }
            Err(e) => Err(e),
        };
        match result {
            Ok(scored) => {
                let s = &self.stats;
                add(&s.batches_scored, scored.batches);
                add(&s.samples_scored, scored.samples);
                add(&s.findings, scored.findings);
                add(&s.alerts_opened, scored.alerts_opened);
                add(&s.detection_scoring_us, scored.scoring.as_micros() as u64);
                add(&s.detection_storage_us, scored.storage.as_micros() as u64);
            }
            Err(e) => {
                error!(error = %e, batches = batches.len(),
                       "cannot score these batches; they stay stored, unscored");
                if let Err(e) = retry(&self.stats, &self.options, "detection release", || {
                    release(&db, batches)
                })
                .await
                {
                    error!(error = %e, "cannot take unscorable batches out of the backlog");
                }
            }
        }
    }

    /// Scores the backlog batches older than `backlog_sweep`, their samples read back.
    async fn sweep(&mut self) {
        let before =
            Utc::now() - chrono::Duration::from_std(self.sweep).unwrap_or(chrono::Duration::zero());
        let mut seen: HashSet<BatchKey> = HashSet::new();
        loop {
            let db = self.db.clone();
            let page = match retry(&self.stats, &self.options, "backlog sweep", || {
                db.stale_backlog(before, SWEEP_PAGE)
            })
            .await
            {
                Ok(page) => page,
                Err(e) => {
                    error!(error = %e, "cannot read the detection backlog");
                    return;
                }
            };
            let fresh: Vec<_> = page.iter().filter(|b| seen.insert(b.key)).collect();
            if fresh.is_empty() {
                return;
            }
            let mut batches = Vec::with_capacity(fresh.len());
            for pending in fresh {
                match retry(&self.stats, &self.options, "backlog samples", || {
                    db.pending_samples(pending)
                })
                .await
                {
                    Ok(rows) => batches.push(Scoring {
                        key: pending.key,
                        historical: pending.historical,
                        rows,
                    }),
                    Err(e) => error!(error = %e, "cannot read a backlog batch's samples"),
                }
            }
            debug!(
                batches = batches.len(),
                "scoring backlog batches left behind"
            );
            add(&self.stats.batches_swept, batches.len() as u64);
            self.score(&batches).await;
            if page.len() < SWEEP_PAGE as usize {
                return;
            }
        }
    }
}
