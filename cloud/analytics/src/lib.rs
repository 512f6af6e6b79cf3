//! Pure, I/O-free petroleum-engineering and ESG calculations for WellPulse.
//!
//! * [`production`] — daily production per well from telemetry by canonical metric.
//! * [`emissions`] — 40 CFR Part 98 Subparts C and W emissions, GWP sets, intensities.
//! * [`reports`] — Texas RRC Form PR and New Mexico OCD C-115 monthly filings.
//! * [`units`] — unit constants and standard-condition conversion.
//! * [`api_number`] — API well numbers (state, county, 10/12/14-digit forms).
//!
//! No serde, no I/O, no async: the cloud's API layer maps these types to its DTOs.

pub mod api_number;
pub mod decline;
pub mod emissions;
pub mod production;
pub mod reports;
pub mod units;
