//! The change history (変更箇所) of a PIA file's consignment section, in the form of the 旭川市
//! and さいたま市 seeds: 変更日, 項目, 変更前の記載, 変更後の記載, 提出時期 (事前 / 事後),
//! 提出時期に係る説明.
//!
//! The rows are derived, not typed: the service gives each consignment item of the file with
//! the moments its chain nodes entered or left force (from the permission instances' audit
//! trails), and this module renders the item's section (「4. 特定個人情報ファイルの取扱いの委託」,
//! through [`crate::documents::pia::item`]) just before and just after each moment; every line
//! of the section that differs is a row. Pure and ordered by content, so the same data gives
//! the same bytes.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use crate::documents::pia::{self, esc, PermittedNode};
use crate::documents::significant::ChangeItem;
use crate::domain::fiscal::date_label_ja;

/// How the 評価書 names the consignment section (目黒区 seed, 変更箇所).
pub const SECTION: &str = "II 特定個人情報ファイルの概要 4. 特定個人情報ファイルの取扱いの委託";

/// What an empty cell says (旭川市 seed).
pub const NOT_STATED: &str = "(記載なし)";

/// A node below tier 1 with the moments its permission changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryNode {
    pub node_id: String,
    /// As the section names it (a `no_access` cloud is not a tier and is left out).
    pub node: PermittedNode,
    /// When the node entered (`true`) or left (`false`) force, oldest first.
    pub changes: Vec<(DateTime<Utc>, bool)>,
}

/// A consignment item of the file, numbered as the PIA section numbers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryItem {
    pub number: usize,
    pub title: String,
    pub content: String,
    pub handlers: String,
    pub tier1: String,
    pub policy: String,
    pub created_at: DateTime<Utc>,
    pub nodes: Vec<HistoryNode>,
}

/// An assessment the municipality recorded before permitting a node (事前).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssessmentFact {
    pub node_id: String,
    pub recorded_at: DateTime<Utc>,
    pub items: Vec<ChangeItem>,
    pub summary: String,
}

/// Everything the history of one PIA file is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryInputs {
    pub municipality: String,
    pub pia_file: String,
    pub items: Vec<HistoryItem>,
    pub assessments: Vec<AssessmentFact>,
    /// The kinds of change the municipality counts as significant (重要な変更).
    pub significant: Vec<ChangeItem>,
}

/// 提出時期.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Timing {
    /// 事前: assessed before the change took effect.
    Before,
    /// 事後: reported after it.
    After,
}

impl Timing {
    pub fn label_ja(self) -> &'static str {
        match self {
            Self::Before => "事前",
            Self::After => "事後",
        }
    }
}

/// One row of the table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ChangeRow {
    /// 変更日 (the day in Japan the change took effect).
    pub changed_on: NaiveDate,
    /// 変更日 as the form writes it (令和).
    pub changed_on_ja: String,
    /// 項目.
    pub item: String,
    /// 変更前の記載.
    pub before: String,
    /// 変更後の記載.
    pub after: String,
    /// 提出時期.
    pub timing: Timing,
    pub timing_ja: String,
    /// 提出時期に係る説明.
    pub explanation: String,
    /// The kind of change, when it is one the municipality may count as significant.
    pub change: Option<ChangeItem>,
    /// The municipality counts it as significant (重要な変更).
    pub significant: bool,
    /// The consignment items (委託事項N) whose change it is.
    pub items: Vec<usize>,
    #[serde(skip)]
    at: DateTime<Utc>,
    #[serde(skip)]
    line: usize,
}

/// The change history of one PIA file over a period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ChangeHistory {
    pub municipality: String,
    pub pia_file: String,
    /// Only the rows of this 委託事項, when asked.
    pub item: Option<usize>,
    pub from: Option<NaiveDate>,
    pub to: NaiveDate,
    pub rows: Vec<ChangeRow>,
}

/// Default 説明 of a change that is not significant (さいたま市 seed: 「重要な変更には該当しない」).
pub const NOT_SIGNIFICANT: &str = "重要な変更に該当しないため";
/// Default 説明 of a significant change without an assessment recorded before it.
pub const NOT_ASSESSED: &str =
    "重要な変更に該当するが、変更前に特定個人情報保護評価の実施が記録されていないため";

