//! Operational metrics: the `/metrics` endpoint in the Prometheus / OpenMetrics text format,
//! encoded by the `prometheus-client` crate.
//!
//! Nothing is copied here: one [`Collector`] ([`Sources`]) reads every figure from its
//! owner at scrape time — device counters from [`crate::poller::DeviceMetrics`] (lock-free
//! atomics the pollers fill), batcher counters, [`crate::buffer::Buffer::stats`] and
//! [`crate::uplink::UplinkStats`] — so /metrics always shows the current state and
//! recording a figure never costs more than an atomic add.
//!
//! Metric names and labels are the agent's stable interface (dashboards, alerts, tests):
//! counters are declared without their `_total` suffix, which the encoder appends.
//!
//! The endpoint is a deliberately minimal HTTP/1.1 server on a `tokio` `TcpListener`
//! (`GET /metrics`, `GET /healthz`, anything else 404; one request per connection, request
//! head capped at 8 KiB and 5 s): the agent runs on small gateways, and a full HTTP stack
//! would cost more memory than everything else it does.
//!
//! `/healthz` answers `ok`, or `degraded: <reasons>` while the buffer is losing data or
//! cannot write (disk full and its cap, failing writes, drops within the last ten minutes;
//! see [`crate::buffer::Buffer::health`]), always with status 200: the agent is alive and
//! polling, and a restart would not give the disk space back. `wellpulse_buffer_degraded`
//! is the same as a gauge.

use std::fmt::Error as FmtError;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::batcher::BatcherStats;
use crate::buffer::Buffer;
use crate::clock::now_ms;
use crate::poller::DeviceMetrics;
use crate::poller::counters::HistogramSnapshot;
use crate::uplink::UplinkStats;

/// Content type of the OpenMetrics text exposition.
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Everything /metrics reports, read at scrape time.
#[derive(Debug)]
pub struct Sources {
    /// Per-device counters, in device alias order.
    pub devices: Vec<Arc<DeviceMetrics>>,
    /// Batcher counters.
    pub batcher: Arc<BatcherStats>,
    /// The durable buffer.
    pub buffer: Arc<Buffer>,
    /// Current session id.
    pub boot_id: u64,
    /// Uplink counters, once the uplink started.
    pub uplink: OnceLock<Arc<UplinkStats>>,
}

/// A registry whose only collector reads `sources` at every scrape.
pub fn registry(sources: Arc<Sources>) -> Registry {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(sources));
    registry
}

/// Encodes every metric of `registry` in the OpenMetrics text format.
pub fn render(registry: &Registry) -> String {
    let mut out = String::with_capacity(16 * 1024);
    if let Err(e) = prometheus_client::encoding::text::encode(&mut out, registry) {
        // Writing into a String cannot fail; an encoder error would be a bug there.
        tracing::error!(error = %e, "cannot encode metrics");
    }
    out
}

impl Collector for Sources {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), FmtError> {
        encode_devices(&mut encoder, &self.devices)?;
        encode_pipeline(&mut encoder, self)?;
        if let Some(uplink) = self.uplink.get() {
            encode_uplink(&mut encoder, uplink)?;
        }
        Ok(())
    }
}

/// A family of one unlabelled value. `name` of a counter is without `_total`.
fn single(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    kind: MetricType,
    help: &str,
    value: u64,
) -> Result<(), FmtError> {
    let metric = encoder.encode_descriptor(name, help, None, kind)?;
    value_of(kind, value, metric)
}

fn value_of(kind: MetricType, value: u64, metric: MetricEncoder<'_>) -> Result<(), FmtError> {
    match kind {
        MetricType::Counter => ConstCounter::new(value).encode(metric),
        _ => ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX)).encode(metric),
    }
}

