//! Between detection and the store: a device's state from its stored form (written with
//! `DeviceState::to_bytes`), rules from their rows, and signals as the rows
//! `store::alerts::record_signals` takes. Used by the ingester (in its transaction) and by
//! the silence sweep.

use chrono::{DateTime, Utc};
use detect::{DeviceState, Rule, Signal};
use store::alerts::SignalRecord;
use store::{DeviceId, TenantId};
use tracing::warn;

/// A stored rule as the detector's [`Rule`].
pub fn rule_of(row: &store::detection::RuleRow) -> Result<Rule, String> {
    let condition = serde_json::from_value(row.condition.clone()).map_err(|e| e.to_string())?;
    let severity = detect::Severity::parse(&row.severity)
        .ok_or_else(|| format!("unknown severity {:?}", row.severity))?;
    Ok(Rule {
        id: row.id,
        name: row.name.clone(),
        metric: row.metric.clone(),
        condition,
        severity,
        for_ms: row.for_ms,
    })
}

/// The summary line of a signal's alert: a rule's alerts by the rule's name.
pub fn summary(signal: &Signal, device: &str) -> String {
    if let Some(rule) = &signal.evidence.rule {
        return format!("{rule} — {device}");
    }
    let what = signal.kind.describe();
    match &signal.subject {
        Some(subject) => format!("{what} — {device}, {subject}"),
        None => format!("{what} — {device}"),
    }
}

/// A device's state from its stored form (a fresh one when absent or unreadable).
pub fn decode_state(device: DeviceId, stored: Option<&[u8]>) -> DeviceState {
    match stored.map(DeviceState::from_bytes) {
        None => DeviceState::default(),
        Some(Ok(state)) => state,
        Some(Err(e)) => {
            warn!(%device, error = %e, "unreadable detector state replaced by a fresh one");
            DeviceState::default()
        }
    }
}

/// The signals of a device as rows for the store.
pub fn signal_records<'a>(
    tenant: TenantId,
    device: DeviceId,
    device_name: &str,
    signals: &'a [Signal],
) -> Vec<SignalRecord<'a>> {
    signals
        .iter()
        .map(|s| SignalRecord {
            tenant,
            device,
            kind: s.kind.as_str(),
            subject: s.subject.as_deref(),
            severity: s.severity.as_str(),
            active: s.active,
            page: s.page,
            at: DateTime::<Utc>::from_timestamp_millis(s.ts_ms).unwrap_or_else(Utc::now),
            evidence: serde_json::to_value(&s.evidence).unwrap_or_default(),
            summary: summary(s, device_name),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::summary;
    use detect::{Evidence, FindingKind, Severity, Signal};

    fn signal(kind: FindingKind, subject: Option<&str>, rule: Option<&str>) -> Signal {
        Signal {
            kind,
            subject: subject.map(str::to_owned),
            active: true,
            page: true,
            severity: Severity::Critical,
            ts_ms: 0,
            evidence: Evidence {
                rule: rule.map(str::to_owned),
                ..Evidence::default()
            },
        }
    }

    #[test]
    fn a_rules_alert_is_summed_up_by_the_rules_name() {
        let named = signal(
            FindingKind::ThresholdRule,
            Some("rule:1"),
            Some("Tubing pressure high"),
        );
        assert_eq!(summary(&named, "pump-1"), "Tubing pressure high — pump-1");
        let unnamed = signal(FindingKind::ThresholdRule, Some("rule:1"), None);
        assert_eq!(
            summary(&unnamed, "pump-1"),
            "threshold rule — pump-1, rule:1"
        );
        let rod = signal(FindingKind::RodPart, None, None);
        assert!(
            summary(&rod, "pump-1").ends_with(" — pump-1"),
            "{}",
            summary(&rod, "pump-1")
        );
    }
}
