//! Tenant-defined threshold and rate rules on canonical metrics (an API boundary type:
//! serde).

use serde::{Deserialize, Serialize};

use crate::Severity;

/// A tenant's rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    /// Its id (store).
    pub id: i64,
    /// Canonical metric it watches.
    pub metric: String,
    /// When it fires.
    pub condition: RuleCondition,
    /// Severity of its alerts.
    pub severity: Severity,
    /// How long the condition must hold before the rule fires (ms; 0: at once).
    pub for_ms: i64,
}

/// When a rule fires.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RuleCondition {
    /// The value is above `value`.
    Above {
        /// Limit.
        value: f64,
    },
    /// The value is below `value`.
    Below {
        /// Limit.
        value: f64,
    },
    /// The value changed by more than `change` (either way) within `window_ms`.
    Rate {
        /// Absolute change.
        change: f64,
        /// Window (ms).
        window_ms: i64,
    },
}
