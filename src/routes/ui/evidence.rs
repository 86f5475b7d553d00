//! The evidence library of an organisation: its records and files, the form to record new
//! evidence with its files, verification and revocation by the root municipality's officers,
//! and the calendar of what expires within 90 days.

use actix_multipart::Multipart;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::NaiveDate;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use tracing_actix_web::RequestId;

use super::form::{self, Errors, Field, Input, Reader, Section, Values};
use super::view::{self, Lang, Page, UiLang};
use super::{html, see_other, Csrf, UiError, UiUser};
use crate::domain::evidence::{EvidenceFields, EvidenceKind, NdaClauses};
use crate::error::{ApiError, ErrorCode, FieldError};
use crate::routes::api::applications::app_error;
use crate::routes::api::chains::viewer;
use crate::routes::api::evidence::too_large;
use crate::services::evidence::{self, EvidenceInput, EvidenceView, Library};
use crate::startup::AppState;
use crate::workflow::Now;

/// How far ahead the expiry calendar looks.
pub const HORIZON_DAYS: u32 = 90;

/// The calendar's markers: within 7, 30 and 90 days.
const MARKERS: [u32; 3] = [7, 30, 90];

/// How a field of an evidence kind is entered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    OptText,
    Area,
    Date,
    OptDate,
    Count,
    Lines,
    Check,
    Mode,
    Counterparty,
    Clauses,
    Tiers,
}

/// The fields of each kind of evidence, in the order of the paper it records
/// (`crate::domain::evidence`); `true` marks a required one.
fn spec(kind: EvidenceKind) -> &'static [(&'static str, Kind, bool)] {
    use Kind::*;
    match kind {
        EvidenceKind::Ismap => &[
            ("registration_number", Text, true),
            ("service_name", Text, true),
            ("provider", Text, true),
            ("registration_date", Date, true),
            ("expiry_date", Date, true),
            ("scope_statement", Area, true),
            ("remarks", OptText, false),
            ("renewal_pending", Check, false),
        ],
        EvidenceKind::Iso27001 | EvidenceKind::Iso27017 | EvidenceKind::Iso27018 => &[
            ("certificate_number", Text, true),
            ("organisation_name", Text, true),
            ("scope", Area, true),
            ("covered_services", Lines, true),
            ("edition", Text, true),
            ("certification_body", Text, true),
            ("accreditation", OptText, false),
            ("issue_date", Date, true),
            ("expiry_date", Date, true),
            ("next_surveillance_date", OptDate, false),
        ],
        EvidenceKind::CsGold | EvidenceKind::CsSilver => &[
            ("licence_number", Text, true),
            ("service_name", Text, true),
            ("issue_date", Date, true),
            ("expiry_date", Date, true),
        ],
        EvidenceKind::PrivacyMark => &[
            ("registration_number", Text, true),
            ("organisation_name", Text, true),
            ("valid_from", Date, true),
            ("valid_until", Date, true),
        ],
        EvidenceKind::Nda => &[
            ("counterparty_organisation_id", Counterparty, true),
            ("signed_date", Date, true),
            ("term_until", Date, true),
            ("clauses", Clauses, true),
        ],
        EvidenceKind::StructureChart => &[("tiers", Tiers, true)],
        EvidenceKind::Safeguards => &[
            ("organisational", Area, true),
            ("personnel", Area, true),
            ("physical", Area, true),
            ("technical", Area, true),
        ],
        EvidenceKind::DomesticStorage => &[
            ("service_name", Text, true),
            ("regions", Lines, true),
            ("all_in_japan", Check, true),
        ],
        EvidenceKind::SharedResponsibility => &[
            ("service_name", Text, true),
            ("os_and_middleware", Area, true),
            ("network", Area, true),
            ("application", Area, true),
            ("encryption", Area, true),
        ],
        EvidenceKind::NoAccessClause => &[
            ("contract_clause", Area, true),
            ("access_control", Area, true),
        ],
        EvidenceKind::TrainingRecord => &[
            ("date", Date, true),
            ("topic", Text, true),
            ("attendees", Count, true),
            ("contract", Text, true),
        ],
        EvidenceKind::InspectionReport => &[
            ("date", Date, true),
            ("mode", Mode, true),
            ("inspectors", Lines, true),
            ("findings", Area, true),
            ("corrective_actions", Area, true),
        ],
        EvidenceKind::DeletionCertificate => &[
            ("what", Text, true),
            ("date", Date, true),
            ("method", Text, true),
            ("witnessed_by", Text, true),
        ],
    }
}

