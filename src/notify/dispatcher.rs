//! Drains the outbox: claims each due notification, renders it, sends it, records the outcome.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::SystemTime;

use chrono::{DateTime, Utc};
use entity::outbox as outbox_entity;
use lettre::address::Envelope;
use lettre::message::{Mailbox, MultiPart};
use lettre::{Address, Message};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, TransactionTrait};

use super::settings::MailSettings;
use super::templates::{MailTemplates, RenderedMail, TemplateError};
use super::transport::MailTransport;
use crate::clock::{jst_date, Clock};
use crate::services::digests::{self, DIGEST_TEMPLATE};
use crate::services::notifications::{self, PrepareError};
use crate::services::outbox::{self, Attempt, Recorded, RetryPolicy};
use crate::workflow::WorkflowSet;

/// What one run delivered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DispatchReport {
    pub sent: u32,
    /// Failed this time and scheduled again.
    pub retrying: u32,
    /// Failed for good (after the last attempt, or permanently).
    pub failed: u32,
}

/// The dispatcher could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum MailSetupError {
    #[error("invalid setting `{0}`: {1}")]
    Setting(&'static str, String),
    #[error(transparent)]
    Templates(#[from] TemplateError),
}

/// Everything needed to deliver notifications; cheap to share.
#[derive(Debug)]
pub struct Dispatcher {
    db: DatabaseConnection,
    workflows: Arc<WorkflowSet>,
    templates: MailTemplates,
    transport: MailTransport,
    sender: Mailbox,
    policy: RetryPolicy,
    public_url: String,
    /// PostgreSQL: lock each row while sending it (see the module documentation).
    lock_rows: bool,
    /// SQLite: how long a row being sent is hidden from other dispatchers.
    lease: chrono::Duration,
}

impl Dispatcher {
    /// A dispatcher for these settings (SMTP when a host is configured, else files).
    pub fn new(
        db: DatabaseConnection,
        workflows: Arc<WorkflowSet>,
        mail: &MailSettings,
        mail_dir: &std::path::Path,
        public_url: &str,
    ) -> Result<Self, MailSetupError> {
        if let Some((setting, reason)) = mail.problem() {
            return Err(MailSetupError::Setting(setting, reason));
        }
        let sender = mail
            .sender()
            .map_err(|reason| MailSetupError::Setting("mail.from", reason))?;
        let transport = MailTransport::from_settings(mail, mail_dir)
            .map_err(|reason| MailSetupError::Setting("mail.smtp_host", reason))?;
        let lock_rows = db.get_database_backend() == sea_orm::DbBackend::Postgres;
        Ok(Self {
            db,
            workflows,
            templates: MailTemplates::embedded(false)?,
            transport,
            sender,
            policy: mail.retry_policy(),
            public_url: public_url.to_owned(),
            lock_rows,
            lease: lease_for(mail),
        })
    }

    /// Where the mail goes, for the log.
    pub fn transport(&self) -> &MailTransport {
        &self.transport
    }

    /// Delivers due messages one at a time until none is due, `keep_going` says stop, or the
    /// transport fails in a way that retrying later may fix (the rest waits for the next run).
    pub async fn run_once(
        &self,
        clock: &Clock,
        keep_going: impl Fn() -> bool,
    ) -> Result<DispatchReport, DbErr> {
        let mut report = DispatchReport::default();
        while keep_going() {
            let Some(recorded) = self.deliver_next(clock.now()).await? else {
                break;
            };
            match recorded {
                Recorded::Sent => report.sent += 1,
                Recorded::Failed => report.failed += 1,
                Recorded::Retry(_) => {
                    report.retrying += 1;
                    break;
                }
                Recorded::Lost => {}
            }
        }
        Ok(report)
    }

    /// Claims, sends and records the next due message; `None` when nothing is due.
    pub async fn deliver_next(&self, now: DateTime<Utc>) -> Result<Option<Recorded>, DbErr> {
        if self.lock_rows {
            let txn = self.db.begin().await?;
            let Some(row) = outbox::claim_next_locked(&txn, now).await? else {
                txn.commit().await?;
                return Ok(None);
            };
            let attempt = self.attempt(&txn, &row, now).await?;
            let recorded = outbox::record(&txn, &row, attempt, self.policy, now).await?;
            txn.commit().await?;
            log(&row, recorded);
            Ok(Some(recorded))
        } else {
            let Some(row) = outbox::lease_next(&self.db, now, self.lease).await? else {
                return Ok(None);
            };
            let attempt = self.attempt(&self.db, &row, now).await?;
            let recorded = outbox::record(&self.db, &row, attempt, self.policy, now).await?;
            log(&row, recorded);
            Ok(Some(recorded))
        }
    }

    async fn attempt(
        &self,
        conn: &impl ConnectionTrait,
        row: &outbox_entity::Model,
        now: DateTime<Utc>,
    ) -> Result<Attempt, DbErr> {
        let prepared = match notifications::prepare(
            conn,
            &self.workflows,
            row,
            jst_date(now),
            &self.public_url,
        )
        .await
        {
            Ok(p) => p,
            Err(PrepareError::Db(e)) => return Err(e),
            Err(PrepareError::Unusable(error)) => return Ok(permanent(error)),
        };
        let rendered = match self.templates.render(&prepared.template, &prepared.data) {
            Ok(r) => r,
            Err(e) => return Ok(permanent(e.to_string())),
        };
        // Users who take a daily digest get this message in tomorrow's digest instead.
        let held = if prepared.template == DIGEST_TEMPLATE {
            Vec::new()
        } else {
            digests::digest_users(conn, &prepared.addresses).await?
        };
        let link = prepared.data["link"].as_str().unwrap_or_default();
        digests::hold(
            conn,
            &row.id,
            &held,
            &rendered.subject,
            link,
            jst_date(now),
            now,
        )
        .await?;
        let held_addresses: BTreeSet<&str> = held.iter().map(|(_, a)| a.as_str()).collect();
        let mut addresses = Vec::new();
        for text in &prepared.addresses {
            if held_addresses.contains(text.as_str()) {
                continue;
            }
            match text.parse::<Address>() {
                Ok(a) => addresses.push(a),
                Err(e) => {
                    tracing::warn!(id = %row.id, address = %text, %e, "skipped an invalid address")
                }
            }
        }
        if addresses.is_empty() && !held.is_empty() {
            // Everyone takes the digest: nothing to send now.
            return Ok(Attempt::Accepted {
                addresses: Vec::new(),
            });
        }
        if addresses.is_empty() {
            return Ok(permanent(
                "no recipient has a usable e-mail address (users.email or the organisation's contacts)",
            ));
        }
        let message = match self.message(&row.id, &addresses, &rendered, now) {
            Ok(m) => m,
            Err(e) => return Ok(permanent(e)),
        };
        Ok(match self.transport.send(&row.id, message).await {
            Ok(()) => Attempt::Accepted {
                addresses: addresses.iter().map(ToString::to_string).collect(),
            },
            Err(e) => Attempt::Failed {
                error: e.message,
                permanent: e.permanent,
            },
        })
    }

    /// One message for every recipient. A single recipient is shown in `To`; several are
    /// addressed in the envelope only, as with Bcc (never shown to each other), and `To`
    /// shows the sender. The `Message-ID` is the row's id, the same on every attempt.
    fn message(
        &self,
        id: &str,
        to: &[Address],
        mail: &RenderedMail,
        now: DateTime<Utc>,
    ) -> Result<Message, String> {
        let visible = match to {
            [one] => Mailbox::new(None, one.clone()),
            _ => self.sender.clone(),
        };
        let envelope = Envelope::new(Some(self.sender.email.clone()), to.to_vec())
            .map_err(|e| e.to_string())?;
        Message::builder()
            .from(self.sender.clone())
            .to(visible)
            .subject(mail.subject.clone())
            .message_id(Some(format!("<{id}@{}>", self.sender.email.domain())))
            .date(SystemTime::from(now))
            .envelope(envelope)
            .multipart(MultiPart::alternative_plain_html(
                mail.text.clone(),
                mail.html.clone(),
            ))
            .map_err(|e| e.to_string())
    }
}

/// Longer than any send can take: lettre bounds each SMTP command by the timeout, and a
/// message takes a handful of them.
fn lease_for(mail: &MailSettings) -> chrono::Duration {
    let seconds = mail
        .smtp_timeout_seconds
        .saturating_mul(10)
        .saturating_add(60);
    chrono::Duration::seconds(i64::try_from(seconds).unwrap_or(i64::MAX / 1000))
}

fn permanent(error: impl Into<String>) -> Attempt {
    Attempt::Failed {
        error: error.into(),
        permanent: true,
    }
}

fn log(row: &outbox_entity::Model, recorded: Recorded) {
    let template = row.template.as_deref().unwrap_or("");
    match recorded {
        Recorded::Sent => tracing::info!(id = %row.id, template, "mail sent"),
        Recorded::Retry(at) => {
            tracing::warn!(id = %row.id, template, %at, "mail not delivered; will retry")
        }
        Recorded::Failed => tracing::error!(id = %row.id, template, "mail failed for good"),
        Recorded::Lost => tracing::warn!(id = %row.id, "another dispatcher recorded this mail"),
    }
}

/// Runs the dispatcher every `period` (the first run at start) until told to stop; also
/// stops between two messages when told.
pub async fn run_periodically(
    dispatcher: Dispatcher,
    clock: Clock,
    period: std::time::Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut every = tokio::time::interval(period);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => {
                let stopping = stop.clone();
                match dispatcher.run_once(&clock, || !*stopping.borrow()).await {
                    Ok(DispatchReport { sent: 0, retrying: 0, failed: 0 }) => {}
                    Ok(report) => tracing::info!(?report, "mail dispatched"),
                    Err(error) => tracing::warn!(?error, "the mail dispatcher could not read the outbox"),
                }
            }
            _ = stop.changed() => return,
        }
    }
}
