//! The inbox, the application detail and acting on an application.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};
use tracing_actix_web::RequestId;

use super::view::{self, Lang, Page, UiLang};
use super::{html, see_other, Csrf, UiError, UiUser};
use crate::error::{ApiError, ErrorCode};
use crate::routes::api::applications::app_error;
use crate::routes::api::chains::viewer;
use crate::routes::api::instances::{acting, api_error};
use crate::services::applications::{self, ApplicationEvent, TargetView};
use crate::services::inbox::Task;
use crate::services::instances;
use crate::startup::AppState;

/// How many of the inbox's entries the page lists (the counts are of all).
const INBOX_ROWS: usize = 200;

/// Events the detail page offers as buttons of one form with an optional comment (editing
/// has its own form; return, reject, proxy, skip and pull-up have a form each, below).
const BUTTON_EVENTS: &[&str] = &[
    "submit",
    "endorse",
    "approve",
    "withdraw",
    "suspend",
    "reinstate",
    "revoke",
    "terminate",
    "recall",
    "acknowledge",
];

/// Events with a form of their own on the detail page, in the order shown.
const FORM_EVENTS: &[&str] = &["return", "reject", "proxy", "skip", "pull_up"];

fn state_label(lang: Lang, t: &TargetView) -> String {
    t.state_label
        .as_ref()
        .map_or_else(|| t.state.clone(), |l| lang.pick(&l.ja, &l.en).to_owned())
}

fn event_label(lang: Lang, event: &str) -> String {
    lang.text(&format!("events.{event}"), event)
}

/// `GET /inbox`: the targets waiting for the user to submit, endorse or decide (the
/// [`crate::services::inbox`] rule), longest waiting first, with the counts of all.
pub async fn inbox(
    state: web::Data<AppState>,
    request: HttpRequest,
    request_id: RequestId,
    user: UiUser,
) -> Result<HttpResponse, UiError> {
    let lang = Lang::of(&request);
    let fail = |e| UiError::api(e, lang);
    let rid = request_id.to_string();
    let acting = acting(&state, &user.0, &rid);
    let inbox = crate::services::inbox::inbox(
        &state.db,
        &state.workflows,
        &viewer(&user.0),
        &acting.actor,
        INBOX_ROWS,
    )
    .await
    .map_err(fail)?;
    let principals = view::user_names(
        &state,
        inbox.entries.iter().filter_map(|e| e.on_behalf_of.clone()),
    )
    .await
    .map_err(fail)?;
    let day = |at: chrono::DateTime<chrono::Utc>| {
        view::day_label(lang, at.with_timezone(&crate::clock::jst()).date_naive())
    };
    let rows: Vec<Value> = inbox
        .entries
        .iter()
        .map(|e| {
            let task = match e.task {
                Task::Submit => "submit",
                Task::Endorse => "endorse",
                Task::Approve => "approve",
            };
            json!({
                "id": e.application_id,
                "number": e.number,
                "applicant": e.applicant_name,
                "contractor": e.contractor_name,
                "municipality": e.municipality_name,
                "state": e.state_label.as_ref().map_or_else(|| e.state.clone(), |l| lang.pick(&l.ja, &l.en).to_owned()),
                "actions": e.step_label.as_ref().map_or_else(|| event_label(lang, task), |l| lang.pick(&l.ja, &l.en).to_owned()),
                "on_behalf_of": e.on_behalf_of.as_ref().map(|p| principals.get(p).cloned().unwrap_or_else(|| p.clone())),
                "filed": day(e.filed_at),
                "waiting_since": day(e.waiting_since),
            })
        })
        .collect();
    let obligations = obligation_rows(&state, &user, lang).await.map_err(fail)?;
    let csrf = Csrf::of(&request);
    let page = Page::for_user(&state, &user.0, lang, &csrf.token, "/inbox")
        .await
        .map_err(fail)?;
    let data = page.data(
        &lang.text("inbox.title", ""),
        json!({
            "rows": rows,
            "obligations": obligations,
            "more": inbox.total.saturating_sub(rows.len()),
            "counts": {
                "total": inbox.total,
                "submit": inbox.submit,
                "endorse": inbox.endorse,
                "approve": inbox.approve,
            },
        }),
    );
    let body = view::render("inbox", &data).map_err(fail)?;
    Ok(csrf.apply(html(StatusCode::OK, body)))
}

