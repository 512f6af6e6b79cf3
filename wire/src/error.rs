//! Errors of encoding and decoding.

/// Why bytes could not be decoded into a message. Decoding never panics: every hostile
/// input ends in one of these.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The bytes are not the CBOR this schema expects (truncated, wrong type, ...).
    #[error("malformed {message} at byte {position}: {detail}")]
    Malformed {
        /// The message or part being decoded.
        message: &'static str,
        /// Byte offset of the problem.
        position: usize,
        /// What was wrong.
        detail: String,
    },
    /// The sender uses a schema version this build cannot read.
    #[error(
        "incompatible {message} schema version {found}: this build reads versions up to {supported}"
    )]
    IncompatibleVersion {
        /// The message being decoded.
        message: &'static str,
        /// The version in the message.
        found: u64,
        /// The newest version this build reads.
        supported: u16,
    },
    /// A required field is absent.
    #[error("{message} is missing required field `{field}`")]
    MissingField {
        /// The message or part being decoded.
        message: &'static str,
        /// The field's name.
        field: &'static str,
    },
    /// A field is present twice.
    #[error("{message} has field key {key} twice")]
    DuplicateField {
        /// The message or part being decoded.
        message: &'static str,
        /// The repeated map key.
        key: u64,
    },
    /// A field has a value outside what the schema allows.
    #[error("{message} has an invalid `{field}`: {detail}")]
    Invalid {
        /// The message or part being decoded.
        message: &'static str,
        /// The field's name.
        field: &'static str,
        /// What was wrong.
        detail: String,
    },
    /// Bytes follow the end of the message.
    #[error("{message} is followed by {count} unexpected trailing bytes")]
    TrailingBytes {
        /// The message being decoded.
        message: &'static str,
        /// How many bytes follow.
        count: usize,
    },
}

/// Why a message could not be encoded. Only the data batch has rules that its Rust
/// types cannot enforce on their own.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// One frame holds the same metric alias twice.
    #[error("frame of device {device} at {ts_ms} ms holds metric alias {metric} twice")]
    DuplicateMetric {
        /// Device alias of the frame.
        device: u16,
        /// Frame timestamp.
        ts_ms: i64,
        /// The repeated metric alias.
        metric: u16,
    },
}
