//! Turning a decoded batch into telemetry rows with engineering values.
//!
//! Each sample's (device alias, metric alias) is looked up in the alias map of the batch's
//! boot; the stored value is `raw * scale + offset` (booleans count as 0/1), and a sample
//! of quality *bad* — the device did not answer — is stored with a NULL value whatever the
//! wire carried. Samples whose alias is not in the catalog cannot be placed in any series:
//! they are counted and reported, the rest of the batch is stored.

use store::{AliasEntry, TelemetryRow};
use wire::{Batch, Quality};

/// The rows of one batch and what could not be mapped.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct BatchRows {
    /// Rows to copy, in batch order.
    pub rows: Vec<TelemetryRow>,
    /// Samples whose (device, metric) alias is not in the catalog.
    pub unmapped: usize,
    /// First unmapped (device alias, metric alias), for the rejection detail.
    pub first_unmapped: Option<(u16, u16)>,
    /// Newest sample timestamp (UTC ms), if the batch has samples.
    pub newest_ts_ms: Option<i64>,
}

/// Maps every sample of `batch` through `alias` (the boot's alias map lookup).
pub(crate) fn batch_rows(
    batch: &Batch,
    alias: impl Fn(u16, u16) -> Option<AliasEntry>,
) -> BatchRows {
    let mut out = BatchRows {
        rows: Vec::with_capacity(batch.sample_count()),
        ..BatchRows::default()
    };
    for frame in &batch.frames {
        if !frame.samples.is_empty() {
            out.newest_ts_ms = Some(out.newest_ts_ms.map_or(frame.ts_ms, |t| t.max(frame.ts_ms)));
        }
        for sample in &frame.samples {
            let Some(entry) = alias(frame.device, sample.metric) else {
                out.unmapped += 1;
                out.first_unmapped
                    .get_or_insert((frame.device, sample.metric));
                continue;
            };
            let value = match sample.quality {
                Quality::Bad => None,
                _ => sample.value.map(|v| entry.engineering(v.as_f64())),
            };
            out.rows.push(TelemetryRow {
                ts_ms: frame.ts_ms,
                series_id: entry.series_id,
                value,
                quality: sample.quality,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use store::SeriesId;
    use wire::{BatchHeader, Frame, Sample, Value};

    fn sample(metric: u16, value: Option<Value>, quality: Quality) -> Sample {
        Sample {
            metric,
            value,
            quality,
        }
    }

    #[test]
    fn values_are_scaled_bools_count_and_bad_is_null() {
        let aliases: HashMap<(u16, u16), AliasEntry> = [
            ((0, 0), (1, 0.1, 0.0)),
            ((0, 1), (2, 1.0, -40.0)),
            ((0, 2), (3, 1.0, 0.0)),
            ((1, 0), (4, 2.0, 0.0)),
        ]
        .into_iter()
        .map(|(k, (series, scale, offset))| {
            (
                k,
                AliasEntry {
                    series_id: SeriesId(series),
                    scale,
                    offset,
                },
            )
        })
        .collect();
        let batch = Batch {
            header: BatchHeader {
                epoch: 0,
                seq: 1,
                boot_id: 1,
                historical: false,
                status: None,
            },
            frames: vec![
                Frame {
                    device: 0,
                    ts_ms: 1_000,
                    samples: vec![
                        sample(0, Some(Value::Int(1234)), Quality::Good),
                        sample(1, Some(Value::Float(100.5)), Quality::Uncertain),
                        sample(2, Some(Value::Bool(true)), Quality::Stale),
                        sample(9, Some(Value::Int(1)), Quality::Good),
                    ],
                },
                Frame {
                    device: 1,
                    ts_ms: 2_000,
                    samples: vec![sample(0, Some(Value::Int(7)), Quality::Bad)],
                },
                Frame {
                    device: 5,
                    ts_ms: 3_000,
                    samples: vec![sample(0, None, Quality::Bad)],
                },
            ],
        };
        let out = batch_rows(&batch, |d, m| aliases.get(&(d, m)).copied());
        let values: Vec<(i64, i64, Option<f64>, Quality)> = out
            .rows
            .iter()
            .map(|r| (r.ts_ms, r.series_id.0, r.value, r.quality))
            .collect();
        assert_eq!(
            values,
            vec![
                (1_000, 1, Some(123.4), Quality::Good),
                (1_000, 2, Some(60.5), Quality::Uncertain),
                (1_000, 3, Some(1.0), Quality::Stale),
                (2_000, 4, None, Quality::Bad),
            ]
        );
        assert_eq!(out.unmapped, 2);
        assert_eq!(out.first_unmapped, Some((0, 9)));
        assert_eq!(out.newest_ts_ms, Some(3_000));
    }
}
