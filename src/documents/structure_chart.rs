//! The implementation structure chart (履行体制図) of a consignment item: each tier's
//! organisation, responsible person, manager, staff count and work location, and who supervises
//! whom, drawn from the chain as SVG and as an A4 landscape print view. A chart is compared with
//! the last submitted version: changed boxes and fields, added and removed nodes are marked and
//! listed, because a changed chart must be resubmitted.
//!
//! Pure and reproducible: the same chart gives the same bytes (nodes in tree order, children in
//! the order they joined the chain; no ids or times in the output).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::pia::esc;
use crate::domain::fiscal::date_label_ja;

/// One tier's box.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChartNode {
    pub node_id: String,
    /// `None` for tier 1 (supervised by the municipality).
    pub parent_id: Option<String>,
    pub tier: i32,
    pub organisation: String,
    /// 責任者.
    pub responsible_person: Option<String>,
    /// 管理者.
    pub manager: Option<String>,
    /// 従事者数.
    pub staff_count: Option<i32>,
    /// 作業場所.
    pub work_location: Option<String>,
    /// Who supervises it: its parent's organisation, or the municipality for tier 1.
    pub supervised_by: String,
    /// How (監督の方法), as the application states it.
    pub supervision: String,
    /// `permitted`, `applying` or `suspended`.
    pub state: String,
}

/// The chart of one item as it stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Chart {
    pub item_title: String,
    pub municipality: String,
    pub as_of: NaiveDate,
    /// In tree order: each node after its parent, siblings in the order they joined.
    pub nodes: Vec<ChartNode>,
}

/// One field that differs from the submitted version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FieldChange {
    /// `organisation`, `responsible_person`, `manager`, `staff_count`, `work_location`,
    /// `supervised_by`, `supervision`.
    pub field: String,
    pub label_ja: String,
    pub label_en: String,
    pub before: String,
    pub after: String,
}

/// How a node differs from the submitted version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NodeChange {
    pub node_id: String,
    pub organisation: String,
    pub tier: i32,
    /// `added`, `removed` or `changed`.
    pub kind: String,
    /// For `changed`: the fields that differ.
    pub fields: Vec<FieldChange>,
}

const FIELDS: [(&str, &str, &str); 7] = [
    ("organisation", "組織", "Organisation"),
    ("responsible_person", "責任者", "Responsible person"),
    ("manager", "管理者", "Manager"),
    ("staff_count", "従事者数", "Staff"),
    ("work_location", "作業場所", "Work location"),
    ("supervised_by", "監督者", "Supervised by"),
    ("supervision", "監督の方法", "Supervision"),
];

/// Shown for a field nobody recorded yet.
const UNRECORDED: &str = "(未登録)";

fn text(v: Option<&str>) -> String {
    v.filter(|s| !s.trim().is_empty())
        .map_or_else(|| UNRECORDED.to_owned(), str::to_owned)
}

fn staff(n: Option<i32>) -> String {
    n.map_or_else(|| UNRECORDED.to_owned(), |n| format!("{n}人"))
}

fn field_value(n: &ChartNode, field: &str) -> String {
    match field {
        "organisation" => n.organisation.clone(),
        "responsible_person" => text(n.responsible_person.as_deref()),
        "manager" => text(n.manager.as_deref()),
        "staff_count" => staff(n.staff_count),
        "work_location" => text(n.work_location.as_deref()),
        "supervised_by" => n.supervised_by.clone(),
        "supervision" => text(Some(&n.supervision)),
        _ => String::new(),
    }
}

