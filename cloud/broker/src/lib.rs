//! The embedded MQTT broker: rumqttd running inside `wellpulse-cloud`, behind a front
//! listener of ours that is the only door gateways can reach.
//!
//! # What it is for
//!
//! A deployment needs no separate broker: `wellpulse-cloud run` starts rumqttd from
//! `broker-config/rumqttd.toml` on its own threads and the ingester connects to it like to
//! any broker. Tenants are isolated at the door: a gateway can publish and subscribe only
//! under its own `wp/v1/{tenant}/{gateway}/` prefix. Mosquitto (with the ACL that
//! [`mosquitto::acl`] generates) or EMQX remain alternatives; see
//! `broker-config/README.md`.
//!
//! # Why a front listener
//!
//! rumqttd 0.20 has no topic ACL (its `validate-tenant-prefix` feature needs client
//! certificates and a `/tenants/{id}/` prefix), no hook on PUBLISH or SUBSCRIBE, no
//! per-client rate limit and no way to disconnect a client; we may not patch it. Its auth
//! hook only sees CONNECT. So every listener of the rumqttd config becomes a front
//! listener on the configured address (TLS terminated here, with tokio-rustls, when the
//! listener has `certpath`/`keypath`), and rumqttd serves the same listener on a loopback
//! port chosen at start-up, plain TCP. rumqttd's auth hook accepts only a random
//! per-process password that the front writes into every CONNECT it forwards, so nothing
//! reaches rumqttd except through the front. Alternatives weighed: a separate proxy
//! process (one more thing to deploy, and the kick handle and the store would be across a
//! process boundary); patching/vendoring rumqttd (not allowed, and a fork to maintain);
//! making Mosquitto mandatory (gives up the single-binary deployment, and Mosquitto's
//! `acl_file` has its own gap, below).
//!
//! The front speaks MQTT 3.1.1 (the agent, rumqttc v4) and MQTT 5 (the ingester, rumqttc
//! v5), one version per listener as rumqttd does, with rumqttc's public `mqttbytes`
//! codecs. It decodes every client → broker packet to inspect it but forwards the
//! original bytes (only CONNECT, and a SUBSCRIBE with refused filters, are re-encoded);
//! broker → client frames pass through unchanged except a SUBACK that must carry the
//! front's refusals. Measured cost: see `benches/front.rs` and ARCHITECTURE.md.
//!
//! # Rules at the door
//!
//! - **CONNECT.** The login is [`BrokerAuth::login`]: the ingester's credentials from
//!   `cloud.toml` (constant-time comparison; trusted, its bytes then pass unexamined), or
//!   a gateway: username `{tenant}/{gateway}`, client id bound to it
//!   (`wp-{tenant}-{gateway}`, so no gateway can take over another's session), password
//!   checked by the store's one question [`store::Db::gateway_may_log_in`] at every
//!   CONNECT (a re-keyed or revoked credential is refused at once). A gateway's will topic
//!   must be under its prefix. Refusals carry the protocol's code: 3.1.1 CONNACK 0x04 bad
//!   user name or password, 0x02 identifier rejected, 0x05 not authorized, 0x03 server
//!   unavailable (store down); MQTT 5 0x86, 0x85, 0x87, 0x88, 0x8C (enhanced auth).
//! - **Client certificates** (optional mutual TLS, per TLS listener:
//!   [`FrontOptions::client_certificates`], [`ClientCertificates`]). The handshake asks
//!   for a certificate and proves the client holds its key; at CONNECT, after the
//!   password, [`BrokerAuth::check_certificate`] checks it names the username, was issued
//!   to that gateway under its serial by the tenant's CA, is unrevoked and unexpired
//!   (the store is asked at every login), and chains to that CA (design: `front::certs`).
//!   In `required` mode a gateway without one is refused. Refusals: 3.1.1 0x05, MQTT 5
//!   0x87. A revocation is followed by a kick, like a revoked password.
//! - **Failed logins** are throttled per source address and per username: after
//!   `login_free_failures` consecutive failures each further one blocks the key for the
//!   next [`base::Backoff`] delay (`login_backoff_min` doubling to `login_backoff_max`,
//!   jittered); while blocked, logins are refused before the store is asked (MQTT 5 0x9F
//!   connection rate exceeded, 3.1.1 0x05). A success clears the username, not the
//!   address. The ingester is throttled per (username, address) only, so failures from
//!   elsewhere cannot lock it out. Trade-off: failures against a gateway's username from
//!   anywhere also block that gateway for up to `login_backoff_max` (60 s by default).
//! - **PUBLISH** topics must be strictly below the gateway's prefix (MQTT 5 topic aliases
//!   are tracked, and only ever stand for checked topics). **SUBSCRIBE** filters must
//!   start with the literal prefix: `#`, `wp/v1/+/...`, `$share/...`, `$SYS/...` and
//!   other gateways' topics are refused per filter (SUBACK 0x80 in 3.1.1, 0x87 in MQTT 5;
//!   allowed filters of the same SUBSCRIBE go through). Only the ingester may use shared
//!   subscriptions and cross-gateway wildcards.
//! - **Rates.** Each gateway has token buckets, kept across its connections (reconnecting
//!   does not refill them): `messages_per_second` / `message_burst` and
//!   `bytes_per_second` / `byte_burst` for PUBLISH, and a fixed budget for control
//!   packets (SUBSCRIBE, UNSUBSCRIBE, PINGREQ: 10/s, burst 100; over it: disconnect).
//! - **Excess and refused PUBLISH is dropped, not disconnected**, and counted per gateway
//!   and reason (`wellpulse_broker_dropped_messages_total{tenant,gateway,reason}`,
//!   `..._dropped_bytes_total`; logs at powers of two). QoS 1 is still answered so the
//!   client's in-flight window never wedges: MQTT 5 PUBACK 0x87 not authorized / 0x97
//!   quota exceeded; 3.1.1 has no negative PUBACK, so a plain PUBACK (as Mosquitto does,
//!   MQTT-3.3.5-2). A PUBACK is never proof of storage in WellPulse: the agent re-sends
//!   until the cloud's own ack, so a legitimate gateway over its rate loses nothing. A
//!   flood cannot reach rumqttd or the ingester beyond the gateway's rate, so it cannot
//!   slow other gateways. QoS 2 that cannot be forwarded closes the connection (3.1.1 has
//!   no way to refuse it; WellPulse uses QoS 1). Malformed packets, packets over the
//!   listener's `max_payload_size`, a second CONNECT or AUTH close the connection (MQTT 5:
//!   DISCONNECT with the reason first).
//!
//! # Disconnect on demand
//!
//! Every gateway connection is registered in the [`Kicker`]
//! ([`EmbeddedBroker::kicker`]): `disconnect_gateway(tenant, gateway)` and
//! `disconnect_tenant(tenant)` close them at once (MQTT 5: DISCONNECT 0x98
//! administrative action), and the connection to rumqttd is closed with it (so rumqttd
//! publishes the gateway's last will). [`spawn_kick_listener`] applies the store's
//! `wp_broker_kick` notifications (payload `tenant` or `tenant/gateway`,
//! [`store::Db::notify_broker_kick`]), so any cloud instance that revokes a credential or
//! suspends a tenant kicks the connections another instance holds. Revoke first, then
//! kick: the next login asks the store again and is refused.
//!
//! # Start-up
//!
//! [`EmbeddedBroker::start_with`] loads nothing itself: it takes rumqttd's own `Config`
//! (see [`load_config`]) and [`FrontOptions`], binds every front listener on its address
//! (port 0: a free port, reported by [`EmbeddedBroker::listeners`]; tests and demos rely
//! on it), moves rumqttd's listeners to free loopback ports with the internal password
//! hook, runs `rumqttd::Broker::start` (which blocks forever) on a dedicated thread,
//! waits until rumqttd accepts connections and starts the front's accept loops on the
//! Tokio runtime the [`BrokerAuth`] was made in. rumqttd has no shutdown API: the broker
//! lives as long as the process. [`EmbeddedBroker::backend`] exposes rumqttd's own
//! address and password for benchmarks and the ingester's defence-in-depth tests.
//!
//! # Metrics
//!
//! [`BrokerMetrics`] (`prometheus-client`, registered into the process registry served by
//! the API's `/metrics`): dropped messages and bytes by gateway and reason, refused
//! subscriptions by gateway, logins by result, front disconnects by reason, open
//! connections.
//!
//! # Mosquitto
//!
//! [`mosquitto::acl`] writes the Mosquitto ACL for the registry (`wellpulse-cloud
//! mosquitto-acl`). Mosquitto 2.0's `acl_file` filters at delivery, not at SUBSCRIBE: a
//! gateway's `#` is granted and delivers nothing it may not read, but a gateway that
//! joins the ingester's `$share` group takes a share of the group's messages, which are
//! then dropped (re-sent by the agents after their ack timeout; nothing leaks). The
//! embedded broker refuses that SUBSCRIBE.

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tracing::{debug, error, info, warn};

