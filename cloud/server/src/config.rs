//! The cloud configuration file (`cloud.toml`).
//!
//! One TOML file configures a `wellpulse-cloud` process: the database, the MQTT broker
//! (embedded rumqttd or an external broker such as Mosquitto or EMQX), the ingester and the
//! maintenance loop. `cloud/examples/cloud.toml` documents every field; a test parses it.
//!
//! These types are the TOML boundary (serde, `deny_unknown_fields`, humantime durations).
//! [`CloudConfig::load`] validates the file and resolves relative paths against the file's
//! directory; the runtime parts receive plain values built from it
//! ([`BrokerConfig::endpoint`], [`IngestConfig::options`]).
//!
//! Secrets (the database URL may carry a password, the ingester's MQTT password) are held
//! in [`Secret`], whose `Debug` prints `"***"`, so logging a config never leaks them.

use base::Secret;
use ingest::{IngestOptions, MqttEndpoint, MqttTls};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;
use store::{BackendChoice, StorageOptions};

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema.
    #[error("config file {path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The TOML error (names the line and the field).
        source: toml::de::Error,
    },
    /// The file parsed but a value is unusable.
    #[error("config file {path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// The whole `cloud.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloudConfig {
    /// `[database]`: PostgreSQL connection.
    pub database: DatabaseConfig,
    /// `[broker]`: where MQTT comes from.
    pub broker: BrokerConfig,
    /// `[ingest]`: the MQTT → PostgreSQL ingester.
    #[serde(default)]
    pub ingest: IngestConfig,
    /// `[storage]`: telemetry storage back-end and retention.
    #[serde(default)]
    pub storage: StorageConfig,
    /// `[maintenance]`: periodic database upkeep.
    #[serde(default)]
    pub maintenance: MaintenanceConfig,
    /// `[api]`: the HTTP API.
    #[serde(default)]
    pub api: ApiConfig,
    /// Outgoing mail (`[mail]`); optional.
    #[serde(default)]
    pub mail: Option<MailConfig>,
    /// Plans and their quotas (`[plans.<name>]`); a tenant is on one of them.
    #[serde(default = "default_plans")]
    pub plans: std::collections::BTreeMap<String, PlanConfig>,
    /// `[tenancy]`: the end of a tenant (export, grace period).
    #[serde(default)]
    pub tenancy: TenancyConfig,
    /// `[detection]`: live anomaly detection of every stored batch.
    #[serde(default)]
    pub detection: DetectionConfig,
    /// `[alerts]`: the alert lifecycle and delivery.
    #[serde(default)]
    pub alerts: AlertsConfig,
    /// `[billing]`: billing with Stripe; optional (without it the product runs unbilled).
    #[serde(default)]
    pub billing: Option<BillingConfig>,
}

/// `[billing]`: plans sold through Stripe, usage reported to Stripe Billing Meters, the
/// tenant lifecycle following payment. `examples/billing.toml` documents every field.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BillingConfig {
    /// Stripe's API (default `https://api.stripe.com`); a local Stripe-compatible server
    /// for tests and the demo.
    #[serde(default = "default_stripe_api_base")]
    pub api_base: String,
    /// The secret API key: `{ env = "NAME" }` or `{ file = "/path" }` (a value works but
    /// keeps the key in the file). Required: a missing key refuses to start billing.
    #[serde(deserialize_with = "secret_setting")]
    pub api_key: Secret,
    /// The webhook endpoint's signing secrets (`whsec_…`), each a secret setting; two
    /// during a rotation.
    #[serde(deserialize_with = "secret_list")]
    pub webhook_secrets: Vec<Secret>,
    /// The pinned `Stripe-Version`.
    #[serde(default = "default_stripe_api_version")]
    pub api_version: String,
    /// From a failed payment to suspension (1h-90d; default 7d).
    #[serde(default = "default_grace_period", with = "humantime_serde")]
    pub grace_period: Duration,
    /// From the end of a subscription to the tenant's deletion (1d-365d; default 30d).
    #[serde(default = "default_billing_retention", with = "humantime_serde")]
    pub retention: Duration,
    /// Longest one Stripe request may take (default 10s).
    #[serde(default = "default_stripe_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Attempts per Stripe call on temporary failures (1-10; default 4).
    #[serde(default = "default_stripe_attempts")]
    pub max_attempts: u32,
    /// Where Checkout returns after payment: `{TENANT}` becomes the tenant's slug and
    /// Stripe fills `{CHECKOUT_SESSION_ID}` (the web app's page is
    /// `<origin>/t/{TENANT}/admin/billing?checkout=done`).
    pub success_url: String,
    /// Where Checkout returns when abandoned (`{TENANT}` allowed; the web app reads
    /// `?checkout=cancelled`).
    pub cancel_url: String,
    /// Where the Customer Portal returns (`{TENANT}` allowed).
    pub portal_return_url: String,
    /// How often ended grace periods are looked for (default 1m).
    #[serde(default = "default_grace_check", with = "humantime_serde")]
    pub grace_check_interval: Duration,
    /// How often completed days are reported to the meters (default 1h).
    #[serde(default = "default_meter_interval", with = "humantime_serde")]
    pub meter_interval: Duration,
    /// How often Stripe's meter summaries are read back (default 6h).
    #[serde(default = "default_reconcile_interval", with = "humantime_serde")]
    pub reconcile_interval: Duration,
    /// `[billing.meters]`: the two Billing Meters.
    pub meters: BillingMetersConfig,
    /// `[billing.plans.<name>]`: the Stripe prices of each plan that can be bought (each a
    /// plan of `[plans.*]`).
    pub plans: std::collections::BTreeMap<String, PlanPricesConfig>,
}

/// `[billing.meters]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BillingMetersConfig {
    /// Active wells per day (summed into well-days).
    pub active_wells: MeterConfig,
    /// Samples beyond the plan's daily allowance.
    pub samples_over_allowance: MeterConfig,
}

/// One Billing Meter.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeterConfig {
    /// Its `event_name`.
    pub event_name: String,
    /// Its id (`mtr_…`), to read its summaries.
    pub id: String,
}

/// `[billing.plans.<name>]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanPricesConfig {
    /// The base fee's price (`price_…`, licensed, monthly).
    pub base_price: String,
    /// The active-wells meter's price (per well-day).
    pub active_wells_price: String,
    /// The samples meter's price.
    pub samples_price: String,
    /// The base fee per month in the smallest currency unit (cents), as shown to admins.
    pub monthly_fee: i64,
}

fn default_stripe_api_base() -> String {
    "https://api.stripe.com".to_owned()
}
fn default_stripe_api_version() -> String {
    billing::client::DEFAULT_API_VERSION.to_owned()
}
fn default_grace_period() -> Duration {
    Duration::from_secs(7 * 86_400)
}
fn default_billing_retention() -> Duration {
    Duration::from_secs(30 * 86_400)
}
fn default_stripe_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_stripe_attempts() -> u32 {
    4
}
fn default_grace_check() -> Duration {
    Duration::from_secs(60)
}
fn default_meter_interval() -> Duration {
    Duration::from_secs(3600)
}
fn default_reconcile_interval() -> Duration {
    Duration::from_secs(6 * 3600)
}

/// A list of secret settings (each as [`secret_setting`]).
fn secret_list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Secret>, D::Error> {
    struct One(Secret);
    impl<'de> Deserialize<'de> for One {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<One, D::Error> {
            secret_setting(d).map(One)
        }
    }
    Ok(Vec::<One>::deserialize(d)?
        .into_iter()
        .map(|o| o.0)
        .collect())
}

fn stripe_id(what: &str, prefix: &str, id: &str) -> Result<(), String> {
    let ok = id.starts_with(prefix)
        && id.len() > prefix.len()
        && id.len() <= 255
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "[billing] {what} must be a Stripe id {prefix}…, got {id:?}"
        ))
    }
}

