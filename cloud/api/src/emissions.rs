//! Greenhouse-gas emissions and intensities of a tenant.
//!
//! ```text
//! GET /api/v1/tenants/{tenant}/emissions?from=&to=&gwp=AR5|AR4|AR6&by=source|well
//! GET /api/v1/tenants/{tenant}/emissions/intensity?year=&boe_mcf_per_bbl=6&gwp=&sales_gas_ch4_fraction=
//! ```
//!
//! Emissions are read from `daily_emissions`: mass per gas (kg CO2, CH4, N2O) per source
//! and UTC day, computed by the production job with the 40 CFR 98 Subpart C / W methods of
//! `analytics::emissions` (see [`production`]). CO2e is computed here, at
//! request time, with the GWP set the caller chooses (default AR5, the GHGRP set from
//! RY2024), and the set's values and citation are stamped on the response: the stored
//! masses never depend on a GWP set.
//!
//! A day of a source without a stored row, with incomplete activity data, or whose
//! calculation was refused is listed in `incomplete_days` (with the refusal in `errors`):
//! nothing unknown is silently counted as zero.
//!
//! Intensities (`analytics::emissions::intensity`) use the year's emissions and the
//! tenant's production: oil, gas produced, and gas sold = produced − flared − vented −
//! fuel (never below zero); BOE with `boe_mcf_per_bbl` Mcf per barrel.

use std::collections::{BTreeMap, BTreeSet};

use axum::Json;
use axum::extract::State;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use analytics::emissions::gwp::{GwpSet, GwpValues, co2e};
use analytics::emissions::intensity::{IntensityParams, ProductionVolumes, intensities};
use analytics::emissions::{GasMasses, SourceKind};
use analytics::production::Quantity;

use super::error::UnprocessableResponse;
use super::extract::{MAX_READ_DAYS, parse_day_range, shown};
use super::{ApiError, ApiQuery, ApiState, ErrorResponse, TenantScope};
use store::DbError;
use store::emissions::{
    DailyEmission, EmissionSource, KINDS, name_of, tenant_daily_emissions, tenant_sources,
};
use store::production::tenant_daily_rows;
use store::regulatory;

pub(crate) fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(emissions))
        .routes(routes!(intensity))
}

/// A GWP set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub enum GwpName {
    /// IPCC AR4 (CH4 25, N2O 298): GHGRP RY2014–RY2023.
    #[serde(rename = "AR4")]
    Ar4,
    /// IPCC AR5 (CH4 28, N2O 265): GHGRP from RY2024. Default.
    #[serde(rename = "AR5")]
    Ar5,
    /// IPCC AR6 (CH4 29.8, N2O 273), fossil methane.
    #[serde(rename = "AR6")]
    Ar6,
}

pub(crate) fn parse_gwp(raw: Option<&str>) -> Result<GwpSet, ApiError> {
    match raw.map(str::to_ascii_uppercase).as_deref() {
        None | Some("AR5") => Ok(GwpSet::Ar5),
        Some("AR4") => Ok(GwpSet::Ar4),
        Some("AR6") => Ok(GwpSet::Ar6),
        Some(_) => Err(ApiError::query(
            "gwp",
            format!(
                "must be one of AR4, AR5, AR6, got {}",
                shown(raw.unwrap_or_default())
            ),
        )),
    }
}

/// The GWP values used for CO2e.
#[derive(Debug, Serialize, ToSchema)]
pub struct GwpDto {
    /// Set.
    pub set: GwpName,
    /// GWP of CH4.
    pub ch4: f64,
    /// GWP of N2O.
    pub n2o: f64,
    /// Citation.
    pub source: String,
}

impl From<&GwpValues> for GwpDto {
    fn from(v: &GwpValues) -> GwpDto {
        GwpDto {
            set: match v.set {
                GwpSet::Ar4 => GwpName::Ar4,
                GwpSet::Ar5 => GwpName::Ar5,
                GwpSet::Ar6 => GwpName::Ar6,
            },
            ch4: v.ch4,
            n2o: v.n2o,
            source: v.source.to_owned(),
        }
    }
}

