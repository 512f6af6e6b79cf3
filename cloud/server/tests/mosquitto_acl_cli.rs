//! `wellpulse-cloud mosquitto-acl` prints the ACL of the registry's gateways.

use std::path::{Path, PathBuf};

use testkit::mqtt::*;
use tokio::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_wellpulse-cloud");

fn write_config(dir: &Path, database_url: &str) -> PathBuf {
    write_cloud_config(dir, database_url, "")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_acl_covers_every_registered_gateway_and_the_ingesters() {
    init_tracing();
    let test = TestDb::new("cli_acl").await;
    test.provision_in("acme", "gw-1").await;
    test.provision_in("globex", "gw-2").await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), test.scratch.url());
    let run = |extra: &'static [&'static str]| {
        let config = config.clone();
        async move {
            let out = Command::new(BIN)
                .arg("mosquitto-acl")
                .arg("--config")
                .arg(&config)
                .args(extra)
                .env("RUST_LOG", "warn")
                .output()
                .await
                .unwrap();
            assert!(out.status.success(), "{out:?}");
            String::from_utf8(out.stdout).unwrap()
        }
    };
    let registry = vec![
        ("acme".to_owned(), "gw-1".to_owned()),
        ("globex".to_owned(), "gw-2".to_owned()),
    ];
    assert_eq!(
        run(&[]).await,
        broker::mosquitto::acl(&registry, &[INGESTER_USER.to_owned()])
    );
    let two = run(&["--ingester", "wp-ingester-1", "--ingester", "wp-ingester-2"]).await;
    assert!(two.contains("user wp-ingester-2\n") && two.contains("user globex/gw-2\n"));
    test.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_cut_off_by_its_reader_ends_quietly() {
    init_tracing();
    let test = TestDb::new("cli_acl_pipe").await;
    test.provision_in("acme", "gw-1").await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), test.scratch.url());
    let mut child = Command::new(BIN)
        .arg("mosquitto-acl")
        .arg("--config")
        .arg(&config)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // `| head -0`: the reader is gone before the registry has been read.
    drop(child.stdout.take());
    let out = child.wait_with_output().await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "exit {:?}: {stderr}", out.status);
    assert!(!stderr.contains("panicked"), "{stderr}");
    test.finish().await;
}

/// `wellpulse-cloud mosquitto-dynsec`: prints the plugin's commands for the registry, and
/// with `--apply` (admin password from a file) brings a running Mosquitto in step — a
/// gateway provisioned since gets its role, and a wrong admin password is a clear error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynsec_roles_follow_the_registry() {
    use testkit::probe::{Probe, Version};
    init_tracing();
    let test = TestDb::new("cli_dynsec").await;
    let first = test.provision_in("acme", "gw-1").await;
    let mosquitto = Mosquitto::start_dynsec(&[("acme/gw-1", &first)]).await;
    // A gateway provisioned later; the operator creates its client (as
    // `mosquitto_ctrl dynsec createClient` would).
    let second = test.provision_in("globex", "gw-2").await;
    let admin = mosquitto.dynsec_admin();
    let created = broker::mosquitto::dynsec::command(
        &admin,
        serde_json::json!({ "commands": [
            { "command": "createClient", "username": "globex/gw-2", "password": second },
        ]}),
    )
    .await
    .unwrap();
    assert!(created[0].get("error").is_none(), "{created:?}");
    let probe = |password: String| {
        let addr = mosquitto.plain;
        async move { Probe::connect(addr, Version::V5, "globex/gw-2", "globex/gw-2", &password).await }
    };
    let before = probe(second.clone()).await;
    assert_eq!(
        before.subscribe("wp/v1/globex/gw-2/ack").await,
        vec![0x87],
        "no role yet"
    );

    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), test.scratch.url());
    let cli = |args: Vec<String>| {
        let config = config.clone();
        async move {
            Command::new(BIN)
                .arg("mosquitto-dynsec")
                .arg("--config")
                .arg(&config)
                .args(args)
                .env("RUST_LOG", "warn")
                .env_remove("WELLPULSE_MOSQUITTO_ADMIN_PASSWORD")
                .output()
                .await
                .unwrap()
        }
    };
    // Printed: one role per registered gateway, nothing sent.
    let printed = cli(vec![]).await;
    assert!(printed.status.success(), "{printed:?}");
    let plan: serde_json::Value = serde_json::from_slice(&printed.stdout).unwrap();
    let roles: Vec<&str> = plan["commands"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["command"] == "createRole")
        .map(|c| c["rolename"].as_str().unwrap())
        .collect();
    assert_eq!(
        roles,
        [
            "wellpulse-ingester",
            "wellpulse-gateway/acme/gw-1",
            "wellpulse-gateway/globex/gw-2"
        ]
    );

    let apply = |password: &str| {
        let file = dir.path().join("admin-password");
        std::fs::write(&file, format!("{password}\n")).unwrap();
        cli(vec![
            "--apply".into(),
            "--host".into(),
            mosquitto.plain.ip().to_string(),
            "--port".into(),
            mosquitto.plain.port().to_string(),
            "--ingester".into(),
            INGESTER_USER.into(),
            "--password-file".into(),
            file.display().to_string(),
        ])
    };
    let refused = apply("not-the-admin-password").await;
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("Mosquitto at"), "{stderr}");
    assert!(!stderr.contains("not-the-admin-password"), "{stderr}");

    let applied = apply(DYNSEC_ADMIN_PASSWORD).await;
    assert!(applied.status.success(), "{applied:?}");
    let stdout = String::from_utf8_lossy(&applied.stdout);
    assert!(stdout.contains("2 gateways"), "{stdout}");
    let after = probe(second).await;
    assert_eq!(after.subscribe("wp/v1/globex/gw-2/ack").await, vec![1]);
    assert_eq!(after.subscribe("wp/v1/acme/gw-1/ack").await, vec![0x87]);
    assert_eq!(
        after.subscribe("$share/ingest/wp/v1/+/+/data").await,
        vec![0x87]
    );
    test.finish().await;
}
