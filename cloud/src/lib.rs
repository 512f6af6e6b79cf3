//! WellPulse cloud: the MQTT ingester into PostgreSQL/TimescaleDB, the embedded broker,
//! storage, and (added by their owners) anomaly detection and the HTTP API.
//!
//! Data path (see `/work/shared/design.md`): gateways publish CBOR batches over MQTT;
//! [`ingest`] stores them exactly once through [`db`] and acks them after commit;
//! [`broker`] optionally runs the MQTT broker in-process; [`config`] is `cloud.toml`.

pub mod api;
pub mod broker;
pub mod config;
pub mod db;
pub mod ingest;
pub mod production_job;
