//! The replay guard of commands: a sealed command proves the cloud wrote it for this
//! gateway, not that it is new. Commands are not idempotent (a setpoint write, a config
//! update), so one is executed only if it has not expired, its expiry is not further ahead
//! than [`MAX_AHEAD_MS`], and its id was not executed before. Executed ids are remembered
//! until their command expires, so the memory is bounded by the commands of the last
//! [`MAX_AHEAD_MS`] (and by [`CAPACITY`]; beyond it new commands are refused rather than
//! old ids forgotten).
//!
//! The memory survives restarts: the uplink records an admitted id in the buffer
//! ([`crate::buffer::Buffer::record_command`], durable) before the command runs, and a
//! command whose id cannot be recorded is not run; at start the guard is seeded with the
//! unexpired ids recorded ([`CommandGuard::with_executed`]).
//!
//! Pure: time is passed in (UTC ms of the agent's clock, which must be synchronised with
//! the cloud's within a command's lifetime: the cloud monitors the skew).

use std::collections::HashMap;

/// Largest accepted distance between now and a command's expiry (1 h): a command valid for
/// longer would have to be remembered that long.
pub(crate) const MAX_AHEAD_MS: i64 = 3_600_000;
/// Most executed command ids remembered at once.
pub(crate) const CAPACITY: usize = 4096;

/// Why an authenticated command is not executed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// Its expiry has passed (or the agent's clock is ahead of the cloud's).
    Expired,
    /// Its expiry lies more than [`MAX_AHEAD_MS`] ahead.
    TooFarAhead,
    /// A command with this id was already executed: a replay.
    Replayed,
    /// [`CAPACITY`] unexpired commands are remembered already.
    TooMany,
}

impl Refused {
    /// The metric label.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Refused::Expired => "expired",
            Refused::TooFarAhead => "expiry_too_far",
            Refused::Replayed => "replayed",
            Refused::TooMany => "too_many",
        }
    }
}

/// Executed command ids and when they expire.
#[derive(Debug, Default)]
pub(crate) struct CommandGuard {
    executed: HashMap<u64, i64>,
}

impl CommandGuard {
    /// A guard that remembers `executed` (id, expiry ms) pairs, e.g. reloaded at start.
    pub(crate) fn with_executed(executed: impl IntoIterator<Item = (u64, i64)>) -> CommandGuard {
        CommandGuard {
            executed: executed.into_iter().collect(),
        }
    }

    /// Forgets an admitted id whose record could not be stored (the command is not run).
    pub(crate) fn forget(&mut self, id: u64) {
        self.executed.remove(&id);
    }

    /// Decides whether the command `id`, valid until `expires_ms`, may run at `now_ms`;
    /// if so, remembers it as executed.
    pub(crate) fn admit(&mut self, id: u64, expires_ms: i64, now_ms: i64) -> Result<(), Refused> {
        self.executed.retain(|_, expires| *expires >= now_ms);
        if expires_ms < now_ms {
            return Err(Refused::Expired);
        }
        if expires_ms > now_ms.saturating_add(MAX_AHEAD_MS) {
            return Err(Refused::TooFarAhead);
        }
        if self.executed.contains_key(&id) {
            return Err(Refused::Replayed);
        }
        if self.executed.len() >= CAPACITY {
            return Err(Refused::TooMany);
        }
        self.executed.insert(id, expires_ms);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_763_800_000_000;

    #[test]
    fn a_command_runs_once_before_it_expires() {
        let mut g = CommandGuard::default();
        assert_eq!(g.admit(1, NOW + 60_000, NOW), Ok(()));
        assert_eq!(g.admit(1, NOW + 60_000, NOW + 1), Err(Refused::Replayed));
        assert_eq!(g.admit(2, NOW + 60_000, NOW + 1), Ok(()));
        // Once expired the id is forgotten, and the command itself is refused as expired.
        assert_eq!(
            g.admit(1, NOW + 60_000, NOW + 60_001),
            Err(Refused::Expired)
        );
        assert!(g.executed.is_empty());
    }

    #[test]
    fn expired_and_far_future_commands_are_refused() {
        let mut g = CommandGuard::default();
        assert_eq!(g.admit(1, NOW - 1, NOW), Err(Refused::Expired));
        assert_eq!(
            g.admit(2, NOW + MAX_AHEAD_MS + 1, NOW),
            Err(Refused::TooFarAhead)
        );
        assert_eq!(g.admit(3, NOW + MAX_AHEAD_MS, NOW), Ok(()));
        assert_eq!(g.admit(4, i64::MAX, i64::MAX - 1), Ok(()));
    }

    #[test]
    fn reloaded_ids_are_refused_and_forgotten_ones_run() {
        let mut g = CommandGuard::with_executed([(7, NOW + 1000)]);
        assert_eq!(g.admit(7, NOW + 1000, NOW), Err(Refused::Replayed));
        assert_eq!(g.admit(8, NOW + 1000, NOW), Ok(()));
        g.forget(8);
        assert_eq!(g.admit(8, NOW + 1000, NOW), Ok(()));
    }

    #[test]
    fn memory_is_bounded_without_forgetting_unexpired_ids() {
        let mut g = CommandGuard::default();
        for id in 0..CAPACITY as u64 {
            assert_eq!(g.admit(id, NOW + 1000, NOW), Ok(()));
        }
        assert_eq!(g.admit(u64::MAX, NOW + 1000, NOW), Err(Refused::TooMany));
        assert_eq!(g.admit(0, NOW + 1000, NOW), Err(Refused::Replayed));
        assert_eq!(g.admit(u64::MAX, NOW + 5000, NOW + 1001), Ok(()));
    }
}
