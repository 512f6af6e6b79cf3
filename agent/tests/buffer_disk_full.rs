//! The buffer on a full disk: a 4 MiB tmpfs (mounted by the test; it runs as root) and a
//! `max_bytes` far above it, so the disk is the limit. The oldest batches go first, every
//! drop is counted durably, writes keep working, the buffer reopens on the full disk and
//! the size cap is lifted once space comes back.
//!
//! Mounting needs root (`mount -t tmpfs`); without it the test fails, never skips.

mod tmpfs_support;

use std::time::Duration;

use agent::buffer::{Buffer, BufferLimits, reserve_paths};
use tmpfs_support::{Tmpfs, fill};

fn block(samples: u16, base: i64) -> wire::FramesBlock {
    let frame = wire::Frame {
        device: 1,
        ts_ms: 1_700_000_000_000,
        samples: (0..samples)
            .map(|metric| wire::Sample {
                metric,
                // Values that do not compress to nothing: the disk fills at a steady pace.
                value: Some(wire::Value::Int(base * 1_000 + i64::from(metric) * 7_919)),
                quality: wire::Quality::Good,
            })
            .collect(),
    };
    wire::FramesBlock::encode(&[frame]).expect("encodable frame")
}

fn limits() -> BufferLimits {
    BufferLimits {
        max_bytes: 256 << 20,
        max_age: Duration::from_secs(7 * 24 * 3600),
    }
}

fn birth(boot_id: u64) -> wire::Birth {
    wire::Birth {
        boot_id,
        ts_ms: 0,
        agent_version: "test".into(),
        config_hash: "h".into(),
        devices: Vec::new(),
    }
}

#[test]
fn a_full_disk_drops_the_oldest_counts_them_and_keeps_the_buffer_usable() {
    let fs = Tmpfs::mount("4m");
    let path = fs.path().join("buffer.redb");
    let buffer = Buffer::open(&path, limits()).expect("open");
    assert!(
        reserve_paths(&path).iter().all(|r| r.exists()),
        "reserve written at open"
    );
    buffer.store_birth(&birth(1)).expect("birth");
    // 4 MiB hold a few thousand such batches: write three times that many.
    let mut last = 0;
    for i in 0..6_000i64 {
        last = buffer
            .append(1_000 + i, 1, &block(100, i))
            .unwrap_or_else(|e| panic!("append {i} failed on the full disk: {e}"));
    }
    let stats = buffer.stats();
    eprintln!("after filling: {stats:?}; health {:?}", buffer.health());
    assert!(
        stats.dropped_batches > 0,
        "the disk filled: batches dropped"
    );
    assert!(stats.dropped_samples >= stats.dropped_batches * 100);
    assert_eq!(
        stats.pending_batches + stats.dropped_batches,
        6_000,
        "every batch is pending or counted as dropped"
    );
    // Oldest first: what is left is the newest, contiguous up to the last seq.
    let pending = buffer.pending(None, 10_000).expect("pending");
    assert_eq!(pending.last().map(|r| r.seq), Some(last));
    assert_eq!(pending[0].seq, stats.dropped_batches + 1);
    assert!(!buffer.health().is_empty(), "health is degraded");
    assert!(
        buffer.health().iter().any(|r| r.contains("disk full")),
        "{:?}",
        buffer.health()
    );
    // Acks and births still commit.
    buffer
        .ack(&[(pending[0].seq, pending[9].seq)])
        .expect("ack on a full disk");
    buffer.store_birth(&birth(2)).expect("birth on a full disk");
    drop(buffer);

    // Restart on the full disk (fill what the acks freed, too).
    let filler = fill(fs.path());
    let buffer = Buffer::open(&path, limits()).expect("reopen on the full disk");
    let reopened = buffer.stats();
    assert_eq!(
        reopened.dropped_batches, stats.dropped_batches,
        "drops are durable"
    );
    buffer
        .store_birth(&birth(3))
        .expect("birth after a restart on the full disk");
    for i in 6_000..9_000i64 {
        buffer
            .append(1_000 + i, 3, &block(100, i))
            .unwrap_or_else(|e| panic!("append {i} after the restart failed: {e}"));
    }
    assert!(buffer.stats().dropped_batches > reopened.dropped_batches);

    // Space comes back: the reserve is written again and the cap lifted (it is tried at
    // most every 30 s; the buffer reopened under pressure tries on its first write).
    std::fs::remove_file(&filler).expect("free space");
    drop(buffer);
    let buffer = Buffer::open(&path, limits()).expect("reopen with space");
    assert!(
        reserve_paths(&path).iter().all(|r| r.exists()),
        "reserve restored"
    );
    assert!(
        buffer.health().iter().all(|r| !r.contains("disk full")),
        "{:?}",
        buffer.health()
    );
    let before = buffer.stats().pending_batches;
    buffer.append(9_999, 3, &block(100, 9_999)).expect("append");
    assert_eq!(
        buffer.stats().pending_batches,
        before + 1,
        "no drop with space"
    );
}
