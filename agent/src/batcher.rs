//! Batching: frames from the pollers become durable batches in the buffer.
//!
//! The batcher is the single consumer of the poller queue. It collects frames and encodes
//! them once into a [`wire::FramesBlock`] that it appends to the [`Buffer`] — durably, on a
//! blocking thread so the async tasks never wait on an fsync.
//!
//! **When a batch is cut.** Devices due at the same tick are polled concurrently, so their
//! frames arrive in a burst. The batch is cut when the burst is over — no new frame for
//! `flush_quiet` — so one poll cycle of every device becomes one batch (compact on the
//! wire: one header, shared timestamps) without waiting for a timer that is out of phase
//! with the polls. Two bounds keep it honest: the batch is cut at the latest
//! `flush_interval` after its first frame (devices polled back to back, as on an RTU bus,
//! never leave a quiet gap), and as soon as it holds `max_samples_per_batch` samples.
//!
//! **Sparse sites.** The quiet cut applies only once the batch holds `flush_min_samples`
//! (default 200). A deadbanded wellsite sends a handful of samples per poll cycle, and a
//! batch pays a fixed ~50 bytes (seal, header, base time) however few samples it carries:
//! cut every second, that is 13 bytes per sample. A small batch therefore keeps collecting
//! poll cycles until `flush_interval` (default 10 s) after its first frame. The price is
//! live latency (a sparse site's samples reach the cloud up to `flush_interval` after
//! their poll, about half of it on average; busy sites are unaffected) and what a hard
//! crash can lose (samples not yet committed: up to `flush_interval` of them; a clean
//! shutdown flushes everything). Set `flush_min_samples = 1` and `flush_interval = "1s"`
//! for the old behaviour. **Urgent frames** do not wait: a frame holding a safety metric
//! ([`firmware_profiles::vocabulary::SAFETY_METRICS`]: H2S, LEL, the detector's alarms and
//! faults), a state metric (kind `state`: a pump's run state, an alarm, a valve, a
//! plunger's arrival — deadbanded, so sent when it changes and at its heartbeat) or a
//! sample whose quality is not good (a device that stopped answering, a value out of
//! range) is cut with its poll cycle, `flush_quiet` after the burst, as on a busy site —
//! an H2S reading, a tripped pump or a failing device reaches the cloud's detection within
//! a poll cycle. The buffer wakes the uplink
//! itself after every append, so the poller → network path has no other coupling: the
//! pollers never wait on the disk, the disk never waits on the network.
//!
//! If an append fails (disk error), the block is kept in memory and retried, before newer
//! ones, after a [`base::Backoff`] delay (from `flush_interval` up to
//! [`APPEND_RETRY_MAX`]; newer blocks queue behind it meanwhile); at most
//! [`MAX_RETRY_BLOCKS`] blocks are held, beyond that the oldest are dropped and counted — a
//! dying disk must not exhaust the gateway's memory. Shutdown tries once more regardless.
//! A batch larger than the whole buffer is refused by the buffer, which counts it.
//!
//! **Births.** [`build_birth`] turns the config and profiles into the session's catalog:
//! device alias = position in the config, metric alias = tag index in the profile (the
//! metric's name is its canonical or `custom.<name>` name, with its kind), a
//! random `boot_id` per agent start and the SHA-256 of the config file bytes. The batcher
//! owns the current birth: when a device session reports its information tags
//! ([`PollerEvent::Info`]) with new content, the birth is updated, stored in the buffer
//! (which keeps it while batches of this boot are buffered) and published on a `watch`
//! channel ([`BirthState`]), which also counts the devices that have not reported yet: the
//! agent announces the birth once every device reported (or after a grace period).
//!
//! **Shutdown.** When every poller has stopped (all queue senders dropped) the batcher
//! flushes what it holds and returns: a SIGTERM loses no sample that was read.

use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use base::Backoff;
use firmware_profiles::vocabulary::MetricKind;
use tokio::sync::{mpsc, watch};
use tokio::time::{Duration, Instant};
use wire::{Birth, DeviceEntry, Frame, FramesBlock, MetricEntry};

use crate::buffer::{Buffer, BufferError};
use crate::clock::now_ms;
use crate::config::Config;
use crate::poller::PollerEvent;

/// Blocks kept in memory while the buffer refuses appends.
pub const MAX_RETRY_BLOCKS: usize = 300;
/// Longest delay between attempts to append to a failing buffer.
pub const APPEND_RETRY_MAX: Duration = Duration::from_secs(60);

