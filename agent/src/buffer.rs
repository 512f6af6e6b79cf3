//! Durable batch queue: every sample the agent reads lives here until the cloud acks it.
//!
//! The buffer is a [redb] database with five tables:
//!
//! | table | key | value |
//! |---|---|---|
//! | `batches` | seq (`u64`) | 72-byte record header (see below) + the pre-encoded [`wire::FramesBlock`] |
//! | `set_aside` | seq (`u64`) | reason length (`u8`) + reason code + the batch's `batches` value |
//! | `meta` | name | `u64`: `next_seq`, `dropped_batches`, `dropped_samples`, `current_boot`, `set_aside_dropped`, `epoch`, `format`, `damaged_batches` |
//! | `births` | boot id | encoded [`wire::Birth`] |
//! | `commands` | command id | expiry (UTC ms) of a command the agent executed |
//!
//! A record is self-delimiting and self-checking: `"WPB2"`, created ms, boot id, epoch,
//! seq, the lowest seq pending when it was appended, the drop totals of that moment, the
//! sample count, the block length, and a CRC-32C over all of it and the block (little
//! endian). Buffers written before epochs (20-byte headers: created ms, boot id, samples)
//! are converted in place at open, as epoch 0 (`format` = 2 marks the new layout).
//!
//! # Epochs
//!
//! A buffer's *epoch* is a random non-zero `u64` chosen when the buffer starts over: its
//! file was missing or empty, or it was salvaged. It is stored in `meta` and in every
//! record, and travels as batch header key 6 and in the birth, so the cloud keys batches
//! by (gateway, epoch, seq): a new buffer's seqs (from 1 again) never collide with seqs
//! stored from an earlier one. Random rather than time-based: a gateway clock can be wrong
//! or reset, and the epoch must never repeat. A buffer from before epochs keeps epoch 0
//! (what its batches were stored under).
//!
//! # Disk pressure
//!
//! The file system the buffer lives on may fill up (the buffer itself while the broker is
//! away, or anything else). redb then fails the write with `ENOSPC` and refuses every
//! later call ("Previous I/O error occurred") until the file is opened again, and even a
//! deletion needs free pages (copy on write). So:
//!
//! * **A reserve.** Two files next to the buffer (`<name>.reserve.0`/`.1`, together
//!   [`RESERVE_BYTES`], real blocks) are written at open. On `ENOSPC` one is deleted, the
//!   handle is closed and the file opened again (redb recovers to the last commit), the
//!   buffer is capped a quarter below what it stores and the oldest batches are dropped to
//!   that cap (counted), then the write is retried — up to three rounds. Opening on a full
//!   disk does the same. The other half is still there for the next start.
//! * **Room on disk.** At each append the file system's free room is read (`statvfs`):
//!   below [`DISK_HEADROOM`] the buffer caps itself an eighth below what it stores, so it
//!   stops growing its file (redb reuses the pages drops free) before `ENOSPC`; it
//!   tightens again only if the room keeps shrinking. The cap is lifted once the room is
//!   back above twice the headroom and the reserve is whole again (retried every 30 s).
//! * **Oldest first, counted.** Drops under the cap are drops like any other: oldest
//!   first, set-aside batches before queued ones, added to the durable counters in the
//!   same transaction, logged (at powers of two of the total while the disk is full).
//! * **Health.** [`Buffer::health`] names what is wrong (writes failing, disk full and
//!   the cap, drops within [`DEGRADED_AFTER_DROP`]); the agent's `/healthz` says
//!   `degraded: …` with it.
//!
//! # Salvage
//!
//! A file redb cannot open, or whose records or bookkeeping fail validation at open, is
//! *salvaged* ([`Buffer::salvage`], also `wellpulse-agent buffer salvage`): it is renamed
//! `<name>.damaged-<ms>` (kept for inspection, never deleted), its bytes are scanned for
//! intact records (magic, length, CRC, seq, frames — no trust in redb's damaged pages,
//! where redb itself may panic), copies older than the newest record's first pending seq
//! are left out as stale (acked or dropped), and the rest is written to a new file with a
//! new epoch; each kept batch keeps its own epoch. Seqs missing between the lowest and
//! the highest kept record are counted as dropped and damaged (samples estimated from
//! the kept batches' mean); `next_seq` continues above every seq kept. Births and the
//! executed-command table are not salvaged: the session stores its birth next, and the
//! cloud has the births of earlier boots. `wellpulse-agent buffer check` validates a
//! file without changing it.
//!
//! # Invariants
//!
//! * **Durable before return.** [`Buffer::append`] commits with [`Durability::Immediate`]
//!   (fsync) before it returns the new seq: a batch whose seq was handed out survives a
//!   crash, a power cut or `kill -9`. [`Buffer::ack`] and [`Buffer::store_birth`] are
//!   durable on return as well.
//! * **Seq never reused.** `next_seq` lives in `meta` and is bumped in the same
//!   transaction that inserts the batch, so seqs are strictly increasing across restarts,
//!   even when the queue was emptied by acks before the restart. Seqs start at 1 in a new
//!   epoch; (epoch, seq) is never reused, even when the file is lost.
//! * **Only an ack, a refusal or a limit removes a batch.** A batch leaves the queue when
//!   the cloud acknowledged its seq ([`Buffer::ack`]), when the cloud refused it for good
//!   ([`Buffer::set_aside`]: it moves, in one transaction, to the `set_aside` table, where it
//!   is kept for inspection and never sent again), when a limit forces the oldest batches
//!   out (`max_bytes`, `max_age`, or a full disk), or when its stored bytes fail
//!   validation (a disk fault). The last two are *drops*: every dropped batch and its
//!   samples are added to persisted counters and logged; batches the batcher could not
//!   append at all are added to the same counters once the buffer works again
//!   ([`Buffer::count_lost`]). The counters survive restarts and, through the records'
//!   headers, even a salvage.
//! * **A failed write never poisons the buffer.** An I/O error closes and reopens the
//!   redb handle (see *Disk pressure*); the next call works on the last committed state.
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

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use redb::{
    Database, Durability, ReadableDatabase, ReadableTable, Table, TableDefinition, WriteTransaction,
};
use tokio::sync::Notify;
use tracing::{error, info, warn};

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
const EPOCH: &str = "epoch";
const FORMAT: &str = "format";
const DAMAGED_BATCHES: &str = "damaged_batches";

/// Bytes a record takes in front of its frames block (counted in `max_bytes`).
pub const RECORD_HEADER_LEN: usize = 72;
/// Size of the header of the first record layout (before epochs and checksums).
const RECORD_HEADER_V1_LEN: usize = 20;
/// `meta` value of [`FORMAT`]: records with epoch and CRC ([`RecordHeader::encode`]).
const FORMAT_V2: u64 = 2;

