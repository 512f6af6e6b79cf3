//! The embedded MQTT broker: rumqttd running inside `wellpulse-cloud`.
//!
//! # What it is for
//!
//! A single-operator deployment (one company's fleet, a demo, development, CI) needs no
//! separate broker: `wellpulse-cloud run` starts rumqttd from `broker-config/rumqttd.toml`
//! on its own threads and the ingester connects to it over loopback like to any broker.
//! Multi-tenant SaaS deployments should use Mosquitto or EMQX with the topic ACL in
//! `broker-config/` (see below and `broker-config/README.md`).
//!
//! # Start-up
//!
//! [`EmbeddedBroker::start`] loads rumqttd's own TOML `Config`, replaces every port-0
//! listener with a free ephemeral port (rumqttd cannot report a port it picked itself;
//! tests and demos rely on this), checks TLS files, installs the authentication hook on
//! every listener, runs `rumqttd::Broker::start` (which blocks forever) on a dedicated
//! thread, and returns once every listener accepts TCP connections. rumqttd has no
//! shutdown API: the broker lives as long as the process.
//!
//! # Authentication
//!
//! [`BrokerAuth`] is rumqttd's asynchronous external auth hook. It accepts
//! - the ingester's own credentials from `cloud.toml` (constant-time comparison), and
//! - gateways: username `{tenant}/{gateway}`, the password checked against the
//!   gateway's salted hash in the database, and the client id bound to the username: it
//!   must be `wp-{tenant}-{gateway}` (the agent's default). Without that binding a gateway
//!   could connect under another gateway's client id and take over its session.
//!
//! rumqttd runs the hook on its listener threads; the database check itself is spawned
//! onto the main Tokio runtime (where the connection pool lives) and awaited there.
//!
//! # Limitation: no topic ACL
//!
//! rumqttd 0.20 cannot restrict which topics an authenticated client publishes or
//! subscribes to (its `validate-tenant-prefix` feature needs client certificates and a
//! `/tenants/{id}/` topic prefix, which does not fit `wp/v1/...`). With the embedded broker
//! an authenticated gateway could therefore subscribe to other gateways' topics or publish
//! into them. What still holds:
//! - only registered gateways (and the ingester) can connect at all;
//! - the ingester stores nothing for a topic whose tenant/gateway is not a registered
//!   gateway of that tenant (rejected and counted), and catalogs/aliases are per gateway,
//!   so a spoofed batch can only land in series of an existing gateway;
//! - client ids are bound to usernames, so sessions cannot be hijacked.
//!
//! Hence the embedded broker is for deployments where all gateways belong to one trusted
//! operator. For tenant isolation against a compromised gateway use Mosquitto (the
//! `mosquitto.acl` pattern confines each gateway to `wp/v1/{tenant}/{gateway}/`) or EMQX.

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tracing::{debug, error, info, warn};

use base::Secret;
use store::Db;

/// Why the embedded broker could not start.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// The rumqttd config file could not be read.
    #[error("cannot read broker config {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The rumqttd config file is not valid.
    #[error("broker config {path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The TOML error.
        source: toml::de::Error,
    },
    /// The configuration is unusable.
    #[error("broker config: {0}")]
    Invalid(String),
    /// No free port could be reserved for a port-0 listener.
    #[error("cannot reserve an ephemeral port for listener {listener}: {source}")]
    Port {
        /// The listener's name.
        listener: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The broker thread could not be spawned.
    #[error("cannot spawn the broker thread: {0}")]
    Thread(std::io::Error),
    /// A listener did not start accepting connections.
    #[error("broker listener {name} on {addr} did not come up within {timeout:?}")]
    NotListening {
        /// The listener's name.
        name: String,
        /// Its address.
        addr: SocketAddr,
        /// How long we waited.
        timeout: Duration,
    },
}

/// MQTT protocol version served by a listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// MQTT 3.1.1 (`[v4.*]` tables).
    V4,
    /// MQTT 5 (`[v5.*]` tables).
    V5,
}

/// A listener of the running broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    /// The listener's `name`.
    pub name: String,
    /// Protocol version.
    pub protocol: Protocol,
    /// Address it listens on (ports resolved).
    pub addr: SocketAddr,
    /// Whether it speaks TLS.
    pub tls: bool,
}

impl Listener {
    /// An address a local client can connect to (`0.0.0.0` becomes loopback).
    pub fn connect_addr(&self) -> SocketAddr {
        let ip = match self.addr {
            SocketAddr::V4(a) if a.ip().is_unspecified() => Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(a) if a.ip().is_unspecified() => Ipv6Addr::LOCALHOST.into(),
            a => a.ip(),
        };
        SocketAddr::new(ip, self.addr.port())
    }
}

/// Reads a rumqttd config file (rumqttd's own serde TOML format).
pub fn load_config(path: &Path) -> Result<rumqttd::Config, BrokerError> {
    let text = std::fs::read_to_string(path).map_err(|source| BrokerError::Read {
        path: path.to_owned(),
        source,
    })?;
    toml::from_str(&text).map_err(|source| BrokerError::Parse {
        path: path.to_owned(),
        source,
    })
}

