//! Agent configuration: the TOML file format and its validation.
//!
//! The file is read in two steps:
//!
//! 1. **Parse** into the `*Section` types below. They are the only serde types of the
//!    module (the file is a boundary), every struct has `deny_unknown_fields` so a typo is an
//!    error rather than a silently ignored setting, and durations are humantime strings with
//!    units (`"500ms"`, `"60s"`, `"7d"`).
//! 2. **Validate and resolve** into [`Config`]: plain structs with every default applied,
//!    every profile loaded, every reference (device → bus, device → profile) checked, and
//!    device aliases assigned (alias = position of the `[[device]]` in the file, 0-based).
//!    All problems found are reported together, one per line, each naming the offending
//!    section (`device "pump-1": ...`), so a field engineer fixes a file in one round.
//!
//! Nothing downstream looks at the raw sections again; the poller, batcher, buffer and uplink
//! receive resolved settings. Secrets (`mqtt.password`) live in [`Secret`], whose `Debug`
//! prints `***`, so logging a config never leaks them.
//!
//! Serial parameters of a `[[bus]]` may be left out: they are then taken from the transport
//! defaults of the profiles of the devices on that bus, which must agree (otherwise the bus
//! must set them explicitly).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use firmware_profiles::{DataType, Profile};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::plan::{self, DevicePlan};

/// Default MQTT port for `mqtt://` URLs.
const MQTT_PORT: u16 = 1883;
/// Default MQTT port for `mqtts://` URLs.
const MQTTS_PORT: u16 = 8883;

/// Errors loading or validating an agent configuration file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read agent config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file is not valid TOML or does not match the schema (unknown field, wrong type).
    #[error("agent config {path}: {source}")]
    Syntax {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    /// The file parsed but its content is inconsistent; every problem is listed.
    #[error("agent config {path} is invalid:\n  - {}", problems.join("\n  - "))]
    Invalid {
        path: PathBuf,
        problems: Vec<String>,
    },
}

// ---------------------------------------------------------------------------------------
// File format (serde boundary types)
// ---------------------------------------------------------------------------------------

/// The whole agent configuration file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Identity of this gateway and where it keeps its state.
    pub gateway: GatewaySection,
    /// Connection to the MQTT broker and delivery tuning.
    pub mqtt: MqttSection,
    /// Durable buffer limits and batching.
    #[serde(default)]
    pub buffer: BufferSection,
    /// Prometheus metrics endpoint.
    #[serde(default)]
    pub metrics: MetricsSection,
    /// Serial (Modbus RTU) buses, one `[[bus]]` table each.
    #[serde(default, rename = "bus")]
    pub buses: Vec<BusSection>,
    /// Polled devices, one `[[device]]` table each; the order defines device aliases.
    #[serde(default, rename = "device")]
    pub devices: Vec<DeviceSection>,
}

/// `[gateway]`: who this gateway is.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewaySection {
    /// Tenant id, used in MQTT topics (`[a-z0-9][a-z0-9_-]{0,62}`).
    pub tenant: String,
    /// Gateway id, used in MQTT topics (`[a-z0-9][a-z0-9_-]{0,62}`).
    pub id: String,
    /// Directory holding the durable buffer (created if missing).
    pub data_dir: PathBuf,
    /// Optional directory of extra firmware profiles (`<id>.toml`); they take precedence
    /// over the built-in profiles of the same id.
    #[serde(default)]
    pub profile_dir: Option<PathBuf>,
}

/// `[mqtt]`: broker connection and delivery tuning.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttSection {
    /// Broker URL: `mqtt://host[:port]` (plain, default port 1883) or `mqtts://host[:port]`
    /// (TLS, default port 8883, requires `[mqtt.tls]`).
    pub url: String,
    /// MQTT client id; defaults to `wp-<tenant>-<gateway id>`.
    #[serde(default)]
    pub client_id: Option<String>,
    /// Username for broker authentication.
    #[serde(default)]
    pub username: Option<String>,
    /// Password for broker authentication (never logged).
    #[serde(default)]
    pub password: Option<Secret>,
    /// TLS settings, required for `mqtts://`.
    #[serde(default)]
    pub tls: Option<TlsSection>,
    /// MQTT keep-alive interval.
    #[serde(default = "defaults::keep_alive", with = "humantime_serde")]
    pub keep_alive: Duration,
    /// Maximum number of data batches published and not yet acknowledged by the cloud.
    #[serde(default = "defaults::inflight_window")]
    pub inflight_window: usize,
    /// A published batch with no cloud ack after this long is sent again.
    #[serde(default = "defaults::ack_timeout", with = "humantime_serde")]
    pub ack_timeout: Duration,
    /// Minimum interval between two historical (backlog) batches, so a replay after an
    /// outage does not flood the uplink.
    #[serde(default = "defaults::backlog_pace", with = "humantime_serde")]
    pub backlog_pace: Duration,
    /// Batches younger than this are live data (sent first, no historical flag); older
    /// pending batches are backlog.
    #[serde(default = "defaults::live_window", with = "humantime_serde")]
    pub live_window: Duration,
    /// First delay before reconnecting to the broker; doubles (with jitter) per failure.
    #[serde(default = "defaults::reconnect_min", with = "humantime_serde")]
    pub reconnect_min: Duration,
    /// Longest delay between reconnect attempts.
    #[serde(default = "defaults::reconnect_max", with = "humantime_serde")]
    pub reconnect_max: Duration,
}

