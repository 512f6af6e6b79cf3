//! Wire-format benchmark: size and speed of a typical one-second batch from a gateway
//! polling 10 devices x 40 registers, next to the same samples in the ThingsBoard gateway's
//! JSON telemetry format (the peer's 12.75 bytes/point was measured on that format).
//!
//! The register mix per device mirrors the shipped profiles: 24 scaled 16-bit registers
//! (pressures x10, temperatures, percentages), 8 IEEE floats (flow-computer style),
//! 4 status bits and 4 32-bit running totals.
//!
//! Prints `BENCH <name> <value> <unit>` lines.

use std::hint::black_box;
use std::time::Instant;

use wire::seal::{self, MessageKey};
use wire::{Batch, BatchHeader, Frame, FramesBlock, Quality, Sample, Value, encode_batch};

/// A deterministic pseudo-random stream (xorshift), so runs are comparable.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next() % (hi - lo) as u64) as i64
    }
}

fn device_frame(rng: &mut Rng, device: u16, ts_ms: i64) -> Frame {
    let mut samples = Vec::with_capacity(40);
    for m in 0..40u16 {
        let value = match m {
            0..=9 => Value::Int(rng.range(500, 30_000)), // pressures, psi x10
            10..=17 => Value::Int(rng.range(0, 1000)),   // percentages x10, temperatures
            18..=23 => Value::Int(rng.range(0, 24)),     // states, counts per poll
            24..=31 => Value::Float(f64::from(rng.range(0, 2_000_000) as f32 / 1000.0)), // f32 process values
            32..=35 => Value::Bool(rng.next().is_multiple_of(8)),
            _ => Value::Int(rng.range(1_000_000, 4_000_000)), // u32 running totals
        };
        samples.push(Sample {
            metric: m,
            value: Some(value),
            quality: Quality::Good,
        });
    }
    Frame {
        device,
        ts_ms,
        samples,
    }
}

fn typical_batch(rng: &mut Rng, seq: u64) -> Batch {
    let t0 = 1_763_800_000_000 + seq as i64 * 1000;
    let frames = (0..10)
        .map(|d| device_frame(rng, d, t0 + i64::from(d) * 7))
        .collect();
    Batch {
        header: BatchHeader {
            epoch: 0,
            seq,
            boot_id: 42,
            historical: false,
            status: None,
        },
        frames,
    }
}

/// The same samples as ThingsBoard IoT Gateway telemetry JSON: per device
/// `[{"ts": ms, "values": {"tag_name": value, ...}}]`.
fn thingsboard_json(batch: &Batch) -> usize {
    let mut total = 0;
    for f in &batch.frames {
        let mut values = serde_json::Map::new();
        for s in &f.samples {
            let v = match s.value {
                Some(Value::Int(i)) => serde_json::json!(i),
                Some(Value::Float(x)) => serde_json::json!(x),
                Some(Value::Bool(b)) => serde_json::json!(b),
                None => serde_json::Value::Null,
            };
            values.insert(format!("register_{}", s.metric), v);
        }
        let doc = serde_json::json!({ format!("device-{}", f.device): [{ "ts": f.ts_ms, "values": values }] });
        total += serde_json::to_vec(&doc).map(|v| v.len()).unwrap_or(0);
    }
    total
}

fn main() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let batches: Vec<Batch> = (0..200).map(|s| typical_batch(&mut rng, s)).collect();
    let samples: usize = batches.iter().map(Batch::sample_count).sum();

    let encoded: Vec<Vec<u8>> = batches
        .iter()
        .map(|b| b.encode().expect("encodes"))
        .collect();
    let bytes: usize = encoded.iter().map(Vec::len).sum();
    let json: usize = batches.iter().map(thingsboard_json).sum();

    let rounds = 20;
    let start = Instant::now();
    for _ in 0..rounds {
        for b in &batches {
            let block = FramesBlock::encode(black_box(&b.frames)).expect("encodes");
            black_box(encode_batch(&b.header, &block));
        }
    }
    let encode_ns = start.elapsed().as_nanos() as f64 / (rounds * samples) as f64;

    let start = Instant::now();
    for _ in 0..rounds {
        for bytes in &encoded {
            black_box(Batch::decode(black_box(bytes)).expect("decodes"));
        }
    }
    let decode_ns = start.elapsed().as_nanos() as f64 / (rounds * samples) as f64;

    // As published on MQTT: sealed with the gateway's message key (19 bytes per batch).
    let key = MessageKey::derive(b"bench-gateway-secret-0123456789");
    let topic = "wp/v1/acme/gw-01/data";
    let sealed: Vec<Vec<u8>> = encoded.iter().map(|m| seal::seal(&key, topic, m)).collect();
    let sealed_bytes: usize = sealed.iter().map(Vec::len).sum();
    let start = Instant::now();
    for _ in 0..rounds {
        for m in &encoded {
            black_box(seal::seal(&key, topic, black_box(m)));
        }
    }
    let seal_ns = start.elapsed().as_nanos() as f64 / (rounds * samples) as f64;
    let start = Instant::now();
    for _ in 0..rounds {
        for s in &sealed {
            black_box(seal::open([&key], topic, black_box(s)).expect("opens"));
        }
    }
    let open_ns = start.elapsed().as_nanos() as f64 / (rounds * samples) as f64;

    // The same batches as batch version 1 encoded them (a bitmap and dt per frame).
    let v1_bytes: usize = batches
        .iter()
        .map(|b| {
            encode_batch(
                &b.header,
                &FramesBlock::encode_v1(&b.frames).expect("encodes"),
            )
            .len()
        })
        .sum();
    println!(
        "BENCH wire_bytes_per_sample_v1 {:.2} B",
        v1_bytes as f64 / samples as f64
    );
    println!(
        "BENCH wire_bytes_per_sample {:.2} B",
        bytes as f64 / samples as f64
    );
    println!(
        "BENCH wire_batch_bytes_10x40 {:.0} B",
        bytes as f64 / batches.len() as f64
    );
    println!(
        "BENCH peer_thingsboard_json_bytes_per_sample {:.2} B",
        json as f64 / samples as f64
    );
    println!(
        "BENCH wire_sealed_bytes_per_sample {:.2} B",
        sealed_bytes as f64 / samples as f64
    );
    println!("BENCH wire_encode_ns_per_sample {encode_ns:.1} ns");
    println!("BENCH wire_seal_ns_per_sample {seal_ns:.1} ns");
    println!("BENCH wire_open_ns_per_sample {open_ns:.1} ns");
    println!("BENCH wire_decode_ns_per_sample {decode_ns:.1} ns");
}
