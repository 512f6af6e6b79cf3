//! The shipped files run as documented: Mosquitto started from `broker-config/mosquitto.conf`
//! (after the steps of `broker-config/README.md`: the certificate made by
//! `make-broker-cert.sh`, password lines through `mosquitto_passwd`'s standard input, the
//! ACL `wellpulse-cloud mosquitto-acl` writes), and the real agent run from
//! `agent/examples/agent.toml` through Mosquitto's TLS listener. What must differ on a test
//! machine is rewritten and nothing else: ports and file paths of the broker (the machine's
//! own Mosquitto holds 1883), and in the agent's file the broker address, CA file, secret,
//! data directory, metrics port and the devices' Modbus endpoints (the simulator's, each
//! serving the example device's profile). Every example device's data must arrive under the
//! example's tenant and gateway, and the pump's under its well.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, ensure};
use simulator::{FleetConfig, Simulator};
use store::NewWell;
use testkit::mqtt::{INGESTER_USER, Mosquitto, free_port, ingester_endpoint, start_ingester};
use tests::stack::{fresh_database, lazy_db};

const WAIT: Duration = Duration::from_secs(90);

fn example_config() -> anyhow::Result<toml::Table> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../agent/examples/agent.toml");
    let text = std::fs::read_to_string(&path).context("read the example")?;
    Ok(toml::from_str(&text)?)
}

fn table<'a>(t: &'a mut toml::Table, key: &str) -> anyhow::Result<&'a mut toml::Table> {
    t.get_mut(key)
        .and_then(toml::Value::as_table_mut)
        .with_context(|| format!("[{key}] in the example"))
}

fn text(t: &toml::Table, key: &str) -> anyhow::Result<String> {
    t.get(key)
        .and_then(toml::Value::as_str)
        .map(str::to_owned)
        .with_context(|| format!("{key} in the example"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_example_agent_config_runs_through_the_shipped_mosquitto() -> anyhow::Result<()> {
    let mut example = example_config()?;
    let gateway = table(&mut example, "gateway")?.clone();
    let (tenant, gateway_id) = (text(&gateway, "tenant")?, text(&gateway, "id")?);
    let username = text(table(&mut example, "mqtt")?, "username")?;
    ensure!(
        username == format!("{tenant}/{gateway_id}"),
        "the example's username {username:?} is not the one the brokers accept"
    );
    let devices = example
        .get("device")
        .and_then(toml::Value::as_array)
        .context("[[device]] in the example")?
        .clone();
    let profiles: Vec<String> = devices
        .iter()
        .map(|d| {
            d.get("profile")
                .and_then(toml::Value::as_str)
                .map(str::to_owned)
        })
        .collect::<Option<_>>()
        .context("every example device names a built-in profile")?;

    // The cloud side: the example's tenant, gateway and the pump's well.
    let database_url = fresh_database("wp_shipped").await?;
    let db = lazy_db(&database_url)?;
    db.migrate().await?;
    let secret = "shipped-example-gateway-secret-0123";
    let provisioned = db
        .provision_gateway(&tenant, "pad-17", &gateway_id, secret)
        .await?;
    let well_number = devices
        .iter()
        .find_map(|d| d.get("well").and_then(toml::Value::as_str))
        .context("an example device names its well")?
        .to_owned();
    let well = db
        .create_well(&NewWell {
            tenant: provisioned.tenant,
            site: provisioned.site,
            api_number: &well_number,
            name: "Well 17A",
            lease: "",
            field: "",
            county: "Midland",
            state: "TX",
        })
        .await?;

    // Mosquitto as shipped, with the documented files, and the ingester on its loopback
    // listener.
    let broker = Mosquitto::start(&[(username.as_str(), secret)]);
    let ingester = start_ingester(
        &db,
        &ingester_endpoint(broker.plain, "wp-ingester-shipped", INGESTER_USER),
        testkit::mqtt::test_options(),
    )
    .await;

    // One simulated device per example device, same profiles, in the same order.
    let simulator = Simulator::start(
        FleetConfig {
            seed: 17,
            wells: 1,
            devices_per_well: profiles.clone(),
            ..FleetConfig::default()
        },
        [127, 0, 0, 1].into(),
    )
    .await?;
    let endpoints = simulator.endpoints();
    ensure!(endpoints.len() == devices.len(), "one endpoint per device");

    // The example, with only this machine's addresses, paths and the secret.
    let dir = tempfile::tempdir()?;
    let gw = table(&mut example, "gateway")?;
    gw.insert(
        "data_dir".into(),
        dir.path().join("data").display().to_string().into(),
    );
    let mqtt = table(&mut example, "mqtt")?;
    mqtt.insert(
        "url".into(),
        format!("mqtts://localhost:{}", broker.tls.port()).into(),
    );
    mqtt.insert("password".into(), secret.into());
    table(mqtt, "tls")?.insert(
        "ca_file".into(),
        broker.ca_file.display().to_string().into(),
    );
    table(&mut example, "metrics")?
        .insert("listen".into(), format!("127.0.0.1:{}", free_port()).into());
    let list = example
        .get_mut("device")
        .and_then(toml::Value::as_array_mut)
        .context("[[device]]")?;
    for (device, endpoint) in list.iter_mut().zip(&endpoints) {
        let device = device.as_table_mut().context("device table")?;
        device.insert("tcp".into(), endpoint.addr.to_string().into());
        device.insert("unit_id".into(), i64::from(endpoint.unit_id).into());
    }
    let config = dir.path().join("agent.toml");
    std::fs::write(&config, toml::to_string(&example)?)?;
    agent::config::Config::load(&config).context("the adapted example validates")?;

    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let path = config.clone();
    let agent = tokio::spawn(async move {
        agent::run(&path, async {
            let _ = stopped.await;
        })
        .await
    });

    // Every example device's samples are stored, under the example's gateway.
    let names: Vec<String> = devices
        .iter()
        .filter_map(|d| {
            d.get("name")
                .and_then(toml::Value::as_str)
                .map(str::to_owned)
        })
        .collect();
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut rows: BTreeMap<String, i64>;
    loop {
        rows = sqlx::query_as::<_, (String, i64)>(
            "SELECT d.name, count(*) FROM telemetry t
               JOIN series s ON s.id = t.series_id
               JOIN devices d ON d.id = s.device_id
               JOIN gateways g ON g.id = d.gateway_id
              WHERE g.id = $1
              GROUP BY d.name",
        )
        .bind(provisioned.gateway.0)
        .fetch_all(db.pool())
        .await?
        .into_iter()
        .collect();
        if names.iter().all(|n| rows.get(n).is_some_and(|&c| c > 0)) {
            break;
        }
        if agent.is_finished() {
            let outcome = agent.await?;
            anyhow::bail!("the agent stopped: {outcome:?}; stored so far {rows:?}");
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "not every example device stored within {WAIT:?}: {rows:?}; broker log: {}",
            broker.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let pump_well: Option<i64> = sqlx::query_scalar("SELECT well_id FROM devices WHERE name = $1")
        .bind(&names[0])
        .fetch_one(db.pool())
        .await?;
    ensure!(pump_well == Some(well.0), "the pump is linked to its well");

    let _ = stop.send(());
    agent.await??;
    ingester.abort();
    drop(simulator);
    db.pool().close().await;
    tests::load::drop_database(&database_url).await?;
    Ok(())
}
