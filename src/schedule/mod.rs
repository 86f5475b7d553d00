//! Business-day arithmetic for deadlines, and the scheduler: workflow timers, evidence-expiry
//! reminders, and the generation and reminders of obligations.

pub mod calendar;

use std::sync::Arc;

use sea_orm::DatabaseConnection;
use serde::Serialize;
use tokio::sync::watch;

use crate::clock::Clock;
use crate::config::Settings;
use crate::domain::obligations::ObligationPolicy;
use crate::services::{digests, obligations, reminders, timers};
use crate::workflow::{Now, WorkflowSet};

/// The obligation policy of these settings: the file named by `obligation_policy`, else the
/// built-in one.
pub fn load_obligation_policy(settings: &Settings) -> Result<ObligationPolicy, String> {
    match &settings.obligation_policy {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
            ObligationPolicy::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
        }
        None => ObligationPolicy::default_policy(),
    }
}

/// What a scheduler pass needs.
#[derive(Clone)]
pub struct Scheduler {
    pub db: DatabaseConnection,
    pub workflows: Arc<WorkflowSet>,
    pub obligation_policy: Arc<ObligationPolicy>,
    pub evidence_reminder_days: Vec<u32>,
}

/// What one pass did.
#[derive(Debug, Default, Serialize)]
pub struct PassReport {
    pub timers: Vec<timers::FiredTimer>,
    pub evidence_reminders: Vec<reminders::EvidenceReminder>,
    pub obligations_created: u64,
    pub obligation_reminders: Vec<obligations::FiredStage>,
    /// The daily digests written for users who take one.
    pub digests: Vec<digests::WrittenDigest>,
}

impl PassReport {
    /// Whether the pass did nothing.
    pub fn is_empty(&self) -> bool {
        self.timers.is_empty()
            && self.evidence_reminders.is_empty()
            && self.obligations_created == 0
            && self.obligation_reminders.is_empty()
            && self.digests.is_empty()
    }
}

impl Scheduler {
    /// One pass on `now.today`: fires the due workflow timers, writes the evidence-expiry
    /// reminders reached, generates the 年度's obligations and fires their due reminder stages,
    /// and writes the daily digests of the messages held before that day.
    /// Safe with many replicas and beside `itaku remind`: everything is written once.
    pub async fn pass(
        &self,
        calendar: &mut calendar::BusinessCalendar,
        now: Now,
    ) -> Result<PassReport, sea_orm::DbErr> {
        let timers = timers::fire_due(&self.db, &self.workflows, calendar, now).await?;
        let evidence_reminders =
            reminders::remind_expiring_evidence(&self.db, &self.evidence_reminder_days, now)
                .await?;
        let obligations_created =
            obligations::generate(&self.db, &self.obligation_policy, calendar, now).await?;
        let obligation_reminders =
            obligations::remind_due(&self.db, &self.obligation_policy, calendar, now).await?;
        let digests = digests::write_due(&self.db, now.today, now.at).await?;
        Ok(PassReport {
            timers,
            evidence_reminders,
            obligations_created,
            obligation_reminders,
            digests,
        })
    }
}

/// Runs a scheduler pass every `period` (the first at start) until told to stop.
pub async fn remind_periodically(
    scheduler: Scheduler,
    clock: Clock,
    period: std::time::Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut calendar = calendar::BusinessCalendar::new();
    let mut every = tokio::time::interval(period);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => {
                let now = Now { at: clock.now(), today: clock.today_jst() };
                match scheduler.pass(&mut calendar, now).await {
                    Ok(report) if report.is_empty() => {}
                    Ok(report) => tracing::info!(?report, "scheduler pass"),
                    Err(error) => tracing::warn!(?error, "the scheduler pass failed"),
                }
            }
            _ = stop.changed() => return,
        }
    }
}
