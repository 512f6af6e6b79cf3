//! Migrations and storage back-end set-up.
//!
//! [`migrate`] first applies the append-only sqlx migrations in `cloud/migrations/`
//! (registry, ingest bookkeeping, row-level security), then, under an advisory lock, creates
//! the telemetry relations for the back-end if this is the first start, and (re)applies
//! the back-end's configurable policies on every start.
//!
//! The back-end is chosen once and recorded in `storage_meta`: a database set up on plain
//! PostgreSQL stays plain even if TimescaleDB is installed later (a partitioned table cannot
//! become a hypertable in place), and a TimescaleDB database refuses to start without the
//! extension. Future changes to the telemetry relations go into new sqlx migrations that
//! branch on `storage_meta.backend`.
//!
//! # TimescaleDB
//!
//! * `telemetry` is a hypertable on `time` with the configured chunk interval (see
//!   [`StorageOptions::chunk_interval`] for the sizing rationale), without the default
//!   `time` index but with `(series_id, time)`.
//! * Compression segments by `series_id` and orders by `time DESC` (a series' samples are
//!   stored together and read newest first); chunks older than `compress_after` are
//!   compressed by a policy. `compress_after` must exceed the agents' backlog age so that
//!   replayed backlog lands in uncompressed chunks.
//! * Continuous aggregates `telemetry_1m` (from raw, good samples only), `telemetry_1h`
//!   (from `telemetry_1m`) and `telemetry_1d` (from `telemetry_1h`) are real-time
//!   (`materialized_only = false`); their refresh policies look back to one day short of
//!   `retention` (without limit when raw data is kept forever), so that late backfill of any
//!   age is re-materialized as on the plain back-end, and stop one bucket before now (the
//!   real-time part covers the open bucket). Until the next policy run, buckets already
//!   materialized do not show newly written samples (see [`query`](crate::query)).
//! * A retention policy drops raw chunks older than `retention`; the aggregates keep their
//!   materialized buckets (the raw level's refresh window ends before the retention, so the
//!   invalidations of dropped chunks are never refreshed).
//! * No row-level security on `telemetry`: TimescaleDB does not allow it together with
//!   compression (timescale/timescaledb#6827). Tenant isolation of samples relies on series
//!   ids being resolved through the RLS-protected `series` table.
//! * Needs TimescaleDB ≥ 2.9 (hierarchical continuous aggregates, `if_exists` of the
//!   policy removal functions).
//!
//! # Plain PostgreSQL
//!
//! * `telemetry` is `PARTITION BY RANGE (time)` with one partition per UTC day
//!   (`telemetry_pYYYYMMDD`), created ahead by [`maintenance`](crate::maintenance), and a
//!   `telemetry_default` partition so that no sample is ever rejected (maintenance moves
//!   its rows into proper partitions).
//! * `telemetry_1m/1h/1d` are tables with the same columns as the continuous aggregates,
//!   primary key `(series_id, bucket)`, recomputed by maintenance for the dirty ranges
//!   recorded in `rollup_dirty`.
//! * Statement-level triggers on `telemetry` (INSERT, UPDATE, DELETE, with transition
//!   tables) add one `rollup_dirty` row per series and statement — the series' min and max
//!   time written or removed — inside the writing transaction. Every writer is covered
//!   (the ingester's COPY, backfill scripts, manual corrections), and nothing extra travels
//!   over the wire. Rows moved or expired by maintenance go to partitions directly and do
//!   not fire them.

use std::fmt;

use sqlx::{PgConnection, PgPool};

use crate::{BackendChoice, DbError, StorageOptions, maintenance};

/// The storage back-end of a database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// TimescaleDB hypertable + continuous aggregates.
    Timescale,
    /// Plain PostgreSQL partitions + rollup tables.
    Postgres,
}

