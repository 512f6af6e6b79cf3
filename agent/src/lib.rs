//! WellPulse gateway agent.
//!
//! ```text
//!  [[device]] ─▶ poller (plan, Modbus TCP/RTU) ─▶ batcher ─▶ buffer (redb) ─▶ uplink (MQTT)
//!                                                   │ births                    │ commands
//!                                                   ▼                           ▼
//!                                               metrics (/metrics)     setpoint writes → poller
//! ```
//!
//! * [`config`]: the TOML file and its validation.
//! * [`plan`]: coalescing tags into few Modbus requests; poll groups.
//! * [`poller`]: Modbus polling, quality, report by exception, setpoint writes; device
//!   counters.
//! * [`batcher`]: frames → durable batches; births.
//! * [`buffer`]: the durable batch queue (redb), and the batches the cloud refused for good.
//! * [`uplink`]: MQTT delivery, cloud acks and refusals, commands.
//! * [`metrics`]: Prometheus endpoint (`prometheus-client`).
//! * [`clock`]: the gateway clock (a leaf: every module may use it).
//!
//! Modules import each other in one direction only (`tests/module_graph.rs` checks it):
//! `clock`, `buffer` and `plan` at the bottom, then `config`, `poller`, `batcher`,
//! `uplink`, `metrics`, and this module on top.
//!
//! # Session lifecycle ([`run`])
//!
//! A *session* is one boot id. It loads and validates the config, opens the buffer, stores
//! the birth, starts the pollers (one task per TCP device, one per serial bus), the batcher
//! and the metrics endpoint, waits up to [`BIRTH_GRACE`] for devices to report their
//! information tags (so the announced birth carries serial numbers and firmware versions),
//! then starts the uplink. Data read meanwhile is already buffered. Commands other than
//! rebirth come from the uplink: setpoint writes go to the device's poller through the
//! [`poller::CommandRouter`]; a config update is validated, written atomically over the
//! config file and starts a new session in-process.
//!
//! Shutdown order is the data-path order: pollers stop, the batcher commits what it holds,
//! the uplink publishes the Death and disconnects. Nothing read is lost.

pub mod batcher;
pub mod buffer;
pub mod clock;
pub mod config;
pub mod metrics;
pub mod plan;
pub mod poller;
pub mod uplink;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::sync::{Notify, mpsc, oneshot, watch};
use tokio::task::JoinSet;

use crate::batcher::{Batcher, BatcherSettings, BatcherStats, BirthState};
use crate::buffer::{Buffer, BufferLimits};
use crate::config::Config;
use crate::metrics::Sources;
use crate::poller::{CommandRouter, DeviceMetrics, Pollers};
use crate::uplink::{ClientAuth, TlsOptions, Uplink, UplinkConfig};

/// Longest wait for devices to report their information tags before the session's birth
/// is announced (devices unreachable at start-up would otherwise delay all data).
pub const BIRTH_GRACE: Duration = Duration::from_secs(10);
/// Time given to the uplink to publish a command result before a restart.
const RESULT_GRACE: Duration = Duration::from_secs(1);
/// File name of the durable buffer inside `gateway.data_dir`.
pub const BUFFER_FILE: &str = "buffer.redb";

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Exit {
    /// SIGTERM / Ctrl-C: stop the process.
    Shutdown,
    /// A config update was written: start a new session with it.
    Restart,
}

/// Runs the agent until `shutdown` completes: config → profiles → buffer → pollers →
/// batcher → uplink → metrics. A `ConfigUpdate` command that validates is written over
/// the config file and starts a new session (new boot id, new birth) in-process.
///
/// On shutdown the pollers stop first, the batcher commits what it holds to the buffer,
/// then the uplink publishes the Death and disconnects: no sample read is lost.
pub async fn run(config_path: &Path, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    tokio::pin!(shutdown);
    loop {
        match session(config_path, &mut shutdown).await? {
            Exit::Shutdown => return Ok(()),
            Exit::Restart => tracing::info!("configuration updated: restarting the session"),
        }
    }
}

/// Completes on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch SIGTERM; only Ctrl-C stops the agent");
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutdown requested");
}

/// The uplink settings of a config.
pub fn uplink_config(config: &Config) -> UplinkConfig {
    let m = &config.mqtt;
    UplinkConfig {
        host: m.host.clone(),
        port: m.port,
        tls: m.tls.as_ref().map(|t| TlsOptions {
            ca_file: t.ca_file.clone(),
            client_auth: t.client_cert.clone().zip(t.client_key.clone()).map(
                |(cert_file, key_file)| ClientAuth {
                    cert_file,
                    key_file,
                },
            ),
        }),
        client_id: m.client_id.clone(),
        username: Some(m.username.clone()),
        password: m.password.clone(),
        tenant: config.gateway.tenant.clone(),
        gateway: config.gateway.id.clone(),
        keep_alive: m.keep_alive,
        in_flight_window: m.inflight_window,
        ack_timeout: m.ack_timeout,
        live_window: m.live_window,
        backlog_pace: 1.0 / m.backlog_pace.as_secs_f64().max(1e-3),
        reconnect_backoff_min: m.reconnect_min,
        reconnect_backoff_max: m.reconnect_max,
    }
}

