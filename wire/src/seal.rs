//! Message authentication: every payload on a gateway's topics is *sealed* with that
//! gateway's message key, so a broker that lets a hostile client publish on another
//! gateway's topics (a missing or wrong ACL) still cannot make the agent delete unstored
//! batches or act on a device, nor make the cloud store forged data or catalogs.
//!
//! # The message key
//!
//! Each gateway has one 32-byte [`MessageKey`] shared by its agent and the cloud:
//! `HMAC-SHA256(key = MQTT password, message = "wellpulse/v1/message-key")`
//! ([`MessageKey::derive`]). The agent derives it from the password it already has (so
//! `agent.toml` holds no new secret); the cloud derives it once when the gateway is
//! provisioned and stores only the derived key, next to the salted password hash (the
//! password itself is never stored). Knowing the key does not reveal the password (HMAC is
//! one-way), so a leaked key cannot be used to log in to the broker. The cloud keeps a
//! short list of valid keys per gateway (current first, then the previous one while
//! credentials rotate with an overlap window) and accepts a message sealed with any of
//! them; it answers with the key that opened the gateway's message.
//!
//! # The seal (version 1)
//!
//! A sealed payload is a CBOR array of three items, so any CBOR decoder reads it:
//!
//! ```text
//! 0x83  0x01  <the message: one CBOR item, unchanged>  0x50 <tag: 16 bytes>
//! [     1,    {0: 1, ...},                              h'…'               ]
//! ```
//!
//! `tag = HMAC-SHA256(key, "wellpulse/v1/seal" || u16be(len(topic)) || topic || payload
//! without its last 16 bytes)`, truncated to 16 bytes (128 bits, as HMAC-SHA-256-128 of
//! RFC 4868). It covers the full topic (tenant, gateway and kind, so a message cannot be
//! replayed onto another gateway's topic or as another kind: every kind has one direction,
//! so a gateway's own sealed data can never pass for a cloud ack either) and every byte of
//! the payload before it (version, message, tag header). The fixed layout costs 19 bytes per
//! message and needs no second parse: [`open`] checks the three header bytes and the length,
//! verifies the tag in constant time ([`base::ct_eq`]) and returns the message bytes, which
//! the message's own decoder then reads (it refuses trailing bytes, so the message is
//! exactly one item). A newer seal version is refused with [`SealError::UnsupportedVersion`].
//!
//! # Replay
//!
//! A seal proves who wrote a message and for which topic, not when. Replaying a sealed
//! message on its own topic is therefore harmless only where the message is idempotent:
//! - acks name seqs, which a gateway never reuses, so a replayed ack deletes nothing that
//!   was not already deleted (and a replayed refusal names batches already set aside);
//! - births, deaths and batches are idempotent at the cloud (births by boot id, batches by
//!   `(gateway, seq)`: a replayed batch is a duplicate);
//! - commands are not idempotent, so every [`Command`](crate::Command) carries an
//!   `expires_ms` (cloud clock) and an id unique per gateway: the agent refuses an expired
//!   command or one whose expiry lies further ahead than it accepts, and remembers the ids
//!   it executed until they expire, so a replayed command is refused.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Bytes of a seal's authentication tag.
pub const TAG_LEN: usize = 16;
/// Bytes a seal adds to a message: array header, version, tag header and tag.
pub const SEAL_OVERHEAD: usize = 3 + TAG_LEN;
/// The seal version this build writes and reads.
pub const SEAL_VERSION: u8 = 1;

/// Label of the key derivation (the HMAC message).
const KEY_LABEL: &[u8] = b"wellpulse/v1/message-key";
/// Domain separation of the tag input.
const TAG_LABEL: &[u8] = b"wellpulse/v1/seal";
/// CBOR: array of 3 items.
const ARRAY3: u8 = 0x83;
/// CBOR: byte string of 16 bytes.
const TAG_HEADER: u8 = 0x40 | TAG_LEN as u8;

type HmacSha256 = Hmac<Sha256>;

/// A gateway's 32-byte message key. `Debug` never prints it.
#[derive(Clone, PartialEq, Eq)]
pub struct MessageKey([u8; 32]);

