//! Predictive maintenance: the probability that a rod-pump, ESP or plunger-lift well fails
//! within 7, 14 and 30 days, with the factors that raise it, in words.
//!
//! # Inputs
//!
//! Daily rollups per well ([`DailyRollup`]: the day's mean pump fillage, mean load range
//! (peak − minimum polished rod load), mean motor current, hours run, pump-off / start /
//! plunger cycles), never raw samples, plus the registry's workover and failure dates
//! ([`WellHistory`]). Missing rollups are `None`: a feature computed from too few days is
//! 0 (its fleet mean after standardization), never a guess.
//!
//! # Features (at a day, from that day and the days before it only)
//!
//! [`FEATURES`], each in engineering units, so the explanations can quote them:
//! fillage trend (least-squares slope over 14 days, %/day) and drop (30-day baseline ending
//! 14 days ago minus the last 7 days, points), load range change and day-to-day jitter
//! (relative to the baseline), motor current change, runtime drop (h/day), cycle change
//! (relative, either way: more pump-off or ESP restarts, fewer plunger arrivals), and
//! days since the last workover (log). The lift type enters as two indicators.
//!
//! # Model
//!
//! One L2-regularised logistic regression per horizon (`linfa-logistic`) on standardized
//! features. Chosen over a random forest or AdaBoost (`linfa-ensemble`), which rank as
//! well on trends like these but give votes, not calibrated probabilities, and no
//! per-feature account of a score; over an SVM (`linfa-svm`), which gives neither and
//! costs a kernel evaluation per support vector; and over a survival model (no linfa
//! implementation). A logistic score is a sum of per-feature terms `wᵢ·zᵢ`, so the top
//! contributing factors are exact, not approximated, and a prediction costs three dot
//! products. Probabilities are made monotone in the horizon (`p7 ≤ p14 ≤ p30`).
//!
//! # Labels
//!
//! A well-day is positive for horizon `h` when a failure starts in `(day, day + h]`.
//! Days from a failure to the workover that repaired it (the well is down) are neither
//! trained on nor scored.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use linfa::prelude::*;
use linfa_logistic::LogisticRegression;
use ndarray::{Array1, Array2};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Horizons predicted, days.
pub const HORIZONS: [u32; 3] = [7, 14, 30];

/// Days of history a well needs before it is scored (baseline window + recent window).
pub const MIN_HISTORY_DAYS: usize = 44;

/// The artificial-lift type of a well.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Lift {
    /// Beam pump with sucker rods.
    RodPump,
    /// Electric submersible pump.
    Esp,
    /// Plunger lift.
    PlungerLift,
}

/// One well-day of rollups (means of the day's good samples; `None` when absent).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct DailyRollup {
    /// Mean downhole pump fillage, %.
    pub fillage_pct: Option<f64>,
    /// Mean load range (peak − minimum polished rod load), lbf.
    pub load_range_lbf: Option<f64>,
    /// Mean motor current, A.
    pub motor_current_a: Option<f64>,
    /// Hours run.
    pub runtime_hr: Option<f64>,
    /// Pump-off / start cycles (rod pump, ESP) or plunger arrivals of the day.
    pub cycles: Option<f64>,
}

/// A well's daily rollups from `start`, one per consecutive day, with its registry events.
#[derive(Debug, Clone, PartialEq)]
pub struct WellHistory {
    /// Well name or id, for reports.
    pub well: String,
    /// Lift type.
    pub lift: Lift,
    /// Day of `days[0]`.
    pub start: NaiveDate,
    /// One entry per consecutive day.
    pub days: Vec<DailyRollup>,
    /// Workover (repair) dates, ascending.
    pub workovers: Vec<NaiveDate>,
    /// Failure start dates, ascending.
    pub failures: Vec<NaiveDate>,
    /// Days since the last workover at `start` (when the registry knows no earlier one).
    pub age_at_start: Option<u32>,
}

/// A feature of the model, in engineering units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Feature {
    /// Slope of fillage over the last 14 days, %/day.
    FillageTrend,
    /// Baseline fillage minus the last 7 days' mean, points.
    FillageDrop,
    /// Last 7 days' load range over the baseline, − 1.
    LoadRangeChange,
    /// Day-to-day spread of the load range in the last 7 days, relative to the baseline.
    LoadRangeJitter,
    /// Last 7 days' motor current over the baseline, − 1.
    MotorCurrentChange,
    /// Baseline runtime minus the last 7 days' mean, h/day.
    RuntimeDrop,
    /// |last 7 days' cycles over the baseline − 1|.
    CycleChange,
    /// ln(1 + days since the last workover).
    DaysSinceWorkover,
    /// 1 for an ESP.
    IsEsp,
    /// 1 for a plunger-lift well.
    IsPlunger,
}

