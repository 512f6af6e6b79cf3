//! The whole agent (`agent::run`) against the simulator and an embedded rumqttd with an
//! acking subscriber: birth, data, /metrics, a setpoint command over MQTT, graceful
//! shutdown with Death.

mod agent_common;

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use agent_common::{Cloud, Received, command, free_port, mqtt_credentials, start_broker};
use sha2::{Digest, Sha256};
use simulator::{FleetConfig, Simulator};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wire::Quality;

async fn http_get(port: u16, path: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).await.unwrap();
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_polls_buffers_ships_and_answers_commands() {
    let broker = start_broker();
    let fleet = FleetConfig {
        seed: 42,
        wells: 1,
        devices_per_well: vec!["gas-detector".into(), "tank-gauge".into()],
        ..FleetConfig::default()
    };
    let sim = Simulator::start(fleet, IpAddr::V4(Ipv4Addr::LOCALHOST))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let metrics_port = free_port();
    let credentials = mqtt_credentials();
    let mut text = format!(
        "[gateway]\ntenant = \"e2e\"\nid = \"gw-e2e\"\ndata_dir = \"state\"\n\n\
         [mqtt]\nurl = \"mqtt://127.0.0.1:{broker}\"\nack_timeout = \"5s\"\n{credentials}\n\
         [buffer]\nflush_interval = \"500ms\"\n\n[metrics]\nlisten = \"127.0.0.1:{metrics_port}\"\n\n"
    );
    for e in sim.endpoints() {
        text.push_str(&format!(
            "[[device]]\nname = \"{}\"\nprofile = \"{}\"\ntcp = \"{}\"\nunit_id = {}\npoll = {{ fast = \"1s\", slow = \"5s\" }}\n\n",
            e.device, e.profile, e.addr, e.unit_id
        ));
    }
    let config_path = dir.path().join("agent.toml");
    std::fs::write(&config_path, &text).unwrap();
    let mut cloud = Cloud::start(broker, "e2e", "gw-e2e").await;

    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let path = config_path.clone();
    let agent = tokio::spawn(async move {
        agent::run(&path, async {
            let _ = stopped.await;
        })
        .await
    });

    // Birth, then batches from both devices, all from this boot.
    let mut birth = None;
    let mut devices_seen = BTreeSet::new();
    let mut samples = 0usize;
    while devices_seen.len() < 2 || samples < 20 {
        match cloud
            .next(Duration::from_secs(60))
            .await
            .expect("gateway publishes")
        {
            Received::Birth(b) => birth = Some(b),
            Received::Batch(batch, _) => {
                let b = birth.as_ref().expect("birth before data");
                assert_eq!(batch.header.boot_id, b.boot_id);
                assert!(!batch.header.historical);
                for f in &batch.frames {
                    devices_seen.insert(f.device);
                    for s in &f.samples {
                        assert_eq!(s.quality, Quality::Good, "{s:?}");
                        samples += 1;
                    }
                }
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    let birth = birth.unwrap();
    assert_eq!(
        birth.config_hash,
        hex::encode(Sha256::digest(text.as_bytes()))
    );
    assert_eq!(birth.devices.len(), 2);
    assert!(birth.devices.iter().all(|d| !d.metrics.is_empty()));
    assert!(
        birth.devices.iter().all(|d| !d.info.is_empty()),
        "device information tags in the birth: {:?}",
        birth.devices
    );

    // /metrics and /healthz.
    let metrics = http_get(metrics_port, "/metrics").await;
    assert!(metrics.starts_with("HTTP/1.1 200"), "{metrics}");
    for family in [
        "wellpulse_device_requests_total{device=",
        "wellpulse_device_poll_latency_seconds_count{device=",
        "wellpulse_buffer_pending_batches",
        "wellpulse_uplink_acks_total",
        "wellpulse_mqtt_connected 1",
    ] {
        assert!(metrics.contains(family), "/metrics lacks {family}");
    }
    assert!(
        http_get(metrics_port, "/healthz")
            .await
            .starts_with("HTTP/1.1 200")
    );
    assert!(
        http_get(metrics_port, "/nope")
            .await
            .starts_with("HTTP/1.1 404")
    );

    // A setpoint write through MQTT: the gas detector's writable alarm threshold.
    let detector = &birth.devices[0];
    let setpoint = detector
        .metrics
        .iter()
        .find(|m| m.writable && m.tag.contains("setpoint"))
        .expect("writable metric");
    let command = command(
        77,
        wire::CommandKind::WriteSetpoint {
            device: detector.alias,
            metric: setpoint.alias,
            value: 15.0,
            expected_current: None,
        },
    );
    cloud.command(&command).await;
    let result = loop {
        match cloud
            .next(Duration::from_secs(60))
            .await
            .expect("command result")
        {
            Received::Result(r) => break r,
            _ => continue,
        }
    };
    assert_eq!(result.id, 77);
    assert!(result.ok, "{result:?}");

    // Graceful shutdown: the agent returns and announces its death.
    stop.send(()).unwrap();
    let outcome = tokio::time::timeout(Duration::from_secs(30), agent)
        .await
        .expect("agent stops");
    outcome.unwrap().expect("agent exits cleanly");
    let death = loop {
        match cloud
            .next(Duration::from_secs(30))
            .await
            .expect("death published")
        {
            Received::Death(d) => break d,
            _ => continue,
        }
    };
    assert_eq!(death.boot_id, birth.boot_id);
    sim.shutdown().await;
}

/// A config update over MQTT: an invalid one is refused with the reason and changes
/// nothing; a valid one is written over the config file and a new session (new boot id,
/// new config hash) starts in the same process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_update_is_validated_written_and_applied() {
    let broker = start_broker();
    let fleet = FleetConfig {
        seed: 4,
        wells: 1,
        devices_per_well: vec!["tank-gauge".into()],
        ..FleetConfig::default()
    };
    let sim = Simulator::start(fleet, IpAddr::V4(Ipv4Addr::LOCALHOST))
        .await
        .unwrap();
    let e = sim.endpoints()[0].clone();
    let dir = tempfile::tempdir().unwrap();
    let credentials = mqtt_credentials();
    let config_for = |slow: &str| {
        format!(
            "[gateway]\ntenant = \"e2e\"\nid = \"gw-upd\"\ndata_dir = \"state\"\n\n\
             [mqtt]\nurl = \"mqtt://127.0.0.1:{broker}\"\n{credentials}\n[metrics]\nlisten = \"127.0.0.1:0\"\n\n\
             [[device]]\nname = \"tank\"\nprofile = \"tank-gauge\"\ntcp = \"{}\"\nunit_id = {}\n\
             poll = {{ fast = \"1s\", slow = \"{slow}\" }}\n",
            e.addr, e.unit_id
        )
    };
    let original = config_for("60s");
    let path = dir.path().join("agent.toml");
    std::fs::write(&path, &original).unwrap();
    let mut cloud = Cloud::start(broker, "e2e", "gw-upd").await;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let agent_path = path.clone();
    let agent = tokio::spawn(async move {
        agent::run(&agent_path, async {
            let _ = stopped.await;
        })
        .await
    });
    let first = next_birth(&mut cloud).await;

    let update = |id, toml: String| command(id, wire::CommandKind::ConfigUpdate { toml });
    cloud
        .command(&update(1, original.replace("tank-gauge", "tank-gauje")))
        .await;
    let refused = next_result(&mut cloud).await;
    assert!(
        !refused.ok && refused.message.contains("unknown profile"),
        "{refused:?}"
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), original);

    let updated = config_for("30s");
    cloud.command(&update(2, updated.clone())).await;
    let applied = next_result(&mut cloud).await;
    assert!(applied.ok, "{applied:?}");
    let second = next_birth(&mut cloud).await;
    assert_ne!(second.boot_id, first.boot_id);
    assert_eq!(
        second.config_hash,
        hex::encode(Sha256::digest(updated.as_bytes()))
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), updated);
    assert_eq!(
        std::fs::read_to_string(path.with_extension("toml.bak")).unwrap(),
        original
    );
    // Data flows in the new session.
    loop {
        if let Received::Batch(b, _) = cloud.next(Duration::from_secs(60)).await.expect("data")
            && b.header.boot_id == second.boot_id
        {
            break;
        }
    }
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(30), agent)
        .await
        .expect("agent stops")
        .unwrap()
        .expect("clean exit");
    sim.shutdown().await;
}

async fn next_birth(cloud: &mut Cloud) -> wire::Birth {
    loop {
        if let Received::Birth(b) = cloud.next(Duration::from_secs(60)).await.expect("birth") {
            return b;
        }
    }
}

async fn next_result(cloud: &mut Cloud) -> wire::CommandResult {
    loop {
        if let Received::Result(r) = cloud.next(Duration::from_secs(60)).await.expect("result") {
            return r;
        }
    }
}
