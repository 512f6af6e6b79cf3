//! The batcher on a real buffer: time- and size-triggered flushes, final flush on
//! shutdown, births with device information.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use agent::batcher::{self, Batcher, BatcherSettings, BatcherStats};
use agent::buffer::{Buffer, BufferLimits};
use agent::config::Config;
use agent::poller::PollerEvent;
use tokio::sync::mpsc;
use wire::{Frame, Quality, Sample, Value};

fn config() -> Config {
    let text = r#"
[gateway]
tenant = "t"
id = "gw"
data_dir = "unused"
[mqtt]
url = "mqtt://127.0.0.1:1"
password = "batcher-test-secret"
[[device]]
name = "h2s"
profile = "gas-detector"
tcp = "127.0.0.1:1502"
poll = { fast = "1s", slow = "60s" }
[[device]]
name = "tank"
profile = "tank-gauge"
tcp = "127.0.0.1:1503"
poll = { fast = "1s", slow = "60s" }
"#;
    Config::from_bytes(Path::new("t.toml"), Path::new("/tmp"), text.as_bytes()).unwrap()
}

fn frame(device: u16, ts_ms: i64, values: &[i64]) -> Frame {
    Frame {
        device,
        ts_ms,
        samples: values
            .iter()
            .enumerate()
            .map(|(i, v)| Sample {
                metric: i as u16,
                value: Some(Value::Int(*v)),
                quality: Quality::Good,
            })
            .collect(),
    }
}

fn open(dir: &Path) -> Arc<Buffer> {
    let limits = BufferLimits {
        max_bytes: 1 << 20,
        max_age: Duration::from_secs(3600),
    };
    Arc::new(Buffer::open(&dir.join("buffer.redb"), limits).unwrap())
}

fn stored_frames(buffer: &Buffer) -> Vec<Frame> {
    buffer
        .pending(None, 1000)
        .unwrap()
        .iter()
        .flat_map(|r| r.block.frames().unwrap())
        .collect()
}

#[tokio::test]
async fn frames_become_durable_batches_and_nothing_is_lost_on_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let buffer = open(dir.path());
    let config = config();
    let birth = batcher::build_birth(&config, 7);
    let stats = Arc::new(BatcherStats::default());
    let settings = BatcherSettings {
        flush_interval: Duration::from_millis(100),
        flush_quiet: Duration::from_millis(100),
        max_samples_per_batch: 5,
        flush_min_samples: 1,
    };
    let (tx, rx) = mpsc::channel(64);
    let (batcher, _births) = Batcher::new(
        rx,
        Arc::clone(&buffer),
        settings,
        birth,
        [],
        Arc::clone(&stats),
    );
    let task = tokio::spawn(batcher.run());

    // Time-triggered flush.
    let first = frame(0, 1_000, &[1, 2]);
    tx.send(PollerEvent::Frame(first.clone())).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while buffer.stats().pending_batches == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no time-triggered flush"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Size-triggered flushes and a final flush when the pollers are gone.
    let mut sent = vec![first];
    for i in 0..7 {
        let f = frame(i % 2, 2_000 + i64::from(i) * 10, &[i64::from(i), 10, 20]);
        tx.send(PollerEvent::Frame(f.clone())).await.unwrap();
        sent.push(f);
    }
    drop(tx);
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .unwrap()
        .unwrap();

    let mut stored = stored_frames(&buffer);
    // A batch returns its frames grouped by device; sort both the same way.
    stored.sort_by_key(|f| (f.ts_ms, f.device));
    sent.sort_by_key(|f| (f.ts_ms, f.device));
    assert_eq!(stored, sent, "every frame stored once");
    let records = buffer.pending(None, 1000).unwrap();
    assert!(records.iter().all(|r| r.boot_id == 7));
    assert!(records.len() >= 3, "{} batches", records.len());
    assert!(
        records.iter().all(|r| r.samples <= 5 + 3),
        "size limit respected"
    );
    assert_eq!(stats.samples.load(Relaxed), 2 + 7 * 3);
    assert_eq!(stats.batches.load(Relaxed), records.len() as u64);
}

/// Starts a batcher on `buffer` with the given interval and quiet time.
fn spawn_batcher(
    buffer: &Arc<Buffer>,
    flush_interval: Duration,
    flush_quiet: Duration,
) -> (mpsc::Sender<PollerEvent>, tokio::task::JoinHandle<()>) {
    let settings = BatcherSettings {
        flush_interval,
        flush_quiet,
        max_samples_per_batch: 10_000,
        flush_min_samples: 1,
    };
    let (tx, rx) = mpsc::channel(64);
    let birth = batcher::build_birth(&config(), 3);
    let stats = Arc::new(BatcherStats::default());
    let (batcher, _births) = Batcher::new(rx, Arc::clone(buffer), settings, birth, [], stats);
    (tx, tokio::spawn(batcher.run()))
}