/// The user's open, submitted and returned obligations, earliest due first; overdue ones
/// flagged (the template marks them in red and in words).
async fn obligation_rows(
    state: &AppState,
    user: &UiUser,
    lang: Lang,
) -> Result<Vec<Value>, crate::error::ApiError> {
    let today = state.clock.today_jst();
    let list = crate::services::obligations::inbox(&state.db, &viewer(&user.0), today, 200).await?;
    Ok(list
        .into_iter()
        .map(|o| {
            json!({
                "id": o.id,
                "title": view::text_of(lang, serde_json::to_value(&o.title).ok().as_ref()),
                "owner": o.organisation_name,
                "due": view::day_label(lang, o.due_on),
                "status": lang.text(&format!("obligations.status_{}", o.status), &o.status),
                "overdue": o.overdue,
            })
        })
        .collect())
}

/// `GET /applications/{id}`.
pub async fn detail(
    state: web::Data<AppState>,
    request: HttpRequest,
    request_id: RequestId,
    user: UiUser,
    id: web::Path<String>,
    q: web::Query<super::DoneQuery>,
) -> Result<HttpResponse, UiError> {
    let outcome = if q.done.is_some() {
        Outcome::Done
    } else {
        Outcome::None
    };
    render_detail(
        &state,
        &request,
        &request_id,
        &user,
        &id,
        outcome,
        StatusCode::OK,
    )
    .await
}

/// What the last action did, shown above the application.
pub(super) enum Outcome {
    None,
    Done,
    /// The decision or action was refused: every unmet requirement.
    Refused(Vec<Value>),
    /// Someone else acted first.
    Conflict,
    /// Anything else the action was refused for.
    Error(String, Vec<Value>),
}

