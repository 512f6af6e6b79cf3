//! Load generation and exact latency measurement for end-to-end benchmarks.
//!
//! * [`SyntheticFleet`]: gateways that speak the real protocol without polling anything.
//!   Each one is provisioned in the database like a real gateway, logs in to the broker
//!   with its own credentials, publishes a [`wire::Birth`] built from shipped firmware
//!   profiles, and then one data batch per period (real [`wire::FramesBlock`]s spliced
//!   with [`wire::encode_batch`], strictly increasing seqs, raw values derived from each
//!   tag's valid range). The gateways' publish instants are spread evenly over the period,
//!   as a real fleet's are, and the batch size is adjustable at run time
//!   ([`SyntheticFleet::set_rate`]), so a benchmark can top up the volume of real agents
//!   (which report by exception and thus produce an uncontrolled rate) to a fixed total.
//!   Synthetic gateways ignore acks and never re-send: they exist to load the cloud side.
//! * [`Probe`]: a passive MQTT observer on `wp/v1/{tenant}/+/data` and
//!   `wp/v1/{tenant}/+/ack`. It records, for every `(gateway, seq)`, the sample timestamps
//!   and sample counts of the batch's frames (decoded from the very bytes the ingester
//!   receives) and the wall-clock instant the batch's first application ack arrived. The
//!   cloud publishes an ack only after the transaction holding the batch committed, so
//!   `ack arrival − sample timestamp` is the read-to-commit latency, bounded above by one
//!   loopback broker hop (no polling error). It also keeps the instant the data message
//!   passed the broker, which splits the latency into an edge part (read → broker) and a
//!   cloud part (broker → commit).
//!
//! The probe runs on its own OS thread with a single-threaded Tokio runtime, so its
//! timestamps are not delayed by the work of the runtime that drives agents and ingester.
//! Timestamps come from the system clock, the same clock the agent stamps samples with
//! (everything runs on one machine).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail, ensure};
use firmware_profiles::{DataType, RawValue, Tag};
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Outgoing, Packet, QoS, SubscribeFilter};
use store::Db;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinSet;
use tokio::time::MissedTickBehavior;
use wire::topic::Kind;
use wire::{
    BatchHeader, Birth, DeviceEntry, Frame, FramesBlock, MetricEntry, Quality, Sample, Value,
};

/// Wall-clock microseconds since the Unix epoch.
pub fn wall_us() -> i64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since.as_micros()).unwrap_or(i64::MAX)
}

/// Wall-clock milliseconds since the Unix epoch (the agent's sample clock).
pub fn wall_ms() -> i64 {
    wall_us() / 1000
}

/// Drops a database created by [`crate::stack::fresh_database`], disconnecting whoever
/// still uses it.
pub async fn drop_database(url: &str) -> anyhow::Result<()> {
    let name = url
        .rsplit_once('/')
        .map(|(_, n)| n)
        .context("database url has no database name")?;
    ensure!(
        !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
        "refusing to drop database {name:?}: not a generated name"
    );
    let admin = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(&admin)
        .await
        .context("connect DATABASE_URL")?;
    // `name` was checked above to be [a-z0-9_]+: safe to splice.
    let dropped = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&pool)
        .await
        .with_context(|| format!("drop database {name}"));
    pool.close().await;
    dropped.map(|_| ())
}

// ---------------------------------------------------------------------------------------
// Synthetic gateways
// ---------------------------------------------------------------------------------------

/// Firmware profiles of synthetic devices (device `d` uses entry `d % len`).
const SYNTHETIC_PROFILES: [&str; 2] = ["rod-pump-controller", "gas-flow-computer"];
/// How long the births of a synthetic fleet may take to reach the database.
const BIRTH_TIMEOUT: Duration = Duration::from_secs(60);

/// Settings of a [`SyntheticFleet`].
#[derive(Debug, Clone)]
pub struct SyntheticConfig {
    /// The broker's MQTT 3.1.1 listener.
    pub broker: SocketAddr,
    /// Tenant of every gateway.
    pub tenant: String,
    /// Gateway ids are `{prefix}{n:03}` (n from 0); must make valid topic ids.
    pub prefix: String,
    /// Number of gateways.
    pub gateways: usize,
    /// Devices per gateway.
    pub devices_per_gateway: u16,
    /// Each gateway publishes one batch per period.
    pub period: Duration,
}