fn or_not_stated(s: &str) -> String {
    if s.trim().is_empty() {
        NOT_STATED.to_owned()
    } else {
        s.to_owned()
    }
}

/// The item's section with the nodes in force in `in_force`.
fn section_of(item: &HistoryItem, in_force: &BTreeSet<&str>) -> pia::PiaItem {
    let below = item
        .nodes
        .iter()
        .filter(|n| in_force.contains(n.node_id.as_str()))
        .map(|n| n.node.clone())
        .collect();
    pia::item(
        item.number,
        &item.title,
        &item.content,
        &item.handlers,
        &item.tier1,
        &item.policy,
        below,
    )
}

/// The lines of an item's section that can change, in the form's order (①② are the item's own
/// and never change through the chain).
fn lines(i: &pia::PiaItem) -> [(&'static str, String); 4] {
    let yes_no = if i.subcontracts {
        "[再委託する]"
    } else {
        "[再委託しない]"
    };
    [
        ("③委託先名", i.contractor.clone()),
        ("④再委託の有無", yes_no.to_owned()),
        ("⑤再委託の許諾方法", i.permission_method.clone()),
        ("⑥再委託事項", i.subcontracted_work.clone()),
    ]
}

struct Draft {
    at: DateTime<Utc>,
    items: Vec<usize>,
    line: usize,
    label: String,
    before: String,
    after: String,
    change: Option<ChangeItem>,
    /// The nodes whose entry into force made the change (for the assessments).
    entered: Vec<String>,
}

/// The items added at each moment (their numbers), for the 委託の有無 rows.
pub type Added = BTreeMap<DateTime<Utc>, Vec<usize>>;

/// The items of `items` added at each moment.
pub fn added(items: &[HistoryItem]) -> Added {
    let mut created = Added::new();
    for i in items {
        created.entry(i.created_at).or_default().push(i.number);
    }
    created
}

/// The 委託の有無 rows of the moments in `created`, `count_before` items having been added
/// before the first of them.
fn count_drafts(created: &Added, count_before: usize, out: &mut Vec<Draft>) {
    let mut count = count_before;
    for (at, numbers) in created {
        let summary = |n: usize| {
            if n == 0 {
                "[委託しない]".to_owned()
            } else {
                format!("[委託する] ({n}) 件")
            }
        };
        let before = summary(count);
        count += numbers.len();
        out.push(Draft {
            at: *at,
            items: numbers.clone(),
            line: 0,
            label: format!("{SECTION} 委託の有無"),
            before,
            after: summary(count),
            change: None,
            entered: Vec::new(),
        });
    }
}

/// Every change of the items of `inputs`, with the 委託の有無 rows of `created`.
fn drafts(inputs: &HistoryInputs, created: &Added, count_before: usize) -> Vec<Draft> {
    let mut out = Vec::new();
    count_drafts(created, count_before, &mut out);
    for item in &inputs.items {
        out.push(Draft {
            at: item.created_at,
            items: vec![item.number],
            line: 1,
            label: format!("{SECTION} 委託事項{} {}", item.number, item.title),
            before: String::new(),
            after: "項目を新規追加".to_owned(),
            change: None,
            entered: Vec::new(),
        });
        item_drafts(item, inputs, &mut out);
    }
    out
}

/// The changes of one item's lines, moment by moment.
fn item_drafts(item: &HistoryItem, inputs: &HistoryInputs, out: &mut Vec<Draft>) {
    let mut moments: BTreeMap<DateTime<Utc>, Vec<(&HistoryNode, bool)>> = BTreeMap::new();
    for n in &item.nodes {
        for (at, on) in &n.changes {
            moments.entry(*at).or_default().push((n, *on));
        }
    }
    let mut in_force: BTreeSet<&str> = BTreeSet::new();
    let mut ever: BTreeSet<&str> = BTreeSet::new();
    for (at, flips) in moments {
        let before = section_of(item, &in_force);
        let mut entered = Vec::new();
        for (n, on) in flips {
            if on {
                if ever.insert(n.node_id.as_str()) {
                    entered.push(n.node_id.clone());
                }
                in_force.insert(n.node_id.as_str());
            } else {
                in_force.remove(n.node_id.as_str());
            }
        }
        let after = section_of(item, &in_force);
        let new_cloud = item
            .nodes
            .iter()
            .any(|n| n.node.cloud && entered.contains(&n.node_id));
        for (ix, ((name, was), (_, is))) in
            lines(&before).into_iter().zip(lines(&after)).enumerate()
        {
            if was == is {
                continue;
            }
            let change = match ix {
                1 if !before.subcontracts && after.subcontracts => {
                    Some(ChangeItem::SubcontractIntroduced)
                }
                2 if new_cloud => Some(ChangeItem::CloudProviderAdded),
                0 | 3 if !entered.is_empty() => Some(ChangeItem::NewSubcontractor),
                _ => None,
            };
            out.push(Draft {
                at,
                items: vec![item.number],
                line: 2 + ix,
                label: format!("{SECTION} <委託事項{}> {name}", item.number),
                before: was,
                after: is,
                change,
                entered: entered.clone(),
            });
        }
        // The handler count is the threshold test's, not the section's: the row is there when
        // the assessment made for the node recorded that the handlers reach 500.
        let reached = inputs.assessments.iter().any(|a| {
            entered.contains(&a.node_id) && a.items.contains(&ChangeItem::HandlersReach500)
        });
        if reached {
            out.push(Draft {
                at,
                items: vec![item.number],
                line: 6,
                label: ChangeItem::HandlersReach500.label().ja,
                before: "[500人未満]".to_owned(),
                after: "[500人以上]".to_owned(),
                change: Some(ChangeItem::HandlersReach500),
                entered,
            });
        }
    }
}

/// The history of the file between `from` and `to` (days in Japan, both included), optionally of
/// one 委託事項.
pub fn history(
    inputs: &HistoryInputs,
    from: Option<NaiveDate>,
    to: NaiveDate,
    item: Option<usize>,
) -> ChangeHistory {
    let period = Period { from, to, item };
    let rows = rows_between(inputs, &added(&inputs.items), 0, None, period);
    ChangeHistory {
        municipality: inputs.municipality.clone(),
        pia_file: inputs.pia_file.clone(),
        item,
        from,
        to,
        rows,
    }
}

/// Which rows a history shows: days in Japan (both included), optionally of one 委託事項.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub from: Option<NaiveDate>,
    pub to: NaiveDate,
    pub item: Option<usize>,
}

