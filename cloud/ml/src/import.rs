//! History import: wells and daily production (oil, gas, water, hours on, disposition) from
//! a CSV file whose columns are named by a small TOML mapping file.
//!
//! Pure: [`parse_history`] reads any `std::io::Read` (a file, an upload body, a test
//! string) and returns what to store; `store::history` writes it, `wellpulse-cloud import`
//! drives both and shows the progress.
//!
//! # Rules
//!
//! - Every data row is validated on its own. A bad row is reported with its line number
//!   (1-based, the header being line 1) and the reason, and skipped; the good rows are kept.
//!   Only a file-level problem (a mapped column missing from the header, a file that is not
//!   CSV) refuses the whole file.
//! - A row's natural key is (API well number, production day). Two rows of one file with
//!   the same key: the second is reported as a duplicate of the first. The store upserts on
//!   the same keys, so importing a file twice changes nothing.
//! - Empty volume cells are *unknown*, never zero. Volumes are finite and not negative;
//!   thousands separators and spaces are accepted (`"1,234.5"`).
//! - Monthly files (`period = "month"`, the shape of state regulators' lease production
//!   publications) are spread evenly over the days of the month, each daily row noting
//!   the monthly total it came from; hours on come from `days_on` (days produced in the
//!   month) or `hours_on` (hours in the month).
//!
//! # Mapping file
//!
//! ```toml
//! [columns]               # header names in the file
//! api_number = "API_NO"   # required: 10, 12 or 14 digits, dashes optional
//! date = "CYCLE_YEAR_MONTH"   # required
//! well_name = "WELL_NAME"     # optional (default: the API number)
//! lease = "LEASE_NAME"        # optional, also: field, county, state
//! oil = "OIL_BBL"             # at least one of oil (bbl), gas (Mcf), water (bbl)
//! gas = "GAS_MCF"
//! water = "WATER_BBL"
//! days_on = "DAYS_PRODUCED"   # monthly files: days produced; or hours_on (either period)
//! disposition = "GAS_DISP_CODE"  # optional
//!
//! [format]
//! period = "month"            # "day" (default) or "month"
//! date_format = "%Y%m"        # chrono format (default "%Y-%m-%d"; "%Y-%m" for months)
//! delimiter = ","             # one ASCII character
//! site = "Imported history"   # site of the wells the file creates
//!
//! [dispositions]              # file code → sold, lease_use, flared, vented, injected, stored, other
//! "1" = "sold"
//! ```
//!
//! `cloud/ml/examples/regulator-monthly.toml` is the shipped example (parsed by a test).

use std::collections::{BTreeMap, HashMap};
use std::io::Read;

use chrono::{Datelike, NaiveDate};
use serde::Deserialize;

use analytics::api_number::ApiNumber;

/// How often [`parse_history`] reports progress, in data rows.
pub const PROGRESS_EVERY: u64 = 10_000;

/// The mapping file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    /// Which header names hold which field.
    pub columns: Columns,
    /// How the file is written.
    #[serde(default)]
    pub format: Format,
    /// Disposition codes of the file and what they mean.
    #[serde(default)]
    pub dispositions: BTreeMap<String, Disposition>,
}

/// Header names of the file's columns.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Columns {
    /// API well number (the well's natural key).
    pub api_number: String,
    /// Production day, or month for monthly files.
    pub date: String,
    /// Well name.
    pub well_name: Option<String>,
    /// Lease name.
    pub lease: Option<String>,
    /// Field name.
    pub field: Option<String>,
    /// County.
    pub county: Option<String>,
    /// State.
    pub state: Option<String>,
    /// Oil, bbl.
    pub oil: Option<String>,
    /// Gas, Mcf.
    pub gas: Option<String>,
    /// Water, bbl.
    pub water: Option<String>,
    /// Hours on production in the row's period.
    pub hours_on: Option<String>,
    /// Days produced in the month (monthly files only).
    pub days_on: Option<String>,
    /// Disposition code (see `[dispositions]`).
    pub disposition: Option<String>,
}

