//! Telemetry → `analytics::production::Reading`s for a range of production days.
//!
//! `derive_day` wants, per series, the good readings of the day plus a margin of at least
//! `max_gap` on both sides. Reading every raw sample of a 1 Hz series is wasteful, so the
//! readings are assembled from two sources:
//!
//! * **Raw samples in boundary zones** `[B − Z, B + Z)` around every day boundary `B`, with
//!   `Z = max_gap + 1 min` rounded up to whole minutes. Everything `derive_day` does at a
//!   boundary — interpolating a tank stock, apportioning a counter increment, clipping a
//!   rate integral — only looks at readings within `max_gap` of it, so boundary values are
//!   exact.
//! * **1-minute rollups** (`db::query::bucketed`, which also covers ranges the rollups do
//!   not reflect yet) for the minutes outside the zones: a counter contributes its first
//!   value at the minute's start and its last value at the minute's end (a counter's
//!   increments telescope, so the day's delta is exact; only the instants are rounded to the
//!   minute, which matters solely for gap detection), a gauge its mean at mid-minute (exact
//!   for rate integration of piecewise-linear rates, within the minute's variation
//!   otherwise).
//!
//! `gas_volume_yesterday_mcf` is different: the flow computer latches the previous day's
//! volume at the contract hour. For day `D` only the first value at or after
//! `end(D) + yesterday_settle` is given (the first minute bucket from then on), which is how
//! `derive_day` expects it.

use std::time::Duration;

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use sqlx::PgConnection;

use analytics::production::Reading;
use firmware_profiles::vocabulary::{self, MetricKind};

use store::production::{GoodSample, ProductionSeries, good_samples_in_zones};
use store::query::{Bucket, bucketed};
use store::{DbError, SeriesId};

/// The metric latched once a day by flow computers.
pub(crate) const YESTERDAY_METRIC: &str = "gas_volume_yesterday_mcf";
const MINUTE: i64 = 60_000;
/// Most days read per telemetry query (the bucketed query caps the buckets per series).
pub(crate) const MAX_DAYS_PER_READ: u64 = 31;

/// UTC midnight starting `day`, as ms.
pub(crate) fn day_start_ms(day: NaiveDate) -> i64 {
    day.and_hms_opt(0, 0, 0)
        .map_or(0, |t| t.and_utc().timestamp_millis())
}

fn time(ms: i64) -> Result<DateTime<Utc>, DbError> {
    DateTime::from_timestamp_millis(ms).ok_or_else(|| DbError::Invalid {
        what: "time",
        reason: format!("{ms} ms is out of range"),
    })
}

fn round_up_to_minute(ms: i64) -> i64 {
    (ms + MINUTE - 1).div_euclid(MINUTE) * MINUTE
}

/// Readings of one series over a range of days.
#[derive(Debug, Clone)]
pub(crate) struct SeriesReadings {
    /// The series.
    pub(crate) series: ProductionSeries,
    /// Readings sorted by time.
    pub(crate) readings: Vec<Reading>,
}

impl SeriesReadings {
    /// Readings `derive_day` needs for the day starting at `start_ms`: the day ± `margin`,
    /// or for the daily register the first reading from `end + settle` on.
    pub(crate) fn for_day(&self, start_ms: i64, margin_ms: i64, settle_ms: i64) -> Vec<Reading> {
        let end_ms = start_ms + 86_400_000;
        let r = &self.readings;
        if self.series.metric == YESTERDAY_METRIC {
            let from = end_ms + settle_ms;
            let i = r.partition_point(|x| x.ts_ms < from);
            return r
                .get(i)
                .filter(|x| x.ts_ms < end_ms + 86_400_000)
                .copied()
                .into_iter()
                .collect();
        }
        let lo = r.partition_point(|x| x.ts_ms < start_ms - margin_ms);
        let hi = r.partition_point(|x| x.ts_ms <= end_ms + margin_ms);
        r[lo..hi].to_vec()
    }
}

/// How the readings of `[from, to)` are read.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReadPlan {
    /// First day.
    pub(crate) from: NaiveDate,
    /// Day after the last.
    pub(crate) to: NaiveDate,
    /// Half width of the raw zones, ms (whole minutes).
    pub(crate) zone_ms: i64,
    /// Delay before the daily register holds the day, ms (whole minutes).
    pub(crate) settle_ms: i64,
}

