//! Model-based test of the buffer: random operation sequences (append, pending reads, acks
//! of random ranges, births, close-and-reopen) run against the real redb buffer and a
//! plain in-memory model of the contract; after every step both must agree on contents,
//! seqs, statistics, drop counters and kept births.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use agent::buffer::{Buffer, BufferLimits};
use proptest::prelude::*;

const MAX_AGE_MS: i64 = 10_000;
const RECORD_HEADER_LEN: u64 = agent::buffer::RECORD_HEADER_LEN as u64;

#[derive(Debug, Clone)]
enum Op {
    /// Append a batch created `dt_ms` after the previous one (may be negative: clock steps).
    Append { dt_ms: i64, boot: u64, samples: u16 },
    /// Read up to `max` pending batches after a seq picked by `pick` (0 = from the start).
    Pending { pick: u64, max: usize },
    /// Ack ranges picked relative to the seqs handed out so far.
    Ack { ranges: Vec<(u64, u64)> },
    /// Start a new boot.
    Birth { boot: u64 },
    /// Close and reopen the database.
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (-2_000i64..4_000, 1u64..4, 1u16..40)
            .prop_map(|(dt_ms, boot, samples)| Op::Append { dt_ms, boot, samples }),
        2 => (0u64..60, 0usize..8).prop_map(|(pick, max)| Op::Pending { pick, max }),
        3 => prop::collection::vec((0u64..60, 0u64..6), 0..4).prop_map(|ranges| Op::Ack { ranges }),
        1 => (1u64..4).prop_map(|boot| Op::Birth { boot }),
        1 => Just(Op::Reopen),
    ]
}

#[derive(Debug, Clone, Copy)]
struct ModelRecord {
    created_ms: i64,
    boot: u64,
    samples: u64,
    bytes: u64,
}

/// The contract, written as plainly as possible.
#[derive(Debug)]
struct Model {
    max_bytes: u64,
    records: BTreeMap<u64, ModelRecord>,
    next_seq: u64,
    dropped_batches: u64,
    dropped_samples: u64,
    current_boot: Option<u64>,
    /// Births stored and still needed (current boot or referenced by a record).
    kept_births: BTreeSet<u64>,
    clock_ms: i64,
}

impl Model {
    fn bytes(&self) -> u64 {
        self.records.values().map(|r| r.bytes).sum()
    }

