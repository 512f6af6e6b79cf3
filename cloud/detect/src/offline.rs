//! Offline scoring of a CSV file with the same detectors (`wellpulse-cloud detect`).
//!
//! # Use
//!
//! ```
//! let csv = "timestamp,a,b\n2026-01-01 00:00:00,1,2\n2026-01-01 00:00:10,1.1,2\n";
//! let mut out = Vec::new();
//! let summary = detect::offline::score_csv(
//!     csv.as_bytes(),
//!     &mut out,
//!     &detect::offline::OfflineOptions::default(),
//! )
//! .unwrap();
//! assert_eq!(summary.rows, 2);
//! assert!(String::from_utf8(out).unwrap().starts_with("timestamp,score,flag,column\n"));
//! ```
//!
//! # Input
//!
//! A header row, then one row per time. The time column (`time_column`, default
//! `timestamp`) may hold RFC 3339 / ISO 8601 (`2026-01-01T00:00:00Z`, offsets, fractions),
//! `YYYY-MM-DD HH:MM:SS[.fff]` (UTC), or numeric epoch seconds or milliseconds (above 10¹¹
//! = ms). With `sample_period_ms` the times are the row index × period instead (the column
//! may then be absent). Value columns: `value_columns`, default every other column except
//! ground-truth labels ([`LABEL_COLUMNS`]: `anomaly`, `changepoint`, ...). An empty cell
//! (or `nan`) is a missing value; anything else must be a number. The delimiter is sniffed
//! from the header (`,`, `;` or tab) unless given.
//!
//! The whole input is read into memory (the model trains on its head).
//!
//! # Scoring
//!
//! Every column is a series with the streaming detectors of [`crate::series`] (robust
//! level, rate of change, hour-of-day when it explains better). A column's score is
//! `max(|z|, |rate z|) / z_threshold` (1 = the online firing point). With two or more
//! columns a PCA model ([`crate::model`]) is also trained on the first `train_fraction` of
//! the rows (complete rows only; skipped when it cannot train) and scored on every row
//! with the latest value of each column; its score, `√(error / threshold)` (1 at its
//! threshold, and like a z-score linear in the deviation), competes with the columns' and
//! names the column with the largest share of the error. A row's score is the maximum;
//! `flag` is `score ≥ threshold`.
//! Scores are causal (each row only sees the rows before it), like the online detector.
//!
//! # Output
//!
//! [`score_csv`] writes `timestamp,score,flag,column`: the input's time cell as given (or
//! the row index with `sample_period_ms`), the score (4 decimals), 0/1, and the column
//! most responsible (empty when no column could be scored yet).

use std::collections::BTreeMap;
use std::io::{Read, Write};

use crate::DetectOptions;
use crate::model::{self, WellModel};
use crate::series::SeriesState;

/// Offline scoring options.
#[derive(Debug, Clone, PartialEq)]
pub struct OfflineOptions {
    /// Name of the time column.
    pub time_column: String,
    /// Columns to score (None: every column but the time column).
    pub value_columns: Option<Vec<String>>,
    /// Fixed sample period (ms); None: times from the time column.
    pub sample_period_ms: Option<i64>,
    /// Row score at which `flag` is 1.
    pub threshold: f64,
    /// Share of the rows the PCA model trains on (0 disables it).
    pub train_fraction: f64,
    /// Field delimiter; None: sniffed from the header line (`,`, `;` or tab).
    pub delimiter: Option<u8>,
    /// Detector tuning (`warmup_samples`, `z_threshold`).
    pub detect: DetectOptions,
}

/// Columns never scored by default: ground-truth labels of labelled data sets.
pub const LABEL_COLUMNS: &[&str] = &["anomaly", "changepoint", "label", "labels", "is_anomaly"];

/// The delimiter of a header line: the most frequent of `,`, `;` and tab (`,` on a tie).
fn sniff(header: &[u8]) -> u8 {
    let count = |c: u8| header.iter().filter(|b| **b == c).count();
    [b';', b'\t'].into_iter().fold(
        b',',
        |best, c| if count(c) > count(best) { c } else { best },
    )
}

impl Default for OfflineOptions {
    fn default() -> OfflineOptions {
        OfflineOptions {
            time_column: "timestamp".into(),
            value_columns: None,
            sample_period_ms: None,
            threshold: 1.0,
            train_fraction: 0.2,
            delimiter: None,
            detect: DetectOptions::default(),
        }
    }
}

/// What a run did.
#[derive(Debug, Clone, PartialEq)]
pub struct OfflineSummary {
    /// Rows scored.
    pub rows: usize,
    /// Rows flagged.
    pub flagged: usize,
    /// Columns scored.
    pub columns: Vec<String>,
    /// The PCA model, when one was trained.
    pub model: Option<WellModel>,
}

