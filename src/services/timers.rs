//! Business-day timers started and cancelled by transitions; firing them is the scheduler's job.

use chrono::{DateTime, Utc};
use entity::timer;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, Set};

use crate::services::db_time::to_db_precision;
use crate::services::idempotency::{insert_once, keyed_uuid_v7, Insertion};

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
    insert_once(conn, model, timer::Column::IdempotencyKey, id).await
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
