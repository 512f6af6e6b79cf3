//! The delivery worker: sends what the outbox owes, with retries, until delivered or dead.
//!
//! Every instance of the cloud runs one. It claims due rows with a lease
//! (`store::alerts::claim_due`: `FOR UPDATE SKIP LOCKED`, so two workers never hold the
//! same row), renders each for its destination ([`crate::deliver::render`]), sends them
//! concurrently, and records the outcome: delivered; failed and retryable → due again after
//! `base::Backoff` (exponential with jitter, `retry_min` … `retry_max`) until
//! `max_attempts`, then dead; failed for good (a 4xx other than 408/425/429, a destination
//! it cannot render for) → dead at once. A worker that dies mid-send leaves its rows leased;
//! they are claimed again when the lease ends, so nothing is lost across a restart (a
//! receiver may see a message twice: `webhook-id`, the CloudEvents `id` and PagerDuty's
//! dedup key let it tell).
//!
//! It wakes on `NOTIFY wellpulse_outbox` (sent in the transaction that queued a message,
//! so delivery starts right after that commit) and otherwise when the next row is due.

use std::sync::Arc;
use std::time::Duration;

use base::{Backoff, Secret};
use chrono::Utc;
use sqlx::postgres::PgListener;
use store::alerts::{AttemptResult, DESTINATION_SECRET, DueDelivery, OUTBOX_CHANNEL};
use store::certificates::CaKey;
use store::{Db, DbError};
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

use crate::deliver::{
    self, AlertView, Attempt, Destination, DestinationKind, Event, Message, Sender,
};

/// The worker's options (from `[alerts]`).
#[derive(Debug, Clone)]
pub struct OutboxOptions {
    /// Attempts before a message is dead.
    pub max_attempts: u32,
    /// First retry delay.
    pub retry_min: Duration,
    /// Longest retry delay.
    pub retry_max: Duration,
    /// Connect + request timeout per attempt.
    pub request_timeout: Duration,
    /// How long a claimed row is ours; longer than `request_timeout`.
    pub lease: Duration,
    /// Most messages in flight at once.
    pub concurrency: usize,
    /// The web app's public URL (links in messages).
    pub public_url: String,
}

impl Default for OutboxOptions {
    fn default() -> Self {
        OutboxOptions {
            max_attempts: 12,
            retry_min: Duration::from_secs(1),
            retry_max: Duration::from_secs(300),
            request_timeout: Duration::from_secs(10),
            lease: Duration::from_secs(60),
            concurrency: 32,
            public_url: "http://127.0.0.1:8080".to_owned(),
        }
    }
}

/// The worker.
#[derive(Debug, Clone)]
pub struct Outbox {
    db: Db,
    sender: Sender,
    ca_key: Option<CaKey>,
    options: Arc<OutboxOptions>,
}

/// Longest wait between looks at the outbox when nothing wakes the worker.
const IDLE_POLL: Duration = Duration::from_secs(5);

impl Outbox {
    /// A worker on `db`; `ca_key` opens destination secrets (`[tenancy] ca_key`).
    pub fn new(db: Db, ca_key: Option<CaKey>, options: OutboxOptions) -> Result<Outbox, String> {
        let sender = Sender::new(options.request_timeout).map_err(|e| e.to_string())?;
        Ok(Outbox {
            db,
            sender,
            ca_key,
            options: Arc::new(options),
        })
    }