/// The rows of `period` whose moment lies within `window` (both ends included; everything when
/// `None`), in the history's order: the changes of `inputs.items` and the 委託の有無 rows of
/// `created`, `count_before` items having been added before it. A file's history is the
/// concatenation of its consecutive windows, so it can be rendered a window at a time, each
/// window holding every item with a moment in it.
pub fn rows_between(
    inputs: &HistoryInputs,
    created: &Added,
    count_before: usize,
    window: Option<(DateTime<Utc>, DateTime<Utc>)>,
    period: Period,
) -> Vec<ChangeRow> {
    let mut rows: Vec<ChangeRow> = drafts(inputs, created, count_before)
        .into_iter()
        .filter(|d| window.is_none_or(|(first, last)| first <= d.at && d.at <= last))
        .filter(|d| period.item.is_none_or(|n| d.items.contains(&n)))
        .filter_map(|d| {
            let day = crate::clock::jst_date(d.at);
            if period.from.is_some_and(|f| day < f) || day > period.to {
                return None;
            }
            Some(row(inputs, d, day))
        })
        .collect();
    rows.sort_by(|a, b| {
        (a.at, &a.items, a.line, &a.item, &a.before, &a.after)
            .cmp(&(b.at, &b.items, b.line, &b.item, &b.before, &b.after))
    });
    rows
}

fn row(inputs: &HistoryInputs, d: Draft, day: NaiveDate) -> ChangeRow {
    let significant = d.change.is_some_and(|c| inputs.significant.contains(&c));
    // 事前 when an assessment covering the change was recorded before it took effect.
    let assessment = d.change.filter(|_| significant).and_then(|c| {
        inputs
            .assessments
            .iter()
            .filter(|a| d.entered.contains(&a.node_id))
            .filter(|a| a.items.contains(&c) && a.recorded_at <= d.at)
            .max_by_key(|a| a.recorded_at)
    });
    let (timing, explanation) = match (significant, assessment) {
        (true, Some(a)) => (Timing::Before, a.summary.clone()),
        (true, None) => (Timing::After, NOT_ASSESSED.to_owned()),
        (false, _) => (Timing::After, NOT_SIGNIFICANT.to_owned()),
    };
    ChangeRow {
        changed_on: day,
        changed_on_ja: date_label_ja(day),
        item: d.label,
        before: or_not_stated(&d.before),
        after: or_not_stated(&d.after),
        timing,
        timing_ja: timing.label_ja().to_owned(),
        explanation,
        change: d.change,
        significant,
        items: d.items,
        at: d.at,
        line: d.line,
    }
}