/// One scored row.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoredRow {
    /// The time cell as given (or the row index).
    pub time: String,
    /// UTC ms.
    pub ts_ms: i64,
    /// Maximum normalised score.
    pub score: f64,
    /// `score ≥ threshold`.
    pub flag: bool,
    /// Column most responsible.
    pub column: Option<String>,
}

/// Why a file could not be scored.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OfflineError {
    /// A named column is not in the header.
    #[error("column {column:?} not found; available: {}", available.join(", "))]
    MissingColumn {
        /// The missing column.
        column: String,
        /// The header's columns.
        available: Vec<String>,
    },
    /// A cell that is neither empty nor a number.
    #[error("line {line}, column {column:?}: {value:?} is not a number")]
    BadValue {
        /// 1-based line (the header is line 1).
        line: u64,
        /// Column.
        column: String,
        /// The cell.
        value: String,
    },
    /// A time cell that cannot be read.
    #[error("line {line}: time {value:?} is not RFC 3339, YYYY-MM-DD HH:MM:SS or epoch")]
    BadTime {
        /// 1-based line.
        line: u64,
        /// The cell.
        value: String,
    },
    /// No value column to score.
    #[error("no value columns to score")]
    NoColumns,
    /// Malformed CSV or a read/write failure.
    #[error("{0}")]
    Csv(String),
}

/// Days since 1970-01-01 of a civil date (proleptic Gregorian).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Parses a time cell to UTC ms (see the module docs).
pub fn parse_time(cell: &str) -> Option<i64> {
    let s = cell.trim();
    if let Ok(x) = s.parse::<f64>() {
        if !x.is_finite() {
            return None;
        }
        return Some(if x.abs() >= 1e11 {
            x as i64
        } else {
            (x * 1000.0) as i64
        });
    }
    let b = s.as_bytes();
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) {
        return None;
    }
    let mut ms = days_from_civil(y, mo, d) * 86_400_000;
    if b.len() == 10 {
        return Some(ms);
    }
    if !matches!(b[10], b'T' | b't' | b' ') || b.len() < 16 {
        return None;
    }
    let (h, mi) = (num(11..13)?, num(14..16)?);
    let mut i = 16;
    let mut sec = 0.0;
    if b.len() >= 19 && b[16] == b':' {
        let end = s[19..]
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .map_or(s.len(), |e| 19 + e);
        sec = s.get(17..end)?.parse::<f64>().ok()?;
        i = end;
    }
    if h > 24 || mi > 59 || !(0.0..61.0).contains(&sec) {
        return None;
    }
    ms += h * 3_600_000 + mi * 60_000 + (sec * 1000.0).round() as i64;
    let rest = s[i..].trim();
    match rest {
        "" | "Z" | "z" => Some(ms),
        _ => {
            let sign = match rest.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let off = rest[1..].replace(':', "");
            if off.len() != 4 {
                return None;
            }
            let oh = off[0..2].parse::<i64>().ok()?;
            let om = off[2..4].parse::<i64>().ok()?;
            Some(ms - sign * (oh * 3_600_000 + om * 60_000))
        }
    }
}

