//! Emission factor tables as data.
//!
//! Every constant the emission methods use lives here as a row of a static table with its
//! value, unit, regulatory citation and the reporting years (RY) it applies to. A lookup
//! for a year outside a row's range is an error ([`EmissionsError::NoFactorForYear`]), so a
//! table amended by a later rule can never be applied silently to the wrong year. When a
//! rule changes a value, append a new row with the new years and close the old row's range.
//!
//! Sources (checked against the eCFR text of 40 CFR Part 98):
//! * Subpart C Table C-1, natural gas (weighted U.S. average): HHV 1.026 × 10⁻³ MMBtu/scf,
//!   53.06 kg CO2/MMBtu — values of the 2013 revisions (78 FR 71904, Nov. 29, 2013), in
//!   force from RY2014.
//! * Subpart C Table C-2, natural gas: 1.0 × 10⁻³ kg CH4/MMBtu, 1.0 × 10⁻⁴ kg N2O/MMBtu.
//!   Footnote 1 (89 FR 42220, May 14, 2024): Subpart W reporters may not use the CH4 default
//!   for reciprocating engines or gas turbines (they use §98.233(z)(4)); the combustion
//!   method enforces this from RY2025.
//! * §98.33(a)(3)(iii) Equation C-5: molar volume conversion 849.5 scf/kg-mole (68 °F,
//!   14.7 psia).
//! * §98.233(v) Equation W-36: GHG densities at 60 °F and 14.7 psia: CH4 0.0192 kg/scf,
//!   CO2 0.0526 kg/scf.
//! * §98.233(n), Equations W-19 to W-21 (numbering and text in force through RY2024; EPA's
//!   e-GGRT guidance states these procedures apply "for reporting years up to and including
//!   RY2024"): default flare combustion efficiency η = 0.98. Not carried forward to RY2025+
//!   here: the 89 FR 42062 (May 14, 2024) amendments rewrote §98.233(n) and have not been
//!   reviewed into this table, so RY2025+ flare calculations need a measured efficiency.
//! * §98.233(z) Equation W-40: default HHV of field gas or process vent gas
//!   1.235 × 10⁻³ MMBtu/scf (same RY2011–2024 review limit).
//! * Table W-1A (RY2011–2024): whole-gas population factors per component, Eastern/Western
//!   U.S. (§98.238 puts Texas and New Mexico in the Western U.S.), and pneumatic devices.
//! * Table W-1 (89 FR 42323, May 14, 2024; RY2025+): pneumatic device and pump factors and
//!   major-equipment population factors (scf whole gas per hour per unit).

use super::EmissionsError;

/// Inclusive range of reporting years; `last: None` = still in force when last reviewed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct YearRange {
    /// First reporting year.
    pub first: u16,
    /// Last reporting year, if the row has been superseded.
    pub last: Option<u16>,
}

impl YearRange {
    /// True when `year` lies in the range.
    pub fn contains(&self, year: u16) -> bool {
        year >= self.first && self.last.is_none_or(|l| year <= l)
    }

    /// Human-readable form, e.g. `RY2011–RY2024` or `RY2014 onward`.
    pub fn describe(&self) -> String {
        match self.last {
            Some(l) => format!("RY{}–RY{}", self.first, l),
            None => format!("RY{} onward", self.first),
        }
    }
}

const fn years(first: u16, last: Option<u16>) -> YearRange {
    YearRange { first, last }
}

