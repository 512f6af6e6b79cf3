//! The production job: telemetry → daily production → daily emissions.
//!
//! # Data flow
//!
//! ```text
//! telemetry (raw + 1-minute rollups)   haul_tickets   tank strapping   corrections (latest)
//!          │ readings.rs                     │              │                │
//!          └──────────────┬──────────────────┴──────────────┴────────────────┘
//!                         ▼
//!        analytics::production::derive_day   (per well, per UTC day)
//!                         ▼
//!        daily_production  (volume, method, coverage, gaps, derived figure, closing stock)
//!                         │ emissions.rs: activity per emission source and day
//!                         ▼
//!        analytics::emissions methods (40 CFR 98 C / W)  →  daily_emissions (kg per gas)
//!                         ▼
//!        API: production, monthly totals, emissions (CO2e at request time), intensities,
//!             Form PR / C-115 (monthly totals + registry), decline curves
//! ```
//!
//! # When figures are derived
//!
//! * **On demand**: [`derive_well`] and [`derive_emissions`] for a day range (the API calls
//!   them after a manual correction and on an explicit re-derive request).
//! * **Periodically**: [`run_once`] (a job of the `jobs` scheduler) re-derives, for every tenant, the recent
//!   days of every producing well (`lookback_days`, today included, so a dashboard sees the
//!   day so far with its coverage), plus every (well, day) whose telemetry arrived since
//!   the tenant's watermark: the days spanned by batches received since then (from
//!   `ingested_batches`), widened by a day before (a sample also shapes the previous day
//!   through boundary interpolation and flow-computer daily registers) and `max_gap` after.
//!   Late backfill of any age therefore corrects the figures of its days. The watermark
//!   trails the clock by `ingest_settle`, so a batch received just before a run but
//!   committed after it is picked up by the next run.
//!
//! # Invariants
//!
//! * Deriving is idempotent: the same inputs give the same rows (upsert by
//!   `(well, day, quantity)`); only `derived_at` changes.
//! * A figure without data is stored as unknown (`volume` NULL, method `missing`), never as
//!   zero; a figure with gaps keeps them.
//! * The latest manual correction of a (well, day, quantity) takes precedence; the derived
//!   figure is kept beside it.
//! * Production days are UTC calendar days, like the rollups.

mod emissions;
mod readings;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use sqlx::PgConnection;

use analytics::production::{
    CounterEventKind, DailyFigure, DailyProduction, DayWindow, DerivationConfig, DerivationIssue,
    ManualCorrection, Method, PeriodTotal, Quantity, Reading, RunTicket, Series, TankStrapping,
    WellDayInput, derive_day, value_at,
};

use store::production::{
    self as sql, Correction, DailyRow, DerivedBeside, HaulTicket, PRODUCTION_METRICS,
};
use store::{Db, DbError, DeviceId, TenantId, WellId};

pub use emissions::derive_emissions;
use readings::{ReadPlan, SeriesReadings, chunks, day_start_ms};

/// Longest day range one derivation call accepts.
pub const MAX_RANGE_DAYS: i64 = 366;
const DAY_MS: i64 = 86_400_000;

/// Parameters of the derivation (plain values; a config section maps onto them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DerivationSettings {
    /// Longest spacing between readings that still counts as continuous data. Set it at
    /// least to the agents' longest report interval (deadband heartbeat). Default 30 min.
    pub max_gap: Duration,
    /// Delay after the end of a day before a flow computer's `gas_volume_yesterday_mcf`
    /// holds that day. Default 5 min.
    pub yesterday_settle: Duration,
}

impl Default for DerivationSettings {
    fn default() -> Self {
        DerivationSettings {
            max_gap: Duration::from_secs(30 * 60),
            yesterday_settle: Duration::from_secs(5 * 60),
        }
    }
}

impl DerivationSettings {
    fn max_gap_ms(&self) -> i64 {
        i64::try_from(self.max_gap.as_millis()).unwrap_or(DAY_MS)
    }

    fn settle_ms(&self) -> i64 {
        i64::try_from(self.yesterday_settle.as_millis()).unwrap_or(DAY_MS)
    }
}