/// The columns, as the form heads them (and a seventh marking the significant changes).
pub const COLUMNS: [&str; 7] = [
    "変更日",
    "項目",
    "変更前の記載",
    "変更後の記載",
    "提出時期",
    "提出時期に係る説明",
    "重要な変更",
];

fn cells(r: &ChangeRow) -> [String; 7] {
    [
        r.changed_on_ja.clone(),
        r.item.clone(),
        r.before.clone(),
        r.after.clone(),
        r.timing_ja.clone(),
        r.explanation.clone(),
        if r.significant { "○" } else { "" }.to_owned(),
    ]
}

/// How a history is written out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistoryFormat {
    /// CSV as Excel opens it: UTF-8 with a BOM, CRLF line ends, every field quoted (commas,
    /// quotes and newlines inside Japanese text stay in their cell).
    Csv,
    /// The A4 (landscape) print view: standalone, no script, everything escaped; significant
    /// changes carry a mark in their own column.
    Html,
}

/// What the head of a written history names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryHead {
    pub municipality: String,
    pub pia_file: String,
    pub from: Option<NaiveDate>,
    pub to: NaiveDate,
}

/// Writes a history piece by piece — its head, each row as it comes, its end — so that a long
/// one is sent while it is read: the same rows give the same bytes as [`to_csv`] and [`to_html`].
#[derive(Debug)]
pub struct HistoryRenderer {
    format: HistoryFormat,
    rows: usize,
}

impl HistoryRenderer {
    pub fn new(format: HistoryFormat) -> Self {
        Self { format, rows: 0 }
    }

    /// The head: the BOM and the column names, or the print view up to its table's body.
    pub fn head(&mut self, h: &HistoryHead) -> Vec<u8> {
        let mut out = String::new();
        match self.format {
            HistoryFormat::Csv => {
                out.push('\u{feff}');
                csv_line(&mut out, &COLUMNS.map(str::to_owned));
            }
            HistoryFormat::Html => {
                let _ = write!(
                    out,
                    "<!doctype html><html lang=\"ja\"><head><meta charset=\"utf-8\"><title>変更箇所 {} {}</title>\
                     <style>@page{{size:A4 landscape;margin:12mm}}body{{font-family:sans-serif;font-size:9.5pt}}\
                     table{{border-collapse:collapse;width:100%}}th,td{{border:1px solid #000;padding:3px;\
                     vertical-align:top;text-align:left}}th{{background:#eee}}tr{{break-inside:avoid}}\
                     thead{{display:table-header-group}}.day{{white-space:nowrap}}</style></head><body>\
                     <h1>変更箇所</h1><p>{} 特定個人情報ファイル: {} ({})</p>",
                    esc(&h.municipality),
                    esc(&h.pia_file),
                    esc(&h.municipality),
                    esc(&h.pia_file),
                    esc(&period_ja(h.from, h.to)),
                );
                out.push_str("<table><thead><tr>");
                for c in COLUMNS {
                    let _ = write!(out, "<th>{}</th>", esc(c));
                }
                out.push_str("</tr></thead><tbody>");
            }
        }
        out.into_bytes()
    }

    /// One row.
    pub fn row(&mut self, r: &ChangeRow) -> Vec<u8> {
        self.rows += 1;
        let mut out = String::new();
        match self.format {
            HistoryFormat::Csv => csv_line(&mut out, &cells(r)),
            HistoryFormat::Html => {
                let [day, rest @ ..] = cells(r);
                let _ = write!(out, "<tr><td class=\"day\">{}</td>", esc(&day));
                for c in rest {
                    let _ = write!(out, "<td>{}</td>", esc(&c));
                }
                out.push_str("</tr>");
            }
        }
        out.into_bytes()
    }

