//! Hand-worked examples for each emission method, computed from the cited formulas.
//! Each expected value is derived in the comments; results must match to 1e-9 relative.

use analytics::emissions::factors::{Equipment, Region, Service};
use analytics::emissions::gwp::{GwpSet, co2e};
use analytics::emissions::intensity::{IntensityParams, ProductionVolumes, intensities};
use analytics::emissions::inventory::{Inventory, SourceInput};
use analytics::emissions::methods::{
    BleedType, CombustionInput, CombustionUnit, EquipmentCount, FlareEfficiency, FlareInput,
    FuelBasis, LeakInput, PneumaticCount, PneumaticInput, Tier3Properties, VentInput, combustion,
    equipment_leaks, flare, pneumatics, vent,
};
use analytics::emissions::{EmissionsError, GasComposition, GasMasses, Provenance, SourceKind};

fn close(actual: f64, expected: f64) {
    let tol = 1e-9 * expected.abs().max(1e-300);
    assert!(
        (actual - expected).abs() <= tol,
        "actual {actual} expected {expected} (rel err {})",
        ((actual - expected) / expected).abs()
    );
}

fn masses(m: &GasMasses, co2: f64, ch4: f64, n2o: f64) {
    close(m.co2_kg, co2);
    close(m.ch4_kg, ch4);
    if n2o == 0.0 {
        assert_eq!(m.n2o_kg, 0.0);
    } else {
        close(m.n2o_kg, n2o);
    }
}

/// Field gas used throughout: Σ = 0.80 + 0.10 + 0.05 + 0.02 + 0.01 + 0.01 + 0.01 = 1.00.
fn field_gas() -> GasComposition {
    GasComposition {
        ch4: 0.80,
        c2h6: 0.10,
        c3h8: 0.05,
        c4h10: 0.02,
        c5_plus: 0.01,
        co2: 0.01,
        other: 0.01,
    }
}

fn heater(basis: FuelBasis, fuel_scf: f64) -> CombustionInput {
    CombustionInput {
        fuel_scf,
        basis,
        unit: CombustionUnit::Heater,
        ch4_kg_per_mmbtu: None,
        subpart_w_facility: true,
    }
}

#[test]
fn combustion_tier1_table_c1_defaults() {
    // Equation C-1: 100 Mcf = 100,000 scf × 1.026e-3 MMBtu/scf (Table C-1) = 102.6 MMBtu.
    // CO2 = 102.6 MMBtu × 53.06 kg/MMBtu = 5,443.956 kg.
    // Equation C-8 with Table C-2: CH4 = 102.6 × 1.0e-3 = 0.1026 kg; N2O = 102.6 × 1.0e-4
    // = 0.01026 kg.
    let r = combustion(2024, &heater(FuelBasis::Tier1, 100_000.0)).unwrap();
    assert_eq!(r.kind, SourceKind::Combustion);
    masses(&r.masses, 5_443.956, 0.1026, 0.01026);
    assert!(r.calculation.contains("Tier 1") && r.calculation.contains("C-1"));
    let sources: Vec<&str> = r
        .provenance
        .iter()
        .filter_map(|p| match p {
            Provenance::Factor(f) => Some(f.source),
            _ => None,
        })
        .collect();
    assert!(sources.iter().any(|s| s.contains("Table C-1")));
    assert!(sources.iter().any(|s| s.contains("Table C-2")));
}

#[test]
fn combustion_tier2_measured_hhv() {
    // Equation C-2a: 50,000 scf × 1.1e-3 MMBtu/scf (measured) = 55 MMBtu.
    // CO2 = 55 × 53.06 = 2,918.3 kg; CH4 = 55 × 1e-3 = 0.055 kg; N2O = 55 × 1e-4 = 0.0055 kg.
    let basis = FuelBasis::Tier2 {
        hhv_mmbtu_per_scf: 1.1e-3,
    };
    let r = combustion(2024, &heater(basis, 50_000.0)).unwrap();
    masses(&r.masses, 2_918.3, 0.055, 0.0055);
}

