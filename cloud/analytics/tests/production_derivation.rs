//! Daily production derivation: tank gauge + run tickets, counter rollover and reset,
//! flow-computer daily register, rate integration, gaps, manual corrections, roll-up.

use analytics::production::{
    CounterEventKind, CounterSpec, DailyProduction, DayWindow, DerivationConfig, DerivationIssue,
    ManualCorrection, Method, Quantity, Reading, RunTicket, Series, TankStrapping, WellDayInput,
    derive_day, monthly_totals,
};
use proptest::prelude::*;

const H: i64 = 3_600_000;
const DAY: i64 = 24 * H;
/// 2024-03-05T12:00Z, a production day starting at a noon contract hour.
const START: i64 = 1_709_640_000_000;

fn window() -> DayWindow {
    DayWindow {
        start_ms: START,
        end_ms: START + DAY,
    }
}

fn series(metric: &str, source: &str, points: &[(i64, f64)]) -> Series {
    Series {
        metric: metric.to_string(),
        source: source.to_string(),
        readings: points
            .iter()
            .map(|&(t, v)| Reading {
                ts_ms: START + t,
                value: v,
            })
            .collect(),
    }
}

fn day(series: Vec<Series>) -> WellDayInput {
    WellDayInput {
        window: window(),
        series,
        tickets: Vec::new(),
        corrections: Vec::new(),
    }
}

fn assert_close(actual: Option<f64>, expected: f64) {
    let a = actual.expect("value present");
    assert!(
        (a - expected).abs() <= 1e-9 * expected.abs().max(1.0),
        "{a} != {expected}"
    );
}

/// Hourly readings from `-1 h` to `+25 h` of f(hour).
fn hourly(f: impl Fn(i64) -> f64) -> Vec<(i64, f64)> {
    (-1..=25).map(|h| (h * H, f(h))).collect()
}

#[test]
fn oil_from_two_tanks_plus_haul_tickets() {
    // Tank 1: 200 bbl at open, fills 4 bbl/h, 150 bbl hauled at 12:00 → closing
    // 200 + 96 − 150 = 146. Tank 2 (level only, 1.67 bbl/in strapping): 60 in → 66 in,
    // i.e. 100.2 → 110.22 bbl, +10.02 bbl.
    // Oil = (146 − 200) + (110.22 − 100.2) + 150 hauled = 106.02 bbl.
    let tank1 = hourly(|h| {
        let v = 200.0 + 4.0 * h as f64;
        if h >= 12 { v - 150.0 } else { v }
    });
    let tank2 = hourly(|h| 60.0 + 0.25 * h as f64);
    let mut input = day(vec![
        series("oil_volume_bbl", "tank-1", &tank1),
        series("oil_level_in", "tank-2", &tank2),
    ]);
    input.tickets = vec![
        RunTicket {
            ts_ms: START + 12 * H,
            quantity: Quantity::Oil,
            volume_bbl: 150.0,
            ticket: "RT-1001".into(),
        },
        // Outside the day: ignored.
        RunTicket {
            ts_ms: START + DAY + H,
            quantity: Quantity::Oil,
            volume_bbl: 99.0,
            ticket: "RT-1002".into(),
        },
    ];
    let config = DerivationConfig {
        strappings: vec![TankStrapping {
            source: "tank-2".into(),
            points: vec![(0.0, 0.0), (240.0, 400.8)],
        }],
        ..DerivationConfig::default()
    };
    let d = derive_day(&input, &config);
    assert_eq!(d.oil.method, Method::TankGauge);
    assert!(d.oil.is_complete());
    assert_close(d.oil.value, (146.0 - 200.0) + (110.22 - 100.2) + 150.0);
    assert!(d.issues.is_empty(), "{:?}", d.issues);
}

