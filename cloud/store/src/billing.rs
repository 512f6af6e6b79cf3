//! Billing: each tenant's link to its Stripe customer and subscription with the billing
//! state (`billing_accounts`), Stripe events stored once by id (`stripe_events`), and the
//! usage reported to Stripe Billing Meters per tenant, day and meter
//! (`billing_meter_reports`).
//!
//! The decisions are the `billing` crate's (pure); this module stores them and carries out
//! their effects on the tenant in the same transaction: [`apply`] writes the new account,
//! suspends, reactivates or schedules deletion through [`crate::tenants`], and audits the
//! billing transition and each tenant change with actor `stripe` (an event) or `system`
//! (a job). Callers notify the brokers (`Db::notify_broker_kick`) after the commit when
//! the tenant was suspended.
//!
//! An event is inserted first in its transaction ([`claim_event`]): a replay (or a
//! concurrent delivery of the same event, which waits on the primary key) finds it there
//! and is acknowledged without effect.

use billing::machine::{Account, Effect, InvoiceMark, Status};
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};

use crate::tenants::{self, TenantStatus};
use crate::{DbError, TenantId, collect};

/// A tenant's billing account as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BillingAccount {
    /// Tenant.
    pub tenant: TenantId,
    /// Tenant slug.
    pub slug: String,
    /// Stripe customer (`cus_…`), once created.
    pub customer_id: Option<String>,
    /// The state machine's state.
    pub account: Account,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

fn ts(secs: i64) -> Result<DateTime<Utc>, DbError> {
    Utc.timestamp_opt(secs, 0)
        .single()
        .ok_or_else(|| DbError::invalid("time", format!("{secs} is not a unix time")))
}

fn secs(t: Option<DateTime<Utc>>) -> Option<i64> {
    t.map(|t| t.timestamp())
}

const ACCOUNT_COLUMNS: &str = "b.tenant_id, t.slug, b.customer_id, b.subscription_id,
    b.subscription_created, b.status, b.grace_until, b.delete_at, b.latest_invoice_id,
    b.latest_invoice_created, b.latest_invoice_paid, b.updated_at";

fn account_row(row: &PgRow) -> Result<BillingAccount, sqlx::Error> {
    let raw: String = row.try_get("status")?;
    let status = Status::parse(&raw).ok_or_else(|| sqlx::Error::ColumnDecode {
        index: "status".to_owned(),
        source: format!("unknown billing status {raw:?}").into(),
    })?;
    let latest_id: Option<String> = row.try_get("latest_invoice_id")?;
    let latest_created: Option<DateTime<Utc>> = row.try_get("latest_invoice_created")?;
    let latest_paid: Option<bool> = row.try_get("latest_invoice_paid")?;
    Ok(BillingAccount {
        tenant: row.try_get("tenant_id")?,
        slug: row.try_get("slug")?,
        customer_id: row.try_get("customer_id")?,
        account: Account {
            status,
            subscription: row.try_get("subscription_id")?,
            subscription_created: secs(row.try_get("subscription_created")?),
            grace_until: secs(row.try_get("grace_until")?),
            delete_at: secs(row.try_get("delete_at")?),
            latest_invoice: latest_id.zip(latest_created).map(|(id, c)| InvoiceMark {
                id,
                created: c.timestamp(),
                paid: latest_paid.unwrap_or(false),
            }),
        },
        updated_at: row.try_get("updated_at")?,
    })
}

/// The tenant's billing account, created (pending, no customer) if it has none, locked
/// until the transaction ends (owner connection).
pub async fn lock_account(
    conn: &mut PgConnection,
    tenant: TenantId,
) -> Result<BillingAccount, DbError> {
    sqlx::query("INSERT INTO billing_accounts (tenant_id) VALUES ($1) ON CONFLICT DO NOTHING")
        .bind(tenant)
        .execute(&mut *conn)
        .await?;
    let row = sqlx::query(&format!(
        "SELECT {ACCOUNT_COLUMNS} FROM billing_accounts b JOIN tenants t ON t.id = b.tenant_id
         WHERE b.tenant_id = $1 FOR UPDATE OF b"
    ))
    .bind(tenant)
    .fetch_one(conn)
    .await?;
    Ok(account_row(&row)?)
}

/// The tenant's billing account, if it has one (tenant-scoped transaction or owner).
pub async fn account(
    conn: &mut PgConnection,
    tenant: TenantId,
) -> Result<Option<BillingAccount>, DbError> {
    let row = sqlx::query(&format!(
        "SELECT {ACCOUNT_COLUMNS} FROM billing_accounts b JOIN tenants t ON t.id = b.tenant_id
         WHERE b.tenant_id = $1"
    ))
    .bind(tenant)
    .fetch_optional(conn)
    .await?;
    Ok(row.as_ref().map(account_row).transpose()?)
}

