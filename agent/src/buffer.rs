//! Durable batch queue: every sample the agent reads lives here until the cloud acks it.
//!
//! The buffer is a [redb] database with five tables:
//!
//! | table | key | value |
//! |---|---|---|
//! | `batches` | seq (`u64`) | 20-byte record header (created ms, boot id, sample count, little endian) + the pre-encoded [`wire::FramesBlock`] |
//! | `set_aside` | seq (`u64`) | reason length (`u8`) + reason code + the batch's `batches` value |
//! | `meta` | name | `u64`: `next_seq`, `dropped_batches`, `dropped_samples`, `current_boot`, `set_aside_dropped` |
//! | `births` | boot id | encoded [`wire::Birth`] |
//! | `commands` | command id | expiry (UTC ms) of a command the agent executed |
//!
//! # Invariants
//!
//! * **Durable before return.** [`Buffer::append`] commits with [`Durability::Immediate`]
//!   (fsync) before it returns the new seq: a batch whose seq was handed out survives a
//!   crash, a power cut or `kill -9`. [`Buffer::ack`] and [`Buffer::store_birth`] are
//!   durable on return as well.
//! * **Seq never reused.** `next_seq` lives in `meta` and is bumped in the same
//!   transaction that inserts the batch, so seqs are strictly increasing across restarts,
//!   even when the queue was emptied by acks before the restart. Seqs start at 1.
//! * **Only an ack, a refusal or a limit removes a batch.** A batch leaves the queue when
//!   the cloud acknowledged its seq ([`Buffer::ack`]), when the cloud refused it for good
//!   ([`Buffer::set_aside`]: it moves, in one transaction, to the `set_aside` table, where it
//!   is kept for inspection and never sent again), when a limit forces the oldest batches
//!   out, or when its stored bytes fail validation (a disk fault). The last two are
//!   *drops*: every dropped batch and its samples are added to persisted counters and
//!   logged.
//! * **Limits drop oldest first.** After each append the buffer is trimmed while the queue
//!   and the set-aside batches together hold more than `max_bytes` (sum of stored value
//!   sizes) or while their oldest batch is older than `max_age` relative to the batch just
//!   appended. Set-aside batches go first, oldest first, counted in `set_aside_dropped`
//!   (kept for inspection only, they never outrank data that can still be delivered); then
//!   queued batches, lowest seq first. The batch just appended is never dropped; a single
//!   batch larger than `max_bytes` is refused with [`BufferError::BatchTooLarge`] (and
//!   counted as dropped). Limit changes take effect on the next append.
//! * **Births follow their batches.** A batch carries the boot id of the session that
//!   created it and the cloud needs that boot's [`wire::Birth`] to interpret its aliases.
//!   The birth of every boot id referenced by a buffered batch (queued or set aside) is
//!   kept, as is the birth of
//!   the current boot (the last one stored); any other birth is deleted in the same
//!   transaction that removes its last batch.
//! * **Executed commands are remembered across restarts.** The uplink's replay guard
//!   records a command's id ([`Buffer::record_command`], durable) before the command runs,
//!   and reloads the unexpired ids at start ([`Buffer::executed_commands`]), so a sealed
//!   command captured on the network cannot be replayed after the agent restarts either.
//!   Expired ids are deleted whenever one is recorded.
//! * **Cheap statistics.** Counts, bytes, the oldest batch and per-boot reference counts
//!   are kept in memory, updated only after a successful commit and recomputed by a scan
//!   when the buffer is opened, so [`Buffer::stats`] never touches the disk.
//!
//! Writers (append, ack, birth, drops) are serialised by one mutex that is held across the
//! redb write transaction; readers ([`Buffer::pending`], [`Buffer::newest`],
//! [`Buffer::get`]) use redb read snapshots and never block writers. All methods block on
//! disk I/O: async callers run them on a blocking thread.
//!
//! [`Buffer::append`] wakes the uplink through [`Buffer::notifier`], a
//! [`tokio::sync::Notify`] whose permit is kept when nobody is waiting, so a wake-up is
//! never lost.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use redb::{
    Database, Durability, ReadableDatabase, ReadableTable, Table, TableDefinition, WriteTransaction,
};
use tokio::sync::Notify;
use tracing::{error, warn};

const BATCHES: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("batches");
const META: TableDefinition<'_, &str, u64> = TableDefinition::new("meta");
const BIRTHS: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("births");
const SET_ASIDE: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("set_aside");
const COMMANDS: TableDefinition<'_, u64, i64> = TableDefinition::new("commands");

const NEXT_SEQ: &str = "next_seq";
const DROPPED_BATCHES: &str = "dropped_batches";
const DROPPED_SAMPLES: &str = "dropped_samples";
const CURRENT_BOOT: &str = "current_boot";
const SET_ASIDE_DROPPED: &str = "set_aside_dropped";

/// Size of the fixed header stored in front of each frames block.
const RECORD_HEADER_LEN: usize = 20;

/// Size and age limits of the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BufferLimits {
    /// Maximum sum of stored record sizes (header + frames block), in bytes.
    pub max_bytes: u64,
    /// Maximum age of the oldest batch, measured against the newest batch's creation time.
    pub max_age: Duration,
}

