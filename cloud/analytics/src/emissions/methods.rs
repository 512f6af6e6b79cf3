//! Emission calculation methods, one function per source type.
//!
//! Symbols: `V` gas volume (scf at 60 °F, 14.7 psia unless stated), `X_i` mole fraction of
//! GHG i, `ρ_i` density of GHG i from Equation W-36 (CH4 0.0192 kg/scf, CO2 0.0526
//! kg/scf), `HHV` high heat value (MMBtu/scf), `EF` emission factor. Results are kg.
//!
//! # Stationary combustion — 40 CFR 98.33 (Subpart C)
//! * Tier 1, §98.33(a)(1), Equation C-1: `CO2 = Fuel × HHV_default × EF` with Table C-1
//!   natural gas HHV 1.026 × 10⁻³ MMBtu/scf and EF 53.06 kg CO2/MMBtu.
//! * Tier 2, §98.33(a)(2), Equation C-2a: as Tier 1 with the measured HHV.
//! * Tier 3, §98.33(a)(3), Equation C-5 (gaseous fuel):
//!   `CO2 = 44/12 × Fuel × CC × MW / MVC`, CC carbon content (kg C/kg fuel), MW molecular
//!   weight (kg/kg-mole), MVC 849.5 scf/kg-mole (68 °F, 14.7 psia: `Fuel` must be on that
//!   basis, or pass the matching MVC). [`Tier3Properties::from_composition`] derives CC × MW
//!   from a gas analysis (atomic masses C 12.011, H 1.008; inerts counted as N2).
//! * CH4 and N2O, §98.33(c), Equation C-8: `Fuel × HHV × EF` with Table C-2 natural gas
//!   factors (1.0 × 10⁻³ kg CH4/MMBtu, 1.0 × 10⁻⁴ kg N2O/MMBtu) and the measured HHV when the
//!   tier has one, else the Table C-1 default. From RY2025 a Subpart W facility may not use
//!   the CH4 default for reciprocating engines or gas turbines (Table C-2 footnote 1).
//!
//! # Flares — 40 CFR 98.233(n)
//! * W-19: `CH4_scf = V × (1 − η) × X_CH4` (unburnt methane).
//! * W-20: `CO2_scf(uncombusted) = V × X_CO2` (CO2 in the flared gas passes through).
//! * W-21: `CO2_scf(combusted) = η × V × Σ Yj × Rj`, j = methane … pentanes plus,
//!   Rj = 1 … 5 carbon atoms.
//! * W-36: `mass = scf × ρ`.
//! * W-40: `N2O = V × HHV × EF_N2O` with EF 1.0 × 10⁻⁴ kg/MMBtu (Table C-2) and HHV measured,
//!   or the W-40 field-gas default 1.235 × 10⁻³ MMBtu/scf. An unlit flare (η = 0) burns
//!   nothing and emits no N2O.
//!
//! η defaults to 0.98 for RY2011–RY2024 (table row); a measured value may always be given.
//!
//! # Venting
//! `CH4 = V × X_CH4 × ρ_CH4`, `CO2 = V × X_CO2 × ρ_CO2` (volume × mole fraction, Equation
//! W-36 densities).
//!
//! # Equipment leaks — 40 CFR 98.233(r), Equation W-32A
//! `E_i(scf) = Σ_e Count_e × EF_e × T_e × X_i`, EF from Table W-1A (components, RY≤2024) or
//! Table W-1 (major equipment, RY2025+), T hours in service; masses by W-36.
//!
//! # Pneumatic devices and pumps — 40 CFR 98.233(a) (Equation W-1 through RY2024)
//! `E_i(scf) = Σ_t Count_t × EF_t × T_t × X_i` by bleed type (continuous high-bleed,
//! intermittent, continuous low-bleed, pumps) with Table W-1A or Table W-1 factors.

use super::factors::{self, Equipment, FactorId, Region, Service, factor, population_factor};
use super::{
    EmissionsError, GasComposition, GasMasses, Provenance, SourceEmissions, SourceKind, fraction,
    non_negative,
};

/// Ratio of molar masses of CO2 and C used by Equation C-5.
const CO2_PER_C: f64 = 44.0 / 12.0;
/// Atomic mass of carbon (IUPAC conventional value).
const C_MASS: f64 = 12.011;
/// Atomic mass of hydrogen (IUPAC conventional value).
const H_MASS: f64 = 1.008;
/// Atomic mass of oxygen (IUPAC conventional value).
const O_MASS: f64 = 15.999;
/// Molar mass of N2, used for non-carbon constituents.
const N2_MASS: f64 = 2.0 * 14.007;

