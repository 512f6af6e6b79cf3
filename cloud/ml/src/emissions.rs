//! Emissions prediction: daily CH4, CO2, N2O and CO2e of a well (or a site) for the next
//! 30 or 90 days, with intervals, and the methane intensity of the period against the
//! tenant's targets and the regulatory thresholds that apply.
//!
//! # Method
//!
//! Emissions are not learned: they follow from activity through the 40 CFR 98 methods of
//! `analytics::emissions`, the same functions the production job runs on measured days
//! (`production::derive_emissions` → `source_emissions`). What is uncertain is the
//! activity, so that is what is forecast:
//!
//! 1. **Gas and oil** by the decline model (`analytics::decline`): every Arps model is fitted
//!    to the well's weekly producing-day rates (days with production), the best by AICc is
//!    forecast day by day with its Monte Carlo P90/P50/P10, times the well's usual share of
//!    producing days: the median over its last [`FRACTION_BLOCKS`] 30-day blocks. A median,
//!    as the P50 is: most months have no down day, so a 30-day total is more often than not
//!    above the calendar-day mean (which carries the expected downtime, and which a fit of
//!    log rates pulls lower still), while a well down one day in five keeps its four in
//!    five. A history the decline model refuses (under 6 months, too few weeks) is forecast
//!    flat at its last 30 days, the interval from the spread of its weekly rates.
//! 2. **Flared and vented gas** as fractions of the gas produced, the median of the daily
//!    fractions over the model's window ([`FRACTION_WINDOW_DAYS`] untrained); the interval
//!    is the 10th and 90th percentiles of the fraction over the 30-day blocks of the last
//!    [`FRACTION_BLOCKS`] blocks (flaring comes in episodes: a constrained gathering line,
//!    a compressor down). A flaring episode running at the forecast date (days flaring
//!    more than [`EPISODE_EXCESS`] of the gas above the typical fraction, up to the last
//!    day) goes on while the survival of the episode durations pooled by training over
//!    the tenant's wells says it more likely than not still runs.
//! 3. **Fuel gas** at its daily median over the fraction window (a heater or an engine burns about
//!    the same whatever the well makes), the interval again from 30-day blocks.
//! 4. **Equipment leaks and pneumatics** from the component and device counts, 24 hours in
//!    service a day (Equation W-32A and W-1): constant, no interval.
//!
//! Every method is linear in its activity, so the masses of one Mcf flared, vented or burnt
//! and of one day of the equipment are computed once per reporting year with
//! `source_emissions` and scaled. The low and high ends take the low (high) end of every
//! activity together: the masses are monotone in each, so the interval holds at least
//! the joint P90–P10 range of the inputs (comonotone, on the wide side).
//!
//! **Training** ([`fit`], per tenant, on its training wells' own past only): the pooled
//! episode durations; the fraction window and a decline anchor ([`FRACTION_WINDOWS`] ×
//! [`ANCHOR_WINDOWS`]) chosen by the lowest CO2e MAPE of a 30-day backtest (every well
//! forecast from 30 days before the forecast date against its measured days); and the
//! **interval calibration**: the end-to-end intervals above covered the truth of a 30-day
//! total only about 64 % of the time, not the 80 % their P10–P90 ends claim, so a trained
//! model replaces each mass's interval by its P50 times the 10th and 90th percentiles of
//! truth / P50 over the backtests of its block of days ([`CALIBRATION_BLOCKS`]: days 0–30
//! backtested from 30 days back, days 30–90 from 90 days back) — a split-conformal
//! calibration whose nominal coverage is [`NOMINAL_COVERAGE`] for a block's total. A day's
//! mass interval is then that of its block's total, spread evenly.
//!
//! Methane intensity of a horizon: kg CH4 per BOE and % of the sales gas's methane (the
//! `analytics::emissions::intensity` definitions; gas sold = produced − flared − vented −
//! fuel), and % of the methane in the gas produced. Compared with the tenant's targets and
//! with [`THRESHOLDS`].
//!
//! *Invariants:* no I/O; masses are never negative; `low ≤ p50 ≤ high` on every day and
//! total; a day's figures are the sum of its sources.

use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use analytics::decline::{
    self, DeclineError, EconomicLimits, FitOptions, ForecastOptions, History,
};
use analytics::emissions::factors::{Equipment, FactorId, Region, Service, factor};
use analytics::emissions::gwp::{GwpSet, GwpValues, co2e};
use analytics::emissions::intensity::{IntensityParams, ProductionVolumes, intensities};
use analytics::emissions::inventory::{SourceInput, source_emissions};
use analytics::emissions::methods::{
    BleedType, CombustionInput, CombustionUnit, EquipmentCount, FlareEfficiency, FlareInput,
    FuelBasis, LeakInput, PneumaticCount, PneumaticInput, VentInput,
};
use analytics::emissions::{EmissionsError, GasComposition, GasMasses};

/// Stamped on every forecast: the method and its version.
pub const MODEL_VERSION: &str = "emissions-decline-subpart-w/2";
/// Days of recent history the flared, vented and fuel figures are estimated from, by
/// default (a trained model chooses among [`FRACTION_WINDOWS`]).
pub const FRACTION_WINDOW_DAYS: u32 = 90;
/// The fraction windows a training compares by backtest.
pub const FRACTION_WINDOWS: [u32; 4] = [30, 60, 90, 180];
/// The decline anchors a training compares by backtest (days; 0: none).
pub const ANCHOR_WINDOWS: [u32; 5] = [0, 14, 28, 42, 56];
/// A day flaring more than this share of its gas above the well's typical fraction is a
/// flaring-episode day (a gathering line or compressor down, not the routine flare).
pub const EPISODE_EXCESS: f64 = 0.05;
/// Longest episode duration counted, days (longer ones count as this long).
pub const MAX_EPISODE_DAYS: usize = 60;
/// Nominal coverage of a calibrated interval (its ends are the 10th and 90th percentiles).
pub const NOMINAL_COVERAGE: f64 = 0.8;
/// 30-day blocks of history whose spread gives the intervals of those figures.
pub const FRACTION_BLOCKS: i64 = 6;
/// Forecast horizons, days.
pub const HORIZONS: [u32; 2] = [30, 90];
/// Longest horizon accepted.
pub const MAX_HORIZON_DAYS: u32 = 366;
/// Monte Carlo draws of the decline forecast.
const DRAWS: usize = 200;

/// One day of a well's production, as stored (`None`: unknown).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ProductionDay {
    /// UTC day.
    pub day: NaiveDate,
    /// Oil, bbl.
    pub oil_bbl: Option<f64>,
    /// Gas produced, Mcf.
    pub gas_mcf: Option<f64>,
    /// Gas flared, Mcf.
    pub flared_mcf: Option<f64>,
    /// Gas vented, Mcf.
    pub vented_mcf: Option<f64>,
    /// Fuel gas burnt on site, Mcf.
    pub fuel_mcf: Option<f64>,
}

/// The emission sources of a well (or a site), as the registry describes them.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceSetup {
    /// Composition of the produced gas (flared, vented, leaked).
    pub gas: GasComposition,
    /// Flare combustion efficiency.
    pub flare_efficiency: FlareEfficiency,
    /// Measured HHV of the flared and burnt gas, MMBtu/scf (`None`: defaults).
    pub hhv_mmbtu_per_scf: Option<f64>,
    /// Unit burning the fuel gas.
    pub fuel_unit: CombustionUnit,
    /// Site-specific CH4 factor of the fuel unit, kg/MMBtu.
    pub fuel_ch4_kg_per_mmbtu: Option<f64>,
    /// True at a Subpart W facility.
    pub subpart_w_facility: bool,
    /// Region of the Table W-1A / W-1 factors.
    pub region: Region,
    /// Component or major-equipment counts.
    pub components: Vec<(Equipment, Service, u32)>,
    /// Pneumatic devices by bleed type.
    pub pneumatics: Vec<(BleedType, u32)>,
}

/// What a forecast is asked for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ForecastRequest {
    /// First forecast day (the day after the last history day used).
    pub start: NaiveDate,
    /// Days forecast (1 to [`MAX_HORIZON_DAYS`]).
    pub horizon_days: u32,
    /// GWP set of the CO2e figures.
    pub gwp: GwpSet,
    /// Seed of the decline Monte Carlo (same seed, same forecast).
    pub seed: u64,
}

/// A value with its interval (`low ≤ p50 ≤ high`).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Band {
    /// Low end (P90 of the inputs).
    pub low: f64,
    /// Median.
    pub p50: f64,
    /// High end (P10 of the inputs).
    pub high: f64,
}

impl Band {
    fn flat(v: f64) -> Band {
        Band {
            low: v,
            p50: v,
            high: v,
        }
    }

    fn mul(self, other: Band) -> Band {
        Band {
            low: self.low * other.low,
            p50: self.p50 * other.p50,
            high: self.high * other.high,
        }
    }

    fn add(self, other: Band) -> Band {
        Band {
            low: self.low + other.low,
            p50: self.p50 + other.p50,
            high: self.high + other.high,
        }
    }
}

/// Masses with their intervals, kg.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct MassBands {
    /// CH4.
    pub ch4_kg: Band,
    /// CO2.
    pub co2_kg: Band,
    /// N2O.
    pub n2o_kg: Band,
    /// CO2e under the request's GWP set.
    pub co2e_kg: Band,
}

impl MassBands {
    fn add(self, o: MassBands) -> MassBands {
        MassBands {
            ch4_kg: self.ch4_kg.add(o.ch4_kg),
            co2_kg: self.co2_kg.add(o.co2_kg),
            n2o_kg: self.n2o_kg.add(o.n2o_kg),
            co2e_kg: self.co2e_kg.add(o.co2e_kg),
        }
    }
}

/// Activity forecast of one day.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ActivityDay {
    /// Oil, bbl.
    pub oil_bbl: Band,
    /// Gas produced, Mcf.
    pub gas_mcf: Band,
    /// Gas flared, Mcf.
    pub flared_mcf: Band,
    /// Gas vented, Mcf.
    pub vented_mcf: Band,
    /// Fuel gas, Mcf.
    pub fuel_mcf: Band,
}

impl ActivityDay {
    fn add(self, o: ActivityDay) -> ActivityDay {
        ActivityDay {
            oil_bbl: self.oil_bbl.add(o.oil_bbl),
            gas_mcf: self.gas_mcf.add(o.gas_mcf),
            flared_mcf: self.flared_mcf.add(o.flared_mcf),
            vented_mcf: self.vented_mcf.add(o.vented_mcf),
            fuel_mcf: self.fuel_mcf.add(o.fuel_mcf),
        }
    }
}

/// One forecast day.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ForecastDay {
    /// UTC day.
    pub day: NaiveDate,
    /// Activity.
    pub activity: ActivityDay,
    /// Emissions.
    pub masses: MassBands,
}

