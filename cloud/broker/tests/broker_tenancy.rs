//! Tenant isolation at the MQTT door, tried as a hostile gateway would, on the embedded
//! broker (front listener → rumqttd) and on Mosquitto with the generated ACL.
//!
//! Gateway A is `acme/gw-a`, gateway B is `globex/gw-b`; the ingester's identity watches.
//! Every "nothing arrived" assertion is taken after a barrier message that would have
//! arrived after the forbidden one (same connection or same topic, so the same order).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use broker::{DropReason, FrontOptions};
use testkit::mqtt::*;
use testkit::probe::{Probe, Version};

const A: (&str, &str) = ("acme", "gw-a");
const B: (&str, &str) = ("globex", "gw-b");

fn secret((tenant, gateway): (&str, &str)) -> String {
    format!("secret-of-{tenant}-{gateway}-0123456789")
}

fn user((tenant, gateway): (&str, &str)) -> String {
    format!("{tenant}/{gateway}")
}

fn topic((tenant, gateway): (&str, &str), kind: &str) -> String {
    format!("wp/v1/{tenant}/{gateway}/{kind}")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Embedded,
    /// Mosquitto with the shipped `mosquitto.conf` (password file, acl_file).
    Mosquitto,
    /// Mosquitto with the shipped `mosquitto-dynsec.conf` (dynamic-security plugin).
    MosquittoDynsec,
}

/// A broker under attack: where gateways (3.1.1 / 5) and the ingester connect.
struct Target {
    kind: Kind,
    v4: SocketAddr,
    v5: SocketAddr,
    embedded: Option<(TestDb, Broker)>,
    _mosquitto: Option<Mosquitto>,
}

impl Target {
    async fn embedded(prefix: &str, options: FrontOptions) -> Target {
        init_tracing();
        let db = TestDb::new(prefix).await;
        for (t, g) in [A, B] {
            assert_eq!(db.provision_in(t, g).await, secret((t, g)));
        }
        let broker = Broker::start_with(&db.db, options).await;
        Target {
            kind: Kind::Embedded,
            v4: broker.v4,
            v5: broker.v5,
            embedded: Some((db, broker)),
            _mosquitto: None,
        }
    }

    fn mosquitto() -> Target {
        init_tracing();
        let (sa, sb) = (secret(A), secret(B));
        let (ua, ub) = (user(A), user(B));
        let m = Mosquitto::start(&[(ua.as_str(), sa.as_str()), (ub.as_str(), sb.as_str())]);
        Target {
            kind: Kind::Mosquitto,
            v4: m.plain,
            v5: m.plain,
            embedded: None,
            _mosquitto: Some(m),
        }
    }

    async fn mosquitto_dynsec() -> Target {
        init_tracing();
        let (sa, sb) = (secret(A), secret(B));
        let (ua, ub) = (user(A), user(B));
        let m = Mosquitto::start_dynsec(&[(ua.as_str(), sa.as_str()), (ub.as_str(), sb.as_str())])
            .await;
        Target {
            kind: Kind::MosquittoDynsec,
            v4: m.plain,
            v5: m.plain,
            embedded: None,
            _mosquitto: Some(m),
        }
    }

    fn addr(&self, version: Version) -> SocketAddr {
        match version {
            Version::V4 => self.v4,
            Version::V5 => self.v5,
        }
    }

    async fn gateway(&self, who: (&str, &str), version: Version) -> Probe {
        let client_id = broker::gateway_client_id(who.0, who.1);
        let p = Probe::connect(
            self.addr(version),
            version,
            &client_id,
            &user(who),
            &secret(who),
        )
        .await;
        assert!(p.accepted(), "{} login refused: {:?}", user(who), p.seen());
        p
    }

    async fn ingester(&self, client_id: &str) -> Probe {
        let p = Probe::connect(
            self.v5,
            Version::V5,
            client_id,
            INGESTER_USER,
            INGESTER_PASSWORD,
        )
        .await;
        assert!(p.accepted(), "ingester login refused: {:?}", p.seen());
        p
    }

