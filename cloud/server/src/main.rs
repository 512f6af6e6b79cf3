//! `wellpulse-cloud`: the cloud process.
//!
//! ```text
//! wellpulse-cloud run --config cloud.toml        broker (if embedded) + migrations + ingester + maintenance
//! wellpulse-cloud migrate --config cloud.toml    apply migrations, set up the storage back-end
//! wellpulse-cloud provision-gateway --config cloud.toml --tenant acme --gateway gw-001   (secret: --password-file or $WELLPULSE_GATEWAY_PASSWORD)
//! wellpulse-cloud create-admin --config cloud.toml --email ops@example.com   (password: --password-file or $WELLPULSE_ADMIN_PASSWORD)
//! wellpulse-cloud broker --config cloud.toml     the embedded broker only
//! wellpulse-cloud mosquitto-acl --config cloud.toml [--ingester NAME]...   Mosquitto ACL from the registry
//! wellpulse-cloud mosquitto-dynsec --config cloud.toml [--apply] ...   Mosquitto dynamic-security roles from the registry
//! wellpulse-cloud detect --input data.csv [--output scores.csv] ...   the detectors over a CSV file
//! wellpulse-cloud import --config cloud.toml --tenant acme --mapping map.toml --input history.csv [--dry-run]
//! ```
//!
//! `run` starts every long-running service as a task in one `JoinSet`; the process stops on
//! Ctrl-C/SIGTERM or when a service fails. Stopping at any moment is safe: nothing is acked
//! before it is committed, so un-acked messages are re-delivered after a restart.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tokio::task::JoinSet;
use tracing::{error, info, warn};

use api::{ApiServer, ApiState};
use base::Backoff;
use broker::{BrokerAuth, EmbeddedBroker, Protocol};
use ingest::{IngestStats, Ingester, MqttEndpoint};
use jobs::{Job, JobMetrics, Scheduler};
use server::config::{CloudConfig, MaintenanceConfig};
use store::{Db, maintenance};

