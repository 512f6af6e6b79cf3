//! End-to-end latency at fleet volume: Modbus read → committed row, p50 and p99, at a
//! sustained 10,000 samples/s into PostgreSQL (acceptance item of the cloud-ingest issue:
//! p99 < 500 ms).
//!
//! # Setup (everything real, on one machine)
//!
//! ```text
//! simulator (Modbus TCP, one listener per well) ─▶ real agents (agent::run, in-process,
//!     own redb buffers, default settings) ─┐
//! synthetic gateways (tests::load, real wire batches at a controlled rate) ─┤
//!                                          ▼
//!     embedded rumqttd (broker, database-backed logins) ─▶ ingest::Ingester
//!     (shipped default options) ─▶ PostgreSQL (fresh database, dropped at the end)
//! ```
//!
//! Real agents report by exception, so their volume is whatever the simulated wells
//! produce. Synthetic gateways top the total up to [`TARGET_RATE`]: after the warm-up the
//! real agents' rate is measured and the synthetic batch size set to the difference.
//! Latency is measured on the **real agents' samples only**; the agents run with the
//! shipped `[buffer]` defaults: a batch is cut when a poll cycle's frames stop arriving
//! (`flush_quiet`), bounded by `flush_interval`.
//!
//! # Measurement
//!
//! [`tests::load::Probe`] subscribes to every data and ack topic. Latency of a sample =
//! arrival of the first cloud ack covering its batch (the ingester acks only after the
//! commit) − the sample's timestamp (the gateway clock at the Modbus read; same machine,
//! same clock). Percentiles are over samples (not batches) read during a 60 s window
//! after the warm-up; every sample of the window must be acked (a missing ack counts as
//! infinitely late). The achieved total rate is the number of `telemetry` rows whose time
//! lies in the window, divided by its length.
//!
//! Set `WP_E2E_PG_SOCKET_DIR=/var/run/postgresql` to let the ingester reach PostgreSQL
//! over the Unix socket instead of TCP: comparing the cloud share of both runs isolates
//! the cost of the TCP hop.
//!
//! Output (`BENCH <name> <value> <unit>`): `e2e_latency_p50_ms`, `e2e_latency_p99_ms`,
//! the agents' edge share (read → data on the broker) and the cloud share (data on the
//! broker → commit), `e2e_samples_per_s`, and the agents' batching settings. Context lines
//! start with `#`.
//!
//! # Alerts under that load
//!
//! During the window, [`ALERT_DEVICES`] real devices are made to answer every request with
//! a Modbus exception (simulator failure injection), a few per second. Each becomes a
//! `sensor_failure` alert (detection right after the ingest transaction, shipped defaults)
//! delivered by the in-process outbox worker to a signed webhook on loopback.
//! `alert_latency_*` = arrival of the webhook − `started_at` of its alert, which is the
//! timestamp of the sample that made the condition fire (the agent's clock at that
//! Modbus read). How many reads a condition needs before it fires is detection's
//! business (`cargo bench -p detect --bench quality`: delay per failure type); this
//! measures what follows the read. Every injected device must alert, exactly once.
//!
//! Runs with `cargo bench -p tests --bench e2e` (~3 minutes); without `--bench` on the
//! command line (e.g. `cargo test --benches`) it only prints how to run it.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use base::Secret;
use broker::{BrokerAuth, EmbeddedBroker};
use ingest::{IngestOptions, Ingester, MqttEndpoint};
use simulator::{Endpoint, FleetConfig, Simulator};
use store::Db;
use tests::load::{LatencyReport, Probe, SyntheticConfig, SyntheticFleet, drop_database, wall_ms};
use tests::stack::{fresh_database, lazy_db};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Total samples per second the database must absorb.
const TARGET_RATE: f64 = 10_000.0;
/// Real agents (one simulated well each).
const WELLS: usize = 100;
/// Devices on each simulated well (a mixed-lift fleet: one lift controller per well).
const WELL_DEVICES: [&str; 4] = [
    "rod-pump-controller|esp-drive|plunger-lift-controller",
    "gas-flow-computer",
    "tank-gauge",
    "gas-detector",
];
/// Synthetic gateways carrying the rest of the volume, one batch per second each.
const SYNTHETIC_GATEWAYS: usize = 80;
/// Devices per synthetic gateway.
const SYNTHETIC_DEVICES: u16 = 4;
/// From the last agent start to the rate measurement.
const WARM_UP: Duration = Duration::from_secs(20);
/// Span over which the real agents' rate is measured at the end of the warm-up.
const RATE_SPAN: Duration = Duration::from_secs(10);
/// Pause after adjusting the synthetic rate, before the window opens.
const SETTLE: Duration = Duration::from_secs(5);
/// Measurement window (by sample read time).
const WINDOW: Duration = Duration::from_secs(60);
/// Longest wait after the window for its last samples to be committed.
const GRACE: Duration = Duration::from_secs(20);
/// Tenant of every gateway.
const TENANT: &str = "bench";
/// Devices made to fail during the window, each raising one alert.
const ALERT_DEVICES: usize = 60;
/// Pause between two injected failures.
const ALERT_SPACING: Duration = Duration::from_millis(400);
/// Longest wait for every alert after the last injection.
const ALERT_GRACE: Duration = Duration::from_secs(150);
/// Seals the webhook's signing secret (as `[tenancy] ca_key` does).
const SEALING_KEY: &str = "bench-alert-sealing-secret-0123456789abcdef";
/// The ingester's (and the probe's) broker login.
const INGEST_USER: &str = "ingester";
const INGEST_PASSWORD: &str = "bench-ingester-secret-0123456789";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if !tests::bench_requested("e2e") {
        return Ok(());
    }
    println!("# load average before: {}", load_average());
    let url = fresh_database("wp_bench_e2e").await?;
    let outcome = tokio::select! {
        outcome = bench(&url) => outcome,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
    };
    let dropped = drop_database(&url).await;
    println!("# load average after: {}", load_average());
    outcome?;
    dropped
}