/// `[mqtt.tls]`: certificate files (PEM).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    /// CA certificate(s) that sign the broker's certificate.
    pub ca_file: PathBuf,
    /// Client certificate chain for mutual TLS (requires `client_key`).
    #[serde(default)]
    pub client_cert: Option<PathBuf>,
    /// Private key of the client certificate (requires `client_cert`).
    #[serde(default)]
    pub client_key: Option<PathBuf>,
}

/// `[buffer]`: durable store-and-forward limits.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BufferSection {
    /// Maximum size of buffered batches in bytes; the oldest are dropped (and counted).
    #[serde(default = "defaults::max_bytes")]
    pub max_bytes: u64,
    /// Buffered batches older than this are dropped (and counted).
    #[serde(default = "defaults::max_age", with = "humantime_serde")]
    pub max_age: Duration,
    /// Longest time a polled sample waits before it is committed to the buffer as part of
    /// a batch (the batch is usually cut earlier, see `flush_quiet`).
    #[serde(default = "defaults::flush_interval", with = "humantime_serde")]
    pub flush_interval: Duration,
    /// A batch is cut once no poll result arrived for this long: the devices due at the
    /// same tick have all answered, so one poll cycle becomes one batch. Values above
    /// `flush_interval` act as `flush_interval`.
    #[serde(default = "defaults::flush_quiet", with = "humantime_serde")]
    pub flush_quiet: Duration,
    /// A batch is committed early when it reaches this many samples.
    #[serde(default = "defaults::max_samples_per_batch")]
    pub max_samples_per_batch: u32,
}

impl Default for BufferSection {
    fn default() -> Self {
        Self {
            max_bytes: defaults::max_bytes(),
            max_age: defaults::max_age(),
            flush_interval: defaults::flush_interval(),
            flush_quiet: defaults::flush_quiet(),
            max_samples_per_batch: defaults::max_samples_per_batch(),
        }
    }
}

/// `[metrics]`: Prometheus endpoint.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSection {
    /// Address the `/metrics` and `/healthz` HTTP endpoint listens on.
    #[serde(default = "defaults::metrics_listen")]
    pub listen: SocketAddr,
}

impl Default for MetricsSection {
    fn default() -> Self {
        Self {
            listen: defaults::metrics_listen(),
        }
    }
}

/// `[[bus]]`: one serial line shared by RTU devices (polled one request at a time).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BusSection {
    /// Bus name referenced by `device.rtu`.
    pub name: String,
    /// Serial device path, e.g. `/dev/ttyUSB0`.
    pub port: PathBuf,
    /// Baud rate; defaults to the (agreeing) profile defaults of the bus's devices.
    #[serde(default)]
    pub baud: Option<u32>,
    /// Parity: `"none"`, `"even"` or `"odd"`; defaults like `baud`.
    #[serde(default)]
    pub parity: Option<ParitySetting>,
    /// Data bits (7 or 8); defaults like `baud`.
    #[serde(default)]
    pub data_bits: Option<u8>,
    /// Stop bits (1 or 2); defaults like `baud`.
    #[serde(default)]
    pub stop_bits: Option<u8>,
    /// Silence kept between the end of one exchange and the next request, on top of the
    /// 3.5-character RTU frame gap (which is always respected).
    #[serde(default = "defaults::inter_request_delay", with = "humantime_serde")]
    pub inter_request_delay: Duration,
}

/// Serial parity as written in the file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ParitySetting {
    /// No parity bit.
    #[default]
    None,
    /// Even parity.
    Even,
    /// Odd parity.
    Odd,
}

