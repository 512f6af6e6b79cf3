//! Training the per-well multivariate models (`detect::model`) on the devices' one-minute
//! rollups, versioned in the store with their training window, data hash and metrics.
//! Runs as the `model_training` job and on demand (API).

use std::time::Duration;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use store::detection::{NewModel, TrainingTarget};
use store::{Db, DbError, TenantId, WellId};
use tracing::{info, warn};

/// Training's options (from `[detection.training]`).
#[derive(Debug, Clone, PartialEq)]
pub struct TrainingOptions {
    /// How often every model is trained again.
    pub interval: Duration,
    /// How much recent history a model is trained on.
    pub window: Duration,
    /// Fewest one-minute rows a model needs.
    pub min_rows: i64,
}

impl Default for TrainingOptions {
    fn default() -> Self {
        TrainingOptions {
            interval: Duration::from_secs(24 * 3600),
            window: Duration::from_secs(14 * 24 * 3600),
            min_rows: 240,
        }
    }
}

/// What a training run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrainingReport {
    /// Models stored (device, version).
    pub trained: Vec<(i64, i32)>,
    /// Devices skipped, with why.
    pub skipped: Vec<(i64, String)>,
}

/// Trains every well-linked device's model.
pub async fn train_all(
    db: &Db,
    options: &TrainingOptions,
    now: DateTime<Utc>,
) -> Result<TrainingReport, DbError> {
    let targets = db.training_targets().await?;
    train_targets(db, &targets, options, now).await
}

/// Trains the models of one well's devices (the API's on-demand training).
pub async fn train_well(
    db: &Db,
    tenant: TenantId,
    well: WellId,
    options: &TrainingOptions,
    now: DateTime<Utc>,
) -> Result<TrainingReport, DbError> {
    let targets: Vec<TrainingTarget> = db
        .training_targets()
        .await?
        .into_iter()
        .filter(|t| t.tenant == tenant && t.well == well)
        .collect();
    train_targets(db, &targets, options, now).await
}

async fn train_targets(
    db: &Db,
    targets: &[TrainingTarget],
    options: &TrainingOptions,
    now: DateTime<Utc>,
) -> Result<TrainingReport, DbError> {
    let mut report = TrainingReport::default();
    let from =
        now - chrono::Duration::from_std(options.window).unwrap_or(chrono::Duration::days(14));
    for target in targets {
        let (features, rows) = db
            .training_matrix(target.device, from, now, options.min_rows)
            .await?;
        if features.len() < 2 || (rows.len() as i64) < options.min_rows {
            report.skipped.push((
                target.device.0,
                format!(
                    "{} metrics × {} complete minutes",
                    features.len(),
                    rows.len()
                ),
            ));
            continue;
        }
        let model = match detect::model::train_rows(features.clone(), &rows) {
            Ok(m) => m,
            Err(e) => {
                report.skipped.push((target.device.0, e.to_string()));
                continue;
            }
        };
        let json = serde_json::to_value(&model).unwrap_or_default();
        let metrics = serde_json::json!({
            "rows": model.n_rows,
            "explained_variance": model.explained_variance,
            "threshold": model.threshold,
            "error_p50": model.error_quantiles[0],
            "error_p95": model.error_quantiles[1],
            "error_p99": model.error_quantiles[2],
            "components": model.components.len(),
        });
        let version = store::detection::store_model(
            db,
            &NewModel {
                target,
                algorithm: &model.algorithm,
                features: &features,
                model: json,
                trained_from: from,
                trained_to: now,
                training_rows: i32::try_from(rows.len()).unwrap_or(i32::MAX),
                metrics,
                data_hash: &data_hash(&rows),
            },
        )
        .await;
        match version {
            Ok(v) => {
                info!(device = %target.device, well = %target.well, version = v,
                      rows = rows.len(), "model trained");
                report.trained.push((target.device.0, v));
            }
            Err(e) => {
                warn!(device = %target.device, error = %e, "model not stored");
                report.skipped.push((target.device.0, e.to_string()));
            }
        }
    }
    Ok(report)
}

/// SHA-256 of the training matrix (row-major little-endian f64), hex.
fn data_hash(rows: &[Vec<f64>]) -> String {
    let mut h = Sha256::new();
    for row in rows {
        for v in row {
            h.update(v.to_le_bytes());
        }
    }
    hex::encode(h.finalize())
}
