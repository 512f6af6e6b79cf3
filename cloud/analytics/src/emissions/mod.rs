//! Greenhouse-gas emissions of wellsites under 40 CFR Part 98 Subparts C and W.
//!
//! # Design
//! * Emissions are **mass per gas** ([`GasMasses`]: kg CO2, kg CH4, kg N2O). CO2e is never
//!   stored: [`gwp::co2e`] computes it at report time with a chosen GWP set that is stamped
//!   on the result.
//! * Every constant comes from [`factors`], where each row carries its citation and the
//!   reporting years it applies to; using a factor outside its years is an error.
//! * Every [`SourceEmissions`] records the calculation it followed and the provenance of
//!   every factor or site-specific parameter it used ([`Provenance`]).
//! * Inputs are validated (finite, non-negative volumes; fractions in 0..=1; compositions
//!   that add up), so masses are never negative.
//!
//! # Methods (see [`methods`] for the formulas)
//! * stationary combustion — Subpart C Tier 1/2/3 (§98.33(a)), CH4/N2O by Equation C-8;
//! * flares — §98.233(n) Equations W-19/W-20/W-21, masses by W-36, N2O by W-40;
//! * venting — volume × mole fraction × density (Equation W-36);
//! * equipment leaks — population counts × Table W-1A / W-1 factors × hours × mole
//!   fraction (Equation W-32A);
//! * pneumatic devices and pumps — counts by bleed type × Table W-1A / W-1 factors × hours
//!   × mole fraction (Equation W-1).
//!
//! [`inventory`] aggregates sources for a reporting year, and can build flare, vent and
//! fuel-combustion activity from daily production figures. [`intensity`] turns an
//! inventory and production volumes into per-BOE and methane-intensity metrics.
//!
//! Volumes given to these methods are gas volumes at Subpart W standard conditions
//! (60 °F, 14.7 psia) unless a method states otherwise; convert with
//! [`crate::units::to_subpart_w_standard_scf`] when the meter basis differs.
//!
//! Note: older design notes quoted "53.06 kg/Mcf", "flare CH4 0.0054 kg/Mcf" and "GWP 25";
//! those are wrong. 53.06 is kg CO2 per **MMBtu** (Table C-1), flare CH4 follows from the
//! unburnt fraction and the W-36 density, and the GHGRP uses AR5 (CH4 28) from RY2024.

pub mod factors;
pub mod gwp;
pub mod intensity;
pub mod inventory;
pub mod methods;

use std::ops::{Add, AddAssign};

/// Mass emitted per gas, kg. All fields are finite and non-negative.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct GasMasses {
    /// kg CO2.
    pub co2_kg: f64,
    /// kg CH4.
    pub ch4_kg: f64,
    /// kg N2O.
    pub n2o_kg: f64,
}

impl Add for GasMasses {
    type Output = GasMasses;
    fn add(self, rhs: GasMasses) -> GasMasses {
        GasMasses {
            co2_kg: self.co2_kg + rhs.co2_kg,
            ch4_kg: self.ch4_kg + rhs.ch4_kg,
            n2o_kg: self.n2o_kg + rhs.n2o_kg,
        }
    }
}

impl AddAssign for GasMasses {
    fn add_assign(&mut self, rhs: GasMasses) {
        *self = *self + rhs;
    }
}

/// Errors of the emission calculations.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EmissionsError {
    /// No row of a factor table applies to the reporting year.
    #[error("no {factor} for reporting year RY{year}; table rows: {available}")]
    NoFactorForYear {
        /// Factor description.
        factor: String,
        /// Requested reporting year.
        year: u16,
        /// Years (and sources) the table does cover.
        available: String,
    },
    /// A parameter is outside its valid range.
    #[error("invalid {name} = {value}: {reason}")]
    InvalidParameter {
        /// Parameter name.
        name: &'static str,
        /// Offending value.
        value: f64,
        /// What is expected.
        reason: &'static str,
    },
    /// Mole fractions do not add up to one.
    #[error("gas composition mole fractions add up to {sum}, expected 1 ± {tolerance}")]
    CompositionSum {
        /// Sum of the fractions.
        sum: f64,
        /// Accepted deviation.
        tolerance: f64,
    },
    /// Subpart W reporters must not use the Table C-2 CH4 default for this unit type.
    #[error(
        "RY{year}: the Table C-2 natural gas CH4 default may not be used for a {unit} at a \
         Subpart W facility (Table C-2 footnote 1, 89 FR 42220); supply a CH4 factor \
         determined under 40 CFR 98.233(z)(4)"
    )]
    Ch4DefaultNotAllowed {
        /// Reporting year.
        year: u16,
        /// Unit type.
        unit: &'static str,
    },
    /// Activity data (a daily volume) is missing or incomplete.
    #[error(
        "{quantity} volume missing or incomplete on {days} day(s), first day starting at {first_day_ms} ms"
    )]
    MissingActivityData {
        /// Quantity name.
        quantity: &'static str,
        /// Number of incomplete days.
        days: usize,
        /// Start of the first incomplete day, UTC ms.
        first_day_ms: i64,
    },
}

