//! What callers present and what is stored of it: people's passwords (argon2id), and the
//! random tokens of sessions, API keys and one-time links (stored as SHA-256 digests).
//!
//! # Formats
//!
//! | what            | format                              | stored                        |
//! |-----------------|-------------------------------------|-------------------------------|
//! | access token    | `wpat_` + 64 hex (256 random bits)  | SHA-256 of the whole token    |
//! | refresh token   | `wprt_` + 64 hex                    | SHA-256 of the whole token    |
//! | API key         | `wpk_` + 12 hex prefix + `_` + 64 hex | prefix, SHA-256 of the token |
//! | one-time token  | `wpot_` + 64 hex (email links)      | SHA-256 of the whole token    |
//!
//! The prefixes make a leaked secret recognisable (secret scanners, logs) and tell the
//! authentication layer which lookup to make. An API key's prefix is public: it names the
//! key in lists and in the audit log.
//!
//! # Passwords
//!
//! argon2id with OWASP's recommended parameters (19 MiB of memory, 2 passes, 1 lane),
//! salted, stored as a PHC string (the parameters travel with each hash, so they can be
//! raised later without invalidating stored ones). Passwords are 12 to 1,024 characters;
//! the upper bound keeps a single request from costing more than a hash. Hashing is
//! CPU-bound (~tens of ms), so callers run it on the blocking pool.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use store::identity::digest;

/// Shortest password accepted.
pub(crate) const MIN_PASSWORD_CHARS: usize = 12;
/// Longest password accepted.
pub(crate) const MAX_PASSWORD_CHARS: usize = 1024;

/// Prefix of access tokens.
pub(crate) const ACCESS_PREFIX: &str = "wpat_";
/// Prefix of refresh tokens.
pub(crate) const REFRESH_PREFIX: &str = "wprt_";
/// Prefix of API keys.
pub(crate) const KEY_PREFIX: &str = "wpk_";
/// Prefix of one-time tokens.
pub(crate) const ONE_TIME_PREFIX: &str = "wpot_";

fn argon2() -> Argon2<'static> {
    // OWASP Password Storage Cheat Sheet: argon2id, m=19 MiB, t=2, p=1.
    let params = Params::new(19 * 1024, 2, 1, None).expect("valid argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Why a password is refused.
pub(crate) fn password_problem(password: &str) -> Option<String> {
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_CHARS {
        Some(format!(
            "must be at least {MIN_PASSWORD_CHARS} characters (got {chars})"
        ))
    } else if chars > MAX_PASSWORD_CHARS {
        Some(format!("must be at most {MAX_PASSWORD_CHARS} characters"))
    } else if password.trim().is_empty() {
        Some("must not be only spaces".to_owned())
    } else {
        None
    }
}

/// The argon2id PHC string of a password (slow: call on the blocking pool).
pub(crate) fn hash_password(password: &str) -> String {
    let salt_bytes: [u8; 16] = rand::random();
    let salt = SaltString::encode_b64(&salt_bytes).expect("16 bytes make a valid salt");
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 hashes any password within the length limits")
        .to_string()
}

/// Whether `password` matches the stored PHC string (slow: call on the blocking pool).
/// A malformed stored hash matches nothing.
pub(crate) fn verify_password(stored: &str, password: &str) -> bool {
    match PasswordHash::new(stored) {
        Ok(hash) => argon2().verify_password(password.as_bytes(), &hash).is_ok(),
        Err(_) => false,
    }
}

/// A hash of a password nobody has, verified against when an email is unknown so that
/// the answer takes as long as for a known one.
pub(crate) fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password("decoy password that is never anyone's"))
}

fn random_hex() -> String {
    let bytes: [u8; 32] = rand::random();
    hex::encode(bytes)
}

/// A new token with `prefix` and its stored digest.
pub(crate) fn new_token(prefix: &str) -> (String, Vec<u8>) {
    let token = format!("{prefix}{}", random_hex());
    let hash = digest(&token);
    (token, hash)
}

/// A new API key: (the key, its public prefix, the digest of the whole key).
pub(crate) fn new_api_key() -> (String, String, Vec<u8>) {
    let prefix: [u8; 6] = rand::random();
    let prefix = hex::encode(prefix);
    let key = format!("{KEY_PREFIX}{prefix}_{}", random_hex());
    let hash = digest(&key);
    (key, prefix, hash)
}

/// Whether `token` has the shape of a token with `prefix` (the prefix and 64 hex digits).
pub(crate) fn is_token(token: &str, prefix: &str) -> bool {
    token
        .strip_prefix(prefix)
        .is_some_and(|rest| rest.len() == 64 && rest.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The public prefix of a well-formed API key.
pub(crate) fn api_key_prefix(key: &str) -> Option<&str> {
    let rest = key.strip_prefix(KEY_PREFIX)?;
    let (prefix, secret) = rest.split_once('_')?;
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    (hex(prefix, 12) && hex(secret, 64)).then_some(prefix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_with_argon2id_and_verify() {
        let hash = hash_password("correct horse battery staple");
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(verify_password(&hash, "correct horse battery staple"));
        assert!(!verify_password(&hash, "correct horse battery stapl"));
        assert!(!verify_password("not a phc string", "x"));
        assert_ne!(
            hash,
            hash_password("correct horse battery staple"),
            "salted"
        );
    }

    #[test]
    fn password_rules() {
        assert!(password_problem("short").is_some());
        assert!(password_problem("            ").is_some());
        assert!(password_problem(&"x".repeat(1025)).is_some());
        assert!(password_problem("twelve chars").is_none());
    }

    #[test]
    fn tokens_and_keys_have_recognisable_shapes() {
        let (token, hash) = new_token(ACCESS_PREFIX);
        assert!(is_token(&token, ACCESS_PREFIX));
        assert!(!is_token(&token, REFRESH_PREFIX));
        assert_eq!(hash, digest(&token));
        let (key, prefix, hash) = new_api_key();
        assert_eq!(api_key_prefix(&key), Some(prefix.as_str()));
        assert_eq!(hash, digest(&key));
        assert_eq!(api_key_prefix("wpk_short_abc"), None);
        assert_eq!(api_key_prefix(&key.replace("wpk_", "wpx_")), None);
    }
}