/// Batcher counters for /metrics.
#[derive(Debug, Default)]
pub struct BatcherStats {
    /// Batches appended to the buffer.
    pub batches: AtomicU64,
    /// Samples appended to the buffer.
    pub samples: AtomicU64,
    /// Failed appends.
    pub append_errors: AtomicU64,
    /// Samples lost because the buffer kept failing (retry queue overflow) or a batch was
    /// refused as too large.
    pub samples_dropped: AtomicU64,
    /// Encoded bytes appended.
    pub bytes: AtomicU64,
    /// Births stored (initial and updates).
    pub births: AtomicU64,
}

/// The current birth, and how many devices have not reported their information tags yet
/// in this session.
#[derive(Debug, Clone)]
pub struct BirthState {
    /// The birth as stored in the buffer.
    pub birth: Arc<Birth>,
    /// Devices with information tags that have not started a session yet.
    pub missing_info: usize,
}

/// Batcher settings.
#[derive(Debug, Clone, Copy)]
pub struct BatcherSettings {
    /// Longest time a frame waits in the batcher.
    pub flush_interval: Duration,
    /// A batch is cut after this long without a new frame.
    pub flush_quiet: Duration,
    /// Early flush threshold.
    pub max_samples_per_batch: u32,
    /// Samples a batch needs before `flush_quiet` cuts it.
    pub flush_min_samples: u32,
}

/// The batcher task state.
#[derive(Debug)]
pub struct Batcher {
    rx: mpsc::Receiver<PollerEvent>,
    buffer: Arc<Buffer>,
    settings: BatcherSettings,
    birth: Birth,
    births: watch::Sender<BirthState>,
    missing_info: BTreeSet<u16>,
    stats: Arc<BatcherStats>,
    frames: Vec<Frame>,
    samples: u32,
    /// When the pending batch got its first frame and when it is due (see the module docs);
    /// both `None` while no frame is pending.
    started: Option<Instant>,
    due: Option<Instant>,
    retry: VecDeque<(i64, FramesBlock)>,
    /// Delays between attempts while the buffer refuses appends.
    retry_backoff: Backoff,
    /// When the blocks in `retry` may be tried again; `None`: at the next flush.
    retry_at: Option<Instant>,
    /// Batches and samples dropped before reaching the buffer and not yet added to its
    /// durable drop counters.
    unrecorded: (u64, u64),
    /// Per device alias, per metric alias: whether the metric makes its frame urgent (a
    /// safety or a state metric; see "Urgent frames" in the module docs), from the birth's
    /// catalog.
    urgent_metrics: Vec<Vec<bool>>,
    /// The pending batch holds an urgent frame.
    urgent: bool,
}

/// Which metrics of each device make a frame urgent: the
/// [`firmware_profiles::vocabulary::SAFETY_METRICS`] and every metric of kind `state`.
fn urgent_table(birth: &Birth) -> Vec<Vec<bool>> {
    let mut table: Vec<Vec<bool>> = Vec::new();
    for device in &birth.devices {
        let d = usize::from(device.alias);
        if table.len() <= d {
            table.resize(d + 1, Vec::new());
        }
        for m in &device.metrics {
            let a = usize::from(m.alias);
            if table[d].len() <= a {
                table[d].resize(a + 1, false);
            }
            let state = match m.kind {
                Some(kind) => kind == wire::MetricKind::State,
                None => firmware_profiles::vocabulary::lookup(&m.canonical).is_some_and(|def| {
                    def.kind == firmware_profiles::vocabulary::MetricKind::State
                }),
            };
            table[d][a] = firmware_profiles::vocabulary::is_safety(&m.canonical) || state;
        }
    }
    table
}

/// Device info key carrying the configured well (see `[[device]] well`).
pub const WELL_INFO: &str = "well";

/// The session catalog for a config (device info holds only the configured well until
/// devices report their information tags).
pub fn build_birth(config: &Config, boot_id: u64) -> Birth {
    let devices = config
        .devices
        .iter()
        .map(|d| DeviceEntry {
            alias: d.alias,
            name: d.name.clone(),
            profile: d.profile_id.clone(),
            info: d
                .well
                .iter()
                .map(|w| (WELL_INFO.to_owned(), w.clone()))
                .collect(),
            metrics: d
                .profile
                .tags
                .iter()
                .enumerate()
                .filter_map(|(i, t)| {
                    Some(MetricEntry {
                        alias: u16::try_from(i).ok()?,
                        canonical: t.metric.clone()?,
                        tag: t.name.clone(),
                        unit: t.unit.clone(),
                        scale: t.scale,
                        offset: t.offset,
                        writable: t.writable,
                        kind: t.metric_kind().map(wire_kind),
                    })
                })
                .collect(),
        })
        .collect();
    Birth {
        boot_id,
        ts_ms: now_ms(),
        agent_version: env!("CARGO_PKG_VERSION").to_string(),
        config_hash: config.hash.clone(),
        devices,
    }
}

