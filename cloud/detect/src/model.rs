//! Per-well multivariate models (linfa), trained on rollup rows and scored on a device's
//! latest values.

use serde::{Deserialize, Serialize};

/// A trained model: what the store keeps (JSON) and `observe` scores with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WellModel {
    /// Algorithm name, e.g. `pca`.
    pub algorithm: String,
    /// Version given by the store (0 until stored).
    pub version: i64,
    /// Feature metrics, in column order.
    pub features: Vec<String>,
}

impl WellModel {
    /// How findings name it: `<algorithm>@<version>`.
    pub fn name(&self) -> String {
        format!("{}@{}", self.algorithm, self.version)
    }
}