/// The tenant whose Stripe customer this is (owner connection).
pub async fn tenant_of_customer(
    conn: &mut PgConnection,
    customer: &str,
) -> Result<Option<TenantId>, DbError> {
    Ok(
        sqlx::query_scalar("SELECT tenant_id FROM billing_accounts WHERE customer_id = $1")
            .bind(customer)
            .fetch_optional(conn)
            .await?,
    )
}

/// Links the tenant to its Stripe customer (in the transaction holding
/// [`lock_account`]; the caller audits it with its identity). A tenant is linked once:
/// linking another customer is refused.
pub async fn link_customer(
    conn: &mut PgConnection,
    tenant: TenantId,
    customer: &str,
) -> Result<(), DbError> {
    let done = sqlx::query(
        "UPDATE billing_accounts SET customer_id = $2, updated_at = now()
         WHERE tenant_id = $1 AND customer_id IS NULL",
    )
    .bind(tenant)
    .bind(customer)
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() == 0 {
        return Err(DbError::invalid(
            "billing customer",
            "the tenant is already linked to a Stripe customer",
        ));
    }
    Ok(())
}

fn account_json(a: &Account) -> serde_json::Value {
    serde_json::json!({
        "status": a.status.as_str(),
        "subscription_id": a.subscription,
        "grace_until": a.grace_until.and_then(|s| ts(s).ok()),
        "delete_at": a.delete_at.and_then(|s| ts(s).ok()),
        "latest_invoice": a.latest_invoice.as_ref().map(|i| serde_json::json!({
            "id": i.id, "paid": i.paid,
        })),
    })
}

/// What [`apply`] did to the tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Applied {
    /// The tenant was suspended: kick its gateways after the commit.
    pub suspended: bool,
    /// The tenant was reactivated.
    pub reactivated: bool,
    /// The tenant's plan changed (its quotas and rate follow).
    pub plan_changed: bool,
}

/// Stores `after` as the tenant's account and carries out `effects`, auditing the
/// transition (`billing.<transition>`) and each tenant change with `actor` (`stripe` for
/// an event, `system` for a job). Run in the transaction holding [`lock_account`].
pub async fn apply(
    conn: &mut PgConnection,
    current: &BillingAccount,
    after: &Account,
    effects: &[Effect],
    transition: &str,
    actor: &str,
    cause: Option<&str>,
) -> Result<Applied, DbError> {
    let tenant = current.tenant;
    let latest = after.latest_invoice.as_ref();
    sqlx::query(
        "UPDATE billing_accounts SET status = $2, subscription_id = $3,
             subscription_created = $4, grace_until = $5, delete_at = $6,
             latest_invoice_id = $7, latest_invoice_created = $8, latest_invoice_paid = $9,
             updated_at = now()
         WHERE tenant_id = $1",
    )
    .bind(tenant)
    .bind(after.status.as_str())
    .bind(&after.subscription)
    .bind(after.subscription_created.map(ts).transpose()?)
    .bind(after.grace_until.map(ts).transpose()?)
    .bind(after.delete_at.map(ts).transpose()?)
    .bind(latest.map(|l| l.id.clone()))
    .bind(latest.map(|l| ts(l.created)).transpose()?)
    .bind(latest.map(|l| l.paid))
    .execute(&mut *conn)
    .await?;
    let target = format!("billing:{}", current.slug);
    let mut before_json = account_json(&current.account);
    let mut after_json = account_json(after);
    if let Some(cause) = cause {
        before_json["cause"] = cause.into();
        after_json["cause"] = cause.into();
    }
    crate::audit::record(
        &mut *conn,
        &crate::audit::AuditEntry {
            tenant: Some(tenant),
            actor,
            action: &format!("billing.{transition}"),
            target: &target,
            before: Some(before_json),
            after: Some(after_json),
            client_addr: None,
            request_id: None,
        },
    )
    .await?;
    let mut applied = Applied::default();
    let tenant_target = format!("tenant:{}", current.slug);
    for effect in effects {
        let (action, change) = match effect {
            Effect::Suspend => (
                "tenant.suspend",
                tenants::set_tenant_status(conn, &current.slug, TenantStatus::Suspended).await?,
            ),
            Effect::Reactivate => (
                "tenant.reactivate",
                tenants::set_tenant_status(conn, &current.slug, TenantStatus::Active).await?,
            ),
            Effect::ScheduleDeletion(at) => (
                "tenant.schedule_deletion",
                tenants::schedule_deletion(conn, &current.slug, ts(*at)?).await?,
            ),
            Effect::SetPlan(plan) => (
                "tenant.set_plan",
                tenants::set_tenant_plan(conn, &current.slug, plan).await?,
            ),
        };
        let Some((before, after)) = change else {
            return Err(DbError::NotFound(format!("tenant `{}`", current.slug)));
        };
        if before.status == after.status
            && before.deletion_due_at == after.deletion_due_at
            && before.plan == after.plan
        {
            continue;
        }
        applied.suspended |= after.status == TenantStatus::Suspended;
        applied.reactivated |=
            after.status == TenantStatus::Active && before.status != TenantStatus::Active;
        applied.plan_changed |= before.plan != after.plan;
        let view = |t: &tenants::Tenant| {
            serde_json::json!({
                "slug": t.slug, "status": t.status.as_str(), "plan": t.plan,
                "deletion_due_at": t.deletion_due_at,
            })
        };
        crate::audit::record(
            &mut *conn,
            &crate::audit::AuditEntry {
                tenant: Some(tenant),
                actor,
                action,
                target: &tenant_target,
                before: Some(view(&before)),
                after: Some(view(&after)),
                client_addr: None,
                request_id: None,
            },
        )
        .await?;
    }
    Ok(applied)
}