/// How a production stream was forecast.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProductionMethod {
    /// Arps decline (the model kind's name).
    Decline(&'static str),
    /// Flat at the last 30 days (the decline model refused the history).
    Flat,
    /// No production in the history.
    None,
}

impl ProductionMethod {
    /// Stable name.
    pub fn name(self) -> &'static str {
        match self {
            ProductionMethod::Decline(kind) => kind,
            ProductionMethod::Flat => "flat_last_30_days",
            ProductionMethod::None => "no_production",
        }
    }
}

/// A daily emissions forecast of a well or a site.
#[derive(Debug, Clone, PartialEq)]
pub struct EmissionsForecast {
    /// Days, in order.
    pub days: Vec<ForecastDay>,
    /// GWPs of the CO2e figures.
    pub gwp: &'static GwpValues,
    /// How gas was forecast (for a site: the first well's; see [`aggregate`]).
    pub gas_method: ProductionMethod,
    /// How oil was forecast.
    pub oil_method: ProductionMethod,
}

impl EmissionsForecast {
    /// Totals of the first `days` days (all when longer than the forecast).
    pub fn total(&self, days: usize) -> (ActivityDay, MassBands) {
        self.days.iter().take(days).fold(
            (ActivityDay::default(), MassBands::default()),
            |(a, m), d| (a.add(d.activity), m.add(d.masses)),
        )
    }
}

/// Errors of the forecast.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ForecastError {
    /// The horizon is out of range.
    #[error("horizon of {0} days: must be between 1 and {MAX_HORIZON_DAYS}")]
    Horizon(u32),
    /// An emission method refused the sources (e.g. no factor for a forecast year).
    #[error(transparent)]
    Emissions(#[from] EmissionsError),
    /// The history holds a value that is not a finite non-negative number.
    #[error("{quantity} on {day} is {value}: volumes must be finite and non-negative")]
    BadVolume {
        /// Which figure.
        quantity: &'static str,
        /// Which day.
        day: NaiveDate,
        /// The value.
        value: f64,
    },
    /// Forecasts of different days or GWP sets cannot be added.
    #[error("forecasts to aggregate cover different days or GWP sets")]
    Mismatch,
}

/// Masses of one unit of each activity in one reporting year. A gas source's method may
/// refuse the year (no default factor): that is an error only for a day that has some of
/// its activity, so a well that never flares needs no flare factor.
#[derive(Debug, Clone, PartialEq)]
struct UnitMasses {
    flare_per_mcf: Result<GasMasses, EmissionsError>,
    vent_per_mcf: Result<GasMasses, EmissionsError>,
    fuel_per_mcf: Result<GasMasses, EmissionsError>,
    equipment_per_day: GasMasses,
}

fn unit_masses(year: u16, s: &SourceSetup) -> Result<UnitMasses, EmissionsError> {
    let scf = 1000.0;
    let flare = source_emissions(
        year,
        &SourceInput::Flare(FlareInput {
            volume_scf: scf,
            gas: s.gas,
            efficiency: s.flare_efficiency,
            hhv_mmbtu_per_scf: s.hhv_mmbtu_per_scf,
        }),
    );
    let vent = source_emissions(
        year,
        &SourceInput::Vent(VentInput {
            volume_scf: scf,
            gas: s.gas,
        }),
    );
    let fuel = source_emissions(
        year,
        &SourceInput::Combustion(CombustionInput {
            fuel_scf: scf,
            basis: match s.hhv_mmbtu_per_scf {
                Some(hhv) => FuelBasis::Tier2 {
                    hhv_mmbtu_per_scf: hhv,
                },
                None => FuelBasis::Tier1,
            },
            unit: s.fuel_unit,
            ch4_kg_per_mmbtu: s.fuel_ch4_kg_per_mmbtu,
            subpart_w_facility: s.subpart_w_facility,
        }),
    );
    let mut equipment = GasMasses::default();
    if !s.components.is_empty() {
        equipment += source_emissions(
            year,
            &SourceInput::EquipmentLeaks(LeakInput {
                region: s.region,
                equipment: s
                    .components
                    .iter()
                    .map(|&(equipment, service, count)| EquipmentCount {
                        equipment,
                        service,
                        count,
                        hours: 24.0,
                    })
                    .collect(),
                gas: s.gas,
            }),
        )?
        .masses;
    }
    if !s.pneumatics.is_empty() {
        equipment += source_emissions(
            year,
            &SourceInput::Pneumatics(PneumaticInput {
                devices: s
                    .pneumatics
                    .iter()
                    .map(|&(bleed, count)| PneumaticCount {
                        bleed,
                        count,
                        hours: 24.0,
                    })
                    .collect(),
                gas: s.gas,
            }),
        )?
        .masses;
    }
    Ok(UnitMasses {
        flare_per_mcf: flare.map(|e| e.masses),
        vent_per_mcf: vent.map(|e| e.masses),
        fuel_per_mcf: fuel.map(|e| e.masses),
        equipment_per_day: equipment,
    })
}

/// Unit masses per reporting year, computed once per year met.
#[derive(Debug, Default)]
struct UnitCache {
    years: Vec<(u16, UnitMasses)>,
}

impl UnitCache {
    fn get(&mut self, year: i32, s: &SourceSetup) -> Result<UnitMasses, EmissionsError> {
        let year = u16::try_from(year).map_err(|_| EmissionsError::InvalidParameter {
            name: "reporting year",
            value: f64::from(year),
            reason: "must be between 0 and 65535",
        })?;
        if let Some((_, u)) = self.years.iter().find(|(y, _)| *y == year) {
            return Ok(u.clone());
        }
        let u = unit_masses(year, s)?;
        self.years.push((year, u.clone()));
        Ok(u)
    }
}

/// Masses of one day of activity, computed with the same methods as measured days.
pub fn day_masses(
    day: NaiveDate,
    flared_mcf: f64,
    vented_mcf: f64,
    fuel_mcf: f64,
    setup: &SourceSetup,
) -> Result<GasMasses, EmissionsError> {
    let u = unit_masses(reporting_year(day)?, setup)?;
    combine(&u, flared_mcf, vented_mcf, fuel_mcf)
}

fn reporting_year(day: NaiveDate) -> Result<u16, EmissionsError> {
    u16::try_from(day.year()).map_err(|_| EmissionsError::InvalidParameter {
        name: "reporting year",
        value: f64::from(day.year()),
        reason: "must be between 0 and 65535",
    })
}

fn scaled(m: GasMasses, k: f64) -> GasMasses {
    GasMasses {
        co2_kg: m.co2_kg * k,
        ch4_kg: m.ch4_kg * k,
        n2o_kg: m.n2o_kg * k,
    }
}

fn combine(
    u: &UnitMasses,
    flared: f64,
    vented: f64,
    fuel: f64,
) -> Result<GasMasses, EmissionsError> {
    let part = |per: &Result<GasMasses, EmissionsError>, v: f64| {
        if v > 0.0 {
            per.clone().map(|m| scaled(m, v))
        } else {
            Ok(GasMasses::default())
        }
    };
    Ok(part(&u.flare_per_mcf, flared)?
        + part(&u.vent_per_mcf, vented)?
        + part(&u.fuel_per_mcf, fuel)?
        + u.equipment_per_day)
}

/// A production stream's daily forecast over the horizon, with how it was made.
fn forecast_stream(
    history: &[(NaiveDate, f64)],
    start: NaiveDate,
    horizon: u32,
    seed: u64,
    anchor_days: u32,
) -> (Vec<Band>, ProductionMethod) {
    let n = horizon as usize;
    if history.iter().all(|&(_, v)| v <= 0.0) {
        return (vec![Band::default(); n], ProductionMethod::None);
    }
    match decline_stream(history, start, horizon, seed, anchor_days) {
        Ok((bands, kind)) => (bands, ProductionMethod::Decline(kind)),
        Err(_) => (vec![flat_band(history, start); n], ProductionMethod::Flat),
    }
}

/// Weekly mean rates `(days from the first day, rate)`, zero weeks skipped: per calendar
/// day, or per producing day (days with production) when `producing` is set.
fn weekly_rates(
    history: &[(NaiveDate, f64)],
    start: NaiveDate,
    producing: bool,
) -> Vec<(f64, f64)> {
    let Some(&(first, _)) = history.first() else {
        return Vec::new();
    };
    let weeks = ((start - first).num_days().max(0) / 7) as usize;
    // Whole weeks ending at `start`; the oldest partial week is dropped.
    let origin = start - chrono::Days::new(7 * weeks as u64);
    // (sum, days known, days producing)
    let mut sums = vec![(0.0, 0u32, 0u32); weeks];
    for &(day, v) in history {
        let offset = (day - origin).num_days();
        if offset < 0 || day >= start {
            continue;
        }
        let w = (offset / 7) as usize;
        sums[w].0 += v;
        sums[w].1 += 1;
        sums[w].2 += u32::from(v > 0.0);
    }
    sums.iter()
        .enumerate()
        .filter(|(_, (s, n, _))| *n >= 4 && *s > 0.0)
        .map(|(w, &(s, n, p))| {
            (
                w as f64 * 7.0 + 3.5,
                s / f64::from(if producing { p } else { n }),
            )
        })
        .collect()
}

fn decline_stream(
    history: &[(NaiveDate, f64)],
    start: NaiveDate,
    horizon: u32,
    seed: u64,
    anchor_days: u32,
) -> Result<(Vec<Band>, &'static str), DeclineError> {
    let weekly = weekly_rates(history, start, true);
    let origin = history.first().map_or(start, |&(first, _)| {
        let weeks = (start - first).num_days().max(0) / 7;
        start - chrono::Days::new(7 * weeks as u64)
    });
    let first_t = weekly.first().map_or(0.0, |p| p.0);
    // The decline origin is the first weekly point.
    let points: Vec<(f64, f64)> = weekly.iter().map(|&(t, q)| (t - first_t, q)).collect();
    let h = History::new(&points)?;
    let fits = decline::fit_all(&h, &FitOptions::default())?;
    let weeks_span = weekly.last().map_or(0.0, |p| p.0) + 3.5;
    let t0 = weeks_span - first_t;
    let forecast = decline::monte_carlo(
        fits.best(),
        t0,
        &ForecastOptions {
            draws: DRAWS,
            seed,
            step: 1.0,
            steps: horizon as usize,
            limits: EconomicLimits::time(t0 + 3650.0 * 10.0),
        },
    )?;
    // The fit is of producing days: a forecast day produces for the well's usual share
    // of days.
    let mut scale = uptime(history, start);
    // Anchored: the decline's shape from the level the well produced at lately (its
    // producing-day mean over the last `anchor_days` against the fit over the same days),
    // so a recent step (a choke, a fix) carries into the forecast.
    if anchor_days > 0 {
        let from = start - chrono::Days::new(u64::from(anchor_days));
        let (mut actual, mut fitted, mut n) = (0.0, 0.0, 0u32);
        for &(day, v) in history
            .iter()
            .filter(|&&(d, v)| d >= from && d < start && v > 0.0)
        {
            let t = (day - origin).num_days() as f64 + 0.5 - first_t;
            actual += v;
            fitted += fits.best().model().rate(t.max(0.0));
            n += 1;
        }
        if n * 2 >= anchor_days && fitted > 0.0 && actual > 0.0 {
            scale *= actual / fitted;
        }
    }
    // Day k covers [t0 + k, t0 + k + 1]: its volume is the cumulative over it.
    let bands = forecast
        .points
        .windows(2)
        .map(|w| {
            let d = |a: f64, b: f64| (b - a).max(0.0);
            let p50 = d(w[0].cumulative.p50, w[1].cumulative.p50);
            let low = d(w[0].cumulative.p90, w[1].cumulative.p90).min(p50);
            let high = d(w[0].cumulative.p10, w[1].cumulative.p10).max(p50);
            Band {
                low: low * scale,
                p50: p50 * scale,
                high: high * scale,
            }
        })
        .collect();
    Ok((bands, fits.best().kind().name()))
}