    /// The SUBACK code a refused filter gets. Mosquitto 2.0's acl_file grants every
    /// SUBSCRIBE (3.1.1 and 5) and then delivers nothing the ACL forbids (checked below);
    /// its dynamic-security plugin refuses as the embedded broker does.
    fn refused_filter_code(&self, version: Version) -> u8 {
        match (self.kind, version) {
            (Kind::Embedded | Kind::MosquittoDynsec, Version::V4) => 0x80,
            (Kind::Embedded | Kind::MosquittoDynsec, Version::V5) => 0x87,
            (Kind::Mosquitto, _) => 1,
        }
    }

    /// Whether a gateway's SUBSCRIBE to the ingesters' shared group is refused.
    fn refuses_shared_group(&self) -> bool {
        self.kind != Kind::Mosquitto
    }

    async fn finish(self) {
        if let Some((db, _broker)) = self.embedded {
            db.finish().await;
        }
    }
}

/// A cannot subscribe to B's topics, to `#`, to cross-gateway wildcards or to the
/// ingester's shared group; it receives nothing of B's while its own topics still work.
async fn subscriptions_stay_within_the_prefix(target: &Target, version: Version) {
    let ingester = target.ingester("wp-ingester-1").await;
    assert_eq!(
        ingester.subscribe("$share/ingest/wp/v1/+/+/data").await,
        vec![1]
    );
    let a = target.gateway(A, version).await;
    let b = target.gateway(B, Version::V4).await;
    assert_eq!(
        a.subscribe(&topic(A, "ack")).await,
        vec![1],
        "own ack topic"
    );
    let refused = target.refused_filter_code(version);
    let mut filters = vec![
        topic(B, "ack"),
        topic(B, "data"),
        "#".to_owned(),
        "wp/v1/+/+/data".to_owned(),
        "wp/v1/globex/#".to_owned(),
        "$SYS/#".to_owned(),
    ];
    if target.refuses_shared_group() {
        // Mosquitto's acl_file lets a gateway join the group: see
        // `mosquitto_acl_file_lets_a_gateway_join_the_ingesters_shared_group`.
        filters.push("$share/ingest/wp/v1/+/+/data".to_owned());
    }
    for filter in filters {
        let codes = a.subscribe(&filter).await;
        assert_eq!(
            codes,
            vec![refused],
            "{:?} {version:?}: {filter}",
            target.kind
        );
    }

    // B's data reaches the ingester's group; where A could not join the group and take a
    // share, all of it.
    const N: usize = 6;
    for i in 0..N {
        b.publish_acked(&topic(B, "data"), format!("b-{i}").as_bytes())
            .await;
    }
    b.publish_acked(&topic(B, "data"), b"last").await;
    ingester.received(&topic(B, "data"), b"last").await;
    // Then an ack to B and, last, one to A: A sees only its own.
    ingester.publish(&topic(B, "ack"), b"ack-b").await;
    ingester.publish(&topic(A, "ack"), b"ack-a").await;
    a.received(&topic(A, "ack"), b"ack-a").await;
    // (Only topics are compared: Mosquitto may deliver A's ack once per matching
    // subscription, its own filter and the granted `#`.)
    let topics = a.seen().topics();
    assert!(
        topics.iter().all(|t| *t == topic(A, "ack")),
        "{:?} {version:?}: A received another gateway's messages: {topics:?}",
        target.kind
    );
    if target.refuses_shared_group() {
        assert_eq!(ingester.seen().received.len(), N + 1);
    }
}