/// Mass per gas.
#[derive(Debug, Serialize, ToSchema)]
pub struct MassesDto {
    /// kg CO2.
    pub co2_kg: f64,
    /// kg CH4.
    pub ch4_kg: f64,
    /// kg N2O.
    pub n2o_kg: f64,
}

impl From<GasMasses> for MassesDto {
    fn from(m: GasMasses) -> MassesDto {
        MassesDto {
            co2_kg: m.co2_kg,
            ch4_kg: m.ch4_kg,
            n2o_kg: m.n2o_kg,
        }
    }
}

/// Grouping of the emissions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GroupBy {
    /// One group per emission source.
    Source,
    /// One group per well; site-level sources form a group per site (`well_id` null).
    Well,
}

fn parse_by(raw: Option<&str>) -> Result<GroupBy, ApiError> {
    match raw {
        None | Some("source") => Ok(GroupBy::Source),
        Some("well") => Ok(GroupBy::Well),
        Some(other) => Err(ApiError::query(
            "by",
            format!("must be one of source, well, got {}", shown(other)),
        )),
    }
}

/// Query of the emissions endpoint.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EmissionsQuery {
    /// First day, `YYYY-MM-DD` (inclusive).
    #[param(value_type = String, format = Date, example = "2024-01-01")]
    pub from: Option<String>,
    /// Day after the last, `YYYY-MM-DD` (exclusive), at most 366 days after `from`.
    #[param(value_type = String, format = Date, example = "2025-01-01")]
    pub to: Option<String>,
    /// GWP set for CO2e: `AR5` (default), `AR4` or `AR6`.
    #[param(value_type = Option<GwpName>, inline)]
    pub gwp: Option<String>,
    /// `source` (default) or `well`.
    #[param(value_type = Option<GroupBy>, inline)]
    pub by: Option<String>,
}

/// Emissions of one group.
#[derive(Debug, Serialize, ToSchema)]
pub struct EmissionGroupDto {
    /// Source id (`by=source`).
    pub source_id: Option<i64>,
    /// Source name (`by=source`).
    pub source_name: Option<String>,
    /// Source kind: `combustion`, `flare`, `vent`, `equipment_leaks`, `pneumatics`
    /// (`by=source`).
    pub kind: Option<String>,
    /// Well (absent for site-level sources).
    pub well_id: Option<i64>,
    /// Site.
    pub site_id: i64,
    /// Mass per gas over the computed days.
    pub masses: MassesDto,
    /// CO2e of the masses with the response's GWP set, kg.
    pub co2e_kg: f64,
    /// Source-days with masses.
    pub days_computed: u32,
    /// Source-days expected (sources × days of the range).
    pub days_expected: u32,
    /// Days not computed, with incomplete activity data, or refused.
    #[schema(value_type = Vec<String>)]
    pub incomplete_days: Vec<NaiveDate>,
    /// Why calculations were refused (distinct messages).
    pub errors: Vec<String>,
}

/// Sum over every group.
#[derive(Debug, Serialize, ToSchema)]
pub struct EmissionTotalDto {
    /// Mass per gas.
    pub masses: MassesDto,
    /// CO2e, kg.
    pub co2e_kg: f64,
    /// Every expected source-day has complete masses.
    pub complete: bool,
}

/// Emissions of a tenant over a range.
#[derive(Debug, Serialize, ToSchema)]
pub struct EmissionsDto {
    /// First day (inclusive).
    #[schema(value_type = String, format = Date)]
    pub from: NaiveDate,
    /// Day after the last (exclusive).
    #[schema(value_type = String, format = Date)]
    pub to: NaiveDate,
    /// GWP set used for every CO2e of the response.
    pub gwp: GwpDto,
    /// Grouping.
    pub by: GroupBy,
    /// Groups, by source id or by (well, site).
    pub groups: Vec<EmissionGroupDto>,
    /// Total.
    pub total: EmissionTotalDto,
}

