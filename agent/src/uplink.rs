//! The uplink: ships buffered batches to the cloud over MQTT (rumqttc, MQTT 3.1.1) and
//! deletes them only when the cloud says they are stored.
//!
//! # Delivery protocol
//!
//! ```text
//! buffer ──pending/newest/get──▶ uplink ──data (QoS 1)──▶ broker ──▶ ingester ──commit──┐
//!   ▲                              │  ▲                                                 │
//!   └────────── ack(ranges) ───────┘  └──────────── ack (QoS 1, wire::Ack) ◀─────────────┘
//! ```
//!
//! * **Session start.** On every CONNACK the uplink subscribes to its own `ack` and `cmd`
//!   topics and to the cloud's state topics (QoS 1), publishes the current [`wire::Birth`]
//!   (QoS 1) and only then data.
//!   The last will is a [`wire::Death`] of the current boot (QoS 1) on the `death` topic;
//!   a graceful shutdown publishes the Death explicitly before DISCONNECT (a will is not
//!   sent on a clean disconnect).
//! * **What deletes a batch.** Only a cloud [`wire::Ack`] naming its seq: the ack is
//!   applied to the buffer durably (one fsync) and the seq leaves the in-flight window.
//!   A broker PUBACK proves nothing about storage and is ignored. Duplicate, unknown or
//!   late acks are harmless (counted by the buffer as unknown).
//! * **Refused batches.** An ack may also list batches the cloud refused
//!   ([`wire::Rejected`]). A *permanent* refusal moves them, durably, out of the queue into
//!   the buffer's set-aside table ([`Buffer::set_aside`]); only then do they leave the
//!   in-flight window, so they are never sent again (a failed write leaves them in flight:
//!   re-sent, refused again). They are counted by reason
//!   (`wellpulse_uplink_batches_rejected_total{reason}`) and the set-aside figures travel
//!   in every birth. A *retryable* refusal re-sends the batch after its own
//!   [`base::Backoff`] delay (between the reconnect backoff bounds) instead of waiting for
//!   `ack_timeout`. Rejections are applied only after the same ack's committed ranges
//!   were: a seq named as both committed and refused counts as committed.
//! * **At-least-once.** A batch not acked within `ack_timeout` is published again. After
//!   any reconnect, everything still in the buffer is sent again (rumqttc silently drops
//!   its unacked publishes when the broker has no session for us). The cloud stores each
//!   `(gateway, seq)` once, so duplicates on the wire are expected and harmless.
//! * **Live first.** Batches created within `live_window` go out as soon as they are
//!   appended (the buffer's notifier wakes the loop), with `historical = false`. Older
//!   batches (the backlog after an outage) are sent oldest first with
//!   `historical = true`, paced at `backlog_pace` batches/s, and may only use three
//!   quarters of the in-flight window, so live data never queues behind backlog.
//! * **Bounded window.** At most `in_flight_window` batches are unacked at once.
//! * **Reconnect.** Jittered exponential backoff from `reconnect_backoff_min` to
//!   `reconnect_backoff_max`, reset on CONNACK; the first delivery after a broker comes back
//!   follows within one backoff step plus the connect round trip.
//! * **Cloud readiness.** Every session also subscribes to the ingesters' retained state
//!   ([`wire::state`], `wp/v1/_state/+`, not sealed). When an ingester session comes
//!   online (a live "online" newer than what we knew of that ingester), everything
//!   unacked is sent again at once, as on a reconnect: the in-flight window is cleared,
//!   the birth is published again, live batches go first and the backlog restarts from
//!   the oldest, paced. So batches the broker discarded while no ingester was subscribed
//!   (the agent back before the ingester) are re-sent within a round trip, not after
//!   `ack_timeout`, and live data never waits behind a window of them. The rules are in
//!   [`readiness`]; stale states are ignored, "offline" never stops anything, and a cloud
//!   that publishes no state leaves delivery to the ack timeout as before.
//! * **Birth updates.** When the agent learns more about its devices during the session (a
//!   device that was silent at start reports its serial number later), the updated birth of
//!   the same boot arrives on a `watch` channel ([`Uplink::follow_births`]) and is published
//!   at once (and at every later session start), so the cloud's catalog catches up without a
//!   restart.
//! * **Authentication.** Everything the uplink publishes (birth, data, death and its last
//!   will, command results) is sealed with the gateway's message key ([`wire::seal`],
//!   derived from the MQTT password, which is therefore required), and every ack and
//!   command is opened with it before anything else. One whose seal does not verify
//!   (forged by another client of the broker, altered, replayed from another gateway's or
//!   kind's topic, or sealed with another key) is ignored: never applied to the buffer,
//!   never executed, never answered; it is counted in
//!   `wellpulse_uplink_messages_unauthenticated_total{kind}` and logged at powers of two.
//!   An authenticated command must also pass the replay guard ([`guard`]): unexpired, and
//!   an id not executed before, even before a restart (ids are recorded in the buffer before
//!   the command runs; `wellpulse_uplink_commands_refused_total{reason}`).
//! * **Commands.** `cmd` messages are decoded; `Rebirth` is answered here (the current
//!   birth, or the stored birth of an earlier boot still referenced by buffered batches);
//!   every other command is handed to the agent on an mpsc channel, whose
//!   [`wire::CommandResult`]s come back on another channel and are published to
//!   `cmd/result` (queued while offline). An undecodable command is logged and, if its id
//!   can be recovered, answered with a failed result; it never stops the uplink.
//!
//! # Invariants
//!
//! * The uplink never writes data to the buffer, it only reads batches and applies acks:
//!   the poller never waits on the network.
//! * A batch's header carries the boot id stored with it (the boot that created it), so
//!   backlog from an earlier boot is decoded with that boot's birth.
//! * Buffer calls block (fsync); they run on tokio's blocking pool.
//!
//! The scheduling rules live in [`delivery`] (pure, unit-tested); the rumqttc event loop,
//! reconnects and TLS in [`link`].