/// One metric a synthetic device reports, with the two raw values it alternates between.
#[derive(Debug, Clone)]
struct SyntheticMetric {
    alias: u16,
    values: [Value; 2],
}

/// The reportable metrics of one synthetic device.
#[derive(Debug, Clone)]
struct SyntheticDevice {
    alias: u16,
    metrics: Vec<SyntheticMetric>,
}

/// One synthetic gateway's identity and catalog.
#[derive(Debug)]
struct SyntheticGateway {
    id: String,
    boot_id: u64,
    birth: Birth,
    devices: Vec<SyntheticDevice>,
}

/// A running fleet of synthetic gateways.
#[derive(Debug)]
pub struct SyntheticFleet {
    config: SyntheticConfig,
    /// Samples each gateway puts into its next batch.
    per_batch: Arc<AtomicU32>,
    /// Most samples one batch can carry (every reportable metric of every device).
    capacity: u32,
    published: Arc<AtomicU64>,
    stop: watch::Sender<bool>,
    tasks: JoinSet<anyhow::Result<()>>,
}

impl SyntheticFleet {
    /// Provisions the gateways in `db`, connects them, publishes their births, waits until
    /// the cloud has stored every birth, and starts publishing data at `samples_per_s` in
    /// total.
    pub async fn start(
        db: &Db,
        config: SyntheticConfig,
        samples_per_s: f64,
    ) -> anyhow::Result<SyntheticFleet> {
        ensure!(
            config.gateways > 0 && config.devices_per_gateway > 0,
            "a synthetic fleet needs gateways and devices"
        );
        ensure!(
            !config.period.is_zero(),
            "the batch period must be positive"
        );
        let (stop, stopped) = watch::channel(false);
        let published = Arc::new(AtomicU64::new(0));
        let per_batch = Arc::new(AtomicU32::new(0));
        let mut tasks = JoinSet::new();
        let mut capacity = u32::MAX;
        let first_tick = tokio::time::Instant::now() + Duration::from_millis(200);
        for n in 0..config.gateways {
            let gateway = SyntheticGateway::new(
                format!("{}{n:03}", config.prefix),
                config.devices_per_gateway,
            )?;
            capacity = capacity.min(gateway.capacity());
            let password = gateway_password(&gateway.id);
            db.provision_gateway(&config.tenant, "synthetic", &gateway.id, &password)
                .await
                .with_context(|| format!("provision {}", gateway.id))?;
            let (client, events) = connect(&config, &gateway.id, &password);
            let key = wire::MessageKey::derive(password.as_bytes());
            let birth_topic = wire::topic::topic(&config.tenant, &gateway.id, Kind::Birth);
            let birth = wire::seal::seal(&key, &birth_topic, &gateway.birth.encode());
            client.try_publish(birth_topic, QoS::AtLeastOnce, false, birth)?;
            // Spread the gateways' publish instants evenly over the period.
            let start = first_tick + config.period.mul_f64(n as f64 / config.gateways as f64);
            let publisher = Publisher {
                key,
                topic: wire::topic::topic(&config.tenant, &gateway.id, Kind::Data),
                gateway,
                client,
                per_batch: Arc::clone(&per_batch),
                published: Arc::clone(&published),
            };
            tasks.spawn(publisher.run(events, config.period, start, stopped.clone()));
        }
        let fleet = SyntheticFleet {
            config,
            per_batch,
            capacity,
            published,
            stop,
            tasks,
        };
        fleet.wait_births(db).await?;
        fleet.set_rate(samples_per_s);
        Ok(fleet)
    }

    /// Sets the total rate; returns the rate actually configured (batches carry whole
    /// samples, at most every metric of every device).
    pub fn set_rate(&self, samples_per_s: f64) -> f64 {
        let batches_per_s = self.config.gateways as f64 / self.config.period.as_secs_f64();
        let per_batch = (samples_per_s.max(0.0) / batches_per_s)
            .round()
            .min(f64::from(self.capacity)) as u32;
        self.per_batch.store(per_batch, Relaxed);
        f64::from(per_batch) * batches_per_s
    }

    /// Samples published so far.
    pub fn published_samples(&self) -> u64 {
        self.published.load(Relaxed)
    }

    /// Number of gateways.
    pub fn gateways(&self) -> usize {
        self.config.gateways
    }

