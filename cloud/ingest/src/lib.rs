//! The ingester: MQTT → PostgreSQL, exactly-once storage over at-least-once delivery.
//!
//! # Pipeline
//!
//! ```text
//! broker ──$share/<group>[-<kind>]/wp/v1/+/+/{data,birth,death,cmd/result} (MQTT 5, QoS 1,
//!    │     manual acks; one group per filter, see mqtt::subscriptions)
//!    │
//!    ▼  mqtt::drive — event loop task, never blocks on the database
//! channel of Delivery { publish, connection epoch }
//!    │
//!    ▼  pipeline — one task; rounds of up to N messages or T ms
//! 1. topic        wire::topic::parse; ack/cmd topics and bad shapes → reject
//! 2. gateway      (tenant, gateway) must be a registered gateway of that tenant → else reject
//!    seal         the payload must be sealed with one of that gateway's message keys
//!                 (wire::seal; see auth) → else reject as `unauthenticated`: not decoded,
//!                 not stored, never acked to the gateway; rejections aggregated per topic
//! 3. payload      wire decode; malformed / incompatible version / unstorable → reject
//! 4. apply        birth → catalog upsert + alias map + online; death → offline if it ends
//!                 the current boot; cmd/result → logged and counted;
//!                 data → alias map of (gateway, boot_id); unknown boot → rebirth
//!                 command (rate-limited) and reject
//! 5. transaction  all data batches of the round in ONE transaction: binary COPY of the
//!                 samples (engineering values), (gateway, epoch, seq) rows in
//!                 ingested_batches (already there → duplicate, skipped; the same epoch
//!                 and seq under another boot → seq conflict, rejected, and the gateway
//!                 recorded as refusing until a batch is stored again), rollups marked dirty,
//!                 receive time; the new batches join detection_backlog (same statement)
//! 6. after commit the new batches' rows go to the detection worker's queue (step 7), then
//!                 publish wire::Ack (merged seq ranges, stored AND duplicate seqs) per
//!                 gateway on wp/v1/{t}/{g}/ack, then MQTT-ack every message of the round;
//!                 live seq gaps → rebirth request; gateway last seen / online / buffer
//!                 status / clock skew handed to the status writer task (off the ack path)
//!    │
//!    ▼  detection::Worker — one task, its own transactions, beside the next rounds
//! 7. detection    claim the batches in the backlog, score them (detector states locked
//!                 per device), record findings / alerts / outbox, save the states; the
//!                 backlog is swept at start and periodically for batches left behind
//! ```
//!
//! Sizing: acks wait for the commit, so the broker's per-client in-flight limit (rumqttd:
//! 100) bounds what is un-acked. Rounds of at most half of it let the next round arrive
//! while one commits; under load rounds therefore fill immediately, and `max_batch_delay`
//! only matters at low rates (`cargo bench -p cloud --bench ingester`).
//!
//! # Invariants (what is acked when)
//!
//! - A data batch is **application-acked only after the transaction holding its samples
//!   and its `(gateway, seq)` row committed** — or when that row already existed (a re-sent
//!   batch: stored once, acked again). An MQTT PUBACK is never taken as proof of storage.
//! - Every message is **MQTT-acked only after it was finished**: committed, applied, or
//!   deliberately rejected (counted per [`RejectReason`], logged with the reason, and
//!   recorded in `ingest_rejections`). Rejected data is *not* application-acked, so the
//!   batch stays in the agent's buffer: a later fix in the cloud can still store it, and
//!   an unknown boot heals itself (the agent re-sends after the rebirth).
//! - The database being down is never a rejection: the round is retried with exponential
//!   backoff ([`IngestOptions::retry_initial`] … [`IngestOptions::retry_max`]) while its
//!   messages stay un-acked; the broker then stops delivering (receive maximum), and
//!   ingestion resumes where it stopped when the database is back. Only an error the
//!   database will repeat forever for that message (a constraint or data error) rejects
//!   it, after isolating the offending batch in a transaction of its own.
//! - A crash (or abort) before commit loses nothing: nothing was acked, the broker or the
//!   agent re-delivers, and `ingested_batches` makes the second delivery a no-op if the
//!   first one did commit.
//! - Nothing panics on input; the tasks run until the process stops.
//!
//! - What the ingester publishes to a gateway (acks, negative acks, rebirth requests) is
//!   sealed with the key that opened that gateway's message; rebirth requests expire after
//!   five minutes (the agent refuses them after that, and refuses a replayed id before).
//!
//! Acks go to the connection that delivered the message (see [`mqtt`] on connection
//! epochs); after a reconnect the agent's re-send takes over.
//!
//! # Readiness ([`wire::state`])
//!
//! Each ingester announces itself on `wp/v1/_state/{client id}` (retained): its MQTT last
//! will is "offline" of the session, and "online" of the same session is published only
//! once the broker granted every subscription (SUBACK), on every (re)connect. Agents
//! re-send their unacked batches when a new session comes online, so whatever they
//! published while no ingester was subscribed (the broker discards it) is not left
//! waiting for their ack timeout. MQTT reconnects use their own backoff
//! ([`IngestOptions::reconnect_min`] … [`IngestOptions::reconnect_max`], 100 ms → 1 s by
//! default) so a broker restart costs about a second, not the database retry ceiling.