use base::Secret;
use store::Db;

mod front;
pub mod metrics;
pub mod mosquitto;

pub use front::Kicker;
pub use metrics::{BrokerMetrics, DropReason};

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

/// The front listener's limits (see the crate docs). `cloud.toml`'s
/// `[broker.embedded.limits]` sets them; the defaults suit the agent's own pace (one live
/// batch per second, backlog every 100 ms, 16 in flight) with room to spare.
#[derive(Debug, Clone, PartialEq)]
pub struct FrontOptions {
    /// PUBLISH packets per second one gateway may send (sustained).
    pub messages_per_second: u32,
    /// PUBLISH packets one gateway may send at once (the bucket size).
    pub message_burst: u32,
    /// PUBLISH bytes (whole MQTT packets) per second one gateway may send (sustained).
    pub bytes_per_second: u64,
    /// PUBLISH bytes one gateway may send at once; at least the largest packet a listener
    /// accepts, or such a packet could never pass.
    pub byte_burst: u64,
    /// Consecutive failed logins of one source address or username that cost nothing.
    pub login_free_failures: u32,
    /// First block after the free failures (then doubling, with jitter).
    pub login_backoff_min: Duration,
    /// Longest block.
    pub login_backoff_max: Duration,
    /// TLS listeners (by name) that ask gateways for a client certificate (see
    /// [`ClientCertificates`]); listeners not named here ask for none.
    pub client_certificates: BTreeMap<String, ClientCertificates>,
}

