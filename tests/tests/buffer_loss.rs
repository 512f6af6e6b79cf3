//! A gateway whose buffer is lost or damaged, end to end: simulator → real agent →
//! embedded broker → ingester → PostgreSQL. Deleted, the buffer starts over in a new
//! epoch; damaged, it is salvaged at start (intact batches kept, the rest counted as
//! lost). Either way the gateway is storing again within a minute, no batch is refused as
//! a seq conflict (the cloud keys batches by (gateway, epoch, seq)), the gateway is not
//! shown as refusing, and the loss reaches the cloud in the buffer status.

use std::path::Path;
use std::time::Duration;

use tests::stack::{BrokerKind, Stack};
use tokio::time::Instant;

const BROKER_BIN: &str = env!("CARGO_BIN_EXE_wp-test-broker");

async fn scalar(stack: &Stack, sql: &str) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar::<_, Option<i64>>(sql)
        .fetch_one(stack.db.pool())
        .await?
        .unwrap_or(0))
}

/// Waits until `sql` (one bigint) satisfies `ok`, polling every 200 ms.
async fn wait_for(
    stack: &Stack,
    what: &str,
    within: Duration,
    sql: &str,
    ok: impl Fn(i64) -> bool,
) -> anyhow::Result<i64> {
    let deadline = Instant::now() + within;
    loop {
        let value = scalar(stack, sql).await?;
        if ok(value) {
            return Ok(value);
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{what}: still {value} after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

const EPOCH: &str = "SELECT buffer_epoch FROM gateways WHERE slug = 'gw-00'";
const EPOCHS: &str = "SELECT count(DISTINCT epoch) FROM ingested_batches";
const CONFLICTS: &str = "SELECT count(*) FROM ingest_rejections WHERE reason LIKE 'seq_conflict%'";
const REFUSED: &str =
    "SELECT count(*) FROM gateways WHERE data_refused_at IS NOT NULL AND slug = 'gw-00'";
const DROPPED: &str = "SELECT buffer_dropped_batches FROM gateways WHERE slug = 'gw-00'";

/// Every copy (redb is copy-on-write) of the buffered record of `seq`, damaged in its
/// frames: the agent's record header starts with "WPB2" and has its seq at byte 28.
fn damage_record(file: &Path, seq: u64) -> anyhow::Result<usize> {
    let mut bytes = std::fs::read(file)?;
    let mut hits = 0;
    let mut at = 0;
    while let Some(pos) = bytes[at..].windows(4).position(|w| w == b"WPB2") {
        let start = at + pos;
        if bytes.len() > start + 80 && bytes[start + 28..start + 36] == seq.to_le_bytes() {
            bytes[start + 76] ^= 0x5a;
            hits += 1;
        }
        at = start + 4;
    }
    std::fs::write(file, bytes)?;
    Ok(hits)
}

/// The seqs of the records found in a buffer file.
fn record_seqs(file: &Path) -> anyhow::Result<Vec<u64>> {
    let bytes = std::fs::read(file)?;
    let mut seqs = Vec::new();
    let mut at = 0;
    while let Some(pos) = bytes[at..].windows(4).position(|w| w == b"WPB2") {
        let start = at + pos;
        if let Some(field) = bytes.get(start + 28..start + 36) {
            seqs.push(u64::from_le_bytes(field.try_into()?));
        }
        at = start + 4;
    }
    seqs.sort_unstable();
    seqs.dedup();
    Ok(seqs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_deleted_and_a_corrupted_buffer_resume_storing_with_the_loss_counted()
-> anyhow::Result<()> {
    let mut stack = Stack::start(BrokerKind::Embedded, 1, BROKER_BIN).await?;
    stack.wait_rows(50, Duration::from_secs(120)).await?;
    let first = wait_for(&stack, "first epoch", Duration::from_secs(30), EPOCH, |e| {
        e != 0
    })
    .await?;
    let stored = scalar(&stack, "SELECT count(*) FROM ingested_batches").await?;

    // 1. The buffer file is deleted: seqs start again at 1, in a new epoch.
    stack
        .restart_agent(0, |dir| {
            Ok(std::fs::remove_file(dir.join(agent::BUFFER_FILE))?)
        })
        .await?;
    let started = Instant::now();
    let second = wait_for(&stack, "new epoch", Duration::from_secs(60), EPOCH, |e| {
        e != first && e != 0
    })
    .await?;
    wait_for(
        &stack,
        "batches of the new epoch stored",
        Duration::from_secs(60),
        &format!("SELECT count(*) FROM ingested_batches WHERE epoch = {second}"),
        |n| n >= 5,
    )
    .await?;
    assert!(started.elapsed() < Duration::from_secs(60));
    let seq_one = scalar(
        &stack,
        "SELECT count(*) FROM ingested_batches WHERE seq = 1",
    )
    .await?;
    assert_eq!(seq_one, 2, "seq 1 stored once in each epoch");
    assert!(scalar(&stack, "SELECT count(*) FROM ingested_batches").await? > stored);

    // 2. The buffer is damaged while it holds unacked batches (the ingester is down).
    stack.kill_ingester();
    let pending_from = scalar(&stack, "SELECT max(seq) FROM ingested_batches").await? as u64;
    tokio::time::sleep(Duration::from_secs(6)).await; // a dozen batches pile up
    let mut damaged = 0;
    stack
        .restart_agent(0, |dir| {
            let file = dir.join(agent::BUFFER_FILE);
            let seqs: Vec<u64> = record_seqs(&file)?
                .into_iter()
                .filter(|&s| s > pending_from + 1)
                .collect();
            anyhow::ensure!(seqs.len() >= 4, "unacked batches in the file: {seqs:?}");
            let victim = seqs[seqs.len() / 2];
            damaged = damage_record(&file, victim)?;
            Ok(())
        })
        .await?;
    assert!(damaged >= 1);
    stack.start_ingester()?;
    let third = wait_for(
        &stack,
        "salvaged epoch",
        Duration::from_secs(60),
        EPOCH,
        |e| e != first && e != second && e != 0,
    )
    .await?;
    wait_for(
        &stack,
        "batches of the salvaged buffer's epoch stored",
        Duration::from_secs(60),
        &format!("SELECT count(*) FROM ingested_batches WHERE epoch = {third}"),
        |n| n >= 3,
    )
    .await?;
    // The kept batches of the second epoch were delivered too, and the loss is reported.
    let dropped = wait_for(
        &stack,
        "loss reported",
        Duration::from_secs(30),
        DROPPED,
        |d| d >= 1,
    )
    .await?;
    let aside = std::fs::read_dir(&stack.agents[0].data_dir)?
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().contains(".damaged-"))
        .count();
    assert_eq!(aside, 1, "the damaged file is kept aside");
    assert_eq!(scalar(&stack, EPOCHS).await?, 3);
    assert_eq!(
        scalar(&stack, CONFLICTS).await?,
        0,
        "no seq conflict across epochs"
    );
    assert_eq!(scalar(&stack, REFUSED).await?, 0, "never refusing");
    eprintln!("lost batches reported: {dropped}");
    stack.finish().await
}
