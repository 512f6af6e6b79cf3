//! Register codec: raw Modbus register words <-> [`RawValue`] <-> engineering value.
//!
//! # Layout rules
//!
//! * A register is a 16-bit word as delivered by the Modbus stack (the protocol itself sends
//!   it high byte first). [`ByteOrder::Little`] means the device stores the two bytes of each
//!   register swapped, so every word is byte-swapped before interpretation.
//! * Multi-register values (32/64-bit integers and floats) are assembled from their words:
//!   [`WordOrder::HighFirst`] puts the most significant word at the lowest address
//!   ("ABCD"), [`WordOrder::LowFirst`] the least significant word ("CDAB"). Byte order and
//!   word order combine, giving the four usual layouts ABCD, CDAB, BADC and DCBA.
//! * [`DataType::Bit`] reads bit `n` (0 = least significant) of the register value after
//!   the byte order is applied.
//! * [`DataType::String`] holds two ASCII characters per register, first character in the
//!   high byte (in the low byte when the byte order is little). Word order does not apply:
//!   characters follow register addresses. Decoding stops at the first NUL, trims trailing
//!   spaces and replaces bytes outside printable ASCII with `?`, so a device with an
//!   uninitialised (0xFF-filled) serial number still yields readable text.
//! * [`DataType::Bool`] (coils, discrete inputs) is carried as one word 0 / non-zero when it
//!   goes through [`Tag::decode`] / [`Tag::encode`]; bit reads normally use
//!   [`Tag::decode_bit`].
//!
//! # Raw vs engineering values
//!
//! The wire carries raw values (the register integer, or the float) and the cloud applies
//! `engineering = raw × scale + offset` using the catalog in the birth message. Integers
//! decode to [`RawValue::Int`], floats to [`RawValue::Float`] (an `f32` widened exactly to
//! `f64`). Non-finite floats (NaN, ±inf, which devices use for "no reading") are decode
//! errors, so the agent reports them as bad samples rather than as numbers.
//!
//! [`Tag::from_engineering`] inverts the scaling, rounds to the nearest integer for integer
//! types and checks that the result is representable in the tag's data type. It does not
//! check the valid range: the simulator must be able to produce implausible values, and
//! the setpoint writer checks [`Tag::in_valid_range`] itself.

use crate::model::{ByteOrder, DataType, RawValue, Tag, WordOrder};

/// Why a value could not be decoded or encoded.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CodecError {
    /// The slice handed to [`Tag::decode`] has the wrong length.
    #[error("tag \"{tag}\" spans {expected} registers but {got} were given")]
    RegisterCount {
        /// Tag name.
        tag: String,
        /// Registers the tag occupies.
        expected: usize,
        /// Registers supplied.
        got: usize,
    },
    /// The value's kind does not fit the data type (e.g. text for an `f32` tag).
    #[error("tag \"{tag}\": cannot encode {value} as {data_type}")]
    WrongKind {
        /// Tag name.
        tag: String,
        /// Short description of the value.
        value: String,
        /// The tag's data type.
        data_type: DataType,
    },
    /// The value does not fit the data type (e.g. -1 for `u16`, 1e39 for `f32`).
    #[error("tag \"{tag}\": value {value} is outside the range of {data_type}")]
    OutOfRange {
        /// Tag name.
        tag: String,
        /// The offending value (raw units).
        value: f64,
        /// The tag's data type.
        data_type: DataType,
    },
    /// A float register held NaN or infinity, or an engineering value was not finite.
    #[error("tag \"{tag}\": value is not a finite number")]
    NotFinite {
        /// Tag name.
        tag: String,
    },
    /// Text longer than the string tag's capacity.
    #[error("tag \"{tag}\": text of {len} characters exceeds the capacity of {capacity}")]
    TextTooLong {
        /// Tag name.
        tag: String,
        /// Characters given.
        len: usize,
        /// Characters the registers hold.
        capacity: usize,
    },
    /// Text containing characters outside printable ASCII.
    #[error("tag \"{tag}\": text must be printable ASCII")]
    NotAscii {
        /// Tag name.
        tag: String,
    },
    /// A `u64` register value above `i64::MAX`, which a raw integer cannot carry.
    #[error("tag \"{tag}\": u64 value {value} exceeds the raw integer range (i64)")]
    U64Overflow {
        /// Tag name.
        tag: String,
        /// The register value.
        value: u64,
    },
    /// An operation only meaningful for bit-in-register tags was used on another type.
    #[error("tag \"{tag}\" is not a bit-in-register tag")]
    NotABit {
        /// Tag name.
        tag: String,
    },
}

