//! The poller against the simulator over Modbus TCP: values, isolation, exceptions and
//! setpoint writes.

mod poller_common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use agent::poller::PollerEvent;
use firmware_profiles::DataType;
use poller_common::*;
use simulator::{Failure, RawValue};
use wire::Quality;

const ALL_PROFILES: [&str; 6] = [
    "rod-pump-controller",
    "gas-flow-computer",
    "esp-drive",
    "plunger-lift-controller",
    "tank-gauge",
    "gas-detector",
];

/// Every tag of every shipped profile is read, decoded into the raw value the model holds
/// at the poll's time, and every information tag reaches the batcher.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_tag_of_every_profile_matches_the_model() {
    let sim = start_fleet(&ALL_PROFILES, 7).await;
    let endpoints = sim.endpoints();
    let tables: String = endpoints
        .iter()
        .map(|e| device_toml(e, "fast = \"1s\", slow = \"1s\"", ""))
        .collect();
    let config = config_with(&tables);
    let mut h = Harness::start(config.clone());

    // (device alias, tag alias) not yet seen with a matching value.
    let mut missing: BTreeSet<(u16, u16)> = BTreeSet::new();
    let mut info_missing: BTreeSet<u16> = BTreeSet::new();
    for d in &config.devices {
        for (i, t) in d.profile.tags.iter().enumerate() {
            match t.data_type {
                DataType::String { .. } => {
                    info_missing.insert(d.alias);
                }
                _ => {
                    missing.insert((d.alias, i as u16));
                }
            }
        }
    }
    let mut mismatches: BTreeMap<(u16, u16), String> = BTreeMap::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while (!missing.is_empty() || !info_missing.is_empty())
        && tokio::time::Instant::now() < deadline
    {
        match h.next(Duration::from_secs(30)).await {
            PollerEvent::Frame(frame) => {
                let device = &config.devices[usize::from(frame.device)];
                for s in &frame.samples {
                    let tag = &device.profile.tags[usize::from(s.metric)];
                    assert!(
                        answered(s.quality),
                        "{}/{}: quality {:?}",
                        device.name,
                        tag.name,
                        s.quality
                    );
                    let value = s.value.expect("answered samples carry a value");
                    if matches_model(&sim, &device.name, tag, value, frame.ts_ms) {
                        missing.remove(&(frame.device, s.metric));
                        mismatches.remove(&(frame.device, s.metric));
                    } else if missing.contains(&(frame.device, s.metric)) {
                        let expected = sim.expected(&device.name, &tag.name, frame.ts_ms);
                        mismatches.insert(
                            (frame.device, s.metric),
                            format!(
                                "{}/{}: read {value:?}, model {expected:?}",
                                device.name, tag.name
                            ),
                        );
                    }
                }
            }
            PollerEvent::Info { device, info } => {
                let settings = &config.devices[usize::from(device)];
                for (name, text) in &info {
                    let expected = sim.expected(&settings.name, name, simulator::now_ms());
                    let Some(RawValue::Text(expected)) = expected else {
                        panic!("{}/{name}: model has no text", settings.name)
                    };
                    assert_eq!(text, expected.trim(), "{}/{name}", settings.name);
                }
                assert!(
                    !info.is_empty(),
                    "{}: no information tags read",
                    settings.name
                );
                info_missing.remove(&device);
            }
        }
    }
    assert!(
        missing.is_empty(),
        "tags never matched the model: {:?}\nlast mismatches: {:#?}",
        missing
            .iter()
            .map(|(d, t)| format!(
                "{}/{}",
                config.devices[usize::from(*d)].name,
                config.devices[usize::from(*d)].profile.tags[usize::from(*t)].name
            ))
            .collect::<Vec<_>>(),
        mismatches
    );
    assert!(
        info_missing.is_empty(),
        "no information from {info_missing:?}"
    );
    // Planning really coalesced: far fewer requests per cycle than tags.
    let tags: usize = config.devices.iter().map(|d| d.profile.tags.len()).sum();
    let requests: usize = config.devices.iter().map(|d| d.plan.request_count()).sum();
    assert!(requests * 2 < tags, "{requests} requests for {tags} tags");
    h.stop().await;
    sim.shutdown().await;
}

