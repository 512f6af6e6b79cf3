//! The HTTP API (axum 0.8): health and readiness, gateway status, the well registry,
//! telemetry by well and canonical metric, ingest audit, and its own OpenAPI document.
//!
//! # Layout
//!
//! ```text
//! api/src/
//!   lib.rs        ApiState, router(), serve(), ApiServer — composition only
//!   error.rs      ApiError: the one error type at the boundary, mapped to HTTP + JSON
//!                 error body (422 `unprocessable` with its problems included)
//!   extract.rs    extractors (TenantScope, WellParam, GatewayParam, ApiQuery), parameter
//!                 parsing (every bad parameter becomes a precise 400), and what several
//!                 areas share (date and month ranges, well lookup, SiteRef)
//!   middleware.rs request id, request timeout, per-request tracing span, counters
//!   health.rs     GET /health, /ready, /metrics
//!   docs.rs       GET /api/openapi.json, /api/docs (Swagger UI, vendored and served from
//!                 the binary; its files at the fixed DOCS_ASSETS paths)
//!   gateways.rs   GET /api/v1/tenants/{tenant}/gateways[/{gateway}]
//!   wells.rs      GET|POST /api/v1/tenants/{tenant}/wells, GET|PUT|DELETE …/wells/{well},
//!                 GET …/wells/{well}/metrics
//!   sites.rs      GET|POST /api/v1/tenants/{tenant}/sites, GET|PUT|DELETE …/sites/{site}
//!   interventions.rs GET|POST …/wells/{well}/interventions, PUT|DELETE …/{intervention}
//!                 (maintenance and failure records)
//!   equipment.rs  GET …/emission-sources, PUT …/emission-sources/{source}/counts
//!   gateway_credentials.rs POST …/gateways, POST …/gateways/{gateway}/credentials/
//!                 {rotate,revoke} (secrets shown once, agent.toml issued)
//!   gateway_certificates.rs POST|GET …/gateways/{gateway}/certificates, POST
//!                 …/certificates/{serial}/revoke (mutual TLS: tenant CA, key shown once)
//!   session.rs    POST /api/v1/auth/{sign-in,refresh,sign-out,password-reset[/confirm],
//!                 invitations/accept}, GET /api/v1/auth/me
//!   people.rs     GET …/members, POST …/invitations, PUT|DELETE …/members/{user},
//!                 GET|POST …/api-keys, DELETE …/api-keys/{key}
//!   admin.rs      GET|POST /api/v1/admin/tenants, POST …/tenants/{slug}/{suspend,reactivate},
//!                 GET /api/v1/admin/audit, GET /api/v1/tenants/{tenant}/audit
//!   access.rs     the access layer: credentials → principal → declared policy
//!   credentials.rs password hashing (argon2id), token and key formats
//!   telemetry.rs  GET /api/v1/tenants/{tenant}/wells/{well}/telemetry
//!   latest.rs     GET /api/v1/tenants/{tenant}/latest[/stream] (newest sample per series;
//!                 the stream pushed by latest_feed.rs: LISTEN wellpulse_telemetry, one read
//!                 per tenant per second, fanned out)
//!   ingest.rs     GET /api/v1/tenants/{tenant}/ingest/{rejections,counters}
//!   production.rs GET /api/v1/tenants/{tenant}/wells/{well}/production,
//!                 POST …/production/{corrections,derive}, GET …/production/monthly
//!   emissions.rs  GET /api/v1/tenants/{tenant}/emissions[/intensity]
//!   reports.rs    GET /api/v1/tenants/{tenant}/reports/{form-pr,c115}
//!   decline.rs    GET /api/v1/tenants/{tenant}/wells/{well}/decline
//!   billing.rs    POST /api/v1/billing/webhook (Stripe, signature only), POST …/billing/
//!                 {checkout,portal}, GET …/billing, GET /api/v1/admin/billing/{revenue,
//!                 reconciliation}
//!   web.rs        the web app's built files (`web_dir`): the fallback for paths outside
//!                 `/api`, static files only
//! ```
//!
//! Each area file exposes `pub(crate) fn routes() -> OpenApiRouter<ApiState>` built only
//! with `utoipa_axum::routes!` over handlers annotated with `#[utoipa::path]`: a route is
//! registered with axum and documented in the OpenAPI document by the same call, so the
//! served routes and the spec cannot drift apart (a test checks it from the outside too).
//! The exceptions are files, not operations: the docs page's Swagger UI files (`docs.rs`
//! registers each of the fixed [`DOCS_ASSETS`] paths explicitly) and, when
//! [`ApiOptions::web_dir`] is set, the web app's built files, served by `web.rs` as the
//! router's fallback (only what no route matched, never under `/api`).
//!
//! Area files never import from one another: what two areas share lives in `extract.rs`
//! (errors in `error.rs`).
//!
//! # Extension point
//!
//! A new area (the analytics engineer's `production.rs`, `emissions.rs`, `reports.rs`,
//! `decline.rs`) is one file with its handlers and its `routes()`, plus **one line** in
//! [`routes`] below: `.merge(production::routes())`. Handlers follow the pattern of the
//! existing areas:
//!
//! - take [`TenantScope`] first (tenant from the path, 404 if unknown) and open the
//!   database work with [`TenantScope::begin`], a transaction restricted to that tenant by
//!   row-level security; pass `scope.id` to the query function as well (explicit filter);
//! - parse query strings with [`ApiQuery`] over a struct of `Option<String>` fields with
//!   `deny_unknown_fields`, then turn each field into its typed value with the helpers in
//!   [`extract`], which produce the precise 400s;
//! - put SQL in the `store` crate (`store::<area>`), never here; return
//!   `Result<Json<Dto>, ApiError>` (a result the stored data cannot produce is
//!   [`ApiError::Unprocessable`], 422);
//! - DTOs (serde + `ToSchema`) live in the area file (in `extract.rs` when several areas
//!   share one) and are the only serde types.
//!
//! # Conventions
//!
//! JSON everywhere; times are RFC 3339 in UTC; 64-bit identifiers that JavaScript cannot
//! hold exactly (boot ids) are strings of 16 hex digits ([`wire::HexId`], as every log
//! prints them); lists are keyset-paginated with `limit`
//! (≤ the configured `max_page_size`) and an opaque `cursor` echoed from `next_cursor`.
//! Every response carries an `x-request-id` header; error bodies repeat it.
//!
//! # Tenancy and authentication
//!
//! Every tenant-owned route is under `/api/v1/tenants/{tenant}/` and every handler gets
//! the tenant through [`TenantScope`], which the access layer ([`access`]) filled after
//! checking the caller's role there against the operation's declared `security`. Every
//! operation must declare one (`security(())` for public ones); handlers that change
//! something take [`Caller`] and write an audit entry in their transaction.
//! `/metrics` and `/ready` are operator endpoints.