/// How the file is written.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Format {
    /// One row per well and day, or per well and month.
    pub period: Period,
    /// chrono format of the date column. Monthly files give the month only: `%Y%m`,
    /// `%Y-%m`, `%m/%Y`.
    pub date_format: String,
    /// Field delimiter, one ASCII character.
    pub delimiter: char,
    /// Site the wells created by the import are placed at (created when missing).
    pub site: String,
}

impl Default for Format {
    fn default() -> Self {
        Format {
            period: Period::Day,
            date_format: "%Y-%m-%d".to_owned(),
            delimiter: ',',
            site: "Imported history".to_owned(),
        }
    }
}

/// The period one row covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Period {
    /// One production day.
    Day,
    /// One calendar month.
    Month,
}

/// Where the production of a row went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Disposition {
    /// Sold (pipeline, truck, LACT).
    Sold,
    /// Used on the lease (fuel).
    LeaseUse,
    /// Flared.
    Flared,
    /// Vented.
    Vented,
    /// Injected (pressure maintenance, disposal).
    Injected,
    /// Kept in storage.
    Stored,
    /// Anything else.
    Other,
}

impl Disposition {
    /// Stored name.
    pub fn name(self) -> &'static str {
        match self {
            Disposition::Sold => "sold",
            Disposition::LeaseUse => "lease_use",
            Disposition::Flared => "flared",
            Disposition::Vented => "vented",
            Disposition::Injected => "injected",
            Disposition::Stored => "stored",
            Disposition::Other => "other",
        }
    }
}

/// Why a mapping file or a whole data file is refused.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The mapping file does not parse or is inconsistent.
    #[error("mapping file: {0}")]
    Mapping(String),
    /// The data file's header lacks a mapped column.
    #[error("the file has no column {column:?} (mapped as {field}); its columns are: {found}")]
    MissingColumn {
        /// Mapped field.
        field: &'static str,
        /// Header name looked for.
        column: String,
        /// The header as read.
        found: String,
    },
    /// The data file is not readable CSV.
    #[error("the file is not readable CSV: {0}")]
    Csv(String),
}

impl Mapping {
    /// Parses and checks a mapping file.
    pub fn from_toml(text: &str) -> Result<Mapping, ImportError> {
        let mapping: Mapping =
            toml::from_str(text).map_err(|e| ImportError::Mapping(e.message().to_owned()))?;
        mapping.check()?;
        Ok(mapping)
    }

    fn check(&self) -> Result<(), ImportError> {
        let c = &self.columns;
        if c.oil.is_none() && c.gas.is_none() && c.water.is_none() {
            return Err(ImportError::Mapping(
                "[columns] maps none of oil, gas, water: nothing to import".to_owned(),
            ));
        }
        if c.days_on.is_some() && self.format.period != Period::Month {
            return Err(ImportError::Mapping(
                "[columns] days_on is for monthly files (format.period = \"month\"); daily files give hours_on".to_owned(),
            ));
        }
        if c.days_on.is_some() && c.hours_on.is_some() {
            return Err(ImportError::Mapping(
                "[columns] maps both days_on and hours_on: give one".to_owned(),
            ));
        }
        if c.disposition.is_some() && self.dispositions.is_empty() {
            return Err(ImportError::Mapping(
                "[columns] disposition is mapped but [dispositions] lists no codes".to_owned(),
            ));
        }
        if !self.format.delimiter.is_ascii() {
            return Err(ImportError::Mapping(
                "format.delimiter must be one ASCII character".to_owned(),
            ));
        }
        let site = self.format.site.trim();
        if site.is_empty() || site.len() > 200 {
            return Err(ImportError::Mapping(
                "format.site must be 1 to 200 characters".to_owned(),
            ));
        }
        // A format that cannot produce a date would make every row bad: refuse it now.
        let probe = NaiveDate::from_ymd_opt(2024, 3, 15).expect("valid date");
        let expected = match self.format.period {
            Period::Day => probe,
            Period::Month => probe.with_day(1).expect("valid date"),
        };
        let text = probe.format(&self.format.date_format).to_string();
        if parse_date(&self.format, &text) != Some(expected) {
            return Err(ImportError::Mapping(format!(
                "format.date_format {:?} does not read back the dates it writes (a {} needs {})",
                self.format.date_format,
                match self.format.period {
                    Period::Day => "daily file",
                    Period::Month => "monthly file",
                },
                match self.format.period {
                    Period::Day => "year, month and day",
                    Period::Month => "year and month only",
                },
            )));
        }
        Ok(())
    }
}

