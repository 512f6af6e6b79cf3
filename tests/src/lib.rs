//! End-to-end test harness for WellPulse: the whole path from simulated Modbus devices to
//! the database and the API, over real sockets (scenarios in `tests/tests/*.rs`).
//!
//! * [`stack`]: simulator + agents + broker (child process) + ingester + fresh database,
//!   and the exactly-once oracle.
//! * [`drain`]: delivers a stopped agent's leftover buffer through the real uplink.
//! * [`replay`]: delivers a captured batch a second time.
//!
//! The HTTP client and the cuttable PostgreSQL proxy are the cloud's test helpers
//! (`testkit::http`, `testkit::proxy`).

pub mod drain;
pub mod load;
pub mod replay;
pub mod stack;

/// The start of this crate's benchmarks (`cargo bench -p tests --bench NAME`): without
/// `--bench` on the command line (e.g. `cargo test --benches`) it says how to run `name`
/// and returns false; otherwise it sends logs to stderr (`RUST_LOG`, quiet by default) and
/// returns true.
pub fn bench_requested(name: &str) -> bool {
    if !std::env::args().any(|a| a == "--bench") {
        println!("# {name} benchmark: run it with `cargo bench -p tests --bench {name}`");
        return false;
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            std::env::var("RUST_LOG")
                .unwrap_or_else(|_| "warn,rumqttd=off,sqlx::query=error".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    true
}