/// One agent session (one boot id).
async fn session(
    path: &Path,
    shutdown: &mut std::pin::Pin<&mut impl Future<Output = ()>>,
) -> anyhow::Result<Exit> {
    let config = Config::load(path)?;
    let buffer = open_buffer(&config).await?;
    let boot_id = rand::random::<u64>();
    let birth = batcher::build_birth(&config, boot_id);
    batcher::store_birth(&buffer, &birth)
        .await
        .context("cannot store the session birth")?;
    tracing::info!(
        boot_id = %wire::HexId(boot_id),
        epoch = %wire::HexId(buffer.stats().epoch),
        devices = config.devices.len(),
        gateway = %config.gateway.id,
        "agent session starting"
    );

    let devices: Vec<Arc<DeviceMetrics>> = config
        .devices
        .iter()
        .map(|d| Arc::new(DeviceMetrics::new(&d.name)))
        .collect();
    let (frames_tx, frames_rx) = mpsc::channel(poller::queue_capacity(&config));
    let pollers = Pollers::spawn(&config, &devices, frames_tx);
    let batcher_stats = Arc::new(BatcherStats::default());
    let settings = BatcherSettings {
        flush_interval: config.buffer.flush_interval,
        flush_quiet: config.buffer.flush_quiet,
        max_samples_per_batch: config.buffer.max_samples_per_batch,
        flush_min_samples: config.buffer.flush_min_samples,
    };
    let info_devices = config
        .devices
        .iter()
        .filter(|d| !d.plan.info.is_empty())
        .map(|d| d.alias);
    let (batcher, mut births) = Batcher::new(
        frames_rx,
        Arc::clone(&buffer),
        settings,
        birth,
        info_devices,
        Arc::clone(&batcher_stats),
    );
    let batcher_task = tokio::spawn(batcher.run());

    let sources = Arc::new(Sources {
        devices,
        batcher: batcher_stats,
        buffer: Arc::clone(&buffer),
        boot_id,
        uplink: std::sync::OnceLock::new(),
    });
    let listener = tokio::net::TcpListener::bind(config.metrics_listen)
        .await
        .with_context(|| format!("cannot listen for metrics on {}", config.metrics_listen))?;
    let metrics_task = tokio::spawn(metrics::serve(listener, Arc::clone(&sources)));

    let birth = tokio::select! {
        birth = wait_for_info(&mut births) => birth,
        () = shutdown.as_mut() => {
            stop_pipeline(pollers, batcher_task).await;
            metrics_task.abort();
            return Ok(Exit::Shutdown);
        }
    };
    let (commands_tx, commands_rx) = mpsc::channel(16);
    let (results_tx, results_rx) = mpsc::channel(16);
    let uplink = Uplink::new(
        uplink_config(&config),
        Arc::clone(&buffer),
        birth,
        commands_tx,
        results_rx,
    )
    .context("cannot start the uplink")?
    .follow_births(births);
    let _ = sources.uplink.set(uplink.stats());
    let (stop_uplink, uplink_stopped) = oneshot::channel::<()>();
    let mut uplink_task = tokio::spawn(uplink.run(async {
        let _ = uplink_stopped.await;
    }));
    let restart = Arc::new(Notify::new());
    let handler = CommandHandler {
        router: pollers.router(),
        config_path: path.to_path_buf(),
        config_hash: config.hash.clone(),
        restart: Arc::clone(&restart),
    };
    let commands_task = tokio::spawn(handler.run(commands_rx, results_tx));

    let exit = tokio::select! {
        () = shutdown.as_mut() => Exit::Shutdown,
        () = restart.notified() => {
            tokio::time::sleep(RESULT_GRACE).await;
            Exit::Restart
        }
        result = &mut uplink_task => {
            stop_pipeline(pollers, batcher_task).await;
            metrics_task.abort();
            commands_task.abort();
            return match result {
                Ok(Ok(())) => Err(anyhow::anyhow!("the uplink stopped unexpectedly")),
                Ok(Err(e)) => Err(e).context("uplink failed"),
                Err(e) => Err(e).context("uplink task failed"),
            };
        }
    };
    stop_pipeline(pollers, batcher_task).await;
    let _ = stop_uplink.send(());
    match uplink_task.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!(error = %e, "uplink stopped with an error"),
        Err(e) => tracing::error!(error = %e, "uplink task failed"),
    }
    commands_task.abort();
    metrics_task.abort();
    let _ = commands_task.await;
    let _ = metrics_task.await;
    tracing::info!("agent session ended");
    Ok(exit)
}

/// The buffer file of a config.
pub fn buffer_path(config: &Config) -> PathBuf {
    config.gateway.data_dir.join(BUFFER_FILE)
}

/// The buffer limits of a config.
pub fn buffer_limits(config: &Config) -> BufferLimits {
    BufferLimits {
        max_bytes: config.buffer.max_bytes,
        max_age: config.buffer.max_age,
    }
}