/// Errors of the durable buffer.
#[derive(Debug, thiserror::Error)]
pub enum BufferError {
    /// The database file could not be opened or created.
    #[error("cannot open buffer database {path}: {source}")]
    Open {
        /// The database file.
        path: PathBuf,
        /// What redb reported.
        #[source]
        source: redb::DatabaseError,
    },
    /// A read or write of the database failed.
    #[error("buffer storage error: {0}")]
    Storage(#[from] redb::Error),
    /// The limits cannot hold any batch.
    #[error("invalid buffer limits: max_bytes must be > 0 and max_age > 0")]
    InvalidLimits,
    /// One batch alone is larger than the whole buffer may be.
    #[error("batch of {bytes} bytes exceeds the buffer limit of {max_bytes} bytes")]
    BatchTooLarge {
        /// Stored size the batch would have had.
        bytes: u64,
        /// The configured `max_bytes`.
        max_bytes: u64,
    },
    /// A stored birth could not be decoded.
    #[error("stored birth of boot {boot_id} is unreadable: {source}")]
    CorruptBirth {
        /// The boot whose birth is damaged.
        boot_id: u64,
        /// The decoding failure.
        #[source]
        source: wire::DecodeError,
    },
}

fn storage<E: Into<redb::Error>>(e: E) -> BufferError {
    BufferError::Storage(e.into())
}

/// One buffered batch, as handed to the uplink.
#[derive(Debug, Clone)]
pub struct Record {
    /// Gateway sequence number (durable, strictly increasing).
    pub seq: u64,
    /// Creation time of the batch, UTC ms (gateway clock).
    pub created_ms: i64,
    /// Boot id of the agent session that created the batch.
    pub boot_id: u64,
    /// Number of samples in the block.
    pub samples: u32,
    /// The pre-encoded frames.
    pub block: wire::FramesBlock,
}

/// What an ack did to the buffer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AckOutcome {
    /// Batches deleted by this ack.
    pub batches: u64,
    /// Samples in the deleted batches.
    pub samples: u64,
    /// Seqs named by the ack that were not buffered (already acked, dropped or never
    /// appended): duplicates are normal with at-least-once delivery.
    pub unknown: u64,
}

/// What [`Buffer::set_aside`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SetAsideOutcome {
    /// Batches moved out of the queue.
    pub batches: u64,
    /// Samples in them.
    pub samples: u64,
    /// Stored bytes they take.
    pub bytes: u64,
    /// Seqs named that were not queued (already acked, set aside or dropped).
    pub unknown: u64,
}

/// A batch the cloud refused for good, kept for inspection.
#[derive(Debug, Clone)]
pub struct SetAsideRecord {
    /// The cloud's reason code.
    pub reason: String,
    /// The batch as it was queued.
    pub record: Record,
}

/// Snapshot of the buffer's counters (kept in memory, cheap to read).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BufferStats {
    /// Batches waiting for an ack.
    pub pending_batches: u64,
    /// Samples in those batches.
    pub pending_samples: u64,
    /// Stored size of those batches (record header + frames block).
    pub pending_bytes: u64,
    /// Creation time of the oldest pending batch.
    pub oldest_created_ms: Option<i64>,
    /// The seq the next append will get.
    pub next_seq: u64,
    /// Batches dropped by limits or damage since the buffer was created.
    pub dropped_batches: u64,
    /// Samples in those batches.
    pub dropped_samples: u64,
    /// Batches set aside after a permanent rejection, still kept.
    pub set_aside_batches: u64,
    /// Stored size of those batches (counted against `max_bytes`).
    pub set_aside_bytes: u64,
    /// Set-aside batches dropped by the limits since the buffer was created.
    pub set_aside_dropped: u64,
}

impl BufferStats {
    /// The buffer status reported to the cloud in a batch header, at time `now_ms`.
    pub fn status(&self, now_ms: i64) -> wire::BufferStatus {
        let oldest_age_ms = self.oldest_created_ms.map_or(0, |oldest| {
            u64::try_from(now_ms.saturating_sub(oldest)).unwrap_or(0)
        });
        wire::BufferStatus {
            pending_batches: self.pending_batches,
            pending_bytes: self.pending_bytes,
            oldest_age_ms,
            dropped_samples: self.dropped_samples,
            dropped_batches: self.dropped_batches,
        }
    }

    /// The set-aside figures a birth carries.
    pub fn birth_status(&self) -> wire::BirthStatus {
        wire::BirthStatus {
            set_aside_batches: self.set_aside_batches,
            set_aside_bytes: self.set_aside_bytes,
            set_aside_dropped: self.set_aside_dropped,
        }
    }
}

/// Fixed header stored in front of each frames block.
#[derive(Debug, Clone, Copy)]
struct RecordHeader {
    created_ms: i64,
    boot_id: u64,
    samples: u32,
}

impl RecordHeader {
    /// Stand-in for a header that cannot be read (disk damage): counts no samples, belongs
    /// to no boot and is older than any age limit.
    const UNREADABLE: RecordHeader = RecordHeader {
        created_ms: i64::MIN,
        boot_id: 0,
        samples: 0,
    };

    /// The header of a stored value, or [`Self::UNREADABLE`].
    fn of(value: &[u8]) -> RecordHeader {
        Self::decode(value).map_or(Self::UNREADABLE, |(header, _)| header)
    }

    fn encode(&self, block: &[u8]) -> Vec<u8> {
        let mut value = Vec::with_capacity(RECORD_HEADER_LEN + block.len());
        value.extend_from_slice(&self.created_ms.to_le_bytes());
        value.extend_from_slice(&self.boot_id.to_le_bytes());
        value.extend_from_slice(&self.samples.to_le_bytes());
        value.extend_from_slice(block);
        value
    }

    fn decode(value: &[u8]) -> Option<(RecordHeader, &[u8])> {
        let (header, block) = value.split_at_checked(RECORD_HEADER_LEN)?;
        let (created, rest) = header.split_at(8);
        let (boot, samples) = rest.split_at(8);
        let header = RecordHeader {
            created_ms: i64::from_le_bytes(created.try_into().ok()?),
            boot_id: u64::from_le_bytes(boot.try_into().ok()?),
            samples: u32::from_le_bytes(samples.try_into().ok()?),
        };
        Some((header, block))
    }
}