/// The wire form of a metric kind.
fn wire_kind(kind: MetricKind) -> wire::MetricKind {
    match kind {
        MetricKind::Gauge => wire::MetricKind::Gauge,
        MetricKind::Counter => wire::MetricKind::Counter,
        MetricKind::State => wire::MetricKind::State,
    }
}

impl Batcher {
    /// A batcher for the session whose (already stored) birth is `birth`; `info_devices`
    /// are the aliases of the devices that have information tags.
    pub fn new(
        rx: mpsc::Receiver<PollerEvent>,
        buffer: Arc<Buffer>,
        settings: BatcherSettings,
        birth: Birth,
        info_devices: impl IntoIterator<Item = u16>,
        stats: Arc<BatcherStats>,
    ) -> (Batcher, watch::Receiver<BirthState>) {
        let missing_info: BTreeSet<u16> = info_devices.into_iter().collect();
        let urgent_metrics = urgent_table(&birth);
        let (births, births_rx) = watch::channel(BirthState {
            birth: Arc::new(birth.clone()),
            missing_info: missing_info.len(),
        });
        let batcher = Batcher {
            urgent_metrics,
            urgent: false,
            rx,
            buffer,
            settings,
            birth,
            births,
            missing_info,
            stats,
            frames: Vec::new(),
            samples: 0,
            started: None,
            due: None,
            retry: VecDeque::new(),
            retry_backoff: Backoff::new(settings.flush_interval, APPEND_RETRY_MAX),
            retry_at: None,
            unrecorded: (0, 0),
        };
        (batcher, births_rx)
    }

    /// Runs until every poller is gone, then flushes and returns.
    pub async fn run(mut self) {
        loop {
            // The pending batch's due time, or when blocks the buffer refused are retried.
            let wake = match (self.due, self.retry_at) {
                (Some(due), Some(retry)) => Some(due.min(retry)),
                (due, retry) => due.or(retry),
            };
            tokio::select! {
                event = self.rx.recv() => match event {
                    Some(PollerEvent::Frame(frame)) => self.add(frame).await,
                    Some(PollerEvent::Info { device, info }) => self.update_info(device, info).await,
                    None => break,
                },
                () = sleep_until_or_never(wake) => self.flush().await,
            }
        }
        self.retry_at = None;
        self.flush().await;
        if !self.retry.is_empty() {
            tracing::error!(
                blocks = self.retry.len(),
                "shutting down with batches the buffer did not accept"
            );
        }
    }

    /// Adds a frame to the pending batch: due `flush_quiet` after this frame once it holds
    /// `flush_min_samples` or when the frame is urgent, at the latest `flush_interval` after
    /// the batch's first frame; flushed at once when full.
    async fn add(&mut self, frame: Frame) {
        let now = Instant::now();
        let started = *self.started.get_or_insert(now);
        self.samples = self.samples.saturating_add(frame.samples.len() as u32);
        let latest = started + self.settings.flush_interval;
        self.urgent |= frame.samples.iter().any(|s| {
            s.quality != wire::Quality::Good
                || self
                    .urgent_metrics
                    .get(usize::from(frame.device))
                    .and_then(|d| d.get(usize::from(s.metric)))
                    .is_some_and(|&urgent| urgent)
        });
        self.due = Some(
            if self.urgent || self.samples >= self.settings.flush_min_samples {
                (now + self.settings.flush_quiet).min(latest)
            } else {
                latest
            },
        );
        self.frames.push(frame);
        if self.samples >= self.settings.max_samples_per_batch {
            self.flush().await;
        }
    }

