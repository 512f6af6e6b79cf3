//! Operational metrics: lock-free counters filled by the pollers and the batcher, and a tiny
//! HTTP endpoint that renders them in the Prometheus text exposition format.
//!
//! Counters are plain atomics (`Relaxed`: each is independent, exact ordering between them
//! does not matter for monitoring), so recording a request costs a few nanoseconds and never
//! blocks a poller. Poll latency is a fixed-bucket histogram per device (seconds, Prometheus
//! `le` buckets from 1 ms to 10 s), which is enough to see a slow device or a saturated bus
//! without keeping samples.
//!
//! Buffer and uplink figures are not copied here: they are read from their owners
//! ([`crate::buffer::Buffer::stats`] and [`crate::uplink::UplinkStats`]) at scrape time,
//! so /metrics always shows the current state.
//!
//! The endpoint is a deliberately minimal HTTP/1.1 server on a `tokio` `TcpListener`
//! (`GET /metrics`, `GET /healthz`, anything else 404; one request per connection, request
//! head capped at 8 KiB and 5 s): the agent runs on small gateways, and a full HTTP stack
//! would cost more memory than everything else it does.

use std::fmt::{self, Write as _};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::batcher::BatcherStats;
use crate::buffer::Buffer;
use crate::poller::now_ms;
use crate::uplink::UplinkStats;

/// Upper bounds (seconds) of the latency histogram buckets.
const LATENCY_BUCKETS: [f64; 11] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 10.0,
];

/// A fixed-bucket latency histogram.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    count: AtomicU64,
    sum_us: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = LATENCY_BUCKETS.iter().position(|&b| secs <= b) {
            self.buckets[i].fetch_add(1, Relaxed);
        }
        self.count.fetch_add(1, Relaxed);
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.sum_us.fetch_add(us, Relaxed);
    }

    /// Number of observations.
    pub fn count(&self) -> u64 {
        self.count.load(Relaxed)
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        for (bound, bucket) in LATENCY_BUCKETS.iter().zip(&self.buckets) {
            cumulative += bucket.load(Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{bound}\"}} {cumulative}");
        }
        let count = self.count();
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {count}");
        let sum = self.sum_us.load(Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
        let _ = writeln!(out, "{name}_count{{{labels}}} {count}");
    }
}

/// Counters of one device, shared between its poller and the metrics endpoint.
#[derive(Debug)]
pub struct DeviceMetrics {
    /// Device name (the `device` label).
    pub name: String,
    /// Read and write requests sent.
    pub requests: AtomicU64,
    /// Requests that got no answer in time.
    pub timeouts: AtomicU64,
    /// Requests answered with a Modbus exception.
    pub exceptions: AtomicU64,
    /// Transport failures (connection reset, bad frame, ...).
    pub transport_errors: AtomicU64,
    /// Tag values that could not be decoded (e.g. NaN floats).
    pub decode_errors: AtomicU64,
    /// Successful connects after the link was lost.
    pub reconnects: AtomicU64,
    /// Failed connect attempts.
    pub connect_failures: AtomicU64,
    /// Samples emitted.
    pub samples: AtomicU64,
    /// Frames dropped because the batcher queue was full.
    pub frames_dropped: AtomicU64,
    /// Setpoint writes that succeeded.
    pub writes_ok: AtomicU64,
    /// Setpoint writes refused or failed.
    pub writes_failed: AtomicU64,
    /// Whether the last exchange with the device succeeded.
    pub up: AtomicBool,
    /// Round-trip time of successful read requests.
    pub latency: Histogram,
}

impl DeviceMetrics {
    /// Zeroed counters for a device.
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            requests: AtomicU64::new(0),
            timeouts: AtomicU64::new(0),
            exceptions: AtomicU64::new(0),
            transport_errors: AtomicU64::new(0),
            decode_errors: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            connect_failures: AtomicU64::new(0),
            samples: AtomicU64::new(0),
            frames_dropped: AtomicU64::new(0),
            writes_ok: AtomicU64::new(0),
            writes_failed: AtomicU64::new(0),
            up: AtomicBool::new(false),
            latency: Histogram::default(),
        }
    }
}

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

