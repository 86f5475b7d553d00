//! The state machine of a definition as a server-side SVG, optionally with an instance's current
//! state highlighted. Plain SVG without script or external resources, so a page can inline it
//! and a browser can print it.
//!
//! The layout is a small layered drawing in the manner of Sugiyama: states in columns by the
//! longest path from the initial state, every transition routed through one reserved slot per
//! column it passes (so it never runs through a box), and its label in the slot of the column
//! next to the state it leaves, so that labels take space like boxes do and cannot overlap.
//! Everything is computed from the description alone, in declaration order: the same
//! definition always gives the same bytes.

use std::collections::VecDeque;
use std::fmt::{self, Write as _};

use super::definition::Label;
use super::describe::{Description, RouteInfo};
use super::model::StepKind;

/// The language of the text in a diagram.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Lang {
    /// Japanese, the language of the municipalities (the default).
    #[default]
    Ja,
    /// English.
    En,
}

impl Lang {
    /// The label in this language, falling back to the other one and then to `id`.
    fn text<'a>(self, label: &'a Label, id: &'a str) -> &'a str {
        let (first, second) = match self {
            Lang::Ja => (&label.ja, &label.en),
            Lang::En => (&label.en, &label.ja),
        };
        [first.as_str(), second.as_str(), id]
            .into_iter()
            .find(|s| !s.trim().is_empty())
            .unwrap_or(id)
    }
}

/// Written into a double-quoted attribute as it is: it has no `"`, `&` or `<`.
const FONT_FAMILY: &str = "'Noto Sans CJK JP','Hiragino Sans','Yu Gothic',sans-serif";
const TITLE_FONT: f64 = 16.0;
const STATE_FONT: f64 = 14.0;
const STEP_FONT: f64 = 11.5;
const EDGE_FONT: f64 = 12.0;

const MARGIN: f64 = 20.0;
/// Room left of the first column for the initial-state marker.
const START_ROOM: f64 = 36.0;
/// Where the drawing starts, below the heading.
const TOP: f64 = 56.0;
/// Horizontal room between columns, where edges bend.
const COL_GAP: f64 = 30.0;
const BOX_PAD_X: f64 = 16.0;
const MIN_BOX_W: f64 = 104.0;
const HEADER_H: f64 = 40.0;
const STEP_LINE_H: f64 = 16.0;
const STEPS_MAX_W: f64 = 230.0;
/// Edges attach to a box side no closer than this to its corners, and this far apart.
const PORT_PAD: f64 = 12.0;
const PORT_GAP: f64 = 14.0;
const LABEL_H: f64 = 20.0;
const LABEL_PAD_X: f64 = 6.0;
const LANE_H: f64 = 2.0;
const ARROW: f64 = 8.0;
/// Vertical space between two slots of one column, and around a box.
const SEP: f64 = 12.0;
const BOX_SEP: f64 = 24.0;
/// Rounds of the ordering and of the placement heuristics.
const ORDER_ROUNDS: usize = 24;
const PLACE_ROUNDS: usize = 24;

const INK: &str = "#1f1f1f";
const EDGE_INK: &str = "#4a4a4a";
const MUTED_INK: &str = "#555555";
const HIGHLIGHT: &str = "#0b57d0";
const HIGHLIGHT_FILL: &str = "#e8f0fe";

/// Draws the state machine of `d`, highlighting the state `current` if given.
pub fn render_svg(d: &Description, current: Option<&str>, lang: Lang) -> String {
    let layout = Layout::new(d, lang);
    // Writing into a String cannot fail; the Result only comes from the `fmt::Write` plumbing.
    draw(d, &layout, current, lang).unwrap_or_default()
}

/// XML-escapes text for element content and double-quoted attributes. Characters that XML 1.0
/// does not allow at all (most control characters) are dropped.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(' '),
            c if c < ' ' || c == '\u{fffe}' || c == '\u{ffff}' => {}
            c => out.push(c),
        }
    }
    out
}

/// A number for an attribute: one decimal at most, so the output is short and stable.
fn num(v: f64) -> String {
    let s = format!("{v:.1}");
    s.strip_suffix(".0")
        .map_or_else(|| s.clone(), str::to_owned)
}

/// An estimate of the width of `s` set in a proportional sans-serif font of `size` pixels; the
/// server has no font metrics, so this errs on the wide side.
fn text_width(s: &str, size: f64) -> f64 {
    let em: f64 = s
        .chars()
        .map(|c| match c {
            ' ' | 'i' | 'j' | 'l' | '.' | ',' | ':' | ';' | '\'' | '|' | '!' => 0.3,
            'f' | 't' | 'r' | '(' | ')' | '[' | ']' | '-' | '/' => 0.4,
            'm' | 'w' | 'M' | 'W' => 0.86,
            'A'..='Z' => 0.7,
            c if c.is_ascii() => 0.58,
            // CJK, kana, full-width forms and arrows are set a full em wide.
            c if u32::from(c) >= 0x2000 => 1.0,
            _ => 0.62,
        })
        .sum();
    em * size
}

/// What is written inside a state's box.
struct BoxText {
    label: String,
    /// The route's steps, wrapped into lines; empty for a plain state.
    steps: Vec<String>,
}

