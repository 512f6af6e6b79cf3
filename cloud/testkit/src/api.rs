//! Shared fixtures of the API integration tests (`tests/api_*.rs`): a scratch database,
//! the API served on an ephemeral port, a seeded two-tenant fleet, a small HTTP client
//! and a database proxy that can be cut.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::scratch::ScratchDb;
use api::{ApiOptions, ApiState};
use chrono::{DateTime, DurationRound, Utc};
use ingest::IngestStats;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use store::gateways::GatewayActivity;
use store::registry::generate_gateway_secret;
use store::{
    BackendChoice, BatchRecord, Db, GatewayId, NewWell, Rejection, SeriesId, StorageOptions,
    TelemetryRow, TenantId, WellId, maintenance,
};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use wire::Quality;

use crate::http::Response;
use crate::proxy::Proxy;

/// How to start a [`TestApi`].
#[derive(Debug, Clone)]
pub struct Setup {
    pub options: ApiOptions,
    /// Route the API's database connections through a [`Proxy`].
    pub via_proxy: bool,
    /// Attach ingester counters that look connected and subscribed.
    pub ingester: bool,
    /// Run the migrations first.
    pub migrate: bool,
    /// Send invitations and resets through this mailer.
    pub mailer: Option<mail::Mailer>,
    /// Turn billing on (`[billing]`), e.g. against a [`crate::stripe::FakeStripe`].
    pub billing: Option<billing::BillingOptions>,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            options: ApiOptions::default(),
            via_proxy: false,
            ingester: true,
            migrate: true,
            mailer: None,
            billing: None,
        }
    }
}

/// A scratch database and the API serving it on an ephemeral port.
pub struct TestApi {
    /// Direct (owner) access to the database: seeding and reference queries.
    pub db: Db,
    /// Where the API listens.
    pub addr: SocketAddr,
    /// The counters the API's readiness check reads.
    pub stats: Arc<IngestStats>,
    /// A platform administrator's access token (empty when started without migrations);
    /// `get`, `post` and `request` send it.
    pub token: String,
    proxy: Option<Proxy>,
    api_db: Db,
    scratch: ScratchDb,
    shutdown: Option<oneshot::Sender<()>>,
    server: JoinHandle<std::io::Result<()>>,
}

/// Plain PostgreSQL without retention: API tests seed data of any age (e.g. March 2024
/// for the regulatory reports), which maintenance must not expire.
fn storage() -> StorageOptions {
    StorageOptions {
        backend: BackendChoice::Postgres,
        retention: None,
        ..StorageOptions::default()
    }
}

impl TestApi {
    pub async fn start(prefix: &str) -> TestApi {
        TestApi::with(prefix, Setup::default()).await
    }