/// Appends one metric family header.
fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Appends a family with one unlabelled value.
fn single(out: &mut String, name: &str, kind: &str, help: &str, value: impl fmt::Display) {
    family(out, name, kind, help);
    let _ = writeln!(out, "{name} {value}");
}

/// Renders every metric in the Prometheus text format (version 0.0.4).
pub fn render(sources: &Sources) -> String {
    let mut out = String::with_capacity(4096 + sources.devices.len() * 2048);
    render_devices(&mut out, &sources.devices);
    render_pipeline(&mut out, sources);
    if let Some(uplink) = sources.uplink.get() {
        render_uplink(&mut out, uplink);
    }
    out
}

fn render_uplink(out: &mut String, u: &UplinkStats) {
    let rows: [(&str, &str, &str, u64); 9] = [
        (
            "wellpulse_mqtt_connected",
            "gauge",
            "1 while an MQTT session is up.",
            u64::from(u.connected.load(Relaxed)),
        ),
        (
            "wellpulse_mqtt_reconnects_total",
            "counter",
            "MQTT connections after the first.",
            u.reconnects.load(Relaxed),
        ),
        (
            "wellpulse_uplink_in_flight_batches",
            "gauge",
            "Batches published and not yet acked by the cloud.",
            u.in_flight.load(Relaxed),
        ),
        (
            "wellpulse_uplink_batches_sent_total",
            "counter",
            "Data batches published.",
            u.batches_sent.load(Relaxed),
        ),
        (
            "wellpulse_uplink_resends_total",
            "counter",
            "Batches re-sent after an ack timeout.",
            u.resends.load(Relaxed),
        ),
        (
            "wellpulse_uplink_acks_total",
            "counter",
            "Cloud ack messages received.",
            u.acks_received.load(Relaxed),
        ),
        (
            "wellpulse_uplink_samples_acked_total",
            "counter",
            "Samples deleted from the buffer by cloud acks.",
            u.samples_acked.load(Relaxed),
        ),
        (
            "wellpulse_uplink_last_ack_timestamp_seconds",
            "gauge",
            "Time of the last cloud ack (Unix seconds).",
            u.last_ack_ms.load(Relaxed) / 1000,
        ),
        (
            "wellpulse_uplink_publish_errors_total",
            "counter",
            "Publishes the MQTT client refused.",
            u.publish_errors.load(Relaxed),
        ),
    ];
    for (name, kind, help, value) in rows {
        single(out, name, kind, help, value);
    }
}

type Counter = fn(&DeviceMetrics) -> &AtomicU64;

const DEVICE_COUNTERS: [(&str, &str, Counter); 11] = [
    (
        "wellpulse_device_requests_total",
        "Modbus requests sent.",
        |m| &m.requests,
    ),
    (
        "wellpulse_device_timeouts_total",
        "Requests without an answer in time.",
        |m| &m.timeouts,
    ),
    (
        "wellpulse_device_exceptions_total",
        "Requests answered with a Modbus exception.",
        |m| &m.exceptions,
    ),
    (
        "wellpulse_device_transport_errors_total",
        "Connection or framing failures.",
        |m| &m.transport_errors,
    ),
    (
        "wellpulse_device_decode_errors_total",
        "Tag values that could not be decoded.",
        |m| &m.decode_errors,
    ),
    (
        "wellpulse_device_reconnects_total",
        "Successful connects after a lost link.",
        |m| &m.reconnects,
    ),
    (
        "wellpulse_device_connect_failures_total",
        "Failed connect or session-start attempts.",
        |m| &m.connect_failures,
    ),
    (
        "wellpulse_device_samples_total",
        "Samples emitted after report by exception.",
        |m| &m.samples,
    ),
    (
        "wellpulse_device_frames_dropped_total",
        "Frames dropped because the batcher queue was full.",
        |m| &m.frames_dropped,
    ),
    (
        "wellpulse_device_setpoint_writes_ok_total",
        "Verified setpoint writes.",
        |m| &m.writes_ok,
    ),
    (
        "wellpulse_device_setpoint_writes_failed_total",
        "Refused or failed setpoint writes.",
        |m| &m.writes_failed,
    ),
];