mod delivery;
mod guard;
mod link;
mod readiness;

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, QoS};
use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};

use base::{Backoff, Secret};
use wire::MessageKey;

use crate::batcher::BirthState;
use crate::buffer::{Buffer, BufferError, Record};
use crate::clock::now_ms;
use delivery::{Delivery, Params};
use link::LinkEvent;

/// How many of the newest batches are examined for live ones on (re)connect.
const LIVE_SCAN: usize = 256;
/// Command results kept while offline; older ones are dropped (and logged) beyond this.
const MAX_QUEUED_RESULTS: usize = 256;
/// How long a graceful shutdown waits for the Death and DISCONNECT to go out.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Client certificate for mutual TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientAuth {
    /// PEM certificate chain of this gateway.
    pub cert_file: PathBuf,
    /// PEM private key of that certificate.
    pub key_file: PathBuf,
}

/// TLS settings (rustls with the ring provider).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsOptions {
    /// PEM file with the CA certificate(s) that signed the broker's certificate.
    pub ca_file: PathBuf,
    /// Optional client certificate.
    pub client_auth: Option<ClientAuth>,
}

/// Uplink settings (plain struct; the agent's TOML config is converted into it).
#[derive(Clone, PartialEq)]
pub struct UplinkConfig {
    /// Broker host name or IP (also the TLS server name).
    pub host: String,
    /// Broker port.
    pub port: u16,
    /// TLS, when the broker listener uses it.
    pub tls: Option<TlsOptions>,
    /// MQTT client id (unique per gateway).
    pub client_id: String,
    /// MQTT username.
    pub username: Option<String>,
    /// MQTT password (never logged); required: the message key is derived from it.
    pub password: Option<Secret>,
    /// Tenant id in the topic tree.
    pub tenant: String,
    /// Gateway id in the topic tree.
    pub gateway: String,
    /// MQTT keep-alive (0 or at least 1 s).
    pub keep_alive: Duration,
    /// Maximum batches published and not yet acked by the cloud.
    pub in_flight_window: usize,
    /// Re-send a batch not acked after this long.
    pub ack_timeout: Duration,
    /// Batches younger than this are live; older ones are backlog.
    pub live_window: Duration,
    /// Backlog replay rate, batches per second.
    pub backlog_pace: f64,
    /// First reconnect delay.
    pub reconnect_backoff_min: Duration,
    /// Largest reconnect delay.
    pub reconnect_backoff_max: Duration,
}

impl std::fmt::Debug for UplinkConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UplinkConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("client_id", &self.client_id)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("tenant", &self.tenant)
            .field("gateway", &self.gateway)
            .field("keep_alive", &self.keep_alive)
            .field("in_flight_window", &self.in_flight_window)
            .field("ack_timeout", &self.ack_timeout)
            .field("live_window", &self.live_window)
            .field("backlog_pace", &self.backlog_pace)
            .field("reconnect_backoff_min", &self.reconnect_backoff_min)
            .field("reconnect_backoff_max", &self.reconnect_backoff_max)
            .finish()
    }
}

impl UplinkConfig {
    /// Checks the settings that would otherwise fail at run time.
    pub fn validate(&self) -> Result<(), UplinkError> {
        let invalid = |reason: String| Err(UplinkError::Config(reason));
        wire::topic::validate_id(&self.tenant)
            .map_err(|e| UplinkError::Config(format!("tenant: {e}")))?;
        wire::topic::validate_id(&self.gateway)
            .map_err(|e| UplinkError::Config(format!("gateway: {e}")))?;
        if self.host.is_empty() {
            return invalid("broker host is empty".into());
        }
        if self.client_id.is_empty() {
            return invalid("client id is empty".into());
        }
        if !self.keep_alive.is_zero() && self.keep_alive < Duration::from_secs(1) {
            return invalid(format!(
                "keep-alive {:?} must be 0 or at least 1s",
                self.keep_alive
            ));
        }
        if !(1..=u16::MAX as usize - 16).contains(&self.in_flight_window) {
            return invalid(format!(
                "in-flight window {} must be between 1 and {}",
                self.in_flight_window,
                u16::MAX - 16
            ));
        }
        if self.ack_timeout.is_zero() {
            return invalid("ack timeout must be > 0".into());
        }
        if !(self.backlog_pace.is_finite() && self.backlog_pace > 0.0) {
            return invalid(format!(
                "backlog pace {} must be a positive number of batches/s",
                self.backlog_pace
            ));
        }
        if self.reconnect_backoff_min.is_zero()
            || self.reconnect_backoff_min > self.reconnect_backoff_max
        {
            return invalid(format!(
                "reconnect backoff must satisfy 0 < min ({:?}) <= max ({:?})",
                self.reconnect_backoff_min, self.reconnect_backoff_max
            ));
        }
        if self.password.is_some() && self.username.is_none() {
            return invalid("a password needs a username".into());
        }
        if self.password.as_ref().is_none_or(Secret::is_empty) {
            return invalid(
                "a password is required: acks and commands are authenticated with a key derived from it"
                    .into(),
            );
        }
        Ok(())
    }

