//! Shared fixtures of the ingester and broker integration tests (`tests/ingest_*.rs`,
//! `tests/broker_*.rs`): a scratch PostgreSQL database, an embedded rumqttd on ephemeral
//! ports, a private Mosquitto, a TCP proxy that can cut PostgreSQL, and a fake gateway
//! that behaves like the agent's uplink (re-sends until acked).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command as Process, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::scratch::ScratchDb;
use base::Secret;
use broker::{BrokerAuth, EmbeddedBroker, FrontOptions};
use ingest::{IngestOptions, IngestStats, Ingester, MqttEndpoint};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use store::{BackendChoice, Db, GatewayId, StorageOptions};
use tokio::task::JoinHandle;
use wire::topic::Kind;
use wire::{
    Ack, Batch, BatchHeader, Birth, Command, DeviceEntry, Frame, MessageKey, MetricEntry, Quality,
    Sample, Value,
};

pub const TENANT: &str = "acme";
pub const INGESTER_USER: &str = "wp-ingester-1";
pub const INGESTER_PASSWORD: &str = "ingester-secret-for-tests";
/// Generous deadline for anything to happen on a loaded 2-core machine.
pub const DEADLINE: Duration = Duration::from_secs(60);

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,rumqttd=off".into()),
        )
        .with_test_writer()
        .try_init();
}

