//! The obligation policy: which obligations the chains generate, their due days and the
//! reminder cadence, declared in TOML (`obligation_policy.toml` built in, or the file named by
//! the `obligation_policy` setting). Nothing here touches the database or the clock.

use std::collections::BTreeMap;

use chrono::{Datelike, Months, NaiveDate};
use serde::Deserialize;

use crate::domain::fiscal::FiscalYear;
use crate::schedule::calendar::BusinessCalendar;
use crate::workflow::definition::Label;

/// The built-in policy.
pub const DEFAULT_OBLIGATION_POLICY: &str = include_str!("obligation_policy.toml");

/// Kinds of obligation.
pub const TRAINING: &str = "training";
pub const TRAINING_FOLLOWUP: &str = "training_followup";
pub const INSPECTION: &str = "inspection";
pub const INSPECTION_FOLLOWUP: &str = "inspection_followup";
pub const RENEWAL: &str = "contract_renewal";
pub const COMPLIANCE_REPORT: &str = "compliance_report";

/// The whole policy.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObligationPolicy {
    pub training: TrainingPolicy,
    pub inspection: InspectionPolicy,
    /// Contract renewal before the end of the 年度; none generated when absent.
    #[serde(default)]
    pub renewal: Option<RenewalPolicy>,
    /// Compliance reports on a cycle; none generated when absent.
    #[serde(default)]
    pub compliance_report: Option<CompliancePolicy>,
    pub reminders: Vec<ReminderStage>,
}

/// Contract renewal of the nodes whose period ends with the 年度.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenewalPolicy {
    pub label: Label,
    /// Due this many business days before the period's last day.
    pub business_days_before_end: u32,
}

/// Compliance reports (遵守状況報告) per tier or kind of node.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompliancePolicy {
    pub label: Label,
    /// Months between reports by tier (`"1"`, `"2"`, …), `cloud` and `default`; 0 means none.
    pub every_months: BTreeMap<String, u32>,
}

/// Training once per 年度.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainingPolicy {
    pub label: Label,
    /// `MM-DD` within the 年度.
    pub due: String,
    pub followup_business_days: u32,
    pub followup_label: Label,
}

/// On-site inspections per tier.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InspectionPolicy {
    pub label: Label,
    /// Months between inspections by tier (`"1"`, `"2"`, …) and `default`; 0 means none.
    pub every_months: BTreeMap<String, u32>,
    pub followup_business_days: u32,
    pub followup_label: Label,
}

/// One reminder stage, relative to the due day in business days.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReminderStage {
    pub stage: String,
    #[serde(default)]
    pub business_days_before_due: Option<u32>,
    #[serde(default)]
    pub business_days_after_due: Option<u32>,
    pub template: String,
    pub to: Vec<Addressee>,
}

/// Who a reminder stage addresses.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Addressee {
    /// `owner` or `root_officers`.
    Group(String),
    /// Holders of a role in the root municipality.
    Role { role: String },
}

impl ReminderStage {
    /// Signed offset from the due day in business days (negative: before).
    pub fn offset(&self) -> i64 {
        match (self.business_days_before_due, self.business_days_after_due) {
            (Some(before), _) => -i64::from(before),
            (None, Some(after)) => i64::from(after),
            (None, None) => 0,
        }
    }

    /// The business day this stage fires for an obligation due on `due`.
    pub fn day(&self, calendar: &mut BusinessCalendar, due: NaiveDate) -> NaiveDate {
        match (self.business_days_before_due, self.business_days_after_due) {
            (Some(before), _) => calendar.sub_business_days(due, before),
            (None, Some(after)) => calendar.add_business_days(due, after),
            (None, None) => due,
        }
    }
}

impl ObligationPolicy {
    /// The built-in policy.
    pub fn default_policy() -> Result<Self, String> {
        Self::parse(DEFAULT_OBLIGATION_POLICY)
    }

