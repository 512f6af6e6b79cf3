//! Counters of one device, kept beside the poller that fills them.
//!
//! Plain atomics (`Relaxed`: each is independent, exact ordering between them does not
//! matter for monitoring), so recording a request costs a few nanoseconds and never blocks
//! a poller. Poll latency is a fixed-bucket histogram (seconds, Prometheus `le` buckets from
//! 1 ms to 10 s), enough to see a slow device or a saturated bus without keeping samples.
//! [`crate::metrics`] reads them at scrape time.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Upper bounds (seconds) of the latency histogram buckets.
pub const LATENCY_BUCKETS: [f64; 11] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 10.0,
];

/// A fixed-bucket latency histogram of lock-free counters.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    count: AtomicU64,
    sum_us: AtomicU64,
}

/// A histogram read at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    /// Sum of the observations, seconds.
    pub sum: f64,
    /// Number of observations.
    pub count: u64,
    /// `(upper bound, observations in this bucket only)`, the last bound `f64::MAX`
    /// (`+Inf`, observations beyond the largest bound).
    pub buckets: Vec<(f64, u64)>,
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

    /// The current figures (each counter read once; a concurrent observation may show in
    /// one and not yet in another, as with any lock-free histogram).
    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut buckets: Vec<(f64, u64)> = LATENCY_BUCKETS
            .iter()
            .zip(&self.buckets)
            .map(|(&bound, n)| (bound, n.load(Relaxed)))
            .collect();
        let count = self.count();
        let bucketed: u64 = buckets.iter().map(|&(_, n)| n).sum();
        buckets.push((f64::MAX, count.saturating_sub(bucketed)));
        HistogramSnapshot {
            sum: self.sum_us.load(Relaxed) as f64 / 1e6,
            count: count.max(bucketed),
            buckets,
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_snapshot_puts_each_observation_in_one_bucket() {
        let h = Histogram::default();
        for ms in [0.5, 3.0, 3.0, 40.0, 20_000.0] {
            h.observe(Duration::from_secs_f64(ms / 1000.0));
        }
        let s = h.snapshot();
        assert_eq!(s.count, 5);
        assert!((s.sum - 20.0465).abs() < 1e-9, "{}", s.sum);
        let n = |bound: f64| s.buckets.iter().find(|b| b.0 == bound).expect("bucket").1;
        assert_eq!(
            (n(0.001), n(0.005), n(0.05), n(10.0), n(f64::MAX)),
            (1, 2, 1, 0, 1)
        );
        assert_eq!(s.buckets.iter().map(|b| b.1).sum::<u64>(), 5);
    }
}
