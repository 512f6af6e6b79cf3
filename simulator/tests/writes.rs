//! Writes (FC 5, 6, 15, 16) change the model like a real controller's setpoints would;
//! read-only, partial and out-of-range writes are refused with exceptions.

mod common;

use std::time::Duration;

use common::*;
use firmware_profiles::RawValue;
use tokio_modbus::prelude::*;

#[tokio::test]
async fn speed_setpoint_changes_the_pumping_speed() {
    let sim = start(config(3, 1, &["rod-pump-controller"])).await;
    let rpc = endpoint_of(&sim, "rod-pump-controller");
    let p = profile(&rpc);
    let mut ctx = connect(rpc.addr, rpc.unit_id).await;
    let setpoint = tag_for(&p, "strokes_per_minute_setpoint");
    let spm = tag_for(&p, "strokes_per_minute");
    let words = setpoint
        .encode(&setpoint.from_engineering(11.5).unwrap())
        .unwrap();
    ctx.write_single_register(setpoint.address, words[0])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(eng(setpoint, &read_timed(&mut ctx, setpoint).await.0), 11.5);
    let v = eng(spm, &read_timed(&mut ctx, spm).await.0);
    assert!((v - 11.5).abs() < 0.2, "speed follows the setpoint: {v}");
    // The model state moved too: expected() agrees.
    let now = simulator::now_ms();
    assert_eq!(
        sim.expected(&rpc.device, &setpoint.name, now),
        Some(RawValue::Int(115))
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn run_command_coil_stops_and_starts_the_pump() {
    let sim = start(config(3, 1, &["rod-pump-controller"])).await;
    let rpc = endpoint_of(&sim, "rod-pump-controller");
    let p = profile(&rpc);
    let mut ctx = connect(rpc.addr, rpc.unit_id).await;
    let run = tag_for(&p, "pump_run_command");
    let state = tag_for(&p, "pump_state");
    let running = tag_for(&p, "motor_running");
    ctx.write_single_coil(run.address, false)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(eng(state, &read_timed(&mut ctx, state).await.0), 0.0);
    assert_eq!(read_timed(&mut ctx, running).await.0, RawValue::Bool(false));
    ctx.write_multiple_coils(run.address, &[true])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(eng(state, &read_timed(&mut ctx, state).await.0), 1.0);
    sim.shutdown().await;
}

#[tokio::test]
async fn float_setpoint_written_with_fc16_drives_the_esp() {
    let sim = start(config(4, 1, &["esp-drive"])).await;
    let esp = endpoint_of(&sim, "esp-drive");
    let p = profile(&esp);
    let mut ctx = connect(esp.addr, esp.unit_id).await;
    let setpoint = tag_for(&p, "motor_frequency_setpoint_hz");
    let hz = tag_for(&p, "motor_frequency_hz");
    let words = setpoint.encode(&RawValue::Float(42.0)).unwrap();
    ctx.write_multiple_registers(setpoint.address, &words)
        .await
        .unwrap()
        .unwrap();
    let v = wait_for_value(&mut ctx, hz, Duration::from_secs(10), "42 Hz", |v| {
        (v - 42.0).abs() < 0.2
    })
    .await;
    assert!((v - 42.0).abs() < 0.2);
    // Half of a float: refused.
    let err = ctx
        .write_single_register(setpoint.address, words[0])
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(err, ExceptionCode::IllegalDataValue);
    // Outside the valid range (30..70 Hz): refused, nothing changes.
    let words = setpoint.encode(&RawValue::Float(95.0)).unwrap();
    let err = ctx
        .write_multiple_registers(setpoint.address, &words)
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(err, ExceptionCode::IllegalDataValue);
    assert_eq!(eng(setpoint, &read_timed(&mut ctx, setpoint).await.0), 42.0);
    sim.shutdown().await;
}

#[tokio::test]
async fn read_only_and_unmapped_writes_are_refused() {
    let sim = start(config(4, 1, &["esp-drive", "tank-gauge"])).await;
    let esp = endpoint_of(&sim, "esp-drive");
    let p = profile(&esp);
    let mut ctx = connect(esp.addr, esp.unit_id).await;
    // Firmware string (read-only holding registers).
    let firmware = p.tag("drive_firmware").unwrap();
    let err = ctx
        .write_single_register(firmware.address, 0x4142)
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(err, ExceptionCode::IllegalDataAddress);
    // Unmapped holding register and coil.
    let err = ctx
        .write_single_register(4000, 1)
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(err, ExceptionCode::IllegalDataAddress);
    let err = ctx.write_single_coil(40, true).await.unwrap().unwrap_err();
    assert_eq!(err, ExceptionCode::IllegalDataAddress);
    // A multi-register write that runs off the writable block is refused as a whole.
    let underload = tag_for(&p, "underload_setpoint_pct");
    let before = read_timed(&mut ctx, underload).await.0;
    let err = ctx
        .write_multiple_registers(underload.address, &[40, 100, 7])
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(err, ExceptionCode::IllegalDataAddress);
    assert_eq!(read_timed(&mut ctx, underload).await.0, before);
    sim.shutdown().await;
}

#[tokio::test]
async fn lowering_the_alarm_setpoint_and_closing_the_shut_in_valve_take_effect() {
    let sim = start(config(6, 1, &["gas-flow-computer", "gas-detector"])).await;
    let fc = endpoint_of(&sim, "gas-flow-computer");
    let pfc = profile(&fc);
    let mut ctx = connect(fc.addr, fc.unit_id).await;
    let valve = tag_for(&pfc, "valve_open");
    let rate = tag_for(&pfc, "gas_rate_mcfd");
    assert!(eng(rate, &read_timed(&mut ctx, rate).await.0) > 0.0);
    ctx.write_single_coil(valve.address, false)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(eng(rate, &read_timed(&mut ctx, rate).await.0), 0.0);

    let gd = endpoint_of(&sim, "gas-detector");
    let pgd = profile(&gd);
    ctx.set_slave(Slave(gd.unit_id));
    let low = tag_for(&pgd, "h2s_alarm_low_setpoint_ppm");
    let alarm = tag_for(&pgd, "h2s_alarm_low");
    let words = low.encode(&low.from_engineering(1.0).unwrap()).unwrap();
    ctx.write_single_register(low.address, words[0])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(eng(low, &read_timed(&mut ctx, low).await.0), 1.0);
    // Whether the baseline now alarms depends on the site; the alarm bit follows the model.
    let (value, before, after) = read_timed(&mut ctx, alarm).await;
    assert!(expected_between(&sim, &gd.device, &alarm.name, before, after).contains(&value));
    sim.shutdown().await;
}
