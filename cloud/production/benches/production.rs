//! Production-job benchmarks (`cargo bench -p cloud --bench production`).
//!
//! One well with a tank gauge (oil and water volume) and a gas flow computer (gas, flare
//! and fuel counters), all reporting at **1 Hz** for [`DAYS`] days (5 series × 86,400
//! samples a day), ingested through the ingest transaction, rollups built by maintenance.
//!
//! * `production_derive_1hz_ms_per_well_day`: [`production::derive_well`] over the
//!   days (boundary zones from raw samples, the rest from 1-minute rollups, `derive_day`,
//!   one upsert), per well-day;
//! * `production_emissions_ms_per_source_day`: [`production::derive_emissions`] for
//!   five sources (one metered from the 1 Hz fuel counter), per source-day.
//!
//! Best of [`ROUNDS`] runs on one database, which the bench creates and drops.

use std::time::Instant;

use chrono::{NaiveDate, TimeDelta, Utc};
use production::{self, DerivationSettings};
use store::emissions::{EmissionSource, insert_source};
use store::{BackendChoice, BatchRecord, Db, NewWell, StorageOptions, TelemetryRow, maintenance};
use testkit::scratch::ScratchDb;

use analytics::emissions::factors::{Equipment, Region, Service};
use analytics::emissions::methods::{BleedType, CombustionUnit};
use analytics::emissions::{GasComposition, SourceKind};

const DAYS: i64 = 3;
const ROUNDS: usize = 3;
const ROWS_PER_TX: usize = 100_000;
const METRICS: [&str; 5] = [
    "oil_volume_bbl",
    "water_volume_bbl",
    "gas_volume_total_mcf",
    "flare_gas_mcf",
    "fuel_gas_mcf",
];

fn value(metric: &str, days: f64) -> f64 {
    match metric {
        "oil_volume_bbl" => 200.0 + 100.0 * days,
        "water_volume_bbl" => 50.0 + 40.0 * days,
        "gas_volume_total_mcf" => 10_000.0 + 500.0 * days,
        "flare_gas_mcf" => 100.0 + 12.0 * days,
        _ => 20.0 + 3.0 * days,
    }
}

fn birth() -> wire::Birth {
    let metric = |alias: u16, name: &str| wire::MetricEntry {
        alias,
        canonical: name.into(),
        tag: name.into(),
        unit: if name.ends_with("_bbl") { "bbl" } else { "Mcf" }.into(),
        scale: 1.0,
        offset: 0.0,
        writable: false,
        kind: None,
    };
    let device = |alias: u16, name: &str, metrics: &[&str]| wire::DeviceEntry {
        alias,
        name: name.into(),
        profile: "bench".into(),
        info: vec![("well".into(), "42-329-99999".into())],
        metrics: metrics
            .iter()
            .enumerate()
            .map(|(i, m)| metric(i as u16, m))
            .collect(),
    };
    wire::Birth {
        boot_id: 1,
        ts_ms: 0,
        agent_version: "bench".into(),
        config_hash: "bench".into(),
        devices: vec![
            device(0, "tank", &METRICS[..2]),
            device(1, "meter", &METRICS[2..]),
        ],
    }
}

