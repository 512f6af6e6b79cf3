//! Production optimization on a simulated fleet: expected production and gaps against the
//! simulator's true potential.
//!
//! `cargo bench -p ml --bench optimization`
//!
//! 1. Generates 600 wells × 455 days (`ml::fleet`: Arps declines by field, 40 % of wells
//!    impaired at some point with a known cause, downtime, noise).
//! 2. Assesses the fleet on day 455 (recent window: the last 14 days). Peers are the other
//!    wells' production only; the truth (potential, impairments) is never read by the
//!    model. Scored wells: every third well (200), as in the other ML benchmarks.
//! 3. True gap = actual − the mean true potential (bbl/d at full runtime) over the window.
//! 4. Baselines in the same run, same wells: "fleet average" (the mean recent potential of
//!    the well's field and lift type) and the two halves of the model alone (own decline,
//!    peers).
//! 5. The trained model: parameters chosen (`ml::optimization::fit`) on the other 400
//!    wells' own data alone — their expectation against the potential they made, never
//!    the truth — then the fleet assessed again with them and scored on the same 200 wells
//!    (`optimization_trained_*`), with its time to train; and the model the registry's
//!    rule (`train_and_compare` on those 400 wells) serves (`optimization_served_*`).
//! 6. Speed at 1,000 wells: the fleet assessed, and a training on all of them.
//!
//! Prints `BENCH <name> <value> <unit>` lines: gap mean absolute error (bbl/d and relative
//! to the true potential), interval coverage, category accuracy, cause accuracy on the
//! impaired wells found, and times.

use std::collections::HashMap;
use std::time::Instant;

use ml::fleet::{Cause, FleetOptions, FleetWell, generate};
use ml::optimization::{
    Assessment, Category, CauseKind, Options, WellDay, WellInput, assess, assess_with, fit,
    fleet_average_baseline, train_and_compare,
};

const DAYS: usize = 455;
const WINDOW: usize = 14;
const TOLERANCE: f64 = 0.10;

fn input(w: &FleetWell) -> WellInput {
    WellInput {
        well: w.name.clone(),
        field: w.field.clone(),
        lift: Some(w.lift),
        age_days: f64::from(w.age_at_start) + DAYS as f64,
        days: w
            .days
            .iter()
            .map(|d| WellDay {
                day: d.production.day,
                oil_bbl: d.production.oil_bbl,
                hours_on: Some(d.hours_on),
                fillage_pct: d.fillage_pct,
                plunger_cycles: d.plunger_cycles,
                tubing_pressure_psi: d.tubing_pressure_psi,
            })
            .collect(),
    }
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

fn main() {
    let t = Instant::now();
    let fleet = generate(&FleetOptions {
        wells: 600,
        days: DAYS,
        seed: 2027,
        ..FleetOptions::default()
    });
    println!(
        "BENCH optimization_fleet_generation {:.2} s",
        t.elapsed().as_secs_f64()
    );
    let as_of = fleet[0].days[DAYS - 1].production.day + chrono::Days::new(1);
    let wells: Vec<WellInput> = fleet.iter().map(input).collect();
    let options = Options {
        tolerance: TOLERANCE,
        ..Options::new(as_of, 70.0)
    };
    let t = Instant::now();
    let assessed = assess(&wells, &options).expect("valid options");
    let elapsed = t.elapsed().as_secs_f64();
    println!("BENCH optimization_assess_fleet_600 {elapsed:.2} s");
    println!(
        "BENCH optimization_assess_per_well {:.2} ms",
        1000.0 * elapsed / wells.len() as f64
    );
    let baseline = fleet_average_baseline(&wells, &options);
    report("optimization", &fleet, &assessed, Some(&baseline));

    // Trained on the 400 other wells' own data alone (each other's peers); the evaluated
    // wells are then assessed with the whole fleet as peers, as in service.
    let training: Vec<WellInput> = wells
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 3 != 0)
        .map(|(_, w)| w.clone())
        .collect();
    let t = Instant::now();
    let fitted = fit(&training, &options).expect("enough training wells");
    println!(
        "BENCH optimization_train_400_wells {:.2} s",
        t.elapsed().as_secs_f64()
    );
    let m = fitted.model;
    println!(
        "# chosen on the training wells: guard {} d, peer lag {} d, age factor {} \
         (training median error {:.2} %, impaired {:.2} %)",
        m.guard_days,
        m.peer_lag_days,
        m.age_factor,
        fitted.metrics.mdape_percent,
        fitted.metrics.mdape_impaired_percent
    );
    let trained = assess_with(&wells, &options, &m).expect("valid model");
    report("optimization_trained", &fleet, &trained, None);

    // What a tenant owning the 400 training wells is served: the registry's rule on them
    // alone (trained on two thirds, promoted only if it beats the untrained defaults on the
    // other third), else the defaults.
    let registry = train_and_compare(&training, None, &options).expect("enough wells");
    println!(
        "# the registry's rule on the training wells: {}",
        registry.reason
    );
    println!(
        "BENCH optimization_registry_promoted {} bool",
        u8::from(registry.promote)
    );
    let served = if registry.promote {
        registry.fit.model
    } else {
        ml::optimization::GapModel::default()
    };
    let assessed = assess_with(&wells, &options, &served).expect("valid model");
    report("optimization_served", &fleet, &assessed, None);

    // Speed at the size: 1,000 wells × a year and a quarter.
    let big: Vec<WellInput> = generate(&FleetOptions {
        wells: 1000,
        days: DAYS,
        seed: 2028,
        ..FleetOptions::default()
    })
    .iter()
    .map(input)
    .collect();
    let t = Instant::now();
    let assessed = assess_with(&big, &options, &m).expect("valid model");
    println!(
        "BENCH optimization_assess_fleet_1000 {:.2} s",
        t.elapsed().as_secs_f64()
    );
    assert_eq!(assessed.len(), 1000);
    let t = Instant::now();
    fit(&big, &options).expect("enough training wells");
    println!(
        "BENCH optimization_train_1000_wells {:.2} s",
        t.elapsed().as_secs_f64()
    );
}