fn label(lang: Lang, name: &str) -> String {
    lang.text(&format!("evidence_ui.field.{name}"), name)
}

fn kind_label(lang: Lang, kind: &str) -> String {
    EvidenceKind::parse(kind).map_or_else(
        || kind.to_owned(),
        |k| lang.pick(k.label_ja(), k.label_en()).to_owned(),
    )
}

/// The form's sections for `kind`: its own fields, then what every record has.
fn sections(lang: Lang, kind: EvidenceKind, library: &Library) -> Vec<Section> {
    let mut own = Vec::new();
    let mut extra = Vec::new();
    for (name, k, required) in spec(kind) {
        let input = match k {
            Kind::Text | Kind::OptText => Input::Text,
            Kind::Area => Input::Area,
            Kind::Date | Kind::OptDate => Input::Date,
            Kind::Count => Input::Number,
            Kind::Lines => Input::Lines,
            Kind::Check => Input::Check,
            Kind::Mode => Input::Select(
                ["on_site", "remote"]
                    .iter()
                    .map(|m| {
                        (
                            (*m).to_owned(),
                            lang.text(&format!("evidence_ui.mode_{m}"), m),
                        )
                    })
                    .collect(),
            ),
            Kind::Counterparty => Input::Select(
                std::iter::once((String::new(), lang.text("form.choose", "")))
                    .chain(library.counterparties.iter().cloned())
                    .collect(),
            ),
            Kind::Clauses => {
                let clauses = NdaClauses::default()
                    .entries()
                    .iter()
                    .map(|(n, ja, en, _)| {
                        Field::new(
                            format!("clauses.{n}"),
                            lang.pick(ja, en).to_owned(),
                            Input::Check,
                        )
                    })
                    .collect();
                extra.push(Section::new(label(lang, "clauses"), clauses));
                continue;
            }
            Kind::Tiers => {
                extra.extend(form::tier_sections(lang, "tiers"));
                continue;
            }
        };
        let mut field = Field::new(*name, label(lang, name), input);
        if *required {
            field = field.required();
        }
        if *k == Kind::Lines {
            field = field.hint(lang.text("form.one_per_line", ""));
        }
        own.push(field);
    }
    let node_options = std::iter::once((
        String::new(),
        lang.text("evidence_ui.whole_organisation", ""),
    ))
    .chain(library.nodes.iter().map(|n| {
        (
            n.id.clone(),
            format!(
                "{} — {} ({})",
                n.municipality_name,
                n.item_title,
                lang.text("evidence_ui.tier", "")
                    .replace("{tier}", &n.tier.to_string())
            ),
        )
    }))
    .collect();
    let mut out = vec![Section::new(String::new(), own)];
    out.extend(extra);
    out.push(Section::new(
        lang.text("evidence_ui.common", ""),
        vec![Field::new(
            "node_id",
            lang.text("evidence_ui.node", ""),
            Input::Select(node_options),
        )
        .hint(lang.text("evidence_ui.node_hint", ""))],
    ));
    out
}

