//! SQL of the emissions forecasts and production-gap assessments: their inputs (wells with
//! site and field, hours on), the prediction cache (`ml_forecasts`), the runs that filled
//! it with the hash of their inputs (`ml_forecast_runs`) and the tenant's methane-intensity
//! targets (`methane_targets`).
//!
//! Runs inside the tenant's scoped transaction; forecasts are JSON documents written by the
//! API from `ml` results (the store does not interpret them). Production figures, emission
//! sources and lift rollups are read with `production::tenant_daily_rows`,
//! `emissions::tenant_sources` and `failure_risk::rollups`.

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::Value as Json;
use sqlx::{PgConnection, Row};

use crate::{DbError, SiteId, TenantId, WellId, collect};

/// A well as the models see it.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelWell {
    /// Well.
    pub id: WellId,
    /// Site.
    pub site_id: SiteId,
    /// Field (peers share it).
    pub field: String,
    /// First day with a production figure, if any.
    pub first_day: Option<NaiveDate>,
}

/// Every well of the tenant with its first production day.
pub async fn wells(conn: &mut PgConnection, tenant: TenantId) -> Result<Vec<ModelWell>, DbError> {
    let rows = sqlx::query(
        "SELECT w.id, w.site_id, w.field,
                (SELECT min(p.day) FROM daily_production p
                 WHERE p.well_id = w.id AND p.volume IS NOT NULL) AS first_day
         FROM wells w WHERE w.tenant_id = $1 ORDER BY w.id",
    )
    .bind(tenant)
    .fetch_all(conn)
    .await?;
    collect(&rows, |r| {
        Ok(ModelWell {
            id: r.try_get("id")?,
            site_id: r.try_get("site_id")?,
            field: r.try_get("field")?,
            first_day: r.try_get("first_day")?,
        })
    })
}

/// Hours on of every well-day of the tenant in `[from, to)`.
pub async fn runtime(
    conn: &mut PgConnection,
    tenant: TenantId,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<(WellId, NaiveDate, f64)>, DbError> {
    let rows = sqlx::query(
        "SELECT well_id, day, hours_on FROM daily_runtime
         WHERE tenant_id = $1 AND day >= $2 AND day < $3 AND hours_on IS NOT NULL
         ORDER BY well_id, day",
    )
    .bind(tenant)
    .bind(from)
    .bind(to)
    .fetch_all(conn)
    .await?;
    collect(&rows, |r| {
        Ok((
            r.try_get("well_id")?,
            r.try_get("day")?,
            r.try_get("hours_on")?,
        ))
    })
}

/// What a forecast is of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A well's emissions.
    EmissionsWell,
    /// A site's emissions.
    EmissionsSite,
    /// A well's production gap.
    ProductionGap,
}

impl Kind {
    /// Stored name.
    pub fn name(self) -> &'static str {
        match self {
            Kind::EmissionsWell => "emissions_well",
            Kind::EmissionsSite => "emissions_site",
            Kind::ProductionGap => "production_gap",
        }
    }

    /// The run that fills it.
    pub fn run(self) -> RunKind {
        match self {
            Kind::EmissionsWell | Kind::EmissionsSite => RunKind::Emissions,
            Kind::ProductionGap => RunKind::ProductionGap,
        }
    }
}

/// A refresh run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RunKind {
    /// Well and site emissions forecasts.
    Emissions,
    /// Production-gap assessments.
    ProductionGap,
}

impl RunKind {
    /// Stored name.
    pub fn name(self) -> &'static str {
        match self {
            RunKind::Emissions => "emissions",
            RunKind::ProductionGap => "production_gap",
        }
    }

    fn kinds(self) -> &'static [Kind] {
        match self {
            RunKind::Emissions => &[Kind::EmissionsWell, Kind::EmissionsSite],
            RunKind::ProductionGap => &[Kind::ProductionGap],
        }
    }
}

/// One cached forecast.
#[derive(Debug, Clone, PartialEq)]
pub struct Forecast {
    /// Kind.
    pub kind: Kind,
    /// Well or site id.
    pub subject_id: i64,
    /// Model version that made it.
    pub model_version: String,
    /// First day forecast (or the assessment day).
    pub start_day: NaiveDate,
    /// Ranking value (larger first).
    pub rank_value: f64,
    /// The forecast.
    pub payload: Json,
    /// When computed.
    pub computed_at: DateTime<Utc>,
}

/// The last run of a kind.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    /// SHA-256 of its inputs.
    pub inputs_hash: String,
    /// Model version.
    pub model_version: String,
    /// Subjects forecast.
    pub subjects: i32,
    /// Subjects that could not be forecast, with why.
    pub problems: Json,
    /// Held-out metrics of the run.
    pub metrics: Json,
    /// When.
    pub computed_at: DateTime<Utc>,
}

