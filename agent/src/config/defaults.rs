//! The value of every optional setting of the configuration file, in one place.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

pub fn keep_alive() -> Duration {
    Duration::from_secs(30)
}
pub fn inflight_window() -> usize {
    16
}
pub fn ack_timeout() -> Duration {
    Duration::from_secs(30)
}
pub fn backlog_pace() -> Duration {
    Duration::from_millis(100)
}
pub fn live_window() -> Duration {
    Duration::from_secs(30)
}
pub fn reconnect_min() -> Duration {
    Duration::from_millis(100)
}
/// A broker restart costs at most about this before the first delivery (see the field's
/// documentation in `file.rs` for why a second suits cellular links too).
pub fn reconnect_max() -> Duration {
    Duration::from_secs(1)
}
pub fn max_bytes() -> u64 {
    256 * 1024 * 1024
}
pub fn max_age() -> Duration {
    Duration::from_secs(30 * 24 * 3600)
}
pub fn flush_interval() -> Duration {
    Duration::from_secs(10)
}
pub fn flush_quiet() -> Duration {
    Duration::from_millis(50)
}
pub fn max_samples_per_batch() -> u32 {
    5000
}
pub fn flush_min_samples() -> u32 {
    200
}
pub fn metrics_listen() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, 9102))
}
pub fn inter_request_delay() -> Duration {
    Duration::from_millis(10)
}
pub fn heartbeat() -> Duration {
    Duration::from_secs(60)
}