    /// Stops publishing and disconnects every gateway.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        while let Some(done) = self.tasks.join_next().await {
            done.context("synthetic gateway task")??;
        }
        Ok(())
    }

    async fn wait_births(&self, db: &Db) -> anyhow::Result<()> {
        let deadline = Instant::now() + BIRTH_TIMEOUT;
        let pattern = format!("{}%", self.config.prefix.replace('_', "\\_"));
        loop {
            let stored: i64 = sqlx::query_scalar(
                "SELECT count(DISTINCT b.gateway_id) FROM gateway_births b JOIN gateways g ON g.id = b.gateway_id
                 WHERE g.slug LIKE $1",
            )
            .bind(&pattern)
            .fetch_one(db.pool())
            .await?;
            if stored as usize >= self.config.gateways {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "only {stored} of {} synthetic births stored after {BIRTH_TIMEOUT:?}",
                    self.config.gateways
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// The MQTT password of test gateway `gateway`, synthetic or a stack's agent (so the probe
/// can open what they seal with the key derived from it).
pub fn gateway_password(gateway: &str) -> String {
    format!("{gateway}-secret-0123456789")
}

/// Opens a message on `topic` with the key of the test gateway the topic names.
fn open<'a>(topic: &str, gateway: &str, payload: &'a [u8]) -> Option<&'a [u8]> {
    let key = wire::MessageKey::derive(gateway_password(gateway).as_bytes());
    wire::seal::open([&key], topic, payload)
        .ok()
        .map(|o| o.message)
}

fn connect(config: &SyntheticConfig, gateway: &str, password: &str) -> (AsyncClient, EventLoop) {
    let client_id = broker::gateway_client_id(&config.tenant, gateway);
    let mut options = MqttOptions::new(
        client_id,
        config.broker.ip().to_string(),
        config.broker.port(),
    );
    options.set_keep_alive(Duration::from_secs(30));
    options.set_credentials(format!("{}/{gateway}", config.tenant), password);
    options.set_max_packet_size(1 << 20, 1 << 20);
    AsyncClient::new(options, 64)
}

impl SyntheticGateway {
    fn new(id: String, devices: u16) -> anyhow::Result<SyntheticGateway> {
        wire::topic::validate_id(&id).with_context(|| format!("synthetic gateway id {id:?}"))?;
        let boot_id = (wall_us() as u64).rotate_left(17)
            ^ u64::from(devices)
            ^ id.bytes().map(u64::from).sum::<u64>();
        let mut entries = Vec::new();
        let mut reportable = Vec::new();
        for alias in 0..devices {
            let profile_id = SYNTHETIC_PROFILES[usize::from(alias) % SYNTHETIC_PROFILES.len()];
            let profile = firmware_profiles::builtin_profile(profile_id)
                .with_context(|| format!("built-in profile {profile_id}"))?;
            let mut metrics = Vec::new();
            let mut sampled = Vec::new();
            for (index, tag) in profile.tags.iter().enumerate() {
                let (Some(canonical), Ok(metric)) = (&tag.metric, u16::try_from(index)) else {
                    continue;
                };
                metrics.push(MetricEntry {
                    alias: metric,
                    canonical: canonical.clone(),
                    tag: tag.name.clone(),
                    unit: tag.unit.clone(),
                    scale: tag.scale,
                    offset: tag.offset,
                    writable: tag.writable,
                    kind: None,
                });
                if let Some(values) = plausible_values(tag) {
                    sampled.push(SyntheticMetric {
                        alias: metric,
                        values,
                    });
                }
            }
            entries.push(DeviceEntry {
                alias,
                name: format!("{id}-dev{alias}"),
                profile: profile_id.to_owned(),
                info: Vec::new(),
                metrics,
            });
            reportable.push(SyntheticDevice {
                alias,
                metrics: sampled,
            });
        }
        let birth = Birth {
            boot_id,
            ts_ms: wall_ms(),
            agent_version: format!("synthetic-{}", env!("CARGO_PKG_VERSION")),
            config_hash: format!("synthetic-{devices}"),
            devices: entries,
        };
        Ok(SyntheticGateway {
            id,
            boot_id,
            birth,
            devices: reportable,
        })
    }

    fn capacity(&self) -> u32 {
        self.devices.iter().map(|d| d.metrics.len() as u32).sum()
    }

    /// Frames of one poll of every device at `ts_ms`, `samples` samples in total (at most
    /// [`SyntheticGateway::capacity`]), spread over the devices as evenly as their metrics
    /// allow: devices with fewer metrics are served first, so what they cannot take moves
    /// on to the larger ones.
    fn frames(&self, ts_ms: i64, samples: u32, seq: u64) -> Vec<Frame> {
        let mut by_size: Vec<&SyntheticDevice> = self.devices.iter().collect();
        by_size.sort_by_key(|d| d.metrics.len());
        let mut left = samples as usize;
        let mut frames = Vec::new();
        for (i, device) in by_size.iter().enumerate() {
            let share = left.div_ceil(by_size.len() - i).min(device.metrics.len());
            left -= share;
            if share == 0 {
                continue;
            }
            let samples = device.metrics[..share]
                .iter()
                .map(|m| Sample {
                    metric: m.alias,
                    value: Some(m.values[(seq % 2) as usize]),
                    quality: Quality::Good,
                })
                .collect();
            frames.push(Frame {
                device: device.alias,
                ts_ms,
                samples,
            });
        }
        frames.sort_by_key(|f| f.device);
        frames
    }
}

/// Two raw values inside the tag's valid range (at 40 % and 60 % of it), or `None` for a
/// tag that carries no number.
fn plausible_values(tag: &Tag) -> Option<[Value; 2]> {
    let (low, high) = tag.valid_range.unwrap_or((0.0, 100.0));
    let pick = |fraction: f64| -> Option<Value> {
        let eng = match tag.data_type {
            DataType::Bool | DataType::Bit { .. } => fraction.round(),
            _ => low + (high - low) * fraction,
        };
        match tag.from_engineering(eng).ok()? {
            RawValue::Int(v) => Some(Value::Int(v)),
            RawValue::Float(v) => Some(Value::Float(v)),
            RawValue::Bool(v) => Some(Value::Bool(v)),
            RawValue::Text(_) => None,
        }
    };
    Some([pick(0.4)?, pick(0.6)?])
}

/// Publishes one gateway's batches.
#[derive(Debug)]
struct Publisher {
    key: wire::MessageKey,
    topic: String,
    gateway: SyntheticGateway,
    client: AsyncClient,
    per_batch: Arc<AtomicU32>,
    published: Arc<AtomicU64>,
}

impl Publisher {
    /// Publishes one batch per period and drives the MQTT connection (rumqttc reconnects
    /// on the next poll after an error) until `stop`, then disconnects.
    async fn run(
        self,
        mut events: EventLoop,
        period: Duration,
        start: tokio::time::Instant,
        mut stop: watch::Receiver<bool>,
    ) -> anyhow::Result<()> {
        let mut tick = tokio::time::interval_at(start, period);
        tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
        let mut seq = 0u64;
        loop {
            tokio::select! {
                _ = stop.changed() => break,
                _ = tick.tick() => self.publish_next(&mut seq)?,
                event = events.poll() => if let Err(e) = event {
                    tracing::warn!(gateway = %self.gateway.id, error = %e, "MQTT connection error; reconnecting");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                },
            }
        }
        self.client.try_disconnect()?;
        // Flush what is queued and the DISCONNECT itself.
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            while events
                .poll()
                .await
                .is_ok_and(|e| !matches!(e, Event::Outgoing(Outgoing::Disconnect)))
            {}
        })
        .await;
        Ok(())
    }

    /// Queues the next batch (never waits: the request channel is drained by `run`).
    fn publish_next(&self, seq: &mut u64) -> anyhow::Result<()> {
        let samples = self.per_batch.load(Relaxed);
        if samples == 0 {
            return Ok(());
        }
        *seq += 1;
        let frames = self.gateway.frames(wall_ms(), samples, *seq);
        let block = FramesBlock::encode(&frames).context("encode synthetic frames")?;
        let header = BatchHeader {
            epoch: 0,
            seq: *seq,
            boot_id: self.gateway.boot_id,
            historical: false,
            status: None,
        };
        let payload =
            wire::seal::seal(&self.key, &self.topic, &wire::encode_batch(&header, &block));
        self.client
            .try_publish(&self.topic, QoS::AtLeastOnce, false, payload)
            .with_context(|| format!("{}: MQTT request queue full", self.gateway.id))?;
        self.published
            .fetch_add(u64::from(block.sample_count()), Relaxed);
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// Probe
// ---------------------------------------------------------------------------------------

/// A data batch as the probe saw it.
#[derive(Debug)]
struct SeenBatch {
    /// When the data message reached the probe (µs).
    seen_us: i64,
    historical: bool,
    /// `(sample timestamp ms, samples)` per frame.
    frames: Vec<(i64, u32)>,
}

#[derive(Debug, Default)]
struct ProbeLog {
    data: HashMap<(String, u64), SeenBatch>,
    /// First ack arrival (µs) per `(gateway, seq)`.
    acks: HashMap<(String, u64), i64>,
    undecodable: u64,
    disconnects: u64,
}

/// Weighted percentiles of a latency distribution, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest value.
    pub max: f64,
}

