//! Daily emissions per source: activity of the day → `analytics::emissions` method → masses.
//!
//! Activity of a source on a day:
//!
//! * **flare / vent / combustion with a meter series**: the gas volume through the meter,
//!   derived like a flare meter by `derive_day` — a counter (`MetricKind::Counter`, e.g.
//!   `flare_gas_mcf`, `fuel_gas_mcf`, `gas_volume_total_mcf`) by its delta, a rate gauge in
//!   Mcf/d (`*_mcfd`) by trapezoidal integration — with the same coverage rules as
//!   production figures;
//! * **flare / vent / combustion without a meter**: the well's stored daily flared, vented
//!   or fuel figure (so a manual correction of that figure flows into the emissions);
//! * **equipment leaks / pneumatics**: hours in service inside the day (population counts
//!   come from the source's registry rows).
//!
//! Metered volumes are taken as Subpart W standard volumes (60 °F, 14.7 psia). Each day is
//! computed with the factor rows of its own reporting year; all methods are linear in the
//! activity, so summing days equals computing the period at once. A day whose activity is
//! unknown gets no masses (`complete = false`), never zero; a day the method refuses (e.g.
//! no default factor for the year) stores the refusal in `error`.

use std::collections::HashMap;

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use sqlx::PgConnection;

use analytics::emissions::inventory::{SourceInput, source_emissions};
use analytics::emissions::methods::{
    CombustionInput, EquipmentCount, FlareEfficiency, FlareInput, FuelBasis, LeakInput,
    PneumaticCount, PneumaticInput, VentInput,
};
use analytics::emissions::{GasMasses, SourceKind};
use analytics::production::{
    DayWindow, DerivationConfig, Quantity, Series, WellDayInput, derive_day,
};
use firmware_profiles::vocabulary::{self, MetricKind};

use super::readings::{self, ReadPlan, SeriesReadings, chunks, day_start_ms};
use super::{DAY_MS, DerivationSettings, JobError, check_range, days, device_source};
use store::emissions::{DailyEmission, EmissionSource, tenant_sources, upsert_daily_emissions};
use store::production::{DailyRow, series_by_id, tenant_daily_rows};
use store::{SeriesId, TenantId, WellId};

/// Activity of one source on one day.
#[derive(Debug, Clone, PartialEq)]
struct Activity {
    value: Option<f64>,
    unit: &'static str,
    method: String,
    complete: bool,
}

impl Activity {
    fn unknown(unit: &'static str, method: impl Into<String>) -> Activity {
        Activity {
            value: None,
            unit,
            method: method.into(),
            complete: false,
        }
    }
}

/// Computes and stores the emissions of every source of a tenant for the days
/// `[from, to)`; returns the stored rows.
pub async fn derive_emissions(
    conn: &mut PgConnection,
    tenant: TenantId,
    from: NaiveDate,
    to: NaiveDate,
    settings: &DerivationSettings,
) -> Result<Vec<DailyEmission>, JobError> {
    check_range(from, to)?;
    let sources = tenant_sources(conn, tenant).await?;
    if sources.is_empty() {
        return Ok(Vec::new());
    }
    let well_rows: HashMap<(WellId, NaiveDate, Quantity), DailyRow> =
        tenant_daily_rows(conn, tenant, from, to)
            .await?
            .into_iter()
            .map(|r| ((r.well_id, r.day, r.quantity), r))
            .collect();
    let metered = metered_activity(conn, &sources, from, to, settings).await?;
    let mut rows = Vec::new();
    for source in &sources {
        for day in days(from, to) {
            let activity = match source.kind {
                SourceKind::EquipmentLeaks | SourceKind::Pneumatics => {
                    hours_in_service(source, day)
                }
                _ => match source.meter_series_id {
                    Some(series) => metered
                        .get(&(series, day))
                        .cloned()
                        .unwrap_or_else(|| Activity::unknown("Mcf", "missing")),
                    None => well_activity(source, day, &well_rows),
                },
            };
            rows.push(emission_row(source, day, activity));
        }
    }
    upsert_daily_emissions(conn, tenant, &rows).await?;
    Ok(rows)
}