/// Identifier of a scalar factor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FactorId {
    /// Natural gas CO2 emission factor, kg CO2/MMBtu (Table C-1).
    NaturalGasCo2,
    /// Natural gas default high heat value, MMBtu/scf (Table C-1).
    NaturalGasHhv,
    /// Natural gas CH4 emission factor, kg CH4/MMBtu (Table C-2).
    NaturalGasCh4,
    /// Natural gas N2O emission factor, kg N2O/MMBtu (Table C-2).
    NaturalGasN2o,
    /// Molar volume conversion for Equation C-5, scf/kg-mole.
    MolarVolume,
    /// Density of CH4 at 60 °F, 14.7 psia, kg/scf (Equation W-36).
    Ch4Density,
    /// Density of CO2 at 60 °F, 14.7 psia, kg/scf (Equation W-36).
    Co2Density,
    /// Default fraction of flare gas combusted (η of Equations W-19 and W-21).
    FlareCombustionEfficiency,
    /// Default HHV of field gas or process vent gas for Equation W-40, MMBtu/scf.
    FieldGasHhv,
}

/// A scalar factor with its provenance.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Factor {
    /// Which factor.
    pub id: FactorId,
    /// Short description.
    pub name: &'static str,
    /// Value in `unit`.
    pub value: f64,
    /// Unit of `value`.
    pub unit: &'static str,
    /// Regulatory citation (table and section).
    pub source: &'static str,
    /// Reporting years the value applies to.
    pub years: YearRange,
}

/// All scalar factors.
pub static FACTORS: &[Factor] = &[
    Factor {
        id: FactorId::NaturalGasCo2,
        name: "natural gas CO2 emission factor",
        value: 53.06,
        unit: "kg CO2/MMBtu",
        source: "40 CFR 98 Subpart C, Table C-1 (natural gas, weighted U.S. average; 78 FR 71904)",
        years: years(2014, None),
    },
    Factor {
        id: FactorId::NaturalGasHhv,
        name: "natural gas default high heat value",
        value: 1.026e-3,
        unit: "MMBtu/scf",
        source: "40 CFR 98 Subpart C, Table C-1 (natural gas, weighted U.S. average; 78 FR 71904)",
        years: years(2014, None),
    },
    Factor {
        id: FactorId::NaturalGasCh4,
        name: "natural gas CH4 emission factor",
        value: 1.0e-3,
        unit: "kg CH4/MMBtu",
        source: "40 CFR 98 Subpart C, Table C-2 (natural gas)",
        years: years(2010, None),
    },
    Factor {
        id: FactorId::NaturalGasN2o,
        name: "natural gas N2O emission factor",
        value: 1.0e-4,
        unit: "kg N2O/MMBtu",
        source: "40 CFR 98 Subpart C, Table C-2 (natural gas)",
        years: years(2010, None),
    },
    Factor {
        id: FactorId::MolarVolume,
        name: "molar volume conversion factor",
        value: 849.5,
        unit: "scf/kg-mole (68 °F, 14.7 psia)",
        source: "40 CFR 98.33(a)(3)(iii), Equation C-5",
        years: years(2010, None),
    },
    Factor {
        id: FactorId::Ch4Density,
        name: "CH4 density at 60 °F, 14.7 psia",
        value: 0.0192,
        unit: "kg/scf",
        source: "40 CFR 98.233(v), Equation W-36",
        years: years(2011, None),
    },
    Factor {
        id: FactorId::Co2Density,
        name: "CO2 density at 60 °F, 14.7 psia",
        value: 0.0526,
        unit: "kg/scf",
        source: "40 CFR 98.233(v), Equation W-36",
        years: years(2011, None),
    },
    Factor {
        id: FactorId::FlareCombustionEfficiency,
        name: "default flare combustion efficiency",
        value: 0.98,
        unit: "fraction of gas combusted",
        source: "40 CFR 98.233(n), Equations W-19 and W-21 (η default)",
        years: years(2011, Some(2024)),
    },
    Factor {
        id: FactorId::FieldGasHhv,
        name: "default HHV of field gas or process vent gas",
        value: 1.235e-3,
        unit: "MMBtu/scf",
        source: "40 CFR 98.233(z), Equation W-40",
        years: years(2011, Some(2024)),
    },
];

