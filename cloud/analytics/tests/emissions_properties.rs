//! Property tests: CO2e is linear in the masses; masses are never negative; flare methane
//! falls as combustion efficiency rises.

use analytics::emissions::GasComposition;
use analytics::emissions::GasMasses;
use analytics::emissions::factors::{Equipment, Region, Service};
use analytics::emissions::gwp::{GwpSet, co2e};
use analytics::emissions::methods::{
    CombustionInput, CombustionUnit, EquipmentCount, FlareEfficiency, FlareInput, FuelBasis,
    LeakInput, VentInput, combustion, equipment_leaks, flare, vent,
};
use proptest::prelude::*;

fn masses() -> impl Strategy<Value = GasMasses> {
    (0.0..1e7f64, 0.0..1e5f64, 0.0..1e3f64).prop_map(|(co2_kg, ch4_kg, n2o_kg)| GasMasses {
        co2_kg,
        ch4_kg,
        n2o_kg,
    })
}

fn gwp_set() -> impl Strategy<Value = GwpSet> {
    prop_oneof![Just(GwpSet::Ar4), Just(GwpSet::Ar5), Just(GwpSet::Ar6)]
}

/// Random valid compositions: seven positive weights normalized to sum 1.
fn composition() -> impl Strategy<Value = GasComposition> {
    proptest::collection::vec(0.0..1.0f64, 7).prop_filter_map("non-zero", |w| {
        let sum: f64 = w.iter().sum();
        (sum > 1e-6).then(|| GasComposition {
            ch4: w[0] / sum,
            c2h6: w[1] / sum,
            c3h8: w[2] / sum,
            c4h10: w[3] / sum,
            c5_plus: w[4] / sum,
            co2: w[5] / sum,
            other: w[6] / sum,
        })
    })
}

fn rel_eq(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12 * a.abs().max(b.abs()).max(1.0)
}

fn non_negative(m: &GasMasses) -> bool {
    [m.co2_kg, m.ch4_kg, m.n2o_kg]
        .iter()
        .all(|v| v.is_finite() && *v >= 0.0)
}

proptest! {
    #[test]
    fn co2e_is_additive(a in masses(), b in masses(), set in gwp_set()) {
        let sum = co2e(&(a + b), set).kg;
        prop_assert!(rel_eq(sum, co2e(&a, set).kg + co2e(&b, set).kg));
    }

    #[test]
    fn co2e_is_homogeneous(a in masses(), k in 0.0..1e3f64, set in gwp_set()) {
        let scaled = GasMasses { co2_kg: a.co2_kg * k, ch4_kg: a.ch4_kg * k, n2o_kg: a.n2o_kg * k };
        prop_assert!(rel_eq(co2e(&scaled, set).kg, k * co2e(&a, set).kg));
    }

    #[test]
    fn flare_masses_non_negative_and_ch4_falls_with_efficiency(
        v in 0.0..1e8f64, gas in composition(), e1 in 0.0..=1.0f64, e2 in 0.0..=1.0f64,
    ) {
        let run = |e: f64| flare(2024, &FlareInput {
            volume_scf: v, gas, efficiency: FlareEfficiency::Measured(e), hhv_mmbtu_per_scf: None,
        }).unwrap().masses;
        let (lo, hi) = if e1 <= e2 { (e1, e2) } else { (e2, e1) };
        let (m_lo, m_hi) = (run(lo), run(hi));
        prop_assert!(non_negative(&m_lo) && non_negative(&m_hi));
        prop_assert!(m_hi.ch4_kg <= m_lo.ch4_kg);
        prop_assert!(m_hi.co2_kg >= m_lo.co2_kg);
    }

    #[test]
    fn vent_leak_combustion_masses_non_negative(
        v in 0.0..1e8f64, gas in composition(), n in 0u32..10_000, hours in 0.0..8_784.0f64,
        year in 2014u16..=2024,
    ) {
        let m = vent(year, &VentInput { volume_scf: v, gas }).unwrap().masses;
        prop_assert!(non_negative(&m));
        let leaks = LeakInput {
            region: Region::Eastern,
            equipment: vec![EquipmentCount { equipment: Equipment::Valve, service: Service::Gas, count: n, hours }],
            gas,
        };
        prop_assert!(non_negative(&equipment_leaks(year, &leaks).unwrap().masses));
        let c = combustion(year, &CombustionInput {
            fuel_scf: v, basis: FuelBasis::Tier1, unit: CombustionUnit::Heater,
            ch4_kg_per_mmbtu: None, subpart_w_facility: true,
        }).unwrap();
        prop_assert!(non_negative(&c.masses));
    }
}
