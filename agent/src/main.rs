//! `wellpulse-agent`: the gateway daemon and its offline tools.
//!
//! * `run --config FILE` — poll, buffer and ship until SIGTERM / Ctrl-C (see
//!   [`agent::run`]). The runtime is single-threaded (plus a small blocking pool for the
//!   buffer's fsyncs): a gateway polls tens of devices, not thousands, and one thread keeps
//!   CPU and memory at a minimum.
//! * `check-config FILE` — validate a config, print what would be polled and how.
//! * `check-profile FILE...` — validate firmware profiles, print each tag and the read plan.
//! * `generate-config --simulator-endpoints endpoints.json` — write a valid config polling
//!   every device the simulator serves (`wellpulse-simulator --endpoints-json`).
//! * `buffer check --config FILE` — validate every record of the durable buffer without
//!   changing it (exit 1 when damaged); `buffer salvage --config FILE` — move the buffer
//!   aside and keep its intact batches in a new epoch (the agent does this by itself at
//!   start when it finds the file damaged). Stop the agent first: the file is locked.
//!
//! Logs go to stderr through `tracing` (`RUST_LOG`, default `info`).

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use agent::config::{Config, PollGroup, Transport, validate_device_name};
use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};
use firmware_profiles::{DataType, Profile};
use serde::Deserialize;

