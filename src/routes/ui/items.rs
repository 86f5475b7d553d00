//! Consignment items and the chain view (the tree drawn as server-side SVG).

use std::fmt::Write as _;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use super::view::{self, escape, Lang, Page, UiLang};
use super::{html, Csrf, UiError, UiUser};
use crate::routes::api::chains::viewer;
use crate::services::chains::{self, NodeView, Page as ListPage};
use crate::services::structure_chart;
use crate::startup::AppState;

/// `GET /items`: the items the user may see.
pub async fn list(
    state: web::Data<AppState>,
    request: HttpRequest,
    user: UiUser,
) -> Result<HttpResponse, UiError> {
    let lang = Lang::of(&request);
    let fail = |e| UiError::api(e, lang);
    let items = chains::list_items(
        &state.db,
        &viewer(&user.0),
        ListPage {
            page: Some(1),
            per_page: Some(200),
        },
    )
    .await
    .map_err(fail)?;
    let names = chains::names(
        &state.db,
        items.items.iter().map(|i| i.municipality_id.clone()),
    )
    .await
    .map_err(fail)?;
    let rows: Vec<Value> = items
        .items
        .iter()
        .map(|i| {
            json!({
                "id": i.id,
                "title": i.title,
                "municipality": names.get(&i.municipality_id).cloned().unwrap_or_default(),
                "section": i.owning_section.clone().unwrap_or_default(),
                "period": format!("{} — {}", view::day_label(lang, i.period_start), view::day_label(lang, i.period_end)),
            })
        })
        .collect();
    let csrf = Csrf::of(&request);
    let page = Page::for_user(&state, &user.0, lang, &csrf.token, "/items")
        .await
        .map_err(fail)?;
    let data = page.data(&lang.text("items.title", ""), json!({ "items": rows }));
    let body = view::render("items", &data).map_err(fail)?;
    Ok(csrf.apply(html(StatusCode::OK, body)))
}

/// The colour class of a permission state.
pub(super) fn state_code(permission_state: &str) -> &'static str {
    match permission_state {
        "permitted" => "permitted",
        "applying" => "pending",
        "suspended" => "suspended",
        "revoked" => "revoked",
        "terminated" => "terminated",
        "rejected" => "rejected",
        _ => "other",
    }
}

/// `GET /items/{id}`: the chain of an item, cut to what the user may see.
pub async fn chain(
    state: web::Data<AppState>,
    request: HttpRequest,
    user: UiUser,
    id: web::Path<String>,
) -> Result<HttpResponse, UiError> {
    let lang = Lang::of(&request);
    let fail = |e| UiError::api(e, lang);
    let tree = chains::item_tree(&state.db, &viewer(&user.0), &id)
        .await
        .map_err(fail)?;
    let mut flat = Vec::new();
    flatten(&tree.nodes, &mut flat);
    // The documents are the municipality's own: links for its staff only.
    let municipal = viewer(&user.0).is_municipal(&tree.item.municipality_id);
    let nodes: Vec<Value> = flat
        .iter()
        .map(|n| {
            let code = state_code(&n.permission_state);
            json!({
                "tier": n.tier,
                "organisation": n.contractor_name,
                "code": code,
                "state": lang.text(&format!("node_state.{code}"), &n.permission_state),
                "committee": municipal.then(|| format!("/api/v1/documents/committee?node={}&format=html", n.id)),
            })
        })
        .collect();
    let legend: Vec<Value> = ["root", "permitted", "pending", "suspended", "terminated"]
        .iter()
        .map(|c| json!({ "code": c, "label": lang.text(&format!("node_state.{c}"), c) }))
        .collect();
    let svg = chain_svg(lang, &tree.municipality_name, &tree.nodes);
    let item = &tree.item;
    let structure = structure_chart_data(&state, &user, lang, &item.id, &item.municipality_id)
        .await
        .map_err(fail)?;
    let csrf = Csrf::of(&request);
    let path = format!("/items/{}", item.id);
    let page = Page::for_user(&state, &user.0, lang, &csrf.token, &path)
        .await
        .map_err(fail)?;
    let data = page.data(
        &item.title,
        json!({
            "item": {
                "title": item.title,
                "municipality": tree.municipality_name,
                "section": item.owning_section.clone().unwrap_or_default(),
                "period": format!("{} — {}", view::day_label(lang, item.period_start), view::day_label(lang, item.period_end)),
            },
            "changes": municipal.then(|| json!({
                "href": changes_href(&item.municipality_id, &item.pia_file, &item.id),
                "label": lang.text("items.changes", "").replace("{file}", &item.pia_file),
            })),
            "chain_svg": svg,
            "structure": structure,
            "legend": legend,
            "nodes": nodes,
        }),
    );
    let body = view::render("item", &data).map_err(fail)?;
    Ok(csrf.apply(html(StatusCode::OK, body)))
}

/// The change history print view of the item's PIA file, this item's rows only.
fn changes_href(municipality: &str, pia_file: &str, item: &str) -> String {
    format!(
        "/api/v1/documents/changes?municipality={}&pia_file={}&item={}&format=html",
        query_value(municipality),
        query_value(pia_file),
        query_value(item)
    )
}

