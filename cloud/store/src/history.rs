//! SQL of the history import: wells and daily production read from a tenant's records
//! (`wellpulse-cloud import`; parsing and validation are `ml::import`).
//!
//! Run inside the tenant's scoped transaction ([`Db::begin_tenant`](crate::Db::begin_tenant)),
//! with the audit entry in the same transaction.
//!
//! # Idempotence
//!
//! Every write is keyed by its natural key and writes only what differs:
//! - wells by API number (compared by digits, so `42-123-45678` and `4212345678` are one
//!   well); a well that exists is used as it is, never renamed by a file;
//! - figures by (well, day, quantity), stored with method `import`; an existing figure is
//!   replaced only when it is itself imported or `missing` and its value, disposition or
//!   note differ. Telemetry-derived figures and manual corrections take precedence and are
//!   left alone (counted as `kept`);
//! - hours on by (well, day) in `daily_runtime`.
//!
//! Importing the same file twice therefore changes nothing the second time (all rows
//! counted `unchanged`).

use std::collections::HashMap;

use chrono::NaiveDate;
use sqlx::{PgConnection, Row};

use crate::{DbError, TenantId, WellId};

/// Rows per statement: one round trip per chunk, progress reported per chunk.
pub const CHUNK: usize = 5_000;

/// A well named by the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportWell<'a> {
    /// API number as given (canonical form preferred).
    pub api_number: &'a str,
    /// Name.
    pub name: &'a str,
    /// Lease.
    pub lease: &'a str,
    /// Field.
    pub field: &'a str,
    /// County.
    pub county: &'a str,
    /// State.
    pub state: &'a str,
}

/// One well-day of the file.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportDay<'a> {
    /// API number of the well (one of the [`ImportWell`]s).
    pub api_number: &'a str,
    /// Day.
    pub day: NaiveDate,
    /// Oil, bbl.
    pub oil: Option<f64>,
    /// Gas, Mcf.
    pub gas: Option<f64>,
    /// Water, bbl.
    pub water: Option<f64>,
    /// Hours on, 0..=24.
    pub hours_on: Option<f64>,
    /// Disposition name (`sold`, `lease_use`, `flared`, `vented`, `injected`, `stored`,
    /// `other`).
    pub disposition: Option<&'a str>,
    /// Note kept with the figures (e.g. the monthly total they were allocated from).
    pub note: Option<&'a str>,
}

/// What an import changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImportCounts {
    /// Wells created.
    pub wells_created: u64,
    /// Wells that existed.
    pub wells_existing: u64,
    /// Figures (well, day, quantity) inserted.
    pub figures_inserted: u64,
    /// Figures updated (an earlier import or a `missing` day).
    pub figures_updated: u64,
    /// Figures already stored with the same value.
    pub figures_unchanged: u64,
    /// Figures not written because telemetry or a manual correction supplies the day.
    pub figures_kept: u64,
    /// Hours-on rows inserted or updated.
    pub runtime_written: u64,
    /// Hours-on rows already stored with the same value.
    pub runtime_unchanged: u64,
}

fn digits(api: &str) -> String {
    api.chars().filter(|c| c.is_ascii_digit()).collect()
}