#[test]
fn tank_without_closing_stock_is_missing_not_zero() {
    // Readings stop at 20:00: the closing stock is unknown (more than max_gap before end).
    let tank: Vec<(i64, f64)> = (-1..=20).map(|h| (h * H, 100.0 + h as f64)).collect();
    let d = derive_day(
        &day(vec![series("oil_volume_bbl", "t", &tank)]),
        &DerivationConfig::default(),
    );
    assert_eq!(d.oil.method, Method::TankGauge);
    assert_eq!(d.oil.value, None);
    assert!(!d.oil.coverage.is_complete());
}

#[test]
fn level_without_strapping_is_reported() {
    let d = derive_day(
        &day(vec![series(
            "water_level_in",
            "wt-1",
            &hourly(|h| h as f64),
        )]),
        &DerivationConfig::default(),
    );
    assert_eq!(d.water.method, Method::Missing);
    assert_eq!(d.water.value, None);
    assert!(d.issues.contains(&DerivationIssue::LevelWithoutStrapping {
        source: "wt-1".into()
    }));
}

#[test]
fn gas_counter_rollover() {
    // 10 Mcf/h from 99,950 at open; the counter wraps at 100,000 after 5 h.
    // Delta = 24 h × 10 = 240 Mcf, one rollover event.
    let points = hourly(|h| (99_950.0 + 10.0 * h as f64) % 100_000.0);
    let config = DerivationConfig {
        counters: vec![CounterSpec {
            metric: "gas_volume_total_mcf".into(),
            rollover_at: 100_000.0,
        }],
        ..DerivationConfig::default()
    };
    let d = derive_day(
        &day(vec![series("gas_volume_total_mcf", "fc-1", &points)]),
        &config,
    );
    assert_eq!(d.gas.method, Method::MeterTotal);
    assert!(d.gas.is_complete());
    assert_close(d.gas.value, 240.0);
    assert_eq!(d.gas.counter_events.len(), 1);
    assert_eq!(d.gas.counter_events[0].kind, CounterEventKind::Rollover);
    assert_eq!(d.gas.counter_events[0].ts_ms, START + 5 * H);
}

#[test]
fn flare_counter_reset_counts_from_zero() {
    // 2 Mcf/h; the device resets at 10:00 (reading 0 at 10:00 after 18 at 09:00… the
    // counter restarted just before 10:00 and shows 0).
    // Before: 09:00 − 00:00 = 9 h × 2 = 18 Mcf; the 09→10 interval contributes 0 (reset to
    // 0, counted from zero); after: 14 h × 2 = 28 Mcf. Total 46 Mcf, one reset event.
    let points = hourly(|h| {
        if h < 10 {
            100.0 + 2.0 * h as f64
        } else {
            2.0 * (h - 10) as f64
        }
    });
    let d = derive_day(
        &day(vec![series("flare_gas_mcf", "fl-1", &points)]),
        &DerivationConfig::default(),
    );
    assert_eq!(d.flared.method, Method::MeterTotal);
    assert_close(d.flared.value, 46.0);
    assert_eq!(d.flared.counter_events[0].kind, CounterEventKind::Reset);
    // One-hour interval ≤ max gap? No: 60 min > 30 min default, and a reset interval is
    // never exact, so 09:00–10:00 is flagged.
    assert!(!d.flared.coverage.is_complete());
    assert_eq!(d.flared.coverage.gaps.len(), 1);
    assert_eq!(d.flared.coverage.gaps[0].start_ms, START + 9 * H);
}

#[test]
fn counter_interval_across_midnight_is_apportioned() {
    // Readings at −30 min (0) and +30 min (10): half of the increment falls in the day.
    // Then 10 Mcf/h until the end: 23.5 h after +30 min → total 5 + 235 = 240 Mcf.
    let mut points = vec![(-H / 2, 0.0)];
    points.extend((0..=24).map(|h| (h * H + H / 2, 10.0 + 10.0 * h as f64)));
    let config = DerivationConfig {
        max_gap_ms: 2 * H,
        ..DerivationConfig::default()
    };
    let d = derive_day(&day(vec![series("vent_gas_mcf", "v", &points)]), &config);
    assert_close(d.vented.value, 240.0);
    assert!(d.vented.is_complete());
}

