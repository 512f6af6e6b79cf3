//! The data batch: the samples of one gateway over one flush period.
//!
//! # Layout (batch version 2)
//!
//! ```text
//! batch   = { 0: version, 1: seq, 2: boot_id, 3: historical, 4: block, ?5: status,
//!             ?6: epoch }
//! block   = [ base_ts_ms, section, section, ... ]          ; version 2 block
//! section = [ device_alias, frame..., frame... ]           ; one per device, frames inline
//! frame   = dt_ms, presence, slot, slot, ...               ; 2 + (number of slots) items
//! presence = uint                 ; bitmask: bit i set when alias i has a slot (aliases < 64)
//!          / bytes                ; bitmap: bit i % 8 of byte i / 8 (any alias)
//!          / null                 ; the same aliases as the section's previous frame
//! slot   = value                  ; quality good
//!        / [ quality ]            ; no value (e.g. bad: the device did not answer)
//!        / [ quality, value ]     ; stale or uncertain, with the value
//! value  = int / float / bool     ; raw register integer, float in its smallest exact width
//! status = { 0: pending_batches, 1: pending_bytes, 2: oldest_age_ms,
//!            3: dropped_samples, 4: dropped_batches }
//! ```
//!
//! `epoch` identifies the agent's buffer that numbered the batch: a buffer that is created
//! (the file was missing or empty) or salvaged after damage starts a new epoch, so its seqs
//! never collide with seqs the cloud stored from an earlier buffer. The cloud's idempotency
//! key is `(gateway, epoch, seq)`. An absent key 6 means epoch 0 (agents that predate it,
//! and buffers created by them); the agent writes it only when it is not 0, so such batches
//! encode byte for byte as before.
//!
//! A *frame* is one poll of one device: its samples share one timestamp. The frames of one
//! device form its *section*, in the order they were polled, so the device alias is written
//! once per batch. Within a section, timestamps are *delta-of-delta* coded: with
//! `delta_k = ts_k - ts_(k-1)` (`ts_(-1)` = `base_ts_ms`, `delta_(-1)` = 0), frame `k`
//! carries `dt_ms = delta_k - delta_(k-1)`, so a device polled at a steady interval costs
//! one byte per frame for its timestamp (jitter of a few ms), while any irregular
//! timestamp stays exact (the arithmetic wraps at 64 bits, both ways, so every `i64`
//! round-trips). The slots of a frame follow its presence in increasing alias order;
//! the encoder writes the shortest presence form (a repeated alias set as `null`, 1 byte).
//! Quality codes: 0 good, 1 bad, 2 stale, 3 uncertain. Values are the exact raw values —
//! never deltas — so any CBOR reader sees every number as the device gave it.
//!
//! Decoded frames come back grouped by device (devices in order of first appearance),
//! each device's frames in their original order.
//!
//! # Version 1 (still read)
//!
//! ```text
//! block  = [ base_ts_ms, [ frame, ... ] ]
//! frame  = [ device_alias, dt_ms, presence, [ slot, ... ] ]
//! ```
//!
//! `dt_ms` is the frame's timestamp minus the previous frame's (of any device) and
//! `presence` always a byte-string bitmap. Version-1 batches (header version 1) are read
//! unchanged, and a block is recognised by its shape (the second item of a version-1
//! block is an array of frames, each an array; in version 2 it is a section, whose first
//! item is a device alias), so a block stored by an older agent and sent after an
//! upgrade under a version-2 header decodes too. [`FramesBlock::encode_v1`] still writes
//! the old layout, for tests and benchmarks of the transition.
//!
//! The frames of a batch are encoded once into a [`FramesBlock`] when the agent commits
//! the batch to its buffer; the header (seq, boot id, historical flag, buffer status) is
//! written around the stored block at send time by [`encode_batch`], so re-sending a
//! batch as backlog never re-encodes its samples.

use crate::codec::{Enc, Reader, done, put_float, required};
use crate::{DecodeError, EncodeError};

/// The data batch version this build writes, and the newest it reads (it reads 1 too).
/// Other messages keep [`crate::SCHEMA_VERSION`].
pub const BATCH_VERSION: u16 = 2;
use minicbor::Encoder;
use minicbor::data::Type;

/// How far a sample can be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Quality {
    /// Read from the device and within the profile's valid range.
    Good,
    /// The device did not answer (timeout, exception, I/O error).
    Bad,
    /// The last known value, repeated because no fresh one is available.
    Stale,
    /// Read from the device but outside the profile's valid range.
    Uncertain,
}