pub(super) async fn render_detail(
    state: &AppState,
    request: &HttpRequest,
    request_id: &RequestId,
    user: &UiUser,
    id: &str,
    outcome: Outcome,
    status: StatusCode,
) -> Result<HttpResponse, UiError> {
    let lang = Lang::of(request);
    let fail = |e| UiError::api(e, lang);
    let rid = request_id.to_string();
    let viewer = viewer(&user.0);
    let acting = acting(state, &user.0, &rid);
    let app = applications::get(&state.db, &state.workflows, &viewer, id, &acting)
        .await
        .map_err(|e| fail(app_error(e)))?;

    let mut targets = Vec::new();
    for t in &app.targets {
        let checklist =
            applications::checklist_of(&state.db, &state.workflows, &viewer, &app, &t.id, &acting)
                .await
                .map_err(|e| fail(app_error(e)))?;
        let trail = instances::audit_trail(&state.db, &state.workflows, &t.instance_id, &acting)
            .await
            .map_err(|e| fail(api_error(e)))?;
        let names = view::user_names(state, trail.iter().map(|r| r.actor_id.clone()))
            .await
            .map_err(fail)?;
        let timeline: Vec<Value> = trail
            .iter()
            .map(|r| {
                json!({
                    "when": view::moment_label(lang, r.at),
                    "who": names.get(&r.actor_id).cloned().unwrap_or_else(|| r.actor_id.clone()),
                    "event": event_label(lang, &r.event),
                    "from_to": format!("{} → {}", r.from_state.as_deref().unwrap_or("—"), r.to_state),
                    "comment": r.comment.clone().unwrap_or_default(),
                })
            })
            .collect();
        let actions: Vec<Value> = t
            .available_events
            .iter()
            .filter(|e| BUTTON_EVENTS.contains(&e.as_str()))
            .map(|e| json!({ "event": e, "label": event_label(lang, e) }))
            .collect();
        let forms = action_forms(state, lang, &t.event_choices)
            .await
            .map_err(fail)?;
        targets.push(json!({
            "id": t.id,
            "municipality": t.municipality_name,
            "state": state_label(lang, t),
            "state_id": t.state,
            "version": t.version,
            "diagram_url": format!("/api/v1/instances/{}/diagram.svg?lang={}", t.instance_id, lang.code()),
            "checklist": checklist_view(lang, &checklist, state, &viewer).await.map_err(fail)?,
            "timeline": timeline,
            "actions": actions,
            "forms": forms,
            "has_actions": !actions.is_empty() || !forms.is_empty(),
        }));
    }

    let fields = field_rows(lang, &app.fields);
    let editable = app
        .targets
        .iter()
        .any(|t| t.available_events.iter().any(|e| e == "edit"));
    let done = matches!(outcome, Outcome::Done);
    let outcome = match outcome {
        Outcome::None => Value::Null,
        Outcome::Done => Value::Null,
        Outcome::Refused(unmet) => json!({ "kind": "refused", "unmet": unmet }),
        Outcome::Conflict => json!({ "kind": "conflict" }),
        Outcome::Error(title, unmet) => json!({ "kind": "error", "title": title, "unmet": unmet }),
    };
    let csrf = Csrf::of(request);
    let path = format!("/applications/{}", app.id);
    let page = Page::for_user(state, &user.0, lang, &csrf.token, &path)
        .await
        .map_err(fail)?;
    let data = page.data(
        &format!("{} {}", lang.text("application.title", ""), app.number),
        json!({
            "app": {
                "id": app.id,
                "number": app.number,
                "fiscal_year": match lang {
                    Lang::Ja => crate::domain::fiscal::FiscalYear::new(app.fiscal_year).label_ja(),
                    Lang::En => crate::domain::fiscal::FiscalYear::new(app.fiscal_year).label_en(),
                },
                "applicant": app.applicant_name,
                "contractor": app.contractor_name,
                "contractor_address": app.contractor_address,
                "contractor_representative": app.contractor_representative,
                "filed": view::moment_label(lang, app.created_at),
                "progress": { "permitted": app.progress.permitted, "total": app.progress.total },
                "fields": fields,
            },
            "targets": targets,
            "outcome": outcome,
            "done": done,
            "edit_href": editable.then(|| format!("/applications/{}/edit", app.id)),
        }),
    );
    let body = view::render("application", &data).map_err(fail)?;
    Ok(csrf.apply(html(status, body)))
}

/// The forms of the events that take input, each only as the engine offers it to this user
/// now: a return with the places it may go back to (the applicant, the earlier steps), a
/// rejection with its reason, a proxy decision with the approvers the user deputises for, and
/// a skip or pull-up with a comment.
async fn action_forms(
    state: &AppState,
    lang: Lang,
    choices: &[crate::workflow::EventChoice],
) -> Result<Vec<Value>, ApiError> {
    let principals = view::user_names(
        state,
        choices.iter().flat_map(|c| c.on_behalf_of.iter().cloned()),
    )
    .await?;
    let mut forms = Vec::new();
    for event in FORM_EVENTS {
        let Some(choice) = choices.iter().find(|c| c.event == *event) else {
            continue;
        };
        let mut options = Vec::new();
        if *event == "return" {
            if choice.plain {
                options.push(json!({
                    "value": "",
                    "label": lang.text("application.return_to_applicant", ""),
                }));
            }
            options.extend(choice.to_steps.iter().map(|s| {
                json!({
                    "value": s.id,
                    "label": lang.pick(&s.label.ja, &s.label.en),
                })
            }));
        }
        options.extend(choice.on_behalf_of.iter().map(|p| {
            json!({
                "value": p,
                "label": principals.get(p).cloned().unwrap_or_else(|| p.clone()),
            })
        }));
        forms.push(json!({
            "event": event,
            "label": event_label(lang, event),
            "help": lang.text(&format!("application.help_{event}"), ""),
            "comment_label": lang.text(&format!("application.comment_{event}"), ""),
            "comment_required": matches!(*event, "return" | "reject"),
            "select_name": match *event {
                "return" => Some("to_step"),
                "proxy" => Some("on_behalf_of"),
                _ => None,
            },
            "select_label": lang.text(&format!("application.select_{event}"), ""),
            "options": options,
        }));
    }
    Ok(forms)
}