/// In-memory mirror of the durable state, replaced as a whole after each commit.
#[derive(Debug, Clone, Default)]
struct State {
    stats: BufferStats,
    /// Buffered batches per boot id.
    boot_refs: HashMap<u64, u64>,
    current_boot: Option<u64>,
}

impl State {
    fn add(&mut self, header: &RecordHeader, bytes: u64) {
        self.stats.pending_batches += 1;
        self.stats.pending_samples += u64::from(header.samples);
        self.stats.pending_bytes += bytes;
        *self.boot_refs.entry(header.boot_id).or_default() += 1;
    }

    fn remove(&mut self, header: &RecordHeader, bytes: u64) {
        self.stats.pending_batches -= 1;
        self.stats.pending_samples -= u64::from(header.samples);
        self.stats.pending_bytes -= bytes;
        self.unref_boot(header.boot_id);
    }

    fn add_set_aside(&mut self, header: &RecordHeader, bytes: u64) {
        self.stats.set_aside_batches += 1;
        self.stats.set_aside_bytes += bytes;
        *self.boot_refs.entry(header.boot_id).or_default() += 1;
    }

    fn remove_set_aside(&mut self, header: &RecordHeader, bytes: u64) {
        self.stats.set_aside_batches -= 1;
        self.stats.set_aside_bytes -= bytes;
        self.unref_boot(header.boot_id);
    }

    fn unref_boot(&mut self, boot_id: u64) {
        if let Some(refs) = self.boot_refs.get_mut(&boot_id) {
            *refs -= 1;
            if *refs == 0 {
                self.boot_refs.remove(&boot_id);
            }
        }
    }

    /// Bytes counted against `max_bytes`: queued and set-aside batches.
    fn stored_bytes(&self) -> u64 {
        self.stats.pending_bytes + self.stats.set_aside_bytes
    }

    fn keeps_birth(&self, boot_id: u64) -> bool {
        self.current_boot == Some(boot_id) || self.boot_refs.contains_key(&boot_id)
    }
}

/// Why batches were dropped (for logs).
#[derive(Debug, Clone, Copy)]
enum DropReason {
    MaxBytes,
    MaxAge,
    Damaged,
    /// Set-aside batches dropped by a limit.
    SetAside,
}

/// Batches dropped by one transaction, logged after its commit.
#[derive(Debug, Default)]
struct Drops {
    batches: u64,
    samples: u64,
    first_seq: Option<u64>,
    last_seq: u64,
}

impl Drops {
    fn record(&mut self, seq: u64, samples: u32) {
        self.batches += 1;
        self.samples += u64::from(samples);
        self.first_seq.get_or_insert(seq);
        self.last_seq = seq;
    }

    fn log(&self, reason: DropReason) {
        if let Some(first_seq) = self.first_seq {
            warn!(
                ?reason,
                batches = self.batches,
                samples = self.samples,
                first_seq,
                last_seq = self.last_seq,
                "buffer dropped oldest batches"
            );
        }
    }
}

/// Batches one append's limit enforcement dropped, logged after its commit.
#[derive(Debug, Default)]
struct LimitDrops {
    by_age: Drops,
    by_bytes: Drops,
    set_aside: Drops,
}

impl LimitDrops {
    fn log(&self) {
        self.set_aside.log(DropReason::SetAside);
        self.by_age.log(DropReason::MaxAge);
        self.by_bytes.log(DropReason::MaxBytes);
    }
}