/// A cannot publish data, births, command results, acks or commands on B's topics; B and
/// the ingester receive nothing of it, while A's own messages still flow.
async fn publishing_stays_within_the_prefix(target: &Target, version: Version) {
    let watcher = target.ingester("wp-ingester-1").await;
    for kind in ["data", "birth", "death", "cmd/result"] {
        assert_eq!(
            watcher.subscribe(&format!("wp/v1/+/+/{kind}")).await,
            vec![1]
        );
    }
    let b = target.gateway(B, Version::V4).await;
    assert_eq!(b.subscribe(&topic(B, "ack")).await, vec![1]);
    assert_eq!(b.subscribe(&topic(B, "cmd")).await, vec![1]);
    let a = target.gateway(A, version).await;
    for kind in ["data", "birth", "cmd/result", "ack", "cmd"] {
        let code = a.publish_acked(&topic(B, kind), b"spoofed").await;
        if (target.kind, version) == (Kind::Embedded, Version::V5) {
            assert_eq!(code, 0x87, "MQTT 5 PUBACK Not authorized for {kind}");
        }
    }
    // A's own data, published after the spoofs on the same connection, arrives.
    a.publish(&topic(A, "data"), b"own").await;
    watcher.received(&topic(A, "data"), b"own").await;
    // A marker on B's ack topic, published after the spoofs were handled.
    watcher.publish(&topic(B, "ack"), b"marker").await;
    b.received(&topic(B, "ack"), b"marker").await;
    assert_eq!(
        watcher.seen().topics(),
        vec![topic(A, "data")],
        "{:?} {version:?}: a spoofed message reached the ingester",
        target.kind
    );
    assert_eq!(
        b.seen().received,
        vec![(topic(B, "ack"), b"marker".to_vec())],
        "{:?} {version:?}: a spoofed message reached gateway B",
        target.kind
    );
}

