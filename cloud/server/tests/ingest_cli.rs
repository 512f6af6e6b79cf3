//! The `wellpulse-cloud` binary: `migrate`, `provision-gateway`, and `run` with the
//! embedded broker ingesting a gateway's data.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use testkit::mqtt::*;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_wellpulse-cloud");

fn write_config(dir: &Path, database_url: &str) -> PathBuf {
    write_cloud_config(
        dir,
        database_url,
        r#"
[ingest]
max_batch_delay = "20ms"
[storage]
backend = "postgres"
[api]
listen = "127.0.0.1:0"
"#,
    )
}

async fn cli(args: &[&str]) -> Output {
    cli_with(args, None).await
}

/// Runs the CLI; `gateway_password` goes in `WELLPULSE_GATEWAY_PASSWORD`, never in argv.
async fn cli_with(args: &[&str], gateway_password: Option<&str>) -> Output {
    let mut command = Command::new(BIN);
    command.args(args).env("RUST_LOG", "warn");
    match gateway_password {
        Some(p) => command.env("WELLPULSE_GATEWAY_PASSWORD", p),
        None => command.env_remove("WELLPULSE_GATEWAY_PASSWORD"),
    };
    command.output().await.expect("wellpulse-cloud runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_provision_and_run_ingest_a_gateway() {
    init_tracing();
    let test = TestDb::new("ing_cli").await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), test.scratch.url());
    let config = config.to_str().unwrap();

    let out = cli(&["migrate", "--config", config]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("storage back-end: postgres"));

    let secret = "a-gateway-secret-of-sufficient-length";
    let provision = [
        "provision-gateway",
        "--config",
        config,
        "--tenant",
        TENANT,
        "--gateway",
        "gw-1",
    ];
    let out = cli(&provision).await;
    assert!(!out.status.success(), "a password is required");
    assert!(
        text(&out.stderr).contains("WELLPULSE_GATEWAY_PASSWORD"),
        "{}",
        text(&out.stderr)
    );
    let out = cli_with(&provision, Some(secret)).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("gateway acme/gw-1 created"), "{stdout}");
    assert!(stdout.contains("client id wp-acme-gw-1"), "{stdout}");
    assert!(!stdout.contains(secret) && !text(&out.stderr).contains(secret));
    // The same from a file.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gw-secret");
    std::fs::write(&file, format!("{secret}\n")).unwrap();
    let file = file.display().to_string();
    let from_file: Vec<&str> = provision
        .iter()
        .copied()
        .chain(["--password-file", &file])
        .collect();
    let out = cli(&from_file).await;
    assert!(
        text(&out.stdout).contains("updated (new secret)"),
        "{}",
        text(&out.stderr)
    );
    let out = cli_with(
        &[
            "provision-gateway",
            "--config",
            config,
            "--tenant",
            TENANT,
            "--gateway",
            "gw-2",
        ],
        Some("short"),
    )
    .await;
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("at least 16 characters"),
        "{}",
        text(&out.stderr)
    );

    // `run`: embedded broker on ephemeral ports (read from the log), ingester, API.
    let mut child = Command::new(BIN)
        .args(["run", "--config", config])
        .env("RUST_LOG", "info,rumqttd=off")
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            let _ = tx.send(line);
        }
    });
    let (mut gateway_addr, mut subscribed) = (None, false);
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while gateway_addr.is_none() || !subscribed {
        let line = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .expect("run logs its listeners and subscriptions")
            .expect("run keeps running");
        if line.contains("embedded MQTT broker listening") && line.contains("listener=dev4") {
            let addr = line
                .split("addr=")
                .nth(1)
                .unwrap()
                .split_whitespace()
                .next()
                .unwrap();
            gateway_addr = Some(addr.parse().unwrap());
        }
        subscribed |= line.contains("MQTT subscriptions active");
    }
    let gw = FakeGateway::connect(gateway_addr.unwrap(), TENANT, "gw-1", secret).await;
    gw.send_birth(&test, &birth(1)).await;
    gw.send_until_acked(&batch(1, 1, 1_700_005_000_000, 99))
        .await;
    assert_eq!(test.count("telemetry").await, 3);
    assert!(child.try_wait().unwrap().is_none(), "run is still running");
    child.kill().await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    test.finish().await;
}