/// Builds the stack, measures, tears it down (also when the measurement fails).
async fn bench(url: &str) -> anyhow::Result<()> {
    let db = lazy_db(url)?;
    db.migrate().await.context("migrate")?;
    let stack = Stack::start(db, url).await?;
    let measured = measure(&stack).await;
    let stopped = stack.stop().await;
    measured?;
    stopped
}

/// Everything that runs during the benchmark.
#[derive(Debug)]
struct Stack {
    dir: tempfile::TempDir,
    db: Db,
    broker: EmbeddedBroker,
    simulator: Simulator,
    ingester: Ingester,
    probe: Probe,
    agents: Vec<Agent>,
    hook: testkit::receiver::Receiver,
    outbox: JoinHandle<()>,
}

/// One in-process agent.
#[derive(Debug)]
struct Agent {
    gateway: String,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Stack {
    async fn start(db: Db, url: &str) -> anyhow::Result<Stack> {
        let dir = tempfile::tempdir()?;
        let broker = start_broker(&db).await?;
        let v4 = broker
            .listener("dev4")
            .context("no dev4 listener")?
            .connect_addr();
        let v5 = broker
            .listener("dev5")
            .context("no dev5 listener")?
            .connect_addr();
        let endpoint = MqttEndpoint {
            host: v5.ip().to_string(),
            port: v5.port(),
            tls: None,
            client_id: "bench-ingester".into(),
            username: INGEST_USER.into(),
            password: Secret::new(INGEST_PASSWORD),
        };
        let options = IngestOptions::default();
        println!(
            "# ingester: shipped defaults (round of up to {} messages or {:?})",
            options.max_batch_messages, options.max_batch_delay
        );
        let ingest_db = match std::env::var("WP_E2E_PG_SOCKET_DIR") {
            Ok(dir) => {
                let name = url.rsplit_once('/').map_or("", |(_, n)| n);
                println!("# ingester reaches PostgreSQL over the Unix socket in {dir}");
                lazy_db(&format!("postgres://postgres@localhost/{name}?host={dir}"))?
            }
            Err(_) => {
                println!("# ingester reaches PostgreSQL over TCP ({})", pg_host(url));
                db.clone()
            }
        };
        let ingester = Ingester::start(ingest_db, &endpoint, options)?;
        let probe = Probe::start(v4, TENANT, (INGEST_USER.into(), INGEST_PASSWORD.into())).await?;
        let fleet = FleetConfig {
            seed: 11,
            wells: WELLS,
            devices_per_well: WELL_DEVICES.map(String::from).to_vec(),
            failures: simulator::FailurePlan {
                rate_per_day: 0.0,
                ..Default::default()
            },
            ..FleetConfig::default()
        };
        let simulator = Simulator::start(fleet, [127, 0, 0, 1].into())
            .await
            .context("simulator")?;
        let hook = testkit::receiver::Receiver::start(&[]).await;
        let key = store::certificates::CaKey::from_secret(SEALING_KEY)?;
        webhook_destination(&db, &key, &hook.url("/hook")).await?;
        let outbox = alerts::outbox::Outbox::new(
            db.clone(),
            Some(key),
            alerts::outbox::OutboxOptions::default(),
        )
        .map_err(anyhow::Error::msg)?;
        let outbox = tokio::spawn(outbox.run());
        let mut stack = Stack {
            dir,
            db,
            broker,
            simulator,
            ingester,
            probe,
            agents: Vec::new(),
            hook,
            outbox,
        };
        stack.start_agents(v4.port()).await?;
        Ok(stack)
    }

    async fn start_agents(&mut self, broker_port: u16) -> anyhow::Result<()> {
        let endpoints = self.simulator.endpoints();
        let mut wells: Vec<&str> = endpoints.iter().map(|e| e.well.as_str()).collect();
        wells.dedup();
        for (i, well) in wells.into_iter().enumerate() {
            let gateway = format!("gw-{i:03}");
            let password = format!("{gateway}-secret-0123456789");
            self.db
                .provision_gateway(TENANT, "pad-1", &gateway, &password)
                .await
                .context("provision")?;
            let devices: Vec<&Endpoint> = endpoints.iter().filter(|e| e.well == well).collect();
            let config = self.dir.path().join(format!("{gateway}.toml"));
            let data_dir = self.dir.path().join(&gateway);
            std::fs::write(
                &config,
                agent_toml(&gateway, &password, &data_dir, broker_port, &devices),
            )?;
            self.agents.push(Agent::spawn(gateway, config));
        }
        Ok(())
    }

    /// Stops everything: agents (gracefully), ingester, probe, simulator.
    async fn stop(mut self) -> anyhow::Result<()> {
        let mut result = Ok(());
        for agent in &mut self.agents {
            result = result.and(
                agent
                    .stop()
                    .await
                    .with_context(|| format!("agent {}", agent.gateway)),
            );
        }
        self.ingester.abort();
        self.outbox.abort();
        self.probe.stop();
        self.simulator.shutdown().await;
        self.db.pool().close().await;
        result
    }
}

/// Starts rumqttd in-process from the development profile (loopback, port 0 listeners).
async fn start_broker(db: &Db) -> anyhow::Result<EmbeddedBroker> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../broker-config/rumqttd-dev.toml");
    let config = broker::load_config(&path).context("broker config")?;
    let auth = BrokerAuth::new(db.clone(), INGEST_USER.into(), Secret::new(INGEST_PASSWORD));
    let broker = tokio::task::spawn_blocking(move || EmbeddedBroker::start(config, auth)).await??;
    Ok(broker)
}