/// `[[device]]`: one polled Modbus device.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceSection {
    /// Unique device name (letters, digits, `.`, `_`, `-`; at most 64 characters).
    pub name: String,
    /// Firmware profile id (built-in or from `gateway.profile_dir`). Exactly one of
    /// `profile` and `profile_file` is required.
    #[serde(default)]
    pub profile: Option<String>,
    /// Path of a firmware profile TOML file (relative to this config file).
    #[serde(default)]
    pub profile_file: Option<PathBuf>,
    /// Modbus TCP endpoint `host:port`. Exactly one of `tcp` and `rtu` is required.
    #[serde(default)]
    pub tcp: Option<String>,
    /// Name of the `[[bus]]` this RTU device is wired to.
    #[serde(default)]
    pub rtu: Option<String>,
    /// Modbus unit id; defaults to the profile's.
    #[serde(default)]
    pub unit_id: Option<u8>,
    /// Poll interval per poll group of the profile, e.g. `{ fast = "1s", slow = "60s" }`.
    /// Every group used by the profile needs an interval.
    #[serde(default)]
    pub poll: BTreeMap<String, humantime_serde::Serde<Duration>>,
    /// Per-request timeout; defaults to the profile's.
    #[serde(default, with = "humantime_serde")]
    pub timeout: Option<Duration>,
    /// A tag is re-sent at least this often even when it stays inside its deadband.
    #[serde(default = "defaults::heartbeat", with = "humantime_serde")]
    pub heartbeat: Duration,
    /// A measured value (not a state or setpoint) whose raw reading has not changed for this
    /// long is flagged `stale` (frozen sensor/counter). Absent = no stale detection.
    #[serde(default, with = "humantime_serde")]
    pub stale_after: Option<Duration>,
    /// API number or name of the well this device measures. Sent in the birth (device
    /// info `well`) so the cloud links the device's series to that well.
    #[serde(default)]
    pub well: Option<String>,
}

/// A secret string (password). `Debug` and `Display` never show it.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Creates a secret (for tests and programmatic configs).
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret value, for handing to the MQTT client only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

mod defaults {
    use std::net::{Ipv4Addr, SocketAddr};
    use std::time::Duration;

    pub fn keep_alive() -> Duration {
        Duration::from_secs(30)
    }
    pub fn inflight_window() -> usize {
        16
    }
    pub fn ack_timeout() -> Duration {
        Duration::from_secs(30)
    }
    pub fn backlog_pace() -> Duration {
        Duration::from_millis(100)
    }
    pub fn live_window() -> Duration {
        Duration::from_secs(30)
    }
    pub fn reconnect_min() -> Duration {
        Duration::from_millis(500)
    }
    pub fn reconnect_max() -> Duration {
        Duration::from_secs(30)
    }
    pub fn max_bytes() -> u64 {
        256 * 1024 * 1024
    }
    pub fn max_age() -> Duration {
        Duration::from_secs(30 * 24 * 3600)
    }
    pub fn flush_interval() -> Duration {
        Duration::from_secs(1)
    }
    pub fn flush_quiet() -> Duration {
        Duration::from_millis(50)
    }
    pub fn max_samples_per_batch() -> u32 {
        5000
    }
    pub fn metrics_listen() -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, 9102))
    }
    pub fn inter_request_delay() -> Duration {
        Duration::from_millis(10)
    }
    pub fn heartbeat() -> Duration {
        Duration::from_secs(60)
    }
}

// ---------------------------------------------------------------------------------------
// Resolved configuration (plain types)
// ---------------------------------------------------------------------------------------

/// A validated configuration with every default applied and every profile loaded.
#[derive(Debug, Clone)]
pub struct Config {
    /// Gateway identity and state directory.
    pub gateway: GatewaySettings,
    /// Broker connection.
    pub mqtt: MqttSettings,
    /// Buffer and batching.
    pub buffer: BufferSettings,
    /// Metrics endpoint.
    pub metrics_listen: SocketAddr,
    /// Serial buses, referenced by index from [`Transport::Rtu`].
    pub buses: Vec<BusSettings>,
    /// Devices; `devices[i].alias == i`.
    pub devices: Vec<DeviceSettings>,
    /// Hex SHA-256 of the configuration file's bytes (goes into the birth).
    pub hash: String,
}

/// Resolved `[gateway]`.
#[derive(Debug, Clone)]
pub struct GatewaySettings {
    /// Tenant id (valid topic id).
    pub tenant: String,
    /// Gateway id (valid topic id).
    pub id: String,
    /// State directory (absolute or relative to the config file).
    pub data_dir: PathBuf,
}

/// Resolved `[mqtt]`.
#[derive(Debug, Clone)]
pub struct MqttSettings {
    /// Broker host name or address.
    pub host: String,
    /// Broker port.
    pub port: u16,
    /// TLS file paths (resolved against the config directory) when the URL is `mqtts://`.
    pub tls: Option<TlsSection>,
    /// MQTT client id.
    pub client_id: String,
    /// Username, if any.
    pub username: Option<String>,
    /// Password, if any.
    pub password: Option<Secret>,
    /// Keep-alive interval.
    pub keep_alive: Duration,
    /// Maximum unacknowledged batches.
    pub inflight_window: usize,
    /// Resend timeout.
    pub ack_timeout: Duration,
    /// Minimum interval between backlog batches.
    pub backlog_pace: Duration,
    /// Age below which a batch counts as live.
    pub live_window: Duration,
    /// First reconnect delay.
    pub reconnect_min: Duration,
    /// Longest reconnect delay.
    pub reconnect_max: Duration,
}