/// Every feature, in model column order.
pub const FEATURES: [Feature; 10] = [
    Feature::FillageTrend,
    Feature::FillageDrop,
    Feature::LoadRangeChange,
    Feature::LoadRangeJitter,
    Feature::MotorCurrentChange,
    Feature::RuntimeDrop,
    Feature::CycleChange,
    Feature::DaysSinceWorkover,
    Feature::IsEsp,
    Feature::IsPlunger,
];

/// Features of the age-only baseline model.
pub const AGE_FEATURES: [Feature; 3] = [
    Feature::DaysSinceWorkover,
    Feature::IsEsp,
    Feature::IsPlunger,
];

impl Feature {
    /// Stable name.
    pub fn name(self) -> &'static str {
        match self {
            Feature::FillageTrend => "fillage_trend",
            Feature::FillageDrop => "fillage_drop",
            Feature::LoadRangeChange => "load_range_change",
            Feature::LoadRangeJitter => "load_range_jitter",
            Feature::MotorCurrentChange => "motor_current_change",
            Feature::RuntimeDrop => "runtime_drop",
            Feature::CycleChange => "cycle_change",
            Feature::DaysSinceWorkover => "days_since_workover",
            Feature::IsEsp => "is_esp",
            Feature::IsPlunger => "is_plunger",
        }
    }

    /// The value in words a production engineer recognises.
    pub fn describe(self, value: f64) -> String {
        match self {
            Feature::FillageTrend => {
                format!("pump fillage trending {value:+.2} %/day over 14 days")
            }
            Feature::FillageDrop => {
                format!("pump fillage {value:.1} points below its 30-day baseline")
            }
            Feature::LoadRangeChange => {
                format!(
                    "load range {:+.0} % against its 30-day baseline",
                    value * 100.0
                )
            }
            Feature::LoadRangeJitter => {
                format!("load range swinging {:.0} % day to day", value * 100.0)
            }
            Feature::MotorCurrentChange => {
                format!(
                    "motor current {:+.0} % against its 30-day baseline",
                    value * 100.0
                )
            }
            Feature::RuntimeDrop => format!("runtime down {value:.1} h/day against its baseline"),
            Feature::CycleChange => format!(
                "cycles per day changed {:.0} % from baseline",
                value * 100.0
            ),
            Feature::DaysSinceWorkover => {
                format!("{:.0} days since the last workover", value.exp() - 1.0)
            }
            Feature::IsEsp => "ESP well".to_owned(),
            Feature::IsPlunger => "plunger-lift well".to_owned(),
        }
    }
}

fn mean(values: impl Iterator<Item = Option<f64>>) -> Option<f64> {
    let (mut sum, mut n) = (0.0, 0usize);
    for v in values.flatten() {
        sum += v;
        n += 1;
    }
    (n >= 3).then(|| sum / n as f64)
}

fn window(
    days: &[DailyRollup],
    end: usize,
    len: usize,
    get: fn(&DailyRollup) -> Option<f64>,
) -> impl Iterator<Item = Option<f64>> + '_ {
    let from = (end + 1).saturating_sub(len);
    days[from..=end].iter().map(get)
}

/// Days since the well's last workover on its day `i` (before any in the history: its age
/// at the start plus `i`, a year when unknown).
pub fn days_since_workover(h: &WellHistory, i: usize) -> f64 {
    let day = h.start + chrono::Days::new(i as u64);
    h.workovers
        .iter()
        .rev()
        .find(|w| **w <= day)
        .map(|w| (day - *w).num_days() as f64)
        .unwrap_or_else(|| f64::from(h.age_at_start.unwrap_or(365)) + i as f64)
}

/// Indices (day offsets) of a history that are scored: enough history, and the well not
/// down between a failure and its repair.
pub fn scored_days(h: &WellHistory) -> Vec<usize> {
    let down = down_days(h);
    (MIN_HISTORY_DAYS - 1..h.days.len())
        .filter(|i| !down.contains(&(*i as i64)))
        .collect()
}

fn offset(h: &WellHistory, d: NaiveDate) -> i64 {
    (d - h.start).num_days()
}

fn down_days(h: &WellHistory) -> std::collections::HashSet<i64> {
    let mut out = std::collections::HashSet::new();
    for f in &h.failures {
        let from = offset(h, *f);
        let to = h
            .workovers
            .iter()
            .map(|w| offset(h, *w))
            .find(|w| *w >= from)
            .unwrap_or(from + 1);
        out.extend(from..=to);
    }
    out
}

