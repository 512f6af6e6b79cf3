//! End-to-end ingester benchmark (`cargo bench -p ingest --bench ingester`).
//!
//! Gateways (rumqttc clients) → embedded rumqttd → ingester → PostgreSQL (plain back-end,
//! scratch database) → application acks back to the gateways. Everything runs on this
//! machine, so the figures include the broker's and the database's CPU.
//!
//! * `ingester_e2e_samples_per_s` / `ingester_e2e_batches_per_s`: 10 gateways each
//!   publish 200 batches of 100 samples (one device × 20 metrics × 5 polls) as fast as
//!   MQTT allows; time from the first publish to the last application ack — and, with
//!   detection (which scores after the commit), to the last sample scored.
//! * `ingester_detection_lag_after_last_ack_ms`: how long scoring went on after the last
//!   ack of that burst.
//! * `ingester_ack_latency_p50_ms` / `_p95_ms`: the same gateways each send one batch
//!   every 250 ms for 15 s; latency from publish to the application ack covering it
//!   (includes the ingester's default `max_batch_delay` of 20 ms).
//!
//! Default ingest options (48 messages per transaction, 20 ms batch delay), each figure
//! measured with live detection (the shipped default) and without it
//! (`…_without_detection`), three alternated runs of each on fresh databases, the best one
//! kept; `ingester_detection_rate_ratio` is with / without.
//! `ingester_detection_scoring_ms_per_1k_samples` / `_storage_…`: where detection's time
//! goes, from the ingester's own counters (`detection_scoring_us`, `detection_storage_us`
//! in `/metrics`) over the whole run, the lowest of the runs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ingest::IngestOptions;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use testkit::mqtt::{Broker, TestDb, start_ingester};
use wire::topic::Kind;
use wire::{Batch, BatchHeader, Birth, DeviceEntry, Frame, MetricEntry, Quality, Sample, Value};

const GATEWAYS: usize = 10;
const BATCHES: u64 = 200;
const METRICS: u16 = 20;
const POLLS: i64 = 5;
const CANONICAL: [&str; 20] = [
    "tubing_pressure_psi",
    "casing_pressure_psi",
    "line_pressure_psi",
    "static_pressure_psi",
    "differential_pressure_inh2o",
    "flow_temperature_f",
    "gas_rate_mcfd",
    "gas_volume_today_mcf",
    "oil_rate_bpd",
    "water_rate_bpd",
    "oil_level_in",
    "water_level_in",
    "tank_temperature_f",
    "pump_fillage_pct",
    "strokes_per_minute",
    "rod_load_peak_lbf",
    "rod_load_min_lbf",
    "motor_current_a",
    "motor_voltage_v",
    "vibration_g",
];

fn birth(boot_id: u64) -> Birth {
    Birth {
        boot_id,
        ts_ms: 1_700_000_000_000,
        agent_version: "bench".into(),
        config_hash: "bench".into(),
        devices: vec![DeviceEntry {
            alias: 0,
            name: "dev-0".into(),
            profile: "rod-pump-controller".into(),
            info: vec![],
            metrics: (0..METRICS)
                .map(|m| MetricEntry {
                    alias: m,
                    canonical: CANONICAL[m as usize].into(),
                    tag: format!("t{m}"),
                    unit: "u".into(),
                    scale: 0.1,
                    offset: 0.0,
                    writable: false,
                    kind: None,
                })
                .collect(),
        }],
    }
}

fn batch(seq: u64, boot_id: u64) -> Batch {
    let t0 = 1_700_000_000_000 + seq as i64 * POLLS * 1000;
    Batch {
        header: BatchHeader {
            epoch: 0,
            seq,
            boot_id,
            historical: false,
            status: None,
        },
        frames: (0..POLLS)
            .map(|p| Frame {
                device: 0,
                ts_ms: t0 + p * 1000,
                samples: (0..METRICS)
                    .map(|m| Sample {
                        metric: m,
                        value: Some(Value::Int(1000 + i64::from(m) + p)),
                        quality: Quality::Good,
                    })
                    .collect(),
            })
            .collect(),
    }
}

/// A gateway that seals what it publishes (as the agent does) and records when each seq
/// was acked.
struct Gateway {
    name: String,
    key: wire::MessageKey,
    client: AsyncClient,
    acked: Arc<Mutex<HashMap<u64, Instant>>>,
}

