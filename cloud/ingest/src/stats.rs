//! Ingester counters: lock-free atomics shared with `/metrics` and the API.
//!
//! Every message the ingester receives ends in exactly one counted outcome: stored
//! (a committed batch, birth, death or command result), a duplicate (already stored,
//! acked again), or a rejection counted under its [`RejectReason`]. Counters only grow;
//! readers take a [`StatsSnapshot`] or render the Prometheus text exposition.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// Why a message was refused. Every variant is a deliberate decision: the message is
/// logged, counted, recorded in `ingest_rejections`, MQTT-acked so the broker frees it,
/// and — for data — not application-acked, so the batch stays in the agent's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectReason {
    /// The topic is not `wp/v1/{tenant}/{gateway}/{kind}` with valid ids.
    BadTopic,
    /// The topic's kind is cloud → edge (ack, cmd); the ingester never consumes those.
    WrongDirection,
    /// No tenant with the topic's tenant id.
    UnknownTenant,
    /// The tenant exists but has no gateway with the topic's gateway id.
    UnknownGateway,
    /// The payload is not sealed with a message key of the gateway its topic names
    /// (forged by another client of the broker, altered, replayed from another topic, or
    /// sealed with a retired key). Never stored, never acked.
    Unauthenticated,
    /// The payload is not valid CBOR for its message type.
    Malformed,
    /// The payload's schema version is newer than this build reads.
    IncompatibleVersion,
    /// A data batch of a boot whose birth the cloud has not seen (rebirth requested).
    UnknownBoot,
    /// Samples whose device/metric alias is not in the boot's birth catalog (the
    /// batch's other samples are stored).
    UnknownAlias,
    /// A value the database cannot hold (seq beyond 63 bits, timestamp out of range); the
    /// message can never be stored as is.
    OutOfRange,
    /// The message decoded but its content is inconsistent (e.g. a birth naming one
    /// device twice).
    InvalidContent,
    /// A batch whose seq is already stored under another boot id: the gateway's sequence
    /// went backwards (lost buffer state). Needs an operator; nothing is overwritten.
    SeqConflict,
    /// The database refused the message with an error that retrying cannot fix.
    StorageRefused,
}

impl RejectReason {
    /// All reasons, in counter order.
    pub const ALL: [RejectReason; 13] = [
        RejectReason::BadTopic,
        RejectReason::WrongDirection,
        RejectReason::UnknownTenant,
        RejectReason::UnknownGateway,
        RejectReason::Unauthenticated,
        RejectReason::Malformed,
        RejectReason::IncompatibleVersion,
        RejectReason::UnknownBoot,
        RejectReason::UnknownAlias,
        RejectReason::OutOfRange,
        RejectReason::InvalidContent,
        RejectReason::SeqConflict,
        RejectReason::StorageRefused,
    ];

    /// Stable snake_case name (metric label, `ingest_rejections.reason` prefix).
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::BadTopic => "bad_topic",
            RejectReason::WrongDirection => "wrong_direction",
            RejectReason::UnknownTenant => "unknown_tenant",
            RejectReason::UnknownGateway => "unknown_gateway",
            RejectReason::Unauthenticated => "unauthenticated",
            RejectReason::Malformed => "malformed",
            RejectReason::IncompatibleVersion => "incompatible_version",
            RejectReason::UnknownBoot => "unknown_boot",
            RejectReason::UnknownAlias => "unknown_alias",
            RejectReason::OutOfRange => "out_of_range",
            RejectReason::InvalidContent => "invalid_content",
            RejectReason::SeqConflict => "seq_conflict",
            RejectReason::StorageRefused => "storage_refused",
        }
    }

    fn index(self) -> usize {
        RejectReason::ALL
            .iter()
            .position(|r| *r == self)
            .unwrap_or_default()
    }
}

