//! Per-well multivariate models (linfa), trained on rollup rows and scored on a device's
//! latest values.
//!
//! # Method: PCA reconstruction error
//!
//! Each feature is standardised robustly (median, MAD × 1.4826, floored), PCA
//! (`linfa-reduction`) keeps the fewest components explaining ≥ 95 % of the variance, and a
//! state's score is its squared reconstruction error (the part of it the normal
//! correlations between features cannot explain). The threshold is the 99th percentile of
//! the training errors × 1.5 (a margin for the rollups being smoother than live values);
//! [`WellModel::score`] reports `error / threshold`, so 1 is the firing point.
//!
//! Why PCA rather than a Gaussian mixture likelihood or a one-class SVM:
//!
//! * **Cost**: training is one SVD of a (rows × features) matrix, scoring a few dot
//!   products — cheap enough to train per well nightly and score inside the ingest
//!   transaction.
//! * **Stability with small histories**: a well has days of rollups; a GMM must estimate a
//!   covariance per component (and pick their number, `k`), an SVM its kernel width and
//!   ν, and both overfit or degenerate on a few hundred rows. PCA has no such parameter
//!   beyond the variance share.
//! * **Interpretability**: the residual decomposes per feature, so a finding says *which*
//!   metrics break the usual relation (the `values` of its evidence), what an engineer
//!   needs to act.
//!
//! *Invariants:* a model that trains has finite parameters; scoring never panics and
//! returns None when a feature value is missing or non-finite.

use std::collections::BTreeMap;

use linfa::DatasetBase;
use linfa::traits::Fit;
use linfa_reduction::Pca;
use ndarray::Array2;
use serde::{Deserialize, Serialize};

use crate::condition::Check;
use crate::{Evidence, FindingKind, Severity};

/// Fewest training rows.
pub const MIN_ROWS: usize = 20;
/// Variance share the kept components explain.
pub const VARIANCE_KEPT: f64 = 0.95;
/// Training-error quantile of the threshold, and its margin.
pub const THRESHOLD_QUANTILE: f64 = 0.99;
/// See [`THRESHOLD_QUANTILE`].
pub const THRESHOLD_MARGIN: f64 = 1.5;

/// A trained model: what the store keeps (JSON) and `observe` scores with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WellModel {
    /// Algorithm name, e.g. `pca`.
    pub algorithm: String,
    /// Version given by the store (0 until stored).
    pub version: i64,
    /// Feature metrics, in column order.
    pub features: Vec<String>,
    /// Per-feature centre (median).
    #[serde(default)]
    pub center: Vec<f64>,
    /// Per-feature robust scale.
    #[serde(default)]
    pub scale: Vec<f64>,
    /// Kept principal axes (each of `features.len()` values, unit length).
    #[serde(default)]
    pub components: Vec<Vec<f64>>,
    /// Squared reconstruction error at which the model fires.
    #[serde(default)]
    pub threshold: f64,
    /// Training rows.
    #[serde(default)]
    pub n_rows: usize,
    /// Variance share explained by the kept components.
    #[serde(default)]
    pub explained_variance: f64,
    /// Training reconstruction errors: median, 95th percentile, and the threshold's
    /// quantile (99th by default).
    #[serde(default)]
    pub error_quantiles: [f64; 3],
}

/// A model's score of one state.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelScore {
    /// `error / threshold` (≥ 1: anomalous).
    pub score: f64,
    /// Squared reconstruction error.
    pub error: f64,
    /// Share of the error per feature (sums to 1).
    pub contributions: BTreeMap<String, f64>,
}

/// Why a model could not be trained.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TrainError {
    /// Fewer rows than [`MIN_ROWS`].
    #[error("too few rows: {rows} (at least {min} needed)")]
    TooFewRows {
        /// Rows given.
        rows: usize,
        /// Rows needed.
        min: usize,
    },
    /// Fewer than two features, or a row of the wrong width.
    #[error("bad shape: {0}")]
    Shape(String),
    /// A feature that never varies (nothing to learn from it).
    #[error("feature {0} is constant")]
    ConstantColumn(String),
    /// A NaN or infinite value.
    #[error("feature {0} has a non-finite value")]
    NonFinite(String),
    /// The decomposition failed.
    #[error("PCA failed: {0}")]
    Fit(String),
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Training options (defaults: the module constants).
#[derive(Debug, Clone, PartialEq)]
pub struct TrainOptions {
    /// Fewest rows.
    pub min_rows: usize,
    /// Variance share the kept components explain.
    pub variance_kept: f64,
    /// Training-error quantile of the threshold.
    pub threshold_quantile: f64,
    /// Margin the threshold puts on that quantile.
    pub threshold_margin: f64,
}

impl Default for TrainOptions {
    fn default() -> TrainOptions {
        TrainOptions {
            min_rows: MIN_ROWS,
            variance_kept: VARIANCE_KEPT,
            threshold_quantile: THRESHOLD_QUANTILE,
            threshold_margin: THRESHOLD_MARGIN,
        }
    }
}