mod access;
mod admin;
mod alert_destinations;
mod alerts;
mod billing;
pub mod billing_jobs;
mod credentials;
mod decline;
mod detection;
mod devices;
mod docs;
mod emissions;
mod equipment;
mod error;
mod extract;
mod failure_risk;
mod forecasts;
mod gateway_certificates;
mod gateway_credentials;
mod gateways;
mod health;
mod ingest;
mod interventions;
mod latest;
mod latest_feed;
mod middleware;
mod people;
mod production;
mod reports;
mod session;
mod sites;
mod telemetry;
mod training;
mod training_jobs;
mod web;
mod wells;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::Extension;
use axum::http::StatusCode;
use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tower_http::request_id::{PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use ::ingest::{IngestCollector, IngestStats};
use prometheus_client::registry::Registry;
use store::Db;

pub use access::{AuthOptions, Caller, Policy, PolicyTable, Principal, PrincipalKind};
pub use docs::DOCS_ASSETS;
pub use error::{
    ApiError, ErrorBody, ErrorResponse, ParamLocation, ProblemDto, UnprocessableBody,
    UnprocessableResponse,
};
pub use extract::{ApiQuery, GatewayParam, TenantScope, WellParam};
pub use failure_risk::refresh_failure_risk;
pub use forecasts::{
    RefreshOutcome, refresh_forecasts, refresh_tenant as refresh_tenant_forecasts,
};
pub use health::IngesterWatch;
pub use session::create_platform_admin;
pub use training_jobs::{run_training_jobs, schedule_training};
pub use web::check_web_dir;

/// Runtime options of the API (from `[api]` in `cloud.toml`).
#[derive(Debug, Clone, PartialEq)]
pub struct ApiOptions {
    /// Longest a request may take; slower ones are answered 503 `timeout`.
    pub request_timeout: Duration,
    /// Largest `limit` a request may ask for (list pages, telemetry points).
    pub max_page_size: u32,
    /// Authentication and rate limits.
    pub auth: AuthOptions,
    /// Plans by name, with their quotas.
    pub plans: std::collections::BTreeMap<String, store::tenants::PlanLimits>,
    /// The plan of a tenant created without one.
    pub default_plan: String,
    /// How often API calls counted in memory are added to the usage table.
    pub usage_flush_interval: Duration,
    /// Where tenant exports are written (one directory per export).
    pub export_dir: std::path::PathBuf,
    /// How long a tenant scheduled for deletion keeps its data (it can be reactivated
    /// meanwhile).
    pub deletion_grace: Duration,
    /// The MQTT URL gateways connect to, written into the `agent.toml` the API issues.
    pub gateway_mqtt_url: String,
    /// The server secret sealing the tenants' CA keys (`[tenancy] ca_key`); without it no
    /// gateway client certificate is issued (503 `certificates_unavailable`).
    pub ca_key: Option<base::Secret>,
    /// Validity of an issued gateway client certificate.
    pub gateway_certificate_validity: Duration,
    /// On-demand model training (`POST …/models/train`): window and minimum history.
    pub training: ::alerts::training::TrainingOptions,
    /// The web app's built files (`web/dist`), served from this origin for paths outside
    /// `/api`; without it such paths are the JSON 404 like any unknown path.
    pub web_dir: Option<std::path::PathBuf>,
}

impl ApiOptions {
    /// The quotas of a plan (a plan missing from the configuration has none, and is
    /// logged once per lookup site).
    pub(crate) fn plan(&self, name: &str) -> store::tenants::PlanLimits {
        self.plans.get(name).cloned().unwrap_or_default()
    }
}

impl Default for ApiOptions {
    fn default() -> Self {
        ApiOptions {
            request_timeout: Duration::from_secs(10),
            max_page_size: 10_000,
            auth: AuthOptions::default(),
            plans: [("standard".to_owned(), store::tenants::PlanLimits::default())].into(),
            default_plan: "standard".to_owned(),
            usage_flush_interval: Duration::from_secs(30),
            // The server always sets it from `[tenancy] export_dir`; this default serves
            // tests and tools that build the API directly.
            export_dir: std::env::temp_dir().join("wellpulse-exports"),
            deletion_grace: Duration::from_secs(30 * 24 * 3600),
            gateway_mqtt_url: "mqtt://127.0.0.1:1883".to_owned(),
            ca_key: None,
            gateway_certificate_validity: store::certificates::DEFAULT_VALIDITY,
            training: ::alerts::training::TrainingOptions::default(),
            web_dir: None,
        }
    }
}

/// Shortest time between two updates of one tenant's live latest values.
const LATEST_INTERVAL: Duration = Duration::from_secs(1);

/// What every handler can reach: the database, the options, the ingester's counters.
/// Cheap to clone.
#[derive(Debug, Clone)]
pub struct ApiState {
    db: Db,
    options: Arc<ApiOptions>,
    ingester: Option<Arc<IngesterWatch>>,
    metrics: Arc<middleware::ApiMetrics>,
    registry: Arc<Mutex<Registry>>,
    access: Arc<access::Access>,
    mailer: Option<Arc<mail::Mailer>>,
    billing: Option<Arc<billing::Billing>>,
    alert_feed: ::alerts::stream::AlertFeed,
    latest_feed: latest_feed::LatestFeed,
}

impl ApiState {
    /// State over a database, without an ingester (`/ready` then reports it missing).
    pub fn new(db: Db, options: ApiOptions) -> ApiState {
        let metrics = Arc::new(middleware::ApiMetrics::default());
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        let access = Arc::new(access::Access::new(
            db.clone(),
            options.auth.clone(),
            options.plans.clone(),
        ));
        // Without a runtime (a router built for inspection) the cache stays off and API
        // calls are not counted.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(Arc::clone(&access).listen());
            runtime.spawn(Arc::clone(&access).flush_usage(options.usage_flush_interval));
        }
        let alert_feed = ::alerts::stream::AlertFeed::new();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(alert_feed.clone().listen(db.clone()));
        }
        ApiState {
            access,
            mailer: None,
            billing: None,
            alert_feed,
            latest_feed: latest_feed::LatestFeed::new(db.clone(), LATEST_INTERVAL),
            db,
            options: Arc::new(options),
            ingester: None,
            metrics,
            registry: Arc::new(Mutex::new(registry)),
        }
    }

    /// Attaches the counters of the ingester running in this process (readiness and
    /// `/metrics`).
    pub fn with_ingester(mut self, stats: Arc<IngestStats>) -> ApiState {
        self.register_metrics(|r| {
            r.register_collector(Box::new(IngestCollector(Arc::clone(&stats))))
        });
        self.ingester = Some(Arc::new(IngesterWatch::new(stats)));
        self
    }

    /// Adds metrics of other parts of this process to what `/metrics` serves (the one
    /// Prometheus registry of the process).
    pub fn register_metrics(&self, register: impl FnOnce(&mut Registry)) {
        let mut registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        register(&mut registry);
    }

    /// Every registered metric in the OpenMetrics text format.
    pub(crate) fn encode_metrics(&self) -> String {
        let registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &registry);
        text
    }

    /// Sends invitations and password resets through `mailer`.
    pub fn with_mailer(mut self, mailer: mail::Mailer) -> ApiState {
        self.mailer = Some(Arc::new(mailer));
        self
    }

    /// The mailer, or the 503 that says mail is not configured.
    pub(crate) fn mailer(&self) -> Result<&mail::Mailer, ApiError> {
        self.mailer.as_deref().ok_or_else(|| {
            ApiError::MailUnavailable(
                "outgoing mail is not configured on this server ([mail] in cloud.toml)".to_owned(),
            )
        })
    }

    /// Alert changes of every tenant, live (the SSE stream filters them).
    /// Turns billing on (`[billing]`): the webhook, checkout, portal and overview
    /// operations, which otherwise answer 503 `billing_unavailable`.
    pub fn with_billing(
        mut self,
        options: ::billing::BillingOptions,
    ) -> Result<ApiState, ::billing::StripeError> {
        self.billing = Some(Arc::new(billing::Billing::new(options)?));
        Ok(self)
    }

    pub(crate) fn billing(&self) -> Option<&Arc<billing::Billing>> {
        self.billing.as_ref()
    }

    pub(crate) fn alert_feed(&self) -> &::alerts::stream::AlertFeed {
        &self.alert_feed
    }

    /// Latest values of every watched tenant, live (the SSE stream filters them).
    pub(crate) fn latest_feed(&self) -> &latest_feed::LatestFeed {
        &self.latest_feed
    }

    pub(crate) fn access(&self) -> &access::Access {
        &self.access
    }

    /// The database.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// The options.
    pub fn options(&self) -> &ApiOptions {
        &self.options
    }
}

