//! WellPulse's foundations: the few small things every other crate would otherwise write
//! again, each in one place.
//!
//! - [`Secret`]: a password, token or URL with credentials; never shown by `Debug`.
//! - [`Backoff`]: exponential delays with jitter, for every retry loop of edge and cloud.
//! - [`Clock`]: "now", passed in so decisions can be tested without waiting.
//! - [`Transience`]: whether a failure is worth retrying; every error type that crosses a
//!   retry loop answers it once.
//! - [`ct_eq`]: constant-time comparison of secrets and digests.
//!
//! *Invariant:* no I/O, no async runtime. Callers sleep; this crate only decides how long.

mod backoff;
mod clock;
mod secret;

pub use backoff::Backoff;
pub use clock::{Clock, ManualClock, SystemClock};
pub use secret::Secret;

/// Whether retrying a failed operation can succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transience {
    /// The cause is outside the request (a peer down, a timeout, a lost connection): retry
    /// with [`Backoff`].
    Temporary,
    /// The request itself is wrong or refused: retrying repeats the failure.
    Permanent,
}

impl Transience {
    /// Whether this is [`Transience::Temporary`].
    pub fn is_temporary(self) -> bool {
        self == Transience::Temporary
    }
}

/// Compares two byte strings in time independent of where they differ (the length is not
/// hidden; compare digests of equal length).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.ct_eq(b).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ct_eq_compares_bytes() {
        assert!(ct_eq(b"secret", b"secret"));
        assert!(!ct_eq(b"secret", b"secreT"));
        assert!(!ct_eq(b"secret", b"secrets"));
        assert!(ct_eq(b"", b""));
    }
}
