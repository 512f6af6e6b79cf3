//! Billing with Stripe: the webhook (`POST /api/v1/billing/webhook`), a tenant's
//! Checkout and Customer Portal sessions and its billing overview
//! (`…/tenants/{tenant}/billing[/checkout|/portal]`), and the platform's revenue and usage
//! per tenant and month (`GET /api/v1/admin/billing/revenue`, JSON or CSV) with the
//! metering reconciliation (`GET /api/v1/admin/billing/reconciliation`).
//!
//! The webhook has no bearer credential: a delivery is accepted only with a valid
//! `Stripe-Signature` (any configured secret, 5-minute tolerance), else 400
//! `invalid_signature`. In one transaction the event is stored by id (a replay finds it and
//! is acknowledged without effect), the tenant's account is locked, the `billing` state
//! machine decides, and the decision (account, tenant status, audit entries with actor
//! `stripe`) is written. When the machine is in doubt (and for every subscription update: a
//! plan change in the Customer Portal) it fetches the current object from Stripe first; if Stripe cannot be reached the transaction is rolled back and the answer
//! is 503, so Stripe delivers the event again later. A suspended tenant's gateways are
//! disconnected after the commit.
//!
//! Without `[billing]` every operation here answers 503 `billing_unavailable`.

use std::sync::Arc;

use ::billing::machine::{self, Decision, ObjectRef};
use ::billing::{BillingOptions, Event, Stripe};
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use chrono::{Datelike, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use store::DbError;
use store::billing as db;

use crate::access::Caller;
use analytics::reports::ReportMonth;

use crate::extract::{parse_choice, parse_month};
use crate::{ApiError, ApiQuery, ApiState, ErrorResponse, TenantScope};

/// Billing's configuration and client, shared by the handlers.
#[derive(Debug)]
pub(crate) struct Billing {
    pub(crate) options: BillingOptions,
    pub(crate) stripe: Stripe,
}

impl Billing {
    pub(crate) fn new(options: BillingOptions) -> Result<Billing, ::billing::StripeError> {
        let stripe = Stripe::new(options.stripe.clone())?;
        Ok(Billing { options, stripe })
    }
}

pub(crate) fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(webhook))
        .routes(routes!(create_checkout))
        .routes(routes!(create_portal))
        .routes(routes!(billing_overview))
        .routes(routes!(billing_revenue))
        .routes(routes!(billing_reconciliation))
}

fn configured(state: &ApiState) -> Result<&Arc<Billing>, ApiError> {
    state.billing().ok_or_else(|| {
        ApiError::BillingUnavailable(
            "billing is not configured on this server ([billing] in cloud.toml)".to_owned(),
        )
    })
}

fn stripe_failed(e: ::billing::StripeError) -> ApiError {
    tracing::warn!(error = %e, "Stripe call failed");
    ApiError::BillingUnavailable(format!(
        "the payment provider cannot be used right now: {e}"
    ))
}

/// What the webhook did.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookAck {
    /// Always true: the event was received (Stripe stops re-delivering it).
    pub received: bool,
    /// `applied:<transition>`, `ignored:<why>` or `duplicate` (seen before, not applied
    /// again).
    #[schema(example = "applied:payment_failed")]
    pub outcome: String,
}