/// The root of the OpenAPI document; the paths come from the area routers.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "WellPulse API",
        description = "Wellsite telemetry: gateway status, well registry, telemetry by canonical metric, ingest audit.\n\nTimes are RFC 3339 (UTC). Errors are `{\"error\": {\"code\", \"message\", \"request_id\"}}`.",
    ),
    tags(
        (name = "health", description = "Liveness, readiness and metrics"),
        (name = "gateways", description = "Edge gateways and their status"),
        (name = "wells", description = "Well registry and available metrics"),
        (name = "telemetry", description = "Raw and bucketed telemetry by well and canonical metric"),
        (name = "ingest", description = "Ingest audit: rejected messages and counters"),
        (name = "docs", description = "This document and its browser"),
        (name = "production", description = "Daily production per well (method, coverage, corrections) and monthly totals"),
        (name = "emissions", description = "GHG emissions per source and well (mass per gas, CO2e with a chosen GWP set) and intensities"),
        (name = "reports", description = "Texas RRC Form PR and New Mexico OCD C-115 (CSV, printable HTML, JSON)"),
        (name = "decline", description = "Decline-curve fits, EUR and P10/P50/P90 forecasts"),
        (name = "auth", description = "Sign-in, token refresh, sign-out, password reset, invitations"),
        (name = "people", description = "A tenant's members, API keys and audit log (tenant admins)"),
        (name = "admin", description = "Platform administration: tenants and the whole audit log"),
        (name = "alerts", description = "Alerts (lifecycle, live stream), findings, silences and alert destinations with their delivery log"),
        (name = "detection", description = "Tenant detection rules and the per-well multivariate models"),
        (name = "billing", description = "Billing with Stripe: the webhook, Checkout and Customer Portal sessions, a tenant's plan, usage and invoices; revenue, usage and metering reconciliation for platform administrators"),
        (name = "maintenance", description = "Predictive maintenance: failure risk per well and ranked per fleet, the model registry, training"),
    ),
    components(schemas(ErrorResponse)),
    modifiers(&BearerScheme)
)]
struct ApiDoc;