#[test]
fn combustion_tier3_carbon_content() {
    // Equation C-5: CO2 = 44/12 × Fuel × CC × MW / MVC.
    // 84,950 scf / 849.5 scf/kg-mole = 100 kg-mole; × MW 16 = 1,600 kg fuel; × CC 0.75 =
    // 1,200 kg C; × 44/12 = 4,400 kg CO2.
    // CH4/N2O with the Table C-1 default HHV: 84,950 × 1.026e-3 = 87.1587 MMBtu →
    // CH4 = 0.0871587 kg, N2O = 0.00871587 kg.
    let basis = FuelBasis::Tier3 {
        properties: Tier3Properties {
            carbon_content_kg_per_kg: 0.75,
            molecular_weight_kg_per_kmol: 16.0,
        },
        molar_volume_scf_per_kmol: None,
        hhv_mmbtu_per_scf: None,
    };
    let r = combustion(2024, &heater(basis, 84_950.0)).unwrap();
    masses(&r.masses, 4_400.0, 0.087_158_7, 0.008_715_87);
}

#[test]
fn combustion_tier3_from_composition() {
    // Pure methane: MW = 12.011 + 4 × 1.008 = 16.043; CC × MW = 12.011 kg C/kg-mole.
    // 84,950 scf = 100 kg-mole → 1,201.1 kg C → × 44/12 = 4,404.0333… kg CO2.
    let methane = GasComposition {
        ch4: 1.0,
        c2h6: 0.0,
        c3h8: 0.0,
        c4h10: 0.0,
        c5_plus: 0.0,
        co2: 0.0,
        other: 0.0,
    };
    let properties = Tier3Properties::from_composition(&methane).unwrap();
    close(properties.molecular_weight_kg_per_kmol, 16.043);
    close(properties.carbon_content_kg_per_kg, 12.011 / 16.043);
    let basis = FuelBasis::Tier3 {
        properties,
        molar_volume_scf_per_kmol: None,
        hhv_mmbtu_per_scf: Some(1.01e-3),
    };
    let r = combustion(2024, &heater(basis, 84_950.0)).unwrap();
    // CH4 = 84,950 × 1.01e-3 × 1e-3 = 0.0857995 kg; N2O = 0.00857995 kg.
    masses(&r.masses, 44.0 / 12.0 * 1_201.1, 0.085_799_5, 0.008_579_95);
}

#[test]
fn combustion_engine_ch4_default_not_allowed_from_ry2025() {
    // Table C-2 footnote 1 (89 FR 42220): RICE and turbines at Subpart W facilities need a
    // §98.233(z)(4) CH4 factor from RY2025.
    let mut engine = heater(FuelBasis::Tier1, 100_000.0);
    engine.unit = CombustionUnit::ReciprocatingEngine;
    assert!(combustion(2024, &engine).is_ok());
    let err = combustion(2025, &engine).unwrap_err();
    assert!(matches!(
        err,
        EmissionsError::Ch4DefaultNotAllowed { year: 2025, .. }
    ));
    // With a site factor of 0.5 kg/MMBtu: CH4 = 102.6 MMBtu × 0.5 = 51.3 kg.
    engine.ch4_kg_per_mmbtu = Some(0.5);
    let r = combustion(2025, &engine).unwrap();
    masses(&r.masses, 5_443.956, 51.3, 0.01026);
}

#[test]
fn combustion_outside_factor_years_is_an_error() {
    // Table C-1's 53.06 kg/MMBtu applies from RY2014.
    let err = combustion(2013, &heater(FuelBasis::Tier1, 1.0)).unwrap_err();
    match err {
        EmissionsError::NoFactorForYear {
            year, available, ..
        } => {
            assert_eq!(year, 2013);
            assert!(available.contains("RY2014 onward"), "{available}");
        }
        other => panic!("unexpected {other:?}"),
    }
}

