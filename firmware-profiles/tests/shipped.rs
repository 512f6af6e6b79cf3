//! Every shipped profile parses, validates and is reachable through `builtin_profile`.

use std::path::Path;

use firmware_profiles::{builtin, builtin_profile, load_dir};

fn profiles_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/profiles"))
}

#[test]
fn every_builtin_profile_parses() {
    assert!(!builtin().is_empty());
    for (id, _) in builtin() {
        let profile = builtin_profile(id).unwrap_or_else(|| {
            let text = builtin().iter().find(|(i, _)| i == id).unwrap().1;
            panic!(
                "{}",
                firmware_profiles::parse_profile(id, text).unwrap_err()
            )
        });
        assert!(!profile.tags.is_empty(), "{id}");
    }
    assert!(builtin_profile("no-such-profile").is_none());
}

#[test]
fn builtin_matches_the_profiles_directory() {
    let on_disk = load_dir(profiles_dir()).expect("shipped profiles load");
    let ids: Vec<&str> = on_disk.iter().map(|(id, _)| id.as_str()).collect();
    let mut builtin_ids: Vec<&str> = builtin().iter().map(|(id, _)| *id).collect();
    builtin_ids.sort_unstable();
    assert_eq!(ids, builtin_ids);
    for (id, profile) in &on_disk {
        assert_eq!(Some(profile), builtin_profile(id).as_ref(), "{id}");
    }
}

fn shipped() -> Vec<(&'static str, firmware_profiles::Profile)> {
    builtin()
        .iter()
        .map(|(id, _)| (*id, builtin_profile(id).expect("valid shipped profile")))
        .collect()
}

#[test]
fn the_contract_profile_ids_are_shipped() {
    let ids: Vec<&str> = builtin().iter().map(|(id, _)| *id).collect();
    assert_eq!(
        ids,
        vec![
            "rod-pump-controller",
            "gas-flow-computer",
            "esp-drive",
            "plunger-lift-controller",
            "tank-gauge",
            "gas-detector",
            "generic-40-holding"
        ]
    );
}

#[test]
fn tag_counts_are_realistic() {
    for (id, profile) in shipped() {
        let range = match id {
            "rod-pump-controller" | "gas-flow-computer" => 30..=45,
            "generic-40-holding" => 40..=40,
            _ => 8..=25,
        };
        assert!(
            range.contains(&profile.tags.len()),
            "{id}: {} tags",
            profile.tags.len()
        );
    }
}

type TagPredicate = dyn Fn(&firmware_profiles::Tag) -> bool;

#[test]
fn every_codec_path_is_exercised_by_a_shipped_profile() {
    use firmware_profiles::{ByteOrder, DataType, RegisterType, WordOrder};
    let all: Vec<firmware_profiles::Tag> =
        shipped().into_iter().flat_map(|(_, p)| p.tags).collect();
    let has = |pred: &TagPredicate| all.iter().any(pred);
    let cases: [(&str, &TagPredicate); 18] = [
        ("coil", &|t| t.register == RegisterType::Coil),
        ("discrete input", &|t| {
            t.register == RegisterType::DiscreteInput
        }),
        ("scaled u16", &|t| {
            t.data_type == DataType::U16 && t.scale != 1.0
        }),
        ("i16", &|t| t.data_type == DataType::I16),
        ("u32 low first", &|t| {
            t.data_type == DataType::U32 && t.word_order == WordOrder::LowFirst
        }),
        ("u32 high first", &|t| {
            t.data_type == DataType::U32 && t.word_order == WordOrder::HighFirst
        }),
        ("i32", &|t| t.data_type == DataType::I32),
        ("f32 high first", &|t| {
            t.data_type == DataType::F32 && t.word_order == WordOrder::HighFirst
        }),
        ("f32 low first", &|t| {
            t.data_type == DataType::F32 && t.word_order == WordOrder::LowFirst
        }),
        ("u64", &|t| t.data_type == DataType::U64),
        ("i64", &|t| t.data_type == DataType::I64),
        ("f64", &|t| t.data_type == DataType::F64),
        ("byte order little", &|t| t.byte_order == ByteOrder::Little),
        ("bit in input register", &|t| {
            matches!(t.data_type, DataType::Bit { .. }) && t.register == RegisterType::InputRegister
        }),
        ("bit in holding register", &|t| {
            matches!(t.data_type, DataType::Bit { .. })
                && t.register == RegisterType::HoldingRegister
        }),
        ("string info tag", &|t| {
            matches!(t.data_type, DataType::String { .. }) && t.metric.is_none()
        }),
        ("writable holding setpoint", &|t| {
            t.writable && t.register == RegisterType::HoldingRegister && t.valid_range.is_some()
        }),
        ("writable coil", &|t| {
            t.writable && t.register == RegisterType::Coil
        }),
    ];
    for (what, pred) in cases {
        assert!(has(pred), "no shipped tag exercises {what}");
    }
}

