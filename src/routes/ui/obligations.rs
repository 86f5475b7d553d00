//! One obligation's screen: what is due, its reminders and history; the owner's form to submit
//! the closing record with its file, the root municipality's form to record an inspection or a
//! renewal, and its accept and return buttons. Every action goes through the same services as
//! `/api/v1/obligations`.

use actix_multipart::Multipart;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::form::{self, Errors, Field, Input, Reader, Section, Values};
use super::view::{self, Lang, Page, UiLang};
use super::{html, see_other, Csrf, UiError, UiUser};
use crate::domain::obligations::{
    COMPLIANCE_REPORT, INSPECTION, INSPECTION_FOLLOWUP, RENEWAL, TRAINING, TRAINING_FOLLOWUP,
};
use crate::error::{ApiError, ErrorCode, FieldError, Msg};
use crate::routes::api::chains::viewer;
use crate::routes::api::evidence::now;
use crate::schedule::calendar::BusinessCalendar;
use crate::services::obligations::{
    self, DecisionInput, ObligationDetail, RecordFile, RecordInput, RecordUpload,
};
use crate::startup::AppState;

/// Finding rows of the inspection report form.
const FINDING_ROWS: usize = 3;

/// The closing record a kind of obligation takes, and who records it.
fn record_kind(kind: &str) -> Option<&'static str> {
    match kind {
        TRAINING | TRAINING_FOLLOWUP => Some("attendance"),
        INSPECTION_FOLLOWUP => Some("corrective_action"),
        COMPLIANCE_REPORT => Some("compliance_report"),
        INSPECTION => Some("inspection"),
        RENEWAL => Some("renewal"),
        _ => None,
    }
}

/// Whether the record's form asks for a file, and whether it must have one.
fn file_rule(record: &str) -> (bool, bool) {
    match record {
        "attendance" | "compliance_report" => (true, true),
        "corrective_action" => (true, false),
        _ => (false, false),
    }
}

fn label(lang: Lang, name: &str) -> String {
    lang.text(&format!("obligation_ui.field.{name}"), name)
}

/// The record form's fields.
fn sections(lang: Lang, record: &str) -> Vec<Section> {
    let f = |name: &str, input: Input| Field::new(name, label(lang, name), input);
    let fields = match record {
        "attendance" => vec![
            f("date", Input::Date).required(),
            f("topic", Input::Text).required(),
            f("attendee_count", Input::Number).required(),
            f("absent_count", Input::Number).hint(lang.text("obligation_ui.absent_hint", "")),
        ],
        "corrective_action" => vec![
            f("date", Input::Date).required(),
            f("description", Input::Area).required(),
        ],
        "compliance_report" => vec![
            f("date", Input::Date).required(),
            f("summary", Input::Area).required(),
        ],
        "renewal" => vec![
            f("signed_on", Input::Date).required(),
            f("new_period_end", Input::Date).required(),
            f("note", Input::Area),
        ],
        "inspection" => {
            let modes = ["on_site", "remote"]
                .iter()
                .map(|m| {
                    (
                        (*m).to_owned(),
                        lang.text(&format!("evidence_ui.mode_{m}"), m),
                    )
                })
                .collect();
            let mut out = vec![Section::new(
                String::new(),
                vec![
                    f("date", Input::Date).required(),
                    f("mode", Input::Select(modes)).required(),
                    f("inspectors", Input::Lines)
                        .required()
                        .hint(lang.text("form.one_per_line", "")),
                ],
            )];
            out.extend((0..FINDING_ROWS).map(|i| {
                Section::new(
                    format!("{} {}", label(lang, "finding"), i + 1),
                    vec![
                        Field::new(
                            format!("findings[{i}].description"),
                            label(lang, "description"),
                            Input::Area,
                        ),
                        Field::new(
                            format!("findings[{i}].follow_up"),
                            label(lang, "follow_up"),
                            Input::Area,
                        )
                        .hint(lang.text("obligation_ui.follow_up_hint", "")),
                    ],
                )
            }));
            return out;
        }
        _ => Vec::new(),
    };
    vec![Section::new(String::new(), fields)]
}

