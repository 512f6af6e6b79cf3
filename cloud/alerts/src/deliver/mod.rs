//! Delivery formats and the HTTP sender: one [`render`] per destination kind, one
//! [`Sender`]. Pure formatting here; the outbox worker (`crate::outbox`) decides when.

use std::collections::BTreeMap;

use base::Secret;
use chrono::{DateTime, Utc};
use serde::Serialize;

/// An alert as destinations see it.
#[derive(Debug, Clone, PartialEq, Serialize)]
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
