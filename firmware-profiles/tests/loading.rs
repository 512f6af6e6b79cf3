//! Parsing defaults, directory loading and error reporting of the profile loader.

use std::time::Duration;

use firmware_profiles::{
    ByteOrder, DataType, Parity, Problem, ProfileError, RegisterType, WordOrder, load_dir,
    load_profile, parse_profile,
};

const MINIMAL: &str = r#"
model = "Minimal"
vendor = "test"

[[tags]]
name = "tp"
metric = "tubing_pressure_psi"
register = "holding_register"
address = 0
type = "u16"
unit = "psi"
poll_group = "fast"
"#;

#[test]
fn omitted_keys_take_documented_defaults() {
    let profile = parse_profile("minimal.toml", MINIMAL).expect("valid");
    let t = &profile.transport;
    assert_eq!(t.unit_id, 1);
    assert_eq!(t.timeout, Duration::from_secs(1));
    assert_eq!(t.max_registers_per_request, 125);
    assert_eq!(t.max_bits_per_request, 2000);
    assert_eq!(t.max_gap, 0);
    assert_eq!(
        (t.baud_rate, t.data_bits, t.parity, t.stop_bits),
        (9600, 8, Parity::None, 1)
    );
    assert_eq!(profile.description, "");
    let tag = &profile.tags[0];
    assert_eq!(tag.register, RegisterType::HoldingRegister);
    assert_eq!(tag.data_type, DataType::U16);
    assert_eq!(
        (tag.byte_order, tag.word_order),
        (ByteOrder::Big, WordOrder::HighFirst)
    );
    assert_eq!((tag.scale, tag.offset, tag.deadband), (1.0, 0.0, 0.0));
    assert_eq!(tag.valid_range, None);
    assert!(!tag.writable);
}

#[test]
fn transport_and_tag_keys_are_read() {
    let text = r#"
model = "Full"
vendor = "test"
[transport]
unit_id = 17
timeout = "750ms"
max_registers_per_request = 32
max_bits_per_request = 64
max_gap = 3
baud_rate = 19200
data_bits = 7
parity = "even"
stop_bits = 2

[[tags]]
name = "flow"
metric = "gas_rate_mcfd"
register = "input_register"
address = 7000
type = "f32"
byte_order = "little"
word_order = "low_first"
scale = 0.001
offset = -1.5
unit = "Mcf/d"
valid_range = [0, 5000]
deadband = 2.5
poll_group = "slow"
description = "d"

[[tags]]
name = "flag"
metric = "valve_open"
register = "holding_register"
address = 3
type = "bit"
bit = 15
unit = "bool"
poll_group = "fast"
writable = true

[[tags]]
name = "serial"
register = "holding_register"
address = 10
type = "string"
registers = 6
poll_group = "slow"
"#;
    let profile = parse_profile("full.toml", text).expect("valid");
    let t = &profile.transport;
    assert_eq!(t.unit_id, 17);
    assert_eq!(t.timeout, Duration::from_millis(750));
    assert_eq!(
        (
            t.max_registers_per_request,
            t.max_bits_per_request,
            t.max_gap
        ),
        (32, 64, 3)
    );
    assert_eq!(
        (t.baud_rate, t.data_bits, t.parity, t.stop_bits),
        (19200, 7, Parity::Even, 2)
    );
    let flow = profile.tag("flow").expect("flow");
    assert_eq!(flow.data_type, DataType::F32);
    assert_eq!(
        (flow.byte_order, flow.word_order),
        (ByteOrder::Little, WordOrder::LowFirst)
    );
    assert_eq!((flow.scale, flow.offset), (0.001, -1.5));
    assert_eq!(flow.valid_range, Some((0.0, 5000.0)));
    assert_eq!(flow.address_range(), (7000, 7001));
    assert_eq!(
        profile.tag("flag").unwrap().data_type,
        DataType::Bit { bit: 15 }
    );
    assert_eq!(
        profile.tag("serial").unwrap().data_type,
        DataType::String { registers: 6 }
    );
    assert_eq!(
        profile.tag_for_metric("valve_open").map(|(alias, _)| alias),
        Some(1)
    );
    assert_eq!(profile.poll_groups(), vec!["slow", "fast"]);
}

