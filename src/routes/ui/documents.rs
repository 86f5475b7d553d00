//! The documents screen (`/documents`): for a municipality's staff, its PIA files and
//! consignment items with links to every document generated from them (the print views and
//! downloads of the API), the subcontracts a significant change blocks until an assessment is
//! recorded, the form to record one, and the assessments recorded, each withdrawable with a
//! reason. Auditors read it; contractors and other municipalities get `404`.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};
use tracing_actix_web::RequestId;

use super::form::{self, Errors, Field, Input, Reader, Section, Values};
use super::items::{query_value, state_code};
use super::view::{self, Lang, UiLang};
use super::{see_other, user_page, Csrf, UiError, UiUser};
use crate::error::{ApiError, ErrorCode, FieldError};
use crate::routes::api::chains::viewer;
use crate::routes::api::instances::acting;
use crate::services::access::Viewer;
use crate::services::document_index::{self, DocumentIndex, IndexAssessment};
use crate::services::documents::{self, AssessmentInput, WithdrawalInput};
use crate::startup::AppState;

/// Which municipality, and what just happened.
#[derive(Debug, Default, Deserialize)]
pub struct IndexQuery {
    pub municipality: Option<String>,
    pub done: Option<String>,
}

/// What a refused form leaves to show again: the values and errors of the assessment form, or
/// the reason and errors of one assessment's withdrawal.
#[derive(Default)]
struct Outcome {
    record: Values,
    record_errors: Errors,
    withdrawal: Option<(String, Values, Errors)>,
}

/// The municipality the page is about: the one asked for, else the user's first; `404` when
/// the user acts for none (a contractor) or not for the one asked.
fn municipality_of(v: &Viewer, asked: Option<&str>, lang: Lang) -> Result<String, UiError> {
    match asked {
        Some(m) if v.is_municipal(m) => Ok(m.to_owned()),
        Some(_) => Err(UiError::not_found(lang)),
        None => v
            .municipal
            .iter()
            .next()
            .cloned()
            .ok_or_else(|| UiError::not_found(lang)),
    }
}

fn documents_href(municipality: &str) -> String {
    format!("/documents?municipality={}", query_value(municipality))
}

/// A link of the API's documents of one PIA file in `format`.
fn file_link(kind: &str, municipality: &str, pia_file: &str, format: &str) -> String {
    format!(
        "/api/v1/documents/{kind}?municipality={}&pia_file={}&format={format}",
        query_value(municipality),
        query_value(pia_file)
    )
}

/// The documents of one PIA file, each as `{id, href, label}`.
fn file_links(lang: Lang, municipality: &str, pia_file: &str, ix: usize) -> Vec<Value> {
    [
        ("pia", "html", "pia_html"),
        ("pia", "xlsx", "pia_xlsx"),
        ("pia", "csv", "pia_csv"),
        ("threshold", "html", "threshold"),
        ("changes", "html", "changes_html"),
        ("changes", "csv", "changes_csv"),
    ]
    .into_iter()
    .map(|(kind, format, key)| {
        json!({
            "id": format!("{kind}-{format}-{ix}"),
            "href": file_link(kind, municipality, pia_file, format),
            "label": lang.text(&format!("documents_ui.{key}"), key),
        })
    })
    .collect()
}

fn record_fields(lang: Lang, index: &DocumentIndex) -> Vec<Field> {
    let t = |k: &str| lang.text(&format!("documents_ui.{k}"), k);
    let mut options = vec![(String::new(), lang.text("form.choose", ""))];
    options.extend(index.awaiting.iter().map(|a| {
        (
            a.node_id.clone(),
            format!("{} — {} ({})", a.item_title, a.contractor, a.pia_file),
        )
    }));
    vec![
        Field::new("node_id", t("node"), Input::Select(options)).required(),
        Field::new("assessed_on", t("assessed_on"), Input::Date).required(),
        Field::new("summary", t("summary"), Input::Area)
            .required()
            .hint(t("summary_hint")),
    ]
}

fn assessment_row(
    lang: Lang,
    a: &IndexAssessment,
    names: &std::collections::BTreeMap<String, String>,
    may_write: bool,
    outcome: &Outcome,
) -> Value {
    let v = &a.view;
    let name = |id: &str| names.get(id).cloned().unwrap_or_else(|| id.to_owned());
    let withdrawn = v.withdrawn_at.map(|at| {
        json!({
            "at": view::moment_label(lang, at),
            "by": v.withdrawn_by.as_deref().map(name).unwrap_or_default(),
            "reason": v.withdrawal_reason.clone().unwrap_or_default(),
        })
    });
    let (reason, error) = match &outcome.withdrawal {
        Some((id, values, errors)) if *id == v.id => (
            values.get("reason").to_owned(),
            [errors.text(lang, "reason"), errors.text(lang, "id")]
                .into_iter()
                .filter(|e| !e.is_empty())
                .collect::<Vec<_>>()
                .join(" "),
        ),
        _ => (String::new(), String::new()),
    };
    let withdraw = (may_write && a.withdrawable).then(|| {
        json!({
            "action": format!("/documents/assessments/{}/withdraw", v.id),
            "reason": reason,
        })
    });
    json!({
        "id": v.id,
        "contractor": a.contractor,
        "item_title": a.item_title,
        "pia_file": v.pia_file,
        "changes": v.items.iter().map(|c| {
            let label = c.label();
            lang.pick(&label.ja, &label.en).to_owned()
        }).collect::<Vec<_>>(),
        "assessed_on": view::day_label(lang, v.assessed_on),
        "summary": v.summary,
        "recorded": format!("{} {}", view::moment_label(lang, v.recorded_at), name(&v.recorded_by)),
        "withdrawn": withdrawn,
        "withdraw": withdraw,
        "error": error,
    })
}