#[utoipa::path(
    post,
    path = "/api/v1/billing/webhook",
    security(()),
    tag = "billing",
    operation_id = "stripe_webhook",
    request_body(content = serde_json::Value, content_type = "application/json",
        description = "A Stripe event, as Stripe sends it (the raw bytes are what is signed)"),
    params(("Stripe-Signature" = String, Header, description = "`t=<unix seconds>,v1=<hex HMAC-SHA256 of t.body>`")),
    responses(
        (status = 200, description = "Received (applied, ignored, or a duplicate)", body = WebhookAck),
        (status = 400, description = "Missing, garbled, stale or wrong signature, or not a Stripe event", body = ErrorResponse),
        (status = 503, description = "Billing not configured, or Stripe unreachable while deciding (Stripe retries)", body = ErrorResponse),
    )
)]
async fn webhook(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<WebhookAck>, ApiError> {
    let billing = configured(&state)?;
    let signature = match headers.get("stripe-signature") {
        None => None,
        Some(v) => Some(v.to_str().map_err(|_| {
            ApiError::InvalidSignature("Stripe-Signature header is not ASCII".to_owned())
        })?),
    };
    let now = Utc::now().timestamp();
    ::billing::verify(
        signature,
        &body,
        &billing.options.secrets(),
        now,
        billing.options.tolerance_secs,
    )
    .map_err(|e| ApiError::InvalidSignature(e.to_string()))?;
    let event = Event::parse(&body).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let payload: serde_json::Value =
        serde_json::from_slice(&body).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let outcome = apply_event(&state, billing, &event, &payload, now).await?;
    Ok(Json(WebhookAck {
        received: true,
        outcome,
    }))
}

async fn apply_event(
    state: &ApiState,
    billing: &Billing,
    event: &Event,
    payload: &serde_json::Value,
    now: i64,
) -> Result<String, ApiError> {
    let mut tx = state.db().pool().begin().await.map_err(DbError::from)?;
    if !db::claim_event(&mut tx, &event.id, &event.kind, event.created, payload).await? {
        tx.commit().await.map_err(DbError::from)?;
        return Ok("duplicate".to_owned());
    }
    let tenant = match event.object.customer() {
        Some(customer) => db::tenant_of_customer(&mut tx, customer).await?,
        None => None,
    };
    let Some(tenant) = tenant else {
        let outcome = if matches!(event.object, ::billing::Object::Other) {
            "ignored:event type not acted on"
        } else {
            "ignored:no tenant has this customer"
        };
        db::finish_event(&mut tx, &event.id, None, outcome).await?;
        tx.commit().await.map_err(DbError::from)?;
        return Ok(outcome.to_owned());
    };
    let current = db::lock_account(&mut tx, tenant).await?;
    let policy = billing.options.policy;
    let mut decision = machine::apply(&current.account, &event.object, now, policy);
    match &decision {
        Decision::FetchCurrent(ObjectRef::Invoice(id)) => {
            let fetched = billing.stripe.invoice(id).await.map_err(stripe_failed)?;
            let invoice = ::billing::event::invoice(&fetched).map_err(|e| {
                ApiError::BillingUnavailable(format!("the payment provider's invoice: {e}"))
            })?;
            decision = machine::apply_fetched(&current.account, &invoice, now, policy);
        }
        Decision::FetchCurrent(ObjectRef::Subscription(id)) => {
            let fetched = billing
                .stripe
                .subscription(id)
                .await
                .map_err(stripe_failed)?;
            let sub = ::billing::event::subscription(&fetched).map_err(|e| {
                ApiError::BillingUnavailable(format!("the payment provider's subscription: {e}"))
            })?;
            let plan = billing.options.plan_of(&sub.prices);
            decision = machine::apply_subscription(&current.account, &sub, plan);
        }
        _ => {}
    }
    let (outcome, applied) = match decision {
        Decision::Apply {
            account,
            effects,
            transition,
        } => {
            let applied = db::apply(
                &mut tx,
                &current,
                &account,
                &effects,
                transition,
                "stripe",
                Some(&event.id),
            )
            .await?;
            (format!("applied:{transition}"), applied)
        }
        Decision::Ignore(why) => (format!("ignored:{why}"), db::Applied::default()),
        Decision::FetchCurrent(_) => (
            "ignored:still in doubt after fetching".to_owned(),
            db::Applied::default(),
        ),
    };
    db::finish_event(&mut tx, &event.id, Some(tenant), &outcome).await?;
    tx.commit().await.map_err(DbError::from)?;
    if applied.suspended || applied.reactivated || applied.plan_changed {
        state.access().forget();
    }
    if applied.suspended
        && let Err(error) = state.db().notify_broker_kick(&current.slug).await
    {
        tracing::warn!(%error, tenant = %current.slug, "cannot ask the brokers to disconnect");
    }
    tracing::info!(event = %event.id, kind = %event.kind, tenant = %current.slug, %outcome, "Stripe event");
    Ok(outcome)
}

/// The tenant's Stripe customer, created (once: idempotency key per tenant) and linked
/// if it has none.
async fn ensure_customer(
    state: &ApiState,
    billing: &Billing,
    scope: &TenantScope,
    caller: &Caller,
) -> Result<String, ApiError> {
    let mut conn = state.db().pool().acquire().await.map_err(DbError::from)?;
    if let Some(account) = db::account(&mut conn, scope.id).await?
        && let Some(customer) = account.customer_id
    {
        return Ok(customer);
    }
    drop(conn);
    let name = {
        let mut conn = state.db().pool().acquire().await.map_err(DbError::from)?;
        store::tenants::tenant_by_slug(&mut conn, &scope.slug)
            .await?
            .map(|t| t.name)
            .unwrap_or_else(|| scope.slug.clone())
    };
    let customer = billing
        .stripe
        .create_customer(scope.id.0, &scope.slug, &name)
        .await
        .map_err(stripe_failed)?;
    let mut tx = state.db().pool().begin().await.map_err(DbError::from)?;
    let account = db::lock_account(&mut tx, scope.id).await?;
    if let Some(existing) = account.customer_id {
        // Another request linked it meanwhile (the idempotency key made it the same one).
        tx.commit().await.map_err(DbError::from)?;
        return Ok(existing);
    }
    db::link_customer(&mut tx, scope.id, &customer).await?;
    let target = format!("billing:{}", scope.slug);
    store::audit::record(
        &mut tx,
        &caller.audit(
            Some(scope.id),
            "billing.link_customer",
            &target,
            None,
            Some(serde_json::json!({ "customer_id": customer })),
        ),
    )
    .await?;
    tx.commit().await.map_err(DbError::from)?;
    Ok(customer)
}

/// A Stripe-hosted page to send the person to.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionDto {
    /// Session id (`cs_…` or `bps_…`).
    pub id: String,
    /// The page (Stripe Checkout or the Customer Portal).
    pub url: String,
}

