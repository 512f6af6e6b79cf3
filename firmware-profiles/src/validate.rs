//! Semantic validation of a converted [`Profile`].
//!
//! Runs after the file has parsed and its tags have a well-formed data type (see
//! [`crate::file`]). Every rule is checked for every tag and all violations are returned,
//! so a profile author sees the complete list at once. The rules, and why:
//!
//! * Transport limits stay within what Modbus allows (125 registers, 2000 bits per read),
//!   otherwise the read planner would build requests no device accepts.
//! * Every numeric tag names a canonical metric in its vocabulary unit, or a custom metric
//!   (`custom.<name>`, never a canonical name) with a unit and a kind of its own; each
//!   metric at most once per profile, so the cloud can map `(device, metric)` to one
//!   series unambiguously. Any other namespace is refused.
//!   String tags are device info (serial number, firmware) and carry no metric.
//! * Data types fit their table: coils and discrete inputs hold one bit (`bool`), while
//!   `bit` addresses one bit of a 16-bit register.
//! * Register ranges do not overlap within a table (several `bit` tags may share one
//!   register as long as their bits differ) and do not run past address 65535, so the
//!   simulator can serve every tag independently and writes cannot clobber a neighbour.
//! * Scaling is usable (finite, non-zero scale; finite offset; none on boolean or text
//!   tags), ranges are ordered, deadbands non-negative, poll groups named, and only
//!   writable tables are marked writable.
//! * A writable numeric tag has a valid range: the agent refuses setpoint writes outside
//!   it, so an unbounded setpoint would let any value through to the device.

use std::collections::{BTreeMap, HashMap};

use crate::error::{Issue, Problem};
use crate::model::{DataType, Profile, RegisterType, Tag, TransportDefaults};
use crate::vocabulary::{self, MetricName, MetricNameError};

/// Every rule violation of `profile` (empty when valid): profile and transport problems,
/// then per-tag problems in tag order, then register overlaps in address order.
pub(crate) fn validate(profile: &Profile) -> Vec<Issue> {
    let mut issues = Vec::new();
    if profile.model.trim().is_empty() {
        issues.push(Issue::profile(Problem::EmptyModel));
    }
    if profile.tags.is_empty() {
        issues.push(Issue::profile(Problem::NoTags));
    }
    if profile.tags.len() > usize::from(u16::MAX) + 1 {
        issues.push(Issue::profile(Problem::TooManyTags {
            count: profile.tags.len(),
        }));
    }
    issues.extend(transport_problems(&profile.transport).map(Issue::profile));
    let mut names: HashMap<&str, usize> = HashMap::new();
    let mut metrics: HashMap<&str, &str> = HashMap::new();
    for (index, tag) in profile.tags.iter().enumerate() {
        let mut problems = tag_problems(tag);
        if let Some(&first_index) = names.get(tag.name.as_str()) {
            problems.push(Problem::DuplicateTagName { first_index });
        } else {
            names.insert(&tag.name, index);
        }
        if let Some(metric) = tag.metric.as_deref() {
            match metrics.get(metric) {
                Some(other) => problems.push(Problem::DuplicateMetric {
                    metric: metric.to_owned(),
                    other_tag: (*other).to_owned(),
                }),
                None => {
                    metrics.insert(metric, &tag.name);
                }
            }
        }
        issues.extend(problems.into_iter().map(|p| Issue::tag(&tag.name, p)));
    }
    issues.extend(overlaps(&profile.tags));
    issues
}

fn transport_problems(t: &TransportDefaults) -> impl Iterator<Item = Problem> {
    [
        (!(1..=125).contains(&t.max_registers_per_request))
            .then_some(Problem::MaxRegisters(t.max_registers_per_request)),
        (!(1..=2000).contains(&t.max_bits_per_request))
            .then_some(Problem::MaxBits(t.max_bits_per_request)),
        t.timeout.is_zero().then_some(Problem::ZeroTimeout),
        (t.baud_rate == 0).then_some(Problem::ZeroBaudRate),
        (!(7..=8).contains(&t.data_bits)).then_some(Problem::DataBits(t.data_bits)),
        (!(1..=2).contains(&t.stop_bits)).then_some(Problem::StopBits(t.stop_bits)),
    ]
    .into_iter()
    .flatten()
}