impl Tag {
    /// Number of registers (or bit addresses for coils / discrete inputs) the tag spans:
    /// 1 for Bool/Bit/U16/I16, 2 for 32-bit types, 4 for 64-bit types, n for strings.
    pub fn register_count(&self) -> u16 {
        self.data_type.register_count()
    }

    /// Decodes the tag's registers (`regs.len() == register_count()`) into a raw value.
    pub fn decode(&self, regs: &[u16]) -> Result<RawValue, CodecError> {
        let expected = usize::from(self.register_count());
        if regs.len() != expected {
            return Err(CodecError::RegisterCount {
                tag: self.name.clone(),
                expected,
                got: regs.len(),
            });
        }
        let value = match self.data_type {
            DataType::Bool => RawValue::Bool(regs[0] != 0),
            DataType::Bit { bit } => RawValue::Bool((self.word(regs[0]) >> bit) & 1 == 1),
            DataType::U16 => RawValue::Int(i64::from(self.word(regs[0]))),
            DataType::I16 => RawValue::Int(i64::from(self.word(regs[0]).cast_signed())),
            DataType::U32 => RawValue::Int(i64::from(self.combine_u32(regs))),
            DataType::I32 => RawValue::Int(i64::from(self.combine_u32(regs).cast_signed())),
            DataType::U64 => {
                let v = self.combine(regs);
                let int = i64::try_from(v).map_err(|_| CodecError::U64Overflow {
                    tag: self.name.clone(),
                    value: v,
                })?;
                RawValue::Int(int)
            }
            DataType::I64 => RawValue::Int(self.combine(regs).cast_signed()),
            DataType::F32 => self.finite(f64::from(f32::from_bits(self.combine_u32(regs))))?,
            DataType::F64 => self.finite(f64::from_bits(self.combine(regs)))?,
            DataType::String { .. } => RawValue::Text(self.decode_text(regs)),
        };
        Ok(value)
    }

    /// The raw value of a coil, discrete input (or an already extracted bit).
    pub fn decode_bit(&self, bit: bool) -> RawValue {
        RawValue::Bool(bit)
    }

    /// Encodes a raw value into the tag's registers: the inverse of [`Tag::decode`].
    ///
    /// Integer types accept [`RawValue::Int`] and integral [`RawValue::Float`]s; float
    /// types accept both numeric kinds (NaN and infinities are encoded bit-exactly, so a
    /// simulator can emulate a failed sensor); boolean types accept [`RawValue::Bool`] and
    /// `Int(0 | 1)`. A [`DataType::Bit`] tag encodes to a register with only its own bit
    /// set or cleared; use [`Tag::merge_bit`] to combine several flags in one register.
    pub fn encode(&self, raw: &RawValue) -> Result<Vec<u16>, CodecError> {
        match self.data_type {
            DataType::Bool => Ok(vec![u16::from(self.bool_value(raw)?)]),
            DataType::Bit { .. } => Ok(vec![self.merge_bit(0, self.bool_value(raw)?)?]),
            DataType::U16 => Ok(vec![self.word(self.int_in(raw, 0, 0xFFFF)? as u16)]),
            DataType::I16 => {
                let v = self.int_in(raw, i16::MIN.into(), i16::MAX.into())?;
                Ok(vec![self.word((v as i16).cast_unsigned())])
            }
            DataType::U32 => {
                let v = self.int_in(raw, 0, u32::MAX.into())?;
                Ok(self.split(v as u64, 2))
            }
            DataType::I32 => {
                let v = self.int_in(raw, i32::MIN.into(), i32::MAX.into())?;
                Ok(self.split(u64::from((v as i32).cast_unsigned()), 2))
            }
            DataType::U64 => Ok(self.split(self.int_in(raw, 0, i64::MAX)?.cast_unsigned(), 4)),
            DataType::I64 => {
                Ok(self.split(self.int_in(raw, i64::MIN, i64::MAX)?.cast_unsigned(), 4))
            }
            DataType::F32 => {
                let v = self.float_value(raw)?;
                if v.is_finite() && v.abs() > f64::from(f32::MAX) {
                    return Err(self.out_of_range(v));
                }
                Ok(self.split(u64::from((v as f32).to_bits()), 2))
            }
            DataType::F64 => Ok(self.split(self.float_value(raw)?.to_bits(), 4)),
            DataType::String { registers } => self.encode_text(raw, registers),
        }
    }

    /// Sets or clears this bit-in-register tag's bit in `register` (raw word as on the
    /// wire), leaving the other bits untouched. Errors for tags that are not
    /// [`DataType::Bit`].
    pub fn merge_bit(&self, register: u16, on: bool) -> Result<u16, CodecError> {
        let DataType::Bit { bit } = self.data_type else {
            return Err(CodecError::NotABit {
                tag: self.name.clone(),
            });
        };
        let mask = 1u16 << bit;
        let value = self.word(register);
        let value = if on { value | mask } else { value & !mask };
        Ok(self.word(value))
    }

