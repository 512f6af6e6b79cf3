//! Pure decoding of an MQTT message: topic first, then payload.
//!
//! Nothing here touches the network or the database, and nothing panics on hostile input:
//! every failure is a [`Refusal`] carrying its [`RejectReason`] and a human-readable detail
//! for the log and the `ingest_rejections` table.

use super::stats::RejectReason;
use wire::topic::{self, Kind};
use wire::{Batch, Birth, CommandResult, Death, DecodeError};

/// A decoded edge → cloud message.
#[derive(Debug)]
pub(crate) enum Payload {
    /// Session start and catalog.
    Birth(Birth),
    /// Session end (last will).
    Death(Death),
    /// A data batch.
    Data(Batch),
    /// The outcome of a command.
    CmdResult(CommandResult),
}

/// Why a message is refused, with the detail to log and record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    /// The counted reason.
    pub reason: RejectReason,
    /// What exactly was wrong.
    pub detail: String,
}

impl Refusal {
    pub(crate) fn new(reason: RejectReason, detail: impl Into<String>) -> Refusal {
        Refusal {
            reason,
            detail: detail.into(),
        }
    }
}

/// The parts of a valid edge → cloud topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Address {
    /// Tenant id (slug) from the topic.
    pub tenant: String,
    /// Gateway id (slug) from the topic.
    pub gateway: String,
    /// Message kind; never `Ack` or `Cmd`.
    pub kind: Kind,
}

/// Splits a topic; refuses malformed topics and cloud → edge kinds.
pub(crate) fn parse_topic(name: &str) -> Result<Address, Refusal> {
    let (tenant, gateway, kind) =
        topic::parse(name).map_err(|e| Refusal::new(RejectReason::BadTopic, e.to_string()))?;
    if matches!(kind, Kind::Ack | Kind::Cmd) {
        return Err(Refusal::new(
            RejectReason::WrongDirection,
            format!("topic {name:?} carries cloud-to-edge messages"),
        ));
    }
    Ok(Address {
        tenant,
        gateway,
        kind,
    })
}

/// Earliest and latest sample timestamps accepted (UTC ms): years 1970 to 9999. Anything
/// outside is a broken gateway clock that PostgreSQL ranges and rollups cannot hold.
const MIN_TS_MS: i64 = 0;
const MAX_TS_MS: i64 = 253_402_300_799_999;

/// Decodes the payload of a message of `kind` (from [`parse_topic`]).
pub(crate) fn decode_payload(kind: Kind, bytes: &[u8]) -> Result<Payload, Refusal> {
    let payload = match kind {
        Kind::Birth => Birth::decode(bytes).map(Payload::Birth),
        Kind::Death => Death::decode(bytes).map(Payload::Death),
        Kind::Data => Batch::decode(bytes).map(Payload::Data),
        Kind::CmdResult => CommandResult::decode(bytes).map(Payload::CmdResult),
        Kind::Ack | Kind::Cmd => {
            return Err(Refusal::new(
                RejectReason::WrongDirection,
                "cloud-to-edge message kind",
            ));
        }
    }
    .map_err(decode_refusal)?;
    check_ranges(&payload)?;
    Ok(payload)
}

fn decode_refusal(e: DecodeError) -> Refusal {
    let reason = match e {
        DecodeError::IncompatibleVersion { .. } => RejectReason::IncompatibleVersion,
        _ => RejectReason::Malformed,
    };
    Refusal::new(reason, e.to_string())
}

