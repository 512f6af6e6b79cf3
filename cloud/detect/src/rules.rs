//! Tenant-defined threshold and rate rules on canonical metrics (an API boundary type:
//! serde).

use serde::{Deserialize, Serialize};

use crate::Severity;

/// A tenant's rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    /// Its id (store).
    pub id: i64,
    /// Its name, as people gave it (the summary of its alerts).
    #[serde(default)]
    pub name: String,
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

/// Most points a rate rule keeps in its window.
const MAX_WINDOW_POINTS: usize = 512;

/// Evaluation state of one rule on one device (kept in [`crate::DeviceState`]).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct RuleState {
    /// Since when the condition holds without interruption.
    #[serde(default)]
    pub holding_since: Option<i64>,
    /// Recent (ts, value) points of a rate rule, oldest first.
    #[serde(default)]
    pub window: std::collections::VecDeque<(i64, f64)>,
}

impl Rule {
    /// The finding kind of its alerts.
    pub fn kind(&self) -> crate::FindingKind {
        match self.condition {
            RuleCondition::Rate { .. } => crate::FindingKind::RateRule,
            _ => crate::FindingKind::ThresholdRule,
        }
    }

    /// Its subject: `rule:<id>`.
    pub fn subject(&self) -> String {
        format!("rule:{}", self.id)
    }

    /// Applies a new value `x` at `ts`: the rule's check of value `x` at `ts` (None when it cannot change its condition,
    /// see [`crate::condition::Check::gated`]); the rule's state advances either way. The check is anomalous once the
    /// condition has held for `for_ms`.
    pub fn evaluate(
        &self,
        st: &mut RuleState,
        ts: i64,
        x: f64,
        tracked: &crate::condition::Tracked<'_>,
    ) -> Option<crate::condition::Check> {
        let (holds, limit, observed) = match self.condition {
            RuleCondition::Above { value } => (x > value, value, x),
            RuleCondition::Below { value } => (x < value, value, x),
            RuleCondition::Rate { change, window_ms } => {
                while st
                    .window
                    .front()
                    .is_some_and(|(t, _)| *t < ts - window_ms.max(0))
                    || st.window.len() >= MAX_WINDOW_POINTS
                {
                    st.window.pop_front();
                }
                let moved = st
                    .window
                    .iter()
                    .map(|(_, v)| x - v)
                    .fold(0.0f64, |a, d| if d.abs() > a.abs() { d } else { a });
                st.window.push_back((ts, x));
                (moved.abs() > change, change, moved)
            }
        };
        if holds {
            st.holding_since.get_or_insert(ts);
        } else {
            st.holding_since = None;
        }
        let held = st.holding_since.map_or(0, |s| ts - s);
        let what = match self.condition {
            RuleCondition::Above { .. } => "above",
            RuleCondition::Below { .. } => "below",
            RuleCondition::Rate { .. } => "changed by more than",
        };
        let subject = self.subject();
        let mut check = crate::condition::Check::gated(
            tracked,
            self.kind(),
            Some(&subject),
            holds && held >= self.for_ms,
            self.severity,
            ts,
            || crate::Evidence {
                metric: Some(self.metric.clone()),
                value: Some(x),
                baseline: Some(limit),
                score: Some(observed),
                threshold: Some(limit),
                detector: subject.clone(),
                rule: (!self.name.is_empty()).then(|| self.name.clone()),
                detail: format!(
                    "{} {} {what} {limit} for {} s (rule {})",
                    self.metric,
                    x,
                    held / 1000,
                    self.id
                ),
                ..crate::Evidence::default()
            },
        )?;
        check.immediate = true;
        check.sustain = Some(1);
        Some(check)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(condition: RuleCondition, for_ms: i64) -> Rule {
        Rule {
            id: 7,
            name: "Tubing pressure high".into(),
            metric: "tubing_pressure_psi".into(),
            condition,
            severity: Severity::Critical,
            for_ms,
        }
    }

    /// The rule's check as seen by an active condition (which sees every check).
    fn check(r: &Rule, st: &mut RuleState, ts: i64, x: f64) -> crate::condition::Check {
        let mut c = crate::condition::Condition::new(r.kind(), Some(r.subject()));
        c.active = true;
        let tracked = crate::condition::Tracked::of([&c]);
        r.evaluate(st, ts, x, &tracked)
            .expect("an active condition sees every check")
    }

    #[test]
    fn above_fires_after_its_hold() {
        let r = rule(RuleCondition::Above { value: 100.0 }, 60_000);
        let mut st = RuleState::default();
        assert!(!check(&r, &mut st, 0, 150.0).anomalous);
        assert!(!check(&r, &mut st, 30_000, 150.0).anomalous);
        let c = check(&r, &mut st, 60_000, 150.0);
        assert!(c.anomalous);
        assert_eq!(c.subject.as_deref(), Some("rule:7"));
        assert_eq!(c.kind, crate::FindingKind::ThresholdRule);
        assert!(!check(&r, &mut st, 70_000, 90.0).anomalous);
    }

    #[test]
    fn a_normal_check_of_an_untracked_condition_is_not_built() {
        let r = rule(RuleCondition::Above { value: 100.0 }, 0);
        let mut st = RuleState::default();
        let none = crate::condition::Tracked::default();
        assert!(r.evaluate(&mut st, 0, 90.0, &none).is_none());
        assert!(
            r.evaluate(&mut st, 1_000, 150.0, &none)
                .is_some_and(|c| c.anomalous)
        );
    }

    #[test]
    fn rate_fires_on_a_fast_change_only() {
        let r = rule(
            RuleCondition::Rate {
                change: 50.0,
                window_ms: 60_000,
            },
            0,
        );
        let mut st = RuleState::default();
        assert!(!check(&r, &mut st, 0, 100.0).anomalous);
        assert!(!check(&r, &mut st, 120_000, 140.0).anomalous);
        assert!(check(&r, &mut st, 150_000, 200.0).anomalous);
        assert_eq!(r.kind(), crate::FindingKind::RateRule);
    }
}
