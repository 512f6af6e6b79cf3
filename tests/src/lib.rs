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
