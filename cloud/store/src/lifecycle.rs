//! The end of a tenant: export of everything it owns, then purge.
//!
//! [`export_tenant`] writes one CSV file (with a header row) per table into a new
//! directory, plus `manifest.json` listing each file with its row count and SHA-256, so a
//! customer (or a court) gets its data in a form any tool reads. [`purge_tenant`] then
//! deletes every row the tenant owns, children first, in one transaction, and marks the
//! tenant `deleted`: the tenant row itself stays (its slug is never reused), and so do its
//! audit log and daily usage (the record of what happened and what was billed).
//!
//! [`TENANT_TABLES`] is the one list of what a tenant owns; a test checks that every table
//! with a `tenant_id` column is in it or in [`KEPT`], so a table added later cannot be
//! forgotten by the export or the purge. Telemetry and its plain-PostgreSQL rollups are
//! keyed by series: they are selected through the tenant's series. On TimescaleDB the
//! continuous aggregates cannot be deleted from directly: the buckets of purged series stay
//! until retention drops them, reachable by nobody (their series rows are gone).
//!
//! SQL here is formatted from this module's constants and the tenant's integer id (COPY
//! takes no bind parameters); no caller text reaches it.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use sqlx::PgConnection;
use tokio::io::AsyncWriteExt;

use crate::schema::Backend;
use crate::{Db, DbError, TenantId};

/// How a table's rows belong to a tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owned {
    /// A `tenant_id` column.
    ByTenant,
    /// A `series_id` column of one of the tenant's series.
    BySeries,
    /// Plain-PostgreSQL rollup tables (continuous aggregates on TimescaleDB).
    RollupBySeries,
}

/// Everything a tenant owns, in the order the purge deletes it (children first).
pub const TENANT_TABLES: [(&str, Owned); 53] = [
    ("detection_backlog", Owned::ByTenant),
    ("alert_deliveries", Owned::ByTenant),
    ("alert_comments", Owned::ByTenant),
    ("alert_events", Owned::ByTenant),
    ("findings", Owned::ByTenant),
    ("alerts", Owned::ByTenant),
    ("alert_silences", Owned::ByTenant),
    ("alert_destinations", Owned::ByTenant),
    ("detection_models", Owned::ByTenant),
    ("detection_rules", Owned::ByTenant),
    ("detector_states", Owned::ByTenant),
    ("one_time_tokens", Owned::ByTenant),
    ("memberships", Owned::ByTenant),
    ("api_keys", Owned::ByTenant),
    ("training_jobs", Owned::ByTenant),
    ("ml_forecasts", Owned::ByTenant),
    ("ml_forecast_runs", Owned::ByTenant),
    ("methane_targets", Owned::ByTenant),
    ("failure_risk_predictions", Owned::ByTenant),
    ("ml_models", Owned::ByTenant),
    ("well_interventions", Owned::ByTenant),
    ("daily_emissions", Owned::ByTenant),
    ("emission_source_pneumatics", Owned::ByTenant),
    ("emission_source_components", Owned::ByTenant),
    ("emission_sources", Owned::ByTenant),
    ("production_watermarks", Owned::ByTenant),
    ("daily_production", Owned::ByTenant),
    ("daily_runtime", Owned::ByTenant),
    ("production_corrections", Owned::ByTenant),
    ("haul_tickets", Owned::ByTenant),
    ("tank_strapping_points", Owned::ByTenant),
    ("well_regulatory", Owned::ByTenant),
    ("tenant_regulatory", Owned::ByTenant),
    ("telemetry", Owned::BySeries),
    ("telemetry_1m", Owned::RollupBySeries),
    ("telemetry_1h", Owned::RollupBySeries),
    ("telemetry_1d", Owned::RollupBySeries),
    ("rollup_dirty", Owned::BySeries),
    ("series_aliases", Owned::ByTenant),
    ("series", Owned::ByTenant),
    ("devices", Owned::ByTenant),
    ("gateway_births", Owned::ByTenant),
    ("ingested_batches", Owned::ByTenant),
    ("ingest_rejections", Owned::ByTenant),
    ("gateway_certificates", Owned::ByTenant),
    ("tenant_certificate_authorities", Owned::ByTenant),
    ("gateways", Owned::ByTenant),
    ("wells", Owned::ByTenant),
    ("sites", Owned::ByTenant),
    ("tenant_usage_daily", Owned::ByTenant),
    ("billing_meter_reports", Owned::ByTenant),
    ("stripe_events", Owned::ByTenant),
    ("billing_accounts", Owned::ByTenant),
];

