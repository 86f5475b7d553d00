//! The subcontract application form: file a new application (for one parent node, or one per
//! municipality for a joint one), correct a draft or a returned one, save it as a draft or
//! submit it.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Map, Value};
use tracing_actix_web::RequestId;

use super::applications::{outcome_of, render_detail};
use super::form::{self, Errors, Field, Input, Reader, Section, Values};
use super::view::{self, Lang, Page, UiLang};
use super::{html, see_other, Csrf, UiError, UiUser};
use crate::error::{ApiError, ErrorCode, FieldError};
use crate::routes::api::applications::app_error;
use crate::routes::api::chains::viewer;
use crate::routes::api::instances::acting;
use crate::services::applications::{
    self, ApplicationEvent, ApplicationInput, ApplicationUpdate, ApplicationView,
};
use crate::services::chains::{self, Page as ListPage};
use crate::startup::AppState;

/// The long text fields, in the order of the paper form.
const TEXTS: [&str; 5] = [
    "reason",
    "scope_of_work",
    "data_scope",
    "capability",
    "inspection_requirements",
];

const CHART: &str = "structure_chart.tiers";

/// `(value, label)` options of a select or a checkbox group.
type Options = Vec<(String, String)>;

/// The organisations that may be proposed as subcontractor, and the possible parent nodes.
type Parties = (Options, Options);

fn label(lang: Lang, name: &str) -> String {
    lang.text(&format!("application_form.{name}"), name)
}

/// The form's sections; `parties` is the contractor and parents part of a new application.
fn sections(lang: Lang, parties: Option<Parties>) -> Vec<Section> {
    let mut out = Vec::new();
    if let Some((contractors, parents)) = parties {
        let contractors = std::iter::once((String::new(), lang.text("form.choose", "")))
            .chain(contractors)
            .collect();
        out.push(Section::new(
            lang.text("application_form.parties", ""),
            vec![
                Field::new(
                    "contractor_id",
                    label(lang, "contractor_id"),
                    Input::Select(contractors),
                )
                .required()
                .hint(lang.text("application_form.contractor_hint", "")),
                Field::new(
                    "parent_node_ids",
                    label(lang, "parent_node_ids"),
                    Input::Checks(parents),
                )
                .required()
                .hint(lang.text("application_form.parent_hint", "")),
            ],
        ));
    }
    let mut content: Vec<Field> = TEXTS
        .iter()
        .map(|n| Field::new(*n, lang.text(&format!("field.{n}"), n), Input::Area).required())
        .collect();
    content.push(
        Field::new(
            "planned_amount",
            lang.text("field.planned_amount", ""),
            Input::Number,
        )
        .hint(lang.text("application_form.amount_hint", "")),
    );
    content.push(Field::new("period_start", label(lang, "period_start"), Input::Date).required());
    content.push(Field::new("period_end", label(lang, "period_end"), Input::Date).required());
    out.push(Section::new(
        lang.text("application_form.content", ""),
        content,
    ));
    out.extend(form::tier_sections(lang, CHART));
    out.push(Section::new(
        lang.text("application_form.supervision_and_safeguards", ""),
        vec![
            Field::new(
                "supervision",
                lang.text("field.supervision", ""),
                Input::Area,
            )
            .required(),
            Field::new("safeguards", lang.text("field.safeguards", ""), Input::Area).required(),
            Field::new("nda_confirmed", label(lang, "nda_confirmed"), Input::Check).required(),
        ],
    ));
    out.push(Section::new(
        lang.text("application_form.cloud", ""),
        vec![
            Field::new(
                "hosts_environment",
                label(lang, "hosts_environment"),
                Input::Check,
            ),
            Field::new(
                "service_name",
                lang.text("field.service_name", ""),
                Input::Text,
            )
            .hint(lang.text("application_form.service_hint", "")),
        ],
    ));
    out.push(Section::new(
        lang.text("application_form.advance", ""),
        vec![
            Field::new(
                "advance_permission.requested",
                label(lang, "advance_requested"),
                Input::Check,
            )
            .hint(lang.text("application_form.advance_hint", "")),
            Field::new(
                "advance_permission.named_subcontractor",
                label(lang, "named_subcontractor"),
                Input::Text,
            ),
            Field::new(
                "advance_permission.capability_documents",
                label(lang, "capability_documents"),
                Input::Area,
            ),
            Field::new(
                "advance_permission.reporting_agreed",
                label(lang, "reporting_agreed"),
                Input::Check,
            ),
        ],
    ));
    out
}