/// Type of combustion unit (matters for the Table C-2 CH4 footnote).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CombustionUnit {
    /// Heater, heater-treater, boiler or other external combustion.
    Heater,
    /// Reciprocating internal combustion engine (compressor or pump driver, generator).
    ReciprocatingEngine,
    /// Gas turbine.
    GasTurbine,
}

impl CombustionUnit {
    fn name(self) -> &'static str {
        match self {
            CombustionUnit::Heater => "heater",
            CombustionUnit::ReciprocatingEngine => "reciprocating internal combustion engine",
            CombustionUnit::GasTurbine => "gas turbine",
        }
    }
}

/// Carbon content and molecular weight for Tier 3.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tier3Properties {
    /// Carbon content, kg C per kg fuel.
    pub carbon_content_kg_per_kg: f64,
    /// Molecular weight, kg per kg-mole.
    pub molecular_weight_kg_per_kmol: f64,
}

impl Tier3Properties {
    /// Derives CC and MW from a gas analysis. Carbon counts every carbon atom, including the
    /// CO2 in the fuel (it is emitted too); non-carbon constituents are counted as N2 in MW
    /// (CC × MW, the only product Equation C-5 uses, does not depend on that choice).
    pub fn from_composition(gas: &GasComposition) -> Result<Self, EmissionsError> {
        gas.validate()?;
        let alkane = |n: f64| n * C_MASS + (2.0 * n + 2.0) * H_MASS;
        let mw = gas.ch4 * alkane(1.0)
            + gas.c2h6 * alkane(2.0)
            + gas.c3h8 * alkane(3.0)
            + gas.c4h10 * alkane(4.0)
            + gas.c5_plus * alkane(5.0)
            + gas.co2 * (C_MASS + 2.0 * O_MASS)
            + gas.other * N2_MASS;
        let carbon = C_MASS * (gas.hydrocarbon_carbon_moles() + gas.co2);
        Ok(Tier3Properties {
            carbon_content_kg_per_kg: carbon / mw,
            molecular_weight_kg_per_kmol: mw,
        })
    }
}

/// How the fuel's CO2 is determined (§98.33(a) tiers).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FuelBasis {
    /// Tier 1: Table C-1 default HHV and EF.
    Tier1,
    /// Tier 2: measured HHV with the Table C-1 EF.
    Tier2 {
        /// Measured HHV, MMBtu/scf.
        hhv_mmbtu_per_scf: f64,
    },
    /// Tier 3: measured carbon content and molecular weight.
    Tier3 {
        /// CC and MW.
        properties: Tier3Properties,
        /// Molar volume conversion, scf/kg-mole; `None` = 849.5 (68 °F basis).
        molar_volume_scf_per_kmol: Option<f64>,
        /// Measured HHV for CH4/N2O, MMBtu/scf; `None` = Table C-1 default.
        hhv_mmbtu_per_scf: Option<f64>,
    },
}

/// Fuel gas burnt in one unit (or a group of like units) over a period.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CombustionInput {
    /// Fuel burnt, scf.
    pub fuel_scf: f64,
    /// Tier.
    pub basis: FuelBasis,
    /// Unit type.
    pub unit: CombustionUnit,
    /// Site-specific CH4 factor, kg CH4/MMBtu (required from RY2025 for engines and
    /// turbines at Subpart W facilities).
    pub ch4_kg_per_mmbtu: Option<f64>,
    /// True when the facility reports under Subpart W.
    pub subpart_w_facility: bool,
}

