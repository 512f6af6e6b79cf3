//! The WellPulse edge/cloud message contract.
//!
//! This crate is the only place where the messages exchanged between a gateway agent and
//! the cloud are defined. It does no I/O: it turns messages into CBOR bytes and back, and
//! builds and parses MQTT topic names.
//!
//! # Messages
//!
//! | message | topic kind | direction |
//! |---|---|---|
//! | [`Birth`] | `birth` | edge → cloud: session start and device/metric catalog |
//! | [`Death`] | `death` | edge → cloud: MQTT last will, ends a session |
//! | [`Batch`] | `data` | edge → cloud: samples |
//! | [`Ack`] | `ack` | cloud → edge: committed batch seqs, and refused ones with the reason |
//! | [`Command`] | `cmd` | cloud → edge: rebirth, config update, setpoint write |
//! | [`CommandResult`] | `cmd/result` | edge → cloud: outcome of a command |
//! | [`CloudState`] | `wp/v1/_state/{ingester}` | cloud → every edge: an ingester is online or offline (retained, last will; see [`state`]) |
//!
//! # Encoding rules (schema version 1; data batch version 2)
//!
//! Every message is a CBOR map with small unsigned-integer keys; key `0` is the schema
//! version. Integer keys keep messages small; maps (rather than positional arrays) let a
//! newer sender add fields that an older receiver skips. The version changes only for
//! incompatible changes: a receiver rejects a version newer than [`SCHEMA_VERSION`] with
//! [`DecodeError::IncompatibleVersion`] and ignores map keys it does not know.
//! Only definite-length items are produced and accepted.
//!
//! The data batch is designed to cost a few bytes per sample (see the `batch` module):
//! samples of one device poll share one timestamp (a *frame*), a device's frames share one
//! section (its alias written once), timestamps are delta-of-delta coded per device,
//! metrics are identified by their position in a presence bitmask instead of by name, and
//! values are the raw register integers (scale and offset are declared once, in the
//! [`Birth`] catalog) or floats in their smallest exact CBOR width. The data batch has its
//! own version, [`BATCH_VERSION`] (2; version 1 is still read); every other message is at
//! [`SCHEMA_VERSION`].
//!
//! # Authentication
//!
//! On MQTT every message travels *sealed* ([`seal`]): `[1, message, tag]`, where the tag is
//! a truncated HMAC-SHA256 over the topic and the payload under the gateway's
//! [`MessageKey`] (derived from its MQTT password). The agent acts only on acks and
//! commands sealed for its own topics; the cloud stores only births, deaths and batches
//! sealed by the gateway they claim to come from. Commands carry an expiry and a
//! one-time id, so a sealed command cannot be replayed. The messages themselves are
//! unchanged inside the seal, and the encoders and decoders of this crate read and write
//! the bare messages (what the agent stores); sealing happens at publish time, opening
//! on receipt.
//!
//! The one message that is not sealed is the cloud's readiness ([`CloudState`]): it is
//! addressed to every gateway at once, and an agent only ever re-sends more because of
//! it, never less (see [`state`] for why that makes a seal unnecessary).
//!
//! Golden files in `wire/tests/data/` pin the format, and a test decodes them with
//! Python's `cbor2` to prove that any standard CBOR library reads them.

mod batch;
mod codec;
mod control;
mod error;
pub mod seal;
pub mod state;
pub mod topic;

pub use batch::{
    BATCH_VERSION, Batch, BatchHeader, BufferStatus, Frame, FramesBlock, Quality, Sample, Value,
    encode_batch,
};
pub use control::{
    Ack, Birth, BirthStatus, CUSTOM_NAMESPACE, Command, CommandKind, CommandResult, Death,
    DeviceEntry, MAX_DETAIL_LEN, MAX_REASON_LEN, MAX_REJECTIONS, MetricEntry, MetricKind, Rejected,
    merge_ranges,
};
pub use error::{DecodeError, EncodeError};
pub use seal::{MessageKey, SealError};
pub use state::CloudState;

/// The schema version this build writes, and the newest one it reads.
pub const SCHEMA_VERSION: u16 = 1;

/// A 64-bit session id (a boot id) as it is printed everywhere — logs of the agent and
/// of the cloud, metrics labels, API fields, command answers: 16 lowercase hex digits.
/// Random ids read better and compare at a glance in hex; printing them one way lets an
/// operator grep the agent's log line for the cloud's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HexId(pub u64);

impl std::fmt::Display for HexId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::HexId;

    #[test]
    fn ids_print_as_sixteen_hex_digits() {
        assert_eq!(HexId(0x2a).to_string(), "000000000000002a");
        assert_eq!(HexId(u64::MAX).to_string(), "ffffffffffffffff");
    }
}
