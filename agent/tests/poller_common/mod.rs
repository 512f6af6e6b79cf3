//! Shared helpers of the poller tests: a simulator fleet, an agent config pointing at it,
//! pollers feeding a channel, and comparison with the simulator's model.
#![allow(dead_code)] // each test binary uses a subset

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use agent::config::Config;
use agent::poller::DeviceMetrics;
use agent::poller::{PollerEvent, Pollers};
use firmware_profiles::{RawValue, Tag};
use simulator::{Endpoint, FleetConfig, Simulator};
use tokio::sync::mpsc;
use wire::{Frame, Quality, Value};

/// Starts a one-well fleet with these device profiles (unit ids 1, 2, ...).
pub async fn start_fleet(profiles: &[&str], seed: u64) -> Simulator {
    let cfg = FleetConfig {
        seed,
        wells: 1,
        devices_per_well: profiles.iter().map(|p| p.to_string()).collect(),
        ..FleetConfig::default()
    };
    Simulator::start(cfg, IpAddr::V4(Ipv4Addr::LOCALHOST))
        .await
        .expect("simulator starts")
}

/// One `[[device]]` table for a simulator endpoint.
pub fn device_toml(e: &Endpoint, poll: &str, extra: &str) -> String {
    format!(
        "[[device]]\nname = \"{}\"\nprofile = \"{}\"\ntcp = \"{}\"\nunit_id = {}\npoll = {{ {poll} }}\n{extra}\n",
        e.device, e.profile, e.addr, e.unit_id
    )
}

/// A config with these `[[device]]` / `[[bus]]` tables.
pub fn config_with(tables: &str) -> Config {
    let text = format!(
        "[gateway]\ntenant = \"test\"\nid = \"gw-test\"\ndata_dir = \"unused\"\n\n[mqtt]\nurl = \"mqtt://127.0.0.1:1\"\npassword = \"poller-test-secret\"\n\n{tables}"
    );
    Config::from_bytes(Path::new("test.toml"), Path::new("/tmp"), text.as_bytes())
        .unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// Running pollers and what they produce.
pub struct Harness {
    pub config: Config,
    pub pollers: Option<Pollers>,
    pub rx: mpsc::Receiver<PollerEvent>,
    pub metrics: Vec<Arc<DeviceMetrics>>,
}

impl Harness {
    pub fn start(config: Config) -> Harness {
        let metrics: Vec<Arc<DeviceMetrics>> = config
            .devices
            .iter()
            .map(|d| Arc::new(DeviceMetrics::new(&d.name)))
            .collect();
        let (tx, rx) = mpsc::channel(4096);
        let pollers = Pollers::spawn(&config, &metrics, tx);
        Harness {
            config,
            pollers: Some(pollers),
            rx,
            metrics,
        }
    }

    /// The next event, failing the test after `limit`.
    pub async fn next(&mut self, limit: Duration) -> PollerEvent {
        tokio::time::timeout(limit, self.rx.recv())
            .await
            .expect("pollers produced nothing in time")
            .expect("poller queue closed")
    }

    /// Collects events until `done` says so (checked after each event) or `limit` passes.
    pub async fn collect_until(
        &mut self,
        limit: Duration,
        mut done: impl FnMut(&[PollerEvent]) -> bool,
    ) -> Vec<PollerEvent> {
        let deadline = tokio::time::Instant::now() + limit;
        let mut events = Vec::new();
        while !done(&events) {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(e)) => events.push(e),
                Ok(None) | Err(_) => break,
            }
        }
        events
    }

    pub async fn stop(mut self) {
        if let Some(p) = self.pollers.take() {
            p.stop().await;
        }
    }
}

/// Frames of one device alias.
pub fn frames_of(events: &[PollerEvent], device: u16) -> Vec<&Frame> {
    events
        .iter()
        .filter_map(|e| match e {
            PollerEvent::Frame(f) if f.device == device => Some(f),
            _ => None,
        })
        .collect()
}

/// Whether a sample value read at `ts_ms` agrees with the model at that second or the one
/// before or after (the poll's timestamp and the simulator's clock may straddle a second).
pub fn matches_model(sim: &Simulator, device: &str, tag: &Tag, value: Value, ts_ms: i64) -> bool {
    [ts_ms, ts_ms - 1000, ts_ms + 1000].into_iter().any(|at| {
        sim.expected(device, &tag.name, at)
            .is_some_and(|expected| same_value(tag, &expected, value))
    })
}

/// Raw integers and booleans must be identical; floats agree to f32 precision (the
/// register holds an f32 for F32 tags), compared in engineering units.
fn same_value(tag: &Tag, expected: &RawValue, got: Value) -> bool {
    match (expected, got) {
        (RawValue::Int(a), Value::Int(b)) => *a == b,
        (RawValue::Bool(a), Value::Bool(b)) => *a == b,
        (RawValue::Float(a), Value::Float(b)) => {
            let (ea, eb) = (a * tag.scale + tag.offset, b * tag.scale + tag.offset);
            (ea - eb).abs() <= 1e-6 * ea.abs().max(1.0)
        }
        _ => false,
    }
}

/// A sample is a value the device answered with (good, or uncertain when the model
/// wandered out of the valid range) — never bad.
pub fn answered(q: Quality) -> bool {
    matches!(q, Quality::Good | Quality::Uncertain | Quality::Stale)
}
