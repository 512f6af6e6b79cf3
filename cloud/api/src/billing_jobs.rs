//! Billing's periodic jobs, registered by the server on the scheduler when `[billing]` is
//! configured (next to the webhook because both carry out the `billing` decisions through
//! `store::billing` with the same Stripe client):
//!
//! - `billing_grace`: a tenant whose grace period ended is suspended (data kept; its people
//!   get 403 `tenant_suspended`, its gateways are disconnected and refused at login),
//!   audited with actor `system`.
//! - `billing_meters`: each completed day's usage counters (`tenant_usage_daily`, once
//!   refreshed after the day ended) of subscribed tenants are recorded as meter reports
//!   (value and identifier fixed from then on) and sent to Stripe Billing Meters; a report
//!   that fails is sent again at the next run under the same identifier, so Stripe counts
//!   it once.
//! - `billing_reconcile`: Stripe's per-day meter event summaries are read back for sent
//!   reports of the last 35 days and stored next to what was sent; platform admins see the
//!   difference (`GET /api/v1/admin/billing/reconciliation`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use ::billing::machine::{self, Decision};
use ::billing::metering;
use ::billing::{BillingOptions, Stripe};
use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use jobs::Job;
use store::billing as db;
use store::tenants::PlanLimits;
use store::{Db, DbError};

/// Why a billing job run failed.
#[derive(Debug, thiserror::Error)]
pub enum BillingJobError {
    /// The database.
    #[error(transparent)]
    Db(#[from] DbError),
    /// Stripe (the client could not be built).
    #[error(transparent)]
    Stripe(#[from] ::billing::StripeError),
}

/// How often each job runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BillingIntervals {
    /// Grace expiry.
    pub grace: Duration,
    /// Meter reporting.
    pub meters: Duration,
    /// Reconciliation.
    pub reconcile: Duration,
}

/// The billing jobs.
pub fn jobs(
    options: BillingOptions,
    plans: BTreeMap<String, PlanLimits>,
    intervals: BillingIntervals,
) -> Result<Vec<Job>, ::billing::StripeError> {
    let stripe = Stripe::new(options.stripe.clone())?;
    let shared = Arc::new((options, stripe, plans));
    let meters = Arc::clone(&shared);
    let reconcile_with = Arc::clone(&shared);
    Ok(vec![
        Job::new("billing_grace", intervals.grace, |db| async move {
            let n = expire_grace(&db, Utc::now()).await?;
            Ok(format!(
                "{n} tenants suspended at the end of their grace period"
            ))
        }),
        Job::new("billing_meters", intervals.meters, move |db| {
            let s = Arc::clone(&meters);
            async move {
                let (options, stripe, plans) = &*s;
                let r = report_usage(&db, options, stripe, plans, Utc::now().date_naive()).await?;
                Ok(format!("{r:?}"))
            }
        }),
        Job::new("billing_reconcile", intervals.reconcile, move |db| {
            let s = Arc::clone(&reconcile_with);
            async move {
                let (options, stripe, _) = &*s;
                let n = reconcile(&db, options, stripe, Utc::now().date_naive()).await?;
                Ok(format!("{n} meter reports reconciled"))
            }
        }),
    ])
}

/// Suspends every tenant whose grace period ended at `now`; returns how many.
pub async fn expire_grace(db: &Db, now: DateTime<Utc>) -> Result<usize, DbError> {
    let mut conn = db.pool().acquire().await?;
    let due = db::grace_expired(&mut conn, now).await?;
    drop(conn);
    let mut suspended = 0;
    for tenant in due {
        let mut tx = db.pool().begin().await?;
        let current = db::lock_account(&mut tx, tenant).await?;
        // Decided again under the lock: a payment may have arrived meanwhile.
        let Decision::Apply {
            account,
            effects,
            transition,
        } = machine::tick(&current.account, now.timestamp())
        else {
            tx.commit().await?;
            continue;
        };
        let applied = db::apply(
            &mut tx, &current, &account, &effects, transition, "system", None,
        )
        .await?;
        tx.commit().await?;
        if applied.suspended {
            suspended += 1;
            tracing::info!(tenant = %current.slug, "grace period ended: tenant suspended");
            if let Err(error) = db.notify_broker_kick(&current.slug).await {
                tracing::warn!(%error, tenant = %current.slug, "cannot ask the brokers to disconnect");
            }
        }
    }
    Ok(suspended)
}

/// What a metering run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MeteringRun {
    /// Reports recorded (tenant-day-meters).
    pub recorded: usize,
    /// Reports sent and accepted.
    pub sent: usize,
    /// Reports that failed (sent again next run).
    pub failed: usize,
}

