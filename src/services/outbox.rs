//! Outgoing side effects (notifications), written in the transition's transaction and
//! delivered later by a dispatcher.

use chrono::{DateTime, Duration, Utc};
use entity::outbox::{self, OutboxStatus};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, Set, Statement,
};
use serde::Serialize;
use serde_json::Value;

use crate::services::chains::{Page, Paged};
use crate::services::db_time::to_db_precision;
use crate::services::idempotency::{insert_once, keyed_uuid_v7, Insertion};

/// One message to enqueue.
#[derive(Clone, Debug, PartialEq)]
pub struct OutboxRow {
    /// Names the logical message; see [`crate::services::idempotency`].
    pub idempotency_key: String,
    pub instance_id: Option<String>,
    /// The effect's name in the workflow definition (e.g. `notify`).
    pub effect: String,
    pub template: Option<String>,
    pub recipients: Value,
    pub payload: Value,
    /// Creation time; also the first delivery attempt time.
    pub now: DateTime<Utc>,
}

/// Inserts a pending message. A second insert with the same idempotency key writes nothing and
/// returns [`Insertion::AlreadyPresent`] (not an error, so the caller's transaction stays usable);
/// the first row is kept as it was.
pub async fn enqueue(conn: &impl ConnectionTrait, row: OutboxRow) -> Result<Insertion, DbErr> {
    let now = to_db_precision(row.now);
    let id = keyed_uuid_v7("outbox", &row.idempotency_key, now);
    let model = outbox::ActiveModel {
        id: Set(id.clone()),
        idempotency_key: Set(row.idempotency_key),
        instance_id: Set(row.instance_id),
        effect: Set(row.effect),
        template: Set(row.template),
        recipients: Set(row.recipients.to_string()),
        payload: Set(row.payload.to_string()),
        status: Set(OutboxStatus::Pending),
        attempts: Set(0),
        next_attempt_at: Set(now),
        last_error: Set(None),
        created_at: Set(now),
        sent_at: Set(None),
        delivered_to: Set(None),
    };
    insert_once(conn, model, id).await
}

/// The effect whose rows are mail; other effects (documents) are not the dispatcher's.
pub const MAIL_EFFECT: &str = "notify";

/// Longest wait between two delivery attempts.
const MAX_BACKOFF: Duration = Duration::hours(6);

/// How often and how patiently delivery is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts before a message is marked failed for good.
    pub max_attempts: u32,
    /// The wait after the first failed attempt; it doubles with each further one (at most 6 h).
    pub base_delay: Duration,
}

impl RetryPolicy {
    /// The wait after the `attempts`-th failed attempt.
    pub fn backoff(&self, attempts: u32) -> Duration {
        let doublings = attempts.saturating_sub(1).min(30);
        let factor = 1_i32.checked_shl(doublings).unwrap_or(i32::MAX);
        self.base_delay
            .checked_mul(factor)
            .map_or(MAX_BACKOFF, |d| d.min(MAX_BACKOFF))
    }
}

/// How one delivery attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// The server accepted the message for these addresses.
    Accepted { addresses: Vec<String> },
    /// It failed; `permanent` when retrying cannot help (a refused address, no recipient, a
    /// template that does not render).
    Failed { error: String, permanent: bool },
}

/// What became of the row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    Sent,
    /// Tried again at the given time.
    Retry(DateTime<Utc>),
    Failed,
    /// Someone else recorded an outcome first (SQLite: a second dispatcher); nothing written.
    Lost,
}

fn due(now: DateTime<Utc>) -> sea_orm::Select<outbox::Entity> {
    outbox::Entity::find()
        .filter(outbox::Column::Status.eq(OutboxStatus::Pending))
        .filter(outbox::Column::Effect.eq(MAIL_EFFECT))
        .filter(outbox::Column::NextAttemptAt.lte(to_db_precision(now)))
        .order_by_asc(outbox::Column::NextAttemptAt)
        .order_by_asc(outbox::Column::Id)
}

/// PostgreSQL: locks the next due message inside the caller's transaction, skipping those
/// other dispatchers hold (`FOR UPDATE SKIP LOCKED`), so no two dispatchers ever hold one row.
pub async fn claim_next_locked(
    txn: &impl ConnectionTrait,
    now: DateTime<Utc>,
) -> Result<Option<outbox::Model>, DbErr> {
    let sql = "SELECT * FROM outbox WHERE status = 'pending' AND effect = $1 \
               AND next_attempt_at <= $2 ORDER BY next_attempt_at, id LIMIT 1 \
               FOR UPDATE SKIP LOCKED";
    outbox::Entity::find()
        .from_raw_sql(Statement::from_sql_and_values(
            DbBackend::Postgres,
            sql,
            [MAIL_EFFECT.into(), to_db_precision(now).into()],
        ))
        .one(txn)
        .await
}

