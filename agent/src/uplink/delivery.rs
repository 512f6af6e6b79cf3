//! What to send next on one MQTT connection: the in-flight window, the live queue, the
//! backlog cursor and the backlog pace. Pure bookkeeping (no I/O, time passed in), so
//! the scheduling rules are unit-tested here and the uplink loop only executes them.
//!
//! Every buffered seq is, at any moment, in exactly one of these places:
//!
//! * **in flight**: published on this connection, waiting for the cloud's ack; re-sent
//!   when `ack_timeout` passes without one, or — after a *retryable* rejection — when its
//!   own [`base::Backoff`] delay passes (the delay grows with every rejection of that seq
//!   and is forgotten once the seq is acked or set aside);
//! * **live queue**: created within the live window and not yet sent (the window was
//!   full); sent before any backlog;
//! * **ahead of the backlog cursor**: older data not yet sent on this connection;
//!   the backlog scan sends it oldest first, paced, within the backlog share of the window;
//! * **not yet seen** (seq > `seen_up_to`): appended since the last classification;
//!   [`Delivery::classify`] puts it in the live queue or leaves it to the backlog.
//!
//! A seq leaves the live queue without being sent only by ageing out of the live window
//! or by overflowing the queue; it then goes back to the backlog by *rewinding* the cursor,
//! so no seq is ever stranded behind the cursor. A new connection ([`Delivery::restart`])
//! forgets everything in flight: all unacked batches are sent again.
//!
//! A seq leaves all these places for good when the buffer no longer queues it: acked
//! ([`Delivery::acked`]), or set aside after a *permanent* rejection
//! ([`Delivery::set_aside`]); both are called only once the buffer's change is durable.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use base::Backoff;

/// Scheduling parameters, derived from the uplink configuration.
#[derive(Debug, Clone, Copy)]
pub(super) struct Params {
    /// Maximum batches in flight.
    pub window: usize,
    /// Re-send a batch not acked after this long.
    pub ack_timeout: Duration,
    /// Batches created within this many ms of now are live.
    pub live_window_ms: i64,
    /// Backlog batches per second.
    pub pace: f64,
    /// First re-send delay after a retryable rejection.
    pub retry_min: Duration,
    /// Largest re-send delay after retryable rejections.
    pub retry_max: Duration,
}

impl Params {
    /// In-flight slots the backlog may use: a quarter of the window stays free for live
    /// batches, so live data never waits behind a full window of backlog.
    fn backlog_slots(&self) -> usize {
        self.window - self.window / 4
    }

    /// Token bucket size: a reconnect may fill the backlog share at once.
    fn burst(&self) -> f64 {
        self.backlog_slots().max(1) as f64
    }
}

/// A batch published on this connection and not acked yet.
#[derive(Debug, Clone, Copy)]
pub(super) struct Flight {
    /// When it is due for a re-send: `ack_timeout` after its last publish, or its
    /// backoff delay after a retryable rejection.
    pub resend_at: Instant,
    /// Whether it went out as backlog.
    pub historical: bool,
}

/// Per-connection delivery state.
#[derive(Debug)]
pub(super) struct Delivery {
    params: Params,
    in_flight: BTreeMap<u64, Flight>,
    /// Backoff of each in-flight seq the cloud refused for now (retryable rejections).
    retrying: BTreeMap<u64, Backoff>,
    /// Unsent live batches `(seq, created_ms)`, ascending seq, at most `window` long.
    live: VecDeque<(u64, i64)>,
    /// Highest seq classified as live or backlog.
    seen_up_to: u64,
    /// The backlog scan continues after this seq.
    backlog_cursor: u64,
    /// The scan reached `seen_up_to`: nothing to do until a rewind or new data.
    backlog_done: bool,
    tokens: f64,
    refilled_at: Instant,
    /// `max` of the last backlog request, to tell "end of data" from "page full".
    requested: usize,
}

impl Delivery {
    pub(super) fn new(params: Params, now: Instant) -> Delivery {
        Delivery {
            params,
            in_flight: BTreeMap::new(),
            retrying: BTreeMap::new(),
            live: VecDeque::new(),
            seen_up_to: 0,
            backlog_cursor: 0,
            backlog_done: true,
            tokens: params.burst(),
            refilled_at: now,
            requested: 0,
        }
    }

