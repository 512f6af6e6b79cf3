//! Per-gateway traffic limits and failed-login throttling: plain structs that take `now`,
//! so every rule is unit-tested without sockets or sleeps.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use base::Backoff;

use crate::metrics::DropReason;

/// A token bucket: `rate` tokens per second, at most `burst` saved up.
#[derive(Debug, Clone)]
pub(crate) struct Bucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    /// A full bucket.
    pub(crate) fn new(rate: f64, burst: f64, now: Instant) -> Bucket {
        Bucket {
            rate,
            burst,
            tokens: burst,
            last: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.last = now;
    }

    fn has(&mut self, n: f64, now: Instant) -> bool {
        self.refill(now);
        self.tokens >= n
    }

    fn take(&mut self, n: f64) {
        self.tokens -= n;
    }
}

/// The limits of one gateway connection: messages and bytes of PUBLISH packets, and
/// control packets (SUBSCRIBE, UNSUBSCRIBE, PINGREQ) on their own fixed budget.
#[derive(Debug, Clone)]
pub(crate) struct Limiter {
    messages: Bucket,
    bytes: Bucket,
    control: Bucket,
}

/// Control packets a gateway may send per second (SUBSCRIBE, UNSUBSCRIBE, PINGREQ): the
/// agent sends two SUBSCRIBEs per session and one PINGREQ per keep-alive.
pub(crate) const CONTROL_PER_SECOND: f64 = 10.0;
/// Control packets a gateway may send at once.
pub(crate) const CONTROL_BURST: f64 = 100.0;

impl Limiter {
    pub(crate) fn new(limits: &crate::FrontOptions, now: Instant) -> Limiter {
        Limiter {
            messages: Bucket::new(
                f64::from(limits.messages_per_second),
                f64::from(limits.message_burst),
                now,
            ),
            bytes: Bucket::new(
                limits.bytes_per_second as f64,
                limits.byte_burst as f64,
                now,
            ),
            control: Bucket::new(CONTROL_PER_SECOND, CONTROL_BURST, now),
        }
    }

    /// Admits one PUBLISH of `bytes` bytes (its whole frame), or says why not. A refused
    /// message takes no tokens.
    pub(crate) fn admit(&mut self, bytes: usize, now: Instant) -> Result<(), DropReason> {
        if !self.messages.has(1.0, now) {
            return Err(DropReason::MessageRate);
        }
        if !self.bytes.has(bytes as f64, now) {
            return Err(DropReason::ByteRate);
        }
        self.messages.take(1.0);
        self.bytes.take(bytes as f64);
        Ok(())
    }

    /// Admits one control packet.
    pub(crate) fn admit_control(&mut self, now: Instant) -> bool {
        let ok = self.control.has(1.0, now);
        if ok {
            self.control.take(1.0);
        }
        ok
    }
}

/// Failed-login throttling per source address and per username.
///
/// The first `free_failures` consecutive failures of a key cost nothing; each further one
/// blocks the key for the next [`Backoff`] delay (exponential with jitter, from
/// `backoff_min` to `backoff_max`). While either the address or the username is blocked,
/// a login is refused before the store is asked. A successful login clears its username
/// (not its address: one valid credential must not reset an address that is guessing
/// others). Keys quiet for `forget_after` are forgotten.
#[derive(Debug)]
pub(crate) struct LoginThrottle {
    free_failures: u32,
    backoff_min: Duration,
    backoff_max: Duration,
    forget_after: Duration,
    by_addr: HashMap<IpAddr, Strikes>,
    by_user: HashMap<String, Strikes>,
}

#[derive(Debug)]
struct Strikes {
    failures: u32,
    backoff: Backoff,
    blocked_until: Option<Instant>,
    last: Instant,
}

/// Keys kept before stale ones are swept (bounded memory under a scan).
const SWEEP_ABOVE: usize = 10_000;

impl LoginThrottle {
    pub(crate) fn new(options: &crate::FrontOptions) -> LoginThrottle {
        LoginThrottle {
            free_failures: options.login_free_failures,
            backoff_min: options.login_backoff_min,
            backoff_max: options.login_backoff_max,
            forget_after: options.login_backoff_max.saturating_mul(4),
            by_addr: HashMap::new(),
            by_user: HashMap::new(),
        }
    }

    /// `Some(wait)` while the address or the username is blocked.
    pub(crate) fn blocked(&self, addr: IpAddr, user: &str, now: Instant) -> Option<Duration> {
        let until = |s: Option<&Strikes>| {
            s.and_then(|s| s.blocked_until)
                .filter(|t| *t > now)
                .map(|t| t - now)
        };
        match (
            until(self.by_addr.get(&addr)),
            until(self.by_user.get(user)),
        ) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }

    /// `Some(wait)` while the username alone is blocked (the ingester, see the crate docs).
    pub(crate) fn blocked_user(&self, user: &str, now: Instant) -> Option<Duration> {
        self.by_user
            .get(user)
            .and_then(|s| s.blocked_until)
            .filter(|t| *t > now)
            .map(|t| t - now)
    }

