//! The whole agent with its buffer on a 4 MiB tmpfs and the broker away: once the disk is
//! full the oldest batches are dropped and counted (durably), /healthz says degraded, the
//! agent keeps polling, restarts on the full disk, and drains its buffer when the broker
//! comes; the drops reach the cloud in the birth and in every batch's buffer status.
//!
//! Mounting needs root; without it the test fails with a message, never skips.

mod agent_common;
mod tmpfs_support;

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::{Duration, Instant};

use agent_common::{Cloud, Received, free_port, mqtt_credentials, start_broker_on};
use simulator::{FleetConfig, Simulator};
use tmpfs_support::{Tmpfs, fill};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn http_get(port: u16, path: &str) -> String {
    let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return String::new();
    };
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
    if s.write_all(request.as_bytes()).await.is_err() {
        return String::new();
    }
    let mut body = String::new();
    let _ = s.read_to_string(&mut body).await;
    body
}

/// The value of an unlabelled metric, 0 when absent.
async fn metric(port: u16, name: &str) -> u64 {
    let text = http_get(port, "/metrics").await;
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0)
}

/// Waits until `cond` holds (polled every 200 ms), or panics after `limit`.
async fn wait_for<F, Fut>(limit: Duration, what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !cond().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

struct Running {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

fn start_agent(config: &Path) -> Running {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let path = config.to_path_buf();
    let task = tokio::spawn(async move {
        agent::run(&path, async {
            let _ = stopped.await;
        })
        .await
    });
    Running { stop, task }
}

impl Running {
    async fn stop(self) {
        let _ = self.stop.send(());
        tokio::time::timeout(Duration::from_secs(60), self.task)
            .await
            .expect("agent stops in time")
            .expect("agent task")
            .expect("agent ends without error");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_drops_the_oldest_keeps_polling_restarts_and_drains() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_test_writer()
        .try_init();
    let fs = Tmpfs::mount("4m");
    let fleet = FleetConfig {
        seed: 7,
        wells: 2,
        devices_per_well: vec!["rod-pump-controller".into(), "gas-flow-computer".into()],
        ..FleetConfig::default()
    };
    let sim = Simulator::start(fleet, IpAddr::V4(Ipv4Addr::LOCALHOST))
        .await
        .unwrap();
    let broker = free_port(); // nothing listens there yet: the broker is away
    let metrics_port = free_port();
    let data_dir = fs.path().join("state");
    let mut text = format!(
        "[gateway]\ntenant = \"disk\"\nid = \"gw-disk\"\ndata_dir = \"{}\"\n\n\
         [mqtt]\nurl = \"mqtt://127.0.0.1:{broker}\"\nack_timeout = \"5s\"\n\
         reconnect_min = \"100ms\"\nreconnect_max = \"1s\"\nbacklog_pace = \"5ms\"\n{}\n\
         [buffer]\nflush_interval = \"200ms\"\n\n[metrics]\nlisten = \"127.0.0.1:{metrics_port}\"\n\n",
        data_dir.display(),
        mqtt_credentials()
    );
    for e in sim.endpoints() {
        text.push_str(&format!(
            "[[device]]\nname = \"{}\"\nprofile = \"{}\"\ntcp = \"{}\"\nunit_id = {}\n\
             poll = {{ fast = \"100ms\", slow = \"100ms\" }}\n\n",
            e.device, e.profile, e.addr, e.unit_id
        ));
    }
    let config_dir = tempfile::tempdir().unwrap();
    let config = config_dir.path().join("agent.toml");
    std::fs::write(&config, &text).unwrap();

    // Leave the agent its reserve and 512 KiB (redb takes some for itself, the buffer
    // leaves `DISK_HEADROOM` free): a hundred or two batches fill it.
    let filler = fill(fs.path());
    let len = std::fs::metadata(&filler).unwrap().len();
    let room = agent::buffer::RESERVE_BYTES + 512 * 1024;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&filler)
        .unwrap()
        .set_len(len - room)
        .unwrap();
    let agent = start_agent(&config);
    wait_for(
        Duration::from_secs(60),
        "first batches buffered",
        || async { metric(metrics_port, "wellpulse_batches_appended_total").await >= 5 },
    )
    .await;
    assert!(http_get(metrics_port, "/healthz").await.ends_with("ok\n"));
    wait_for(
        Duration::from_secs(180),
        "drops on the full disk",
        || async { metric(metrics_port, "wellpulse_buffer_dropped_batches_total").await > 0 },
    )
    .await;
    let health = http_get(metrics_port, "/healthz").await;
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    assert!(
        health.contains("degraded: ") && health.contains("disk full"),
        "{health}"
    );
    assert_eq!(metric(metrics_port, "wellpulse_buffer_degraded").await, 1);
    // It keeps polling and committing: the newest data stays, the oldest goes.
    let appended = metric(metrics_port, "wellpulse_batches_appended_total").await;
    let dropped = metric(metrics_port, "wellpulse_buffer_dropped_batches_total").await;
    wait_for(Duration::from_secs(60), "appends go on", || async {
        metric(metrics_port, "wellpulse_batches_appended_total").await > appended + 20
    })
    .await;
    assert_eq!(
        metric(metrics_port, "wellpulse_buffer_append_errors_total").await,
        0
    );
    assert_eq!(
        metric(metrics_port, "wellpulse_batcher_samples_dropped_total").await,
        0
    );
    agent.stop().await;

    // Restart on the full disk (what the stop committed filled it again).
    let _more = fill(&data_dir);
    let mut agent = start_agent(&config);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !http_get(metrics_port, "/healthz")
        .await
        .contains("disk full")
    {
        if agent.task.is_finished() {
            let result = (&mut agent.task).await;
            panic!("the agent stopped after a restart on the full disk: {result:?}");
        }
        assert!(Instant::now() < deadline, "not degraded after the restart");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    wait_for(
        Duration::from_secs(60),
        "appends after the restart",
        || async { metric(metrics_port, "wellpulse_batches_appended_total").await >= 10 },
    )
    .await;
    let after_restart = metric(metrics_port, "wellpulse_buffer_dropped_batches_total").await;
    assert!(
        after_restart >= dropped,
        "drops are durable: {after_restart} < {dropped}"
    );
    let pending = metric(metrics_port, "wellpulse_buffer_pending_batches").await;
    assert!(pending > 30, "the backlog is kept ({pending})");

    // The broker comes back; the cloud acks; the backlog drains and the drops are told.
    start_broker_on(broker);
    let mut cloud = Cloud::start(broker, "disk", "gw-disk").await;
    let (mut birth_seen, mut batch_dropped, mut batches) = (0, 0, 0);
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match cloud.next(left).await.expect("the gateway publishes") {
            Received::Batch(batch, _) => {
                batches += 1;
                let status = batch.header.status.expect("status in every batch");
                batch_dropped = batch_dropped.max(status.dropped_batches);
                assert_ne!(batch.header.epoch, 0, "the buffer's epoch travels");
            }
            Received::Birth(_) => birth_seen = 1,
            _ => {}
        }
        let pending = metric(metrics_port, "wellpulse_buffer_pending_batches").await;
        if batches > 30 && pending < 10 && birth_seen == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "no drain: {pending} pending");
    }
    assert!(
        batch_dropped >= dropped,
        "batches report the drops ({batch_dropped})"
    );
    std::fs::remove_file(filler).unwrap();
    agent.stop().await;
    drop(cloud);
    drop(fs);
}