/// Tables with a `tenant_id` that the purge keeps, with the reason (exported all the same).
pub const KEPT: [(&str, &str); 5] = [
    (
        "audit_log",
        "the record of who did what outlives the tenant",
    ),
    (
        "tenant_usage_daily",
        "what was used (and billed) outlives the tenant",
    ),
    (
        "billing_meter_reports",
        "what was reported to Stripe and billed outlives the tenant",
    ),
    (
        "stripe_events",
        "the payment record (what Stripe told us) outlives the tenant",
    ),
    (
        "billing_accounts",
        "the tenant's Stripe customer stays linked for refunds and disputes",
    ),
];

/// One exported file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportedFile {
    /// File name (`<table>.csv`).
    pub file: String,
    /// Rows (not counting the header).
    pub rows: i64,
    /// SHA-256 of the file, hex.
    pub sha256: String,
}

/// What an export wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// The export directory.
    pub dir: PathBuf,
    /// Every file.
    pub files: Vec<ExportedFile>,
}

fn selection(table: &str, owned: Owned, tenant: TenantId) -> String {
    let id = tenant.0;
    match owned {
        Owned::ByTenant => format!("SELECT * FROM {table} WHERE tenant_id = {id}"),
        Owned::BySeries | Owned::RollupBySeries => format!(
            "SELECT * FROM {table} WHERE series_id IN (SELECT id FROM series WHERE tenant_id = {id})"
        ),
    }
}