/// Whether a TLS listener asks gateways for a client certificate (optional mutual TLS;
/// `cloud.toml`'s `[broker.embedded.listeners.<name>] client_certificates`). A certificate
/// is an additional factor: the password stays required (the gateway's message key is
/// derived from it). The ingester logs in with its password alone on any listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientCertificates {
    /// No certificate is asked for.
    #[default]
    Off,
    /// A gateway may present one; if it does, it must be valid for its username.
    Optional,
    /// Every gateway must present a valid certificate for its username.
    Required,
}

impl ClientCertificates {
    /// Its name in configuration files.
    pub fn as_str(self) -> &'static str {
        match self {
            ClientCertificates::Off => "off",
            ClientCertificates::Optional => "optional",
            ClientCertificates::Required => "required",
        }
    }
}

impl Default for FrontOptions {
    fn default() -> Self {
        FrontOptions {
            messages_per_second: 20,
            message_burst: 50,
            bytes_per_second: 1024 * 1024,
            byte_burst: 4 * 1024 * 1024,
            login_free_failures: 3,
            login_backoff_min: Duration::from_secs(1),
            login_backoff_max: Duration::from_secs(60),
            client_certificates: BTreeMap::new(),
        }
    }
}

impl FrontOptions {
    /// Checks the values against each other and the largest packet a listener accepts.
    pub fn validate(&self, max_packet: usize) -> Result<(), String> {
        if self.messages_per_second == 0 || self.message_burst == 0 {
            return Err("messages_per_second and message_burst must be positive".to_owned());
        }
        if self.bytes_per_second == 0 {
            return Err("bytes_per_second must be positive".to_owned());
        }
        if self.byte_burst < max_packet as u64 {
            return Err(format!(
                "byte_burst ({}) must be at least the largest accepted packet ({max_packet} bytes)",
                self.byte_burst
            ));
        }
        if self.login_backoff_min.is_zero() || self.login_backoff_max < self.login_backoff_min {
            return Err(
                "login_backoff_min must be positive and not above login_backoff_max".to_owned(),
            );
        }
        Ok(())
    }
}