impl Agent {
    fn spawn(gateway: String, config: PathBuf) -> Agent {
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            agent::run(&config, async {
                let _ = stopped.await;
            })
            .await
        });
        Agent {
            gateway,
            stop: Some(stop),
            task,
        }
    }

    async fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(Duration::from_secs(30), &mut self.task)
            .await
            .context("agent did not stop")???;
        Ok(())
    }
}

/// An agent configuration with the shipped defaults for everything but identity, broker
/// and devices (polled like the example config: fast 1 s, slow 60 s).
fn agent_toml(
    gateway: &str,
    password: &str,
    data_dir: &Path,
    broker_port: u16,
    devices: &[&Endpoint],
) -> String {
    let mut toml = format!(
        r#"[gateway]
tenant = "{TENANT}"
id = "{gateway}"
data_dir = "{data}"

[mqtt]
url = "mqtt://127.0.0.1:{broker_port}"
username = "{TENANT}/{gateway}"
password = "{password}"

[metrics]
listen = "127.0.0.1:0"
"#,
        data = data_dir.display(),
    );
    for e in devices {
        toml.push_str(&format!(
            "\n[[device]]\nname = \"{}\"\nprofile = \"{}\"\ntcp = \"{}\"\nunit_id = {}\npoll = {{ fast = \"1s\", slow = \"60s\" }}\n",
            e.device, e.profile, e.addr, e.unit_id
        ));
    }
    toml
}