#[test]
fn invalid_profile_lists_typed_issues() {
    let text = MINIMAL.replace("poll_group = \"fast\"", "poll_group = \"\"\nscale = 0");
    let err = parse_profile("x.toml", &text).unwrap_err();
    let problems: Vec<&Problem> = err.issues().iter().map(|i| &i.problem).collect();
    assert_eq!(problems, vec![&Problem::BadScale, &Problem::EmptyPollGroup]);
    assert!(err.issues().iter().all(|i| i.tag.as_deref() == Some("tp")));
}

#[test]
fn load_dir_reads_toml_files_sorted_and_ignores_others() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("b-device.toml"), MINIMAL).unwrap();
    std::fs::write(dir.path().join("a-device.toml"), MINIMAL).unwrap();
    std::fs::write(dir.path().join("README.md"), "not a profile").unwrap();
    std::fs::create_dir(dir.path().join("nested.toml")).unwrap();
    let loaded = load_dir(dir.path()).expect("loads");
    let ids: Vec<&str> = loaded.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, vec!["a-device", "b-device"]);
}

#[test]
fn load_dir_fails_on_any_bad_file_naming_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("good.toml"), MINIMAL).unwrap();
    std::fs::write(
        dir.path().join("broken.toml"),
        MINIMAL.replace("unit = \"psi\"", "unit = \"bar\""),
    )
    .unwrap();
    let err = load_dir(dir.path()).unwrap_err().to_string();
    assert!(
        err.starts_with("firmware profile broken.toml: tag \"tp\": unit \"bar\""),
        "{err}"
    );
}

#[test]
fn missing_file_and_directory_are_io_errors() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("absent.toml");
    let err = load_profile(&missing).unwrap_err();
    assert!(matches!(err, ProfileError::Io { .. }), "{err}");
    assert!(
        err.to_string().contains("absent.toml: cannot read"),
        "{err}"
    );
    assert!(matches!(
        load_dir(&dir.path().join("nope")),
        Err(ProfileError::Io { .. })
    ));
}

#[test]
fn readme_example_profile_parses() {
    let readme = include_str!("../README.md");
    let section = readme
        .split("## Commented example")
        .nth(1)
        .expect("README has the example section");
    let toml = section
        .split("```toml\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("example is a toml code block");
    let profile = parse_profile("README example", toml).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(profile.tags.len(), 6);
    assert_eq!(profile.transport.parity, Parity::Even);
}

#[test]
fn crate_docs_example_profile_parses() {
    let lib = include_str!("../src/lib.rs");
    let block: String = lib
        .split("//! ```toml\n")
        .nth(1)
        .and_then(|rest| rest.split("//! ```").next())
        .expect("lib.rs documents the format in a toml block")
        .lines()
        .map(|line| line.strip_prefix("//!").unwrap_or(line).trim_start())
        .map(|line| format!("{line}\n"))
        .collect();
    let profile = parse_profile("lib.rs example", &block).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(profile.tags[0].name, "tubing_pressure");
}

proptest::proptest! {
    /// Hostile numbers in every numeric key never panic the loader: the result is either
    /// a profile whose tags fit the address space or an error naming the source.
    #[test]
    fn hostile_numbers_never_panic(
        address in proptest::prelude::any::<u16>(),
        registers in proptest::prelude::any::<u16>(),
        bit in proptest::prelude::any::<u8>(),
        scale in proptest::prelude::any::<f64>(),
        deadband in proptest::prelude::any::<f64>(),
        max_registers in proptest::prelude::any::<u16>(),
        kind in 0usize..3,
    ) {
        let data_type = ["string", "bit", "u64"][kind];
        let extra = match data_type {
            "string" => format!("registers = {registers}"),
            "bit" => format!("bit = {bit}\nmetric = \"valve_open\"\nunit = \"bool\""),
            _ => format!("scale = {scale:?}\nmetric = \"stroke_count_total\"\nunit = \"count\""),
        };
        let text = format!(
            "model = \"m\"\nvendor = \"v\"\n[transport]\nmax_registers_per_request = {max_registers}\n\
             [[tags]]\nname = \"t\"\nregister = \"holding_register\"\naddress = {address}\n\
             type = \"{data_type}\"\ndeadband = {deadband:?}\npoll_group = \"fast\"\n{extra}\n"
        )
        .replace("NaN", "nan");
        match parse_profile("hostile.toml", &text) {
            Ok(profile) => {
                let tag = &profile.tags[0];
                let end = u32::from(tag.address) + u32::from(tag.register_count());
                proptest::prop_assert!(end <= 65536);
            }
            Err(e) => proptest::prop_assert!(e.to_string().starts_with("firmware profile hostile.toml: ")),
        }
    }
}
