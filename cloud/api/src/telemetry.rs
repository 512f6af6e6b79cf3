//! Telemetry of a well by metric: raw samples or time buckets over a range.
//!
//! `GET /api/v1/tenants/{tenant}/wells/{well}/telemetry?metric=&from=&to=&bucket=&limit=`
//!
//! - `metric` must be a name of the canonical vocabulary
//!   (`firmware_profiles::vocabulary`; a near miss gets a "did you mean" hint) or a custom
//!   metric, `custom.<name>`, as the well's devices' profiles declare it (see the well's
//!   `/metrics`). Any other namespace is refused. A custom metric's unit is its series'.
//! - `[from, to)` in RFC 3339, `from < to`, and no longer than the bucket width allows
//!   ([`Bucket::max_span`]): raw 1 day, 1m 7 days, 5m 31 days, 1h 366 days, 1d 3660
//!   days — each bounds a request to about ten thousand buckets per series (raw: one day
//!   of 1 s data), so no single request can make the database sort or ship millions of
//!   rows.
//! - `bucket=raw` returns samples with their quality; `1m|5m|1h|1d` return buckets with
//!   avg/min/max/count of the good samples, read from the rollups by the storage layer
//!   ([`store::query`]), aligned to UTC midnight, the range widened to whole buckets.
//! - `limit` (≤ `max_page_size`, default `max_page_size`) caps the points of the response
//!   over all series. When it cuts, `next_from` is the time of the first point left out;
//!   requesting again with `from=next_from` continues without gaps or repeats (points
//!   sharing that timestamp are all left for the next page).
//!
//! A well can report a metric through several devices; each series comes separately with
//! its device and gateway. A well that does not report the metric returns no series.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use firmware_profiles::vocabulary::{self, MetricDef, MetricName, MetricNameError};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{parse_limit, parse_time, required, rfc3339, shown, well_not_found};
use super::{ApiError, ApiQuery, ApiState, ErrorResponse, TenantScope, WellParam};
use store::wells::{self as queries, SeriesRow};
use store::{SeriesId, query};

pub(crate) fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new().routes(routes!(telemetry))
}

const DAY: u64 = 86_400;

/// Bucket width of a telemetry request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub enum Bucket {
    /// Raw samples.
    #[serde(rename = "raw")]
    Raw,
    /// One minute.
    #[serde(rename = "1m")]
    Minute,
    /// Five minutes.
    #[serde(rename = "5m")]
    FiveMinutes,
    /// One hour.
    #[serde(rename = "1h")]
    Hour,
    /// One day (UTC).
    #[serde(rename = "1d")]
    Day,
}

impl Bucket {
    const ALL: [Bucket; 5] = [
        Bucket::Raw,
        Bucket::Minute,
        Bucket::FiveMinutes,
        Bucket::Hour,
        Bucket::Day,
    ];

    fn as_str(self) -> &'static str {
        match self {
            Bucket::Raw => "raw",
            Bucket::Minute => "1m",
            Bucket::FiveMinutes => "5m",
            Bucket::Hour => "1h",
            Bucket::Day => "1d",
        }
    }

    /// Width of a bucket; `None` for raw samples.
    fn width(self) -> Option<Duration> {
        let secs = match self {
            Bucket::Raw => return None,
            Bucket::Minute => 60,
            Bucket::FiveMinutes => 300,
            Bucket::Hour => 3600,
            Bucket::Day => DAY,
        };
        Some(Duration::from_secs(secs))
    }

    /// Longest `to - from` a request may span with this bucket.
    pub fn max_span(self) -> Duration {
        let days = match self {
            Bucket::Raw => 1,
            Bucket::Minute => 7,
            Bucket::FiveMinutes => 31,
            Bucket::Hour => 366,
            Bucket::Day => 3660,
        };
        Duration::from_secs(days * DAY)
    }

    fn parse(raw: &str) -> Result<Bucket, ApiError> {
        Bucket::ALL
            .into_iter()
            .find(|b| b.as_str() == raw)
            .ok_or_else(|| {
                ApiError::query(
                    "bucket",
                    format!("must be one of raw, 1m, 5m, 1h, 1d, got {}", shown(raw)),
                )
            })
    }
}

