//! A recording MQTT client for broker tests: MQTT 3.1.1 or 5, never reconnects, and keeps
//! every CONNACK/SUBACK/PUBACK reason code, every received message and how the connection
//! ended, so tests can wait on exactly the signal they need (no sleeps).

use std::net::SocketAddr;
use std::time::Duration;

use rumqttc::v5::mqttbytes::v5 as m5;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::mqtt::DEADLINE;

/// The MQTT protocol version a probe speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// MQTT 3.1.1 (rumqttc v4, as the agent).
    V4,
    /// MQTT 5 (rumqttc v5, as the ingester).
    V5,
}

/// Everything a probe has seen so far.
#[derive(Debug, Default, Clone)]
pub struct Seen {
    /// `Ok` when the CONNECT was accepted, `Err(code)` with the CONNACK reason code.
    pub connack: Option<Result<(), u8>>,
    /// Reason codes of each SUBACK, in arrival order (granted QoS, or 0x80/0x87...).
    pub subacks: Vec<Vec<u8>>,
    /// Reason code of each PUBACK (MQTT 3.1.1: always 0).
    pub pubacks: Vec<u8>,
    /// Received messages (topic, payload).
    pub received: Vec<(String, Vec<u8>)>,
    /// The reason code of a server DISCONNECT (MQTT 5).
    pub disconnect: Option<u8>,
    /// The connection ended (refused, closed by the server, or an error).
    pub closed: bool,
}

impl Seen {
    /// Topics of the received messages.
    pub fn topics(&self) -> Vec<String> {
        self.received.iter().map(|(t, _)| t.clone()).collect()
    }
}

#[derive(Debug, Clone)]
enum Client {
    V4(rumqttc::AsyncClient),
    V5(rumqttc::v5::AsyncClient),
}

/// A connected (or refused) recording client.
#[derive(Debug)]
pub struct Probe {
    client: Client,
    seen: watch::Receiver<Seen>,
    task: JoinHandle<()>,
}

impl Probe {
    /// Connects and waits for the outcome (accepted or refused) or the connection's end.
    pub async fn connect(
        addr: SocketAddr,
        version: Version,
        client_id: &str,
        username: &str,
        password: &str,
    ) -> Probe {
        Probe::start(addr, version, client_id, username, password, None).await
    }

    /// [`Probe::connect`] with a last will on `will_topic`.
    pub async fn connect_with_will(
        addr: SocketAddr,
        version: Version,
        client_id: &str,
        username: &str,
        password: &str,
        will_topic: &str,
    ) -> Probe {
        Probe::start(
            addr,
            version,
            client_id,
            username,
            password,
            Some(will_topic),
        )
        .await
    }