    pub async fn with(prefix: &str, setup: Setup) -> TestApi {
        let scratch = ScratchDb::create(prefix).await.expect("scratch database");
        let db = Db::connect_with(scratch.url(), storage())
            .await
            .expect("connect");
        if setup.migrate {
            db.migrate().await.expect("migrations apply");
        }
        let mut connect: PgConnectOptions = scratch.url().parse().unwrap();
        let proxy = if setup.via_proxy {
            let target = SocketAddr::from(([127, 0, 0, 1], connect.get_port()));
            let proxy = Proxy::start(target).await;
            connect = connect.host("127.0.0.1").port(proxy.addr().port());
            Some(proxy)
        } else {
            None
        };
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(3))
            .connect_lazy_with(connect);
        let api_db = Db::from_pool(pool, storage());
        let stats = Arc::new(IngestStats::default());
        let mut state = ApiState::new(api_db.clone(), setup.options);
        if setup.ingester {
            stats.mqtt_connects.fetch_add(1, Ordering::Relaxed);
            stats.mqtt_subscribed.fetch_add(1, Ordering::Relaxed);
            state = state.with_ingester(Arc::clone(&stats));
        }
        if let Some(mailer) = setup.mailer {
            state = state.with_mailer(mailer);
        }
        if let Some(billing) = setup.billing {
            state = state.with_billing(billing).expect("billing client");
        }
        let token = if setup.migrate {
            crate::auth::platform_admin_token(&db).await
        } else {
            String::new()
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (shutdown, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(api::serve(listener, state, async move {
            let _ = stopped.await;
        }));
        TestApi {
            db,
            addr,
            stats,
            token,
            proxy,
            api_db,
            scratch,
            shutdown: Some(shutdown),
            server,
        }
    }

    /// `GET target` as the platform administrator.
    pub async fn get(&self, target: &str) -> Response {
        self.request("GET", target, None).await
    }

    /// `POST target` (JSON body or none) as the platform administrator.
    pub async fn post(&self, target: &str, body: Option<&serde_json::Value>) -> Response {
        self.request("POST", target, body).await
    }

    /// Any request as the platform administrator.
    pub async fn request(
        &self,
        method: &str,
        target: &str,
        body: Option<&serde_json::Value>,
    ) -> Response {
        crate::http::send_as(self.addr, &self.token, method, target, body).await
    }

    /// Any request as the holder of `token`.
    pub async fn request_as(
        &self,
        token: &str,
        method: &str,
        target: &str,
        body: Option<&serde_json::Value>,
    ) -> Response {
        crate::http::send_as(self.addr, token, method, target, body).await
    }

    /// The proxy between the API and the database (`Setup::via_proxy`).
    pub fn proxy(&self) -> &Proxy {
        self.proxy.as_ref().expect("started with via_proxy")
    }

    /// Stops the server (gracefully) and drops the database.
    pub async fn finish(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(30), &mut self.server).await;
        self.api_db.pool().close().await;
        self.db.pool().close().await;
        drop(self.proxy.take());
        self.scratch.drop_db().await.expect("drop scratch database");
    }
}

/// The seeded fleet (see [`seed`]).
#[derive(Debug, Clone)]
pub struct Fleet {
    pub acme: TenantId,
    pub other: TenantId,
    /// acme's well with two devices reporting tubing pressure.
    pub smith: WellId,
    /// acme's well without devices.
    pub jones: WellId,
    /// The other tenant's well.
    pub other_well: WellId,
    /// acme's `gw-01`: born, online, buffer status reported.
    pub gw1: GatewayId,
    /// acme's `gw-02`: provisioned, never connected.
    pub gw2: GatewayId,
    /// The other tenant's `gw-01` (same slug as acme's).
    pub other_gw: GatewayId,
    /// Smith's `tubing_pressure_psi` series: rpc-1, esp-1.
    pub tubing: [SeriesId; 2],
    /// Smith's `casing_pressure_psi` series (rpc-1).
    pub casing: SeriesId,
    /// The other tenant's tubing pressure series.
    pub other_tubing: SeriesId,
    /// First sample time (a minute boundary).
    pub start: DateTime<Utc>,
    /// Sample spacing.
    pub step: chrono::Duration,
    /// Samples per series.
    pub samples: i64,
    /// Boot id of acme's gw-01.
    pub boot_id: u64,
}

impl Fleet {
    /// One past the last sample time.
    pub fn end(&self) -> DateTime<Utc> {
        self.start + self.step * i32::try_from(self.samples).unwrap()
    }
}

fn metric(alias: u16, canonical: &str, tag: &str, unit: &str) -> wire::MetricEntry {
    wire::MetricEntry {
        alias,
        canonical: canonical.to_owned(),
        tag: tag.to_owned(),
        unit: unit.to_owned(),
        scale: 0.1,
        offset: 0.0,
        writable: false,
        kind: None,
    }
}

fn device(
    alias: u16,
    name: &str,
    profile: &str,
    well: &str,
    metrics: Vec<wire::MetricEntry>,
) -> wire::DeviceEntry {
    wire::DeviceEntry {
        alias,
        name: name.to_owned(),
        profile: profile.to_owned(),
        info: vec![("well".to_owned(), well.to_owned())],
        metrics,
    }
}

