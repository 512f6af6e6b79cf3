//! Periodic storage maintenance: partitions ahead, rollups from dirty ranges, retention.
//!
//! [`run_once`] is idempotent and safe to run from several processes at once (rollup
//! recomputation is serialised by an advisory lock; DDL waits at most [`LOCK_TIMEOUT`] for
//! its locks, then gives up until the next run rather than queueing ingest behind it).
//! The `jobs` scheduler runs it periodically (one instance at a time).
//!
//! Plain PostgreSQL back-end:
//! 1. **Retention**: daily partitions entirely older than `now - retention` are detached
//!    and dropped; rows that old are deleted from the DEFAULT partition.
//! 2. **Partitions**: one partition per UTC day from today to `partitions_ahead_days`
//!    ahead, plus one for every day that has rows in the DEFAULT partition (backfill from
//!    before the first partition, or after an outage of maintenance). A partition is made
//!    as a standalone table, filled with that day's rows moved out of DEFAULT, then
//!    attached (the DEFAULT partition is locked meanwhile so no new row for that day can
//!    slip into it).
//! 3. **Rollups**: the rows of `rollup_dirty` are claimed (deleted) in one transaction; per
//!    level (1m from raw, 1h from 1m, 1d from 1h) the claimed ranges are widened to whole
//!    buckets, merged, and the buckets in them are deleted and recomputed. Claiming and
//!    recomputing in one transaction means a failure leaves the ranges dirty, and a
//!    range committed by ingest after the claim stays for the next run: rollups converge
//!    to the raw data, late backfill included.
//!
//! Dirty ranges are clipped to the retention: a rollup bucket that starts before the
//! retention cutoff is never recomputed, so rollups outlive their raw data even when a
//! very late sample arrives for them.
//!
//! Both back-ends: `ingested_batches` and `ingest_rejections` rows older than the retention
//! are deleted. (TimescaleDB runs compression, retention and aggregate refresh as its own
//! background jobs, configured by [`schema`](crate::schema).)

use chrono::{DateTime, Days, NaiveDate, Utc};
use sqlx::{PgConnection, Row};

use crate::query::{GOOD_SAMPLES, ORIGIN_SQL, RAW_COLUMNS, ROLLUP_COLUMNS};
use crate::{Backend, Db, DbError, SeriesId};

/// Longest a maintenance statement waits for a table lock.
pub const LOCK_TIMEOUT: &str = "5s";
const ROLLUP_LOCK: i64 = 0x5750_524f_4c4c_5550; // "WPROLLUP"
const PARTITION_PREFIX: &str = "telemetry_p";

/// What one maintenance run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Partitions created.
    pub partitions_created: Vec<String>,
    /// Partitions dropped by retention.
    pub partitions_dropped: Vec<String>,
    /// Rows moved out of the DEFAULT partition.
    pub rows_moved: u64,
    /// Raw rows deleted from the DEFAULT partition by retention.
    pub default_rows_expired: u64,
    /// Dirty ranges consumed.
    pub dirty_ranges: u64,
    /// Rollup rows written (all levels).
    pub rollup_rows: u64,
    /// `ingested_batches` and `ingest_rejections` rows deleted by retention.
    pub bookkeeping_expired: u64,
}

/// One maintenance pass at the current time.
pub async fn run_once(db: &Db) -> Result<Report, DbError> {
    run_once_at(db, Utc::now()).await
}

/// One maintenance pass as if the time were `now` (partitions ahead and retention are
/// relative to it; tests use it to simulate the calendar).
pub async fn run_once_at(db: &Db, now: DateTime<Utc>) -> Result<Report, DbError> {
    let mut report = Report::default();
    let options = db.options();
    let cutoff = options
        .retention
        .map(|r| now - chrono::Duration::from_std(r).unwrap_or(chrono::Duration::MAX));
    let mut conn = db.pool().acquire().await?;
    if db.backend().await? == Backend::Postgres {
        if let Some(cutoff) = cutoff {
            expire_partitions(&mut conn, cutoff, &mut report).await?;
        }
        create_partitions(
            &mut conn,
            now.date_naive(),
            options.partitions_ahead_days,
            &mut report,
        )
        .await?;
        refresh_rollups(&mut conn, cutoff, &mut report).await?;
    }
    if let Some(cutoff) = cutoff {
        report.bookkeeping_expired = expire_bookkeeping(&mut conn, cutoff).await?;
    }
    Ok(report)
}