    fn append(&mut self, record: ModelRecord) -> Option<u64> {
        if record.bytes > self.max_bytes {
            self.dropped_batches += 1;
            self.dropped_samples += record.samples;
            return None;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.records.insert(seq, record);
        let cutoff = record.created_ms - MAX_AGE_MS;
        while self.records.len() > 1 {
            let (&oldest, first) = self.records.first_key_value().expect("non-empty");
            if first.created_ms >= cutoff && self.bytes() <= self.max_bytes {
                break;
            }
            self.dropped_batches += 1;
            self.dropped_samples += first.samples;
            self.records.remove(&oldest);
        }
        Some(seq)
    }

    /// Forgets births no longer needed (after any removal or a new boot).
    fn prune_births(&mut self) {
        let needed: BTreeSet<u64> = self
            .records
            .values()
            .map(|r| r.boot)
            .chain(self.current_boot)
            .collect();
        self.kept_births.retain(|b| needed.contains(b));
    }
}

fn block(samples: u16, salt: i64) -> wire::FramesBlock {
    let frame = wire::Frame {
        device: 0,
        ts_ms: salt,
        samples: (0..samples)
            .map(|metric| wire::Sample {
                metric,
                value: Some(wire::Value::Int(salt.wrapping_mul(31) + i64::from(metric))),
                quality: wire::Quality::Good,
            })
            .collect(),
    };
    wire::FramesBlock::encode(&[frame]).expect("encodable frame")
}

fn birth(boot_id: u64) -> wire::Birth {
    wire::Birth {
        boot_id,
        ts_ms: 0,
        agent_version: "model".into(),
        config_hash: String::new(),
        devices: Vec::new(),
    }
}

fn check(buffer: &Buffer, model: &Model) -> Result<(), TestCaseError> {
    let all = buffer.pending(None, usize::MAX).expect("pending");
    let real: Vec<(u64, i64, u64, u64)> = all
        .iter()
        .map(|r| (r.seq, r.created_ms, r.boot_id, u64::from(r.samples)))
        .collect();
    let expected: Vec<(u64, i64, u64, u64)> = model
        .records
        .iter()
        .map(|(&seq, r)| (seq, r.created_ms, r.boot, r.samples))
        .collect();
    prop_assert_eq!(real, expected);
    for record in &all {
        prop_assert_eq!(
            u64::from(record.block.sample_count()),
            model.records[&record.seq].samples
        );
    }
    let stats = buffer.stats();
    prop_assert_eq!(stats.pending_batches, model.records.len() as u64);
    prop_assert_eq!(stats.pending_bytes, model.bytes());
    prop_assert_eq!(
        stats.pending_samples,
        model.records.values().map(|r| r.samples).sum::<u64>()
    );
    prop_assert_eq!(
        stats.oldest_created_ms,
        model.records.values().next().map(|r| r.created_ms)
    );
    prop_assert_eq!(stats.next_seq, model.next_seq);
    prop_assert_eq!(stats.dropped_batches, model.dropped_batches);
    prop_assert_eq!(stats.dropped_samples, model.dropped_samples);
    let births: BTreeSet<u64> = buffer.birth_ids().expect("births").into_iter().collect();
    prop_assert_eq!(
        &births,
        &model.kept_births,
        "exactly the needed births are kept"
    );
    Ok(())
}

fn run(ops: Vec<Op>, max_bytes: u64, path: &Path) -> Result<(), TestCaseError> {
    let limits = BufferLimits {
        max_bytes,
        max_age: Duration::from_millis(MAX_AGE_MS as u64),
    };
    let mut buffer = Some(Buffer::open(path, limits).expect("open"));
    let mut model = Model {
        max_bytes,
        records: BTreeMap::new(),
        next_seq: 1,
        dropped_batches: 0,
        dropped_samples: 0,
        current_boot: None,
        kept_births: BTreeSet::new(),
        clock_ms: 1_000_000,
    };
    for op in ops {
        let b = buffer.as_ref().expect("open buffer");
        match op {
            Op::Append {
                dt_ms,
                boot,
                samples,
            } => {
                model.clock_ms += dt_ms;
                let block = block(samples, model.clock_ms);
                let record = ModelRecord {
                    created_ms: model.clock_ms,
                    boot,
                    samples: u64::from(samples),
                    bytes: RECORD_HEADER_LEN + block.as_bytes().len() as u64,
                };
                let expected = model.append(record);
                let got = b.append(model.clock_ms, boot, &block).ok();
                prop_assert_eq!(got, expected);
            }
            Op::Pending { pick, max } => {
                let after = (pick > 0).then_some(pick % model.next_seq);
                let got: Vec<u64> = b
                    .pending(after, max)
                    .expect("pending")
                    .iter()
                    .map(|r| r.seq)
                    .collect();
                let expected: Vec<u64> = model
                    .records
                    .keys()
                    .copied()
                    .filter(|&s| after.is_none_or(|a| s > a))
                    .take(max)
                    .collect();
                prop_assert_eq!(got, expected);
            }
            Op::Ack { ranges } => {
                let ranges: Vec<(u64, u64)> = ranges
                    .into_iter()
                    .map(|(lo, len)| {
                        let lo = lo % (model.next_seq + 2);
                        (lo, lo + len)
                    })
                    .collect();
                let mut expected = 0;
                model.records.retain(|seq, _| {
                    let hit = ranges.iter().any(|&(lo, hi)| (lo..=hi).contains(seq));
                    expected += u64::from(hit);
                    !hit
                });
                let outcome = b.ack(&ranges).expect("ack");
                prop_assert_eq!(outcome.batches, expected);
            }
            Op::Birth { boot } => {
                b.store_birth(&birth(boot)).expect("store birth");
                model.current_boot = Some(boot);
                model.kept_births.insert(boot);
            }
            Op::Reopen => {
                drop(buffer.take());
                buffer = Some(Buffer::open(path, limits).expect("reopen"));
            }
        }
        model.prune_births();
        let b = buffer.as_ref().expect("open buffer");
        check(b, &model)?;
        for &id in &model.kept_births {
            prop_assert_eq!(b.birth(id).expect("birth"), Some(birth(id)));
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn buffer_matches_model(ops in prop::collection::vec(op(), 1..60), max_bytes in 40u64..1_500) {
        let dir = tempfile::tempdir().expect("tempdir");
        run(ops, max_bytes, &dir.path().join("model.redb"))?;
    }
}