impl Quality {
    /// The wire code of this quality.
    pub fn code(self) -> u8 {
        match self {
            Quality::Good => 0,
            Quality::Bad => 1,
            Quality::Stale => 2,
            Quality::Uncertain => 3,
        }
    }

    /// The quality of a wire code, if the code is known.
    pub fn from_code(code: u64) -> Option<Quality> {
        match code {
            0 => Some(Quality::Good),
            1 => Some(Quality::Bad),
            2 => Some(Quality::Stale),
            3 => Some(Quality::Uncertain),
            _ => None,
        }
    }
}

/// A raw sample value: the register integer before scale and offset, a float, or a bit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    /// An integer register value (u16, i32, u64 counters, ...), unscaled.
    Int(i64),
    /// A floating-point register value.
    Float(f64),
    /// A coil, discrete input or bit-in-register.
    Bool(bool),
}

impl Value {
    /// The value as a number (`true` is 1).
    pub fn as_f64(self) -> f64 {
        match self {
            Value::Int(i) => i as f64,
            Value::Float(f) => f,
            Value::Bool(b) => f64::from(u8::from(b)),
        }
    }
}

/// One metric's reading in a frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// The metric alias within its device (the tag's index in the firmware profile).
    pub metric: u16,
    /// The raw value; absent when the device did not answer.
    pub value: Option<Value>,
    /// How far the value can be trusted.
    pub quality: Quality,
}

/// One poll of one device: samples sharing a timestamp.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    /// The device alias (the device's index in the agent configuration).
    pub device: u16,
    /// UTC milliseconds since the Unix epoch, from the gateway clock.
    pub ts_ms: i64,
    /// The samples; any order on input, increasing metric alias after decoding.
    pub samples: Vec<Sample>,
}

/// The agent's buffer state, reported with each batch so the cloud can show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BufferStatus {
    /// Batches waiting for the cloud's ack.
    pub pending_batches: u64,
    /// Bytes those batches take.
    pub pending_bytes: u64,
    /// Age of the oldest pending batch.
    pub oldest_age_ms: u64,
    /// Samples dropped by the buffer's limits since the buffer was created.
    pub dropped_samples: u64,
    /// Batches dropped by the buffer's limits since the buffer was created.
    pub dropped_batches: u64,
}

/// Everything of a batch but its samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    /// Durable, strictly increasing per gateway; the cloud's idempotency key with the gateway.
    pub seq: u64,
    /// The agent session that created the batch; selects the [`crate::Birth`] catalog.
    pub boot_id: u64,
    /// Backlog replayed after an outage (anomaly detection alerts on live data only).
    pub historical: bool,
    /// The agent's buffer state when the batch was sent.
    pub status: Option<BufferStatus>,
    /// The buffer epoch that numbered `seq` (0: an agent or buffer that predates epochs).
    pub epoch: u64,
}

/// A decoded data batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// Sequence, session and flags.
    pub header: BatchHeader,
    /// The frames, in the order they were encoded.
    pub frames: Vec<Frame>,
}

/// The encoded frames of one batch, as the agent stores them in its buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FramesBlock {
    bytes: Vec<u8>,
    samples: u32,
}

const BLOCK: &str = "frames block";
const BATCH: &str = "data batch";

impl FramesBlock {
    /// Encodes frames (version 2 layout). Samples of a frame may come in any order but
    /// each metric alias at most once per frame.
    pub fn encode(frames: &[Frame]) -> Result<FramesBlock, EncodeError> {
        let mut e = Encoder::new(Vec::with_capacity(16 + frames.len() * 32));
        let base = frames.first().map_or(0, |f| f.ts_ms);
        // Sections: devices in order of first appearance, frames in their order.
        let mut sections: Vec<(u16, Vec<&Frame>)> = Vec::new();
        for frame in frames {
            match sections.iter_mut().find(|(d, _)| *d == frame.device) {
                Some((_, list)) => list.push(frame),
                None => sections.push((frame.device, vec![frame])),
            }
        }
        done(e.array(1 + sections.len() as u64));
        done(e.i64(base));
        let mut samples = 0u32;
        let mut order: Vec<usize> = Vec::new();
        let mut aliases: Vec<u16> = Vec::new();
        for (device, list) in &sections {
            let items = 1 + list.iter().map(|f| 2 + f.samples.len() as u64).sum::<u64>();
            done(e.array(items));
            done(e.u16(*device));
            let (mut prev_ts, mut prev_delta) = (base, 0i64);
            let mut previous: Option<Vec<u16>> = None;
            for frame in list {
                sorted_aliases(frame, &mut order, &mut aliases)?;
                let delta = frame.ts_ms.wrapping_sub(prev_ts);
                done(e.i64(delta.wrapping_sub(prev_delta)));
                (prev_ts, prev_delta) = (frame.ts_ms, delta);
                if previous.as_deref() == Some(aliases.as_slice()) {
                    done(e.null());
                } else {
                    put_presence(&mut e, &aliases);
                    previous = Some(aliases.clone());
                }
                for &i in order.iter() {
                    encode_slot(&mut e, &frame.samples[i]);
                }
                samples = samples.saturating_add(frame.samples.len() as u32);
            }
        }
        Ok(FramesBlock {
            bytes: e.into_writer(),
            samples,
        })
    }

