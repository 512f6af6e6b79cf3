//! Telemetry reads: raw samples and time buckets, identical SQL on both back-ends.
//!
//! Bucketed reads choose their source by the bucket width: the largest rollup whose width
//! divides it (`telemetry_1d`, `telemetry_1h`, `telemetry_1m`), re-aggregated with
//! `date_bin` (avg = Σsum / Σcount, min of mins, max of maxes, first of the earliest and
//! last of the latest sub-bucket), or raw `telemetry` for widths that are not whole
//! minutes. Like the rollups, buckets aggregate good samples only; buckets without any
//! good sample are absent. Buckets are aligned to 2000-01-01 00:00 UTC (so to UTC midnight
//! for any width dividing a day); the requested range is widened to whole buckets.
//!
//! Freshness: rows of `rollup_dirty` (plain back-end: written with the samples, consumed by
//! maintenance) mark ranges the rollups do not reflect yet. From the bucket holding the
//! earliest pending range of the selected series onwards, buckets are computed from raw
//! data, so results are always current — normally only the last few seconds since the
//! previous maintenance run come from raw. On TimescaleDB `rollup_dirty` stays empty and
//! the real-time continuous aggregates do that job only above each aggregate's watermark
//! (roughly now − one bucket): samples arriving for buckets already materialized (backlog
//! replay, late data) appear in the rollups after the next run of the refresh policies
//! (every minute for `telemetry_1m`, 10 minutes for `telemetry_1h`, one hour for
//! `telemetry_1d`, each level after the one below), so bucketed reads can lag that much
//! behind raw data there.
//!
//! The functions take a `PgConnection` so that they can run inside a tenant-scoped
//! transaction ([`Db::begin_tenant`]); [`Db`] has pool-based shorthands.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, Row};
use wire::Quality;

use crate::{Db, DbError, SeriesId, WellId};

/// Most buckets one query may return per series.
pub const MAX_BUCKETS: i64 = 100_000;
/// Microseconds from the Unix epoch to the bucket origin 2000-01-01 UTC.
const ORIGIN_US: i64 = 946_684_800_000_000;

/// One stored sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RawSample {
    /// Series of the sample.
    pub series_id: SeriesId,
    /// Sample time.
    pub time: DateTime<Utc>,
    /// Engineering value; `None` when the device gave none.
    pub value: Option<f64>,
    /// Quality.
    pub quality: Quality,
}

/// Aggregate of the good samples of one series in one time bucket.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    /// Series.
    pub series_id: SeriesId,
    /// Bucket start.
    pub bucket: DateTime<Utc>,
    /// Mean value.
    pub avg: f64,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
    /// Sum of the values.
    pub sum: f64,
    /// Number of good samples.
    pub count: i64,
    /// Value of the earliest good sample.
    pub first: f64,
    /// Value of the latest good sample.
    pub last: f64,
}

/// Where a bucketed query reads from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `telemetry`.
    Raw,
    /// `telemetry_1m`.
    Minute,
    /// `telemetry_1h`.
    Hour,
    /// `telemetry_1d`.
    Day,
}

impl Source {
    /// The source for a bucket width: the coarsest rollup whose width divides it.
    pub fn for_width(width: Duration) -> Source {
        let us = width.as_micros();
        if us.is_multiple_of(86_400_000_000) {
            Source::Day
        } else if us.is_multiple_of(3_600_000_000) {
            Source::Hour
        } else if us.is_multiple_of(60_000_000) {
            Source::Minute
        } else {
            Source::Raw
        }
    }

    fn relation(self) -> &'static str {
        match self {
            Source::Raw => "telemetry",
            Source::Minute => "telemetry_1m",
            Source::Hour => "telemetry_1h",
            Source::Day => "telemetry_1d",
        }
    }
}

pub(crate) fn quality_from_db(code: i16) -> Result<Quality, DbError> {
    u64::try_from(code)
        .ok()
        .and_then(Quality::from_code)
        .ok_or_else(|| DbError::corrupt("stored quality", code.to_string()))
}

/// `[from, to)` widened to whole buckets of `width`, as Unix microseconds.
fn align(from: DateTime<Utc>, to: DateTime<Utc>, width: Duration) -> Result<(i64, i64), DbError> {
    let w = i64::try_from(width.as_micros())
        .ok()
        .filter(|w| *w > 0)
        .ok_or_else(|| DbError::invalid("bucket width", "must be positive"))?;
    if to <= from {
        return Err(DbError::invalid("time range", "`to` must be after `from`"));
    }
    let floor = |t: i64| t - (t - ORIGIN_US).rem_euclid(w);
    let start = floor(from.timestamp_micros());
    let end_floor = floor(to.timestamp_micros());
    let end = if end_floor == to.timestamp_micros() {
        end_floor
    } else {
        end_floor + w
    };
    if (end - start) / w > MAX_BUCKETS {
        return Err(DbError::invalid(
            "bucket width",
            format!("more than {MAX_BUCKETS} buckets in the range"),
        ));
    }
    Ok((start, end))
}

