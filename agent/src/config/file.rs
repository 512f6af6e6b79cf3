//! The configuration file schema: the only serde types of the agent's configuration (the
//! file is a boundary). Every struct has `deny_unknown_fields`, so a typo is an error rather
//! than a silently ignored setting; durations are humantime strings with units (`"500ms"`,
//! `"60s"`, `"7d"`). Defaults come from [`super::defaults`].

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::Secret;
use super::defaults;

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
    /// Username for broker authentication: `{tenant}/{gateway id}`, the default (the
    /// brokers confine a gateway to its own topics by that name); anything else is refused.
    #[serde(default)]
    pub username: Option<String>,
    /// The gateway secret issued by the cloud (never logged); required, because acks and
    /// commands are authenticated with a key derived from it.
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
    /// Longest delay between reconnect attempts (default 1 s). Each delay is drawn from
    /// its upper half (equal jitter), so after a broker restart the agent is back within
    /// this, and a fleet's reconnects are spread over half of it rather than arriving at
    /// once. On cellular links a failed attempt against an unreachable broker costs a TCP
    /// SYN and its reset or timeout (about a hundred bytes; ~0.4 MB per hour of outage at
    /// one attempt per second), and the radio stays awake anyway while the agent polls
    /// and buffers, so a short ceiling costs little; a long one (30 s) made a broker
    /// restart cost 15 s of delivery on average. Raise it where every connection attempt
    /// is metered or where thousands of gateways share one broker and it should not take
    /// their TLS handshakes within one second.
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
    /// a batch: the live latency bound of a sparse site (a busy one cuts earlier, see
    /// `flush_quiet` and `flush_min_samples`), and what a hard crash can lose.
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
    /// The quiet cut (`flush_quiet`) applies only once a batch holds this many samples; a
    /// smaller batch keeps collecting poll cycles until `flush_interval`, so a sparse
    /// (deadbanded) site pays its per-batch overhead once per `flush_interval` instead of
    /// once per poll. 1 cuts every poll cycle.
    #[serde(default = "defaults::flush_min_samples")]
    pub flush_min_samples: u32,
}

impl Default for BufferSection {
    fn default() -> Self {
        Self {
            max_bytes: defaults::max_bytes(),
            max_age: defaults::max_age(),
            flush_interval: defaults::flush_interval(),
            flush_quiet: defaults::flush_quiet(),
            max_samples_per_batch: defaults::max_samples_per_batch(),
            flush_min_samples: defaults::flush_min_samples(),
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
