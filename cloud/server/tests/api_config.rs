//! The `[api]` section of `cloud.toml`: the shipped example parses, defaults apply when
//! the section is absent, bad values are refused naming the field.

use std::path::Path;
use std::time::Duration;

use api::ApiOptions;
use server::config::CloudConfig;

const MINIMAL: &str = r#"
    [database]
    url = "postgres://postgres@127.0.0.1/wp"
    [broker]
    client_id = "wp-ingester-1"
    username = "wp-ingester-1"
    password = "s3cret"
    [broker.embedded]
    config = "rumqttd.toml"
    listener = "internal"
"#;

#[test]
fn the_example_config_has_a_documented_api_section() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/cloud.toml");
    let cfg = CloudConfig::load(&path).unwrap();
    assert_eq!(cfg.api.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(cfg.api.options(), ApiOptions::default());
    let text = std::fs::read_to_string(&path).unwrap();
    let section = text.split("[api]").nth(1).expect("an [api] section");
    for field in ["listen", "request_timeout", "max_page_size"] {
        let line = section
            .lines()
            .position(|l| l.starts_with(field))
            .unwrap_or_else(|| panic!("{field} missing"));
        let above = section.lines().nth(line - 1).unwrap();
        assert!(above.starts_with('#'), "{field} has no comment above it");
    }
}

#[test]
fn the_api_section_is_optional_and_configurable() {
    let cfg = CloudConfig::parse(MINIMAL, Path::new(".")).unwrap();
    assert_eq!(cfg.api.options(), ApiOptions::default());
    assert_eq!(cfg.api.listen.to_string(), "127.0.0.1:8080");
    let text = format!(
        "{MINIMAL}\n[api]\nlisten = \"0.0.0.0:0\"\nrequest_timeout = \"2500ms\"\nmax_page_size = 50"
    );
    let cfg = CloudConfig::parse(&text, Path::new(".")).unwrap();
    assert_eq!(cfg.api.listen.port(), 0);
    assert_eq!(
        cfg.api.options(),
        ApiOptions {
            request_timeout: Duration::from_millis(2500),
            max_page_size: 50,
        }
    );
}

#[test]
fn bad_api_values_are_refused_with_the_field_named() {
    let cases = [
        ("listen = \"localhost\"", "listen"),
        (
            "request_timeout = \"1ms\"",
            "request_timeout must be from 100ms to 10m",
        ),
        ("request_timeout = \"soon\"", "request_timeout"),
        (
            "max_page_size = 0",
            "max_page_size must be from 1 to 100000",
        ),
        (
            "max_page_size = 200000",
            "max_page_size must be from 1 to 100000",
        ),
        ("page_size = 10", "unknown field `page_size`"),
    ];
    for (line, expected) in cases {
        let text = format!("{MINIMAL}\n[api]\n{line}");
        let err = CloudConfig::parse(&text, Path::new("."))
            .unwrap_err()
            .to_string();
        assert!(err.contains(expected), "{line}: {err}");
    }
}