/// Creates the data directory and opens the buffer (on a blocking thread). A damaged
/// buffer is salvaged there (see [`Buffer::open`]).
async fn open_buffer(config: &Config) -> anyhow::Result<Arc<Buffer>> {
    let dir = config.gateway.data_dir.clone();
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create data directory {}", dir.display()))?;
    let limits = buffer_limits(config);
    let file = buffer_path(config);
    let buffer = tokio::task::spawn_blocking(move || Buffer::open(&file, limits))
        .await
        .context("buffer open task failed")?
        .with_context(|| format!("cannot open the buffer in {}", dir.display()))?;
    Ok(Arc::new(buffer))
}

/// Stops the pollers and waits for the batcher's final flush.
async fn stop_pipeline(pollers: Pollers, batcher: tokio::task::JoinHandle<()>) {
    pollers.stop().await;
    if let Err(e) = batcher.await {
        tracing::error!(error = %e, "batcher task failed");
    }
}

/// Waits until every device with information tags reported them, or [`BIRTH_GRACE`].
async fn wait_for_info(births: &mut watch::Receiver<BirthState>) -> wire::Birth {
    let complete = tokio::time::timeout(BIRTH_GRACE, births.wait_for(|s| s.missing_info == 0));
    if complete.await.is_err() {
        let missing = births.borrow().missing_info;
        tracing::warn!(
            missing,
            "device information incomplete after {BIRTH_GRACE:?}; announcing the birth without it"
        );
    }
    births.borrow().birth.as_ref().clone()
}

/// Executes the commands the uplink hands over (everything but rebirth).
#[derive(Debug)]
struct CommandHandler {
    router: CommandRouter,
    config_path: PathBuf,
    config_hash: String,
    restart: Arc<Notify>,
}

impl CommandHandler {
    async fn run(
        self,
        mut commands: mpsc::Receiver<wire::Command>,
        results: mpsc::Sender<wire::CommandResult>,
    ) {
        let mut writes = JoinSet::new();
        loop {
            tokio::select! {
                command = commands.recv() => match command {
                    Some(command) => self.dispatch(command, &results, &mut writes),
                    None => break,
                },
                Some(_) = writes.join_next(), if !writes.is_empty() => {}
            }
        }
        while writes.join_next().await.is_some() {}
    }

    fn dispatch(
        &self,
        command: wire::Command,
        results: &mpsc::Sender<wire::CommandResult>,
        writes: &mut JoinSet<()>,
    ) {
        let id = command.id;
        match command.kind {
            wire::CommandKind::WriteSetpoint {
                device,
                metric,
                value,
                expected_current,
            } => {
                let router = self.router.clone();
                let results = results.clone();
                writes.spawn(async move {
                    let result = router
                        .write_setpoint(id, device, metric, value, expected_current)
                        .await;
                    let _ = results.send(result).await;
                });
            }
            wire::CommandKind::ConfigUpdate { toml } => {
                let (result, restart) =
                    apply_config_update(&self.config_path, &self.config_hash, id, &toml);
                if results.try_send(result).is_err() {
                    tracing::warn!(command = id, "command result queue full");
                }
                if restart {
                    self.restart.notify_one();
                }
            }
            wire::CommandKind::Rebirth { .. } => {
                let result = wire::CommandResult {
                    id,
                    ok: false,
                    message: "rebirth is handled by the uplink".to_string(),
                };
                let _ = results.try_send(result);
            }
        }
    }
}

/// Validates a new config and atomically replaces the config file with it (keeping the
/// previous file as `<name>.bak`). Nothing is written when validation fails or when the
/// new file is byte-identical to the running one (then the result is `ok` and there is
/// no restart). Returns the result and whether the session must restart.
fn apply_config_update(
    path: &Path,
    running: &str,
    id: u64,
    toml: &str,
) -> (wire::CommandResult, bool) {
    let fail = |message: String| {
        tracing::warn!(command = id, "config update refused: {message}");
        let result = wire::CommandResult {
            id,
            ok: false,
            message,
        };
        (result, false)
    };
    let base = path.parent().unwrap_or(Path::new("."));
    let config = match Config::from_bytes(path, base, toml.as_bytes()) {
        Ok(config) => config,
        Err(e) => return fail(e.to_string()),
    };
    if config.hash == running {
        let result = wire::CommandResult {
            id,
            ok: true,
            message: "configuration unchanged; nothing to apply".to_string(),
        };
        return (result, false);
    }
    let tmp = path.with_extension("toml.new");
    let backup = path.with_extension("toml.bak");
    let written = std::fs::write(&tmp, toml)
        .and_then(|()| std::fs::File::open(&tmp)?.sync_all())
        .and_then(|()| std::fs::copy(path, &backup).map(drop))
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return fail(format!("cannot write {}: {e}", path.display()));
    }
    tracing::info!(command = id, hash = %config.hash, "config update written");
    let result = wire::CommandResult {
        id,
        ok: true,
        message: format!(
            "configuration {} applied ({} devices); agent session restarting",
            &config.hash[..12],
            config.devices.len()
        ),
    };
    (result, true)
}
