//! Maintenance and failure records of wells (`well_interventions`): failures (with their
//! equipment and failure mode — the labels of failure prediction), workovers, maintenance
//! and inspections. Tenant-scoped transactions; keyset pages by start time.

use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};

use crate::{DbError, TenantId, WellId, collect};

/// Kinds of records.
pub const KINDS: [&str; 4] = ["failure", "workover", "maintenance", "inspection"];
/// Equipment a record can concern.
pub const EQUIPMENT: [&str; 13] = [
    "rod_pump",
    "rods",
    "tubing",
    "esp",
    "plunger",
    "gas_lift",
    "wellhead",
    "separator",
    "tank",
    "compressor",
    "meter",
    "controller",
    "other",
];

/// A stored record.
#[derive(Debug, Clone, PartialEq)]
pub struct Intervention {
    /// Id.
    pub id: i64,
    /// Well.
    pub well_id: WellId,
    /// One of [`KINDS`].
    pub kind: String,
    /// One of [`EQUIPMENT`].
    pub equipment: String,
    /// For failures, how it failed (`[a-z0-9_]`, ≤ 40); else empty.
    pub failure_mode: String,
    /// Start (failure: when it failed).
    pub started_at: DateTime<Utc>,
    /// End (back in service), if over.
    pub ended_at: Option<DateTime<Utc>>,
    /// Cost in US dollars.
    pub cost_usd: Option<f64>,
    /// Notes.
    pub notes: String,
    /// Who recorded it.
    pub created_by: String,
    /// When recorded.
    pub created_at: DateTime<Utc>,
}

/// The fields a caller sets.
#[derive(Debug, Clone, PartialEq)]
pub struct InterventionFields<'a> {
    /// Kind.
    pub kind: &'a str,
    /// Equipment.
    pub equipment: &'a str,
    /// Failure mode (failures only).
    pub failure_mode: &'a str,
    /// Start.
    pub started_at: DateTime<Utc>,
    /// End.
    pub ended_at: Option<DateTime<Utc>>,
    /// Cost.
    pub cost_usd: Option<f64>,
    /// Notes.
    pub notes: &'a str,
}

const COLUMNS: &str = "id, well_id, kind, equipment, failure_mode, started_at, ended_at, cost_usd, \
                       notes, created_by, created_at";

fn row(r: &PgRow) -> Result<Intervention, sqlx::Error> {
    Ok(Intervention {
        id: r.try_get("id")?,
        well_id: r.try_get("well_id")?,
        kind: r.try_get("kind")?,
        equipment: r.try_get("equipment")?,
        failure_mode: r.try_get("failure_mode")?,
        started_at: r.try_get("started_at")?,
        ended_at: r.try_get("ended_at")?,
        cost_usd: r.try_get("cost_usd")?,
        notes: r.try_get("notes")?,
        created_by: r.try_get("created_by")?,
        created_at: r.try_get("created_at")?,
    })
}

fn check(f: &InterventionFields<'_>) -> Result<(), DbError> {
    if !KINDS.contains(&f.kind) {
        return Err(DbError::invalid(
            "kind",
            format!("{:?} must be one of {}", f.kind, KINDS.join(", ")),
        ));
    }
    if !EQUIPMENT.contains(&f.equipment) {
        return Err(DbError::invalid(
            "equipment",
            format!("{:?} must be one of {}", f.equipment, EQUIPMENT.join(", ")),
        ));
    }
    let mode_ok = f.failure_mode.len() <= 40
        && f.failure_mode
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !mode_ok {
        return Err(DbError::invalid(
            "failure_mode",
            "must be at most 40 of a-z, 0-9 and '_'",
        ));
    }
    if f.kind != "failure" && !f.failure_mode.is_empty() {
        return Err(DbError::invalid(
            "failure_mode",
            "only failures have a failure mode",
        ));
    }
    if f.ended_at.is_some_and(|end| end < f.started_at) {
        return Err(DbError::invalid(
            "ended_at",
            "must not be before started_at",
        ));
    }
    if f.cost_usd.is_some_and(|c| !(c.is_finite() && c >= 0.0)) {
        return Err(DbError::invalid("cost_usd", "must be a finite amount ≥ 0"));
    }
    if f.notes.chars().count() > 4000 {
        return Err(DbError::invalid(
            "notes",
            "must be at most 4,000 characters",
        ));
    }
    Ok(())
}

