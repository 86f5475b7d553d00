//! The fiscal year (年度, 1 April – 31 March; 地方自治法 art. 208), Japanese era labels and the
//! application numbers built from them (令和8年度-再委-0042).

use std::fmt;

use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};

/// A Japanese era (元号) from the adoption of the Gregorian calendar on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Era {
    Meiji,
    Taisho,
    Showa,
    Heisei,
    Reiwa,
}

/// Each era with its first day, newest first.
const ERAS: [(Era, i32, u32, u32); 5] = [
    (Era::Reiwa, 2019, 5, 1),
    (Era::Heisei, 1989, 1, 8),
    (Era::Showa, 1926, 12, 25),
    (Era::Taisho, 1912, 7, 30),
    // Japan counts Gregorian dates from 明治6年1月1日.
    (Era::Meiji, 1873, 1, 1),
];

impl Era {
    /// The era's name in Japanese.
    pub fn name_ja(self) -> &'static str {
        match self {
            Era::Meiji => "明治",
            Era::Taisho => "大正",
            Era::Showa => "昭和",
            Era::Heisei => "平成",
            Era::Reiwa => "令和",
        }
    }

    /// The era in force on `date` and the year of that era (1 for its first year), or `None`
    /// before 1873, when Japan adopted the Gregorian calendar.
    pub fn of(date: NaiveDate) -> Option<(Era, i32)> {
        ERAS.iter().find_map(|&(era, y, m, d)| {
            let first = NaiveDate::from_ymd_opt(y, m, d)?;
            (date >= first).then_some((era, date.year() - y + 1))
        })
    }
}

/// `令和8` / `令和元`: the era and its year, the first year written 元.
fn era_year_ja(era: Era, year: i32) -> String {
    if year == 1 {
        format!("{}元", era.name_ja())
    } else {
        format!("{}{year}", era.name_ja())
    }
}

/// A date as Japanese documents write it: `令和8年11月22日`, `令和元年5月1日` (before 1873 the
/// Gregorian year: `1850年1月1日`).
pub fn date_label_ja(date: NaiveDate) -> String {
    let year = match Era::of(date) {
        Some((era, year)) => era_year_ja(era, year),
        None => date.year().to_string(),
    };
    format!("{year}年{}月{}日", date.month(), date.day())
}

/// A fiscal year (年度), named by the calendar year in which it starts: FY2026 runs from
/// 2026-04-01 to 2027-03-31.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct FiscalYear(i32);

impl FiscalYear {
    /// The fiscal year that starts on 1 April of `year`.
    pub fn new(year: i32) -> Self {
        Self(year)
    }

    /// The fiscal year `date` falls in.
    pub fn of(date: NaiveDate) -> Self {
        if date.month() >= 4 {
            Self(date.year())
        } else {
            Self(date.year() - 1)
        }
    }

    /// The calendar year in which it starts.
    pub fn year(self) -> i32 {
        self.0
    }

    /// Its first day, 1 April (saturating at the limits of `NaiveDate`, some 262,000 years
    /// away).
    pub fn start(self) -> NaiveDate {
        NaiveDate::from_ymd_opt(self.0, 4, 1).unwrap_or(NaiveDate::MIN)
    }

    /// Its last day, 31 March of the next calendar year (saturating like [`Self::start`]).
    pub fn end(self) -> NaiveDate {
        NaiveDate::from_ymd_opt(self.0.saturating_add(1), 3, 31).unwrap_or(NaiveDate::MAX)
    }

    /// Whether `date` falls in it.
    pub fn contains(self, date: NaiveDate) -> bool {
        Self::of(date) == self
    }

    /// The next fiscal year.
    #[must_use]
    pub fn next(self) -> Self {
        Self(self.0.saturating_add(1))
    }

    /// `令和8年度`, `令和元年度`. The era is the one in force on 1 May of its first year, so
    /// FY2019, which began in 平成31年, is 令和元年度 as the government named it.
    pub fn label_ja(self) -> String {
        match NaiveDate::from_ymd_opt(self.0, 5, 1).and_then(Era::of) {
            Some((era, year)) => format!("{}年度", era_year_ja(era, year)),
            None => format!("{}年度", self.0),
        }
    }

    /// `FY2026`.
    pub fn label_en(self) -> String {
        format!("FY{}", self.0)
    }
}

impl fmt::Display for FiscalYear {
    /// The Japanese label, `令和8年度`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.label_ja())
    }
}

