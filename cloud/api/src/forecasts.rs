//! Emissions forecasts and production gaps per tenant, served from a cache:
//! `GET …/emissions-forecast` (wells or sites ranked by forecast CO2e),
//! `GET …/wells/{well}/emissions-forecast` and `GET …/sites/{site}/emissions-forecast`
//! (daily series for 90 days, 30- and 90-day totals, methane intensity against the
//! tenant's targets and the thresholds that apply), `GET …/production-gaps` (wells ranked
//! by the dollars of their opportunities) and `GET …/wells/{well}/production-gap`,
//! `GET|PUT …/methane-targets`, and `POST …/forecasts/refresh` (recompute now).
//!
//! Reads never compute: forecasts are made by [`refresh_forecasts`] (the server's hourly
//! `ml_forecasts` job, and the refresh route) from the tenant's daily production, hours on,
//! emission sources, lift rollups and targets. The SHA-256 of those inputs (with the
//! forecast's first day) is kept with the run; a refresh whose inputs hash the same changes
//! nothing, so forecasts are recomputed when new data arrives (or a day passes), never per
//! request. Every forecast is stamped with its model version: the method
//! (`ml::emissions::MODEL_VERSION`, `ml::optimization::MODEL_VERSION`), then `@<version>`
//! of the tenant's active registered model of the kind when it has one (the registries and
//! their routes are [`models`]); the stamp is part of the inputs hash, so a promotion or a
//! rollback recomputes once. CO2e is computed at read time under the `gwp`
//! parameter (the cache holds masses per gas), dollars at the `price_per_bbl` parameter.
//!
//! Inputs per well: figures of the last [`HISTORY_DAYS`]; emission sources of the well
//! (flare and vent parameters from its first flare / vent source, fuel from its first
//! combustion source, component and pneumatic counts summed over its sources; a well
//! without a source is not forecast, as its measured days have no emissions either);
//! sources of a site not tied to a well are forecast as the site's own part (no
//! production). Factor tables apply by reporting year: a source whose default factors end
//! before a forecast year (e.g. Table W-1A component counts, RY ≤ 2024) is reported in the
//! run's problems, not forecast with factors that do not apply. Hours on
//! come from `daily_runtime` (a day without is counted as 24 h); lift type from the
//! well's rollup metrics (`ml::maintenance::lift_from_metrics`).

use std::collections::{BTreeMap, HashMap};

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use analytics::emissions::gwp::{GwpSet, co2e};
use analytics::emissions::methods::{CombustionUnit, FlareEfficiency};
use analytics::emissions::{GasComposition, GasMasses, SourceKind};
use analytics::production::Quantity;
use ml::emissions::{
    self as emis, Band, EmissionsForecast, EmissionsModel, ForecastRequest, IntensityBasis,
    IntensityOptions, IntensityTargets, ProductionDay, SourceSetup,
};
use ml::optimization::{self as opt, Assessment, GapModel, WellDay, WellInput};
use store::emissions::EmissionSource;
use store::failure_risk::ModelKind;
use store::ml_forecasts::{self as sql, Forecast, Kind, RunKind, Targets};
use store::{SiteId, TenantId, WellId};

use crate::access::Caller;
use crate::emissions::{GwpDto, parse_gwp};
use crate::extract::{JsonBody, SiteParam, parse_limit, require_well, shown};
use crate::{ApiError, ApiQuery, ApiState, ErrorResponse, TenantScope, WellParam};

mod models;
pub(crate) use models::run_job;

pub(crate) fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(fleet_emissions))
        .routes(routes!(well_emissions))
        .routes(routes!(site_emissions))
        .routes(routes!(fleet_gaps))
        .routes(routes!(well_gap))
        .routes(routes!(get_targets, put_targets))
        .routes(routes!(refresh))
        .routes(routes!(list_runs))
        .merge(models::routes())
}

/// Days of production history read.
pub const HISTORY_DAYS: u64 = 455;
/// Days forecast.
const HORIZON: u32 = 90;
/// Default oil price of the dollar figures, $/bbl.
const DEFAULT_PRICE: f64 = 70.0;

/// A value with its interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BandDto {
    /// Low end (P90 of the inputs).
    pub low: f64,
    /// Median.
    pub p50: f64,
    /// High end (P10 of the inputs).
    pub high: f64,
}

impl From<Band> for BandDto {
    fn from(b: Band) -> Self {
        BandDto {
            low: b.low,
            p50: b.p50,
            high: b.high,
        }
    }
}

/// Masses per gas with their intervals, kg; `co2e_kg` under the request's GWP set.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ForecastMassesDto {
    /// CH4.
    pub ch4_kg: BandDto,
    /// CO2.
    pub co2_kg: BandDto,
    /// N2O.
    pub n2o_kg: BandDto,
    /// CO2e under the GWP set of the response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub co2e_kg: Option<BandDto>,
}

impl ForecastMassesDto {
    fn with_co2e(mut self, gwp: GwpSet) -> Self {
        let at = |f: fn(&BandDto) -> f64| {
            co2e(
                &GasMasses {
                    co2_kg: f(&self.co2_kg),
                    ch4_kg: f(&self.ch4_kg),
                    n2o_kg: f(&self.n2o_kg),
                },
                gwp,
            )
            .kg
        };
        self.co2e_kg = Some(BandDto {
            low: at(|b| b.low),
            p50: at(|b| b.p50),
            high: at(|b| b.high),
        });
        self
    }
}

/// Activity with intervals.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ActivityDto {
    /// Oil, bbl.
    pub oil_bbl: BandDto,
    /// Gas produced, Mcf.
    pub gas_mcf: BandDto,
    /// Gas flared, Mcf.
    pub flared_mcf: BandDto,
    /// Gas vented, Mcf.
    pub vented_mcf: BandDto,
    /// Fuel gas, Mcf.
    pub fuel_mcf: BandDto,
}

impl From<emis::ActivityDay> for ActivityDto {
    fn from(a: emis::ActivityDay) -> Self {
        ActivityDto {
            oil_bbl: a.oil_bbl.into(),
            gas_mcf: a.gas_mcf.into(),
            flared_mcf: a.flared_mcf.into(),
            vented_mcf: a.vented_mcf.into(),
            fuel_mcf: a.fuel_mcf.into(),
        }
    }
}

fn masses_dto(m: emis::MassBands) -> ForecastMassesDto {
    ForecastMassesDto {
        ch4_kg: m.ch4_kg.into(),
        co2_kg: m.co2_kg.into(),
        n2o_kg: m.n2o_kg.into(),
        co2e_kg: None,
    }
}

/// One forecast day.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EmissionsDayDto {
    /// UTC day.
    pub day: NaiveDate,
    /// Emissions.
    pub masses: ForecastMassesDto,
    /// Activity.
    pub activity: ActivityDto,
}