/// Size of the reserve kept next to the buffer file (two files, see [`reserve_paths`]):
/// given up when the disk is full, so the buffer can still commit deletions and drops.
pub const RESERVE_BYTES: u64 = 1 << 20;
/// How often the reserve is written again while the disk is full.
const RESERVE_RETRY: Duration = Duration::from_secs(30);
/// Room the buffer leaves free on its file system: it drops its oldest batches rather than
/// grow into the last [`DISK_HEADROOM`] bytes, so it does not run into `ENOSPC` itself.
pub const DISK_HEADROOM: u64 = RESERVE_BYTES / 4;
/// How long [`Buffer::health`] reports a drop.
pub const DEGRADED_AFTER_DROP: Duration = Duration::from_secs(600);

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
    /// The buffer file is damaged beyond what validation can drop record by record.
    #[error("buffer file {path} is damaged: {detail}")]
    Damaged {
        /// The database file.
        path: PathBuf,
        /// What was found.
        detail: String,
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

impl BufferError {
    /// Whether the error means the file's content is damaged (salvage it) rather than
    /// unreachable (disk, permissions, another process).
    pub fn is_damage(&self) -> bool {
        match self {
            BufferError::Damaged { .. } => true,
            BufferError::Open { source, .. } => {
                matches!(
                    source,
                    redb::DatabaseError::RepairAborted
                        | redb::DatabaseError::Storage(redb::StorageError::Corrupted(_))
                ) || matches!(source, redb::DatabaseError::Storage(redb::StorageError::Io(e))
                if e.kind() == std::io::ErrorKind::UnexpectedEof)
            }
            BufferError::Storage(e) => {
                matches!(e, redb::Error::Corrupted(_))
                    || matches!(e, redb::Error::Io(io) if io.kind() == std::io::ErrorKind::UnexpectedEof)
            }
            _ => false,
        }
    }
}

fn open_db(path: &Path) -> Result<Database, BufferError> {
    Database::create(path).map_err(|source| BufferError::Open {
        path: path.to_owned(),
        source,
    })
}

/// A new epoch: random, never 0 (0 stands for "before epochs"). Random rather than the
/// time: a gateway whose clock is wrong or reset (no RTC battery, no NTP yet) must still
/// never reuse an epoch, and 64 random bits do not collide in practice.
fn new_epoch() -> u64 {
    loop {
        let epoch = rand::random::<u64>();
        if epoch != 0 {
            return epoch;
        }
    }
}

/// Rewrites the records of a first-layout buffer (20-byte headers) with epoch 0 and a
/// checksum. A record that does not decode is left as it is (validation then fails and
/// the file is salvaged).
fn convert_v1(txn: &WriteTransaction) -> Result<(), redb::Error> {
    let mut table = txn.open_table(BATCHES)?;
    let mut rewritten = Vec::new();
    for entry in table.iter()? {
        let (key, value) = entry?;
        if let Some((header, block)) = RecordHeader::decode_v1(value.value()) {
            let seq = key.value();
            let header = RecordHeader {
                seq,
                first_pending: seq,
                ..header
            };
            rewritten.push((seq, header.encode(block)));
        }
    }
    for (seq, value) in &rewritten {
        table.insert(*seq, value.as_slice())?;
    }
    drop(table);
    let mut aside = txn.open_table(SET_ASIDE)?;
    let mut rewritten = Vec::new();
    for entry in aside.iter()? {
        let (key, value) = entry?;
        if let Some((reason, stored)) = split_set_aside(value.value())
            && let Some((header, block)) = RecordHeader::decode_v1(stored)
        {
            let seq = key.value();
            let header = RecordHeader {
                seq,
                first_pending: seq,
                ..header
            };
            let value = set_aside_value(reason.as_bytes(), &header.encode(block));
            rewritten.push((key.value(), value));
        }
    }
    for (seq, value) in &rewritten {
        aside.insert(*seq, value.as_slice())?;
    }
    Ok(())
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
    /// The buffer epoch that numbered the batch (sent as batch header key 6).
    pub epoch: u64,
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
    /// The buffer's epoch (see the module docs); 0 for a buffer created before epochs.
    pub epoch: u64,
    /// Of `dropped_batches`, those lost to damage (failed validation, salvage).
    pub damaged_batches: u64,
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
            epoch: self.epoch,
            dropped_batches: self.dropped_batches,
            dropped_samples: self.dropped_samples,
        }
    }
}

/// Fixed header stored in front of each frames block.
///
/// A record is self-delimiting and self-checking, so a damaged file can be salvaged by
/// scanning its bytes without trusting redb's structures (which may panic on a damaged
/// page): a magic number, the record's own seq, the block length and a CRC-32C over
/// everything. It also carries what the salvage needs when the `meta` table is gone: the
/// lowest seq still pending when it was appended (older copies found in the file are
/// stale: acked or dropped) and the drop totals of that moment.
#[derive(Debug, Clone, Copy, Default)]
struct RecordHeader {
    created_ms: i64,
    boot_id: u64,
    /// The buffer epoch that numbered the batch (kept per record: a salvaged buffer holds
    /// batches of the epoch before it).
    epoch: u64,
    seq: u64,
    /// The lowest seq pending when this record was appended (itself if none).
    first_pending: u64,
    dropped_batches: u64,
    dropped_samples: u64,
    samples: u32,
}

/// First bytes of every record: "WPB2".
const RECORD_MAGIC: [u8; 4] = *b"WPB2";

/// CRC-32C (Castagnoli) of a record: redb checks its pages only when it repairs a file, so
/// a flipped bit in a stored batch would otherwise reach the wire.
const RECORD_CRC: crc::Crc<u32, crc::Table<16>> =
    crc::Crc::<u32, crc::Table<16>>::new(&crc::CRC_32_ISCSI);

impl RecordHeader {
    /// Stand-in for a header that cannot be read (disk damage): counts no samples, belongs
    /// to no boot and is older than any age limit.
    const UNREADABLE: RecordHeader = RecordHeader {
        created_ms: i64::MIN,
        boot_id: 0,
        epoch: 0,
        seq: 0,
        first_pending: 0,
        dropped_batches: 0,
        dropped_samples: 0,
        samples: 0,
    };

    /// The header of a stored value, or [`Self::UNREADABLE`].
    fn of(value: &[u8]) -> RecordHeader {
        Self::decode(value).map_or(Self::UNREADABLE, |(header, _)| header)
    }

    /// `magic, created_ms, boot_id, epoch, seq, first_pending, dropped_batches,
    /// dropped_samples, samples, block_len, crc` (little endian), then the block; the CRC
    /// covers every byte before and after it.
    fn encode(&self, block: &[u8]) -> Vec<u8> {
        let mut value = Vec::with_capacity(RECORD_HEADER_LEN + block.len());
        value.extend_from_slice(&RECORD_MAGIC);
        value.extend_from_slice(&self.created_ms.to_le_bytes());
        for field in [
            self.boot_id,
            self.epoch,
            self.seq,
            self.first_pending,
            self.dropped_batches,
            self.dropped_samples,
        ] {
            value.extend_from_slice(&field.to_le_bytes());
        }
        value.extend_from_slice(&self.samples.to_le_bytes());
        value.extend_from_slice(&(block.len() as u32).to_le_bytes());
        let mut digest = RECORD_CRC.digest();
        digest.update(&value);
        digest.update(block);
        value.extend_from_slice(&digest.finalize().to_le_bytes());
        value.extend_from_slice(block);
        value
    }

    /// The header and block of a stored value, if its checksum holds and its sample count
    /// is possible for its size (every sample takes at least one byte of the block). The
    /// frames themselves are checked by [`to_record`].
    fn decode(value: &[u8]) -> Option<(RecordHeader, &[u8])> {
        let (header, len) = Self::decode_prefix(value)?;
        (len == value.len()).then_some((header, &value[RECORD_HEADER_LEN..]))
    }

