//! `store`: the cloud's database. All SQL of the WellPulse cloud lives in this crate, one
//! module per subject, each owning its statements.
//!
//! SQL text is only ever assembled (`format!`) from this module's own constants,
//! identifiers and formatted dates; caller input is always bound as a parameter.
//!
//! # Schema
//!
//! The registry is a tree, every level carrying `tenant_id` (and reaching its parent through a
//! composite `(tenant_id, parent_id)` foreign key, so a child can never hang under another
//! tenant's parent):
//!
//! ```text
//! tenants ─▶ sites ─▶ wells
//!              └────▶ gateways ─▶ gateway_births (one per boot: catalog as JSON)
//!                         └─────▶ devices (stable by (gateway, name); optional well)
//!                                    └──▶ series (device, canonical metric)
//! series_aliases: (gateway, boot_id, device alias, metric alias) → series, scale, offset
//! ```
//!
//! Telemetry is one narrow relation `telemetry (time, series_id, value, quality)` with an
//! index on `(series_id, time)` and no primary key (exactly-once is enforced one level up, by
//! `ingested_batches (gateway_id, epoch, seq)` written in the same transaction). Quality codes are
//! the wire codes: 0 good, 1 bad (value NULL), 2 stale, 3 uncertain. Rollups
//! `telemetry_1m`, `telemetry_1h`, `telemetry_1d` hold, per `(series_id, bucket)`, the
//! `avg, min, max, sum, count, first, last` of the **good** samples only (stale repeats,
//! out-of-range and missing values would distort trends); `1h` is computed from `1m` and
//! `1d` from `1h`, identically on both back-ends. Buckets are aligned to UTC midnight.
//!
//! # Two storage back-ends, one set of relation names
//!
//! [`schema`] picks the back-end once, when the database is first set up, and records it in
//! `storage_meta`: TimescaleDB when the extension is available (hypertable, compression,
//! continuous aggregates, retention policy), plain PostgreSQL otherwise (daily range
//! partitions plus a DEFAULT partition, rollup tables kept current by [`maintenance`] from
//! the dirty ranges a trigger on `telemetry` records in the writing transaction). Queries
//! ([`query`]) read the same relation names and columns on both.
//!
//! # Modules
//!
//! - [`schema`]: migrations, back-end set-up, migration state and liveness.
//! - [`registry`]: tenants, sites, wells, births, alias maps, rejection records.
//! - [`interventions`]: maintenance and failure records of wells.
//! - [`sites`]: sites (pads) create, read, update, delete.
//! - [`tenants`]: the tenant lifecycle (create, suspend, reactivate) and access lookups.
//! - [`identity`]: users, memberships and roles, sign-in sessions and refresh-token
//!   families, sign-in failure throttling, one-time tokens, API keys.
//! - [`usage`]: usage per tenant per day (samples, active wells, gateways, API calls,
//!   storage) for quotas, admin pages and billing.
//! - [`audit`]: the append-only audit log, written in the transaction of each mutation.
//! - [`billing`]: tenants' Stripe customers and billing state, Stripe events stored once,
//!   usage reported to Stripe Billing Meters and its reconciliation.
//! - [`gateways`]: provisioning, activity and offline sweep, gateway status reads.
//! - [`certificates`]: per-tenant CAs (keys sealed at rest), gateway client certificates,
//!   their revocation and the broker's question about a presented one.
//! - [`wells`]: well and series reads.
//! - [`detection`]: the backlog of batches to score, detector states (locked and written in
//!   the scoring transaction), tenant rules, per-well models and their training data.
//! - [`alerts`]: findings, the alert lifecycle, silences, destinations and the delivery
//!   outbox.
//! - [`copy`]: the PGCOPY binary encoder for telemetry rows.
//! - [`telemetry`]: the exactly-once ingest transaction ([`IngestTx`]).
//! - [`query`]: raw and bucketed telemetry reads.
//! - [`rejections`]: the ingest audit trail (refused messages, counts) as read by the API.
//! - [`maintenance`]: partitions ahead, rollups from dirty ranges, retention.
//! - [`lifecycle`]: a tenant's export (CSV files and a manifest) and purge.
//! - [`locks`]: one leader per periodic job (advisory locks).
//! - [`production`], [`emissions`], [`regulatory`]: daily figures, emission sources, filings.
//! - [`failure_risk`]: predictive maintenance — training data from the daily rollups and
//!   interventions, the model registry (one active model per tenant), the prediction cache.
//! - [`ml_forecasts`]: emissions forecasts and production gaps — model inputs, the
//!   prediction cache with the hash of the inputs it was computed from, methane targets.
//! - [`history`]: the history import (wells, daily production and hours on from a tenant's
//!   records), idempotent by natural keys.
//!
//! # Errors
//!
//! [`DbError`] is the one error of this crate; [`DbError::transience`] is the one answer
//! to "is this database error temporary?" (connection lost, server shutting down, pool
//! timeout, serialization failure, deadlock), used by every retry loop of the cloud.
//!
//! # Conventions
//!
//! Wire `u64` identifiers (boot ids) are stored bit-cast into `bigint`
//! ([`boot_to_db`]/[`boot_from_db`]); batch sequence numbers must fit into 63 bits. All SQL
//! is runtime SQL (`sqlx::query`), so building needs no database.

