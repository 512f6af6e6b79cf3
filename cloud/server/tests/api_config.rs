//! The `[api]` section of `cloud.toml`: the shipped example parses, defaults apply when
//! the section is absent, bad values are refused naming the field.

use std::path::Path;
use std::time::Duration;

use api::ApiOptions;
use server::config::CloudConfig;

const MINIMAL: &str = testkit::MINIMAL_CLOUD_TOML;

#[test]
fn the_example_config_has_a_documented_api_section() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/cloud.toml");
    let cfg = CloudConfig::load(&path).unwrap();
    assert_eq!(cfg.api.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(cfg.api.options(), ApiOptions::default());
    let text = std::fs::read_to_string(&path).unwrap();
    let section = text.split("[api]").nth(1).expect("an [api] section");
    for field in [
        "listen",
        "request_timeout",
        "max_page_size",
        "access_ttl",
        "refresh_ttl",
        "invitation_ttl",
        "reset_ttl",
        "sign_in_free_failures",
        "sign_in_base_lock",
        "sign_in_max_lock",
        "principal_requests_per_minute",
        "tenant_requests_per_minute",
        "public_requests_per_minute",
    ] {
        let line = section
            .lines()
            .position(|l| l.starts_with(field))
            .unwrap_or_else(|| panic!("{field} missing"));
        let above = section.lines().nth(line - 1).unwrap();
        assert!(above.starts_with('#'), "{field} has no comment above it");
    }
}

#[test]
fn the_api_section_is_optional_and_configurable() {
    let cfg = CloudConfig::parse(MINIMAL, Path::new(".")).unwrap();
    assert_eq!(cfg.api.options(), ApiOptions::default());
    assert_eq!(cfg.api.listen.to_string(), "127.0.0.1:8080");
    let text = format!(
        "{MINIMAL}\n[api]\nlisten = \"0.0.0.0:0\"\nrequest_timeout = \"2500ms\"\nmax_page_size = 50"
    );
    let cfg = CloudConfig::parse(&text, Path::new(".")).unwrap();
    assert_eq!(cfg.api.listen.port(), 0);
    assert_eq!(
        cfg.api.options(),
        ApiOptions {
            request_timeout: Duration::from_millis(2500),
            max_page_size: 50,
            ..ApiOptions::default()
        }
    );
    let text = format!(
        "{MINIMAL}\n[api.auth]\naccess_ttl = \"5m\"\nprincipal_requests_per_minute = 10\n\
         [mail]\nhost = \"127.0.0.1\"\nport = 2525\nsecurity = \"none\"\n\
         from = \"WellPulse <no-reply@example.com>\"\npublic_url = \"https://wp.example.com\"\n"
    );
    let cfg = CloudConfig::parse(&text, Path::new(".")).unwrap();
    let auth = cfg.api.options().auth;
    assert_eq!(auth.access_ttl, Duration::from_secs(300));
    assert_eq!(auth.principal_requests_per_minute, 10);
    assert_eq!(auth.refresh_ttl, api::AuthOptions::default().refresh_ttl);
    let mail = cfg.mail.expect("[mail]").options();
    assert_eq!((mail.host.as_str(), mail.port), ("127.0.0.1", 2525));
    assert_eq!(mail.security, mail::SmtpSecurity::None);
    assert!(mail::Mailer::new(mail).is_ok());
}

#[test]
fn plans_give_the_api_its_quotas_and_the_default_plan_must_exist() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/cloud.toml");
    let cfg = CloudConfig::load(&path).unwrap();
    let options = cfg.api_options();
    assert_eq!(options.default_plan, "standard");
    assert_eq!(
        options.plans["standard"],
        store::tenants::PlanLimits::default()
    );
    assert_eq!(options.plans["starter"].max_wells, Some(25));
    assert_eq!(options.plans["starter"].api_requests_per_minute, Some(600));
    assert_eq!(
        options.plans["starter"].retention,
        Some(std::time::Duration::from_secs(90 * 86_400))
    );
    for (extra, expected) in [
        (
            "[api]\ndefault_plan = \"gold\"",
            "default_plan \"gold\" is not one of",
        ),
        ("[plans.Gold]\nmax_wells = 1", "plan names are"),
        ("[plans.gold]\nmax_trucks = 1", "unknown field `max_trucks`"),
        (
            "[plans.gold]\nretention = \"2h\"",
            "retention must be at least 1d",
        ),
        ("[plans.gold]\nretention = \"90\"", "retention"),
    ] {
        let err = CloudConfig::parse(&format!("{MINIMAL}\n{extra}"), Path::new("."))
            .unwrap_err()
            .to_string();
        assert!(err.contains(expected), "{extra}: {err}");
    }
}