async fn render_page(
    state: &AppState,
    request: &HttpRequest,
    user: &UiUser,
    municipality: &str,
    done: Option<&str>,
    outcome: &Outcome,
    status: StatusCode,
) -> Result<HttpResponse, UiError> {
    let lang = Lang::of(request);
    let fail = |e| UiError::api(e, lang);
    let v = viewer(&user.0);
    let index = document_index::index(&state.db, &v, municipality, state.clock.today_jst())
        .await
        .map_err(fail)?;
    let may_write = v.writes_for(municipality);
    let t = |k: &str| lang.text(&format!("documents_ui.{k}"), k);
    let municipalities: Vec<Value> = if v.municipal.len() > 1 {
        let names = crate::services::chains::names(&state.db, v.municipal.iter().cloned())
            .await
            .map_err(fail)?;
        v.municipal
            .iter()
            .map(|m| {
                json!({
                    "name": names.get(m).cloned().unwrap_or_else(|| m.clone()),
                    "href": documents_href(m),
                    "current": m == municipality,
                })
            })
            .collect()
    } else {
        Vec::new()
    };
    let pia_files: Vec<Value> = index
        .pia_files
        .iter()
        .enumerate()
        .map(|(ix, f)| {
            json!({
                "name": f.name,
                "items": f.items,
                "inputs": if f.inputs_recorded { t("inputs_recorded") } else { t("inputs_missing") },
                "links": file_links(lang, municipality, &f.name, ix),
            })
        })
        .collect();
    let items: Vec<Value> = index
        .items
        .iter()
        .map(|i| {
            let nodes: Vec<Value> = i
                .nodes
                .iter()
                .map(|n| {
                    let kind = if n.tier == 1 { "consignment" } else { "subcontract" };
                    json!({
                        "tier": n.tier,
                        "contractor": n.contractor,
                        "kind": t(kind),
                        "state": lang.text(&format!("node_state.{}", state_code(&n.permission_state)), &n.permission_state),
                        "committee": format!("/api/v1/documents/committee?node={}&format=html", query_value(&n.id)),
                    })
                })
                .collect();
            json!({
                "title": i.title,
                "pia_file": i.pia_file,
                "href": format!("/items/{}", query_value(&i.id)),
                "structure_href": format!("/items/{}/structure-chart", query_value(&i.id)),
                "structure_print": format!("/api/v1/items/{}/structure-chart?format=html", query_value(&i.id)),
                "nodes": nodes,
            })
        })
        .collect();
    let awaiting: Vec<Value> = index
        .awaiting
        .iter()
        .map(|a| {
            json!({
                "contractor": a.contractor,
                "item_title": a.item_title,
                "pia_file": a.pia_file,
                "reasons": a.unmet.iter().map(|u| lang.pick(&u.message.ja, &u.message.en).to_owned()).collect::<Vec<_>>(),
            })
        })
        .collect();
    let record = may_write && !index.awaiting.is_empty();
    let sections = [Section::new("", record_fields(lang, &index))];
    let (sections, order, labels) =
        form::render_sections(lang, &sections, &outcome.record, &outcome.record_errors);
    let summary = outcome.record_errors.summary(lang, &order, &labels);
    let names = view::user_names(
        state,
        index.assessments.iter().flat_map(|a| {
            [
                Some(a.view.recorded_by.clone()),
                a.view.withdrawn_by.clone(),
            ]
            .into_iter()
            .flatten()
        }),
    )
    .await
    .map_err(fail)?;
    let assessments: Vec<Value> = index
        .assessments
        .iter()
        .map(|a| assessment_row(lang, a, &names, may_write, outcome))
        .collect();
    let done = done.and_then(|d| match d {
        "recorded" => Some(t("done_recorded")),
        "withdrawn" => Some(t("done_withdrawn")),
        _ => None,
    });
    user_page(
        state,
        request,
        user,
        "/documents",
        &t("title"),
        "documents",
        json!({
            "municipality": index.municipality_name,
            "municipality_id": municipality,
            "municipalities": municipalities,
            "may_write": may_write,
            "done": done,
            "pia_files": pia_files,
            "items": items,
            "awaiting": awaiting,
            "record": record,
            "sections": sections,
            "summary": summary,
            "assessments": assessments,
        }),
        status,
    )
    .await
}

