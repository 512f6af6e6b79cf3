//! Errors of profile loading.
//!
//! A profile is checked completely before it is rejected: [`ProfileError::Invalid`]
//! carries every [`Issue`] found, each naming the tag it concerns (when it concerns one)
//! and a typed [`Problem`], so an author fixes a file in one round instead of one error
//! at a time. The `Display` form always starts with `firmware profile <file>:`.

use std::fmt;
use std::path::PathBuf;

use crate::model::{DataType, RegisterType};
use crate::vocabulary::DidYouMean;

/// Why a profile could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// The file or directory could not be read.
    #[error("firmware profile {}: cannot read: {source}", path.display())]
    Io {
        /// The path that failed.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The text is not valid TOML or does not match the file format (unknown field, wrong
    /// type, missing field); the message carries the line and column.
    #[error("firmware profile {source_name}: {message}")]
    Syntax {
        /// File name (or other label) the text came from.
        source_name: String,
        /// The parser's message.
        message: String,
    },
    /// The file parsed but breaks one or more rules.
    #[error("firmware profile {source_name}: {}", IssueList(issues))]
    Invalid {
        /// File name (or other label) the text came from.
        source_name: String,
        /// Every rule violation found, in file order.
        issues: Vec<Issue>,
    },
    /// Two files in one directory map to the same profile id.
    #[error("firmware profile {}: duplicate profile id \"{id}\"", path.display())]
    DuplicateId {
        /// The second file with that id.
        path: PathBuf,
        /// The profile id (file stem).
        id: String,
    },
}

impl ProfileError {
    /// The rule violations, if this is an [`ProfileError::Invalid`] error.
    pub fn issues(&self) -> &[Issue] {
        match self {
            ProfileError::Invalid { issues, .. } => issues,
            _ => &[],
        }
    }
}

/// One rule violation in a profile.
#[derive(Debug, Clone, PartialEq)]
pub struct Issue {
    /// The tag concerned, or `None` for profile-level and transport problems.
    pub tag: Option<String>,
    /// What is wrong.
    pub problem: Problem,
}

impl Issue {
    /// An issue about one tag.
    pub fn tag(tag: &str, problem: Problem) -> Issue {
        Issue {
            tag: Some(tag.to_owned()),
            problem,
        }
    }

    /// An issue about the profile as a whole.
    pub fn profile(problem: Problem) -> Issue {
        Issue { tag: None, problem }
    }
}

impl fmt::Display for Issue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.tag {
            Some(tag) => write!(f, "tag \"{tag}\": {}", self.problem),
            None => write!(f, "{}", self.problem),
        }
    }
}

/// Formats one issue plainly, several as a numbered list.
struct IssueList<'a>(&'a [Issue]);

impl fmt::Display for IssueList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            [one] => write!(f, "{one}"),
            many => {
                write!(f, "{} problems:", many.len())?;
                for (i, issue) in many.iter().enumerate() {
                    write!(f, " ({}) {issue};", i + 1)?;
                }
                Ok(())
            }
        }
    }
}