    /// The header of the record at the start of `bytes` and the record's whole length, if
    /// `bytes` starts with an intact record (it may go on after it).
    fn decode_prefix(bytes: &[u8]) -> Option<(RecordHeader, usize)> {
        let fields = bytes.get(..RECORD_HEADER_LEN)?;
        if fields[..4] != RECORD_MAGIC {
            return None;
        }
        let u64_at = |at: usize| u64::from_le_bytes(fields[at..at + 8].try_into().expect("8"));
        let u32_at = |at: usize| u32::from_le_bytes(fields[at..at + 4].try_into().expect("4"));
        let (samples, block_len, crc) = (u32_at(60), u32_at(64) as usize, u32_at(68));
        let block = bytes.get(RECORD_HEADER_LEN..RECORD_HEADER_LEN.checked_add(block_len)?)?;
        let mut digest = RECORD_CRC.digest();
        digest.update(&fields[..68]);
        digest.update(block);
        if digest.finalize() != crc || samples as usize > block_len {
            return None;
        }
        let header = RecordHeader {
            created_ms: u64_at(4) as i64,
            boot_id: u64_at(12),
            epoch: u64_at(20),
            seq: u64_at(28),
            first_pending: u64_at(36),
            dropped_batches: u64_at(44),
            dropped_samples: u64_at(52),
            samples,
        };
        Some((header, RECORD_HEADER_LEN + block_len))
    }

    /// A record of the first layout (no epoch, no checksum: 20 bytes), as buffers written
    /// before epochs hold them; its sample count is checked against the block's frames.
    fn decode_v1(value: &[u8]) -> Option<(RecordHeader, &[u8])> {
        let (header, block) = value.split_at_checked(RECORD_HEADER_V1_LEN)?;
        let header = RecordHeader {
            created_ms: i64::from_le_bytes(header[0..8].try_into().ok()?),
            boot_id: u64::from_le_bytes(header[8..16].try_into().ok()?),
            samples: u32::from_le_bytes(header[16..20].try_into().ok()?),
            ..RecordHeader::default()
        };
        let frames = wire::FramesBlock::from_bytes(block.to_vec()).ok()?;
        (frames.sample_count() == header.samples).then_some((header, block))
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
    /// The disk filled up: the buffer was capped below `max_bytes`.
    DiskFull,
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
    by_disk: Drops,
    set_aside: Drops,
}

impl LimitDrops {
    /// Logs the drops; `total` is the buffer's drop count after them. A full disk drops a
    /// batch at nearly every append: those are logged when the total passes a power of two.
    fn log(&self, total: u64) {
        self.set_aside.log(DropReason::SetAside);
        self.by_age.log(DropReason::MaxAge);
        self.by_bytes.log(DropReason::MaxBytes);
        let before = total.saturating_sub(self.by_disk.batches);
        if (before + 1)
            .checked_next_power_of_two()
            .is_some_and(|p| p <= total)
        {
            self.by_disk.log(DropReason::DiskFull);
        }
    }
}

/// Disk pressure bookkeeping (in memory; see the module docs).
#[derive(Debug, Default)]
struct Pressure {
    /// A byte cap below `max_bytes`, set when the disk filled up; lifted once the reserve
    /// file could be written again.
    cap: Option<u64>,
    /// When to try to write the reserve file again.
    retry_at: Option<Instant>,
    /// The last write failed (cleared by the next one that commits).
    failing: bool,
    /// When a deliverable batch was last dropped or lost.
    last_drop: Option<Instant>,
    /// The room on disk when the cap was last set from it.
    room_at_cap: Option<u64>,
}

/// The durable batch queue. Share it with `Arc<Buffer>`.
#[derive(Debug)]
pub struct Buffer {
    path: PathBuf,
    /// `None` only between closing a failed handle and opening the file again.
    db: RwLock<Option<Database>>,
    limits: BufferLimits,
    /// Serialises writers; holds the state that matches the last commit.
    writer: Mutex<State>,
    /// Copy of the stats for readers that must not wait for an fsync.
    stats: Mutex<BufferStats>,
    pressure: Mutex<Pressure>,
    appended: Arc<Notify>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave the state half-updated (it is replaced
    // as a whole after commit), so a poisoned lock is safe to reuse.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Whether an error is the file system running out of space (or quota).
fn is_disk_full(e: &redb::Error) -> bool {
    match e {
        redb::Error::Io(io) => {
            io.kind() == std::io::ErrorKind::StorageFull
                || matches!(io.raw_os_error(), Some(28 | 122)) // ENOSPC, EDQUOT
        }
        _ => false,
    }
}

/// Whether an error leaves the redb handle unusable until the file is opened again: after
/// any I/O failure redb answers every call with `PreviousIo`.
fn needs_reopen(e: &redb::Error) -> bool {
    matches!(
        e,
        redb::Error::Io(_) | redb::Error::PreviousIo | redb::Error::DatabaseClosed
    )
}

fn closed() -> BufferError {
    BufferError::Storage(redb::Error::DatabaseClosed)
}

/// The two reserve files next to a buffer file (`<name>.reserve.0` and `.1`), each half of
/// [`RESERVE_BYTES`]. A full disk gives up one at a time: if the disk stays full, the
/// other is still there for the next start.
pub fn reserve_paths(path: &Path) -> [PathBuf; 2] {
    [0, 1].map(|i| {
        let mut name = path.file_name().unwrap_or_default().to_os_string();
        name.push(format!(".reserve.{i}"));
        path.with_file_name(name)
    })
}

/// Writes the reserve files (real blocks, not sparse files) that are not whole.
fn create_reserve(path: &Path) -> std::io::Result<()> {
    for reserve in reserve_paths(path) {
        if std::fs::metadata(&reserve).is_ok_and(|m| m.len() == RESERVE_BYTES / 2) {
            continue;
        }
        let written = (|| {
            use std::io::Write as _;
            let mut file = std::fs::File::create(&reserve)?;
            let chunk = vec![0u8; 64 * 1024];
            for _ in 0..RESERVE_BYTES / 2 / chunk.len() as u64 {
                file.write_all(&chunk)?;
            }
            file.sync_all()
        })();
        if let Err(e) = written {
            let _ = std::fs::remove_file(&reserve);
            return Err(e);
        }
    }
    Ok(())
}

/// Bytes an unprivileged process may still write on the file system holding `path`.
#[cfg(unix)]
fn disk_room(path: &Path) -> Option<u64> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty())?;
    let fs = rustix::fs::statvfs(dir).ok()?;
    Some(fs.f_bavail.saturating_mul(fs.f_frsize))
}

#[cfg(not(unix))]
fn disk_room(_path: &Path) -> Option<u64> {
    None
}

/// Deletes one reserve file; whether there was one.
fn release_reserve(path: &Path) -> bool {
    reserve_paths(path)
        .iter()
        .rev()
        .any(|reserve| std::fs::remove_file(reserve).is_ok())
}

impl Buffer {
    /// Opens (or creates) the buffer at `path` and rebuilds the in-memory statistics.
    ///
    /// Safe after a crash: redb recovers to the last committed transaction. A missing or
    /// empty file starts a new epoch. A damaged file (redb cannot open it, or a record or
    /// the bookkeeping fails validation) is salvaged ([`Buffer::salvage`]): the intact
    /// batches are kept in a new file with a new epoch, the rest is counted as lost, and
    /// the damaged file is kept aside. On a full disk the reserve file is given up so the
    /// buffer can still open.
    pub fn open(path: &Path, limits: BufferLimits) -> Result<Buffer, BufferError> {
        match Self::open_intact(path, limits) {
            Err(e) if e.is_damage() => {
                error!(
                    error = %e,
                    path = %path.display(),
                    "buffer file is damaged; salvaging its intact batches into a new epoch"
                );
                Self::salvage(path, limits).map(|(buffer, _)| buffer)
            }
            other => other,
        }
    }

