//! What one tenant-day of usage reports to Stripe Billing Meters.
//!
//! Two meters (their Stripe `event_name`s are configuration):
//! - **active wells**: the day's active wells (`tenant_usage_daily.active_wells`), summed
//!   by the meter into well-days over the billing period (price it per well-day);
//! - **samples over the allowance**: the samples stored that day beyond the plan's
//!   `max_samples_per_day` (0 when within it; plans without an allowance report every
//!   sample).
//!
//! Each meter event carries an `identifier` made from the tenant, the day and the meter,
//! the same on every attempt, so Stripe counts a retried event once. Values are exactly the
//! counters: a day's reported usage equals `tenant_usage_daily` for that day.

/// One meter event to send (and to record before sending).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeterEvent {
    /// Which meter (`active_wells` or `samples_over_allowance`): our name, stored.
    pub meter: &'static str,
    /// The meter's Stripe `event_name`.
    pub event_name: String,
    /// The value for the day.
    pub value: i64,
    /// Stable across retries: `wp-<tenant id>-<YYYY-MM-DD>-<meter>` (≤ 100 characters).
    pub identifier: String,
}

/// The meters' Stripe event names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meters {
    /// Event name of the active-wells meter.
    pub active_wells: String,
    /// Event name of the samples-over-allowance meter.
    pub samples_over_allowance: String,
}

/// Meter name of the active-wells meter.
pub const ACTIVE_WELLS: &str = "active_wells";
/// Meter name of the samples-over-allowance meter.
pub const SAMPLES_OVER_ALLOWANCE: &str = "samples_over_allowance";

/// The identifier of a tenant-day's meter event.
pub fn identifier(tenant_id: i64, day: &str, meter: &str) -> String {
    format!("wp-{tenant_id}-{day}-{meter}")
}

/// The meter events of one tenant-day (`day` as `YYYY-MM-DD`).
pub fn day_events(
    meters: &Meters,
    tenant_id: i64,
    day: &str,
    active_wells: i64,
    samples: i64,
    samples_allowance: Option<u64>,
) -> Vec<MeterEvent> {
    let allowance = samples_allowance
        .map(|a| i64::try_from(a).unwrap_or(i64::MAX))
        .unwrap_or(0);
    let over = samples.saturating_sub(allowance).max(0);
    vec![
        MeterEvent {
            meter: ACTIVE_WELLS,
            event_name: meters.active_wells.clone(),
            value: active_wells.max(0),
            identifier: identifier(tenant_id, day, ACTIVE_WELLS),
        },
        MeterEvent {
            meter: SAMPLES_OVER_ALLOWANCE,
            event_name: meters.samples_over_allowance.clone(),
            value: over,
            identifier: identifier(tenant_id, day, SAMPLES_OVER_ALLOWANCE),
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn meters() -> Meters {
        Meters {
            active_wells: "wellpulse_active_wells".into(),
            samples_over_allowance: "wellpulse_samples".into(),
        }
    }

    #[test]
    fn a_day_reports_its_counters_exactly() {
        let e = day_events(&meters(), 7, "2026-12-06", 12, 1_500, Some(1_000));
        assert_eq!(e[0].value, 12);
        assert_eq!(e[0].identifier, "wp-7-2026-12-06-active_wells");
        assert_eq!(e[1].value, 500);
        assert_eq!(e[1].event_name, "wellpulse_samples");
        let within = day_events(&meters(), 7, "2026-12-06", 0, 900, Some(1_000));
        assert_eq!(within[1].value, 0);
        let unlimited_allowance = day_events(&meters(), 7, "2026-12-06", 0, 900, None);
        assert_eq!(unlimited_allowance[1].value, 900);
    }

    proptest! {
        #[test]
        fn identifiers_are_stable_short_and_distinct(
            tenant in 0i64..i64::MAX, samples in 0i64..i64::MAX, allowance in any::<u64>(),
        ) {
            let a = day_events(&meters(), tenant, "2026-12-06", 1, samples, Some(allowance));
            let b = day_events(&meters(), tenant, "2026-12-06", 1, samples, Some(allowance));
            prop_assert_eq!(&a, &b);
            prop_assert_ne!(&a[0].identifier, &a[1].identifier);
            prop_assert!(a.iter().all(|e| e.identifier.len() <= 100 && e.value >= 0));
            let expected = samples.saturating_sub(i64::try_from(allowance).unwrap_or(i64::MAX)).max(0);
            prop_assert_eq!(a[1].value, expected);
        }
    }
}
