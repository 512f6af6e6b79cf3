//! `[billing]` of `cloud.toml`: the shipped example (`examples/billing.toml`) parses with
//! every field documented, secrets come from the environment or files and never show in
//! `Debug`, a missing key refuses the file naming the variable, bad values are refused
//! naming the field, and without the section the product has no billing.

use std::path::Path;
use std::time::Duration;

use server::config::CloudConfig;

const MINIMAL: &str = testkit::MINIMAL_CLOUD_TOML;

fn example() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/billing.toml"))
        .unwrap()
}

/// The example with its secrets from a variable Cargo sets for tests (set_var needs
/// unsafe) and plans it names.
fn with_example(example: &str) -> String {
    let billing = example
        .replace(
            "{ env = \"STRIPE_API_KEY\" }",
            "{ env = \"CARGO_PKG_NAME\" }",
        )
        .replace(
            "[{ env = \"STRIPE_WEBHOOK_SECRET\" }]",
            "[{ env = \"CARGO_PKG_NAME\" }, \"whsec_previous\"]",
        );
    format!("{MINIMAL}\n[plans.standard]\n[plans.starter]\n{billing}")
}

#[test]
fn the_example_parses_and_documents_every_field() {
    let text = example();
    let cfg = CloudConfig::parse(&with_example(&text), Path::new(".")).unwrap();
    let billing = cfg.billing.expect("[billing]");
    assert_eq!(billing.api_key.expose(), "server");
    assert_eq!(billing.webhook_secrets.len(), 2);
    assert_eq!(billing.grace_period, Duration::from_secs(7 * 86_400));
    let options = billing.options();
    assert_eq!(options.policy.grace_secs, 7 * 86_400);
    assert_eq!(options.plans["starter"].base_price, "price_starter_base");
    assert_eq!(options.samples_meter.id, "mtr_samples");
    // Every field line has a comment right above it (or a comment block above its table).
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        let field = !line.starts_with('#') && !line.starts_with('[') && line.contains(" = ");
        if field && !lines[i - 1].starts_with('#') && !lines[i - 1].contains(" = ") {
            panic!("{line:?} has no comment above it");
        }
    }
    // Secrets never show in Debug.
    let debug = format!(
        "{:?}",
        CloudConfig::parse(&with_example(&text), Path::new(".")).unwrap()
    );
    assert!(!debug.contains("whsec_previous"), "{debug}");
}

#[test]
fn a_missing_key_refuses_billing_naming_the_variable() {
    let text = with_example(&example()).replacen(
        "api_key = { env = \"CARGO_PKG_NAME\" }",
        "api_key = { env = \"WP_TEST_SURELY_UNSET_STRIPE_KEY\" }",
        1,
    );
    let err = CloudConfig::parse(&text, Path::new(".")).unwrap_err();
    assert!(
        err.to_string()
            .contains("WP_TEST_SURELY_UNSET_STRIPE_KEY is not set"),
        "{err}"
    );
}

#[test]
fn without_the_section_there_is_no_billing() {
    let cfg = CloudConfig::parse(MINIMAL, Path::new(".")).unwrap();
    assert!(cfg.billing.is_none());
}

#[test]
fn bad_values_are_refused_naming_the_field() {
    let base = with_example(&example());
    for (from, to, expect) in [
        (
            "grace_period = \"7d\"",
            "grace_period = \"10m\"",
            "grace_period",
        ),
        ("retention = \"30d\"", "retention = \"400d\"", "retention"),
        (
            "base_price = \"price_starter_base\"",
            "base_price = \"prod_x\"",
            "base_price",
        ),
        (
            "id = \"mtr_samples\"",
            "id = \"samples\"",
            "meters.samples_over_allowance.id",
        ),
        (
            "[billing.plans.starter]",
            "[billing.plans.gold]",
            "no [plans.gold]",
        ),
        (
            "api_base = \"https://api.stripe.com\"",
            "api_base = \"ftp://x\"",
            "api_base",
        ),
        ("max_attempts = 4", "max_attempts = 0", "max_attempts"),
        (
            "webhook_secrets = [{ env = \"CARGO_PKG_NAME\" }, \"whsec_previous\"]",
            "webhook_secrets = []",
            "webhook_secrets",
        ),
        (
            "success_url = \"https://",
            "success_url = \"javascript://",
            "success_url",
        ),
        (
            "grace_period = \"7d\"",
            "grace_period = \"7d\"\nsurprise = 1",
            "surprise",
        ),
    ] {
        assert!(base.contains(from), "{from}");
        let text = base.replacen(from, to, 1);
        let err = CloudConfig::parse(&text, Path::new("."))
            .unwrap_err()
            .to_string();
        assert!(err.contains(expect), "{to}: {err}");
    }
}
