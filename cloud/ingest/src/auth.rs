//! Authentication of what gateways publish (see [`wire::seal`]): every birth, death, data
//! batch and command result must be sealed with a message key of the gateway its topic
//! names, and is opened before anything of it is decoded or applied. A broker without a
//! topic ACL (or with a wrong one) lets any logged-in client publish on any gateway's
//! topics; the seal makes such a message worthless: it is refused as
//! [`RejectReason::Unauthenticated`](super::RejectReason::Unauthenticated), never stored
//! and never application-acked, so it can neither inject data or a catalog nor make the
//! real agent delete or set aside anything.
//!
//! - [`Keyring`]: each gateway's keys (current first, then the previous one during a
//!   rotation's overlap), read from the store on first use, again when a message does not
//!   open and the keys were read more than [`KEY_REFRESH`] ago (a new key is picked up
//!   without a restart, while a flood of forgeries costs at most one key read per gateway
//!   per [`KEY_REFRESH`]), and in any case once they are [`KEY_MAX_AGE`] old (a retired
//!   key stops opening messages within that delay). What the cloud publishes to a gateway (acks,
//!   refusals, rebirth requests) is sealed with the key that opened that gateway's message.
//! - [`RepeatLog`]: forgeries arrive in floods, so their rejections are aggregated: every
//!   one is counted, but a rejection row is written and a warning logged only for the first
//!   of a topic and reason, then at most once per [`RECORD_INTERVAL`], carrying how many
//!   were refused since.
//!
//! Both are plain structs that take `now` as an argument.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use store::GatewayId;
use wire::MessageKey;
use wire::seal::{Opened, SealError};

/// A message that does not open triggers a new read of its gateway's keys at most this
/// often (a rotation is picked up within this delay; the agent re-sends meanwhile).
pub(crate) const KEY_REFRESH: Duration = Duration::from_secs(10);
/// Keys are read again at least this often, so a retired key stops working.
pub(crate) const KEY_MAX_AGE: Duration = Duration::from_secs(60);
/// Repeated rejections of one topic and reason are recorded at most this often.
pub(crate) const RECORD_INTERVAL: Duration = Duration::from_secs(60);
/// Most gateways or topics remembered; the memory is cleared when full.
const MEMORY_LIMIT: usize = 100_000;

/// The keys of one gateway and when they were read.
#[derive(Debug)]
struct Keys {
    keys: Vec<MessageKey>,
    read_at: Instant,
}

/// Message keys per gateway, as last read from the store.
#[derive(Debug, Default)]
pub(crate) struct Keyring {
    gateways: HashMap<GatewayId, Keys>,
}

/// What [`Keyring::open`] found.
#[derive(Debug)]
pub(crate) enum Verdict<'a> {
    /// The seal verified with this key.
    Opened(&'a [u8], MessageKey),
    /// The seal did not verify; `stale` says the keys are worth reading again.
    Refused { error: SealError, stale: bool },
    /// The gateway's keys are not known yet (or too old to be trusted).
    Unknown,
}

impl Keyring {
    /// Opens `payload` received on `topic` with `gateway`'s known keys.
    pub(crate) fn open<'a>(
        &self,
        gateway: GatewayId,
        topic: &str,
        payload: &'a [u8],
        now: Instant,
    ) -> Verdict<'a> {
        let Some(entry) = self.gateways.get(&gateway) else {
            return Verdict::Unknown;
        };
        if now.saturating_duration_since(entry.read_at) >= KEY_MAX_AGE {
            return Verdict::Unknown;
        }
        match wire::seal::open(&entry.keys, topic, payload) {
            Ok(Opened { message, key }) => Verdict::Opened(message, entry.keys[key].clone()),
            Err(error) => {
                let stale = error == SealError::BadTag
                    && now.saturating_duration_since(entry.read_at) >= KEY_REFRESH;
                Verdict::Refused { error, stale }
            }
        }
    }

    /// Remembers `gateway`'s keys as read at `now`.
    pub(crate) fn store(&mut self, gateway: GatewayId, keys: Vec<MessageKey>, now: Instant) {
        if self.gateways.len() >= MEMORY_LIMIT {
            self.gateways.clear();
        }
        self.gateways.insert(gateway, Keys { keys, read_at: now });
    }

    /// Whether `gateway`'s keys were read and there are none.
    pub(crate) fn is_empty(&self, gateway: GatewayId) -> bool {
        self.gateways
            .get(&gateway)
            .is_some_and(|e| e.keys.is_empty())
    }

    /// Forgets a gateway (it may have been deleted).
    pub(crate) fn forget(&mut self, gateway: GatewayId) {
        self.gateways.remove(&gateway);
    }
}

