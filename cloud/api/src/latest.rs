//! Latest values of a tenant's series: `GET …/latest` (once) and `GET …/latest/stream`
//! (server-sent events, pushed as telemetry is stored; see [`crate::latest_feed`] for how
//! ingest in any process reaches the stream).
//!
//! Both take `well` (only that well's series; 404 if it is not the tenant's) and `metric`
//! (comma-separated metric names, canonical or `custom.<name>`; at most
//! [`MAX_METRICS`]). The stream starts with a `snapshot` event (every selected series'
//! newest sample), then sends `latest` events with only the series that changed, at most
//! about one per second; `snapshot` again when the stream fell behind. For every role.

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use chrono::{DateTime, Utc};
use firmware_profiles::vocabulary;
use futures_util::Stream;
use serde::{Deserialize, Serialize};
use store::WellId;
use store::live::{self as sql, LatestFilter, LatestValue};
use tokio::sync::broadcast::error::RecvError;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::extract::{parse_query_id, require_well, shown};
use crate::{ApiError, ApiQuery, ApiState, ErrorResponse, TenantScope};

/// Most metric names one request may name.
pub const MAX_METRICS: usize = 50;

pub(crate) fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(latest))
        .routes(routes!(latest_stream))
}

/// Which series.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LatestQuery {
    /// Only this well's series.
    #[param(value_type = Option<i64>, minimum = 1)]
    pub well: Option<String>,
    /// Only these metrics, comma-separated (canonical names or `custom.<name>`).
    #[param(example = "tubing_pressure_psi,casing_pressure_psi")]
    pub metric: Option<String>,
}

/// A validated [`LatestQuery`].
#[derive(Debug, Clone, PartialEq)]
struct Selection {
    well: Option<WellId>,
    metrics: Vec<String>,
}

impl LatestQuery {
    fn validate(self) -> Result<Selection, ApiError> {
        let well = parse_query_id("well", self.well.as_deref())?.map(WellId);
        let mut metrics = Vec::new();
        if let Some(raw) = self.metric.as_deref() {
            for name in raw.split(',') {
                if let Err(e) = vocabulary::parse_metric_name(name) {
                    return Err(ApiError::query(
                        "metric",
                        format!("{} is not a metric name: {e}", shown(name)),
                    ));
                }
                if !metrics.iter().any(|m| m == name) {
                    metrics.push(name.to_owned());
                }
            }
            if metrics.len() > MAX_METRICS {
                return Err(ApiError::query(
                    "metric",
                    format!("names {} metrics, at most {MAX_METRICS}", metrics.len()),
                ));
            }
        }
        Ok(Selection { well, metrics })
    }
}

impl Selection {
    fn filter(&self) -> LatestFilter<'_> {
        LatestFilter {
            gateways: None,
            well: self.well,
            metrics: &self.metrics,
        }
    }

    fn wants(&self, v: &LatestValue) -> bool {
        self.well.is_none_or(|w| v.well_id == Some(w))
            && (self.metrics.is_empty() || self.metrics.contains(&v.metric))
    }
}

/// Quality of a sample.
#[derive(Debug, Clone, Copy, Serialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LatestQuality {
    /// Read from the device and within the profile's valid range.
    Good,
    /// The device did not answer (no value).
    Bad,
    /// The last known value, repeated.
    Stale,
    /// Outside the profile's valid range.
    Uncertain,
}

/// The newest sample of one series.
#[derive(Debug, Serialize, ToSchema)]
pub struct LatestValueDto {
    /// Series id.
    pub series_id: i64,
    /// Device reporting it.
    pub device_id: i64,
    /// The device's well, if linked.
    pub well_id: Option<i64>,
    /// Metric name.
    #[schema(example = "tubing_pressure_psi")]
    pub metric: String,
    /// Unit.
    #[schema(example = "psi")]
    pub unit: String,
    /// Sample time (gateway clock).
    pub time: DateTime<Utc>,
    /// Value; absent when the device gave none.
    pub value: Option<f64>,
    /// Quality.
    pub quality: LatestQuality,
}

impl From<&LatestValue> for LatestValueDto {
    fn from(v: &LatestValue) -> LatestValueDto {
        LatestValueDto {
            series_id: v.series_id.0,
            device_id: v.device_id.0,
            well_id: v.well_id.map(|w| w.0),
            metric: v.metric.clone(),
            unit: v.unit.clone(),
            time: v.time,
            value: v.value,
            quality: match v.quality {
                wire::Quality::Good => LatestQuality::Good,
                wire::Quality::Bad => LatestQuality::Bad,
                wire::Quality::Stale => LatestQuality::Stale,
                wire::Quality::Uncertain => LatestQuality::Uncertain,
            },
        }
    }
}

/// Latest values (the body of `GET …/latest` and the data of every stream event).
#[derive(Debug, Serialize, ToSchema)]
pub struct LatestValues {
    /// One per series, in series order (series that never reported are absent).
    pub values: Vec<LatestValueDto>,
}

fn values<'a>(all: impl IntoIterator<Item = &'a LatestValue>) -> LatestValues {
    LatestValues {
        values: all.into_iter().map(LatestValueDto::from).collect(),
    }
}

/// The selection's latest values, read now (404 for a well not in the tenant).
async fn read(
    state: &ApiState,
    scope: &TenantScope,
    selection: &Selection,
) -> Result<Vec<LatestValue>, ApiError> {
    let mut tx = scope.begin(state.db()).await?;
    if let Some(well) = selection.well {
        require_well(&mut tx, scope, well).await?;
    }
    let values = sql::latest(&mut tx, scope.id, selection.filter()).await?;
    tx.commit().await?;
    Ok(values)
}

