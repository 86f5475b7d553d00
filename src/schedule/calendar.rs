//! Business days in Japan: weekends, national holidays and the year-end closure (12/29–1/3)
//! are not business days (BRIEF 4).
//!
//! National holidays come from the `jpholiday` crate, which computes them from the rules of
//! 国民の祝日に関する法律 (fixed days, Happy Mondays, the equinoxes, substitute holidays and
//! 国民の休日), so future years need no data file. A change of the law, or a one-off holiday
//! by special law, arrives as a new release of the crate: update it with
//! `cargo update -p jpholiday` and extend the pinned years in the tests below with the
//! Cabinet Office's published list (内閣府「国民の祝日について」).

use std::collections::{BTreeSet, HashMap};

use chrono::{Datelike, Days, NaiveDate, Weekday};

/// The years the calendar answers for; outside them every weekday counts as a business day
/// (the holiday rules are not meant for them).
const YEARS: std::ops::RangeInclusive<i32> = 1949..=2199;

/// Answers whether a day is a business day; holidays are computed once per year and kept.
#[derive(Debug, Default)]
pub struct BusinessCalendar {
    holidays: HashMap<i32, BTreeSet<NaiveDate>>,
}

impl BusinessCalendar {
    /// An empty calendar; years are filled in as they are asked about.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether `day` is a national holiday (祝日, 振替休日, 国民の休日).
    pub fn is_national_holiday(&mut self, day: NaiveDate) -> bool {
        let year = day.year();
        if !YEARS.contains(&year) {
            return false;
        }
        self.holidays
            .entry(year)
            .or_insert_with(|| {
                jpholiday::jpholiday::JPHoliday::new()
                    .year_holidays(year)
                    .into_iter()
                    .map(|(d, _)| d)
                    .collect()
            })
            .contains(&day)
    }

    /// Whether municipal offices work on `day`: not a weekend, not a national holiday, not
    /// within 12/29–1/3 (行政機関の休日に関する法律).
    pub fn is_business_day(&mut self, day: NaiveDate) -> bool {
        let weekend = matches!(day.weekday(), Weekday::Sat | Weekday::Sun);
        let year_end = matches!((day.month(), day.day()), (12, 29..=31) | (1, 1..=3));
        !weekend && !year_end && !self.is_national_holiday(day)
    }

    /// The `n`th business day after `start` (`start` itself never counts; `n = 0` is `start`).
    pub fn add_business_days(&mut self, start: NaiveDate, n: u32) -> NaiveDate {
        let mut day = start;
        let mut counted = 0;
        while counted < n {
            let Some(next) = day.checked_add_days(Days::new(1)) else {
                return day;
            };
            day = next;
            if self.is_business_day(day) {
                counted += 1;
            }
        }
        day
    }

    /// The `n`th business day before `start` (`start` itself never counts; `n = 0` is `start`).
    pub fn sub_business_days(&mut self, start: NaiveDate, n: u32) -> NaiveDate {
        let mut day = start;
        let mut counted = 0;
        while counted < n {
            let Some(previous) = day.checked_sub_days(Days::new(1)) else {
                return day;
            };
            day = previous;
            if self.is_business_day(day) {
                counted += 1;
            }
        }
        day
    }

    /// `day` itself when it is a business day, otherwise the business day before it: where a
    /// deadline on a closed day moves to.
    pub fn on_or_before(&mut self, day: NaiveDate) -> NaiveDate {
        let mut d = day;
        while !self.is_business_day(d) {
            let Some(previous) = d.checked_sub_days(Days::new(1)) else {
                return d;
            };
            d = previous;
        }
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap_or_default()
    }