#[derive(Debug, Parser)]
#[command(
    name = "wellpulse-cloud",
    version,
    about = "WellPulse cloud: broker, ingester, storage"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run everything: embedded broker (if configured), migrations, ingester, maintenance.
    Run {
        /// Cloud configuration file.
        #[arg(long)]
        config: PathBuf,
    },
    /// Load and validate a configuration file (secrets resolved, never printed), then exit.
    CheckConfig {
        /// Cloud configuration file.
        #[arg(long)]
        config: PathBuf,
    },
    /// Apply database migrations and set up the storage back-end, then exit.
    Migrate {
        /// Cloud configuration file.
        #[arg(long)]
        config: PathBuf,
    },
    /// Create (or re-key) a gateway, creating its tenant and site when missing.
    /// Create (or update) a platform administrator: the first account of a new
    /// installation, who then creates tenants and invites people through the API.
    CreateAdmin {
        /// Cloud configuration file.
        #[arg(long)]
        config: PathBuf,
        /// The administrator's email.
        #[arg(long)]
        email: String,
        /// File holding the password (12 to 1,024 characters; a trailing newline is
        /// dropped). Without it the password comes from `WELLPULSE_ADMIN_PASSWORD`: a
        /// secret never goes on the command line.
        #[arg(long)]
        password_file: Option<PathBuf>,
    },
    ProvisionGateway {
        /// Cloud configuration file.
        #[arg(long)]
        config: PathBuf,
        /// Tenant id (topic segment), e.g. `acme`.
        #[arg(long)]
        tenant: String,
        /// Gateway id (topic segment), e.g. `gw-001`.
        #[arg(long)]
        gateway: String,
        /// File holding the gateway secret (at least 16 characters; stored hashed, never
        /// printed). Without it the secret comes from `WELLPULSE_GATEWAY_PASSWORD`: a
        /// secret never goes on the command line.
        #[arg(long)]
        password_file: Option<PathBuf>,
        /// Site to install the gateway at (created when missing).
        #[arg(long, default_value = "default")]
        site: String,
        /// Also register this well at the site (kept if its API number exists). Agents link
        /// devices to it with `[[device]] well = "<name or API number>"`.
        #[arg(long, requires = "api_number")]
        well: Option<String>,
        /// API number of `--well`, e.g. `42-123-45678`.
        #[arg(long, requires = "well")]
        api_number: Option<String>,
    },
    /// Link a tenant to an existing Stripe customer (`cus_…`) made outside Checkout: a
    /// customer invoiced by sales, one moved from another system, the demo's. Its invoices
    /// and payments then drive the tenant like any other's. A tenant is linked once.
    BillingLink {
        /// Cloud configuration file (needs `[billing]`).
        #[arg(long)]
        config: PathBuf,
        /// Tenant id, e.g. `acme`.
        #[arg(long)]
        tenant: String,
        /// The Stripe customer id.
        #[arg(long)]
        customer: String,
    },
    /// Run only the embedded MQTT broker (with database-backed gateway authentication).
    Broker {
        /// Cloud configuration file.
        #[arg(long)]
        config: PathBuf,
    },
    /// Print the Mosquitto ACL for every registered gateway (see broker-config/README.md).
    MosquittoAcl {
        /// Cloud configuration file (the database to read the registry from).
        #[arg(long)]
        config: PathBuf,
        /// Ingester usernames to grant (repeatable); `[broker] username` when absent.
        #[arg(long = "ingester")]
        ingesters: Vec<String>,
    },
    /// Import wells and daily production (oil, gas, water, hours on, disposition) from a CSV
    /// file whose columns a TOML mapping file names (`cloud/ml/examples/regulator-monthly.toml`).
    /// Each bad row is reported (line and reason) and skipped, the good rows are kept;
    /// importing a file twice changes nothing. Progress goes to stderr.
    Import {
        /// Cloud configuration file (the database to write to).
        #[arg(long)]
        config: PathBuf,
        /// Tenant slug, e.g. `acme`.
        #[arg(long)]
        tenant: String,
        /// Mapping file (TOML): which column holds what, date format, period.
        #[arg(long)]
        mapping: PathBuf,
        /// The CSV file (`-` for stdin).
        #[arg(long)]
        input: PathBuf,
        /// Validate and report without writing anything.
        #[arg(long)]
        dry_run: bool,
    },
    /// Bring Mosquitto's dynamic-security roles in step with the gateway registry (see
    /// broker-config/README.md). Without `--apply`, print the commands for a fresh plugin.
    MosquittoDynsec {
        /// Cloud configuration file (the database to read the registry from).
        #[arg(long)]
        config: PathBuf,
        /// Ingester usernames to grant (repeatable); `[broker] username` when absent.
        #[arg(long = "ingester")]
        ingesters: Vec<String>,
        /// Send the commands to Mosquitto's plain listener on this host as the plugin's
        /// admin (password: --password-file or $WELLPULSE_MOSQUITTO_ADMIN_PASSWORD).
        #[arg(long)]
        apply: bool,
        /// Mosquitto's host (its loopback listener).
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
        /// Its port.
        #[arg(long, default_value_t = 1883)]
        port: u16,
        /// The plugin's admin username.
        #[arg(long, default_value = "admin")]
        admin: String,
        /// File holding the admin password (a trailing newline is dropped).
        #[arg(long)]
        password_file: Option<PathBuf>,
    },
    /// Run the live detectors over a CSV file (a time column and numeric columns) and
    /// write `timestamp,score,flag,column` per input row: for evaluating detection on
    /// labelled data. No configuration or database needed.
    Detect {
        /// Input CSV with a header row (`-` for stdin).
        #[arg(long)]
        input: PathBuf,
        /// Where to write the scores (default stdout).
        #[arg(long)]
        output: Option<PathBuf>,
        /// Name of the time column (RFC 3339, `YYYY-MM-DD HH:MM:SS` UTC, or epoch seconds
        /// or milliseconds).
        #[arg(long, default_value = "timestamp")]
        time_column: String,
        /// Value columns, comma-separated (default: every other column).
        #[arg(long, value_delimiter = ',')]
        columns: Option<Vec<String>>,
        /// Fixed sample period (e.g. `1s`, `10m`): times are row index × period and the
        /// time column may be absent.
        #[arg(long, value_parser = humantime::parse_duration)]
        period: Option<Duration>,
        /// Row score at which `flag` is 1 (1.0 = where the live detector fires).
        #[arg(long, default_value_t = 1.0)]
        threshold: f64,
        /// Robust z-score of the per-column detectors (the live default when absent).
        #[arg(long)]
        z_threshold: Option<f64>,
        /// Share of the rows the multivariate (PCA) model trains on; 0 disables it.
        #[arg(long, default_value_t = 0.2)]
        train_fraction: f64,
        /// Field delimiter (default: detected from the header: `,`, `;` or tab).
        #[arg(long)]
        delimiter: Option<char>,
    },
}

