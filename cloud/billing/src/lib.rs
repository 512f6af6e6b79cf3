//! `billing`: the decisions of WellPulse's billing with Stripe, free of I/O.
//!
//! - [`signature`]: `Stripe-Signature` verification (HMAC-SHA256 over `t.payload`, every
//!   `v1` entry, a 5-minute tolerance, several secrets during a rotation, constant-time).
//! - [`event`]: the parts of a Stripe event that decide something.
//! - [`machine`]: the tenant's billing state driven by events (ordered by the Stripe
//!   objects' own `created`, asking for the current object when in doubt) and by time
//!   (grace expiry).
//! - [`metering`]: what a day's usage reports to Stripe's Billing Meters, and the
//!   identifier that makes a retried meter event count once.
//!
//! - [`client`]: the small Stripe API client (form-encoded, idempotency keys, pinned
//!   `Stripe-Version`, retries on temporary failures with `base::Backoff`).
//!
//! *Invariants:* the decisions (`signature`, `event`, `machine`, `metering`) do no I/O,
//! read no clock and are not async: time is passed in as unix seconds, so every rule is
//! unit-tested. `client` is the only I/O; the store and the jobs carry the decisions out.

pub mod client;
pub mod event;
pub mod machine;
pub mod metering;
pub mod options;
pub mod signature;

pub use client::{Stripe, StripeError, StripeOptions};
pub use event::{Event, EventError, Object};
pub use machine::{Account, Decision, Effect, Policy, Status};
pub use options::{BillingOptions, Meter, PlanPrices};
pub use signature::{SignatureError, verify};
