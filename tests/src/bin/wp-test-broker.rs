//! The embedded broker (`broker`, rumqttd with database-backed gateway logins) alone
//! in its own process, on fixed ports, so end-to-end tests can kill it and start it again
//! — rumqttd has no shutdown API.

use std::path::Path;

use anyhow::Context;
use base::Secret;
use broker::{BrokerAuth, EmbeddedBroker, load_config, override_port};
use clap::Parser;

#[derive(Debug, Parser)]
struct Args {
    /// Port of the MQTT 3.1.1 listener (`dev4` in broker-config/rumqttd-dev.toml).
    #[arg(long)]
    v4_port: u16,
    /// Port of the MQTT 5 listener (`dev5`).
    #[arg(long)]
    v5_port: u16,
    /// Database holding the gateway credentials.
    #[arg(long)]
    database_url: String,
    /// The ingester's MQTT username.
    #[arg(long)]
    ingester_user: String,
    /// The ingester's MQTT password.
    #[arg(long)]
    ingester_password: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter("info,rumqttd=warn")
        .init();
    let args = Args::parse();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../broker-config/rumqttd-dev.toml");
    let mut config = load_config(&path).context("broker config")?;
    override_port(&mut config, "dev4", args.v4_port)?;
    override_port(&mut config, "dev5", args.v5_port)?;
    let db = tests::stack::lazy_db(&args.database_url)?;
    let auth = BrokerAuth::new(db, args.ingester_user, Secret::new(args.ingester_password));
    let _broker =
        tokio::task::spawn_blocking(move || EmbeddedBroker::start(config, auth)).await??;
    std::future::pending::<()>().await;
    Ok(())
}
