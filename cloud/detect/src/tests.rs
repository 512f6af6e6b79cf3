//! Detector-level tests: each finding fires on an injected anomaly and not on noise or
//! steady deadbanded data; state survives its stored form; historical data pages late;
//! silence.

use proptest::prelude::*;
use wire::Quality;

use crate::*;

const T0: i64 = 1_767_225_600_000;
const POLL: i64 = 10_000;

fn noise(i: i64, salt: u64) -> f64 {
    let x = (i as u64 ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    ((x >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
}

/// Feeds `n` polls of `f(i) -> [(metric, value)]` one batch per poll; all signals.
fn run<'m>(
    d: &Detector,
    st: &mut DeviceState,
    ctx: &DeviceContext<'_>,
    from: i64,
    n: i64,
    live: bool,
    f: impl Fn(i64) -> Vec<(&'m str, Option<f64>, Quality)>,
) -> Vec<Signal> {
    let mut out = Vec::new();
    for i in from..from + n {
        let ts = T0 + i * POLL;
        let samples: Vec<Sample<'_>> = f(i)
            .into_iter()
            .map(|(metric, value, quality)| Sample {
                ts_ms: ts,
                metric,
                value,
                quality,
            })
            .collect();
        out.extend(d.observe(st, ctx, &samples, live));
    }
    out
}

fn good(m: &str, v: f64) -> (&str, Option<f64>, Quality) {
    (m, Some(v), Quality::Good)
}

fn ctx() -> DeviceContext<'static> {
    DeviceContext {
        profile: "gas-flow-computer",
        model: None,
        rules: &[],
    }
}

fn kinds(signals: &[Signal]) -> Vec<(FindingKind, bool)> {
    signals.iter().map(|s| (s.kind, s.active)).collect()
}

#[test]
fn production_drop_fires_and_clears_but_not_on_noise() {
    let d = Detector::default();
    let mut st = DeviceState::default();
    let normal = |i| vec![good("gas_rate_mcfd", 500.0 + 5.0 * noise(i, 1))];
    assert!(run(&d, &mut st, &ctx(), 0, 2000, true, normal).is_empty());
    let drop = |i| vec![good("gas_rate_mcfd", 200.0 + 5.0 * noise(i, 1))];
    let s = run(&d, &mut st, &ctx(), 2000, 10, true, drop);
    assert_eq!(kinds(&s), vec![(FindingKind::ProductionDrop, true)]);
    let e = &s[0].evidence;
    assert!(e.score.unwrap() < -6.0 && e.baseline.unwrap() > 450.0 && !e.detail.is_empty());
    assert!(s[0].page);
    let s = run(&d, &mut st, &ctx(), 2010, 10, true, normal);
    assert_eq!(kinds(&s), vec![(FindingKind::ProductionDrop, false)]);
}

#[test]
fn steady_deadbanded_data_raises_nothing() {
    let d = Detector::default();
    let mut st = DeviceState::default();
    // A steady value re-sent on heartbeat only, with an occasional one-step change.
    let s = run(&d, &mut st, &ctx(), 0, 5000, true, |i| {
        if i % 6 != 0 {
            return vec![];
        }
        let v = if (i / 600) % 2 == 0 { 120.0 } else { 121.0 };
        vec![good("tubing_pressure_psi", v), good("gas_rate_mcfd", 800.0)]
    });
    assert!(s.is_empty(), "{s:?}");
}

#[test]
fn frozen_noisy_sensor_is_stuck_but_a_steady_one_is_not() {
    let d = Detector::default();
    let mut st = DeviceState::default();
    let s = run(&d, &mut st, &ctx(), 0, 500, true, |i| {
        vec![good(
            "flow_temperature_f",
            80.0 + (2.0 * noise(i, 3)).round() / 2.0,
        )]
    });
    assert!(s.is_empty(), "{s:?}");
    // Frozen: the agent re-sends the same value every heartbeat (6 polls).
    let s = run(&d, &mut st, &ctx(), 500, 300, true, |i| {
        if i % 6 == 0 {
            vec![good("flow_temperature_f", 80.5)]
        } else {
            vec![]
        }
    });
    assert_eq!(kinds(&s), vec![(FindingKind::SensorFailure, true)]);
    assert_eq!(s[0].evidence.detector, "stuck");
    assert_eq!(s[0].subject.as_deref(), Some("flow_temperature_f"));
}

#[test]
fn bad_device_is_one_device_level_finding() {
    let d = Detector::default();
    let mut st = DeviceState::default();
    let ok = |i| {
        vec![
            good("gas_rate_mcfd", 500.0 + noise(i, 1)),
            good("static_pressure_psi", 300.0 + noise(i, 2)),
        ]
    };
    run(&d, &mut st, &ctx(), 0, 100, true, ok);
    let s = run(&d, &mut st, &ctx(), 100, 30, true, |i| {
        if i % 6 != 4 {
            return vec![];
        }
        vec![
            ("gas_rate_mcfd", None, Quality::Bad),
            ("static_pressure_psi", None, Quality::Bad),
        ]
    });
    assert_eq!(kinds(&s), vec![(FindingKind::SensorFailure, true)]);
    assert_eq!(s[0].subject, None);
    assert_eq!(s[0].evidence.detector, "bad_quality");
    let s = run(&d, &mut st, &ctx(), 130, 5, true, ok);
    assert_eq!(kinds(&s), vec![(FindingKind::SensorFailure, false)]);
}

#[test]
fn out_of_range_reading_is_a_sensor_failure() {
    let d = Detector::default();
    let mut st = DeviceState::default();
    run(&d, &mut st, &ctx(), 0, 50, true, |i| {
        vec![good("static_pressure_psi", 300.0 + noise(i, 2))]
    });
    let s = run(&d, &mut st, &ctx(), 50, 5, true, |_| {
        vec![("static_pressure_psi", Some(-40.0), Quality::Uncertain)]
    });
    assert_eq!(kinds(&s), vec![(FindingKind::SensorFailure, true)]);
    assert_eq!(s[0].evidence.detector, "out_of_range");
}

fn rod_pump(
    i: i64,
    fill: f64,
    state: f64,
    peak: f64,
    min: f64,
) -> Vec<(&'static str, Option<f64>, Quality)> {
    vec![
        good("pump_state", state),
        good("pump_fillage_pct", fill),
        good("rod_load_peak_lbf", peak + 50.0 * noise(i, 5)),
        good("rod_load_min_lbf", min + 50.0 * noise(i, 6)),
    ]
}

#[test]
fn rod_pump_findings() {
    let d = Detector::default();
    let c = DeviceContext {
        profile: "rod-pump-controller",
        ..ctx()
    };
    let healthy = |i| rod_pump(i, 90.0 + noise(i, 4), 1.0, 20_000.0, 8_000.0);
    let mut st = DeviceState::default();
    assert!(run(&d, &mut st, &c, 0, 300, true, healthy).is_empty());
    let mut parted = st.clone();
    let s = run(&d, &mut parted, &c, 300, 10, true, |i| {
        rod_pump(i, 2.0, 1.0, 4_000.0, 3_000.0)
    });
    assert_eq!(kinds(&s), vec![(FindingKind::RodPart, true)]);
    assert_eq!(s[0].severity, Severity::Critical);
    let mut idle = st.clone();
    let s = run(&d, &mut idle, &c, 300, 10, true, |i| {
        rod_pump(i, 42.0, 2.0, 20_000.0, 7_000.0)
    });
    assert_eq!(kinds(&s), vec![(FindingKind::PumpOff, true)]);
    let mut locked = st.clone();
    let s = run(&d, &mut locked, &c, 300, 20, true, |i| {
        rod_pump(i, 48.0 + 8.0 * noise(i, 9), 1.0, 20_000.0, 7_000.0)
    });
    assert_eq!(kinds(&s), vec![(FindingKind::GasLock, true)]);
}

#[test]
fn tank_plunger_and_water_cut_findings() {
    let d = Detector::default();
    let c = DeviceContext {
        profile: "tank-gauge",
        ..ctx()
    };
    let mut st = DeviceState::default();
    // 60 polls an hour: oil gains 1 bbl/h and water 0.5 bbl/h for 12 h.
    let tank = |i: i64, water_per_h: f64| {
        let h = i as f64 / 360.0;
        vec![
            good("oil_volume_bbl", 50.0 + h),
            good(
                "water_volume_bbl",
                20.0 + 0.5 * h.min(12.0) + water_per_h * (h - 12.0).max(0.0),
            ),
            good("oil_level_in", 60.0),
            good("tank_high_level_setpoint_in", 200.0),
        ]
    };
    assert!(run(&d, &mut st, &c, 0, 12 * 360, true, |i| tank(i, 0.0)).is_empty());
    let s = run(&d, &mut st, &c, 12 * 360, 2 * 360, true, |i| tank(i, 4.0));
    assert_eq!(kinds(&s), vec![(FindingKind::WaterCutSpike, true)]);
    let s = run(&d, &mut st, &c, 14 * 360, 3, true, |_| {
        vec![good("oil_level_in", 201.0), good("tank_high_level", 1.0)]
    });
    assert_eq!(kinds(&s), vec![(FindingKind::TankHighLevel, true)]);

    let c = DeviceContext {
        profile: "plunger-lift-controller",
        ..ctx()
    };
    let mut st = DeviceState::default();
    assert!(
        run(&d, &mut st, &c, 0, 10, true, |_| vec![good(
            "plunger_non_arrival_alarm",
            0.0
        )])
        .is_empty()
    );
    let s = run(&d, &mut st, &c, 10, 3, true, |_| {
        vec![good("plunger_non_arrival_alarm", 1.0)]
    });
    assert_eq!(kinds(&s), vec![(FindingKind::PlungerNotArriving, true)]);
}

#[test]
fn esp_findings() {
    let d = Detector::default();
    let c = DeviceContext {
        profile: "esp-drive",
        ..ctx()
    };
    let esp = |i: i64, state: f64, current: f64| {
        vec![
            good("pump_state", state),
            good("motor_current_a", current + 0.5 * noise(i, 8)),
            good("underload_alarm", f64::from(u8::from(current < 60.0))),
        ]
    };
    let mut st = DeviceState::default();
    assert!(run(&d, &mut st, &c, 0, 300, true, |i| esp(i, 1.0, 85.0)).is_empty());
    let mut broken = st.clone();
    let s = run(&d, &mut broken, &c, 300, 5, true, |i| esp(i, 1.0, 27.0));
    assert_eq!(kinds(&s), vec![(FindingKind::RodPart, true)]);
    let mut locked = st.clone();
    let s = run(&d, &mut locked, &c, 300, 12, true, |i| {
        esp(i, 1.0, 32.0 + 12.0 * noise(i, 11))
    });
    assert_eq!(kinds(&s), vec![(FindingKind::GasLock, true)]);
    let mut off = st.clone();
    let s = run(&d, &mut off, &c, 300, 5, true, |i| esp(i, 2.0, 0.0));
    assert_eq!(kinds(&s), vec![(FindingKind::PumpOff, true)]);
}

#[test]
fn gas_thresholds_fire_at_once_with_severity() {
    let d = Detector::default();
    let mut st = DeviceState::default();
    let c = DeviceContext {
        profile: "gas-detector",
        ..ctx()
    };
    run(&d, &mut st, &c, 0, 10, true, |_| vec![good("h2s_ppm", 0.0)]);
    let s = run(&d, &mut st, &c, 10, 1, true, |_| {
        vec![good("h2s_ppm", 25.0)]
    });
    assert_eq!(kinds(&s), vec![(FindingKind::H2sHigh, true)]);
    assert_eq!(s[0].severity, Severity::Critical);
    let s = run(&d, &mut st, &c, 11, 1, true, |_| {
        vec![good("lel_pct", 12.0)]
    });
    assert_eq!(s[0].severity, Severity::Warning);
}

#[test]
fn tenant_rule_fires_with_its_subject_and_severity() {
    let d = Detector::default();
    let mut st = DeviceState::default();
    let rules = [Rule {
        id: 3,
        name: "Static pressure high".into(),
        metric: "static_pressure_psi".into(),
        condition: RuleCondition::Above { value: 400.0 },
        severity: Severity::Critical,
        for_ms: 20_000,
    }];
    let c = DeviceContext {
        rules: &rules,
        ..ctx()
    };
    let s = run(&d, &mut st, &c, 0, 5, true, |_| {
        vec![good("static_pressure_psi", 450.0)]
    });
    assert_eq!(kinds(&s), vec![(FindingKind::ThresholdRule, true)]);
    assert_eq!(s[0].subject.as_deref(), Some("rule:3"));
    assert_eq!(s[0].evidence.rule.as_deref(), Some("Static pressure high"));
    assert_eq!(s[0].severity, Severity::Critical);
    assert_eq!(s[0].ts_ms, T0 + 2 * POLL);
}

#[test]
fn historical_activation_pages_on_the_first_live_batch() {
    let d = Detector::default();
    let mut st = DeviceState::default();
    let c = DeviceContext {
        profile: "gas-detector",
        ..ctx()
    };
    let s = run(&d, &mut st, &c, 0, 1, false, |_| {
        vec![good("h2s_ppm", 15.0)]
    });
    assert!(s[0].active && !s[0].page);
    let s = run(&d, &mut st, &c, 1, 1, true, |_| vec![good("h2s_ppm", 15.0)]);
    assert_eq!(s.len(), 1);
    assert!(s[0].active && s[0].page);
    assert!(run(&d, &mut st, &c, 2, 1, true, |_| vec![good("h2s_ppm", 15.0)]).is_empty());
    // An old sample does not move anything.
    let before = st.clone();
    let old = [Sample {
        ts_ms: T0,
        metric: "h2s_ppm",
        value: Some(0.0),
        quality: Quality::Good,
    }];
    assert!(d.observe(&mut st, &c, &old, true).is_empty());
    assert_eq!(st, before);
}

#[test]
fn silence_is_signalled_once_and_cleared_by_the_next_sample() {
    let d = Detector::default();
    let mut st = DeviceState::default();
    run(&d, &mut st, &ctx(), 0, 20, true, |i| {
        vec![good("gas_rate_mcfd", 500.0 + noise(i, 1))]
    });
    let last = T0 + 19 * POLL;
    assert!(d.check_silence(&mut st, last + 30_000).is_none());
    let s = d.check_silence(&mut st, last + 61_000).unwrap();
    assert_eq!((s.kind, s.active), (FindingKind::DeviceSilent, true));
    assert!(d.check_silence(&mut st, last + 120_000).is_none());
    let s = run(&d, &mut st, &ctx(), 40, 1, true, |_| {
        vec![good("gas_rate_mcfd", 500.0)]
    });
    assert_eq!(kinds(&s), vec![(FindingKind::DeviceSilent, false)]);
}

#[test]
fn state_round_trips_through_its_stored_form_and_json_states_load() {
    let d = Detector::default();
    let mut st = DeviceState::default();
    run(&d, &mut st, &ctx(), 0, 3000, true, |i| {
        vec![good("gas_rate_mcfd", 500.0 + 5.0 * noise(i, 1))]
    });
    let drop = |i| vec![good("gas_rate_mcfd", 100.0 + noise(i, 1))];
    let fired = run(&d, &mut st, &ctx(), 3000, 5, true, drop);
    assert!(!fired.is_empty());
    assert!(
        st.conditions
            .values()
            .any(|c| c.active && c.evidence.is_some())
    );
    // Exact, floats and the active condition's evidence included.
    let stored = st.to_bytes();
    assert_eq!(stored[0], STATE_FORMAT);
    let mut back = DeviceState::from_bytes(&stored).unwrap();
    assert_eq!(back, st);
    // ...and it goes on as the original does.
    let recover = |i| vec![good("gas_rate_mcfd", 500.0 + 5.0 * noise(i, 1))];
    let a = run(&d, &mut st, &ctx(), 3005, 200, true, recover);
    let b = run(&d, &mut back, &ctx(), 3005, 200, true, recover);
    assert_eq!(kinds(&a), kinds(&b));
    // States stored as JSON (the first form) still load, with their evidence.
    let json = serde_json::to_vec(&back).unwrap();
    let from_json = DeviceState::from_bytes(&json).unwrap();
    assert_eq!(from_json.conditions.len(), back.conditions.len());
    assert_eq!(
        DeviceState::from_bytes(br#"{"last_ts_ms": 5}"#)
            .unwrap()
            .last_ts_ms,
        Some(5)
    );
    // Another version's form, garbage and nothing are refused (the caller starts afresh).
    let mut other = stored.clone();
    other[0] = STATE_FORMAT + 1;
    assert!(DeviceState::from_bytes(&other).is_err());
    assert!(DeviceState::from_bytes(&stored[..stored.len() / 2]).is_err());
    assert!(DeviceState::from_bytes(&[]).is_err());
}

/// The stored form of a small state, byte for byte. When this fails, the state's types
/// changed: bump [`STATE_FORMAT`] (old states then start afresh) and update the bytes.
#[test]
fn stored_form_is_pinned_to_its_version() {
    let mut pump_off = condition::Condition::new(FindingKind::PumpOff, None);
    pump_off.active = true;
    pump_off.evidence = Some(Evidence {
        value: Some(42.5),
        detector: "pump_off".into(),
        detail: "d".into(),
        ..Evidence::default()
    });
    let mut rule = rules::RuleState::default();
    rule.window.push_back((7, 2.5));
    let state = DeviceState {
        last_ts_ms: Some(5),
        series: [("x".to_owned(), series::SeriesState::default())].into(),
        latest: [("x".to_owned(), 1.5)].into(),
        conditions: [("pump_off".to_owned(), pump_off)].into(),
        interval_ms: Some(10.0),
        rules: [(7, rule)].into(),
        water_cut: findings::WaterCut::default(),
    };
    let hex: String = state
        .to_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        hex, GOLDEN_STATE,
        "bump STATE_FORMAT and update GOLDEN_STATE"
    );
    assert_eq!(DeviceState::from_bytes(&state.to_bytes()).unwrap(), state);
}

const GOLDEN_STATE: &str = concat!(
    "01010a0101780000000000000000000000000000000000000000000000000000000000000000000000000000",
    "0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
    "000000000000000000000000000000000000000000000000000000000000010178000000000000f83f010870",
    "756d705f6f66660400010000ffffffffffffffffff010101317b2276616c7565223a34322e352c2264657465",
    "63746f72223a2270756d705f6f6666222c2264657461696c223a2264227d00010000000000002440010e0001",
    "0e00000000000004400000000000000000000000000000000000000000000000000000000000000000000000",
    "0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
    "00000000000000000000000000000000000000000000000000000000000000000000",
);

#[test]
fn well_model_fires_on_a_broken_relation() {
    let features = vec!["gas_rate_mcfd".to_owned(), "static_pressure_psi".to_owned()];
    let rows: Vec<Vec<f64>> = (0..200)
        .map(|i| {
            let x = 100.0 + 50.0 * (i as f64 / 10.0).sin();
            vec![5.0 * x + noise(i, 1), 2.0 * x + noise(i, 2)]
        })
        .collect();
    let mut m = model::train_rows(features, &rows).unwrap();
    m.version = 4;
    let d = Detector::default();
    let mut st = DeviceState::default();
    let c = DeviceContext {
        model: Some(&m),
        ..ctx()
    };
    let s = run(&d, &mut st, &c, 0, 10, true, |i| {
        vec![
            good("gas_rate_mcfd", 500.0 + noise(i, 1)),
            good("static_pressure_psi", 200.0),
        ]
    });
    assert!(s.is_empty(), "{s:?}");
    let s = run(&d, &mut st, &c, 10, 5, true, |i| {
        vec![
            good("gas_rate_mcfd", 500.0 + noise(i, 1)),
            good("static_pressure_psi", 120.0),
        ]
    });
    let w: Vec<_> = s
        .iter()
        .filter(|s| s.kind == FindingKind::WellAnomaly)
        .collect();
    assert_eq!(w.len(), 1);
    assert_eq!(w[0].evidence.model.as_deref(), Some("pca@4"));
    assert!(w[0].evidence.values.contains_key("static_pressure_psi"));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]
    /// Whatever arrives, observe never panics and the state stays serialisable, finite
    /// input or not.
    #[test]
    fn never_panics(
        values in prop::collection::vec(
            (0usize..6, prop::option::of(prop_oneof![
                any::<f64>(),
                Just(f64::NAN),
                Just(f64::INFINITY),
                Just(f64::MAX),
                Just(-f64::MAX),
                -1e6f64..1e6,
            ]), 0u8..4, -5i64..100),
            0..300,
        )
    ) {
        const METRICS: [&str; 6] = [
            "pump_state", "pump_fillage_pct", "gas_rate_mcfd", "h2s_ppm",
            "tubing_pressure_psi", "custom.x",
        ];
        let rules = [Rule {
            id: 1,
            name: String::new(),
            metric: "gas_rate_mcfd".into(),
            condition: RuleCondition::Rate { change: 10.0, window_ms: 60_000 },
            severity: Severity::Info,
            for_ms: 0,
        }];
        let d = Detector::new(DetectOptions { warmup_samples: 5, ..DetectOptions::default() });
        let mut st = DeviceState::default();
        let c = DeviceContext { profile: "x", model: None, rules: &rules };
        let mut ts = T0;
        for chunk in values.chunks(7) {
            let samples: Vec<Sample<'_>> = chunk.iter().map(|(m, v, q, dt)| {
                ts += dt * 1000;
                Sample {
                    ts_ms: ts,
                    metric: METRICS[*m],
                    value: *v,
                    quality: match q { 0 => Quality::Good, 1 => Quality::Bad, 2 => Quality::Stale, _ => Quality::Uncertain },
                }
            }).collect();
            for s in d.observe(&mut st, &c, &samples, true) {
                prop_assert!(s.evidence.score.is_none_or(|x| !x.is_nan()));
            }
            d.check_silence(&mut st, ts + 1_000_000);
        }
        for s in st.series.values() {
            prop_assert!(s.level.level.is_none_or(f64::is_finite));
            prop_assert!(s.level.mad.is_finite());
        }
        prop_assert!(serde_json::to_string(&st).is_ok());
    }
}

#[test]
fn judged_metrics_are_production_rates_and_process_pressures() {
    use findings::{Judged, judged};
    assert_eq!(judged("gas_rate_mcfd"), Some(Judged::Production));
    assert_eq!(judged("oil_rate_bpd"), Some(Judged::Production));
    assert_eq!(judged("flare_rate_mcfd"), None);
    assert_eq!(judged("tubing_pressure_psi"), Some(Judged::Pressure));
    assert_eq!(judged("custom.shutdown_limit_pressure_psi"), None);
    assert_eq!(judged("custom.kill_setpoint_pressure_psi"), None);
    assert_eq!(judged("motor_current_a"), None);
}