/// Looks up the factor `id` in force for `year`.
pub fn factor(id: FactorId, year: u16) -> Result<&'static Factor, EmissionsError> {
    let mut rows = FACTORS.iter().filter(|f| f.id == id).peekable();
    let name = rows.peek().map_or("unknown factor", |f| f.name);
    let mut available = Vec::new();
    for row in rows {
        if row.years.contains(year) {
            return Ok(row);
        }
        available.push(format!("{} ({})", row.years.describe(), row.source));
    }
    Err(EmissionsError::NoFactorForYear {
        factor: name.to_string(),
        year,
        available: available.join("; "),
    })
}

/// Service of equipment for population factors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    /// Gas service (and multi-phase flow including gas).
    Gas,
    /// Light crude service (≥ 20 °API), Table W-1A.
    LightCrude,
    /// Heavy crude service (< 20 °API), Table W-1A.
    HeavyCrude,
    /// Crude service, Table W-1 major equipment.
    Crude,
}

/// Geographic split of Table W-1A gas-service factors (§98.238).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Region {
    /// Eastern U.S. as listed in §98.238.
    Eastern,
    /// Western U.S.: every other state, including Texas and New Mexico.
    Western,
}

/// Equipment or component kind counted for a population factor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Equipment {
    /// Valve (component count, Table W-1A).
    Valve,
    /// Connector (component count, Table W-1A).
    Connector,
    /// Flange (component count, Table W-1A crude service).
    Flange,
    /// Open-ended line (component count, Table W-1A).
    OpenEndedLine,
    /// Pressure relief valve (component count, Table W-1A gas service).
    PressureReliefValve,
    /// Pump seal (component count, Table W-1A light crude).
    Pump,
    /// Other components (Table W-1A crude service).
    Other,
    /// Continuous low-bleed pneumatic device vent.
    ContinuousLowBleedPneumatic,
    /// Continuous high-bleed pneumatic device vent.
    ContinuousHighBleedPneumatic,
    /// Intermittent-bleed pneumatic device vent.
    IntermittentBleedPneumatic,
    /// Natural-gas driven pneumatic pump.
    PneumaticPump,
    /// Wellhead (major equipment, Table W-1).
    Wellhead,
    /// Separator (major equipment, Table W-1).
    Separator,
    /// Meters/piping (major equipment, Table W-1).
    MetersPiping,
    /// Compressor (major equipment, Table W-1).
    Compressor,
    /// Dehydrator (major equipment, Table W-1).
    Dehydrator,
    /// Heater (major equipment, Table W-1).
    Heater,
    /// Storage vessel (major equipment, Table W-1).
    StorageVessel,
}

/// A whole-gas population emission factor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PopulationFactor {
    /// Equipment kind.
    pub equipment: Equipment,
    /// Service.
    pub service: Service,
    /// Region, `None` when the value is the same in both.
    pub region: Option<Region>,
    /// scf of whole gas per hour per unit counted.
    pub scf_per_hour: f64,
    /// Regulatory citation.
    pub source: &'static str,
    /// Reporting years.
    pub years: YearRange,
}

const W1A: &str = "40 CFR 98 Subpart W, Table W-1A (onshore production and gathering & boosting)";
const W1: &str = "40 CFR 98 Subpart W, Table W-1 (89 FR 42323, May 14, 2024)";
const RY_W1A: YearRange = years(2011, Some(2024));
const RY_W1: YearRange = years(2025, None);

const fn pf(
    equipment: Equipment,
    service: Service,
    region: Option<Region>,
    scf_per_hour: f64,
    source: &'static str,
    years: YearRange,
) -> PopulationFactor {
    PopulationFactor {
        equipment,
        service,
        region,
        scf_per_hour,
        source,
        years,
    }
}

use Equipment as E;
use Region::{Eastern, Western};
use Service as S;