/// Warm-up, rate adjustment, window, report.
async fn measure(stack: &Stack) -> anyhow::Result<()> {
    let config = SyntheticConfig {
        broker: stack
            .broker
            .listener("dev4")
            .context("no dev4 listener")?
            .connect_addr(),
        tenant: TENANT.into(),
        prefix: "syn-".into(),
        gateways: SYNTHETIC_GATEWAYS,
        devices_per_gateway: SYNTHETIC_DEVICES,
        period: Duration::from_secs(1),
    };
    // Start with a guess; corrected once the real agents' rate is known.
    let synthetic = SyntheticFleet::start(&stack.db, config, TARGET_RATE * 0.8).await?;
    tokio::time::sleep(WARM_UP).await;

    let now = wall_ms();
    let span_ms = RATE_SPAN.as_millis() as i64;
    // Samples read in the span that ended 2 s ago have all passed the broker by now.
    let real = stack
        .probe
        .report(now - 2_000 - span_ms, now - 2_000, is_agent);
    let real_rate = real.samples as f64 / RATE_SPAN.as_secs_f64();
    ensure!(
        real_rate > 0.0,
        "the real agents delivered nothing during the warm-up"
    );
    let synthetic_rate = synthetic.set_rate(TARGET_RATE - real_rate);
    println!(
        "# {} real agents ({} devices) at {real_rate:.0} samples/s + {} synthetic gateways at {synthetic_rate:.0} samples/s",
        stack.agents.len(),
        WELLS * WELL_DEVICES.len(),
        synthetic.gateways()
    );
    tokio::time::sleep(SETTLE).await;

    let from = wall_ms();
    let failing = inject_failures(stack).await;
    tokio::time::sleep(WINDOW.saturating_sub(ALERT_SPACING * ALERT_DEVICES as u32)).await;
    let to = wall_ms();
    wait_committed(&stack.probe, from, to).await;
    let stored = rows_between(&stack.db, from, to).await?;
    let published = synthetic.published_samples();

    let window_s = (to - from) as f64 / 1000.0;
    let agents = stack.probe.report(from, to, is_agent);
    let synthetic_report = stack.probe.report(from, to, |g| !is_agent(g));
    let (undecodable, disconnects) = stack.probe.faults();

    describe("real agents", &agents, window_s);
    describe(
        "synthetic gateways (read = publish)",
        &synthetic_report,
        window_s,
    );
    println!("# synthetic samples published during the run: {published}");
    println!(
        "BENCH e2e_samples_per_s {:.0} samples/s",
        stored as f64 / window_s
    );
    println!(
        "BENCH e2e_agent_samples_per_s {:.0} samples/s",
        agents.samples as f64 / window_s
    );
    let buffer = agent_buffer_settings(stack)?;
    println!(
        "BENCH e2e_flush_quiet_ms {} ms",
        buffer.flush_quiet.as_millis()
    );
    println!(
        "BENCH e2e_flush_interval_ms {} ms",
        buffer.flush_interval.as_millis()
    );
    println!("BENCH e2e_latency_p50_ms {:.1} ms", agents.total.p50);
    println!("BENCH e2e_latency_p99_ms {:.1} ms", agents.total.p99);
    println!("BENCH e2e_edge_latency_p50_ms {:.1} ms", agents.edge.p50);
    println!("BENCH e2e_edge_latency_p99_ms {:.1} ms", agents.edge.p99);
    println!("BENCH e2e_cloud_latency_p50_ms {:.1} ms", agents.cloud.p50);
    println!("BENCH e2e_cloud_latency_p99_ms {:.1} ms", agents.cloud.p99);

    alert_latencies(stack, &failing).await?;
    synthetic.stop().await?;
    ensure!(
        undecodable == 0 && disconnects == 0,
        "probe saw {undecodable} undecodable messages and {disconnects} disconnects: figures incomplete"
    );
    ensure!(
        agents.samples > 0,
        "the real agents delivered nothing in the window"
    );
    ensure!(
        agents.unacked_samples == 0,
        "{} agent samples of the window were never committed",
        agents.unacked_samples
    );
    Ok(())
}

