//! PGCOPY binary encoding of telemetry rows.
//!
//! `COPY telemetry (time, series_id, value, quality) FROM STDIN (FORMAT binary)` is the
//! fastest way into PostgreSQL (about twice text COPY). The format
//! (<https://www.postgresql.org/docs/current/sql-copy.html#id-1.9.3.55.9.4>) is:
//!
//! ```text
//! header   "PGCOPY\n\xff\r\n\0", flags i32 = 0, header-extension length i32 = 0
//! row      field count i16 = 4, then per field: length i32 (-1 = NULL) and the value in
//!          the type's binary send format, all big-endian:
//!            time      timestamptz = i64 microseconds since 2000-01-01 00:00:00 UTC
//!            series_id int8
//!            value     float8 (IEEE 754 bits), NULL when there is no value
//!            quality   int2 (0 good, 1 bad, 2 stale, 3 uncertain)
//! trailer  i16 = -1
//! ```
//!
//! [`encode_row`] appends one row to a byte buffer; the header and trailer are separate
//! ([`HEADER`], [`TRAILER`]) so that a writer can stream rows in chunks of its choosing.
//! [`CopyEncoder`] wraps a buffer for callers that want a whole payload at once.
//!
//! Invariants enforced here: a row's time is within PostgreSQL's timestamptz range (checked
//! before anything is sent, so one bad timestamp cannot abort a COPY half-way), and a value
//! that is not finite (NaN, ±∞, e.g. a float register reporting a sensor fault) is stored
//! as NULL with quality *bad*: rollups and analytics never see NaN.

use wire::Quality;

use crate::{DbError, SeriesId};

/// PGCOPY binary header: signature, flags, header-extension length.
pub const HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";
/// PGCOPY binary trailer.
pub const TRAILER: &[u8] = &(-1i16).to_be_bytes();
/// The COPY statement matching the encoding.
pub const COPY_TELEMETRY: &str =
    "COPY telemetry (time, series_id, value, quality) FROM STDIN (FORMAT binary)";

/// Microseconds between the Unix epoch and PostgreSQL's epoch (2000-01-01 UTC).
const PG_EPOCH_OFFSET_US: i64 = 946_684_800_000_000;
/// Smallest timestamptz PostgreSQL accepts (4714-11-24 00:00:00 BC), in PostgreSQL µs.
const PG_MIN_US: i64 = -211_813_488_000_000_000;
/// One past the largest timestamptz PostgreSQL accepts (294277-01-01), in PostgreSQL µs.
const PG_END_US: i64 = 9_223_371_331_200_000_000;

/// One telemetry sample ready to be stored.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TelemetryRow {
    /// Sample time, Unix milliseconds UTC (the wire's `ts_ms`).
    pub ts_ms: i64,
    /// Series the sample belongs to.
    pub series_id: SeriesId,
    /// Engineering value (`raw * scale + offset`); `None` when the device gave none.
    pub value: Option<f64>,
    /// Sample quality.
    pub quality: Quality,
}

/// Converts Unix milliseconds to PostgreSQL timestamptz microseconds, if representable
/// (from 4714 BC, PostgreSQL's lower bound, to year 294247, where Unix microseconds leave
/// `i64`).
pub fn pg_micros(ts_ms: i64) -> Option<i64> {
    let us = ts_ms.checked_mul(1000)?.checked_sub(PG_EPOCH_OFFSET_US)?;
    (PG_MIN_US..PG_END_US).contains(&us).then_some(us)
}

/// Appends one row in PGCOPY binary form to `buf`; refuses (without writing anything) a
/// time PostgreSQL cannot store.
pub fn encode_row(buf: &mut Vec<u8>, row: &TelemetryRow) -> Result<(), DbError> {
    let time = pg_micros(row.ts_ms).ok_or_else(|| out_of_range(row.ts_ms))?;
    let (value, quality) = match row.value {
        Some(v) if v.is_finite() => (Some(v), row.quality),
        Some(_) => (None, Quality::Bad),
        None => (None, row.quality),
    };
    buf.extend_from_slice(&4i16.to_be_bytes());
    buf.extend_from_slice(&8i32.to_be_bytes());
    buf.extend_from_slice(&time.to_be_bytes());
    buf.extend_from_slice(&8i32.to_be_bytes());
    buf.extend_from_slice(&row.series_id.0.to_be_bytes());
    match value {
        Some(v) => {
            buf.extend_from_slice(&8i32.to_be_bytes());
            buf.extend_from_slice(&v.to_bits().to_be_bytes());
        }
        None => buf.extend_from_slice(&(-1i32).to_be_bytes()),
    }
    buf.extend_from_slice(&2i32.to_be_bytes());
    buf.extend_from_slice(&i16::from(quality.code()).to_be_bytes());
    Ok(())
}

/// Checks that PostgreSQL can store a sample time.
pub fn check_time(ts_ms: i64) -> Result<(), DbError> {
    pg_micros(ts_ms)
        .map(|_| ())
        .ok_or_else(|| out_of_range(ts_ms))
}

