//! The ingester's readiness through the embedded broker and its front listener: a gateway
//! may subscribe to the state topics and receives the retained "online" the ingester
//! published after its SUBACK; a gateway's own publish there is dropped; when the ingester
//! dies, its last will says "offline" of the same session.

use testkit::mqtt::*;
use testkit::probe::{Probe, Version};
use wire::CloudState;

fn states(probe: &Probe, topic: &str) -> Vec<CloudState> {
    probe
        .seen()
        .received
        .iter()
        .filter(|(t, _)| t == topic)
        .map(|(_, p)| CloudState::decode(p).expect("a state the gateway can read"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ingester_announces_online_after_subscribing_and_offline_by_its_will() {
    init_tracing();
    let test = TestDb::new("ing_state").await;
    let secret = test.provision("gw-1").await;
    let broker = Broker::start(&test.db).await;
    let ingester = start_ingester(
        &test.db,
        &broker.ingester_endpoint("ingest-a"),
        test_options(),
    )
    .await;
    let topic = wire::topic::state_topic("ingest-a");

    let gateway = Probe::connect(
        broker.v4,
        Version::V4,
        &broker::gateway_client_id(TENANT, "gw-1"),
        &format!("{TENANT}/gw-1"),
        &secret,
    )
    .await;
    assert!(gateway.accepted());
    assert_eq!(
        gateway.subscribe(wire::topic::STATE_FILTER).await,
        vec![1],
        "a gateway may read the cloud's state"
    );
    let seen = gateway
        .wait("the retained online", |s| {
            s.received.iter().any(|(t, _)| *t == topic)
        })
        .await;
    assert_eq!(seen.received.len(), 1);
    let online = states(&gateway, &topic)[0];
    assert!(online.online);

    // A gateway cannot forge the state: its publish is answered and dropped.
    let forged = CloudState {
        online: false,
        session_ms: online.session_ms + 1,
    };
    gateway.publish_acked(&topic, &forged.encode()).await;

    // The ingester dies (no DISCONNECT): the broker publishes its will.
    ingester.abort();
    gateway
        .wait("the will", |s| {
            s.received.iter().filter(|(t, _)| *t == topic).count() >= 2
        })
        .await;
    let all = states(&gateway, &topic);
    assert_eq!(
        all,
        vec![
            online,
            CloudState {
                online: false,
                session_ms: online.session_ms
            }
        ],
        "online then the will of the same session, nothing forged in between"
    );
    test.finish().await;
}