/// Polls `cond` every 50 ms until it holds; panics with `what` after [`DEADLINE`].
pub async fn wait_until<F, Fut>(what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !cond().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A scratch database, migrated for the plain PostgreSQL back-end.
pub struct TestDb {
    pub db: Db,
    pub scratch: ScratchDb,
}

impl TestDb {
    pub async fn new(prefix: &str) -> TestDb {
        let scratch = ScratchDb::create(prefix).await.expect("scratch database");
        let db = Db::connect_with(scratch.url(), storage_options())
            .await
            .expect("connect");
        db.migrate().await.expect("migrate");
        TestDb { db, scratch }
    }

    /// Registers gateway `gateway` of [`TENANT`]; returns its secret.
    pub async fn provision(&self, gateway: &str) -> String {
        self.provision_in(TENANT, gateway).await
    }

    pub async fn provision_in(&self, tenant: &str, gateway: &str) -> String {
        let secret = format!("secret-of-{tenant}-{gateway}-0123456789");
        self.db
            .provision_gateway(tenant, "pad-1", gateway, &secret)
            .await
            .expect("provision");
        secret
    }

    pub async fn gateway_id(&self, gateway: &str) -> GatewayId {
        self.db
            .lookup_gateway(TENANT, gateway)
            .await
            .unwrap()
            .expect("gateway exists")
            .id
    }

    pub async fn count(&self, table: &str) -> i64 {
        sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
            .fetch_one(self.db.pool())
            .await
            .unwrap()
    }

    /// Telemetry rows as (time ms, metric, value, quality), ordered.
    pub async fn telemetry(&self) -> Vec<(i64, String, Option<f64>, i16)> {
        sqlx::query_as(
            "SELECT (extract(epoch FROM t.time) * 1000)::bigint, s.metric, t.value, t.quality
             FROM telemetry t JOIN series s ON s.id = t.series_id
             ORDER BY t.time, s.metric",
        )
        .fetch_all(self.db.pool())
        .await
        .unwrap()
    }

    /// `ingest_rejections.reason` values, oldest first.
    pub async fn rejections(&self) -> Vec<String> {
        sqlx::query_scalar("SELECT reason FROM ingest_rejections ORDER BY id")
            .fetch_all(self.db.pool())
            .await
            .unwrap()
    }

    pub async fn finish(self) {
        self.db.pool().close().await;
        self.scratch.drop_db().await.expect("drop scratch database");
    }
}

pub fn storage_options() -> StorageOptions {
    StorageOptions {
        backend: BackendChoice::Postgres,
        ..StorageOptions::default()
    }
}

/// Ingest options tuned for tests: short delays, fast retries.
pub fn test_options() -> IngestOptions {
    IngestOptions {
        max_batch_delay: Duration::from_millis(30),
        retry_initial: Duration::from_millis(100),
        retry_max: Duration::from_millis(500),
        rebirth_min_interval: Duration::from_millis(500),
        ..IngestOptions::default()
    }
}

pub fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn broker_config_dir() -> PathBuf {
    manifest_dir().join("../../broker-config")
}

/// A `cloud.toml` for the `wellpulse-cloud` command in tests, written to `dir`: the
/// database, the test ingester's login and the embedded broker from `rumqttd-dev.toml`,
/// then the sections in `extra` (TOML text).
pub fn write_cloud_config(dir: &Path, database_url: &str, extra: &str) -> PathBuf {
    let path = dir.join("cloud.toml");
    let text = format!(
        r#"
[database]
url = "{database_url}"
[broker]
client_id = "wp-ingester-cli"
username = "{INGESTER_USER}"
password = "{INGESTER_PASSWORD}"
[broker.embedded]
config = "{}"
listener = "dev5"
{extra}"#,
        broker_config_dir().join("rumqttd-dev.toml").display()
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// The embedded broker from `broker-config/rumqttd-dev.toml`, authenticating against `db`.
pub struct Broker {
    pub broker: EmbeddedBroker,
    /// MQTT 5 front listener (ingesters, MQTT 5 gateways).
    pub v5: SocketAddr,
    /// MQTT 3.1.1 front listener (fake gateways).
    pub v4: SocketAddr,
}

impl Broker {
    /// With the default front limits.
    pub async fn start(db: &Db) -> Broker {
        Broker::start_with(db, FrontOptions::default()).await
    }

    pub async fn start_with(db: &Db, options: FrontOptions) -> Broker {
        let config = broker::load_config(&broker_config_dir().join("rumqttd-dev.toml")).unwrap();
        let auth = BrokerAuth::new(
            db.clone(),
            INGESTER_USER.to_owned(),
            Secret::new(INGESTER_PASSWORD),
        );
        let broker =
            tokio::task::spawn_blocking(move || EmbeddedBroker::start_with(config, auth, options))
                .await
                .unwrap()
                .expect("embedded broker starts");
        let v5 = broker.listener("dev5").unwrap().connect_addr();
        let v4 = broker.listener("dev4").unwrap().connect_addr();
        Broker { broker, v5, v4 }
    }

    /// rumqttd's own MQTT 3.1.1 listener behind the front, and the password it accepts
    /// (any username): for tests of what the ingester does when a broker lets anything
    /// through, and for measuring the front's cost.
    pub fn direct_v4(&self) -> (SocketAddr, String) {
        let (addr, password) = self.broker.backend("dev4").unwrap();
        (addr, password.expose().to_owned())
    }

    /// rumqttd's own MQTT 5 listener behind the front (see [`Broker::direct_v4`]).
    pub fn direct_v5(&self) -> (SocketAddr, String) {
        let (addr, password) = self.broker.backend("dev5").unwrap();
        (addr, password.expose().to_owned())
    }

    pub fn ingester_endpoint(&self, client_id: &str) -> MqttEndpoint {
        ingester_endpoint(self.v5, client_id, INGESTER_USER)
    }
}

pub fn ingester_endpoint(addr: SocketAddr, client_id: &str, username: &str) -> MqttEndpoint {
    MqttEndpoint {
        host: addr.ip().to_string(),
        port: addr.port(),
        tls: None,
        client_id: client_id.to_owned(),
        username: username.to_owned(),
        password: Secret::new(INGESTER_PASSWORD),
    }
}

/// Starts an ingester and waits until its subscriptions are active.
pub async fn start_ingester(db: &Db, endpoint: &MqttEndpoint, options: IngestOptions) -> Ingester {
    let ingester = Ingester::start(db.clone(), endpoint, options).expect("ingester starts");
    let stats = Arc::clone(ingester.stats());
    wait_until("ingester subscriptions", || {
        let stats = Arc::clone(&stats);
        async move { stats.snapshot().mqtt_subscribed >= 1 }
    })
    .await;
    ingester
}

/// A device catalog: `pump-1` with tubing pressure (×0.1 psi), pump state, valve open.
pub fn birth(boot_id: u64) -> Birth {
    let metric = |alias: u16, canonical: &str, unit: &str, scale: f64, offset: f64| MetricEntry {
        alias,
        canonical: canonical.to_owned(),
        tag: format!("tag_{canonical}"),
        unit: unit.to_owned(),
        scale,
        offset,
        writable: false,
        kind: None,
    };
    Birth {
        boot_id,
        ts_ms: 1_700_000_000_000,
        agent_version: "0.1.0-test".to_owned(),
        config_hash: "cafe".to_owned(),
        devices: vec![DeviceEntry {
            alias: 0,
            name: "pump-1".to_owned(),
            profile: "rod-pump-controller".to_owned(),
            info: vec![("serial".to_owned(), "SN-1".to_owned())],
            metrics: vec![
                metric(0, "tubing_pressure_psi", "psi", 0.1, 0.0),
                metric(1, "flow_temperature_f", "degF", 0.5, -40.0),
                metric(2, "valve_open", "bool", 1.0, 0.0),
            ],
        }],
    }
}

/// A batch of one frame at `ts_ms`: tubing pressure raw `raw`, temperature raw 200
/// (→ 60 degF), valve open, and nothing else.
pub fn batch(seq: u64, boot_id: u64, ts_ms: i64, raw: i64) -> Batch {
    Batch {
        header: BatchHeader {
            epoch: 0,
            seq,
            boot_id,
            historical: false,
            status: Some(wire::BufferStatus {
                pending_batches: 3,
                pending_bytes: 1200,
                oldest_age_ms: 5000,
                dropped_samples: 0,
                dropped_batches: 0,
            }),
        },
        frames: vec![Frame {
            device: 0,
            ts_ms,
            samples: vec![
                Sample {
                    metric: 0,
                    value: Some(Value::Int(raw)),
                    quality: Quality::Good,
                },
                Sample {
                    metric: 1,
                    value: Some(Value::Int(200)),
                    quality: Quality::Good,
                },
                Sample {
                    metric: 2,
                    value: Some(Value::Bool(true)),
                    quality: Quality::Good,
                },
            ],
        }],
    }
}

/// A gateway stand-in: MQTT 3.1.1 client logged in as `{tenant}/{gateway}`, sealing what
/// it publishes with its message key (derived from its secret, as the agent does) and
/// collecting the acks and commands the cloud sends it that open with that key (others
/// are only counted: [`FakeGateway::unauthenticated`]).
pub struct FakeGateway {
    pub tenant: String,
    pub gateway: String,
    pub client: AsyncClient,
    /// The gateway's message key.
    pub key: MessageKey,
    acks: Arc<Mutex<Vec<Ack>>>,
    commands: Arc<Mutex<Vec<Command>>>,
    unauthenticated: Arc<std::sync::atomic::AtomicU64>,
    subscribed: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

impl FakeGateway {
    pub async fn connect(
        addr: SocketAddr,
        tenant: &str,
        gateway: &str,
        secret: &str,
    ) -> FakeGateway {
        let mut options = MqttOptions::new(
            broker::gateway_client_id(tenant, gateway),
            addr.ip().to_string(),
            addr.port(),
        );
        options
            .set_credentials(format!("{tenant}/{gateway}"), secret)
            .set_keep_alive(Duration::from_secs(30))
            .set_max_packet_size(1 << 20, 1 << 20);
        let (client, mut eventloop) = AsyncClient::new(options, 100);
        let key = MessageKey::derive(secret.as_bytes());
        let acks = Arc::new(Mutex::new(Vec::new()));
        let commands = Arc::new(Mutex::new(Vec::new()));
        let unauthenticated = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let subscribed = Arc::new(AtomicBool::new(false));
        let (ack_topic, cmd_topic) = (
            wire::topic::topic(tenant, gateway, Kind::Ack),
            wire::topic::topic(tenant, gateway, Kind::Cmd),
        );
        let task = {
            let (acks, commands, subscribed, client) = (
                acks.clone(),
                commands.clone(),
                subscribed.clone(),
                client.clone(),
            );
            let (key, unauthenticated) = (key.clone(), unauthenticated.clone());
            tokio::spawn(async move {
                loop {
                    match eventloop.poll().await {
                        Ok(Event::Incoming(Packet::ConnAck(_))) => {
                            let client = client.clone();
                            let (a, c) = (ack_topic.clone(), cmd_topic.clone());
                            tokio::spawn(async move {
                                client.subscribe(a, QoS::AtLeastOnce).await.unwrap();
                                client.subscribe(c, QoS::AtLeastOnce).await.unwrap();
                            });
                        }
                        Ok(Event::Incoming(Packet::SubAck(_))) => {
                            subscribed.store(true, Ordering::SeqCst);
                        }
                        Ok(Event::Incoming(Packet::Publish(p))) => {
                            let Ok(opened) = wire::seal::open([&key], &p.topic, &p.payload) else {
                                unauthenticated.fetch_add(1, Ordering::SeqCst);
                                continue;
                            };
                            if p.topic == ack_topic {
                                acks.lock()
                                    .unwrap()
                                    .push(Ack::decode(opened.message).unwrap());
                            } else if p.topic == cmd_topic {
                                commands
                                    .lock()
                                    .unwrap()
                                    .push(Command::decode(opened.message).unwrap());
                            }
                        }
                        Ok(_) => {}
                        Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                    }
                }
            })
        };
        let gw = FakeGateway {
            tenant: tenant.to_owned(),
            gateway: gateway.to_owned(),
            client,
            key,
            acks,
            commands,
            unauthenticated,
            subscribed,
            task,
        };
        let flag = gw.subscribed.clone();
        wait_until("fake gateway subscriptions", || {
            let flag = flag.clone();
            async move { flag.load(Ordering::SeqCst) }
        })
        .await;
        gw
    }

    /// Publishes `message` on this gateway's topic, sealed with its key (as the agent does).
    pub async fn publish(&self, kind: Kind, message: Vec<u8>) {
        self.publish_on(&self.tenant, &self.gateway, kind, message)
            .await;
    }

    /// Publishes `message` on any gateway's topic, sealed with *this* gateway's key: on
    /// another gateway's topic that is the best a hostile gateway can do (spoofing; the
    /// broker may or may not let it through, the cloud refuses the seal).
    pub async fn publish_on(&self, tenant: &str, gateway: &str, kind: Kind, message: Vec<u8>) {
        let topic = wire::topic::topic(tenant, gateway, kind);
        let payload = wire::seal::seal(&self.key, &topic, &message);
        self.publish_raw_on(tenant, gateway, kind, payload).await;
    }

    /// Publishes `payload` as is (no seal) on any gateway's topic.
    pub async fn publish_raw_on(&self, tenant: &str, gateway: &str, kind: Kind, payload: Vec<u8>) {
        self.client
            .publish(
                wire::topic::topic(tenant, gateway, kind),
                QoS::AtLeastOnce,
                false,
                payload,
            )
            .await
            .unwrap();
    }

    /// Whether an ack covering `seq` arrived.
    pub fn acked(&self, seq: u64) -> bool {
        self.acks.lock().unwrap().iter().any(|a| a.contains(seq))
    }

    /// The rejections (negative acks) that named `seq`.
    pub fn rejections_of(&self, seq: u64) -> Vec<wire::Rejected> {
        self.acks
            .lock()
            .unwrap()
            .iter()
            .flat_map(|a| a.rejected.iter())
            .filter(|r| r.contains(seq))
            .cloned()
            .collect()
    }

    /// How many acks covering `seq` arrived.
    pub fn ack_count(&self, seq: u64) -> usize {
        self.acks
            .lock()
            .unwrap()
            .iter()
            .filter(|a| a.contains(seq))
            .count()
    }

    pub fn commands(&self) -> Vec<Command> {
        self.commands.lock().unwrap().clone()
    }

    /// Acks and commands received that did not open with this gateway's key.
    pub fn unauthenticated(&self) -> u64 {
        self.unauthenticated.load(Ordering::SeqCst)
    }

    /// Publishes a birth until the cloud has its catalog (as the agent re-publishes on
    /// rebirth requests).
    pub async fn send_birth(&self, db: &TestDb, birth: &Birth) {
        let gateway = db.gateway_id(&self.gateway).await;
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            self.publish(Kind::Birth, birth.encode()).await;
            for _ in 0..40 {
                if db
                    .db
                    .alias_map(gateway, birth.boot_id)
                    .await
                    .unwrap()
                    .is_some()
                {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "birth never applied"
            );
        }
    }

    /// Publishes a batch, re-sending every 2 s until an ack covers it (the agent's
    /// behaviour with a short ack timeout).
    pub async fn send_until_acked(&self, batch: &Batch) {
        let payload = batch.encode().unwrap();
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            self.publish(Kind::Data, payload.clone()).await;
            for _ in 0..40 {
                if self.acked(batch.header.seq) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "batch {} never acked",
                batch.header.seq
            );
        }
    }
}

impl Drop for FakeGateway {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Snapshot helper.
pub fn stats_of(ingester: &Ingester) -> Arc<IngestStats> {
    Arc::clone(ingester.stats())
}

/// A private Mosquitto started from the shipped `broker-config/mosquitto.conf`, with only
/// what must differ on a test machine rewritten: listener ports (ephemeral), file paths
/// (a temp dir), and the TLS listener's certificate files (generated). Users: the given
/// gateways and `wp-ingester-1`. The ACL is generated by `broker::mosquitto::acl` for
/// exactly those gateways (what `wellpulse-cloud mosquitto-acl` writes for a registry
/// holding them), unless [`Mosquitto::start_with_acl`] gives another one.
pub struct Mosquitto {
    pub plain: SocketAddr,
    pub tls: SocketAddr,
    pub ca_file: PathBuf,
    child: Child,
    pub dir: tempfile::TempDir,
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub const MOSQUITTO: &str = "/usr/sbin/mosquitto";

impl Mosquitto {
    /// `users`: (username, password) pairs added to the password file; those of the form
    /// `tenant/gateway` are the registry the ACL is generated from.
    pub fn start(users: &[(&str, &str)]) -> Mosquitto {
        let gateways: Vec<(String, String)> = users
            .iter()
            .filter_map(|(u, _)| broker::gateway_identity(u))
            .map(|(t, g)| (t.to_owned(), g.to_owned()))
            .collect();
        let acl = broker::mosquitto::acl(&gateways, &[INGESTER_USER.to_owned()]);
        Mosquitto::start_with_acl(users, &acl)
    }

    /// [`Mosquitto::start`] with the ACL file `acl`.
    pub fn start_with_acl(users: &[(&str, &str)], acl: &str) -> Mosquitto {
        let dir = tempfile::tempdir().unwrap();
        let path = |name: &str| dir.path().join(name);
        // Mosquitto drops root privileges to its own user: the files must be readable.
        set_mode(dir.path(), 0o777);
        generate_certificate(dir.path());
        let passwd = path("passwd");
        std::fs::write(&passwd, "").unwrap();
        for (user, password) in users
            .iter()
            .copied()
            .chain([(INGESTER_USER, INGESTER_PASSWORD)])
        {
            // As documented: the secret on standard input (twice), never as an argument.
            let mut child = Process::new("mosquitto_passwd")
                .arg(&passwd)
                .arg(user)
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .spawn()
                .expect("mosquitto_passwd runs");
            let mut stdin = child.stdin.take().expect("stdin");
            std::io::Write::write_all(&mut stdin, format!("{password}\n{password}\n").as_bytes())
                .expect("secret written");
            drop(stdin);
            assert!(child.wait().unwrap().success(), "mosquitto_passwd failed");
        }
        std::fs::write(path("acl"), acl).unwrap();
        for f in ["passwd", "acl", "broker.crt", "broker.key"] {
            set_mode(&path(f), 0o644);
        }
        let (plain_port, tls_port) = (free_port(), free_port());
        let shipped = std::fs::read_to_string(broker_config_dir().join("mosquitto.conf")).unwrap();
        let conf = rewrite_mosquitto_conf(&shipped, dir.path(), plain_port, tls_port);
        std::fs::write(path("mosquitto.conf"), conf).unwrap();
        let child = spawn_mosquitto(dir.path());
        let plain: SocketAddr = format!("127.0.0.1:{plain_port}").parse().unwrap();
        let tls: SocketAddr = format!("127.0.0.1:{tls_port}").parse().unwrap();
        let mut mosquitto = Mosquitto {
            plain,
            tls,
            ca_file: path("ca.crt"),
            child,
            dir,
        };
        mosquitto.wait_listening();
        mosquitto
    }

    /// Mosquitto from the shipped `mosquitto-dynsec.conf` (the dynamic-security plugin),
    /// set up as `broker-config/README.md` says: the plugin's state made with one admin
    /// client, a client per user of `users` (and the ingester) created by the admin, then
    /// the roles from the registry by `broker::mosquitto::dynsec::apply`. `users` of the
    /// form `tenant/gateway` are the registry.
    pub async fn start_dynsec(users: &[(&str, &str)]) -> Mosquitto {
        let dir = tempfile::tempdir().unwrap();
        let path = |name: &str| dir.path().join(name);
        set_mode(dir.path(), 0o777);
        generate_certificate(dir.path());
        std::fs::write(
            path("dynamic-security.json"),
            dynsec_initial_state(DYNSEC_ADMIN, DYNSEC_ADMIN_PASSWORD).to_string(),
        )
        .unwrap();
        for f in ["dynamic-security.json", "broker.crt", "broker.key"] {
            set_mode(&path(f), 0o666);
        }
        let (plain_port, tls_port) = (free_port(), free_port());
        let shipped =
            std::fs::read_to_string(broker_config_dir().join("mosquitto-dynsec.conf")).unwrap();
        let conf = rewrite_mosquitto_conf(&shipped, dir.path(), plain_port, tls_port);
        std::fs::write(path("mosquitto.conf"), conf).unwrap();
        let child = spawn_mosquitto(dir.path());
        let mut mosquitto = Mosquitto {
            plain: format!("127.0.0.1:{plain_port}").parse().unwrap(),
            tls: format!("127.0.0.1:{tls_port}").parse().unwrap(),
            ca_file: path("ca.crt"),
            child,
            dir,
        };
        mosquitto.wait_listening();
        let admin = mosquitto.dynsec_admin();
        let all = users
            .iter()
            .copied()
            .chain([(INGESTER_USER, INGESTER_PASSWORD)]);
        let create: Vec<serde_json::Value> = all
            .map(|(user, password)| {
                serde_json::json!({
                    "command": "createClient", "username": user, "password": password,
                })
            })
            .collect();
        let responses =
            broker::mosquitto::dynsec::command(&admin, serde_json::json!({ "commands": create }))
                .await
                .expect("clients created");
        assert!(
            responses.iter().all(|r| r.get("error").is_none()),
            "createClient: {responses:?}"
        );
        let gateways: Vec<(String, String)> = users
            .iter()
            .filter_map(|(u, _)| broker::gateway_identity(u))
            .map(|(t, g)| (t.to_owned(), g.to_owned()))
            .collect();
        let applied =
            broker::mosquitto::dynsec::apply(&admin, &gateways, &[INGESTER_USER.to_owned()])
                .await
                .expect("roles applied");
        assert!(applied.missing_clients.is_empty(), "{applied:?}");
        mosquitto
    }

    /// The dynamic-security plugin's admin, on the plain listener.
    pub fn dynsec_admin(&self) -> broker::mosquitto::dynsec::Admin {
        broker::mosquitto::dynsec::Admin {
            host: self.plain.ip().to_string(),
            port: self.plain.port(),
            username: DYNSEC_ADMIN.to_owned(),
            password: base::Secret::new(DYNSEC_ADMIN_PASSWORD),
        }
    }

    /// Kills Mosquitto (a broker crash) and starts it again on the same ports.
    pub fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.child = spawn_mosquitto(self.dir.path());
        self.wait_listening();
    }

    fn wait_listening(&mut self) {
        let deadline = std::time::Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("mosquitto exited with {status}: {}", self.log());
            }
            let up = [self.plain, self.tls]
                .iter()
                .all(|a| std::net::TcpStream::connect(a).is_ok());
            if up {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "mosquitto not listening: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("mosquitto.log")).unwrap_or_default()
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn_mosquitto(dir: &Path) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("mosquitto.log"))
        .unwrap();
    Process::new(MOSQUITTO)
        .arg("-c")
        .arg(dir.join("mosquitto.conf"))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("mosquitto starts")
}

/// The dynamic-security plugin's admin in tests.
pub const DYNSEC_ADMIN: &str = "admin";
/// Its password (a throwaway of the test's own broker).
pub const DYNSEC_ADMIN_PASSWORD: &str = "dynsec-admin-test-secret";

/// The plugin's state as `mosquitto_ctrl dynsec init FILE USER` makes it: one admin client
/// (PBKDF2-SHA512 password hash) whose role may command the plugin, every other access
/// denied by default.
pub fn dynsec_initial_state(user: &str, password: &str) -> serde_json::Value {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let salt: [u8; 12] = rand::random();
    let iterations = 101;
    let mut hash = [0u8; 64];
    pbkdf2::pbkdf2_hmac::<sha2::Sha512>(password.as_bytes(), &salt, iterations, &mut hash);
    let allow = |acltype: &str, topic: &str| serde_json::json!({ "acltype": acltype, "topic": topic, "allow": true });
    serde_json::json!({
        "clients": [{
            "username": user,
            "password": b64.encode(hash),
            "salt": b64.encode(salt),
            "iterations": iterations,
            "roles": [{ "rolename": "admin" }],
        }],
        "roles": [{
            "rolename": "admin",
            "acls": [
                allow("publishClientSend", "$CONTROL/dynamic-security/#"),
                allow("publishClientReceive", "$CONTROL/dynamic-security/#"),
                allow("subscribePattern", "$CONTROL/dynamic-security/#"),
            ],
        }],
        "defaultACLAccess": {
            "publishClientSend": false,
            "publishClientReceive": false,
            "subscribe": false,
            "unsubscribe": true,
        },
    })
}

/// The shipped config with test-machine paths and ports; every other line unchanged.
pub fn rewrite_mosquitto_conf(shipped: &str, dir: &Path, plain_port: u16, tls_port: u16) -> String {
    let file = |name: &str| dir.join(name).display().to_string();
    shipped
        .lines()
        .map(|line| {
            let mut words = line.split_whitespace();
            match (words.next(), words.next(), words.next()) {
                (Some("listener"), Some("1883"), bind) => {
                    format!("listener {plain_port} {}", bind.unwrap_or(""))
                }
                (Some("listener"), Some("8883"), _) => format!("listener {tls_port} 127.0.0.1"),
                (Some("password_file"), Some(_), _) => format!("password_file {}", file("passwd")),
                (Some("acl_file"), Some(_), _) => format!("acl_file {}", file("acl")),
                (Some("plugin_opt_config_file"), Some(_), _) => {
                    format!("plugin_opt_config_file {}", file("dynamic-security.json"))
                }
                (Some("certfile"), Some(_), _) => format!("certfile {}", file("broker.crt")),
                (Some("keyfile"), Some(_), _) => format!("keyfile {}", file("broker.key")),
                (Some("persistence_location"), Some(_), _) => {
                    format!("persistence_location {}/", dir.display())
                }
                _ => line.to_owned(),
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A private CA (`ca.crt`) and a server certificate it signed for `localhost`/127.0.0.1
/// (`broker.crt`, `broker.key`), made by the shipped `broker-config/make-broker-cert.sh`,
/// the documented way to make them. rustls (webpki) needs the two to be distinct: a
/// self-signed CA certificate is refused as a server certificate.
pub fn generate_certificate(dir: &Path) {
    let out = Process::new(broker_config_dir().join("make-broker-cert.sh"))
        .arg(dir)
        .args(["localhost", "127.0.0.1"])
        .env("DAYS", "2")
        .output()
        .expect("make-broker-cert.sh runs");
    assert!(
        out.status.success(),
        "make-broker-cert.sh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}