/// The running embedded broker: rumqttd on loopback behind the front listeners.
#[derive(Debug)]
pub struct EmbeddedBroker {
    listeners: Vec<Listener>,
    backends: Vec<(String, SocketAddr)>,
    internal_password: Secret,
    kicker: Kicker,
    metrics: BrokerMetrics,
    _thread: JoinHandle<()>,
}

/// How long each listener gets to start accepting connections.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(20);

impl EmbeddedBroker {
    /// [`EmbeddedBroker::start_with`] the default [`FrontOptions`].
    pub fn start(config: rumqttd::Config, auth: BrokerAuth) -> Result<EmbeddedBroker, BrokerError> {
        EmbeddedBroker::start_with(config, auth, FrontOptions::default())
    }

    /// Starts the broker: every listener of `config` becomes a front listener on its
    /// address (port 0: a free port, reported by [`EmbeddedBroker::listeners`]; TLS if
    /// configured), and rumqttd serves the same listener on a loopback port of our choice,
    /// plain TCP, accepting only CONNECTs forwarded by the front. Returns when everything
    /// accepts connections. Call from a blocking context inside the Tokio runtime that
    /// `auth` was created in (the front's tasks run there).
    pub fn start_with(
        mut config: rumqttd::Config,
        auth: BrokerAuth,
        options: FrontOptions,
    ) -> Result<EmbeddedBroker, BrokerError> {
        validate(&config)?;
        check_client_certificates(&config, &options)?;
        let runtime = auth.runtime.clone();
        let internal_password = Secret::new(format!("{:032x}", rand::random::<u128>()));
        let mut doors = Vec::new();
        let mut public = Vec::new();
        for server in servers_mut(&mut config) {
            options
                .validate(server.connections.max_payload_size)
                .map_err(|e| BrokerError::Invalid(format!("front limits: {e}")))?;
            let socket = TcpListener::bind(server.listen).map_err(|source| BrokerError::Port {
                listener: server.name.clone(),
                source,
            })?;
            let addr = socket.local_addr().map_err(|source| BrokerError::Port {
                listener: server.name.clone(),
                source,
            })?;
            let certificates = options
                .client_certificates
                .get(&server.name)
                .copied()
                .unwrap_or_default();
            let tls = match server.tls.take() {
                Some(tls) => Some(tls_acceptor(&server.name, &tls, certificates)?),
                None => None,
            };
            public.push((server.name.clone(), addr, tls.is_some(), socket));
            doors.push((
                server.name.clone(),
                tls,
                certificates,
                Duration::from_millis(u64::from(server.connections.connection_timeout_ms)),
                server.connections.max_payload_size,
            ));
            // rumqttd: loopback, plain, a free port chosen below.
            server.listen = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
            let password = internal_password.clone();
            server.set_auth_handler(move |_client_id, _username, given: String| {
                let ok = base::ct_eq(given.as_bytes(), password.expose().as_bytes());
                async move { ok }
            });
        }
        assign_ephemeral_ports(&mut config)?;
        let inner = listeners(&config);
        let thread = std::thread::Builder::new()
            .name("rumqttd".to_owned())
            .spawn(move || {
                let mut broker = rumqttd::Broker::new(config);
                if let Err(e) = broker.start() {
                    error!(error = %e, "embedded MQTT broker stopped");
                }
            })
            .map_err(BrokerError::Thread)?;
        for l in &inner {
            wait_listening(l)?;
        }
        let kicker = Kicker::default();
        let metrics = BrokerMetrics::default();
        let front = Arc::new(front::Front {
            auth: Arc::new(auth),
            internal_password: internal_password.clone(),
            throttle: std::sync::Mutex::new(front::limit::LoginThrottle::new(&options)),
            options,
            kicker: kicker.clone(),
            metrics: metrics.clone(),
            limiters: std::sync::Mutex::default(),
        });
        let mut listeners = Vec::new();
        let mut backends = Vec::new();
        for (
            (name, tls, client_certificates, connect_timeout, max_packet),
            (_, addr, is_tls, socket),
        ) in doors.into_iter().zip(public)
        {
            let backend = inner
                .iter()
                .find(|l| l.name == name)
                .map(Listener::connect_addr)
                .ok_or_else(|| BrokerError::Invalid(format!("listener {name} vanished")))?;
            let protocol = inner
                .iter()
                .find(|l| l.name == name)
                .map_or(Protocol::V4, |l| l.protocol);
            socket
                .set_nonblocking(true)
                .map_err(|source| BrokerError::Port {
                    listener: name.clone(),
                    source,
                })?;
            let socket = {
                let _guard = runtime.enter();
                tokio::net::TcpListener::from_std(socket).map_err(|source| BrokerError::Port {
                    listener: name.clone(),
                    source,
                })?
            };
            let door = Arc::new(front::Door {
                name: name.clone(),
                protocol,
                backend,
                tls,
                client_certificates,
                connect_timeout,
                max_packet,
            });
            runtime.spawn(front::serve(socket, door, Arc::clone(&front)));
            info!(listener = %name, %addr, tls = is_tls, client_certificates = client_certificates.as_str(), ?protocol, %backend, "embedded MQTT broker listening (front listener → rumqttd on loopback)");
            backends.push((name.clone(), backend));
            listeners.push(Listener {
                name,
                protocol,
                addr,
                tls: is_tls,
            });
        }
        listeners.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(EmbeddedBroker {
            listeners,
            backends,
            internal_password,
            kicker,
            metrics,
            _thread: thread,
        })
    }