fn route_steps(route: &RouteInfo, lang: Lang) -> Vec<String> {
    if route.steps_from.is_some() && route.steps.is_empty() {
        return vec![match lang {
            Lang::Ja => "（各段は委託の連鎖から）".to_owned(),
            Lang::En => "(tiers from chain)".to_owned(),
        }];
    }
    let items: Vec<String> = route
        .steps
        .iter()
        .map(|s| {
            let label = lang.text(&s.label, &s.id);
            match (&s.kind, lang) {
                (StepKind::Single { .. }, _) => label.to_owned(),
                (StepKind::Parallel { reviewers, need }, Lang::Ja) => {
                    format!("{label}（合議 {need}/{}）", reviewers.len())
                }
                (StepKind::Parallel { reviewers, need }, Lang::En) => {
                    format!("{label} ({need} of {})", reviewers.len())
                }
            }
        })
        .collect();
    let mut lines = Vec::new();
    let mut line = String::new();
    for item in items {
        if line.is_empty() {
            line = item;
            continue;
        }
        let longer = format!("{line} → {item}");
        if text_width(&longer, STEP_FONT) <= STEPS_MAX_W {
            line = longer;
        } else {
            lines.push(line);
            line = format!("→ {item}");
        }
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

/// A slot in a column: a state's box, or the place where an edge crosses the column (with the
/// edge's label if it is `labelled`).
struct Node {
    rank: usize,
    state: Option<usize>,
    labelled: Option<usize>,
    w: f64,
    h: f64,
    /// Top edge, once placed.
    y: f64,
}

impl Node {
    fn center(&self) -> f64 {
        self.y + self.h / 2.0
    }
}

/// One drawn arrow: a transition from one source state.
struct Edge {
    label: String,
    /// Drawn right to left, to a state in an earlier column.
    back: bool,
    /// The slots it passes, left to right; the first and last are states.
    chain: Vec<usize>,
    /// Where it meets the boxes at its left and right ends.
    left_port: f64,
    right_port: f64,
}

struct Layout {
    nodes: Vec<Node>,
    edges: Vec<Edge>,
    texts: Vec<BoxText>,
    initial: usize,
    col_x: Vec<f64>,
    col_w: Vec<f64>,
    width: f64,
    height: f64,
}

/// The events that leave state `id` where it is, as lines for its box.
fn self_loops(d: &Description, id: &str, lang: Lang) -> Vec<String> {
    d.transitions
        .iter()
        .filter(|t| t.to == id && t.from.iter().any(|f| f == id))
        .map(|t| format!("↻ {}", lang.text(&t.label, &t.event)))
        .collect()
}

impl Layout {
    fn new(d: &Description, lang: Lang) -> Self {
        let n = d.states.len();
        let index = |id: &str| d.states.iter().position(|s| s.id == id);
        let initial = index(&d.initial).unwrap_or(0);
        // (from, to, label) per arrow; a self-loop (an event that keeps the state, such as a
        // draft's edit) is written inside its state's box instead, as "↻ label".
        let arrows: Vec<(usize, usize, String)> = d
            .transitions
            .iter()
            .flat_map(|t| {
                let to = index(&t.to);
                let label = lang.text(&t.label, &t.event).to_owned();
                t.from.iter().filter_map(move |f| {
                    let (f, to) = (index(f)?, to?);
                    (f != to).then(|| (f, to, label.clone()))
                })
            })
            .collect();
        let pairs: Vec<(usize, usize)> = arrows.iter().map(|&(f, t, _)| (f, t)).collect();
        let (layer, back) = layers(n, initial, &pairs);

        let texts: Vec<BoxText> = d
            .states
            .iter()
            .map(|s| BoxText {
                label: lang.text(&s.label, &s.id).to_owned(),
                steps: s
                    .route
                    .as_ref()
                    .and_then(|r| d.routes.iter().find(|ri| &ri.id == r))
                    .map(|r| route_steps(r, lang))
                    .unwrap_or_default()
                    .into_iter()
                    .chain(self_loops(d, &s.id, lang))
                    .collect(),
            })
            .collect();

        let mut nodes: Vec<Node> = texts
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let steps_w = t
                    .steps
                    .iter()
                    .map(|l| text_width(l, STEP_FONT))
                    .fold(0.0, f64::max);
                let label_w = text_width(&t.label, STATE_FONT) * 1.05;
                let steps_h = if t.steps.is_empty() {
                    0.0
                } else {
                    STEP_LINE_H * t.steps.len() as f64 + 10.0
                };
                Node {
                    rank: 2 * layer[i],
                    state: Some(i),
                    labelled: None,
                    w: (label_w.max(steps_w) + 2.0 * BOX_PAD_X).max(MIN_BOX_W),
                    h: HEADER_H + steps_h,
                    y: 0.0,
                }
            })
            .collect();

        // Each arrow passes every column between its ends through a slot of its own.
        let mut edges = Vec::new();
        for (e, ((from, to, label), &back)) in arrows.into_iter().zip(&back).enumerate() {
            let (left, right) = if back { (to, from) } else { (from, to) };
            let (first, last) = (nodes[left].rank, nodes[right].rank);
            let mut chain = vec![left];
            for rank in first + 1..last {
                // The label stands next to the state the transition leaves.
                let labelled = if back {
                    rank + 1 == last
                } else {
                    rank == first + 1
                };
                let (w, h) = if labelled {
                    (text_width(&label, EDGE_FONT) + 2.0 * LABEL_PAD_X, LABEL_H)
                } else {
                    (0.0, LANE_H)
                };
                chain.push(nodes.len());
                nodes.push(Node {
                    rank,
                    state: None,
                    labelled: labelled.then_some(e),
                    w,
                    h,
                    y: 0.0,
                });
            }
            chain.push(right);
            edges.push(Edge {
                label,
                back,
                chain,
                left_port: 0.0,
                right_port: 0.0,
            });
        }

        // A box is tall enough for the edges that meet each of its sides.
        let mut sides = vec![(0usize, 0usize); n];
        for e in &edges {
            if let (Some(&l), Some(&r)) = (e.chain.first(), e.chain.last()) {
                sides[l].1 += 1;
                sides[r].0 += 1;
            }
        }
        for (node, &(left, right)) in nodes.iter_mut().zip(&sides) {
            let ports = left.max(right).max(1) - 1;
            node.h = node.h.max(ports as f64 * PORT_GAP + 2.0 * PORT_PAD);
        }

        let ranks = nodes.iter().map(|v| v.rank).max().map_or(1, |r| r + 1);
        let (up, down) = neighbours(nodes.len(), &edges);
        let columns = order(&nodes, ranks, &up, &down);
        place(&mut nodes, &columns, &up, &down);

        let mut layout = Self {
            nodes,
            edges,
            texts,
            initial,
            col_x: Vec::new(),
            col_w: Vec::new(),
            width: 0.0,
            height: 0.0,
        };
        layout.assign_ports();
        layout.measure(ranks, d, lang);
        layout
    }

    /// Spreads the edges meeting a side of a box along it, ordered by where they come from, so
    /// that parallel edges stay apart and do not cross at the box.
    fn assign_ports(&mut self) {
        // (state, on its right side, neighbour's centre, edge) for every edge end: an edge's left end
        // meets the right side of its box.
        let mut ends: Vec<(usize, bool, f64, usize)> = Vec::new();
        for (e, edge) in self.edges.iter().enumerate() {
            let c = &edge.chain;
            if let (Some(&l), Some(&l1), Some(&r), Some(&r1)) = (
                c.first(),
                c.get(1),
                c.last(),
                c.len().checked_sub(2).and_then(|i| c.get(i)),
            ) {
                ends.push((l, true, self.nodes[l1].center(), e));
                ends.push((r, false, self.nodes[r1].center(), e));
            }
        }
        ends.sort_by(|a, b| {
            (a.0, a.1)
                .cmp(&(b.0, b.1))
                .then(a.2.total_cmp(&b.2))
                .then(a.3.cmp(&b.3))
        });
        for group in ends.chunk_by(|a, b| (a.0, a.1) == (b.0, b.1)) {
            let Some(&(state, _, _, _)) = group.first() else {
                continue;
            };
            let node = &self.nodes[state];
            let k = group.len() as f64;
            let gap = if k > 1.0 {
                ((node.h - 2.0 * PORT_PAD) / (k - 1.0)).min(PORT_GAP * 1.5)
            } else {
                0.0
            };
            let center = node.center();
            for (j, &(_, right_side, _, e)) in group.iter().enumerate() {
                let y = center + (j as f64 - (k - 1.0) / 2.0) * gap;
                let edge = &mut self.edges[e];
                if right_side {
                    edge.left_port = y;
                } else {
                    edge.right_port = y;
                }
            }
        }
    }

    /// Column positions and the size of the whole drawing.
    fn measure(&mut self, ranks: usize, d: &Description, lang: Lang) {
        self.col_w = vec![0.0; ranks];
        for v in &self.nodes {
            self.col_w[v.rank] = self.col_w[v.rank].max(v.w);
        }
        let mut x = MARGIN + START_ROOM;
        for w in &self.col_w {
            self.col_x.push(x);
            x += w + COL_GAP;
        }
        let heading_w = MARGIN * 2.0 + text_width(&heading(d, lang), TITLE_FONT);
        self.width = (x - COL_GAP + MARGIN).max(heading_w).ceil();
        self.height = (self.nodes.iter().map(|v| v.y + v.h).fold(TOP, f64::max) + MARGIN).ceil();
    }
}