pub mod alerts;
pub mod audit;
pub mod billing;
pub mod certificates;
pub mod copy;
pub mod detection;
pub mod devices;
pub mod emissions;
pub mod failure_risk;
pub mod gateways;
pub mod history;
pub mod identity;
pub mod interventions;
pub mod lifecycle;
pub mod live;
pub mod locks;
pub mod maintenance;
pub mod ml_forecasts;
pub mod notify;
pub mod production;
pub mod query;
pub mod registry;
pub mod regulatory;
pub mod rejections;
pub mod schema;
pub mod sites;
pub mod telemetry;
pub mod tenants;
pub mod usage;
pub mod wells;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use base::Transience;
use sqlx::postgres::PgRow;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Postgres, Transaction};

pub use copy::{CopyEncoder, TelemetryRow};
pub use gateways::{BROKER_KICK_CHANNEL, BrokerKicks};
pub use query::{Bucket, RawSample};
pub use registry::{AliasEntry, AliasMap, GatewayInfo, NewWell, Rejection};
pub use schema::Backend;
/// The connection of a transaction, for callers that add to one (e.g. detection in the
/// ingest transaction).
pub use sqlx::PgConnection;
pub use telemetry::{BatchKey, BatchRecord, IngestOutcome, IngestTx, SeqConflict};

