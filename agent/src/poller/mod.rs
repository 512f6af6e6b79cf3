//! Modbus polling: one task per TCP device, one task per serial bus.
//!
//! ```text
//!  config + plan ──▶ DeviceRuntime (schedule, tag states, backoff, metrics)
//!                        │ lent the link by
//!        ┌───────────────┴───────────────┐
//!   tcp::run (one per TCP device)   rtu::run (one per bus, devices in turn)
//!        └───────────────┬───────────────┘
//!                        ▼ try_send (never blocks)
//!                 Sink ──▶ bounded mpsc ──▶ batcher
//! ```
//!
//! * **Isolation**: a TCP device has its own task and connection; a bus has its own task.
//!   Per-request timeouts and per-device exponential backoff keep a dead or slow device
//!   from delaying anyone else (on a bus: at most one timeout per backoff period).
//! * **Never waiting on the rest of the agent**: frames go to the batcher with `try_send`
//!   on a channel sized for minutes of frames ([`queue_capacity`]); if it is ever full the
//!   frame is dropped and counted (`frames_dropped`), the poll schedule is never delayed.
//! * **Values**: samples carry raw register values (`Int` for integer types, `Float` for
//!   floats, `Bool` for bits); scale and offset travel once, in the birth catalog.
//!   Quality and report-by-exception rules are in [`emit`].
//! * **Information tags** (strings such as serial number and firmware version) are read
//!   at the start of every device session and sent to the batcher as
//!   [`PollerEvent::Info`], which updates the birth when they change.
//! * **Setpoint writes** are validated by the [`CommandRouter`] and executed by the task
//!   owning the device's link, between polls ([`setpoint`]).
//!
//! Pollers hold no durable state: stopping the agent aborts their tasks.

pub mod counters;
mod device;
pub mod emit;
pub mod link;
mod rtu;
pub mod setpoint;
mod tcp;

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Duration;
use wire::{CommandResult, Frame};

pub use counters::DeviceMetrics;
pub use device::DeviceRuntime;
use setpoint::SetpointJob;

use crate::config::{Config, DeviceSettings, Transport};

/// Setpoint jobs that may wait for one device task.
const JOB_QUEUE: usize = 8;
/// How long a setpoint command may take, queueing included.
const WRITE_DEADLINE: Duration = Duration::from_secs(60);

/// What pollers send to the batcher.
#[derive(Debug, Clone, PartialEq)]
pub enum PollerEvent {
    /// Samples of one poll of one device.
    Frame(Frame),
    /// The string information tags read at the start of a device session.
    Info {
        /// Device alias.
        device: u16,
        /// `(tag name, text)` pairs.
        info: Vec<(String, String)>,
    },
}

/// The pollers' non-blocking handle on the batcher queue.
#[derive(Debug, Clone)]
pub struct Sink {
    tx: mpsc::Sender<PollerEvent>,
}

impl Sink {
    fn frame(&self, dev: &DeviceRuntime, frame: Option<Frame>) {
        let Some(frame) = frame else { return };
        if let Err(mpsc::error::TrySendError::Full(_)) = self.tx.try_send(PollerEvent::Frame(frame))
        {
            let dropped = dev.metrics.frames_dropped.fetch_add(1, Relaxed) + 1;
            if dropped.is_power_of_two() {
                tracing::warn!(device = %dev.settings.name, dropped, "batcher queue full: frame dropped");
            }
        }
    }

    fn info(&self, device: &DeviceSettings, info: Vec<(String, String)>) {
        if device.plan.info.is_empty() {
            return;
        }
        let event = PollerEvent::Info {
            device: device.alias,
            info,
        };
        if let Err(mpsc::error::TrySendError::Full(_)) = self.tx.try_send(event) {
            tracing::warn!(device = %device.name, "batcher queue full: device information dropped");
        }
    }
}

/// Capacity of the poller → batcher queue: every device's fastest group for 120 s at the
/// flush interval granularity, and at least 1024 events.
pub fn queue_capacity(config: &Config) -> usize {
    let per_two_minutes: f64 = config
        .devices
        .iter()
        .flat_map(|d| d.poll.iter())
        .map(|g| 120.0 / g.interval.as_secs_f64().max(0.1))
        .sum();
    (per_two_minutes.ceil() as usize).clamp(1024, 1 << 20)
}

/// The running poller tasks.
#[derive(Debug)]
pub struct Pollers {
    handles: Vec<JoinHandle<()>>,
    router: CommandRouter,
}