/// The value and quality of sample `i` of a series (`phase` varies it per series):
/// mostly good, with stale, bad (no value) and uncertain samples mixed in.
pub fn sample(i: i64, phase: f64) -> (Option<f64>, Quality) {
    let value = 500.0 + phase + 40.0 * ((i as f64) / 37.0 + phase).sin() + (i % 7) as f64;
    if i % 29 == 0 {
        (None, Quality::Bad)
    } else if i % 13 == 0 {
        (Some(value), Quality::Stale)
    } else if i % 31 == 0 {
        (Some(value * 3.0), Quality::Uncertain)
    } else {
        (Some(value), Quality::Good)
    }
}

async fn tenant_with_well(
    db: &Db,
    slug: &str,
    api: &str,
    name: &str,
) -> (TenantId, WellId, store::SiteId) {
    let tenant = db
        .create_tenant(slug, &format!("{slug} operating"))
        .await
        .unwrap();
    let site = db
        .create_site(tenant, "Pad 7", Some((31.9, -102.1)))
        .await
        .unwrap();
    let well = db
        .create_well(&NewWell {
            tenant,
            site,
            api_number: api,
            name,
            lease: "Smith",
            field: "Spraberry",
            county: "Midland",
            state: "TX",
        })
        .await
        .unwrap();
    (tenant, well, site)
}

/// Seeds two tenants (see [`Fleet`]), ingests `samples` samples per series every
/// `step_secs` seconds from a minute boundary 3 days ago through the storage layer's ingest
/// transaction, records gateway activity and rejections, then runs maintenance so the
/// rollups exist.
pub async fn seed(db: &Db, samples: i64, step_secs: i64) -> Fleet {
    let (acme, smith, site) = tenant_with_well(db, "acme", "42-329-12345-00-00", "Smith 1H").await;
    let jones = db
        .create_well(&NewWell {
            tenant: acme,
            site,
            api_number: "42-329-54321-00-00",
            name: "Jones 2H",
            lease: "Jones",
            field: "Spraberry",
            county: "Midland",
            state: "TX",
        })
        .await
        .unwrap();
    let (other, other_well, other_site) =
        tenant_with_well(db, "other", "30-015-99999-00-00", "Rival 1").await;
    let secret = generate_gateway_secret();
    let gw1 = db
        .create_gateway(acme, site, "gw-01", &secret)
        .await
        .unwrap();
    let gw2 = db
        .create_gateway(acme, site, "gw-02", &secret)
        .await
        .unwrap();
    let other_gw = db
        .create_gateway(other, other_site, "gw-01", &secret)
        .await
        .unwrap();

    let start = (Utc::now() - chrono::Duration::days(3))
        .duration_trunc(chrono::Duration::minutes(1))
        .unwrap();
    let boot_id = 0xfeed_beef_dead_c0de_u64;
    let birth = wire::Birth {
        boot_id,
        ts_ms: start.timestamp_millis() - 1000,
        agent_version: "0.1.0".to_owned(),
        config_hash: "cfg-abc123".to_owned(),
        devices: vec![
            device(
                0,
                "rpc-1",
                "rod-pump-controller",
                "42-329-12345-00-00",
                vec![
                    metric(0, "tubing_pressure_psi", "tubing_pressure", "psi"),
                    metric(1, "casing_pressure_psi", "casing_pressure", "psi"),
                    metric(2, "", "fw_rev", ""),
                ],
            ),
            device(
                1,
                "esp-1",
                "esp-drive",
                "Smith 1H",
                vec![metric(0, "tubing_pressure_psi", "wellhead_pressure", "psi")],
            ),
        ],
    };
    let map = db.apply_birth(gw1, &birth, start).await.unwrap();
    let other_birth = wire::Birth {
        boot_id: 7,
        devices: vec![device(
            0,
            "rpc-9",
            "rod-pump-controller",
            "30-015-99999-00-00",
            vec![metric(0, "tubing_pressure_psi", "tubing_pressure", "psi")],
        )],
        ..birth.clone()
    };
    let other_map = db.apply_birth(other_gw, &other_birth, start).await.unwrap();
    let series = |m: &store::AliasMap, d, a| m.get(d, a).unwrap().series_id;
    let fleet = Fleet {
        acme,
        other,
        smith,
        jones,
        other_well,
        gw1,
        gw2,
        other_gw,
        tubing: [series(&map, 0, 0), series(&map, 1, 0)],
        casing: series(&map, 0, 1),
        other_tubing: series(&other_map, 0, 0),
        start,
        step: chrono::Duration::seconds(step_secs),
        samples,
        boot_id,
    };
    ingest(db, &fleet, gw1, boot_id, &acme_series(&fleet)).await;
    ingest(db, &fleet, other_gw, 7, &[(fleet.other_tubing, 9.0)]).await;
    db.record_gateway_activity(&[GatewayActivity {
        gateway: gw1,
        seen_at: fleet.end(),
        buffer: Some(wire::BufferStatus {
            pending_batches: 3,
            pending_bytes: 4096,
            oldest_age_ms: 1500,
            dropped_samples: 12,
            dropped_batches: 1,
        }),
        clock_skew_ms: Some(-250),
        epoch: Some(0x0123_4567_89ab_cdef),
    }])
    .await
    .unwrap();
    for (tenant, slug, reason) in [
        (acme, "gw-01", "malformed: CBOR decode failed at byte 3"),
        (
            acme,
            "gw-09",
            "unknown_gateway: no gateway gw-09 in tenant acme",
        ),
        (other, "gw-01", "unknown_boot: boot 99 has no birth"),
    ] {
        let topic = format!(
            "wp/v1/{}/{slug}/data",
            if tenant == acme { "acme" } else { "other" }
        );
        db.record_rejection(&Rejection {
            tenant_id: Some(tenant),
            tenant: if tenant == acme { "acme" } else { "other" },
            gateway: slug,
            topic: &topic,
            reason,
            payload_size: 17,
        })
        .await
        .unwrap();
    }
    maintenance::run_once(db).await.expect("maintenance");
    fleet
}