fn flare_input(efficiency: FlareEfficiency, hhv: Option<f64>) -> FlareInput {
    FlareInput {
        volume_scf: 10_000.0,
        gas: field_gas(),
        efficiency,
        hhv_mmbtu_per_scf: hhv,
    }
}

#[test]
fn flare_w19_w20_w21_default_efficiency() {
    // V = 10,000 scf, η = 0.98 (RY2024 default).
    // W-19: CH4 = 10,000 × (1 − 0.98) × 0.80 = 160 scf × 0.0192 kg/scf = 3.072 kg.
    // W-20: CO2 uncombusted = 10,000 × 0.01 = 100 scf.
    // W-21: Σ Yj Rj = 0.80×1 + 0.10×2 + 0.05×3 + 0.02×4 + 0.01×5 = 1.28;
    //       CO2 combusted = 0.98 × 10,000 × 1.28 = 12,544 scf.
    // W-36: CO2 = (100 + 12,544) × 0.0526 = 665.0744 kg.
    // W-40: N2O = 10,000 scf × 1.235e-3 MMBtu/scf × 1.0e-4 kg/MMBtu = 0.001235 kg.
    let r = flare(2024, &flare_input(FlareEfficiency::Default, None)).unwrap();
    assert_eq!(r.kind, SourceKind::Flare);
    masses(&r.masses, 665.0744, 3.072, 0.001235);
    // CO2e (AR5): 665.0744 + 3.072 × 28 + 0.001235 × 265 = 751.417675 kg.
    let c = co2e(&r.masses, GwpSet::Ar5);
    close(c.kg, 751.417675);
    assert_eq!(c.gwp.label, "AR5");
}

#[test]
fn flare_unlit_emits_all_methane_and_no_n2o() {
    // η = 0: CH4 = 10,000 × 0.80 × 0.0192 = 153.6 kg; CO2 = 100 scf × 0.0526 = 5.26 kg.
    let r = flare(2024, &flare_input(FlareEfficiency::Unlit, None)).unwrap();
    masses(&r.masses, 5.26, 153.6, 0.0);
}

#[test]
fn flare_ry2025_needs_measured_efficiency() {
    // The η default row covers RY2011–RY2024 only.
    let err = flare(2025, &flare_input(FlareEfficiency::Default, Some(1.2e-3))).unwrap_err();
    assert!(err.to_string().contains("RY2011–RY2024"), "{err}");
    // Measured η = 0.95, measured HHV 1.2e-3:
    // CH4 = 10,000 × 0.05 × 0.80 × 0.0192 = 7.68 kg;
    // CO2 = (100 + 0.95 × 10,000 × 1.28) × 0.0526 = 12,260 × 0.0526 = 644.876 kg;
    // N2O = 10,000 × 1.2e-3 × 1e-4 = 0.0012 kg.
    let r = flare(
        2025,
        &flare_input(FlareEfficiency::Measured(0.95), Some(1.2e-3)),
    )
    .unwrap();
    masses(&r.masses, 644.876, 7.68, 0.0012);
}

#[test]
fn vent_volume_times_mole_fraction_times_density() {
    // CH4 = 5,000 × 0.80 × 0.0192 = 76.8 kg; CO2 = 5,000 × 0.01 × 0.0526 = 2.63 kg.
    let r = vent(
        2024,
        &VentInput {
            volume_scf: 5_000.0,
            gas: field_gas(),
        },
    )
    .unwrap();
    masses(&r.masses, 2.63, 76.8, 0.0);
}

fn count(equipment: Equipment, service: Service, count: u32) -> EquipmentCount {
    EquipmentCount {
        equipment,
        service,
        count,
        hours: 8_760.0,
    }
}

