//! Signed webhooks: a [CloudEvents 1.0] event in JSON, signed as [Standard Webhooks] say.
//!
//! # Request
//!
//! `POST {url}`, structured content mode of the [CloudEvents HTTP binding]: the whole event
//! is the body, `Content-Type: application/cloudevents+json; charset=utf-8`.
//!
//! ```json
//! {
//!   "specversion": "1.0",
//!   "id": "<message id, stable across retries>",
//!   "source": "/wellpulse/tenants/<tenant>",
//!   "type": "com.wellpulse.alert.firing",
//!   "subject": "<alert fingerprint>",
//!   "time": "<when the event happened, RFC 3339>",
//!   "datacontenttype": "application/json",
//!   "data": { "event": "firing", "alert": { <AlertView> } }
//! }
//! ```
//!
//! `type` ends with the event: `firing`, `acknowledged`, `resolved`, `resend`, `escalated`
//! or `test` ([`Event::as_str`](super::Event::as_str)). The [CloudEvents JSON format] puts the attributes at the
//! top level; `data` is a JSON value because `datacontenttype` is JSON.
//!
//! # Signature ([Standard Webhooks])
//!
//! - `webhook-id`: the message id (the CloudEvents `id`): receivers deduplicate on it, since
//!   a retried message keeps it;
//! - `webhook-timestamp`: the attempt's time in integer Unix seconds (each retry is signed
//!   anew, so a receiver's replay window applies to the attempt, not to the event);
//! - `webhook-signature`: `v1,` + base64 of HMAC-SHA256 over `{id}.{timestamp}.{body}`,
//!   keyed with the base64-decoded part of the secret after `whsec_`. Several signatures,
//!   space-separated, are allowed: a destination secret holding several space-separated
//!   secrets (current first, during a rotation) signs with each.
//!
//! A receiver checks it as [`verify`] does: all three headers present, the timestamp within
//! its tolerance of its clock (five minutes is usual) in both directions, then one of the
//! `v1` signatures equal (in constant time) to its own HMAC over the exact bytes received,
//! before parsing the JSON. The reference libraries (`pip install standardwebhooks`,
//! `npm i standardwebhooks`, …) do exactly that; the tests check ours against Python's.
//!
//! Secrets are made by [`generate_secret`]: `whsec_` + base64 of 32 random bytes (the
//! specification asks for 24 to 64).
//!
//! [CloudEvents 1.0]: https://github.com/cloudevents/spec/blob/v1.0.2/cloudevents/spec.md
//! [CloudEvents JSON format]: https://github.com/cloudevents/spec/blob/v1.0.2/cloudevents/formats/json-format.md
//! [CloudEvents HTTP binding]: https://github.com/cloudevents/spec/blob/v1.0.2/cloudevents/bindings/http-protocol-binding.md
//! [Standard Webhooks]: https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::{DateTime, SecondsFormat, Utc};
use ring::hmac;
use serde_json::json;

use super::{Destination, HttpRequest, Message, RenderError, parse_url};

/// Content type of a structured-mode CloudEvent in JSON.
pub const CONTENT_TYPE: &str = "application/cloudevents+json; charset=utf-8";
/// Prefix of a serialized signing secret.
pub const SECRET_PREFIX: &str = "whsec_";
/// The `webhook-id` header.
pub const HEADER_ID: &str = "webhook-id";
/// The `webhook-timestamp` header.
pub const HEADER_TIMESTAMP: &str = "webhook-timestamp";
/// The `webhook-signature` header.
pub const HEADER_SIGNATURE: &str = "webhook-signature";
/// Prefix of the CloudEvents `type` of an alert event.
pub const EVENT_TYPE_PREFIX: &str = "com.wellpulse.alert.";

/// Random bytes in a generated secret (the specification: 24 to 64).
const SECRET_BYTES: usize = 32;
/// Shortest key accepted when signing (bytes): a shorter one is a configuration mistake.
const MIN_KEY_BYTES: usize = 16;

/// A new signing secret: `whsec_` + base64 of 32 random bytes from the system's CSPRNG.
pub fn generate_secret() -> String {
    use ring::rand::SecureRandom;
    let mut key = [0u8; SECRET_BYTES];
    ring::rand::SystemRandom::new()
        .fill(&mut key)
        .expect("the system random generator is available");
    format!("{SECRET_PREFIX}{}", B64.encode(key))
}

/// Why a webhook does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// A required header is absent.
    #[error("missing header {0}")]
    MissingHeader(&'static str),
    /// `webhook-timestamp` is not integer Unix seconds.
    #[error("webhook-timestamp is not a Unix time in seconds")]
    BadTimestamp,
    /// The timestamp is further from `now` than the tolerance (replay or skewed clock).
    #[error("webhook-timestamp is {0} s away from now, beyond the tolerance")]
    OutsideTolerance(i64),
    /// The secret is not `whsec_` + base64.
    #[error("the secret is not valid base64 after whsec_")]
    BadSecret,
    /// No `v1` signature matches.
    #[error("no signature matches")]
    NoMatch,
}