/// The MQTT listeners of a config (websocket listeners are not used by WellPulse).
pub fn listeners(config: &rumqttd::Config) -> Vec<Listener> {
    let mut out = Vec::new();
    for (protocol, servers) in [(Protocol::V4, &config.v4), (Protocol::V5, &config.v5)] {
        for s in servers.iter().flat_map(|m| m.values()) {
            out.push(Listener {
                name: s.name.clone(),
                protocol,
                addr: s.listen,
                tls: s.tls.is_some(),
            });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

fn servers_mut(config: &mut rumqttd::Config) -> impl Iterator<Item = &mut rumqttd::ServerSettings> {
    [config.v4.as_mut(), config.v5.as_mut()]
        .into_iter()
        .flatten()
        .flat_map(|m: &mut HashMap<String, rumqttd::ServerSettings>| m.values_mut())
}

/// Sets the port of the listener named `name`.
pub fn override_port(
    config: &mut rumqttd::Config,
    name: &str,
    port: u16,
) -> Result<(), BrokerError> {
    let server = servers_mut(config)
        .find(|s| s.name == name)
        .ok_or_else(|| BrokerError::Invalid(format!("no listener named {name:?}")))?;
    server.listen.set_port(port);
    Ok(())
}

/// Gives every port-0 listener a currently free port. The probe sockets stay bound until
/// all ports are chosen, so two listeners never get the same one.
fn assign_ephemeral_ports(config: &mut rumqttd::Config) -> Result<(), BrokerError> {
    let mut probes = Vec::new();
    for server in servers_mut(config).filter(|s| s.listen.port() == 0) {
        let probe = TcpListener::bind(server.listen).map_err(|source| BrokerError::Port {
            listener: server.name.clone(),
            source,
        })?;
        let port = probe
            .local_addr()
            .map_err(|source| BrokerError::Port {
                listener: server.name.clone(),
                source,
            })?
            .port();
        server.listen.set_port(port);
        probes.push(probe);
    }
    Ok(())
}

fn validate(config: &rumqttd::Config) -> Result<(), BrokerError> {
    let all = listeners(config);
    if all.is_empty() {
        return Err(BrokerError::Invalid(
            "no [v4.*] or [v5.*] listener configured".to_owned(),
        ));
    }
    for pair in all.windows(2) {
        if pair[0].name == pair[1].name {
            return Err(BrokerError::Invalid(format!(
                "listener name {:?} is used twice",
                pair[0].name
            )));
        }
    }
    if config.ws.is_some() {
        return Err(BrokerError::Invalid(
            "websocket listeners are not supported (rumqttd is built without them)".to_owned(),
        ));
    }
    for s in [config.v4.as_ref(), config.v5.as_ref()]
        .into_iter()
        .flatten()
        .flat_map(|m| m.values())
    {
        match &s.tls {
            Some(rumqttd::TlsConfig::NativeTls { .. }) => {
                return Err(BrokerError::Invalid(format!(
                    "listener {}: native-tls (pkcs12) is not supported; use certpath/keypath",
                    s.name
                )));
            }
            Some(tls) if !tls.validate_paths() => {
                return Err(BrokerError::Invalid(format!(
                    "listener {}: TLS certificate or key file not found",
                    s.name
                )));
            }
            _ => {}
        }
    }
    Ok(())
}

/// The running embedded broker.
#[derive(Debug)]
pub struct EmbeddedBroker {
    listeners: Vec<Listener>,
    _thread: JoinHandle<()>,
}

/// How long each listener gets to start accepting connections.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(20);

impl EmbeddedBroker {
    /// Starts rumqttd with `config` (port-0 listeners get free ports) and `auth` on every
    /// listener; returns when all listeners accept connections.
    pub fn start(
        mut config: rumqttd::Config,
        auth: BrokerAuth,
    ) -> Result<EmbeddedBroker, BrokerError> {
        validate(&config)?;
        assign_ephemeral_ports(&mut config)?;
        let auth = Arc::new(auth);
        for server in servers_mut(&mut config) {
            let auth = Arc::clone(&auth);
            server.set_auth_handler(move |client_id, username, password| {
                let auth = Arc::clone(&auth);
                async move { auth.check(client_id, username, password).await }
            });
        }
        let listeners = listeners(&config);
        let thread = std::thread::Builder::new()
            .name("rumqttd".to_owned())
            .spawn(move || {
                let mut broker = rumqttd::Broker::new(config);
                if let Err(e) = broker.start() {
                    error!(error = %e, "embedded MQTT broker stopped");
                }
            })
            .map_err(BrokerError::Thread)?;
        for l in &listeners {
            wait_listening(l)?;
            info!(listener = %l.name, addr = %l.addr, tls = l.tls, protocol = ?l.protocol, "embedded MQTT broker listening");
        }
        Ok(EmbeddedBroker {
            listeners,
            _thread: thread,
        })
    }

    /// All listeners with their resolved addresses.
    pub fn listeners(&self) -> &[Listener] {
        &self.listeners
    }

    /// The listener named `name`.
    pub fn listener(&self, name: &str) -> Option<&Listener> {
        self.listeners.iter().find(|l| l.name == name)
    }
}

fn wait_listening(l: &Listener) -> Result<(), BrokerError> {
    let addr = l.connect_addr();
    let deadline = Instant::now() + LISTEN_TIMEOUT;
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(BrokerError::NotListening {
        name: l.name.clone(),
        addr: l.addr,
        timeout: LISTEN_TIMEOUT,
    })
}

/// The embedded broker's authentication: the ingester's credentials, or a registered
/// gateway's (see the module docs).
#[derive(Debug, Clone)]
pub struct BrokerAuth {
    ingester_username: String,
    ingester_password: Secret,
    db: Db,
    runtime: tokio::runtime::Handle,
}

impl BrokerAuth {
    /// Checks gateways against `db`; accepts `ingester_username`/`ingester_password`.
    /// Must be called inside the Tokio runtime that owns `db`'s pool.
    pub fn new(db: Db, ingester_username: String, ingester_password: Secret) -> BrokerAuth {
        BrokerAuth {
            ingester_username,
            ingester_password,
            db,
            runtime: tokio::runtime::Handle::current(),
        }
    }

    /// Decides one CONNECT. Never logs the password.
    pub async fn check(&self, client_id: String, username: String, password: String) -> bool {
        if username == self.ingester_username {
            let ok = base::ct_eq(
                password.as_bytes(),
                self.ingester_password.expose().as_bytes(),
            );
            if !ok {
                warn!(%client_id, %username, "MQTT login refused: wrong ingester password");
            }
            return ok;
        }
        let Some((tenant, gateway)) = gateway_identity(&username) else {
            warn!(%client_id, %username, "MQTT login refused: username is not tenant/gateway");
            return false;
        };
        let expected_client = gateway_client_id(tenant, gateway);
        if client_id != expected_client {
            warn!(%client_id, %username, expected = %expected_client, "MQTT login refused: client id not bound to username");
            return false;
        }
        let db = self.db.clone();
        let (tenant, gateway) = (tenant.to_owned(), gateway.to_owned());
        let verdict = self
            .runtime
            .spawn(async move {
                db.verify_gateway_credential(&tenant, &gateway, &password)
                    .await
                    .map(|found| found.is_some())
            })
            .await;
        match verdict {
            Ok(Ok(true)) => {
                debug!(%client_id, %username, "MQTT gateway login accepted");
                true
            }
            Ok(Ok(false)) => {
                warn!(%client_id, %username, "MQTT login refused: unknown gateway or wrong password");
                false
            }
            Ok(Err(e)) => {
                warn!(%client_id, %username, error = %e, "MQTT login refused: credential check failed");
                false
            }
            Err(e) => {
                error!(%client_id, error = %e, "MQTT credential check task failed");
                false
            }
        }
    }
}

/// Splits a gateway username `{tenant}/{gateway}` (both valid topic ids).
pub fn gateway_identity(username: &str) -> Option<(&str, &str)> {
    let (tenant, gateway) = username.split_once('/')?;
    let valid =
        wire::topic::validate_id(tenant).is_ok() && wire::topic::validate_id(gateway).is_ok();
    valid.then_some((tenant, gateway))
}

/// The MQTT client id a gateway must use: `wp-{tenant}-{gateway}` (the agent's default).
pub fn gateway_client_id(tenant: &str, gateway: &str) -> String {
    format!("wp-{tenant}-{gateway}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_usernames_split_into_valid_ids() {
        assert_eq!(gateway_identity("acme/gw-01"), Some(("acme", "gw-01")));
        for bad in [
            "acme",
            "acme/",
            "/gw",
            "acme/gw/x",
            "Acme/gw",
            "acme/+",
            "wp-ingester",
        ] {
            assert_eq!(gateway_identity(bad), None, "{bad}");
        }
        assert_eq!(gateway_client_id("acme", "gw-01"), "wp-acme-gw-01");
    }

    #[test]
    fn port_zero_listeners_get_distinct_free_ports() {
        let text = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../broker-config/rumqttd-dev.toml"),
        )
        .unwrap();
        let mut config: rumqttd::Config = toml::from_str(&text).unwrap();
        assign_ephemeral_ports(&mut config).unwrap();
        let ports: Vec<u16> = listeners(&config).iter().map(|l| l.addr.port()).collect();
        assert!(ports.iter().all(|p| *p != 0), "{ports:?}");
        assert_ne!(ports[0], ports[1]);
        override_port(&mut config, "dev5", 4242).unwrap();
        assert_eq!(listeners(&config)[1].addr.port(), 4242);
        assert!(override_port(&mut config, "nope", 1).is_err());
    }

    #[test]
    fn missing_tls_files_are_refused_before_start() {
        let text = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../broker-config/rumqttd.toml"),
        )
        .unwrap();
        let config: rumqttd::Config = toml::from_str(&text).unwrap();
        let err = validate(&config).unwrap_err().to_string();
        assert!(
            err.contains("TLS certificate or key file not found"),
            "{err}"
        );
    }
}