/// The application's own fields read from the form, as the JSON of `ApplicationFields`.
fn read_fields(reader: &mut Reader<'_>) -> Value {
    let mut f = Map::new();
    for n in TEXTS.iter().chain(&["supervision", "safeguards"]) {
        f.insert((*n).to_owned(), reader.text(n));
    }
    f.insert(
        "planned_amount".to_owned(),
        reader.number("planned_amount", None).unwrap_or(Value::Null),
    );
    f.insert(
        "structure_chart".to_owned(),
        json!({ "tiers": reader.tiers(CHART, form::TIER_ROWS) }),
    );
    f.insert("nda_confirmed".to_owned(), reader.check("nda_confirmed"));
    f.insert("period_start".to_owned(), reader.date("period_start"));
    f.insert("period_end".to_owned(), reader.date("period_end"));
    f.insert(
        "hosts_environment".to_owned(),
        reader.check("hosts_environment"),
    );
    f.insert(
        "service_name".to_owned(),
        reader.optional_text("service_name").unwrap_or(Value::Null),
    );
    let advance = if reader.values.ticked("advance_permission.requested") {
        json!({
            "named_subcontractor": reader.text("advance_permission.named_subcontractor"),
            "capability_documents": reader.text("advance_permission.capability_documents"),
            "reporting_agreed": reader.check("advance_permission.reporting_agreed"),
        })
    } else {
        Value::Null
    };
    f.insert("advance_permission".to_owned(), advance);
    Value::Object(f)
}

/// The form field a service error names.
fn form_field(path: &str) -> String {
    let path = path.strip_prefix("fields.").unwrap_or(path);
    if path.starts_with("parent_node_ids") {
        return "parent_node_ids".to_owned();
    }
    if path == CHART || path == "structure_chart" {
        return format!("{CHART}[0].organisation_name");
    }
    path.to_owned()
}

/// A stored application's fields as form values.
fn values_of(app: &ApplicationView) -> Values {
    let mut values = Values::default();
    let f = &app.fields;
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    };
    for n in TEXTS.iter().chain(&[
        "supervision",
        "safeguards",
        "period_start",
        "period_end",
        "service_name",
        "planned_amount",
    ]) {
        if let Some(v) = f.get(*n) {
            values.set(*n, text(v));
        }
    }
    for n in ["nda_confirmed", "hosts_environment"] {
        if f.get(n).and_then(Value::as_bool) == Some(true) {
            values.set(n, "on");
        }
    }
    for (i, tier) in f
        .pointer("/structure_chart/tiers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        for name in form::TIER_FIELDS {
            if let Some(v) = tier.get(name) {
                values.set(format!("{CHART}[{i}].{name}"), text(v));
            }
        }
    }
    if let Some(a) = f.get("advance_permission").filter(|a| a.is_object()) {
        values.set("advance_permission.requested", "on");
        for n in ["named_subcontractor", "capability_documents"] {
            values.set(
                format!("advance_permission.{n}"),
                a.get(n).map(text).unwrap_or_default(),
            );
        }
        if a.get("reporting_agreed").and_then(Value::as_bool) == Some(true) {
            values.set("advance_permission.reporting_agreed", "on");
        }
    }
    values
}

