//! A hostile gateway, end to end: simulator → real agent → broker → ingester → PostgreSQL,
//! with a second, hostile client that has a valid login of ANOTHER gateway (of another
//! tenant). The broker here is a Mosquitto without an ACL — a broker mistake, the case
//! the second lock exists for (the embedded broker's front listener and the generated
//! Mosquitto ACL would stop the client at the first lock: `cloud/broker/tests`). So it
//! reads the victim's traffic and publishes forged acks and
//! refusals while the cloud is down and the agent holds unacked batches (obeyed, they would
//! make it delete or set aside batches the cloud never stored), commands (a setpoint write,
//! a configuration update re-pointing the agent to a rogue broker, a rebirth), a birth
//! rescaling the victim's values by 1000, a batch with the victim's boot id and a future
//! seq, and a death. Message authentication must make all of it worthless: nothing is lost
//! (every batch the agent created is stored exactly once), nothing is executed or answered,
//! stored values match the simulator, and the victim's genuine batch with the forged seq is
//! stored normally.

use std::time::Duration;

use anyhow::{Context, ensure};
use ingest::RejectReason;
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS};
use tests::load::gateway_password;
use tests::stack::{BrokerKind, Stack, TENANT, agent_metric};
use tokio::sync::mpsc;
use tokio::time::Instant;
use wire::topic::{Kind, topic};

const BROKER_BIN: &str = env!("CARGO_BIN_EXE_wp-test-broker");
const HOSTILE_TENANT: &str = "globex";
const HOSTILE: &str = "gw-evil";
const WAIT: Duration = Duration::from_secs(120);
/// Ids of the forged commands.
const FORGED_IDS: std::ops::Range<u64> = 1000..1003;

/// What the hostile client receives.
#[derive(Debug)]
enum Incoming {
    SubAck,
    Publish(String, Vec<u8>),
}

/// The hostile client: logged in as its own gateway, snooping on the victim's topics. Its
/// connection is driven by a task that forwards what arrives.
struct Hostile {
    client: AsyncClient,
    events: mpsc::UnboundedReceiver<Incoming>,
    key: wire::MessageKey,
    driver: tokio::task::JoinHandle<()>,
    /// The victim's command results seen (read without the key: [1, message, tag]).
    results: Vec<wire::CommandResult>,
}

async fn drive(mut events: EventLoop, tx: mpsc::UnboundedSender<Incoming>) {
    loop {
        let incoming = match events.poll().await {
            Ok(Event::Incoming(Packet::SubAck(_))) => Incoming::SubAck,
            Ok(Event::Incoming(Packet::Publish(p))) => {
                Incoming::Publish(p.topic, p.payload.to_vec())
            }
            Ok(_) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "hostile client connection error");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if tx.send(incoming).is_err() {
            return;
        }
    }
}

/// The message inside a sealed payload, read without checking the tag.
fn unsealed(payload: &[u8]) -> &[u8] {
    &payload[2..payload.len() - wire::seal::TAG_LEN - 1]
}

impl Hostile {
    fn connect(port: u16) -> Hostile {
        let mut options = MqttOptions::new(
            broker::gateway_client_id(HOSTILE_TENANT, HOSTILE),
            "127.0.0.1",
            port,
        );
        let password = gateway_password(HOSTILE);
        options
            .set_credentials(format!("{HOSTILE_TENANT}/{HOSTILE}"), password.clone())
            .set_keep_alive(Duration::from_secs(30))
            .set_max_packet_size(1 << 20, 1 << 20);
        let (client, events) = AsyncClient::new(options, 256);
        let (tx, rx) = mpsc::unbounded_channel();
        Hostile {
            client,
            events: rx,
            key: wire::MessageKey::derive(password.as_bytes()),
            driver: tokio::spawn(drive(events, tx)),
            results: Vec::new(),
        }
    }

    /// The next thing received; command results are kept on the way.
    async fn next(&mut self) -> anyhow::Result<Incoming> {
        let incoming = tokio::time::timeout(WAIT, self.events.recv())
            .await
            .context("hostile client received nothing")?
            .context("hostile client connection driver stopped")?;
        if let Incoming::Publish(t, payload) = &incoming
            && t.ends_with("/cmd/result")
        {
            self.results
                .push(wire::CommandResult::decode(unsealed(payload))?);
        }
        Ok(incoming)
    }

    /// Waits for a publish on `topic`; returns its payload.
    async fn next_on(&mut self, topic: &str) -> anyhow::Result<Vec<u8>> {
        loop {
            if let Incoming::Publish(t, payload) = self.next().await?
                && t == topic
            {
                return Ok(payload);
            }
        }
    }

