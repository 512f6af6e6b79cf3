//! Behaviour of the durable buffer through its public API: ordering, acks, seq durability
//! across reopen, size and age limits, births and statistics.

use std::path::Path;
use std::time::Duration;

use agent::buffer::{AckOutcome, Buffer, BufferError, BufferLimits};

fn block(samples: u16) -> wire::FramesBlock {
    let frame = wire::Frame {
        device: 1,
        ts_ms: 1_700_000_000_000,
        samples: (0..samples)
            .map(|metric| wire::Sample {
                metric,
                value: Some(wire::Value::Int(1000 + i64::from(metric))),
                quality: wire::Quality::Good,
            })
            .collect(),
    };
    wire::FramesBlock::encode(&[frame]).expect("encodable frame")
}

fn birth(boot_id: u64) -> wire::Birth {
    wire::Birth {
        boot_id,
        ts_ms: 1_700_000_000_000,
        agent_version: "test".into(),
        config_hash: format!("hash-{boot_id}"),
        devices: Vec::new(),
    }
}

fn roomy() -> BufferLimits {
    BufferLimits {
        max_bytes: 64 << 20,
        max_age: Duration::from_secs(7 * 24 * 3600),
    }
}

fn open(path: &Path, limits: BufferLimits) -> Buffer {
    Buffer::open(path, limits).expect("open buffer")
}

fn seqs(records: &[agent::buffer::Record]) -> Vec<u64> {
    records.iter().map(|r| r.seq).collect()
}

#[test]
fn append_returns_increasing_seqs_and_pending_is_oldest_first() {
    let dir = tempfile::tempdir().expect("tempdir");
    let buffer = open(&dir.path().join("b.redb"), roomy());
    let appended: Vec<u64> = (0..10)
        .map(|i| buffer.append(1_000 + i, 7, &block(5)).expect("append"))
        .collect();
    assert_eq!(appended, (1..=10).collect::<Vec<_>>());

    let all = buffer.pending(None, 100).expect("pending");
    assert_eq!(seqs(&all), appended);
    let first = &all[0];
    assert_eq!(
        (first.created_ms, first.boot_id, first.samples),
        (1_000, 7, 5)
    );
    assert_eq!(first.block, block(5));

    assert_eq!(
        seqs(&buffer.pending(Some(3), 4).expect("pending")),
        vec![4, 5, 6, 7]
    );
    assert_eq!(seqs(&buffer.newest(3).expect("newest")), vec![8, 9, 10]);
    assert_eq!(buffer.get(4).expect("get").map(|r| r.seq), Some(4));
    assert!(buffer.get(11).expect("get").is_none());

    let stats = buffer.stats();
    assert_eq!(stats.pending_batches, 10);
    assert_eq!(stats.pending_samples, 50);
    assert_eq!(stats.oldest_created_ms, Some(1_000));
    assert_eq!(stats.next_seq, 11);
}

#[test]
fn ack_deletes_named_batches_and_tolerates_duplicates_and_unknown_seqs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let buffer = open(&dir.path().join("b.redb"), roomy());
    for i in 0..10 {
        buffer.append(i, 1, &block(4)).expect("append");
    }
    let outcome = buffer.ack(&[(2, 4), (9, 9)]).expect("ack");
    assert_eq!(
        outcome,
        AckOutcome {
            batches: 4,
            samples: 16,
            unknown: 0
        }
    );
    // Duplicate, overlapping and unknown seqs.
    let outcome = buffer.ack(&[(3, 5), (4, 4), (50, 60)]).expect("ack");
    assert_eq!(
        outcome,
        AckOutcome {
            batches: 1,
            samples: 4,
            unknown: 13
        }
    );
    assert_eq!(
        seqs(&buffer.pending(None, 100).expect("pending")),
        vec![1, 6, 7, 8, 10]
    );
    assert_eq!(buffer.stats().oldest_created_ms, Some(0));
    buffer.ack(&[(1, 1)]).expect("ack");
    assert_eq!(buffer.stats().oldest_created_ms, Some(5));
    let outcome = buffer.ack(&[(0, u64::MAX)]).expect("ack everything");
    assert_eq!(outcome.batches, 4);
    let stats = buffer.stats();
    assert_eq!(
        (
            stats.pending_batches,
            stats.pending_bytes,
            stats.pending_samples
        ),
        (0, 0, 0)
    );
    assert_eq!(stats.oldest_created_ms, None);
}

