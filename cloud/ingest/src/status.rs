//! Gateway status writes and "telemetry stored" notifications, off the ingest path.
//!
//! After each commit the pipeline knows, per gateway, when it was last heard from, its
//! buffer status and its clock skew. Writing that is advisory bookkeeping: it must not
//! delay the next round (and with it every application ack), so the pipeline hands it to
//! this single writer task. While a write is in progress, newer reports are merged per
//! gateway (latest values win), so a slow or unavailable database costs one pending
//! entry per gateway, never a growing queue. One writer keeps the writes in order.
//!
//! The same report names the (tenant, gateway) pairs whose batches were committed; the
//! writer sends them as one `NOTIFY wellpulse_telemetry` ([`store::live`]) before the
//! status write, so the API's live streams hear of new values in any process. Merged the
//! same way and sent at most every 200 ms (the first at once), a burst of rounds costs a
//! few notifications per second, never one per round or batch. A
//! notification that fails is logged, not retried: it is a hint (the next round's
//! notification, or a stream's reconnect, brings the values).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{error, warn};

use super::IngestOptions;
use super::pipeline::retry;
use super::stats::IngestStats;
use store::gateways::GatewayActivity;
use store::{Db, GatewayId, TenantId};

/// Shortest time between two "telemetry stored" notifications of one ingester (the API
/// pushes at most one update per second per tenant anyway).
const NOTIFY_INTERVAL: Duration = Duration::from_millis(200);

/// What one round's commit tells the writer.
#[derive(Debug, Default)]
pub(crate) struct Report {
    /// Per gateway: last heard from, buffer, clock skew.
    pub activity: Vec<GatewayActivity>,
    /// The gateways whose batches were committed, with their tenant.
    pub stored: BTreeSet<(TenantId, GatewayId)>,
}

/// Merges `newer` into `pending` (latest wins; absent values keep the older report's).
pub(crate) fn merge(
    pending: &mut BTreeMap<GatewayId, GatewayActivity>,
    newer: impl IntoIterator<Item = GatewayActivity>,
) {
    for a in newer {
        pending
            .entry(a.gateway)
            .and_modify(|p| {
                p.seen_at = p.seen_at.max(a.seen_at);
                p.buffer = a.buffer.or(p.buffer);
                p.clock_skew_ms = a.clock_skew_ms.or(p.clock_skew_ms);
                p.epoch = a.epoch.or(p.epoch);
            })
            .or_insert(a);
    }
}

/// Runs until the pipeline drops its sender.
pub(crate) async fn writer(
    db: Db,
    stats: Arc<IngestStats>,
    options: IngestOptions,
    mut rx: mpsc::UnboundedReceiver<Report>,
) {
    let mut notify_failures = 0u64;
    // Stored pairs not told yet, and when they were last told: at most one notification
    // per NOTIFY_INTERVAL, the first at once.
    let mut stored: BTreeSet<(TenantId, GatewayId)> = BTreeSet::new();
    let mut notified: Option<Instant> = None;
    loop {
        let due = notified.map(|at| at + NOTIFY_INTERVAL);
        let first = match due.filter(|_| !stored.is_empty()) {
            Some(due) => match tokio::time::timeout_at(due, rx.recv()).await {
                Ok(Some(report)) => Some(report),
                Ok(None) => break,
                // The pending pairs are due: tell them.
                Err(_) => None,
            },
            None => match rx.recv().await {
                Some(report) => Some(report),
                None => break,
            },
        };
        let mut pending = BTreeMap::new();
        if let Some(first) = first {
            stored.extend(first.stored);
            merge(&mut pending, first.activity);
        }
        while let Ok(more) = rx.try_recv() {
            merge(&mut pending, more.activity);
            stored.extend(more.stored);
        }
        let now = Instant::now();
        if !stored.is_empty() && notified.is_none_or(|at| now >= at + NOTIFY_INTERVAL) {
            notified = Some(now);
            if let Err(e) = db.notify_telemetry(&std::mem::take(&mut stored)).await {
                notify_failures += 1;
                if notify_failures.is_power_of_two() {
                    warn!(error = %e, failures = notify_failures, "could not notify stored telemetry");
                }
            }
        }
        if pending.is_empty() {
            continue;
        }
        let rows: Vec<GatewayActivity> = pending.into_values().collect();
        if let Err(e) = retry(&stats, &options, "gateway status", || {
            db.record_gateway_activity(&rows)
        })
        .await
        {
            error!(error = %e, gateways = rows.len(), "could not record gateway status");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn activity(
        gateway: i64,
        second: i64,
        pending: Option<u64>,
        skew: Option<i64>,
    ) -> GatewayActivity {
        GatewayActivity {
            gateway: GatewayId(gateway),
            seen_at: Utc.timestamp_opt(second, 0).unwrap(),
            buffer: pending.map(|p| wire::BufferStatus {
                pending_batches: p,
                ..wire::BufferStatus::default()
            }),
            clock_skew_ms: skew,
            epoch: None,
        }
    }

    #[test]
    fn newer_reports_win_and_missing_values_keep_older_ones() {
        let mut pending = BTreeMap::new();
        merge(
            &mut pending,
            [
                activity(1, 10, Some(5), Some(-3)),
                activity(2, 10, None, None),
            ],
        );
        merge(
            &mut pending,
            [
                activity(1, 20, Some(7), None),
                activity(1, 15, None, Some(9)),
            ],
        );
        let one = pending[&GatewayId(1)];
        assert_eq!(one.seen_at.timestamp(), 20);
        assert_eq!(one.buffer.unwrap().pending_batches, 7);
        assert_eq!(one.clock_skew_ms, Some(9));
        assert_eq!(pending.len(), 2);
    }
}