/// Options of the periodic job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobOptions {
    /// Derivation parameters.
    pub derivation: DerivationSettings,
    /// Time between runs. Default 15 min.
    pub every: Duration,
    /// Recent days re-derived at every run, today included. Default 2.
    pub lookback_days: u32,
    /// How far the watermark trails the clock (longer than any ingest transaction).
    /// Default 5 min.
    pub ingest_settle: Duration,
}

impl Default for JobOptions {
    fn default() -> Self {
        JobOptions {
            derivation: DerivationSettings::default(),
            every: Duration::from_secs(15 * 60),
            lookback_days: 2,
            ingest_settle: Duration::from_secs(5 * 60),
        }
    }
}

/// Errors of the production job.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The day range is empty, reversed or too long.
    #[error("invalid day range {from} .. {to}: {reason}")]
    Range {
        /// First day.
        from: NaiveDate,
        /// Day after the last.
        to: NaiveDate,
        /// What is wrong.
        reason: String,
    },
}

/// Checks a half-open day range.
pub fn check_range(from: NaiveDate, to: NaiveDate) -> Result<(), JobError> {
    let days = (to - from).num_days();
    let reason = if days <= 0 {
        "the end must be after the start".to_string()
    } else if days > MAX_RANGE_DAYS {
        format!("{days} days exceeds the limit of {MAX_RANGE_DAYS}")
    } else {
        return Ok(());
    };
    Err(JobError::Range { from, to, reason })
}

fn days(from: NaiveDate, to: NaiveDate) -> impl Iterator<Item = NaiveDate> {
    from.iter_days().take_while(move |d| *d < to)
}

fn device_source(device: DeviceId) -> String {
    format!("device:{}", device.0)
}

