//! The ingester's MQTT 5 session: connection options, TLS, subscriptions, and the task
//! that drives the rumqttc event loop.
//!
//! The event loop runs in its own task and never waits on the database: it forwards every
//! received PUBLISH to the pipeline over a channel and keeps polling, so keep-alives flow
//! while a transaction (or a database outage) holds the pipeline. The channel needs no
//! bound of its own: manual acks hold every message un-acked until the pipeline finishes
//! it, and the broker sends at most `receive_maximum` un-acked QoS 1 messages, which caps
//! what can pile up.
//!
//! Each connection announces the ingester's readiness on its state topic
//! ([`wire::state`]): the last will says "offline", and "online" of the same session is
//! published once the SUBACK granted every subscription, both retained. A new session
//! stamp is taken before every connection attempt and the will is refreshed with it.
//!
//! Each successful CONNACK starts a new *connection epoch*. A message is MQTT-acked only on
//! the connection that delivered it: packet ids of an earlier connection mean nothing to
//! the broker now (the session is clean, so the broker dropped them, and the agent re-sends
//! anything it did not get an application ack for).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{Filter, LastWill, Packet, Publish, SubscribeReasonCode};
use rumqttc::v5::{AsyncClient, Event, EventLoop, MqttOptions};
use rumqttc::{TlsConfiguration, Transport};
use tokio::sync::mpsc;
use tracing::{error, info, warn};

use super::stats::{IngestStats, bump};
use super::{IngestError, IngestOptions};
use base::{Backoff, Secret};
use wire::CloudState;

/// Largest MQTT packet the ingester accepts (bytes): the brokers' 1 MiB payload limit
/// plus room for the topic and properties.
const MAX_PACKET_SIZE: u32 = 1024 * 1024 + 4096;

/// Requests (acks, publishes) queued towards the event loop before senders wait.
pub(crate) const REQUEST_CHANNEL_CAPACITY: usize = 4096;

/// Where and as whom the ingester connects.
#[derive(Debug, Clone)]
pub struct MqttEndpoint {
    /// Broker host name or IP address.
    pub host: String,
    /// Broker port.
    pub port: u16,
    /// TLS settings; `None` = plain TCP.
    pub tls: Option<MqttTls>,
    /// MQTT client id (unique per ingester instance).
    pub client_id: String,
    /// MQTT username.
    pub username: String,
    /// MQTT password.
    pub password: Secret,
}

/// TLS towards the broker (rustls with the ring provider).
#[derive(Debug, Clone)]
pub struct MqttTls {
    /// PEM CA bundle; the operating system's roots when `None`.
    pub ca_file: Option<PathBuf>,
}

/// A received message and the connection epoch it arrived on.
#[derive(Debug)]
pub(crate) struct Delivery {
    pub publish: Publish,
    pub epoch: u64,
}

/// Builds the rumqttc options: MQTT 5, clean start, manual acks.
pub(crate) fn mqtt_options(
    endpoint: &MqttEndpoint,
    options: &IngestOptions,
) -> Result<MqttOptions, IngestError> {
    let mut mqtt = MqttOptions::new(&endpoint.client_id, &endpoint.host, endpoint.port);
    mqtt.set_credentials(&endpoint.username, endpoint.password.expose())
        .set_keep_alive(options.keep_alive)
        .set_clean_start(true)
        .set_manual_acks(true)
        .set_max_packet_size(Some(MAX_PACKET_SIZE))
        .set_receive_maximum(Some(receive_maximum(options.max_batch_messages)))
        .set_connection_timeout(10);
    if let Some(tls) = &endpoint.tls {
        let config = tls_client_config(tls)?;
        mqtt.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
            Arc::new(config),
        )));
    }
    Ok(mqtt)
}

/// Two transactions' worth of messages: one batch commits while the next one fills.
fn receive_maximum(max_batch_messages: usize) -> u16 {
    u16::try_from(max_batch_messages.saturating_mul(2)).unwrap_or(u16::MAX)
}

