//! Billing through the HTTP API against a fake Stripe (testkit::stripe::FakeStripe, which
//! checks our request bodies against Stripe's documented parameters), with webhook
//! payloads signed by Stripe's official Python library:
//!
//! - signatures: good accepted (either secret during a rotation); tampered body, wrong
//!   secret, a timestamp older than 5 minutes and a missing header refused with 400;
//! - the same event twice is applied once; events out of order end in the right state
//!   (an older invoice never overrides a newer one, a late checkout does not hide a
//!   failure, a failure reported after its invoice was paid is checked with Stripe);
//! - the lifecycle end to end: sign-up through Checkout, payment failure, grace, suspension
//!   (gateways refused, people refused), payment, active again, no data lost;
//! - metering: a meter event whose response was lost is sent again and counted once, a
//!   day's reported usage equals the counters, reconciliation shows no difference;
//! - the tenant's overview, the Customer Portal, and the platform's revenue CSV.

use std::collections::BTreeMap;

use api::ApiOptions;
use billing::BillingOptions;
use chrono::{TimeDelta, Utc};
use serde_json::{Value, json};
use store::identity::Role;
use store::tenants::PlanLimits;
use testkit::api::{Setup, TestApi};
use testkit::stripe::{FakeStripe, event, invoice, sign, stripe_library_accepts};

const SECRET: &str = "whsec_test_current";
const PREVIOUS: &str = "whsec_test_previous";
const GRACE: i64 = 7 * 86_400;

fn options(stripe_url: &str) -> BillingOptions {
    let mut options = testkit::stripe::billing_options(stripe_url, &[SECRET, PREVIOUS]);
    options.plans.insert(
        "pro".to_owned(),
        billing::PlanPrices {
            base_price: "price_pro_base".into(),
            active_wells_price: "price_pro_wells".into(),
            samples_price: "price_pro_samples".into(),
            monthly_fee: 99_900,
        },
    );
    options
}

fn plans() -> BTreeMap<String, PlanLimits> {
    [
        (
            "standard".to_owned(),
            PlanLimits {
                max_samples_per_day: Some(1_000),
                ..PlanLimits::default()
            },
        ),
        ("pro".to_owned(), PlanLimits::default()),
    ]
    .into()
}

async fn start(prefix: &str) -> (TestApi, FakeStripe) {
    let fake = FakeStripe::start(&testkit::stripe::FAKE_METERS).await;
    let api = TestApi::with(
        prefix,
        Setup {
            options: ApiOptions {
                plans: plans(),
                ..ApiOptions::default()
            },
            billing: Some(options(&fake.url())),
            ..Setup::default()
        },
    )
    .await;
    (api, fake)
}

fn checkout_completed(customer: &str, created: i64) -> Value {
    testkit::stripe::checkout_completed(&format!("cs_{created}"), customer, "acme", created)
}

async fn deliver_signed(
    api: &TestApi,
    body: &[u8],
    header: Option<&str>,
) -> testkit::http::Response {
    let mut headers = vec![("content-type", "application/json")];
    if let Some(h) = header {
        headers.push(("stripe-signature", h));
    }
    testkit::http::send(
        api.addr,
        "POST",
        "/api/v1/billing/webhook",
        &headers,
        Some(body),
    )
    .await
}

/// Delivers `body` signed now by Stripe's library; returns the outcome.
async fn deliver(api: &TestApi, body: &[u8]) -> String {
    let r = testkit::stripe::deliver(api.addr, body, SECRET).await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["outcome"].as_str().unwrap().to_owned()
}