async fn wait_batches(buffer: &Buffer, n: u64, within: Duration) {
    let deadline = tokio::time::Instant::now() + within;
    while buffer.stats().pending_batches < n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} batches after {within:?}",
            buffer.stats().pending_batches
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn a_burst_of_frames_is_cut_into_one_batch_when_the_polls_go_quiet() {
    let dir = tempfile::tempdir().unwrap();
    let buffer = open(dir.path());
    // The interval is far away: only the quiet time can cut these batches.
    let (tx, task) = spawn_batcher(&buffer, Duration::from_secs(60), Duration::from_millis(150));
    let started = std::time::Instant::now();
    let cycle1 = [frame(0, 1_000, &[1, 2]), frame(1, 1_003, &[3, 4, 5])];
    for f in &cycle1 {
        tx.send(PollerEvent::Frame(f.clone())).await.unwrap();
    }
    wait_batches(&buffer, 1, Duration::from_secs(30)).await;
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the quiet time, not the interval, cut the batch"
    );
    let cycle2 = [frame(0, 2_000, &[6, 7]), frame(1, 2_001, &[8, 9, 10])];
    for f in &cycle2 {
        tx.send(PollerEvent::Frame(f.clone())).await.unwrap();
    }
    wait_batches(&buffer, 2, Duration::from_secs(30)).await;
    drop(tx);
    task.await.unwrap();
    let records = buffer.pending(None, 10).unwrap();
    assert_eq!(records.len(), 2, "one batch per poll cycle");
    assert_eq!(records[0].block.frames().unwrap(), cycle1);
    assert_eq!(records[1].block.frames().unwrap(), cycle2);
}