/// How `current` differs from `submitted`, node by node in the current tree order, then the
/// removed nodes in the submitted order.
pub fn diff(submitted: &Chart, current: &Chart) -> Vec<NodeChange> {
    let old: BTreeMap<&str, &ChartNode> = submitted
        .nodes
        .iter()
        .map(|n| (n.node_id.as_str(), n))
        .collect();
    let now: BTreeSet<&str> = current.nodes.iter().map(|n| n.node_id.as_str()).collect();
    let mut out = Vec::new();
    for n in &current.nodes {
        let change = |kind: &str, fields| NodeChange {
            node_id: n.node_id.clone(),
            organisation: n.organisation.clone(),
            tier: n.tier,
            kind: kind.to_owned(),
            fields,
        };
        let Some(o) = old.get(n.node_id.as_str()) else {
            out.push(change("added", Vec::new()));
            continue;
        };
        let fields: Vec<FieldChange> = FIELDS
            .iter()
            .filter_map(|(field, ja, en)| {
                let (before, after) = (field_value(o, field), field_value(n, field));
                (before != after).then(|| FieldChange {
                    field: (*field).to_owned(),
                    label_ja: (*ja).to_owned(),
                    label_en: (*en).to_owned(),
                    before,
                    after,
                })
            })
            .collect();
        if !fields.is_empty() {
            out.push(change("changed", fields));
        }
    }
    for o in &submitted.nodes {
        if !now.contains(o.node_id.as_str()) {
            out.push(NodeChange {
                node_id: o.node_id.clone(),
                organisation: o.organisation.clone(),
                tier: o.tier,
                kind: "removed".to_owned(),
                fields: Vec::new(),
            });
        }
    }
    out
}

/// Whether two charts show the same structure (the day they were drawn aside).
pub fn same_structure(a: &Chart, b: &Chart) -> bool {
    a.nodes == b.nodes && a.item_title == b.item_title && a.municipality == b.municipality
}

const BOX_W: i32 = 250;
const BOX_H: i32 = 116;
const GAP_X: i32 = 24;
const GAP_Y: i32 = 56;
const MARGIN: i32 = 12;
const LINE: i32 = 18;
const ROOT_H: i32 = 44;
/// The width a box's line may take, in twelfths of an em-square at 12px (ASCII counts half).
const LINE_UNITS: usize = 2 * 19;

/// `s` cut to what fits on one line of a box, with "…" when cut (the table has the whole text).
fn fit(s: &str) -> String {
    let mut units = 0;
    let mut out = String::new();
    let total: usize = s.chars().map(|c| if c.is_ascii() { 1 } else { 2 }).sum();
    if total <= LINE_UNITS {
        return s.to_owned();
    }
    for c in s.chars() {
        let u = if c.is_ascii() { 1 } else { 2 };
        if units + u > LINE_UNITS - 2 {
            break;
        }
        units += u;
        out.push(c);
    }
    out.push('…');
    out
}

/// A box to draw: a current node, or a removed one shown where it was.
struct Drawn<'a> {
    node: &'a ChartNode,
    parent: Option<usize>,
    depth: i32,
    x: i32,
    mark: Option<&'a NodeChange>,
}