async fn link(db: &store::Db, tenant: store::TenantId, customer: &str) {
    let mut tx = db.pool().begin().await.unwrap();
    store::billing::lock_account(&mut tx, tenant).await.unwrap();
    store::billing::link_customer(&mut tx, tenant, customer)
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

async fn billing_status(db: &store::Db, tenant: store::TenantId) -> String {
    let mut conn = db.pool().acquire().await.unwrap();
    store::billing::account(&mut conn, tenant)
        .await
        .unwrap()
        .map(|a| a.account.status.as_str().to_owned())
        .unwrap_or_default()
}

async fn audit_count(db: &store::Db, action: &str, actor: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action = $1 AND actor = $2")
        .bind(action)
        .bind(actor)
        .fetch_one(db.pool())
        .await
        .unwrap()
}

#[tokio::test]
async fn only_deliveries_signed_with_a_current_secret_within_five_minutes_are_accepted() {
    let (api, _fake) = start("bill_sig").await;
    let now = Utc::now().timestamp();
    let body = event(
        "evt_sig1",
        "customer.created",
        now,
        json!({ "id": "cus_x" }),
    );
    // Stripe's own library agrees with the header it made (sanity of the helper).
    let good = sign(&body, SECRET, now).await;
    assert!(stripe_library_accepts(&body, &good, SECRET).await);

    let r = deliver_signed(&api, &body, Some(&good)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["received"], true);
    // The previous secret still verifies during a rotation.
    let body2 = event(
        "evt_sig2",
        "customer.created",
        now,
        json!({ "id": "cus_x" }),
    );
    let rotated = sign(&body2, PREVIOUS, now).await;
    assert_eq!(
        deliver_signed(&api, &body2, Some(&rotated)).await.status,
        200
    );

    let mut tampered = body.clone();
    let at = tampered.len() - 3;
    tampered[at] ^= 0x01;
    let refused = [
        ("tampered body", tampered, Some(good.clone())),
        (
            "wrong secret",
            body.clone(),
            Some(sign(&body, "whsec_someone_else", now).await),
        ),
        (
            "older than five minutes",
            body.clone(),
            Some(sign(&body, SECRET, now - 301).await),
        ),
        ("missing header", body.clone(), None),
        (
            "garbled header",
            body.clone(),
            Some("t=abc,v1=zz".to_owned()),
        ),
    ];
    for (what, payload, header) in refused {
        let r = deliver_signed(&api, &payload, header.as_deref()).await;
        assert_eq!(r.status, 400, "{what}: {}", r.text());
        assert_eq!(r.error_code(), "invalid_signature", "{what}");
    }
    // A signed body that is not a Stripe event is a 400 too, never a 5xx.
    let junk = b"{\"hello\":1}".to_vec();
    let header = sign(&junk, SECRET, now).await;
    let r = deliver_signed(&api, &junk, Some(&header)).await;
    assert_eq!(r.status, 400, "{}", r.text());
    api.finish().await;
}

#[tokio::test]
async fn the_same_event_twice_is_applied_once() {
    let (api, _fake) = start("bill_once").await;
    let f = testkit::db::fixture(&api.db, "acme").await;
    link(&api.db, f.tenant, "cus_once").await;
    let now = Utc::now().timestamp();
    let checkout = event(
        "evt_once_checkout",
        "checkout.session.completed",
        now,
        checkout_completed("cus_once", now - 10),
    );
    assert_eq!(deliver(&api, &checkout).await, "applied:activate");
    let failed = event(
        "evt_once_failed",
        "invoice.payment_failed",
        now,
        invoice("in_1", "cus_once", now - 5, "open", 4_990),
    );
    assert_eq!(deliver(&api, &failed).await, "applied:payment_failed");
    assert_eq!(deliver(&api, &failed).await, "duplicate");
    assert_eq!(
        audit_count(&api.db, "billing.payment_failed", "stripe").await,
        1
    );
    assert_eq!(billing_status(&api.db, f.tenant).await, "past_due");
    // An event for a customer no tenant has is acknowledged and ignored.
    let stranger = event(
        "evt_stranger",
        "invoice.paid",
        now,
        invoice("in_9", "cus_nobody", now, "paid", 1),
    );
    assert_eq!(
        deliver(&api, &stranger).await,
        "ignored:no tenant has this customer"
    );
    api.finish().await;
}

#[tokio::test]
async fn events_out_of_order_end_in_the_right_state() {
    let (api, fake) = start("bill_order").await;
    let f = testkit::db::fixture(&api.db, "acme").await;
    link(&api.db, f.tenant, "cus_order").await;
    let now = Utc::now().timestamp();
    // The newer invoice failed; the older one's payment and the checkout arrive late.
    let failed_new = event(
        "evt_o1",
        "invoice.payment_failed",
        now,
        invoice("in_new", "cus_order", now - 100, "open", 4_990),
    );
    let paid_old = event(
        "evt_o2",
        "invoice.paid",
        now,
        invoice("in_old", "cus_order", now - 2_000, "paid", 4_990),
    );
    let checkout = event(
        "evt_o3",
        "checkout.session.completed",
        now,
        checkout_completed("cus_order", now - 3_000),
    );
    assert_eq!(deliver(&api, &failed_new).await, "applied:payment_failed");
    assert_eq!(
        deliver(&api, &paid_old).await,
        "ignored:older than the newest invoice applied"
    );
    assert_eq!(deliver(&api, &checkout).await, "applied:link");
    assert_eq!(billing_status(&api.db, f.tenant).await, "past_due");

    // The newer invoice is paid; its failure is then reported again, late: the machine
    // asks Stripe for the invoice, which says paid.
    let paid_new = event(
        "evt_o4",
        "invoice.paid",
        now,
        invoice("in_new", "cus_order", now - 100, "paid", 4_990),
    );
    assert_eq!(deliver(&api, &paid_new).await, "applied:paid");
    fake.set_invoice(invoice("in_new", "cus_order", now - 100, "paid", 4_990));
    let late_failure = event(
        "evt_o5",
        "invoice.payment_failed",
        now,
        invoice("in_new", "cus_order", now - 100, "open", 4_990),
    );
    assert_eq!(
        deliver(&api, &late_failure).await,
        "ignored:invoice already applied"
    );
    assert!(
        fake.requests()
            .iter()
            .any(|r| r.method == "GET" && r.path == "/v1/invoices/in_new"),
        "the current invoice was fetched"
    );
    assert_eq!(billing_status(&api.db, f.tenant).await, "active");
    api.finish().await;
}

async fn counts(db: &store::Db, tenant: store::TenantId) -> Vec<i64> {
    let mut out = Vec::new();
    for table in [
        "sites",
        "wells",
        "gateways",
        "devices",
        "series",
        "ingested_batches",
    ] {
        out.push(
            sqlx::query_scalar(&format!(
                "SELECT count(*) FROM {table} WHERE tenant_id = $1"
            ))
            .bind(tenant)
            .fetch_one(db.pool())
            .await
            .unwrap(),
        );
    }
    out.push(
        sqlx::query_scalar(
            "SELECT count(*) FROM telemetry WHERE series_id IN (SELECT id FROM series WHERE tenant_id = $1)",
        )
        .bind(tenant)
        .fetch_one(db.pool())
        .await
        .unwrap(),
    );
    out
}

#[tokio::test]
async fn a_tenant_that_stops_paying_is_suspended_after_grace_and_back_when_it_pays() {
    let (api, fake) = start("bill_life").await;
    // A tenant using the product: wells, gateways, devices and stored telemetry.
    let fleet = testkit::api::seed(&api.db, 5, 60).await;
    let site: i64 = sqlx::query_scalar("SELECT min(id) FROM sites WHERE tenant_id = $1")
        .bind(fleet.acme)
        .fetch_one(api.db.pool())
        .await
        .unwrap();
    let secret = store::registry::generate_gateway_secret();
    api.db
        .create_gateway(fleet.acme, store::SiteId(site), "gw-bill", &secret)
        .await
        .unwrap();
    struct Tenant {
        tenant: store::TenantId,
        secret: String,
    }
    let f = Tenant {
        tenant: fleet.acme,
        secret,
    };
    let admin = testkit::auth::member_token(&api.db, f.tenant, Role::TenantAdmin).await;

    // Sign-up: Checkout creates the customer once and a subscription session.
    let r = api
        .request_as(
            &admin,
            "POST",
            "/api/v1/tenants/acme/billing/checkout",
            Some(&json!({})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.json()["url"].as_str().unwrap().starts_with("https://"));
    let customer = {
        let mut conn = api.db.pool().acquire().await.unwrap();
        store::billing::account(&mut conn, f.tenant)
            .await
            .unwrap()
            .unwrap()
            .customer_id
            .unwrap()
    };
    let now = Utc::now().timestamp();
    let signed_up = event(
        "evt_l1",
        "checkout.session.completed",
        now,
        checkout_completed(&customer, now - 60),
    );
    assert_eq!(deliver(&api, &signed_up).await, "applied:activate");
    let first_paid = event(
        "evt_l2",
        "invoice.paid",
        now,
        invoice("in_l1", &customer, now - 50, "paid", 49_900),
    );
    assert_eq!(deliver(&api, &first_paid).await, "applied:paid");
    let before = counts(&api.db, f.tenant).await;
    assert!(
        api.db
            .gateway_may_log_in("acme", "gw-bill", &f.secret)
            .await
            .unwrap()
    );

    // The next payment fails: grace, the tenant keeps working.
    let failed = event(
        "evt_l3",
        "invoice.payment_failed",
        now,
        invoice("in_l2", &customer, now - 40, "open", 49_900),
    );
    assert_eq!(deliver(&api, &failed).await, "applied:payment_failed");
    assert_eq!(billing_status(&api.db, f.tenant).await, "past_due");
    let r = api
        .request_as(&admin, "GET", "/api/v1/tenants/acme/billing", None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["status"], "past_due");
    assert!(r.json()["grace_until"].is_string());
    assert_eq!(
        api::billing_jobs::expire_grace(&api.db, Utc::now())
            .await
            .unwrap(),
        0
    );

    // Grace ends: suspended, gateways and people refused, data kept.
    let after_grace = Utc::now() + TimeDelta::seconds(GRACE + 60);
    assert_eq!(
        api::billing_jobs::expire_grace(&api.db, after_grace)
            .await
            .unwrap(),
        1
    );
    assert_eq!(billing_status(&api.db, f.tenant).await, "suspended");
    assert!(
        !api.db
            .gateway_may_log_in("acme", "gw-bill", &f.secret)
            .await
            .unwrap(),
        "a suspended tenant's gateway is refused"
    );
    let r = api
        .request_as(&admin, "GET", "/api/v1/tenants/acme/wells", None)
        .await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(r.error_code(), "tenant_suspended");
    assert_eq!(
        audit_count(&api.db, "billing.grace_expired", "system").await,
        1
    );
    assert_eq!(audit_count(&api.db, "tenant.suspend", "system").await, 1);

    // It pays: active again, gateways back, nothing lost.
    let paid = event(
        "evt_l4",
        "invoice.paid",
        now,
        invoice("in_l2", &customer, now - 40, "paid", 49_900),
    );
    assert_eq!(deliver(&api, &paid).await, "applied:reactivate");
    assert_eq!(billing_status(&api.db, f.tenant).await, "active");
    assert!(
        api.db
            .gateway_may_log_in("acme", "gw-bill", &f.secret)
            .await
            .unwrap()
    );
    let r = api
        .request_as(&admin, "GET", "/api/v1/tenants/acme/wells", None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(counts(&api.db, f.tenant).await, before, "no data lost");
    assert_eq!(audit_count(&api.db, "tenant.reactivate", "stripe").await, 1);

    // The Checkout request had the documented parameters: one customer, created once.
    let requests = fake.requests();
    let customers: Vec<_> = requests
        .iter()
        .filter(|r| r.path == "/v1/customers")
        .collect();
    assert_eq!(customers.len(), 1);
    assert_eq!(
        customers[0].idempotency_key.as_deref(),
        Some(format!("wp-customer-{}", f.tenant).as_str())
    );
    let checkout = requests
        .iter()
        .find(|r| r.path == "/v1/checkout/sessions")
        .unwrap();
    assert_eq!(checkout.param("mode"), Some("subscription"));
    assert_eq!(checkout.param("customer"), Some(customer.as_str()));
    assert_eq!(checkout.param("client_reference_id"), Some("acme"));
    // Stripe's pages send the customer back to this tenant's billing page.
    assert_eq!(
        checkout.param("success_url"),
        Some(
            "https://wellpulse.test/t/acme/admin/billing?checkout=done&session={CHECKOUT_SESSION_ID}"
        )
    );
    assert_eq!(
        checkout.param("cancel_url"),
        Some("https://wellpulse.test/t/acme/admin/billing?checkout=cancelled")
    );
    assert_eq!(
        checkout.param("line_items[0][price]"),
        Some("price_standard_base")
    );
    assert_eq!(checkout.param("line_items[0][quantity]"), Some("1"));
    assert_eq!(
        checkout.param("line_items[1][price]"),
        Some("price_standard_wells")
    );
    assert_eq!(
        checkout.param("line_items[1][quantity]"),
        None,
        "metered: no quantity"
    );
    assert!(checkout.idempotency_key.is_some());
    assert!(requests.iter().all(|r| r.authorized
        && r.stripe_version.as_deref() == Some(billing::client::DEFAULT_API_VERSION)));
    api.finish().await;
}

#[tokio::test]
async fn a_meter_event_sent_twice_counts_once_and_a_day_reports_its_counters_exactly() {
    let (api, fake) = start("bill_meter").await;
    let f = testkit::db::fixture(&api.db, "acme").await;
    link(&api.db, f.tenant, "cus_meter").await;
    let now = Utc::now().timestamp();
    let checkout = event(
        "evt_m1",
        "checkout.session.completed",
        now,
        checkout_completed("cus_meter", now - 60),
    );
    assert_eq!(deliver(&api, &checkout).await, "applied:activate");
    // Two finished days of counters (refreshed after each day ended), and today's.
    let today = Utc::now().date_naive();
    let days = [
        (today - TimeDelta::days(2), 3, 1_500_i64),
        (today - TimeDelta::days(1), 4, 800),
        (today, 5, 9_999),
    ];
    for (day, wells, samples) in days {
        sqlx::query(
            "INSERT INTO tenant_usage_daily (tenant_id, day, active_wells, samples_ingested,
                                             api_calls, updated_at)
             VALUES ($1, $2, $3, $4, 7, now())",
        )
        .bind(f.tenant)
        .bind(day)
        .bind(wells)
        .bind(samples)
        .execute(api.db.pool())
        .await
        .unwrap();
    }
    let billing = options(&fake.url());
    let stripe = billing::Stripe::new(billing.stripe.clone()).unwrap();
    // The first response is lost after Stripe counted the event.
    fake.lose_meter_responses(1);
    let run = api::billing_jobs::report_usage(&api.db, &billing, &stripe, &plans(), today)
        .await
        .unwrap();
    assert_eq!((run.recorded, run.sent, run.failed), (4, 3, 1));
    let run = api::billing_jobs::report_usage(&api.db, &billing, &stripe, &plans(), today)
        .await
        .unwrap();
    assert_eq!(
        (run.recorded, run.sent, run.failed),
        (0, 1, 0),
        "the failed one again"
    );
    let sent_meter_events = fake
        .requests()
        .iter()
        .filter(|r| r.path == "/v1/billing/meter_events")
        .count();
    assert_eq!(sent_meter_events, 5, "one event was sent twice");
    // Counted once each: exactly the counters (samples beyond the 1,000 allowance).
    let mut counted: Vec<(String, i64)> = fake
        .counted()
        .into_iter()
        .map(|e| (e.event_name, e.value))
        .collect();
    counted.sort();
    assert_eq!(
        counted,
        vec![
            ("wellpulse_active_wells".to_owned(), 3),
            ("wellpulse_active_wells".to_owned(), 4),
            ("wellpulse_samples".to_owned(), 0),
            ("wellpulse_samples".to_owned(), 500),
        ]
    );
    // Today is not reported (not finished).
    assert!(
        fake.counted()
            .iter()
            .all(|e| e.value != 5 && e.value != 8_999)
    );

    // Reconciliation: Stripe's summaries equal what was sent.
    let n = api::billing_jobs::reconcile(&api.db, &billing, &stripe, today)
        .await
        .unwrap();
    assert_eq!(n, 4);
    let month = format!("{}", (today - TimeDelta::days(2)).format("%Y-%m"));
    let r = api
        .get(&format!(
            "/api/v1/admin/billing/reconciliation?month={month}"
        ))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    for row in r.json()["rows"].as_array().unwrap() {
        assert_eq!(row["difference"], 0, "{row}");
        assert_eq!(row["status"], "sent");
    }
    let summaries = fake
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/event_summaries"))
        .collect::<Vec<_>>();
    assert!(!summaries.is_empty());
    assert!(
        summaries
            .iter()
            .all(|r| r.param("value_grouping_window") == Some("day"))
    );
    api.finish().await;
}

#[tokio::test]
async fn the_overview_portal_and_revenue_report_answer() {
    let (api, fake) = start("bill_views").await;
    let f = testkit::db::fixture(&api.db, "acme").await;
    let admin = testkit::auth::member_token(&api.db, f.tenant, Role::TenantAdmin).await;
    // Before any customer: pending, no invoices, no Stripe call needed.
    let r = api
        .request_as(&admin, "GET", "/api/v1/tenants/acme/billing", None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["status"], "pending");
    assert_eq!(r.json()["customer_linked"], false);

    let r = api
        .request_as(&admin, "POST", "/api/v1/tenants/acme/billing/portal", None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let portal = fake
        .requests()
        .into_iter()
        .find(|r| r.path == "/v1/billing_portal/sessions")
        .unwrap();
    assert_eq!(
        portal.param("return_url"),
        Some("https://wellpulse.test/t/acme/admin/billing")
    );
    let customer = portal.param("customer").unwrap().to_owned();

    let now = Utc::now().timestamp();
    fake.set_invoice(invoice("in_v1", &customer, now - 10, "paid", 49_900));
    let paid = event(
        "evt_v1",
        "invoice.paid",
        now,
        invoice("in_v1", &customer, now - 10, "paid", 49_900),
    );
    assert_eq!(deliver(&api, &paid).await, "applied:paid");
    let r = api
        .request_as(&admin, "GET", "/api/v1/tenants/acme/billing", None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.json();
    assert_eq!(body["status"], "active");
    assert_eq!(
        body["invoices"][0]["hosted_invoice_url"],
        "https://invoice.stripe.test/in_v1"
    );
    assert!(body["upcoming_invoice"].is_null());

    let month = Utc::now().format("%Y-%m").to_string();
    let r = api
        .get(&format!(
            "/api/v1/admin/billing/revenue?from={month}&to={month}&format=csv"
        ))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.header("content-type").unwrap().starts_with("text/csv"));
    let csv = r.text();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("tenant,month,plan,billing_status,mrr,currency,active_wells,samples,api_calls")
    );
    assert_eq!(
        lines.next(),
        Some(format!("acme,{month},standard,active,49900,usd,0,0,0").as_str())
    );
    let r = api.get("/api/v1/admin/billing/revenue?from=2026-13").await;
    assert_eq!(r.status, 400);
    // A tenant admin is not a platform admin.
    let r = api
        .request_as(&admin, "GET", "/api/v1/admin/billing/revenue", None)
        .await;
    assert_eq!(r.status, 403);
    api.finish().await;
}

#[tokio::test]
async fn without_billing_configured_its_operations_answer_503() {
    let api = TestApi::start("bill_off").await;
    let f = testkit::db::fixture(&api.db, "acme").await;
    let admin = testkit::auth::member_token(&api.db, f.tenant, Role::TenantAdmin).await;
    let r = api
        .request_as(&admin, "GET", "/api/v1/tenants/acme/billing", None)
        .await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.error_code(), "billing_unavailable");
    let r = testkit::http::post_json(api.addr, "/api/v1/billing/webhook", Some(&json!({}))).await;
    assert_eq!(r.status, 503);
    api.finish().await;
}

#[tokio::test]
async fn the_client_retries_a_lost_response_with_the_same_identifier_and_stripe_counts_once() {
    let fake = FakeStripe::start(&testkit::stripe::FAKE_METERS).await;
    let mut options = options(&fake.url());
    options.stripe.max_attempts = 3;
    let stripe = billing::Stripe::new(options.stripe.clone()).unwrap();
    fake.lose_meter_responses(2);
    let at = Utc::now().timestamp() - 3600;
    stripe
        .meter_event(
            "wellpulse_samples",
            "cus_retry",
            42,
            "wp-1-2026-12-06-samples",
            at,
        )
        .await
        .expect("the third attempt is answered");
    let attempts: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r.path == "/v1/billing/meter_events")
        .collect();
    assert_eq!(attempts.len(), 3);
    assert!(attempts.iter().all(|r| {
        r.param("identifier") == Some("wp-1-2026-12-06-samples")
            && r.idempotency_key.as_deref() == Some("wp-1-2026-12-06-samples")
    }));
    assert_eq!(fake.counted().len(), 1);
    assert_eq!(fake.counted()[0].value, 42);
    // A refusal (4xx) is not retried.
    let err = stripe
        .meter_event("no_such_meter", "cus_retry", 1, "wp-x", at)
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(400));
    assert_eq!(
        fake.requests()
            .iter()
            .filter(|r| r.param("identifier") == Some("wp-x"))
            .count(),
        1
    );
}