/// The application's fields as label/value rows, in the order of the paper form.
fn field_rows(lang: Lang, fields: &Value) -> Vec<Value> {
    let text = |key: &str| fields.get(key).and_then(Value::as_str).map(str::to_owned);
    let yes_no = |key: &str| {
        fields.get(key).and_then(Value::as_bool).map(|b| {
            lang.text(
                if b {
                    "application.yes"
                } else {
                    "application.no"
                },
                "",
            )
        })
    };
    let mut rows = Vec::new();
    let mut push = |key: &str, value: Option<String>| {
        if let Some(value) = value.filter(|v| !v.is_empty()) {
            rows.push(json!({ "label": lang.text(&format!("field.{key}"), key), "value": value }));
        }
    };
    for key in [
        "reason",
        "scope_of_work",
        "data_scope",
        "capability",
        "inspection_requirements",
    ] {
        push(key, text(key));
    }
    push(
        "planned_amount",
        fields
            .get("planned_amount")
            .and_then(Value::as_i64)
            .map(|n| n.to_string()),
    );
    push("supervision", text("supervision"));
    push("nda_confirmed", yes_no("nda_confirmed"));
    push("safeguards", text("safeguards"));
    let day = |key: &str| {
        text(key)
            .and_then(|d| d.parse().ok())
            .map(|d| view::day_label(lang, d))
    };
    if let (Some(start), Some(end)) = (day("period_start"), day("period_end")) {
        push("period", Some(format!("{start} — {end}")));
    }
    push("hosts_environment", yes_no("hosts_environment"));
    push("service_name", text("service_name"));
    if let Some(bracket) = text("handler_bracket")
        .as_deref()
        .and_then(crate::services::chains::HandlerBracket::parse)
    {
        rows.push(json!({
            "label": lang.text("documents.handler_bracket", "handler_bracket"),
            "value": bracket.label_ja(),
        }));
    }
    rows
}

/// The checklist as the template shows it: one row per tier and requirement, with the
/// unmet reasons and warnings in the user's language.
async fn checklist_view(
    lang: Lang,
    list: &Value,
    state: &AppState,
    viewer: &crate::services::access::Viewer,
) -> Result<Value, ApiError> {
    let entries = list
        .get("checklist")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if entries.is_empty() {
        return Ok(Value::Null);
    }
    let names = crate::services::chains::names(
        &state.db,
        entries
            .iter()
            .filter_map(|e| e.get("organisation_id").and_then(Value::as_str))
            .map(str::to_owned),
    )
    .await?;
    // Whose evidence libraries the rows may link to.
    let readable =
        crate::services::evidence::readable(&state.db, viewer, names.keys().cloned()).await?;
    let msg = |v: &Value| view::text_of(lang, v.get("message"));
    let rows: Vec<Value> = entries
        .iter()
        .map(|e| {
            let status = e.get("status").and_then(Value::as_str).unwrap_or("missing");
            let org = e
                .get("organisation_id")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let requirement = view::text_of(lang, e.get("label"));
            json!({
                "tier": e.get("tier").cloned().unwrap_or(Value::Null),
                "organisation": names.get(org).cloned().unwrap_or_else(|| org.to_owned()),
                "library": readable.contains(org).then(|| format!("/organisations/{org}/evidence")),
                "requirement": requirement,
                "status_code": status,
                "status": lang.text(&format!("status.{status}"), status),
                "valid_until": e.get("valid_until").and_then(Value::as_str)
                    .and_then(|d| d.parse().ok())
                    .map(|d| view::day_label(lang, d))
                    .unwrap_or_default(),
            })
        })
        .collect();
    let list_of = |key: &str| -> Vec<String> {
        list.get(key)
            .and_then(Value::as_array)
            .map(|a| a.iter().map(msg).collect())
            .unwrap_or_default()
    };
    let decision_date = list
        .get("decision_date")
        .and_then(Value::as_str)
        .and_then(|d| d.parse().ok())
        .map(|d| view::day_label(lang, d))
        .unwrap_or_default();
    Ok(json!({
        "decision_date": decision_date,
        "rows": rows,
        "unmet": list_of("unmet"),
        "warnings": list_of("warnings"),
    }))
}