/// Organisations that may be proposed as subcontractor (not municipalities, not the user's
/// own), and the user's permitted nodes as possible parents.
async fn parties(state: &AppState, user: &UiUser, lang: Lang) -> Result<Parties, ApiError> {
    let v = viewer(&user.0);
    let mut contractors = Vec::new();
    let mut number = 1;
    loop {
        let page = chains::list_organisations(
            &state.db,
            &v,
            None,
            ListPage {
                page: Some(number),
                per_page: Some(200),
            },
        )
        .await?;
        let done = page.items.is_empty() || page.page * page.per_page >= page.total;
        contractors.extend(
            page.items
                .into_iter()
                .filter(|o| o.kind != "municipality" && !v.is_member(&o.id))
                .map(|o| (o.id, o.name_ja)),
        );
        if done {
            break;
        }
        number += 1;
    }
    let held = chains::nodes_held(&state.db, &v).await?;
    let names = chains::names(
        &state.db,
        held.iter().map(|(_, i)| i.municipality_id.clone()),
    )
    .await?;
    let parents = held
        .into_iter()
        .filter(|(n, _)| n.permission_state == "permitted")
        .map(|(n, item)| {
            let tier = lang
                .text("evidence_ui.tier", "")
                .replace("{tier}", &n.tier.to_string());
            (
                n.id,
                format!(
                    "{} — {} ({tier})",
                    names
                        .get(&item.municipality_id)
                        .cloned()
                        .unwrap_or_default(),
                    item.title
                ),
            )
        })
        .collect();
    Ok((contractors, parents))
}

/// What the form is for: a new application, or correcting one.
enum Target<'a> {
    New,
    Edit(&'a ApplicationView),
}

async fn form_page(
    state: &AppState,
    request: &HttpRequest,
    user: &UiUser,
    target: Target<'_>,
    values: &Values,
    errors: &Errors,
    status: StatusCode,
) -> Result<HttpResponse, UiError> {
    // A form shown again never echoes an individual number back.
    let values = &values.scrubbed();
    let lang = Lang::of(request);
    let fail = |e| UiError::api(e, lang);
    let (parties, title, action, fixed, version) = match target {
        Target::New => (
            Some(parties(state, user, lang).await.map_err(fail)?),
            lang.text("application_form.new_title", ""),
            "/applications".to_owned(),
            Value::Null,
            None,
        ),
        Target::Edit(app) => (
            None,
            format!(
                "{} {}",
                lang.text("application_form.edit_title", ""),
                app.number
            ),
            format!("/applications/{}/edit", app.id),
            json!({
                "number": app.number,
                "contractor": app.contractor_name,
                "municipalities": app.targets.iter().map(|t| t.municipality_name.clone()).collect::<Vec<_>>().join("、"),
                "href": format!("/applications/{}", app.id),
            }),
            Some(app.version),
        ),
    };
    let no_parents = parties.as_ref().is_some_and(|(_, p)| p.is_empty());
    let sections = sections(lang, parties);
    let (rendered, order, mut labels) = form::render_sections(lang, &sections, values, errors);
    labels.insert("version".to_owned(), label(lang, "version"));
    let summary = errors.summary(lang, &order, &labels);
    let csrf = Csrf::of(request);
    let page = Page::for_user(state, &user.0, lang, &csrf.token, request.path())
        .await
        .map_err(fail)?;
    let data = page.data(
        &title,
        json!({
            "heading": title,
            "action": action,
            "fixed": fixed,
            "version": version,
            "sections": rendered,
            "summary": summary,
            "no_parents": no_parents,
        }),
    );
    let body = view::render("application_form", &data).map_err(fail)?;
    Ok(csrf.apply(html(status, body)))
}

/// `GET /applications/new`.
pub async fn new_form(
    state: web::Data<AppState>,
    request: HttpRequest,
    user: UiUser,
) -> Result<HttpResponse, UiError> {
    let lang = Lang::of(&request);
    if viewer(&user.0).contractor.is_empty() {
        return Err(UiError::api(ErrorCode::Forbidden.into(), lang));
    }
    form_page(
        &state,
        &request,
        &user,
        Target::New,
        &Values::default(),
        &Errors::default(),
        StatusCode::OK,
    )
    .await
}

