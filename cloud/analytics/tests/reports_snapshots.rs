//! Form PR and C-115: golden CSV/HTML snapshots and validation problems.
//!
//! Golden files live in `tests/data/`. Regenerate them after an intended format change with
//! `WELLPULSE_UPDATE_GOLDEN=1 cargo test -p analytics --test reports_snapshots` and review
//! the diff.

use analytics::production::{Method, PeriodTotal};
use analytics::reports::c115::{
    C115Completion, C115Disposition, C115Input, C115Line, C115Oil, C115Operator, C115Stream, c115,
};
use analytics::reports::form_pr::{
    FlareAuthority, FormPrInput, LeaseKind, PrDisposition, PrGas, PrLease, PrLiquid, PrOperator,
    PrWell, form_pr,
};
use analytics::reports::{ReportMonth, ValidationProblem};
use std::path::PathBuf;

const MARCH_2024: ReportMonth = ReportMonth {
    year: 2024,
    month: 3,
};
/// 2024-03-05T00:00:00Z.
const MARCH_5_MS: i64 = 1_709_596_800_000;

fn golden(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    if std::env::var_os("WELLPULSE_UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run with WELLPULSE_UPDATE_GOLDEN=1 to create it",
            path.display()
        )
    });
    assert!(
        expected == actual,
        "{} differs from the generated output; if the change is intended, regenerate with \
         WELLPULSE_UPDATE_GOLDEN=1 and review the diff.\n--- generated ---\n{actual}",
        path.display()
    );
}

fn month_total(total: f64, method: Method) -> PeriodTotal {
    PeriodTotal::known(total, 31, method)
}

fn disp(code: u8, volume: f64, authority: &[FlareAuthority], description: &str) -> PrDisposition {
    PrDisposition {
        code,
        volume,
        authority: authority.to_vec(),
        description: description.to_string(),
    }
}

fn well(api: &str, no: &str) -> PrWell {
    PrWell {
        api_number: api.to_string(),
        well_number: no.to_string(),
    }
}

fn form_pr_input() -> FormPrInput {
    FormPrInput {
        operator: PrOperator {
            name: "Permian Basin Energy & Sons, LLC".into(),
            number: "123456".into(),
        },
        month: MARCH_2024,
        leases: vec![
            PrLease {
                district: "08".into(),
                lease_number: "12345".into(),
                lease_name: "SMITH \"A\" <UNIT>".into(),
                field_name: "SPRABERRY (TREND AREA)".into(),
                kind: LeaseKind::Oil,
                wells: vec![well("42-317-41234", "1H"), well("4231741235", "2H")],
                liquid: PrLiquid {
                    opening_stock_bbl: 320.4,
                    production: month_total(4_510.6, Method::TankGauge),
                    dispositions: vec![disp(1, 4_400.2, &[], "Acme Crude Hauling, LLC")],
                    closing_stock_bbl: 430.8,
                },
                gas: PrGas {
                    production: month_total(9_876.4, Method::MeterTotal),
                    dispositions: vec![
                        disp(1, 9_500.3, &[], "Delaware Basin Gathering"),
                        disp(2, 250.0, &[], "lease fuel"),
                        disp(10, 100.1, &[FlareAuthority::AuthorizedByRule], ""),
                        disp(
                            11,
                            26.0,
                            &[FlareAuthority::Exempt, FlareAuthority::ExceptionPending],
                            "",
                        ),
                    ],
                },
            },
            PrLease {
                district: "7C".into(),
                lease_number: "234567".into(),
                lease_name: "JONES GAS UNIT 3".into(),
                field_name: "OZONA (CANYON)".into(),
                kind: LeaseKind::Gas,
                wells: vec![well("42-105-40001", "3")],
                liquid: PrLiquid {
                    opening_stock_bbl: 10.0,
                    production: month_total(55.5, Method::TankGauge),
                    dispositions: vec![disp(1, 60.2, &[], "=cmd|' /C calc'!A0")],
                    closing_stock_bbl: 5.3,
                },
                gas: PrGas {
                    production: month_total(30_000.4, Method::MeterTotal),
                    dispositions: vec![
                        disp(1, 29_800.2, &[], "Ozona Midstream"),
                        disp(2, 200.2, &[], "compressor fuel"),
                    ],
                },
            },
        ],
    }
}

fn line(disposition: C115Disposition, volume: f64) -> C115Line {
    C115Line {
        disposition,
        volume,
    }
}

fn sold(ogrid: &str) -> C115Disposition {
    C115Disposition::Sold {
        purchaser_ogrid: ogrid.into(),
    }
}

