//! The kinds of failure the simulator can play, a leaf both the configuration and the
//! failure schedule name.

use serde::{Deserialize, Serialize};

/// Failure kinds, as named in configuration files and schedule exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// See [`Failure::PumpOff`].
    PumpOff,
    /// See [`Failure::RodPart`].
    RodPart,
    /// See [`Failure::GasLock`].
    GasLock,
    /// See [`Failure::SensorFrozen`].
    SensorFrozen,
    /// See [`Failure::DeviceSilent`].
    DeviceSilent,
    /// See [`Failure::SlowResponse`].
    SlowResponse,
    /// See [`Failure::Exception`].
    Exception,
}

impl FailureKind {
    /// Every kind, in declaration order.
    pub const ALL: [FailureKind; 7] = [
        FailureKind::PumpOff,
        FailureKind::RodPart,
        FailureKind::GasLock,
        FailureKind::SensorFrozen,
        FailureKind::DeviceSilent,
        FailureKind::SlowResponse,
        FailureKind::Exception,
    ];

    /// True for process failures (pump-off, rod part, gas lock).
    pub fn is_physical(self) -> bool {
        matches!(
            self,
            FailureKind::PumpOff | FailureKind::RodPart | FailureKind::GasLock
        )
    }
}
