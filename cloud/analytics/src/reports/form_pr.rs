//! Texas Railroad Commission Form PR, Monthly Production Report (per lease, per month).
//!
//! Content, following the Form PR instructions: for each oil lease (oil + casinghead gas)
//! or gas well ID (gas well gas + condensate): the liquid's opening stock, production,
//! dispositions by code and closing stock; the gas production and dispositions by code.
//!
//! Disposition codes: gas flared is code **10** and gas vented code **11**; either requires
//! one or more authority remarks — **AR** authorized by rule, **AE** authorized by
//! exception, **EP** exception pending, **EX** exempt (RRC revisions to the Form PR
//! instructions adopted Feb. 23, 2021; codes 10/11 from the September 2021 production
//! month, remarks mandatory from January 2022). Code **4** (vented or flared) was
//! discontinued for production months from September 2021 and is rejected for them. Other
//! codes are passed through as the operator's disposition registry gives them (with their
//! description, e.g. the purchaser); this module checks only that they are Form PR codes
//! (0–11) and that authority remarks appear on codes 10 and 11 alone.
//!
//! Identifiers: RRC operator (P-5) number of 6 digits; district one of 01–06, 6E, 7B, 7C,
//! 08, 8A, 09, 10; oil lease numbers of 5 digits, gas well ID numbers of 6 digits; every
//! well with a Texas API number (state code 42).

use super::render::{Csv, Html};
use super::{
    Problems, Report, ReportMonth, ValidationProblem, balanced, fmt_volume, round_preserving_sum,
    whole,
};
use crate::production::PeriodTotal;

/// RRC districts.
const DISTRICTS: [&str; 13] = [
    "01", "02", "03", "04", "05", "06", "6E", "7B", "7C", "08", "8A", "09", "10",
];
/// Gas flared.
pub const CODE_FLARED: u8 = 10;
/// Gas vented.
pub const CODE_VENTED: u8 = 11;
/// Vented or flared, discontinued from the September 2021 production month.
pub const CODE_VENTED_OR_FLARED_OLD: u8 = 4;
const CODE_4_LAST_MONTH: ReportMonth = ReportMonth {
    year: 2021,
    month: 8,
};

/// The operator filing the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrOperator {
    /// Operator name as on the P-5.
    pub name: String,
    /// RRC operator (P-5) number, 6 digits.
    pub number: String,
}

/// Oil lease or gas well.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseKind {
    /// Oil lease: oil and casinghead gas.
    Oil,
    /// Gas well ID: gas well gas and condensate.
    Gas,
}

impl LeaseKind {
    fn products(self) -> (&'static str, &'static str) {
        match self {
            LeaseKind::Oil => ("oil", "casinghead_gas"),
            LeaseKind::Gas => ("condensate", "gas_well_gas"),
        }
    }
}

/// A well on the lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrWell {
    /// API number (state code 42).
    pub api_number: String,
    /// Operator's well number, e.g. `1H`.
    pub well_number: String,
}

/// Authority under which gas was flared or vented (REMARKS of codes 10 and 11).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlareAuthority {
    /// AR — authorized by rule.
    AuthorizedByRule,
    /// AE — authorized by exception.
    AuthorizedByException,
    /// EP — exception pending.
    ExceptionPending,
    /// EX — exempt.
    Exempt,
}

impl FlareAuthority {
    /// Two-letter remark code.
    pub fn code(self) -> &'static str {
        match self {
            FlareAuthority::AuthorizedByRule => "AR",
            FlareAuthority::AuthorizedByException => "AE",
            FlareAuthority::ExceptionPending => "EP",
            FlareAuthority::Exempt => "EX",
        }
    }
}

/// One disposition line.
#[derive(Debug, Clone, PartialEq)]
pub struct PrDisposition {
    /// Form PR disposition code.
    pub code: u8,
    /// Volume, bbl or Mcf.
    pub volume: f64,
    /// Authority remarks (codes 10 and 11 only).
    pub authority: Vec<FlareAuthority>,
    /// Free description (purchaser, gatherer…).
    pub description: String,
}