/// Stationary combustion emissions (Subpart C).
pub fn combustion(year: u16, input: &CombustionInput) -> Result<SourceEmissions, EmissionsError> {
    let fuel = non_negative("fuel volume (scf)", input.fuel_scf)?;
    let mut provenance = Vec::new();
    let (co2, hhv, calculation) = match input.basis {
        FuelBasis::Tier1 | FuelBasis::Tier2 { .. } => {
            let ef = factor(FactorId::NaturalGasCo2, year)?;
            let (hhv, calc) = match input.basis {
                FuelBasis::Tier2 { hhv_mmbtu_per_scf } => {
                    let hhv = positive("measured HHV (MMBtu/scf)", hhv_mmbtu_per_scf)?;
                    provenance.push(site("measured HHV", hhv, "MMBtu/scf"));
                    (hhv, TIER2)
                }
                _ => {
                    let f = factor(FactorId::NaturalGasHhv, year)?;
                    provenance.push(Provenance::Factor(f));
                    (f.value, TIER1)
                }
            };
            provenance.push(Provenance::Factor(ef));
            (fuel * hhv * ef.value, hhv, calc)
        }
        FuelBasis::Tier3 {
            properties,
            molar_volume_scf_per_kmol,
            hhv_mmbtu_per_scf,
        } => {
            let cc = fraction(
                "carbon content (kg C/kg)",
                properties.carbon_content_kg_per_kg,
            )?;
            let mw = positive(
                "molecular weight (kg/kg-mole)",
                properties.molecular_weight_kg_per_kmol,
            )?;
            provenance.push(site("carbon content", cc, "kg C/kg fuel"));
            provenance.push(site("molecular weight", mw, "kg/kg-mole"));
            let mvc = match molar_volume_scf_per_kmol {
                Some(v) => {
                    let v = positive("molar volume conversion (scf/kg-mole)", v)?;
                    provenance.push(site("molar volume conversion", v, "scf/kg-mole"));
                    v
                }
                None => {
                    let f = factor(FactorId::MolarVolume, year)?;
                    provenance.push(Provenance::Factor(f));
                    f.value
                }
            };
            let hhv = match hhv_mmbtu_per_scf {
                Some(h) => {
                    let h = positive("measured HHV (MMBtu/scf)", h)?;
                    provenance.push(site("measured HHV", h, "MMBtu/scf"));
                    h
                }
                None => {
                    let f = factor(FactorId::NaturalGasHhv, year)?;
                    provenance.push(Provenance::Factor(f));
                    f.value
                }
            };
            (CO2_PER_C * fuel * cc * mw / mvc, hhv, TIER3)
        }
    };
    let ch4_ef = match input.ch4_kg_per_mmbtu {
        Some(v) => {
            let v = non_negative("site CH4 factor (kg/MMBtu)", v)?;
            provenance.push(site("site-specific CH4 factor", v, "kg CH4/MMBtu"));
            v
        }
        None => {
            let engine_or_turbine = matches!(
                input.unit,
                CombustionUnit::ReciprocatingEngine | CombustionUnit::GasTurbine
            );
            if input.subpart_w_facility && engine_or_turbine && year >= 2025 {
                return Err(EmissionsError::Ch4DefaultNotAllowed {
                    year,
                    unit: input.unit.name(),
                });
            }
            let f = factor(FactorId::NaturalGasCh4, year)?;
            provenance.push(Provenance::Factor(f));
            f.value
        }
    };
    let n2o_ef = factor(FactorId::NaturalGasN2o, year)?;
    provenance.push(Provenance::Factor(n2o_ef));
    Ok(SourceEmissions {
        kind: SourceKind::Combustion,
        masses: GasMasses {
            co2_kg: co2,
            ch4_kg: fuel * hhv * ch4_ef,
            n2o_kg: fuel * hhv * n2o_ef.value,
        },
        calculation,
        provenance,
    })
}

const TIER1: &str = "40 CFR 98.33(a)(1) Tier 1, Equation C-1; CH4 and N2O by Equation C-8";
const TIER2: &str = "40 CFR 98.33(a)(2) Tier 2, Equation C-2a; CH4 and N2O by Equation C-8";
const TIER3: &str = "40 CFR 98.33(a)(3) Tier 3, Equation C-5; CH4 and N2O by Equation C-8";

fn site(name: &'static str, value: f64, unit: &'static str) -> Provenance {
    Provenance::SiteSpecific { name, value, unit }
}

fn positive(name: &'static str, value: f64) -> Result<f64, EmissionsError> {
    if value.is_finite() && value > 0.0 {
        Ok(value)
    } else {
        Err(EmissionsError::InvalidParameter {
            name,
            value,
            reason: "must be finite and positive",
        })
    }
}

/// Flare combustion efficiency (η of Equations W-19 and W-21).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FlareEfficiency {
    /// The regulatory default for the reporting year (0.98 for RY2011–RY2024).
    Default,
    /// A measured or manufacturer-demonstrated efficiency, 0..=1.
    Measured(f64),
    /// Gas sent to an unlit flare: η = 0.
    Unlit,
}

/// Gas sent to one flare over a period.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FlareInput {
    /// Volume sent to the flare, scf at 60 °F, 14.7 psia.
    pub volume_scf: f64,
    /// Composition of the flared gas.
    pub gas: GasComposition,
    /// Combustion efficiency.
    pub efficiency: FlareEfficiency,
    /// Measured HHV of the flared gas for N2O, MMBtu/scf; `None` = W-40 default.
    pub hhv_mmbtu_per_scf: Option<f64>,
}