/// The ingester's counters.
#[derive(Debug, Default)]
pub struct IngestStats {
    /// MQTT messages received (all kinds, including redeliveries).
    pub messages_received: AtomicU64,
    /// Data batches committed for the first time.
    pub batches_stored: AtomicU64,
    /// Data batches already stored (re-sent by the agent): skipped and acked again.
    pub batches_duplicate: AtomicU64,
    /// Samples written to telemetry.
    pub samples_stored: AtomicU64,
    /// Batches scored by live detection.
    pub batches_scored: AtomicU64,
    /// Batches found waiting in the detection backlog by a sweep (left behind by an
    /// ingester that stopped before scoring them).
    pub batches_swept: AtomicU64,
    /// Samples scored by live detection.
    pub samples_scored: AtomicU64,
    /// Findings detection recorded (condition transitions).
    pub findings: AtomicU64,
    /// Alerts detection opened.
    pub alerts_opened: AtomicU64,
    /// Time detection spent scoring (the detectors' CPU), in microseconds.
    pub detection_scoring_us: AtomicU64,
    /// Time detection spent claiming batches, locking, reading and writing detector states,
    /// recording findings and committing (the scoring transactions' round trips), in
    /// microseconds.
    pub detection_storage_us: AtomicU64,
    /// Births applied to the catalog.
    pub births_applied: AtomicU64,
    /// Deaths processed (session ended, or ignored because a newer boot is current).
    pub deaths_processed: AtomicU64,
    /// Command results received.
    pub command_results: AtomicU64,
    /// Database transactions committed.
    pub transactions: AtomicU64,
    /// Failed database attempts that were retried (the messages stay un-acked).
    pub db_retries: AtomicU64,
    /// Application acks published.
    pub acks_published: AtomicU64,
    /// Negative acks published: batches the cloud refuses for good, told to the gateway
    /// so it sets them aside instead of re-sending them.
    pub nacks_published: AtomicU64,
    /// Rebirth commands published.
    pub rebirths_requested: AtomicU64,
    /// Live seq jumps beyond the in-flight window.
    pub seq_gaps: AtomicU64,
    /// Live batches whose clock skew exceeded the threshold.
    pub clock_skew_flags: AtomicU64,
    /// Most recent measured skew, receive time minus newest sample (ms).
    pub last_clock_skew_ms: AtomicI64,
    /// MQTT (re)connections established.
    pub mqtt_connects: AtomicU64,
    /// Subscription sets the broker accepted (one per connection when healthy); the
    /// ingester receives messages only after this.
    pub mqtt_subscribed: AtomicU64,
    /// MQTT connection errors (each followed by a backoff and a reconnect).
    pub mqtt_errors: AtomicU64,
    rejected: [AtomicU64; RejectReason::ALL.len()],
}

/// A point-in-time copy of [`IngestStats`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StatsSnapshot {
    /// See [`IngestStats::messages_received`].
    pub messages_received: u64,
    /// See [`IngestStats::batches_stored`].
    pub batches_stored: u64,
    /// See [`IngestStats::batches_duplicate`].
    pub batches_duplicate: u64,
    /// See [`IngestStats::samples_stored`].
    pub samples_stored: u64,
    /// See [`IngestStats::batches_scored`].
    pub batches_scored: u64,
    /// See [`IngestStats::batches_swept`].
    pub batches_swept: u64,
    /// See [`IngestStats::samples_scored`].
    pub samples_scored: u64,
    /// See [`IngestStats::findings`].
    pub findings: u64,
    /// See [`IngestStats::alerts_opened`].
    pub alerts_opened: u64,
    /// See [`IngestStats::detection_scoring_us`].
    pub detection_scoring_us: u64,
    /// See [`IngestStats::detection_storage_us`].
    pub detection_storage_us: u64,
    /// See [`IngestStats::births_applied`].
    pub births_applied: u64,
    /// See [`IngestStats::deaths_processed`].
    pub deaths_processed: u64,
    /// See [`IngestStats::command_results`].
    pub command_results: u64,
    /// See [`IngestStats::transactions`].
    pub transactions: u64,
    /// See [`IngestStats::db_retries`].
    pub db_retries: u64,
    /// See [`IngestStats::acks_published`].
    pub acks_published: u64,
    /// See [`IngestStats::nacks_published`].
    pub nacks_published: u64,
    /// See [`IngestStats::rebirths_requested`].
    pub rebirths_requested: u64,
    /// See [`IngestStats::seq_gaps`].
    pub seq_gaps: u64,
    /// See [`IngestStats::clock_skew_flags`].
    pub clock_skew_flags: u64,
    /// See [`IngestStats::mqtt_connects`].
    pub mqtt_connects: u64,
    /// See [`IngestStats::mqtt_subscribed`].
    pub mqtt_subscribed: u64,
    /// See [`IngestStats::mqtt_errors`].
    pub mqtt_errors: u64,
    /// Rejections per reason, in [`RejectReason::ALL`] order.
    pub rejected: Vec<(RejectReason, u64)>,
}

