//! Property tests: every batch round-trips, and no input — random or a mutated valid
//! message — makes a decoder panic.

use proptest::prelude::*;
use wire::seal::{self, MessageKey, SealError};
use wire::{
    Ack, Batch, BatchHeader, Birth, BirthStatus, BufferStatus, Command, CommandResult, Death,
    Frame, FramesBlock, Quality, Rejected, Sample, Value,
};

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::Int),
        (0i64..70_000).prop_map(Value::Int),
        any::<f64>()
            .prop_filter("NaN never equals itself", |f| !f.is_nan())
            .prop_map(Value::Float),
        any::<f32>()
            .prop_filter("NaN", |f| !f.is_nan())
            .prop_map(|f| Value::Float(f64::from(f))),
        any::<bool>().prop_map(Value::Bool),
    ]
}

fn quality() -> impl Strategy<Value = Quality> {
    prop_oneof![
        Just(Quality::Good),
        Just(Quality::Bad),
        Just(Quality::Stale),
        Just(Quality::Uncertain)
    ]
}

fn frame() -> impl Strategy<Value = Frame> {
    (
        any::<u16>(),
        -1_000_000_000_000i64..5_000_000_000_000,
        prop::collection::btree_map(0u16..300, (proptest::option::of(value()), quality()), 0..48),
    )
        .prop_map(|(device, ts_ms, samples)| Frame {
            device,
            ts_ms,
            samples: samples
                .into_iter()
                .map(|(metric, (value, quality))| Sample {
                    metric,
                    value,
                    quality,
                })
                .collect(),
        })
}

fn batch() -> impl Strategy<Value = Batch> {
    (
        any::<u64>(),
        any::<u64>(),
        any::<bool>(),
        proptest::option::of(any::<[u64; 5]>()),
        prop::collection::vec(frame(), 0..12),
        prop_oneof![Just(0u64), any::<u64>()],
    )
        .prop_map(|(seq, boot_id, historical, status, frames, epoch)| Batch {
            header: BatchHeader {
                epoch,
                seq,
                boot_id,
                historical,
                status: status.map(|s| BufferStatus {
                    pending_batches: s[0],
                    pending_bytes: s[1],
                    oldest_age_ms: s[2],
                    dropped_samples: s[3],
                    dropped_batches: s[4],
                }),
            },
            frames,
        })
}

/// The frames as a version-2 block gives them back: grouped by device (devices in order
/// of first appearance), each device's frames in their original order.
fn grouped(frames: &[Frame]) -> Vec<Frame> {
    let mut devices: Vec<u16> = Vec::new();
    for f in frames {
        if !devices.contains(&f.device) {
            devices.push(f.device);
        }
    }
    devices
        .iter()
        .flat_map(|d| frames.iter().filter(move |f| f.device == *d).cloned())
        .collect()
}

/// Frames of a few devices polled at steady intervals with jitter, some with repeated
/// alias sets (the shape a deadbanded site sends), or any timestamps at all.
fn site_frames() -> impl Strategy<Value = Vec<Frame>> {
    prop::collection::vec(
        (
            0u16..4,
            prop_oneof![any::<i64>(), 1_763_800_000_000i64..1_763_800_100_000],
            prop::collection::btree_map(0u16..70, (proptest::option::of(value()), quality()), 0..4),
        ),
        0..40,
    )
    .prop_map(|raw| {
        raw.into_iter()
            .map(|(device, ts_ms, samples)| Frame {
                device,
                ts_ms,
                samples: samples
                    .into_iter()
                    .map(|(metric, (value, quality))| Sample {
                        metric,
                        value,
                        quality,
                    })
                    .collect(),
            })
            .collect()
    })
}

fn ranges() -> impl Strategy<Value = Vec<(u64, u64)>> {
    prop::collection::vec((any::<u64>(), any::<u64>()), 0..6).prop_map(|pairs| {
        pairs
            .into_iter()
            .map(|(a, b)| (a.min(b), a.max(b)))
            .collect()
    })
}

fn rejected() -> impl Strategy<Value = Rejected> {
    (ranges(), any::<bool>(), "[a-z0-9_]{1,32}", "\\PC{0,60}").prop_map(
        |(ranges, permanent, reason, detail)| Rejected {
            ranges,
            permanent,
            reason,
            detail,
        },
    )
}

fn ack() -> impl Strategy<Value = Ack> {
    (ranges(), prop::collection::vec(rejected(), 0..5))
        .prop_map(|(ranges, rejected)| Ack { ranges, rejected })
}

