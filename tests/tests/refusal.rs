//! A batch the cloud refuses for good, end to end: simulator → real agent → embedded
//! broker → ingester → PostgreSQL. The ingester answers with a negative ack; after that one
//! round trip the agent sets the batch aside (counted in its `/metrics`) and never sends it
//! again, the cloud records the refusal once, and the rest of the data keeps flowing.

use std::time::Duration;

use ingest::RejectReason;
use tests::stack::{BrokerKind, Stack, agent_metric};
use tokio::time::Instant;

const BROKER_BIN: &str = env!("CARGO_BIN_EXE_wp-test-broker");
/// A boot id no agent uses: seqs recorded under it make the agent's own copies conflict.
const FOREIGN_BOOT: i64 = 0x0bad_b007;

async fn newest_seq(stack: &Stack) -> anyhow::Result<i64> {
    Ok(
        sqlx::query_scalar(
            "SELECT coalesce(max(seq), 0) FROM ingested_batches WHERE boot_id <> $1",
        )
        .bind(FOREIGN_BOOT)
        .fetch_one(stack.db.pool())
        .await?,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_batch_refused_for_good_is_set_aside_after_one_round_trip() -> anyhow::Result<()> {
    let stack = Stack::start(BrokerKind::Embedded, 1, BROKER_BIN).await?;
    stack.wait_rows(50, Duration::from_secs(120)).await?;
    // The seqs the agent will send a few batches from now are already taken by another
    // boot, as after a buffer lost on the gateway: each is a seq conflict, refused for good.
    let base = newest_seq(&stack).await?;
    // In the agent's buffer epoch (the gateway records it with its batches' status).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let epoch: Option<i64> =
            sqlx::query_scalar("SELECT buffer_epoch FROM gateways WHERE slug = 'gw-00'")
                .fetch_one(stack.db.pool())
                .await?;
        if epoch.is_some() {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "no buffer epoch recorded");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let taken: Vec<i64> = (base + 4..base + 7).collect();
    for &seq in &taken {
        sqlx::query(
            "INSERT INTO ingested_batches (tenant_id, gateway_id, seq, boot_id, received_at, samples,
                                           historical, epoch)
             SELECT tenant_id, id, $1, $2, now(), 0, false, buffer_epoch
             FROM gateways WHERE slug = 'gw-00'",
        )
        .bind(seq)
        .bind(FOREIGN_BOOT)
        .execute(stack.db.pool())
        .await?;
    }
    let agent = &stack.agents[0];
    let deadline = Instant::now() + Duration::from_secs(120);
    while agent_metric(agent, "wellpulse_buffer_set_aside_batches").await? < taken.len() as f64 {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the agent never set the refused batches aside"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Proof that nothing is re-sent: the agent keeps delivering for well over two of its
    // ack timeouts (5 s) past the refused seqs, and the ingester still saw each refused
    // batch exactly once.
    let past = taken[taken.len() - 1] + 15;
    while newest_seq(&stack).await? < past {
        anyhow::ensure!(
            Instant::now() < deadline,
            "data stopped flowing after the refusal"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let stats = stack
        .ingester
        .as_ref()
        .expect("ingester")
        .stats()
        .snapshot();
    assert_eq!(
        stats.rejected(RejectReason::SeqConflict),
        taken.len() as u64
    );
    assert_eq!(stats.nacks_published, taken.len() as u64);
    let recorded: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM ingest_rejections WHERE reason LIKE 'seq_conflict%'",
    )
    .fetch_one(stack.db.pool())
    .await?;
    assert_eq!(recorded, taken.len() as i64, "each refusal recorded once");
    let refused = agent_metric(
        agent,
        "wellpulse_uplink_batches_rejected_total{reason=\"seq_conflict\"}",
    )
    .await?;
    assert_eq!(refused, taken.len() as f64);
    assert_eq!(
        agent_metric(agent, "wellpulse_buffer_set_aside_batches").await?,
        taken.len() as f64
    );
    stack.finish().await
}