    /// Engineering value `raw × scale + offset`; booleans give 0 or 1, text gives `None`.
    pub fn to_engineering(&self, raw: &RawValue) -> Option<f64> {
        match raw {
            RawValue::Int(v) => Some(*v as f64 * self.scale + self.offset),
            RawValue::Float(v) => Some(v * self.scale + self.offset),
            RawValue::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
            RawValue::Text(_) => None,
        }
    }

    /// Raw value for an engineering value: `(eng - offset) / scale`, rounded to the nearest
    /// integer for integer types, and checked to be representable in the data type.
    /// Boolean tags take exactly 0 or 1; string tags are not numeric and always fail.
    pub fn from_engineering(&self, eng: f64) -> Result<RawValue, CodecError> {
        if !eng.is_finite() {
            return Err(self.not_finite());
        }
        if self.data_type.is_boolean() {
            return if eng == 0.0 {
                Ok(RawValue::Bool(false))
            } else if eng == 1.0 {
                Ok(RawValue::Bool(true))
            } else {
                Err(self.out_of_range(eng))
            };
        }
        let raw = (eng - self.offset) / self.scale;
        if !raw.is_finite() {
            return Err(self.not_finite());
        }
        match self.data_type {
            DataType::F32 if raw.abs() > f64::from(f32::MAX) => Err(self.out_of_range(raw)),
            DataType::F32 => Ok(RawValue::Float(f64::from(raw as f32))),
            DataType::F64 => Ok(RawValue::Float(raw)),
            DataType::String { .. } => Err(CodecError::WrongKind {
                tag: self.name.clone(),
                value: format!("number {eng}"),
                data_type: self.data_type,
            }),
            _ => {
                let rounded = raw.round();
                let (min, max) = self.int_bounds();
                // i64 bounds are not exact in f64: compare against 2^63 exclusively.
                if rounded < min as f64 || rounded >= max as f64 + 1.0 {
                    return Err(self.out_of_range(raw));
                }
                Ok(RawValue::Int(rounded as i64))
            }
        }
    }

    /// True when `eng` is finite and inside the tag's valid range (any finite value when
    /// the tag has none).
    pub fn in_valid_range(&self, eng: f64) -> bool {
        match self.valid_range {
            _ if !eng.is_finite() => false,
            Some((min, max)) => (min..=max).contains(&eng),
            None => true,
        }
    }

    /// Inclusive raw bounds of an integer data type (u64 is capped at `i64::MAX`).
    fn int_bounds(&self) -> (i64, i64) {
        match self.data_type {
            DataType::U16 => (0, u16::MAX.into()),
            DataType::I16 => (i16::MIN.into(), i16::MAX.into()),
            DataType::U32 => (0, u32::MAX.into()),
            DataType::I32 => (i32::MIN.into(), i32::MAX.into()),
            DataType::U64 => (0, i64::MAX),
            _ => (i64::MIN, i64::MAX),
        }
    }

    /// Applies the byte order to one register. Swapping is its own inverse, so the same
    /// function turns a value back into a register when encoding.
    fn word(&self, reg: u16) -> u16 {
        match self.byte_order {
            ByteOrder::Big => reg,
            ByteOrder::Little => reg.swap_bytes(),
        }
    }

    /// Assembles up to four registers into an integer, honouring byte and word order.
    fn combine(&self, regs: &[u16]) -> u64 {
        let fold = |acc: u64, reg: &u16| (acc << 16) | u64::from(self.word(*reg));
        match self.word_order {
            WordOrder::HighFirst => regs.iter().fold(0, fold),
            WordOrder::LowFirst => regs.iter().rev().fold(0, fold),
        }
    }

    /// [`Tag::combine`] for the two-register types.
    fn combine_u32(&self, regs: &[u16]) -> u32 {
        // Two registers hold exactly 32 bits.
        self.combine(regs) as u32
    }

    /// Splits the low `count` words of `value` into registers: inverse of [`Tag::combine`].
    fn split(&self, value: u64, count: usize) -> Vec<u16> {
        let mut words: Vec<u16> = (0..count)
            .rev()
            .map(|i| self.word((value >> (16 * i)) as u16))
            .collect();
        if self.word_order == WordOrder::LowFirst {
            words.reverse();
        }
        words
    }

    fn decode_text(&self, regs: &[u16]) -> String {
        let bytes = regs.iter().flat_map(|r| self.word(*r).to_be_bytes());
        let text: String = bytes
            .take_while(|b| *b != 0)
            .map(|b| {
                if (0x20..=0x7E).contains(&b) {
                    b as char
                } else {
                    '?'
                }
            })
            .collect();
        text.trim_end_matches(' ').to_owned()
    }