/// The rules that concern one tag on its own.
fn tag_problems(tag: &Tag) -> Vec<Problem> {
    let mut problems = Vec::new();
    let snake = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_';
    if tag.name.is_empty() || !tag.name.bytes().all(snake) {
        problems.push(Problem::BadTagName);
    }
    problems.extend(metric_problems(tag));
    problems.extend(layout_problems(tag));
    problems.extend(scaling_problems(tag));
    if tag.poll_group.trim().is_empty() {
        problems.push(Problem::EmptyPollGroup);
    }
    if tag.writable && !tag.register.is_writable() {
        problems.push(Problem::WritableReadOnly(tag.register));
    }
    if tag.writable && matches!(tag.data_type, DataType::String { .. }) {
        problems.push(Problem::WritableString);
    }
    let numeric = tag.data_type.is_integer() || tag.data_type.is_float();
    if tag.writable && numeric && tag.valid_range.is_none() {
        problems.push(Problem::WritableWithoutRange);
    }
    problems
}

/// Metric presence, namespace, vocabulary membership, unit and kind.
fn metric_problems(tag: &Tag) -> Option<Problem> {
    let is_text = matches!(tag.data_type, DataType::String { .. });
    let name = match (&tag.metric, is_text) {
        (Some(_), true) => return Some(Problem::MetricOnString),
        (None, true) => return tag.kind.map(|_| Problem::UnexpectedKind),
        (None, false) => return Some(Problem::MissingMetric),
        (Some(name), false) => name,
    };
    match vocabulary::parse_metric_name(name) {
        Err(MetricNameError::UnknownCanonical { name, suggestion }) => {
            Some(Problem::UnknownMetric { name, suggestion })
        }
        Err(MetricNameError::UnknownNamespace { name, namespace }) => {
            Some(Problem::UnknownNamespace { name, namespace })
        }
        Err(MetricNameError::BadCustomName { name, reason }) => {
            Some(Problem::BadCustomName { name, reason })
        }
        Ok(MetricName::Canonical(_)) if tag.kind.is_some() => Some(Problem::UnexpectedKind),
        Ok(MetricName::Canonical(def)) if def.unit != tag.unit => Some(Problem::UnitMismatch {
            metric: name.clone(),
            unit: tag.unit.clone(),
            expected: def.unit,
        }),
        Ok(MetricName::Canonical(_)) => None,
        Ok(MetricName::Custom(_)) => match (vocabulary::check_unit(&tag.unit), tag.kind) {
            (Err(reason), _) => Some(Problem::BadCustomUnit {
                metric: name.clone(),
                reason,
            }),
            (Ok(()), None) => Some(Problem::CustomWithoutKind {
                metric: name.clone(),
            }),
            (Ok(()), Some(_)) => None,
        },
    }
}

/// Data type against register table, bit index and address space.
fn layout_problems(tag: &Tag) -> Vec<Problem> {
    let mut problems = Vec::new();
    let bit_table = tag.register.is_bit_table();
    let hint = match tag.data_type {
        DataType::Bool if !bit_table => Some(
            "bool is for coils and discrete inputs; use type \"bit\" for a flag inside a register",
        ),
        DataType::Bool => None,
        _ if bit_table => Some("coils and discrete inputs hold single bits: use type \"bool\""),
        _ => None,
    };
    if let Some(hint) = hint {
        problems.push(Problem::DataTypeNotAllowed {
            data_type: tag.data_type,
            register: tag.register,
            hint,
        });
    }
    if let DataType::Bit { bit } = tag.data_type
        && bit > 15
    {
        problems.push(Problem::BitIndex(bit));
    }
    let count = tag.register_count();
    if u32::from(tag.address) + u32::from(count) > u32::from(u16::MAX) + 1 {
        problems.push(Problem::AddressOverflow {
            address: tag.address,
            count,
        });
    }
    problems
}

