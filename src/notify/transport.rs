//! Where mail goes: an SMTP server (lettre), or `.eml` files in `mail_dir` when no server is
//! configured (the embedded default, so the product works offline).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport as _, Message, Tokio1Executor};
use secrecy::ExposeSecret as _;

use super::settings::{MailSettings, SmtpSecurity};

/// A delivery attempt that did not reach the server's acceptance.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SendError {
    /// Retrying the same message cannot help (the server refused it with a 5xx reply).
    pub permanent: bool,
    pub message: String,
}

/// The configured transport.
#[derive(Clone)]
pub enum MailTransport {
    Smtp(Box<AsyncSmtpTransport<Tokio1Executor>>),
    /// Each message becomes `<name>.eml` in this folder.
    Files(PathBuf),
}

impl std::fmt::Debug for MailTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Smtp(_) => f.write_str("Smtp"),
            Self::Files(dir) => f.debug_tuple("Files").field(dir).finish(),
        }
    }
}

impl MailTransport {
    /// SMTP when a host is configured, otherwise files in `mail_dir`.
    pub fn from_settings(mail: &MailSettings, mail_dir: &Path) -> Result<Self, String> {
        let Some(host) = mail.host() else {
            return Ok(Self::Files(mail_dir.to_owned()));
        };
        let tls = || {
            let mut params = TlsParameters::builder(host.to_owned());
            if let Some(certificate) = mail.ca_certificate()? {
                params = params.add_root_certificate(certificate);
            }
            params.build().map_err(|e| format!("SMTP host {host}: {e}"))
        };
        let builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host);
        let builder = match mail.smtp_security {
            SmtpSecurity::Starttls => builder.tls(Tls::Required(tls()?)),
            SmtpSecurity::Tls => builder.tls(Tls::Wrapper(tls()?)),
            SmtpSecurity::None => builder,
        };
        let mut builder = builder
            .port(mail.port())
            .timeout(Some(Duration::from_secs(mail.smtp_timeout_seconds)));
        if let (Some(user), Some(password)) = (&mail.smtp_username, &mail.smtp_password) {
            builder = builder.credentials(Credentials::new(
                user.clone(),
                password.expose_secret().to_owned(),
            ));
        }
        Ok(Self::Smtp(Box::new(builder.build())))
    }

    /// Hands the message over. `name` (a row id, never user input) names the file in file mode.
    pub async fn send(&self, name: &str, message: Message) -> Result<(), SendError> {
        match self {
            Self::Smtp(smtp) => smtp.send(message).await.map(drop).map_err(|e| SendError {
                permanent: e.is_permanent(),
                message: format!("SMTP: {e}"),
            }),
            Self::Files(dir) => {
                let dir = dir.clone();
                let name = name.to_owned();
                tokio::task::spawn_blocking(move || write_eml(&dir, &name, &message))
                    .await
                    .map_err(|e| SendError {
                        permanent: false,
                        message: format!("mail file writer: {e}"),
                    })?
                    .map_err(|e| SendError {
                        permanent: false,
                        message: format!("mail file: {e}"),
                    })
            }
        }
    }
}

/// Writes `<dir>/<name>.eml` atomically: a temporary file, synced, then renamed over the name.
/// The envelope recipients (not shown in the headers when there are several) head the file as
/// `X-Envelope-To` lines.
fn write_eml(dir: &Path, name: &str, message: &Message) -> std::io::Result<()> {
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err(std::io::Error::other(format!(
            "unsafe mail file name {name:?}"
        )));
    }
    std::fs::create_dir_all(dir)?;
    let mut bytes = Vec::new();
    for to in message.envelope().to() {
        bytes.extend_from_slice(format!("X-Envelope-To: {to}\r\n").as_bytes());
    }
    bytes.extend_from_slice(&message.formatted());
    let temporary = dir.join(format!(".{name}.eml.tmp"));
    let mut file = std::fs::File::create(&temporary)?;
    file.write_all(&bytes)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&temporary, dir.join(format!("{name}.eml")))
}
