//! The exactly-once ingest transaction.
//!
//! Delivery from the gateways is at-least-once; storage must be exactly-once. A batch is
//! identified by `(gateway, epoch, seq)`: seq is durable and strictly increasing within
//! one agent buffer, and the buffer's epoch changes whenever the buffer starts over (its
//! file was lost, or salvaged after damage), so a new buffer's seqs never collide with the
//! ones stored from an earlier one. That triple is the `ingested_batches` primary key, and
//! a batch's samples are stored in the same transaction as its `ingested_batches` row.
//! Agents that predate epochs send none: epoch 0.
//!
//! [`IngestTx`] groups several batches into one transaction (one commit per group keeps
//! the per-batch cost low). Each batch is staged in memory: [`IngestTx::record_batch`]
//! opens it, [`BatchWriter::push`] checks and keeps its samples. [`IngestTx::commit`] then
//! runs, in one database transaction:
//!
//! 1. `INSERT INTO ingested_batches … ON CONFLICT DO NOTHING RETURNING (gateway_id, epoch, seq)`
//!    for all staged batches — the returned rows are the batches that are new;
//! 2. one binary `COPY telemetry … FROM STDIN` (see [`copy`](crate::copy)) with the rows
//!    of the new batches only, sorted by (series, time): consecutive index insertions then
//!    land on the same B-tree leaf, and each heap page holds runs of one series instead of
//!    one sample of many, which is what a per-series time-range query reads;
//! 3. `COMMIT`.
//!
//! A batch staged twice in one transaction (a re-delivery arriving in the same round as
//! the original) is not staged again by `record_batch`, but remembered and classified at
//! commit like a batch committed by an earlier transaction (or by a concurrent ingester,
//! which the primary key makes wait for the first one's commit): reported as a duplicate,
//! its rows never copied. Both committed and duplicate batches are safe to acknowledge. A batch whose
//! (epoch, seq) is already stored under a *different* boot id is a seq regression (the
//! gateway lost its buffer state without starting a new epoch, as agents before epochs
//! did); it is not stored and is reported as a [`SeqConflict`] for the ingester to audit.
//!
//! The transaction costs a fixed handful of round trips whatever the number of batches
//! (BEGIN, insert, COPY start, COPY data + end, COMMIT), which matters because small
//! statements are the slow part of the PostgreSQL protocol. Bulk data goes through COPY
//! only. The workspace pins sqlx 0.8: 0.9.0 stopped setting TCP_NODELAY (sqlx #4335, fixed
//! upstream but unreleased), which made every COPY wait ~40 ms for the server's delayed
//! ACK — the larger part of the ingest latency, measured.
//!
//! Rollup bookkeeping needs nothing from this transaction: on the plain PostgreSQL
//! back-end a statement trigger on `telemetry` records the written (series, time range)
//! pairs in `rollup_dirty` as part of the same statement (see
//! [`schema`](crate::schema)); TimescaleDB tracks invalidations itself.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::{Postgres, Row, Transaction};

use crate::copy::{COPY_TELEMETRY, HEADER, TRAILER, TelemetryRow, check_time, encode_row};
use crate::{Db, DbError, GatewayId, boot_from_db, boot_to_db, seq_to_db};

/// What identifies a stored batch: (gateway, buffer epoch, seq).
pub type BatchKey = (GatewayId, u64, u64);

/// The key of a row with columns `gateway_id`, `epoch` and `seq` (an `ingested_batches`
/// or `detection_backlog` row).
pub(crate) fn batch_key_of(row: &PgRow) -> Result<BatchKey, sqlx::Error> {
    let epoch: i64 = row.try_get("epoch")?;
    let seq: i64 = row.try_get("seq")?;
    Ok((row.try_get("gateway_id")?, boot_from_db(epoch), seq as u64))
}

/// Keys as the three arrays a `unnest($1::bigint[], $2::bigint[], $3::bigint[]) AS
/// k(gateway_id, epoch, seq)` takes.
pub(crate) fn key_arrays(
    keys: impl Iterator<Item = BatchKey>,
) -> (Vec<GatewayId>, Vec<i64>, Vec<i64>) {
    let mut arrays = (Vec::new(), Vec::new(), Vec::new());
    for (gateway, epoch, seq) in keys {
        arrays.0.push(gateway);
        arrays.1.push(boot_to_db(epoch));
        arrays.2.push(seq as i64);
    }
    arrays
}

/// Bytes sent per COPY data message.
const COPY_CHUNK: usize = 1 << 20;

