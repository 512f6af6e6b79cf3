//! Unit constants and conversions shared by `production`, `emissions` and `reports`.
//!
//! Oil-field volumes stay in the units the industry and the regulators use: liquids in
//! barrels (bbl, 42 US gal), gas in Mcf (thousand standard cubic feet). Emission masses are
//! kilograms. Everything is `f64`; no unit newtypes, but every public field name carries its
//! unit suffix (`_bbl`, `_mcf`, `_scf`, `_kg`, `_ms`).
//!
//! Standard conditions: 40 CFR 98 Subpart W defines standard conditions as 60 °F and
//! 14.7 psia (§98.238 "standard conditions"); the GHG densities of §98.233(v) are given at
//! those conditions. Flow computers report at a contract pressure base (often 14.65 or
//! 14.73 psia); [`to_subpart_w_standard_scf`] applies Equation W-33's ideal-gas correction
//! when a caller knows the volume basis differs.

/// Standard cubic feet in one Mcf.
pub const SCF_PER_MCF: f64 = 1000.0;
/// Milliseconds in one day.
pub const MS_PER_DAY: f64 = 86_400_000.0;
/// Milliseconds in one hour.
pub const MS_PER_HOUR: f64 = 3_600_000.0;
/// Rankine offset: °R = °F + 459.67.
pub const RANKINE_OFFSET: f64 = 459.67;
/// Subpart W standard temperature, °F (§98.238).
pub const SUBPART_W_STANDARD_TEMPERATURE_F: f64 = 60.0;
/// Subpart W standard pressure, psia (§98.238).
pub const SUBPART_W_STANDARD_PRESSURE_PSIA: f64 = 14.7;

/// Temperature and pressure at which a gas volume is expressed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VolumeBasis {
    /// Temperature of the volume basis, °F.
    pub temperature_f: f64,
    /// Absolute pressure of the volume basis, psia.
    pub pressure_psia: f64,
}

impl VolumeBasis {
    /// 60 °F and 14.7 psia: the Subpart W standard conditions.
    pub const SUBPART_W_STANDARD: VolumeBasis = VolumeBasis {
        temperature_f: SUBPART_W_STANDARD_TEMPERATURE_F,
        pressure_psia: SUBPART_W_STANDARD_PRESSURE_PSIA,
    };
}

impl Default for VolumeBasis {
    fn default() -> Self {
        Self::SUBPART_W_STANDARD
    }
}

/// Converts a gas volume from `basis` to Subpart W standard conditions (60 °F, 14.7 psia)
/// with the ideal-gas relation of 40 CFR 98.233(t), Equation W-33:
/// `Es = Ea × (459.67 + Ts) × Pa / ((459.67 + Ta) × Ps)`.
///
/// The result is in the same volume unit as `volume`.
pub fn to_subpart_w_standard_scf(volume: f64, basis: VolumeBasis) -> f64 {
    if basis == VolumeBasis::SUBPART_W_STANDARD {
        return volume; // exact: no rounding from the identity ratio
    }
    volume * (RANKINE_OFFSET + SUBPART_W_STANDARD_TEMPERATURE_F) * basis.pressure_psia
        / ((RANKINE_OFFSET + basis.temperature_f) * SUBPART_W_STANDARD_PRESSURE_PSIA)
}

/// Converts Mcf to scf.
pub fn mcf_to_scf(mcf: f64) -> f64 {
    mcf * SCF_PER_MCF
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_basis_is_identity() {
        assert_eq!(
            to_subpart_w_standard_scf(123.0, VolumeBasis::default()),
            123.0
        );
    }

    #[test]
    fn w33_pressure_base_correction() {
        // 1000 scf at 60 °F, 14.73 psia is 1000 × 14.73 / 14.7 at 14.7 psia.
        let basis = VolumeBasis {
            temperature_f: 60.0,
            pressure_psia: 14.73,
        };
        let got = to_subpart_w_standard_scf(1000.0, basis);
        assert!((got - 1000.0 * 14.73 / 14.7).abs() < 1e-9);
    }

    #[test]
    fn w33_temperature_correction() {
        // Warmer basis → fewer standard cubic feet.
        let basis = VolumeBasis {
            temperature_f: 80.0,
            pressure_psia: 14.7,
        };
        let got = to_subpart_w_standard_scf(1000.0, basis);
        assert!((got - 1000.0 * 519.67 / 539.67).abs() < 1e-9);
    }
}
