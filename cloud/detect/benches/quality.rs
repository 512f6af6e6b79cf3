//! Detection quality on a simulated fleet, against the simulator's failure schedule.
//!
//! `cargo bench -p detect --bench quality`
//!
//! # What it does
//!
//! 1. Starts the simulator (seeded, clock origin fixed, time scale 1) for a mixed-lift fleet
//!    and reads its failure schedule (every kind, several per device over the run).
//! 2. Polls every device as the agent does (`agent/src/poller/emit.rs`): fast tags every
//!    10 s, slow ones every 60 s, the profile's deadband, a 60 s heartbeat; the quality is
//!    `Bad` (no value) when the device would not answer within its profile's timeout —
//!    silent device, exception, or a slow response whose delay is not shorter than the
//!    timeout — sent on the first failure and then on heartbeat, `Uncertain` outside the
//!    valid range. The agent keeps polling a silent device, so `DeviceSilent` failures
//!    reach the cloud as `Bad` samples, not as silence.
//! 3. Feeds each device's samples to `Detector::observe` in 60 s batches (live) and calls
//!    `check_silence` after each batch. The first 12 h are before the schedule's origin:
//!    the baselines warm up on a healthy fleet.
//! 4. Every device with at least two of the well-model features (lift equipment, the flow
//!    computer's pressures) gets a PCA model trained on 5-minute snapshots of its warm-up
//!    hours, passed to `observe` from the schedule's origin on; its `well_anomaly` findings
//!    are true when they fall in a failure window of the same well.
//! 5. Scores the activations against the schedule.
//!
//! # Matching
//!
//! | failure | findings that detect it |
//! |---|---|
//! | pump_off | `pump_off` |
//! | rod_part | `rod_part` |
//! | gas_lock | `gas_lock` |
//! | sensor_frozen | `sensor_failure` by `stuck` |
//! | device_silent | `device_silent`, `sensor_failure` by `bad_quality` |
//! | slow_response | `sensor_failure` by `bad_quality` (only delays ≥ the timeout are visible; shorter ones are not counted for recall) |
//! | exception | `sensor_failure` by `bad_quality` |
//!
//! An activation matches a failure of its type on the same device when it falls in
//! `[start, end + 30 min]` (detection lag, hold). Per type: recall = failures matched /
//! failures; precision = matching activations / activations of the type's findings (an
//! activation of a finding shared by several types counts for the type it matched, else
//! for the first). Overall precision also counts the baseline findings (production,
//! pressure, water cut, well model, other sensor findings) as true when they fall in a
//! failure window of the same well (a rod part drops the well's gas rate on the flow
//! computer). H2S, LEL, tank and plunger findings answer simulated process excursions that
//! the failure schedule does not list; they are counted apart.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use detect::{
    DetectOptions, Detector, DeviceContext, DeviceState, FindingKind, Sample, Signal, WellModel,
    model,
};
use firmware_profiles::{RawValue, Tag};
use simulator::{FailureEvent, FailureKind, FailurePlan, FleetConfig, Simulator};
use wire::Quality;

const FAST_MS: i64 = 10_000;
const SLOW_MS: i64 = 60_000;
const HEARTBEAT_MS: i64 = 60_000;
const BATCH_MS: i64 = 60_000;
const GRACE_MS: i64 = 30 * 60_000;
const WARMUP_MS: i64 = 12 * 3_600_000;
const DAYS: i64 = 3;
const MODEL_ROW_MS: i64 = 5 * 60_000;
/// Features of a device's well model (those its profile has).
const MODEL_FEATURES: &[&str] = &[
    "pump_fillage_pct",
    "rod_load_peak_lbf",
    "rod_load_min_lbf",
    "motor_current_a",
    "pump_intake_pressure_psi",
    "pump_discharge_pressure_psi",
    "motor_temperature_f",
    "tubing_pressure_psi",
    "casing_pressure_psi",
];
/// 2026-11-01T00:00:00Z.
const ORIGIN_MS: i64 = 1_793_491_200_000;

/// The agent's report-by-exception state of one tag.
#[derive(Default, Clone, Copy)]
struct Emit {
    last: Option<(Quality, f64, i64)>,
}

struct Dev<'p> {
    name: String,
    well: String,
    tags: Vec<(&'p Tag, &'static str)>,
    emit: Vec<Emit>,
    timeout_ms: i64,
    state: DeviceState,
    profile: String,
}

fn leak(s: &str) -> &'static str {
    Box::leak(s.to_owned().into_boxed_str())
}

