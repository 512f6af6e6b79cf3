//! SQL of emission sources and daily emissions.
//!
//! An emission source belongs to a site and optionally to a well; its kind selects the
//! 40 CFR 98 method (`analytics::emissions::methods`). Flare, vent and combustion sources
//! take their gas volume from a meter series, or, without one, from their well's daily
//! flared / vented / fuel figure; equipment-leak and pneumatic sources are population
//! counts (child tables) multiplied by hours in service.
//!
//! `daily_emissions` holds, per source and UTC day, the activity and the **mass per gas**
//! computed by the production job. CO2e is never stored: the API computes it from these
//! masses with the GWP set the caller asks for, so changing the GWP set never changes a
//! stored figure.
//!
//! Enumerations are stored by stable snake_case names; [`Named`] tables map them to the
//! `analytics` enums.

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::Value as Json;
use sqlx::{PgConnection, Row};

use analytics::emissions::factors::{Equipment, Region, Service};
use analytics::emissions::methods::{BleedType, CombustionUnit};
use analytics::emissions::{GasComposition, GasMasses, SourceKind};

use crate::{DbError, SeriesId, SiteId, TenantId, WellId};

/// A stable name ↔ enum table.
pub type Named<T> = &'static [(&'static str, T)];

/// Source kinds by name.
pub const KINDS: Named<SourceKind> = &[
    ("combustion", SourceKind::Combustion),
    ("flare", SourceKind::Flare),
    ("vent", SourceKind::Vent),
    ("equipment_leaks", SourceKind::EquipmentLeaks),
    ("pneumatics", SourceKind::Pneumatics),
];

/// Combustion unit types by name.
pub const COMBUSTION_UNITS: Named<CombustionUnit> = &[
    ("heater", CombustionUnit::Heater),
    ("reciprocating_engine", CombustionUnit::ReciprocatingEngine),
    ("gas_turbine", CombustionUnit::GasTurbine),
];

/// Table W-1A regions by name.
pub const REGIONS: Named<Region> = &[("eastern", Region::Eastern), ("western", Region::Western)];

/// Component / major-equipment kinds by name.
pub const EQUIPMENT: Named<Equipment> = &[
    ("valve", Equipment::Valve),
    ("connector", Equipment::Connector),
    ("flange", Equipment::Flange),
    ("open_ended_line", Equipment::OpenEndedLine),
    ("pressure_relief_valve", Equipment::PressureReliefValve),
    ("pump", Equipment::Pump),
    ("other", Equipment::Other),
    ("wellhead", Equipment::Wellhead),
    ("separator", Equipment::Separator),
    ("meters_piping", Equipment::MetersPiping),
    ("compressor", Equipment::Compressor),
    ("dehydrator", Equipment::Dehydrator),
    ("heater", Equipment::Heater),
    ("storage_vessel", Equipment::StorageVessel),
];

/// Services by name.
pub const SERVICES: Named<Service> = &[
    ("gas", Service::Gas),
    ("light_crude", Service::LightCrude),
    ("heavy_crude", Service::HeavyCrude),
    ("crude", Service::Crude),
];

/// Pneumatic bleed types by name.
pub const BLEEDS: Named<BleedType> = &[
    ("continuous_high", BleedType::ContinuousHigh),
    ("intermittent", BleedType::Intermittent),
    ("continuous_low", BleedType::ContinuousLow),
    ("pump", BleedType::Pump),
];

/// The value named `name` in `table`.
pub fn by_name<T: Copy>(table: Named<T>, name: &str) -> Option<T> {
    table.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
}

/// The name of `value` in `table`.
pub fn name_of<T: Copy + PartialEq>(table: Named<T>, value: T) -> &'static str {
    table
        .iter()
        .find(|(_, v)| *v == value)
        .map_or("unknown", |(n, _)| n)
}

fn stored<T: Copy>(table: Named<T>, what: &'static str, name: &str) -> Result<T, DbError> {
    by_name(table, name).ok_or_else(|| DbError::corrupt(what, name.to_string()))
}

