//! Session and control messages: birth, death, ack, command and command result.
//!
//! ```text
//! birth   = { 0: version, 1: boot_id, 2: ts_ms, 3: agent_version, 4: config_hash, 5: [device, ...],
//!             ?6: birth_status }
//! birth_status = { 0: set_aside_batches, 1: set_aside_bytes, 2: set_aside_dropped,
//!                  ?3: epoch, ?4: dropped_batches, ?5: dropped_samples }   ; absent = 0
//! device  = { 0: alias, 1: name, 2: profile, 3: { info_key: info_value, ... }, 4: [metric, ...] }
//! metric  = { 0: alias, 1: canonical, 2: tag, 3: unit, 4: scale, 5: offset, 6: writable, ?7: kind }
//!   canonical: a canonical vocabulary name, or custom.<name> for a custom metric
//!   kind:      0 gauge, 1 counter, 2 state
//! death   = { 0: version, 1: boot_id, 2: ts_ms }
//! ack     = { 0: version, 1: [[first_seq, last_seq], ...], ?2: [rejected, ...] }  ; inclusive ranges
//! rejected = { 0: [[first_seq, last_seq], ...], 1: permanent, 2: reason, ?3: detail }
//! command = { 0: version, 1: id, 2: kind, ...kind fields }
//!   kind 0 rebirth:        ?3: boot_id
//!   kind 1 config update:   4: toml
//!   kind 2 setpoint write:  5: device, 6: metric, 7: value, ?8: expected_current
//! result  = { 0: version, 1: id, 2: ok, 3: message }
//! ```
//!
//! # Negative acknowledgement
//!
//! Key 2 of an ack lists batches the cloud did *not* store, each entry with seq ranges,
//! whether the refusal is `permanent` (re-sending repeats it: a seq conflict, a timestamp
//! out of range, a malformed batch) or retryable (a transient cloud-side fault), a short
//! machine reason code (`[a-z0-9_]`, at most [`MAX_REASON_LEN`] bytes, e.g.
//! [`Rejected::SEQ_CONFLICT`]) and an optional human detail (at most [`MAX_DETAIL_LEN`]
//! bytes). An ack without rejections encodes exactly as before the key existed, and an
//! agent that predates it skips the key, so the extension is compatible both ways. A seq
//! named in both the committed ranges and a rejection counts as committed.
//!
//! # Birth status
//!
//! Key 6 of a birth carries figures of the moment it is published (what the agent has set
//! aside after permanent rejections). They are not part of the catalog: a [`Birth`] value
//! is the catalog the buffer stores, and [`Birth::encode_with_status`] /
//! [`Birth::decode_with_status`] add or read the figures around it, as
//! [`crate::encode_batch`] writes a batch header around its stored frames.

use crate::codec::{Enc, Reader, done, put_float, required};
use crate::{DecodeError, SCHEMA_VERSION};
use minicbor::Encoder;

/// How values of a metric aggregate (key 7 of a birth metric).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetricKind {
    /// A level or rate sampled at a point in time (code 0).
    Gauge,
    /// A monotonic running total (code 1).
    Counter,
    /// An enumerated code or a boolean (code 2).
    State,
}

impl MetricKind {
    /// The wire code.
    pub fn code(self) -> u8 {
        match self {
            MetricKind::Gauge => 0,
            MetricKind::Counter => 1,
            MetricKind::State => 2,
        }
    }

    /// The kind of a wire code, if known.
    pub fn from_code(code: u64) -> Option<MetricKind> {
        match code {
            0 => Some(MetricKind::Gauge),
            1 => Some(MetricKind::Counter),
            2 => Some(MetricKind::State),
            _ => None,
        }
    }
}

/// Namespace prefix of a custom (non-canonical) metric name in [`MetricEntry::canonical`].
pub const CUSTOM_NAMESPACE: &str = "custom.";

/// One metric of a device in the birth catalog.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricEntry {
    /// Alias used in batches: the tag's index in the device's firmware profile.
    pub alias: u16,
    /// The metric's name: a canonical name from the shared vocabulary (e.g.
    /// `tubing_pressure_psi`), or `custom.<name>` for a custom metric the profile declares
    /// (see [`MetricEntry::custom_name`]).
    pub canonical: String,
    /// The vendor tag name in the profile.
    pub tag: String,
    /// Engineering unit of `raw * scale + offset`.
    pub unit: String,
    /// Multiplier from raw to engineering value.
    pub scale: f64,
    /// Added after scaling.
    pub offset: f64,
    /// Whether the cloud may request setpoint writes to it.
    pub writable: bool,
    /// How the metric aggregates (key 7); agents that predate custom metrics omit it.
    pub kind: Option<MetricKind>,
}