/// The kind's fields read from the form as the JSON of [`EvidenceFields`].
fn read_fields(kind: EvidenceKind, reader: &mut Reader<'_>) -> Value {
    let mut out = Map::new();
    out.insert("kind".to_owned(), json!(kind.as_str()));
    for (name, k, _) in spec(kind) {
        let name = *name;
        let value = match k {
            Kind::Text | Kind::Area | Kind::Counterparty | Kind::Mode => Some(reader.text(name)),
            Kind::OptText => reader.optional_text(name),
            Kind::Date => Some(reader.date(name)),
            Kind::OptDate => reader.optional_date(name),
            Kind::Count => reader.number(name, Some(0)),
            Kind::Lines => Some(reader.lines(name)),
            Kind::Check => Some(reader.check(name)),
            Kind::Clauses => Some(Value::Object(
                NdaClauses::default()
                    .entries()
                    .iter()
                    .map(|(n, ..)| ((*n).to_owned(), reader.check(&format!("clauses.{n}"))))
                    .collect(),
            )),
            Kind::Tiers => Some(reader.tiers("tiers", form::TIER_ROWS)),
        };
        if let Some(value) = value {
            out.insert(name.to_owned(), value);
        }
    }
    Value::Object(out)
}

/// The form field a service error names (`fields.covered_services[1]` → `covered_services`).
fn form_field(kind: EvidenceKind, path: &str) -> String {
    let path = path.strip_prefix("fields.").unwrap_or(path);
    if path.starts_with("files") {
        return "file".to_owned();
    }
    let lists: Vec<&str> = spec(kind)
        .iter()
        .filter(|(_, k, _)| *k == Kind::Lines)
        .map(|(n, ..)| *n)
        .collect();
    form::strip_index(path, &lists)
}

fn now(state: &AppState) -> Now {
    Now {
        at: state.clock.now(),
        today: state.clock.today_jst(),
    }
}

/// The calendar's rows: nearest expiry first, each with its marker in words (not colour alone).
pub fn calendar_rows(
    lang: Lang,
    today: NaiveDate,
    records: &[EvidenceView],
    names: &std::collections::BTreeMap<String, String>,
) -> Vec<Value> {
    records
        .iter()
        .filter_map(|e| {
            let until = e.valid_until?;
            let days = u32::try_from((until - today).num_days()).ok()?;
            let marker = MARKERS.iter().copied().find(|m| days <= *m)?;
            Some(json!({
                "id": e.id,
                "organisation_id": e.organisation_id,
                "organisation": names.get(&e.organisation_id).cloned().unwrap_or_else(|| e.organisation_id.clone()),
                "kind": kind_label(lang, &e.kind),
                "service": e.service_name.clone().unwrap_or_default(),
                "until": view::day_label(lang, until),
                "days": lang.text("evidence_ui.days_left", "").replace("{days}", &days.to_string()),
                "marker": marker,
                "marker_label": lang.text(&format!("evidence_ui.within_{marker}"), ""),
                "status": lang.text(&format!("evidence_ui.status_{}", e.status), e.status),
                "renewal_pending": e.renewal_pending,
            }))
        })
        .collect()
}

/// A file size for people: bytes, KB or MB.
fn size_label(bytes: i64) -> String {
    match bytes {
        b if b < 1024 => format!("{b} B"),
        b if b < 1024 * 1024 => format!("{} KB", (b + 1023) / 1024),
        b => format!("{:.1} MB", b as f64 / (1024.0 * 1024.0)),
    }
}

/// A value of a stored record as text.
fn value_text(lang: Lang, value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Bool(b) => lang.text(
            if *b {
                "application.yes"
            } else {
                "application.no"
            },
            "",
        ),
        Value::Number(n) => n.to_string(),
        Value::Array(items) => items
            .iter()
            .map(|i| match i {
                Value::Object(o) => o
                    .values()
                    .map(|v| value_text(lang, v))
                    .filter(|s| !s.is_empty())
                    .collect::<Vec<_>>()
                    .join(" / "),
                other => value_text(lang, other),
            })
            .collect::<Vec<_>>()
            .join("\n"),
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| format!("{}: {}", label(lang, k), value_text(lang, v)))
            .collect::<Vec<_>>()
            .join("\n"),
        Value::Null => String::new(),
    }
}

