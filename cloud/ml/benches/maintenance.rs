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
//! 4. A ceiling, not a model: an oracle that reads the simulator's truth (see [`oracle`])
//!    and scores the same held-out well-days, `BENCH maintenance_oracle_auc_{7,14,30}d`.
//! 5. Times training on all 1,000 wells, a prediction for one well, and for the fleet.
//!
//! Prints `BENCH <name> <value> <unit>` lines. Metrics: ROC AUC per horizon, precision at
//! the top 10 % of risk (well-days), median lead time (days from the first of the unbroken
//! run of 30-day alerts — the top 10 % threshold — to the failure, over alerted failures)
//! and the share of failures alerted at least a day ahead.

use std::collections::HashMap;
use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use ml::maintenance::{
    AGE_FEATURES, FEATURES, HORIZONS, Metrics, Model, TrainOptions, WellHistory, WellScores,
    days_since_workover, evaluate_scores, label, scored_days,
};
use ml::wear::{WearFleet, WearOptions};

/// Draws of the precursor lengths the oracle's AUC is averaged over.
const ORACLE_DRAWS: u64 = 10;
/// Precursor lengths of `ml::wear`, days (uniform).
const PRECURSOR_DAYS: std::ops::RangeInclusive<usize> = 8..=40;

/// What the oracle knows of a well-day: inside a failure's warning phase and how many days
/// are left to the failure (the most its rollups could tell: their wear grows with the
/// share of the precursor elapsed), or not, with the lift type and the days since the last
/// workover (10-day bins).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum State {
    Warning(usize),
    Quiet(ml::maintenance::Lift, usize),
}

/// The oracle's state of every scored day of every well, with one draw of the precursor
/// lengths: `ml::wear` keeps a failure's precursor length to itself and draws it (8–40
/// days, uniform) independently of everything else, so one drawn here from the same law
/// gives states with the simulator's joint distribution; whether a failure wore in at all
/// is the simulator's own record.
fn states(fleet: &WearFleet, wells: &[WellHistory], seed: u64) -> Vec<Vec<(usize, State)>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    wells
        .iter()
        .map(|h| {
            // (failure offset, first warning day offset) of failures that wore in.
            let warnings: Vec<(i64, i64)> = h
                .failures
                .iter()
                .map(|f| {
                    let o = (*f - h.start).num_days();
                    let len = rng.random_range(PRECURSOR_DAYS) as i64;
                    (o, o - len, fleet.precursor(&h.well, *f))
                })
                .filter(|w| w.2)
                .map(|(o, from, _)| (o, from))
                .collect();
            scored_days(h)
                .into_iter()
                .map(|i| {
                    let d = i as i64;
                    if let Some((o, _)) = warnings.iter().find(|(o, from)| d >= *from && d < *o) {
                        return (i, State::Warning((o - d) as usize));
                    }
                    let age = days_since_workover(h, i) as usize;
                    (i, State::Quiet(h.lift, (age / 10).min(60)))
                })
                .collect()
        })
        .collect()
}

/// The ceiling of any model on daily rollups: each held-out well-day scored by the share
/// of training well-days in the same true state that had a failure within the horizon
/// (a state never seen in training scores the training prevalence). It reads the truth
/// (the failure schedule, the warning phases and the days each has left) and so is no
/// model: the rollups carry warning signs only inside a warning phase, and a sudden
/// failure none; outside one, nothing but the lift and the age tells a well's hazard. Returns the
/// held-out AUC per horizon averaged over [`ORACLE_DRAWS`] draws, and the share of 30-day
/// positive held-out days inside a warning phase.
fn oracle(fleet: &WearFleet, train: &[WellHistory], test: &[WellHistory]) -> ([f64; 3], f64) {
    let mut auc = [0.0; 3];
    let mut warned = 0.0;
    for draw in 0..ORACLE_DRAWS {
        let train_states = states(fleet, train, 2 * draw);
        let test_states = states(fleet, test, 2 * draw + 1);
        // (well-days, positives per horizon) by state.
        let mut counts: HashMap<State, (f64, [f64; 3])> = HashMap::new();
        let mut total = (0.0, [0.0; 3]);
        for (h, days) in train.iter().zip(&train_states) {
            for &(i, s) in days {
                let c = counts.entry(s).or_default();
                c.0 += 1.0;
                total.0 += 1.0;
                for (k, horizon) in HORIZONS.into_iter().enumerate() {
                    let y = f64::from(u8::from(label(h, i, horizon)));
                    c.1[k] += y;
                    total.1[k] += y;
                }
            }
        }
        let scored: Vec<WellScores> = test_states
            .iter()
            .enumerate()
            .map(|(w, days)| {
                let days = days
                    .iter()
                    .map(|&(i, s)| {
                        let (n, pos) = counts.get(&s).copied().unwrap_or(total);
                        (i, pos.map(|p| p / n))
                    })
                    .collect();
                (w, days)
            })
            .collect();
        let m = evaluate_scores(test, &scored);
        for (k, horizon) in HORIZONS.into_iter().enumerate() {
            auc[k] += m.auc[&horizon] / ORACLE_DRAWS as f64;
        }
        let (mut positive, mut inside) = (0.0, 0.0);
        for (h, days) in test.iter().zip(&test_states) {
            for &(i, s) in days {
                if label(h, i, 30) {
                    positive += 1.0;
                    inside += f64::from(u8::from(matches!(s, State::Warning(_))));
                }
            }
        }
        warned += inside / positive / ORACLE_DRAWS as f64;
    }
    (auc, warned)
}

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

    // The ceiling: an oracle reading the truth, on the same held-out well-days.
    let (auc, warned) = oracle(&fleet, &train, &test);
    for (k, h) in HORIZONS.into_iter().enumerate() {
        println!("BENCH maintenance_oracle_auc_{h}d {:.3} auc", auc[k]);
    }
    println!("BENCH maintenance_oracle_positive_days_in_warning_30d {warned:.3} ratio");

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