impl MetricEntry {
    /// The name after `custom.` when this is a custom metric.
    pub fn custom_name(&self) -> Option<&str> {
        self.canonical.strip_prefix(CUSTOM_NAMESPACE)
    }
}

/// One device in the birth catalog.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceEntry {
    /// Alias used in batches: the device's index in the agent configuration.
    pub alias: u16,
    /// The device's configured name, stable across restarts.
    pub name: String,
    /// Firmware profile id.
    pub profile: String,
    /// Identification read once at session start (serial number, firmware version, ...).
    pub info: Vec<(String, String)>,
    /// Metrics the device reports.
    pub metrics: Vec<MetricEntry>,
}

/// Session start: who the agent is and what its aliases mean.
#[derive(Debug, Clone, PartialEq)]
pub struct Birth {
    /// Random per agent process start; batches carry it to select this catalog.
    pub boot_id: u64,
    /// When the session started (UTC ms, gateway clock).
    pub ts_ms: i64,
    /// Agent software version.
    pub agent_version: String,
    /// Hash of the agent configuration.
    pub config_hash: String,
    /// The device and metric catalog.
    pub devices: Vec<DeviceEntry>,
}

/// Session end, registered as the MQTT last will.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Death {
    /// The session it ends.
    pub boot_id: u64,
    /// When the will was registered (the broker publishes it later).
    pub ts_ms: i64,
}

/// Publish-time figures a birth carries (key 6), besides its catalog.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BirthStatus {
    /// Batches set aside after a permanent rejection, kept by the agent for inspection.
    pub set_aside_batches: u64,
    /// Stored bytes of those batches.
    pub set_aside_bytes: u64,
    /// Set-aside batches dropped by the buffer's limits since the buffer was created.
    pub set_aside_dropped: u64,
    /// The agent's buffer epoch (key 3; see [`crate::BatchHeader::epoch`]).
    pub epoch: u64,
    /// Deliverable batches the buffer lost (limits, full disk, damage) since it was created
    /// (key 4).
    pub dropped_batches: u64,
    /// Samples in those batches (key 5).
    pub dropped_samples: u64,
}

/// Longest reason code of a [`Rejected`], in bytes.
pub const MAX_REASON_LEN: usize = 32;
/// Longest human detail of a [`Rejected`], in bytes.
pub const MAX_DETAIL_LEN: usize = 256;
/// Most rejection entries one ack may carry.
pub const MAX_REJECTIONS: usize = 64;

/// The cloud's proof of storage: batches whose seqs are in these inclusive ranges are
/// committed and may be deleted from the agent's buffer. Batches it refused are listed in
/// `rejected` (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    /// Inclusive `(first, last)` seq ranges.
    pub ranges: Vec<(u64, u64)>,
    /// Batches the cloud did not store, and why.
    pub rejected: Vec<Rejected>,
}

/// Batches the cloud refused, with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// Inclusive `(first, last)` seq ranges.
    pub ranges: Vec<(u64, u64)>,
    /// `true`: re-sending repeats the refusal; `false`: re-send after a backoff.
    pub permanent: bool,
    /// Machine reason code: `[a-z0-9_]`, 1 to [`MAX_REASON_LEN`] bytes.
    pub reason: String,
    /// Human explanation, at most [`MAX_DETAIL_LEN`] bytes; empty when none.
    pub detail: String,
}

impl Rejected {
    /// The seq was already stored with different content (e.g. a salvaged buffer).
    pub const SEQ_CONFLICT: &'static str = "seq_conflict";
    /// A timestamp lies outside what the cloud accepts.
    pub const TIME_OUT_OF_RANGE: &'static str = "time_out_of_range";
    /// The batch does not decode.
    pub const MALFORMED: &'static str = "malformed";
    /// The batch names a device or metric alias its birth does not declare.
    pub const UNKNOWN_ALIAS: &'static str = "unknown_alias";

    /// A permanent rejection of `seqs` (merged into ranges). `detail` is cut to
    /// [`MAX_DETAIL_LEN`] bytes at a character boundary.
    ///
    /// # Panics
    /// If `reason` is not a valid reason code (a programming error: codes are constants).
    pub fn permanent(
        seqs: impl IntoIterator<Item = u64>,
        reason: &str,
        detail: impl Into<String>,
    ) -> Rejected {
        Rejected::new(seqs, true, reason, detail)
    }