fn partition_name(day: NaiveDate) -> String {
    format!("{PARTITION_PREFIX}{}", day.format("%Y%m%d"))
}

fn partition_day(name: &str) -> Option<NaiveDate> {
    let digits = name.strip_prefix(PARTITION_PREFIX)?;
    if digits.len() != 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    NaiveDate::parse_from_str(digits, "%Y%m%d").ok()
}

fn day_literal(day: NaiveDate) -> String {
    format!("TIMESTAMPTZ '{} 00:00:00+00'", day.format("%Y-%m-%d"))
}

/// Days that have a partition.
async fn partition_days(conn: &mut PgConnection) -> Result<Vec<NaiveDate>, DbError> {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
         WHERE i.inhparent = 'telemetry'::regclass",
    )
    .fetch_all(conn)
    .await?;
    Ok(names.iter().filter_map(|n| partition_day(n)).collect())
}

/// Creates the partitions from `today` to `ahead` days later (used at set-up, inside its
/// transaction). Days with rows in DEFAULT are handled by the maintenance run.
pub(crate) async fn ensure_partitions(conn: &mut PgConnection, ahead: u32) -> Result<(), DbError> {
    let today: NaiveDate = sqlx::query_scalar("SELECT (now() AT TIME ZONE 'UTC')::date")
        .fetch_one(&mut *conn)
        .await?;
    let existing = partition_days(conn).await?;
    for day in days_ahead(today, ahead) {
        if !existing.contains(&day) {
            create_partition(conn, day).await?;
        }
    }
    Ok(())
}

fn days_ahead(today: NaiveDate, ahead: u32) -> impl Iterator<Item = NaiveDate> {
    (0..=u64::from(ahead)).filter_map(move |d| today.checked_add_days(Days::new(d)))
}