    /// The gateway's message key, derived from its password.
    fn message_key(&self) -> Result<MessageKey, UplinkError> {
        match &self.password {
            Some(p) if !p.is_empty() => Ok(MessageKey::derive(p.expose().as_bytes())),
            _ => Err(UplinkError::Config("a password is required".into())),
        }
    }

    fn topic(&self, kind: wire::topic::Kind) -> String {
        wire::topic::topic(&self.tenant, &self.gateway, kind)
    }

    fn delivery_params(&self) -> Params {
        Params {
            window: self.in_flight_window,
            ack_timeout: self.ack_timeout,
            live_window_ms: i64::try_from(self.live_window.as_millis()).unwrap_or(i64::MAX),
            pace: self.backlog_pace,
            retry_min: self.reconnect_backoff_min,
            retry_max: self.reconnect_backoff_max,
        }
    }
}

/// Errors that stop the uplink from starting.
#[derive(Debug, thiserror::Error)]
pub enum UplinkError {
    /// A setting is invalid.
    #[error("invalid uplink configuration: {0}")]
    Config(String),
    /// A TLS file is missing or unusable.
    #[error("TLS setup failed for {path}: {reason}")]
    Tls {
        /// The offending file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The buffer failed while starting (storing the birth).
    #[error("buffer: {0}")]
    Buffer(#[from] BufferError),
}

/// Live counters of the uplink, for `/metrics`.
#[derive(Debug, Default)]
pub struct UplinkStats {
    /// Whether an MQTT session is up.
    pub connected: AtomicBool,
    /// Successful connections after the first one.
    pub reconnects: AtomicU64,
    /// Batches published and not yet acked.
    pub in_flight: AtomicU64,
    /// Data publishes (first sends, including re-sends after a reconnect).
    pub batches_sent: AtomicU64,
    /// Re-sends after an ack timeout.
    pub resends: AtomicU64,
    /// Cloud ack messages received.
    pub acks_received: AtomicU64,
    /// Samples deleted from the buffer by acks.
    pub samples_acked: AtomicU64,
    /// Time of the last ack (UTC ms), 0 before the first.
    pub last_ack_ms: AtomicU64,
    /// Publishes that could not be queued to the MQTT client.
    pub publish_errors: AtomicU64,
    /// Batches set aside after a permanent rejection, by the cloud's reason code.
    pub rejected: Mutex<BTreeMap<String, u64>>,
    /// In-flight batches rescheduled after a retryable rejection, by reason code.
    pub retry_rejected: Mutex<BTreeMap<String, u64>>,
    /// Acks and commands ignored because their seal did not verify, by kind (`ack`, `cmd`).
    pub unauthenticated: Mutex<BTreeMap<String, u64>>,
    /// Authenticated commands not executed, by reason (expired, replayed, ...).
    pub commands_refused: Mutex<BTreeMap<String, u64>>,
    /// Ingesters whose last state ([`wire::CloudState`]) says online.
    pub cloud_online_ingesters: AtomicU64,
    /// Times every unacked batch was re-sent at once because an ingester came online.
    pub cloud_online_resends: AtomicU64,
    /// Cloud state messages ignored, by reason (`stale`, `malformed`).
    pub cloud_states_ignored: Mutex<BTreeMap<String, u64>>,
}

/// Distinct reason codes counted; further ones are counted as `other` (the cloud chooses
/// them, and every code is a metric series).
const MAX_REASONS: usize = 32;

impl UplinkStats {
    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Adds `n` to the count of `reason`; returns the new count.
    pub(crate) fn add_reason(counts: &Mutex<BTreeMap<String, u64>>, reason: &str, n: u64) -> u64 {
        let mut counts = counts.lock().unwrap_or_else(|p| p.into_inner());
        let key = if counts.contains_key(reason) || counts.len() < MAX_REASONS {
            reason
        } else {
            "other"
        };
        let count = counts.entry(key.to_owned()).or_default();
        *count += n;
        *count
    }

    /// Snapshot of counts by reason (`rejected` or `retry_rejected`).
    pub fn by_reason(counts: &Mutex<BTreeMap<String, u64>>) -> Vec<(String, u64)> {
        let counts = counts.lock().unwrap_or_else(|p| p.into_inner());
        counts.iter().map(|(k, v)| (k.clone(), *v)).collect()
    }
}

/// The uplink task; build with [`Uplink::new`], then `run` it.
#[derive(Debug)]
pub struct Uplink {
    cfg: UplinkConfig,
    key: MessageKey,
    tls: Option<Arc<rustls::ClientConfig>>,
    buffer: Arc<Buffer>,
    birth: wire::Birth,
    births: Option<watch::Receiver<BirthState>>,
    commands: mpsc::Sender<wire::Command>,
    results: mpsc::Receiver<wire::CommandResult>,
    stats: Arc<UplinkStats>,
}

impl Uplink {
    /// Validates the configuration and loads TLS files. `birth` is this boot's session
    /// start; non-rebirth commands go to `commands`, their results come back on `results`.
    pub fn new(
        cfg: UplinkConfig,
        buffer: Arc<Buffer>,
        birth: wire::Birth,
        commands: mpsc::Sender<wire::Command>,
        results: mpsc::Receiver<wire::CommandResult>,
    ) -> Result<Uplink, UplinkError> {
        cfg.validate()?;
        let key = cfg.message_key()?;
        let tls = cfg.tls.as_ref().map(link::tls_config).transpose()?;
        Ok(Uplink {
            cfg,
            key,
            tls,
            buffer,
            birth,
            births: None,
            commands,
            results,
            stats: Arc::new(UplinkStats::default()),
        })
    }

    /// Publishes every later birth of this boot sent on `births` (the batcher's updates
    /// when devices report their information). Births of other boots are ignored.
    pub fn follow_births(mut self, births: watch::Receiver<BirthState>) -> Uplink {
        self.births = Some(births);
        self
    }

    /// The live counters.
    pub fn stats(&self) -> Arc<UplinkStats> {
        Arc::clone(&self.stats)
    }

    /// Runs until `shutdown` completes, then publishes the Death and disconnects.
    /// Connection problems are retried forever; only a buffer failure while storing the
    /// birth at start is returned.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), UplinkError> {
        let Uplink {
            cfg,
            key,
            tls,
            buffer,
            birth,
            mut births,
            commands,
            mut results,
            stats,
        } = self;
        let stored = birth.clone();
        blocking(&buffer, move |b| b.store_birth(&stored)).await?;
        let executed = blocking(&buffer, |b| b.executed_commands(now_ms())).await?;

        let death_topic = cfg.topic(wire::topic::Kind::Death);
        let will = link::death_will(&death_topic, birth.boot_id, &key);
        let options = link::mqtt_options(&cfg, tls, will);
        let (client, eventloop) = AsyncClient::new(options, cfg.in_flight_window * 2 + 64);
        let (events_tx, mut events) = mpsc::channel(256);
        let backoff = Backoff::new(cfg.reconnect_backoff_min, cfg.reconnect_backoff_max);
        let _driver = AbortOnDrop(tokio::spawn(link::drive(
            eventloop,
            events_tx,
            backoff,
            death_topic,
            birth.boot_id,
            key.clone(),
        )));
        let notify = buffer.notifier();
        let mut session = Session::new(&cfg, key, client, buffer, birth, commands, stats);
        session.guard = guard::CommandGuard::with_executed(executed);
        let mut results_open = true;
        tokio::pin!(shutdown);
        loop {
            let wake = session.delivery.next_wake().filter(|_| session.connected);
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                event = events.recv() => match event {
                    Some(event) => session.on_link(event).await,
                    None => break,
                },
                () = notify.notified() => session.new_data = true,
                result = results.recv(), if results_open => match result {
                    Some(result) => session.publish_result(result),
                    None => results_open = false,
                },
                changed = birth_changed(&mut births), if births.is_some() => match changed {
                    Some(birth) => session.update_birth(&birth),
                    None => births = None,
                },
                () = sleep_until(wake), if wake.is_some() => {}
            }
            session.pump().await;
        }
        session.goodbye(&mut events).await;
        Ok(())
    }
}