/// The feature vector of `h` at day index `i` ([`FEATURES`] order).
pub fn features_at(h: &WellHistory, i: usize) -> [f64; FEATURES.len()] {
    let days = &h.days;
    let base_end = i.saturating_sub(14);
    let f = |d: &DailyRollup| d.fillage_pct;
    let l = |d: &DailyRollup| d.load_range_lbf;
    let c = |d: &DailyRollup| d.motor_current_a;
    let r = |d: &DailyRollup| d.runtime_hr;
    let y = |d: &DailyRollup| d.cycles;
    let recent = |get| mean(window(days, i, 7, get));
    let base = |get| mean(window(days, base_end, 30, get));
    let rel = |get| match (recent(get), base(get)) {
        (Some(a), Some(b)) if b.abs() > 1e-9 => a / b - 1.0,
        _ => 0.0,
    };
    // Least-squares slope of fillage over 14 days.
    let trend = {
        let pts: Vec<(f64, f64)> = window(days, i, 14, f)
            .enumerate()
            .filter_map(|(k, v)| v.map(|v| (k as f64, v)))
            .collect();
        if pts.len() >= 5 {
            let n = pts.len() as f64;
            let mx = pts.iter().map(|p| p.0).sum::<f64>() / n;
            let my = pts.iter().map(|p| p.1).sum::<f64>() / n;
            let sxx: f64 = pts.iter().map(|p| (p.0 - mx).powi(2)).sum();
            let sxy: f64 = pts.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
            if sxx > 0.0 { sxy / sxx } else { 0.0 }
        } else {
            0.0
        }
    };
    let drop = match (base(f), recent(f)) {
        (Some(b), Some(a)) => b - a,
        _ => 0.0,
    };
    let jitter = {
        let vals: Vec<f64> = window(days, i, 7, l).flatten().collect();
        match base(l) {
            Some(b) if vals.len() >= 3 && b.abs() > 1e-9 => {
                let diffs: Vec<f64> = vals.windows(2).map(|w| (w[1] - w[0]).abs()).collect();
                diffs.iter().sum::<f64>() / diffs.len() as f64 / b
            }
            _ => 0.0,
        }
    };
    let runtime_drop = match (base(r), recent(r)) {
        (Some(b), Some(a)) => b - a,
        _ => 0.0,
    };
    let age = days_since_workover(h, i);
    [
        trend,
        drop,
        rel(l),
        jitter,
        rel(c),
        runtime_drop,
        rel(y).abs(),
        age.ln_1p(),
        f64::from(u8::from(h.lift == Lift::Esp)),
        f64::from(u8::from(h.lift == Lift::PlungerLift)),
    ]
}

/// Whether a failure starts in `(day i, day i + horizon]`.
pub fn label(h: &WellHistory, i: usize, horizon: u32) -> bool {
    let i = i as i64;
    h.failures.iter().any(|f| {
        let o = offset(h, *f);
        o > i && o <= i + i64::from(horizon)
    })
}

/// One horizon's fitted model (standardized inputs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HorizonModel {
    /// Days.
    pub horizon: u32,
    /// Intercept.
    pub intercept: f64,
    /// One weight per feature.
    pub weights: Vec<f64>,
}

/// Held-out metrics of a model (and of the baselines in the same run).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// ROC AUC per horizon.
    pub auc: BTreeMap<u32, f64>,
    /// Precision at the top 10 % of risk, per horizon.
    pub precision_top10: BTreeMap<u32, f64>,
    /// Share of well-days positive, per horizon.
    pub prevalence: BTreeMap<u32, f64>,
    /// Median days from the first continuous 30-day alert to the failure, over failures
    /// alerted.
    pub median_lead_days: Option<f64>,
    /// Failures alerted at least one day ahead / failures scored.
    pub failures_alerted: f64,
    /// Failures in the held-out wells.
    pub failures: usize,
    /// Well-days scored.
    pub well_days: usize,
}

/// A trained predictive-maintenance model: what the registry stores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Model {
    /// Algorithm, e.g. `logistic_regression_l2`.
    pub algorithm: String,
    /// Features, in column order.
    pub features: Vec<Feature>,
    /// Standardization: mean per feature.
    pub means: Vec<f64>,
    /// Standardization: standard deviation per feature (1 where constant).
    pub scales: Vec<f64>,
    /// One model per horizon ([`HORIZONS`]).
    pub horizons: Vec<HorizonModel>,
    /// First and last day trained on.
    pub window: (NaiveDate, NaiveDate),
    /// SHA-256 of the training matrix and labels.
    pub data_hash: String,
    /// Rows trained on.
    pub rows: usize,
}

/// One factor raising (or lowering) a well's risk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Factor {
    /// Feature.
    pub feature: Feature,
    /// Its value, in the feature's unit.
    pub value: f64,
    /// Its term in the 30-day log-odds.
    pub contribution: f64,
    /// In words.
    pub words: String,
}

/// A well's risk at a day.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    /// Day scored.
    pub day: NaiveDate,
    /// Probability of a failure within 7, 14, 30 days.
    pub probability: [f64; 3],
    /// The factors raising the 30-day risk most, largest first (at most 3).
    pub factors: Vec<Factor>,
}