fn emit(
    st: &mut Emit,
    reading: Option<f64>,
    tag: &Tag,
    now: i64,
) -> Option<(Option<f64>, Quality)> {
    let quality = match reading {
        None => Quality::Bad,
        Some(x) if !tag.in_valid_range(x) => Quality::Uncertain,
        Some(_) => Quality::Good,
    };
    let eng = reading.unwrap_or(f64::NAN);
    let send = match st.last {
        None => true,
        Some((q, last, at)) => {
            if q != quality || now - at >= HEARTBEAT_MS {
                true
            } else if quality == Quality::Bad {
                false
            } else if tag.data_type.is_boolean() {
                eng != last
            } else {
                tag.deadband <= 0.0 || (eng - last).abs() > tag.deadband
            }
        }
    };
    if !send {
        return None;
    }
    st.last = Some((quality, eng, now));
    Some((reading, quality))
}

fn comm_failed(events: &[&FailureEvent], t: i64, timeout_ms: i64) -> bool {
    events.iter().any(|e| {
        t >= e.start_ms
            && t < e.end_ms
            && match e.kind {
                FailureKind::DeviceSilent | FailureKind::Exception => true,
                FailureKind::SlowResponse => e.delay_ms.unwrap_or(0) as i64 >= timeout_ms,
                _ => false,
            }
    })
}

/// Failure types a finding may detect.
fn types_of(s: &Signal) -> &'static [FailureKind] {
    match (s.kind, s.evidence.detector.as_str()) {
        (FindingKind::PumpOff, _) => &[FailureKind::PumpOff],
        (FindingKind::RodPart, _) => &[FailureKind::RodPart],
        (FindingKind::GasLock, _) => &[FailureKind::GasLock],
        (FindingKind::SensorFailure, "stuck") => &[FailureKind::SensorFrozen],
        (FindingKind::SensorFailure, "bad_quality") => &[
            FailureKind::DeviceSilent,
            FailureKind::Exception,
            FailureKind::SlowResponse,
        ],
        (FindingKind::DeviceSilent, _) => &[FailureKind::DeviceSilent],
        _ => &[],
    }
}

fn name(k: FailureKind) -> &'static str {
    match k {
        FailureKind::PumpOff => "pump_off",
        FailureKind::RodPart => "rod_part",
        FailureKind::GasLock => "gas_lock",
        FailureKind::SensorFrozen => "sensor_frozen",
        FailureKind::DeviceSilent => "device_silent",
        FailureKind::SlowResponse => "slow_response",
        FailureKind::Exception => "exception",
    }
}