/// Bookkeeping of one batch, as stored in `ingested_batches`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchRecord {
    /// Gateway that sent the batch.
    pub gateway: GatewayId,
    /// The epoch of the agent buffer that numbered the batch (0: an agent before epochs).
    pub epoch: u64,
    /// The gateway's durable batch sequence number.
    pub seq: u64,
    /// Boot id of the session that created the batch.
    pub boot_id: u64,
    /// Backlog replay rather than live data.
    pub historical: bool,
    /// When the cloud received the batch.
    pub received_at: DateTime<Utc>,
}

impl BatchRecord {
    /// The batch's idempotency key.
    pub fn key(&self) -> BatchKey {
        (self.gateway, self.epoch, self.seq)
    }
}

/// A seq already stored with another boot id: the gateway's sequence went backwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeqConflict {
    /// Gateway concerned.
    pub gateway: GatewayId,
    /// The buffer epoch of the repeated seq.
    pub epoch: u64,
    /// The repeated seq.
    pub seq: u64,
    /// Boot id stored for that seq.
    pub stored_boot_id: u64,
    /// Boot id of the refused batch.
    pub incoming_boot_id: u64,
}

/// Result of [`IngestTx::commit`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IngestOutcome {
    /// Batches stored by this transaction.
    pub stored: Vec<BatchKey>,
    /// Batches already stored before (skipped; acknowledge them again).
    pub duplicates: Vec<BatchKey>,
    /// Batches refused because their seq is stored under another boot id.
    pub conflicts: Vec<SeqConflict>,
    /// Samples copied.
    pub samples: u64,
}

impl IngestOutcome {
    /// Every (gateway, epoch, seq) that is durably stored: stored now or before.
    pub fn committed(&self) -> impl Iterator<Item = BatchKey> + '_ {
        self.stored.iter().chain(self.duplicates.iter()).copied()
    }
}

struct StagedBatch {
    record: BatchRecord,
    rows: std::ops::Range<usize>,
    min_ms: Option<i64>,
    max_ms: Option<i64>,
}

impl StagedBatch {
    fn key(&self) -> BatchKey {
        self.record.key()
    }
}

/// An open ingest transaction (see the module docs).
pub struct IngestTx {
    tx: Transaction<'static, Postgres>,
    rows: Vec<TelemetryRow>,
    batches: Vec<StagedBatch>,
    staged: HashSet<BatchKey>,
    /// Records of batches whose (gateway, epoch, seq) was already staged in this transaction.
    repeats: Vec<BatchRecord>,
    /// Whether the new batches join `detection_backlog` (see [`IngestTx::queue_for_detection`]).
    queue_for_detection: bool,
}

impl std::fmt::Debug for IngestTx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IngestTx")
            .field("batches", &self.batches.len())
            .field("rows", &self.rows.len())
            .finish_non_exhaustive()
    }
}

/// Writes the samples of one staged batch.
#[derive(Debug)]
pub struct BatchWriter<'a> {
    tx: &'a mut IngestTx,
}

impl Db {
    /// Opens an ingest transaction.
    pub async fn begin_ingest(&self) -> Result<IngestTx, DbError> {
        Ok(IngestTx {
            tx: self.pool().begin().await?,
            rows: Vec::new(),
            batches: Vec::new(),
            staged: HashSet::new(),
            repeats: Vec::new(),
            queue_for_detection: false,
        })
    }
}

