//! Latest values pushed to the live streams (`GET …/latest/stream`), one fan-out per API
//! process.
//!
//! ```text
//! ingester(s) ──NOTIFY wellpulse_telemetry "tenant:gateway,…"──▶ listener (one LISTEN)
//!                                                                   │ mark dirty
//!                                                                   ▼
//!              streams ◀── broadcast per tenant ◀── flusher: per tenant at most once per
//!                                                   `interval`, read the dirty gateways'
//!                                                   latest values once, send what is newer
//! ```
//!
//! - Work follows viewers, not data: notifications for tenants nobody watches are dropped
//!   on arrival, and a tenant's values are read once per flush however many streams watch
//!   it (each stream filters the shared result by well and metric).
//! - Coalesced: a tenant's gateways marked while its last flush is younger than
//!   `interval` (1 s) wait for the next one ([`Coalescer`], pure, time passed in), so a
//!   stream gets at most one update per interval whatever the ingest rate.
//! - Only what changed: the flusher remembers, per tenant, the newest time it sent for each
//!   series and sends a value only when it is newer.
//! - Lag: a stream that falls behind the broadcast (16 updates) reads its snapshot again.
//! - The listener and the flusher start with the first subscriber; the listener reconnects
//!   with backoff. A notification missed while it reconnects costs the values of that
//!   round until the gateway's next batch (streams start from a snapshot, never from the
//!   feed).

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use store::live::{self, LatestFilter, LatestValue, TELEMETRY_CHANNEL};
use store::notify::Notice;
use store::{Db, GatewayId, SeriesId, TenantId};
use tokio::sync::{Notify, broadcast};
use tokio::time::Instant;
use tracing::warn;

/// Updates a stream may fall behind before it is told to read its snapshot again.
const CAPACITY: usize = 16;

/// One flush of one tenant: the values that changed.
pub(crate) type Update = Arc<Vec<LatestValue>>;

/// When each tenant's dirty gateways are due. Pure: `now` is passed in.
#[derive(Debug)]
pub(crate) struct Coalescer {
    interval: Duration,
    last: HashMap<TenantId, Instant>,
    dirty: HashMap<TenantId, BTreeSet<GatewayId>>,
}

impl Coalescer {
    pub(crate) fn new(interval: Duration) -> Coalescer {
        Coalescer {
            interval,
            last: HashMap::new(),
            dirty: HashMap::new(),
        }
    }

    /// New data of `gateway`.
    pub(crate) fn mark(&mut self, tenant: TenantId, gateway: GatewayId) {
        self.dirty.entry(tenant).or_default().insert(gateway);
    }

    fn due_at(&self, tenant: TenantId) -> Option<Instant> {
        self.last.get(&tenant).map(|last| *last + self.interval)
    }

    /// Takes every tenant whose last flush is at least `interval` old (or that never
    /// flushed), with its dirty gateways; their flush time becomes `now`.
    pub(crate) fn take_due(&mut self, now: Instant) -> Vec<(TenantId, Vec<GatewayId>)> {
        let due: Vec<TenantId> = self
            .dirty
            .keys()
            .copied()
            .filter(|t| self.due_at(*t).is_none_or(|at| at <= now))
            .collect();
        due.into_iter()
            .map(|tenant| {
                self.last.insert(tenant, now);
                let gateways = self.dirty.remove(&tenant).unwrap_or_default();
                (tenant, gateways.into_iter().collect())
            })
            .collect()
    }

    /// When the next tenant becomes due (`now` for one that never flushed), if any is
    /// dirty.
    pub(crate) fn next_due(&self, now: Instant) -> Option<Instant> {
        self.dirty
            .keys()
            .map(|t| self.due_at(*t).unwrap_or(now))
            .min()
    }

    /// Forgets a tenant nobody watches any more.
    pub(crate) fn forget(&mut self, tenant: TenantId) {
        self.last.remove(&tenant);
        self.dirty.remove(&tenant);
    }
}

struct TenantFeed {
    tx: broadcast::Sender<Update>,
    /// Newest time sent per series.
    sent: HashMap<SeriesId, DateTime<Utc>>,
}

struct Shared {
    tenants: HashMap<TenantId, TenantFeed>,
    coalescer: Coalescer,
}

/// The fan-out (cheap to clone).
#[derive(Clone)]
pub(crate) struct LatestFeed {
    db: Db,
    started: Arc<AtomicBool>,
    shared: Arc<Mutex<Shared>>,
    wake: Arc<Notify>,
}

impl std::fmt::Debug for LatestFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LatestFeed").finish_non_exhaustive()
    }
}