fn io(path: &Path, e: std::io::Error) -> DbError {
    DbError::File {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

/// Writes everything `tenant` owns (and its audit log) as CSV files into a new directory
/// `<root>/<slug>-<UTC time>`. Reads in one repeatable-read transaction, so the files are
/// one consistent snapshot.
pub async fn export_tenant(
    db: &Db,
    tenant: TenantId,
    slug: &str,
    root: &Path,
    now: DateTime<Utc>,
) -> Result<Manifest, DbError> {
    let dir = root.join(format!("{slug}-{}", now.format("%Y%m%dT%H%M%SZ")));
    tokio::fs::create_dir_all(&dir)
        .await
        .map_err(|e| io(&dir, e))?;
    let mut tx = db.pool().begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .execute(&mut *tx)
        .await?;
    let mut files = Vec::new();
    let mut tables: Vec<(&str, Owned)> = TENANT_TABLES.to_vec();
    tables.push(("audit_log", Owned::ByTenant));
    tables.push(("tenants", Owned::ByTenant));
    for (table, owned) in tables {
        let select = if table == "tenants" {
            format!("SELECT * FROM tenants WHERE id = {}", tenant.0)
        } else {
            selection(table, owned, tenant)
        };
        let file = format!("{table}.csv");
        let path = dir.join(&file);
        let (rows, sha256) = copy_to_file(&mut tx, &select, &path).await?;
        files.push(ExportedFile { file, rows, sha256 });
    }
    tx.commit().await?;
    let manifest = serde_json::json!({
        "tenant": slug,
        "exported_at": now,
        "files": files.iter().map(|f| serde_json::json!({
            "file": f.file, "rows": f.rows, "sha256": f.sha256,
        })).collect::<Vec<_>>(),
    });
    let path = dir.join("manifest.json");
    tokio::fs::write(
        &path,
        serde_json::to_vec_pretty(&manifest).unwrap_or_default(),
    )
    .await
    .map_err(|e| io(&path, e))?;
    Ok(Manifest { dir, files })
}

async fn copy_to_file(
    conn: &mut PgConnection,
    select: &str,
    path: &Path,
) -> Result<(i64, String), DbError> {
    let rows: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM ({select}) t"))
        .fetch_one(&mut *conn)
        .await?;
    let mut out = tokio::fs::File::create(path)
        .await
        .map_err(|e| io(path, e))?;
    let mut hash = Sha256::new();
    let mut stream = conn
        .copy_out_raw(&format!(
            "COPY ({select}) TO STDOUT WITH (FORMAT csv, HEADER)"
        ))
        .await?;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        hash.update(&chunk);
        out.write_all(&chunk).await.map_err(|e| io(path, e))?;
    }
    out.flush().await.map_err(|e| io(path, e))?;
    out.sync_all().await.map_err(|e| io(path, e))?;
    Ok((rows, hex::encode(hash.finalize())))
}

/// Deletes everything `tenant` owns except [`KEPT`], children first, marks it `deleted`
/// with where its export went, and audits it as `system`. One transaction: all or nothing.
pub async fn purge_tenant(
    db: &Db,
    tenant: TenantId,
    slug: &str,
    exported_to: &Path,
) -> Result<u64, DbError> {
    let timescale = db.backend().await? == Backend::Timescale;
    let mut tx = db.pool().begin().await?;
    let mut deleted = 0;
    for (table, owned) in TENANT_TABLES {
        if KEPT.iter().any(|(t, _)| *t == table) {
            continue;
        }
        if owned == Owned::RollupBySeries && timescale {
            continue;
        }
        let condition = match owned {
            Owned::ByTenant => format!("tenant_id = {}", tenant.0),
            Owned::BySeries | Owned::RollupBySeries => format!(
                "series_id IN (SELECT id FROM series WHERE tenant_id = {})",
                tenant.0
            ),
        };
        let done = sqlx::query(&format!("DELETE FROM {table} WHERE {condition}"))
            .execute(&mut *tx)
            .await?;
        deleted += done.rows_affected();
    }
    sqlx::query(
        "UPDATE tenants SET status = 'deleted', status_changed_at = now(), deletion_due_at = NULL,
                            exported_to = $2
         WHERE id = $1",
    )
    .bind(tenant)
    .bind(exported_to.display().to_string())
    .execute(&mut *tx)
    .await?;
    let target = format!("tenant:{slug}");
    crate::audit::record(
        &mut tx,
        &crate::audit::AuditEntry {
            tenant: Some(tenant),
            actor: "system",
            action: "tenant.purge",
            target: &target,
            before: Some(serde_json::json!({ "status": "deleting" })),
            after: Some(serde_json::json!({
                "status": "deleted",
                "exported_to": exported_to.display().to_string(),
                "rows_deleted": deleted,
            })),
            client_addr: None,
            request_id: None,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(deleted)
}

/// A tenant the deletion job finished.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deleted {
    /// Its slug.
    pub slug: String,
    /// Where its data went.
    pub exported_to: PathBuf,
    /// Rows purged.
    pub rows_deleted: u64,
}

/// Exports and purges every tenant whose deletion is due at `now` (each purge audited as
/// `system`, `tenant.purge`). A failed export leaves its tenant untouched for the next run.
pub async fn delete_due_tenants(
    db: &Db,
    export_dir: &Path,
    now: DateTime<Utc>,
) -> Result<Vec<Deleted>, DbError> {
    let mut conn = db.pool().acquire().await?;
    let due = crate::tenants::deletions_due(&mut conn, now).await?;
    drop(conn);
    let mut done = Vec::new();
    for tenant in due {
        let manifest = export_tenant(db, tenant.id, &tenant.slug, export_dir, now).await?;
        let rows_deleted = purge_tenant(db, tenant.id, &tenant.slug, &manifest.dir).await?;
        done.push(Deleted {
            slug: tenant.slug,
            exported_to: manifest.dir,
            rows_deleted,
        });
    }
    Ok(done)
}