    /// Subscribes and waits for the SUBACK.
    async fn subscribe(&mut self, topics: &[String]) -> anyhow::Result<()> {
        for t in topics {
            self.client.subscribe(t, QoS::AtLeastOnce).await?;
            while !matches!(self.next().await?, Incoming::SubAck) {}
        }
        Ok(())
    }

    /// Publishes `payloads` on `topic`; returns how many.
    async fn publish_all(&self, topic: &str, payloads: Vec<Vec<u8>>) -> anyhow::Result<u32> {
        let n = payloads.len() as u32;
        for payload in payloads {
            self.client
                .publish(topic, QoS::AtLeastOnce, false, payload)
                .await?;
        }
        Ok(n)
    }
}

async fn agent_counter(stack: &Stack, name: &str) -> anyhow::Result<f64> {
    // A labelled counter is absent until its first increment.
    Ok(agent_metric(&stack.agents[0], name).await.unwrap_or(0.0))
}

async fn wait_for(
    what: &str,
    mut done: impl AsyncFnMut() -> anyhow::Result<bool>,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + WAIT;
    while !done().await? {
        ensure!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

async fn stored_boot(stack: &Stack, gateway: &str, seq: u64) -> anyhow::Result<Option<i64>> {
    Ok(sqlx::query_scalar(
        "SELECT b.boot_id FROM ingested_batches b JOIN gateways g ON g.id = b.gateway_id
         WHERE g.slug = $1 AND b.seq = $2",
    )
    .bind(gateway)
    .bind(i64::try_from(seq)?)
    .fetch_optional(stack.db.pool())
    .await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hostile_gateway_can_neither_lose_the_victims_data_nor_act_on_its_devices()
-> anyhow::Result<()> {
    let mut stack = Stack::start(BrokerKind::Mosquitto, 1, BROKER_BIN).await?;
    stack.wait_rows(50, WAIT).await?;
    let victim = stack.agents[0].gateway.clone();
    stack
        .db
        .provision_gateway(HOSTILE_TENANT, "pad-9", HOSTILE, &gateway_password(HOSTILE))
        .await?;
    let mut hostile = Hostile::connect(stack.broker.v4_port);
    let on_victim = |kind| topic(TENANT, &victim, kind);
    // Nothing stops it from reading the victim's traffic.
    hostile
        .subscribe(&[Kind::Data, Kind::CmdResult, Kind::Death].map(on_victim))
        .await?;
    let captured = hostile.next_on(&on_victim(Kind::Data)).await?;
    let seen = wire::Batch::decode(unsealed(&captured)).context("captured batch")?;
    let boot_id = seen.header.boot_id;

    // With the cloud down, the agent holds unacked batches: forged acks and refusals of
    // all of them (and far beyond), and forged commands.
    stack.kill_ingester();
    wait_for("unacked batches in the agent", async || {
        Ok(agent_counter(&stack, "wellpulse_buffer_pending_batches").await? >= 3.0)
    })
    .await?;
    let held = agent_counter(&stack, "wellpulse_buffer_pending_batches").await?;
    let everything = 1..=seen.header.seq + 10_000;
    let ack = wire::Ack::of(everything.clone()).encode();
    let nack = wire::Ack::rejecting(
        [],
        vec![wire::Rejected::permanent(
            everything,
            wire::Rejected::SEQ_CONFLICT,
            "forged",
        )],
    )
    .encode();
    let ack_topic = on_victim(Kind::Ack);
    let mut acks = 0;
    for message in [&ack, &nack] {
        let payloads = vec![
            message.clone(),
            wire::seal::seal(&hostile.key, &ack_topic, message),
            // The victim's own sealed data, replayed as an ack.
            captured.clone(),
        ];
        acks += hostile.publish_all(&ack_topic, payloads).await?;
    }
    let expires_ms = chrono::Utc::now().timestamp_millis() + 60_000;
    let commands = [
        wire::CommandKind::WriteSetpoint {
            device: 0,
            metric: 0,
            value: 9999.0,
            expected_current: None,
        },
        wire::CommandKind::ConfigUpdate {
            toml: "[gateway]\ntenant = \"e2e\"\nid = \"gw-00\"\n\n\
                   [mqtt]\nurl = \"mqtt://203.0.113.9:1883\"\n"
                .into(),
        },
        wire::CommandKind::Rebirth { boot_id: None },
    ];
    let cmd_topic = on_victim(Kind::Cmd);
    let mut cmds = 0;
    for (id, kind) in FORGED_IDS.zip(commands) {
        let message = wire::Command {
            id,
            expires_ms,
            kind,
        }
        .encode();
        let payloads = vec![
            message.clone(),
            wire::seal::seal(&hostile.key, &cmd_topic, &message),
        ];
        cmds += hostile.publish_all(&cmd_topic, payloads).await?;
    }
    wait_for(
        "the agent to ignore every forged ack and command",
        async || {
            let a = agent_counter(
                &stack,
                "wellpulse_uplink_messages_unauthenticated_total{kind=\"ack\"}",
            )
            .await?;
            let c = agent_counter(
                &stack,
                "wellpulse_uplink_messages_unauthenticated_total{kind=\"cmd\"}",
            )
            .await?;
            Ok(a == f64::from(acks) && c == f64::from(cmds))
        },
    )
    .await?;
    ensure!(
        agent_counter(&stack, "wellpulse_buffer_pending_batches").await? >= held,
        "forged acks deleted unstored batches"
    );
    ensure!(
        agent_counter(&stack, "wellpulse_buffer_set_aside_batches").await? == 0.0,
        "forged refusals set batches aside"
    );

    // The cloud is back; forged edge messages: a birth of the victim's boot with a
    // thousandfold scale, a batch of its boot with a seq a few batches ahead, a death.
    stack.start_ingester()?;
    let stats = || {
        stack
            .ingester
            .as_ref()
            .expect("ingester")
            .stats()
            .snapshot()
    };
    wait_for("the ingester's subscriptions", async || {
        Ok(stats().mqtt_subscribed >= 1)
    })
    .await?;
    let newest = wire::Batch::decode(unsealed(&hostile.next_on(&on_victim(Kind::Data)).await?))?;
    let future = newest.header.seq.max(seen.header.seq) + 8;
    let birth = wire::Birth {
        boot_id,
        ts_ms: chrono::Utc::now().timestamp_millis(),
        agent_version: "0.1.0".into(),
        config_hash: "forged".into(),
        devices: vec![wire::DeviceEntry {
            alias: 0,
            name: "pump".into(),
            profile: "rod-pump-controller".into(),
            info: Vec::new(),
            metrics: vec![wire::MetricEntry {
                alias: 0,
                canonical: "tubing_pressure_psi".into(),
                tag: "tubing_pressure".into(),
                unit: "psi".into(),
                scale: 1000.0,
                offset: 0.0,
                writable: false,
                kind: None,
            }],
        }],
    };
    let mut forged_batch = seen.clone();
    forged_batch.header.seq = future;
    let death = wire::Death {
        boot_id,
        ts_ms: chrono::Utc::now().timestamp_millis(),
    };
    let mut edge = 0u64;
    for (kind, message) in [
        (Kind::Birth, birth.encode()),
        (Kind::Data, forged_batch.encode()?),
        (Kind::Death, death.encode()),
    ] {
        let t = on_victim(kind);
        let payloads = vec![
            message.clone(),
            wire::seal::seal(&hostile.key, &t, &message),
        ];
        edge += u64::from(hostile.publish_all(&t, payloads).await?);
    }
    wait_for("the ingester to refuse every forged message", async || {
        Ok(stats().rejected(RejectReason::Unauthenticated) >= edge)
    })
    .await?;
    ensure!(stats().rejected(RejectReason::Unauthenticated) == edge);
    ensure!(stats().nacks_published == 0, "a forgery was answered");
    let online: bool = sqlx::query_scalar("SELECT online FROM gateways WHERE slug = $1")
        .bind(&victim)
        .fetch_one(stack.db.pool())
        .await?;
    ensure!(online, "a forged death took the victim offline");
    // The victim's genuine batch with the seq the forgery claimed is stored, under its boot.
    wait_for("the victim's own batch with the forged seq", async || {
        Ok(stored_boot(&stack, &victim, future).await?.is_some())
    })
    .await?;

    // Nothing was executed: the rogue config is not in place, and the agent answered none
    // of the forged commands (it answers every command it executes, and refusals the
    // cloud should know about). Its graceful death follows any answer on the same
    // connection, so everything up to it has been seen.
    let config = std::fs::read_to_string(&stack.agents[0].config)?;
    ensure!(
        !config.contains("203.0.113.9"),
        "the rogue config was applied"
    );
    stack.agents[0].stop().await?;
    hostile.next_on(&on_victim(Kind::Death)).await?;
    let answered: Vec<_> = hostile
        .results
        .iter()
        .filter(|r| FORGED_IDS.contains(&r.id))
        .collect();
    ensure!(
        answered.is_empty(),
        "forged commands were run: {answered:?}"
    );
    hostile.driver.abort();

    // Nothing lost, nothing rescaled.
    let (batches, samples) = stack.verify_exactly_once().await?;
    ensure!(
        batches >= future && samples > 0,
        "{batches} batches, {samples} samples"
    );
    ensure!(
        stored_boot(&stack, &victim, future).await? == Some(boot_id as i64),
        "the forged seq is stored under another boot"
    );
    let compared = stack.verify_values(300).await?;
    ensure!(compared > 0, "no values compared");
    stack.finish().await
}