fn render_devices(out: &mut String, devices: &[Arc<DeviceMetrics>]) {
    for (name, help, counter) in DEVICE_COUNTERS {
        family(out, name, "counter", help);
        for d in devices {
            let _ = writeln!(
                out,
                "{name}{{device=\"{}\"}} {}",
                d.name,
                counter(d).load(Relaxed)
            );
        }
    }
    family(
        out,
        "wellpulse_device_up",
        "gauge",
        "1 when the last exchange with the device worked.",
    );
    for d in devices {
        let up = u8::from(d.up.load(Relaxed));
        let _ = writeln!(out, "wellpulse_device_up{{device=\"{}\"}} {up}", d.name);
    }
    let name = "wellpulse_device_poll_latency_seconds";
    family(
        out,
        name,
        "histogram",
        "Round-trip time of successful read requests.",
    );
    for d in devices {
        d.latency
            .render(out, name, &format!("device=\"{}\"", d.name));
    }
}

fn render_pipeline(out: &mut String, s: &Sources) {
    let b = &s.batcher;
    let stats = s.buffer.stats();
    let status = stats.status(now_ms());
    let rows: [(&str, &str, &str, u64); 12] = [
        (
            "wellpulse_batches_appended_total",
            "counter",
            "Batches committed to the buffer.",
            b.batches.load(Relaxed),
        ),
        (
            "wellpulse_samples_appended_total",
            "counter",
            "Samples committed to the buffer.",
            b.samples.load(Relaxed),
        ),
        (
            "wellpulse_batch_bytes_appended_total",
            "counter",
            "Encoded sample bytes committed to the buffer.",
            b.bytes.load(Relaxed),
        ),
        (
            "wellpulse_buffer_append_errors_total",
            "counter",
            "Failed buffer appends (retried).",
            b.append_errors.load(Relaxed),
        ),
        (
            "wellpulse_batcher_samples_dropped_total",
            "counter",
            "Samples lost before reaching the buffer.",
            b.samples_dropped.load(Relaxed),
        ),
        (
            "wellpulse_births_stored_total",
            "counter",
            "Births stored (session start and device information changes).",
            b.births.load(Relaxed),
        ),
        (
            "wellpulse_buffer_pending_batches",
            "gauge",
            "Batches waiting for a cloud ack.",
            stats.pending_batches,
        ),
        (
            "wellpulse_buffer_pending_samples",
            "gauge",
            "Samples waiting for a cloud ack.",
            stats.pending_samples,
        ),
        (
            "wellpulse_buffer_pending_bytes",
            "gauge",
            "Stored bytes waiting for a cloud ack.",
            stats.pending_bytes,
        ),
        (
            "wellpulse_buffer_oldest_age_seconds",
            "gauge",
            "Age of the oldest unacknowledged batch.",
            status.oldest_age_ms / 1000,
        ),
        (
            "wellpulse_buffer_dropped_batches_total",
            "counter",
            "Batches dropped by buffer limits.",
            stats.dropped_batches,
        ),
        (
            "wellpulse_buffer_dropped_samples_total",
            "counter",
            "Samples dropped by buffer limits.",
            stats.dropped_samples,
        ),
    ];
    for (name, kind, help, value) in rows {
        single(out, name, kind, help, value);
    }
    let dropped: u64 = s
        .devices
        .iter()
        .map(|d| d.frames_dropped.load(Relaxed))
        .sum();
    single(
        out,
        "wellpulse_frames_dropped_total",
        "counter",
        "Frames dropped at the batcher queue, all devices.",
        dropped,
    );
    family(
        out,
        "wellpulse_agent_info",
        "gauge",
        "Agent version and session.",
    );
    let _ = writeln!(
        out,
        "wellpulse_agent_info{{version=\"{}\",boot_id=\"{:016x}\"}} 1",
        env!("CARGO_PKG_VERSION"),
        s.boot_id
    );
}