    /// Parses and checks a policy; the error names every problem found.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut policy: Self = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut problems = Vec::new();
        if parse_month_day(&policy.training.due).is_none() {
            problems.push(format!(
                "training.due: `{}` is not a day of the year as MM-DD",
                policy.training.due
            ));
        }
        check_every_months(
            "inspection.every_months",
            &policy.inspection.every_months,
            &mut problems,
        );
        if let Some(c) = &policy.compliance_report {
            check_every_months(
                "compliance_report.every_months",
                &c.every_months,
                &mut problems,
            );
        }
        if let Some(r) = &policy.renewal {
            if r.business_days_before_end > 250 {
                problems.push(format!(
                    "renewal.business_days_before_end: {} is more than a year of business days",
                    r.business_days_before_end
                ));
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        for (ix, r) in policy.reminders.iter().enumerate() {
            let at = format!("reminders[{ix}]");
            if !seen.insert(r.stage.clone()) {
                problems.push(format!("{at}: stage `{}` appears twice", r.stage));
            }
            if r.business_days_before_due.is_some() == r.business_days_after_due.is_some() {
                problems.push(format!(
                    "{at}: give exactly one of business_days_before_due and business_days_after_due"
                ));
            }
            if !crate::domain::MAIL_TEMPLATES.contains(&r.template.as_str()) {
                problems.push(format!("{at}: unknown template `{}`", r.template));
            }
            if r.to.is_empty() {
                problems.push(format!("{at}: `to` names nobody"));
            }
            for a in &r.to {
                match a {
                    Addressee::Group(g) if g == "owner" || g == "root_officers" => {}
                    Addressee::Group(g) => problems.push(format!(
                        "{at}: unknown addressee `{g}` (owner, root_officers or {{ role = … }})"
                    )),
                    Addressee::Role { role } if crate::domain::is_known_role(role) => {}
                    Addressee::Role { role } => {
                        problems.push(format!("{at}: unknown role `{role}`"));
                    }
                }
            }
        }
        if !problems.is_empty() {
            return Err(problems.join("; "));
        }
        // Stages in the order they fire.
        policy.reminders.sort_by_key(ReminderStage::offset);
        Ok(policy)
    }

    /// The training due day of a 年度, moved to a business day.
    pub fn training_due(&self, calendar: &mut BusinessCalendar, fy: FiscalYear) -> NaiveDate {
        calendar.on_or_before(self.training_day(fy))
    }

    /// The training due day of a 年度 as the policy declares it, before any move.
    pub fn training_day(&self, fy: FiscalYear) -> NaiveDate {
        let (month, day) = parse_month_day(&self.training.due).unwrap_or((3, 31));
        let year = if month >= 4 { fy.year() } else { fy.year() + 1 };
        NaiveDate::from_ymd_opt(year, month, day).unwrap_or_else(|| fy.end())
    }

    /// Months between inspections of a node at `tier`, hosting the environment or not (0:
    /// none).
    pub fn inspection_months(&self, tier: i32, cloud: bool) -> u32 {
        months_for(&self.inspection.every_months, tier, cloud)
    }

    /// Months between compliance reports of a node at `tier`, hosting the environment or not
    /// (0: none, also when the policy has no compliance reports).
    pub fn compliance_months(&self, tier: i32, cloud: bool) -> u32 {
        self.compliance_report
            .as_ref()
            .map_or(0, |c| months_for(&c.every_months, tier, cloud))
    }

    /// The renewal due day of a node whose period ends on `period_end`, if renewals are
    /// generated: the business days before it, counted from the last business day on or
    /// before it.
    pub fn renewal_due(
        &self,
        calendar: &mut BusinessCalendar,
        period_end: NaiveDate,
    ) -> Option<NaiveDate> {
        let r = self.renewal.as_ref()?;
        let last = calendar.on_or_before(period_end);
        Some(calendar.sub_business_days(last, r.business_days_before_end))
    }

    /// The last days of the periods of `months` months (counted from 1 April 2000) that end
    /// within the 年度; each is an inspection's or a compliance report's due day before moving
    /// to a business day.
    pub fn period_ends(months: u32, fy: FiscalYear) -> Vec<NaiveDate> {
        let Some(origin) = NaiveDate::from_ymd_opt(2000, 4, 1) else {
            return Vec::new();
        };
        if months == 0 {
            return Vec::new();
        }
        let months_since = u32::try_from(
            (fy.start().year() - origin.year()) * 12 + fy.start().month0() as i32
                - origin.month0() as i32,
        )
        .unwrap_or(0);
        // The first period whose end can fall in the 年度.
        let mut k = months_since / months;
        let mut out = Vec::new();
        while let Some(next_start) = origin.checked_add_months(Months::new((k + 1) * months)) {
            let Some(end) = next_start.pred_opt() else {
                break;
            };
            if end > fy.end() {
                break;
            }
            if end >= fy.start() {
                out.push(end);
            }
            k += 1;
        }
        out
    }

    /// The first stage at or after `from` whose day is on or before `today`, taking the latest
    /// such stage (a pass that missed a stage sends only the one now due). Returns its index.
    pub fn stage_due(
        &self,
        calendar: &mut BusinessCalendar,
        due: NaiveDate,
        from: usize,
        today: NaiveDate,
    ) -> Option<usize> {
        (from..self.reminders.len())
            .take_while(|ix| {
                self.reminders
                    .get(*ix)
                    .is_some_and(|r| r.day(calendar, due) <= today)
            })
            .last()
    }

    /// The day stage `ix` fires, if there is such a stage.
    pub fn stage_day(
        &self,
        calendar: &mut BusinessCalendar,
        due: NaiveDate,
        ix: usize,
    ) -> Option<NaiveDate> {
        self.reminders.get(ix).map(|r| r.day(calendar, due))
    }
}

/// `cloud` (for a node hosting the environment), then the tier, then `default`.
fn months_for(every: &BTreeMap<String, u32>, tier: i32, cloud: bool) -> u32 {
    cloud
        .then(|| every.get("cloud"))
        .flatten()
        .or_else(|| every.get(&tier.to_string()))
        .or_else(|| every.get("default"))
        .copied()
        .unwrap_or(0)
}

/// The keys of an `every_months` table: tier numbers, `cloud` and `default` (required).
fn check_every_months(at: &str, every: &BTreeMap<String, u32>, problems: &mut Vec<String>) {
    if !every.contains_key("default") {
        problems.push(format!("{at}: `default` is missing"));
    }
    for (tier, months) in every {
        let named = tier == "default" || tier == "cloud";
        if !named && tier.parse::<u32>().map_or(true, |t| t == 0) {
            problems.push(format!(
                "{at}: `{tier}` is neither a tier number, `cloud` nor `default`"
            ));
        }
        if *months > 120 {
            problems.push(format!(
                "{at}.{tier}: {months} months is more than ten years"
            ));
        }
    }
}

fn parse_month_day(text: &str) -> Option<(u32, u32)> {
    let (m, d) = text.split_once('-')?;
    let (m, d) = (m.parse().ok()?, d.parse().ok()?);
    // Any year in which the day exists (2000 is a leap year).
    NaiveDate::from_ymd_opt(2000, m, d).map(|_| (m, d))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap_or_default()
    }