/// A forecast intensity against a target or threshold.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ComparisonDto {
    /// `tenant target` or the threshold's name.
    pub name: String,
    /// `kg_ch4_per_boe`, `percent_of_sales_gas` or `percent_of_gas_produced`.
    pub basis: String,
    /// The limit.
    pub limit: f64,
    /// Forecast value (P50).
    pub value: f64,
    /// The interval's high end.
    pub value_high: f64,
    /// P50 above the limit.
    pub exceeded: bool,
    /// Only the high end above the limit.
    pub at_risk: bool,
    /// Citation (empty for a tenant target).
    pub source: String,
}

/// Methane intensity of a horizon.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ForecastIntensityDto {
    /// kg CH4 per BOE (absent: no production).
    pub kg_ch4_per_boe: Option<BandDto>,
    /// CH4 emitted as % of the CH4 in gas sent to sale (absent: nothing sold).
    pub percent_of_sales_gas: Option<BandDto>,
    /// CH4 emitted as % of the CH4 in gas produced (absent: no gas).
    pub percent_of_gas_produced: Option<BandDto>,
    /// Against the tenant's targets and the thresholds that apply.
    pub comparisons: Vec<ComparisonDto>,
}

/// Totals of a horizon.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HorizonDto {
    /// Days (30 or 90).
    pub days: u32,
    /// Emissions.
    pub masses: ForecastMassesDto,
    /// Activity.
    pub activity: ActivityDto,
    /// Methane intensity (absent when the intensity could not be computed).
    pub intensity: Option<ForecastIntensityDto>,
}

/// An emissions forecast of a well or a site.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EmissionsForecastDto {
    /// `well` or `site`.
    pub subject: String,
    /// Well or site id.
    pub id: i64,
    /// First day forecast.
    pub start_day: NaiveDate,
    /// How gas was forecast (an Arps model's name, `flat_last_30_days`, `no_production`).
    pub gas_method: String,
    /// How oil was forecast.
    pub oil_method: String,
    /// 30- and 90-day totals.
    pub horizons: Vec<HorizonDto>,
    /// Daily series (only in a single well's or site's forecast).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub days: Vec<EmissionsDayDto>,
    /// Model version that made it.
    #[serde(default)]
    pub model_version: String,
    /// When it was computed.
    #[serde(default = "epoch")]
    pub computed_at: DateTime<Utc>,
    /// GWPs of the CO2e figures.
    #[serde(default, skip_serializing_if = "Option::is_none", skip_deserializing)]
    pub gwp: Option<GwpDto>,
}

fn epoch() -> DateTime<Utc> {
    DateTime::<Utc>::UNIX_EPOCH
}

fn basis_name(b: IntensityBasis) -> &'static str {
    match b {
        IntensityBasis::KgCh4PerBoe => "kg_ch4_per_boe",
        IntensityBasis::PercentOfSalesGas => "percent_of_sales_gas",
        IntensityBasis::PercentOfGasProduced => "percent_of_gas_produced",
    }
}

fn forecast_dto(
    subject: &str,
    id: i64,
    f: &EmissionsForecast,
    targets: &Targets,
    subpart_w: bool,
) -> EmissionsForecastDto {
    let horizons = emis::HORIZONS
        .iter()
        .map(|&days| {
            let (a, m) = f.total(days as usize);
            let intensity = emis::intensity(
                f,
                days as usize,
                &IntensityOptions {
                    mcf_per_boe: 6.0,
                    gas_ch4_fraction: targets.gas_ch4_fraction,
                    subpart_w_facility: subpart_w,
                },
                &IntensityTargets {
                    kg_ch4_per_boe: targets.kg_ch4_per_boe,
                    percent_of_sales_gas: targets.percent_of_sales_gas,
                    percent_of_gas_produced: targets.percent_of_gas_produced,
                },
            )
            .ok()
            .map(|i| ForecastIntensityDto {
                kg_ch4_per_boe: i.kg_ch4_per_boe.map(Into::into),
                percent_of_sales_gas: i.percent_of_sales_gas.map(Into::into),
                percent_of_gas_produced: i.percent_of_gas_produced.map(Into::into),
                comparisons: i
                    .comparisons
                    .iter()
                    .map(|c| ComparisonDto {
                        name: c.name.to_owned(),
                        basis: basis_name(c.basis).to_owned(),
                        limit: c.limit,
                        value: c.value,
                        value_high: c.value_high,
                        exceeded: c.exceeded,
                        at_risk: c.at_risk,
                        source: c.source.to_owned(),
                    })
                    .collect(),
            });
            HorizonDto {
                days,
                masses: masses_dto(m),
                activity: a.into(),
                intensity,
            }
        })
        .collect();
    EmissionsForecastDto {
        subject: subject.to_owned(),
        id,
        start_day: f.days.first().map_or(NaiveDate::MIN, |d| d.day),
        gas_method: f.gas_method.name().to_owned(),
        oil_method: f.oil_method.name().to_owned(),
        horizons,
        days: f
            .days
            .iter()
            .map(|d| EmissionsDayDto {
                day: d.day,
                masses: masses_dto(d.masses),
                activity: d.activity.into(),
            })
            .collect(),
        model_version: String::new(),
        computed_at: epoch(),
        gwp: None,
    }
}

/// An opportunity of a well.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OpportunityDto {
    /// `downtime`, `pump_off_control_too_aggressive`, `plunger_cycle_short`, `choke`,
    /// `unexplained`.
    pub cause: String,
    /// Evidence in words.
    pub evidence: String,
    /// Estimated uplift, bbl/d.
    pub uplift_bbl_per_day: f64,
    /// At the request's price, $/d.
    #[serde(default)]
    pub uplift_dollars_per_day: f64,
}

/// A well's production gap.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ProductionGapDto {
    /// Well.
    pub well_id: i64,
    /// Assessment day (the recent window is the 14 days before it).
    pub as_of: NaiveDate,
    /// Actual oil, calendar-day mean of the recent window, bbl/d.
    pub actual_bbl_per_day: f64,
    /// Expected potential at full runtime, bbl/d, with its 90 % interval.
    pub expected_bbl_per_day: BandDto,
    /// Actual − expected, bbl/d, with its 90 % interval.
    pub gap_bbl_per_day: BandDto,
    /// `underperforming`, `on_target`, `over` or `unknown`.
    pub category: String,
    /// Opportunities, largest first.
    pub opportunities: Vec<OpportunityDto>,
    /// Sum of the opportunities at the request's price, $/d.
    #[serde(default)]
    pub uplift_dollars_per_day: f64,
    /// The well's own decline estimate, bbl/d.
    pub own_decline_bbl_per_day: Option<f64>,
    /// The peers' estimate, bbl/d.
    pub peers_bbl_per_day: Option<f64>,
    /// Peers used.
    pub peers: Option<u32>,
    /// Model version that made it.
    #[serde(default)]
    pub model_version: String,
    /// When it was computed.
    #[serde(default = "epoch")]
    pub computed_at: DateTime<Utc>,
}

