//! Rows written for a side effect (outbox messages, timers) carry an idempotency key, UNIQUE in
//! its table. Inserting a second row with a key already present is a no-op reported as
//! [`Insertion::AlreadyPresent`], never an error: on PostgreSQL a unique violation would abort the
//! caller's whole transition transaction, whereas `ON CONFLICT DO NOTHING` leaves it usable.
//!
//! A good key names the logical message, e.g. `"{instance_id}:{audit_seq}:{effect_index}"`:
//! the audit seq of the transition that caused it and the effect's position in that transition.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveModelTrait, ConnectionTrait, DbErr, EntityTrait, IntoActiveModel};
use sha2::{Digest, Sha256};

/// What an idempotent insert did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Insertion {
    /// A new row was written with this id.
    Inserted { id: String },
    /// A row with the same idempotency key already exists; nothing was written.
    AlreadyPresent,
}

/// Inserts `row` (whose primary key `id` is derived from its UNIQUE idempotency key) unless a
/// row with the same key or id exists, in which case nothing is written.
pub(crate) async fn insert_once<A>(
    conn: &impl ConnectionTrait,
    row: A,
    id: String,
) -> Result<Insertion, DbErr>
where
    A: ActiveModelTrait,
    <A::Entity as EntityTrait>::Model: IntoActiveModel<A>,
{
    // No conflict target: the id is derived from the key and the time, so two writers racing
    // in the same millisecond collide on the primary key rather than on `key` (PostgreSQL
    // would then raise a unique violation); either way the row exists.
    let inserted = <A::Entity as EntityTrait>::insert(row)
        .on_conflict(OnConflict::new().do_nothing().to_owned())
        .exec_without_returning(conn)
        .await?;
    Ok(if inserted == 0 {
        Insertion::AlreadyPresent
    } else {
        Insertion::Inserted { id }
    })
}

/// A UUID v7 for a keyed row: its time is `at`, its 74 "random" bits come from SHA-256 of the
/// table and key. No randomness is read, so services stay deterministic under test, and the id
/// stays time-ordered like any v7.
pub(crate) fn keyed_uuid_v7(table: &str, key: &str, at: DateTime<Utc>) -> String {
    let digest = Sha256::new()
        .chain_update(table.as_bytes())
        .chain_update([0u8])
        .chain_update(key.as_bytes())
        .finalize();
    let mut tail = [0u8; 10];
    tail.copy_from_slice(&digest[..10]);
    let millis = u64::try_from(at.timestamp_millis()).unwrap_or(0);
    uuid::Builder::from_unix_timestamp_millis(millis, &tail)
        .into_uuid()
        .hyphenated()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn keyed_ids_are_v7_deterministic_and_differ_by_key_and_table() -> Result<(), &'static str> {
        let at = Utc
            .timestamp_opt(1_795_000_000, 0)
            .single()
            .ok_or("valid timestamp")?;
        let a = keyed_uuid_v7("outbox", "i1:2:0", at);
        assert_eq!(a, keyed_uuid_v7("outbox", "i1:2:0", at));
        assert_ne!(a, keyed_uuid_v7("outbox", "i1:2:1", at));
        assert_ne!(a, keyed_uuid_v7("timers", "i1:2:0", at));
        let parsed = uuid::Uuid::parse_str(&a).map(|u| u.get_version_num());
        assert_eq!(parsed.ok(), Some(7));
        Ok(())
    }
}