/// An emission source with its population counts.
#[derive(Debug, Clone, PartialEq)]
pub struct EmissionSource {
    /// Source id (0 for a source not stored yet).
    pub id: i64,
    /// Site.
    pub site_id: SiteId,
    /// Well, for well-level sources.
    pub well_id: Option<WellId>,
    /// Name, unique per site.
    pub name: String,
    /// Kind (selects the method).
    pub kind: SourceKind,
    /// Meter of the gas volume (flare, vent, combustion).
    pub meter_series_id: Option<SeriesId>,
    /// Composition of the gas.
    pub gas: GasComposition,
    /// Measured HHV, MMBtu/scf.
    pub hhv_mmbtu_per_scf: Option<f64>,
    /// Measured flare efficiency (`None` = regulatory default).
    pub flare_efficiency: Option<f64>,
    /// The flare is unlit (η = 0).
    pub flare_unlit: bool,
    /// Combustion unit type.
    pub combustion_unit: Option<CombustionUnit>,
    /// Site-specific CH4 factor, kg/MMBtu.
    pub ch4_kg_per_mmbtu: Option<f64>,
    /// Table W-1A region.
    pub region: Region,
    /// The facility reports under Subpart W.
    pub subpart_w_facility: bool,
    /// Start of service (`None` = always).
    pub in_service_from: Option<DateTime<Utc>>,
    /// End of service (`None` = still in service).
    pub in_service_to: Option<DateTime<Utc>>,
    /// Component / equipment counts.
    pub components: Vec<(Equipment, Service, u32)>,
    /// Pneumatic device counts.
    pub pneumatics: Vec<(BleedType, u32)>,
}

/// Stores a new source with its counts; returns its id.
pub async fn insert_source(
    conn: &mut PgConnection,
    tenant: TenantId,
    source: &EmissionSource,
) -> Result<i64, DbError> {
    let equipment: Vec<&str> = source
        .components
        .iter()
        .map(|c| name_of(EQUIPMENT, c.0))
        .collect();
    let services: Vec<&str> = source
        .components
        .iter()
        .map(|c| name_of(SERVICES, c.1))
        .collect();
    let counts: Vec<i32> = source
        .components
        .iter()
        .map(|c| i32::try_from(c.2).unwrap_or(i32::MAX))
        .collect();
    let bleeds: Vec<&str> = source
        .pneumatics
        .iter()
        .map(|p| name_of(BLEEDS, p.0))
        .collect();
    let bleed_counts: Vec<i32> = source
        .pneumatics
        .iter()
        .map(|p| i32::try_from(p.1).unwrap_or(i32::MAX))
        .collect();
    let g = &source.gas;
    let id: i64 = sqlx::query_scalar(
        "WITH src AS (
             INSERT INTO emission_sources (tenant_id, site_id, well_id, name, kind,
                 meter_series_id, ch4, c2h6, c3h8, c4h10, c5_plus, co2, other,
                 hhv_mmbtu_per_scf, flare_efficiency, flare_unlit, combustion_unit,
                 ch4_kg_per_mmbtu, region, subpart_w_facility, in_service_from, in_service_to)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17,
                     $18, $19, $20, $21, $22)
             RETURNING id
         ), comps AS (
             INSERT INTO emission_source_components (tenant_id, source_id, equipment, service, count)
             SELECT $1, src.id, c.e, c.s, c.n
             FROM src, unnest($23::text[], $24::text[], $25::int[]) AS c(e, s, n)
         ), pneus AS (
             INSERT INTO emission_source_pneumatics (tenant_id, source_id, bleed, count)
             SELECT $1, src.id, p.b, p.n FROM src, unnest($26::text[], $27::int[]) AS p(b, n)
         )
         SELECT id FROM src",
    )
    .bind(tenant)
    .bind(source.site_id)
    .bind(source.well_id)
    .bind(&source.name)
    .bind(name_of(KINDS, source.kind))
    .bind(source.meter_series_id)
    .bind(g.ch4)
    .bind(g.c2h6)
    .bind(g.c3h8)
    .bind(g.c4h10)
    .bind(g.c5_plus)
    .bind(g.co2)
    .bind(g.other)
    .bind(source.hhv_mmbtu_per_scf)
    .bind(source.flare_efficiency)
    .bind(source.flare_unlit)
    .bind(source.combustion_unit.map(|u| name_of(COMBUSTION_UNITS, u)))
    .bind(source.ch4_kg_per_mmbtu)
    .bind(name_of(REGIONS, source.region))
    .bind(source.subpart_w_facility)
    .bind(source.in_service_from)
    .bind(source.in_service_to)
    .bind(&equipment)
    .bind(&services)
    .bind(&counts)
    .bind(&bleeds)
    .bind(&bleed_counts)
    .fetch_one(conn)
    .await?;
    Ok(id)
}

