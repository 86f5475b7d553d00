//! The threshold test (しきい値判断) of one PIA file, as the 基礎項目評価書 asks it (旭川市 and
//! さいたま市 seeds, II and III): the people in the file, whether 500 or more people handle it —
//! the municipality's own staff *and every contractor's handlers along the chains* — and whether
//! a serious incident happened in the last year; from these, which assessment is required
//! (BRIEF section 5). Pure: the services load the inputs, the date is a parameter.
//!
//! Handlers are known only as the PIA form's brackets, so the count is a lower bound: each
//! bracket counts its lowest value. A contractor that appears on several nodes of the file
//! counts once, with its largest bracket, because the same staff may handle several items.
//! A node recorded without a bracket counts zero and is listed, so the officer can see what the
//! lower bound leaves out.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::{Months, NaiveDate};
use serde::{Deserialize, Serialize};

use super::pia::esc;
use crate::domain::fiscal::date_label_ja;
use crate::error::Msg;
use crate::services::chains::HandlerBracket;

/// The handler count from which a heavier assessment is required.
pub const HANDLERS_THRESHOLD: u32 = 500;

/// 対象人数: how many people the file holds, as the form's brackets.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
pub enum PeopleBracket {
    /// 1,000人未満
    #[serde(rename = "under_1000")]
    Under1000,
    /// 1,000人以上1万人未満
    #[serde(rename = "from_1000_to_9999")]
    From1000To9999,
    /// 1万人以上10万人未満
    #[serde(rename = "from_10000_to_99999")]
    From10000To99999,
    /// 10万人以上30万人未満
    #[serde(rename = "from_100000_to_299999")]
    From100000To299999,
    /// 30万人以上
    #[serde(rename = "from_300000")]
    From300000,
}

impl PeopleBracket {
    pub const ALL: [Self; 5] = [
        Self::Under1000,
        Self::From1000To9999,
        Self::From10000To99999,
        Self::From100000To299999,
        Self::From300000,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Under1000 => "under_1000",
            Self::From1000To9999 => "from_1000_to_9999",
            Self::From10000To99999 => "from_10000_to_99999",
            Self::From100000To299999 => "from_100000_to_299999",
            Self::From300000 => "from_300000",
        }
    }

    /// The label the form prints.
    pub fn label_ja(self) -> &'static str {
        match self {
            Self::Under1000 => "1,000人未満",
            Self::From1000To9999 => "1,000人以上1万人未満",
            Self::From10000To99999 => "1万人以上10万人未満",
            Self::From100000To299999 => "10万人以上30万人未満",
            Self::From300000 => "30万人以上",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|b| b.as_str() == s)
    }
}

/// The assessment the threshold test requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Assessment {
    /// No assessment is required (one may be done voluntarily).
    NotRequired,
    /// 基礎項目評価.
    Basic,
    /// 基礎項目評価 and 重点項目評価.
    BasicAndKeyItems,
    /// 基礎項目評価 and 全項目評価.
    BasicAndFull,
}

impl Assessment {
    /// The table of BRIEF section 5.
    pub fn required(people: PeopleBracket, heavy: bool) -> Self {
        use PeopleBracket as P;
        match (people, heavy) {
            (P::Under1000, _) => Self::NotRequired,
            (P::From1000To9999, _) | (P::From10000To99999, false) => Self::Basic,
            (P::From10000To99999, true) | (P::From100000To299999, false) => Self::BasicAndKeyItems,
            (P::From100000To299999, true) | (P::From300000, _) => Self::BasicAndFull,
        }
    }

    /// The result as the form's III prints it (旭川市, さいたま市, 目黒区 seeds).
    pub fn label(self) -> Msg {
        match self {
            Self::NotRequired => Msg::new(
                "特定個人情報保護評価の実施が義務付けられない",
                "No PIA is required",
            ),
            Self::Basic => Msg::new(
                "基礎項目評価の実施が義務付けられる",
                "A basic assessment is required",
            ),
            Self::BasicAndKeyItems => Msg::new(
                "基礎項目評価及び重点項目評価の実施が義務付けられる",
                "A basic assessment and a key-items assessment are required",
            ),
            Self::BasicAndFull => Msg::new(
                "基礎項目評価及び全項目評価の実施が義務付けられる",
                "A basic assessment and a full assessment are required",
            ),
        }
    }
}