    /// Encodes frames in the version-1 layout (one bitmap and one delta from the previous
    /// frame per frame), as agents before batch version 2 stored them. For tests and
    /// benchmarks of the transition; agents write [`FramesBlock::encode`].
    pub fn encode_v1(frames: &[Frame]) -> Result<FramesBlock, EncodeError> {
        let mut e = Encoder::new(Vec::with_capacity(16 + frames.len() * 64));
        let base = frames.first().map_or(0, |f| f.ts_ms);
        done(e.array(2));
        done(e.i64(base));
        done(e.array(frames.len() as u64));
        let mut prev = base;
        let mut samples = 0u32;
        let mut order: Vec<usize> = Vec::new();
        let mut aliases: Vec<u16> = Vec::new();
        for frame in frames {
            sorted_aliases(frame, &mut order, &mut aliases)?;
            done(e.array(4));
            done(e.u16(frame.device));
            done(e.i64(frame.ts_ms.wrapping_sub(prev)));
            done(e.bytes(&bitmap(&aliases)));
            done(e.array(order.len() as u64));
            for &i in order.iter() {
                encode_slot(&mut e, &frame.samples[i]);
            }
            prev = frame.ts_ms;
            samples = samples.saturating_add(frame.samples.len() as u32);
        }
        Ok(FramesBlock {
            bytes: e.into_writer(),
            samples,
        })
    }

    /// Takes stored bytes back, checking that they are a well-formed block.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<FramesBlock, DecodeError> {
        let mut r = Reader::new(&bytes, BLOCK);
        let samples = decode_block(&mut r, |_| ())?;
        r.finish()?;
        Ok(FramesBlock { bytes, samples })
    }

    /// The encoded bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Gives up the encoded bytes.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    /// How many samples the block holds.
    pub fn sample_count(&self) -> u32 {
        self.samples
    }

    /// Decodes the frames.
    pub fn frames(&self) -> Result<Vec<Frame>, DecodeError> {
        let mut r = Reader::new(&self.bytes, BLOCK);
        let mut frames = Vec::new();
        decode_block(&mut r, |f| frames.push(f))?;
        Ok(frames)
    }
}

/// Orders a frame's samples by alias (`order` holds sample indices, `aliases` the sorted
/// aliases); refuses an alias present twice.
fn sorted_aliases(
    frame: &Frame,
    order: &mut Vec<usize>,
    aliases: &mut Vec<u16>,
) -> Result<(), EncodeError> {
    order.clear();
    order.extend(0..frame.samples.len());
    order.sort_unstable_by_key(|&i| frame.samples[i].metric);
    aliases.clear();
    aliases.extend(order.iter().map(|&i| frame.samples[i].metric));
    if let Some(pair) = aliases.windows(2).find(|pair| pair[0] == pair[1]) {
        return Err(EncodeError::DuplicateMetric {
            device: frame.device,
            ts_ms: frame.ts_ms,
            metric: pair[0],
        });
    }
    Ok(())
}

/// The byte-string bitmap of sorted aliases.
fn bitmap(aliases: &[u16]) -> Vec<u8> {
    let mut presence = vec![0u8; aliases.last().map_or(0, |&m| usize::from(m) / 8 + 1)];
    for &m in aliases {
        presence[usize::from(m) / 8] |= 1 << (m % 8);
    }
    presence
}

/// Bytes of the CBOR head of an unsigned integer or length `n`.
fn head_len(n: u64) -> usize {
    match n {
        0..24 => 1,
        24..256 => 2,
        256..65_536 => 3,
        65_536..4_294_967_296 => 5,
        _ => 9,
    }
}