/// A family with one series per `(label value, value)`.
fn labelled(
    encoder: &mut DescriptorEncoder<'_>,
    (name, kind, help): (&str, MetricType, &str),
    label: &str,
    series: impl IntoIterator<Item = (String, u64)>,
) -> Result<(), FmtError> {
    let mut family = encoder.encode_descriptor(name, help, None, kind)?;
    for (value_label, value) in series {
        let labels = [(label, value_label.as_str())];
        value_of(kind, value, family.encode_family(&labels)?)?;
    }
    Ok(())
}

const COUNTER: MetricType = MetricType::Counter;
const GAUGE: MetricType = MetricType::Gauge;

fn encode_uplink(encoder: &mut DescriptorEncoder<'_>, u: &UplinkStats) -> Result<(), FmtError> {
    let rows: [(&str, MetricType, &str, u64); 11] = [
        (
            "wellpulse_mqtt_connected",
            GAUGE,
            "1 while an MQTT session is up.",
            u64::from(u.connected.load(Relaxed)),
        ),
        (
            "wellpulse_mqtt_reconnects",
            COUNTER,
            "MQTT connections after the first.",
            u.reconnects.load(Relaxed),
        ),
        (
            "wellpulse_uplink_in_flight_batches",
            GAUGE,
            "Batches published and not yet acked by the cloud.",
            u.in_flight.load(Relaxed),
        ),
        (
            "wellpulse_uplink_batches_sent",
            COUNTER,
            "Data batches published.",
            u.batches_sent.load(Relaxed),
        ),
        (
            "wellpulse_uplink_resends",
            COUNTER,
            "Batches re-sent after an ack timeout or a retryable rejection.",
            u.resends.load(Relaxed),
        ),
        (
            "wellpulse_uplink_acks",
            COUNTER,
            "Cloud ack messages received.",
            u.acks_received.load(Relaxed),
        ),
        (
            "wellpulse_uplink_samples_acked",
            COUNTER,
            "Samples deleted from the buffer by cloud acks.",
            u.samples_acked.load(Relaxed),
        ),
        (
            "wellpulse_uplink_last_ack_timestamp_seconds",
            GAUGE,
            "Time of the last cloud ack (Unix seconds).",
            u.last_ack_ms.load(Relaxed) / 1000,
        ),
        (
            "wellpulse_uplink_publish_errors",
            COUNTER,
            "Publishes the MQTT client refused.",
            u.publish_errors.load(Relaxed),
        ),
        (
            "wellpulse_uplink_cloud_online_ingesters",
            GAUGE,
            "Ingesters whose last retained state says online (0 also before any state).",
            u.cloud_online_ingesters.load(Relaxed),
        ),
        (
            "wellpulse_uplink_cloud_online_resends",
            COUNTER,
            "Times every unacked batch was re-sent at once because an ingester came online.",
            u.cloud_online_resends.load(Relaxed),
        ),
    ];
    for (name, kind, help, value) in rows {
        single(encoder, name, kind, help, value)?;
    }
    labelled(
        encoder,
        (
            "wellpulse_uplink_batches_rejected",
            COUNTER,
            "Batches the cloud refused for good, set aside and never re-sent, by reason.",
        ),
        "reason",
        UplinkStats::by_reason(&u.rejected),
    )?;
    labelled(
        encoder,
        (
            "wellpulse_uplink_batches_retry_rejected",
            COUNTER,
            "In-flight batches the cloud refused for now, re-sent after a backoff, by reason.",
        ),
        "reason",
        UplinkStats::by_reason(&u.retry_rejected),
    )?;
    labelled(
        encoder,
        (
            "wellpulse_uplink_messages_unauthenticated",
            COUNTER,
            "Acks and commands ignored because their seal did not verify (forged, altered, \
             from another gateway's topic or sealed with another key), by topic kind.",
        ),
        "kind",
        UplinkStats::by_reason(&u.unauthenticated),
    )?;
    labelled(
        encoder,
        (
            "wellpulse_uplink_commands_refused",
            COUNTER,
            "Authenticated commands not executed (expired, expiry too far ahead, replayed id, \
             too many remembered), by reason.",
        ),
        "reason",
        UplinkStats::by_reason(&u.commands_refused),
    )?;
    labelled(
        encoder,
        (
            "wellpulse_uplink_cloud_states_ignored",
            COUNTER,
            "Cloud state messages ignored: stale (an older session or a repeat) or malformed.",
        ),
        "reason",
        UplinkStats::by_reason(&u.cloud_states_ignored),
    )
}

