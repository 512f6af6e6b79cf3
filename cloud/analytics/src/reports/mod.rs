//! Regulatory production reports: Texas RRC Form PR and New Mexico OCD Form C-115.
//!
//! # Contract
//! Each report builder takes plain input structs (registry data + monthly volumes and
//! dispositions) and returns `Result<Report, Vec<ValidationProblem>>`: either both exports
//! (CSV and a print-ready HTML document) or **every** problem found, each naming the lease
//! or well and the field. A filing with a problem is never produced, so a bad report cannot
//! be sent by mistake.
//!
//! # Checks common to both reports
//! * identifiers present and well-formed (API number with the right state code: 42 Texas,
//!   30 New Mexico; operator number; lease/pool/property codes);
//! * every monthly volume finite and non-negative, stocks non-negative;
//! * every monthly production total complete: a month with a missing or incomplete day
//!   (see [`crate::production::PeriodTotal`]) is rejected, naming the first missing day;
//! * balances: liquids `opening + production − dispositions = closing` and gas
//!   `production = dispositions`, each within [`BALANCE_TOLERANCE`] (1 bbl / 1 Mcf).
//!
//! # Rounding
//! Filings carry whole barrels and whole Mcf. Dispositions are rounded with the
//! largest-remainder method so they add up exactly to the rounded total, and the reported
//! liquid production is `closing − opening + dispositions` in whole barrels, so every
//! printed balance closes exactly.
//!
//! # Exports
//! CSV: RFC 4180 (comma separated, CRLF line ends, fields quoted when needed), one row per
//! report line, meant for review and for the EDI mapping of the API layer (it is not the
//! RRC or OCD EDI record layout). HTML: one self-contained document with print CSS (letter,
//! landscape), all input text HTML-escaped.

pub mod c115;
pub mod form_pr;
mod render;

use crate::production::PeriodTotal;
use chrono::{DateTime, NaiveDate};
use std::fmt;

/// Largest accepted imbalance of a volume balance, bbl or Mcf.
pub const BALANCE_TOLERANCE: f64 = 1.0;

/// A calendar month.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ReportMonth {
    /// Year, e.g. 2024.
    pub year: i32,
    /// Month, 1..=12.
    pub month: u32,
}

impl ReportMonth {
    /// First day of the month, `None` when the month is invalid.
    pub fn first_day(&self) -> Option<NaiveDate> {
        NaiveDate::from_ymd_opt(self.year, self.month, 1)
    }

    /// Number of days in the month, `None` when the month is invalid.
    pub fn days(&self) -> Option<u32> {
        let first = self.first_day()?;
        let next = if self.month == 12 {
            NaiveDate::from_ymd_opt(self.year + 1, 1, 1)?
        } else {
            NaiveDate::from_ymd_opt(self.year, self.month + 1, 1)?
        };
        u32::try_from((next - first).num_days()).ok()
    }
}

impl fmt::Display for ReportMonth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

/// One reason a report cannot be produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationProblem {
    /// What the problem is about, e.g. `lease 08-12345 (SMITH UNIT)`.
    pub subject: String,
    /// Field concerned, e.g. `wells[1].api_number`.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ValidationProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.subject, self.field, self.message)
    }
}

/// A produced report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Title, e.g. `Texas RRC Form PR — 2024-03 — operator 123456`.
    pub title: String,
    /// CSV export.
    pub csv: String,
    /// Print-ready HTML document.
    pub html: String,
}

/// Collects problems for one subject.
pub(crate) struct Problems<'a> {
    subject: String,
    out: &'a mut Vec<ValidationProblem>,
}

impl<'a> Problems<'a> {
    pub(crate) fn new(subject: String, out: &'a mut Vec<ValidationProblem>) -> Self {
        Problems { subject, out }
    }

