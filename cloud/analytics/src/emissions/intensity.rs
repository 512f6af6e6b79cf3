//! Emission intensities.
//!
//! * `BOE = oil_bbl + gas_produced_mcf / mcf_per_boe` (6 Mcf/bbl by default, configurable).
//! * `kg CH4 / BOE` and `kg CO2e / BOE` (CO2e with the chosen GWP set, stamped).
//! * Methane intensity, % of gas sold — the OGCI / Waste Emissions Charge definition: methane
//!   mass emitted ÷ methane mass in the gas sent to sale × 100, where the methane in sales gas
//!   is `gas_sold_scf × X_CH4(sales) × 0.0192 kg/scf` (Equation W-36 density). The WEC
//!   threshold for production facilities is 0.20 % of this quantity.
//! * New Mexico gas capture, % — 19.15.27.9 NMAC: `(produced − vented − flared) ÷ produced
//!   × 100`. Volumes that 19.15.27.9 NMAC lets an operator exclude must be taken out of
//!   `gas_vented_mcf` / `gas_flared_mcf` before the call.
//!
//! A ratio whose denominator is zero is `None` (no production, no sales), never infinity.

use super::factors::{FactorId, factor};
use super::gwp::{GwpSet, GwpValues, co2e};
use super::{EmissionsError, GasMasses, fraction, non_negative};
use crate::units::SCF_PER_MCF;

/// Production volumes of the period the emissions cover.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ProductionVolumes {
    /// Oil and condensate produced, bbl.
    pub oil_bbl: f64,
    /// Gas produced, Mcf.
    pub gas_produced_mcf: f64,
    /// Gas sent to sale, Mcf.
    pub gas_sold_mcf: f64,
    /// Gas vented, Mcf.
    pub gas_vented_mcf: f64,
    /// Gas flared, Mcf.
    pub gas_flared_mcf: f64,
}

/// Parameters of the intensity metrics.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IntensityParams {
    /// Mcf of gas per barrel of oil equivalent.
    pub mcf_per_boe: f64,
    /// GWP set for CO2e.
    pub gwp: GwpSet,
    /// CH4 mole fraction of the gas sent to sale.
    pub sales_gas_ch4_fraction: f64,
}

impl Default for IntensityParams {
    fn default() -> Self {
        IntensityParams {
            mcf_per_boe: 6.0,
            gwp: GwpSet::Ar5,
            sales_gas_ch4_fraction: 0.0,
        }
    }
}

/// Intensity metrics of one period.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Intensities {
    /// Barrels of oil equivalent.
    pub boe: f64,
    /// Mcf per BOE used.
    pub mcf_per_boe: f64,
    /// kg CH4 per BOE.
    pub kg_ch4_per_boe: Option<f64>,
    /// kg CO2e per BOE.
    pub kg_co2e_per_boe: Option<f64>,
    /// GWPs used for CO2e.
    pub gwp: &'static GwpValues,
    /// Methane emitted as % of methane in gas sent to sale.
    pub methane_intensity_pct: Option<f64>,
    /// New Mexico gas capture, %.
    pub nm_gas_capture_pct: Option<f64>,
}

/// Computes the intensity metrics of `emissions` against `volumes`.
pub fn intensities(
    year: u16,
    emissions: &GasMasses,
    volumes: &ProductionVolumes,
    params: &IntensityParams,
) -> Result<Intensities, EmissionsError> {
    let oil = non_negative("oil produced (bbl)", volumes.oil_bbl)?;
    let produced = non_negative("gas produced (Mcf)", volumes.gas_produced_mcf)?;
    let sold = non_negative("gas sold (Mcf)", volumes.gas_sold_mcf)?;
    let vented = non_negative("gas vented (Mcf)", volumes.gas_vented_mcf)?;
    let flared = non_negative("gas flared (Mcf)", volumes.gas_flared_mcf)?;
    let x_ch4 = fraction("sales gas CH4 mole fraction", params.sales_gas_ch4_fraction)?;
    if !(params.mcf_per_boe.is_finite() && params.mcf_per_boe > 0.0) {
        return Err(EmissionsError::InvalidParameter {
            name: "Mcf per BOE",
            value: params.mcf_per_boe,
            reason: "must be finite and positive",
        });
    }
    let boe = oil + produced / params.mcf_per_boe;
    let per_boe = |kg: f64| (boe > 0.0).then(|| kg / boe);
    let c = co2e(emissions, params.gwp);
    let rho_ch4 = factor(FactorId::Ch4Density, year)?.value;
    let ch4_in_sales_kg = sold * SCF_PER_MCF * x_ch4 * rho_ch4;
    Ok(Intensities {
        boe,
        mcf_per_boe: params.mcf_per_boe,
        kg_ch4_per_boe: per_boe(emissions.ch4_kg),
        kg_co2e_per_boe: per_boe(c.kg),
        gwp: c.gwp,
        methane_intensity_pct: (ch4_in_sales_kg > 0.0)
            .then(|| emissions.ch4_kg / ch4_in_sales_kg * 100.0),
        nm_gas_capture_pct: (produced > 0.0)
            .then(|| (produced - vented - flared) / produced * 100.0),
    })
}