#[test]
fn equipment_leaks_table_w1a_western() {
    // Table W-1A Western U.S., gas service (scf/hour/component):
    // 50 valves × 0.121 + 200 connectors × 0.017 + 10 OEL × 0.031 + 4 PRV × 0.193
    // = 6.05 + 3.4 + 0.31 + 0.772 = 10.532 scf/h; × 8,760 h = 92,260.32 scf whole gas.
    // CH4 = 92,260.32 × 0.80 × 0.0192 = 1,417.1185152 kg;
    // CO2 = 92,260.32 × 0.01 × 0.0526 = 48.52892832 kg.
    let input = LeakInput {
        region: Region::Western,
        equipment: vec![
            count(Equipment::Valve, Service::Gas, 50),
            count(Equipment::Connector, Service::Gas, 200),
            count(Equipment::OpenEndedLine, Service::Gas, 10),
            count(Equipment::PressureReliefValve, Service::Gas, 4),
        ],
        gas: field_gas(),
    };
    let r = equipment_leaks(2024, &input).unwrap();
    masses(&r.masses, 48.528_928_32, 1_417.118_515_2, 0.0);
    let populations = r
        .provenance
        .iter()
        .filter(|p| matches!(p, Provenance::Population(f) if f.source.contains("Table W-1A")))
        .count();
    assert_eq!(populations, 4);
    // Component-level factors are not in Table W-1 (RY2025+): a clear error.
    let err = equipment_leaks(2025, &input).unwrap_err();
    assert!(err.to_string().contains("RY2011–RY2024"), "{err}");
}

#[test]
fn equipment_leaks_table_w1_major_equipment_ry2025() {
    // Table W-1 gas service: wellhead 8.87 + separator 9.65 = 18.52 scf/h × 8,760 h
    // = 162,235.2 scf. CH4 = × 0.80 × 0.0192 = 2,491.932672 kg;
    // CO2 = × 0.01 × 0.0526 = 85.3357152 kg.
    let input = LeakInput {
        region: Region::Western,
        equipment: vec![
            count(Equipment::Wellhead, Service::Gas, 1),
            count(Equipment::Separator, Service::Gas, 1),
        ],
        gas: field_gas(),
    };
    let r = equipment_leaks(2025, &input).unwrap();
    masses(&r.masses, 85.335_715_2, 2_491.932_672, 0.0);
}

fn devices() -> Vec<PneumaticCount> {
    let d = |bleed, count| PneumaticCount {
        bleed,
        count,
        hours: 8_760.0,
    };
    vec![
        d(BleedType::ContinuousHigh, 2),
        d(BleedType::Intermittent, 5),
        d(BleedType::ContinuousLow, 3),
        d(BleedType::Pump, 1),
    ]
}

#[test]
fn pneumatics_by_bleed_type_w1a() {
    // Table W-1A (scf/hour/device): 2 × 37.3 + 5 × 13.5 + 3 × 1.39 + 1 × 13.3 (pump)
    // = 74.6 + 67.5 + 4.17 + 13.3 = 159.57 scf/h; × 8,760 h = 1,397,833.2 scf.
    // CH4 = × 0.80 × 0.0192 = 21,470.717952 kg; CO2 = × 0.01 × 0.0526 = 735.2602632 kg.
    let input = PneumaticInput {
        devices: devices(),
        gas: field_gas(),
    };
    let r = pneumatics(2024, &input).unwrap();
    masses(&r.masses, 735.260_263_2, 21_470.717_952, 0.0);
}

#[test]
fn pneumatics_by_bleed_type_w1_ry2025() {
    // Table W-1: 2 × 21 + 5 × 8.8 + 3 × 6.8 + 1 × 13.3 = 119.7 scf/h × 8,760 = 1,048,572 scf.
    // CH4 = × 0.80 × 0.0192 = 16,106.06592 kg; CO2 = × 0.01 × 0.0526 = 551.548872 kg.
    let input = PneumaticInput {
        devices: devices(),
        gas: field_gas(),
    };
    let r = pneumatics(2025, &input).unwrap();
    masses(&r.masses, 551.548_872, 16_106.065_92, 0.0);
}