/// A silent device and a slow device on the same simulated well do not delay the healthy
/// device's polls; their failures are counted and reported as bad samples.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_and_slow_devices_do_not_delay_healthy_ones() {
    let sim = start_fleet(&["gas-detector", "gas-detector", "gas-detector"], 11).await;
    let endpoints = sim.endpoints();
    let (healthy, silent, slow) = (&endpoints[0], &endpoints[1], &endpoints[2]);
    sim.inject(
        &silent.device,
        Failure::DeviceSilent,
        Duration::from_secs(600),
    );
    sim.inject(
        &slow.device,
        Failure::SlowResponse(Duration::from_secs(5)),
        Duration::from_secs(600),
    );
    // Failing devices cost 2 s per attempt: a shared queue would stall the healthy one.
    let poll = "fast = \"1s\", slow = \"1s\"";
    let tables = [
        device_toml(healthy, poll, "timeout = \"500ms\"\nheartbeat = \"1s\""),
        device_toml(silent, poll, "timeout = \"2s\"\nheartbeat = \"1s\""),
        device_toml(slow, poll, "timeout = \"2s\"\nheartbeat = \"1s\""),
    ]
    .concat();
    let mut h = Harness::start(config_with(&tables));

    let events = h.collect_until(Duration::from_secs(8), |_| false).await;
    let frames = frames_of(&events, 0);
    let stamps: Vec<i64> = frames
        .iter()
        .map(|f| f.ts_ms)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    assert!(
        stamps.len() >= 6,
        "healthy device polled only {} times in 8 s",
        stamps.len()
    );
    let worst_gap = stamps.windows(2).map(|w| w[1] - w[0]).max().unwrap();
    assert!(worst_gap <= 1900, "healthy device poll gap {worst_gap} ms");
    let m = &h.metrics;
    assert_eq!(m[0].timeouts.load(Relaxed), 0);
    assert!(m[0].up.load(Relaxed));
    assert!(
        m[1].timeouts.load(Relaxed) >= 1,
        "silent device timeouts counted"
    );
    assert!(
        m[2].timeouts.load(Relaxed) >= 1,
        "slow device timeouts counted"
    );
    assert!(!m[1].up.load(Relaxed) && !m[2].up.load(Relaxed));
    // Failed devices report their tags as bad, without values.
    for alias in [1u16, 2] {
        let bad: Vec<_> = frames_of(&events, alias)
            .into_iter()
            .flat_map(|f| f.samples.iter())
            .filter(|s| s.quality == Quality::Bad)
            .collect();
        assert!(!bad.is_empty(), "device {alias} reported no bad samples");
        assert!(bad.iter().all(|s| s.value.is_none()));
    }
    h.stop().await;
    sim.shutdown().await;
}

/// A device answering every request with an exception: bad samples and exception
/// counters, while the connection stays up; values come back once it recovers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exceptions_produce_bad_quality_and_counters() {
    let sim = start_fleet(&["tank-gauge"], 3).await;
    let e = &sim.endpoints()[0];
    let mut h = Harness::start(config_with(&device_toml(
        e,
        "fast = \"1s\", slow = \"1s\"",
        "",
    )));
    // First a good poll.
    let good = h
        .collect_until(Duration::from_secs(20), |ev| {
            frames_of(ev, 0)
                .iter()
                .any(|f| f.samples.iter().any(|s| s.quality == Quality::Good))
        })
        .await;
    assert!(!frames_of(&good, 0).is_empty());
    sim.inject(&e.device, Failure::Exception(0x04), Duration::from_secs(4));
    let during = h
        .collect_until(Duration::from_secs(20), |ev| {
            frames_of(ev, 0)
                .iter()
                .any(|f| f.samples.iter().any(|s| s.quality == Quality::Bad))
        })
        .await;
    let bad: Vec<_> = frames_of(&during, 0)
        .into_iter()
        .flat_map(|f| f.samples.iter())
        .filter(|s| s.quality == Quality::Bad)
        .collect();
    assert!(!bad.is_empty() && bad.iter().all(|s| s.value.is_none()));
    assert!(h.metrics[0].exceptions.load(Relaxed) >= 1);
    assert_eq!(h.metrics[0].timeouts.load(Relaxed), 0);
    assert!(
        h.metrics[0].up.load(Relaxed),
        "an exception does not break the link"
    );
    // Recovery: good samples again.
    let after = h
        .collect_until(Duration::from_secs(30), |ev| {
            frames_of(ev, 0)
                .iter()
                .any(|f| f.samples.iter().any(|s| s.quality == Quality::Good))
        })
        .await;
    assert!(
        frames_of(&after, 0)
            .iter()
            .any(|f| f.samples.iter().any(|s| s.quality == Quality::Good))
    );
    assert_eq!(h.metrics[0].reconnects.load(Relaxed), 0);
    h.stop().await;
    sim.shutdown().await;
}

