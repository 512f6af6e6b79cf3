//! Production optimization: what each well should make, the gap between what it makes and
//! that (with its uncertainty), a category, and ranked opportunities with their cause and
//! uplift in bbl/d and dollars.
//!
//! # Method
//!
//! *Potential rate* of a day: oil × 24 / hours on (days with at least
//! [`MIN_HOURS`] hours on), i.e. the rate at full runtime; weekly medians of it are what
//! the models read, so a down day or a noisy gauge does not move them.
//!
//! 1. **Own decline.** Every Arps model (`analytics::decline`, Levenberg–Marquardt, best
//!    by AICc) is fitted to the well's weekly potential rates up to the model's guard
//!    (default [`GUARD_DAYS`]) before the assessment, and forecast over the recent window with its Monte Carlo P10/P90: what
//!    the well would make had it gone on as before. It cannot see an impairment older than
//!    the guard (the fit has learnt it).
//! 2. **Peers.** Wells of the same field and lift type and a similar age (within a factor
//!    of the model's, default [`AGE_FACTOR`]), falling back to the field and then the fleet
//!    when fewer than [`MIN_PEERS`] remain: the median of their log ratio of recent
//!    potential to their potential the model's lag (default [`PEER_LAG_DAYS`]) earlier, applied to the well's own potential then. The
//!    spread is the peers' MAD. This sees an impairment that began after the reference
//!    window, however old.
//! 3. **Combined** by inverse variance in log space (each estimate's variance from its
//!    interval), so a well with a clean decline leans on it and a well whose own history
//!    is short or erratic leans on its peers.
//!
//! Gap = actual (calendar-day mean of the recent window, downtime included) − expected
//! potential, with a 90 % interval from both variances (and the actual's standard error).
//! The expectation is at full runtime, so a well running normally sits a few percent
//! below it; the category is "underperforming" when the whole interval lies below
//! `−tolerance × expected`, "over" when it lies above `+tolerance × expected`, else "on
//! target".
//!
//! **Causes**, recent window against the well's own 90 days before the peers' reference
//! time (or before the guard when the history is shorter): downtime (more down days), pump-off control too aggressive (a rod pump idled
//! below its usual runtime while fillage stays high: the pump is not pumped off), plunger
//! cycle short (cycles per day up), choke (tubing pressure up). Each carries its estimated
//! uplift; what no cause explains is "unexplained". Opportunities are ranked by dollars at
//! the configured price.
//!
//! **Training** ([`fit`], [`train_and_compare`]): the guard, the peers' lag and age factor
//! are chosen per tenant from [`GUARD_CHOICES`] × [`PEER_LAG_CHOICES`] ×
//! [`AGE_FACTOR_CHOICES`] on its own training wells alone. A tenant's data has no true
//! potential, so each candidate's expectation is scored against the potential the well
//! made over the recent window (median error: the wells impaired now are the findings, not
//! errors), and again with an impairment injected into the well's history (oil cut by 30 %
//! from a day 20 to 359 days back), against the same made potential: that is what the
//! guard and the peers are for, and a score of wells running normally alone would choose
//! parameters that learn impairments away. Every candidate is measured on the same wells,
//! a well it cannot expect counting as an infinite error, so none wins by leaving the
//! young wells unassessed. The mean of the two medians is minimised on two thirds of the
//! wells and compared with the model in use (the untrained defaults, [`GapModel::default`],
//! until one is registered) on the other third, with at least
//! [`crate::MIN_HELD_OUT_WELLS`] of them measured.

//! Why medians rather than a regression over the fleet (linfa's linear models): a large
//! share of wells is impaired at any time (the very wells to find), and a least-squares
//! fit is pulled toward them, while a median resists up to half its peers being off.
//!
//! *Invariants:* no I/O; `low ≤ p50 ≤ high` for expected and gap; a well's own actual
//! production never enters its expected value through its peers.

use std::collections::HashMap;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use analytics::decline::{self, EconomicLimits, FitOptions, ForecastOptions, History};

use crate::maintenance::Lift;

/// Stamped on every assessment: the method and its version.
pub const MODEL_VERSION: &str = "gap-decline-peers/1";
/// Least hours on for a day's potential rate.
pub const MIN_HOURS: f64 = 4.0;
/// Days before the assessment the own decline stops reading (untrained default).
pub const GUARD_DAYS: i64 = 60;
/// Days between a peer's reference window and the recent window (untrained default).
pub const PEER_LAG_DAYS: i64 = 270;
/// Peers' age within this factor of the well's (untrained default).
pub const AGE_FACTOR: f64 = 1.5;
/// Fewest peers before widening the group.
pub const MIN_PEERS: usize = 5;
/// z of a two-sided 90 % interval.
const Z90: f64 = 1.6449;
/// Smallest log-space standard deviation of an estimate.
const MIN_SIGMA: f64 = 0.03;

/// One well-day.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct WellDay {
    /// UTC day.
    pub day: NaiveDate,
    /// Oil, bbl (`None`: unknown).
    pub oil_bbl: Option<f64>,
    /// Hours on production.
    pub hours_on: Option<f64>,
    /// Rod pump fillage, %.
    pub fillage_pct: Option<f64>,
    /// Plunger cycles per day.
    pub plunger_cycles: Option<f64>,
    /// Tubing pressure, psi.
    pub tubing_pressure_psi: Option<f64>,
}

/// A well to assess.
#[derive(Debug, Clone, PartialEq)]
pub struct WellInput {
    /// Identifier.
    pub well: String,
    /// Field.
    pub field: String,
    /// Lift type (`None`: flowing, or not known).
    pub lift: Option<Lift>,
    /// Days since first production at the assessment day.
    pub age_days: f64,
    /// Days before the assessment day, any order.
    pub days: Vec<WellDay>,
}

/// Settings of an assessment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Options {
    /// The assessment day (the recent window ends the day before).
    pub as_of: NaiveDate,
    /// Days of the recent window.
    pub recent_days: i64,
    /// Oil price, dollars per bbl.
    pub price_per_bbl: f64,
    /// Band around expected counted as on target, fraction.
    pub tolerance: f64,
    /// Monte Carlo seed of the decline.
    pub seed: u64,
}

impl Options {
    /// 14-day window, 10 % tolerance, at `price_per_bbl`.
    pub fn new(as_of: NaiveDate, price_per_bbl: f64) -> Options {
        Options {
            as_of,
            recent_days: 14,
            price_per_bbl,
            tolerance: 0.10,
            seed: 0,
        }
    }