fn parse_date(format: &Format, text: &str) -> Option<NaiveDate> {
    let text = text.trim();
    match format.period {
        Period::Day => NaiveDate::parse_from_str(text, &format.date_format).ok(),
        Period::Month => {
            NaiveDate::parse_from_str(&format!("{text}|01"), &format!("{}|%d", format.date_format))
                .ok()
        }
    }
}

/// A well the file names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WellRecord {
    /// Canonical API number (`SS-CCC-UUUUU[-TT[-EE]]`).
    pub api_number: String,
    /// Name (the API number when the file has none).
    pub name: String,
    /// Lease.
    pub lease: String,
    /// Field.
    pub field: String,
    /// County.
    pub county: String,
    /// State.
    pub state: String,
    /// First line naming it.
    pub line: u64,
}

/// One well-day of production.
#[derive(Debug, Clone, PartialEq)]
pub struct DayRecord {
    /// Canonical API number.
    pub api_number: String,
    /// Production day (UTC).
    pub day: NaiveDate,
    /// Oil, bbl (`None` unknown).
    pub oil: Option<f64>,
    /// Gas, Mcf.
    pub gas: Option<f64>,
    /// Water, bbl.
    pub water: Option<f64>,
    /// Hours on production, 0..=24.
    pub hours_on: Option<f64>,
    /// Disposition.
    pub disposition: Option<Disposition>,
    /// For a monthly file, the month's totals this day was allocated from, in words.
    pub note: Option<String>,
    /// Line of the file it came from.
    pub line: u64,
}

/// A row that was not imported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRow {
    /// Line number (header = 1).
    pub line: u64,
    /// Why, in words.
    pub reason: String,
}

/// What a file holds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ParsedHistory {
    /// Wells, in order of first appearance.
    pub wells: Vec<WellRecord>,
    /// Daily records, in file order.
    pub days: Vec<DayRecord>,
    /// Rows not imported.
    pub bad: Vec<BadRow>,
    /// Data rows read (good and bad).
    pub rows: u64,
}

struct Indices {
    api_number: usize,
    date: usize,
    well_name: Option<usize>,
    lease: Option<usize>,
    field: Option<usize>,
    county: Option<usize>,
    state: Option<usize>,
    oil: Option<usize>,
    gas: Option<usize>,
    water: Option<usize>,
    hours_on: Option<usize>,
    days_on: Option<usize>,
    disposition: Option<usize>,
}

fn indices(columns: &Columns, header: &csv::StringRecord) -> Result<Indices, ImportError> {
    let find = |field: &'static str, name: &str| -> Result<usize, ImportError> {
        header
            .iter()
            .position(|h| h.trim() == name.trim())
            .ok_or_else(|| ImportError::MissingColumn {
                field,
                column: name.to_owned(),
                found: header.iter().collect::<Vec<_>>().join(", "),
            })
    };
    let opt = |field: &'static str, name: &Option<String>| -> Result<Option<usize>, ImportError> {
        name.as_deref().map(|n| find(field, n)).transpose()
    };
    Ok(Indices {
        api_number: find("api_number", &columns.api_number)?,
        date: find("date", &columns.date)?,
        well_name: opt("well_name", &columns.well_name)?,
        lease: opt("lease", &columns.lease)?,
        field: opt("field", &columns.field)?,
        county: opt("county", &columns.county)?,
        state: opt("state", &columns.state)?,
        oil: opt("oil", &columns.oil)?,
        gas: opt("gas", &columns.gas)?,
        water: opt("water", &columns.water)?,
        hours_on: opt("hours_on", &columns.hours_on)?,
        days_on: opt("days_on", &columns.days_on)?,
        disposition: opt("disposition", &columns.disposition)?,
    })
}

