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
//!
//! # Layout
//!
//! | module | subject |
//! |---|---|
//! | [`file`] | the file schema: the serde `*Section` types, nothing else |
//! | `defaults` | the value of every optional setting |
//! | [`validate`] | resolving and checking a parsed file into [`Config`] |
//! | [`secrets`] | secrets ([`Secret`]) and the file paths a config names (TLS keys and certificates, state and profile directories) |
//! | [`endpoints`] | broker URLs and device `host:port` addresses |
//!
//! The resolved types ([`Config`] and its settings) live here, next to [`Config::load`].

mod defaults;
pub mod endpoints;
pub mod file;
pub mod secrets;
pub mod validate;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use firmware_profiles::Profile;
use sha2::{Digest, Sha256};

use crate::plan::DevicePlan;
pub use crate::plan::PollGroup;
pub use endpoints::{parse_host_port, parse_mqtt_url};
pub use file::{
    BufferSection, BusSection, ConfigFile, DeviceSection, GatewaySection, MetricsSection,
    MqttSection, ParitySetting, TlsSection,
};
pub use secrets::Secret;
use validate::Resolver;
pub use validate::{frame_gap, validate_device_name};

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
    /// Username: always `{tenant}/{gateway id}`.
    pub username: String,
    /// The gateway secret (required; checked non-empty).
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
    /// Samples a batch needs before the quiet cut applies.
    pub flush_min_samples: u32,
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