/// The figure label a meter series is derived under (as the flare quantity), if any.
fn meter_label(metric: &str) -> Option<&'static str> {
    match vocabulary::lookup(metric).map(|d| d.kind) {
        Some(MetricKind::Counter) => Some("flare_gas_mcf"),
        Some(MetricKind::Gauge) if metric.ends_with("_mcfd") => Some("flare_gas_rate_mcfd"),
        _ => None,
    }
}

/// Daily volume through every meter series of the sources, keyed by (series, day).
async fn metered_activity(
    conn: &mut PgConnection,
    sources: &[EmissionSource],
    from: NaiveDate,
    to: NaiveDate,
    settings: &DerivationSettings,
) -> Result<HashMap<(SeriesId, NaiveDate), Activity>, JobError> {
    let mut ids: Vec<SeriesId> = sources.iter().filter_map(|s| s.meter_series_id).collect();
    ids.sort_unstable();
    ids.dedup();
    let mut out = HashMap::new();
    if ids.is_empty() {
        return Ok(out);
    }
    let meters = series_by_id(conn, &ids).await?;
    let (usable, unusable): (Vec<_>, Vec<_>) = meters
        .into_iter()
        .partition(|m| meter_label(&m.metric).is_some());
    for m in &unusable {
        for day in days(from, to) {
            let method = format!("unsupported meter metric {}", m.metric);
            out.insert((m.series_id, day), Activity::unknown("Mcf", method));
        }
    }
    for (start, end) in chunks(from, to) {
        let plan = ReadPlan::new(start, end, settings.max_gap, settings.yesterday_settle);
        for meter in readings::read(conn, &usable, &plan).await? {
            for day in days(start, end) {
                out.insert(
                    (meter.series.series_id, day),
                    meter_day(&meter, day, settings),
                );
            }
        }
    }
    Ok(out)
}

fn meter_day(meter: &SeriesReadings, day: NaiveDate, settings: &DerivationSettings) -> Activity {
    let start_ms = day_start_ms(day);
    let label = meter_label(&meter.series.metric).unwrap_or("flare_gas_mcf");
    let readings = meter.for_day(start_ms, settings.max_gap_ms(), settings.settle_ms());
    if readings.is_empty() {
        return Activity::unknown("Mcf", "missing");
    }
    let input = WellDayInput {
        window: DayWindow {
            start_ms,
            end_ms: start_ms + DAY_MS,
        },
        series: vec![Series {
            metric: label.to_string(),
            source: device_source(meter.series.device_id),
            readings,
        }],
        tickets: Vec::new(),
        corrections: Vec::new(),
    };
    let config = DerivationConfig {
        max_gap_ms: settings.max_gap_ms(),
        yesterday_settle_ms: settings.settle_ms(),
        ..DerivationConfig::default()
    };
    let figure = derive_day(&input, &config).flared;
    Activity {
        value: figure.value,
        unit: "Mcf",
        method: figure.method.name().to_string(),
        complete: figure.is_complete(),
    }
}

/// The stored daily figure of the source's well for its kind.
fn well_activity(
    source: &EmissionSource,
    day: NaiveDate,
    rows: &HashMap<(WellId, NaiveDate, Quantity), DailyRow>,
) -> Activity {
    let quantity = match source.kind {
        SourceKind::Flare => Quantity::Flared,
        SourceKind::Vent => Quantity::Vented,
        _ => Quantity::Fuel,
    };
    let Some(well) = source.well_id else {
        return Activity::unknown("Mcf", "no meter and no well");
    };
    match rows.get(&(well, day, quantity)) {
        Some(r) => Activity {
            value: r.volume,
            unit: "Mcf",
            method: format!("well {} {}", quantity.name(), r.method.name()),
            complete: r.is_complete(),
        },
        None => Activity::unknown("Mcf", format!("well {} not derived", quantity.name())),
    }
}