#[test]
fn gas_falls_back_to_yesterday_register_then_rate() {
    // No running total: the flow computer's yesterday register read 10 min after the
    // contract hour holds the day.
    let y = series(
        "gas_volume_yesterday_mcf",
        "fc",
        &[(DAY + 10 * 60_000, 321.5)],
    );
    let rate = series("gas_rate_mcfd", "fc", &hourly(|_| 240.0));
    let d = derive_day(&day(vec![y, rate.clone()]), &DerivationConfig::default());
    assert_eq!(d.gas.method, Method::FlowComputerDaily);
    assert_close(d.gas.value, 321.5);
    // Without the register: trapezoidal integration of a constant 240 Mcf/d over the day
    // with 10-minute readings = 240 Mcf.
    let rate = series(
        "gas_rate_mcfd",
        "fc",
        &(-1..=145).map(|i| (i * 600_000, 240.0)).collect::<Vec<_>>(),
    );
    let d = derive_day(&day(vec![rate]), &DerivationConfig::default());
    assert_eq!(d.gas.method, Method::RateIntegration);
    assert!(d.gas.is_complete());
    assert_close(d.gas.value, 240.0);
}

#[test]
fn rate_gap_is_flagged_not_filled() {
    // 10-minute readings of 240 Mcf/d with nothing between 06:00 and 09:00.
    let points: Vec<(i64, f64)> = (-1..=145)
        .map(|i| (i * 600_000, 240.0))
        .filter(|(t, _)| *t <= 6 * H || *t >= 9 * H)
        .collect();
    let d = derive_day(
        &day(vec![series("gas_rate_mcfd", "fc", &points)]),
        &DerivationConfig::default(),
    );
    assert_eq!(d.gas.method, Method::RateIntegration);
    // 21 h covered × 10 Mcf/h = 210 Mcf, flagged incomplete with the 3-hour gap.
    assert_close(d.gas.value, 210.0);
    assert!(!d.gas.is_complete());
    assert_eq!(d.gas.coverage.gaps.len(), 1);
    assert_eq!(d.gas.coverage.gaps[0].start_ms, START + 6 * H);
    assert_eq!(d.gas.coverage.gaps[0].end_ms, START + 9 * H);
    assert!((d.gas.coverage.fraction() - 21.0 / 24.0).abs() < 1e-12);
}

#[test]
fn missing_quantities_are_none() {
    let d = derive_day(&day(Vec::new()), &DerivationConfig::default());
    for q in Quantity::ALL {
        let f = d.figure(q);
        assert_eq!(f.value, None, "{q:?}");
        assert_eq!(f.method, Method::Missing);
        assert_eq!(f.coverage.fraction(), 0.0);
    }
}

#[test]
fn manual_correction_takes_precedence_and_keeps_derived() {
    let tank = hourly(|h| 100.0 + 2.0 * h as f64); // 48 bbl derived
    let mut input = day(vec![series("oil_volume_bbl", "t", &tank)]);
    input.corrections = vec![ManualCorrection {
        quantity: Quantity::Oil,
        value: 51.0,
        reference: "run ticket RT-2001 (strapped by pumper)".into(),
    }];
    let d = derive_day(&input, &DerivationConfig::default());
    assert_eq!(d.oil.method, Method::ManualCorrection);
    assert_eq!(d.oil.value, Some(51.0));
    assert!(d.oil.is_complete());
    assert_eq!(
        d.oil.correction_reference.as_deref(),
        Some("run ticket RT-2001 (strapped by pumper)")
    );
    let derived = d.oil.derived.as_ref().expect("derived figure kept");
    assert_eq!(derived.method, Method::TankGauge);
    assert_close(derived.value, 48.0);
    // A correction fills a figure that had no data at all.
    let mut input = day(Vec::new());
    input.corrections = vec![ManualCorrection {
        quantity: Quantity::Fuel,
        value: 3.0,
        reference: "fuel estimate".into(),
    }];
    let d = derive_day(&input, &DerivationConfig::default());
    assert_eq!(d.fuel.value, Some(3.0));
    assert_eq!(d.fuel.derived.as_ref().unwrap().method, Method::Missing);
}