/// The finding rows up to the last one with anything in it.
fn findings(reader: &Reader<'_>) -> Value {
    let filled = |i: usize| {
        ["description", "follow_up"].iter().any(|f| {
            !reader
                .values
                .get(&format!("findings[{i}].{f}"))
                .trim()
                .is_empty()
        })
    };
    let Some(last) = (0..FINDING_ROWS).rev().find(|i| filled(*i)) else {
        return json!([]);
    };
    Value::Array(
        (0..=last)
            .map(|i| {
                let mut row = Map::new();
                row.insert(
                    "description".to_owned(),
                    reader.text(&format!("findings[{i}].description")),
                );
                if let Some(v) = reader.optional_text(&format!("findings[{i}].follow_up")) {
                    row.insert("follow_up".to_owned(), v);
                }
                Value::Object(row)
            })
            .collect(),
    )
}

/// A count field as the service's `u32`; a number too large is the form's own error.
fn count(reader: &mut Reader<'_>, name: &str, blank: Option<i64>) -> Option<Value> {
    let value = reader.number(name, blank)?;
    if value.as_u64().is_some_and(|n| n > u64::from(u32::MAX)) {
        reader
            .errors
            .add(name, form::catalogue_msg("form.number_invalid"));
        reader.unparsed.push(name.to_owned());
        return blank.map(Value::from);
    }
    Some(value)
}

/// The record's JSON (as the API takes it) from the form.
fn read_record(record: &str, reader: &mut Reader<'_>) -> Value {
    let mut out = Map::new();
    out.insert("kind".to_owned(), json!(record));
    let mut put = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            out.insert(k.to_owned(), v);
        }
    };
    match record {
        "attendance" => {
            put("date", Some(reader.date("date")));
            put("topic", Some(reader.text("topic")));
            put("attendee_count", count(reader, "attendee_count", Some(0)));
            put("absent_count", count(reader, "absent_count", Some(0)));
        }
        "corrective_action" => {
            put("date", Some(reader.date("date")));
            put("description", Some(reader.text("description")));
        }
        "compliance_report" => {
            put("date", Some(reader.date("date")));
            put("summary", Some(reader.text("summary")));
        }
        "renewal" => {
            put("signed_on", Some(reader.date("signed_on")));
            put("new_period_end", Some(reader.date("new_period_end")));
            put("note", reader.optional_text("note"));
        }
        "inspection" => {
            put("date", Some(reader.date("date")));
            put("mode", Some(reader.text("mode")));
            put("inspectors", Some(reader.lines("inspectors")));
            put("findings", Some(findings(reader)));
        }
        _ => {}
    }
    Value::Object(out)
}

/// The form field a service error names (`record.findings[1].description` →
/// `findings[1].description`, `record.inspectors[0]` → `inspectors`).
fn form_field(path: &str) -> String {
    let path = path.strip_prefix("record.").unwrap_or(path);
    form::strip_index(path, &["inspectors"])
}

/// What went wrong with an action, shown on the page.
#[derive(Default)]
struct Outcome {
    values: Values,
    errors: Errors,
    /// Messages that belong to no field (a conflict, a refusal).
    messages: Vec<String>,
    /// The reason field of the return form.
    reason: String,
    reason_error: String,
}

fn outcome_of(lang: Lang, e: &ApiError) -> Outcome {
    let mut outcome = Outcome::default();
    let fields = form::field_errors_of(e);
    for f in &fields {
        let text = lang.pick(&f.reason.ja, &f.reason.en).to_owned();
        match f.field.as_str() {
            "reason" => outcome.reason_error = text,
            "status" | "record.kind" => outcome.messages.push(text),
            _ => outcome.errors.add(form_field(&f.field), f.reason.clone()),
        }
    }
    if fields.is_empty() {
        let key = match e.code() {
            ErrorCode::StaleVersion | ErrorCode::ConcurrentUpdate => Some("obligation_ui.conflict"),
            _ => None,
        };
        let spec = e.code().spec();
        outcome.messages.push(key.map_or_else(
            || lang.pick(spec.ja, spec.en).to_owned(),
            |k| lang.text(k, ""),
        ));
    }
    outcome
}

