//! The whole WellPulse path, assembled from the real crates for one test:
//!
//! ```text
//! Simulator (Modbus TCP) ─▶ agents (in-process, own redb buffers) ─▶ broker (child process)
//!      ─▶ ingester (in-process) ─▶ PostgreSQL (fresh database, optionally behind a Proxy)
//! ```
//!
//! The broker runs in a child process — the embedded rumqttd through the `wp-test-broker`
//! binary, or a private Mosquitto — so a test can stop it for real and start it again on
//! the same ports. PostgreSQL is the shared server, so an "outage" is simulated by cutting
//! a [`Proxy`] the ingester connects through.
//!
//! [`Stack::verify_exactly_once`] is the end-to-end oracle: after the agents stop, their
//! buffers are drained through the real uplink code, and then every batch any agent ever
//! created must be in `ingested_batches` exactly once, with exactly its samples in
//! `telemetry`.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use base::Secret;
use ingest::{IngestOptions, Ingester, MqttEndpoint};
use simulator::{FleetConfig, Simulator};
use sqlx::Row;
use sqlx::postgres::PgPoolOptions;
use store::{Db, NewWell, StorageOptions};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::drain::StoppedAgent;
use testkit::proxy::Proxy;

/// Tenant of every gateway in the stack.
pub const TENANT: &str = "e2e";
/// MQTT credentials of the ingester on the embedded broker.
const INGEST_USER: &str = "ingester";
const INGEST_PASSWORD: &str = "ingester-secret-0123456789";

/// Which broker carries the traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerKind {
    /// rumqttd embedded by `broker`, with database-backed gateway authentication.
    Embedded,
    /// A private Mosquitto (a broker we did not write), anonymous.
    Mosquitto,
}

/// A broker in a child process, restartable on the same ports.
#[derive(Debug)]
pub struct Broker {
    kind: BrokerKind,
    /// Port for MQTT 3.1.1 clients (agents).
    pub v4_port: u16,
    /// Port for MQTT 5 clients (the ingester).
    pub v5_port: u16,
    program: PathBuf,
    database_url: String,
    dir: PathBuf,
    child: Option<Child>,
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn port_open(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(
        &SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(200),
    )
    .is_ok()
}

impl Broker {
    /// Starts a broker. `test_broker_bin` is `env!("CARGO_BIN_EXE_wp-test-broker")`.
    pub fn start(
        kind: BrokerKind,
        test_broker_bin: &str,
        database_url: &str,
        dir: &Path,
    ) -> anyhow::Result<Broker> {
        let v4_port = free_port()?;
        let v5_port = if kind == BrokerKind::Embedded {
            free_port()?
        } else {
            v4_port
        };
        let mut broker = Broker {
            kind,
            v4_port,
            v5_port,
            program: PathBuf::from(test_broker_bin),
            database_url: database_url.to_owned(),
            dir: dir.to_owned(),
            child: None,
        };
        broker.resume()?;
        Ok(broker)
    }