/// Inserts a Stripe event as received, with outcome `received` (owner connection, the
/// webhook's transaction). `false`: it was stored before — a replay, to acknowledge and
/// ignore.
pub async fn claim_event(
    conn: &mut PgConnection,
    id: &str,
    kind: &str,
    created: i64,
    payload: &serde_json::Value,
) -> Result<bool, DbError> {
    let done = sqlx::query(
        "INSERT INTO stripe_events (id, type, created, outcome, payload)
         VALUES ($1, $2, $3, 'received', $4) ON CONFLICT (id) DO NOTHING",
    )
    .bind(id)
    .bind(kind)
    .bind(ts(created)?)
    .bind(payload)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Records what an event did (`applied:<transition>` or `ignored:<why>`) and its tenant.
pub async fn finish_event(
    conn: &mut PgConnection,
    id: &str,
    tenant: Option<TenantId>,
    outcome: &str,
) -> Result<(), DbError> {
    sqlx::query("UPDATE stripe_events SET tenant_id = $2, outcome = $3 WHERE id = $1")
        .bind(id)
        .bind(tenant)
        .bind(outcome)
        .execute(conn)
        .await?;
    Ok(())
}

/// A stored event's outcome, if stored (owner connection).
pub async fn event_outcome(conn: &mut PgConnection, id: &str) -> Result<Option<String>, DbError> {
    Ok(
        sqlx::query_scalar("SELECT outcome FROM stripe_events WHERE id = $1")
            .bind(id)
            .fetch_optional(conn)
            .await?,
    )
}

/// Tenants whose grace period ended at `now` (owner connection).
pub async fn grace_expired(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
) -> Result<Vec<TenantId>, DbError> {
    Ok(sqlx::query_scalar(
        "SELECT tenant_id FROM billing_accounts WHERE status = 'past_due' AND grace_until <= $1
         ORDER BY grace_until",
    )
    .bind(now)
    .fetch_all(conn)
    .await?)
}

/// One tenant-day-meter report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeterReport {
    /// Tenant.
    pub tenant: TenantId,
    /// Tenant slug.
    pub slug: String,
    /// Stripe customer.
    pub customer_id: Option<String>,
    /// UTC day.
    pub day: NaiveDate,
    /// `active_wells` or `samples_over_allowance`.
    pub meter: String,
    /// Value sent (exactly the day's counter).
    pub value: i64,
    /// Stable identifier (a retry counts once at Stripe).
    pub identifier: String,
    /// `pending`, `sent` or `failed`.
    pub status: String,
    /// Attempts so far.
    pub attempts: i32,
    /// What Stripe's summary said for the day, once reconciled.
    pub stripe_value: Option<i64>,
}

const REPORT_COLUMNS: &str = "r.tenant_id, t.slug, b.customer_id, r.day, r.meter, r.value,
    r.identifier, r.status, r.attempts, r.stripe_value";

fn report_row(row: &PgRow) -> Result<MeterReport, sqlx::Error> {
    Ok(MeterReport {
        tenant: row.try_get("tenant_id")?,
        slug: row.try_get("slug")?,
        customer_id: row.try_get("customer_id")?,
        day: row.try_get("day")?,
        meter: row.try_get("meter")?,
        value: row.try_get("value")?,
        identifier: row.try_get("identifier")?,
        status: row.try_get("status")?,
        attempts: row.try_get("attempts")?,
        stripe_value: row.try_get("stripe_value")?,
    })
}

