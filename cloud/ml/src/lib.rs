//! `ml`: WellPulse machine learning, pure and I/O-free (no database, network, files or
//! clock: callers read and write, pass time in, and store what this crate returns).
//!
//! - [`import`]: history import — a CSV of wells and daily (or monthly) production with
//!   its columns named by a TOML mapping file, validated row by row.
//! - [`maintenance`]: predictive maintenance — features from daily rollups, one logistic
//!   regression per horizon (7/14/30 days, `linfa-logistic`), held-out metrics, and the
//!   factors behind each prediction in words.
//! - [`emissions`]: emissions prediction — daily CH4, CO2, N2O and CO2e for the next
//!   30/90 days per well and per site from the decline forecast, flaring and venting
//!   history and equipment counts, with intervals; methane intensity against targets.
//! - [`fleet`]: a simulated producing fleet with its true potential, impairments and
//!   dispositions, the data of the emissions and optimization benchmarks and tests.
//! - [`optimization`]: production optimization — expected potential from the well's own
//!   decline and its peers, the gap with its interval, a category, and ranked
//!   opportunities with their cause and uplift in bbl/d and dollars.
//! - [`wear`]: a simulated fleet of wearing lift equipment with its failure schedule, the
//!   data of the benchmark and tests.
//!
//! *Invariants:* no I/O; a bad input row is reported, never a panic; every model carries
//! what the registry needs (algorithm, features, training window, data hash).

/// Fewest held-out wells a registry's promotion may rest on (emissions, production gaps):
/// a median or mean of fewer is noise, and the model in use stays.
pub const MIN_HELD_OUT_WELLS: usize = 5;
/// Least improvement of a held-out error, in percentage points, that promotes a model.
pub const PROMOTION_MARGIN: f64 = 0.1;

/// The registries' promotion rule for a held-out error (lower is better; emissions,
/// production gaps): the new model replaces the one in use when it was measured on at
/// least [`MIN_HELD_OUT_WELLS`] wells and its `metric` is lower by more than
/// [`PROMOTION_MARGIN`]. `registered`: the model in use is a registered one (else the
/// untrained defaults). Returns the decision and its reason in words.
pub fn promotion(
    metric: &str,
    new: f64,
    old: f64,
    held_out_wells: usize,
    registered: bool,
) -> (bool, String) {
    let what = if registered {
        "the model in use"
    } else {
        "the untrained defaults"
    };
    if held_out_wells < MIN_HELD_OUT_WELLS {
        return (
            false,
            format!(
                "measured on {held_out_wells} held-out wells: at least {MIN_HELD_OUT_WELLS} are needed to replace {what}"
            ),
        );
    }
    let promote = new < old - PROMOTION_MARGIN;
    let verb = if promote { "beats" } else { "does not beat" };
    (
        promote,
        format!("held-out {metric} {new:.2} % {verb} {old:.2} % of {what}"),
    )
}

pub mod emissions;
pub mod fleet;
pub mod import;
pub mod maintenance;
pub mod optimization;
pub mod wear;