    /// Starts the broker process again (after [`Broker::stop`]).
    pub fn resume(&mut self) -> anyhow::Result<()> {
        ensure!(self.child.is_none(), "broker already running");
        let log = std::fs::File::create(self.dir.join(format!("broker-{}.log", self.v4_port)))?;
        let mut cmd = match self.kind {
            BrokerKind::Embedded => {
                let mut c = Command::new(&self.program);
                c.args([
                    "--v4-port",
                    &self.v4_port.to_string(),
                    "--v5-port",
                    &self.v5_port.to_string(),
                ])
                .args(["--database-url", &self.database_url])
                .args([
                    "--ingester-user",
                    INGEST_USER,
                    "--ingester-password",
                    INGEST_PASSWORD,
                ]);
                c
            }
            BrokerKind::Mosquitto => {
                let conf = self.dir.join("mosquitto.conf");
                std::fs::write(
                    &conf,
                    format!(
                        "listener {} 127.0.0.1\nallow_anonymous true\npersistence false\nmax_inflight_messages 100\nmax_queued_messages 100000\n",
                        self.v4_port
                    ),
                )?;
                let mut c = Command::new("/usr/sbin/mosquitto");
                c.arg("-c").arg(conf);
                c
            }
        };
        let child = cmd
            .stdout(log.try_clone()?)
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .context("start broker")?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while !(port_open(self.v4_port) && port_open(self.v5_port)) {
            ensure!(
                Instant::now() < deadline,
                "broker did not listen within 30 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// Kills the broker (SIGKILL: sessions and queued messages are lost, as in a crash).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Creates a fresh, empty database on the server of `DATABASE_URL` and returns its URL.
pub async fn fresh_database(prefix: &str) -> anyhow::Result<String> {
    let admin = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let name = format!("{prefix}_{}_{:x}", std::process::id(), rand_suffix());
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect(&admin)
        .await
        .context("connect DATABASE_URL")?;
    // `name` is built here from digits, hex and a fixed prefix: safe to splice.
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&pool)
        .await?;
    pool.close().await;
    let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
    Ok(format!("{base}/{name}"))
}

fn rand_suffix() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    t.as_nanos() as u64 ^ u64::from(std::process::id()).rotate_left(32)
}

/// A database handle whose pool reconnects lazily (as the cloud binary builds it).
pub fn lazy_db(url: &str) -> anyhow::Result<Db> {
    let pool = PgPoolOptions::new()
        .max_connections(8)
        .acquire_timeout(Duration::from_secs(5))
        .connect_lazy(url)
        .context("database url")?;
    Ok(Db::from_pool(pool, StorageOptions::default()))
}

/// One agent process, in-process.
#[derive(Debug)]
pub struct AgentHandle {
    /// Gateway id.
    pub gateway: String,
    /// The agent's config file.
    pub config: PathBuf,
    /// The agent's data directory (redb buffer).
    pub data_dir: PathBuf,
    /// Its `/metrics` address.
    pub metrics: SocketAddr,
    /// MQTT username and password.
    pub credentials: (String, String),
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

impl AgentHandle {
    /// Stops the agent gracefully (final flush to the buffer, death) and waits for it.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(60), task)
                .await
                .context("agent did not stop")???;
        }
        Ok(())
    }
}

/// Everything of one end-to-end run.
#[derive(Debug)]
pub struct Stack {
    /// Temporary directory holding configs, buffers and logs.
    pub dir: tempfile::TempDir,
    /// The simulated fleet.
    pub simulator: Simulator,
    /// The broker.
    pub broker: Broker,
    /// URL of this test's database (direct).
    pub database_url: String,
    /// Direct database handle for assertions.
    pub db: Db,
    /// Proxy the ingester reaches PostgreSQL through.
    pub pg_proxy: Proxy,
    /// The running ingester.
    pub ingester: Option<Ingester>,
    /// One agent per well.
    pub agents: Vec<AgentHandle>,
    /// Agents run with the shipped `[mqtt]` timings (keep-alive, ack timeout, live window,
    /// reconnect backoff) instead of the quick test ones.
    shipped_mqtt_timings: bool,
}

impl Stack {
    /// Starts a simulator with `wells` wells, a broker, a migrated fresh database, the
    /// ingester and one agent per well.
    pub async fn start(
        kind: BrokerKind,
        wells: usize,
        test_broker_bin: &str,
    ) -> anyhow::Result<Stack> {
        let mut stack = Stack::without_agents(kind, wells, test_broker_bin).await?;
        stack.provision_and_spawn_agents().await?;
        Ok(stack)
    }

    /// [`Stack::start`], with agents on the shipped `[mqtt]` timings (what a gateway runs
    /// when its `agent.toml` does not tune them), for tests of recovery as shipped.
    pub async fn start_shipped(
        kind: BrokerKind,
        wells: usize,
        test_broker_bin: &str,
    ) -> anyhow::Result<Stack> {
        let mut stack = Stack::without_agents(kind, wells, test_broker_bin).await?;
        stack.shipped_mqtt_timings = true;
        stack.provision_and_spawn_agents().await?;
        Ok(stack)
    }

    /// The simulator, broker, database and ingester of [`Stack::start`], without any
    /// gateway or agent: for tests that provision gateways themselves (through the API).
    pub async fn without_agents(
        kind: BrokerKind,
        wells: usize,
        test_broker_bin: &str,
    ) -> anyhow::Result<Stack> {
        let devices = ["rod-pump-controller", "gas-flow-computer", "tank-gauge"];
        Stack::fleet_without_agents(kind, wells, &devices, test_broker_bin).await
    }

    /// [`Stack::start`] with these firmware profiles on every well (in unit-id order).
    pub async fn start_fleet(
        kind: BrokerKind,
        wells: usize,
        devices: &[&str],
        test_broker_bin: &str,
    ) -> anyhow::Result<Stack> {
        let mut stack = Stack::fleet_without_agents(kind, wells, devices, test_broker_bin).await?;
        stack.provision_and_spawn_agents().await?;
        Ok(stack)
    }