fn gap_dto(well: WellId, as_of: NaiveDate, a: &Assessment) -> ProductionGapDto {
    let band = |i: opt::Interval| BandDto {
        low: i.low,
        p50: i.p50,
        high: i.high,
    };
    ProductionGapDto {
        well_id: well.0,
        as_of,
        actual_bbl_per_day: a.actual_bbl_per_day,
        expected_bbl_per_day: band(a.expected_bbl_per_day),
        gap_bbl_per_day: band(a.gap_bbl_per_day),
        category: a.category.name().to_owned(),
        opportunities: a
            .opportunities
            .iter()
            .map(|o| OpportunityDto {
                cause: o.cause.name().to_owned(),
                evidence: o.evidence.clone(),
                uplift_bbl_per_day: o.uplift_bbl_per_day,
                uplift_dollars_per_day: 0.0,
            })
            .collect(),
        uplift_dollars_per_day: 0.0,
        own_decline_bbl_per_day: a.estimates.own.map(|o| o.0),
        peers_bbl_per_day: a.estimates.peers.map(|p| p.0),
        peers: a
            .estimates
            .peers
            .map(|p| u32::try_from(p.2).unwrap_or(u32::MAX)),
        model_version: String::new(),
        computed_at: epoch(),
    }
}

// ---------------------------------------------------------------------------------------
// Computing the cache.

/// What a refresh did for a tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub struct RefreshOutcome {
    /// Emissions forecasts recomputed (false: inputs unchanged since the last run).
    pub emissions_recomputed: bool,
    /// Wells and sites forecast.
    pub emissions_subjects: usize,
    /// Production gaps recomputed (false: inputs unchanged).
    pub gaps_recomputed: bool,
    /// Wells assessed.
    pub gap_wells: usize,
}

struct Inputs {
    wells: Vec<sql::ModelWell>,
    days: HashMap<WellId, Vec<ProductionDay>>,
    sources: Vec<EmissionSource>,
    runtime: HashMap<(WellId, NaiveDate), f64>,
    rollups: Vec<store::failure_risk::WellRollup>,
    targets: Targets,
}

const DIAGNOSTIC_METRICS: [&str; 3] = [
    "pump_fillage_pct",
    "plunger_arrivals_total",
    "tubing_pressure_psi",
];

async fn read_inputs(
    db: &store::Db,
    tenant: TenantId,
    start: NaiveDate,
) -> Result<Inputs, ApiError> {
    let from = start - chrono::Days::new(HISTORY_DAYS);
    let mut tx = db.begin_tenant(tenant).await?;
    let wells = sql::wells(&mut tx, tenant).await?;
    let rows = store::production::tenant_daily_rows(&mut tx, tenant, from, start).await?;
    let sources = store::emissions::tenant_sources(&mut tx, tenant).await?;
    let runtime = sql::runtime(&mut tx, tenant, from, start).await?;
    let mut metrics: Vec<&str> = ml::maintenance::ROLLUP_METRICS.to_vec();
    metrics.extend(DIAGNOSTIC_METRICS);
    metrics.sort_unstable();
    metrics.dedup();
    let rollups = store::failure_risk::rollups(&mut tx, tenant, &metrics, from, start).await?;
    let targets = sql::targets(&mut tx, tenant).await?;
    tx.commit().await?;
    let mut by_day: BTreeMap<(WellId, NaiveDate), ProductionDay> = BTreeMap::new();
    for r in rows {
        let d = by_day.entry((r.well_id, r.day)).or_insert(ProductionDay {
            day: r.day,
            ..ProductionDay::default()
        });
        let v = r.volume.filter(|v| v.is_finite() && *v >= 0.0);
        match r.quantity {
            Quantity::Oil => d.oil_bbl = v,
            Quantity::Gas => d.gas_mcf = v,
            Quantity::Flared => d.flared_mcf = v,
            Quantity::Vented => d.vented_mcf = v,
            Quantity::Fuel => d.fuel_mcf = v,
            Quantity::Water => {}
        }
    }
    let mut days: HashMap<WellId, Vec<ProductionDay>> = HashMap::new();
    for ((well, _), d) in by_day {
        days.entry(well).or_default().push(d);
    }
    Ok(Inputs {
        wells,
        days,
        sources,
        runtime: runtime.into_iter().map(|(w, d, h)| ((w, d), h)).collect(),
        rollups,
        targets,
    })
}

fn hash_emissions(inputs: &Inputs, start: NaiveDate, stamp: &str) -> String {
    let mut h = Sha256::new();
    h.update(stamp.as_bytes());
    h.update(start.to_string().as_bytes());
    for w in &inputs.wells {
        h.update(format!("w{} {} {:?}", w.id.0, w.site_id.0, w.first_day).as_bytes());
        for d in inputs.days.get(&w.id).into_iter().flatten() {
            h.update(format!("{d:?}").as_bytes());
        }
    }
    for s in &inputs.sources {
        h.update(format!("{s:?}").as_bytes());
    }
    h.update(format!("{:?}", inputs.targets).as_bytes());
    hex::encode(h.finalize())
}

fn hash_gaps(inputs: &Inputs, start: NaiveDate, stamp: &str) -> String {
    let mut h = Sha256::new();
    h.update(stamp.as_bytes());
    h.update(start.to_string().as_bytes());
    for w in &inputs.wells {
        h.update(format!("w{} {} {:?}", w.id.0, w.field, w.first_day).as_bytes());
        for d in inputs.days.get(&w.id).into_iter().flatten() {
            h.update(format!("{:?} {:?}", d.day, d.oil_bbl).as_bytes());
        }
    }
    let mut runtime: Vec<_> = inputs.runtime.iter().collect();
    runtime.sort_by_key(|(k, _)| **k);
    for (k, v) in runtime {
        h.update(format!("{k:?}{v}").as_bytes());
    }
    for r in &inputs.rollups {
        h.update(format!("{r:?}").as_bytes());
    }
    hex::encode(h.finalize())
}

/// A well's (or a site's own) sources as one setup; `None` without any source.
fn setup(sources: &[&EmissionSource]) -> Option<SourceSetup> {
    let first = sources.first()?;
    let of = |k: SourceKind| sources.iter().find(|s| s.kind == k);
    let flare = of(SourceKind::Flare);
    let fuel = of(SourceKind::Combustion);
    let gas: GasComposition = flare.or(of(SourceKind::Vent)).unwrap_or(first).gas;
    Some(SourceSetup {
        gas,
        flare_efficiency: match flare.map(|f| (f.flare_unlit, f.flare_efficiency)) {
            Some((true, _)) => FlareEfficiency::Unlit,
            Some((false, Some(eta))) => FlareEfficiency::Measured(eta),
            _ => FlareEfficiency::Default,
        },
        hhv_mmbtu_per_scf: flare.or(fuel).and_then(|s| s.hhv_mmbtu_per_scf),
        fuel_unit: fuel
            .and_then(|f| f.combustion_unit)
            .unwrap_or(CombustionUnit::Heater),
        fuel_ch4_kg_per_mmbtu: fuel.and_then(|f| f.ch4_kg_per_mmbtu),
        subpart_w_facility: sources.iter().any(|s| s.subpart_w_facility),
        region: first.region,
        components: sources
            .iter()
            .flat_map(|s| s.components.iter().copied())
            .collect(),
        pneumatics: sources
            .iter()
            .flat_map(|s| s.pneumatics.iter().copied())
            .collect(),
    })
}