/// Why a model cannot be trained.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// No failure or no healthy day in the training data.
    #[error("the training data needs failures and healthy days: {0}")]
    OneClass(String),
    /// The solver failed.
    #[error("logistic regression: {0}")]
    Fit(String),
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// Training options.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrainOptions {
    /// Use every `stride`-th scored day of each well (neighbouring days are near copies).
    pub stride: usize,
    /// L2 regularization strength.
    pub alpha: f64,
    /// Solver iterations.
    pub max_iterations: u64,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            stride: 2,
            alpha: 1.0,
            max_iterations: 200,
        }
    }
}

impl Model {
    /// Trains on `wells` with the given feature set ([`FEATURES`] or [`AGE_FEATURES`]).
    pub fn train(
        wells: &[WellHistory],
        features: &[Feature],
        options: TrainOptions,
    ) -> Result<Model, TrainError> {
        let cols: Vec<usize> = features
            .iter()
            .map(|f| FEATURES.iter().position(|g| g == f).expect("known feature"))
            .collect();
        let mut rows: Vec<f64> = Vec::new();
        let mut labels: Vec<[bool; 3]> = Vec::new();
        let mut first: Option<NaiveDate> = None;
        let mut last: Option<NaiveDate> = None;
        for h in wells {
            for i in scored_days(h).into_iter().step_by(options.stride.max(1)) {
                let x = features_at(h, i);
                rows.extend(cols.iter().map(|c| x[*c]));
                labels.push(HORIZONS.map(|hz| label(h, i, hz)));
                let day = h.start + chrono::Days::new(i as u64);
                first = Some(first.map_or(day, |f| f.min(day)));
                last = Some(last.map_or(day, |l| l.max(day)));
            }
        }
        let n = labels.len();
        let k = cols.len();
        if n == 0 {
            return Err(TrainError::OneClass(
                "no well has enough history".to_owned(),
            ));
        }
        let mut x = Array2::from_shape_vec((n, k), rows).expect("rectangular");
        let mut hasher = Sha256::new();
        for v in x.iter() {
            hasher.update(v.to_le_bytes());
        }
        for l in &labels {
            hasher.update([u8::from(l[0]), u8::from(l[1]), u8::from(l[2])]);
        }
        let mut means = Vec::with_capacity(k);
        let mut scales = Vec::with_capacity(k);
        for j in 0..k {
            let col = x.column(j);
            let m = col.mean().unwrap_or(0.0);
            let s = col.std(0.0);
            let s = if s > 1e-12 { s } else { 1.0 };
            means.push(m);
            scales.push(s);
            x.column_mut(j).mapv_inplace(|v| (v - m) / s);
        }
        let mut horizons = Vec::new();
        for (hi, horizon) in HORIZONS.into_iter().enumerate() {
            let y: Array1<bool> = labels.iter().map(|l| l[hi]).collect();
            let positives = y.iter().filter(|v| **v).count();
            if positives == 0 || positives == n {
                return Err(TrainError::OneClass(format!(
                    "{positives} of {n} well-days fail within {horizon} days"
                )));
            }
            let data = Dataset::new(x.clone(), y);
            let fit = LogisticRegression::default()
                .alpha(options.alpha)
                .max_iterations(options.max_iterations)
                .fit(&data)
                .map_err(|e| TrainError::Fit(e.to_string()))?;
            // linfa reports the probability of its "positive" label: make it `true`.
            let sign = if fit.labels().pos.class { 1.0 } else { -1.0 };
            horizons.push(HorizonModel {
                horizon,
                intercept: sign * fit.intercept(),
                weights: fit.params().iter().map(|w| sign * w).collect(),
            });
        }
        let (first, last) = (first.expect("rows"), last.expect("rows"));
        Ok(Model {
            algorithm: "logistic_regression_l2".to_owned(),
            features: features.to_vec(),
            means,
            scales,
            horizons,
            window: (first, last),
            data_hash: hex::encode(hasher.finalize()),
            rows: n,
        })
    }

    fn columns(&self) -> Vec<usize> {
        self.features
            .iter()
            .map(|f| FEATURES.iter().position(|g| g == f).expect("known feature"))
            .collect()
    }

    /// Scores a full feature vector ([`FEATURES`] order): probabilities and the 30-day
    /// terms per model feature.
    fn score_vector(&self, cols: &[usize], x: &[f64; FEATURES.len()]) -> ([f64; 3], Vec<f64>) {
        let z: Vec<f64> = cols
            .iter()
            .enumerate()
            .map(|(j, c)| (x[*c] - self.means[j]) / self.scales[j])
            .collect();
        let mut p = [0.0; 3];
        let mut terms = Vec::new();
        for (hi, m) in self.horizons.iter().enumerate().take(3) {
            let t: Vec<f64> = m.weights.iter().zip(&z).map(|(w, z)| w * z).collect();
            p[hi] = sigmoid(m.intercept + t.iter().sum::<f64>());
            terms = t;
        }
        p[1] = p[1].max(p[0]);
        p[2] = p[2].max(p[1]);
        (p, terms)
    }