/// One node of the file's chains whose contractor handles the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contribution {
    pub organisation_id: String,
    pub organisation_name: String,
    pub item_title: String,
    pub tier: i32,
    pub bracket: Option<HandlerBracket>,
}

/// Everything the test needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThresholdInputs {
    pub municipality: String,
    pub pia_file: String,
    pub people: Option<PeopleBracket>,
    pub own_staff: Option<HandlerBracket>,
    /// いつ時点の計数か.
    pub counted_on: Option<NaiveDate>,
    pub last_serious_incident_on: Option<NaiveDate>,
    pub contributions: Vec<Contribution>,
}

/// A bracket as the test shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct BracketView {
    pub bracket: String,
    pub label: String,
    pub lower_bound: u32,
}

impl From<HandlerBracket> for BracketView {
    fn from(b: HandlerBracket) -> Self {
        Self {
            bracket: b.as_str().to_owned(),
            label: b.label_ja().to_owned(),
            lower_bound: b.lower_bound(),
        }
    }
}

/// One node behind a contractor's count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct NodeCount {
    pub item_title: String,
    pub tier: i32,
    /// `None` when the node was recorded without a bracket (it counts zero).
    pub bracket: Option<String>,
}

/// One contractor's handlers: its largest bracket over its nodes of the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ContractorCount {
    pub organisation_id: String,
    pub organisation_name: String,
    /// `None` when none of its nodes has a bracket.
    pub bracket: Option<BracketView>,
    pub lower_bound: u32,
    pub nodes: Vec<NodeCount>,
}

/// 取扱者数.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Handlers {
    /// The municipality's own staff plus every contractor's, each at its bracket's lower bound.
    pub lower_bound: u32,
    /// 500人以上か: whether the lower bound reaches 500.
    pub five_hundred_or_more: bool,
    /// The form's answer: `500人以上` or `500人未満`.
    pub answer: String,
    pub municipality_staff: Option<BracketView>,
    pub contractors: Vec<ContractorCount>,
    /// Nodes counted as zero because they have no bracket.
    pub nodes_without_bracket: usize,
    /// How the count is made.
    #[schema(value_type = Object)]
    pub basis: Msg,
}

/// 重大事故.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct SeriousIncident {
    pub last_on: Option<NaiveDate>,
    /// 過去1年以内に発生したか.
    pub within_last_year: bool,
    /// The form's answer: `発生あり` or `発生なし`.
    pub answer: String,
}

/// 対象人数.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct People {
    pub bracket: String,
    pub label: String,
}

/// III しきい値判断結果.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ThresholdResult {
    pub assessment: Assessment,
    #[schema(value_type = Object)]
    pub label: Msg,
}

/// The threshold test of one PIA file on one day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ThresholdTest {
    pub municipality: String,
    pub pia_file: String,
    /// The day the test was computed for (today in Japan).
    pub as_of: NaiveDate,
    pub counted_on: Option<NaiveDate>,
    pub people: Option<People>,
    pub handlers: Handlers,
    pub serious_incident: SeriousIncident,
    /// `None` while an input is missing (see `missing`).
    pub result: Option<ThresholdResult>,
    /// Inputs not yet recorded: `people_bracket`, `own_staff_bracket`.
    pub missing: Vec<String>,
}

/// Whether `last` lies within the year before `today` (さいたま市 seed: an incident stops
/// counting once a year has passed).
pub fn within_last_year(last: Option<NaiveDate>, today: NaiveDate) -> bool {
    let Some(last) = last else { return false };
    let from = today.checked_sub_months(Months::new(12)).unwrap_or(today);
    from < last && last <= today
}