/// Share of days a well produces: the median over the last [`FRACTION_BLOCKS`] 30-day
/// blocks (of at least 15 known days) of the share of days with production, 1 without
/// any. A median, as the P50 is: most months have no down day, so a 30-day total is more
/// often than not above the calendar-day mean, which carries the expected downtime.
fn uptime(history: &[(NaiveDate, f64)], start: NaiveDate) -> f64 {
    let mut shares: Vec<f64> = (1..=FRACTION_BLOCKS)
        .filter_map(|k| {
            let from = start - chrono::Days::new(30 * k as u64);
            let to = from + chrono::Days::new(30);
            let (mut known, mut producing) = (0u32, 0u32);
            for &(_, v) in history.iter().filter(|&&(d, _)| d >= from && d < to) {
                known += 1;
                producing += u32::from(v > 0.0);
            }
            (known >= 15).then(|| f64::from(producing) / f64::from(known))
        })
        .collect();
    if shares.is_empty() {
        return 1.0;
    }
    shares.sort_by(f64::total_cmp);
    quantile(&shares, 0.5)
}

/// The last 30 days' mean, with the 10th–90th percentile of the weekly rates around it.
fn flat_band(history: &[(NaiveDate, f64)], start: NaiveDate) -> Band {
    let from = start - chrono::Days::new(30);
    let recent: Vec<f64> = history
        .iter()
        .filter(|(d, _)| *d >= from && *d < start)
        .map(|&(_, v)| v)
        .collect();
    let mean = if recent.is_empty() {
        0.0
    } else {
        recent.iter().sum::<f64>() / recent.len() as f64
    };
    let mut weekly: Vec<f64> = weekly_rates(history, start, false)
        .iter()
        .map(|p| p.1)
        .collect();
    if weekly.len() < 2 {
        return Band::flat(mean);
    }
    weekly.sort_by(f64::total_cmp);
    let median = quantile(&weekly, 0.5);
    let rel = |q: f64| if median > 0.0 { q / median } else { 1.0 };
    Band {
        low: mean * rel(quantile(&weekly, 0.1)).min(1.0),
        p50: mean,
        high: mean * rel(quantile(&weekly, 0.9)).max(1.0),
    }
}

/// Linear-interpolated quantile of sorted values.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let pos = q * (sorted.len() - 1) as f64;
    let i = pos.floor() as usize;
    let j = (i + 1).min(sorted.len() - 1);
    sorted[i] + (sorted[j] - sorted[i]) * (pos - i as f64)
}

type Figure = fn(&ProductionDay) -> Option<f64>;

/// `Σ num / Σ den` over the days in `[from, to)` where both are known; `den = None`: the
/// per-day mean of `num`. `None` when nothing is known.
fn ratio(
    days: &[ProductionDay],
    from: NaiveDate,
    to: NaiveDate,
    num: Figure,
    den: Option<Figure>,
) -> Option<f64> {
    let (mut n, mut d) = (0.0, 0.0);
    for day in days.iter().filter(|x| x.day >= from && x.day < to) {
        let Some(v) = num(day) else { continue };
        let g = match den {
            Some(f) => match f(day) {
                Some(g) => g,
                None => continue,
            },
            None => 1.0,
        };
        n += v;
        d += g;
    }
    (d > 0.0).then(|| n / d)
}

/// The median of the daily ratios over the `window_days` before `start` (a
/// median, as a P50 is: a flaring episode widens the interval, it does not move the
/// typical day), its interval the 10th–90th percentiles of the ratio of sums over the last
/// [`FRACTION_BLOCKS`] 30-day blocks.
fn ratio_band(
    days: &[ProductionDay],
    start: NaiveDate,
    window_days: u32,
    num: Figure,
    den: Option<Figure>,
) -> Band {
    let window_from = start - chrono::Days::new(u64::from(window_days));
    let mut daily: Vec<f64> = days
        .iter()
        .filter(|x| x.day >= window_from && x.day < start)
        .filter_map(|x| {
            let v = num(x)?;
            match den {
                Some(f) => f(x).filter(|g| *g > 0.0).map(|g| v / g),
                None => Some(v),
            }
        })
        .collect();
    daily.sort_by(f64::total_cmp);
    let p50 = quantile(&daily, 0.5);
    let mut blocks: Vec<f64> = (1..=FRACTION_BLOCKS)
        .filter_map(|k| {
            let from = start - chrono::Days::new(30 * k as u64);
            ratio(days, from, from + chrono::Days::new(30), num, den)
        })
        .collect();
    if blocks.len() < 2 {
        return Band::flat(p50);
    }
    blocks.sort_by(f64::total_cmp);
    Band {
        low: quantile(&blocks, 0.1).min(p50),
        p50,
        high: quantile(&blocks, 0.9).max(p50),
    }
}

fn check_history(days: &[ProductionDay]) -> Result<(), ForecastError> {
    for d in days {
        for (quantity, v) in [
            ("oil", d.oil_bbl),
            ("gas", d.gas_mcf),
            ("flared", d.flared_mcf),
            ("vented", d.vented_mcf),
            ("fuel", d.fuel_mcf),
        ] {
            if let Some(value) = v
                && !(value.is_finite() && value >= 0.0)
            {
                return Err(ForecastError::BadVolume {
                    quantity,
                    day: d.day,
                    value,
                });
            }
        }
    }
    Ok(())
}

/// Forecasts a well's daily emissions from its production history (days before
/// `request.start`, in any order; later days are ignored) and its sources, with the
/// untrained [`EmissionsModel::default`] (no pooled episode durations, intervals from the
/// well's own 30-day blocks, uncalibrated).
pub fn forecast_well(
    history: &[ProductionDay],
    setup: &SourceSetup,
    request: &ForecastRequest,
) -> Result<EmissionsForecast, ForecastError> {
    forecast_well_with(history, setup, request, &EmissionsModel::default())
}

/// [`forecast_well`] with a model's parameters: its fraction window, the episode
/// durations that continue a flaring episode running at the forecast date, and the
/// calibration of its intervals.
pub fn forecast_well_with(
    history: &[ProductionDay],
    setup: &SourceSetup,
    request: &ForecastRequest,
    model: &EmissionsModel,
) -> Result<EmissionsForecast, ForecastError> {
    if !(1..=MAX_HORIZON_DAYS).contains(&request.horizon_days) {
        return Err(ForecastError::Horizon(request.horizon_days));
    }
    check_history(history)?;
    let mut days: Vec<ProductionDay> = history
        .iter()
        .filter(|d| d.day < request.start)
        .copied()
        .collect();
    days.sort_by_key(|d| d.day);
    let stream = |f: Figure| -> Vec<(NaiveDate, f64)> {
        days.iter()
            .filter_map(|d| f(d).map(|v| (d.day, v)))
            .collect()
    };
    let (gas, gas_method) = forecast_stream(
        &stream(|d| d.gas_mcf),
        request.start,
        request.horizon_days,
        request.seed,
        model.anchor_days,
    );
    let (oil, oil_method) = forecast_stream(
        &stream(|d| d.oil_bbl),
        request.start,
        request.horizon_days,
        request.seed.wrapping_add(1),
        model.anchor_days,
    );
    let gas_of = |d: &ProductionDay| d.gas_mcf;
    let window = model.fraction_window_days;
    let flare_fraction = ratio_band(&days, request.start, window, |d| d.flared_mcf, Some(gas_of));
    let vent_fraction = ratio_band(&days, request.start, window, |d| d.vented_mcf, Some(gas_of));
    let fuel = ratio_band(&days, request.start, window, |d| d.fuel_mcf, None);
    let episodes = flare_episodes(
        &days,
        request.start,
        flare_fraction.p50,
        model.episode_excess,
    );
    // An episode running at the forecast date goes on for a while: each day's flared
    // fraction is the typical one plus the episode's excess while it more likely than not
    // still runs (the survival of the durations pooled by training: a median, as the P50
    // is; the interval spans it ending at once to running all along). An untrained model
    // has no durations (one well's few episodes are too few) and does not continue it.
    let durations = &model.episode_durations;
    let running = episodes
        .running
        .filter(|_| durations.iter().any(|&c| c > 0))
        .map(|(elapsed, fraction)| (elapsed, (fraction - flare_fraction.p50).max(0.0)));
    let mut cache = UnitCache::default();
    let gwp = request.gwp.values();
    let mut out = Vec::with_capacity(request.horizon_days as usize);
    for (k, (g, o)) in gas.iter().zip(&oil).enumerate() {
        let day = request.start + chrono::Days::new(k as u64);
        let u = cache.get(day.year(), setup)?;
        let mut flared = g.mul(flare_fraction);
        if let Some((elapsed, excess)) = running {
            let on = still_running(durations, elapsed, k as u32);
            flared = flared.add(g.mul(Band {
                low: 0.0,
                p50: if on >= 0.5 { excess } else { 0.0 },
                high: excess,
            }));
        }
        let activity = ActivityDay {
            oil_bbl: *o,
            gas_mcf: *g,
            flared_mcf: flared,
            vented_mcf: g.mul(vent_fraction),
            fuel_mcf: fuel,
        };
        let mut masses = masses_of(&u, &activity, request.gwp)?;
        if let Some(c) = &model.calibration {
            masses = c.apply(masses, k as u32);
        }
        out.push(ForecastDay {
            day,
            activity,
            masses,
        });
    }
    Ok(EmissionsForecast {
        days: out,
        gwp,
        gas_method,
        oil_method,
    })
}