    async fn fleet_without_agents(
        kind: BrokerKind,
        wells: usize,
        devices: &[&str],
        test_broker_bin: &str,
    ) -> anyhow::Result<Stack> {
        let dir = tempfile::tempdir()?;
        let database_url = fresh_database("wp_e2e").await?;
        let db = lazy_db(&database_url)?;
        db.migrate().await.context("migrate")?;
        let pg_proxy = Proxy::in_front_of(&database_url).await;

        let fleet = FleetConfig {
            seed: 7,
            wells,
            devices_per_well: devices.iter().map(|d| (*d).to_owned()).collect(),
            ..FleetConfig::default()
        };
        let simulator = Simulator::start(fleet, [127, 0, 0, 1].into())
            .await
            .context("simulator")?;
        let broker = Broker::start(kind, test_broker_bin, &database_url, dir.path())?;

        let mut stack = Stack {
            dir,
            simulator,
            broker,
            database_url,
            db,
            pg_proxy,
            ingester: None,
            agents: Vec::new(),
            shipped_mqtt_timings: false,
        };
        stack.start_ingester()?;
        Ok(stack)
    }

    async fn provision_and_spawn_agents(&mut self) -> anyhow::Result<()> {
        let stack = self;
        let wells: Vec<String> = {
            let mut w: Vec<String> = stack
                .simulator
                .endpoints()
                .into_iter()
                .map(|e| e.well)
                .collect();
            w.dedup();
            w
        };
        for (i, well) in wells.iter().enumerate() {
            let gateway = format!("gw-{i:02}");
            let password = crate::load::gateway_password(&gateway);
            let provisioned = stack
                .db
                .provision_gateway(TENANT, "pad-1", &gateway, &password)
                .await
                .context("provision")?;
            // The well the agent's devices measure; births link them by the device info `well`.
            let api_number = format!("42-123-{:05}", 40_000 + i);
            stack
                .db
                .create_well(&NewWell {
                    tenant: provisioned.tenant,
                    site: provisioned.site,
                    api_number: &api_number,
                    name: well,
                    lease: "Simulated Lease",
                    field: "Spraberry",
                    county: "Midland",
                    state: "TX",
                })
                .await
                .context("create well")?;
            let agent = stack.spawn_agent(&gateway, &password, well)?;
            stack.agents.push(agent);
        }
        Ok(())
    }

    /// The ingester's MQTT login on this broker (`None`: anonymous).
    pub fn ingest_credentials(&self) -> Option<(String, String)> {
        (self.broker.kind == BrokerKind::Embedded)
            .then(|| (INGEST_USER.to_owned(), INGEST_PASSWORD.to_owned()))
    }

    fn ingest_endpoint(&self) -> MqttEndpoint {
        let (username, password) = self.ingest_credentials().unwrap_or_default();
        MqttEndpoint {
            host: "127.0.0.1".into(),
            port: self.broker.v5_port,
            tls: None,
            client_id: format!("ingester-{}", self.broker.v5_port),
            username,
            password: Secret::new(password),
        }
    }

    /// Starts (or restarts) the ingester, reaching PostgreSQL through the proxy.
    pub fn start_ingester(&mut self) -> anyhow::Result<()> {
        let url = self.pg_proxy.url_for(&self.database_url);
        let options = IngestOptions {
            max_batch_delay: Duration::from_millis(50),
            retry_initial: Duration::from_millis(100),
            retry_max: Duration::from_secs(2),
            ..IngestOptions::default()
        };
        let ingester = Ingester::start(lazy_db(&url)?, &self.ingest_endpoint(), options)?;
        self.ingester = Some(ingester);
        Ok(())
    }

    /// Starts one more ingester in the same shared-subscription group (client id
    /// `ingester-<port>-<name>`): the two split the gateways' messages, as two cloud
    /// instances do.
    pub fn start_extra_ingester(&self, name: &str) -> anyhow::Result<Ingester> {
        let url = self.pg_proxy.url_for(&self.database_url);
        let mut endpoint = self.ingest_endpoint();
        endpoint.client_id = format!("{}-{name}", endpoint.client_id);
        let options = IngestOptions {
            max_batch_delay: Duration::from_millis(50),
            retry_initial: Duration::from_millis(100),
            retry_max: Duration::from_secs(2),
            ..IngestOptions::default()
        };
        Ok(Ingester::start(lazy_db(&url)?, &endpoint, options)?)
    }

    /// Kills the ingester as a crash would: nothing in flight is committed or acked.
    pub fn kill_ingester(&mut self) {
        if let Some(i) = self.ingester.take() {
            i.abort();
        }
    }

    /// The agent's MQTT login. The anonymous Mosquitto ignores it, but the password is
    /// also the source of the gateway's message key, so it is always the provisioned one.
    fn mqtt_credentials(&self, gateway: &str, password: &str) -> (String, String) {
        (format!("{TENANT}/{gateway}"), password.to_owned())
    }