/// The durable batch queue. Share it with `Arc<Buffer>`.
#[derive(Debug)]
pub struct Buffer {
    db: Database,
    limits: BufferLimits,
    /// Serialises writers; holds the state that matches the last commit.
    writer: Mutex<State>,
    /// Copy of the stats for readers that must not wait for an fsync.
    stats: Mutex<BufferStats>,
    appended: Arc<Notify>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave the state half-updated (it is replaced
    // as a whole after commit), so a poisoned lock is safe to reuse.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Buffer {
    /// Opens (or creates) the buffer at `path` and rebuilds the in-memory statistics.
    ///
    /// Safe after a crash: redb recovers to the last committed transaction.
    pub fn open(path: &Path, limits: BufferLimits) -> Result<Buffer, BufferError> {
        if limits.max_bytes == 0 || limits.max_age.is_zero() {
            return Err(BufferError::InvalidLimits);
        }
        let db = Database::create(path).map_err(|source| BufferError::Open {
            path: path.to_owned(),
            source,
        })?;
        let buffer = Buffer {
            db,
            limits,
            writer: Mutex::new(State::default()),
            stats: Mutex::new(BufferStats::default()),
            appended: Arc::new(Notify::new()),
        };
        buffer.recover()?;
        Ok(buffer)
    }

    /// The notifier signalled after every successful append.
    pub fn notifier(&self) -> Arc<Notify> {
        Arc::clone(&self.appended)
    }

    /// The limits this buffer enforces.
    pub fn limits(&self) -> BufferLimits {
        self.limits
    }

    /// Current counters (in memory; never blocks on disk I/O for long).
    pub fn stats(&self) -> BufferStats {
        *lock(&self.stats)
    }

    /// Stores a batch durably and returns its seq, then trims the queue to the limits.
    pub fn append(
        &self,
        created_ms: i64,
        boot_id: u64,
        block: &wire::FramesBlock,
    ) -> Result<u64, BufferError> {
        let header = RecordHeader {
            created_ms,
            boot_id,
            samples: block.sample_count(),
        };
        let value = header.encode(block.as_bytes());
        let bytes = value.len() as u64;
        if bytes > self.limits.max_bytes {
            return Err(self.refuse_oversized(&header, bytes));
        }
        let (seq, drops) = self.write(|txn, state| {
            let seq = state.stats.next_seq;
            txn.open_table(BATCHES)?.insert(seq, value.as_slice())?;
            state.add(&header, bytes);
            state.stats.next_seq = seq + 1;
            txn.open_table(META)?
                .insert(NEXT_SEQ, state.stats.next_seq)?;
            let drops = self.enforce_limits(txn, state, created_ms)?;
            Ok((seq, drops))
        })?;
        drops.log();
        self.appended.notify_one();
        Ok(seq)
    }

    /// Up to `max` pending batches with seq greater than `after_seq` (all when `None`),
    /// oldest first.
    pub fn pending(&self, after_seq: Option<u64>, max: usize) -> Result<Vec<Record>, BufferError> {
        let start = after_seq.map_or(0, |seq| seq.saturating_add(1));
        self.read_records(|table| {
            let range = table.range(start..)?;
            Ok(range.take(max).collect())
        })
    }

    /// The newest (highest seq) `max` pending batches, returned oldest first.
    pub fn newest(&self, max: usize) -> Result<Vec<Record>, BufferError> {
        let mut records = self.read_records(|table| {
            let range = table.range::<u64>(..)?;
            Ok(range.rev().take(max).collect())
        })?;
        records.reverse();
        Ok(records)
    }

    /// The pending batch `seq`, if it is still buffered.
    pub fn get(&self, seq: u64) -> Result<Option<Record>, BufferError> {
        Ok(self
            .read_records(|table| Ok(table.range(seq..=seq)?.collect()))?
            .pop())
    }

    /// Deletes the batches named by the cloud's ack (inclusive seq ranges). Unknown and
    /// duplicate seqs are counted in [`AckOutcome::unknown`], never an error.
    pub fn ack(&self, ranges: &[(u64, u64)]) -> Result<AckOutcome, BufferError> {
        let ranges = merge(ranges);
        let named: u64 = ranges
            .iter()
            .map(|&(lo, hi)| (hi - lo).saturating_add(1))
            .fold(0, u64::saturating_add);
        let outcome = self.write(|txn, state| {
            let mut outcome = AckOutcome::default();
            let mut table = txn.open_table(BATCHES)?;
            for &(lo, hi) in &ranges {
                let mut removed = Vec::new();
                table.retain_in(lo..=hi, |_, value| {
                    removed.push((RecordHeader::of(value), value.len()));
                    false
                })?;
                for (header, len) in removed {
                    state.remove(&header, len as u64);
                    outcome.batches += 1;
                    outcome.samples += u64::from(header.samples);
                }
            }
            drop(table);
            self.after_removal(txn, state)?;
            Ok(outcome)
        })?;
        Ok(AckOutcome {
            unknown: named.saturating_sub(outcome.batches),
            ..outcome
        })
    }

    /// Moves the queued batches named by `ranges` (inclusive) to the set-aside table with
    /// the cloud's `reason` code: they leave the queue (so they are never sent again) but are
    /// kept for inspection, counted against `max_bytes`. Durable on return; seqs not queued
    /// are counted in [`SetAsideOutcome::unknown`].
    pub fn set_aside(
        &self,
        ranges: &[(u64, u64)],
        reason: &str,
    ) -> Result<SetAsideOutcome, BufferError> {
        let ranges = merge(ranges);
        let named: u64 = ranges
            .iter()
            .map(|&(lo, hi)| (hi - lo).saturating_add(1))
            .fold(0, u64::saturating_add);
        // The reason is a wire reason code (at most 32 bytes); the cap keeps the length
        // prefix honest whatever the caller passes.
        let reason = &reason.as_bytes()[..reason.len().min(usize::from(u8::MAX))];
        let outcome = self.write(|txn, state| {
            let mut outcome = SetAsideOutcome::default();
            let mut queue = txn.open_table(BATCHES)?;
            let mut aside = txn.open_table(SET_ASIDE)?;
            for &(lo, hi) in &ranges {
                let mut moved = Vec::new();
                queue.retain_in(lo..=hi, |seq, value| {
                    moved.push((seq, set_aside_value(reason, value)));
                    false
                })?;
                for (seq, value) in moved {
                    let record = &value[1 + reason.len()..];
                    let header = RecordHeader::of(record);
                    let len = record.len() as u64;
                    state.remove(&header, len);
                    state.add_set_aside(&header, value.len() as u64);
                    aside.insert(seq, value.as_slice())?;
                    outcome.batches += 1;
                    outcome.samples += u64::from(header.samples);
                    outcome.bytes += value.len() as u64;
                }
            }
            drop((queue, aside));
            self.after_removal(txn, state)?;
            Ok(outcome)
        })?;
        Ok(SetAsideOutcome {
            unknown: named.saturating_sub(outcome.batches),
            ..outcome
        })
    }

    /// Up to `max` set-aside batches, oldest first (for inspection). Entries that fail
    /// validation are skipped.
    pub fn set_aside_records(&self, max: usize) -> Result<Vec<SetAsideRecord>, BufferError> {
        let txn = self.db.begin_read().map_err(storage)?;
        let table = match txn.open_table(SET_ASIDE) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(storage(e)),
        };
        let mut out = Vec::new();
        for entry in table.iter().map_err(storage)?.take(max) {
            let (key, value) = entry.map_err(storage)?;
            let Some((reason, stored)) = split_set_aside(value.value()) else {
                continue;
            };
            if let Some(record) = to_record(key.value(), stored) {
                out.push(SetAsideRecord {
                    reason: reason.to_owned(),
                    record,
                });
            }
        }
        Ok(out)
    }