#[test]
fn seq_is_never_reused_across_reopen_even_when_empty() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("b.redb");
    {
        let buffer = open(&path, roomy());
        for i in 0..5 {
            buffer.append(i, 1, &block(1)).expect("append");
        }
        buffer.ack(&[(1, 5)]).expect("ack all");
        assert_eq!(buffer.stats().pending_batches, 0);
    }
    let buffer = open(&path, roomy());
    assert_eq!(buffer.stats().next_seq, 6);
    assert_eq!(buffer.append(10, 1, &block(1)).expect("append"), 6);
}

#[test]
fn stats_are_recomputed_on_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("b.redb");
    let before = {
        let buffer = open(&path, roomy());
        for i in 0..20 {
            buffer
                .append(100 + i, i as u64 % 3, &block(1 + i as u16))
                .expect("append");
        }
        buffer.ack(&[(1, 3), (10, 12)]).expect("ack");
        buffer.stats()
    };
    let after = open(&path, roomy()).stats();
    assert_eq!(after, before);
    assert_eq!(after.pending_batches, 14);
    assert_eq!(after.oldest_created_ms, Some(103));
}

#[test]
fn byte_limit_drops_oldest_first_and_counts_persistently() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("b.redb");
    let one = agent::buffer::RECORD_HEADER_LEN as u64 + block(10).as_bytes().len() as u64;
    let limits = BufferLimits {
        max_bytes: one * 5,
        max_age: Duration::from_secs(3600),
    };
    {
        let buffer = open(&path, limits);
        for i in 0..8 {
            buffer.append(i, 1, &block(10)).expect("append");
        }
        assert_eq!(
            seqs(&buffer.pending(None, 100).expect("pending")),
            vec![4, 5, 6, 7, 8]
        );
        let stats = buffer.stats();
        assert_eq!((stats.dropped_batches, stats.dropped_samples), (3, 30));
        assert_eq!(stats.pending_bytes, one * 5);
    }
    let stats = open(&path, limits).stats();
    assert_eq!((stats.dropped_batches, stats.dropped_samples), (3, 30));
}

#[test]
fn age_limit_drops_batches_older_than_max_age_relative_to_the_newest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let limits = BufferLimits {
        max_bytes: 1 << 30,
        max_age: Duration::from_secs(10),
    };
    let buffer = open(&dir.path().join("b.redb"), limits);
    for created in [0, 2_000, 4_000, 9_000] {
        buffer.append(created, 1, &block(2)).expect("append");
    }
    assert_eq!(buffer.stats().dropped_batches, 0);
    // 13.5 s: batches created before 3.5 s are older than 10 s.
    buffer.append(13_500, 1, &block(2)).expect("append");
    assert_eq!(
        seqs(&buffer.pending(None, 100).expect("pending")),
        vec![3, 4, 5]
    );
    let stats = buffer.stats();
    assert_eq!((stats.dropped_batches, stats.dropped_samples), (2, 4));
    assert_eq!(stats.oldest_created_ms, Some(4_000));
    // A batch far in the future still keeps itself.
    buffer.append(1_000_000, 1, &block(2)).expect("append");
    assert_eq!(seqs(&buffer.pending(None, 100).expect("pending")), vec![6]);
}

#[test]
fn a_batch_larger_than_the_buffer_is_refused_and_counted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let limits = BufferLimits {
        max_bytes: 64,
        max_age: Duration::from_secs(10),
    };
    let buffer = open(&dir.path().join("b.redb"), limits);
    let err = buffer.append(0, 1, &block(100)).expect_err("too large");
    assert!(
        matches!(err, BufferError::BatchTooLarge { max_bytes: 64, .. }),
        "{err}"
    );
    let stats = buffer.stats();
    assert_eq!((stats.dropped_batches, stats.dropped_samples), (1, 100));
    assert_eq!(stats.pending_batches, 0);
    assert_eq!(stats.next_seq, 1, "a refused batch takes no seq");
}

