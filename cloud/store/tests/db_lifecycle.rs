//! A tenant's end against PostgreSQL: every table it owns is exported and purged (none
//! forgotten), other tenants keep everything, the audit log and usage stay.

use chrono::{TimeDelta, Utc};
use sqlx::Row;
use store::lifecycle::{self, KEPT, Owned, TENANT_TABLES};
use store::tenants::{self, TenantStatus};
use testkit::db::{TestDb, birth, fixture};

#[tokio::test]
async fn every_table_a_tenant_owns_is_in_the_export_and_purge_list() {
    let test = TestDb::plain("life_tables").await;
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c
         JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'public'
         JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname IN ('tenant_id', 'series_id')
         WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
         GROUP BY c.relname",
    )
    .fetch_all(test.db.pool())
    .await
    .unwrap();
    for table in tables {
        let listed =
            TENANT_TABLES.iter().any(|(t, _)| *t == table) || KEPT.iter().any(|(t, _)| *t == table);
        assert!(
            listed,
            "{table} holds tenant data but is neither exported/purged nor kept"
        );
    }
    test.finish().await;
}

async fn counts(db: &store::Db, tenant: store::TenantId) -> Vec<(String, i64)> {
    let mut out = Vec::new();
    for (table, owned) in TENANT_TABLES {
        let sql = match owned {
            Owned::ByTenant => format!("SELECT count(*) FROM {table} WHERE tenant_id = $1"),
            _ => format!(
                "SELECT count(*) FROM {table} WHERE series_id IN (SELECT id FROM series WHERE tenant_id = $1)"
            ),
        };
        let n: i64 = sqlx::query_scalar(&sql)
            .bind(tenant)
            .fetch_one(db.pool())
            .await
            .unwrap();
        out.push((table.to_owned(), n));
    }
    out
}

#[tokio::test]
async fn a_due_deletion_exports_then_purges_only_that_tenant() {
    let test = TestDb::plain("life_purge").await;
    let db = &test.db;
    let a = fixture(db, "acme").await;
    let b = fixture(db, "bravo").await;
    let now = Utc::now();
    for f in [&a, &b] {
        let map = db
            .apply_birth(
                f.gateway,
                &birth(1, now.timestamp_millis(), &["tubing_pressure_psi"]),
                now,
            )
            .await
            .unwrap();
        let series = map.get(0, 0).unwrap().series_id;
        let mut tx = db.begin_ingest().await.unwrap();
        let mut batch = tx
            .record_batch(store::BatchRecord {
                epoch: 0,
                gateway: f.gateway,
                seq: 1,
                boot_id: 1,
                historical: false,
                received_at: now,
            })
            .unwrap()
            .unwrap();
        for i in 0..10 {
            batch
                .push(&store::TelemetryRow {
                    ts_ms: now.timestamp_millis() - i * 1000,
                    series_id: series,
                    value: Some(100.0 + i as f64),
                    quality: wire::Quality::Good,
                })
                .unwrap();
        }
        tx.commit().await.unwrap();
    }
    store::maintenance::run_once(db).await.unwrap();
    let mut conn = db.pool().acquire().await.unwrap();
    store::usage::refresh_day(&mut conn, now.date_naive())
        .await
        .unwrap();
    // Billing records, kept after the purge (what was billed outlives the tenant).
    store::billing::lock_account(&mut conn, a.tenant)
        .await
        .unwrap();
    store::billing::link_customer(&mut conn, a.tenant, "cus_acme")
        .await
        .unwrap();
    store::billing::claim_event(
        &mut conn,
        "evt_acme",
        "invoice.paid",
        now.timestamp(),
        &serde_json::json!({ "id": "evt_acme" }),
    )
    .await
    .unwrap();
    store::billing::finish_event(&mut conn, "evt_acme", Some(a.tenant), "applied:paid")
        .await
        .unwrap();
    store::billing::record_report(
        &mut conn,
        a.tenant,
        now.date_naive(),
        "active_wells",
        1,
        "wp-acme",
    )
    .await
    .unwrap();
    // Not due yet: nothing happens.
    tenants::schedule_deletion(&mut conn, "acme", now + TimeDelta::days(30))
        .await
        .unwrap();
    drop(conn);
    let dir = tempfile::tempdir().unwrap();
    assert!(
        lifecycle::delete_due_tenants(db, dir.path(), now)
            .await
            .unwrap()
            .is_empty()
    );

    let a_before = counts(db, a.tenant).await;
    let b_before = counts(db, b.tenant).await;
    assert!(
        a_before.iter().any(|(t, n)| t == "telemetry" && *n == 10),
        "{a_before:?}"
    );
    let done = lifecycle::delete_due_tenants(db, dir.path(), now + TimeDelta::days(31))
        .await
        .unwrap();
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].slug, "acme");

    // The export holds every row the tenant had, with a manifest of counts and hashes.
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(done[0].exported_to.join("manifest.json")).unwrap())
            .unwrap();
    for (table, n) in &a_before {
        let entry = manifest["files"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["file"] == format!("{table}.csv"))
            .unwrap_or_else(|| panic!("{table} not exported"));
        assert_eq!(entry["rows"], *n, "{table}");
        let text =
            std::fs::read_to_string(done[0].exported_to.join(format!("{table}.csv"))).unwrap();
        assert!(text.lines().count() as i64 > *n, "{table}: header and rows");
    }
    let telemetry = std::fs::read_to_string(done[0].exported_to.join("telemetry.csv")).unwrap();
    assert!(
        telemetry.starts_with("time,series_id,value,quality"),
        "{telemetry}"
    );

    // Purged: acme owns nothing but its kept tables; bravo lost nothing.
    for (table, n) in counts(db, a.tenant).await {
        let kept = KEPT.iter().any(|(t, _)| *t == table);
        if kept {
            assert!(n > 0, "{table} is kept");
        } else {
            assert_eq!(n, 0, "{table} still has acme rows");
        }
    }
    assert_eq!(counts(db, b.tenant).await, b_before);
    let mut conn = db.pool().acquire().await.unwrap();
    let t = tenants::tenant_by_slug(&mut conn, "acme")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(t.status, TenantStatus::Deleted);
    assert_eq!(
        t.exported_to.as_deref(),
        Some(done[0].exported_to.to_str().unwrap())
    );
    let audit = sqlx::query(
        "SELECT action, after FROM audit_log WHERE tenant_id = $1 ORDER BY id DESC LIMIT 1",
    )
    .bind(a.tenant)
    .fetch_one(&mut *conn)
    .await
    .unwrap();
    assert_eq!(audit.get::<String, _>("action"), "tenant.purge");
    // A deleted tenant cannot come back.
    assert!(
        tenants::set_tenant_status(&mut conn, "acme", TenantStatus::Active)
            .await
            .is_err()
    );
    drop(conn);
    test.finish().await;
}
