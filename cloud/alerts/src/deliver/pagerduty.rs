//! PagerDuty [Events API v2]: `POST https://events.pagerduty.com/v2/enqueue` (or the
//! destination's URL, e.g. the EU service region) with one event
//! ([schema: PagerDuty/api-schema `reference/events-v2/openapiv3.json`]).
//!
//! ```json
//! {
//!   "routing_key": "<the destination's secret>",
//!   "event_action": "trigger",
//!   "dedup_key": "<alert fingerprint>",
//!   "payload": {
//!     "summary": "<≤ 1024 characters>", "source": "<tenant>/<well, device, gateway or site>",
//!     "severity": "critical", "timestamp": "<started_at>", "component": "<metric>",
//!     "group": "<site or well>", "class": "<kind>", "custom_details": { … }
//!   },
//!   "links": [{ "href": "<alert URL>", "text": "Alert in WellPulse" }],
//!   "client": "WellPulse", "client_url": "<alert URL>"
//! }
//! ```
//!
//! - `event_action`: firing, re-sent, escalated and test alerts `trigger` (a trigger on an
//!   open `dedup_key` updates that alert, e.g. its raised severity); acknowledged ones
//!   `acknowledge`; resolved ones `resolve`. `payload`, `links`, `client` and `client_url`
//!   are sent only with `trigger` (PagerDuty ignores them otherwise).
//! - `dedup_key` is the alert fingerprint, so every event of one alert lands on one
//!   PagerDuty alert; a fingerprint longer than PagerDuty's 255 characters is replaced by
//!   its SHA-256 in hex (stable, so still one PagerDuty alert).
//! - Severities map one to one (`info`, `warning`, `critical`); anything else is sent as
//!   `error`, PagerDuty's level between warning and critical, rather than dropped.
//! - The routing key is the destination's secret; a destination without one cannot render.
//!   PagerDuty answers 202 when accepted, 400 for an invalid event (permanent), 429 and 5xx
//!   for retry, which [`Sender`](super::Sender) classifies the same way.
//!
//! [Events API v2]: https://developer.pagerduty.com/docs/events-api-v2-overview
//! [schema: PagerDuty/api-schema `reference/events-v2/openapiv3.json`]: https://github.com/PagerDuty/api-schema/blob/main/reference/events-v2/openapiv3.json

use chrono::SecondsFormat;
use serde_json::json;

use super::{Destination, Event, HttpRequest, Message, RenderError, parse_url, truncate_chars};

/// Where events go when the destination names no URL.
pub const DEFAULT_URL: &str = "https://events.pagerduty.com/v2/enqueue";
/// Longest `payload.summary` PagerDuty accepts (characters).
pub const MAX_SUMMARY: usize = 1024;
/// Longest `dedup_key` PagerDuty accepts (characters).
pub const MAX_DEDUP_KEY: usize = 255;

pub(super) fn render(dest: &Destination, msg: &Message) -> Result<HttpRequest, RenderError> {
    let raw_url = if dest.url.trim().is_empty() {
        DEFAULT_URL
    } else {
        dest.url.as_str()
    };
    let url = parse_url(dest.id, raw_url)?;
    let routing_key = dest
        .secret
        .as_ref()
        .map(|s| s.expose().trim())
        .filter(|s| !s.is_empty())
        .ok_or(RenderError::MissingSecret {
            dest: dest.id,
            what: "routing key",
        })?;
    let body = serde_json::to_vec(&event(routing_key, msg)).expect("a JSON value serialises");
    Ok(HttpRequest {
        url: url.into(),
        headers: vec![("content-type".into(), "application/json".into())],
        body,
    })
}

/// The event sent for `msg` with `routing_key`.
pub fn event(routing_key: &str, msg: &Message) -> serde_json::Value {
    let alert = &msg.alert;
    let action = match msg.event {
        Event::Firing | Event::Resend | Event::Escalated | Event::Test => "trigger",
        Event::Acknowledged => "acknowledge",
        Event::Resolved => "resolve",
    };
    let mut event = json!({
        "routing_key": routing_key,
        "event_action": action,
        "dedup_key": dedup_key(&alert.fingerprint),
    });
    if action == "trigger" {
        let label = |name: &str| alert.labels.get(name).filter(|v| !v.is_empty());
        let place = ["well", "device", "gateway", "site"]
            .iter()
            .find_map(|name| label(name));
        let source = match place {
            Some(place) => format!("{}/{place}", alert.tenant),
            None => alert.tenant.clone(),
        };
        let mut payload = json!({
            "summary": truncate_chars(&alert.summary, MAX_SUMMARY),
            "source": source,
            "severity": severity(&alert.severity),
            "timestamp": alert.started_at.to_rfc3339_opts(SecondsFormat::Millis, true),
            "class": alert.kind,
            "custom_details": {
                "alert_id": alert.id,
                "tenant": alert.tenant,
                "fingerprint": alert.fingerprint,
                "state": alert.state,
                "event": msg.event.as_str(),
                "labels": alert.labels,
                "evidence": alert.evidence,
                "started_at": alert.started_at,
                "url": alert.url,
            },
        });
        if let Some(metric) = label("metric") {
            payload["component"] = json!(metric);
        }
        if let Some(group) = label("site").or_else(|| label("well")) {
            payload["group"] = json!(group);
        }
        event["payload"] = payload;
        if !alert.url.is_empty() {
            event["links"] = json!([{ "href": alert.url, "text": "Alert in WellPulse" }]);
            event["client_url"] = json!(alert.url);
        }
        event["client"] = json!("WellPulse");
    }
    event
}

/// PagerDuty's severity for ours.
fn severity(ours: &str) -> &'static str {
    match ours {
        "critical" => "critical",
        "warning" => "warning",
        "info" => "info",
        _ => "error",
    }
}

/// The fingerprint, or its SHA-256 in hex when longer than PagerDuty accepts.
fn dedup_key(fingerprint: &str) -> String {
    if fingerprint.chars().count() <= MAX_DEDUP_KEY {
        return fingerprint.to_owned();
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, fingerprint.as_bytes());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severities_map_to_pagerduty_levels() {
        assert_eq!(severity("info"), "info");
        assert_eq!(severity("warning"), "warning");
        assert_eq!(severity("critical"), "critical");
        assert_eq!(severity("bogus"), "error");
    }

    #[test]
    fn long_fingerprints_become_a_stable_hash() {
        assert_eq!(dedup_key("abc"), "abc");
        let long = "x".repeat(300);
        let key = dedup_key(&long);
        assert_eq!(key.len(), 64);
        assert_eq!(key, dedup_key(&long));
    }
}