#[test]
fn invalid_limits_are_rejected() {
    let dir = tempfile::tempdir().expect("tempdir");
    let zero_bytes = BufferLimits {
        max_bytes: 0,
        max_age: Duration::from_secs(1),
    };
    assert!(matches!(
        Buffer::open(&dir.path().join("a.redb"), zero_bytes),
        Err(BufferError::InvalidLimits)
    ));
}

#[test]
fn births_are_kept_while_referenced_and_the_current_one_always() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("b.redb");
    {
        let buffer = open(&path, roomy());
        buffer.store_birth(&birth(11)).expect("birth 11");
        buffer.append(1, 11, &block(1)).expect("append");
        buffer.append(2, 11, &block(1)).expect("append");
    }
    // Restart: a new boot.
    let buffer = open(&path, roomy());
    buffer.store_birth(&birth(22)).expect("birth 22");
    buffer.append(3, 22, &block(1)).expect("append");
    assert_eq!(buffer.birth_ids().expect("ids"), vec![11, 22]);
    assert_eq!(buffer.birth(11).expect("birth"), Some(birth(11)));

    buffer.ack(&[(1, 1)]).expect("ack");
    assert_eq!(
        buffer.birth_ids().expect("ids"),
        vec![11, 22],
        "seq 2 still needs boot 11"
    );
    buffer.ack(&[(2, 3)]).expect("ack");
    assert_eq!(
        buffer.birth_ids().expect("ids"),
        vec![22],
        "the current boot stays"
    );
    assert_eq!(buffer.birth(11).expect("birth"), None);
    assert_eq!(buffer.birth(22).expect("birth"), Some(birth(22)));

    // A third boot with nothing buffered replaces the second.
    buffer.store_birth(&birth(33)).expect("birth 33");
    assert_eq!(buffer.birth_ids().expect("ids"), vec![33]);
}

#[test]
fn append_wakes_the_notifier() {
    let dir = tempfile::tempdir().expect("tempdir");
    let buffer = open(&dir.path().join("b.redb"), roomy());
    let notify = buffer.notifier();
    buffer.append(1, 1, &block(1)).expect("append");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        tokio::time::timeout(Duration::from_secs(5), notify.notified())
            .await
            .expect("the permit stored by append wakes the waiter");
    });
}

#[test]
fn status_reports_buffer_state_for_the_batch_header() {
    let dir = tempfile::tempdir().expect("tempdir");
    let buffer = open(&dir.path().join("b.redb"), roomy());
    buffer.append(1_000, 1, &block(3)).expect("append");
    buffer.append(2_000, 1, &block(3)).expect("append");
    let status = buffer.stats().status(5_000);
    assert_eq!(status.pending_batches, 2);
    assert_eq!(status.oldest_age_ms, 4_000);
    assert_eq!(status.pending_bytes, buffer.stats().pending_bytes);
    assert_eq!(status.dropped_batches, 0);
}

#[test]
fn executed_commands_survive_reopen_until_they_expire() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("buffer.redb");
    let now = 1_763_800_000_000;
    {
        let b = open(&path, roomy());
        assert!(b.executed_commands(now).unwrap().is_empty());
        b.record_command(7, now + 1_000, now).unwrap();
        b.record_command(8, now + 60_000, now).unwrap();
    }
    let b = open(&path, roomy());
    let mut executed = b.executed_commands(now).unwrap();
    executed.sort_unstable();
    assert_eq!(executed, vec![(7, now + 1_000), (8, now + 60_000)]);
    // Expired ones are not reported, and are deleted when the next one is recorded.
    assert_eq!(
        b.executed_commands(now + 2_000).unwrap(),
        vec![(8, now + 60_000)]
    );
    b.record_command(9, now + 90_000, now + 2_000).unwrap();
    assert_eq!(
        b.executed_commands(now).unwrap(),
        vec![(8, now + 60_000), (9, now + 90_000)]
    );
}
