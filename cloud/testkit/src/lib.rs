//! Test helpers of the WellPulse cloud (a dev-dependency only; never in a production
//! build): one place for what the integration tests and benchmarks of `store`, `ingest`,
//! `broker`, `api` and `server` share.
//!
//! - [`scratch`]: throwaway databases on the server `test.sh` chose.
//! - [`db`]: storage fixtures: a migrated database, a registered gateway, samples, the
//!   reference aggregates rollups are checked against.
//! - [`mqtt`]: an embedded rumqttd on ephemeral ports, a private Mosquitto, an ingester,
//!   and a fake gateway that behaves like the agent's uplink.
//! - [`mtls`]: a broker asking for client certificates, certificates issued as the API
//!   does, TLS clients presenting them.
//! - [`probe`]: a recording MQTT 3.1.1/5 client for broker tests (reason codes, what
//!   arrived, how the connection ended), waited on without sleeps.
//! - [`api`]: the API served on an ephemeral port over a seeded two-tenant fleet.
//! - [`auth`]: users, roles and live sessions written straight into the database.
//! - [`analytics`]: a well whose tanks and meters report a known synthetic profile.
//! - [`http`]: the one HTTP client of the tests.
//! - [`proxy`]: the one TCP proxy a test can cut or stall (a database that goes away).
//! - [`receiver`]: an HTTP receiver for outgoing deliveries, failing on demand.
//! - [`smtp`]: a local SMTP sink (aiosmtpd) that mail tests read messages back from.
//! - [`stripe`]: localstripe started on a free port, a fake Stripe for what localstripe
//!   lacks (Checkout, Customer Portal, Billing Meters) checking request bodies against
//!   the documented parameters, and webhook signatures made by Stripe's Python library.

// Fixtures hold sockets, tasks and pools; they are not worth a Debug impl each.
#![allow(missing_debug_implementations)]

pub mod analytics;
pub mod api;
pub mod auth;
pub mod db;
pub mod failure_risk;
pub mod forecasts;
pub mod http;
pub mod mqtt;
pub mod mtls;
pub mod probe;
pub mod proxy;
pub mod python;
pub mod receiver;
pub mod scratch;
pub mod smtp;
pub mod stripe;

/// The smallest `cloud.toml` the server's config tests build on: a database, the ingester's
/// login and the embedded broker's internal listener; tests append the section they check.
pub const MINIMAL_CLOUD_TOML: &str = r#"
    [database]
    url = "postgres://postgres@127.0.0.1/wp"
    [broker]
    client_id = "wp-ingester-1"
    username = "wp-ingester-1"
    password = "s3cret"
    [broker.embedded]
    config = "rumqttd.toml"
    listener = "internal"
"#;
