//! The parts of a Stripe event the billing state machine reads, taken from its JSON.
//!
//! Only what decides something is read; everything else in the payload is kept by the
//! store as received. An event of a type we do not act on parses as [`Object::Other`] and
//! is acknowledged without effect. Invoices name their subscription at `subscription`
//! (API versions before 2025-03-31) or `parent.subscription_details.subscription`
//! (later ones); both are read.

use serde_json::Value;

/// A Stripe event as the state machine needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// `evt_…`: stored once; a replay is acknowledged and ignored.
    pub id: String,
    /// `type`, e.g. `invoice.paid`.
    pub kind: String,
    /// When Stripe created the event (unix seconds).
    pub created: i64,
    /// `data.object`, typed by `kind`.
    pub object: Object,
}

/// The object an event carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Object {
    /// `checkout.session.completed`.
    CheckoutCompleted(CheckoutSession),
    /// `invoice.paid` (or `invoice.payment_succeeded`, which Stripe sends with it).
    InvoicePaid(Invoice),
    /// `invoice.payment_failed`.
    InvoicePaymentFailed(Invoice),
    /// `customer.subscription.deleted`.
    SubscriptionDeleted(Subscription),
    /// `customer.subscription.created` or `customer.subscription.updated` (a plan
    /// change in the Customer Portal): decided on the subscription as Stripe has it now.
    SubscriptionChanged(Subscription),
    /// Any other type: acknowledged, no effect.
    Other,
}

impl Object {
    /// The Stripe customer the object belongs to, if it names one.
    pub fn customer(&self) -> Option<&str> {
        match self {
            Object::CheckoutCompleted(s) => s.customer.as_deref(),
            Object::InvoicePaid(i) | Object::InvoicePaymentFailed(i) => i.customer.as_deref(),
            Object::SubscriptionDeleted(s) | Object::SubscriptionChanged(s) => {
                s.customer.as_deref()
            }
            Object::Other => None,
        }
    }
}

/// A Checkout Session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutSession {
    /// `cs_…`.
    pub id: String,
    /// `cus_…`.
    pub customer: Option<String>,
    /// `sub_…` (mode `subscription`).
    pub subscription: Option<String>,
    /// What we set when creating the session: the tenant's slug.
    pub client_reference_id: Option<String>,
    /// Unix seconds.
    pub created: i64,
}

/// An invoice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invoice {
    /// `in_…`.
    pub id: String,
    /// `cus_…`.
    pub customer: Option<String>,
    /// `sub_…`, if the invoice is a subscription's.
    pub subscription: Option<String>,
    /// `draft`, `open`, `paid`, `uncollectible`, `void`.
    pub status: Option<String>,
    /// Unix seconds.
    pub created: i64,
}

/// A subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// `sub_…`.
    pub id: String,
    /// `cus_…`.
    pub customer: Option<String>,
    /// `active`, `past_due`, `canceled`, …
    pub status: Option<String>,
    /// Unix seconds.
    pub created: i64,
    /// The prices of its items (`items.data[].price.id`, or `plan.id` on older objects).
    pub prices: Vec<String>,
}

/// Why an event body is unusable (a 400 at the webhook).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unusable Stripe event: {0}")]
pub struct EventError(pub String);

fn text(v: &Value, key: &str) -> Option<String> {
    match v.get(key) {
        Some(Value::String(s)) => Some(s.clone()),
        // Expanded objects carry their id.
        Some(Value::Object(o)) => o.get("id").and_then(Value::as_str).map(str::to_owned),
        _ => None,
    }
}

fn required(v: &Value, key: &'static str) -> Result<String, EventError> {
    text(v, key).ok_or_else(|| EventError(format!("`{key}` is missing or not a string")))
}

fn created_of(v: &Value) -> Result<i64, EventError> {
    v.get("created")
        .and_then(Value::as_i64)
        .ok_or_else(|| EventError("`created` is missing or not an integer".to_owned()))
}

