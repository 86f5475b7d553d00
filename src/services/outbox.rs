//! Outgoing side effects (notifications), written in the transition's transaction and
//! delivered later by a dispatcher.

use chrono::{DateTime, Utc};
use entity::outbox::{self, OutboxStatus};
use sea_orm::{ConnectionTrait, DbErr, Set};
use serde_json::Value;

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
    };
    insert_once(conn, model, outbox::Column::IdempotencyKey, id).await
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