/// Declares the `bearer` security scheme every protected operation refers to.
struct BearerScheme;

impl utoipa::Modify for BearerScheme {
    fn modify(&self, spec: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = spec.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            access::BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An access token from `POST /api/v1/auth/sign-in` (`wpat_…`) or an API key (`wpk_…`). \
                         Scopes name the least role the operation needs in the path's tenant \
                         (`viewer` < `operator` < `tenant_admin`), or `platform_admin`.",
                    ))
                    .build(),
            ),
        );
    }
}

/// Every route of the API with its documentation. Add one `.merge(...)` line per area.
fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(health::routes())
        .merge(docs::routes())
        .merge(gateways::routes())
        .merge(wells::routes())
        .merge(telemetry::routes())
        .merge(latest::routes())
        .merge(ingest::routes())
        .merge(production::routes())
        .merge(emissions::routes())
        .merge(reports::routes())
        .merge(decline::routes())
        .merge(sites::routes())
        .merge(interventions::routes())
        .merge(failure_risk::routes())
        .merge(forecasts::routes())
        .merge(equipment::routes())
        .merge(gateway_credentials::routes())
        .merge(gateway_certificates::routes())
        .merge(devices::routes())
        .merge(session::routes())
        .merge(people::routes())
        .merge(admin::routes())
        .merge(alerts::routes())
        .merge(detection::routes())
        .merge(alert_destinations::routes())
        .merge(billing::routes())
}

