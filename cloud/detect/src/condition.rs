//! Conditions: one finding kind on one subject, with hysteresis.
//!
//! A check produces one [`Check`] per evaluation (anomalous or normal, with evidence). A
//! [`Condition`] turns them into transitions:
//!
//! * inactive → active after `sustain` consecutive anomalous checks (at once for an
//!   `immediate` check: safety thresholds);
//! * active → cleared after `sustain` consecutive normal checks **and** `clear_hold_ms`
//!   since the last anomalous one (a pump-off controller runs normally between idles; the
//!   condition must not flap with its duty cycle);
//! * nothing is emitted while it stays in either state.
//!
//! `paged` records whether the activation was emitted with `page = true`; an activation
//! seen only in historical data is re-emitted on the first live observation.

use serde::{Deserialize, Serialize};

use crate::{Evidence, FindingKind, Severity, Signal};

/// One evaluation of a check.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    /// Kind.
    pub kind: FindingKind,
    /// Subject (metric, `rule:<id>`, or None: the device).
    pub subject: Option<String>,
    /// Anomalous this time.
    pub anomalous: bool,
    /// Fire without waiting for `sustain` (safety).
    pub immediate: bool,
    /// Samples needed (None: the detector's `sustain_samples`).
    pub sustain: Option<u32>,
    /// Minimum normal time before clearing (ms).
    pub clear_hold_ms: i64,
    /// Severity if it fires.
    pub severity: Severity,
    /// Time of the evaluation.
    pub ts_ms: i64,
    /// Why.
    pub evidence: Evidence,
}

impl Check {
    /// A check with its evidence, or `None` when it cannot change its condition: a normal
    /// check of a condition that is neither active nor part-way to activating is a no-op
    /// in [`Condition::step`]. Most checks are such, so their evidence (strings, value
    /// maps) is never built.
    #[allow(clippy::too_many_arguments)] // the fields of a check, each named at the call
    pub fn gated(
        tracked: &Tracked<'_>,
        kind: FindingKind,
        subject: Option<&str>,
        anomalous: bool,
        severity: Severity,
        ts_ms: i64,
        evidence: impl FnOnce() -> Evidence,
    ) -> Option<Check> {
        tracked.wants(kind, subject, anomalous).then(|| Check {
            kind,
            subject: subject.map(str::to_owned),
            anomalous,
            immediate: false,
            sustain: None,
            clear_hold_ms: 0,
            severity,
            ts_ms,
            evidence: evidence(),
        })
    }
}

/// The conditions a normal check can still change: active ones, and inactive ones with
/// a streak of anomalous checks under way.
#[derive(Debug, Default)]
pub struct Tracked<'a>(Vec<(FindingKind, Option<&'a str>)>);

impl<'a> Tracked<'a> {
    /// The tracked conditions among `conditions`.
    pub fn of(conditions: impl IntoIterator<Item = &'a Condition>) -> Tracked<'a> {
        Tracked(
            conditions
                .into_iter()
                .filter(|c| c.active || c.streak > 0)
                .map(|c| (c.kind, c.subject.as_deref()))
                .collect(),
        )
    }

    /// Whether a check of `kind` on `subject` can change its condition.
    pub fn wants(&self, kind: FindingKind, subject: Option<&str>, anomalous: bool) -> bool {
        anomalous || self.0.iter().any(|(k, s)| *k == kind && *s == subject)
    }
}

/// Key of a condition in [`crate::DeviceState`]: `kind` or `kind/subject`.
pub fn key(kind: FindingKind, subject: Option<&str>) -> String {
    match subject {
        Some(s) => format!("{}/{s}", kind.as_str()),
        None => kind.as_str().to_owned(),
    }
}

/// State of one condition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Condition {
    /// Kind.
    pub kind: FindingKind,
    /// Subject.
    #[serde(default)]
    pub subject: Option<String>,
    /// Active.
    #[serde(default)]
    pub active: bool,
    /// Its activation was emitted with `page = true`.
    #[serde(default)]
    pub paged: bool,
    /// Consecutive checks against the current state.
    #[serde(default)]
    pub streak: u32,
    /// Last anomalous check.
    #[serde(default)]
    pub last_anomalous_ms: i64,
    /// Severity of the activation.
    #[serde(default)]
    pub severity: Severity,
    /// Evidence of the activation (re-emitted when paged late).
    #[serde(default, with = "stored_evidence")]
    pub evidence: Option<Evidence>,
    /// Time of the activation.
    #[serde(default)]
    pub since_ms: i64,
}