/// Forecasts, the subjects that could not be forecast, and the run's metrics.
type Computed = (Vec<Forecast>, Vec<serde_json::Value>, serde_json::Value);

/// Days of the backtest that measures a run on the tenant's own data.
const BACKTEST_DAYS: u64 = 30;

/// The run's held-out measure: each well forecast from 30 days ago with the data before
/// then, against the emissions of its measured last 30 days (the same methods), with "last
/// month repeats" from the same cut as the baseline. Wells whose last 30 days are not all
/// measured are left out.
fn backtest(
    inputs: &Inputs,
    setups: &[(WellId, SourceSetup)],
    start: NaiveDate,
    emissions_model: &EmissionsModel,
) -> serde_json::Value {
    let cut = start - chrono::Days::new(BACKTEST_DAYS);
    let request = ForecastRequest {
        start: cut,
        horizon_days: BACKTEST_DAYS as u32,
        gwp: GwpSet::Ar5,
        seed: 0,
    };
    let (mut model, mut baseline) = (Vec::new(), Vec::new());
    for (well, setup) in setups {
        let Some(days) = inputs.days.get(well) else {
            continue;
        };
        let held: Vec<&ProductionDay> = days.iter().filter(|d| d.day >= cut).collect();
        if held.len() < BACKTEST_DAYS as usize {
            continue;
        }
        let actual: Option<f64> = held
            .iter()
            .map(|d| {
                emis::day_masses(
                    d.day,
                    d.flared_mcf?,
                    d.vented_mcf.unwrap_or(0.0),
                    d.fuel_mcf.unwrap_or(0.0),
                    setup,
                )
                .ok()
                .map(|m| co2e(&m, GwpSet::Ar5).kg)
            })
            .sum();
        let Some(actual) = actual.filter(|a| *a > 0.0) else {
            continue;
        };
        let before: Vec<ProductionDay> = days.iter().filter(|d| d.day < cut).copied().collect();
        let Ok(f) = emis::forecast_well_with(&before, setup, &request, emissions_model) else {
            continue;
        };
        let (_, m) = f.total(BACKTEST_DAYS as usize);
        let Ok(b) = emis::last_month_baseline(&before, setup, cut, GwpSet::Ar5) else {
            continue;
        };
        model.push((m.co2e_kg.p50 - actual).abs() / actual);
        baseline.push((b * BACKTEST_DAYS as f64 - actual).abs() / actual);
    }
    let mean = |v: &[f64]| 100.0 * v.iter().sum::<f64>() / v.len() as f64;
    if model.is_empty() {
        return serde_json::json!({ "backtest_days": BACKTEST_DAYS, "wells": 0 });
    }
    serde_json::json!({
        "backtest_days": BACKTEST_DAYS,
        "wells": model.len(),
        "mape_30d_percent": mean(&model),
        "baseline_last_month_mape_30d_percent": mean(&baseline),
    })
}

/// A model of a refresh: the tenant's active registered one of its kind (stamped
/// `<method>@<version>`), else the untrained defaults (stamped with the method alone).
#[derive(Debug, Clone)]
struct Active<M> {
    model: M,
    stamp: String,
}

impl<M: serde::de::DeserializeOwned + Default> Active<M> {
    async fn read(
        db: &store::Db,
        tenant: TenantId,
        kind: ModelKind,
        method: &str,
    ) -> Result<Active<M>, ApiError> {
        Ok(
            match crate::training::active_model(db, tenant, kind).await? {
                Some((version, model)) => Active {
                    model,
                    stamp: format!("{method}@{version}"),
                },
                None => Active {
                    model: M::default(),
                    stamp: method.to_owned(),
                },
            },
        )
    }
}

fn compute_emissions(
    inputs: &Inputs,
    start: NaiveDate,
    now: DateTime<Utc>,
    active: &Active<EmissionsModel>,
) -> Computed {
    let request = ForecastRequest {
        start,
        horizon_days: HORIZON,
        gwp: GwpSet::Ar5,
        seed: 0,
    };
    let mut rows = Vec::new();
    let mut problems = Vec::new();
    let mut by_site: BTreeMap<SiteId, (Vec<EmissionsForecast>, bool)> = BTreeMap::new();
    let mut setups: Vec<(WellId, SourceSetup)> = Vec::new();
    let row = |kind, id: i64, f: &EmissionsForecast, subpart_w: bool| {
        let dto = forecast_dto(
            if kind == Kind::EmissionsWell {
                "well"
            } else {
                "site"
            },
            id,
            f,
            &inputs.targets,
            subpart_w,
        );
        let (_, m) = f.total(30);
        Forecast {
            kind,
            subject_id: id,
            model_version: active.stamp.clone(),
            start_day: start,
            rank_value: co2e(
                &GasMasses {
                    co2_kg: m.co2_kg.p50,
                    ch4_kg: m.ch4_kg.p50,
                    n2o_kg: m.n2o_kg.p50,
                },
                GwpSet::Ar5,
            )
            .kg,
            payload: serde_json::to_value(&dto).unwrap_or_default(),
            computed_at: now,
        }
    };
    for w in &inputs.wells {
        let own: Vec<&EmissionSource> = inputs
            .sources
            .iter()
            .filter(|s| s.well_id == Some(w.id))
            .collect();
        let history = inputs.days.get(&w.id).map_or(&[][..], Vec::as_slice);
        // Emissions follow from a well's registered sources (as for measured days): a well
        // without any has no inventory to forecast.
        let Some(s) = setup(&own) else {
            if !history.is_empty() {
                problems.push(serde_json::json!({
                    "well_id": w.id.0, "reason": "no emission source registered for the well",
                }));
            }
            continue;
        };
        let forecast = emis::forecast_well_with(history, &s, &request, &active.model);
        setups.push((w.id, s.clone()));
        match forecast {
            Ok(f) => {
                rows.push(row(Kind::EmissionsWell, w.id.0, &f, s.subpart_w_facility));
                let site = by_site.entry(w.site_id).or_default();
                site.1 |= s.subpart_w_facility;
                site.0.push(f);
            }
            Err(e) => problems.push(serde_json::json!({
                "well_id": w.id.0, "reason": e.to_string(),
            })),
        }
    }
    // Sources of a site not tied to a well.
    let mut site_sources: BTreeMap<SiteId, Vec<&EmissionSource>> = BTreeMap::new();
    for s in inputs.sources.iter().filter(|s| s.well_id.is_none()) {
        site_sources.entry(s.site_id).or_default().push(s);
    }
    for (site, sources) in site_sources {
        let Some(s) = setup(&sources) else { continue };
        match emis::forecast_well_with(&[], &s, &request, &active.model) {
            Ok(f) => {
                let entry = by_site.entry(site).or_default();
                entry.1 |= s.subpart_w_facility;
                entry.0.push(f);
            }
            Err(e) => problems.push(serde_json::json!({
                "site_id": site.0, "reason": e.to_string(),
            })),
        }
    }
    for (site, (forecasts, subpart_w)) in by_site {
        if let Ok(f) = emis::aggregate(&forecasts) {
            rows.push(row(Kind::EmissionsSite, site.0, &f, subpart_w));
        }
    }
    let metrics = backtest(inputs, &setups, start, &active.model);
    (rows, problems, metrics)
}

