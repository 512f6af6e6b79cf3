//! Typed errors of the decline-curve module.
//!
//! Every message names the offending value so that the HTTP layer can return it to the
//! user as is (e.g. "needs at least 6 months of production history, got 4.0 months").

use super::ModelKind;

/// Why a decline-curve computation could not be carried out.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DeclineError {
    /// The production history is shorter than the minimum needed for a fit.
    #[error(
        "decline-curve fitting needs at least {required} months of production history, \
         got {months:.1} months ({points} points)"
    )]
    InsufficientHistory {
        /// Months of history given (see `History::months`).
        months: f64,
        /// Months needed.
        required: f64,
        /// Number of data points given.
        points: usize,
    },
    /// Too few data points for the number of parameters of a model.
    #[error("{model} fit needs at least {required} data points, got {points}")]
    TooFewPoints {
        /// The model that was being fitted.
        model: ModelKind,
        /// Points needed (parameters + 2, for AICc).
        required: usize,
        /// Points given.
        points: usize,
    },
    /// A production rate is zero, negative or not finite.
    #[error(
        "production rate at index {index} (t = {time} d) is {rate}; decline fitting needs \
         strictly positive rates (drop shut-in or downtime periods first)"
    )]
    NonPositiveRate {
        /// Index of the point in the input.
        index: usize,
        /// Its time, days.
        time: f64,
        /// Its rate.
        rate: f64,
    },
    /// A time is negative or not finite.
    #[error("time at index {index} is {time} d; times must be finite and >= 0")]
    InvalidTime {
        /// Index of the point in the input.
        index: usize,
        /// The offending time, days.
        time: f64,
    },
    /// Times are not strictly increasing.
    #[error(
        "times must be strictly increasing without duplicates: point {index} (t = {time} d) \
         follows t = {previous} d"
    )]
    UnsortedTimes {
        /// Index of the first point out of order.
        index: usize,
        /// Its time, days.
        time: f64,
        /// Time of the point before it, days.
        previous: f64,
    },
    /// A model or option parameter is outside its valid range.
    #[error("invalid {name} = {value}: {reason}")]
    InvalidParameter {
        /// Parameter name.
        name: &'static str,
        /// The offending value.
        value: f64,
        /// What the valid range is.
        reason: &'static str,
    },
    /// Neither an economic-limit rate nor a time horizon was given for an EUR.
    #[error("an EUR needs an economic-limit rate, a maximum time, or both")]
    NoEconomicLimit,
    /// The Levenberg–Marquardt iteration stopped without converging.
    #[error("{model} fit did not converge: {reason}")]
    NotConverged {
        /// The model that was being fitted.
        model: ModelKind,
        /// The optimiser's termination reason.
        reason: String,
    },
    /// The best fit has (practically) no decline: the rates are flat or rising.
    #[error(
        "{model} fit: the history shows no decline (rates flat or rising{terminal}); \
         a decline curve does not apply"
    )]
    NotDeclining {
        /// The model that was fitted.
        model: ModelKind,
        /// Extra wording for the modified hyperbolic.
        terminal: &'static str,
    },
    /// JᵀJ at the solution is singular: the parameters are not identifiable from the data.
    #[error("{model} fit: parameters are not identifiable from the data (singular JᵀJ)")]
    SingularCovariance {
        /// The model that was fitted.
        model: ModelKind,
    },
    /// No candidate model could be fitted; holds the failure of each candidate.
    #[error("no decline model could be fitted: {}", join_failures(.0))]
    NoModelFitted(Vec<(ModelKind, DeclineError)>),
    /// Too many Monte Carlo draws were invalid (e.g. initial decline below the terminal one).
    #[error("Monte Carlo: only {accepted} of {requested} parameter draws were valid")]
    TooManyRejectedDraws {
        /// Valid draws.
        accepted: usize,
        /// Draws attempted.
        requested: usize,
    },
}

fn join_failures(failures: &[(ModelKind, DeclineError)]) -> String {
    failures
        .iter()
        .map(|(_, e)| e.to_string())
        .collect::<Vec<_>>()
        .join("; ")
}