/// Latencies of the samples read within a time window by a selection of gateways.
#[derive(Debug, Clone, PartialEq)]
pub struct LatencyReport {
    /// Batches with at least one sample in the window.
    pub batches: usize,
    /// Samples read in the window.
    pub samples: u64,
    /// Of those, samples whose batch has not been acked (counted as infinitely late).
    pub unacked_samples: u64,
    /// Batches flagged historical (backlog; none expected in steady state).
    pub historical_batches: usize,
    /// Sample read → batch committed (ack observed).
    pub total: Percentiles,
    /// Sample read → data message through the broker.
    pub edge: Percentiles,
    /// Data message through the broker → batch committed.
    pub cloud: Percentiles,
}

/// A passive observer of data batches and cloud acks (see the module docs).
#[derive(Debug)]
pub struct Probe {
    log: Arc<Mutex<ProbeLog>>,
    stop: watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Probe {
    /// Connects to the broker's MQTT 3.1.1 listener at `broker` with `credentials` (they
    /// must allow subscribing to every gateway's topics) and returns once subscribed.
    pub async fn start(
        broker: SocketAddr,
        tenant: &str,
        credentials: (String, String),
    ) -> anyhow::Result<Probe> {
        let log = Arc::new(Mutex::new(ProbeLog::default()));
        let (stop, stopped) = watch::channel(false);
        let (ready, subscribed) = oneshot::channel();
        let mut options = MqttOptions::new(
            format!("e2e-probe-{}", std::process::id()),
            broker.ip().to_string(),
            broker.port(),
        );
        options.set_keep_alive(Duration::from_secs(30));
        options.set_credentials(credentials.0, credentials.1);
        options.set_max_packet_size(1 << 20, 1 << 20);
        let filters = [Kind::Data, Kind::Ack]
            .map(|k| format!("{}/{tenant}/+/{}", wire::topic::PREFIX, k.as_str()));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("probe runtime")?;
        let thread_log = Arc::clone(&log);
        let thread = std::thread::Builder::new()
            .name("e2e-probe".into())
            .spawn(move || runtime.block_on(observe(options, filters, thread_log, ready, stopped)))
            .context("spawn probe thread")?;
        tokio::time::timeout(Duration::from_secs(30), subscribed)
            .await
            .context("probe not subscribed within 30 s")?
            .context("probe stopped before subscribing")?;
        Ok(Probe {
            log,
            stop,
            thread: Some(thread),
        })
    }

    /// Latencies of the samples read in `[from_ms, to_ms)` by gateways `select` accepts.
    pub fn report(&self, from_ms: i64, to_ms: i64, select: impl Fn(&str) -> bool) -> LatencyReport {
        let log = self.lock();
        let (mut total, mut edge, mut cloud) = (Vec::new(), Vec::new(), Vec::new());
        let (mut batches, mut samples, mut unacked, mut historical) = (0, 0u64, 0u64, 0);
        for ((gateway, seq), seen) in &log.data {
            if !select(gateway) {
                continue;
            }
            let frames: Vec<(i64, u32)> = seen
                .frames
                .iter()
                .copied()
                .filter(|&(ts, n)| n > 0 && (from_ms..to_ms).contains(&ts))
                .collect();
            if frames.is_empty() {
                continue;
            }
            batches += 1;
            historical += usize::from(seen.historical);
            let ack = log.acks.get(&(gateway.clone(), *seq)).copied();
            let weight: u64 = frames.iter().map(|&(_, n)| u64::from(n)).sum();
            samples += weight;
            let cloud_ms = ack.map_or(f64::INFINITY, |a| (a - seen.seen_us) as f64 / 1000.0);
            cloud.push((cloud_ms, weight));
            if ack.is_none() {
                unacked += weight;
            }
            for (ts, n) in frames {
                let read_us = ts * 1000;
                edge.push(((seen.seen_us - read_us) as f64 / 1000.0, u64::from(n)));
                total.push((
                    ack.map_or(f64::INFINITY, |a| (a - read_us) as f64 / 1000.0),
                    u64::from(n),
                ));
            }
        }
        LatencyReport {
            batches,
            samples,
            unacked_samples: unacked,
            historical_batches: historical,
            total: percentiles(total),
            edge: percentiles(edge),
            cloud: percentiles(cloud),
        }
    }

    /// Data messages that could not be decoded, and connection losses of the probe (either
    /// means batches may have been missed).
    pub fn faults(&self) -> (u64, u64) {
        let log = self.lock();
        (log.undecodable, log.disconnects)
    }

    /// Stops the observer thread.
    pub fn stop(mut self) {
        let _ = self.stop.send(true);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }

    fn lock(&self) -> MutexGuard<'_, ProbeLog> {
        self.log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The probe's event loop: timestamps every publish as it is read off the socket.
async fn observe(
    options: MqttOptions,
    filters: [String; 2],
    log: Arc<Mutex<ProbeLog>>,
    ready: oneshot::Sender<()>,
    mut stop: watch::Receiver<bool>,
) {
    let (client, mut events) = AsyncClient::new(options, 16);
    let mut ready = Some(ready);
    loop {
        let event = tokio::select! {
            _ = stop.changed() => break,
            event = events.poll() => event,
        };
        match event {
            Ok(Event::Incoming(Packet::Publish(p))) => {
                let at = wall_us();
                record(
                    &mut log
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner),
                    &p.topic,
                    &p.payload,
                    at,
                );
            }
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                // Clean session: subscribe on every (re)connect, from another task because
                // the request channel is drained by this loop.
                let client = client.clone();
                let filters = filters
                    .clone()
                    .map(|f| SubscribeFilter::new(f, QoS::AtLeastOnce));
                tokio::spawn(async move { client.subscribe_many(filters).await });
            }
            Ok(Event::Incoming(Packet::SubAck(_))) => {
                if let Some(ready) = ready.take() {
                    let _ = ready.send(());
                }
            }
            Ok(_) => {}
            Err(e) => {
                log.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .disconnects += 1;
                tracing::warn!(error = %e, "probe connection error; reconnecting");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    let _ = client.disconnect().await;
}

/// Records one publish seen at `at_us`.
fn record(log: &mut ProbeLog, topic: &str, payload: &[u8], at_us: i64) {
    let Ok((_, gateway, kind)) = wire::topic::parse(topic) else {
        return;
    };
    if !matches!(kind, Kind::Data | Kind::Ack) {
        return;
    }
    let Some(payload) = open(topic, &gateway, payload) else {
        log.undecodable += 1;
        return;
    };
    match kind {
        Kind::Data => match wire::Batch::decode(payload) {
            Ok(batch) => {
                log.data
                    .entry((gateway, batch.header.seq))
                    .or_insert_with(|| SeenBatch {
                        seen_us: at_us,
                        historical: batch.header.historical,
                        frames: batch
                            .frames
                            .iter()
                            .map(|f| (f.ts_ms, f.samples.len() as u32))
                            .collect(),
                    });
            }
            Err(_) => log.undecodable += 1,
        },
        Kind::Ack => {
            let Ok(ack) = wire::Ack::decode(payload) else {
                log.undecodable += 1;
                return;
            };
            for (first, last) in ack.ranges {
                // An ack names the seqs of one ingest round; cap hostile ranges.
                for seq in first..=last.min(first.saturating_add(100_000)) {
                    log.acks.entry((gateway.clone(), seq)).or_insert(at_us);
                }
            }
        }
        _ => {}
    }
}

/// Weighted percentiles (nearest rank); all zero for an empty distribution.
fn percentiles(mut values: Vec<(f64, u64)>) -> Percentiles {
    values.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total: u64 = values.iter().map(|v| v.1).sum();
    let rank = |q: f64| -> f64 {
        let target = ((total as f64) * q).ceil().max(1.0) as u64;
        let mut cumulative = 0;
        for &(value, weight) in &values {
            cumulative += weight;
            if cumulative >= target {
                return value;
            }
        }
        0.0
    };
    Percentiles {
        p50: rank(0.50),
        p99: rank(0.99),
        max: values.last().map_or(0.0, |v| v.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weighted_percentiles_use_nearest_rank() {
        let p = percentiles(vec![(30.0, 1), (10.0, 98), (20.0, 1)]);
        assert_eq!(
            p,
            Percentiles {
                p50: 10.0,
                p99: 20.0,
                max: 30.0
            }
        );
        let p = percentiles(vec![(1.0, 50), (2.0, 49), (f64::INFINITY, 1)]);
        assert_eq!((p.p50, p.p99), (1.0, 2.0));
        let p = percentiles(vec![(1.0, 50), (2.0, 48), (f64::INFINITY, 2)]);
        assert_eq!(p.p99, f64::INFINITY);
        assert_eq!(
            percentiles(Vec::new()),
            Percentiles {
                p50: 0.0,
                p99: 0.0,
                max: 0.0
            }
        );
    }

    #[test]
    fn synthetic_batches_carry_the_requested_samples_and_decode() {
        let gateway = SyntheticGateway::new("syn-000".into(), 4).expect("gateway");
        let capacity = gateway.capacity();
        assert!(capacity >= 100, "catalog too small: {capacity}");
        for want in [1, 7, 100, capacity] {
            let frames = gateway.frames(1_700_000_000_000, want, 3);
            let block = FramesBlock::encode(&frames).expect("encode");
            assert_eq!(block.sample_count(), want);
            let header = BatchHeader {
                epoch: 0,
                seq: 3,
                boot_id: gateway.boot_id,
                historical: false,
                status: None,
            };
            let batch = wire::Batch::decode(&wire::encode_batch(&header, &block)).expect("decode");
            assert_eq!(batch.sample_count() as u32, want);
            for frame in &batch.frames {
                let device = &gateway.birth.devices[usize::from(frame.device)];
                assert!(
                    frame
                        .samples
                        .iter()
                        .all(|s| device.metrics.iter().any(|m| m.alias == s.metric))
                );
            }
        }
        Birth::decode(&gateway.birth.encode()).expect("birth decodes");
    }

    #[test]
    fn probe_joins_data_and_first_ack() {
        let mut log = ProbeLog::default();
        let frames = vec![Frame {
            device: 0,
            ts_ms: 1_000,
            samples: vec![Sample {
                metric: 0,
                value: Some(Value::Int(1)),
                quality: Quality::Good,
            }],
        }];
        let block = FramesBlock::encode(&frames).expect("encode");
        let header = BatchHeader {
            epoch: 0,
            seq: 5,
            boot_id: 1,
            historical: false,
            status: None,
        };
        let topic = |k| wire::topic::topic("t", "gw-1", k);
        let key = wire::MessageKey::derive(gateway_password("gw-1").as_bytes());
        let sealed = |k, m: &[u8]| wire::seal::seal(&key, &topic(k), m);
        record(
            &mut log,
            &topic(Kind::Data),
            &sealed(Kind::Data, &wire::encode_batch(&header, &block)),
            1_100_000,
        );
        record(
            &mut log,
            &topic(Kind::Ack),
            &sealed(Kind::Ack, &wire::Ack::of([4, 5]).encode()),
            1_250_000,
        );
        record(
            &mut log,
            &topic(Kind::Ack),
            &sealed(Kind::Ack, &wire::Ack::of([5]).encode()),
            1_900_000,
        );
        // Unsealed (or forged) messages are not taken for the gateway's.
        record(
            &mut log,
            &topic(Kind::Ack),
            &wire::Ack::of([6]).encode(),
            1_950_000,
        );
        assert_eq!(log.undecodable, 1);
        assert!(!log.acks.contains_key(&("gw-1".to_owned(), 6)));
        let entry = &log.data[&("gw-1".to_owned(), 5)];
        assert_eq!(
            (entry.seen_us, entry.frames.clone()),
            (1_100_000, vec![(1_000, 1)])
        );
        assert_eq!(log.acks[&("gw-1".to_owned(), 5)], 1_250_000);
    }
}
