//! WellPulse's foundations: the few small things every other crate would otherwise write
//! again, each in one place.
//!
//! - [`Secret`]: a password, token or URL with credentials; never shown by `Debug`.
//! - [`Backoff`]: exponential delays with jitter, for every retry loop of edge and cloud.
//! - [`Clock`]: "now", passed in so decisions can be tested without waiting.
//! - [`Transience`]: whether a failure is worth retrying; every error type that crosses a
//!   retry loop answers it once.
//! - [`ct_eq`]: constant-time comparison of secrets and digests.
//! - [`is_broken_pipe`]: whether a command-line tool's output was cut off by its reader.
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

/// Whether `err` or one of its causes is a write to a closed pipe, as when a command's
/// output goes through `| head`: the reader has what it wanted, so command-line tools exit
/// quietly with success instead of reporting (or panicking on) the failed write.
pub fn is_broken_pipe(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(err);
    while let Some(e) = cause {
        if e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
        {
            return true;
        }
        cause = e.source();
    }
    false
}

#[cfg(test)]
mod pipe_tests {
    use super::is_broken_pipe;

    #[derive(Debug)]
    struct Wrapped(std::io::Error);
    impl std::fmt::Display for Wrapped {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("cannot print")
        }
    }
    impl std::error::Error for Wrapped {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn a_closed_pipe_is_found_among_the_causes() {
        let pipe = Wrapped(std::io::Error::from(std::io::ErrorKind::BrokenPipe));
        assert!(is_broken_pipe(&pipe));
        let other = Wrapped(std::io::Error::from(std::io::ErrorKind::PermissionDenied));
        assert!(!is_broken_pipe(&other));
    }
}
