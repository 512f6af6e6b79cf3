//! Latency through the embedded broker, publish → delivered to the ingester-side
//! subscriber (`$share/bench/wp/v1/+/+/data`, MQTT 5), of a normal gateway (MQTT 3.1.1,
//! QoS 1, one message every 100 ms):
//!
//! - `direct`: rumqttd's own loopback listeners, no front listener (the old set-up);
//! - `front`: through the front listeners (default limits);
//! - `front_flood` / `direct_flood`: the same while another gateway publishes 10,000
//!   junk QoS 1 messages, spread over the measurement (500/s) so that every sample is
//!   taken during the flood.
//!
//! And the same through the real ingester (`ingest_*`): publish → stored in PostgreSQL →
//! the cloud's ack back at the gateway, while the flooder's junk is malformed CBOR that
//! the ingester must refuse and record (the incident: 10,000 such messages stalled ingest
//! for every tenant). The gateway seals what it publishes and opens the cloud's sealed
//! acks, as the agent does (`wire::seal`); the flooder's junk is not sealed. Normal and
//! flood phases alternate three times; `…_median_…` and the p99 ratio compare medians.
//!
//! Prints `BENCH <name> <value> <unit>` lines. Needs PostgreSQL (`DATABASE_URL`, as the
//! tests) for the gateway logins.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::collections::HashMap;
use std::sync::Mutex;

use base::Secret;
use ingest::MqttEndpoint;
use rumqttc::v5::mqttbytes::QoS as QoS5;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use testkit::mqtt::*;
use tokio::sync::mpsc;

const SAMPLES: usize = 200;
/// A normal gateway's pace: the agent's backlog pace (live data is one batch a second),
/// within the default limit of 20 messages a second, which outlives each phase.
const INTERVAL: Duration = Duration::from_millis(100);
const FLOOD: usize = 10_000;

/// A login: address, username, password.
#[derive(Clone)]
struct Login {
    addr: SocketAddr,
    username: String,
    password: String,
}

/// An MQTT 3.1.1 publisher that keeps its event loop running.
async fn publisher(login: &Login, client_id: &str) -> AsyncClient {
    let mut o = MqttOptions::new(client_id, login.addr.ip().to_string(), login.addr.port());
    o.set_credentials(login.username.clone(), login.password.clone())
        .set_keep_alive(Duration::from_secs(30))
        .set_inflight(100);
    let (client, mut el) = AsyncClient::new(o, 1000);
    let (tx, mut rx) = mpsc::channel(1);
    tokio::spawn(async move {
        let mut tx = Some(tx);
        loop {
            match el.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(()).await;
                    }
                }
                Ok(_) => {}
                // Replaced by the next phase's client of the same id.
                Err(_) => return,
            }
        }
    });
    rx.recv().await.expect("publisher connected");
    client
}

/// The ingester-side subscriber: sends (seq, latency) of every message on `topic`.
async fn subscriber(login: &Login, topic: String) -> mpsc::UnboundedReceiver<(u64, Duration)> {
    let mut o = rumqttc::v5::MqttOptions::new(
        "bench-ingester",
        login.addr.ip().to_string(),
        login.addr.port(),
    );
    o.set_credentials(login.username.clone(), login.password.clone())
        .set_keep_alive(Duration::from_secs(30));
    let (client, mut el) = rumqttc::v5::AsyncClient::new(o, 1000);
    let (tx, rx) = mpsc::unbounded_channel();
    let (ready_tx, mut ready) = mpsc::channel(1);
    let origin = *ORIGIN;
    tokio::spawn(async move {
        use rumqttc::v5::Event;
        use rumqttc::v5::mqttbytes::v5::Packet;
        let mut ready_tx = Some(ready_tx);
        loop {
            match el.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    let client = client.clone();
                    tokio::spawn(async move {
                        client
                            .subscribe("$share/bench/wp/v1/+/+/data", QoS5::AtLeastOnce)
                            .await
                            .unwrap();
                    });
                }
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    if let Some(r) = ready_tx.take() {
                        let _ = r.send(()).await;
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    if p.topic == topic.as_bytes() && p.payload.len() >= 16 {
                        let now = origin.elapsed().as_nanos() as u64;
                        let seq = u64::from_be_bytes(p.payload[0..8].try_into().unwrap());
                        let sent = u64::from_be_bytes(p.payload[8..16].try_into().unwrap());
                        let _ = tx.send((seq, Duration::from_nanos(now.saturating_sub(sent))));
                    }
                }
                Ok(_) => {}
                Err(_) => return,
            }
        }
    });
    ready.recv().await.expect("subscriber ready");
    rx
}