/// A well-day's fillage (%), plunger cycles and tubing pressure (psi) from its rollups.
type Diagnostics = (Option<f64>, Option<f64>, Option<f64>);

/// The gap model's wells: every well with production history and a first day, with its
/// daily hours on and diagnostics from its rollups, its lift type from its metrics.
fn gap_wells(inputs: &Inputs, start: NaiveDate) -> Vec<WellInput> {
    let mut diag: HashMap<(WellId, NaiveDate), Diagnostics> = HashMap::new();
    let mut metrics: HashMap<WellId, Vec<&str>> = HashMap::new();
    for r in &inputs.rollups {
        metrics.entry(r.well).or_default().push(&r.metric);
        let d = diag.entry((r.well, r.day)).or_default();
        match r.metric.as_str() {
            "pump_fillage_pct" => d.0 = Some(r.avg),
            // A counter: the day's arrivals are its rise over the day.
            "plunger_arrivals_total" => d.1 = Some((r.max - r.min).max(0.0)),
            "tubing_pressure_psi" => d.2 = Some(r.avg),
            _ => {}
        }
    }
    inputs
        .wells
        .iter()
        .filter_map(|w| {
            let history = inputs.days.get(&w.id)?;
            let first = w.first_day?;
            Some(WellInput {
                well: w.id.0.to_string(),
                field: w.field.clone(),
                lift: metrics
                    .get(&w.id)
                    .and_then(|m| ml::maintenance::lift_from_metrics(m.iter().copied())),
                age_days: (start - first).num_days() as f64,
                days: history
                    .iter()
                    .map(|d| {
                        let (fillage, cycles, psi) =
                            diag.get(&(w.id, d.day)).copied().unwrap_or_default();
                        WellDay {
                            day: d.day,
                            oil_bbl: d.oil_bbl,
                            hours_on: Some(
                                inputs.runtime.get(&(w.id, d.day)).copied().unwrap_or(24.0),
                            ),
                            fillage_pct: fillage,
                            plunger_cycles: cycles,
                            tubing_pressure_psi: psi,
                        }
                    })
                    .collect(),
            })
        })
        .collect()
}

fn compute_gaps(
    inputs: &Inputs,
    start: NaiveDate,
    now: DateTime<Utc>,
    active: &Active<GapModel>,
) -> Computed {
    let wells = gap_wells(inputs, start);
    let options = opt::Options::new(start, DEFAULT_PRICE);
    let Ok(assessed) = opt::assess_with(&wells, &options, &active.model) else {
        return (Vec::new(), Vec::new(), serde_json::json!({}));
    };
    let mut categories: BTreeMap<&str, usize> = BTreeMap::new();
    for a in &assessed {
        *categories.entry(a.category.name()).or_default() += 1;
    }
    let metrics = serde_json::json!({ "categories": categories });
    let rows = assessed
        .iter()
        .filter_map(|a| {
            let well = WellId(a.well.parse().ok()?);
            let dto = gap_dto(well, start, a);
            Some(Forecast {
                kind: Kind::ProductionGap,
                subject_id: well.0,
                model_version: active.stamp.clone(),
                start_day: start,
                rank_value: a.opportunities.iter().map(|o| o.uplift_bbl_per_day).sum(),
                payload: serde_json::to_value(&dto).unwrap_or_default(),
                computed_at: now,
            })
        })
        .collect();
    (rows, Vec::new(), metrics)
}

/// Recomputes one tenant's forecasts whose inputs changed since their last run.
pub async fn refresh_tenant(
    db: &store::Db,
    tenant: TenantId,
    now: DateTime<Utc>,
) -> Result<RefreshOutcome, ApiError> {
    let start = now.date_naive();
    let inputs = read_inputs(db, tenant, start).await?;
    let active: Active<EmissionsModel> =
        Active::read(db, tenant, ModelKind::Emissions, emis::MODEL_VERSION).await?;
    let gaps: Active<GapModel> =
        Active::read(db, tenant, ModelKind::ProductionGap, opt::MODEL_VERSION).await?;
    let eh = hash_emissions(&inputs, start, &active.stamp);
    let gh = hash_gaps(&inputs, start, &gaps.stamp);
    let mut tx = db.begin_tenant(tenant).await?;
    let last_e = sql::last_run(&mut tx, tenant, RunKind::Emissions).await?;
    let last_g = sql::last_run(&mut tx, tenant, RunKind::ProductionGap).await?;
    tx.commit().await?;
    let do_e = last_e.is_none_or(|r| r.inputs_hash != eh);
    let do_g = last_g.is_none_or(|r| r.inputs_hash != gh);
    let (stamp, gap_stamp) = (active.stamp.clone(), gaps.stamp.clone());
    let (e, g) = tokio::task::spawn_blocking(move || {
        let e = do_e.then(|| compute_emissions(&inputs, start, now, &active));
        let g = do_g.then(|| compute_gaps(&inputs, start, now, &gaps));
        (e, g)
    })
    .await
    .map_err(|e| ApiError::Internal(e.into()))?;
    let mut outcome = RefreshOutcome {
        emissions_recomputed: do_e,
        emissions_subjects: 0,
        gaps_recomputed: do_g,
        gap_wells: 0,
    };
    let mut tx = db.begin_tenant(tenant).await?;
    if let Some((rows, problems, metrics)) = e {
        outcome.emissions_subjects = rows.len();
        let problems = serde_json::Value::Array(problems);
        let run = sql::NewRun {
            kind: RunKind::Emissions,
            inputs_hash: &eh,
            model_version: &stamp,
            problems: &problems,
            metrics: &metrics,
        };
        sql::replace(&mut tx, tenant, &run, &rows).await?;
    }
    if let Some((rows, problems, metrics)) = g {
        outcome.gap_wells = rows.len();
        let problems = serde_json::Value::Array(problems);
        let run = sql::NewRun {
            kind: RunKind::ProductionGap,
            inputs_hash: &gh,
            model_version: &gap_stamp,
            problems: &problems,
            metrics: &metrics,
        };
        sql::replace(&mut tx, tenant, &run, &rows).await?;
    }
    tx.commit().await?;
    Ok(outcome)
}