    /// All front listeners with their resolved addresses (what clients connect to).
    pub fn listeners(&self) -> &[Listener] {
        &self.listeners
    }

    /// The front listener named `name`.
    pub fn listener(&self, name: &str) -> Option<&Listener> {
        self.listeners.iter().find(|l| l.name == name)
    }

    /// The handle that disconnects gateways and tenants (see [`Kicker`]).
    pub fn kicker(&self) -> &Kicker {
        &self.kicker
    }

    /// The front listener's metrics (register them with [`BrokerMetrics::register`]).
    pub fn metrics(&self) -> &BrokerMetrics {
        &self.metrics
    }

    /// rumqttd's own loopback address behind front listener `name`, and the one password
    /// it accepts. For benchmarks and tests that measure rumqttd without the front, and
    /// for the ingester's defence-in-depth tests; never give these to a gateway.
    pub fn backend(&self, name: &str) -> Option<(SocketAddr, &Secret)> {
        self.backends
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, a)| (*a, &self.internal_password))
    }
}

/// A TLS acceptor from a rumqttd listener's `certpath`/`keypath`, asking for client
/// certificates unless `certificates` is off (see `front::certs`).
fn tls_acceptor(
    listener: &str,
    tls: &rumqttd::TlsConfig,
    certificates: ClientCertificates,
) -> Result<tokio_rustls::TlsAcceptor, BrokerError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let bad = |what: String| BrokerError::Invalid(format!("listener {listener}: {what}"));
    let rumqttd::TlsConfig::Rustls {
        capath,
        certpath,
        keypath,
    } = tls
    else {
        return Err(bad("native-tls (pkcs12) is not supported".to_owned()));
    };
    if capath.is_some() {
        return Err(bad(
            "capath is not supported: gateway client certificates are issued by the tenants' \
             CAs (set client_certificates in cloud.toml's [broker.embedded.listeners.<name>])"
                .to_owned(),
        ));
    }
    let certs = CertificateDer::pem_file_iter(certpath)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| bad(format!("certificate {certpath}: {e}")))?;
    let key = PrivateKeyDer::from_pem_file(keypath)
        .map_err(|e| bad(format!("private key {keypath}: {e}")))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(e.to_string()))?;
    let builder = match certificates {
        ClientCertificates::Off => builder.with_no_client_auth(),
        ClientCertificates::Optional | ClientCertificates::Required => builder
            .with_client_cert_verifier(Arc::new(front::certs::PresentedCertificates::new(
                provider,
            ))),
    };
    let config = builder
        .with_single_cert(certs, key)
        .map_err(|e| bad(format!("certificate and key: {e}")))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// Every listener named in `options.client_certificates` exists, and asks for