    /// Risk of `h` at day index `i`.
    pub fn predict_at(&self, h: &WellHistory, i: usize) -> Prediction {
        let cols = self.columns();
        let x = features_at(h, i);
        let (probability, terms) = self.score_vector(&cols, &x);
        let mut factors: Vec<Factor> = cols
            .iter()
            .zip(&self.features)
            .zip(terms)
            .filter(|((_, f), t)| *t > 0.0 && !matches!(f, Feature::IsEsp | Feature::IsPlunger))
            .map(|((c, f), t)| Factor {
                feature: *f,
                value: x[*c],
                contribution: t,
                words: f.describe(x[*c]),
            })
            .collect();
        factors.sort_by(|a, b| b.contribution.total_cmp(&a.contribution));
        factors.truncate(3);
        Prediction {
            day: h.start + chrono::Days::new(i as u64),
            probability,
            factors,
        }
    }

    /// Risk of `h` on its last day (`None` with too little history or while it is down).
    pub fn predict_latest(&self, h: &WellHistory) -> Option<Prediction> {
        let i = h.days.len().checked_sub(1)?;
        scored_days(h)
            .last()
            .filter(|d| **d == i)
            .map(|_| self.predict_at(h, i))
    }

    /// Held-out metrics on `wells`.
    pub fn evaluate(&self, wells: &[WellHistory]) -> Metrics {
        let cols = self.columns();
        let scored: Vec<WellScores> = wells
            .iter()
            .enumerate()
            .map(|(w, h)| {
                let days = scored_days(h)
                    .into_iter()
                    .map(|i| (i, self.score_vector(&cols, &features_at(h, i)).0))
                    .collect();
                (w, days)
            })
            .collect();
        evaluate_scores(wells, &scored)
    }
}

/// A well's scores: (index in the wells, (day index, p7/p14/p30) per scored day).
pub type WellScores = (usize, Vec<(usize, [f64; 3])>);

/// Metrics of any scorer: `scored[w]` = (well index, (day index, p7/p14/p30) per scored day).
pub fn evaluate_scores(wells: &[WellHistory], scored: &[WellScores]) -> Metrics {
    let mut auc = BTreeMap::new();
    let mut precision_top10 = BTreeMap::new();
    let mut prevalence = BTreeMap::new();
    // The alert set: the top 10 % of well-days by 30-day risk. Ties are broken by a
    // fixed hash of (well, day), so a scorer that cannot rank (a constant) alerts on an
    // arbitrary 10 %, not on everything.
    let mut alerted: std::collections::HashSet<(usize, usize)> = std::collections::HashSet::new();
    let mut well_days = 0;
    let tie =
        |w: usize, i: usize| (w as u64 * 1_000_003 + i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    for (hi, horizon) in HORIZONS.into_iter().enumerate() {
        let mut ranked: Vec<(f64, u64, bool, usize, usize)> = Vec::new();
        for (w, days) in scored {
            for (i, p) in days {
                ranked.push((p[hi], tie(*w, *i), label(&wells[*w], *i, horizon), *w, *i));
            }
        }
        well_days = ranked.len();
        ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        let top = (ranked.len() / 10).max(1).min(ranked.len());
        let hits = ranked[..top].iter().filter(|p| p.2).count();
        precision_top10.insert(horizon, hits as f64 / top as f64);
        let pairs: Vec<(f64, bool)> = ranked.iter().map(|r| (r.0, r.2)).collect();
        let pos = pairs.iter().filter(|p| p.1).count();
        prevalence.insert(horizon, pos as f64 / pairs.len().max(1) as f64);
        auc.insert(horizon, roc_auc(&pairs));
        if horizon == 30 {
            alerted = ranked[..top].iter().map(|r| (r.3, r.4)).collect();
        }
    }
    // Lead time: for each failure, the earliest day of the unbroken run of alerts ending
    // the day before it (at most 60 days counted).
    let mut leads = Vec::new();
    let mut failures = 0;
    for (w, _) in scored {
        let h = &wells[*w];
        for f in &h.failures {
            let o = offset(h, *f);
            if o < MIN_HISTORY_DAYS as i64 || o as usize > h.days.len() {
                continue;
            }
            failures += 1;
            let mut lead = 0;
            let mut d = o - 1;
            while d >= 0 && lead < 60 {
                if alerted.contains(&(*w, d as usize)) {
                    lead += 1;
                    d -= 1;
                } else {
                    break;
                }
            }
            if lead > 0 {
                leads.push(lead as f64);
            }
        }
    }
    leads.sort_by(f64::total_cmp);
    let median_lead_days = (!leads.is_empty()).then(|| {
        let m = leads.len() / 2;
        if leads.len() % 2 == 1 {
            leads[m]
        } else {
            (leads[m - 1] + leads[m]) / 2.0
        }
    });
    Metrics {
        auc,
        precision_top10,
        prevalence,
        median_lead_days,
        failures_alerted: leads.len() as f64 / failures.max(1) as f64,
        failures,
        well_days,
    }
}

/// ROC AUC of (score, label) pairs sorted by descending score (ties share their rank).
pub fn roc_auc(sorted_desc: &[(f64, bool)]) -> f64 {
    let pos = sorted_desc.iter().filter(|p| p.1).count() as f64;
    let neg = sorted_desc.len() as f64 - pos;
    if pos == 0.0 || neg == 0.0 {
        return 0.5;
    }
    // Mann-Whitney U with midranks, ascending ranks.
    let n = sorted_desc.len();
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < n {
        let mut j = i;
        while j + 1 < n && sorted_desc[j + 1].0 == sorted_desc[i].0 {
            j += 1;
        }
        // Descending positions i..=j → ascending ranks n-j ..= n-i.
        let mid = ((n - j) + (n - i)) as f64 / 2.0;
        let p = sorted_desc[i..=j].iter().filter(|p| p.1).count() as f64;
        rank_sum += mid * p;
        i = j + 1;
    }
    (rank_sum - pos * (pos + 1.0) / 2.0) / (pos * neg)
}

/// Canonical metrics whose daily rollups the features read.
pub const ROLLUP_METRICS: [&str; 7] = [
    "pump_fillage_pct",
    "rod_load_peak_lbf",
    "rod_load_min_lbf",
    "motor_current_a",
    "pump_runtime_today_hr",
    "pump_cycles_today",
    "plunger_arrivals_total",
];

/// One daily rollup of one of a well's series (good samples only), as stored.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RollupRow<'a> {
    /// Day (UTC).
    pub day: NaiveDate,
    /// Canonical metric (one of [`ROLLUP_METRICS`]).
    pub metric: &'a str,
    /// Mean of the day.
    pub avg: f64,
    /// Minimum of the day.
    pub min: f64,
    /// Maximum of the day.
    pub max: f64,
}