    /// Opens the buffer, failing on damage instead of salvaging it.
    pub fn open_intact(path: &Path, limits: BufferLimits) -> Result<Buffer, BufferError> {
        if limits.max_bytes == 0 || limits.max_age.is_zero() {
            return Err(BufferError::InvalidLimits);
        }
        let mut pressure = Pressure::default();
        if let Err(e) = create_reserve(path) {
            warn!(error = %e, "cannot write the buffer's disk reserve; buffering under disk pressure");
            pressure.cap = Some(limits.max_bytes);
            pressure.retry_at = Some(Instant::now() + RESERVE_RETRY);
        }
        let db = match open_db(path) {
            Err(BufferError::Open {
                source: redb::DatabaseError::Storage(redb::StorageError::Io(e)),
                ..
            }) if is_disk_full(&redb::Error::Io(std::io::Error::from(e.kind())))
                || e.raw_os_error() == Some(28) =>
            {
                release_reserve(path);
                pressure.cap = Some(limits.max_bytes);
                open_db(path)?
            }
            other => other?,
        };
        let buffer = Buffer {
            path: path.to_owned(),
            db: RwLock::new(Some(db)),
            limits,
            writer: Mutex::new(State::default()),
            stats: Mutex::new(BufferStats::default()),
            pressure: Mutex::new(pressure),
            appended: Arc::new(Notify::new()),
        };
        // Opening commits (tables, meta): on a full disk give up reserve halves for it.
        let mut attempts = 0;
        loop {
            match buffer.recover() {
                Err(BufferError::Storage(e)) if is_disk_full(&e) && attempts < 2 => {
                    attempts += 1;
                    buffer.under_pressure();
                    let mut db = buffer.db.write().unwrap_or_else(|p| p.into_inner());
                    drop(db.take());
                    *db = Some(open_db(path)?);
                }
                other => break other?,
            }
        }
        let mut pressure = lock(&buffer.pressure);
        if pressure.cap.is_some() {
            // The disk is full already: keep to the room the file has now (plus what the
            // drops free in it) rather than count on growing it.
            let stored = lock(&buffer.writer).stored_bytes();
            pressure.cap = Some(if stored > 0 {
                stored - stored / 8
            } else {
                limits.max_bytes
            });
        }
        drop(pressure);
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
            ..RecordHeader::default()
        };
        let bytes = (RECORD_HEADER_LEN + block.as_bytes().len()) as u64;
        if bytes > self.limits.max_bytes {
            return Err(self.refuse_oversized(&header, bytes));
        }
        let (seq, drops) = self.write(|txn, state| {
            let seq = state.stats.next_seq;
            let mut table = txn.open_table(BATCHES)?;
            let header = RecordHeader {
                epoch: state.stats.epoch,
                seq,
                first_pending: table.first()?.map_or(seq, |(k, _)| k.value()),
                dropped_batches: state.stats.dropped_batches,
                dropped_samples: state.stats.dropped_samples,
                ..header
            };
            table.insert(seq, header.encode(block.as_bytes()).as_slice())?;
            drop(table);
            state.add(&header, bytes);
            state.stats.next_seq = seq + 1;
            txn.open_table(META)?
                .insert(NEXT_SEQ, state.stats.next_seq)?;
            let drops = self.enforce_limits(txn, state, created_ms)?;
            Ok((seq, drops))
        })?;
        drops.log(self.stats().dropped_batches);
        self.appended.notify_one();
        Ok(seq)
    }

