//! SQL of daily production: the telemetry reads the derivation needs, haul tickets, tank
//! strapping, manual corrections, the `daily_production` table and the job's watermarks.
//!
//! # Data flow
//!
//! ```text
//! telemetry (raw, 1-minute rollups) ─┐
//! haul_tickets, tank_strapping_points├─▶ production_job ─▶ analytics::production::derive_day
//! production_corrections (latest) ───┘                          │
//!                                        daily_production ◀─────┘ (upsert, idempotent)
//! ```
//!
//! Every function takes a `PgConnection`, so it runs either as the owner (the periodic
//! job, which then filters by tenant explicitly) or inside a tenant-scoped transaction
//! ([`Db::begin_tenant`](crate::Db::begin_tenant)), where row-level security hides other
//! tenants' rows whatever the WHERE clause says.
//!
//! Writes are one statement per call whatever the number of rows (arrays bound and
//! `unnest`ed): small statements are the slow part of the protocol over TCP.
//!
//! Quantities and methods are stored by their `analytics` names (`oil`, `meter_total`, …);
//! gaps as two parallel `timestamptz[]` columns of half-open `[start, end)` intervals.

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{Value as Json, json};
use sqlx::{PgConnection, Row};

use analytics::production::{Method, Quantity};

use crate::{DbError, DeviceId, SeriesId, TenantId, WellId};

/// Canonical metrics `analytics::production::derive_day` reads.
pub const PRODUCTION_METRICS: [&str; 13] = [
    "oil_volume_bbl",
    "oil_level_in",
    "oil_rate_bpd",
    "water_volume_bbl",
    "water_level_in",
    "water_rate_bpd",
    "gas_volume_total_mcf",
    "gas_volume_yesterday_mcf",
    "gas_rate_mcfd",
    "flare_gas_mcf",
    "flare_gas_rate_mcfd",
    "vent_gas_mcf",
    "fuel_gas_mcf",
];

/// Every derivation method, for parsing stored names.
const METHODS: [Method; 7] = [
    Method::TankGauge,
    Method::MeterTotal,
    Method::FlowComputerDaily,
    Method::RateIntegration,
    Method::ManualCorrection,
    Method::Missing,
    Method::Import,
];

/// The quantity named `name` (`oil`, `gas`, `water`, `flared`, `vented`, `fuel`).
pub fn quantity_from_name(name: &str) -> Option<Quantity> {
    Quantity::ALL.into_iter().find(|q| q.name() == name)
}

/// The method named `name` (see `analytics::production::Method::name`).
pub fn method_from_name(name: &str) -> Option<Method> {
    METHODS.into_iter().find(|m| m.name() == name)
}

fn stored_quantity(name: &str) -> Result<Quantity, DbError> {
    quantity_from_name(name).ok_or_else(|| DbError::corrupt("stored quantity", name))
}

fn stored_method(name: &str) -> Result<Method, DbError> {
    method_from_name(name).ok_or_else(|| DbError::corrupt("stored method", name))
}

/// A production-relevant series of a well.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductionSeries {
    /// Series id.
    pub series_id: SeriesId,
    /// Device (tank, meter, controller) reporting it.
    pub device_id: DeviceId,
    /// Canonical metric.
    pub metric: String,
}

/// One good-quality stored sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GoodSample {
    /// Series.
    pub series_id: SeriesId,
    /// Sample time.
    pub time: DateTime<Utc>,
    /// Engineering value.
    pub value: f64,
}

/// Series of a well's devices measuring one of `metrics`.
pub async fn well_series(
    conn: &mut PgConnection,
    well: WellId,
    metrics: &[&str],
) -> Result<Vec<ProductionSeries>, DbError> {
    let rows = sqlx::query(
        "SELECT s.id, s.device_id, s.metric FROM series s JOIN devices d ON d.id = s.device_id
         WHERE d.well_id = $1 AND s.metric = ANY($2) ORDER BY s.id",
    )
    .bind(well)
    .bind(metrics)
    .fetch_all(conn)
    .await?;
    production_series(&rows)
}