/// Resolved `[buffer]`.
#[derive(Debug, Clone, Copy)]
pub struct BufferSettings {
    /// Byte limit of the buffer.
    pub max_bytes: u64,
    /// Age limit of buffered batches.
    pub max_age: Duration,
    /// Longest wait of a sample in the batcher.
    pub flush_interval: Duration,
    /// Quiet time that ends a batch.
    pub flush_quiet: Duration,
    /// Sample limit per batch.
    pub max_samples_per_batch: u32,
}

/// Resolved `[[bus]]` with concrete serial parameters.
#[derive(Debug, Clone)]
pub struct BusSettings {
    /// Bus name.
    pub name: String,
    /// Serial device path.
    pub port: PathBuf,
    /// Baud rate.
    pub baud: u32,
    /// Parity.
    pub parity: ParitySetting,
    /// Data bits (7 or 8).
    pub data_bits: u8,
    /// Stop bits (1 or 2).
    pub stop_bits: u8,
    /// Silence between exchanges (already includes the 3.5-character frame gap).
    pub inter_request_delay: Duration,
}

/// How a device is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// Modbus TCP to `host:port` (resolved at each connect, so DNS names work).
    Tcp {
        /// Host name or IP address.
        host: String,
        /// TCP port.
        port: u16,
    },
    /// Modbus RTU on the bus with this index in [`Config::buses`].
    Rtu {
        /// Index into [`Config::buses`].
        bus: usize,
    },
}

/// A poll group and its interval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PollGroup {
    /// Group name as used by the profile's tags.
    pub name: String,
    /// Poll interval.
    pub interval: Duration,
}

/// Resolved `[[device]]`.
#[derive(Debug, Clone)]
pub struct DeviceSettings {
    /// Device alias (position in the config file).
    pub alias: u16,
    /// Device name.
    pub name: String,
    /// Profile id (built-in id, profile_dir file stem, or profile_file stem).
    pub profile_id: String,
    /// The loaded profile.
    pub profile: Arc<Profile>,
    /// How the device is reached.
    pub transport: Transport,
    /// Modbus unit id.
    pub unit_id: u8,
    /// Poll groups used by the profile with their intervals, sorted by name.
    pub poll: Vec<PollGroup>,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Heartbeat for deadband suppression.
    pub heartbeat: Duration,
    /// Frozen-value detection threshold.
    pub stale_after: Option<Duration>,
    /// The well the device measures (API number or name), if configured.
    pub well: Option<String>,
    /// The read plan of the device's poll groups and information tags.
    pub plan: DevicePlan,
}

impl Config {
    /// Reads, parses and validates a configuration file. Relative paths inside it
    /// (`data_dir`, `profile_dir`, `profile_file`, TLS files) are resolved against the
    /// file's directory.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let bytes = std::fs::read(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::from_bytes(path, base, &bytes)
    }

    /// Parses and validates configuration text; `path` names it in errors and `base`
    /// anchors relative paths.
    pub fn from_bytes(path: &Path, base: &Path, bytes: &[u8]) -> Result<Config, ConfigError> {
        let syntax = |source| ConfigError::Syntax {
            path: path.to_path_buf(),
            source: Box::new(source),
        };
        let text = std::str::from_utf8(bytes).map_err(|e| ConfigError::Invalid {
            path: path.to_path_buf(),
            problems: vec![format!("file is not UTF-8: {e}")],
        })?;
        let file: ConfigFile = toml::from_str(text).map_err(syntax)?;
        let hash = hex::encode(Sha256::digest(bytes));
        let mut resolver = Resolver {
            base,
            problems: Vec::new(),
            profile_cache: HashMap::new(),
        };
        let config = resolver.resolve(file, hash);
        match config {
            Some(config) if resolver.problems.is_empty() => Ok(config),
            _ => Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                problems: resolver.problems,
            }),
        }
    }

    /// The bus a device is on, if it is an RTU device.
    pub fn bus_of(&self, device: &DeviceSettings) -> Option<&BusSettings> {
        match device.transport {
            Transport::Rtu { bus } => self.buses.get(bus),
            Transport::Tcp { .. } => None,
        }
    }
}

/// Validates a device name: 1–64 characters of `[A-Za-z0-9._-]`.
pub fn validate_device_name(name: &str) -> Result<(), String> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if name.is_empty() || name.len() > 64 || !name.chars().all(ok_char) {
        return Err(format!(
            "device name {name:?} must be 1-64 characters of letters, digits, '.', '_' or '-'"
        ));
    }
    Ok(())
}