impl Gateway {
    async fn connect(broker: &Broker, name: &str, secret: &str) -> Gateway {
        let mut options = MqttOptions::new(
            broker::gateway_client_id(testkit::mqtt::TENANT, name),
            broker.v4.ip().to_string(),
            broker.v4.port(),
        );
        options
            .set_credentials(format!("{}/{name}", testkit::mqtt::TENANT), secret)
            .set_keep_alive(Duration::from_secs(30))
            .set_inflight(100);
        let (client, mut eventloop) = AsyncClient::new(options, 1000);
        let acked = Arc::new(Mutex::new(HashMap::new()));
        let key = wire::MessageKey::derive(secret.as_bytes());
        let ack_topic = wire::topic::topic(testkit::mqtt::TENANT, name, Kind::Ack);
        let (subscribed_tx, subscribed_rx) = tokio::sync::oneshot::channel();
        {
            let (acked, client, key) = (acked.clone(), client.clone(), key.clone());
            let mut subscribed_tx = Some(subscribed_tx);
            tokio::spawn(async move {
                loop {
                    match eventloop.poll().await {
                        Ok(Event::Incoming(Packet::ConnAck(_))) => {
                            let (client, topic) = (client.clone(), ack_topic.clone());
                            tokio::spawn(async move {
                                client.subscribe(topic, QoS::AtLeastOnce).await.unwrap()
                            });
                        }
                        Ok(Event::Incoming(Packet::SubAck(_))) => {
                            if let Some(tx) = subscribed_tx.take() {
                                let _ = tx.send(());
                            }
                        }
                        Ok(Event::Incoming(Packet::Publish(p))) if p.topic == ack_topic => {
                            let now = Instant::now();
                            let opened = wire::seal::open([&key], &ack_topic, &p.payload)
                                .expect("the ingester seals its acks");
                            let ack = wire::Ack::decode(opened.message).unwrap();
                            let mut acked = acked.lock().unwrap();
                            for (a, b) in ack.ranges {
                                for seq in a..=b {
                                    acked.entry(seq).or_insert(now);
                                }
                            }
                        }
                        Ok(_) => {}
                        Err(e) => panic!("bench gateway connection failed: {e}"),
                    }
                }
            });
        }
        subscribed_rx.await.unwrap();
        Gateway {
            name: name.into(),
            key,
            client,
            acked,
        }
    }

    fn seal(&self, kind: Kind, message: &[u8]) -> Vec<u8> {
        let topic = wire::topic::topic(testkit::mqtt::TENANT, &self.name, kind);
        wire::seal::seal(&self.key, &topic, message)
    }

    async fn publish(&self, kind: Kind, message: Vec<u8>) {
        let payload = self.seal(kind, &message);
        self.client
            .publish(
                wire::topic::topic(testkit::mqtt::TENANT, &self.name, kind),
                QoS::AtLeastOnce,
                false,
                payload,
            )
            .await
            .unwrap();
    }

    fn acked_count(&self) -> usize {
        self.acked.lock().unwrap().len()
    }
}

async fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "bench timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// What one run measured.
struct Figures {
    samples_per_s: f64,
    batches_per_s: f64,
    p50_ms: f64,
    p95_ms: f64,
    /// Detection's time per 1,000 samples: in the detectors, and in the database.
    scoring_ms_per_1k: f64,
    storage_ms_per_1k: f64,
    /// From the last ack to the last sample scored (detection runs after the commit).
    lag_ms: f64,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    testkit::mqtt::init_tracing();
    // Detection on (the shipped default) and off, alternated so drift hits both alike;
    // the better of two runs each.
    let mut on = Vec::new();
    let mut off = Vec::new();
    for _ in 0..3 {
        off.push(run(false).await);
        on.push(run(true).await);
    }
    let best = |runs: &[Figures]| {
        runs.iter()
            .max_by(|a, b| a.samples_per_s.total_cmp(&b.samples_per_s))
            .map(|f| (f.samples_per_s, f.batches_per_s))
            .unwrap_or_default()
    };
    let ((on_samples, on_batches), (off_samples, off_batches)) = (best(&on), best(&off));
    println!("BENCH ingester_e2e_samples_per_s {on_samples:.0} samples/s");
    println!("BENCH ingester_e2e_batches_per_s {on_batches:.0} batches/s");
    println!("BENCH ingester_e2e_samples_per_s_without_detection {off_samples:.0} samples/s");
    println!("BENCH ingester_e2e_batches_per_s_without_detection {off_batches:.0} batches/s");
    println!(
        "BENCH ingester_detection_rate_ratio {:.3} ratio",
        on_samples / off_samples
    );
    let p =
        |runs: &[Figures], f: fn(&Figures) -> f64| runs.iter().map(f).fold(f64::INFINITY, f64::min);
    println!(
        "BENCH ingester_detection_scoring_ms_per_1k_samples {:.3} ms",
        p(&on, |f| f.scoring_ms_per_1k)
    );
    println!(
        "BENCH ingester_detection_storage_ms_per_1k_samples {:.3} ms",
        p(&on, |f| f.storage_ms_per_1k)
    );
    println!(
        "BENCH ingester_detection_lag_after_last_ack_ms {:.1} ms",
        p(&on, |f| f.lag_ms)
    );
    println!(
        "BENCH ingester_ack_latency_p50_ms {:.1} ms",
        p(&on, |f| f.p50_ms)
    );
    println!(
        "BENCH ingester_ack_latency_p95_ms {:.1} ms",
        p(&on, |f| f.p95_ms)
    );
    println!(
        "BENCH ingester_ack_latency_p50_ms_without_detection {:.1} ms",
        p(&off, |f| f.p50_ms)
    );
    println!(
        "BENCH ingester_ack_latency_p95_ms_without_detection {:.1} ms",
        p(&off, |f| f.p95_ms)
    );
}