fn ms_time(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

/// The inputs of a well that do not depend on the day.
struct WellInputs {
    strappings: Vec<TankStrapping>,
    tickets: Vec<HaulTicket>,
    corrections: Vec<Correction>,
}

/// Derives and stores the daily production of one well for the days `[from, to)`; returns
/// the stored rows (six per day, report order).
pub async fn derive_well(
    conn: &mut PgConnection,
    tenant: TenantId,
    well: WellId,
    from: NaiveDate,
    to: NaiveDate,
    settings: &DerivationSettings,
) -> Result<Vec<DailyRow>, JobError> {
    check_range(from, to)?;
    let series = sql::well_series(conn, well, &PRODUCTION_METRICS).await?;
    let inputs = WellInputs {
        strappings: sql::strappings_for_well(conn, well)
            .await?
            .into_iter()
            .map(|(device, points)| TankStrapping {
                source: device_source(device),
                points,
            })
            .collect(),
        tickets: sql::haul_tickets_for_well(
            conn,
            well,
            ms_time(day_start_ms(from)),
            ms_time(day_start_ms(to)),
        )
        .await?,
        corrections: sql::latest_corrections(conn, well, from, to).await?,
    };
    let now = Utc::now();
    let mut rows = Vec::new();
    for (start, end) in chunks(from, to) {
        let plan = ReadPlan::new(start, end, settings.max_gap, settings.yesterday_settle);
        let readings = readings::read(conn, &series, &plan).await?;
        for day in days(start, end) {
            rows.extend(derive_one(well, day, &readings, &inputs, settings, now));
        }
    }
    sql::upsert_daily(conn, tenant, &rows).await?;
    Ok(rows)
}

fn derive_one(
    well: WellId,
    day: NaiveDate,
    readings: &[SeriesReadings],
    inputs: &WellInputs,
    settings: &DerivationSettings,
    now: DateTime<Utc>,
) -> Vec<DailyRow> {
    let start_ms = day_start_ms(day);
    let window = DayWindow {
        start_ms,
        end_ms: start_ms + DAY_MS,
    };
    let day_series: Vec<Series> = readings
        .iter()
        .map(|s| Series {
            metric: s.series.metric.clone(),
            source: device_source(s.series.device_id),
            readings: s.for_day(start_ms, settings.max_gap_ms(), settings.settle_ms()),
        })
        .filter(|s| !s.readings.is_empty())
        .collect();
    let corrections: Vec<&Correction> =
        inputs.corrections.iter().filter(|c| c.day == day).collect();
    let input = WellDayInput {
        window,
        series: day_series,
        tickets: inputs
            .tickets
            .iter()
            .map(|t| RunTicket {
                ts_ms: t.time.timestamp_millis(),
                quantity: t.product,
                volume_bbl: t.volume_bbl,
                ticket: t.ticket_number.clone(),
            })
            .collect(),
        corrections: corrections
            .iter()
            .map(|c| ManualCorrection {
                quantity: c.quantity,
                value: c.volume,
                reference: c.reference(),
            })
            .collect(),
    };
    let config = DerivationConfig {
        max_gap_ms: settings.max_gap_ms(),
        yesterday_settle_ms: settings.settle_ms(),
        strappings: inputs.strappings.clone(),
        counters: Vec::new(),
    };
    let derived = derive_day(&input, &config);
    Quantity::ALL
        .into_iter()
        .map(|q| {
            let figure = derived.figure(q);
            let correction = corrections.iter().find(|c| c.quantity == q);
            DailyRow {
                well_id: well,
                day,
                quantity: q,
                volume: figure.value,
                method: figure.method,
                coverage: figure.coverage.fraction(),
                gaps: figure
                    .coverage
                    .gaps
                    .iter()
                    .map(|g| (ms_time(g.start_ms), ms_time(g.end_ms)))
                    .collect(),
                derived: figure.derived.as_deref().map(|d| DerivedBeside {
                    volume: d.value,
                    method: d.method,
                    coverage: d.coverage.fraction(),
                }),
                correction_id: correction.map(|c| c.id),
                correction_reference: figure.correction_reference.clone(),
                closing_stock: closing_stock(q, &input.series, &config, window.end_ms),
                notes: notes(q, figure, &derived, &input.series),
                derived_at: now,
            }
        })
        .collect()
}

/// Sum of the well's tank stocks at `t` (oil and water only); `None` when a tank's stock
/// is unknown at `t` or the well has no tank.
fn closing_stock(
    quantity: Quantity,
    series: &[Series],
    config: &DerivationConfig,
    t: i64,
) -> Option<f64> {
    let (volume_metric, level_metric) = match quantity {
        Quantity::Oil => ("oil_volume_bbl", "oil_level_in"),
        Quantity::Water => ("water_volume_bbl", "water_level_in"),
        _ => return None,
    };
    let mut tanks: BTreeMap<&str, Vec<Reading>> = BTreeMap::new();
    for s in series.iter().filter(|s| s.metric == volume_metric) {
        tanks.insert(&s.source, s.readings.clone());
    }
    for s in series.iter().filter(|s| s.metric == level_metric) {
        if tanks.contains_key(s.source.as_str()) {
            continue;
        }
        let strap = config.strappings.iter().find(|t| t.source == s.source)?;
        let volumes = s
            .readings
            .iter()
            .filter_map(|r| {
                strap.volume_bbl(r.value).map(|v| Reading {
                    ts_ms: r.ts_ms,
                    value: v,
                })
            })
            .collect();
        tanks.insert(&s.source, volumes);
    }
    if tanks.is_empty() {
        return None;
    }
    tanks
        .values()
        .map(|r| value_at(r, t, config.max_gap_ms))
        .sum()
}

/// Which quantity a canonical metric feeds.
fn quantity_of_metric(metric: &str) -> Option<Quantity> {
    match metric {
        m if m.starts_with("oil_") => Some(Quantity::Oil),
        m if m.starts_with("water_") => Some(Quantity::Water),
        m if m.starts_with("flare_") => Some(Quantity::Flared),
        "vent_gas_mcf" => Some(Quantity::Vented),
        "fuel_gas_mcf" => Some(Quantity::Fuel),
        m if m.starts_with("gas_") => Some(Quantity::Gas),
        _ => None,
    }
}

/// Counter events of the figure and the derivation issues concerning its quantity.
fn notes(
    quantity: Quantity,
    figure: &DailyFigure,
    derived: &DailyProduction,
    series: &[Series],
) -> Vec<String> {
    let shown = figure.derived.as_deref().unwrap_or(figure);
    let mut out: Vec<String> = shown
        .counter_events
        .iter()
        .map(|e| {
            let kind = match e.kind {
                CounterEventKind::Rollover => "rolled over",
                CounterEventKind::Reset => "was reset",
            };
            format!(
                "counter of {} {kind} before {}",
                e.source,
                ms_time(e.ts_ms).to_rfc3339()
            )
        })
        .collect();
    let level_of = |source: &str| {
        series
            .iter()
            .filter(|s| s.source == source && s.metric.ends_with("_level_in"))
            .any(|s| quantity_of_metric(&s.metric) == Some(quantity))
    };
    for issue in &derived.issues {
        let text = match issue {
            DerivationIssue::LevelWithoutStrapping { source } if level_of(source) => {
                format!("tank {source} reports level only and has no strapping table")
            }
            DerivationIssue::LevelOutsideStrapping { source, ts_ms } if level_of(source) => {
                format!(
                    "level of tank {source} at {} is outside its strapping table",
                    ms_time(*ts_ms).to_rfc3339()
                )
            }
            DerivationIssue::UnsortedReadings { metric, source }
                if quantity_of_metric(metric) == Some(quantity) =>
            {
                format!("{metric} readings of {source} were out of order")
            }
            DerivationIssue::NonFiniteReading {
                metric,
                source,
                ts_ms,
            } if quantity_of_metric(metric) == Some(quantity) => format!(
                "non-finite {metric} reading of {source} at {} ignored",
                ms_time(*ts_ms).to_rfc3339()
            ),
            DerivationIssue::DuplicateCorrection { quantity: q } if *q == quantity => {
                "several corrections for the day; the latest was used".to_string()
            }
            _ => continue,
        };
        out.push(text);
    }
    out
}

/// Total of one quantity over the days `[from, to)` from stored figures (of one well or
/// several): values add up; a day is incomplete when any of its figures is missing, has
/// gaps, or was never derived (so an un-derived day can never pass as a zero day).
pub fn period_total(
    rows: &[&DailyRow],
    quantity: Quantity,
    wells: usize,
    from: NaiveDate,
    to: NaiveDate,
) -> PeriodTotal {
    let mut total = 0.0;
    let mut methods = BTreeSet::new();
    let mut complete_figures: BTreeMap<NaiveDate, usize> = BTreeMap::new();
    for r in rows.iter().filter(|r| r.quantity == quantity) {
        if r.day < from || r.day >= to {
            continue;
        }
        total += r.volume.unwrap_or(0.0);
        methods.insert(r.method);
        if r.is_complete() {
            *complete_figures.entry(r.day).or_default() += 1;
        }
    }
    let mut complete_days = 0;
    let mut incomplete_days = Vec::new();
    for day in days(from, to) {
        if complete_figures.get(&day).copied().unwrap_or(0) >= wells {
            complete_days += 1;
        } else {
            incomplete_days.push(day_start_ms(day));
        }
    }
    if complete_days < days(from, to).count() as u32 && methods.is_empty() {
        methods.insert(Method::Missing);
    }
    PeriodTotal {
        total,
        complete_days,
        incomplete_days,
        methods,
    }
}

/// What one periodic run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunReport {
    /// Tenants visited.
    pub tenants: usize,
    /// Well-days derived.
    pub well_days: usize,
    /// Source-days of emissions computed.
    pub emission_days: usize,
    /// Tenants whose run failed (logged; retried next run).
    pub failed_tenants: usize,
}

