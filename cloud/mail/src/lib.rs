//! Outgoing email over SMTP, with `lettre`.
//!
//! One [`Mailer`] per process, built from [`MailOptions`] (`[mail]` in `cloud.toml`): the
//! relay's host and port, how the connection is secured ([`SmtpSecurity`]: plain for a
//! relay on loopback, STARTTLS, or implicit TLS), optional credentials (a [`Secret`],
//! never logged), the sender address, and the public URL of the web app that links in
//! messages point to. Messages are plain text: what they carry is a link and a sentence.
//!
//! Sending is awaited by the caller, so a request that sends an invitation reports a relay
//! that refuses it; nothing is queued in memory to be lost on restart.

use std::time::Duration;

use base::Secret;
use lettre::message::{Mailbox, header::ContentType};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// No TLS: only for a relay on the same host or a private network.
    None,
    /// Plain connection upgraded with STARTTLS (required, not opportunistic).
    StartTls,
    /// TLS from the first byte (SMTPS, usually port 465).
    Tls,
}

/// Where and how to send mail.
#[derive(Debug, Clone)]
pub struct MailOptions {
    /// SMTP relay host.
    pub host: String,
    /// SMTP relay port.
    pub port: u16,
    /// Connection security.
    pub security: SmtpSecurity,
    /// SMTP credentials (user name and password), if the relay wants them.
    pub credentials: Option<(String, Secret)>,
    /// The `From:` address, e.g. `WellPulse <no-reply@example.com>`.
    pub from: String,
    /// Base URL of the web app, for links in messages (e.g. `https://wellpulse.example.com`).
    pub public_url: String,
    /// Longest a send may take.
    pub timeout: Duration,
}

/// Why a message could not be built or sent.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// An address does not parse.
    #[error("invalid email address {address:?}: {reason}")]
    Address {
        /// The address.
        address: String,
        /// Why.
        reason: String,
    },
    /// The relay could not be set up (TLS parameters, host name).
    #[error("cannot set up the SMTP relay {host}: {reason}")]
    Setup {
        /// The relay host.
        host: String,
        /// Why.
        reason: String,
    },
    /// The relay refused or could not be reached.
    #[error("sending mail through {host}:{port} failed: {reason}")]
    Send {
        /// The relay host.
        host: String,
        /// The relay port.
        port: u16,
        /// Why.
        reason: String,
    },
}

/// One outgoing message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    /// Recipient address.
    pub to: String,
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub body: String,
}

/// Sends mail through one SMTP relay.
#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    options: MailOptions,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer")
            .field("host", &self.options.host)
            .field("port", &self.options.port)
            .field("security", &self.options.security)
            .field("from", &self.options.from)
            .finish_non_exhaustive()
    }
}

impl Mailer {
    /// A mailer for `options` (connects lazily, at the first send).
    pub fn new(options: MailOptions) -> Result<Mailer, MailError> {
        let from = parse_mailbox(&options.from)?;
        let setup = |e: lettre::transport::smtp::Error| MailError::Setup {
            host: options.host.clone(),
            reason: e.to_string(),
        };
        let mut builder = match options.security {
            SmtpSecurity::None => {
                AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&options.host)
            }
            SmtpSecurity::StartTls => {
                AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&options.host)
                    .map_err(setup)?
            }
            SmtpSecurity::Tls => {
                AsyncSmtpTransport::<Tokio1Executor>::relay(&options.host).map_err(setup)?
            }
        }
        .port(options.port)
        .timeout(Some(options.timeout));
        if let Some((user, password)) = &options.credentials {
            builder =
                builder.credentials(Credentials::new(user.clone(), password.expose().to_owned()));
        }
        Ok(Mailer {
            transport: builder.build(),
            from,
            options,
        })
    }

    /// The base URL links in messages point to (no trailing slash).
    pub fn public_url(&self) -> &str {
        self.options.public_url.trim_end_matches('/')
    }

    /// Sends one message.
    pub async fn send(&self, mail: &Mail) -> Result<(), MailError> {
        let to = parse_mailbox(&mail.to)?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(mail.subject.clone())
            .header(ContentType::TEXT_PLAIN)
            .body(mail.body.clone())
            .map_err(|e| MailError::Address {
                address: mail.to.clone(),
                reason: e.to_string(),
            })?;
        self.transport
            .send(message)
            .await
            .map_err(|e| MailError::Send {
                host: self.options.host.clone(),
                port: self.options.port,
                reason: e.to_string(),
            })?;
        tracing::info!(subject = %mail.subject, "mail sent");
        Ok(())
    }
}

fn parse_mailbox(address: &str) -> Result<Mailbox, MailError> {
    address
        .parse()
        .map_err(|e: lettre::address::AddressError| MailError::Address {
            address: address.to_owned(),
            reason: e.to_string(),
        })
}
