//! The task of one serial (Modbus RTU) bus: one queue for all devices wired to it.
//!
//! A serial line carries one exchange at a time, so one task owns the port and serves its
//! devices in turn: whenever groups are due, devices are served in order of their due
//! time, each request preceded by the bus silence (`inter_request_delay`, which includes
//! the 3.5-character frame gap). Setpoint jobs are queued on the same task and run between
//! polls.
//!
//! A device that does not answer costs the bus one timeout, then it is put into
//! exponential backoff (1 s … 60 s) and its polls produce `Bad` samples without touching
//! the line, so a dead device takes at most one timeout per backoff period away from its
//! neighbours. After a timeout or garbled frame the task waits one more device timeout for
//! a late answer to pass, then reopens the port and flushes its input buffer, so a late
//! reply can never be taken for the next device's answer.
//!
//! A device's session starts (after power-up or after backoff) with the read of its
//! information tags; it counts as online until its next link-breaking error.

use std::sync::atomic::Ordering::Relaxed;

use tokio::sync::mpsc;
use tokio::time::{Duration, Instant};
use tokio_modbus::Slave;
use tokio_modbus::client::Context;
use tokio_modbus::prelude::SlaveContext;

use base::Backoff;

use super::device::DeviceRuntime;
use super::link::{self, IoError};
use super::setpoint::{self, SetpointJob};
use super::{Sink, next_job};
use crate::config::BusSettings;

/// Port state of a bus.
struct Port {
    ctx: Option<Context>,
    backoff: Backoff,
    retry_at: Instant,
}

/// First delay before re-opening a serial port that failed to open.
const PORT_BACKOFF_MIN: Duration = Duration::from_secs(1);
/// Longest delay between attempts to open a serial port.
const PORT_BACKOFF_MAX: Duration = Duration::from_secs(60);

/// Runs a bus until the task is aborted.
pub(super) async fn run(
    bus: BusSettings,
    mut devices: Vec<DeviceRuntime>,
    sink: Sink,
    mut jobs: Option<mpsc::Receiver<SetpointJob>>,
) {
    let mut port = Port {
        ctx: None,
        backoff: Backoff::new(PORT_BACKOFF_MIN, PORT_BACKOFF_MAX),
        retry_at: Instant::now(),
    };
    let mut online = vec![false; devices.len()];
    loop {
        let due = devices
            .iter()
            .map(DeviceRuntime::next_due)
            .min()
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            job = next_job(&mut jobs) => {
                if let Some(job) = job {
                    write(&bus, &mut port, &mut devices, &mut online, job, &sink).await;
                }
                continue;
            }
            () = tokio::time::sleep_until(due) => {}
        }
        let now = Instant::now();
        let mut order: Vec<usize> = (0..devices.len())
            .filter(|&d| devices[d].next_due() <= now)
            .collect();
        order.sort_by_key(|&d| devices[d].next_due());
        for d in order {
            serve(&bus, &mut port, &mut devices[d], &mut online[d], now, &sink).await;
        }
    }
}

/// Polls the due groups of one device.
async fn serve(
    bus: &BusSettings,
    port: &mut Port,
    dev: &mut DeviceRuntime,
    online: &mut bool,
    now: Instant,
    sink: &Sink,
) {
    let pace = bus.inter_request_delay;
    let port_open = open(bus, port).await;
    if port_open && !*online && dev.may_connect(now) {
        *online = start_session(bus, port, dev, sink).await;
    }
    for group in dev.due_groups(now) {
        let frame = match port.ctx.as_mut().filter(|_| *online) {
            Some(ctx) => {
                ctx.set_slave(Slave(dev.settings.unit_id));
                let outcome = dev.poll_group(ctx, group, pace).await;
                if let Some(e) = outcome.link_error {
                    tracing::warn!(device = %dev.settings.name, bus = %bus.name, error = %e, "device stopped answering");
                    *online = false;
                    dev.link_down(Instant::now());
                    recover(port, dev.settings.timeout).await;
                }
                outcome.frame
            }
            None => dev.fail_group(group),
        };
        sink.frame(dev, frame);
        dev.advance(group, now);
    }
}

/// Reads a device's information tags; true when it answered.
async fn start_session(
    bus: &BusSettings,
    port: &mut Port,
    dev: &mut DeviceRuntime,
    sink: &Sink,
) -> bool {
    let Some(ctx) = port.ctx.as_mut() else {
        return false;
    };
    ctx.set_slave(Slave(dev.settings.unit_id));
    match dev.read_info(ctx, bus.inter_request_delay).await {
        Ok(info) => {
            dev.link_up();
            sink.info(&dev.settings, info);
            true
        }
        Err(e) => {
            dev.metrics.connect_failures.fetch_add(1, Relaxed);
            dev.link_down(Instant::now());
            if dev.failures() == 1 {
                tracing::warn!(device = %dev.settings.name, bus = %bus.name, error = %e, "device does not answer");
            }
            recover(port, dev.settings.timeout).await;
            false
        }
    }
}

/// Opens the port if needed (respecting its own backoff); true when it is open.
async fn open(bus: &BusSettings, port: &mut Port) -> bool {
    if port.ctx.is_some() {
        return true;
    }
    if Instant::now() < port.retry_at {
        return false;
    }
    match link::open_rtu(bus) {
        Ok(ctx) => {
            if port.backoff.failures() > 0 {
                tracing::info!(bus = %bus.name, "serial port open again");
            }
            port.backoff.reset();
            port.ctx = Some(ctx);
            true
        }
        Err(e) => {
            port.retry_at = Instant::now() + port.backoff.next_delay();
            if port.backoff.failures() == 1 {
                tracing::error!(bus = %bus.name, port = %bus.port.display(), error = %e, "cannot open serial port");
            }
            false
        }
    }
}

/// After a broken exchange: let a late answer pass, then close the port so the next
/// exchange starts on a freshly opened, flushed line.
async fn recover(port: &mut Port, timeout: Duration) {
    port.ctx = None;
    tokio::time::sleep(timeout).await;
}

/// Runs a setpoint job for a device of this bus.
async fn write(
    bus: &BusSettings,
    port: &mut Port,
    devices: &mut [DeviceRuntime],
    online: &mut [bool],
    job: SetpointJob,
    sink: &Sink,
) {
    let Some(d) = devices.iter().position(|d| d.alias() == job.device) else {
        let outcome = Err(format!(
            "device alias {} is not on bus {:?}",
            job.device, bus.name
        ));
        setpoint::reply(job, outcome);
        return;
    };
    let dev = &mut devices[d];
    let port_open = open(bus, port).await;
    if port_open && !online[d] {
        online[d] = start_session(bus, port, dev, sink).await;
    }
    let outcome = match port.ctx.as_mut().filter(|_| online[d]) {
        None => Err(format!("device {:?} is not reachable", dev.settings.name)),
        Some(ctx) => {
            ctx.set_slave(Slave(dev.settings.unit_id));
            match setpoint::execute(ctx, dev, &job, bus.inter_request_delay).await {
                Ok(message) => Ok(message),
                Err((message, broke)) => {
                    if let Some(IoError::Timeout(_) | IoError::Transport(_)) = broke {
                        online[d] = false;
                        dev.link_down(Instant::now());
                        recover(port, dev.settings.timeout).await;
                    }
                    Err(message)
                }
            }
        }
    };
    super::finish_job(dev, job, outcome);
}