type Counter = fn(&DeviceMetrics) -> &AtomicU64;

const DEVICE_COUNTERS: [(&str, &str, Counter); 11] = [
    ("wellpulse_device_requests", "Modbus requests sent.", |m| {
        &m.requests
    }),
    (
        "wellpulse_device_timeouts",
        "Requests without an answer in time.",
        |m| &m.timeouts,
    ),
    (
        "wellpulse_device_exceptions",
        "Requests answered with a Modbus exception.",
        |m| &m.exceptions,
    ),
    (
        "wellpulse_device_transport_errors",
        "Connection or framing failures.",
        |m| &m.transport_errors,
    ),
    (
        "wellpulse_device_decode_errors",
        "Tag values that could not be decoded.",
        |m| &m.decode_errors,
    ),
    (
        "wellpulse_device_reconnects",
        "Successful connects after a lost link.",
        |m| &m.reconnects,
    ),
    (
        "wellpulse_device_connect_failures",
        "Failed connect or session-start attempts.",
        |m| &m.connect_failures,
    ),
    (
        "wellpulse_device_samples",
        "Samples emitted after report by exception.",
        |m| &m.samples,
    ),
    (
        "wellpulse_device_frames_dropped",
        "Frames dropped because the batcher queue was full.",
        |m| &m.frames_dropped,
    ),
    (
        "wellpulse_device_setpoint_writes_ok",
        "Verified setpoint writes.",
        |m| &m.writes_ok,
    ),
    (
        "wellpulse_device_setpoint_writes_failed",
        "Refused or failed setpoint writes.",
        |m| &m.writes_failed,
    ),
];

fn encode_devices(
    encoder: &mut DescriptorEncoder<'_>,
    devices: &[Arc<DeviceMetrics>],
) -> Result<(), FmtError> {
    let by_device = |f: &dyn Fn(&DeviceMetrics) -> u64| -> Vec<(String, u64)> {
        devices.iter().map(|d| (d.name.clone(), f(d))).collect()
    };
    for (name, help, counter) in DEVICE_COUNTERS {
        let series = by_device(&|d| counter(d).load(Relaxed));
        labelled(encoder, (name, COUNTER, help), "device", series)?;
    }
    let up = by_device(&|d| u64::from(d.up.load(Relaxed)));
    labelled(
        encoder,
        (
            "wellpulse_device_up",
            GAUGE,
            "1 when the last exchange with the device worked.",
        ),
        "device",
        up,
    )?;
    let mut family = encoder.encode_descriptor(
        "wellpulse_device_poll_latency_seconds",
        "Round-trip time of successful read requests.",
        None,
        MetricType::Histogram,
    )?;
    for d in devices {
        let labels = [("device", d.name.as_str())];
        encode_histogram(family.encode_family(&labels)?, &d.latency.snapshot())?;
    }
    Ok(())
}

fn encode_histogram(mut metric: MetricEncoder<'_>, h: &HistogramSnapshot) -> Result<(), FmtError> {
    metric.encode_histogram::<NoLabelSet>(h.sum, h.count, &h.buckets, None)
}

