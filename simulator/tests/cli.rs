//! The `wellpulse-simulator` binary: config + flags, endpoint list and JSON, schedule export
//! (round trip against the library), clear errors.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::*;
use simulator::{Endpoint, FleetConfig, ScheduleFile};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const CONFIG: &str = r#"
seed = 9
wells = 3
devices_per_well = ["rod-pump-controller|esp-drive|plunger-lift-controller", "gas-flow-computer"]
clock_origin = "2026-11-01T00:00:00Z"
[failures]
rate_per_day = 3.0
horizon = "2days"
"#;

/// The binary with stdout and stderr discarded (see [`first_stdout_line`] for stdout).
fn binary() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wellpulse-simulator"));
    cmd.stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    cmd
}

async fn wait_for_file(path: &Path) -> String {
    poll_until(Duration::from_secs(60), "output file", || async {
        let text = tokio::fs::read_to_string(path).await.ok()?;
        // Written in one call; an empty read means the write has not landed yet.
        (!text.is_empty()).then_some(text)
    })
    .await
}

/// The first line the child prints; the rest of its stdout keeps being drained so the
/// child never writes into a closed or full pipe.
async fn first_stdout_line(child: &mut Child) -> String {
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let mut lines = BufReader::new(stdout).lines();
        let first = lines.next_line().await.ok().flatten().unwrap_or_default();
        let _ = tx.send(first);
        while let Ok(Some(_)) = lines.next_line().await {}
    });
    tokio::time::timeout(Duration::from_secs(60), rx)
        .await
        .expect("endpoint table in time")
        .expect("stdout reader alive")
}

#[tokio::test]
async fn cli_exports_the_same_schedule_and_serves_the_same_values_as_the_library() {
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("fleet.toml");
    std::fs::write(&config_path, CONFIG).unwrap();
    let schedule_path = dir.path().join("schedule.json");
    let endpoints_path = dir.path().join("endpoints.json");
    let mut child = binary()
        .stdout(Stdio::piped())
        .arg("--config")
        .arg(&config_path)
        .arg("--export-schedule")
        .arg(&schedule_path)
        .arg("--endpoints-json")
        .arg(&endpoints_path)
        .spawn()
        .expect("binary starts");
    let header = first_stdout_line(&mut child).await;
    assert!(
        header.starts_with("WELL") && header.contains("UNIT"),
        "{header}"
    );

    let exported = ScheduleFile::from_json(&wait_for_file(&schedule_path).await).unwrap();
    let endpoints: Vec<Endpoint> =
        serde_json::from_str(&wait_for_file(&endpoints_path).await).unwrap();
    assert_eq!(endpoints.len(), 6);

    // The library with the same config produces the same ground truth.
    let lib = start(FleetConfig::load(&config_path).unwrap()).await;
    assert_eq!(exported, lib.schedule_file());
    assert!(!exported.events.is_empty());
    assert!(exported.events.iter().all(|e| e.end_ms > e.start_ms));
    // Round trip through JSON text.
    assert_eq!(
        ScheduleFile::from_json(&exported.to_json()).unwrap(),
        exported
    );

    // Same seed, same second: the binary serves what the library expects.
    let e = endpoints
        .iter()
        .find(|e| e.profile == "gas-flow-computer")
        .unwrap();
    let p = profile(e);
    let tag = tag_for(&p, "gas_volume_total_mcf");
    let mut ctx = connect(e.addr, e.unit_id).await;
    let (value, before, after) = read_timed(&mut ctx, tag).await;
    assert!(expected_between(&lib, &e.device, &tag.name, before, after).contains(&value));

    child.kill().await.unwrap();
    lib.shutdown().await;
}

#[tokio::test]
async fn flags_override_the_config() {
    let dir = tempfile::tempdir().unwrap();
    let endpoints_path: PathBuf = dir.path().join("endpoints.json");
    let mut child = binary()
        .args([
            "--wells",
            "2",
            "--seed",
            "4",
            "--time-scale",
            "10",
            "--bind",
            "127.0.0.1",
        ])
        .arg("--endpoints-json")
        .arg(&endpoints_path)
        .spawn()
        .unwrap();
    let endpoints: Vec<Endpoint> =
        serde_json::from_str(&wait_for_file(&endpoints_path).await).unwrap();
    // Default devices: rod pump, flow computer, tank gauge, gas detector.
    assert_eq!(endpoints.len(), 8);
    assert!(endpoints.iter().all(|e| e.addr.ip() == LOCALHOST));
    assert_eq!(endpoints[7].device, "well-002-gas-detector");
    child.kill().await.unwrap();
}

#[tokio::test]
async fn bad_config_fails_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("bad.toml");
    std::fs::write(
        &config_path,
        "wells = 2\ndevices_per_well = [\"no-such-profile\"]\n",
    )
    .unwrap();
    let out = binary()
        .stderr(Stdio::piped())
        .arg("--config")
        .arg(&config_path)
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("unknown firmware profile \"no-such-profile\""),
        "{stderr}"
    );
    let out = binary()
        .stderr(Stdio::piped())
        .arg("--time-scale=0")
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("time_scale"));
}