fn micros_to_time(us: i64) -> Result<DateTime<Utc>, DbError> {
    DateTime::<Utc>::from_timestamp_micros(us)
        .ok_or_else(|| DbError::invalid("time range", "out of range"))
}

/// Series of a well measuring a canonical metric (one per device that reports it).
pub async fn series_for_well(
    conn: &mut PgConnection,
    well: WellId,
    metric: &str,
) -> Result<Vec<SeriesId>, DbError> {
    Ok(sqlx::query_scalar(
        "SELECT s.id FROM series s JOIN devices d ON d.id = s.device_id
         WHERE d.well_id = $1 AND s.metric = $2 ORDER BY s.id",
    )
    .bind(well)
    .bind(metric)
    .fetch_all(conn)
    .await?)
}

/// Raw samples of some series in `[from, to)`, oldest first, at most `limit`.
pub async fn raw(
    conn: &mut PgConnection,
    series: &[SeriesId],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    limit: u32,
) -> Result<Vec<RawSample>, DbError> {
    let rows = sqlx::query(
        "SELECT series_id, time, value, quality FROM telemetry
         WHERE series_id = ANY($1) AND time >= $2 AND time < $3
         ORDER BY time, series_id LIMIT $4",
    )
    .bind(series)
    .bind(from)
    .bind(to)
    .bind(i64::from(limit))
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(RawSample {
                series_id: r.try_get("series_id")?,
                time: r.try_get("time")?,
                value: r.try_get("value")?,
                quality: quality_from_db(r.try_get("quality")?)?,
            })
        })
        .collect()
}

/// Aggregate columns over raw rows `t` (good samples only; the caller filters them).
pub(crate) const RAW_COLUMNS: &str = "
    avg(t.value) AS avg, min(t.value) AS min, max(t.value) AS max,
    sum(t.value) AS sum, count(*) AS count,
    (array_agg(t.value ORDER BY t.time))[1] AS first,
    (array_agg(t.value ORDER BY t.time DESC))[1] AS last";

/// Aggregate columns combining rollup rows `r` into coarser buckets.
pub(crate) const ROLLUP_COLUMNS: &str = "
    sum(r.sum) / sum(r.count)::double precision AS avg,
    min(r.min) AS min, max(r.max) AS max,
    sum(r.sum) AS sum, sum(r.count)::bigint AS count,
    (array_agg(r.first ORDER BY r.bucket))[1] AS first,
    (array_agg(r.last ORDER BY r.bucket DESC))[1] AS last";

/// Which raw rows feed rollups and buckets.
pub(crate) const GOOD_SAMPLES: &str = "t.quality = 0 AND t.value IS NOT NULL";

/// The bucket origin as SQL.
pub(crate) const ORIGIN_SQL: &str = "TIMESTAMPTZ '2000-01-01 00:00:00+00'";

fn raw_aggregate(from_clause: &str, raw_from: &str) -> String {
    format!(
        "SELECT t.series_id, date_bin($4, t.time, {ORIGIN_SQL}) AS bucket, {RAW_COLUMNS}
         FROM {from_clause}
         WHERE t.series_id = ANY($1) AND t.time >= {raw_from} AND t.time < $3
           AND {GOOD_SAMPLES}
         GROUP BY 1, 2"
    )
}

fn bucketed_sql(source: Source) -> String {
    if source == Source::Raw {
        return format!("{} ORDER BY 1, 2", raw_aggregate("telemetry t", "$2"));
    }
    format!(
        "WITH cut AS (
             SELECT coalesce(date_bin($4, min(from_time), {ORIGIN_SQL}), 'infinity') AS at
             FROM rollup_dirty
             WHERE series_id = ANY($1) AND to_time >= $2 AND from_time < $3
         )
         SELECT r.series_id, date_bin($4, r.bucket, {ORIGIN_SQL}) AS bucket, {ROLLUP_COLUMNS}
         FROM {rollup} r, cut
         WHERE r.series_id = ANY($1) AND r.bucket >= $2 AND r.bucket < least($3, cut.at)
         GROUP BY 1, 2
         UNION ALL
         {raw}
         ORDER BY 1, 2",
        rollup = source.relation(),
        raw = raw_aggregate("telemetry t, cut", "greatest($2, cut.at)"),
    )
}