mod auth;
mod classify;
mod detection;
mod mqtt;
mod pipeline;
mod rows;
mod sessions;
mod stats;
mod status;

use std::sync::Arc;
use std::time::Duration;

use base::Backoff;
use rumqttc::v5::AsyncClient;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

pub use detection::DetectionOptions;
pub use mqtt::{MqttEndpoint, MqttTls};
pub use stats::{IngestCollector, IngestStats, RejectReason, StatsSnapshot};

use store::Db;

/// The ingester's runtime options (from `[ingest]` in `cloud.toml`).
#[derive(Debug, Clone)]
pub struct IngestOptions {
    /// Most messages per database transaction (≤ 100: rumqttd's in-flight cap).
    pub max_batch_messages: usize,
    /// Longest a message waits for its transaction to start.
    pub max_batch_delay: Duration,
    /// Shared-subscription group.
    pub shared_group: String,
    /// QoS of published acks and commands (0 or 1).
    pub ack_qos: u8,
    /// MQTT keep-alive.
    pub keep_alive: Duration,
    /// Live seq jump that counts as a gap (the agent's in-flight window, with margin).
    pub seq_gap_window: u64,
    /// Minimum time between rebirth requests to one gateway.
    pub rebirth_min_interval: Duration,
    /// Clock skew beyond which a live batch is flagged.
    pub clock_skew_threshold: Duration,
    /// First retry delay (database and MQTT).
    pub retry_initial: Duration,
    /// Longest retry delay.
    pub retry_max: Duration,
    /// First MQTT reconnect delay.
    pub reconnect_min: Duration,
    /// Longest MQTT reconnect delay: a broker restart costs at most about this much
    /// before the ingester is subscribed again and announces itself online.
    pub reconnect_max: Duration,
    /// Live detection of the stored batches (`None`: off).
    pub detection: Option<DetectionOptions>,
}

impl Default for IngestOptions {
    /// The defaults `cloud.toml` documents for `[ingest]`.
    fn default() -> Self {
        IngestOptions {
            max_batch_messages: 48,
            max_batch_delay: Duration::from_millis(20),
            shared_group: "ingest".to_owned(),
            ack_qos: 1,
            keep_alive: Duration::from_secs(30),
            seq_gap_window: 64,
            rebirth_min_interval: Duration::from_secs(60),
            clock_skew_threshold: Duration::from_secs(120),
            retry_initial: Duration::from_millis(250),
            retry_max: Duration::from_secs(30),
            reconnect_min: Duration::from_millis(100),
            reconnect_max: Duration::from_secs(1),
            detection: Some(DetectionOptions::default()),
        }
    }
}

/// Largest `max_batch_messages`: rumqttd keeps at most 100 un-acked QoS 1 messages in
/// flight to one client, and the ingester holds its MQTT acks until commit.
pub const MAX_BATCH_MESSAGES: usize = 100;