fn tls_client_config(tls: &MqttTls) -> Result<rustls::ClientConfig, IngestError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;

    let mut roots = rustls::RootCertStore::empty();
    match &tls.ca_file {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| IngestError::Tls(format!("CA file {}: {e}", path.display())))?;
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(IngestError::Tls(format!(
                    "CA file {} holds no usable certificate",
                    path.display()
                )));
            }
        }
        None => {
            let native = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(native.certs);
            if roots.is_empty() {
                return Err(IngestError::Tls(
                    "no operating-system root certificates found; set ca_file".to_owned(),
                ));
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| IngestError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}

/// The topic filters the ingester consumes, each through a shared subscription.
///
/// Data uses the group itself (`$share/<group>/wp/v1/+/+/data`, the contract's
/// [`wire::topic::SHARED_DATA_SUBSCRIPTION`] for the default group); births, deaths and
/// command results use one derived group each (`<group>-birth`, ...). One group per filter
/// is required by rumqttd 0.20: it keeps a single read cursor per group *name*, shared by
/// every filter subscribed in that group, so a second filter in the same group skips
/// messages (observed: the first data message after a birth was never delivered).
/// Mosquitto and EMQX are indifferent to the naming.
pub(crate) fn subscriptions(group: &str) -> Vec<Filter> {
    [
        (group.to_owned(), "data"),
        (format!("{group}-birth"), "birth"),
        (format!("{group}-death"), "death"),
        (format!("{group}-cmd-result"), "cmd/result"),
    ]
    .into_iter()
    .map(|(group, kind)| {
        Filter::new(
            format!("$share/{group}/{}/+/+/{kind}", wire::topic::PREFIX),
            QoS::AtLeastOnce,
        )
    })
    .collect()
}

/// Current connection epoch, shared by the event loop task and the pipeline.
#[derive(Debug, Default)]
pub(crate) struct Epoch(AtomicU64);

impl Epoch {
    pub(crate) fn current(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }

    fn advance(&self) -> u64 {
        self.0.fetch_add(1, Ordering::AcqRel) + 1
    }
}

/// The ingester's state topic and the session stamp of its current connection.
#[derive(Debug)]
pub(crate) struct StateTopic {
    topic: String,
    session_ms: i64,
}

impl StateTopic {
    /// The state topic named by the ingester's client id, which must be a valid topic id.
    pub(crate) fn new(client_id: &str) -> Result<StateTopic, IngestError> {
        wire::topic::validate_id(client_id)
            .map_err(|_| IngestError::ClientId(client_id.to_owned()))?;
        Ok(StateTopic {
            topic: wire::topic::state_topic(client_id),
            session_ms: CloudState::new_session(0, chrono::Utc::now().timestamp_millis()),
        })
    }

    fn payload(&self, online: bool) -> Vec<u8> {
        CloudState {
            online,
            session_ms: self.session_ms,
        }
        .encode()
    }

    /// Starts a new session (before a connection attempt) and registers its "offline"
    /// as the retained last will.
    fn next_session(&mut self, options: &mut MqttOptions) {
        self.session_ms =
            CloudState::new_session(self.session_ms, chrono::Utc::now().timestamp_millis());
        self.register_will(options);
    }

    /// Registers this session's "offline" as the retained last will.
    pub(crate) fn register_will(&self, options: &mut MqttOptions) {
        options.set_last_will(LastWill::new(
            &self.topic,
            self.payload(false),
            QoS::AtLeastOnce,
            true,
            None,
        ));
    }

    /// Publishes this session's "online", retained, from a separate task (the request
    /// channel is drained by the event loop this task would otherwise block).
    fn announce_online(&self, client: &AsyncClient) {
        let client = client.clone();
        let (topic, payload, session_ms) =
            (self.topic.clone(), self.payload(true), self.session_ms);
        tokio::spawn(async move {
            match client.publish(topic, QoS::AtLeastOnce, true, payload).await {
                Ok(()) => info!(session_ms, "ingester announced online"),
                Err(e) => error!(error = %e, "could not queue the online state"),
            }
        });
    }
}

/// Drives the event loop forever: forwards publishes, (re)subscribes after each CONNACK,
/// announces the ingester online once subscribed, and backs off after connection errors
/// (rumqttc reconnects on the next poll, with a new session's will).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn drive(
    mut eventloop: EventLoop,
    client: AsyncClient,
    mut state: StateTopic,
    group: String,
    deliveries: mpsc::UnboundedSender<Delivery>,
    epoch: Arc<Epoch>,
    stats: Arc<IngestStats>,
    mut backoff: Backoff,
) {
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::Publish(publish))) => {
                let delivery = Delivery {
                    publish,
                    epoch: epoch.current(),
                };
                if deliveries.send(delivery).is_err() {
                    info!("ingest pipeline stopped; MQTT event loop ends");
                    return;
                }
            }
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                let n = epoch.advance();
                bump(&stats.mqtt_connects);
                backoff.reset();
                info!(epoch = n, code = ?ack.code, "connected to MQTT broker; subscribing");
                subscribe(&client, &group);
            }
            Ok(Event::Incoming(Packet::SubAck(ack))) => {
                // Online only once data can reach us: agents re-send on it.
                if check_suback(&ack.return_codes) {
                    bump(&stats.mqtt_subscribed);
                    state.announce_online(&client);
                }
            }
            Ok(Event::Incoming(Packet::Disconnect(d))) => {
                warn!(reason = ?d.reason_code, "broker sent DISCONNECT");
            }
            Ok(_) => {}
            Err(e) => {
                bump(&stats.mqtt_errors);
                let delay = backoff.next_delay();
                warn!(error = %e, retry_in = ?delay, "MQTT connection error; reconnecting");
                tokio::time::sleep(delay).await;
                state.next_session(&mut eventloop.options);
            }
        }
    }
}

