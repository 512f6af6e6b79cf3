//! The gateway clock: the one place the agent reads wall-clock time.
//!
//! A leaf module (it imports nothing of the agent), so every other module may use it without
//! creating a cycle. Code that *decides* by time (delivery scheduling, backoff, deadbands)
//! takes `now` as an argument instead and is tested without waiting; only the edges of
//! the agent (stamping a frame, a batch, a birth) call [`now_ms`].

use base::{Clock, SystemClock};

/// Gateway clock, UTC milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemClock.now().timestamp_millis()
}

#[cfg(test)]
mod tests {
    #[test]
    fn now_ms_is_the_system_time() {
        let std_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970")
            .as_millis() as i64;
        let ours = super::now_ms();
        assert!((ours - std_ms).abs() < 5_000, "{ours} vs {std_ms}");
    }
}