#[tokio::test]
async fn a_cancelled_subscription_schedules_deletion_and_a_new_one_cancels_it() {
    let (api, _fake) = start("bill_cancel").await;
    let f = testkit::db::fixture(&api.db, "acme").await;
    link(&api.db, f.tenant, "cus_cancel").await;
    let now = Utc::now().timestamp();
    let checkout = event(
        "evt_c1",
        "checkout.session.completed",
        now,
        checkout_completed("cus_cancel", now - 100),
    );
    assert_eq!(deliver(&api, &checkout).await, "applied:activate");
    let deleted = event(
        "evt_c2",
        "customer.subscription.deleted",
        now,
        json!({ "id": "sub_1", "object": "subscription", "customer": "cus_cancel",
                "status": "canceled", "created": now - 100 }),
    );
    assert_eq!(deliver(&api, &deleted).await, "applied:cancel");
    let tenant = |db: store::Db| async move {
        let mut conn = db.pool().acquire().await.unwrap();
        store::tenants::tenant_by_slug(&mut conn, "acme")
            .await
            .unwrap()
            .unwrap()
    };
    let t = tenant(api.db.clone()).await;
    assert_eq!(t.status, store::tenants::TenantStatus::Deleting);
    let due = t.deletion_due_at.unwrap().timestamp();
    assert!(
        (due - (now + 30 * 86_400)).abs() < 60,
        "after the retention"
    );
    assert_eq!(
        audit_count(&api.db, "tenant.schedule_deletion", "stripe").await,
        1
    );
    // A new subscription before the deletion: back in service, deletion cancelled.
    let mut again = checkout_completed("cus_cancel", now - 10);
    again["subscription"] = json!("sub_2");
    let again = event("evt_c3", "checkout.session.completed", now, again);
    assert_eq!(deliver(&api, &again).await, "applied:activate");
    let t = tenant(api.db.clone()).await;
    assert_eq!(t.status, store::tenants::TenantStatus::Active);
    assert_eq!(t.deletion_due_at, None);
    api.finish().await;
}

