//! The MQTT connection: rumqttc options (last will, TLS, limits) and the task that drives
//! the rumqttc event loop, reconnecting with jittered exponential backoff and forwarding
//! what the uplink loop needs as [`LinkEvent`]s.
//!
//! rumqttc reconnects by itself when `poll` is called again after an error; this task only
//! decides *when*: it sleeps the [`base::Backoff`] delay between attempts, resets the backoff on a
//! CONNACK, and refreshes the last will (a Death with the current time) before each
//! attempt. Broker PUBACKs are deliberately not forwarded: they prove nothing about
//! storage (only the cloud's ack does).

use std::path::Path;
use std::sync::Arc;

use base::Backoff;
use rumqttc::{
    Event, EventLoop, LastWill, MqttOptions, Outgoing, Packet, QoS, TlsConfiguration, Transport,
};
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::sync::mpsc;
use tracing::{error, info, warn};

use super::{UplinkConfig, UplinkError};

/// Largest MQTT packet sent or accepted (births of big sites run to tens of kB).
pub(super) const MAX_PACKET_BYTES: usize = 4 << 20;

/// What the uplink loop hears from the connection.
#[derive(Debug)]
pub(super) enum LinkEvent {
    /// CONNACK received: a (new) session is up.
    Connected {
        /// The broker kept our previous session.
        session_present: bool,
    },
    /// The connection failed or broke; the driver retries after its backoff.
    Lost(String),
    /// A message on one of our subscriptions.
    Message {
        /// Topic it was published on.
        topic: String,
        /// Its payload.
        payload: Vec<u8>,
        /// The retain flag as received: set only when the broker delivers a retained
        /// message because we just subscribed.
        retained: bool,
    },
    /// Our DISCONNECT went out (graceful shutdown).
    Closed,
}

/// The rumqttc options for this gateway; `will` is the encoded Death.
pub(super) fn mqtt_options(
    cfg: &UplinkConfig,
    tls: Option<Arc<rustls::ClientConfig>>,
    will: LastWill,
) -> MqttOptions {
    let mut options = MqttOptions::new(cfg.client_id.clone(), cfg.host.clone(), cfg.port);
    options
        .set_keep_alive(cfg.keep_alive)
        // Keep the session: commands and acks published while the link blinks are queued
        // by the broker. Delivery never relies on it (everything unacked is re-sent).
        .set_clean_session(false)
        .set_max_packet_size(MAX_PACKET_BYTES, MAX_PACKET_BYTES)
        .set_inflight(u16::try_from(cfg.in_flight_window + 16).unwrap_or(u16::MAX))
        .set_last_will(will);
    if let Some(username) = &cfg.username {
        let password = cfg.password.as_ref().map_or("", |p| p.expose());
        options.set_credentials(username.clone(), password);
    }
    if let Some(tls) = tls {
        options.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(tls)));
    }
    options
}

/// The death message registered as last will, stamped now and sealed.
pub(super) fn death_will(topic: &str, boot_id: u64, key: &wire::MessageKey) -> LastWill {
    let death = wire::Death {
        boot_id,
        ts_ms: crate::clock::now_ms(),
    };
    let payload = wire::seal::seal(key, topic, &death.encode());
    LastWill::new(topic, payload, QoS::AtLeastOnce, false)
}

/// Builds the rustls client configuration (ring provider) from PEM files.
pub(super) fn tls_config(
    tls: &super::TlsOptions,
) -> Result<Arc<rustls::ClientConfig>, UplinkError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in read_certs(&tls.ca_file)? {
        roots.add(cert).map_err(|e| UplinkError::Tls {
            path: tls.ca_file.clone(),
            reason: e.to_string(),
        })?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| UplinkError::Tls {
            path: tls.ca_file.clone(),
            reason: e.to_string(),
        })?
        .with_root_certificates(roots);
    let config = match &tls.client_auth {
        None => builder.with_no_client_auth(),
        Some(auth) => {
            let certs = read_certs(&auth.cert_file)?;
            let key = read_key(&auth.key_file)?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| UplinkError::Tls {
                    path: auth.key_file.clone(),
                    reason: e.to_string(),
                })?
        }
    };
    Ok(Arc::new(config))
}

fn tls_error(path: &Path, e: impl std::fmt::Display) -> UplinkError {
    UplinkError::Tls {
        path: path.to_owned(),
        reason: e.to_string(),
    }
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, UplinkError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| tls_error(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls_error(path, e))?;
    if certs.is_empty() {
        return Err(tls_error(path, "no PEM certificate found"));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, UplinkError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| match e {
        pem::Error::NoItemsFound => tls_error(path, "no PEM private key found"),
        other => tls_error(path, other),
    })
}

/// Drives the rumqttc event loop until the uplink loop goes away or a graceful
/// DISCONNECT was sent.
pub(super) async fn drive(
    mut eventloop: EventLoop,
    events: mpsc::Sender<LinkEvent>,
    mut backoff: Backoff,
    death_topic: String,
    boot_id: u64,
    key: wire::MessageKey,
) {
    loop {
        let event = match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                backoff.reset();
                info!(broker = %broker(&eventloop), session_present = ack.session_present, "MQTT connected");
                LinkEvent::Connected {
                    session_present: ack.session_present,
                }
            }
            Ok(Event::Incoming(Packet::Publish(publish))) => LinkEvent::Message {
                topic: publish.topic,
                payload: publish.payload.to_vec(),
                retained: publish.retain,
            },
            Ok(Event::Outgoing(Outgoing::Disconnect)) => {
                let _ = events.send(LinkEvent::Closed).await;
                return;
            }
            Ok(_) => continue,
            Err(e) => {
                let delay = backoff.next_delay();
                match &e {
                    rumqttc::ConnectionError::ConnectionRefused(code) => {
                        error!(broker = %broker(&eventloop), ?code, "broker refused the connection");
                    }
                    other => {
                        warn!(broker = %broker(&eventloop), error = %other, retry_in = ?delay, "MQTT connection lost");
                    }
                }
                if events.send(LinkEvent::Lost(e.to_string())).await.is_err() {
                    return;
                }
                tokio::time::sleep(delay).await;
                eventloop
                    .mqtt_options
                    .set_last_will(death_will(&death_topic, boot_id, &key));
                continue;
            }
        };
        if events.send(event).await.is_err() {
            return;
        }
    }
}

fn broker(eventloop: &EventLoop) -> String {
    let (host, port) = eventloop.mqtt_options.broker_address();
    format!("{host}:{port}")
}
