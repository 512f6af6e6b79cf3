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
//!    to the well's weekly calendar-day rates (downtime included, so the forecast carries
//!    the well's usual downtime), the best by AICc is forecast day by day with its Monte
//!    Carlo P90/P50/P10. A history the decline model refuses (under 6 months, too few
//!    weeks) is forecast flat at its last 30 days, the interval from the spread of its
//!    weekly rates.
//! 2. **Flared and vented gas** as fractions of the gas produced, the median of the daily
//!    fractions over the last [`FRACTION_WINDOW_DAYS`]; the interval is the 10th and 90th percentiles of the
//!    fraction over the 30-day blocks of the last [`FRACTION_BLOCKS`] blocks (flaring comes
//!    in episodes: a constrained gathering line, a compressor down).
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
//! Methane intensity of a horizon: kg CH4 per BOE and % of the sales gas's methane (the
//! `analytics::emissions::intensity` definitions; gas sold = produced − flared − vented −
//! fuel), and % of the methane in the gas produced. Compared with the tenant's targets and
//! with [`THRESHOLDS`].
//!
//! *Invariants:* no I/O; masses are never negative; `low ≤ p50 ≤ high` on every day and
//! total; a day's figures are the sum of its sources.

use chrono::{Datelike, NaiveDate};

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
pub const MODEL_VERSION: &str = "emissions-decline-subpart-w/1";
/// Days of recent history the flared, vented and fuel figures are estimated from.
pub const FRACTION_WINDOW_DAYS: i64 = 90;
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
) -> (Vec<Band>, ProductionMethod) {
    let n = horizon as usize;
    if history.iter().all(|&(_, v)| v <= 0.0) {
        return (vec![Band::default(); n], ProductionMethod::None);
    }
    match decline_stream(history, start, horizon, seed) {
        Ok((bands, kind)) => (bands, ProductionMethod::Decline(kind)),
        Err(_) => (vec![flat_band(history, start); n], ProductionMethod::Flat),
    }
}

/// Weekly calendar-day mean rates `(days from the first day, rate)`, zero weeks skipped.
fn weekly_rates(history: &[(NaiveDate, f64)], start: NaiveDate) -> Vec<(f64, f64)> {
    let Some(&(first, _)) = history.first() else {
        return Vec::new();
    };
    let weeks = ((start - first).num_days().max(0) / 7) as usize;
    // Whole weeks ending at `start`; the oldest partial week is dropped.
    let origin = start - chrono::Days::new(7 * weeks as u64);
    let mut sums = vec![(0.0, 0u32); weeks];
    for &(day, v) in history {
        let offset = (day - origin).num_days();
        if offset < 0 || day >= start {
            continue;
        }
        let w = (offset / 7) as usize;
        sums[w].0 += v;
        sums[w].1 += 1;
    }
    sums.iter()
        .enumerate()
        .filter(|(_, (s, n))| *n >= 4 && *s > 0.0)
        .map(|(w, (s, n))| (w as f64 * 7.0 + 3.5, s / f64::from(*n)))
        .collect()
}

fn decline_stream(
    history: &[(NaiveDate, f64)],
    start: NaiveDate,
    horizon: u32,
    seed: u64,
) -> Result<(Vec<Band>, &'static str), DeclineError> {
    let weekly = weekly_rates(history, start);
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
    // Day k covers [t0 + k, t0 + k + 1]: its volume is the cumulative over it.
    let bands = forecast
        .points
        .windows(2)
        .map(|w| {
            let d = |a: f64, b: f64| (b - a).max(0.0);
            let p50 = d(w[0].cumulative.p50, w[1].cumulative.p50);
            let low = d(w[0].cumulative.p90, w[1].cumulative.p90).min(p50);
            let high = d(w[0].cumulative.p10, w[1].cumulative.p10).max(p50);
            Band { low, p50, high }
        })
        .collect();
    Ok((bands, fits.best().kind().name()))
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
    let mut weekly: Vec<f64> = weekly_rates(history, start).iter().map(|p| p.1).collect();
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

/// The median of the daily ratios over the [`FRACTION_WINDOW_DAYS`] before `start` (a
/// median, as a P50 is: a flaring episode widens the interval, it does not move the
/// typical day), its interval the 10th–90th percentiles of the ratio of sums over the last
/// [`FRACTION_BLOCKS`] 30-day blocks.
fn ratio_band(days: &[ProductionDay], start: NaiveDate, num: Figure, den: Option<Figure>) -> Band {
    let window_from = start - chrono::Days::new(FRACTION_WINDOW_DAYS as u64);
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
/// `request.start`, in any order; later days are ignored) and its sources.
pub fn forecast_well(
    history: &[ProductionDay],
    setup: &SourceSetup,
    request: &ForecastRequest,
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
    );
    let (oil, oil_method) = forecast_stream(
        &stream(|d| d.oil_bbl),
        request.start,
        request.horizon_days,
        request.seed.wrapping_add(1),
    );
    let gas_of = |d: &ProductionDay| d.gas_mcf;
    let flare_fraction = ratio_band(&days, request.start, |d| d.flared_mcf, Some(gas_of));
    let vent_fraction = ratio_band(&days, request.start, |d| d.vented_mcf, Some(gas_of));
    let fuel = ratio_band(&days, request.start, |d| d.fuel_mcf, None);
    let mut cache = UnitCache::default();
    let gwp = request.gwp.values();
    let mut out = Vec::with_capacity(request.horizon_days as usize);
    for (k, (g, o)) in gas.iter().zip(&oil).enumerate() {
        let day = request.start + chrono::Days::new(k as u64);
        let u = cache.get(day.year(), setup)?;
        let activity = ActivityDay {
            oil_bbl: *o,
            gas_mcf: *g,
            flared_mcf: g.mul(flare_fraction),
            vented_mcf: g.mul(vent_fraction),
            fuel_mcf: fuel,
        };
        out.push(ForecastDay {
            day,
            activity,
            masses: masses_of(&u, &activity, request.gwp)?,
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
}
