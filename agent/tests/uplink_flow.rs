//! Uplink against real brokers and a test cloud: normal delivery, resend without ack,
//! refused batches (set aside or re-sent after a backoff), live/historical flags, session
//! start order, commands, last will and graceful death.

mod uplink_support;

use std::sync::Arc;
use std::time::Duration;

use agent::batcher::BirthState;
use uplink_support::{
    Agent, Broker, BrokerKind, Cloud, Reply, Seen, command, eventually, open_buffer, uplink_config,
};
use wire::topic::Kind;

const WAIT: Duration = Duration::from_secs(30);

#[test]
#[ignore = "broker child process entry point"]
fn rumqttd_child() {
    uplink_support::rumqttd_child_main();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_birth_updated_during_the_session_is_published_again() {
    let broker = Broker::start(BrokerKind::Rumqttd);
    let cloud = Cloud::start(broker.port).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let first = uplink_support::birth(43);
    let (births_tx, births_rx) = tokio::sync::watch::channel(BirthState {
        birth: Arc::new(first.clone()),
        missing_info: 1,
    });
    let agent = Agent::start_with(
        uplink_config(broker.port, "gw-rebirth"),
        open_buffer(dir.path()),
        43,
        Some(births_rx),
    );
    eventually(WAIT, "first birth", || cloud.with(|s| !s.births.is_empty())).await;

    // A device that was silent at start reports its information.
    let mut updated = first.clone();
    updated.devices[0].info = vec![("serial_number".into(), "RPC-0042".into())];
    births_tx.send_replace(BirthState {
        birth: Arc::new(updated.clone()),
        missing_info: 0,
    });
    eventually(WAIT, "updated birth", || {
        cloud.with(|s| s.births.last() == Some(&updated))
    })
    .await;
    // A birth of another boot is not this session's: not published.
    let mut stranger = updated.clone();
    stranger.boot_id = 99;
    births_tx.send_replace(BirthState {
        birth: Arc::new(stranger),
        missing_info: 0,
    });
    let seq = agent.append(40, 0);
    eventually(WAIT, "data after the stranger", || cloud.has_all(&[seq])).await;
    cloud.with(|s| {
        assert!(s.births.iter().all(|b| b.boot_id == 43));
        assert_eq!(s.births.len(), 2, "one initial birth and one update");
    });
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_batch_is_delivered_after_the_birth_and_deleted_once_acked() {
    let broker = Broker::start(BrokerKind::Rumqttd);
    let cloud = Cloud::start(broker.port).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = Agent::start(
        uplink_config(broker.port, "gw-flow"),
        open_buffer(dir.path()),
        41,
    );
    eventually(WAIT, "birth", || cloud.with(|s| !s.births.is_empty())).await;

    let seqs: Vec<u64> = (0..20).map(|_| agent.append(40, 0)).collect();
    eventually(WAIT, "all batches delivered", || cloud.has_all(&seqs)).await;
    eventually(WAIT, "buffer emptied by acks", || {
        agent.buffer.stats().pending_batches == 0
    })
    .await;

    cloud.with(|s| {
        assert_eq!(
            s.log.first(),
            Some(&Seen::Birth(41)),
            "birth before any data"
        );
        assert_eq!(s.births[0].config_hash, "cfg-41");
        for seq in &seqs {
            let copies = &s.batches[seq];
            // The first copy is live; a re-send after `ack_timeout` on a loaded machine
            // may be old enough to travel as backlog, which is the rule, not a fault.
            assert!(
                !copies[0].historical,
                "seq {seq}: first copy sent as backlog"
            );
            assert!(
                copies.iter().all(|c| c.samples == 40 && c.boot_id == 41),
                "seq {seq}: copies differ"
            );
        }
    });
    let stats = &agent.stats;
    assert!(stats.connected.load(std::sync::atomic::Ordering::Relaxed));
    assert!(
        stats
            .batches_sent
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 20
    );
    assert!(
        stats
            .acks_received
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 20
    );
    // The cloud has sent every ack; the agent counts each once it has applied it.
    eventually(WAIT, "all 800 samples acked", || {
        stats
            .samples_acked
            .load(std::sync::atomic::Ordering::Relaxed)
            == 800
    })
    .await;
    assert!(stats.last_ack_ms.load(std::sync::atomic::Ordering::Relaxed) > 0);
    eventually(WAIT, "window drained", || {
        stats.in_flight.load(std::sync::atomic::Ordering::Relaxed) == 0
    })
    .await;
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unacked_batches_are_resent_after_the_ack_timeout_and_never_deleted() {
    let broker = Broker::start(BrokerKind::Rumqttd);
    let cloud = Cloud::start(broker.port).await;
    cloud.set_acking(false);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = uplink_config(broker.port, "gw-noack");
    cfg.ack_timeout = Duration::from_millis(700);
    let agent = Agent::start(cfg, open_buffer(dir.path()), 42);
    eventually(WAIT, "birth", || cloud.with(|s| !s.births.is_empty())).await;
    let seqs: Vec<u64> = (0..3).map(|_| agent.append(10, 0)).collect();

    eventually(WAIT, "each batch sent at least three times", || {
        cloud.with(|s| {
            seqs.iter()
                .all(|q| s.batches.get(q).is_some_and(|c| c.len() >= 3))
        })
    })
    .await;
    assert_eq!(
        agent.buffer.stats().pending_batches,
        3,
        "a PUBACK deletes nothing"
    );
    assert!(
        agent
            .stats
            .resends
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 6
    );

    cloud.set_acking(true);
    eventually(WAIT, "acks delete the batches", || {
        agent.buffer.stats().pending_batches == 0
    })
    .await;
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backlog_goes_out_oldest_first_as_historical_and_live_batches_are_not_historical() {
    let broker = Broker::start(BrokerKind::Rumqttd);
    let dir = tempfile::tempdir().expect("tempdir");
    let buffer = open_buffer(dir.path());
    // An earlier boot left backlog behind; its birth is still stored.
    buffer
        .store_birth(&uplink_support::birth(7))
        .expect("old birth");
    let old: Vec<u64> = (0..30)
        .map(|i| {
            let created = uplink_support::now_ms() - 600_000 + i * 1000;
            buffer
                .append(created, 7, &uplink_support::block(20, created))
                .expect("append")
        })
        .collect();
    let cloud = Cloud::start(broker.port).await;
    let mut cfg = uplink_config(broker.port, "gw-backlog");
    cfg.backlog_pace = 20.0;
    let agent = Agent::start(cfg, buffer, 43);
    eventually(WAIT, "birth", || cloud.with(|s| !s.births.is_empty())).await;
    let live = agent.append(20, 0);

    eventually(WAIT, "backlog and live delivered", || {
        cloud.has_all(&old) && cloud.has_all(&[live])
    })
    .await;
    cloud.with(|s| {
        for seq in &old {
            let copies = &s.batches[seq];
            assert!(
                copies.iter().all(|c| c.historical && c.boot_id == 7),
                "seq {seq}"
            );
        }
        assert!(
            s.batches[&live]
                .iter()
                .all(|c| !c.historical && c.boot_id == 43)
        );
        let order: Vec<u64> = s
            .log
            .iter()
            .filter_map(|e| match e {
                Seen::Data(seq) if old.contains(seq) => Some(*seq),
                _ => None,
            })
            .collect();
        let mut sorted = order.clone();
        sorted.sort_unstable();
        assert_eq!(order, sorted, "backlog is sent oldest first");
        let live_at = s
            .log
            .iter()
            .position(|e| *e == Seen::Data(live))
            .expect("live seen");
        let last_old = s
            .log
            .iter()
            .rposition(|e| matches!(e, Seen::Data(q) if old.contains(q)))
            .expect("old seen");
        assert!(
            live_at < last_old,
            "the live batch overtook the paced backlog"
        );
    });
    eventually(WAIT, "buffer empty", || {
        agent.buffer.stats().pending_batches == 0
    })
    .await;
    assert_eq!(
        agent.buffer.birth_ids().expect("births"),
        vec![43],
        "boot 7's birth goes with its last batch"
    );
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_are_answered_forwarded_or_refused_without_stopping_the_uplink() {
    let broker = Broker::start(BrokerKind::Rumqttd);
    let cloud = Cloud::start(broker.port).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let buffer = open_buffer(dir.path());
    buffer
        .store_birth(&uplink_support::birth(5))
        .expect("old birth");
    let created = uplink_support::now_ms() - 3_600_000;
    buffer
        .append(created, 5, &uplink_support::block(4, created))
        .expect("old batch");
    cloud.set_acking(false);
    let mut agent = Agent::start(uplink_config(broker.port, "gw-cmd"), buffer, 44);
    eventually(WAIT, "birth", || cloud.with(|s| s.births.len() == 1)).await;
    let (tenant, gw) = ("test", "gw-cmd");

    let rebirth = |id, boot_id| command(id, wire::CommandKind::Rebirth { boot_id });
    cloud.command(tenant, gw, &rebirth(1, None));
    cloud.command(tenant, gw, &rebirth(2, Some(5)));
    cloud.command(tenant, gw, &rebirth(3, Some(999)));
    // A command of a kind this build does not know, with a readable id (kind is the last
    // field of a rebirth without boot id).
    let mut bad = rebirth(4, None).encode();
    assert_eq!(bad[bad.len() - 2..], [0x02, 0x00], "kind field");
    *bad.last_mut().expect("kind") = 0x17;
    cloud.publish_sealed(tenant, gw, Kind::Cmd, &bad);
    cloud.publish_sealed(tenant, gw, Kind::Cmd, b"\xff\xfe not cbor");
    let setpoint = command(
        6,
        wire::CommandKind::WriteSetpoint {
            device: 0,
            metric: 3,
            value: 12.5,
            expected_current: None,
        },
    );
    cloud.command(tenant, gw, &setpoint);

    let forwarded = tokio::time::timeout(WAIT, agent.commands.recv())
        .await
        .expect("setpoint forwarded in time")
        .expect("command channel open");
    assert_eq!(forwarded, setpoint);
    agent
        .results
        .send(wire::CommandResult {
            id: 6,
            ok: true,
            message: "written".into(),
        })
        .await
        .expect("result accepted");

    eventually(WAIT, "five results", || {
        cloud.with(|s| s.results.len() == 5)
    })
    .await;
    cloud.with(|s| {
        let result = |id: u64| s.results.iter().find(|r| r.id == id).expect("result");
        assert!(result(1).ok && result(2).ok && result(6).ok);
        assert!(!result(3).ok && result(3).message.contains("999"));
        assert!(!result(4).ok && result(4).message.contains("undecodable"));
        let boots: Vec<u64> = s.births.iter().map(|b| b.boot_id).collect();
        assert_eq!(boots, vec![44, 44, 5], "current birth, then the stored one");
    });
    assert!(
        agent
            .stats
            .connected
            .load(std::sync::atomic::Ordering::Relaxed)
    );
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_stop_publishes_death_and_a_vanished_agent_gets_its_last_will() {
    let broker = Broker::start(BrokerKind::Rumqttd);
    let cloud = Cloud::start(broker.port).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = Agent::start(
        uplink_config(broker.port, "gw-death"),
        open_buffer(dir.path()),
        45,
    );
    eventually(WAIT, "birth", || cloud.with(|s| !s.births.is_empty())).await;
    agent.stop().await;
    eventually(WAIT, "death on graceful stop", || {
        cloud.with(|s| s.deaths.iter().any(|d| d.boot_id == 45))
    })
    .await;

    let dir = tempfile::tempdir().expect("tempdir");
    let agent = Agent::start(
        uplink_config(broker.port, "gw-will"),
        open_buffer(dir.path()),
        46,
    );
    eventually(WAIT, "second birth", || {
        cloud.with(|s| s.births.iter().any(|b| b.boot_id == 46))
    })
    .await;
    drop(agent); // aborts the task: the socket closes without DISCONNECT
    eventually(WAIT, "last will", || {
        cloud.with(|s| s.deaths.iter().any(|d| d.boot_id == 46))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivers_through_the_system_mosquitto() {
    let cloud = Cloud::start(1883).await;
    let gateway = format!("gw-sys-{}", rand::random::<u16>());
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = Agent::start(uplink_config(1883, &gateway), open_buffer(dir.path()), 47);
    eventually(WAIT, "birth", || {
        cloud.with(|s| s.births.iter().any(|b| b.boot_id == 47))
    })
    .await;
    let seqs: Vec<u64> = (0..5).map(|_| agent.append(40, 0)).collect();
    eventually(WAIT, "delivered and acked", || {
        cloud.has_all(&seqs) && agent.buffer.stats().pending_batches == 0
    })
    .await;
    agent.stop().await;
}

async fn http_get(port: u16, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect to /metrics");
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .expect("request");
    let mut body = String::new();
    s.read_to_string(&mut body).await.expect("response");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_batches_are_set_aside_at_once_or_re_sent_after_a_backoff() {
    let broker = Broker::start(BrokerKind::Rumqttd);
    let cloud = Cloud::start(broker.port).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = uplink_config(broker.port, "gw-refused");
    cfg.ack_timeout = Duration::from_millis(500);
    let agent = Agent::start(cfg, open_buffer(dir.path()), 44);
    eventually(WAIT, "birth", || cloud.with(|s| !s.births.is_empty())).await;

    // The next three seqs: refused for good; refused for now, then stored; ack lost once.
    let first = agent.buffer.stats().next_seq;
    let (refused, busy, lost) = (first, first + 1, first + 2);
    cloud.script(
        refused,
        [Reply::Reject {
            permanent: true,
            reason: wire::Rejected::SEQ_CONFLICT.into(),
        }],
    );
    cloud.script(
        busy,
        [Reply::Reject {
            permanent: false,
            reason: "storage_busy".into(),
        }],
    );
    cloud.script(lost, [Reply::Silent]);
    assert_eq!(agent.append(40, 0), refused);
    assert_eq!(agent.append(40, 0), busy);

    // One round trip: the refusal moved the batch out of the queue.
    eventually(WAIT, "refused batch set aside", || {
        agent.buffer.stats().set_aside_batches == 1
    })
    .await;
    assert_eq!(cloud.copies(refused), 1, "set aside after one round trip");
    assert!(agent.buffer.get(refused).expect("read").is_none());
    let kept = agent.buffer.set_aside_records(10).expect("inspect");
    assert_eq!(
        kept.iter()
            .map(|k| (k.record.seq, k.reason.as_str()))
            .collect::<Vec<_>>(),
        vec![(refused, "seq_conflict")]
    );

    // The retryable refusal is re-sent after its backoff (tens of ms), then stored.
    eventually(WAIT, "busy batch re-sent and acked", || {
        cloud.copies(busy) >= 2 && agent.buffer.get(busy).is_ok_and(|r| r.is_none())
    })
    .await;

    // A batch sent after the refused one, whose ack is lost, is re-sent on the ack timeout:
    // by then the refused batch's ack timeout has passed too, and it was not re-sent.
    assert_eq!(agent.append(40, 0), lost);
    eventually(WAIT, "lost-ack batch re-sent and acked", || {
        cloud.copies(lost) >= 2 && agent.buffer.stats().pending_batches == 0
    })
    .await;
    assert_eq!(
        cloud.copies(refused),
        1,
        "a set-aside batch is never re-sent"
    );

    // Visible in /metrics ...
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let sources = Arc::new(agent::metrics::Sources {
        devices: Vec::new(),
        batcher: Arc::default(),
        buffer: Arc::clone(&agent.buffer),
        boot_id: 44,
        uplink: std::sync::OnceLock::new(),
    });
    sources.uplink.set(Arc::clone(&agent.stats)).expect("once");
    let server = tokio::spawn(agent::metrics::serve(listener, sources));
    let metrics = http_get(port, "/metrics").await;
    server.abort();
    for line in [
        "wellpulse_uplink_batches_rejected_total{reason=\"seq_conflict\"} 1\n",
        "wellpulse_uplink_batches_retry_rejected_total{reason=\"storage_busy\"} 1\n",
        "wellpulse_buffer_set_aside_batches 1\n",
        "wellpulse_buffer_pending_batches 0\n",
    ] {
        assert!(
            metrics.contains(line),
            "/metrics lacks {line:?}:\n{metrics}"
        );
    }

    // ... and in the birth.
    let births = cloud.with(|s| s.births.len());
    cloud.command(
        "test",
        "gw-refused",
        &command(5, wire::CommandKind::Rebirth { boot_id: None }),
    );
    eventually(WAIT, "birth published again", || {
        cloud.with(|s| s.births.len() > births)
    })
    .await;
    let status = cloud
        .with(|s| s.birth_statuses.last().copied().flatten())
        .expect("the birth carries its status");
    assert_eq!(status.set_aside_batches, 1);
    assert_eq!(status.set_aside_bytes, agent.buffer.stats().set_aside_bytes);
    agent.stop().await;
}