/// Errors of the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The database reported an error or could not be reached.
    #[error("database error: {0}")]
    Sqlx(#[from] sqlx::Error),
    /// Applying the sqlx migrations failed.
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// TimescaleDB was required but the server cannot provide it.
    #[error("TimescaleDB back-end requested but {0}")]
    TimescaleUnavailable(String),
    /// The database was set up for one back-end and another one was required.
    #[error("database was set up for the {stored} back-end, but {requested} is required")]
    BackendMismatch {
        /// Back-end recorded in `storage_meta`.
        stored: Backend,
        /// Back-end required by the options.
        requested: Backend,
    },
    /// The schema has not been created yet.
    #[error("database schema is not set up: run the migrations first")]
    NotMigrated,
    /// A caller passed a value the storage layer cannot accept.
    #[error("invalid {what}: {reason}")]
    Invalid {
        /// What was invalid.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// A stored value this code cannot read (a bug or a hand-edited row): never the
    /// caller's fault.
    #[error("unreadable {what}: {reason}")]
    Corrupt {
        /// What was unreadable.
        what: &'static str,
        /// The value or why.
        reason: String,
    },
    /// A file the storage layer writes (a tenant export) could not be written.
    #[error("cannot write {path}: {reason}")]
    File {
        /// The file or directory.
        path: String,
        /// Why.
        reason: String,
    },
    /// A referenced registry row does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// Certificates cannot be issued: no usable `[tenancy] ca_key`, or a tenant CA key that
    /// does not open with it.
    #[error("tenant certificate authority: {0}")]
    CaKey(String),
}

impl DbError {
    /// Whether retrying can succeed: the database unreachable or restarting, the pool
    /// exhausted, a serialization failure or deadlock. Everything else (constraint and data
    /// errors, bad input, a schema mismatch) repeats on retry.
    pub fn transience(&self) -> Transience {
        match self {
            DbError::Sqlx(e) => sqlx_transience(e),
            DbError::Migrate(sqlx::migrate::MigrateError::Execute(e)) => sqlx_transience(e),
            // Another instance may be running the migrations right now.
            DbError::NotMigrated => Transience::Temporary,
            _ => Transience::Permanent,
        }
    }

    fn corrupt(what: &'static str, reason: impl Into<String>) -> DbError {
        DbError::Corrupt {
            what,
            reason: reason.into(),
        }
    }

    fn invalid(what: &'static str, reason: impl Into<String>) -> DbError {
        DbError::Invalid {
            what,
            reason: reason.into(),
        }
    }
}

/// The SQLSTATE classes that mean "try again": 08 connection exception, 28 invalid
/// authorization (credentials being rotated), 40 transaction rollback (serialization
/// failure, deadlock), 53 insufficient resources, 57 operator intervention (admin
/// shutdown, crash recovery), 58 system error (I/O); 3D000 a database not created yet and
/// 55P03 lock not available. None of them says anything about the request itself.
fn sqlx_transience(e: &sqlx::Error) -> Transience {
    let temporary = match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(d) => d.code().is_some_and(|c| {
            ["08", "28", "40", "53", "57", "58"]
                .iter()
                .any(|class| c.starts_with(class))
                || c == "55P03"
                || c == "3D000"
        }),
        _ => false,
    };
    if temporary {
        Transience::Temporary
    } else {
        Transience::Permanent
    }
}

/// Maps every row, turning the first decoding error into a [`DbError`].
pub(crate) fn collect<T>(
    rows: &[PgRow],
    map: impl Fn(&PgRow) -> Result<T, sqlx::Error>,
) -> Result<Vec<T>, DbError> {
    rows.iter()
        .map(map)
        .collect::<Result<_, _>>()
        .map_err(DbError::from)
}

macro_rules! id_type {
    ($(#[$doc:meta] $name:ident),* $(,)?) => {$(
        #[$doc]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, sqlx::Type)]
        #[sqlx(transparent)]
        pub struct $name(pub i64);

        impl From<i64> for $name {
            fn from(id: i64) -> $name {
                $name(id)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }
    )*};
}

id_type!(
    /// Primary key of `tenants`.
    TenantId,
    /// Primary key of `sites`.
    SiteId,
    /// Primary key of `wells`.
    WellId,
    /// Primary key of `gateways` (not the MQTT gateway id, which is `gateways.slug`).
    GatewayId,
    /// Primary key of `devices`.
    DeviceId,
    /// Primary key of `series`.
    SeriesId,
    /// Primary key of `users`.
    UserId,
    /// Primary key of `api_keys`.
    ApiKeyId,
);

/// Which storage back-end to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendChoice {
    /// TimescaleDB when `pg_available_extensions` lists it, plain PostgreSQL otherwise.
    Auto,
    /// TimescaleDB, or fail.
    Timescale,
    /// Plain PostgreSQL even when TimescaleDB is available.
    Postgres,
}