/// Table W-1A and Table W-1 rows used at wellsites.
pub static POPULATION_FACTORS: &[PopulationFactor] = &[
    // Table W-1A, gas service, Eastern U.S.
    pf(E::Valve, S::Gas, Some(Eastern), 0.027, W1A, RY_W1A),
    pf(E::Connector, S::Gas, Some(Eastern), 0.003, W1A, RY_W1A),
    pf(E::OpenEndedLine, S::Gas, Some(Eastern), 0.061, W1A, RY_W1A),
    pf(
        E::PressureReliefValve,
        S::Gas,
        Some(Eastern),
        0.040,
        W1A,
        RY_W1A,
    ),
    // Table W-1A, gas service, Western U.S.
    pf(E::Valve, S::Gas, Some(Western), 0.121, W1A, RY_W1A),
    pf(E::Connector, S::Gas, Some(Western), 0.017, W1A, RY_W1A),
    pf(E::OpenEndedLine, S::Gas, Some(Western), 0.031, W1A, RY_W1A),
    pf(
        E::PressureReliefValve,
        S::Gas,
        Some(Western),
        0.193,
        W1A,
        RY_W1A,
    ),
    // Table W-1A, pneumatic devices and pumps (same in both regions), scf/hour/device.
    pf(
        E::ContinuousLowBleedPneumatic,
        S::Gas,
        None,
        1.39,
        W1A,
        RY_W1A,
    ),
    pf(
        E::ContinuousHighBleedPneumatic,
        S::Gas,
        None,
        37.3,
        W1A,
        RY_W1A,
    ),
    pf(
        E::IntermittentBleedPneumatic,
        S::Gas,
        None,
        13.5,
        W1A,
        RY_W1A,
    ),
    pf(E::PneumaticPump, S::Gas, None, 13.3, W1A, RY_W1A),
    // Table W-1A, light crude service (same in both regions).
    pf(E::Valve, S::LightCrude, None, 0.05, W1A, RY_W1A),
    pf(E::Flange, S::LightCrude, None, 0.003, W1A, RY_W1A),
    pf(E::Connector, S::LightCrude, None, 0.007, W1A, RY_W1A),
    pf(E::OpenEndedLine, S::LightCrude, None, 0.05, W1A, RY_W1A),
    pf(E::Pump, S::LightCrude, None, 0.01, W1A, RY_W1A),
    pf(E::Other, S::LightCrude, None, 0.30, W1A, RY_W1A),
    // Table W-1A, heavy crude service (same in both regions).
    pf(E::Valve, S::HeavyCrude, None, 0.0005, W1A, RY_W1A),
    pf(E::Flange, S::HeavyCrude, None, 0.0009, W1A, RY_W1A),
    pf(E::Connector, S::HeavyCrude, None, 0.0003, W1A, RY_W1A),
    pf(E::OpenEndedLine, S::HeavyCrude, None, 0.006, W1A, RY_W1A),
    pf(E::Other, S::HeavyCrude, None, 0.003, W1A, RY_W1A),
    // Table W-1, pneumatic device vents and pumps, onshore production / G&B.
    pf(E::ContinuousLowBleedPneumatic, S::Gas, None, 6.8, W1, RY_W1),
    pf(
        E::ContinuousHighBleedPneumatic,
        S::Gas,
        None,
        21.0,
        W1,
        RY_W1,
    ),
    pf(E::IntermittentBleedPneumatic, S::Gas, None, 8.8, W1, RY_W1),
    pf(E::PneumaticPump, S::Gas, None, 13.3, W1, RY_W1),
    // Table W-1, major equipment, gas service, onshore production / G&B.
    pf(E::Wellhead, S::Gas, None, 8.87, W1, RY_W1),
    pf(E::Separator, S::Gas, None, 9.65, W1, RY_W1),
    pf(E::MetersPiping, S::Gas, None, 7.04, W1, RY_W1),
    pf(E::Compressor, S::Gas, None, 13.8, W1, RY_W1),
    pf(E::Dehydrator, S::Gas, None, 8.09, W1, RY_W1),
    pf(E::Heater, S::Gas, None, 5.22, W1, RY_W1),
    pf(E::StorageVessel, S::Gas, None, 1.83, W1, RY_W1),
    // Table W-1, major equipment, crude service, onshore production.
    pf(E::Wellhead, S::Crude, None, 4.13, W1, RY_W1),
    pf(E::Separator, S::Crude, None, 4.77, W1, RY_W1),
    pf(E::MetersPiping, S::Crude, None, 12.4, W1, RY_W1),
    pf(E::Compressor, S::Crude, None, 13.8, W1, RY_W1),
    pf(E::Dehydrator, S::Crude, None, 8.09, W1, RY_W1),
    pf(E::Heater, S::Crude, None, 3.2, W1, RY_W1),
    pf(E::StorageVessel, S::Crude, None, 1.91, W1, RY_W1),
];