    fn validate(&self) -> Result<(), OptimizationError> {
        if !(1..=90).contains(&self.recent_days) {
            return Err(OptimizationError::Parameter("recent_days must be 1 to 90"));
        }
        if !(self.price_per_bbl.is_finite() && self.price_per_bbl >= 0.0) {
            return Err(OptimizationError::Parameter(
                "price_per_bbl must be finite and non-negative",
            ));
        }
        if !(self.tolerance.is_finite() && (0.0..1.0).contains(&self.tolerance)) {
            return Err(OptimizationError::Parameter("tolerance must be in [0, 1)"));
        }
        Ok(())
    }
}

/// The gap model's parameters: the untrained defaults ([`GapModel::default`]), or chosen
/// for a tenant by [`fit`] and kept in its model registry (a stored document may carry
/// fields a later build adds: they are ignored, not refused).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GapModel {
    /// Days before the assessment the own decline stops reading.
    pub guard_days: i64,
    /// Days between a peer's reference window and the recent window.
    pub peer_lag_days: i64,
    /// Peers' age within this factor of the well's.
    pub age_factor: f64,
}

impl Default for GapModel {
    fn default() -> Self {
        GapModel {
            guard_days: GUARD_DAYS,
            peer_lag_days: PEER_LAG_DAYS,
            age_factor: AGE_FACTOR,
        }
    }
}

impl GapModel {
    fn validate(&self) -> Result<(), OptimizationError> {
        if !(14..=365).contains(&self.guard_days) {
            return Err(OptimizationError::Parameter("guard_days must be 14 to 365"));
        }
        if !(30..=400).contains(&self.peer_lag_days) {
            return Err(OptimizationError::Parameter(
                "peer_lag_days must be 30 to 400",
            ));
        }
        if !(self.age_factor.is_finite() && self.age_factor >= 1.0) {
            return Err(OptimizationError::Parameter(
                "age_factor must be at least 1",
            ));
        }
        Ok(())
    }
}

/// Errors of an assessment or a training.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OptimizationError {
    /// A setting is out of range.
    #[error("{0}")]
    Parameter(&'static str),
    /// Not enough wells or history to train and measure a model.
    #[error("{0}")]
    NotEnoughData(String),
}

/// A value with its 90 % interval.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Interval {
    /// Low end.
    pub low: f64,
    /// Central value.
    pub p50: f64,
    /// High end.
    pub high: f64,
}

/// Category of a well.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Category {
    /// Below expected beyond the tolerance, with confidence.
    Underperforming,
    /// Within the tolerance (or not distinguishable from it).
    OnTarget,
    /// Above expected beyond the tolerance, with confidence.
    Over,
    /// Not enough data to say.
    Unknown,
}

impl Category {
    /// Stable name.
    pub fn name(self) -> &'static str {
        match self {
            Category::Underperforming => "underperforming",
            Category::OnTarget => "on_target",
            Category::Over => "over",
            Category::Unknown => "unknown",
        }
    }
}

/// Why a well makes less than it should.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CauseKind {
    /// More down days than usual.
    Downtime,
    /// The pump-off controller idles a pump that is not pumped off.
    PumpOffTooAggressive,
    /// Plunger cycles shorter (more per day) than the well's usual.
    PlungerCycleShort,
    /// Wellhead pressure held up: choked back.
    Choke,
    /// Below expected with no sign in the diagnostics.
    Unexplained,
}

impl CauseKind {
    /// Stable name.
    pub fn name(self) -> &'static str {
        match self {
            CauseKind::Downtime => "downtime",
            CauseKind::PumpOffTooAggressive => "pump_off_control_too_aggressive",
            CauseKind::PlungerCycleShort => "plunger_cycle_short",
            CauseKind::Choke => "choke",
            CauseKind::Unexplained => "unexplained",
        }
    }
}

/// One opportunity of a well.
#[derive(Debug, Clone, PartialEq)]
pub struct Opportunity {
    /// Cause.
    pub cause: CauseKind,
    /// Evidence in words.
    pub evidence: String,
    /// Estimated uplift, bbl/d.
    pub uplift_bbl_per_day: f64,
    /// Estimated uplift, dollars per day at the configured price.
    pub uplift_dollars_per_day: f64,
}

/// How the expected value was made.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimates {
    /// Own decline (rate, log sigma), when the history allows one.
    pub own: Option<(f64, f64)>,
    /// Peers (rate, log sigma, peers used), when there are peers.
    pub peers: Option<(f64, f64, usize)>,
}

/// The assessment of one well.
#[derive(Debug, Clone, PartialEq)]
pub struct Assessment {
    /// Well.
    pub well: String,
    /// Actual oil, calendar-day mean of the recent window, bbl/d.
    pub actual_bbl_per_day: f64,
    /// Expected potential, bbl/d, with its interval.
    pub expected_bbl_per_day: Interval,
    /// Actual − expected, bbl/d, with its interval.
    pub gap_bbl_per_day: Interval,
    /// Category.
    pub category: Category,
    /// Opportunities, largest first.
    pub opportunities: Vec<Opportunity>,
    /// The two estimates behind the expected value.
    pub estimates: Estimates,
}

impl Assessment {
    /// Total uplift, dollars per day.
    pub fn uplift_dollars_per_day(&self) -> f64 {
        self.opportunities
            .iter()
            .map(|o| o.uplift_dollars_per_day)
            .sum()
    }
}

/// Per-well figures the peers need.
#[derive(Debug, Clone)]
struct Summary {
    recent_potential: Option<f64>,
    reference_potential: Option<f64>,
}

fn potential(d: &WellDay) -> Option<f64> {
    match (d.oil_bbl, d.hours_on) {
        (Some(oil), Some(h)) if h >= MIN_HOURS && oil.is_finite() && oil >= 0.0 => {
            Some(oil * 24.0 / h.min(24.0))
        }
        _ => None,
    }
}

fn median(v: &mut [f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    })
}

fn in_window(w: &WellInput, from: NaiveDate, to: NaiveDate) -> impl Iterator<Item = &WellDay> {
    w.days.iter().filter(move |d| d.day >= from && d.day < to)
}

fn window_median<F: Fn(&WellDay) -> Option<f64>>(
    w: &WellInput,
    from: NaiveDate,
    to: NaiveDate,
    f: F,
) -> Option<f64> {
    let mut v: Vec<f64> = in_window(w, from, to).filter_map(f).collect();
    median(&mut v)
}

fn days_before(d: NaiveDate, n: i64) -> NaiveDate {
    d - chrono::TimeDelta::days(n)
}

