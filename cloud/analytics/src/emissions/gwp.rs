//! Global warming potentials and CO2-equivalent.
//!
//! Emissions are stored as mass per gas; CO2e is computed only when a report is made, with a
//! GWP set chosen by the caller and stamped on the result ([`Co2e::gwp`]), so a figure can
//! always be traced to the GWPs behind it and recomputed with another set.
//!
//! | set | CH4 | N2O | source |
//! |-----|-----|-----|--------|
//! | AR4 | 25  | 298 | 40 CFR 98 Table A-1 (GHGRP RY2014–RY2023) |
//! | AR5 | 28  | 265 | 40 CFR 98 Table A-1 as amended 89 FR 31802 (Apr. 25, 2024), GHGRP from RY2024 — the default |
//! | AR6 | 29.8 | 273 | IPCC AR6 WG1 Ch. 7 Table 7.15, 100-year, fossil CH4 (not used by the GHGRP) |
//!
//! `CO2e = m_CO2 × 1 + m_CH4 × GWP_CH4 + m_N2O × GWP_N2O` (40 CFR 98.2(b)(4),
//! Equation A-1). It is linear in the masses.

use super::GasMasses;

/// Selectable GWP set (100-year horizon).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum GwpSet {
    /// IPCC Fourth Assessment Report values.
    Ar4,
    /// IPCC Fifth Assessment Report values; EPA GHGRP from RY2024. Default.
    #[default]
    Ar5,
    /// IPCC Sixth Assessment Report values (fossil methane).
    Ar6,
}

/// The GWP values of a set, with their source; stamped on every CO2e figure.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GwpValues {
    /// Which set.
    pub set: GwpSet,
    /// Short label, e.g. `AR5`.
    pub label: &'static str,
    /// GWP of CH4.
    pub ch4: f64,
    /// GWP of N2O.
    pub n2o: f64,
    /// Citation.
    pub source: &'static str,
}

static AR4: GwpValues = GwpValues {
    set: GwpSet::Ar4,
    label: "AR4",
    ch4: 25.0,
    n2o: 298.0,
    source: "40 CFR 98 Subpart A, Table A-1 (IPCC AR4 100-year; GHGRP RY2014–RY2023)",
};
static AR5: GwpValues = GwpValues {
    set: GwpSet::Ar5,
    label: "AR5",
    ch4: 28.0,
    n2o: 265.0,
    source: "40 CFR 98 Subpart A, Table A-1 as amended 89 FR 31802 (IPCC AR5 100-year; GHGRP from RY2024)",
};
static AR6: GwpValues = GwpValues {
    set: GwpSet::Ar6,
    label: "AR6",
    ch4: 29.8,
    n2o: 273.0,
    source: "IPCC AR6 WG1 Chapter 7, Table 7.15 (100-year; fossil CH4)",
};

impl GwpSet {
    /// The values of this set.
    pub fn values(self) -> &'static GwpValues {
        match self {
            GwpSet::Ar4 => &AR4,
            GwpSet::Ar5 => &AR5,
            GwpSet::Ar6 => &AR6,
        }
    }

    /// The set EPA's GHGRP Table A-1 prescribes for `year` (AR4 before RY2024, AR5 from it).
    /// `None` before RY2014, when Table A-1 held SAR values this crate does not carry.
    pub fn ghgrp_for_year(year: u16) -> Option<GwpSet> {
        match year {
            0..=2013 => None,
            2014..=2023 => Some(GwpSet::Ar4),
            _ => Some(GwpSet::Ar5),
        }
    }
}

/// A CO2-equivalent mass stamped with the GWP set used.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Co2e {
    /// kg CO2e.
    pub kg: f64,
    /// GWPs used.
    pub gwp: &'static GwpValues,
}

/// CO2e of `masses` with the GWP set `set`.
pub fn co2e(masses: &GasMasses, set: GwpSet) -> Co2e {
    let gwp = set.values();
    Co2e {
        kg: masses.co2_kg + masses.ch4_kg * gwp.ch4 + masses.n2o_kg * gwp.n2o,
        gwp,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_ar5() {
        assert_eq!(GwpSet::default(), GwpSet::Ar5);
        assert_eq!(GwpSet::Ar5.values().ch4, 28.0);
        assert_eq!(GwpSet::Ar5.values().n2o, 265.0);
    }

    #[test]
    fn ghgrp_year_mapping() {
        assert_eq!(GwpSet::ghgrp_for_year(2013), None);
        assert_eq!(GwpSet::ghgrp_for_year(2023), Some(GwpSet::Ar4));
        assert_eq!(GwpSet::ghgrp_for_year(2024), Some(GwpSet::Ar5));
    }

    #[test]
    fn co2e_weights_each_gas() {
        let m = GasMasses {
            co2_kg: 1000.0,
            ch4_kg: 10.0,
            n2o_kg: 1.0,
        };
        let c = co2e(&m, GwpSet::Ar4);
        assert_eq!(c.kg, 1000.0 + 250.0 + 298.0);
        assert_eq!(c.gwp.label, "AR4");
        assert_eq!(co2e(&m, GwpSet::Ar6).kg, 1000.0 + 298.0 + 273.0);
    }
}
