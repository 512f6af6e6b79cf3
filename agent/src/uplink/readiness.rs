//! What the agent knows of the cloud's readiness ([`wire::state`]): the last state of each
//! ingester, and whether a new one calls for re-sending everything unacked. Pure
//! bookkeeping (no I/O), so the rules are unit-tested here.
//!
//! * A state that does not supersede the last one seen on its ingester's topic
//!   ([`wire::CloudState::supersedes`]: an older session, or a repeat) is **stale**: ignored.
//! * An "online" of a new session that reaches us as a live message means an ingester has
//!   just subscribed: whatever we published since the broker came back may have been
//!   discarded (nobody was subscribed), so everything unacked is sent again at once.
//! * The same "online" delivered as a *retained* message, on our own subscription, was
//!   published before we subscribed, so before anything we sent on this connection (the
//!   broker handles one connection's packets in order): the re-send at our CONNACK
//!   already covers it. Only recorded.
//! * "Offline" is recorded and never stops anything: agents keep sending (a forged or
//!   stale "offline" must cost nothing), and without any state at all (an older cloud)
//!   delivery falls back to the ack timeout.
//! * The cloud counts as online while any ingester does: one of several ingesters dying
//!   changes nothing for the others.

use std::collections::BTreeMap;

use wire::CloudState;

/// Ingesters remembered; states of further ones are ignored (as stale), so a flood of
/// topics can neither grow memory nor trigger re-sends.
const MAX_INGESTERS: usize = 64;

/// What to do about a received state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    /// A new ingester session is online: re-send every unacked batch now.
    Resend,
    /// Recorded; nothing to do.
    Noted,
    /// Older than (or a repeat of) what is known: ignored.
    Stale,
}

/// The last state of each ingester.
#[derive(Debug, Default)]
pub(super) struct Readiness {
    last: BTreeMap<String, CloudState>,
}

impl Readiness {
    /// Takes the state published on `ingester`'s topic; `retained` is the MQTT retain
    /// flag as received (set only on delivery for a new subscription).
    pub(super) fn observe(&mut self, ingester: &str, state: CloudState, retained: bool) -> Verdict {
        let known = self.last.get(ingester);
        if !state.supersedes(known) || (known.is_none() && self.last.len() >= MAX_INGESTERS) {
            return Verdict::Stale;
        }
        self.last.insert(ingester.to_owned(), state);
        if state.online && !retained {
            Verdict::Resend
        } else {
            Verdict::Noted
        }
    }

    /// Ingesters whose last state says online.
    pub(super) fn online(&self) -> usize {
        self.last.values().filter(|s| s.online).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(online: bool, session_ms: i64) -> CloudState {
        CloudState { online, session_ms }
    }

    #[test]
    fn a_new_online_session_asks_for_a_resend_once() {
        let mut r = Readiness::default();
        assert_eq!(r.observe("a", state(true, 10), false), Verdict::Resend);
        assert_eq!(r.online(), 1);
        // The same session again (a duplicate delivery): nothing.
        assert_eq!(r.observe("a", state(true, 10), false), Verdict::Stale);
        // Its end, then a new session.
        assert_eq!(r.observe("a", state(false, 10), false), Verdict::Noted);
        assert_eq!(r.online(), 0);
        assert_eq!(r.observe("a", state(true, 11), false), Verdict::Resend);
    }

    #[test]
    fn an_older_state_never_overrides_a_newer_one() {
        let mut r = Readiness::default();
        assert_eq!(r.observe("a", state(true, 20), false), Verdict::Resend);
        // A late will of an earlier session, and an earlier session's online.
        assert_eq!(r.observe("a", state(false, 19), false), Verdict::Stale);
        assert_eq!(r.observe("a", state(true, 15), false), Verdict::Stale);
        assert_eq!(r.online(), 1);
        // A session ended stays ended.
        assert_eq!(r.observe("a", state(false, 20), false), Verdict::Noted);
        assert_eq!(r.observe("a", state(true, 20), false), Verdict::Stale);
        assert_eq!(r.online(), 0);
    }

    #[test]
    fn a_retained_online_is_recorded_without_a_resend() {
        let mut r = Readiness::default();
        assert_eq!(r.observe("a", state(true, 30), true), Verdict::Noted);
        assert_eq!(r.online(), 1);
        // The same session delivered live later is a repeat.
        assert_eq!(r.observe("a", state(true, 30), false), Verdict::Stale);
        // A newer session delivered live is not.
        assert_eq!(r.observe("a", state(true, 31), false), Verdict::Resend);
    }

    #[test]
    fn any_online_ingester_keeps_the_cloud_online() {
        let mut r = Readiness::default();
        assert_eq!(r.observe("a", state(true, 1), false), Verdict::Resend);
        assert_eq!(r.observe("b", state(true, 5), true), Verdict::Noted);
        assert_eq!(r.observe("a", state(false, 1), false), Verdict::Noted);
        assert_eq!(r.online(), 1, "b is still online");
        // Each ingester has its own ordering: a's small stamps do not lose to b's.
        assert_eq!(r.observe("a", state(true, 2), false), Verdict::Resend);
        assert_eq!(r.online(), 2);
    }

    #[test]
    fn an_offline_never_asks_for_anything() {
        let mut r = Readiness::default();
        assert_eq!(r.observe("a", state(false, 40), false), Verdict::Noted);
        assert_eq!(r.observe("b", state(false, 40), true), Verdict::Noted);
        assert_eq!(r.online(), 0);
    }

    #[test]
    fn remembered_ingesters_are_bounded() {
        let mut r = Readiness::default();
        for i in 0..MAX_INGESTERS + 10 {
            r.observe(&format!("i{i}"), state(true, 1), true);
        }
        assert_eq!(r.last.len(), MAX_INGESTERS);
        assert_eq!(r.observe("new", state(true, 9), false), Verdict::Stale);
        // A known one is still updated.
        assert_eq!(r.observe("i0", state(true, 2), false), Verdict::Resend);
    }
}
