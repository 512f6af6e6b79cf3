//! The TOML file format of a firmware profile (serde boundary types).
//!
//! These structs mirror the file one to one; every field is documented here and in the
//! crate-level format reference. Unknown fields are rejected (`deny_unknown_fields`) so a
//! misspelt key is an error instead of a silently ignored setting. [`ProfileFile::into_profile`]
//! turns a parsed file into the domain [`Profile`], reporting shape problems (a `bit` key
//! on a non-bit type, a string without `registers`, ...); the semantic rules are checked
//! afterwards by the validator.

use std::time::Duration;

use serde::Deserialize;

use crate::error::{Issue, Problem};
use crate::model::{
    ByteOrder, DataType, Parity, Profile, RegisterType, Tag, TransportDefaults, WordOrder,
};
use crate::vocabulary::MetricKind;

/// A whole profile file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileFile {
    /// Device model name, e.g. `"SAM Well Manager"`. Required, non-empty.
    pub model: String,
    /// Manufacturer. Required (may be `"generic"`).
    pub vendor: String,
    /// What the device is and the register-map conventions it follows. Optional.
    #[serde(default)]
    pub description: String,
    /// Transport defaults (`[transport]` table). Optional; every key has a default.
    #[serde(default)]
    pub transport: TransportFile,
    /// The tags (`[[tags]]` array of tables), in metric-alias order. At least one.
    #[serde(default)]
    pub tags: Vec<TagFile>,
}

/// The `[transport]` table.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TransportFile {
    /// Modbus unit id (slave address). Default 1.
    pub unit_id: u8,
    /// Response timeout as a humantime string (`"500ms"`, `"2s"`). Default `"1s"`.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Largest register count per read request, 1..=125. Default 125.
    pub max_registers_per_request: u16,
    /// Largest coil / discrete input count per read request, 1..=2000. Default 2000.
    pub max_bits_per_request: u16,
    /// Undeclared registers the planner may read to merge two ranges. Default 0 (many
    /// devices answer "illegal data address" for unmapped registers).
    pub max_gap: u16,
    /// Modbus RTU baud rate. Default 9600.
    pub baud_rate: u32,
    /// Modbus RTU data bits, 7 or 8. Default 8.
    pub data_bits: u8,
    /// Modbus RTU parity: `"none"`, `"even"` or `"odd"`. Default `"none"`.
    pub parity: ParityFile,
    /// Modbus RTU stop bits, 1 or 2. Default 1.
    pub stop_bits: u8,
}

impl Default for TransportFile {
    fn default() -> Self {
        TransportFile {
            unit_id: 1,
            timeout: Duration::from_secs(1),
            max_registers_per_request: 125,
            max_bits_per_request: 2000,
            max_gap: 0,
            baud_rate: 9600,
            data_bits: 8,
            parity: ParityFile::None,
            stop_bits: 1,
        }
    }
}

/// Serial parity spelling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParityFile {
    /// `"none"`.
    None,
    /// `"even"`.
    Even,
    /// `"odd"`.
    Odd,
}

/// One `[[tags]]` entry.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TagFile {
    /// Unique snake_case name within the profile. Required.
    pub name: String,
    /// Canonical metric name from the vocabulary, or `custom.<name>` for a custom metric.
    /// Required except for string info tags.
    #[serde(default)]
    pub metric: Option<String>,
    /// How a custom metric aggregates: `"gauge"`, `"counter"` or `"state"`. Required with
    /// and only with a `custom.` metric.
    #[serde(default)]
    pub kind: Option<KindFile>,
    /// Register table: `"coil"`, `"discrete_input"`, `"input_register"` or
    /// `"holding_register"`. Required.
    pub register: RegisterTypeFile,
    /// Zero-based protocol address (Modicon 40001 = holding register address 0). Required.
    pub address: u16,
    /// Data type: `bool`, `u16`, `i16`, `u32`, `i32`, `f32`, `u64`, `i64`, `f64`,
    /// `string`, `bit`. Required.
    #[serde(rename = "type")]
    pub data_type: DataTypeFile,
    /// Bit index 0..=15 (0 = least significant); required with and only with `type = "bit"`.
    #[serde(default)]
    pub bit: Option<u8>,
    /// Register count (2 characters each); required with and only with `type = "string"`.
    #[serde(default)]
    pub registers: Option<u16>,
    /// Byte order within a register: `"big"` (default) or `"little"`.
    #[serde(default = "default_byte_order")]
    pub byte_order: ByteOrderFile,
    /// Register order of multi-register values: `"high_first"` (default) or `"low_first"`.
    #[serde(default = "default_word_order")]
    pub word_order: WordOrderFile,
    /// Engineering = raw × scale + offset. Default 1.
    #[serde(default = "one")]
    pub scale: f64,
    /// Engineering = raw × scale + offset. Default 0.
    #[serde(default)]
    pub offset: f64,
    /// Engineering unit; must equal the metric's vocabulary unit. Default `""`.
    #[serde(default)]
    pub unit: String,
    /// Plausible engineering range `[min, max]`. Optional.
    #[serde(default)]
    pub valid_range: Option<[f64; 2]>,
    /// Report-by-exception threshold in engineering units, >= 0. Default 0 (every poll).
    #[serde(default)]
    pub deadband: f64,
    /// Poll group name (interval set in the agent config). Required, non-empty.
    pub poll_group: String,
    /// Allow setpoint writes (coils and holding registers only). Default false.
    #[serde(default)]
    pub writable: bool,
    /// Free text. Optional.
    #[serde(default)]
    pub description: String,
}

/// Metric kind spelling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KindFile {
    /// `"gauge"`.
    Gauge,
    /// `"counter"`.
    Counter,
    /// `"state"`.
    State,
}