/// Recomputes every tenant's forecasts whose inputs changed: the server's `ml_forecasts`
/// job. A tenant that fails is logged and the others go on.
pub async fn refresh_forecasts(
    db: &store::Db,
    now: DateTime<Utc>,
) -> Result<Vec<(TenantId, RefreshOutcome)>, ApiError> {
    let mut conn = db.pool().acquire().await.map_err(store::DbError::from)?;
    let tenants = store::production::tenant_ids(&mut conn).await?;
    drop(conn);
    let mut out = Vec::new();
    for tenant in tenants {
        match refresh_tenant(db, tenant, now).await {
            Ok(o) => out.push((tenant, o)),
            Err(e) => tracing::warn!(tenant = tenant.0, error = %e, "forecast refresh failed"),
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// Routes.

/// Query of the fleet's emissions forecasts.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct FleetEmissionsQuery {
    /// `well` (default) or `site`.
    #[param(value_type = Option<String>, example = "well")]
    pub by: Option<String>,
    /// Horizon ranked by: 30 (default) or 90 days.
    #[param(value_type = Option<u32>, example = 30)]
    pub horizon: Option<String>,
    /// GWP set of the CO2e figures: AR4, AR5 (default), AR6.
    #[param(value_type = Option<String>, example = "AR5")]
    pub gwp: Option<String>,
    /// At most this many: 1 to the server's `max_page_size` (default 100).
    #[param(value_type = Option<u32>, minimum = 1, example = 100)]
    pub limit: Option<String>,
}

/// Query of one emissions forecast.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EmissionsQuery {
    /// GWP set of the CO2e figures: AR4, AR5 (default), AR6.
    #[param(value_type = Option<String>, example = "AR5")]
    pub gwp: Option<String>,
}

/// Emissions forecasts ranked by CO2e.
#[derive(Debug, Serialize, ToSchema)]
pub struct FleetEmissionsDto {
    /// Horizon ranked by, days.
    pub horizon: u32,
    /// GWPs of the CO2e figures.
    pub gwp: GwpDto,
    /// Forecasts, largest CO2e over the horizon first (without daily series).
    pub items: Vec<EmissionsForecastDto>,
}

/// One emissions forecast, if made.
#[derive(Debug, Serialize, ToSchema)]
pub struct EmissionsForecastResponse {
    /// Absent until a refresh has forecast the subject (no production and no sources, or a
    /// method refused its sources: see the run's problems).
    pub forecast: Option<EmissionsForecastDto>,
}

fn parse_horizon(raw: Option<&str>) -> Result<u32, ApiError> {
    match raw {
        None | Some("30") => Ok(30),
        Some("90") => Ok(90),
        Some(other) => Err(ApiError::query(
            "horizon",
            format!("must be 30 or 90, got {}", shown(other)),
        )),
    }
}

fn emissions_from_row(row: Forecast, gwp: GwpSet, days: bool) -> Option<EmissionsForecastDto> {
    let mut dto: EmissionsForecastDto = serde_json::from_value(row.payload).ok()?;
    dto.model_version = row.model_version;
    dto.computed_at = row.computed_at;
    dto.gwp = Some(gwp.values().into());
    for h in &mut dto.horizons {
        h.masses = h.masses.clone().with_co2e(gwp);
    }
    if days {
        for d in &mut dto.days {
            d.masses = d.masses.clone().with_co2e(gwp);
        }
    } else {
        dto.days.clear();
    }
    Some(dto)
}

fn co2e_of(dto: &EmissionsForecastDto, horizon: u32) -> f64 {
    dto.horizons
        .iter()
        .find(|h| h.days == horizon)
        .and_then(|h| h.masses.co2e_kg)
        .map_or(0.0, |b| b.p50)
}

#[utoipa::path(
    get,
    path = "/api/v1/tenants/{tenant}/emissions-forecast",
    security(("bearer" = ["viewer"])),
    tag = "emissions",
    operation_id = "fleet_emissions_forecast",
    params(TenantScope, FleetEmissionsQuery),
    responses(
        (status = 200, description = "Wells or sites ranked by forecast CO2e over the horizon (cached forecasts, 30- and 90-day totals with intervals and methane intensity)", body = FleetEmissionsDto),
        (status = 400, description = "Invalid parameter", body = ErrorResponse),
        (status = 404, description = "Unknown tenant", body = ErrorResponse),
    )
)]
async fn fleet_emissions(
    State(state): State<ApiState>,
    scope: TenantScope,
    ApiQuery(query): ApiQuery<FleetEmissionsQuery>,
) -> Result<Json<FleetEmissionsDto>, ApiError> {
    let kind = match query.by.as_deref() {
        None | Some("well") => Kind::EmissionsWell,
        Some("site") => Kind::EmissionsSite,
        Some(other) => {
            return Err(ApiError::query(
                "by",
                format!("must be well or site, got {}", shown(other)),
            ));
        }
    };
    let horizon = parse_horizon(query.horizon.as_deref())?;
    let gwp = parse_gwp(query.gwp.as_deref())?;
    let limit = parse_limit(query.limit.as_deref(), 100, state.options().max_page_size)?;
    let mut tx = scope.begin(state.db()).await?;
    let rows = sql::ranked(&mut tx, scope.id, kind).await?;
    tx.commit().await?;
    let mut items: Vec<EmissionsForecastDto> = rows
        .into_iter()
        .filter_map(|r| emissions_from_row(r, gwp, false))
        .collect();
    items.sort_by(|a, b| co2e_of(b, horizon).total_cmp(&co2e_of(a, horizon)));
    items.truncate(limit as usize);
    Ok(Json(FleetEmissionsDto {
        horizon,
        gwp: gwp.values().into(),
        items,
    }))
}

#[utoipa::path(
    get,
    path = "/api/v1/tenants/{tenant}/wells/{well}/emissions-forecast",
    security(("bearer" = ["viewer"])),
    tag = "emissions",
    operation_id = "well_emissions_forecast",
    params(TenantScope, WellParam, EmissionsQuery),
    responses(
        (status = 200, description = "The well's cached forecast: 90 daily CH4, CO2, N2O and CO2e figures with intervals, 30- and 90-day totals, methane intensity against targets and thresholds", body = EmissionsForecastResponse),
        (status = 400, description = "Invalid parameter", body = ErrorResponse),
        (status = 404, description = "Unknown well", body = ErrorResponse),
    )
)]
async fn well_emissions(
    State(state): State<ApiState>,
    scope: TenantScope,
    WellParam(well): WellParam,
    ApiQuery(query): ApiQuery<EmissionsQuery>,
) -> Result<Json<EmissionsForecastResponse>, ApiError> {
    let gwp = parse_gwp(query.gwp.as_deref())?;
    let mut tx = scope.begin(state.db()).await?;
    require_well(&mut tx, &scope, well).await?;
    let row = sql::forecast(&mut tx, scope.id, Kind::EmissionsWell, well.0).await?;
    tx.commit().await?;
    Ok(Json(EmissionsForecastResponse {
        forecast: row.and_then(|r| emissions_from_row(r, gwp, true)),
    }))
}