fn summary(w: &WellInput, o: &Options, peer_lag_days: i64) -> Summary {
    let recent_from = days_before(o.as_of, o.recent_days);
    let ref_to = days_before(o.as_of, peer_lag_days);
    Summary {
        recent_potential: window_median(w, recent_from, o.as_of, potential),
        reference_potential: window_median(w, days_before(ref_to, 30), ref_to, potential),
    }
}

/// The own decline's expectation over the recent window: (rate, log sigma).
fn own_estimate(w: &WellInput, o: &Options, guard_days: i64) -> Option<(f64, f64)> {
    let fit_to = days_before(o.as_of, guard_days);
    let first = w.days.iter().map(|d| d.day).min()?;
    let weeks = (fit_to - first).num_days() / 7;
    let origin = days_before(fit_to, weeks * 7);
    let mut points = Vec::new();
    for k in 0..weeks {
        let from = origin + chrono::TimeDelta::days(7 * k);
        let to = from + chrono::TimeDelta::days(7);
        if let Some(q) = window_median(w, from, to, potential).filter(|q| *q > 0.0) {
            points.push((7.0 * k as f64 + 3.5, q));
        }
    }
    let t_first = points.first()?.0;
    let points: Vec<(f64, f64)> = points.iter().map(|&(t, q)| (t - t_first, q)).collect();
    let history = History::new(&points).ok()?;
    let fits = decline::fit_all(&history, &FitOptions::default()).ok()?;
    let t_end = (fit_to - origin).num_days() as f64 - t_first;
    // The middle of the recent window.
    let ahead = (guard_days - o.recent_days / 2).max(1) as usize;
    let f = decline::monte_carlo(
        fits.best(),
        t_end,
        &ForecastOptions {
            draws: 200,
            seed: o.seed,
            step: 1.0,
            steps: ahead,
            limits: EconomicLimits::time(t_end + 36_500.0),
        },
    )
    .ok()?;
    let p = f.points.last()?;
    if !(p.rate.p50 > 0.0 && p.rate.p90 > 0.0) {
        return None;
    }
    let trend = (p.rate.p10 / p.rate.p90).ln() / (2.0 * 1.2816);
    // The weekly scatter around the trend (residual sigma of ln q) adds to the trend's.
    let scatter = fits.best().statistics().sigma;
    Some((
        p.rate.p50,
        (trend * trend + scatter * scatter).sqrt().max(MIN_SIGMA),
    ))
}

/// Peers' log ratios of recent to reference potential, by widening groups.
fn peer_estimate(
    i: usize,
    wells: &[WellInput],
    summaries: &[Summary],
    age_factor: f64,
) -> Option<(f64, f64, usize)> {
    let me = &wells[i];
    let reference = summaries[i].reference_potential?;
    let ratio = |j: usize| -> Option<f64> {
        let s = &summaries[j];
        match (s.recent_potential, s.reference_potential) {
            (Some(r), Some(p)) if r > 0.0 && p > 0.0 => Some((r / p).ln()),
            _ => None,
        }
    };
    let similar_age = |w: &WellInput| {
        w.age_days > 0.0
            && me.age_days > 0.0
            && (w.age_days / me.age_days).max(me.age_days / w.age_days) <= age_factor
    };
    let groups: [&dyn Fn(&WellInput) -> bool; 3] = [
        &|w| w.field == me.field && w.lift == me.lift && similar_age(w),
        &|w| w.field == me.field && similar_age(w),
        &|w| similar_age(w),
    ];
    for group in groups {
        let mut logs: Vec<f64> = (0..wells.len())
            .filter(|&j| j != i && group(&wells[j]))
            .filter_map(ratio)
            .collect();
        if logs.len() >= MIN_PEERS {
            let n = logs.len();
            let m = median(&mut logs)?;
            let mut dev: Vec<f64> = logs.iter().map(|x| (x - m).abs()).collect();
            let mad = median(&mut dev)? * 1.4826;
            // The spread of one peer, not of the median: the well is one draw of its group.
            return Some((reference * m.exp(), mad.max(MIN_SIGMA), n));
        }
    }
    None
}

fn combine(own: Option<(f64, f64)>, peers: Option<(f64, f64, usize)>) -> Option<(f64, f64)> {
    let parts: Vec<(f64, f64)> = own
        .into_iter()
        .chain(peers.map(|(r, s, _)| (r, s)))
        .filter(|(r, s)| *r > 0.0 && s.is_finite() && *s > 0.0)
        .collect();
    if parts.is_empty() {
        return None;
    }
    let w: f64 = parts.iter().map(|(_, s)| 1.0 / (s * s)).sum();
    let mu: f64 = parts.iter().map(|(r, s)| r.ln() / (s * s)).sum::<f64>() / w;
    Some((mu.exp(), (1.0 / w).sqrt()))
}

struct Diagnostics {
    down_share_recent: f64,
    down_share_reference: f64,
    hours_recent: Option<f64>,
    hours_reference: Option<f64>,
    fillage_recent: Option<f64>,
    cycles_ratio: Option<f64>,
    pressure_ratio: Option<f64>,
}

fn diagnostics(w: &WellInput, o: &Options, m: &GapModel) -> Diagnostics {
    let recent_from = days_before(o.as_of, o.recent_days);
    // "Before" is the peers' reference time when the history reaches back to it, so an
    // impairment older than the guard still shows; else the weeks before the guard.
    let old_to = days_before(o.as_of, m.peer_lag_days);
    let ref_to = if in_window(w, days_before(old_to, 90), old_to)
        .next()
        .is_some()
    {
        old_to
    } else {
        days_before(o.as_of, m.guard_days)
    };
    let ref_from = days_before(ref_to, 90);
    let down_share = |from, to| {
        let hours: Vec<f64> = in_window(w, from, to).filter_map(|d| d.hours_on).collect();
        if hours.is_empty() {
            0.0
        } else {
            hours.iter().filter(|h| **h < MIN_HOURS).count() as f64 / hours.len() as f64
        }
    };
    let running_hours = |d: &WellDay| d.hours_on.filter(|h| *h >= MIN_HOURS);
    let ratio = |f: fn(&WellDay) -> Option<f64>| {
        let r = window_median(w, recent_from, o.as_of, f)?;
        let b = window_median(w, ref_from, ref_to, f)?;
        (b > 0.0).then(|| r / b)
    };
    Diagnostics {
        down_share_recent: down_share(recent_from, o.as_of),
        down_share_reference: down_share(ref_from, ref_to),
        hours_recent: window_median(w, recent_from, o.as_of, running_hours),
        hours_reference: window_median(w, ref_from, ref_to, running_hours),
        fillage_recent: window_median(w, recent_from, o.as_of, |d| d.fillage_pct),
        cycles_ratio: ratio(|d| d.plunger_cycles),
        pressure_ratio: ratio(|d| d.tubing_pressure_psi),
    }
}

