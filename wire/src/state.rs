//! The cloud's readiness: a retained, last-will-backed state message per ingester, as
//! Sparkplug 3.0's primary host application `STATE`.
//!
//! ```text
//! topic  wp/v1/_state/{ingester}          (retained, QoS 1, published by ingesters only)
//! state = { 0: version, 1: online, 2: session_ms }
//! ```
//!
//! An ingester registers `{online: false, session_ms: S}` as its MQTT last will (retained)
//! and, once the broker has granted its data subscription (SUBACK), publishes
//! `{online: true, session_ms: S}` (retained) on the same topic. `S` is the time (UTC ms,
//! cloud clock) the ingester started that connection attempt, so each MQTT session of an
//! ingester has its own, strictly larger `S` ([`CloudState::new_session`]). When the
//! ingester dies, the broker publishes the will: the retained message becomes "offline"
//! of that same session.
//!
//! **Ordering.** A state replaces the last one seen on its topic only if it is of a newer
//! session, or it is the "offline" of the session last seen online
//! ([`CloudState::supersedes`]). So a retained "offline" of an older session (delivered
//! late, or kept by a broker's persistence) never overrides a newer "online", and a
//! repeated "online" of a session already seen is recognised as such.
//!
//! **Several ingesters.** Each ingester has its own topic (its MQTT client id, a valid
//! topic id), so one ingester dying does not make the cloud look gone: agents subscribe
//! to [`crate::topic::STATE_FILTER`] and count the cloud online while any ingester is.
//!
//! **Not sealed.** Seals are per gateway ([`crate::seal`]): a cloud-wide message has no
//! key every agent shares without sharing it with every gateway. None is needed: agents
//! only ever *add* work on a state message (an "online" of a new session makes them re-send
//! their unacked batches at once instead of after `ack_timeout`; an "offline" changes a
//! gauge), and they never stop or delete anything because of it. A forged "online" thus
//! costs duplicate publishes, which at-least-once delivery already allows; a forged
//! "offline" costs nothing. The brokers still let only ingesters publish there.
//!
//! **Topic.** `_state` cannot be a tenant id (ids start with a letter or digit, see
//! [`crate::topic::validate_id`]; the store enforces the same rule on tenant slugs), and
//! the topic has four levels where every gateway topic has five or more, so no
//! gateway's topics and no ingester subscription (`wp/v1/+/+/{kind}`) can match it.

use crate::DecodeError;
use crate::codec::{Reader, required};
use crate::control::message;

/// One ingester's readiness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CloudState {
    /// `true`: the ingester's data subscription is active; `false`: its session ended.
    pub online: bool,
    /// When the ingester started this MQTT session (UTC ms, cloud clock); the same in
    /// the session's will and its "online".
    pub session_ms: i64,
}

const STATE: &str = "state";

impl CloudState {
    /// The session stamp of a new connection attempt started at `now_ms`, after a
    /// session stamped `previous` (0 if none): strictly increasing even if the clock
    /// steps back.
    pub fn new_session(previous: i64, now_ms: i64) -> i64 {
        now_ms.max(previous.saturating_add(1))
    }

    /// Whether `self` replaces `previous`, the last state seen on the same topic: a newer
    /// session, or the end ("offline") of the session last seen online.
    pub fn supersedes(&self, previous: Option<&CloudState>) -> bool {
        match previous {
            None => true,
            Some(p) => {
                self.session_ms > p.session_ms
                    || (self.session_ms == p.session_ms && p.online && !self.online)
            }
        }
    }

    /// Encodes the state.
    pub fn encode(&self) -> Vec<u8> {
        message(3, |e| {
            e.u8(1)?.bool(self.online)?;
            e.u8(2)?.i64(self.session_ms)?;
            Ok(())
        })
    }

    /// Decodes a state.
    pub fn decode(bytes: &[u8]) -> Result<CloudState, DecodeError> {
        let mut r = Reader::new(bytes, STATE);
        let (mut online, mut session_ms) = (None, None);
        r.message_map(|r, key| {
            match key {
                1 => online = Some(r.bool()?),
                2 => session_ms = Some(r.i64()?),
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        r.finish()?;
        Ok(CloudState {
            online: required(online, STATE, "online")?,
            session_ms: required(session_ms, STATE, "session_ms")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(online: bool, session_ms: i64) -> CloudState {
        CloudState { online, session_ms }
    }

    #[test]
    fn round_trips_and_skips_unknown_keys() {
        for s in [state(true, 1_763_800_000_000), state(false, -5)] {
            assert_eq!(CloudState::decode(&s.encode()).unwrap(), s);
        }
        // {0: 1, 1: true, 2: 7, 9: "later field"}
        let mut bytes = vec![0xa4, 0x00, 0x01, 0x01, 0xf5, 0x02, 0x07, 0x09, 0x65];
        bytes.extend_from_slice(b"later");
        assert_eq!(CloudState::decode(&bytes).unwrap(), state(true, 7));
    }

    #[test]
    fn malformed_states_are_errors_not_panics() {
        let good = state(true, 42).encode();
        for cut in 0..good.len() {
            assert!(CloudState::decode(&good[..cut]).is_err(), "{cut}");
        }
        // Missing session, newer version, trailing byte.
        assert!(CloudState::decode(&[0xa2, 0x00, 0x01, 0x01, 0xf5]).is_err());
        assert!(matches!(
            CloudState::decode(&[0xa3, 0x00, 0x02, 0x01, 0xf5, 0x02, 0x07]),
            Err(DecodeError::IncompatibleVersion { .. })
        ));
        let mut trailing = good.clone();
        trailing.push(0);
        assert!(CloudState::decode(&trailing).is_err());
    }

    #[test]
    fn an_older_session_never_overrides_a_newer_one() {
        let online_new = state(true, 200);
        let offline_old = state(false, 100);
        let offline_new = state(false, 200);
        assert!(online_new.supersedes(None));
        assert!(online_new.supersedes(Some(&offline_old)));
        assert!(!offline_old.supersedes(Some(&online_new)));
        assert!(offline_new.supersedes(Some(&online_new)), "session ends");
        assert!(!online_new.supersedes(Some(&online_new)), "repeat");
        assert!(
            !online_new.supersedes(Some(&offline_new)),
            "no resurrection"
        );
        assert!(!offline_new.supersedes(Some(&offline_new)));
        assert!(state(true, 201).supersedes(Some(&offline_new)));
    }

    #[test]
    fn session_stamps_increase_even_when_the_clock_steps_back() {
        assert_eq!(CloudState::new_session(0, 1000), 1000);
        assert_eq!(CloudState::new_session(1000, 900), 1001);
        assert_eq!(CloudState::new_session(1000, 5000), 5000);
        assert_eq!(CloudState::new_session(i64::MAX, 0), i64::MAX);
    }
}