impl ReadPlan {
    pub(crate) fn new(from: NaiveDate, to: NaiveDate, max_gap: Duration, settle: Duration) -> Self {
        let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 4);
        ReadPlan {
            from,
            to,
            zone_ms: round_up_to_minute(ms(max_gap).saturating_add(MINUTE)),
            settle_ms: round_up_to_minute(ms(settle)),
        }
    }

    fn start_ms(&self) -> i64 {
        day_start_ms(self.from)
    }

    fn end_ms(&self) -> i64 {
        day_start_ms(self.to)
    }

    /// Merged raw zones around every day boundary of the range.
    fn zones(&self) -> Vec<(i64, i64)> {
        let mut zones: Vec<(i64, i64)> = Vec::new();
        let mut b = self.start_ms();
        while b <= self.end_ms() {
            let zone = (b - self.zone_ms, b + self.zone_ms);
            match zones.last_mut() {
                Some(last) if zone.0 <= last.1 => last.1 = zone.1,
                _ => zones.push(zone),
            }
            b += 86_400_000;
        }
        zones
    }
}

/// Reads the readings of `series` for the days of `plan` (see the module docs).
pub(crate) async fn read(
    conn: &mut PgConnection,
    series: &[ProductionSeries],
    plan: &ReadPlan,
) -> Result<Vec<SeriesReadings>, DbError> {
    let (daily, regular): (Vec<&ProductionSeries>, Vec<&ProductionSeries>) =
        series.iter().partition(|s| s.metric == YESTERDAY_METRIC);
    let regular_ids: Vec<SeriesId> = regular.iter().map(|s| s.series_id).collect();
    let daily_ids: Vec<SeriesId> = daily.iter().map(|s| s.series_id).collect();
    let zones = plan.zones();
    let mut raw = Vec::new();
    let mut minutes = Vec::new();
    if !regular_ids.is_empty() {
        let zone_times = zones
            .iter()
            .map(|&(a, b)| Ok((time(a)?, time(b)?)))
            .collect::<Result<Vec<_>, DbError>>()?;
        raw = good_samples_in_zones(conn, &regular_ids, &zone_times).await?;
        let (lo, hi) = (plan.start_ms() - plan.zone_ms, plan.end_ms() + plan.zone_ms);
        minutes = bucketed(conn, &regular_ids, time(lo)?, time(hi)?, minute()).await?;
    }
    let mut latched = Vec::new();
    if !daily_ids.is_empty() {
        let lo = plan.start_ms() + 86_400_000 + plan.settle_ms;
        let hi = plan.end_ms() + 86_400_000;
        latched = bucketed(conn, &daily_ids, time(lo)?, time(hi)?, minute()).await?;
    }
    Ok(series
        .iter()
        .map(|s| {
            let readings = if s.metric == YESTERDAY_METRIC {
                latched_readings(s.series_id, &latched)
            } else {
                merged_readings(s, &raw, &minutes, &zones)
            };
            SeriesReadings {
                series: s.clone(),
                readings,
            }
        })
        .collect())
}

fn minute() -> Duration {
    Duration::from_secs(60)
}

fn is_counter(metric: &str) -> bool {
    vocabulary::lookup(metric).is_some_and(|d| d.kind == MetricKind::Counter)
}

/// Raw samples in the zones plus the minute buckets outside them, sorted.
fn merged_readings(
    s: &ProductionSeries,
    raw: &[GoodSample],
    minutes: &[Bucket],
    zones: &[(i64, i64)],
) -> Vec<Reading> {
    let counter = is_counter(&s.metric);
    let in_zone = |t: i64| zones.iter().any(|&(a, b)| t >= a && t < b);
    let mut out: Vec<Reading> = raw
        .iter()
        .filter(|x| x.series_id == s.series_id)
        .map(|x| Reading {
            ts_ms: x.time.timestamp_millis(),
            value: x.value,
        })
        .collect();
    for b in minutes.iter().filter(|b| b.series_id == s.series_id) {
        let start = b.bucket.timestamp_millis();
        if in_zone(start) {
            continue;
        }
        out.extend(bucket_readings(b, start, counter));
    }
    out.sort_by_key(|r| r.ts_ms);
    out
}