/// Counts the handlers of the inputs (see the module's rules).
pub fn handlers(inputs: &ThresholdInputs) -> Handlers {
    let mut by_org: BTreeMap<&str, ContractorCount> = BTreeMap::new();
    let mut without = 0;
    for c in &inputs.contributions {
        let entry = by_org
            .entry(&c.organisation_id)
            .or_insert_with(|| ContractorCount {
                organisation_id: c.organisation_id.clone(),
                organisation_name: c.organisation_name.clone(),
                bracket: None,
                lower_bound: 0,
                nodes: Vec::new(),
            });
        entry.nodes.push(NodeCount {
            item_title: c.item_title.clone(),
            tier: c.tier,
            bracket: c.bracket.map(|b| b.as_str().to_owned()),
        });
        match c.bracket {
            None => without += 1,
            Some(b) if b.lower_bound() >= entry.lower_bound || entry.bracket.is_none() => {
                entry.lower_bound = b.lower_bound();
                entry.bracket = Some(b.into());
            }
            Some(_) => {}
        }
    }
    let mut contractors: Vec<ContractorCount> = by_org.into_values().collect();
    for c in &mut contractors {
        c.nodes
            .sort_by(|a, b| (&a.item_title, a.tier).cmp(&(&b.item_title, b.tier)));
    }
    // Largest first, then by name and id, so the same data gives the same order.
    contractors.sort_by(|a, b| {
        (b.lower_bound, &a.organisation_name, &a.organisation_id).cmp(&(
            a.lower_bound,
            &b.organisation_name,
            &b.organisation_id,
        ))
    });
    let own = inputs.own_staff.map_or(0, HandlerBracket::lower_bound);
    let lower_bound = contractors
        .iter()
        .fold(own, |sum, c| sum.saturating_add(c.lower_bound));
    let five_hundred_or_more = lower_bound >= HANDLERS_THRESHOLD;
    let mut ja = "取扱者数は、評価実施機関の職員と委託の連鎖上の各委託先の取扱者数を、選択肢の区分の下限値で合計した下限値です。複数の委託事項に関わる委託先は、同じ職員が取り扱い得るため、最も大きい区分で一度だけ数えます。".to_owned();
    let mut en = "The handler count is a lower bound: the municipality's own staff and every contractor along the chains, each at the lower bound of its bracket. A contractor on several items counts once, with its largest bracket, as the same staff may handle them.".to_owned();
    if without > 0 {
        let _ = write!(
            ja,
            "取扱者数の区分が登録されていない委託先ノード{without}件は0人として数えています。"
        );
        let _ = write!(
            en,
            " {without} node(s) without a recorded bracket count as zero."
        );
    }
    Handlers {
        lower_bound,
        five_hundred_or_more,
        answer: if five_hundred_or_more {
            "500人以上"
        } else {
            "500人未満"
        }
        .to_owned(),
        municipality_staff: inputs.own_staff.map(BracketView::from),
        contractors,
        nodes_without_bracket: without,
        basis: Msg::new(ja, en),
    }
}

/// The test on `today`.
pub fn evaluate(inputs: &ThresholdInputs, today: NaiveDate) -> ThresholdTest {
    let handlers = handlers(inputs);
    let incident = within_last_year(inputs.last_serious_incident_on, today);
    let mut missing = Vec::new();
    if inputs.people.is_none() {
        missing.push("people_bracket".to_owned());
    }
    if inputs.own_staff.is_none() {
        missing.push("own_staff_bracket".to_owned());
    }
    let result = match (inputs.people, missing.is_empty()) {
        (Some(people), true) => {
            let assessment =
                Assessment::required(people, handlers.five_hundred_or_more || incident);
            Some(ThresholdResult {
                assessment,
                label: assessment.label(),
            })
        }
        _ => None,
    };
    ThresholdTest {
        municipality: inputs.municipality.clone(),
        pia_file: inputs.pia_file.clone(),
        as_of: today,
        counted_on: inputs.counted_on,
        people: inputs.people.map(|p| People {
            bracket: p.as_str().to_owned(),
            label: p.label_ja().to_owned(),
        }),
        handlers,
        serious_incident: SeriousIncident {
            last_on: inputs.last_serious_incident_on,
            within_last_year: incident,
            answer: if incident {
                "発生あり"
            } else {
                "発生なし"
            }
            .to_owned(),
        },
        result,
        missing,
    }
}