/// A tenant-day of usage to report: the counters of a day with usage, of a tenant linked
/// to a customer and subscribed (owner connection).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageToReport {
    /// Tenant.
    pub tenant: TenantId,
    /// Its plan (the allowance is configuration).
    pub plan: String,
    /// Day.
    pub day: NaiveDate,
    /// `tenant_usage_daily.active_wells`.
    pub active_wells: i64,
    /// `tenant_usage_daily.samples_ingested`.
    pub samples: i64,
}

/// Days from `from` to `to` of subscribed tenants that have no report yet, counted
/// (`usage::refresh_day`) after the day ended.
pub async fn unreported_usage(
    conn: &mut PgConnection,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<UsageToReport>, DbError> {
    let rows = sqlx::query(
        "SELECT u.tenant_id, t.plan, u.day, u.active_wells::bigint AS active_wells,
                u.samples_ingested
         FROM tenant_usage_daily u
         JOIN tenants t ON t.id = u.tenant_id
         JOIN billing_accounts b ON b.tenant_id = u.tenant_id
         WHERE u.day BETWEEN $1 AND $2 AND b.customer_id IS NOT NULL
           AND b.status IN ('active', 'past_due')
           -- Counted after the day ended: its figures are final.
           AND u.updated_at >= (u.day + 1)::timestamp AT TIME ZONE 'UTC'
           AND NOT EXISTS (SELECT 1 FROM billing_meter_reports r
                           WHERE r.tenant_id = u.tenant_id AND r.day = u.day)
         ORDER BY u.day, u.tenant_id",
    )
    .bind(from)
    .bind(to)
    .fetch_all(conn)
    .await?;
    collect(&rows, |r| {
        Ok(UsageToReport {
            tenant: r.try_get("tenant_id")?,
            plan: r.try_get("plan")?,
            day: r.try_get("day")?,
            active_wells: r.try_get("active_wells")?,
            samples: r.try_get("samples_ingested")?,
        })
    })
}

/// Records a report before it is sent (status `pending`); a report already recorded is
/// kept as it is (its value and identifier are fixed once recorded).
pub async fn record_report(
    conn: &mut PgConnection,
    tenant: TenantId,
    day: NaiveDate,
    meter: &str,
    value: i64,
    identifier: &str,
) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO billing_meter_reports (tenant_id, day, meter, value, identifier)
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tenant_id, day, meter) DO NOTHING",
    )
    .bind(tenant)
    .bind(day)
    .bind(meter)
    .bind(value)
    .bind(identifier)
    .execute(conn)
    .await?;
    Ok(())
}

/// Reports not yet sent (pending or failed), oldest first.
pub async fn reports_to_send(
    conn: &mut PgConnection,
    limit: u32,
) -> Result<Vec<MeterReport>, DbError> {
    let rows = sqlx::query(&format!(
        "SELECT {REPORT_COLUMNS} FROM billing_meter_reports r
         JOIN tenants t ON t.id = r.tenant_id JOIN billing_accounts b ON b.tenant_id = r.tenant_id
         WHERE r.status <> 'sent' ORDER BY r.day, r.tenant_id, r.meter LIMIT $1"
    ))
    .bind(i64::from(limit))
    .fetch_all(conn)
    .await?;
    collect(&rows, report_row)
}

/// Marks a report sent, or failed with why (counting the attempt).
pub async fn report_outcome(
    conn: &mut PgConnection,
    identifier: &str,
    error: Option<&str>,
) -> Result<(), DbError> {
    sqlx::query(
        "UPDATE billing_meter_reports
         SET attempts = attempts + 1,
             status = CASE WHEN $2::text IS NULL THEN 'sent' ELSE 'failed' END,
             sent_at = CASE WHEN $2::text IS NULL THEN now() ELSE sent_at END,
             last_error = $2
         WHERE identifier = $1",
    )
    .bind(identifier)
    .bind(error)
    .execute(conn)
    .await?;
    Ok(())
}