/// Every emission source of a tenant with its counts, by id.
pub async fn tenant_sources(
    conn: &mut PgConnection,
    tenant: TenantId,
) -> Result<Vec<EmissionSource>, DbError> {
    let rows = sqlx::query(
        "SELECT s.*,
             coalesce((SELECT jsonb_agg(jsonb_build_array(c.equipment, c.service, c.count))
                       FROM emission_source_components c WHERE c.source_id = s.id), '[]') AS comps,
             coalesce((SELECT jsonb_agg(jsonb_build_array(p.bleed, p.count))
                       FROM emission_source_pneumatics p WHERE p.source_id = s.id), '[]') AS pneus
         FROM emission_sources s WHERE s.tenant_id = $1 ORDER BY s.id",
    )
    .bind(tenant)
    .fetch_all(conn)
    .await?;
    rows.iter().map(source_row).collect()
}

fn source_row(r: &sqlx::postgres::PgRow) -> Result<EmissionSource, DbError> {
    let unit: Option<String> = r.try_get("combustion_unit")?;
    let comps: Json = r.try_get("comps")?;
    let pneus: Json = r.try_get("pneus")?;
    let count = |v: &Json| {
        v.as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| DbError::corrupt("stored count", v.to_string()))
    };
    let text = |v: &Json| v.as_str().unwrap_or_default().to_string();
    let mut components = Vec::new();
    for c in comps.as_array().map(Vec::as_slice).unwrap_or_default() {
        components.push((
            stored(EQUIPMENT, "stored equipment", &text(&c[0]))?,
            stored(SERVICES, "stored service", &text(&c[1]))?,
            count(&c[2])?,
        ));
    }
    let mut pneumatics = Vec::new();
    for p in pneus.as_array().map(Vec::as_slice).unwrap_or_default() {
        pneumatics.push((
            stored(BLEEDS, "stored bleed type", &text(&p[0]))?,
            count(&p[1])?,
        ));
    }
    Ok(EmissionSource {
        id: r.try_get("id")?,
        site_id: r.try_get("site_id")?,
        well_id: r.try_get("well_id")?,
        name: r.try_get("name")?,
        kind: stored(KINDS, "stored source kind", r.try_get("kind")?)?,
        meter_series_id: r.try_get("meter_series_id")?,
        gas: GasComposition {
            ch4: r.try_get("ch4")?,
            c2h6: r.try_get("c2h6")?,
            c3h8: r.try_get("c3h8")?,
            c4h10: r.try_get("c4h10")?,
            c5_plus: r.try_get("c5_plus")?,
            co2: r.try_get("co2")?,
            other: r.try_get("other")?,
        },
        hhv_mmbtu_per_scf: r.try_get("hhv_mmbtu_per_scf")?,
        flare_efficiency: r.try_get("flare_efficiency")?,
        flare_unlit: r.try_get("flare_unlit")?,
        combustion_unit: unit
            .map(|u| stored(COMBUSTION_UNITS, "stored combustion unit", &u))
            .transpose()?,
        ch4_kg_per_mmbtu: r.try_get("ch4_kg_per_mmbtu")?,
        region: stored(REGIONS, "stored region", r.try_get("region")?)?,
        subpart_w_facility: r.try_get("subpart_w_facility")?,
        in_service_from: r.try_get("in_service_from")?,
        in_service_to: r.try_get("in_service_to")?,
        components,
        pneumatics,
    })
}

