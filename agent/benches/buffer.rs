//! Buffer throughput on this machine's disk, every commit fsynced (`Durability::Immediate`):
//!
//! * `buffer_append_per_s`: appends of one 400-sample batch (10 frames × 40 samples),
//!   each durable before the next;
//! * `buffer_ack_per_s`: acks naming one batch each (the worst case: one fsync per ack);
//! * `buffer_ack_range_batches_per_s`: batches deleted per second when one ack names a
//!   range of 50 (what the cloud sends while draining a backlog).

use std::time::{Duration, Instant};

use agent::buffer::{Buffer, BufferLimits};

const BATCHES: u64 = 1_000;

fn block(ts_ms: i64) -> wire::FramesBlock {
    let frames: Vec<wire::Frame> = (0..10u16)
        .map(|device| wire::Frame {
            device,
            ts_ms,
            samples: (0..40u16)
                .map(|metric| wire::Sample {
                    metric,
                    value: Some(wire::Value::Int(1_000 + i64::from(metric) * 3)),
                    quality: wire::Quality::Good,
                })
                .collect(),
        })
        .collect();
    wire::FramesBlock::encode(&frames).expect("encodable frames")
}

fn open(dir: &std::path::Path) -> Buffer {
    let limits = BufferLimits {
        max_bytes: 1 << 32,
        max_age: Duration::from_secs(30 * 24 * 3600),
    };
    Buffer::open(&dir.join("bench.redb"), limits).expect("open buffer")
}

fn fill(buffer: &Buffer) -> f64 {
    let block = block(1_700_000_000_000);
    assert_eq!(block.sample_count(), 400);
    let start = Instant::now();
    for i in 0..BATCHES {
        buffer.append(i as i64, 1, &block).expect("append");
    }
    BATCHES as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let buffer = open(dir.path());
    println!("BENCH buffer_append_per_s {:.0} batches/s", fill(&buffer));

    let start = Instant::now();
    for seq in 1..=BATCHES {
        buffer.ack(&[(seq, seq)]).expect("ack");
    }
    let per_s = BATCHES as f64 / start.elapsed().as_secs_f64();
    println!("BENCH buffer_ack_per_s {per_s:.0} acks/s");

    fill(&buffer);
    let start = Instant::now();
    let first = BATCHES + 1;
    for lo in (first..first + BATCHES).step_by(50) {
        buffer.ack(&[(lo, lo + 49)]).expect("range ack");
    }
    let per_s = BATCHES as f64 / start.elapsed().as_secs_f64();
    println!("BENCH buffer_ack_range_batches_per_s {per_s:.0} batches/s");
    assert_eq!(buffer.stats().pending_batches, 0);
}
