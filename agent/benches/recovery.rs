//! Recovery after a broker restart with the SHIPPED defaults (`[mqtt]` of an `agent.toml`
//! that tunes nothing, parsed by the agent's own config code): time from the broker
//! process being started again (spawn included) to the first batch the cloud receives
//! and acks, after 5 s, 60 s and 10-minute outages, with the ingester back before the
//! agent and after it, on rumqttd and on Mosquitto:
//!
//! `BENCH recovery_{rumqttd|mosquitto}_{5s|60s|10min}_ingester_{first|last}_ms`
//!
//! * The "ingester" is the test cloud of `tests/uplink_support`, which announces its
//!   readiness as the real ingester does (retained "offline" will, retained "online" after
//!   its SUBACK; `wire::state`) and acks every batch. It is disconnected (killed, so the
//!   broker has no session of it) for the whole outage.
//! * `ingester_first`: it connects as soon as the broker listens again; the agent comes
//!   back on its own backoff. `ingester_last`: it connects only once the agent is back
//!   *and* has published at least one batch on the new connection, which the broker
//!   discards (nobody subscribed): the case the state message exists for.
//! * The agent appends a live 400-sample batch every second throughout.
//!
//! Baseline, measured in the same run: the previous shipped reconnect backoff (500 ms →
//! 30 s) and a cloud that publishes no state (the previous behaviour), 60 s outage:
//! `BENCH recovery_baseline_{rumqttd|mosquitto}_60s_ingester_{first|last}_ms`.
//!
//! Every scenario has its own broker on its own port and they all run at once, so the
//! bench takes about as long as the longest outage (~11 minutes). Lines starting with
//! `#` say which side actually reconnected first.
//!
//! Measured (2 cores, shared, December 2026), ms from the broker's restart to first delivery:
//!
//! | broker | outage | ingester first | ingester last |
//! |---|---|---|---|
//! | rumqttd | 5 s | 389 | 722 |
//! | rumqttd | 60 s | 226 | 815 |
//! | rumqttd | 10 min | 194 | 341 |
//! | Mosquitto | 5 s | 427 | 216 |
//! | Mosquitto | 60 s | 641 | 1,056 |
//! | Mosquitto | 10 min | 545 | 724 |
//! | rumqttd, previous behaviour | 60 s | 2,786 | 31,451 |
//! | Mosquitto, previous behaviour | 60 s | 13,548 | 37,606 |
//!
//! With the ingester last, its first delivery came 47–74 ms after it subscribed (the
//! agents' re-send on its "online"); previously it waited for the 30 s ack timeout.

#[path = "../tests/uplink_support/mod.rs"]
mod uplink_support;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use agent::uplink::UplinkConfig;
use uplink_support::{Agent, Broker, BrokerKind, Cloud, eventually, now_ms, open_buffer};

/// An `agent.toml` that sets only what has no default: everything else is shipped.
const SHIPPED: &str = r#"
[gateway]
tenant = "test"
id = "gw-recovery"
data_dir = "state"

[mqtt]
url = "mqtt://127.0.0.1:1883"
username = "test/gw-recovery"
password = "replaced-below"

[[device]]
name = "pump-1"
profile = "rod-pump-controller"
tcp = "127.0.0.1:5020"
poll = { fast = "1s", slow = "60s" }
"#;

/// The uplink settings an agent runs with when its config tunes nothing.
fn shipped(port: u16, gateway: &str) -> UplinkConfig {
    let config = agent::config::Config::from_bytes(
        Path::new("agent.toml"),
        Path::new("/etc/wellpulse"),
        SHIPPED.as_bytes(),
    )
    .expect("minimal agent.toml parses");
    let mut cfg = agent::uplink_config(&config);
    let test = uplink_support::uplink_config(port, gateway);
    cfg.host = test.host;
    cfg.port = port;
    cfg.client_id = test.client_id;
    cfg.username = test.username;
    cfg.password = test.password;
    cfg.tenant = test.tenant;
    cfg.gateway = test.gateway;
    cfg
}

#[derive(Debug, Clone, Copy)]
struct Scenario {
    kind: BrokerKind,
    outage: Duration,
    ingester_first: bool,
    /// Previous defaults (500 ms → 30 s) and a cloud without state.
    baseline: bool,
}

impl Scenario {
    fn name(&self) -> String {
        let broker = match self.kind {
            BrokerKind::Rumqttd => "rumqttd",
            BrokerKind::Mosquitto => "mosquitto",
        };
        let outage = match self.outage.as_secs() {
            s if s >= 120 => format!("{}min", s / 60),
            s => format!("{s}s"),
        };
        let order = if self.ingester_first { "first" } else { "last" };
        let base = if self.baseline { "baseline_" } else { "" };
        format!("recovery_{base}{broker}_{outage}_ingester_{order}_ms")
    }
}

