//! Golden codec cases: known register words decode to known raw values (and encode back to
//! the same words) for every data type and byte/word order combination, plus the error
//! cases and the engineering conversions.

use firmware_profiles::{ByteOrder, CodecError, DataType, RawValue, RegisterType, Tag, WordOrder};

use ByteOrder::{Big, Little};
use WordOrder::{HighFirst, LowFirst};

fn tag(data_type: DataType, byte_order: ByteOrder, word_order: WordOrder) -> Tag {
    let register = if data_type == DataType::Bool {
        RegisterType::Coil
    } else {
        RegisterType::HoldingRegister
    };
    Tag {
        name: "golden".into(),
        metric: None,
        kind: None,
        register,
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

fn scaled(data_type: DataType, scale: f64, offset: f64) -> Tag {
    Tag {
        scale,
        offset,
        ..tag(data_type, Big, HighFirst)
    }
}

/// (data type, byte order, word order, registers, raw value) decoded and encoded both ways.
fn golden_cases() -> Vec<(DataType, ByteOrder, WordOrder, Vec<u16>, RawValue)> {
    let f32_123 = RawValue::Float(f64::from(123.456_f32));
    let u32_val = RawValue::Int(0x1234_5678);
    vec![
        // f32 123.456 = 0x42F6E979 in the four classic layouts.
        (
            DataType::F32,
            Big,
            HighFirst,
            vec![0x42F6, 0xE979],
            f32_123.clone(),
        ), // ABCD
        (
            DataType::F32,
            Big,
            LowFirst,
            vec![0xE979, 0x42F6],
            f32_123.clone(),
        ), // CDAB
        (
            DataType::F32,
            Little,
            HighFirst,
            vec![0xF642, 0x79E9],
            f32_123.clone(),
        ), // BADC
        (
            DataType::F32,
            Little,
            LowFirst,
            vec![0x79E9, 0xF642],
            f32_123,
        ), // DCBA
        (
            DataType::F32,
            Big,
            HighFirst,
            vec![0xBF80, 0x0000],
            RawValue::Float(-1.0),
        ),
        // u32 0x12345678 in the four layouts.
        (
            DataType::U32,
            Big,
            HighFirst,
            vec![0x1234, 0x5678],
            u32_val.clone(),
        ),
        (
            DataType::U32,
            Big,
            LowFirst,
            vec![0x5678, 0x1234],
            u32_val.clone(),
        ),
        (
            DataType::U32,
            Little,
            HighFirst,
            vec![0x3412, 0x7856],
            u32_val.clone(),
        ),
        (
            DataType::U32,
            Little,
            LowFirst,
            vec![0x7856, 0x3412],
            u32_val,
        ),
        (
            DataType::U32,
            Big,
            LowFirst,
            vec![0xFFFF, 0xFFFF],
            RawValue::Int(4_294_967_295),
        ),
        (
            DataType::I32,
            Big,
            HighFirst,
            vec![0xFFFF, 0xFFFE],
            RawValue::Int(-2),
        ),
        (
            DataType::I32,
            Big,
            LowFirst,
            vec![0x0000, 0x8000],
            RawValue::Int(i64::from(i32::MIN)),
        ),
        // 16-bit.
        (
            DataType::U16,
            Big,
            HighFirst,
            vec![0x04D2],
            RawValue::Int(1234),
        ),
        (
            DataType::U16,
            Little,
            HighFirst,
            vec![0xD204],
            RawValue::Int(1234),
        ),
        (
            DataType::I16,
            Big,
            HighFirst,
            vec![0xFF38],
            RawValue::Int(-200),
        ),
        (
            DataType::I16,
            Little,
            HighFirst,
            vec![0x38FF],
            RawValue::Int(-200),
        ),
        (
            DataType::I16,
            Big,
            HighFirst,
            vec![0x7FFF],
            RawValue::Int(32767),
        ),
        // 64-bit.
        (
            DataType::U64,
            Big,
            HighFirst,
            vec![0x0102, 0x0304, 0x0506, 0x0708],
            RawValue::Int(0x0102_0304_0506_0708),
        ),
        (
            DataType::U64,
            Big,
            LowFirst,
            vec![0x0708, 0x0506, 0x0304, 0x0102],
            RawValue::Int(0x0102_0304_0506_0708),
        ),
        (
            DataType::U64,
            Little,
            HighFirst,
            vec![0x0201, 0x0403, 0x0605, 0x0807],
            RawValue::Int(0x0102_0304_0506_0708),
        ),
        (
            DataType::I64,
            Big,
            HighFirst,
            vec![0xFFFF; 4],
            RawValue::Int(-1),
        ),
        (
            DataType::I64,
            Big,
            LowFirst,
            vec![0xFFFE, 0xFFFF, 0xFFFF, 0xFFFF],
            RawValue::Int(-2),
        ),
        (
            DataType::F64,
            Big,
            HighFirst,
            vec![0x3FF0, 0, 0, 0],
            RawValue::Float(1.0),
        ),
        (
            DataType::F64,
            Big,
            LowFirst,
            vec![0, 0, 0, 0xC004],
            RawValue::Float(-2.5),
        ),
        (
            DataType::F64,
            Big,
            HighFirst,
            vec![0x4058, 0xFD2F, 0x1A9F, 0xBE77],
            RawValue::Float(99.956),
        ),
        // Strings: two ASCII characters per register, first in the high byte.
        (
            DataType::String { registers: 2 },
            Big,
            HighFirst,
            vec![0x4142, 0x3132],
            RawValue::Text("AB12".into()),
        ),
        (
            DataType::String { registers: 2 },
            Little,
            HighFirst,
            vec![0x4241, 0x3231],
            RawValue::Text("AB12".into()),
        ),
        (
            DataType::String { registers: 3 },
            Big,
            HighFirst,
            vec![0x332E, 0x3100, 0x0000],
            RawValue::Text("3.1".into()),
        ),
        (
            DataType::String { registers: 1 },
            Big,
            HighFirst,
            vec![0x0000],
            RawValue::Text(String::new()),
        ),
        // Bits.
        (
            DataType::Bit { bit: 0 },
            Big,
            HighFirst,
            vec![0x0001],
            RawValue::Bool(true),
        ),
        (
            DataType::Bit { bit: 15 },
            Big,
            HighFirst,
            vec![0x8000],
            RawValue::Bool(true),
        ),
        (
            DataType::Bit { bit: 3 },
            Big,
            HighFirst,
            vec![0x0000],
            RawValue::Bool(false),
        ),
        (
            DataType::Bit { bit: 3 },
            Little,
            HighFirst,
            vec![0x0800],
            RawValue::Bool(true),
        ),
        (
            DataType::Bool,
            Big,
            HighFirst,
            vec![1],
            RawValue::Bool(true),
        ),
        (
            DataType::Bool,
            Big,
            HighFirst,
            vec![0],
            RawValue::Bool(false),
        ),
    ]
}

#[test]
fn golden_registers_decode_and_encode() {
    for (data_type, byte_order, word_order, regs, raw) in golden_cases() {
        let t = tag(data_type, byte_order, word_order);
        let context = format!("{data_type} {byte_order:?} {word_order:?} {regs:04X?}");
        assert_eq!(t.decode(&regs).as_ref(), Ok(&raw), "decode {context}");
        assert_eq!(t.encode(&raw), Ok(regs), "encode {context}");
    }
}

#[test]
fn decode_tolerates_device_quirks_in_text_and_bits() {
    let text = tag(DataType::String { registers: 4 }, Big, HighFirst);
    // Trailing space padding is trimmed; decoding stops at the first NUL.
    assert_eq!(
        text.decode(&[0x5348, 0x2D31, 0x2020, 0x2020]),
        Ok(RawValue::Text("SH-1".into()))
    );
    assert_eq!(
        text.decode(&[0x4100, 0x4242, 0x4242, 0x4242]),
        Ok(RawValue::Text("A".into()))
    );
    // Uninitialised (0xFF) and control bytes become '?'.
    assert_eq!(
        text.decode(&[0x41FF, 0x0742, 0x2020, 0x2020]),
        Ok(RawValue::Text("A??B".into()))
    );
    // Any non-zero word is a true coil; other bits of a status word do not matter.
    assert_eq!(
        tag(DataType::Bool, Big, HighFirst).decode(&[0xFF00]),
        Ok(RawValue::Bool(true))
    );
    let bit = tag(DataType::Bit { bit: 2 }, Big, HighFirst);
    assert_eq!(bit.decode(&[0xFFFB]), Ok(RawValue::Bool(false)));
    assert_eq!(bit.decode_bit(true), RawValue::Bool(true));
}

#[test]
fn merge_bit_touches_only_its_own_bit() {
    let bit = tag(DataType::Bit { bit: 4 }, Big, HighFirst);
    assert_eq!(bit.merge_bit(0x0003, true), Ok(0x0013));
    assert_eq!(bit.merge_bit(0xFFFF, false), Ok(0xFFEF));
    let swapped = tag(DataType::Bit { bit: 4 }, Little, HighFirst);
    assert_eq!(swapped.merge_bit(0x0000, true), Ok(0x1000));
    let word = tag(DataType::U16, Big, HighFirst);
    assert!(matches!(
        word.merge_bit(0, true),
        Err(CodecError::NotABit { .. })
    ));
}

#[test]
fn decode_errors() {
    let f32_tag = tag(DataType::F32, Big, HighFirst);
    assert!(matches!(
        f32_tag.decode(&[0x7FC0, 0x0000]),
        Err(CodecError::NotFinite { .. })
    ));
    assert!(matches!(
        f32_tag.decode(&[0xFF80, 0x0000]),
        Err(CodecError::NotFinite { .. })
    ));
    let f64_tag = tag(DataType::F64, Big, HighFirst);
    assert!(matches!(
        f64_tag.decode(&[0x7FF0, 0, 0, 0]),
        Err(CodecError::NotFinite { .. })
    ));
    let u64_tag = tag(DataType::U64, Big, HighFirst);
    assert_eq!(
        u64_tag.decode(&[0x8000, 0, 0, 0]),
        Err(CodecError::U64Overflow {
            tag: "golden".into(),
            value: 1 << 63
        })
    );
    let err = f32_tag.decode(&[1, 2, 3]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "tag \"golden\" spans 2 registers but 3 were given"
    );
}

#[test]
fn encode_errors() {
    let u16_tag = tag(DataType::U16, Big, HighFirst);
    assert!(matches!(
        u16_tag.encode(&RawValue::Int(-1)),
        Err(CodecError::OutOfRange { .. })
    ));
    assert!(matches!(
        u16_tag.encode(&RawValue::Int(65536)),
        Err(CodecError::OutOfRange { .. })
    ));
    assert!(matches!(
        u16_tag.encode(&RawValue::Float(1.5)),
        Err(CodecError::WrongKind { .. })
    ));
    assert_eq!(u16_tag.encode(&RawValue::Float(7.0)), Ok(vec![7]));
    assert!(matches!(
        u16_tag.encode(&RawValue::Text("1".into())),
        Err(CodecError::WrongKind { .. })
    ));
    let i16_tag = tag(DataType::I16, Big, HighFirst);
    assert!(matches!(
        i16_tag.encode(&RawValue::Int(32768)),
        Err(CodecError::OutOfRange { .. })
    ));
    let f32_tag = tag(DataType::F32, Big, HighFirst);
    assert!(matches!(
        f32_tag.encode(&RawValue::Float(1e39)),
        Err(CodecError::OutOfRange { .. })
    ));
    assert_eq!(f32_tag.encode(&RawValue::Int(1)), Ok(vec![0x3F80, 0]));
    // NaN is encoded bit-exactly so a simulator can emulate a failed sensor.
    assert_eq!(
        f32_tag.encode(&RawValue::Float(f64::NAN)),
        Ok(vec![0x7FC0, 0])
    );
    let text = tag(DataType::String { registers: 2 }, Big, HighFirst);
    assert!(matches!(
        text.encode(&RawValue::Text("ABCDE".into())),
        Err(CodecError::TextTooLong {
            len: 5,
            capacity: 4,
            ..
        })
    ));
    assert!(matches!(
        text.encode(&RawValue::Text("Ä".into())),
        Err(CodecError::NotAscii { .. })
    ));
    let bit = tag(DataType::Bit { bit: 0 }, Big, HighFirst);
    assert_eq!(bit.encode(&RawValue::Int(1)), Ok(vec![1]));
    assert!(matches!(
        bit.encode(&RawValue::Int(2)),
        Err(CodecError::WrongKind { .. })
    ));
}

#[test]
fn engineering_conversion() {
    let psi_x10 = scaled(DataType::U16, 0.1, 0.0);
    assert_eq!(psi_x10.to_engineering(&RawValue::Int(1234)), Some(123.4));
    assert_eq!(psi_x10.from_engineering(123.44), Ok(RawValue::Int(1234)));
    assert_eq!(psi_x10.from_engineering(123.46), Ok(RawValue::Int(1235)));
    assert!(matches!(
        psi_x10.from_engineering(-0.1),
        Err(CodecError::OutOfRange { .. })
    ));
    assert!(matches!(
        psi_x10.from_engineering(6553.6),
        Err(CodecError::OutOfRange { .. })
    ));
    assert!(matches!(
        psi_x10.from_engineering(f64::NAN),
        Err(CodecError::NotFinite { .. })
    ));

    let offset = scaled(DataType::I16, 0.5, -40.0);
    assert_eq!(offset.to_engineering(&RawValue::Int(100)), Some(10.0));
    assert_eq!(offset.from_engineering(10.0), Ok(RawValue::Int(100)));

    let float = scaled(DataType::F32, 1.0, 0.0);
    assert_eq!(
        float.from_engineering(0.1),
        Ok(RawValue::Float(f64::from(0.1_f32)))
    );
    assert!(matches!(
        float.from_engineering(1e40),
        Err(CodecError::OutOfRange { .. })
    ));

    let flag = tag(DataType::Bit { bit: 1 }, Big, HighFirst);
    assert_eq!(flag.to_engineering(&RawValue::Bool(true)), Some(1.0));
    assert_eq!(flag.from_engineering(0.0), Ok(RawValue::Bool(false)));
    assert!(matches!(
        flag.from_engineering(0.5),
        Err(CodecError::OutOfRange { .. })
    ));

    let text = tag(DataType::String { registers: 2 }, Big, HighFirst);
    assert_eq!(text.to_engineering(&RawValue::Text("x".into())), None);
    assert!(matches!(
        text.from_engineering(1.0),
        Err(CodecError::WrongKind { .. })
    ));

    let big = scaled(DataType::I64, 1.0, 0.0);
    assert!(matches!(
        big.from_engineering(9.3e18),
        Err(CodecError::OutOfRange { .. })
    ));
    assert_eq!(
        big.from_engineering(-9.0e18),
        Ok(RawValue::Int(-9_000_000_000_000_000_000))
    );
}

#[test]
fn valid_range_check() {
    let mut t = scaled(DataType::U16, 0.1, 0.0);
    assert!(t.in_valid_range(1e9));
    assert!(!t.in_valid_range(f64::INFINITY));
    t.valid_range = Some((0.0, 3000.0));
    assert!(t.in_valid_range(0.0));
    assert!(t.in_valid_range(3000.0));
    assert!(!t.in_valid_range(3000.1));
    assert!(!t.in_valid_range(-0.1));
    assert!(!t.in_valid_range(f64::NAN));
}