    fn agent_toml(
        &self,
        gateway: &str,
        password: &str,
        well: &str,
        data_dir: &Path,
        metrics: SocketAddr,
    ) -> String {
        let (username, password) = self.mqtt_credentials(gateway, password);
        let mut toml = format!(
            r#"[gateway]
tenant = "{TENANT}"
id = "{gateway}"
data_dir = "{data}"

[mqtt]
url = "mqtt://127.0.0.1:{port}"
client_id = "wp-{TENANT}-{gateway}"
username = "{username}"
password = "{password}"
{timings}
[buffer]
flush_interval = "500ms"

[metrics]
listen = "{metrics}"
"#,
            data = data_dir.display(),
            port = self.broker.v4_port,
            timings = if self.shipped_mqtt_timings {
                ""
            } else {
                "keep_alive = \"5s\"\nack_timeout = \"5s\"\nlive_window = \"5s\"\n\
                 reconnect_min = \"100ms\"\nreconnect_max = \"1s\"\n"
            },
        );
        for e in self
            .simulator
            .endpoints()
            .into_iter()
            .filter(|e| e.well == well)
        {
            toml.push_str(&format!(
                "\n[[device]]\nname = \"{}\"\nwell = \"{well}\"\nprofile = \"{}\"\ntcp = \"{}\"\nunit_id = {}\npoll = {{ fast = \"1s\", slow = \"5s\" }}\ntimeout = \"2s\"\n",
                e.device, e.profile, e.addr, e.unit_id
            ));
        }
        toml
    }