/// What the record's own fields say, as label/value rows.
fn field_rows(lang: Lang, e: &EvidenceView) -> Vec<Value> {
    let Some(fields) = e.fields.as_object() else {
        return Vec::new();
    };
    let kind = EvidenceKind::parse(&e.kind);
    let mut rows = Vec::new();
    for (name, value) in fields {
        if name == "kind" {
            continue;
        }
        let text = if name == "clauses" {
            let present: Vec<String> = NdaClauses::default()
                .entries()
                .iter()
                .filter(|(n, ..)| value.get(*n).and_then(Value::as_bool) == Some(true))
                .map(|(_, ja, en, _)| lang.pick(ja, en).to_owned())
                .collect();
            present.join("\n")
        } else if name == "mode" {
            lang.text(
                &format!("evidence_ui.mode_{}", value.as_str().unwrap_or_default()),
                "",
            )
        } else {
            value_text(lang, value)
        };
        if text.is_empty() || kind.is_none() {
            continue;
        }
        rows.push(json!({ "label": label(lang, name), "value": text }));
    }
    rows
}

/// What went wrong with an action on one record, shown beside it.
#[derive(Default)]
struct RecordOutcome {
    record: String,
    /// The reason field's error and text (revocation).
    reason_error: String,
    reason: String,
    /// Anything else, as a list.
    messages: Vec<String>,
    conflict: bool,
}

async fn library_page(
    state: &AppState,
    request: &HttpRequest,
    user: &UiUser,
    org: &str,
    done: Option<&str>,
    outcome: Option<RecordOutcome>,
    status: StatusCode,
) -> Result<HttpResponse, UiError> {
    let lang = Lang::of(request);
    let fail = |e| UiError::api(e, lang);
    let today = state.clock.today_jst();
    let v = viewer(&user.0);
    let library = evidence::library(&state.db, &v, org, today)
        .await
        .map_err(fail)?;
    let soon = evidence::expiring(&state.db, &v, Some(org), today, HORIZON_DAYS)
        .await
        .map_err(fail)?;
    let names = std::iter::once((
        library.organisation_id.clone(),
        library.organisation_name.clone(),
    ))
    .collect();
    let calendar = calendar_rows(lang, today, &soon, &names);
    let outcome = outcome.unwrap_or_default();
    let node_names: std::collections::BTreeMap<&str, String> = library
        .nodes
        .iter()
        .map(|n| {
            (
                n.id.as_str(),
                format!("{} — {}", n.municipality_name, n.item_title),
            )
        })
        .collect();
    let users = view::user_names(
        state,
        library
            .records
            .iter()
            .flat_map(|r| [r.verified_by.clone(), r.revoked_by.clone()])
            .flatten(),
    )
    .await
    .map_err(fail)?;
    let who = |id: &Option<String>| {
        id.as_ref()
            .map(|i| users.get(i).cloned().unwrap_or_else(|| i.clone()))
            .unwrap_or_default()
    };
    let records: Vec<Value> = library
        .records
        .iter()
        .map(|e| {
            let mine = outcome.record == e.id;
            json!({
                "id": e.id,
                "kind": kind_label(lang, &e.kind),
                "status_code": e.status,
                "status": lang.text(&format!("evidence_ui.status_{}", e.status), e.status),
                "version": e.version,
                "service": e.service_name.clone().unwrap_or_default(),
                "node": e.node_id.as_deref().map(|n| node_names.get(n).cloned().unwrap_or_default()).unwrap_or_default(),
                "valid_from": e.valid_from.map(|d| view::day_label(lang, d)).unwrap_or_default(),
                "valid_until": e.valid_until.map(|d| view::day_label(lang, d)).unwrap_or_default(),
                "renewal_pending": e.renewal_pending,
                "verified": e.verified_at.map(|at| format!("{} {}", view::moment_label(lang, at), who(&e.verified_by))).unwrap_or_default(),
                "revoked": e.revoked_at.map(|at| format!("{} {}", view::moment_label(lang, at), who(&e.revoked_by))).unwrap_or_default(),
                "revoked_reason": e.revoked_reason.clone().unwrap_or_default(),
                "fields": field_rows(lang, e),
                "ismap_flags": e.ismap_flags.iter().map(|f| lang.pick(&f.message.ja, &f.message.en).to_owned()).collect::<Vec<_>>(),
                "files": e.files.iter().map(|f| json!({
                    "href": format!("/api/v1/evidence/{}/files/{}", e.id, f.sha256),
                    "name": f.filename,
                    "media_type": f.media_type,
                    "size": size_label(f.size),
                })).collect::<Vec<_>>(),
                "may_verify": library.may_verify && e.status == "unverified",
                "may_revoke": library.may_verify && e.status != "revoked",
                "may_attach": library.may_record && e.status == "unverified",
                "reason": if mine { outcome.reason.clone() } else { String::new() },
                "reason_error": if mine { outcome.reason_error.clone() } else { String::new() },
                "messages": if mine { outcome.messages.clone() } else { Vec::new() },
                "conflict": mine && outcome.conflict,
            })
        })
        .collect();
    let csrf = Csrf::of(request);
    let path = format!("/organisations/{org}/evidence");
    let page = Page::for_user(state, &user.0, lang, &csrf.token, &path)
        .await
        .map_err(fail)?;
    let title = lang
        .text("evidence_ui.library_title", "")
        .replace("{org}", &library.organisation_name);
    let done = done
        .filter(|d| ["created", "verified", "revoked", "attached"].contains(d))
        .map(|d| lang.text(&format!("evidence_ui.done_{d}"), ""));
    let data = page.data(
        &title,
        json!({
            "heading": title,
            "org_id": library.organisation_id,
            "may_record": library.may_record,
            "may_verify": library.may_verify,
            "records": records,
            "calendar": calendar,
            "horizon": HORIZON_DAYS,
            "show_org": false,
            "done": done,
        }),
    );
    let body = view::render("evidence_library", &data).map_err(fail)?;
    Ok(csrf.apply(html(status, body)))
}

