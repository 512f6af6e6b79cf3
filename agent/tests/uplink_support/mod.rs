//! Test rig for the uplink: real brokers in child processes (so they can be killed and
//! restarted), a test "cloud" that decodes batches and acks them like the real ingester,
//! and a harness that runs the uplink on a real buffer.
//!
//! Shared by several test binaries, each of which uses a subset of it.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agent::buffer::{Buffer, BufferLimits};
use agent::uplink::{Uplink, UplinkConfig, UplinkError, UplinkStats};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS, TlsConfiguration, Transport};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use wire::topic::Kind;

/// Env var that turns a test binary into a rumqttd broker listening on this port.
pub const RUMQTTD_CHILD_PORT: &str = "WP_RUMQTTD_CHILD_PORT";
/// Name of the `#[ignore]`d test function every broker-using test binary defines as
///
/// ```ignore
/// #[test]
/// #[ignore = "broker child process entry point"]
/// fn rumqttd_child() {
///     uplink_support::rumqttd_child_main();
/// }
/// ```
pub const RUMQTTD_CHILD_TEST: &str = "rumqttd_child";

/// Body of the broker child process: runs rumqttd forever when asked to by the parent,
/// and exits when the parent dies.
pub fn rumqttd_child_main() {
    let Ok(port) = std::env::var(RUMQTTD_CHILD_PORT) else {
        return;
    };
    let parent = std::os::unix::process::parent_id();
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(Duration::from_millis(200));
            if std::os::unix::process::parent_id() != parent {
                std::process::exit(0);
            }
        }
    });
    let config = format!(
        r#"
        id = 0
        [router]
        max_connections = 1000
        max_outgoing_packet_count = 1000
        max_segment_size = 104857600
        max_segment_count = 10
        [v4.1]
        name = "v4-1"
        listen = "127.0.0.1:{port}"
        next_connection_delay_ms = 1
        [v4.1.connections]
        connection_timeout_ms = 10000
        max_payload_size = 5242880
        max_inflight_count = 1000
        dynamic_filters = true
        "#
    );
    let config: rumqttd::Config = toml::from_str(&config).expect("rumqttd config");
    rumqttd::Broker::new(config).start().expect("rumqttd runs");
}

/// Which broker implementation a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerKind {
    /// Embedded rumqttd, in a child process re-executing the test binary.
    Rumqttd,
    /// A private `/usr/sbin/mosquitto`.
    Mosquitto,
}

/// A broker child process on a fixed port that survives restarts.
pub struct Broker {
    kind: BrokerKind,
    pub port: u16,
    child: Option<Child>,
    dir: tempfile::TempDir,
    /// Mosquitto config (with the listener lines).
    mosquitto_conf: String,
}

/// A free TCP port on loopback (bound, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

