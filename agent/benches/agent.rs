//! Agent footprint benchmark: the real `wellpulse-agent` binary (release build) polls 10
//! simulated rod-pump controllers (40 tags each, every tag every second) for 60 s and
//! ships to an embedded rumqttd, where a subscriber acks every batch like the cloud does.
//!
//! Measured on the agent process only (`/proc/PID`): CPU as % of one core over the
//! measurement window (utime + stime), peak RSS, and on the received batches the encoded
//! bytes per sample. Prints `BENCH <name> <value> <unit>` lines.
//!
//! `WP_BENCH_SECS` overrides the 60 s window (e.g. for a quick check).

#[path = "../tests/agent_common/mod.rs"]
mod agent_common;

use std::net::{IpAddr, Ipv4Addr};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use agent_common::{Cloud, Received, start_broker};
use simulator::{FleetConfig, Simulator};

const DEVICES: usize = 10;
const WARMUP: Duration = Duration::from_secs(10);

fn main() {
    let secs: u64 = std::env::var("WP_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(bench(Duration::from_secs(secs)));
}

async fn bench(window: Duration) {
    let broker = start_broker();
    let fleet = FleetConfig {
        seed: 2026,
        wells: DEVICES,
        devices_per_well: vec!["rod-pump-controller".into()],
        ..FleetConfig::default()
    };
    let sim = Simulator::start(fleet, IpAddr::V4(Ipv4Addr::LOCALHOST))
        .await
        .expect("simulator");
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = format!(
        "[gateway]\ntenant = \"bench\"\nid = \"gw-bench\"\ndata_dir = \"state\"\n\n\
         [mqtt]\nurl = \"mqtt://127.0.0.1:{broker}\"\n{}\n\
         [metrics]\nlisten = \"127.0.0.1:{}\"\n\n",
        agent_common::mqtt_credentials(),
        agent_common::free_port()
    );
    let mut tags = 0;
    for e in sim.endpoints() {
        let profile = firmware_profiles::builtin_profile(&e.profile).expect("profile");
        tags += profile.tags.iter().filter(|t| t.metric.is_some()).count();
        config.push_str(&format!(
            "[[device]]\nname = \"{}\"\nprofile = \"{}\"\ntcp = \"{}\"\nunit_id = {}\npoll = {{ fast = \"1s\", slow = \"1s\" }}\n\n",
            e.device, e.profile, e.addr, e.unit_id
        ));
    }
    let config_path = dir.path().join("agent.toml");
    std::fs::write(&config_path, config).expect("write config");
    let mut cloud = Cloud::start(broker, "bench", "gw-bench").await;

    let mut child = Command::new(env!("CARGO_BIN_EXE_wellpulse-agent"))
        .arg("run")
        .arg("--config")
        .arg(&config_path)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("start wellpulse-agent");
    let pid = child.id();

    drain_for(&mut cloud, WARMUP).await;
    let ticks_before = cpu_ticks(pid);
    let started = Instant::now();
    let mut peak_rss_kb = 0;
    let (mut bytes, mut samples, mut batches) = (0usize, 0usize, 0usize);
    let mut next_probe = Instant::now();
    while started.elapsed() < window {
        if Instant::now() >= next_probe {
            peak_rss_kb = peak_rss_kb.max(rss_kb(pid));
            next_probe += Duration::from_secs(1);
        }
        if let Some(Received::Batch(batch, len)) = cloud.next(Duration::from_millis(200)).await {
            bytes += len;
            samples += batch.sample_count();
            batches += 1;
        }
    }
    let cpu_secs = (cpu_ticks(pid) - ticks_before) as f64 / clock_ticks_per_sec();
    let wall = started.elapsed().as_secs_f64();

    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status();
    let status = child.wait().expect("agent exit");
    sim.shutdown().await;

    println!(
        "# {DEVICES} devices, {tags} tags polled every 1 s, {wall:.0} s window: {batches} batches, {samples} samples received; agent exit {status}"
    );
    println!("BENCH agent_cpu_pct {:.3} %", cpu_secs / wall * 100.0);
    println!("BENCH agent_rss_mb {:.2} MB", peak_rss_kb as f64 / 1024.0);
    println!(
        "BENCH wire_bytes_per_sample {:.2} bytes",
        bytes as f64 / samples.max(1) as f64
    );
    println!(
        "BENCH agent_samples_per_s {:.1} samples/s",
        samples as f64 / wall
    );
}

async fn drain_for(cloud: &mut Cloud, d: Duration) {
    let end = Instant::now() + d;
    while Instant::now() < end {
        let _ = cloud.next(Duration::from_millis(200)).await;
    }
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("agent is running");
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')').expect("stat format") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn clock_ticks_per_sec() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}
