//! `[detection]` and `[alerts]` of `cloud.toml`: the shipped example parses to the
//! defaults, the sections map onto the ingester's, the jobs' and the outbox's options, a
//! disabled detection turns scoring off, and bad values are refused naming the field.

use std::path::Path;
use std::time::Duration;

use server::config::CloudConfig;

const MINIMAL: &str = testkit::MINIMAL_CLOUD_TOML;

#[test]
fn the_example_documents_the_defaults() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/cloud.toml");
    let cfg = CloudConfig::load(&path).unwrap();
    let minimal = CloudConfig::parse(MINIMAL, Path::new("/")).unwrap();
    assert_eq!(
        cfg.detection, minimal.detection,
        "the example shows the defaults"
    );
    assert_eq!(cfg.alerts, minimal.alerts);
    let ingest = cfg.ingest_options();
    let detection = ingest.detection.expect("detection on by default");
    assert_eq!(detection.detect, detect::DetectOptions::default());
    assert_eq!(detection.policy.hold, chrono::Duration::minutes(5));
    let life = cfg.lifecycle_options();
    assert_eq!(life.escalate_after, Duration::from_secs(1800));
    assert_eq!(life.training.window, Duration::from_secs(14 * 24 * 3600));
    assert_eq!(cfg.alerts.outbox_options().max_attempts, 12);
}

#[test]
fn sections_map_onto_the_options() {
    let text = format!(
        "{MINIMAL}
[detection]
enabled = false
z_threshold = 4.5
silent_min = \"2m\"
[detection.training]
window = \"3d\"
[alerts]
hold = \"30s\"
retry_max = \"1m\"
public_url = \"https://wells.example.com\"
"
    );
    let cfg = CloudConfig::parse(&text, Path::new("/")).unwrap();
    assert!(
        cfg.ingest_options().detection.is_none(),
        "disabled: nothing scored"
    );
    assert_eq!(cfg.detection.detect_options().z_threshold, 4.5);
    assert_eq!(cfg.detection.detect_options().silent_min_ms, 120_000);
    assert_eq!(
        cfg.api_options().training.window,
        Duration::from_secs(3 * 24 * 3600)
    );
    assert_eq!(cfg.alerts.policy().hold, chrono::Duration::seconds(30));
    let outbox = cfg.alerts.outbox_options();
    assert_eq!(
        (outbox.retry_max, outbox.public_url.as_str()),
        (Duration::from_secs(60), "https://wells.example.com")
    );
}

#[test]
fn bad_values_are_refused_naming_the_field() {
    for (section, expected) in [
        ("[detection]\nz_threshold = -1.0", "z_threshold"),
        (
            "[detection]\nh2s_warning_ppm = 30.0\nh2s_critical_ppm = 20.0",
            "critical gas thresholds",
        ),
        ("[detection]\nsustain_samples = 0", "sustain_samples"),
        ("[detection]\nsilence_check = \"soon\"", "silence_check"),
        ("[detection]\nthreshold = 3.0", "unknown field"),
        ("[detection.training]\nmin_rows = 2", "min_rows"),
        (
            "[alerts]\nretry_min = \"10m\"\nretry_max = \"1m\"",
            "retry_min",
        ),
        ("[alerts]\nflap_threshold = 0", "flap_threshold"),
        ("[alerts]\npublic_url = \"ftp://x\"", "public_url"),
        ("[alerts]\nwebhook = \"x\"", "unknown field"),
    ] {
        let err = CloudConfig::parse(&format!("{MINIMAL}\n{section}\n"), Path::new("/"))
            .expect_err(section)
            .to_string();
        assert!(err.contains(expected), "{section}: {err}");
    }
}