/// Aggregation of repeated rejections by (topic, reason).
#[derive(Debug, Default)]
pub(crate) struct RepeatLog {
    topics: HashMap<(String, &'static str), Repeat>,
}

#[derive(Debug)]
struct Repeat {
    recorded_at: Instant,
    since: u64,
}

impl RepeatLog {
    /// Notes one rejection; returns how many rejections of this topic and reason the record
    /// to write now stands for (this one included), or `None` if none is due yet.
    pub(crate) fn note(&mut self, topic: &str, reason: &'static str, now: Instant) -> Option<u64> {
        if let Some(r) = self.topics.get_mut(&(topic.to_owned(), reason)) {
            r.since += 1;
            if now.saturating_duration_since(r.recorded_at) < RECORD_INTERVAL {
                return None;
            }
            let n = r.since;
            *r = Repeat {
                recorded_at: now,
                since: 0,
            };
            return Some(n);
        }
        if self.topics.len() >= MEMORY_LIMIT {
            self.topics.clear();
        }
        self.topics.insert(
            (topic.to_owned(), reason),
            Repeat {
                recorded_at: now,
                since: 0,
            },
        );
        Some(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOPIC: &str = "wp/v1/acme/gw-1/data";

    #[test]
    fn keys_open_their_gateways_messages_and_go_stale_only_after_the_refresh_delay() {
        let (gw, other) = (GatewayId(1), GatewayId(2));
        let (old, new) = (
            MessageKey::derive(b"old-secret-0123456789"),
            MessageKey::derive(b"new-secret-0123456789"),
        );
        let t0 = Instant::now();
        let mut ring = Keyring::default();
        let sealed = wire::seal::seal(&old, TOPIC, &[0xa0]);
        assert!(matches!(
            ring.open(gw, TOPIC, &sealed, t0),
            Verdict::Unknown
        ));
        ring.store(gw, vec![new.clone(), old.clone()], t0);
        match ring.open(gw, TOPIC, &sealed, t0) {
            Verdict::Opened(message, key) => {
                assert_eq!(message, [0xa0]);
                assert_eq!(key, old, "answers go out under the key the gateway uses");
            }
            v => panic!("{v:?}"),
        }
        ring.store(other, vec![new], t0);
        let refused = |at| match ring.open(other, TOPIC, &sealed, at) {
            Verdict::Refused { error, stale } => (error, stale),
            v => panic!("{v:?}"),
        };
        assert_eq!(refused(t0), (SealError::BadTag, false));
        assert_eq!(refused(t0 + KEY_REFRESH), (SealError::BadTag, true));
        // Unsealed garbage is never a reason to read the keys again.
        assert!(matches!(
            ring.open(other, TOPIC, &[0xa0], t0 + KEY_REFRESH),
            Verdict::Refused {
                error: SealError::NotSealed,
                stale: false
            }
        ));
        // Old keys are not used at all: a retired key must stop working.
        assert!(matches!(
            ring.open(gw, TOPIC, &sealed, t0 + KEY_MAX_AGE),
            Verdict::Unknown
        ));
        ring.forget(other);
        assert!(matches!(
            ring.open(other, TOPIC, &sealed, t0),
            Verdict::Unknown
        ));
    }

    #[test]
    fn repeated_rejections_are_recorded_once_per_interval_with_their_count() {
        let t0 = Instant::now();
        let mut log = RepeatLog::default();
        assert_eq!(log.note(TOPIC, "unauthenticated", t0), Some(1));
        for i in 1..=99 {
            let at = t0 + Duration::from_millis(i);
            assert_eq!(log.note(TOPIC, "unauthenticated", at), None);
        }
        assert_eq!(
            log.note("wp/v1/acme/gw-2/data", "unauthenticated", t0),
            Some(1)
        );
        assert_eq!(
            log.note(TOPIC, "unauthenticated", t0 + RECORD_INTERVAL),
            Some(100)
        );
        assert_eq!(
            log.note(TOPIC, "unauthenticated", t0 + RECORD_INTERVAL),
            None
        );
    }
}