/// Reads a number cell: empty is unknown; thousands separators and spaces are dropped.
fn number(
    record: &csv::StringRecord,
    at: Option<usize>,
    what: &str,
) -> Result<Option<f64>, String> {
    let Some(i) = at else { return Ok(None) };
    let raw = record.get(i).unwrap_or("");
    let cleaned: String = raw
        .chars()
        .filter(|c| *c != ',' && !c.is_whitespace())
        .collect();
    if cleaned.is_empty() {
        return Ok(None);
    }
    match cleaned.parse::<f64>() {
        Ok(v) if !v.is_finite() => Err(format!("{what} {raw:?} is not a finite number")),
        Ok(v) if v < 0.0 => Err(format!("{what} {raw:?} is negative")),
        Ok(v) => Ok(Some(v)),
        Err(_) => Err(format!("{what} {raw:?} is not a number")),
    }
}

fn text(record: &csv::StringRecord, at: Option<usize>) -> String {
    at.and_then(|i| record.get(i))
        .unwrap_or("")
        .trim()
        .to_owned()
}

fn days_in_month(first: NaiveDate) -> u32 {
    let next = if first.month() == 12 {
        NaiveDate::from_ymd_opt(first.year() + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(first.year(), first.month() + 1, 1)
    };
    next.expect("valid month")
        .signed_duration_since(first)
        .num_days() as u32
}

/// Longest text accepted in a name-like cell.
const MAX_TEXT: usize = 200;

/// Parses and validates a file. `progress` is called with the number of data rows read
/// every [`PROGRESS_EVERY`] rows and once at the end.
pub fn parse_history(
    mapping: &Mapping,
    input: impl Read,
    progress: &mut dyn FnMut(u64),
) -> Result<ParsedHistory, ImportError> {
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(mapping.format.delimiter as u8)
        .flexible(true)
        .trim(csv::Trim::None)
        .from_reader(input);
    let header = reader
        .headers()
        .map_err(|e| ImportError::Csv(e.to_string()))?
        .clone();
    let at = indices(&mapping.columns, &header)?;
    let mut out = ParsedHistory::default();
    let mut wells: HashMap<String, usize> = HashMap::new();
    let mut seen: HashMap<(String, NaiveDate), u64> = HashMap::new();
    let mut record = csv::StringRecord::new();
    loop {
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                // A malformed record (e.g. invalid UTF-8) is one bad row; an I/O error ends
                // the file.
                if matches!(e.kind(), csv::ErrorKind::Io(_)) {
                    return Err(ImportError::Csv(e.to_string()));
                }
                out.rows += 1;
                let line = e.position().map_or(out.rows + 1, |p| p.line());
                out.bad.push(BadRow {
                    line,
                    reason: format!("unreadable row: {e}"),
                });
                continue;
            }
        }
        out.rows += 1;
        if out.rows % PROGRESS_EVERY == 0 {
            progress(out.rows);
        }
        let line = record.position().map_or(out.rows + 1, |p| p.line());
        match row(mapping, &at, &record, line) {
            Ok((well, days)) => {
                let key = (well.api_number.clone(), days[0].day);
                if let Some(first) = seen.get(&key) {
                    out.bad.push(BadRow {
                        line,
                        reason: format!(
                            "duplicate of line {first}: well {} on {} appears twice",
                            key.0,
                            mapping_date_words(mapping, key.1)
                        ),
                    });
                    continue;
                }
                seen.insert(key, line);
                if !wells.contains_key(&well.api_number) {
                    wells.insert(well.api_number.clone(), out.wells.len());
                    out.wells.push(well);
                }
                out.days.extend(days);
            }
            Err(reason) => out.bad.push(BadRow { line, reason }),
        }
    }
    progress(out.rows);
    Ok(out)
}