fn out_of_range(ts_ms: i64) -> DbError {
    DbError::invalid(
        "sample time",
        format!("{ts_ms} ms is outside PostgreSQL's timestamptz range"),
    )
}

/// Appends binary COPY rows to a buffer.
#[derive(Debug, Default)]
pub struct CopyEncoder {
    buf: Vec<u8>,
    rows: usize,
}

impl CopyEncoder {
    /// An empty encoder.
    pub fn new() -> CopyEncoder {
        CopyEncoder::default()
    }

    /// Appends one row; refuses (without writing anything) a time PostgreSQL cannot store.
    pub fn push(&mut self, row: &TelemetryRow) -> Result<(), DbError> {
        encode_row(&mut self.buf, row)?;
        self.rows += 1;
        Ok(())
    }

    /// Encoded rows so far (without header and trailer).
    pub fn rows_bytes(&self) -> &[u8] {
        &self.buf
    }

    /// Number of rows encoded.
    pub fn row_count(&self) -> usize {
        self.rows
    }

    /// Current length of the encoded rows in bytes.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether no row has been encoded.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Forgets all rows, keeping the allocation.
    pub fn clear(&mut self) {
        self.buf.clear();
        self.rows = 0;
    }

    /// A complete COPY payload: header, the rows, trailer.
    pub fn to_copy_payload(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER.len() + self.buf.len() + TRAILER.len());
        out.extend_from_slice(HEADER);
        out.extend_from_slice(&self.buf);
        out.extend_from_slice(TRAILER);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_is_19_bytes_with_signature() {
        assert_eq!(HEADER.len(), 19);
        assert_eq!(&HEADER[..11], b"PGCOPY\n\xff\r\n\0");
        assert_eq!(TRAILER, &[0xff, 0xff]);
    }

    #[test]
    fn row_layout_matches_the_pgcopy_format() {
        let mut enc = CopyEncoder::new();
        // 2000-01-01T00:00:01.5Z = 1.5 s after the PostgreSQL epoch.
        enc.push(&TelemetryRow {
            ts_ms: 946_684_801_500,
            series_id: SeriesId(7),
            value: Some(1.0),
            quality: Quality::Stale,
        })
        .unwrap();
        let mut expected = vec![0, 4, 0, 0, 0, 8];
        expected.extend_from_slice(&1_500_000i64.to_be_bytes());
        expected.extend_from_slice(&[0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 7]);
        expected.extend_from_slice(&[0, 0, 0, 8, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0]);
        expected.extend_from_slice(&[0, 0, 0, 2, 0, 2]);
        assert_eq!(enc.rows_bytes(), expected.as_slice());
        assert_eq!(enc.row_count(), 1);
    }

    #[test]
    fn missing_value_is_null_and_nan_becomes_bad_null() {
        let mut enc = CopyEncoder::new();
        for value in [None, Some(f64::NAN), Some(f64::INFINITY)] {
            enc.push(&TelemetryRow {
                ts_ms: 0,
                series_id: SeriesId(1),
                value,
                quality: Quality::Good,
            })
            .unwrap();
        }
        let rows = enc.rows_bytes();
        // count 2 + time 12 + series 12 + NULL value 4 + quality 6 = 36 bytes per row.
        assert_eq!(rows.len(), 3 * 36);
        for (i, row) in rows.chunks(36).enumerate() {
            assert_eq!(
                &row[26..30],
                &(-1i32).to_be_bytes(),
                "row {i} value not NULL"
            );
            let quality = i16::from_be_bytes([row[34], row[35]]);
            let expected = if i == 0 { 0 } else { 1 };
            assert_eq!(quality, expected, "row {i}");
        }
    }

    #[test]
    fn out_of_range_time_is_refused_without_writing() {
        let mut enc = CopyEncoder::new();
        let err = enc.push(&TelemetryRow {
            ts_ms: i64::MAX,
            series_id: SeriesId(1),
            value: Some(1.0),
            quality: Quality::Good,
        });
        assert!(err.is_err());
        assert!(enc.is_empty());
        assert_eq!(enc.len(), 0);
    }

    #[test]
    fn pg_micros_converts_and_bounds() {
        assert_eq!(pg_micros(946_684_800_000), Some(0));
        assert_eq!(pg_micros(0), Some(-PG_EPOCH_OFFSET_US));
        assert_eq!(pg_micros(i64::MIN), None);
        // 4714-11-24 00:00:00 BC is PostgreSQL's first instant.
        let first_ms = (PG_MIN_US + PG_EPOCH_OFFSET_US) / 1000;
        assert_eq!(pg_micros(first_ms), Some(PG_MIN_US));
        assert_eq!(pg_micros(first_ms - 1), None);
        // The top end is bounded by i64 Unix microseconds (year 294247), just inside
        // PostgreSQL's range.
        assert!(pg_micros(i64::MAX / 1000).is_some());
        assert_eq!(pg_micros(i64::MAX / 1000 + 1), None);
    }
}