    pub(crate) fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.out.push(ValidationProblem {
            subject: self.subject.clone(),
            field: field.into(),
            message: message.into(),
        });
    }

    /// Requires a non-blank text.
    pub(crate) fn text(&mut self, field: &str, value: &str) {
        if value.trim().is_empty() {
            self.push(field, "missing");
        }
    }

    /// Requires `value` to be exactly `len` ASCII digits (any of `lens`).
    pub(crate) fn digits(&mut self, field: &str, value: &str, lens: &[usize]) {
        let v = value.trim();
        if v.is_empty() {
            self.push(field, "missing");
        } else if !v.bytes().all(|b| b.is_ascii_digit()) || !lens.contains(&v.len()) {
            let want: Vec<String> = lens.iter().map(usize::to_string).collect();
            self.push(field, format!("'{v}' must be {} digits", want.join(" or ")));
        }
    }

    /// Requires a finite, non-negative volume.
    pub(crate) fn volume(&mut self, field: &str, value: f64, unit: &str) -> bool {
        if !value.is_finite() {
            self.push(field, format!("{value} {unit} is not a number"));
            false
        } else if value < 0.0 {
            self.push(field, format!("{} {unit} is negative", fmt_volume(value)));
            false
        } else {
            true
        }
    }

    /// Requires a complete, valid monthly production total.
    pub(crate) fn production(&mut self, field: &str, total: &PeriodTotal, unit: &str) {
        if !total.is_complete() {
            let first = total
                .incomplete_days
                .iter()
                .min()
                .copied()
                .unwrap_or_default();
            self.push(
                field,
                format!(
                    "{} day(s) with missing or incomplete data (first: {}); fill the gaps or \
                     enter manual corrections before filing",
                    total.incomplete_days.len(),
                    day_label(first)
                ),
            );
        }
        self.volume(field, total.total, unit);
    }

    /// Requires an API number with the expected state code; returns it normalized.
    pub(crate) fn api_number(&mut self, field: &str, value: &str, state: (&str, &str)) -> String {
        match normalize_api_number(value, state.0) {
            Ok(api) => api,
            Err(ApiNumberError::Missing) => {
                self.push(field, "API number missing");
                String::new()
            }
            Err(ApiNumberError::Malformed) => {
                self.push(
                    field,
                    format!(
                        "API number '{}' is malformed (expected 10 or 14 digits, e.g. {}-123-45678)",
                        value.trim(),
                        state.0
                    ),
                );
                String::new()
            }
            Err(ApiNumberError::WrongState(found)) => {
                self.push(
                    field,
                    format!(
                        "API number '{}' has state code {found}, expected {} ({})",
                        value.trim(),
                        state.0,
                        state.1
                    ),
                );
                String::new()
            }
        }
    }
}

/// Why an API number was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiNumberError {
    /// Empty.
    Missing,
    /// Not 10 or 14 digits (dashes and spaces allowed between groups).
    Malformed,
    /// Valid shape, wrong state code (the two leading digits).
    WrongState(String),
}

/// Normalizes an API well number to `SS-CCC-WWWWW` (or `SS-CCC-WWWWW-SS-EE` for 14 digits)
/// and checks its state code (`42` Texas, `30` New Mexico).
pub fn normalize_api_number(value: &str, state_code: &str) -> Result<String, ApiNumberError> {
    let v = value.trim();
    if v.is_empty() {
        return Err(ApiNumberError::Missing);
    }
    if !v
        .chars()
        .all(|c| c.is_ascii_digit() || c == '-' || c == ' ')
    {
        return Err(ApiNumberError::Malformed);
    }
    let digits: String = v.chars().filter(char::is_ascii_digit).collect();
    if digits.len() != 10 && digits.len() != 14 {
        return Err(ApiNumberError::Malformed);
    }
    if &digits[..2] != state_code {
        return Err(ApiNumberError::WrongState(digits[..2].to_string()));
    }
    let mut out = format!("{}-{}-{}", &digits[..2], &digits[2..5], &digits[5..10]);
    if digits.len() == 14 {
        out.push_str(&format!("-{}-{}", &digits[10..12], &digits[12..14]));
    }
    Ok(out)
}