    /// A retryable rejection of `seqs`; see [`Rejected::permanent`].
    pub fn retryable(
        seqs: impl IntoIterator<Item = u64>,
        reason: &str,
        detail: impl Into<String>,
    ) -> Rejected {
        Rejected::new(seqs, false, reason, detail)
    }

    fn new(
        seqs: impl IntoIterator<Item = u64>,
        permanent: bool,
        reason: &str,
        detail: impl Into<String>,
    ) -> Rejected {
        if let Err(e) = check_reason(reason) {
            panic!("invalid rejection reason {reason:?}: {e}");
        }
        let mut detail = detail.into();
        if detail.len() > MAX_DETAIL_LEN {
            let mut end = MAX_DETAIL_LEN;
            while !detail.is_char_boundary(end) {
                end -= 1;
            }
            detail.truncate(end);
        }
        Rejected {
            ranges: merge_ranges(seqs),
            permanent,
            reason: reason.to_owned(),
            detail,
        }
    }

    /// Whether `seq` is in this rejection.
    pub fn contains(&self, seq: u64) -> bool {
        self.ranges.iter().any(|&(a, b)| a <= seq && seq <= b)
    }
}

/// Checks a reason code: `[a-z0-9_]`, 1 to [`MAX_REASON_LEN`] bytes.
fn check_reason(reason: &str) -> Result<(), String> {
    if reason.is_empty() || reason.len() > MAX_REASON_LEN {
        return Err(format!(
            "length {} not within 1..={MAX_REASON_LEN}",
            reason.len()
        ));
    }
    if !reason
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err("only a-z, 0-9 and _ are allowed".into());
    }
    Ok(())
}

/// What the cloud asks a gateway to do.
#[derive(Debug, Clone, PartialEq)]
pub enum CommandKind {
    /// Publish a birth again: the current session's (`None`) or a stored earlier one.
    Rebirth {
        /// The session whose birth is wanted.
        boot_id: Option<u64>,
    },
    /// Replace the agent configuration with this TOML.
    ConfigUpdate {
        /// The new configuration file.
        toml: String,
    },
    /// Write an engineering value to a writable tag, optionally only if it currently reads
    /// `expected_current`.
    WriteSetpoint {
        /// Device alias.
        device: u16,
        /// Metric alias.
        metric: u16,
        /// Engineering value to write.
        value: f64,
        /// Compare-before-write guard.
        expected_current: Option<f64>,
    },
}

/// A command with its id, echoed in the [`CommandResult`].
///
/// Commands are not idempotent, so a sealed command must not be replayable: the agent
/// refuses one whose `expires_ms` has passed (or lies further ahead than it accepts), and
/// one whose id it already executed (see [`crate::seal`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    /// Chosen by the cloud, unique per gateway (random 63-bit).
    pub id: u64,
    /// When the command stops being valid (UTC ms, cloud clock); required.
    pub expires_ms: i64,
    /// What to do.
    pub kind: CommandKind,
}

/// The outcome of a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandResult {
    /// The command's id.
    pub id: u64,
    /// Whether it succeeded.
    pub ok: bool,
    /// A human-readable explanation.
    pub message: String,
}

pub(crate) type EncResult = Result<(), minicbor::encode::Error<core::convert::Infallible>>;

/// Encodes a message map of `fields` entries: the version, then what `body` writes.
pub(crate) fn message(fields: u64, body: impl FnOnce(&mut Enc) -> EncResult) -> Vec<u8> {
    let mut e = Encoder::new(Vec::with_capacity(64));
    done(
        e.map(fields)
            .and_then(|e| e.u8(0))
            .and_then(|e| e.u16(SCHEMA_VERSION)),
    );
    done(body(&mut e));
    e.into_writer()
}

const BIRTH: &str = "birth";
const DEATH: &str = "death";
const ACK: &str = "ack";
const COMMAND: &str = "command";
const RESULT: &str = "command result";

impl Birth {
    /// Encodes the birth (its catalog only, as the agent stores it).
    pub fn encode(&self) -> Vec<u8> {
        self.encode_with_status(None)
    }