/// Columns (layers) by the longest path from the initial state once the edges that close a
/// cycle (found depth-first from the initial state, in declaration order) are turned around;
/// returns the layer of every state and which arrows point back.
fn layers(n: usize, initial: usize, arrows: &[(usize, usize)]) -> (Vec<usize>, Vec<bool>) {
    let mut out = vec![Vec::new(); n];
    for (e, &(f, _)) in arrows.iter().enumerate() {
        out[f].push(e);
    }
    let mut back = vec![false; arrows.len()];
    // 0: not seen, 1: on the path being explored, 2: done.
    let mut mark = vec![0u8; n];
    for root in std::iter::once(initial).chain(0..n) {
        if mark.get(root) != Some(&0) {
            continue;
        }
        mark[root] = 1;
        let mut path = vec![(root, 0usize)];
        while let Some((v, next)) = path.last_mut() {
            let v = *v;
            match out[v].get(*next) {
                Some(&e) => {
                    *next += 1;
                    let w = arrows[e].1;
                    match mark[w] {
                        0 => {
                            mark[w] = 1;
                            path.push((w, 0));
                        }
                        1 => back[e] = true,
                        _ => {}
                    }
                }
                None => {
                    mark[v] = 2;
                    path.pop();
                }
            }
        }
    }
    let mut indegree = vec![0usize; n];
    for (e, &(_, t)) in arrows.iter().enumerate() {
        if !back[e] {
            indegree[t] += 1;
        }
    }
    let mut layer = vec![0usize; n];
    let mut ready: VecDeque<usize> = (0..n).filter(|&v| indegree[v] == 0).collect();
    while let Some(v) = ready.pop_front() {
        for &e in &out[v] {
            if back[e] {
                continue;
            }
            let t = arrows[e].1;
            layer[t] = layer[t].max(layer[v] + 1);
            indegree[t] -= 1;
            if indegree[t] == 0 {
                ready.push_back(t);
            }
        }
    }
    (layer, back)
}

