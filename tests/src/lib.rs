//! End-to-end test harness for WellPulse: the whole path from simulated Modbus devices to
//! the database and the API, over real sockets (scenarios in `tests/tests/*.rs`).
//!
//! * [`stack`]: simulator + agents + broker (child process) + ingester + fresh database,
//!   and the exactly-once oracle.
//! * [`drain`]: delivers a stopped agent's leftover buffer through the real uplink.
//! * [`proxy`]: a cuttable TCP proxy, to make PostgreSQL go away without restarting it.
//! * [`replay`]: delivers a captured batch a second time.
//! * [`http`]: a minimal HTTP client for the API.

pub mod drain;
pub mod http;
pub mod load;
pub mod proxy;
pub mod replay;
pub mod stack;