/// Stops the connection driver when `run` returns or is cancelled, so a dropped uplink
/// never keeps a connection (and its pings) alive.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The next birth sent on `births`; `None` once the sender is gone.
async fn birth_changed(
    births: &mut Option<watch::Receiver<BirthState>>,
) -> Option<Arc<wire::Birth>> {
    let births = births.as_mut()?;
    births.changed().await.ok()?;
    Some(Arc::clone(&births.borrow_and_update().birth))
}

async fn sleep_until(at: Option<Instant>) {
    if let Some(at) = at {
        tokio::time::sleep_until(at.into()).await;
    }
}

/// Runs a buffer call on the blocking pool.
async fn blocking<T: Send + 'static>(
    buffer: &Arc<Buffer>,
    f: impl FnOnce(&Buffer) -> Result<T, BufferError> + Send + 'static,
) -> Result<T, BufferError> {
    let buffer = Arc::clone(buffer);
    match tokio::task::spawn_blocking(move || f(&buffer)).await {
        Ok(result) => result,
        Err(e) => match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            // Only happens while the runtime shuts down.
            Err(e) => Err(BufferError::Storage(redb::Error::from(
                std::io::Error::other(format!("buffer task cancelled: {e}")),
            ))),
        },
    }
}

/// State of the uplink loop across connections.
struct Session {
    client: AsyncClient,
    /// Seals what is published, opens what is received.
    key: MessageKey,
    /// Executed command ids, against replays.
    guard: guard::CommandGuard,
    buffer: Arc<Buffer>,
    birth: wire::Birth,
    commands: mpsc::Sender<wire::Command>,
    stats: Arc<UplinkStats>,
    topics: Topics,
    delivery: Delivery,
    connected: bool,
    connections: u64,
    /// Batches were appended since the last classification.
    new_data: bool,
    /// Command results waiting for a connection.
    queued_results: VecDeque<wire::CommandResult>,
    /// The last state of each ingester.
    readiness: readiness::Readiness,
}