/// Trains a PCA model on `rows` (one row per time, columns in `features` order) with the
/// default [`TrainOptions`].
pub fn train(features: Vec<String>, rows: &Array2<f64>) -> Result<WellModel, TrainError> {
    train_with(features, rows, &TrainOptions::default())
}

/// Trains a PCA model on `rows` with `options`.
pub fn train_with(
    features: Vec<String>,
    rows: &Array2<f64>,
    options: &TrainOptions,
) -> Result<WellModel, TrainError> {
    let min_rows = options.min_rows.max(3);
    let (n, d) = rows.dim();
    if d != features.len() || d < 2 {
        return Err(TrainError::Shape(format!(
            "{d} columns for {} features (at least 2 needed)",
            features.len()
        )));
    }
    if n < min_rows {
        return Err(TrainError::TooFewRows {
            rows: n,
            min: min_rows,
        });
    }
    let mut center = Vec::with_capacity(d);
    let mut scale = Vec::with_capacity(d);
    for (j, name) in features.iter().enumerate() {
        let mut col: Vec<f64> = rows.column(j).to_vec();
        if col.iter().any(|x| !x.is_finite()) {
            return Err(TrainError::NonFinite(name.clone()));
        }
        let (min, max) = col
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| {
                (a.min(*x), b.max(*x))
            });
        if max - min <= 1e-12 * max.abs().max(1.0) {
            return Err(TrainError::ConstantColumn(name.clone()));
        }
        let m = crate::baseline::median(&mut col);
        let mut dev: Vec<f64> = col.iter().map(|x| (x - m).abs()).collect();
        let mad = crate::baseline::median(&mut dev) * crate::baseline::MAD_TO_SIGMA;
        // A column mostly at one value has MAD 0: fall back to its range.
        center.push(m);
        scale.push(mad.max((max - min) / 6.0).max(1e-9));
    }
    let z = Array2::from_shape_fn((n, d), |(i, j)| {
        ((rows[[i, j]] - center[j]) / scale[j]).clamp(-50.0, 50.0)
    });
    let dataset = DatasetBase::from(z.clone());
    let pca = Pca::params(d)
        .fit(&dataset)
        .or_else(|_| Pca::params(d - 1).fit(&dataset))
        .map_err(|e| TrainError::Fit(e.to_string()))?;
    let sigma = pca.singular_values();
    let total: f64 = sigma.iter().map(|s| s * s).sum();
    let mut kept = 0;
    let mut explained = 0.0;
    while kept < sigma.len() && explained < options.variance_kept {
        explained += sigma[kept] * sigma[kept] / total.max(f64::MIN_POSITIVE);
        kept += 1;
    }
    // Keep at least one axis less than the features, or nothing is ever unexplained.
    let kept = kept.clamp(1, d - 1);
    let explained = (0..kept.min(sigma.len()))
        .map(|k| sigma[k] * sigma[k] / total.max(f64::MIN_POSITIVE))
        .sum::<f64>();
    let comps = pca.components();
    let components: Vec<Vec<f64>> = (0..kept.min(comps.nrows()))
        .map(|k| comps.row(k).to_vec())
        .collect();
    let mut model = WellModel {
        algorithm: "pca".into(),
        version: 0,
        features,
        center,
        scale,
        components,
        threshold: 1.0,
        n_rows: n,
        explained_variance: explained,
        error_quantiles: [0.0; 3],
    };
    let mut errors: Vec<f64> = (0..n).map(|i| model.error(&z.row(i).to_vec()).0).collect();
    errors.sort_by(f64::total_cmp);
    model.error_quantiles = [
        quantile(&errors, 0.5),
        quantile(&errors, 0.95),
        quantile(&errors, options.threshold_quantile),
    ];
    model.threshold = (model.error_quantiles[2] * options.threshold_margin).max(1e-6);
    if !model.threshold.is_finite() || model.components.iter().flatten().any(|x| !x.is_finite()) {
        return Err(TrainError::Fit("non-finite decomposition".into()));
    }
    Ok(model)
}

/// Trains on rows given as slices (see [`train`]).
pub fn train_rows(features: Vec<String>, rows: &[Vec<f64>]) -> Result<WellModel, TrainError> {
    let d = features.len();
    if let Some(bad) = rows.iter().find(|r| r.len() != d) {
        return Err(TrainError::Shape(format!(
            "a row has {} values for {d} features",
            bad.len()
        )));
    }
    let flat: Vec<f64> = rows.iter().flatten().copied().collect();
    let array = Array2::from_shape_vec((rows.len(), d), flat)
        .map_err(|e| TrainError::Shape(e.to_string()))?;
    train(features, &array)
}

impl WellModel {
    /// How findings name it: `<algorithm>@<version>`.
    pub fn name(&self) -> String {
        format!("{}@{}", self.algorithm, self.version)
    }