/// Writes the shorter presence form of sorted aliases: an integer bitmask (aliases below
/// 64; preferred on a tie) or a byte-string bitmap.
fn put_presence(e: &mut Enc, aliases: &[u16]) {
    let bytes = aliases.last().map_or(0, |&m| usize::from(m) / 8 + 1);
    if aliases.last().is_none_or(|&m| m < 64) {
        let mask = aliases.iter().fold(0u64, |acc, &m| acc | 1 << m);
        if head_len(mask) <= head_len(bytes as u64) + bytes {
            done(e.u64(mask));
            return;
        }
    }
    done(e.bytes(&bitmap(aliases)));
}

fn encode_value(e: &mut Enc, v: Value) {
    match v {
        Value::Int(i) => {
            done(e.i64(i));
        }
        Value::Float(f) => put_float(e, f),
        Value::Bool(b) => {
            done(e.bool(b));
        }
    }
}

fn encode_slot(e: &mut Enc, s: &Sample) {
    match (s.quality, s.value) {
        (Quality::Good, Some(v)) => encode_value(e, v),
        (q, None) => {
            done(e.array(1));
            done(e.u8(q.code()));
        }
        (q, Some(v)) => {
            done(e.array(2));
            done(e.u8(q.code()));
            encode_value(e, v);
        }
    }
}

/// Decodes a block of either version, handing each frame to `sink`; returns the number of
/// samples.
fn decode_block(r: &mut Reader<'_>, mut sink: impl FnMut(Frame)) -> Result<u32, DecodeError> {
    let n = r.array()?;
    if n == 0 {
        return Err(r.malformed("expected [base_ts, ...], found an empty array"));
    }
    let base = r.i64()?;
    let mut samples = 0u32;
    let mut count = |f: Frame| {
        samples = samples.saturating_add(f.samples.len() as u32);
        sink(f);
    };
    if n >= 2 && r.next_is_array_of_arrays()? {
        // Version 1: [base_ts, [frame, ...], fields added by a newer schema...].
        let mut ts = base;
        let frames = r.array()?;
        for _ in 0..frames {
            count(decode_frame_v1(r, &mut ts)?);
        }
        for _ in 2..n {
            r.skip()?;
        }
    } else {
        for _ in 1..n {
            decode_section(r, base, &mut count)?;
        }
    }
    Ok(samples)
}

/// Decodes one version-2 section: `[device, (dt, presence, slot...)...]`.
fn decode_section(
    r: &mut Reader<'_>,
    base: i64,
    sink: &mut impl FnMut(Frame),
) -> Result<(), DecodeError> {
    let items = r.array()?;
    if items == 0 {
        return Err(r.malformed("an empty device section"));
    }
    let device = r.u16("device alias")?;
    let mut left = items - 1;
    let (mut prev_ts, mut prev_delta) = (base, 0i64);
    let mut previous: Option<Vec<u16>> = None;
    while left > 0 {
        if left < 2 {
            return Err(r.malformed(format!(
                "device {device}: a frame needs dt and presence, {left} item left"
            )));
        }
        let delta = prev_delta.wrapping_add(r.i64()?);
        let ts_ms = prev_ts.wrapping_add(delta);
        (prev_ts, prev_delta) = (ts_ms, delta);
        let aliases = match r.datatype()? {
            Type::Null => {
                r.null()?;
                previous.take().ok_or_else(|| {
                    r.invalid(
                        "presence",
                        "null (same as before) on a section's first frame",
                    )
                })?
            }
            Type::U8 | Type::U16 | Type::U32 | Type::U64 => {
                let mask = r.u64()?;
                (0..64u16).filter(|i| mask & (1 << i) != 0).collect()
            }
            Type::Bytes => bitmap_aliases(r)?,
            other => {
                return Err(r.malformed(format!(
                    "expected a presence bitmask, bitmap or null, found {other}"
                )));
            }
        };
        left -= 2;
        if aliases.len() as u64 > left {
            return Err(r.invalid(
                "presence",
                format!(
                    "marks {} metrics but {left} items follow in the section",
                    aliases.len()
                ),
            ));
        }
        left -= aliases.len() as u64;
        let mut samples = Vec::with_capacity(aliases.len());
        for &metric in &aliases {
            samples.push(decode_slot(r, metric)?);
        }
        previous = Some(aliases);
        sink(Frame {
            device,
            ts_ms,
            samples,
        });
    }
    Ok(())
}