    /// Encodes the birth with the publish-time figures of `status` (key 6).
    pub fn encode_with_status(&self, status: Option<&BirthStatus>) -> Vec<u8> {
        message(6 + u64::from(status.is_some()), |e| {
            e.u8(1)?.u64(self.boot_id)?;
            e.u8(2)?.i64(self.ts_ms)?;
            e.u8(3)?.str(&self.agent_version)?;
            e.u8(4)?.str(&self.config_hash)?;
            e.u8(5)?.array(self.devices.len() as u64)?;
            for d in &self.devices {
                e.map(5)?;
                e.u8(0)?.u16(d.alias)?;
                e.u8(1)?.str(&d.name)?;
                e.u8(2)?.str(&d.profile)?;
                e.u8(3)?.map(d.info.len() as u64)?;
                for (k, v) in &d.info {
                    e.str(k)?.str(v)?;
                }
                e.u8(4)?.array(d.metrics.len() as u64)?;
                for m in &d.metrics {
                    e.map(7 + u64::from(m.kind.is_some()))?;
                    e.u8(0)?.u16(m.alias)?;
                    e.u8(1)?.str(&m.canonical)?;
                    e.u8(2)?.str(&m.tag)?;
                    e.u8(3)?.str(&m.unit)?;
                    e.u8(4)?;
                    put_float(e, m.scale);
                    e.u8(5)?;
                    put_float(e, m.offset);
                    e.u8(6)?.bool(m.writable)?;
                    if let Some(kind) = m.kind {
                        e.u8(7)?.u8(kind.code())?;
                    }
                }
            }
            if let Some(s) = status {
                // Keys 3-5 are written only when not 0 (absent reads as 0), so a status
                // without them encodes as before they existed.
                let extra = [
                    (3u8, s.epoch),
                    (4, s.dropped_batches),
                    (5, s.dropped_samples),
                ];
                let present = extra.iter().filter(|(_, v)| *v != 0).count() as u64;
                e.u8(6)?.map(3 + present)?;
                e.u8(0)?.u64(s.set_aside_batches)?;
                e.u8(1)?.u64(s.set_aside_bytes)?;
                e.u8(2)?.u64(s.set_aside_dropped)?;
                for (key, value) in extra.into_iter().filter(|(_, v)| *v != 0) {
                    e.u8(key)?.u64(value)?;
                }
            }
            Ok(())
        })
    }

    /// Decodes a birth (its catalog; publish-time figures are checked and left out).
    pub fn decode(bytes: &[u8]) -> Result<Birth, DecodeError> {
        Self::decode_with_status(bytes).map(|(birth, _)| birth)
    }

