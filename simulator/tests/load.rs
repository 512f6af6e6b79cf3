//! One process serves 100 wells (400 devices): every device answers a concurrent poll
//! with its expected value.

mod common;

use std::sync::Arc;

use common::*;
use tokio::task::JoinSet;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_wells_four_hundred_devices_all_answer() {
    let sim = Arc::new(
        start(config(
            77,
            100,
            &[
                "rod-pump-controller|esp-drive|plunger-lift-controller",
                "gas-flow-computer",
                "tank-gauge",
                "gas-detector",
            ],
        ))
        .await,
    );
    let endpoints = sim.endpoints();
    assert_eq!(endpoints.len(), 400);
    let mut addrs: Vec<_> = endpoints.iter().map(|e| e.addr).collect();
    addrs.dedup();
    assert_eq!(addrs.len(), 100, "one listener per well");

    // One connection per well, polling its four devices; all wells at once.
    let mut tasks = JoinSet::new();
    for well in endpoints.chunks(4) {
        let well = well.to_vec();
        let sim = Arc::clone(&sim);
        tasks.spawn(async move {
            let mut ctx = connect(well[0].addr, well[0].unit_id).await;
            for e in &well {
                use tokio_modbus::prelude::SlaveContext;
                ctx.set_slave(tokio_modbus::Slave(e.unit_id));
                let p = profile(e);
                // The first numeric tag of the profile: a typical fast-group register.
                let tag = p.tags.iter().find(|t| t.metric.is_some()).unwrap();
                for _ in 0..3 {
                    let (value, before, after) = read_timed(&mut ctx, tag).await;
                    let allowed = expected_between(&sim, &e.device, &tag.name, before, after);
                    assert!(allowed.contains(&value), "{} {}", e.device, tag.name);
                }
            }
            well.len()
        });
    }
    let mut polled = 0;
    while let Some(done) = tasks.join_next().await {
        polled += done.expect("poll task");
    }
    assert_eq!(polled, 400);
    Arc::try_unwrap(sim).expect("tasks done").shutdown().await;
}
