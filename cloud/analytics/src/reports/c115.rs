//! New Mexico Oil Conservation Division Form C-115, Operator's Monthly Report
//! (19.15.7.24 NMAC: one report per non-plugged well completion, per month, filed by the
//! 15th of the second month after production).
//!
//! Content per completion (API number + pool): days produced; oil with opening stock,
//! production, dispositions and closing stock; gas and water with production and
//! dispositions. Dispositions are typed ([`C115Disposition`]): sold/transported (with the
//! purchaser or transporter OGRID), used on lease, flared, vented, injected, other. Flared
//! and vented gas are reported as measured volumes (19.15.27.8 NMAC).
//!
//! Identifiers: operator OGRID (1–6 digits), API number with New Mexico state code 30,
//! pool code (5 digits), property code (1–6 digits), well name.

use super::render::{Csv, Html};
use super::{
    Problems, Report, ReportMonth, ValidationProblem, balanced, fmt_volume, round_preserving_sum,
    whole,
};
use crate::production::PeriodTotal;

const OGRID_LENS: [usize; 6] = [1, 2, 3, 4, 5, 6];

/// The operator filing the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct C115Operator {
    /// Operator name.
    pub name: String,
    /// OCD OGRID number.
    pub ogrid: String,
}

/// What happened to a volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum C115Disposition {
    /// Sold or transported off the property.
    Sold {
        /// OGRID of the purchaser or transporter.
        purchaser_ogrid: String,
    },
    /// Used on the lease (fuel, …).
    UsedOnLease,
    /// Flared (gas).
    Flared,
    /// Vented (gas).
    Vented,
    /// Injected (gas re-injection, water disposal or injection).
    Injected,
    /// Anything else, described.
    Other {
        /// Description.
        description: String,
    },
}

impl C115Disposition {
    fn name(&self) -> &'static str {
        match self {
            C115Disposition::Sold { .. } => "sold",
            C115Disposition::UsedOnLease => "used_on_lease",
            C115Disposition::Flared => "flared",
            C115Disposition::Vented => "vented",
            C115Disposition::Injected => "injected",
            C115Disposition::Other { .. } => "other",
        }
    }

    fn purchaser(&self) -> &str {
        match self {
            C115Disposition::Sold { purchaser_ogrid } => purchaser_ogrid.trim(),
            _ => "",
        }
    }

    fn detail(&self) -> &str {
        match self {
            C115Disposition::Other { description } => description.trim(),
            _ => "",
        }
    }
}

/// One disposition line.
#[derive(Debug, Clone, PartialEq)]
pub struct C115Line {
    /// Disposition.
    pub disposition: C115Disposition,
    /// Volume, bbl or Mcf.
    pub volume: f64,
}

/// Oil of the month.
#[derive(Debug, Clone, PartialEq)]
pub struct C115Oil {
    /// Stock at the start of the month, bbl.
    pub opening_stock_bbl: f64,
    /// Production, bbl.
    pub production: PeriodTotal,
    /// Dispositions, bbl.
    pub dispositions: Vec<C115Line>,
    /// Stock at the end of the month, bbl.
    pub closing_stock_bbl: f64,
}

/// Gas or water of the month.
#[derive(Debug, Clone, PartialEq)]
pub struct C115Stream {
    /// Production, Mcf (gas) or bbl (water).
    pub production: PeriodTotal,
    /// Dispositions.
    pub dispositions: Vec<C115Line>,
}

/// One well completion.
#[derive(Debug, Clone, PartialEq)]
pub struct C115Completion {
    /// API number (state code 30).
    pub api_number: String,
    /// OCD pool code.
    pub pool_code: String,
    /// OCD property code.
    pub property_code: String,
    /// Well name and number.
    pub well_name: String,
    /// Days the completion produced in the month.
    pub days_produced: u32,
    /// Oil.
    pub oil: C115Oil,
    /// Gas.
    pub gas: C115Stream,
    /// Water.
    pub water: C115Stream,
}

/// Everything one C-115 filing needs.
#[derive(Debug, Clone, PartialEq)]
pub struct C115Input {
    /// Filing operator.
    pub operator: C115Operator,
    /// Production month.
    pub month: ReportMonth,
    /// Completions.
    pub completions: Vec<C115Completion>,
}

/// Rounded, balanced figures of one completion.
struct CompletionLines {
    api_number: String,
    opening: i64,
    oil_production: i64,
    oil_dispositions: Vec<i64>,
    closing: i64,
    gas_production: i64,
    gas_dispositions: Vec<i64>,
    water_production: i64,
    water_dispositions: Vec<i64>,
}

