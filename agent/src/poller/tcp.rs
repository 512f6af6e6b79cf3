//! The task of one Modbus TCP device.
//!
//! Each TCP device gets its own task and its own connection, so a device that is dead,
//! slow or answering with exceptions only ever delays itself. The task sleeps until the
//! next poll group is due or a setpoint job arrives; when a group is due it (re)connects if
//! the backoff allows, polls, and hands the frame to the batcher without waiting.
//!
//! A connection is opened with the device timeout as connect timeout, and every new
//! session starts by reading the device's string information tags. After any
//! link-breaking error (timeout, I/O, mismatched answer) the connection is dropped: a late
//! answer on a reused connection could be taken for the next request's.

use tokio::sync::mpsc;
use tokio::time::{Duration, Instant};
use tokio_modbus::client::Context;

use super::device::DeviceRuntime;
use super::link;
use super::setpoint::{self, SetpointJob};
use super::{Sink, next_job};

/// Runs a TCP device until the task is aborted.
pub(super) async fn run(
    mut dev: DeviceRuntime,
    host: String,
    port: u16,
    sink: Sink,
    mut jobs: Option<mpsc::Receiver<SetpointJob>>,
) {
    let mut link: Option<Context> = None;
    loop {
        let due = dev.next_due();
        tokio::select! {
            job = next_job(&mut jobs) => {
                if let Some(job) = job {
                    if link.is_none() {
                        link = connect(&mut dev, &host, port, &sink).await;
                    }
                    link = write(&mut dev, link, job).await;
                }
                continue;
            }
            () = tokio::time::sleep_until(due) => {}
        }
        let now = Instant::now();
        if link.is_none() && dev.may_connect(now) {
            link = connect(&mut dev, &host, port, &sink).await;
        }
        for group in dev.due_groups(now) {
            let frame = match link.as_mut() {
                Some(ctx) => {
                    let outcome = dev.poll_group(ctx, group, Duration::ZERO).await;
                    if let Some(e) = outcome.link_error {
                        tracing::warn!(device = %dev.settings.name, error = %e, "link lost");
                        link = None;
                        dev.link_down(Instant::now());
                    }
                    outcome.frame
                }
                None => dev.fail_group(group),
            };
            sink.frame(&dev, frame);
            dev.advance(group, now);
        }
    }
}

/// Opens a session: connect and read the information tags.
async fn connect(dev: &mut DeviceRuntime, host: &str, port: u16, sink: &Sink) -> Option<Context> {
    let limit = dev.settings.timeout.max(Duration::from_secs(1));
    let result = match link::connect_tcp(host, port, dev.settings.unit_id, limit).await {
        Ok(mut ctx) => dev
            .read_info(&mut ctx, Duration::ZERO)
            .await
            .map(|info| (ctx, info)),
        Err(e) => {
            dev.metrics
                .connect_failures
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Err(e)
        }
    };
    match result {
        Ok((ctx, info)) => {
            if dev.failures() > 0 {
                tracing::info!(device = %dev.settings.name, "device reachable again");
            }
            dev.link_up();
            sink.info(&dev.settings, info);
            Some(ctx)
        }
        Err(e) => {
            dev.link_down(Instant::now());
            if dev.failures() == 1 {
                tracing::warn!(device = %dev.settings.name, %host, port, error = %e, "cannot reach device");
            } else {
                tracing::debug!(device = %dev.settings.name, error = %e, failures = dev.failures(), "still unreachable");
            }
            None
        }
    }
}

/// Runs a setpoint job on the device's link (if there is one) and replies.
async fn write(
    dev: &mut DeviceRuntime,
    mut link: Option<Context>,
    job: SetpointJob,
) -> Option<Context> {
    let outcome = match link.as_mut() {
        None => Err(format!("device {:?} is not reachable", dev.settings.name)),
        Some(ctx) => match setpoint::execute(ctx, dev, &job, Duration::ZERO).await {
            Ok(message) => Ok(message),
            Err((message, broke)) => {
                if broke.is_some() {
                    link = None;
                    dev.link_down(Instant::now());
                }
                Err(message)
            }
        },
    };
    super::finish_job(dev, job, outcome);
    link
}