impl Pollers {
    /// Spawns one task per TCP device and one per serial bus. `metrics[i]` belongs to
    /// `config.devices[i]`.
    pub fn spawn(
        config: &Config,
        metrics: &[Arc<DeviceMetrics>],
        tx: mpsc::Sender<PollerEvent>,
    ) -> Pollers {
        let sink = Sink { tx };
        let devices: Vec<Arc<DeviceSettings>> =
            config.devices.iter().cloned().map(Arc::new).collect();
        let mut queues: Vec<Option<mpsc::Sender<SetpointJob>>> = vec![None; devices.len()];
        let mut handles = Vec::new();
        let mut per_bus: Vec<Vec<DeviceRuntime>> =
            config.buses.iter().map(|_| Vec::new()).collect();
        for (settings, metrics) in devices.iter().zip(metrics) {
            let runtime = DeviceRuntime::new(Arc::clone(settings), Arc::clone(metrics));
            match &settings.transport {
                Transport::Tcp { host, port } => {
                    let (job_tx, job_rx) = mpsc::channel(JOB_QUEUE);
                    queues[usize::from(settings.alias)] = Some(job_tx);
                    let task = tcp::run(runtime, host.clone(), *port, sink.clone(), Some(job_rx));
                    handles.push(tokio::spawn(task));
                }
                Transport::Rtu { bus } => per_bus[*bus].push(runtime),
            }
        }
        for (bus, runtimes) in config.buses.iter().zip(per_bus) {
            if runtimes.is_empty() {
                continue;
            }
            let (job_tx, job_rx) = mpsc::channel(JOB_QUEUE);
            for dev in &runtimes {
                queues[usize::from(dev.alias())] = Some(job_tx.clone());
            }
            let task = rtu::run(bus.clone(), runtimes, sink.clone(), Some(job_rx));
            handles.push(tokio::spawn(task));
        }
        let router = CommandRouter {
            devices: devices.into(),
            queues: queues.into(),
        };
        Pollers { handles, router }
    }

    /// A handle for setpoint writes.
    pub fn router(&self) -> CommandRouter {
        self.router.clone()
    }

    /// Stops every poller task (dropping their queue senders).
    pub async fn stop(self) {
        for h in &self.handles {
            h.abort();
        }
        for h in self.handles {
            let _ = h.await;
        }
    }
}

/// Routes setpoint writes to the task owning the device's link.
#[derive(Debug, Clone)]
pub struct CommandRouter {
    devices: Arc<[Arc<DeviceSettings>]>,
    queues: Arc<[Option<mpsc::Sender<SetpointJob>>]>,
}

impl CommandRouter {
    /// Validates, queues and awaits a guarded setpoint write (see [`setpoint`]).
    pub async fn write_setpoint(
        &self,
        id: u64,
        device: u16,
        metric: u16,
        value: f64,
        expected_current: Option<f64>,
    ) -> CommandResult {
        let refuse = |message: String| CommandResult {
            id,
            ok: false,
            message,
        };
        let index = usize::from(device);
        let Some(settings) = self.devices.get(index) else {
            return refuse(format!("no device with alias {device}"));
        };
        let raw = match setpoint::prepare(settings, metric, value) {
            Ok(raw) => raw,
            Err(message) => return refuse(message),
        };
        let Some(queue) = self.queues.get(index).and_then(Option::as_ref) else {
            return refuse(format!("device {:?} has no poller", settings.name));
        };
        let (reply, result) = oneshot::channel();
        let job = SetpointJob {
            id,
            device,
            metric,
            value,
            raw,
            expected_current,
            reply,
        };
        if queue.try_send(job).is_err() {
            return refuse(format!(
                "device {:?} is busy with other writes",
                settings.name
            ));
        }
        match tokio::time::timeout(WRITE_DEADLINE, result).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => refuse("the poller stopped before the write ran".to_string()),
            Err(_) => refuse(format!("no result within {WRITE_DEADLINE:?}")),
        }
    }
}

/// Waits for the next job; pends forever once the queue is closed.
async fn next_job(jobs: &mut Option<mpsc::Receiver<SetpointJob>>) -> Option<SetpointJob> {
    let Some(rx) = jobs.as_mut() else {
        return std::future::pending().await;
    };
    let job = rx.recv().await;
    if job.is_none() {
        *jobs = None;
    }
    job
}

/// Counts, logs (audit trail) and replies to a finished setpoint job.
fn finish_job(dev: &DeviceRuntime, job: SetpointJob, outcome: Result<String, String>) {
    let tag = &dev.settings.profile.tags[usize::from(job.metric)].name;
    match &outcome {
        Ok(message) => {
            dev.metrics.writes_ok.fetch_add(1, Relaxed);
            tracing::info!(command = job.id, device = %dev.settings.name, %tag, value = job.value, "setpoint write: {message}");
        }
        Err(message) => {
            dev.metrics.writes_failed.fetch_add(1, Relaxed);
            tracing::warn!(command = job.id, device = %dev.settings.name, %tag, value = job.value, "setpoint write failed: {message}");
        }
    }
    setpoint::reply(job, outcome);
}
