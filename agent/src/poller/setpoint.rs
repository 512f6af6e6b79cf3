//! Guarded setpoint writes (`CommandKind::WriteSetpoint`).
//!
//! A write from the cloud changes how a well runs, so it is checked before anything goes on
//! the wire and verified afterwards:
//!
//! 1. **Static checks** ([`prepare`], done by the [`super::CommandRouter`] before queuing):
//!    the device and metric aliases exist, the tag is `writable` in its profile and lives
//!    in a writable table, the engineering value is finite, inside the tag's valid range
//!    and representable in its data type.
//! 2. **Compare before write** (optional `expected_current`): the tag is read and the write
//!    refused unless it currently holds the expected engineering value (within half a raw
//!    step for integer types, 1e-6 relative for floats) — the operator's view was not stale.
//! 3. **Write**: function 5 for coils, 6 for one register, 16 for several; a bit inside a
//!    holding register is read-modify-written (the device offers no atomic alternative
//!    everyone supports; the window is one round trip).
//! 4. **Read back** and compare with the raw value written; a device that silently clamps
//!    or ignores the write is reported as a failure.
//!
//! The write runs in the device's own poller task (the owner of its link), between polls,
//! so it never races a poll on the same connection or serial bus.

use std::sync::atomic::Ordering::Relaxed;

use firmware_profiles::{DataType, RawValue, RegisterType, Tag};
use tokio::sync::oneshot;
use tokio::time::Duration;
use tokio_modbus::client::Context;
use wire::CommandResult;

use super::device::DeviceRuntime;
use super::link::{self, Data, IoError};
use crate::config::DeviceSettings;
use crate::plan::Space;

/// A validated write waiting for the device's poller.
#[derive(Debug)]
pub struct SetpointJob {
    /// Command id (echoed in the result).
    pub id: u64,
    /// Device alias.
    pub device: u16,
    /// Metric alias (tag index).
    pub metric: u16,
    /// Engineering value to write.
    pub value: f64,
    /// Raw value to write (from the static checks).
    pub raw: RawValue,
    /// Compare-before-write guard, engineering units.
    pub expected_current: Option<f64>,
    /// Where the result goes.
    pub reply: oneshot::Sender<CommandResult>,
}

/// Static checks of a write; returns the raw value to write.
pub fn prepare(device: &DeviceSettings, metric: u16, value: f64) -> Result<RawValue, String> {
    let tag = device
        .profile
        .tags
        .get(usize::from(metric))
        .ok_or_else(|| {
            format!(
                "device {:?} has no metric alias {metric} (profile {} has {} tags)",
                device.name,
                device.profile_id,
                device.profile.tags.len()
            )
        })?;
    if !tag.writable || !tag.register.is_writable() {
        return Err(format!(
            "tag {:?} of device {:?} is not writable",
            tag.name, device.name
        ));
    }
    if !value.is_finite() {
        return Err(format!("value {value} is not a finite number"));
    }
    if !tag.in_valid_range(value) {
        let (min, max) = tag.valid_range.unwrap_or((f64::NAN, f64::NAN));
        return Err(format!(
            "value {value} {} is outside the valid range [{min}, {max}] of tag {:?}",
            tag.unit, tag.name
        ));
    }
    tag.from_engineering(value).map_err(|e| e.to_string())
}

