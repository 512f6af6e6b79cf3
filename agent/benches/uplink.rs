//! End-to-end uplink figures with an embedded rumqttd (child process, so it can be
//! restarted) and a test cloud that acks every batch:
//!
//! * `uplink_latency_p50_ms` / `uplink_latency_p99_ms`: from the start of `append` (fsync
//!   included) to the cloud receiving the batch, live batches of 400 samples every 50 ms;
//! * `reconnect_to_first_delivery_ms`: broker process restarted after a 5 s outage (from
//!   its spawn, start-up included) → first batch received; median of 3 outages;
//! * `backlog_drain_samples_per_s`: 600 one-second batches of 400 samples (a 10-minute
//!   outage) buffered while the broker is down; from the broker's return until the
//!   buffer is empty. `live_rate_samples_per_s` is the rate that produced them and
//!   `backlog_drain_x_live` the ratio (target ≥ 20).
//!
//! The uplink runs with production-like settings (window 32, ack timeout 10 s, live window
//! 10 s, backlog pace 200 batches/s, reconnect backoff 100 ms → 1 s).

#[path = "../tests/uplink_support/mod.rs"]
mod uplink_support;

use std::time::{Duration, Instant};

use agent::uplink::UplinkConfig;
use uplink_support::{
    Agent, Broker, BrokerKind, Cloud, eventually, now_ms, open_buffer, uplink_config,
};

const LIVE_SAMPLES_PER_S: f64 = 400.0;

fn config(port: u16, gateway: &str) -> UplinkConfig {
    let mut cfg = uplink_config(port, gateway);
    cfg.in_flight_window = 32;
    cfg.ack_timeout = Duration::from_secs(10);
    cfg.live_window = Duration::from_secs(10);
    cfg.backlog_pace = 200.0;
    cfg.reconnect_backoff_min = Duration::from_millis(100);
    cfg.reconnect_backoff_max = Duration::from_secs(1);
    cfg
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[rank]
}

async fn latency(broker: &Broker) {
    let cloud = Cloud::start(broker.port).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = Agent::start(
        config(broker.port, "bench-latency"),
        open_buffer(dir.path()),
        1,
    );
    eventually(Duration::from_secs(30), "birth", || {
        cloud.with(|s| s.births.iter().any(|b| b.boot_id == 1))
    })
    .await;
    let mut sent = Vec::new();
    for _ in 0..300 {
        let start = Instant::now();
        let seq = agent.append(400, 0);
        sent.push((seq, start));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let seqs: Vec<u64> = sent.iter().map(|&(seq, _)| seq).collect();
    eventually(Duration::from_secs(60), "all received", || {
        cloud.has_all(&seqs)
    })
    .await;
    let mut ms: Vec<f64> = cloud.with(|s| {
        sent.iter()
            .map(|(seq, start)| (s.batches[seq][0].at - *start).as_secs_f64() * 1e3)
            .collect()
    });
    ms.sort_by(f64::total_cmp);
    println!(
        "BENCH uplink_latency_p50_ms {:.2} ms",
        percentile(&ms, 0.50)
    );
    println!(
        "BENCH uplink_latency_p99_ms {:.2} ms",
        percentile(&ms, 0.99)
    );
    agent.stop().await;
}

async fn reconnect(broker: &mut Broker) {
    let cloud = Cloud::start(broker.port).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = Agent::start(
        config(broker.port, "bench-reconnect"),
        open_buffer(dir.path()),
        2,
    );
    eventually(Duration::from_secs(30), "birth", || {
        cloud.with(|s| s.births.iter().any(|b| b.boot_id == 2))
    })
    .await;
    let mut ms = Vec::new();
    for _ in 0..3 {
        tokio::task::block_in_place(|| broker.stop());
        let mut seqs = Vec::new();
        for _ in 0..5 {
            seqs.push(agent.append(400, 0));
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        // Measured from the broker's spawn, so its start-up time is included.
        let back = Instant::now();
        tokio::task::block_in_place(|| broker.restart());
        eventually(
            Duration::from_secs(30),
            "first delivery after restart",
            || cloud.with(|s| seqs.iter().any(|q| s.batches.contains_key(q))),
        )
        .await;
        let first = cloud.with(|s| {
            seqs.iter()
                .filter_map(|q| s.batches.get(q).map(|c| c[0].at))
                .min()
                .expect("a delivery")
        });
        ms.push((first - back).as_secs_f64() * 1e3);
        eventually(Duration::from_secs(30), "drained", || {
            agent.buffer.stats().pending_batches == 0
        })
        .await;
    }
    ms.sort_by(f64::total_cmp);
    println!("BENCH reconnect_to_first_delivery_ms {:.1} ms", ms[1]);
    agent.stop().await;
}

async fn drain(broker: &mut Broker) {
    let cloud = Cloud::start(broker.port).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = Agent::start(
        config(broker.port, "bench-drain"),
        open_buffer(dir.path()),
        3,
    );
    eventually(Duration::from_secs(30), "birth", || {
        cloud.with(|s| s.births.iter().any(|b| b.boot_id == 3))
    })
    .await;
    tokio::task::block_in_place(|| broker.stop());
    let start_ms = now_ms() - 600_000;
    for i in 0..600 {
        let created = start_ms + i * 1_000;
        agent
            .buffer
            .append(created, 3, &uplink_support::block(400, created))
            .expect("append backlog");
    }
    let samples = agent.buffer.stats().pending_samples;
    assert_eq!(samples, 240_000);
    let back = Instant::now();
    tokio::task::block_in_place(|| broker.restart());
    eventually(Duration::from_secs(300), "backlog drained", || {
        agent.buffer.stats().pending_batches == 0
    })
    .await;
    let rate = samples as f64 / back.elapsed().as_secs_f64();
    println!("BENCH backlog_drain_samples_per_s {rate:.0} samples/s");
    println!("BENCH live_rate_samples_per_s {LIVE_SAMPLES_PER_S:.0} samples/s");
    println!(
        "BENCH backlog_drain_x_live {:.1} x",
        rate / LIVE_SAMPLES_PER_S
    );
    agent.stop().await;
}

fn main() {
    if std::env::var(uplink_support::RUMQTTD_CHILD_PORT).is_ok() {
        uplink_support::rumqttd_child_main();
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let mut broker = Broker::start(BrokerKind::Rumqttd);
        // Each phase has its own gateway (seqs restart at 1) and its own test cloud.
        latency(&broker).await;
        reconnect(&mut broker).await;
        drain(&mut broker).await;
    });
}
