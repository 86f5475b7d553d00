//! The one place that reads the wall clock.
//!
//! Everything else takes the instant from a [`Clock`] (usually `AppState::clock`), so tests can
//! pin time with [`Clock::Fixed`]. `clippy.toml` forbids reading the clock anywhere else.

use chrono::{DateTime, FixedOffset, NaiveDate, Offset as _, Utc};

/// Japan Standard Time is UTC+9 all year (no daylight saving), so a fixed offset is exact.
const JST_OFFSET_SECONDS: i32 = 9 * 3600;

/// Where "now" comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Clock {
    /// The operating system's clock.
    #[default]
    System,
    /// Always the given instant (tests, demos, replays).
    Fixed(DateTime<Utc>),
}

impl Clock {
    /// The current instant.
    #[allow(clippy::disallowed_methods)] // the single permitted read of the system clock
    pub fn now(&self) -> DateTime<Utc> {
        match self {
            Clock::System => Utc::now(),
            Clock::Fixed(at) => *at,
        }
    }

    /// Today's calendar date in Asia/Tokyo, the date that effective-dated records are compared with.
    pub fn today_jst(&self) -> NaiveDate {
        jst_date(self.now())
    }
}

/// The UTC+9 offset of Japan Standard Time.
pub fn jst() -> FixedOffset {
    // 9 hours is always within FixedOffset's ±24h range, so the UTC fallback is unreachable.
    FixedOffset::east_opt(JST_OFFSET_SECONDS).unwrap_or_else(|| Utc.fix())
}

/// The calendar date in Asia/Tokyo at the given instant.
pub fn jst_date(at: DateTime<Utc>) -> NaiveDate {
    at.with_timezone(&jst()).date_naive()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(rfc3339: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(rfc3339)
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default()
    }

    #[test]
    fn a_fixed_clock_always_answers_its_instant() {
        let clock = Clock::Fixed(at("2026-11-22T08:47:00Z"));
        assert_eq!(clock.now(), at("2026-11-22T08:47:00Z"));
        assert_eq!(clock.now(), clock.now());
    }

    #[test]
    fn the_japanese_date_turns_at_fifteen_hundred_utc() {
        let before = Clock::Fixed(at("2026-11-22T14:59:59Z"));
        let after = Clock::Fixed(at("2026-11-22T15:00:00Z"));
        assert_eq!(
            before.today_jst(),
            NaiveDate::from_ymd_opt(2026, 11, 22).unwrap_or_default()
        );
        assert_eq!(
            after.today_jst(),
            NaiveDate::from_ymd_opt(2026, 11, 23).unwrap_or_default()
        );
    }
}