/// Accumulates the emissions of a group.
struct Group {
    source: Option<(i64, String, SourceKind)>,
    well_id: Option<i64>,
    site_id: i64,
    masses: GasMasses,
    computed: u32,
    expected: u32,
    incomplete: BTreeSet<NaiveDate>,
    errors: BTreeSet<String>,
}

impl Group {
    fn add(
        &mut self,
        source: &EmissionSource,
        rows: &[&DailyEmission],
        from: NaiveDate,
        to: NaiveDate,
    ) {
        for day in from.iter_days().take_while(|d| *d < to) {
            self.expected += 1;
            let row = rows
                .iter()
                .find(|r| r.source_id == source.id && r.day == day);
            match row {
                Some(r) => {
                    if let Some(m) = r.masses {
                        self.masses += m;
                        self.computed += 1;
                    }
                    if !r.complete || r.masses.is_none() {
                        self.incomplete.insert(day);
                    }
                    if let Some(e) = &r.error {
                        self.errors.insert(e.clone());
                    }
                }
                None => {
                    self.incomplete.insert(day);
                }
            }
        }
    }

    fn dto(self, gwp: GwpSet) -> EmissionGroupDto {
        EmissionGroupDto {
            source_id: self.source.as_ref().map(|s| s.0),
            source_name: self.source.as_ref().map(|s| s.1.clone()),
            kind: self.source.as_ref().map(|s| name_of(KINDS, s.2).to_owned()),
            well_id: self.well_id,
            site_id: self.site_id,
            co2e_kg: co2e(&self.masses, gwp).kg,
            masses: self.masses.into(),
            days_computed: self.computed,
            days_expected: self.expected,
            incomplete_days: self.incomplete.into_iter().collect(),
            errors: self.errors.into_iter().collect(),
        }
    }
}

/// Emissions by source or by well: masses per gas and CO2e with the chosen GWP set.
#[utoipa::path(
    get,
    path = "/api/v1/tenants/{tenant}/emissions",
    security(("bearer" = ["viewer"])),
    tag = "emissions",
    operation_id = "emissions",
    params(TenantScope, EmissionsQuery),
    responses(
        (status = 200, description = "Masses per gas and CO2e per group, GWP set stamped", body = EmissionsDto),
        (status = 400, description = "Invalid parameter (the message names it)", body = ErrorResponse),
        (status = 404, description = "Unknown tenant", body = ErrorResponse),
        (status = 503, description = "Database unavailable or request timed out", body = ErrorResponse),
    )
)]
async fn emissions(
    State(state): State<ApiState>,
    scope: TenantScope,
    ApiQuery(query): ApiQuery<EmissionsQuery>,
) -> Result<Json<EmissionsDto>, ApiError> {
    let (from, to) = parse_day_range(query.from, query.to, MAX_READ_DAYS)?;
    let gwp = parse_gwp(query.gwp.as_deref())?;
    let by = parse_by(query.by.as_deref())?;
    let mut tx = scope.begin(state.db()).await?;
    let sources = tenant_sources(&mut tx, scope.id).await?;
    let rows = tenant_daily_emissions(&mut tx, scope.id, from, to).await?;
    tx.commit().await.map_err(DbError::from)?;
    let mut groups: BTreeMap<(i64, i64, i64), Group> = BTreeMap::new();
    for source in &sources {
        let own: Vec<&DailyEmission> = rows.iter().filter(|r| r.source_id == source.id).collect();
        let well = source.well_id.map(|w| w.0);
        let key = match by {
            GroupBy::Source => (source.id, 0, 0),
            GroupBy::Well => (0, well.unwrap_or(0), source.site_id.0),
        };
        groups
            .entry(key)
            .or_insert_with(|| Group {
                source: (by == GroupBy::Source)
                    .then(|| (source.id, source.name.clone(), source.kind)),
                well_id: well,
                site_id: source.site_id.0,
                masses: GasMasses::default(),
                computed: 0,
                expected: 0,
                incomplete: BTreeSet::new(),
                errors: BTreeSet::new(),
            })
            .add(source, &own, from, to);
    }
    let mut total = GasMasses::default();
    let mut complete = true;
    let groups: Vec<EmissionGroupDto> = groups
        .into_values()
        .map(|g| {
            total += g.masses;
            complete &= g.incomplete.is_empty();
            g.dto(gwp)
        })
        .collect();
    Ok(Json(EmissionsDto {
        from,
        to,
        gwp: gwp.values().into(),
        by,
        groups,
        total: EmissionTotalDto {
            co2e_kg: co2e(&total, gwp).kg,
            masses: total.into(),
            complete,
        },
    }))
}