/// Scores an assessment of the fleet on every third well against the truth and prints it
/// as `BENCH <prefix>_…` lines (with the fleet-average baseline when given).
fn report(
    prefix: &str,
    fleet: &[FleetWell],
    assessed: &[Assessment],
    baseline: Option<&HashMap<String, f64>>,
) {
    let by_well: HashMap<&str, &Assessment> =
        assessed.iter().map(|a| (a.well.as_str(), a)).collect();

    let (mut err, mut err_base, mut err_own, mut err_peer) = (vec![], vec![], vec![], vec![]);
    let mut rel = Vec::new();
    let mut rel_base = Vec::new();
    let (mut inside, mut scored, mut category_ok) = (0usize, 0usize, 0usize);
    let (mut impaired_found, mut impaired_total, mut cause_ok, mut false_alarms, mut healthy) =
        (0usize, 0usize, 0usize, 0usize, 0usize);
    for w in fleet.iter().step_by(3) {
        let a = by_well[w.name.as_str()];
        if a.category == Category::Unknown {
            continue;
        }
        scored += 1;
        let window = &w.days[DAYS - WINDOW..];
        let potential = mean(
            &window
                .iter()
                .map(|d| d.potential_oil_bbl)
                .collect::<Vec<_>>(),
        );
        let actual = a.actual_bbl_per_day;
        let true_gap = actual - potential;
        let g = a.gap_bbl_per_day;
        err.push((g.p50 - true_gap).abs());
        rel.push((g.p50 - true_gap).abs() / potential);
        if (g.low..=g.high).contains(&true_gap) {
            inside += 1;
        }
        if let Some(b) = baseline.and_then(|b| b.get(&w.name)) {
            err_base.push((actual - b - true_gap).abs());
            rel_base.push((actual - b - true_gap).abs() / potential);
        }
        if let Some((own, _)) = a.estimates.own {
            err_own.push((own - potential).abs());
        }
        if let Some((peer, _, _)) = a.estimates.peers {
            err_peer.push((peer - potential).abs());
        }
        let truth = if true_gap < -TOLERANCE * potential {
            Category::Underperforming
        } else if true_gap > TOLERANCE * potential {
            Category::Over
        } else {
            Category::OnTarget
        };
        if truth == a.category {
            category_ok += 1;
        }
        let active = w
            .impairment
            .filter(|&(_, s, e)| s < DAYS - WINDOW && e >= DAYS);
        match active {
            Some((cause, _, _)) => {
                impaired_total += 1;
                if a.category == Category::Underperforming {
                    impaired_found += 1;
                    let expected = match cause {
                        Cause::Downtime => CauseKind::Downtime,
                        Cause::PumpOffTooAggressive => CauseKind::PumpOffTooAggressive,
                        Cause::PlungerCycleShort => CauseKind::PlungerCycleShort,
                        Cause::Choke => CauseKind::Choke,
                    };
                    if a.opportunities.first().map(|o| o.cause) == Some(expected) {
                        cause_ok += 1;
                    }
                }
            }
            None => {
                if w.impairment.is_none() {
                    healthy += 1;
                    if a.category == Category::Underperforming {
                        false_alarms += 1;
                    }
                }
            }
        }
    }
    let potential_mean = mean(
        &fleet
            .iter()
            .step_by(3)
            .map(|w| w.days[DAYS - 1].potential_oil_bbl)
            .collect::<Vec<_>>(),
    );
    println!("BENCH {prefix}_wells_scored {scored} wells");
    println!("BENCH {prefix}_mean_potential {potential_mean:.1} bbl/d");
    println!("BENCH {prefix}_gap_mae {:.2} bbl/d", mean(&err));
    println!(
        "BENCH {prefix}_gap_mae_relative {:.2} percent",
        100.0 * mean(&rel)
    );
    if baseline.is_some() {
        println!(
            "BENCH {prefix}_gap_mae_baseline_fleet_average {:.2} bbl/d",
            mean(&err_base)
        );
        println!(
            "BENCH {prefix}_gap_mae_relative_baseline_fleet_average {:.2} percent",
            100.0 * mean(&rel_base)
        );
    }
    println!(
        "BENCH {prefix}_expected_mae_own_decline_only {:.2} bbl/d",
        mean(&err_own)
    );
    println!(
        "BENCH {prefix}_expected_mae_peers_only {:.2} bbl/d",
        mean(&err_peer)
    );
    println!(
        "BENCH {prefix}_gap_interval_coverage {:.3} ratio",
        inside as f64 / scored.max(1) as f64
    );
    println!(
        "BENCH {prefix}_category_accuracy {:.3} ratio",
        category_ok as f64 / scored.max(1) as f64
    );
    println!(
        "BENCH {prefix}_impaired_found {:.3} ratio",
        impaired_found as f64 / impaired_total.max(1) as f64
    );
    println!(
        "BENCH {prefix}_cause_accuracy {:.3} ratio",
        cause_ok as f64 / impaired_found.max(1) as f64
    );
    println!(
        "BENCH {prefix}_false_alarms_healthy {:.3} ratio",
        false_alarms as f64 / healthy.max(1) as f64
    );
}