    async fn start(
        addr: SocketAddr,
        version: Version,
        client_id: &str,
        username: &str,
        password: &str,
        will: Option<&str>,
    ) -> Probe {
        let (tx, seen) = watch::channel(Seen::default());
        let (client, task) = match version {
            Version::V4 => {
                let mut o =
                    rumqttc::MqttOptions::new(client_id, addr.ip().to_string(), addr.port());
                o.set_credentials(username, password)
                    .set_keep_alive(Duration::from_secs(30))
                    .set_max_packet_size(1 << 20, 1 << 20);
                if let Some(topic) = will {
                    o.set_last_will(rumqttc::LastWill::new(
                        topic,
                        "gone",
                        rumqttc::QoS::AtLeastOnce,
                        false,
                    ));
                }
                let (client, mut el) = rumqttc::AsyncClient::new(o, 1000);
                let task = tokio::spawn(async move {
                    use rumqttc::{ConnectReturnCode as C, Event, Packet, SubscribeReasonCode};
                    loop {
                        match el.poll().await {
                            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                                tx.send_modify(|s| s.connack = Some(Ok(())))
                            }
                            Ok(Event::Incoming(Packet::SubAck(a))) => tx.send_modify(|s| {
                                s.subacks.push(
                                    a.return_codes
                                        .iter()
                                        .map(|c| match c {
                                            SubscribeReasonCode::Success(q) => *q as u8,
                                            SubscribeReasonCode::Failure => 0x80,
                                        })
                                        .collect(),
                                )
                            }),
                            Ok(Event::Incoming(Packet::PubAck(_))) => {
                                tx.send_modify(|s| s.pubacks.push(0))
                            }
                            Ok(Event::Incoming(Packet::Publish(p))) => tx.send_modify(|s| {
                                s.received.push((p.topic.clone(), p.payload.to_vec()))
                            }),
                            Ok(_) => {}
                            Err(e) => {
                                let code = match e {
                                    rumqttc::ConnectionError::ConnectionRefused(c) => {
                                        Some(match c {
                                            C::Success => 0,
                                            C::RefusedProtocolVersion => 1,
                                            C::BadClientId => 2,
                                            C::ServiceUnavailable => 3,
                                            C::BadUserNamePassword => 4,
                                            C::NotAuthorized => 5,
                                        })
                                    }
                                    _ => None,
                                };
                                tx.send_modify(|s| {
                                    if let Some(code) = code {
                                        s.connack = Some(Err(code));
                                    }
                                    s.closed = true;
                                });
                                return;
                            }
                        }
                    }
                });
                (Client::V4(client), task)
            }
            Version::V5 => {
                let mut o =
                    rumqttc::v5::MqttOptions::new(client_id, addr.ip().to_string(), addr.port());
                o.set_credentials(username, password)
                    .set_keep_alive(Duration::from_secs(30));
                if let Some(topic) = will {
                    o.set_last_will(m5::LastWill::new(
                        topic,
                        "gone",
                        rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
                        false,
                        None,
                    ));
                }
                let (client, mut el) = rumqttc::v5::AsyncClient::new(o, 1000);
                let task = tokio::spawn(async move {
                    use rumqttc::v5::{Event, mqttbytes::v5::Packet};
                    loop {
                        match el.poll().await {
                            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                                tx.send_modify(|s| s.connack = Some(Ok(())))
                            }
                            Ok(Event::Incoming(Packet::SubAck(a))) => tx.send_modify(|s| {
                                s.subacks
                                    .push(a.return_codes.iter().map(|c| suback_code(*c)).collect())
                            }),
                            Ok(Event::Incoming(Packet::PubAck(a))) => {
                                tx.send_modify(|s| s.pubacks.push(puback_code(a.reason)))
                            }
                            Ok(Event::Incoming(Packet::Publish(p))) => tx.send_modify(|s| {
                                s.received.push((
                                    String::from_utf8_lossy(&p.topic).into_owned(),
                                    p.payload.to_vec(),
                                ))
                            }),
                            Ok(Event::Incoming(Packet::Disconnect(d))) => {
                                tx.send_modify(|s| s.disconnect = Some(d.reason_code as u8))
                            }
                            Ok(_) => {}
                            Err(e) => {
                                let (code, disconnect) = match e {
                                    rumqttc::v5::ConnectionError::ConnectionRefused(c) => {
                                        (Some(connack_code(c)), None)
                                    }
                                    rumqttc::v5::ConnectionError::MqttState(
                                        rumqttc::v5::StateError::ServerDisconnect {
                                            reason_code,
                                            ..
                                        },
                                    ) => (None, Some(reason_code as u8)),
                                    _ => (None, None),
                                };
                                tx.send_modify(|s| {
                                    if disconnect.is_some() {
                                        s.disconnect = disconnect;
                                    }
                                    if let Some(code) = code {
                                        s.connack = Some(Err(code));
                                    }
                                    s.closed = true;
                                });
                                return;
                            }
                        }
                    }
                });
                (Client::V5(client), task)
            }
        };
        let probe = Probe { client, seen, task };
        probe
            .wait("the CONNECT outcome", |s| s.connack.is_some() || s.closed)
            .await;
        probe
    }

    /// What the probe has seen so far.
    pub fn seen(&self) -> Seen {
        self.seen.borrow().clone()
    }

    /// Whether the CONNECT was accepted.
    pub fn accepted(&self) -> bool {
        self.seen.borrow().connack == Some(Ok(()))
    }

    /// The CONNACK refusal code, if refused.
    pub fn refused(&self) -> Option<u8> {
        match self.seen.borrow().connack {
            Some(Err(code)) => Some(code),
            _ => None,
        }
    }

    /// Waits (on the probe's own events) until `cond` holds; panics after [`DEADLINE`].
    pub async fn wait(&self, what: &str, mut cond: impl FnMut(&Seen) -> bool) -> Seen {
        let mut rx = self.seen.clone();
        let result = tokio::time::timeout(DEADLINE, rx.wait_for(|s| cond(s))).await;
        match result {
            Ok(Ok(seen)) => seen.clone(),
            Ok(Err(_)) => panic!("probe task ended while waiting for {what}"),
            Err(_) => panic!("timed out waiting for {what}; seen: {:?}", self.seen()),
        }
    }

    /// Subscribes (QoS 1) and returns the SUBACK's reason codes.
    pub async fn subscribe(&self, filter: &str) -> Vec<u8> {
        let before = self.seen.borrow().subacks.len();
        match &self.client {
            Client::V4(c) => c
                .subscribe(filter, rumqttc::QoS::AtLeastOnce)
                .await
                .unwrap(),
            Client::V5(c) => c
                .subscribe(filter, rumqttc::v5::mqttbytes::QoS::AtLeastOnce)
                .await
                .unwrap(),
        }
        let seen = self
            .wait(&format!("the SUBACK of {filter}"), |s| {
                s.subacks.len() > before || s.closed
            })
            .await;
        seen.subacks
            .get(before)
            .cloned()
            .unwrap_or_else(|| panic!("connection closed before the SUBACK of {filter}"))
    }

    /// Publishes (QoS 1) without waiting for anything.
    pub async fn publish(&self, topic: &str, payload: &[u8]) {
        match &self.client {
            Client::V4(c) => c
                .publish(topic, rumqttc::QoS::AtLeastOnce, false, payload.to_vec())
                .await
                .unwrap(),
            Client::V5(c) => c
                .publish(
                    topic,
                    rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
                    false,
                    payload.to_vec(),
                )
                .await
                .unwrap(),
        }
    }

    /// Publishes (QoS 1) and returns the PUBACK's reason code.
    pub async fn publish_acked(&self, topic: &str, payload: &[u8]) -> u8 {
        let before = self.seen.borrow().pubacks.len();
        self.publish(topic, payload).await;
        let seen = self
            .wait(&format!("the PUBACK of a message on {topic}"), |s| {
                s.pubacks.len() > before || s.closed
            })
            .await;
        *seen
            .pubacks
            .get(before)
            .unwrap_or_else(|| panic!("connection closed before the PUBACK on {topic}"))
    }

    /// Waits until a message on `topic` with `payload` arrived.
    pub async fn received(&self, topic: &str, payload: &[u8]) {
        self.wait(&format!("a message on {topic}"), |s| {
            s.received
                .iter()
                .any(|(t, p)| t == topic && p.as_slice() == payload)
        })
        .await;
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn suback_code(c: m5::SubscribeReasonCode) -> u8 {
    use m5::SubscribeReasonCode as S;
    match c {
        S::Success(q) => q as u8,
        S::Failure | S::Unspecified => 0x80,
        S::ImplementationSpecific => 0x83,
        S::NotAuthorized => 0x87,
        S::TopicFilterInvalid => 0x8F,
        S::PkidInUse => 0x91,
        S::QuotaExceeded => 0x97,
        S::SharedSubscriptionsNotSupported => 0x9E,
        S::SubscriptionIdNotSupported => 0xA1,
        S::WildcardSubscriptionsNotSupported => 0xA2,
    }
}

fn puback_code(r: m5::PubAckReason) -> u8 {
    use m5::PubAckReason as P;
    match r {
        P::Success => 0,
        P::NoMatchingSubscribers => 0x10,
        P::UnspecifiedError => 0x80,
        P::ImplementationSpecificError => 0x83,
        P::NotAuthorized => 0x87,
        P::TopicNameInvalid => 0x90,
        P::PacketIdentifierInUse => 0x91,
        P::QuotaExceeded => 0x97,
        P::PayloadFormatInvalid => 0x99,
    }
}

fn connack_code(c: m5::ConnectReturnCode) -> u8 {
    use m5::ConnectReturnCode as C;
    match c {
        C::Success => 0,
        C::RefusedProtocolVersion => 1,
        C::BadClientId => 2,
        C::ServiceUnavailable => 3,
        C::UnspecifiedError => 0x80,
        C::MalformedPacket => 0x81,
        C::ProtocolError => 0x82,
        C::ImplementationSpecificError => 0x83,
        C::UnsupportedProtocolVersion => 0x84,
        C::ClientIdentifierNotValid => 0x85,
        C::BadUserNamePassword => 0x86,
        C::NotAuthorized => 0x87,
        C::ServerUnavailable => 0x88,
        C::ServerBusy => 0x89,
        C::Banned => 0x8A,
        C::BadAuthenticationMethod => 0x8C,
        C::TopicNameInvalid => 0x90,
        C::PacketTooLarge => 0x95,
        C::QuotaExceeded => 0x97,
        C::PayloadFormatInvalid => 0x99,
        C::RetainNotSupported => 0x9A,
        C::QoSNotSupported => 0x9B,
        C::UseAnotherServer => 0x9C,
        C::ServerMoved => 0x9D,
        C::ConnectionRateExceeded => 0x9F,
    }
}