/// Query parameters of the telemetry endpoint.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TelemetryQuery {
    /// Canonical metric name, or `custom.<name>` for a custom metric (see the well's
    /// `/metrics`).
    #[param(value_type = String, example = "tubing_pressure_psi")]
    pub metric: Option<String>,
    /// Start of the range (inclusive), RFC 3339. Send `+` as `%2B`.
    #[param(value_type = DateTime<Utc>, example = "2026-11-03T00:00:00Z")]
    pub from: Option<String>,
    /// End of the range (exclusive), RFC 3339, after `from`.
    #[param(value_type = DateTime<Utc>, example = "2026-11-04T00:00:00Z")]
    pub to: Option<String>,
    /// `raw` (default) for samples, or a bucket width. Longest range: raw 1 day, 1m 7
    /// days, 5m 31 days, 1h 366 days, 1d 3660 days.
    #[param(value_type = Option<Bucket>)]
    pub bucket: Option<String>,
    /// Most points in the response over all series (1 to the server's `max_page_size`,
    /// which is also the default).
    #[param(value_type = Option<u32>, minimum = 1)]
    pub limit: Option<String>,
}

/// The metric of a request.
#[derive(Debug, Clone, PartialEq)]
enum RequestedMetric {
    /// A canonical vocabulary metric.
    Canonical(&'static MetricDef),
    /// `custom.<name>`, the full name.
    Custom(String),
}

impl RequestedMetric {
    /// The series metric name.
    fn name(&self) -> &str {
        match self {
            RequestedMetric::Canonical(def) => def.name,
            RequestedMetric::Custom(name) => name,
        }
    }
}

/// A validated telemetry request.
#[derive(Debug, Clone, PartialEq)]
struct TelemetryRequest {
    metric: RequestedMetric,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    bucket: Bucket,
    limit: u32,
}

impl TelemetryQuery {
    /// Checks every parameter; the first problem found is the error.
    fn validate(self, max_page_size: u32) -> Result<TelemetryRequest, ApiError> {
        let metric = parse_metric(&required("metric", self.metric)?)?;
        let from = parse_time("from", &required("from", self.from)?)?;
        let to = parse_time("to", &required("to", self.to)?)?;
        let bucket = self
            .bucket
            .as_deref()
            .map_or(Ok(Bucket::Raw), Bucket::parse)?;
        let limit = parse_limit(self.limit.as_deref(), max_page_size, max_page_size)?;
        if from >= to {
            return Err(ApiError::query(
                "from",
                format!(
                    "must be before `to` (from {}, to {})",
                    rfc3339(from),
                    rfc3339(to)
                ),
            ));
        }
        let span = (to - from).to_std().unwrap_or(Duration::MAX);
        if span > bucket.max_span() {
            return Err(ApiError::query(
                "to",
                format!(
                    "the range `from`..`to` spans {}, more than the {} allowed with bucket={} (use a coarser bucket or a shorter range)",
                    days(span),
                    days(bucket.max_span()),
                    bucket.as_str()
                ),
            ));
        }
        Ok(TelemetryRequest {
            metric,
            from,
            to,
            bucket,
            limit,
        })
    }
}

/// A duration in whole days plus the rest (`7 days 1s`): months and years as humantime
/// prints them would be approximate.
fn days(span: Duration) -> String {
    let whole = span.as_secs() / DAY;
    let rest = span - Duration::from_secs(whole * DAY);
    let unit = if whole == 1 { "day" } else { "days" };
    match (whole, rest.is_zero()) {
        (0, _) => humantime::format_duration(span).to_string(),
        (_, true) => format!("{whole} {unit}"),
        (_, false) => format!("{whole} {unit} {}", humantime::format_duration(rest)),
    }
}

fn parse_metric(raw: &str) -> Result<RequestedMetric, ApiError> {
    match vocabulary::parse_metric_name(raw) {
        Ok(MetricName::Canonical(def)) => Ok(RequestedMetric::Canonical(def)),
        Ok(MetricName::Custom(_)) => Ok(RequestedMetric::Custom(raw.to_owned())),
        Err(MetricNameError::UnknownCanonical { suggestion, .. }) => {
            let hint = match suggestion {
                Some(near) => format!("; did you mean `{near}`?"),
                None => "; see the well's /metrics for the metrics it reports".to_owned(),
            };
            Err(ApiError::query(
                "metric",
                format!("{} is not a canonical metric name{hint}", shown(raw)),
            ))
        }
        Err(MetricNameError::UnknownNamespace { namespace, .. }) => Err(ApiError::query(
            "metric",
            format!(
                "{} has the unknown namespace {}: a metric is a canonical name or custom.<name>",
                shown(raw),
                shown(&namespace)
            ),
        )),
        Err(MetricNameError::BadCustomName { reason, .. }) => Err(ApiError::query(
            "metric",
            format!("{} is not a valid custom metric: {reason}", shown(raw)),
        )),
    }
}

/// Quality of a raw sample.
#[derive(Debug, Clone, Copy, Serialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Quality {
    /// Read from the device and within the profile's valid range.
    Good,
    /// The device did not answer (no value).
    Bad,
    /// The last known value, repeated.
    Stale,
    /// Outside the profile's valid range.
    Uncertain,
}

