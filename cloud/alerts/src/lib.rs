//! `alerts`: what happens to an alert after detection raised it.

pub mod deliver;
