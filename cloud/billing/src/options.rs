//! Billing's runtime options, built by the server from `[billing]` in `cloud.toml`.

use std::collections::BTreeMap;

use base::Secret;

use crate::client::StripeOptions;
use crate::machine::Policy;
use crate::metering::Meters;

/// A plan's Stripe prices (`price_…`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanPrices {
    /// The plan's base fee (licensed, quantity 1).
    pub base_price: String,
    /// Metered price of the active-wells meter (per well-day).
    pub active_wells_price: String,
    /// Metered price of the samples-over-allowance meter.
    pub samples_price: String,
    /// The base fee per month in the smallest currency unit, as the admin pages show MRR.
    pub monthly_fee: i64,
}

/// A Billing Meter: its `event_name` (where events go) and id (`mtr_…`, where its
/// summaries are read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meter {
    /// `event_name`.
    pub event_name: String,
    /// `mtr_…`.
    pub id: String,
}

/// Everything billing needs at run time.
#[derive(Debug, Clone)]
pub struct BillingOptions {
    /// How to reach Stripe.
    pub stripe: StripeOptions,
    /// Webhook signing secrets in force (several during a rotation).
    pub webhook_secrets: Vec<Secret>,
    /// `Stripe-Signature` timestamp tolerance, seconds.
    pub tolerance_secs: i64,
    /// Grace and retention.
    pub policy: Policy,
    /// Prices by plan name (every plan of `[plans.*]` that can be bought).
    pub plans: BTreeMap<String, PlanPrices>,
    /// The active-wells meter.
    pub active_wells_meter: Meter,
    /// The samples-over-allowance meter.
    pub samples_meter: Meter,
    /// Where Checkout sends the customer after paying (`{TENANT}` and Stripe's
    /// `{CHECKOUT_SESSION_ID}` allowed).
    pub success_url: String,
    /// Where Checkout sends the customer who gave up (`{TENANT}` allowed).
    pub cancel_url: String,
    /// Where the Customer Portal returns (`{TENANT}` allowed).
    pub portal_return_url: String,
}

/// `url` with every `{TENANT}` replaced by the tenant's slug (`a-z`, `0-9`, `_`, `-`:
/// nothing to escape), so that Stripe's pages send people back to their own tenant's
/// billing page.
pub fn for_tenant(url: &str, slug: &str) -> String {
    url.replace("{TENANT}", slug)
}

impl BillingOptions {
    /// The meters' event names.
    pub fn meters(&self) -> Meters {
        Meters {
            active_wells: self.active_wells_meter.event_name.clone(),
            samples_over_allowance: self.samples_meter.event_name.clone(),
        }
    }

    /// The plan whose base price is among `prices` (a subscription's items).
    pub fn plan_of(&self, prices: &[String]) -> Option<&str> {
        self.plans
            .iter()
            .find(|(_, p)| prices.contains(&p.base_price))
            .map(|(name, _)| name.as_str())
    }

    /// The webhook secrets as bytes, for [`crate::signature::verify`].
    pub fn secrets(&self) -> Vec<&[u8]> {
        self.webhook_secrets
            .iter()
            .map(|s| s.expose().as_bytes())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::for_tenant;

    #[test]
    fn the_tenant_placeholder_is_replaced_and_stripes_is_kept() {
        assert_eq!(
            for_tenant(
                "https://app.test/t/{TENANT}/admin/billing?checkout=done&session={CHECKOUT_SESSION_ID}",
                "acme-west"
            ),
            "https://app.test/t/acme-west/admin/billing?checkout=done&session={CHECKOUT_SESSION_ID}"
        );
        assert_eq!(
            for_tenant("https://app.test/billing", "acme"),
            "https://app.test/billing"
        );
    }
}
