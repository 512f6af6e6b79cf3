//! The `wellpulse-agent` offline subcommands, run as a real process.

use std::path::Path;
use std::process::{Command, Output};

use agent::config::Config;

fn agent(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wellpulse-agent"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run wellpulse-agent")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn check_config_accepts_the_examples_and_explains_errors() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    for name in ["agent.toml", "agent-rtu.toml"] {
        let out = agent(&["check-config", examples.join(name).to_str().unwrap()]);
        assert!(out.status.success(), "{name}: {}", text(&out));
        assert!(text(&out).contains("valid"));
    }
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    let example = std::fs::read_to_string(examples.join("agent-rtu.toml")).unwrap();
    std::fs::write(
        &bad,
        example.replace("rtu = \"rs485-1\"", "rtu = \"rs485-9\""),
    )
    .unwrap();
    let out = agent(&["check-config", bad.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("unknown bus \"rs485-9\""),
        "{}",
        text(&out)
    );
}

#[test]
fn check_profile_prints_tags_and_plans_or_the_precise_error() {
    let profiles = Path::new(env!("CARGO_MANIFEST_DIR")).join("../firmware-profiles/profiles");
    let file = profiles.join("tank-gauge.toml");
    let out = agent(&["check-profile", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let printed = text(&out);
    let profile = firmware_profiles::load_profile(&file).unwrap();
    for tag in &profile.tags {
        assert!(printed.contains(&tag.name), "table lacks {}", tag.name);
    }
    assert!(printed.contains("read plan"));

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("broken.toml");
    let source = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&bad, source.replacen("scale = ", "scale = 0.0 #", 1)).unwrap();
    let out = agent(&["check-profile", bad.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(text(&out).contains("broken.toml"), "{}", text(&out));
}

#[test]
fn generate_config_writes_a_valid_config_for_simulator_endpoints() {
    let dir = tempfile::tempdir().unwrap();
    let endpoints = dir.path().join("endpoints.json");
    std::fs::write(
        &endpoints,
        r#"[
          {"well": "well-001", "device": "well-001-rpc", "profile": "rod-pump-controller", "addr": "127.0.0.1:15020", "unit_id": 1},
          {"well": "well-001", "device": "well-001-tank", "profile": "tank-gauge", "addr": "127.0.0.1:15020", "unit_id": 2},
          {"well": "well-002", "device": "well 002 / h2s", "profile": "gas-detector", "addr": "127.0.0.1:15021", "unit_id": 1}
        ]"#,
    )
    .unwrap();
    let output = dir.path().join("agent.toml");
    let out = agent(&[
        "generate-config",
        "--simulator-endpoints",
        endpoints.to_str().unwrap(),
        "--gateway",
        "gw-7",
        "--mqtt-client-id",
        "wp-demo-gw-7",
        "--poll",
        "slow=30s",
        "--output",
        output.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let config = Config::load(&output).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.gateway.id, "gw-7");
    assert_eq!(config.devices.len(), 3);
    assert_eq!(config.devices[1].unit_id, 2);
    assert_eq!(config.devices[2].name, "well-002-well-002---h2s");
    assert_eq!(config.mqtt.client_id, "wp-demo-gw-7");
    assert_eq!(config.devices[2].well.as_deref(), Some("well-002"));
    let birth = agent::batcher::build_birth(&config, 1);
    assert_eq!(
        birth.devices[0].info,
        vec![("well".to_owned(), "well-001".to_owned())]
    );
    let slow = config.devices[0]
        .poll
        .iter()
        .find(|g| g.name == "slow")
        .unwrap();
    assert_eq!(slow.interval.as_secs(), 30);

    std::fs::write(&endpoints, "{\"nope\": 1}").unwrap();
    let out = agent(&[
        "generate-config",
        "--simulator-endpoints",
        endpoints.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("not a simulator endpoint list"),
        "{}",
        text(&out)
    );
}