/// Storage tuning. Plain values: the cloud config maps its TOML section onto this.
#[derive(Debug, Clone)]
pub struct StorageOptions {
    /// Back-end selection (used only when the database is first set up).
    pub backend: BackendChoice,
    /// TimescaleDB chunk interval. Default 1 day: at the design rate of ~500 samples/s per
    /// database (500 series at 1 s) a day is ~43 M rows ≈ 4 GB with the index, which keeps
    /// the chunks being written (plus their index) within ~25 % of a 16 GB server's memory,
    /// and it matches the plain back-end's daily partitions, so retention behaves the same.
    /// Scale it down linearly for larger fleets per database node.
    pub chunk_interval: Duration,
    /// Compress TimescaleDB chunks older than this. Must exceed the agents' maximum backlog
    /// age, so backfill rarely lands in compressed chunks (it is still accepted there).
    /// Default 7 days. (The continuous aggregates are refreshed back to one day short of
    /// `retention`.)
    pub compress_after: Duration,
    /// Drop raw telemetry older than this (`None` = keep forever). Rollups are kept.
    /// Default 365 days. Must exceed `compress_after` plus one day.
    pub retention: Option<Duration>,
    /// Plain back-end: how many daily partitions to keep created ahead of today. Default 7.
    pub partitions_ahead_days: u32,
}

impl Default for StorageOptions {
    fn default() -> Self {
        StorageOptions {
            backend: BackendChoice::Auto,
            chunk_interval: Duration::from_secs(86_400),
            compress_after: Duration::from_secs(7 * 86_400),
            retention: Some(Duration::from_secs(365 * 86_400)),
            partitions_ahead_days: 7,
        }
    }
}

impl StorageOptions {
    /// Checks the relations between the options.
    pub fn validate(&self) -> Result<(), DbError> {
        if self.chunk_interval < Duration::from_secs(60) {
            return Err(DbError::invalid(
                "chunk_interval",
                "must be at least 1 minute",
            ));
        }
        if self.compress_after < Duration::from_secs(3600) {
            return Err(DbError::invalid(
                "compress_after",
                "must be at least 1 hour",
            ));
        }
        if let Some(retention) = self.retention
            && retention < self.compress_after + Duration::from_secs(2 * 86_400)
        {
            return Err(DbError::invalid(
                "retention",
                "must exceed compress_after by at least 2 days (rollups are refreshed from raw data that far back)",
            ));
        }
        if self.partitions_ahead_days == 0 || self.partitions_ahead_days > 366 {
            return Err(DbError::invalid(
                "partitions_ahead_days",
                "must be between 1 and 366",
            ));
        }
        Ok(())
    }
}

/// Handle to the cloud database: a connection pool plus the storage options and back-end.
///
/// Cheap to clone (the pool and the cached back-end are shared).
#[derive(Debug, Clone)]
pub struct Db {
    pool: PgPool,
    /// The connections that hold the periodic jobs' advisory locks ([`Db::try_job_lock`]):
    /// a pool of their own, so running jobs never hold the connections requests and the
    /// jobs' own work need.
    job_locks: PgPool,
    options: Arc<StorageOptions>,
    backend: Arc<OnceLock<Backend>>,
}

impl Db {
    /// Connects with default [`StorageOptions`].
    pub async fn connect(url: &str) -> Result<Db, DbError> {
        Db::connect_with(url, StorageOptions::default()).await
    }

    /// Connects to `url` (a `postgres://` URL) with the given options.
    pub async fn connect_with(url: &str, options: StorageOptions) -> Result<Db, DbError> {
        options.validate()?;
        let connect: PgConnectOptions = url.parse()?;
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(connect)
            .await?;
        Ok(Db::from_pool(pool, options))
    }

    /// Wraps an existing pool (e.g. one made by `#[sqlx::test]`); the job locks get a
    /// pool of their own to the same database, its connections opened when a job first
    /// needs one and closed when idle.
    pub fn from_pool(pool: PgPool, options: StorageOptions) -> Db {
        let job_locks = PgPoolOptions::new()
            .max_connections(locks::MAX_RUNNING_JOBS)
            .min_connections(0)
            .idle_timeout(Duration::from_secs(300))
            .acquire_timeout(Duration::from_secs(10))
            .connect_lazy_with(pool.connect_options().as_ref().clone());
        Db {
            pool,
            job_locks,
            options: Arc::new(options),
            backend: Arc::new(OnceLock::new()),
        }
    }