/// One page of a well's records, newest start first, before `before` (an id).
pub async fn list(
    conn: &mut PgConnection,
    tenant: TenantId,
    well: WellId,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<Intervention>, DbError> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM well_interventions
         WHERE tenant_id = $1 AND well_id = $2
           AND ($3::bigint IS NULL OR (started_at, id) < (
                SELECT started_at, id FROM well_interventions WHERE tenant_id = $1 AND id = $3))
         ORDER BY started_at DESC, id DESC LIMIT $4"
    ))
    .bind(tenant)
    .bind(well)
    .bind(before)
    .bind(limit)
    .fetch_all(conn)
    .await?;
    collect(&rows, row)
}

/// One record of a well.
pub async fn get(
    conn: &mut PgConnection,
    tenant: TenantId,
    well: WellId,
    id: i64,
) -> Result<Option<Intervention>, DbError> {
    let r = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM well_interventions WHERE tenant_id = $1 AND well_id = $2 AND id = $3"
    ))
    .bind(tenant)
    .bind(well)
    .bind(id)
    .fetch_optional(conn)
    .await?;
    Ok(r.as_ref().map(row).transpose()?)
}

/// Records an intervention on a well (the well must exist in the tenant).
pub async fn create(
    conn: &mut PgConnection,
    tenant: TenantId,
    well: WellId,
    fields: &InterventionFields<'_>,
    created_by: &str,
) -> Result<Intervention, DbError> {
    check(fields)?;
    let r = sqlx::query(&format!(
        "INSERT INTO well_interventions (tenant_id, well_id, kind, equipment, failure_mode,
                                         started_at, ended_at, cost_usd, notes, created_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING {COLUMNS}"
    ))
    .bind(tenant)
    .bind(well)
    .bind(fields.kind)
    .bind(fields.equipment)
    .bind(fields.failure_mode)
    .bind(fields.started_at)
    .bind(fields.ended_at)
    .bind(fields.cost_usd)
    .bind(fields.notes)
    .bind(created_by)
    .fetch_one(conn)
    .await?;
    Ok(row(&r)?)
}

/// Replaces a record's fields. Returns it before and after; `None` if no such record.
pub async fn update(
    conn: &mut PgConnection,
    tenant: TenantId,
    well: WellId,
    id: i64,
    fields: &InterventionFields<'_>,
) -> Result<Option<(Intervention, Intervention)>, DbError> {
    check(fields)?;
    let Some(before) = get(conn, tenant, well, id).await? else {
        return Ok(None);
    };
    let r = sqlx::query(&format!(
        "UPDATE well_interventions SET kind = $4, equipment = $5, failure_mode = $6,
                started_at = $7, ended_at = $8, cost_usd = $9, notes = $10, updated_at = now()
         WHERE tenant_id = $1 AND well_id = $2 AND id = $3 RETURNING {COLUMNS}"
    ))
    .bind(tenant)
    .bind(well)
    .bind(id)
    .bind(fields.kind)
    .bind(fields.equipment)
    .bind(fields.failure_mode)
    .bind(fields.started_at)
    .bind(fields.ended_at)
    .bind(fields.cost_usd)
    .bind(fields.notes)
    .fetch_one(conn)
    .await?;
    Ok(Some((before, row(&r)?)))
}

/// Deletes a record. Returns it; `None` if no such record.
pub async fn delete(
    conn: &mut PgConnection,
    tenant: TenantId,
    well: WellId,
    id: i64,
) -> Result<Option<Intervention>, DbError> {
    let r = sqlx::query(&format!(
        "DELETE FROM well_interventions WHERE tenant_id = $1 AND well_id = $2 AND id = $3
         RETURNING {COLUMNS}"
    ))
    .bind(tenant)
    .bind(well)
    .bind(id)
    .fetch_optional(conn)
    .await?;
    Ok(r.as_ref().map(row).transpose()?)
}
