//! Per-gateway session tracking: live seq gaps and rebirth rate limiting.
//!
//! The agent sends live batches in seq order with at most its in-flight window
//! outstanding, so consecutive live batches of one boot differ by at most about the window
//! (several ingesters in one shared group each see a subset, which stays well inside it).
//! A larger jump means the session state is off (the agent restarted with a fresh buffer,
//! or dropped batches we never heard about): the ingester asks for a rebirth so the
//! catalog and the current boot are re-announced. Historical batches (backlog) are ignored
//! here — their seqs are expected to be out of order.
//!
//! Rebirth requests, whatever their trigger (gap or unknown boot), are rate-limited per
//! gateway so a misbehaving gateway cannot make the ingester flood its command topic.
//! Time is passed in, so the logic is testable without sleeping.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use store::GatewayId;

/// Live stream position of one gateway, plus its last rebirth request.
#[derive(Debug, Default)]
struct Session {
    /// Boot and seq of the newest live batch seen.
    live: Option<(u64, u64)>,
    /// When a rebirth was last requested.
    last_rebirth: Option<Instant>,
}

/// Session state of every gateway this ingester has seen.
#[derive(Debug)]
pub(crate) struct Sessions {
    window: u64,
    min_rebirth_interval: Duration,
    by_gateway: HashMap<GatewayId, Session>,
}

impl Sessions {
    /// `window`: the largest normal jump between consecutive live seqs.
    pub(crate) fn new(window: u64, min_rebirth_interval: Duration) -> Sessions {
        Sessions {
            window,
            min_rebirth_interval,
            by_gateway: HashMap::new(),
        }
    }

    /// A birth started `boot_id`: live tracking restarts for the new boot.
    pub(crate) fn birth(&mut self, gateway: GatewayId, boot_id: u64) {
        let s = self.by_gateway.entry(gateway).or_default();
        if s.live.is_some_and(|(boot, _)| boot != boot_id) {
            s.live = None;
        }
    }

    /// Records a stored live batch; returns `true` when its seq jumped beyond the window
    /// past the previous live seq of the same boot.
    pub(crate) fn live_batch(&mut self, gateway: GatewayId, boot_id: u64, seq: u64) -> bool {
        let s = self.by_gateway.entry(gateway).or_default();
        let gap = match s.live {
            Some((boot, last)) if boot == boot_id => seq > last.saturating_add(self.window),
            _ => false,
        };
        let newer = match s.live {
            Some((boot, last)) => boot != boot_id || seq > last,
            None => true,
        };
        if newer {
            s.live = Some((boot_id, seq));
        }
        gap
    }

    /// Whether a rebirth may be requested from `gateway` now; if so, the request is
    /// recorded and the next one is allowed only after the minimum interval.
    pub(crate) fn allow_rebirth(&mut self, gateway: GatewayId, now: Instant) -> bool {
        let s = self.by_gateway.entry(gateway).or_default();
        let allowed = s
            .last_rebirth
            .is_none_or(|t| now.saturating_duration_since(t) >= self.min_rebirth_interval);
        if allowed {
            s.last_rebirth = Some(now);
        }
        allowed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GW: GatewayId = GatewayId(1);

    #[test]
    fn jumps_within_the_window_are_normal() {
        let mut s = Sessions::new(10, Duration::from_secs(60));
        assert!(!s.live_batch(GW, 7, 100));
        assert!(!s.live_batch(GW, 7, 101));
        assert!(!s.live_batch(GW, 7, 111));
        // Out-of-order (retransmitted) live batches are not gaps either.
        assert!(!s.live_batch(GW, 7, 105));
        assert!(s.live_batch(GW, 7, 122));
    }

    #[test]
    fn a_new_boot_restarts_tracking() {
        let mut s = Sessions::new(10, Duration::from_secs(60));
        assert!(!s.live_batch(GW, 7, 100));
        s.birth(GW, 8);
        assert!(!s.live_batch(GW, 8, 500));
        // A batch of another boot does not count against this one.
        assert!(!s.live_batch(GW, 9, 5000));
        assert!(!s.live_batch(GW, 9, 5001));
        assert!(!s.live_batch(GW, 8, 501));
    }

    #[test]
    fn rebirths_are_rate_limited_per_gateway() {
        let mut s = Sessions::new(10, Duration::from_secs(60));
        let t0 = Instant::now();
        assert!(s.allow_rebirth(GW, t0));
        assert!(!s.allow_rebirth(GW, t0 + Duration::from_secs(59)));
        assert!(s.allow_rebirth(GatewayId(2), t0));
        assert!(s.allow_rebirth(GW, t0 + Duration::from_secs(60)));
    }
}