#[tokio::main]
async fn main() -> Result<()> {
    // Logs go to stderr (stdout carries command output), coloured only on a terminal.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,rumqttd=warn,sqlx::postgres::notice=warn".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match command(Cli::parse().command).await {
        // `mosquitto-acl … | head`: the reader has what it wanted.
        Err(e) if base::is_broken_pipe(e.as_ref()) => Ok(()),
        result => result,
    }
}

async fn command(command: Command) -> Result<()> {
    match command {
        Command::Run { config } => run(&config).await,
        Command::Migrate { config } => migrate(&config).await,
        Command::CheckConfig { config } => {
            let cfg = load(&config)?;
            let broker = if cfg.broker.embedded.is_some() {
                "embedded"
            } else {
                "external"
            };
            writeln!(
                std::io::stdout().lock(),
                "{}: ok (broker {broker}, API on {})",
                config.display(),
                cfg.api.listen
            )?;
            Ok(())
        }
        Command::CreateAdmin {
            config,
            email,
            password_file,
        } => {
            let password = secret_from(
                password_file.as_deref(),
                "WELLPULSE_ADMIN_PASSWORD",
                "the administrator's password",
            )?;
            create_admin(&config, &email, &password).await
        }
        Command::ProvisionGateway {
            config,
            tenant,
            gateway,
            password_file,
            site,
            well,
            api_number,
        } => {
            let password = secret_from(
                password_file.as_deref(),
                "WELLPULSE_GATEWAY_PASSWORD",
                "the gateway secret",
            )?;
            let well = well.as_deref().zip(api_number.as_deref());
            provision(&config, &tenant, &gateway, password.expose(), &site, well).await
        }
        Command::Broker { config } => broker_only(&config).await,
        Command::MosquittoAcl { config, ingesters } => mosquitto_acl(&config, ingesters).await,
        Command::BillingLink {
            config,
            tenant,
            customer,
        } => billing_link(&config, &tenant, &customer).await,
        Command::Import {
            config,
            tenant,
            mapping,
            input,
            dry_run,
        } => import_history(&config, &tenant, &mapping, &input, dry_run).await,
        Command::MosquittoDynsec {
            config,
            ingesters,
            apply,
            host,
            port,
            admin,
            password_file,
        } => {
            let admin = if apply {
                let password = secret_from(
                    password_file.as_deref(),
                    "WELLPULSE_MOSQUITTO_ADMIN_PASSWORD",
                    "the dynamic-security admin password",
                )?;
                Some(broker::mosquitto::dynsec::Admin {
                    host,
                    port,
                    username: admin,
                    password,
                })
            } else {
                None
            };
            mosquitto_dynsec(&config, ingesters, admin).await
        }
        Command::Detect {
            input,
            output,
            time_column,
            columns,
            period,
            threshold,
            z_threshold,
            train_fraction,
            delimiter,
        } => {
            let delimiter = match delimiter {
                None => None,
                Some(c) if c.is_ascii() => Some(c as u8),
                Some(c) => bail!("--delimiter must be one ASCII character, got {c:?}"),
            };
            let mut detect = detect::DetectOptions::default();
            if let Some(z) = z_threshold {
                detect.z_threshold = z;
            }
            let options = detect::offline::OfflineOptions {
                time_column,
                value_columns: columns,
                sample_period_ms: period.map(|p| i64::try_from(p.as_millis()).unwrap_or(i64::MAX)),
                threshold,
                train_fraction,
                delimiter,
                detect,
            };
            detect_file(&input, output.as_deref(), &options)
        }
    }
}

/// `detect`: scores `input` into `output` (stdout when absent) and reports on stderr.
fn detect_file(
    input: &Path,
    output: Option<&Path>,
    options: &detect::offline::OfflineOptions,
) -> Result<()> {
    if !(options.threshold.is_finite() && options.threshold > 0.0) {
        bail!("--threshold must be a positive number");
    }
    if !(0.0..1.0).contains(&options.train_fraction) {
        bail!("--train-fraction must be from 0 up to (not including) 1");
    }
    if options.sample_period_ms == Some(0) {
        bail!("--period must be positive");
    }
    let reader: Box<dyn std::io::Read> = if input == Path::new("-") {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(std::io::BufReader::new(
            std::fs::File::open(input).with_context(|| format!("opening {}", input.display()))?,
        ))
    };
    let writer: Box<dyn std::io::Write> = match output {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        )),
        None => Box::new(std::io::stdout().lock()),
    };
    let summary = detect::offline::score_csv(reader, writer, options)
        .map_err(|e| anyhow::anyhow!("{}: {e}", input.display()))?;
    eprintln!(
        "{} rows scored, {} flagged; columns: {}{}",
        summary.rows,
        summary.flagged,
        summary.columns.join(", "),
        summary
            .model
            .as_ref()
            .map(|m| format!("; multivariate model on {} rows", m.n_rows))
            .unwrap_or_default()
    );
    Ok(())
}

