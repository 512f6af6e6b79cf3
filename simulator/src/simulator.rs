//! The public handle: starts the listeners, answers `expected()`, injects failures, exports
//! the schedule, serves RTU, shuts down.
//!
//! One TCP listener per well (port 0 = ephemeral, or `base_port + index`), each running a
//! `tokio_modbus` TCP server whose service dispatches by unit id to the well's devices. All
//! listeners share one [`Fleet`]; a request costs a read lock, at most one register-image
//! render per device and simulated second, and a copy.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use firmware_profiles::{Parity, RawValue, TransportDefaults};
use serde::{Deserialize, Serialize};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_modbus::server::tcp::{Server, accept_tcp_connection};
use tokio_serial::SerialStream;

use crate::clock::now_ms;
use crate::config::FleetConfig;
use crate::error::SimError;
use crate::failure::{Failure, FailureEvent, ScheduleFile};
use crate::fleet::Fleet;
use crate::server::{DeviceService, WellService};

/// Where to reach one simulated device (a boundary type: printed and exported as JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// Well name.
    pub well: String,
    /// Device name (unique in the fleet).
    pub device: String,
    /// Firmware profile id.
    pub profile: String,
    /// TCP address of the well's listener.
    pub addr: SocketAddr,
    /// Modbus unit id of the device on that listener.
    pub unit_id: u8,
}

/// A running simulated fleet.
#[derive(Debug)]
pub struct Simulator {
    fleet: Arc<Fleet>,
    seed: u64,
    time_scale: f64,
    addrs: Vec<SocketAddr>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Simulator {
    /// Builds the fleet and starts one Modbus TCP listener per well on `bind_ip`.
    pub async fn start(cfg: FleetConfig, bind_ip: IpAddr) -> Result<Simulator, SimError> {
        let fleet = Arc::new(Fleet::build(&cfg, now_ms())?);
        // Bind every listener before serving any, so a port conflict leaves nothing running.
        let mut listeners = Vec::with_capacity(fleet.wells.len());
        for well in 0..fleet.wells.len() {
            let port = match cfg.base_port {
                0 => 0,
                base => base + u16::try_from(well).expect("validated against the port range"),
            };
            let addr = SocketAddr::new(bind_ip, port);
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|source| SimError::Bind { addr, source })?;
            let local = listener
                .local_addr()
                .map_err(|source| SimError::Bind { addr, source })?;
            listeners.push((listener, local));
        }
        let mut addrs = Vec::with_capacity(listeners.len());
        let mut tasks = Vec::with_capacity(listeners.len());
        for (well, (listener, local)) in listeners.into_iter().enumerate() {
            addrs.push(local);
            let service = WellService {
                fleet: Arc::clone(&fleet),
                well,
            };
            tasks.push(tokio::spawn(serve_well(listener, service)));
        }
        tracing::info!(
            wells = fleet.wells.len(),
            devices = fleet.devices.len(),
            seed = cfg.seed,
            time_scale = cfg.time_scale,
            "simulator started"
        );
        Ok(Simulator {
            fleet,
            seed: cfg.seed,
            time_scale: cfg.time_scale,
            addrs,
            tasks: Mutex::new(tasks),
        })
    }

    /// Every device with its address and unit id, in well / unit-id order.
    pub fn endpoints(&self) -> Vec<Endpoint> {
        self.fleet
            .wells
            .iter()
            .zip(&self.addrs)
            .flat_map(|(well, addr)| {
                well.devices.iter().map(|d| {
                    let device = &self.fleet.devices[*d];
                    Endpoint {
                        well: well.name.clone(),
                        device: device.name.clone(),
                        profile: device.profile_id.clone(),
                        addr: *addr,
                        unit_id: device.unit_id,
                    }
                })
            })
            .collect()
    }

    /// The raw value tag `tag` (profile tag name) of `device` has at wall-clock UTC ms
    /// `at_ms` — what a client decoding with the profile reads in that simulated second.
    /// `None` for an unknown device or tag.
    pub fn expected(&self, device: &str, tag: &str, at_ms: i64) -> Option<RawValue> {
        self.fleet.expected(device, tag, at_ms)
    }

    /// Simulated ms at wall-clock UTC ms `wall_ms`.
    pub fn sim_time_ms(&self, wall_ms: i64) -> i64 {
        self.fleet.clock.sim_ms(wall_ms)
    }

    /// Starts `failure` on `device` now for `duration` (wall-clock). Errors are logged;
    /// use [`Simulator::try_inject`] to handle them.
    pub fn inject(&self, device: &str, failure: Failure, duration: Duration) {
        if let Err(e) = self.try_inject(device, failure, duration) {
            tracing::warn!(error = %e, "failure not injected");
        }
    }