/// SQLite (no row locks, and no transaction may stay open while sending): leases the next due
/// message by moving its `next_attempt_at` to `now + lease` with a compare-and-set, so that
/// another dispatcher on the same database skips it while it is being sent. If the sender dies,
/// the message is due again when the lease ends. Returns the row as it was before the lease.
pub async fn lease_next(
    conn: &impl ConnectionTrait,
    now: DateTime<Utc>,
    lease: Duration,
) -> Result<Option<outbox::Model>, DbErr> {
    // Each lost compare-and-set means another dispatcher took a row; a few tries suffice.
    for _ in 0..8 {
        let Some(row) = due(now).one(conn).await? else {
            return Ok(None);
        };
        let taken = outbox::Entity::update_many()
            .col_expr(
                outbox::Column::NextAttemptAt,
                Expr::value(to_db_precision(now + lease)),
            )
            .filter(outbox::Column::Id.eq(row.id.as_str()))
            .filter(outbox::Column::Status.eq(OutboxStatus::Pending))
            .filter(outbox::Column::Attempts.eq(row.attempts))
            .filter(outbox::Column::NextAttemptAt.eq(row.next_attempt_at))
            .exec(conn)
            .await?;
        if taken.rows_affected == 1 {
            return Ok(Some(row));
        }
    }
    Ok(None)
}

/// Records an attempt on `row` as it was read: the update applies only if the row is still
/// pending with the same attempt count, so an outcome is never recorded twice.
pub async fn record(
    conn: &impl ConnectionTrait,
    row: &outbox::Model,
    attempt: Attempt,
    policy: RetryPolicy,
    now: DateTime<Utc>,
) -> Result<Recorded, DbErr> {
    let now = to_db_precision(now);
    let attempts = row.attempts.saturating_add(1);
    let mut update = outbox::Entity::update_many()
        .col_expr(outbox::Column::Attempts, Expr::value(attempts))
        .filter(outbox::Column::Id.eq(row.id.as_str()))
        .filter(outbox::Column::Status.eq(OutboxStatus::Pending))
        .filter(outbox::Column::Attempts.eq(row.attempts));
    let recorded = match attempt {
        Attempt::Accepted { addresses } => {
            update = update
                .col_expr(outbox::Column::Status, Expr::value(OutboxStatus::Sent))
                .col_expr(outbox::Column::SentAt, Expr::value(Some(now)))
                .col_expr(outbox::Column::LastError, Expr::value(None::<String>))
                .col_expr(
                    outbox::Column::DeliveredTo,
                    Expr::value(Some(serde_json::json!(addresses).to_string())),
                );
            Recorded::Sent
        }
        Attempt::Failed { error, permanent } => {
            update = update.col_expr(outbox::Column::LastError, Expr::value(Some(error)));
            if permanent || u32::try_from(attempts).unwrap_or(u32::MAX) >= policy.max_attempts {
                update = update.col_expr(outbox::Column::Status, Expr::value(OutboxStatus::Failed));
                Recorded::Failed
            } else {
                let next = to_db_precision(
                    now + policy.backoff(u32::try_from(attempts).unwrap_or(u32::MAX)),
                );
                update = update.col_expr(outbox::Column::NextAttemptAt, Expr::value(next));
                Recorded::Retry(next)
            }
        }
    };
    let result = update.exec(conn).await?;
    Ok(if result.rows_affected == 1 {
        recorded
    } else {
        Recorded::Lost
    })
}

/// Why a message cannot be retried.
#[derive(Debug, thiserror::Error)]
pub enum RetryError {
    #[error(transparent)]
    Db(#[from] DbErr),
    #[error("no such message")]
    NotFound,
    #[error("the message is {0:?}, not failed")]
    NotFailed(OutboxStatus),
}

/// Puts a failed message back in the queue for a fresh round of attempts, due now. Its last
/// error stays until the next attempt replaces it.
pub async fn retry(
    conn: &impl ConnectionTrait,
    id: &str,
    now: DateTime<Utc>,
) -> Result<outbox::Model, RetryError> {
    let result = outbox::Entity::update_many()
        .col_expr(outbox::Column::Status, Expr::value(OutboxStatus::Pending))
        .col_expr(outbox::Column::Attempts, Expr::value(0))
        .col_expr(
            outbox::Column::NextAttemptAt,
            Expr::value(to_db_precision(now)),
        )
        .filter(outbox::Column::Id.eq(id))
        .filter(outbox::Column::Effect.eq(MAIL_EFFECT))
        .filter(outbox::Column::Status.eq(OutboxStatus::Failed))
        .exec(conn)
        .await?;
    let row = outbox::Entity::find_by_id(id)
        .filter(outbox::Column::Effect.eq(MAIL_EFFECT))
        .one(conn)
        .await?
        .ok_or(RetryError::NotFound)?;
    if result.rows_affected == 0 {
        return Err(RetryError::NotFailed(row.status));
    }
    Ok(row)
}

/// A mail message as the admin API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct MessageView {
    pub id: String,
    pub idempotency_key: String,
    pub instance_id: Option<String>,
    pub template: Option<String>,
    #[schema(value_type = String)]
    pub status: OutboxStatus,
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
    /// The addresses it was accepted for, once sent.
    pub delivered_to: Option<Vec<String>>,
}