/// Reads and scores `input`; the rows and the summary.
pub fn score_rows<R: Read>(
    mut input: R,
    options: &OfflineOptions,
) -> Result<(Vec<ScoredRow>, OfflineSummary), OfflineError> {
    let mut bytes = Vec::new();
    input
        .read_to_end(&mut bytes)
        .map_err(|e| OfflineError::Csv(e.to_string()))?;
    let first_line = bytes.split(|b| *b == b'\n').next().unwrap_or(&[]);
    let delimiter = options.delimiter.unwrap_or_else(|| sniff(first_line));
    let mut rdr = csv::ReaderBuilder::new()
        .flexible(false)
        .delimiter(delimiter)
        .from_reader(bytes.as_slice());
    let header: Vec<String> = rdr
        .headers()
        .map_err(|e| OfflineError::Csv(e.to_string()))?
        .iter()
        .map(|h| h.trim().to_owned())
        .collect();
    let find = |name: &str| {
        header
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| OfflineError::MissingColumn {
                column: name.to_owned(),
                available: header.clone(),
            })
    };
    let time_idx = match options.sample_period_ms {
        Some(_) => header.iter().position(|h| *h == options.time_column),
        None => Some(find(&options.time_column)?),
    };
    let columns: Vec<(usize, String)> = match &options.value_columns {
        Some(names) => names
            .iter()
            .map(|n| find(n).map(|i| (i, n.clone())))
            .collect::<Result<_, _>>()?,
        None => header
            .iter()
            .enumerate()
            .filter(|(i, h)| {
                Some(*i) != time_idx && !LABEL_COLUMNS.contains(&h.to_ascii_lowercase().as_str())
            })
            .map(|(i, h)| (i, h.clone()))
            .collect(),
    };
    if columns.is_empty() {
        return Err(OfflineError::NoColumns);
    }
    // Parse everything first (the model trains on the head of the file).
    let mut times = Vec::new();
    let mut values: Vec<Vec<Option<f64>>> = Vec::new();
    for (row, record) in rdr.records().enumerate() {
        let record = record.map_err(|e| OfflineError::Csv(e.to_string()))?;
        let line = record.position().map_or(row as u64 + 2, |p| p.line());
        let cell_time = time_idx
            .and_then(|i| record.get(i))
            .unwrap_or("")
            .to_owned();
        let ts = match options.sample_period_ms {
            Some(p) => row as i64 * p,
            None => parse_time(&cell_time).ok_or_else(|| OfflineError::BadTime {
                line,
                value: cell_time.clone(),
            })?,
        };
        let mut v = Vec::with_capacity(columns.len());
        for (i, name) in &columns {
            let cell = record.get(*i).unwrap_or("").trim();
            if cell.is_empty() {
                v.push(None);
                continue;
            }
            let x = cell.parse::<f64>().map_err(|_| OfflineError::BadValue {
                line,
                column: name.clone(),
                value: cell.to_owned(),
            })?;
            v.push(x.is_finite().then_some(x));
        }
        let shown = if time_idx.is_some() {
            cell_time
        } else {
            row.to_string()
        };
        times.push((shown, ts));
        values.push(v);
    }
    let names: Vec<String> = columns.iter().map(|(_, n)| n.clone()).collect();
    let model = train_head(&names, &values, options);
    let o = &options.detect;
    let warmup = o.warmup_samples;
    let mut series = vec![SeriesState::default(); names.len()];
    let mut latest = BTreeMap::new();
    let mut out = Vec::with_capacity(values.len());
    let mut flagged = 0;
    for ((time, ts), row) in times.into_iter().zip(values) {
        let mut best: (f64, Option<String>) = (0.0, None);
        for (j, x) in row.iter().enumerate() {
            let Some(x) = *x else { continue };
            let s = &mut series[j];
            if s.last_ts.is_some_and(|t| ts <= t) {
                // Duplicate or out-of-order time: score against the baseline only.
                let z = s.score(ts, x, warmup).z.map_or(0.0, f64::abs) / o.z_threshold;
                if z > best.0 || best.1.is_none() && s.level.is_warm() {
                    best = (z, Some(names[j].clone()));
                }
                continue;
            }
            let score = s.score(ts, x, warmup);
            let m = score.magnitude();
            s.learn(ts, x, warmup, m > o.z_threshold);
            latest.insert(names[j].clone(), x);
            if score.z.is_some() && (m / o.z_threshold > best.0 || best.1.is_none()) {
                best = (m / o.z_threshold, Some(names[j].clone()));
            }
        }
        if let Some(ms) = model.as_ref().and_then(|m| m.score(&latest))
            && ms.score.sqrt() > best.0
        {
            let top = ms
                .contributions
                .iter()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .map(|(f, _)| f.clone());
            best = (ms.score.sqrt(), top);
        }
        let flag = best.0 >= options.threshold;
        flagged += usize::from(flag);
        out.push(ScoredRow {
            time,
            ts_ms: ts,
            score: if best.0.is_finite() { best.0 } else { 0.0 },
            flag,
            column: best.1,
        });
    }
    let summary = OfflineSummary {
        rows: out.len(),
        flagged,
        columns: names,
        model,
    };
    Ok((out, summary))
}

/// Trains the PCA model on the complete rows of the head of the file.
fn train_head(
    names: &[String],
    values: &[Vec<Option<f64>>],
    options: &OfflineOptions,
) -> Option<WellModel> {
    if names.len() < 2 || options.train_fraction <= 0.0 {
        return None;
    }
    let head = ((values.len() as f64 * options.train_fraction.min(1.0)) as usize)
        .max(model::MIN_ROWS)
        .min(values.len());
    let rows: Vec<Vec<f64>> = values[..head]
        .iter()
        .filter_map(|r| r.iter().copied().collect::<Option<Vec<f64>>>())
        .collect();
    model::train_rows(names.to_vec(), &rows).ok()
}