    /// Durably adds batches lost before they reached the buffer (the batcher could not
    /// append them) to the drop counters.
    pub fn count_lost(&self, batches: u64, samples: u64) -> Result<(), BufferError> {
        let drops = Drops {
            batches,
            samples,
            ..Drops::default()
        };
        self.write(|txn, state| self.count_drops(txn, state, &drops))
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
        let txn = self.begin_read()?;
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
        let txn = self.begin_read()?;
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
        let txn = self.begin_read()?;
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
        let txn = self.begin_read()?;
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
    ///
    /// An I/O failure makes redb refuse every later call, so the handle is closed and the
    /// file opened again (redb recovers to the last commit) and `f` runs once more; when
    /// the disk is full, the reserve file is given up first and the oldest batches are
    /// dropped (and counted) under a lower cap, so the retry and later writes fit.
    fn write<T>(
        &self,
        f: impl Fn(&WriteTransaction, &mut State) -> Result<T, redb::Error>,
    ) -> Result<T, BufferError> {
        let mut guard = lock(&self.writer);
        let first = self.try_write(&mut guard, &f);
        let e = match first {
            Ok(out) => {
                self.wrote(&guard);
                return Ok(out);
            }
            Err(BufferError::Storage(e)) if needs_reopen(&e) => e,
            Err(e) => return Err(e),
        };
        let mut e = e;
        // Each round on a full disk lowers the cap by a quarter: a few rounds always make
        // room, since the pages the drops free inside the file are reused.
        for _ in 0..3 {
            let full = is_disk_full(&e);
            warn!(error = %e, disk_full = full, "buffer write failed; reopening the buffer file");
            lock(&self.pressure).failing = true;
            if full {
                self.under_pressure();
            }
            let retried = self.reopen(&mut guard).and_then(|()| {
                if full {
                    self.relieve(&mut guard)?;
                }
                self.try_write(&mut guard, &f)
            });
            match retried {
                Ok(out) => {
                    self.wrote(&guard);
                    return Ok(out);
                }
                Err(BufferError::Storage(next)) if is_disk_full(&next) => e = next,
                Err(other) => {
                    error!(error = %other, "buffer write failed again after reopening");
                    return Err(other);
                }
            }
        }
        error!(error = %e, "buffer write failed again after reopening");
        Err(BufferError::Storage(e))
    }

    fn try_write<T>(
        &self,
        guard: &mut State,
        f: &impl Fn(&WriteTransaction, &mut State) -> Result<T, redb::Error>,
    ) -> Result<T, BufferError> {
        let db = self.db.read().unwrap_or_else(|p| p.into_inner());
        let db = db.as_ref().ok_or_else(closed)?;
        let mut state = guard.clone();
        let mut txn = db.begin_write().map_err(storage)?;
        txn.set_durability(Durability::Immediate).map_err(storage)?;
        let out = f(&txn, &mut state)?;
        txn.commit().map_err(storage)?;
        let dropped = state.stats.dropped_batches > guard.stats.dropped_batches;
        *lock(&self.stats) = BufferStats { ..state.stats };
        *guard = state;
        if dropped {
            lock(&self.pressure).last_drop = Some(Instant::now());
        }
        Ok(out)
    }

    /// After a successful commit: clears the failure flag and, under disk pressure, tries
    /// now and then to write the missing reserve again (space came back: the cap is
    /// lifted, unless the disk room says otherwise at the next append).
    fn wrote(&self, state: &State) {
        let mut pressure = lock(&self.pressure);
        pressure.failing = false;
        if pressure.cap.is_none() || pressure.retry_at.is_some_and(|at| Instant::now() < at) {
            return;
        }
        pressure.retry_at = Some(Instant::now() + RESERVE_RETRY);
        let missing = reserve_paths(&self.path).iter().any(|r| !r.exists());
        let room_ok = disk_room(&self.path).is_none_or(|room| room > 2 * DISK_HEADROOM);
        if missing && (!room_ok || create_reserve(&self.path).is_err()) {
            return;
        }
        if room_ok {
            pressure.cap = None;
            pressure.room_at_cap = None;
            info!(
                pending_bytes = state.stats.pending_bytes,
                "disk space is back: buffer reserve whole, size limit lifted"
            );
        }
    }

    /// The disk is full: gives up the reserve so deletions and drops can commit.
    fn under_pressure(&self) {
        let released = release_reserve(&self.path);
        let mut pressure = lock(&self.pressure);
        pressure.retry_at = Some(Instant::now() + RESERVE_RETRY);
        if pressure.cap.is_none() {
            pressure.cap = Some(self.limits.max_bytes);
        }
        warn!(
            reserve_released = released,
            "disk full: buffer reserve released; the oldest batches will be dropped to make room"
        );
    }

    /// Lowers the cap below what is stored now and drops the oldest batches to it.
    fn relieve(&self, guard: &mut State) -> Result<(), BufferError> {
        let stored = guard.stored_bytes();
        {
            let mut pressure = lock(&self.pressure);
            let cap = pressure.cap.unwrap_or(self.limits.max_bytes);
            pressure.cap = Some(cap.min(stored - stored / 4));
        }
        let drops = self.try_write(guard, &|txn, state| {
            self.enforce_limits(txn, state, i64::MIN)
        })?;
        drops.log(guard.stats.dropped_batches);
        // redb reuses the pages a transaction freed only once later commits made that
        // durable: two empty commits (they rewrite the header in place and grow nothing)
        // make the room the drops freed usable by the retried write.
        for _ in 0..2 {
            self.try_write(guard, &|_, _| Ok(()))?;
        }
        Ok(())
    }

    /// Closes the handle and opens the file again, then rebuilds the state from it.
    fn reopen(&self, guard: &mut State) -> Result<(), BufferError> {
        {
            let mut db = self.db.write().unwrap_or_else(|p| p.into_inner());
            drop(db.take());
            *db = Some(open_db(&self.path)?);
        }
        let mut state = State::default();
        let damaged = self.recover_into(&mut state)?;
        *lock(&self.stats) = state.stats;
        *guard = state;
        info!("buffer file reopened");
        damaged.log(DropReason::Damaged);
        Ok(())
    }

    fn begin_read(&self) -> Result<redb::ReadTransaction, BufferError> {
        let db = self.db.read().unwrap_or_else(|p| p.into_inner());
        db.as_ref()
            .ok_or_else(closed)?
            .begin_read()
            .map_err(storage)
    }

    /// The effective byte limit for `stored` bytes: `max_bytes`, or a cap while the disk
    /// is (nearly) full. The file system's free room is checked at each append: below
    /// [`DISK_HEADROOM`] the buffer caps itself at what it stores less an eighth (so its
    /// file, whose freed pages redb reuses, stops growing), and tightens again only if the
    /// room keeps shrinking; the cap is lifted once the room is back above twice the
    /// headroom and the reserve is whole.
    fn max_bytes_now(&self, stored: u64) -> u64 {
        let mut pressure = lock(&self.pressure);
        if let Some(room) = disk_room(&self.path) {
            let tighten = match (pressure.cap, pressure.room_at_cap) {
                (None, _) => room < DISK_HEADROOM,
                (Some(_), Some(at)) => room < DISK_HEADROOM && room + DISK_HEADROOM / 4 < at,
                (Some(_), None) => false,
            };
            if tighten {
                let cap = stored - stored / 8;
                pressure.cap = Some(pressure.cap.map_or(cap, |c| c.min(cap)));
                pressure.room_at_cap = Some(room);
            } else if pressure.cap.is_some()
                && room > 2 * DISK_HEADROOM
                && reserve_paths(&self.path).iter().all(|r| r.exists())
            {
                pressure.cap = None;
                pressure.room_at_cap = None;
                info!(room, "disk space is back: buffer size limit lifted");
            }
        }
        pressure
            .cap
            .map_or(self.limits.max_bytes, |cap| cap.min(self.limits.max_bytes))
    }

    /// Why the buffer is not healthy, if it is not: the disk is full, writes are failing, or
    /// batches were dropped within the last [`DEGRADED_AFTER_DROP`].
    pub fn health(&self) -> Vec<String> {
        let pressure = lock(&self.pressure);
        let stats = self.stats();
        let mut reasons = Vec::new();
        if pressure.failing {
            reasons.push("buffer writes are failing".to_string());
        }
        if let Some(cap) = pressure.cap {
            reasons.push(format!(
                "disk full: buffer capped at {} bytes (max_bytes {}), oldest batches dropped",
                cap.min(self.limits.max_bytes),
                self.limits.max_bytes
            ));
        }
        if pressure
            .last_drop
            .is_some_and(|at| at.elapsed() < DEGRADED_AFTER_DROP)
        {
            reasons.push(format!(
                "buffer dropped batches in the last {}s ({} batches, {} samples since it was created)",
                DEGRADED_AFTER_DROP.as_secs(),
                stats.dropped_batches,
                stats.dropped_samples
            ));
        }
        reasons
    }

    /// Creates the tables if needed, then rebuilds the in-memory state from disk.
    fn recover(&self) -> Result<(), BufferError> {
        let mut guard = lock(&self.writer);
        let mut state = State::default();
        let damaged = self.recover_into(&mut state)?;
        *lock(&self.stats) = state.stats;
        *guard = state;
        damaged.log(DropReason::Damaged);
        Ok(())
    }

    /// Rebuilds `state` from disk in one write transaction (tables created, a first-layout
    /// buffer converted, the epoch chosen for a new file). A record or a set-aside entry
    /// that fails validation is damage: the caller salvages the file.
    fn recover_into(&self, state: &mut State) -> Result<Drops, BufferError> {
        let fresh = self.try_write(state, &|txn, state| {
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
            fresh.stats.damaged_batches = get(DAMAGED_BATCHES)?.unwrap_or(0);
            let stored_next = get(NEXT_SEQ)?;
            let format = get(FORMAT)?;
            let epoch = get(EPOCH)?;
            drop(meta);
            if format.is_none() && stored_next.is_some() {
                convert_v1(txn)?;
            }
            let (epoch, new_epoch) = match (epoch, stored_next) {
                (Some(epoch), _) => (epoch, false),
                // A buffer written before epochs: its seqs were sent without one (epoch 0).
                (None, Some(_)) => (0, false),
                (None, None) => (new_epoch(), true),
            };
            fresh.stats.epoch = epoch;
            let mut meta = txn.open_table(META)?;
            meta.insert(EPOCH, epoch)?;
            meta.insert(FORMAT, FORMAT_V2)?;
            drop(meta);
            let mut damaged = 0u64;
            let table = txn.open_table(BATCHES)?;
            for entry in table.iter()? {
                let (_, value) = entry?;
                match RecordHeader::decode(value.value()) {
                    Some((header, _)) => fresh.add(&header, value.value().len() as u64),
                    None => damaged += 1,
                }
            }
            let last = table.last()?.map(|(k, _)| k.value());
            drop(table);
            for entry in txn.open_table(SET_ASIDE)?.iter()? {
                let (_, value) = entry?;
                let value = value.value();
                match split_set_aside(value).and_then(|(_, stored)| RecordHeader::decode(stored)) {
                    Some((header, _)) => fresh.add_set_aside(&header, value.len() as u64),
                    None => damaged += 1,
                }
            }
            if damaged > 0 {
                return Err(redb::Error::Corrupted(format!(
                    "{damaged} buffered records fail validation"
                )));
            }
            // `next_seq` is bumped with every insert; taking the max also covers a
            // database written before the meta table existed.
            fresh.stats.next_seq = stored_next.unwrap_or(1).max(last.map_or(1, |seq| seq + 1));
            txn.open_table(META)?
                .insert(NEXT_SEQ, fresh.stats.next_seq)?;
            txn.open_table(BIRTHS)?;
            txn.open_table(COMMANDS)?;
            *state = fresh;
            self.after_removal(txn, state)?;
            Ok(new_epoch)
        })?;
        if fresh {
            info!(
                epoch = format_args!("{:016x}", state.stats.epoch),
                path = %self.path.display(),
                "new buffer: a new epoch starts (seqs from 1)"
            );
        }
        Ok(Drops::default())
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
        let max_bytes = self.max_bytes_now(state.stored_bytes());
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
                if header.created_ms >= cutoff && state.stored_bytes() <= max_bytes {
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
            } else if state.stored_bytes() > max_bytes {
                &mut drops.by_disk
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
        self.count_drops(txn, state, &drops.by_disk)?;
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
        let txn = self.begin_read()?;
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
            state.stats.damaged_batches += drops.batches;
            txn.open_table(META)?
                .insert(DAMAGED_BATCHES, state.stats.damaged_batches)?;
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

/// What [`Buffer::salvage`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SalvageReport {
    /// Where the damaged file was moved (kept for inspection); `None` when there was none.
    pub kept_aside: Option<PathBuf>,
    /// Queued batches kept (intact), and their samples.
    pub batches_kept: u64,
    /// Samples in the kept batches.
    pub samples_kept: u64,
    /// Queued batches lost (damaged or unreachable), counted as dropped.
    pub batches_lost: u64,
    /// Samples of the lost batches: an estimate (lost batches × the kept batches' mean),
    /// since a damaged header is not trusted.
    pub samples_lost: u64,
    /// The new buffer's epoch.
    pub epoch: u64,
    /// The seq the new buffer gives next.
    pub next_seq: u64,
}

/// What could be read from a damaged buffer file.
#[derive(Debug, Default)]
struct Salvaged {
    /// Intact records, by seq (one copy each).
    records: BTreeMap<u64, Vec<u8>>,
    samples_kept: u64,
    lost_batches: u64,
    /// The newest intact record: its drop totals and first pending seq.
    newest: Option<RecordHeader>,
}

impl Salvaged {
    /// Finds the intact records in the bytes of a damaged file without redb: a record
    /// starts with [`RECORD_MAGIC`] and checks itself (length, CRC, seq, frames). redb is
    /// copy-on-write, so a file also holds stale copies of batches already acked or
    /// dropped: a record whose seq is below the newest record's `first_pending` is one and
    /// is left out (re-sending one anyway would be harmless: the cloud keeps
    /// `(gateway, epoch, seq)` once). Seqs missing between the lowest and the highest kept
    /// record are counted as lost; batches of the damaged part above the highest cannot be
    /// known.
    fn scan(bytes: &[u8]) -> Salvaged {
        let mut out = Salvaged::default();
        let mut found: BTreeMap<u64, (RecordHeader, Vec<u8>)> = BTreeMap::new();
        let mut at = 0;
        while let Some(pos) = find(&bytes[at..], &RECORD_MAGIC) {
            let start = at + pos;
            match RecordHeader::decode_prefix(&bytes[start..]) {
                Some((header, len)) => {
                    let value = &bytes[start..start + len];
                    if to_record(header.seq, value).is_some() {
                        found
                            .entry(header.seq)
                            .or_insert_with(|| (header, value.to_vec()));
                    }
                    at = start + len;
                }
                None => at = start + 1,
            }
        }
        let Some(newest) = found.values().map(|(h, _)| *h).max_by_key(|h| h.seq) else {
            return out;
        };
        out.newest = Some(newest);
        // Records of another epoch than the newest one's are kept too (a salvaged buffer
        // carries them), as long as they were pending: `first_pending` is per buffer.
        found.retain(|&seq, _| seq >= newest.first_pending);
        if let (Some(&lo), Some(&hi)) = (found.keys().next(), found.keys().next_back()) {
            out.lost_batches = (hi - lo + 1) - found.len() as u64;
        }
        for (seq, (header, value)) in found {
            out.samples_kept += u64::from(header.samples);
            out.records.insert(seq, value);
        }
        out
    }
}

/// Where `needle` first occurs in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Where a damaged buffer file is moved: `<name>.damaged-<UTC ms>`.
fn aside_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".damaged-{}", crate::clock::now_ms()));
    path.with_file_name(name)
}