/// Buckets of `width` over `[from, to)` (widened to whole buckets) for some series.
pub async fn bucketed(
    conn: &mut PgConnection,
    series: &[SeriesId],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    width: Duration,
) -> Result<Vec<Bucket>, DbError> {
    let (start, end) = align(from, to, width)?;
    let rows = sqlx::query(&bucketed_sql(Source::for_width(width)))
        .bind(series)
        .bind(micros_to_time(start)?)
        .bind(micros_to_time(end)?)
        .bind(width)
        .fetch_all(conn)
        .await?;
    rows.iter()
        .map(|r| {
            Ok(Bucket {
                series_id: r.try_get("series_id")?,
                bucket: r.try_get("bucket")?,
                avg: r.try_get("avg")?,
                min: r.try_get("min")?,
                max: r.try_get("max")?,
                sum: r.try_get("sum")?,
                count: r.try_get("count")?,
                first: r.try_get("first")?,
                last: r.try_get("last")?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(DbError::from)
}

impl Db {
    /// See [`series_for_well`].
    pub async fn series_for_well(
        &self,
        well: WellId,
        metric: &str,
    ) -> Result<Vec<SeriesId>, DbError> {
        series_for_well(&mut *self.pool().acquire().await?, well, metric).await
    }

    /// Raw samples of a well's metric (all its series), oldest first, at most `limit`.
    pub async fn raw_for_well(
        &self,
        well: WellId,
        metric: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<RawSample>, DbError> {
        let mut conn = self.pool().acquire().await?;
        let series = series_for_well(&mut conn, well, metric).await?;
        raw(&mut conn, &series, from, to, limit).await
    }

    /// Buckets of a well's metric (per series), see [`bucketed`].
    pub async fn bucketed_for_well(
        &self,
        well: WellId,
        metric: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        width: Duration,
    ) -> Result<Vec<Bucket>, DbError> {
        let mut conn = self.pool().acquire().await?;
        let series = series_for_well(&mut conn, well, metric).await?;
        bucketed(&mut conn, &series, from, to, width).await
    }

    /// See [`raw`].
    pub async fn raw_series(
        &self,
        series: &[SeriesId],
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<RawSample>, DbError> {
        raw(&mut *self.pool().acquire().await?, series, from, to, limit).await
    }

    /// See [`bucketed`].
    pub async fn bucketed(
        &self,
        series: &[SeriesId],
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        width: Duration,
    ) -> Result<Vec<Bucket>, DbError> {
        bucketed(&mut *self.pool().acquire().await?, series, from, to, width).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn source_is_the_coarsest_dividing_rollup() {
        let cases = [
            (1, Source::Raw),
            (30, Source::Raw),
            (90, Source::Raw),
            (60, Source::Minute),
            (300, Source::Minute),
            (5400, Source::Minute),
            (3600, Source::Hour),
            (6 * 3600, Source::Hour),
            (86_400, Source::Day),
            (7 * 86_400, Source::Day),
        ];
        for (secs, source) in cases {
            assert_eq!(
                Source::for_width(Duration::from_secs(secs)),
                source,
                "{secs}s"
            );
        }
        assert_eq!(
            Source::for_width(Duration::from_millis(60_500)),
            Source::Raw
        );
    }

    #[test]
    fn range_is_widened_to_whole_buckets() {
        let (s, e) = align(
            t("2026-11-03T10:07:30Z"),
            t("2026-11-03T11:00:00Z"),
            Duration::from_secs(900),
        )
        .unwrap();
        assert_eq!(micros_to_time(s).unwrap(), t("2026-11-03T10:00:00Z"));
        assert_eq!(micros_to_time(e).unwrap(), t("2026-11-03T11:00:00Z"));
        let (s, e) = align(
            t("1999-12-31T23:59:59Z"),
            t("2000-01-01T00:00:01Z"),
            Duration::from_secs(86_400),
        )
        .unwrap();
        assert_eq!(micros_to_time(s).unwrap(), t("1999-12-31T00:00:00Z"));
        assert_eq!(micros_to_time(e).unwrap(), t("2000-01-02T00:00:00Z"));
    }

    #[test]
    fn bad_ranges_and_widths_are_refused() {
        let a = t("2026-01-01T00:00:00Z");
        let b = t("2026-01-02T00:00:00Z");
        assert!(align(b, a, Duration::from_secs(60)).is_err());
        assert!(align(a, b, Duration::ZERO).is_err());
        assert!(align(a, b, Duration::from_millis(1)).is_err());
    }
}