/// Scale, offset, valid range and deadband.
fn scaling_problems(tag: &Tag) -> Vec<Problem> {
    let mut problems = Vec::new();
    if !tag.scale.is_finite() || tag.scale == 0.0 {
        problems.push(Problem::BadScale);
    }
    if !tag.offset.is_finite() {
        problems.push(Problem::BadOffset);
    }
    let non_numeric = match tag.data_type {
        DataType::Bool | DataType::Bit { .. } => Some("boolean"),
        DataType::String { .. } => Some("string"),
        _ => None,
    };
    if let Some(kind) = non_numeric
        && (tag.scale != 1.0 || tag.offset != 0.0)
    {
        problems.push(Problem::ScaleOnNonNumeric(kind));
    }
    if let Some((min, max)) = tag.valid_range {
        if !(min.is_finite() && max.is_finite() && min < max) {
            problems.push(Problem::BadRange { min, max });
        }
        if matches!(tag.data_type, DataType::String { .. }) {
            problems.push(Problem::RangeOnString);
        }
    }
    if !tag.deadband.is_finite() || tag.deadband < 0.0 {
        problems.push(Problem::BadDeadband(tag.deadband));
    }
    problems
}

/// A span of one table claimed by a tag, or by all `bit` tags of one register together.
struct Claim<'a> {
    register: RegisterType,
    first: u16,
    last: u16,
    tag: &'a str,
}

/// The `bit` tags sharing one register: which tag claimed each bit.
struct BitRegister<'a> {
    first_tag: &'a str,
    bits: HashMap<u8, &'a str>,
}

