//! Config validation: every rule produces a clear error naming the culprit, and the
//! shipped example files parse and validate.

use std::path::Path;

use agent::config::{Config, ConfigError, ParitySetting, Transport};

const BASE: &str = r#"
[gateway]
tenant = "acme"
id = "gw-1"
data_dir = "state"

[mqtt]
url = "mqtt://127.0.0.1:1883"
username = "acme/gw-1"
password = "hunter2-secret"

[[bus]]
name = "rs485"
port = "/dev/ttyUSB0"

[[device]]
name = "h2s-1"
profile = "gas-detector"
tcp = "127.0.0.1:5020"
poll = { fast = "1s", slow = "60s" }

[[device]]
name = "h2s-2"
profile = "gas-detector"
rtu = "rs485"
unit_id = 7
poll = { fast = "1s", slow = "60s" }
"#;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::from_bytes(
        Path::new("test.toml"),
        Path::new("/etc/wp"),
        text.as_bytes(),
    )
}

fn error_of(text: &str) -> String {
    match parse(text) {
        Ok(_) => panic!("config unexpectedly valid:\n{text}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn base_config_resolves_with_defaults() {
    let c = parse(BASE).expect("valid");
    assert_eq!(c.gateway.data_dir, Path::new("/etc/wp/state"));
    assert_eq!(c.mqtt.host, "127.0.0.1");
    assert_eq!(c.mqtt.port, 1883);
    assert_eq!(c.mqtt.client_id, "wp-acme-gw-1");
    assert_eq!(c.buffer.flush_interval.as_secs(), 10);
    assert_eq!(c.buffer.flush_min_samples, 200);
    assert_eq!(c.devices.len(), 2);
    assert_eq!(c.devices[1].alias, 1);
    assert_eq!(c.devices[1].unit_id, 7);
    assert_eq!(c.devices[1].transport, Transport::Rtu { bus: 0 });
    // Serial parameters come from the gas-detector profile defaults.
    let bus = &c.buses[0];
    assert_eq!(bus.baud, 9600);
    assert_eq!(bus.parity, ParitySetting::None);
    assert!(
        bus.inter_request_delay.as_micros() > 4000,
        "includes the 3.5-char gap"
    );
    assert_eq!(c.hash.len(), 64);
    assert!(c.devices[0].plan.request_count() >= 2);
}

#[test]
fn password_is_never_in_debug_output() {
    let c = parse(BASE).expect("valid");
    let debug = format!("{c:?}");
    assert!(!debug.contains("hunter2-secret"));
    assert!(debug.contains("***"));
}

#[test]
fn config_hash_follows_file_bytes() {
    let a = parse(BASE).unwrap().hash;
    let b = parse(&format!("{BASE}\n# comment")).unwrap().hash;
    assert_ne!(a, b);
    assert_eq!(a, parse(BASE).unwrap().hash);
}

/// (description, replacement applied to BASE, expected error fragment)
const CASES: &[(&str, &str, &str, &str)] = &[
    (
        "unknown profile",
        "profile = \"gas-detector\"\ntcp",
        "profile = \"gas-detectr\"\ntcp",
        "device \"h2s-1\": unknown profile \"gas-detectr\"",
    ),
    (
        "unknown bus",
        "rtu = \"rs485\"",
        "rtu = \"rs232\"",
        "device \"h2s-2\": unknown bus \"rs232\"",
    ),
    (
        "duplicate device",
        "name = \"h2s-2\"",
        "name = \"h2s-1\"",
        "duplicate device name",
    ),
    (
        "bad tenant",
        "tenant = \"acme\"",
        "tenant = \"Acme Corp\"",
        "gateway.tenant",
    ),
    (
        "bad gateway id",
        "id = \"gw-1\"",
        "id = \"gw/1\"",
        "gateway.id",
    ),
    (
        "unknown field",
        "data_dir = \"state\"",
        "data_dir = \"state\"\ndatadir = \"x\"",
        "unknown field `datadir`",
    ),
    (
        "mqtts without tls",
        "mqtt://127.0.0.1:1883",
        "mqtts://127.0.0.1",
        "[mqtt.tls] is missing",
    ),
    (
        "bad url",
        "mqtt://127.0.0.1:1883",
        "http://127.0.0.1",
        "must start with mqtt:// or mqtts://",
    ),
    (
        "missing poll group",
        "tcp = \"127.0.0.1:5020\"\npoll = { fast = \"1s\", slow = \"60s\" }",
        "tcp = \"127.0.0.1:5020\"\npoll = { fast = \"1s\" }",
        "no poll interval for group \"slow\"",
    ),
    (
        "unused poll group",
        "tcp = \"127.0.0.1:5020\"\npoll = { fast = \"1s\", slow = \"60s\" }",
        "tcp = \"127.0.0.1:5020\"\npoll = { fast = \"1s\", slow = \"60s\", turbo = \"1s\" }",
        "poll group \"turbo\" is not used",
    ),
    (
        "duration without unit",
        "poll = { fast = \"1s\", slow = \"60s\" }\n\n[[device]]",
        "poll = { fast = \"1\", slow = \"60s\" }\n\n[[device]]",
        "expected a duration",
    ),
    (
        "no transport",
        "tcp = \"127.0.0.1:5020\"\n",
        "",
        "tcp = \"host:port\" or rtu = \"bus\" is required",
    ),
    (
        "both transports",
        "tcp = \"127.0.0.1:5020\"\n",
        "tcp = \"127.0.0.1:5020\"\nrtu = \"rs485\"\n",
        "either tcp or rtu",
    ),
    (
        "bad endpoint",
        "127.0.0.1:5020",
        "127.0.0.1",
        "not host:port",
    ),
    (
        "both profile kinds",
        "profile = \"gas-detector\"\ntcp",
        "profile = \"gas-detector\"\nprofile_file = \"x.toml\"\ntcp",
        "either profile or profile_file",
    ),
    (
        "missing profile file",
        "profile = \"gas-detector\"\ntcp",
        "profile_file = \"missing.toml\"\ntcp",
        "missing.toml",
    ),
    (
        "username the brokers refuse",
        "username = \"acme/gw-1\"\n",
        "username = \"gw-1\"\n",
        "mqtt.username \"gw-1\" must be \"acme/gw-1\"",
    ),
    (
        "no password",
        "password = \"hunter2-secret\"\n",
        "",
        "mqtt.password is required",
    ),
    (
        "stale_after too short",
        "tcp = \"127.0.0.1:5020\"\n",
        "tcp = \"127.0.0.1:5020\"\nstale_after = \"30s\"\n",
        "stale_after",
    ),
    (
        "bad device name",
        "name = \"h2s-1\"",
        "name = \"h2s 1\"",
        "device name \"h2s 1\"",
    ),
];

#[test]
fn invalid_configs_are_rejected_with_clear_errors() {
    for (what, from, to, expected) in CASES {
        assert!(
            BASE.contains(from),
            "{what}: fixture does not contain {from:?}"
        );
        let text = BASE.replacen(from, to, 1);
        let err = error_of(&text);
        assert!(
            err.contains(expected),
            "{what}: error does not mention {expected:?}:\n{err}"
        );
        assert!(
            err.contains("test.toml"),
            "{what}: error does not name the file:\n{err}"
        );
    }
}

#[test]
fn several_problems_are_reported_together() {
    let text = BASE
        .replacen("rtu = \"rs485\"", "rtu = \"nope\"", 1)
        .replacen("tenant = \"acme\"", "tenant = \"ACME\"", 1);
    let err = error_of(&text);
    assert!(
        err.contains("unknown bus") && err.contains("gateway.tenant"),
        "{err}"
    );
}

#[test]
fn same_unit_id_twice_on_one_bus_is_rejected() {
    let text = BASE.replacen(
        "tcp = \"127.0.0.1:5020\"",
        "rtu = \"rs485\"\nunit_id = 7",
        1,
    );
    assert!(error_of(&text).contains("share unit id 7"));
}

#[test]
fn shipped_examples_parse_and_validate() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let config = Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
            assert!(!config.devices.is_empty());
            checked += 1;
        }
    }
    assert!(checked >= 2, "expected agent.toml and agent-rtu.toml");
}