async fn wrong_password_code(target: &Target, version: Version) -> Option<u8> {
    let p = Probe::connect(
        target.addr(version),
        version,
        &broker::gateway_client_id(A.0, A.1),
        &user(A),
        "not-the-secret-of-gw-a",
    )
    .await;
    assert!(!p.accepted());
    p.refused()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_gateways_cannot_subscribe_outside_their_prefix() {
    let target = Target::embedded("brk_sub", FrontOptions::default()).await;
    subscriptions_stay_within_the_prefix(&target, Version::V4).await;
    subscriptions_stay_within_the_prefix(&target, Version::V5).await;
    let (_, broker) = target.embedded.as_ref().unwrap();
    let text = metrics_text(broker);
    assert!(
        text.contains(
            r#"wellpulse_broker_refused_subscriptions_total{tenant="acme",gateway="gw-a"} 14"#
        ),
        "{text}"
    );
    target.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_gateways_cannot_subscribe_outside_their_prefix() {
    let target = Target::mosquitto();
    subscriptions_stay_within_the_prefix(&target, Version::V4).await;
    subscriptions_stay_within_the_prefix(&target, Version::V5).await;
}

/// The gap below, closed: with the shipped `mosquitto-dynsec.conf` and the roles
/// `wellpulse-cloud mosquitto-dynsec` applies, a gateway can subscribe to nothing but its
/// own `ack`, `cmd` and the state topics — not the ingesters' shared group — and every
/// message of B reaches the ingester.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_dynsec_gateways_cannot_subscribe_outside_their_prefix_nor_join_the_group() {
    let target = Target::mosquitto_dynsec().await;
    subscriptions_stay_within_the_prefix(&target, Version::V4).await;
    subscriptions_stay_within_the_prefix(&target, Version::V5).await;
}

/// Pins a weakness of Mosquitto 2.0's `acl_file` (see broker-config/README.md): it grants
/// a gateway's SUBSCRIBE to the ingester's shared group and only filters at delivery, so
/// the messages the group hands to the gateway are lost to the ingester (the agents
/// re-send them after their ack timeout; nothing is stored wrongly, nothing leaks). The
/// embedded broker refuses the SUBSCRIBE (above). When this test fails, Mosquitto closed
/// the gap: move the filter back into `subscriptions_stay_within_the_prefix`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_acl_file_lets_a_gateway_join_the_ingesters_shared_group() {
    let target = Target::mosquitto();
    let ingester = target.ingester("wp-ingester-1").await;
    assert_eq!(
        ingester.subscribe("$share/ingest/wp/v1/+/+/data").await,
        vec![1]
    );
    let a = target.gateway(A, Version::V4).await;
    let b = target.gateway(B, Version::V4).await;
    assert_eq!(a.subscribe("$share/ingest/wp/v1/+/+/data").await, vec![1]);
    const N: usize = 6;
    for i in 0..N {
        b.publish_acked(&topic(B, "data"), format!("b-{i}").as_bytes())
            .await;
    }
    // A barrier through the same publisher: b-5 is the last of the round robin.
    b.publish_acked(&topic(B, "data"), b"last").await;
    ingester.received(&topic(B, "data"), b"last").await;
    let got = ingester.seen().received.len();
    assert!(
        got < N + 1,
        "the group lost messages to the gateway: {got} of {}",
        N + 1
    );
    assert!(
        a.seen().received.is_empty(),
        "but the gateway reads nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_gateways_cannot_publish_on_other_gateways_topics() {
    let target = Target::embedded("brk_pub", FrontOptions::default()).await;
    publishing_stays_within_the_prefix(&target, Version::V4).await;
    publishing_stays_within_the_prefix(&target, Version::V5).await;
    let (_, broker) = target.embedded.as_ref().unwrap();
    assert_eq!(
        broker
            .broker
            .metrics()
            .dropped_count(A.0, A.1, DropReason::TopicDenied),
        10
    );
    target.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_gateways_cannot_publish_on_other_gateways_topics() {
    let target = Target::mosquitto();
    publishing_stays_within_the_prefix(&target, Version::V4).await;
    publishing_stays_within_the_prefix(&target, Version::V5).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_wrong_passwords_are_refused_with_reason_codes_then_throttled() {
    let options = FrontOptions {
        login_free_failures: 3,
        login_backoff_min: Duration::from_secs(30),
        login_backoff_max: Duration::from_secs(60),
        ..FrontOptions::default()
    };
    let target = Target::embedded("brk_login", options).await;
    // 3.1.1: 0x04 Bad user name or password; MQTT 5: 0x86.
    assert_eq!(wrong_password_code(&target, Version::V4).await, Some(0x04));
    assert_eq!(wrong_password_code(&target, Version::V5).await, Some(0x86));
    assert_eq!(wrong_password_code(&target, Version::V4).await, Some(0x04));
    // The fourth failure blocks the address and the username: 0x9F Connection rate
    // exceeded (3.1.1 has no such code: 0x05 Not authorized), even with the right password.
    assert_eq!(wrong_password_code(&target, Version::V4).await, Some(0x04));
    assert_eq!(wrong_password_code(&target, Version::V5).await, Some(0x9F));
    assert_eq!(wrong_password_code(&target, Version::V4).await, Some(0x05));
    let right = Probe::connect(
        target.v5,
        Version::V5,
        &broker::gateway_client_id(A.0, A.1),
        &user(A),
        &secret(A),
    )
    .await;
    assert_eq!(right.refused(), Some(0x9F), "blocked while throttled");
    // Another client id than `wp-{tenant}-{gateway}`: 0x85 Client identifier not valid
    // (from this address, still blocked: checked on a fresh broker below).
    let (_, broker) = target.embedded.as_ref().unwrap();
    let m = broker.broker.metrics();
    assert_eq!(m.login_count("bad_credentials"), 4);
    assert_eq!(m.login_count("throttled"), 3);
    target.finish().await;

    let target = Target::embedded("brk_login2", FrontOptions::default()).await;
    let wrong_id = Probe::connect(
        target.v5,
        Version::V5,
        "wp-globex-gw-b",
        &user(A),
        &secret(A),
    )
    .await;
    assert_eq!(wrong_id.refused(), Some(0x85));
    let wrong_id = Probe::connect(
        target.v4,
        Version::V4,
        "wp-globex-gw-b",
        &user(A),
        &secret(A),
    )
    .await;
    assert_eq!(wrong_id.refused(), Some(0x02));
    target.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_wrong_passwords_are_refused() {
    let target = Target::mosquitto();
    // Mosquitto answers a wrong password with 0x05 Not authorized (3.1.1) and 0x87 Not
    // authorized (5); it has no failed-login throttling of its own.
    assert_eq!(wrong_password_code(&target, Version::V4).await, Some(0x05));
    assert_eq!(wrong_password_code(&target, Version::V5).await, Some(0x87));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_will_outside_the_prefix_is_refused() {
    let target = Target::embedded("brk_will", FrontOptions::default()).await;
    for (version, code) in [(Version::V4, 0x05), (Version::V5, 0x87)] {
        let refused = Probe::connect_with_will(
            target.addr(version),
            version,
            &broker::gateway_client_id(A.0, A.1),
            &user(A),
            &secret(A),
            &topic(B, "death"),
        )
        .await;
        assert_eq!(refused.refused(), Some(code), "{version:?}");
        let own = Probe::connect_with_will(
            target.addr(version),
            version,
            &broker::gateway_client_id(A.0, A.1),
            &user(A),
            &secret(A),
            &topic(A, "death"),
        )
        .await;
        assert!(own.accepted(), "{version:?}: {:?}", own.seen());
    }
    target.finish().await;
}

/// Revoking a credential and kicking over `NOTIFY wp_broker_kick` disconnects the gateway
/// within a second and refuses its next login; another gateway keeps flowing. The plain
/// handle disconnects a whole tenant (MQTT 5: DISCONNECT 0x98 Administrative action).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_gateway_is_kicked_within_a_second_and_refused_afterwards() {
    let target = Target::embedded("brk_kick", FrontOptions::default()).await;
    let (db, broker) = target.embedded.as_ref().unwrap();
    let mut listener = broker::spawn_kick_listener(db.db.clone(), broker.broker.kicker().clone());
    listener.ready().await;
    let watcher = target.ingester("wp-ingester-1").await;
    assert_eq!(watcher.subscribe("wp/v1/+/+/data").await, vec![1]);
    let a = target.gateway(A, Version::V4).await;
    let b = target.gateway(B, Version::V5).await;
    let kicker = broker.broker.kicker();
    assert_eq!(kicker.connected(A.0, A.1), 1);

    // Revoke A's credential (a new secret), then ask every broker to kick it.
    db.db
        .provision_gateway(A.0, "pad-1", A.1, "a-brand-new-secret-0123456789")
        .await
        .unwrap();
    let asked = Instant::now();
    db.db.notify_broker_kick("acme/gw-a").await.unwrap();
    a.wait("A disconnected", |s| s.closed).await;
    let took = asked.elapsed();
    assert!(took < Duration::from_secs(1), "kick took {took:?}");
    // B still flows.
    b.publish(&topic(B, "data"), b"still here").await;
    watcher.received(&topic(B, "data"), b"still here").await;
    assert!(!b.seen().closed);
    // A's old secret is refused now.
    let again = Probe::connect(
        target.v4,
        Version::V4,
        &broker::gateway_client_id(A.0, A.1),
        &user(A),
        &secret(A),
    )
    .await;
    assert_eq!(again.refused(), Some(0x04));

    // The handle: a whole tenant, at once.
    let asked = Instant::now();
    assert_eq!(kicker.disconnect_tenant(B.0), 1);
    let seen = b.wait("B disconnected", |s| s.closed).await;
    assert!(asked.elapsed() < Duration::from_secs(1));
    assert_eq!(seen.disconnect, Some(0x98));
    assert_eq!(kicker.connected(B.0, B.1), 0);
    target.finish().await;
}

/// Suspending a tenant refuses its gateways' logins and, with the kick the API sends, drops
/// their connections; another tenant's gateway keeps flowing. Reactivating lets them back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspended_tenants_gateways_are_kicked_and_refused_until_reactivated() {
    let target = Target::embedded("brk_suspend", FrontOptions::default()).await;
    let (db, broker) = target.embedded.as_ref().unwrap();
    let mut listener = broker::spawn_kick_listener(db.db.clone(), broker.broker.kicker().clone());
    listener.ready().await;
    let watcher = target.ingester("wp-ingester-1").await;
    assert_eq!(watcher.subscribe("wp/v1/+/+/data").await, vec![1]);
    let a = target.gateway(A, Version::V5).await;
    let b = target.gateway(B, Version::V4).await;
    let mut conn = db.db.pool().acquire().await.unwrap();
    store::tenants::set_tenant_status(&mut conn, A.0, store::tenants::TenantStatus::Suspended)
        .await
        .unwrap()
        .unwrap();
    let asked = Instant::now();
    db.db.notify_broker_kick(A.0).await.unwrap();
    let seen = a.wait("A disconnected", |s| s.closed).await;
    assert!(
        asked.elapsed() < Duration::from_secs(1),
        "kick took {:?}",
        asked.elapsed()
    );
    assert_eq!(seen.disconnect, Some(0x98));
    b.publish(&topic(B, "data"), b"other tenant flows").await;
    watcher
        .received(&topic(B, "data"), b"other tenant flows")
        .await;
    let refused = Probe::connect(
        target.v4,
        Version::V4,
        &broker::gateway_client_id(A.0, A.1),
        &user(A),
        &secret(A),
    )
    .await;
    assert!(
        refused.refused().is_some(),
        "a suspended tenant's gateway logged in"
    );
    store::tenants::set_tenant_status(&mut conn, A.0, store::tenants::TenantStatus::Active)
        .await
        .unwrap()
        .unwrap();
    let back = Probe::connect(
        target.v4,
        Version::V4,
        &broker::gateway_client_id(A.0, A.1),
        &user(A),
        &secret(A),
    )
    .await;
    assert!(back.accepted(), "{:?}", back.seen());
    drop(conn);
    target.finish().await;
}

/// One gateway flooding 10,000 QoS 1 messages gets its burst and then its rate through;
/// the rest is dropped and counted, and another gateway's messages still flow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_gateway_is_held_to_its_rate_and_others_keep_flowing() {
    let options = FrontOptions {
        messages_per_second: 20,
        message_burst: 50,
        ..FrontOptions::default()
    };
    let target = Target::embedded("brk_flood", options.clone()).await;
    let watcher = target.ingester("wp-ingester-1").await;
    assert_eq!(watcher.subscribe("wp/v1/+/+/data").await, vec![1]);
    let a = target.gateway(A, Version::V4).await;
    let b = target.gateway(B, Version::V4).await;
    let started = Instant::now();
    const FLOOD: usize = 10_000;
    for i in 0..FLOOD {
        a.publish(&topic(A, "data"), format!("junk-{i}").as_bytes())
            .await;
    }
    a.wait("PUBACKs of the whole flood", |s| s.pubacks.len() >= FLOOD)
        .await;
    // Every packet of A has been through the front: the count is final.
    let elapsed = started.elapsed().as_secs_f64();
    let (_, broker) = target.embedded.as_ref().unwrap();
    let dropped = broker
        .broker
        .metrics()
        .dropped_count(A.0, A.1, DropReason::MessageRate) as usize;
    let passed = FLOOD - dropped;
    let allowed =
        f64::from(options.message_burst) + f64::from(options.messages_per_second) * elapsed;
    assert!(
        passed as f64 <= allowed + 1.0,
        "{passed} of the flood passed in {elapsed:.2}s"
    );
    assert!(passed >= options.message_burst as usize, "the burst passes");
    let a_data = topic(A, "data");
    watcher
        .wait("what passed of the flood", |s| {
            s.received.iter().filter(|(t, _)| *t == a_data).count() >= passed
        })
        .await;
    b.publish(&topic(B, "data"), b"b-after-flood").await;
    watcher.received(&topic(B, "data"), b"b-after-flood").await;
    let from_a = watcher
        .seen()
        .received
        .iter()
        .filter(|(t, _)| *t == a_data)
        .count();
    assert_eq!(from_a, passed, "every message passed or counted");
    assert!(!a.seen().closed, "dropping, not disconnecting");
    target.finish().await;
}

fn metrics_text(broker: &Broker) -> String {
    let mut registry = prometheus_client::registry::Registry::default();
    broker.broker.metrics().register(&mut registry);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    text
}

/// The claim behind `pattern readwrite wp/v1/%u/#`: with usernames `tenant/gateway`, %u
/// expands to exactly the gateway's prefix, so a gateway reads nothing of another. Also
/// why the generated ACL does not use it: any single-level username (`acme`) that has a
/// password gets the whole tenant (`wp/v1/acme/#`); with the generated ACL it gets nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_username_patterns_confine_gateways_but_not_single_level_users() {
    init_tracing();
    let (sa, sb) = (secret(A), secret(B));
    let (ua, ub) = (user(A), user(B));
    let users = [
        (ua.as_str(), sa.as_str()),
        (ub.as_str(), sb.as_str()),
        ("acme", "a-tenant-wide-secret-123"),
    ];
    let ingester_block = broker::mosquitto::acl(&[], &[INGESTER_USER.to_owned()]);
    let generated = {
        let registry = [A, B].map(|(t, g)| (t.to_owned(), g.to_owned()));
        broker::mosquitto::acl(&registry, &[INGESTER_USER.to_owned()])
    };
    for (acl, tenant_user_reads) in [
        (
            format!("pattern readwrite wp/v1/%u/#\n\n{ingester_block}"),
            true,
        ),
        (generated, false),
    ] {
        let m = Mosquitto::start_with_acl(&users, &acl);
        let target = Target {
            kind: Kind::Mosquitto,
            v4: m.plain,
            v5: m.plain,
            embedded: None,
            _mosquitto: None,
        };
        let ingester = target.ingester("wp-ingester-1").await;
        ingester.subscribe("wp/v1/+/+/data").await;
        let a = target.gateway(A, Version::V4).await;
        let b = target.gateway(B, Version::V4).await;
        let tenant = Probe::connect(
            m.plain,
            Version::V4,
            "acme",
            "acme",
            "a-tenant-wide-secret-123",
        )
        .await;
        assert!(tenant.accepted());
        a.subscribe(&topic(B, "data")).await;
        a.subscribe("#").await;
        tenant.subscribe("wp/v1/acme/#").await;
        b.publish_acked(&topic(B, "data"), b"b").await;
        a.publish_acked(&topic(A, "data"), b"a").await;
        ingester.received(&topic(A, "data"), b"a").await;
        ingester.received(&topic(B, "data"), b"b").await;
        // A's own message is the barrier for A's subscriptions: only it may arrive (A may
        // read its own prefix under the pattern ACL).
        a.publish_acked(&topic(A, "cmd/result"), b"barrier").await;
        if tenant_user_reads {
            tenant.received(&topic(A, "data"), b"a").await;
            a.received(&topic(A, "cmd/result"), b"barrier").await;
            assert!(
                a.seen()
                    .topics()
                    .iter()
                    .all(|t| t.starts_with("wp/v1/acme/gw-a/"))
            );
        } else {
            // A's `#` grant delivers what the ACL lets A read: its own ack, nothing else.
            ingester.publish(&topic(A, "ack"), b"ack-a").await;
            a.received(&topic(A, "ack"), b"ack-a").await;
            assert!(a.seen().topics().iter().all(|t| *t == topic(A, "ack")));
            assert!(tenant.seen().received.is_empty(), "{:?}", tenant.seen());
        }
        drop(m);
    }
}

/// Reconnecting does not refill a gateway's buckets: the limits are the gateway's, not
/// its connection's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnecting_does_not_reset_a_gateways_rate() {
    let options = FrontOptions {
        messages_per_second: 5,
        message_burst: 20,
        ..FrontOptions::default()
    };
    let target = Target::embedded("brk_reconnect", options.clone()).await;
    let watcher = target.ingester("wp-ingester-1").await;
    assert_eq!(watcher.subscribe("wp/v1/+/+/data").await, vec![1]);
    let started = Instant::now();
    const EACH: usize = 100;
    for round in 0..3 {
        let a = target.gateway(A, Version::V5).await;
        for i in 0..EACH {
            a.publish(&topic(A, "data"), format!("{round}-{i}").as_bytes())
                .await;
        }
        a.wait("PUBACKs of the round", |s| s.pubacks.len() >= EACH)
            .await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let (_, broker) = target.embedded.as_ref().unwrap();
    let dropped = broker
        .broker
        .metrics()
        .dropped_count(A.0, A.1, DropReason::MessageRate) as usize;
    let passed = 3 * EACH - dropped;
    let allowed =
        f64::from(options.message_burst) + f64::from(options.messages_per_second) * elapsed;
    assert!(
        passed as f64 <= allowed + 1.0,
        "{passed} passed in {elapsed:.2}s over three connections"
    );
    target.finish().await;
}