    /// Runs until the process stops.
    pub async fn run(self) {
        let mut listener: Option<PgListener> = None;
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
        loop {
            if listener.is_none() {
                listener = match PgListener::connect_with(self.db.pool()).await {
                    Ok(mut l) => match l.listen(OUTBOX_CHANNEL).await {
                        Ok(()) => Some(l),
                        Err(e) => {
                            warn!(error = %e, "cannot LISTEN for the outbox; polling");
                            None
                        }
                    },
                    Err(e) => {
                        warn!(error = %e, "cannot LISTEN for the outbox; polling");
                        None
                    }
                };
            }
            match self.round().await {
                Ok(sent) if sent > 0 => {
                    backoff.reset();
                    continue;
                }
                Ok(_) => backoff.reset(),
                Err(e) => {
                    let delay = backoff.next_delay();
                    warn!(error = %e, retry_in = ?delay, "outbox round failed");
                    tokio::time::sleep(delay).await;
                    continue;
                }
            }
            let wait = match store::alerts::next_due(&self.db).await {
                Ok(Some(at)) => (at - Utc::now())
                    .to_std()
                    .unwrap_or(Duration::ZERO)
                    .min(IDLE_POLL),
                Ok(None) | Err(_) => IDLE_POLL,
            };
            if wait.is_zero() {
                // Due but leased by another worker: look again shortly.
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            match listener.as_mut() {
                Some(l) => match tokio::time::timeout(wait, l.recv()).await {
                    Ok(Ok(_)) | Err(_) => {}
                    Ok(Err(e)) => {
                        warn!(error = %e, "outbox listener lost; reconnecting");
                        listener = None;
                    }
                },
                None => tokio::time::sleep(wait).await,
            }
        }
    }

    /// Claims and sends one round of due messages; returns how many.
    pub async fn round(&self) -> Result<usize, DbError> {
        let lease = chrono::Duration::from_std(self.options.lease)
            .unwrap_or_else(|_| chrono::Duration::seconds(60));
        let due = store::alerts::claim_due(
            &self.db,
            lease,
            i64::try_from(self.options.concurrency).unwrap_or(32),
        )
        .await?;
        let n = due.len();
        let mut sends = JoinSet::new();
        for row in due {
            let worker = self.clone();
            sends.spawn(async move {
                let result = worker.attempt(&row).await;
                (row, result)
            });
        }
        while let Some(done) = sends.join_next().await {
            let Ok((row, result)) = done else {
                continue;
            };
            store::alerts::finish_delivery(&self.db, row.id, &result).await?;
        }
        Ok(n)
    }

    /// One attempt at one message.
    async fn attempt(&self, row: &DueDelivery) -> AttemptResult {
        let (dest, msg) = match self.prepare(row) {
            Ok(prepared) => prepared,
            Err(e) => {
                warn!(delivery = row.id, destination = row.destination, error = %e,
                      "message cannot be rendered; dead");
                return AttemptResult::Failed {
                    status: None,
                    error: e,
                    retry_at: None,
                };
            }
        };
        let request = match deliver::render(&dest, &msg, Utc::now()) {
            Ok(r) => r,
            Err(e) => {
                return AttemptResult::Failed {
                    status: None,
                    error: e.to_string(),
                    retry_at: None,
                };
            }
        };
        match self.sender.send(&request).await {
            Attempt::Delivered { status } => {
                debug!(
                    delivery = row.id,
                    destination = row.destination,
                    status,
                    "delivered"
                );
                AttemptResult::Delivered(i32::from(status))
            }
            Attempt::Failed {
                status,
                error,
                retryable,
            } => {
                let attempts = u32::try_from(row.attempts).unwrap_or(u32::MAX);
                let retry_at = (retryable && attempts < self.options.max_attempts).then(|| {
                    let mut backoff = Backoff::new(self.options.retry_min, self.options.retry_max);
                    let mut delay = Duration::ZERO;
                    for _ in 0..attempts.max(1) {
                        delay = backoff.next_delay();
                    }
                    Utc::now() + chrono::Duration::from_std(delay).unwrap_or_default()
                });
                match retry_at {
                    Some(at) => info!(delivery = row.id, destination = row.destination, attempts,
                                      next = %at, %error, "delivery failed; will retry"),
                    None => warn!(delivery = row.id, destination = row.destination, attempts,
                                  %error, "delivery failed; dead"),
                }
                AttemptResult::Failed {
                    status: status.map(i32::from),
                    error,
                    retry_at,
                }
            }
        }
    }

    /// The destination (secret opened) and message of a row.
    fn prepare(&self, row: &DueDelivery) -> Result<(Destination, Message), String> {
        let kind = match row.kind.as_str() {
            "webhook" => DestinationKind::Webhook,
            "alertmanager" => DestinationKind::Alertmanager,
            "pagerduty" => DestinationKind::Pagerduty,
            other => return Err(format!("unknown destination kind {other:?}")),
        };
        let secret = match &row.secret_sealed {
            None => None,
            Some(sealed) => {
                let key = self.ca_key.as_ref().ok_or(
                    "the destination's secret is sealed but [tenancy] ca_key is not configured",
                )?;
                let plain = key
                    .open_as(DESTINATION_SECRET, row.tenant, sealed)
                    .map_err(|e| e.to_string())?;
                Some(Secret::new(
                    String::from_utf8(plain)
                        .map_err(|_| "the destination's secret is not UTF-8")?,
                ))
            }
        };
        let event = match row.event.as_str() {
            "firing" => Event::Firing,
            "acknowledged" => Event::Acknowledged,
            "resolved" => Event::Resolved,
            "resend" => Event::Resend,
            "escalated" => Event::Escalated,
            "test" => Event::Test,
            other => return Err(format!("unknown event {other:?}")),
        };
        let mut alert: AlertView = serde_json::from_value(row.snapshot.clone())
            .map_err(|e| format!("unreadable alert snapshot: {e}"))?;
        alert.url = format!(
            "{}/alerts/{}",
            self.options.public_url.trim_end_matches('/'),
            alert.id
        );
        Ok((
            Destination {
                id: row.destination,
                kind,
                url: row.url.clone(),
                secret,
            },
            Message {
                id: format!("msg_{}", row.id),
                event,
                alert,
                at: row.created_at,
            },
        ))
    }
}