/// The action form of one target.
#[derive(Debug, Deserialize)]
pub struct EventForm {
    #[serde(default)]
    csrf: Option<String>,
    #[serde(default)]
    event: String,
    #[serde(default)]
    target: String,
    #[serde(default)]
    version: Option<i64>,
    #[serde(default)]
    comment: String,
    /// A return's earlier step; empty for back to the applicant.
    #[serde(default)]
    to_step: String,
    /// A proxy decision's absent approver.
    #[serde(default)]
    on_behalf_of: String,
}

/// `POST /applications/{id}/events`: fires the event on the target the page showed, under
/// the version the page showed; a refusal or a conflict is shown on the page.
pub async fn fire(
    state: web::Data<AppState>,
    request: HttpRequest,
    request_id: RequestId,
    user: UiUser,
    id: web::Path<String>,
    form: web::Form<EventForm>,
) -> Result<HttpResponse, UiError> {
    let lang = Lang::of(&request);
    Csrf::check(&request, form.csrf.as_deref())?;
    let form = form.into_inner();
    let rid = request_id.to_string();
    let given = |value: &str| {
        let value = value.trim();
        (!value.is_empty()).then(|| value.to_owned())
    };
    let event = ApplicationEvent {
        comment: given(&form.comment),
        to_step: given(&form.to_step),
        on_behalf_of: given(&form.on_behalf_of),
        event: form.event,
        targets: Some(vec![form.target]),
        version: form.version,
    };
    let fired = applications::fire(
        &state.db,
        &state.workflows,
        &viewer(&user.0),
        &id,
        &event,
        &acting(&state, &user.0, &rid),
    )
    .await;
    let error = match fired {
        Ok(_) => return Ok(see_other(&format!("/applications/{id}?done=1"))),
        Err(e) => app_error(e),
    };
    let status = error.code().spec().status;
    let outcome = outcome_of(lang, error)?;
    render_detail(&state, &request, &request_id, &user, &id, outcome, status).await
}

/// How the detail page shows a refused action; `NotFound` stays an error.
pub(super) fn outcome_of(lang: Lang, error: ApiError) -> Result<Outcome, UiError> {
    let unmet = unmet_of(lang, &error);
    Ok(match error.code() {
        ErrorCode::NotFound => return Err(UiError::api(error, lang)),
        ErrorCode::StaleVersion | ErrorCode::ConcurrentUpdate => Outcome::Conflict,
        ErrorCode::TransitionRejected | ErrorCode::TransitionForbidden => Outcome::Refused(unmet),
        // The page offered an event that no longer applies: someone else moved it on.
        ErrorCode::EventNotApplicable => Outcome::Conflict,
        code => {
            let spec = code.spec();
            Outcome::Error(lang.pick(spec.ja, spec.en).to_owned(), unmet)
        }
    })
}

/// Every unmet requirement (or invalid field) of a refusal, in the user's language.
fn unmet_of(lang: Lang, error: &ApiError) -> Vec<Value> {
    let Some(details) = error.details() else {
        return Vec::new();
    };
    let items = details
        .get("unmet")
        .and_then(Value::as_array)
        .or_else(|| details.as_array())
        .cloned()
        .unwrap_or_default();
    items
        .iter()
        .map(|u| {
            let text = view::text_of(lang, u.get("message").or_else(|| u.get("reason")));
            json!({
                "code": u.get("code").or_else(|| u.get("field")).cloned().unwrap_or(Value::Null),
                "message": text,
            })
        })
        .collect()
}