/// Reads the posted form: the values, the JSON of the request (with any parse errors), and
/// whether to submit after saving.
fn read(values: &Values) -> (Value, Errors, Vec<String>) {
    let mut reader = Reader::new(values);
    let fields = read_fields(&mut reader);
    (fields, reader.errors, reader.unparsed)
}

/// Adds the services' refusal to the form's errors, except about fields that did not parse.
fn merge(errors: &mut Errors, refusal: &[FieldError], unparsed: &[String]) {
    let kept: Vec<FieldError> = refusal
        .iter()
        .filter(|e| !unparsed.contains(&form_field(&e.field)))
        .cloned()
        .collect();
    errors.extend(&kept, form_field);
}

/// The form again with its errors (422).
async fn form_again(
    state: &AppState,
    request: &HttpRequest,
    user: &UiUser,
    target: Target<'_>,
    values: &Values,
    errors: &Errors,
) -> Result<HttpResponse, UiError> {
    form_page(
        state,
        request,
        user,
        target,
        values,
        errors,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await
}

/// After a save: submits when the form asked to, else the detail page.
async fn saved(
    state: &AppState,
    request: &HttpRequest,
    request_id: &RequestId,
    user: &UiUser,
    values: &Values,
    id: &str,
) -> Result<HttpResponse, UiError> {
    if values.get("action") == "submit" {
        submit(state, request, request_id, user, id).await
    } else {
        Ok(see_other(&format!("/applications/{id}?done=1")))
    }
}

/// Submits every target the applicant may submit; a refusal is shown on the detail page.
async fn submit(
    state: &AppState,
    request: &HttpRequest,
    request_id: &RequestId,
    user: &UiUser,
    id: &str,
) -> Result<HttpResponse, UiError> {
    let lang = Lang::of(request);
    let rid = request_id.to_string();
    let event = ApplicationEvent {
        event: "submit".to_owned(),
        targets: None,
        version: None,
        comment: None,
        to_step: None,
        on_behalf_of: None,
    };
    let fired = applications::fire(
        &state.db,
        &state.workflows,
        &viewer(&user.0),
        id,
        &event,
        &acting(state, &user.0, &rid),
    )
    .await;
    match fired {
        Ok(_) => Ok(see_other(&format!("/applications/{id}?done=1"))),
        Err(e) => {
            let error = app_error(e);
            let status = error.code().spec().status;
            let outcome = outcome_of(lang, error)?;
            render_detail(state, request, request_id, user, id, outcome, status).await
        }
    }
}

/// `POST /applications`: files the application as a draft, and submits it when asked.
pub async fn create(
    state: web::Data<AppState>,
    request: HttpRequest,
    request_id: RequestId,
    user: UiUser,
    form: web::Form<Vec<(String, String)>>,
) -> Result<HttpResponse, UiError> {
    let lang = Lang::of(&request);
    let fail = |e| UiError::api(e, lang);
    let values = Values::from_pairs(form.into_inner());
    Csrf::check(&request, Some(values.get("csrf")))?;
    let (fields, mut errors, unparsed) = read(&values);
    let body = json!({
        "contractor_id": values.get("contractor_id"),
        "parent_node_ids": values.all("parent_node_ids"),
        "fields": fields,
    });
    let input: ApplicationInput = serde_json::from_value(body)
        .map_err(|e| fail(ApiError::new(ErrorCode::BadRequest).with_cause(e.to_string())))?;
    if !errors.is_empty() {
        merge(
            &mut errors,
            &applications::field_errors(&input, &input.fields),
            &unparsed,
        );
        return form_again(&state, &request, &user, Target::New, &values, &errors).await;
    }
    let rid = request_id.to_string();
    let created = applications::create(
        &state.db,
        &state.workflows,
        &viewer(&user.0),
        input,
        &acting(&state, &user.0, &rid),
    )
    .await
    .map_err(app_error);
    match created {
        Ok(app) => saved(&state, &request, &request_id, &user, &values, &app.id).await,
        Err(e) if e.code() == ErrorCode::ValidationFailed => {
            merge(&mut errors, &form::field_errors_of(&e), &unparsed);
            form_again(&state, &request, &user, Target::New, &values, &errors).await
        }
        Err(e) => Err(fail(e)),
    }
}

/// The application if the user may correct it now (a draft or a returned one of theirs).
async fn editable(
    state: &AppState,
    request_id: &RequestId,
    user: &UiUser,
    id: &str,
    lang: Lang,
) -> Result<ApplicationView, UiError> {
    let rid = request_id.to_string();
    let app = applications::get(
        &state.db,
        &state.workflows,
        &viewer(&user.0),
        id,
        &acting(state, &user.0, &rid),
    )
    .await
    .map_err(|e| UiError::api(app_error(e), lang))?;
    let may_edit = app
        .targets
        .iter()
        .any(|t| t.available_events.iter().any(|e| e == "edit"));
    if !may_edit {
        return Err(UiError::api(
            ApiError::new(ErrorCode::EventNotApplicable),
            lang,
        ));
    }
    Ok(app)
}

/// `GET /applications/{id}/edit`.
pub async fn edit_form(
    state: web::Data<AppState>,
    request: HttpRequest,
    request_id: RequestId,
    user: UiUser,
    id: web::Path<String>,
) -> Result<HttpResponse, UiError> {
    let lang = Lang::of(&request);
    let app = editable(&state, &request_id, &user, &id, lang).await?;
    let values = values_of(&app);
    form_page(
        &state,
        &request,
        &user,
        Target::Edit(&app),
        &values,
        &Errors::default(),
        StatusCode::OK,
    )
    .await
}

/// `POST /applications/{id}/edit`: saves the corrections under the version the form showed,
/// and submits (again) when asked.
pub async fn update(
    state: web::Data<AppState>,
    request: HttpRequest,
    request_id: RequestId,
    user: UiUser,
    id: web::Path<String>,
    form: web::Form<Vec<(String, String)>>,
) -> Result<HttpResponse, UiError> {
    let lang = Lang::of(&request);
    let fail = |e| UiError::api(e, lang);
    let values = Values::from_pairs(form.into_inner());
    Csrf::check(&request, Some(values.get("csrf")))?;
    let app = editable(&state, &request_id, &user, &id, lang).await?;
    let (fields, mut errors, unparsed) = read(&values);
    let version: i64 = values.get("version").parse().unwrap_or(-1);
    let input: ApplicationUpdate =
        serde_json::from_value(json!({ "version": version, "fields": fields }))
            .map_err(|e| fail(ApiError::new(ErrorCode::BadRequest).with_cause(e.to_string())))?;
    if !errors.is_empty() {
        merge(
            &mut errors,
            &applications::field_errors(&input, &input.fields),
            &unparsed,
        );
        return form_again(
            &state,
            &request,
            &user,
            Target::Edit(&app),
            &values,
            &errors,
        )
        .await;
    }
    let rid = request_id.to_string();
    let updated = applications::update(
        &state.db,
        &state.workflows,
        &viewer(&user.0),
        &id,
        input,
        &acting(&state, &user.0, &rid),
    )
    .await
    .map_err(app_error);
    match updated {
        Ok(_) => saved(&state, &request, &request_id, &user, &values, &id).await,
        Err(e) if e.code() == ErrorCode::ValidationFailed => {
            merge(&mut errors, &form::field_errors_of(&e), &unparsed);
            form_again(
                &state,
                &request,
                &user,
                Target::Edit(&app),
                &values,
                &errors,
            )
            .await
        }
        Err(e)
            if matches!(
                e.code(),
                ErrorCode::StaleVersion | ErrorCode::ConcurrentUpdate
            ) =>
        {
            errors.add("version", form::catalogue_msg("application_form.stale"));
            let fresh = editable(&state, &request_id, &user, &id, lang).await?;
            form_page(
                &state,
                &request,
                &user,
                Target::Edit(&fresh),
                &values,
                &errors,
                StatusCode::CONFLICT,
            )
            .await
        }
        Err(e) => Err(fail(e)),
    }
}