struct Topics {
    data: String,
    birth: String,
    death: String,
    ack: String,
    cmd: String,
    cmd_result: String,
}

impl Session {
    fn new(
        cfg: &UplinkConfig,
        key: MessageKey,
        client: AsyncClient,
        buffer: Arc<Buffer>,
        birth: wire::Birth,
        commands: mpsc::Sender<wire::Command>,
        stats: Arc<UplinkStats>,
    ) -> Session {
        use wire::topic::Kind;
        let topics = Topics {
            data: cfg.topic(Kind::Data),
            birth: cfg.topic(Kind::Birth),
            death: cfg.topic(Kind::Death),
            ack: cfg.topic(Kind::Ack),
            cmd: cfg.topic(Kind::Cmd),
            cmd_result: cfg.topic(Kind::CmdResult),
        };
        let delivery = Delivery::new(cfg.delivery_params(), Instant::now());
        Session {
            client,
            key,
            guard: guard::CommandGuard::default(),
            buffer,
            birth,
            commands,
            stats,
            topics,
            delivery,
            connected: false,
            connections: 0,
            new_data: false,
            queued_results: VecDeque::new(),
            readiness: readiness::Readiness::default(),
        }
    }

    async fn on_link(&mut self, event: LinkEvent) {
        match event {
            LinkEvent::Connected { session_present } => self.on_connected(session_present).await,
            LinkEvent::Lost(reason) => {
                if self.connected {
                    warn!(%reason, in_flight = self.delivery.in_flight(), "uplink disconnected");
                }
                self.set_connected(false);
            }
            LinkEvent::Message {
                topic,
                payload,
                retained,
            } => {
                if let Some(ingester) = wire::topic::parse_state(&topic) {
                    return self.on_state(ingester, &payload, retained).await;
                }
                let kind = if topic == self.topics.ack {
                    wire::topic::Kind::Ack
                } else if topic == self.topics.cmd {
                    wire::topic::Kind::Cmd
                } else {
                    debug!(%topic, "message on an unexpected topic ignored");
                    return;
                };
                // Authentication comes first: nothing of an unverified message is read.
                let message = match wire::seal::open([&self.key], &topic, &payload) {
                    Ok(opened) => opened.message,
                    Err(e) => return self.unauthenticated(kind, &e),
                };
                if kind == wire::topic::Kind::Ack {
                    self.on_ack(message).await;
                } else {
                    self.on_command(message).await;
                }
            }
            LinkEvent::Closed => self.set_connected(false),
        }
    }

    /// Counts and logs (at powers of two per kind) an ack or command that did not verify.
    fn unauthenticated(&self, kind: wire::topic::Kind, error: &wire::SealError) {
        let count = UplinkStats::add_reason(&self.stats.unauthenticated, kind.as_str(), 1);
        if count.is_power_of_two() {
            warn!(kind = kind.as_str(), %error, count,
                  "unauthenticated message ignored: not sealed for this gateway by the cloud");
        }
    }

    fn set_connected(&mut self, connected: bool) {
        self.connected = connected;
        self.stats.connected.store(connected, Ordering::Relaxed);
    }

    /// Takes an updated birth of the current boot and publishes it if connected (it is
    /// published at every session start anyway).
    fn update_birth(&mut self, birth: &wire::Birth) {
        if birth.boot_id != self.birth.boot_id || *birth == self.birth {
            return;
        }
        self.birth = birth.clone();
        if self.connected {
            self.publish(self.topics.birth.clone(), self.birth_payload(&self.birth));
            info!("device information changed; birth published again");
        }
    }

    /// Subscribes, publishes the birth, then restarts delivery from the buffer.
    async fn on_connected(&mut self, session_present: bool) {
        self.connections += 1;
        if self.connections > 1 {
            UplinkStats::add(&self.stats.reconnects, 1);
        }
        self.set_connected(true);
        for topic in [&self.topics.ack, &self.topics.cmd] {
            if let Err(e) = self.client.try_subscribe(topic.clone(), QoS::AtLeastOnce) {
                warn!(%topic, error = %e, "cannot queue subscription");
            }
        }
        let topic = wire::topic::STATE_FILTER;
        if let Err(e) = self.client.try_subscribe(topic, QoS::AtLeastOnce) {
            warn!(%topic, error = %e, "cannot queue subscription");
        }
        self.replay_all().await;
        info!(
            session_present,
            pending = self.buffer.stats().pending_batches,
            "uplink session started; birth published, replaying unacked batches"
        );
        while let Some(result) = self.queued_results.pop_front() {
            self.publish_result(result);
        }
    }

