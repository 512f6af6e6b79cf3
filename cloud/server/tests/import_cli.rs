//! `wellpulse-cloud import`: a regulator-shaped monthly file with bad rows keeps the good
//! ones, reports each bad one, and importing it twice changes nothing.

use std::path::{Path, PathBuf};

use testkit::mqtt::*;
use tokio::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_wellpulse-cloud");

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../ml/examples")
        .join(name)
}

fn write_config(dir: &Path, database_url: &str) -> PathBuf {
    write_cloud_config(dir, database_url, "")
}

async fn import(
    config: &Path,
    tenant: &str,
    input: &Path,
    extra: &[&str],
) -> (bool, String, String) {
    let out = Command::new(BIN)
        .arg("import")
        .arg("--config")
        .arg(config)
        .args(["--tenant", tenant, "--mapping"])
        .arg(example("regulator-monthly.toml"))
        .arg("--input")
        .arg(input)
        .args(extra)
        .env("RUST_LOG", "warn")
        .output()
        .await
        .unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// API number, day, quantity, volume, method, disposition, notes.
type FigureRow = (
    String,
    String,
    String,
    Option<f64>,
    String,
    Option<String>,
    Vec<String>,
);

async fn snapshot(db: &store::Db) -> Vec<String> {
    let rows: Vec<FigureRow> = sqlx::query_as(
        "SELECT w.api_number, p.day::text, p.quantity, p.volume, p.method, p.disposition,
                    p.notes
             FROM daily_production p JOIN wells w ON w.id = p.well_id
             ORDER BY 1, 2, 3",
    )
    .fetch_all(db.pool())
    .await
    .unwrap();
    let runtime: Vec<(i64, String, f64)> =
        sqlx::query_as("SELECT well_id, day::text, hours_on FROM daily_runtime ORDER BY 1, 2")
            .fetch_all(db.pool())
            .await
            .unwrap();
    rows.iter()
        .map(|r| format!("{r:?}"))
        .chain(runtime.iter().map(|r| format!("{r:?}")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_regulator_file_keeps_good_rows_reports_bad_ones_and_reimports_as_no_change() {
    init_tracing();
    let test = TestDb::new("cli_import").await;
    test.provision_in("acme", "gw-1").await;
    test.provision_in("globex", "gw-2").await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), test.scratch.url());
    let input = example("regulator-monthly.csv");

    // A dry run validates and writes nothing.
    let (ok, out, _) = import(&config, "acme", &input, &["--dry-run"]).await;
    assert!(ok, "{out}");
    assert!(out.contains("dry run: nothing written"), "{out}");
    assert!(snapshot(&test.db).await.is_empty());

    let (ok, first, progress) = import(&config, "acme", &input, &[]).await;
    assert!(ok, "{first}\n{progress}");
    // Each bad row, with its line and reason.
    assert!(
        first.contains("line 20: \"99-317-39014\": state code 99"),
        "{first}"
    );
    assert!(first.contains("line 21: oil \"-5\" is negative"), "{first}");
    assert!(
        first.contains("20 rows read: 2 bad, 3 wells, 546 well-days"),
        "{first}"
    );
    assert!(first.contains("wells: 3 created, 0 existing"), "{first}");
    assert!(
        first.contains("figures: 1638 inserted, 0 updated, 0 unchanged"),
        "{first}"
    );
    assert!(progress.contains("wrote 546/546 well-days"), "{progress}");
    let after_first = snapshot(&test.db).await;
    assert_eq!(after_first.len(), 1638 + 546);
    // January 2024 of the first well: 3,100 bbl over 31 days, gas disposition code 4.
    let jan1 = after_first
        .iter()
        .find(|r| r.contains("\"42-317-39012\", \"2024-01-01\", \"oil\""))
        .unwrap();
    assert!(
        jan1.contains("Some(100.0)") && jan1.contains("\"import\"") && jan1.contains("flared"),
        "{jan1}"
    );
    assert!(jan1.contains("monthly total of 2024-01"), "{jan1}");

    // Again: nothing changes.
    let (ok, second, _) = import(&config, "acme", &input, &[]).await;
    assert!(ok, "{second}");
    assert!(second.contains("wells: 0 created, 3 existing"), "{second}");
    assert!(
        second.contains("figures: 0 inserted, 0 updated, 1638 unchanged, 0 kept"),
        "{second}"
    );
    assert!(
        second.contains("hours on: 0 written, 546 unchanged"),
        "{second}"
    );
    assert_eq!(snapshot(&test.db).await, after_first);

    // Both imports are audited under the tenant; the other tenant sees none of it.
    let acme = test.db.tenant_by_slug("acme").await.unwrap().unwrap();
    let globex = test.db.tenant_by_slug("globex").await.unwrap().unwrap();
    let mut tx = test.db.begin_tenant(acme).await.unwrap();
    let entries = store::audit::entries(&mut tx, store::audit::AuditScope::Tenant(acme), None, 10)
        .await
        .unwrap();
    let imports: Vec<_> = entries
        .iter()
        .filter(|e| e.action == "production.import")
        .collect();
    assert_eq!(imports.len(), 2);
    assert_eq!(imports[1].after.as_ref().unwrap()["figures_inserted"], 1638);
    assert_eq!(imports[0].after.as_ref().unwrap()["figures_inserted"], 0);
    tx.commit().await.unwrap();
    let mut tx = test.db.begin_tenant(globex).await.unwrap();
    let seen: i64 = sqlx::query_scalar("SELECT count(*) FROM daily_runtime")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(seen, 0, "row-level security hides another tenant's history");
    tx.commit().await.unwrap();

    // An unknown tenant and a missing column are refused with a clear error.
    let (ok, _, err) = import(&config, "nobody", &input, &[]).await;
    assert!(!ok && err.contains("no tenant \"nobody\""), "{err}");
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, "API_NO,CYCLE_YEAR_MONTH\n42-317-39012,202401\n").unwrap();
    let (ok, _, err) = import(&config, "acme", &bad, &[]).await;
    assert!(!ok && err.contains("no column \"WELL_NAME\""), "{err}");
    test.finish().await;
}
