//! Domain types of a firmware profile: what the agent plans reads from, what the simulator
//! serves, and what the codec interprets.
//!
//! These are plain Rust types without serde: the TOML representation lives in
//! [`crate::file`] and is converted (and validated) into these types by
//! [`crate::parse_profile`]. A [`Profile`] obtained from this crate has therefore always
//! passed validation: its tags have unique names and metrics, their data types fit their
//! register types, and their register ranges neither overlap nor overflow the 16-bit
//! address space.
//!
//! Tag order is significant: the index of a tag in [`Profile::tags`] is its *metric alias*
//! on the wire (see the shared contract), so reordering the tags of a shipped profile is a
//! breaking change for every gateway that uses it.

use std::fmt;
use std::time::Duration;

use crate::vocabulary::MetricKind;

/// One device model's register map and transport defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    /// Device model name, e.g. `"SAM Well Manager"`.
    pub model: String,
    /// Manufacturer (or "generic" for a vendor-neutral map).
    pub vendor: String,
    /// Free text describing the device and any register-map conventions.
    pub description: String,
    /// Communication defaults; the agent config may override them per device.
    pub transport: TransportDefaults,
    /// Tags in metric-alias order (alias = index).
    pub tags: Vec<Tag>,
}

impl Profile {
    /// The tag with this name, if any.
    pub fn tag(&self, name: &str) -> Option<&Tag> {
        self.tags.iter().find(|t| t.name == name)
    }

    /// The metric alias (index) and tag that carry this canonical metric, if any.
    pub fn tag_for_metric(&self, metric: &str) -> Option<(u16, &Tag)> {
        self.tags
            .iter()
            .enumerate()
            .find(|(_, t)| t.metric.as_deref() == Some(metric))
            .and_then(|(i, t)| Some((u16::try_from(i).ok()?, t)))
    }

    /// The distinct poll group names used by the tags, in first-use order.
    pub fn poll_groups(&self) -> Vec<&str> {
        let mut groups: Vec<&str> = Vec::new();
        for tag in &self.tags {
            if !groups.contains(&tag.poll_group.as_str()) {
                groups.push(&tag.poll_group);
            }
        }
        groups
    }
}

/// Transport defaults of a device model (Modbus TCP and RTU).
#[derive(Debug, Clone, PartialEq)]
pub struct TransportDefaults {
    /// Modbus unit id (slave address) the device answers to by default.
    pub unit_id: u8,
    /// How long to wait for one response before the request counts as failed.
    pub timeout: Duration,
    /// Largest register count the device accepts in one read (Modbus allows 1..=125).
    pub max_registers_per_request: u16,
    /// Largest coil / discrete input count the device accepts in one read (1..=2000).
    pub max_bits_per_request: u16,
    /// Unused registers (or bits) the read planner may read and discard to merge two
    /// ranges into one request. 0 = never read addresses the profile does not declare.
    pub max_gap: u16,
    /// Serial baud rate for Modbus RTU.
    pub baud_rate: u32,
    /// Serial data bits for Modbus RTU (7 or 8).
    pub data_bits: u8,
    /// Serial parity for Modbus RTU.
    pub parity: Parity,
    /// Serial stop bits for Modbus RTU (1 or 2).
    pub stop_bits: u8,
}

/// Serial parity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Parity {
    /// No parity bit.
    None,
    /// Even parity.
    Even,
    /// Odd parity.
    Odd,
}

/// The four Modbus data tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RegisterType {
    /// Read/write single bits (function codes 1, 5, 15).
    Coil,
    /// Read-only single bits (function code 2).
    DiscreteInput,
    /// Read-only 16-bit registers (function code 4).
    InputRegister,
    /// Read/write 16-bit registers (function codes 3, 6, 16).
    HoldingRegister,
}

impl RegisterType {
    /// True for coils and discrete inputs, whose addresses hold one bit each.
    pub fn is_bit_table(self) -> bool {
        matches!(self, RegisterType::Coil | RegisterType::DiscreteInput)
    }

    /// True for the tables a Modbus master can write (coils and holding registers).
    pub fn is_writable(self) -> bool {
        matches!(self, RegisterType::Coil | RegisterType::HoldingRegister)
    }

    /// The spelling used in profile files.
    pub fn as_str(self) -> &'static str {
        match self {
            RegisterType::Coil => "coil",
            RegisterType::DiscreteInput => "discrete_input",
            RegisterType::InputRegister => "input_register",
            RegisterType::HoldingRegister => "holding_register",
        }
    }
}

impl fmt::Display for RegisterType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a tag's value is laid out in its register(s).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataType {
    /// A coil or discrete input (one bit address).
    Bool,
    /// Unsigned 16-bit integer, one register.
    U16,
    /// Signed (two's complement) 16-bit integer, one register.
    I16,
    /// Unsigned 32-bit integer, two registers.
    U32,
    /// Signed 32-bit integer, two registers.
    I32,
    /// IEEE 754 single precision float, two registers.
    F32,
    /// Unsigned 64-bit integer, four registers (raw values above `i64::MAX` are rejected).
    U64,
    /// Signed 64-bit integer, four registers.
    I64,
    /// IEEE 754 double precision float, four registers.
    F64,
    /// ASCII text, two characters per register (first character in the first byte).
    String {
        /// Number of registers (capacity = 2 × registers characters).
        registers: u16,
    },
    /// One bit (0 = least significant) of a 16-bit input or holding register.
    Bit {
        /// Bit index, 0..=15.
        bit: u8,
    },
}