/// The days metering looks back: Stripe accepts meter events up to 35 days old.
const LOOKBACK_DAYS: i64 = 34;

fn day_start(day: NaiveDate) -> i64 {
    day.and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc().timestamp())
        .unwrap_or(0)
}

/// Records the completed days' usage (before `today`) as meter reports and sends every
/// report not yet accepted.
pub async fn report_usage(
    db: &Db,
    options: &BillingOptions,
    stripe: &Stripe,
    plans: &BTreeMap<String, PlanLimits>,
    today: NaiveDate,
) -> Result<MeteringRun, DbError> {
    let mut run = MeteringRun::default();
    let from = today - TimeDelta::days(LOOKBACK_DAYS);
    let to = today.pred_opt().unwrap_or(today);
    let mut tx = db.pool().begin().await?;
    let meters = options.meters();
    for usage in db::unreported_usage(&mut tx, from, to).await? {
        let allowance = plans.get(&usage.plan).and_then(|p| p.max_samples_per_day);
        for event in metering::day_events(
            &meters,
            usage.tenant.0,
            &usage.day.to_string(),
            usage.active_wells,
            usage.samples,
            allowance,
        ) {
            db::record_report(
                &mut tx,
                usage.tenant,
                usage.day,
                event.meter,
                event.value,
                &event.identifier,
            )
            .await?;
            run.recorded += 1;
        }
    }
    tx.commit().await?;
    let mut conn = db.pool().acquire().await?;
    for report in db::reports_to_send(&mut conn, 1000).await? {
        let Some(customer) = &report.customer_id else {
            continue;
        };
        let event_name = if report.meter == metering::ACTIVE_WELLS {
            &meters.active_wells
        } else {
            &meters.samples_over_allowance
        };
        // Noon of the day: inside the day whatever window Stripe groups by.
        let timestamp = day_start(report.day) + 12 * 3600;
        let outcome = stripe
            .meter_event(
                event_name,
                customer,
                report.value,
                &report.identifier,
                timestamp,
            )
            .await;
        match outcome {
            Ok(_) => {
                db::report_outcome(&mut conn, &report.identifier, None).await?;
                run.sent += 1;
            }
            Err(e) => {
                tracing::warn!(error = %e, identifier = %report.identifier, "meter event not accepted; sent again next run");
                db::report_outcome(&mut conn, &report.identifier, Some(&e.to_string())).await?;
                run.failed += 1;
            }
        }
    }
    Ok(run)
}

/// Reads Stripe's per-day meter summaries back for the sent reports of the last 35 days
/// (before `today`); returns how many reports got a Stripe value.
pub async fn reconcile(
    db: &Db,
    options: &BillingOptions,
    stripe: &Stripe,
    today: NaiveDate,
) -> Result<usize, DbError> {
    let from = today - TimeDelta::days(LOOKBACK_DAYS);
    let mut conn = db.pool().acquire().await?;
    let reports = db::reports(&mut conn, None, from, today).await?;
    // One summary call per (customer, meter) over the days it has.
    let mut groups: BTreeMap<(String, String), Vec<&db::MeterReport>> = BTreeMap::new();
    for r in reports.iter().filter(|r| r.status == "sent") {
        if let Some(customer) = &r.customer_id {
            groups
                .entry((customer.clone(), r.meter.clone()))
                .or_default()
                .push(r);
        }
    }
    let mut reconciled = 0;
    for ((customer, meter), reports) in groups {
        let meter_id = if meter == metering::ACTIVE_WELLS {
            &options.active_wells_meter.id
        } else {
            &options.samples_meter.id
        };
        let first = reports.iter().map(|r| r.day).min().unwrap_or(from);
        let last = reports.iter().map(|r| r.day).max().unwrap_or(from);
        let start = day_start(first);
        let end = day_start(last) + 86_400;
        let summaries = match stripe
            .meter_event_summaries(meter_id, &customer, start, end)
            .await
        {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, %customer, %meter, "meter summaries unavailable; reconciled next run");
                continue;
            }
        };
        for report in reports {
            let day = day_start(report.day);
            // A day without a summary window counted nothing.
            let value: f64 = summaries
                .iter()
                .filter(|s| s.start_time <= day && day < s.end_time)
                .map(|s| s.aggregated_value)
                .sum();
            db::reconciled(&mut conn, &report.identifier, value.round() as i64).await?;
            reconciled += 1;
        }
    }
    Ok(reconciled)
}
