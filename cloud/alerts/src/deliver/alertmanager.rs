//! Prometheus Alertmanager: `POST {url}/api/v2/alerts` with a JSON array of one
//! `postableAlert` ([Alertmanager API v2], `api/v2/openapi.yaml`; [clients' guide]).
//!
//! ```json
//! [{
//!   "labels": { "alertname": "<kind>", "severity": "critical", "tenant": "acme",
//!               "fingerprint": "…", "well": "…", "device": "…", "metric": "…", … },
//!   "annotations": { "summary": "…", "description": "…", "evidence": "<JSON text>",
//!                    "state": "firing", "event": "firing", "alert_id": "42" },
//!   "startsAt": "<started_at>",
//!   "endsAt": "<resolved_at, or now + VALIDITY while firing>",
//!   "generatorURL": "<link to the alert>"
//! }]
//! ```
//!
//! - **Identity is the label set.** Alertmanager identifies an alert by its labels, so they
//!   hold only what names the condition (tenant, kind, fingerprint and the alert's own
//!   labels: site, well, device, metric…), never what changes while it fires; severity is a
//!   label because routes match on it (an escalation that raises it starts a new alert in
//!   Alertmanager, and the old severity ages out at its `endsAt`). Everything else is an
//!   annotation. Label names are made valid for the classic rule `[a-zA-Z_][a-zA-Z0-9_]*`
//!   (other characters become `_`, a leading digit gets a `_` prefix) and empty values
//!   are left out (Alertmanager treats an empty label as absent).
//! - **Firing is a lease.** Alertmanager considers an alert firing until its `endsAt`, and
//!   an alert posted without one until its own `resolve_timeout` (5 minutes by default),
//!   which is why clients re-send firing alerts. We set `endsAt` ourselves, `now +`
//!   [`VALIDITY`], so the behaviour does not depend on the receiving configuration; the
//!   outbox re-sends ([`Event::Resend`]) at least every
//!   [`RESEND_EVERY`] while the alert fires (Prometheus does the same with four missed
//!   evaluations of margin). A resolved alert is posted with `endsAt` = its resolution
//!   time, which resolves it at once.
//! - **No acknowledgement.** Alertmanager has no such state (silences are its operators'
//!   tool), so an acknowledged alert is posted as still firing, with the `state`
//!   annotation saying `acknowledged`.
//! - **Test alerts** carry the label `test="true"` so routes can send them aside.
//!
//! [Alertmanager API v2]: https://github.com/prometheus/alertmanager/blob/main/api/v2/openapi.yaml
//! [clients' guide]: https://prometheus.io/docs/alerting/latest/clients/

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::json;

use super::{Destination, Event, HttpRequest, Message, RenderError, parse_url};

/// How long a firing alert stays firing in Alertmanager without being re-sent.
pub const VALIDITY: Duration = Duration::from_secs(20 * 60);
/// How often the outbox re-sends a firing alert (a quarter of [`VALIDITY`]: three lost
/// re-sends in a row still do not resolve it).
pub const RESEND_EVERY: Duration = Duration::from_secs(5 * 60);
/// The API path alerts are posted to.
pub const PATH: &str = "/api/v2/alerts";

pub(super) fn render(
    dest: &Destination,
    msg: &Message,
    now: DateTime<Utc>,
) -> Result<HttpRequest, RenderError> {
    let mut url = parse_url(dest.id, &dest.url)?;
    // `http://am:9093`, `…/prefix/` and `…/api/v2/alerts/` all post to `…/api/v2/alerts`.
    let base = url.path().trim_end_matches('/').to_owned();
    if base.ends_with(PATH) {
        url.set_path(&base);
    } else {
        url.set_path(&format!("{base}{PATH}"));
    }
    let body = serde_json::to_vec(&postable_alerts(msg, now)).expect("a JSON value serialises");
    Ok(HttpRequest {
        url: url.into(),
        headers: vec![("content-type".into(), "application/json".into())],
        body,
    })
}

/// The body: a `postableAlerts` array of one alert.
pub fn postable_alerts(msg: &Message, now: DateTime<Utc>) -> serde_json::Value {
    let alert = &msg.alert;
    let ends_at = match msg.event {
        Event::Resolved => alert.resolved_at.unwrap_or(msg.at),
        Event::Firing | Event::Acknowledged | Event::Resend | Event::Escalated | Event::Test => {
            now + chrono::Duration::from_std(VALIDITY).expect("a short duration")
        }
    };
    let mut annotations = BTreeMap::new();
    annotations.insert("summary", alert.summary.clone());
    annotations.insert("description", description(msg));
    annotations.insert("evidence", alert.evidence.to_string());
    annotations.insert("state", alert.state.clone());
    annotations.insert("event", msg.event.as_str().to_owned());
    annotations.insert("alert_id", alert.id.to_string());
    let rfc3339 = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Millis, true);
    json!([{
        "labels": labels(msg),
        "annotations": annotations,
        "startsAt": rfc3339(alert.started_at),
        "endsAt": rfc3339(ends_at),
        "generatorURL": alert.url,
    }])
}

/// The label set: the alert's labels with valid names, then ours (which win a clash).
fn labels(msg: &Message) -> BTreeMap<String, String> {
    let alert = &msg.alert;
    let mut labels: BTreeMap<String, String> = alert
        .labels
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (label_name(k), v.clone()))
        .collect();
    let ours = [
        ("alertname", alert.kind.as_str()),
        ("severity", alert.severity.as_str()),
        ("tenant", alert.tenant.as_str()),
        ("fingerprint", alert.fingerprint.as_str()),
    ];
    for (name, value) in ours {
        if !value.is_empty() {
            labels.insert(name.to_owned(), value.to_owned());
        }
    }
    if msg.event == Event::Test {
        labels.insert("test".into(), "true".into());
    }
    labels
}

/// `name` as a valid label name: `[a-zA-Z_][a-zA-Z0-9_]*`.
fn label_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

fn description(msg: &Message) -> String {
    let alert = &msg.alert;
    let state = match msg.event {
        Event::Acknowledged => "acknowledged (still firing)".to_owned(),
        Event::Test => "test alert from WellPulse".to_owned(),
        _ => alert.state.clone(),
    };
    format!(
        "{} — {} alert, {state}, since {}. {}",
        alert.summary,
        alert.severity,
        alert.started_at.to_rfc3339_opts(SecondsFormat::Secs, true),
        alert.url
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_names_are_made_valid() {
        assert_eq!(label_name("well"), "well");
        assert_eq!(label_name("site.name"), "site_name");
        assert_eq!(label_name("2nd"), "_2nd");
        assert_eq!(label_name(""), "_");
        assert_eq!(label_name("débit"), "d_bit");
    }
}
