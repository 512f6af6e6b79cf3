//! Delivers a batch twice: captures a data message from the broker as the cloud would see
//! it and, once it is stored, publishes the very same bytes again, so the ingester must
//! recognise the seq and skip it (and still ack it).

use std::time::Duration;

use anyhow::{Context, bail};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

use crate::stack::{Stack, TENANT};

/// Captures one data batch of the first gateway and publishes it again.
pub async fn republish_stored_batch(stack: &Stack) -> anyhow::Result<()> {
    let agent = stack.agents.first().context("no agent")?;
    let gateway = &agent.gateway;
    let key = wire::MessageKey::derive(agent.credentials.1.as_bytes());
    let topic = wire::topic::topic(TENANT, gateway, wire::topic::Kind::Data);
    let mut options = MqttOptions::new(
        format!("replayer-{}", std::process::id()),
        "127.0.0.1",
        stack.broker.v4_port,
    );
    // Long enough for the wait below, while the event loop is not polled.
    options.set_keep_alive(Duration::from_secs(60));
    if let Some((user, password)) = stack.ingest_credentials() {
        options.set_credentials(user, password);
    }
    let (client, mut events) = AsyncClient::new(options, 16);
    client.subscribe(&topic, QoS::AtLeastOnce).await?;
    let captured = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Packet::Publish(p))) if p.topic == topic => return Ok(p.payload),
                Ok(_) => {}
                Err(e) => bail!("replayer connection failed: {e}"),
            }
        }
    })
    .await
    .context("no data batch seen within 30 s")??;
    // The very bytes the agent sealed: a genuine copy, as a re-send after a lost ack is.
    let opened = wire::seal::open([&key], &topic, &captured).context("captured batch's seal")?;
    let seq = wire::Batch::decode(opened.message)
        .context("captured batch")?
        .header
        .seq;
    client.unsubscribe(&topic).await?;
    // Offer it again once the original is stored, so the second delivery meets a
    // committed (gateway, seq) — the case an agent's re-send after a lost ack produces.
    let stored = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let n: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM ingested_batches b JOIN gateways g ON g.id = b.gateway_id
                 WHERE g.slug = $1 AND b.seq = $2",
            )
            .bind(gateway)
            .bind(i64::try_from(seq)?)
            .fetch_one(stack.db.pool())
            .await?;
            if n > 0 {
                return anyhow::Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    stored
        .context("the captured batch was not stored within 30 s")?
        .context("query ingested_batches")?;
    tracing::info!(seq, "re-publishing a captured batch");
    client
        .publish(&topic, QoS::AtLeastOnce, false, captured.to_vec())
        .await?;
    // Drive the connection until the broker confirms the publish.
    tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Packet::PubAck(_))) => return Ok(()),
                Ok(_) => {}
                Err(e) => bail!("replayer connection failed: {e}"),
            }
        }
    })
    .await
    .context("broker did not confirm the re-publish")??;
    let _ = client.disconnect().await;
    Ok(())
}