/// Runs every decoder over the bytes; they may fail, never panic.
fn decode_all(bytes: &[u8]) {
    let _ = Batch::decode(bytes);
    let _ = FramesBlock::from_bytes(bytes.to_vec());
    let _ = Birth::decode(bytes);
    let _ = Birth::decode_with_status(bytes);
    let _ = Death::decode(bytes);
    let _ = Ack::decode(bytes);
    let _ = Command::decode(bytes);
    let _ = Command::recover_id(bytes);
    let _ = CommandResult::decode(bytes);
    let _ = wire::CloudState::decode(bytes);
    let key = MessageKey::derive(b"property-secret-0123456789");
    if let Ok(opened) = seal::open([&key], "wp/v1/a/g/data", bytes) {
        decode_all(opened.message);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn batches_round_trip(b in batch()) {
        let bytes = b.encode().unwrap();
        let back = Batch::decode(&bytes).unwrap();
        prop_assert_eq!(back.sample_count(), b.sample_count());
        prop_assert_eq!(back.header, b.header);
        prop_assert_eq!(back.frames, grouped(&b.frames));
    }

    #[test]
    fn site_blocks_round_trip_in_both_versions(frames in site_frames()) {
        let v2 = FramesBlock::encode(&frames).unwrap();
        prop_assert_eq!(v2.frames().unwrap(), grouped(&frames));
        // Version 1 keeps the frame order; its deltas do not wrap, so only for real clocks.
        if frames.iter().all(|f| f.ts_ms >= 1_763_800_000_000) {
            let v1 = FramesBlock::encode_v1(&frames).unwrap();
            let stored = FramesBlock::from_bytes(v1.as_bytes().to_vec()).unwrap();
            let count: usize = frames.iter().map(|f| f.samples.len()).sum();
            prop_assert_eq!(stored.sample_count() as usize, count);
            prop_assert_eq!(stored.frames().unwrap(), frames);
        }
    }

    #[test]
    fn stored_blocks_round_trip(b in batch()) {
        let block = FramesBlock::encode(&b.frames).unwrap();
        let stored = FramesBlock::from_bytes(block.as_bytes().to_vec()).unwrap();
        prop_assert_eq!(stored.sample_count() as usize, b.sample_count());
        prop_assert_eq!(stored.frames().unwrap(), grouped(&b.frames));
    }

    #[test]
    fn acks_round_trip_and_survive_mutation(
        a in ack(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
    ) {
        let bytes = a.encode();
        prop_assert_eq!(Ack::decode(&bytes).unwrap(), a.clone());
        if a.rejected.is_empty() {
            prop_assert_eq!(bytes.len(), Ack { rejected: Vec::new(), ..a }.encode().len());
        }
        let mut mutated = bytes.clone();
        for (at, byte) in edits {
            let i = at.index(mutated.len());
            mutated[i] = byte;
        }
        decode_all(&mutated);
        decode_all(&bytes[..cut.index(bytes.len() + 1)]);
    }

    #[test]
    fn birth_status_round_trips(s in any::<[u64; 6]>(), boot_id in any::<u64>()) {
        let birth = Birth {
            boot_id,
            ts_ms: 0,
            agent_version: "v".into(),
            config_hash: "h".into(),
            devices: Vec::new(),
        };
        let status = BirthStatus {
            set_aside_batches: s[0],
            set_aside_bytes: s[1],
            set_aside_dropped: s[2],
            epoch: s[3],
            dropped_batches: s[4],
            dropped_samples: s[5],
        };
        let bytes = birth.encode_with_status(Some(&status));
        prop_assert_eq!(Birth::decode_with_status(&bytes).unwrap(), (birth, Some(status)));
    }

    #[test]
    fn sealed_batches_open_only_unaltered_under_their_key_and_topic(
        b in batch(),
        password in "[ -~]{12,40}",
        other in "[ -~]{12,40}",
        edit in (any::<prop::sample::Index>(), 1u8..=255),
        cut in any::<prop::sample::Index>(),
    ) {
        let key = MessageKey::derive(password.as_bytes());
        let message = b.encode().unwrap();
        let topic = "wp/v1/acme/gw-1/data";
        let sealed = seal::seal(&key, topic, &message);
        prop_assert_eq!(sealed.len(), message.len() + seal::SEAL_OVERHEAD);
        let opened = seal::open([&key], topic, &sealed).unwrap();
        prop_assert_eq!(Batch::decode(opened.message).unwrap().frames, grouped(&b.frames));
        if other != password {
            let wrong = MessageKey::derive(other.as_bytes());
            prop_assert_eq!(seal::open([&wrong], topic, &sealed), Err(SealError::BadTag));
        }
        prop_assert_eq!(
            seal::open([&key], "wp/v1/acme/gw-2/data", &sealed),
            Err(SealError::BadTag)
        );
        let mut altered = sealed.clone();
        let i = edit.0.index(altered.len());
        altered[i] ^= edit.1;
        prop_assert!(seal::open([&key], topic, &altered).is_err());
        let len = cut.index(sealed.len());
        prop_assert!(seal::open([&key], topic, &sealed[..len]).is_err());
        decode_all(&altered);
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        decode_all(&bytes);
    }

    #[test]
    fn mutated_batches_never_panic(b in batch(), edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6), cut in any::<prop::sample::Index>()) {
        let mut bytes = b.encode().unwrap();
        for (at, byte) in edits {
            let i = at.index(bytes.len());
            bytes[i] = byte;
        }
        decode_all(&bytes);
        let len = cut.index(bytes.len() + 1);
        decode_all(&bytes[..len]);
    }
}