    /// Stores the birth of a boot and makes that boot the current one (its birth is kept
    /// even while no batch references it). Births of earlier boots stay while batches
    /// reference them.
    pub fn store_birth(&self, birth: &wire::Birth) -> Result<(), BufferError> {
        let encoded = birth.encode();
        self.write(|txn, state| {
            txn.open_table(BIRTHS)?
                .insert(birth.boot_id, encoded.as_slice())?;
            txn.open_table(META)?.insert(CURRENT_BOOT, birth.boot_id)?;
            state.current_boot = Some(birth.boot_id);
            self.prune_births(txn, state)
        })
    }

    /// The stored birth of `boot_id`, if it is still kept.
    pub fn birth(&self, boot_id: u64) -> Result<Option<wire::Birth>, BufferError> {
        let txn = self.db.begin_read().map_err(storage)?;
        let table = match txn.open_table(BIRTHS) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(storage(e)),
        };
        let Some(value) = table.get(boot_id).map_err(storage)? else {
            return Ok(None);
        };
        wire::Birth::decode(value.value())
            .map(Some)
            .map_err(|source| BufferError::CorruptBirth { boot_id, source })
    }

    /// Boot ids whose births are stored, ascending.
    pub fn birth_ids(&self) -> Result<Vec<u64>, BufferError> {
        let txn = self.db.begin_read().map_err(storage)?;
        let table = match txn.open_table(BIRTHS) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(storage(e)),
        };
        let mut ids = Vec::new();
        for entry in table.iter().map_err(storage)? {
            ids.push(entry.map_err(storage)?.0.value());
        }
        Ok(ids)
    }

    /// Durably records that command `id`, valid until `expires_ms`, is being executed, and
    /// forgets the commands expired at `now_ms`.
    pub fn record_command(&self, id: u64, expires_ms: i64, now_ms: i64) -> Result<(), BufferError> {
        self.write(|txn, _| {
            let mut table = txn.open_table(COMMANDS)?;
            table.retain(|_, expires| expires >= now_ms)?;
            table.insert(id, expires_ms)?;
            Ok(())
        })
    }

    /// The executed commands recorded by [`Buffer::record_command`] that are still valid
    /// at `now_ms`, as (id, expiry ms).
    pub fn executed_commands(&self, now_ms: i64) -> Result<Vec<(u64, i64)>, BufferError> {
        let txn = self.db.begin_read().map_err(storage)?;
        let table = match txn.open_table(COMMANDS) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(storage(e)),
        };
        let mut out = Vec::new();
        for entry in table.iter().map_err(storage)? {
            let (id, expires) = entry.map_err(storage)?;
            if expires.value() >= now_ms {
                out.push((id.value(), expires.value()));
            }
        }
        Ok(out)
    }

    /// Runs `f` in a durable write transaction with a copy of the state; the copy replaces
    /// the state only if the commit succeeds.
    fn write<T>(
        &self,
        f: impl FnOnce(&WriteTransaction, &mut State) -> Result<T, redb::Error>,
    ) -> Result<T, BufferError> {
        let mut guard = lock(&self.writer);
        let mut state = guard.clone();
        let mut txn = self.db.begin_write().map_err(storage)?;
        txn.set_durability(Durability::Immediate).map_err(storage)?;
        let out = f(&txn, &mut state)?;
        txn.commit().map_err(storage)?;
        *lock(&self.stats) = state.stats;
        *guard = state;
        Ok(out)
    }

    /// Creates the tables if needed, then rebuilds the in-memory state from disk.
    fn recover(&self) -> Result<(), BufferError> {
        let damaged = self.write(|txn, state| {
            let meta = txn.open_table(META)?;
            let get = |name: &str| -> Result<Option<u64>, redb::Error> {
                Ok(meta.get(name)?.map(|v| v.value()))
            };
            let mut fresh = State {
                current_boot: get(CURRENT_BOOT)?,
                ..State::default()
            };
            fresh.stats.dropped_batches = get(DROPPED_BATCHES)?.unwrap_or(0);
            fresh.stats.dropped_samples = get(DROPPED_SAMPLES)?.unwrap_or(0);
            fresh.stats.set_aside_dropped = get(SET_ASIDE_DROPPED)?.unwrap_or(0);
            let stored_next = get(NEXT_SEQ)?.unwrap_or(1);
            drop(meta);
            let mut damaged = Drops::default();
            let mut table = txn.open_table(BATCHES)?;
            table.retain(|seq, value| match RecordHeader::decode(value) {
                Some((header, _)) => {
                    fresh.add(&header, value.len() as u64);
                    true
                }
                None => {
                    damaged.record(seq, 0);
                    false
                }
            })?;
            let last = table.last()?.map(|(k, _)| k.value());
            drop(table);
            let mut aside_damaged = Drops::default();
            txn.open_table(SET_ASIDE)?.retain(|seq, value| {
                match split_set_aside(value).and_then(|(_, stored)| RecordHeader::decode(stored)) {
                    Some((header, _)) => {
                        fresh.add_set_aside(&header, value.len() as u64);
                        true
                    }
                    None => {
                        aside_damaged.record(seq, 0);
                        false
                    }
                }
            })?;
            // `next_seq` is bumped with every insert; taking the max also covers a
            // database written before the meta table existed.
            fresh.stats.next_seq = stored_next.max(last.map_or(1, |seq| seq + 1));
            txn.open_table(BIRTHS)?;
            *state = fresh;
            self.count_drops(txn, state, &damaged)?;
            self.count_set_aside_drops(txn, state, &aside_damaged)?;
            self.after_removal(txn, state)?;
            Ok(damaged)
        })?;
        damaged.log(DropReason::Damaged);
        Ok(())
    }

    /// Drops oldest batches until both limits hold, set-aside batches first; `now_ms` is
    /// the newest batch's time.
    fn enforce_limits(
        &self,
        txn: &WriteTransaction,
        state: &mut State,
        now_ms: i64,
    ) -> Result<LimitDrops, redb::Error> {
        let max_age_ms = i64::try_from(self.limits.max_age.as_millis()).unwrap_or(i64::MAX);
        let cutoff = now_ms.saturating_sub(max_age_ms);
        let mut drops = LimitDrops::default();
        // Opened only when it holds something: most appends never touch it.
        if state.stats.set_aside_batches > 0 {
            let mut aside = txn.open_table(SET_ASIDE)?;
            while state.stats.set_aside_batches > 0 {
                let Some((key, value)) = aside.first()? else {
                    break;
                };
                let (seq, len) = (key.value(), value.value().len() as u64);
                let header = split_set_aside(value.value())
                    .map_or(RecordHeader::UNREADABLE, |(_, stored)| {
                        RecordHeader::of(stored)
                    });
                drop((key, value));
                if header.created_ms >= cutoff && state.stored_bytes() <= self.limits.max_bytes {
                    break;
                }
                aside.remove(seq)?;
                state.remove_set_aside(&header, len);
                drops.set_aside.record(seq, header.samples);
            }
            drop(aside);
        }
        let mut table = txn.open_table(BATCHES)?;
        while state.stats.pending_batches > 1 {
            let Some((seq, header, len)) = first_record(&table)? else {
                break;
            };
            let dropped = if header.created_ms < cutoff {
                &mut drops.by_age
            } else if state.stored_bytes() > self.limits.max_bytes {
                &mut drops.by_bytes
            } else {
                break;
            };
            table.remove(seq)?;
            state.remove(&header, len);
            dropped.record(seq, header.samples);
        }
        drop(table);
        self.count_drops(txn, state, &drops.by_age)?;
        self.count_drops(txn, state, &drops.by_bytes)?;
        self.count_set_aside_drops(txn, state, &drops.set_aside)?;
        self.after_removal(txn, state)?;
        Ok(drops)
    }

    fn count_set_aside_drops(
        &self,
        txn: &WriteTransaction,
        state: &mut State,
        drops: &Drops,
    ) -> Result<(), redb::Error> {
        if drops.batches == 0 {
            return Ok(());
        }
        state.stats.set_aside_dropped += drops.batches;
        txn.open_table(META)?
            .insert(SET_ASIDE_DROPPED, state.stats.set_aside_dropped)?;
        Ok(())
    }

    fn count_drops(
        &self,
        txn: &WriteTransaction,
        state: &mut State,
        drops: &Drops,
    ) -> Result<(), redb::Error> {
        if drops.batches == 0 {
            return Ok(());
        }
        state.stats.dropped_batches += drops.batches;
        state.stats.dropped_samples += drops.samples;
        let mut meta = txn.open_table(META)?;
        meta.insert(DROPPED_BATCHES, state.stats.dropped_batches)?;
        meta.insert(DROPPED_SAMPLES, state.stats.dropped_samples)?;
        Ok(())
    }

    /// Refreshes the oldest-batch time and deletes births nothing references any more.
    fn after_removal(&self, txn: &WriteTransaction, state: &mut State) -> Result<(), redb::Error> {
        let table = txn.open_table(BATCHES)?;
        state.stats.oldest_created_ms = first_record(&table)?.map(|(_, h, _)| h.created_ms);
        drop(table);
        self.prune_births(txn, state)
    }

    fn prune_births(&self, txn: &WriteTransaction, state: &State) -> Result<(), redb::Error> {
        let mut births = txn.open_table(BIRTHS)?;
        births.retain(|boot_id, _| state.keeps_birth(boot_id))?;
        Ok(())
    }

    /// Counts and logs a batch refused because it alone exceeds `max_bytes`.
    fn refuse_oversized(&self, header: &RecordHeader, bytes: u64) -> BufferError {
        let drops = Drops {
            batches: 1,
            samples: u64::from(header.samples),
            ..Drops::default()
        };
        let counted = self.write(|txn, state| self.count_drops(txn, state, &drops));
        if let Err(e) = counted {
            error!(error = %e, "cannot count a refused oversized batch");
        }
        warn!(
            bytes,
            max_bytes = self.limits.max_bytes,
            samples = header.samples,
            "batch larger than the whole buffer refused"
        );
        BufferError::BatchTooLarge {
            bytes,
            max_bytes: self.limits.max_bytes,
        }
    }

    /// Reads raw rows with `select`, validates them and returns them as records. Rows
    /// whose bytes fail validation (disk damage) are dropped, counted and logged.
    fn read_records(
        &self,
        select: impl FnOnce(
            &redb::ReadOnlyTable<u64, &'static [u8]>,
        ) -> Result<Vec<RawRow>, redb::StorageError>,
    ) -> Result<Vec<Record>, BufferError> {
        let txn = self.db.begin_read().map_err(storage)?;
        let table = txn.open_table(BATCHES).map_err(storage)?;
        let rows = select(&table).map_err(storage)?;
        let mut records = Vec::with_capacity(rows.len());
        let mut damaged = BTreeSet::new();
        for row in rows {
            let (key, value) = row.map_err(storage)?;
            let seq = key.value();
            match to_record(seq, value.value()) {
                Some(record) => records.push(record),
                None => {
                    damaged.insert(seq);
                }
            }
        }
        drop(table);
        drop(txn);
        if !damaged.is_empty() {
            self.drop_damaged(&damaged)?;
        }
        Ok(records)
    }

    fn drop_damaged(&self, seqs: &BTreeSet<u64>) -> Result<(), BufferError> {
        let drops = self.write(|txn, state| {
            let mut drops = Drops::default();
            let mut table = txn.open_table(BATCHES)?;
            for &seq in seqs {
                let Some(value) = table.remove(seq)? else {
                    continue;
                };
                let value = value.value();
                let header = RecordHeader::of(value);
                state.remove(&header, value.len() as u64);
                drops.record(seq, header.samples);
            }
            drop(table);
            self.count_drops(txn, state, &drops)?;
            self.after_removal(txn, state)?;
            Ok(drops)
        })?;
        error!(
            batches = drops.batches,
            "damaged batches found in the buffer (failed validation); dropped"
        );
        drops.log(DropReason::Damaged);
        Ok(())
    }
}

