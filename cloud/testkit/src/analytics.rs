//! Shared fixtures of the analytics integration tests (`tests/analytics_*.rs`): a migrated
//! scratch database per test, a tenant with a site, a well and a gateway whose devices
//! report tank and meter telemetry following a known synthetic profile, the API served on
//! an ephemeral port, and a minimal HTTP client.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

pub use crate::http::Response;
use chrono::{DateTime, NaiveDate, TimeDelta, Utc};

use crate::scratch::ScratchDb;
use analytics::production::{Method, Quantity};
use analytics::reports::form_pr::{FlareAuthority, LeaseKind};
use api::{ApiOptions, ApiServer, ApiState};
use production::DerivationSettings;
use store::production::{DailyRow, upsert_daily};
use store::production::{NewHaulTicket, insert_haul_ticket};
use store::regulatory::{OperatorRegistry, WellRegistry, set_operator, set_well_registry};
use store::{
    BackendChoice, BatchRecord, Db, DeviceId, GatewayId, NewWell, SeriesId, SiteId, StorageOptions,
    TelemetryRow, TenantId, WellId,
};

/// A migrated scratch database; drop it with [`TestDb::finish`].
pub struct TestDb {
    pub db: Db,
    scratch: ScratchDb,
}

impl TestDb {
    /// A fresh database on the plain PostgreSQL back-end, without retention (the tests
    /// use 2022–2024 data).
    pub async fn new(prefix: &str) -> TestDb {
        let scratch = ScratchDb::create(prefix).await.expect("scratch database");
        let options = StorageOptions {
            backend: BackendChoice::Postgres,
            retention: None,
            ..StorageOptions::default()
        };
        let db = Db::connect_with(scratch.url(), options)
            .await
            .expect("connect");
        db.migrate().await.expect("migrations apply");
        TestDb { db, scratch }
    }

    /// Closes the pool and drops the database.
    pub async fn finish(self) {
        self.db.pool().close().await;
        self.scratch.drop_db().await.expect("drop scratch database");
    }
}

/// `YYYY-MM-DD`.
pub fn day(s: &str) -> NaiveDate {
    s.parse().expect("date")
}

/// An RFC 3339 time.
pub fn t(s: &str) -> DateTime<Utc> {
    s.parse().expect("time")
}

/// A tenant with one site, one well and one gateway with two devices linked to the well:
/// `tank-1` (oil and water volume) and `meter-1` (gas, flare and fuel counters).
pub struct WellSite {
    pub tenant: TenantId,
    pub slug: String,
    pub site: SiteId,
    pub well: WellId,
    pub gateway: GatewayId,
    pub tank: DeviceId,
    pub meter: DeviceId,
    pub series: HashMap<&'static str, SeriesId>,
    seq: u64,
}

const TANK_METRICS: [&str; 2] = ["oil_volume_bbl", "water_volume_bbl"];
const METER_METRICS: [&str; 3] = ["gas_volume_total_mcf", "flare_gas_mcf", "fuel_gas_mcf"];

fn metric(alias: u16, canonical: &str, unit: &str) -> wire::MetricEntry {
    wire::MetricEntry {
        alias,
        canonical: canonical.to_string(),
        tag: canonical.to_string(),
        unit: unit.to_string(),
        scale: 1.0,
        offset: 0.0,
        writable: false,
        kind: None,
    }
}

fn device(alias: u16, name: &str, profile: &str, api: &str, metrics: &[&str]) -> wire::DeviceEntry {
    wire::DeviceEntry {
        alias,
        name: name.to_string(),
        profile: profile.to_string(),
        info: vec![("well".to_string(), api.to_string())],
        metrics: metrics
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let unit = if m.ends_with("_bbl") { "bbl" } else { "Mcf" };
                metric(i as u16, m, unit)
            })
            .collect(),
    }
}

impl WellSite {
    /// Creates the tenant (slug), its site, well (API number, state) and gateway.
    pub async fn create(db: &Db, slug: &str, api: &str, state: &str) -> WellSite {
        let tenant = db.create_tenant(slug, "Operating Co").await.unwrap();
        WellSite::create_in(db, tenant, slug, "Pad 1", "gw-1", api, state).await
    }