impl BillingConfig {
    fn validate(
        &self,
        plans: &std::collections::BTreeMap<String, PlanConfig>,
    ) -> Result<(), String> {
        match url::Url::parse(&self.api_base) {
            Ok(u) if matches!(u.scheme(), "https" | "http") && u.host_str().is_some() => {}
            _ => {
                return Err(format!(
                    "[billing] api_base must be an http(s) URL, got {:?}",
                    self.api_base
                ));
            }
        }
        if self.webhook_secrets.is_empty() {
            return Err("[billing] webhook_secrets needs at least one signing secret".to_owned());
        }
        for (name, url) in [
            ("success_url", &self.success_url),
            ("cancel_url", &self.cancel_url),
            ("portal_return_url", &self.portal_return_url),
        ] {
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                return Err(format!(
                    "[billing] {name} must be an http(s) URL, got {url:?}"
                ));
            }
        }
        if !(Duration::from_secs(3600)..=Duration::from_secs(90 * 86_400))
            .contains(&self.grace_period)
        {
            return Err(format!(
                "[billing] grace_period must be from 1h to 90d, got {}",
                humantime::format_duration(self.grace_period)
            ));
        }
        if !(Duration::from_secs(86_400)..=Duration::from_secs(365 * 86_400))
            .contains(&self.retention)
        {
            return Err(format!(
                "[billing] retention must be from 1d to 365d, got {}",
                humantime::format_duration(self.retention)
            ));
        }
        if !(1..=10).contains(&self.max_attempts) {
            return Err("[billing] max_attempts must be from 1 to 10".to_owned());
        }
        for (name, d) in [
            ("timeout", self.timeout),
            ("grace_check_interval", self.grace_check_interval),
            ("meter_interval", self.meter_interval),
            ("reconcile_interval", self.reconcile_interval),
        ] {
            if d < Duration::from_secs(1) {
                return Err(format!("[billing] {name} must be at least 1s"));
            }
        }
        for (name, meter) in [
            ("meters.active_wells", &self.meters.active_wells),
            (
                "meters.samples_over_allowance",
                &self.meters.samples_over_allowance,
            ),
        ] {
            stripe_id(&format!("{name}.id"), "mtr_", &meter.id)?;
            if meter.event_name.is_empty() || meter.event_name.len() > 100 {
                return Err(format!(
                    "[billing] {name}.event_name must be 1-100 characters"
                ));
            }
        }
        if self.meters.active_wells.event_name == self.meters.samples_over_allowance.event_name {
            return Err("[billing] the two meters need different event names".to_owned());
        }
        if self.plans.is_empty() {
            return Err("[billing] needs at least one [billing.plans.<name>]".to_owned());
        }
        for (name, prices) in &self.plans {
            if !plans.contains_key(name) {
                return Err(format!(
                    "[billing.plans.{name}]: there is no [plans.{name}] (its quotas)"
                ));
            }
            stripe_id(
                &format!("plans.{name}.base_price"),
                "price_",
                &prices.base_price,
            )?;
            stripe_id(
                &format!("plans.{name}.active_wells_price"),
                "price_",
                &prices.active_wells_price,
            )?;
            stripe_id(
                &format!("plans.{name}.samples_price"),
                "price_",
                &prices.samples_price,
            )?;
            if prices.monthly_fee < 0 {
                return Err(format!(
                    "[billing.plans.{name}] monthly_fee must not be negative"
                ));
            }
        }
        Ok(())
    }

    /// Billing's runtime options.
    pub fn options(&self) -> billing::BillingOptions {
        billing::BillingOptions {
            stripe: billing::StripeOptions {
                // Validated as a URL.
                api_base: url::Url::parse(&self.api_base)
                    .unwrap_or_else(|_| url::Url::parse("https://api.stripe.com").expect("valid")),
                api_key: self.api_key.clone(),
                api_version: self.api_version.clone(),
                timeout: self.timeout,
                max_attempts: self.max_attempts,
                backoff_min: Duration::from_millis(500),
                backoff_max: Duration::from_secs(8),
            },
            webhook_secrets: self.webhook_secrets.clone(),
            tolerance_secs: billing::signature::DEFAULT_TOLERANCE_SECS,
            policy: billing::Policy {
                grace_secs: i64::try_from(self.grace_period.as_secs()).unwrap_or(i64::MAX),
                retention_secs: i64::try_from(self.retention.as_secs()).unwrap_or(i64::MAX),
            },
            plans: self
                .plans
                .iter()
                .map(|(name, p)| {
                    (
                        name.clone(),
                        billing::PlanPrices {
                            base_price: p.base_price.clone(),
                            active_wells_price: p.active_wells_price.clone(),
                            samples_price: p.samples_price.clone(),
                            monthly_fee: p.monthly_fee,
                        },
                    )
                })
                .collect(),
            active_wells_meter: billing::Meter {
                event_name: self.meters.active_wells.event_name.clone(),
                id: self.meters.active_wells.id.clone(),
            },
            samples_meter: billing::Meter {
                event_name: self.meters.samples_over_allowance.event_name.clone(),
                id: self.meters.samples_over_allowance.id.clone(),
            },
            success_url: self.success_url.clone(),
            cancel_url: self.cancel_url.clone(),
            portal_return_url: self.portal_return_url.clone(),
        }
    }

    /// The billing jobs' intervals.
    pub fn intervals(&self) -> api::billing_jobs::BillingIntervals {
        api::billing_jobs::BillingIntervals {
            grace: self.grace_check_interval,
            meters: self.meter_interval,
            reconcile: self.reconcile_interval,
        }
    }
}

/// `[detection]`: the detectors run on every stored batch, right after its ingest
/// transaction commits.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectionConfig {
    /// Score batches as they are stored (default true). Off: nothing is detected or alerted.
    pub enabled: bool,
    /// Samples a series needs before its baseline may fire (default 30).
    pub warmup_samples: u32,
    /// Robust z-score (median/MAD scale) at which a baseline detector fires (default 6).
    pub z_threshold: f64,
    /// Consecutive anomalous observations before a condition is active, and normal ones
    /// before it clears (default 3; safety thresholds fire at once).
    pub sustain_samples: u32,
    /// H2S (ppm): warning at (default 10, the OSHA ceiling) and critical at (default 20).
    pub h2s_warning_ppm: f64,
    /// See `h2s_warning_ppm`.
    pub h2s_critical_ppm: f64,
    /// Combustible gas (%LEL): warning at (default 10) and critical at (default 20).
    pub lel_warning_pct: f64,
    /// See `lel_warning_pct`.
    pub lel_critical_pct: f64,
    /// A device is silent after `silent_factor` × its learned sample interval, and at least
    /// `silent_min` (defaults 5 and 60s); checked every `silence_check`.
    pub silent_factor: f64,
    /// See `silent_factor`.
    #[serde(with = "humantime_serde")]
    pub silent_min: Duration,
    /// See `silent_factor` (default 15s).
    #[serde(with = "humantime_serde")]
    pub silence_check: Duration,
    /// How often each ingester sweeps the detection backlog, and how long a stored batch
    /// waits unscored before a sweep scores it (one left behind by an ingester that
    /// stopped before scoring it; default 30s).
    #[serde(with = "humantime_serde")]
    pub backlog_sweep: Duration,
    /// `[detection.training]`: the per-well multivariate models.
    pub training: TrainingConfig,
}

impl Default for DetectionConfig {
    fn default() -> Self {
        let d = detect::DetectOptions::default();
        DetectionConfig {
            enabled: true,
            warmup_samples: d.warmup_samples,
            z_threshold: d.z_threshold,
            sustain_samples: d.sustain_samples,
            h2s_warning_ppm: d.h2s_warning_ppm,
            h2s_critical_ppm: d.h2s_critical_ppm,
            lel_warning_pct: d.lel_warning_pct,
            lel_critical_pct: d.lel_critical_pct,
            silent_factor: d.silent_factor,
            silent_min: Duration::from_millis(u64::try_from(d.silent_min_ms).unwrap_or(60_000)),
            silence_check: Duration::from_secs(15),
            backlog_sweep: ingest::DetectionOptions::default().backlog_sweep,
            training: TrainingConfig::default(),
        }
    }
}

/// `[detection.training]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainingConfig {
    /// How often every well's model is trained again (default 24h).
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// How much recent history a model learns from (default 14d).
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// Fewest complete one-minute rows a model needs (default 240).
    pub min_rows: i64,
}

impl Default for TrainingConfig {
    fn default() -> Self {
        let d = alerts::training::TrainingOptions::default();
        TrainingConfig {
            interval: d.interval,
            window: d.window,
            min_rows: d.min_rows,
        }
    }
}