/// One periodic pass over every tenant at time `now` (see the module docs).
pub async fn run_once(
    db: &Db,
    options: &JobOptions,
    now: DateTime<Utc>,
) -> Result<RunReport, JobError> {
    let mut conn = db.pool().acquire().await.map_err(DbError::from)?;
    let tenants = sql::tenant_ids(&mut conn).await?;
    let mut report = RunReport::default();
    for tenant in tenants {
        report.tenants += 1;
        match run_tenant(&mut conn, tenant, options, now).await {
            Ok((well_days, emission_days)) => {
                report.well_days += well_days;
                report.emission_days += emission_days;
            }
            Err(error) => {
                report.failed_tenants += 1;
                tracing::warn!(%tenant, %error, "production job failed for tenant; retrying next run");
            }
        }
    }
    Ok(report)
}

async fn run_tenant(
    conn: &mut PgConnection,
    tenant: TenantId,
    options: &JobOptions,
    now: DateTime<Utc>,
) -> Result<(usize, usize), JobError> {
    let today = now.date_naive();
    let lookback = TimeDelta::days(i64::from(options.lookback_days.max(1)));
    let settle = TimeDelta::from_std(options.ingest_settle).unwrap_or(TimeDelta::zero());
    let through = now - settle;
    let after = sql::watermark(conn, tenant)
        .await?
        .unwrap_or(now - lookback);
    let mut wanted: BTreeMap<WellId, BTreeSet<NaiveDate>> = BTreeMap::new();
    if through > after {
        let touched = sql::touched_well_days(
            conn,
            tenant,
            after,
            through,
            Duration::from_secs(86_400),
            options.derivation.max_gap,
        )
        .await?;
        for (well, day) in touched.into_iter().filter(|(_, d)| *d <= today) {
            wanted.entry(well).or_default().insert(day);
        }
    }
    let recent_from = today - lookback + TimeDelta::days(1);
    for well in sql::producing_wells(conn, tenant).await? {
        wanted
            .entry(well)
            .or_default()
            .extend(days(recent_from, today + TimeDelta::days(1)));
    }
    let mut well_days = 0;
    let mut all_days = BTreeSet::new();
    for (well, set) in &wanted {
        for (from, to) in runs(set) {
            well_days += derive_well(conn, tenant, *well, from, to, &options.derivation)
                .await?
                .len()
                / Quantity::ALL.len();
        }
        all_days.extend(set.iter().copied());
    }
    all_days.extend(days(recent_from, today + TimeDelta::days(1)));
    let mut emission_days = 0;
    for (from, to) in runs(&all_days) {
        emission_days += derive_emissions(conn, tenant, from, to, &options.derivation)
            .await?
            .len();
    }
    if through > after {
        sql::set_watermark(conn, tenant, through).await?;
    }
    Ok((well_days, emission_days))
}