#[derive(Debug, Parser)]
#[command(
    name = "wellpulse-agent",
    version,
    about = "WellPulse wellsite gateway agent"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the agent.
    Run {
        /// Agent configuration file (TOML).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Validate a configuration file and print the resulting poll plan.
    CheckConfig {
        /// Agent configuration file (TOML).
        file: PathBuf,
    },
    /// Validate firmware profile files and print their tags and read plans.
    CheckProfile {
        /// Profile files (TOML).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Write an agent configuration for the devices of a simulator endpoint list.
    GenerateConfig(Box<GenerateArgs>),
    /// Inspect or salvage the durable buffer (stop the agent first: the file is locked
    /// while it runs).
    Buffer {
        #[command(subcommand)]
        action: BufferAction,
    },
}

#[derive(Debug, Subcommand)]
enum BufferAction {
    /// Validate every record of the buffer without changing it; exits 1 when damaged.
    Check {
        /// Agent configuration file (TOML); the buffer is in its `gateway.data_dir`.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Move the buffer file aside and keep its intact batches in a new buffer with a new
    /// epoch; the rest is counted as dropped. The agent does this by itself at start when
    /// it finds the file damaged.
    Salvage {
        /// Agent configuration file (TOML); the buffer is in its `gateway.data_dir`.
        #[arg(long, short)]
        config: PathBuf,
    },
}

#[derive(Debug, clap::Args)]
struct GenerateArgs {
    /// Endpoint list JSON printed by `wellpulse-simulator --endpoints-json`.
    #[arg(long)]
    simulator_endpoints: PathBuf,
    /// Tenant id.
    #[arg(long, default_value = "demo")]
    tenant: String,
    /// Gateway id.
    #[arg(long, default_value = "gw-sim")]
    gateway: String,
    /// Buffer directory.
    #[arg(long, default_value = "wellpulse-data")]
    data_dir: PathBuf,
    /// Broker URL.
    #[arg(long, default_value = "mqtt://127.0.0.1:1883")]
    mqtt_url: String,
    /// MQTT username: `{tenant}/{gateway}`, the default. The password (required) is read
    /// from WELLPULSE_MQTT_PASSWORD, never from the command line.
    #[arg(long)]
    mqtt_username: Option<String>,
    /// MQTT client id (the embedded broker binds `wp-{tenant}-{gateway}` to the username).
    #[arg(long)]
    mqtt_client_id: Option<String>,
    /// Metrics listen address.
    #[arg(long, default_value = "127.0.0.1:9102")]
    metrics_listen: String,
    /// Poll interval per group, e.g. `--poll fast=1s --poll slow=60s` (these two are
    /// the defaults).
    #[arg(long, value_parser = parse_poll)]
    poll: Vec<(String, Duration)>,
    /// Interval for poll groups not given with --poll.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    default_poll: Duration,
    /// Output file (stdout when absent).
    #[arg(long, short)]
    output: Option<PathBuf>,
}

fn parse_poll(text: &str) -> Result<(String, Duration), String> {
    let (group, interval) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not GROUP=DURATION"))?;
    let interval = humantime::parse_duration(interval).map_err(|e| format!("{text:?}: {e}"))?;
    Ok((group.to_string(), interval))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    let result = match cli.command {
        Command::Run { config } => run(&config),
        Command::CheckConfig { file } => check_config(&file),
        Command::CheckProfile { files } => check_profiles(&files),
        Command::Buffer { action } => buffer_tool(action),
        Command::GenerateConfig(args) => {
            let GenerateArgs {
                simulator_endpoints,
                tenant,
                gateway,
                data_dir,
                mqtt_url,
                mqtt_username,
                mqtt_client_id,
                metrics_listen,
                poll,
                default_poll,
                output,
            } = *args;
            let mut intervals = BTreeMap::from([
                ("fast".to_string(), Duration::from_secs(1)),
                ("slow".to_string(), Duration::from_secs(60)),
            ]);
            intervals.extend(poll);
            let options = GenerateOptions {
                tenant,
                gateway,
                data_dir,
                mqtt_url,
                mqtt_username,
                mqtt_password: std::env::var("WELLPULSE_MQTT_PASSWORD").ok(),
                mqtt_client_id,
                metrics_listen,
                intervals,
                default_poll,
            };
            generate_config(&simulator_endpoints, &options, output.as_deref())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // `check-config … | head`: the reader has what it wanted.
        Err(e) if base::is_broken_pipe(e.as_ref()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Colour codes only on a terminal, never in a log file or the journal.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
}

fn run(config: &Path) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(2)
        .thread_keep_alive(Duration::from_secs(60))
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(agent::run(config, agent::shutdown_signal()))
}

fn buffer_tool(action: BufferAction) -> anyhow::Result<()> {
    use agent::buffer::Buffer;
    match action {
        BufferAction::Check { config } => {
            let config = Config::load(&config)?;
            let path = agent::buffer_path(&config);
            let report = Buffer::check(&path)
                .with_context(|| format!("buffer {} failed its check", path.display()))?;
            println!(
                "{}: intact (epoch {:016x}, next seq {}, {} pending batches with {} samples, \
                 {} set aside, {} batches / {} samples dropped since created, {} of them damaged)",
                path.display(),
                report.epoch,
                report.next_seq,
                report.pending_batches,
                report.pending_samples,
                report.set_aside_batches,
                report.dropped_batches,
                report.dropped_samples,
                report.damaged_batches
            );
            Ok(())
        }
        BufferAction::Salvage { config } => {
            let config = Config::load(&config)?;
            let path = agent::buffer_path(&config);
            let (_, report) = Buffer::salvage(&path, agent::buffer_limits(&config))
                .with_context(|| format!("cannot salvage {}", path.display()))?;
            println!(
                "{}: salvaged into epoch {:016x} (next seq {}): {} batches ({} samples) kept, \
                 {} batches (~{} samples) lost and counted as dropped; damaged file kept as {}",
                path.display(),
                report.epoch,
                report.next_seq,
                report.batches_kept,
                report.samples_kept,
                report.batches_lost,
                report.samples_lost,
                report
                    .kept_aside
                    .as_deref()
                    .map_or_else(|| "-".to_string(), |p| p.display().to_string())
            );
            Ok(())
        }
    }
}

fn check_config(file: &Path) -> anyhow::Result<()> {
    let config = Config::load(file)?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{}: valid (tenant {}, gateway {}, {} device(s), {} bus(es), hash {})",
        file.display(),
        config.gateway.tenant,
        config.gateway.id,
        config.devices.len(),
        config.buses.len(),
        &config.hash[..12]
    )?;
    writeln!(
        out,
        "{:<5} {:<28} {:<26} {:<24} {:>4}  poll groups",
        "alias", "device", "profile", "transport", "unit"
    )?;
    for d in &config.devices {
        let transport = match &d.transport {
            Transport::Tcp { host, port } => format!("tcp {host}:{port}"),
            Transport::Rtu { bus } => format!("rtu {}", config.buses[*bus].name),
        };
        let groups: Vec<String> = d
            .plan
            .groups
            .iter()
            .map(|g| {
                format!(
                    "{}={} ({} req)",
                    g.name,
                    humantime::format_duration(g.interval),
                    g.requests.len()
                )
            })
            .collect();
        writeln!(
            out,
            "{:<5} {:<28} {:<26} {:<24} {:>4}  {}",
            d.alias,
            d.name,
            d.profile_id,
            transport,
            d.unit_id,
            groups.join(", ")
        )?;
    }
    Ok(())
}

fn check_profiles(files: &[PathBuf]) -> anyhow::Result<()> {
    let mut failed = 0;
    for file in files {
        match firmware_profiles::load_profile(file) {
            Ok(profile) => print_profile(file, &profile)?,
            Err(e) => {
                eprintln!("{e}");
                failed += 1;
            }
        }
    }
    if failed > 0 {
        bail!("{failed} of {} profile(s) invalid", files.len());
    }
    Ok(())
}

fn print_profile(file: &Path, profile: &Profile) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{}: {} {} — {} tags, unit {}, timeout {}, max {} registers / {} bits per request, max gap {}",
        file.display(),
        profile.vendor,
        profile.model,
        profile.tags.len(),
        profile.transport.unit_id,
        humantime::format_duration(profile.transport.timeout),
        profile.transport.max_registers_per_request,
        profile.transport.max_bits_per_request,
        profile.transport.max_gap,
    )?;
    writeln!(
        out,
        "{:>5} {:<24} {:<30} {:<17} {:>5} {:<10} {:>9} {:>8} {:<7} {:<17} {:>8} {:<6} rw",
        "alias",
        "tag",
        "metric",
        "register",
        "addr",
        "type",
        "scale",
        "offset",
        "unit",
        "valid range",
        "deadband",
        "group",
    )?;
    for (alias, t) in profile.tags.iter().enumerate() {
        let range = t
            .valid_range
            .map_or_else(|| "-".to_string(), |(a, b)| format!("{a}..{b}"));
        let data_type = match t.data_type {
            DataType::String { registers } => format!("string{registers}"),
            DataType::Bit { bit } => format!("bit{bit}"),
            other => other.name().to_string(),
        };
        writeln!(
            out,
            "{:>5} {:<24} {:<30} {:<17} {:>5} {:<10} {:>9} {:>8} {:<7} {:<17} {:>8} {:<6} {}",
            alias,
            t.name,
            t.metric.as_deref().unwrap_or("(info)"),
            t.register.as_str(),
            t.address,
            data_type,
            t.scale,
            t.offset,
            t.unit,
            range,
            t.deadband,
            t.poll_group,
            if t.writable { "rw" } else { "r" }
        )?;
    }
    let groups: Vec<PollGroup> = profile
        .poll_groups()
        .into_iter()
        .map(|name| PollGroup {
            name: name.to_string(),
            interval: Duration::from_secs(1),
        })
        .collect();
    match agent::plan::plan_device(profile, &groups) {
        Ok(plan) => {
            for g in plan.groups.iter().filter(|g| !g.requests.is_empty()) {
                let reads: Vec<String> = g
                    .requests
                    .iter()
                    .map(|r| format!("{} {}+{}", r.space.name(), r.start, r.count))
                    .collect();
                writeln!(out, "read plan {}: {}", g.name, reads.join(", "))?;
            }
            if !plan.info.is_empty() {
                writeln!(
                    out,
                    "read plan (session start): {} request(s)",
                    plan.info.len()
                )?;
            }
        }
        Err(e) => writeln!(out, "read plan: {e}")?,
    }
    writeln!(out)?;
    Ok(())
}

/// One device served by the simulator, as printed by `--endpoints-json`.
#[derive(Debug, Deserialize)]
struct SimEndpoint {
    well: String,
    device: String,
    profile: String,
    addr: std::net::SocketAddr,
    unit_id: u8,
}

/// The endpoint list: a bare array or `{ "endpoints": [...] }`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum EndpointList {
    Bare(Vec<SimEndpoint>),
    Wrapped { endpoints: Vec<SimEndpoint> },
}