#[test]
fn bad_auth_and_mail_values_are_refused_with_the_field_named() {
    for (section, expected) in [
        (
            "[api.auth]\naccess_ttl = \"10s\"",
            "api.auth.access_ttl must be from 1m",
        ),
        (
            "[api.auth]\naccess_ttl = \"2h\"\nrefresh_ttl = \"1h\"",
            "shorter than refresh_ttl",
        ),
        (
            "[api.auth]\ntenant_requests_per_minute = 0",
            "tenant_requests_per_minute must be at least 1",
        ),
        ("[api.auth]\nttl = \"1m\"", "unknown field `ttl`"),
        (
            "[mail]\nhost = \"h\"\nfrom = \"a@b.c\"\npublic_url = \"ftp://x\"",
            "public_url must be an http(s) URL",
        ),
        (
            "[mail]\nhost = \"h\"\nusername = \"u\"\nfrom = \"a@b.c\"\npublic_url = \"https://x\"",
            "username and mail.password go together",
        ),
        (
            "[mail]\nhost = \"h\"\nsecurity = \"ssl\"\nfrom = \"a@b.c\"\npublic_url = \"https://x\"",
            "security",
        ),
    ] {
        let text = format!("{MINIMAL}\n{section}");
        let err = CloudConfig::parse(&text, Path::new("."))
            .unwrap_err()
            .to_string();
        assert!(err.contains(expected), "{section}: {err}");
    }
}

#[test]
fn bad_api_values_are_refused_with_the_field_named() {
    let cases = [
        ("listen = \"localhost\"", "listen"),
        (
            "request_timeout = \"1ms\"",
            "request_timeout must be from 100ms to 10m",
        ),
        ("request_timeout = \"soon\"", "request_timeout"),
        (
            "max_page_size = 0",
            "max_page_size must be from 1 to 100000",
        ),
        (
            "max_page_size = 200000",
            "max_page_size must be from 1 to 100000",
        ),
        ("page_size = 10", "unknown field `page_size`"),
    ];
    for (line, expected) in cases {
        let text = format!("{MINIMAL}\n[api]\n{line}");
        let err = CloudConfig::parse(&text, Path::new("."))
            .unwrap_err()
            .to_string();
        assert!(err.contains(expected), "{line}: {err}");
    }
}

#[test]
fn web_dir_is_optional_documented_and_relative_to_the_file() {
    let cfg = CloudConfig::parse(MINIMAL, Path::new(".")).unwrap();
    assert_eq!(cfg.api.web_dir, None);
    assert_eq!(cfg.api_options().web_dir, None);

    // The example documents it (commented out: the API alone by default), and its value
    // parses as written.
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/cloud.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let section = text.split("[api]").nth(1).expect("an [api] section");
    let lines: Vec<&str> = section.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.starts_with("# web_dir = "))
        .expect("web_dir documented in [api]");
    assert!(
        lines[at - 1].starts_with('#'),
        "web_dir has no comment above it"
    );
    let value = lines[at].trim_start_matches("# ");
    let cfg = CloudConfig::parse(
        &format!("{MINIMAL}\n[api]\n{value}"),
        Path::new("/srv/wellpulse"),
    )
    .unwrap();
    assert_eq!(
        cfg.api_options().web_dir,
        Some(Path::new("/srv/wellpulse/../../../web/dist").to_owned())
    );

    // Relative to the file; an absolute path stays as it is.
    let cfg = CloudConfig::parse(
        &format!("{MINIMAL}\n[api]\nweb_dir = \"web/dist\""),
        Path::new("/etc/wellpulse"),
    )
    .unwrap();
    assert_eq!(
        cfg.api.web_dir.as_deref(),
        Some(Path::new("/etc/wellpulse/web/dist"))
    );
    let cfg = CloudConfig::parse(
        &format!("{MINIMAL}\n[api]\nweb_dir = \"/opt/wellpulse/web\""),
        Path::new("/etc/wellpulse"),
    )
    .unwrap();
    assert_eq!(
        cfg.api_options().web_dir.as_deref(),
        Some(Path::new("/opt/wellpulse/web"))
    );
}