/// The OpenAPI 3.1 document of the API, as served at `/api/openapi.json`.
/// `limit` parameters state the default `max_page_size`; a server states its own.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut spec = routes().into_openapi();
    docs::document_page_limit(&mut spec, ApiOptions::default().max_page_size);
    access::document_access_responses(&mut spec);
    spec
}

/// The complete API as an axum router: routes, fallbacks (404/405 as JSON errors),
/// request id, timeout and tracing middleware.
pub fn router(state: ApiState) -> Router {
    let (routes, mut spec) = routes().split_for_parts();
    docs::document_page_limit(&mut spec, state.options().max_page_size);
    access::document_access_responses(&mut spec);
    let mut policies = PolicyTable::from_spec(&spec);
    for path in DOCS_ASSETS {
        policies.insert_public(path);
    }
    let guard = access::Guard {
        state: state.clone(),
        policies: Arc::new(policies),
    };
    let routes = routes
        .route_layer(axum::middleware::from_fn_with_state(
            guard,
            access::authorize,
        ))
        .method_not_allowed_fallback(error::method_not_allowed);
    // What no route matched: the web app's files when configured (never under `/api`,
    // see `web`), else the JSON 404. The access layer above guards every route; the
    // fallback serves no API data.
    let routes = match &state.options().web_dir {
        Some(dir) => {
            let files = web::WebFiles::new(dir);
            routes.fallback(move |request: axum::extract::Request| web::fallback(files, request))
        }
        None => routes.fallback(error::no_route),
    };
    routes
        .layer(Extension(docs::SpecDocument::new(&spec)))
        // Innermost first; see `middleware` for what each layer does.
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            state.options().request_timeout,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::scope_and_count,
        ))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(middleware::span_for)
                .on_request(())
                .on_response(DefaultOnResponse::new().level(tracing::Level::DEBUG)),
        )
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(middleware::MakeHexId))
        .layer(axum::middleware::map_request(
            middleware::drop_insane_request_id,
        ))
        .with_state(state)
}

/// Serves the API on `listener` until `shutdown` completes (then finishes the requests
/// in progress). Sockets get `TCP_NODELAY`: responses are small and latency matters.
pub async fn serve(
    listener: TcpListener,
    state: ApiState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = listener.tap_io(|tcp| {
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY");
        }
    });
    axum::serve(
        listener,
        router(state).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

/// Why the API server could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The configured address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Serving failed.
    #[error("HTTP API server failed: {0}")]
    Serve(#[source] std::io::Error),
}

/// A bound, not yet serving API server: binding first lets `wellpulse-cloud run` fail at
/// start-up (address in use) rather than later in a task.
#[derive(Debug)]
pub struct ApiServer {
    listener: TcpListener,
    state: ApiState,
}

impl ApiServer {
    /// Binds `addr` (port 0 picks a free port; see [`ApiServer::local_addr`]).
    pub async fn bind(addr: SocketAddr, state: ApiState) -> Result<ApiServer, ServeError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ServeError::Bind { addr, source })?;
        Ok(ApiServer { listener, state })
    }

    /// The bound address.
    pub fn local_addr(&self) -> Result<SocketAddr, ServeError> {
        self.listener.local_addr().map_err(ServeError::Serve)
    }

    /// Serves until the task is aborted (the process's supervisor stops it).
    pub async fn run(self) -> Result<(), ServeError> {
        tracing::info!(addr = %self.local_addr()?, "HTTP API listening");
        serve(self.listener, self.state, std::future::pending())
            .await
            .map_err(ServeError::Serve)
    }
}