/// Query of the intensity endpoint.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct IntensityQuery {
    /// Reporting year, e.g. 2024.
    #[param(value_type = i32, example = 2024)]
    pub year: Option<String>,
    /// Mcf of gas per barrel of oil equivalent (default 6; greater than 0, at most 100).
    #[param(value_type = Option<f64>, example = 6)]
    pub boe_mcf_per_bbl: Option<String>,
    /// GWP set for CO2e: `AR5` (default), `AR4` or `AR6`.
    #[param(value_type = Option<GwpName>, inline)]
    pub gwp: Option<String>,
    /// CH4 mole fraction of the gas sent to sale, 0 to 1 (default: the tenant's registry
    /// value; without one the methane intensity is absent).
    #[param(value_type = Option<f64>, example = 0.82)]
    pub sales_gas_ch4_fraction: Option<String>,
}

/// Production volumes of the year.
#[derive(Debug, Serialize, ToSchema)]
pub struct VolumesDto {
    /// Oil, bbl.
    pub oil_bbl: f64,
    /// Gas produced, Mcf.
    pub gas_produced_mcf: f64,
    /// Gas sold (produced − flared − vented − fuel, ≥ 0), Mcf.
    pub gas_sold_mcf: f64,
    /// Gas flared, Mcf.
    pub gas_flared_mcf: f64,
    /// Gas vented, Mcf.
    pub gas_vented_mcf: f64,
    /// Lease fuel, Mcf.
    pub gas_fuel_mcf: f64,
    /// Well-days of the year whose figures are missing, incomplete or not derived.
    pub incomplete_well_days: u32,
}

/// Emission intensities of a tenant for a year.
#[derive(Debug, Serialize, ToSchema)]
pub struct IntensityDto {
    /// Reporting year.
    pub year: i32,
    /// GWP set of the CO2e figures.
    pub gwp: GwpDto,
    /// Mcf per BOE used.
    pub boe_mcf_per_bbl: f64,
    /// CH4 mole fraction of sales gas used (absent when unknown).
    pub sales_gas_ch4_fraction: Option<f64>,
    /// Production of the year.
    pub volumes: VolumesDto,
    /// Emissions of the year.
    pub masses: MassesDto,
    /// CO2e of the year, kg.
    pub co2e_kg: f64,
    /// Emission source-days not computed or incomplete.
    pub incomplete_emission_days: u32,
    /// Barrels of oil equivalent.
    pub boe: f64,
    /// kg CH4 per BOE (absent without production).
    pub kg_ch4_per_boe: Option<f64>,
    /// kg CO2e per BOE (absent without production).
    pub kg_co2e_per_boe: Option<f64>,
    /// CH4 emitted as % of the CH4 in gas sent to sale (absent without sales or fraction).
    pub methane_intensity_pct: Option<f64>,
    /// New Mexico gas capture, % (19.15.27.9 NMAC; absent without gas production).
    pub nm_gas_capture_pct: Option<f64>,
}