fn mapping_date_words(mapping: &Mapping, day: NaiveDate) -> String {
    match mapping.format.period {
        Period::Day => day.to_string(),
        Period::Month => day.format("%Y-%m").to_string(),
    }
}

fn row(
    mapping: &Mapping,
    at: &Indices,
    record: &csv::StringRecord,
    line: u64,
) -> Result<(WellRecord, Vec<DayRecord>), String> {
    let api_raw = text(record, Some(at.api_number));
    if api_raw.is_empty() {
        return Err("no API number".to_owned());
    }
    let api = ApiNumber::parse(&api_raw)
        .map_err(|e| e.to_string())?
        .canonical();
    let date_raw = text(record, Some(at.date));
    let day = parse_date(&mapping.format, &date_raw).ok_or_else(|| {
        format!(
            "date {date_raw:?} does not match the format {:?}",
            mapping.format.date_format
        )
    })?;
    if !(1900..=2100).contains(&day.year()) {
        return Err(format!("date {date_raw:?} is outside 1900-2100"));
    }
    let oil = number(record, at.oil, "oil")?;
    let gas = number(record, at.gas, "gas")?;
    let water = number(record, at.water, "water")?;
    if oil.is_none() && gas.is_none() && water.is_none() {
        return Err("no oil, gas or water volume".to_owned());
    }
    let hours = number(record, at.hours_on, "hours on")?;
    let days_on = number(record, at.days_on, "days on")?;
    let disposition = match at.disposition {
        None => None,
        Some(_) => {
            let code = text(record, at.disposition);
            if code.is_empty() {
                None
            } else {
                Some(*mapping.dispositions.get(&code).ok_or_else(|| {
                    format!(
                        "disposition code {code:?} is not in the mapping's [dispositions] ({})",
                        mapping
                            .dispositions
                            .keys()
                            .cloned()
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                })?)
            }
        }
    };
    let mut fields = [
        ("well name", at.well_name),
        ("lease", at.lease),
        ("field", at.field),
        ("county", at.county),
        ("state", at.state),
    ]
    .map(|(what, i)| (what, text(record, i)));
    for (what, value) in &fields {
        if value.chars().count() > MAX_TEXT {
            return Err(format!("{what} is longer than {MAX_TEXT} characters"));
        }
    }
    if fields[0].1.is_empty() {
        fields[0].1 = api.clone();
    }
    let [name, lease, field, county, state] = fields.map(|(_, v)| v);
    let well = WellRecord {
        api_number: api.clone(),
        name,
        lease,
        field,
        county,
        state,
        line,
    };
    let days = match mapping.format.period {
        Period::Day => {
            if let Some(h) = hours
                && h > 24.0
            {
                return Err(format!("hours on {h} is more than 24 in a day"));
            }
            vec![DayRecord {
                api_number: api,
                day,
                oil,
                gas,
                water,
                hours_on: hours,
                disposition,
                note: None,
                line,
            }]
        }
        Period::Month => {
            let n = days_in_month(day);
            let month_hours = f64::from(n) * 24.0;
            let hours_on_month = match (hours, days_on) {
                (Some(h), _) if h > month_hours => {
                    return Err(format!(
                        "hours on {h} is more than the month's {month_hours}"
                    ));
                }
                (_, Some(d)) if d > f64::from(n) => {
                    return Err(format!("days on {d} is more than the month's {n} days"));
                }
                (Some(h), _) => Some(h),
                (_, Some(d)) => Some(d * 24.0),
                _ => None,
            };
            let per = |v: Option<f64>| v.map(|v| v / f64::from(n));
            let totals: Vec<String> = [
                ("oil", oil, "bbl"),
                ("gas", gas, "Mcf"),
                ("water", water, "bbl"),
            ]
            .into_iter()
            .filter_map(|(what, v, unit)| v.map(|v| format!("{what} {v} {unit}")))
            .collect();
            let note = format!(
                "allocated evenly from the monthly total of {} ({}), line {line}",
                day.format("%Y-%m"),
                totals.join(", ")
            );
            (0..n)
                .map(|i| DayRecord {
                    api_number: api.clone(),
                    day: day + chrono::Days::new(u64::from(i)),
                    oil: per(oil),
                    gas: per(gas),
                    water: per(water),
                    hours_on: hours_on_month.map(|h| h / f64::from(n)),
                    disposition,
                    note: Some(note.clone()),
                    line,
                })
                .collect()
        }
    };
    Ok((well, days))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAILY: &str = r#"
[columns]
api_number = "API"
date = "Date"
well_name = "Well"
oil = "Oil"
gas = "Gas"
water = "Water"
hours_on = "Hours"
disposition = "Disp"

[dispositions]
S = "sold"
F = "flared"
"#;

    fn parse(mapping: &str, csv: &str) -> ParsedHistory {
        let m = Mapping::from_toml(mapping).unwrap();
        parse_history(&m, csv.as_bytes(), &mut |_| {}).unwrap()
    }

    #[test]
    fn good_rows_are_kept_and_bad_ones_reported_with_line_and_reason() {
        let csv = "API,Date,Well,Oil,Gas,Water,Hours,Disp\n\
                   42-123-45678,2024-01-01,Smith 1,10.5,20,3,24,S\n\
                   42-123-45678,2024-01-02,Smith 1,-1,20,3,24,S\n\
                   4212345678,2024-01-03,Smith 1,\"1,200\",,3,23.5,F\n\
                   99-123-45678,2024-01-03,Bad state,1,1,1,24,S\n\
                   42-123-45678,2024-13-01,Smith 1,1,1,1,24,S\n\
                   42-123-45678,2024-01-04,Smith 1,1,1,1,25,S\n\
                   42-123-45678,2024-01-05,Smith 1,1,1,1,24,X\n\
                   42-123-45678,2024-01-01,Smith 1,1,1,1,24,S\n\
                   42-123-45678,2024-01-06,Smith 1,,,,24,S\n\
                   42-123-45678,2024-01-07,Smith 1,abc,1,1,24,S\n";
        let p = parse(DAILY, csv);
        assert_eq!(p.rows, 10);
        assert_eq!(p.days.len(), 2);
        assert_eq!(p.days[1].oil, Some(1200.0));
        assert_eq!(p.days[1].gas, None, "an empty cell is unknown, not zero");
        assert_eq!(p.days[1].disposition, Some(Disposition::Flared));
        assert_eq!(p.wells.len(), 1);
        assert_eq!(p.wells[0].api_number, "42-123-45678");
        let lines: Vec<u64> = p.bad.iter().map(|b| b.line).collect();
        assert_eq!(lines, vec![3, 5, 6, 7, 8, 9, 10, 11]);
        let reason = |line| &p.bad.iter().find(|b| b.line == line).unwrap().reason;
        assert!(reason(3).contains("negative"), "{}", reason(3));
        assert!(reason(5).contains("state code 99"), "{}", reason(5));
        assert!(reason(6).contains("does not match"), "{}", reason(6));
        assert!(reason(7).contains("more than 24"), "{}", reason(7));
        assert!(reason(8).contains("\"X\""), "{}", reason(8));
        assert!(reason(9).contains("duplicate of line 2"), "{}", reason(9));
        assert!(
            reason(10).contains("no oil, gas or water"),
            "{}",
            reason(10)
        );
        assert!(reason(11).contains("not a number"), "{}", reason(11));
    }

    #[test]
    fn a_missing_column_refuses_the_file_naming_it() {
        let m = Mapping::from_toml(DAILY).unwrap();
        let err = parse_history(&m, "API,Date,Oil\n".as_bytes(), &mut |_| {}).unwrap_err();
        assert!(err.to_string().contains("\"Well\""), "{err}");
    }

    #[test]
    fn mappings_that_cannot_work_are_refused() {
        for (text, needle) in [
            ("[columns]\napi_number='a'\ndate='d'\n", "none of oil"),
            (
                "[columns]\napi_number='a'\ndate='d'\noil='o'\nwat='w'\n",
                "unknown field",
            ),
            (
                "[columns]\napi_number='a'\ndate='d'\noil='o'\ndays_on='x'\n",
                "days_on is for monthly",
            ),
            (
                "[columns]\napi_number='a'\ndate='d'\noil='o'\n[format]\nperiod='month'\ndate_format='%Y-%m-%d'\n",
                "year and month only",
            ),
            (
                "[columns]\napi_number='a'\ndate='d'\noil='o'\ndisposition='x'\n",
                "[dispositions]",
            ),
        ] {
            let err = Mapping::from_toml(text).unwrap_err().to_string();
            assert!(err.contains(needle), "{text}: {err}");
        }
    }

    #[test]
    fn monthly_rows_are_spread_over_the_days_of_the_month() {
        let mapping = "[columns]\napi_number='API'\ndate='Month'\noil='Oil'\ndays_on='Days'\n\
                       [format]\nperiod='month'\ndate_format='%Y%m'\n";
        let p = parse(
            mapping,
            "API,Month,Oil,Days\n42-123-45678,202402,290,29\n42-123-45678,202403,31,40\n",
        );
        assert_eq!(p.days.len(), 29, "February 2024 has 29 days");
        assert!(
            p.days
                .iter()
                .all(|d| d.oil == Some(10.0) && d.hours_on == Some(24.0))
        );
        assert_eq!(
            p.days[28].day,
            NaiveDate::from_ymd_opt(2024, 2, 29).unwrap()
        );
        assert!(p.days[0].note.as_deref().unwrap().contains("oil 290 bbl"));
        assert_eq!(p.bad.len(), 1);
        assert!(p.bad[0].reason.contains("31 days"), "{}", p.bad[0].reason);
    }

    #[test]
    fn progress_is_reported() {
        let m = Mapping::from_toml(DAILY).unwrap();
        let mut csv = String::from("API,Date,Well,Oil,Gas,Water,Hours,Disp\n");
        let start = NaiveDate::from_ymd_opt(1990, 1, 1).unwrap();
        for i in 0..(PROGRESS_EVERY + 5) {
            let day = start + chrono::Days::new(i);
            csv.push_str(&format!("42-123-45678,{day},W,1,1,1,24,S\n"));
        }
        let mut seen = Vec::new();
        let p = parse_history(&m, csv.as_bytes(), &mut |n| seen.push(n)).unwrap();
        assert_eq!(seen, vec![PROGRESS_EVERY, PROGRESS_EVERY + 5]);
        assert_eq!(p.days.len() as u64, PROGRESS_EVERY + 5);
    }

    #[test]
    fn the_shipped_example_mapping_parses_and_reads_the_regulator_sample() {
        let m = Mapping::from_toml(include_str!("../examples/regulator-monthly.toml")).unwrap();
        assert_eq!(m.format.period, Period::Month);
        let p = parse_history(
            &m,
            include_str!("../examples/regulator-monthly.csv").as_bytes(),
            &mut |_| {},
        )
        .unwrap();
        assert_eq!(p.wells.len(), 3);
        assert!(!p.days.is_empty());
        assert_eq!(p.bad.len(), 2, "{:?}", p.bad);
    }
}