fn run_row(r: &sqlx::postgres::PgRow) -> Result<(String, Run), sqlx::Error> {
    Ok((
        r.try_get("kind")?,
        Run {
            inputs_hash: r.try_get("inputs_hash")?,
            model_version: r.try_get("model_version")?,
            subjects: r.try_get("subjects")?,
            problems: r.try_get("problems")?,
            metrics: r.try_get("metrics")?,
            computed_at: r.try_get("computed_at")?,
        },
    ))
}

const RUN_COLUMNS: &str =
    "kind, inputs_hash, model_version, subjects, problems, metrics, computed_at";

/// The last run of `kind`, if any.
pub async fn last_run(
    conn: &mut PgConnection,
    tenant: TenantId,
    kind: RunKind,
) -> Result<Option<Run>, DbError> {
    let row = sqlx::query(&format!(
        "SELECT {RUN_COLUMNS} FROM ml_forecast_runs WHERE tenant_id = $1 AND kind = $2"
    ))
    .bind(tenant)
    .bind(kind.name())
    .fetch_optional(conn)
    .await?;
    Ok(row.as_ref().map(run_row).transpose()?.map(|(_, r)| r))
}

/// The last run of every kind, by kind name (`emissions`, `production_gap`).
pub async fn runs(
    conn: &mut PgConnection,
    tenant: TenantId,
) -> Result<Vec<(String, Run)>, DbError> {
    let rows = sqlx::query(&format!(
        "SELECT {RUN_COLUMNS} FROM ml_forecast_runs WHERE tenant_id = $1 ORDER BY kind"
    ))
    .bind(tenant)
    .fetch_all(conn)
    .await?;
    collect(&rows, run_row)
}

/// A run to record.
#[derive(Debug, Clone, Copy)]
pub struct NewRun<'a> {
    /// Kind.
    pub kind: RunKind,
    /// SHA-256 of its inputs.
    pub inputs_hash: &'a str,
    /// Model version.
    pub model_version: &'a str,
    /// Subjects it could not forecast.
    pub problems: &'a Json,
    /// Held-out metrics.
    pub metrics: &'a Json,
}

/// Replaces every cached forecast of the run's kinds with `rows` and records the run.
pub async fn replace(
    conn: &mut PgConnection,
    tenant: TenantId,
    run: &NewRun<'_>,
    rows: &[Forecast],
) -> Result<(), DbError> {
    let kinds: Vec<&str> = run.kind.kinds().iter().map(|k| k.name()).collect();
    sqlx::query("DELETE FROM ml_forecasts WHERE tenant_id = $1 AND kind = ANY($2)")
        .bind(tenant)
        .bind(&kinds)
        .execute(&mut *conn)
        .await?;
    if !rows.is_empty() {
        let kind: Vec<&str> = rows.iter().map(|r| r.kind.name()).collect();
        let subject: Vec<i64> = rows.iter().map(|r| r.subject_id).collect();
        let version: Vec<&str> = rows.iter().map(|r| r.model_version.as_str()).collect();
        let start: Vec<NaiveDate> = rows.iter().map(|r| r.start_day).collect();
        let rank: Vec<f64> = rows.iter().map(|r| r.rank_value).collect();
        let payload: Vec<Json> = rows.iter().map(|r| r.payload.clone()).collect();
        let at: Vec<DateTime<Utc>> = rows.iter().map(|r| r.computed_at).collect();
        sqlx::query(
            "INSERT INTO ml_forecasts (tenant_id, kind, subject_id, model_version, start_day,
                                       rank_value, payload, computed_at)
             SELECT $1, x.kind, x.subject, x.version, x.start, x.rank, x.payload, x.at
             FROM unnest($2::text[], $3::bigint[], $4::text[], $5::date[],
                         $6::float8[], $7::jsonb[], $8::timestamptz[])
                  AS x(kind, subject, version, start, rank, payload, at)",
        )
        .bind(tenant)
        .bind(&kind)
        .bind(&subject)
        .bind(&version)
        .bind(&start)
        .bind(&rank)
        .bind(&payload)
        .bind(&at)
        .execute(&mut *conn)
        .await?;
    }
    let subjects = i32::try_from(rows.len()).unwrap_or(i32::MAX);
    sqlx::query(
        "INSERT INTO ml_forecast_runs (tenant_id, kind, inputs_hash, model_version, subjects,
                                       problems, metrics, computed_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, now())
         ON CONFLICT (tenant_id, kind) DO UPDATE SET
             inputs_hash = excluded.inputs_hash, model_version = excluded.model_version,
             subjects = excluded.subjects, problems = excluded.problems,
             metrics = excluded.metrics, computed_at = excluded.computed_at",
    )
    .bind(tenant)
    .bind(run.kind.name())
    .bind(run.inputs_hash)
    .bind(run.model_version)
    .bind(subjects)
    .bind(run.problems)
    .bind(run.metrics)
    .execute(conn)
    .await?;
    Ok(())
}