fn encode_pipeline(encoder: &mut DescriptorEncoder<'_>, s: &Sources) -> Result<(), FmtError> {
    let b = &s.batcher;
    let stats = s.buffer.stats();
    let status = stats.status(now_ms());
    let rows: [(&str, MetricType, &str, u64); 17] = [
        (
            "wellpulse_batches_appended",
            COUNTER,
            "Batches committed to the buffer.",
            b.batches.load(Relaxed),
        ),
        (
            "wellpulse_samples_appended",
            COUNTER,
            "Samples committed to the buffer.",
            b.samples.load(Relaxed),
        ),
        (
            "wellpulse_batch_bytes_appended",
            COUNTER,
            "Encoded sample bytes committed to the buffer.",
            b.bytes.load(Relaxed),
        ),
        (
            "wellpulse_buffer_append_errors",
            COUNTER,
            "Failed buffer appends (retried).",
            b.append_errors.load(Relaxed),
        ),
        (
            "wellpulse_batcher_samples_dropped",
            COUNTER,
            "Samples lost before reaching the buffer.",
            b.samples_dropped.load(Relaxed),
        ),
        (
            "wellpulse_births_stored",
            COUNTER,
            "Births stored (session start and device information changes).",
            b.births.load(Relaxed),
        ),
        (
            "wellpulse_buffer_pending_batches",
            GAUGE,
            "Batches waiting for a cloud ack.",
            stats.pending_batches,
        ),
        (
            "wellpulse_buffer_pending_samples",
            GAUGE,
            "Samples waiting for a cloud ack.",
            stats.pending_samples,
        ),
        (
            "wellpulse_buffer_pending_bytes",
            GAUGE,
            "Stored bytes waiting for a cloud ack.",
            stats.pending_bytes,
        ),
        (
            "wellpulse_buffer_oldest_age_seconds",
            GAUGE,
            "Age of the oldest unacknowledged batch.",
            status.oldest_age_ms / 1000,
        ),
        (
            "wellpulse_buffer_dropped_batches",
            COUNTER,
            "Batches dropped by buffer limits, a full disk or damage (durable).",
            stats.dropped_batches,
        ),
        (
            "wellpulse_buffer_dropped_samples",
            COUNTER,
            "Samples dropped by buffer limits, a full disk or damage (durable).",
            stats.dropped_samples,
        ),
        (
            "wellpulse_buffer_damaged_batches",
            COUNTER,
            "Of the dropped batches, those lost to damage (validation, salvage).",
            stats.damaged_batches,
        ),
        (
            "wellpulse_buffer_degraded",
            GAUGE,
            "1 while /healthz says degraded (disk full, failing writes, recent drops).",
            u64::from(!s.buffer.health().is_empty()),
        ),
        (
            "wellpulse_buffer_set_aside_batches",
            GAUGE,
            "Batches the cloud refused for good, kept for inspection.",
            stats.set_aside_batches,
        ),
        (
            "wellpulse_buffer_set_aside_bytes",
            GAUGE,
            "Stored bytes of set-aside batches (counted against the buffer limit).",
            stats.set_aside_bytes,
        ),
        (
            "wellpulse_buffer_set_aside_dropped",
            COUNTER,
            "Set-aside batches dropped by buffer limits.",
            stats.set_aside_dropped,
        ),
    ];
    for (name, kind, help, value) in rows {
        single(encoder, name, kind, help, value)?;
    }
    let dropped: u64 = s
        .devices
        .iter()
        .map(|d| d.frames_dropped.load(Relaxed))
        .sum();
    single(
        encoder,
        "wellpulse_frames_dropped",
        COUNTER,
        "Frames dropped at the batcher queue, all devices.",
        dropped,
    )?;
    let mut info = encoder.encode_descriptor(
        "wellpulse_agent_info",
        "Agent version and session.",
        None,
        GAUGE,
    )?;
    let boot_id = wire::HexId(s.boot_id).to_string();
    let epoch = wire::HexId(s.buffer.stats().epoch).to_string();
    let labels = [
        ("version", env!("CARGO_PKG_VERSION")),
        ("boot_id", boot_id.as_str()),
        ("buffer_epoch", epoch.as_str()),
    ];
    ConstGauge::new(1i64).encode(info.encode_family(&labels)?)
}