    /// Records a refused login.
    pub(crate) fn failed(&mut self, addr: IpAddr, user: &str, now: Instant) {
        let (free, min, max) = (self.free_failures, self.backoff_min, self.backoff_max);
        let strike = |s: &mut Strikes| {
            s.failures = s.failures.saturating_add(1);
            s.last = now;
            if s.failures > free {
                s.blocked_until = Some(now + s.backoff.next_delay());
            }
        };
        let fresh = || Strikes {
            failures: 0,
            backoff: Backoff::new(min, max),
            blocked_until: None,
            last: now,
        };
        strike(self.by_addr.entry(addr).or_insert_with(fresh));
        strike(self.by_user.entry(user.to_owned()).or_insert_with(fresh));
        if self.by_addr.len() + self.by_user.len() > SWEEP_ABOVE {
            self.sweep(now);
        }
    }

    /// Records a successful login: the username starts afresh.
    pub(crate) fn succeeded(&mut self, user: &str) {
        self.by_user.remove(user);
    }

    fn sweep(&mut self, now: Instant) {
        let forget = self.forget_after;
        let keep = |s: &Strikes| {
            now.saturating_duration_since(s.last) < forget
                || s.blocked_until.is_some_and(|t| t > now)
        };
        self.by_addr.retain(|_, s| keep(s));
        self.by_user.retain(|_, s| keep(s));
    }

    #[cfg(test)]
    fn keys(&self) -> usize {
        self.by_addr.len() + self.by_user.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FrontOptions;

    fn options() -> FrontOptions {
        FrontOptions {
            messages_per_second: 10,
            message_burst: 20,
            bytes_per_second: 1000,
            byte_burst: 4000,
            login_free_failures: 2,
            login_backoff_min: Duration::from_secs(1),
            login_backoff_max: Duration::from_secs(8),
            client_certificates: Default::default(),
        }
    }

    #[test]
    fn a_flood_gets_the_burst_then_the_rate() {
        let t0 = Instant::now();
        let mut l = Limiter::new(&options(), t0);
        let passed = (0..10_000).filter(|_| l.admit(10, t0).is_ok()).count();
        assert_eq!(passed, 20, "the burst");
        assert_eq!(l.admit(10, t0), Err(DropReason::MessageRate));
        let t1 = t0 + Duration::from_secs(1);
        let passed = (0..10_000).filter(|_| l.admit(10, t1).is_ok()).count();
        assert_eq!(passed, 10, "one second of rate");
    }

    #[test]
    fn bytes_are_limited_independently_and_refusals_cost_nothing() {
        let t0 = Instant::now();
        let mut l = Limiter::new(&options(), t0);
        assert!(l.admit(3000, t0).is_ok());
        assert_eq!(l.admit(3000, t0), Err(DropReason::ByteRate));
        // The refused message took no message token: 19 small ones still pass.
        assert_eq!((0..100).filter(|_| l.admit(10, t0).is_ok()).count(), 19);
        let t2 = t0 + Duration::from_secs(3);
        assert!(l.admit(3000, t2).is_ok(), "bytes refill at their rate");
    }

    #[test]
    fn control_packets_have_their_own_budget() {
        let t0 = Instant::now();
        let mut l = Limiter::new(&options(), t0);
        while l.admit(1, t0).is_ok() {}
        assert!(l.admit_control(t0), "a data flood does not block PINGREQ");
        let n = (0..1000).filter(|_| l.admit_control(t0)).count();
        assert_eq!(n as f64, CONTROL_BURST - 1.0);
    }

    #[test]
    fn repeated_failures_block_the_address_and_the_user_with_growing_delays() {
        let t0 = Instant::now();
        let ip: IpAddr = [10, 0, 0, 1].into();
        let other: IpAddr = [10, 0, 0, 2].into();
        let mut t = LoginThrottle::new(&options());
        t.failed(ip, "acme/gw-1", t0);
        t.failed(ip, "acme/gw-1", t0);
        assert_eq!(t.blocked(ip, "acme/gw-1", t0), None, "two free failures");
        t.failed(ip, "acme/gw-1", t0);
        let first = t.blocked(ip, "acme/gw-1", t0).expect("blocked");
        assert!((Duration::from_millis(500)..=Duration::from_secs(1)).contains(&first));
        // Blocked by username from another address, by address for another username.
        assert!(t.blocked(other, "acme/gw-1", t0).is_some());
        assert!(t.blocked(ip, "acme/gw-2", t0).is_some());
        assert_eq!(t.blocked(other, "acme/gw-2", t0), None);
        // Delays grow, up to the maximum.
        let mut last = first;
        for _ in 0..10 {
            t.failed(ip, "acme/gw-1", t0);
            last = t.blocked(ip, "acme/gw-1", t0).unwrap();
        }
        assert!(last >= Duration::from_secs(4) && last <= Duration::from_secs(8));
        // Expiry.
        assert_eq!(t.blocked(ip, "x/y", t0 + Duration::from_secs(9)), None);
        // A success clears the user, not the address.
        t.succeeded("acme/gw-1");
        assert_eq!(t.blocked(other, "acme/gw-1", t0), None);
        assert!(t.blocked(ip, "acme/gw-1", t0).is_some());
    }

    #[test]
    fn stale_keys_are_swept() {
        let t0 = Instant::now();
        let mut t = LoginThrottle::new(&options());
        for i in 0..SWEEP_ABOVE as u32 {
            t.failed(IpAddr::from(i.to_be_bytes()), "x/y", t0);
        }
        let later = t0 + Duration::from_secs(3600);
        t.failed([1, 2, 3, 4].into(), "a/b", later);
        assert_eq!(t.keys(), 2);
    }
}