fn forecast_row(r: &sqlx::postgres::PgRow) -> Result<Forecast, sqlx::Error> {
    let kind: String = r.try_get("kind")?;
    let kind = match kind.as_str() {
        "emissions_well" => Kind::EmissionsWell,
        "emissions_site" => Kind::EmissionsSite,
        _ => Kind::ProductionGap,
    };
    Ok(Forecast {
        kind,
        subject_id: r.try_get("subject_id")?,
        model_version: r.try_get("model_version")?,
        start_day: r.try_get("start_day")?,
        rank_value: r.try_get("rank_value")?,
        payload: r.try_get("payload")?,
        computed_at: r.try_get("computed_at")?,
    })
}

const FORECAST_COLUMNS: &str =
    "kind, subject_id, model_version, start_day, rank_value, payload, computed_at";

/// Every cached forecast of `kind`, largest ranking value first.
pub async fn ranked(
    conn: &mut PgConnection,
    tenant: TenantId,
    kind: Kind,
) -> Result<Vec<Forecast>, DbError> {
    let rows = sqlx::query(&format!(
        "SELECT {FORECAST_COLUMNS} FROM ml_forecasts
         WHERE tenant_id = $1 AND kind = $2 ORDER BY rank_value DESC, subject_id"
    ))
    .bind(tenant)
    .bind(kind.name())
    .fetch_all(conn)
    .await?;
    collect(&rows, forecast_row)
}

/// The cached forecast of one subject.
pub async fn forecast(
    conn: &mut PgConnection,
    tenant: TenantId,
    kind: Kind,
    subject_id: i64,
) -> Result<Option<Forecast>, DbError> {
    let row = sqlx::query(&format!(
        "SELECT {FORECAST_COLUMNS} FROM ml_forecasts
         WHERE tenant_id = $1 AND kind = $2 AND subject_id = $3"
    ))
    .bind(tenant)
    .bind(kind.name())
    .bind(subject_id)
    .fetch_optional(conn)
    .await?;
    Ok(row.as_ref().map(forecast_row).transpose()?)
}

/// A tenant's methane-intensity targets.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Targets {
    /// kg CH4 per BOE.
    pub kg_ch4_per_boe: Option<f64>,
    /// % of the methane in gas sent to sale.
    pub percent_of_sales_gas: Option<f64>,
    /// % of the methane in gas produced.
    pub percent_of_gas_produced: Option<f64>,
    /// CH4 mole fraction of the tenant's gas (for the % figures).
    pub gas_ch4_fraction: f64,
}

impl Default for Targets {
    fn default() -> Self {
        Targets {
            kg_ch4_per_boe: None,
            percent_of_sales_gas: None,
            percent_of_gas_produced: None,
            gas_ch4_fraction: 0.8,
        }
    }
}

/// The tenant's targets (the defaults when never set).
pub async fn targets(conn: &mut PgConnection, tenant: TenantId) -> Result<Targets, DbError> {
    let row = sqlx::query(
        "SELECT kg_ch4_per_boe, percent_of_sales_gas, percent_of_gas_produced, gas_ch4_fraction
         FROM methane_targets WHERE tenant_id = $1",
    )
    .bind(tenant)
    .fetch_optional(conn)
    .await?;
    let Some(r) = row else {
        return Ok(Targets::default());
    };
    Ok(Targets {
        kg_ch4_per_boe: r.try_get("kg_ch4_per_boe")?,
        percent_of_sales_gas: r.try_get("percent_of_sales_gas")?,
        percent_of_gas_produced: r.try_get("percent_of_gas_produced")?,
        gas_ch4_fraction: r.try_get("gas_ch4_fraction")?,
    })
}

/// Sets the tenant's targets.
pub async fn set_targets(
    conn: &mut PgConnection,
    tenant: TenantId,
    t: &Targets,
) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO methane_targets (tenant_id, kg_ch4_per_boe, percent_of_sales_gas,
                                      percent_of_gas_produced, gas_ch4_fraction, updated_at)
         VALUES ($1, $2, $3, $4, $5, now())
         ON CONFLICT (tenant_id) DO UPDATE SET
             kg_ch4_per_boe = excluded.kg_ch4_per_boe,
             percent_of_sales_gas = excluded.percent_of_sales_gas,
             percent_of_gas_produced = excluded.percent_of_gas_produced,
             gas_ch4_fraction = excluded.gas_ch4_fraction, updated_at = now()",
    )
    .bind(tenant)
    .bind(t.kg_ch4_per_boe)
    .bind(t.percent_of_sales_gas)
    .bind(t.percent_of_gas_produced)
    .bind(t.gas_ch4_fraction)
    .execute(conn)
    .await?;
    Ok(())
}
