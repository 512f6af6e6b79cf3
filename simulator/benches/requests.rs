//! Per-request cost of the simulator, measured over real sockets.
//!
//! Prints one `BENCH <name> <value> <unit>` line per figure:
//! * `sim_read_cached_us` — one FC3 read of a whole rod pump controller block (36 registers)
//!   on one connection, image already rendered for the current second;
//! * `sim_read_render_us` — the same read when every request falls in a new simulated
//!   second (time scale 200 000), so each one renders the device's register image;
//! * `sim_expected_tag_us` — `expected()` for one tag (model evaluation, no cache), mixed
//!   fleet without failures; `sim_expected_tag_busy_us` — the same with a failure schedule of
//!   4 failures per device per day (every integral crosses many failure windows);
//! * `sim_fleet_reads_per_s` — 100 wells / 400 devices, one connection per well polling
//!   its four devices back to back, all wells concurrently.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use simulator::{FleetConfig, Simulator};
use tokio_modbus::prelude::*;

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn cfg(wells: usize, time_scale: f64, devices: &[&str]) -> FleetConfig {
    FleetConfig {
        seed: 1,
        wells,
        time_scale,
        devices_per_well: devices.iter().map(|d| (*d).to_owned()).collect(),
        ..FleetConfig::default()
    }
}

async fn read_loop_us(time_scale: f64, n: u32) -> f64 {
    let sim = Simulator::start(cfg(1, time_scale, &["rod-pump-controller"]), LOCALHOST)
        .await
        .expect("start");
    let e = &sim.endpoints()[0];
    let mut ctx = tokio_modbus::client::tcp::connect_slave(e.addr, Slave(e.unit_id))
        .await
        .expect("connect");
    for _ in 0..100 {
        ctx.read_holding_registers(0, 36).await.unwrap().unwrap();
    }
    let started = Instant::now();
    for _ in 0..n {
        ctx.read_holding_registers(0, 36).await.unwrap().unwrap();
    }
    let us = started.elapsed().as_secs_f64() * 1e6 / f64::from(n);
    sim.shutdown().await;
    us
}

async fn expected_us(failures_per_day: f64) -> f64 {
    let mut config = cfg(
        4,
        1.0,
        &[
            "rod-pump-controller|esp-drive|plunger-lift-controller",
            "gas-flow-computer",
            "tank-gauge",
            "gas-detector",
        ],
    );
    config.failures.rate_per_day = failures_per_day;
    // Start the schedule three days back so that "now" lies inside it.
    config.clock_origin =
        Some(std::time::SystemTime::now() - std::time::Duration::from_secs(3 * 86_400));
    let sim = Simulator::start(config, LOCALHOST).await.expect("start");
    let mut tags = Vec::new();
    for e in sim.endpoints() {
        let profile = firmware_profiles::builtin_profile(&e.profile).unwrap();
        for t in profile.tags {
            tags.push((e.device.clone(), t.name));
        }
    }
    let now = simulator::now_ms();
    let started = Instant::now();
    let mut n = 0u32;
    for step in 0..20 {
        for (device, tag) in &tags {
            std::hint::black_box(sim.expected(device, tag, now + step * 1000));
            n += 1;
        }
    }
    let us = started.elapsed().as_secs_f64() * 1e6 / f64::from(n);
    sim.shutdown().await;
    us
}

async fn fleet_reads_per_s() -> f64 {
    let sim = Simulator::start(
        cfg(
            100,
            1.0,
            &[
                "rod-pump-controller|esp-drive|plunger-lift-controller",
                "gas-flow-computer",
                "tank-gauge",
                "gas-detector",
            ],
        ),
        LOCALHOST,
    )
    .await
    .expect("start");
    let endpoints = sim.endpoints();
    let rounds = 25;
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for well in endpoints.chunks(4) {
        let well = well.to_vec();
        tasks.spawn(async move {
            let mut ctx = tokio_modbus::client::tcp::connect_slave(well[0].addr, Slave(1))
                .await
                .expect("connect");
            let mut reads = 0u64;
            for _ in 0..rounds {
                for e in &well {
                    ctx.set_slave(Slave(e.unit_id));
                    let profile = firmware_profiles::builtin_profile(&e.profile).unwrap();
                    let tag = &profile.tags[0];
                    let n = tag.register_count();
                    let ok = match tag.register {
                        firmware_profiles::RegisterType::InputRegister => ctx
                            .read_input_registers(tag.address, n)
                            .await
                            .unwrap()
                            .is_ok(),
                        _ => ctx
                            .read_holding_registers(tag.address, n)
                            .await
                            .unwrap()
                            .is_ok(),
                    };
                    assert!(ok);
                    reads += 1;
                }
            }
            reads
        });
    }
    let mut reads = 0;
    while let Some(r) = tasks.join_next().await {
        reads += r.expect("task");
    }
    let per_s = reads as f64 / started.elapsed().as_secs_f64();
    sim.shutdown().await;
    per_s
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        println!(
            "BENCH sim_read_cached_us {:.1} us",
            read_loop_us(1.0, 5000).await
        );
        println!(
            "BENCH sim_read_render_us {:.1} us",
            read_loop_us(5000.0, 2000).await
        );
        println!("BENCH sim_expected_tag_us {:.2} us", expected_us(0.0).await);
        println!(
            "BENCH sim_expected_tag_busy_us {:.2} us",
            expected_us(4.0).await
        );
        println!(
            "BENCH sim_fleet_reads_per_s {:.0} req/s",
            fleet_reads_per_s().await
        );
    });
}
