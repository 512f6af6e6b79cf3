//! Optional mutual TLS in `cloud.toml`: `[tenancy] ca_key` and
//! `gateway_certificate_validity` reach the API, `[broker.embedded.listeners.<name>]
//! client_certificates` reaches the front listener; the shipped example names real TLS
//! listeners; unknown keys, bad values, short keys and unknown listeners are errors.

use std::path::{Path, PathBuf};
use std::time::Duration;

use broker::ClientCertificates;
use server::config::CloudConfig;

const BASE: &str = testkit::MINIMAL_CLOUD_TOML;

#[test]
fn the_example_enables_certificates_on_its_tls_listeners() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/cloud.toml");
    let cfg = CloudConfig::load(&path).unwrap();
    let embedded = cfg.broker.embedded.as_ref().unwrap();
    let options = embedded.front_options();
    assert_eq!(
        options.client_certificates,
        [
            ("gateways-tls".to_owned(), ClientCertificates::Optional),
            ("gateways-tls5".to_owned(), ClientCertificates::Optional),
        ]
        .into()
    );
    let rumqttd = broker::load_config(&embedded.config).unwrap();
    let listeners = broker::listeners(&rumqttd);
    for name in options.client_certificates.keys() {
        let l = listeners
            .iter()
            .find(|l| &l.name == name)
            .unwrap_or_else(|| panic!("{name} is a listener of the rumqttd file"));
        assert!(l.tls, "{name} is a TLS listener");
    }
    let api = cfg.api_options();
    assert!(api.ca_key.is_some());
    assert_eq!(
        api.gateway_certificate_validity,
        Duration::from_secs(397 * 86_400)
    );
    assert!(!format!("{cfg:?}").contains("change-me-tenant-ca"));
}

#[test]
fn certificates_are_off_without_configuration() {
    let cfg = CloudConfig::parse(BASE, Path::new("/etc/wp")).unwrap();
    assert!(
        cfg.broker
            .embedded
            .as_ref()
            .unwrap()
            .front_options()
            .client_certificates
            .is_empty()
    );
    let api = cfg.api_options();
    assert_eq!(api.ca_key, None);
    assert_eq!(
        api.gateway_certificate_validity,
        store::certificates::DEFAULT_VALIDITY
    );
}

#[test]
fn listener_modes_and_the_ca_key_parse() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ca_key");
    std::fs::write(&file, "0123456789abcdef0123456789abcdef-file\n").unwrap();
    let text = format!(
        "{BASE}\n[broker.embedded.listeners.tls]\nclient_certificates = \"required\"\n\
         [broker.embedded.listeners.other]\nclient_certificates = \"off\"\n\
         [tenancy]\nca_key = {{ file = \"{}\" }}\ngateway_certificate_validity = \"30d\"\n",
        file.display()
    );
    let cfg = CloudConfig::parse(&text, Path::new("/etc/wp")).unwrap();
    let modes = cfg.broker.embedded.as_ref().unwrap().front_options();
    assert_eq!(
        modes.client_certificates.get("tls"),
        Some(&ClientCertificates::Required)
    );
    assert_eq!(
        modes.client_certificates.get("other"),
        Some(&ClientCertificates::Off)
    );
    let api = cfg.api_options();
    assert_eq!(
        api.ca_key.as_ref().map(|k| k.expose().to_owned()),
        Some("0123456789abcdef0123456789abcdef-file".to_owned())
    );
    assert_eq!(
        api.gateway_certificate_validity,
        Duration::from_secs(30 * 86_400)
    );
}

#[test]
fn bad_certificate_settings_are_errors() {
    for (extra, expect) in [
        (
            "[broker.embedded.listeners.tls]\nclient_certificates = \"sometimes\"",
            "unknown variant",
        ),
        (
            "[broker.embedded.listeners.tls]\nclient_certs = \"required\"",
            "unknown field",
        ),
        ("[tenancy]\nca_key = \"too-short\"", "at least 32"),
        ("[tenancy]\nca_key = \"\"", "empty"),
        (
            "[tenancy]\ngateway_certificate_validity = \"30m\"",
            "gateway_certificate_validity",
        ),
        (
            "[tenancy]\ngateway_certificate_validity = \"4000d\"",
            "gateway_certificate_validity",
        ),
    ] {
        let err = CloudConfig::parse(&format!("{BASE}\n{extra}\n"), Path::new("/etc/wp"))
            .unwrap_err()
            .to_string();
        assert!(err.contains(expect), "{extra}: {err}");
    }
}
