//! `alerts`: what runs around detection, outside the ingester.
//!
//! - [`signals`]: detector state, rules and signals between `detect` and `store` (used by
//!   the ingester's transaction too).
//! - [`lifecycle`]: the jobs — alert auto-resolve, flap and silence release, escalation,
//!   Alertmanager re-sends, the device-silence sweep, model training ([`training`]).
//! - [`outbox`]: the delivery worker (retries with backoff, dead letters, leases).
//! - [`deliver`]: the destination formats (Standard Webhooks + CloudEvents, Alertmanager,
//!   PagerDuty) and the HTTP sender.
//! - [`stream`]: alert changes fanned out to live streams (the API's SSE).

pub mod deliver;
pub mod lifecycle;
pub mod outbox;
pub mod signals;
pub mod stream;
pub mod training;
