//! Delivers what a stopped agent left in its buffer, through the agent's own uplink code,
//! so a test can then demand that everything the agent ever created is stored.

use std::sync::Arc;
use std::time::{Duration, Instant};

use agent::buffer::{Buffer, BufferLimits};
use agent::uplink::{Uplink, UplinkConfig};
use anyhow::{Context, bail};
use tokio::sync::{mpsc, oneshot};

/// A stopped agent: whose buffer to drain, and its MQTT identity.
#[derive(Debug, Clone, Copy)]
pub struct StoppedAgent<'a> {
    /// Tenant id.
    pub tenant: &'a str,
    /// Gateway id.
    pub gateway: &'a str,
    /// The agent's data directory (holds its buffer).
    pub data_dir: &'a std::path::Path,
    /// MQTT username and password.
    pub credentials: &'a (String, String),
}

/// Drains `agent`'s buffer to the broker on `port` until every batch is acked; returns how
/// many batches the agent created in its lifetime (the buffer's next seq minus one).
pub async fn drain(agent: StoppedAgent<'_>, port: u16) -> anyhow::Result<u64> {
    let limits = BufferLimits {
        max_bytes: u64::MAX / 2,
        max_age: Duration::from_secs(365 * 86_400),
    };
    let buffer = Arc::new(
        Buffer::open(&agent.data_dir.join(agent::BUFFER_FILE), limits).context("open buffer")?,
    );
    let created = buffer.stats().next_seq.saturating_sub(1);
    if buffer.stats().pending_batches == 0 {
        return Ok(created);
    }
    let boot = *buffer.birth_ids()?.last().context("no birth stored")?;
    let birth = buffer.birth(boot)?.context("birth vanished")?;
    let (username, password) = agent.credentials.clone();
    let cfg = UplinkConfig {
        host: "127.0.0.1".into(),
        port,
        tls: None,
        client_id: format!("wp-{}-{}", agent.tenant, agent.gateway),
        username: Some(username),
        password: (!password.is_empty()).then(|| base::Secret::new(password)),
        tenant: agent.tenant.into(),
        gateway: agent.gateway.to_owned(),
        keep_alive: Duration::from_secs(5),
        in_flight_window: 32,
        ack_timeout: Duration::from_secs(5),
        live_window: Duration::from_secs(5),
        backlog_pace: 200.0,
        reconnect_backoff_min: Duration::from_millis(100),
        reconnect_backoff_max: Duration::from_secs(1),
    };
    let (commands, _commands_rx) = mpsc::channel(16);
    let (_results_tx, results) = mpsc::channel(16);
    let uplink = Uplink::new(cfg, Arc::clone(&buffer), birth, commands, results)?;
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(uplink.run(async {
        let _ = stopped.await;
    }));
    let deadline = Instant::now() + Duration::from_secs(120);
    while buffer.stats().pending_batches > 0 {
        if Instant::now() > deadline {
            bail!(
                "{} batches still unacked after 120 s of draining",
                buffer.stats().pending_batches
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = stop.send(());
    task.await??;
    Ok(created)
}
