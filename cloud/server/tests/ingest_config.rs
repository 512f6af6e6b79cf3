//! The shipped `cloud/examples/cloud.toml` parses, and what it points at is usable.

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
