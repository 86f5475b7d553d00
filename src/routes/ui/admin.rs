//! Administration, read only: the loaded workflow definitions with their versions, content
//! hashes, states, transitions and diagrams. Only holders of the `admin` role see it; anyone
//! else gets `404`, as from the admin API.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use super::view::{self, Lang, Page, UiLang};
use super::{html, Csrf, UiError, UiUser};
use crate::error::ErrorCode;
use crate::startup::AppState;

/// `GET /admin/workflows`.
pub async fn workflows(
    state: web::Data<AppState>,
    request: HttpRequest,
    user: UiUser,
) -> Result<HttpResponse, UiError> {
    let lang = Lang::of(&request);
    let fail = |e| UiError::api(e, lang);
    if !user.0.has_role("admin") {
        return Err(fail(ErrorCode::NotFound.into()));
    }
    let pick = |l: &crate::workflow::definition::Label| lang.pick(&l.ja, &l.en).to_owned();
    let mut definitions: Vec<Value> = state
        .workflows
        .iter()
        .map(|rt| {
            let d = rt.describe();
            let latest = state
                .workflows
                .latest(rt.id())
                .is_some_and(|l| l.version() == rt.version());
            json!({
                "anchor": format!("wf-{}-{}", d.id, d.version),
                "id": d.id,
                "version": d.version,
                "title": pick(&d.title),
                "latest": latest,
                "content_hash": d.content_hash,
                "create_roles": d.create_roles.iter().map(|r| lang.text(&format!("roles.{r}"), r)).collect::<Vec<_>>().join("、"),
                "states": d.states.iter().map(|s| json!({
                    "id": s.id,
                    "label": pick(&s.label),
                    "terminal": s.terminal,
                })).collect::<Vec<_>>(),
                "transitions": d.transitions.iter().map(|t| json!({
                    "event": t.event,
                    "label": pick(&t.label),
                    "from": t.from.join(", "),
                    "to": t.to,
                    "roles": t.roles.iter().map(|r| lang.text(&format!("roles.{r}"), r)).collect::<Vec<_>>().join("、"),
                    "guards": t.guards.join(", "),
                })).collect::<Vec<_>>(),
                "diagram_url": format!("/api/v1/workflows/{}/{}/diagram.svg?lang={}", d.id, d.version, lang.code()),
            })
        })
        .collect();
    definitions.sort_by(|a, b| {
        (a["id"].as_str(), b["version"].as_u64()).cmp(&(b["id"].as_str(), a["version"].as_u64()))
    });
    let csrf = Csrf::of(&request);
    let page = Page::for_user(&state, &user.0, lang, &csrf.token, "/admin/workflows")
        .await
        .map_err(fail)?;
    let data = page.data(
        &lang.text("admin_ui.workflows_title", ""),
        json!({ "definitions": definitions }),
    );
    let body = view::render("admin_workflows", &data).map_err(fail)?;
    Ok(csrf.apply(html(StatusCode::OK, body)))
}