/// certificates only if it speaks TLS.
fn check_client_certificates(
    config: &rumqttd::Config,
    options: &FrontOptions,
) -> Result<(), BrokerError> {
    for (name, mode) in &options.client_certificates {
        let tls = listeners(config)
            .into_iter()
            .find(|l| &l.name == name)
            .map(|l| l.tls);
        match tls {
            None => {
                return Err(BrokerError::Invalid(format!(
                    "client_certificates for listener {name:?}, which is not configured"
                )));
            }
            Some(false) if *mode != ClientCertificates::Off => {
                return Err(BrokerError::Invalid(format!(
                    "listener {name}: client_certificates = {:?} needs a TLS listener (certpath/keypath)",
                    mode.as_str()
                )));
            }
            Some(_) => {}
        }
    }
    Ok(())
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

/// Who a CONNECT logged in as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// The ingester (credentials from `cloud.toml`): trusted, unrestricted.
    Ingester,
    /// A registered gateway, confined to `wp/v1/{tenant}/{gateway}/`.
    Gateway {
        /// Tenant id.
        tenant: String,
        /// Gateway id.
        gateway: String,
    },
}

/// Why a login was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginRefusal {
    /// No username/password in the CONNECT.
    NoCredentials,
    /// Unknown user, wrong password, or the store bars the gateway.
    BadCredentials,
    /// A gateway's client id is not `wp-{tenant}-{gateway}`.
    ClientId,
    /// A listener asking for client certificates got none where one is required, or one
    /// that is not valid for the username (see `front::certs`).
    Certificate,
    /// The credential check itself failed (database unreachable).
    Unavailable,
}

impl LoginRefusal {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            LoginRefusal::NoCredentials => "no_credentials",
            LoginRefusal::BadCredentials => "bad_credentials",
            LoginRefusal::ClientId => "client_id",
            LoginRefusal::Certificate => "certificate",
            LoginRefusal::Unavailable => "unavailable",
        }
    }
}

/// The embedded broker's authentication: the ingester's credentials, or a registered
/// gateway's (see the module docs).
#[derive(Debug, Clone)]
pub struct BrokerAuth {
    ingester_username: String,
    ingester_password: Secret,
    db: Db,
    runtime: tokio::runtime::Handle,
    provider: Arc<rustls::crypto::CryptoProvider>,
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
            provider: Arc::new(rustls::crypto::ring::default_provider()),
        }
    }

    /// Whether `username` is the ingester's.
    pub fn is_ingester(&self, username: &str) -> bool {
        username == self.ingester_username
    }

    /// Decides one CONNECT. Asks the store every time ([`Db::gateway_may_log_in`]), so a
    /// revoked credential is refused at once. Never logs the password.
    pub async fn login(
        &self,
        client_id: &str,
        username: &str,
        password: &str,
    ) -> Result<Identity, LoginRefusal> {
        if username == self.ingester_username {
            let ok = base::ct_eq(
                password.as_bytes(),
                self.ingester_password.expose().as_bytes(),
            );
            if !ok {
                warn!(%client_id, %username, "MQTT login refused: wrong ingester password");
                return Err(LoginRefusal::BadCredentials);
            }
            return Ok(Identity::Ingester);
        }
        let Some((tenant, gateway)) = gateway_identity(username) else {
            warn!(%client_id, %username, "MQTT login refused: username is not tenant/gateway");
            return Err(LoginRefusal::BadCredentials);
        };
        let expected_client = gateway_client_id(tenant, gateway);
        if client_id != expected_client {
            warn!(%client_id, %username, expected = %expected_client, "MQTT login refused: client id not bound to username");
            return Err(LoginRefusal::ClientId);
        }
        match self.db.gateway_may_log_in(tenant, gateway, password).await {
            Ok(true) => {
                debug!(%client_id, %username, "MQTT gateway login accepted");
                Ok(Identity::Gateway {
                    tenant: tenant.to_owned(),
                    gateway: gateway.to_owned(),
                })
            }
            Ok(false) => {
                warn!(%client_id, %username, "MQTT login refused: unknown gateway or wrong password");
                Err(LoginRefusal::BadCredentials)
            }
            Err(e) => {
                warn!(%client_id, %username, error = %e, "MQTT login refused: credential check failed");
                Err(LoginRefusal::Unavailable)
            }
        }
    }

    /// Checks the client certificate `der` a gateway presented for `{tenant}/{gateway}`
    /// (see `front::certs`): it names that gateway, the store issued it to that gateway
    /// under its serial, it is not revoked or expired, and it chains to the tenant's CA.
    /// Asks the store every time.
    pub async fn check_certificate(
        &self,
        tenant: &str,
        gateway: &str,
        der: &[u8],
    ) -> Result<(), LoginRefusal> {
        use store::certificates::{CertificateStatus, PresentedIdentity};
        let username = format!("{tenant}/{gateway}");
        let Some(presented) = PresentedIdentity::read(der) else {
            warn!(%username, "MQTT login refused: client certificate does not parse");
            return Err(LoginRefusal::Certificate);
        };
        if !presented.names(tenant, gateway) {
            warn!(%username, certificate = ?presented.common_name, "MQTT login refused: client certificate names another gateway");
            return Err(LoginRefusal::Certificate);
        }
        let status = self
            .db
            .gateway_certificate_status(tenant, gateway, &presented.serial)
            .await;
        let serial = &presented.serial;
        match status {
            Ok(CertificateStatus::Valid {
                ca_der,
                certificate_der,
            }) => {
                if certificate_der != der {
                    warn!(%username, %serial, "MQTT login refused: client certificate is not the one issued under its serial");
                    return Err(LoginRefusal::Certificate);
                }
                if !front::certs::chains_to(der, &ca_der, &self.provider) {
                    warn!(%username, %serial, "MQTT login refused: client certificate does not chain to the tenant CA");
                    return Err(LoginRefusal::Certificate);
                }
                debug!(%username, %serial, "MQTT client certificate accepted");
                Ok(())
            }
            Ok(other) => {
                warn!(%username, %serial, status = ?other, "MQTT login refused: client certificate not valid");
                Err(LoginRefusal::Certificate)
            }
            Err(e) => {
                warn!(%username, error = %e, "MQTT login refused: certificate check failed");
                Err(LoginRefusal::Unavailable)
            }
        }
    }
}

