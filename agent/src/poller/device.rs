//! The per-device poll state machine, shared by the TCP and RTU tasks.
//!
//! A [`DeviceRuntime`] owns everything about one device that outlives a single poll: its
//! read plan (which may be refined at run time, see below), the report-by-exception state
//! of every tag, the schedule of its poll groups, the link health (consecutive failures and
//! the backoff deadline) and its metrics. It does not own the Modbus link: the TCP task
//! holds one link per device, the RTU task one link per bus, and they lend it to
//! [`DeviceRuntime::poll_group`].
//!
//! One poll of a group produces at most one [`Frame`]: all its samples share the timestamp
//! taken when the poll started. A request that fails marks its tags `Bad`; if the failure
//! breaks the link the remaining requests of the poll are not sent (their tags are `Bad`
//! too) and the caller closes the link. While the link is down the schedule keeps running
//! and [`DeviceRuntime::fail_group`] feeds `Failed` readings, so `Bad` samples follow the
//! usual first-failure-then-heartbeat rule.
//!
//! Exception 2 (illegal data address) on a request that bridges unmapped registers means
//! the device refuses reads over holes; that request is replaced, for the rest of the
//! session and beyond, by gap-free requests ([`crate::plan::ReadRequest::split_at_gaps`])
//! and retried at once.
//!
//! Backoff after link failures is the project's one [`base::Backoff`]: exponential from 1 s,
//! capped at 60 s, each delay drawn from `[d/2, d]` so devices that failed together do not
//! retry in lockstep.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use base::Backoff;
use firmware_profiles::{RawValue, Tag, vocabulary};
use tokio::time::{Duration, Instant};
use tokio_modbus::ExceptionCode;
use tokio_modbus::client::Context;
use wire::{Frame, Sample, Value};

use super::counters::DeviceMetrics;
use super::emit::{EmitPolicy, Reading, TagState};
use super::link::{self, Data, IoError};
use crate::clock::now_ms;
use crate::config::DeviceSettings;
use crate::plan::ReadRequest;

/// First reconnect delay.
const BACKOFF_INITIAL: Duration = Duration::from_secs(1);
/// Longest reconnect delay.
const BACKOFF_MAX: Duration = Duration::from_secs(60);

/// The result of one group poll.
#[derive(Debug)]
pub struct PollOutcome {
    /// Samples to send, if any passed report-by-exception.
    pub frame: Option<Frame>,
    /// The error that broke the link, if one did.
    pub link_error: Option<IoError>,
}

/// Poll state of one device.
#[derive(Debug)]
pub struct DeviceRuntime {
    /// The device's configuration.
    pub settings: Arc<DeviceSettings>,
    /// Its counters.
    pub metrics: Arc<DeviceMetrics>,
    /// Requests per poll group (index = group index in `settings.poll`).
    requests: Vec<Vec<ReadRequest>>,
    tags: Vec<TagState>,
    policies: Vec<EmitPolicy>,
    next_due: Vec<Instant>,
    backoff: Backoff,
    retry_at: Instant,
    had_link: bool,
}

impl DeviceRuntime {
    /// Builds the runtime; every group is due immediately.
    pub fn new(settings: Arc<DeviceSettings>, metrics: Arc<DeviceMetrics>) -> Self {
        let now = Instant::now();
        let requests = settings
            .plan
            .groups
            .iter()
            .map(|g| g.requests.clone())
            .collect();
        let policies = settings
            .profile
            .tags
            .iter()
            .map(|t| policy_for(t, &settings))
            .collect();
        Self {
            requests,
            tags: vec![TagState::default(); settings.profile.tags.len()],
            policies,
            next_due: vec![now; settings.plan.groups.len()],
            backoff: Backoff::new(BACKOFF_INITIAL, BACKOFF_MAX),
            retry_at: now,
            had_link: false,
            metrics,
            settings,
        }
    }

    /// Device alias.
    pub fn alias(&self) -> u16 {
        self.settings.alias
    }