impl Condition {
    /// A new inactive condition.
    pub fn new(kind: FindingKind, subject: Option<String>) -> Condition {
        Condition {
            kind,
            subject,
            active: false,
            paged: false,
            streak: 0,
            last_anomalous_ms: i64::MIN,
            severity: Severity::Warning,
            evidence: None,
            since_ms: 0,
        }
    }

    fn signal(&self, active: bool, page: bool, ts_ms: i64, evidence: Evidence) -> Signal {
        Signal {
            kind: self.kind,
            subject: self.subject.clone(),
            active,
            page,
            severity: self.severity,
            ts_ms,
            evidence,
        }
    }

    /// Applies one check; the transition, if any.
    pub fn step(&mut self, check: Check, sustain: u32, live: bool) -> Option<Signal> {
        let need = check.sustain.unwrap_or(sustain).max(1);
        if check.anomalous {
            self.last_anomalous_ms = check.ts_ms;
        }
        if !self.active {
            if !check.anomalous {
                self.streak = 0;
                return None;
            }
            self.streak += 1;
            if self.streak < need && !check.immediate {
                return None;
            }
            self.active = true;
            self.paged = live;
            self.streak = 0;
            self.severity = check.severity;
            self.since_ms = check.ts_ms;
            self.evidence = Some(check.evidence.clone());
            return Some(self.signal(true, live, check.ts_ms, check.evidence));
        }
        if check.anomalous {
            self.streak = 0;
            return None;
        }
        self.streak += 1;
        if self.streak < need || check.ts_ms - self.last_anomalous_ms < check.clear_hold_ms {
            return None;
        }
        self.active = false;
        self.streak = 0;
        self.evidence = None;
        Some(self.signal(false, live, check.ts_ms, check.evidence))
    }

    /// The late page of an activation seen only in historical data.
    pub fn late_page(&mut self, ts_ms: i64) -> Option<Signal> {
        if !self.active || self.paged {
            return None;
        }
        self.paged = true;
        let evidence = self.evidence.clone().unwrap_or_default();
        Some(self.signal(true, true, ts_ms, evidence))
    }

    /// Forces a transition (device silence, which has no stream of checks).
    pub fn set(&mut self, active: bool, ts_ms: i64, severity: Severity, ev: Evidence) -> Signal {
        self.active = active;
        self.paged = true;
        self.streak = 0;
        if active {
            self.severity = severity;
            self.since_ms = ts_ms;
            self.evidence = Some(ev.clone());
        }
        self.signal(active, true, ts_ms, ev)
    }
}

/// A condition's evidence in the stored device state: itself in a human-readable form
/// (JSON, how states were first stored) and its JSON text in the compact one
/// ([`crate::DeviceState::to_bytes`]): `Evidence` leaves out empty fields, which a
/// non-self-describing format cannot. Only active conditions carry evidence.
mod stored_evidence {
    use serde::de::Error as _;
    use serde::ser::Error as _;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use crate::Evidence;

    pub fn serialize<S: Serializer>(e: &Option<Evidence>, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            return e.serialize(s);
        }
        let text = e
            .as_ref()
            .map(serde_json::to_string)
            .transpose()
            .map_err(S::Error::custom)?;
        text.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Evidence>, D::Error> {
        if d.is_human_readable() {
            return Option::<Evidence>::deserialize(d);
        }
        Option::<String>::deserialize(d)?
            .map(|t| serde_json::from_str(&t))
            .transpose()
            .map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(anomalous: bool, ts_ms: i64) -> Check {
        Check {
            kind: FindingKind::PumpOff,
            subject: None,
            anomalous,
            immediate: false,
            sustain: None,
            clear_hold_ms: 0,
            severity: Severity::Warning,
            ts_ms,
            evidence: Evidence::default(),
        }
    }

    #[test]
    fn activates_after_sustain_and_clears_after_sustain() {
        let mut c = Condition::new(FindingKind::PumpOff, None);
        assert!(c.step(check(true, 1), 3, true).is_none());
        assert!(c.step(check(true, 2), 3, true).is_none());
        let s = c.step(check(true, 3), 3, true).unwrap();
        assert!(s.active && s.page);
        assert!(c.step(check(true, 4), 3, true).is_none());
        assert!(c.step(check(false, 5), 3, true).is_none());
        assert!(c.step(check(false, 6), 3, true).is_none());
        assert!(!c.step(check(false, 7), 3, true).unwrap().active);
    }

    #[test]
    fn historical_activation_pages_late_once() {
        let mut c = Condition::new(FindingKind::PumpOff, None);
        let mut ch = check(true, 1);
        ch.immediate = true;
        let s = c.step(ch, 3, false).unwrap();
        assert!(!s.page);
        assert!(c.late_page(9).unwrap().page);
        assert!(c.late_page(10).is_none());
    }
}