/// The tenant's webhook destination, its signing secret sealed with `key`.
async fn webhook_destination(
    db: &Db,
    key: &store::certificates::CaKey,
    url: &str,
) -> anyhow::Result<()> {
    let tenant = db.create_tenant(TENANT, "Bench Operating").await?;
    let secret = alerts::deliver::webhook::generate_secret();
    let sealed = key.seal_as(store::alerts::DESTINATION_SECRET, tenant, secret.as_bytes())?;
    let mut tx = db.begin_tenant(tenant).await?;
    store::alerts::create_destination(
        &mut tx,
        tenant,
        &store::alerts::DestinationInput {
            name: "bench",
            kind: "webhook",
            url,
            min_severity: "info",
            enabled: true,
        },
        Some(&sealed),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Makes [`ALERT_DEVICES`] gas detectors answer with Modbus exceptions, spaced by
/// [`ALERT_SPACING`]; returns their names.
async fn inject_failures(stack: &Stack) -> Vec<String> {
    let devices: Vec<String> = stack
        .simulator
        .endpoints()
        .into_iter()
        .filter(|e| e.profile == "gas-detector")
        .take(ALERT_DEVICES)
        .map(|e| e.device)
        .collect();
    for device in &devices {
        stack.simulator.inject(
            device,
            simulator::Failure::Exception(4),
            Duration::from_secs(600),
        );
        tokio::time::sleep(ALERT_SPACING).await;
    }
    devices
}

/// Waits for one firing webhook per failing device and prints the latency figures.
async fn alert_latencies(stack: &Stack, failing: &[String]) -> anyhow::Result<usize> {
    let deadline = tokio::time::Instant::now() + ALERT_GRACE;
    let mut latencies = std::collections::BTreeMap::new();
    while latencies.len() < failing.len() {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let Some(r) = stack.hook.next(left).await else {
            break;
        };
        let event = r.json();
        let alert = &event["data"]["alert"];
        if event["type"] != "com.wellpulse.alert.firing" || alert["kind"] != "sensor_failure" {
            continue;
        }
        let device = alert["labels"]["device"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if !failing.contains(&device) {
            continue;
        }
        let started =
            chrono::DateTime::parse_from_rfc3339(alert["started_at"].as_str().unwrap_or(""))
                .context("started_at")?;
        let arrived = chrono::DateTime::<chrono::Utc>::from(r.at);
        let ms = (arrived - started.with_timezone(&chrono::Utc))
            .num_microseconds()
            .unwrap_or(0) as f64
            / 1000.0;
        ensure!(
            latencies.insert(device.clone(), ms).is_none(),
            "{device} alerted twice"
        );
    }
    let mut values: Vec<f64> = latencies.values().copied().collect();
    values.sort_by(f64::total_cmp);
    ensure!(!values.is_empty(), "no alert arrived");
    let pct = |p: f64| values[((values.len() - 1) as f64 * p).round() as usize];
    println!("BENCH alert_latency_p50_ms {:.1} ms", pct(0.50));
    println!("BENCH alert_latency_p99_ms {:.1} ms", pct(0.99));
    println!("BENCH alert_latency_max_ms {:.1} ms", pct(1.0));
    println!("BENCH alerts_delivered {} count", values.len());
    ensure!(
        values.len() == failing.len(),
        "{} of {} failing devices alerted",
        values.len(),
        failing.len()
    );
    Ok(values.len())
}

/// The `[buffer]` settings the real agents ran with (their config files, as parsed).
fn agent_buffer_settings(stack: &Stack) -> anyhow::Result<agent::config::BufferSettings> {
    let path = stack
        .dir
        .path()
        .join(format!("{}.toml", stack.agents[0].gateway));
    Ok(agent::config::Config::load(&path)?.buffer)
}

fn is_agent(gateway: &str) -> bool {
    gateway.starts_with("gw-")
}

/// Waits until every sample read in `[from, to)` is acked, or [`GRACE`] passed.
async fn wait_committed(probe: &Probe, from: i64, to: i64) {
    let deadline = Instant::now() + GRACE;
    // Samples read at the end of the window are still in the agents' batchers.
    tokio::time::sleep(Duration::from_secs(2)).await;
    while probe.report(from, to, |_| true).unacked_samples > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Rows stored with a sample time in `[from, to)` (ms).
async fn rows_between(db: &Db, from: i64, to: i64) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar(
        "SELECT count(*) FROM telemetry WHERE time >= to_timestamp($1) AND time < to_timestamp($2)",
    )
    .bind(from as f64 / 1000.0)
    .bind(to as f64 / 1000.0)
    .fetch_one(db.pool())
    .await?)
}

fn describe(group: &str, r: &LatencyReport, window_s: f64) {
    println!(
        "# {group}: {} batches, {:.0} samples/s, read→commit p50 {:.1} / p99 {:.1} / max {:.1} ms \
         (read→broker p50 {:.1} / p99 {:.1}; broker→commit p50 {:.1} / p99 {:.1}); unacked {}, historical batches {}",
        r.batches,
        r.samples as f64 / window_s,
        r.total.p50,
        r.total.p99,
        r.total.max,
        r.edge.p50,
        r.edge.p99,
        r.cloud.p50,
        r.cloud.p99,
        r.unacked_samples,
        r.historical_batches
    );
}

/// `host:port` of a database URL (never the credentials).
fn pg_host(url: &str) -> &str {
    let after = url.rsplit_once('@').map_or(url, |(_, a)| a);
    after.split('/').next().unwrap_or(after)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}