fn masses_of(u: &UnitMasses, a: &ActivityDay, gwp: GwpSet) -> Result<MassBands, EmissionsError> {
    let at = |f: fn(&Band) -> f64| combine(u, f(&a.flared_mcf), f(&a.vented_mcf), f(&a.fuel_mcf));
    let (low, p50, high) = (at(|b| b.low)?, at(|b| b.p50)?, at(|b| b.high)?);
    let band = |f: fn(&GasMasses) -> f64| Band {
        low: f(&low),
        p50: f(&p50),
        high: f(&high),
    };
    Ok(MassBands {
        ch4_kg: band(|m| m.ch4_kg),
        co2_kg: band(|m| m.co2_kg),
        n2o_kg: band(|m| m.n2o_kg),
        co2e_kg: Band {
            low: co2e(&low, gwp).kg,
            p50: co2e(&p50, gwp).kg,
            high: co2e(&high, gwp).kg,
        },
    })
}

/// The forecast of a site: the sum of its wells' (and site-level sources') forecasts, day
/// by day. Intervals add end to end (comonotone: the wells of a site share a gathering
/// line, so their flaring episodes come together).
pub fn aggregate(forecasts: &[EmissionsForecast]) -> Result<EmissionsForecast, ForecastError> {
    let Some(first) = forecasts.first() else {
        return Err(ForecastError::Mismatch);
    };
    let mut days = first.days.clone();
    for f in &forecasts[1..] {
        if f.days.len() != days.len() || f.gwp.set != first.gwp.set {
            return Err(ForecastError::Mismatch);
        }
        for (a, b) in days.iter_mut().zip(&f.days) {
            if a.day != b.day {
                return Err(ForecastError::Mismatch);
            }
            a.activity = a.activity.add(b.activity);
            a.masses = a.masses.add(b.masses);
        }
    }
    Ok(EmissionsForecast {
        days,
        gwp: first.gwp,
        gas_method: first.gas_method,
        oil_method: first.oil_method,
    })
}

/// The parameters of the emissions forecast: what a training chooses per tenant, what a
/// registry stores (serde), and what [`forecast_well_with`] applies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmissionsModel {
    /// Days of history the typical flared, vented and fuel figures are the median of.
    pub fraction_window_days: u32,
    /// Days of recent production the decline forecast is anchored to (0: the fit as is).
    pub anchor_days: u32,
    /// Share of the gas above the typical fraction that makes a day an episode day.
    pub episode_excess: f64,
    /// Finished flaring episodes by duration in days (index = days, the last counts every
    /// longer one), pooled over the training wells; empty: a running episode is not
    /// continued.
    pub episode_durations: Vec<u32>,
    /// Interval calibration from the training wells' backtests (`None`: the intervals of
    /// the activities, uncalibrated).
    pub calibration: Option<Calibration>,
}

impl Default for EmissionsModel {
    fn default() -> Self {
        EmissionsModel {
            fraction_window_days: FRACTION_WINDOW_DAYS,
            anchor_days: 0,
            episode_excess: EPISODE_EXCESS,
            episode_durations: Vec::new(),
            calibration: None,
        }
    }
}

/// Ratios of the truth to the forecast P50 at the 10th and 90th percentiles of training
/// backtests, per block of forecast days: a day's interval is its P50 times them, so a
/// block's total has the coverage the backtests measured ([`NOMINAL_COVERAGE`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// Blocks in order of their first day; a day past the last block uses the last.
    pub blocks: Vec<CalibrationBlock>,
}

/// One block of forecast days `[from_day, to_day)` (0 = the first forecast day).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CalibrationBlock {
    /// First day of the block.
    pub from_day: u32,
    /// Day after its last.
    pub to_day: u32,
    /// CH4 `(low, high)` ratios to the P50.
    pub ch4: (f64, f64),
    /// CO2.
    pub co2: (f64, f64),
    /// N2O.
    pub n2o: (f64, f64),
    /// CO2e.
    pub co2e: (f64, f64),
    /// Backtests the ratios come from.
    pub backtests: usize,
    /// Share of those backtests inside the uncalibrated interval.
    pub uncalibrated_coverage: f64,
}

impl Calibration {
    fn apply(&self, m: MassBands, day: u32) -> MassBands {
        let Some(b) = self
            .blocks
            .iter()
            .find(|b| day < b.to_day)
            .or(self.blocks.last())
        else {
            return m;
        };
        let at = |band: Band, (lo, hi): (f64, f64)| Band {
            low: band.p50 * lo.min(1.0),
            p50: band.p50,
            high: band.p50 * hi.max(1.0),
        };
        MassBands {
            ch4_kg: at(m.ch4_kg, b.ch4),
            co2_kg: at(m.co2_kg, b.co2),
            n2o_kg: at(m.n2o_kg, b.n2o),
            co2e_kg: at(m.co2e_kg, b.co2e),
        }
    }
}

/// Flaring episodes of a history: finished ones' durations (calendar days) and the one
/// running at the end, if any (days it has run, its mean flared fraction).
#[derive(Debug, Clone, PartialEq, Default)]
struct Episodes {
    finished: Vec<u32>,
    running: Option<(u32, f64)>,
}

/// Days (before `start`, sorted) flaring more than `typical + excess` of their gas, in runs;
/// days without gas neither extend nor end a run. A run at the start of the history is
/// censored (its beginning is unknown) and not counted; a run whose last day is within
/// 3 days of `start` and is the last day with gas is running.
fn flare_episodes(days: &[ProductionDay], start: NaiveDate, typical: f64, excess: f64) -> Episodes {
    let mut out = Episodes::default();
    // (first day, last day, sum of fractions, days)
    let mut run: Option<(NaiveDate, NaiveDate, f64, u32)> = None;
    let mut seen_normal = false;
    let mut last_gas_day = None;
    for d in days.iter().filter(|d| d.day < start) {
        let (Some(g), Some(f)) = (d.gas_mcf, d.flared_mcf) else {
            continue;
        };
        if g <= 0.0 {
            continue;
        }
        last_gas_day = Some(d.day);
        let fraction = f / g;
        if fraction > typical + excess {
            run = Some(match run {
                Some((first, _, sum, n)) => (first, d.day, sum + fraction, n + 1),
                None => (d.day, d.day, fraction, 1),
            });
        } else {
            if let Some((first, last, _, _)) = run.take()
                && seen_normal
            {
                out.finished.push(((last - first).num_days() + 1) as u32);
            }
            seen_normal = true;
        }
    }
    if let (Some((first, last, sum, n)), Some(g)) = (run, last_gas_day)
        && seen_normal
        && last == g
        && (start - last).num_days() <= 3
    {
        out.running = Some(((start - first).num_days() as u32, sum / f64::from(n)));
    }
    out
}

fn duration_counts(durations: &[u32]) -> Vec<u32> {
    let mut counts = vec![0u32; MAX_EPISODE_DAYS + 1];
    for &d in durations {
        counts[(d as usize).min(MAX_EPISODE_DAYS)] += 1;
    }
    counts
}

/// Chance that an episode which has run `elapsed` days still runs on forecast day `k`
/// (its day `elapsed + k + 1`): the empirical survival of the durations, or, when no
/// episode as long has been seen, the scale-free prior `elapsed / (elapsed + k + 1)`
/// (an episode is as likely to be in the first as in the second half of its life).
fn still_running(counts: &[u32], elapsed: u32, k: u32) -> f64 {
    let tail = |from: usize| -> u32 { counts.iter().skip(from).sum() };
    let max = counts.len().saturating_sub(1);
    let (e, need) = (elapsed as usize, (elapsed + k + 1) as usize);
    let den = tail(e.min(max));
    if den == 0 || e >= max {
        return f64::from(elapsed) / f64::from(elapsed + k + 1);
    }
    f64::from(tail(need.min(max + 1))) / f64::from(den)
}

/// A training well: its history (days before the training's forecast date count) and
/// sources.
#[derive(Debug, Clone, Copy)]
pub struct TrainingWell<'a> {
    /// Production days.
    pub history: &'a [ProductionDay],
    /// Emission sources.
    pub setup: &'a SourceSetup,
}

/// A trained emissions model with what its training measured.
#[derive(Debug, Clone, PartialEq)]
pub struct EmissionsFit {
    /// The model.
    pub model: EmissionsModel,
    /// Backtest 30-day CO2e MAPE of every choice compared: `(anchor days, fraction window
    /// days, MAPE)`.
    pub windows: Vec<(u32, u32, f64)>,
    /// Wells backtested.
    pub wells: usize,
}

/// Measured CO2e, CH4, CO2 and N2O of the days `[from, to)`; `None` unless every day is
/// there with its dispositions.
fn measured(
    days: &[ProductionDay],
    from: NaiveDate,
    to: NaiveDate,
    setup: &SourceSetup,
    gwp: GwpSet,
    cache: &mut UnitCache,
) -> Result<Option<[f64; 4]>, ForecastError> {
    let mut out = [0.0; 4];
    let mut n = 0;
    for d in days.iter().filter(|d| d.day >= from && d.day < to) {
        let u = cache.get(d.day.year(), setup)?;
        let m = combine(
            &u,
            d.flared_mcf.unwrap_or(0.0),
            d.vented_mcf.unwrap_or(0.0),
            d.fuel_mcf.unwrap_or(0.0),
        )?;
        out[0] += co2e(&m, gwp).kg;
        out[1] += m.ch4_kg;
        out[2] += m.co2_kg;
        out[3] += m.n2o_kg;
        n += 1;
    }
    Ok((n == (to - from).num_days()).then_some(out))
}

/// Predicted and measured totals of one backtest block: `[co2e, ch4, co2, n2o]` as
/// `(low, p50, high)` and the truth.
type Backtest = ([(f64, f64, f64); 4], [f64; 4]);

fn backtest(
    w: &TrainingWell<'_>,
    cut: NaiveDate,
    block: (u32, u32),
    model: &EmissionsModel,
    gwp: GwpSet,
    seed: u64,
) -> Result<Option<Backtest>, ForecastError> {
    let before: Vec<ProductionDay> = w.history.iter().filter(|d| d.day < cut).copied().collect();
    if before.len() < 60 {
        return Ok(None);
    }
    let from = cut + chrono::Days::new(u64::from(block.0));
    let to = cut + chrono::Days::new(u64::from(block.1));
    let Some(truth) = measured(w.history, from, to, w.setup, gwp, &mut UnitCache::default())?
    else {
        return Ok(None);
    };
    let request = ForecastRequest {
        start: cut,
        horizon_days: block.1,
        gwp,
        seed,
    };
    let f = forecast_well_with(&before, w.setup, &request, model)?;
    let m = f.days[block.0 as usize..]
        .iter()
        .fold(MassBands::default(), |a, d| a.add(d.masses));
    let t = |b: Band| (b.low, b.p50, b.high);
    Ok(Some((
        [t(m.co2e_kg), t(m.ch4_kg), t(m.co2_kg), t(m.n2o_kg)],
        truth,
    )))
}

