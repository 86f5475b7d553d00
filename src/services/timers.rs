//! Business-day timers started and cancelled by transitions, and fired by the scheduler.
//!
//! A timer is due `business_days` business days after the Japanese date it started on
//! ([`BusinessCalendar`]). Firing claims it with a conditional update (`fired_at` set only while
//! it is neither fired nor cancelled) and writes its notification in the same transaction, so
//! each timer fires once however many schedulers race (the outbox key `timer:<id>` backs this).

use chrono::{DateTime, NaiveDate, Utc};
use entity::{timer, workflow_instance};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder,
    Set, TransactionTrait,
};
use serde::Serialize;
use serde_json::{json, Value};

use crate::clock::jst_date;
use crate::schedule::calendar::BusinessCalendar;
use crate::services::db_time::to_db_precision;
use crate::services::idempotency::{insert_once, keyed_uuid_v7, Insertion};
use crate::services::outbox;
use crate::workflow::{Now, StoredInstance, WorkflowSet};

/// One timer to start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewTimer {
    /// Names the logical timer start; see [`crate::services::idempotency`].
    pub idempotency_key: String,
    pub instance_id: String,
    /// The timer's name in the workflow definition.
    pub timer: String,
    /// What happens when it fires.
    pub action: String,
    pub role: Option<String>,
    pub template: String,
    pub business_days: i32,
    pub started_at: DateTime<Utc>,
}

/// Starts a timer. A second start with the same idempotency key writes nothing and returns
/// [`Insertion::AlreadyPresent`] (not an error, so the caller's transaction stays usable).
pub async fn start(conn: &impl ConnectionTrait, new: NewTimer) -> Result<Insertion, DbErr> {
    let started_at = to_db_precision(new.started_at);
    let id = keyed_uuid_v7("timers", &new.idempotency_key, started_at);
    let model = timer::ActiveModel {
        id: Set(id.clone()),
        idempotency_key: Set(new.idempotency_key),
        instance_id: Set(new.instance_id),
        timer: Set(new.timer),
        action: Set(new.action),
        role: Set(new.role),
        template: Set(new.template),
        business_days: Set(new.business_days),
        started_at: Set(started_at),
        cancelled_at: Set(None),
        fired_at: Set(None),
    };
    insert_once(conn, model, id).await
}

/// Cancels the instance's running timers of that name (neither cancelled nor fired) and returns
/// how many. Cancelling again, or a timer that already fired, changes nothing.
pub async fn cancel(
    conn: &impl ConnectionTrait,
    instance_id: &str,
    timer: &str,
    at: DateTime<Utc>,
) -> Result<u64, DbErr> {
    let result = timer::Entity::update_many()
        .col_expr(timer::Column::CancelledAt, Expr::value(to_db_precision(at)))
        .filter(timer::Column::InstanceId.eq(instance_id))
        .filter(timer::Column::Timer.eq(timer))
        .filter(timer::Column::CancelledAt.is_null())
        .filter(timer::Column::FiredAt.is_null())
        .exec(conn)
        .await?;
    Ok(result.rows_affected)
}

/// A timer that fired.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FiredTimer {
    pub id: String,
    pub instance_id: String,
    pub timer: String,
    pub action: String,
    pub due: NaiveDate,
}

/// The day a timer is due: `business_days` business days after its start (Japan time).
pub fn due_on(calendar: &mut BusinessCalendar, t: &timer::Model) -> NaiveDate {
    calendar.add_business_days(
        jst_date(t.started_at),
        u32::try_from(t.business_days).unwrap_or(0),
    )
}

/// Fires every running timer due on or before `now.today`, each in its own transaction with
/// its notification; returns those this caller fired (a timer another scheduler fired first
/// is skipped).
pub async fn fire_due(
    db: &DatabaseConnection,
    workflows: &WorkflowSet,
    calendar: &mut BusinessCalendar,
    now: Now,
) -> Result<Vec<FiredTimer>, DbErr> {
    let running = timer::Entity::find()
        .filter(timer::Column::FiredAt.is_null())
        .filter(timer::Column::CancelledAt.is_null())
        .order_by_asc(timer::Column::StartedAt)
        .order_by_asc(timer::Column::Id)
        .all(db)
        .await?;
    let mut fired = Vec::new();
    for t in running {
        let due = due_on(calendar, &t);
        if due > now.today {
            continue;
        }
        let txn = db.begin().await?;
        if fire_one(&txn, workflows, &t, due, now).await? {
            txn.commit().await?;
            fired.push(FiredTimer {
                id: t.id,
                instance_id: t.instance_id,
                timer: t.timer,
                action: t.action,
                due,
            });
        } else {
            txn.rollback().await?;
        }
    }
    Ok(fired)
}

