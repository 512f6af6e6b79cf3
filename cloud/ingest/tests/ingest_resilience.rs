//! Failure behaviour: an ingester killed mid-round, PostgreSQL going away and coming back,
//! and two ingesters sharing one subscription group. Nothing may be lost or stored twice.

use std::time::Duration;

use sqlx::postgres::PgPoolOptions;
use store::Db;
use testkit::mqtt::*;
use testkit::proxy::Proxy;
use wire::topic::Kind;

/// A `Db` reaching PostgreSQL through `proxy`, with short pool timeouts.
async fn db_via(proxy: &Proxy, test: &TestDb) -> Db {
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(2))
        .connect(&proxy.url_for(test.scratch.url()))
        .await
        .expect("connect through the proxy");
    Db::from_pool(pool, storage_options())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ingester_killed_before_commit_loses_nothing_and_stores_once() {
    init_tracing();
    let test = TestDb::new("ing_kill").await;
    let secret = test.provision("gw-1").await;
    let broker = Broker::start(&test.db).await;
    let proxy = Proxy::in_front_of(test.scratch.url()).await;
    let first = start_ingester(
        &db_via(&proxy, &test).await,
        &broker.ingester_endpoint("ingest-a"),
        test_options(),
    )
    .await;
    let gw = FakeGateway::connect(broker.v4, TENANT, "gw-1", &secret).await;
    gw.send_birth(&test, &birth(5)).await;

    // The database goes away: the first ingester receives the batch but cannot commit.
    proxy.cut();
    let b = batch(1, 5, 1_700_001_000_000, 42);
    gw.publish(Kind::Data, b.encode().unwrap()).await;
    let stats = stats_of(&first);
    wait_until("the ingester retrying its transaction", || {
        let stats = stats.clone();
        async move { stats.snapshot().db_retries >= 2 }
    })
    .await;
    // Killed before commit: nothing stored, nothing acked.
    first.abort();
    assert!(!gw.acked(1));
    assert_eq!(test.count("ingested_batches").await, 0);

    // A new ingester takes over; the agent re-sends what was never acked.
    proxy.restore();
    let second = start_ingester(
        &test.db,
        &broker.ingester_endpoint("ingest-b"),
        test_options(),
    )
    .await;
    gw.send_until_acked(&b).await;
    assert_eq!(test.count("ingested_batches").await, 1);
    assert_eq!(test.count("telemetry").await, 3);
    // Re-delivery of the very same batch afterwards is a duplicate, never a second copy.
    gw.publish(Kind::Data, b.encode().unwrap()).await;
    wait_until("second ack", || async { gw.ack_count(1) >= 2 }).await;
    assert_eq!(test.count("telemetry").await, 3);
    second.abort();
    test.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_outage_holds_messages_unacked_and_loses_nothing() {
    init_tracing();
    let test = TestDb::new("ing_pgdown").await;
    let secret = test.provision("gw-1").await;
    let broker = Broker::start(&test.db).await;
    let proxy = Proxy::in_front_of(test.scratch.url()).await;
    let ingester = start_ingester(
        &db_via(&proxy, &test).await,
        &broker.ingester_endpoint("ingest-a"),
        test_options(),
    )
    .await;
    let stats = stats_of(&ingester);
    let gw = FakeGateway::connect(broker.v4, TENANT, "gw-1", &secret).await;
    gw.send_birth(&test, &birth(8)).await;
    let batches: Vec<_> = (1..=15)
        .map(|seq| batch(seq, 8, 1_700_002_000_000 + seq as i64 * 1000, seq as i64))
        .collect();
    for b in &batches[..5] {
        gw.send_until_acked(b).await;
    }

    proxy.cut();
    for b in &batches[5..] {
        gw.publish(Kind::Data, b.encode().unwrap()).await;
    }
    wait_until("retries during the outage", || {
        let stats = stats.clone();
        async move { stats.snapshot().db_retries >= 3 }
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        (6..=15).all(|seq| !gw.acked(seq)),
        "nothing may be acked while the database is down"
    );
    assert_eq!(
        stats.snapshot().rejected_total(),
        0,
        "an outage is not a rejection"
    );

    // The database comes back: the held messages are committed and acked without any
    // re-send, in order of arrival.
    proxy.restore();
    wait_until("acks of the held batches", || async {
        (6..=15).all(|seq| gw.acked(seq))
    })
    .await;
    assert_eq!(test.count("ingested_batches").await, 15);
    assert_eq!(test.count("telemetry").await, 45);
    let s = stats.snapshot();
    assert_eq!((s.batches_stored, s.batches_duplicate), (15, 0));
    assert_eq!(s.rejected_total(), 0);
    ingester.abort();
    test.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_ingesters_in_one_group_split_the_load_and_store_everything_once() {
    init_tracing();
    let test = TestDb::new("ing_share").await;
    let broker = Broker::start(&test.db).await;
    let a = start_ingester(
        &test.db,
        &broker.ingester_endpoint("ingest-a"),
        test_options(),
    )
    .await;
    let b = start_ingester(
        &test.db,
        &broker.ingester_endpoint("ingest-b"),
        test_options(),
    )
    .await;
    let mut gateways = Vec::new();
    for (i, name) in ["gw-1", "gw-2", "gw-3"].iter().enumerate() {
        let secret = test.provision(name).await;
        let gw = FakeGateway::connect(broker.v4, TENANT, name, &secret).await;
        gw.send_birth(&test, &birth(100 + i as u64)).await;
        gateways.push(gw);
    }
    let per_gateway = 20u64;
    for (i, gw) in gateways.iter().enumerate() {
        for seq in 1..=per_gateway {
            let b = batch(
                seq,
                100 + i as u64,
                1_700_003_000_000 + seq as i64 * 1000,
                1,
            );
            gw.publish(Kind::Data, b.encode().unwrap()).await;
        }
    }
    // Like the agent: whatever is not acked after a while is re-sent.
    for (i, gw) in gateways.iter().enumerate() {
        for seq in 1..=per_gateway {
            let b = batch(
                seq,
                100 + i as u64,
                1_700_003_000_000 + seq as i64 * 1000,
                1,
            );
            gw.send_until_acked(&b).await;
        }
    }
    let total = 3 * per_gateway;
    assert_eq!(test.count("ingested_batches").await, total as i64);
    assert_eq!(test.count("telemetry").await, 3 * total as i64);
    let (sa, sb) = (a.stats().snapshot(), b.stats().snapshot());
    assert!(
        sa.batches_stored > 0 && sb.batches_stored > 0,
        "both ingesters must take a share: {} / {}",
        sa.batches_stored,
        sb.batches_stored
    );
    assert_eq!(sa.batches_stored + sb.batches_stored, total);
    a.abort();
    b.abort();
    test.finish().await;
}
