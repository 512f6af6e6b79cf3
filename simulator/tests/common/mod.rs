//! Helpers shared by the integration tests: start a fleet, talk Modbus to it, decode tags
//! with the firmware profiles.

#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use firmware_profiles::{Profile, RawValue, RegisterType, Tag};
use simulator::{Endpoint, FleetConfig, Simulator};
use tokio_modbus::client::Context;
use tokio_modbus::prelude::*;

/// Generous per-request timeout for a loaded 2-core machine.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

pub const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// Every shipped profile id.
pub fn all_profiles() -> Vec<String> {
    firmware_profiles::builtin()
        .iter()
        .map(|(id, _)| (*id).to_owned())
        .collect()
}

pub fn config(seed: u64, wells: usize, devices: &[&str]) -> FleetConfig {
    FleetConfig {
        seed,
        wells,
        devices_per_well: devices.iter().map(|d| (*d).to_owned()).collect(),
        ..FleetConfig::default()
    }
}

pub async fn start(cfg: FleetConfig) -> Simulator {
    Simulator::start(cfg, LOCALHOST)
        .await
        .expect("simulator starts")
}

pub fn profile(endpoint: &Endpoint) -> Profile {
    firmware_profiles::builtin_profile(&endpoint.profile).expect("shipped profile")
}

pub async fn connect(addr: SocketAddr, unit: u8) -> Context {
    tokio::time::timeout(
        REQUEST_TIMEOUT,
        tokio_modbus::client::tcp::connect_slave(addr, Slave(unit)),
    )
    .await
    .expect("connect in time")
    .expect("connect")
}

/// What a read came back with.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Value(RawValue),
    Exception(ExceptionCode),
    Timeout,
}

/// Reads one tag (all its registers in one request) and decodes it with its profile.
pub async fn read_tag(ctx: &mut Context, tag: &Tag, timeout: Duration) -> Outcome {
    let n = tag.register_count();
    let fut = async {
        match tag.register {
            RegisterType::Coil => ctx
                .read_coils(tag.address, 1)
                .await
                .map(|r| r.map(|bits| tag.decode_bit(bits[0]))),
            RegisterType::DiscreteInput => ctx
                .read_discrete_inputs(tag.address, 1)
                .await
                .map(|r| r.map(|bits| tag.decode_bit(bits[0]))),
            RegisterType::InputRegister => ctx
                .read_input_registers(tag.address, n)
                .await
                .map(|r| r.map(|regs| tag.decode(&regs).expect("decodes"))),
            RegisterType::HoldingRegister => ctx
                .read_holding_registers(tag.address, n)
                .await
                .map(|r| r.map(|regs| tag.decode(&regs).expect("decodes"))),
        }
    };
    match tokio::time::timeout(timeout, fut).await {
        Err(_) => Outcome::Timeout,
        Ok(Err(e)) => panic!("transport error reading {}: {e}", tag.name),
        Ok(Ok(Err(code))) => Outcome::Exception(code),
        Ok(Ok(Ok(v))) => Outcome::Value(v),
    }
}

/// Reads a tag and returns `(value, wall ms before, wall ms after)`.
pub async fn read_timed(ctx: &mut Context, tag: &Tag) -> (RawValue, i64, i64) {
    let before = simulator::now_ms();
    let outcome = read_tag(ctx, tag, REQUEST_TIMEOUT).await;
    let after = simulator::now_ms();
    match outcome {
        Outcome::Value(v) => (v, before, after),
        other => panic!("reading {}: {other:?}", tag.name),
    }
}

/// The model values a read between `before` and `after` may legitimately have returned
/// (one per simulated second in the interval).
pub fn expected_between(
    sim: &Simulator,
    device: &str,
    tag: &str,
    before: i64,
    after: i64,
) -> Vec<RawValue> {
    let mut out = Vec::new();
    let mut t = before;
    loop {
        let v = sim.expected(device, tag, t).expect("known device and tag");
        if !out.contains(&v) {
            out.push(v);
        }
        if t >= after {
            break;
        }
        t = (t + 1000 - t.rem_euclid(1000)).min(after);
    }
    out
}

/// Engineering value of a raw value.
pub fn eng(tag: &Tag, raw: &RawValue) -> f64 {
    tag.to_engineering(raw).expect("numeric tag")
}

/// The tag of `profile` carrying `metric`.
pub fn tag_for<'a>(profile: &'a Profile, metric: &str) -> &'a Tag {
    profile
        .tag_for_metric(metric)
        .unwrap_or_else(|| panic!("profile has no {metric}"))
        .1
}

/// The endpoint of the first device with profile `profile`.
pub fn endpoint_of(sim: &Simulator, profile: &str) -> Endpoint {
    sim.endpoints()
        .into_iter()
        .find(|e| e.profile == profile)
        .unwrap_or_else(|| panic!("no {profile} device"))
}

/// Polls `f` until it returns `Some`, or panics after `deadline`.
pub async fn poll_until<T, F, Fut>(deadline: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let end = tokio::time::Instant::now() + deadline;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < end,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Reads `tag` until its engineering value satisfies `pred`, or panics after `deadline`.
pub async fn wait_for_value(
    ctx: &mut Context,
    tag: &Tag,
    deadline: Duration,
    what: &str,
    pred: impl Fn(f64) -> bool,
) -> f64 {
    let end = tokio::time::Instant::now() + deadline;
    loop {
        let (raw, _, _) = read_timed(ctx, tag).await;
        let v = eng(tag, &raw);
        if pred(v) {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < end,
            "timed out waiting for {what} (last {} = {v})",
            tag.name
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