fn session_dto(v: &serde_json::Value) -> Result<SessionDto, ApiError> {
    let text = |k: &str| {
        v.get(k)
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
    };
    match (text("id"), text("url")) {
        (Some(id), Some(url)) => Ok(SessionDto { id, url }),
        _ => Err(ApiError::BillingUnavailable(
            "the payment provider answered without a session id and url".to_owned(),
        )),
    }
}

/// What to buy.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckoutRequest {
    /// The plan to subscribe to (default: the tenant's current plan).
    #[schema(example = "standard")]
    pub plan: Option<String>,
}

#[utoipa::path(
    post,
    path = "/api/v1/tenants/{tenant}/billing/checkout",
    security(("bearer" = ["tenant_admin"])),
    tag = "billing",
    operation_id = "create_billing_checkout",
    params(TenantScope),
    request_body(content = Option<CheckoutRequest>, description = "The plan (optional)"),
    responses(
        (status = 200, description = "A Stripe Checkout page to subscribe on", body = SessionDto),
        (status = 400, description = "Unknown or unpurchasable plan", body = ErrorResponse),
        (status = 503, description = "Billing not configured or Stripe unreachable", body = ErrorResponse),
    )
)]
async fn create_checkout(
    State(state): State<ApiState>,
    scope: TenantScope,
    caller: Caller,
    body: Bytes,
) -> Result<Json<SessionDto>, ApiError> {
    let billing = Arc::clone(configured(&state)?);
    let request: CheckoutRequest = if body.iter().all(u8::is_ascii_whitespace) {
        CheckoutRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))?
    };
    let plan = request.plan.unwrap_or_else(|| scope.plan.clone());
    let prices = billing.options.plans.get(&plan).ok_or_else(|| {
        let known: Vec<&str> = billing.options.plans.keys().map(String::as_str).collect();
        ApiError::BadRequest(format!(
            "plan {plan:?} cannot be bought here: the plans with prices are {}",
            known.join(", ")
        ))
    })?;
    let customer = ensure_customer(&state, &billing, &scope, &caller).await?;
    let key = format!("wp-checkout-{}-{}", scope.id, uuid::Uuid::new_v4().simple());
    let session = billing
        .stripe
        .create_checkout_session(
            &customer,
            &scope.slug,
            &prices.base_price,
            &[&prices.active_wells_price, &prices.samples_price],
            &billing::options::for_tenant(&billing.options.success_url, &scope.slug),
            &billing::options::for_tenant(&billing.options.cancel_url, &scope.slug),
            &key,
        )
        .await
        .map_err(stripe_failed)?;
    Ok(Json(session_dto(&session)?))
}