impl DataType {
    /// Number of 16-bit registers (or bit addresses, for [`DataType::Bool`]) the value spans.
    pub fn register_count(self) -> u16 {
        match self {
            DataType::Bool | DataType::Bit { .. } | DataType::U16 | DataType::I16 => 1,
            DataType::U32 | DataType::I32 | DataType::F32 => 2,
            DataType::U64 | DataType::I64 | DataType::F64 => 4,
            DataType::String { registers } => registers,
        }
    }

    /// True for the single-bit types ([`DataType::Bool`] and [`DataType::Bit`]).
    pub fn is_boolean(self) -> bool {
        matches!(self, DataType::Bool | DataType::Bit { .. })
    }

    /// True for the integer types.
    pub fn is_integer(self) -> bool {
        matches!(
            self,
            DataType::U16
                | DataType::I16
                | DataType::U32
                | DataType::I32
                | DataType::U64
                | DataType::I64
        )
    }

    /// True for the IEEE float types.
    pub fn is_float(self) -> bool {
        matches!(self, DataType::F32 | DataType::F64)
    }

    /// The spelling used in profile files (`type = "..."`).
    pub fn name(self) -> &'static str {
        match self {
            DataType::Bool => "bool",
            DataType::U16 => "u16",
            DataType::I16 => "i16",
            DataType::U32 => "u32",
            DataType::I32 => "i32",
            DataType::F32 => "f32",
            DataType::U64 => "u64",
            DataType::I64 => "i64",
            DataType::F64 => "f64",
            DataType::String { .. } => "string",
            DataType::Bit { .. } => "bit",
        }
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataType::String { registers } => write!(f, "string({registers} registers)"),
            DataType::Bit { bit } => write!(f, "bit {bit}"),
            other => f.write_str(other.name()),
        }
    }
}

/// Byte order within each 16-bit register.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ByteOrder {
    /// High byte first: the Modbus standard.
    Big,
    /// Low byte first (bytes swapped within every register).
    Little,
}

/// Order of the 16-bit registers of a multi-register value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WordOrder {
    /// Most significant register at the lowest address ("ABCD"; Modicon convention).
    HighFirst,
    /// Least significant register at the lowest address ("CDAB"; common for Enron longs).
    LowFirst,
}

/// One value read from (or written to) a device.
#[derive(Debug, Clone, PartialEq)]
pub struct Tag {
    /// Unique name within the profile (snake_case by convention).
    pub name: String,
    /// Canonical metric from [`crate::vocabulary`], or `custom.<name>` for a custom
    /// metric; `None` only for string info tags.
    pub metric: Option<String>,
    /// The kind the profile declares for a custom metric (`None` for canonical metrics,
    /// whose kind is the vocabulary's, and for string tags); see [`Tag::metric_kind`].
    pub kind: Option<MetricKind>,
    /// Which Modbus table the tag lives in.
    pub register: RegisterType,
    /// Zero-based protocol (PDU) address of the first register or bit.
    pub address: u16,
    /// Layout of the value.
    pub data_type: DataType,
    /// Byte order within each register.
    pub byte_order: ByteOrder,
    /// Register order for multi-register values (ignored by single-register types and strings).
    pub word_order: WordOrder,
    /// Engineering value = raw × scale + offset.
    pub scale: f64,
    /// Engineering value = raw × scale + offset.
    pub offset: f64,
    /// Engineering unit; equals the vocabulary unit of `metric`.
    pub unit: String,
    /// Plausible engineering range `(min, max)`; values outside are reported as uncertain
    /// and setpoint writes outside are refused.
    pub valid_range: Option<(f64, f64)>,
    /// Report-by-exception threshold in engineering units; 0 = send every poll.
    pub deadband: f64,
    /// Name of the poll group (its interval is set in the agent config).
    pub poll_group: String,
    /// Whether setpoint writes to this tag are allowed (coils and holding registers only).
    pub writable: bool,
    /// Free text, e.g. the vendor's register description.
    pub description: String,
}

impl Tag {
    /// How the tag's metric aggregates: the vocabulary's kind for a canonical metric, the
    /// declared kind for a custom one; `None` for string info tags.
    pub fn metric_kind(&self) -> Option<MetricKind> {
        let metric = self.metric.as_deref()?;
        match crate::vocabulary::lookup(metric) {
            Some(def) => Some(def.kind),
            None => self.kind,
        }
    }

    /// Whether the tag carries a custom (`custom.<name>`) metric.
    pub fn is_custom(&self) -> bool {
        self.metric
            .as_deref()
            .is_some_and(|m| m.starts_with(crate::vocabulary::CUSTOM_NAMESPACE))
    }

    /// The inclusive address range `(first, last)` the tag occupies in its table (clamped
    /// at 65535; validated tags never reach past it).
    pub fn address_range(&self) -> (u16, u16) {
        let end = u32::from(self.address) + u32::from(self.register_count());
        let last = end.saturating_sub(1).max(u32::from(self.address));
        (self.address, u16::try_from(last).unwrap_or(u16::MAX))
    }
}

/// A raw (unscaled) value as read from registers.
#[derive(Debug, Clone, PartialEq)]
pub enum RawValue {
    /// Integer register content (before scale and offset).
    Int(i64),
    /// Float register content (before scale and offset).
    Float(f64),
    /// Coil, discrete input or bit-in-register.
    Bool(bool),
    /// ASCII text of a string tag.
    Text(String),
}