impl StatsSnapshot {
    /// Rejections counted under `reason`.
    pub fn rejected(&self, reason: RejectReason) -> u64 {
        self.rejected
            .iter()
            .find(|(r, _)| *r == reason)
            .map_or(0, |(_, n)| *n)
    }

    /// All rejections.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.iter().map(|(_, n)| n).sum()
    }
}

/// Adds one to a counter.
pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// Adds `n` to a counter.
pub(crate) fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

impl IngestStats {
    /// Counts one rejection.
    pub fn reject(&self, reason: RejectReason) {
        bump(&self.rejected[reason.index()]);
    }

    /// Copies every counter.
    pub fn snapshot(&self) -> StatsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            messages_received: get(&self.messages_received),
            batches_stored: get(&self.batches_stored),
            batches_duplicate: get(&self.batches_duplicate),
            samples_stored: get(&self.samples_stored),
            batches_scored: get(&self.batches_scored),
            batches_swept: get(&self.batches_swept),
            samples_scored: get(&self.samples_scored),
            findings: get(&self.findings),
            alerts_opened: get(&self.alerts_opened),
            detection_scoring_us: get(&self.detection_scoring_us),
            detection_storage_us: get(&self.detection_storage_us),
            births_applied: get(&self.births_applied),
            deaths_processed: get(&self.deaths_processed),
            command_results: get(&self.command_results),
            transactions: get(&self.transactions),
            db_retries: get(&self.db_retries),
            acks_published: get(&self.acks_published),
            nacks_published: get(&self.nacks_published),
            rebirths_requested: get(&self.rebirths_requested),
            seq_gaps: get(&self.seq_gaps),
            clock_skew_flags: get(&self.clock_skew_flags),
            mqtt_connects: get(&self.mqtt_connects),
            mqtt_subscribed: get(&self.mqtt_subscribed),
            mqtt_errors: get(&self.mqtt_errors),
            rejected: RejectReason::ALL
                .iter()
                .map(|r| (*r, get(&self.rejected[r.index()])))
                .collect(),
        }
    }
}

/// The ingester's counters as a Prometheus collector: read from the atomics at each scrape,
/// so the hot path only ever increments an atomic.
#[derive(Debug, Clone)]
pub struct IngestCollector(pub Arc<IngestStats>);