/// Maps `id, device_id, metric` rows to [`ProductionSeries`].
fn production_series(rows: &[sqlx::postgres::PgRow]) -> Result<Vec<ProductionSeries>, DbError> {
    rows.iter()
        .map(|r| {
            Ok(ProductionSeries {
                series_id: r.try_get("id")?,
                device_id: r.try_get("device_id")?,
                metric: r.try_get("metric")?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(DbError::from)
}

/// Series by id (with their device and metric), e.g. the meters of emission sources.
pub async fn series_by_id(
    conn: &mut PgConnection,
    ids: &[SeriesId],
) -> Result<Vec<ProductionSeries>, DbError> {
    let rows =
        sqlx::query("SELECT id, device_id, metric FROM series WHERE id = ANY($1) ORDER BY id")
            .bind(ids)
            .fetch_all(conn)
            .await?;
    production_series(&rows)
}

/// Good samples of `series` inside any of the half-open `zones` (which must not overlap),
/// ordered by series and time.
pub async fn good_samples_in_zones(
    conn: &mut PgConnection,
    series: &[SeriesId],
    zones: &[(DateTime<Utc>, DateTime<Utc>)],
) -> Result<Vec<GoodSample>, DbError> {
    if series.is_empty() || zones.is_empty() {
        return Ok(Vec::new());
    }
    let (starts, ends): (Vec<DateTime<Utc>>, Vec<DateTime<Utc>>) = zones.iter().copied().unzip();
    let rows = sqlx::query(
        "SELECT t.series_id, t.time, t.value
         FROM unnest($2::timestamptz[], $3::timestamptz[]) AS z(lo, hi)
         JOIN telemetry t ON t.time >= z.lo AND t.time < z.hi
         WHERE t.series_id = ANY($1) AND t.quality = 0 AND t.value IS NOT NULL
         ORDER BY t.series_id, t.time",
    )
    .bind(series)
    .bind(&starts)
    .bind(&ends)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(GoodSample {
                series_id: r.try_get("series_id")?,
                time: r.try_get("time")?,
                value: r.try_get("value")?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(DbError::from)
}

/// A haul (run) ticket.
#[derive(Debug, Clone, PartialEq)]
pub struct HaulTicket {
    /// Ticket id.
    pub id: i64,
    /// Tank (device) the liquid was taken from.
    pub device_id: DeviceId,
    /// [`Quantity::Oil`] or [`Quantity::Water`].
    pub product: Quantity,
    /// Time of the haul.
    pub time: DateTime<Utc>,
    /// Net volume hauled, bbl.
    pub volume_bbl: f64,
    /// Ticket number (unique per tenant).
    pub ticket_number: String,
    /// Hauler or purchaser.
    pub hauler: String,
}

/// A haul ticket to record.
#[derive(Debug, Clone)]
pub struct NewHaulTicket<'a> {
    /// Tank (device).
    pub device_id: DeviceId,
    /// [`Quantity::Oil`] or [`Quantity::Water`].
    pub product: Quantity,
    /// Time of the haul.
    pub time: DateTime<Utc>,
    /// Net volume, bbl (> 0).
    pub volume_bbl: f64,
    /// Ticket number.
    pub ticket_number: &'a str,
    /// Hauler or purchaser.
    pub hauler: &'a str,
}

fn haul_ticket(r: &sqlx::postgres::PgRow) -> Result<HaulTicket, DbError> {
    Ok(HaulTicket {
        id: r.try_get("id")?,
        device_id: r.try_get("device_id")?,
        product: stored_quantity(r.try_get("product")?)?,
        time: r.try_get("time")?,
        volume_bbl: r.try_get("volume_bbl")?,
        ticket_number: r.try_get("ticket_number")?,
        hauler: r.try_get("hauler")?,
    })
}

/// Records a haul ticket.
pub async fn insert_haul_ticket(
    conn: &mut PgConnection,
    tenant: TenantId,
    ticket: &NewHaulTicket<'_>,
) -> Result<HaulTicket, DbError> {
    if !matches!(ticket.product, Quantity::Oil | Quantity::Water) {
        return Err(DbError::invalid(
            "haul ticket product",
            format!("{} (only oil or water is hauled)", ticket.product.name()),
        ));
    }
    if !(ticket.volume_bbl.is_finite() && ticket.volume_bbl > 0.0) {
        return Err(DbError::invalid(
            "haul ticket volume",
            format!("{} bbl (must be a positive number)", ticket.volume_bbl),
        ));
    }
    let row = sqlx::query(
        "INSERT INTO haul_tickets (tenant_id, device_id, product, time, volume_bbl,
                                   ticket_number, hauler)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         RETURNING id, device_id, product, time, volume_bbl, ticket_number, hauler",
    )
    .bind(tenant)
    .bind(ticket.device_id)
    .bind(ticket.product.name())
    .bind(ticket.time)
    .bind(ticket.volume_bbl)
    .bind(ticket.ticket_number)
    .bind(ticket.hauler)
    .fetch_one(conn)
    .await?;
    haul_ticket(&row)
}

/// Haul tickets from the tanks of a well in `[from, to)`, oldest first.
pub async fn haul_tickets_for_well(
    conn: &mut PgConnection,
    well: WellId,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<HaulTicket>, DbError> {
    let rows = sqlx::query(
        "SELECT h.id, h.device_id, h.product, h.time, h.volume_bbl, h.ticket_number, h.hauler
         FROM haul_tickets h JOIN devices d ON d.id = h.device_id
         WHERE d.well_id = $1 AND h.time >= $2 AND h.time < $3
         ORDER BY h.time, h.id",
    )
    .bind(well)
    .bind(from)
    .bind(to)
    .fetch_all(conn)
    .await?;
    rows.iter().map(haul_ticket).collect()
}

/// Replaces the strapping table of a tank (`(level in, volume bbl)`, strictly increasing
/// level and non-decreasing volume).
pub async fn set_strapping(
    conn: &mut PgConnection,
    tenant: TenantId,
    device: DeviceId,
    points: &[(f64, f64)],
) -> Result<(), DbError> {
    let increasing = points
        .windows(2)
        .all(|w| w[1].0 > w[0].0 && w[1].1 >= w[0].1);
    if points.len() < 2 || !increasing {
        return Err(DbError::invalid(
            "strapping table",
            "needs at least two points with strictly increasing level and non-decreasing volume",
        ));
    }
    let (levels, volumes): (Vec<f64>, Vec<f64>) = points.iter().copied().unzip();
    sqlx::query(
        "WITH gone AS (DELETE FROM tank_strapping_points WHERE device_id = $2)
         INSERT INTO tank_strapping_points (tenant_id, device_id, level_in, volume_bbl)
         SELECT $1, $2, p.level, p.volume FROM unnest($3::float8[], $4::float8[]) AS p(level, volume)",
    )
    .bind(tenant)
    .bind(device)
    .bind(&levels)
    .bind(&volumes)
    .execute(conn)
    .await?;
    Ok(())
}

/// Strapping tables of the tanks of a well: `(device, points by increasing level)`.
pub async fn strappings_for_well(
    conn: &mut PgConnection,
    well: WellId,
) -> Result<Vec<(DeviceId, Vec<(f64, f64)>)>, DbError> {
    let rows = sqlx::query(
        "SELECT p.device_id, p.level_in, p.volume_bbl
         FROM tank_strapping_points p JOIN devices d ON d.id = p.device_id
         WHERE d.well_id = $1 ORDER BY p.device_id, p.level_in",
    )
    .bind(well)
    .fetch_all(conn)
    .await?;
    let mut out: Vec<(DeviceId, Vec<(f64, f64)>)> = Vec::new();
    for r in &rows {
        let device: DeviceId = r.try_get("device_id")?;
        let point = (r.try_get("level_in")?, r.try_get("volume_bbl")?);
        match out.last_mut() {
            Some((d, points)) if *d == device => points.push(point),
            _ => out.push((device, vec![point])),
        }
    }
    Ok(out)
}

/// A manual correction (run ticket, third-party statement).
#[derive(Debug, Clone, PartialEq)]
pub struct Correction {
    /// Correction id.
    pub id: i64,
    /// Well.
    pub well_id: WellId,
    /// Production day (UTC).
    pub day: NaiveDate,
    /// Quantity corrected.
    pub quantity: Quantity,
    /// Corrected daily volume in the quantity's unit.
    pub volume: f64,
    /// Run ticket or statement number (may be empty).
    pub ticket_number: String,
    /// Who entered it.
    pub author: String,
    /// Free note.
    pub note: String,
    /// When it was entered.
    pub created_at: DateTime<Utc>,
}

impl Correction {
    /// The reference recorded on the daily figure, e.g. `correction #7, ticket RT-1, by jo`.
    pub fn reference(&self) -> String {
        let mut s = format!("correction #{}", self.id);
        if !self.ticket_number.is_empty() {
            s.push_str(&format!(", ticket {}", self.ticket_number));
        }
        s.push_str(&format!(", by {}", self.author));
        s
    }
}

/// A correction to record.
#[derive(Debug, Clone)]
pub struct NewCorrection<'a> {
    /// Well.
    pub well_id: WellId,
    /// Production day (UTC).
    pub day: NaiveDate,
    /// Quantity corrected.
    pub quantity: Quantity,
    /// Corrected volume (finite, ≥ 0) in the quantity's unit.
    pub volume: f64,
    /// Run ticket or statement number.
    pub ticket_number: &'a str,
    /// Who entered it (non-blank).
    pub author: &'a str,
    /// Free note.
    pub note: &'a str,
}

const CORRECTION_COLUMNS: &str =
    "id, well_id, day, quantity, volume, ticket_number, author, note, created_at";

fn correction(r: &sqlx::postgres::PgRow) -> Result<Correction, DbError> {
    Ok(Correction {
        id: r.try_get("id")?,
        well_id: r.try_get("well_id")?,
        day: r.try_get("day")?,
        quantity: stored_quantity(r.try_get("quantity")?)?,
        volume: r.try_get("volume")?,
        ticket_number: r.try_get("ticket_number")?,
        author: r.try_get("author")?,
        note: r.try_get("note")?,
        created_at: r.try_get("created_at")?,
    })
}

/// Records a manual correction (the caller re-derives the day afterwards).
pub async fn insert_correction(
    conn: &mut PgConnection,
    tenant: TenantId,
    new: &NewCorrection<'_>,
) -> Result<Correction, DbError> {
    if !(new.volume.is_finite() && new.volume >= 0.0) {
        return Err(DbError::invalid(
            "correction volume",
            format!("{} (must be a finite number ≥ 0)", new.volume),
        ));
    }
    if new.author.trim().is_empty() {
        return Err(DbError::invalid("correction author", "must not be blank"));
    }
    let row = sqlx::query(&format!(
        "INSERT INTO production_corrections (tenant_id, well_id, day, quantity, volume,
                                             ticket_number, author, note)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         RETURNING {CORRECTION_COLUMNS}"
    ))
    .bind(tenant)
    .bind(new.well_id)
    .bind(new.day)
    .bind(new.quantity.name())
    .bind(new.volume)
    .bind(new.ticket_number.trim())
    .bind(new.author.trim())
    .bind(new.note)
    .fetch_one(conn)
    .await?;
    correction(&row)
}

/// The latest correction of every (day, quantity) of a well in `[from, to)`.
pub async fn latest_corrections(
    conn: &mut PgConnection,
    well: WellId,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<Correction>, DbError> {
    let rows = sqlx::query(&format!(
        "SELECT DISTINCT ON (day, quantity) {CORRECTION_COLUMNS}
         FROM production_corrections
         WHERE well_id = $1 AND day >= $2 AND day < $3
         ORDER BY day, quantity, created_at DESC, id DESC"
    ))
    .bind(well)
    .bind(from)
    .bind(to)
    .fetch_all(conn)
    .await?;
    rows.iter().map(correction).collect()
}

/// The telemetry-derived figure kept beside a manual correction.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DerivedBeside {
    /// Derived volume (`None` unknown).
    pub volume: Option<f64>,
    /// Derivation method.
    pub method: Method,
    /// Covered fraction of the day.
    pub coverage: f64,
}

/// One stored daily figure.
#[derive(Debug, Clone, PartialEq)]
pub struct DailyRow {
    /// Well.
    pub well_id: WellId,
    /// Production day (UTC).
    pub day: NaiveDate,
    /// Quantity.
    pub quantity: Quantity,
    /// Volume in the quantity's unit; `None` unknown.
    pub volume: Option<f64>,
    /// How the volume was obtained.
    pub method: Method,
    /// Covered fraction of the day, 0..=1.
    pub coverage: f64,
    /// Parts of the day without data, `[start, end)`.
    pub gaps: Vec<(DateTime<Utc>, DateTime<Utc>)>,
    /// For a manual correction, the derived figure.
    pub derived: Option<DerivedBeside>,
    /// For a manual correction, its id.
    pub correction_id: Option<i64>,
    /// For a manual correction, its reference.
    pub correction_reference: Option<String>,
    /// Oil and water: tank stock at the end of the day, bbl.
    pub closing_stock: Option<f64>,
    /// Counter events and derivation issues.
    pub notes: Vec<String>,
    /// When it was derived.
    pub derived_at: DateTime<Utc>,
}

impl DailyRow {
    /// True when the volume is known for the whole day.
    pub fn is_complete(&self) -> bool {
        self.volume.is_some() && self.gaps.is_empty()
    }
}

/// Upserts daily figures of one well (one statement; re-running with the same figures
/// leaves the table unchanged apart from `derived_at`). An imported figure (see
/// [`crate::history`]) is replaced by a derived one, never by `missing`: a day telemetry
/// knows nothing about keeps its imported history.
pub async fn upsert_daily(
    conn: &mut PgConnection,
    tenant: TenantId,
    rows: &[DailyRow],
) -> Result<u64, DbError> {
    if rows.is_empty() {
        return Ok(0);
    }
    let mut wells = Vec::with_capacity(rows.len());
    let mut days = Vec::with_capacity(rows.len());
    let mut quantities = Vec::with_capacity(rows.len());
    let mut volumes = Vec::with_capacity(rows.len());
    let mut units = Vec::with_capacity(rows.len());
    let mut methods = Vec::with_capacity(rows.len());
    let mut coverages = Vec::with_capacity(rows.len());
    let mut extras: Vec<Json> = Vec::with_capacity(rows.len());
    let mut derived_volumes = Vec::with_capacity(rows.len());
    let mut derived_methods = Vec::with_capacity(rows.len());
    let mut derived_coverages = Vec::with_capacity(rows.len());
    let mut correction_ids = Vec::with_capacity(rows.len());
    let mut references = Vec::with_capacity(rows.len());
    let mut stocks = Vec::with_capacity(rows.len());
    let mut derived_at = Vec::with_capacity(rows.len());
    for r in rows {
        wells.push(r.well_id);
        days.push(r.day);
        quantities.push(r.quantity.name());
        volumes.push(r.volume);
        units.push(r.quantity.unit());
        methods.push(r.method.name());
        coverages.push(r.coverage.clamp(0.0, 1.0));
        // Per-row arrays (gaps, notes) travel as JSON: SQL arrays of arrays must be
        // rectangular.
        extras.push(json!({
            "s": r.gaps.iter().map(|g| g.0.to_rfc3339()).collect::<Vec<_>>(),
            "e": r.gaps.iter().map(|g| g.1.to_rfc3339()).collect::<Vec<_>>(),
            "n": r.notes,
        }));
        derived_volumes.push(r.derived.and_then(|d| d.volume));
        derived_methods.push(r.derived.map(|d| d.method.name()));
        derived_coverages.push(r.derived.map(|d| d.coverage));
        correction_ids.push(r.correction_id);
        references.push(r.correction_reference.as_deref());
        stocks.push(r.closing_stock);
        derived_at.push(r.derived_at);
    }
    let done = sqlx::query(
        "INSERT INTO daily_production (tenant_id, well_id, day, quantity, volume, unit, method,
             coverage, gap_starts, gap_ends, derived_volume, derived_method, derived_coverage,
             correction_id, correction_reference, closing_stock, notes, derived_at)
         SELECT $1, x.well, x.day, x.quantity, x.volume, x.unit, x.method, x.coverage,
                ARRAY(SELECT e.v::timestamptz FROM jsonb_array_elements_text(x.extra->'s')
                      WITH ORDINALITY AS e(v, i) ORDER BY e.i),
                ARRAY(SELECT e.v::timestamptz FROM jsonb_array_elements_text(x.extra->'e')
                      WITH ORDINALITY AS e(v, i) ORDER BY e.i),
                x.dvol, x.dmethod, x.dcov, x.cid, x.cref, x.stock,
                ARRAY(SELECT e.v FROM jsonb_array_elements_text(x.extra->'n')
                      WITH ORDINALITY AS e(v, i) ORDER BY e.i),
                x.at
         FROM unnest($2::bigint[], $3::date[], $4::text[], $5::float8[], $6::text[], $7::text[],
                     $8::float8[], $9::jsonb[], $10::float8[], $11::text[], $12::float8[],
                     $13::bigint[], $14::text[], $15::float8[], $16::timestamptz[])
              AS x(well, day, quantity, volume, unit, method, coverage, extra, dvol, dmethod,
                   dcov, cid, cref, stock, at)
         ON CONFLICT (well_id, day, quantity) DO UPDATE SET
             volume = excluded.volume, unit = excluded.unit, method = excluded.method,
             coverage = excluded.coverage, gap_starts = excluded.gap_starts,
             gap_ends = excluded.gap_ends, derived_volume = excluded.derived_volume,
             derived_method = excluded.derived_method,
             derived_coverage = excluded.derived_coverage,
             correction_id = excluded.correction_id,
             correction_reference = excluded.correction_reference,
             closing_stock = excluded.closing_stock, notes = excluded.notes,
             derived_at = excluded.derived_at, disposition = NULL
         WHERE NOT (daily_production.method = 'import' AND excluded.method = 'missing')",
    )
    .bind(tenant)
    .bind(&wells)
    .bind(&days)
    .bind(&quantities)
    .bind(&volumes)
    .bind(&units)
    .bind(&methods)
    .bind(&coverages)
    .bind(&extras)
    .bind(&derived_volumes)
    .bind(&derived_methods)
    .bind(&derived_coverages)
    .bind(&correction_ids)
    .bind(&references)
    .bind(&stocks)
    .bind(&derived_at)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

fn daily_row(r: &sqlx::postgres::PgRow) -> Result<DailyRow, DbError> {
    let starts: Vec<DateTime<Utc>> = r.try_get("gap_starts")?;
    let ends: Vec<DateTime<Utc>> = r.try_get("gap_ends")?;
    let derived_method: Option<String> = r.try_get("derived_method")?;
    let derived = match derived_method {
        Some(m) => Some(DerivedBeside {
            volume: r.try_get("derived_volume")?,
            method: stored_method(&m)?,
            coverage: r
                .try_get::<Option<f64>, _>("derived_coverage")?
                .unwrap_or(0.0),
        }),
        None => None,
    };
    Ok(DailyRow {
        well_id: r.try_get("well_id")?,
        day: r.try_get("day")?,
        quantity: stored_quantity(r.try_get("quantity")?)?,
        volume: r.try_get("volume")?,
        method: stored_method(r.try_get("method")?)?,
        coverage: r.try_get("coverage")?,
        gaps: starts.into_iter().zip(ends).collect(),
        derived,
        correction_id: r.try_get("correction_id")?,
        correction_reference: r.try_get("correction_reference")?,
        closing_stock: r.try_get("closing_stock")?,
        notes: r.try_get("notes")?,
        derived_at: r.try_get("derived_at")?,
    })
}

const DAILY_COLUMNS: &str = "well_id, day, quantity, volume, method, coverage, gap_starts,
    gap_ends, derived_volume, derived_method, derived_coverage, correction_id,
    correction_reference, closing_stock, notes, derived_at";

/// Stored figures of a well for days in `[from, to)`, by day then report order.
pub async fn daily_rows(
    conn: &mut PgConnection,
    well: WellId,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<DailyRow>, DbError> {
    let rows = sqlx::query(&format!(
        "SELECT {DAILY_COLUMNS} FROM daily_production
         WHERE well_id = $1 AND day >= $2 AND day < $3
         ORDER BY day, array_position(ARRAY['oil','gas','water','flared','vented','fuel'], quantity)"
    ))
    .bind(well)
    .bind(from)
    .bind(to)
    .fetch_all(conn)
    .await?;
    rows.iter().map(daily_row).collect()
}

/// Stored figures of every well of a tenant for days in `[from, to)`, by well and day.
pub async fn tenant_daily_rows(
    conn: &mut PgConnection,
    tenant: TenantId,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<DailyRow>, DbError> {
    let rows = sqlx::query(&format!(
        "SELECT {DAILY_COLUMNS} FROM daily_production
         WHERE tenant_id = $1 AND day >= $2 AND day < $3
         ORDER BY well_id, day, array_position(ARRAY['oil','gas','water','flared','vented','fuel'], quantity)"
    ))
    .bind(tenant)
    .bind(from)
    .bind(to)
    .fetch_all(conn)
    .await?;
    rows.iter().map(daily_row).collect()
}

/// One figure of each stored (well, day) of a well, oldest first, for a quantity: the
/// decline-curve history.
pub async fn quantity_history(
    conn: &mut PgConnection,
    well: WellId,
    quantity: Quantity,
) -> Result<Vec<(NaiveDate, Option<f64>)>, DbError> {
    let rows = sqlx::query(
        "SELECT day, volume FROM daily_production
         WHERE well_id = $1 AND quantity = $2 ORDER BY day",
    )
    .bind(well)
    .bind(quantity.name())
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("day")?, r.try_get("volume")?)))
        .collect::<Result<_, sqlx::Error>>()
        .map_err(DbError::from)
}

/// A well of the tenant, with what the reports need from the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WellSummary {
    /// Well id.
    pub id: WellId,
    /// Site.
    pub site_id: crate::SiteId,
    /// API number.
    pub api_number: String,
    /// Name.
    pub name: String,
    /// Lease name.
    pub lease: String,
    /// Field.
    pub field: String,
    /// State (postal code).
    pub state: String,
}

/// The well `well` if it belongs to `tenant`.
pub async fn tenant_well(
    conn: &mut PgConnection,
    tenant: TenantId,
    well: WellId,
) -> Result<Option<WellSummary>, DbError> {
    let row = sqlx::query(
        "SELECT id, site_id, api_number, name, lease, field, state FROM wells
         WHERE id = $1 AND tenant_id = $2",
    )
    .bind(well)
    .bind(tenant)
    .fetch_optional(conn)
    .await?;
    row.as_ref().map(well_summary).transpose()
}

fn well_summary(r: &sqlx::postgres::PgRow) -> Result<WellSummary, DbError> {
    Ok(WellSummary {
        id: r.try_get("id")?,
        site_id: r.try_get("site_id")?,
        api_number: r.try_get("api_number")?,
        name: r.try_get("name")?,
        lease: r.try_get("lease")?,
        field: r.try_get("field")?,
        state: r.try_get("state")?,
    })
}

/// Every well of a tenant, by id.
pub async fn tenant_wells(
    conn: &mut PgConnection,
    tenant: TenantId,
) -> Result<Vec<WellSummary>, DbError> {
    let rows = sqlx::query(
        "SELECT id, site_id, api_number, name, lease, field, state FROM wells
         WHERE tenant_id = $1 ORDER BY id",
    )
    .bind(tenant)
    .fetch_all(conn)
    .await?;
    rows.iter().map(well_summary).collect()
}

/// Every tenant id (the periodic job visits them one by one).
pub async fn tenant_ids(conn: &mut PgConnection) -> Result<Vec<TenantId>, DbError> {
    Ok(sqlx::query_scalar("SELECT id FROM tenants ORDER BY id")
        .fetch_all(conn)
        .await?)
}

/// Wells of a tenant with at least one device reporting a production metric.
pub async fn producing_wells(
    conn: &mut PgConnection,
    tenant: TenantId,
) -> Result<Vec<WellId>, DbError> {
    Ok(sqlx::query_scalar(
        "SELECT DISTINCT d.well_id FROM devices d JOIN series s ON s.device_id = d.id
         WHERE d.tenant_id = $1 AND d.well_id IS NOT NULL AND s.metric = ANY($2)
         ORDER BY 1",
    )
    .bind(tenant)
    .bind(&PRODUCTION_METRICS[..])
    .fetch_all(conn)
    .await?)
}

/// The production metrics each well of a tenant reports: `(well, canonical metric)`.
pub async fn tenant_well_metrics(
    conn: &mut PgConnection,
    tenant: TenantId,
) -> Result<Vec<(WellId, String)>, DbError> {
    let rows = sqlx::query(
        "SELECT DISTINCT d.well_id, s.metric FROM devices d JOIN series s ON s.device_id = d.id
         WHERE d.tenant_id = $1 AND d.well_id IS NOT NULL AND s.metric = ANY($2)
         ORDER BY 1, 2",
    )
    .bind(tenant)
    .bind(&PRODUCTION_METRICS[..])
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("well_id")?, r.try_get("metric")?)))
        .collect::<Result<_, sqlx::Error>>()
        .map_err(DbError::from)
}

