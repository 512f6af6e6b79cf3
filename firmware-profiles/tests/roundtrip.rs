//! Property tests over every tag of every shipped profile: raw values round-trip through
//! encode -> decode across the whole data type domain, engineering values across the valid
//! range round-trip through from_engineering -> encode -> decode -> to_engineering, and bit
//! flags sharing a register survive being merged into one word.

use std::sync::LazyLock;

use firmware_profiles::{DataType, Profile, RawValue, Tag, builtin, builtin_profile};
use proptest::prelude::*;

/// Every tag of every shipped profile, labelled `profile/tag`.
static TAGS: LazyLock<Vec<(String, Tag)>> = LazyLock::new(|| {
    shipped()
        .into_iter()
        .flat_map(|(id, profile)| {
            profile
                .tags
                .into_iter()
                .map(move |tag| (format!("{id}/{}", tag.name), tag))
        })
        .collect()
});

fn shipped() -> Vec<(&'static str, Profile)> {
    builtin()
        .iter()
        .map(|(id, _)| (*id, builtin_profile(id).expect("shipped profile is valid")))
        .collect()
}

/// A raw value of the tag's data type built from random material; covers the full domain.
fn raw_value(tag: &Tag, bits: u64, text: &str) -> RawValue {
    match tag.data_type {
        DataType::Bool | DataType::Bit { .. } => RawValue::Bool(bits & 1 == 1),
        DataType::U16 => RawValue::Int(i64::from(bits as u16)),
        DataType::I16 => RawValue::Int(i64::from(bits as u16 as i16)),
        DataType::U32 => RawValue::Int(i64::from(bits as u32)),
        DataType::I32 => RawValue::Int(i64::from(bits as u32 as i32)),
        DataType::U64 => RawValue::Int((bits >> 1) as i64),
        DataType::I64 => RawValue::Int(bits as i64),
        DataType::F32 => {
            let f = f32::from_bits(bits as u32);
            RawValue::Float(if f.is_finite() { f64::from(f) } else { 1.5 })
        }
        DataType::F64 => {
            let f = f64::from_bits(bits);
            RawValue::Float(if f.is_finite() { f } else { -2.5 })
        }
        DataType::String { registers } => {
            let capacity = 2 * usize::from(registers);
            let cut: String = text.chars().take(capacity).collect();
            RawValue::Text(cut.trim_end_matches(' ').to_owned())
        }
    }
}

/// Largest acceptable |decoded engineering - requested engineering|.
fn tolerance(tag: &Tag, eng: f64) -> f64 {
    let magnitude = eng.abs() + tag.offset.abs();
    match tag.data_type {
        DataType::F32 => magnitude * 1e-6 + 1e-9,
        DataType::F64 => magnitude * 1e-12 + 1e-12,
        _ => tag.scale.abs() / 2.0 + magnitude * 1e-12,
    }
}

fn check_raw_roundtrip(label: &str, tag: &Tag, raw: &RawValue) -> Result<(), TestCaseError> {
    let regs = tag
        .encode(raw)
        .map_err(|e| TestCaseError::fail(format!("{label}: encode {raw:?}: {e}")))?;
    prop_assert_eq!(regs.len(), usize::from(tag.register_count()), "{}", label);
    let decoded = tag
        .decode(&regs)
        .map_err(|e| TestCaseError::fail(format!("{label}: decode {regs:?}: {e}")))?;
    prop_assert_eq!(&decoded, raw, "{}", label);
    Ok(())
}

fn check_engineering_roundtrip(label: &str, tag: &Tag, eng: f64) -> Result<(), TestCaseError> {
    prop_assert!(tag.in_valid_range(eng), "{}: {} not in range", label, eng);
    let raw = tag
        .from_engineering(eng)
        .map_err(|e| TestCaseError::fail(format!("{label}: from_engineering {eng}: {e}")))?;
    check_raw_roundtrip(label, tag, &raw)?;
    let back = tag.to_engineering(&raw).expect("numeric tag");
    prop_assert!(
        (back - eng).abs() <= tolerance(tag, eng),
        "{}: {} -> {:?} -> {}",
        label,
        eng,
        raw,
        back
    );
    Ok(())
}

/// Engineering value at fraction `u` of the tag's valid range (or 0/1 for flags).
fn engineering_value(tag: &Tag, u: f64) -> Option<f64> {
    if tag.data_type.is_boolean() {
        return Some(if u < 0.5 { 0.0 } else { 1.0 });
    }
    let (min, max) = tag.valid_range?;
    Some((min + u * (max - min)).clamp(min, max))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn every_shipped_tag_roundtrips_raw_values(
        material in prop::collection::vec((any::<u64>(), "[ -~]{0,24}"), TAGS.len())
    ) {
        for ((label, tag), (bits, text)) in TAGS.iter().zip(&material) {
            check_raw_roundtrip(label, tag, &raw_value(tag, *bits, text))?;
        }
    }

    #[test]
    fn every_shipped_tag_roundtrips_engineering_values_across_its_range(
        fractions in prop::collection::vec(0.0..=1.0f64, TAGS.len())
    ) {
        for ((label, tag), u) in TAGS.iter().zip(&fractions) {
            if let Some(eng) = engineering_value(tag, *u) {
                check_engineering_roundtrip(label, tag, eng)?;
            }
        }
    }

    #[test]
    fn flags_sharing_a_register_survive_merging(seed in any::<u64>(), base in any::<u16>()) {
        for (id, profile) in shipped() {
            let bit_tags: Vec<&Tag> = profile
                .tags
                .iter()
                .filter(|t| matches!(t.data_type, DataType::Bit { .. }))
                .collect();
            let mut word_for = std::collections::HashMap::new();
            for (i, tag) in bit_tags.iter().enumerate() {
                let on = (seed >> (i % 64)) & 1 == 1;
                let word = word_for.entry((tag.register, tag.address)).or_insert(base);
                *word = tag.merge_bit(*word, on).expect("bit tag");
            }
            for (i, tag) in bit_tags.iter().enumerate() {
                let on = (seed >> (i % 64)) & 1 == 1;
                let word = word_for[&(tag.register, tag.address)];
                prop_assert_eq!(tag.decode(&[word]), Ok(RawValue::Bool(on)), "{}/{}", id, &tag.name);
            }
        }
    }
}

#[test]
fn range_endpoints_and_midpoints_roundtrip() {
    for (label, tag) in TAGS.iter() {
        for u in [0.0, 0.25, 0.5, 1.0] {
            if let Some(eng) = engineering_value(tag, u) {
                check_engineering_roundtrip(label, tag, eng).unwrap();
            }
        }
    }
}
