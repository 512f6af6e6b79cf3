//! Mutual TLS end to end: an administrator creates a gateway and issues it a client
//! certificate through the API; the real agent runs with the issued `agent.toml` whose
//! `[mqtt.tls]` table is the one the certificate came with (`client_cert`/`client_key`,
//! files as issued), through the embedded broker's front listener that requires client
//! certificates; its data is stored. The same agent without its certificate is refused.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, ensure};
use base::Secret;
use broker::ClientCertificates;
use ingest::{IngestOptions, Ingester, MqttEndpoint};
use serde_json::json;
use simulator::{FleetConfig, Simulator};
use testkit::mqtt::{INGESTER_PASSWORD, INGESTER_USER};
use testkit::mtls::{CA_KEY, MtlsBroker};
use tests::stack::{fresh_database, lazy_db};
use tokio::net::TcpListener;

const TENANT: &str = "mtls";
const WAIT: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_agent_with_its_issued_certificate_delivers_through_a_required_listener()
-> anyhow::Result<()> {
    testkit::mqtt::init_tracing();
    let dir = tempfile::tempdir()?;
    let database_url = fresh_database("wp_mtls").await?;
    let db = lazy_db(&database_url)?;
    db.migrate().await.context("migrate")?;
    db.create_tenant(TENANT, "mTLS Energy").await?;

    let broker = MtlsBroker::start(&db, dir.path(), ClientCertificates::Required).await;
    let ingester = Ingester::start(
        db.clone(),
        &MqttEndpoint {
            host: broker.plain5.ip().to_string(),
            port: broker.plain5.port(),
            tls: None,
            client_id: "ingester-mtls".to_owned(),
            username: INGESTER_USER.to_owned(),
            password: Secret::new(INGESTER_PASSWORD),
        },
        IngestOptions {
            max_batch_delay: Duration::from_millis(50),
            ..IngestOptions::default()
        },
    )?;
    let simulator = Simulator::start(
        FleetConfig {
            seed: 11,
            wells: 1,
            devices_per_well: vec!["rod-pump-controller".into()],
            ..FleetConfig::default()
        },
        [127, 0, 0, 1].into(),
    )
    .await
    .context("simulator")?;

    // The API, issuing configs that point at the broker's TLS listener by name.
    let options = api::ApiOptions {
        gateway_mqtt_url: format!("mqtts://localhost:{}", broker.tls4.port()),
        ca_key: Some(Secret::new(CA_KEY)),
        ..api::ApiOptions::default()
    };
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop_api, api_stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(api::serve(
        listener,
        api::ApiState::new(db.clone(), options),
        async {
            let _ = api_stopped.await;
        },
    ));
    let admin = testkit::auth::platform_admin_token(&db).await;
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
    let devices: Vec<serde_json::Value> = simulator
        .endpoints()
        .iter()
        .map(|e| {
            json!({ "name": e.device, "profile": e.profile, "tcp": e.addr.to_string(),
                    "unit_id": e.unit_id, "poll": { "fast": "1s", "slow": "5s" } })
        })
        .collect();
    let gateway = call(
        "POST",
        format!("{base}/gateways"),
        Some(json!({ "gateway": "gw-tls", "site_id": site_id, "devices": devices })),
    )
    .await;
    ensure!(gateway.status == 201, "gateway: {}", gateway.text());
    let issued_toml = gateway.json()["agent_toml"]
        .as_str()
        .context("agent_toml")?
        .to_owned();
    let cert = call("POST", format!("{base}/gateways/gw-tls/certificates"), None).await;
    ensure!(cert.status == 201, "certificate: {}", cert.text());
    let cert = cert.json();

    // The installer's steps: the files as issued, the [mqtt.tls] table the certificate
    // came with in place of the issued one, paths and local choices adapted.
    let files = dir.path().join("etc");
    std::fs::create_dir_all(&files)?;
    std::fs::write(
        files.join("gw-tls.crt"),
        cert["certificate_pem"].as_str().context("certificate")?,
    )?;
    std::fs::write(
        files.join("gw-tls.key"),
        cert["private_key_pem"].as_str().context("key")?,
    )?;
    // The broker's CA (the tenant CA signs gateways, not the broker).
    std::fs::copy(&broker.ca, files.join("ca.pem"))?;
    let tls_table = cert["agent_toml_tls"]
        .as_str()
        .context("agent_toml_tls")?
        .replace("/etc/wellpulse", &files.display().to_string());
    let (before_tls, _) = issued_toml
        .split_once("\n[mqtt.tls]\n")
        .context("an mqtts agent.toml has a [mqtt.tls] table")?;
    let after_tls = issued_toml
        .split_once("\n[mqtt.tls]\n")
        .and_then(|(_, rest)| rest.split_once("\n\n"))
        .map(|(_, rest)| rest)
        .context("more after [mqtt.tls]")?;
    let data_dir = dir.path().join("buffer");
    std::fs::create_dir_all(&data_dir)?;
    let metrics = SocketAddr::from(([127, 0, 0, 1], free_port()?));
    let toml = format!("{before_tls}\n{tls_table}\n{after_tls}")
        .replace(
            "data_dir = \"/var/lib/wellpulse\"",
            &format!("data_dir = {:?}", data_dir.display().to_string()),
        )
        .replace(
            "listen = \"127.0.0.1:9102\"",
            &format!("listen = \"{metrics}\""),
        );
    ensure!(toml.contains("client_cert = "), "{toml}");
    let path = dir.path().join("agent.toml");
    std::fs::write(&path, &toml)?;

    // Without the certificate lines the same agent is refused at the door.
    let refused_before = broker.broker.metrics().login_count("certificate");
    let bare = toml
        .lines()
        .filter(|l| !l.starts_with("client_cert") && !l.starts_with("client_key"))
        .collect::<Vec<_>>()
        .join("\n");
    let bare_path = dir.path().join("bare.toml");
    std::fs::write(
        &bare_path,
        bare.replace(&metrics.to_string(), &format!("127.0.0.1:{}", free_port()?)),
    )?;
    let (stop_bare, bare_stopped) = tokio::sync::oneshot::channel::<()>();
    let bare_agent = tokio::spawn(async move {
        agent::run(&bare_path, async {
            let _ = bare_stopped.await;
        })
        .await
    });
    let deadline = tokio::time::Instant::now() + WAIT;
    while broker.broker.metrics().login_count("certificate") == refused_before {
        ensure!(
            tokio::time::Instant::now() < deadline,
            "the agent without a certificate was never refused"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = stop_bare.send(());
    bare_agent.await??;
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM telemetry")
        .fetch_one(db.pool())
        .await?;
    ensure!(rows == 0, "nothing delivered without the certificate");

    // With it: logged in, data stored.
    let (stop_agent, agent_stopped) = tokio::sync::oneshot::channel::<()>();
    let agent = tokio::spawn(async move {
        agent::run(&path, async {
            let _ = agent_stopped.await;
        })
        .await
    });
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM telemetry")
            .fetch_one(db.pool())
            .await?;
        if rows >= 20 {
            break;
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "only {rows} telemetry rows within {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    ensure!(
        broker.broker.kicker().connected(TENANT, "gw-tls") == 1,
        "the agent's session is the gateway's"
    );
    let _ = stop_agent.send(());
    agent.await??;
    ingester.abort();
    let _ = stop_api.send(());
    let _ = server.await;
    db.pool().close().await;
    tests::load::drop_database(&database_url).await?;
    Ok(())
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}
