//! WellPulse simulator: a Modbus TCP (and RTU) server that serves a fleet of simulated
//! wells, each a set of devices built from the firmware profiles.
//!
//! # What it guarantees
//!
//! * **Same registers as the real thing.** Every tag of a device's profile is served at its
//!   address, encoded with the profile's own codec ([`firmware_profiles::Tag::encode`]), so a
//!   client decoding with the same profile gets the model's values back.
//! * **Deterministic.** Every value is a pure function of the seed, the device, the tag and
//!   the simulated second, plus the failure windows and client writes of its well. Nothing
//!   is stepped: running totals are closed-form integrals. [`Simulator::expected`] returns
//!   exactly what a client reads in a given second.
//! * **Believable.** Production on an Arps decline, pressures that follow the rates, rod
//!   pump / ESP / plunger-lift behaviour, gas measurement, tank hauling, gas detection with
//!   excursions — see [`model`] for the equations.
//! * **Breakable.** Pump-off, rod part, gas lock, frozen sensor, silent device, slow
//!   responses and exception codes, on a seeded schedule or injected, exported as ground
//!   truth ([`Simulator::failure_schedule`], `--export-schedule`).
//!
//! # Modules (top-down)
//!
//! * [`config`]: the TOML fleet configuration.
//! * `simulator`: [`Simulator`] — listeners, `expected()`, `inject()`, RTU, shutdown.
//! * `server`: Modbus request handling (function codes, exceptions, failures).
//! * `fleet`: wells, devices, per-well history under a lock.
//! * `device`: profile → register layout → cached register image per simulated second.
//! * [`model`]: the physics.
//! * [`failure`]: failure kinds, the seeded schedule, the JSON export.
//! * `clock`: wall-clock ↔ simulated time (`time_scale`).
//! * `noise`: stable hashing and deterministic noise.

mod clock;
pub mod config;
mod device;
mod error;
pub mod failure;
mod fault;
mod fleet;
pub mod model;
mod noise;
mod server;
mod simulator;

pub use clock::now_ms;
pub use config::{FailurePlan, FleetConfig};
pub use error::SimError;
pub use failure::{Failure, FailureEvent, FailureKind, FailureSource, ScheduleFile};
pub use firmware_profiles::RawValue;
pub use simulator::{Endpoint, Simulator};