async fn start_cloud(s: &Scenario, port: u16) -> Cloud {
    if s.baseline {
        Cloud::start(port).await
    } else {
        Cloud::start_announcing(port, "ingester-1").await
    }
}

/// Runs one scenario; returns its BENCH line and a note on who reconnected first.
async fn run(s: Scenario, index: u64) -> (String, String) {
    let name = s.name();
    let mut broker = tokio::task::block_in_place(|| Broker::start(s.kind));
    let port = broker.port;
    let gateway = format!("gw-recovery-{index}");
    let mut cfg = shipped(port, &gateway);
    if s.baseline {
        cfg.reconnect_backoff_min = Duration::from_millis(500);
        cfg.reconnect_backoff_max = Duration::from_secs(30);
    }
    let cloud = start_cloud(&s, port).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let buffer = open_buffer(dir.path());
    let boot_id = 100 + index;
    let agent = Agent::start(cfg, Arc::clone(&buffer), boot_id);
    let producer = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            let created = now_ms();
            let block = uplink_support::block(400, created);
            let buffer = Arc::clone(&buffer);
            let _ =
                tokio::task::spawn_blocking(move || buffer.append(created, boot_id, &block)).await;
        }
    });
    eventually(Duration::from_secs(60), "first deliveries", || {
        cloud.with(|c| c.batches.len() >= 2)
    })
    .await;
    eventually(Duration::from_secs(60), "nothing pending", || {
        agent.stats.in_flight.load(Relaxed) == 0
    })
    .await;

    // The outage: the ingester is gone (killed: its will says offline), then the broker.
    drop(cloud);
    tokio::task::block_in_place(|| broker.stop());
    eventually(Duration::from_secs(60), "agent noticed", || {
        !agent.stats.connected.load(Relaxed)
    })
    .await;
    tokio::time::sleep(s.outage).await;

    // Nothing is published while disconnected: any publish counted after this is on the
    // new connection (its CONNACK burst included).
    let sent = agent.stats.batches_sent.load(Relaxed);
    let back = Instant::now();
    tokio::task::block_in_place(|| broker.restart());
    let (cloud, cloud_at) = if s.ingester_first {
        let cloud = start_cloud(&s, port).await;
        (cloud, Instant::now())
    } else {
        eventually(
            Duration::from_secs(120),
            "agent back and publishing",
            || agent.stats.connected.load(Relaxed) && agent.stats.batches_sent.load(Relaxed) > sent,
        )
        .await;
        let cloud = start_cloud(&s, port).await;
        (cloud, Instant::now())
    };
    eventually(
        Duration::from_secs(300),
        "first delivery after restart",
        || cloud.with(|c| !c.batches.is_empty()),
    )
    .await;
    let first = cloud.with(|c| {
        c.batches
            .values()
            .map(|copies| copies[0].at)
            .min()
            .expect("a delivery")
    });
    let agent_connected = agent.stats.connected.load(Relaxed);
    let ms = (first - back).as_secs_f64() * 1e3;
    let note = format!(
        "# {name}: ingester subscribed {:.0} ms after the restart, first delivery {:.0} ms after it (agent connected: {agent_connected}, online re-sends: {})",
        (cloud_at - back).as_secs_f64() * 1e3,
        (first.max(cloud_at) - cloud_at).as_secs_f64() * 1e3,
        agent.stats.cloud_online_resends.load(Relaxed),
    );
    producer.abort();
    agent.stop().await;
    drop(cloud);
    drop(broker);
    (format!("BENCH {name} {ms:.0} ms"), note)
}

fn main() {
    if std::env::var(uplink_support::RUMQTTD_CHILD_PORT).is_ok() {
        uplink_support::rumqttd_child_main();
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(8)
        .enable_all()
        .build()
        .expect("runtime");
    let mut scenarios = Vec::new();
    for kind in [BrokerKind::Rumqttd, BrokerKind::Mosquitto] {
        for outage in [5, 60, 600] {
            for ingester_first in [true, false] {
                scenarios.push(Scenario {
                    kind,
                    outage: Duration::from_secs(outage),
                    ingester_first,
                    baseline: false,
                });
            }
        }
        for ingester_first in [true, false] {
            scenarios.push(Scenario {
                kind,
                outage: Duration::from_secs(60),
                ingester_first,
                baseline: true,
            });
        }
    }
    let results = runtime.block_on(async {
        let tasks: Vec<_> = scenarios
            .into_iter()
            .zip(0u64..)
            .map(|(s, i)| tokio::spawn(run(s, i)))
            .collect();
        let mut results = Vec::new();
        for task in tasks {
            results.push(task.await.expect("scenario"));
        }
        results
    });
    for (line, _) in &results {
        println!("{line}");
    }
    for (_, note) in &results {
        println!("{note}");
    }
}