/// Writes scored rows as CSV (`timestamp,score,flag,column`).
pub fn write_rows<W: Write>(output: W, rows: &[ScoredRow]) -> Result<(), OfflineError> {
    let mut w = csv::Writer::from_writer(output);
    let err = |e: csv::Error| OfflineError::Csv(e.to_string());
    w.write_record(["timestamp", "score", "flag", "column"])
        .map_err(err)?;
    for r in rows {
        w.write_record([
            r.time.as_str(),
            &format!("{:.4}", r.score),
            if r.flag { "1" } else { "0" },
            r.column.as_deref().unwrap_or(""),
        ])
        .map_err(err)?;
    }
    w.flush().map_err(|e| OfflineError::Csv(e.to_string()))
}

/// Scores the CSV `input` and writes the result CSV to `output` (see the module docs).
pub fn score_csv<R: Read, W: Write>(
    input: R,
    output: W,
    options: &OfflineOptions,
) -> Result<OfflineSummary, OfflineError> {
    let (rows, summary) = score_rows(input, options)?;
    write_rows(output, &rows)?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(rows: usize, spike_at: usize) -> String {
        let mut s = String::from("timestamp,temp,pressure\n");
        for i in 0..rows {
            let t = 1_767_225_600 + i as i64 * 10;
            let temp = 50.0 + ((i * 37) % 11) as f64 * 0.1;
            let p = if i == spike_at {
                500.0
            } else {
                100.0 + ((i * 13) % 7) as f64 * 0.2
            };
            s.push_str(&format!("{t},{temp},{p}\n"));
        }
        s
    }

    #[test]
    fn flags_the_spike_and_names_its_column() {
        let (rows, summary) =
            score_rows(file(300, 200).as_bytes(), &OfflineOptions::default()).unwrap();
        assert_eq!(summary.rows, 300);
        assert!(rows[200].flag);
        assert_eq!(rows[200].column.as_deref(), Some("pressure"));
        let false_flags: Vec<_> = rows[100..199].iter().filter(|r| r.flag).collect();
        assert!(false_flags.is_empty(), "{false_flags:?}");
    }

    #[test]
    fn missing_column_and_bad_cell_are_named() {
        let opts = OfflineOptions {
            value_columns: Some(vec!["flow".into()]),
            ..OfflineOptions::default()
        };
        let e = score_rows(file(3, 9).as_bytes(), &opts).unwrap_err();
        assert!(matches!(&e, OfflineError::MissingColumn { column, .. } if column == "flow"));
        assert!(e.to_string().contains("temp"));
        let text = "timestamp,a\n1,2\n2,\n3,x\n";
        let e = score_rows(text.as_bytes(), &OfflineOptions::default()).unwrap_err();
        assert_eq!(
            e,
            OfflineError::BadValue {
                line: 4,
                column: "a".into(),
                value: "x".into()
            }
        );
    }

    #[test]
    fn semicolon_files_with_labels_score_their_sensors_only() {
        let mut text = String::from("datetime;Accelerometer1RMS;Pressure;anomaly;changepoint\n");
        for i in 0..100 {
            let p = if i >= 80 {
                5.0
            } else {
                1.0 + 0.01 * ((i * 7) % 5) as f64
            };
            text.push_str(&format!(
                "2020-03-09 10:{:02}:{:02};0.{};{p};{};0\n",
                i / 60,
                i % 60,
                20 + (i * 3) % 7,
                u8::from(i >= 80)
            ));
        }
        let opts = OfflineOptions {
            time_column: "datetime".into(),
            ..OfflineOptions::default()
        };
        let (rows, summary) = score_rows(text.as_bytes(), &opts).unwrap();
        assert_eq!(summary.columns, vec!["Accelerometer1RMS", "Pressure"]);
        assert!(rows[80].flag);
        assert_eq!(rows[80].column.as_deref(), Some("Pressure"));
        assert!(rows[40..79].iter().all(|r| !r.flag));
    }

    #[test]
    fn parses_time_formats() {
        let t = 1_767_225_600_000;
        assert_eq!(parse_time("2026-01-01T00:00:00Z"), Some(t));
        assert_eq!(parse_time("2026-01-01 00:00:00"), Some(t));
        assert_eq!(parse_time("2026-01-01T01:00:00+01:00"), Some(t));
        assert_eq!(parse_time("2026-01-01T00:00:00.250Z"), Some(t + 250));
        assert_eq!(parse_time("1767225600"), Some(t));
        assert_eq!(parse_time("1767225600000"), Some(t));
        assert_eq!(parse_time("yesterday"), None);
    }

    #[test]
    fn writes_the_header() {
        let mut out = Vec::new();
        score_csv(
            file(40, 99).as_bytes(),
            &mut out,
            &OfflineOptions::default(),
        )
        .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("timestamp,score,flag,column\n"));
        assert_eq!(text.lines().count(), 41);
    }
}