fn io_error(path: &Path, e: std::io::Error) -> BufferError {
    BufferError::Open {
        path: path.to_owned(),
        source: redb::DatabaseError::Storage(redb::StorageError::Io(e)),
    }
}

impl Buffer {
    /// Salvages the buffer at `path`: the file is moved aside (kept, never deleted), a new
    /// buffer with a new epoch is created in its place, and every batch, birth and
    /// executed-command record that can still be read and passes validation is copied
    /// into it in one durable transaction. The seq counter continues above every seq seen;
    /// the batches that could not be kept are counted as dropped (and as damaged), so
    /// they are reported like any other loss. Kept batches keep their own epoch.
    pub fn salvage(
        path: &Path,
        limits: BufferLimits,
    ) -> Result<(Buffer, SalvageReport), BufferError> {
        let mut report = SalvageReport::default();
        let mut old = Salvaged::default();
        if std::fs::metadata(path).is_ok_and(|m| m.len() > 0) {
            let aside = aside_path(path);
            std::fs::rename(path, &aside).map_err(|e| io_error(path, e))?;
            let bytes = std::fs::read(&aside).map_err(|e| io_error(&aside, e))?;
            old = Salvaged::scan(&bytes);
            report.kept_aside = Some(aside);
        }
        let buffer = Buffer::open_intact(path, limits)?;
        let newest = old.newest.unwrap_or_default();
        let next_seq = old
            .records
            .keys()
            .next_back()
            .map_or(1, |seq| seq.saturating_add(1));
        let lost_samples = old.lost_batches.saturating_mul(
            old.samples_kept
                .checked_div(old.records.len() as u64)
                .unwrap_or(0),
        );
        buffer.write(|txn, _| {
            let mut batches = txn.open_table(BATCHES)?;
            for (seq, value) in &old.records {
                batches.insert(*seq, value.as_slice())?;
            }
            drop(batches);
            let mut m = txn.open_table(META)?;
            m.insert(NEXT_SEQ, next_seq)?;
            m.insert(DROPPED_BATCHES, newest.dropped_batches + old.lost_batches)?;
            m.insert(DROPPED_SAMPLES, newest.dropped_samples + lost_samples)?;
            m.insert(DAMAGED_BATCHES, old.lost_batches)?;
            Ok(())
        })?;
        buffer.recover()?;
        if old.lost_batches > 0 {
            lock(&buffer.pressure).last_drop = Some(Instant::now());
        }
        let stats = buffer.stats();
        report.batches_kept = old.records.len() as u64;
        report.samples_kept = old.samples_kept;
        report.batches_lost = old.lost_batches;
        report.samples_lost = lost_samples;
        report.epoch = stats.epoch;
        report.next_seq = stats.next_seq;
        warn!(
            kept_aside = %report.kept_aside.as_deref().map_or("-".into(), |p| p.display().to_string()),
            batches_kept = report.batches_kept,
            batches_lost = report.batches_lost,
            samples_lost = report.samples_lost,
            epoch = format_args!("{:016x}", report.epoch),
            next_seq = report.next_seq,
            "buffer salvaged: intact batches kept in a new epoch, the rest counted as dropped"
        );
        Ok((buffer, report))
    }

