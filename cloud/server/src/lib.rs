//! The `wellpulse-cloud` process: [`config`] reads `cloud.toml` and turns it into each
//! crate's own options; `main.rs` starts the services. Nothing depends on this crate.

pub mod config;