/// Imports `wells` (created at the site named `site`, itself created when missing) and
/// `days`. `progress(done, total)` is called after each chunk of well-days.
pub async fn import(
    conn: &mut PgConnection,
    tenant: TenantId,
    site: &str,
    wells: &[ImportWell<'_>],
    days: &[ImportDay<'_>],
    progress: &mut (dyn FnMut(usize, usize) + Send),
) -> Result<ImportCounts, DbError> {
    let mut counts = ImportCounts::default();
    let known = well_ids(conn, tenant).await?;
    let new: Vec<&ImportWell<'_>> = wells
        .iter()
        .filter(|w| !known.contains_key(&digits(w.api_number)))
        .collect();
    counts.wells_existing = (wells.len() - new.len()) as u64;
    if !new.is_empty() {
        sqlx::query(
            "INSERT INTO sites (tenant_id, name) VALUES ($1, $2)
             ON CONFLICT (tenant_id, name) DO NOTHING",
        )
        .bind(tenant)
        .bind(site)
        .execute(&mut *conn)
        .await?;
        let site_id: i64 =
            sqlx::query_scalar("SELECT id FROM sites WHERE tenant_id = $1 AND name = $2")
                .bind(tenant)
                .bind(site)
                .fetch_one(&mut *conn)
                .await?;
        let col = |f: for<'x> fn(&'x ImportWell<'_>) -> &'x str| {
            new.iter().map(|w| f(w).to_owned()).collect::<Vec<String>>()
        };
        let done = sqlx::query(
            "INSERT INTO wells (tenant_id, site_id, api_number, name, lease, field, county, state)
             SELECT $1, $2, x.api, x.name, x.lease, x.field, x.county, x.state
             FROM unnest($3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[])
                  AS x(api, name, lease, field, county, state)",
        )
        .bind(tenant)
        .bind(site_id)
        .bind(col(|w| w.api_number))
        .bind(col(|w| w.name))
        .bind(col(|w| w.lease))
        .bind(col(|w| w.field))
        .bind(col(|w| w.county))
        .bind(col(|w| w.state))
        .execute(&mut *conn)
        .await?;
        counts.wells_created = done.rows_affected();
    }
    let ids = well_ids(conn, tenant).await?;
    let total = days.len();
    for (n, chunk) in days.chunks(CHUNK).enumerate() {
        write_chunk(conn, tenant, &ids, chunk, &mut counts).await?;
        progress((n * CHUNK + chunk.len()).min(total), total);
    }
    if days.is_empty() {
        progress(0, 0);
    }
    Ok(counts)
}

async fn well_ids(
    conn: &mut PgConnection,
    tenant: TenantId,
) -> Result<HashMap<String, WellId>, DbError> {
    let rows = sqlx::query("SELECT id, api_number FROM wells WHERE tenant_id = $1")
        .bind(tenant)
        .fetch_all(conn)
        .await?;
    let mut out = HashMap::with_capacity(rows.len());
    for r in rows {
        out.insert(
            digits(r.try_get::<&str, _>("api_number")?),
            r.try_get("id")?,
        );
    }
    Ok(out)
}

async fn write_chunk(
    conn: &mut PgConnection,
    tenant: TenantId,
    ids: &HashMap<String, WellId>,
    days: &[ImportDay<'_>],
    counts: &mut ImportCounts,
) -> Result<(), DbError> {
    let mut wells = Vec::new();
    let mut dates = Vec::new();
    let mut quantities = Vec::new();
    let mut volumes = Vec::new();
    let mut units = Vec::new();
    let mut dispositions = Vec::new();
    let mut notes = Vec::new();
    let mut run_wells = Vec::new();
    let mut run_days = Vec::new();
    let mut run_hours = Vec::new();
    for d in days {
        let Some(well) = ids.get(&digits(d.api_number)) else {
            return Err(DbError::corrupt("imported well", d.api_number));
        };
        for (quantity, value, unit) in [
            ("oil", d.oil, "bbl"),
            ("gas", d.gas, "Mcf"),
            ("water", d.water, "bbl"),
        ] {
            if let Some(v) = value {
                wells.push(*well);
                dates.push(d.day);
                quantities.push(quantity);
                volumes.push(v);
                units.push(unit);
                dispositions.push(d.disposition);
                notes.push(d.note);
            }
        }
        if let Some(h) = d.hours_on {
            run_wells.push(*well);
            run_days.push(d.day);
            run_hours.push(h);
        }
    }
    if !wells.is_empty() {
        let kept: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM daily_production p
             JOIN unnest($2::bigint[], $3::date[], $4::text[]) AS x(well, day, quantity)
               ON p.well_id = x.well AND p.day = x.day AND p.quantity = x.quantity
             WHERE p.tenant_id = $1 AND p.method NOT IN ('import', 'missing')",
        )
        .bind(tenant)
        .bind(&wells)
        .bind(&dates)
        .bind(&quantities)
        .fetch_one(&mut *conn)
        .await?;
        let written = sqlx::query(
            "INSERT INTO daily_production (tenant_id, well_id, day, quantity, volume, unit,
                 method, coverage, notes, disposition, derived_at)
             SELECT $1, x.well, x.day, x.quantity, x.volume, x.unit, 'import', 1,
                    CASE WHEN x.note IS NULL THEN '{}'::text[] ELSE ARRAY[x.note] END,
                    x.disposition, now()
             FROM unnest($2::bigint[], $3::date[], $4::text[], $5::float8[], $6::text[],
                         $7::text[], $8::text[])
                  AS x(well, day, quantity, volume, unit, disposition, note)
             ON CONFLICT (well_id, day, quantity) DO UPDATE SET
                 volume = excluded.volume, unit = excluded.unit, method = 'import',
                 coverage = 1, gap_starts = '{}', gap_ends = '{}', notes = excluded.notes,
                 disposition = excluded.disposition, derived_volume = NULL,
                 derived_method = NULL, derived_coverage = NULL, correction_id = NULL,
                 correction_reference = NULL, closing_stock = NULL,
                 derived_at = excluded.derived_at
             WHERE daily_production.method IN ('import', 'missing')
               AND (daily_production.method, daily_production.volume,
                    daily_production.notes, daily_production.disposition)
                   IS DISTINCT FROM ('import', excluded.volume, excluded.notes,
                                     excluded.disposition)
             RETURNING (xmax = 0) AS inserted",
        )
        .bind(tenant)
        .bind(&wells)
        .bind(&dates)
        .bind(&quantities)
        .bind(&volumes)
        .bind(&units)
        .bind(&dispositions)
        .bind(&notes)
        .fetch_all(&mut *conn)
        .await?;
        let inserted = written
            .iter()
            .map(|r| r.try_get::<bool, _>("inserted"))
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .filter(|i| *i)
            .count() as u64;
        counts.figures_inserted += inserted;
        counts.figures_updated += written.len() as u64 - inserted;
        counts.figures_kept += kept as u64;
        counts.figures_unchanged += wells.len() as u64 - written.len() as u64 - kept as u64;
    }
    if !run_wells.is_empty() {
        let done = sqlx::query(
            "INSERT INTO daily_runtime (tenant_id, well_id, day, hours_on, source)
             SELECT $1, x.well, x.day, x.hours, 'import'
             FROM unnest($2::bigint[], $3::date[], $4::float8[]) AS x(well, day, hours)
             ON CONFLICT (well_id, day) DO UPDATE SET
                 hours_on = excluded.hours_on, source = excluded.source, updated_at = now()
             WHERE daily_runtime.hours_on IS DISTINCT FROM excluded.hours_on",
        )
        .bind(tenant)
        .bind(&run_wells)
        .bind(&run_days)
        .bind(&run_hours)
        .execute(&mut *conn)
        .await?;
        counts.runtime_written += done.rows_affected();
        counts.runtime_unchanged += run_wells.len() as u64 - done.rows_affected();
    }
    Ok(())
}

/// Hours on of a well for days in `[from, to)`.
pub async fn runtime(
    conn: &mut PgConnection,
    well: WellId,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<(NaiveDate, f64)>, DbError> {
    let rows = sqlx::query(
        "SELECT day, hours_on FROM daily_runtime
         WHERE well_id = $1 AND day >= $2 AND day < $3 ORDER BY day",
    )
    .bind(well)
    .bind(from)
    .bind(to)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("day")?, r.try_get("hours_on")?)))
        .collect()
}
