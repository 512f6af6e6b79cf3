//! An embedded rumqttd broker and a minimal "cloud" that decodes what a gateway publishes
//! and acks every data batch like the ingester does. Shared by the agent end-to-end test
//! and the agent benchmark.
#![allow(dead_code)] // each user takes a subset

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use wire::topic::Kind;

/// A free loopback TCP port (bound, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Starts rumqttd on a thread (it has no shutdown API; it ends with the process) and
/// waits until it accepts connections. Returns its port.
pub fn start_broker() -> u16 {
    let port = free_port();
    start_broker_on(port);
    port
}

/// Starts rumqttd on `port` (see [`start_broker`]) and waits until it accepts connections.
pub fn start_broker_on(port: u16) {
    let config = format!(
        r#"
        id = 0
        [router]
        max_connections = 100
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
    std::thread::spawn(move || {
        let _ = rumqttd::Broker::new(config).start();
    });
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        assert!(Instant::now() < deadline, "rumqttd did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The MQTT password of every test gateway here (the broker accepts any login; the password
/// is the source of the gateway's message key). Put `mqtt_credentials()` in `[mqtt]`.
pub const PASSWORD: &str = "agent-e2e-password-0123456789";

/// The `[mqtt]` lines with the test gateway's credentials.
pub fn mqtt_credentials() -> String {
    format!("password = \"{PASSWORD}\"\n")
}

fn key() -> wire::MessageKey {
    wire::MessageKey::derive(PASSWORD.as_bytes())
}

/// A command valid for the next minute.
pub fn command(id: u64, kind: wire::CommandKind) -> wire::Command {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64;
    wire::Command {
        id,
        expires_ms: now_ms + 60_000,
        kind,
    }
}

/// What the test cloud received.
#[derive(Debug)]
pub enum Received {
    /// A birth.
    Birth(wire::Birth),
    /// A data batch (already acked) and its size on the wire (sealed).
    Batch(wire::Batch, usize),
    /// A death.
    Death(wire::Death),
    /// A command result.
    Result(wire::CommandResult),
}

/// A subscriber on one gateway's topics that acks every batch.
pub struct Cloud {
    pub client: AsyncClient,
    pub rx: mpsc::UnboundedReceiver<Received>,
    task: JoinHandle<()>,
    tenant: String,
    gateway: String,
}

impl Cloud {
    /// Connects, subscribes to `wp/v1/{tenant}/{gateway}/#` and waits for the SUBACK.
    pub async fn start(port: u16, tenant: &str, gateway: &str) -> Cloud {
        let mut options = MqttOptions::new(format!("cloud-{gateway}"), "127.0.0.1", port);
        options.set_keep_alive(Duration::from_secs(10));
        options.set_max_packet_size(10 << 20, 10 << 20);
        let (client, mut eventloop) = AsyncClient::new(options, 1000);
        let filter = format!("wp/v1/{tenant}/{gateway}/#");
        client.subscribe(filter, QoS::AtLeastOnce).await.unwrap();
        let (tx, rx) = mpsc::unbounded_channel();
        let (subscribed_tx, subscribed) = tokio::sync::oneshot::channel();
        let acker = client.clone();
        let ack_topic = wire::topic::topic(tenant, gateway, Kind::Ack);
        let task = tokio::spawn(async move {
            let mut subscribed_tx = Some(subscribed_tx);
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        if let Some(s) = subscribed_tx.take() {
                            let _ = s.send(());
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let Ok((_, _, kind)) = wire::topic::parse(&p.topic) else {
                            continue;
                        };
                        if matches!(kind, Kind::Ack | Kind::Cmd) {
                            continue;
                        }
                        let payload = match wire::seal::open([&key()], &p.topic, &p.payload) {
                            Ok(opened) => opened.message.to_vec(),
                            Err(e) => panic!("{}: the agent seals what it publishes: {e}", p.topic),
                        };
                        let received = match kind {
                            Kind::Birth => Received::Birth(wire::Birth::decode(&payload).unwrap()),
                            Kind::Death => Received::Death(wire::Death::decode(&payload).unwrap()),
                            Kind::CmdResult => {
                                Received::Result(wire::CommandResult::decode(&payload).unwrap())
                            }
                            Kind::Data => {
                                let batch = wire::Batch::decode(&payload).unwrap();
                                let seq = batch.header.seq;
                                let ack = wire::Ack::of([seq]);
                                let sealed = wire::seal::seal(&key(), &ack_topic, &ack.encode());
                                let _ = acker
                                    .publish(ack_topic.clone(), QoS::AtLeastOnce, false, sealed)
                                    .await;
                                Received::Batch(batch, p.payload.len())
                            }
                            Kind::Ack | Kind::Cmd => continue,
                        };
                        if tx.send(received).is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(30), subscribed)
            .await
            .expect("subscribed in time")
            .expect("cloud task alive");
        Cloud {
            client,
            rx,
            task,
            tenant: tenant.to_string(),
            gateway: gateway.to_string(),
        }
    }

    /// Publishes a command to the gateway, sealed with its key.
    pub async fn command(&self, command: &wire::Command) {
        let topic = wire::topic::topic(&self.tenant, &self.gateway, Kind::Cmd);
        let sealed = wire::seal::seal(&key(), &topic, &command.encode());
        self.client
            .publish(topic, QoS::AtLeastOnce, false, sealed)
            .await
            .unwrap();
    }

    /// The next message, or `None` after `limit`.
    pub async fn next(&mut self, limit: Duration) -> Option<Received> {
        tokio::time::timeout(limit, self.rx.recv())
            .await
            .ok()
            .flatten()
    }
}

impl Drop for Cloud {
    fn drop(&mut self) {
        self.task.abort();
    }
}