impl IngestTx {
    /// Whether the batch is already stored, or already staged in this transaction. An
    /// optional early check (one round trip) to skip decoding a re-sent batch; `commit`
    /// detects duplicates anyway.
    pub async fn is_duplicate(
        &mut self,
        gateway: GatewayId,
        epoch: u64,
        seq: u64,
    ) -> Result<bool, DbError> {
        if self.staged.contains(&(gateway, epoch, seq)) {
            return Ok(true);
        }
        Ok(sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM ingested_batches
                            WHERE gateway_id = $1 AND epoch = $2 AND seq = $3)",
        )
        .bind(gateway)
        .bind(boot_to_db(epoch))
        .bind(seq_to_db(seq)?)
        .fetch_one(&mut *self.tx)
        .await?)
    }

    /// Stages a batch; its samples are then written with the returned writer. Returns
    /// `Ok(None)` when this transaction already holds the same (gateway, epoch, seq): the repeat
    /// is then reported by `commit` as a duplicate (or a seq conflict if its boot differs).
    pub fn record_batch(
        &mut self,
        record: BatchRecord,
    ) -> Result<Option<BatchWriter<'_>>, DbError> {
        seq_to_db(record.seq)?;
        if !self.staged.insert(record.key()) {
            self.repeats.push(record);
            return Ok(None);
        }
        let start = self.rows.len();
        self.batches.push(StagedBatch {
            record,
            rows: start..start,
            min_ms: None,
            max_ms: None,
        });
        Ok(Some(BatchWriter { tx: self }))
    }

    /// Records the new batches with samples in `detection_backlog` too (in the statement
    /// that inserts their `ingested_batches` rows: no extra round trip), for detection to
    /// claim and score after the commit (see [`crate::detection::claim_backlog`]).
    pub fn queue_for_detection(&mut self) {
        self.queue_for_detection = true;
    }

    /// Number of batches staged.
    pub fn batch_count(&self) -> usize {
        self.batches.len()
    }

    /// Number of samples staged.
    pub fn sample_count(&self) -> usize {
        self.rows.len()
    }

    /// Abandons the transaction; nothing is stored.
    pub async fn rollback(self) -> Result<(), DbError> {
        self.tx.rollback().await?;
        Ok(())
    }

    /// Stores the new batches and their samples atomically (see the module docs).
    pub async fn commit(mut self) -> Result<IngestOutcome, DbError> {
        let outcome = self.write().await?;
        self.finish().await?;
        Ok(outcome)
    }

    /// Writes the staged batches that are new and their samples, without committing: the
    /// caller may add to the transaction (detection does, through [`IngestTx::conn`]),
    /// then calls [`IngestTx::finish`]. Call it once.
    pub async fn write(&mut self) -> Result<IngestOutcome, DbError> {
        let mut outcome = IngestOutcome::default();
        if self.batches.is_empty() {
            return Ok(outcome);
        }
        let new = self.insert_batches().await?;
        for batch in self.batches.iter().filter(|b| new.contains(&b.key())) {
            outcome.stored.push(batch.key());
            outcome.samples += batch.rows.len() as u64;
        }
        if outcome.samples > 0 {
            self.copy_new_rows(&new, outcome.samples).await?;
        }
        if outcome.stored.len() < self.batches.len() || !self.repeats.is_empty() {
            self.classify_skipped(&new, &mut outcome).await?;
        }
        Ok(outcome)
    }

    /// The transaction's connection, for what the caller adds to it after
    /// [`IngestTx::write`].
    pub fn conn(&mut self) -> &mut sqlx::PgConnection {
        &mut self.tx
    }

    /// Commits what [`IngestTx::write`] wrote and the caller added.
    pub async fn finish(self) -> Result<(), DbError> {
        self.tx.commit().await?;
        Ok(())
    }

    /// Streams the rows of the new batches, sorted by (series, time), through one binary
    /// COPY.
    async fn copy_new_rows(
        &mut self,
        new: &HashSet<BatchKey>,
        expected: u64,
    ) -> Result<(), DbError> {
        let mut rows = Vec::with_capacity(usize::try_from(expected).unwrap_or(0));
        for batch in self.batches.iter().filter(|b| new.contains(&b.key())) {
            rows.extend_from_slice(&self.rows[batch.rows.clone()]);
        }
        rows.sort_unstable_by_key(|r| (r.series_id, r.ts_ms));
        let mut chunk = Vec::with_capacity(COPY_CHUNK + 64);
        chunk.extend_from_slice(HEADER);
        let mut copy = self.tx.copy_in_raw(COPY_TELEMETRY).await?;
        for row in &rows {
            encode_row(&mut chunk, row)?;
            if chunk.len() >= COPY_CHUNK {
                copy.send(chunk.as_slice()).await?;
                chunk.clear();
            }
        }
        chunk.extend_from_slice(TRAILER);
        copy.send(chunk).await?;
        let copied = copy.finish().await?;
        if copied != expected {
            return Err(DbError::invalid(
                "COPY result",
                format!("copied {copied} rows, expected {expected}"),
            ));
        }
        Ok(())
    }

    /// Inserts the `ingested_batches` rows (and dirty ranges); returns the new batches.
    async fn insert_batches(&mut self) -> Result<HashSet<BatchKey>, DbError> {
        let n = self.batches.len();
        let mut epoch = Vec::with_capacity(n);
        let (mut gw, mut seq, mut boot, mut recv, mut samples, mut min_t, mut max_t, mut hist) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        for b in &self.batches {
            gw.push(b.record.gateway);
            epoch.push(boot_to_db(b.record.epoch));
            seq.push(seq_to_db(b.record.seq)?);
            boot.push(boot_to_db(b.record.boot_id));
            recv.push(b.record.received_at);
            samples.push(i32::try_from(b.rows.len()).unwrap_or(i32::MAX));
            min_t.push(b.min_ms.and_then(DateTime::<Utc>::from_timestamp_millis));
            max_t.push(b.max_ms.and_then(DateTime::<Utc>::from_timestamp_millis));
            hist.push(b.record.historical);
        }
        let rows = sqlx::query(
            "WITH new AS (
                 INSERT INTO ingested_batches (tenant_id, gateway_id, seq, boot_id, received_at,
                                               samples, min_time, max_time, historical, epoch)
                 SELECT g.tenant_id, b.gateway_id, b.seq, b.boot_id, b.received_at, b.samples,
                        b.min_time, b.max_time, b.historical, b.epoch
                 FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::timestamptz[],
                             $5::int[], $6::timestamptz[], $7::timestamptz[], $8::bool[],
                             $9::bigint[])
                      AS b(gateway_id, seq, boot_id, received_at, samples, min_time, max_time,
                           historical, epoch)
                 JOIN gateways g ON g.id = b.gateway_id
                 ON CONFLICT (gateway_id, epoch, seq) DO NOTHING
                 RETURNING tenant_id, gateway_id, epoch, seq, received_at, samples
             ), queued AS (
                 INSERT INTO detection_backlog (tenant_id, gateway_id, epoch, seq, received_at)
                 SELECT tenant_id, gateway_id, epoch, seq, received_at FROM new
                 WHERE $10 AND samples > 0
             )
             SELECT gateway_id, epoch, seq FROM new",
        )
        .bind(&gw)
        .bind(&seq)
        .bind(&boot)
        .bind(&recv)
        .bind(&samples)
        .bind(&min_t)
        .bind(&max_t)
        .bind(&hist)
        .bind(&epoch)
        .bind(self.queue_for_detection)
        .fetch_all(&mut *self.tx)
        .await?;
        rows.iter()
            .map(batch_key_of)
            .collect::<Result<_, sqlx::Error>>()
            .map_err(DbError::from)
    }

    /// Sorts the batches that were not inserted, and the repeats within this transaction,
    /// into duplicates and seq conflicts (the lookup sees this transaction's own rows).
    async fn classify_skipped(
        &mut self,
        new: &HashSet<BatchKey>,
        outcome: &mut IngestOutcome,
    ) -> Result<(), DbError> {
        let skipped: Vec<&BatchRecord> = self
            .batches
            .iter()
            .map(|b| &b.record)
            .filter(|r| !new.contains(&r.key()))
            .chain(&self.repeats)
            .collect();
        let (gw, epoch, seq) = key_arrays(skipped.iter().map(|r| r.key()));
        let rows = sqlx::query(
            "SELECT b.gateway_id, b.epoch, b.seq, b.boot_id
             FROM ingested_batches b
             JOIN unnest($1::bigint[], $2::bigint[], $3::bigint[]) AS k(gateway_id, epoch, seq)
               ON b.gateway_id = k.gateway_id AND b.epoch = k.epoch AND b.seq = k.seq",
        )
        .bind(&gw)
        .bind(&epoch)
        .bind(&seq)
        .fetch_all(&mut *self.tx)
        .await?;
        let mut stored_boot = HashMap::new();
        for row in rows {
            let boot: i64 = row.try_get("boot_id")?;
            stored_boot.insert(batch_key_of(&row)?, boot);
        }
        for record in skipped {
            let Some(&boot) = stored_boot.get(&record.key()) else {
                return Err(DbError::NotFound(format!("gateway {}", record.gateway)));
            };
            if boot_from_db(boot) == record.boot_id {
                outcome.duplicates.push(record.key());
            } else {
                outcome.conflicts.push(SeqConflict {
                    gateway: record.gateway,
                    epoch: record.epoch,
                    seq: record.seq,
                    stored_boot_id: boot_from_db(boot),
                    incoming_boot_id: record.boot_id,
                });
            }
        }
        Ok(())
    }
}

impl BatchWriter<'_> {
    /// Appends one sample to the batch. A time PostgreSQL cannot store is refused before
    /// anything is sent (the batch stays consistent: nothing of the row was written).
    pub fn push(&mut self, row: &TelemetryRow) -> Result<(), DbError> {
        check_time(row.ts_ms)?;
        self.tx.rows.push(*row);
        let batch = self
            .tx
            .batches
            .last_mut()
            .expect("a BatchWriter exists only for a staged batch");
        batch.rows.end = self.tx.rows.len();
        batch.min_ms = Some(batch.min_ms.map_or(row.ts_ms, |m| m.min(row.ts_ms)));
        batch.max_ms = Some(batch.max_ms.map_or(row.ts_ms, |m| m.max(row.ts_ms)));
        Ok(())
    }

    /// Samples written to this batch so far.
    pub fn sample_count(&self) -> usize {
        self.tx.batches.last().map_or(0, |b| b.rows.len())
    }
}