/// `GET /organisations/{id}/evidence`.
pub async fn library(
    state: web::Data<AppState>,
    request: HttpRequest,
    user: UiUser,
    org: web::Path<String>,
    q: web::Query<super::DoneQuery>,
) -> Result<HttpResponse, UiError> {
    library_page(
        &state,
        &request,
        &user,
        &org,
        q.done.as_deref(),
        None,
        StatusCode::OK,
    )
    .await
}

/// Query of the new-record form: the kind chosen.
#[derive(Debug, Deserialize)]
pub struct NewQuery {
    #[serde(default)]
    kind: Option<String>,
}

#[allow(clippy::too_many_arguments)]
async fn form_page(
    state: &AppState,
    request: &HttpRequest,
    user: &UiUser,
    library: &Library,
    kind: Option<EvidenceKind>,
    values: &Values,
    errors: &Errors,
    status: StatusCode,
) -> Result<HttpResponse, UiError> {
    // A form shown again never echoes an individual number back.
    let values = &values.scrubbed();
    let lang = Lang::of(request);
    let fail = |e| UiError::api(e, lang);
    let kinds: Vec<Value> = EvidenceKind::ALL
        .iter()
        .map(|k| {
            json!({
                "value": k.as_str(),
                "label": lang.pick(k.label_ja(), k.label_en()),
                "selected": Some(*k) == kind,
            })
        })
        .collect();
    let (sections, summary) = match kind {
        Some(k) => {
            let sections = sections(lang, k, library);
            let (rendered, mut order, mut labels) =
                form::render_sections(lang, &sections, values, errors);
            order.push("file".to_owned());
            labels.insert("file".to_owned(), lang.text("evidence_ui.files", ""));
            (rendered, errors.summary(lang, &order, &labels))
        }
        None => Default::default(),
    };
    let file_error = errors.text(lang, "file");
    let csrf = Csrf::of(request);
    let path = format!("/organisations/{}/evidence/new", library.organisation_id);
    let page = Page::for_user(state, &user.0, lang, &csrf.token, &path)
        .await
        .map_err(fail)?;
    let title = lang
        .text("evidence_ui.new_title", "")
        .replace("{org}", &library.organisation_name);
    let data = page.data(
        &title,
        json!({
            "heading": title,
            "org_id": library.organisation_id,
            "kinds": kinds,
            "kind": kind.map(|k| k.as_str()),
            "kind_label": kind.map(|k| lang.pick(k.label_ja(), k.label_en())),
            "sections": sections,
            "summary": summary,
            "file_error": file_error,
            "reselect": !errors.is_empty(),
            "max_upload_mb": state.settings.max_upload_mb,
        }),
    );
    let body = view::render("evidence_form", &data).map_err(fail)?;
    Ok(csrf.apply(html(status, body)))
}