impl std::fmt::Debug for MessageKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MessageKey(***)")
    }
}

impl MessageKey {
    /// Length of a key in bytes.
    pub const LEN: usize = 32;

    /// Derives the message key from a gateway's MQTT password (see the module docs).
    pub fn derive(password: &[u8]) -> MessageKey {
        let mut mac = new_mac(password);
        mac.update(KEY_LABEL);
        MessageKey(mac.finalize().into_bytes().into())
    }

    /// A stored key; `None` unless `bytes` is exactly [`MessageKey::LEN`] long.
    pub fn from_slice(bytes: &[u8]) -> Option<MessageKey> {
        <[u8; 32]>::try_from(bytes).ok().map(MessageKey)
    }

    /// The key's bytes, to store it (never to log it).
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    fn tag(&self, topic: &str, sealed_part: &[u8]) -> [u8; TAG_LEN] {
        let mut mac = new_mac(&self.0);
        mac.update(TAG_LABEL);
        // Topics are at most 65535 bytes in MQTT; a longer one would be refused by any
        // broker, and the length still separates the topic from the payload here.
        let len = u16::try_from(topic.len()).unwrap_or(u16::MAX);
        mac.update(&len.to_be_bytes());
        mac.update(topic.as_bytes());
        mac.update(sealed_part);
        let full = mac.finalize().into_bytes();
        let mut tag = [0; TAG_LEN];
        tag.copy_from_slice(&full[..TAG_LEN]);
        tag
    }
}

fn new_mac(key: &[u8]) -> HmacSha256 {
    match HmacSha256::new_from_slice(key) {
        Ok(mac) => mac,
        // HMAC takes keys of any length: this cannot happen.
        Err(e) => panic!("HMAC accepts keys of any length: {e}"),
    }
}

/// Why a payload did not open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// The payload does not have the sealed layout (an unsealed message, or garbage).
    #[error("not a sealed message (expected [version, message, 16-byte tag])")]
    NotSealed,
    /// The payload is sealed with a version this build does not know.
    #[error("seal version {found} is not supported: this build reads version {SEAL_VERSION}")]
    UnsupportedVersion {
        /// The version in the payload.
        found: u8,
    },
    /// No key accepted the tag: forged, altered, sealed for another topic or with a key
    /// that is not (or no longer) the gateway's.
    #[error("authentication tag does not match any key of this gateway for this topic")]
    BadTag,
}

/// Seals `message` (one encoded CBOR message) for `topic`.
pub fn seal(key: &MessageKey, topic: &str, message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + SEAL_OVERHEAD);
    out.push(ARRAY3);
    out.push(SEAL_VERSION);
    out.extend_from_slice(message);
    out.push(TAG_HEADER);
    let tag = key.tag(topic, &out);
    out.extend_from_slice(&tag);
    out
}

/// A payload whose seal was verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opened<'a> {
    /// The message bytes, for the message's decoder.
    pub message: &'a [u8],
    /// Index, in the keys given to [`open`], of the key that verified the tag.
    pub key: usize,
}

/// Verifies `payload`, received on `topic`, with each of `keys` in turn and returns the
/// message inside. Every key is tried even after a match, so the time taken does not tell
/// which key matched.
pub fn open<'a, 'k>(
    keys: impl IntoIterator<Item = &'k MessageKey>,
    topic: &str,
    payload: &'a [u8],
) -> Result<Opened<'a>, SealError> {
    let (message, sealed_part, tag) = split(payload)?;
    let mut matched = None;
    for (i, key) in keys.into_iter().enumerate() {
        let ok = base::ct_eq(&key.tag(topic, sealed_part), tag);
        if ok && matched.is_none() {
            matched = Some(i);
        }
    }
    matched
        .map(|key| Opened { message, key })
        .ok_or(SealError::BadTag)
}

/// The parts of a sealed payload: the message, the bytes the tag covers, and the tag.
type Parts<'a> = (&'a [u8], &'a [u8], &'a [u8]);