#[test]
fn unsorted_and_non_finite_readings_are_reported() {
    let mut points = hourly(|h| 10.0 * h as f64);
    points.swap(3, 7);
    points.push((5 * H + 1, f64::NAN));
    let d = derive_day(
        &day(vec![series("fuel_gas_mcf", "f", &points)]),
        &DerivationConfig::default(),
    );
    assert_close(d.fuel.value, 240.0);
    assert!(
        d.issues
            .iter()
            .any(|i| matches!(i, DerivationIssue::UnsortedReadings { .. }))
    );
    assert!(
        d.issues
            .iter()
            .any(|i| matches!(i, DerivationIssue::NonFiniteReading { .. }))
    );
}

fn counter_day(offset_days: i64, with_gap: bool) -> DailyProduction {
    let points: Vec<(i64, f64)> = (-1..=25)
        .filter(|h| !with_gap || !(3..=8).contains(h))
        .map(|h| (h * H, 5.0 * (h + 24 * offset_days) as f64))
        .collect();
    let mut s = series("flare_gas_mcf", "fl", &points);
    for r in &mut s.readings {
        r.ts_ms += offset_days * DAY;
    }
    derive_day(
        &WellDayInput {
            window: DayWindow {
                start_ms: START + offset_days * DAY,
                end_ms: START + (offset_days + 1) * DAY,
            },
            series: vec![s],
            tickets: Vec::new(),
            corrections: Vec::new(),
        },
        &DerivationConfig::default(),
    )
}

#[test]
fn monthly_totals_flag_incomplete_days() {
    // Day 1 has a gap between 02:00 and 09:00 that straddles no boundary but is longer than
    // max_gap: for a counter wholly inside the day the delta is still exact, so the day is
    // complete. Every other quantity is missing on every day.
    let days = vec![
        counter_day(0, false),
        counter_day(1, true),
        counter_day(2, false),
    ];
    let totals = monthly_totals(&days);
    let (q, flared) = &totals[3];
    assert_eq!(*q, Quantity::Flared);
    assert_close(Some(flared.total), 3.0 * 120.0);
    assert!(flared.is_complete());
    assert_eq!(flared.complete_days, 3);
    let (_, oil) = &totals[0];
    assert!(!oil.is_complete());
    assert_eq!(oil.incomplete_days.len(), 3);
    assert_eq!(oil.incomplete_days[0], START);
    assert!(oil.methods.contains(&Method::Missing));
}

proptest! {
    /// For an increasing counter, the deltas of two adjacent half-day windows add up to
    /// the delta of the whole day.
    #[test]
    fn counter_delta_is_additive_over_windows(
        steps in proptest::collection::vec((1i64..3_600_000, 0.0..50.0f64), 30..200),
    ) {
        let mut t = -H;
        let mut v = 1_000.0;
        let mut points = Vec::new();
        for (dt, dv) in steps {
            points.push((t, v));
            t += dt;
            v += dv;
        }
        points.push((t.max(DAY + H), v));
        let s = series("gas_volume_total_mcf", "fc", &points);
        let config = DerivationConfig { max_gap_ms: 10 * DAY, ..DerivationConfig::default() };
        let run = |start_ms: i64, end_ms: i64| {
            derive_day(&WellDayInput {
                window: DayWindow { start_ms, end_ms },
                series: vec![s.clone()],
                tickets: Vec::new(),
                corrections: Vec::new(),
            }, &config).gas.value.unwrap()
        };
        let whole = run(START, START + DAY);
        let halves = run(START, START + DAY / 2) + run(START + DAY / 2, START + DAY);
        prop_assert!((whole - halves).abs() <= 1e-9 * whole.abs().max(1.0));
    }
}