#[test]
fn inventory_sums_sources_and_stamps_gwp() {
    // Flare (665.0744, 3.072, 0.001235) + vent (2.63, 76.8, 0).
    let inv = Inventory::compute(
        2024,
        &[
            SourceInput::Flare(flare_input(FlareEfficiency::Default, None)),
            SourceInput::Vent(VentInput {
                volume_scf: 5_000.0,
                gas: field_gas(),
            }),
        ],
    )
    .unwrap();
    masses(&inv.total, 667.7044, 79.872, 0.001235);
    masses(&inv.by_kind(SourceKind::Vent), 2.63, 76.8, 0.0);
    // AR4: 667.7044 + 79.872 × 25 + 0.001235 × 298 = 667.7044 + 1,996.8 + 0.36803
    // = 2,664.87243 kg CO2e.
    let c = inv.co2e(GwpSet::Ar4);
    close(c.kg, 2_664.872_43);
    assert_eq!((c.gwp.ch4, c.gwp.n2o), (25.0, 298.0));
}

#[test]
fn intensity_metrics() {
    // BOE = 1,000 bbl + 3,000 Mcf / 6 = 1,500 BOE.
    // kg CH4/BOE = 100 / 1,500; CO2e (AR5) = 1,000 + 100 × 28 = 3,800 kg → 3,800 / 1,500.
    // CH4 in sales gas = 2,800 Mcf × 1,000 × 0.85 × 0.0192 = 45,696 kg;
    // methane intensity = 100 / 45,696 × 100 = 0.218837535…%.
    // NM capture = (3,000 − 50 − 100) / 3,000 × 100 = 95 %.
    let e = GasMasses {
        co2_kg: 1_000.0,
        ch4_kg: 100.0,
        n2o_kg: 0.0,
    };
    let v = ProductionVolumes {
        oil_bbl: 1_000.0,
        gas_produced_mcf: 3_000.0,
        gas_sold_mcf: 2_800.0,
        gas_vented_mcf: 50.0,
        gas_flared_mcf: 100.0,
    };
    let params = IntensityParams {
        sales_gas_ch4_fraction: 0.85,
        ..IntensityParams::default()
    };
    let i = intensities(2024, &e, &v, &params).unwrap();
    close(i.boe, 1_500.0);
    close(i.kg_ch4_per_boe.unwrap(), 100.0 / 1_500.0);
    close(i.kg_co2e_per_boe.unwrap(), 3_800.0 / 1_500.0);
    close(i.methane_intensity_pct.unwrap(), 100.0 / 45_696.0 * 100.0);
    close(i.nm_gas_capture_pct.unwrap(), 95.0);
    assert_eq!(i.gwp.label, "AR5");
    // Configurable BOE conversion: 5.8 Mcf/bbl → 1,000 + 3,000/5.8 BOE.
    let i = intensities(
        2024,
        &e,
        &v,
        &IntensityParams {
            mcf_per_boe: 5.8,
            ..params
        },
    )
    .unwrap();
    close(i.boe, 1_000.0 + 3_000.0 / 5.8);
    // No production, no sales: ratios are None, not infinite.
    let i = intensities(2024, &e, &ProductionVolumes::default(), &params).unwrap();
    assert_eq!(i.kg_ch4_per_boe, None);
    assert_eq!(i.methane_intensity_pct, None);
    assert_eq!(i.nm_gas_capture_pct, None);
}

#[test]
fn invalid_inputs_are_rejected() {
    let mut bad = field_gas();
    bad.ch4 = 0.5; // Σ = 0.70
    let err = vent(
        2024,
        &VentInput {
            volume_scf: 1.0,
            gas: bad,
        },
    )
    .unwrap_err();
    assert!(matches!(err, EmissionsError::CompositionSum { .. }));
    let err = vent(
        2024,
        &VentInput {
            volume_scf: -1.0,
            gas: field_gas(),
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("non-negative"), "{err}");
    let err = flare(2024, &flare_input(FlareEfficiency::Measured(1.2), None)).unwrap_err();
    assert!(err.to_string().contains("between 0 and 1"), "{err}");
}