    /// Another well (own site and gateway) in an existing tenant.
    pub async fn create_in(
        db: &Db,
        tenant: TenantId,
        slug: &str,
        site_name: &str,
        gateway_slug: &str,
        api: &str,
        state: &str,
    ) -> WellSite {
        let site = db.create_site(tenant, site_name, None).await.unwrap();
        let well = db
            .create_well(&NewWell {
                tenant,
                site,
                api_number: api,
                name: &format!("{site_name} 1H"),
                lease: "SMITH UNIT",
                field: "SPRABERRY (TREND AREA)",
                county: "Midland",
                state,
            })
            .await
            .unwrap();
        let secret = store::registry::generate_gateway_secret();
        let gateway = db
            .create_gateway(tenant, site, gateway_slug, &secret)
            .await
            .unwrap();
        let birth = wire::Birth {
            boot_id: 1,
            ts_ms: t("2022-01-01T00:00:00Z").timestamp_millis(),
            agent_version: "0.1.0".to_string(),
            config_hash: "test".to_string(),
            devices: vec![
                device(0, "tank-1", "tank-gauge", api, &TANK_METRICS),
                device(1, "meter-1", "gas-flow-computer", api, &METER_METRICS),
            ],
        };
        let map = db.apply_birth(gateway, &birth, Utc::now()).await.unwrap();
        let mut series = HashMap::new();
        for (i, m) in TANK_METRICS.iter().enumerate() {
            series.insert(*m, map.get(0, i as u16).unwrap().series_id);
        }
        for (i, m) in METER_METRICS.iter().enumerate() {
            series.insert(*m, map.get(1, i as u16).unwrap().series_id);
        }
        let tank = db.device_by_name(gateway, "tank-1").await.unwrap().unwrap();
        let meter = db
            .device_by_name(gateway, "meter-1")
            .await
            .unwrap()
            .unwrap();
        WellSite {
            tenant,
            slug: slug.to_string(),
            site,
            well,
            gateway,
            tank,
            meter,
            series,
            seq: 0,
        }
    }

    /// Stores `rows` as one batch through the ingest transaction.
    pub async fn ingest(&mut self, db: &Db, rows: &[TelemetryRow]) {
        self.seq += 1;
        let mut tx = db.begin_ingest().await.unwrap();
        let mut batch = tx
            .record_batch(BatchRecord {
                epoch: 0,
                gateway: self.gateway,
                seq: self.seq,
                boot_id: 1,
                historical: true,
                received_at: Utc::now(),
            })
            .unwrap()
            .unwrap();
        for row in rows {
            batch.push(row).unwrap();
        }
        tx.commit().await.unwrap();
    }

    /// Records the haul tickets of the [`Profile`] from the tank.
    pub async fn haul(&self, db: &Db, profile: &Profile) {
        let mut conn = db.pool().acquire().await.unwrap();
        for (i, (time, volume)) in profile.hauls.iter().enumerate() {
            insert_haul_ticket(
                &mut conn,
                self.tenant,
                &NewHaulTicket {
                    device_id: self.tank,
                    product: Quantity::Oil,
                    time: *time,
                    volume_bbl: *volume,
                    ticket_number: &format!("{}-{}-RT-{i}", self.slug, self.well),
                    hauler: "Acme Crude Hauling",
                },
            )
            .await
            .unwrap();
        }
    }
}

/// The synthetic wellsite: tank stocks and meter counters as linear functions of time
/// since `origin`, oil hauled at the given times. Daily figures are therefore known
/// exactly: oil 100 bbl, water 40 bbl, gas 500 Mcf, flared 12 Mcf, fuel 3 Mcf.
pub struct Profile {
    pub origin: DateTime<Utc>,
    pub hauls: Vec<(DateTime<Utc>, f64)>,
}

pub const OIL_PER_DAY: f64 = 100.0;
pub const WATER_PER_DAY: f64 = 40.0;
pub const GAS_PER_DAY: f64 = 500.0;
pub const FLARED_PER_DAY: f64 = 12.0;
pub const FUEL_PER_DAY: f64 = 3.0;

impl Profile {
    /// The March 2024 profile: origin 2024-02-29T00:00Z, three oil hauls.
    pub fn march_2024() -> Profile {
        Profile {
            origin: t("2024-02-29T00:00:00Z"),
            hauls: vec![
                (t("2024-03-08T12:00:00Z"), 500.0),
                (t("2024-03-20T12:00:00Z"), 800.0),
                (t("2024-03-29T12:00:00Z"), 900.0),
            ],
        }
    }

    fn days(&self, at: DateTime<Utc>) -> f64 {
        (at - self.origin).num_milliseconds() as f64 / 86_400_000.0
    }