/// The lift type a well's metrics show: rod loads → rod pump, plunger arrivals → plunger
/// lift, motor current without rod loads → ESP; none of them → not a lift well.
pub fn lift_from_metrics<'a>(metrics: impl IntoIterator<Item = &'a str>) -> Option<Lift> {
    let (mut rod, mut plunger, mut current) = (false, false, false);
    for m in metrics {
        match m {
            "rod_load_peak_lbf" | "rod_load_min_lbf" | "pump_fillage_pct" => rod = true,
            "plunger_arrivals_total" => plunger = true,
            "motor_current_a" => current = true,
            _ => {}
        }
    }
    if rod {
        Some(Lift::RodPump)
    } else if plunger {
        Some(Lift::PlungerLift)
    } else if current {
        Some(Lift::Esp)
    } else {
        None
    }
}

/// A well's history for days in `[from, to)` from its rollups and registry events
/// (`None` when its metrics show no lift type). Several series of one metric (two
/// devices) are averaged.
pub fn history_from_rollups(
    well: String,
    from: NaiveDate,
    to: NaiveDate,
    rows: &[RollupRow<'_>],
    mut failures: Vec<NaiveDate>,
    mut workovers: Vec<NaiveDate>,
) -> Option<WellHistory> {
    let lift = lift_from_metrics(rows.iter().map(|r| r.metric))?;
    let n = usize::try_from((to - from).num_days())
        .ok()
        .filter(|n| *n > 0)?;
    // Per day and metric: (sum, count) of the chosen statistic.
    let mut acc: Vec<[(f64, u32); 7]> = vec![[(0.0, 0); 7]; n];
    for r in rows {
        let Some(m) = ROLLUP_METRICS.iter().position(|x| *x == r.metric) else {
            continue;
        };
        let Ok(i) = usize::try_from((r.day - from).num_days()) else {
            continue;
        };
        if i >= n {
            continue;
        }
        let value = match r.metric {
            // Counters and "today" registers: the day's figure is its maximum (or the
            // counter's increase).
            "pump_runtime_today_hr" | "pump_cycles_today" => r.max,
            "plunger_arrivals_total" => r.max - r.min,
            _ => r.avg,
        };
        if value.is_finite() {
            acc[i][m].0 += value;
            acc[i][m].1 += 1;
        }
    }
    let get = |a: &[(f64, u32); 7], m: usize| (a[m].1 > 0).then(|| a[m].0 / f64::from(a[m].1));
    let days = acc
        .iter()
        .map(|a| DailyRollup {
            fillage_pct: get(a, 0),
            load_range_lbf: get(a, 1).zip(get(a, 2)).map(|(p, m)| p - m),
            motor_current_a: get(a, 3),
            runtime_hr: get(a, 4),
            cycles: get(a, 6).or(get(a, 5)),
        })
        .collect();
    failures.sort();
    workovers.sort();
    Some(WellHistory {
        well,
        lift,
        start: from,
        days,
        workovers,
        failures,
        age_at_start: None,
    })
}

/// A model trained for a tenant and how it compares with the one in use.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainOutcome {
    /// The new model.
    pub model: Model,
    /// Its metrics on the held-out wells.
    pub metrics: Metrics,
    /// The active model's metrics on the same held-out wells.
    pub active_metrics: Option<Metrics>,
    /// Whether it replaces the active model.
    pub promote: bool,
    /// Why (or why not), in words.
    pub reason: String,
    /// Wells trained on and held out.
    pub wells: (usize, usize),
}

