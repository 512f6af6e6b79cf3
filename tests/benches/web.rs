//! The web app's main thread under a live fleet, in Debian's Chromium.
//!
//! Set-up: the embedded broker, the ingester and a fresh database ([`Stack`]), 100
//! synthetic gateways ([`SyntheticFleet`], the real protocol: sealed births and batches
//! over MQTT) each with a rod-pump controller and a gas flow computer, one well per
//! gateway with both devices linked to it, publishing 100 × 40 samples per second
//! (every gateway one batch per second). The API (`ApiState` over the same database,
//! serving `web/dist`) pushes latest values through `GET …/latest/stream`, fed by the
//! ingester's `NOTIFY` as in production. Then `web/bench/fleet.mjs` (Playwright driving
//! `/usr/bin/chromium`) measures, as a viewer:
//!
//! - `web_fleet_first_load_ms`: a new browser context (empty cache), navigation start to the
//!   fleet table showing all 100 wells with their latest values (target < 1000 ms);
//! - `web_js_gzip_bytes`: the JavaScript that load fetched, gzip -9 (target < 300 KB);
//! - `web_fleet_longest_task_ms`: the longest main-thread task (`PerformanceObserver`
//!   `longtask`, which reports every task over 50 ms; 0 when there was none) during 20 s
//!   of live updates on the fleet page, with `web_fleet_long_tasks` (how many) and
//!   `web_fleet_max_loop_gap_ms` (the longest gap seen by a 10 ms timer, an upper bound of
//!   the longest task that also covers the ones under 50 ms); target: no task over 50 ms;
//! - `web_fleet_updates_per_s`: table changes per second seen on screen (proof that the
//!   updates flowed; the server pushes at most one per second);
//! - the same figures with the fleet sorted by a live value, which re-sorts the table as
//!   values change (`web_fleet_sorted_*`), and on a well page, where all 40 series of the
//!   well update (`web_well_*`).
//!
//! Output: `BENCH <name> <value> <unit>`; context lines start with `#`.
//! Run: `cargo bench -p tests --bench web` (needs `web/node_modules` and `web/dist`:
//! `source scripts/services.sh && wp_ensure_web`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, ensure};
use api::{ApiOptions, ApiState};
use store::NewWell;
use store::identity::Role;
use tests::load::{SyntheticConfig, SyntheticFleet};
use tests::stack::{BrokerKind, Stack, TENANT};
use tokio::net::TcpListener;

const BROKER_BIN: &str = env!("CARGO_BIN_EXE_wp-test-broker");
/// Wells, one synthetic gateway each.
const WELLS: usize = 100;
/// Series updated per well and second.
const SERIES_PER_WELL: usize = 40;

fn web_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../web")
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    if !tests::bench_requested("web") {
        return Ok(());
    }
    let web = web_dir();
    ensure!(
        web.join("dist/index.html").is_file() && web.join("node_modules/.bin/playwright").exists(),
        "the web app is not built: run `source scripts/services.sh && wp_ensure_web`"
    );
    let stack = Stack::without_agents(BrokerKind::Embedded, 1, BROKER_BIN).await?;
    let outcome = bench(&stack, &web).await;
    stack.finish().await?;
    outcome
}

async fn bench(stack: &Stack, web: &Path) -> anyhow::Result<()> {
    let config = SyntheticConfig {
        broker: std::net::SocketAddr::from(([127, 0, 0, 1], stack.broker.v4_port)),
        tenant: TENANT.into(),
        prefix: "web-".into(),
        gateways: WELLS,
        devices_per_gateway: 2,
        period: Duration::from_secs(1),
    };
    let fleet = SyntheticFleet::start(&stack.db, config, 0.0).await?;

    // One well per gateway, its two devices linked to it.
    let tenant = stack.db.tenant_by_slug(TENANT).await?.context("tenant")?;
    let site: i64 = sqlx::query_scalar("SELECT id FROM sites WHERE tenant_id = $1 LIMIT 1")
        .bind(tenant)
        .fetch_one(stack.db.pool())
        .await?;
    for n in 0..WELLS {
        let name = format!("Bench {n:03}");
        let well = stack
            .db
            .create_well(&NewWell {
                tenant,
                site: store::SiteId(site),
                api_number: &format!("42-501-{:05}", 10_000 + n),
                name: &name,
                lease: "Bench",
                field: "Spraberry",
                county: "Midland",
                state: "TX",
            })
            .await?;
        sqlx::query(
            "UPDATE devices SET well_id = $1
             WHERE gateway_id = (SELECT id FROM gateways WHERE tenant_id = $2 AND slug = $3)",
        )
        .bind(well)
        .bind(tenant)
        .bind(format!("web-{n:03}"))
        .execute(stack.db.pool())
        .await?;
    }
    let rate = fleet.set_rate((WELLS * SERIES_PER_WELL) as f64);
    println!("# synthetic fleet: {WELLS} gateways, {rate:.0} samples/s configured");

    let options = ApiOptions {
        web_dir: Some(web.join("dist")),
        ..ApiOptions::default()
    };
    let state = ApiState::new(stack.db.clone(), options);
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(api::serve(listener, state, std::future::pending::<()>()));
    let token = testkit::auth::member_token(&stack.db, tenant, Role::Viewer).await;
    let well: i64 =
        sqlx::query_scalar("SELECT id FROM wells WHERE tenant_id = $1 ORDER BY id LIMIT 1")
            .bind(tenant)
            .fetch_one(stack.db.pool())
            .await?;
    // Let the fleet settle into its one-batch-per-second rhythm.
    stack
        .wait_rows(
            (WELLS * SERIES_PER_WELL) as i64 * 3,
            Duration::from_secs(120),
        )
        .await?;
    let published_before = fleet.published_samples();
    let started = std::time::Instant::now();

    let browser = tokio::process::Command::new("node")
        .arg("bench/fleet.mjs")
        .current_dir(web)
        .env("WP_BASE_URL", format!("http://{addr}"))
        .env("WP_TENANT", TENANT)
        .env("WP_TOKEN", &token)
        .env("WP_WELLS", WELLS.to_string())
        .env("WP_WELL_ID", well.to_string())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(300), browser)
        .await
        .context("the browser benchmark finishes within 5 minutes")??;
    let published = fleet.published_samples() - published_before;
    println!(
        "# samples published while the browser watched: {:.0}/s",
        published as f64 / started.elapsed().as_secs_f64()
    );
    print!("{}", String::from_utf8_lossy(&out.stdout));
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    server.abort();
    fleet.stop().await?;
    ensure!(
        out.status.success(),
        "the browser benchmark failed (its output is above)"
    );
    let lines = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with("BENCH "))
        .count();
    ensure!(
        lines >= 6,
        "the browser benchmark printed {lines} BENCH lines"
    );
    Ok(())
}