#[utoipa::path(
    get,
    path = "/api/v1/tenants/{tenant}/sites/{site}/emissions-forecast",
    security(("bearer" = ["viewer"])),
    tag = "emissions",
    operation_id = "site_emissions_forecast",
    params(TenantScope, SiteParam, EmissionsQuery),
    responses(
        (status = 200, description = "The site's cached forecast (its wells and its own sources)", body = EmissionsForecastResponse),
        (status = 400, description = "Invalid parameter", body = ErrorResponse),
        (status = 404, description = "Unknown site", body = ErrorResponse),
    )
)]
async fn site_emissions(
    State(state): State<ApiState>,
    scope: TenantScope,
    SiteParam(site): SiteParam,
    ApiQuery(query): ApiQuery<EmissionsQuery>,
) -> Result<Json<EmissionsForecastResponse>, ApiError> {
    let gwp = parse_gwp(query.gwp.as_deref())?;
    let mut tx = scope.begin(state.db()).await?;
    if store::sites::site(&mut tx, scope.id, site).await?.is_none() {
        return Err(ApiError::NotFound(format!(
            "site {} of tenant `{}`",
            site.0, scope.slug
        )));
    }
    let row = sql::forecast(&mut tx, scope.id, Kind::EmissionsSite, site.0).await?;
    tx.commit().await?;
    Ok(Json(EmissionsForecastResponse {
        forecast: row.and_then(|r| emissions_from_row(r, gwp, true)),
    }))
}

/// Query of the production gaps.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct GapsQuery {
    /// Oil price of the dollar figures, $/bbl (default 70).
    #[param(value_type = Option<f64>, minimum = 0, example = 70)]
    pub price_per_bbl: Option<String>,
    /// Only this category: `underperforming`, `on_target`, `over`, `unknown`.
    #[param(value_type = Option<String>, example = "underperforming")]
    pub category: Option<String>,
    /// At most this many: 1 to the server's `max_page_size` (default 100).
    #[param(value_type = Option<u32>, minimum = 1, example = 100)]
    pub limit: Option<String>,
}

/// Query of one well's gap.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct GapQuery {
    /// Oil price of the dollar figures, $/bbl (default 70).
    #[param(value_type = Option<f64>, minimum = 0, example = 70)]
    pub price_per_bbl: Option<String>,
}

/// Wells ranked by their opportunities.
#[derive(Debug, Serialize, ToSchema)]
pub struct FleetGapsDto {
    /// Price of the dollar figures, $/bbl.
    pub price_per_bbl: f64,
    /// Wells, largest uplift first, then by gap.
    pub items: Vec<ProductionGapDto>,
}

/// One well's production gap, if assessed.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProductionGapResponse {
    /// Absent until a refresh has assessed the well (it needs production history).
    pub gap: Option<ProductionGapDto>,
}

fn parse_price(raw: Option<&str>) -> Result<f64, ApiError> {
    let Some(raw) = raw else {
        return Ok(DEFAULT_PRICE);
    };
    match raw.parse::<f64>() {
        Ok(p) if p.is_finite() && (0.0..=10_000.0).contains(&p) => Ok(p),
        _ => Err(ApiError::query(
            "price_per_bbl",
            format!("must be a number from 0 to 10000, got {}", shown(raw)),
        )),
    }
}

fn gap_from_row(row: Forecast, price: f64) -> Option<ProductionGapDto> {
    let mut dto: ProductionGapDto = serde_json::from_value(row.payload).ok()?;
    dto.model_version = row.model_version;
    dto.computed_at = row.computed_at;
    for o in &mut dto.opportunities {
        o.uplift_dollars_per_day = o.uplift_bbl_per_day * price;
    }
    dto.uplift_dollars_per_day = dto
        .opportunities
        .iter()
        .map(|o| o.uplift_dollars_per_day)
        .sum();
    Some(dto)
}

#[utoipa::path(
    get,
    path = "/api/v1/tenants/{tenant}/production-gaps",
    security(("bearer" = ["viewer"])),
    tag = "production",
    operation_id = "fleet_production_gaps",
    params(TenantScope, GapsQuery),
    responses(
        (status = 200, description = "Wells ranked by the estimated uplift of their opportunities (cached assessments: expected production from the well's decline and its peers, the gap with its interval, a category, causes)", body = FleetGapsDto),
        (status = 400, description = "Invalid parameter", body = ErrorResponse),
        (status = 404, description = "Unknown tenant", body = ErrorResponse),
    )
)]
async fn fleet_gaps(
    State(state): State<ApiState>,
    scope: TenantScope,
    ApiQuery(query): ApiQuery<GapsQuery>,
) -> Result<Json<FleetGapsDto>, ApiError> {
    let price = parse_price(query.price_per_bbl.as_deref())?;
    let category = match query.category.as_deref() {
        None => None,
        Some(c @ ("underperforming" | "on_target" | "over" | "unknown")) => Some(c.to_owned()),
        Some(other) => {
            return Err(ApiError::query(
                "category",
                format!(
                    "must be underperforming, on_target, over or unknown, got {}",
                    shown(other)
                ),
            ));
        }
    };
    let limit = parse_limit(query.limit.as_deref(), 100, state.options().max_page_size)?;
    let mut tx = scope.begin(state.db()).await?;
    let rows = sql::ranked(&mut tx, scope.id, Kind::ProductionGap).await?;
    tx.commit().await?;
    let items = rows
        .into_iter()
        .filter_map(|r| gap_from_row(r, price))
        .filter(|g| category.as_ref().is_none_or(|c| &g.category == c))
        .take(limit as usize)
        .collect();
    Ok(Json(FleetGapsDto {
        price_per_bbl: price,
        items,
    }))
}

#[utoipa::path(
    get,
    path = "/api/v1/tenants/{tenant}/wells/{well}/production-gap",
    security(("bearer" = ["viewer"])),
    tag = "production",
    operation_id = "well_production_gap",
    params(TenantScope, WellParam, GapQuery),
    responses(
        (status = 200, description = "The well's cached assessment", body = ProductionGapResponse),
        (status = 400, description = "Invalid parameter", body = ErrorResponse),
        (status = 404, description = "Unknown well", body = ErrorResponse),
    )
)]
async fn well_gap(
    State(state): State<ApiState>,
    scope: TenantScope,
    WellParam(well): WellParam,
    ApiQuery(query): ApiQuery<GapQuery>,
) -> Result<Json<ProductionGapResponse>, ApiError> {
    let price = parse_price(query.price_per_bbl.as_deref())?;
    let mut tx = scope.begin(state.db()).await?;
    require_well(&mut tx, &scope, well).await?;
    let row = sql::forecast(&mut tx, scope.id, Kind::ProductionGap, well.0).await?;
    tx.commit().await?;
    Ok(Json(ProductionGapResponse {
        gap: row.and_then(|r| gap_from_row(r, price)),
    }))
}

/// A tenant's methane-intensity targets.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MethaneTargetsDto {
    /// kg CH4 per BOE (> 0), or null for none.
    pub kg_ch4_per_boe: Option<f64>,
    /// CH4 emitted as % of the CH4 in gas sent to sale (0–100], or null.
    pub percent_of_sales_gas: Option<f64>,
    /// CH4 emitted as % of the CH4 in gas produced (0–100], or null.
    pub percent_of_gas_produced: Option<f64>,
    /// CH4 mole fraction of the tenant's gas, (0, 1] (default 0.8).
    pub gas_ch4_fraction: Option<f64>,
}