async fn create_partitions(
    conn: &mut PgConnection,
    today: NaiveDate,
    ahead: u32,
    report: &mut Report,
) -> Result<(), DbError> {
    let existing = partition_days(conn).await?;
    let mut wanted: Vec<NaiveDate> = sqlx::query_scalar(
        "SELECT DISTINCT (time AT TIME ZONE 'UTC')::date FROM telemetry_default",
    )
    .fetch_all(&mut *conn)
    .await?;
    wanted.extend(days_ahead(today, ahead));
    wanted.sort_unstable();
    wanted.dedup();
    for day in wanted.into_iter().filter(|d| !existing.contains(d)) {
        let mut tx = sqlx::Connection::begin(&mut *conn).await?;
        sqlx::query(&format!("SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
            .execute(&mut *tx)
            .await?;
        let moved = create_partition(&mut tx, day).await?;
        tx.commit().await?;
        report.rows_moved += moved;
        report.partitions_created.push(partition_name(day));
    }
    Ok(())
}

/// Creates the partition of `day`, moving that day's rows out of DEFAULT; returns how many
/// rows moved. Runs inside the caller's transaction.
async fn create_partition(conn: &mut PgConnection, day: NaiveDate) -> Result<u64, DbError> {
    let name = partition_name(day);
    let next = day
        .checked_add_days(Days::new(1))
        .ok_or_else(|| DbError::invalid("partition day", day.to_string()))?;
    let (from, to) = (day_literal(day), day_literal(next));
    let statements = [
        "LOCK TABLE telemetry_default IN ACCESS EXCLUSIVE MODE".to_string(),
        format!("CREATE TABLE {name} (LIKE telemetry INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"),
        format!(
            "ALTER TABLE {name} ADD CONSTRAINT {name}_range CHECK (time >= {from} AND time < {to})"
        ),
    ];
    for sql in &statements {
        sqlx::query(sql.as_str()).execute(&mut *conn).await?;
    }
    let moved = sqlx::query(&format!(
        "WITH moved AS (
             DELETE FROM telemetry_default WHERE time >= {from} AND time < {to} RETURNING *
         )
         INSERT INTO {name} SELECT * FROM moved"
    ))
    .execute(&mut *conn)
    .await?
    .rows_affected();
    for sql in [
        format!("ALTER TABLE telemetry ATTACH PARTITION {name} FOR VALUES FROM ({from}) TO ({to})"),
        format!("ALTER TABLE {name} DROP CONSTRAINT {name}_range"),
    ] {
        sqlx::query(&sql).execute(&mut *conn).await?;
    }
    Ok(moved)
}

async fn expire_partitions(
    conn: &mut PgConnection,
    cutoff: DateTime<Utc>,
    report: &mut Report,
) -> Result<(), DbError> {
    for day in partition_days(conn).await? {
        let end = day
            .checked_add_days(Days::new(1))
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|d| d.and_utc());
        if end.is_none_or(|end| end > cutoff) {
            continue;
        }
        let name = partition_name(day);
        let mut tx = sqlx::Connection::begin(&mut *conn).await?;
        for sql in [
            format!("SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"),
            format!("ALTER TABLE telemetry DETACH PARTITION {name}"),
            format!("DROP TABLE {name}"),
        ] {
            sqlx::query(&sql).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        report.partitions_dropped.push(name);
    }
    report.default_rows_expired = sqlx::query("DELETE FROM telemetry_default WHERE time < $1")
        .bind(cutoff)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    Ok(())
}

async fn expire_bookkeeping(
    conn: &mut PgConnection,
    cutoff: DateTime<Utc>,
) -> Result<u64, DbError> {
    let batches = sqlx::query("DELETE FROM ingested_batches WHERE received_at < $1")
        .bind(cutoff)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    let rejections = sqlx::query("DELETE FROM ingest_rejections WHERE time < $1")
        .bind(cutoff)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    Ok(batches + rejections)
}

/// A rollup level: its table, bucket width, and the SQL computing it from its source.
struct Level {
    table: &'static str,
    width_us: i64,
    width_sql: &'static str,
    from_raw: bool,
    source: &'static str,
}

const LEVELS: [Level; 3] = [
    Level {
        table: "telemetry_1m",
        width_us: 60_000_000,
        width_sql: "1 minute",
        from_raw: true,
        source: "telemetry",
    },
    Level {
        table: "telemetry_1h",
        width_us: 3_600_000_000,
        width_sql: "1 hour",
        from_raw: false,
        source: "telemetry_1m",
    },
    Level {
        table: "telemetry_1d",
        width_us: 86_400_000_000,
        width_sql: "1 day",
        from_raw: false,
        source: "telemetry_1h",
    },
];

/// A dirty range of a series, Unix microseconds, `from` and `to` inclusive.
type DirtyRange = (SeriesId, i64, i64);

async fn refresh_rollups(
    conn: &mut PgConnection,
    cutoff: Option<DateTime<Utc>>,
    report: &mut Report,
) -> Result<(), DbError> {
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(ROLLUP_LOCK)
        .execute(&mut *tx)
        .await?;
    let claimed: Vec<DirtyRange> =
        sqlx::query("DELETE FROM rollup_dirty RETURNING series_id, from_time, to_time")
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|r| {
                Ok((
                    r.try_get("series_id")?,
                    r.try_get::<DateTime<Utc>, _>("from_time")?
                        .timestamp_micros(),
                    r.try_get::<DateTime<Utc>, _>("to_time")?.timestamp_micros(),
                ))
            })
            .collect::<Result<_, sqlx::Error>>()?;
    if claimed.is_empty() {
        tx.commit().await?;
        return Ok(());
    }
    report.dirty_ranges = claimed.len() as u64;
    let cutoff_us = cutoff.map(|c| c.timestamp_micros());
    for level in &LEVELS {
        let ranges = bucket_ranges(&claimed, level.width_us, cutoff_us);
        if !ranges.is_empty() {
            report.rollup_rows += recompute(&mut tx, level, &ranges).await?;
        }
    }
    tx.commit().await?;
    Ok(())
}