fn c115_input() -> C115Input {
    C115Input {
        operator: C115Operator {
            name: "Chihuahuan Operating Co".into(),
            ogrid: "372098".into(),
        },
        month: MARCH_2024,
        completions: vec![
            C115Completion {
                api_number: "30-015-45123".into(),
                pool_code: "98220".into(),
                property_code: "331234".into(),
                well_name: "ROADRUNNER FED COM #101H".into(),
                days_produced: 31,
                oil: C115Oil {
                    opening_stock_bbl: 250.0,
                    production: month_total(6_200.7, Method::TankGauge),
                    dispositions: vec![line(sold("214984"), 6_100.0)],
                    closing_stock_bbl: 350.7,
                },
                gas: C115Stream {
                    production: month_total(12_345.6, Method::MeterTotal),
                    dispositions: vec![
                        line(sold("151618"), 11_900.6),
                        line(C115Disposition::UsedOnLease, 300.0),
                        line(C115Disposition::Flared, 120.0),
                        line(C115Disposition::Vented, 25.0),
                    ],
                },
                water: C115Stream {
                    production: month_total(8_000.2, Method::TankGauge),
                    dispositions: vec![line(C115Disposition::Injected, 8_000.2)],
                },
            },
            C115Completion {
                api_number: "3002512345".into(),
                pool_code: "37240".into(),
                property_code: "4521".into(),
                well_name: "LEA STATE #2".into(),
                days_produced: 28,
                oil: C115Oil {
                    opening_stock_bbl: 0.0,
                    production: month_total(0.0, Method::TankGauge),
                    dispositions: Vec::new(),
                    closing_stock_bbl: 0.0,
                },
                gas: C115Stream {
                    production: month_total(1_000.4, Method::RateIntegration),
                    dispositions: vec![
                        line(sold("151618"), 333.5),
                        line(sold("151618"), 333.5),
                        line(sold("151618"), 333.4),
                    ],
                },
                water: C115Stream {
                    production: month_total(120.0, Method::ManualCorrection),
                    dispositions: vec![line(
                        C115Disposition::Other {
                            description: "Evaporation pit <B> & \"C\"".into(),
                        },
                        120.0,
                    )],
                },
            },
        ],
    }
}

#[test]
fn form_pr_snapshot() {
    let report = form_pr(&form_pr_input()).expect("valid input");
    assert!(report.title.contains("Form PR") && report.title.contains("2024-03"));
    golden("form_pr_2024_03.csv", &report.csv);
    golden("form_pr_2024_03.html", &report.html);
    // Escaping and formula neutralization.
    assert!(report.html.contains("SMITH &quot;A&quot; &lt;UNIT&gt;"));
    assert!(!report.html.contains("<UNIT>"));
    assert!(report.csv.contains("\"'=cmd|' /C calc'!A0\""));
    // Remarks of codes 10 and 11.
    assert!(report.csv.contains(",disposition,10,100,AR,"));
    assert!(report.csv.contains(",disposition,11,26,EX EP,"));
}

#[test]
fn form_pr_rounded_lines_balance() {
    let report = form_pr(&form_pr_input()).unwrap();
    // Lease 1 oil: opening 320, closing 431, disposition 4400 → production 4511 (not
    // round(4510.6) = 4511 by chance: it is derived so the printed balance closes).
    assert!(report.csv.contains(",oil,opening_stock,,320,"));
    assert!(report.csv.contains(",oil,production,,4511,"));
    assert!(report.csv.contains(",oil,closing_stock,,431,"));
    // Gas 9876.4 → 9876 = 9500 + 250 + 100 + 26.
    assert!(report.csv.contains(",casinghead_gas,production,,9876,"));
    assert!(report.csv.contains(",casinghead_gas,disposition,1,9500,"));
}

#[test]
fn c115_snapshot() {
    let report = c115(&c115_input()).expect("valid input");
    golden("c115_2024_03.csv", &report.csv);
    golden("c115_2024_03.html", &report.html);
    assert!(
        report
            .html
            .contains("Evaporation pit &lt;B&gt; &amp; &quot;C&quot;")
    );
    // 3 × 333.5/333.5/333.4 = 1000.4 → rounded lines add up to 1000.
    let gas: Vec<&str> = report
        .csv
        .lines()
        .filter(|l| l.contains("30-025-12345") && l.contains(",gas,disposition,"))
        .collect();
    let sum: i64 = gas
        .iter()
        .map(|l| l.split(',').nth(12).unwrap().parse::<i64>().unwrap())
        .sum();
    assert_eq!(sum, 1000);
}

fn problems_text(problems: &[ValidationProblem]) -> Vec<String> {
    problems.iter().map(ToString::to_string).collect()
}

fn has(problems: &[String], needle: &str) -> bool {
    problems.iter().any(|p| p.contains(needle))
}

