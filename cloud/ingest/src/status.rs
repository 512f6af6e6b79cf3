//! Gateway status writes, off the ingest path.
//!
//! After each commit the pipeline knows, per gateway, when it was last heard from, its
//! buffer status and its clock skew. Writing that is advisory bookkeeping: it must not
//! delay the next round (and with it every application ack), so the pipeline hands it to
//! this single writer task. While a write is in progress, newer reports are merged per
//! gateway (latest values win), so a slow or unavailable database costs one pending
//! entry per gateway, never a growing queue. One writer keeps the writes in order.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::mpsc;
use tracing::error;

use super::IngestOptions;
use super::pipeline::retry;
use super::stats::IngestStats;
use store::gateways::GatewayActivity;
use store::{Db, GatewayId};

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
    mut rx: mpsc::UnboundedReceiver<Vec<GatewayActivity>>,
) {
    while let Some(first) = rx.recv().await {
        let mut pending = BTreeMap::new();
        merge(&mut pending, first);
        while let Ok(more) = rx.try_recv() {
            merge(&mut pending, more);
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
