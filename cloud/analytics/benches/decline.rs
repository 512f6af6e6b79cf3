//! Decline-curve throughput: fit every model, select, and run a 1,000-draw Monte Carlo
//! forecast 30 years monthly (361 points), for one well and for 1,000 wells spread over the
//! machine's cores with `std::thread::scope`.
//!
//! Wells are synthetic and seeded: 36 monthly points with 5 % multiplicative noise from
//! hyperbolic, exponential and harmonic declines with varied qᵢ, Dᵢ and b. Prints
//! `BENCH <name> <value> <unit>` lines (medians of repeated runs). Wall time on a shared
//! machine depends on what else runs, so the fleet run also reports the CPU time it consumed
//! (Linux `/proc/self/stat`), which shows the cost per well independently of contention.

use std::hint::black_box;
use std::thread;
use std::time::Instant;

use analytics::decline::{
    AnalysisOptions, DAYS_PER_MONTH, DAYS_PER_YEAR, Decline, DeclineAnalysis, DeclineModel,
    EconomicLimits, FitOptions, ForecastOptions, History, analyze, fit_all,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use rand_distr::{Distribution, Normal};

const WELLS: usize = 1000;
const MONTHS: usize = 36;

/// A seeded synthetic well history.
fn well(seed: u64) -> History {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let qi = rng.random_range(100.0..2000.0);
    let di = Decline::secant_effective_per_year(rng.random_range(0.3..0.85));
    let model = match seed % 5 {
        0 => DeclineModel::exponential(qi, Decline::tangent_effective_per_year(0.3)),
        1 => DeclineModel::harmonic(qi, di),
        _ => DeclineModel::hyperbolic(qi, di, rng.random_range(0.3..1.8)),
    }
    .expect("valid synthetic model");
    let noise = Normal::new(0.0, 0.05).expect("valid noise");
    let points: Vec<(f64, f64)> = (0..MONTHS)
        .map(|m| {
            let t = (m as f64 + 0.5) * DAYS_PER_MONTH;
            (t, model.rate(t) * (1.0 + noise.sample(&mut rng)))
        })
        .collect();
    History::new(&points).expect("valid synthetic history")
}

fn options(history: &History, seed: u64) -> AnalysisOptions {
    let end = history.last_time() + 30.0 * DAYS_PER_YEAR;
    AnalysisOptions {
        fit: FitOptions::default(),
        forecast: ForecastOptions {
            seed,
            ..ForecastOptions::monthly(30, EconomicLimits::rate_and_time(2.0, end))
        },
    }
}

fn run(history: &History, seed: u64) -> DeclineAnalysis {
    analyze(history, &options(history, seed)).expect("synthetic well analyses")
}

fn median_ms(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn time_ms(f: impl FnOnce()) -> f64 {
    let start = Instant::now();
    f();
    start.elapsed().as_secs_f64() * 1e3
}

/// CPU time (user + system) of this process so far, from `/proc/self/stat` (fields 14 and 15,
/// in USER_HZ = 100 ticks per second); `None` off Linux.
fn process_cpu_ms() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i)?.parse::<f64>().ok();
    Some((ticks(11)? + ticks(12)?) * 10.0)
}

fn main() {
    let histories: Vec<History> = (0..WELLS as u64).map(well).collect();
    let one = &histories[2];
    black_box(run(one, 0)); // warm-up

    let fit_only = (0..50)
        .map(|_| time_ms(|| drop(black_box(fit_all(one, &FitOptions::default())))))
        .collect();
    println!(
        "BENCH decline_fit_all_one_well_ms {:.3} ms",
        median_ms(fit_only)
    );
    let full = (0..30)
        .map(|i| time_ms(|| drop(black_box(run(one, i)))))
        .collect();
    println!("BENCH decline_fit_mc_one_well_ms {:.3} ms", median_ms(full));

    let threads = thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = WELLS.div_ceil(threads);
    let runs = 3;
    let cpu_before = process_cpu_ms();
    let fleet = (0..runs)
        .map(|_| {
            time_ms(|| {
                thread::scope(|s| {
                    for (c, wells) in histories.chunks(chunk).enumerate() {
                        s.spawn(move || {
                            for (i, h) in wells.iter().enumerate() {
                                black_box(run(h, (c * chunk + i) as u64));
                            }
                        });
                    }
                });
            })
        })
        .collect();
    println!(
        "BENCH decline_fit_mc_1000_wells_ms {:.1} ms",
        median_ms(fleet)
    );
    if let (Some(before), Some(after)) = (cpu_before, process_cpu_ms()) {
        let per_run = (after - before) / runs as f64;
        println!("BENCH decline_fit_mc_1000_wells_cpu_ms {per_run:.0} ms");
        println!(
            "BENCH decline_fit_mc_cpu_per_well_ms {:.3} ms",
            per_run / WELLS as f64
        );
    }
    println!("BENCH decline_bench_threads {threads} threads");
}