#[utoipa::path(
    post,
    path = "/api/v1/tenants/{tenant}/billing/portal",
    security(("bearer" = ["tenant_admin"])),
    tag = "billing",
    operation_id = "create_billing_portal",
    params(TenantScope),
    responses(
        (status = 200, description = "A Stripe Customer Portal page (payment method, plan, cancel)", body = SessionDto),
        (status = 400, description = "Invalid parameter", body = ErrorResponse),
        (status = 503, description = "Billing not configured or Stripe unreachable", body = ErrorResponse),
    )
)]
async fn create_portal(
    State(state): State<ApiState>,
    scope: TenantScope,
    caller: Caller,
) -> Result<Json<SessionDto>, ApiError> {
    let billing = Arc::clone(configured(&state)?);
    let customer = ensure_customer(&state, &billing, &scope, &caller).await?;
    let key = format!("wp-portal-{}-{}", scope.id, uuid::Uuid::new_v4().simple());
    let session = billing
        .stripe
        .create_portal_session(
            &customer,
            &billing::options::for_tenant(&billing.options.portal_return_url, &scope.slug),
            &key,
        )
        .await
        .map_err(stripe_failed)?;
    Ok(Json(session_dto(&session)?))
}

/// An invoice.
#[derive(Debug, Serialize, ToSchema)]
pub struct InvoiceDto {
    /// `in_…` (absent on the upcoming invoice, which is a preview).
    pub id: Option<String>,
    /// `draft`, `open`, `paid`, `uncollectible`, `void`.
    pub status: Option<String>,
    /// Amount due, smallest currency unit.
    pub amount_due: i64,
    /// Amount paid, smallest currency unit.
    pub amount_paid: i64,
    /// ISO currency (`usd`).
    pub currency: Option<String>,
    /// When Stripe created it (unix seconds).
    pub created: Option<i64>,
    /// Stripe's hosted invoice page.
    pub hosted_invoice_url: Option<String>,
    /// The PDF.
    pub invoice_pdf: Option<String>,
}

fn invoice_dto(v: &serde_json::Value) -> InvoiceDto {
    let text = |k: &str| {
        v.get(k)
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
    };
    let int = |k: &str| v.get(k).and_then(serde_json::Value::as_i64);
    InvoiceDto {
        id: text("id"),
        status: text("status"),
        amount_due: int("amount_due").unwrap_or(0),
        amount_paid: int("amount_paid").unwrap_or(0),
        currency: text("currency"),
        created: int("created"),
        hosted_invoice_url: text("hosted_invoice_url"),
        invoice_pdf: text("invoice_pdf"),
    }
}

/// Usage this month against the plan's quotas.
#[derive(Debug, Serialize, ToSchema)]
pub struct PeriodUsageDto {
    /// First day of the period (the calendar month, UTC).
    pub from: NaiveDate,
    /// Last day counted (today).
    pub to: NaiveDate,
    /// Most active wells on a day.
    pub active_wells: i64,
    /// The plan's well quota.
    pub max_wells: Option<u32>,
    /// Samples stored.
    pub samples: i64,
    /// The plan's daily sample allowance times the days counted.
    pub samples_allowance: Option<u64>,
    /// Samples beyond the daily allowance, summed (what the samples meter bills).
    pub samples_over_allowance: i64,
    /// API calls.
    pub api_calls: i64,
}

