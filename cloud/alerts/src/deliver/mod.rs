//! Delivery formats and the HTTP sender: one [`render`] per destination kind, one
//! [`Sender`]. Pure formatting here; the outbox worker (`crate::outbox`) decides when.
//!
//! # Design
//!
//! - **Rendering is pure.** [`render`] turns a [`Message`] for a [`Destination`] into an
//!   [`HttpRequest`] without I/O; the time of the attempt (`now`, the Standard Webhooks
//!   timestamp and the Alertmanager `endsAt` horizon) is an argument, so every format is
//!   tested without clocks or sockets. A [`RenderError`] is a configuration problem of the
//!   destination (no routing key, malformed secret or URL): re-rendering gives the same
//!   error, so the outbox records it as a permanent failure rather than retrying.
//! - **One request per message and destination.** Retries re-render the same
//!   [`Message`] (same `id`), so a receiver deduplicates on `webhook-id` / CloudEvents `id`,
//!   Alertmanager on the label set, PagerDuty on `dedup_key`. Only the webhook signature
//!   timestamp changes between attempts.
//! - **Sending is classified, never interpreted.** [`Sender::send`] reports an [`Attempt`]:
//!   delivered on 2xx, otherwise failed and whether a retry can help (408, 425, 429, 5xx,
//!   network errors and timeouts). Redirects are not followed (a redirected delivery is a
//!   permanent failure: fix the URL), so a signed body is never replayed to a host the
//!   destination did not name.
//! - **Secrets stay out of logs.** The signing secret and the routing key exist only in the
//!   rendered request (signature header, PagerDuty body); errors and logs name the
//!   destination id, never the URL, headers or body.
//!
//! Formats, each documented in its module with its specification:
//! - [`webhook`]: Standard Webhooks signature headers around a CloudEvents 1.0 JSON event;
//! - [`alertmanager`]: Prometheus Alertmanager API v2 `postableAlerts`;
//! - [`pagerduty`]: PagerDuty Events API v2.

use std::collections::BTreeMap;

use base::Secret;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub mod alertmanager;
pub mod pagerduty;
mod sender;
pub mod webhook;

pub use sender::{Attempt, Sender, SenderError, user_agent};

/// Why a message cannot be rendered for a destination. Each is a property of the
/// destination's configuration: retrying without changing it gives the same error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// The destination needs a secret (webhook signing secret, PagerDuty routing key) and
    /// has none.
    #[error("destination {dest}: no {what} configured")]
    MissingSecret {
        /// Destination id.
        dest: i64,
        /// What is missing ("signing secret", "routing key").
        what: &'static str,
    },
    /// The webhook signing secret is not `whsec_` + base64 of at least 16 bytes.
    #[error("destination {dest}: the signing secret is not valid: {reason}")]
    BadSecret {
        /// Destination id.
        dest: i64,
        /// Why (never the secret itself).
        reason: &'static str,
    },
    /// The URL is not an absolute `http`/`https` URL.
    #[error("destination {dest}: the URL is not valid: {reason}")]
    BadUrl {
        /// Destination id.
        dest: i64,
        /// Why (never the URL itself: it may carry credentials).
        reason: String,
    },
}

/// Renders `msg` for `dest` as the HTTP request to send at `now` (the attempt's time: the
/// webhook signature timestamp and the Alertmanager validity horizon are taken from it).
/// Pure: no I/O, no clock.
pub fn render(
    dest: &Destination,
    msg: &Message,
    now: DateTime<Utc>,
) -> Result<HttpRequest, RenderError> {
    match dest.kind {
        DestinationKind::Webhook => webhook::render(dest, msg, now),
        DestinationKind::Alertmanager => alertmanager::render(dest, msg, now),
        DestinationKind::Pagerduty => pagerduty::render(dest, msg),
    }
}

