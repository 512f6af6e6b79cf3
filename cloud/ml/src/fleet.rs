//! A simulated producing fleet at daily resolution, with its ground truth: the data of the
//! emissions and production-optimization benchmarks and tests.
//!
//! # Model
//!
//! - Fields 4, lift mix 55 % rod pump, 25 % ESP, 20 % plunger lift. Each field has its own
//!   typical decline (Arps hyperbolic, `Dᵢ` 0.6–1.6/yr nominal, `b` 0.4–1.1) and gas–oil
//!   ratio; each well scatters around its field (initial rate log-normal, σ 0.5) and starts
//!   the simulation 30–1,100 days after first production.
//! - **True potential** (oil, bbl/d at 24 hours on) is the well's Arps rate at its age;
//!   actual production is potential × impairment × hours on / 24 × daily noise (σ 6 %).
//! - Downtime: a day down with probability 1.5 % (1–3 days); hours on otherwise 22–24.
//! - **Impairments** (40 % of wells), each with a cause and an onset inside the last 240
//!   days: pump-off control too aggressive (rod pump: hours on 13–19 while fillage stays
//!   high), plunger cycle too short (plunger: cycles up 40–90 %, 20–40 % less liquid),
//!   choke (tubing pressure up 25–60 %, 15–35 % less), frequent downtime (a down day in
//!   every 4–8). A quarter of them are lifted again before the end (a fix), so a benchmark
//!   window sees wells impaired long ago, lately, or no more.
//! - Gas: oil × the field's GOR × (1 + noise); flared: a per-well base fraction (0 for half
//!   the wells, else 1–8 %) plus episodes (every ~100 days per well, 2–10 days, 20–70 %
//!   flared: a gathering line down); vented 0–0.5 % for a fifth of the wells; fuel gas
//!   4–20 Mcf/d for wells with a heater; equipment counts per well.
//!
//! Deterministic in the seed (ChaCha8).

use chrono::NaiveDate;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

use analytics::emissions::GasComposition;
use analytics::emissions::factors::{Equipment, Region, Service};
use analytics::emissions::methods::{BleedType, CombustionUnit, FlareEfficiency};

use crate::emissions::{ProductionDay, SourceSetup};
use crate::maintenance::Lift;

/// Why a well produces below its potential (the simulator's truth, the model's causes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cause {
    /// Pump-off controller idles the pump although it is not pumped off.
    PumpOffTooAggressive,
    /// Plunger cycles too short: the well unloads too little liquid per cycle.
    PlungerCycleShort,
    /// Choked back: wellhead pressure held up.
    Choke,
    /// Frequent downtime.
    Downtime,
}

/// One well-day of production and diagnostics.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct FleetDay {
    /// Production and dispositions.
    pub production: ProductionDay,
    /// Hours on production.
    pub hours_on: f64,
    /// Rod pump fillage, % (rod pumps only).
    pub fillage_pct: Option<f64>,
    /// Plunger cycles per day (plunger lift only).
    pub plunger_cycles: Option<f64>,
    /// Tubing (wellhead flowing) pressure, psi.
    pub tubing_pressure_psi: Option<f64>,
    /// True oil potential of the day, bbl/d at 24 hours on.
    pub potential_oil_bbl: f64,
}

/// A simulated well.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetWell {
    /// Name.
    pub name: String,
    /// Site (four wells a site).
    pub site: String,
    /// Field.
    pub field: String,
    /// Lift type.
    pub lift: Lift,
    /// Days since first production at the first simulated day.
    pub age_at_start: u32,
    /// Emission sources.
    pub sources: SourceSetup,
    /// Days, in order from the fleet's start.
    pub days: Vec<FleetDay>,
    /// The impairment: cause, first day index, last day index (exclusive).
    pub impairment: Option<(Cause, usize, usize)>,
}

/// Fleet options.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetOptions {
    /// Wells.
    pub wells: usize,
    /// Days per well.
    pub days: usize,
    /// Seed.
    pub seed: u64,
    /// First day.
    pub start: NaiveDate,
}

impl Default for FleetOptions {
    fn default() -> Self {
        FleetOptions {
            wells: 200,
            days: 365 + 90,
            seed: 1,
            // Inside the years of every default factor the fleet's sources use (RY ≤ 2024).
            start: NaiveDate::from_ymd_opt(2023, 1, 1).expect("valid date"),
        }
    }
}