/// A tenant's billing at a glance.
#[derive(Debug, Serialize, ToSchema)]
pub struct BillingOverview {
    /// The plan.
    pub plan: String,
    /// `pending` (no subscription yet), `active`, `past_due`, `suspended`, `canceled`.
    pub status: String,
    /// End of the grace period (status `past_due`).
    pub grace_until: Option<chrono::DateTime<Utc>>,
    /// When the data is deleted (status `canceled`).
    pub delete_at: Option<chrono::DateTime<Utc>>,
    /// Whether a Stripe customer is linked.
    pub customer_linked: bool,
    /// Usage this period.
    pub usage: PeriodUsageDto,
    /// Stripe's estimate of the next invoice (absent without a subscription).
    pub upcoming_invoice: Option<InvoiceDto>,
    /// Past invoices, newest first (at most 24).
    pub invoices: Vec<InvoiceDto>,
}

#[utoipa::path(
    get,
    path = "/api/v1/tenants/{tenant}/billing",
    security(("bearer" = ["tenant_admin"])),
    tag = "billing",
    operation_id = "billing_overview",
    params(TenantScope),
    responses(
        (status = 200, description = "Plan, status, usage this period against quota, upcoming invoice, past invoices", body = BillingOverview),
        (status = 400, description = "Invalid parameter", body = ErrorResponse),
        (status = 503, description = "Billing not configured or Stripe unreachable", body = ErrorResponse),
    )
)]
async fn billing_overview(
    State(state): State<ApiState>,
    scope: TenantScope,
) -> Result<Json<BillingOverview>, ApiError> {
    let billing = Arc::clone(configured(&state)?);
    let today = Utc::now().date_naive();
    let from = today.with_day(1).unwrap_or(today);
    let mut tx = scope.begin(state.db()).await?;
    let account = db::account(&mut tx, scope.id).await?;
    let days = store::usage::usage(&mut tx, scope.id, from, today).await?;
    tx.commit().await?;
    let limits = state.options().plan(&scope.plan);
    let allowance = limits.max_samples_per_day;
    let counted = u64::try_from((today - from).num_days() + 1).unwrap_or(1);
    let usage = PeriodUsageDto {
        from,
        to: today,
        active_wells: days
            .iter()
            .map(|d| i64::from(d.active_wells))
            .max()
            .unwrap_or(0),
        max_wells: limits.max_wells,
        samples: days.iter().map(|d| d.samples_ingested).sum(),
        samples_allowance: allowance.map(|a| a.saturating_mul(counted)),
        samples_over_allowance: days
            .iter()
            .map(|d| {
                let a = allowance.map_or(0, |a| i64::try_from(a).unwrap_or(i64::MAX));
                d.samples_ingested.saturating_sub(a).max(0)
            })
            .sum(),
        api_calls: days.iter().map(|d| d.api_calls).sum(),
    };
    let ts = |s: Option<i64>| s.and_then(|s| chrono::DateTime::from_timestamp(s, 0));
    let (status, grace_until, delete_at, customer) = match &account {
        Some(a) => (
            a.account.status.as_str(),
            ts(a.account.grace_until),
            ts(a.account.delete_at),
            a.customer_id.clone(),
        ),
        None => ("pending", None, None, None),
    };
    let (upcoming_invoice, invoices) = match &customer {
        Some(customer) => {
            let list = billing
                .stripe
                .list_invoices(customer, 24)
                .await
                .map_err(stripe_failed)?;
            let upcoming = billing
                .stripe
                .upcoming_invoice(customer)
                .await
                .map_err(stripe_failed)?;
            (
                upcoming.as_ref().map(invoice_dto),
                list.iter().map(invoice_dto).collect(),
            )
        }
        None => (None, Vec::new()),
    };
    Ok(Json(BillingOverview {
        plan: scope.plan.clone(),
        status: status.to_owned(),
        grace_until,
        delete_at,
        customer_linked: customer.is_some(),
        usage,
        upcoming_invoice,
        invoices,
    }))
}