impl DetectionConfig {
    fn validate(&self) -> Result<(), String> {
        let positive = |name: &str, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(format!(
                    "[detection] {name} must be a positive number, got {v}"
                ))
            }
        };
        positive("z_threshold", self.z_threshold)?;
        positive("h2s_warning_ppm", self.h2s_warning_ppm)?;
        positive("lel_warning_pct", self.lel_warning_pct)?;
        positive("silent_factor", self.silent_factor)?;
        if self.h2s_critical_ppm < self.h2s_warning_ppm
            || self.lel_critical_pct < self.lel_warning_pct
        {
            return Err(
                "[detection] critical gas thresholds must not be below the warnings".to_owned(),
            );
        }
        if self.sustain_samples == 0 {
            return Err("[detection] sustain_samples must be at least 1".to_owned());
        }
        if self.silence_check.is_zero() || self.silent_min.is_zero() {
            return Err("[detection] silence_check and silent_min must be positive".to_owned());
        }
        if self.backlog_sweep < Duration::from_secs(1) {
            return Err("[detection] backlog_sweep must be at least 1s".to_owned());
        }
        if self.training.interval < Duration::from_secs(60)
            || self.training.window < Duration::from_secs(3600)
        {
            return Err(
                "[detection.training] interval must be at least 1m and window at least 1h"
                    .to_owned(),
            );
        }
        if self.training.min_rows < 10 {
            return Err("[detection.training] min_rows must be at least 10".to_owned());
        }
        Ok(())
    }

    /// The detectors' options.
    pub fn detect_options(&self) -> detect::DetectOptions {
        detect::DetectOptions {
            warmup_samples: self.warmup_samples,
            z_threshold: self.z_threshold,
            sustain_samples: self.sustain_samples,
            h2s_warning_ppm: self.h2s_warning_ppm,
            h2s_critical_ppm: self.h2s_critical_ppm,
            lel_warning_pct: self.lel_warning_pct,
            lel_critical_pct: self.lel_critical_pct,
            silent_factor: self.silent_factor,
            silent_min_ms: i64::try_from(self.silent_min.as_millis()).unwrap_or(i64::MAX),
        }
    }

    /// Training's options.
    pub fn training_options(&self) -> alerts::training::TrainingOptions {
        alerts::training::TrainingOptions {
            interval: self.training.interval,
            window: self.training.window,
            min_rows: self.training.min_rows,
        }
    }
}

/// `[alerts]`: what happens to alerts, and their delivery.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsConfig {
    /// A cleared condition resolves its alert after this long without firing again
    /// (default 5m); firing again within it re-arms the same alert silently.
    #[serde(with = "humantime_serde")]
    pub hold: Duration,
    /// Flap damping: a condition that resolved `flap_threshold` times within
    /// `flap_window` opens its next alert as flapping, told only once it held for `hold`
    /// (defaults 1h and 3).
    #[serde(with = "humantime_serde")]
    pub flap_window: Duration,
    /// See `flap_window`.
    pub flap_threshold: i64,
    /// A firing alert nobody acknowledged within this is escalated: severity one step up,
    /// told again (default 30m).
    #[serde(with = "humantime_serde")]
    pub escalate_after: Duration,
    /// Open alerts are re-sent to Alertmanager destinations this often (default 1m; keep
    /// it below Alertmanager's `resolve_timeout`, 5m by default).
    #[serde(with = "humantime_serde")]
    pub alertmanager_resend: Duration,
    /// How often the lifecycle job runs (default 5s).
    #[serde(with = "humantime_serde")]
    pub lifecycle_interval: Duration,
    /// Attempts per message before it is dead (default 12).
    pub max_attempts: u32,
    /// Retry delays: exponential with jitter from `retry_min` to `retry_max` (defaults 1s
    /// and 5m).
    #[serde(with = "humantime_serde")]
    pub retry_min: Duration,
    /// See `retry_min`.
    #[serde(with = "humantime_serde")]
    pub retry_max: Duration,
    /// Connect + request timeout per attempt (default 10s).
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Base URL of the web app, for the links in messages.
    pub public_url: String,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        let o = alerts::outbox::OutboxOptions::default();
        // The lifecycle's defaults are the ingester's (one place says them).
        let p = ingest::DetectionOptions::default().policy;
        let std = |d: chrono::Duration| d.to_std().unwrap_or_default();
        AlertsConfig {
            hold: std(p.hold),
            flap_window: std(p.flap_window),
            flap_threshold: p.flap_threshold,
            escalate_after: Duration::from_secs(1800),
            alertmanager_resend: Duration::from_secs(60),
            lifecycle_interval: Duration::from_secs(5),
            max_attempts: o.max_attempts,
            retry_min: o.retry_min,
            retry_max: o.retry_max,
            request_timeout: o.request_timeout,
            public_url: o.public_url,
        }
    }
}

impl AlertsConfig {
    fn validate(&self) -> Result<(), String> {
        if self.hold.is_zero() || self.lifecycle_interval.is_zero() {
            return Err("[alerts] hold and lifecycle_interval must be positive".to_owned());
        }
        if self.flap_threshold < 1 {
            return Err("[alerts] flap_threshold must be at least 1".to_owned());
        }
        if self.max_attempts == 0 || self.retry_min.is_zero() || self.retry_max < self.retry_min {
            return Err(
                "[alerts] max_attempts must be at least 1, retry_min positive and not above retry_max"
                    .to_owned(),
            );
        }
        if self.request_timeout.is_zero()
            || self.alertmanager_resend.is_zero()
            || self.escalate_after.is_zero()
        {
            return Err(
                "[alerts] request_timeout, alertmanager_resend and escalate_after must be positive"
                    .to_owned(),
            );
        }
        match url::Url::parse(&self.public_url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => Ok(()),
            _ => Err(format!(
                "[alerts] public_url must be an http(s) URL, got {:?}",
                self.public_url
            )),
        }
    }

    /// The lifecycle's timing.
    pub fn policy(&self) -> store::alerts::AlertPolicy {
        let c = |d: Duration| chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX);
        store::alerts::AlertPolicy {
            hold: c(self.hold),
            flap_window: c(self.flap_window),
            flap_threshold: self.flap_threshold,
        }
    }

    /// The delivery worker's options.
    pub fn outbox_options(&self) -> alerts::outbox::OutboxOptions {
        alerts::outbox::OutboxOptions {
            max_attempts: self.max_attempts,
            retry_min: self.retry_min,
            retry_max: self.retry_max,
            request_timeout: self.request_timeout,
            lease: (self.request_timeout * 3).max(Duration::from_secs(30)),
            public_url: self.public_url.clone(),
            ..alerts::outbox::OutboxOptions::default()
        }
    }
}

/// `[tenancy]`: what happens when a tenant is deleted, and the tenants' certificate
/// authorities (gateway client certificates).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TenancyConfig {
    /// Where tenant exports are written, one directory per export (relative to this
    /// file; default `exports`). Keep it on storage that is backed up.
    pub export_dir: PathBuf,
    /// How long a tenant scheduled for deletion keeps its data before it is exported and
    /// purged (1h-365d; default 30d). Reactivating it within that time cancels.
    #[serde(with = "humantime_serde")]
    pub deletion_grace: Duration,
    /// The server secret that seals every tenant CA's private key at rest (AES-256-GCM,
    /// key derived with HKDF-SHA256): a value, `{ env = "NAME" }` or `{ file = "/path" }`,
    /// at least 32 characters (`openssl rand -base64 32`). Without it no gateway client
    /// certificate can be issued (the API answers 503 `certificates_unavailable`). Keep it
    /// for as long as the CAs: another value cannot open them.
    #[serde(deserialize_with = "optional_secret")]
    pub ca_key: Option<Secret>,
    /// Validity of a gateway client certificate issued by the API (1h-3650d; default
    /// 397d).
    #[serde(with = "humantime_serde")]
    pub gateway_certificate_validity: Duration,
}

impl Default for TenancyConfig {
    fn default() -> Self {
        TenancyConfig {
            export_dir: PathBuf::from("exports"),
            deletion_grace: Duration::from_secs(30 * 24 * 3600),
            ca_key: None,
            gateway_certificate_validity: store::certificates::DEFAULT_VALIDITY,
        }
    }
}

/// `[plans.<name>]`: one plan's quotas. A missing quota is unlimited.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanConfig {
    /// Registered wells.
    pub max_wells: Option<u32>,
    /// Registered gateways.
    pub max_gateways: Option<u32>,
    /// Samples stored per day: reported against usage, never enforced by dropping data.
    pub max_samples_per_day: Option<u64>,
    /// API requests per minute for the whole tenant (else `[api.auth]
    /// tenant_requests_per_minute`).
    pub api_requests_per_minute: Option<u32>,
    /// How long the tenant's telemetry history is kept (e.g. `"90d"`; at least `"1d"`):
    /// raw samples older than this are deleted by the `plan_retention` job, and the
    /// rollups of those days follow at the next refresh. Daily production, emissions,
    /// reports and the audit log are kept. Absent: `[storage] retention` alone applies.
    #[serde(default, with = "humantime_serde")]
    pub retention: Option<Duration>,
}

impl PlanConfig {
    fn limits(&self) -> store::tenants::PlanLimits {
        store::tenants::PlanLimits {
            max_wells: self.max_wells,
            max_gateways: self.max_gateways,
            max_samples_per_day: self.max_samples_per_day,
            api_requests_per_minute: self.api_requests_per_minute,
            retention: self.retention,
        }
    }
}