impl From<outbox::Model> for MessageView {
    fn from(m: outbox::Model) -> Self {
        Self {
            delivered_to: m
                .delivered_to
                .as_deref()
                .and_then(|t| serde_json::from_str(t).ok()),
            id: m.id,
            idempotency_key: m.idempotency_key,
            instance_id: m.instance_id,
            template: m.template,
            status: m.status,
            attempts: m.attempts,
            next_attempt_at: m.next_attempt_at,
            last_error: m.last_error,
            created_at: m.created_at,
            sent_at: m.sent_at,
        }
    }
}

/// Mail messages in `status` (all when `None`), newest first, one page.
pub async fn list(
    conn: &impl ConnectionTrait,
    status: Option<OutboxStatus>,
    page: Page,
) -> Result<Paged<MessageView>, DbErr> {
    let mut query = outbox::Entity::find().filter(outbox::Column::Effect.eq(MAIL_EFFECT));
    if let Some(status) = status {
        query = query.filter(outbox::Column::Status.eq(status));
    }
    let total = query.clone().count(conn).await?;
    let rows = query
        .order_by_desc(outbox::Column::CreatedAt)
        .order_by_desc(outbox::Column::Id)
        .offset(page.offset())
        .limit(page.limit())
        .all(conn)
        .await?;
    Ok(Paged::new(
        rows.into_iter().map(MessageView::from).collect(),
        total,
        page,
    ))
}

/// How many mail messages are in each state (every state, zero included).
pub async fn counts(conn: &impl ConnectionTrait) -> Result<Vec<(OutboxStatus, u64)>, DbErr> {
    let mut counts = Vec::new();
    for status in [
        OutboxStatus::Pending,
        OutboxStatus::Sent,
        OutboxStatus::Failed,
    ] {
        let n = outbox::Entity::find()
            .filter(outbox::Column::Effect.eq(MAIL_EFFECT))
            .filter(outbox::Column::Status.eq(status))
            .count(conn)
            .await?;
        counts.push((status, n));
    }
    Ok(counts)
}

/// One mail message (`None` for an unknown id or a row that is not mail).
pub async fn find_message(
    conn: &impl ConnectionTrait,
    id: &str,
) -> Result<Option<outbox::Model>, DbErr> {
    outbox::Entity::find_by_id(id)
        .filter(outbox::Column::Effect.eq(MAIL_EFFECT))
        .one(conn)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::test_db::{backend_tests, insert_instance, Backend, TestDb, TestResult};
    use chrono::TimeZone;
    use sea_orm::{EntityTrait, PaginatorTrait, TransactionTrait};
    use serde_json::json;

    fn message(key: &str, instance_id: &str, now: DateTime<Utc>) -> OutboxRow {
        OutboxRow {
            idempotency_key: key.to_owned(),
            instance_id: Some(instance_id.to_owned()),
            effect: "notify".to_owned(),
            template: Some("application_returned".to_owned()),
            recipients: json!(["user-1", {"role": "officer"}]),
            payload: json!({"comment": "証跡を追加してください"}),
            now,
        }
    }

    async fn a_duplicate_key_is_a_no_op_that_keeps_the_transaction_usable(
        backend: Backend,
    ) -> TestResult {
        let db = TestDb::fresh(backend).await?;
        let now = Utc
            .timestamp_opt(1_795_000_000, 987_654_321)
            .single()
            .ok_or("valid timestamp")?;
        insert_instance(&db.conn, "i1", now).await?;

        let txn = db.conn.begin().await?;
        let first = enqueue(&txn, message("i1:1:0", "i1", now)).await?;
        let Insertion::Inserted { id } = first else {
            return Err("the first insert must write a row".into());
        };
        let mut retry = message("i1:1:0", "i1", now + chrono::Duration::seconds(5));
        retry.payload = json!({"comment": "changed"});
        assert_eq!(enqueue(&txn, retry).await?, Insertion::AlreadyPresent);
        // The transaction is still usable after the duplicate (a unique violation would have
        // aborted it on PostgreSQL).
        let other = enqueue(&txn, message("i1:1:1", "i1", now)).await?;
        assert!(matches!(other, Insertion::Inserted { .. }));
        txn.commit().await?;

        assert_eq!(outbox::Entity::find().count(&db.conn).await?, 2);
        let stored = outbox::Entity::find_by_id(id)
            .one(&db.conn)
            .await?
            .ok_or("row present")?;
        assert_eq!(stored.payload, r#"{"comment":"証跡を追加してください"}"#);
        assert_eq!(stored.status, OutboxStatus::Pending);
        assert_eq!(stored.attempts, 0);
        assert_eq!(stored.created_at, to_db_precision(now));
        assert_eq!(stored.next_attempt_at, to_db_precision(now));
        assert_eq!(stored.sent_at, None);
        db.close().await
    }

    backend_tests!(a_duplicate_key_is_a_no_op_that_keeps_the_transaction_usable);
}