fn layout<'a>(
    chart: &'a Chart,
    removed: &'a [ChartNode],
    changes: &'a [NodeChange],
) -> Vec<Drawn<'a>> {
    let all: Vec<&ChartNode> = chart.nodes.iter().chain(removed).collect();
    let index: BTreeMap<&str, usize> = all
        .iter()
        .enumerate()
        .map(|(i, n)| (n.node_id.as_str(), i))
        .collect();
    let parent_of = |n: &ChartNode| n.parent_id.as_deref().and_then(|p| index.get(p).copied());
    let mut children: BTreeMap<Option<usize>, Vec<usize>> = BTreeMap::new();
    for (i, n) in all.iter().enumerate() {
        children.entry(parent_of(n)).or_default().push(i);
    }
    let mark = |n: &ChartNode| changes.iter().find(|c| c.node_id == n.node_id);
    /// Depth-first: a leaf takes the next slot (in half-box units), a parent sits over the
    /// middle of its children. Returns the slot of `at`.
    fn place(
        at: Option<usize>,
        depth: i32,
        children: &BTreeMap<Option<usize>, Vec<usize>>,
        next_leaf: &mut i32,
        slots: &mut BTreeMap<usize, (i32, i32)>,
    ) -> i32 {
        let kids = children.get(&at).cloned().unwrap_or_default();
        if kids.is_empty() {
            let slot = *next_leaf;
            *next_leaf += 1;
            return slot * 2;
        }
        let placed: Vec<i32> = kids
            .iter()
            .map(|k| {
                let x = place(Some(*k), depth + 1, children, next_leaf, slots);
                slots.insert(*k, (x, depth + 1));
                x
            })
            .collect();
        (placed.first().copied().unwrap_or(0) + placed.last().copied().unwrap_or(0)) / 2
    }
    let mut slots = BTreeMap::new();
    place(None, 0, &children, &mut 0, &mut slots);
    all.iter()
        .enumerate()
        .map(|(i, n)| {
            let (x2, depth) = slots.get(&i).copied().unwrap_or((0, 1));
            Drawn {
                node: n,
                parent: parent_of(n),
                depth,
                x: MARGIN + x2 * (BOX_W + GAP_X) / 2,
                mark: mark(n),
            }
        })
        .collect()
}

fn box_y(depth: i32) -> i32 {
    MARGIN + ROOT_H + GAP_Y + (depth - 1) * (BOX_H + GAP_Y)
}

