//! Every failure mode is observable by a Modbus client.

mod common;

use std::time::{Duration, Instant};

use common::*;
use simulator::{Failure, FailureKind, FailureSource, FleetConfig, SimError};
use tokio_modbus::prelude::*;

const SHORT: Duration = Duration::from_millis(800);

#[tokio::test]
async fn silent_device_times_out_then_recovers() {
    let sim = start(config(1, 1, &["gas-detector", "tank-gauge"])).await;
    let gd = endpoint_of(&sim, "gas-detector");
    let tank = endpoint_of(&sim, "tank-gauge");
    let (gd_profile, tank_profile) = (profile(&gd), profile(&tank));
    let h2s = gd_profile.tag("h2s_concentration").unwrap();
    sim.inject(&gd.device, Failure::DeviceSilent, Duration::from_secs(4));
    let mut ctx = connect(gd.addr, gd.unit_id).await;
    assert_eq!(read_tag(&mut ctx, h2s, SHORT).await, Outcome::Timeout);
    // The other device on the same well still answers (fresh connection).
    let mut other = connect(tank.addr, tank.unit_id).await;
    let level = tank_profile.tag("product_level").unwrap();
    assert!(matches!(
        read_tag(&mut other, level, REQUEST_TIMEOUT).await,
        Outcome::Value(_)
    ));
    // After the window the device answers again.
    poll_until(
        Duration::from_secs(30),
        "device to answer again",
        || async {
            let mut ctx = connect(gd.addr, gd.unit_id).await;
            matches!(read_tag(&mut ctx, h2s, SHORT).await, Outcome::Value(_)).then_some(())
        },
    )
    .await;
    sim.shutdown().await;
}

#[tokio::test]
async fn exception_failure_answers_with_its_code() {
    let sim = start(config(1, 1, &["esp-drive"])).await;
    let esp = endpoint_of(&sim, "esp-drive");
    let p = profile(&esp);
    let tag = p.tag("motor_current").unwrap();
    let mut ctx = connect(esp.addr, esp.unit_id).await;
    sim.inject(
        &esp.device,
        Failure::Exception(0x06),
        Duration::from_secs(60),
    );
    assert_eq!(
        read_tag(&mut ctx, tag, REQUEST_TIMEOUT).await,
        Outcome::Exception(ExceptionCode::ServerDeviceBusy)
    );
    sim.inject(
        &esp.device,
        Failure::Exception(0x04),
        Duration::from_secs(60),
    );
    assert!(matches!(
        read_tag(&mut ctx, tag, REQUEST_TIMEOUT).await,
        Outcome::Exception(ExceptionCode::ServerDeviceBusy | ExceptionCode::ServerDeviceFailure)
    ));
    sim.shutdown().await;
}

#[tokio::test]
async fn slow_response_is_delayed_but_correct() {
    let sim = start(config(1, 1, &["tank-gauge"])).await;
    let tank = endpoint_of(&sim, "tank-gauge");
    let p = profile(&tank);
    let tag = p.tag("product_level").unwrap();
    let mut ctx = connect(tank.addr, tank.unit_id).await;
    sim.inject(
        &tank.device,
        Failure::SlowResponse(Duration::from_millis(700)),
        Duration::from_secs(60),
    );
    let started = Instant::now();
    let (value, before, after) = read_timed(&mut ctx, tag).await;
    assert!(started.elapsed() >= Duration::from_millis(700));
    assert!(expected_between(&sim, &tank.device, &tag.name, before, after).contains(&value));
    sim.shutdown().await;
}