/// A minute bucket as readings: a counter's first and last values at the minute's edges, a
/// gauge's mean at mid-minute.
fn bucket_readings(b: &Bucket, start: i64, counter: bool) -> Vec<Reading> {
    if !counter {
        return vec![Reading {
            ts_ms: start + MINUTE / 2,
            value: b.avg,
        }];
    }
    let first = Reading {
        ts_ms: start,
        value: b.first,
    };
    if b.count > 1 {
        vec![
            first,
            Reading {
                ts_ms: start + MINUTE - 1,
                value: b.last,
            },
        ]
    } else {
        vec![first]
    }
}

/// The daily register: the first value of every minute bucket (the job picks per day).
fn latched_readings(series: SeriesId, buckets: &[Bucket]) -> Vec<Reading> {
    let mut out: Vec<Reading> = buckets
        .iter()
        .filter(|b| b.series_id == series)
        .map(|b| Reading {
            ts_ms: b.bucket.timestamp_millis(),
            value: b.first,
        })
        .collect();
    out.sort_by_key(|r| r.ts_ms);
    out
}

/// Days `[from, to)` split into chunks of at most [`MAX_DAYS_PER_READ`] days.
pub(crate) fn chunks(from: NaiveDate, to: NaiveDate) -> Vec<(NaiveDate, NaiveDate)> {
    let mut out = Vec::new();
    let mut start = from;
    while start < to {
        let end = (start + TimeDelta::days(MAX_DAYS_PER_READ as i64)).min(to);
        out.push((start, end));
        start = end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(ts_ms: i64, value: f64) -> Reading {
        Reading { ts_ms, value }
    }

    fn day(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn zones_surround_every_boundary_and_merge_when_wide() {
        let plan = ReadPlan::new(
            day("2024-03-01"),
            day("2024-03-03"),
            Duration::from_secs(30 * 60),
            Duration::from_secs(300),
        );
        assert_eq!(plan.zone_ms, 31 * MINUTE);
        let zones = plan.zones();
        assert_eq!(zones.len(), 3);
        let b0 = day_start_ms(day("2024-03-01"));
        assert_eq!(zones[0], (b0 - 31 * MINUTE, b0 + 31 * MINUTE));
        let wide = ReadPlan::new(
            day("2024-03-01"),
            day("2024-03-03"),
            Duration::from_secs(13 * 3600),
            Duration::ZERO,
        );
        assert_eq!(wide.zones().len(), 1, "overlapping zones merge");
    }

    #[test]
    fn counter_buckets_keep_first_and_last_at_the_minute_edges() {
        let b = Bucket {
            series_id: SeriesId(1),
            bucket: DateTime::from_timestamp_millis(600_000).unwrap(),
            avg: 5.0,
            min: 4.0,
            max: 6.0,
            sum: 15.0,
            count: 3,
            first: 4.0,
            last: 6.0,
        };
        assert_eq!(
            bucket_readings(&b, 600_000, true),
            vec![r(600_000, 4.0), r(659_999, 6.0)]
        );
        assert_eq!(bucket_readings(&b, 600_000, false), vec![r(630_000, 5.0)]);
    }

    #[test]
    fn daily_register_gives_the_first_value_after_settling() {
        let start = day_start_ms(day("2024-03-01"));
        let end = start + 86_400_000;
        let s = SeriesReadings {
            series: ProductionSeries {
                series_id: SeriesId(1),
                device_id: store::DeviceId(1),
                metric: YESTERDAY_METRIC.into(),
            },
            readings: vec![
                r(end + 60_000, 1.0),
                r(end + 360_000, 2.0),
                r(end + 420_000, 3.0),
            ],
        };
        assert_eq!(s.for_day(start, 0, 300_000), vec![r(end + 360_000, 2.0)]);
    }

    #[test]
    fn ranges_are_chunked() {
        let c = chunks(day("2024-01-01"), day("2024-03-15"));
        assert_eq!(c.first().unwrap().0, day("2024-01-01"));
        assert_eq!(c.last().unwrap().1, day("2024-03-15"));
        assert!(c.iter().all(|(a, b)| (*b - *a).num_days() <= 31));
        assert!(c.windows(2).all(|w| w[0].1 == w[1].0));
    }
}