/// The aliases of a byte-string bitmap.
fn bitmap_aliases(r: &mut Reader<'_>) -> Result<Vec<u16>, DecodeError> {
    let presence = r.bytes()?;
    if presence.len() > usize::from(u16::MAX) / 8 + 1 {
        return Err(r.invalid(
            "presence",
            format!("bitmap of {} bytes exceeds 16-bit aliases", presence.len()),
        ));
    }
    let mut aliases = Vec::new();
    for (byte_index, byte) in presence.iter().enumerate() {
        for bit in 0..8 {
            if byte & (1 << bit) != 0 {
                aliases.push((byte_index * 8 + bit) as u16);
            }
        }
    }
    Ok(aliases)
}

fn decode_frame_v1(r: &mut Reader<'_>, ts: &mut i64) -> Result<Frame, DecodeError> {
    let n = r.array()?;
    if n < 4 {
        return Err(r.malformed(format!("a frame needs 4 items, found {n}")));
    }
    let device = r.u16("device alias")?;
    let dt = r.i64()?;
    *ts = ts
        .checked_add(dt)
        .ok_or_else(|| r.invalid("dt_ms", format!("timestamp overflows adding {dt}")))?;
    let aliases = bitmap_aliases(r)?;
    let slots = r.array()?;
    if slots != aliases.len() as u64 {
        return Err(r.invalid(
            "presence",
            format!(
                "bitmap marks {} metrics but {slots} slots follow",
                aliases.len()
            ),
        ));
    }
    let mut samples = Vec::with_capacity(aliases.len());
    for &metric in &aliases {
        samples.push(decode_slot(r, metric)?);
    }
    for _ in 4..n {
        r.skip()?;
    }
    Ok(Frame {
        device,
        ts_ms: *ts,
        samples,
    })
}

fn decode_value(r: &mut Reader<'_>) -> Result<Value, DecodeError> {
    match r.datatype()? {
        Type::Bool => Ok(Value::Bool(r.bool()?)),
        Type::F16 | Type::F32 | Type::F64 => Ok(Value::Float(r.float()?)),
        Type::U8
        | Type::U16
        | Type::U32
        | Type::U64
        | Type::I8
        | Type::I16
        | Type::I32
        | Type::I64 => Ok(Value::Int(r.i64()?)),
        other => Err(r.malformed(format!("expected a number or bool value, found {other}"))),
    }
}

fn decode_slot(r: &mut Reader<'_>, metric: u16) -> Result<Sample, DecodeError> {
    if r.datatype()? != Type::Array {
        return Ok(Sample {
            metric,
            value: Some(decode_value(r)?),
            quality: Quality::Good,
        });
    }
    let n = r.array()?;
    if n == 0 {
        return Err(r.malformed("an empty sample slot"));
    }
    let code = r.u64()?;
    let quality = Quality::from_code(code)
        .ok_or_else(|| r.invalid("quality", format!("unknown code {code}")))?;
    let value = if n >= 2 {
        if r.datatype()? == Type::Null {
            r.null()?;
            None
        } else {
            Some(decode_value(r)?)
        }
    } else {
        None
    };
    for _ in 2..n {
        r.skip()?;
    }
    Ok(Sample {
        metric,
        value,
        quality,
    })
}

/// Writes a batch around a stored block.
pub fn encode_batch(header: &BatchHeader, block: &FramesBlock) -> Vec<u8> {
    let mut out = Vec::with_capacity(block.bytes.len() + 48);
    let mut e = Encoder::new(&mut out);
    let entries = 5 + u64::from(header.status.is_some()) + u64::from(header.epoch != 0);
    let ok = (|| {
        e.map(entries)?;
        e.u8(0)?.u16(BATCH_VERSION)?;
        e.u8(1)?.u64(header.seq)?;
        e.u8(2)?.u64(header.boot_id)?;
        e.u8(3)?.bool(header.historical)?;
        e.u8(4)?;
        e.writer_mut().extend_from_slice(&block.bytes);
        if let Some(s) = header.status {
            e.u8(5)?.map(5)?;
            e.u8(0)?.u64(s.pending_batches)?;
            e.u8(1)?.u64(s.pending_bytes)?;
            e.u8(2)?.u64(s.oldest_age_ms)?;
            e.u8(3)?.u64(s.dropped_samples)?;
            e.u8(4)?.u64(s.dropped_batches)?;
        }
        if header.epoch != 0 {
            e.u8(6)?.u64(header.epoch)?;
        }
        Ok::<_, minicbor::encode::Error<core::convert::Infallible>>(())
    })();
    done(ok);
    out
}