/// The slots each slot is joined to in the column before (`up`) and after (`down`) it.
fn neighbours(n: usize, edges: &[Edge]) -> (Vec<Vec<usize>>, Vec<Vec<usize>>) {
    let mut up = vec![Vec::new(); n];
    let mut down = vec![Vec::new(); n];
    for e in edges {
        for pair in e.chain.windows(2) {
            if let [a, b] = *pair {
                down[a].push(b);
                up[b].push(a);
            }
        }
    }
    (up, down)
}

/// The order of the slots in every column, top to bottom: sweeps that sort each column by the
/// mean position of its neighbours, keeping the order with the fewest crossings.
fn order(nodes: &[Node], ranks: usize, up: &[Vec<usize>], down: &[Vec<usize>]) -> Vec<Vec<usize>> {
    let mut columns = vec![Vec::new(); ranks];
    for (i, v) in nodes.iter().enumerate() {
        columns[v.rank].push(i);
    }
    let mut pos = vec![0usize; nodes.len()];
    let index = |columns: &[Vec<usize>], pos: &mut [usize]| {
        for column in columns {
            for (p, &v) in column.iter().enumerate() {
                pos[v] = p;
            }
        }
    };
    index(&columns, &mut pos);
    let mut best = (crossings(&columns, &pos, down), columns.clone());
    for round in 0..ORDER_ROUNDS {
        let downward = round % 2 == 0;
        let sequence: Vec<usize> = if downward {
            (1..ranks).collect()
        } else {
            (0..ranks.saturating_sub(1)).rev().collect()
        };
        for r in sequence {
            let by = if downward { up } else { down };
            let mut keyed: Vec<(f64, usize)> = columns[r]
                .iter()
                .map(|&v| {
                    let ns = &by[v];
                    let key = if ns.is_empty() {
                        pos[v] as f64
                    } else {
                        ns.iter().map(|&w| pos[w] as f64).sum::<f64>() / ns.len() as f64
                    };
                    (key, v)
                })
                .collect();
            keyed.sort_by(|a, b| a.0.total_cmp(&b.0));
            columns[r] = keyed.into_iter().map(|(_, v)| v).collect();
            index(&columns, &mut pos);
        }
        let c = crossings(&columns, &pos, down);
        if c < best.0 {
            best = (c, columns.clone());
        }
    }
    best.1
}

fn crossings(columns: &[Vec<usize>], pos: &[usize], down: &[Vec<usize>]) -> usize {
    let mut total = 0;
    for column in columns {
        let segments: Vec<(usize, usize)> = column
            .iter()
            .flat_map(|&v| down[v].iter().map(move |&w| (pos[v], pos[w])))
            .collect();
        for (i, a) in segments.iter().enumerate() {
            for b in &segments[i + 1..] {
                if (a.0 < b.0 && a.1 > b.1) || (a.0 > b.0 && a.1 < b.1) {
                    total += 1;
                }
            }
        }
    }
    total
}

/// Vertical positions: each slot is pulled towards its neighbours' centres, in order and
/// apart, by sweeps across the columns; a last sweep looks both ways.
fn place(nodes: &mut [Node], columns: &[Vec<usize>], up: &[Vec<usize>], down: &[Vec<usize>]) {
    for column in columns {
        let mut y = 0.0;
        for &v in column {
            nodes[v].y = y;
            y += nodes[v].h + BOX_SEP;
        }
    }
    let ranks = columns.len();
    for round in 0..=PLACE_ROUNDS {
        let (sequence, both): (Vec<usize>, bool) = if round == PLACE_ROUNDS {
            ((0..ranks).collect(), true)
        } else if round % 2 == 0 {
            ((1..ranks).collect(), false)
        } else {
            ((0..ranks.saturating_sub(1)).rev().collect(), false)
        };
        for r in sequence {
            let column = &columns[r];
            let desired: Vec<f64> = column
                .iter()
                .map(|&v| {
                    let ns: Vec<usize> = if both {
                        up[v].iter().chain(&down[v]).copied().collect()
                    } else if round % 2 == 0 {
                        up[v].clone()
                    } else {
                        down[v].clone()
                    };
                    if ns.is_empty() {
                        nodes[v].center()
                    } else {
                        ns.iter().map(|&w| nodes[w].center()).sum::<f64>() / ns.len() as f64
                    }
                })
                .collect();
            let placed = in_order(nodes, column, &desired);
            for (&v, y) in column.iter().zip(placed) {
                nodes[v].y = y;
            }
        }
    }
    let top = nodes.iter().map(|v| v.y).fold(f64::INFINITY, f64::min);
    if top.is_finite() {
        for v in nodes.iter_mut() {
            v.y += TOP - top;
        }
    }
}