/// Reports sent for the days `from..=to` (all tenants, or one), for reconciliation and
/// the admin pages.
pub async fn reports(
    conn: &mut PgConnection,
    tenant: Option<TenantId>,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<MeterReport>, DbError> {
    let rows = sqlx::query(&format!(
        "SELECT {REPORT_COLUMNS} FROM billing_meter_reports r
         JOIN tenants t ON t.id = r.tenant_id JOIN billing_accounts b ON b.tenant_id = r.tenant_id
         WHERE r.day BETWEEN $1 AND $2 AND ($3::bigint IS NULL OR r.tenant_id = $3)
         ORDER BY r.day, t.slug, r.meter"
    ))
    .bind(from)
    .bind(to)
    .bind(tenant)
    .fetch_all(conn)
    .await?;
    collect(&rows, report_row)
}

/// Records what Stripe's meter event summary said for a report.
pub async fn reconciled(
    conn: &mut PgConnection,
    identifier: &str,
    stripe_value: i64,
) -> Result<(), DbError> {
    sqlx::query(
        "UPDATE billing_meter_reports SET stripe_value = $2, reconciled_at = now()
         WHERE identifier = $1",
    )
    .bind(identifier)
    .bind(stripe_value)
    .execute(conn)
    .await?;
    Ok(())
}

/// One tenant's month: what it paid and what it used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantMonth {
    /// Tenant slug.
    pub slug: String,
    /// First day of the month.
    pub month: NaiveDate,
    /// The tenant's plan now.
    pub plan: String,
    /// Billing status now (`none` without an account).
    pub billing_status: String,
    /// Sum of `amount_paid` of the invoices paid that month (Stripe's `invoice.paid` and
    /// `invoice.payment_succeeded` events, each invoice counted once), in the smallest
    /// currency unit.
    pub revenue: i64,
    /// The currency of those invoices (`None` without any).
    pub currency: Option<String>,
    /// Most active wells on a day of the month.
    pub active_wells: i32,
    /// Samples stored that month.
    pub samples: i64,
    /// API calls that month.
    pub api_calls: i64,
}

/// Every tenant's months from `from` (inclusive) to `to` (exclusive), by month then slug
/// (owner connection: platform administrators).
pub async fn tenant_months(
    conn: &mut PgConnection,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<TenantMonth>, DbError> {
    let rows = sqlx::query(
        "WITH used AS (
             SELECT tenant_id, date_trunc('month', day)::date AS month,
                    max(active_wells)::int AS wells, sum(samples_ingested)::bigint AS samples,
                    sum(api_calls)::bigint AS calls
             FROM tenant_usage_daily WHERE day >= $1 AND day < $2 GROUP BY 1, 2
         ), invoices AS (
             -- Stripe sends invoice.paid and invoice.payment_succeeded for one payment:
             -- each invoice counts once.
             SELECT DISTINCT ON (payload #>> '{data,object,id}')
                    tenant_id, date_trunc('month', created AT TIME ZONE 'UTC')::date AS month,
                    CASE WHEN jsonb_typeof(payload #> '{data,object,amount_paid}') = 'number'
                         THEN (payload #>> '{data,object,amount_paid}')::numeric ELSE 0 END
                        AS amount,
                    payload #>> '{data,object,currency}' AS currency
             FROM stripe_events
             WHERE type IN ('invoice.paid', 'invoice.payment_succeeded')
               AND tenant_id IS NOT NULL
               AND created >= $1::date::timestamp AT TIME ZONE 'UTC'
               AND created < $2::date::timestamp AT TIME ZONE 'UTC'
             ORDER BY payload #>> '{data,object,id}', created
         ), paid AS (
             SELECT tenant_id, month, sum(amount)::bigint AS revenue, min(currency) AS currency
             FROM invoices GROUP BY 1, 2
         )
         SELECT t.slug, coalesce(u.month, p.month) AS month, t.plan,
                coalesce(b.status, 'none') AS billing_status,
                coalesce(p.revenue, 0)::bigint AS revenue, p.currency,
                coalesce(u.wells, 0)::int AS wells, coalesce(u.samples, 0)::bigint AS samples,
                coalesce(u.calls, 0)::bigint AS calls
         FROM used u FULL JOIN paid p ON p.tenant_id = u.tenant_id AND p.month = u.month
         JOIN tenants t ON t.id = coalesce(u.tenant_id, p.tenant_id)
         LEFT JOIN billing_accounts b ON b.tenant_id = t.id
         ORDER BY 2, 1",
    )
    .bind(from)
    .bind(to)
    .fetch_all(conn)
    .await?;
    collect(&rows, |r| {
        Ok(TenantMonth {
            slug: r.try_get("slug")?,
            month: r.try_get("month")?,
            plan: r.try_get("plan")?,
            billing_status: r.try_get("billing_status")?,
            revenue: r.try_get("revenue")?,
            currency: r.try_get("currency")?,
            active_wells: r.try_get("wells")?,
            samples: r.try_get("samples")?,
            api_calls: r.try_get("calls")?,
        })
    })
}