/// (well, day) pairs whose telemetry may have changed: days spanned by batches of the
/// tenant received in `(after, through]`, widened by `before` and `after_margin` (a sample
/// affects the day before it through boundary interpolation and flow-computer daily
/// registers, and the day after it through interpolation).
pub async fn touched_well_days(
    conn: &mut PgConnection,
    tenant: TenantId,
    after: DateTime<Utc>,
    through: DateTime<Utc>,
    before: std::time::Duration,
    after_margin: std::time::Duration,
) -> Result<Vec<(WellId, NaiveDate)>, DbError> {
    let rows = sqlx::query(
        "WITH spans AS (
             SELECT b.gateway_id, min(b.min_time) AS lo, max(b.max_time) AS hi
             FROM ingested_batches b
             WHERE b.tenant_id = $1 AND b.received_at > $2 AND b.received_at <= $3
               AND b.min_time IS NOT NULL
             GROUP BY b.gateway_id, (b.min_time AT TIME ZONE 'UTC')::date,
                      (b.max_time AT TIME ZONE 'UTC')::date
         )
         SELECT DISTINCT d.well_id, g.day::date AS day
         FROM spans s
         JOIN devices d ON d.gateway_id = s.gateway_id AND d.well_id IS NOT NULL
         CROSS JOIN LATERAL generate_series(
             date_trunc('day', (s.lo - $4::interval) AT TIME ZONE 'UTC'),
             date_trunc('day', (s.hi + $5::interval) AT TIME ZONE 'UTC'),
             INTERVAL '1 day') AS g(day)
         ORDER BY 1, 2",
    )
    .bind(tenant)
    .bind(after)
    .bind(through)
    .bind(before)
    .bind(after_margin)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("well_id")?, r.try_get("day")?)))
        .collect::<Result<_, sqlx::Error>>()
        .map_err(DbError::from)
}

/// The job's watermark of a tenant: batches received up to it have been derived.
pub async fn watermark(
    conn: &mut PgConnection,
    tenant: TenantId,
) -> Result<Option<DateTime<Utc>>, DbError> {
    Ok(sqlx::query_scalar(
        "SELECT received_through FROM production_watermarks WHERE tenant_id = $1",
    )
    .bind(tenant)
    .fetch_optional(conn)
    .await?)
}

/// Moves the tenant's watermark forward (never backwards).
pub async fn set_watermark(
    conn: &mut PgConnection,
    tenant: TenantId,
    through: DateTime<Utc>,
) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO production_watermarks (tenant_id, received_through) VALUES ($1, $2)
         ON CONFLICT (tenant_id) DO UPDATE SET
             received_through = greatest(production_watermarks.received_through, excluded.received_through),
             updated_at = now()",
    )
    .bind(tenant)
    .bind(through)
    .execute(conn)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for q in Quantity::ALL {
            assert_eq!(quantity_from_name(q.name()), Some(q));
        }
        for m in METHODS {
            assert_eq!(method_from_name(m.name()), Some(m));
        }
        assert_eq!(quantity_from_name("condensate"), None);
        assert_eq!(method_from_name("guess"), None);
    }
}
