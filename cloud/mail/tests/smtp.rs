//! The mailer against a real SMTP server (the tests' aiosmtpd sink on loopback).

use std::time::Duration;

use mail::{Mail, MailError, MailOptions, Mailer, SmtpSecurity};
use testkit::smtp::SmtpSink;

fn options(port: u16) -> MailOptions {
    MailOptions {
        host: "127.0.0.1".to_owned(),
        port,
        security: SmtpSecurity::None,
        credentials: None,
        from: "WellPulse <no-reply@wellpulse.test>".to_owned(),
        public_url: "http://127.0.0.1:8080/".to_owned(),
        timeout: Duration::from_secs(10),
    }
}

#[tokio::test]
async fn a_message_reaches_the_relay_with_its_headers_and_body() {
    let mut sink = SmtpSink::start().await;
    let mailer = Mailer::new(options(sink.port())).unwrap();
    assert_eq!(mailer.public_url(), "http://127.0.0.1:8080");
    mailer
        .send(&Mail {
            to: "Ana Operator <ana@example.com>".to_owned(),
            subject: "You are invited".to_owned(),
            body: "Open http://127.0.0.1:8080/accept?token=abc123 to join.".to_owned(),
        })
        .await
        .expect("sent");
    let got = sink.next(Duration::from_secs(30)).await.expect("a message");
    assert_eq!(got.to, vec!["ana@example.com".to_owned()]);
    assert_eq!(got.from, "no-reply@wellpulse.test");
    assert!(
        got.data.contains("Subject: You are invited"),
        "{}",
        got.data
    );
    assert_eq!(got.token_after("token=").as_deref(), Some("abc123"));
}

#[tokio::test]
async fn a_bad_address_or_an_unreachable_relay_is_a_clear_error() {
    let sink = SmtpSink::start().await;
    let mailer = Mailer::new(options(sink.port())).unwrap();
    let bad = mailer
        .send(&Mail {
            to: "not an address".to_owned(),
            subject: "x".to_owned(),
            body: "x".to_owned(),
        })
        .await;
    assert!(matches!(bad, Err(MailError::Address { .. })), "{bad:?}");

    // A port nobody listens on: taken from a socket that is then closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let unreachable = Mailer::new(options(port)).unwrap();
    let err = unreachable
        .send(&Mail {
            to: "ana@example.com".to_owned(),
            subject: "x".to_owned(),
            body: "x".to_owned(),
        })
        .await
        .unwrap_err();
    assert!(
        matches!(err, MailError::Send { port: p, .. } if p == port),
        "{err}"
    );
    assert!(err.to_string().contains("127.0.0.1"), "{err}");
}
