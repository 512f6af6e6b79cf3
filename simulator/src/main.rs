//! `wellpulse-simulator`: serves a simulated fleet over Modbus TCP until Ctrl-C / SIGTERM.
//!
//! Configuration comes from `--config FILE` (TOML, see `simulator/examples/fleet.toml`),
//! overridden by the flags. At start-up it prints the endpoint list (well, device, profile,
//! address, unit id) on stdout, optionally writes it as JSON (`--endpoints-json`) and the
//! failure schedule (`--export-schedule`). Logs go to stderr (`RUST_LOG` filter, default
//! `info`).

use std::io::Write as _;
use std::net::IpAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;
use simulator::{Endpoint, FleetConfig, Simulator};

/// Modbus TCP simulator of a fleet of oil & gas wells.
#[derive(Debug, Parser)]
#[command(name = "wellpulse-simulator", version)]
struct Args {
    /// Fleet configuration file (TOML).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Number of wells (overrides the config).
    #[arg(long)]
    wells: Option<usize>,
    /// Seed (overrides the config).
    #[arg(long)]
    seed: Option<u64>,
    /// IP address the listeners bind to.
    #[arg(long, default_value = "127.0.0.1")]
    bind: IpAddr,
    /// Port of the first well, well i on base-port + i; 0 = ephemeral (overrides the config).
    #[arg(long)]
    base_port: Option<u16>,
    /// Simulated seconds per wall-clock second (overrides the config).
    #[arg(long)]
    time_scale: Option<f64>,
    /// Write the failure schedule (JSON) to this file at start-up.
    #[arg(long)]
    export_schedule: Option<PathBuf>,
    /// Write the endpoint list (JSON) to this file at start-up.
    #[arg(long)]
    endpoints_json: Option<PathBuf>,
}

impl Args {
    fn fleet_config(&self) -> anyhow::Result<FleetConfig> {
        let mut cfg = match &self.config {
            Some(path) => FleetConfig::load(path)?,
            None => FleetConfig::default(),
        };
        if let Some(wells) = self.wells {
            cfg.wells = wells;
        }
        if let Some(seed) = self.seed {
            cfg.seed = seed;
        }
        if let Some(port) = self.base_port {
            cfg.base_port = port;
        }
        if let Some(scale) = self.time_scale {
            cfg.time_scale = scale;
        }
        cfg.validate()?;
        Ok(cfg)
    }
}

/// Writes the endpoint table to stdout.
fn print_endpoints(endpoints: &[Endpoint]) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{:<12} {:<44} {:<26} {:<22} UNIT",
        "WELL", "DEVICE", "PROFILE", "ADDRESS"
    )?;
    for e in endpoints {
        writeln!(
            out,
            "{:<12} {:<44} {:<26} {:<22} {}",
            e.well,
            e.device,
            e.profile,
            e.addr.to_string(),
            e.unit_id
        )?;
    }
    out.flush()
}

async fn wait_for_stop() -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.context("waiting for Ctrl-C")?,
        _ = term.recv() => {}
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    let cfg = args.fleet_config()?;
    let sim = Simulator::start(cfg, args.bind)
        .await
        .context("starting the simulator")?;
    let endpoints = sim.endpoints();
    // A closed stdout (e.g. piped into `head`) must not stop the simulator.
    if let Err(e) = print_endpoints(&endpoints) {
        tracing::warn!(error = %e, "cannot print the endpoint list");
    }
    if let Some(path) = &args.endpoints_json {
        let json = serde_json::to_string_pretty(&endpoints).context("encoding endpoints")?;
        std::fs::write(path, json)
            .with_context(|| format!("writing endpoints to {}", path.display()))?;
    }
    if let Some(path) = &args.export_schedule {
        sim.export_schedule(path)
            .context("exporting the failure schedule")?;
    }
    wait_for_stop().await?;
    sim.shutdown().await;
    Ok(())
}