/// Register table spelling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegisterTypeFile {
    /// `"coil"`.
    Coil,
    /// `"discrete_input"`.
    DiscreteInput,
    /// `"input_register"`.
    InputRegister,
    /// `"holding_register"`.
    HoldingRegister,
}

/// Data type spelling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DataTypeFile {
    /// `"bool"`: coil or discrete input.
    Bool,
    /// `"u16"`.
    U16,
    /// `"i16"`.
    I16,
    /// `"u32"`.
    U32,
    /// `"i32"`.
    I32,
    /// `"f32"`.
    F32,
    /// `"u64"`.
    U64,
    /// `"i64"`.
    I64,
    /// `"f64"`.
    F64,
    /// `"string"` (needs `registers`).
    String,
    /// `"bit"` (needs `bit`).
    Bit,
}

/// Byte order spelling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ByteOrderFile {
    /// `"big"`.
    Big,
    /// `"little"`.
    Little,
}

/// Word order spelling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WordOrderFile {
    /// `"high_first"`.
    HighFirst,
    /// `"low_first"`.
    LowFirst,
}

fn default_byte_order() -> ByteOrderFile {
    ByteOrderFile::Big
}

fn default_word_order() -> WordOrderFile {
    WordOrderFile::HighFirst
}

fn one() -> f64 {
    1.0
}

impl ProfileFile {
    /// Converts the file into a [`Profile`], or lists the shape problems of its tags.
    pub fn into_profile(self) -> Result<Profile, Vec<Issue>> {
        let mut issues = Vec::new();
        let mut tags = Vec::with_capacity(self.tags.len());
        for tag in self.tags {
            match tag.into_tag() {
                Ok(tag) => tags.push(tag),
                Err(mut tag_issues) => issues.append(&mut tag_issues),
            }
        }
        if !issues.is_empty() {
            return Err(issues);
        }
        Ok(Profile {
            model: self.model,
            vendor: self.vendor,
            description: self.description,
            transport: self.transport.into_defaults(),
            tags,
        })
    }
}

impl TransportFile {
    fn into_defaults(self) -> TransportDefaults {
        TransportDefaults {
            unit_id: self.unit_id,
            timeout: self.timeout,
            max_registers_per_request: self.max_registers_per_request,
            max_bits_per_request: self.max_bits_per_request,
            max_gap: self.max_gap,
            baud_rate: self.baud_rate,
            data_bits: self.data_bits,
            parity: match self.parity {
                ParityFile::None => Parity::None,
                ParityFile::Even => Parity::Even,
                ParityFile::Odd => Parity::Odd,
            },
            stop_bits: self.stop_bits,
        }
    }
}

impl TagFile {
    fn into_tag(self) -> Result<Tag, Vec<Issue>> {
        let data_type = self.resolve_data_type()?;
        Ok(Tag {
            name: self.name,
            metric: self.metric,
            kind: self.kind.map(|k| match k {
                KindFile::Gauge => MetricKind::Gauge,
                KindFile::Counter => MetricKind::Counter,
                KindFile::State => MetricKind::State,
            }),
            register: match self.register {
                RegisterTypeFile::Coil => RegisterType::Coil,
                RegisterTypeFile::DiscreteInput => RegisterType::DiscreteInput,
                RegisterTypeFile::InputRegister => RegisterType::InputRegister,
                RegisterTypeFile::HoldingRegister => RegisterType::HoldingRegister,
            },
            address: self.address,
            data_type,
            byte_order: match self.byte_order {
                ByteOrderFile::Big => ByteOrder::Big,
                ByteOrderFile::Little => ByteOrder::Little,
            },
            word_order: match self.word_order {
                WordOrderFile::HighFirst => WordOrder::HighFirst,
                WordOrderFile::LowFirst => WordOrder::LowFirst,
            },
            scale: self.scale,
            offset: self.offset,
            unit: self.unit,
            valid_range: self.valid_range.map(|[min, max]| (min, max)),
            deadband: self.deadband,
            poll_group: self.poll_group,
            writable: self.writable,
            description: self.description,
        })
    }

    /// Combines `type`, `bit` and `registers` into a [`DataType`].
    fn resolve_data_type(&self) -> Result<DataType, Vec<Issue>> {
        let mut problems = Vec::new();
        if self.bit.is_some() && self.data_type != DataTypeFile::Bit {
            problems.push(Problem::UnexpectedBit);
        }
        if self.registers.is_some() && self.data_type != DataTypeFile::String {
            problems.push(Problem::UnexpectedRegisters);
        }
        let data_type = match self.data_type {
            DataTypeFile::Bool => Some(DataType::Bool),
            DataTypeFile::U16 => Some(DataType::U16),
            DataTypeFile::I16 => Some(DataType::I16),
            DataTypeFile::U32 => Some(DataType::U32),
            DataTypeFile::I32 => Some(DataType::I32),
            DataTypeFile::F32 => Some(DataType::F32),
            DataTypeFile::U64 => Some(DataType::U64),
            DataTypeFile::I64 => Some(DataType::I64),
            DataTypeFile::F64 => Some(DataType::F64),
            DataTypeFile::Bit => self.bit.map(|bit| DataType::Bit { bit }),
            DataTypeFile::String => self
                .registers
                .filter(|n| *n > 0)
                .map(|registers| DataType::String { registers }),
        };
        if data_type.is_none() {
            problems.push(match self.data_type {
                DataTypeFile::Bit => Problem::MissingBit,
                _ => Problem::StringWithoutRegisters,
            });
        }
        match data_type {
            Some(data_type) if problems.is_empty() => Ok(data_type),
            _ => Err(problems
                .into_iter()
                .map(|p| Issue::tag(&self.name, p))
                .collect()),
        }
    }
}