impl Batch {
    /// Encodes the batch.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        Ok(encode_batch(
            &self.header,
            &FramesBlock::encode(&self.frames)?,
        ))
    }

    /// Decodes a batch.
    pub fn decode(bytes: &[u8]) -> Result<Batch, DecodeError> {
        let mut r = Reader::new(bytes, BATCH);
        let (mut seq, mut boot_id, mut historical, mut frames, mut status, mut epoch) =
            (None, None, false, None, None, 0);
        r.message_map_upto(BATCH_VERSION, |r, key| {
            match key {
                1 => seq = Some(r.u64()?),
                2 => boot_id = Some(r.u64()?),
                3 => historical = r.bool()?,
                4 => {
                    let mut out = Vec::new();
                    r.with_msg(BLOCK, |r| decode_block(r, |f| out.push(f)))?;
                    frames = Some(out);
                }
                5 => status = Some(r.with_msg("buffer status", decode_status)?),
                6 => epoch = r.u64()?,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        r.finish()?;
        let header = BatchHeader {
            seq: required(seq, BATCH, "seq")?,
            boot_id: required(boot_id, BATCH, "boot_id")?,
            historical,
            status,
            epoch,
        };
        Ok(Batch {
            header,
            frames: required(frames, BATCH, "frames")?,
        })
    }

    /// How many samples the batch holds.
    pub fn sample_count(&self) -> usize {
        self.frames.iter().map(|f| f.samples.len()).sum()
    }
}

fn decode_status(r: &mut Reader<'_>) -> Result<BufferStatus, DecodeError> {
    let mut s = BufferStatus::default();
    r.fields(|r, key| {
        let slot = match key {
            0 => &mut s.pending_batches,
            1 => &mut s.pending_bytes,
            2 => &mut s.oldest_age_ms,
            3 => &mut s.dropped_samples,
            4 => &mut s.dropped_batches,
            _ => return Ok(false),
        };
        *slot = r.u64()?;
        Ok(true)
    })?;
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(device: u16, ts_ms: i64, samples: &[(u16, Option<Value>, Quality)]) -> Frame {
        Frame {
            device,
            ts_ms,
            samples: samples
                .iter()
                .map(|&(metric, value, quality)| Sample {
                    metric,
                    value,
                    quality,
                })
                .collect(),
        }
    }

    #[test]
    fn epoch_is_key_6_written_only_when_not_zero() {
        let block = FramesBlock::encode(&[frame(0, 5, &[(0, Some(Value::Int(1)), Quality::Good)])])
            .unwrap();
        let mut header = BatchHeader {
            seq: 4,
            boot_id: 2,
            historical: false,
            status: None,
            epoch: 0,
        };
        let legacy = encode_batch(&header, &block);
        assert_eq!(legacy[0], 0xa5, "map(5): no epoch key for epoch 0");
        assert_eq!(Batch::decode(&legacy).unwrap().header.epoch, 0);
        header.epoch = u64::MAX;
        let bytes = encode_batch(&header, &block);
        assert_eq!(bytes[0], 0xa6);
        assert_eq!(Batch::decode(&bytes).unwrap().header, header);
    }

    #[test]
    fn batch_round_trips_with_all_slot_forms() {
        let batch = Batch {
            header: BatchHeader {
                epoch: 0,
                seq: 7,
                boot_id: 99,
                historical: true,
                status: Some(BufferStatus::default()),
            },
            frames: vec![
                frame(
                    0,
                    1_700_000_000_000,
                    &[
                        (0, Some(Value::Int(1234)), Quality::Good),
                        (3, Some(Value::Float(1.5)), Quality::Good),
                        (9, None, Quality::Bad),
                        (12, Some(Value::Bool(true)), Quality::Stale),
                        (13, Some(Value::Float(0.1)), Quality::Uncertain),
                    ],
                ),
                frame(
                    1,
                    1_699_999_999_990,
                    &[(0, Some(Value::Int(-5)), Quality::Good)],
                ),
            ],
        };
        let bytes = batch.encode().unwrap();
        assert_eq!(Batch::decode(&bytes).unwrap(), batch);
    }

    #[test]
    fn samples_are_sorted_by_alias_and_duplicates_rejected() {
        let f = frame(
            2,
            10,
            &[
                (5, Some(Value::Int(1)), Quality::Good),
                (1, Some(Value::Int(2)), Quality::Good),
            ],
        );
        let block = FramesBlock::encode(std::slice::from_ref(&f)).unwrap();
        let back = block.frames().unwrap();
        assert_eq!(
            back[0].samples.iter().map(|s| s.metric).collect::<Vec<_>>(),
            vec![1, 5]
        );
        let dup = frame(
            2,
            10,
            &[
                (5, Some(Value::Int(1)), Quality::Good),
                (5, Some(Value::Int(2)), Quality::Good),
            ],
        );
        assert_eq!(
            FramesBlock::encode(&[dup]),
            Err(EncodeError::DuplicateMetric {
                device: 2,
                ts_ms: 10,
                metric: 5
            })
        );
    }

    #[test]
    fn floats_take_their_smallest_exact_width() {
        let sizes = [
            (1.5, 3),
            (0.1f32 as f64, 5),
            (0.1, 9),
            (f64::INFINITY, 3),
            (65504.0, 3),
            (65505.0, 5),
        ];
        for (x, len) in sizes {
            let mut e = Encoder::new(Vec::new());
            put_float(&mut e, x);
            assert_eq!(e.into_writer().len(), len, "{x}");
        }
    }

    #[test]
    fn newer_version_is_rejected_and_unknown_fields_skipped() {
        let block = FramesBlock::encode(&[]).unwrap();
        let mut e = Encoder::new(Vec::new());
        e.map(6).unwrap();
        e.u8(0).unwrap().u8(1).unwrap();
        e.u8(1).unwrap().u8(3).unwrap();
        e.u8(2).unwrap().u8(4).unwrap();
        e.u8(40).unwrap().str("a field from the future").unwrap();
        e.u8(4).unwrap();
        e.writer_mut().extend_from_slice(block.as_bytes());
        e.u8(41).unwrap().array(1).unwrap().u8(1).unwrap();
        let batch = Batch::decode(&e.into_writer()).unwrap();
        assert_eq!(batch.header.seq, 3);

        let mut bytes = encode_batch(
            &BatchHeader {
                epoch: 0,
                seq: 1,
                boot_id: 1,
                historical: false,
                status: None,
            },
            &block,
        );
        bytes[2] = 3; // map(5), key 0, version 2 -> 3
        match Batch::decode(&bytes) {
            Err(DecodeError::IncompatibleVersion {
                found: 3,
                supported: 2,
                ..
            }) => {}
            other => panic!("expected incompatible version, got {other:?}"),
        }
    }

    #[test]
    fn missing_and_duplicate_fields_are_errors() {
        let mut e = Encoder::new(Vec::new());
        e.map(2)
            .unwrap()
            .u8(0)
            .unwrap()
            .u8(1)
            .unwrap()
            .u8(1)
            .unwrap()
            .u8(3)
            .unwrap();
        assert_eq!(
            Batch::decode(&e.into_writer()),
            Err(DecodeError::MissingField {
                message: BATCH,
                field: "boot_id"
            })
        );
        let mut e = Encoder::new(Vec::new());
        e.map(2)
            .unwrap()
            .u8(0)
            .unwrap()
            .u8(1)
            .unwrap()
            .u8(0)
            .unwrap()
            .u8(1)
            .unwrap();
        assert_eq!(
            Batch::decode(&e.into_writer()),
            Err(DecodeError::DuplicateField {
                message: BATCH,
                key: 0
            })
        );
    }

    fn steady_site() -> Vec<Frame> {
        let t0 = 1_763_800_000_490;
        let mut frames = Vec::new();
        for k in 0..10i64 {
            let jitter = [0, 1, -1, 2][k as usize % 4];
            frames.push(frame(
                0,
                t0 + k * 1000 + jitter,
                &[
                    (0, Some(Value::Int(3)), Quality::Good),
                    (14, Some(Value::Int(251 + k)), Quality::Good),
                ],
            ));
            frames.push(frame(
                3,
                t0 + k * 1000 + jitter + 1,
                &[(6, Some(Value::Int(1)), Quality::Good)],
            ));
        }
        frames.push(frame(
            0,
            t0 + 9_500,
            &[(36, Some(Value::Bool(true)), Quality::Good)],
        ));
        frames
    }

    #[test]
    fn version_2_groups_devices_and_costs_little_per_frame() {
        let frames = steady_site();
        let v2 = FramesBlock::encode(&frames).unwrap();
        let v1 = FramesBlock::encode_v1(&frames).unwrap();
        let mut expected: Vec<Frame> = frames.iter().filter(|f| f.device == 0).cloned().collect();
        expected.extend(frames.iter().filter(|f| f.device == 3).cloned());
        assert_eq!(v2.frames().unwrap(), expected);
        assert_eq!(v1.frames().unwrap(), frames);
        assert_eq!((v2.sample_count(), v1.sample_count()), (31, 31));
        // Per steady frame: 1 byte of delta-of-delta, 1 byte of repeated presence (null).
        let (short, long) = (v2.as_bytes().len(), v1.as_bytes().len());
        assert!(short * 5 < long * 3, "{short} vs {long}");
        // A steady device's later frames: dt within a byte and a null presence.
        let mut r = Reader::new(v2.as_bytes(), BLOCK);
        assert_eq!(r.array().unwrap(), 3);
        r.i64().unwrap();
        r.array().unwrap();
        assert_eq!(r.u16("device").unwrap(), 0);
        assert_eq!(r.i64().unwrap(), 0); // first frame: ts - base
        assert_eq!(r.u64().unwrap(), (1 << 0) | (1 << 14)); // bitmask
        r.skip().unwrap();
        r.skip().unwrap();
        assert_eq!(r.i64().unwrap(), 1001); // second frame: delta 1001 - 0
        r.null().unwrap();
        r.skip().unwrap();
        r.skip().unwrap();
        assert_eq!(r.i64().unwrap(), -3); // third: delta 998 - 1001
        r.null().unwrap();
    }

    #[test]
    fn presence_takes_its_shortest_form() {
        let len = |aliases: &[u16]| {
            let mut e = Encoder::new(Vec::new());
            put_presence(&mut e, aliases);
            e.into_writer()
        };
        assert_eq!(len(&[]), vec![0x00]);
        assert_eq!(len(&[0, 2]), vec![0x05]);
        assert_eq!(len(&[6]), vec![0x18, 0x40]);
        // Alias 36 as a bitmask needs 9 bytes; the 5-byte bitmap plus its head is shorter.
        assert_eq!(len(&[36]), vec![0x45, 0, 0, 0, 0, 0x10]);
        assert_eq!(len(&[300])[0], 0x58); // beyond 63: always a bitmap
    }

    #[test]
    fn extreme_timestamps_round_trip_in_version_2() {
        let frames = vec![
            frame(1, i64::MAX, &[]),
            frame(1, i64::MIN, &[(0, None, Quality::Bad)]),
            frame(1, 0, &[(0, None, Quality::Bad)]),
            frame(2, -5, &[]),
        ];
        let block = FramesBlock::encode(&frames).unwrap();
        assert_eq!(block.frames().unwrap(), frames);
    }

    #[test]
    fn malformed_version_2_sections_are_errors() {
        let cases: [(&[u8], &str); 4] = [
            // [base 0, []]: v1 with no frames is fine; [0, [1]]: a section without frames.
            (&[0x82, 0x00, 0x81, 0x01], ""),
            (
                &[0x82, 0x00, 0x82, 0x01, 0x00],
                "a frame needs dt and presence",
            ),
            (
                &[0x82, 0x00, 0x83, 0x01, 0x00, 0xf6],
                "null (same as before)",
            ),
            (
                &[0x82, 0x00, 0x83, 0x01, 0x00, 0x03],
                "marks 2 metrics but 0 items follow",
            ),
        ];
        for (bytes, expected) in cases {
            let result = FramesBlock::from_bytes(bytes.to_vec());
            if expected.is_empty() {
                assert_eq!(result.unwrap().sample_count(), 0);
            } else {
                let err = result.unwrap_err().to_string();
                assert!(err.contains(expected), "{bytes:02x?}: {err}");
            }
        }
    }

    #[test]
    fn presence_bitmap_must_match_slots() {
        let mut e = Encoder::new(Vec::new());
        e.array(2).unwrap().u8(0).unwrap().array(1).unwrap();
        e.array(4)
            .unwrap()
            .u8(0)
            .unwrap()
            .u8(0)
            .unwrap()
            .bytes(&[0b11])
            .unwrap();
        e.array(1).unwrap().u8(7).unwrap();
        let err = FramesBlock::from_bytes(e.into_writer()).unwrap_err();
        assert!(
            err.to_string()
                .contains("bitmap marks 2 metrics but 1 slots follow"),
            "{err}"
        );
    }
}
