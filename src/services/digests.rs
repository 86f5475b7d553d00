//! Daily digests: a user whose mail preference is `daily_digest` gets, instead of each
//! message, one `daily_digest` mail a day listing what they would have received.
//!
//! - **Holding** ([`hold`]): when the dispatcher sends a message, the addresses of digest users
//!   are taken out of it and the message is held for each of them (`mail_digest_items`, UNIQUE
//!   per user and message, so a retried delivery holds it once), on the connection that
//!   records the attempt. The others get the message as before.
//! - **Writing the digests** ([`write_due`], in each scheduler pass): the items held before
//!   today are claimed (PostgreSQL `FOR UPDATE SKIP LOCKED`; SQLite by taking the write lock
//!   first) and each user's become one outbox row keyed `digest:<user>:<day>`, written in the
//!   transaction that marks the items with it: one digest per user and day, however many
//!   schedulers race. Items a digest of the day already covered wait for the next day's.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use entity::{mail_digest_item, user};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, DbErr, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Set, Statement, TransactionTrait,
};
use serde::Serialize;
use serde_json::json;

use crate::services::db_time::to_db_precision;
use crate::services::idempotency::{keyed_uuid_v7, Insertion};
use crate::services::obligations::take_sqlite_write_lock;
use crate::services::outbox::{enqueue, OutboxRow, MAIL_EFFECT};
use crate::services::users::MAIL_DAILY_DIGEST;

/// The template of a digest; a digest is never itself held.
pub const DIGEST_TEMPLATE: &str = "daily_digest";
/// Items claimed per transaction.
const BATCH: u64 = 2_000;

/// The users among `addresses` who take a daily digest: `(user id, address)`, compared
/// case-insensitively.
pub async fn digest_users(
    conn: &impl ConnectionTrait,
    addresses: &[String],
) -> Result<Vec<(String, String)>, DbErr> {
    if addresses.is_empty() {
        return Ok(Vec::new());
    }
    let wanted: BTreeMap<String, &String> =
        addresses.iter().map(|a| (a.to_lowercase(), a)).collect();
    Ok(user::Entity::find()
        .filter(user::Column::MailPreference.eq(MAIL_DAILY_DIGEST))
        .filter(user::Column::Email.is_not_null())
        .all(conn)
        .await?
        .into_iter()
        .filter_map(|u| {
            let email = u.email?.to_lowercase();
            wanted.get(&email).map(|a| (u.id, (*a).clone()))
        })
        .collect())
}

/// Holds the message `outbox_id` for each digest user (once per user and message).
pub async fn hold(
    conn: &impl ConnectionTrait,
    outbox_id: &str,
    users: &[(String, String)],
    subject: &str,
    link: &str,
    today: NaiveDate,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    if users.is_empty() {
        return Ok(());
    }
    let at = to_db_precision(now);
    let rows = users
        .iter()
        .map(|(user_id, _)| mail_digest_item::ActiveModel {
            id: Set(keyed_uuid_v7(
                "mail_digest_items",
                &format!("{user_id}:{outbox_id}"),
                at,
            )),
            user_id: Set(user_id.clone()),
            outbox_id: Set(outbox_id.to_owned()),
            held_on: Set(today),
            subject: Set(subject.to_owned()),
            link: Set(link.to_owned()),
            digest_id: Set(None),
            created_at: Set(at),
        });
    mail_digest_item::Entity::insert_many(rows)
        .on_conflict(OnConflict::new().do_nothing().to_owned())
        .exec_without_returning(conn)
        .await?;
    Ok(())
}

/// A digest a pass wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WrittenDigest {
    pub user_id: String,
    pub day: NaiveDate,
    pub items: usize,
}

/// Writes today's digest of every user with items held before today; returns those this
/// caller wrote.
pub async fn write_due(
    db: &DatabaseConnection,
    today: NaiveDate,
    now: DateTime<Utc>,
) -> Result<Vec<WrittenDigest>, DbErr> {
    let mut written = Vec::new();
    loop {
        let txn = db.begin().await?;
        let batch = claim(&txn, today).await?;
        if batch.is_empty() {
            txn.rollback().await?;
            return Ok(written);
        }
        let mut by_user: BTreeMap<String, Vec<mail_digest_item::Model>> = BTreeMap::new();
        for item in batch {
            by_user.entry(item.user_id.clone()).or_default().push(item);
        }
        for (user_id, items) in by_user {
            let key = format!("digest:{user_id}:{today}");
            let listed: Vec<_> = items
                .iter()
                .map(|i| json!({ "subject": i.subject, "link": i.link }))
                .collect();
            let inserted = enqueue(
                &txn,
                OutboxRow {
                    idempotency_key: key.clone(),
                    instance_id: None,
                    effect: MAIL_EFFECT.to_owned(),
                    template: Some(DIGEST_TEMPLATE.to_owned()),
                    recipients: json!([{ "user": user_id }]),
                    payload: json!({
                        "path": "/inbox",
                        "digest": { "count": listed.len(), "items": listed },
                    }),
                    now,
                },
            )
            .await?;
            let ids: Vec<String> = items.iter().map(|i| i.id.clone()).collect();
            let update = mail_digest_item::Entity::update_many()
                .filter(mail_digest_item::Column::Id.is_in(ids))
                .filter(mail_digest_item::Column::DigestId.is_null());
            match inserted {
                Insertion::Inserted { id } => {
                    update
                        .col_expr(mail_digest_item::Column::DigestId, Expr::value(id))
                        .exec(&txn)
                        .await?;
                    written.push(WrittenDigest {
                        user_id,
                        day: today,
                        items: items.len(),
                    });
                }
                // Today's digest went out already: these wait for tomorrow's.
                Insertion::AlreadyPresent => {
                    update
                        .col_expr(mail_digest_item::Column::HeldOn, Expr::value(today))
                        .exec(&txn)
                        .await?;
                }
            }
        }
        txn.commit().await?;
    }
}

/// The next batch of items held before `today` and not yet in a digest, held for this
/// transaction.
async fn claim(
    txn: &impl ConnectionTrait,
    today: NaiveDate,
) -> Result<Vec<mail_digest_item::Model>, DbErr> {
    match txn.get_database_backend() {
        DbBackend::Postgres => {
            let sql = format!(
                "SELECT * FROM mail_digest_items WHERE digest_id IS NULL AND held_on < $1 \
                 ORDER BY user_id, created_at, id LIMIT {BATCH} FOR UPDATE SKIP LOCKED"
            );
            mail_digest_item::Entity::find()
                .from_raw_sql(Statement::from_sql_and_values(
                    DbBackend::Postgres,
                    sql,
                    [today.into()],
                ))
                .all(txn)
                .await
        }
        _ => {
            take_sqlite_write_lock(txn, "mail_digest_items").await?;
            mail_digest_item::Entity::find()
                .filter(mail_digest_item::Column::DigestId.is_null())
                .filter(mail_digest_item::Column::HeldOn.lt(today))
                .order_by_asc(mail_digest_item::Column::UserId)
                .order_by_asc(mail_digest_item::Column::CreatedAt)
                .order_by_asc(mail_digest_item::Column::Id)
                .limit(BATCH)
                .all(txn)
                .await
        }
    }
}