fn acme_series(fleet: &Fleet) -> [(SeriesId, f64); 3] {
    [
        (fleet.tubing[0], 0.0),
        (fleet.tubing[1], 1.5),
        (fleet.casing, 3.0),
    ]
}

/// Ingests `fleet.samples` more samples from `fleet.start` for acme's gw-01 series,
/// without running maintenance (the rollups do not cover them yet).
pub async fn ingest_more(db: &Db, fleet: &Fleet) {
    ingest(db, fleet, fleet.gw1, fleet.boot_id, &acme_series(fleet)).await;
}

/// Ingests the fleet's samples of some series (value phase per series) in batches of
/// 500 time steps, one transaction per batch, as the ingester does; seqs continue after
/// the gateway's highest stored one.
async fn ingest(
    db: &Db,
    fleet: &Fleet,
    gateway: GatewayId,
    boot_id: u64,
    series: &[(SeriesId, f64)],
) {
    let next: Option<i64> =
        sqlx::query_scalar("SELECT max(seq) + 1 FROM ingested_batches WHERE gateway_id = $1")
            .bind(gateway)
            .fetch_one(db.pool())
            .await
            .unwrap();
    let mut seq = u64::try_from(next.unwrap_or(0)).unwrap();
    let mut i = 0;
    while i < fleet.samples {
        let end = (i + 500).min(fleet.samples);
        let mut tx = db.begin_ingest().await.unwrap();
        let mut writer = tx
            .record_batch(BatchRecord {
                epoch: 0,
                gateway,
                seq,
                boot_id,
                historical: false,
                received_at: fleet.start + fleet.step * i32::try_from(end).unwrap(),
            })
            .unwrap()
            .expect("new batch");
        for k in i..end {
            let ts_ms = (fleet.start + fleet.step * i32::try_from(k).unwrap()).timestamp_millis();
            for &(series_id, phase) in series {
                let (value, quality) = sample(k, phase);
                writer
                    .push(&TelemetryRow {
                        ts_ms,
                        series_id,
                        value,
                        quality,
                    })
                    .unwrap();
            }
        }
        tx.commit().await.unwrap();
        seq += 1;
        i = end;
    }
}