    /// A new connection: nothing is in flight, the backlog starts from the oldest batch.
    /// `newest` are the newest buffered `(seq, created_ms)`, ascending; `last_seq` is the
    /// highest seq handed out before `newest` was read.
    pub(super) fn restart(
        &mut self,
        newest: &[(u64, i64)],
        last_seq: u64,
        now: Instant,
        now_ms: i64,
    ) {
        self.in_flight.clear();
        self.retrying.clear();
        self.live.clear();
        self.backlog_cursor = 0;
        self.backlog_done = false;
        self.tokens = self.params.burst();
        self.refilled_at = now;
        self.seen_up_to = last_seq.max(newest.last().map_or(0, |&(seq, _)| seq));
        for &(seq, created_ms) in newest {
            if self.is_live(created_ms, now_ms) {
                self.push_live(seq, created_ms);
            }
        }
    }

    /// The highest seq already classified; new batches are read after it.
    pub(super) fn seen_up_to(&self) -> u64 {
        self.seen_up_to
    }

    /// Classifies batches appended after [`Self::seen_up_to`] (ascending).
    pub(super) fn classify(&mut self, appended: &[(u64, i64)], now_ms: i64) {
        for &(seq, created_ms) in appended {
            if seq <= self.seen_up_to {
                continue;
            }
            self.seen_up_to = seq;
            if self.is_live(created_ms, now_ms) {
                self.push_live(seq, created_ms);
            } else {
                self.backlog_done = false;
            }
        }
    }

    /// Moves live-queued batches that aged out of the live window to the backlog.
    pub(super) fn expire_live(&mut self, now_ms: i64) {
        while let Some(&(seq, created_ms)) = self.live.front() {
            if self.is_live(created_ms, now_ms) {
                break;
            }
            self.live.pop_front();
            self.rewind(seq);
        }
    }

    /// In-flight seqs whose ack is overdue.
    pub(super) fn due_resends(&self, now: Instant) -> Vec<u64> {
        self.in_flight
            .iter()
            .filter(|(_, f)| now >= f.resend_at)
            .map(|(&seq, _)| seq)
            .collect()
    }

    /// Takes the next live seq to send, if the window has room.
    pub(super) fn next_live(&mut self) -> Option<u64> {
        if self.in_flight.len() >= self.params.window {
            return None;
        }
        self.live.pop_front().map(|(seq, _)| seq)
    }

    /// `(after_seq, max)` for the next backlog read, if the backlog may send now.
    pub(super) fn backlog_request(&mut self, now: Instant) -> Option<(u64, usize)> {
        self.refill(now);
        if self.backlog_done || self.backlog_budget() == 0 {
            return None;
        }
        // Enough rows to fill the budget even if every in-flight or queued seq is skipped.
        self.requested = self.backlog_budget() + self.in_flight.len() + self.live.len();
        Some((self.backlog_cursor, self.requested))
    }

    /// Picks the backlog seqs to send from the rows read for [`Self::backlog_request`]
    /// (ascending) and advances the cursor past what was examined.
    pub(super) fn backlog_pick(&mut self, scanned: &[u64]) -> Vec<u64> {
        let budget = self.backlog_budget();
        let mut picked = Vec::new();
        let mut at_end = scanned.len() < self.requested;
        for &seq in scanned {
            if picked.len() == budget {
                at_end = false;
                break;
            }
            if seq > self.seen_up_to {
                at_end = true;
                break;
            }
            self.backlog_cursor = seq;
            if !self.in_flight.contains_key(&seq) && !self.is_queued(seq) {
                picked.push(seq);
            }
        }
        self.backlog_done = at_end;
        picked
    }

    /// Records a first publish on this connection.
    pub(super) fn sent(&mut self, seq: u64, historical: bool, now: Instant) {
        if historical {
            self.tokens -= 1.0;
        }
        self.in_flight.insert(
            seq,
            Flight {
                resend_at: now + self.params.ack_timeout,
                historical,
            },
        );
    }

    /// Records a re-send; returns the batch's flight if it is still in flight.
    pub(super) fn resent(&mut self, seq: u64, now: Instant) -> Option<Flight> {
        let flight = self.in_flight.get_mut(&seq)?;
        flight.resend_at = now + self.params.ack_timeout;
        Some(*flight)
    }

