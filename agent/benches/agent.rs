//! Agent footprint benchmark: the real `wellpulse-agent` binary (release build) polls 10
//! simulated rod-pump controllers (40 tags each, every tag every second) for 60 s and
//! ships to an embedded rumqttd, where a subscriber acks every batch like the cloud does.
//! Then a small deadbanded wellsite (rod-pump controller, gas flow computer, tank gauge,
//! gas detector at the example config's poll intervals) for 130 s after a 65 s warm-up:
//! bytes per transmitted sample and live latency with the shipped batching defaults.
//! `…_before` lines price the same received samples as the agent before batch version 2
//! sent them (a batch per poll cycle, version-1 frames, same header, status and seal).
//!
//! Measured on the agent process only (`/proc/PID`): CPU as % of one core over the
//! measurement window (utime + stime), peak RSS, and on the received batches the encoded
//! bytes per sample. Prints `BENCH <name> <value> <unit>` lines.
//!
//! `WP_BENCH_SECS` overrides the 60 s window (e.g. for a quick check),
//! `WP_BENCH_SMALL_SECS` the small site's 130 s; `WP_BENCH_DUMP=<file>` writes the small
//! site's batches as JSON lines.

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
    let small_secs: u64 = std::env::var("WP_BENCH_SMALL_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(130);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        bench(Duration::from_secs(secs)).await;
        small_site(Duration::from_secs(small_secs)).await;
    });
}

/// What one run of the agent binary against a simulated site gave.
struct Run {
    /// Received batches with their size on the wire (sealed).
    batches: Vec<(wire::Batch, usize)>,
    /// Per received sample: wall-clock ms from its poll to the batch's arrival.
    latencies_ms: Vec<i64>,
    /// CPU seconds of the agent process over the window.
    cpu_secs: f64,
    /// Peak resident set size, kB.
    peak_rss_kb: u64,
    /// Length of the measurement window, s.
    wall: f64,
    /// Numeric tags configured.
    tags: usize,
}

