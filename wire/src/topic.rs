//! MQTT topic names: `wp/v1/{tenant}/{gateway}/{kind}`.
//!
//! Tenant and gateway ids are restricted to `[a-z0-9][a-z0-9_-]{0,62}` so they can never
//! contain MQTT wildcards (`+`, `#`), separators (`/`) or `$`, and a topic always parses
//! back to exactly the ids it was built from.

/// What a topic carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Session start and catalog (edge → cloud).
    Birth,
    /// Last will (edge → cloud).
    Death,
    /// Data batches (edge → cloud).
    Data,
    /// Committed seq ranges (cloud → edge).
    Ack,
    /// Commands (cloud → edge).
    Cmd,
    /// Command outcomes (edge → cloud).
    CmdResult,
}

impl Kind {
    /// All kinds.
    pub const ALL: [Kind; 6] = [
        Kind::Birth,
        Kind::Death,
        Kind::Data,
        Kind::Ack,
        Kind::Cmd,
        Kind::CmdResult,
    ];

    /// The topic suffix.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Birth => "birth",
            Kind::Death => "death",
            Kind::Data => "data",
            Kind::Ack => "ack",
            Kind::Cmd => "cmd",
            Kind::CmdResult => "cmd/result",
        }
    }
}

/// Topic prefix of this protocol version.
pub const PREFIX: &str = "wp/v1";

/// The shared subscription ingesters use for data, so several share the load.
pub const SHARED_DATA_SUBSCRIPTION: &str = "$share/ingest/wp/v1/+/+/data";

/// The level under [`PREFIX`] of the cloud's state topics ([`crate::state`]): not a valid
/// tenant id (ids start with a letter or digit), so no tenant's topics can collide.
pub const STATE_LEVEL: &str = "_state";

/// What agents subscribe to: every ingester's state, `wp/v1/_state/+`.
pub const STATE_FILTER: &str = "wp/v1/_state/+";

/// The state topic of one ingester, `wp/v1/_state/{ingester}`; `ingester` (its MQTT
/// client id) must pass [`validate_id`].
pub fn state_topic(ingester: &str) -> String {
    format!("{PREFIX}/{STATE_LEVEL}/{ingester}")
}

/// The ingester id of a state topic, if `topic` is one.
pub fn parse_state(topic: &str) -> Option<&str> {
    let ingester = topic
        .strip_prefix(PREFIX)?
        .strip_prefix('/')?
        .strip_prefix(STATE_LEVEL)?
        .strip_prefix('/')?;
    validate_id(ingester).ok().map(|()| ingester)
}

/// Why a topic or id was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    /// The id has characters or a length outside `[a-z0-9][a-z0-9_-]{0,62}`.
    #[error(
        "invalid id {id:?}: use 1-63 characters of a-z, 0-9, '_' and '-', starting with a letter or digit"
    )]
    InvalidId {
        /// The rejected id.
        id: String,
    },
    /// The topic does not have the `wp/v1/{tenant}/{gateway}/{kind}` shape.
    #[error("topic {topic:?} is not of the form wp/v1/{{tenant}}/{{gateway}}/{{kind}}")]
    Shape {
        /// The rejected topic.
        topic: String,
    },
    /// The kind suffix is unknown.
    #[error("topic {topic:?} has unknown kind {kind:?}")]
    UnknownKind {
        /// The rejected topic.
        topic: String,
        /// Its suffix.
        kind: String,
    },
}

/// Checks a tenant or gateway id.
pub fn validate_id(id: &str) -> Result<(), TopicError> {
    let bytes = id.as_bytes();
    let ok = !bytes.is_empty()
        && bytes.len() <= 63
        && (bytes[0].is_ascii_lowercase() || bytes[0].is_ascii_digit())
        && bytes
            .iter()
            .all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(TopicError::InvalidId { id: id.to_owned() })
    }
}

/// Builds a topic. The ids must have passed [`validate_id`].
pub fn topic(tenant: &str, gateway: &str, kind: Kind) -> String {
    format!("{PREFIX}/{tenant}/{gateway}/{}", kind.as_str())
}

/// Splits a topic into tenant, gateway and kind.
pub fn parse(topic: &str) -> Result<(String, String, Kind), TopicError> {
    let shape = || TopicError::Shape {
        topic: topic.to_owned(),
    };
    let rest = topic
        .strip_prefix(PREFIX)
        .and_then(|r| r.strip_prefix('/'))
        .ok_or_else(shape)?;
    let mut parts = rest.splitn(3, '/');
    let (tenant, gateway, kind) = match (parts.next(), parts.next(), parts.next()) {
        (Some(t), Some(g), Some(k)) => (t, g, k),
        _ => return Err(shape()),
    };
    validate_id(tenant)?;
    validate_id(gateway)?;
    let kind = Kind::ALL
        .into_iter()
        .find(|k| k.as_str() == kind)
        .ok_or_else(|| TopicError::UnknownKind {
            topic: topic.to_owned(),
            kind: kind.to_owned(),
        })?;
    Ok((tenant.to_owned(), gateway.to_owned(), kind))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_round_trip() {
        for kind in Kind::ALL {
            let t = topic("acme", "gw-01", kind);
            assert_eq!(
                parse(&t).unwrap(),
                ("acme".to_owned(), "gw-01".to_owned(), kind)
            );
        }
        assert_eq!(
            topic("acme", "gw-01", Kind::CmdResult),
            "wp/v1/acme/gw-01/cmd/result"
        );
    }

    #[test]
    fn state_topics_cannot_collide_with_a_tenant() {
        assert_eq!(state_topic("wp-ingester-1"), "wp/v1/_state/wp-ingester-1");
        assert_eq!(
            parse_state("wp/v1/_state/wp-ingester-1"),
            Some("wp-ingester-1")
        );
        assert_eq!(STATE_FILTER, format!("{PREFIX}/{STATE_LEVEL}/+"));
        assert!(
            validate_id(STATE_LEVEL).is_err(),
            "no tenant can be named _state"
        );
        for t in [
            "wp/v1/_state/",
            "wp/v1/_state/+",
            "wp/v1/_state/a/b",
            "wp/v1/_statex/a",
            "wp/v1/acme/gw/data",
        ] {
            assert_eq!(parse_state(t), None, "{t:?}");
        }
        // A state topic is never a gateway topic, whatever the ingester is called.
        for id in ["data", "ack", "birth"] {
            assert!(parse(&state_topic(id)).is_err());
        }
    }

    #[test]
    fn hostile_ids_and_topics_are_rejected() {
        for id in [
            "",
            "+",
            "#",
            "a/b",
            "$sys",
            "Upper",
            "-lead",
            &"x".repeat(64),
        ] {
            assert!(validate_id(id).is_err(), "{id:?}");
        }
        for t in [
            "wp/v1/acme/gw",
            "wp/v2/acme/gw/data",
            "wp/v1/acme/+/data",
            "wp/v1/acme/gw/other",
            "x",
        ] {
            assert!(parse(t).is_err(), "{t:?}");
        }
    }
}