/// Query of the revenue report.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RevenueQuery {
    /// First month, `YYYY-MM` (default: 11 months before `to`).
    #[param(value_type = Option<String>, example = "2026-01")]
    pub from: Option<String>,
    /// Last month, `YYYY-MM`, inclusive (default: this month).
    #[param(value_type = Option<String>, example = "2026-12")]
    pub to: Option<String>,
    /// `json` (default) or `csv`.
    #[param(value_type = Option<String>, example = "csv")]
    pub format: Option<String>,
}

/// One tenant's month.
#[derive(Debug, Serialize, ToSchema)]
pub struct TenantMonthDto {
    /// Tenant.
    pub tenant: String,
    /// `YYYY-MM`.
    pub month: String,
    /// Plan now.
    pub plan: String,
    /// Billing status now.
    pub billing_status: String,
    /// Invoices paid that month, smallest currency unit: the month's recurring revenue.
    pub mrr: i64,
    /// Their currency.
    pub currency: Option<String>,
    /// Most active wells on a day.
    pub active_wells: i32,
    /// Samples stored.
    pub samples: i64,
    /// API calls.
    pub api_calls: i64,
}

/// Revenue and usage per tenant over time.
#[derive(Debug, Serialize, ToSchema)]
pub struct RevenueReport {
    /// First month.
    pub from: String,
    /// Last month.
    pub to: String,
    /// By month, then tenant.
    pub rows: Vec<TenantMonthDto>,
}

fn month_of(d: NaiveDate) -> ReportMonth {
    ReportMonth {
        year: d.year(),
        month: d.month(),
    }
}

fn next_month(m: ReportMonth) -> ReportMonth {
    if m.month == 12 {
        ReportMonth {
            year: m.year + 1,
            month: 1,
        }
    } else {
        ReportMonth {
            year: m.year,
            month: m.month + 1,
        }
    }
}

fn month_param(name: &'static str, raw: &str) -> Result<ReportMonth, ApiError> {
    parse_month(raw).map_err(|e| match e {
        ApiError::InvalidParameter {
            location, problem, ..
        } => ApiError::InvalidParameter {
            location,
            name,
            problem,
        },
        other => other,
    })
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

#[utoipa::path(
    get,
    path = "/api/v1/admin/billing/revenue",
    security(("bearer" = ["platform_admin"])),
    tag = "billing",
    operation_id = "billing_revenue",
    params(RevenueQuery),
    responses(
        (status = 200, description = "Revenue (MRR) and usage per tenant and month: JSON (format=json) or a CSV attachment (format=csv)",
            content(
                (RevenueReport = "application/json"),
                (String = "text/csv"),
            )),
        (status = 400, description = "Invalid parameter", body = ErrorResponse),
    )
)]
async fn billing_revenue(
    State(state): State<ApiState>,
    ApiQuery(query): ApiQuery<RevenueQuery>,
) -> Result<Response, ApiError> {
    let format =
        parse_choice("format", query.format.as_deref(), &["json", "csv"])?.unwrap_or("json");
    let to = match &query.to {
        Some(raw) => month_param("to", raw)?,
        None => month_of(Utc::now().date_naive()),
    };
    let from = match &query.from {
        Some(raw) => month_param("from", raw)?,
        None => {
            let mut m = ReportMonth {
                year: to.year - 1,
                month: to.month,
            };
            m = next_month(m);
            m
        }
    };
    let (start, _) = crate::extract::month_range(from);
    let (_, end) = crate::extract::month_range(to);
    if start >= end {
        return Err(ApiError::query(
            "from",
            format!("must not be after `to` (from {from}, to {to})"),
        ));
    }
    if (end - start).num_days() > 3 * 366 {
        return Err(ApiError::query(
            "from",
            "the range may span at most 36 months",
        ));
    }
    let mut conn = state.db().pool().acquire().await.map_err(DbError::from)?;
    let months = db::tenant_months(&mut conn, start, end).await?;
    drop(conn);
    let rows: Vec<TenantMonthDto> = months
        .into_iter()
        .map(|m| TenantMonthDto {
            tenant: m.slug,
            month: month_of(m.month).to_string(),
            plan: m.plan,
            billing_status: m.billing_status,
            mrr: m.revenue,
            currency: m.currency,
            active_wells: m.active_wells,
            samples: m.samples,
            api_calls: m.api_calls,
        })
        .collect();
    if format == "csv" {
        let mut csv = String::from(
            "tenant,month,plan,billing_status,mrr,currency,active_wells,samples,api_calls\r\n",
        );
        for r in &rows {
            csv.push_str(&format!(
                "{},{},{},{},{},{},{},{},{}\r\n",
                csv_field(&r.tenant),
                r.month,
                csv_field(&r.plan),
                r.billing_status,
                r.mrr,
                r.currency.as_deref().unwrap_or(""),
                r.active_wells,
                r.samples,
                r.api_calls
            ));
        }
        let disposition = format!("attachment; filename=\"revenue_{from}_{to}.csv\"");
        return Ok((
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/csv; charset=utf-8"),
                ),
                (
                    header::CONTENT_DISPOSITION,
                    HeaderValue::from_str(&disposition)
                        .unwrap_or(HeaderValue::from_static("attachment")),
                ),
            ],
            csv,
        )
            .into_response());
    }
    Ok(Json(RevenueReport {
        from: from.to_string(),
        to: to.to_string(),
        rows,
    })
    .into_response())
}