type RawRow = Result<
    (
        redb::AccessGuard<'static, u64>,
        redb::AccessGuard<'static, &'static [u8]>,
    ),
    redb::StorageError,
>;

fn to_record(seq: u64, value: &[u8]) -> Option<Record> {
    let (header, block) = RecordHeader::decode(value)?;
    let block = wire::FramesBlock::from_bytes(block.to_vec()).ok()?;
    (block.sample_count() == header.samples).then_some(Record {
        seq,
        created_ms: header.created_ms,
        boot_id: header.boot_id,
        samples: header.samples,
        block,
    })
}

/// The `set_aside` value of a queued batch: reason length, reason, the queued value.
fn set_aside_value(reason: &[u8], queued: &[u8]) -> Vec<u8> {
    let mut value = Vec::with_capacity(1 + reason.len() + queued.len());
    value.push(reason.len() as u8);
    value.extend_from_slice(reason);
    value.extend_from_slice(queued);
    value
}

/// The reason and the queued value of a `set_aside` value.
fn split_set_aside(value: &[u8]) -> Option<(&str, &[u8])> {
    let (&len, rest) = value.split_first()?;
    let (reason, stored) = rest.split_at_checked(usize::from(len))?;
    Some((std::str::from_utf8(reason).ok()?, stored))
}