/// A query value percent-encoded byte by byte (RFC 3986: only unreserved characters as they
/// are).
pub(super) fn query_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// The structure chart section of the item page: for the municipality's staff only (the chart
/// is its document), with the differences from the last submitted version and the versions.
pub(super) async fn structure_chart_data(
    state: &AppState,
    user: &UiUser,
    lang: Lang,
    item_id: &str,
    municipality_id: &str,
) -> Result<Value, crate::error::ApiError> {
    let v = viewer(&user.0);
    if !v.is_municipal(municipality_id) {
        return Ok(Value::Null);
    }
    let today = state.clock.today_jst();
    let view = structure_chart::current(&state.db, &v, item_id, today).await?;
    let versions = structure_chart::list_versions(&state.db, &v, item_id).await?;
    let status = match (&view.last_submitted, view.resubmission_required) {
        (None, _) => lang.text("items.structure_chart_never", ""),
        (Some(_), true) => lang.text("items.structure_chart_resubmit", ""),
        (Some(_), false) => lang.text("items.structure_chart_unchanged", ""),
    };
    let kind = |k: &str| match (lang, k) {
        (Lang::Ja, "added") => "追加",
        (Lang::Ja, "removed") => "削除",
        (Lang::Ja, _) => "変更",
        (Lang::En, "added") => "added",
        (Lang::En, "removed") => "removed",
        (Lang::En, _) => "changed",
    };
    let changes: Vec<Value> = view
        .changes
        .iter()
        .map(|c| {
            let fields: Vec<String> = c
                .fields
                .iter()
                .map(|f| {
                    format!(
                        "{}: {} → {}",
                        lang.pick(&f.label_ja, &f.label_en),
                        f.before,
                        f.after
                    )
                })
                .collect();
            json!({ "kind": kind(&c.kind), "organisation": c.organisation, "fields": fields })
        })
        .collect();
    let base = format!("/items/{}/structure-chart", query_value(item_id));
    let versions: Vec<Value> = versions
        .iter()
        .map(|v| {
            json!({
                "number": v.number,
                "href": format!("{base}/versions/{}", v.number),
                "created": view::moment_label(lang, v.created_at),
                "submitted": v.submitted_at.map(|at| view::moment_label(lang, at))
                    .unwrap_or_else(|| lang.text("items.structure_chart_not_submitted", "")),
                "submit_action": v.submitted_at.is_none()
                    .then(|| format!("{base}/versions/{}/submit", v.number)),
                "version": v.version,
            })
        })
        .collect();
    Ok(json!({
        "svg": view.svg(),
        "status": status,
        "resubmit": view.resubmission_required,
        "changes": changes,
        "versions": versions,
        "print_href": format!("/api/v1/items/{}/structure-chart?format=html", query_value(item_id)),
        "manage_href": base,
        "create_action": format!("{base}/versions"),
        "may_write": v.writes_for(municipality_id),
    }))
}

fn flatten<'a>(nodes: &'a [NodeView], out: &mut Vec<&'a NodeView>) {
    for n in nodes {
        out.push(n);
        flatten(&n.children, out);
    }
}

const BOX_W: usize = 260;
const BOX_H: usize = 48;
const ROW_H: usize = 72;
const INDENT: usize = 40;

/// The tree as SVG: the municipality on top, each node indented under its parent, coloured
/// by its permission state through CSS classes (no inline styles). Every text is escaped.
pub fn chain_svg(lang: Lang, municipality: &str, roots: &[NodeView]) -> String {
    let mut rows: Vec<(usize, usize, String, &'static str, String)> = Vec::new();
    rows.push((
        0,
        usize::MAX,
        municipality.to_owned(),
        "root",
        lang.text("node_state.root", ""),
    ));
    fn walk(
        lang: Lang,
        nodes: &[NodeView],
        depth: usize,
        parent_row: usize,
        rows: &mut Vec<(usize, usize, String, &'static str, String)>,
    ) {
        for n in nodes {
            let code = state_code(&n.permission_state);
            rows.push((
                depth,
                parent_row,
                n.contractor_name.clone(),
                code,
                lang.text(&format!("node_state.{code}"), &n.permission_state),
            ));
            let me = rows.len() - 1;
            walk(lang, &n.children, depth + 1, me, rows);
        }
    }
    walk(lang, roots, 1, 0, &mut rows);
    let depth = rows.iter().map(|r| r.0).max().unwrap_or(0);
    let width = depth * INDENT + BOX_W + 20;
    let height = rows.len() * ROW_H + 10;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-labelledby="chain-svg-title" viewBox="0 0 {width} {height}" width="{width}" height="{height}"><title id="chain-svg-title">{}</title>"#,
        escape(&lang.text("items.chain_alt", ""))
    );
    for (i, (depth, parent, _, _, _)) in rows.iter().enumerate() {
        if *parent == usize::MAX {
            continue;
        }
        let (px, py) = (
            10 + rows[*parent].0 * INDENT + 16,
            10 + *parent * ROW_H + BOX_H,
        );
        let (x, y) = (10 + depth * INDENT, 10 + i * ROW_H + BOX_H / 2);
        let _ = write!(
            svg,
            r#"<line x1="{px}" y1="{py}" x2="{px}" y2="{y}"/><line x1="{px}" y1="{y}" x2="{x}" y2="{y}"/>"#
        );
    }
    for (i, (depth, _, name, code, label)) in rows.iter().enumerate() {
        let (x, y) = (10 + depth * INDENT, 10 + i * ROW_H);
        let _ = write!(
            svg,
            r#"<g class="chain-node"><rect class="node-{code}" x="{x}" y="{y}" width="{BOX_W}" height="{BOX_H}" rx="4"/><text x="{}" y="{}">{}</text><text x="{}" y="{}">{}</text></g>"#,
            x + 8,
            y + 19,
            escape(name),
            x + 8,
            y + 39,
            escape(label),
        );
    }
    svg.push_str("</svg>");
    svg
}