/// A rule a profile breaks.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Problem {
    /// `model` is empty.
    #[error("model must not be empty")]
    EmptyModel,
    /// The profile has no tags.
    #[error("profile declares no tags")]
    NoTags,
    /// More tags than metric aliases (u16) can number.
    #[error("{count} tags exceed the 65536 metric aliases")]
    TooManyTags {
        /// Number of tags.
        count: usize,
    },
    /// `max_registers_per_request` outside the Modbus limit.
    #[error("transport.max_registers_per_request must be within 1..=125 (got {0})")]
    MaxRegisters(u16),
    /// `max_bits_per_request` outside the Modbus limit.
    #[error("transport.max_bits_per_request must be within 1..=2000 (got {0})")]
    MaxBits(u16),
    /// A zero timeout.
    #[error("transport.timeout must be greater than zero")]
    ZeroTimeout,
    /// A zero baud rate.
    #[error("transport.baud_rate must be greater than zero")]
    ZeroBaudRate,
    /// Serial data bits other than 7 or 8.
    #[error("transport.data_bits must be 7 or 8 (got {0})")]
    DataBits(u8),
    /// Serial stop bits other than 1 or 2.
    #[error("transport.stop_bits must be 1 or 2 (got {0})")]
    StopBits(u8),
    /// The tag name is empty or has characters other than `[a-z0-9_]`.
    #[error("tag name must be non-empty snake_case ([a-z0-9_])")]
    BadTagName,
    /// Two tags share a name.
    #[error("duplicate tag name (first used by tag #{first_index})")]
    DuplicateTagName {
        /// Index of the first tag with the name.
        first_index: usize,
    },
    /// The metric is not in the vocabulary.
    #[error("unknown canonical metric \"{name}\"{}", DidYouMean(*suggestion))]
    UnknownMetric {
        /// The name in the file.
        name: String,
        /// The closest vocabulary name, if one is close.
        suggestion: Option<&'static str>,
    },
    /// The unit differs from the vocabulary's unit for the metric.
    #[error("unit \"{unit}\" does not match metric \"{metric}\", whose unit is \"{expected}\"")]
    UnitMismatch {
        /// The metric.
        metric: String,
        /// The unit in the file.
        unit: String,
        /// The vocabulary unit.
        expected: &'static str,
    },
    /// The metric is already carried by another tag.
    #[error("metric \"{metric}\" is used twice (also by tag \"{other_tag}\")")]
    DuplicateMetric {
        /// The metric.
        metric: String,
        /// The tag that used it first.
        other_tag: String,
    },
    /// A `metric` with a namespace other than `custom.`.
    #[error(
        "unknown metric namespace \"{namespace}\" in \"{name}\" (a metric is a canonical name or custom.<name>)"
    )]
    UnknownNamespace {
        /// The metric in the file.
        name: String,
        /// The part before the first dot.
        namespace: String,
    },
    /// A `custom.<name>` metric whose name breaks the rules (syntax, length, or it is a
    /// canonical name).
    #[error("invalid custom metric \"{name}\": {reason}")]
    BadCustomName {
        /// The metric in the file.
        name: String,
        /// The rule it breaks.
        reason: String,
    },
    /// A custom metric whose unit breaks the rules.
    #[error("custom metric \"{metric}\": {reason}")]
    BadCustomUnit {
        /// The metric.
        metric: String,
        /// The rule the unit breaks.
        reason: String,
    },
    /// A custom metric without `kind`.
    #[error(
        "custom metric \"{metric}\" needs kind = \"gauge\", \"counter\" or \"state\" (how it aggregates)"
    )]
    CustomWithoutKind {
        /// The metric.
        metric: String,
    },
    /// `kind` on a canonical metric (the vocabulary defines its kind) or on a string tag.
    #[error(
        "`kind` only applies to custom metrics (canonical metrics take their kind from the vocabulary)"
    )]
    UnexpectedKind,
    /// A non-string tag without `metric`.
    #[error("metric is missing (only string info tags may omit it)")]
    MissingMetric,
    /// A string tag with `metric`.
    #[error("string tags are informational and cannot carry a metric")]
    MetricOnString,
    /// A data type the register table cannot hold.
    #[error("data type {data_type} is not allowed on {register} ({hint})")]
    DataTypeNotAllowed {
        /// The tag's data type.
        data_type: DataType,
        /// The tag's register table.
        register: RegisterType,
        /// How to fix it.
        hint: &'static str,
    },
    /// `type = "bit"` without `bit`.
    #[error("type \"bit\" needs `bit = 0..15`")]
    MissingBit,
    /// A bit index above 15.
    #[error("bit index {0} is out of range 0..=15")]
    BitIndex(u8),
    /// `bit` on a type other than `bit`.
    #[error("`bit` only applies to type \"bit\"")]
    UnexpectedBit,
    /// `type = "string"` without `registers` (or with 0).
    #[error(
        "string without registers: type \"string\" needs `registers` >= 1 (2 ASCII characters each)"
    )]
    StringWithoutRegisters,
    /// `registers` on a type other than `string`.
    #[error("`registers` only applies to type \"string\"")]
    UnexpectedRegisters,
    /// The tag's last register lies beyond address 65535.
    #[error(
        "address {address} + {count} registers overflows the address space (last address is 65535)"
    )]
    AddressOverflow {
        /// First address.
        address: u16,
        /// Registers spanned.
        count: u16,
    },
    /// The tag's registers (or bit) overlap another tag's in the same table.
    #[error("{register} {first}..={last} overlaps tag \"{other_tag}\"")]
    Overlap {
        /// The table.
        register: RegisterType,
        /// First address of this tag.
        first: u16,
        /// Last address of this tag.
        last: u16,
        /// The tag it collides with.
        other_tag: String,
    },
    /// Two `bit` tags claim the same bit of the same register.
    #[error("bit {bit} of {register} {address} is also used by tag \"{other_tag}\"")]
    BitReused {
        /// The table.
        register: RegisterType,
        /// Register address.
        address: u16,
        /// Bit index.
        bit: u8,
        /// The tag that claimed the bit first.
        other_tag: String,
    },
    /// Scale zero, NaN or infinite.
    #[error("scale must be finite and non-zero")]
    BadScale,
    /// Offset NaN or infinite.
    #[error("offset must be finite")]
    BadOffset,
    /// Scale or offset set on a boolean or string tag.
    #[error("scale and offset do not apply to {0} tags (leave them at 1 and 0)")]
    ScaleOnNonNumeric(&'static str),
    /// `valid_range` with min >= max or non-finite bounds.
    #[error("valid_range min ({min}) must be less than max ({max}) and both finite")]
    BadRange {
        /// Lower bound.
        min: f64,
        /// Upper bound.
        max: f64,
    },
    /// `valid_range` on a string tag.
    #[error("valid_range does not apply to string tags")]
    RangeOnString,
    /// A negative or non-finite deadband.
    #[error("deadband must be finite and >= 0 (got {0})")]
    BadDeadband(f64),
    /// An empty poll group name.
    #[error("poll_group must not be empty")]
    EmptyPollGroup,
    /// `writable = true` on a read-only table.
    #[error("writable, but {0} is read-only (only coils and holding registers can be written)")]
    WritableReadOnly(RegisterType),
    /// A writable numeric tag without `valid_range`: setpoint writes could not be guarded.
    #[error("writable numeric tags need a valid_range to guard setpoint writes")]
    WritableWithoutRange,
    /// `writable = true` on a string tag.
    #[error("string tags cannot be writable")]
    WritableString,
}