/// Contiguous runs of days as half-open ranges, each at most [`MAX_RANGE_DAYS`] long.
fn runs(days: &BTreeSet<NaiveDate>) -> Vec<(NaiveDate, NaiveDate)> {
    let mut out: Vec<(NaiveDate, NaiveDate)> = Vec::new();
    for &day in days {
        let next = day + TimeDelta::days(1);
        match out.last_mut() {
            Some((from, to)) if *to == day && (next - *from).num_days() <= MAX_RANGE_DAYS => {
                *to = next;
            }
            _ => out.push((day, next)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn ranges_are_checked() {
        assert!(check_range(day("2024-03-01"), day("2024-03-02")).is_ok());
        assert!(check_range(day("2024-03-02"), day("2024-03-02")).is_err());
        assert!(check_range(day("2024-03-02"), day("2024-03-01")).is_err());
        assert!(check_range(day("2023-01-01"), day("2024-03-01")).is_err());
    }

    #[test]
    fn days_group_into_contiguous_runs() {
        let set: BTreeSet<NaiveDate> = ["2024-03-01", "2024-03-02", "2024-03-04"]
            .iter()
            .map(|d| day(d))
            .collect();
        assert_eq!(
            runs(&set),
            vec![
                (day("2024-03-01"), day("2024-03-03")),
                (day("2024-03-04"), day("2024-03-05"))
            ]
        );
    }

    #[test]
    fn metrics_map_to_their_quantity() {
        for (metric, q) in [
            ("oil_volume_bbl", Quantity::Oil),
            ("water_level_in", Quantity::Water),
            ("gas_volume_yesterday_mcf", Quantity::Gas),
            ("flare_gas_rate_mcfd", Quantity::Flared),
            ("vent_gas_mcf", Quantity::Vented),
            ("fuel_gas_mcf", Quantity::Fuel),
        ] {
            assert_eq!(quantity_of_metric(metric), Some(q), "{metric}");
        }
        assert_eq!(quantity_of_metric("tubing_pressure_psi"), None);
    }
}