/// Listens on the store's `wp_broker_kick` channel and applies every request to
/// `kicker`, so a revocation on any cloud instance disconnects gateways held by this one.
/// Reconnects with [`base::Backoff`] after a lost database connection. `ready` turns
/// `true` each time `LISTEN` is in effect.
pub fn spawn_kick_listener(db: Db, kicker: Kicker) -> KickListener {
    let (ready_tx, ready) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(async move {
        let mut backoff = base::Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
        loop {
            match db.broker_kicks().await {
                Ok(mut kicks) => {
                    backoff.reset();
                    let _ = ready_tx.send(true);
                    loop {
                        match kicks.recv().await {
                            Ok(target) => match kicker.apply(&target) {
                                Some(n) => {
                                    info!(%target, connections = n, "broker kick request applied")
                                }
                                None => warn!(%target, "malformed broker kick request ignored"),
                            },
                            Err(e) => {
                                warn!(error = %e, "broker kick listener lost its connection");
                                let _ = ready_tx.send(false);
                                break;
                            }
                        }
                    }
                }
                Err(e) => warn!(error = %e, "cannot listen for broker kick requests"),
            }
            tokio::time::sleep(backoff.next_delay()).await;
        }
    });
    KickListener { ready, task }
}

/// The task of [`spawn_kick_listener`].
#[derive(Debug)]
pub struct KickListener {
    ready: tokio::sync::watch::Receiver<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl KickListener {
    /// Waits until `LISTEN` is in effect.
    pub async fn ready(&mut self) {
        let _ = self.ready.wait_for(|r| *r).await;
    }
}

impl Drop for KickListener {
    fn drop(&mut self) {
        self.task.abort();
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
    fn client_certificates_need_a_known_tls_listener() {
        let text = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../broker-config/rumqttd-dev.toml"),
        )
        .unwrap();
        let config: rumqttd::Config = toml::from_str(&text).unwrap();
        let with = |name: &str, mode| FrontOptions {
            client_certificates: [(name.to_owned(), mode)].into(),
            ..FrontOptions::default()
        };
        let err = check_client_certificates(&config, &with("nope", ClientCertificates::Required))
            .unwrap_err()
            .to_string();
        assert!(err.contains("not configured"), "{err}");
        let err = check_client_certificates(&config, &with("dev4", ClientCertificates::Optional))
            .unwrap_err()
            .to_string();
        assert!(err.contains("needs a TLS listener"), "{err}");
        check_client_certificates(&config, &with("dev4", ClientCertificates::Off)).unwrap();
        check_client_certificates(&config, &FrontOptions::default()).unwrap();
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
