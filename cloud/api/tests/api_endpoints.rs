//! Happy paths of every endpoint over a real socket, against a seeded database.

use serde_json::Value;
use testkit::api::{TestApi, seed, ts};

fn ids(items: &Value, key: &str) -> Vec<Value> {
    items
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i[key].clone())
        .collect()
}

#[tokio::test]
async fn health_and_ready_answer_when_everything_is_up() {
    let api = TestApi::start("api_health").await;
    let health = api.get("/health").await;
    assert_eq!(health.status, 200);
    assert_eq!(health.json()["status"], "ok");
    assert_eq!(health.json()["version"], env!("CARGO_PKG_VERSION"));
    let id = health.header("x-request-id").expect("request id header");
    assert_eq!(id.len(), 32);

    let ready = api.get("/ready").await;
    assert_eq!(ready.status, 200, "{}", ready.text());
    let body = ready.json();
    assert_eq!(body["status"], "ready");
    let names: Vec<_> = ids(&body["checks"], "name");
    assert_eq!(names, ["database", "migrations", "ingester"]);
    assert!(
        body["checks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["ok"] == true)
    );
    api.finish().await;
}

#[tokio::test]
async fn gateways_show_status_birth_buffer_and_devices() {
    let api = TestApi::start("api_gateways").await;
    let fleet = seed(&api.db, 120, 30).await;

    let list = api.get("/api/v1/tenants/acme/gateways").await;
    assert_eq!(list.status, 200, "{}", list.text());
    let body = list.json();
    assert_eq!(ids(&body["items"], "id"), ["gw-01", "gw-02"]);
    assert!(body["next_cursor"].is_null());
    let gw1 = &body["items"][0];
    assert_eq!(gw1["status"], "online");
    assert_eq!(gw1["site"]["name"], "Pad 7");
    assert_eq!(gw1["device_count"], 2);
    assert_eq!(gw1["clock_skew_ms"], -250);
    assert_eq!(gw1["last_seen"], ts(fleet.end()));
    let birth = &gw1["last_birth"];
    assert_eq!(birth["boot_id"], wire::HexId(fleet.boot_id).to_string());
    assert_eq!(birth["agent_version"], "0.1.0");
    assert_eq!(birth["config_hash"], "cfg-abc123");
    assert_eq!(birth["received_at"], ts(fleet.start));
    assert_eq!(
        birth["birth_time"],
        ts(fleet.start - chrono::Duration::seconds(1))
    );
    let buffer = &gw1["buffer"];
    assert_eq!(buffer["pending_batches"], 3);
    assert_eq!(buffer["pending_bytes"], 4096);
    assert_eq!(buffer["oldest_age_ms"], 1500);
    assert_eq!(buffer["dropped_samples"], 12);
    assert_eq!(buffer["dropped_batches"], 1);
    assert_eq!(buffer["epoch"], "0123456789abcdef");
    assert_eq!(buffer["reported_at"], ts(fleet.end()));
    assert!(gw1["refusal"].is_null());
    assert_eq!(gw1["data_stored_at"], ts(fleet.end()));
    let gw2 = &body["items"][1];
    assert_eq!(gw2["status"], "offline");
    assert!(gw2["last_birth"].is_null() && gw2["buffer"].is_null() && gw2["last_seen"].is_null());
    assert_eq!(gw2["device_count"], 0);

    let detail = api.get("/api/v1/tenants/acme/gateways/gw-01").await;
    assert_eq!(detail.status, 200, "{}", detail.text());
    let detail = detail.json();
    assert_eq!(detail["id"], "gw-01");
    assert_eq!(detail["status"], "online");
    let devices = &detail["devices"];
    assert_eq!(ids(devices, "name"), ["esp-1", "rpc-1"]);
    assert_eq!(devices[0]["profile"], "esp-drive");
    assert_eq!(devices[1]["well_id"], fleet.smith.0);
    assert_eq!(devices[1]["series_count"], 3);
    assert_eq!(devices[1]["current"], true);

    // Its batches refused for good after the last stored one: connected, but unhealthy.
    let gw_id: store::GatewayId = sqlx::query_scalar(
        "SELECT g.id FROM gateways g JOIN tenants t ON t.id = g.tenant_id
         WHERE g.slug = 'gw-01' AND t.slug = 'acme'",
    )
    .fetch_one(api.db.pool())
    .await
    .unwrap();
    let refused_at = fleet.end() + chrono::Duration::seconds(5);
    api.db
        .record_gateway_refusal(gw_id, refused_at, "seq_conflict")
        .await
        .unwrap();
    let detail = api.get("/api/v1/tenants/acme/gateways/gw-01").await.json();
    assert_eq!(detail["status"], "unhealthy");
    assert_eq!(detail["refusal"]["reason"], "seq_conflict");
    assert_eq!(detail["refusal"]["at"], ts(refused_at));
    // A batch stored after the refusal makes it healthy again.
    api.db
        .record_gateway_activity(&[store::gateways::GatewayActivity {
            gateway: gw_id,
            seen_at: refused_at + chrono::Duration::seconds(1),
            buffer: None,
            clock_skew_ms: None,
            epoch: None,
        }])
        .await
        .unwrap();
    let detail = api.get("/api/v1/tenants/acme/gateways/gw-01").await.json();
    assert_eq!(detail["status"], "online");

    // Paging: one per page, following next_cursor.
    let first = api
        .get("/api/v1/tenants/acme/gateways?limit=1")
        .await
        .json();
    assert_eq!(ids(&first["items"], "id"), ["gw-01"]);
    let cursor = first["next_cursor"].as_str().unwrap().to_owned();
    let second = api
        .get(&format!(
            "/api/v1/tenants/acme/gateways?limit=1&cursor={cursor}"
        ))
        .await
        .json();
    assert_eq!(ids(&second["items"], "id"), ["gw-02"]);
    assert!(second["next_cursor"].is_null());
    api.finish().await;
}

#[tokio::test]
async fn wells_and_their_metrics_come_from_the_registry() {
    let api = TestApi::start("api_wells").await;
    let fleet = seed(&api.db, 60, 30).await;

    let wells = api.get("/api/v1/tenants/acme/wells").await;
    assert_eq!(wells.status, 200, "{}", wells.text());
    let wells = wells.json();
    assert_eq!(ids(&wells["items"], "id"), [fleet.smith.0, fleet.jones.0]);
    let smith = &wells["items"][0];
    assert_eq!(smith["api_number"], "42-329-12345-00-00");
    assert_eq!(smith["name"], "Smith 1H");
    assert_eq!(smith["county"], "Midland");
    assert_eq!(smith["state"], "TX");
    assert_eq!(smith["site"]["name"], "Pad 7");
    assert_eq!(smith["device_count"], 2);

    let one = api
        .get(&format!("/api/v1/tenants/acme/wells/{}", fleet.jones.0))
        .await;
    assert_eq!(one.status, 200);
    assert_eq!(one.json()["name"], "Jones 2H");
    assert_eq!(one.json()["device_count"], 0);

    let page = api.get("/api/v1/tenants/acme/wells?limit=1").await.json();
    assert_eq!(page["next_cursor"], fleet.smith.0.to_string());
    let rest = api
        .get(&format!(
            "/api/v1/tenants/acme/wells?limit=1&cursor={}",
            fleet.smith.0
        ))
        .await
        .json();
    assert_eq!(ids(&rest["items"], "id"), [fleet.jones.0]);

    let metrics = api
        .get(&format!(
            "/api/v1/tenants/acme/wells/{}/metrics",
            fleet.smith.0
        ))
        .await;
    assert_eq!(metrics.status, 200, "{}", metrics.text());
    let metrics = metrics.json();
    assert_eq!(metrics["well_id"], fleet.smith.0);
    let list = &metrics["metrics"];
    assert_eq!(
        ids(list, "metric"),
        [
            "casing_pressure_psi",
            "tubing_pressure_psi",
            "vendor:fw_rev"
        ]
    );
    let tubing = &list[1];
    assert_eq!(tubing["unit"], "psi");
    assert_eq!(tubing["kind"], "gauge");
    assert!(tubing["description"].as_str().unwrap().len() > 5);
    assert_eq!(
        ids(&tubing["series"], "series_id"),
        [fleet.tubing[0].0, fleet.tubing[1].0]
    );
    assert_eq!(ids(&tubing["series"], "device"), ["rpc-1", "esp-1"]);
    assert_eq!(tubing["series"][1]["tag"], "wellhead_pressure");
    assert_eq!(tubing["series"][0]["gateway"], "gw-01");
    assert!(list[2]["kind"].is_null());

    // A well without devices reports no metric.
    let empty = api
        .get(&format!(
            "/api/v1/tenants/acme/wells/{}/metrics",
            fleet.jones.0
        ))
        .await
        .json();
    assert_eq!(empty["metrics"], Value::Array(vec![]));
    api.finish().await;
}

#[tokio::test]
async fn telemetry_returns_raw_samples_with_quality_and_buckets() {
    let api = TestApi::start("api_telemetry_happy").await;
    let fleet = seed(&api.db, 240, 30).await; // 2 hours
    let base = format!("/api/v1/tenants/acme/wells/{}/telemetry", fleet.smith.0);
    let (from, to) = (fleet.start, fleet.start + chrono::Duration::minutes(10));

    let raw = api
        .get(&format!(
            "{base}?metric=tubing_pressure_psi&from={}&to={}",
            ts(from),
            ts(to)
        ))
        .await;
    assert_eq!(raw.status, 200, "{}", raw.text());
    let raw = raw.json();
    assert_eq!(raw["metric"], "tubing_pressure_psi");
    assert_eq!(raw["unit"], "psi");
    assert_eq!(raw["bucket"], "raw");
    assert_eq!(raw["from"], ts(from));
    assert!(raw["next_from"].is_null());
    let series = raw["series"].as_array().unwrap();
    assert_eq!(series.len(), 2);
    assert_eq!(series[0]["series_id"], fleet.tubing[0].0);
    assert_eq!(series[0]["device"], "rpc-1");
    assert!(series[0].get("buckets").is_none());
    let samples = series[0]["samples"].as_array().unwrap();
    assert_eq!(samples.len(), 20); // 10 minutes at 30 s
    for (i, s) in samples.iter().enumerate() {
        let (value, quality) = testkit::api::sample(i as i64, 0.0);
        assert_eq!(s["time"], ts(from + fleet.step * i as i32));
        match (s["value"].as_f64(), value) {
            // serde_json's default float parser may be one ulp off.
            (Some(got), Some(want)) => assert!((got - want).abs() < 1e-9, "sample {i}"),
            (got, want) => assert_eq!(got, want, "sample {i}"),
        }
        let expected = format!("{quality:?}").to_lowercase();
        assert_eq!(s["quality"], expected.as_str());
    }
    assert_eq!(samples[0]["quality"], "bad");
    assert!(samples[0]["value"].is_null());

    let buckets = api
        .get(&format!(
            "{base}?metric=tubing_pressure_psi&from={}&to={}&bucket=5m",
            ts(from),
            ts(to)
        ))
        .await;
    assert_eq!(buckets.status, 200, "{}", buckets.text());
    let buckets = buckets.json();
    assert_eq!(buckets["bucket"], "5m");
    let points = buckets["series"][1]["buckets"].as_array().unwrap();
    assert!(buckets["series"][1].get("samples").is_none());
    assert!(!points.is_empty() && points.len() <= 3, "{points:?}");
    for p in points {
        let (min, max, avg) = (
            p["min"].as_f64().unwrap(),
            p["max"].as_f64().unwrap(),
            p["avg"].as_f64().unwrap(),
        );
        assert!(min <= avg && avg <= max, "{p}");
        assert!(p["count"].as_i64().unwrap() > 0);
    }

    // A metric the well does not report: valid request, no series.
    let none = api
        .get(&format!(
            "{base}?metric=h2s_ppm&from={}&to={}",
            ts(from),
            ts(to)
        ))
        .await;
    assert_eq!(none.status, 200);
    assert_eq!(none.json()["series"], Value::Array(vec![]));
    api.finish().await;
}

#[tokio::test]
async fn ingest_rejections_and_counters_are_per_tenant() {
    let api = TestApi::start("api_ingest").await;
    let fleet = seed(&api.db, 1200, 30).await; // 3 batches per series set

    let rejections = api.get("/api/v1/tenants/acme/ingest/rejections").await;
    assert_eq!(rejections.status, 200, "{}", rejections.text());
    let body = rejections.json();
    let items = body["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "only acme's rejections: {body}");
    // Newest first.
    assert_eq!(items[0]["gateway"], "gw-09");
    assert_eq!(items[0]["reason"], "unknown_gateway");
    assert_eq!(items[0]["detail"], "no gateway gw-09 in tenant acme");
    assert_eq!(items[1]["reason"], "malformed");
    assert_eq!(items[1]["topic"], "wp/v1/acme/gw-01/data");
    assert_eq!(items[1]["payload_size"], 17);

    let page = api
        .get("/api/v1/tenants/acme/ingest/rejections?limit=1")
        .await
        .json();
    let cursor = page["next_cursor"].as_str().unwrap().to_owned();
    let older = api
        .get(&format!(
            "/api/v1/tenants/acme/ingest/rejections?limit=1&cursor={cursor}"
        ))
        .await
        .json();
    assert_eq!(older["items"][0]["reason"], "malformed");
    assert!(older["next_cursor"].is_null());

    let since = fleet.start - chrono::Duration::hours(1);
    let counters = api
        .get(&format!(
            "/api/v1/tenants/acme/ingest/counters?since={}",
            ts(since)
        ))
        .await;
    assert_eq!(counters.status, 200, "{}", counters.text());
    let c = counters.json();
    assert_eq!(c["since"], ts(since));
    assert_eq!(c["batches"], 3);
    assert_eq!(c["historical_batches"], 0);
    assert_eq!(c["samples"], 1200 * 3);
    assert_eq!(c["last_batch_at"], ts(fleet.end()));
    let reasons: Vec<_> = ids(&c["rejections"], "reason");
    assert_eq!(reasons, ["malformed", "unknown_gateway"]);
    // The default window is the last 24 hours: the seeded batches are older.
    let recent = api.get("/api/v1/tenants/acme/ingest/counters").await.json();
    assert_eq!(recent["batches"], 0);
    assert_eq!(recent["rejections"].as_array().unwrap().len(), 2);
    api.finish().await;
}

#[tokio::test]
async fn metrics_expose_ingester_and_api_counters() {
    let api = TestApi::start("api_metrics").await;
    api.stats
        .batches_stored
        .fetch_add(5, std::sync::atomic::Ordering::Relaxed);
    let _ = api.get("/health").await;
    let _ = api.get("/nowhere").await;
    let metrics = api.get("/metrics").await;
    assert_eq!(metrics.status, 200);
    assert!(
        metrics
            .header("content-type")
            .unwrap()
            .starts_with("application/openmetrics-text; version=1.0.0")
    );
    let text = metrics.text();
    assert!(
        text.contains("wellpulse_ingest_batches_stored_total 5\n"),
        "{text}"
    );
    assert!(
        text.contains("wellpulse_api_responses_total{class=\"2xx\"} 1\n"),
        "{text}"
    );
    assert!(
        text.contains("wellpulse_api_responses_total{class=\"4xx\"} 1\n"),
        "{text}"
    );
    api.finish().await;
}