    /// Applies the migrations and sets up (or re-configures) the telemetry back-end.
    /// Idempotent; safe to run at every start-up.
    pub async fn migrate(&self) -> Result<Backend, DbError> {
        let backend = schema::migrate(&self.pool, &self.options).await?;
        let _ = self.backend.set(backend);
        Ok(backend)
    }

    /// The storage back-end of this database (read from `storage_meta` once, then cached).
    pub async fn backend(&self) -> Result<Backend, DbError> {
        if let Some(backend) = self.backend.get() {
            return Ok(*backend);
        }
        let backend = schema::stored_backend(&self.pool)
            .await?
            .ok_or(DbError::NotMigrated)?;
        let _ = self.backend.set(backend);
        Ok(backend)
    }

    /// Closes every connection: the pool's and the job locks'.
    pub async fn close(&self) {
        self.job_locks.close().await;
        self.pool.close().await;
    }

    /// The connection pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The storage options.
    pub fn options(&self) -> &StorageOptions {
        &self.options
    }

    /// Begins a transaction restricted to one tenant by row-level security: it runs as role
    /// `wellpulse_tenant` with `wellpulse.tenant_id` set, so every query in it sees only
    /// that tenant's rows, whatever its WHERE clause says.
    pub async fn begin_tenant(
        &self,
        tenant: TenantId,
    ) -> Result<Transaction<'static, Postgres>, DbError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT set_config('wellpulse.tenant_id', $1, true)")
            .bind(tenant.0.to_string())
            .execute(&mut *tx)
            .await?;
        sqlx::query("SET LOCAL ROLE wellpulse_tenant")
            .execute(&mut *tx)
            .await?;
        Ok(tx)
    }
}

/// Stores a wire `u64` boot id in a `bigint` (bit-cast; ids are compared, never ordered).
pub fn boot_to_db(boot_id: u64) -> i64 {
    i64::from_ne_bytes(boot_id.to_ne_bytes())
}

/// Inverse of [`boot_to_db`].
pub fn boot_from_db(boot_id: i64) -> u64 {
    u64::from_ne_bytes(boot_id.to_ne_bytes())
}

/// Stores a batch sequence number in a `bigint`; sequence numbers above `i64::MAX` are
/// refused (they are ordered, so a bit-cast would break range acks).
pub fn seq_to_db(seq: u64) -> Result<i64, DbError> {
    i64::try_from(seq).map_err(|_| DbError::invalid("batch seq", format!("{seq} exceeds 2^63-1")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_errors_are_temporary_and_data_errors_are_not() {
        let io = DbError::Sqlx(sqlx::Error::Io(std::io::Error::from(
            std::io::ErrorKind::ConnectionRefused,
        )));
        assert!(io.transience().is_temporary());
        assert!(
            DbError::Sqlx(sqlx::Error::PoolTimedOut)
                .transience()
                .is_temporary()
        );
        assert!(DbError::NotMigrated.transience().is_temporary());
        assert!(!DbError::invalid("x", "y").transience().is_temporary());
        assert!(
            !DbError::Sqlx(sqlx::Error::RowNotFound)
                .transience()
                .is_temporary()
        );
    }

    #[test]
    fn boot_ids_round_trip_through_bigint() {
        for id in [
            0,
            1,
            u64::MAX,
            1 << 63,
            (1 << 63) - 1,
            0xdead_beef_cafe_f00d,
        ] {
            assert_eq!(boot_from_db(boot_to_db(id)), id);
        }
    }

    #[test]
    fn seq_above_63_bits_is_refused() {
        assert_eq!(seq_to_db(42).unwrap(), 42);
        assert!(seq_to_db(1 << 63).is_err());
    }

    #[test]
    fn default_options_are_valid_and_relations_are_checked() {
        StorageOptions::default().validate().unwrap();
        let short_retention = StorageOptions {
            retention: Some(Duration::from_secs(8 * 86_400)),
            ..StorageOptions::default()
        };
        assert!(short_retention.validate().is_err());
        let no_retention = StorageOptions {
            retention: None,
            ..StorageOptions::default()
        };
        no_retention.validate().unwrap();
    }
}