fn p50(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let cfg = FleetConfig {
        seed: 7,
        wells: 8,
        devices_per_well: vec![
            "rod-pump-controller|esp-drive".into(),
            "gas-flow-computer".into(),
            "tank-gauge".into(),
            "gas-detector".into(),
        ],
        time_scale: 1.0,
        clock_origin: Some(std::time::UNIX_EPOCH + Duration::from_millis(ORIGIN_MS as u64)),
        failures: FailurePlan {
            rate_per_day: 3.0,
            horizon: Duration::from_secs(DAYS as u64 * 86_400),
            min_duration: Duration::from_secs(10 * 60),
            max_duration: Duration::from_secs(2 * 3600),
            ..FailurePlan::default()
        },
        ..FleetConfig::default()
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let sim = rt
        .block_on(Simulator::start(cfg, IpAddr::V4(Ipv4Addr::LOCALHOST)))
        .expect("simulator starts");
    let schedule = sim.failure_schedule();
    let profiles: BTreeMap<String, firmware_profiles::Profile> = sim
        .endpoints()
        .iter()
        .map(|e| {
            (
                e.profile.clone(),
                firmware_profiles::builtin_profile(&e.profile).expect("built-in profile"),
            )
        })
        .collect();
    let mut devs: Vec<Dev<'_>> = sim
        .endpoints()
        .iter()
        .map(|e| {
            let p = &profiles[&e.profile];
            let tags: Vec<(&Tag, &'static str)> = p
                .tags
                .iter()
                .filter(|t| !matches!(t.data_type, firmware_profiles::DataType::String { .. }))
                .filter_map(|t| t.metric.as_deref().map(|m| (t, leak(m))))
                .collect();
            Dev {
                name: e.device.clone(),
                well: e.well.clone(),
                emit: vec![Emit::default(); tags.len()],
                tags,
                timeout_ms: p.transport.timeout.as_millis() as i64,
                state: DeviceState::default(),
                profile: e.profile.clone(),
            }
        })
        .collect();

    let detector = Detector::new(DetectOptions::default());
    let start = ORIGIN_MS - WARMUP_MS;
    let end = ORIGIN_MS + DAYS * 86_400_000;
    let mut signals: Vec<(String, String, Signal)> = Vec::new();
    let mut samples_total = 0u64;
    let mut detect_time = Duration::ZERO;
    let mut batch: Vec<(i64, &'static str, Option<f64>, Quality)> = Vec::new();
    let mut models_trained = 0usize;
    for d in &mut devs {
        let events: Vec<&FailureEvent> = schedule.iter().filter(|e| e.device == d.name).collect();
        let ctx_profile = leak(&d.profile);
        let features: Vec<String> = MODEL_FEATURES
            .iter()
            .filter(|f| d.tags.iter().any(|(_, m)| m == *f))
            .map(|f| (*f).to_owned())
            .collect();
        let mut rows: Vec<Vec<f64>> = Vec::new();
        let mut model: Option<WellModel> = None;
        let mut t = start;
        while t < end {
            batch.clear();
            let batch_end = t + BATCH_MS;
            while t < batch_end {
                let failed = comm_failed(&events, t, d.timeout_ms);
                for (i, (tag, metric)) in d.tags.iter().enumerate() {
                    let period = if tag.poll_group == "slow" {
                        SLOW_MS
                    } else {
                        FAST_MS
                    };
                    if (t - start) % period != 0 {
                        continue;
                    }
                    let reading = if failed {
                        None
                    } else {
                        match sim.expected(&d.name, &tag.name, t) {
                            Some(RawValue::Text(_)) | None => continue,
                            Some(raw) => tag.to_engineering(&raw),
                        }
                    };
                    if let Some((v, q)) = emit(&mut d.emit[i], reading, tag, t) {
                        batch.push((t, metric, v, q));
                    }
                }
                t += FAST_MS;
            }
            let samples: Vec<Sample<'_>> = batch
                .iter()
                .map(|(ts, m, v, q)| Sample {
                    ts_ms: *ts,
                    metric: m,
                    value: *v,
                    quality: *q,
                })
                .collect();
            samples_total += samples.len() as u64;
            let ctx = DeviceContext {
                profile: ctx_profile,
                model: model.as_ref(),
                rules: &[],
            };
            let clock = Instant::now();
            let mut out = detector.observe(&mut d.state, &ctx, &samples, true);
            out.extend(detector.check_silence(&mut d.state, batch_end));
            detect_time += clock.elapsed();
            // The well model: trained on 5-minute snapshots of the healthy warm-up hours
            // (what the cloud's rollups give it), scored from the schedule's origin on.
            if features.len() >= 2 && batch_end <= ORIGIN_MS {
                if (batch_end - start) % MODEL_ROW_MS == 0
                    && let Some(row) = features
                        .iter()
                        .map(|f| d.state.latest.get(f).copied())
                        .collect::<Option<Vec<f64>>>()
                {
                    rows.push(row);
                }
                if batch_end == ORIGIN_MS {
                    model = model::train_rows(features.clone(), &rows).ok();
                    models_trained += usize::from(model.is_some());
                }
            }
            for s in out.into_iter().filter(|s| s.active && s.ts_ms >= ORIGIN_MS) {
                signals.push((d.name.clone(), d.well.clone(), s));
            }
        }
    }
    rt.block_on(sim.shutdown());
    let state_bytes = devs
        .iter()
        .map(|d| d.state.to_bytes().len())
        .max()
        .unwrap_or(0);

    // Ground truth: failures inside the run, visible ones only.
    let timeout_of: BTreeMap<&str, i64> = devs
        .iter()
        .map(|d| (d.name.as_str(), d.timeout_ms))
        .collect();
    let truth: Vec<&FailureEvent> = schedule
        .iter()
        .filter(|e| e.start_ms >= ORIGIN_MS && e.start_ms < end)
        .filter(|e| {
            e.kind != FailureKind::SlowResponse
                || e.delay_ms.unwrap_or(0) as i64 >= timeout_of[e.device.as_str()]
        })
        .collect();
    let inside = |e: &FailureEvent, ts: i64| ts >= e.start_ms && ts <= e.end_ms + GRACE_MS;

    let mut tp_signals: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    let (mut all_tp, mut all_n, mut other) = (0u64, 0u64, 0u64);
    for (dev, well, s) in &signals {
        let types = types_of(s);
        if types.is_empty() {
            if matches!(
                s.kind,
                FindingKind::H2sHigh
                    | FindingKind::LelHigh
                    | FindingKind::TankHighLevel
                    | FindingKind::PlungerNotArriving
            ) {
                other += 1;
                continue;
            }
            all_n += 1;
            if truth.iter().any(|e| e.well == *well && inside(e, s.ts_ms)) {
                all_tp += 1;
            }
            continue;
        }
        let hit = types.iter().copied().find(|k| {
            truth
                .iter()
                .any(|e| e.kind == *k && e.device == *dev && inside(e, s.ts_ms))
        });
        let ty = name(hit.unwrap_or(types[0]));
        let entry = tp_signals.entry(ty).or_default();
        entry.1 += 1;
        all_n += 1;
        if hit.is_some() {
            entry.0 += 1;
            all_tp += 1;
        }
    }
    let (mut found_all, mut n_all) = (0u64, 0u64);
    for k in FailureKind::ALL {
        let events: Vec<&&FailureEvent> = truth.iter().filter(|e| e.kind == k).collect();
        let mut delays = Vec::new();
        for e in &events {
            let first = signals
                .iter()
                .filter(|(dev, _, s)| {
                    *dev == e.device && types_of(s).contains(&k) && inside(e, s.ts_ms)
                })
                .map(|(_, _, s)| s.ts_ms)
                .min();
            if let Some(ts) = first {
                delays.push((ts - e.start_ms) as f64 / 1000.0);
            } else if std::env::var_os("DETECT_BENCH_VERBOSE").is_some() {
                eprintln!(
                    "missed {} {} {:?} {} min",
                    name(k),
                    e.device,
                    e.tag,
                    (e.end_ms - e.start_ms) / 60_000
                );
            }
        }
        let (tp, n) = tp_signals.get(name(k)).copied().unwrap_or((0, 0));
        let precision = if n == 0 {
            f64::NAN
        } else {
            tp as f64 / n as f64
        };
        let recall = if events.is_empty() {
            f64::NAN
        } else {
            delays.len() as f64 / events.len() as f64
        };
        found_all += delays.len() as u64;
        n_all += events.len() as u64;
        let t = name(k);
        println!("BENCH detect_{t}_failures {} count", events.len());
        println!("BENCH detect_{t}_precision {precision:.3} ratio");
        println!("BENCH detect_{t}_recall {recall:.3} ratio");
        println!("BENCH detect_{t}_delay_p50 {:.0} s", p50(&mut delays));
    }
    println!(
        "BENCH detect_precision {:.3} ratio",
        all_tp as f64 / all_n.max(1) as f64
    );
    println!(
        "BENCH detect_recall {:.3} ratio",
        found_all as f64 / n_all.max(1) as f64
    );
    println!("BENCH detect_findings {all_n} count");
    println!("BENCH detect_process_excursion_findings {other} count");
    println!(
        "BENCH detect_samples_per_s {:.0} samples/s",
        samples_total as f64 / detect_time.as_secs_f64().max(1e-9)
    );
    println!("BENCH detect_state_bytes_max {state_bytes} bytes");
    let model_signals: Vec<_> = signals
        .iter()
        .filter(|(_, _, s)| s.kind == FindingKind::WellAnomaly)
        .collect();
    let model_tp = model_signals
        .iter()
        .filter(|(_, well, s)| truth.iter().any(|e| e.well == *well && inside(e, s.ts_ms)))
        .count();
    println!("BENCH detect_models_trained {models_trained} count");
    println!(
        "BENCH detect_well_anomaly_findings {} count",
        model_signals.len()
    );
    println!(
        "BENCH detect_well_anomaly_precision {:.3} ratio",
        model_tp as f64 / model_signals.len().max(1) as f64
    );
    if std::env::var_os("DETECT_BENCH_VERBOSE").is_some() {
        for (dev, _, s) in &signals {
            let mut hit = truth
                .iter()
                .filter(|e| e.device == *dev && inside(e, s.ts_ms))
                .map(|e| name(e.kind));
            eprintln!(
                "{} {dev} {} {:?} {} [{}] {:?} {}",
                s.ts_ms,
                s.kind.as_str(),
                s.subject,
                s.evidence.detector,
                hit.next().unwrap_or("-"),
                s.evidence.values,
                s.evidence.detail
            );
        }
    }
}