/// Runs a prepared write on an open link. `Ok` carries the success message; `Err` carries
/// the refusal or failure message and, when the link broke, the I/O error.
pub async fn execute(
    ctx: &mut Context,
    device: &DeviceRuntime,
    job: &SetpointJob,
    pace: Duration,
) -> Result<String, (String, Option<IoError>)> {
    let settings = &device.settings;
    let tag = &settings.profile.tags[usize::from(job.metric)];
    let limit = settings.timeout;
    let io = |what: &str, e: IoError| {
        device.count_error(&e);
        let msg = format!("{what} of tag {:?} failed: {e}", tag.name);
        let broke = e.breaks_link().then_some(e);
        (msg, broke)
    };
    let current = read_raw(ctx, device, tag, limit, pace)
        .await
        .map_err(|e| io("reading", e))?;
    if let Some(expected) = job.expected_current {
        let now = tag.to_engineering(&current.value).unwrap_or(f64::NAN);
        if !matches_expected(tag, now, expected) {
            return Err((
                format!(
                    "tag {:?} reads {now} {}, expected {expected}: write refused",
                    tag.name, tag.unit
                ),
                None,
            ));
        }
    }
    pause(pace).await;
    write_raw(ctx, device, tag, &job.raw, current.register, limit)
        .await
        .map_err(|e| io("writing", e))?;
    pause(pace).await;
    let back = read_raw(ctx, device, tag, limit, pace)
        .await
        .map_err(|e| io("reading back", e))?;
    if back.value != job.raw {
        return Err((
            format!(
                "tag {:?} reads back {:?} after writing {:?}",
                tag.name, back.value, job.raw
            ),
            None,
        ));
    }
    Ok(format!(
        "wrote {} {} to {:?} on {:?}",
        job.value, tag.unit, tag.name, settings.name
    ))
}

/// A tag's current raw value and, for bit-in-register tags, the whole register.
struct Current {
    value: RawValue,
    register: u16,
}

async fn read_raw(
    ctx: &mut Context,
    device: &DeviceRuntime,
    tag: &Tag,
    limit: Duration,
    pace: Duration,
) -> Result<Current, IoError> {
    pause(pace).await;
    device.metrics.requests.fetch_add(1, Relaxed);
    let space = Space::of(tag.register);
    let data = link::read(ctx, space, tag.address, tag.register_count(), limit).await?;
    let decoded = match &data {
        Data::Bits(bits) => Ok((tag.decode_bit(bits[0]), 0)),
        Data::Words(words) => tag.decode(words).map(|v| (v, words[0])),
    };
    let (value, register) = decoded.map_err(|e| {
        let e = std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string());
        IoError::Transport(e.into())
    })?;
    Ok(Current { value, register })
}

async fn write_raw(
    ctx: &mut Context,
    device: &DeviceRuntime,
    tag: &Tag,
    raw: &RawValue,
    register: u16,
    limit: Duration,
) -> Result<(), IoError> {
    device.metrics.requests.fetch_add(1, Relaxed);
    let invalid = |e: firmware_profiles::CodecError| {
        let e = std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string());
        IoError::Transport(e.into())
    };
    match (tag.register, tag.data_type, raw) {
        (RegisterType::Coil, _, RawValue::Bool(on)) => {
            link::write_coil(ctx, tag.address, *on, limit).await
        }
        (_, DataType::Bit { .. }, RawValue::Bool(on)) => {
            let word = tag.merge_bit(register, *on).map_err(invalid)?;
            link::write_registers(ctx, tag.address, &[word], limit).await
        }
        _ => {
            let words = tag.encode(raw).map_err(invalid)?;
            link::write_registers(ctx, tag.address, &words, limit).await
        }
    }
}

/// Compare-before-write tolerance: half a raw step for integers, 1e-6 relative for floats.
fn matches_expected(tag: &Tag, current: f64, expected: f64) -> bool {
    let tolerance = if tag.data_type.is_float() {
        1e-6 * expected.abs().max(1.0)
    } else {
        tag.scale.abs() / 2.0
    };
    (current - expected).abs() <= tolerance
}

async fn pause(pace: Duration) {
    if !pace.is_zero() {
        tokio::time::sleep(pace).await;
    }
}

/// Sends a result, ignoring a requester that gave up waiting.
pub fn reply(job: SetpointJob, outcome: Result<String, String>) {
    let (ok, message) = match outcome {
        Ok(m) => (true, m),
        Err(m) => (false, m),
    };
    let _ = job.reply.send(CommandResult {
        id: job.id,
        ok,
        message,
    });
}