/// How a pending node would change the test: `Some((before, after))` when it takes the handler
/// count from under 500 to 500 or more (a re-assessment is then required).
pub fn crossing(
    inputs: &ThresholdInputs,
    pending: Contribution,
    today: NaiveDate,
) -> Option<(ThresholdTest, ThresholdTest)> {
    let before = evaluate(inputs, today);
    let mut with = inputs.clone();
    with.contributions.push(pending);
    let after = evaluate(&with, today);
    (!before.handlers.five_hundred_or_more && after.handlers.five_hundred_or_more)
        .then_some((before, after))
}

const UNRECORDED: &str = "(未登録)";

/// A standalone print view (A4, no script, no external resources), everything escaped, in the
/// layout of the 基礎項目評価書's II and III.
pub fn to_html(test: &ThresholdTest) -> String {
    let day = |d: Option<NaiveDate>| d.map_or_else(|| UNRECORDED.to_owned(), date_label_ja);
    let mut out = String::new();
    let _ = write!(
        out,
        "<!doctype html><html lang=\"ja\"><head><meta charset=\"utf-8\"><title>{} {} しきい値判断</title>\
         <style>@page{{size:A4;margin:15mm}}body{{font-family:sans-serif;font-size:10.5pt}}\
         table{{border-collapse:collapse;width:100%;margin-bottom:8mm}}th,td{{border:1px solid #000;\
         padding:4px;vertical-align:top;text-align:left}}th{{background:#eee}}tr{{break-inside:avoid}}\
         .n{{text-align:right}}</style></head><body><h1>II しきい値判断項目</h1><p>{} 特定個人情報ファイル: {} \
         ({}現在)</p>",
        esc(&test.municipality),
        esc(&test.pia_file),
        esc(&test.municipality),
        esc(&test.pia_file),
        esc(&date_label_ja(test.as_of)),
    );
    let people = test
        .people
        .as_ref()
        .map_or(UNRECORDED, |p| p.label.as_str());
    let _ = write!(
        out,
        "<h2>1. 対象人数</h2><table><tr><th>評価対象の事務の対象人数は何人か</th><td>[ {} ]</td></tr>\
         <tr><th>いつ時点の計数か</th><td>{} 時点</td></tr></table>",
        esc(people),
        esc(&day(test.counted_on)),
    );
    let h = &test.handlers;
    let _ = write!(
        out,
        "<h2>2. 取扱者数</h2><table><tr><th>特定個人情報ファイル取扱者数は500人以上か</th><td>[ {} ] (下限値 {}人)</td></tr>\
         <tr><th>いつ時点の計数か</th><td>{} 時点</td></tr></table>\
         <table><tr><th>区分</th><th>組織</th><th>取扱者数の区分</th><th class=\"n\">下限値</th></tr>",
        esc(&h.answer),
        h.lower_bound,
        esc(&day(Some(test.as_of))),
    );
    let staff = h
        .municipality_staff
        .as_ref()
        .map_or((UNRECORDED, 0), |b| (b.label.as_str(), b.lower_bound));
    let _ = write!(
        out,
        "<tr><td>評価実施機関の職員</td><td>{}</td><td>{}</td><td class=\"n\">{}人</td></tr>",
        esc(&test.municipality),
        esc(staff.0),
        staff.1,
    );
    for c in &h.contractors {
        let label = c.bracket.as_ref().map_or(UNRECORDED, |b| b.label.as_str());
        let items: Vec<String> = c
            .nodes
            .iter()
            .map(|n| format!("{} 第{}階層", n.item_title, n.tier))
            .collect();
        let _ = write!(
            out,
            "<tr><td>委託先</td><td>{}<br><small>{}</small></td><td>{}</td><td class=\"n\">{}人</td></tr>",
            esc(&c.organisation_name),
            esc(&items.join("、")),
            esc(label),
            c.lower_bound,
        );
    }
    let _ = write!(
        out,
        "<tr><th colspan=\"3\">合計(下限値)</th><td class=\"n\">{}人</td></tr></table><p>{}</p>",
        h.lower_bound,
        esc(&h.basis.ja),
    );
    let incident_day = test
        .serious_incident
        .last_on
        .map_or_else(|| "なし".to_owned(), date_label_ja);
    let _ = write!(
        out,
        "<h2>3. 重大事故</h2><table><tr><th>過去1年以内に、評価実施機関において特定個人情報に関する重大事故が発生したか</th>\
         <td>[ {} ]</td></tr><tr><th>直近の重大事故の発生日</th><td>{}</td></tr></table>",
        esc(&test.serious_incident.answer),
        esc(&incident_day),
    );
    let result = test.result.as_ref().map_or_else(
        || {
            format!(
                "判断できません(未登録の項目があります: {})",
                test.missing.join("、")
            )
        },
        |r| r.label.ja.clone(),
    );
    let _ = writeln!(
        out,
        "<h1>III しきい値判断結果</h1><table><tr><th>しきい値判断結果</th><td>{}</td></tr></table></body></html>",
        esc(&result),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    fn node(org: &str, item: &str, tier: i32, bracket: Option<HandlerBracket>) -> Contribution {
        Contribution {
            organisation_id: org.to_owned(),
            organisation_name: format!("{org}社"),
            item_title: item.to_owned(),
            tier,
            bracket,
        }
    }

    fn inputs() -> ThresholdInputs {
        use HandlerBracket as H;
        ThresholdInputs {
            municipality: "目黒区".into(),
            pia_file: "国民健康保険関係情報ファイル".into(),
            people: Some(PeopleBracket::From100000To299999),
            own_staff: Some(H::From100To499),
            counted_on: Some(d(2026, 4, 1)),
            last_serious_incident_on: None,
            contributions: vec![
                node("kokuhoren", "資格管理", 1, Some(H::From50To99)),
                node("kokuhoren", "給付", 1, Some(H::From10To49)),
                node("chuokai", "資格管理", 2, Some(H::From100To499)),
                node("cloud", "資格管理", 3, None),
            ],
        }
    }

    #[test]
    fn the_table_of_the_brief_decides_the_assessment() {
        use Assessment as A;
        use PeopleBracket as P;
        let expected = [
            (P::Under1000, A::NotRequired, A::NotRequired),
            (P::From1000To9999, A::Basic, A::Basic),
            (P::From10000To99999, A::BasicAndKeyItems, A::Basic),
            (P::From100000To299999, A::BasicAndFull, A::BasicAndKeyItems),
            (P::From300000, A::BasicAndFull, A::BasicAndFull),
        ];
        for (people, heavy, otherwise) in expected {
            assert_eq!(A::required(people, true), heavy, "{people:?}");
            assert_eq!(A::required(people, false), otherwise, "{people:?}");
        }
    }

    #[test]
    fn handlers_add_the_lower_bounds_counting_each_contractor_once_at_its_largest_bracket() {
        let h = handlers(&inputs());
        // 100 own staff + 国保連 max(50, 10) + 中央会 100 + cloud unknown (0).
        assert_eq!(h.lower_bound, 250);
        assert!(!h.five_hundred_or_more);
        assert_eq!(h.answer, "500人未満");
        assert_eq!(h.nodes_without_bracket, 1);
        let names: Vec<(&str, u32)> = h
            .contractors
            .iter()
            .map(|c| (c.organisation_id.as_str(), c.lower_bound))
            .collect();
        assert_eq!(
            names,
            [("chuokai", 100), ("kokuhoren", 50), ("cloud", 0)],
            "largest first"
        );
        assert_eq!(h.contractors[1].nodes.len(), 2);
        assert!(h.basis.ja.contains("下限値"), "{}", h.basis.ja);
        assert!(h.basis.ja.contains("1件は0人"), "{}", h.basis.ja);
    }

    #[test]
    fn the_result_follows_people_handlers_and_a_recent_serious_incident() {
        let today = d(2026, 11, 22);
        let test = evaluate(&inputs(), today);
        assert_eq!(
            test.result.as_ref().map(|r| r.assessment),
            Some(Assessment::BasicAndKeyItems),
            "10万–30万, under 500, no incident: 重点 as the 目黒区 seed"
        );
        let mut incident = inputs();
        incident.last_serious_incident_on = Some(d(2025, 11, 23));
        let test = evaluate(&incident, today);
        assert!(test.serious_incident.within_last_year);
        assert_eq!(test.serious_incident.answer, "発生あり");
        assert_eq!(
            test.result.map(|r| r.assessment),
            Some(Assessment::BasicAndFull)
        );
        incident.last_serious_incident_on = Some(d(2025, 11, 22));
        assert!(
            !evaluate(&incident, today).serious_incident.within_last_year,
            "a year has passed"
        );
    }

    #[test]
    fn missing_inputs_give_no_result_but_still_the_handlers() {
        let mut i = inputs();
        i.people = None;
        i.own_staff = None;
        let test = evaluate(&i, d(2026, 11, 22));
        assert_eq!(test.result, None);
        assert_eq!(test.missing, ["people_bracket", "own_staff_bracket"]);
        assert_eq!(test.handlers.lower_bound, 150);
        assert!(to_html(&test).contains("判断できません"));
    }

    #[test]
    fn a_pending_node_that_reaches_500_is_a_crossing() {
        let today = d(2026, 11, 22);
        let small = node("vendor", "資格管理", 2, Some(HandlerBracket::From100To499));
        assert_eq!(
            crossing(&inputs(), small, today),
            None,
            "250 + 100 stays under 500"
        );
        let big = node("vendor", "資格管理", 2, Some(HandlerBracket::From500To999));
        let (before, after) = crossing(&inputs(), big, today).unwrap();
        assert_eq!(
            (before.handlers.lower_bound, after.handlers.lower_bound),
            (250, 750)
        );
        assert_eq!(
            after.result.map(|r| r.assessment),
            Some(Assessment::BasicAndFull)
        );
        // A contractor already counted with a larger bracket adds nothing.
        let again = node("chuokai", "給付", 2, Some(HandlerBracket::From10To49));
        assert_eq!(crossing(&inputs(), again, today), None);
    }

    /// 目黒区's NHI file as the demo builds it from the seeds.
    fn meguro() -> ThresholdInputs {
        use HandlerBracket as H;
        let item = "国民健康保険の資格管理等に関する事務(国保情報集約システム)";
        let node = |id: &str, name: &str, tier, bracket| Contribution {
            organisation_id: id.to_owned(),
            organisation_name: name.to_owned(),
            item_title: item.to_owned(),
            tier,
            bracket,
        };
        ThresholdInputs {
            municipality: "目黒区".into(),
            pia_file: "国民健康保険関係情報ファイル".into(),
            people: Some(PeopleBracket::From100000To299999),
            own_staff: Some(H::From100To499),
            counted_on: Some(d(2026, 4, 1)),
            last_serious_incident_on: None,
            contributions: vec![
                node(
                    "tokyo_kokuhoren",
                    "東京都国民健康保険団体連合会",
                    1,
                    Some(H::From10To49),
                ),
                node(
                    "kokuho_chuokai",
                    "公益社団法人国民健康保険中央会",
                    2,
                    Some(H::From10To49),
                ),
                node("cloud_provider", "クラウド事業者株式会社", 3, None),
            ],
        }
    }

    #[test]
    fn the_print_view_matches_the_golden_file_byte_for_byte() {
        let html = to_html(&evaluate(&meguro(), d(2026, 11, 22)));
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/golden/threshold_meguro.html"
        );
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(path, &html).unwrap();
        }
        assert_eq!(
            html,
            std::fs::read_to_string(path).unwrap(),
            "UPDATE_GOLDEN=1 rewrites it"
        );
    }

    #[test]
    fn the_print_view_is_reproducible_and_escapes_everything() {
        let mut i = inputs();
        i.contributions[0].organisation_name = "<b>国保連</b>".into();
        let today = d(2026, 11, 22);
        let html = to_html(&evaluate(&i, today));
        assert_eq!(html, to_html(&evaluate(&i, today)));
        assert!(html.contains("&lt;b&gt;国保連&lt;/b&gt;"));
        assert!(!html.contains("<b>"));
        assert!(html.contains("[ 500人未満 ] (下限値 250人)"));
        assert!(html.contains("基礎項目評価及び重点項目評価の実施が義務付けられる"));
        assert!(html.contains("令和8年4月1日 時点"));
    }
}