fn default_plans() -> std::collections::BTreeMap<String, PlanConfig> {
    [("standard".to_owned(), PlanConfig::default())].into()
}

/// `[database]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// PostgreSQL URL, e.g. `postgres://wellpulse@127.0.0.1:5432/wellpulse`; a secret (see
    /// [`secret_setting`]: the value, `{ env = "NAME" }` or `{ file = "/path" }`).
    #[serde(deserialize_with = "secret_setting")]
    pub url: Secret,
    /// Maximum pooled connections.
    #[serde(default = "default_max_connections")]
    pub max_connections: u32,
    /// How long to wait for a pooled connection (or a new one) before failing.
    #[serde(default = "default_acquire_timeout", with = "humantime_serde")]
    pub acquire_timeout: Duration,
}

/// `[broker]`: the ingester's MQTT identity plus exactly one of `[broker.embedded]` and
/// `[broker.external]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrokerConfig {
    /// MQTT client id of this ingester instance; unique per instance.
    pub client_id: String,
    /// MQTT username of this ingester.
    pub username: String,
    /// MQTT password of this ingester; a secret (see [`secret_setting`]).
    #[serde(deserialize_with = "secret_setting")]
    pub password: Secret,
    /// Run rumqttd inside this process.
    pub embedded: Option<EmbeddedBrokerConfig>,
    /// Connect to a broker run elsewhere.
    pub external: Option<ExternalBrokerConfig>,
}

/// `[broker.embedded]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbeddedBrokerConfig {
    /// rumqttd config file (rumqttd's own TOML format), relative to `cloud.toml`.
    pub config: PathBuf,
    /// Name of the plain-TCP MQTT 5 listener (a `[v5.<key>]` table's `name`) the
    /// ingester connects to.
    pub listener: String,
    /// `[broker.embedded.limits]`: the front listener's per-gateway limits.
    #[serde(default)]
    pub limits: FrontLimitsConfig,
    /// `[broker.embedded.listeners.<name>]`: options of the front listener `name` (a
    /// listener of the rumqttd file).
    #[serde(default)]
    pub listeners: std::collections::BTreeMap<String, ListenerConfig>,
}

/// `[broker.embedded.listeners.<name>]`: one front listener's options.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    /// Whether gateways on this TLS listener present a client certificate issued by their
    /// tenant's CA: `"off"` (default), `"optional"` (checked when presented) or
    /// `"required"` (a gateway without a valid one is refused). The password stays
    /// required either way.
    #[serde(default)]
    pub client_certificates: ClientCertificatesName,
}

/// The values of `client_certificates`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientCertificatesName {
    /// Not asked for.
    #[default]
    Off,
    /// Checked when presented.
    Optional,
    /// Required of every gateway.
    Required,
}

impl EmbeddedBrokerConfig {
    /// The front listener's options: `[broker.embedded.limits]` and the listeners'
    /// client certificate settings (checked against the rumqttd file when the broker
    /// starts).
    pub fn front_options(&self) -> broker::FrontOptions {
        broker::FrontOptions {
            client_certificates: self
                .listeners
                .iter()
                .map(|(name, l)| {
                    let mode = match l.client_certificates {
                        ClientCertificatesName::Off => broker::ClientCertificates::Off,
                        ClientCertificatesName::Optional => broker::ClientCertificates::Optional,
                        ClientCertificatesName::Required => broker::ClientCertificates::Required,
                    };
                    (name.clone(), mode)
                })
                .collect(),
            ..self.limits.options()
        }
    }
}

/// `[broker.embedded.limits]`: maps onto [`broker::FrontOptions`] (see there; the
/// defaults are its defaults).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FrontLimitsConfig {
    /// PUBLISH packets per second one gateway may send (sustained); excess is dropped.
    #[serde(default = "default_messages_per_second")]
    pub messages_per_second: u32,
    /// PUBLISH packets one gateway may send at once.
    #[serde(default = "default_message_burst")]
    pub message_burst: u32,
    /// PUBLISH bytes per second one gateway may send (sustained).
    #[serde(default = "default_bytes_per_second")]
    pub bytes_per_second: u64,
    /// PUBLISH bytes one gateway may send at once (at least the largest accepted packet).
    #[serde(default = "default_byte_burst")]
    pub byte_burst: u64,
    /// Consecutive failed logins of one address or username that cost nothing.
    #[serde(default = "default_login_free_failures")]
    pub login_free_failures: u32,
    /// First block after them (then doubling, with jitter).
    #[serde(default = "default_login_backoff_min", with = "humantime_serde")]
    pub login_backoff_min: Duration,
    /// Longest block.
    #[serde(default = "default_login_backoff_max", with = "humantime_serde")]
    pub login_backoff_max: Duration,
}

fn default_messages_per_second() -> u32 {
    broker::FrontOptions::default().messages_per_second
}
fn default_message_burst() -> u32 {
    broker::FrontOptions::default().message_burst
}
fn default_bytes_per_second() -> u64 {
    broker::FrontOptions::default().bytes_per_second
}
fn default_byte_burst() -> u64 {
    broker::FrontOptions::default().byte_burst
}
fn default_login_free_failures() -> u32 {
    broker::FrontOptions::default().login_free_failures
}
fn default_login_backoff_min() -> Duration {
    broker::FrontOptions::default().login_backoff_min
}
fn default_login_backoff_max() -> Duration {
    broker::FrontOptions::default().login_backoff_max
}

impl Default for FrontLimitsConfig {
    fn default() -> Self {
        FrontLimitsConfig::from(&broker::FrontOptions::default())
    }
}

impl From<&broker::FrontOptions> for FrontLimitsConfig {
    fn from(o: &broker::FrontOptions) -> Self {
        FrontLimitsConfig {
            messages_per_second: o.messages_per_second,
            message_burst: o.message_burst,
            bytes_per_second: o.bytes_per_second,
            byte_burst: o.byte_burst,
            login_free_failures: o.login_free_failures,
            login_backoff_min: o.login_backoff_min,
            login_backoff_max: o.login_backoff_max,
        }
    }
}

impl FrontLimitsConfig {
    /// The front listener's options (checked against each listener's packet size when
    /// the broker starts).
    pub fn options(&self) -> broker::FrontOptions {
        broker::FrontOptions {
            messages_per_second: self.messages_per_second,
            message_burst: self.message_burst,
            bytes_per_second: self.bytes_per_second,
            byte_burst: self.byte_burst,
            login_free_failures: self.login_free_failures,
            login_backoff_min: self.login_backoff_min,
            login_backoff_max: self.login_backoff_max,
            client_certificates: std::collections::BTreeMap::new(),
        }
    }
}

/// `[broker.external]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExternalBrokerConfig {
    /// `mqtt://host:port` (plain) or `mqtts://host:port` (TLS); port defaults 1883/8883.
    pub url: String,
    /// PEM CA bundle to verify the broker's certificate (mqtts only); the operating
    /// system's roots when absent. Relative to `cloud.toml`.
    pub ca_file: Option<PathBuf>,
}

/// `[ingest]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestConfig {
    /// Most MQTT messages written in one database transaction. Keep it at most half the
    /// broker's per-client in-flight limit (rumqttd: 100): acks wait for the commit, so
    /// only then can the next round's messages arrive while one round commits.
    #[serde(default = "default_max_batch_messages")]
    pub max_batch_messages: usize,
    /// Longest time a received message waits for more to join its transaction. Under load
    /// rounds fill while the previous one commits, so this only matters at low rates,
    /// where it adds directly to the ack latency.
    #[serde(default = "default_max_batch_delay", with = "humantime_serde")]
    pub max_batch_delay: Duration,
    /// Shared-subscription group: data on `$share/<group>/wp/v1/+/+/data`, births, deaths
    /// and command results on `<group>-birth`, `<group>-death`, `<group>-cmd-result`.
    /// Ingesters in one group split the load; another group receives its own copy.
    #[serde(default = "default_shared_group")]
    pub shared_group: String,
    /// QoS of published acks and commands (0 or 1).
    #[serde(default = "default_ack_qos")]
    pub ack_qos: u8,
    /// MQTT keep-alive interval.
    #[serde(default = "default_keep_alive", with = "humantime_serde")]
    pub keep_alive: Duration,
    /// A live batch whose seq jumps more than this past the previous live seq of the same
    /// boot triggers a rebirth request (should be the agent's in-flight window).
    #[serde(default = "default_seq_gap_window")]
    pub seq_gap_window: u64,
    /// Minimum time between two rebirth requests to one gateway.
    #[serde(default = "default_rebirth_interval", with = "humantime_serde")]
    pub rebirth_min_interval: Duration,
    /// A live batch whose newest sample differs from the receive time by more than this
    /// is flagged as clock skew.
    #[serde(default = "default_skew_threshold", with = "humantime_serde")]
    pub clock_skew_threshold: Duration,
    /// First delay before retrying a failed database operation or MQTT connection.
    #[serde(default = "default_retry_initial", with = "humantime_serde")]
    pub retry_initial: Duration,
    /// Longest delay between retries (the delay doubles up to this).
    #[serde(default = "default_retry_max", with = "humantime_serde")]
    pub retry_max: Duration,
    /// First delay before reconnecting to the MQTT broker (doubles, with jitter).
    #[serde(default = "default_reconnect_min", with = "humantime_serde")]
    pub reconnect_min: Duration,
    /// Longest delay between MQTT reconnect attempts: what a broker restart can cost
    /// before the ingester is subscribed and announces itself online again.
    #[serde(default = "default_reconnect_max", with = "humantime_serde")]
    pub reconnect_max: Duration,
}

