//! Seeds a tenant with rod-pump wells whose telemetry wears toward failures, for the
//! failure-risk API: the daily figures of `ml::wear` (rod-pump wells only) ingested as two
//! samples a day per metric through the ingest transaction, the failures and workovers as
//! interventions, then storage maintenance so the daily rollups exist.

use chrono::{NaiveDate, TimeDelta, Utc};
use ml::maintenance::Lift;
use ml::wear::{WearFleet, WearOptions};
use store::interventions::{self, InterventionFields};
use store::{BatchRecord, Db, NewWell, SiteId, TelemetryRow, TenantId, WellId};
use wire::Quality;

/// Metrics of the seeded rod-pump controllers, in alias order.
const METRICS: [(&str, &str); 5] = [
    ("pump_fillage_pct", "%"),
    ("rod_load_peak_lbf", "lbf"),
    ("rod_load_min_lbf", "lbf"),
    ("pump_runtime_today_hr", "h"),
    ("pump_cycles_today", "count"),
];

/// What [`seed_rod_pumps`] made.
#[derive(Debug, Clone)]
pub struct SeededRisk {
    /// Wells, in order.
    pub wells: Vec<WellId>,
    /// Failures recorded.
    pub failures: usize,
}

/// `wells` rod-pump wells at a new site of `tenant` with `days` days of history ending
/// yesterday (UTC). API numbers `42-329-6xxxx`.
pub async fn seed_rod_pumps(
    db: &Db,
    tenant: TenantId,
    site_name: &str,
    wells: usize,
    days: usize,
) -> SeededRisk {
    let fleet = WearFleet::generate(&WearOptions {
        wells: wells * 3,
        days,
        seed: 11,
        start: Utc::now().date_naive() - TimeDelta::days(days as i64),
        ..WearOptions::default()
    });
    let chosen: Vec<_> = fleet
        .wells
        .iter()
        .filter(|w| w.lift == Lift::RodPump)
        .take(wells)
        .collect();
    assert_eq!(
        chosen.len(),
        wells,
        "enough rod-pump wells in the wear fleet"
    );
    let site: SiteId = db.create_site(tenant, site_name, None).await.unwrap();
    let secret = store::registry::generate_gateway_secret();
    let gateway = db
        .create_gateway(tenant, site, &format!("gw-risk-{}", site.0), &secret)
        .await
        .unwrap();
    let mut ids = Vec::new();
    let mut devices = Vec::new();
    for (i, _) in chosen.iter().enumerate() {
        let api = format!("42-329-6{:04}", 1000 + i + 100 * (site.0 as usize % 50));
        let well = db
            .create_well(&NewWell {
                tenant,
                site,
                api_number: &api,
                name: &format!("Risk {i}"),
                lease: "",
                field: "",
                county: "",
                state: "TX",
            })
            .await
            .unwrap();
        ids.push(well);
        devices.push(wire::DeviceEntry {
            alias: i as u16,
            name: format!("rpc-{i}"),
            profile: "rod-pump-controller".to_owned(),
            info: vec![("well".to_owned(), api.clone())],
            metrics: METRICS
                .iter()
                .enumerate()
                .map(|(m, (name, unit))| wire::MetricEntry {
                    alias: m as u16,
                    canonical: (*name).to_owned(),
                    tag: (*name).to_owned(),
                    unit: (*unit).to_owned(),
                    scale: 1.0,
                    offset: 0.0,
                    writable: false,
                    kind: None,
                })
                .collect(),
        });
    }
    let birth = wire::Birth {
        boot_id: 1,
        ts_ms: Utc::now().timestamp_millis() - 400 * 86_400_000,
        agent_version: "0.1.0".to_owned(),
        config_hash: "risk".to_owned(),
        devices,
    };
    let map = db.apply_birth(gateway, &birth, Utc::now()).await.unwrap();
    let mut rows = Vec::new();
    let mut failures = 0;
    let mut conn = db.pool().acquire().await.unwrap();
    for (i, h) in chosen.iter().enumerate() {
        let series = |m: usize| map.get(i as u16, m as u16).unwrap().series_id;
        for (d, r) in h.days.iter().enumerate() {
            let day = h.start + chrono::Days::new(d as u64);
            let at = |hour: i64| {
                (day.and_hms_opt(0, 0, 0).unwrap().and_utc() + TimeDelta::hours(hour))
                    .timestamp_millis()
            };
            let values = [
                r.fillage_pct,
                r.load_range_lbf.map(|l| 4000.0 + l),
                r.load_range_lbf.map(|_| 4000.0),
                r.runtime_hr,
                r.cycles,
            ];
            for (m, v) in values.iter().enumerate() {
                if let Some(v) = v {
                    for hour in [6, 18] {
                        rows.push(TelemetryRow {
                            ts_ms: at(hour),
                            series_id: series(m),
                            value: Some(*v),
                            quality: Quality::Good,
                        });
                    }
                }
            }
        }
        for (kind, list) in [("failure", &h.failures), ("workover", &h.workovers)] {
            for day in list.iter().filter(|d| **d < Utc::now().date_naive()) {
                interventions::create(
                    &mut conn,
                    tenant,
                    ids[i],
                    &InterventionFields {
                        kind,
                        equipment: "rod_pump",
                        failure_mode: if kind == "failure" { "pump_stuck" } else { "" },
                        started_at: noon(*day),
                        ended_at: None,
                        cost_usd: None,
                        notes: "",
                    },
                    "seed",
                )
                .await
                .unwrap();
                failures += usize::from(kind == "failure");
            }
        }
    }
    drop(conn);
    for (seq, chunk) in rows.chunks(20_000).enumerate() {
        let mut tx = db.begin_ingest().await.unwrap();
        let mut batch = tx
            .record_batch(BatchRecord {
                epoch: 0,
                gateway,
                seq: seq as u64 + 1,
                boot_id: 1,
                historical: true,
                received_at: Utc::now(),
            })
            .unwrap()
            .unwrap();
        for row in chunk {
            batch.push(row).unwrap();
        }
        tx.commit().await.unwrap();
    }
    store::maintenance::run_once(db).await.expect("maintenance");
    SeededRisk {
        wells: ids,
        failures,
    }
}

fn noon(day: NaiveDate) -> chrono::DateTime<Utc> {
    day.and_hms_opt(12, 0, 0).unwrap().and_utc()
}