/// Flare stack emissions (§98.233(n)).
pub fn flare(year: u16, input: &FlareInput) -> Result<SourceEmissions, EmissionsError> {
    let v = non_negative("flared volume (scf)", input.volume_scf)?;
    input.gas.validate()?;
    let mut provenance = Vec::new();
    let eta = match input.efficiency {
        FlareEfficiency::Default => {
            let f = factor(FactorId::FlareCombustionEfficiency, year)?;
            provenance.push(Provenance::Factor(f));
            f.value
        }
        FlareEfficiency::Measured(e) => {
            let e = fraction("flare combustion efficiency", e)?;
            provenance.push(site("measured flare combustion efficiency", e, "fraction"));
            e
        }
        FlareEfficiency::Unlit => {
            provenance.push(site("unlit flare combustion efficiency", 0.0, "fraction"));
            0.0
        }
    };
    let ch4_scf = v * (1.0 - eta) * input.gas.ch4; // W-19
    let co2_scf = v * input.gas.co2 + eta * v * input.gas.hydrocarbon_carbon_moles(); // W-20 + W-21
    let (rho_ch4, rho_co2) = densities(year, &mut provenance)?;
    let n2o_kg = if input.efficiency == FlareEfficiency::Unlit {
        0.0
    } else {
        let hhv = match input.hhv_mmbtu_per_scf {
            Some(h) => {
                let h = positive("flare gas HHV (MMBtu/scf)", h)?;
                provenance.push(site("measured flare gas HHV", h, "MMBtu/scf"));
                h
            }
            None => {
                let f = factor(FactorId::FieldGasHhv, year)?;
                provenance.push(Provenance::Factor(f));
                f.value
            }
        };
        let ef = factor(FactorId::NaturalGasN2o, year)?;
        provenance.push(Provenance::Factor(ef));
        v * hhv * ef.value // W-40
    };
    Ok(SourceEmissions {
        kind: SourceKind::Flare,
        masses: GasMasses {
            co2_kg: co2_scf * rho_co2,
            ch4_kg: ch4_scf * rho_ch4,
            n2o_kg,
        },
        calculation: "40 CFR 98.233(n) Equations W-19, W-20, W-21; masses by Equation W-36; \
                      N2O by Equation W-40",
        provenance,
    })
}

/// CH4 and CO2 densities of Equation W-36, recorded in `provenance`.
fn densities(year: u16, provenance: &mut Vec<Provenance>) -> Result<(f64, f64), EmissionsError> {
    let ch4 = factor(FactorId::Ch4Density, year)?;
    let co2 = factor(FactorId::Co2Density, year)?;
    provenance.push(Provenance::Factor(ch4));
    provenance.push(Provenance::Factor(co2));
    Ok((ch4.value, co2.value))
}

/// Gas vented to atmosphere over a period.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VentInput {
    /// Volume vented, scf at 60 °F, 14.7 psia.
    pub volume_scf: f64,
    /// Composition of the vented gas.
    pub gas: GasComposition,
}

/// Vented gas emissions: volume × mole fraction × density.
pub fn vent(year: u16, input: &VentInput) -> Result<SourceEmissions, EmissionsError> {
    let v = non_negative("vented volume (scf)", input.volume_scf)?;
    input.gas.validate()?;
    let mut provenance = Vec::new();
    let (rho_ch4, rho_co2) = densities(year, &mut provenance)?;
    Ok(SourceEmissions {
        kind: SourceKind::Vent,
        masses: GasMasses {
            co2_kg: v * input.gas.co2 * rho_co2,
            ch4_kg: v * input.gas.ch4 * rho_ch4,
            n2o_kg: 0.0,
        },
        calculation: "vented volume × CH4/CO2 mole fractions × densities (40 CFR 98.233(v) \
                      Equation W-36)",
        provenance,
    })
}

/// Count of one kind of component or major equipment in one service.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EquipmentCount {
    /// Component or equipment kind.
    pub equipment: Equipment,
    /// Service.
    pub service: Service,
    /// Number of units.
    pub count: u32,
    /// Hours in service during the period (Te).
    pub hours: f64,
}

/// Equipment-leak population inventory of a site over a period.
#[derive(Debug, Clone, PartialEq)]
pub struct LeakInput {
    /// Region for Table W-1A gas-service factors.
    pub region: Region,
    /// Counts.
    pub equipment: Vec<EquipmentCount>,
    /// Composition of the gas (CH4 and CO2 mole fractions, §98.233(u)(2)).
    pub gas: GasComposition,
}