fn parse_year(raw: Option<&str>) -> Result<i32, ApiError> {
    let raw = raw
        .filter(|r| !r.is_empty())
        .ok_or_else(|| ApiError::query("year", "is required"))?;
    raw.parse::<i32>()
        .ok()
        .filter(|y| (1970..2200).contains(y))
        .ok_or_else(|| {
            ApiError::query(
                "year",
                format!("must be a year from 1970 to 2199, got {}", shown(raw)),
            )
        })
}

fn parse_positive(
    name: &'static str,
    raw: Option<&str>,
    default: f64,
    max: f64,
) -> Result<f64, ApiError> {
    let Some(raw) = raw else { return Ok(default) };
    raw.parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v > 0.0 && *v <= max)
        .ok_or_else(|| {
            ApiError::query(
                name,
                format!(
                    "must be a number greater than 0 and at most {max}, got {}",
                    shown(raw)
                ),
            )
        })
}

fn parse_fraction(name: &'static str, raw: Option<&str>) -> Result<Option<f64>, ApiError> {
    raw.map(|raw| {
        raw.parse::<f64>()
            .ok()
            .filter(|v| (0.0..=1.0).contains(v))
            .ok_or_else(|| {
                ApiError::query(
                    name,
                    format!("must be a mole fraction from 0 to 1, got {}", shown(raw)),
                )
            })
    })
    .transpose()
}

