//! The only code that touches sea-orm. Every function takes a connection or a transaction
//! (`&impl ConnectionTrait`) so that a transition's writes commit together, and takes the time
//! as a parameter instead of reading the clock.

pub mod access;
pub mod admin;
pub mod application_scope;
pub mod applications;
pub mod audit;
pub mod batch;
pub mod chains;
pub mod committee;
pub mod db_time;
pub mod definitions;
pub mod digests;
pub mod document_index;
pub mod document_trail;
pub mod documents;
pub mod evidence;
pub mod group_commit;
pub mod history;
pub mod idempotency;
pub mod inbox;
pub mod instances;
pub mod ismap;
pub mod notifications;
pub mod obligations;
pub mod outbox;
pub mod recent;
pub mod reminders;
pub mod sql;
pub mod structure_chart;
pub mod timers;
pub mod tokens;
pub mod users;

#[cfg(test)]
pub(crate) mod test_db;

use chrono::{DateTime, Utc};
use uuid::{NoContext, Timestamp, Uuid};

/// A new UUID v7 (time-ordered) id, stamped with `now`.
pub fn new_id(now: DateTime<Utc>) -> String {
    let seconds = u64::try_from(now.timestamp()).unwrap_or(0);
    Uuid::new_v7(Timestamp::from_unix(
        NoContext,
        seconds,
        now.timestamp_subsec_nanos(),
    ))
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_version_7_and_ordered_by_time() {
        let earlier = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let later = DateTime::from_timestamp(1_800_000_001, 0).unwrap();
        let (a, b) = (new_id(earlier), new_id(later));
        assert_eq!(Uuid::parse_str(&a).unwrap().get_version_num(), 7);
        assert!(a < b);
        assert_ne!(new_id(earlier), new_id(earlier));
    }
}