#[tokio::test]
async fn a_payment_told_twice_counts_once_in_revenue() {
    let (api, _fake) = start("bill_revenue").await;
    let f = testkit::db::fixture(&api.db, "acme").await;
    link(&api.db, f.tenant, "cus_rev").await;
    let now = Utc::now().timestamp();
    let inv = invoice("in_rev", "cus_rev", now - 10, "paid", 12_300);
    // Stripe sends both events for one payment.
    assert_eq!(
        deliver(
            &api,
            &event("evt_r1", "invoice.payment_succeeded", now, inv.clone())
        )
        .await,
        "applied:paid"
    );
    assert_eq!(
        deliver(&api, &event("evt_r2", "invoice.paid", now, inv)).await,
        "ignored:invoice already applied"
    );
    let month = Utc::now().format("%Y-%m").to_string();
    let r = api
        .get(&format!(
            "/api/v1/admin/billing/revenue?from={month}&to={month}"
        ))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["rows"][0]["mrr"], 12_300);
    api.finish().await;
}

#[tokio::test]
async fn a_plan_changed_in_the_portal_follows_the_current_subscription() {
    let (api, fake) = start("bill_plan").await;
    let f = testkit::db::fixture(&api.db, "acme").await;
    link(&api.db, f.tenant, "cus_plan").await;
    let now = Utc::now().timestamp();
    let checkout = event(
        "evt_p1",
        "checkout.session.completed",
        now,
        checkout_completed("cus_plan", now - 100),
    );
    assert_eq!(deliver(&api, &checkout).await, "applied:activate");
    let sub = |price: &str| {
        json!({ "id": "sub_1", "object": "subscription", "customer": "cus_plan",
                "status": "active", "created": now - 100,
                "items": { "object": "list", "data": [
                    { "id": "si_1", "price": { "id": price } },
                    { "id": "si_2", "price": { "id": "price_pro_wells" } },
                ] } })
    };
    // Upgraded to pro, then the older "standard" update arrives late: Stripe says pro.
    fake.set_subscription(sub("price_pro_base"));
    let upgraded = event(
        "evt_p2",
        "customer.subscription.updated",
        now,
        sub("price_pro_base"),
    );
    assert_eq!(deliver(&api, &upgraded).await, "applied:plan");
    let stale = event(
        "evt_p3",
        "customer.subscription.updated",
        now - 50,
        sub("price_standard_base"),
    );
    assert_eq!(deliver(&api, &stale).await, "applied:plan");
    let plan = |db: store::Db| async move {
        let mut conn = db.pool().acquire().await.unwrap();
        store::tenants::tenant_by_slug(&mut conn, "acme")
            .await
            .unwrap()
            .unwrap()
            .plan
    };
    assert_eq!(plan(api.db.clone()).await, "pro");
    assert_eq!(audit_count(&api.db, "tenant.set_plan", "stripe").await, 1);
    // A price no plan has changes nothing.
    fake.set_subscription(sub("price_unknown"));
    let unknown = event(
        "evt_p4",
        "customer.subscription.updated",
        now,
        sub("price_unknown"),
    );
    assert_eq!(
        deliver(&api, &unknown).await,
        "ignored:no configured plan has this subscription's prices"
    );
    assert_eq!(plan(api.db.clone()).await, "pro");
    api.finish().await;
}