    /// When the next group is due (far future for a device without poll groups).
    pub fn next_due(&self) -> Instant {
        self.next_due
            .iter()
            .copied()
            .min()
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600))
    }

    /// Groups due at `now`, in group order.
    pub fn due_groups(&self, now: Instant) -> Vec<usize> {
        (0..self.next_due.len())
            .filter(|&g| self.next_due[g] <= now)
            .collect()
    }

    /// Schedules the next poll of a group, skipping missed cycles instead of bunching them.
    pub fn advance(&mut self, group: usize, now: Instant) {
        let period = self.settings.plan.groups[group].interval;
        let mut next = self.next_due[group] + period;
        if next <= now {
            let behind = now.duration_since(next).as_nanos();
            let skipped = u32::try_from(behind / period.as_nanos() + 1).unwrap_or(u32::MAX);
            next += period.saturating_mul(skipped);
        }
        self.next_due[group] = next;
    }

    /// Consecutive link failures (0 while the link works).
    pub fn failures(&self) -> u32 {
        self.backoff.failures()
    }

    /// Whether a (re)connect may be attempted now.
    pub fn may_connect(&self, now: Instant) -> bool {
        now >= self.retry_at
    }

    /// When the next (re)connect may be attempted.
    pub fn retry_at(&self) -> Instant {
        self.retry_at
    }

    /// Records a working link.
    pub fn link_up(&mut self) {
        if self.backoff.failures() > 0 && self.had_link {
            self.metrics.reconnects.fetch_add(1, Relaxed);
        }
        self.backoff.reset();
        self.had_link = true;
        self.metrics.up.store(true, Relaxed);
    }

    /// Records a failed connect or a broken link and schedules the next attempt.
    pub fn link_down(&mut self, now: Instant) {
        self.metrics.up.store(false, Relaxed);
        self.retry_at = now + self.backoff.next_delay();
    }

    /// Counts a failed request by kind.
    pub fn count_error(&self, e: &IoError) {
        let counter = match e {
            IoError::Timeout(_) => &self.metrics.timeouts,
            IoError::Exception(_) => &self.metrics.exceptions,
            IoError::Transport(_) => &self.metrics.transport_errors,
        };
        counter.fetch_add(1, Relaxed);
    }

    /// Polls one group over `ctx`, waiting `pace` before each request (RTU bus silence).
    pub async fn poll_group(
        &mut self,
        ctx: &mut Context,
        group: usize,
        pace: Duration,
    ) -> PollOutcome {
        let ts_ms = now_ms();
        let started = Instant::now();
        let timeout = self.settings.timeout;
        let mut requests = std::mem::take(&mut self.requests[group]);
        let mut samples = Vec::new();
        let mut link_error = None;
        let mut i = 0;
        while i < requests.len() {
            if link_error.is_some() {
                self.fail_request(&requests[i], started, &mut samples);
                i += 1;
                continue;
            }
            if !pace.is_zero() {
                tokio::time::sleep(pace).await;
            }
            self.metrics.requests.fetch_add(1, Relaxed);
            let sent = Instant::now();
            match link::read_request(ctx, &requests[i], timeout).await {
                Ok(data) => {
                    self.metrics.latency.observe(sent.elapsed());
                    self.apply(&requests[i], &data, started, &mut samples);
                }
                Err(IoError::Exception(ExceptionCode::IllegalDataAddress))
                    if requests[i].bridges_gaps() =>
                {
                    self.metrics.exceptions.fetch_add(1, Relaxed);
                    let pieces = requests[i].split_at_gaps();
                    tracing::warn!(
                        device = %self.settings.name,
                        space = requests[i].space.name(),
                        start = requests[i].start,
                        count = requests[i].count,
                        pieces = pieces.len(),
                        "device refuses reads over unmapped registers; splitting the request"
                    );
                    requests.splice(i..=i, pieces);
                    continue;
                }
                Err(e) => {
                    self.count_error(&e);
                    tracing::debug!(device = %self.settings.name, error = %e, "read failed");
                    self.fail_request(&requests[i], started, &mut samples);
                    if e.breaks_link() {
                        link_error = Some(e);
                    }
                }
            }
            i += 1;
        }
        self.requests[group] = requests;
        PollOutcome {
            frame: self.frame(ts_ms, samples),
            link_error,
        }
    }

    /// Feeds `Failed` to every tag of a group (link down); returns the `Bad` samples due.
    pub fn fail_group(&mut self, group: usize) -> Option<Frame> {
        let ts_ms = now_ms();
        let now = Instant::now();
        let requests = std::mem::take(&mut self.requests[group]);
        let mut samples = Vec::new();
        for req in &requests {
            self.fail_request(req, now, &mut samples);
        }
        self.requests[group] = requests;
        self.frame(ts_ms, samples)
    }

    /// Reads the string information tags. Tags the device refuses (exception) are left
    /// out; a link failure is returned.
    pub async fn read_info(
        &mut self,
        ctx: &mut Context,
        pace: Duration,
    ) -> Result<Vec<(String, String)>, IoError> {
        let mut info = Vec::new();
        for req in &self.settings.plan.info {
            if !pace.is_zero() {
                tokio::time::sleep(pace).await;
            }
            self.metrics.requests.fetch_add(1, Relaxed);
            let words = match link::read_request(ctx, req, self.settings.timeout).await {
                Ok(Data::Words(words)) => words,
                Ok(Data::Bits(_)) => continue,
                Err(e) => {
                    self.count_error(&e);
                    if e.breaks_link() {
                        return Err(e);
                    }
                    tracing::info!(device = %self.settings.name, error = %e, "information tags not readable");
                    continue;
                }
            };
            for slot in &req.slots {
                let tag = &self.settings.profile.tags[usize::from(slot.tag)];
                let range = usize::from(slot.offset)..usize::from(slot.offset + slot.len);
                if let Ok(RawValue::Text(text)) = tag.decode(&words[range]) {
                    info.push((tag.name.clone(), text.trim().to_string()));
                }
            }
        }
        Ok(info)
    }

    fn frame(&self, ts_ms: i64, samples: Vec<Sample>) -> Option<Frame> {
        if samples.is_empty() {
            return None;
        }
        self.metrics
            .samples
            .fetch_add(samples.len() as u64, Relaxed);
        Some(Frame {
            device: self.settings.alias,
            ts_ms,
            samples,
        })
    }

    fn fail_request(&mut self, req: &ReadRequest, now: Instant, samples: &mut Vec<Sample>) {
        for slot in &req.slots {
            self.observe(slot.tag, Reading::Failed, now, samples);
        }
    }

    /// Decodes a successful read into readings for its tags.
    fn apply(&mut self, req: &ReadRequest, data: &Data, now: Instant, samples: &mut Vec<Sample>) {
        for slot in &req.slots {
            let tag = &self.settings.profile.tags[usize::from(slot.tag)];
            let offset = usize::from(slot.offset);
            let raw = match data {
                Data::Bits(bits) => Ok(tag.decode_bit(bits[offset])),
                Data::Words(words) => tag.decode(&words[offset..offset + usize::from(slot.len)]),
            };
            let reading = match raw.map(|raw| reading_of(tag, &raw)) {
                Ok(Some(reading)) => reading,
                Ok(None) => Reading::Failed,
                Err(e) => {
                    self.metrics.decode_errors.fetch_add(1, Relaxed);
                    tracing::debug!(device = %self.settings.name, error = %e, "undecodable value");
                    Reading::Failed
                }
            };
            self.observe(slot.tag, reading, now, samples);
        }
    }

    fn observe(&mut self, tag: u16, reading: Reading, now: Instant, samples: &mut Vec<Sample>) {
        let index = usize::from(tag);
        let policy = &self.policies[index];
        if let Some((value, quality)) = self.tags[index].observe(reading, now, policy) {
            samples.push(Sample {
                metric: tag,
                value,
                quality,
            });
        }
    }
}

/// The reading for a decoded raw value (`None` for text, which is not a sample).
fn reading_of(tag: &Tag, raw: &RawValue) -> Option<Reading> {
    let value = match *raw {
        RawValue::Int(v) => Value::Int(v),
        RawValue::Float(v) => Value::Float(v),
        RawValue::Bool(v) => Value::Bool(v),
        RawValue::Text(_) => return None,
    };
    let eng = tag.to_engineering(raw)?;
    Some(Reading::Value {
        raw: value,
        eng,
        in_range: tag.in_valid_range(eng),
    })
}

/// Emission policy of a tag on a device. Frozen-value detection applies to measured values
/// only: not to state metrics, booleans or writable setpoints, which legitimately hold.
fn policy_for(tag: &Tag, device: &DeviceSettings) -> EmitPolicy {
    let is_state = tag
        .metric
        .as_deref()
        .and_then(vocabulary::lookup)
        .is_none_or(|m| m.kind == vocabulary::MetricKind::State);
    let measured = !is_state && !tag.writable && !tag.data_type.is_boolean();
    EmitPolicy {
        heartbeat: device.heartbeat,
        deadband: tag.deadband,
        stale_after: device.stale_after.filter(|_| measured),
    }
}
