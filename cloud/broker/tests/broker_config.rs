//! Every file in `broker-config/` is checked: the rumqttd configs parse into
//! `rumqttd::Config` without silently ignored keys, the Mosquitto config and ACL run in a
//! real Mosquitto and enforce per-gateway topic isolation, the README covers every file.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use testkit::mqtt::*;

/// Dotted key paths of every leaf in a TOML table.
fn leaf_keys(value: &toml::Value, prefix: &str, out: &mut Vec<String>) {
    match value {
        toml::Value::Table(t) => {
            for (k, v) in t {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                leaf_keys(v, &path, out);
            }
        }
        _ => out.push(prefix.to_owned()),
    }
}

/// rumqttd ignores unknown keys; a typo would silently fall back to a default. Every key
/// of the file must survive a parse → serialize round trip.
fn check_rumqttd_toml(path: &Path) {
    let text = std::fs::read_to_string(path).unwrap();
    let config = broker::load_config(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        !broker::listeners(&config).is_empty(),
        "{}: no listener",
        path.display()
    );
    let original: toml::Value = toml::from_str(&text).unwrap();
    let reserialized = toml::Value::try_from(&config).unwrap();
    let (mut want, mut have) = (Vec::new(), Vec::new());
    leaf_keys(&original, "", &mut want);
    leaf_keys(&reserialized, "", &mut have);
    for key in want {
        assert!(
            have.contains(&key),
            "{}: key `{key}` is not a rumqttd setting (ignored by rumqttd)",
            path.display()
        );
    }
}

/// Each ACL line is a comment, blank, or `user NAME` / `topic|pattern [ACCESS] TOPIC`.
fn check_acl_syntax(path: &Path) {
    let text = std::fs::read_to_string(path).unwrap();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        let ok = match words.as_slice() {
            ["user", _] => true,
            ["topic" | "pattern", access, _] => {
                ["read", "write", "readwrite", "deny"].contains(access)
            }
            ["topic" | "pattern", _] => true,
            _ => false,
        };
        assert!(
            ok,
            "{}:{}: unrecognised ACL line {line:?}",
            path.display(),
            n + 1
        );
    }
}

#[test]
fn every_file_in_broker_config_is_checked() {
    let dir = broker_config_dir();
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
    for name in &names {
        let path = dir.join(name);
        match name.as_str() {
            n if n.starts_with("rumqttd") && n.ends_with(".toml") => check_rumqttd_toml(&path),
            "mosquitto.acl" => {
                check_acl_syntax(&path);
                // The shipped file is what `wellpulse-cloud mosquitto-acl` writes for the
                // README's example registry (one gateway, two ingesters).
                let shipped = std::fs::read_to_string(&path).unwrap();
                let generated = broker::mosquitto::acl(
                    &[("acme".to_owned(), "gw-001".to_owned())],
                    &["wp-ingester-1".to_owned(), "wp-ingester-2".to_owned()],
                );
                if shipped != generated {
                    std::fs::write(dir.join("mosquitto.acl.expected"), &generated).unwrap();
                }
                assert_eq!(shipped, generated, "regenerate broker-config/mosquitto.acl");
            }
            // Started for real below (mosquitto_config_runs_and_isolates_gateways).
            "mosquitto.conf" => {}
            // Started for real by `broker_tenancy` (mosquitto_dynsec_…) and the ingester's
            // `ingest_mosquitto`; here: the same settings as mosquitto.conf but security.
            "mosquitto-dynsec.conf" => check_dynsec_conf_matches(&dir),
            // Makes every certificate the Mosquitto tests use (testkit::mqtt), and here
            // one for a fresh directory, checked below.
            "make-broker-cert.sh" => check_cert_script(&path),
            "README.md" => {}
            other => panic!("broker-config/{other} is not covered by any check"),
        }
        if name != "README.md" {
            assert!(
                readme.contains(name.as_str()),
                "README.md does not explain {name}"
            );
        }
    }
    assert!(names.len() >= 5, "{names:?}");
}