/// Widens dirty ranges to whole buckets of `width_us` (aligned like the queries) and merges
/// overlapping or adjacent ones per series. Output ranges are half-open `[from, to)`.
///
/// Buckets starting before the retention cutoff (`cutoff_us`) are left alone: their raw
/// data is (partly) gone, and recomputing them would destroy rollups that are meant to
/// outlive it — a very late sample for such a bucket is not worth that.
fn bucket_ranges(dirty: &[DirtyRange], width_us: i64, cutoff_us: Option<i64>) -> Vec<DirtyRange> {
    const ORIGIN_US: i64 = 946_684_800_000_000;
    let floor = |t: i64| t - (t - ORIGIN_US).rem_euclid(width_us);
    let first_kept = cutoff_us.map_or(i64::MIN, |c| {
        let f = floor(c);
        if f == c {
            f
        } else {
            f.saturating_add(width_us)
        }
    });
    let mut ranges: Vec<DirtyRange> = dirty
        .iter()
        .map(|&(s, from, to)| {
            (
                s,
                floor(from).max(first_kept),
                floor(to).saturating_add(width_us),
            )
        })
        .filter(|&(_, from, to)| from < to)
        .collect();
    ranges.sort_unstable();
    let mut merged: Vec<DirtyRange> = Vec::with_capacity(ranges.len());
    for (series, from, to) in ranges {
        match merged.last_mut() {
            Some(last) if last.0 == series && from <= last.2 => last.2 = last.2.max(to),
            _ => merged.push((series, from, to)),
        }
    }
    merged
}

async fn recompute(
    conn: &mut PgConnection,
    level: &Level,
    ranges: &[DirtyRange],
) -> Result<u64, DbError> {
    let series: Vec<SeriesId> = ranges.iter().map(|r| r.0).collect();
    let to_time = |us: i64| {
        DateTime::<Utc>::from_timestamp_micros(us)
            .ok_or_else(|| DbError::invalid("dirty range", us.to_string()))
    };
    let from: Vec<DateTime<Utc>> = ranges
        .iter()
        .map(|r| to_time(r.1))
        .collect::<Result<_, _>>()?;
    let to: Vec<DateTime<Utc>> = ranges
        .iter()
        .map(|r| to_time(r.2))
        .collect::<Result<_, _>>()?;
    let ranges_sql =
        "unnest($1::bigint[], $2::timestamptz[], $3::timestamptz[]) AS d(series_id, f, t)";
    sqlx::query(&format!(
        "DELETE FROM {table} r USING {ranges_sql}
         WHERE r.series_id = d.series_id AND r.bucket >= d.f AND r.bucket < d.t",
        table = level.table
    ))
    .bind(&series)
    .bind(&from)
    .bind(&to)
    .execute(&mut *conn)
    .await?;
    let select = if level.from_raw {
        format!(
            "SELECT t.series_id, date_bin(INTERVAL '{width}', t.time, {ORIGIN_SQL}), {RAW_COLUMNS}
             FROM {ranges_sql}
             JOIN {source} t ON t.series_id = d.series_id AND t.time >= d.f AND t.time < d.t
             WHERE {GOOD_SAMPLES}
             GROUP BY 1, 2",
            width = level.width_sql,
            source = level.source,
        )
    } else {
        format!(
            "SELECT r.series_id, date_bin(INTERVAL '{width}', r.bucket, {ORIGIN_SQL}), {ROLLUP_COLUMNS}
             FROM {ranges_sql}
             JOIN {source} r ON r.series_id = d.series_id AND r.bucket >= d.f AND r.bucket < d.t
             GROUP BY 1, 2",
            width = level.width_sql,
            source = level.source,
        )
    };
    Ok(sqlx::query(&format!(
        "INSERT INTO {table} (series_id, bucket, avg, min, max, sum, count, first, last) {select}",
        table = level.table
    ))
    .bind(&series)
    .bind(&from)
    .bind(&to)
    .execute(&mut *conn)
    .await?
    .rows_affected())
}