/// `[storage]`: maps onto [`store::StorageOptions`] (see there for the trade-offs).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// `"auto"` (TimescaleDB when the extension is available), `"timescaledb"` or
    /// `"postgres"`; used only when the database is first set up.
    #[serde(default = "default_backend")]
    pub backend: BackendName,
    /// TimescaleDB chunk interval.
    #[serde(default = "default_chunk_interval", with = "humantime_serde")]
    pub chunk_interval: Duration,
    /// Compress TimescaleDB chunks older than this (must exceed the agents' backlog age).
    #[serde(default = "default_compress_after", with = "humantime_serde")]
    pub compress_after: Duration,
    /// Drop raw telemetry older than this (`"forever"` keeps it); rollups are kept.
    #[serde(default = "default_retention", deserialize_with = "retention")]
    pub retention: Option<Duration>,
    /// Plain PostgreSQL: daily partitions created ahead of today.
    #[serde(default = "default_partitions_ahead")]
    pub partitions_ahead_days: u32,
}

/// Storage back-end names in `[storage] backend`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendName {
    /// TimescaleDB if available, else plain PostgreSQL.
    Auto,
    /// TimescaleDB or fail.
    Timescaledb,
    /// Plain PostgreSQL.
    Postgres,
}

/// `[maintenance]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceConfig {
    /// How often rollups are refreshed and partitions prepared.
    #[serde(default = "default_maintenance_interval", with = "humantime_serde")]
    pub interval: Duration,
    /// A gateway not heard from for this long is marked offline (covers a lost last will).
    #[serde(default = "default_offline_after", with = "humantime_serde")]
    pub offline_after: Duration,
}

fn default_max_connections() -> u32 {
    10
}
fn default_acquire_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_max_batch_messages() -> usize {
    IngestOptions::default().max_batch_messages
}
fn default_max_batch_delay() -> Duration {
    IngestOptions::default().max_batch_delay
}
fn default_shared_group() -> String {
    IngestOptions::default().shared_group
}
fn default_ack_qos() -> u8 {
    IngestOptions::default().ack_qos
}
fn default_keep_alive() -> Duration {
    IngestOptions::default().keep_alive
}
fn default_seq_gap_window() -> u64 {
    IngestOptions::default().seq_gap_window
}
fn default_rebirth_interval() -> Duration {
    IngestOptions::default().rebirth_min_interval
}
fn default_skew_threshold() -> Duration {
    IngestOptions::default().clock_skew_threshold
}
fn default_retry_initial() -> Duration {
    IngestOptions::default().retry_initial
}
fn default_retry_max() -> Duration {
    IngestOptions::default().retry_max
}
fn default_reconnect_min() -> Duration {
    IngestOptions::default().reconnect_min
}
fn default_reconnect_max() -> Duration {
    IngestOptions::default().reconnect_max
}
fn default_backend() -> BackendName {
    BackendName::Auto
}
fn default_chunk_interval() -> Duration {
    StorageOptions::default().chunk_interval
}
fn default_compress_after() -> Duration {
    StorageOptions::default().compress_after
}
fn default_retention() -> Option<Duration> {
    StorageOptions::default().retention
}
fn default_partitions_ahead() -> u32 {
    StorageOptions::default().partitions_ahead_days
}

/// A secret setting: the value itself (`password = "..."`), an environment variable
/// (`password = { env = "WELLPULSE_INGESTER_PASSWORD" }`) or a file whose content, less a
/// trailing newline, is the secret (`password = { file = "/run/secrets/ingester" }`, a
/// relative path from the working directory). Keeps secrets out of the file and off
/// command lines; an unset variable, unreadable or empty file is a clear load error that
/// names the variable or file, never the secret.
fn secret_setting<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Secret, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Setting {
        Value(String),
        From(SecretFrom),
    }
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct SecretFrom {
        env: Option<String>,
        file: Option<PathBuf>,
    }
    fn err<E: serde::de::Error>(message: impl std::fmt::Display) -> E {
        E::custom(message)
    }
    let value = match Setting::deserialize(d)
        .map_err(|_| err("expected a string, { env = \"NAME\" } or { file = \"/path\" }"))?
    {
        Setting::Value(v) => v,
        Setting::From(SecretFrom {
            env: Some(name),
            file: None,
        }) => std::env::var(&name)
            .map_err(|_| err(format!("environment variable {name} is not set")))?,
        Setting::From(SecretFrom {
            env: None,
            file: Some(path),
        }) => {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| err(format!("cannot read secret file {}: {e}", path.display())))?;
            text.strip_suffix('\n').unwrap_or(&text).to_owned()
        }
        Setting::From(_) => return Err(err("give exactly one of env and file")),
    };
    if value.is_empty() {
        return Err(err("the secret is empty"));
    }
    Ok(Secret::new(value))
}

/// `"forever"` or a humantime duration.
fn retention<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let text = String::deserialize(d)?;
    if text == "forever" {
        return Ok(None);
    }
    humantime::parse_duration(&text)
        .map(Some)
        .map_err(|e| serde::de::Error::custom(format!("{e} (use e.g. \"365d\" or \"forever\")")))
}

fn default_maintenance_interval() -> Duration {
    Duration::from_secs(60)
}
fn default_offline_after() -> Duration {
    Duration::from_secs(300)
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            max_batch_messages: default_max_batch_messages(),
            max_batch_delay: default_max_batch_delay(),
            shared_group: default_shared_group(),
            ack_qos: default_ack_qos(),
            keep_alive: default_keep_alive(),
            seq_gap_window: default_seq_gap_window(),
            rebirth_min_interval: default_rebirth_interval(),
            clock_skew_threshold: default_skew_threshold(),
            retry_initial: default_retry_initial(),
            retry_max: default_retry_max(),
            reconnect_min: default_reconnect_min(),
            reconnect_max: default_reconnect_max(),
        }
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            backend: default_backend(),
            chunk_interval: default_chunk_interval(),
            compress_after: default_compress_after(),
            retention: default_retention(),
            partitions_ahead_days: default_partitions_ahead(),
        }
    }
}

impl StorageConfig {
    /// The storage layer's options.
    pub fn options(&self) -> StorageOptions {
        StorageOptions {
            backend: match self.backend {
                BackendName::Auto => BackendChoice::Auto,
                BackendName::Timescaledb => BackendChoice::Timescale,
                BackendName::Postgres => BackendChoice::Postgres,
            },
            chunk_interval: self.chunk_interval,
            compress_after: self.compress_after,
            retention: self.retention,
            partitions_ahead_days: self.partitions_ahead_days,
        }
    }
}

impl Default for MaintenanceConfig {
    fn default() -> Self {
        MaintenanceConfig {
            interval: default_maintenance_interval(),
            offline_after: default_offline_after(),
        }
    }
}

pub use ingest::MAX_BATCH_MESSAGES;

impl CloudConfig {
    /// The API's options: `[api]` with the plans of `[plans.*]`.
    pub fn api_options(&self) -> api::ApiOptions {
        api::ApiOptions {
            export_dir: self.tenancy.export_dir.clone(),
            deletion_grace: self.tenancy.deletion_grace,
            ca_key: self.tenancy.ca_key.clone(),
            gateway_certificate_validity: self.tenancy.gateway_certificate_validity,
            training: self.detection.training_options(),
            plans: self
                .plans
                .iter()
                .map(|(name, plan)| (name.clone(), plan.limits()))
                .collect(),
            ..self.api.options()
        }
    }