/// `import`: parses and validates `input` with `mapping`, reports bad rows on stdout and
/// progress on stderr, then writes the good rows in one tenant-scoped transaction with its
/// audit entry.
async fn import_history(
    config: &Path,
    tenant: &str,
    mapping: &Path,
    input: &Path,
    dry_run: bool,
) -> Result<()> {
    let text = std::fs::read_to_string(mapping)
        .with_context(|| format!("reading --mapping {}", mapping.display()))?;
    let mapping_file = ml::import::Mapping::from_toml(&text)
        .map_err(|e| anyhow::anyhow!("{}: {e}", mapping.display()))?;
    let reader: Box<dyn std::io::Read> = if input == Path::new("-") {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(std::io::BufReader::new(
            std::fs::File::open(input).with_context(|| format!("opening {}", input.display()))?,
        ))
    };
    let parsed = ml::import::parse_history(&mapping_file, reader, &mut |rows| {
        eprintln!("read {rows} rows");
    })
    .map_err(|e| anyhow::anyhow!("{}: {e}", input.display()))?;
    let mut out = std::io::stdout().lock();
    for bad in &parsed.bad {
        writeln!(out, "line {}: {}", bad.line, bad.reason)?;
    }
    writeln!(
        out,
        "{} rows read: {} bad, {} wells, {} well-days",
        parsed.rows,
        parsed.bad.len(),
        parsed.wells.len(),
        parsed.days.len()
    )?;
    if dry_run {
        writeln!(out, "dry run: nothing written")?;
        return Ok(());
    }
    let cfg = load(config)?;
    let db = database(&cfg)?;
    db.migrate().await.context("database migration failed")?;
    let tenant_id = db
        .tenant_by_slug(tenant)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no tenant {tenant:?}"))?;
    let wells: Vec<store::history::ImportWell<'_>> = parsed
        .wells
        .iter()
        .map(|w| store::history::ImportWell {
            api_number: &w.api_number,
            name: &w.name,
            lease: &w.lease,
            field: &w.field,
            county: &w.county,
            state: &w.state,
        })
        .collect();
    let days: Vec<store::history::ImportDay<'_>> = parsed
        .days
        .iter()
        .map(|d| store::history::ImportDay {
            api_number: &d.api_number,
            day: d.day,
            oil: d.oil,
            gas: d.gas,
            water: d.water,
            hours_on: d.hours_on,
            disposition: d.disposition.map(|d| d.name()),
            note: d.note.as_deref(),
        })
        .collect();
    let mut tx = db.begin_tenant(tenant_id).await?;
    let counts = store::history::import(
        &mut tx,
        tenant_id,
        &mapping_file.format.site,
        &wells,
        &days,
        &mut |done, total| eprintln!("wrote {done}/{total} well-days"),
    )
    .await
    .context("writing the history")?;
    let summary = serde_json::json!({
        "file": input.display().to_string(),
        "rows": parsed.rows,
        "bad_rows": parsed.bad.len(),
        "wells_created": counts.wells_created,
        "wells_existing": counts.wells_existing,
        "figures_inserted": counts.figures_inserted,
        "figures_updated": counts.figures_updated,
        "figures_unchanged": counts.figures_unchanged,
        "figures_kept": counts.figures_kept,
        "runtime_written": counts.runtime_written,
        "runtime_unchanged": counts.runtime_unchanged,
    });
    store::audit::record(
        &mut tx,
        &store::audit::AuditEntry {
            tenant: Some(tenant_id),
            actor: "system",
            action: "production.import",
            target: &format!("tenant:{tenant}"),
            before: None,
            after: Some(summary),
            client_addr: None,
            request_id: None,
        },
    )
    .await?;
    tx.commit().await.map_err(store::DbError::from)?;
    writeln!(
        out,
        "wells: {} created, {} existing; figures: {} inserted, {} updated, {} unchanged, {} kept (telemetry or corrections take precedence); hours on: {} written, {} unchanged",
        counts.wells_created,
        counts.wells_existing,
        counts.figures_inserted,
        counts.figures_updated,
        counts.figures_unchanged,
        counts.figures_kept,
        counts.runtime_written,
        counts.runtime_unchanged
    )?;
    Ok(())
}