/// Checks that `value` is finite and non-negative.
pub(crate) fn non_negative(name: &'static str, value: f64) -> Result<f64, EmissionsError> {
    if value.is_finite() && value >= 0.0 {
        Ok(value)
    } else {
        Err(EmissionsError::InvalidParameter {
            name,
            value,
            reason: "must be finite and non-negative",
        })
    }
}

/// Checks that `value` is a fraction in 0..=1.
pub(crate) fn fraction(name: &'static str, value: f64) -> Result<f64, EmissionsError> {
    if value.is_finite() && (0.0..=1.0).contains(&value) {
        Ok(value)
    } else {
        Err(EmissionsError::InvalidParameter {
            name,
            value,
            reason: "must be a fraction between 0 and 1",
        })
    }
}

/// Molar composition of a gas stream (mole fractions).
///
/// The hydrocarbon split follows Equation W-21 (methane, ethane, propane, butanes,
/// pentanes plus, with 1 to 5 carbon atoms); `other` holds every non-carbon constituent
/// (N2, H2S, He, H2O…). The fractions must add up to 1 within [`COMPOSITION_TOLERANCE`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GasComposition {
    /// Methane.
    pub ch4: f64,
    /// Ethane.
    pub c2h6: f64,
    /// Propane.
    pub c3h8: f64,
    /// Butanes.
    pub c4h10: f64,
    /// Pentanes plus (counted with 5 carbon atoms per Equation W-21).
    pub c5_plus: f64,
    /// Carbon dioxide.
    pub co2: f64,
    /// Non-carbon constituents.
    pub other: f64,
}

/// Accepted deviation of a composition's sum from 1 (analysis rounding).
pub const COMPOSITION_TOLERANCE: f64 = 0.01;

impl GasComposition {
    /// Validates the fractions.
    pub fn validate(&self) -> Result<(), EmissionsError> {
        let parts = [
            ("ch4 mole fraction", self.ch4),
            ("c2h6 mole fraction", self.c2h6),
            ("c3h8 mole fraction", self.c3h8),
            ("c4h10 mole fraction", self.c4h10),
            ("c5+ mole fraction", self.c5_plus),
            ("co2 mole fraction", self.co2),
            ("other mole fraction", self.other),
        ];
        for (name, v) in parts {
            fraction(name, v)?;
        }
        let sum: f64 = parts.iter().map(|p| p.1).sum();
        if (sum - 1.0).abs() > COMPOSITION_TOLERANCE {
            return Err(EmissionsError::CompositionSum {
                sum,
                tolerance: COMPOSITION_TOLERANCE,
            });
        }
        Ok(())
    }

    /// Σ Yj × Rj of Equation W-21: moles of hydrocarbon carbon per mole of gas.
    pub fn hydrocarbon_carbon_moles(&self) -> f64 {
        self.ch4 + 2.0 * self.c2h6 + 3.0 * self.c3h8 + 4.0 * self.c4h10 + 5.0 * self.c5_plus
    }
}

/// Kind of emission source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SourceKind {
    /// Stationary fuel combustion (Subpart C methods).
    Combustion,
    /// Flare stack.
    Flare,
    /// Vented gas.
    Vent,
    /// Equipment leaks by population count.
    EquipmentLeaks,
    /// Pneumatic device vents and pumps.
    Pneumatics,
}

impl SourceKind {
    /// Stable name for exports.
    pub fn name(self) -> &'static str {
        match self {
            SourceKind::Combustion => "combustion",
            SourceKind::Flare => "flare",
            SourceKind::Vent => "vent",
            SourceKind::EquipmentLeaks => "equipment_leaks",
            SourceKind::Pneumatics => "pneumatics",
        }
    }
}

/// Where a number used in a calculation came from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Provenance {
    /// A regulatory default from [`factors::FACTORS`].
    Factor(&'static factors::Factor),
    /// A population factor from [`factors::POPULATION_FACTORS`].
    Population(&'static factors::PopulationFactor),
    /// A measured or site-specific value supplied by the caller.
    SiteSpecific {
        /// What it is.
        name: &'static str,
        /// Its value.
        value: f64,
        /// Its unit.
        unit: &'static str,
    },
}

/// Emissions of one source for one period.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceEmissions {
    /// Kind of source.
    pub kind: SourceKind,
    /// Mass per gas.
    pub masses: GasMasses,
    /// Calculation followed (equations and sections).
    pub calculation: &'static str,
    /// Factors and parameters used.
    pub provenance: Vec<Provenance>,
}