    /// An ingester's state: re-sends everything unacked when a new session came online.
    async fn on_state(&mut self, ingester: &str, payload: &[u8], retained: bool) {
        let state = match wire::CloudState::decode(payload) {
            Ok(state) => state,
            Err(e) => {
                let count =
                    UplinkStats::add_reason(&self.stats.cloud_states_ignored, "malformed", 1);
                if count.is_power_of_two() {
                    warn!(%ingester, error = %e, count, "undecodable cloud state ignored");
                }
                return;
            }
        };
        let verdict = self.readiness.observe(ingester, state, retained);
        self.stats
            .cloud_online_ingesters
            .store(self.readiness.online() as u64, Ordering::Relaxed);
        match verdict {
            readiness::Verdict::Stale => {
                UplinkStats::add_reason(&self.stats.cloud_states_ignored, "stale", 1);
                debug!(%ingester, online = state.online, session_ms = state.session_ms, "stale cloud state ignored");
            }
            readiness::Verdict::Noted => {
                info!(%ingester, online = state.online, session_ms = state.session_ms, retained, "cloud state");
            }
            readiness::Verdict::Resend if self.connected => {
                UplinkStats::add(&self.stats.cloud_online_resends, 1);
                let in_flight = self.delivery.in_flight();
                self.replay_all().await;
                info!(%ingester, session_ms = state.session_ms, in_flight,
                      pending = self.buffer.stats().pending_batches,
                      "cloud came online; birth published, re-sending every unacked batch");
            }
            readiness::Verdict::Resend => {}
        }
    }

    /// Publishes the birth and restarts delivery from the buffer: nothing in flight, live
    /// batches first, the backlog from the oldest.
    async fn replay_all(&mut self) {
        let birth = self.birth_payload(&self.birth);
        self.publish(self.topics.birth.clone(), birth);
        let last_seq = self.buffer.stats().next_seq.saturating_sub(1);
        let newest = match blocking(&self.buffer, |b| b.newest(LIVE_SCAN)).await {
            Ok(records) => records.iter().map(|r| (r.seq, r.created_ms)).collect(),
            Err(e) => {
                warn!(error = %e, "cannot read the newest batches; all go as backlog");
                Vec::new()
            }
        };
        self.delivery
            .restart(&newest, last_seq, Instant::now(), now_ms());
    }

    async fn on_ack(&mut self, payload: &[u8]) {
        let ack = match wire::Ack::decode(payload) {
            Ok(ack) => ack,
            Err(e) => {
                warn!(error = %e, "undecodable ack ignored");
                return;
            }
        };
        UplinkStats::add(&self.stats.acks_received, 1);
        let ranges = ack.ranges.clone();
        match blocking(&self.buffer, move |b| b.ack(&ranges)).await {
            Ok(outcome) => {
                UplinkStats::add(&self.stats.samples_acked, outcome.samples);
                self.stats
                    .last_ack_ms
                    .store(u64::try_from(now_ms()).unwrap_or(0), Ordering::Relaxed);
                if outcome.unknown > 0 {
                    debug!(
                        unknown = outcome.unknown,
                        "ack named seqs no longer buffered"
                    );
                }
                // Forget acked seqs only once the deletion is durable: a failed ack write
                // leaves them in flight, so they are re-sent and acked again.
                self.delivery.acked(&ack.ranges);
            }
            Err(e) => {
                // Rejections wait too: a seq both committed and refused counts as committed.
                warn!(error = %e, "cannot apply ack to the buffer; batches will be re-sent");
                return;
            }
        }
        for rejected in &ack.rejected {
            if rejected.permanent {
                self.set_aside(rejected).await;
            } else {
                let n = self.delivery.retry_later(&rejected.ranges, Instant::now());
                if n > 0 {
                    UplinkStats::add_reason(&self.stats.retry_rejected, &rejected.reason, n as u64);
                    debug!(reason = %rejected.reason, detail = %rejected.detail, batches = n, "cloud refused batches for now; re-sent after a backoff");
                }
            }
        }
    }

    /// Moves permanently refused batches out of the queue, then out of the window.
    async fn set_aside(&mut self, rejected: &wire::Rejected) {
        let (ranges, reason) = (rejected.ranges.clone(), rejected.reason.clone());
        match blocking(&self.buffer, move |b| b.set_aside(&ranges, &reason)).await {
            Ok(outcome) => {
                // Forget them only once the move is durable: a failed write leaves them in
                // flight, so they are re-sent and refused again.
                self.delivery.set_aside(&rejected.ranges);
                if outcome.batches > 0 {
                    UplinkStats::add_reason(
                        &self.stats.rejected,
                        &rejected.reason,
                        outcome.batches,
                    );
                    warn!(
                        reason = %rejected.reason,
                        detail = %rejected.detail,
                        batches = outcome.batches,
                        samples = outcome.samples,
                        first_seq = rejected.ranges.first().map_or(0, |r| r.0),
                        "cloud refused batches for good; set aside, not re-sent"
                    );
                }
            }
            Err(e) => {
                warn!(error = %e, reason = %rejected.reason, "cannot set refused batches aside; they will be re-sent")
            }
        }
    }

    /// A birth as published: its catalog and the buffer's set-aside figures of now.
    fn birth_payload(&self, birth: &wire::Birth) -> Vec<u8> {
        birth.encode_with_status(Some(&self.buffer.stats().birth_status()))
    }