/// Hours of `day` inside the source's service period.
fn hours_in_service(source: &EmissionSource, day: NaiveDate) -> Activity {
    let start = day_start_ms(day);
    let end = start + DAY_MS;
    let from = source
        .in_service_from
        .map_or(start, |t| t.timestamp_millis().max(start));
    let to = source
        .in_service_to
        .map_or(end, |t: DateTime<Utc>| t.timestamp_millis().min(end));
    Activity {
        value: Some((to - from).max(0) as f64 / 3_600_000.0),
        unit: "h",
        method: "population".to_string(),
        complete: true,
    }
}

/// The method input of a source for an activity (gas volume in Mcf, or hours).
fn source_input(source: &EmissionSource, activity: f64) -> SourceInput {
    let scf = activity * 1000.0;
    match source.kind {
        SourceKind::Flare => SourceInput::Flare(FlareInput {
            volume_scf: scf,
            gas: source.gas,
            efficiency: match (source.flare_unlit, source.flare_efficiency) {
                (true, _) => FlareEfficiency::Unlit,
                (false, Some(eta)) => FlareEfficiency::Measured(eta),
                (false, None) => FlareEfficiency::Default,
            },
            hhv_mmbtu_per_scf: source.hhv_mmbtu_per_scf,
        }),
        SourceKind::Vent => SourceInput::Vent(VentInput {
            volume_scf: scf,
            gas: source.gas,
        }),
        SourceKind::Combustion => SourceInput::Combustion(CombustionInput {
            fuel_scf: scf,
            basis: match source.hhv_mmbtu_per_scf {
                Some(hhv) => FuelBasis::Tier2 {
                    hhv_mmbtu_per_scf: hhv,
                },
                None => FuelBasis::Tier1,
            },
            unit: source
                .combustion_unit
                .unwrap_or(analytics::emissions::methods::CombustionUnit::Heater),
            ch4_kg_per_mmbtu: source.ch4_kg_per_mmbtu,
            subpart_w_facility: source.subpart_w_facility,
        }),
        SourceKind::EquipmentLeaks => SourceInput::EquipmentLeaks(LeakInput {
            region: source.region,
            equipment: source
                .components
                .iter()
                .map(|&(equipment, service, count)| EquipmentCount {
                    equipment,
                    service,
                    count,
                    hours: activity,
                })
                .collect(),
            gas: source.gas,
        }),
        SourceKind::Pneumatics => SourceInput::Pneumatics(PneumaticInput {
            devices: source
                .pneumatics
                .iter()
                .map(|&(bleed, count)| PneumaticCount {
                    bleed,
                    count,
                    hours: activity,
                })
                .collect(),
            gas: source.gas,
        }),
    }
}

fn emission_row(source: &EmissionSource, day: NaiveDate, activity: Activity) -> DailyEmission {
    let year = day.year();
    let (masses, calculation, error) = match activity.value {
        None => (None, String::new(), None),
        Some(value) => match u16::try_from(year)
            .map_err(|_| format!("reporting year {year} is out of range"))
            .and_then(|y| {
                source_emissions(y, &source_input(source, value)).map_err(|e| e.to_string())
            }) {
            Ok(s) => (Some(s.masses), s.calculation.to_string(), None),
            Err(e) => (None::<GasMasses>, String::new(), Some(e)),
        },
    };
    DailyEmission {
        source_id: source.id,
        day,
        activity: activity.value,
        activity_unit: activity.unit,
        activity_method: activity.method,
        complete: activity.complete && masses.is_some(),
        masses,
        reporting_year: year,
        calculation,
        error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meters_are_derived_as_counters_or_rates() {
        assert_eq!(meter_label("flare_gas_mcf"), Some("flare_gas_mcf"));
        assert_eq!(meter_label("fuel_gas_mcf"), Some("flare_gas_mcf"));
        assert_eq!(meter_label("gas_volume_total_mcf"), Some("flare_gas_mcf"));
        assert_eq!(
            meter_label("flare_gas_rate_mcfd"),
            Some("flare_gas_rate_mcfd")
        );
        assert_eq!(meter_label("gas_rate_mcfd"), Some("flare_gas_rate_mcfd"));
        assert_eq!(meter_label("tubing_pressure_psi"), None);
        assert_eq!(meter_label("gas_volume_yesterday_mcf"), None);
    }
}
