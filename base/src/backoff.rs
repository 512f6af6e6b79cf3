//! Exponential backoff with jitter: the one retry schedule of the project.

use std::time::Duration;

/// Retry delays: exponential from `min` to `max`, each drawn uniformly from `[d/2, d]`
/// ("equal jitter") so peers that failed together do not retry in lockstep (a fleet of
/// gateways after a broker restart, ingesters after a database restart).
///
/// Pure bookkeeping: the caller sleeps [`Backoff::next_delay`] and calls
/// [`Backoff::reset`] after a success.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
    failures: u32,
}

impl Backoff {
    /// A schedule from `min` to `max` (`max` below `min` is raised to `min`).
    pub fn new(min: Duration, max: Duration) -> Backoff {
        Backoff {
            min,
            max: max.max(min),
            next: min,
            failures: 0,
        }
    }

    /// The delay before the next attempt; doubles the one after, up to `max`.
    pub fn next_delay(&mut self) -> Duration {
        self.next_delay_with(rand::random::<f64>())
    }

    /// [`Backoff::next_delay`] with the random draw `unit` in `[0, 1)` given (tests).
    pub fn next_delay_with(&mut self, unit: f64) -> Duration {
        let base = self.next;
        self.next = self.next.saturating_mul(2).min(self.max);
        self.failures = self.failures.saturating_add(1);
        let half = base / 2;
        half + half.mul_f64(unit.clamp(0.0, 1.0))
    }

    /// Back to `min` after a success.
    pub fn reset(&mut self) {
        self.next = self.min;
        self.failures = 0;
    }

    /// Delays handed out since the last reset (consecutive failures).
    pub fn failures(&self) -> u32 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_max_with_jitter_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(800));
        let lows: Vec<_> = (0..6).map(|_| b.next_delay_with(0.0)).collect();
        let ms: Vec<u128> = lows.iter().map(Duration::as_millis).collect();
        assert_eq!(ms, [50, 100, 200, 400, 400, 400]);
        assert_eq!(b.failures(), 6);
        b.reset();
        assert_eq!(b.failures(), 0);
        assert_eq!(b.next_delay_with(1.0), Duration::from_millis(100));
        for _ in 0..100 {
            let d = b.next_delay();
            assert!(
                d <= Duration::from_millis(800) && d >= Duration::from_millis(100),
                "{d:?}"
            );
        }
    }

    #[test]
    fn max_below_min_is_raised() {
        let mut b = Backoff::new(Duration::from_secs(2), Duration::from_secs(1));
        assert_eq!(b.next_delay_with(1.0), Duration::from_secs(2));
        assert_eq!(b.next_delay_with(1.0), Duration::from_secs(2));
    }
}
