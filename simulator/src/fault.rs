//! What can go wrong at a well, as plain types: the failure to play ([`Failure`]), its
//! kind as named in configuration and exports ([`FailureKind`]), and where it came from
//! ([`FailureSource`]). A leaf: the configuration, the physical models and the failure
//! schedule all name these.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A failure to inject (or one drawn by the schedule).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Pump-off: the pump displaces more than flows in; fillage drops and the controller
    /// idles the pump (pump state 2) part of the time.
    PumpOff,
    /// Rod part (ESP: broken shaft): loads collapse to the hanging rod weight, no liquid is
    /// produced, and the controller trips (pump state 3).
    RodPart,
    /// Gas lock / gas interference: ESP current drops and becomes erratic, intake pressure
    /// rises; rod pumps see low, erratic fillage.
    GasLock,
    /// One tag of the device stops updating (stuck at its value when the failure began).
    SensorFrozen,
    /// The device does not answer at all; requests time out.
    DeviceSilent,
    /// The device answers after the given delay.
    SlowResponse(Duration),
    /// The device answers every request with this Modbus exception code (e.g. 0x06 server
    /// busy, 0x04 server device failure).
    Exception(u8),
}

impl Failure {
    /// The kind, without parameters.
    pub fn kind(&self) -> FailureKind {
        match self {
            Failure::PumpOff => FailureKind::PumpOff,
            Failure::RodPart => FailureKind::RodPart,
            Failure::GasLock => FailureKind::GasLock,
            Failure::SensorFrozen => FailureKind::SensorFrozen,
            Failure::DeviceSilent => FailureKind::DeviceSilent,
            Failure::SlowResponse(_) => FailureKind::SlowResponse,
            Failure::Exception(_) => FailureKind::Exception,
        }
    }

    /// True for process failures, which change the well's physics.
    pub fn is_physical(&self) -> bool {
        self.kind().is_physical()
    }
}

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

/// Whether a failure came from the seeded schedule or from [`crate::Simulator::inject`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureSource {
    /// Drawn by the seeded schedule.
    Scheduled,
    /// Injected at run time.
    Injected,
}
