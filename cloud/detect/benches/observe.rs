//! The cost of live detection per sample, and of a device state's storage form.
//!
//! `cargo bench -p detect --bench observe`
//!
//! A rod-pump device with 20 canonical metrics polled every second (noisy values around a
//! steady level), fed to `Detector::observe` in batches of 5 polls — the shape of the
//! ingester benchmark's traffic (`cargo bench -p ingest`). After a warm-up day the
//! timed part feeds another 2,000 batches.
//!
//! * `detect_observe_ns_per_sample`: wall time of `observe` per sample (one core).
//! * `detect_state_bytes`: the warm device state in its stored form
//!   (`DeviceState::to_bytes`); `_json`: the same state as JSON, the first stored form.
//! * `detect_state_encode_us` / `detect_state_decode_us` (and `_json`): one state to and
//!   from that form.

use std::hint::black_box;
use std::time::Instant;

use detect::{DetectOptions, Detector, DeviceContext, DeviceState, Sample};
use wire::Quality;

const METRICS: [&str; 20] = [
    "tubing_pressure_psi",
    "casing_pressure_psi",
    "line_pressure_psi",
    "static_pressure_psi",
    "differential_pressure_inh2o",
    "flow_temperature_f",
    "gas_rate_mcfd",
    "gas_volume_today_mcf",
    "oil_rate_bpd",
    "water_rate_bpd",
    "oil_level_in",
    "water_level_in",
    "tank_temperature_f",
    "pump_fillage_pct",
    "strokes_per_minute",
    "rod_load_peak_lbf",
    "rod_load_min_lbf",
    "motor_current_a",
    "motor_voltage_v",
    "vibration_g",
];
const POLLS: usize = 5;
const WARMUP_BATCHES: usize = 86_400 / POLLS;
const TIMED_BATCHES: usize = 2_000;
const ROUNDS: usize = 200;

/// A small deterministic generator (xorshift64*), so runs are comparable.
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let x = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D);
        (x >> 11) as f64 / (1u64 << 53) as f64 - 0.5
    }
}

/// The samples of batch `b` (5 polls × 20 metrics, 1 s apart).
fn batch(b: usize, noise: &mut Noise) -> Vec<Sample<'static>> {
    let t0 = 1_793_491_200_000 + (b * POLLS) as i64 * 1000;
    let mut out = Vec::with_capacity(POLLS * METRICS.len());
    for p in 0..POLLS {
        for (m, metric) in METRICS.iter().enumerate() {
            let level = 100.0 + 10.0 * m as f64;
            let value = if *metric == "pump_state" {
                1.0
            } else {
                level + noise.next() * level * 0.02
            };
            out.push(Sample {
                ts_ms: t0 + p as i64 * 1000,
                metric,
                value: Some(value),
                quality: Quality::Good,
            });
        }
    }
    out
}

fn main() {
    let detector = Detector::new(DetectOptions::default());
    let ctx = DeviceContext {
        profile: "rod-pump-controller",
        model: None,
        rules: &[],
    };
    let mut noise = Noise(0x9E37_79B9_7F4A_7C15);
    let mut state = DeviceState::default();
    for b in 0..WARMUP_BATCHES {
        let samples = batch(b, &mut noise);
        detector.observe(&mut state, &ctx, &samples, true);
    }
    let timed: Vec<Vec<Sample<'static>>> = (0..TIMED_BATCHES)
        .map(|b| batch(WARMUP_BATCHES + b, &mut noise))
        .collect();
    let start = Instant::now();
    let mut signals = 0;
    for samples in &timed {
        signals += detector.observe(&mut state, &ctx, samples, true).len();
    }
    let elapsed = start.elapsed();
    let samples = (TIMED_BATCHES * POLLS * METRICS.len()) as f64;
    println!(
        "BENCH detect_observe_ns_per_sample {:.0} ns",
        elapsed.as_nanos() as f64 / samples
    );
    eprintln!("({signals} signals on steady data)");

    let stored = state.to_bytes();
    let json = serde_json::to_vec(&state).expect("plain data");
    println!("BENCH detect_state_bytes {} bytes", stored.len());
    println!("BENCH detect_state_bytes_json {} bytes", json.len());
    let time = |f: &dyn Fn()| {
        let start = Instant::now();
        for _ in 0..ROUNDS {
            f();
        }
        start.elapsed().as_secs_f64() * 1e6 / ROUNDS as f64
    };
    let encode = time(&|| drop(black_box(black_box(&state).to_bytes())));
    let decode = time(&|| drop(black_box(DeviceState::from_bytes(black_box(&stored)))));
    let encode_json = time(&|| drop(black_box(serde_json::to_vec(black_box(&state)))));
    let decode_json = time(&|| drop(black_box(DeviceState::from_bytes(black_box(&json)))));
    println!("BENCH detect_state_encode_us {encode:.1} us");
    println!("BENCH detect_state_decode_us {decode:.1} us");
    println!("BENCH detect_state_encode_us_json {encode_json:.1} us");
    println!("BENCH detect_state_decode_us_json {decode_json:.1} us");
    assert_eq!(
        DeviceState::from_bytes(&stored).expect("readable"),
        state,
        "the state survives its stored form"
    );
}
