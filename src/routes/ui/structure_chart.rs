//! The implementation structure chart screen of an item (`/items/{id}/structure-chart`): the
//! chart as it stands with its differences from the last submitted version marked, the
//! versions, and for the municipality's writers the buttons to create a version and to mark
//! one submitted; and one version's view. The municipality's staff only (others `404`).

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};
use tracing_actix_web::RequestId;

use super::form::Values;
use super::items::{query_value, structure_chart_data};
use super::view::{self, Lang, Page, UiLang};
use super::{html, see_other, Csrf, UiError, UiUser};
use crate::error::{ApiError, ErrorCode};
use crate::routes::api::chains::viewer;
use crate::routes::api::structure_chart::actor;
use crate::services::{chains, structure_chart};
use crate::startup::AppState;

/// What just happened.
#[derive(Debug, Default, Deserialize)]
pub struct DoneQuery {
    pub done: Option<String>,
}

fn chart_href(item_id: &str) -> String {
    format!("/items/{}/structure-chart", query_value(item_id))
}

/// The page, with a notice (`done`) or a refusal (`error`).
async fn render_chart(
    state: &AppState,
    request: &HttpRequest,
    user: &UiUser,
    item_id: &str,
    done: Option<&str>,
    error: Option<String>,
    status: StatusCode,
) -> Result<HttpResponse, UiError> {
    let lang = Lang::of(request);
    let fail = |e| UiError::api(e, lang);
    let v = viewer(&user.0);
    let item = chains::get_item(&state.db, &v, item_id)
        .await
        .map_err(fail)?;
    // The chart is the municipality's document: a contractor of the chain sees the item, not it.
    if !v.is_municipal(&item.municipality_id) {
        return Err(UiError::not_found(lang));
    }
    let structure = structure_chart_data(state, user, lang, &item.id, &item.municipality_id)
        .await
        .map_err(fail)?;
    let done = done.and_then(|d| match d {
        "created" | "unchanged" | "submitted" => {
            Some(lang.text(&format!("items.structure_chart_done_{d}"), d))
        }
        _ => None,
    });
    let csrf = Csrf::of(request);
    let path = chart_href(&item.id);
    let page = Page::for_user(state, &user.0, lang, &csrf.token, &path)
        .await
        .map_err(fail)?;
    let data = page.data(
        &format!(
            "{} — {}",
            lang.text("items.structure_chart", ""),
            item.title
        ),
        json!({
            "item": { "title": item.title, "href": format!("/items/{}", query_value(&item.id)) },
            "structure": structure,
            "done": done,
            "error": error,
        }),
    );
    let body = view::render("structure_chart", &data).map_err(fail)?;
    Ok(csrf.apply(html(status, body)))
}

/// `GET /items/{id}/structure-chart`.
pub async fn chart(
    state: web::Data<AppState>,
    request: HttpRequest,
    user: UiUser,
    id: web::Path<String>,
    q: web::Query<DoneQuery>,
) -> Result<HttpResponse, UiError> {
    render_chart(
        &state,
        &request,
        &user,
        &id,
        q.done.as_deref(),
        None,
        StatusCode::OK,
    )
    .await
}

/// A refusal the page shows above the chart (a conflict: already submitted, or someone else
/// submitted first); anything else is an error page.
async fn refused(
    state: &AppState,
    request: &HttpRequest,
    user: &UiUser,
    item_id: &str,
    e: ApiError,
) -> Result<HttpResponse, UiError> {
    let lang = Lang::of(request);
    if !matches!(e.code(), ErrorCode::Conflict | ErrorCode::StaleVersion) {
        return Err(UiError::api(e, lang));
    }
    let spec = e.code().spec();
    let mut text = lang.pick(spec.ja, spec.en).to_owned();
    for f in super::form::field_errors_of(&e) {
        text.push(' ');
        text.push_str(lang.pick(&f.reason.ja, &f.reason.en));
    }
    render_chart(state, request, user, item_id, None, Some(text), spec.status).await
}

