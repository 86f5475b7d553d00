//! The `mail` settings (`ITAKU_MAIL__*`): the SMTP server, the sender and the retry policy.

use chrono::Duration;
use lettre::message::Mailbox;
use lettre::transport::smtp::client::Certificate;
use secrecy::SecretString;
use serde::Deserialize;

use crate::services::outbox::RetryPolicy;

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpSecurity {
    /// Plain connection upgraded with STARTTLS, which the server must offer (port 587).
    #[default]
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No encryption (a relay on the same host or network only).
    None,
}

/// Mail delivery settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MailSettings {
    /// The SMTP server; unset, messages are written as `.eml` files into `mail_dir`.
    pub smtp_host: Option<String>,
    /// Its port; unset: 587 (STARTTLS), 465 (TLS) or 25 (none).
    pub smtp_port: Option<u16>,
    pub smtp_security: SmtpSecurity,
    /// Credentials, if the server wants them (both or neither).
    pub smtp_username: Option<String>,
    pub smtp_password: Option<SecretString>,
    /// How long one SMTP exchange may take.
    pub smtp_timeout_seconds: u64,
    /// A PEM file of CA certificates trusted for the SMTP server besides the Mozilla roots
    /// (a municipality's own CA on its closed network).
    pub smtp_ca_file: Option<std::path::PathBuf>,
    /// The sender, `Name <address>` or `address`.
    pub from: String,
    /// How often the dispatcher looks for due messages; 0 disables it in this process.
    pub dispatch_interval_seconds: u64,
    /// Attempts before a message is marked failed.
    pub max_attempts: u32,
    /// The wait after the first failed attempt; it doubles each time, at most 6 hours.
    pub retry_base_seconds: u32,
}

impl Default for MailSettings {
    fn default() -> Self {
        Self {
            smtp_host: None,
            smtp_port: None,
            smtp_security: SmtpSecurity::Starttls,
            smtp_username: None,
            smtp_password: None,
            smtp_timeout_seconds: 30,
            smtp_ca_file: None,
            from: "itaku <itaku@localhost>".to_owned(),
            dispatch_interval_seconds: 10,
            max_attempts: 10,
            retry_base_seconds: 60,
        }
    }
}

impl MailSettings {
    /// The configured SMTP host, if any (blank counts as none).
    pub fn host(&self) -> Option<&str> {
        self.smtp_host
            .as_deref()
            .map(str::trim)
            .filter(|h| !h.is_empty())
    }

    /// The port to connect to.
    pub fn port(&self) -> u16 {
        self.smtp_port.unwrap_or(match self.smtp_security {
            SmtpSecurity::Starttls => 587,
            SmtpSecurity::Tls => 465,
            SmtpSecurity::None => 25,
        })
    }

    /// The sender as a mailbox.
    pub fn sender(&self) -> Result<Mailbox, String> {
        self.from
            .parse()
            .map_err(|e| format!("`{}` is not a mail address: {e}", self.from))
    }

    /// The retry policy.
    pub fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            max_attempts: self.max_attempts,
            base_delay: Duration::seconds(i64::from(self.retry_base_seconds)),
        }
    }

    /// The certificates of `smtp_ca_file`, if one is set: read, and refused unless the file
    /// holds PEM certificates and nothing that fails to parse.
    pub fn ca_certificate(&self) -> Result<Option<Certificate>, String> {
        let Some(path) = &self.smtp_ca_file else {
            return Ok(None);
        };
        let shown = path.display();
        let pem = std::fs::read(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
        let has_certificate = String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----");
        let certificate = Certificate::from_pem(&pem)
            .ok()
            .filter(|_| has_certificate)
            .ok_or_else(|| {
                format!("{shown} holds no PEM certificate (-----BEGIN CERTIFICATE-----)")
            })?;
        Ok(Some(certificate))
    }

    /// What serde cannot check: `(setting, reason)` of the first problem.
    pub fn problem(&self) -> Option<(&'static str, String)> {
        if let Err(reason) = self.ca_certificate() {
            return Some(("mail.smtp_ca_file", reason));
        }
        if let Err(reason) = self.sender() {
            return Some(("mail.from", reason));
        }
        if self.max_attempts == 0 {
            return Some(("mail.max_attempts", "must be at least 1".to_owned()));
        }
        if self.smtp_timeout_seconds == 0 {
            return Some(("mail.smtp_timeout_seconds", "must be at least 1".to_owned()));
        }
        if self.smtp_username.is_some() != self.smtp_password.is_some() {
            return Some((
                "mail.smtp_username",
                "smtp_username and smtp_password go together".to_owned(),
            ));
        }
        None
    }
}