/// The produced gas of the fleet (a typical associated gas).
pub const FLEET_GAS: GasComposition = GasComposition {
    ch4: 0.78,
    c2h6: 0.11,
    c3h8: 0.05,
    c4h10: 0.02,
    c5_plus: 0.01,
    co2: 0.015,
    other: 0.015,
};

struct Field {
    di_per_day: f64,
    b: f64,
    gor: f64,
    qi: f64,
}

/// Generates the fleet.
pub fn generate(o: &FleetOptions) -> Vec<FleetWell> {
    let mut rng = ChaCha8Rng::seed_from_u64(o.seed);
    let n: Normal<f64> = Normal::new(0.0, 1.0).expect("valid normal");
    let fields: Vec<Field> = (0..4)
        .map(|_| Field {
            di_per_day: (0.6 + rng.random::<f64>()) / 365.25,
            b: 0.4 + 0.7 * rng.random::<f64>(),
            gor: 1.0 + 4.0 * rng.random::<f64>(),
            qi: 150.0 + 350.0 * rng.random::<f64>(),
        })
        .collect();
    let mut wells = Vec::with_capacity(o.wells);
    for w in 0..o.wells {
        let f = rng.random_range(0..fields.len());
        let field = &fields[f];
        let lift = match rng.random::<f64>() {
            x if x < 0.55 => Lift::RodPump,
            x if x < 0.80 => Lift::Esp,
            _ => Lift::PlungerLift,
        };
        let qi = field.qi * (0.5 * n.sample(&mut rng)).exp();
        let di = field.di_per_day * (0.15 * n.sample(&mut rng)).exp();
        let b = (field.b + 0.1 * n.sample(&mut rng)).clamp(0.1, 1.5);
        let gor = field.gor * (0.2 * n.sample(&mut rng)).exp();
        let age0: u32 = rng.random_range(30..1100);
        let fillage0 = 75.0 + 15.0 * rng.random::<f64>();
        let cycles0 = 12.0 + 12.0 * rng.random::<f64>();
        let ftp0 = 80.0 + 120.0 * rng.random::<f64>();
        let impairment = (rng.random::<f64>() < 0.4).then(|| {
            let cause = match (lift, rng.random_range(0..3)) {
                (Lift::RodPump, 0 | 1) => Cause::PumpOffTooAggressive,
                (Lift::PlungerLift, 0 | 1) => Cause::PlungerCycleShort,
                (_, 2) => Cause::Downtime,
                _ => Cause::Choke,
            };
            let onset = o.days.saturating_sub(rng.random_range(20..240));
            let end = if rng.random::<f64>() < 0.25 {
                (onset + rng.random_range(10..120)).min(o.days)
            } else {
                o.days
            };
            (cause, onset, end)
        });
        let severity = 0.15 + 0.25 * rng.random::<f64>();
        let poc_hours = 13.0 + 6.0 * rng.random::<f64>();
        let down_every = rng.random_range(4..=8);
        let base_flare = if rng.random::<f64>() < 0.5 {
            0.0
        } else {
            0.01 + 0.07 * rng.random::<f64>()
        };
        let vent = if rng.random::<f64>() < 0.2 {
            0.005 * rng.random::<f64>()
        } else {
            0.0
        };
        let fuel = if rng.random::<f64>() < 0.6 {
            4.0 + 16.0 * rng.random::<f64>()
        } else {
            0.0
        };
        let mut flare_episode_until = 0usize;
        let mut flare_episode_fraction = 0.0;
        let mut down_until = 0usize;
        let mut days = Vec::with_capacity(o.days);
        for t in 0..o.days {
            let day = o.start + chrono::Days::new(t as u64);
            let age = f64::from(age0) + t as f64;
            let potential = qi * (1.0 + b * di * age).powf(-1.0 / b);
            let active = impairment.filter(|&(_, s, e)| t >= s && t < e).map(|i| i.0);
            let mut hours = 22.0 + 2.0 * rng.random::<f64>();
            if t < down_until {
                hours = 0.0;
            } else if rng.random::<f64>() < 0.015 {
                down_until = t + rng.random_range(1..=3);
                hours = 0.0;
            }
            let mut factor = 1.0;
            let mut fillage = fillage0 + 3.0 * n.sample(&mut rng);
            let mut cycles = cycles0 * (1.0 + 0.05 * n.sample(&mut rng));
            let mut ftp = ftp0 * (1.0 + 0.04 * n.sample(&mut rng));
            match active {
                Some(Cause::PumpOffTooAggressive) if hours > 0.0 => {
                    hours = poc_hours + rng.random::<f64>();
                    fillage = (fillage + 8.0).min(98.0);
                }
                Some(Cause::PlungerCycleShort) => {
                    cycles *= 1.4 + severity * 1.3;
                    factor = 1.0 - severity;
                }
                Some(Cause::Choke) => {
                    ftp *= 1.25 + severity * 0.9;
                    factor = 1.0 - severity * 0.9;
                }
                Some(Cause::Downtime) if t % down_every == 0 => hours = 0.0,
                _ => {}
            }
            if lift == Lift::RodPump && active != Some(Cause::PumpOffTooAggressive) {
                // Inflow-limited wells pump off: fillage falls as the well declines.
                fillage -= 5.0 * (age / 2000.0).min(1.0);
            }
            let noise = (0.06 * n.sample(&mut rng)).exp();
            let oil = potential * factor * hours / 24.0 * noise;
            let gas = oil * gor * (0.05 * n.sample(&mut rng)).exp();
            if t >= flare_episode_until && rng.random::<f64>() < 0.01 {
                flare_episode_until = t + rng.random_range(2..=10);
                flare_episode_fraction = 0.2 + 0.5 * rng.random::<f64>();
            }
            let flare_fraction = if t < flare_episode_until {
                flare_episode_fraction
            } else {
                base_flare
            };
            let fuel_today = if hours > 0.0 {
                fuel * (1.0 + 0.1 * n.sample(&mut rng)).max(0.0)
            } else {
                0.0
            };
            days.push(FleetDay {
                production: ProductionDay {
                    day,
                    oil_bbl: Some(oil),
                    gas_mcf: Some(gas),
                    flared_mcf: Some(gas * flare_fraction),
                    vented_mcf: Some(gas * vent),
                    fuel_mcf: Some(fuel_today),
                },
                hours_on: hours,
                fillage_pct: (lift == Lift::RodPump && hours > 0.0).then_some(fillage),
                plunger_cycles: (lift == Lift::PlungerLift && hours > 0.0).then_some(cycles),
                tubing_pressure_psi: (hours > 0.0).then_some(ftp),
                potential_oil_bbl: potential,
            });
        }
        let sources = SourceSetup {
            gas: FLEET_GAS,
            flare_efficiency: FlareEfficiency::Measured(0.98),
            hhv_mmbtu_per_scf: None,
            fuel_unit: CombustionUnit::Heater,
            fuel_ch4_kg_per_mmbtu: None,
            subpart_w_facility: false,
            region: Region::Western,
            components: vec![
                (
                    Equipment::Valve,
                    Service::LightCrude,
                    rng.random_range(10..60),
                ),
                (
                    Equipment::Connector,
                    Service::Gas,
                    rng.random_range(20..120),
                ),
            ],
            pneumatics: if rng.random::<f64>() < 0.4 {
                vec![(BleedType::Intermittent, rng.random_range(1..4))]
            } else {
                Vec::new()
            },
        };
        wells.push(FleetWell {
            name: format!("well-{w:04}"),
            site: format!("site-{:03}", w / 4),
            field: format!("field-{f}"),
            lift,
            age_at_start: age0,
            sources,
            days,
            impairment,
        });
    }
    wells
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fleet_is_deterministic_and_plausible() {
        let o = FleetOptions {
            wells: 40,
            days: 120,
            ..FleetOptions::default()
        };
        let a = generate(&o);
        assert_eq!(a, generate(&o));
        assert_eq!(a.len(), 40);
        for w in &a {
            assert_eq!(w.days.len(), 120);
            for d in &w.days {
                let p = d.production;
                for v in [p.oil_bbl, p.gas_mcf, p.flared_mcf, p.vented_mcf, p.fuel_mcf] {
                    let v = v.unwrap();
                    assert!(v.is_finite() && v >= 0.0);
                }
                assert!(p.flared_mcf.unwrap() <= p.gas_mcf.unwrap());
                assert!((0.0..=24.0).contains(&d.hours_on));
                // Never above potential by more than the noise allows.
                assert!(p.oil_bbl.unwrap() <= d.potential_oil_bbl * 1.4);
            }
        }
        assert!(a.iter().any(|w| w.impairment.is_some()));
        assert!(a.iter().any(|w| w.impairment.is_none()));
    }
}