/// The tops closest (least squares) to the desired centres that keep the column's order and
/// spacing: pool-adjacent-violators on the positions less the space the slots above need.
fn in_order(nodes: &[Node], column: &[usize], desired: &[f64]) -> Vec<f64> {
    let mut offsets = Vec::with_capacity(column.len());
    let mut offset = 0.0;
    let mut previous: Option<&Node> = None;
    for &v in column {
        let node = &nodes[v];
        if let Some(p) = previous {
            let sep = if p.state.is_some() || node.state.is_some() {
                BOX_SEP
            } else {
                SEP
            };
            offset += p.h + sep;
        }
        offsets.push(offset);
        previous = Some(node);
    }
    // Blocks of (weight, weighted sum, length); boxes weigh less than edge slots, so that long
    // edges run straight and the boxes move instead.
    let mut blocks: Vec<(f64, f64, usize)> = Vec::new();
    for ((&v, &want), &off) in column.iter().zip(desired).zip(&offsets) {
        let w = if nodes[v].state.is_some() { 1.0 } else { 2.0 };
        let target = want - nodes[v].h / 2.0 - off;
        blocks.push((w, w * target, 1));
        while let [.., a, b] = *blocks.as_slice() {
            if a.1 / a.0 <= b.1 / b.0 {
                break;
            }
            let merged = (a.0 + b.0, a.1 + b.1, a.2 + b.2);
            blocks.truncate(blocks.len() - 2);
            blocks.push(merged);
        }
    }
    blocks
        .iter()
        .flat_map(|&(w, sum, len)| std::iter::repeat_n(sum / w, len))
        .zip(offsets)
        .map(|(z, off)| z + off)
        .collect()
}

fn heading(d: &Description, lang: Lang) -> String {
    format!("{} ({} v{})", lang.text(&d.title, &d.id), d.id, d.version)
}

fn draw(
    d: &Description,
    l: &Layout,
    current: Option<&str>,
    lang: Lang,
) -> Result<String, fmt::Error> {
    let mut s = String::new();
    let (w, h) = (num(l.width), num(l.height));
    writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" font-family="{FONT_FAMILY}">"#
    )?;
    writeln!(s, "<title>{}</title>", esc(&heading(d, lang)))?;
    let current_label = current
        .and_then(|c| d.states.iter().find(|st| st.id == c))
        .map(|st| lang.text(&st.label, &st.id));
    let summary = match (lang, current_label) {
        (Lang::Ja, Some(c)) => format!(
            "状態 {}、遷移 {}。現在の状態: {c}",
            d.states.len(),
            d.transitions.len()
        ),
        (Lang::Ja, None) => format!("状態 {}、遷移 {}。", d.states.len(), d.transitions.len()),
        (Lang::En, Some(c)) => format!(
            "{} states, {} transitions. Current state: {c}",
            d.states.len(),
            d.transitions.len()
        ),
        (Lang::En, None) => format!(
            "{} states, {} transitions.",
            d.states.len(),
            d.transitions.len()
        ),
    };
    writeln!(s, "<desc>{}</desc>", esc(&summary))?;
    writeln!(
        s,
        r#"<rect x="0" y="0" width="{w}" height="{h}" fill="white"/>"#
    )?;
    writeln!(
        s,
        r#"<text x="{}" y="{}" font-size="{}" font-weight="bold" fill="{INK}">{}</text>"#,
        num(MARGIN),
        num(MARGIN + TITLE_FONT),
        num(TITLE_FONT),
        esc(&heading(d, lang))
    )?;

    // Edges first, so boxes and labels are drawn over their ends.
    writeln!(
        s,
        r#"<g fill="none" stroke="{EDGE_INK}" stroke-width="1.4">"#
    )?;
    for e in &l.edges {
        write_edge(&mut s, l, e)?;
    }
    writeln!(s, "</g>")?;
    write_start_marker(&mut s, l)?;
    for (i, st) in d.states.iter().enumerate() {
        write_state(
            &mut s,
            l,
            i,
            st.terminal,
            current == Some(st.id.as_str()),
            &st.id,
        )?;
    }
    writeln!(
        s,
        r#"<g font-size="{}" fill="{INK}" text-anchor="middle">"#,
        num(EDGE_FONT)
    )?;
    for v in &l.nodes {
        let Some(e) = v.labelled.and_then(|e| l.edges.get(e)) else {
            continue;
        };
        let cx = l.col_x[v.rank] + l.col_w[v.rank] / 2.0;
        writeln!(
            s,
            r#"<rect x="{}" y="{}" width="{}" height="{}" rx="3" fill="white"/><text x="{}" y="{}">{}</text>"#,
            num(cx - v.w / 2.0),
            num(v.y),
            num(v.w),
            num(v.h),
            num(cx),
            num(v.center() + EDGE_FONT * 0.36),
            esc(&e.label)
        )?;
    }
    writeln!(s, "</g>")?;
    writeln!(s, "</svg>")?;
    Ok(s)
}

