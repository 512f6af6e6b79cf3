//! Schema, back-end selection, tenant columns and row-level security.

use chrono::Utc;
use sqlx::Row;
use store::{Backend, BackendChoice, DbError, StorageOptions, TelemetryRow};
use testkit::db::{TestDb, birth, fixture, timescale_available};

const TELEMETRY_RELATIONS: [&str; 4] =
    ["telemetry", "telemetry_1m", "telemetry_1h", "telemetry_1d"];

#[tokio::test]
async fn migrations_apply_on_a_fresh_database_and_rerun_idempotently() {
    let test = TestDb::plain("schema_fresh").await;
    let db = &test.db;
    assert_eq!(db.backend().await.unwrap(), Backend::Postgres);
    // A second start-up changes nothing and fails nothing.
    assert_eq!(db.migrate().await.unwrap(), Backend::Postgres);
    for relation in TELEMETRY_RELATIONS.iter().chain(&[
        "tenants",
        "gateways",
        "series_aliases",
        "ingested_batches",
        "rollup_dirty",
    ]) {
        let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
            .bind(relation)
            .fetch_one(db.pool())
            .await
            .unwrap();
        assert!(exists, "{relation} missing");
    }
    let partitions: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_inherits WHERE inhparent = 'telemetry'::regclass",
    )
    .fetch_one(db.pool())
    .await
    .unwrap();
    // DEFAULT + today + 7 days ahead.
    assert_eq!(partitions, 1 + 8);
    test.finish().await;
}

#[tokio::test]
async fn auto_backend_follows_extension_availability() {
    let test = TestDb::with_options("schema_auto", StorageOptions::default()).await;
    let expected = if timescale_available(&test.db).await {
        Backend::Timescale
    } else {
        Backend::Postgres
    };
    assert_eq!(test.db.backend().await.unwrap(), expected);
    test.finish().await;
}

#[tokio::test]
async fn backend_choice_is_recorded_and_enforced() {
    let test = TestDb::plain("schema_sticky").await;
    let strict = store::Db::connect_with(
        test.url(),
        StorageOptions {
            backend: BackendChoice::Timescale,
            ..StorageOptions::default()
        },
    )
    .await
    .unwrap();
    match strict.migrate().await {
        Err(DbError::BackendMismatch { stored, requested }) => {
            assert_eq!(stored, Backend::Postgres);
            assert_eq!(requested, Backend::Timescale);
        }
        other => panic!("expected a back-end mismatch, got {other:?}"),
    }
    strict.pool().close().await;
    test.finish().await;
}

#[tokio::test]
async fn timescale_required_but_missing_is_a_clear_error() {
    let test = TestDb::unmigrated(
        "schema_ts_missing",
        StorageOptions {
            backend: BackendChoice::Timescale,
            ..StorageOptions::default()
        },
    )
    .await;
    if timescale_available(&test.db).await {
        eprintln!("skipping: TimescaleDB is available on this server");
    } else {
        let err = test.db.migrate().await.unwrap_err();
        assert!(matches!(err, DbError::TimescaleUnavailable(_)), "{err}");
        assert!(err.to_string().contains("not installed"), "{err}");
    }
    test.finish().await;
}

/// Tables that legitimately have no `tenant_id`, with the reason.
const TENANTLESS: [(&str, &str); 13] = [
    ("_sqlx_migrations", "migration bookkeeping"),
    ("storage_meta", "server-wide settings"),
    ("tenants", "is the tenant"),
    (
        "telemetry",
        "narrow fact table; isolated through series_id (RLS via series)",
    ),
    ("telemetry_default", "partition of telemetry"),
    ("telemetry_1m", "rollup keyed by series_id"),
    ("telemetry_1h", "rollup keyed by series_id"),
    ("telemetry_1d", "rollup keyed by series_id"),
    ("rollup_dirty", "maintenance queue keyed by series_id"),
    (
        "users",
        "people belong to tenants through memberships (RLS via memberships)",
    ),
    ("auth_sessions", "authentication's own; no tenant access"),
    ("sign_in_failures", "authentication's own; no tenant access"),
    ("one_time_tokens", "authentication's own; no tenant access"),
];

#[tokio::test]
async fn every_tenant_owned_table_has_tenant_id_and_row_level_security() {
    let test = TestDb::plain("schema_tenant").await;
    let rows = sqlx::query(
        "SELECT c.relname::text AS name, c.relrowsecurity AS rls,
                a.attnotnull AS not_null, a.attname IS NOT NULL AS has_tenant
         FROM pg_class c
         JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'public'
         LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id'
         WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition",
    )
    .fetch_all(test.db.pool())
    .await
    .unwrap();
    assert!(rows.len() >= 12, "only {} tables", rows.len());
    for row in rows {
        let name: String = row.get("name");
        if TENANTLESS.iter().any(|(t, _)| *t == name) {
            continue;
        }
        assert!(row.get::<bool, _>("has_tenant"), "{name} has no tenant_id");
        assert!(
            row.get::<bool, _>("rls"),
            "{name} has no row-level security"
        );
        // Rejections may come from unknown tenants, the audit log has platform-level
        // entries and Stripe may send events about customers no tenant has; everything
        // else is owned.
        if !matches!(
            name.as_str(),
            "ingest_rejections" | "audit_log" | "stripe_events"
        ) {
            assert!(
                row.get::<bool, _>("not_null"),
                "{name}.tenant_id is nullable"
            );
        }
    }
    test.finish().await;
}

#[tokio::test]
async fn tenant_scoped_transactions_see_only_their_tenant() {
    let test = TestDb::plain("schema_rls").await;
    let db = &test.db;
    let a = fixture(db, "acme").await;
    let b = fixture(db, "bravo").await;
    let now = Utc::now();
    let mut series = Vec::new();
    for f in [&a, &b] {
        let map = db
            .apply_birth(
                f.gateway,
                &birth(1, now.timestamp_millis(), &["tubing_pressure_psi"]),
                now,
            )
            .await
            .unwrap();
        let entry = *map.get(0, 0).unwrap();
        series.push(entry.series_id);
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
        batch
            .push(&TelemetryRow {
                ts_ms: now.timestamp_millis(),
                series_id: entry.series_id,
                value: Some(100.0),
                quality: wire::Quality::Good,
            })
            .unwrap();
        tx.commit().await.unwrap();
    }
    let mut tx = db.begin_tenant(a.tenant).await.unwrap();
    for (table, expected) in [
        ("tenants", 1i64),
        ("gateways", 1),
        ("devices", 1),
        ("series", 1),
        ("telemetry", 1),
        ("ingested_batches", 1),
    ] {
        let count: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        assert_eq!(count, expected, "{table}");
    }
    // Even asking for the other tenant's series by id returns nothing.
    let other: i64 = sqlx::query_scalar("SELECT count(*) FROM telemetry WHERE series_id = $1")
        .bind(series[1])
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(other, 0);
    // And writing a row for another tenant is refused.
    let write = sqlx::query("UPDATE gateways SET online = true WHERE id = $1")
        .bind(b.gateway)
        .execute(&mut *tx)
        .await
        .unwrap();
    assert_eq!(write.rows_affected(), 0);
    tx.rollback().await.unwrap();
    test.finish().await;
}