fn status_label(lang: Lang, status: &str) -> String {
    lang.text(&format!("obligations.status_{status}"), status)
}

/// The order in which a record's fields are shown (as on the paper); others after them.
const RECORD_ORDER: [&str; 16] = [
    "finding",
    "follow_up",
    "period_end",
    "date",
    "signed_on",
    "new_period_end",
    "mode",
    "inspectors",
    "findings",
    "topic",
    "attendee_count",
    "absent_count",
    "description",
    "summary",
    "note",
    "every_months",
];

/// A record's stored fields as label/value rows.
fn record_rows(lang: Lang, record: &Value) -> Vec<Value> {
    let Some(map) = record.as_object() else {
        return Vec::new();
    };
    let mut fields: Vec<(&String, &Value)> = map.iter().collect();
    fields.sort_by_key(|(name, _)| {
        RECORD_ORDER
            .iter()
            .position(|o| o == name)
            .unwrap_or(RECORD_ORDER.len())
    });
    let mut rows = Vec::new();
    for (name, value) in fields {
        if ["kind", "audit", "node_version", "period_end_before"].contains(&name.as_str()) {
            continue;
        }
        let text = match (name.as_str(), value) {
            ("mode", Value::String(m)) => lang.text(&format!("evidence_ui.mode_{m}"), m),
            ("findings", Value::Array(items)) => items
                .iter()
                .map(|f| {
                    let d = f.get("description").and_then(Value::as_str).unwrap_or("");
                    match f.get("follow_up").and_then(Value::as_str) {
                        Some(a) if !a.trim().is_empty() => {
                            format!("{d} → {}: {a}", label(lang, "follow_up_short"))
                        }
                        _ => d.to_owned(),
                    }
                })
                .collect::<Vec<_>>()
                .join("\n"),
            (_, Value::Array(items)) => items
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join("\n"),
            (_, Value::String(s)) => s
                .parse()
                .map_or_else(|_| s.clone(), |d| view::day_label(lang, d)),
            (_, Value::Number(n)) => n.to_string(),
            _ => continue,
        };
        rows.push(json!({ "label": label(lang, name), "value": text }));
    }
    rows
}

