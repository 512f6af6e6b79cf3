//! Latest values reach a browser's stream as they are stored, pushed, across processes:
//! simulator → agents → embedded broker → **two** ingesters sharing the subscription, each
//! with its own database pool (the only path from them to the API is PostgreSQL's
//! `NOTIFY wellpulse_telemetry`) → the API's `GET …/latest/stream`.
//!
//! Checked: the stream starts with a snapshot of the selected well's series, then sends
//! `latest` events carrying only that well's series, never older than what the stream
//! said before and some newer, at most about one per second; the JSON read (`GET …/latest`) agrees;
//! another tenant's member and bad parameters are refused before any stream starts.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use api::{ApiOptions, ApiState};
use serde_json::Value;
use store::identity::Role;
use testkit::http;
use tests::stack::{BrokerKind, Stack, TENANT};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

const BROKER_BIN: &str = env!("CARGO_BIN_EXE_wp-test-broker");
const WAIT: Duration = Duration::from_secs(60);

/// Opens a stream and returns its `(event, data)` pairs as they come.
async fn open_stream(
    addr: std::net::SocketAddr,
    token: &str,
    query: &str,
) -> tokio::sync::mpsc::UnboundedReceiver<(String, String)> {
    let mut stream = TcpStream::connect(addr).await.expect("connect to the API");
    let request = format!(
        "GET /api/v1/tenants/{TENANT}/latest/stream?{query} HTTP/1.1\r\nHost: {addr}\r\n\
         Authorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut lines = BufReader::new(stream).lines();
        let mut event = String::new();
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(name) = line.strip_prefix("event: ") {
                event = name.to_owned();
            } else if let Some(data) = line.strip_prefix("data: ")
                && tx
                    .send((std::mem::take(&mut event), data.to_owned()))
                    .is_err()
            {
                break;
            }
        }
    });
    rx
}

async fn next(
    stream: &mut tokio::sync::mpsc::UnboundedReceiver<(String, String)>,
) -> (String, Value) {
    let (event, data) = tokio::time::timeout(WAIT, stream.recv())
        .await
        .expect("an event within a minute")
        .expect("the stream stays open");
    (event, serde_json::from_str(&data).expect("JSON data"))
}

fn values(data: &Value) -> &Vec<Value> {
    data["values"].as_array().expect("values")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stored_values_are_pushed_to_the_well_stream_across_ingesters() -> anyhow::Result<()> {
    let stack = Stack::start_fleet(
        BrokerKind::Embedded,
        2,
        &["rod-pump-controller"],
        BROKER_BIN,
    )
    .await?;
    let second = stack.start_extra_ingester("b")?;
    stack.wait_rows(50, Duration::from_secs(120)).await?;

    let state = ApiState::new(stack.db.clone(), ApiOptions::default());
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(api::serve(listener, state, std::future::pending::<()>()));
    let tenant = stack.db.tenant_by_slug(TENANT).await?.expect("tenant");
    let viewer = testkit::auth::member_token(&stack.db, tenant, Role::Viewer).await;
    let path = |rest: &str| format!("/api/v1/tenants/{TENANT}{rest}");

    // The wells, as the API lists them; the stream follows the first.
    let wells = http::send_as(addr, &viewer, "GET", &path("/wells"), None).await;
    assert_eq!(wells.status, 200, "{}", wells.text());
    let wells = wells.json();
    let well = wells["items"][0]["id"].as_i64().expect("a well");

    // Refused before any stream: bad parameters, an unknown well, another tenant.
    for (query, status) in [
        ("well=abc", 400),
        ("metric=tubing_pressure", 400),
        ("bogus=1", 400),
        ("well=999999", 404),
    ] {
        let answer = http::send_as(
            addr,
            &viewer,
            "GET",
            &path(&format!("/latest/stream?{query}")),
            None,
        )
        .await;
        assert_eq!(answer.status, status, "{query}: {}", answer.text());
        assert!(answer.json()["error"]["message"].is_string(), "{query}");
    }
    stack
        .db
        .provision_gateway("other", "pad-9", "gw-other", "other-secret-0123456789")
        .await?;
    let other = stack
        .db
        .tenant_by_slug("other")
        .await?
        .expect("other tenant");
    let stranger = testkit::auth::member_token(&stack.db, other, Role::TenantAdmin).await;
    let refused = http::send_as(addr, &stranger, "GET", &path("/latest/stream"), None).await;
    assert_eq!(refused.status, 404, "{}", refused.text());

    // The snapshot: this well's series, each with its newest sample.
    let mut stream = open_stream(addr, &viewer, &format!("well={well}")).await;
    let (event, snapshot) = next(&mut stream).await;
    assert_eq!(event, "snapshot");
    assert!(!values(&snapshot).is_empty(), "{snapshot}");
    let mut newest: HashMap<i64, String> = HashMap::new();
    for v in values(&snapshot) {
        assert_eq!(v["well_id"], well, "{v}");
        newest.insert(
            v["series_id"].as_i64().unwrap(),
            v["time"].as_str().unwrap().to_owned(),
        );
    }

    // Pushed updates: only this well, only newer samples, at most about one per second.
    let mut arrivals = Vec::new();
    let mut changed = 0;
    while arrivals.len() < 4 {
        let (event, update) = next(&mut stream).await;
        assert_eq!(event, "latest", "{update}");
        arrivals.push(Instant::now());
        for v in values(&update) {
            assert_eq!(v["well_id"], well, "{v}");
            let series = v["series_id"].as_i64().unwrap();
            let time = chrono::DateTime::parse_from_rfc3339(v["time"].as_str().unwrap())?;
            if let Some(before) = newest.get(&series) {
                let before = chrono::DateTime::parse_from_rfc3339(before)?;
                // The same sample may be in the snapshot and the first update (the stream
                // subscribes before it reads the snapshot); never an older one.
                assert!(time >= before, "{v} is older than {before}");
                changed += usize::from(time > before);
            }
            newest.insert(series, v["time"].as_str().unwrap().to_owned());
        }
    }
    assert!(changed > 0, "a series of the snapshot got a newer value");
    for pair in arrivals.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            gap >= Duration::from_millis(800),
            "updates {gap:?} apart: the stream is coalesced to about one per second"
        );
    }

    // The JSON read agrees with what the stream said (never older).
    let now = http::send_as(
        addr,
        &viewer,
        "GET",
        &path(&format!("/latest?well={well}")),
        None,
    )
    .await;
    assert_eq!(now.status, 200, "{}", now.text());
    for v in values(&now.json()) {
        let series = v["series_id"].as_i64().unwrap();
        let streamed = newest.get(&series).expect("every series was in the stream");
        let read = chrono::DateTime::parse_from_rfc3339(v["time"].as_str().unwrap())?;
        assert!(
            read >= chrono::DateTime::parse_from_rfc3339(streamed)?,
            "{v}"
        );
    }

    assert!(
        second.stats().snapshot().batches_stored > 0,
        "both ingesters stored batches (the shared subscription split them)"
    );
    server.abort();
    second.abort();
    stack.finish().await
}