#[tokio::test]
async fn frozen_sensor_keeps_its_value() {
    let sim = start(config(2, 1, &["gas-flow-computer"])).await;
    let fc = endpoint_of(&sim, "gas-flow-computer");
    let p = profile(&fc);
    sim.inject(&fc.device, Failure::SensorFrozen, Duration::from_secs(120));
    let event = sim
        .failure_schedule()
        .into_iter()
        .find(|e| e.kind == FailureKind::SensorFrozen)
        .expect("injected event");
    assert_eq!(event.source, FailureSource::Injected);
    let tag = p
        .tag(event.tag.as_deref().expect("frozen tag named"))
        .unwrap();
    let frozen = sim.expected(&fc.device, &tag.name, event.start_ms).unwrap();
    let mut ctx = connect(fc.addr, fc.unit_id).await;
    for _ in 0..3 {
        let (value, _, _) = read_timed(&mut ctx, tag).await;
        assert_eq!(value, frozen, "{} stays frozen", tag.name);
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    sim.shutdown().await;
}

/// A fleet running at 120× so that minutes of process behaviour pass in seconds.
fn fast(devices: &[&str]) -> FleetConfig {
    FleetConfig {
        time_scale: 120.0,
        ..config(7, 1, devices)
    }
}

#[tokio::test]
async fn rod_part_collapses_loads_and_trips_the_controller() {
    let sim = start(fast(&["rod-pump-controller", "gas-flow-computer"])).await;
    let rpc = endpoint_of(&sim, "rod-pump-controller");
    let p = profile(&rpc);
    let mut ctx = connect(rpc.addr, rpc.unit_id).await;
    let peak = tag_for(&p, "rod_load_peak_lbf");
    let state = tag_for(&p, "pump_state");
    let low_alarm = tag_for(&p, "rod_load_low_alarm");
    let (before, _, _) = read_timed(&mut ctx, peak).await;
    sim.inject(&rpc.device, Failure::RodPart, Duration::from_secs(60));
    let (during, _, _) = read_timed(&mut ctx, peak).await;
    assert!(
        eng(peak, &during) < 0.8 * eng(peak, &before),
        "{before:?} -> {during:?}"
    );
    assert_eq!(
        read_timed(&mut ctx, low_alarm).await.0,
        firmware_profiles::RawValue::Bool(true)
    );
    // The controller trips after 10 simulated minutes (5 s at 120x).
    wait_for_value(
        &mut ctx,
        state,
        Duration::from_secs(30),
        "pump state 3",
        |v| v == 3.0,
    )
    .await;
    sim.shutdown().await;
}

#[tokio::test]
async fn pump_off_drops_fillage_and_idles_the_pump() {
    let sim = start(fast(&["rod-pump-controller"])).await;
    let rpc = endpoint_of(&sim, "rod-pump-controller");
    let p = profile(&rpc);
    let mut ctx = connect(rpc.addr, rpc.unit_id).await;
    let fillage = tag_for(&p, "pump_fillage_pct");
    let state = tag_for(&p, "pump_state");
    sim.inject(&rpc.device, Failure::PumpOff, Duration::from_secs(60));
    let (f, _, _) = read_timed(&mut ctx, fillage).await;
    assert!(eng(fillage, &f) < 75.0, "fillage {f:?}");
    // Idle (state 2) after 18 simulated minutes of running (9 s at 120x).
    wait_for_value(
        &mut ctx,
        state,
        Duration::from_secs(40),
        "pump state 2",
        |v| v == 2.0,
    )
    .await;
    sim.shutdown().await;
}

#[tokio::test]
async fn gas_lock_drops_esp_current_and_raises_intake_pressure() {
    let sim = start(fast(&["esp-drive"])).await;
    let esp = endpoint_of(&sim, "esp-drive");
    let p = profile(&esp);
    let mut ctx = connect(esp.addr, esp.unit_id).await;
    let current = tag_for(&p, "motor_current_a");
    let pip = tag_for(&p, "pump_intake_pressure_psi");
    let underload = tag_for(&p, "underload_alarm");
    let i0 = eng(current, &read_timed(&mut ctx, current).await.0);
    let pip0 = eng(pip, &read_timed(&mut ctx, pip).await.0);
    sim.inject(&esp.device, Failure::GasLock, Duration::from_secs(120));
    let i1 = eng(current, &read_timed(&mut ctx, current).await.0);
    // Gas lock: 32 % ± 12 % of nameplate against at least 58 % when pumping.
    assert!(i1 < 0.8 * i0, "current {i0} -> {i1}");
    assert_eq!(
        eng(underload, &read_timed(&mut ctx, underload).await.0),
        1.0
    );
    wait_for_value(
        &mut ctx,
        pip,
        Duration::from_secs(40),
        "intake pressure to rise",
        |v| v > pip0 + 50.0,
    )
    .await;
    sim.shutdown().await;
}

#[tokio::test]
async fn injecting_into_unknown_or_unsuitable_devices_is_refused() {
    let sim = start(config(1, 1, &["tank-gauge"])).await;
    let tank = endpoint_of(&sim, "tank-gauge");
    let err = sim
        .try_inject(
            "no-such-device",
            Failure::DeviceSilent,
            Duration::from_secs(1),
        )
        .unwrap_err();
    assert!(matches!(err, SimError::UnknownDevice { .. }), "{err}");
    let err = sim
        .try_inject(&tank.device, Failure::RodPart, Duration::from_secs(1))
        .unwrap_err();
    assert!(matches!(err, SimError::NotApplicable { .. }), "{err}");
    assert!(sim.failure_schedule().is_empty());
    sim.shutdown().await;
}