impl From<wire::Quality> for Quality {
    fn from(q: wire::Quality) -> Quality {
        match q {
            wire::Quality::Good => Quality::Good,
            wire::Quality::Bad => Quality::Bad,
            wire::Quality::Stale => Quality::Stale,
            wire::Quality::Uncertain => Quality::Uncertain,
        }
    }
}

/// A raw sample.
#[derive(Debug, Serialize, ToSchema)]
pub struct Sample {
    /// Sample time (gateway clock).
    pub time: DateTime<Utc>,
    /// Engineering value; absent when the device gave none.
    pub value: Option<f64>,
    /// Quality.
    pub quality: Quality,
}

/// Aggregate of the good samples of one bucket.
#[derive(Debug, Serialize, ToSchema)]
pub struct BucketPoint {
    /// Bucket start.
    pub time: DateTime<Utc>,
    /// Mean.
    pub avg: f64,
    /// Minimum.
    pub min: f64,
    /// Maximum.
    pub max: f64,
    /// Number of good samples.
    pub count: i64,
}

/// The points of one series.
#[derive(Debug, Serialize, ToSchema)]
pub struct TelemetrySeries {
    /// Series id.
    pub series_id: i64,
    /// Device reporting it.
    #[schema(example = "rpc-1")]
    pub device: String,
    /// Gateway of the device.
    #[schema(example = "gw-001")]
    pub gateway: String,
    /// Engineering unit this series reports.
    #[schema(example = "psi")]
    pub unit: String,
    /// Samples, oldest first (`bucket=raw` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub samples: Option<Vec<Sample>>,
    /// Buckets, oldest first (bucketed requests only; buckets without good samples are
    /// absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub buckets: Option<Vec<BucketPoint>>,
}

/// Telemetry of one metric of one well.
#[derive(Debug, Serialize, ToSchema)]
pub struct Telemetry {
    /// Well id.
    pub well_id: i64,
    /// Canonical metric, or `custom.<name>`.
    #[schema(example = "tubing_pressure_psi")]
    pub metric: String,
    /// Engineering unit: the vocabulary's for a canonical metric; for a custom metric, the
    /// first series' (each series carries its own).
    #[schema(example = "psi")]
    pub unit: String,
    /// Bucket width (`raw` for samples).
    pub bucket: Bucket,
    /// Requested range start.
    pub from: DateTime<Utc>,
    /// Requested range end (exclusive).
    pub to: DateTime<Utc>,
    /// One entry per series of the metric at the well.
    pub series: Vec<TelemetrySeries>,
    /// Present when `limit` cut the response: request again with this as `from`.
    pub next_from: Option<DateTime<Utc>>,
}

/// Points of all series, time-ordered, with their series.
enum Points {
    Raw(Vec<query::RawSample>),
    Buckets(Vec<query::Bucket>),
}

/// Cuts time-ordered points to at most `limit`; when more exist, returns the time of the
/// first point left out and leaves out every point at that time (so the next page, which
/// starts there, repeats nothing).
fn cut<T>(
    mut points: Vec<T>,
    limit: u32,
    time: impl Fn(&T) -> DateTime<Utc>,
) -> Result<(Vec<T>, Option<DateTime<Utc>>), ApiError> {
    let limit = limit as usize;
    if points.len() <= limit {
        return Ok((points, None));
    }
    let next = time(&points[limit]);
    let keep = points[..limit].partition_point(|p| time(p) < next);
    if keep == 0 {
        let sharing = points.iter().take_while(|p| time(p) == next).count();
        return Err(ApiError::query(
            "limit",
            format!(
                "must be at least {sharing} here: {sharing} points share the timestamp {}",
                rfc3339(next)
            ),
        ));
    }
    points.truncate(keep);
    Ok((points, Some(next)))
}

