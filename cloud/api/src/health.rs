//! Liveness (`/health`), readiness (`/ready`) and Prometheus metrics (`/metrics`).
//!
//! `/health` answers as long as the process serves HTTP: it touches nothing else, so an
//! orchestrator restarts the process only when it is truly stuck. `/ready` says whether
//! the process can do its job, with one entry per check and 503 when any fails:
//!
//! - `database`: a round trip succeeds within [`READY_DB_TIMEOUT`];
//! - `migrations`: every migration this build carries is applied and the telemetry
//!   back-end is set up;
//! - `ingester`: the ingester of this process is connected to the broker with its
//!   subscriptions granted ([`IngesterWatch`]).
//!
//! Failure details in `/ready` are short and generic (which check, what state); causes
//! are logged.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::ApiState;
use ::ingest::IngestStats;
use store::schema as queries;

/// Longest the readiness probe waits for each database check.
pub const READY_DB_TIMEOUT: Duration = Duration::from_secs(2);

pub(crate) fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(health))
        .routes(routes!(ready))
        .routes(routes!(metrics))
}

/// Liveness.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// Always `ok`.
    #[schema(example = "ok")]
    pub status: &'static str,
    /// Version of this build.
    #[schema(example = "0.1.0")]
    pub version: &'static str,
}

/// Liveness: the process serves HTTP.
#[utoipa::path(
    get,
    path = "/health",
    security(()),
    tag = "health",
    operation_id = "health",
    responses((status = 200, description = "The process is alive", body = Health))
)]
async fn health() -> Json<Health> {
    Json(Health {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
    })
}

/// One readiness check.
#[derive(Debug, Serialize, ToSchema)]
pub struct Check {
    /// `database`, `migrations` or `ingester`.
    #[schema(example = "database")]
    pub name: &'static str,
    /// Whether the check passed.
    pub ok: bool,
    /// What was found.
    #[schema(example = "reachable")]
    pub detail: String,
}

/// Readiness report.
#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    /// `ready` or `not_ready`.
    #[schema(example = "ready")]
    pub status: &'static str,
    /// Every check, in order.
    pub checks: Vec<Check>,
}

/// Readiness: database reachable, migrations applied, ingester running.
#[utoipa::path(
    get,
    path = "/ready",
    security(()),
    tag = "health",
    operation_id = "ready",
    responses(
        (status = 200, description = "Every check passed", body = Readiness),
        (status = 503, description = "At least one check failed; see `checks`", body = Readiness),
    )
)]
async fn ready(State(state): State<ApiState>) -> impl IntoResponse {
    let database = check_database(&state).await;
    let migrations = if database.ok {
        check_migrations(&state).await
    } else {
        failed("migrations", "not checked: the database is unreachable")
    };
    let ingester = match &state.ingester {
        Some(watch) => match watch.check() {
            Ok(detail) => passed("ingester", detail),
            Err(detail) => failed("ingester", detail),
        },
        None => failed("ingester", "no ingester runs in this process"),
    };
    let checks = vec![database, migrations, ingester];
    let ok = checks.iter().all(|c| c.ok);
    if !ok {
        let failing: Vec<_> = checks.iter().filter(|c| !c.ok).map(|c| c.name).collect();
        tracing::warn!(?failing, "not ready");
    }
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = Readiness {
        status: if ok { "ready" } else { "not_ready" },
        checks,
    };
    (status, Json(body))
}

fn passed(name: &'static str, detail: impl Into<String>) -> Check {
    Check {
        name,
        ok: true,
        detail: detail.into(),
    }
}

fn failed(name: &'static str, detail: impl Into<String>) -> Check {
    Check {
        name,
        ok: false,
        detail: detail.into(),
    }
}

async fn check_database(state: &ApiState) -> Check {
    match tokio::time::timeout(READY_DB_TIMEOUT, queries::ping(state.db().pool())).await {
        Ok(Ok(())) => passed("database", "reachable"),
        Ok(Err(error)) => {
            tracing::warn!(%error, "readiness: database check failed");
            failed("database", "unreachable")
        }
        Err(_) => failed(
            "database",
            format!(
                "no answer within {}",
                humantime::format_duration(READY_DB_TIMEOUT)
            ),
        ),
    }
}