/// Query of the reconciliation report.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ReconciliationQuery {
    /// Month, `YYYY-MM` (default: this month).
    #[param(value_type = Option<String>, example = "2026-12")]
    pub month: Option<String>,
}

/// One tenant-day-meter as reported and as Stripe summed it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReconciliationRow {
    /// Tenant.
    pub tenant: String,
    /// UTC day.
    pub day: NaiveDate,
    /// `active_wells` or `samples_over_allowance`.
    pub meter: String,
    /// What we reported (the day's counter).
    pub reported: i64,
    /// `pending`, `sent` or `failed`.
    pub status: String,
    /// What Stripe's meter event summary says (absent until reconciled).
    pub stripe: Option<i64>,
    /// `reported - stripe` (absent until reconciled).
    pub difference: Option<i64>,
}

/// Metering reconciliation for a month.
#[derive(Debug, Serialize, ToSchema)]
pub struct Reconciliation {
    /// `YYYY-MM`.
    pub month: String,
    /// Rows whose difference is not zero, or not yet sent or reconciled.
    pub open: usize,
    /// Every row.
    pub rows: Vec<ReconciliationRow>,
}

#[utoipa::path(
    get,
    path = "/api/v1/admin/billing/reconciliation",
    security(("bearer" = ["platform_admin"])),
    tag = "billing",
    operation_id = "billing_reconciliation",
    params(ReconciliationQuery),
    responses(
        (status = 200, description = "What was reported to Stripe Billing Meters against what Stripe counted", body = Reconciliation),
        (status = 400, description = "Invalid parameter", body = ErrorResponse),
    )
)]
async fn billing_reconciliation(
    State(state): State<ApiState>,
    ApiQuery(query): ApiQuery<ReconciliationQuery>,
) -> Result<Json<Reconciliation>, ApiError> {
    let month = match &query.month {
        Some(raw) => parse_month(raw)?,
        None => month_of(Utc::now().date_naive()),
    };
    let (start, end) = crate::extract::month_range(month);
    let last = end.pred_opt().unwrap_or(start);
    let mut conn = state.db().pool().acquire().await.map_err(DbError::from)?;
    let reports = db::reports(&mut conn, None, start, last).await?;
    let rows: Vec<ReconciliationRow> = reports
        .into_iter()
        .map(|r| ReconciliationRow {
            difference: r.stripe_value.map(|s| r.value - s),
            tenant: r.slug,
            day: r.day,
            meter: r.meter,
            reported: r.value,
            status: r.status,
            stripe: r.stripe_value,
        })
        .collect();
    let open = rows
        .iter()
        .filter(|r| r.status != "sent" || r.difference != Some(0))
        .count();
    Ok(Json(Reconciliation {
        month: month.to_string(),
        open,
        rows,
    }))
}