/// Claims one timer and writes its notification; `false` when it was no longer running.
async fn fire_one(
    txn: &impl ConnectionTrait,
    workflows: &WorkflowSet,
    t: &timer::Model,
    due: NaiveDate,
    now: Now,
) -> Result<bool, DbErr> {
    let at = to_db_precision(now.at);
    let claimed = timer::Entity::update_many()
        .col_expr(timer::Column::FiredAt, Expr::value(Some(at)))
        .filter(timer::Column::Id.eq(t.id.as_str()))
        .filter(timer::Column::FiredAt.is_null())
        .filter(timer::Column::CancelledAt.is_null())
        .exec(txn)
        .await?;
    if claimed.rows_affected != 1 {
        return Ok(false);
    }
    let Some(instance) = workflow_instance::Entity::find_by_id(t.instance_id.as_str())
        .one(txn)
        .await?
    else {
        return Ok(true);
    };
    let (recipients, waiting, label) = addressees(workflows, &instance, t);
    outbox::enqueue(
        txn,
        outbox::OutboxRow {
            idempotency_key: format!("timer:{}", t.id),
            instance_id: Some(t.instance_id.clone()),
            effect: outbox::MAIL_EFFECT.to_owned(),
            template: Some(t.template.clone()),
            recipients,
            payload: json!({
                "params": { "role": t.role },
                "waiting": waiting,
                "timer": {
                    "id": t.timer,
                    "label": label,
                    "action": t.action,
                    "business_days": t.business_days,
                    "started_on": jst_date(t.started_at).to_string(),
                    "due": due.to_string(),
                },
            }),
            now: at,
        },
    )
    .await?;
    Ok(true)
}

/// Who a fired timer notifies, what the instance waits for, and the timer's label: a reminder
/// goes to the actors of the current step; an escalation to the holders of the timer's role in
/// the root consignor (in every organisation of the instance when it names none).
fn addressees(
    workflows: &WorkflowSet,
    instance: &workflow_instance::Model,
    t: &timer::Model,
) -> (Value, Value, Value) {
    let rt = workflows.get(
        &instance.workflow_id,
        u32::try_from(instance.workflow_version).unwrap_or(0),
    );
    let stored = StoredInstance {
        state: instance.state.clone(),
        submitter: instance.submitter.clone(),
        context: serde_json::from_str(&instance.context).unwrap_or(Value::Null),
        progress: serde_json::from_str(&instance.progress).unwrap_or(Value::Null),
    };
    let waiting = rt
        .and_then(|rt| rt.waiting_for(&stored).ok().flatten())
        .map_or(Value::Null, |w| json!(w));
    let label = rt
        .and_then(|rt| {
            rt.describe()
                .timers
                .into_iter()
                .find(|d| d.id == t.timer)
                .map(|d| json!(d.label))
        })
        .unwrap_or(Value::Null);
    let recipients = match (t.action.as_str(), t.role.as_deref()) {
        ("escalate", Some(role)) => {
            let root = rt.and_then(|rt| {
                rt.scope_organisation(&stored, "root_consignor")
                    .ok()
                    .flatten()
            });
            match root {
                Some(org) => json!([{ "role": role, "org": org }]),
                None => json!(["role_holders"]),
            }
        }
        _ => json!(["next_actors"]),
    };
    (recipients, waiting, label)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::test_db::{backend_tests, insert_instance, Backend, TestDb, TestResult};
    use chrono::{Duration, TimeZone};
    use sea_orm::{EntityTrait, QueryOrder};

    fn reminder(key: &str, instance_id: &str, name: &str, at: DateTime<Utc>) -> NewTimer {
        NewTimer {
            idempotency_key: key.to_owned(),
            instance_id: instance_id.to_owned(),
            timer: name.to_owned(),
            action: "remind".to_owned(),
            role: Some("manager".to_owned()),
            template: "approval_reminder".to_owned(),
            business_days: 3,
            started_at: at,
        }
    }

    async fn a_timer_starts_once_per_key_and_cancels_only_running_timers_of_its_name(
        backend: Backend,
    ) -> TestResult {
        let db = TestDb::fresh(backend).await?;
        let t0 = Utc
            .timestamp_opt(1_795_000_000, 5_000_999)
            .single()
            .ok_or("valid timestamp")?;
        insert_instance(&db.conn, "i1", t0).await?;
        insert_instance(&db.conn, "i2", t0).await?;

        let first = start(&db.conn, reminder("i1:1:0", "i1", "remind", t0)).await?;
        assert!(matches!(first, Insertion::Inserted { .. }));
        assert_eq!(
            start(&db.conn, reminder("i1:1:0", "i1", "remind", t0)).await?,
            Insertion::AlreadyPresent
        );
        start(&db.conn, reminder("i1:1:1", "i1", "deadline", t0)).await?;
        start(&db.conn, reminder("i2:1:0", "i2", "remind", t0)).await?;

        let t1 = t0 + Duration::hours(2);
        assert_eq!(cancel(&db.conn, "i1", "remind", t1).await?, 1);
        assert_eq!(cancel(&db.conn, "i1", "remind", t1).await?, 0);

        let timers = timer::Entity::find()
            .order_by_asc(timer::Column::IdempotencyKey)
            .all(&db.conn)
            .await?;
        let cancelled: Vec<(&str, Option<DateTime<Utc>>)> = timers
            .iter()
            .map(|t| (t.idempotency_key.as_str(), t.cancelled_at))
            .collect();
        assert_eq!(
            cancelled,
            vec![
                ("i1:1:0", Some(to_db_precision(t1))),
                ("i1:1:1", None),
                ("i2:1:0", None),
            ]
        );
        assert_eq!(timers[0].started_at, to_db_precision(t0));
        assert_eq!(timers[0].business_days, 3);
        db.close().await
    }

    backend_tests!(a_timer_starts_once_per_key_and_cancels_only_running_timers_of_its_name);
}