    /// Checks the buffer file at `path` without changing it: opens it read-only and
    /// validates every record. `Ok` with the figures when it is intact, `Err` naming the
    /// damage otherwise. redb refuses to open a file another process holds, so this cannot
    /// run beside a running agent.
    pub fn check(path: &Path) -> Result<CheckReport, BufferError> {
        let open_error = |source| BufferError::Open {
            path: path.to_owned(),
            source,
        };
        let damaged = |detail: String| BufferError::Damaged {
            path: path.to_owned(),
            detail,
        };
        let db = redb::ReadOnlyDatabase::open(path).map_err(open_error)?;
        let txn = db.begin_read().map_err(storage)?;
        let mut report = CheckReport::default();
        let meta = txn.open_table(META).map_err(storage)?;
        let get = |name: &str| -> Result<u64, BufferError> {
            Ok(meta.get(name).map_err(storage)?.map_or(0, |v| v.value()))
        };
        report.epoch = get(EPOCH)?;
        report.next_seq = get(NEXT_SEQ)?;
        report.dropped_batches = get(DROPPED_BATCHES)?;
        report.dropped_samples = get(DROPPED_SAMPLES)?;
        report.damaged_batches = get(DAMAGED_BATCHES)?;
        if get(FORMAT)? != FORMAT_V2 {
            return Err(damaged(
                "first record layout (before epochs): start the agent once to convert it".into(),
            ));
        }
        let mut bad = 0u64;
        for entry in txn
            .open_table(BATCHES)
            .map_err(storage)?
            .iter()
            .map_err(storage)?
        {
            let (seq, value) = entry.map_err(storage)?;
            match to_record(seq.value(), value.value()) {
                Some(record) => {
                    report.pending_batches += 1;
                    report.pending_samples += u64::from(record.samples);
                }
                None => bad += 1,
            }
        }
        match txn.open_table(SET_ASIDE) {
            Ok(table) => {
                for entry in table.iter().map_err(storage)? {
                    let (seq, value) = entry.map_err(storage)?;
                    match split_set_aside(value.value())
                        .and_then(|(_, v)| to_record(seq.value(), v))
                    {
                        Some(_) => report.set_aside_batches += 1,
                        None => bad += 1,
                    }
                }
            }
            Err(redb::TableError::TableDoesNotExist(_)) => {}
            Err(e) => return Err(storage(e)),
        }
        if bad > 0 {
            return Err(damaged(format!("{bad} records fail validation")));
        }
        Ok(report)
    }
}