    /// The end (the print view says when the period had no change).
    pub fn finish(self) -> Vec<u8> {
        match self.format {
            HistoryFormat::Csv => Vec::new(),
            HistoryFormat::Html => {
                let mut out = String::new();
                if self.rows == 0 {
                    let _ = write!(
                        out,
                        "<tr><td colspan=\"7\">{}</td></tr>",
                        esc("この期間に変更はありません。")
                    );
                }
                out.push_str("</tbody></table></body></html>\n");
                out.into_bytes()
            }
        }
    }
}

fn csv_line(out: &mut String, cells: &[String]) {
    let quoted: Vec<String> = cells.iter().map(|c| pia::csv_cell(c)).collect();
    out.push_str(&quoted.join(","));
    out.push_str("\r\n");
}

/// The period as a heading says it.
fn period_ja(from: Option<NaiveDate>, to: NaiveDate) -> String {
    match from {
        Some(f) => format!("{}から{}まで", date_label_ja(f), date_label_ja(to)),
        None => format!("{}まで", date_label_ja(to)),
    }
}

/// A whole history in `format`.
fn render(h: &ChangeHistory, format: HistoryFormat) -> Vec<u8> {
    let mut renderer = HistoryRenderer::new(format);
    let mut out = renderer.head(&HistoryHead {
        municipality: h.municipality.clone(),
        pia_file: h.pia_file.clone(),
        from: h.from,
        to: h.to,
    });
    for r in &h.rows {
        out.extend(renderer.row(r));
    }
    out.extend(renderer.finish());
    out
}

/// CSV as Excel opens it: UTF-8 with a BOM, CRLF line ends, every field quoted.
pub fn to_csv(h: &ChangeHistory) -> Vec<u8> {
    render(h, HistoryFormat::Csv)
}