/// `POST /items/{id}/structure-chart/versions` (`csrf`): stores the chart as it stands as the
/// next version (nothing when the newest version shows the same structure).
pub async fn create_version(
    state: web::Data<AppState>,
    request: HttpRequest,
    request_id: RequestId,
    user: UiUser,
    id: web::Path<String>,
    form: web::Form<Vec<(String, String)>>,
) -> Result<HttpResponse, UiError> {
    let lang = Lang::of(&request);
    let values = Values::from_pairs(form.into_inner());
    Csrf::check(&request, Some(values.get("csrf")))?;
    let rid = request_id.to_string();
    let created = structure_chart::create_version(
        &state.db,
        &viewer(&user.0),
        &id,
        actor(&state, &user.0, &rid),
        state.clock.today_jst(),
    )
    .await;
    match created {
        Ok((_, true)) => Ok(see_other(&format!("{}?done=created", chart_href(&id)))),
        Ok((_, false)) => Ok(see_other(&format!("{}?done=unchanged", chart_href(&id)))),
        Err(e) if e.code() == ErrorCode::Forbidden => Err(UiError::api(e, lang)),
        Err(e) => refused(&state, &request, &user, &id, e).await,
    }
}

/// `POST /items/{id}/structure-chart/versions/{n}/submit` (`csrf`, `version`): marks the
/// version submitted, under the version of the row the page showed.
pub async fn submit_version(
    state: web::Data<AppState>,
    request: HttpRequest,
    request_id: RequestId,
    user: UiUser,
    path: web::Path<(String, i32)>,
    form: web::Form<Vec<(String, String)>>,
) -> Result<HttpResponse, UiError> {
    let values = Values::from_pairs(form.into_inner());
    Csrf::check(&request, Some(values.get("csrf")))?;
    let (id, number) = path.into_inner();
    let rid = request_id.to_string();
    let submitted = structure_chart::submit_version(
        &state.db,
        &viewer(&user.0),
        &id,
        number,
        values.get("version").trim().parse().ok(),
        actor(&state, &user.0, &rid),
    )
    .await;
    match submitted {
        Ok(_) => Ok(see_other(&format!("{}?done=submitted", chart_href(&id)))),
        Err(e) => refused(&state, &request, &user, &id, e).await,
    }
}

/// `GET /items/{id}/structure-chart/versions/{n}`: one version as stored, with its trail.
pub async fn version(
    state: web::Data<AppState>,
    request: HttpRequest,
    user: UiUser,
    path: web::Path<(String, i32)>,
) -> Result<HttpResponse, UiError> {
    let lang = Lang::of(&request);
    let fail = |e| UiError::api(e, lang);
    let (id, number) = path.into_inner();
    let v = viewer(&user.0);
    let found = structure_chart::get_version(&state.db, &v, &id, number)
        .await
        .map_err(fail)?;
    let item = chains::get_item(&state.db, &v, &id).await.map_err(fail)?;
    let s = &found.summary;
    let names = view::user_names(
        &state,
        [Some(s.created_by.clone()), s.submitted_by.clone()]
            .into_iter()
            .flatten()
            .chain(found.trail.iter().map(|t| t.actor_id.clone())),
    )
    .await
    .map_err(fail)?;
    let name = |id: &str| names.get(id).cloned().unwrap_or_else(|| id.to_owned());
    let base = chart_href(&id);
    let trail: Vec<Value> = found
        .trail
        .iter()
        .map(|t| {
            json!({
                "at": view::moment_label(lang, t.at),
                "by": name(&t.actor_id),
                "event": lang.text(&format!("items.structure_chart_event_{}", t.event), &t.event),
            })
        })
        .collect();
    let csrf = Csrf::of(&request);
    let path = format!("{base}/versions/{number}");
    let page = Page::for_user(&state, &user.0, lang, &csrf.token, &path)
        .await
        .map_err(fail)?;
    let title = lang
        .text("items.structure_chart_version_title", "")
        .replace("{n}", &number.to_string());
    let data = page.data(
        &format!("{title} — {}", item.title),
        json!({
            "item": { "title": item.title, "href": format!("/items/{}", query_value(&item.id)) },
            "heading": title,
            "chart_href": base,
            "svg": found.svg(),
            "as_of": view::day_label(lang, s.as_of),
            "created": format!("{} {}", view::moment_label(lang, s.created_at), name(&s.created_by)),
            "submitted": s.submitted_at.map(|at| format!(
                "{} {}",
                view::moment_label(lang, at),
                s.submitted_by.as_deref().map(name).unwrap_or_default()
            )),
            "sha256": s.svg_sha256,
            "print_href": format!("/api/v1/items/{}/structure-chart/versions/{number}?format=html", query_value(&id)),
            "submit_action": (s.submitted_at.is_none() && v.writes_for(&item.municipality_id))
                .then(|| format!("{base}/versions/{number}/submit")),
            "version": s.version,
            "trail": trail,
        }),
    );
    let body = view::render("structure_chart_version", &data).map_err(fail)?;
    Ok(csrf.apply(html(StatusCode::OK, body)))
}