/// Reads an invoice object (from an event or fetched).
pub fn invoice(o: &Value) -> Result<Invoice, EventError> {
    let subscription = text(o, "subscription").or_else(|| {
        o.pointer("/parent/subscription_details/subscription")
            .and_then(Value::as_str)
            .map(str::to_owned)
    });
    Ok(Invoice {
        id: required(o, "id")?,
        customer: text(o, "customer"),
        subscription,
        status: text(o, "status"),
        created: created_of(o)?,
    })
}

/// Reads a subscription object (from an event or fetched).
pub fn subscription(o: &Value) -> Result<Subscription, EventError> {
    let prices = o
        .pointer("/items/data")
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(|i| text(i, "price").or_else(|| text(i, "plan")))
                .collect()
        })
        .unwrap_or_default();
    Ok(Subscription {
        id: required(o, "id")?,
        customer: text(o, "customer"),
        status: text(o, "status"),
        created: created_of(o)?,
        prices,
    })
}

impl Event {
    /// Parses an event body.
    pub fn parse(body: &[u8]) -> Result<Event, EventError> {
        let v: Value =
            serde_json::from_slice(body).map_err(|e| EventError(format!("not JSON: {e}")))?;
        let id = required(&v, "id")?;
        if !id.starts_with("evt_") {
            return Err(EventError(format!("`id` {id:?} is not an event id")));
        }
        let kind = required(&v, "type")?;
        let created = created_of(&v)?;
        let o = v
            .pointer("/data/object")
            .ok_or_else(|| EventError("`data.object` is missing".to_owned()))?;
        let object = match kind.as_str() {
            "checkout.session.completed" => Object::CheckoutCompleted(CheckoutSession {
                id: required(o, "id")?,
                customer: text(o, "customer"),
                subscription: text(o, "subscription"),
                client_reference_id: text(o, "client_reference_id"),
                created: created_of(o)?,
            }),
            // Stripe sends both for a payment; either applies once (same invoice).
            "invoice.paid" | "invoice.payment_succeeded" => Object::InvoicePaid(invoice(o)?),
            "invoice.payment_failed" => Object::InvoicePaymentFailed(invoice(o)?),
            "customer.subscription.deleted" => Object::SubscriptionDeleted(subscription(o)?),
            "customer.subscription.created" | "customer.subscription.updated" => {
                Object::SubscriptionChanged(subscription(o)?)
            }
            _ => Object::Other,
        };
        Ok(Event {
            id,
            kind,
            created,
            object,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_parse_by_type_and_unknown_types_are_other() {
        let paid = br#"{"id":"evt_1","type":"invoice.paid","created":10,
            "data":{"object":{"id":"in_1","customer":"cus_1","created":9,"status":"paid",
            "parent":{"subscription_details":{"subscription":"sub_1"}}}}}"#;
        let e = Event::parse(paid).unwrap();
        assert_eq!(e.kind, "invoice.paid");
        assert_eq!(
            e.object,
            Object::InvoicePaid(Invoice {
                id: "in_1".into(),
                customer: Some("cus_1".into()),
                subscription: Some("sub_1".into()),
                status: Some("paid".into()),
                created: 9,
            })
        );
        assert_eq!(e.object.customer(), Some("cus_1"));
        let other = br#"{"id":"evt_2","type":"customer.created","created":1,"data":{"object":{}}}"#;
        assert_eq!(Event::parse(other).unwrap().object, Object::Other);
    }

    #[test]
    fn unusable_bodies_are_errors() {
        for body in [
            &b"not json"[..],
            br#"{"type":"invoice.paid","created":1,"data":{"object":{}}}"#,
            br#"{"id":"in_1","type":"invoice.paid","created":1,"data":{"object":{}}}"#,
            br#"{"id":"evt_1","type":"invoice.paid","created":1}"#,
            br#"{"id":"evt_1","type":"invoice.paid","created":1,"data":{"object":{"id":"in_1"}}}"#,
        ] {
            assert!(
                Event::parse(body).is_err(),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