#[allow(clippy::too_many_lines)]
async fn render(
    state: &AppState,
    request: &HttpRequest,
    user: &UiUser,
    d: &ObligationDetail,
    done: Option<&str>,
    outcome: Outcome,
    status: StatusCode,
) -> Result<HttpResponse, UiError> {
    let lang = Lang::of(request);
    let fail = |e| UiError::api(e, lang);
    let o = &d.obligation;
    let users = view::user_names(
        state,
        d.history
            .iter()
            .map(|h| h.actor_id.clone())
            .chain(o.submitted_by.clone())
            .chain(o.decided_by.clone()),
    )
    .await
    .map_err(fail)?;
    let who = |id: &str| users.get(id).cloned().unwrap_or_else(|| id.to_owned());
    let history: Vec<Value> = d
        .history
        .iter()
        .map(|h| {
            let detail = match h.event.as_str() {
                "attach_file" => h
                    .details
                    .get("filename")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                _ => String::new(),
            };
            json!({
                "at": view::moment_label(lang, h.at),
                "who": who(&h.actor_id),
                "event": lang.text(&format!("obligation_ui.event_{}", h.event), &h.event),
                "event_code": h.event,
                "to": status_label(lang, &h.to_status),
                "comment": h.comment.clone().unwrap_or_default(),
                "detail": detail,
                "record": if h.event == "attach_file" { Vec::new() } else { record_rows(lang, &h.details) },
            })
        })
        .collect();
    let reminders: Vec<Value> = d
        .reminders
        .iter()
        .map(|r| {
            json!({
                "stage": lang.text(&format!("obligation_ui.stage_{}", r.stage), &r.stage),
                "stage_code": r.stage,
                "written": view::moment_label(lang, r.written_at),
                "mail": lang.text(&format!("obligation_ui.mail_{}", r.mail_status), &r.mail_status),
                "sent": r.sent_at.map(|at| view::moment_label(lang, at)).unwrap_or_default(),
            })
        })
        .collect();
    let record = record_kind(&o.kind).unwrap_or_default();
    let may_form = d.may_submit || d.may_record;
    let (file_field, file_required) = file_rule(record);
    let values = outcome.values.scrubbed();
    let (sections, summary) = if may_form {
        let sections = sections(lang, record);
        let (rendered, mut order, mut labels) =
            form::render_sections(lang, &sections, &values, &outcome.errors);
        order.push("file".to_owned());
        labels.insert("file".to_owned(), label(lang, "file"));
        (rendered, outcome.errors.summary(lang, &order, &labels))
    } else {
        Default::default()
    };
    let title = view::text_of(lang, serde_json::to_value(&o.title).ok().as_ref());
    let csrf = Csrf::of(request);
    let path = format!("/obligations/{}", o.id);
    let page = Page::for_user(state, &user.0, lang, &csrf.token, &path)
        .await
        .map_err(fail)?;
    let done = done
        .filter(|d| ["submitted", "recorded", "accepted", "returned"].contains(d))
        .map(|d| lang.text(&format!("obligation_ui.done_{d}"), ""));
    let moved = d.moved_from.map(|from| {
        lang.text("obligation_ui.moved", "")
            .replace("{day}", &view::day_label(lang, from))
    });
    let data = page.data(
        &title,
        json!({
            "heading": title,
            "id": o.id,
            "version": o.version,
            "kind": lang.text(&format!("obligation_ui.kind_{}", o.kind), &o.kind),
            "owner": o.organisation_name,
            "owner_id": o.organisation_id,
            "municipality": d.municipality_name,
            "item": d.item_title,
            "item_id": o.item_id,
            "tier": lang.text("evidence_ui.tier", "").replace("{tier}", &d.node_tier.to_string()),
            "fiscal_year": o.fiscal_year,
            "due": view::day_label(lang, o.due_on),
            "moved": moved,
            "overdue": o.overdue,
            "status_code": o.status,
            "status": status_label(lang, &o.status),
            "next_reminder": d.next_reminder_on.map(|n| view::day_label(lang, n)),
            "return_reason": o.return_reason.clone().filter(|_| o.status == "returned"),
            "file": o.record_filename.clone(),
            "file_href": format!("/api/v1/obligations/{}/file", o.id),
            "record": o.record.as_ref().map(|r| record_rows(lang, r)).unwrap_or_default(),
            "asks": record_rows(lang, &o.detail),
            "submitted": o.submitted_at.map(|at| format!("{} {}", view::moment_label(lang, at), o.submitted_by.as_deref().map(who).unwrap_or_default())),
            "decided": o.decided_at.map(|at| format!("{} {}", view::moment_label(lang, at), o.decided_by.as_deref().map(who).unwrap_or_default())),
            "reminders": reminders,
            "history": history,
            "may_form": may_form,
            "form_title": lang.text(&format!("obligation_ui.form_{record}"), record),
            "sections": sections,
            "summary": summary,
            "file_field": file_field,
            "file_required": file_required && o.record_file.is_none(),
            "file_error": outcome.errors.text(lang, "file"),
            "reselect": !outcome.errors.is_empty(),
            "max_upload_mb": state.settings.max_upload_mb,
            "may_decide": d.may_decide,
            "messages": outcome.messages,
            "reason": outcome.reason,
            "reason_error": outcome.reason_error,
            "done": done,
        }),
    );
    let body = view::render("obligation", &data).map_err(fail)?;
    Ok(csrf.apply(html(status, body)))
}

async fn detail_of(
    state: &AppState,
    user: &UiUser,
    id: &str,
    lang: Lang,
) -> Result<ObligationDetail, UiError> {
    obligations::detail(
        &state.db,
        &state.obligation_policy,
        &viewer(&user.0),
        id,
        state.clock.today_jst(),
    )
    .await
    .map_err(|e| UiError::api(e, lang))
}