/// Equipment leak emissions by population count (Equation W-32A).
pub fn equipment_leaks(year: u16, input: &LeakInput) -> Result<SourceEmissions, EmissionsError> {
    let mut provenance = Vec::new();
    let whole_gas_scf = population_scf(
        year,
        Some(input.region),
        input
            .equipment
            .iter()
            .map(|e| (e.equipment, e.service, e.count, e.hours)),
        &mut provenance,
    )?;
    masses_from_whole_gas(
        year,
        whole_gas_scf,
        &input.gas,
        provenance,
        SourceKind::EquipmentLeaks,
        "40 CFR 98.233(r) population count method, Equation W-32A (Table W-1A through RY2024, \
         Table W-1 from RY2025); masses by Equation W-36",
    )
}

/// Pneumatic device bleed type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BleedType {
    /// Continuous high-bleed device.
    ContinuousHigh,
    /// Intermittent-bleed device.
    Intermittent,
    /// Continuous low-bleed device.
    ContinuousLow,
    /// Natural-gas driven pneumatic pump.
    Pump,
}

impl BleedType {
    fn equipment(self) -> Equipment {
        match self {
            BleedType::ContinuousHigh => Equipment::ContinuousHighBleedPneumatic,
            BleedType::Intermittent => Equipment::IntermittentBleedPneumatic,
            BleedType::ContinuousLow => Equipment::ContinuousLowBleedPneumatic,
            BleedType::Pump => Equipment::PneumaticPump,
        }
    }
}

/// Count of natural-gas driven pneumatic devices of one bleed type.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PneumaticCount {
    /// Bleed type.
    pub bleed: BleedType,
    /// Number of devices.
    pub count: u32,
    /// Hours in service during the period.
    pub hours: f64,
}

/// Pneumatic devices of a site over a period.
#[derive(Debug, Clone, PartialEq)]
pub struct PneumaticInput {
    /// Counts by bleed type.
    pub devices: Vec<PneumaticCount>,
    /// Composition of the supply gas.
    pub gas: GasComposition,
}

/// Pneumatic device and pump venting by population count (Equation W-1).
pub fn pneumatics(year: u16, input: &PneumaticInput) -> Result<SourceEmissions, EmissionsError> {
    let mut provenance = Vec::new();
    let whole_gas_scf = population_scf(
        year,
        None,
        input
            .devices
            .iter()
            .map(|d| (d.bleed.equipment(), Service::Gas, d.count, d.hours)),
        &mut provenance,
    )?;
    masses_from_whole_gas(
        year,
        whole_gas_scf,
        &input.gas,
        provenance,
        SourceKind::Pneumatics,
        "40 CFR 98.233(a) population count method, Equation W-1 (Table W-1A through RY2024, \
         Table W-1 from RY2025); masses by Equation W-36",
    )
}

/// Σ Count × EF × T, whole gas scf, recording each factor used.
fn population_scf(
    year: u16,
    region: Option<Region>,
    items: impl Iterator<Item = (Equipment, Service, u32, f64)>,
    provenance: &mut Vec<Provenance>,
) -> Result<f64, EmissionsError> {
    let mut scf = 0.0;
    for (equipment, service, count, hours) in items {
        let hours = non_negative("hours in service", hours)?;
        let row: &'static factors::PopulationFactor =
            population_factor(equipment, service, region, year)?;
        if !provenance
            .iter()
            .any(|p| matches!(p, Provenance::Population(r) if std::ptr::eq(*r, row)))
        {
            provenance.push(Provenance::Population(row));
        }
        scf += f64::from(count) * row.scf_per_hour * hours;
    }
    Ok(scf)
}

fn masses_from_whole_gas(
    year: u16,
    whole_gas_scf: f64,
    gas: &GasComposition,
    mut provenance: Vec<Provenance>,
    kind: SourceKind,
    calculation: &'static str,
) -> Result<SourceEmissions, EmissionsError> {
    gas.validate()?;
    let (rho_ch4, rho_co2) = densities(year, &mut provenance)?;
    Ok(SourceEmissions {
        kind,
        masses: GasMasses {
            co2_kg: whole_gas_scf * gas.co2 * rho_co2,
            ch4_kg: whole_gas_scf * gas.ch4 * rho_ch4,
            n2o_kg: 0.0,
        },
        calculation,
        provenance,
    })
}