    /// Encodes the collected frames and appends them (after any blocks awaiting retry).
    async fn flush(&mut self) {
        (self.started, self.due, self.urgent) = (None, None, false);
        if !self.frames.is_empty() {
            let frames = std::mem::take(&mut self.frames);
            self.samples = 0;
            match FramesBlock::encode(&frames) {
                Ok(block) => self.retry.push_back((now_ms(), block)),
                Err(e) => {
                    // Pollers emit each tag once per frame; this is a bug, not bad input.
                    tracing::error!(error = %e, "cannot encode frames");
                    let lost: usize = frames.iter().map(|f| f.samples.len()).sum();
                    self.stats.samples_dropped.fetch_add(lost as u64, Relaxed);
                }
            }
        }
        let now = Instant::now();
        if self.retry_at.is_none_or(|at| at <= now) {
            self.retry_at = None;
            while let Some((created_ms, block)) = self.retry.pop_front() {
                match self.append(created_ms, block).await {
                    Ok(()) => self.retry_backoff.reset(),
                    Err(Some(block)) => {
                        self.retry.push_front((created_ms, block));
                        self.retry_at = Some(now + self.retry_backoff.next_delay());
                        break;
                    }
                    Err(None) => {}
                }
            }
        }
        while self.retry.len() > MAX_RETRY_BLOCKS {
            if let Some((_, block)) = self.retry.pop_front() {
                let lost = u64::from(block.sample_count());
                self.stats.samples_dropped.fetch_add(lost, Relaxed);
                self.unrecorded.0 += 1;
                self.unrecorded.1 += lost;
                tracing::error!(
                    samples = lost,
                    "buffer unavailable: oldest unsaved batch dropped"
                );
            }
        }
        if self.unrecorded != (0, 0) && self.retry_at.is_none() {
            // The buffer works again: add what was lost in front of it to its durable
            // drop counters, so the loss is reported like any other.
            let (batches, samples) = self.unrecorded;
            let buffer = Arc::clone(&self.buffer);
            let counted =
                tokio::task::spawn_blocking(move || buffer.count_lost(batches, samples)).await;
            if matches!(counted, Ok(Ok(()))) {
                self.unrecorded = (0, 0);
            }
        }
    }

    /// Appends one block on a blocking thread. `Err(Some(block))`: retry later;
    /// `Err(None)`: the buffer refused it for good (and counted it).
    async fn append(&self, created_ms: i64, block: FramesBlock) -> Result<(), Option<FramesBlock>> {
        let buffer = Arc::clone(&self.buffer);
        let boot_id = self.birth.boot_id;
        let result = tokio::task::spawn_blocking(move || {
            let outcome = buffer.append(created_ms, boot_id, &block);
            (outcome, block)
        })
        .await;
        let (outcome, block) = match result {
            Ok(pair) => pair,
            Err(e) => {
                tracing::error!(error = %e, "buffer append task failed");
                self.stats.append_errors.fetch_add(1, Relaxed);
                return Err(None);
            }
        };
        match outcome {
            Ok(_seq) => {
                self.stats.batches.fetch_add(1, Relaxed);
                self.stats
                    .samples
                    .fetch_add(u64::from(block.sample_count()), Relaxed);
                self.stats
                    .bytes
                    .fetch_add(block.as_bytes().len() as u64, Relaxed);
                Ok(())
            }
            Err(e @ BufferError::BatchTooLarge { .. }) => {
                tracing::error!(error = %e, "batch refused by the buffer");
                self.stats
                    .samples_dropped
                    .fetch_add(u64::from(block.sample_count()), Relaxed);
                Err(None)
            }
            Err(e) => {
                let failures = self.stats.append_errors.fetch_add(1, Relaxed) + 1;
                if failures.is_power_of_two() {
                    tracing::error!(error = %e, failures, "cannot append batch to the buffer; will retry");
                }
                Err(Some(block))
            }
        }
    }

    /// Records a device's information tags in the birth; stores and announces the birth
    /// when they changed.
    async fn update_info(&mut self, device: u16, mut info: Vec<(String, String)>) {
        let first_report = self.missing_info.remove(&device);
        let Some(entry) = self.birth.devices.iter_mut().find(|d| d.alias == device) else {
            return;
        };
        // The configured well is not a device register: keep it across info reports.
        info.retain(|(k, _)| k != WELL_INFO);
        info.extend(entry.info.iter().filter(|(k, _)| k == WELL_INFO).cloned());
        let changed = entry.info != info;
        if changed {
            tracing::info!(device = %entry.name, ?info, "device information");
            entry.info = info;
            match store_birth(&self.buffer, &self.birth).await {
                Ok(()) => {
                    self.stats.births.fetch_add(1, Relaxed);
                }
                Err(e) => tracing::error!(error = %e, "cannot store updated birth"),
            }
        }
        if changed || first_report {
            self.births.send_replace(BirthState {
                birth: Arc::new(self.birth.clone()),
                missing_info: self.missing_info.len(),
            });
        }
    }
}

/// Sleeps until `at`, or forever when there is nothing to wait for.
async fn sleep_until_or_never(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Stores a birth durably on a blocking thread.
pub async fn store_birth(buffer: &Arc<Buffer>, birth: &Birth) -> Result<(), BufferError> {
    let buffer = Arc::clone(buffer);
    let birth = birth.clone();
    tokio::task::spawn_blocking(move || buffer.store_birth(&birth))
        .await
        .unwrap_or_else(|e| {
            Err(BufferError::Storage(redb::Error::Io(
                std::io::Error::other(e.to_string()),
            )))
        })
}