#[test]
fn month_with_missing_data_yields_validation_errors() {
    let mut input = form_pr_input();
    input.leases[0].liquid.production = PeriodTotal {
        total: 4_100.0,
        complete_days: 28,
        incomplete_days: vec![
            MARCH_5_MS,
            MARCH_5_MS + 86_400_000,
            MARCH_5_MS + 2 * 86_400_000,
        ],
        methods: [Method::TankGauge, Method::Missing].into(),
    };
    let problems = form_pr(&input).expect_err("incomplete month must not produce a report");
    let text = problems_text(&problems);
    assert_eq!(
        text[0],
        "lease #1 (08 12345 SMITH \"A\" <UNIT>): oil.production: 3 day(s) with missing or \
         incomplete data (first: 2024-03-05); fill the gaps or enter manual corrections before \
         filing"
    );
    // The balance is not checked on top of missing data (one clear message).
    assert_eq!(problems.len(), 1, "{text:#?}");

    let mut input = c115_input();
    input.completions[1].gas.production.incomplete_days = vec![MARCH_5_MS];
    let problems = c115(&input).expect_err("incomplete month must not produce a report");
    assert!(
        has(
            &problems_text(&problems),
            "completion #2 (3002512345 LEA STATE #2 pool 37240): gas.production: 1 day(s)"
        ),
        "{problems:#?}"
    );
}

#[test]
fn form_pr_reports_every_problem_precisely() {
    let mut input = form_pr_input();
    input.operator.number = "12AB".into();
    let lease = &mut input.leases[0];
    lease.wells[0].api_number = String::new();
    lease.wells[1].api_number = "30-015-45123".into();
    lease.liquid.closing_stock_bbl = -12.0;
    lease.gas.dispositions[2].authority.clear();
    lease.gas.dispositions[1].code = 4;
    lease.gas.dispositions[0].authority = vec![FlareAuthority::AuthorizedByException];
    let gas_lease = &mut input.leases[1];
    gas_lease.district = "7".into();
    gas_lease.lease_number = "23456".into();
    gas_lease.liquid.closing_stock_bbl = 50.0;
    let problems = form_pr(&input).expect_err("invalid input");
    let text = problems_text(&problems);
    for needle in [
        "report: operator.number: '12AB' must be 6 digits",
        "lease #1 (08 12345 SMITH \"A\" <UNIT>): wells[0].api_number: API number missing",
        "wells[1].api_number: API number '30-015-45123' has state code 30, expected 42 (Texas)",
        "oil.closing_stock: -12 bbl is negative",
        "casinghead_gas.dispositions[2].remarks: code 10 (flared) requires an authority remark",
        "casinghead_gas.dispositions[1].code: code 4 (vented or flared) is discontinued",
        "casinghead_gas.dispositions[0].remarks: authority remarks apply to codes 10 and 11 only",
        "lease #2 (7 23456 JONES GAS UNIT 3): district: '7' is not an RRC district",
        "lease #2 (7 23456 JONES GAS UNIT 3): lease_number: '23456' must be 6 digits",
    ] {
        assert!(has(&text, needle), "missing {needle:?} in {text:#?}");
    }
    // Lease 2's stock imbalance is reported once its fields are valid.
    let mut input = form_pr_input();
    input.leases[1].liquid.closing_stock_bbl = 50.0;
    let text = problems_text(&form_pr(&input).unwrap_err());
    assert_eq!(
        text,
        vec![
            "lease #2 (7C 234567 JONES GAS UNIT 3): condensate.balance: opening 10 + production \
             55.5 − dispositions 60.2 = 5.3 bbl, but closing stock is 50 bbl"
                .to_string()
        ]
    );
}

#[test]
fn form_pr_code_4_still_valid_before_september_2021() {
    let mut input = form_pr_input();
    input.month = ReportMonth {
        year: 2021,
        month: 8,
    };
    input.leases[0].gas.dispositions[2] = disp(4, 100.1, &[], "flared");
    input.leases[0].gas.dispositions.remove(3);
    input.leases[0].gas.dispositions[0].volume += 26.0;
    assert!(form_pr(&input).is_ok());
}

#[test]
fn c115_reports_every_problem_precisely() {
    let mut input = c115_input();
    input.operator.ogrid = String::new();
    let c = &mut input.completions[0];
    c.api_number = "42-317-41234".into();
    c.days_produced = 32;
    c.oil.dispositions[0].disposition = sold("");
    c.water.dispositions[0].disposition = C115Disposition::Flared;
    c.gas.dispositions[0].volume = 10_000.0;
    let text = problems_text(&c115(&input).unwrap_err());
    for needle in [
        "report: operator.ogrid: missing",
        "api_number: API number '42-317-41234' has state code 42, expected 30 (New Mexico)",
        "days_produced: 32 days exceeds the 31 days of the month",
        "oil.dispositions[0].purchaser_ogrid: missing",
        "water.dispositions[0].disposition: flared applies to gas only",
    ] {
        assert!(has(&text, needle), "missing {needle:?} in {text:#?}");
    }
    // The gas imbalance is reported when the fields are valid.
    let mut input = c115_input();
    input.completions[0].gas.dispositions[0].volume = 10_000.0;
    let text = problems_text(&c115(&input).unwrap_err());
    assert_eq!(
        text,
        vec![
            "completion #1 (30-015-45123 ROADRUNNER FED COM #101H pool 98220): gas.balance: \
             production 12345.6 Mcf but dispositions add up to 10445 Mcf"
                .to_string()
        ]
    );
}