    /// The ingester's options: `[ingest]` with `[detection]` and `[alerts]`.
    pub fn ingest_options(&self) -> ingest::IngestOptions {
        ingest::IngestOptions {
            detection: self.detection.enabled.then(|| ingest::DetectionOptions {
                detect: self.detection.detect_options(),
                policy: self.alerts.policy(),
                backlog_sweep: self.detection.backlog_sweep,
            }),
            ..self.ingest.options()
        }
    }

    /// The lifecycle jobs' options.
    pub fn lifecycle_options(&self) -> alerts::lifecycle::LifecycleOptions {
        alerts::lifecycle::LifecycleOptions {
            policy: self.alerts.policy(),
            escalate_after: self.alerts.escalate_after,
            resend_interval: self.alerts.alertmanager_resend,
            lifecycle_interval: self.alerts.lifecycle_interval,
            silence_interval: self.detection.silence_check,
            detect: self.detection.detect_options(),
            training: self.detection.training_options(),
        }
    }

    /// Reads, parses and validates a config file; relative paths in it are resolved
    /// against the file's directory.
    pub fn load(path: &Path) -> Result<CloudConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        CloudConfig::parse(&text, base).map_err(|e| e.at(path))
    }

    /// Parses and validates config text; relative paths are resolved against `base`.
    pub fn parse(text: &str, base: &Path) -> Result<CloudConfig, ConfigError> {
        let mut cfg: CloudConfig = toml::from_str(text).map_err(|source| ConfigError::Parse {
            path: PathBuf::new(),
            source,
        })?;
        cfg.validate().map_err(|message| ConfigError::Invalid {
            path: PathBuf::new(),
            message,
        })?;
        cfg.resolve_paths(base);
        Ok(cfg)
    }

    fn validate(&self) -> Result<(), String> {
        self.broker.validate()?;
        self.ingest.validate()?;
        self.detection.validate()?;
        self.alerts.validate()?;
        self.storage
            .options()
            .validate()
            .map_err(|e| format!("[storage] {e}"))?;
        if self.database.max_connections == 0 {
            return Err("[database] max_connections must be at least 1".to_owned());
        }
        if self.maintenance.interval.is_zero() {
            return Err("[maintenance] interval must be positive".to_owned());
        }
        self.api.auth.validate()?;
        match url::Url::parse(&self.api.gateway_mqtt_url) {
            Ok(u) if matches!(u.scheme(), "mqtt" | "mqtts") && u.host_str().is_some() => {}
            _ => {
                return Err(format!(
                    "[api] gateway_mqtt_url must be mqtt://host[:port] or mqtts://host[:port], got {:?}",
                    self.api.gateway_mqtt_url
                ));
            }
        }
        for (name, plan) in &self.plans {
            let ok = !name.is_empty()
                && name.len() <= 32
                && name.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-'
                });
            if !ok {
                return Err(format!(
                    "[plans.{name}]: plan names are 1-32 of a-z, 0-9, '_' and '-'"
                ));
            }
            if plan.api_requests_per_minute == Some(0) {
                return Err(format!(
                    "[plans.{name}] api_requests_per_minute must be at least 1"
                ));
            }
            if plan
                .retention
                .is_some_and(|r| r < Duration::from_secs(86_400))
            {
                return Err(format!(
                    "[plans.{name}] retention must be at least 1d (a duration such as \"90d\")"
                ));
            }
        }
        if !self.plans.contains_key(&self.api.default_plan) {
            return Err(format!(
                "[api] default_plan {:?} is not one of [plans.*] ({})",
                self.api.default_plan,
                self.plans.keys().cloned().collect::<Vec<_>>().join(", ")
            ));
        }
        if let Some(mail) = &self.mail {
            mail.validate()?;
        }
        if let Some(billing) = &self.billing {
            billing.validate(&self.plans)?;
        }
        if let Some(key) = &self.tenancy.ca_key {
            store::certificates::CaKey::from_secret(key.expose())
                .map_err(|e| format!("[tenancy] ca_key: {e}"))?;
        }
        let validity = self.tenancy.gateway_certificate_validity;
        if !(Duration::from_secs(3600)..=store::certificates::MAX_VALIDITY).contains(&validity) {
            return Err(format!(
                "[tenancy] gateway_certificate_validity must be from 1h to 3650d, got {}",
                humantime::format_duration(validity)
            ));
        }
        let grace = self.tenancy.deletion_grace;
        if !(Duration::from_secs(3600)..=Duration::from_secs(365 * 24 * 3600)).contains(&grace) {
            return Err(format!(
                "[tenancy] deletion_grace must be from 1h to 365d, got {}",
                humantime::format_duration(grace)
            ));
        }
        Ok(())
    }

    fn resolve_paths(&mut self, base: &Path) {
        let resolve = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        if let Some(e) = &mut self.broker.embedded {
            resolve(&mut e.config);
        }
        resolve(&mut self.tenancy.export_dir);
        if let Some(dir) = &mut self.api.web_dir {
            resolve(dir);
        }
        if let Some(ca) = self
            .broker
            .external
            .as_mut()
            .and_then(|e| e.ca_file.as_mut())
        {
            resolve(ca);
        }
    }
}

impl ConfigError {
    fn at(self, file: &Path) -> ConfigError {
        match self {
            ConfigError::Parse { source, .. } => ConfigError::Parse {
                path: file.to_owned(),
                source,
            },
            ConfigError::Invalid { message, .. } => ConfigError::Invalid {
                path: file.to_owned(),
                message,
            },
            other => other,
        }
    }
}

impl BrokerConfig {
    fn validate(&self) -> Result<(), String> {
        match (&self.embedded, &self.external) {
            (Some(e), None) => {
                // The packet-size bound is checked per listener at start-up.
                e.limits
                    .options()
                    .validate(0)
                    .map_err(|e| format!("[broker.embedded.limits] {e}"))?;
            }
            (None, Some(ext)) => {
                parse_broker_url(&ext.url)?;
            }
            _ => {
                return Err(
                    "[broker] needs exactly one of [broker.embedded] and [broker.external]"
                        .to_owned(),
                );
            }
        }
        if self.client_id.is_empty() || self.username.is_empty() {
            return Err("[broker] client_id and username must not be empty".to_owned());
        }
        Ok(())
    }

    /// Where the ingester connects when the broker is external (`None` when embedded).
    pub fn external_endpoint(&self) -> Option<MqttEndpoint> {
        let ext = self.external.as_ref()?;
        // The URL was checked by `CloudConfig::load`; a hand-built config may still be bad.
        let url = parse_broker_url(&ext.url).ok()?;
        let tls = url.tls.then(|| MqttTls {
            ca_file: ext.ca_file.clone(),
        });
        Some(self.endpoint(url.host, url.port, tls))
    }

    /// Where the ingester connects to the embedded broker's listener at `addr`.
    pub fn embedded_endpoint(&self, addr: std::net::SocketAddr) -> MqttEndpoint {
        self.endpoint(addr.ip().to_string(), addr.port(), None)
    }

    fn endpoint(&self, host: String, port: u16, tls: Option<MqttTls>) -> MqttEndpoint {
        MqttEndpoint {
            host,
            port,
            tls,
            client_id: self.client_id.clone(),
            username: self.username.clone(),
            password: self.password.clone(),
        }
    }
}

impl IngestConfig {
    fn validate(&self) -> Result<(), String> {
        if !(1..=MAX_BATCH_MESSAGES).contains(&self.max_batch_messages) {
            return Err(format!(
                "[ingest] max_batch_messages must be 1..={MAX_BATCH_MESSAGES}, got {}",
                self.max_batch_messages
            ));
        }
        if self.ack_qos > 1 {
            return Err(format!(
                "[ingest] ack_qos must be 0 or 1, got {}",
                self.ack_qos
            ));
        }
        let group_ok =
            !self.shared_group.is_empty() && !self.shared_group.contains(['/', '+', '#']);
        if !group_ok {
            return Err(format!(
                "[ingest] shared_group {:?} must be non-empty without '/', '+' or '#'",
                self.shared_group
            ));
        }
        if self.keep_alive < Duration::from_secs(5) {
            return Err("[ingest] keep_alive must be at least 5s".to_owned());
        }
        if self.retry_initial.is_zero() || self.retry_max < self.retry_initial {
            return Err(
                "[ingest] retry_initial must be positive and not above retry_max".to_owned(),
            );
        }
        if self.reconnect_min.is_zero() || self.reconnect_max < self.reconnect_min {
            return Err(
                "[ingest] reconnect_min must be positive and not above reconnect_max".to_owned(),
            );
        }
        Ok(())
    }

