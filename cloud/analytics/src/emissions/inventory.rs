//! Emission inventory of a reporting year: per-source masses and totals.
//!
//! [`Inventory::compute`] runs each source through its method from [`super::methods`] for
//! one reporting year (which selects the factor table rows). [`activity_from_production`]
//! builds the flare, vent and fuel-combustion inputs of a well from its daily production
//! figures; a day whose flared, vented or fuel figure is missing or incomplete is an error,
//! because an emission inventory must not treat unknown volumes as zero.

use super::gwp::{Co2e, GwpSet, co2e};
use super::methods::{
    CombustionInput, CombustionUnit, FlareEfficiency, FlareInput, FuelBasis, LeakInput,
    PneumaticInput, VentInput, combustion, equipment_leaks, flare, pneumatics, vent,
};
use super::{EmissionsError, GasComposition, GasMasses, SourceEmissions, SourceKind};
use crate::production::{DailyProduction, Quantity};
use crate::units::{VolumeBasis, mcf_to_scf, to_subpart_w_standard_scf};

/// Activity data of one source.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceInput {
    /// Fuel combustion.
    Combustion(CombustionInput),
    /// Flare.
    Flare(FlareInput),
    /// Venting.
    Vent(VentInput),
    /// Equipment leaks.
    EquipmentLeaks(LeakInput),
    /// Pneumatic devices and pumps.
    Pneumatics(PneumaticInput),
}

/// Emissions of one source for `year`.
pub fn source_emissions(year: u16, input: &SourceInput) -> Result<SourceEmissions, EmissionsError> {
    match input {
        SourceInput::Combustion(i) => combustion(year, i),
        SourceInput::Flare(i) => flare(year, i),
        SourceInput::Vent(i) => vent(year, i),
        SourceInput::EquipmentLeaks(i) => equipment_leaks(year, i),
        SourceInput::Pneumatics(i) => pneumatics(year, i),
    }
}

/// Emissions of a set of sources for one reporting year.
#[derive(Debug, Clone, PartialEq)]
pub struct Inventory {
    /// Reporting year whose factors were used.
    pub reporting_year: u16,
    /// Per-source results, in input order.
    pub sources: Vec<SourceEmissions>,
    /// Sum over sources.
    pub total: GasMasses,
}

impl Inventory {
    /// Computes every source; the first error aborts (no partial inventory).
    pub fn compute(year: u16, inputs: &[SourceInput]) -> Result<Inventory, EmissionsError> {
        let mut sources = Vec::with_capacity(inputs.len());
        let mut total = GasMasses::default();
        for input in inputs {
            let s = source_emissions(year, input)?;
            total += s.masses;
            sources.push(s);
        }
        Ok(Inventory {
            reporting_year: year,
            sources,
            total,
        })
    }

    /// Sum of the sources of one kind.
    pub fn by_kind(&self, kind: SourceKind) -> GasMasses {
        self.sources
            .iter()
            .filter(|s| s.kind == kind)
            .fold(GasMasses::default(), |acc, s| acc + s.masses)
    }

    /// CO2e of the total, stamped with the GWP set.
    pub fn co2e(&self, set: GwpSet) -> Co2e {
        co2e(&self.total, set)
    }
}

/// Parameters to turn a well's flared, vented and fuel gas volumes into source inputs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WellEmissionParams {
    /// Composition of the produced gas (flared, vented and burnt).
    pub gas: GasComposition,
    /// Flare combustion efficiency.
    pub flare_efficiency: FlareEfficiency,
    /// Measured HHV of the flared gas, MMBtu/scf (`None` = W-40 default).
    pub flare_hhv_mmbtu_per_scf: Option<f64>,
    /// Tier for the fuel gas.
    pub fuel_basis: FuelBasis,
    /// Unit burning the fuel gas.
    pub fuel_unit: CombustionUnit,
    /// Site-specific CH4 factor for the fuel unit, kg/MMBtu.
    pub fuel_ch4_kg_per_mmbtu: Option<f64>,
    /// True at a Subpart W facility.
    pub subpart_w_facility: bool,
    /// Basis of the metered volumes (converted to 60 °F, 14.7 psia by Equation W-33).
    pub volume_basis: VolumeBasis,
}

/// Builds flare, vent and combustion inputs from daily figures; zero volumes add no source.
pub fn activity_from_production(
    days: &[DailyProduction],
    params: &WellEmissionParams,
) -> Result<Vec<SourceInput>, EmissionsError> {
    let mut inputs = Vec::with_capacity(3);
    let flared = period_scf(days, Quantity::Flared, params.volume_basis)?;
    if flared > 0.0 {
        inputs.push(SourceInput::Flare(FlareInput {
            volume_scf: flared,
            gas: params.gas,
            efficiency: params.flare_efficiency,
            hhv_mmbtu_per_scf: params.flare_hhv_mmbtu_per_scf,
        }));
    }
    let vented = period_scf(days, Quantity::Vented, params.volume_basis)?;
    if vented > 0.0 {
        inputs.push(SourceInput::Vent(VentInput {
            volume_scf: vented,
            gas: params.gas,
        }));
    }
    let fuel = period_scf(days, Quantity::Fuel, params.volume_basis)?;
    if fuel > 0.0 {
        inputs.push(SourceInput::Combustion(CombustionInput {
            fuel_scf: fuel,
            basis: params.fuel_basis,
            unit: params.fuel_unit,
            ch4_kg_per_mmbtu: params.fuel_ch4_kg_per_mmbtu,
            subpart_w_facility: params.subpart_w_facility,
        }));
    }
    Ok(inputs)
}

/// Total of a gas quantity over the days, scf at Subpart W standard conditions.
fn period_scf(
    days: &[DailyProduction],
    quantity: Quantity,
    basis: VolumeBasis,
) -> Result<f64, EmissionsError> {
    let mut total_mcf = 0.0;
    let mut incomplete = days.iter().filter(|d| !d.figure(quantity).is_complete());
    if let Some(first) = incomplete.next() {
        return Err(EmissionsError::MissingActivityData {
            quantity: quantity.name(),
            days: 1 + incomplete.count(),
            first_day_ms: first.window.start_ms,
        });
    }
    for d in days {
        let v = d.figure(quantity).value.unwrap_or(0.0);
        total_mcf += super::non_negative("daily gas volume (Mcf)", v)?;
    }
    Ok(to_subpart_w_standard_scf(mcf_to_scf(total_mcf), basis))
}
