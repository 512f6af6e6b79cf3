//! Alert changes as a live feed: one `LISTEN wellpulse_alerts` per process, fanned out to
//! every subscriber (the API's server-sent-events stream filters by tenant). The store
//! notifies in the transaction of each change, so whichever instance made it — an
//! ingester, a job, an API call — every instance's subscribers hear of it after its commit.

use serde::{Deserialize, Serialize};
use store::Db;
use store::alerts::ALERTS_CHANNEL;
use store::notify::Notice;
use tokio::sync::broadcast;
use tracing::warn;

/// One change of one alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertNotice {
    /// Owner.
    pub tenant_id: i64,
    /// The alert.
    pub alert_id: i64,
    /// What happened (`firing`, `acknowledged`, `resolved`, `commented`, ...).
    pub event: String,
}

/// The fan-out.
#[derive(Debug, Clone)]
pub struct AlertFeed {
    tx: broadcast::Sender<AlertNotice>,
}

impl Default for AlertFeed {
    fn default() -> Self {
        AlertFeed::new()
    }
}

impl AlertFeed {
    /// A feed nobody listens to yet; [`AlertFeed::listen`] fills it.
    pub fn new() -> AlertFeed {
        AlertFeed {
            tx: broadcast::channel(1024).0,
        }
    }

    /// Every notice from now on (a subscriber that falls 1024 behind is told it lagged).
    pub fn subscribe(&self) -> broadcast::Receiver<AlertNotice> {
        self.tx.subscribe()
    }

    /// Publishes a notice (the listener does; tests may).
    pub fn publish(&self, notice: AlertNotice) {
        let _ = self.tx.send(notice);
    }

    /// Listens to the database until the process stops, reconnecting with backoff.
    pub async fn listen(self, db: Db) {
        db.follow(ALERTS_CHANNEL, "alert changes", |notice| {
            if let Notice::Payload(payload) = notice {
                match serde_json::from_str::<AlertNotice>(payload) {
                    Ok(notice) => self.publish(notice),
                    Err(e) => warn!(error = %e, "unreadable alert notification"),
                }
            }
        })
        .await;
    }
}
