//! What authentication costs (`cargo bench -p api --bench auth`).
//!
//! * `api_auth_overhead_p50_ms`: p50 of `GET /api/v1/auth/me` (bearer access token, the
//!   access layer's cached path: policy lookup, principal, rate limit) minus p50 of
//!   `GET /health` (public, no layer work). Both handlers are trivial and touch no
//!   database, so the difference is the layer. Requests alternate between the two over
//!   fresh loopback connections, so both see the same machine. Target: < 0.2 ms.
//! * `api_auth_first_use_overhead_p50_ms`: the same for each token's first use (cache
//!   miss: session, user and memberships read from PostgreSQL).
//! * `api_sign_in_p50_ms`: `POST /api/v1/auth/sign-in` with the right password: argon2id
//!   (m = 19 MiB, t = 2, p = 1) verification plus the session writes.
//!
//! Needs the development PostgreSQL (`WELLPULSE_PG_ADMIN_URL`, default
//! `postgres://postgres@127.0.0.1:5432/postgres`); uses a scratch database it drops.

use std::time::{Duration, Instant};

use api::{ApiOptions, ApiState, AuthOptions};
use base::Secret;
use store::{BackendChoice, Db, StorageOptions};
use testkit::scratch::ScratchDb;
use tokio::net::TcpListener;

const RUNS: usize = 3000;
const FIRST_USES: usize = 400;
const SIGN_INS: usize = 40;

fn p50(mut samples: Vec<Duration>) -> f64 {
    samples.sort_unstable();
    samples[samples.len() / 2].as_secs_f64() * 1e3
}

async fn bench() -> (f64, f64, f64, f64, f64) {
    let scratch = ScratchDb::create("bench_auth").await.expect("scratch db");
    let options = StorageOptions {
        backend: BackendChoice::Postgres,
        ..StorageOptions::default()
    };
    let db = Db::connect_with(scratch.url(), options)
        .await
        .expect("connect");
    db.migrate().await.expect("migrate");
    let fixture = testkit::db::fixture(&db, "acme").await;
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let api_options = ApiOptions {
        auth: AuthOptions {
            principal_requests_per_minute: 1_000_000,
            tenant_requests_per_minute: 1_000_000,
            public_requests_per_minute: 1_000_000,
            ..AuthOptions::default()
        },
        ..ApiOptions::default()
    };
    let state = ApiState::new(db.clone(), api_options);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(api::serve(listener, state, async move {
        let _ = stopped.await;
    }));
    let token =
        testkit::auth::member_token(&db, fixture.tenant, store::identity::Role::Viewer).await;

    // Warm both paths (and the token's cache entry).
    for _ in 0..50 {
        testkit::http::get(addr, "/health").await;
        testkit::http::send_as(addr, &token, "GET", "/api/v1/auth/me", None).await;
    }
    let (mut public, mut authed) = (Vec::with_capacity(RUNS), Vec::with_capacity(RUNS));
    for _ in 0..RUNS {
        let t = Instant::now();
        let r = testkit::http::get(addr, "/health").await;
        public.push(t.elapsed());
        assert_eq!(r.status, 200);
        let t = Instant::now();
        let r = testkit::http::send_as(addr, &token, "GET", "/api/v1/auth/me", None).await;
        authed.push(t.elapsed());
        assert_eq!(r.status, 200, "{}", r.text());
    }

    // First uses: fresh tokens, each presented once (a cache miss each).
    let mut tokens = Vec::with_capacity(FIRST_USES);
    for _ in 0..FIRST_USES {
        tokens.push(
            testkit::auth::member_token(&db, fixture.tenant, store::identity::Role::Viewer).await,
        );
    }
    let (mut first_public, mut first) = (Vec::new(), Vec::new());
    for token in &tokens {
        let t = Instant::now();
        testkit::http::get(addr, "/health").await;
        first_public.push(t.elapsed());
        let t = Instant::now();
        let r = testkit::http::send_as(addr, token, "GET", "/api/v1/auth/me", None).await;
        first.push(t.elapsed());
        assert_eq!(r.status, 200);
    }

    // Sign-ins with the right password.
    let password = Secret::new("bench password 1234");
    api::create_platform_admin(&db, "bench@example.com", &password)
        .await
        .expect("user");
    let body =
        serde_json::json!({ "email": "bench@example.com", "password": "bench password 1234" });
    let mut sign_ins = Vec::with_capacity(SIGN_INS);
    for _ in 0..SIGN_INS {
        let t = Instant::now();
        let r = testkit::http::post_json(addr, "/api/v1/auth/sign-in", Some(&body)).await;
        sign_ins.push(t.elapsed());
        assert_eq!(r.status, 200, "{}", r.text());
    }

    let _ = stop.send(());
    let _ = server.await;
    db.pool().close().await;
    scratch.drop_db().await.expect("drop scratch db");
    let (public, authed) = (p50(public), p50(authed));
    (
        public,
        authed,
        authed - public,
        p50(first) - p50(first_public),
        p50(sign_ins),
    )
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let (public, authed, overhead, first, sign_in) = runtime.block_on(bench());
    println!("BENCH api_public_request_p50_ms {public:.3} ms");
    println!("BENCH api_authenticated_request_p50_ms {authed:.3} ms");
    println!("BENCH api_auth_overhead_p50_ms {overhead:.3} ms");
    println!("BENCH api_auth_first_use_overhead_p50_ms {first:.3} ms");
    println!("BENCH api_sign_in_p50_ms {sign_in:.1} ms");
}