/// Starts a simulator with one well per entry of `wells` (each well's devices are the
/// profiles listed, with their poll intervals), runs the real `wellpulse-agent` on it for
/// `warmup + window` and collects what it sends during `window`.
async fn run_site(
    wells: usize,
    devices: &[(&str, &str)],
    extra: &str,
    warmup: Duration,
    window: Duration,
) -> Run {
    let broker = start_broker();
    let fleet = FleetConfig {
        seed: 2026,
        wells,
        devices_per_well: devices.iter().map(|(p, _)| (*p).to_owned()).collect(),
        ..FleetConfig::default()
    };
    let sim = Simulator::start(fleet, IpAddr::V4(Ipv4Addr::LOCALHOST))
        .await
        .expect("simulator");
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = format!(
        "[gateway]\ntenant = \"bench\"\nid = \"gw-bench\"\ndata_dir = \"state\"\n\n\
         [mqtt]\nurl = \"mqtt://127.0.0.1:{broker}\"\n{}\n{extra}\n\
         [metrics]\nlisten = \"127.0.0.1:{}\"\n\n",
        agent_common::mqtt_credentials(),
        agent_common::free_port()
    );
    let mut tags = 0;
    for e in sim.endpoints() {
        let profile = firmware_profiles::builtin_profile(&e.profile).expect("profile");
        tags += profile.tags.iter().filter(|t| t.metric.is_some()).count();
        let poll = devices
            .iter()
            .find(|(p, _)| *p == e.profile)
            .map(|(_, poll)| *poll)
            .expect("poll intervals of the profile");
        config.push_str(&format!(
            "[[device]]\nname = \"{}\"\nprofile = \"{}\"\ntcp = \"{}\"\nunit_id = {}\npoll = {{ {poll} }}\n\n",
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

    drain_for(&mut cloud, warmup).await;
    let ticks_before = cpu_ticks(pid);
    let started = Instant::now();
    let mut peak_rss_kb = 0;
    let mut batches = Vec::new();
    let mut latencies_ms = Vec::new();
    let mut next_probe = Instant::now();
    while started.elapsed() < window {
        if Instant::now() >= next_probe {
            peak_rss_kb = peak_rss_kb.max(rss_kb(pid));
            next_probe += Duration::from_secs(1);
        }
        if let Some(Received::Batch(batch, len)) = cloud.next(Duration::from_millis(200)).await {
            let now_ms = wall_ms();
            for f in &batch.frames {
                latencies_ms.extend(f.samples.iter().map(|_| now_ms - f.ts_ms));
            }
            batches.push((batch, len));
        }
    }
    let cpu_secs = (cpu_ticks(pid) - ticks_before) as f64 / clock_ticks_per_sec();
    let wall = started.elapsed().as_secs_f64();

    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status();
    let status = child.wait().expect("agent exit");
    assert!(status.success(), "agent exit {status}");
    sim.shutdown().await;
    Run {
        batches,
        latencies_ms,
        cpu_secs,
        peak_rss_kb,
        wall,
        tags,
    }
}

async fn bench(window: Duration) {
    let devices = [("rod-pump-controller", "fast = \"1s\", slow = \"1s\"")];
    let run = run_site(DEVICES, &devices, "", WARMUP, window).await;
    let bytes: usize = run.batches.iter().map(|(_, len)| len).sum();
    let samples: usize = run.batches.iter().map(|(b, _)| b.sample_count()).sum();
    let wall = run.wall;
    println!(
        "# {DEVICES} devices, {} tags polled every 1 s, {wall:.0} s window: {} batches, {samples} samples received",
        run.tags,
        run.batches.len()
    );
    println!("BENCH agent_cpu_pct {:.3} %", run.cpu_secs / wall * 100.0);
    println!(
        "BENCH agent_rss_mb {:.2} MB",
        run.peak_rss_kb as f64 / 1024.0
    );
    let before = as_before(&run.batches);
    println!(
        "BENCH wire_bytes_per_sample_before {:.2} bytes",
        before.0 as f64 / samples.max(1) as f64
    );
    println!(
        "BENCH wire_bytes_per_sample {:.2} bytes",
        bytes as f64 / samples.max(1) as f64
    );
    println!(
        "BENCH agent_samples_per_s {:.1} samples/s",
        samples as f64 / wall
    );
}

/// The small wellsite of `wire_bytes_per_transmitted_sample_small_site`: one well with a
/// rod-pump controller, a gas flow computer, a tank gauge and a gas detector, polled at the
/// intervals of the shipped example `agent.toml` (fast 1 s, tank gauge 5 s; slow 60 s),
/// each tag reported by exception with its profile's deadband and the default 60 s
/// heartbeat.
const SMALL_SITE: [(&str, &str); 4] = [
    ("rod-pump-controller", "fast = \"1s\", slow = \"60s\""),
    ("gas-flow-computer", "fast = \"1s\", slow = \"60s\""),
    ("tank-gauge", "fast = \"5s\", slow = \"60s\""),
    ("gas-detector", "fast = \"1s\", slow = \"60s\""),
];

/// Bytes per transmitted sample of the small wellsite ([`SMALL_SITE`]), with the agent's
/// shipped batching defaults; next to it, the same samples as the agent before batch
/// version 2 sent them (one batch per poll cycle, version-1 frames), and the live latency.
async fn small_site(window: Duration) {
    // The warm-up outlasts one heartbeat, so the window sees the steady state.
    let run = run_site(1, &SMALL_SITE, "", Duration::from_secs(65), window).await;
    let bytes: usize = run.batches.iter().map(|(_, len)| len).sum();
    let samples: usize = run.batches.iter().map(|(b, _)| b.sample_count()).sum();
    let before = as_before(&run.batches);
    let frames: usize = run.batches.iter().map(|(b, _)| b.frames.len()).sum();
    println!(
        "# small site: 4 devices, {} tags, deadbands, {:.0} s window: {} batches, {frames} frames, {samples} samples received ({:.1} samples/s)",
        run.tags,
        run.wall,
        run.batches.len(),
        samples as f64 / run.wall
    );
    breakdown(&run.batches);
    if let Some(path) = std::env::var_os("WP_BENCH_DUMP") {
        dump(&run.batches, std::path::Path::new(&path));
    }
    println!(
        "# before (main: a batch per poll cycle, version-1 frames): {} batches",
        before.1
    );
    println!(
        "BENCH wire_bytes_per_transmitted_sample_small_site_before {:.2} bytes",
        before.0 as f64 / samples.max(1) as f64
    );
    println!(
        "BENCH wire_bytes_per_transmitted_sample_small_site {:.2} bytes",
        bytes as f64 / samples.max(1) as f64
    );
    let mut lat = run.latencies_ms.clone();
    lat.sort_unstable();
    let at = |q: f64| {
        lat.get(((lat.len() as f64 - 1.0) * q) as usize)
            .copied()
            .unwrap_or(0)
    };
    println!("BENCH small_site_live_latency_p50 {} ms", at(0.5));
    println!("BENCH small_site_live_latency_max {} ms", at(1.0));
}

/// Wall-clock ms since the Unix epoch (frame timestamps are on the same clock).
fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// What the received samples cost as the agent before batch version 2 sent them: its
/// batcher cut a batch per poll cycle (after 50 ms without a frame, at most 1 s after the
/// first), each sent with the same header and buffer status and sealed, its frames in the
/// version-1 layout. Returns (bytes, batches).
fn as_before(batches: &[(wire::Batch, usize)]) -> (usize, usize) {
    let mut frames: Vec<(&wire::Frame, &wire::BatchHeader)> = batches
        .iter()
        .flat_map(|(b, _)| b.frames.iter().map(move |f| (f, &b.header)))
        .collect();
    frames.sort_by_key(|(f, _)| f.ts_ms);
    let mut groups: Vec<Vec<(&wire::Frame, &wire::BatchHeader)>> = Vec::new();
    for item in frames {
        match groups.last_mut() {
            Some(g)
                if item.0.ts_ms - g[g.len() - 1].0.ts_ms <= 50
                    && item.0.ts_ms - g[0].0.ts_ms < 1000 =>
            {
                g.push(item)
            }
            _ => groups.push(vec![item]),
        }
    }
    let bytes = groups
        .iter()
        .map(|g| {
            let frames: Vec<wire::Frame> = g.iter().map(|(f, _)| (*f).clone()).collect();
            let block = wire::FramesBlock::encode_v1(&frames).expect("encodes");
            wire::seal::SEAL_OVERHEAD + wire::encode_batch(g[0].1, &block).len()
        })
        .sum();
    (bytes, groups.len())
}

/// Writes the received batches as JSON lines (`WP_BENCH_DUMP=<file>`), one per batch:
/// its sealed size and frames, for studying where the bytes go.
fn dump(batches: &[(wire::Batch, usize)], path: &std::path::Path) {
    let mut out = String::new();
    for (b, len) in batches {
        let frames: Vec<serde_json::Value> = b
            .frames
            .iter()
            .map(|f| {
                let samples: Vec<serde_json::Value> = f
                    .samples
                    .iter()
                    .map(|s| {
                        let v = match s.value {
                            Some(wire::Value::Int(i)) => serde_json::json!(i),
                            Some(wire::Value::Float(x)) => serde_json::json!(x),
                            Some(wire::Value::Bool(b)) => serde_json::json!(b),
                            None => serde_json::Value::Null,
                        };
                        serde_json::json!([s.metric, v, s.quality.code()])
                    })
                    .collect();
                serde_json::json!({"device": f.device, "ts": f.ts_ms, "samples": samples})
            })
            .collect();
        out.push_str(
            &serde_json::json!({"len": len, "seq": b.header.seq, "frames": frames}).to_string(),
        );
        out.push('\n');
    }
    std::fs::write(path, out).expect("write the dump");
}

/// Bytes a CBOR head takes for argument `n`.
fn head_len(n: u64) -> usize {
    match n {
        0..24 => 1,
        24..256 => 2,
        256..65_536 => 3,
        65_536..4_294_967_296 => 5,
        _ => 9,
    }
}

fn int_len(i: i64) -> usize {
    head_len(if i < 0 { !(i as u64) } else { i as u64 })
}

fn value_len(v: wire::Value) -> usize {
    match v {
        wire::Value::Int(i) => int_len(i),
        wire::Value::Float(x) => {
            let f = x as f32;
            if f64::from(f) != x {
                9
            } else if f64::from(half::f16::from_f32(f).to_f32()) == x {
                3
            } else {
                5
            }
        }
        wire::Value::Bool(_) => 1,
    }
}

/// Where the bytes of the received batches go, as `#` lines.
fn breakdown(batches: &[(wire::Batch, usize)]) {
    let (mut total, mut envelope, mut values, mut quality, mut samples) = (0, 0, 0, 0, 0);
    for (b, len) in batches {
        total += len;
        // Seal and header (with the buffer status) around the frames block.
        let block = wire::FramesBlock::encode(&b.frames).expect("encodes");
        envelope += len - block.as_bytes().len();
        for f in &b.frames {
            for s in &f.samples {
                samples += 1;
                values += s.value.map_or(0, value_len);
                if s.quality != wire::Quality::Good {
                    quality += 2;
                }
            }
        }
    }
    let per = |x: usize| x as f64 / samples.max(1) as f64;
    println!(
        "# bytes per sample: total {:.2} = seal, header and status {:.2} + values {:.2} + quality wrappers {:.2} + frames (base time, device, dt, presence, array heads) {:.2}",
        per(total),
        per(envelope),
        per(values),
        per(quality),
        per(total - envelope - values - quality)
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
