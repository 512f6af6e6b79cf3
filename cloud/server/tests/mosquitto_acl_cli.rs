//! `wellpulse-cloud mosquitto-acl` prints the ACL of the registry's gateways.

use std::path::Path;

use testkit::mqtt::*;
use tokio::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_wellpulse-cloud");

fn write_config(dir: &Path, database_url: &str) -> std::path::PathBuf {
    let path = dir.join("cloud.toml");
    let text = format!(
        r#"
[database]
url = "{database_url}"
[broker]
client_id = "wp-ingester-cli"
username = "{INGESTER_USER}"
password = "{INGESTER_PASSWORD}"
[broker.embedded]
config = "{}"
listener = "dev5"
"#,
        broker_config_dir().join("rumqttd-dev.toml").display()
    );
    std::fs::write(&path, text).unwrap();
    path
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
