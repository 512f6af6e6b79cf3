//! A gateway provisioned through the API, end to end: an administrator creates the site,
//! the well and the gateway (with its devices) over HTTP, starts the real agent with the
//! `agent.toml` the API issued — only its data directory and metrics port adapted to this
//! machine — and the gateway's data appears under that well, read back through the API.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, ensure};
use serde_json::json;
use tests::stack::{BrokerKind, Stack, TENANT};
use tokio::net::TcpListener;

const BROKER_BIN: &str = env!("CARGO_BIN_EXE_wp-test-broker");
const WAIT: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_gateway_provisioned_through_the_api_delivers_under_its_well() -> anyhow::Result<()> {
    let stack = Stack::without_agents(BrokerKind::Embedded, 1, BROKER_BIN).await?;
    stack.db.create_tenant(TENANT, "Acme Energy").await?;

    // The API over the stack's database, issuing configs that point at its broker.
    let options = api::ApiOptions {
        gateway_mqtt_url: format!("mqtt://127.0.0.1:{}", stack.broker.v4_port),
        ..api::ApiOptions::default()
    };
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop_api, api_stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(api::serve(
        listener,
        api::ApiState::new(stack.db.clone(), options),
        async {
            let _ = api_stopped.await;
        },
    ));
    let admin = testkit::auth::platform_admin_token(&stack.db).await;
    let call = |method: &'static str, path: String, body: Option<serde_json::Value>| {
        let admin = admin.clone();
        async move { testkit::http::send_as(addr, &admin, method, &path, body.as_ref()).await }
    };
    let base = format!("/api/v1/tenants/{TENANT}");

    let site = call(
        "POST",
        format!("{base}/sites"),
        Some(json!({ "name": "Pad 1", "state": "TX" })),
    )
    .await;
    ensure!(site.status == 201, "site: {}", site.text());
    let site_id = site.json()["id"].as_i64().context("site id")?;
    let endpoints = stack.simulator.endpoints();
    let well_name = endpoints[0].well.clone();
    let well = call(
        "POST",
        format!("{base}/wells"),
        Some(
            json!({ "site_id": site_id, "api_number": "42-329-40001", "name": well_name,
                     "county": "Midland", "state": "TX" }),
        ),
    )
    .await;
    ensure!(well.status == 201, "well: {}", well.text());
    let well_id = well.json()["id"].as_i64().context("well id")?;
    let devices: Vec<serde_json::Value> = endpoints
        .iter()
        .filter(|e| e.well == well_name)
        .map(|e| {
            json!({ "name": e.device, "profile": e.profile, "tcp": e.addr.to_string(),
                    "unit_id": e.unit_id, "well": "42-329-40001",
                    "poll": { "fast": "1s", "slow": "5s" } })
        })
        .collect();
    let gateway = call(
        "POST",
        format!("{base}/gateways"),
        Some(json!({ "gateway": "pad-1-gw1", "site_id": site_id, "devices": devices })),
    )
    .await;
    ensure!(gateway.status == 201, "gateway: {}", gateway.text());
    let issued = gateway.json()["agent_toml"]
        .as_str()
        .context("agent_toml")?
        .to_owned();

    // The installer's two local choices: where the buffer lives, where metrics listen.
    let data_dir = stack.dir.path().join("pad-1-gw1");
    std::fs::create_dir_all(&data_dir)?;
    let metrics = SocketAddr::from(([127, 0, 0, 1], free_port()?));
    let toml = issued
        .replace(
            "data_dir = \"/var/lib/wellpulse\"",
            &format!("data_dir = {:?}", data_dir.display().to_string()),
        )
        .replace(
            "listen = \"127.0.0.1:9102\"",
            &format!("listen = \"{metrics}\""),
        );
    ensure!(
        toml != issued,
        "the issued file has the expected data_dir and listen lines"
    );
    let path = stack.dir.path().join("pad-1-gw1.toml");
    std::fs::write(&path, &toml)?;
    let (stop_agent, agent_stopped) = tokio::sync::oneshot::channel::<()>();
    let agent = tokio::spawn(async move {
        agent::run(&path, async {
            let _ = agent_stopped.await;
        })
        .await
    });

    // The well's metrics appear (its devices linked by the birth's `well`), and telemetry
    // of one of them reads back.
    let deadline = tokio::time::Instant::now() + WAIT;
    let metrics_of = format!("{base}/wells/{well_id}/metrics");
    let metric = loop {
        let r = call("GET", metrics_of.clone(), None).await;
        ensure!(r.status == 200, "metrics: {}", r.text());
        if let Some(m) = r.json()["metrics"]
            .as_array()
            .and_then(|m| m.first())
            .cloned()
        {
            break m["metric"].as_str().context("metric name")?.to_owned();
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "no metric under the well within {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let rows = stack.wait_rows(20, WAIT).await?;
    ensure!(rows >= 20, "{rows} rows");
    let now = chrono::Utc::now();
    let from =
        (now - chrono::TimeDelta::minutes(10)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let to =
        (now + chrono::TimeDelta::minutes(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let telemetry = call(
        "GET",
        format!("{base}/wells/{well_id}/telemetry?metric={metric}&from={from}&to={to}&bucket=raw"),
        None,
    )
    .await;
    ensure!(telemetry.status == 200, "telemetry: {}", telemetry.text());
    let samples: usize = telemetry.json()["series"]
        .as_array()
        .map(|s| {
            s.iter()
                .map(|x| x["samples"].as_array().map_or(0, Vec::len))
                .sum()
        })
        .unwrap_or(0);
    ensure!(samples > 0, "no samples of {metric}: {}", telemetry.text());

    let _ = stop_agent.send(());
    agent.await??;
    let _ = stop_api.send(());
    let _ = server.await;
    stack.finish().await
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}