    /// Forgets the acked seqs; returns how many were in flight.
    pub(super) fn acked(&mut self, ranges: &[(u64, u64)]) -> usize {
        self.settle(ranges)
    }

    /// Forgets seqs set aside after a permanent rejection: they are never sent again on
    /// this connection (and the buffer no longer queues them for the next). Returns how
    /// many were in flight.
    pub(super) fn set_aside(&mut self, ranges: &[(u64, u64)]) -> usize {
        self.settle(ranges)
    }

    /// A retryable rejection: the in-flight seqs in `ranges` are re-sent after their own
    /// backoff delay instead of the ack timeout. Seqs not in flight are left alone (the
    /// backlog or live queue sends them as usual). Returns how many were rescheduled.
    pub(super) fn retry_later(&mut self, ranges: &[(u64, u64)], now: Instant) -> usize {
        let mut rescheduled = 0;
        for &(lo, hi) in ranges {
            if lo > hi {
                continue;
            }
            for (&seq, flight) in self.in_flight.range_mut(lo..=hi) {
                let (min, max) = (self.params.retry_min, self.params.retry_max);
                let backoff = self
                    .retrying
                    .entry(seq)
                    .or_insert_with(|| Backoff::new(min, max));
                flight.resend_at = now + backoff.next_delay();
                rescheduled += 1;
            }
        }
        rescheduled
    }

    /// Forgets a seq the buffer no longer holds (dropped by a limit).
    pub(super) fn forget(&mut self, seq: u64) {
        self.in_flight.remove(&seq);
        self.retrying.remove(&seq);
    }

    /// Removes settled seqs from every place; returns how many were in flight.
    fn settle(&mut self, ranges: &[(u64, u64)]) -> usize {
        let hit = |seq: &u64| ranges.iter().any(|&(lo, hi)| (lo..=hi).contains(seq));
        let before = self.in_flight.len();
        self.in_flight.retain(|seq, _| !hit(seq));
        self.retrying.retain(|seq, _| !hit(seq));
        self.live.retain(|(seq, _)| !hit(seq));
        before - self.in_flight.len()
    }