static ORIGIN: std::sync::LazyLock<Instant> = std::sync::LazyLock::new(Instant::now);

/// p50 and p99 of the normal gateway's latency, with or without a flood next to it.
async fn run(
    name: &str,
    gateway: &Login,
    flooder: &Login,
    ingester: &Login,
    flood: bool,
) -> (Duration, Duration) {
    let topic = "wp/v1/globex/gw-b/data".to_owned();
    let mut latencies = subscriber(ingester, topic.clone()).await;
    let normal = publisher(gateway, "wp-globex-gw-b").await;
    let flood_task = if flood {
        let junk = publisher(flooder, "wp-acme-gw-a").await;
        Some(tokio::spawn(async move {
            let payload = vec![0xffu8; 200];
            // Spread over the whole phase (500 messages/s, 25 times the default limit),
            // so every sample of the normal gateway is taken during the flood.
            let mut tick = tokio::time::interval(INTERVAL * SAMPLES as u32 / FLOOD as u32);
            for _ in 0..FLOOD {
                tick.tick().await;
                junk.publish(
                    "wp/v1/acme/gw-a/data",
                    QoS::AtLeastOnce,
                    false,
                    payload.clone(),
                )
                .await
                .unwrap();
            }
        }))
    } else {
        None
    };
    let mut tick = tokio::time::interval(INTERVAL);
    for seq in 0..SAMPLES as u64 {
        tick.tick().await;
        let mut payload = seq.to_be_bytes().to_vec();
        payload.extend((ORIGIN.elapsed().as_nanos() as u64).to_be_bytes());
        payload.extend([0u8; 100]);
        normal
            .publish(topic.clone(), QoS::AtLeastOnce, false, payload)
            .await
            .unwrap();
    }
    let mut got = Vec::with_capacity(SAMPLES);
    while got.len() < SAMPLES {
        match tokio::time::timeout(DEADLINE, latencies.recv()).await {
            Ok(Some((_, latency))) => got.push(latency),
            _ => panic!("{name}: only {} of {SAMPLES} messages arrived", got.len()),
        }
    }
    if let Some(t) = flood_task {
        t.await.unwrap();
    }
    got.sort();
    let p = |q: f64| got[((got.len() as f64 * q) as usize).min(got.len() - 1)];
    let (p50, p99) = (p(0.50), p(0.99));
    println!("BENCH broker_latency_{name}_p50 {:.3} ms", ms(p50));
    println!("BENCH broker_latency_{name}_p99 {:.3} ms", ms(p99));
    (p50, p99)
}

