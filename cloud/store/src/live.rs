//! Latest values, and the notification that says they changed.
//!
//! The ingester and the API may run in different processes (several ingesters behind a
//! shared subscription, API instances behind a load balancer), so "new telemetry was
//! stored" travels through PostgreSQL: after a commit the ingester's status writer (off
//! the ingest path) sends `NOTIFY wellpulse_telemetry` naming the (tenant, gateway) pairs
//! whose batches it stored, [`Db::notify_telemetry`]. Every API process `LISTEN`s once,
//! coalesces, reads the latest values of the named gateways' series once per tenant
//! ([`latest`] with [`LatestFilter::gateways`]) and fans them out to its streams.
//!
//! A notification is small: `"tenant:gateway,tenant:gateway,…"` (decimal ids), split so
//! no payload exceeds [`MAX_PAYLOAD`] bytes (PostgreSQL refuses 8000 and more). One
//! notification names a gateway however many batches and samples it stored, so its cost
//! does not grow with the data. It is a hint, not a record: a notification lost (an API
//! process reconnecting its listener) costs one stale value until the gateway's next
//! batch, and a stream's first event is always read from the table.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, Row};
use wire::Quality;

use crate::{Db, DbError, DeviceId, GatewayId, SeriesId, TenantId, WellId};

/// The channel of "telemetry stored" notifications.
pub const TELEMETRY_CHANNEL: &str = "wellpulse_telemetry";

/// Largest payload one notification carries (PostgreSQL's limit is 8000 bytes).
pub const MAX_PAYLOAD: usize = 7900;

/// Encodes changed (tenant, gateway) pairs into notification payloads, each at most
/// [`MAX_PAYLOAD`] bytes, every pair in exactly one of them.
pub fn encode_changes(changed: &BTreeSet<(TenantId, GatewayId)>) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for (tenant, gateway) in changed {
        let pair = format!("{tenant}:{gateway}");
        if !current.is_empty() && current.len() + 1 + pair.len() > MAX_PAYLOAD {
            out.push(std::mem::take(&mut current));
        }
        if !current.is_empty() {
            current.push(',');
        }
        current.push_str(&pair);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// Decodes a payload of [`encode_changes`]; `None` if it is not one.
pub fn decode_changes(payload: &str) -> Option<Vec<(TenantId, GatewayId)>> {
    payload
        .split(',')
        .map(|pair| {
            let (tenant, gateway) = pair.split_once(':')?;
            Some((
                TenantId(tenant.parse().ok()?),
                GatewayId(gateway.parse().ok()?),
            ))
        })
        .collect()
}

impl Db {
    /// Tells every listening API process that these gateways' batches were stored (one
    /// round trip, whatever the number of pairs).
    pub async fn notify_telemetry(
        &self,
        changed: &BTreeSet<(TenantId, GatewayId)>,
    ) -> Result<(), DbError> {
        let payloads = encode_changes(changed);
        if payloads.is_empty() {
            return Ok(());
        }
        sqlx::query("SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p")
            .bind(TELEMETRY_CHANNEL)
            .bind(&payloads)
            .execute(self.pool())
            .await?;
        Ok(())
    }
}

/// Which series [`latest`] reads.
#[derive(Debug, Clone, Copy, Default)]
pub struct LatestFilter<'a> {
    /// Only the series of these gateways' devices.
    pub gateways: Option<&'a [GatewayId]>,
    /// Only the series of this well's devices.
    pub well: Option<WellId>,
    /// Only these metrics (empty: all).
    pub metrics: &'a [String],
}

/// The newest stored sample of one series.
#[derive(Debug, Clone, PartialEq)]
pub struct LatestValue {
    /// Series.
    pub series_id: SeriesId,
    /// Its device.
    pub device_id: DeviceId,
    /// The device's gateway.
    pub gateway_id: GatewayId,
    /// The device's well, if linked.
    pub well_id: Option<WellId>,
    /// Metric name.
    pub metric: String,
    /// Unit.
    pub unit: String,
    /// Sample time.
    pub time: DateTime<Utc>,
    /// Value (`None` when the device gave none).
    pub value: Option<f64>,
    /// Quality.
    pub quality: Quality,
}

/// The newest sample of every series of `tenant` the filter selects (series without any
/// sample are left out), in series order. One index probe per series
/// (`telemetry_series_time_idx`, newest first).
pub async fn latest(
    conn: &mut PgConnection,
    tenant: TenantId,
    filter: LatestFilter<'_>,
) -> Result<Vec<LatestValue>, DbError> {
    let gateways: Option<Vec<i64>> = filter.gateways.map(|g| g.iter().map(|g| g.0).collect());
    let rows = sqlx::query(
        "SELECT s.id, s.device_id, d.gateway_id, d.well_id, s.metric, s.unit,
                t.time, t.value, t.quality
         FROM series s
         JOIN devices d ON d.id = s.device_id
         CROSS JOIN LATERAL (
             SELECT time, value, quality FROM telemetry
             WHERE series_id = s.id ORDER BY time DESC LIMIT 1
         ) t
         WHERE s.tenant_id = $1
           AND ($2::bigint[] IS NULL OR d.gateway_id = ANY($2))
           AND ($3::bigint IS NULL OR d.well_id = $3)
           AND (cardinality($4::text[]) = 0 OR s.metric = ANY($4))
         ORDER BY s.id",
    )
    .bind(tenant)
    .bind(gateways)
    .bind(filter.well)
    .bind(filter.metrics)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| {
            let quality: i16 = r.try_get("quality")?;
            Ok(LatestValue {
                series_id: r.try_get("id")?,
                device_id: r.try_get("device_id")?,
                gateway_id: r.try_get("gateway_id")?,
                well_id: r.try_get("well_id")?,
                metric: r.try_get("metric")?,
                unit: r.try_get("unit")?,
                time: r.try_get("time")?,
                value: r.try_get("value")?,
                quality: u64::try_from(quality)
                    .ok()
                    .and_then(Quality::from_code)
                    .ok_or_else(|| DbError::corrupt("stored quality", quality.to_string()))?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_round_trip_and_split_below_the_limit() {
        let changed: BTreeSet<_> = (0..3000)
            .map(|i| (TenantId(i % 7 + 1), GatewayId(1_000_000 + i)))
            .collect();
        let payloads = encode_changes(&changed);
        assert!(payloads.len() > 1, "3000 pairs need several notifications");
        assert!(payloads.iter().all(|p| p.len() <= MAX_PAYLOAD));
        let back: BTreeSet<_> = payloads
            .iter()
            .flat_map(|p| decode_changes(p).unwrap())
            .collect();
        assert_eq!(back, changed);
        assert!(encode_changes(&BTreeSet::new()).is_empty());
    }

    #[test]
    fn foreign_payloads_are_refused() {
        for bad in ["", "1", "1:x", "1:2,", "a:b", "1:2:3"] {
            assert_eq!(decode_changes(bad), None, "{bad:?}");
        }
        assert_eq!(
            decode_changes("3:4"),
            Some(vec![(TenantId(3), GatewayId(4))])
        );
    }
}