/// What [`Buffer::check`] found in an intact buffer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CheckReport {
    /// The buffer epoch.
    pub epoch: u64,
    /// The seq the next batch gets.
    pub next_seq: u64,
    /// Queued batches.
    pub pending_batches: u64,
    /// Samples in them.
    pub pending_samples: u64,
    /// Set-aside batches.
    pub set_aside_batches: u64,
    /// Batches dropped since the buffer was created.
    pub dropped_batches: u64,
    /// Samples in them.
    pub dropped_samples: u64,
    /// Of the dropped batches, those lost to damage.
    pub damaged_batches: u64,
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
    if header.seq != seq {
        return None;
    }
    let block = wire::FramesBlock::from_bytes(block.to_vec()).ok()?;
    (block.sample_count() == header.samples).then_some(Record {
        seq,
        created_ms: header.created_ms,
        boot_id: header.boot_id,
        epoch: header.epoch,
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
            epoch: 0xfeed,
            seq: 12,
            first_pending: 10,
            dropped_batches: 4,
            dropped_samples: 40,
            samples: 3,
        };
        let value = header.encode(b"abcdefg");
        let (back, rest) = RecordHeader::decode(&value).expect("valid header");
        assert_eq!(
            (back.created_ms, back.boot_id, back.epoch, back.samples),
            (-5, u64::MAX, 0xfeed, 3)
        );
        assert_eq!(
            (
                back.seq,
                back.first_pending,
                back.dropped_batches,
                back.dropped_samples
            ),
            (12, 10, 4, 40)
        );
        assert_eq!(rest, b"abcdefg");
        assert!(RecordHeader::decode(&value[..RECORD_HEADER_LEN - 1]).is_none());
        assert_eq!(RecordHeader::of(b"short").created_ms, i64::MIN);
    }

    #[test]
    fn corrupted_headers_never_yield_counts() {
        let header = RecordHeader {
            created_ms: 1_700_000_000_000,
            boot_id: 7,
            epoch: 9,
            seq: 3,
            samples: 4,
            ..RecordHeader::default()
        };
        let value = header.encode(block(4).as_bytes());
        // Every single flipped bit, in the header or the block, fails the checksum.
        for byte in 0..value.len() {
            for bit in 0..8 {
                let mut flipped = value.clone();
                flipped[byte] ^= 1 << bit;
                assert!(
                    RecordHeader::decode(&flipped).is_none(),
                    "bit {bit} of byte {byte} went unnoticed"
                );
                assert_eq!(RecordHeader::of(&flipped).samples, 0);
            }
        }
        // A count larger than the block could hold is refused even with a valid checksum
        // (as from a bug that wrote it): 2,779,096,487 samples in 30 bytes.
        let absurd = RecordHeader {
            samples: 2_779_096_487,
            ..header
        }
        .encode(&[0; 30]);
        assert!(RecordHeader::decode(&absurd).is_none());
        // A truncated record fails too.
        assert!(RecordHeader::decode(&value[..value.len() - 1]).is_none());
    }

    #[test]
    fn a_new_buffer_starts_a_new_epoch_and_keeps_it_across_restarts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("b.redb");
        let buffer = Buffer::open(&path, limits()).expect("open");
        let epoch = buffer.stats().epoch;
        assert_ne!(epoch, 0);
        let seq = buffer.append(1_000, 1, &block(2)).expect("append");
        assert_eq!(seq, 1);
        let record = buffer.get(seq).expect("get").expect("kept");
        assert_eq!(record.epoch, epoch);
        assert_eq!(buffer.stats().birth_status().epoch, epoch);
        drop(buffer);
        let buffer = Buffer::open(&path, limits()).expect("reopen");
        assert_eq!(buffer.stats().epoch, epoch, "same file, same epoch");
        drop(buffer);
        // A deleted file and an empty file are new buffers: new epochs.
        std::fs::remove_file(&path).expect("delete");
        let buffer = Buffer::open(&path, limits()).expect("recreate");
        let second = buffer.stats().epoch;
        assert_ne!(second, epoch);
        assert_eq!(buffer.stats().next_seq, 1);
        drop(buffer);
        std::fs::write(&path, b"").expect("truncate to 0 bytes");
        let buffer = Buffer::open(&path, limits()).expect("empty file");
        assert!(![0, epoch, second].contains(&buffer.stats().epoch));
        for reserve in reserve_paths(&path) {
            assert_eq!(
                std::fs::metadata(reserve)
                    .expect("the disk reserve is written")
                    .len(),
                RESERVE_BYTES / 2
            );
        }
    }

    /// A buffer written before epochs (20-byte record headers, no `format`/`epoch` in
    /// meta) keeps its seqs as epoch 0 and its records are converted.
    #[test]
    fn a_buffer_from_before_epochs_keeps_epoch_0() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("b.redb");
        {
            let db = Database::create(&path).expect("create");
            let txn = db.begin_write().expect("txn");
            {
                let mut batches = txn.open_table(BATCHES).expect("table");
                let mut value = Vec::new();
                value.extend_from_slice(&1_000i64.to_le_bytes());
                value.extend_from_slice(&5u64.to_le_bytes());
                value.extend_from_slice(&3u32.to_le_bytes());
                value.extend_from_slice(block(3).as_bytes());
                batches.insert(41, value.as_slice()).expect("insert");
                let mut meta = txn.open_table(META).expect("meta");
                meta.insert(NEXT_SEQ, 42).expect("next");
                meta.insert(DROPPED_BATCHES, 2).expect("dropped");
            }
            txn.commit().expect("commit");
        }
        let buffer = Buffer::open(&path, limits()).expect("open");
        let stats = buffer.stats();
        assert_eq!(
            (stats.epoch, stats.next_seq, stats.pending_batches),
            (0, 42, 1)
        );
        assert_eq!(stats.dropped_batches, 2);
        let record = buffer.get(41).expect("get").expect("converted");
        assert_eq!((record.epoch, record.boot_id, record.samples), (0, 5, 3));
        assert_eq!(buffer.append(2_000, 5, &block(1)).expect("append"), 42);
    }

    /// Fills a buffer with `n` batches of `samples` samples and returns its path.
    fn filled(dir: &Path, n: u64, samples: u16) -> (PathBuf, u64) {
        let path = dir.join("b.redb");
        let buffer = Buffer::open(&path, limits()).expect("open");
        for i in 0..n {
            buffer
                .append(1_000 + i as i64, 3, &block(samples))
                .expect("append");
        }
        let epoch = buffer.stats().epoch;
        (path, epoch)
    }

    /// Flips a byte of every stored copy of `needle` in the file (a bit rot in one record).
    fn flip(path: &Path, needle: &[u8]) -> usize {
        let mut bytes = std::fs::read(path).expect("read");
        let mut hits = 0;
        let mut at = 0;
        while let Some(pos) = bytes[at..].windows(needle.len()).position(|w| w == needle) {
            bytes[at + pos + needle.len() - 1] ^= 0x10;
            hits += 1;
            at += pos + needle.len();
        }
        std::fs::write(path, bytes).expect("write");
        hits
    }

    #[test]
    fn a_bit_flipped_buffer_is_salvaged_into_a_new_epoch() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (path, epoch) = filled(dir.path(), 20, 5);
        // The created time of batch 7 (1_006 ms) appears once per stored copy.
        let hits = flip(&path, &1_006i64.to_le_bytes());
        assert!(hits >= 1, "record found in the file");
        let buffer = Buffer::open(&path, limits()).expect("salvaged at open");
        let stats = buffer.stats();
        assert_ne!(stats.epoch, epoch, "salvage starts a new epoch");
        assert_ne!(stats.epoch, 0);
        assert_eq!(stats.pending_batches, 19, "intact batches kept");
        assert_eq!((stats.dropped_batches, stats.damaged_batches), (1, 1));
        assert_eq!(stats.next_seq, 21, "seqs continue above every seq seen");
        let records = buffer.pending(None, 100).expect("pending");
        assert!(
            records.iter().all(|r| r.epoch == epoch),
            "kept batches keep their epoch"
        );
        assert!(!records.iter().any(|r| r.seq == 7));
        assert_eq!(buffer.append(5_000, 3, &block(1)).expect("append"), 21);
        assert_eq!(
            buffer.get(21).expect("get").expect("new").epoch,
            stats.epoch
        );
        let aside: Vec<_> = std::fs::read_dir(dir.path())
            .expect("dir")
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains(".damaged-"))
            .collect();
        assert_eq!(aside.len(), 1, "the damaged file is kept aside");
        drop(buffer);
        // The count is durable.
        let buffer = Buffer::open(&path, limits()).expect("reopen");
        assert_eq!(buffer.stats().dropped_batches, 1);
        assert_eq!(buffer.stats().damaged_batches, 1);
    }

    #[test]
    fn a_truncated_buffer_is_salvaged_or_replaced_with_the_loss_counted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (path, epoch) = filled(dir.path(), 200, 40);
        let len = std::fs::metadata(&path).expect("meta").len();
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .expect("open");
        file.set_len(len / 2).expect("truncate");
        drop(file);
        let buffer = Buffer::open(&path, limits()).expect("salvaged at open");
        let stats = buffer.stats();
        assert_ne!(stats.epoch, epoch);
        assert!(stats.next_seq >= 1);
        // What the cut removed is lost; the batches in the half that is left are kept
        // (redb's pages are not in seq order, so some are missing between them: counted).
        assert!(stats.pending_batches > 0, "some batches kept: {stats:?}");
        assert!(stats.pending_batches < 200, "{stats:?}");
        let kept: Vec<_> = buffer.pending(None, 500).expect("pending");
        let lowest = kept[0].seq;
        let missing_inside = stats.next_seq - lowest - stats.pending_batches;
        assert!(missing_inside > 0, "{stats:?}");
        assert_eq!(stats.dropped_batches, missing_inside, "{stats:?}");
        assert_eq!(stats.damaged_batches, stats.dropped_batches);
        assert_eq!(
            stats.dropped_samples,
            40 * missing_inside,
            "estimated from the kept"
        );
        assert!(kept.iter().all(|r| r.epoch == epoch && r.samples == 40));
        drop(buffer);
        let check = Buffer::check(&path).expect("the new file is intact");
        assert_eq!(check.epoch, stats.epoch);
        assert_eq!(check.pending_batches, stats.pending_batches);
    }

    #[test]
    fn salvage_of_an_intact_buffer_keeps_everything_and_check_reports_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (path, epoch) = filled(dir.path(), 5, 2);
        let check = Buffer::check(&path).expect("intact");
        assert_eq!(
            (check.epoch, check.next_seq, check.pending_batches),
            (epoch, 6, 5)
        );
        let (buffer, report) = Buffer::salvage(&path, limits()).expect("salvage");
        assert_eq!((report.batches_kept, report.batches_lost), (5, 0));
        assert_eq!(report.next_seq, 6);
        assert_ne!(report.epoch, epoch);
        assert_eq!(buffer.stats().dropped_batches, 0);
        assert!(report.kept_aside.expect("moved").exists());
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
            epoch: buffer.stats().epoch,
            seq: bad_seq,
            samples: 4,
            ..RecordHeader::default()
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
