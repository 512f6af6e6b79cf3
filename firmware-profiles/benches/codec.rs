//! Codec and loader throughput, printed as `BENCH <name> <value> <unit>`.
//!
//! `decode_tag` / `encode_tag` average over every tag of every shipped profile (the agent
//! decodes each tag once per poll; the simulator encodes each once per request), and
//! `parse_profile` is the mean time to parse and validate one shipped profile.

use std::hint::black_box;
use std::time::Instant;

use firmware_profiles::{Tag, builtin, builtin_profile, parse_profile};

fn all_tags() -> Vec<Tag> {
    builtin()
        .iter()
        .flat_map(|(id, _)| builtin_profile(id).expect("valid").tags)
        .collect()
}

/// Runs `f` `iterations` times and returns the mean nanoseconds per call.
fn mean_ns(iterations: u32, mut f: impl FnMut()) -> f64 {
    let start = Instant::now();
    for _ in 0..iterations {
        f();
    }
    start.elapsed().as_nanos() as f64 / f64::from(iterations)
}

fn main() {
    let tags = all_tags();
    let encoded: Vec<(Tag, Vec<u16>)> = tags
        .iter()
        .map(|t| {
            let raw = match t.valid_range {
                Some((min, max)) => t.from_engineering((min + max) / 2.0),
                None if t.data_type.is_boolean() => t.from_engineering(1.0),
                None => t.from_engineering(0.0),
            };
            let raw = raw.unwrap_or(firmware_profiles::RawValue::Text("SN-0042".into()));
            (t.clone(), t.encode(&raw).expect("encodable"))
        })
        .collect();
    let raws: Vec<_> = encoded
        .iter()
        .map(|(t, r)| t.decode(r).expect("decodable"))
        .collect();
    let per_tag = |total_ns: f64| total_ns / encoded.len() as f64;

    let decode = mean_ns(20_000, || {
        for (tag, regs) in &encoded {
            black_box(tag.decode(black_box(regs)).ok());
        }
    });
    println!("BENCH decode_tag {:.1} ns", per_tag(decode));

    let decode_eng = mean_ns(20_000, || {
        for (tag, regs) in &encoded {
            let raw = tag.decode(black_box(regs)).ok();
            black_box(raw.and_then(|r| tag.to_engineering(&r)));
        }
    });
    println!(
        "BENCH decode_to_engineering_tag {:.1} ns",
        per_tag(decode_eng)
    );

    let encode = mean_ns(20_000, || {
        for ((tag, _), raw) in encoded.iter().zip(&raws) {
            black_box(tag.encode(black_box(raw)).ok());
        }
    });
    println!("BENCH encode_tag {:.1} ns", per_tag(encode));

    let parse = mean_ns(200, || {
        for (id, text) in builtin() {
            black_box(parse_profile(id, black_box(text)).ok());
        }
    });
    println!(
        "BENCH parse_profile {:.1} us",
        parse / builtin().len() as f64 / 1000.0
    );
}
