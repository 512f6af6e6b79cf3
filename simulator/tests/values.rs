//! Over real sockets: every tag of every shipped profile reads back exactly what
//! `expected()` says, and the server behaves like a Modbus device (holes, exceptions,
//! unit ids, function codes).

mod common;

use common::*;
use firmware_profiles::RawValue;
use tokio_modbus::prelude::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_tag_of_every_shipped_profile_matches_expected() {
    let profiles = all_profiles();
    assert_eq!(profiles.len(), 7, "seven shipped profiles");
    // Two wells with every profile; the second well's lift is the plunger (own pressures).
    let mut devices: Vec<&str> = profiles.iter().map(String::as_str).collect();
    let sim = start(config(17, 1, &devices)).await;
    devices.sort_by_key(|d| *d != "plunger-lift-controller");
    let plunger_first = start(config(18, 1, &devices)).await;
    let mut checked = 0;
    for sim in [&sim, &plunger_first] {
        for endpoint in sim.endpoints() {
            let profile = profile(&endpoint);
            let mut ctx = connect(endpoint.addr, endpoint.unit_id).await;
            for tag in &profile.tags {
                let (value, before, after) = read_timed(&mut ctx, tag).await;
                let allowed = expected_between(sim, &endpoint.device, &tag.name, before, after);
                assert!(
                    allowed.contains(&value),
                    "{} {}: read {value:?}, expected one of {allowed:?}",
                    endpoint.device,
                    tag.name
                );
                if let RawValue::Text(text) = &value {
                    assert!(!text.is_empty(), "{} has text", tag.name);
                }
                checked += 1;
            }
        }
    }
    assert!(checked > 200, "{checked} tags checked");
    sim.shutdown().await;
    plunger_first.shutdown().await;
}

#[tokio::test]
async fn coalesced_reads_bridge_declared_gaps_and_match_single_reads() {
    let sim = start(config(5, 1, &["gas-detector"])).await;
    let endpoint = endpoint_of(&sim, "gas-detector");
    let profile = profile(&endpoint);
    let mut ctx = connect(endpoint.addr, endpoint.unit_id).await;
    // Input registers 0..=11 with holes at 8..=9 (max_gap 4 allows them).
    let regs = ctx.read_input_registers(0, 12).await.unwrap().unwrap();
    assert_eq!(regs.len(), 12);
    assert_eq!(regs[8..10], [0, 0], "holes read as zero");
    let battery = profile.tag("battery_voltage").unwrap();
    let raw = battery.decode(&regs[4..5]).unwrap();
    let v = eng(battery, &raw);
    assert!((10.0..16.0).contains(&v), "battery {v}");
    sim.shutdown().await;
}

#[tokio::test]
async fn protocol_errors_answer_with_the_right_exception_codes() {
    let sim = start(config(5, 1, &["gas-detector", "tank-gauge"])).await;
    let gd = endpoint_of(&sim, "gas-detector");
    let mut ctx = connect(gd.addr, gd.unit_id).await;
    // Unmapped address.
    let err = ctx
        .read_holding_registers(5000, 1)
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(err, ExceptionCode::IllegalDataAddress);
    // Range running past the last register (input 11) into nothing.
    let err = ctx.read_input_registers(10, 4).await.unwrap().unwrap_err();
    assert_eq!(err, ExceptionCode::IllegalDataAddress);
    // More than the device accepts (max 32 registers).
    let err = ctx.read_input_registers(0, 40).await.unwrap().unwrap_err();
    assert_eq!(err, ExceptionCode::IllegalDataValue);
    // Unsupported function (FC 23, read/write multiple registers).
    let err = ctx
        .read_write_multiple_registers(0, 1, 100, &[50])
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(err, ExceptionCode::IllegalFunction);
    // A raw custom function code.
    let err = ctx
        .call(Request::Custom(0x41, vec![0, 0].into()))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(err, ExceptionCode::IllegalFunction);
    // Unknown unit id behind the well's listener: gateway target failed to respond.
    ctx.set_slave(Slave(99));
    let err = ctx.read_input_registers(0, 1).await.unwrap().unwrap_err();
    assert_eq!(err, ExceptionCode::GatewayTargetDevice);
    // Unit 255 addresses the first device.
    ctx.set_slave(Slave(255));
    assert!(ctx.read_input_registers(0, 2).await.unwrap().is_ok());
    // The tank gauge (max_gap 0) refuses to read across the hole after holding 100.
    let tank = endpoint_of(&sim, "tank-gauge");
    ctx.set_slave(Slave(tank.unit_id));
    assert!(ctx.read_holding_registers(100, 1).await.unwrap().is_ok());
    let err = ctx
        .read_holding_registers(100, 2)
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(err, ExceptionCode::IllegalDataAddress);
    sim.shutdown().await;
}

#[tokio::test]
async fn devices_of_one_well_share_a_listener_and_differ_by_unit_id() {
    let sim = start(config(3, 2, &["rod-pump-controller", "gas-flow-computer"])).await;
    let endpoints = sim.endpoints();
    assert_eq!(endpoints.len(), 4);
    assert_eq!(endpoints[0].addr, endpoints[1].addr);
    assert_ne!(endpoints[0].addr, endpoints[2].addr);
    assert_eq!(
        endpoints.iter().map(|e| e.unit_id).collect::<Vec<_>>(),
        [1, 2, 1, 2]
    );
    assert_eq!(endpoints[0].device, "well-001-rod-pump-controller");
    assert_eq!(endpoints[3].well, "well-002");
    sim.shutdown().await;
}

#[tokio::test]
async fn base_port_gives_consecutive_ports_and_conflicts_are_reported() {
    // Find two free consecutive ports (retry: another process may grab one meanwhile).
    for _ in 0..20 {
        let probe = std::net::TcpListener::bind((LOCALHOST, 0)).unwrap();
        let base = probe.local_addr().unwrap().port();
        drop(probe);
        if base == u16::MAX {
            continue;
        }
        let cfg = simulator::FleetConfig {
            base_port: base,
            ..config(1, 2, &["tank-gauge"])
        };
        let Ok(sim) = simulator::Simulator::start(cfg.clone(), LOCALHOST).await else {
            continue;
        };
        let ports: Vec<u16> = sim.endpoints().iter().map(|e| e.addr.port()).collect();
        assert_eq!(ports, [base, base + 1]);
        // A second fleet on the same ports fails with a clear error.
        let err = simulator::Simulator::start(cfg, LOCALHOST)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("cannot listen on"), "{err}");
        sim.shutdown().await;
        return;
    }
    panic!("no two free consecutive ports found");
}