/// Oil or condensate of the month.
#[derive(Debug, Clone, PartialEq)]
pub struct PrLiquid {
    /// Stock on hand at the start of the month, bbl.
    pub opening_stock_bbl: f64,
    /// Production of the month, bbl.
    pub production: PeriodTotal,
    /// Dispositions, bbl.
    pub dispositions: Vec<PrDisposition>,
    /// Stock on hand at the end of the month, bbl.
    pub closing_stock_bbl: f64,
}

/// Casinghead or gas well gas of the month.
#[derive(Debug, Clone, PartialEq)]
pub struct PrGas {
    /// Production of the month, Mcf.
    pub production: PeriodTotal,
    /// Dispositions, Mcf.
    pub dispositions: Vec<PrDisposition>,
}

/// One lease (oil) or gas well ID.
#[derive(Debug, Clone, PartialEq)]
pub struct PrLease {
    /// RRC district.
    pub district: String,
    /// Oil lease number (5 digits) or gas well ID (6 digits).
    pub lease_number: String,
    /// Lease name.
    pub lease_name: String,
    /// RRC field name.
    pub field_name: String,
    /// Oil lease or gas well.
    pub kind: LeaseKind,
    /// Wells on the lease.
    pub wells: Vec<PrWell>,
    /// Oil or condensate.
    pub liquid: PrLiquid,
    /// Casinghead or gas well gas.
    pub gas: PrGas,
}

/// Everything one Form PR filing needs.
#[derive(Debug, Clone, PartialEq)]
pub struct FormPrInput {
    /// Filing operator.
    pub operator: PrOperator,
    /// Production month.
    pub month: ReportMonth,
    /// Leases.
    pub leases: Vec<PrLease>,
}

/// Rounded, balanced figures of one lease, ready to print.
struct LeaseLines {
    api_numbers: Vec<(String, String)>,
    opening: i64,
    liquid_production: i64,
    liquid_dispositions: Vec<i64>,
    closing: i64,
    gas_production: i64,
    gas_dispositions: Vec<i64>,
}