/// `GET /organisations/{id}/evidence/new[?kind=…]`: choose the kind, then its fields.
pub async fn new_form(
    state: web::Data<AppState>,
    request: HttpRequest,
    user: UiUser,
    org: web::Path<String>,
    q: web::Query<NewQuery>,
) -> Result<HttpResponse, UiError> {
    let lang = Lang::of(&request);
    let library = evidence::library(&state.db, &viewer(&user.0), &org, state.clock.today_jst())
        .await
        .map_err(|e| UiError::api(e, lang))?;
    if !library.may_record {
        return Err(UiError::api(ErrorCode::Forbidden.into(), lang));
    }
    let kind = q.kind.as_deref().and_then(EvidenceKind::parse);
    form_page(
        &state,
        &request,
        &user,
        &library,
        kind,
        &Values::default(),
        &Errors::default(),
        StatusCode::OK,
    )
    .await
}

/// `POST /organisations/{id}/evidence` (multipart): the record and its files, all or nothing.
pub async fn create(
    state: web::Data<AppState>,
    request: HttpRequest,
    user: UiUser,
    org: web::Path<String>,
    mut payload: Multipart,
) -> Result<HttpResponse, UiError> {
    let lang = Lang::of(&request);
    let fail = |e| UiError::api(e, lang);
    let parts = form::read_checked(&state, &request, &mut payload).await?;
    let values = parts.values;
    let v = viewer(&user.0);
    let n = now(&state);
    let library = evidence::library(&state.db, &v, &org, n.today)
        .await
        .map_err(fail)?;
    if !library.may_record {
        return Err(fail(ErrorCode::Forbidden.into()));
    }
    let Some(kind) = EvidenceKind::parse(values.get("kind")) else {
        return form_page(
            &state,
            &request,
            &user,
            &library,
            None,
            &values,
            &Errors::default(),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    };
    let mut reader = Reader::new(&values);
    let fields = read_fields(kind, &mut reader);
    let node_id = Some(values.get("node_id").to_owned()).filter(|n| !n.is_empty());
    let mut errors = reader.errors.clone();
    let unparsed = reader.unparsed.clone();
    if parts.too_large {
        errors.add("file", form::too_large_msg(&state));
    }
    let input = match serde_json::from_value::<EvidenceFields>(fields) {
        Ok(fields) => EvidenceInput {
            organisation_id: org.to_string(),
            node_id,
            fields,
        },
        Err(e) => {
            return Err(fail(
                ApiError::new(ErrorCode::BadRequest).with_cause(e.to_string()),
            ))
        }
    };
    let refusal: Vec<FieldError> = if errors.is_empty() {
        match evidence::create_with_files(&state.db, &v, input, parts.files, n.at, n.today).await {
            Ok(created) => {
                return Ok(see_other(&format!(
                    "/organisations/{}/evidence?done=created#evidence-{}",
                    org, created.id
                )))
            }
            Err(e)
                if matches!(
                    e.code(),
                    ErrorCode::ValidationFailed | ErrorCode::UnsupportedFileType
                ) =>
            {
                form::field_errors_of(&e)
            }
            Err(e) => return Err(fail(e)),
        }
    } else {
        // The form did not parse everywhere: the services still say what else is wrong.
        let mut refusal = evidence::check_input(&state.db, &v, &input)
            .await
            .map_err(fail)?;
        if !parts.too_large {
            refusal.extend(evidence::upload_errors(&parts.files));
        }
        refusal
    };
    errors.extend_parsed(refusal, &unparsed, |path| form_field(kind, path));
    form_page(
        &state,
        &request,
        &user,
        &library,
        Some(kind),
        &values,
        &errors,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await
}

/// `POST /evidence/{id}/files` (multipart): more files for an unverified record.
pub async fn attach(
    state: web::Data<AppState>,
    request: HttpRequest,
    user: UiUser,
    id: web::Path<String>,
    mut payload: Multipart,
) -> Result<HttpResponse, UiError> {
    let lang = Lang::of(&request);
    let fail = |e| UiError::api(e, lang);
    let parts = form::read_checked(&state, &request, &mut payload).await?;
    let v = viewer(&user.0);
    let n = now(&state);
    let record = evidence::get(&state.db, &v, &id, n.today)
        .await
        .map_err(fail)?;
    let result = if parts.too_large {
        Err(too_large(&state))
    } else {
        evidence::attach(&state.db, &v, &id, parts.files, n.at, n.today).await
    };
    match result {
        Ok(_) => Ok(see_other(&format!(
            "/organisations/{}/evidence?done=attached#evidence-{}",
            record.organisation_id, record.id
        ))),
        Err(e) => {
            let outcome = record_outcome(lang, &record.id, &e);
            let status = e.code().spec().status;
            library_page(
                &state,
                &request,
                &user,
                &record.organisation_id,
                None,
                Some(outcome),
                status,
            )
            .await
        }
    }
}

/// The verify and revoke form.
#[derive(Debug, Deserialize)]
pub struct DecisionForm {
    #[serde(default)]
    csrf: Option<String>,
    #[serde(default)]
    version: Option<i64>,
    #[serde(default)]
    reason: String,
}

fn record_outcome(lang: Lang, record: &str, e: &ApiError) -> RecordOutcome {
    let mut outcome = RecordOutcome {
        record: record.to_owned(),
        ..RecordOutcome::default()
    };
    match e.code() {
        ErrorCode::StaleVersion | ErrorCode::ConcurrentUpdate => outcome.conflict = true,
        code => {
            let fields = form::field_errors_of(e);
            for f in &fields {
                let text = lang.pick(&f.reason.ja, &f.reason.en).to_owned();
                if f.field == "reason" {
                    outcome.reason_error = text;
                } else {
                    outcome.messages.push(text);
                }
            }
            if fields.is_empty() {
                let spec = code.spec();
                outcome
                    .messages
                    .push(lang.pick(spec.ja, spec.en).to_owned());
            }
        }
    }
    outcome
}

/// `POST /evidence/{id}/verify`.
pub async fn verify(
    state: web::Data<AppState>,
    request: HttpRequest,
    user: UiUser,
    id: web::Path<String>,
    form: web::Form<DecisionForm>,
) -> Result<HttpResponse, UiError> {
    let lang = Lang::of(&request);
    let fail = |e| UiError::api(e, lang);
    Csrf::check(&request, form.csrf.as_deref())?;
    let v = viewer(&user.0);
    let n = now(&state);
    let record = evidence::get(&state.db, &v, &id, n.today)
        .await
        .map_err(fail)?;
    match evidence::verify(&state.db, &v, &id, form.version, n.at, n.today).await {
        Ok(_) => Ok(see_other(&format!(
            "/organisations/{}/evidence?done=verified#evidence-{}",
            record.organisation_id, record.id
        ))),
        Err(e) if e.code() == ErrorCode::NotFound => Err(fail(e)),
        Err(e) => {
            let status = e.code().spec().status;
            let outcome = record_outcome(lang, &record.id, &e);
            library_page(
                &state,
                &request,
                &user,
                &record.organisation_id,
                None,
                Some(outcome),
                status,
            )
            .await
        }
    }
}

/// `POST /evidence/{id}/revoke`: with the reason; the nodes relying on it are suspended.
pub async fn revoke(
    state: web::Data<AppState>,
    request: HttpRequest,
    request_id: RequestId,
    user: UiUser,
    id: web::Path<String>,
    form: web::Form<DecisionForm>,
) -> Result<HttpResponse, UiError> {
    let lang = Lang::of(&request);
    let fail = |e| UiError::api(e, lang);
    Csrf::check(&request, form.csrf.as_deref())?;
    let v = viewer(&user.0);
    let n = now(&state);
    let rid = request_id.to_string();
    let record = evidence::get(&state.db, &v, &id, n.today)
        .await
        .map_err(fail)?;
    let reason = form.reason.trim();
    match evidence::revoke(
        &state.db,
        &state.workflows,
        &v,
        &id,
        reason,
        form.version,
        n,
        Some(&rid),
    )
    .await
    .map_err(app_error)
    {
        Ok(_) => Ok(see_other(&format!(
            "/organisations/{}/evidence?done=revoked#evidence-{}",
            record.organisation_id, record.id
        ))),
        Err(e) if e.code() == ErrorCode::NotFound => Err(fail(e)),
        Err(e) => {
            let status = e.code().spec().status;
            let mut outcome = record_outcome(lang, &record.id, &e);
            outcome.reason = form::Values::from_pairs([("reason".to_owned(), form.reason.clone())])
                .scrubbed()
                .get("reason")
                .to_owned();
            library_page(
                &state,
                &request,
                &user,
                &record.organisation_id,
                None,
                Some(outcome),
                status,
            )
            .await
        }
    }
}

/// `GET /evidence`: the organisations whose evidence the user may see, and the calendar of
/// everything of theirs that expires within 90 days.
pub async fn overview(
    state: web::Data<AppState>,
    request: HttpRequest,
    user: UiUser,
) -> Result<HttpResponse, UiError> {
    let lang = Lang::of(&request);
    let fail = |e| UiError::api(e, lang);
    let today = state.clock.today_jst();
    let v = viewer(&user.0);
    let orgs = evidence::visible_organisations(&state.db, &v)
        .await
        .map_err(fail)?;
    let names = crate::services::chains::names(&state.db, orgs.iter().cloned())
        .await
        .map_err(fail)?;
    let soon = evidence::expiring(&state.db, &v, None, today, HORIZON_DAYS)
        .await
        .map_err(fail)?;
    let calendar = calendar_rows(lang, today, &soon, &names);
    let organisations: Vec<Value> = orgs
        .iter()
        .map(|o| json!({ "id": o, "name": names.get(o).cloned().unwrap_or_else(|| o.clone()) }))
        .collect();
    let csrf = Csrf::of(&request);
    let page = Page::for_user(&state, &user.0, lang, &csrf.token, "/evidence")
        .await
        .map_err(fail)?;
    let title = lang.text("evidence_ui.overview_title", "");
    let data = page.data(
        &title,
        json!({
            "organisations": organisations,
            "calendar": calendar,
            "horizon": HORIZON_DAYS,
            "show_org": true,
        }),
    );
    let body = view::render("evidence_overview", &data).map_err(fail)?;
    Ok(csrf.apply(html(StatusCode::OK, body)))
}