/// `GET /obligations/{id}`.
pub async fn detail(
    state: web::Data<AppState>,
    request: HttpRequest,
    user: UiUser,
    id: web::Path<String>,
    q: web::Query<super::DoneQuery>,
) -> Result<HttpResponse, UiError> {
    let lang = Lang::of(&request);
    let d = detail_of(&state, &user, &id, lang).await?;
    let mut outcome = Outcome::default();
    if d.obligation.status == "returned" {
        // A returned record is corrected: the form starts from what was submitted.
        if let Some(Value::Object(record)) = &d.obligation.record {
            for (k, v) in record {
                match v {
                    Value::String(s) => outcome.values.set(k.clone(), s.clone()),
                    Value::Number(n) => outcome.values.set(k.clone(), n.to_string()),
                    _ => {}
                }
            }
        }
    }
    render(
        &state,
        &request,
        &user,
        &d,
        q.done.as_deref(),
        outcome,
        StatusCode::OK,
    )
    .await
}

/// `POST /obligations/{id}/record` (multipart, the CSRF token first): the closing record with
/// its file, all or nothing.
pub async fn record(
    state: web::Data<AppState>,
    request: HttpRequest,
    user: UiUser,
    id: web::Path<String>,
    mut payload: Multipart,
) -> Result<HttpResponse, UiError> {
    let lang = Lang::of(&request);
    let fail = |e| UiError::api(e, lang);
    let mut parts = form::read_checked(&state, &request, &mut payload).await?;
    let d = detail_of(&state, &user, &id, lang).await?;
    if !(d.may_submit || d.may_record) {
        let e = if d.obligation.status == "closed" || d.obligation.status == "submitted" {
            ApiError::new(ErrorCode::Conflict)
        } else {
            ApiError::new(ErrorCode::Forbidden)
        };
        let status = e.code().spec().status;
        return render(
            &state,
            &request,
            &user,
            &d,
            None,
            outcome_of(lang, &e),
            status,
        )
        .await;
    }
    let record_name = record_kind(&d.obligation.kind).unwrap_or_default();
    let values = parts.values;
    let mut reader = Reader::new(&values);
    let record = read_record(record_name, &mut reader);
    let mut errors = reader.errors.clone();
    let unparsed = reader.unparsed.clone();
    let max_mb = state.settings.max_upload_mb;
    let file = if parts.too_large {
        errors.add("file", form::too_large_msg(&state));
        None
    } else if parts.files.len() > 1 {
        errors.add(
            "file",
            Msg::new(
                "ファイルを1つ選択してください。",
                "Choose exactly one file.",
            ),
        );
        None
    } else {
        parts.files.pop().map(|f| {
            let max_bytes = usize::try_from(max_mb)
                .unwrap_or(usize::MAX)
                .saturating_mul(1024 * 1024);
            RecordFile::inspect(&f.filename, f.bytes, max_bytes)
        })
    };
    let version = values.get("version").parse::<i64>().ok();
    let input = match serde_json::from_value::<obligations::ClosingRecord>(record) {
        Ok(record) => RecordInput { record, version },
        Err(e) => {
            return Err(fail(
                ApiError::new(ErrorCode::BadRequest).with_cause(e.to_string()),
            ))
        }
    };
    let v = viewer(&user.0);
    let n = now(&state);
    let refusal: Vec<FieldError> = if errors.is_empty() {
        let mut calendar = BusinessCalendar::new();
        match obligations::submit(
            &state.db,
            &state.obligation_policy,
            &mut calendar,
            &v,
            &id,
            input,
            file,
            n,
        )
        .await
        {
            Ok(_) => {
                let done = if d.may_record {
                    "recorded"
                } else {
                    "submitted"
                };
                return Ok(see_other(&format!("/obligations/{id}?done={done}")));
            }
            Err(e) if e.code() == ErrorCode::ValidationFailed => form::field_errors_of(&e),
            Err(e) if e.code() == ErrorCode::NotFound => return Err(fail(e)),
            Err(e) => {
                let status = e.code().spec().status;
                let mut outcome = outcome_of(lang, &e);
                outcome.values = values.clone();
                return render(&state, &request, &user, &d, None, outcome, status).await;
            }
        }
    } else {
        // The form did not parse everywhere: the services still say what else is wrong.
        let upload = match &file {
            Some(Ok(_)) => RecordUpload {
                given: true,
                refused: None,
            },
            Some(Err((_, e))) => RecordUpload {
                given: false,
                refused: Some(e.clone()),
            },
            None => RecordUpload {
                // A file refused for its size was given.
                given: parts.too_large,
                refused: None,
            },
        };
        obligations::check_record(&state.db, &v, &id, &input, upload, n.today)
            .await
            .map_err(fail)?
    };
    let mut outcome = Outcome {
        values: values.clone(),
        errors,
        ..Outcome::default()
    };
    let (general, fields): (Vec<_>, Vec<_>) = refusal
        .into_iter()
        .partition(|f| f.field == "record.kind" || f.field == "status");
    outcome.messages.extend(
        general
            .iter()
            .map(|f| lang.pick(&f.reason.ja, &f.reason.en).to_owned()),
    );
    outcome.errors.extend_parsed(fields, &unparsed, form_field);
    render(
        &state,
        &request,
        &user,
        &d,
        None,
        outcome,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await
}

/// The accept and return form.
#[derive(Debug, Deserialize)]
pub struct DecisionForm {
    #[serde(default)]
    csrf: Option<String>,
    #[serde(default)]
    version: Option<i64>,
    #[serde(default)]
    reason: Option<String>,
}

/// `POST /obligations/{id}/accept` and `/return`: an officer's decision on the submitted
/// record.
async fn decide(
    state: &AppState,
    request: &HttpRequest,
    user: &UiUser,
    id: &str,
    form: DecisionForm,
    accept: bool,
) -> Result<HttpResponse, UiError> {
    let lang = Lang::of(request);
    let fail = |e| UiError::api(e, lang);
    Csrf::check(request, form.csrf.as_deref())?;
    let v = viewer(&user.0);
    let n = now(state);
    let reason = form.reason.clone().unwrap_or_default();
    let input = DecisionInput {
        version: form.version,
        reason: (!accept).then(|| reason.trim().to_owned()),
    };
    let result = if accept {
        let mut calendar = BusinessCalendar::new();
        obligations::accept(
            &state.db,
            &state.obligation_policy,
            &mut calendar,
            &v,
            id,
            input,
            n,
        )
        .await
    } else {
        obligations::return_record(&state.db, &v, id, input, n).await
    };
    match result {
        Ok(_) => {
            let done = if accept { "accepted" } else { "returned" };
            Ok(see_other(&format!("/obligations/{id}?done={done}")))
        }
        Err(e) if e.code() == ErrorCode::NotFound => Err(fail(e)),
        Err(e) => {
            let status = e.code().spec().status;
            let mut outcome = outcome_of(lang, &e);
            outcome.reason = Values::from_pairs([("reason".to_owned(), reason)])
                .scrubbed()
                .get("reason")
                .to_owned();
            let d = detail_of(state, user, id, lang).await?;
            render(state, request, user, &d, None, outcome, status).await
        }
    }
}

/// `POST /obligations/{id}/accept` and `POST /obligations/{id}/return` (with the reason).
pub async fn decision(
    state: web::Data<AppState>,
    request: HttpRequest,
    user: UiUser,
    path: web::Path<(String, String)>,
    form: web::Form<DecisionForm>,
) -> Result<HttpResponse, UiError> {
    let (id, action) = path.into_inner();
    let accept = match action.as_str() {
        "accept" => true,
        "return" => false,
        _ => return Err(UiError::not_found(Lang::of(&request))),
    };
    decide(&state, &request, &user, &id, form.into_inner(), accept).await
}
