//! Benchmarks of the production, emissions and report paths at fleet scale.
//!
//! Prints one line per measurement: `BENCH <name> <value> <unit>` (median of several runs).
//! * monthly Texas Form PR for 1,000 wells (250 leases × 4 wells) — ms;
//! * monthly New Mexico C-115 for 1,000 completions — ms;
//! * daily production derivation, 1,000 wells × 30 days (hourly telemetry, 6 series) — ms;
//! * emission inventory (flare, vent, fuel combustion from daily figures + leaks and
//!   pneumatics), 1,000 wells × 30 days — ms.

use analytics::emissions::GasComposition;
use analytics::emissions::factors::{Equipment, Region, Service};
use analytics::emissions::inventory::{
    Inventory, SourceInput, WellEmissionParams, activity_from_production,
};
use analytics::emissions::methods::{
    BleedType, CombustionUnit, EquipmentCount, FlareEfficiency, FuelBasis, LeakInput,
    PneumaticCount, PneumaticInput,
};
use analytics::production::{
    DailyProduction, DayWindow, DerivationConfig, Method, PeriodTotal, Quantity, Reading,
    RunTicket, Series, WellDayInput, derive_day,
};
use analytics::reports::ReportMonth;
use analytics::reports::c115::{
    C115Completion, C115Disposition, C115Input, C115Line, C115Oil, C115Operator, C115Stream, c115,
};
use analytics::reports::form_pr::{
    FlareAuthority, FormPrInput, LeaseKind, PrDisposition, PrGas, PrLease, PrLiquid, PrOperator,
    PrWell, form_pr,
};
use analytics::units::VolumeBasis;
use std::hint::black_box;
use std::time::Instant;

const WELLS: usize = 1_000;
const DAYS: i64 = 30;
const H: i64 = 3_600_000;
const DAY: i64 = 24 * H;
const START: i64 = 1_709_251_200_000; // 2024-03-01T00:00Z
const MONTH: ReportMonth = ReportMonth {
    year: 2024,
    month: 3,
};

