//! schemathesis (from PyPI; `scripts/services.sh` installs it) against the served OpenAPI
//! document, with a platform administrator's credentials over a seeded fleet and a real
//! SMTP sink for the operations that send mail: no operation may answer 5xx, and every
//! response must match its documented status codes, content type and schema.

use std::process::Stdio;
use std::time::Duration;

use api::{ApiOptions, AuthOptions};
use mail::{MailOptions, Mailer, SmtpSecurity};
use testkit::api::{Setup, TestApi, seed};
use testkit::smtp::SmtpSink;

#[tokio::test]
async fn schemathesis_finds_no_server_error_and_no_schema_violation() {
    let sink = SmtpSink::start().await;
    let mailer = Mailer::new(MailOptions {
        host: "127.0.0.1".to_owned(),
        port: sink.port(),
        security: SmtpSecurity::None,
        credentials: None,
        from: "WellPulse <no-reply@wellpulse.test>".to_owned(),
        public_url: "https://wellpulse.test".to_owned(),
        timeout: Duration::from_secs(10),
    })
    .unwrap();
    let api = TestApi::with(
        "api_schemathesis",
        Setup {
            options: ApiOptions {
                request_timeout: Duration::from_secs(60),
                auth: AuthOptions {
                    principal_requests_per_minute: 1_000_000,
                    tenant_requests_per_minute: 1_000_000,
                    public_requests_per_minute: 1_000_000,
                    ..AuthOptions::default()
                },
                ..ApiOptions::default()
            },
            mailer: Some(mailer),
            ..Setup::default()
        },
    )
    .await;
    seed(&api.db, 5, 60).await;
    let spec = format!("http://{}/api/openapi.json", api.addr);
    let auth = format!("Authorization: Bearer {}", api.token);
    let report = tempfile::tempdir().unwrap();
    let junit = report.path().join("junit.xml");
    let output = tokio::process::Command::new("schemathesis")
        .args(["run", &spec, "--header", &auth])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
            // Signing out would end the credential the run uses.
            "--exclude-operation-id",
            "sign_out",
            "--max-examples",
            "15",
            "--seed",
            "20261206",
            "--request-timeout",
            "60",
            "--report",
            "junit",
            "--report-junit-path",
        ])
        .arg(&junit)
        .env("NO_COLOR", "1")
        // schemathesis keeps a cache in its working directory: the run's own.
        .current_dir(report.path())
        .stdin(Stdio::null())
        .output()
        .await
        .expect("schemathesis runs (scripts/services.sh installs it from PyPI)");
    let text = String::from_utf8_lossy(&output.stdout);
    println!("{text}");
    assert!(
        output.status.success(),
        "schemathesis found problems:\n{text}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    api.finish().await;
}
