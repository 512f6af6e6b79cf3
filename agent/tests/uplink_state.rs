//! The agent's reaction to the cloud's readiness ([`wire::state`]), through a real broker:
//! batches published while no ingester was subscribed are re-sent as soon as one comes
//! online (live data included, not after `ack_timeout`); stale, repeated and retained
//! states re-send nothing; "offline" stops nothing; and without any state (an older
//! cloud) delivery falls back to the ack timeout.

mod uplink_support;

use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use agent::uplink::UplinkStats;
use uplink_support::{Agent, Broker, BrokerKind, Cloud, eventually, open_buffer, uplink_config};
use wire::CloudState;

#[test]
#[ignore = "broker child process entry point"]
fn rumqttd_child() {
    uplink_support::rumqttd_child_main();
}

fn ignored(stats: &UplinkStats, reason: &str) -> u64 {
    UplinkStats::by_reason(&stats.cloud_states_ignored)
        .into_iter()
        .find(|(r, _)| r == reason)
        .map_or(0, |(_, n)| n)
}

async fn lost_batches_are_resent_when_the_cloud_comes_online(kind: BrokerKind) {
    let broker = Broker::start(kind);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = uplink_config(broker.port, "gw-late-cloud");
    // Far beyond the test: only the cloud's "online" can bring the lost batches back.
    cfg.ack_timeout = Duration::from_secs(120);
    cfg.in_flight_window = 4;
    let agent = Agent::start(cfg, open_buffer(dir.path()), 7);
    eventually(Duration::from_secs(30), "agent connected", || {
        agent.stats.connected.load(Relaxed)
    })
    .await;
    // Nobody is subscribed: the broker discards these, and they fill the window.
    let lost: Vec<u64> = (0..4).map(|_| agent.append(40, 0)).collect();
    eventually(Duration::from_secs(30), "lost batches published", || {
        agent.stats.batches_sent.load(Relaxed) >= 4 && agent.stats.in_flight.load(Relaxed) == 4
    })
    .await;
    // Live data behind a full window of lost batches.
    let live = agent.append(40, 0);

    let online = Instant::now();
    let cloud = Cloud::start_announcing(broker.port, "ingester-1").await;
    let mut all = lost.clone();
    all.push(live);
    eventually(Duration::from_secs(20), "every batch delivered", || {
        cloud.has_all(&all)
    })
    .await;
    let took = online.elapsed();
    assert!(
        took < Duration::from_secs(10),
        "{kind:?}: delivered {took:?} after the cloud came online"
    );
    assert!(
        cloud.with(|s| s.batches[&live][0].at) - online < Duration::from_secs(10),
        "live data waited"
    );
    assert_eq!(agent.stats.cloud_online_resends.load(Relaxed), 1);
    assert_eq!(agent.stats.cloud_online_ingesters.load(Relaxed), 1);
    assert_eq!(
        agent.stats.resends.load(Relaxed),
        0,
        "no ack timeout involved"
    );
    eventually(Duration::from_secs(20), "buffer drained", || {
        agent.buffer.stats().pending_batches == 0
    })
    .await;
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_batches_are_resent_when_the_cloud_comes_online_rumqttd() {
    lost_batches_are_resent_when_the_cloud_comes_online(BrokerKind::Rumqttd).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_batches_are_resent_when_the_cloud_comes_online_mosquitto() {
    lost_batches_are_resent_when_the_cloud_comes_online(BrokerKind::Mosquitto).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_repeated_retained_and_offline_states_resend_nothing() {
    let broker = Broker::start(BrokerKind::Rumqttd);
    let cloud = Cloud::start_announcing(broker.port, "ingester-a").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = uplink_config(broker.port, "gw-stale");
    cfg.ack_timeout = Duration::from_secs(120);
    let agent = Agent::start(cfg, open_buffer(dir.path()), 8);
    // The cloud was online before the agent subscribed: its retained "online" is noted,
    // and the re-send at CONNACK already covered it.
    eventually(Duration::from_secs(30), "retained online seen", || {
        agent.stats.cloud_online_ingesters.load(Relaxed) == 1
    })
    .await;
    assert_eq!(agent.stats.cloud_online_resends.load(Relaxed), 0);

    cloud.set_acking(false);
    let seq = agent.append(40, 0);
    eventually(Duration::from_secs(30), "first copy", || {
        cloud.copies(seq) == 1
    })
    .await;

    // A second ingester: its session 500 ended, then an older session's "online"
    // arrives late, then the ended session's "online" again.
    let b = "ingester-b";
    cloud.publish_state(
        b,
        CloudState {
            online: false,
            session_ms: 500,
        },
        false,
    );
    cloud.publish_state(
        b,
        CloudState {
            online: true,
            session_ms: 400,
        },
        false,
    );
    cloud.publish_state(
        b,
        CloudState {
            online: true,
            session_ms: 500,
        },
        false,
    );
    eventually(Duration::from_secs(30), "stale states ignored", || {
        ignored(&agent.stats, "stale") == 2
    })
    .await;
    // A malformed state is counted and ignored too.
    cloud.publish_raw_state(b, vec![0xa1, 0x00]);
    eventually(Duration::from_secs(30), "malformed state ignored", || {
        ignored(&agent.stats, "malformed") == 1
    })
    .await;
    assert_eq!(agent.stats.cloud_online_resends.load(Relaxed), 0);
    assert_eq!(cloud.copies(seq), 1, "nothing re-sent");
    assert_eq!(agent.stats.cloud_online_ingesters.load(Relaxed), 1);

    // A new session of b comes online: everything unacked goes again, at once.
    cloud.publish_state(
        b,
        CloudState {
            online: true,
            session_ms: 501,
        },
        false,
    );
    eventually(Duration::from_secs(30), "re-sent on online", || {
        cloud.copies(seq) == 2
    })
    .await;
    assert_eq!(agent.stats.cloud_online_resends.load(Relaxed), 1);
    assert_eq!(agent.stats.cloud_online_ingesters.load(Relaxed), 2);

    // b goes offline: a is still online, and nothing stops.
    cloud.publish_state(
        b,
        CloudState {
            online: false,
            session_ms: 501,
        },
        false,
    );
    eventually(Duration::from_secs(30), "b offline", || {
        agent.stats.cloud_online_ingesters.load(Relaxed) == 1
    })
    .await;
    cloud.set_acking(true);
    let next = agent.append(40, 0);
    eventually(
        Duration::from_secs(30),
        "still sending after an offline",
        || cloud.copies(next) == 1,
    )
    .await;
    assert_eq!(agent.stats.cloud_online_resends.load(Relaxed), 1);
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_any_cloud_state_delivery_falls_back_to_the_ack_timeout() {
    let broker = Broker::start(BrokerKind::Rumqttd);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = uplink_config(broker.port, "gw-old-cloud");
    cfg.ack_timeout = Duration::from_secs(2);
    let agent = Agent::start(cfg, open_buffer(dir.path()), 9);
    eventually(Duration::from_secs(30), "agent connected", || {
        agent.stats.connected.load(Relaxed)
    })
    .await;
    let seq = agent.append(40, 0);
    eventually(Duration::from_secs(30), "published into the void", || {
        agent.stats.batches_sent.load(Relaxed) >= 1
    })
    .await;
    let sent = Instant::now();
    // A cloud that publishes no state (older ingesters).
    let cloud = Cloud::start(broker.port).await;
    eventually(
        Duration::from_secs(30),
        "re-sent after the ack timeout",
        || cloud.copies(seq) >= 1,
    )
    .await;
    assert!(agent.stats.resends.load(Relaxed) >= 1);
    assert_eq!(agent.stats.cloud_online_resends.load(Relaxed), 0);
    assert_eq!(agent.stats.cloud_online_ingesters.load(Relaxed), 0);
    assert!(
        cloud.with(|s| s.batches[&seq][0].at) - sent >= Duration::from_millis(1500),
        "delivered before the ack timeout: the first copy was not lost"
    );
    agent.stop().await;
}