    #[test]
    fn the_built_in_policy_parses_with_its_stages_in_firing_order() {
        let p = ObligationPolicy::default_policy().unwrap();
        let stages: Vec<&str> = p.reminders.iter().map(|r| r.stage.as_str()).collect();
        assert_eq!(stages, ["due", "overdue", "escalated"]);
        assert_eq!(p.inspection_months(1, false), 12);
        assert_eq!(p.inspection_months(7, true), 12);
        assert_eq!(p.compliance_months(2, true), 12);
    }

    #[test]
    fn mistakes_are_named() {
        let bad = DEFAULT_OBLIGATION_POLICY
            .replace("due = \"03-31\"", "due = \"02-30\"")
            .replace("template = \"obligation_due\"", "template = \"nope\"")
            .replace("to = [{ role = \"manager\" }]", "to = [\"everyone\"]");
        let e = ObligationPolicy::parse(&bad).unwrap_err();
        assert!(e.contains("training.due: `02-30`"), "{e}");
        assert!(e.contains("unknown template `nope`"), "{e}");
        assert!(e.contains("unknown addressee `everyone`"), "{e}");
    }

    #[test]
    fn renewal_and_compliance_reports_follow_the_policy() {
        let mut cal = BusinessCalendar::new();
        let p = ObligationPolicy::default_policy().unwrap();
        // 30 business days before Wed 2027-03-31, without the substitute holiday 3/22 and
        // 天皇誕生日 2/23: Mon 2027-02-15.
        let due = p.renewal_due(&mut cal, d(2027, 3, 31)).unwrap();
        assert_eq!(due, d(2027, 2, 15));
        assert_eq!(cal.add_business_days(due, 30), d(2027, 3, 31));
        // A period ending on a Saturday counts from the Friday.
        assert_eq!(
            p.renewal_due(&mut cal, d(2029, 3, 31)),
            Some(cal.sub_business_days(d(2029, 3, 30), 30))
        );
        let custom = DEFAULT_OBLIGATION_POLICY.replace(
            "every_months = { default = 12 }\n\n# The reminder",
            "every_months = { default = 12, \"3\" = 0, cloud = 6 }\n\n# The reminder",
        );
        let c = ObligationPolicy::parse(&custom).unwrap();
        assert_eq!(c.compliance_months(3, true), 6, "cloud is looked at first");
        assert_eq!(c.compliance_months(3, false), 0);
        assert_eq!(c.compliance_months(1, false), 12);
        // Without the sections, nothing of the kind.
        let without: String = DEFAULT_OBLIGATION_POLICY
            .split("[renewal]")
            .next()
            .unwrap()
            .to_owned()
            + "[[reminders]]"
            + DEFAULT_OBLIGATION_POLICY
                .split("[[reminders]]")
                .skip(1)
                .collect::<Vec<_>>()
                .join("[[reminders]]")
                .as_str();
        let none = ObligationPolicy::parse(&without).unwrap();
        assert_eq!(none.renewal_due(&mut cal, d(2027, 3, 31)), None);
        assert_eq!(none.compliance_months(1, false), 0);
        let bad = DEFAULT_OBLIGATION_POLICY
            .replace(
                "business_days_before_end = 30",
                "business_days_before_end = 400",
            )
            .replace(
                "every_months = { default = 12 }\n\n# The reminder",
                "every_months = { dflt = 12 }\n\n# The reminder",
            );
        let e = ObligationPolicy::parse(&bad).unwrap_err();
        assert!(e.contains("renewal.business_days_before_end: 400"), "{e}");
        assert!(
            e.contains("compliance_report.every_months: `default` is missing"),
            "{e}"
        );
        assert!(e.contains("`dflt` is neither"), "{e}");
    }