/// Builds the Form PR for `input`, or returns every validation problem.
pub fn form_pr(input: &FormPrInput) -> Result<Report, Vec<ValidationProblem>> {
    let mut problems = Vec::new();
    check_header(input, &mut problems);
    let mut lines = Vec::with_capacity(input.leases.len());
    for (i, lease) in input.leases.iter().enumerate() {
        lines.push(check_lease(i, lease, input.month, &mut problems));
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let lines: Vec<LeaseLines> = lines.into_iter().flatten().collect();
    Ok(render(input, &lines))
}

fn check_header(input: &FormPrInput, problems: &mut Vec<ValidationProblem>) {
    let mut p = Problems::new("report".to_string(), problems);
    p.text("operator.name", &input.operator.name);
    p.digits("operator.number", &input.operator.number, &[6]);
    if input.month.first_day().is_none() {
        p.push("month", format!("{} is not a valid month", input.month));
    }
    if input.leases.is_empty() {
        p.push("leases", "no lease to report");
    }
}

fn lease_subject(i: usize, lease: &PrLease) -> String {
    format!(
        "lease #{} ({} {} {})",
        i + 1,
        lease.district.trim(),
        lease.lease_number.trim(),
        lease.lease_name.trim()
    )
}

fn check_lease(
    i: usize,
    lease: &PrLease,
    month: ReportMonth,
    problems: &mut Vec<ValidationProblem>,
) -> Option<LeaseLines> {
    let before = problems.len();
    let mut p = Problems::new(lease_subject(i, lease), problems);
    if !DISTRICTS.contains(&lease.district.trim()) {
        p.push(
            "district",
            format!(
                "'{}' is not an RRC district ({})",
                lease.district.trim(),
                DISTRICTS.join(", ")
            ),
        );
    }
    let len = if lease.kind == LeaseKind::Oil { 5 } else { 6 };
    p.digits("lease_number", &lease.lease_number, &[len]);
    p.text("lease_name", &lease.lease_name);
    p.text("field_name", &lease.field_name);
    if lease.wells.is_empty() {
        p.push("wells", "no well on the lease");
    }
    let mut api_numbers = Vec::with_capacity(lease.wells.len());
    for (w, well) in lease.wells.iter().enumerate() {
        let api = p.api_number(
            &format!("wells[{w}].api_number"),
            &well.api_number,
            ("42", "Texas"),
        );
        p.text(&format!("wells[{w}].well_number"), &well.well_number);
        api_numbers.push((api, well.well_number.trim().to_string()));
    }
    let (liquid_name, gas_name) = lease.kind.products();
    let liquid = &lease.liquid;
    p.production(
        &format!("{liquid_name}.production"),
        &liquid.production,
        "bbl",
    );
    p.volume(
        &format!("{liquid_name}.opening_stock"),
        liquid.opening_stock_bbl,
        "bbl",
    );
    p.volume(
        &format!("{liquid_name}.closing_stock"),
        liquid.closing_stock_bbl,
        "bbl",
    );
    check_dispositions(&mut p, liquid_name, &liquid.dispositions, false, month);
    p.production(
        &format!("{gas_name}.production"),
        &lease.gas.production,
        "Mcf",
    );
    check_dispositions(&mut p, gas_name, &lease.gas.dispositions, true, month);
    if p_has_new(problems, before) {
        return None;
    }
    let mut p = Problems::new(lease_subject(i, lease), problems);
    let liquid_disp: Vec<f64> = liquid.dispositions.iter().map(|d| d.volume).collect();
    let liquid_out: f64 = liquid_disp.iter().sum();
    let expected_closing = liquid.opening_stock_bbl + liquid.production.total - liquid_out;
    if !balanced(expected_closing, liquid.closing_stock_bbl) {
        p.push(
            format!("{liquid_name}.balance"),
            format!(
                "opening {} + production {} − dispositions {} = {} bbl, but closing stock is {} bbl",
                fmt_volume(liquid.opening_stock_bbl),
                fmt_volume(liquid.production.total),
                fmt_volume(liquid_out),
                fmt_volume(expected_closing),
                fmt_volume(liquid.closing_stock_bbl)
            ),
        );
    }
    let gas_disp: Vec<f64> = lease.gas.dispositions.iter().map(|d| d.volume).collect();
    let gas_out: f64 = gas_disp.iter().sum();
    if gas_disp.is_empty() && whole(lease.gas.production.total) != 0 {
        p.push(
            format!("{gas_name}.dispositions"),
            format!(
                "production {} Mcf has no disposition",
                fmt_volume(lease.gas.production.total)
            ),
        );
    } else if !balanced(lease.gas.production.total, gas_out) {
        p.push(
            format!("{gas_name}.balance"),
            format!(
                "production {} Mcf but dispositions add up to {} Mcf",
                fmt_volume(lease.gas.production.total),
                fmt_volume(gas_out)
            ),
        );
    }
    if p_has_new(problems, before) {
        return None;
    }
    let opening = whole(liquid.opening_stock_bbl);
    let closing = whole(liquid.closing_stock_bbl);
    let liquid_dispositions = round_preserving_sum(&liquid_disp);
    let gas_production = whole(lease.gas.production.total);
    let mut gas_dispositions = round_preserving_sum(&gas_disp);
    // Absorb the (≤ 1 Mcf) rounding difference in the largest line so the gas balances.
    let diff = gas_production - gas_dispositions.iter().sum::<i64>();
    if let Some(max) = gas_dispositions.iter_mut().max() {
        *max += diff;
    }
    Some(LeaseLines {
        api_numbers,
        opening,
        liquid_production: closing - opening + liquid_dispositions.iter().sum::<i64>(),
        liquid_dispositions,
        closing,
        gas_production,
        gas_dispositions,
    })
}

fn p_has_new(problems: &[ValidationProblem], before: usize) -> bool {
    problems.len() > before
}

fn check_dispositions(
    p: &mut Problems<'_>,
    product: &str,
    dispositions: &[PrDisposition],
    gas: bool,
    month: ReportMonth,
) {
    let unit = if gas { "Mcf" } else { "bbl" };
    for (k, d) in dispositions.iter().enumerate() {
        let field = format!("{product}.dispositions[{k}]");
        p.volume(&format!("{field}.volume"), d.volume, unit);
        let flare_vent = d.code == CODE_FLARED || d.code == CODE_VENTED;
        if d.code > CODE_VENTED {
            p.push(
                format!("{field}.code"),
                format!("{} is not a Form PR disposition code", d.code),
            );
        } else if flare_vent && !gas {
            p.push(
                format!("{field}.code"),
                format!("code {} (flared/vented) applies to gas only", d.code),
            );
        } else if gas && d.code == CODE_VENTED_OR_FLARED_OLD && month > CODE_4_LAST_MONTH {
            p.push(
                format!("{field}.code"),
                "code 4 (vented or flared) is discontinued from the September 2021 production \
                 month: use 10 (flared) or 11 (vented) with an AR/AE/EP/EX remark",
            );
        }
        if gas && flare_vent && d.authority.is_empty() {
            let what = if d.code == CODE_FLARED {
                "flared"
            } else {
                "vented"
            };
            p.push(
                format!("{field}.remarks"),
                format!(
                    "code {} ({what}) requires an authority remark: AR, AE, EP or EX",
                    d.code
                ),
            );
        }
        if !flare_vent && !d.authority.is_empty() {
            p.push(
                format!("{field}.remarks"),
                format!(
                    "authority remarks apply to codes 10 and 11 only, not code {}",
                    d.code
                ),
            );
        }
    }
}

fn remarks(d: &PrDisposition) -> String {
    d.authority
        .iter()
        .map(|a| a.code())
        .collect::<Vec<_>>()
        .join(" ")
}

fn render(input: &FormPrInput, leases: &[LeaseLines]) -> Report {
    let op = &input.operator;
    let month = input.month.to_string();
    let title = format!(
        "Texas RRC Form PR — Monthly Production Report — {month} — operator {}",
        op.number.trim()
    );
    let mut csv = Csv::default();
    csv.row(&[
        "operator_number",
        "operator_name",
        "month",
        "district",
        "lease_number",
        "lease_name",
        "field",
        "lease_kind",
        "product",
        "line",
        "code",
        "volume",
        "remarks",
        "detail",
    ]);
    let mut html = Html::new(
        &title,
        &[
            ("Operator", op.name.trim().to_string()),
            ("RRC operator no.", op.number.trim().to_string()),
            ("Production month", month.clone()),
            ("Leases", input.leases.len().to_string()),
        ],
    );
    for (lease, lines) in input.leases.iter().zip(leases) {
        let (liquid_name, gas_name) = lease.kind.products();
        let kind = if lease.kind == LeaseKind::Oil {
            "oil"
        } else {
            "gas"
        };
        let head = [
            op.number.trim().to_string(),
            op.name.trim().to_string(),
            month.clone(),
            lease.district.trim().to_string(),
            lease.lease_number.trim().to_string(),
            lease.lease_name.trim().to_string(),
            lease.field_name.trim().to_string(),
            kind.to_string(),
        ];
        let mut emit = |product: &str,
                        line: &str,
                        code: String,
                        volume: String,
                        rem: String,
                        detail: String| {
            let mut row: Vec<String> = head.to_vec();
            row.extend([
                product.to_string(),
                line.to_string(),
                code,
                volume,
                rem,
                detail,
            ]);
            csv.row(&row);
        };
        for (api, no) in &lines.api_numbers {
            emit(
                "",
                "well",
                String::new(),
                String::new(),
                String::new(),
                format!("{api} #{no}"),
            );
        }
        let liquid_rows = liquid_rows(&lease.liquid, lines);
        for r in &liquid_rows {
            emit(
                liquid_name,
                &r[0],
                r[1].clone(),
                r[2].clone(),
                r[3].clone(),
                r[4].clone(),
            );
        }
        let gas_rows = gas_rows(&lease.gas, lines);
        for r in &gas_rows {
            emit(
                gas_name,
                &r[0],
                r[1].clone(),
                r[2].clone(),
                r[3].clone(),
                r[4].clone(),
            );
        }
        html.open_section(&format!(
            "District {} — {} {} — {} — {}",
            lease.district.trim(),
            if lease.kind == LeaseKind::Oil {
                "Oil lease"
            } else {
                "Gas well ID"
            },
            lease.lease_number.trim(),
            lease.lease_name.trim(),
            lease.field_name.trim()
        ));
        let wells: Vec<Vec<String>> = lines
            .api_numbers
            .iter()
            .map(|(api, no)| vec![api.clone(), no.clone()])
            .collect();
        html.table(&["API number", "Well no."], &[], &wells);
        let header = ["Line", "Code", "Volume", "Remarks", "Detail"];
        html.table(&header, &[2], &label(liquid_name, "bbl", liquid_rows));
        html.table(&header, &[2], &label(gas_name, "Mcf", gas_rows));
        html.close_section();
    }
    html.note(
        "Volumes in whole barrels (bbl) and thousand cubic feet (Mcf). Remarks on codes 10 \
         (flared) and 11 (vented): AR authorized by rule, AE authorized by exception, EP \
         exception pending, EX exempt.",
    );
    Report {
        title,
        csv: csv.finish(),
        html: html.finish(),
    }
}

/// Rows `[line, code, volume, remarks, detail]` of the liquid part.
fn liquid_rows(liquid: &PrLiquid, lines: &LeaseLines) -> Vec<[String; 5]> {
    let mut rows = vec![
        row("opening_stock", "", lines.opening, "", ""),
        row("production", "", lines.liquid_production, "", ""),
    ];
    for (d, v) in liquid.dispositions.iter().zip(&lines.liquid_dispositions) {
        rows.push(row(
            "disposition",
            &d.code.to_string(),
            *v,
            &remarks(d),
            d.description.trim(),
        ));
    }
    rows.push(row("closing_stock", "", lines.closing, "", ""));
    rows
}

/// Rows `[line, code, volume, remarks, detail]` of the gas part.
fn gas_rows(gas: &PrGas, lines: &LeaseLines) -> Vec<[String; 5]> {
    let mut rows = vec![row("production", "", lines.gas_production, "", "")];
    for (d, v) in gas.dispositions.iter().zip(&lines.gas_dispositions) {
        rows.push(row(
            "disposition",
            &d.code.to_string(),
            *v,
            &remarks(d),
            d.description.trim(),
        ));
    }
    rows
}

fn row(line: &str, code: &str, volume: i64, remarks: &str, detail: &str) -> [String; 5] {
    [
        line.to_string(),
        code.to_string(),
        volume.to_string(),
        remarks.to_string(),
        detail.to_string(),
    ]
}

/// HTML rows: the line label carries the product and unit.
fn label(product: &str, unit: &str, rows: Vec<[String; 5]>) -> Vec<Vec<String>> {
    rows.into_iter()
        .map(|[line, code, volume, rem, detail]| {
            vec![
                format!(
                    "{} {} ({unit})",
                    product.replace('_', " "),
                    line.replace('_', " ")
                ),
                code,
                volume,
                rem,
                detail,
            ]
        })
        .collect()
}