/// Builds the C-115 for `input`, or returns every validation problem.
pub fn c115(input: &C115Input) -> Result<Report, Vec<ValidationProblem>> {
    let mut problems = Vec::new();
    {
        let mut p = Problems::new("report".to_string(), &mut problems);
        p.text("operator.name", &input.operator.name);
        p.digits("operator.ogrid", &input.operator.ogrid, &OGRID_LENS);
        if input.month.days().is_none() {
            p.push("month", format!("{} is not a valid month", input.month));
        }
        if input.completions.is_empty() {
            p.push("completions", "no completion to report");
        }
    }
    let days_in_month = input.month.days().unwrap_or(31);
    let lines: Vec<Option<CompletionLines>> = input
        .completions
        .iter()
        .enumerate()
        .map(|(i, c)| check_completion(i, c, days_in_month, &mut problems))
        .collect();
    if !problems.is_empty() {
        return Err(problems);
    }
    let lines: Vec<CompletionLines> = lines.into_iter().flatten().collect();
    Ok(render(input, &lines))
}

fn subject(i: usize, c: &C115Completion) -> String {
    format!(
        "completion #{} ({} {} pool {})",
        i + 1,
        c.api_number.trim(),
        c.well_name.trim(),
        c.pool_code.trim()
    )
}

fn check_completion(
    i: usize,
    c: &C115Completion,
    days_in_month: u32,
    problems: &mut Vec<ValidationProblem>,
) -> Option<CompletionLines> {
    let before = problems.len();
    let mut p = Problems::new(subject(i, c), problems);
    let api_number = p.api_number("api_number", &c.api_number, ("30", "New Mexico"));
    p.digits("pool_code", &c.pool_code, &[5]);
    p.digits("property_code", &c.property_code, &OGRID_LENS);
    p.text("well_name", &c.well_name);
    if c.days_produced > days_in_month {
        p.push(
            "days_produced",
            format!(
                "{} days exceeds the {days_in_month} days of the month",
                c.days_produced
            ),
        );
    }
    p.production("oil.production", &c.oil.production, "bbl");
    p.volume("oil.opening_stock", c.oil.opening_stock_bbl, "bbl");
    p.volume("oil.closing_stock", c.oil.closing_stock_bbl, "bbl");
    check_lines(&mut p, "oil", &c.oil.dispositions, "bbl");
    p.production("gas.production", &c.gas.production, "Mcf");
    check_lines(&mut p, "gas", &c.gas.dispositions, "Mcf");
    p.production("water.production", &c.water.production, "bbl");
    check_lines(&mut p, "water", &c.water.dispositions, "bbl");
    if problems.len() > before {
        return None;
    }
    let mut p = Problems::new(subject(i, c), problems);
    let oil_disp = volumes(&c.oil.dispositions);
    let oil_out: f64 = oil_disp.iter().sum();
    let expected = c.oil.opening_stock_bbl + c.oil.production.total - oil_out;
    if !balanced(expected, c.oil.closing_stock_bbl) {
        p.push(
            "oil.balance",
            format!(
                "opening {} + production {} − dispositions {} = {} bbl, but closing stock is {} bbl",
                fmt_volume(c.oil.opening_stock_bbl),
                fmt_volume(c.oil.production.total),
                fmt_volume(oil_out),
                fmt_volume(expected),
                fmt_volume(c.oil.closing_stock_bbl)
            ),
        );
    }
    stream_balance(&mut p, "gas", &c.gas, "Mcf");
    stream_balance(&mut p, "water", &c.water, "bbl");
    if problems.len() > before {
        return None;
    }
    let opening = whole(c.oil.opening_stock_bbl);
    let closing = whole(c.oil.closing_stock_bbl);
    let oil_dispositions = round_preserving_sum(&oil_disp);
    let (gas_production, gas_dispositions) = rounded_stream(&c.gas);
    let (water_production, water_dispositions) = rounded_stream(&c.water);
    Some(CompletionLines {
        api_number,
        opening,
        oil_production: closing - opening + oil_dispositions.iter().sum::<i64>(),
        oil_dispositions,
        closing,
        gas_production,
        gas_dispositions,
        water_production,
        water_dispositions,
    })
}

fn volumes(lines: &[C115Line]) -> Vec<f64> {
    lines.iter().map(|l| l.volume).collect()
}

fn check_lines(p: &mut Problems<'_>, product: &str, lines: &[C115Line], unit: &str) {
    for (k, l) in lines.iter().enumerate() {
        let field = format!("{product}.dispositions[{k}]");
        p.volume(&format!("{field}.volume"), l.volume, unit);
        match &l.disposition {
            C115Disposition::Sold { purchaser_ogrid } => {
                p.digits(
                    &format!("{field}.purchaser_ogrid"),
                    purchaser_ogrid,
                    &OGRID_LENS,
                );
            }
            C115Disposition::Flared | C115Disposition::Vented if product != "gas" => {
                p.push(
                    format!("{field}.disposition"),
                    format!("{} applies to gas only", l.disposition.name()),
                );
            }
            C115Disposition::Other { description } => {
                p.text(&format!("{field}.description"), description);
            }
            _ => {}
        }
    }
}

