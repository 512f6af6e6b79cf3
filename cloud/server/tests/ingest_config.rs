//! The shipped configs parse: `cloud/server/examples/cloud.toml` (and what it points at is
//! usable), the compose deployment and the demo template.

use std::path::PathBuf;

use broker::Protocol;
use server::config::CloudConfig;

fn example() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/cloud.toml")
}

#[test]
fn the_example_config_parses_and_its_embedded_broker_listener_exists() {
    let cfg = CloudConfig::load(&example()).unwrap();
    let embedded = cfg
        .broker
        .embedded
        .as_ref()
        .expect("example uses the embedded broker");
    assert!(cfg.broker.external.is_none());
    let rumqttd = broker::load_config(&embedded.config).unwrap();
    let listener = broker::listeners(&rumqttd)
        .into_iter()
        .find(|l| l.name == embedded.listener)
        .expect("the ingester listener is in the rumqttd config");
    assert_eq!(listener.protocol, Protocol::V5);
    assert!(!listener.tls);
    assert!(
        listener.addr.ip().is_loopback(),
        "the ingester listener stays on loopback"
    );
    // Every option is spelled out, so the values equal the documented defaults or are
    // deliberate; spot-check the ones the ingester depends on.
    let ingest = cfg.ingest.options();
    assert!(ingest.max_batch_messages <= server::config::MAX_BATCH_MESSAGES);
    assert_eq!(ingest.shared_group, "ingest");
    assert_eq!(
        cfg.storage.retention,
        Some(std::time::Duration::from_secs(365 * 86_400))
    );
}

#[test]
fn the_example_config_with_an_external_broker_parses() {
    let text = std::fs::read_to_string(example()).unwrap();
    let start = text.find("\n[broker.embedded]").unwrap() + 1;
    let end = text.find("# Or connect to Mosquitto/EMQX:").unwrap();
    let external = text[..start].to_owned()
        + "[broker.external]\nurl = \"mqtts://mqtt.example.com\"\nca_file = \"ca.crt\"\n"
        + &text[end..];
    let cfg = CloudConfig::parse(&external, std::path::Path::new("/etc/wellpulse")).unwrap();
    let endpoint = cfg.broker.external_endpoint().unwrap();
    assert_eq!(
        (endpoint.host.as_str(), endpoint.port),
        ("mqtt.example.com", 8883)
    );
    assert!(
        !format!("{endpoint:?}").contains("change-me"),
        "password leaked in Debug"
    );
    let tls = endpoint.tls.expect("mqtts means TLS");
    assert_eq!(tls.ca_file, Some(PathBuf::from("/etc/wellpulse/ca.crt")));
}

/// Every shipped deployment file: the compose file's cloud config loads with its secrets
/// taken from the environment it sets, every file it mounts exists, and the images build
/// the binary this crate makes.
#[tokio::test]
async fn the_deployment_files_are_consistent_and_their_config_loads() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let compose_dir = root.join("deploy/compose");
    let compose = std::fs::read_to_string(compose_dir.join("docker-compose.yml")).unwrap();
    for line in compose.lines().map(str::trim) {
        let Some(mount) = line.strip_prefix("- ") else {
            continue;
        };
        let Some((host, _)) = mount.split_once(':') else {
            continue;
        };
        if host.starts_with('.') {
            let path = compose_dir.join(host);
            assert!(path.exists(), "compose mounts {host}, which does not exist");
        }
    }
    for var in ["WELLPULSE_DATABASE_URL", "WELLPULSE_INGESTER_PASSWORD"] {
        assert!(compose.contains(&format!("{var}:")), "compose sets {var}");
    }
    // The config as the container sees it: /etc/wellpulse/{cloud.toml, broker-config/}.
    let etc = tempfile::tempdir().unwrap();
    std::fs::copy(
        compose_dir.join("cloud.toml"),
        etc.path().join("cloud.toml"),
    )
    .unwrap();
    std::os::unix::fs::symlink(root.join("broker-config"), etc.path().join("broker-config"))
        .unwrap();
    let config = etc.path().join("cloud.toml");
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_wellpulse-cloud"))
        .args(["check-config", "--config", config.to_str().unwrap()])
        .env(
            "WELLPULSE_DATABASE_URL",
            "postgres://postgres:db-secret-1@db:5432/wellpulse",
        )
        .env("WELLPULSE_INGESTER_PASSWORD", "ingester-secret-2")
        .output()
        .await
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains("ok (broker embedded, API on 0.0.0.0:8080)"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("secret") && !stderr.contains("secret"),
        "{stdout}{stderr}"
    );
    // Without the environment it refuses, naming the variable.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_wellpulse-cloud"))
        .args(["check-config", "--config", config.to_str().unwrap()])
        .env_remove("WELLPULSE_DATABASE_URL")
        .env("WELLPULSE_INGESTER_PASSWORD", "ingester-secret-2")
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("WELLPULSE_DATABASE_URL is not set"));
    // The images build this crate's binary.
    let dockerfile = std::fs::read_to_string(compose_dir.join("Dockerfile")).unwrap();
    assert!(
        dockerfile.contains("-p server --bin wellpulse-cloud"),
        "{dockerfile}"
    );
    // The demo's config template parses once its placeholders are filled.
    let demo = std::fs::read_to_string(root.join("deploy/demo/cloud.toml"))
        .unwrap()
        .replace("@DATABASE_URL@", "postgres://postgres@127.0.0.1/wp")
        .replace("@INGESTER_PASSWORD@", "demo-ingester-secret")
        .replace("@BROKER_CONFIG@", "../../broker-config/rumqttd-dev.toml")
        .replace("@API@", "127.0.0.1:8080")
        .replace("@WEB_DIR@", "../../web/dist")
        // demo.sh exports the Stripe secrets; Cargo sets this one for tests.
        .replace(
            "{ env = \"STRIPE_API_KEY\" }",
            "{ env = \"CARGO_PKG_NAME\" }",
        )
        .replace(
            "{ env = \"STRIPE_WEBHOOK_SECRET\" }",
            "{ env = \"CARGO_PKG_NAME\" }",
        );
    let demo = server::config::CloudConfig::parse(&demo, &root.join("deploy/demo")).unwrap();
    assert!(demo.billing.is_some(), "the demo bills against localstripe");
    assert_eq!(
        demo.api.web_dir,
        Some(root.join("deploy/demo/../../web/dist"))
    );
}
