//! Business-day arithmetic for deadlines and timers (reminders, escalations).

pub mod calendar;

use std::sync::Arc;

use sea_orm::DatabaseConnection;
use tokio::sync::watch;

use crate::clock::Clock;
use crate::services::timers;
use crate::workflow::{Now, WorkflowSet};

/// Fires due workflow timers every `period` (the first run at start) until told to stop. Safe
/// with many replicas: each timer fires once (see `services::timers`).
pub async fn fire_timers_periodically(
    db: DatabaseConnection,
    workflows: Arc<WorkflowSet>,
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
                match timers::fire_due(&db, &workflows, &mut calendar, now).await {
                    Ok(fired) if fired.is_empty() => {}
                    Ok(fired) => tracing::info!(?fired, "fired workflow timers"),
                    Err(error) => tracing::warn!(?error, "could not fire the workflow timers"),
                }
            }
            _ = stop.changed() => return,
        }
    }
}
