//! Billing against `localstripe` (PyPI), a stateful Stripe-compatible server started by the
//! test on a free loopback port: our client creates the customer and subscriptions, lists
//! invoices and previews the upcoming one, and localstripe delivers its signed webhooks
//! (`invoice.payment_succeeded` and the rest) to our endpoint, which moves the tenant:
//! paid → active. A declined card leaves localstripe's invoice open with a failed charge;
//! localstripe emits no `invoice.payment_failed` for it, so that one event is delivered by
//! the test around localstripe's invoice object (signed by Stripe's library) → past due.

use api::ApiOptions;
use billing::client::{Form, Method};
use billing::{BillingOptions, Stripe};
use store::identity::Role;
use testkit::api::{Setup, TestApi, wait_until};
use testkit::stripe::LocalStripe;

const SECRET: &str = "whsec_localstripe_test";

fn options(api_base: &str) -> BillingOptions {
    let mut options = testkit::stripe::billing_options(api_base, &[SECRET]);
    options.stripe.max_attempts = 3;
    options
}

fn form(pairs: &[(&str, &str)]) -> Form {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// A card source for the customer, made its default.
async fn card(stripe: &Stripe, customer: &str, number: &str) {
    let token = stripe
        .call(
            Method::POST,
            "/v1/tokens",
            &form(&[
                ("card[number]", number),
                ("card[exp_month]", "12"),
                ("card[exp_year]", "2035"),
                ("card[cvc]", "123"),
            ]),
            None,
        )
        .await
        .unwrap();
    let source = stripe
        .call(
            Method::POST,
            &format!("/v1/customers/{customer}/sources"),
            &form(&[("source", token["id"].as_str().unwrap())]),
            None,
        )
        .await
        .unwrap();
    stripe
        .call(
            Method::POST,
            &format!("/v1/customers/{customer}"),
            &form(&[("default_source", source["id"].as_str().unwrap())]),
            None,
        )
        .await
        .unwrap();
}

async fn status(db: &store::Db, tenant: store::TenantId) -> String {
    let mut conn = db.pool().acquire().await.unwrap();
    store::billing::account(&mut conn, tenant)
        .await
        .unwrap()
        .map(|a| a.account.status.as_str().to_owned())
        .unwrap_or_default()
}

#[tokio::test]
async fn customer_subscription_invoices_and_payment_failure_against_localstripe() {
    let local = LocalStripe::start().await;
    let billing = options(&local.url());
    let api = TestApi::with(
        "bill_local",
        Setup {
            options: ApiOptions::default(),
            billing: Some(billing.clone()),
            ..Setup::default()
        },
    )
    .await;
    let stripe = Stripe::new(billing.stripe.clone()).unwrap();
    // localstripe delivers its events, signed with the endpoint's secret, to our webhook.
    local
        .register_webhook(
            &format!("http://{}/api/v1/billing/webhook", api.addr),
            SECRET,
        )
        .await;

    let f = testkit::db::fixture(&api.db, "acme").await;
    let customer = stripe
        .create_customer(f.tenant.0, "acme", "Permian Operating")
        .await
        .unwrap();
    assert!(customer.starts_with("cus_"), "{customer}");
    {
        let mut tx = api.db.pool().begin().await.unwrap();
        store::billing::lock_account(&mut tx, f.tenant)
            .await
            .unwrap();
        store::billing::link_customer(&mut tx, f.tenant, &customer)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
    // The plan's base price (localstripe keeps prices as plans).
    stripe
        .call(
            Method::POST,
            "/v1/plans",
            &form(&[
                ("id", "price_standard_base"),
                ("amount", "4990"),
                ("currency", "usd"),
                ("interval", "month"),
                ("product[name]", "WellPulse standard"),
            ]),
            None,
        )
        .await
        .unwrap();

    // A good card: the subscription's first invoice is paid; the webhook activates.
    card(&stripe, &customer, "4242424242424242").await;
    let sub = stripe
        .create_subscription(&customer, &["price_standard_base"], "wp-sub-acme-1")
        .await
        .unwrap();
    assert_eq!(sub["status"], "active", "{sub}");
    wait_until(
        "the paid invoice's webhook activates the tenant",
        || async { status(&api.db, f.tenant).await == "active" },
    )
    .await;
    let invoices = stripe.list_invoices(&customer, 10).await.unwrap();
    assert_eq!(invoices.len(), 1);
    assert_eq!(invoices[0]["status"], "paid");
    assert_eq!(invoices[0]["amount_paid"], 4990);
    let upcoming = stripe.upcoming_invoice(&customer).await.unwrap();
    assert!(upcoming.is_some_and(|u| u["amount_due"] == 4990));

    // A declined card: the subscription's next invoice stays open with a failed charge.
    // localstripe records the decline but does not emit `invoice.payment_failed`, so the
    // test delivers that event around localstripe's own invoice object, signed by Stripe's
    // library, as Stripe would.
    card(&stripe, &customer, "4000000000000341").await;
    let next = stripe
        .call(
            Method::POST,
            "/v1/invoices",
            &form(&[
                ("customer", &customer),
                ("subscription", sub["id"].as_str().unwrap()),
            ]),
            None,
        )
        .await
        .unwrap();
    let paid = stripe
        .call(
            Method::POST,
            &format!("/v1/invoices/{}/pay", next["id"].as_str().unwrap()),
            &Form::new(),
            None,
        )
        .await
        .unwrap();
    assert_eq!(paid["status"], "open", "{paid}");
    assert_eq!(paid["charge"]["failure_code"], "card_declined", "{paid}");
    let body = serde_json::to_vec(&serde_json::json!({
        "id": "evt_localstripe_failed", "object": "event", "type": "invoice.payment_failed",
        "created": chrono::Utc::now().timestamp(), "data": { "object": paid },
    }))
    .unwrap();
    let header = testkit::stripe::sign(&body, SECRET, chrono::Utc::now().timestamp()).await;
    let r = testkit::http::send(
        api.addr,
        "POST",
        "/api/v1/billing/webhook",
        &[
            ("content-type", "application/json"),
            ("stripe-signature", &header),
        ],
        Some(&body),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["outcome"], "applied:payment_failed");
    assert_eq!(status(&api.db, f.tenant).await, "past_due");
    let stored: Vec<String> = sqlx::query_scalar(
        "SELECT type FROM stripe_events WHERE tenant_id = $1 ORDER BY received_at",
    )
    .bind(f.tenant)
    .fetch_all(api.db.pool())
    .await
    .unwrap();
    assert!(
        stored.iter().any(|t| t == "invoice.payment_succeeded"),
        "{stored:?}"
    );
    assert!(
        stored.iter().any(|t| t == "invoice.payment_failed"),
        "{stored:?}"
    );
    // The subscription's creation was decided on the subscription fetched back from
    // localstripe: the tenant is on the plan whose base price it holds.
    let outcome = || async {
        sqlx::query_scalar::<_, String>(
            "SELECT outcome FROM stripe_events WHERE type = 'customer.subscription.created'
             AND tenant_id = $1 ORDER BY received_at LIMIT 1",
        )
        .bind(f.tenant)
        .fetch_optional(api.db.pool())
        .await
        .unwrap()
    };
    wait_until("the subscription's creation is delivered", || async {
        outcome().await.is_some()
    })
    .await;
    assert_eq!(outcome().await.as_deref(), Some("applied:plan"));

    // The tenant's overview reads its invoices from localstripe.
    let admin = testkit::auth::member_token(&api.db, f.tenant, Role::TenantAdmin).await;
    let r = api
        .request_as(&admin, "GET", "/api/v1/tenants/acme/billing", None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.json();
    assert_eq!(body["status"], "past_due");
    assert_eq!(body["invoices"].as_array().unwrap().len(), 2, "{body}");
    assert!(body["upcoming_invoice"].is_object(), "{body}");
    api.finish().await;
}