fn gas() -> GasComposition {
    GasComposition {
        ch4: 0.8,
        c2h6: 0.1,
        c3h8: 0.05,
        c4h10: 0.02,
        c5_plus: 0.01,
        co2: 0.01,
        other: 0.01,
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let scratch = ScratchDb::create("bench_production")
        .await
        .expect("scratch db");
    let db = Db::connect_with(
        scratch.url(),
        StorageOptions {
            backend: BackendChoice::Postgres,
            retention: None,
            ..StorageOptions::default()
        },
    )
    .await
    .expect("connect");
    db.migrate().await.expect("migrate");
    let tenant = db.create_tenant("bench", "Bench").await.unwrap();
    let site = db.create_site(tenant, "pad", None).await.unwrap();
    let well = db
        .create_well(&NewWell {
            tenant,
            site,
            api_number: "42-329-99999",
            name: "bench 1H",
            lease: "",
            field: "",
            county: "",
            state: "TX",
        })
        .await
        .unwrap();
    let gateway = db
        .create_gateway(
            tenant,
            site,
            "gw",
            &store::registry::generate_gateway_secret(),
        )
        .await
        .unwrap();
    let map = db.apply_birth(gateway, &birth(), Utc::now()).await.unwrap();
    let series: Vec<(&str, store::SeriesId)> = METRICS
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let (d, a) = if i < 2 { (0, i) } else { (1, i - 2) };
            (*m, map.get(d, a as u16).unwrap().series_id)
        })
        .collect();

    let from = NaiveDate::from_ymd_opt(2024, 3, 1).unwrap();
    let to = from + TimeDelta::days(DAYS);
    let start = from.and_hms_opt(0, 0, 0).unwrap().and_utc() - TimeDelta::hours(1);
    let seconds = (DAYS * 86_400 + 2 * 3600) as usize;
    let mut rows = Vec::with_capacity(ROWS_PER_TX);
    let mut seq = 0;
    for s in 0..seconds {
        let at = start + TimeDelta::seconds(s as i64);
        let days = s as f64 / 86_400.0;
        for (metric, id) in &series {
            rows.push(TelemetryRow {
                ts_ms: at.timestamp_millis(),
                series_id: *id,
                value: Some(value(metric, days)),
                quality: wire::Quality::Good,
            });
        }
        if rows.len() >= ROWS_PER_TX || s + 1 == seconds {
            seq += 1;
            let mut tx = db.begin_ingest().await.unwrap();
            let mut batch = tx
                .record_batch(BatchRecord {
                    epoch: 0,
                    gateway,
                    seq,
                    boot_id: 1,
                    historical: true,
                    received_at: Utc::now(),
                })
                .unwrap()
                .unwrap();
            for row in rows.drain(..) {
                batch.push(&row).unwrap();
            }
            tx.commit().await.unwrap();
        }
    }
    maintenance::run_once(&db).await.expect("maintenance");

    let mut conn = db.pool().acquire().await.unwrap();
    let base = EmissionSource {
        id: 0,
        site_id: site,
        well_id: Some(well),
        name: String::new(),
        kind: SourceKind::Flare,
        meter_series_id: None,
        gas: gas(),
        hhv_mmbtu_per_scf: None,
        flare_efficiency: None,
        flare_unlit: false,
        combustion_unit: None,
        ch4_kg_per_mmbtu: None,
        region: Region::Western,
        subpart_w_facility: true,
        in_service_from: None,
        in_service_to: None,
        components: Vec::new(),
        pneumatics: Vec::new(),
    };
    let sources = [
        EmissionSource {
            name: "flare".into(),
            ..base.clone()
        },
        EmissionSource {
            name: "heater".into(),
            kind: SourceKind::Combustion,
            meter_series_id: Some(series[4].1),
            combustion_unit: Some(CombustionUnit::Heater),
            ..base.clone()
        },
        EmissionSource {
            name: "vent".into(),
            kind: SourceKind::Vent,
            ..base.clone()
        },
        EmissionSource {
            name: "leaks".into(),
            kind: SourceKind::EquipmentLeaks,
            components: vec![(Equipment::Valve, Service::Gas, 40)],
            ..base.clone()
        },
        EmissionSource {
            name: "pneumatics".into(),
            kind: SourceKind::Pneumatics,
            pneumatics: vec![(BleedType::Intermittent, 4)],
            ..base.clone()
        },
    ];
    for s in &sources {
        insert_source(&mut conn, tenant, s).await.unwrap();
    }

    let settings = DerivationSettings::default();
    let mut best_derive = f64::MAX;
    let mut best_emissions = f64::MAX;
    for _ in 0..ROUNDS {
        let t0 = Instant::now();
        let rows = production::derive_well(&mut conn, tenant, well, from, to, &settings)
            .await
            .unwrap();
        best_derive = best_derive.min(t0.elapsed().as_secs_f64());
        assert_eq!(rows.len() as i64, DAYS * 6);
        let t0 = Instant::now();
        let rows = production::derive_emissions(&mut conn, tenant, from, to, &settings)
            .await
            .unwrap();
        best_emissions = best_emissions.min(t0.elapsed().as_secs_f64());
        assert_eq!(rows.len(), sources.len() * DAYS as usize);
    }
    drop(conn);
    println!(
        "BENCH production_derive_1hz_ms_per_well_day {:.1} ms",
        best_derive * 1000.0 / DAYS as f64
    );
    println!(
        "BENCH production_emissions_ms_per_source_day {:.2} ms",
        best_emissions * 1000.0 / (DAYS as f64 * sources.len() as f64)
    );
    db.pool().close().await;
    scratch.drop_db().await.expect("drop scratch db");
}