impl Backend {
    /// The name stored in `storage_meta.backend`.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Timescale => "timescaledb",
            Backend::Postgres => "postgres",
        }
    }

    fn from_str(name: &str) -> Option<Backend> {
        match name {
            "timescaledb" => Some(Backend::Timescale),
            "postgres" => Some(Backend::Postgres),
            _ => None,
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Advisory lock key serialising back-end set-up between concurrently starting processes.
const SETUP_LOCK: i64 = 0x5750_5345_5455_5000; // "WPSETUP"

/// Applies migrations and sets up the back-end; returns the back-end in use.
pub(crate) async fn migrate(pool: &PgPool, options: &StorageOptions) -> Result<Backend, DbError> {
    sqlx::migrate!("./migrations").run(pool).await?;

    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(SETUP_LOCK)
        .execute(&mut *tx)
        .await?;
    let backend = match read_backend(&mut tx).await? {
        Some(stored) => {
            check_choice(stored, options.backend)?;
            stored
        }
        None => {
            let backend = choose(&mut tx, options.backend).await?;
            create_storage(&mut tx, backend, options).await?;
            sqlx::query("INSERT INTO storage_meta (backend) VALUES ($1)")
                .bind(backend.as_str())
                .execute(&mut *tx)
                .await?;
            tracing::info!(%backend, "telemetry storage created");
            backend
        }
    };
    match backend {
        Backend::Timescale => apply_timescale_policies(&mut tx, options).await?,
        Backend::Postgres => {
            maintenance::ensure_partitions(&mut tx, options.partitions_ahead_days).await?
        }
    }
    tx.commit().await?;
    Ok(backend)
}

/// The back-end recorded in `storage_meta`, or `None` if the database is not set up.
pub(crate) async fn stored_backend(pool: &PgPool) -> Result<Option<Backend>, DbError> {
    let mut conn = pool.acquire().await?;
    let has_meta: bool = sqlx::query_scalar("SELECT to_regclass('storage_meta') IS NOT NULL")
        .fetch_one(&mut *conn)
        .await?;
    if !has_meta {
        return Ok(None);
    }
    read_backend(&mut conn).await
}

async fn read_backend(conn: &mut PgConnection) -> Result<Option<Backend>, DbError> {
    let name: Option<String> = sqlx::query_scalar("SELECT backend FROM storage_meta")
        .fetch_optional(&mut *conn)
        .await?;
    Ok(name.as_deref().and_then(Backend::from_str))
}

/// Whether the server can provide TimescaleDB (its extension files are installed).
pub async fn timescale_available(conn: &mut PgConnection) -> Result<bool, DbError> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb')",
    )
    .fetch_one(conn)
    .await?)
}

fn check_choice(stored: Backend, choice: BackendChoice) -> Result<(), DbError> {
    let requested = match choice {
        BackendChoice::Auto => return Ok(()),
        BackendChoice::Timescale => Backend::Timescale,
        BackendChoice::Postgres => Backend::Postgres,
    };
    if requested == stored {
        Ok(())
    } else {
        Err(DbError::BackendMismatch { stored, requested })
    }
}

async fn choose(conn: &mut PgConnection, choice: BackendChoice) -> Result<Backend, DbError> {
    let available = timescale_available(conn).await?;
    match (choice, available) {
        (BackendChoice::Postgres, _) | (BackendChoice::Auto, false) => Ok(Backend::Postgres),
        (BackendChoice::Timescale | BackendChoice::Auto, true) => Ok(Backend::Timescale),
        (BackendChoice::Timescale, false) => Err(DbError::TimescaleUnavailable(
            "the timescaledb extension is not installed on this server".into(),
        )),
    }
}

async fn create_storage(
    conn: &mut PgConnection,
    backend: Backend,
    options: &StorageOptions,
) -> Result<(), DbError> {
    match backend {
        Backend::Timescale => create_timescale(conn, options).await,
        Backend::Postgres => create_plain(conn).await,
    }?;
    // Row-level security through `series` for the relations that are plain tables. Not on
    // TimescaleDB's telemetry: TimescaleDB refuses RLS on a hypertable with compression, and
    // its rollups are views over internal tables. There, tenant-scoped readers reach
    // telemetry only with series ids selected through the RLS-protected `series` table, as
    // the query functions do.
    let rls_tables: &[&str] = match backend {
        Backend::Timescale => &["rollup_dirty"],
        Backend::Postgres => &[
            "telemetry",
            "telemetry_1m",
            "telemetry_1h",
            "telemetry_1d",
            "rollup_dirty",
        ],
    };
    for table in rls_tables {
        exec(
            conn,
            &format!("ALTER TABLE {table} ENABLE ROW LEVEL SECURITY"),
        )
        .await?;
        exec(
            conn,
            &format!(
                "CREATE POLICY tenant_isolation ON {table} USING (series_id IN (SELECT id FROM series))"
            ),
        )
        .await?;
    }
    exec(
        conn,
        "GRANT SELECT ON telemetry, telemetry_1m, telemetry_1h, telemetry_1d, rollup_dirty TO wellpulse_tenant",
    )
    .await
}

const TELEMETRY_COLUMNS: &str = "
    time      timestamptz NOT NULL,
    series_id bigint NOT NULL,
    value     double precision,
    quality   smallint NOT NULL CHECK (quality BETWEEN 0 AND 3)";