    async fn on_command(&mut self, payload: &[u8]) {
        let command = match wire::Command::decode(payload) {
            Ok(command) => command,
            Err(e) => {
                warn!(error = %e, "undecodable command");
                if let Some(id) = wire::Command::recover_id(payload) {
                    self.answer(id, false, format!("undecodable command: {e}"));
                }
                return;
            }
        };
        let now = now_ms();
        if let Err(refused) = self.guard.admit(command.id, command.expires_ms, now) {
            let reason = refused.as_str();
            let count = UplinkStats::add_reason(&self.stats.commands_refused, reason, 1);
            if count.is_power_of_two() {
                warn!(
                    id = command.id,
                    reason, count, "authenticated command refused, not executed"
                );
            }
            // A late command is worth telling the cloud about; a replay is not answered.
            if matches!(
                refused,
                guard::Refused::Expired | guard::Refused::TooFarAhead
            ) {
                self.answer(command.id, false, format!("command refused: {reason}"));
            }
            return;
        }
        // Remembered durably before it runs, so a replay after a restart is refused too.
        let (id, expires_ms) = (command.id, command.expires_ms);
        if let Err(e) = blocking(&self.buffer, move |b| b.record_command(id, expires_ms, now)).await
        {
            self.guard.forget(id);
            warn!(id, error = %e, "cannot record the command; not executed");
            self.answer(id, false, format!("cannot record the command: {e}"));
            return;
        }
        info!(id = command.id, kind = ?command.kind, "command received");
        match command.kind {
            wire::CommandKind::Rebirth { boot_id } => self.rebirth(command.id, boot_id).await,
            _ => {
                let id = command.id;
                match self.commands.try_send(command) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        self.answer(id, false, "agent busy: command queue full".into());
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => {
                        self.answer(id, false, "the agent does not accept commands".into());
                    }
                }
            }
        }
    }

    async fn rebirth(&mut self, id: u64, boot_id: Option<u64>) {
        let birth = match boot_id {
            None => Ok(Some(self.birth.clone())),
            Some(boot) => blocking(&self.buffer, move |b| b.birth(boot)).await,
        };
        match birth {
            Ok(Some(birth)) => {
                let boot = wire::HexId(birth.boot_id);
                self.publish(self.topics.birth.clone(), self.birth_payload(&birth));
                self.answer(id, true, format!("birth of boot {boot} published"));
            }
            Ok(None) => {
                let boot = wire::HexId(boot_id.unwrap_or(self.birth.boot_id));
                self.answer(id, false, format!("no stored birth for boot {boot}"));
            }
            Err(e) => self.answer(id, false, format!("cannot read stored birth: {e}")),
        }
    }

    fn answer(&mut self, id: u64, ok: bool, message: String) {
        self.publish_result(wire::CommandResult { id, ok, message });
    }

    /// Publishes a command result now, or keeps it for the next connection.
    fn publish_result(&mut self, result: wire::CommandResult) {
        if self.connected {
            self.publish(self.topics.cmd_result.clone(), result.encode());
            return;
        }
        if self.queued_results.len() == MAX_QUEUED_RESULTS
            && let Some(dropped) = self.queued_results.pop_front()
        {
            warn!(
                id = dropped.id,
                "offline command result queue full; oldest dropped"
            );
        }
        self.queued_results.push_back(result);
    }

    /// Seals `message` for `topic` and queues it as a QoS 1 publish to the MQTT client;
    /// returns whether it was queued.
    fn publish(&self, topic: String, message: Vec<u8>) -> bool {
        let payload = wire::seal::seal(&self.key, &topic, &message);
        match self
            .client
            .try_publish(topic.clone(), QoS::AtLeastOnce, false, payload)
        {
            Ok(()) => true,
            Err(e) => {
                UplinkStats::add(&self.stats.publish_errors, 1);
                warn!(%topic, error = %e, "cannot queue publish");
                false
            }
        }
    }

    /// Sends whatever the delivery rules allow now: re-sends, live, then backlog.
    async fn pump(&mut self) {
        if !self.connected {
            return;
        }
        if let Err(e) = self.try_pump().await {
            warn!(error = %e, "buffer read failed; retrying on the next wake-up");
        }
        self.stats
            .in_flight
            .store(self.delivery.in_flight() as u64, Ordering::Relaxed);
    }

    async fn try_pump(&mut self) -> Result<(), BufferError> {
        if std::mem::take(&mut self.new_data) {
            self.classify_new().await?;
        }
        let now = Instant::now();
        self.delivery.expire_live(now_ms());

        let due = self.delivery.due_resends(now);
        if !due.is_empty() {
            for (seq, record) in self.fetch(due).await? {
                match (record, self.delivery.resent(seq, now)) {
                    (Some(record), Some(flight)) => {
                        self.send(&record, flight.historical);
                        UplinkStats::add(&self.stats.resends, 1);
                    }
                    _ => self.delivery.forget(seq),
                }
            }
        }

        let live: Vec<u64> = std::iter::from_fn(|| self.delivery.next_live()).collect();
        if !live.is_empty() {
            for (seq, record) in self.fetch(live).await? {
                if let Some(record) = record {
                    self.send(&record, false);
                    self.delivery.sent(seq, false, now);
                }
            }
        }

        if let Some((after, max)) = self.delivery.backlog_request(now) {
            let rows = blocking(&self.buffer, move |b| b.pending(Some(after), max)).await?;
            let seqs: Vec<u64> = rows.iter().map(|r| r.seq).collect();
            let picked = self.delivery.backlog_pick(&seqs);
            for record in rows.iter().filter(|r| picked.contains(&r.seq)) {
                self.send(record, true);
                self.delivery.sent(record.seq, true, now);
            }
        }
        Ok(())
    }

    /// Reads batches appended since the last look and sorts them into live and backlog.
    async fn classify_new(&mut self) -> Result<(), BufferError> {
        loop {
            let after = self.delivery.seen_up_to();
            let rows = blocking(&self.buffer, move |b| b.pending(Some(after), LIVE_SCAN)).await?;
            let appended: Vec<(u64, i64)> = rows.iter().map(|r| (r.seq, r.created_ms)).collect();
            self.delivery.classify(&appended, now_ms());
            if rows.len() < LIVE_SCAN {
                return Ok(());
            }
        }
    }

    async fn fetch(&self, seqs: Vec<u64>) -> Result<Vec<(u64, Option<Record>)>, BufferError> {
        blocking(&self.buffer, move |b| {
            seqs.into_iter().map(|seq| Ok((seq, b.get(seq)?))).collect()
        })
        .await
    }

    /// Publishes one batch with the buffer status in its header.
    fn send(&self, record: &Record, historical: bool) {
        let header = wire::BatchHeader {
            seq: record.seq,
            boot_id: record.boot_id,
            epoch: record.epoch,
            historical,
            status: Some(self.buffer.stats().status(now_ms())),
        };
        let payload = wire::encode_batch(&header, &record.block);
        if self.publish(self.topics.data.clone(), payload) {
            UplinkStats::add(&self.stats.batches_sent, 1);
        }
    }

    /// Graceful end: the Death (a will is not sent on a clean disconnect), then DISCONNECT.
    async fn goodbye(&mut self, events: &mut mpsc::Receiver<LinkEvent>) {
        if !self.connected {
            return;
        }
        let death = wire::Death {
            boot_id: self.birth.boot_id,
            ts_ms: now_ms(),
        };
        self.publish(self.topics.death.clone(), death.encode());
        if let Err(e) = self.client.try_disconnect() {
            warn!(error = %e, "cannot queue DISCONNECT");
            return;
        }
        let closed = tokio::time::timeout(SHUTDOWN_GRACE, async {
            while let Some(event) = events.recv().await {
                if matches!(event, LinkEvent::Closed | LinkEvent::Lost(_)) {
                    return;
                }
            }
        })
        .await;
        if closed.is_err() {
            warn!("broker did not take the DISCONNECT in time");
        }
        self.set_connected(false);
        info!(
            boot_id = self.birth.boot_id,
            "uplink stopped; death published"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> UplinkConfig {
        UplinkConfig {
            host: "127.0.0.1".into(),
            port: 1883,
            tls: None,
            client_id: "gw-1".into(),
            username: Some("gw-1".into()),
            password: Some(Secret::new("s3cret")),
            tenant: "acme".into(),
            gateway: "gw-1".into(),
            keep_alive: Duration::from_secs(10),
            in_flight_window: 32,
            ack_timeout: Duration::from_secs(10),
            live_window: Duration::from_secs(10),
            backlog_pace: 50.0,
            reconnect_backoff_min: Duration::from_millis(100),
            reconnect_backoff_max: Duration::from_secs(1),
        }
    }

    #[test]
    fn a_valid_config_passes_and_its_debug_output_hides_the_password() {
        let cfg = config();
        cfg.validate().expect("valid");
        let debug = format!("{cfg:?}");
        assert!(!debug.contains("s3cret"), "{debug}");
        assert!(debug.contains("<redacted>"));
    }

    #[test]
    fn invalid_settings_are_rejected_with_a_reason() {
        type Mutate = fn(&mut UplinkConfig);
        let cases: [(Mutate, &str); 10] = [
            (|c| c.tenant = "Acme!".into(), "tenant"),
            (|c| c.gateway = String::new(), "gateway"),
            (|c| c.keep_alive = Duration::from_millis(500), "keep-alive"),
            (|c| c.in_flight_window = 0, "in-flight window"),
            (|c| c.ack_timeout = Duration::ZERO, "ack timeout"),
            (|c| c.backlog_pace = f64::NAN, "backlog pace"),
            (
                |c| c.reconnect_backoff_min = Duration::from_secs(5),
                "reconnect backoff",
            ),
            (|c| c.username = None, "password needs a username"),
            (|c| c.password = None, "a password is required"),
            (
                |c| c.password = Some(Secret::new("")),
                "a password is required",
            ),
        ];
        for (mutate, expected) in cases {
            let mut cfg = config();
            mutate(&mut cfg);
            let err = cfg.validate().expect_err(expected).to_string();
            assert!(
                err.contains(expected),
                "{err:?} should mention {expected:?}"
            );
        }
    }

    #[test]
    fn missing_tls_files_are_reported_with_their_path() {
        let tls = TlsOptions {
            ca_file: PathBuf::from("/nonexistent/ca.pem"),
            client_auth: None,
        };
        let err = link::tls_config(&tls).expect_err("missing CA").to_string();
        assert!(err.contains("/nonexistent/ca.pem"), "{err}");
    }
}