/// Blocks calibrated by [`fit`]: the first 30 days, then days 30–90.
pub const CALIBRATION_BLOCKS: [(u32, u32); 2] = [(0, 30), (30, 90)];

/// Trains the emissions model of a tenant on its training wells, from their own past only:
///
/// 1. Episode durations: every finished flaring episode of every well before `start`,
///    pooled (one well sees a few a year; the tenant's wells share gathering lines and
///    compressors).
/// 2. Decline anchor and fraction window: each pair of [`ANCHOR_WINDOWS`] ×
///    [`FRACTION_WINDOWS`] backtested — every well forecast from
///    30 days before `start` against its measured last 30 days — the lowest CO2e MAPE wins.
/// 3. Calibration: with that window, each block of [`CALIBRATION_BLOCKS`] backtested from
///    as many days before `start` as the block ends; the 10th and 90th percentiles of
///    truth / P50 become the block's interval ratios.
pub fn fit(
    wells: &[TrainingWell<'_>],
    start: NaiveDate,
    gwp: GwpSet,
    seed: u64,
) -> Result<EmissionsFit, ForecastError> {
    let mut finished = Vec::new();
    for w in wells {
        check_history(w.history)?;
        let mut days: Vec<ProductionDay> = w
            .history
            .iter()
            .filter(|d| d.day < start)
            .copied()
            .collect();
        days.sort_by_key(|d| d.day);
        let Some(first) = days.first().map(|d| d.day) else {
            continue;
        };
        let span = (start - first).num_days().max(1) as u32;
        let typical = ratio_band(&days, start, span, |d| d.flared_mcf, Some(|d| d.gas_mcf)).p50;
        finished.extend(flare_episodes(&days, start, typical, EPISODE_EXCESS).finished);
    }
    let base = EmissionsModel {
        episode_durations: duration_counts(&finished),
        ..EmissionsModel::default()
    };
    let mut windows = Vec::new();
    let mut best: Option<(u32, u32, f64)> = None;
    let cut30 = start - chrono::Days::new(30);
    let mut used = 0;
    for (anchor, window) in ANCHOR_WINDOWS
        .iter()
        .flat_map(|&a| FRACTION_WINDOWS.iter().map(move |&w| (a, w)))
    {
        let model = EmissionsModel {
            fraction_window_days: window,
            anchor_days: anchor,
            ..base.clone()
        };
        let mut apes = Vec::new();
        for w in wells {
            if let Some((p, t)) = backtest(w, cut30, (0, 30), &model, gwp, seed)?
                && t[0] > 0.0
            {
                apes.push((p[0].1 - t[0]).abs() / t[0]);
            }
        }
        used = used.max(apes.len());
        if apes.is_empty() {
            continue;
        }
        let mape = apes.iter().sum::<f64>() / apes.len() as f64;
        windows.push((anchor, window, mape));
        if best.is_none_or(|(_, _, m)| mape < m) {
            best = Some((anchor, window, mape));
        }
    }
    let model = EmissionsModel {
        anchor_days: best.map_or(0, |b| b.0),
        fraction_window_days: best.map_or(FRACTION_WINDOW_DAYS, |b| b.1),
        ..base
    };
    let mut blocks = Vec::new();
    for (from, to) in CALIBRATION_BLOCKS {
        let cut = start - chrono::Days::new(u64::from(to));
        let mut runs = Vec::new();
        for w in wells {
            if let Some(r) = backtest(w, cut, (from, to), &model, gwp, seed)? {
                runs.push(r);
            }
        }
        if runs.len() < 10 {
            continue;
        }
        let ratios = |i: usize| {
            let mut r: Vec<f64> = runs
                .iter()
                .filter(|(p, _)| p[i].1 > 0.0)
                .map(|(p, t)| t[i] / p[i].1)
                .collect();
            r.sort_by(f64::total_cmp);
            if r.is_empty() {
                (1.0, 1.0)
            } else {
                let tail = (1.0 - NOMINAL_COVERAGE) / 2.0;
                (
                    quantile(&r, tail).min(1.0),
                    quantile(&r, 1.0 - tail).max(1.0),
                )
            }
        };
        let inside = runs
            .iter()
            .filter(|(p, t)| (p[0].0..=p[0].2).contains(&t[0]))
            .count();
        blocks.push(CalibrationBlock {
            from_day: from,
            to_day: to,
            co2e: ratios(0),
            ch4: ratios(1),
            co2: ratios(2),
            n2o: ratios(3),
            backtests: runs.len(),
            uncalibrated_coverage: inside as f64 / runs.len() as f64,
        });
    }
    Ok(EmissionsFit {
        model: EmissionsModel {
            calibration: (!blocks.is_empty()).then_some(Calibration { blocks }),
            ..model
        },
        windows,
        wells: used,
    })
}

/// Held-out measure of an emissions model: every held-out well forecast from 30 days
/// before the forecast date against its measured last 30 days.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HeldOut {
    /// Wells measured.
    pub wells: usize,
    /// 30-day CO2e MAPE, %.
    pub mape_30d_percent: f64,
    /// Share of the wells whose 30-day CO2e falls inside the interval.
    pub coverage_30d: f64,
}

/// An emissions model trained for a tenant and how it compares with the one in use.
#[derive(Debug, Clone, PartialEq)]
pub struct EmissionsOutcome {
    /// The new model and what its training measured.
    pub fit: EmissionsFit,
    /// Its measure on the held-out wells.
    pub metrics: HeldOut,
    /// The model in use's on the same wells (the untrained defaults when none is).
    pub active_metrics: HeldOut,
    /// Whether it replaces the active model.
    pub promote: bool,
    /// Why (or why not), in words.
    pub reason: String,
    /// Wells trained on and held out.
    pub wells: (usize, usize),
    /// First and last day of the training data.
    pub window: (NaiveDate, NaiveDate),
    /// Days of production trained on.
    pub rows: usize,
    /// SHA-256 (hex) of the training data.
    pub data_hash: String,
}

/// Errors of a training.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TrainError {
    /// Not enough wells or days to train and measure.
    #[error("{0}")]
    NotEnoughData(String),
    /// A forecast failed.
    #[error(transparent)]
    Forecast(#[from] ForecastError),
}

fn held_out(
    wells: &[TrainingWell<'_>],
    model: &EmissionsModel,
    start: NaiveDate,
    gwp: GwpSet,
) -> Result<HeldOut, ForecastError> {
    let cut = start - chrono::Days::new(30);
    let (mut apes, mut inside) = (Vec::new(), 0);
    for w in wells {
        if let Some((p, t)) = backtest(w, cut, (0, 30), model, gwp, 0)?
            && t[0] > 0.0
        {
            apes.push((p[0].1 - t[0]).abs() / t[0]);
            if (p[0].0..=p[0].2).contains(&t[0]) {
                inside += 1;
            }
        }
    }
    let n = apes.len().max(1) as f64;
    Ok(HeldOut {
        wells: apes.len(),
        mape_30d_percent: 100.0 * apes.iter().sum::<f64>() / n,
        coverage_30d: f64::from(inside) / n,
    })
}

/// Trains on all but every third well (in the given order) with [`fit`], measures the new
/// model and the one in use — `active`, else the untrained defaults, which make the
/// tenant's forecasts until then — on those held-out wells (their own last 30 days,
/// forecast from the days before), and promotes the new one by [`crate::promotion`]. Only
/// days before `start` are used.
pub fn train_and_compare(
    wells: &[TrainingWell<'_>],
    active: Option<&EmissionsModel>,
    start: NaiveDate,
    gwp: GwpSet,
) -> Result<EmissionsOutcome, TrainError> {
    if wells.len() < 3 {
        return Err(TrainError::NotEnoughData(format!(
            "{} wells with emission sources: at least 3 are needed (a third is held out)",
            wells.len()
        )));
    }
    let (train, held): (Vec<_>, Vec<_>) = wells.iter().enumerate().partition(|(i, _)| i % 3 != 2);
    let train: Vec<TrainingWell<'_>> = train.into_iter().map(|(_, w)| *w).collect();
    let held: Vec<TrainingWell<'_>> = held.into_iter().map(|(_, w)| *w).collect();
    let fit = fit(&train, start, gwp, 0)?;
    if fit.wells == 0 {
        return Err(TrainError::NotEnoughData(
            "no training well has 60 days before and 30 measured days after a backtest cut".into(),
        ));
    }
    let metrics = held_out(&held, &fit.model, start, gwp)?;
    if metrics.wells == 0 {
        return Err(TrainError::NotEnoughData(
            "no held-out well has 60 days before and 30 measured days after the cut".into(),
        ));
    }
    // With no registered model, the untrained defaults are the model in use: they make
    // the tenant's forecasts until a trained model beats them.
    let default = EmissionsModel::default();
    let active_metrics = held_out(&held, active.unwrap_or(&default), start, gwp)?;
    let (promote, reason) = crate::promotion(
        "30-day MAPE",
        metrics.mape_30d_percent,
        active_metrics.mape_30d_percent,
        metrics.wells,
        active.is_some(),
    );
    let mut hasher = Sha256::new();
    let (mut first, mut rows) = (start, 0);
    for w in &train {
        for d in w.history.iter().filter(|d| d.day < start) {
            hasher.update(format!("{d:?}").as_bytes());
            first = first.min(d.day);
            rows += 1;
        }
        hasher.update(format!("{:?}", w.setup).as_bytes());
    }
    Ok(EmissionsOutcome {
        fit,
        metrics,
        active_metrics,
        promote,
        reason,
        wells: (train.len(), held.len()),
        window: (first, start.pred_opt().unwrap_or(start)),
        rows,
        data_hash: hex::encode(hasher.finalize()),
    })
}

/// Algorithm name of a registered emissions model.
pub const ALGORITHM: &str = "decline_subpart_w_episodes_calibrated";
/// What a registered emissions model forecasts from.
pub const INPUTS: [&str; 7] = [
    "oil",
    "gas",
    "flared",
    "vented",
    "fuel",
    "components",
    "pneumatics",
];

/// What a methane intensity is measured against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntensityBasis {
    /// kg CH4 per barrel of oil equivalent.
    KgCh4PerBoe,
    /// Methane emitted as % of the methane in gas sent to sale.
    PercentOfSalesGas,
    /// Methane emitted as % of the methane in gas produced.
    PercentOfGasProduced,
}

/// A regulatory or voluntary methane-intensity threshold.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Threshold {
    /// Short name.
    pub name: &'static str,
    /// Basis.
    pub basis: IntensityBasis,
    /// Value on that basis.
    pub value: f64,
    /// Citation.
    pub source: &'static str,
    /// True when it applies only to facilities reporting under Subpart W.
    pub subpart_w_only: bool,
}