async fn create_plain(conn: &mut PgConnection) -> Result<(), DbError> {
    exec(
        conn,
        &format!("CREATE TABLE telemetry ({TELEMETRY_COLUMNS}) PARTITION BY RANGE (time)"),
    )
    .await?;
    exec(
        conn,
        "CREATE INDEX telemetry_series_time_idx ON telemetry (series_id, time)",
    )
    .await?;
    exec(
        conn,
        "CREATE TABLE telemetry_default PARTITION OF telemetry DEFAULT",
    )
    .await?;
    exec(
        conn,
        "CREATE FUNCTION telemetry_mark_dirty() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             IF TG_OP IN ('INSERT', 'UPDATE') THEN
                 INSERT INTO rollup_dirty (series_id, from_time, to_time)
                 SELECT series_id, min(time), max(time) FROM new_rows GROUP BY series_id;
             END IF;
             IF TG_OP IN ('UPDATE', 'DELETE') THEN
                 INSERT INTO rollup_dirty (series_id, from_time, to_time)
                 SELECT series_id, min(time), max(time) FROM old_rows GROUP BY series_id;
             END IF;
             RETURN NULL;
         END
         $$",
    )
    .await?;
    for (event, tables) in [
        ("INSERT", "NEW TABLE AS new_rows"),
        ("UPDATE", "OLD TABLE AS old_rows NEW TABLE AS new_rows"),
        ("DELETE", "OLD TABLE AS old_rows"),
    ] {
        exec(
            conn,
            &format!(
                "CREATE TRIGGER telemetry_dirty_{event} AFTER {event} ON telemetry
                 REFERENCING {tables} FOR EACH STATEMENT EXECUTE FUNCTION telemetry_mark_dirty()",
                event = event.to_lowercase(),
            ),
        )
        .await?;
    }
    for rollup in ["telemetry_1m", "telemetry_1h", "telemetry_1d"] {
        exec(
            conn,
            &format!(
                "CREATE TABLE {rollup} (
                    series_id bigint NOT NULL,
                    bucket    timestamptz NOT NULL,
                    avg       double precision NOT NULL,
                    min       double precision NOT NULL,
                    max       double precision NOT NULL,
                    sum       double precision NOT NULL,
                    count     bigint NOT NULL,
                    first     double precision NOT NULL,
                    last      double precision NOT NULL,
                    PRIMARY KEY (series_id, bucket)
                )"
            ),
        )
        .await?;
    }
    Ok(())
}

async fn create_timescale(
    conn: &mut PgConnection,
    options: &StorageOptions,
) -> Result<(), DbError> {
    sqlx::query("CREATE EXTENSION IF NOT EXISTS timescaledb")
        .execute(&mut *conn)
        .await
        .map_err(|e| {
            DbError::TimescaleUnavailable(format!(
                "CREATE EXTENSION timescaledb failed ({e}); add it to shared_preload_libraries or choose the postgres back-end"
            ))
        })?;
    exec(
        conn,
        &format!("CREATE TABLE telemetry ({TELEMETRY_COLUMNS})"),
    )
    .await?;
    sqlx::query(
        "SELECT create_hypertable('telemetry', 'time',
             chunk_time_interval => $1::interval, create_default_indexes => false)",
    )
    .bind(options.chunk_interval)
    .execute(&mut *conn)
    .await?;
    exec(
        conn,
        "CREATE INDEX telemetry_series_time_idx ON telemetry (series_id, time)",
    )
    .await?;
    exec(
        conn,
        "ALTER TABLE telemetry SET (timescaledb.compress,
             timescaledb.compress_segmentby = 'series_id',
             timescaledb.compress_orderby = 'time DESC')",
    )
    .await?;
    exec(
        conn,
        "CREATE MATERIALIZED VIEW telemetry_1m
             WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
         SELECT series_id,
                time_bucket(INTERVAL '1 minute', time) AS bucket,
                avg(value) AS avg, min(value) AS min, max(value) AS max,
                sum(value) AS sum, count(*) AS count,
                first(value, time) AS first, last(value, time) AS last
         FROM telemetry
         WHERE quality = 0 AND value IS NOT NULL
         GROUP BY series_id, time_bucket(INTERVAL '1 minute', time)
         WITH NO DATA",
    )
    .await?;
    for (view, source, width) in [
        ("telemetry_1h", "telemetry_1m", "1 hour"),
        ("telemetry_1d", "telemetry_1h", "1 day"),
    ] {
        exec(
            conn,
            &format!(
                "CREATE MATERIALIZED VIEW {view}
                     WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
                 SELECT series_id,
                        time_bucket(INTERVAL '{width}', bucket) AS bucket,
                        sum(sum) / sum(count)::double precision AS avg,
                        min(min) AS min, max(max) AS max,
                        sum(sum) AS sum, sum(count)::bigint AS count,
                        first(first, bucket) AS first, last(last, bucket) AS last
                 FROM {source}
                 GROUP BY series_id, time_bucket(INTERVAL '{width}', bucket)
                 WITH NO DATA"
            ),
        )
        .await?;
    }
    Ok(())
}