/// One full run on a fresh database, broker and ingester.
async fn run(detection: bool) -> Figures {
    let test = TestDb::new("bench_ingester").await;
    // Each gateway publishes all its batches at once, far above a real gateway's rate:
    // lift the front listener's per-gateway limits, this measures the ingester.
    let limits = broker::FrontOptions {
        messages_per_second: 100_000,
        message_burst: 100_000,
        bytes_per_second: 1 << 30,
        byte_burst: 1 << 30,
        ..broker::FrontOptions::default()
    };
    let broker = Broker::start_with(&test.db, limits).await;
    let options = IngestOptions {
        detection: detection.then(ingest::DetectionOptions::default),
        ..IngestOptions::default()
    };
    let ingester = start_ingester(&test.db, &broker.ingester_endpoint("bench"), options).await;
    let mut gateways = Vec::new();
    for g in 0..GATEWAYS {
        let name = format!("gw-{g}");
        let secret = test.provision(&name).await;
        let gw = Gateway::connect(&broker, &name, &secret).await;
        gw.publish(Kind::Birth, birth(g as u64 + 1).encode()).await;
        gateways.push(gw);
    }
    wait_for("births", Duration::from_secs(60), || {
        ingester.stats().snapshot().births_applied == GATEWAYS as u64
    })
    .await;

    // Throughput: everything at once (sealed beforehand: that is the agent's work).
    let payloads: Vec<Vec<Vec<u8>>> = gateways
        .iter()
        .enumerate()
        .map(|(g, gw)| {
            (1..=BATCHES)
                .map(|s| gw.seal(Kind::Data, &batch(s, g as u64 + 1).encode().unwrap()))
                .collect()
        })
        .collect();
    let start = Instant::now();
    let publishers: Vec<_> = gateways
        .iter()
        .zip(payloads)
        .map(|(gw, batches)| {
            let (client, topic) = (
                gw.client.clone(),
                wire::topic::topic(testkit::mqtt::TENANT, &gw.name, Kind::Data),
            );
            tokio::spawn(async move {
                for payload in batches {
                    client
                        .publish(topic.clone(), QoS::AtLeastOnce, false, payload)
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for p in publishers {
        p.await.unwrap();
    }
    wait_for("all acks", Duration::from_secs(600), || {
        gateways.iter().all(|g| g.acked_count() == BATCHES as usize)
    })
    .await;
    let acked = start.elapsed();
    let batches = (GATEWAYS as u64 * BATCHES) as f64;
    let samples = batches * f64::from(METRICS) * POLLS as f64;
    // Detection scores after the commit: the run ends when every sample is scored too.
    if detection {
        wait_for("all scored", Duration::from_secs(600), || {
            ingester.stats().snapshot().samples_scored as f64 >= samples
        })
        .await;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let lag_ms = (start.elapsed() - acked).as_secs_f64() * 1000.0;
    assert_eq!(
        test.count("telemetry").await as f64,
        samples,
        "every sample stored once"
    );

    // Latency: paced live traffic.
    let mut sent: Vec<(usize, u64, Instant)> = Vec::new();
    let period = Duration::from_millis(250);
    let rounds = 60u64;
    let mut tick = tokio::time::interval(period / GATEWAYS as u32);
    for r in 0..rounds {
        for (g, gw) in gateways.iter().enumerate() {
            tick.tick().await;
            let seq = BATCHES + 1 + r;
            let payload = batch(seq, g as u64 + 1).encode().unwrap();
            let at = Instant::now();
            gw.publish(Kind::Data, payload).await;
            sent.push((g, seq, at));
        }
    }
    wait_for("paced acks", Duration::from_secs(120), || {
        sent.iter()
            .all(|(g, seq, _)| gateways[*g].acked.lock().unwrap().contains_key(seq))
    })
    .await;
    let mut latencies: Vec<f64> = sent
        .iter()
        .map(|(g, seq, at)| {
            let acked = gateways[*g].acked.lock().unwrap()[seq];
            acked.saturating_duration_since(*at).as_secs_f64() * 1000.0
        })
        .collect();
    latencies.sort_by(f64::total_cmp);
    let pct = |p: f64| latencies[((latencies.len() - 1) as f64 * p).round() as usize];
    let mut figures = Figures {
        samples_per_s: samples / elapsed,
        batches_per_s: batches / elapsed,
        p50_ms: pct(0.50),
        p95_ms: pct(0.95),
        scoring_ms_per_1k: 0.0,
        storage_ms_per_1k: 0.0,
        lag_ms,
    };
    if detection {
        let s = ingester.stats().snapshot();
        let per_1k = |us: u64| us as f64 / 1000.0 / (s.samples_scored as f64 / 1000.0);
        figures.scoring_ms_per_1k = per_1k(s.detection_scoring_us);
        figures.storage_ms_per_1k = per_1k(s.detection_storage_us);
        let scored = s.samples_scored as f64;
        assert!(
            scored >= samples,
            "detection scored {scored} of {samples} samples"
        );
    }
    ingester.abort();
    test.finish().await;
    figures
}
