//! Validated production history: the `(time, rate)` points a decline curve is fitted to.
//!
//! Times are days from the decline origin (the fitted `qᵢ` is the rate at `t = 0`), strictly
//! increasing; rates are positive volumes per day (daily rates, or monthly volumes divided
//! by the days of the month, placed at any consistent point of the month). Shut-in and
//! downtime periods (zero rate) must be dropped by the caller: they are not decline.
//!
//! "Months of history" is `(t_last − t_first + Δ) / 30.4375`, where `Δ` is the median
//! spacing of the points (each point stands for one sampling interval), rounded to 0.1
//! month: six calendar months of monthly points (as few as 181 days) count as 6.0, and so
//! do 183 daily points.

use chrono::NaiveDate;

use super::{DAYS_PER_MONTH, DeclineError};

/// Production history ready for fitting.
#[derive(Debug, Clone, PartialEq)]
pub struct History {
    times: Vec<f64>,
    rates: Vec<f64>,
}

impl History {
    /// From `(days since the decline origin, rate)` points.
    pub fn new(points: &[(f64, f64)]) -> Result<Self, DeclineError> {
        let mut times = Vec::with_capacity(points.len());
        let mut rates = Vec::with_capacity(points.len());
        for (index, &(time, rate)) in points.iter().enumerate() {
            if !time.is_finite() || time < 0.0 {
                return Err(DeclineError::InvalidTime { index, time });
            }
            if !(rate.is_finite() && rate > 0.0) {
                return Err(DeclineError::NonPositiveRate { index, time, rate });
            }
            if let Some(&previous) = times.last()
                && time <= previous
            {
                return Err(DeclineError::UnsortedTimes {
                    index,
                    time,
                    previous,
                });
            }
            times.push(time);
            rates.push(rate);
        }
        Ok(History { times, rates })
    }

    /// From `(date, rate)` points; the first date is the decline origin (`t = 0`).
    pub fn from_dates(points: &[(NaiveDate, f64)]) -> Result<Self, DeclineError> {
        let origin = points.first().map(|&(date, _)| date);
        let in_days: Vec<(f64, f64)> = points
            .iter()
            .map(|&(date, rate)| {
                let days = origin.map_or(0, |o| (date - o).num_days());
                (days as f64, rate)
            })
            .collect();
        History::new(&in_days).map_err(|e| match e {
            // A date before the origin is an ordering problem, not a bad time.
            DeclineError::InvalidTime { index, time } => DeclineError::UnsortedTimes {
                index,
                time,
                previous: in_days[index - 1].0,
            },
            other => other,
        })
    }

    /// Times, days.
    pub fn times(&self) -> &[f64] {
        &self.times
    }

    /// Rates, volume/day.
    pub fn rates(&self) -> &[f64] {
        &self.rates
    }

    /// Number of points.
    pub fn len(&self) -> usize {
        self.times.len()
    }

    /// True when there are no points.
    pub fn is_empty(&self) -> bool {
        self.times.is_empty()
    }

    /// Time of the last point, days (0 when empty).
    pub fn last_time(&self) -> f64 {
        self.times.last().copied().unwrap_or(0.0)
    }

    /// Months of history, rounded to 0.1 (see the module docs).
    pub fn months(&self) -> f64 {
        let (Some(first), Some(last)) = (self.times.first(), self.times.last()) else {
            return 0.0;
        };
        let months = (last - first + self.median_spacing()) / DAYS_PER_MONTH;
        (months * 10.0).round() / 10.0
    }

    fn median_spacing(&self) -> f64 {
        let mut gaps: Vec<f64> = self.times.windows(2).map(|w| w[1] - w[0]).collect();
        if gaps.is_empty() {
            return 0.0;
        }
        let mid = gaps.len() / 2;
        let (_, median, _) = gaps.select_nth_unstable_by(mid, f64::total_cmp);
        *median
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn six_calendar_months_count_as_six() {
        let points: Vec<_> = (1..=6).map(|m| (date(2025, m, 1), 100.0)).collect();
        assert_eq!(History::from_dates(&points).unwrap().months(), 6.0);
        let daily: Vec<_> = (0..183).map(|d| (d as f64, 100.0)).collect();
        assert_eq!(History::new(&daily).unwrap().months(), 6.0);
        let short: Vec<_> = (0..180).map(|d| (d as f64, 100.0)).collect();
        assert_eq!(History::new(&short).unwrap().months(), 5.9);
        assert_eq!(History::new(&[]).unwrap().months(), 0.0);
    }

    #[test]
    fn rejects_bad_points() {
        assert!(matches!(
            History::new(&[(0.0, 1.0), (1.0, 0.0)]),
            Err(DeclineError::NonPositiveRate { index: 1, .. })
        ));
        assert!(matches!(
            History::new(&[(0.0, 1.0), (1.0, f64::NAN)]),
            Err(DeclineError::NonPositiveRate { index: 1, .. })
        ));
        assert!(matches!(
            History::new(&[(0.0, 1.0), (5.0, 1.0), (5.0, 1.0)]),
            Err(DeclineError::UnsortedTimes { index: 2, .. })
        ));
        assert!(matches!(
            History::new(&[(-1.0, 1.0)]),
            Err(DeclineError::InvalidTime { index: 0, .. })
        ));
        let backwards = [(date(2025, 2, 1), 1.0), (date(2025, 1, 1), 1.0)];
        assert!(matches!(
            History::from_dates(&backwards),
            Err(DeclineError::UnsortedTimes { index: 1, .. })
        ));
    }
}