    /// The Cabinet Office's published lists for 2026 and 2027.
    #[test]
    fn the_published_holidays_of_2026_and_2027_are_national_holidays() {
        let published = [
            d(2026, 1, 1),
            d(2026, 1, 12),
            d(2026, 2, 11),
            d(2026, 2, 23),
            d(2026, 3, 20),
            d(2026, 4, 29),
            d(2026, 5, 3),
            d(2026, 5, 4),
            d(2026, 5, 5),
            d(2026, 5, 6),
            d(2026, 7, 20),
            d(2026, 8, 11),
            d(2026, 9, 21),
            d(2026, 9, 22),
            d(2026, 9, 23),
            d(2026, 10, 12),
            d(2026, 11, 3),
            d(2026, 11, 23),
            d(2027, 1, 1),
            d(2027, 1, 11),
            d(2027, 2, 11),
            d(2027, 2, 23),
            d(2027, 3, 21),
            d(2027, 3, 22),
            d(2027, 4, 29),
            d(2027, 5, 3),
            d(2027, 5, 4),
            d(2027, 5, 5),
            d(2027, 7, 19),
            d(2027, 8, 11),
            d(2027, 9, 20),
            d(2027, 9, 23),
            d(2027, 10, 11),
            d(2027, 11, 3),
            d(2027, 11, 23),
        ];
        let mut calendar = BusinessCalendar::new();
        let mut found: Vec<NaiveDate> = Vec::new();
        let mut day = d(2026, 1, 1);
        while day <= d(2027, 12, 31) {
            if calendar.is_national_holiday(day) {
                found.push(day);
            }
            day = day.succ_opt().unwrap_or(day);
        }
        assert_eq!(found, published);
    }

    #[test]
    fn weekends_holidays_and_the_year_end_closure_are_not_business_days() {
        let mut calendar = BusinessCalendar::new();
        assert!(calendar.is_business_day(d(2026, 11, 24)));
        assert!(!calendar.is_business_day(d(2026, 11, 23)), "勤労感謝の日");
        assert!(!calendar.is_business_day(d(2026, 11, 28)), "Saturday");
        assert!(
            !calendar.is_business_day(d(2026, 12, 29)),
            "year-end closure"
        );
        assert!(!calendar.is_business_day(d(2027, 1, 3)), "year-end closure");
        assert!(calendar.is_business_day(d(2027, 1, 4)));
    }

    #[test]
    fn counting_skips_golden_week_and_the_new_year() {
        let mut calendar = BusinessCalendar::new();
        // Thu 2026-04-30 + 3: Fri 5/1, (5/2–5/6 off), Thu 5/7, Fri 5/8.
        assert_eq!(calendar.add_business_days(d(2026, 4, 30), 3), d(2026, 5, 8));
        // Mon 2026-12-28 + 1: 12/29–1/3 closed, then Mon 1/4.
        assert_eq!(
            calendar.add_business_days(d(2026, 12, 28), 1),
            d(2027, 1, 4)
        );
        // A start on a holiday counts from the next business day.
        assert_eq!(
            calendar.add_business_days(d(2026, 11, 23), 1),
            d(2026, 11, 24)
        );
        assert_eq!(
            calendar.add_business_days(d(2026, 11, 24), 0),
            d(2026, 11, 24)
        );
    }

    #[test]
    fn deadlines_on_closed_days_move_back_and_counting_back_skips_them() {
        let mut calendar = BusinessCalendar::new();
        // 2027-03-31 is a Wednesday: it stays.
        assert_eq!(calendar.on_or_before(d(2027, 3, 31)), d(2027, 3, 31));
        // Sun 2026-05-03 (Golden Week): back over 5/2 (Sat) to Fri 5/1.
        assert_eq!(calendar.on_or_before(d(2026, 5, 3)), d(2026, 5, 1));
        // 2027-01-02 (year-end closure): back to Mon 12/28.
        assert_eq!(calendar.on_or_before(d(2027, 1, 2)), d(2026, 12, 28));
        // Thu 5/7 − 2 business days: Fri 5/1, Thu 4/30.
        assert_eq!(calendar.sub_business_days(d(2026, 5, 7), 2), d(2026, 4, 30));
        assert_eq!(calendar.sub_business_days(d(2026, 5, 7), 0), d(2026, 5, 7));
    }
}