async fn check_migrations(state: &ApiState) -> Check {
    let pool = state.db().pool();
    match tokio::time::timeout(READY_DB_TIMEOUT, queries::migration_state(pool)).await {
        Ok(Ok(m)) if m.pending.is_empty() && m.storage_ready => passed(
            "migrations",
            format!("{} of {} applied; storage set up", m.known, m.known),
        ),
        Ok(Ok(m)) if m.pending.is_empty() => failed(
            "migrations",
            "applied, but the storage back-end is not set up",
        ),
        Ok(Ok(m)) => failed(
            "migrations",
            format!(
                "{} of {} pending (versions {:?})",
                m.pending.len(),
                m.known,
                m.pending
            ),
        ),
        Ok(Err(error)) => {
            tracing::warn!(%error, "readiness: migration check failed");
            failed("migrations", "cannot read the migration state")
        }
        Err(_) => failed("migrations", "no answer from the database in time"),
    }
}

/// Judges from the ingester's counters whether it is connected to the broker with its
/// subscriptions granted.
///
/// The counters only grow, so the watch remembers the connection count and the error
/// count as of the first check that saw the current connection. The ingester is up when
/// it has connected at least once, every connection got its subscriptions granted
/// (`subscribed ≥ connects`), and no connection error happened since that baseline
/// without a reconnect after it (each reconnect bumps `connects`, which resets the
/// baseline). An error between a connect and the first check after it goes unseen until
/// the next failed reconnect attempt, which the ingester makes within its retry backoff.
#[derive(Debug)]
pub struct IngesterWatch {
    stats: Arc<IngestStats>,
    baseline: Mutex<Option<(u64, u64)>>,
}

impl IngesterWatch {
    /// Watches these counters.
    pub fn new(stats: Arc<IngestStats>) -> IngesterWatch {
        IngesterWatch {
            stats,
            baseline: Mutex::new(None),
        }
    }

    /// The ingester's counters.
    pub fn stats(&self) -> &IngestStats {
        &self.stats
    }

    /// `Ok(detail)` when the ingester is connected and subscribed, `Err(reason)` if not.
    pub fn check(&self) -> Result<String, String> {
        let s = self.stats.snapshot();
        let (connects, errors) = (s.mqtt_connects, s.mqtt_errors);
        let baseline_errors = {
            let mut baseline = self
                .baseline
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            match *baseline {
                Some((c, e)) if c == connects => e,
                _ => {
                    *baseline = Some((connects, errors));
                    errors
                }
            }
        };
        if connects == 0 {
            return Err(format!(
                "not connected to the MQTT broker yet ({errors} connection errors)"
            ));
        }
        if s.mqtt_subscribed < connects {
            return Err("connected to the MQTT broker, subscriptions not granted".to_owned());
        }
        if errors > baseline_errors {
            return Err(format!(
                "MQTT connection lost ({} errors since the last connect); reconnecting",
                errors - baseline_errors
            ));
        }
        Ok(format!(
            "connected and subscribed ({connects} connection{})",
            if connects == 1 { "" } else { "s" }
        ))
    }
}

/// Prometheus metrics of this process: ingester counters (when an ingester runs here)
/// and API response counters.
#[utoipa::path(
    get,
    path = "/metrics",
    security(()),
    tag = "health",
    operation_id = "metrics",
    responses((
        status = 200,
        description = "OpenMetrics text format 1.0.0 (read by Prometheus)",
        body = String,
        content_type = "application/openmetrics-text; version=1.0.0"
    ))
)]
async fn metrics(State(state): State<ApiState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.encode_metrics(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;

    fn bump(counter: &std::sync::atomic::AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    #[test]
    fn ingester_watch_follows_connects_subscriptions_and_errors() {
        let stats = Arc::new(IngestStats::default());
        let watch = IngesterWatch::new(Arc::clone(&stats));
        // Broker not reachable yet.
        bump(&stats.mqtt_errors);
        assert!(watch.check().unwrap_err().contains("not connected"));
        // Connected, SUBACK pending.
        bump(&stats.mqtt_connects);
        assert!(watch.check().unwrap_err().contains("subscriptions"));
        bump(&stats.mqtt_subscribed);
        assert!(watch.check().is_ok());
        // Connection drops: errors grow, no reconnect.
        bump(&stats.mqtt_errors);
        assert!(watch.check().unwrap_err().contains("lost"));
        // Still down at the next check (sticky until a reconnect).
        assert!(watch.check().unwrap_err().contains("lost"));
        // Reconnected and re-subscribed.
        bump(&stats.mqtt_connects);
        bump(&stats.mqtt_subscribed);
        assert_eq!(
            watch.check().unwrap(),
            "connected and subscribed (2 connections)"
        );
    }
}