impl From<Targets> for MethaneTargetsDto {
    fn from(t: Targets) -> Self {
        MethaneTargetsDto {
            kg_ch4_per_boe: t.kg_ch4_per_boe,
            percent_of_sales_gas: t.percent_of_sales_gas,
            percent_of_gas_produced: t.percent_of_gas_produced,
            gas_ch4_fraction: Some(t.gas_ch4_fraction),
        }
    }
}

impl MethaneTargetsDto {
    fn validate(&self) -> Result<Targets, ApiError> {
        let positive = |name: &'static str, v: Option<f64>, max: f64| match v {
            Some(x) if !(x.is_finite() && x > 0.0 && x <= max) => Err(ApiError::BadRequest(
                format!("`{name}` must be a number above 0 and at most {max}, got {x}"),
            )),
            _ => Ok(v),
        };
        Ok(Targets {
            kg_ch4_per_boe: positive("kg_ch4_per_boe", self.kg_ch4_per_boe, 1e6)?,
            percent_of_sales_gas: positive(
                "percent_of_sales_gas",
                self.percent_of_sales_gas,
                100.0,
            )?,
            percent_of_gas_produced: positive(
                "percent_of_gas_produced",
                self.percent_of_gas_produced,
                100.0,
            )?,
            gas_ch4_fraction: positive("gas_ch4_fraction", self.gas_ch4_fraction, 1.0)?
                .unwrap_or(0.8),
        })
    }
}

#[utoipa::path(
    get,
    path = "/api/v1/tenants/{tenant}/methane-targets",
    security(("bearer" = ["viewer"])),
    tag = "emissions",
    operation_id = "get_methane_targets",
    params(TenantScope),
    responses(
        (status = 200, description = "The tenant's methane-intensity targets (none set: all null)", body = MethaneTargetsDto),
        (status = 400, description = "Invalid parameter", body = ErrorResponse),
        (status = 404, description = "Unknown tenant", body = ErrorResponse),
    )
)]
async fn get_targets(
    State(state): State<ApiState>,
    scope: TenantScope,
) -> Result<Json<MethaneTargetsDto>, ApiError> {
    let mut tx = scope.begin(state.db()).await?;
    let t = sql::targets(&mut tx, scope.id).await?;
    tx.commit().await?;
    Ok(Json(t.into()))
}

#[utoipa::path(
    put,
    path = "/api/v1/tenants/{tenant}/methane-targets",
    security(("bearer" = ["tenant_admin"])),
    tag = "emissions",
    operation_id = "put_methane_targets",
    params(TenantScope),
    request_body(content = MethaneTargetsDto, content_type = "application/json"),
    responses(
        (status = 200, description = "Set; forecasts compare with them from the next refresh", body = MethaneTargetsDto),
        (status = 400, description = "Invalid field (the message names it)", body = ErrorResponse),
        (status = 404, description = "Unknown tenant", body = ErrorResponse),
    )
)]
async fn put_targets(
    State(state): State<ApiState>,
    scope: TenantScope,
    caller: Caller,
    JsonBody(body): JsonBody<MethaneTargetsDto>,
) -> Result<Json<MethaneTargetsDto>, ApiError> {
    let targets = body.validate()?;
    let mut tx = scope.begin(state.db()).await?;
    let before = sql::targets(&mut tx, scope.id).await?;
    sql::set_targets(&mut tx, scope.id, &targets).await?;
    let dto: MethaneTargetsDto = targets.into();
    store::audit::record(
        &mut tx,
        &caller.audit(
            Some(scope.id),
            "methane_targets.set",
            "methane_targets",
            serde_json::to_value(MethaneTargetsDto::from(before)).ok(),
            serde_json::to_value(dto).ok(),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(dto))
}

#[utoipa::path(
    post,
    path = "/api/v1/tenants/{tenant}/forecasts/refresh",
    security(("bearer" = ["tenant_admin"])),
    tag = "emissions",
    operation_id = "refresh_forecasts",
    params(TenantScope),
    responses(
        (status = 200, description = "Emissions forecasts and production gaps recomputed where their inputs changed since the last run (unchanged inputs: nothing recomputed)", body = RefreshOutcome),
        (status = 400, description = "Invalid parameter", body = ErrorResponse),
        (status = 404, description = "Unknown tenant", body = ErrorResponse),
    )
)]
async fn refresh(
    State(state): State<ApiState>,
    scope: TenantScope,
    caller: Caller,
) -> Result<Json<RefreshOutcome>, ApiError> {
    let outcome = refresh_tenant(state.db(), scope.id, Utc::now()).await?;
    let mut tx = scope.begin(state.db()).await?;
    store::audit::record(
        &mut tx,
        &caller.audit(
            Some(scope.id),
            "forecasts.refresh",
            "forecasts",
            None,
            serde_json::to_value(outcome).ok(),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(outcome))
}

/// The last refresh run of a kind.
#[derive(Debug, Serialize, ToSchema)]
pub struct ForecastRunDto {
    /// `emissions` or `production_gap`.
    pub kind: String,
    /// Model version of its forecasts.
    pub model_version: String,
    /// SHA-256 of its inputs (a refresh with the same inputs recomputes nothing).
    pub inputs_hash: String,
    /// Subjects forecast.
    pub subjects: i32,
    /// Subjects that could not be forecast, with why.
    #[schema(value_type = Vec<Object>)]
    pub problems: serde_json::Value,
    /// Held-out metrics: for emissions, the backtest on the tenant's own last 30 days
    /// (`wells`, `mape_30d_percent`, `baseline_last_month_mape_30d_percent`); for
    /// production gaps, the wells per category.
    #[schema(value_type = Object)]
    pub metrics: serde_json::Value,
    /// When.
    pub computed_at: DateTime<Utc>,
}

/// The last run of each kind.
#[derive(Debug, Serialize, ToSchema)]
pub struct ForecastRunList {
    /// Runs.
    pub items: Vec<ForecastRunDto>,
}

#[utoipa::path(
    get,
    path = "/api/v1/tenants/{tenant}/forecasts/runs",
    security(("bearer" = ["viewer"])),
    tag = "emissions",
    operation_id = "list_forecast_runs",
    params(TenantScope),
    responses(
        (status = 200, description = "The last refresh of the emissions forecasts and of the production gaps: model version, inputs hash, problems, held-out metrics", body = ForecastRunList),
        (status = 400, description = "Invalid parameter", body = ErrorResponse),
        (status = 404, description = "Unknown tenant", body = ErrorResponse),
    )
)]
async fn list_runs(
    State(state): State<ApiState>,
    scope: TenantScope,
) -> Result<Json<ForecastRunList>, ApiError> {
    let mut tx = scope.begin(state.db()).await?;
    let runs = sql::runs(&mut tx, scope.id).await?;
    tx.commit().await?;
    Ok(Json(ForecastRunList {
        items: runs
            .into_iter()
            .map(|(kind, r)| ForecastRunDto {
                kind,
                model_version: r.model_version,
                inputs_hash: r.inputs_hash,
                subjects: r.subjects,
                problems: r.problems,
                metrics: r.metrics,
                computed_at: r.computed_at,
            })
            .collect(),
    }))
}