    /// Like [`Simulator::inject`], reporting an unknown device or a process failure on a
    /// device that is not lift equipment.
    pub fn try_inject(
        &self,
        device: &str,
        failure: Failure,
        duration: Duration,
    ) -> Result<(), SimError> {
        self.fleet.inject(device, failure, duration, now_ms())
    }

    /// Every failure (scheduled within the horizon, and injected so far), sorted by start.
    pub fn failure_schedule(&self) -> Vec<FailureEvent> {
        self.fleet.events()
    }

    /// The schedule with the run's clock, as written by `--export-schedule`.
    pub fn schedule_file(&self) -> ScheduleFile {
        ScheduleFile {
            seed: self.seed,
            time_scale: self.time_scale,
            clock_origin_ms: self.fleet.clock.origin_ms,
            horizon_end_sim_ms: self.fleet.horizon_end,
            events: self.failure_schedule(),
        }
    }

    /// Writes [`Simulator::schedule_file`] as JSON to `path`.
    pub fn export_schedule(&self, path: &Path) -> Result<(), SimError> {
        std::fs::write(path, self.schedule_file().to_json()).map_err(|source| SimError::Io {
            path: path.to_owned(),
            source,
        })
    }

    /// Serves `device` as a Modbus RTU slave on the serial port `serial_path` (serial
    /// settings from its profile) until shutdown. Returns once the port is open.
    pub async fn serve_rtu(&self, device: &str, serial_path: &Path) -> Result<(), SimError> {
        let d = self.fleet.device_index(device)?;
        let transport = &self.fleet.devices[d].profile.transport;
        let serial = open_serial(transport, serial_path).map_err(|source| SimError::Serial {
            path: serial_path.to_owned(),
            source,
        })?;
        let service = DeviceService {
            fleet: Arc::clone(&self.fleet),
            device: d,
        };
        let name = device.to_owned();
        let path = serial_path.display().to_string();
        let task = tokio::spawn(async move {
            let server = tokio_modbus::server::rtu::Server::new(serial);
            if let Err(e) = server.serve_forever(service).await {
                tracing::warn!(device = %name, port = %path, error = %e, "RTU server stopped");
            }
        });
        self.lock_tasks().push(task);
        tracing::info!(device, port = %serial_path.display(), "serving RTU");
        Ok(())
    }

    /// Stops every listener and RTU server and closes their connections.
    pub async fn shutdown(self) {
        let tasks = std::mem::take(&mut *self.lock_tasks());
        for task in &tasks {
            task.abort();
        }
        for task in tasks {
            // A cancelled task reports JoinError::Cancelled; nothing else can happen here.
            let _ = task.await;
        }
        tracing::info!("simulator stopped");
    }

    fn lock_tasks(&self) -> std::sync::MutexGuard<'_, Vec<JoinHandle<()>>> {
        self.tasks.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        for task in self.lock_tasks().iter() {
            task.abort();
        }
    }
}

/// Accept loop of one well.
async fn serve_well(listener: TcpListener, service: WellService) {
    let well = service.well;
    let server = Server::new(listener);
    let on_connected = |stream: TcpStream, socket_addr: SocketAddr| {
        let service = service.clone();
        async move {
            if let Err(e) = stream.set_nodelay(true) {
                tracing::debug!(error = %e, "cannot set TCP_NODELAY");
            }
            accept_tcp_connection(stream, socket_addr, |_| Ok(Some(service.clone())))
        }
    };
    let on_process_error = |err: std::io::Error| {
        tracing::debug!(error = %err, "modbus connection closed with an error");
    };
    if let Err(e) = server.serve(&on_connected, on_process_error).await {
        tracing::error!(well, error = %e, "listener stopped");
    }
}

/// Opens a serial port with the profile's serial settings.
fn open_serial(t: &TransportDefaults, path: &Path) -> tokio_serial::Result<SerialStream> {
    let data_bits = match t.data_bits {
        7 => tokio_serial::DataBits::Seven,
        _ => tokio_serial::DataBits::Eight,
    };
    let parity = match t.parity {
        Parity::None => tokio_serial::Parity::None,
        Parity::Even => tokio_serial::Parity::Even,
        Parity::Odd => tokio_serial::Parity::Odd,
    };
    let stop_bits = match t.stop_bits {
        2 => tokio_serial::StopBits::Two,
        _ => tokio_serial::StopBits::One,
    };
    let builder = tokio_serial::new(path.to_string_lossy(), t.baud_rate)
        .data_bits(data_bits)
        .parity(parity)
        .stop_bits(stop_bits);
    SerialStream::open(&builder)
}