/// Per-plan retention: deletes the raw telemetry, older than `now - retention`, of every
/// tenant on a plan that sets one (`plans`: plan name → its limits). Returns the rows
/// deleted per plan. The deletions mark the rollups of those days dirty (plain back-end)
/// or invalidate the continuous aggregates (TimescaleDB), so the rollups follow at their
/// next refresh on both back-ends, within the refresh window `[storage] retention`
/// allows. One statement per plan: at the job's interval each run deletes what aged past
/// the cutoff since the last one.
pub async fn expire_plan_telemetry(
    db: &Db,
    plans: &std::collections::BTreeMap<String, crate::tenants::PlanLimits>,
    now: DateTime<Utc>,
) -> Result<Vec<(String, u64)>, DbError> {
    let mut deleted = Vec::new();
    for (plan, limits) in plans {
        let Some(retention) = limits.retention else {
            continue;
        };
        let cutoff = now - chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::MAX);
        let done = sqlx::query(
            "DELETE FROM telemetry t
              USING series s JOIN tenants tn ON tn.id = s.tenant_id
              WHERE t.series_id = s.id AND tn.plan = $1 AND t.time < $2",
        )
        .bind(plan)
        .bind(cutoff)
        .execute(db.pool())
        .await?;
        deleted.push((plan.clone(), done.rows_affected()));
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000_000;

    #[test]
    fn partition_names_round_trip() {
        let day = NaiveDate::from_ymd_opt(2026, 11, 3).unwrap();
        assert_eq!(partition_name(day), "telemetry_p20261103");
        assert_eq!(partition_day("telemetry_p20261103"), Some(day));
        assert_eq!(partition_day("telemetry_default"), None);
        assert_eq!(partition_day("telemetry_p2026113"), None);
    }

    #[test]
    fn dirty_ranges_widen_to_buckets_and_merge_per_series() {
        let (a, b) = (SeriesId(1), SeriesId(2));
        let base = 946_684_800_000_000 + 1_000 * MIN; // a minute boundary
        let dirty = [
            (a, base + 10, base + 20),                         // minute 0
            (a, base + MIN + 5, base + MIN + 5),               // minute 1: adjacent, merges
            (a, base + 5 * MIN, base + 5 * MIN),               // minute 5: separate
            (b, base + 30 * 1_000_000, base + 90 * 1_000_000), // minutes 0..1
        ];
        let ranges = bucket_ranges(&dirty, MIN, None);
        assert_eq!(
            ranges,
            vec![
                (a, base, base + 2 * MIN),
                (a, base + 5 * MIN, base + 6 * MIN),
                (b, base, base + 2 * MIN),
            ]
        );
        // At hour level everything of a series collapses into one hour.
        let hours = bucket_ranges(&dirty, 60 * MIN, None);
        assert_eq!(hours.len(), 2);
    }

    #[test]
    fn buckets_before_the_retention_cutoff_are_not_recomputed() {
        let a = SeriesId(1);
        let base = 946_684_800_000_000 + 1_000 * MIN;
        let dirty = [
            (a, base, base + 10 * MIN),
            (a, base - 100 * MIN, base - 90 * MIN),
        ];
        // Cutoff in the middle of minute 3: minutes 4..=10 are recomputed.
        let ranges = bucket_ranges(&dirty, MIN, Some(base + 3 * MIN + 1));
        assert_eq!(ranges, vec![(a, base + 4 * MIN, base + 11 * MIN)]);
        // Cutoff on a boundary keeps that bucket.
        let ranges = bucket_ranges(&dirty, MIN, Some(base + 3 * MIN));
        assert_eq!(ranges, vec![(a, base + 3 * MIN, base + 11 * MIN)]);
        // Everything older than the cutoff: nothing to do.
        assert!(bucket_ranges(&dirty, MIN, Some(base + 20 * MIN)).is_empty());
    }

    #[test]
    fn days_ahead_includes_today() {
        let today = NaiveDate::from_ymd_opt(2026, 12, 30).unwrap();
        let days: Vec<_> = days_ahead(today, 3).collect();
        assert_eq!(days.len(), 4);
        assert_eq!(days[0], today);
        assert_eq!(days[3], NaiveDate::from_ymd_opt(2027, 1, 2).unwrap());
    }
}