/// Median wall time of `runs` runs of `f`, in ms.
fn median_ms(runs: usize, mut f: impl FnMut()) -> f64 {
    f(); // warm-up
    let mut times: Vec<f64> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

fn report(name: &str, value: f64, unit: &str) {
    println!("BENCH {name} {value:.3} {unit}");
}

fn total(v: f64) -> PeriodTotal {
    PeriodTotal::known(v, 31, Method::TankGauge)
}

fn form_pr_input() -> FormPrInput {
    let leases = (0..WELLS / 4)
        .map(|l| {
            let oil = 3_000.0 + l as f64;
            let gas = 9_000.0 + l as f64 * 1.5;
            PrLease {
                district: "08".into(),
                lease_number: format!("{:05}", 10_000 + l),
                lease_name: format!("BENCH UNIT {l}"),
                field_name: "SPRABERRY (TREND AREA)".into(),
                kind: LeaseKind::Oil,
                wells: (0..4)
                    .map(|w| PrWell {
                        api_number: format!("42-317-{:05}", l * 4 + w),
                        well_number: format!("{}H", w + 1),
                    })
                    .collect(),
                liquid: PrLiquid {
                    opening_stock_bbl: 300.0,
                    production: total(oil),
                    dispositions: vec![PrDisposition {
                        code: 1,
                        volume: oil - 20.0,
                        authority: Vec::new(),
                        description: "crude purchaser".into(),
                    }],
                    closing_stock_bbl: 320.0,
                },
                gas: PrGas {
                    production: total(gas),
                    dispositions: vec![
                        PrDisposition {
                            code: 1,
                            volume: gas - 150.0,
                            authority: Vec::new(),
                            description: "gatherer".into(),
                        },
                        PrDisposition {
                            code: 10,
                            volume: 150.0,
                            authority: vec![FlareAuthority::AuthorizedByRule],
                            description: String::new(),
                        },
                    ],
                },
            }
        })
        .collect();
    FormPrInput {
        operator: PrOperator {
            name: "Bench Operating".into(),
            number: "123456".into(),
        },
        month: MONTH,
        leases,
    }
}

fn c115_input() -> C115Input {
    let completions = (0..WELLS)
        .map(|i| {
            let oil = 1_000.0 + i as f64;
            C115Completion {
                api_number: format!("30-015-{:05}", i),
                pool_code: "98220".into(),
                property_code: format!("{}", 300_000 + i),
                well_name: format!("BENCH FED COM #{i}H"),
                days_produced: 31,
                oil: C115Oil {
                    opening_stock_bbl: 100.0,
                    production: total(oil),
                    dispositions: vec![C115Line {
                        disposition: C115Disposition::Sold {
                            purchaser_ogrid: "214984".into(),
                        },
                        volume: oil,
                    }],
                    closing_stock_bbl: 100.0,
                },
                gas: C115Stream {
                    production: total(2_000.0),
                    dispositions: vec![
                        C115Line {
                            disposition: C115Disposition::Sold {
                                purchaser_ogrid: "151618".into(),
                            },
                            volume: 1_950.0,
                        },
                        C115Line {
                            disposition: C115Disposition::Flared,
                            volume: 50.0,
                        },
                    ],
                },
                water: C115Stream {
                    production: total(500.0),
                    dispositions: vec![C115Line {
                        disposition: C115Disposition::Injected,
                        volume: 500.0,
                    }],
                },
            }
        })
        .collect();
    C115Input {
        operator: C115Operator {
            name: "Bench Operating".into(),
            ogrid: "372098".into(),
        },
        month: MONTH,
        completions,
    }
}

fn series(metric: &str, day_start: i64, f: impl Fn(i64) -> f64) -> Series {
    Series {
        metric: metric.into(),
        source: "dev".into(),
        readings: (-1..=25)
            .map(|h| Reading {
                ts_ms: day_start + h * H,
                value: f(h),
            })
            .collect(),
    }
}

/// One well-day of hourly telemetry: tank, gas, flare, vent and fuel counters, water rate.
fn well_day(well: usize, d: i64) -> WellDayInput {
    let start = START + d * DAY;
    let base = (d * 24) as f64;
    let k = 1.0 + (well % 7) as f64 * 0.1;
    WellDayInput {
        window: DayWindow {
            start_ms: start,
            end_ms: start + DAY,
        },
        series: vec![
            series("oil_volume_bbl", start, |h| 200.0 + 4.0 * k * h as f64),
            series("gas_volume_total_mcf", start, |h| {
                10.0 * k * (base + h as f64)
            }),
            series("flare_gas_mcf", start, |h| 0.5 * k * (base + h as f64)),
            series("vent_gas_mcf", start, |h| 0.05 * k * (base + h as f64)),
            series("fuel_gas_mcf", start, |h| 0.2 * k * (base + h as f64)),
            series("water_rate_bpd", start, |_| 120.0 * k),
        ],
        tickets: vec![RunTicket {
            ts_ms: start + 12 * H,
            quantity: Quantity::Oil,
            volume_bbl: 80.0,
            ticket: format!("RT-{well}-{d}"),
        }],
        corrections: Vec::new(),
    }
}

fn gas() -> GasComposition {
    GasComposition {
        ch4: 0.78,
        c2h6: 0.11,
        c3h8: 0.05,
        c4h10: 0.02,
        c5_plus: 0.01,
        co2: 0.015,
        other: 0.015,
    }
}

fn site_sources() -> Vec<SourceInput> {
    let hours = 24.0 * DAYS as f64;
    let c = |equipment, count| EquipmentCount {
        equipment,
        service: Service::Gas,
        count,
        hours,
    };
    vec![
        SourceInput::EquipmentLeaks(LeakInput {
            region: Region::Western,
            equipment: vec![
                c(Equipment::Valve, 40),
                c(Equipment::Connector, 160),
                c(Equipment::OpenEndedLine, 6),
                c(Equipment::PressureReliefValve, 3),
            ],
            gas: gas(),
        }),
        SourceInput::Pneumatics(PneumaticInput {
            devices: vec![
                PneumaticCount {
                    bleed: BleedType::Intermittent,
                    count: 4,
                    hours,
                },
                PneumaticCount {
                    bleed: BleedType::ContinuousLow,
                    count: 2,
                    hours,
                },
            ],
            gas: gas(),
        }),
    ]
}

fn main() {
    let pr = form_pr_input();
    let ms = median_ms(15, || {
        black_box(form_pr(black_box(&pr)).expect("valid"));
    });
    report("form_pr_monthly_1000_wells", ms, "ms");

    let nm = c115_input();
    let ms = median_ms(15, || {
        black_box(c115(black_box(&nm)).expect("valid"));
    });
    report("c115_monthly_1000_completions", ms, "ms");

    let inputs: Vec<Vec<WellDayInput>> = (0..WELLS)
        .map(|w| (0..DAYS).map(|d| well_day(w, d)).collect())
        .collect();
    let config = DerivationConfig::default();
    let derive_all = || -> Vec<Vec<DailyProduction>> {
        inputs
            .iter()
            .map(|days| days.iter().map(|d| derive_day(d, &config)).collect())
            .collect()
    };
    let ms = median_ms(5, || {
        black_box(derive_all());
    });
    report("production_derive_1000_wells_x_30_days", ms, "ms");

    let production = derive_all();
    let params = WellEmissionParams {
        gas: gas(),
        flare_efficiency: FlareEfficiency::Default,
        flare_hhv_mmbtu_per_scf: None,
        fuel_basis: FuelBasis::Tier1,
        fuel_unit: CombustionUnit::Heater,
        fuel_ch4_kg_per_mmbtu: None,
        subpart_w_facility: true,
        volume_basis: VolumeBasis::default(),
    };
    let site = site_sources();
    let ms = median_ms(15, || {
        for days in &production {
            let mut sources = activity_from_production(days, &params).expect("complete");
            sources.extend(site.iter().cloned());
            black_box(Inventory::compute(2024, &sources).expect("valid"));
        }
    });
    report("emissions_inventory_1000_wells_x_30_days", ms, "ms");
}
