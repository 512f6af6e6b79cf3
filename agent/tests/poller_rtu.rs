//! The poller over Modbus RTU: the simulator serves a device on one end of a virtual
//! serial pair (socat), the agent's bus task polls the other end.

mod poller_common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use agent::poller::PollerEvent;
use poller_common::*;

/// A `socat` pty pair; killed on drop.
struct SerialPair {
    child: Child,
    a: PathBuf,
    b: PathBuf,
}

impl SerialPair {
    fn new(dir: &Path) -> SerialPair {
        let (a, b) = (dir.join("sim-tty"), dir.join("agent-tty"));
        let child = Command::new("socat")
            .arg("-d")
            .arg("-d")
            .arg(format!("pty,raw,echo=0,link={}", a.display()))
            .arg(format!("pty,raw,echo=0,link={}", b.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("socat is installed");
        let deadline = Instant::now() + Duration::from_secs(20);
        while !(a.exists() && b.exists()) {
            assert!(
                Instant::now() < deadline,
                "socat did not create the pty pair"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        SerialPair { child, a, b }
    }
}

impl Drop for SerialPair {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtu_bus_over_virtual_serial_pair() {
    let dir = tempfile::tempdir().unwrap();
    let pair = SerialPair::new(dir.path());
    let sim = start_fleet(&["gas-detector"], 21).await;
    let e = sim.endpoints()[0].clone();
    sim.serve_rtu(&e.device, &pair.a)
        .await
        .expect("simulator serves RTU");
    let tables = format!(
        "[[bus]]\nname = \"rs485\"\nport = \"{}\"\ninter_request_delay = \"5ms\"\n\n\
         [[device]]\nname = \"{}\"\nprofile = \"{}\"\nrtu = \"rs485\"\nunit_id = {}\n\
         poll = {{ fast = \"1s\", slow = \"1s\" }}\n",
        pair.b.display(),
        e.device,
        e.profile,
        e.unit_id
    );
    let config = config_with(&tables);
    let profile = config.devices[0].profile.clone();
    let polled = profile.tags.iter().filter(|t| t.metric.is_some()).count();
    let mut h = Harness::start(config);

    let mut matched = std::collections::BTreeSet::new();
    let mut info = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while (matched.len() < polled || !info) && tokio::time::Instant::now() < deadline {
        match h.next(Duration::from_secs(30)).await {
            PollerEvent::Frame(f) => {
                for s in &f.samples {
                    let tag = &profile.tags[usize::from(s.metric)];
                    assert!(answered(s.quality), "{}: {:?}", tag.name, s.quality);
                    if matches_model(&sim, &e.device, tag, s.value.unwrap(), f.ts_ms) {
                        matched.insert(s.metric);
                    }
                }
            }
            PollerEvent::Info { info: pairs, .. } => info = !pairs.is_empty(),
        }
    }
    assert_eq!(matched.len(), polled, "tags matching the model over RTU");
    assert!(info, "information tags read over RTU");
    assert_eq!(h.metrics[0].timeouts.load(Relaxed), 0);

    // A setpoint write over the serial line.
    let (alias, tag) = profile
        .tags
        .iter()
        .enumerate()
        .find(|(_, t)| t.writable && t.valid_range.is_some())
        .unwrap();
    let (min, max) = tag.valid_range.unwrap();
    let target = tag
        .to_engineering(&tag.from_engineering((min + max) / 2.0).unwrap())
        .unwrap();
    let r = h
        .pollers
        .as_ref()
        .unwrap()
        .router()
        .write_setpoint(1, 0, alias as u16, target, None)
        .await;
    assert!(r.ok, "{r:?}");
    let now = sim
        .expected(&e.device, &tag.name, simulator::now_ms())
        .unwrap();
    assert_eq!(tag.to_engineering(&now), Some(target));
    h.stop().await;
    sim.shutdown().await;
}

/// One bus, one queue: a device that never answers (a unit id nobody serves) costs the
/// bus a timeout per backoff period, while its healthy neighbour keeps being polled with
/// good values.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_device_on_the_bus_does_not_starve_its_neighbour() {
    let dir = tempfile::tempdir().unwrap();
    let pair = SerialPair::new(dir.path());
    let sim = start_fleet(&["tank-gauge"], 23).await;
    let e = sim.endpoints()[0].clone();
    sim.serve_rtu(&e.device, &pair.a)
        .await
        .expect("simulator serves RTU");
    let device = |name: &str, unit: u8| {
        format!(
            "[[device]]\nname = \"{name}\"\nprofile = \"{}\"\nrtu = \"rs485\"\nunit_id = {unit}\n\
             poll = {{ fast = \"1s\", slow = \"1s\" }}\ntimeout = \"300ms\"\nheartbeat = \"1s\"\n",
            e.profile
        )
    };
    let tables = format!(
        "[[bus]]\nname = \"rs485\"\nport = \"{}\"\ninter_request_delay = \"5ms\"\n\n{}{}",
        pair.b.display(),
        device("ghost", 7),
        device(&e.device, e.unit_id)
    );
    let config = config_with(&tables);
    let profile = config.devices[1].profile.clone();
    let mut h = Harness::start(config);
    let events = h.collect_until(Duration::from_secs(10), |_| false).await;

    let healthy = frames_of(&events, 1);
    let polls: std::collections::BTreeSet<i64> = healthy.iter().map(|f| f.ts_ms / 500).collect();
    assert!(
        polls.len() >= 6,
        "healthy device polled {} times in 10 s",
        polls.len()
    );
    for f in &healthy {
        for s in &f.samples {
            let tag = &profile.tags[usize::from(s.metric)];
            assert!(answered(s.quality), "{}: {:?}", tag.name, s.quality);
            assert!(
                matches_model(&sim, &e.device, tag, s.value.unwrap(), f.ts_ms),
                "{}",
                tag.name
            );
        }
    }
    let ghost_bad = frames_of(&events, 0)
        .iter()
        .flat_map(|f| f.samples.iter())
        .filter(|s| s.quality == wire::Quality::Bad)
        .count();
    assert!(ghost_bad > 0, "the silent device is reported bad");
    assert!(h.metrics[0].timeouts.load(Relaxed) >= 1);
    assert!(
        h.metrics[0].timeouts.load(Relaxed) <= 5,
        "backoff limits the bus time spent on the dead device"
    );
    assert_eq!(h.metrics[1].timeouts.load(Relaxed), 0);
    h.stop().await;
    sim.shutdown().await;
}