impl LatestFeed {
    pub(crate) fn new(db: Db, interval: Duration) -> LatestFeed {
        LatestFeed {
            db,
            started: Arc::default(),
            shared: Arc::new(Mutex::new(Shared {
                tenants: HashMap::new(),
                coalescer: Coalescer::new(interval),
            })),
            wake: Arc::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every update of `tenant` from now on; starts the listener with the first caller.
    pub(crate) fn subscribe(&self, tenant: TenantId) -> broadcast::Receiver<Update> {
        if !self.started.swap(true, Ordering::SeqCst) {
            tokio::spawn(self.clone().listen());
            tokio::spawn(self.clone().flush());
        }
        let mut shared = self.lock();
        let feed = shared.tenants.entry(tenant).or_insert_with(|| TenantFeed {
            tx: broadcast::channel(CAPACITY).0,
            sent: HashMap::new(),
        });
        feed.tx.subscribe()
    }

    /// Marks the gateways of a notification, for the tenants someone watches.
    fn mark(&self, changes: &[(TenantId, GatewayId)]) {
        let mut shared = self.lock();
        let mut woke = false;
        for (tenant, gateway) in changes {
            let watched = match shared.tenants.get(tenant) {
                Some(feed) if feed.tx.receiver_count() > 0 => true,
                Some(_) => {
                    shared.tenants.remove(tenant);
                    shared.coalescer.forget(*tenant);
                    false
                }
                None => false,
            };
            if watched {
                shared.coalescer.mark(*tenant, *gateway);
                woke = true;
            }
        }
        if woke {
            self.wake.notify_one();
        }
    }

    async fn listen(self) {
        let db = self.db.clone();
        db.follow(TELEMETRY_CHANNEL, "stored telemetry", |notice| {
            if let Notice::Payload(payload) = notice {
                match live::decode_changes(payload) {
                    Some(changes) => self.mark(&changes),
                    None => warn!("unreadable telemetry notification"),
                }
            }
        })
        .await;
    }

    async fn flush(self) {
        loop {
            let (due, next) = {
                let mut shared = self.lock();
                let now = Instant::now();
                let due = shared.coalescer.take_due(now);
                (due, shared.coalescer.next_due(now))
            };
            for (tenant, gateways) in due {
                self.send(tenant, &gateways).await;
            }
            match next {
                Some(at) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(at) => {}
                        () = self.wake.notified() => {}
                    }
                }
                None => self.wake.notified().await,
            }
        }
    }

    /// Reads the latest values of `gateways` once and sends those newer than last sent.
    async fn send(&self, tenant: TenantId, gateways: &[GatewayId]) {
        let read = async {
            let mut tx = self.db.begin_tenant(tenant).await?;
            let filter = LatestFilter {
                gateways: Some(gateways),
                ..LatestFilter::default()
            };
            let values = live::latest(&mut tx, tenant, filter).await?;
            tx.commit().await?;
            Ok::<_, store::DbError>(values)
        };
        let values = match read.await {
            Ok(v) => v,
            Err(e) => {
                warn!(error = %e, %tenant, "cannot read latest values for the live streams");
                return;
            }
        };
        let mut shared = self.lock();
        let Some(feed) = shared.tenants.get_mut(&tenant) else {
            return;
        };
        let changed: Vec<LatestValue> = values
            .into_iter()
            .filter(|v| feed.sent.get(&v.series_id).is_none_or(|t| v.time > *t))
            .collect();
        for v in &changed {
            feed.sent.insert(v.series_id, v.time);
        }
        if !changed.is_empty() {
            let _ = feed.tx.send(Arc::new(changed));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T1: TenantId = TenantId(1);
    const T2: TenantId = TenantId(2);

    #[test]
    fn a_tenant_flushes_at_once_then_at_most_once_per_interval() {
        let start = Instant::now();
        let second = Duration::from_secs(1);
        let mut c = Coalescer::new(second);
        assert!(c.take_due(start).is_empty());
        assert_eq!(c.next_due(start), None);

        c.mark(T1, GatewayId(7));
        c.mark(T1, GatewayId(3));
        c.mark(T1, GatewayId(7));
        assert_eq!(
            c.take_due(start),
            vec![(T1, vec![GatewayId(3), GatewayId(7)])]
        );
        assert_eq!(c.next_due(start), None, "nothing dirty");

        // Marked again 100 ms later: waits for the interval.
        let soon = start + Duration::from_millis(100);
        c.mark(T1, GatewayId(3));
        assert!(c.take_due(soon).is_empty());
        assert_eq!(c.next_due(start), Some(start + second));
        // Another tenant is not held back by the first.
        c.mark(T2, GatewayId(9));
        assert_eq!(c.take_due(soon), vec![(T2, vec![GatewayId(9)])]);
        assert_eq!(c.next_due(start), Some(start + second));
        assert_eq!(c.take_due(start + second), vec![(T1, vec![GatewayId(3)])]);
    }

    #[test]
    fn a_forgotten_tenant_starts_afresh() {
        let start = Instant::now();
        let mut c = Coalescer::new(Duration::from_secs(1));
        c.mark(T1, GatewayId(1));
        assert_eq!(c.take_due(start).len(), 1);
        c.mark(T1, GatewayId(1));
        c.forget(T1);
        assert_eq!(c.next_due(start), None);
        c.mark(T1, GatewayId(2));
        assert_eq!(
            c.take_due(start + Duration::from_millis(1)),
            vec![(T1, vec![GatewayId(2)])]
        );
    }
}