/// Emissions of one source on one day.
#[derive(Debug, Clone, PartialEq)]
pub struct DailyEmission {
    /// Source.
    pub source_id: i64,
    /// UTC day.
    pub day: NaiveDate,
    /// Gas volume (Mcf) or hours in service; `None` unknown.
    pub activity: Option<f64>,
    /// `Mcf` or `h`.
    pub activity_unit: &'static str,
    /// Where the activity came from (derivation method, `population`, …).
    pub activity_method: String,
    /// The activity covers the whole day.
    pub complete: bool,
    /// Mass per gas; `None` when not computed (unknown activity or refused calculation).
    pub masses: Option<GasMasses>,
    /// Reporting year whose factors apply.
    pub reporting_year: i32,
    /// Calculation followed (equations and sections).
    pub calculation: String,
    /// Why the calculation was refused.
    pub error: Option<String>,
}

/// Upserts daily emissions (one statement).
pub async fn upsert_daily_emissions(
    conn: &mut PgConnection,
    tenant: TenantId,
    rows: &[DailyEmission],
) -> Result<u64, DbError> {
    if rows.is_empty() {
        return Ok(0);
    }
    let sources: Vec<i64> = rows.iter().map(|r| r.source_id).collect();
    let days: Vec<NaiveDate> = rows.iter().map(|r| r.day).collect();
    let activity: Vec<Option<f64>> = rows.iter().map(|r| r.activity).collect();
    let units: Vec<&str> = rows.iter().map(|r| r.activity_unit).collect();
    let methods: Vec<&str> = rows.iter().map(|r| r.activity_method.as_str()).collect();
    let complete: Vec<bool> = rows.iter().map(|r| r.complete).collect();
    let co2: Vec<Option<f64>> = rows.iter().map(|r| r.masses.map(|m| m.co2_kg)).collect();
    let ch4: Vec<Option<f64>> = rows.iter().map(|r| r.masses.map(|m| m.ch4_kg)).collect();
    let n2o: Vec<Option<f64>> = rows.iter().map(|r| r.masses.map(|m| m.n2o_kg)).collect();
    let years: Vec<i32> = rows.iter().map(|r| r.reporting_year).collect();
    let calcs: Vec<&str> = rows.iter().map(|r| r.calculation.as_str()).collect();
    let errors: Vec<Option<&str>> = rows.iter().map(|r| r.error.as_deref()).collect();
    let done = sqlx::query(
        "INSERT INTO daily_emissions (tenant_id, source_id, day, activity, activity_unit,
             activity_method, complete, co2_kg, ch4_kg, n2o_kg, reporting_year, calculation,
             error, computed_at)
         SELECT $1, x.*, now()
         FROM unnest($2::bigint[], $3::date[], $4::float8[], $5::text[], $6::text[],
                     $7::bool[], $8::float8[], $9::float8[], $10::float8[], $11::int[],
                     $12::text[], $13::text[]) AS x
         ON CONFLICT (source_id, day) DO UPDATE SET
             activity = excluded.activity, activity_unit = excluded.activity_unit,
             activity_method = excluded.activity_method, complete = excluded.complete,
             co2_kg = excluded.co2_kg, ch4_kg = excluded.ch4_kg, n2o_kg = excluded.n2o_kg,
             reporting_year = excluded.reporting_year, calculation = excluded.calculation,
             error = excluded.error, computed_at = excluded.computed_at",
    )
    .bind(tenant)
    .bind(&sources)
    .bind(&days)
    .bind(&activity)
    .bind(&units)
    .bind(&methods)
    .bind(&complete)
    .bind(&co2)
    .bind(&ch4)
    .bind(&n2o)
    .bind(&years)
    .bind(&calcs)
    .bind(&errors)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// Stored daily emissions of a tenant's sources for days in `[from, to)`, by source, day.