/// The HMAC keys of a destination secret: one per space-separated `whsec_` secret.
fn keys(secret: &str) -> Result<Vec<hmac::Key>, &'static str> {
    let keys = secret
        .split_ascii_whitespace()
        .map(|one| {
            let encoded = one.strip_prefix(SECRET_PREFIX).unwrap_or(one);
            let raw = B64.decode(encoded).map_err(|_| "not base64 after whsec_")?;
            if raw.len() < MIN_KEY_BYTES {
                return Err("shorter than 16 bytes");
            }
            Ok(hmac::Key::new(hmac::HMAC_SHA256, &raw))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if keys.is_empty() {
        return Err("empty");
    }
    Ok(keys)
}

/// The signed content: `{id}.{timestamp}.{body}`.
fn signed_content(id: &str, timestamp: &str, body: &[u8]) -> Vec<u8> {
    let mut content = Vec::with_capacity(id.len() + timestamp.len() + body.len() + 2);
    content.extend_from_slice(id.as_bytes());
    content.push(b'.');
    content.extend_from_slice(timestamp.as_bytes());
    content.push(b'.');
    content.extend_from_slice(body);
    content
}

/// The `webhook-signature` value for `secret` (one `v1,<base64>` per secret, space-separated).
fn sign(keys: &[hmac::Key], id: &str, timestamp: &str, body: &[u8]) -> String {
    let content = signed_content(id, timestamp, body);
    keys.iter()
        .map(|key| format!("v1,{}", B64.encode(hmac::sign(key, &content))))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The CloudEvent of a message (the body, before serialisation).
pub fn cloud_event(msg: &Message) -> serde_json::Value {
    let alert = &msg.alert;
    json!({
        "specversion": "1.0",
        "id": msg.id,
        "source": format!("/wellpulse/tenants/{}", path_segment(&alert.tenant)),
        "type": format!("{EVENT_TYPE_PREFIX}{}", msg.event.as_str()),
        "subject": alert.fingerprint,
        "time": msg.at.to_rfc3339_opts(SecondsFormat::Millis, true),
        "datacontenttype": "application/json",
        "data": {
            "event": msg.event.as_str(),
            "alert": alert,
        },
    })
}

pub(super) fn render(
    dest: &Destination,
    msg: &Message,
    now: DateTime<Utc>,
) -> Result<HttpRequest, RenderError> {
    let url = parse_url(dest.id, &dest.url)?;
    let secret =
        dest.secret
            .as_ref()
            .filter(|s| !s.is_empty())
            .ok_or(RenderError::MissingSecret {
                dest: dest.id,
                what: "signing secret",
            })?;
    let keys = keys(secret.expose()).map_err(|reason| RenderError::BadSecret {
        dest: dest.id,
        reason,
    })?;
    let body = serde_json::to_vec(&cloud_event(msg)).expect("a JSON value serialises");
    let timestamp = now.timestamp().to_string();
    let signature = sign(&keys, &msg.id, &timestamp, &body);
    Ok(HttpRequest {
        url: url.into(),
        headers: vec![
            ("content-type".into(), CONTENT_TYPE.into()),
            (HEADER_ID.into(), msg.id.clone()),
            (HEADER_TIMESTAMP.into(), timestamp),
            (HEADER_SIGNATURE.into(), signature),
        ],
        body,
    })
}

/// Verifies a received webhook as a receiver must: the three headers (names compared
/// without case), the timestamp within `tolerance` of `now` either way, then one `v1`
/// signature of `secret` over the exact `body` (constant-time comparison). `secret` is the
/// destination's `whsec_…` secret (several space-separated ones are tried in turn).
pub fn verify(
    secret: &str,
    headers: &[(String, String)],
    body: &[u8],
    now: DateTime<Utc>,
    tolerance: Duration,
) -> Result<(), VerifyError> {
    let header = |name: &'static str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim())
            .ok_or(VerifyError::MissingHeader(name))
    };
    let id = header(HEADER_ID)?;
    let timestamp = header(HEADER_TIMESTAMP)?;
    let signatures = header(HEADER_SIGNATURE)?;
    let sent: i64 = timestamp.parse().map_err(|_| VerifyError::BadTimestamp)?;
    let skew = now.timestamp().saturating_sub(sent);
    let tolerance = i64::try_from(tolerance.as_secs()).unwrap_or(i64::MAX);
    if skew.unsigned_abs() > tolerance.unsigned_abs() {
        return Err(VerifyError::OutsideTolerance(skew));
    }
    let keys = keys(secret).map_err(|_| VerifyError::BadSecret)?;
    let content = signed_content(id, timestamp, body);
    let matches = signatures
        .split_ascii_whitespace()
        .filter_map(|sig| sig.strip_prefix("v1,"))
        .filter_map(|b64| B64.decode(b64).ok())
        .any(|tag| {
            keys.iter()
                .any(|key| hmac::verify(key, &content, &tag).is_ok())
        });
    if matches {
        Ok(())
    } else {
        Err(VerifyError::NoMatch)
    }
}

/// `s` percent-encoded as one URI path segment (RFC 3986 unreserved characters kept).
fn path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secrets_are_fresh_and_decode_to_32_bytes() {
        let a = generate_secret();
        let b = generate_secret();
        assert_ne!(a, b);
        let raw = B64.decode(a.strip_prefix("whsec_").unwrap()).unwrap();
        assert_eq!(raw.len(), 32);
    }

    #[test]
    fn signature_matches_the_specification_example() {
        // The example of the Standard Webhooks specification (its test vector).
        let keys = keys("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        let sig = sign(&keys, "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", body);
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn secrets_with_several_keys_sign_with_each() {
        let (a, b) = (generate_secret(), generate_secret());
        let both = keys(&format!("{a} {b}")).unwrap();
        let sig = sign(&both, "id", "1", b"{}");
        assert_eq!(sig.split(' ').count(), 2);
        assert!(keys("whsec_c2hvcnQ=").is_err(), "5 bytes");
        assert!(keys("whsec_!!!").is_err());
        assert!(keys("  ").is_err());
    }

    #[test]
    fn tenant_slugs_are_percent_encoded_in_the_source() {
        assert_eq!(path_segment("acme-oil_2"), "acme-oil_2");
        assert_eq!(path_segment("a b/é"), "a%20b%2F%C3%A9");
    }
}