fn mean_auc(m: &Metrics) -> f64 {
    m.auc.values().sum::<f64>() / m.auc.len().max(1) as f64
}

/// Trains on all but every third well (in the given order), evaluates the new model and
/// the active one on those held-out wells, and promotes the new one only when its mean
/// ROC AUC over the horizons is higher by more than 0.001.
pub fn train_and_compare(
    wells: &[WellHistory],
    active: Option<&Model>,
    options: TrainOptions,
) -> Result<TrainOutcome, TrainError> {
    if wells.len() < 3 {
        return Err(TrainError::OneClass(format!(
            "{} lift wells with history: at least 3 are needed (a third is held out)",
            wells.len()
        )));
    }
    let (train, held): (Vec<_>, Vec<_>) = wells.iter().enumerate().partition(|(i, _)| i % 3 != 2);
    let train: Vec<WellHistory> = train.into_iter().map(|(_, w)| w.clone()).collect();
    let held: Vec<WellHistory> = held.into_iter().map(|(_, w)| w.clone()).collect();
    let model = Model::train(&train, &FEATURES, options)?;
    let metrics = model.evaluate(&held);
    let active_metrics = active.map(|a| a.evaluate(&held));
    let (promote, reason) = match &active_metrics {
        None => (true, "no model in use".to_owned()),
        Some(a) => {
            let (new, old) = (mean_auc(&metrics), mean_auc(a));
            if new > old + 0.001 {
                (
                    true,
                    format!("held-out mean ROC AUC {new:.3} beats {old:.3} of the model in use"),
                )
            } else {
                (
                    false,
                    format!(
                        "held-out mean ROC AUC {new:.3} does not beat {old:.3} of the model in use"
                    ),
                )
            }
        }
    };
    Ok(TrainOutcome {
        model,
        metrics,
        active_metrics,
        promote,
        reason,
        wells: (train.len(), held.len()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wear::{WearFleet, WearOptions};

    #[test]
    fn histories_from_rollups_infer_the_lift_and_the_daily_figures() {
        let d = |n| NaiveDate::from_ymd_opt(2025, 1, n).unwrap();
        let row = |day, metric, avg, min, max| RollupRow {
            day,
            metric,
            avg,
            min,
            max,
        };
        let rows = [
            row(d(1), "pump_fillage_pct", 80.0, 60.0, 95.0),
            row(d(1), "rod_load_peak_lbf", 12000.0, 11000.0, 13000.0),
            row(d(1), "rod_load_min_lbf", 4000.0, 3500.0, 4500.0),
            row(d(1), "pump_runtime_today_hr", 10.0, 0.0, 21.5),
            row(d(2), "pump_cycles_today", 3.0, 0.0, 7.0),
            row(d(9), "pump_fillage_pct", 1.0, 1.0, 1.0),
            row(d(1), "tubing_pressure_psi", 1.0, 1.0, 1.0),
        ];
        let h = history_from_rollups("w".into(), d(1), d(4), &rows, vec![d(3)], vec![]).unwrap();
        assert_eq!(h.lift, Lift::RodPump);
        assert_eq!(h.days.len(), 3);
        assert_eq!(h.days[0].fillage_pct, Some(80.0));
        assert_eq!(h.days[0].load_range_lbf, Some(8000.0));
        assert_eq!(
            h.days[0].runtime_hr,
            Some(21.5),
            "a today-register's day is its maximum"
        );
        assert_eq!(h.days[1].cycles, Some(7.0));
        assert_eq!(h.days[2], DailyRollup::default());
        assert_eq!(lift_from_metrics(["motor_current_a"]), Some(Lift::Esp));
        assert_eq!(
            lift_from_metrics(["motor_current_a", "plunger_arrivals_total"]),
            Some(Lift::PlungerLift)
        );
        assert!(history_from_rollups("w".into(), d(1), d(4), &rows[6..], vec![], vec![]).is_none());
    }

    #[test]
    fn a_model_is_promoted_only_when_it_beats_the_one_in_use() {
        let fleet = WearFleet::generate(&WearOptions {
            wells: 60,
            days: 200,
            seed: 3,
            ..WearOptions::default()
        });
        let first = train_and_compare(&fleet.wells, None, TrainOptions::default()).unwrap();
        assert!(first.promote, "{}", first.reason);
        assert_eq!(first.wells, (40, 20));
        // The same data again: no better than the model in use.
        let again =
            train_and_compare(&fleet.wells, Some(&first.model), TrainOptions::default()).unwrap();
        assert!(!again.promote, "{}", again.reason);
        assert!(again.reason.contains("does not beat"));
        // Against an age-only model, the full model wins.
        let (train, _) = fleet.split(1.0 / 3.0);
        let age = Model::train(&train, &AGE_FEATURES, TrainOptions::default()).unwrap();
        let better = train_and_compare(&fleet.wells, Some(&age), TrainOptions::default()).unwrap();
        assert!(better.promote, "{}", better.reason);
        assert!(train_and_compare(&fleet.wells[..2], None, TrainOptions::default()).is_err());
    }

    #[test]
    fn auc_of_perfect_inverse_and_tied_rankings() {
        let perfect = [(0.9, true), (0.8, true), (0.2, false), (0.1, false)];
        assert_eq!(roc_auc(&perfect), 1.0);
        let inverse = [(0.9, false), (0.8, false), (0.2, true), (0.1, true)];
        assert_eq!(roc_auc(&inverse), 0.0);
        let tied = [(0.5, true), (0.5, false), (0.5, true), (0.5, false)];
        assert_eq!(roc_auc(&tied), 0.5);
    }

    #[test]
    fn features_see_a_falling_fillage_and_rising_load() {
        let start = NaiveDate::from_ymd_opt(2025, 1, 1).unwrap();
        let days: Vec<DailyRollup> = (0..60)
            .map(|d| DailyRollup {
                fillage_pct: Some(if d < 46 {
                    90.0
                } else {
                    90.0 - 2.0 * f64::from(d - 46)
                }),
                load_range_lbf: Some(if d < 53 { 8000.0 } else { 9600.0 }),
                motor_current_a: None,
                runtime_hr: Some(22.0),
                cycles: Some(10.0),
            })
            .collect();
        let h = WellHistory {
            well: "w".into(),
            lift: Lift::RodPump,
            start,
            days,
            workovers: vec![start],
            failures: vec![],
            age_at_start: None,
        };
        let x = features_at(&h, 59);
        assert!(x[0] < -1.5, "fillage trend {}", x[0]);
        assert!(x[1] > 15.0, "fillage drop {}", x[1]);
        assert!((x[2] - 0.2).abs() < 1e-9, "load range +20 %: {}", x[2]);
        assert_eq!(x[4], 0.0, "no motor current: neutral");
        assert!((x[7] - 60f64.ln()).abs() < 1e-9);
        assert!(Feature::LoadRangeChange.describe(x[2]).contains("+20 %"));
    }

    #[test]
    fn a_model_trained_on_a_small_wear_fleet_ranks_held_out_failures_and_explains_them() {
        let fleet = WearFleet::generate(&WearOptions {
            wells: 120,
            days: 240,
            seed: 7,
            ..WearOptions::default()
        });
        let (train, test) = fleet.split(0.3);
        let model = Model::train(&train, &FEATURES, TrainOptions::default()).unwrap();
        let m = model.evaluate(&test);
        assert!(m.failures > 10, "{m:?}");
        assert!(m.auc[&30] > 0.75, "{m:?}");
        let age = Model::train(&train, &AGE_FEATURES, TrainOptions::default()).unwrap();
        assert!(age.evaluate(&test).auc[&30] < m.auc[&30]);
        // A well just before a failure with precursors: its top factor is in words.
        let (w, f) = test
            .iter()
            .find_map(|h| {
                h.failures
                    .iter()
                    .find(|f| {
                        let o = offset(h, **f);
                        o > 60 && fleet.precursor(&h.well, **f)
                    })
                    .map(|f| (h, *f))
            })
            .expect("a failure with precursors");
        let p = model.predict_at(w, offset(w, f) as usize - 2);
        assert!(p.probability[0] <= p.probability[1] && p.probability[1] <= p.probability[2]);
        assert!(!p.factors.is_empty(), "{p:?}");
        assert!(!p.factors[0].words.is_empty());
        // The registry stores the model as JSON: it predicts the same after a round trip.
        let stored: Model = serde_json::from_str(&serde_json::to_string(&model).unwrap()).unwrap();
        let again = stored.predict_at(w, offset(w, f) as usize - 2);
        for (a, b) in p.probability.iter().zip(again.probability) {
            assert!((a - b).abs() < 1e-9);
        }
        assert_eq!(stored.data_hash, model.data_hash);
    }
}