pub async fn tenant_daily_emissions(
    conn: &mut PgConnection,
    tenant: TenantId,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<DailyEmission>, DbError> {
    let rows = sqlx::query(
        "SELECT source_id, day, activity, activity_unit, activity_method, complete, co2_kg,
                ch4_kg, n2o_kg, reporting_year, calculation, error
         FROM daily_emissions WHERE tenant_id = $1 AND day >= $2 AND day < $3
         ORDER BY source_id, day",
    )
    .bind(tenant)
    .bind(from)
    .bind(to)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| {
            let unit: String = r.try_get("activity_unit")?;
            let co2: Option<f64> = r.try_get("co2_kg")?;
            let ch4: Option<f64> = r.try_get("ch4_kg")?;
            let n2o: Option<f64> = r.try_get("n2o_kg")?;
            let masses = match (co2, ch4, n2o) {
                (Some(co2_kg), Some(ch4_kg), Some(n2o_kg)) => Some(GasMasses {
                    co2_kg,
                    ch4_kg,
                    n2o_kg,
                }),
                _ => None,
            };
            Ok(DailyEmission {
                source_id: r.try_get("source_id")?,
                day: r.try_get("day")?,
                activity: r.try_get("activity")?,
                activity_unit: if unit == "h" { "h" } else { "Mcf" },
                activity_method: r.try_get("activity_method")?,
                complete: r.try_get("complete")?,
                masses,
                reporting_year: r.try_get("reporting_year")?,
                calculation: r.try_get("calculation")?,
                error: r.try_get("error")?,
            })
        })
        .collect::<Result<_, DbError>>()
}

/// Replaces the component and pneumatic device counts of a source (the equipment inventory
/// behind equipment-leak and pneumatic emissions). Returns the source before and after;
/// `None` if the tenant has no such source.
pub async fn set_source_counts(
    conn: &mut PgConnection,
    tenant: TenantId,
    source: i64,
    components: &[(Equipment, Service, u32)],
    pneumatics: &[(BleedType, u32)],
) -> Result<Option<(EmissionSource, EmissionSource)>, DbError> {
    let find = |sources: Vec<EmissionSource>| sources.into_iter().find(|s| s.id == source);
    let Some(before) = find(tenant_sources(&mut *conn, tenant).await?) else {
        return Ok(None);
    };
    sqlx::query("DELETE FROM emission_source_components WHERE tenant_id = $1 AND source_id = $2")
        .bind(tenant)
        .bind(source)
        .execute(&mut *conn)
        .await?;
    sqlx::query("DELETE FROM emission_source_pneumatics WHERE tenant_id = $1 AND source_id = $2")
        .bind(tenant)
        .bind(source)
        .execute(&mut *conn)
        .await?;
    let count = |n: u32| i32::try_from(n).unwrap_or(i32::MAX);
    sqlx::query(
        "INSERT INTO emission_source_components (tenant_id, source_id, equipment, service, count)
         SELECT $1, $2, c.e, c.s, c.n FROM unnest($3::text[], $4::text[], $5::int[]) AS c(e, s, n)",
    )
    .bind(tenant)
    .bind(source)
    .bind(
        components
            .iter()
            .map(|c| name_of(EQUIPMENT, c.0))
            .collect::<Vec<_>>(),
    )
    .bind(
        components
            .iter()
            .map(|c| name_of(SERVICES, c.1))
            .collect::<Vec<_>>(),
    )
    .bind(components.iter().map(|c| count(c.2)).collect::<Vec<_>>())
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO emission_source_pneumatics (tenant_id, source_id, bleed, count)
         SELECT $1, $2, p.b, p.n FROM unnest($3::text[], $4::int[]) AS p(b, n)",
    )
    .bind(tenant)
    .bind(source)
    .bind(
        pneumatics
            .iter()
            .map(|p| name_of(BLEEDS, p.0))
            .collect::<Vec<_>>(),
    )
    .bind(pneumatics.iter().map(|p| count(p.1)).collect::<Vec<_>>())
    .execute(&mut *conn)
    .await?;
    let after = find(tenant_sources(conn, tenant).await?)
        .ok_or_else(|| DbError::NotFound(format!("emission source {source}")))?;
    Ok(Some((before, after)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_tables_round_trip() {
        fn check<T: Copy + PartialEq + std::fmt::Debug>(table: Named<T>) {
            for (name, value) in table {
                assert_eq!(by_name(table, name), Some(*value));
                assert_eq!(name_of(table, *value), *name);
            }
        }
        check(KINDS);
        check(COMBUSTION_UNITS);
        check(REGIONS);
        check(EQUIPMENT);
        check(SERVICES);
        check(BLEEDS);
        assert_eq!(by_name(KINDS, "volcano"), None);
    }
}
