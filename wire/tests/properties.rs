//! Property tests: every batch round-trips, and no input — random or a mutated valid
//! message — makes a decoder panic.

use proptest::prelude::*;
use wire::{
    Ack, Batch, BatchHeader, Birth, BufferStatus, Command, CommandResult, Death, Frame,
    FramesBlock, Quality, Sample, Value,
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
    )
        .prop_map(|(seq, boot_id, historical, status, frames)| Batch {
            header: BatchHeader {
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

/// Runs every decoder over the bytes; they may fail, never panic.
fn decode_all(bytes: &[u8]) {
    let _ = Batch::decode(bytes);
    let _ = FramesBlock::from_bytes(bytes.to_vec());
    let _ = Birth::decode(bytes);
    let _ = Death::decode(bytes);
    let _ = Ack::decode(bytes);
    let _ = Command::decode(bytes);
    let _ = Command::recover_id(bytes);
    let _ = CommandResult::decode(bytes);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn batches_round_trip(b in batch()) {
        let bytes = b.encode().unwrap();
        let back = Batch::decode(&bytes).unwrap();
        prop_assert_eq!(back.sample_count(), b.sample_count());
        prop_assert_eq!(back, b);
    }

    #[test]
    fn stored_blocks_round_trip(b in batch()) {
        let block = FramesBlock::encode(&b.frames).unwrap();
        let stored = FramesBlock::from_bytes(block.as_bytes().to_vec()).unwrap();
        prop_assert_eq!(stored.sample_count() as usize, b.sample_count());
        prop_assert_eq!(stored.frames().unwrap(), b.frames);
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
