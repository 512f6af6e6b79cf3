//! Modbus RTU over a virtual serial pair made by `socat`: the simulator serves one device
//! on one end, tokio-modbus's RTU client reads it on the other.

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::*;
use tokio::process::Command;
use tokio_modbus::prelude::*;

#[tokio::test]
async fn rtu_client_reads_the_same_registers_as_expected() {
    let dir = tempfile::tempdir().unwrap();
    let (server_end, client_end) = (dir.path().join("sim"), dir.path().join("client"));
    let mut socat = Command::new("socat")
        .arg("-d")
        .arg("-d")
        .arg(format!("pty,raw,echo=0,link={}", server_end.display()))
        .arg(format!("pty,raw,echo=0,link={}", client_end.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("socat is installed");
    for path in [&server_end, &client_end] {
        poll_until(Duration::from_secs(30), "socat pty links", || async {
            Path::new(path).exists().then_some(())
        })
        .await;
    }

    let sim = start(config(12, 1, &["gas-detector", "rod-pump-controller"])).await;
    let rpc = endpoint_of(&sim, "rod-pump-controller");
    sim.serve_rtu(&rpc.device, &server_end)
        .await
        .expect("serial port opens");
    let p = profile(&rpc);

    let port = tokio_serial::SerialStream::open(&tokio_serial::new(
        client_end.to_string_lossy(),
        p.transport.baud_rate,
    ))
    .expect("client end opens");
    let mut ctx = tokio_modbus::client::rtu::attach_slave(port, Slave(rpc.unit_id));
    for metric in [
        "stroke_count_total",
        "pump_fillage_pct",
        "rod_load_peak_lbf",
    ] {
        let tag = tag_for(&p, metric);
        let (value, before, after) = read_timed(&mut ctx, tag).await;
        assert!(
            expected_between(&sim, &rpc.device, &tag.name, before, after).contains(&value),
            "{metric}: {value:?}"
        );
    }
    // A string tag and a coil over RTU as well.
    let serial = p.tag("serial_number").unwrap();
    let (text, _, _) = read_timed(&mut ctx, serial).await;
    assert_eq!(
        Some(text),
        sim.expected(&rpc.device, "serial_number", simulator::now_ms())
    );
    let run = tag_for(&p, "pump_run_command");
    assert_eq!(
        read_timed(&mut ctx, run).await.0,
        firmware_profiles::RawValue::Bool(true)
    );

    // Requests for another unit id on the bus get no answer (another slave's business).
    ctx.set_slave(Slave(rpc.unit_id + 10));
    let other =
        tokio::time::timeout(Duration::from_millis(500), ctx.read_holding_registers(0, 1)).await;
    assert!(other.is_err(), "no response for a foreign unit id");

    sim.shutdown().await;
    socat.kill().await.unwrap();
}
