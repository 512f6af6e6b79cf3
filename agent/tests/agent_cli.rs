//! The `wellpulse-agent` offline subcommands, run as a real process.

use std::path::Path;
use std::process::{Command, Output};

use agent::config::Config;

fn agent(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wellpulse-agent"))
        .args(args)
        .env("RUST_LOG", "warn")
        .env("WELLPULSE_MQTT_PASSWORD", "cli-test-gateway-secret")
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

#[test]
fn output_cut_off_by_its_reader_ends_quietly() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/agent.toml");
    let mut child = Command::new(env!("CARGO_BIN_EXE_wellpulse-agent"))
        .args(["check-config", example.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run wellpulse-agent");
    // `| head -0`: the reader is gone before the agent has written a line.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "exit {:?}: {stderr}", out.status);
    assert!(stderr.is_empty(), "{stderr}");
}

#[test]
fn generate_config_asks_for_the_password_in_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let endpoints = dir.path().join("endpoints.json");
    std::fs::write(
        &endpoints,
        r#"[{"well": "w", "device": "d", "profile": "tank-gauge", "addr": "127.0.0.1:15020", "unit_id": 1}]"#,
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_wellpulse-agent"))
        .args(["generate-config", "--simulator-endpoints"])
        .arg(&endpoints)
        .env_remove("WELLPULSE_MQTT_PASSWORD")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out).contains("set WELLPULSE_MQTT_PASSWORD"),
        "{}",
        text(&out)
    );
}

#[test]
fn logs_written_to_a_file_carry_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("agent.toml");
    // A broker nobody listens on: the agent starts its session, logs, and keeps retrying.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::write(
        &config,
        format!(
            "[gateway]\ntenant = \"acme\"\nid = \"gw-log\"\ndata_dir = \"state\"\n\n\
             [mqtt]\nurl = \"mqtt://127.0.0.1:{port}\"\npassword = \"log-test-secret\"\n\n\
             [metrics]\nlisten = \"127.0.0.1:0\"\n\n\
             [[device]]\nname = \"tank\"\nprofile = \"tank-gauge\"\ntcp = \"127.0.0.1:{port}\"\npoll = {{ fast = \"1s\", slow = \"60s\" }}\n"
        ),
    )
    .unwrap();
    let log_path = dir.path().join("agent.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_wellpulse-agent"))
        .args(["run", "--config", config.to_str().unwrap()])
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .expect("run wellpulse-agent");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let text = loop {
        let text = std::fs::read_to_string(&log_path).unwrap();
        if text.contains("agent session starting") {
            break text;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("agent exited with {status}: {text}");
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no start line: {text}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        !text.contains('\u{1b}'),
        "colour codes in a log file: {text:?}"
    );
    // Boot ids are printed as 16 hex digits, as the cloud prints them.
    let boot = text
        .split("boot_id=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no boot_id in {text}"));
    assert!(
        boot.len() == 16 && boot.chars().all(|c| c.is_ascii_hexdigit()),
        "boot_id {boot:?}"
    );
}

/// The systemd unit starts the agent the way its CLI and the example config expect: the
/// `run --config` it names parses, and the buffer directory systemd creates
/// (`StateDirectory=`) is the example's `data_dir`.
#[test]
fn the_systemd_unit_matches_the_cli_and_the_example() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let unit =
        std::fs::read_to_string(root.join("deploy/systemd/wellpulse-agent.service")).unwrap();
    let value = |key: &str| {
        unit.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .unwrap_or_else(|| panic!("{key}= in the unit"))
            .trim()
            .to_owned()
    };
    let exec = value("ExecStart");
    let mut words = exec.split_whitespace();
    assert_eq!(words.next(), Some("/usr/local/bin/wellpulse-agent"));
    let args: Vec<&str> = words.collect();
    assert_eq!(args[..2], ["run", "--config"], "{exec}");
    let example = std::fs::read_to_string(root.join("agent/examples/agent.toml")).unwrap();
    let data_dir = format!("data_dir = \"/var/lib/{}\"", value("StateDirectory"));
    assert!(example.contains(&data_dir), "the example's {data_dir}");
    // The subcommand and its option exist (an unknown one fails with a usage error).
    let out = agent(&["run", "--help"]);
    assert!(
        out.status.success() && text(&out).contains("--config"),
        "{}",
        text(&out)
    );
}