/// The chart as SVG; with `changes` (from [`diff`]) and the submitted version's `removed`
/// nodes, the differences are marked: a changed box and its changed lines in red with "＊", an
/// added box in green marked 追加, a removed box dashed and grey marked 削除. Presentation
/// attributes only (no style), so the page's Content-Security-Policy allows it inline.
pub fn to_svg(chart: &Chart, changes: &[NodeChange], removed: &[ChartNode]) -> String {
    let drawn = layout(chart, removed, changes);
    let leaves = drawn.iter().map(|d| d.x).max().unwrap_or(MARGIN) + BOX_W + MARGIN;
    let width = leaves.max(BOX_W + 2 * MARGIN);
    let depth = drawn.iter().map(|d| d.depth).max().unwrap_or(0);
    let height = if depth == 0 {
        2 * MARGIN + ROOT_H
    } else {
        box_y(depth) + BOX_H + MARGIN
    };
    let mut svg = String::new();
    let _ = write!(
        svg,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"structure-chart\" role=\"img\" \
         aria-label=\"履行体制図 / Implementation structure chart\" viewBox=\"0 0 {width} {height}\" \
         width=\"{width}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"12\">"
    );
    // The municipality, centred over tier 1.
    let tier1: Vec<i32> = drawn
        .iter()
        .filter(|d| d.parent.is_none())
        .map(|d| d.x)
        .collect();
    let root_x = match (tier1.first(), tier1.last()) {
        (Some(a), Some(b)) => (a + b) / 2,
        _ => MARGIN,
    };
    let _ = write!(
        svg,
        "<g class=\"chart-root\"><rect x=\"{root_x}\" y=\"{MARGIN}\" width=\"{BOX_W}\" height=\"{ROOT_H}\" \
         fill=\"#f2f2f2\" stroke=\"#000000\" stroke-width=\"1.5\"/><text x=\"{}\" y=\"{}\" \
         font-weight=\"bold\" text-anchor=\"middle\">{}</text><text x=\"{}\" y=\"{}\" \
         text-anchor=\"middle\" font-size=\"10\">委託元 / Consignor</text></g>",
        root_x + BOX_W / 2,
        MARGIN + 18,
        esc(&fit(&chart.municipality)),
        root_x + BOX_W / 2,
        MARGIN + 34,
    );
    // Supervision lines: from the supervisor's bottom to the supervised box's top.
    for d in &drawn {
        let (px, py) = match d.parent {
            Some(p) => (drawn[p].x + BOX_W / 2, box_y(drawn[p].depth) + BOX_H),
            None => (root_x + BOX_W / 2, MARGIN + ROOT_H),
        };
        let (cx, cy) = (d.x + BOX_W / 2, box_y(d.depth));
        let mid = py + (cy - py) / 2;
        let dash = if d.mark.is_some_and(|m| m.kind == "removed") {
            " stroke-dasharray=\"6 4\""
        } else {
            ""
        };
        let _ = write!(
            svg,
            "<path d=\"M{px} {py} V{mid} H{cx} V{cy}\" fill=\"none\" stroke=\"#000000\"{dash}/>\
             <text x=\"{}\" y=\"{}\" font-size=\"10\">監督</text>",
            cx + 4,
            cy - 6,
        );
    }
    for d in &drawn {
        let n = d.node;
        let y = box_y(d.depth);
        let kind = d.mark.map(|m| m.kind.as_str());
        let (stroke, width_attr, extra, fill) = match kind {
            Some("added") => ("#1b7f3b", "3", "", "#ffffff"),
            Some("removed") => ("#777777", "2", " stroke-dasharray=\"6 4\"", "#f7f7f7"),
            Some(_) => ("#b00020", "3", "", "#ffffff"),
            None => ("#000000", "1", "", "#ffffff"),
        };
        let _ = write!(
            svg,
            "<g class=\"chart-node{}\"><rect x=\"{}\" y=\"{y}\" width=\"{BOX_W}\" height=\"{BOX_H}\" \
             fill=\"{fill}\" stroke=\"{stroke}\" stroke-width=\"{width_attr}\"{extra}/>",
            kind.map(|k| format!(" chart-{k}")).unwrap_or_default(),
            d.x,
        );
        let changed: BTreeSet<&str> = d
            .mark
            .map(|m| m.fields.iter().map(|f| f.field.as_str()).collect())
            .unwrap_or_default();
        let state = match n.state.as_str() {
            "applying" => " (申請中)",
            "suspended" => " (停止中)",
            _ => "",
        };
        let lines = [
            ("organisation", format!("第{}階層{state}", n.tier)),
            ("organisation", n.organisation.clone()),
            (
                "responsible_person",
                format!("責任者: {}", text(n.responsible_person.as_deref())),
            ),
            ("manager", format!("管理者: {}", text(n.manager.as_deref()))),
            ("staff_count", format!("従事者数: {}", staff(n.staff_count))),
            (
                "work_location",
                format!("作業場所: {}", text(n.work_location.as_deref())),
            ),
        ];
        for (i, (field, line)) in lines.iter().enumerate() {
            let ty = y + 17 + i32::try_from(i).unwrap_or(0) * LINE;
            let hot = kind == Some("changed") && changed.contains(field) && i > 0;
            let bold = if i == 1 { " font-weight=\"bold\"" } else { "" };
            let colour = if hot {
                " fill=\"#b00020\" font-weight=\"bold\" text-decoration=\"underline\""
            } else if kind == Some("removed") {
                " fill=\"#777777\""
            } else {
                ""
            };
            let marker = if hot { "＊" } else { "" };
            let _ = write!(
                svg,
                "<text x=\"{}\" y=\"{ty}\"{bold}{colour}>{}</text>",
                d.x + 8,
                esc(&fit(&format!("{marker}{line}"))),
            );
        }
        let badge = match kind {
            Some("added") => Some(("追加", "#1b7f3b")),
            Some("removed") => Some(("削除", "#777777")),
            Some("changed")
                if changed.contains("supervised_by") || changed.contains("supervision") =>
            {
                Some(("変更(監督)", "#b00020"))
            }
            Some("changed") => Some(("変更", "#b00020")),
            _ => None,
        };
        if let Some((label, colour)) = badge {
            let _ = write!(
                svg,
                "<text x=\"{}\" y=\"{}\" text-anchor=\"end\" font-weight=\"bold\" fill=\"{colour}\">{label}</text>",
                d.x + BOX_W - 8,
                y + 17,
            );
        }
        svg.push_str("</g>");
    }
    svg.push_str("</svg>");
    svg
}