/// The number of a subcontract application: `令和8年度-再委-0042` — the fiscal year, the kind
/// (再委 for 再委託申請) and a per-organisation sequence that restarts each fiscal year, with at
/// least four digits (`令和8年度-再委-12345` past 9999).
pub fn application_number(fiscal_year: FiscalYear, sequence: u32) -> String {
    format!("{}-再委-{sequence:04}", fiscal_year.label_ja())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn the_fiscal_year_starts_on_the_first_of_april() {
        assert_eq!(FiscalYear::of(d(2026, 4, 1)), FiscalYear::new(2026));
        assert_eq!(FiscalYear::of(d(2027, 3, 31)), FiscalYear::new(2026));
        assert_eq!(FiscalYear::of(d(2026, 3, 31)), FiscalYear::new(2025));
        assert_eq!(FiscalYear::of(d(2026, 12, 31)), FiscalYear::new(2026));
        assert_eq!(FiscalYear::of(d(2027, 1, 1)), FiscalYear::new(2026));
    }

    #[test]
    fn a_fiscal_year_runs_from_april_to_march() {
        let fy = FiscalYear::new(2026);
        assert_eq!(fy.start(), d(2026, 4, 1));
        assert_eq!(fy.end(), d(2027, 3, 31));
        assert!(fy.contains(d(2027, 2, 28)));
        assert!(!fy.contains(d(2027, 4, 1)));
        assert_eq!(fy.next(), FiscalYear::new(2027));
        assert_eq!(fy.year(), 2026);
        // The last day of February in a leap year belongs to the previous fiscal year too.
        assert_eq!(FiscalYear::new(2027).end(), d(2028, 3, 31));
        assert!(FiscalYear::new(2027).contains(d(2028, 2, 29)));
    }

    #[test]
    fn fiscal_years_are_named_in_the_japanese_era() {
        assert_eq!(FiscalYear::new(2026).label_ja(), "令和8年度");
        assert_eq!(FiscalYear::new(2020).label_ja(), "令和2年度");
        assert_eq!(FiscalYear::new(2019).label_ja(), "令和元年度");
        assert_eq!(FiscalYear::new(2018).label_ja(), "平成30年度");
        assert_eq!(FiscalYear::new(1989).label_ja(), "平成元年度");
        assert_eq!(FiscalYear::new(1988).label_ja(), "昭和63年度");
        assert_eq!(FiscalYear::new(2026).label_en(), "FY2026");
        assert_eq!(FiscalYear::new(2026).to_string(), "令和8年度");
    }

    #[test]
    fn dates_are_written_in_the_era_in_force_that_day() {
        assert_eq!(date_label_ja(d(2026, 11, 22)), "令和8年11月22日");
        assert_eq!(date_label_ja(d(2019, 5, 1)), "令和元年5月1日");
        assert_eq!(date_label_ja(d(2019, 4, 30)), "平成31年4月30日");
        assert_eq!(date_label_ja(d(1989, 1, 8)), "平成元年1月8日");
        assert_eq!(date_label_ja(d(1989, 1, 7)), "昭和64年1月7日");
        assert_eq!(date_label_ja(d(1850, 1, 1)), "1850年1月1日");
    }

    #[test]
    fn application_numbers_have_four_digits_and_widen_past_9999() {
        let fy = FiscalYear::of(d(2026, 11, 22));
        assert_eq!(application_number(fy, 42), "令和8年度-再委-0042");
        assert_eq!(application_number(fy, 1), "令和8年度-再委-0001");
        assert_eq!(application_number(fy, 9999), "令和8年度-再委-9999");
        assert_eq!(application_number(fy, 12345), "令和8年度-再委-12345");
        assert_eq!(
            application_number(FiscalYear::new(2019), 7),
            "令和元年度-再委-0007"
        );
    }

    #[test]
    fn a_fiscal_year_serialises_as_its_starting_year() {
        assert_eq!(
            serde_json::to_string(&FiscalYear::new(2026)).unwrap(),
            "2026"
        );
        assert_eq!(
            serde_json::from_str::<FiscalYear>("2026").unwrap(),
            FiscalYear::new(2026)
        );
    }

    #[test]
    fn the_extremes_of_the_calendar_saturate_instead_of_failing() {
        assert_eq!(FiscalYear::of(NaiveDate::MIN).start(), NaiveDate::MIN);
        assert_eq!(FiscalYear::of(NaiveDate::MAX).end(), NaiveDate::MAX);
    }
}
