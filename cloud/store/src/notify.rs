//! Following a PostgreSQL notification channel (`LISTEN`), the one way the cloud does it.
//!
//! [`Db::follow`] connects, listens, hands every payload to its handler, and when the
//! connection is lost says so and starts again with backoff (200 ms → 10 s), until the
//! process stops. Notifications sent while nobody listened are gone: a handler that keeps
//! state derived from them starts over on [`Notice::Connected`] or [`Notice::Lost`].

use std::time::Duration;

use base::Backoff;
use sqlx::postgres::PgListener;
use tracing::warn;

use crate::Db;

/// What happened on a followed channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice<'a> {
    /// Listening (again): notifications from now on arrive.
    Connected,
    /// One notification's payload.
    Payload(&'a str),
    /// The connection is gone, and notifications with it, until the next `Connected`.
    Lost,
}

impl Db {
    /// Follows `channel` until the process stops (see the module docs); `what` names its
    /// subject in the logs.
    pub async fn follow(&self, channel: &str, what: &str, mut handle: impl FnMut(Notice<'_>)) {
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
        loop {
            let listening = match PgListener::connect_with(self.pool()).await {
                Ok(mut listener) => match listener.listen(channel).await {
                    Ok(()) => Ok(listener),
                    Err(e) => Err(e),
                },
                Err(e) => Err(e),
            };
            let mut listener = match listening {
                Ok(listener) => listener,
                Err(e) => {
                    let delay = backoff.next_delay();
                    warn!(error = %e, retry_in = ?delay, "cannot LISTEN for {what}");
                    tokio::time::sleep(delay).await;
                    continue;
                }
            };
            backoff.reset();
            handle(Notice::Connected);
            // `None` or an error: the connection is gone, and notifications with it.
            while let Ok(Some(n)) = listener.try_recv().await {
                handle(Notice::Payload(n.payload()));
            }
            handle(Notice::Lost);
            warn!("lost the listener for {what}; reconnecting");
        }
    }
}