/// A secret of a subcommand: from `--password-file` (less a trailing newline) or the
/// environment variable `var`, never from the command line.
fn secret_from(file: Option<&Path>, var: &str, what: &str) -> Result<base::Secret> {
    let text = match file {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("reading --password-file {}", path.display()))?,
        None => std::env::var(var)
            .map_err(|_| anyhow::anyhow!("give {what} in --password-file or {var}"))?,
    };
    Ok(base::Secret::new(text.strip_suffix('\n').unwrap_or(&text)))
}

fn load(path: &Path) -> Result<CloudConfig> {
    CloudConfig::load(path).with_context(|| format!("loading {}", path.display()))
}

/// A pool sized by `[database]`; connects lazily so a database outage at start-up is
/// retried by the caller instead of failing the process.
fn database(cfg: &CloudConfig) -> Result<Db> {
    let options: PgConnectOptions = cfg
        .database
        .url
        .expose()
        .parse()
        .context("[database] url is not a valid PostgreSQL URL")?;
    let pool = PgPoolOptions::new()
        .max_connections(cfg.database.max_connections)
        .acquire_timeout(cfg.database.acquire_timeout)
        .connect_lazy_with(options);
    Ok(Db::from_pool(pool, cfg.storage.options()))
}

/// Applies the migrations, waiting for the database with backoff (`run` must survive a
/// database that starts after it).
async fn migrate_when_reachable(db: &Db) -> Result<()> {
    let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
    loop {
        match db.migrate().await {
            Ok(backend) => {
                info!(backend = %backend.as_str(), "database ready");
                return Ok(());
            }
            Err(e) if e.transience().is_temporary() => {
                let delay = backoff.next_delay();
                warn!(error = %e, retry_in = ?delay, "database unreachable; retrying");
                tokio::time::sleep(delay).await;
            }
            Err(e) => return Err(e).context("database migration failed"),
        }
    }
}

async fn run(config: &Path) -> Result<()> {
    let cfg = load(config)?;
    let db = database(&cfg)?;
    migrate_when_reachable(&db).await?;
    let (broker, endpoint) = mqtt_endpoint(&cfg, &db).await?;
    let _kicks = broker
        .as_ref()
        .map(|b| broker::spawn_kick_listener(db.clone(), b.kicker().clone()));
    let ingester = Ingester::start(db.clone(), &endpoint, cfg.ingest_options())
        .context("starting the ingester")?;
    let ingest_stats: Arc<IngestStats> = Arc::clone(ingester.stats());
    info!(broker = %format!("{}:{}", endpoint.host, endpoint.port), client_id = %endpoint.client_id, "ingester started");

    let mut services: JoinSet<Result<()>> = JoinSet::new();
    services.spawn(async move {
        ingester.wait().await.context("ingester task panicked")?;
        bail!("ingester stopped")
    });
    let job_metrics = JobMetrics::default();
    let jobs = alerts::lifecycle::jobs(&cfg.lifecycle_options())
        .into_iter()
        .fold(
            scheduler(
                db.clone(),
                &cfg.maintenance,
                cfg.tenancy.export_dir.clone(),
                cfg.api_options().plans,
                job_metrics.clone(),
            ),
            Scheduler::with_job,
        );
    // `[billing]`: its jobs and, below, its API operations. A missing key or secret was
    // already refused when the file was loaded; without the section the product runs
    // unbilled.
    let jobs = match &cfg.billing {
        Some(b) => api::billing_jobs::jobs(b.options(), cfg.api_options().plans, b.intervals())
            .context("setting up [billing]")?
            .into_iter()
            .fold(jobs, Scheduler::with_job),
        None => {
            info!("billing is not configured ([billing]): the product runs unbilled");
            jobs
        }
    };
    let ca_key = match &cfg.tenancy.ca_key {
        Some(secret) => Some(
            store::certificates::CaKey::from_secret(secret.expose()).context("[tenancy] ca_key")?,
        ),
        None => None,
    };
    let outbox = alerts::outbox::Outbox::new(db.clone(), ca_key, cfg.alerts.outbox_options())
        .map_err(|e| anyhow::anyhow!("setting up alert delivery: {e}"))?;
    services.spawn(async move {
        outbox.run().await;
        bail!("the alert delivery worker stopped")
    });
    services.spawn(async move {
        jobs.run().await;
        bail!("the job scheduler stopped")
    });
    if let Some(dir) = &cfg.api.web_dir {
        api::check_web_dir(dir).map_err(|e| anyhow::anyhow!("[api] web_dir: {e}"))?;
        tracing::info!(dir = %dir.display(), "serving the web app");
    }
    let mut api_state = ApiState::new(db.clone(), cfg.api_options()).with_ingester(ingest_stats);
    if let Some(mail) = &cfg.mail {
        let mailer = mail::Mailer::new(mail.options()).context("setting up [mail]")?;
        api_state = api_state.with_mailer(mailer);
    }
    if let Some(b) = &cfg.billing {
        api_state = api_state
            .with_billing(b.options())
            .context("setting up [billing]")?;
        info!(api_base = %b.api_base, "billing with Stripe enabled");
    }
    api_state.register_metrics(|registry| job_metrics.register(registry));
    if let Some(b) = &broker {
        api_state.register_metrics(|registry| b.metrics().register(registry));
    }
    let api = ApiServer::bind(cfg.api.listen, api_state)
        .await
        .context("starting the HTTP API")?;
    services.spawn(async move { api.run().await.context("HTTP API failed") });
    supervise(services).await
}