/// p50 and p99 of publish → cloud ack of the normal gateway's batches through the real
/// ingester, with or without a flood of malformed batches next to it.
#[allow(clippy::too_many_arguments)]
async fn ingest_run(
    name: &str,
    test: &TestDb,
    gateway: &Login,
    flooder: &Login,
    ingester: &Login,
    flood: bool,
    boot: u64,
    key: &wire::MessageKey,
) -> (Duration, Duration) {
    let endpoint = MqttEndpoint {
        host: ingester.addr.ip().to_string(),
        port: ingester.addr.port(),
        tls: None,
        client_id: format!("bench-ingest-{name}"),
        username: ingester.username.clone(),
        password: Secret::new(ingester.password.clone()),
    };
    let ingester = start_ingester(&test.db, &endpoint, test_options()).await;
    let sent: Arc<Mutex<HashMap<u64, Instant>>> = Arc::default();
    let (tx, mut latencies) = mpsc::unbounded_channel();
    let mut o = MqttOptions::new(
        "wp-globex-gw-b",
        gateway.addr.ip().to_string(),
        gateway.addr.port(),
    );
    o.set_credentials(gateway.username.clone(), gateway.password.clone())
        .set_keep_alive(Duration::from_secs(30));
    let (client, mut el) = AsyncClient::new(o, 1000);
    let (ready_tx, mut ready) = mpsc::channel(1);
    let ack_topic = "wp/v1/globex/gw-b/ack".to_owned();
    let events = {
        let (client, sent, key) = (client.clone(), Arc::clone(&sent), key.clone());
        tokio::spawn(async move {
            let mut ready_tx = Some(ready_tx);
            loop {
                match el.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        let client = client.clone();
                        let t = ack_topic.clone();
                        tokio::spawn(async move {
                            client.subscribe(t, QoS::AtLeastOnce).await.unwrap();
                        });
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        if let Some(r) = ready_tx.take() {
                            let _ = r.send(()).await;
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) if p.topic == ack_topic => {
                        // The cloud seals its acks with the gateway's key.
                        let Ok(opened) = wire::seal::open([&key], &ack_topic, &p.payload) else {
                            continue;
                        };
                        let Ok(ack) = wire::Ack::decode(opened.message) else {
                            continue;
                        };
                        let mut sent = sent.lock().unwrap();
                        let done: Vec<u64> =
                            sent.keys().copied().filter(|s| ack.contains(*s)).collect();
                        for seq in done {
                            if let Some(at) = sent.remove(&seq) {
                                let _ = tx.send(at.elapsed());
                            }
                        }
                    }
                    Ok(_) => {}
                    Err(_) => return,
                }
            }
        })
    };
    ready.recv().await.expect("gateway subscribed");
    // The catalog first: re-published until the cloud has it (as the agent does).
    let gateway_id = test
        .db
        .lookup_gateway("globex", "gw-b")
        .await
        .unwrap()
        .unwrap()
        .id;
    while test.db.alias_map(gateway_id, boot).await.unwrap().is_none() {
        let topic = "wp/v1/globex/gw-b/birth";
        let sealed = wire::seal::seal(key, topic, &birth(boot).encode());
        client
            .publish(topic, QoS::AtLeastOnce, false, sealed)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let flood_task = if flood {
        let junk = publisher(flooder, "wp-acme-gw-a").await;
        Some(tokio::spawn(async move {
            let mut tick = tokio::time::interval(INTERVAL * SAMPLES as u32 / FLOOD as u32);
            for _ in 0..FLOOD {
                tick.tick().await;
                junk.publish(
                    "wp/v1/acme/gw-a/data",
                    QoS::AtLeastOnce,
                    false,
                    b"\xff\x00not cbor".to_vec(),
                )
                .await
                .unwrap();
            }
        }))
    } else {
        None
    };
    let mut tick = tokio::time::interval(INTERVAL);
    // Seqs are per gateway for good (the idempotency key): each phase its own range.
    let first = boot * 1000;
    for seq in first..first + SAMPLES as u64 {
        tick.tick().await;
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        let topic = "wp/v1/globex/gw-b/data";
        let payload = wire::seal::seal(key, topic, &batch(seq, boot, now_ms, 7).encode().unwrap());
        sent.lock().unwrap().insert(seq, Instant::now());
        client
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .await
            .unwrap();
    }
    let mut got = Vec::with_capacity(SAMPLES);
    while got.len() < SAMPLES {
        match tokio::time::timeout(Duration::from_secs(120), latencies.recv()).await {
            Ok(Some(latency)) => got.push(latency),
            _ => panic!("{name}: only {} of {SAMPLES} batches acked", got.len()),
        }
    }
    if let Some(t) = flood_task {
        t.await.unwrap();
    }
    ingester.abort();
    events.abort();
    got.sort();
    let p = |q: f64| got[((got.len() as f64 * q) as usize).min(got.len() - 1)];
    let (p50, p99) = (p(0.50), p(0.99));
    println!("BENCH broker_ingest_ack_{name}_p50 {:.3} ms", ms(p50));
    println!("BENCH broker_ingest_ack_{name}_p99 {:.3} ms", ms(p99));
    (p50, p99)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    init_tracing();
    let _ = *ORIGIN;
    let test = TestDb::new("bench_front").await;
    let secret_a = test.provision_in("acme", "gw-a").await;
    let secret_b = test.provision_in("globex", "gw-b").await;
    let broker = Arc::new(Broker::start(&test.db).await);
    let (d4, dpw) = broker.direct_v4();
    let (d5, _) = broker.direct_v5();
    let front = |addr, user: &str, password: &str| Login {
        addr,
        username: user.to_owned(),
        password: password.to_owned(),
    };
    let via_front = (
        front(broker.v4, "globex/gw-b", &secret_b),
        front(broker.v4, "acme/gw-a", &secret_a),
        front(broker.v5, INGESTER_USER, INGESTER_PASSWORD),
    );
    let direct = (
        front(d4, "globex/gw-b", &dpw),
        front(d4, "acme/gw-a", &dpw),
        front(d5, INGESTER_USER, &dpw),
    );
    let (direct_p50, _) = run("direct", &direct.0, &direct.1, &direct.2, false).await;
    let (front_p50, front_p99) =
        run("front", &via_front.0, &via_front.1, &via_front.2, false).await;
    let (_, flood_p99) = run(
        "front_flood",
        &via_front.0,
        &via_front.1,
        &via_front.2,
        true,
    )
    .await;
    let (_, direct_flood_p99) = run("direct_flood", &direct.0, &direct.1, &direct.2, true).await;
    println!(
        "BENCH broker_front_added_latency_p50 {:.3} ms",
        ms(front_p50.saturating_sub(direct_p50))
    );
    println!(
        "BENCH broker_front_flood_p99_ratio {:.2} x",
        flood_p99.as_secs_f64() / front_p99.as_secs_f64()
    );
    println!(
        "BENCH broker_direct_flood_p99_ratio {:.2} x",
        direct_flood_p99.as_secs_f64() / front_p99.as_secs_f64()
    );
    let dropped =
        broker
            .broker
            .metrics()
            .dropped_count("acme", "gw-a", broker::DropReason::MessageRate);
    println!("BENCH broker_front_flood_dropped {dropped} messages");

    // Through the real ingester: each phase a new boot of gateway B. A p99 of 200
    // samples is nearly the worst one, so normal and flood phases alternate three times
    // and the medians are compared (drift on a shared machine hits both alike).
    let key = wire::MessageKey::derive(secret_b.as_bytes());
    let (mut normal, mut flooded) = (Vec::new(), Vec::new());
    for round in 0..3u64 {
        normal.push(
            ingest_run(
                "front",
                &test,
                &via_front.0,
                &via_front.1,
                &via_front.2,
                false,
                101 + 2 * round,
                &key,
            )
            .await,
        );
        flooded.push(
            ingest_run(
                "front_flood",
                &test,
                &via_front.0,
                &via_front.1,
                &via_front.2,
                true,
                102 + 2 * round,
                &key,
            )
            .await,
        );
    }
    let (_, direct_p99) = ingest_run(
        "direct_flood",
        &test,
        &direct.0,
        &direct.1,
        &direct.2,
        true,
        107,
        &key,
    )
    .await;
    let median = |runs: &[(Duration, Duration)], p99: bool| {
        let mut v: Vec<Duration> = runs.iter().map(|r| if p99 { r.1 } else { r.0 }).collect();
        v.sort();
        v[v.len() / 2]
    };
    let (normal_p99, flood_p99) = (median(&normal, true), median(&flooded, true));
    println!(
        "BENCH broker_ingest_front_median_p50 {:.3} ms",
        ms(median(&normal, false))
    );
    println!(
        "BENCH broker_ingest_front_median_p99 {:.3} ms",
        ms(normal_p99)
    );
    println!(
        "BENCH broker_ingest_front_flood_median_p50 {:.3} ms",
        ms(median(&flooded, false))
    );
    println!(
        "BENCH broker_ingest_front_flood_median_p99 {:.3} ms",
        ms(flood_p99)
    );
    println!(
        "BENCH broker_ingest_front_flood_p99_ratio {:.2} x",
        flood_p99.as_secs_f64() / normal_p99.as_secs_f64()
    );
    println!(
        "BENCH broker_ingest_direct_flood_p99_ratio {:.2} x",
        direct_p99.as_secs_f64() / normal_p99.as_secs_f64()
    );
    test.finish().await;
}