/// `GET /documents`.
pub async fn index(
    state: web::Data<AppState>,
    request: HttpRequest,
    user: UiUser,
    q: web::Query<IndexQuery>,
) -> Result<HttpResponse, UiError> {
    let lang = Lang::of(&request);
    let municipality = municipality_of(&viewer(&user.0), q.municipality.as_deref(), lang)?;
    render_page(
        &state,
        &request,
        &user,
        &municipality,
        q.done.as_deref(),
        &Outcome::default(),
        StatusCode::OK,
    )
    .await
}

/// The page again with a refusal's field errors (a validation failure or a conflict);
/// anything else is an error page.
#[allow(clippy::too_many_arguments)]
async fn refused(
    state: &AppState,
    request: &HttpRequest,
    user: &UiUser,
    municipality: &str,
    e: ApiError,
    mut outcome: Outcome,
    into_withdrawal: bool,
) -> Result<HttpResponse, UiError> {
    let lang = Lang::of(request);
    if !matches!(e.code(), ErrorCode::ValidationFailed | ErrorCode::Conflict) {
        return Err(UiError::api(e, lang));
    }
    let fields = form::field_errors_of(&e);
    match (&mut outcome.withdrawal, into_withdrawal) {
        (Some((_, _, errors)), true) => errors.extend(&fields, str::to_owned),
        _ => outcome.record_errors.extend(&fields, str::to_owned),
    }
    let status = e.code().spec().status;
    render_page(state, request, user, municipality, None, &outcome, status).await
}

/// A posted form of the page: its values, its CSRF token checked, the viewer and the
/// municipality it names (`404` unless the user acts for it).
fn checked_form(
    request: &HttpRequest,
    user: &UiUser,
    form: web::Form<Vec<(String, String)>>,
) -> Result<(Values, Viewer, String), UiError> {
    let values = Values::from_pairs(form.into_inner());
    Csrf::check(request, Some(values.get("csrf")))?;
    let v = viewer(&user.0);
    let municipality = municipality_of(&v, Some(values.get("municipality")), Lang::of(request))?;
    Ok((values, v, municipality))
}

/// `POST /documents/assessments` (`csrf`, `municipality`, `node_id`, `assessed_on`,
/// `summary`): records the assessment a pending subcontract's significant change needs.
pub async fn record(
    state: web::Data<AppState>,
    request: HttpRequest,
    request_id: RequestId,
    user: UiUser,
    form: web::Form<Vec<(String, String)>>,
) -> Result<HttpResponse, UiError> {
    let (values, v, municipality) = checked_form(&request, &user, form)?;
    let mut reader = Reader::new(&values);
    let assessed_on = reader.date("assessed_on");
    let input = AssessmentInput {
        node_id: values.get("node_id").to_owned(),
        assessed_on: serde_json::from_value(assessed_on).unwrap_or_default(),
        summary: values.get("summary").to_owned(),
    };
    let outcome = Outcome {
        record: values.scrubbed(),
        ..Outcome::default()
    };
    if !reader.errors.is_empty() {
        // The date did not parse: say so beside it, with what else the input lacks, and write
        // nothing.
        let mut errors: Vec<FieldError> = crate::validation::errors_of(&input);
        errors.retain(|e| !reader.unparsed.contains(&e.field));
        let outcome = Outcome {
            record_errors: reader.errors,
            ..outcome
        };
        let e = ApiError::new(ErrorCode::ValidationFailed).with_details(errors);
        return refused(&state, &request, &user, &municipality, e, outcome, false).await;
    }
    let rid = request_id.to_string();
    match documents::record_assessment(&state.db, &v, input, &acting(&state, &user.0, &rid)).await {
        Ok(_) => Ok(see_other(&format!(
            "{}&done=recorded#assessments",
            documents_href(&municipality)
        ))),
        Err(e) => refused(&state, &request, &user, &municipality, e, outcome, false).await,
    }
}

/// `POST /documents/assessments/{id}/withdraw` (`csrf`, `municipality`, `reason`).
pub async fn withdraw(
    state: web::Data<AppState>,
    request: HttpRequest,
    request_id: RequestId,
    user: UiUser,
    id: web::Path<String>,
    form: web::Form<Vec<(String, String)>>,
) -> Result<HttpResponse, UiError> {
    let (values, v, municipality) = checked_form(&request, &user, form)?;
    let input = WithdrawalInput {
        reason: values.get("reason").to_owned(),
    };
    let rid = request_id.to_string();
    match documents::withdraw_assessment(&state.db, &v, &id, input, &acting(&state, &user.0, &rid))
        .await
    {
        Ok(_) => Ok(see_other(&format!(
            "{}&done=withdrawn#assessments",
            documents_href(&municipality)
        ))),
        Err(e) => {
            let outcome = Outcome {
                withdrawal: Some((id.into_inner(), values.scrubbed(), Errors::default())),
                ..Outcome::default()
            };
            refused(&state, &request, &user, &municipality, e, outcome, true).await
        }
    }
}
