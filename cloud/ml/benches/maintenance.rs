//! Predictive maintenance on a simulated fleet, evaluated on wells held out of training.
//!
//! `cargo bench -p ml`
//!
//! 1. Generates 1,000 wells × (60 days of warm-up + 365 days) of daily rollups with their
//!    failure schedule (`ml::wear`: wear-out failures, 25 % of them sudden, benign
//!    look-alike episodes, missing rollups).
//! 2. Holds out every third well (333 wells), trains the 7/14/30-day logistic models on
//!    the rest, and scores every held-out well-day.
//! 3. Baselines in the same run, on the same held-out well-days: the fleet-average rate (a
//!    constant score) and an age-only model (days since workover and lift type).
//! 4. Times training on all 1,000 wells, a prediction for one well, and for the fleet.
//!
//! Prints `BENCH <name> <value> <unit>` lines. Metrics: ROC AUC per horizon, precision at
//! the top 10 % of risk (well-days), median lead time (days from the first of the unbroken
//! run of 30-day alerts — the top 10 % threshold — to the failure, over alerted failures)
//! and the share of failures alerted at least a day ahead.

use std::time::Instant;

use ml::maintenance::{
    AGE_FEATURES, FEATURES, HORIZONS, Metrics, Model, TrainOptions, WellScores, evaluate_scores,
    scored_days,
};
use ml::wear::{WearFleet, WearOptions};

fn print(prefix: &str, m: &Metrics) {
    for h in HORIZONS {
        println!("BENCH {prefix}_auc_{h}d {:.3} ratio", m.auc[&h]);
        println!(
            "BENCH {prefix}_precision_top10_{h}d {:.3} ratio",
            m.precision_top10[&h]
        );
    }
    println!(
        "BENCH {prefix}_median_lead_time {:.1} days",
        m.median_lead_days.unwrap_or(0.0)
    );
    println!(
        "BENCH {prefix}_failures_alerted {:.3} ratio",
        m.failures_alerted
    );
}

fn main() {
    let t = Instant::now();
    let fleet = WearFleet::generate(&WearOptions {
        wells: 1000,
        days: 365 + 60,
        seed: 2026,
        ..WearOptions::default()
    });
    let (train, test) = fleet.split(1.0 / 3.0);
    let failures: usize = fleet.wells.iter().map(|w| w.failures.len()).sum();
    println!(
        "BENCH pdm_fleet_generation {:.2} s",
        t.elapsed().as_secs_f64()
    );
    println!("BENCH pdm_fleet_wells {} wells", fleet.wells.len());
    println!("BENCH pdm_fleet_failures {failures} failures");
    println!("BENCH pdm_heldout_wells {} wells", test.len());

    let model = Model::train(&train, &FEATURES, TrainOptions::default()).expect("train");
    let m = model.evaluate(&test);
    println!("BENCH pdm_heldout_failures {} failures", m.failures);
    println!("BENCH pdm_heldout_well_days {} days", m.well_days);
    for h in HORIZONS {
        println!("BENCH pdm_prevalence_{h}d {:.3} ratio", m.prevalence[&h]);
    }
    print("pdm_model", &m);

    // Baseline 1: the fleet-average failure rate — one score for every well-day.
    let constant: Vec<WellScores> = test
        .iter()
        .enumerate()
        .map(|(w, h)| {
            (
                w,
                scored_days(h).into_iter().map(|i| (i, [0.5; 3])).collect(),
            )
        })
        .collect();
    print(
        "pdm_baseline_fleet_average",
        &evaluate_scores(&test, &constant),
    );
    // Baseline 2: age only (days since the last workover, lift type).
    let age = Model::train(&train, &AGE_FEATURES, TrainOptions::default()).expect("train");
    print("pdm_baseline_age_only", &age.evaluate(&test));

    // Training on the whole fleet: 1,000 wells × 1 year.
    let t = Instant::now();
    let full = Model::train(&fleet.wells, &FEATURES, TrainOptions::default()).expect("train");
    println!(
        "BENCH pdm_training_1000_wells_1_year {:.2} s",
        t.elapsed().as_secs_f64()
    );
    println!("BENCH pdm_training_rows {} rows", full.rows);

    // One well's prediction (features from its rollups + three models), median of 200.
    let mut times = Vec::new();
    for h in fleet.wells.iter().take(200) {
        let t = Instant::now();
        let p = full.predict_at(h, h.days.len() - 1);
        times.push(t.elapsed().as_secs_f64() * 1e3);
        std::hint::black_box(p);
    }
    times.sort_by(f64::total_cmp);
    println!(
        "BENCH pdm_predict_one_well_p50 {:.4} ms",
        times[times.len() / 2]
    );
    println!(
        "BENCH pdm_predict_one_well_max {:.4} ms",
        times[times.len() - 1]
    );
    let t = Instant::now();
    let mut n = 0;
    for h in &fleet.wells {
        std::hint::black_box(full.predict_at(h, h.days.len() - 1));
        n += 1;
    }
    println!(
        "BENCH pdm_predict_fleet_{n}_wells {:.2} ms",
        t.elapsed().as_secs_f64() * 1e3
    );
}
