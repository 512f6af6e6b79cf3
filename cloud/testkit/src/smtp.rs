//! A local SMTP sink (Python's `aiosmtpd`, started from `smtp_sink.py` beside this crate)
//! that tests send mail to and read it back from.
//!
//! The sink prints `READY <port>` once it listens and one JSON line per message; the
//! helper reads its standard output, so a test waits on the message itself, not on time.
//! The sink stops when the helper is dropped (its standard input closes).

use std::time::Duration;

use tokio::io::{BufReader, Lines};
use tokio::process::{Child, ChildStdout};

/// One message the sink received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// Envelope sender.
    pub from: String,
    /// Envelope recipients.
    pub to: Vec<String>,
    /// Subject (decoded).
    pub subject: String,
    /// The plain-text body (transfer encoding decoded).
    pub body: String,
    /// The whole message as sent (headers and encoded body).
    pub data: String,
}

impl Received {
    /// The first token in the body that follows `marker` (e.g. `token=`), up to a
    /// character that cannot be part of a URL token.
    pub fn token_after(&self, marker: &str) -> Option<String> {
        let start = self.body.find(marker)? + marker.len();
        let token: String = self.body[start..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
            .collect();
        (!token.is_empty()).then_some(token)
    }
}

/// A running SMTP sink on 127.0.0.1.
pub struct SmtpSink {
    port: u16,
    lines: Lines<BufReader<ChildStdout>>,
    _child: Child,
}

impl SmtpSink {
    /// Starts the sink and waits until it listens.
    pub async fn start() -> SmtpSink {
        let crate::python::Helper { child, port, lines } = crate::python::start(
            "smtp_sink.py",
            "the SMTP sink",
            "scripts/services.sh installs aiosmtpd",
        )
        .await;
        SmtpSink {
            port,
            lines,
            _child: child,
        }
    }

    /// The port it listens on (host 127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The next message received, waiting up to `timeout` for it.
    pub async fn next(&mut self, timeout: Duration) -> Option<Received> {
        let line = tokio::time::timeout(timeout, self.lines.next_line())
            .await
            .ok()?
            .expect("read the SMTP sink's output")?;
        let v: serde_json::Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("SMTP sink line {line:?} is not JSON: {e}"));
        Some(Received {
            from: v["from"].as_str().unwrap_or_default().to_owned(),
            to: v["to"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|t| t.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default(),
            subject: v["subject"].as_str().unwrap_or_default().to_owned(),
            body: v["body"].as_str().unwrap_or_default().to_owned(),
            data: v["data"].as_str().unwrap_or_default().to_owned(),
        })
    }
}