/// `mosquitto-dynsec.conf` is `mosquitto.conf` with the dynamic-security plugin in place of
/// the password file and the ACL file: every other setting the same, so the two profiles
/// cannot drift apart.
fn check_dynsec_conf_matches(dir: &std::path::Path) {
    let settings = |name: &str, security: &[&str]| -> Vec<String> {
        std::fs::read_to_string(dir.join(name))
            .unwrap()
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .filter(|l| {
                !security
                    .iter()
                    .any(|s| l.split_whitespace().next() == Some(*s))
            })
            .map(str::to_owned)
            .collect()
    };
    let dynsec = settings(
        "mosquitto-dynsec.conf",
        &["plugin", "plugin_opt_config_file"],
    );
    let plain = settings("mosquitto.conf", &["password_file", "acl_file"]);
    assert_eq!(
        dynsec, plain,
        "mosquitto-dynsec.conf drifted from mosquitto.conf"
    );
    let text = std::fs::read_to_string(dir.join("mosquitto-dynsec.conf")).unwrap();
    assert!(text.contains("\nplugin /usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so\n"));
    assert!(!text.contains("\npassword_file") && !text.contains("\nacl_file"));
}

/// The script makes a CA and a broker certificate for the names given, signed by that CA
/// and valid for them; a second run keeps the CA (gateways keep trusting the broker).
fn check_cert_script(script: &std::path::Path) {
    let dir = tempfile::tempdir().unwrap();
    let tls = dir.path().join("tls");
    let run = || {
        let out = std::process::Command::new(script)
            .arg(&tls)
            .args(["mqtt.example.com", "203.0.113.7"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
    };
    run();
    let ca = std::fs::read(tls.join("ca.crt")).unwrap();
    run();
    assert_eq!(
        std::fs::read(tls.join("ca.crt")).unwrap(),
        ca,
        "the CA is kept"
    );
    let openssl = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(&tls)
            .output()
            .unwrap();
        assert!(out.status.success(), "openssl {args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let verified = openssl(&["verify", "-CAfile", "ca.crt", "broker.crt"]);
    assert!(verified.contains("broker.crt: OK"), "{verified}");
    let names = openssl(&[
        "x509",
        "-in",
        "broker.crt",
        "-noout",
        "-ext",
        "subjectAltName",
    ]);
    assert!(
        names.contains("DNS:mqtt.example.com") && names.contains("IP Address:203.0.113.7"),
        "{names}"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(tls.join("broker.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0o040, "broker.key readable by its group only");
}

/// Received (topic, payload) pairs.
type Received = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// A v3.1.1 client that records what it receives.
struct Client {
    client: AsyncClient,
    received: Received,
    suback: Arc<Mutex<Vec<rumqttc::SubscribeReasonCode>>>,
    connected: Arc<Mutex<Option<bool>>>,
}

impl Client {
    async fn connect(addr: std::net::SocketAddr, user: &str, password: &str) -> Client {
        let mut options =
            MqttOptions::new(user.replace('/', "-"), addr.ip().to_string(), addr.port());
        options
            .set_credentials(user, password)
            .set_keep_alive(Duration::from_secs(30));
        let (client, mut eventloop) = AsyncClient::new(options, 100);
        let received = Arc::new(Mutex::new(Vec::new()));
        let suback = Arc::new(Mutex::new(Vec::new()));
        let connected = Arc::new(Mutex::new(None));
        {
            let (received, suback, connected) =
                (received.clone(), suback.clone(), connected.clone());
            tokio::spawn(async move {
                loop {
                    match eventloop.poll().await {
                        Ok(Event::Incoming(Packet::ConnAck(_))) => {
                            *connected.lock().unwrap() = Some(true)
                        }
                        Ok(Event::Incoming(Packet::SubAck(s))) => {
                            suback.lock().unwrap().extend(s.return_codes)
                        }
                        Ok(Event::Incoming(Packet::Publish(p))) => received
                            .lock()
                            .unwrap()
                            .push((p.topic.clone(), p.payload.to_vec())),
                        Ok(_) => {}
                        Err(_) => {
                            connected.lock().unwrap().get_or_insert(false);
                            return;
                        }
                    }
                }
            });
        }
        let c = connected.clone();
        wait_until("MQTT connection outcome", || {
            let c = c.clone();
            async move { c.lock().unwrap().is_some() }
        })
        .await;
        Client {
            client,
            received,
            suback,
            connected,
        }
    }

    fn is_connected(&self) -> bool {
        *self.connected.lock().unwrap() == Some(true)
    }

    async fn subscribe(&self, filter: &str) -> rumqttc::SubscribeReasonCode {
        let before = self.suback.lock().unwrap().len();
        self.client
            .subscribe(filter, QoS::AtLeastOnce)
            .await
            .unwrap();
        let s = self.suback.clone();
        wait_until("SUBACK", || {
            let s = s.clone();
            async move { s.lock().unwrap().len() > before }
        })
        .await;
        self.suback.lock().unwrap()[before]
    }

    fn topics(&self) -> Vec<String> {
        self.received
            .lock()
            .unwrap()
            .iter()
            .map(|(t, _)| t.clone())
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_config_runs_and_isolates_gateways() {
    init_tracing();
    let mosquitto = Mosquitto::start(&[
        ("acme/gw-1", "gateway-one-secret-123"),
        ("other/gw-2", "gateway-two-secret-456"),
    ]);
    let ingester = Client::connect(mosquitto.plain, INGESTER_USER, INGESTER_PASSWORD).await;
    assert!(ingester.is_connected(), "{}", mosquitto.log());
    for (group, kind) in [
        ("ingest", "data"),
        ("ingest-birth", "birth"),
        ("ingest-death", "death"),
        ("ingest-cmd-result", "cmd/result"),
    ] {
        let code = ingester
            .subscribe(&format!("$share/{group}/wp/v1/+/+/{kind}"))
            .await;
        assert!(
            matches!(code, rumqttc::SubscribeReasonCode::Success(_)),
            "{kind}: {code:?}"
        );
    }
    let gw1 = Client::connect(mosquitto.plain, "acme/gw-1", "gateway-one-secret-123").await;
    assert!(gw1.is_connected());
    let wrong = Client::connect(mosquitto.plain, "acme/gw-1", "not-the-secret-at-all").await;
    assert!(!wrong.is_connected(), "a wrong password must be refused");

    // gw-1 may subscribe to its own ack/cmd topics only (Mosquitto grants the SUBACK but
    // never delivers what the ACL forbids, so delivery is what we check).
    gw1.subscribe("wp/v1/acme/gw-1/ack").await;
    gw1.subscribe("wp/v1/other/gw-2/ack").await;

    let publish = |c: &Client, topic: &str, payload: &'static [u8]| {
        let client = c.client.clone();
        let topic = topic.to_owned();
        async move {
            client
                .publish(topic, QoS::AtLeastOnce, false, payload)
                .await
                .unwrap()
        }
    };
    publish(&gw1, "wp/v1/other/gw-2/data", b"spoofed").await;
    publish(&gw1, "wp/v1/acme/gw-1/data", b"own").await;
    publish(&ingester, "wp/v1/acme/gw-1/ack", b"ack-1").await;
    publish(&ingester, "wp/v1/other/gw-2/ack", b"ack-2").await;

    wait_until(
        "own data at the ingester and own ack at the gateway",
        || async {
            ingester
                .topics()
                .contains(&"wp/v1/acme/gw-1/data".to_owned())
                && gw1.topics().contains(&"wp/v1/acme/gw-1/ack".to_owned())
        },
    )
    .await;
    // Give forbidden deliveries a chance to show up before asserting they did not.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(ingester.topics(), vec!["wp/v1/acme/gw-1/data".to_owned()]);
    assert_eq!(gw1.topics(), vec!["wp/v1/acme/gw-1/ack".to_owned()]);
}