/// Subscribes from a separate task: the request channel is drained by the event loop
/// this task would otherwise block.
fn subscribe(client: &AsyncClient, group: &str) {
    let client = client.clone();
    let filters = subscriptions(group);
    tokio::spawn(async move {
        if let Err(e) = client.subscribe_many(filters).await {
            error!(error = %e, "could not queue MQTT subscriptions");
        }
    });
}

/// Logs the outcome of a SUBACK; returns whether every filter was granted.
fn check_suback(codes: &[SubscribeReasonCode]) -> bool {
    let refused: Vec<_> = codes
        .iter()
        .filter(|c| !matches!(c, SubscribeReasonCode::Success(_)))
        .collect();
    if refused.is_empty() {
        info!(filters = codes.len(), "MQTT subscriptions active");
        true
    } else {
        error!(
            ?refused,
            "broker refused ingest subscriptions (check the broker ACL for the ingester user)"
        );
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscriptions_cover_every_edge_to_cloud_kind_in_the_group() {
        let filters: Vec<String> = subscriptions("ingest")
            .into_iter()
            .map(|f| f.path)
            .collect();
        assert!(filters.contains(&wire::topic::SHARED_DATA_SUBSCRIPTION.to_owned()));
        assert!(filters.contains(&"$share/ingest-cmd-result/wp/v1/+/+/cmd/result".to_owned()));
        assert!(filters.contains(&"$share/ingest-birth/wp/v1/+/+/birth".to_owned()));
        assert_eq!(filters.len(), 4);
    }

    #[test]
    fn receive_maximum_fits_in_u16() {
        assert_eq!(receive_maximum(64), 128);
        assert_eq!(receive_maximum(usize::MAX), u16::MAX);
    }

    #[test]
    fn missing_ca_file_is_a_clear_error() {
        let err = tls_client_config(&MqttTls {
            ca_file: Some("/nonexistent/ca.pem".into()),
        })
        .unwrap_err();
        assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
    }
}