/// The newest sample of each of the tenant's series (optionally of one well, some metrics).
#[utoipa::path(
    get,
    path = "/api/v1/tenants/{tenant}/latest",
    security(("bearer" = ["viewer"])),
    tag = "telemetry",
    operation_id = "latest_values",
    params(TenantScope, LatestQuery),
    responses(
        (status = 200, description = "The newest sample per series", body = LatestValues),
        (status = 400, description = "Invalid parameter (the message names it)", body = ErrorResponse),
        (status = 404, description = "Unknown tenant or well", body = ErrorResponse),
        (status = 503, description = "Database unavailable", body = ErrorResponse),
    )
)]
async fn latest(
    State(state): State<ApiState>,
    scope: TenantScope,
    ApiQuery(query): ApiQuery<LatestQuery>,
) -> Result<Json<LatestValues>, ApiError> {
    let selection = query.validate()?;
    let all = read(&state, &scope, &selection).await?;
    Ok(Json(values(&all)))
}

/// One server-sent event of the latest-values stream.
#[derive(Debug, Serialize, ToSchema)]
pub struct LatestStreamEvent {
    /// `snapshot` or `latest`.
    pub event: String,
    /// JSON [`LatestValues`].
    pub data: String,
}

fn event(name: &'static str, all: Vec<&LatestValue>) -> SseEvent {
    let data = serde_json::to_string(&values(all)).unwrap_or_else(|_| "{\"values\":[]}".into());
    SseEvent::default().event(name).data(data)
}

/// Latest values, live: pushed as the ingester stores telemetry, never polled.
#[utoipa::path(
    get,
    path = "/api/v1/tenants/{tenant}/latest/stream",
    security(("bearer" = ["viewer"])),
    tag = "telemetry",
    operation_id = "latest_stream",
    params(TenantScope, LatestQuery),
    responses(
        (status = 200, description = "Server-sent events: `snapshot` first (data: `LatestValues`, the newest sample of every selected series), then `latest` (data: `LatestValues` with only the series whose newest sample changed), at most about once per second; `snapshot` again when this stream fell behind. A comment line every 15 s keeps it open.", content_type = "text/event-stream", body = LatestStreamEvent),
        (status = 400, description = "Invalid parameter (the message names it)", body = ErrorResponse),
        (status = 404, description = "Unknown tenant or well", body = ErrorResponse),
        (status = 503, description = "Database unavailable", body = ErrorResponse),
    )
)]
async fn latest_stream(
    State(state): State<ApiState>,
    scope: TenantScope,
    ApiQuery(query): ApiQuery<LatestQuery>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let selection = query.validate()?;
    // Subscribed before the snapshot is read: nothing stored in between is missed (a
    // value in both is the same sample; clients keep the newest time per series).
    let feed = state.latest_feed().subscribe(scope.id);
    let snapshot = read(&state, &scope, &selection).await?;
    let first = event("snapshot", snapshot.iter().collect());
    let first = futures_util::stream::once(async move { Ok(first) });
    let changes = futures_util::stream::unfold(
        (feed, state, scope, selection),
        |(mut feed, state, scope, selection)| async move {
            loop {
                let event = match feed.recv().await {
                    Ok(update) => {
                        let wanted: Vec<&LatestValue> =
                            update.iter().filter(|v| selection.wants(v)).collect();
                        if wanted.is_empty() {
                            continue;
                        }
                        event("latest", wanted)
                    }
                    Err(RecvError::Lagged(_)) => match read(&state, &scope, &selection).await {
                        Ok(all) => event("snapshot", all.iter().collect()),
                        // The well was deleted or the database is away: end the stream;
                        // the client reconnects and is told why.
                        Err(_) => return None,
                    },
                    Err(RecvError::Closed) => return None,
                };
                return Some((Ok(event), (feed, state, scope, selection)));
            }
        },
    );
    let stream = futures_util::StreamExt::chain(first, changes);
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(well: Option<&str>, metric: Option<&str>) -> LatestQuery {
        LatestQuery {
            well: well.map(str::to_owned),
            metric: metric.map(str::to_owned),
        }
    }

    #[test]
    fn parameters_are_checked() {
        let ok = query(
            Some("7"),
            Some("tubing_pressure_psi,custom.motor_temp,tubing_pressure_psi"),
        )
        .validate()
        .unwrap();
        assert_eq!(ok.well, Some(WellId(7)));
        assert_eq!(ok.metrics, ["tubing_pressure_psi", "custom.motor_temp"]);
        assert_eq!(query(None, None).validate().unwrap().metrics.len(), 0);
        for (well, metric) in [
            (Some("0"), None),
            (Some("x"), None),
            (None, Some("tubing_pressure")),
            (None, Some("")),
            (None, Some("a:b")),
        ] {
            let e = query(well, metric).validate().unwrap_err();
            assert!(
                matches!(e, ApiError::InvalidParameter { .. }),
                "{well:?} {metric:?}: {e:?}"
            );
        }
        let many = (0..=MAX_METRICS)
            .map(|i| format!("custom.m{i}"))
            .collect::<Vec<_>>()
            .join(",");
        assert!(query(None, Some(&many)).validate().is_err());
    }
}