/// Values the wire allows but the database cannot hold.
fn check_ranges(payload: &Payload) -> Result<(), Refusal> {
    let ts_ok = |ts: i64| (MIN_TS_MS..=MAX_TS_MS).contains(&ts);
    let bad_ts = |ts: i64| {
        Refusal::new(
            RejectReason::OutOfRange,
            format!("timestamp {ts} ms is outside years 1970-9999"),
        )
    };
    match payload {
        Payload::Data(batch) => {
            if i64::try_from(batch.header.seq).is_err() {
                return Err(Refusal::new(
                    RejectReason::OutOfRange,
                    format!("batch seq {} exceeds 2^63-1", batch.header.seq),
                ));
            }
            if let Some(f) = batch.frames.iter().find(|f| !ts_ok(f.ts_ms)) {
                return Err(bad_ts(f.ts_ms));
            }
        }
        Payload::Birth(b) if !ts_ok(b.ts_ms) => return Err(bad_ts(b.ts_ms)),
        Payload::Death(d) if !ts_ok(d.ts_ms) => return Err(bad_ts(d.ts_ms)),
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use wire::{BatchHeader, Frame, Quality, Sample, Value};

    fn batch(seq: u64, ts_ms: i64) -> Batch {
        Batch {
            header: BatchHeader {
                epoch: 0,
                seq,
                boot_id: 7,
                historical: false,
                status: None,
            },
            frames: vec![Frame {
                device: 0,
                ts_ms,
                samples: vec![Sample {
                    metric: 0,
                    value: Some(Value::Int(5)),
                    quality: Quality::Good,
                }],
            }],
        }
    }

    #[test]
    fn topics_are_checked_for_shape_and_direction() {
        let ok = parse_topic("wp/v1/acme/gw-1/data").unwrap();
        assert_eq!((ok.tenant.as_str(), ok.gateway.as_str()), ("acme", "gw-1"));
        assert_eq!(ok.kind, Kind::Data);
        assert_eq!(
            parse_topic("wp/v1/acme/gw-1/cmd/result").unwrap().kind,
            Kind::CmdResult
        );
        let cases = [
            ("wp/v1/acme/gw-1/ack", RejectReason::WrongDirection),
            ("wp/v1/acme/gw-1/cmd", RejectReason::WrongDirection),
            ("wp/v1/ACME/gw-1/data", RejectReason::BadTopic),
            ("wp/v1/acme/data", RejectReason::BadTopic),
            ("other/topic", RejectReason::BadTopic),
        ];
        for (t, reason) in cases {
            assert_eq!(parse_topic(t).unwrap_err().reason, reason, "{t}");
        }
    }

    #[test]
    fn payloads_decode_by_kind() {
        let bytes = batch(3, 1_700_000_000_000).encode().unwrap();
        assert!(matches!(
            decode_payload(Kind::Data, &bytes),
            Ok(Payload::Data(b)) if b.header.seq == 3
        ));
        let death = Death {
            boot_id: 1,
            ts_ms: 1_700_000_000_000,
        };
        assert!(matches!(
            decode_payload(Kind::Death, &death.encode()),
            Ok(Payload::Death(d)) if d == death
        ));
        // A death is not a batch.
        assert_eq!(
            decode_payload(Kind::Data, &death.encode())
                .unwrap_err()
                .reason,
            RejectReason::Malformed
        );
    }

    #[test]
    fn both_batch_versions_are_accepted_during_the_transition() {
        let b = batch(9, 1_700_000_000_000);
        let v1_block = wire::FramesBlock::encode_v1(&b.frames).unwrap();
        // As agents before batch version 2 sent it: version 1, version-1 block.
        let mut v1 = wire::encode_batch(&b.header, &v1_block);
        assert_eq!(v1[..3], [0xa5, 0x00, 0x02]);
        v1[2] = 0x01;
        // A version-1 block stored before an agent upgrade, sent under a version-2 header.
        let upgraded = wire::encode_batch(&b.header, &v1_block);
        let v2 = b.encode().unwrap();
        assert_ne!(
            v1_block.as_bytes(),
            wire::FramesBlock::encode(&b.frames).unwrap().as_bytes()
        );
        for bytes in [v1, upgraded, v2] {
            match decode_payload(Kind::Data, &bytes) {
                Ok(Payload::Data(decoded)) => assert_eq!(decoded, b),
                other => panic!("expected the batch, got {other:?}"),
            }
        }
        // A batch version this build does not know is refused as incompatible.
        let mut v3 = b.encode().unwrap();
        v3[2] = 0x03;
        assert_eq!(
            decode_payload(Kind::Data, &v3).unwrap_err().reason,
            RejectReason::IncompatibleVersion
        );
    }

    #[test]
    fn newer_schema_versions_are_incompatible() {
        // { 0: 99, 1: 1, 2: 2 } — a death from schema version 99.
        let bytes = [0xa3, 0x00, 0x18, 0x63, 0x01, 0x01, 0x02, 0x02];
        let refusal = decode_payload(Kind::Death, &bytes).unwrap_err();
        assert_eq!(refusal.reason, RejectReason::IncompatibleVersion);
        assert!(refusal.detail.contains("99"), "{}", refusal.detail);
    }

    #[test]
    fn values_the_database_cannot_hold_are_out_of_range() {
        for b in [batch(1 << 63, 1_700_000_000_000), batch(1, -5)] {
            let bytes = b.encode().unwrap();
            assert_eq!(
                decode_payload(Kind::Data, &bytes).unwrap_err().reason,
                RejectReason::OutOfRange
            );
        }
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            for kind in [Kind::Birth, Kind::Death, Kind::Data, Kind::CmdResult] {
                if let Err(r) = decode_payload(kind, &bytes) {
                    prop_assert!(matches!(
                        r.reason,
                        RejectReason::Malformed | RejectReason::IncompatibleVersion | RejectReason::OutOfRange
                    ));
                }
            }
        }

        #[test]
        fn arbitrary_topics_never_panic(t in "\\PC{0,80}") {
            let _ = parse_topic(&t);
        }
    }
}
