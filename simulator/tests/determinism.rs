//! Same seed → same values; different seed → different values; counters only go up.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;
use firmware_profiles::vocabulary::{self, MetricKind};
use simulator::{FailurePlan, FleetConfig, Simulator};

/// A pinned-clock fleet with every profile and frequent scheduled failures.
fn pinned(seed: u64, time_scale: f64) -> FleetConfig {
    let profiles = all_profiles();
    let devices: Vec<&str> = profiles.iter().map(String::as_str).collect();
    FleetConfig {
        time_scale,
        clock_origin: Some(UNIX_EPOCH + Duration::from_millis(1_790_000_000_000)),
        failures: FailurePlan {
            rate_per_day: 4.0,
            ..FailurePlan::default()
        },
        ..config(seed, 3, &devices)
    }
}

/// Every (device, tag) of a simulator.
fn all_tags(sim: &Simulator) -> Vec<(String, String)> {
    sim.endpoints()
        .iter()
        .flat_map(|e| {
            let device = e.device.clone();
            profile(e)
                .tags
                .into_iter()
                .map(move |t| (device.clone(), t.name))
        })
        .collect()
}

#[tokio::test]
async fn same_seed_same_values_different_seed_different_values() {
    let a = start(pinned(42, 1.0)).await;
    let b = start(pinned(42, 1.0)).await;
    let c = start(pinned(43, 1.0)).await;
    assert_eq!(a.failure_schedule(), b.failure_schedule());
    assert_ne!(a.failure_schedule(), c.failure_schedule());
    let tags = all_tags(&a);
    let (mut same, mut differ) = (0, 0);
    for step in 0..8 {
        let at = 1_790_000_000_000 + step * 3_600_000 + 17_000;
        for (device, tag) in &tags {
            let va = a.expected(device, tag, at).unwrap();
            assert_eq!(
                Some(&va),
                b.expected(device, tag, at).as_ref(),
                "{device} {tag}"
            );
            if c.expected(device, tag, at).unwrap() == va {
                same += 1;
            } else {
                differ += 1;
            }
        }
    }
    // Constants (defaults, flags that are off) coincide; measured values do not.
    assert!(differ > 2 * same, "{differ} differ, {same} coincide");
    for sim in [a, b, c] {
        sim.shutdown().await;
    }
}

#[tokio::test]
async fn two_processes_with_the_same_seed_serve_the_same_registers() {
    let a = start(config(9, 1, &["gas-flow-computer"])).await;
    let b = start(config(9, 1, &["gas-flow-computer"])).await;
    let (ea, eb) = (
        endpoint_of(&a, "gas-flow-computer"),
        endpoint_of(&b, "gas-flow-computer"),
    );
    let p = profile(&ea);
    let mut ca = connect(ea.addr, ea.unit_id).await;
    let mut cb = connect(eb.addr, eb.unit_id).await;
    let tag = tag_for(&p, "gas_volume_total_mcf");
    // Retry until both reads land in the same simulated second.
    let mut matched = false;
    for _ in 0..20 {
        let (va, before, _) = read_timed(&mut ca, tag).await;
        let (vb, _, after) = read_timed(&mut cb, tag).await;
        if before / 1000 == after / 1000 {
            assert_eq!(va, vb);
            matched = true;
            break;
        }
    }
    assert!(matched, "never read both within one second");
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn counters_never_decrease_through_failures() {
    let sim = start(pinned(5, 1.0)).await;
    let counters: Vec<(String, String)> = sim
        .endpoints()
        .iter()
        .flat_map(|e| {
            let device = e.device.clone();
            profile(e).tags.into_iter().filter_map(move |t| {
                let kind = t.metric.as_deref().and_then(vocabulary::lookup)?.kind;
                (kind == MetricKind::Counter).then(|| (device.clone(), t.name))
            })
        })
        .collect();
    assert!(counters.len() >= 10, "{counters:?}");
    for (device, tag) in &counters {
        let mut prev = sim.expected(device, tag, 1_790_000_000_000).unwrap();
        // Two simulated days in 7-minute steps, crossing many scheduled failures.
        for step in 1..=(2 * 24 * 60 / 7) {
            let at = 1_790_000_000_000 + step * 7 * 60_000;
            let v = sim.expected(device, tag, at).unwrap();
            let (p, n) = (as_f64(&prev), as_f64(&v));
            assert!(n >= p, "{device} {tag} decreased {p} -> {n} at step {step}");
            prev = v;
        }
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn counters_read_over_the_wire_are_monotonic_at_high_time_scale() {
    // No scheduled failures: a shut-in drawn for the window (the schedule starts at the
    // wall-clock start) would stop the gas total this test expects to advance.
    let sim = start(FleetConfig {
        time_scale: 36_000.0,
        failures: FailurePlan {
            rate_per_day: 0.0,
            ..FailurePlan::default()
        },
        ..config(8, 1, &["rod-pump-controller", "gas-flow-computer"])
    })
    .await;
    let rpc = endpoint_of(&sim, "rod-pump-controller");
    let fc = endpoint_of(&sim, "gas-flow-computer");
    let (prpc, pfc) = (profile(&rpc), profile(&fc));
    let strokes = tag_for(&prpc, "stroke_count_total");
    let gas = tag_for(&pfc, "gas_volume_total_mcf");
    let mut c1 = connect(rpc.addr, rpc.unit_id).await;
    let mut c2 = connect(fc.addr, fc.unit_id).await;
    let first_strokes = eng(strokes, &read_timed(&mut c1, strokes).await.0);
    let first_gas = eng(gas, &read_timed(&mut c2, gas).await.0);
    let (mut last_strokes, mut last_gas) = (first_strokes, first_gas);
    let started = SystemTime::now();
    for _ in 0..12 {
        let s = eng(strokes, &read_timed(&mut c1, strokes).await.0);
        let g = eng(gas, &read_timed(&mut c2, gas).await.0);
        assert!(s >= last_strokes && g >= last_gas);
        (last_strokes, last_gas) = (s, g);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(started.elapsed().unwrap() >= Duration::from_secs(2));
    // At 36,000x, three seconds are 30 hours of production, enough for the gas total to
    // pass its register's resolution even on a well far down its decline (the wells age
    // with the wall clock). The stroke counter may stand still (the pump-off controller
    // idles the pump part of every cycle), so only the gas total must have advanced.
    assert!(
        last_strokes >= first_strokes,
        "{first_strokes} -> {last_strokes}"
    );
    assert!(last_gas > first_gas, "{first_gas} -> {last_gas}");
    sim.shutdown().await;
}

fn as_f64(v: &firmware_profiles::RawValue) -> f64 {
    match v {
        firmware_profiles::RawValue::Int(i) => *i as f64,
        firmware_profiles::RawValue::Float(f) => *f,
        other => panic!("counter is not numeric: {other:?}"),
    }
}
