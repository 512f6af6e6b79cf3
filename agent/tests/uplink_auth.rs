//! The agent acts only on acks and commands the cloud sealed for it: forged ones (unsealed,
//! sealed with another gateway's key, or genuine for another gateway or kind and replayed
//! on this gateway's topic) delete nothing and execute nothing, and a genuine command is
//! executed once. Runs against a real broker that lets any client publish anywhere, as a
//! broker without topic ACL does.

mod uplink_support;

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use agent::uplink::UplinkStats;
use tokio::sync::mpsc::error::TryRecvError;
use uplink_support::{
    Agent, Broker, BrokerKind, Cloud, command, eventually, key, open_buffer, seal_for,
    uplink_config,
};
use wire::topic::{Kind, topic};

const WAIT: Duration = Duration::from_secs(30);
const TENANT: &str = "test";

#[test]
#[ignore = "broker child process entry point"]
fn rumqttd_child() {
    uplink_support::rumqttd_child_main();
}

fn count(counts: &std::sync::Mutex<std::collections::BTreeMap<String, u64>>, label: &str) -> u64 {
    UplinkStats::by_reason(counts)
        .into_iter()
        .find(|(l, _)| l == label)
        .map_or(0, |(_, n)| n)
}

/// The ways a hostile client can put a message of `kind` on `victim`'s topic.
fn forgeries(victim: &str, kind: Kind, message: &[u8]) -> Vec<(&'static str, Vec<u8>)> {
    let own = topic(TENANT, victim, kind);
    let other_kind = if kind == Kind::Ack {
        Kind::Cmd
    } else {
        Kind::Ack
    };
    vec![
        ("unsealed", message.to_vec()),
        (
            "sealed with another gateway's key",
            wire::seal::seal(&key("gw-hostile"), &own, message),
        ),
        (
            "genuine for another gateway, replayed here",
            seal_for(&topic(TENANT, "gw-hostile", kind), message),
        ),
        (
            "genuine for another kind, replayed here",
            seal_for(&topic(TENANT, victim, other_kind), message),
        ),
        ("truncated seal", {
            let mut sealed = seal_for(&own, message);
            sealed.pop();
            sealed
        }),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_acks_delete_nothing_and_genuine_ones_still_do() {
    let broker = Broker::start(BrokerKind::Rumqttd);
    let cloud = Cloud::start(broker.port).await;
    cloud.set_acking(false);
    let victim = "gw-ack-victim";
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = Agent::start(
        uplink_config(broker.port, victim),
        open_buffer(dir.path()),
        61,
    );
    eventually(WAIT, "birth", || cloud.with(|s| !s.births.is_empty())).await;
    let seqs: Vec<u64> = (0..3).map(|_| agent.append(5, 0)).collect();
    eventually(WAIT, "batches published", || cloud.has_all(&seqs)).await;

    let ack = wire::Ack::of(seqs.iter().copied()).encode();
    let nack = wire::Ack::rejecting(
        [],
        vec![wire::Rejected::permanent(
            seqs.iter().copied(),
            wire::Rejected::SEQ_CONFLICT,
            "forged",
        )],
    )
    .encode();
    let mut forged = forgeries(victim, Kind::Ack, &ack);
    forged.extend(forgeries(victim, Kind::Ack, &nack));
    for (_, payload) in &forged {
        cloud.publish_raw(TENANT, victim, Kind::Ack, payload.clone());
    }
    let expected = forged.len() as u64;
    eventually(WAIT, "every forged ack seen and ignored", || {
        count(&agent.stats.unauthenticated, "ack") == expected
    })
    .await;
    let stats = agent.buffer.stats();
    assert_eq!(stats.pending_batches, 3, "a forged ack deleted batches");
    assert_eq!(
        stats.set_aside_batches, 0,
        "a forged nack set batches aside"
    );
    assert_eq!(agent.stats.acks_received.load(Relaxed), 0);

    // The cloud's own ack still works.
    cloud.publish_sealed(TENANT, victim, Kind::Ack, &ack);
    eventually(WAIT, "genuine ack deletes the batches", || {
        agent.buffer.stats().pending_batches == 0
    })
    .await;
    assert_eq!(count(&agent.stats.unauthenticated, "ack"), expected);
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_and_replayed_commands_are_never_executed() {
    let broker = Broker::start(BrokerKind::Rumqttd);
    let cloud = Cloud::start(broker.port).await;
    let victim = "gw-cmd-victim";
    let dir = tempfile::tempdir().expect("tempdir");
    let mut agent = Agent::start(
        uplink_config(broker.port, victim),
        open_buffer(dir.path()),
        62,
    );
    eventually(WAIT, "birth", || cloud.with(|s| !s.births.is_empty())).await;

    let setpoint = command(
        10,
        wire::CommandKind::WriteSetpoint {
            device: 0,
            metric: 3,
            value: 9999.0,
            expected_current: None,
        },
    );
    let rogue_config = command(
        11,
        wire::CommandKind::ConfigUpdate {
            toml: "[mqtt]\nurl = \"mqtt://rogue.example:1883\"\n".into(),
        },
    );
    let mut forged = forgeries(victim, Kind::Cmd, &setpoint.encode());
    forged.extend(forgeries(victim, Kind::Cmd, &rogue_config.encode()));
    for (_, payload) in &forged {
        cloud.publish_raw(TENANT, victim, Kind::Cmd, payload.clone());
    }
    let expected = forged.len() as u64;
    eventually(WAIT, "every forged command seen and ignored", || {
        count(&agent.stats.unauthenticated, "cmd") == expected
    })
    .await;
    assert_eq!(agent.commands.try_recv(), Err(TryRecvError::Empty));
    assert!(
        cloud.with(|s| s.results.is_empty()),
        "forged commands are not answered"
    );

    // A genuine command runs once; the same sealed bytes replayed are refused.
    let cmd_topic = topic(TENANT, victim, Kind::Cmd);
    let genuine = seal_for(&cmd_topic, &setpoint.encode());
    cloud.publish_raw(TENANT, victim, Kind::Cmd, genuine.clone());
    let forwarded = tokio::time::timeout(WAIT, agent.commands.recv())
        .await
        .expect("genuine command forwarded in time")
        .expect("command channel open");
    assert_eq!(forwarded, setpoint);
    cloud.publish_raw(TENANT, victim, Kind::Cmd, genuine.clone());
    eventually(WAIT, "replay refused", || {
        count(&agent.stats.commands_refused, "replayed") == 1
    })
    .await;
    assert_eq!(agent.commands.try_recv(), Err(TryRecvError::Empty));

    // ... and after a restart of the agent on the same buffer, too.
    let buffer = agent.buffer.clone();
    agent.stop().await;
    let births = cloud.with(|s| s.births.len());
    let mut agent = Agent::start(uplink_config(broker.port, victim), buffer, 63);
    eventually(WAIT, "birth after the restart", || {
        cloud.with(|s| s.births.len() > births)
    })
    .await;
    cloud.publish_raw(TENANT, victim, Kind::Cmd, genuine);
    eventually(WAIT, "replay after the restart refused", || {
        count(&agent.stats.commands_refused, "replayed") == 1
    })
    .await;
    assert_eq!(agent.commands.try_recv(), Err(TryRecvError::Empty));

    // A genuine but expired command is refused and answered as such.
    let mut late = command(
        12,
        wire::CommandKind::ConfigUpdate {
            toml: String::new(),
        },
    );
    late.expires_ms = uplink_support::now_ms() - 1;
    cloud.command(TENANT, victim, &late);
    eventually(WAIT, "expired command answered", || {
        cloud.with(|s| s.results.iter().any(|r| r.id == 12))
    })
    .await;
    cloud.with(|s| {
        let r = s.results.iter().find(|r| r.id == 12).expect("result");
        assert!(!r.ok && r.message.contains("expired"), "{r:?}");
    });
    assert_eq!(count(&agent.stats.commands_refused, "expired"), 1);
    assert_eq!(agent.commands.try_recv(), Err(TryRecvError::Empty));

    // The uplink still takes genuine commands.
    let next = command(
        13,
        wire::CommandKind::ConfigUpdate {
            toml: "[gateway]\n".into(),
        },
    );
    cloud.command(TENANT, victim, &next);
    let forwarded = tokio::time::timeout(WAIT, agent.commands.recv())
        .await
        .expect("genuine command forwarded in time")
        .expect("command channel open");
    assert_eq!(forwarded, next);
    agent.stop().await;
}