impl Broker {
    /// Starts a plain broker on a free port.
    pub fn start(kind: BrokerKind) -> Broker {
        let port = free_port();
        let conf = format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n\
             max_queued_messages 100000\nmax_inflight_messages 0\n"
        );
        Broker::start_with(kind, port, conf)
    }

    /// Starts mosquitto with the given config file content; `port` is where it listens.
    pub fn mosquitto_with_conf(port: u16, conf: String) -> Broker {
        Broker::start_with(BrokerKind::Mosquitto, port, conf)
    }

    fn start_with(kind: BrokerKind, port: u16, mosquitto_conf: String) -> Broker {
        let mut broker = Broker {
            kind,
            port,
            child: None,
            dir: tempfile::tempdir().expect("broker dir"),
            mosquitto_conf,
        };
        broker.restart();
        broker
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Kills the broker (SIGKILL: no goodbye to clients, sessions lost).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        wait_closed(self.port);
    }

    /// (Re)starts the broker on its port and waits until it accepts connections.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "broker already running");
        let child = match self.kind {
            BrokerKind::Rumqttd => Command::new(std::env::current_exe().expect("test binary"))
                .args([
                    RUMQTTD_CHILD_TEST,
                    "--exact",
                    "--ignored",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(RUMQTTD_CHILD_PORT, self.port.to_string())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn rumqttd child"),
            BrokerKind::Mosquitto => {
                let conf = self.dir.path().join("mosquitto.conf");
                std::fs::write(&conf, &self.mosquitto_conf).expect("write mosquitto.conf");
                Command::new("/usr/sbin/mosquitto")
                    .arg("-c")
                    .arg(&conf)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("spawn mosquitto")
            }
        };
        self.child = Some(child);
        wait_listening(self.port);
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn wait_listening(port: u16) {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        assert!(
            Instant::now() < deadline,
            "broker on port {port} did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn wait_closed(port: u16) {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
        assert!(
            Instant::now() < deadline,
            "broker on port {port} did not stop"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Polls `check` until it holds or `timeout` passes (then panics with `what`).
pub async fn eventually(timeout: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One received copy of a batch.
#[derive(Debug, Clone)]
pub struct Received {
    pub historical: bool,
    pub samples: usize,
    pub boot_id: u64,
    pub at: Instant,
}

/// What arrived, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    Birth(u64),
    Data(u64),
    Death(u64),
}

/// Everything the test cloud received.
#[derive(Debug, Default)]
pub struct CloudState {
    /// Copies per seq (duplicates allowed on the wire).
    pub batches: BTreeMap<u64, Vec<Received>>,
    pub log: Vec<Seen>,
    pub births: Vec<wire::Birth>,
    /// The publish-time figures of each birth in `births`.
    pub birth_statuses: Vec<Option<wire::BirthStatus>>,
    /// Scripted answers per seq, used up in order; a seq without one is acked.
    pub replies: BTreeMap<u64, VecDeque<Reply>>,
    pub deaths: Vec<wire::Death>,
    pub results: Vec<wire::CommandResult>,
    /// Gateways whose birth arrived on the cloud's current connection; data from any
    /// other gateway triggers a rebirth request, as the real cloud does.
    pub session_births: BTreeSet<(String, String)>,
    /// Rebirth requests sent (the cloud's own command ids start at `REBIRTH_ID_BASE`).
    pub rebirths_requested: u64,
}

/// How the test cloud answers one copy of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Stored: ack it.
    Ack,
    /// Refused, with this reason.
    Reject { permanent: bool, reason: String },
    /// No answer (a lost ack).
    Silent,
}

/// The MQTT password of test gateway `gateway` (the brokers here accept any login; the
/// password matters as the source of the gateway's message key).
pub fn password(gateway: &str) -> String {
    format!("{gateway}-test-password-0123456789")
}

/// The message key of test gateway `gateway`.
pub fn key(gateway: &str) -> wire::MessageKey {
    wire::MessageKey::derive(password(gateway).as_bytes())
}

/// Seals `message` for `topic` with the key of the gateway the topic names.
pub fn seal_for(topic: &str, message: &[u8]) -> Vec<u8> {
    let (_, gateway, _) = wire::topic::parse(topic).expect("topic of our tree");
    wire::seal::seal(&key(&gateway), topic, message)
}

/// A command valid for the next minute.
pub fn command(id: u64, kind: wire::CommandKind) -> wire::Command {
    wire::Command {
        id,
        expires_ms: now_ms() + 60_000,
        kind,
    }
}

/// Ids of the rebirth commands the test cloud sends on its own.
pub const REBIRTH_ID_BASE: u64 = 1 << 40;

/// A test cloud: subscribes to all gateways' data, births, deaths and command results,
/// decodes batches, and acks every batch like the real ingester after its commit.
pub struct Cloud {
    state: Arc<Mutex<CloudState>>,
    acking: Arc<AtomicBool>,
    client: AsyncClient,
    task: JoinHandle<()>,
}

impl Cloud {
    /// Connects to a plain listener on `port` and returns once subscribed.
    pub async fn start(port: u16) -> Cloud {
        Cloud::start_with(port, None).await
    }

    /// Connects (over TLS when `tls` is given) and returns once subscribed.
    pub async fn start_with(port: u16, tls: Option<Arc<rustls::ClientConfig>>) -> Cloud {
        Cloud::start_inner(port, tls, None).await
    }

    /// Connects as the real ingester does about its readiness ([`wire::state`]): a
    /// retained "offline" last will on `wp/v1/_state/{ingester}`, and a retained "online"
    /// of the same session once subscribed, on every (re)connect. Returns once online.
    pub async fn start_announcing(port: u16, ingester: &str) -> Cloud {
        Cloud::start_inner(port, None, Some(ingester.to_owned())).await
    }

    async fn start_inner(
        port: u16,
        tls: Option<Arc<rustls::ClientConfig>>,
        announce: Option<String>,
    ) -> Cloud {
        let id = format!("test-cloud-{}", rand::random::<u32>());
        let mut options = MqttOptions::new(id, "127.0.0.1", port);
        options
            .set_keep_alive(Duration::from_secs(5))
            .set_max_packet_size(8 << 20, 8 << 20)
            .set_inflight(1000);
        let state_topic = announce.as_deref().map(wire::topic::state_topic);
        let mut session_ms = wire::CloudState::new_session(0, now_ms());
        let will = |topic: &str, session_ms: i64| {
            let offline = wire::CloudState {
                online: false,
                session_ms,
            };
            rumqttc::LastWill::new(topic, offline.encode(), QoS::AtLeastOnce, true)
        };
        if let Some(topic) = &state_topic {
            options.set_last_will(will(topic, session_ms));
        }
        if let Some(tls) = tls {
            options.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(tls)));
        }
        let (client, mut eventloop) = AsyncClient::new(options, 10_000);
        let state = Arc::new(Mutex::new(CloudState::default()));
        let acking = Arc::new(AtomicBool::new(true));
        let subscribed = Arc::new(AtomicBool::new(false));
        let task = {
            let (client, state, acking) = (client.clone(), state.clone(), acking.clone());
            let subscribed = subscribed.clone();
            tokio::spawn(async move {
                loop {
                    match eventloop.poll().await {
                        Ok(Event::Incoming(Packet::ConnAck(_))) => {
                            state.lock().expect("cloud state").session_births.clear();
                            client
                                .try_subscribe_many(["data", "birth", "death", "cmd/result"].map(
                                    |kind| {
                                        rumqttc::SubscribeFilter::new(
                                            format!("wp/v1/+/+/{kind}"),
                                            QoS::AtLeastOnce,
                                        )
                                    },
                                ))
                                .expect("cloud subscribe");
                        }
                        Ok(Event::Incoming(Packet::SubAck(_))) => {
                            if let Some(topic) = &state_topic {
                                let online = wire::CloudState {
                                    online: true,
                                    session_ms,
                                };
                                client
                                    .try_publish(
                                        topic.clone(),
                                        QoS::AtLeastOnce,
                                        true,
                                        online.encode(),
                                    )
                                    .expect("cloud online");
                            }
                            subscribed.store(true, Ordering::SeqCst);
                        }
                        Ok(Event::Incoming(Packet::Publish(p))) => {
                            on_message(&client, &state, &acking, &p.topic, &p.payload);
                        }
                        Ok(_) => {}
                        Err(_) => {
                            subscribed.store(false, Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            if let Some(topic) = &state_topic {
                                session_ms = wire::CloudState::new_session(session_ms, now_ms());
                                eventloop
                                    .mqtt_options
                                    .set_last_will(will(topic, session_ms));
                            }
                        }
                    }
                }
            })
        };
        eventually(Duration::from_secs(30), "test cloud subscribed", || {
            subscribed.load(Ordering::SeqCst)
        })
        .await;
        Cloud {
            state,
            acking,
            client,
            task,
        }
    }

    /// Reads the received state.
    pub fn with<R>(&self, f: impl FnOnce(&CloudState) -> R) -> R {
        f(&self.state.lock().expect("cloud state"))
    }

    /// Answers the next copies of `seq` with `replies`, in order (then acks).
    pub fn script(&self, seq: u64, replies: impl IntoIterator<Item = Reply>) {
        let mut state = self.state.lock().expect("cloud state");
        state.replies.entry(seq).or_default().extend(replies);
    }

    /// Copies of `seq` received so far.
    pub fn copies(&self, seq: u64) -> usize {
        self.with(|s| s.batches.get(&seq).map_or(0, Vec::len))
    }

    /// Turns acking on or off (off simulates a cloud that stores nothing).
    pub fn set_acking(&self, on: bool) {
        self.acking.store(on, Ordering::SeqCst);
    }

    /// Sends a command to a gateway, sealed with its key.
    pub fn command(&self, tenant: &str, gateway: &str, command: &wire::Command) {
        self.publish_sealed(tenant, gateway, Kind::Cmd, &command.encode());
    }

    /// Publishes a message on a gateway topic, sealed with that gateway's key.
    pub fn publish_sealed(&self, tenant: &str, gateway: &str, kind: Kind, message: &[u8]) {
        let topic = wire::topic::topic(tenant, gateway, kind);
        let payload = seal_for(&topic, message);
        self.publish_raw(tenant, gateway, kind, payload);
    }

    /// Publishes a cloud state on `ingester`'s state topic.
    pub fn publish_state(&self, ingester: &str, state: wire::CloudState, retain: bool) {
        self.client
            .try_publish(
                wire::topic::state_topic(ingester),
                QoS::AtLeastOnce,
                retain,
                state.encode(),
            )
            .expect("cloud state publish");
    }

    /// Publishes raw bytes on `ingester`'s state topic.
    pub fn publish_raw_state(&self, ingester: &str, payload: Vec<u8>) {
        self.client
            .try_publish(
                wire::topic::state_topic(ingester),
                QoS::AtLeastOnce,
                false,
                payload,
            )
            .expect("cloud state publish");
    }

    /// Publishes raw bytes on a gateway topic (no seal: what a forger could send).
    pub fn publish_raw(&self, tenant: &str, gateway: &str, kind: Kind, payload: Vec<u8>) {
        self.client
            .try_publish(
                wire::topic::topic(tenant, gateway, kind),
                QoS::AtLeastOnce,
                false,
                payload,
            )
            .expect("cloud publish");
    }

    /// Whether every seq in `seqs` was received at least once.
    pub fn has_all(&self, seqs: &[u64]) -> bool {
        self.with(|s| seqs.iter().all(|seq| s.batches.contains_key(seq)))
    }
}

impl Drop for Cloud {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn on_message(
    client: &AsyncClient,
    state: &Mutex<CloudState>,
    acking: &AtomicBool,
    topic: &str,
    payload: &[u8],
) {
    let (tenant, gateway, kind) = wire::topic::parse(topic).expect("topic of our tree");
    let opened = wire::seal::open([&key(&gateway)], topic, payload)
        .unwrap_or_else(|e| panic!("{topic}: the agent seals what it publishes: {e}"));
    let payload = opened.message;
    let mut state = state.lock().expect("cloud state");
    match kind {
        Kind::Data => {
            let batch = wire::Batch::decode(payload).expect("decodable batch");
            let seq = batch.header.seq;
            state.log.push(Seen::Data(seq));
            state.batches.entry(seq).or_default().push(Received {
                historical: batch.header.historical,
                samples: batch.sample_count(),
                boot_id: batch.header.boot_id,
                at: Instant::now(),
            });
            let gateway_key = (tenant.clone(), gateway.clone());
            if !state.session_births.contains(&gateway_key) {
                // Data without a birth on this connection (it was published before we
                // resubscribed): ask for the birth again, once.
                state.session_births.insert(gateway_key);
                state.rebirths_requested += 1;
                let rebirth = command(
                    REBIRTH_ID_BASE + state.rebirths_requested,
                    wire::CommandKind::Rebirth { boot_id: None },
                );
                let topic = wire::topic::topic(&tenant, &gateway, Kind::Cmd);
                let payload = seal_for(&topic, &rebirth.encode());
                client
                    .try_publish(topic, QoS::AtLeastOnce, false, payload)
                    .expect("cloud rebirth request");
            }
            let reply = state
                .replies
                .get_mut(&seq)
                .and_then(VecDeque::pop_front)
                .unwrap_or(Reply::Ack);
            let ack = match reply {
                Reply::Ack => Some(wire::Ack::of([seq])),
                Reply::Reject { permanent, reason } => {
                    let detail = format!("test cloud refuses seq {seq}");
                    let rejected = if permanent {
                        wire::Rejected::permanent([seq], &reason, detail)
                    } else {
                        wire::Rejected::retryable([seq], &reason, detail)
                    };
                    Some(wire::Ack::rejecting([], vec![rejected]))
                }
                Reply::Silent => None,
            };
            if let Some(ack) = ack.filter(|_| acking.load(Ordering::SeqCst)) {
                let topic = wire::topic::topic(&tenant, &gateway, Kind::Ack);
                let payload = seal_for(&topic, &ack.encode());
                client
                    .try_publish(topic, QoS::AtLeastOnce, false, payload)
                    .expect("cloud ack");
            }
        }
        Kind::Birth => {
            let (birth, status) =
                wire::Birth::decode_with_status(payload).expect("decodable birth");
            state.log.push(Seen::Birth(birth.boot_id));
            state.session_births.insert((tenant, gateway));
            state.births.push(birth);
            state.birth_statuses.push(status);
        }
        Kind::Death => {
            let death = wire::Death::decode(payload).expect("decodable death");
            state.log.push(Seen::Death(death.boot_id));
            state.deaths.push(death);
        }
        Kind::CmdResult => {
            let result = wire::CommandResult::decode(payload).expect("decodable result");
            state.results.push(result);
        }
        Kind::Ack | Kind::Cmd => {}
    }
}

/// Test defaults: quick timeouts so tests finish fast on a loaded machine.
pub fn uplink_config(port: u16, gateway: &str) -> UplinkConfig {
    UplinkConfig {
        host: "127.0.0.1".into(),
        port,
        tls: None,
        client_id: format!("{gateway}-{}", rand::random::<u32>()),
        username: Some(gateway.into()),
        password: Some(base::Secret::new(password(gateway))),
        tenant: "test".into(),
        gateway: gateway.into(),
        keep_alive: Duration::from_secs(5),
        in_flight_window: 16,
        ack_timeout: Duration::from_secs(3),
        live_window: Duration::from_secs(5),
        backlog_pace: 50.0,
        reconnect_backoff_min: Duration::from_millis(50),
        reconnect_backoff_max: Duration::from_millis(800),
    }
}

/// A birth for tests.
pub fn birth(boot_id: u64) -> wire::Birth {
    wire::Birth {
        boot_id,
        ts_ms: now_ms(),
        agent_version: "uplink-test".into(),
        config_hash: format!("cfg-{boot_id}"),
        devices: vec![wire::DeviceEntry {
            alias: 0,
            name: "pump-1".into(),
            profile: "rod-pump-controller".into(),
            info: Vec::new(),
            metrics: Vec::new(),
        }],
    }
}

/// A frames block of `samples` samples (one frame per 40 samples).
pub fn block(samples: u16, ts_ms: i64) -> wire::FramesBlock {
    let frames: Vec<wire::Frame> = (0..samples.div_ceil(40))
        .map(|f| wire::Frame {
            device: f,
            ts_ms: ts_ms + i64::from(f),
            samples: (0..samples.min(40 * (f + 1)) - 40 * f)
                .map(|metric| wire::Sample {
                    metric,
                    value: Some(wire::Value::Int(i64::from(metric) * 7)),
                    quality: wire::Quality::Good,
                })
                .collect(),
        })
        .collect();
    wire::FramesBlock::encode(&frames).expect("encodable frames")
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64
}

/// Opens a buffer with generous limits in `dir`.
pub fn open_buffer(dir: &Path) -> Arc<Buffer> {
    let limits = BufferLimits {
        max_bytes: 256 << 20,
        max_age: Duration::from_secs(7 * 24 * 3600),
    };
    Arc::new(Buffer::open(&dir.join("buffer.redb"), limits).expect("open buffer"))
}

/// An uplink running on a real buffer.
pub struct Agent {
    pub buffer: Arc<Buffer>,
    pub stats: Arc<UplinkStats>,
    pub boot_id: u64,
    pub commands: mpsc::Receiver<wire::Command>,
    pub results: mpsc::Sender<wire::CommandResult>,
    shutdown: Option<oneshot::Sender<()>>,
    pub task: Option<JoinHandle<Result<(), UplinkError>>>,
}

impl Agent {
    /// Starts the uplink with a fresh birth for `boot_id`.
    pub fn start(cfg: UplinkConfig, buffer: Arc<Buffer>, boot_id: u64) -> Agent {
        Agent::start_with(cfg, buffer, boot_id, None)
    }

    /// Starts the uplink, following later births sent on `births` if given.
    pub fn start_with(
        cfg: UplinkConfig,
        buffer: Arc<Buffer>,
        boot_id: u64,
        births: Option<tokio::sync::watch::Receiver<agent::batcher::BirthState>>,
    ) -> Agent {
        let (commands_tx, commands) = mpsc::channel(8);
        let (results, results_rx) = mpsc::channel(8);
        let mut uplink = Uplink::new(cfg, buffer.clone(), birth(boot_id), commands_tx, results_rx)
            .expect("uplink config");
        if let Some(births) = births {
            uplink = uplink.follow_births(births);
        }
        let stats = uplink.stats();
        let (shutdown, shutdown_rx) = oneshot::channel::<()>();
        let task = tokio::spawn(uplink.run(async move {
            let _ = shutdown_rx.await;
        }));
        Agent {
            buffer,
            stats,
            boot_id,
            commands,
            results,
            shutdown: Some(shutdown),
            task: Some(task),
        }
    }

    /// Appends a batch of `samples` samples created `age_ms` ago.
    pub fn append(&self, samples: u16, age_ms: i64) -> u64 {
        let created = now_ms() - age_ms;
        self.buffer
            .append(created, self.boot_id, &block(samples, created))
            .expect("append")
    }

    /// Graceful stop: the uplink publishes its Death and disconnects.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(10), task)
                .await
                .expect("uplink stops in time")
                .expect("uplink task")
                .expect("uplink run");
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Writes a PEM file and returns its path.
pub fn write_pem(dir: &Path, name: &str, pem: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, pem).expect("write pem");
    path
}