    /// Value of a metric at a time.
    pub fn value(&self, metric: &str, at: DateTime<Utc>) -> f64 {
        let d = self.days(at);
        match metric {
            "oil_volume_bbl" => {
                let hauled: f64 = self
                    .hauls
                    .iter()
                    .filter(|(h, _)| *h <= at)
                    .map(|(_, v)| v)
                    .sum();
                300.0 + OIL_PER_DAY * d - hauled
            }
            "water_volume_bbl" => 50.0 + WATER_PER_DAY * d,
            "gas_volume_total_mcf" => 10_000.0 + GAS_PER_DAY * d,
            "flare_gas_mcf" => 100.0 + FLARED_PER_DAY * d,
            "fuel_gas_mcf" => 20.0 + FUEL_PER_DAY * d,
            other => panic!("no profile for {other}"),
        }
    }

    /// Samples of every metric every 7 minutes in `[from, to)` (offset so that day
    /// boundaries fall between samples), except for `(metric, hole start, hole end)`.
    pub fn rows(
        &self,
        site: &WellSite,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        holes: &[(&str, DateTime<Utc>, DateTime<Utc>)],
    ) -> Vec<TelemetryRow> {
        let mut rows = Vec::new();
        let mut at = from + TimeDelta::seconds(150);
        while at < to {
            for (metric, series) in &site.series {
                let in_hole = holes
                    .iter()
                    .any(|(m, a, b)| m == metric && at >= *a && at < *b);
                if !in_hole {
                    rows.push(TelemetryRow {
                        ts_ms: at.timestamp_millis(),
                        series_id: *series,
                        value: Some(self.value(metric, at)),
                        quality: wire::Quality::Good,
                    });
                }
            }
            at += TimeDelta::minutes(7);
        }
        rows
    }

    /// Samples of one metric in `[from, to)` on the same 7-minute grid as [`Profile::rows`].
    pub fn metric_rows(
        &self,
        site: &WellSite,
        metric: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        grid_from: DateTime<Utc>,
    ) -> Vec<TelemetryRow> {
        let mut rows = Vec::new();
        let mut at = grid_from + TimeDelta::seconds(150);
        while at < to {
            if at >= from {
                rows.push(TelemetryRow {
                    ts_ms: at.timestamp_millis(),
                    series_id: site.series[metric],
                    value: Some(self.value(metric, at)),
                    quality: wire::Quality::Good,
                });
            }
            at += TimeDelta::minutes(7);
        }
        rows
    }
}

/// Runs storage maintenance (partitions for the backfilled days, rollups).
pub async fn maintain(db: &Db) {
    store::maintenance::run_once(db).await.expect("maintenance");
}

/// The API served on an ephemeral port until the test ends.
pub struct Api {
    pub addr: SocketAddr,
    /// A platform administrator's access token; `get` and `post` send it.
    pub token: String,
    task: tokio::task::JoinHandle<()>,
}

impl Api {
    pub async fn start(db: &Db) -> Api {
        let options = ApiOptions {
            request_timeout: Duration::from_secs(120),
            ..ApiOptions::default()
        };
        let server = ApiServer::bind(
            "127.0.0.1:0".parse().unwrap(),
            ApiState::new(db.clone(), options),
        )
        .await
        .unwrap();
        let addr = server.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = server.run().await;
        });
        let token = crate::auth::platform_admin_token(db).await;
        Api { addr, token, task }
    }

    pub async fn get(&self, path: &str) -> Response {
        crate::http::send_as(self.addr, &self.token, "GET", path, None).await
    }

    pub async fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Response {
        crate::http::send_as(self.addr, &self.token, method, path, body).await
    }

    pub async fn post(&self, path: &str, body: Option<&serde_json::Value>) -> Response {
        let body = body.cloned().unwrap_or(serde_json::Value::Null);
        let body = (!body.is_null()).then_some(body);
        crate::http::send_as(self.addr, &self.token, "POST", path, body.as_ref()).await
    }
}