/// An edge as one path: curves between columns, straight runs through its slots.
fn write_edge(s: &mut String, l: &Layout, e: &Edge) -> fmt::Result {
    let right_of = |v: usize| l.col_x[l.nodes[v].rank] + l.col_w[l.nodes[v].rank];
    let left_of = |v: usize| l.col_x[l.nodes[v].rank];
    let (Some(&first), Some(&last)) = (e.chain.first(), e.chain.last()) else {
        return Ok(());
    };
    // The arrowhead sits at the target: the right end of a forward edge, the left of a back one.
    let start_x = right_of(first) + if e.back { ARROW } else { 0.0 };
    let end_x = left_of(last) - if e.back { 0.0 } else { ARROW };
    let mut points = vec![(start_x, e.left_port)];
    let through = e
        .chain
        .get(1..e.chain.len().saturating_sub(1))
        .unwrap_or_default();
    for &v in through {
        let y = l.nodes[v].center();
        points.push((left_of(v), y));
        points.push((right_of(v), y));
    }
    points.push((end_x, e.right_port));
    let mut d = format!("M{} {}", num(start_x), num(e.left_port));
    for (i, pair) in points.windows(2).enumerate() {
        let [(ax, ay), (bx, by)] = *pair else {
            continue;
        };
        if i % 2 == 1 {
            // Through a slot: straight.
            write!(d, " H{}", num(bx))?;
        } else {
            let mid = (bx - ax) / 2.0;
            write!(
                d,
                " C{} {} {} {} {} {}",
                num(ax + mid),
                num(ay),
                num(bx - mid),
                num(by),
                num(bx),
                num(by)
            )?;
        }
    }
    writeln!(s, r#"<path d="{d}"/>"#)?;
    let (tip, y, dir) = if e.back {
        (right_of(first), e.left_port, -1.0)
    } else {
        (left_of(last), e.right_port, 1.0)
    };
    writeln!(
        s,
        r#"<path d="M{} {} L{} {} L{} {} Z" fill="{EDGE_INK}" stroke="none"/>"#,
        num(tip),
        num(y),
        num(tip - dir * ARROW),
        num(y - ARROW / 2.0),
        num(tip - dir * ARROW),
        num(y + ARROW / 2.0)
    )
}

/// The filled circle with an arrow into the initial state.
fn write_start_marker(s: &mut String, l: &Layout) -> fmt::Result {
    let Some(v) = l.nodes.get(l.initial) else {
        return Ok(());
    };
    let x = l.col_x[v.rank];
    let y = v.center();
    writeln!(
        s,
        r#"<g fill="{INK}" stroke="{INK}"><circle cx="{}" cy="{}" r="6"/><path d="M{} {} H{}" stroke-width="1.4"/><path d="M{} {} L{} {} L{} {} Z" stroke="none"/></g>"#,
        num(x - START_ROOM + 8.0),
        num(y),
        num(x - START_ROOM + 14.0),
        num(y),
        num(x - ARROW),
        num(x),
        num(y),
        num(x - ARROW),
        num(y - ARROW / 2.0),
        num(x - ARROW),
        num(y + ARROW / 2.0)
    )
}

fn write_state(
    s: &mut String,
    l: &Layout,
    i: usize,
    terminal: bool,
    current: bool,
    id: &str,
) -> fmt::Result {
    let (Some(v), Some(text)) = (l.nodes.get(i), l.texts.get(i)) else {
        return Ok(());
    };
    let (x, w) = (l.col_x[v.rank], l.col_w[v.rank]);
    let (stroke, fill, width) = if current {
        (HIGHLIGHT, HIGHLIGHT_FILL, "3")
    } else {
        (INK, "#ffffff", "1.5")
    };
    let marker = if current {
        r#" aria-current="step""#
    } else {
        ""
    };
    writeln!(s, r#"<g data-state="{}"{marker}>"#, esc(id))?;
    writeln!(
        s,
        r#"<rect x="{}" y="{}" width="{}" height="{}" rx="8" fill="{fill}" stroke="{stroke}" stroke-width="{width}"/>"#,
        num(x),
        num(v.y),
        num(w),
        num(v.h)
    )?;
    if terminal {
        writeln!(
            s,
            r#"<rect x="{}" y="{}" width="{}" height="{}" rx="5" fill="none" stroke="{stroke}" stroke-width="1.2"/>"#,
            num(x + 4.0),
            num(v.y + 4.0),
            num(w - 8.0),
            num(v.h - 8.0)
        )?;
    }
    // The label and the steps are centred as a block in the box, which may be taller than its
    // text to give its edges room.
    let steps_h = if text.steps.is_empty() {
        0.0
    } else {
        STEP_LINE_H * text.steps.len() as f64 + 10.0
    };
    let top = v.center() - (HEADER_H + steps_h) / 2.0;
    let cx = x + w / 2.0;
    writeln!(
        s,
        r#"<text x="{}" y="{}" font-size="{}" font-weight="bold" text-anchor="middle" fill="{INK}">{}</text>"#,
        num(cx),
        num(top + HEADER_H / 2.0 + STATE_FONT * 0.36),
        num(STATE_FONT),
        esc(&text.label)
    )?;
    if !text.steps.is_empty() {
        writeln!(
            s,
            r#"<path d="M{} {} H{}" stroke="{MUTED_INK}" stroke-width="0.8" stroke-dasharray="3 2"/>"#,
            num(x + 10.0),
            num(top + HEADER_H - 4.0),
            num(x + w - 10.0)
        )?;
        for (j, line) in text.steps.iter().enumerate() {
            writeln!(
                s,
                r#"<text x="{}" y="{}" font-size="{}" text-anchor="middle" fill="{MUTED_INK}">{}</text>"#,
                num(cx),
                num(top + HEADER_H + 6.0 + STEP_LINE_H * (j as f64 + 0.5) + STEP_FONT * 0.36),
                num(STEP_FONT),
                esc(line)
            )?;
        }
    }
    writeln!(s, "</g>")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workflow::validation_tests::{edit, minimal, with_transition};
    use crate::workflow::Kinds;

    const SUBCONTRACT: &str = include_str!("../../workflows/subcontract_permission.toml");

    fn describe(source: &str) -> Result<Description, String> {
        Kinds::product()
            .compile("test.toml", source)
            .map(|rt| rt.describe())
            .map_err(|e| format!("{e:?}"))
    }

    /// Checks by hand what an XML parser would: tags nest and close, attribute quotes pair up,
    /// and every `&` starts an entity (so no `<` or `&` of the data got through unescaped).
    fn assert_well_formed(svg: &str) {
        fn entities_ok(text: &str) -> bool {
            text.match_indices('&').all(|(i, _)| {
                let rest = &text[i..];
                ["&amp;", "&lt;", "&gt;", "&quot;", "&apos;"]
                    .iter()
                    .any(|e| rest.starts_with(e))
            })
        }
        let mut open: Vec<&str> = Vec::new();
        let mut roots = 0;
        let mut rest = svg;
        while let Some(start) = rest.find('<') {
            assert!(
                entities_ok(&rest[..start]),
                "bad entity in {:?}",
                &rest[..start]
            );
            let end = rest[start..].find('>').map(|e| e + start);
            assert!(end.is_some(), "unclosed tag at {:?}", &rest[start..]);
            let end = end.unwrap_or_default();
            let tag = &rest[start + 1..end];
            assert!(entities_ok(tag), "bad entity in <{tag}>");
            assert_eq!(tag.matches('"').count() % 2, 0, "unpaired quote in <{tag}>");
            if let Some(name) = tag.strip_prefix('/') {
                assert_eq!(open.pop(), Some(name), "mismatched </{name}>");
            } else {
                let name = tag.split_whitespace().next().unwrap_or_default();
                assert!(
                    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric()),
                    "bad tag <{tag}>"
                );
                if open.is_empty() {
                    roots += 1;
                    assert_eq!(name, "svg");
                }
                if !tag.ends_with('/') {
                    open.push(name);
                }
            }
            rest = &rest[end + 1..];
        }
        assert!(entities_ok(rest));
        assert!(rest.trim().is_empty(), "text after the root: {rest:?}");
        assert!(open.is_empty(), "unclosed: {open:?}");
        assert_eq!(roots, 1);
    }

    /// Every state and transition label of `d` is drawn in `lang`, and no state label in the
    /// other language.
    fn assert_labels_in(svg: &str, d: &Description, lang: Lang) {
        let other = match lang {
            Lang::Ja => Lang::En,
            Lang::En => Lang::Ja,
        };
        let drawn = |text: &str| svg.contains(&format!(">{}</text>", esc(text)));
        for st in &d.states {
            assert!(drawn(lang.text(&st.label, "")), "{}", st.id);
            assert!(!drawn(other.text(&st.label, "")), "{}", st.id);
        }
        for t in &d.transitions {
            let label = lang.text(&t.label, "");
            let self_loop = t.from.iter().all(|f| f == &t.to);
            let text = if self_loop {
                format!("↻ {label}")
            } else {
                label.to_owned()
            };
            assert!(drawn(&text), "{}", t.event);
        }
    }

    #[test]
    fn the_subcontract_diagram_shows_every_state_in_japanese_by_default() -> Result<(), String> {
        let d = describe(SUBCONTRACT)?;
        let svg = render_svg(&d, None, Lang::default());
        assert_well_formed(&svg);
        assert_labels_in(&svg, &d, Lang::Ja);
        assert!(svg.contains(">担当者審査 → 係長決裁 → 課長決裁</text>"));
        assert!(svg.contains("<title>再委託許諾 (subcontract_permission v1)</title>"));
        assert!(svg.contains(r#"role="img""#));
        assert!(svg.contains(
            r#"font-family="'Noto Sans CJK JP','Hiragino Sans','Yu Gothic',sans-serif""#
        ));
        Ok(())
    }

    #[test]
    fn the_subcontract_diagram_shows_every_state_in_english_when_asked() -> Result<(), String> {
        let d = describe(SUBCONTRACT)?;
        let svg = render_svg(&d, None, Lang::En);
        assert_well_formed(&svg);
        assert_labels_in(&svg, &d, Lang::En);
        assert!(svg.contains(">Officer check → Chief → Manager</text>"));
        assert!(svg.contains(">(tiers from chain)</text>"));
        assert!(svg.contains("<title>Subcontract permission (subcontract_permission v1)</title>"));
        Ok(())
    }

    #[test]
    fn the_current_state_is_highlighted_exactly_once() -> Result<(), String> {
        let d = describe(SUBCONTRACT)?;
        let svg = render_svg(&d, Some("decision"), Lang::Ja);
        assert_well_formed(&svg);
        assert_eq!(svg.matches(r#"aria-current="step""#).count(), 1);
        assert_eq!(
            svg.matches(r#"<g data-state="decision" aria-current="step">"#)
                .count(),
            1
        );
        assert_eq!(svg.matches(HIGHLIGHT).count(), 1);
        assert_eq!(svg.matches(HIGHLIGHT_FILL).count(), 1);
        assert!(svg.contains("現在の状態: 審査・決裁中"));
        for current in [None, Some("nowhere")] {
            let svg = render_svg(&d, current, Lang::Ja);
            assert!(!svg.contains("aria-current"));
            assert!(!svg.contains(HIGHLIGHT));
        }
        Ok(())
    }

    #[test]
    fn a_current_terminal_state_keeps_its_double_border() -> Result<(), String> {
        let d = describe(SUBCONTRACT)?;
        let svg = render_svg(&d, Some("revoked"), Lang::Ja);
        assert_eq!(svg.matches(r#"aria-current="step""#).count(), 1);
        let group = svg
            .split(r#"<g data-state="revoked" aria-current="step">"#)
            .nth(1)
            .and_then(|rest| rest.split("</g>").next())
            .unwrap_or_default();
        assert_eq!(group.matches("<rect").count(), 2);
        Ok(())
    }

    #[test]
    fn every_text_is_escaped() -> Result<(), String> {
        let evil = r#"<script>alert(\"x\")</script> & 'q' \u0007"#;
        let source = edit(
            &minimal(),
            &[("最小の手続", evil), ("下書き", evil), ("完了する", evil)],
        );
        let svg = render_svg(&describe(&source)?, Some("draft"), Lang::Ja);
        assert_well_formed(&svg);
        assert!(!svg.contains("<script"));
        assert!(!svg.contains('\u{7}'));
        let escaped = "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &apos;q&apos;";
        // In the title, the description, the heading, the box and the edge label.
        assert_eq!(svg.matches(escaped).count(), 5, "{svg}");
        assert_eq!(esc("a<b>&\"'\u{0}c\nd"), "a&lt;b&gt;&amp;&quot;&apos;c d");
        Ok(())
    }

    #[test]
    fn the_same_definition_always_gives_the_same_bytes() -> Result<(), String> {
        let (a, b) = (describe(SUBCONTRACT)?, describe(SUBCONTRACT)?);
        for lang in [Lang::Ja, Lang::En] {
            let first = render_svg(&a, Some("permitted"), lang);
            assert_eq!(first, render_svg(&a, Some("permitted"), lang));
            assert_eq!(first, render_svg(&b, Some("permitted"), lang));
        }
        Ok(())
    }

    /// Slots of one column, top to bottom, as (top, bottom).
    fn spans(l: &Layout) -> Vec<Vec<(f64, f64)>> {
        let mut columns = vec![Vec::new(); l.col_w.len()];
        for v in &l.nodes {
            columns[v.rank].push((v.y, v.y + v.h));
        }
        for c in &mut columns {
            c.sort_by(|a, b| a.0.total_cmp(&b.0));
        }
        columns
    }

    #[test]
    fn boxes_and_labels_never_overlap_and_stay_inside_the_drawing() -> Result<(), String> {
        let d = describe(SUBCONTRACT)?;
        let l = Layout::new(&d, Lang::Ja);
        for column in spans(&l) {
            for pair in column.windows(2) {
                assert!(pair[0].1 + SEP - 0.01 <= pair[1].0, "{pair:?}");
            }
            for &(top, bottom) in &column {
                assert!(top >= TOP - 0.01 && bottom <= l.height - MARGIN + 0.01);
            }
        }
        for v in &l.nodes {
            assert!(v.w <= l.col_w[v.rank]);
        }
        assert!(l
            .col_x
            .last()
            .zip(l.col_w.last())
            .is_some_and(|(x, w)| x + w < l.width));
        Ok(())
    }

    #[test]
    fn states_are_in_columns_by_the_longest_path_and_returns_point_back() -> Result<(), String> {
        let d = describe(SUBCONTRACT)?;
        let l = Layout::new(&d, Lang::En);
        let column = |id: &str| {
            d.states
                .iter()
                .position(|s| s.id == id)
                .map(|i| l.nodes[i].rank / 2)
        };
        let columns: Vec<_> = [
            "draft",
            "endorsement",
            "decision",
            "permitted",
            "suspended",
            "revoked",
        ]
        .into_iter()
        .map(column)
        .collect();
        assert_eq!(columns, [0, 1, 2, 3, 4, 5].map(Some));
        let back: Vec<&str> = l
            .edges
            .iter()
            .filter(|e| e.back)
            .map(|e| e.label.as_str())
            .collect();
        assert_eq!(back, ["Return", "Return", "Reinstate"]);
        Ok(())
    }

    #[test]
    fn parallel_edges_between_two_states_get_their_own_labels_and_ports() -> Result<(), String> {
        let source = with_transition(&minimal(), "close", "draft", "done", "");
        let l = Layout::new(&describe(&source)?, Lang::En);
        let labels: Vec<&Node> = l.nodes.iter().filter(|v| v.labelled.is_some()).collect();
        assert_eq!(labels.len(), 2);
        assert!(
            labels[0].y + labels[0].h <= labels[1].y || labels[1].y + labels[1].h <= labels[0].y
        );
        assert!((l.edges[0].left_port - l.edges[1].left_port).abs() >= PORT_GAP - 0.01);
        assert!((l.edges[0].right_port - l.edges[1].right_port).abs() >= PORT_GAP - 0.01);
        Ok(())
    }

    #[test]
    fn numbers_are_short_and_stable() {
        assert_eq!(num(12.0), "12");
        assert_eq!(num(12.04), "12");
        assert_eq!(num(12.25), "12.2");
        assert_eq!(num(-0.5), "-0.5");
    }
}