/// Parses `host:port` (IPv6 hosts in brackets: `[::1]:502`).
pub fn parse_host_port(text: &str) -> Result<(String, u16), String> {
    let (host, port) = text
        .rsplit_once(':')
        .ok_or_else(|| format!("{text:?} is not host:port"))?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.is_empty() || host.contains(['/', ' ']) {
        return Err(format!("{text:?} has no valid host"));
    }
    let port: u16 = port
        .parse()
        .map_err(|_| format!("{text:?} has no valid port"))?;
    if port == 0 {
        return Err(format!("{text:?}: port 0 is not a valid device port"));
    }
    Ok((host.to_string(), port))
}

/// Parses an MQTT broker URL into (host, port, tls).
pub fn parse_mqtt_url(url: &str) -> Result<(String, u16, bool), String> {
    let (rest, tls, default_port) = if let Some(rest) = url.strip_prefix("mqtt://") {
        (rest, false, MQTT_PORT)
    } else if let Some(rest) = url.strip_prefix("mqtts://") {
        (rest, true, MQTTS_PORT)
    } else {
        return Err(format!(
            "mqtt.url {url:?} must start with mqtt:// or mqtts://"
        ));
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains('/') || rest.contains('@') {
        return Err(format!(
            "mqtt.url {url:?} must be scheme://host[:port] (credentials go in mqtt.username/password)"
        ));
    }
    let bracketed = rest.starts_with('[');
    let has_port = if bracketed {
        rest.contains("]:")
    } else {
        rest.contains(':')
    };
    if has_port {
        let (host, port) = parse_host_port(rest).map_err(|e| format!("mqtt.url: {e}"))?;
        Ok((host, port, tls))
    } else {
        let host = rest.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(format!("mqtt.url {url:?} has no host"));
        }
        Ok((host.to_string(), default_port, tls))
    }
}

/// Collects problems while resolving a [`ConfigFile`].
struct Resolver<'a> {
    base: &'a Path,
    problems: Vec<String>,
    profile_cache: HashMap<String, Option<(String, Arc<Profile>)>>,
}