    /// The ingester's runtime options, detection left out (see
    /// [`CloudConfig::ingest_options`]).
    pub fn options(&self) -> IngestOptions {
        IngestOptions {
            detection: None,
            max_batch_messages: self.max_batch_messages,
            max_batch_delay: self.max_batch_delay,
            shared_group: self.shared_group.clone(),
            ack_qos: self.ack_qos,
            keep_alive: self.keep_alive,
            seq_gap_window: self.seq_gap_window,
            rebirth_min_interval: self.rebirth_min_interval,
            clock_skew_threshold: self.clock_skew_threshold,
            retry_initial: self.retry_initial,
            retry_max: self.retry_max,
            reconnect_min: self.reconnect_min,
            reconnect_max: self.reconnect_max,
        }
    }
}

/// A parsed `mqtt://` / `mqtts://` URL.
#[derive(Debug, PartialEq, Eq)]
struct BrokerUrl {
    host: String,
    port: u16,
    tls: bool,
}

fn parse_broker_url(text: &str) -> Result<BrokerUrl, String> {
    let bad = |why: &str| format!("[broker.external] url {text:?}: {why}");
    let url = url::Url::parse(text).map_err(|e| bad(&e.to_string()))?;
    let tls = match url.scheme() {
        "mqtts" => true,
        "mqtt" => false,
        _ => return Err(bad("scheme must be mqtt:// or mqtts://")),
    };
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad(
            "use mqtt[s]://host[:port] only (credentials go in [broker])",
        ));
    }
    if !matches!(url.path(), "" | "/") || url.query().is_some() || url.fragment().is_some() {
        return Err(bad("use mqtt[s]://host[:port] only (no path or query)"));
    }
    let host = match url.host() {
        Some(url::Host::Ipv6(v6)) => v6.to_string(),
        Some(host) => host.to_string(),
        None => return Err(bad("missing host")),
    };
    if host.is_empty() {
        return Err(bad("missing host"));
    }
    let port = url.port().unwrap_or(if tls { 8883 } else { 1883 });
    if port == 0 {
        return Err(bad("port must be 1-65535"));
    }
    Ok(BrokerUrl { host, port, tls })
}

/// `[api]`: the HTTP API served by `wellpulse-cloud run` (see [`api`]).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// Address the API listens on (default loopback only; put TLS in front of it when it
    /// is exposed: bearer tokens must not cross a network in clear). Port 0 picks a free
    /// port (logged at start-up).
    #[serde(default = "default_api_listen")]
    pub listen: std::net::SocketAddr,
    /// Longest a request may take; a slower one is answered 503 `timeout` (100ms-10m).
    #[serde(
        default = "default_api_request_timeout",
        deserialize_with = "api_request_timeout"
    )]
    pub request_timeout: Duration,
    /// Largest `limit` a request may ask for: list items, telemetry points (1-100000).
    #[serde(
        default = "default_api_max_page_size",
        deserialize_with = "api_max_page_size"
    )]
    pub max_page_size: u32,
    /// Sign-in, tokens and rate limits (`[api.auth]`).
    #[serde(default)]
    pub auth: AuthConfig,
    /// The plan of a tenant created without one (must be one of `[plans.*]`).
    #[serde(default = "default_plan_name")]
    pub default_plan: String,
    /// The MQTT URL gateways connect to (`mqtt://host[:port]` or `mqtts://…`), written into
    /// the `agent.toml` the API issues when it provisions a gateway.
    #[serde(default = "default_gateway_mqtt_url")]
    pub gateway_mqtt_url: String,
    /// The web app's built files (`web/dist`, relative to this file), served from the
    /// API's origin for every path outside `/api`; absent: no web app (such paths are
    /// the API's JSON 404).
    #[serde(default)]
    pub web_dir: Option<PathBuf>,
}

fn default_gateway_mqtt_url() -> String {
    api::ApiOptions::default().gateway_mqtt_url
}

fn default_plan_name() -> String {
    "standard".to_owned()
}

/// `[api.auth]`: sessions, sign-in throttling and rate limits. Every field has a default.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// How long an access token works (1m-1d; default 15m).
    #[serde(with = "humantime_serde")]
    pub access_ttl: Duration,
    /// How long a refresh token works, i.e. a session without activity (1h-365d; 30d).
    #[serde(with = "humantime_serde")]
    pub refresh_ttl: Duration,
    /// How long an invitation link works (default 7d).
    #[serde(with = "humantime_serde")]
    pub invitation_ttl: Duration,
    /// How long a password-reset link works (default 1h).
    #[serde(with = "humantime_serde")]
    pub reset_ttl: Duration,
    /// Failed sign-ins of one email before it is locked (default 5).
    pub sign_in_free_failures: u32,
    /// First lock; doubles with each further failure (default 30s).
    #[serde(with = "humantime_serde")]
    pub sign_in_base_lock: Duration,
    /// Longest lock (default 15m).
    #[serde(with = "humantime_serde")]
    pub sign_in_max_lock: Duration,
    /// Requests per minute of one credential (default 1200).
    pub principal_requests_per_minute: u32,
    /// Requests per minute of all credentials of one tenant together (default 6000).
    pub tenant_requests_per_minute: u32,
    /// Sign-in, refresh and reset requests per minute from one address (default 60).
    pub public_requests_per_minute: u32,
}

impl Default for AuthConfig {
    fn default() -> Self {
        let d = api::AuthOptions::default();
        AuthConfig {
            access_ttl: d.access_ttl,
            refresh_ttl: d.refresh_ttl,
            invitation_ttl: d.invitation_ttl,
            reset_ttl: d.reset_ttl,
            sign_in_free_failures: d.sign_in_free_failures,
            sign_in_base_lock: d.sign_in_base_lock,
            sign_in_max_lock: d.sign_in_max_lock,
            principal_requests_per_minute: d.principal_requests_per_minute,
            tenant_requests_per_minute: d.tenant_requests_per_minute,
            public_requests_per_minute: d.public_requests_per_minute,
        }
    }
}

impl AuthConfig {
    fn validate(&self) -> Result<(), String> {
        let within = |name: &str, v: Duration, lo: Duration, hi: Duration| {
            if (lo..=hi).contains(&v) {
                Ok(())
            } else {
                Err(format!(
                    "api.auth.{name} must be from {} to {}, got {}",
                    humantime::format_duration(lo),
                    humantime::format_duration(hi),
                    humantime::format_duration(v)
                ))
            }
        };
        let min = |m: u64| Duration::from_secs(60 * m);
        within("access_ttl", self.access_ttl, min(1), min(24 * 60))?;
        within("refresh_ttl", self.refresh_ttl, min(60), min(365 * 24 * 60))?;
        within(
            "invitation_ttl",
            self.invitation_ttl,
            min(10),
            min(30 * 24 * 60),
        )?;
        within("reset_ttl", self.reset_ttl, min(5), min(24 * 60))?;
        within(
            "sign_in_base_lock",
            self.sign_in_base_lock,
            Duration::from_secs(1),
            min(60),
        )?;
        within(
            "sign_in_max_lock",
            self.sign_in_max_lock,
            self.sign_in_base_lock,
            min(24 * 60),
        )?;
        if self.access_ttl >= self.refresh_ttl {
            return Err("api.auth.access_ttl must be shorter than refresh_ttl".to_owned());
        }
        for (name, v) in [
            (
                "principal_requests_per_minute",
                self.principal_requests_per_minute,
            ),
            (
                "tenant_requests_per_minute",
                self.tenant_requests_per_minute,
            ),
            (
                "public_requests_per_minute",
                self.public_requests_per_minute,
            ),
            ("sign_in_free_failures", self.sign_in_free_failures),
        ] {
            if v == 0 {
                return Err(format!("api.auth.{name} must be at least 1"));
            }
        }
        Ok(())
    }

    /// The API's options.
    pub fn options(&self) -> api::AuthOptions {
        api::AuthOptions {
            access_ttl: self.access_ttl,
            refresh_ttl: self.refresh_ttl,
            invitation_ttl: self.invitation_ttl,
            reset_ttl: self.reset_ttl,
            sign_in_free_failures: self.sign_in_free_failures,
            sign_in_base_lock: self.sign_in_base_lock,
            sign_in_max_lock: self.sign_in_max_lock,
            principal_requests_per_minute: self.principal_requests_per_minute,
            tenant_requests_per_minute: self.tenant_requests_per_minute,
            public_requests_per_minute: self.public_requests_per_minute,
        }
    }
}