fn causes(
    w: &WellInput,
    d: &Diagnostics,
    expected: f64,
    shortfall: f64,
    price: f64,
) -> Vec<Opportunity> {
    let mut out = Vec::new();
    let mut left = shortfall.max(0.0);
    let mut push = |cause, evidence: String, uplift: f64, left: &mut f64| {
        let uplift = uplift.min(*left).max(0.0);
        if uplift > 0.0 {
            *left -= uplift;
            out.push(Opportunity {
                cause,
                evidence,
                uplift_bbl_per_day: uplift,
                uplift_dollars_per_day: uplift * price,
            });
        }
    };
    let extra_down = d.down_share_recent - d.down_share_reference;
    if extra_down > 0.07 {
        push(
            CauseKind::Downtime,
            format!(
                "down {:.0} % of recent days against {:.0} % before",
                100.0 * d.down_share_recent,
                100.0 * d.down_share_reference
            ),
            expected * extra_down,
            &mut left,
        );
    }
    if w.lift == Some(Lift::RodPump)
        && let (Some(h), Some(h0), Some(fill)) =
            (d.hours_recent, d.hours_reference, d.fillage_recent)
        && h < h0 - 2.0
        && fill >= 75.0
    {
        push(
            CauseKind::PumpOffTooAggressive,
            format!(
                "runs {h:.1} h/d against {h0:.1} before while pump fillage stays at {fill:.0} %: \
                 the controller idles a pump that is not pumped off"
            ),
            expected * (h0 - h) / 24.0,
            &mut left,
        );
    }
    if w.lift == Some(Lift::PlungerLift)
        && let Some(r) = d.cycles_ratio
        && r > 1.25
    {
        push(
            CauseKind::PlungerCycleShort,
            format!(
                "{:.0} % more plunger cycles a day than before: cycles too short to lift a full slug",
                100.0 * (r - 1.0)
            ),
            left,
            &mut left,
        );
    }
    if let Some(r) = d.pressure_ratio
        && r > 1.15
    {
        push(
            CauseKind::Choke,
            format!(
                "tubing pressure {:.0} % above its level before: choked back",
                100.0 * (r - 1.0)
            ),
            left,
            &mut left,
        );
    }
    if left > 0.05 * expected {
        push(
            CauseKind::Unexplained,
            "below expected with normal runtime and pressures: check inflow, tubing and lift"
                .to_string(),
            left,
            &mut left,
        );
    }
    out.sort_by(|a, b| b.uplift_bbl_per_day.total_cmp(&a.uplift_bbl_per_day));
    out
}

fn assess_one(
    i: usize,
    wells: &[WellInput],
    summaries: &[Summary],
    o: &Options,
    m: &GapModel,
) -> Assessment {
    let w = &wells[i];
    let recent_from = days_before(o.as_of, o.recent_days);
    let oil: Vec<f64> = in_window(w, recent_from, o.as_of)
        .filter_map(|d| d.oil_bbl)
        .collect();
    let n = oil.len() as f64;
    let actual = if oil.is_empty() {
        0.0
    } else {
        oil.iter().sum::<f64>() / n
    };
    let actual_se = if oil.len() > 1 {
        (oil.iter().map(|x| (x - actual).powi(2)).sum::<f64>() / (n - 1.0) / n).sqrt()
    } else {
        0.0
    };
    let own = own_estimate(w, o, m.guard_days);
    let peers = peer_estimate(i, wells, summaries, m.age_factor);
    let estimates = Estimates { own, peers };
    let Some((expected, sigma)) = combine(own, peers).filter(|_| !oil.is_empty()) else {
        return Assessment {
            well: w.well.clone(),
            actual_bbl_per_day: actual,
            expected_bbl_per_day: Interval::default(),
            gap_bbl_per_day: Interval::default(),
            category: Category::Unknown,
            opportunities: Vec::new(),
            estimates,
        };
    };
    let expected_iv = Interval {
        low: expected * (-Z90 * sigma).exp(),
        p50: expected,
        high: expected * (Z90 * sigma).exp(),
    };
    // Gap: half-widths of the expectation's (asymmetric) interval and the actual's error.
    let half = |e: f64| (e * e + (Z90 * actual_se).powi(2)).sqrt();
    let gap = Interval {
        low: actual - expected - half(expected_iv.high - expected),
        p50: actual - expected,
        high: actual - expected + half(expected - expected_iv.low),
    };
    let tol = o.tolerance * expected;
    let category = if gap.high < -tol {
        Category::Underperforming
    } else if gap.low > tol {
        Category::Over
    } else {
        Category::OnTarget
    };
    let opportunities = if category == Category::Underperforming {
        causes(
            w,
            &diagnostics(w, o, m),
            expected,
            -gap.p50,
            o.price_per_bbl,
        )
    } else {
        Vec::new()
    };
    Assessment {
        well: w.well.clone(),
        actual_bbl_per_day: actual,
        expected_bbl_per_day: expected_iv,
        gap_bbl_per_day: gap,
        category,
        opportunities,
        estimates,
    }
}

/// Assesses every well of a fleet with the untrained defaults ([`assess_with`]).
pub fn assess(wells: &[WellInput], o: &Options) -> Result<Vec<Assessment>, OptimizationError> {
    assess_with(wells, o, &GapModel::default())
}

/// Assesses every well of a fleet (peers are the other wells) with a model's parameters,
/// ranked by uplift in dollars, largest first; wells without an opportunity follow by gap.
pub fn assess_with(
    wells: &[WellInput],
    o: &Options,
    m: &GapModel,
) -> Result<Vec<Assessment>, OptimizationError> {
    o.validate()?;
    m.validate()?;
    let summaries: Vec<Summary> = wells
        .iter()
        .map(|w| summary(w, o, m.peer_lag_days))
        .collect();
    let mut out: Vec<Assessment> = (0..wells.len())
        .map(|i| assess_one(i, wells, &summaries, o, m))
        .collect();
    out.sort_by(|a, b| {
        b.uplift_dollars_per_day()
            .total_cmp(&a.uplift_dollars_per_day())
            .then(a.gap_bbl_per_day.p50.total_cmp(&b.gap_bbl_per_day.p50))
    });
    Ok(out)
}