#[derive(Debug)]
struct GenerateOptions {
    tenant: String,
    gateway: String,
    data_dir: PathBuf,
    mqtt_url: String,
    mqtt_username: Option<String>,
    mqtt_password: Option<String>,
    mqtt_client_id: Option<String>,
    metrics_listen: String,
    intervals: BTreeMap<String, Duration>,
    default_poll: Duration,
}

fn generate_config(
    endpoints_file: &Path,
    options: &GenerateOptions,
    output: Option<&Path>,
) -> anyhow::Result<()> {
    if options.mqtt_password.as_deref().is_none_or(str::is_empty) {
        bail!(
            "set WELLPULSE_MQTT_PASSWORD to the gateway's secret (issued by the cloud): the \
             agent authenticates every message with a key derived from it"
        );
    }
    let text = std::fs::read_to_string(endpoints_file)
        .with_context(|| format!("cannot read {}", endpoints_file.display()))?;
    let endpoints = match serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not a simulator endpoint list",
            endpoints_file.display()
        )
    })? {
        EndpointList::Bare(list) | EndpointList::Wrapped { endpoints: list } => list,
    };
    if endpoints.is_empty() {
        bail!("{} lists no endpoints", endpoints_file.display());
    }
    let toml = render_config(&endpoints, options)?;
    let base = output.and_then(Path::parent).unwrap_or(Path::new("."));
    Config::from_bytes(Path::new("generated config"), base, toml.as_bytes())
        .context("the generated config does not validate (bug)")?;
    match output {
        Some(path) => std::fs::write(path, &toml)
            .with_context(|| format!("cannot write {}", path.display()))?,
        None => write!(std::io::stdout().lock(), "{toml}")?,
    }
    Ok(())
}

