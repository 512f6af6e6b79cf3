//! Errors of the simulator library.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::fault::FailureKind;

/// Everything that can go wrong building or running a simulated fleet.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The fleet configuration is malformed or inconsistent.
    #[error("fleet config: {message}")]
    Config {
        /// What is wrong.
        message: String,
    },
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// `devices_per_well` names a profile that is neither built in nor in `profile_dir`.
    #[error("unknown firmware profile {id:?} (known: {known})")]
    UnknownProfile {
        /// The id asked for.
        id: String,
        /// Comma-separated ids that exist.
        known: String,
    },
    /// A profile in `profile_dir` failed to load.
    #[error(transparent)]
    Profile(#[from] firmware_profiles::ProfileError),
    /// A well's TCP listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The socket error.
        #[source]
        source: std::io::Error,
    },
    /// No device has this name.
    #[error("no simulated device named {name:?}")]
    UnknownDevice {
        /// The name asked for.
        name: String,
    },
    /// A process failure was injected into a device that is not lift equipment, or a
    /// frozen sensor into a device without measured values.
    #[error("failure {kind:?} does not apply to device {device:?}")]
    NotApplicable {
        /// The device.
        device: String,
        /// The failure kind.
        kind: FailureKind,
    },
    /// The serial port for RTU could not be opened.
    #[error("cannot open serial port {}: {source}", path.display())]
    Serial {
        /// The port.
        path: PathBuf,
        /// The serial error.
        #[source]
        source: tokio_serial::Error,
    },
}