/// Waits for Ctrl-C/SIGTERM or the first service to end (which is an error).
async fn supervise(mut services: JoinSet<Result<()>>) -> Result<()> {
    tokio::select! {
        () = shutdown_signal() => {
            info!("shutting down (un-acked messages will be re-delivered)");
            services.abort_all();
            Ok(())
        }
        Some(done) = services.join_next() => {
            services.abort_all();
            match done {
                Ok(Ok(())) => bail!("a service stopped unexpectedly"),
                Ok(Err(e)) => Err(e),
                Err(e) => Err(e).context("a service task failed"),
            }
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

/// Starts the embedded broker if configured; returns it (kept alive by the caller) and
/// the endpoint the ingester connects to.
async fn mqtt_endpoint(
    cfg: &CloudConfig,
    db: &Db,
) -> Result<(Option<EmbeddedBroker>, MqttEndpoint)> {
    if let Some(endpoint) = cfg.broker.external_endpoint() {
        return Ok((None, endpoint));
    }
    let broker = start_embedded(cfg, db).await?;
    let name = &cfg
        .broker
        .embedded
        .as_ref()
        .context("[broker.embedded] missing")?
        .listener;
    let listener = broker.listener(name).with_context(|| {
        format!("[broker.embedded] listener {name:?} is not in the rumqttd config")
    })?;
    if listener.protocol != Protocol::V5 || listener.tls {
        bail!("[broker.embedded] listener {name:?} must be a plain-TCP [v5.*] listener");
    }
    let endpoint = cfg.broker.embedded_endpoint(listener.connect_addr());
    Ok((Some(broker), endpoint))
}

async fn start_embedded(cfg: &CloudConfig, db: &Db) -> Result<EmbeddedBroker> {
    let embedded = cfg
        .broker
        .embedded
        .as_ref()
        .context("[broker.embedded] is not configured")?;
    let rumqttd_config = broker::load_config(&embedded.config)?;
    let auth = BrokerAuth::new(
        db.clone(),
        cfg.broker.username.clone(),
        cfg.broker.password.clone(),
    );
    let limits = embedded.front_options();
    tokio::task::spawn_blocking(move || EmbeddedBroker::start_with(rumqttd_config, auth, limits))
        .await
        .context("broker start-up task failed")?
        .context("starting the embedded MQTT broker")
}

/// The periodic jobs: storage maintenance (partitions, rollups, retention), each plan's
/// retention, the offline sweep and the usage counts every `[maintenance] interval`, the
/// production derivation on its own interval.
/// With several instances on one database, each run has one leader.
fn scheduler(
    db: Db,
    cfg: &MaintenanceConfig,
    export_dir: PathBuf,
    plans: std::collections::BTreeMap<String, store::tenants::PlanLimits>,
    metrics: JobMetrics,
) -> Scheduler {
    let plans = Arc::new(plans);
    let offline_after = cfg.offline_after;
    let production = production::JobOptions::default();
    Scheduler::new(db, metrics)
        .with_job(Job::new("storage_maintenance", cfg.interval, |db| async move {
            let report = maintenance::run_once(&db).await?;
            Ok(format!("{report:?}"))
        }))
        .with_job(Job::new("plan_retention", cfg.interval, move |db| {
            let plans = Arc::clone(&plans);
            async move {
                let deleted =
                    maintenance::expire_plan_telemetry(&db, &plans, chrono::Utc::now()).await?;
                for (plan, rows) in deleted.iter().filter(|(_, rows)| *rows > 0) {
                    info!(%plan, rows, "telemetry past the plan's retention deleted");
                }
                Ok(format!("{deleted:?}"))
            }
        }))
        .with_job(Job::new("offline_sweep", cfg.interval, move |db| async move {
            let n = db.mark_silent_gateways_offline(offline_after).await?;
            if n > 0 {
                info!(gateways = n, silent_for = ?offline_after, "silent gateways marked offline");
            }
            Ok(format!("{n} gateways marked offline"))
        }))
        .with_job(Job::new("production", production.every, move |db| async move {
            let report = production::run_once(&db, &production, chrono::Utc::now()).await?;
            Ok(format!("{report:?}"))
        }))
        // Failure risk: every tenant's cached predictions recomputed with its active model
        // from the latest daily rollups (training stays on demand).
        .with_job(Job::new("failure_risk", Duration::from_secs(3600), |db| async move {
            let done = api::refresh_failure_risk(&db, chrono::Utc::now())
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let wells: usize = done.iter().map(|(_, n)| n).sum();
            Ok(format!("{} tenants, {wells} wells scored", done.len()))
        }))
        // Failure-risk training: queued jobs (on demand or scheduled) run one by one with
        // their progress in the database; every tenant with a model older than a week
        // gets a scheduled one.
        .with_job(Job::new("failure_risk_training", Duration::from_secs(30), |db| async move {
            let n = api::run_training_jobs(&db)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            Ok(format!("{n} training jobs run"))
        }))
        .with_job(Job::new("failure_risk_training_schedule", Duration::from_secs(3600), |db| async move {
            let queued = api::schedule_training(&db, chrono::Utc::now(), Duration::from_secs(7 * 86_400))
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            Ok(format!("{} tenants queued for training", queued.len()))
        }))
        // Emissions forecasts and production gaps: every tenant's cache recomputed where
        // its inputs (production, hours on, sources, rollups, targets, the day) changed.
        .with_job(Job::new("ml_forecasts", Duration::from_secs(3600), |db| async move {
            let done = api::refresh_forecasts(&db, chrono::Utc::now())
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let recomputed = done
                .iter()
                .filter(|(_, o)| o.emissions_recomputed || o.gaps_recomputed)
                .count();
            Ok(format!("{} tenants, {recomputed} recomputed", done.len()))
        }))
        .with_job(Job::new("tenant_deletion", cfg.interval, move |db| {
            let export_dir = export_dir.clone();
            async move {
                let done = store::lifecycle::delete_due_tenants(&db, &export_dir, chrono::Utc::now())
                    .await?;
                for d in &done {
                    info!(tenant = %d.slug, rows = d.rows_deleted, export = %d.exported_to.display(),
                          "tenant exported and purged");
                }
                Ok(format!("{} tenants deleted", done.len()))
            }
        }))
        .with_job(Job::new("usage", cfg.interval, |db| async move {
            // Today and yesterday: late batches of yesterday still land after midnight.
            let today = chrono::Utc::now().date_naive();
            let mut conn = db.pool().acquire().await.map_err(store::DbError::from)?;
            let mut tenants = 0;
            for day in [today.pred_opt().unwrap_or(today), today] {
                tenants += store::usage::refresh_day(&mut conn, day).await?;
            }
            Ok(format!("{tenants} tenant-days of usage refreshed"))
        }))
}

async fn billing_link(config: &Path, slug: &str, customer: &str) -> Result<()> {
    let cfg = load(config)?;
    if cfg.billing.is_none() {
        bail!(
            "billing is not configured: add [billing] to {}",
            config.display()
        );
    }
    let valid = customer.starts_with("cus_")
        && customer.len() <= 254
        && customer[4..].bytes().all(|b| b.is_ascii_alphanumeric())
        && customer.len() > 4;
    if !valid {
        bail!("--customer must be a Stripe customer id (cus_…), got {customer:?}");
    }
    let db = database(&cfg)?;
    let mut tx = db.pool().begin().await.context("database")?;
    let tenant = store::tenants::tenant_by_slug(&mut tx, slug)
        .await?
        .with_context(|| format!("no tenant {slug:?}"))?;
    store::billing::lock_account(&mut tx, tenant.id).await?;
    store::billing::link_customer(&mut tx, tenant.id, customer)
        .await
        .with_context(|| format!("linking tenant {slug:?}"))?;
    let target = format!("billing:{slug}");
    store::audit::record(
        &mut tx,
        &store::audit::AuditEntry {
            tenant: Some(tenant.id),
            actor: "cli",
            action: "billing.link_customer",
            target: &target,
            before: None,
            after: Some(serde_json::json!({ "customer_id": customer })),
            client_addr: None,
            request_id: None,
        },
    )
    .await?;
    tx.commit().await.context("database")?;
    println!("tenant {slug} linked to Stripe customer {customer}");
    Ok(())
}

async fn migrate(config: &Path) -> Result<()> {
    let cfg = load(config)?;
    let db = database(&cfg)?;
    let backend = db.migrate().await.context("database migration failed")?;
    println!("database migrated; storage back-end: {}", backend.as_str());
    Ok(())
}

async fn create_admin(config: &Path, email: &str, password: &base::Secret) -> Result<()> {
    let cfg = load(config)?;
    let db = database(&cfg)?;
    db.migrate().await.context("database migration failed")?;
    let id = api::create_platform_admin(&db, email, password)
        .await
        .context("creating the administrator")?;
    println!("platform administrator {email} (user {id}) can sign in at POST /api/v1/auth/sign-in");
    Ok(())
}

async fn provision(
    config: &Path,
    tenant: &str,
    gateway: &str,
    password: &str,
    site: &str,
    well: Option<(&str, &str)>,
) -> Result<()> {
    let cfg = load(config)?;
    let db = database(&cfg)?;
    db.migrate().await.context("database migration failed")?;
    let done = db
        .provision_gateway(tenant, site, gateway, password)
        .await
        .context("provisioning the gateway")?;
    if let Some((name, api_number)) = well {
        let id = db
            .provision_well(&store::NewWell {
                tenant: done.tenant,
                site: done.site,
                api_number,
                name,
                lease: "",
                field: "",
                county: "",
                state: "",
            })
            .await
            .with_context(|| format!("registering well {name:?} ({api_number})"))?;
        println!("well {name:?} ({api_number}) registered: id {id}");
    }
    let verb = if done.created {
        "created"
    } else {
        "updated (new secret)"
    };
    println!(
        "gateway {tenant}/{gateway} {verb}: id {}, site {site:?} (id {})",
        done.gateway, done.site
    );
    println!(
        "MQTT login: username {tenant}/{gateway}, client id {}",
        broker::gateway_client_id(tenant, gateway)
    );
    Ok(())
}

async fn broker_only(config: &Path) -> Result<()> {
    let cfg = load(config)?;
    let db = database(&cfg)?;
    migrate_when_reachable(&db).await?;
    let broker = start_embedded(&cfg, &db).await?;
    let _kicks = broker::spawn_kick_listener(db.clone(), broker.kicker().clone());
    for l in broker.listeners() {
        println!(
            "listening: {} {:?} {} tls={}",
            l.name, l.protocol, l.addr, l.tls
        );
    }
    shutdown_signal().await;
    info!("broker stopping");
    Ok(())
}

/// The registry's gateways and the ingester usernames (`[broker] username` by default).
async fn mosquitto_users(
    config: &Path,
    ingesters: Vec<String>,
) -> Result<(Vec<(String, String)>, Vec<String>)> {
    let cfg = load(config)?;
    let db = database(&cfg)?;
    let gateways = db
        .gateway_logins()
        .await
        .context("reading the gateway registry")?;
    let ingesters = if ingesters.is_empty() {
        vec![cfg.broker.username.clone()]
    } else {
        ingesters
    };
    Ok((gateways, ingesters))
}

async fn mosquitto_dynsec(
    config: &Path,
    ingesters: Vec<String>,
    admin: Option<broker::mosquitto::dynsec::Admin>,
) -> Result<()> {
    let (gateways, ingesters) = mosquitto_users(config, ingesters).await?;
    let Some(admin) = admin else {
        let plan = broker::mosquitto::dynsec::plan(&gateways, &ingesters, &[]);
        writeln!(std::io::stdout().lock(), "{plan:#}")?;
        return Ok(());
    };
    let applied = broker::mosquitto::dynsec::apply(&admin, &gateways, &ingesters).await?;
    println!(
        "dynamic security in step: {} gateways, {} ingesters, {} commands carried out",
        gateways.len(),
        ingesters.len(),
        applied.done
    );
    for user in &applied.missing_clients {
        println!(
            "no client {user} yet: create it with `mosquitto_ctrl dynsec createClient {user}`, then run this again"
        );
    }
    Ok(())
}

async fn mosquitto_acl(config: &Path, ingesters: Vec<String>) -> Result<()> {
    let (gateways, ingesters) = mosquitto_users(config, ingesters).await?;
    write!(
        std::io::stdout().lock(),
        "{}",
        broker::mosquitto::acl(&gateways, &ingesters)
    )?;
    Ok(())
}