/// Why the ingester could not start.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The TLS settings are unusable.
    #[error("MQTT TLS configuration: {0}")]
    Tls(String),
    /// The MQTT client id cannot name the ingester's state topic.
    #[error(
        "MQTT client id {0:?} cannot name the ingester's state topic: use 1-63 characters of a-z, 0-9, '_' and '-', starting with a letter or digit"
    )]
    ClientId(String),
}

/// A running ingester: the MQTT event loop task, the pipeline task, the gateway status
/// writer task and the detection worker task.
#[derive(Debug)]
pub struct Ingester {
    stats: Arc<IngestStats>,
    event_loop: JoinHandle<()>,
    pipeline: JoinHandle<()>,
    status: JoinHandle<()>,
    detection: Option<JoinHandle<()>>,
}

impl Ingester {
    /// Connects to the broker (retrying forever in the background) and starts ingesting
    /// into `db`. Returns once the tasks are spawned.
    pub fn start(
        db: Db,
        endpoint: &MqttEndpoint,
        options: IngestOptions,
    ) -> Result<Ingester, IngestError> {
        let mut mqtt_options = mqtt::mqtt_options(endpoint, &options)?;
        let state = mqtt::StateTopic::new(&endpoint.client_id)?;
        state.register_will(&mut mqtt_options);
        let (client, eventloop) = AsyncClient::new(mqtt_options, mqtt::REQUEST_CHANNEL_CAPACITY);
        let stats = Arc::new(IngestStats::default());
        let epoch = Arc::new(mqtt::Epoch::default());
        let (tx, rx) = mpsc::unbounded_channel();
        let event_loop = tokio::spawn(mqtt::drive(
            eventloop,
            client.clone(),
            state,
            options.shared_group.clone(),
            tx,
            Arc::clone(&epoch),
            Arc::clone(&stats),
            Backoff::new(options.reconnect_min, options.reconnect_max),
        ));
        let (status_tx, status_rx) = mpsc::unbounded_channel();
        let status = tokio::spawn(status::writer(
            db.clone(),
            Arc::clone(&stats),
            options.clone(),
            status_rx,
        ));
        let (scoring_tx, detection) = match &options.detection {
            Some(d) => {
                let worker =
                    detection::Worker::new(db.clone(), Arc::clone(&stats), options.clone(), d);
                let (queue, work) = mpsc::channel(detection::QUEUE_ROUNDS);
                (Some(queue), Some(tokio::spawn(worker.run(work))))
            }
            None => (None, None),
        };
        let pipeline = pipeline::Pipeline::new(
            db,
            client,
            epoch,
            Arc::clone(&stats),
            options,
            status_tx,
            scoring_tx,
        );
        let pipeline = tokio::spawn(pipeline.run(rx));
        Ok(Ingester {
            stats,
            event_loop,
            pipeline,
            status,
            detection,
        })
    }

    /// The ingester's counters (shared; keep the `Arc` for `/metrics`).
    pub fn stats(&self) -> &Arc<IngestStats> {
        &self.stats
    }

    /// Stops immediately, like a crash: in-flight messages are neither committed nor
    /// acked (the broker/agent re-delivers them to whoever consumes next).
    pub fn abort(&self) {
        self.pipeline.abort();
        self.event_loop.abort();
        self.status.abort();
        if let Some(d) = &self.detection {
            d.abort();
        }
    }

    /// Waits until the ingester stops (it only stops when aborted or when a task panics,
    /// which is reported as an error).
    pub async fn wait(self) -> Result<(), tokio::task::JoinError> {
        let Ingester {
            event_loop,
            pipeline,
            status,
            detection,
            ..
        } = self;
        let detection = async {
            match detection {
                Some(d) => d.await,
                None => Ok(()),
            }
        };
        let (a, b, c, d) = tokio::join!(event_loop, pipeline, status, detection);
        for r in [a, b, c, d] {
            match r {
                Err(e) if e.is_panic() => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }
}