fn first_record(
    table: &Table<'_, u64, &'static [u8]>,
) -> Result<Option<(u64, RecordHeader, u64)>, redb::Error> {
    let Some((key, value)) = table.first()? else {
        return Ok(None);
    };
    let value = value.value();
    Ok(Some((
        key.value(),
        RecordHeader::of(value),
        value.len() as u64,
    )))
}

/// Sorts and merges inclusive ranges; drops inverted ones.
fn merge(ranges: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let mut sorted: Vec<(u64, u64)> = ranges.iter().copied().filter(|(lo, hi)| lo <= hi).collect();
    sorted.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::with_capacity(sorted.len());
    for (lo, hi) in sorted {
        match merged.last_mut() {
            Some(last) if lo <= last.1.saturating_add(1) => last.1 = last.1.max(hi),
            _ => merged.push((lo, hi)),
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(samples: u16) -> wire::FramesBlock {
        let frame = wire::Frame {
            device: 0,
            ts_ms: 1_700_000_000_000,
            samples: (0..samples)
                .map(|metric| wire::Sample {
                    metric,
                    value: Some(wire::Value::Int(i64::from(metric))),
                    quality: wire::Quality::Good,
                })
                .collect(),
        };
        wire::FramesBlock::encode(&[frame]).expect("encodable frame")
    }

    fn limits() -> BufferLimits {
        BufferLimits {
            max_bytes: 1 << 20,
            max_age: Duration::from_secs(3600),
        }
    }

    #[test]
    fn record_header_round_trips_and_rejects_short_values() {
        let header = RecordHeader {
            created_ms: -5,
            boot_id: u64::MAX,
            samples: 7,
        };
        let value = header.encode(b"abc");
        let (back, rest) = RecordHeader::decode(&value).expect("valid header");
        assert_eq!(
            (back.created_ms, back.boot_id, back.samples),
            (-5, u64::MAX, 7)
        );
        assert_eq!(rest, b"abc");
        assert!(RecordHeader::decode(&value[..RECORD_HEADER_LEN - 1]).is_none());
        assert_eq!(RecordHeader::of(b"short").created_ms, i64::MIN);
    }

    #[test]
    fn merge_sorts_merges_and_drops_reversed_ranges() {
        assert_eq!(
            merge(&[(5, 9), (1, 2), (3, 4), (8, 12), (7, 6)]),
            vec![(1, 12)]
        );
        assert_eq!(merge(&[(1, 1), (3, 3)]), vec![(1, 1), (3, 3)]);
        assert_eq!(merge(&[(0, u64::MAX), (4, 4)]), vec![(0, u64::MAX)]);
        assert!(merge(&[]).is_empty());
    }

    #[test]
    fn damaged_records_are_dropped_counted_and_never_returned() {
        let dir = tempfile::tempdir().expect("tempdir");
        let buffer = Buffer::open(&dir.path().join("b.redb"), limits()).expect("open");
        let good = buffer.append(1_000, 1, &block(3)).expect("append");
        // Simulate disk damage: a valid header in front of bytes that are no frames block.
        let bad_seq = good + 1;
        let bad = RecordHeader {
            created_ms: 1_001,
            boot_id: 1,
            samples: 4,
        }
        .encode(b"\xff\x00garbage");
        buffer
            .write(|txn, state| {
                txn.open_table(BATCHES)?.insert(bad_seq, bad.as_slice())?;
                txn.open_table(META)?.insert(NEXT_SEQ, bad_seq + 1)?;
                state.add(&RecordHeader::of(&bad), bad.len() as u64);
                state.stats.next_seq = bad_seq + 1;
                Ok(())
            })
            .expect("inject damaged record");
        let records = buffer.pending(None, 10).expect("pending");
        assert_eq!(
            records.iter().map(|r| r.seq).collect::<Vec<_>>(),
            vec![good]
        );
        let stats = buffer.stats();
        assert_eq!(
            (
                stats.pending_batches,
                stats.dropped_batches,
                stats.dropped_samples
            ),
            (1, 1, 4)
        );
        assert!(buffer.get(bad_seq).expect("get").is_none());
    }

    #[test]
    fn set_aside_batches_leave_the_queue_survive_a_restart_and_keep_their_birth() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("b.redb");
        let buffer = Buffer::open(&path, limits()).expect("open");
        let birth = |boot_id| wire::Birth {
            boot_id,
            ts_ms: 0,
            agent_version: "t".into(),
            config_hash: "h".into(),
            devices: Vec::new(),
        };
        buffer.store_birth(&birth(7)).expect("birth 7");
        let seqs: Vec<u64> = (0..4)
            .map(|i| buffer.append(1_000 + i, 7, &block(3)).expect("append"))
            .collect();
        buffer.store_birth(&birth(8)).expect("a later boot");
        let before = buffer.stats();
        let outcome = buffer
            .set_aside(&[(seqs[1], seqs[2]), (99, 99)], "seq_conflict")
            .expect("set aside");
        assert_eq!(
            (outcome.batches, outcome.samples, outcome.unknown),
            (2, 6, 1)
        );
        let stats = buffer.stats();
        assert_eq!(stats.pending_batches, 2);
        assert_eq!(stats.set_aside_batches, 2);
        assert_eq!(stats.set_aside_bytes, outcome.bytes);
        assert_eq!(
            stats.pending_bytes + stats.set_aside_bytes,
            before.pending_bytes + 2 * (1 + "seq_conflict".len() as u64),
            "moved bytes stay counted, plus the reason"
        );
        assert!(buffer.get(seqs[1]).expect("get").is_none());
        let pending: Vec<u64> = buffer
            .pending(None, 10)
            .expect("pending")
            .iter()
            .map(|r| r.seq)
            .collect();
        assert_eq!(pending, vec![seqs[0], seqs[3]]);
        // Acking the rest leaves only set-aside batches, which still hold boot 7's birth.
        buffer.ack(&[(seqs[0], seqs[3])]).expect("ack");
        assert!(
            buffer.birth(7).expect("read").is_some(),
            "set-aside batches keep their boot's birth"
        );
        drop(buffer);

        let buffer = Buffer::open(&path, limits()).expect("reopen");
        let stats = buffer.stats();
        assert_eq!((stats.pending_batches, stats.set_aside_batches), (0, 2));
        assert_eq!(stats.set_aside_bytes, outcome.bytes);
        let kept = buffer.set_aside_records(10).expect("inspect");
        assert_eq!(
            kept.iter()
                .map(|k| (k.record.seq, k.reason.as_str(), k.record.samples))
                .collect::<Vec<_>>(),
            vec![(seqs[1], "seq_conflict", 3), (seqs[2], "seq_conflict", 3)]
        );
        assert_eq!(
            buffer
                .set_aside(&[(seqs[1], seqs[1])], "again")
                .expect("no-op")
                .unknown,
            1
        );
        let status = buffer.stats().birth_status();
        assert_eq!(
            (status.set_aside_batches, status.set_aside_bytes),
            (2, outcome.bytes)
        );
    }

    #[test]
    fn set_aside_batches_count_against_max_bytes_and_are_dropped_first() {
        let dir = tempfile::tempdir().expect("tempdir");
        let one = RECORD_HEADER_LEN as u64 + block(3).as_bytes().len() as u64;
        let limits = BufferLimits {
            max_bytes: 4 * one + 20,
            max_age: Duration::from_secs(3600),
        };
        let buffer = Buffer::open(&dir.path().join("b.redb"), limits).expect("open");
        let a = buffer.append(1_000, 1, &block(3)).expect("append");
        let b = buffer.append(1_001, 1, &block(3)).expect("append");
        buffer.set_aside(&[(a, b)], "malformed").expect("set aside");
        let c = buffer.append(1_002, 1, &block(3)).expect("append");
        let d = buffer.append(1_003, 1, &block(3)).expect("append");
        assert_eq!(
            buffer.stats().set_aside_batches,
            2,
            "still within the limit"
        );
        // One more batch exceeds the limit: the oldest set-aside batch goes, no queued one.
        let e = buffer.append(1_004, 1, &block(3)).expect("append");
        let stats = buffer.stats();
        assert_eq!((stats.set_aside_batches, stats.set_aside_dropped), (1, 1));
        assert_eq!(
            stats.dropped_batches, 0,
            "queued data is not dropped for refused data"
        );
        assert_eq!(
            buffer.set_aside_records(10).expect("inspect")[0].record.seq,
            b
        );
        // Next the last set-aside batch, then the oldest queued ones.
        buffer.append(1_005, 1, &block(3)).expect("append");
        buffer.append(1_006, 1, &block(3)).expect("append");
        let stats = buffer.stats();
        assert_eq!((stats.set_aside_batches, stats.set_aside_dropped), (0, 2));
        assert_eq!(stats.dropped_batches, 1);
        let pending: Vec<u64> = buffer
            .pending(None, 10)
            .expect("pending")
            .iter()
            .map(|r| r.seq)
            .collect();
        assert_eq!(pending, vec![d, e, e + 1, e + 2]);
        assert!(!pending.contains(&c));
        // An age limit reaches set-aside batches too.
        buffer.set_aside(&[(d, d)], "malformed").expect("set aside");
        buffer
            .append(1_000 + 3_600_000 + 4, 1, &block(3))
            .expect("append");
        assert_eq!(buffer.stats().set_aside_batches, 0);
        assert_eq!(buffer.stats().set_aside_dropped, 3);
    }
}