/// The "fleet average" baseline: every well is expected to make the mean recent potential
/// of the wells of its field and lift type (bbl/d), keyed by well.
pub fn fleet_average_baseline(wells: &[WellInput], o: &Options) -> HashMap<String, f64> {
    let mut groups: HashMap<(String, Option<Lift>), Vec<f64>> = HashMap::new();
    let recent: Vec<Option<f64>> = wells
        .iter()
        .map(|w| summary(w, o, PEER_LAG_DAYS).recent_potential)
        .collect();
    for (w, r) in wells.iter().zip(&recent) {
        if let Some(r) = r {
            groups
                .entry((w.field.clone(), w.lift))
                .or_default()
                .push(*r);
        }
    }
    wells
        .iter()
        .filter_map(|w| {
            let g = groups.get(&(w.field.clone(), w.lift))?;
            Some((w.well.clone(), g.iter().sum::<f64>() / g.len() as f64))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// Training: the parameters chosen on a tenant's own wells.

/// The own decline's guards [`fit`] chooses among, days.
pub const GUARD_CHOICES: [i64; 3] = [30, 60, 90];
/// The peers' lags [`fit`] chooses among, days.
pub const PEER_LAG_CHOICES: [i64; 3] = [180, 270, 365];
/// The peers' age factors [`fit`] chooses among.
pub const AGE_FACTOR_CHOICES: [f64; 3] = [1.25, 1.5, 2.0];
/// Algorithm name of a registered gap model.
pub const ALGORITHM: &str = "decline_peers_inverse_variance";
/// What a registered gap model reads.
pub const INPUTS: [&str; 5] = [
    "oil",
    "hours_on",
    "pump_fillage_pct",
    "plunger_cycles",
    "tubing_pressure_psi",
];

/// Share of oil the impairment [`fit`] injects takes away.
const INJECTED_LOSS: f64 = 0.3;

/// How well a model's expectations match what wells made: each well's expected potential
/// over the recent window (from the data before it and its peers) against the median
/// potential it made there, as it is and with an impairment injected into its history.
///
/// Medians, not means, of the errors: a well impaired now makes less than its potential,
/// and that shortfall is the finding, not the model's error; the median reads the wells
/// running as they should while they are most of the fleet. Models compared are measured on
/// the same wells — every well with a recent potential that any of them can expect — and a
/// well a model cannot expect counts as an infinite error, so no model wins by leaving the
/// hard (young) wells unassessed.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct GapMetrics {
    /// Wells compared.
    pub wells: usize,
    /// Of those, the wells this model has an expectation for.
    pub measured: usize,
    /// Median absolute percentage error of the expected potential, %.
    pub mdape_percent: f64,
    /// The same with the well's oil cut by 30 % from a day 20 to 359 days back (fixed per
    /// well): what a model must still expect of a well impaired that long, %.
    pub mdape_impaired_percent: f64,
    /// The mean of the two: what training minimises and promotion compares, %.
    pub score_percent: f64,
    /// Share of the measured wells whose recent potential lies inside the 90 % interval.
    pub coverage_90: f64,
}

/// A copy of a well whose oil is cut by [`INJECTED_LOSS`] from a day 20 to 359 days before
/// the assessment (fixed by `k`), its rate before untouched.
fn impaired_copy(w: &WellInput, k: usize, o: &Options) -> WellInput {
    let from = days_before(o.as_of, 20 + (k as i64 * 7919) % 340);
    let mut copy = w.clone();
    for d in copy.days.iter_mut().filter(|d| d.day >= from) {
        d.oil_bbl = d.oil_bbl.map(|v| v * (1.0 - INJECTED_LOSS));
    }
    copy
}

/// One well's expectations under a model (rate, log sigma): as it is, and impaired.
#[derive(Debug, Clone, Copy)]
struct Expected {
    clean: Option<(f64, f64)>,
    impaired: Option<(f64, f64)>,
}

/// Each model's expectations of the listed wells (peers are every well of `wells`, as
/// they are), and the potential each well made over the recent window.
fn expectations(
    wells: &[WellInput],
    which: &[usize],
    o: &Options,
    models: &[GapModel],
) -> (Vec<Vec<Expected>>, Vec<Option<f64>>) {
    let copies: Vec<WellInput> = which
        .iter()
        .map(|&i| impaired_copy(&wells[i], i, o))
        .collect();
    // The recent window does not depend on the parameters.
    let made: Vec<Option<f64>> = which
        .iter()
        .map(|&i| summary(&wells[i], o, PEER_LAG_DAYS).recent_potential)
        .collect();
    // The costly parts once per distinct parameter: the own decline per guard, the
    // summaries per lag, the peers per lag and age factor.
    let mut own: HashMap<i64, Vec<Pair>> = HashMap::new();
    let mut peers: HashMap<(i64, u64), Vec<PeerPair>> = HashMap::new();
    for m in models {
        own.entry(m.guard_days).or_insert_with(|| {
            which
                .iter()
                .zip(&copies)
                .map(|(&i, c)| {
                    (
                        own_estimate(&wells[i], o, m.guard_days),
                        own_estimate(c, o, m.guard_days),
                    )
                })
                .collect()
        });
    }
    let mut lags: Vec<i64> = models.iter().map(|m| m.peer_lag_days).collect();
    lags.sort_unstable();
    lags.dedup();
    for lag in lags {
        let mut summaries: Vec<Summary> = wells.iter().map(|w| summary(w, o, lag)).collect();
        let impaired: Vec<Summary> = copies.iter().map(|c| summary(c, o, lag)).collect();
        for m in models.iter().filter(|m| m.peer_lag_days == lag) {
            peers
                .entry((lag, m.age_factor.to_bits()))
                .or_insert_with(|| {
                    which
                        .iter()
                        .zip(&impaired)
                        .map(|(&i, imp)| {
                            let clean = peer_estimate(i, wells, &summaries, m.age_factor);
                            // The well's own summary is only its reference for its peers.
                            let kept = std::mem::replace(&mut summaries[i], imp.clone());
                            let injected = peer_estimate(i, wells, &summaries, m.age_factor);
                            summaries[i] = kept;
                            (clean, injected)
                        })
                        .collect()
                });
        }
    }
    let per_model = models
        .iter()
        .map(|m| {
            let own = &own[&m.guard_days];
            let peers = &peers[&(m.peer_lag_days, m.age_factor.to_bits())];
            own.iter()
                .zip(peers)
                .map(|(own, peers)| Expected {
                    clean: combine(own.0, peers.0),
                    impaired: combine(own.1, peers.1),
                })
                .collect()
        })
        .collect();
    (per_model, made)
}

/// Metrics of each model on the same wells: those with a recent potential that any of the
/// models expects (a model's missing expectation there is an infinite error).
fn compare(per_model: &[Vec<Expected>], made: &[Option<f64>]) -> Vec<GapMetrics> {
    let compared: Vec<usize> = (0..made.len())
        .filter(|&k| {
            made[k].is_some_and(|m| m > 0.0)
                && per_model
                    .iter()
                    .any(|e| e[k].clean.is_some_and(|(r, _)| r > 0.0))
        })
        .collect();
    per_model
        .iter()
        .map(|expected| {
            let (mut clean, mut impaired) = (Vec::new(), Vec::new());
            let (mut measured, mut inside) = (0, 0);
            for &k in &compared {
                let made = made[k].unwrap_or_default();
                let ape = |e: Option<(f64, f64)>| {
                    e.filter(|(r, _)| *r > 0.0)
                        .map_or(f64::INFINITY, |(r, _)| (r / made - 1.0).abs())
                };
                clean.push(ape(expected[k].clean));
                impaired.push(ape(expected[k].impaired));
                if let Some((r, sigma)) = expected[k].clean.filter(|(r, _)| *r > 0.0) {
                    measured += 1;
                    if ((made / r).ln() / sigma).abs() <= Z90 {
                        inside += 1;
                    }
                }
            }
            let mdape = 100.0 * median(&mut clean).unwrap_or(f64::INFINITY);
            let mdape_impaired = 100.0 * median(&mut impaired).unwrap_or(f64::INFINITY);
            GapMetrics {
                wells: compared.len(),
                measured,
                mdape_percent: mdape,
                mdape_impaired_percent: mdape_impaired,
                score_percent: 0.5 * (mdape + mdape_impaired),
                coverage_90: inside as f64 / measured.max(1) as f64,
            }
        })
        .collect()
}

/// A well's two expectations (rate, log sigma): as it is, and impaired.
type Pair = (Option<(f64, f64)>, Option<(f64, f64)>);
/// A well's two peer estimates (rate, log sigma, peers): as it is, and impaired.
type PeerPair = (Option<(f64, f64, usize)>, Option<(f64, f64, usize)>);

/// Models' metrics on the listed wells of a fleet (peers are every other well), all on the
/// same wells, in the order given.
pub fn measure(
    wells: &[WellInput],
    which: &[usize],
    o: &Options,
    models: &[GapModel],
) -> Result<Vec<GapMetrics>, OptimizationError> {
    o.validate()?;
    for m in models {
        m.validate()?;
    }
    let (per_model, made) = expectations(wells, which, o, models);
    Ok(compare(&per_model, &made))
}

/// A model fitted to a tenant's training wells.
#[derive(Debug, Clone, PartialEq)]
pub struct GapFit {
    /// The chosen parameters.
    pub model: GapModel,
    /// Every candidate's metrics on the training wells (all on the same wells), the chosen
    /// one's among them.
    pub candidates: Vec<(GapModel, GapMetrics)>,
    /// The chosen one's metrics on the training wells.
    pub metrics: GapMetrics,
}

/// Chooses the guard, peer lag and age factor whose expectations err least on a tenant's
/// training wells — the only wells read, each other's peers: the mean of the median
/// errors as they are and impaired, since a model must expect what a well running
/// normally makes and what an impaired one should.
pub fn fit(wells: &[WellInput], o: &Options) -> Result<GapFit, OptimizationError> {
    o.validate()?;
    let models: Vec<GapModel> = PEER_LAG_CHOICES
        .iter()
        .flat_map(|&lag| {
            AGE_FACTOR_CHOICES.iter().flat_map(move |&age_factor| {
                GUARD_CHOICES.iter().map(move |&guard_days| GapModel {
                    guard_days,
                    peer_lag_days: lag,
                    age_factor,
                })
            })
        })
        .collect();
    let all: Vec<usize> = (0..wells.len()).collect();
    let (per_model, made) = expectations(wells, &all, o, &models);
    let candidates: Vec<(GapModel, GapMetrics)> =
        models.into_iter().zip(compare(&per_model, &made)).collect();
    let Some(&(model, metrics)) = candidates
        .iter()
        .filter(|(_, m)| m.score_percent.is_finite())
        .min_by(|a, b| a.1.score_percent.total_cmp(&b.1.score_percent))
    else {
        return Err(OptimizationError::NotEnoughData(
            "no training well has both an expected and a recent potential".into(),
        ));
    };
    Ok(GapFit {
        model,
        candidates,
        metrics,
    })
}

/// A gap model trained for a tenant and how it compares with the one in use.
#[derive(Debug, Clone, PartialEq)]
pub struct GapOutcome {
    /// The new model and what its training measured.
    pub fit: GapFit,
    /// Its metrics on the held-out wells.
    pub metrics: GapMetrics,
    /// The model in use's on the same wells (the untrained defaults when none is).
    pub active_metrics: GapMetrics,
    /// Whether it replaces the model in use.
    pub promote: bool,
    /// Why (or why not), in words.
    pub reason: String,
    /// Wells trained on and held out.
    pub wells: (usize, usize),
    /// First and last day of the training data.
    pub window: (NaiveDate, NaiveDate),
    /// Well-days trained on.
    pub rows: usize,
    /// SHA-256 (hex) of the training data.
    pub data_hash: String,
}

/// Trains a gap model on two thirds of the wells (every well but each third, on their own
/// data alone) and measures it and the model in use (`active`, else the untrained
/// defaults, which make the gaps until then) on the other third, on the same wells, with
/// the whole fleet as peers, as in service. It is promoted by [`crate::promotion`] on the
/// held-out score.
pub fn train_and_compare(
    wells: &[WellInput],
    active: Option<&GapModel>,
    o: &Options,
) -> Result<GapOutcome, OptimizationError> {
    if wells.len() < 3 {
        return Err(OptimizationError::NotEnoughData(format!(
            "{} wells with production: at least 3 are needed (a third is held out)",
            wells.len()
        )));
    }
    let (held, train): (Vec<usize>, Vec<usize>) = (0..wells.len()).partition(|i| i % 3 == 2);
    let training: Vec<WellInput> = train.iter().map(|&i| wells[i].clone()).collect();
    let fit = fit(&training, o)?;
    let in_use = active.copied().unwrap_or_default();
    let [metrics, active_metrics]: [GapMetrics; 2] =
        measure(wells, &held, o, &[fit.model, in_use])?
            .try_into()
            .expect("two models measured");
    if metrics.wells == 0 {
        return Err(OptimizationError::NotEnoughData(
            "no held-out well has both an expected and a recent potential".into(),
        ));
    }
    let (promote, reason) = crate::promotion(
        "error of the expected potential (as is and impaired)",
        metrics.score_percent,
        active_metrics.score_percent,
        metrics.wells,
        active.is_some(),
    );
    let mut hasher = Sha256::new();
    let (mut first, mut rows) = (o.as_of, 0);
    for w in &training {
        hasher.update(format!("{} {} {:?} {}", w.well, w.field, w.lift, w.age_days).as_bytes());
        for d in w.days.iter().filter(|d| d.day < o.as_of) {
            hasher.update(format!("{d:?}").as_bytes());
            first = first.min(d.day);
            rows += 1;
        }
    }
    Ok(GapOutcome {
        fit,
        metrics,
        active_metrics,
        promote,
        reason,
        wells: (train.len(), held.len()),
        window: (first, o.as_of.pred_opt().unwrap_or(o.as_of)),
        rows,
        data_hash: hex::encode(hasher.finalize()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(i: i64) -> NaiveDate {
        NaiveDate::from_ymd_opt(2025, 1, 1).unwrap() + chrono::TimeDelta::days(i)
    }

    /// A well declining exponentially from `qi`; `impair(t)` → (factor, hours, tubing psi).
    fn well(
        name: &str,
        lift: Lift,
        qi: f64,
        days: i64,
        impair: impl Fn(i64) -> (f64, f64, f64),
    ) -> WellInput {
        WellInput {
            well: name.to_string(),
            field: "f".to_string(),
            lift: Some(lift),
            age_days: 400.0 + days as f64,
            days: (0..days)
                .map(|t| {
                    let wiggle = 1.0 + 0.02 * ((t * 7919 % 13) as f64 / 13.0 - 0.5);
                    let (factor, hours, psi) = impair(t);
                    WellDay {
                        day: day(t),
                        oil_bbl: Some(
                            qi * (-0.0015 * t as f64).exp() * factor * hours / 24.0 * wiggle,
                        ),
                        hours_on: Some(hours),
                        fillage_pct: (lift == Lift::RodPump).then_some(88.0),
                        plunger_cycles: (lift == Lift::PlungerLift).then_some(20.0),
                        tubing_pressure_psi: Some(psi),
                    }
                })
                .collect(),
        }
    }

    fn healthy(_: i64) -> (f64, f64, f64) {
        (1.0, 24.0, 100.0)
    }

    fn fleet(extra: WellInput) -> Vec<WellInput> {
        let mut v: Vec<WellInput> = (0..8)
            .map(|k| {
                well(
                    &format!("peer{k}"),
                    Lift::RodPump,
                    80.0 + 5.0 * k as f64,
                    400,
                    healthy,
                )
            })
            .collect();
        v.push(extra);
        v
    }

    #[test]
    fn a_healthy_well_is_on_target_with_a_small_gap() {
        let wells = fleet(well("w", Lift::RodPump, 100.0, 400, healthy));
        let out = assess(&wells, &Options::new(day(400), 70.0)).unwrap();
        let a = out.iter().find(|a| a.well == "w").unwrap();
        assert_eq!(a.category, Category::OnTarget);
        let e = a.expected_bbl_per_day;
        assert!(e.low <= e.p50 && e.p50 <= e.high);
        let truth = 100.0 * (-0.0015 * 393.0f64).exp();
        assert!((e.p50 - truth).abs() / truth < 0.05, "{e:?} vs {truth}");
        assert!(a.gap_bbl_per_day.low <= 0.0 && a.gap_bbl_per_day.high >= 0.0);
        assert!(a.estimates.own.is_some() && a.estimates.peers.is_some());
        assert!(a.opportunities.is_empty());
    }

    #[test]
    fn an_aggressive_pump_off_controller_is_found_and_priced() {
        let w = well("w", Lift::RodPump, 100.0, 400, |t| {
            if t >= 370 {
                (1.0, 15.0, 100.0)
            } else {
                healthy(t)
            }
        });
        let out = assess(&fleet(w), &Options::new(day(400), 70.0)).unwrap();
        // Ranked first: the only opportunity of the fleet.
        let a = &out[0];
        assert_eq!(a.well, "w");
        assert_eq!(a.category, Category::Underperforming);
        let top = &a.opportunities[0];
        assert_eq!(top.cause, CauseKind::PumpOffTooAggressive);
        let expected_uplift = a.expected_bbl_per_day.p50 * 9.0 / 24.0;
        assert!((top.uplift_bbl_per_day - expected_uplift).abs() / expected_uplift < 0.15);
        assert!((top.uplift_dollars_per_day - 70.0 * top.uplift_bbl_per_day).abs() < 1e-9);
    }

    #[test]
    fn a_choked_well_and_an_old_impairment_seen_by_peers() {
        // Choked 200 days ago: its own decline has learnt it, its peers have not.
        let w = well("w", Lift::RodPump, 100.0, 400, |t| {
            if t >= 200 {
                (0.7, 24.0, 150.0)
            } else {
                healthy(t)
            }
        });
        let out = assess(&fleet(w), &Options::new(day(400), 70.0)).unwrap();
        let a = out.iter().find(|a| a.well == "w").unwrap();
        let (peer_rate, _, n) = a.estimates.peers.unwrap();
        assert_eq!(n, 8);
        let truth = 100.0 * (-0.0015 * 393.0f64).exp();
        assert!(
            (peer_rate - truth).abs() / truth < 0.05,
            "{peer_rate} vs {truth}"
        );
        assert!(a.gap_bbl_per_day.p50 < 0.0);
        if a.category == Category::Underperforming {
            assert_eq!(a.opportunities[0].cause, CauseKind::Choke);
        }
    }

    #[test]
    fn no_data_is_unknown_and_bad_settings_are_errors() {
        let mut w = well("w", Lift::Esp, 50.0, 400, healthy);
        w.days.retain(|d| d.day < day(300));
        let out = assess(&fleet(w), &Options::new(day(400), 70.0)).unwrap();
        let a = out.iter().find(|a| a.well == "w").unwrap();
        assert_eq!(a.category, Category::Unknown);
        let mut o = Options::new(day(400), 70.0);
        o.price_per_bbl = -1.0;
        assert!(assess(&[], &o).is_err());
        o = Options::new(day(400), 70.0);
        o.recent_days = 0;
        assert!(assess(&[], &o).is_err());
        o = Options::new(day(400), 70.0);
        o.tolerance = 1.5;
        assert!(assess(&[], &o).is_err());
    }

    #[test]
    fn the_fleet_average_baseline_is_the_group_mean() {
        let wells = fleet(well("w", Lift::Esp, 100.0, 400, healthy));
        let b = fleet_average_baseline(&wells, &Options::new(day(400), 70.0));
        let w = b["w"];
        let truth = 100.0 * (-0.0015 * 393.0f64).exp();
        assert!((w - truth).abs() / truth < 0.03);
        assert!((b["peer0"] - b["peer7"]).abs() < 1e-9);
    }

    #[test]
    fn an_injected_impairment_cuts_only_the_oil_after_its_day() {
        let w = well("w", Lift::RodPump, 100.0, 400, healthy);
        let o = Options::new(day(400), 70.0);
        let c = impaired_copy(&w, 5, &o);
        let from = days_before(o.as_of, 20 + (5 * 7919) % 340);
        assert!(from > day(0));
        for (a, b) in w.days.iter().zip(&c.days) {
            assert_eq!((a.day, a.hours_on), (b.day, b.hours_on));
            let (before, after) = (a.oil_bbl.unwrap(), b.oil_bbl.unwrap());
            let expected = if b.day >= from { 0.7 * before } else { before };
            assert!((after - expected).abs() < 1e-9, "{:?}", b.day);
        }
    }

    /// `n` healthy rod-pump wells of 400 days; the last `young` of them only 200 days old.
    fn mixed_fleet(n: usize, young: usize) -> Vec<WellInput> {
        (0..n)
            .map(|k| {
                let days = if k >= n - young { 200 } else { 400 };
                let mut w = well(
                    &format!("w{k}"),
                    Lift::RodPump,
                    80.0 + 3.0 * k as f64,
                    400,
                    healthy,
                );
                w.days.retain(|d| d.day >= day(400 - days));
                w.age_days = days as f64;
                w
            })
            .collect()
    }

    #[test]
    fn fit_chooses_the_candidate_with_the_least_error_and_the_model_is_kept_as_json() {
        let wells = fleet(well("w", Lift::RodPump, 100.0, 400, healthy));
        let o = Options::new(day(400), 70.0);
        let f = fit(&wells, &o).unwrap();
        assert_eq!(
            f.candidates.len(),
            GUARD_CHOICES.len() * PEER_LAG_CHOICES.len() * AGE_FACTOR_CHOICES.len()
        );
        assert!(f.candidates.contains(&(f.model, f.metrics)));
        assert!(
            f.candidates
                .iter()
                .all(|(_, m)| f.metrics.score_percent <= m.score_percent)
        );
        assert_eq!(f.metrics.wells, wells.len());
        assert!(
            (f.metrics.score_percent
                - 0.5 * (f.metrics.mdape_percent + f.metrics.mdape_impaired_percent))
                .abs()
                < 1e-9
        );
        // A model that still expects what the wells made when their history is impaired.
        assert!(f.metrics.mdape_impaired_percent < 15.0, "{:?}", f.metrics);
        let json = serde_json::to_value(f.model).unwrap();
        assert_eq!(serde_json::from_value::<GapModel>(json).unwrap(), f.model);
        // A document a later build wrote, with a field this one does not know, still reads.
        let later = serde_json::json!({
            "guard_days": 60, "peer_lag_days": 270, "age_factor": 1.5, "added_later": 1
        });
        assert_eq!(
            serde_json::from_value::<GapModel>(later).unwrap(),
            GapModel::default()
        );
        // Its parameters are the ones assessments then use.
        let bad = GapModel {
            guard_days: 5,
            ..f.model
        };
        assert!(assess_with(&wells, &o, &bad).is_err());
        assert!(assess_with(&wells, &o, &f.model).is_ok());
    }

    #[test]
    fn candidates_are_compared_on_the_same_wells_and_an_unassessed_well_counts_against() {
        // Four young wells: a long guard or lag cannot expect them.
        let wells = mixed_fleet(12, 4);
        let o = Options::new(day(400), 70.0);
        let f = fit(&wells, &o).unwrap();
        let compared = f.candidates[0].1.wells;
        assert_eq!(compared, 12, "every well is expected by some candidate");
        assert!(f.candidates.iter().all(|(_, m)| m.wells == compared));
        let partial: Vec<_> = f
            .candidates
            .iter()
            .filter(|(_, m)| m.measured < m.wells)
            .collect();
        assert!(!partial.is_empty(), "{:?}", f.candidates);
        // A candidate leaving a third of the wells unassessed is never the best.
        assert_eq!(f.metrics.measured, compared, "{:?}", f.metrics);
        for (_, m) in partial {
            assert!(m.score_percent >= f.metrics.score_percent, "{m:?}");
        }
    }

    #[test]
    fn a_trained_model_replaces_a_worse_one_in_use_on_enough_held_out_wells_only() {
        let wells = mixed_fleet(18, 0);
        let o = Options::new(day(400), 70.0);
        // A model in use that learns every impairment away: a 14-day guard, peers a month
        // back.
        let poor = GapModel {
            guard_days: 14,
            peer_lag_days: 30,
            age_factor: 1.0,
        };
        let out = train_and_compare(&wells, Some(&poor), &o).unwrap();
        assert_eq!(out.wells, (12, 6));
        assert_eq!(out.metrics.wells, 6);
        assert!(
            out.promote,
            "{} {:?} {:?}",
            out.reason, out.metrics, out.active_metrics
        );
        assert!(
            out.reason.contains("beats") && out.reason.contains("the model in use"),
            "{}",
            out.reason
        );
        assert!(
            out.active_metrics.mdape_impaired_percent > 20.0,
            "{:?}",
            out.active_metrics
        );
        assert_eq!(out.window, (day(0), day(399)));
        assert_eq!(out.rows, 12 * 400);
        // The same model again does not beat itself.
        let again = train_and_compare(&wells, Some(&out.fit.model), &o).unwrap();
        assert!(!again.promote);
        assert!(again.reason.contains("does not beat"), "{}", again.reason);
        assert_eq!(again.data_hash, out.data_hash);
        assert_eq!(again.active_metrics, out.metrics);
        // Other training data, another hash; held-out data is not training data.
        let mut other = wells.clone();
        other[0].days[10].oil_bbl = Some(1.0);
        assert_ne!(
            train_and_compare(&other, None, &o).unwrap().data_hash,
            out.data_hash
        );
        let mut held = wells.clone();
        held[2].days[10].oil_bbl = Some(1.0);
        assert_eq!(
            train_and_compare(&held, None, &o).unwrap().data_hash,
            out.data_hash
        );
        // Three held-out wells are too few to replace anything, however poor.
        let few = train_and_compare(&wells[..9], Some(&poor), &o).unwrap();
        assert!(!few.promote);
        assert!(few.reason.contains("at least 5"), "{}", few.reason);
        assert!(matches!(
            train_and_compare(&wells[..2], None, &o),
            Err(OptimizationError::NotEnoughData(_))
        ));
    }
}