fn quoted(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

fn render_config(endpoints: &[SimEndpoint], o: &GenerateOptions) -> anyhow::Result<String> {
    let mut out = String::new();
    out.push_str(
        "# Generated by `wellpulse-agent generate-config` from a simulator endpoint list.\n\n",
    );
    out.push_str(&format!(
        "[gateway]\ntenant = {}\nid = {}\ndata_dir = {}\n\n",
        quoted(&o.tenant),
        quoted(&o.gateway),
        quoted(&o.data_dir.to_string_lossy())
    ));
    out.push_str(&format!("[mqtt]\nurl = {}\n", quoted(&o.mqtt_url)));
    if let Some(id) = &o.mqtt_client_id {
        out.push_str(&format!("client_id = {}\n", quoted(id)));
    }
    if let Some(user) = &o.mqtt_username {
        out.push_str(&format!("username = {}\n", quoted(user)));
    }
    if let Some(password) = &o.mqtt_password {
        out.push_str(&format!("password = {}\n", quoted(password)));
    }
    out.push_str(&format!(
        "\n[metrics]\nlisten = {}\n",
        quoted(&o.metrics_listen)
    ));
    let mut names = std::collections::BTreeSet::new();
    for e in endpoints {
        let profile = firmware_profiles::builtin_profile(&e.profile)
            .with_context(|| format!("endpoint {:?}: unknown profile {:?}", e.device, e.profile))?;
        let mut name = if validate_device_name(&e.device).is_ok() {
            e.device.clone()
        } else {
            sanitize(&format!("{}-{}", e.well, e.device))
        };
        let base = name.clone();
        for n in 2.. {
            if names.insert(name.clone()) {
                break;
            }
            name = sanitize(&format!("{base}-{n}"));
        }
        let poll: Vec<String> = profile
            .tags
            .iter()
            .filter(|t| !matches!(t.data_type, DataType::String { .. }))
            .map(|t| t.poll_group.as_str())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .map(|g| {
                let interval = o.intervals.get(g).copied().unwrap_or(o.default_poll);
                format!(
                    "{g} = {}",
                    quoted(&humantime::format_duration(interval).to_string())
                )
            })
            .collect();
        out.push_str(&format!(
            "\n[[device]]\nname = {}\nwell = {}\nprofile = {}\ntcp = {}\nunit_id = {}\npoll = {{ {} }}\n",
            quoted(&name),
            quoted(&e.well),
            quoted(&e.profile),
            quoted(&e.addr.to_string()),
            e.unit_id,
            poll.join(", ")
        ));
    }
    Ok(out)
}

/// A valid device name from arbitrary text.
fn sanitize(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .take(64)
        .collect();
    if cleaned.is_empty() {
        "device".to_string()
    } else {
        cleaned
    }
}