/// What the print view says about versions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct VersionNote {
    /// The version compared with, if any was submitted.
    pub submitted_number: Option<i32>,
    pub submitted_on: Option<NaiveDate>,
}

/// The A4 landscape print view: the chart on the first page, then the differences from the
/// submitted version and every tier's details (the whole texts the boxes may cut).
pub fn to_html(
    chart: &Chart,
    changes: &[NodeChange],
    removed: &[ChartNode],
    note: &VersionNote,
) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<!doctype html><html lang=\"ja\"><head><meta charset=\"utf-8\"><title>履行体制図 {}</title>\
         <style>@page{{size:A4 landscape;margin:10mm}}body{{font-family:sans-serif;font-size:10pt;margin:0}}\
         h1{{font-size:14pt;margin:0 0 2mm}}p{{margin:0 0 2mm}}.chart svg{{display:block;width:100%;height:auto;max-height:150mm}}\
         .details{{break-before:page}}table{{border-collapse:collapse;width:100%;margin-bottom:5mm}}\
         th,td{{border:1px solid #000;padding:3px;vertical-align:top;text-align:left}}th{{background:#eee}}\
         tr{{break-inside:avoid}}.changed{{color:#b00020;font-weight:bold;text-decoration:underline}}</style></head><body>",
        esc(&chart.item_title),
    );
    let compared = match (note.submitted_number, note.submitted_on) {
        (Some(n), Some(on)) => format!(
            "提出済みの第{n}版({})との比較: {}",
            date_label_ja(on),
            if changes.is_empty() {
                "変更なし".to_owned()
            } else {
                format!("{}件の変更あり(再提出が必要です)", changes.len())
            }
        ),
        _ => "提出済みの版はありません。".to_owned(),
    };
    let _ = write!(
        out,
        "<section class=\"chart\"><h1>履行体制図</h1><p>委託事項: {} / 委託元: {} / {}現在</p><p>{}</p>{}</section>",
        esc(&chart.item_title),
        esc(&chart.municipality),
        esc(&date_label_ja(chart.as_of)),
        esc(&compared),
        to_svg(chart, changes, removed),
    );
    out.push_str("<section class=\"details\">");
    if !changes.is_empty() {
        out.push_str(
            "<h2>提出済みの版からの変更</h2><table><tr><th>区分</th><th>組織</th><th>項目</th><th>変更前</th><th>変更後</th></tr>",
        );
        for c in changes {
            let kind = match c.kind.as_str() {
                "added" => "追加",
                "removed" => "削除",
                _ => "変更",
            };
            if c.fields.is_empty() {
                let _ = write!(
                    out,
                    "<tr><td class=\"changed\">{kind}</td><td>{}</td><td>—</td><td>—</td><td>—</td></tr>",
                    esc(&c.organisation)
                );
            }
            for f in &c.fields {
                let _ = write!(
                    out,
                    "<tr><td class=\"changed\">{kind}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"changed\">{}</td></tr>",
                    esc(&c.organisation),
                    esc(&f.label_ja),
                    esc(&f.before),
                    esc(&f.after),
                );
            }
        }
        out.push_str("</table>");
    }
    out.push_str(
        "<h2>各階層の体制</h2><table><tr><th>階層</th><th>組織</th><th>責任者</th><th>管理者</th>\
         <th>従事者数</th><th>作業場所</th><th>監督者</th><th>監督の方法</th></tr>",
    );
    for n in &chart.nodes {
        let changed: BTreeSet<&str> = changes
            .iter()
            .find(|c| c.node_id == n.node_id)
            .map(|c| {
                if c.kind == "added" {
                    FIELDS.iter().map(|f| f.0).collect()
                } else {
                    c.fields.iter().map(|f| f.field.as_str()).collect()
                }
            })
            .unwrap_or_default();
        out.push_str("<tr>");
        let _ = write!(out, "<td>第{}階層</td>", n.tier);
        for (field, _, _) in FIELDS {
            let class = if changed.contains(field) {
                " class=\"changed\""
            } else {
                ""
            };
            let _ = write!(out, "<td{class}>{}</td>", esc(&field_value(n, field)));
        }
        out.push_str("</tr>");
    }
    out.push_str("</table></section></body></html>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str, parent: Option<&str>, tier: i32, org: &str) -> ChartNode {
        ChartNode {
            node_id: id.into(),
            parent_id: parent.map(str::to_owned),
            tier,
            organisation: org.into(),
            responsible_person: Some("業務責任者".into()),
            manager: Some("運用管理者".into()),
            staff_count: Some(15),
            work_location: Some("東京都千代田区".into()),
            supervised_by: "上位".into(),
            supervision: "月次報告".into(),
            state: "permitted".into(),
        }
    }

    fn chart(nodes: Vec<ChartNode>) -> Chart {
        Chart {
            item_title: "事務".into(),
            municipality: "目黒区".into(),
            as_of: NaiveDate::from_ymd_opt(2026, 11, 27).unwrap(),
            nodes,
        }
    }

    #[test]
    fn the_diff_marks_changed_fields_added_and_removed_nodes() {
        let before = chart(vec![
            node("a", None, 1, "国保連"),
            node("b", Some("a"), 2, "中央会"),
            node("c", Some("a"), 2, "旧業者"),
        ]);
        let mut a = node("a", None, 1, "国保連");
        a.staff_count = Some(20);
        a.manager = None;
        let after = chart(vec![
            a,
            node("b", Some("a"), 2, "中央会"),
            node("d", Some("b"), 3, "クラウド"),
        ]);
        let d = diff(&before, &after);
        let kinds: Vec<(&str, &str)> = d
            .iter()
            .map(|c| (c.node_id.as_str(), c.kind.as_str()))
            .collect();
        assert_eq!(kinds, [("a", "changed"), ("d", "added"), ("c", "removed")]);
        let fields: Vec<(&str, &str, &str)> = d[0]
            .fields
            .iter()
            .map(|f| (f.field.as_str(), f.before.as_str(), f.after.as_str()))
            .collect();
        assert_eq!(
            fields,
            [
                ("manager", "運用管理者", "(未登録)"),
                ("staff_count", "15人", "20人")
            ]
        );
        assert!(diff(&after, &after).is_empty());

        let removed = vec![before.nodes[2].clone()];
        let svg = to_svg(&after, &d, &removed);
        assert_eq!(svg.matches("chart-node chart-changed").count(), 1);
        assert_eq!(svg.matches("chart-node chart-added").count(), 1);
        assert_eq!(svg.matches("chart-node chart-removed").count(), 1);
        assert!(svg.contains("＊従事者数: 20人"));
        assert!(svg.contains("＊管理者: (未登録)"));
        assert!(!svg.contains("＊責任者"));
        assert_eq!(svg, to_svg(&after, &d, &removed), "reproducible");
    }

    #[test]
    fn everything_is_escaped_and_long_text_is_cut_only_in_the_box() {
        let mut n = node("a", None, 1, "<b>国保連</b>");
        n.work_location =
            Some("東京都千代田区霞が関一丁目二番三号 中央合同庁舎第五号館別館".into());
        let c = chart(vec![n]);
        let html = to_html(
            &c,
            &[],
            &[],
            &VersionNote {
                submitted_number: None,
                submitted_on: None,
            },
        );
        assert!(!html.contains("<b>"));
        assert!(html.contains("&lt;b&gt;国保連&lt;/b&gt;"));
        assert!(html.contains("霞が関一丁目二番三号 中央合同庁舎第五号館別館</td>"));
        assert!(html.contains('…'));
        assert!(html.contains("size:A4 landscape"));
    }
}