impl Drop for Api {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Asserts `a ≈ b` within a relative tolerance.
pub fn close(a: f64, b: f64, rel: f64, what: &str) {
    let scale = a.abs().max(b.abs()).max(1e-12);
    assert!(
        (a - b).abs() <= rel * scale,
        "{what}: {a} vs {b} (relative tolerance {rel})"
    );
}

/// Registers the operator (RRC number, NM OGRID) and the wells' filing fields: `tx` as a
/// Texas oil lease well, `nm` (if any) as a New Mexico completion.
pub async fn register_filings(db: &Db, tenant: TenantId, tx: &WellSite, nm: Option<&WellSite>) {
    let mut conn = db.pool().acquire().await.unwrap();
    set_operator(
        &mut conn,
        tenant,
        &OperatorRegistry {
            operator_name: "Permian Basin Energy".into(),
            rrc_operator_number: "123456".into(),
            nm_ogrid: "372098".into(),
            sales_gas_ch4_fraction: Some(0.8),
        },
    )
    .await
    .unwrap();
    set_well_registry(
        &mut conn,
        tenant,
        &WellRegistry {
            rrc_district: "08".into(),
            rrc_lease_number: "12345".into(),
            rrc_lease_kind: LeaseKind::Oil,
            rrc_well_number: "1H".into(),
            flare_authority: vec![FlareAuthority::AuthorizedByRule],
            oil_purchaser: "Acme Crude Hauling".into(),
            gas_purchaser: "Delaware Basin Gathering".into(),
            ..WellRegistry::new(tx.well)
        },
    )
    .await
    .unwrap();
    if let Some(nm) = nm {
        set_well_registry(
            &mut conn,
            tenant,
            &WellRegistry {
                nm_pool_code: "98220".into(),
                nm_property_code: "331234".into(),
                oil_purchaser_ogrid: "214984".into(),
                gas_purchaser_ogrid: "151618".into(),
                ..WellRegistry::new(nm.well)
            },
        )
        .await
        .unwrap();
    }
}

/// Seeds March 2024 (plus the margins) for a well, hauls, derives Feb 29 … Mar 31.
pub async fn seed_march(
    db: &Db,
    site: &mut WellSite,
    holes: &[(
        &str,
        chrono::DateTime<chrono::Utc>,
        chrono::DateTime<chrono::Utc>,
    )],
) {
    let profile = Profile::march_2024();
    let rows = profile.rows(
        site,
        t("2024-02-28T23:00:00Z"),
        t("2024-04-01T01:00:00Z"),
        holes,
    );
    site.ingest(db, &rows).await;
    site.haul(db, &profile).await;
    maintain(db).await;
    let mut conn = db.pool().acquire().await.unwrap();
    production::derive_well(
        &mut conn,
        site.tenant,
        site.well,
        day("2024-02-29"),
        day("2024-04-01"),
        &DerivationSettings::default(),
    )
    .await
    .unwrap();
}

/// Stores daily oil volumes `q(day index)` from `start` for `days` days.
pub async fn seed_oil(
    db: &Db,
    tenant: TenantId,
    well: WellId,
    start: NaiveDate,
    days: i64,
    q: impl Fn(f64) -> f64,
) {
    let rows: Vec<DailyRow> = (0..days)
        .map(|i| {
            // Deterministic ±2 % scatter.
            let scatter = 1.0 + 0.02 * ((i as f64) * 12.9898).sin();
            DailyRow {
                well_id: well,
                day: start + TimeDelta::days(i),
                quantity: Quantity::Oil,
                volume: Some(q(i as f64 + 0.5) * scatter),
                method: Method::TankGauge,
                coverage: 1.0,
                gaps: Vec::new(),
                derived: None,
                correction_id: None,
                correction_reference: None,
                closing_stock: None,
                notes: Vec::new(),
                derived_at: Utc::now(),
            }
        })
        .collect();
    let mut conn = db.pool().acquire().await.unwrap();
    upsert_daily(&mut conn, tenant, &rows).await.unwrap();
}

/// A typical associated-gas composition (mole fractions) for emission sources in tests.
pub const GAS: analytics::emissions::GasComposition = analytics::emissions::GasComposition {
    ch4: 0.80,
    c2h6: 0.10,
    c3h8: 0.05,
    c4h10: 0.02,
    c5_plus: 0.01,
    co2: 0.01,
    other: 0.01,
};

/// A well-level emission source at `site` with no meter, counts or service window, the
/// [`GAS`] composition and the Western region of Table W-1A.
pub fn source(
    site: &WellSite,
    name: &str,
    kind: analytics::emissions::SourceKind,
) -> store::emissions::EmissionSource {
    store::emissions::EmissionSource {
        id: 0,
        site_id: site.site,
        well_id: Some(site.well),
        name: name.to_string(),
        kind,
        meter_series_id: None,
        gas: GAS,
        hhv_mmbtu_per_scf: None,
        flare_efficiency: None,
        flare_unlit: false,
        combustion_unit: None,
        ch4_kg_per_mmbtu: None,
        region: analytics::emissions::factors::Region::Western,
        subpart_w_facility: true,
        in_service_from: None,
        in_service_to: None,
        components: Vec::new(),
        pneumatics: Vec::new(),
    }
}