/// (Re)applies the configurable TimescaleDB policies; idempotent.
async fn apply_timescale_policies(
    conn: &mut PgConnection,
    options: &StorageOptions,
) -> Result<(), DbError> {
    sqlx::query("SELECT set_chunk_time_interval('telemetry', $1::interval)")
        .bind(options.chunk_interval)
        .execute(&mut *conn)
        .await?;
    exec(
        conn,
        "SELECT remove_compression_policy('telemetry', if_exists => true)",
    )
    .await?;
    sqlx::query(
        "SELECT add_compression_policy('telemetry', compress_after => justify_hours($1::interval))",
    )
    .bind(options.compress_after)
    .execute(&mut *conn)
    .await?;
    exec(
        conn,
        "SELECT remove_retention_policy('telemetry', if_exists => true)",
    )
    .await?;
    if let Some(retention) = options.retention {
        sqlx::query(
            "SELECT add_retention_policy('telemetry', drop_after => justify_hours($1::interval))",
        )
        .bind(retention)
        .execute(&mut *conn)
        .await?;
    }
    // How far back the refresh policies re-materialize: to one day short of the raw
    // retention (everything when raw data is kept forever), like the plain back-end, which
    // recomputes dirty ranges up to the retention cutoff. A refresh only recomputes the
    // ranges invalidated by writes, so a long window costs nothing while nothing changes,
    // and late backfill of any age (within the retention) reaches the rollups. It must stay
    // short of the retention: dropping raw chunks invalidates their range, and refreshing
    // that range would delete the rollups of the expired days.
    let lookback = options
        .retention
        .map(|retention| retention.saturating_sub(std::time::Duration::from_secs(86_400)));
    for (view, width, schedule) in [
        ("telemetry_1m", "1 minute", "1 minute"),
        ("telemetry_1h", "1 hour", "10 minutes"),
        ("telemetry_1d", "1 day", "1 hour"),
    ] {
        exec(
            conn,
            &format!("SELECT remove_continuous_aggregate_policy('{view}', if_exists => true)"),
        )
        .await?;
        // TimescaleDB refuses a refresh window (start_offset - end_offset) narrower than two
        // buckets, so the look-back is at least two buckets (it matters for the daily level
        // with a short retention). Reaching past the raw retention is still safe there:
        // `telemetry_1h` and `telemetry_1d` refresh from the level below, which keeps its
        // buckets. NULL start_offset: no lower bound.
        sqlx::query(&format!(
            "SELECT add_continuous_aggregate_policy('{view}',
                 start_offset => CASE WHEN $1::interval IS NOT NULL THEN justify_hours(
                     greatest($1::interval, 2 * INTERVAL '{width}') + INTERVAL '{width}') END,
                 end_offset => INTERVAL '{width}',
                 schedule_interval => INTERVAL '{schedule}')"
        ))
        .bind(lookback)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

async fn exec(conn: &mut PgConnection, sql: &str) -> Result<(), DbError> {
    sqlx::query(sql).execute(conn).await?;
    Ok(())
}

/// State of the schema migrations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationState {
    /// Migrations this build knows.
    pub known: usize,
    /// Versions this build knows that the database has not applied successfully.
    pub pending: Vec<i64>,
    /// Whether the storage back-end was set up (`storage_meta` has its row).
    pub storage_ready: bool,
}

/// One round trip to the database.
pub async fn ping(pool: &PgPool) -> Result<(), DbError> {
    sqlx::query("SELECT 1").execute(pool).await?;
    Ok(())
}

/// Which of this build's migrations the database has applied, and whether the storage
/// back-end is set up.
pub async fn migration_state(pool: &PgPool) -> Result<MigrationState, DbError> {
    let known: Vec<i64> = sqlx::migrate!("./migrations")
        .iter()
        .filter(|m| m.migration_type.is_up_migration())
        .map(|m| m.version)
        .collect();
    let mut conn = pool.acquire().await?;
    let has_table: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
        .fetch_one(&mut *conn)
        .await?;
    let applied: Vec<i64> = if has_table {
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
            .fetch_all(&mut *conn)
            .await?
    } else {
        Vec::new()
    };
    let storage_ready = stored_backend(pool).await?.is_some();
    Ok(MigrationState {
        known: known.len(),
        pending: known.into_iter().filter(|v| !applied.contains(v)).collect(),
        storage_ready,
    })
}