    /// Decodes a birth and its publish-time figures, when it carries them.
    pub fn decode_with_status(bytes: &[u8]) -> Result<(Birth, Option<BirthStatus>), DecodeError> {
        let mut r = Reader::new(bytes, BIRTH);
        let (mut boot_id, mut ts_ms, mut agent_version, mut config_hash, mut devices) =
            (None, None, None, None, None);
        let mut status = None;
        r.message_map(|r, key| {
            match key {
                1 => boot_id = Some(r.u64()?),
                2 => ts_ms = Some(r.i64()?),
                3 => agent_version = Some(r.string()?),
                4 => config_hash = Some(r.string()?),
                5 => {
                    let n = r.array()?;
                    let mut list = Vec::new();
                    for _ in 0..n {
                        list.push(r.with_msg("birth device", decode_device)?);
                    }
                    devices = Some(list);
                }
                6 => status = Some(r.with_msg("birth status", decode_birth_status)?),
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        r.finish()?;
        let birth = Birth {
            boot_id: required(boot_id, BIRTH, "boot_id")?,
            ts_ms: required(ts_ms, BIRTH, "ts_ms")?,
            agent_version: required(agent_version, BIRTH, "agent_version")?,
            config_hash: required(config_hash, BIRTH, "config_hash")?,
            devices: required(devices, BIRTH, "devices")?,
        };
        Ok((birth, status))
    }
}

fn decode_birth_status(r: &mut Reader<'_>) -> Result<BirthStatus, DecodeError> {
    let mut s = BirthStatus::default();
    r.fields(|r, key| {
        let slot = match key {
            0 => &mut s.set_aside_batches,
            1 => &mut s.set_aside_bytes,
            2 => &mut s.set_aside_dropped,
            3 => &mut s.epoch,
            4 => &mut s.dropped_batches,
            5 => &mut s.dropped_samples,
            _ => return Ok(false),
        };
        *slot = r.u64()?;
        Ok(true)
    })?;
    Ok(s)
}

fn decode_device(r: &mut Reader<'_>) -> Result<DeviceEntry, DecodeError> {
    let msg = r.msg();
    let (mut alias, mut name, mut profile, mut info, mut metrics) =
        (None, None, None, Vec::new(), None);
    r.fields(|r, key| {
        match key {
            0 => alias = Some(r.u16("alias")?),
            1 => name = Some(r.string()?),
            2 => profile = Some(r.string()?),
            3 => {
                let n = r.map()?;
                for _ in 0..n {
                    info.push((r.string()?, r.string()?));
                }
            }
            4 => {
                let n = r.array()?;
                let mut list = Vec::new();
                for _ in 0..n {
                    list.push(r.with_msg("birth metric", decode_metric)?);
                }
                metrics = Some(list);
            }
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    Ok(DeviceEntry {
        alias: required(alias, msg, "alias")?,
        name: required(name, msg, "name")?,
        profile: required(profile, msg, "profile")?,
        info,
        metrics: required(metrics, msg, "metrics")?,
    })
}

fn decode_metric(r: &mut Reader<'_>) -> Result<MetricEntry, DecodeError> {
    let msg = r.msg();
    let (mut alias, mut canonical, mut tag, mut unit) = (None, None, None, None);
    let (mut scale, mut offset, mut writable, mut kind) = (1.0, 0.0, false, None);
    r.fields(|r, key| {
        match key {
            0 => alias = Some(r.u16("alias")?),
            1 => canonical = Some(r.string()?),
            2 => tag = Some(r.string()?),
            3 => unit = Some(r.string()?),
            4 => scale = r.number()?,
            5 => offset = r.number()?,
            6 => writable = r.bool()?,
            7 => {
                let code = r.u64()?;
                // A kind added by a newer agent reads as unknown rather than failing the birth.
                kind = MetricKind::from_code(code);
            }
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    if !scale.is_finite() || scale == 0.0 || !offset.is_finite() {
        return Err(r.invalid(
            "scale",
            format!("scale {scale} and offset {offset} must be finite, scale non-zero"),
        ));
    }
    Ok(MetricEntry {
        alias: required(alias, msg, "alias")?,
        canonical: required(canonical, msg, "canonical")?,
        tag: required(tag, msg, "tag")?,
        unit: required(unit, msg, "unit")?,
        scale,
        offset,
        writable,
        kind,
    })
}

impl Death {
    /// Encodes the death.
    pub fn encode(&self) -> Vec<u8> {
        message(3, |e| {
            e.u8(1)?.u64(self.boot_id)?;
            e.u8(2)?.i64(self.ts_ms)?;
            Ok(())
        })
    }

    /// Decodes a death.
    pub fn decode(bytes: &[u8]) -> Result<Death, DecodeError> {
        let mut r = Reader::new(bytes, DEATH);
        let (mut boot_id, mut ts_ms) = (None, None);
        r.message_map(|r, key| {
            match key {
                1 => boot_id = Some(r.u64()?),
                2 => ts_ms = Some(r.i64()?),
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        r.finish()?;
        Ok(Death {
            boot_id: required(boot_id, DEATH, "boot_id")?,
            ts_ms: required(ts_ms, DEATH, "ts_ms")?,
        })
    }
}

/// Sorts and merges seqs into the fewest inclusive ranges.
pub fn merge_ranges(seqs: impl IntoIterator<Item = u64>) -> Vec<(u64, u64)> {
    let mut all: Vec<u64> = seqs.into_iter().collect();
    all.sort_unstable();
    all.dedup();
    let mut ranges: Vec<(u64, u64)> = Vec::new();
    for s in all {
        match ranges.last_mut() {
            Some((_, last)) if *last + 1 == s => *last = s,
            _ => ranges.push((s, s)),
        }
    }
    ranges
}

impl Ack {
    /// An ack of these seqs, merged into ranges, with no rejection.
    pub fn of(seqs: impl IntoIterator<Item = u64>) -> Ack {
        Ack {
            ranges: merge_ranges(seqs),
            rejected: Vec::new(),
        }
    }

    /// An ack of `stored` seqs that also reports the `rejected` ones.
    pub fn rejecting(stored: impl IntoIterator<Item = u64>, rejected: Vec<Rejected>) -> Ack {
        Ack {
            ranges: merge_ranges(stored),
            rejected,
        }
    }

    /// Whether `seq` is acknowledged (committed).
    pub fn contains(&self, seq: u64) -> bool {
        self.ranges.iter().any(|&(a, b)| a <= seq && seq <= b)
    }

    /// Encodes the ack. Without rejections the bytes are those of the original ack.
    pub fn encode(&self) -> Vec<u8> {
        let fields = 2 + u64::from(!self.rejected.is_empty());
        message(fields, |e| {
            e.u8(1)?;
            put_ranges(e, &self.ranges)?;
            if !self.rejected.is_empty() {
                e.u8(2)?.array(self.rejected.len() as u64)?;
                for r in &self.rejected {
                    e.map(3 + u64::from(!r.detail.is_empty()))?;
                    e.u8(0)?;
                    put_ranges(e, &r.ranges)?;
                    e.u8(1)?.bool(r.permanent)?;
                    e.u8(2)?.str(&r.reason)?;
                    if !r.detail.is_empty() {
                        e.u8(3)?.str(&r.detail)?;
                    }
                }
            }
            Ok(())
        })
    }

    /// Decodes an ack.
    pub fn decode(bytes: &[u8]) -> Result<Ack, DecodeError> {
        let mut r = Reader::new(bytes, ACK);
        let mut ranges = None;
        let mut rejected = Vec::new();
        r.message_map(|r, key| {
            match key {
                1 => ranges = Some(decode_ranges(r)?),
                2 => {
                    let n = r.array()?;
                    if n > MAX_REJECTIONS as u64 {
                        return Err(r.invalid(
                            "rejected",
                            format!("{n} entries exceed the limit of {MAX_REJECTIONS}"),
                        ));
                    }
                    for _ in 0..n {
                        rejected.push(r.with_msg("ack rejection", decode_rejected)?);
                    }
                }
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        r.finish()?;
        Ok(Ack {
            ranges: required(ranges, ACK, "ranges")?,
            rejected,
        })
    }
}

fn put_ranges(e: &mut Enc, ranges: &[(u64, u64)]) -> EncResult {
    e.array(ranges.len() as u64)?;
    for &(a, b) in ranges {
        e.array(2)?.u64(a)?.u64(b)?;
    }
    Ok(())
}

/// Inclusive seq ranges; a reversed one is an error.
fn decode_ranges(r: &mut Reader<'_>) -> Result<Vec<(u64, u64)>, DecodeError> {
    let n = r.array()?;
    let mut list = Vec::new();
    for _ in 0..n {
        if r.array()? != 2 {
            return Err(r.malformed("a seq range must be [first, last]"));
        }
        let (a, b) = (r.u64()?, r.u64()?);
        if a > b {
            return Err(r.invalid("ranges", format!("range [{a}, {b}] is reversed")));
        }
        list.push((a, b));
    }
    Ok(list)
}

fn decode_rejected(r: &mut Reader<'_>) -> Result<Rejected, DecodeError> {
    let msg = r.msg();
    let (mut ranges, mut permanent, mut reason, mut detail) = (None, None, None, String::new());
    r.fields(|r, key| {
        match key {
            0 => ranges = Some(decode_ranges(r)?),
            1 => permanent = Some(r.bool()?),
            2 => {
                let text = r.string()?;
                check_reason(&text).map_err(|e| r.invalid("reason", e))?;
                reason = Some(text);
            }
            3 => {
                let text = r.string()?;
                if text.len() > MAX_DETAIL_LEN {
                    return Err(r.invalid(
                        "detail",
                        format!("{} bytes exceed {MAX_DETAIL_LEN}", text.len()),
                    ));
                }
                detail = text;
            }
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    Ok(Rejected {
        ranges: required(ranges, msg, "ranges")?,
        permanent: required(permanent, msg, "permanent")?,
        reason: required(reason, msg, "reason")?,
        detail,
    })
}

impl Command {
    /// Encodes the command.
    pub fn encode(&self) -> Vec<u8> {
        let fields = match &self.kind {
            CommandKind::Rebirth { boot_id } => 4 + u64::from(boot_id.is_some()),
            CommandKind::ConfigUpdate { .. } => 5,
            CommandKind::WriteSetpoint {
                expected_current, ..
            } => 7 + u64::from(expected_current.is_some()),
        };
        message(fields, |e| {
            e.u8(1)?.u64(self.id)?;
            e.u8(9)?.i64(self.expires_ms)?;
            match &self.kind {
                CommandKind::Rebirth { boot_id } => {
                    e.u8(2)?.u8(0)?;
                    if let Some(b) = boot_id {
                        e.u8(3)?.u64(*b)?;
                    }
                }
                CommandKind::ConfigUpdate { toml } => {
                    e.u8(2)?.u8(1)?;
                    e.u8(4)?.str(toml)?;
                }
                CommandKind::WriteSetpoint {
                    device,
                    metric,
                    value,
                    expected_current,
                } => {
                    e.u8(2)?.u8(2)?;
                    e.u8(5)?.u16(*device)?;
                    e.u8(6)?.u16(*metric)?;
                    e.u8(7)?;
                    put_float(e, *value);
                    if let Some(x) = expected_current {
                        e.u8(8)?;
                        put_float(e, *x);
                    }
                }
            }
            Ok(())
        })
    }

    /// Decodes a command.
    pub fn decode(bytes: &[u8]) -> Result<Command, DecodeError> {
        let mut r = Reader::new(bytes, COMMAND);
        let (mut id, mut kind, mut boot_id, mut toml) = (None, None, None, None);
        let (mut device, mut metric, mut value, mut expected) = (None, None, None, None);
        let mut expires_ms = None;
        r.message_map(|r, key| {
            match key {
                1 => id = Some(r.u64()?),
                9 => expires_ms = Some(r.i64()?),
                2 => kind = Some(r.u64()?),
                3 => boot_id = Some(r.u64()?),
                4 => toml = Some(r.string()?),
                5 => device = Some(r.u16("device")?),
                6 => metric = Some(r.u16("metric")?),
                7 => value = Some(r.number()?),
                8 => expected = Some(r.number()?),
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        r.finish()?;
        let id = required(id, COMMAND, "id")?;
        let expires_ms = required(expires_ms, COMMAND, "expires_ms")?;
        let kind = match required(kind, COMMAND, "kind")? {
            0 => CommandKind::Rebirth { boot_id },
            1 => CommandKind::ConfigUpdate {
                toml: required(toml, COMMAND, "toml")?,
            },
            2 => CommandKind::WriteSetpoint {
                device: required(device, COMMAND, "device")?,
                metric: required(metric, COMMAND, "metric")?,
                value: required(value, COMMAND, "value")?,
                expected_current: expected,
            },
            other => return Err(r.invalid("kind", format!("unknown command kind {other}"))),
        };
        Ok(Command {
            id,
            expires_ms,
            kind,
        })
    }

    /// The command id of undecodable bytes, when at least that much can be read, so the
    /// gateway can answer with a failed [`CommandResult`].
    pub fn recover_id(bytes: &[u8]) -> Option<u64> {
        let mut r = Reader::new(bytes, COMMAND);
        let mut id = None;
        let _ = r.fields(|r, key| {
            if key == 1 {
                id = Some(r.u64()?);
                Ok(true)
            } else {
                Ok(false)
            }
        });
        id
    }
}

impl CommandResult {
    /// Encodes the result.
    pub fn encode(&self) -> Vec<u8> {
        message(4, |e| {
            e.u8(1)?.u64(self.id)?;
            e.u8(2)?.bool(self.ok)?;
            e.u8(3)?.str(&self.message)?;
            Ok(())
        })
    }

    /// Decodes a result.
    pub fn decode(bytes: &[u8]) -> Result<CommandResult, DecodeError> {
        let mut r = Reader::new(bytes, RESULT);
        let (mut id, mut ok, mut message) = (None, None, None);
        r.message_map(|r, key| {
            match key {
                1 => id = Some(r.u64()?),
                2 => ok = Some(r.bool()?),
                3 => message = Some(r.string()?),
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        r.finish()?;
        Ok(CommandResult {
            id: required(id, RESULT, "id")?,
            ok: required(ok, RESULT, "ok")?,
            message: required(message, RESULT, "message")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_ranges_merges_adjacent_and_dedups() {
        assert_eq!(
            merge_ranges([5, 1, 2, 3, 3, 9, 10, 7]),
            vec![(1, 3), (5, 5), (7, 7), (9, 10)]
        );
        assert_eq!(merge_ranges([]), vec![]);
        let ack = Ack::of([4, 5, 6]);
        assert!(ack.contains(5) && !ack.contains(7));
    }

    #[test]
    fn commands_round_trip_and_unknown_kind_is_an_error() {
        for kind in [
            CommandKind::Rebirth { boot_id: None },
            CommandKind::Rebirth { boot_id: Some(42) },
            CommandKind::ConfigUpdate {
                toml: "[gateway]\n".into(),
            },
            CommandKind::WriteSetpoint {
                device: 1,
                metric: 2,
                value: 7.25,
                expected_current: Some(7.0),
            },
        ] {
            let c = Command {
                id: 3,
                expires_ms: 1_763_800_060_000,
                kind,
            };
            assert_eq!(Command::decode(&c.encode()).unwrap(), c);
        }
        let bytes = message(4, |e| {
            e.u8(1)?.u8(9)?.u8(9)?.u8(1)?.u8(2)?.u8(77)?;
            Ok(())
        });
        assert!(
            Command::decode(&bytes)
                .unwrap_err()
                .to_string()
                .contains("unknown command kind 77")
        );
        assert_eq!(Command::recover_id(&bytes), Some(9));
        // A command without an expiry could be replayed forever: it does not decode.
        let bytes = message(3, |e| {
            e.u8(1)?.u8(9)?.u8(2)?.u8(0)?;
            Ok(())
        });
        assert_eq!(
            Command::decode(&bytes),
            Err(DecodeError::MissingField {
                message: "command",
                field: "expires_ms"
            })
        );
    }

    #[test]
    fn reversed_ack_range_is_rejected() {
        let bytes = Ack {
            ranges: vec![(5, 2)],
            rejected: Vec::new(),
        }
        .encode();
        assert!(
            Ack::decode(&bytes)
                .unwrap_err()
                .to_string()
                .contains("reversed")
        );
        let bytes = Ack::rejecting(
            [1],
            vec![Rejected {
                ranges: vec![(9, 3)],
                permanent: true,
                reason: Rejected::MALFORMED.into(),
                detail: String::new(),
            }],
        )
        .encode();
        let err = Ack::decode(&bytes).unwrap_err().to_string();
        assert!(
            err.contains("ack rejection") && err.contains("reversed"),
            "{err}"
        );
    }

    #[test]
    fn rejections_round_trip_and_an_ack_without_them_keeps_its_old_bytes() {
        let ack = Ack::rejecting(
            [1, 2, 3],
            vec![
                Rejected::permanent(
                    [7, 8, 10],
                    Rejected::SEQ_CONFLICT,
                    "seq 7 stored with other samples",
                ),
                Rejected::retryable([11], "db_unavailable", ""),
            ],
        );
        assert_eq!(ack.rejected[0].ranges, vec![(7, 8), (10, 10)]);
        let back = Ack::decode(&ack.encode()).unwrap();
        assert_eq!(back, ack);
        assert!(back.rejected[0].contains(10) && !back.rejected[0].contains(9));
        // The original two-key ack: what agents that predate rejections read.
        let old = message(2, |e| {
            e.u8(1)?.array(1)?.array(2)?.u64(1)?.u64(3)?;
            Ok(())
        });
        assert_eq!(Ack::of([1, 2, 3]).encode(), old);
        assert_eq!(Ack::decode(&old).unwrap(), Ack::of([1, 2, 3]));
    }

    #[test]
    fn rejection_sizes_and_reason_codes_are_bounded() {
        let long = "é".repeat(MAX_DETAIL_LEN);
        let r = Rejected::permanent([1], Rejected::MALFORMED, long);
        assert!(r.detail.len() <= MAX_DETAIL_LEN && r.detail.len() >= MAX_DETAIL_LEN - 1);
        let with = |reason: &str, detail: &str| {
            Ack::rejecting(
                [],
                vec![Rejected {
                    ranges: vec![(1, 1)],
                    permanent: false,
                    reason: reason.into(),
                    detail: detail.into(),
                }],
            )
            .encode()
        };
        for (reason, detail, expected) in [
            ("", "", "reason"),
            ("Seq-Conflict", "", "reason"),
            (&*"x".repeat(MAX_REASON_LEN + 1), "", "reason"),
            ("malformed", &*"d".repeat(MAX_DETAIL_LEN + 1), "detail"),
        ] {
            let err = Ack::decode(&with(reason, detail)).unwrap_err().to_string();
            assert!(err.contains(expected), "{err}");
        }
        let many = Ack::rejecting(
            [],
            (0..=MAX_REJECTIONS as u64)
                .map(|s| Rejected::retryable([s], "busy", ""))
                .collect(),
        );
        assert!(
            Ack::decode(&many.encode())
                .unwrap_err()
                .to_string()
                .contains("limit")
        );
    }

    #[test]
    fn birth_status_is_optional_and_outside_the_catalog() {
        let birth = Birth {
            boot_id: 1,
            ts_ms: 2,
            agent_version: "0.1.0".into(),
            config_hash: "h".into(),
            devices: Vec::new(),
        };
        let status = BirthStatus {
            set_aside_batches: 3,
            set_aside_bytes: 4096,
            set_aside_dropped: 1,
            ..BirthStatus::default()
        };
        let bytes = birth.encode_with_status(Some(&status));
        assert_eq!(
            Birth::decode_with_status(&bytes).unwrap(),
            (birth.clone(), Some(status))
        );
        assert_eq!(Birth::decode(&bytes).unwrap(), birth);
        assert_eq!(Birth::decode_with_status(&birth.encode()).unwrap().1, None);
    }
}