/// Thresholds a forecast is compared with.
pub const THRESHOLDS: &[Threshold] = &[
    Threshold {
        name: "EPA Waste Emissions Charge, onshore production",
        basis: IntensityBasis::PercentOfSalesGas,
        value: 0.20,
        source: "Clean Air Act §136(f)(1)(A), 40 CFR 99: 0.20 % of the natural gas sent to \
                 sale, facilities reporting over 25,000 t CO2e under Subpart W",
        subpart_w_only: true,
    },
    Threshold {
        name: "OGCI upstream methane intensity target",
        basis: IntensityBasis::PercentOfSalesGas,
        value: 0.20,
        source: "Oil and Gas Climate Initiative, upstream methane intensity well below 0.20 % \
                 of marketed gas by 2025 (voluntary)",
        subpart_w_only: false,
    },
];

/// A tenant's own methane-intensity targets (`None`: no target on that basis).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct IntensityTargets {
    /// kg CH4 per BOE.
    pub kg_ch4_per_boe: Option<f64>,
    /// % of the methane in gas sent to sale.
    pub percent_of_sales_gas: Option<f64>,
    /// % of the methane in gas produced.
    pub percent_of_gas_produced: Option<f64>,
}

/// One comparison of a forecast intensity with a target or threshold.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Comparison {
    /// `tenant target` or the threshold's name.
    pub name: &'static str,
    /// Basis.
    pub basis: IntensityBasis,
    /// Limit.
    pub limit: f64,
    /// Forecast value (P50).
    pub value: f64,
    /// The interval's high end of the value.
    pub value_high: f64,
    /// P50 above the limit.
    pub exceeded: bool,
    /// Only the interval's high end is above the limit.
    pub at_risk: bool,
    /// Citation (empty for a tenant target).
    pub source: &'static str,
}

/// Methane intensity of a horizon, with its comparisons.
#[derive(Debug, Clone, PartialEq)]
pub struct IntensityForecast {
    /// Days covered.
    pub days: usize,
    /// kg CH4 per BOE (`None`: no production).
    pub kg_ch4_per_boe: Option<Band>,
    /// % of the methane in sales gas (`None`: nothing sold).
    pub percent_of_sales_gas: Option<Band>,
    /// % of the methane in gas produced (`None`: no gas).
    pub percent_of_gas_produced: Option<Band>,
    /// Against the tenant's targets and the applicable thresholds.
    pub comparisons: Vec<Comparison>,
}

/// Parameters of the intensity figures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IntensityOptions {
    /// Mcf per BOE (6 by default).
    pub mcf_per_boe: f64,
    /// CH4 mole fraction of the gas (produced and sold).
    pub gas_ch4_fraction: f64,
    /// The facility reports under Subpart W (selects the thresholds that apply).
    pub subpart_w_facility: bool,
}

/// Methane intensity over the first `days` days of a forecast. The interval pairs the high
/// emissions with the low production (and the reverse), so it is wide, not optimistic.
pub fn intensity(
    forecast: &EmissionsForecast,
    days: usize,
    options: &IntensityOptions,
    targets: &IntensityTargets,
) -> Result<IntensityForecast, ForecastError> {
    let (a, m) = forecast.total(days);
    let year = forecast
        .days
        .first()
        .map_or(Ok(2025), |d| reporting_year(d.day))?;
    let params = IntensityParams {
        mcf_per_boe: options.mcf_per_boe,
        gwp: forecast.gwp.set,
        sales_gas_ch4_fraction: options.gas_ch4_fraction,
    };
    let at = |ch4: f64, oil: f64, gas: f64, flared: f64, vented: f64, fuel: f64| {
        let sold = (gas - flared - vented - fuel).max(0.0);
        intensities(
            year,
            &GasMasses {
                ch4_kg: ch4,
                ..GasMasses::default()
            },
            &ProductionVolumes {
                oil_bbl: oil,
                gas_produced_mcf: gas,
                gas_sold_mcf: sold,
                gas_vented_mcf: vented,
                gas_flared_mcf: flared,
            },
            &params,
        )
    };
    // Low intensity: low emissions over high production; high: the reverse.
    let lo = at(
        m.ch4_kg.low,
        a.oil_bbl.high,
        a.gas_mcf.high,
        a.flared_mcf.low,
        a.vented_mcf.low,
        a.fuel_mcf.low,
    )?;
    let mid = at(
        m.ch4_kg.p50,
        a.oil_bbl.p50,
        a.gas_mcf.p50,
        a.flared_mcf.p50,
        a.vented_mcf.p50,
        a.fuel_mcf.p50,
    )?;
    let hi = at(
        m.ch4_kg.high,
        a.oil_bbl.low,
        a.gas_mcf.low,
        a.flared_mcf.high,
        a.vented_mcf.high,
        a.fuel_mcf.high,
    )?;
    let band = |l: Option<f64>, p: Option<f64>, h: Option<f64>| {
        p.map(|p50| Band {
            low: l.unwrap_or(p50).min(p50),
            p50,
            high: h.map_or(f64::INFINITY, |h| h.max(p50)),
        })
    };
    let rho = factor(FactorId::Ch4Density, year)?.value;
    let produced_pct = |ch4: f64, gas: f64| {
        let ch4_in_gas = gas * 1000.0 * options.gas_ch4_fraction * rho;
        (ch4_in_gas > 0.0).then(|| ch4 / ch4_in_gas * 100.0)
    };
    let kg_ch4_per_boe = band(lo.kg_ch4_per_boe, mid.kg_ch4_per_boe, hi.kg_ch4_per_boe);
    let percent_of_sales_gas = band(
        lo.methane_intensity_pct,
        mid.methane_intensity_pct,
        hi.methane_intensity_pct,
    );
    let percent_of_gas_produced = band(
        produced_pct(m.ch4_kg.low, a.gas_mcf.high),
        produced_pct(m.ch4_kg.p50, a.gas_mcf.p50),
        produced_pct(m.ch4_kg.high, a.gas_mcf.low),
    );
    let value = |basis| match basis {
        IntensityBasis::KgCh4PerBoe => kg_ch4_per_boe,
        IntensityBasis::PercentOfSalesGas => percent_of_sales_gas,
        IntensityBasis::PercentOfGasProduced => percent_of_gas_produced,
    };
    let compare = |name, basis, limit: f64, source| {
        value(basis).map(|v: Band| Comparison {
            name,
            basis,
            limit,
            value: v.p50,
            value_high: v.high,
            exceeded: v.p50 > limit,
            at_risk: v.p50 <= limit && v.high > limit,
            source,
        })
    };
    let mut comparisons = Vec::new();
    for (basis, target) in [
        (IntensityBasis::KgCh4PerBoe, targets.kg_ch4_per_boe),
        (
            IntensityBasis::PercentOfSalesGas,
            targets.percent_of_sales_gas,
        ),
        (
            IntensityBasis::PercentOfGasProduced,
            targets.percent_of_gas_produced,
        ),
    ] {
        if let Some(limit) = target {
            comparisons.extend(compare("tenant target", basis, limit, ""));
        }
    }
    for t in THRESHOLDS
        .iter()
        .filter(|t| options.subpart_w_facility || !t.subpart_w_only)
    {
        comparisons.extend(compare(t.name, t.basis, t.value, t.source));
    }
    Ok(IntensityForecast {
        days: days.min(forecast.days.len()),
        kg_ch4_per_boe,
        percent_of_sales_gas,
        percent_of_gas_produced,
        comparisons,
    })
}