    /// Squared residual and per-feature squared residuals of a standardised row.
    fn error(&self, z: &[f64]) -> (f64, Vec<f64>) {
        let mut recon = vec![0.0; z.len()];
        for c in &self.components {
            let p: f64 = c.iter().zip(z).map(|(a, b)| a * b).sum();
            for (r, a) in recon.iter_mut().zip(c) {
                *r += p * a;
            }
        }
        let parts: Vec<f64> = z.iter().zip(&recon).map(|(a, b)| (a - b).powi(2)).collect();
        (parts.iter().sum(), parts)
    }

    /// Scores the state given by `values` (metric → value); None when a feature is
    /// missing, a value is not finite, or the model is not trained.
    pub fn score(&self, values: &BTreeMap<String, f64>) -> Option<ModelScore> {
        let d = self.features.len();
        if self.center.len() != d || self.scale.len() != d || self.components.is_empty() {
            return None;
        }
        let mut z = Vec::with_capacity(d);
        for (j, f) in self.features.iter().enumerate() {
            let x = *values.get(f)?;
            if !x.is_finite() || self.components[0].len() != d {
                return None;
            }
            z.push(((x - self.center[j]) / self.scale[j].max(1e-12)).clamp(-50.0, 50.0));
        }
        let (error, parts) = self.error(&z);
        let contributions = self
            .features
            .iter()
            .zip(&parts)
            .map(|(f, p)| (f.clone(), if error > 0.0 { p / error } else { 0.0 }))
            .collect();
        Some(ModelScore {
            score: error / self.threshold.max(1e-12),
            error,
            contributions,
        })
    }
}

/// The `well_anomaly` check of a device's latest values (None: cannot score).
pub fn check(model: &WellModel, latest: &BTreeMap<String, f64>, ts: i64) -> Option<Check> {
    let s = model.score(latest)?;
    let top = s
        .contributions
        .iter()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map(|(f, _)| f.clone())
        .unwrap_or_default();
    Some(Check {
        kind: FindingKind::WellAnomaly,
        subject: None,
        anomalous: s.score > 1.0,
        immediate: false,
        sustain: None,
        clear_hold_ms: 0,
        severity: Severity::Warning,
        ts_ms: ts,
        evidence: Evidence {
            metric: Some(top.clone()),
            value: latest.get(&top).copied(),
            baseline: model
                .features
                .iter()
                .position(|f| *f == top)
                .map(|j| model.center[j]),
            scale: Some(model.threshold),
            score: Some(s.score),
            threshold: Some(1.0),
            detector: "model".into(),
            rule: None,
            model: Some(model.name()),
            values: s.contributions,
            detail: format!(
                "the well's metrics break their usual relation (score {:.1}, mostly {top})",
                s.score
            ),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(n: usize) -> Array2<f64> {
        // Two correlated features and a third independent one.
        Array2::from_shape_fn((n, 3), |(i, j)| {
            let t = i as f64;
            let noise = ((i * 7919 + j * 104729) % 1000) as f64 / 1000.0 - 0.5;
            match j {
                0 => t.sin() * 10.0 + noise * 0.1,
                1 => t.sin() * 20.0 + 100.0 + noise * 0.2,
                _ => 50.0 + noise * 5.0,
            }
        })
    }

    fn features() -> Vec<String> {
        vec!["a".into(), "b".into(), "c".into()]
    }

    #[test]
    fn trains_and_scores_a_broken_relation() {
        let m = train(features(), &rows(300)).unwrap();
        assert_eq!(m.n_rows, 300);
        assert!(m.explained_variance > 0.5 && m.threshold > 0.0);
        let normal = BTreeMap::from([("a".into(), 5.0), ("b".into(), 110.0), ("c".into(), 50.0)]);
        assert!(m.score(&normal).unwrap().score < 1.0);
        let broken = BTreeMap::from([("a".into(), 5.0), ("b".into(), 90.0), ("c".into(), 50.0)]);
        let s = m.score(&broken).unwrap();
        assert!(s.score > 1.0, "{s:?}");
        assert!(s.contributions["b"] + s.contributions["a"] > 0.8);
        assert!(m.score(&BTreeMap::new()).is_none());
        let json = serde_json::to_string(&m).unwrap();
        let back: WellModel = serde_json::from_str(&json).unwrap();
        assert!((back.score(&broken).unwrap().score - s.score).abs() < 1e-6);
    }

    #[test]
    fn refuses_too_few_rows_and_constant_columns() {
        assert!(matches!(
            train(features(), &rows(5)),
            Err(TrainError::TooFewRows { .. })
        ));
        let mut r = rows(100);
        r.column_mut(2).fill(3.0);
        assert_eq!(
            train(features(), &r),
            Err(TrainError::ConstantColumn("c".into()))
        );
        assert!(matches!(
            train_rows(features(), &[vec![1.0]]),
            Err(TrainError::Shape(_))
        ));
    }
}