fn stream_balance(p: &mut Problems<'_>, product: &str, s: &C115Stream, unit: &str) {
    let out: f64 = s.dispositions.iter().map(|l| l.volume).sum();
    if s.dispositions.is_empty() && whole(s.production.total) != 0 {
        p.push(
            format!("{product}.dispositions"),
            format!(
                "production {} {unit} has no disposition",
                fmt_volume(s.production.total)
            ),
        );
    } else if !balanced(s.production.total, out) {
        p.push(
            format!("{product}.balance"),
            format!(
                "production {} {unit} but dispositions add up to {} {unit}",
                fmt_volume(s.production.total),
                fmt_volume(out)
            ),
        );
    }
}

/// Whole-unit production and dispositions that add up to it exactly.
fn rounded_stream(s: &C115Stream) -> (i64, Vec<i64>) {
    let production = whole(s.production.total);
    let mut lines = round_preserving_sum(&volumes(&s.dispositions));
    let diff = production - lines.iter().sum::<i64>();
    if let Some(max) = lines.iter_mut().max() {
        *max += diff;
    }
    (production, lines)
}

/// Rows `[line, disposition, purchaser_ogrid, volume, detail]`.
type Row = [String; 5];

fn row(line: &str, disposition: &str, purchaser: &str, volume: i64, detail: &str) -> Row {
    [
        line.to_string(),
        disposition.to_string(),
        purchaser.to_string(),
        volume.to_string(),
        detail.to_string(),
    ]
}

fn disposition_rows(lines: &[C115Line], rounded: &[i64]) -> impl Iterator<Item = Row> {
    lines.iter().zip(rounded.to_vec()).map(|(l, v)| {
        row(
            "disposition",
            l.disposition.name(),
            l.disposition.purchaser(),
            v,
            l.disposition.detail(),
        )
    })
}

fn product_rows(
    c: &C115Completion,
    lines: &CompletionLines,
) -> [(&'static str, &'static str, Vec<Row>); 3] {
    let mut oil = vec![
        row("opening_stock", "", "", lines.opening, ""),
        row("production", "", "", lines.oil_production, ""),
    ];
    oil.extend(disposition_rows(
        &c.oil.dispositions,
        &lines.oil_dispositions,
    ));
    oil.push(row("closing_stock", "", "", lines.closing, ""));
    let mut gas = vec![row("production", "", "", lines.gas_production, "")];
    gas.extend(disposition_rows(
        &c.gas.dispositions,
        &lines.gas_dispositions,
    ));
    let mut water = vec![row("production", "", "", lines.water_production, "")];
    water.extend(disposition_rows(
        &c.water.dispositions,
        &lines.water_dispositions,
    ));
    [
        ("oil", "bbl", oil),
        ("gas", "Mcf", gas),
        ("water", "bbl", water),
    ]
}

fn render(input: &C115Input, completions: &[CompletionLines]) -> Report {
    let op = &input.operator;
    let month = input.month.to_string();
    let title = format!(
        "New Mexico OCD Form C-115 — Operator's Monthly Report — {month} — OGRID {}",
        op.ogrid.trim()
    );
    let mut csv = Csv::default();
    csv.row(&[
        "ogrid",
        "operator_name",
        "month",
        "api_number",
        "pool_code",
        "property_code",
        "well_name",
        "days_produced",
        "product",
        "line",
        "disposition",
        "purchaser_ogrid",
        "volume",
        "detail",
    ]);
    let mut html = Html::new(
        &title,
        &[
            ("Operator", op.name.trim().to_string()),
            ("OGRID", op.ogrid.trim().to_string()),
            ("Production month", month.clone()),
            ("Completions", input.completions.len().to_string()),
        ],
    );
    for (c, lines) in input.completions.iter().zip(completions) {
        let head = [
            op.ogrid.trim().to_string(),
            op.name.trim().to_string(),
            month.clone(),
            lines.api_number.clone(),
            c.pool_code.trim().to_string(),
            c.property_code.trim().to_string(),
            c.well_name.trim().to_string(),
            c.days_produced.to_string(),
        ];
        html.open_section(&format!(
            "API {} — {} — pool {} — property {} — {} day(s) produced",
            lines.api_number,
            c.well_name.trim(),
            c.pool_code.trim(),
            c.property_code.trim(),
            c.days_produced
        ));
        let mut html_rows = Vec::new();
        for (product, unit, rows) in product_rows(c, lines) {
            for [line, disposition, purchaser, volume, detail] in rows {
                let mut r: Vec<String> = head.to_vec();
                r.extend([
                    product.to_string(),
                    line.clone(),
                    disposition.clone(),
                    purchaser.clone(),
                    volume.clone(),
                    detail.clone(),
                ]);
                csv.row(&r);
                html_rows.push(vec![
                    format!("{product} {} ({unit})", line.replace('_', " ")),
                    disposition.replace('_', " "),
                    purchaser,
                    volume,
                    detail,
                ]);
            }
        }
        html.table(
            &["Line", "Disposition", "Purchaser OGRID", "Volume", "Detail"],
            &[3],
            &html_rows,
        );
        html.close_section();
    }
    html.note("Volumes in whole barrels (bbl) and thousand cubic feet (Mcf).");
    Report {
        title,
        csv: csv.finish(),
        html: html.finish(),
    }
}