async fn read_points(
    conn: &mut sqlx::PgConnection,
    ids: &[SeriesId],
    req: &TelemetryRequest,
) -> Result<Points, ApiError> {
    Ok(match req.bucket.width() {
        None => Points::Raw(query::raw(conn, ids, req.from, req.to, req.limit + 1).await?),
        Some(width) => {
            let mut buckets = query::bucketed(conn, ids, req.from, req.to, width).await?;
            buckets.sort_by_key(|b| (b.bucket, b.series_id));
            Points::Buckets(buckets)
        }
    })
}

fn assemble(
    series: Vec<SeriesRow>,
    points: Points,
    limit: u32,
) -> Result<(Vec<TelemetrySeries>, Option<DateTime<Utc>>), ApiError> {
    let mut out: Vec<TelemetrySeries> = series
        .into_iter()
        .map(|s| TelemetrySeries {
            series_id: s.id.0,
            device: s.device,
            gateway: s.gateway,
            unit: s.unit,
            samples: None,
            buckets: None,
        })
        .collect();
    let index = |id: SeriesId, out: &[TelemetrySeries]| {
        out.iter()
            .position(|s| s.series_id == id.0)
            .ok_or_else(|| ApiError::Internal(format!("series {id} was not requested").into()))
    };
    let next = match points {
        Points::Raw(samples) => {
            let (samples, next) = cut(samples, limit, |s| s.time)?;
            out.iter_mut().for_each(|s| s.samples = Some(Vec::new()));
            for s in samples {
                let i = index(s.series_id, &out)?;
                out[i].samples.get_or_insert_default().push(Sample {
                    time: s.time,
                    value: s.value,
                    quality: s.quality.into(),
                });
            }
            next
        }
        Points::Buckets(buckets) => {
            let (buckets, next) = cut(buckets, limit, |b| b.bucket)?;
            out.iter_mut().for_each(|s| s.buckets = Some(Vec::new()));
            for b in buckets {
                let i = index(b.series_id, &out)?;
                out[i].buckets.get_or_insert_default().push(BucketPoint {
                    time: b.bucket,
                    avg: b.avg,
                    min: b.min,
                    max: b.max,
                    count: b.count,
                });
            }
            next
        }
    };
    Ok((out, next))
}