/// Splits a payload of the sealed layout into its [`Parts`].
fn split(payload: &[u8]) -> Result<Parts<'_>, SealError> {
    if payload.len() < SEAL_OVERHEAD || payload[0] != ARRAY3 {
        return Err(SealError::NotSealed);
    }
    if payload[1] != SEAL_VERSION {
        // A version is a small unsigned integer (major type 0, one byte).
        return match payload[1] {
            found @ 0..=23 => Err(SealError::UnsupportedVersion { found }),
            _ => Err(SealError::NotSealed),
        };
    }
    let (sealed_part, tag) = payload.split_at(payload.len() - TAG_LEN);
    let Some((&TAG_HEADER, with_version)) = sealed_part.split_last() else {
        return Err(SealError::NotSealed);
    };
    Ok((&with_version[2..], sealed_part, tag))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOPIC: &str = "wp/v1/acme/gw-1/ack";

    fn key(password: &str) -> MessageKey {
        MessageKey::derive(password.as_bytes())
    }

    #[test]
    fn the_key_is_hmac_sha256_of_the_label_under_the_password() {
        // Pinned: the cloud stores keys derived by this function, and agents derive theirs
        // at start; a change here would lock every provisioned gateway out.
        let k = key("gw-1-secret-0123456789");
        let hex: String = k.as_bytes().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "053d3f6d54913797101b6e8507a5fc1c1af188de45b27cce41b5eb40a22e9d10"
        );
        assert_ne!(k, key("gw-1-secret-0123456788"));
        assert_eq!(format!("{k:?}"), "MessageKey(***)");
        assert_eq!(MessageKey::from_slice(k.as_bytes()), Some(k));
        assert_eq!(MessageKey::from_slice(&[0; 31]), None);
    }

    #[test]
    fn a_sealed_message_opens_with_its_key_and_topic_only() {
        let (k, other) = (key("a-secret-0123456789"), key("b-secret-0123456789"));
        let message = [0xa1, 0x00, 0x01];
        let sealed = seal(&k, TOPIC, &message);
        assert_eq!(sealed.len(), message.len() + SEAL_OVERHEAD);
        assert_eq!(
            open([&k], TOPIC, &sealed),
            Ok(Opened {
                message: &message,
                key: 0
            })
        );
        assert_eq!(open([&other, &k], TOPIC, &sealed).map(|o| o.key), Ok(1));
        assert_eq!(open([&other], TOPIC, &sealed), Err(SealError::BadTag));
        let none: [&MessageKey; 0] = [];
        assert_eq!(open(none, TOPIC, &sealed), Err(SealError::BadTag));
        for topic in [
            "wp/v1/acme/gw-2/ack",
            "wp/v1/acme/gw-1/cmd",
            "wp/v1/other/gw-1/ack",
        ] {
            assert_eq!(
                open([&k], topic, &sealed),
                Err(SealError::BadTag),
                "{topic}"
            );
        }
    }

    #[test]
    fn every_altered_byte_breaks_the_seal() {
        let k = key("a-secret-0123456789");
        let sealed = seal(&k, TOPIC, &[0xa2, 0x00, 0x01, 0x01, 0x18, 0x2a]);
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x01;
            assert!(open([&k], TOPIC, &bad).is_err(), "byte {i}");
        }
        assert!(open([&k], TOPIC, &sealed[..sealed.len() - 1]).is_err());
        let mut longer = sealed.clone();
        longer.push(0);
        assert!(open([&k], TOPIC, &longer).is_err());
    }

    #[test]
    fn unsealed_and_newer_payloads_are_told_apart() {
        let k = key("a-secret-0123456789");
        assert_eq!(open([&k], TOPIC, &[]), Err(SealError::NotSealed));
        assert_eq!(
            open([&k], TOPIC, &[0xa1, 0x00, 0x01]),
            Err(SealError::NotSealed)
        );
        let mut v2 = seal(&k, TOPIC, &[0xa0]);
        v2[1] = 2;
        assert_eq!(
            open([&k], TOPIC, &v2),
            Err(SealError::UnsupportedVersion { found: 2 })
        );
    }
}