/// Guarded setpoint writes: refused when not writable, out of range or when the current
/// value differs from the expected one; otherwise written, read back and verified (the
/// simulator's model then holds the new value).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setpoint_write_round_trip() {
    let sim = start_fleet(&["tank-gauge"], 5).await;
    let e = sim.endpoints()[0].clone();
    let config = config_with(&device_toml(&e, "fast = \"1s\", slow = \"1s\"", ""));
    let profile = config.devices[0].profile.clone();
    let (alias, tag) = profile
        .tags
        .iter()
        .enumerate()
        .find(|(_, t)| t.writable && t.valid_range.is_some())
        .expect("a writable tag");
    let alias = alias as u16;
    let (min, max) = tag.valid_range.unwrap();
    let readonly = profile.tags.iter().position(|t| !t.writable).unwrap() as u16;
    let mut h = Harness::start(config.clone());
    h.next(Duration::from_secs(20)).await; // connected and polled
    let router = h.pollers.as_ref().unwrap().router();

    let r = router.write_setpoint(1, 0, readonly, 1.0, None).await;
    assert!(!r.ok && r.message.contains("not writable"), "{r:?}");
    let r = router.write_setpoint(2, 0, alias, max + 10.0, None).await;
    assert!(!r.ok && r.message.contains("valid range"), "{r:?}");
    let r = router.write_setpoint(3, 9, alias, min, None).await;
    assert!(!r.ok && r.message.contains("no device"), "{r:?}");

    let current = sim
        .expected(&e.device, &tag.name, simulator::now_ms())
        .unwrap();
    let current_eng = tag.to_engineering(&current).unwrap();
    let target = if (current_eng - min).abs() > (max - min) / 4.0 {
        min + (max - min) / 8.0
    } else {
        max - (max - min) / 8.0
    };
    let target = tag
        .to_engineering(&tag.from_engineering(target).unwrap())
        .unwrap();
    let r = router
        .write_setpoint(4, 0, alias, target, Some(target))
        .await;
    assert!(
        !r.ok && r.message.contains("write refused"),
        "compare-before-write: {r:?}"
    );
    let r = router
        .write_setpoint(5, 0, alias, target, Some(current_eng))
        .await;
    assert!(r.ok, "{r:?}");
    assert_eq!(r.id, 5);
    let now = sim
        .expected(&e.device, &tag.name, simulator::now_ms())
        .unwrap();
    assert_eq!(tag.to_engineering(&now), Some(target));
    assert_eq!(h.metrics[0].writes_ok.load(Relaxed), 1);
    assert!(h.metrics[0].writes_failed.load(Relaxed) >= 1);
    h.stop().await;
    sim.shutdown().await;
}

/// A profile that bridges holes the device refuses to read (exception 2): the request is
/// split into gap-free reads once, at once, and for good — no bad samples, one exception.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_over_refused_holes_fall_back_to_gap_free_requests() {
    let sim = start_fleet(&["plunger-lift-controller"], 13).await;
    let e = sim.endpoints()[0].clone();
    let dir = tempfile::tempdir().unwrap();
    let shipped = firmware_profiles::builtin()
        .iter()
        .find(|(id, _)| *id == "plunger-lift-controller")
        .unwrap()
        .1;
    let greedy = dir.path().join("plunger-greedy.toml");
    let text: String = shipped
        .lines()
        .map(|l| {
            if l.starts_with("max_gap") {
                "max_gap = 30"
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&greedy, text).unwrap();
    let table = format!(
        "[[device]]\nname = \"{}\"\nprofile_file = \"{}\"\ntcp = \"{}\"\nunit_id = {}\npoll = {{ fast = \"1s\", slow = \"1s\" }}\nheartbeat = \"1s\"\n",
        e.device,
        greedy.display(),
        e.addr,
        e.unit_id
    );
    let config = config_with(&table);
    assert!(
        config.devices[0]
            .plan
            .groups
            .iter()
            .flat_map(|g| &g.requests)
            .any(|r| r.bridges_gaps()),
        "the greedy profile bridges holes"
    );
    let profile = config.devices[0].profile.clone();
    let mut h = Harness::start(config);
    let events = h.collect_until(Duration::from_secs(5), |_| false).await;
    let frames = frames_of(&events, 0);
    assert!(frames.len() >= 4, "{} frames", frames.len());
    let mut seen = BTreeSet::new();
    for f in &frames {
        for s in &f.samples {
            let tag = &profile.tags[usize::from(s.metric)];
            assert!(answered(s.quality), "{}: {:?}", tag.name, s.quality);
            assert!(
                matches_model(&sim, &e.device, tag, s.value.unwrap(), f.ts_ms),
                "{}",
                tag.name
            );
            seen.insert(s.metric);
        }
    }
    assert_eq!(
        seen.len(),
        profile.tags.iter().filter(|t| t.metric.is_some()).count()
    );
    assert_eq!(
        h.metrics[0].exceptions.load(Relaxed),
        1,
        "split once, then no more refusals"
    );
    h.stop().await;
    sim.shutdown().await;
}
