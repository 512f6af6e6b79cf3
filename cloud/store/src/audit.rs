//! The audit log: who changed what (before and after), when, from where, under which
//! request id.
//!
//! [`record`] is called in the transaction of the mutation it describes, so an entry
//! exists exactly when the change does. The table is append-only for every role (triggers
//! refuse UPDATE, DELETE and TRUNCATE); tenant-scoped transactions may insert and read
//! their own tenant's entries only (row-level security). Platform-level entries have no
//! tenant.

use chrono::{DateTime, Utc};
use serde_json::Value as Json;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};

use crate::{DbError, TenantId, collect};

/// One entry to write.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry<'a> {
    /// The tenant concerned; `None` for platform-level actions.
    pub tenant: Option<TenantId>,
    /// Who: `user:<id> <email>`, `key:<prefix>`, `system`, `gateway:<tenant>/<id>`.
    pub actor: &'a str,
    /// What, as `subject.verb` (`tenant.suspend`, `api_key.create`, …).
    pub action: &'a str,
    /// The object acted on (`tenant:acme`, `api_key:3f2a…`, `well:12`, …).
    pub target: &'a str,
    /// The object before the change (`None` when created).
    pub before: Option<Json>,
    /// The object after the change (`None` when deleted).
    pub after: Option<Json>,
    /// Where the request came from.
    pub client_addr: Option<&'a str>,
    /// The request id.
    pub request_id: Option<&'a str>,
}

/// Writes an entry (in the caller's transaction).
pub async fn record(conn: &mut PgConnection, entry: &AuditEntry<'_>) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO audit_log (tenant_id, actor, action, target, before, after, client_addr,
                                request_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(entry.tenant)
    .bind(entry.actor)
    .bind(entry.action)
    .bind(entry.target)
    .bind(&entry.before)
    .bind(&entry.after)
    .bind(entry.client_addr)
    .bind(entry.request_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// A stored entry.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRecord {
    /// Position in the log (increasing).
    pub id: i64,
    /// Tenant, if any.
    pub tenant: Option<TenantId>,
    /// When.
    pub at: DateTime<Utc>,
    /// Who.
    pub actor: String,
    /// What.
    pub action: String,
    /// On what.
    pub target: String,
    /// Before.
    pub before: Option<Json>,
    /// After.
    pub after: Option<Json>,
    /// From where.
    pub client_addr: Option<String>,
    /// Request id.
    pub request_id: Option<String>,
}

fn audit_record(row: &PgRow) -> Result<AuditRecord, sqlx::Error> {
    Ok(AuditRecord {
        id: row.try_get("id")?,
        tenant: row.try_get("tenant_id")?,
        at: row.try_get("at")?,
        actor: row.try_get("actor")?,
        action: row.try_get("action")?,
        target: row.try_get("target")?,
        before: row.try_get("before")?,
        after: row.try_get("after")?,
        client_addr: row.try_get("client_addr")?,
        request_id: row.try_get("request_id")?,
    })
}

/// Which entries to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditScope {
    /// One tenant's entries (run in its tenant-scoped transaction).
    Tenant(TenantId),
    /// Everything, platform-level entries included (owner connection).
    All,
}

/// One page of entries, newest first, older than `before_id`.
pub async fn entries(
    conn: &mut PgConnection,
    scope: AuditScope,
    before_id: Option<i64>,
    limit: u32,
) -> Result<Vec<AuditRecord>, DbError> {
    let tenant = match scope {
        AuditScope::Tenant(t) => Some(t),
        AuditScope::All => None,
    };
    let rows = sqlx::query(
        "SELECT id, tenant_id, at, actor, action, target, before, after, client_addr,
                request_id
         FROM audit_log
         WHERE ($1::bigint IS NULL OR tenant_id = $1) AND ($2::bigint IS NULL OR id < $2)
         ORDER BY id DESC LIMIT $3",
    )
    .bind(tenant)
    .bind(before_id)
    .bind(i64::from(limit))
    .fetch_all(conn)
    .await?;
    collect(&rows, audit_record)
}
