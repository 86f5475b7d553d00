//! Timestamps as the database keeps them.
//!
//! PostgreSQL `timestamptz` keeps microseconds, so every timestamp is truncated to microseconds
//! before it is stored or hashed; a value then reads back from either backend bit for bit equal
//! to what was written.

use chrono::{DateTime, SecondsFormat, SubsecRound, Utc};

/// `at` truncated to whole microseconds, the precision both backends store.
pub fn to_db_precision(at: DateTime<Utc>) -> DateTime<Utc> {
    at.trunc_subsecs(6)
}

/// `at` as RFC 3339 in UTC with exactly six fractional digits: `2026-11-22T08:47:00.123456Z`.
pub fn rfc3339_micros(at: DateTime<Utc>) -> String {
    to_db_precision(at).to_rfc3339_opts(SecondsFormat::Micros, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn nanoseconds_are_truncated_not_rounded() {
        let at = Utc.timestamp_opt(1_795_000_000, 123_456_999).single();
        let truncated = at.map(to_db_precision).map(|t| t.timestamp_subsec_nanos());
        assert_eq!(truncated, Some(123_456_000));
    }

    #[test]
    fn rfc3339_micros_always_has_six_digits_and_z() {
        let at = Utc.timestamp_opt(1_795_000_000, 0).single();
        assert_eq!(
            at.map(rfc3339_micros).as_deref(),
            Some("2026-11-18T11:06:40.000000Z")
        );
    }
}