/// The A4 (landscape) print view.
pub fn to_html(h: &ChangeHistory) -> String {
    String::from_utf8_lossy(&render(h, HistoryFormat::Html)).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn node(id: &str, tier: i32, name: &str, cloud: bool, changes: &[(&str, bool)]) -> HistoryNode {
        HistoryNode {
            node_id: id.into(),
            node: PermittedNode {
                tier,
                contractor: name.into(),
                parent_contractor: "東京都国保連".into(),
                scope_of_work: format!("{name}の業務, \"一部\"\n保守"),
                cloud,
            },
            changes: changes.iter().map(|(t, on)| (at(t), *on)).collect(),
        }
    }

    fn inputs() -> HistoryInputs {
        HistoryInputs {
            municipality: "目黒区".into(),
            pia_file: "国民健康保険関係情報ファイル".into(),
            items: vec![HistoryItem {
                number: 1,
                title: "資格管理".into(),
                content: "資格情報の集約".into(),
                handlers: "10人以上50人未満".into(),
                tier1: "東京都国保連".into(),
                policy: "書面で許諾する。".into(),
                created_at: at("2026-04-01T00:00:00Z"),
                nodes: vec![
                    node(
                        "n2",
                        2,
                        "国保中央会",
                        false,
                        &[
                            ("2026-05-10T01:00:00Z", true),
                            ("2026-09-01T01:00:00Z", false),
                        ],
                    ),
                    node("n3", 3, "クラウド", true, &[("2026-06-15T01:00:00Z", true)]),
                ],
            }],
            assessments: vec![AssessmentFact {
                node_id: "n3".into(),
                recorded_at: at("2026-06-01T00:00:00Z"),
                items: vec![ChangeItem::CloudProviderAdded],
                summary: "クラウド移行に伴い全項目評価を再実施した".into(),
            }],
            significant: ChangeItem::DEFAULT.to_vec(),
        }
    }

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn each_changed_line_of_the_section_is_a_row_with_its_before_and_after() {
        let h = history(&inputs(), None, d(2026, 12, 31), None);
        let summary: Vec<(String, &str, &str)> = h
            .rows
            .iter()
            .map(|r| {
                (
                    r.changed_on.to_string(),
                    r.item.rsplit(' ').next().unwrap(),
                    r.timing_ja.as_str(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("2026-04-01".into(), "委託の有無", "事後"),
                ("2026-04-01".into(), "資格管理", "事後"),
                ("2026-05-10".into(), "③委託先名", "事後"),
                ("2026-05-10".into(), "④再委託の有無", "事後"),
                ("2026-05-10".into(), "⑤再委託の許諾方法", "事後"),
                ("2026-05-10".into(), "⑥再委託事項", "事後"),
                ("2026-06-15".into(), "⑤再委託の許諾方法", "事前"),
                ("2026-06-15".into(), "⑥再委託事項", "事後"),
                ("2026-09-01".into(), "③委託先名", "事後"),
                ("2026-09-01".into(), "⑥再委託事項", "事後"),
            ]
        );
        let first = &h.rows[3];
        assert_eq!(
            (first.before.as_str(), first.after.as_str()),
            ("[再委託しない]", "[再委託する]")
        );
        assert_eq!(first.change, Some(ChangeItem::SubcontractIntroduced));
        assert!(!first.significant, "not in the default set");
        assert_eq!(h.rows[4].before, NOT_STATED);
        let cloud = &h.rows[6];
        assert!(cloud.significant);
        assert_eq!(
            cloud.explanation,
            "クラウド移行に伴い全項目評価を再実施した"
        );
        assert!(cloud.after.ends_with(pia::CLOUD_CONDITIONS));
        assert_eq!(h.rows[0].changed_on_ja, "令和8年4月1日");
        assert_eq!(
            (h.rows[0].before.as_str(), h.rows[0].after.as_str()),
            ("[委託しない]", "[委託する] (1) 件")
        );
        // The suspension takes 国保中央会 out of ③ (tier 2) but the tier-3 cloud stays in ⑥.
        assert_eq!(h.rows[8].after, "東京都国保連");
        assert_eq!(h.rows[9].explanation, NOT_SIGNIFICANT);
    }

    #[test]
    fn an_assessment_recorded_after_the_change_makes_it_after_the_fact() {
        let mut i = inputs();
        i.assessments[0].recorded_at = at("2026-06-20T00:00:00Z");
        let h = history(&i, None, d(2026, 12, 31), None);
        let cloud = h.rows.iter().find(|r| r.significant).unwrap();
        assert_eq!(
            (cloud.timing, cloud.explanation.as_str()),
            (Timing::After, NOT_ASSESSED)
        );
        // A municipality that counts every new subcontractor marks ③ and ⑥ too.
        i.significant = vec![ChangeItem::NewSubcontractor];
        let h = history(&i, None, d(2026, 12, 31), None);
        let marked: Vec<&str> = h
            .rows
            .iter()
            .filter(|r| r.significant)
            .map(|r| r.item.rsplit(' ').next().unwrap())
            .collect();
        assert_eq!(marked, ["③委託先名", "⑥再委託事項", "⑥再委託事項"]);
    }

    #[test]
    fn the_period_and_the_item_select_rows() {
        let h = history(&inputs(), Some(d(2026, 6, 1)), d(2026, 6, 30), None);
        assert_eq!(h.rows.len(), 2);
        assert!(h.rows.iter().all(|r| r.changed_on == d(2026, 6, 15)));
        let none = history(&inputs(), None, d(2026, 12, 31), Some(2));
        assert!(none.rows.is_empty());
        // A change at 23:30 UTC is the next day in Japan.
        let mut late = inputs();
        late.items[0].nodes[0].changes[0].0 = at("2026-05-10T23:30:00Z");
        let h = history(&late, Some(d(2026, 5, 11)), d(2026, 5, 11), None);
        assert_eq!(h.rows.len(), 4);
    }

    #[test]
    fn the_csv_opens_in_excel_and_the_print_view_escapes_and_is_reproducible() {
        let h = history(&inputs(), None, d(2026, 12, 31), None);
        let csv = String::from_utf8(to_csv(&h)).unwrap();
        assert!(csv.starts_with("\u{feff}\"変更日\",\"項目\",\"変更前の記載\""));
        assert!(
            !csv.replace("\r\n", "").contains('\n'),
            "every newline is CRLF"
        );
        assert!(
            csv.contains("国保中央会の業務, \"\"一部\"\"\r\n保守"),
            "{csv}"
        );
        assert_eq!(csv.matches("\r\n\"令和").count(), h.rows.len());
        assert_eq!(
            to_csv(&h),
            to_csv(&history(&inputs(), None, d(2026, 12, 31), None))
        );
        let mut evil = inputs();
        evil.items[0].nodes[0].node.contractor = "<script>x</script>".into();
        let html = to_html(&history(&evil, None, d(2026, 12, 31), None));
        assert!(html.contains("&lt;script&gt;x&lt;/script&gt;"));
        assert!(!html.contains("<script>"));
        assert!(html.contains("size:A4 landscape"));
    }
}