/// Polls `cond` until it holds or 60 s pass.
pub async fn wait_until<F, Fut>(what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !cond().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// RFC 3339 with `Z`, URL-safe (no `+`).
pub fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// acme's alerting records, for API tests that need ids to act on.
#[derive(Debug, Clone, Copy)]
pub struct AlertRecords {
    /// Three firing alerts (on rpc-1: pump-off, rod part, tubing pressure).
    pub alerts: [i64; 3],
    /// A silence in force.
    pub silence: i64,
    /// Two rules (one to keep, one to delete).
    pub rules: [i64; 2],
    /// Two Alertmanager destinations (one to keep, one to delete).
    pub destinations: [i64; 2],
    /// rpc-1's device id.
    pub device: store::DeviceId,
}

/// Opens three alerts on acme's rpc-1 through `store::alerts::record_signals` (as detection
/// does) and writes a silence, two rules and two destinations.
pub async fn seed_alerts(db: &Db, fleet: &Fleet) -> AlertRecords {
    use store::alerts::{self, AlertPolicy, DestinationInput, NewSilence, SignalRecord};
    let device: store::DeviceId = sqlx::query_scalar(
        "SELECT d.id FROM devices d WHERE d.tenant_id = $1 AND d.name = 'rpc-1'",
    )
    .bind(fleet.acme)
    .fetch_one(db.pool())
    .await
    .unwrap();
    let policy = AlertPolicy {
        hold: chrono::Duration::minutes(5),
        flap_window: chrono::Duration::hours(1),
        flap_threshold: 3,
    };
    let signal = |kind: &'static str, subject: Option<&'static str>| SignalRecord {
        tenant: fleet.acme,
        device,
        kind,
        subject,
        severity: "warning",
        active: true,
        page: true,
        at: Utc::now(),
        evidence: serde_json::json!({ "detector": kind, "detail": "seeded" }),
        summary: format!("{kind} on rpc-1"),
    };
    let mut tx = db.pool().begin().await.unwrap();
    alerts::record_signals(
        &mut tx,
        &[
            signal("pump_off", None),
            signal("rod_part", None),
            signal("pressure_anomaly", Some("tubing_pressure_psi")),
        ],
        &policy,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let ids: Vec<i64> =
        sqlx::query_scalar("SELECT id FROM alerts WHERE tenant_id = $1 ORDER BY id")
            .bind(fleet.acme)
            .fetch_all(db.pool())
            .await
            .unwrap();
    let mut tx = db.begin_tenant(fleet.acme).await.unwrap();
    let silence = alerts::create_silence(
        &mut tx,
        fleet.acme,
        &NewSilence {
            kind: Some("gas_lock"),
            well: None,
            device: None,
            starts_at: None,
            ends_at: Utc::now() + chrono::Duration::hours(2),
            comment: "workover",
            created_by: "seed",
        },
    )
    .await
    .unwrap()
    .id;
    let mut rules = [0; 2];
    for (i, name) in ["kept rule", "spare rule"].into_iter().enumerate() {
        let condition = serde_json::json!({ "type": "above", "value": 1500.0 });
        rules[i] = store::detection::create_rule(
            &mut tx,
            fleet.acme,
            &store::detection::RuleInput {
                name,
                metric: "tubing_pressure_psi",
                condition: &condition,
                severity: "warning",
                for_ms: 0,
                enabled: true,
            },
        )
        .await
        .unwrap()
        .id;
    }
    let mut destinations = [0; 2];
    for (i, name) in ["kept-am", "spare-am"].into_iter().enumerate() {
        destinations[i] = alerts::create_destination(
            &mut tx,
            fleet.acme,
            &DestinationInput {
                name,
                kind: "alertmanager",
                url: "http://127.0.0.1:9/am",
                min_severity: "critical",
                enabled: true,
            },
            None,
        )
        .await
        .unwrap()
        .id;
    }
    tx.commit().await.unwrap();
    AlertRecords {
        alerts: [ids[0], ids[1], ids[2]],
        silence,
        rules,
        destinations,
        device,
    }
}