/// The "last month repeats" baseline: every forecast day emits the mean of the 30 days
/// before `start` (CO2e under `gwp`, kg/d), from the history's measured activity.
pub fn last_month_baseline(
    history: &[ProductionDay],
    setup: &SourceSetup,
    start: NaiveDate,
    gwp: GwpSet,
) -> Result<f64, ForecastError> {
    check_history(history)?;
    let from = start - chrono::Days::new(30);
    let mut total = 0.0;
    let mut cache = UnitCache::default();
    for d in history.iter().filter(|d| d.day >= from && d.day < start) {
        let u = cache.get(d.day.year(), setup)?;
        let m = combine(
            &u,
            d.flared_mcf.unwrap_or(0.0),
            d.vented_mcf.unwrap_or(0.0),
            d.fuel_mcf.unwrap_or(0.0),
        )?;
        total += co2e(&m, gwp).kg;
    }
    Ok(total / 30.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gas() -> GasComposition {
        GasComposition {
            ch4: 0.8,
            c2h6: 0.1,
            c3h8: 0.05,
            c4h10: 0.02,
            c5_plus: 0.01,
            co2: 0.01,
            other: 0.01,
        }
    }

    fn setup(components: u32) -> SourceSetup {
        SourceSetup {
            gas: gas(),
            flare_efficiency: FlareEfficiency::Measured(0.98),
            hhv_mmbtu_per_scf: None,
            fuel_unit: CombustionUnit::Heater,
            fuel_ch4_kg_per_mmbtu: None,
            subpart_w_facility: false,
            region: Region::Western,
            components: if components > 0 {
                vec![(Equipment::Valve, Service::Gas, components)]
            } else {
                Vec::new()
            },
            pneumatics: Vec::new(),
        }
    }

    fn d(i: i64) -> NaiveDate {
        NaiveDate::from_ymd_opt(2023, 1, 1).unwrap() + chrono::Days::new(i as u64)
    }

    /// A year of exponential decline (10 %/month nominal-ish), 5 % flared.
    fn history(days: i64) -> Vec<ProductionDay> {
        (0..days)
            .map(|i| {
                let q = 1000.0 * (-0.002 * i as f64).exp();
                ProductionDay {
                    day: d(i),
                    oil_bbl: Some(q / 5.0),
                    gas_mcf: Some(q),
                    flared_mcf: Some(0.05 * q),
                    vented_mcf: Some(0.0),
                    fuel_mcf: Some(10.0),
                }
            })
            .collect()
    }

    fn request(start: NaiveDate, horizon: u32) -> ForecastRequest {
        ForecastRequest {
            start,
            horizon_days: horizon,
            gwp: GwpSet::Ar5,
            seed: 7,
        }
    }

    #[test]
    fn a_declining_well_is_forecast_by_its_decline_and_the_methods() {
        let h = history(365);
        let s = setup(50);
        let f = forecast_well(&h, &s, &request(d(365), 30)).unwrap();
        assert_eq!(f.days.len(), 30);
        assert!(matches!(f.gas_method, ProductionMethod::Decline(_)));
        // The decline continues: day 0 near 1000·e^(−0.73), day 29 lower.
        let q0 = 1000.0 * (-0.002 * 365.5f64).exp();
        let g0 = f.days[0].activity.gas_mcf.p50;
        assert!((g0 - q0).abs() / q0 < 0.02, "{g0} vs {q0}");
        assert!(f.days[29].activity.gas_mcf.p50 < g0);
        // Flared is 5 % of gas; each day's masses are the methods' masses of its activity.
        for day in &f.days {
            let a = day.activity;
            assert!((a.flared_mcf.p50 - 0.05 * a.gas_mcf.p50).abs() < 1e-9);
            let m = day_masses(
                day.day,
                a.flared_mcf.p50,
                a.vented_mcf.p50,
                a.fuel_mcf.p50,
                &s,
            )
            .unwrap();
            assert!((m.ch4_kg - day.masses.ch4_kg.p50).abs() < 1e-9);
            assert!((m.co2_kg - day.masses.co2_kg.p50).abs() < 1e-9);
            let c = co2e(&m, GwpSet::Ar5).kg;
            assert!((c - day.masses.co2e_kg.p50).abs() < 1e-6);
            for b in [day.masses.ch4_kg, day.masses.co2_kg, day.masses.co2e_kg] {
                assert!(b.low <= b.p50 && b.p50 <= b.high && b.low >= 0.0);
            }
        }
    }

    #[test]
    fn the_decline_is_of_producing_days_and_carries_the_usual_share_of_them() {
        // Down 3 days in two of the last six months: most months produce every day, so the
        // P50 goes on at the producing rate, not at the calendar-day mean below it.
        let mut h = history(365);
        for i in (300..303).chain(340..343) {
            let x = &mut h[i];
            (x.oil_bbl, x.gas_mcf, x.flared_mcf, x.fuel_mcf) =
                (Some(0.0), Some(0.0), Some(0.0), Some(0.0));
        }
        let gas: Vec<(NaiveDate, f64)> = h.iter().map(|x| (x.day, x.gas_mcf.unwrap())).collect();
        assert_eq!(uptime(&gas, d(365)), 1.0);
        let q0 = 1000.0 * (-0.002 * 365.5f64).exp();
        let f = forecast_well(&h, &setup(0), &request(d(365), 30)).unwrap();
        let g0 = f.days[0].activity.gas_mcf.p50;
        assert!((g0 - q0).abs() / q0 < 0.005, "{g0} vs {q0}");
        // Down one day in four all along: a forecast day produces three days in four.
        let mut h = history(365);
        for x in h.iter_mut().step_by(4) {
            (x.oil_bbl, x.gas_mcf, x.flared_mcf, x.fuel_mcf) =
                (Some(0.0), Some(0.0), Some(0.0), Some(0.0));
        }
        let gas: Vec<(NaiveDate, f64)> = h.iter().map(|x| (x.day, x.gas_mcf.unwrap())).collect();
        let share = uptime(&gas, d(365));
        assert!((share - 0.75).abs() < 0.02, "{share}");
        let f = forecast_well(&h, &setup(0), &request(d(365), 30)).unwrap();
        let g0 = f.days[0].activity.gas_mcf.p50;
        assert!(
            (g0 - share * q0).abs() / q0 < 0.01,
            "{g0} vs {}",
            share * q0
        );
        // An anchor compares producing days with the fit, so the downtime counts once.
        let anchored = EmissionsModel {
            anchor_days: 28,
            ..EmissionsModel::default()
        };
        let f = forecast_well_with(&h, &setup(0), &request(d(365), 30), &anchored).unwrap();
        let a0 = f.days[0].activity.gas_mcf.p50;
        assert!((a0 - g0).abs() / g0 < 0.01, "{a0} vs {g0}");
        // A month without a known day does not count; no block at all: every day.
        assert_eq!(uptime(&gas[..100], d(365)), 1.0);
    }

    #[test]
    fn the_gwp_set_changes_co2e_only() {
        let h = history(300);
        let s = setup(10);
        let ar5 = forecast_well(&h, &s, &request(d(300), 10)).unwrap();
        let mut r = request(d(300), 10);
        r.gwp = GwpSet::Ar6;
        let ar6 = forecast_well(&h, &s, &r).unwrap();
        let (_, m5) = ar5.total(10);
        let (_, m6) = ar6.total(10);
        assert_eq!(m5.ch4_kg, m6.ch4_kg);
        assert_eq!(ar6.gwp.label, "AR6");
        let expected = m6.co2_kg.p50 + 29.8 * m6.ch4_kg.p50 + 273.0 * m6.n2o_kg.p50;
        assert!((m6.co2e_kg.p50 - expected).abs() < 1e-6 * expected);
    }

    #[test]
    fn short_history_is_forecast_flat_and_equipment_alone_still_emits() {
        let h = history(60);
        let s = setup(100);
        let f = forecast_well(&h, &s, &request(d(60), 30)).unwrap();
        assert_eq!(f.gas_method, ProductionMethod::Flat);
        let last30: f64 = h[30..].iter().map(|x| x.gas_mcf.unwrap()).sum::<f64>() / 30.0;
        assert!((f.days[0].activity.gas_mcf.p50 - last30).abs() < 1e-9);
        // No history at all: no production, the components' leaks only.
        let f = forecast_well(&[], &s, &request(d(60), 30)).unwrap();
        assert_eq!(f.gas_method, ProductionMethod::None);
        let leaks = day_masses(d(60), 0.0, 0.0, 0.0, &s).unwrap();
        assert!(leaks.ch4_kg > 0.0);
        assert_eq!(f.days[0].masses.ch4_kg.p50, leaks.ch4_kg);
    }

    #[test]
    fn flaring_episodes_widen_the_interval() {
        let mut h = history(365);
        for x in h.iter_mut().skip(250).take(10) {
            x.flared_mcf = x.gas_mcf.map(|g| 0.5 * g);
        }
        let f = forecast_well(&h, &setup(0), &request(d(365), 30)).unwrap();
        let flare = f.days[0].activity.flared_mcf;
        assert!(flare.high > flare.p50 * 1.5, "{flare:?}");
        let steady = forecast_well(&history(365), &setup(0), &request(d(365), 30)).unwrap();
        let s = steady.days[0].activity.flared_mcf;
        assert!(s.high - s.low < flare.high - flare.low);
    }

    #[test]
    fn bad_inputs_are_errors() {
        let s = setup(0);
        assert_eq!(
            forecast_well(&history(10), &s, &request(d(10), 0)),
            Err(ForecastError::Horizon(0))
        );
        assert!(forecast_well(&history(10), &s, &request(d(10), 367)).is_err());
        let mut h = history(10);
        h[3].flared_mcf = Some(-1.0);
        assert!(matches!(
            forecast_well(&h, &s, &request(d(10), 5)),
            Err(ForecastError::BadVolume {
                quantity: "flared",
                ..
            })
        ));
    }

    #[test]
    fn a_site_is_the_sum_of_its_wells() {
        let s = setup(5);
        let a = forecast_well(&history(300), &s, &request(d(300), 30)).unwrap();
        let b = forecast_well(&history(200), &s, &request(d(300), 30)).unwrap();
        let site = aggregate(&[a.clone(), b.clone()]).unwrap();
        let (_, ma) = a.total(30);
        let (_, mb) = b.total(30);
        let (_, ms) = site.total(30);
        assert!((ms.co2e_kg.p50 - ma.co2e_kg.p50 - mb.co2e_kg.p50).abs() < 1e-6);
        let short = forecast_well(&history(300), &s, &request(d(300), 10)).unwrap();
        assert_eq!(aggregate(&[a, short]), Err(ForecastError::Mismatch));
        assert_eq!(aggregate(&[]), Err(ForecastError::Mismatch));
    }

    #[test]
    fn intensity_is_compared_with_targets_and_thresholds() {
        let s = setup(200);
        let f = forecast_well(&history(365), &s, &request(d(365), 90)).unwrap();
        let options = IntensityOptions {
            mcf_per_boe: 6.0,
            gas_ch4_fraction: 0.8,
            subpart_w_facility: false,
        };
        let targets = IntensityTargets {
            kg_ch4_per_boe: Some(1e-6),
            percent_of_sales_gas: None,
            percent_of_gas_produced: Some(1e6),
        };
        let i = intensity(&f, 30, &options, &targets).unwrap();
        let (a, m) = f.total(30);
        let boe = a.oil_bbl.p50 + a.gas_mcf.p50 / 6.0;
        let per_boe = i.kg_ch4_per_boe.unwrap();
        assert!((per_boe.p50 - m.ch4_kg.p50 / boe).abs() < 1e-9);
        assert!(per_boe.low <= per_boe.p50 && per_boe.p50 <= per_boe.high);
        let produced = i.percent_of_gas_produced.unwrap().p50;
        let expected = m.ch4_kg.p50 / (a.gas_mcf.p50 * 1000.0 * 0.8 * 0.0192) * 100.0;
        assert!((produced - expected).abs() < 1e-9);
        let names: Vec<_> = i.comparisons.iter().map(|c| (c.name, c.exceeded)).collect();
        let sales = i.percent_of_sales_gas.unwrap();
        assert_eq!(
            names,
            vec![
                ("tenant target", true),
                ("tenant target", false),
                ("OGCI upstream methane intensity target", sales.p50 > 0.20)
            ]
        );
        let ogci = i.comparisons[2];
        assert_eq!(ogci.value, sales.p50);
        assert_eq!(ogci.at_risk, sales.p50 <= 0.20 && sales.high > 0.20);
        // The Waste Emissions Charge threshold applies to Subpart W facilities only.
        let w = intensity(
            &f,
            30,
            &IntensityOptions {
                subpart_w_facility: true,
                ..options
            },
            &IntensityTargets::default(),
        )
        .unwrap();
        assert_eq!(w.comparisons.len(), 2);
    }

    #[test]
    fn a_year_without_factors_for_the_sources_is_an_error() {
        // Table W-1A component factors end with RY2024: a forecast into 2025 must say so.
        let h = history(300);
        let start = NaiveDate::from_ymd_opt(2024, 12, 20).unwrap();
        let shifted: Vec<ProductionDay> = h
            .iter()
            .enumerate()
            .map(|(i, x)| ProductionDay {
                day: start - chrono::Days::new(300 - i as u64),
                ..*x
            })
            .collect();
        let err = forecast_well(&shifted, &setup(10), &request(start, 30)).unwrap_err();
        assert!(
            matches!(
                err,
                ForecastError::Emissions(EmissionsError::NoFactorForYear { year: 2025, .. })
            ),
            "{err:?}"
        );
    }

    #[test]
    fn a_source_without_activity_needs_no_factor_for_the_year() {
        // 2026: no default flare efficiency (it ends with RY2024); a site with only Table
        // W-1 major equipment and no flaring is still forecast.
        let start = NaiveDate::from_ymd_opt(2026, 3, 1).unwrap();
        let s = SourceSetup {
            flare_efficiency: FlareEfficiency::Default,
            components: vec![(Equipment::Separator, Service::Crude, 2)],
            ..setup(0)
        };
        let f = forecast_well(&[], &s, &request(start, 30)).unwrap();
        assert!(f.days[0].masses.ch4_kg.p50 > 0.0);
        // Flaring forecast in that year needs the factor: a clear error.
        let flaring: Vec<ProductionDay> = history(200)
            .iter()
            .enumerate()
            .map(|(i, x)| ProductionDay {
                day: start - chrono::Days::new(200 - i as u64),
                ..*x
            })
            .collect();
        assert!(matches!(
            forecast_well(&flaring, &s, &request(start, 30)),
            Err(ForecastError::Emissions(EmissionsError::NoFactorForYear {
                year: 2026,
                ..
            }))
        ));
    }

    #[test]
    fn the_baseline_repeats_last_month() {
        let h = history(100);
        let s = setup(0);
        let b = last_month_baseline(&h, &s, d(100), GwpSet::Ar5).unwrap();
        let expected: f64 = h[70..]
            .iter()
            .map(|x| {
                let m = day_masses(x.day, x.flared_mcf.unwrap(), 0.0, 10.0, &s).unwrap();
                co2e(&m, GwpSet::Ar5).kg
            })
            .sum::<f64>()
            / 30.0;
        assert!((b - expected).abs() < 1e-6);
    }
    #[test]
    fn a_running_episode_goes_on_for_the_median_of_the_pooled_durations() {
        // Episodes of 2–10 days seen before; one running for 3 days at the forecast date.
        let mut h = history(365);
        for x in h.iter_mut().skip(362) {
            x.flared_mcf = x.gas_mcf.map(|g| 0.5 * g);
        }
        let durations = duration_counts(&(2..=10).collect::<Vec<u32>>());
        let found = flare_episodes(&h, d(365), 0.05, EPISODE_EXCESS);
        assert_eq!(found.running.map(|r| r.0), Some(3));
        assert!((found.running.unwrap().1 - 0.5).abs() < 1e-9);
        // P(D ≥ 4 | D ≥ 3) = 7/8; P(D ≥ 7 | D ≥ 3) = 4/8; P(D ≥ 8 | D ≥ 3) = 3/8.
        assert!((still_running(&durations, 3, 0) - 7.0 / 8.0).abs() < 1e-12);
        assert!((still_running(&durations, 3, 3) - 0.5).abs() < 1e-12);
        assert!((still_running(&durations, 3, 4) - 3.0 / 8.0).abs() < 1e-12);
        // Longer than any seen: the scale-free prior.
        assert!((still_running(&durations, 20, 0) - 20.0 / 21.0).abs() < 1e-12);
        let model = EmissionsModel {
            episode_durations: durations,
            ..EmissionsModel::default()
        };
        let f = forecast_well_with(&h, &setup(0), &request(d(365), 30), &model).unwrap();
        let fraction = |k: usize| {
            let a = f.days[k].activity;
            a.flared_mcf.p50 / a.gas_mcf.p50
        };
        // Days 0–3 still in the episode (survival ≥ ½), day 4 on back to the typical 5 %.
        for k in 0..4 {
            assert!((fraction(k) - 0.5).abs() < 1e-9, "day {k}: {}", fraction(k));
        }
        for k in 4..30 {
            assert!(
                (fraction(k) - 0.05).abs() < 1e-9,
                "day {k}: {}",
                fraction(k)
            );
        }
        let a = f.days[10].activity.flared_mcf;
        assert!(a.high >= 0.5 * f.days[10].activity.gas_mcf.high - 1e-9);
        // The untrained model does not continue it.
        let plain = forecast_well(&h, &setup(0), &request(d(365), 30)).unwrap();
        let a = plain.days[0].activity;
        assert!((a.flared_mcf.p50 / a.gas_mcf.p50 - 0.05).abs() < 1e-9);
        // An episode that ended before the forecast date is finished, not running.
        let mut ended = history(365);
        for x in ended.iter_mut().skip(350).take(5) {
            x.flared_mcf = x.gas_mcf.map(|g| 0.5 * g);
        }
        let e = flare_episodes(&ended, d(365), 0.05, EPISODE_EXCESS);
        assert_eq!((e.finished, e.running), (vec![5], None));
    }

    #[test]
    fn calibration_sets_the_interval_from_the_ratios_and_keeps_it_ordered() {
        let c = Calibration {
            blocks: vec![
                CalibrationBlock {
                    from_day: 0,
                    to_day: 30,
                    ch4: (0.8, 1.5),
                    co2: (0.9, 1.2),
                    n2o: (1.1, 0.9),
                    co2e: (0.7, 2.0),
                    backtests: 100,
                    uncalibrated_coverage: 0.6,
                },
                CalibrationBlock {
                    from_day: 30,
                    to_day: 90,
                    co2e: (0.5, 3.0),
                    ..CalibrationBlock {
                        from_day: 0,
                        to_day: 0,
                        ch4: (1.0, 1.0),
                        co2: (1.0, 1.0),
                        n2o: (1.0, 1.0),
                        co2e: (1.0, 1.0),
                        backtests: 0,
                        uncalibrated_coverage: 0.0,
                    }
                },
            ],
        };
        let m = MassBands {
            ch4_kg: Band::flat(10.0),
            co2_kg: Band::flat(100.0),
            n2o_kg: Band::flat(1.0),
            co2e_kg: Band::flat(400.0),
        };
        let a = c.apply(m, 5);
        assert_eq!(
            (a.co2e_kg.low, a.co2e_kg.p50, a.co2e_kg.high),
            (280.0, 400.0, 800.0)
        );
        assert_eq!((a.ch4_kg.low, a.ch4_kg.high), (8.0, 15.0));
        // Ratios on the wrong side of 1 never put the P50 outside its interval.
        assert_eq!((a.n2o_kg.low, a.n2o_kg.high), (1.0, 1.0));
        assert_eq!(c.apply(m, 45).co2e_kg.high, 1200.0);
        assert_eq!(c.apply(m, 200).co2e_kg.low, 200.0, "past the last block");
    }

    /// The simulated wells with these histories, as training wells.
    fn training_wells<'a>(
        histories: &'a [Vec<ProductionDay>],
        fleet: &'a [crate::fleet::FleetWell],
    ) -> Vec<TrainingWell<'a>> {
        histories
            .iter()
            .zip(fleet)
            .map(|(h, w)| TrainingWell {
                history: h,
                setup: &w.sources,
            })
            .collect()
    }

    #[test]
    fn training_pools_episodes_chooses_its_windows_and_calibrates_on_the_wells_own_past() {
        let fleet = crate::fleet::generate(&crate::fleet::FleetOptions {
            wells: 45,
            days: 365,
            seed: 11,
            ..crate::fleet::FleetOptions::default()
        });
        let histories: Vec<Vec<ProductionDay>> = fleet
            .iter()
            .map(|w| w.days.iter().map(|x| x.production).collect())
            .collect();
        let wells = training_wells(&histories, &fleet);
        let start = fleet[0].days[300].production.day;
        let fit = fit(&wells, start, GwpSet::Ar5, 1).unwrap();
        let m = &fit.model;
        assert!(m.episode_durations.iter().sum::<u32>() > 10, "{m:?}");
        assert!(m.episode_durations[0] == 0 && m.episode_durations[1] == 0);
        assert_eq!(
            fit.windows.len(),
            ANCHOR_WINDOWS.len() * FRACTION_WINDOWS.len()
        );
        let best = fit
            .windows
            .iter()
            .min_by(|a, b| a.2.total_cmp(&b.2))
            .unwrap();
        assert_eq!((m.anchor_days, m.fraction_window_days), (best.0, best.1));
        let c = m.calibration.as_ref().expect("calibrated");
        assert_eq!(c.blocks.len(), 2);
        for b in &c.blocks {
            assert!(b.co2e.0 <= 1.0 && b.co2e.1 >= 1.0, "{b:?}");
            assert!(b.backtests >= 40, "{b:?}");
        }
        // Days after `start` play no part: the same fit from histories cut at `start`.
        let cut: Vec<Vec<ProductionDay>> = histories
            .iter()
            .map(|h| h.iter().filter(|x| x.day < start).copied().collect())
            .collect();
        let wells_cut = training_wells(&cut, &fleet);
        assert_eq!(fit, super::fit(&wells_cut, start, GwpSet::Ar5, 1).unwrap());
        // The registry stores the model as JSON.
        let stored: EmissionsModel =
            serde_json::from_str(&serde_json::to_string(m).unwrap()).unwrap();
        assert_eq!(&stored, m);
    }
    #[test]
    fn a_model_is_promoted_only_when_it_beats_the_one_in_use_on_held_out_wells() {
        let fleet = crate::fleet::generate(&crate::fleet::FleetOptions {
            wells: 30,
            days: 300,
            seed: 5,
            ..crate::fleet::FleetOptions::default()
        });
        let histories: Vec<Vec<ProductionDay>> = fleet
            .iter()
            .map(|w| w.days.iter().map(|x| x.production).collect())
            .collect();
        let wells = training_wells(&histories, &fleet);
        let start = fleet[0].days[280].production.day;
        let first = train_and_compare(&wells, None, start, GwpSet::Ar5).unwrap();
        // A first model is measured against the untrained defaults, which are in use.
        assert!(
            first.reason.contains("the untrained defaults"),
            "{}",
            first.reason
        );
        assert_eq!(
            first.promote,
            first.metrics.mape_30d_percent < first.active_metrics.mape_30d_percent - 0.1,
            "{}",
            first.reason
        );
        assert_eq!(first.wells, (20, 10));
        assert_eq!(first.metrics.wells, 10);
        assert_eq!(first.rows, 20 * 280);
        assert_eq!(
            first.window,
            (fleet[0].days[0].production.day, start.pred_opt().unwrap())
        );
        assert_eq!(first.data_hash.len(), 64);
        // The same data again: no better than the model in use.
        let again = train_and_compare(&wells, Some(&first.fit.model), start, GwpSet::Ar5).unwrap();
        assert!(!again.promote, "{}", again.reason);
        assert!(again.reason.contains("does not beat"));
        assert!(
            again.reason.contains("the model in use"),
            "{}",
            again.reason
        );
        assert_eq!(again.active_metrics, first.metrics);
        assert!(matches!(
            train_and_compare(&wells[..2], None, start, GwpSet::Ar5),
            Err(TrainError::NotEnoughData(_))
        ));
    }
}