/// Checks that `raw` is an absolute http(s) URL and returns it parsed.
fn parse_url(dest: i64, raw: &str) -> Result<url::Url, RenderError> {
    let bad = |reason: String| RenderError::BadUrl { dest, reason };
    let url = url::Url::parse(raw.trim()).map_err(|e| bad(e.to_string()))?;
    match url.scheme() {
        "http" | "https" => {}
        other => return Err(bad(format!("scheme {other:?} is not http or https"))),
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("no host".into()));
    }
    Ok(url)
}

/// The first `max` characters of `s` (whole characters, never a split UTF-8 sequence),
/// with `…` as the last one when something was cut.
fn truncate_chars(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// An alert as destinations see it. Deserialized from the outbox's snapshot (taken when
/// the message was queued), whose `url` the worker fills in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertView {
    /// Alert id (store).
    pub id: i64,
    /// Tenant slug.
    pub tenant: String,
    /// Deduplication key: the same condition always has the same fingerprint.
    pub fingerprint: String,
    /// Finding kind (`detect::FindingKind::as_str`).
    pub kind: String,
    /// `info`, `warning` or `critical`.
    pub severity: String,
    /// `firing`, `acknowledged` or `resolved`.
    pub state: String,
    /// One line in words.
    pub summary: String,
    /// Site, well, gateway, device and metric names where known, plus `tenant`, `kind`.
    pub labels: BTreeMap<String, String>,
    /// When it started firing.
    pub started_at: DateTime<Utc>,
    /// When it resolved.
    pub resolved_at: Option<DateTime<Utc>>,
    /// The evidence (`detect::Evidence` as JSON).
    pub evidence: serde_json::Value,
    /// Link to the alert in the web app.
    #[serde(default)]
    pub url: String,
}

/// Kinds of destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DestinationKind {
    /// Signed webhook (Standard Webhooks headers, CloudEvents 1.0 JSON body).
    Webhook,
    /// Prometheus Alertmanager (`POST {url}/api/v2/alerts`).
    Alertmanager,
    /// PagerDuty Events API v2 (`POST {url}` — `https://events.pagerduty.com/v2/enqueue`).
    Pagerduty,
}

/// A destination, with its secret: the webhook signing secret (`whsec_<base64>`) or the
/// PagerDuty routing key.
#[derive(Debug, Clone)]
pub struct Destination {
    /// Destination id (store).
    pub id: i64,
    /// Kind.
    pub kind: DestinationKind,
    /// Where to send.
    pub url: String,
    /// Signing secret or routing key.
    pub secret: Option<Secret>,
}

/// Why a message is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// The alert started firing.
    Firing,
    /// Someone acknowledged it.
    Acknowledged,
    /// It resolved.
    Resolved,
    /// Still firing (Alertmanager needs it re-sent).
    Resend,
    /// Unacknowledged too long: severity raised.
    Escalated,
    /// "Send test alert".
    Test,
}

impl Event {
    /// The event's name: `firing`, `acknowledged`, `resolved`, `resend`, `escalated` or
    /// `test` (the last part of the CloudEvents `type`).
    pub fn as_str(self) -> &'static str {
        match self {
            Event::Firing => "firing",
            Event::Acknowledged => "acknowledged",
            Event::Resolved => "resolved",
            Event::Resend => "resend",
            Event::Escalated => "escalated",
            Event::Test => "test",
        }
    }
}

/// One message to one destination.
#[derive(Debug, Clone)]
pub struct Message {
    /// Unique per message, stable across retries (the outbox row's id): `webhook-id`,
    /// CloudEvents `id`.
    pub id: String,
    /// Why.
    pub event: Event,
    /// The alert.
    pub alert: AlertView,
    /// When the event happened.
    pub at: DateTime<Utc>,
}

/// An HTTP request ready to send (POST).
#[derive(Debug, Clone, PartialEq)]
pub struct HttpRequest {
    /// Target.
    pub url: String,
    /// Headers (content type included).
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
}
