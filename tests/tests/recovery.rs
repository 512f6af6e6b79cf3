//! Recovery after a broker restart, as shipped: ten agents on the shipped `[mqtt]` timings
//! stream through the broker (embedded rumqttd behind its front listener, in a child
//! process, or Mosquitto), the broker is killed and started again, and
//!
//! * every agent's live data is stored again within 2 s of the broker's return (the
//!   `received_at` of its first live batch after the restart, against the time the broker
//!   process was started again);
//! * every agent saw an ingester come online through the broker (its state subscription
//!   is allowed by the broker's ACL);
//! * every sample any agent produced is stored exactly once (all buffers drained, every
//!   created seq stored once, telemetry rows equal to the stored batches' samples).

use std::time::Duration;

use anyhow::{Context, ensure};
use chrono::{DateTime, Utc};
use tests::stack::{BrokerKind, Stack, agent_metric};

const BROKER_BIN: &str = env!("CARGO_BIN_EXE_wp-test-broker");
const AGENTS: usize = 10;
/// The promise: first live delivery within this of the broker's return.
const RECOVERY: Duration = Duration::from_secs(2);

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()))
        .with_test_writer()
        .try_init();
}

/// Per gateway, the receive time of its first live batch stored at or after `since`.
async fn first_live_after(
    stack: &Stack,
    since: DateTime<Utc>,
) -> anyhow::Result<Vec<(String, DateTime<Utc>)>> {
    let rows: Vec<(String, DateTime<Utc>)> = sqlx::query_as(
        "SELECT g.slug, min(b.received_at) FROM ingested_batches b
         JOIN gateways g ON g.id = b.gateway_id
         WHERE NOT b.historical AND b.received_at >= $1
         GROUP BY g.slug ORDER BY g.slug",
    )
    .bind(since)
    .fetch_all(stack.db.pool())
    .await?;
    Ok(rows)
}

async fn recovers_within_two_seconds(kind: BrokerKind) -> anyhow::Result<()> {
    init_tracing();
    let mut stack = Stack::start_shipped(kind, AGENTS, BROKER_BIN).await?;
    assert_eq!(stack.agents.len(), AGENTS);
    // Every agent streams before the outage.
    let before = Utc::now();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while first_live_after(&stack, before).await?.len() < AGENTS {
        ensure!(
            tokio::time::Instant::now() < deadline,
            "not every agent delivered before the outage"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The broker dies (SIGKILL: sessions and retained messages gone) while agents poll.
    stack.broker.stop();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let back = Utc::now();
    stack.broker.resume()?;

    // Wait for the signal (every agent's first live batch after the restart is stored),
    // then judge the observed receive times.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let firsts = loop {
        let firsts = first_live_after(&stack, back).await?;
        if firsts.len() == AGENTS {
            break firsts;
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "only {} of {AGENTS} agents delivered live data after the restart",
            firsts.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let slowest = firsts
        .iter()
        .map(|(gateway, at)| (gateway, (*at - back).to_std().unwrap_or_default()))
        .max_by_key(|(_, d)| *d)
        .context("no agent")?;
    eprintln!(
        "{kind:?}: slowest agent {} stored live data {:?} after the broker's return",
        slowest.0, slowest.1
    );
    ensure!(
        slowest.1 < RECOVERY,
        "{kind:?}: {} stored its first live batch {:?} after the broker's return (limit {RECOVERY:?}); all: {firsts:?}",
        slowest.0,
        slowest.1
    );
    for agent in &stack.agents {
        let online = agent_metric(agent, "wellpulse_uplink_cloud_online_ingesters").await?;
        ensure!(
            online == 1.0,
            "{}: sees {online} ingesters online",
            agent.gateway
        );
    }

    let (batches, samples) = stack.verify_exactly_once().await?;
    ensure!(
        batches > 0 && samples > 0,
        "nothing stored ({batches} batches)"
    );
    eprintln!("{kind:?}: {batches} batches, {samples} samples stored exactly once");
    stack.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn embedded_broker_restart_costs_under_two_seconds_and_loses_nothing() -> anyhow::Result<()> {
    recovers_within_two_seconds(BrokerKind::Embedded).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mosquitto_restart_costs_under_two_seconds_and_loses_nothing() -> anyhow::Result<()> {
    recovers_within_two_seconds(BrokerKind::Mosquitto).await
}