/// Looks up the population factor for `equipment` in `service` for `year`. Rows split by
/// region match only the same `region`; region-independent rows match any.
pub fn population_factor(
    equipment: Equipment,
    service: Service,
    region: Option<Region>,
    year: u16,
) -> Result<&'static PopulationFactor, EmissionsError> {
    let rows = || {
        POPULATION_FACTORS.iter().filter(|p| {
            p.equipment == equipment
                && p.service == service
                && (p.region.is_none() || p.region == region)
        })
    };
    if let Some(row) = rows().find(|p| p.years.contains(year)) {
        return Ok(row);
    }
    let available: Vec<String> = rows()
        .map(|p| format!("{} ({})", p.years.describe(), p.source))
        .collect();
    Err(EmissionsError::NoFactorForYear {
        factor: format!(
            "population factor for {equipment:?} in {service:?} service{}",
            region.map_or(String::new(), |r| format!(", {r:?} U.S."))
        ),
        year,
        available: if available.is_empty() {
            "none: this equipment/service combination is not in Table W-1A or Table W-1".to_string()
        } else {
            available.join("; ")
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_factor_id_has_a_row_and_rows_do_not_overlap() {
        for (i, a) in FACTORS.iter().enumerate() {
            for b in &FACTORS[i + 1..] {
                if a.id == b.id {
                    let overlap =
                        a.years.contains(b.years.first) || b.years.contains(a.years.first);
                    assert!(!overlap, "{:?} rows overlap", a.id);
                }
            }
            assert!(a.value.is_finite() && a.value > 0.0);
        }
    }

    #[test]
    fn population_rows_do_not_overlap() {
        for (i, a) in POPULATION_FACTORS.iter().enumerate() {
            for b in &POPULATION_FACTORS[i + 1..] {
                let same = a.equipment == b.equipment
                    && a.service == b.service
                    && (a.region.is_none() || b.region.is_none() || a.region == b.region);
                let overlap = a.years.contains(b.years.first) || b.years.contains(a.years.first);
                assert!(!(same && overlap), "{a:?} overlaps {b:?}");
            }
        }
    }

    #[test]
    fn lookups_respect_years() {
        assert_eq!(factor(FactorId::NaturalGasCo2, 2024).unwrap().value, 53.06);
        let err = factor(FactorId::NaturalGasCo2, 2013)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("RY2013") && err.contains("RY2014 onward"),
            "{err}"
        );
        assert!(factor(FactorId::FlareCombustionEfficiency, 2025).is_err());
        let w1a = population_factor(E::Valve, S::Gas, Some(Western), 2024).unwrap();
        assert_eq!(w1a.scf_per_hour, 0.121);
        let err = population_factor(E::Valve, S::Gas, Some(Western), 2025).unwrap_err();
        assert!(err.to_string().contains("Table W-1A"), "{err}");
        assert!(
            err.to_string()
                .starts_with("no population factor for Valve in Gas service, Western U.S. for reporting year RY2025"),
            "{err}"
        );
        let hb = population_factor(E::ContinuousHighBleedPneumatic, S::Gas, None, 2025).unwrap();
        assert_eq!(hb.scf_per_hour, 21.0);
    }
}