/// `[mail]`: the SMTP relay for invitations and password resets. Without it, those
/// requests answer 503 `mail_unavailable`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailConfig {
    /// Relay host.
    pub host: String,
    /// Relay port (default 587).
    #[serde(default = "default_mail_port")]
    pub port: u16,
    /// `starttls` (default), `tls` (SMTPS) or `none` (a relay on loopback or a private
    /// network only).
    #[serde(default = "default_mail_security")]
    pub security: MailSecurity,
    /// SMTP user name, if the relay wants a login.
    pub username: Option<String>,
    /// SMTP password: a value, `{ env = "NAME" }` or `{ file = "/path" }`.
    #[serde(default, deserialize_with = "optional_secret")]
    pub password: Option<Secret>,
    /// `From:` address, e.g. `"WellPulse <no-reply@example.com>"`.
    pub from: String,
    /// Base URL of the web app, for links in messages.
    pub public_url: String,
    /// Longest a send may take (default 30s).
    #[serde(default = "default_mail_timeout", with = "humantime_serde")]
    pub timeout: Duration,
}

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MailSecurity {
    /// No TLS.
    None,
    /// STARTTLS, required.
    Starttls,
    /// TLS from the first byte.
    Tls,
}

fn default_mail_port() -> u16 {
    587
}
fn default_mail_security() -> MailSecurity {
    MailSecurity::Starttls
}
fn default_mail_timeout() -> Duration {
    Duration::from_secs(30)
}

fn optional_secret<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Secret>, D::Error> {
    secret_setting(d).map(Some)
}

impl MailConfig {
    fn validate(&self) -> Result<(), String> {
        if self.host.trim().is_empty() {
            return Err("mail.host must not be empty".to_owned());
        }
        if self.username.is_some() != self.password.is_some() {
            return Err("mail.username and mail.password go together".to_owned());
        }
        if !(self.public_url.starts_with("https://") || self.public_url.starts_with("http://")) {
            return Err(format!(
                "mail.public_url must be an http(s) URL, got {:?}",
                self.public_url
            ));
        }
        Ok(())
    }

    /// The mailer's options.
    pub fn options(&self) -> mail::MailOptions {
        mail::MailOptions {
            host: self.host.clone(),
            port: self.port,
            security: match self.security {
                MailSecurity::None => mail::SmtpSecurity::None,
                MailSecurity::Starttls => mail::SmtpSecurity::StartTls,
                MailSecurity::Tls => mail::SmtpSecurity::Tls,
            },
            credentials: self.username.clone().zip(self.password.clone()),
            from: self.from.clone(),
            public_url: self.public_url.clone(),
            timeout: self.timeout,
        }
    }
}

fn default_api_listen() -> std::net::SocketAddr {
    std::net::SocketAddr::from(([127, 0, 0, 1], 8080))
}
fn default_api_request_timeout() -> Duration {
    api::ApiOptions::default().request_timeout
}
fn default_api_max_page_size() -> u32 {
    api::ApiOptions::default().max_page_size
}

fn api_request_timeout<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let timeout = humantime_serde::deserialize(d)?;
    if !(Duration::from_millis(100)..=Duration::from_secs(600)).contains(&timeout) {
        return Err(serde::de::Error::custom(format!(
            "request_timeout must be from 100ms to 10m, got {}",
            humantime::format_duration(timeout)
        )));
    }
    Ok(timeout)
}

fn api_max_page_size<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let size = u32::deserialize(d)?;
    if !(1..=100_000).contains(&size) {
        return Err(serde::de::Error::custom(format!(
            "max_page_size must be from 1 to 100000, got {size}"
        )));
    }
    Ok(size)
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            listen: default_api_listen(),
            request_timeout: default_api_request_timeout(),
            max_page_size: default_api_max_page_size(),
            auth: AuthConfig::default(),
            default_plan: default_plan_name(),
            gateway_mqtt_url: default_gateway_mqtt_url(),
            web_dir: None,
        }
    }
}

impl ApiConfig {
    /// The API's runtime options.
    pub fn options(&self) -> api::ApiOptions {
        api::ApiOptions {
            request_timeout: self.request_timeout,
            max_page_size: self.max_page_size,
            auth: self.auth.options(),
            default_plan: self.default_plan.clone(),
            gateway_mqtt_url: self.gateway_mqtt_url.clone(),
            web_dir: self.web_dir.clone(),
            ..api::ApiOptions::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        [database]
        url = "postgres://postgres:hunter2@127.0.0.1/wp"
        [broker]
        client_id = "wp-ingester-1"
        username = "wp-ingester-1"
        password = "s3cret"
        [broker.embedded]
        config = "rumqttd.toml"
        listener = "internal"
    "#;

    #[test]
    fn minimal_config_gets_defaults_and_resolves_paths() {
        let cfg = CloudConfig::parse(MINIMAL, Path::new("/etc/wp")).unwrap();
        assert_eq!(cfg.ingest.max_batch_messages, 48);
        assert_eq!(cfg.ingest.shared_group, "ingest");
        assert_eq!(
            cfg.broker.embedded.as_ref().unwrap().config,
            Path::new("/etc/wp/rumqttd.toml")
        );
    }

    #[test]
    fn secrets_never_appear_in_debug_output() {
        let cfg = CloudConfig::parse(MINIMAL, Path::new(".")).unwrap();
        let shown = format!("{cfg:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("s3cret"),
            "{shown}"
        );
    }

    #[test]
    fn invalid_configs_are_rejected_with_a_reason() {
        let cases = [
            (
                MINIMAL.replace("listener = ", "listenr = "),
                "unknown field",
            ),
            (
                format!("{MINIMAL}\n[broker.external]\nurl = \"mqtt://x\""),
                "exactly one",
            ),
            (
                format!("{MINIMAL}\n[ingest]\nmax_batch_messages = 500"),
                "max_batch_messages",
            ),
            (format!("{MINIMAL}\n[ingest]\nack_qos = 2"), "ack_qos"),
            (
                format!("{MINIMAL}\n[ingest]\nshared_group = \"a/b\""),
                "shared_group",
            ),
            (
                format!("{MINIMAL}\n[ingest]\nmax_batch_delay = \"fast\""),
                "max_batch_delay",
            ),
        ];
        for (text, expected) in cases {
            let err = CloudConfig::parse(&text, Path::new(".")).unwrap_err();
            assert!(err.to_string().contains(expected), "{expected}: {err}");
        }
    }

    #[test]
    fn secrets_come_from_the_environment_or_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ingester");
        std::fs::write(&file, "from-file\n").unwrap();
        // Cargo sets CARGO_PKG_NAME for the test process (set_var needs unsafe).
        let text = MINIMAL
            .replace(
                "url = \"postgres://postgres:hunter2@127.0.0.1/wp\"",
                "url = { env = \"CARGO_PKG_NAME\" }",
            )
            .replace(
                "password = \"s3cret\"",
                &format!("password = {{ file = {:?} }}", file.display().to_string()),
            );
        let cfg = CloudConfig::parse(&text, Path::new(".")).unwrap();
        assert_eq!(cfg.database.url.expose(), "server");
        assert_eq!(cfg.broker.password.expose(), "from-file");
        let missing = MINIMAL.replace(
            "url = \"postgres://postgres:hunter2@127.0.0.1/wp\"",
            "url = { env = \"WP_TEST_SURELY_UNSET_VAR\" }",
        );
        let err = CloudConfig::parse(&missing, Path::new(".")).unwrap_err();
        assert!(
            err.to_string()
                .contains("WP_TEST_SURELY_UNSET_VAR is not set"),
            "{err}"
        );
        let both = MINIMAL.replace(
            "password = \"s3cret\"",
            "password = { env = \"A\", file = \"/b\" }",
        );
        let err = CloudConfig::parse(&both, Path::new(".")).unwrap_err();
        assert!(err.to_string().contains("exactly one"), "{err}");
    }

    #[test]
    fn broker_urls_parse() {
        let ok = [
            ("mqtt://localhost", "localhost", 1883, false),
            ("mqtts://mqtt.example.com", "mqtt.example.com", 8883, true),
            ("mqtt://10.0.0.1:1999/", "10.0.0.1", 1999, false),
            ("mqtts://[::1]:8884", "::1", 8884, true),
        ];
        for (url, host, port, tls) in ok {
            let parsed = parse_broker_url(url).unwrap();
            assert_eq!(
                parsed,
                BrokerUrl {
                    host: host.to_owned(),
                    port,
                    tls
                },
                "{url}"
            );
        }
        for url in [
            "tcp://x",
            "mqtt://",
            "mqtt://x:0",
            "mqtt://x:99999",
            "mqtt://u:p@x",
            "mqtt://x/topic",
        ] {
            assert!(parse_broker_url(url).is_err(), "{url}");
        }
    }
}