/// `YYYY-MM-DD` (UTC) of a day start in ms.
fn day_label(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms)
        .map(|d| d.date_naive().to_string())
        .unwrap_or_else(|| format!("{ms} ms"))
}

/// Volume with up to 3 decimals, trailing zeros trimmed.
pub(crate) fn fmt_volume(v: f64) -> String {
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".to_string()
    } else {
        s.to_string()
    }
}

/// Rounds to whole units, half away from zero.
pub(crate) fn whole(v: f64) -> i64 {
    v.round() as i64
}

/// Rounds `values` to integers that add up to `round(Σ values)` (largest remainder).
pub(crate) fn round_preserving_sum(values: &[f64]) -> Vec<i64> {
    let target = whole(values.iter().sum());
    let mut out: Vec<i64> = values.iter().map(|v| v.floor() as i64).collect();
    let mut short = target - out.iter().sum::<i64>();
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| {
        let ra = values[a] - values[a].floor();
        let rb = values[b] - values[b].floor();
        rb.total_cmp(&ra).then(a.cmp(&b))
    });
    for &i in order.iter().cycle().take(values.len() * 2) {
        match short {
            0 => break,
            s if s > 0 => {
                out[i] += 1;
                short -= 1;
            }
            _ => {
                out[i] -= 1;
                short += 1;
            }
        }
    }
    out
}

/// Checks `lhs ≈ rhs` within [`BALANCE_TOLERANCE`].
pub(crate) fn balanced(lhs: f64, rhs: f64) -> bool {
    (lhs - rhs).abs() <= BALANCE_TOLERANCE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_numbers() {
        assert_eq!(
            normalize_api_number("4212345678", "42").unwrap(),
            "42-123-45678"
        );
        assert_eq!(
            normalize_api_number(" 30-015-12345-00-01 ", "30").unwrap(),
            "30-015-12345-00-01"
        );
        assert_eq!(normalize_api_number("", "42"), Err(ApiNumberError::Missing));
        assert_eq!(
            normalize_api_number("42-123-4567", "42"),
            Err(ApiNumberError::Malformed)
        );
        assert_eq!(
            normalize_api_number("42-123-4567x", "42"),
            Err(ApiNumberError::Malformed)
        );
        assert_eq!(
            normalize_api_number("30-015-12345", "42"),
            Err(ApiNumberError::WrongState("30".into()))
        );
    }

    #[test]
    fn rounding_preserves_sum() {
        assert_eq!(round_preserving_sum(&[33.4, 33.3, 33.3]), vec![34, 33, 33]);
        assert_eq!(round_preserving_sum(&[0.5, 0.5]), vec![1, 0]);
        assert_eq!(round_preserving_sum(&[]), Vec::<i64>::new());
        let v = [10.2, 5.9, 7.7, 0.1];
        let r = round_preserving_sum(&v);
        assert_eq!(r.iter().sum::<i64>(), whole(v.iter().sum()));
    }

    #[test]
    fn month_days() {
        assert_eq!(
            ReportMonth {
                year: 2024,
                month: 2
            }
            .days(),
            Some(29)
        );
        assert_eq!(
            ReportMonth {
                year: 2023,
                month: 12
            }
            .days(),
            Some(31)
        );
        assert_eq!(
            ReportMonth {
                year: 2023,
                month: 13
            }
            .days(),
            None
        );
        assert_eq!(
            ReportMonth {
                year: 2024,
                month: 3
            }
            .to_string(),
            "2024-03"
        );
    }

    #[test]
    fn volume_format() {
        assert_eq!(fmt_volume(12.0), "12");
        assert_eq!(fmt_volume(12.5), "12.5");
        assert_eq!(fmt_volume(-0.0001), "0");
    }
}
