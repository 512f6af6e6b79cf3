//! `[broker.embedded.limits]` of `cloud.toml`: the shipped example spells out the
//! defaults, values with units parse, unknown keys and unusable values are errors.

use std::path::{Path, PathBuf};
use std::time::Duration;

use server::config::CloudConfig;

const BASE: &str = testkit::MINIMAL_CLOUD_TOML;

#[test]
fn the_example_spells_out_the_default_limits() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/cloud.toml");
    let cfg = CloudConfig::load(&path).unwrap();
    let limits = &cfg.broker.embedded.as_ref().unwrap().limits;
    assert_eq!(limits.options(), broker::FrontOptions::default());
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("[broker.embedded.limits]"));
}

#[test]
fn limits_default_when_absent_and_parse_with_units() {
    let cfg = CloudConfig::parse(BASE, Path::new("/etc/wp")).unwrap();
    assert_eq!(
        cfg.broker.embedded.as_ref().unwrap().limits.options(),
        broker::FrontOptions::default()
    );
    let text = format!(
        "{BASE}\n[broker.embedded.limits]\nmessages_per_second = 5\nlogin_backoff_min = \"250ms\"\nlogin_backoff_max = \"2m\"\n"
    );
    let cfg = CloudConfig::parse(&text, Path::new("/etc/wp")).unwrap();
    let o = cfg.broker.embedded.unwrap().limits.options();
    assert_eq!(o.messages_per_second, 5);
    assert_eq!(o.login_backoff_min, Duration::from_millis(250));
    assert_eq!(o.login_backoff_max, Duration::from_secs(120));
    assert_eq!(
        o.message_burst,
        broker::FrontOptions::default().message_burst
    );
}

#[test]
fn unknown_keys_and_unusable_limits_are_errors() {
    for (extra, expect) in [
        ("messages_per_secnd = 5", "unknown field"),
        ("messages_per_second = 0", "must be positive"),
        ("login_backoff_min = \"0s\"", "login_backoff_min"),
        (
            "login_backoff_min = \"10s\"\nlogin_backoff_max = \"1s\"",
            "login_backoff_min",
        ),
        ("login_backoff_min = 5", "invalid type"),
    ] {
        let text = format!("{BASE}\n[broker.embedded.limits]\n{extra}\n");
        let err = CloudConfig::parse(&text, Path::new("/etc/wp"))
            .unwrap_err()
            .to_string();
        assert!(err.contains(expect), "{extra}: {err}");
    }
}