/// Longest request head accepted.
const MAX_REQUEST: usize = 8 * 1024;
/// Time a client gets to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves `/metrics` and `/healthz` until the task is aborted. Connection handlers live
/// in a `JoinSet` owned by this future, so aborting it also ends them (and releases the
/// buffer they reference).
pub async fn serve(listener: TcpListener, sources: Arc<Sources>) {
    let buffer = Arc::clone(&sources.buffer);
    let registry = Arc::new(registry(sources));
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let registry = Arc::clone(&registry);
                    let buffer = Arc::clone(&buffer);
                    connections.spawn(async move {
                        if let Err(e) = handle(stream, &registry, &buffer).await {
                            tracing::debug!(error = %e, "metrics request failed");
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "metrics listener accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// The `/healthz` body: `ok`, or `degraded: ` and why (the buffer is losing data or
/// cannot write). Always 200: the agent is alive and still polling, and restarting it
/// would not give the disk space back.
pub fn health_body(buffer: &Buffer) -> String {
    let reasons = buffer.health();
    if reasons.is_empty() {
        "ok\n".to_string()
    } else {
        format!("degraded: {}\n", reasons.join("; "))
    }
}

async fn handle(
    mut stream: TcpStream,
    registry: &Registry,
    buffer: &Buffer,
) -> std::io::Result<()> {
    let head = tokio::time::timeout(REQUEST_TIMEOUT, read_head(&mut stream))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "request timeout"))??;
    let mut parts = head.split_ascii_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = path.split('?').next().unwrap_or("");
    let (status, content_type, body) = match (method, path) {
        ("GET", "/metrics") => ("200 OK", CONTENT_TYPE, render(registry)),
        ("GET", "/healthz") => ("200 OK", "text/plain", health_body(buffer)),
        ("GET", _) => ("404 Not Found", "text/plain", "not found\n".to_string()),
        _ => (
            "405 Method Not Allowed",
            "text/plain",
            "method not allowed\n".to_string(),
        ),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

/// Reads the request line and headers (up to the blank line).
async fn read_head(stream: &mut TcpStream) -> std::io::Result<String> {
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 512];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.len() > MAX_REQUEST {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "request too large",
            ));
        }
    }
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buffer::BufferLimits;

    fn sources(devices: Vec<Arc<DeviceMetrics>>, dir: &std::path::Path) -> Arc<Sources> {
        let limits = BufferLimits {
            max_bytes: 1 << 20,
            max_age: Duration::from_secs(3600),
        };
        let buffer = Buffer::open(&dir.join("b.redb"), limits).expect("buffer");
        Arc::new(Sources {
            devices,
            batcher: Arc::new(BatcherStats::default()),
            buffer: Arc::new(buffer),
            boot_id: 0xabc,
            uplink: OnceLock::new(),
        })
    }

    /// The value of the series `line_prefix` (name and labels).
    fn value(out: &str, series: &str) -> f64 {
        out.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("no {series} in\n{out}"))
            .parse()
            .expect("a number")
    }

    #[test]
    fn names_labels_and_histograms_keep_their_exposition() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = Arc::new(DeviceMetrics::new("pump-1"));
        let b = Arc::new(DeviceMetrics::new("tank-1"));
        a.timeouts.fetch_add(3, Relaxed);
        b.up.store(true, Relaxed);
        for ms in [0.5, 3.0, 3.0, 40.0, 20_000.0] {
            a.latency.observe(Duration::from_secs_f64(ms / 1000.0));
        }
        let s = sources(vec![a, b], dir.path());
        let uplink = Arc::new(UplinkStats::default());
        UplinkStats::add_reason(&uplink.rejected, "seq_conflict", 2);
        UplinkStats::add_reason(&uplink.unauthenticated, "ack", 3);
        UplinkStats::add_reason(&uplink.commands_refused, "replayed", 1);
        UplinkStats::add_reason(&uplink.cloud_states_ignored, "stale", 4);
        uplink.cloud_online_ingesters.store(2, Relaxed);
        s.uplink.set(uplink).expect("once");
        let out = render(&registry(Arc::clone(&s)));
        assert_eq!(
            value(
                &out,
                "wellpulse_uplink_messages_unauthenticated_total{kind=\"ack\"}"
            ),
            3.0
        );
        assert_eq!(
            value(
                &out,
                "wellpulse_uplink_commands_refused_total{reason=\"replayed\"}"
            ),
            1.0
        );
        assert_eq!(
            value(
                &out,
                "wellpulse_uplink_cloud_states_ignored_total{reason=\"stale\"}"
            ),
            4.0
        );
        assert_eq!(value(&out, "wellpulse_uplink_cloud_online_ingesters"), 2.0);
        assert_eq!(
            value(&out, "wellpulse_uplink_cloud_online_resends_total"),
            0.0
        );

        assert!(out.contains("# TYPE wellpulse_device_timeouts counter"));
        assert_eq!(
            value(&out, "wellpulse_device_timeouts_total{device=\"pump-1\"}"),
            3.0
        );
        assert_eq!(
            value(&out, "wellpulse_device_timeouts_total{device=\"tank-1\"}"),
            0.0
        );
        assert_eq!(value(&out, "wellpulse_device_up{device=\"tank-1\"}"), 1.0);
        let bucket = |le: &str| {
            value(
                &out,
                &format!(
                    "wellpulse_device_poll_latency_seconds_bucket{{le=\"{le}\",device=\"pump-1\"}}"
                ),
            )
        };
        assert_eq!(bucket("0.001"), 1.0);
        assert_eq!(bucket("0.005"), 3.0);
        assert_eq!(bucket("0.05"), 4.0);
        assert_eq!(bucket("10.0"), 4.0);
        assert_eq!(bucket("+Inf"), 5.0);
        assert_eq!(
            value(
                &out,
                "wellpulse_device_poll_latency_seconds_count{device=\"pump-1\"}"
            ),
            5.0
        );
        let sum = value(
            &out,
            "wellpulse_device_poll_latency_seconds_sum{device=\"pump-1\"}",
        );
        assert!((sum - 20.0465).abs() < 1e-9, "{sum}");
        assert_eq!(value(&out, "wellpulse_buffer_pending_batches"), 0.0);
        assert_eq!(value(&out, "wellpulse_buffer_set_aside_batches"), 0.0);
        assert_eq!(value(&out, "wellpulse_mqtt_connected"), 0.0);
        assert_eq!(value(&out, "wellpulse_uplink_acks_total"), 0.0);
        assert_eq!(
            value(
                &out,
                "wellpulse_uplink_batches_rejected_total{reason=\"seq_conflict\"}"
            ),
            2.0
        );
        assert!(out.contains("wellpulse_agent_info{version=\""));
        let epoch = format!("{:016x}", s.buffer.stats().epoch);
        assert!(out.contains(&format!(
            "boot_id=\"0000000000000abc\",buffer_epoch=\"{epoch}\"}} 1"
        )));
        assert!(out.ends_with("# EOF\n"));
        // Every sample line belongs to a declared family.
        for line in out.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split(['{', ' ']).next().expect("a name");
            let family = ["_bucket", "_sum", "_count", "_total"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .unwrap_or(name);
            assert!(out.contains(&format!("# TYPE {family} ")), "{line}");
        }
    }

    #[test]
    fn reason_labels_are_capped() {
        let stats = UplinkStats::default();
        for i in 0..40 {
            UplinkStats::add_reason(&stats.rejected, &format!("r{i}"), 1);
        }
        UplinkStats::add_reason(&stats.rejected, "r0", 1);
        let counts = UplinkStats::by_reason(&stats.rejected);
        assert_eq!(counts.len(), 33, "32 reasons and other");
        assert!(counts.contains(&("other".to_owned(), 8)));
        assert!(counts.contains(&("r0".to_owned(), 2)));
    }
}