/// Overlapping register ranges within each table, and `bit` tags reusing a bit.
///
/// Bit tags of one register are merged into one claim first (each bit may be used once),
/// then claims are sorted by table and start address and swept while tracking the claim
/// reaching furthest: O(n log n) even for hostile files with thousands of tags.
fn overlaps(tags: &[Tag]) -> Vec<Issue> {
    let mut issues = Vec::new();
    let mut claims: Vec<Claim<'_>> = Vec::new();
    let mut bit_registers: BTreeMap<(RegisterType, u16), BitRegister<'_>> = BTreeMap::new();
    for tag in tags {
        let (first, last) = tag.address_range();
        let DataType::Bit { bit } = tag.data_type else {
            claims.push(Claim {
                register: tag.register,
                first,
                last,
                tag: &tag.name,
            });
            continue;
        };
        let register = bit_registers
            .entry((tag.register, tag.address))
            .or_insert_with(|| BitRegister {
                first_tag: &tag.name,
                bits: HashMap::new(),
            });
        if let Some(other) = register.bits.insert(bit, &tag.name) {
            let problem = Problem::BitReused {
                register: tag.register,
                address: tag.address,
                bit,
                other_tag: other.to_owned(),
            };
            issues.push(Issue::tag(&tag.name, problem));
        }
    }
    claims.extend(
        bit_registers
            .into_iter()
            .map(|((register, address), bits)| Claim {
                register,
                first: address,
                last: address,
                tag: bits.first_tag,
            }),
    );
    claims.sort_by_key(|c| (c.register, c.first, c.last));
    let mut reach: Option<&Claim<'_>> = None;
    for claim in &claims {
        match reach {
            Some(prev) if prev.register == claim.register && claim.first <= prev.last => {
                issues.push(Issue::tag(
                    claim.tag,
                    Problem::Overlap {
                        register: claim.register,
                        first: claim.first,
                        last: claim.last,
                        other_tag: prev.tag.to_owned(),
                    },
                ));
                if claim.last > prev.last {
                    reach = Some(claim);
                }
            }
            _ => reach = Some(claim),
        }
    }
    issues
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ByteOrder, WordOrder};

    fn tag(name: &str, register: RegisterType, address: u16, data_type: DataType) -> Tag {
        Tag {
            name: name.into(),
            metric: None,
            kind: None,
            register,
            address,
            data_type,
            byte_order: ByteOrder::Big,
            word_order: WordOrder::HighFirst,
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

    fn overlapping(tags: &[Tag]) -> Vec<(String, String)> {
        overlaps(tags)
            .into_iter()
            .map(|issue| match issue.problem {
                Problem::Overlap { other_tag, .. } | Problem::BitReused { other_tag, .. } => {
                    (issue.tag.unwrap(), other_tag)
                }
                other => panic!("unexpected {other}"),
            })
            .collect()
    }

    #[test]
    fn a_wide_tag_overlaps_every_tag_inside_it() {
        use RegisterType::HoldingRegister as H;
        let tags = [
            tag("wide", H, 0, DataType::String { registers: 11 }),
            tag("inner_a", H, 2, DataType::U32),
            tag("inner_b", H, 5, DataType::U16),
            tag("after", H, 11, DataType::U16),
        ];
        assert_eq!(
            overlapping(&tags),
            vec![
                ("inner_a".into(), "wide".into()),
                ("inner_b".into(), "wide".into())
            ]
        );
    }

    #[test]
    fn adjacent_ranges_separate_tables_and_distinct_bits_are_fine() {
        use RegisterType::{Coil, DiscreteInput, HoldingRegister as H, InputRegister as I};
        let tags = [
            tag("a", H, 0, DataType::U32),
            tag("b", H, 2, DataType::U64),
            tag("c", I, 0, DataType::F64),
            tag("d", Coil, 0, DataType::Bool),
            tag("e", DiscreteInput, 0, DataType::Bool),
            tag("f0", H, 6, DataType::Bit { bit: 0 }),
            tag("f15", H, 6, DataType::Bit { bit: 15 }),
            tag("g", H, 7, DataType::U16),
        ];
        assert!(overlapping(&tags).is_empty());
    }

    #[test]
    fn bits_collide_with_each_other_and_with_words() {
        use RegisterType::HoldingRegister as H;
        let tags = [
            tag("word", H, 4, DataType::I32),
            tag("flag_a", H, 5, DataType::Bit { bit: 1 }),
            tag("flag_b", H, 5, DataType::Bit { bit: 1 }),
        ];
        assert_eq!(
            overlapping(&tags),
            vec![
                ("flag_b".into(), "flag_a".into()),
                ("flag_a".into(), "word".into())
            ]
        );
    }

    /// Brute-force oracle: does any pair of tags collide?
    fn any_collision(tags: &[Tag]) -> bool {
        tags.iter().enumerate().any(|(i, a)| {
            tags[i + 1..].iter().any(|b| {
                if a.register != b.register {
                    return false;
                }
                match (a.data_type, b.data_type) {
                    (DataType::Bit { bit: x }, DataType::Bit { bit: y })
                        if a.address == b.address =>
                    {
                        x == y
                    }
                    _ => {
                        let ((a0, a1), (b0, b1)) = (a.address_range(), b.address_range());
                        a0 <= b1 && b0 <= a1
                    }
                }
            })
        })
    }

    fn arbitrary_tag() -> impl proptest::strategy::Strategy<Value = Tag> {
        use proptest::prelude::*;
        let data_type = prop_oneof![
            Just(DataType::U16),
            Just(DataType::U32),
            Just(DataType::F64),
            (1u16..6).prop_map(|registers| DataType::String { registers }),
            (0u8..4).prop_map(|bit| DataType::Bit { bit }),
        ];
        let register = prop_oneof![
            Just(RegisterType::InputRegister),
            Just(RegisterType::HoldingRegister)
        ];
        (register, 0u16..40, data_type)
            .prop_map(|(register, address, data_type)| tag("t", register, address, data_type))
    }

    proptest::proptest! {
        #[test]
        fn overlap_sweep_agrees_with_pairwise_oracle(
            tags in proptest::collection::vec(arbitrary_tag(), 0..12)
        ) {
            proptest::prop_assert_eq!(!overlaps(&tags).is_empty(), any_collision(&tags));
        }
    }
}