/// Longest request head accepted.
const MAX_REQUEST: usize = 8 * 1024;
/// Time a client gets to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves `/metrics` and `/healthz` until the task is aborted. Connection handlers live
/// in a `JoinSet` owned by this future, so aborting it also ends them (and releases the
/// buffer they reference).
pub async fn serve(listener: TcpListener, sources: Arc<Sources>) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let sources = Arc::clone(&sources);
                    connections.spawn(async move {
                        if let Err(e) = handle(stream, &sources).await {
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

async fn handle(mut stream: TcpStream, sources: &Sources) -> std::io::Result<()> {
    let head = tokio::time::timeout(REQUEST_TIMEOUT, read_head(&mut stream))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "request timeout"))??;
    let mut parts = head.split_ascii_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = path.split('?').next().unwrap_or("");
    let (status, content_type, body) = match (method, path) {
        ("GET", "/metrics") => ("200 OK", "text/plain; version=0.0.4", render(sources)),
        ("GET", "/healthz") => ("200 OK", "text/plain", "ok\n".to_string()),
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

    #[test]
    fn histogram_buckets_are_cumulative_and_complete() {
        let h = Histogram::default();
        for ms in [0.5, 3.0, 3.0, 40.0, 20_000.0] {
            h.observe(Duration::from_secs_f64(ms / 1000.0));
        }
        let mut out = String::new();
        h.render(&mut out, "lat", "device=\"d\"");
        let bucket = |le: &str| -> u64 {
            let prefix = format!("lat_bucket{{device=\"d\",le=\"{le}\"}} ");
            out.lines()
                .find_map(|l| l.strip_prefix(&prefix))
                .unwrap_or_else(|| panic!("no bucket {le} in\n{out}"))
                .parse()
                .unwrap()
        };
        assert_eq!(bucket("0.001"), 1);
        assert_eq!(bucket("0.005"), 3);
        assert_eq!(bucket("0.05"), 4);
        assert_eq!(bucket("10"), 4);
        assert_eq!(bucket("+Inf"), 5);
        assert!(out.contains("lat_count{device=\"d\"} 5"));
        assert!(out.contains("lat_sum{device=\"d\"} 20.0465"));
    }

    #[test]
    fn device_counters_render_one_line_per_device() {
        let a = Arc::new(DeviceMetrics::new("pump-1"));
        let b = Arc::new(DeviceMetrics::new("tank-1"));
        a.timeouts.fetch_add(3, Relaxed);
        b.up.store(true, Relaxed);
        let mut out = String::new();
        render_devices(&mut out, &[a, b]);
        assert!(out.contains("# TYPE wellpulse_device_timeouts_total counter"));
        assert!(out.contains("wellpulse_device_timeouts_total{device=\"pump-1\"} 3"));
        assert!(out.contains("wellpulse_device_timeouts_total{device=\"tank-1\"} 0"));
        assert!(out.contains("wellpulse_device_up{device=\"tank-1\"} 1"));
        // Every sample line belongs to a declared family.
        for line in out.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split(['{', ' ']).next().unwrap();
            let family = name
                .trim_end_matches("_bucket")
                .trim_end_matches("_sum")
                .trim_end_matches("_count");
            assert!(out.contains(&format!("# TYPE {family} ")), "{line}");
        }
    }
}