    fn encode_text(&self, raw: &RawValue, registers: u16) -> Result<Vec<u16>, CodecError> {
        let RawValue::Text(text) = raw else {
            return Err(self.wrong_kind(raw));
        };
        if !text.bytes().all(|b| (0x20..=0x7E).contains(&b)) {
            return Err(CodecError::NotAscii {
                tag: self.name.clone(),
            });
        }
        let capacity = 2 * usize::from(registers);
        if text.len() > capacity {
            return Err(CodecError::TextTooLong {
                tag: self.name.clone(),
                len: text.len(),
                capacity,
            });
        }
        let mut bytes = text.as_bytes().to_vec();
        bytes.resize(capacity, 0);
        Ok(bytes
            .chunks_exact(2)
            .map(|pair| self.word(u16::from_be_bytes([pair[0], pair[1]])))
            .collect())
    }

    fn bool_value(&self, raw: &RawValue) -> Result<bool, CodecError> {
        match raw {
            RawValue::Bool(b) => Ok(*b),
            RawValue::Int(0) => Ok(false),
            RawValue::Int(1) => Ok(true),
            other => Err(self.wrong_kind(other)),
        }
    }

    /// Integer content of `raw` checked against `min..=max`.
    fn int_in(&self, raw: &RawValue, min: i64, max: i64) -> Result<i64, CodecError> {
        let value = match raw {
            RawValue::Int(v) => *v,
            RawValue::Float(f)
                if f.fract() == 0.0 && *f >= -(2f64.powi(63)) && *f < 2f64.powi(63) =>
            {
                *f as i64
            }
            other => return Err(self.wrong_kind(other)),
        };
        if (min..=max).contains(&value) {
            Ok(value)
        } else {
            Err(self.out_of_range(value as f64))
        }
    }

    fn float_value(&self, raw: &RawValue) -> Result<f64, CodecError> {
        match raw {
            RawValue::Float(f) => Ok(*f),
            RawValue::Int(v) => Ok(*v as f64),
            other => Err(self.wrong_kind(other)),
        }
    }

    fn finite(&self, value: f64) -> Result<RawValue, CodecError> {
        if value.is_finite() {
            Ok(RawValue::Float(value))
        } else {
            Err(self.not_finite())
        }
    }

    fn wrong_kind(&self, raw: &RawValue) -> CodecError {
        let value = match raw {
            RawValue::Int(v) => format!("integer {v}"),
            RawValue::Float(v) => format!("number {v}"),
            RawValue::Bool(b) => format!("boolean {b}"),
            RawValue::Text(t) => format!("text {t:?}"),
        };
        CodecError::WrongKind {
            tag: self.name.clone(),
            value,
            data_type: self.data_type,
        }
    }

    fn out_of_range(&self, value: f64) -> CodecError {
        CodecError::OutOfRange {
            tag: self.name.clone(),
            value,
            data_type: self.data_type,
        }
    }

    fn not_finite(&self) -> CodecError {
        CodecError::NotFinite {
            tag: self.name.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::RegisterType;

    fn tag(data_type: DataType, byte_order: ByteOrder, word_order: WordOrder) -> Tag {
        Tag {
            name: "t".into(),
            metric: None,
            kind: None,
            register: RegisterType::HoldingRegister,
            address: 0,
            data_type,
            byte_order,
            word_order,
            scale: 1.0,
            offset: 0.0,
            unit: String::new(),
            valid_range: None,
            deadband: 0.0,
            poll_group: "fast".into(),
            writable: false,
            description: String::new(),
        }
    }

    #[test]
    fn f32_word_orders() {
        let high = tag(DataType::F32, ByteOrder::Big, WordOrder::HighFirst);
        let low = tag(DataType::F32, ByteOrder::Big, WordOrder::LowFirst);
        let expected = RawValue::Float(f64::from(123.456_f32));
        assert_eq!(high.decode(&[0x42F6, 0xE979]), Ok(expected.clone()));
        assert_eq!(low.decode(&[0xE979, 0x42F6]), Ok(expected.clone()));
        assert_eq!(high.encode(&expected), Ok(vec![0x42F6, 0xE979]));
        assert_eq!(low.encode(&expected), Ok(vec![0xE979, 0x42F6]));
    }

    #[test]
    fn wrong_register_count_is_an_error() {
        let t = tag(DataType::U32, ByteOrder::Big, WordOrder::HighFirst);
        assert!(matches!(
            t.decode(&[1]),
            Err(CodecError::RegisterCount {
                expected: 2,
                got: 1,
                ..
            })
        ));
    }
}