#[tokio::test]
async fn frames_that_never_pause_are_cut_at_the_flush_interval() {
    let dir = tempfile::tempdir().unwrap();
    let buffer = open(dir.path());
    let (tx, task) = spawn_batcher(
        &buffer,
        Duration::from_millis(300),
        Duration::from_millis(250),
    );
    // A frame every 20 ms for 1.2 s: never quiet for 250 ms.
    let mut sent = Vec::new();
    for i in 0..60 {
        let f = frame(i % 2, 1_000 + i64::from(i) * 20, &[i64::from(i)]);
        tx.send(PollerEvent::Frame(f.clone())).await.unwrap();
        sent.push(f);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(tx);
    task.await.unwrap();
    let records = buffer.pending(None, 100).unwrap();
    assert!(
        records.len() >= 3,
        "a continuous stream must still be cut every flush_interval: {} batches",
        records.len()
    );
    let mut stored: Vec<Frame> = records
        .iter()
        .flat_map(|r| r.block.frames().unwrap())
        .collect();
    // A batch returns its frames grouped by device; across batches, in order.
    stored.sort_by_key(|f| f.ts_ms);
    assert_eq!(stored, sent, "every frame stored once");
}

#[tokio::test]
async fn a_sparse_site_collects_poll_cycles_until_the_flush_interval() {
    let dir = tempfile::tempdir().unwrap();
    let buffer = open(dir.path());
    let settings = BatcherSettings {
        flush_interval: Duration::from_millis(1500),
        flush_quiet: Duration::from_millis(20),
        max_samples_per_batch: 10_000,
        flush_min_samples: 8,
    };
    let (tx, rx) = mpsc::channel(64);
    let birth = batcher::build_birth(&config(), 4);
    let stats = Arc::new(BatcherStats::default());
    let (batcher, _births) = Batcher::new(rx, Arc::clone(&buffer), settings, birth, [], stats);
    let task = tokio::spawn(batcher.run());
    // Five poll cycles of the tank gauge 100 ms apart, 2 samples each: quiet after every
    // cycle, but short of 8 samples until the fourth.
    let started = std::time::Instant::now();
    let mut sent = Vec::new();
    for i in 0..5 {
        let f = frame(1, 1_000 + i64::from(i) * 100, &[i64::from(i), 7]);
        tx.send(PollerEvent::Frame(f.clone())).await.unwrap();
        sent.push(f);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wait_batches(&buffer, 1, Duration::from_secs(30)).await;
    let first = buffer.pending(None, 10).unwrap();
    assert_eq!(
        first[0].block.frames().unwrap(),
        sent[..4],
        "quiet cuts wait for flush_min_samples"
    );
    // The last cycle (2 samples) is only cut by the flush interval.
    wait_batches(&buffer, 2, Duration::from_secs(30)).await;
    assert!(
        started.elapsed() >= Duration::from_millis(300 + 1500),
        "cut at the interval, after {:?}",
        started.elapsed()
    );
    drop(tx);
    task.await.unwrap();
    let records = buffer.pending(None, 10).unwrap();
    assert_eq!(records.len(), 2);
    assert_eq!(records[1].block.frames().unwrap(), sent[4..]);
}

/// A sparse site's safety readings (H2S here), state changes (a tank's high-level switch)
/// and failing samples do not wait for the flush interval: they are cut with their poll
/// cycle.
#[tokio::test]
async fn urgent_frames_are_cut_with_their_poll_cycle_on_a_sparse_site() {
    let dir = tempfile::tempdir().unwrap();
    let buffer = open(dir.path());
    let settings = BatcherSettings {
        flush_interval: Duration::from_secs(60),
        flush_quiet: Duration::from_millis(20),
        max_samples_per_batch: 10_000,
        flush_min_samples: 200,
    };
    let (tx, rx) = mpsc::channel(64);
    let birth = batcher::build_birth(&config(), 5);
    let stats = Arc::new(BatcherStats::default());
    let (batcher, _births) =
        Batcher::new(rx, Arc::clone(&buffer), settings, birth.clone(), [], stats);
    let task = tokio::spawn(batcher.run());
    // Device 0 is the gas detector: its alias 0 is h2s_ppm.
    let h2s = frame(0, 1_000, &[12]);
    let tank = frame(1, 1_000, &[40, 7]);
    tx.send(PollerEvent::Frame(tank.clone())).await.unwrap();
    tx.send(PollerEvent::Frame(h2s.clone())).await.unwrap();
    wait_batches(&buffer, 1, Duration::from_secs(10)).await;
    let batches = buffer.pending(None, 10).unwrap();
    assert_eq!(batches.len(), 1);
    assert_eq!(
        batches[0].block.frames().unwrap().len(),
        2,
        "the cycle goes with it"
    );
    // A tank sample the device did not answer: also urgent.
    let mut failed = frame(1, 2_000, &[41]);
    failed.samples[0] = Sample {
        metric: 0,
        value: None,
        quality: Quality::Bad,
    };
    tx.send(PollerEvent::Frame(failed)).await.unwrap();
    wait_batches(&buffer, 2, Duration::from_secs(10)).await;
    // The tank's high-level switch changing (a state metric): urgent too.
    let high = birth.devices[1]
        .metrics
        .iter()
        .find(|m| m.canonical == "tank_high_level")
        .expect("the tank gauge reports its high-level switch")
        .alias;
    let switch = Frame {
        device: 1,
        ts_ms: 2_500,
        samples: vec![Sample {
            metric: high,
            value: Some(Value::Int(1)),
            quality: Quality::Good,
        }],
    };
    tx.send(PollerEvent::Frame(switch)).await.unwrap();
    wait_batches(&buffer, 3, Duration::from_secs(10)).await;
    // A plain tank reading waits for the interval (60 s here): nothing more is cut.
    tx.send(PollerEvent::Frame(frame(1, 3_000, &[42])))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(buffer.stats().pending_batches, 3, "a sparse reading waits");
    drop(tx);
    task.await.unwrap();
    assert_eq!(buffer.stats().pending_batches, 4, "shutdown flushes it");
}

#[tokio::test]
async fn device_information_completes_and_updates_the_birth() {
    let dir = tempfile::tempdir().unwrap();
    let buffer = open(dir.path());
    let config = config();
    let birth = batcher::build_birth(&config, 9);
    assert_eq!(birth.devices.len(), 2);
    assert_eq!(birth.devices[1].name, "tank");
    // Metric aliases are profile tag indexes; info tags carry no metric.
    for d in &birth.devices {
        let profile = &config.devices[usize::from(d.alias)].profile;
        for m in &d.metrics {
            let tag = &profile.tags[usize::from(m.alias)];
            assert_eq!(Some(&m.canonical), tag.metric.as_ref());
            assert!(m.kind.is_some(), "{}: kind", m.canonical);
            assert_eq!((m.scale, m.offset), (tag.scale, tag.offset));
        }
    }
    buffer.store_birth(&birth).unwrap();
    let (tx, rx) = mpsc::channel(64);
    let settings = BatcherSettings {
        flush_interval: Duration::from_secs(1),
        flush_quiet: Duration::from_millis(50),
        max_samples_per_batch: 100,
        flush_min_samples: 1,
    };
    let stats = Arc::new(BatcherStats::default());
    let (batcher, mut births) = Batcher::new(
        rx,
        Arc::clone(&buffer),
        settings,
        birth,
        [0, 1],
        Arc::clone(&stats),
    );
    let task = tokio::spawn(batcher.run());
    assert_eq!(births.borrow().missing_info, 2);

    let info = vec![("serial_number".to_string(), "GD-0042".to_string())];
    tx.send(PollerEvent::Info {
        device: 0,
        info: info.clone(),
    })
    .await
    .unwrap();
    tx.send(PollerEvent::Info {
        device: 1,
        info: Vec::new(),
    })
    .await
    .unwrap();
    let state = tokio::time::timeout(
        Duration::from_secs(10),
        births.wait_for(|s| s.missing_info == 0),
    )
    .await
    .unwrap()
    .unwrap()
    .clone();
    assert_eq!(state.birth.devices[0].info, info);
    assert_eq!(buffer.birth(9).unwrap().unwrap().devices[0].info, info);
    assert_eq!(
        stats.births.load(Relaxed),
        1,
        "only a change stores a new birth"
    );
    drop(tx);
    task.await.unwrap();
}