/// Telemetry of a well for one metric (canonical or `custom.<name>`): raw samples or buckets.
#[utoipa::path(
    get,
    path = "/api/v1/tenants/{tenant}/wells/{well}/telemetry",
    security(("bearer" = ["viewer"])),
    tag = "telemetry",
    operation_id = "well_telemetry",
    params(TenantScope, WellParam, TelemetryQuery),
    responses(
        (status = 200, description = "Samples or buckets per series", body = Telemetry),
        (status = 400, description = "Invalid parameter (the message names it)", body = ErrorResponse),
        (status = 404, description = "Unknown tenant or well", body = ErrorResponse),
        (status = 503, description = "Database unavailable or request timed out", body = ErrorResponse),
    )
)]
async fn telemetry(
    State(state): State<ApiState>,
    scope: TenantScope,
    WellParam(well): WellParam,
    ApiQuery(query): ApiQuery<TelemetryQuery>,
) -> Result<Json<Telemetry>, ApiError> {
    let req = query.validate(state.options().max_page_size)?;
    let mut tx = scope.begin(state.db()).await?;
    let series = queries::well_series(&mut tx, scope.id, well, Some(req.metric.name()))
        .await?
        .ok_or_else(|| well_not_found(&scope, well))?;
    let ids: Vec<SeriesId> = series.iter().map(|s| s.id).collect();
    let points = if ids.is_empty() {
        match req.bucket {
            Bucket::Raw => Points::Raw(Vec::new()),
            _ => Points::Buckets(Vec::new()),
        }
    } else {
        read_points(&mut tx, &ids, &req).await?
    };
    tx.commit().await?;
    let unit = match &req.metric {
        RequestedMetric::Canonical(def) => def.unit.to_owned(),
        RequestedMetric::Custom(_) => series.first().map(|s| s.unit.clone()).unwrap_or_default(),
    };
    let (series, next_from) = assemble(series, points, req.limit)?;
    Ok(Json(Telemetry {
        well_id: well.0,
        metric: req.metric.name().to_owned(),
        unit,
        bucket: req.bucket,
        from: req.from,
        to: req.to,
        series,
        next_from,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &[(&str, &str)]) -> TelemetryQuery {
        let mut q = TelemetryQuery::default();
        for (k, v) in pairs {
            let v = Some((*v).to_owned());
            match *k {
                "metric" => q.metric = v,
                "from" => q.from = v,
                "to" => q.to = v,
                "bucket" => q.bucket = v,
                "limit" => q.limit = v,
                _ => unreachable!(),
            }
        }
        q
    }

    const OK: [(&str, &str); 3] = [
        ("metric", "tubing_pressure_psi"),
        ("from", "2026-11-03T00:00:00Z"),
        ("to", "2026-11-04T00:00:00Z"),
    ];

    #[test]
    fn a_valid_request_gets_defaults() {
        let req = query(&OK).validate(500).unwrap();
        assert_eq!(req.metric.name(), "tubing_pressure_psi");
        assert_eq!(req.bucket, Bucket::Raw);
        assert_eq!(req.limit, 500);
    }

    #[test]
    fn span_limits_follow_the_bucket_width() {
        for bucket in Bucket::ALL {
            let from: DateTime<Utc> = "2026-01-01T00:00:00Z".parse().unwrap();
            let max = chrono::Duration::from_std(bucket.max_span()).unwrap();
            let at = |to: DateTime<Utc>| {
                query(&[
                    ("metric", "gas_rate_mcfd"),
                    ("from", &from.to_rfc3339()),
                    ("to", &to.to_rfc3339()),
                    ("bucket", bucket.as_str()),
                ])
                .validate(10)
            };
            assert!(at(from + max).is_ok(), "{bucket:?}");
            let e = at(from + max + chrono::Duration::seconds(1))
                .unwrap_err()
                .to_string();
            assert!(
                e.starts_with("invalid query parameter `to`: the range `from`..`to` spans")
                    && e.contains(&format!("bucket={}", bucket.as_str())),
                "{e}"
            );
        }
    }

    #[test]
    fn unknown_metrics_get_a_suggestion() {
        let mut pairs = OK;
        pairs[0].1 = "tubing_presure_psi";
        let e = query(&pairs).validate(10).unwrap_err().to_string();
        assert_eq!(
            e,
            "invalid query parameter `metric`: `tubing_presure_psi` is not a canonical metric name; did you mean `tubing_pressure_psi`?"
        );
    }

    #[test]
    fn custom_metrics_are_read_by_their_names_and_other_namespaces_refused() {
        let mut pairs = OK;
        pairs[0].1 = "custom.analog_07";
        let req = query(&pairs).validate(10).unwrap();
        assert_eq!(
            req.metric,
            RequestedMetric::Custom("custom.analog_07".into())
        );
        for (metric, expected) in [
            (
                "vendor.analog_07",
                "invalid query parameter `metric`: `vendor.analog_07` has the unknown namespace `vendor`: a metric is a canonical name or custom.<name>",
            ),
            (
                "custom.Analog",
                "invalid query parameter `metric`: `custom.Analog` is not a valid custom metric: the name after \"custom.\" must be snake_case ([a-z0-9_], starting with a letter)",
            ),
        ] {
            pairs[0].1 = metric;
            assert_eq!(
                query(&pairs).validate(10).unwrap_err().to_string(),
                expected
            );
        }
        pairs[0].1 = "custom.h2s_ppm";
        let e = query(&pairs).validate(10).unwrap_err().to_string();
        assert!(e.contains("never shadows a canonical one"), "{e}");
    }

    #[test]
    fn cut_never_splits_a_timestamp() {
        let t = |s: i64| DateTime::<Utc>::from_timestamp(s, 0).unwrap();
        let points = vec![t(1), t(1), t(2), t(2), t(3)];
        let (page, next) = cut(points.clone(), 3, |p| *p).unwrap();
        assert_eq!((page, next), (vec![t(1), t(1)], Some(t(2))));
        let (page, next) = cut(points.clone(), 5, |p| *p).unwrap();
        assert_eq!((page.len(), next), (5, None));
        let (page, next) = cut(points.clone(), 4, |p| *p).unwrap();
        assert_eq!((page.len(), next), (4, Some(t(3))));
        let e = cut(points, 1, |p| *p).unwrap_err().to_string();
        assert!(
            e.starts_with("invalid query parameter `limit`: must be at least 2"),
            "{e}"
        );
    }
}