    pub(super) fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// When the loop must run again without any event: the earliest ack deadline, or the
    /// moment the backlog may send its next batch.
    pub(super) fn next_wake(&self) -> Option<Instant> {
        let resend = self.in_flight.values().map(|f| f.resend_at).min();
        let backlog = (!self.backlog_done && self.in_flight.len() < self.params.backlog_slots())
            .then(|| {
                let missing = (1.0 - self.tokens).max(0.0);
                self.refilled_at + Duration::from_secs_f64(missing / self.params.pace)
            });
        match (resend, backlog) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn is_live(&self, created_ms: i64, now_ms: i64) -> bool {
        now_ms.saturating_sub(created_ms) <= self.params.live_window_ms
    }

    fn is_queued(&self, seq: u64) -> bool {
        self.live.iter().any(|&(s, _)| s == seq)
    }

    fn push_live(&mut self, seq: u64, created_ms: i64) {
        self.live.push_back((seq, created_ms));
        if self.live.len() > self.params.window
            && let Some((oldest, _)) = self.live.pop_front()
        {
            self.rewind(oldest);
        }
    }

    /// Hands `seq` back to the backlog.
    fn rewind(&mut self, seq: u64) {
        if seq <= self.backlog_cursor {
            self.backlog_cursor = seq - 1;
        }
        self.backlog_done = false;
    }

    fn backlog_budget(&self) -> usize {
        let free = self
            .params
            .backlog_slots()
            .saturating_sub(self.in_flight.len());
        free.min(self.tokens.max(0.0).floor() as usize)
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now
            .saturating_duration_since(self.refilled_at)
            .as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.params.pace).min(self.params.burst());
        self.refilled_at = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW_MS: i64 = 1_000_000;

    fn params(window: usize) -> Params {
        Params {
            window,
            ack_timeout: Duration::from_secs(5),
            live_window_ms: 10_000,
            pace: 10.0,
            retry_min: Duration::from_millis(100),
            retry_max: Duration::from_millis(400),
        }
    }

    /// Runs one backlog step against a buffer holding `buffered` and marks picks sent.
    fn backlog_step(d: &mut Delivery, buffered: &[u64], now: Instant) -> Vec<u64> {
        let Some((after, max)) = d.backlog_request(now) else {
            return Vec::new();
        };
        let rows: Vec<u64> = buffered
            .iter()
            .copied()
            .filter(|&s| s > after)
            .take(max)
            .collect();
        let picked = d.backlog_pick(&rows);
        for &seq in &picked {
            d.sent(seq, true, now);
        }
        picked
    }

    #[test]
    fn restart_queues_recent_batches_as_live_and_leaves_older_ones_to_the_backlog() {
        let now = Instant::now();
        let mut d = Delivery::new(params(8), now);
        d.restart(
            &[(5, NOW_MS - 60_000), (6, NOW_MS - 5_000), (7, NOW_MS)],
            7,
            now,
            NOW_MS,
        );
        assert_eq!(d.next_live(), Some(6));
        assert_eq!(d.next_live(), Some(7));
        assert_eq!(d.next_live(), None);
        assert_eq!(d.seen_up_to(), 7);
    }

    #[test]
    fn live_goes_first_and_backlog_uses_only_its_share_of_the_window() {
        let now = Instant::now();
        let mut d = Delivery::new(params(8), now);
        d.restart(&[], 100, now, NOW_MS);
        let buffered: Vec<u64> = (1..=100).collect();
        let picked = backlog_step(&mut d, &buffered, now);
        assert_eq!(
            picked,
            (1..=6).collect::<Vec<_>>(),
            "6 of 8 slots for backlog"
        );
        assert!(backlog_step(&mut d, &buffered, now).is_empty());
        d.classify(&[(101, NOW_MS), (102, NOW_MS)], NOW_MS);
        assert_eq!(d.next_live(), Some(101));
        d.sent(101, false, now);
        assert_eq!(d.next_live(), Some(102));
        d.sent(102, false, now);
        assert_eq!(d.in_flight(), 8);
        d.classify(&[(103, NOW_MS)], NOW_MS);
        assert_eq!(d.next_live(), None, "window full");
        assert_eq!(d.acked(&[(1, 1)]), 1);
        assert_eq!(d.next_live(), Some(103), "a freed slot goes to live first");
    }

    #[test]
    fn backlog_is_paced_by_tokens() {
        let start = Instant::now();
        let mut d = Delivery::new(params(40), start);
        d.restart(&[], 1000, start, NOW_MS);
        let buffered: Vec<u64> = (1..=1000).collect();
        let first = backlog_step(&mut d, &buffered, start);
        assert_eq!(first.len(), 30, "the burst fills the backlog share");
        d.acked(&[(1, 1000)]);
        assert!(
            backlog_step(&mut d, &buffered, start).is_empty(),
            "no tokens left"
        );
        let wake = d.next_wake().expect("backlog waits for a token");
        assert_eq!(wake, start + Duration::from_millis(100));
        let later = start + Duration::from_millis(500);
        assert_eq!(
            backlog_step(&mut d, &buffered, later),
            vec![31, 32, 33, 34, 35]
        );
    }

    #[test]
    fn backlog_skips_in_flight_and_queued_seqs_and_finishes_at_seen_up_to() {
        let now = Instant::now();
        let mut d = Delivery::new(params(8), now);
        d.restart(&[(4, NOW_MS), (5, NOW_MS)], 5, now, NOW_MS);
        assert_eq!(d.next_live(), Some(4));
        d.sent(4, false, now);
        // 5 is queued live, 4 in flight; 6 appended but not yet classified.
        let buffered = [1, 2, 3, 4, 5, 6];
        assert_eq!(backlog_step(&mut d, &buffered, now), vec![1, 2, 3]);
        assert!(d.backlog_done);
        assert_eq!(
            d.next_wake(),
            Some(now + Duration::from_secs(5)),
            "only ack deadlines"
        );
    }

    #[test]
    fn expired_live_batches_rewind_the_backlog_cursor() {
        let now = Instant::now();
        let mut d = Delivery::new(params(1), now);
        d.restart(&[(1, NOW_MS - 60_000), (2, NOW_MS)], 2, now, NOW_MS);
        let buffered = [1, 2];
        assert_eq!(backlog_step(&mut d, &buffered, now), vec![1]);
        assert_eq!(d.next_live(), None, "window of one is full");
        d.expire_live(NOW_MS + 20_000);
        d.acked(&[(1, 1)]);
        assert_eq!(d.next_live(), None, "2 is no longer live");
        assert_eq!(
            backlog_step(&mut d, &[2], now + Duration::from_secs(1)),
            vec![2]
        );
    }

    #[test]
    fn live_queue_overflow_goes_back_to_the_backlog() {
        let now = Instant::now();
        let mut d = Delivery::new(params(2), now);
        d.restart(&[], 0, now, NOW_MS);
        d.classify(&[(1, NOW_MS), (2, NOW_MS), (3, NOW_MS)], NOW_MS);
        assert_eq!(d.next_live(), Some(2));
        d.sent(2, false, now);
        assert_eq!(d.next_live(), Some(3));
        d.sent(3, false, now);
        d.acked(&[(2, 3)]);
        assert_eq!(backlog_step(&mut d, &[1], now), vec![1]);
    }

    #[test]
    fn overdue_batches_are_due_for_resend_and_restart_forgets_the_window() {
        let now = Instant::now();
        let mut d = Delivery::new(params(4), now);
        d.restart(&[], 0, now, NOW_MS);
        d.classify(&[(1, NOW_MS), (2, NOW_MS)], NOW_MS);
        d.next_live();
        d.sent(1, false, now);
        d.next_live();
        d.sent(2, false, now + Duration::from_secs(1));
        assert!(d.due_resends(now + Duration::from_millis(4_999)).is_empty());
        assert_eq!(d.due_resends(now + Duration::from_secs(5)), vec![1]);
        let flight = d
            .resent(1, now + Duration::from_secs(5))
            .expect("in flight");
        assert!(!flight.historical);
        assert!(d.resent(9, now).is_none());
        d.restart(&[(1, NOW_MS), (2, NOW_MS)], 2, now, NOW_MS);
        assert_eq!(d.in_flight(), 0);
        assert_eq!(d.next_live(), Some(1), "unacked batches are sent again");
    }

    #[test]
    fn set_aside_seqs_are_never_sent_again() {
        let now = Instant::now();
        let mut d = Delivery::new(params(4), now);
        d.restart(&[], 0, now, NOW_MS);
        d.classify(&[(1, NOW_MS), (2, NOW_MS), (3, NOW_MS)], NOW_MS);
        d.next_live();
        d.sent(1, false, now);
        assert_eq!(d.set_aside(&[(1, 2)]), 1, "1 was in flight");
        assert_eq!(d.in_flight(), 0);
        assert!(d.due_resends(now + Duration::from_secs(60)).is_empty());
        assert_eq!(d.next_live(), Some(3), "2 left the live queue too");
        assert_eq!(d.next_live(), None);
    }

    #[test]
    fn a_retryable_rejection_resends_after_a_growing_backoff_not_the_ack_timeout() {
        let t0 = Instant::now();
        let mut d = Delivery::new(params(4), t0);
        d.restart(&[], 0, t0, NOW_MS);
        d.classify(&[(1, NOW_MS), (2, NOW_MS)], NOW_MS);
        d.next_live();
        d.sent(1, false, t0);
        d.next_live();
        d.sent(2, false, t0);
        assert_eq!(
            d.retry_later(&[(1, 1), (9, 9)], t0),
            1,
            "9 is not in flight"
        );
        // The first delay is drawn from [retry_min / 2, retry_min] = [50, 100] ms.
        assert!(d.due_resends(t0 + Duration::from_millis(49)).is_empty());
        assert_eq!(d.due_resends(t0 + Duration::from_millis(100)), vec![1]);
        assert!(d.next_wake().expect("a deadline") <= t0 + Duration::from_millis(100));
        let t1 = t0 + Duration::from_millis(100);
        d.resent(1, t1);
        assert!(
            !d.due_resends(t1 + Duration::from_millis(4_999))
                .contains(&1),
            "after a re-send the ack timeout applies again"
        );
        // Rejected again: the delay doubled, to [100, 200] ms.
        d.retry_later(&[(1, 1)], t1);
        assert!(d.due_resends(t1 + Duration::from_millis(99)).is_empty());
        assert_eq!(d.due_resends(t1 + Duration::from_millis(200)), vec![1]);
        // Acked: its backoff is forgotten, a later rejection of the same seq starts over.
        d.acked(&[(1, 1)]);
        assert!(d.retrying.is_empty());
        assert_eq!(d.due_resends(t0 + Duration::from_secs(5)), vec![2]);
    }
}