impl Resolver<'_> {
    fn problem(&mut self, message: String) {
        self.problems.push(message);
    }

    fn path(&self, p: &Path) -> PathBuf {
        self.base.join(p)
    }

    /// Resolves the whole file. Returns `None` only when resolution could not produce a
    /// value; problems found along the way are recorded either way.
    fn resolve(&mut self, file: ConfigFile, hash: String) -> Option<Config> {
        let gateway = self.gateway(&file.gateway);
        let mqtt = self.mqtt(file.mqtt, &gateway);
        let buffer = self.buffer(file.buffer);
        let extra_profiles = self.extra_profiles(file.gateway.profile_dir.as_deref());
        if file.devices.len() > usize::from(u16::MAX) {
            self.problem(format!(
                "{} devices configured; at most {} are supported",
                file.devices.len(),
                u16::MAX
            ));
            return None;
        }
        if file.devices.is_empty() {
            self.problem("no [[device]] configured".to_string());
        }
        let bus_names: Vec<String> = file.buses.iter().map(|b| b.name.clone()).collect();
        let mut names = BTreeSet::new();
        let mut devices = Vec::with_capacity(file.devices.len());
        for (index, section) in file.devices.into_iter().enumerate() {
            if !names.insert(section.name.clone()) {
                self.problem(format!("device {:?}: duplicate device name", section.name));
            }
            let alias = u16::try_from(index).expect("device count checked above");
            if let Some(device) = self.device(alias, section, &bus_names, &extra_profiles) {
                devices.push(device);
            }
        }
        let buses = self.buses(file.buses, &devices);
        Some(Config {
            gateway,
            mqtt: mqtt?,
            buffer,
            metrics_listen: file.metrics.listen,
            buses,
            devices,
            hash,
        })
    }

    fn gateway(&mut self, g: &GatewaySection) -> GatewaySettings {
        for (field, value) in [("tenant", &g.tenant), ("id", &g.id)] {
            if let Err(e) = wire::topic::validate_id(value) {
                self.problem(format!("gateway.{field} {value:?}: {e}"));
            }
        }
        GatewaySettings {
            tenant: g.tenant.clone(),
            id: g.id.clone(),
            data_dir: self.path(&g.data_dir),
        }
    }

    fn mqtt(&mut self, m: MqttSection, gateway: &GatewaySettings) -> Option<MqttSettings> {
        let (host, port, tls_url) = match parse_mqtt_url(&m.url) {
            Ok(parsed) => parsed,
            Err(e) => {
                self.problem(e);
                return None;
            }
        };
        match (&m.tls, tls_url) {
            (None, true) => self.problem(format!(
                "mqtt.url {:?} uses mqtts:// but [mqtt.tls] is missing",
                m.url
            )),
            (Some(_), false) => self.problem(format!(
                "[mqtt.tls] is set but mqtt.url {:?} is not mqtts://",
                m.url
            )),
            _ => {}
        }
        let tls = m.tls.map(|t| self.tls(t));
        if m.password.is_some() && m.username.is_none() {
            self.problem("mqtt.password is set without mqtt.username".to_string());
        }
        if m.inflight_window == 0 || m.inflight_window > 60_000 {
            self.problem("mqtt.inflight_window must be between 1 and 60000".to_string());
        }
        for (field, value) in [
            ("keep_alive", m.keep_alive),
            ("ack_timeout", m.ack_timeout),
            ("live_window", m.live_window),
        ] {
            if value.is_zero() {
                self.problem(format!("mqtt.{field} must be greater than zero"));
            }
        }
        if m.backlog_pace.is_zero() {
            self.problem("mqtt.backlog_pace must be greater than zero".to_string());
        }
        if m.reconnect_min.is_zero() || m.reconnect_min > m.reconnect_max {
            self.problem(
                "mqtt.reconnect_min must be greater than zero and at most mqtt.reconnect_max"
                    .to_string(),
            );
        }
        if m.keep_alive < Duration::from_secs(1) {
            self.problem("mqtt.keep_alive must be at least 1s".to_string());
        }
        let client_id = m
            .client_id
            .unwrap_or_else(|| format!("wp-{}-{}", gateway.tenant, gateway.id));
        if client_id.is_empty() || client_id.len() > 128 {
            self.problem("mqtt.client_id must be 1-128 characters".to_string());
        }
        Some(MqttSettings {
            host,
            port,
            tls,
            client_id,
            username: m.username,
            password: m.password,
            keep_alive: m.keep_alive,
            inflight_window: m.inflight_window,
            ack_timeout: m.ack_timeout,
            backlog_pace: m.backlog_pace,
            live_window: m.live_window,
            reconnect_min: m.reconnect_min,
            reconnect_max: m.reconnect_max,
        })
    }

    fn tls(&mut self, t: TlsSection) -> TlsSection {
        if t.client_cert.is_some() != t.client_key.is_some() {
            self.problem(
                "mqtt.tls.client_cert and mqtt.tls.client_key must be set together".to_string(),
            );
        }
        TlsSection {
            ca_file: self.path(&t.ca_file),
            client_cert: t.client_cert.map(|p| self.path(&p)),
            client_key: t.client_key.map(|p| self.path(&p)),
        }
    }

    fn buffer(&mut self, b: BufferSection) -> BufferSettings {
        if b.max_bytes < 64 * 1024 {
            self.problem(format!(
                "buffer.max_bytes {} is too small (minimum 65536)",
                b.max_bytes
            ));
        }
        if b.max_age < Duration::from_secs(60) {
            self.problem("buffer.max_age must be at least 60s".to_string());
        }
        if b.flush_interval < Duration::from_millis(10)
            || b.flush_interval > Duration::from_secs(3600)
        {
            self.problem("buffer.flush_interval must be between 10ms and 1h".to_string());
        }
        if b.flush_quiet < Duration::from_millis(1) {
            self.problem("buffer.flush_quiet must be at least 1ms".to_string());
        }
        if b.max_samples_per_batch == 0 {
            self.problem("buffer.max_samples_per_batch must be at least 1".to_string());
        }
        BufferSettings {
            max_bytes: b.max_bytes,
            max_age: b.max_age,
            flush_interval: b.flush_interval,
            flush_quiet: b.flush_quiet.min(b.flush_interval),
            max_samples_per_batch: b.max_samples_per_batch,
        }
    }

    /// Profiles from `gateway.profile_dir`, by file stem.
    fn extra_profiles(&mut self, dir: Option<&Path>) -> HashMap<String, Arc<Profile>> {
        let Some(dir) = dir else {
            return HashMap::new();
        };
        let dir = self.path(dir);
        match firmware_profiles::load_dir(&dir) {
            Ok(list) => list
                .into_iter()
                .map(|(id, profile)| (id, Arc::new(profile)))
                .collect(),
            Err(e) => {
                self.problem(format!("gateway.profile_dir {}: {e}", dir.display()));
                HashMap::new()
            }
        }
    }

    /// Finds a device's profile: `profile_file`, else `profile_dir`, else built-in.
    fn profile(
        &mut self,
        section: &DeviceSection,
        extra: &HashMap<String, Arc<Profile>>,
    ) -> Option<(String, Arc<Profile>)> {
        let who = format!("device {:?}", section.name);
        match (&section.profile, &section.profile_file) {
            (Some(id), None) => {
                if let Some(profile) = extra.get(id) {
                    return Some((id.clone(), Arc::clone(profile)));
                }
                if let Some(cached) = self.profile_cache.get(id) {
                    return cached.clone();
                }
                let found =
                    firmware_profiles::builtin_profile(id).map(|p| (id.clone(), Arc::new(p)));
                if found.is_none() {
                    let mut known: Vec<&str> = firmware_profiles::builtin()
                        .iter()
                        .map(|(id, _)| *id)
                        .collect();
                    known.extend(extra.keys().map(String::as_str));
                    known.sort_unstable();
                    self.problem(format!(
                        "{who}: unknown profile {id:?} (known: {})",
                        known.join(", ")
                    ));
                }
                self.profile_cache.insert(id.clone(), found.clone());
                found
            }
            (None, Some(file)) => {
                let path = self.path(file);
                let key = path.display().to_string();
                if let Some(cached) = self.profile_cache.get(&key) {
                    return cached.clone();
                }
                let found = match firmware_profiles::load_profile(&path) {
                    Ok(profile) => {
                        let id = path
                            .file_stem()
                            .map(|s| s.to_string_lossy().into_owned())
                            .unwrap_or_else(|| key.clone());
                        Some((id, Arc::new(profile)))
                    }
                    Err(e) => {
                        self.problem(format!("{who}: {e}"));
                        None
                    }
                };
                self.profile_cache.insert(key, found.clone());
                found
            }
            (Some(_), Some(_)) => {
                self.problem(format!(
                    "{who}: set either profile or profile_file, not both"
                ));
                None
            }
            (None, None) => {
                self.problem(format!("{who}: profile or profile_file is required"));
                None
            }
        }
    }

    fn device(
        &mut self,
        alias: u16,
        section: DeviceSection,
        bus_names: &[String],
        extra: &HashMap<String, Arc<Profile>>,
    ) -> Option<DeviceSettings> {
        let who = format!("device {:?}", section.name);
        if let Err(e) = validate_device_name(&section.name) {
            self.problem(e);
        }
        let transport = self.transport(&who, &section, bus_names);
        let (profile_id, profile) = self.profile(&section, extra)?;
        let poll = self.poll_groups(&who, &section, &profile);
        if section.heartbeat < Duration::from_secs(1) {
            self.problem(format!("{who}: heartbeat must be at least 1s"));
        }
        let timeout = section.timeout.unwrap_or(profile.transport.timeout);
        if timeout < Duration::from_millis(10) || timeout > Duration::from_secs(60) {
            self.problem(format!("{who}: timeout must be between 10ms and 60s"));
        }
        if let Some(stale) = section.stale_after
            && let Some(longest) = poll.iter().map(|g| g.interval).max()
            && stale <= longest
        {
            self.problem(format!(
                "{who}: stale_after ({}) must be longer than the slowest poll interval ({})",
                humantime::format_duration(stale),
                humantime::format_duration(longest)
            ));
        }
        let unit_id = section.unit_id.unwrap_or(profile.transport.unit_id);
        let plan = match plan::plan_device(&profile, &poll) {
            Ok(plan) => plan,
            Err(e) => {
                self.problem(format!("{who}: profile {profile_id:?}: {e}"));
                return None;
            }
        };
        Some(DeviceSettings {
            alias,
            name: section.name,
            profile_id,
            profile,
            transport: transport?,
            unit_id,
            poll,
            timeout,
            heartbeat: section.heartbeat,
            stale_after: section.stale_after,
            well: section.well,
            plan,
        })
    }

    fn transport(
        &mut self,
        who: &str,
        section: &DeviceSection,
        bus_names: &[String],
    ) -> Option<Transport> {
        match (&section.tcp, &section.rtu) {
            (Some(endpoint), None) => match parse_host_port(endpoint) {
                Ok((host, port)) => Some(Transport::Tcp { host, port }),
                Err(e) => {
                    self.problem(format!("{who}: tcp {e}"));
                    None
                }
            },
            (None, Some(bus)) => match bus_names.iter().position(|b| b == bus) {
                Some(index) => Some(Transport::Rtu { bus: index }),
                None => {
                    self.problem(format!(
                        "{who}: unknown bus {bus:?} (configured buses: {})",
                        if bus_names.is_empty() {
                            "none".to_string()
                        } else {
                            bus_names.join(", ")
                        }
                    ));
                    None
                }
            },
            (Some(_), Some(_)) => {
                self.problem(format!("{who}: set either tcp or rtu, not both"));
                None
            }
            (None, None) => {
                self.problem(format!(
                    "{who}: tcp = \"host:port\" or rtu = \"bus\" is required"
                ));
                None
            }
        }
    }

    /// Matches the device's `poll` table against the poll groups its profile uses
    /// (string info tags are read once per session and need no group).
    fn poll_groups(
        &mut self,
        who: &str,
        section: &DeviceSection,
        profile: &Profile,
    ) -> Vec<PollGroup> {
        let used: BTreeSet<&str> = profile
            .tags
            .iter()
            .filter(|t| !matches!(t.data_type, DataType::String { .. }))
            .map(|t| t.poll_group.as_str())
            .collect();
        let mut groups = Vec::with_capacity(used.len());
        for group in &used {
            match section.poll.get(*group) {
                Some(interval) if interval.into_inner() < Duration::from_millis(100) => {
                    self.problem(format!(
                        "{who}: poll.{group} must be at least 100ms"
                    ));
                }
                Some(interval) => groups.push(PollGroup {
                    name: (*group).to_string(),
                    interval: interval.into_inner(),
                }),
                None => self.problem(format!(
                    "{who}: no poll interval for group {group:?} used by profile {:?} (add it to poll = {{ ... }})",
                    profile.model
                )),
            }
        }
        for name in section.poll.keys() {
            if !used.contains(name.as_str()) {
                self.problem(format!(
                    "{who}: poll group {name:?} is not used by its profile (groups: {})",
                    used.iter().copied().collect::<Vec<_>>().join(", ")
                ));
            }
        }
        groups
    }

    /// Resolves buses, filling unset serial parameters from the profiles of their devices.
    fn buses(&mut self, sections: Vec<BusSection>, devices: &[DeviceSettings]) -> Vec<BusSettings> {
        let mut seen = BTreeSet::new();
        let mut buses = Vec::with_capacity(sections.len());
        for (index, b) in sections.into_iter().enumerate() {
            let who = format!("bus {:?}", b.name);
            if b.name.is_empty() || !seen.insert(b.name.clone()) {
                self.problem(format!("{who}: bus names must be unique and non-empty"));
            }
            let on_bus: Vec<&DeviceSettings> = devices
                .iter()
                .filter(|d| d.transport == Transport::Rtu { bus: index })
                .collect();
            let mut units = BTreeMap::new();
            for d in &on_bus {
                if let Some(other) = units.insert(d.unit_id, &d.name) {
                    self.problem(format!(
                        "{who}: devices {other:?} and {:?} share unit id {}",
                        d.name, d.unit_id
                    ));
                }
            }
            let baud = self.bus_param(&who, "baud", b.baud, &on_bus, |p| p.transport.baud_rate);
            let parity = self.bus_param(&who, "parity", b.parity, &on_bus, |p| {
                parity_from_profile(p.transport.parity)
            });
            let data_bits = self.bus_param(&who, "data_bits", b.data_bits, &on_bus, |p| {
                p.transport.data_bits
            });
            let stop_bits = self.bus_param(&who, "stop_bits", b.stop_bits, &on_bus, |p| {
                p.transport.stop_bits
            });
            if !matches!(data_bits, 7 | 8) {
                self.problem(format!("{who}: data_bits must be 7 or 8"));
            }
            if !matches!(stop_bits, 1 | 2) {
                self.problem(format!("{who}: stop_bits must be 1 or 2"));
            }
            if baud == 0 {
                self.problem(format!("{who}: baud must be greater than zero"));
            }
            let gap = frame_gap(baud.max(1), data_bits, parity, stop_bits);
            buses.push(BusSettings {
                name: b.name,
                port: self.path(&b.port),
                baud,
                parity,
                data_bits,
                stop_bits,
                inter_request_delay: b.inter_request_delay + gap,
            });
        }
        buses
    }

    /// An explicit bus parameter, or the value all the bus's device profiles agree on.
    fn bus_param<T: Copy + PartialEq + fmt::Debug + Default>(
        &mut self,
        who: &str,
        field: &str,
        explicit: Option<T>,
        devices: &[&DeviceSettings],
        from_profile: impl Fn(&Profile) -> T,
    ) -> T {
        if let Some(value) = explicit {
            return value;
        }
        let mut values = devices.iter().map(|d| (d, from_profile(&d.profile)));
        let Some((first_device, first)) = values.next() else {
            self.problem(format!(
                "{who}: {field} must be set (no device on this bus)"
            ));
            return T::default();
        };
        if let Some((device, other)) = values.find(|(_, v)| *v != first) {
            self.problem(format!(
                "{who}: profiles of devices {:?} ({first:?}) and {:?} ({other:?}) disagree on {field}; set {field} on the bus",
                first_device.name, device.name
            ));
        }
        first
    }
}

/// The RTU inter-frame silence: 3.5 character times (fixed 1.75 ms above 19200 baud,
/// as the Modbus serial line spec allows).
pub fn frame_gap(baud: u32, data_bits: u8, parity: ParitySetting, stop_bits: u8) -> Duration {
    if baud > 19_200 {
        return Duration::from_micros(1750);
    }
    let parity_bits = u32::from(parity != ParitySetting::None);
    let bits_per_char = 1 + u32::from(data_bits) + parity_bits + u32::from(stop_bits);
    Duration::from_micros(u64::from(bits_per_char) * 3_500_000 / u64::from(baud) + 1)
}

fn parity_from_profile(p: firmware_profiles::Parity) -> ParitySetting {
    match p {
        firmware_profiles::Parity::None => ParitySetting::None,
        firmware_profiles::Parity::Even => ParitySetting::Even,
        firmware_profiles::Parity::Odd => ParitySetting::Odd,
    }
}