    fn spawn_agent(
        &self,
        gateway: &str,
        password: &str,
        well: &str,
    ) -> anyhow::Result<AgentHandle> {
        let data_dir = self.dir.path().join(gateway);
        std::fs::create_dir_all(&data_dir)?;
        let metrics = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        let config = self.dir.path().join(format!("{gateway}.toml"));
        std::fs::write(
            &config,
            self.agent_toml(gateway, password, well, &data_dir, metrics),
        )?;
        let (stop, stopped) = oneshot::channel::<()>();
        let path = config.clone();
        let task = tokio::spawn(async move {
            agent::run(&path, async {
                let _ = stopped.await;
            })
            .await
        });
        Ok(AgentHandle {
            gateway: gateway.to_owned(),
            config,
            data_dir,
            metrics,
            credentials: self.mqtt_credentials(gateway, password),
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// Stops agent `i` gracefully, runs `between` (e.g. to damage or delete its buffer),
    /// then starts it again with the same config, data directory and metrics port.
    pub async fn restart_agent(
        &mut self,
        i: usize,
        between: impl FnOnce(&Path) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let agent = &mut self.agents[i];
        agent.stop().await?;
        between(&agent.data_dir)?;
        let (stop, stopped) = oneshot::channel::<()>();
        let path = agent.config.clone();
        agent.task = Some(tokio::spawn(async move {
            agent::run(&path, async {
                let _ = stopped.await;
            })
            .await
        }));
        agent.stop = Some(stop);
        Ok(())
    }

    /// Ends a passing test: stops the agents and the ingester and drops the test's
    /// database (a failing test returns early and leaves it for a post-mortem).
    pub async fn finish(mut self) -> anyhow::Result<()> {
        for a in &mut self.agents {
            a.stop().await?;
        }
        self.kill_ingester();
        self.db.pool().close().await;
        crate::load::drop_database(&self.database_url).await
    }

    /// Total samples in `telemetry`.
    pub async fn telemetry_rows(&self) -> anyhow::Result<i64> {
        Ok(sqlx::query_scalar("SELECT count(*) FROM telemetry")
            .fetch_one(self.db.pool())
            .await?)
    }

    /// Waits until `telemetry` holds at least `rows` rows.
    pub async fn wait_rows(&self, rows: i64, within: Duration) -> anyhow::Result<i64> {
        let deadline = Instant::now() + within;
        loop {
            let n = self.telemetry_rows().await?;
            if n >= rows {
                return Ok(n);
            }
            if Instant::now() > deadline {
                bail!("only {n} telemetry rows after {within:?}, wanted {rows}");
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Stops every agent, delivers what their buffers still hold through the real uplink,
    /// and checks that every batch ever created is stored exactly once with all its
    /// samples. Returns (batches, samples) stored.
    pub async fn verify_exactly_once(&mut self) -> anyhow::Result<(u64, u64)> {
        for a in &mut self.agents {
            a.stop().await?;
        }
        let mut expected_batches = 0u64;
        for a in &self.agents {
            let stopped = StoppedAgent {
                tenant: TENANT,
                gateway: &a.gateway,
                data_dir: &a.data_dir,
                credentials: &a.credentials,
            };
            let created = crate::drain::drain(stopped, self.broker.v4_port)
                .await
                .with_context(|| format!("draining {}", a.gateway))?;
            let stored: Vec<i64> = sqlx::query_scalar(
                "SELECT b.seq FROM ingested_batches b JOIN gateways g ON g.id = b.gateway_id
                 WHERE g.slug = $1 ORDER BY b.seq",
            )
            .bind(&a.gateway)
            .fetch_all(self.db.pool())
            .await?;
            let want: Vec<i64> = (1..=created as i64).collect();
            ensure!(
                stored == want,
                "{}: created seqs 1..={created}, stored {} seqs (missing {:?}, extra {:?})",
                a.gateway,
                stored.len(),
                want.iter()
                    .filter(|s| !stored.contains(s))
                    .take(10)
                    .collect::<Vec<_>>(),
                stored
                    .iter()
                    .filter(|s| !want.contains(s))
                    .take(10)
                    .collect::<Vec<_>>()
            );
            expected_batches += created;
        }
        let row = sqlx::query("SELECT count(*)::bigint AS n, coalesce(sum(samples), 0)::bigint AS s FROM ingested_batches")
            .fetch_one(self.db.pool())
            .await?;
        let (batches, samples): (i64, i64) = (row.get("n"), row.get("s"));
        ensure!(
            batches as u64 == expected_batches,
            "{batches} batches stored, {expected_batches} created"
        );
        let rows = self.telemetry_rows().await?;
        ensure!(
            rows == samples,
            "telemetry holds {rows} rows but the stored batches carried {samples} samples"
        );
        let dups: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM (SELECT series_id, time FROM telemetry GROUP BY 1, 2 HAVING count(*) > 1) d",
        )
        .fetch_one(self.db.pool())
        .await?;
        ensure!(
            dups == 0,
            "{dups} (series, time) pairs stored more than once"
        );
        Ok((batches as u64, samples as u64))
    }

    /// Compares up to `limit` stored good samples with the simulator's model value at their
    /// timestamp (or one second either side, as a poll may straddle a second), after the
    /// profile's scaling. Returns how many were compared.
    pub async fn verify_values(&self, limit: i64) -> anyhow::Result<usize> {
        let rows = sqlx::query(
            "SELECT (extract(epoch FROM t.time) * 1000)::bigint AS ms, t.value, d.name AS device, s.tag
             FROM telemetry t JOIN series s ON s.id = t.series_id JOIN devices d ON d.id = s.device_id
             WHERE t.quality = 0 AND t.value IS NOT NULL ORDER BY random() LIMIT $1",
        )
        .bind(limit)
        .fetch_all(self.db.pool())
        .await?;
        let mut compared = 0;
        for row in rows {
            let (ms, value, device, tag): (i64, f64, String, String) = (
                row.get("ms"),
                row.get("value"),
                row.get("device"),
                row.get("tag"),
            );
            let endpoint = self
                .simulator
                .endpoints()
                .into_iter()
                .find(|e| e.device == device);
            let Some(endpoint) = endpoint else {
                bail!("stored device {device} is not simulated")
            };
            let profile =
                firmware_profiles::builtin_profile(&endpoint.profile).context("profile")?;
            let tag = profile
                .tags
                .iter()
                .find(|t| t.name == tag)
                .with_context(|| format!("tag {tag} not in profile"))?;
            let matches = [ms, ms - 1000, ms + 1000].iter().any(|&at| {
                self.simulator
                    .expected(&device, &tag.name, at)
                    .and_then(|raw| tag.to_engineering(&raw))
                    .is_some_and(|want| {
                        (want - value).abs() <= tag.scale.abs() * 0.5 + 1e-6 * want.abs()
                    })
            });
            ensure!(
                matches,
                "{device}/{} at {ms}: stored {value}, simulator disagrees",
                tag.name
            );
            compared += 1;
        }
        Ok(compared)
    }
}

/// Reads one counter or gauge from an agent's `/metrics`.
pub async fn agent_metric(agent: &AgentHandle, name: &str) -> anyhow::Result<f64> {
    let resp = testkit::http::get(agent.metrics, "/metrics").await;
    resp.text()
        .lines()
        .find_map(|l| {
            l.strip_prefix(name)
                .and_then(|rest| rest.trim().parse::<f64>().ok())
        })
        .with_context(|| format!("metric {name} not exposed"))
}