#[test]
fn tags_are_documented_grouped_and_bounded() {
    use firmware_profiles::vocabulary::{MetricKind, lookup};
    for (id, profile) in shipped() {
        assert!(!profile.description.is_empty(), "{id}");
        for tag in &profile.tags {
            let label = format!("{id}/{}", tag.name);
            assert!(!tag.description.is_empty(), "{label}: description");
            assert!(
                ["fast", "slow"].contains(&tag.poll_group.as_str()),
                "{label}: poll group"
            );
            let Some(def) = tag.metric.as_deref().and_then(lookup) else {
                continue;
            };
            match def.kind {
                MetricKind::Gauge => assert!(tag.valid_range.is_some(), "{label}: gauge range"),
                MetricKind::Counter => {
                    assert_eq!(tag.poll_group, "slow", "{label}: totals poll slowly");
                    assert!(tag.valid_range.is_none(), "{label}: counters are unbounded");
                }
                MetricKind::State => {}
            }
        }
    }
}

#[test]
fn the_generic_device_is_described_with_custom_metrics_only() {
    use firmware_profiles::vocabulary::MetricKind;
    let generic = builtin_profile("generic-40-holding").unwrap();
    let addresses: Vec<u16> = generic.tags.iter().map(|t| t.address).collect();
    assert_eq!(addresses, (0..40).collect::<Vec<u16>>());
    let mut kinds = Vec::new();
    for tag in &generic.tags {
        assert!(tag.is_custom(), "{}: custom metric", tag.name);
        assert!(!tag.unit.is_empty(), "{}: unit", tag.name);
        kinds.push(tag.metric_kind().expect("declared kind"));
    }
    for kind in MetricKind::ALL {
        assert!(kinds.contains(&kind), "{kind:?} is exercised");
    }
    assert_eq!(
        generic.tag("hr_00").and_then(|t| t.metric.as_deref()),
        Some("custom.analog_00")
    );
}

#[test]
fn flow_computer_follows_the_enron_register_pair_layout() {
    use firmware_profiles::{DataType, WordOrder};
    let fc = builtin_profile("gas-flow-computer").unwrap();
    let floats: Vec<_> = fc
        .tags
        .iter()
        .filter(|t| t.data_type == DataType::F32)
        .collect();
    let longs: Vec<_> = fc
        .tags
        .iter()
        .filter(|t| t.data_type == DataType::U32)
        .collect();
    assert!(floats.len() >= 20 && longs.len() >= 4);
    for t in floats {
        assert!(
            (7001..8000).contains(&t.address) && t.address % 2 == 1,
            "{}",
            t.name
        );
        assert_eq!(t.word_order, WordOrder::HighFirst, "{}", t.name);
    }
    for t in longs {
        assert!(
            (5001..6000).contains(&t.address) && t.address % 2 == 1,
            "{}",
            t.name
        );
        assert_eq!(t.word_order, WordOrder::LowFirst, "{}", t.name);
    }
}

#[test]
fn some_devices_only_allow_small_requests() {
    let limits: Vec<u16> = shipped()
        .iter()
        .map(|(_, p)| p.transport.max_registers_per_request)
        .collect();
    assert!(limits.iter().any(|n| *n <= 32), "{limits:?}");
    assert!(limits.contains(&125), "{limits:?}");
}