    #[test]
    fn training_is_due_on_the_last_business_day_on_or_before_its_day() {
        let mut cal = BusinessCalendar::new();
        let p = ObligationPolicy::default_policy().unwrap();
        // 2027-03-31 is a Wednesday.
        assert_eq!(
            p.training_due(&mut cal, FiscalYear::new(2026)),
            d(2027, 3, 31)
        );
        // 2029-03-31 is a Saturday: Friday 3/30.
        assert_eq!(
            p.training_due(&mut cal, FiscalYear::new(2028)),
            d(2029, 3, 30)
        );
    }

    #[test]
    fn inspection_periods_follow_the_frequency() {
        let fy = FiscalYear::new(2026);
        assert_eq!(ObligationPolicy::period_ends(12, fy), [d(2027, 3, 31)]);
        assert_eq!(
            ObligationPolicy::period_ends(6, fy),
            [d(2026, 9, 30), d(2027, 3, 31)]
        );
        // Every two years: periods 2000-04..2002-03, …, 2026-04..2028-03.
        assert!(ObligationPolicy::period_ends(24, fy).is_empty());
        assert_eq!(
            ObligationPolicy::period_ends(24, FiscalYear::new(2027)),
            [d(2028, 3, 31)]
        );
        assert!(ObligationPolicy::period_ends(0, fy).is_empty());
    }

    #[test]
    fn a_late_pass_sends_only_the_latest_stage_reached() {
        let mut cal = BusinessCalendar::new();
        let p = ObligationPolicy::default_policy().unwrap();
        let due = d(2027, 3, 31);
        // Ten business days before: Tue 3/16 (3/22 is a substitute holiday).
        assert_eq!(p.stage_day(&mut cal, due, 0), Some(d(2027, 3, 16)));
        assert_eq!(p.stage_due(&mut cal, due, 0, d(2027, 3, 15)), None);
        assert_eq!(p.stage_due(&mut cal, due, 0, d(2027, 3, 16)), Some(0));
        assert_eq!(p.stage_due(&mut cal, due, 1, d(2027, 3, 31)), None);
        assert_eq!(p.stage_due(&mut cal, due, 1, d(2027, 4, 1)), Some(1));
        // Missed everything: only the escalation (4/7) goes out.
        assert_eq!(p.stage_due(&mut cal, due, 0, d(2027, 4, 9)), Some(2));
    }
}