impl Collector for IngestCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let s = self.0.snapshot();
        let counters = [
            (
                "messages_received",
                "MQTT messages received",
                s.messages_received,
            ),
            ("batches_stored", "Data batches committed", s.batches_stored),
            (
                "batches_duplicate",
                "Re-sent batches skipped and re-acked",
                s.batches_duplicate,
            ),
            (
                "samples_stored",
                "Samples written to telemetry",
                s.samples_stored,
            ),
            (
                "batches_scored",
                "Batches scored by live detection",
                s.batches_scored,
            ),
            (
                "batches_swept",
                "Batches the detection backlog sweep found left behind",
                s.batches_swept,
            ),
            (
                "samples_scored",
                "Samples scored by live detection",
                s.samples_scored,
            ),
            ("findings", "Findings recorded by detection", s.findings),
            (
                "alerts_opened",
                "Alerts opened by detection",
                s.alerts_opened,
            ),
            (
                "detection_scoring_us",
                "Microseconds detection spent scoring",
                s.detection_scoring_us,
            ),
            (
                "detection_storage_us",
                "Microseconds detection spent on detector states and findings in the database",
                s.detection_storage_us,
            ),
            ("births_applied", "Births applied", s.births_applied),
            ("deaths_processed", "Deaths processed", s.deaths_processed),
            (
                "command_results",
                "Command results received",
                s.command_results,
            ),
            (
                "transactions",
                "Database transactions committed",
                s.transactions,
            ),
            ("db_retries", "Database attempts retried", s.db_retries),
            (
                "acks_published",
                "Application acks published",
                s.acks_published,
            ),
            (
                "nacks_published",
                "Negative acks published (batches refused for good)",
                s.nacks_published,
            ),
            (
                "rebirths_requested",
                "Rebirth commands published",
                s.rebirths_requested,
            ),
            (
                "seq_gaps",
                "Live seq gaps beyond the in-flight window",
                s.seq_gaps,
            ),
            (
                "clock_skew_flags",
                "Live batches with excessive clock skew",
                s.clock_skew_flags,
            ),
            (
                "mqtt_connects",
                "MQTT connections established",
                s.mqtt_connects,
            ),
            (
                "mqtt_subscribed",
                "Subscription sets accepted by the broker",
                s.mqtt_subscribed,
            ),
            ("mqtt_errors", "MQTT connection errors", s.mqtt_errors),
        ];
        for (name, help, value) in counters {
            let counter = ConstCounter::new(value);
            let name = format!("wellpulse_ingest_{name}");
            let metric = encoder.encode_descriptor(&name, help, None, counter.metric_type())?;
            counter.encode(metric)?;
        }
        let mut family = encoder.encode_descriptor(
            "wellpulse_ingest_rejected",
            "Messages refused, by reason",
            None,
            MetricType::Counter,
        )?;
        for (reason, n) in &s.rejected {
            let labels = [("reason", reason.as_str())];
            ConstCounter::new(*n).encode(family.encode_family(&labels)?)?;
        }
        let skew = ConstGauge::new(self.0.last_clock_skew_ms.load(Ordering::Relaxed));
        let metric = encoder.encode_descriptor(
            "wellpulse_ingest_last_clock_skew_ms",
            "Receive time minus newest sample time of the last live batch",
            None,
            skew.metric_type(),
        )?;
        skew.encode(metric)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejections_are_counted_per_reason() {
        let stats = IngestStats::default();
        stats.reject(RejectReason::Malformed);
        stats.reject(RejectReason::Malformed);
        stats.reject(RejectReason::UnknownBoot);
        let s = stats.snapshot();
        assert_eq!(s.rejected(RejectReason::Malformed), 2);
        assert_eq!(s.rejected(RejectReason::UnknownBoot), 1);
        assert_eq!(s.rejected(RejectReason::BadTopic), 0);
        assert_eq!(s.rejected_total(), 3);
    }

    #[test]
    fn reason_names_are_unique() {
        let mut names: Vec<_> = RejectReason::ALL.iter().map(|r| r.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), RejectReason::ALL.len());
    }

    #[test]
    fn prometheus_text_lists_every_reason() {
        use prometheus_client::registry::Registry;
        let stats = IngestStats::default();
        stats.reject(RejectReason::UnknownGateway);
        bump(&stats.batches_stored);
        let mut registry = Registry::default();
        registry.register_collector(Box::new(IngestCollector(Arc::new(stats))));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(text.contains("wellpulse_ingest_batches_stored_total 1\n"));
        assert!(text.contains("wellpulse_ingest_rejected_total{reason=\"unknown_gateway\"} 1\n"));
        for r in RejectReason::ALL {
            assert!(text.contains(&format!("reason=\"{}\"", r.as_str())));
        }
    }
}