/// Emission intensities for a year: kg CH4/BOE, kg CO2e/BOE, methane intensity, NM gas capture.
#[utoipa::path(
    get,
    path = "/api/v1/tenants/{tenant}/emissions/intensity",
    security(("bearer" = ["viewer"])),
    tag = "emissions",
    operation_id = "emission_intensity",
    params(TenantScope, IntensityQuery),
    responses(
        (status = 200, description = "Intensities with their inputs", body = IntensityDto),
        (status = 400, description = "Invalid parameter (the message names it)", body = ErrorResponse),
        (status = 404, description = "Unknown tenant", body = ErrorResponse),
        (status = 422, description = "No factor applies to the year", body = UnprocessableResponse),
        (status = 503, description = "Database unavailable or request timed out", body = ErrorResponse),
    )
)]
async fn intensity(
    State(state): State<ApiState>,
    scope: TenantScope,
    ApiQuery(query): ApiQuery<IntensityQuery>,
) -> Result<Json<IntensityDto>, ApiError> {
    let year = parse_year(query.year.as_deref())?;
    let mcf_per_boe = parse_positive(
        "boe_mcf_per_bbl",
        query.boe_mcf_per_bbl.as_deref(),
        6.0,
        100.0,
    )?;
    let gwp = parse_gwp(query.gwp.as_deref())?;
    let fraction = parse_fraction(
        "sales_gas_ch4_fraction",
        query.sales_gas_ch4_fraction.as_deref(),
    )?;
    let from = NaiveDate::from_ymd_opt(year, 1, 1).unwrap_or_default();
    let to = NaiveDate::from_ymd_opt(year + 1, 1, 1).unwrap_or_default();
    let mut tx = scope.begin(state.db()).await?;
    let sources = tenant_sources(&mut tx, scope.id).await?;
    let rows = tenant_daily_emissions(&mut tx, scope.id, from, to).await?;
    let production = tenant_daily_rows(&mut tx, scope.id, from, to).await?;
    let operator = regulatory::operator(&mut tx, scope.id).await?;
    tx.commit().await.map_err(DbError::from)?;
    let fraction = fraction.or(operator.and_then(|o| o.sales_gas_ch4_fraction));

    let days = u32::try_from((to - from).num_days()).unwrap_or(0);
    let mut masses = GasMasses::default();
    let mut complete_source_days = 0u32;
    for r in &rows {
        if let Some(m) = r.masses {
            masses += m;
            if r.complete {
                complete_source_days += 1;
            }
        }
    }
    let expected = days * u32::try_from(sources.len()).unwrap_or(0);
    let sum = |q: Quantity| -> f64 {
        production
            .iter()
            .filter(|r| r.quantity == q)
            .filter_map(|r| r.volume)
            .sum()
    };
    let (oil, gas, flared, vented, fuel) = (
        sum(Quantity::Oil),
        sum(Quantity::Gas),
        sum(Quantity::Flared),
        sum(Quantity::Vented),
        sum(Quantity::Fuel),
    );
    let incomplete_well_days = production
        .iter()
        .filter(|r| matches!(r.quantity, Quantity::Oil | Quantity::Gas) && !r.is_complete())
        .map(|r| (r.well_id, r.day))
        .collect::<BTreeSet<_>>()
        .len();
    let volumes = ProductionVolumes {
        oil_bbl: oil.max(0.0),
        gas_produced_mcf: gas.max(0.0),
        gas_sold_mcf: (gas - flared - vented - fuel).max(0.0),
        gas_vented_mcf: vented.max(0.0),
        gas_flared_mcf: flared.max(0.0),
    };
    let reporting_year = u16::try_from(year).unwrap_or(0);
    let result = intensities(
        reporting_year,
        &masses,
        &volumes,
        &IntensityParams {
            mcf_per_boe,
            gwp,
            sales_gas_ch4_fraction: fraction.unwrap_or(0.0),
        },
    )
    .map_err(|e| ApiError::unprocessable(format!("intensities for {year}: {e}")))?;
    Ok(Json(IntensityDto {
        year,
        gwp: gwp.values().into(),
        boe_mcf_per_bbl: mcf_per_boe,
        sales_gas_ch4_fraction: fraction,
        volumes: VolumesDto {
            oil_bbl: volumes.oil_bbl,
            gas_produced_mcf: volumes.gas_produced_mcf,
            gas_sold_mcf: volumes.gas_sold_mcf,
            gas_flared_mcf: volumes.gas_flared_mcf,
            gas_vented_mcf: volumes.gas_vented_mcf,
            gas_fuel_mcf: fuel.max(0.0),
            incomplete_well_days: u32::try_from(incomplete_well_days).unwrap_or(u32::MAX),
        },
        co2e_kg: co2e(&masses, gwp).kg,
        masses: masses.into(),
        incomplete_emission_days: expected.saturating_sub(complete_source_days),
        boe: result.boe,
        kg_ch4_per_boe: result.kg_ch4_per_boe,
        kg_co2e_per_boe: result.kg_co2e_per_boe,
        methane_intensity_pct: fraction.and(result.methane_intensity_pct),
        nm_gas_capture_pct: result.nm_gas_capture_pct,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_checked_with_precise_messages() {
        assert_eq!(parse_gwp(None).unwrap(), GwpSet::Ar5);
        assert_eq!(parse_gwp(Some("ar4")).unwrap(), GwpSet::Ar4);
        assert_eq!(
            parse_gwp(Some("SAR")).unwrap_err().to_string(),
            "invalid query parameter `gwp`: must be one of AR4, AR5, AR6, got `SAR`"
        );
        assert_eq!(parse_by(Some("well")).unwrap(), GroupBy::Well);
        assert!(parse_by(Some("site")).is_err());
        assert_eq!(parse_year(Some("2024")).unwrap(), 2024);
        assert_eq!(
            parse_year(None).unwrap_err().to_string(),
            "invalid query parameter `year`: is required"
        );
        assert!(parse_year(Some("24")).is_err());
        assert_eq!(
            parse_positive("boe_mcf_per_bbl", None, 6.0, 100.0).unwrap(),
            6.0
        );
        for bad in ["0", "-6", "NaN", "inf", "101", "six"] {
            assert!(
                parse_positive("boe_mcf_per_bbl", Some(bad), 6.0, 100.0).is_err(),
                "{bad}"
            );
        }
        assert_eq!(parse_fraction("f", Some("0.8")).unwrap(), Some(0.8));
        assert!(parse_fraction("f", Some("1.2")).is_err());
    }
}
