//! Administration: the loaded workflow definitions (read only, with their versions, content
//! hashes, states, transitions and diagrams); users with their roles (create with a one-time
//! initial password, grant and end roles, deactivate); organisations (register, edit names and
//! contacts). Only holders of the `admin` role see these pages; anyone else gets `404`, as from
//! the admin API. Every change goes through `services::admin`, which records it.

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::NaiveDate;
use entity::organisation;
use entity::outbox::OutboxStatus;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use secrecy::ExposeSecret as _;
use serde::Deserialize;
use serde_json::{json, Value};

use super::form::{self, render_sections, Errors, Field, Input, Section, Values};
use super::view::{self, Lang, Page, UiLang};
use super::{html, see_other, Csrf, UiError, UiUser};
use crate::error::{ApiError, ErrorCode, FieldError};
use crate::services::{self, chains::OrganisationInput, users::NewMembership};
use crate::startup::AppState;
use crate::workflow::Vocabulary;

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

/// `404` unless the user is an administrator (as the admin API answers anyone else).
fn admin_only(user: &UiUser, lang: Lang) -> Result<(), UiError> {
    if user.0.has_role("admin") {
        Ok(())
    } else {
        Err(UiError::not_found(lang))
    }
}

/// The checks every admin form post makes first, in this order: the CSRF token, then that the
/// user is an admin (anyone else gets 404). Returns the page language.
fn admin_post(request: &HttpRequest, user: &UiUser, csrf: Option<&str>) -> Result<Lang, UiError> {
    let lang = Lang::of(request);
    Csrf::check(request, csrf)?;
    admin_only(user, lang)?;
    Ok(lang)
}

fn role_label(lang: Lang, role: &str) -> String {
    lang.text(&format!("roles.{role}"), role)
}

/// The create-user form's fields.
fn user_fields(lang: Lang) -> Vec<Section> {
    let t = |k: &str| lang.text(&format!("admin_ui.{k}"), k);
    vec![Section::new(
        "",
        vec![
            Field::new("login", t("login"), Input::Text).required(),
            Field::new("display_name", t("display_name"), Input::Text).required(),
            Field::new("email", t("email"), Input::Text),
        ],
    )]
}

/// What the users page shows above the list after an action.
#[derive(Default)]
struct UsersOutcome {
    /// The new user's login and one-time initial password.
    created: Option<(String, String)>,
    /// The create form's values and errors.
    values: Values,
    errors: Errors,
    /// An error of a per-user form: the user's login and the reasons.
    refused: Option<(String, Vec<String>)>,
    done: bool,
}

/// `GET /admin/users`.
pub async fn users(
    state: web::Data<AppState>,
    request: HttpRequest,
    user: UiUser,
    q: web::Query<DoneQuery>,
) -> Result<HttpResponse, UiError> {
    admin_only(&user, Lang::of(&request))?;
    let outcome = UsersOutcome {
        done: q.done.is_some(),
        ..UsersOutcome::default()
    };
    users_page(&state, &request, &user, outcome, StatusCode::OK).await
}

async fn users_page(
    state: &AppState,
    request: &HttpRequest,
    user: &UiUser,
    outcome: UsersOutcome,
    status: StatusCode,
) -> Result<HttpResponse, UiError> {
    let lang = Lang::of(request);
    let fail = |e| UiError::api(e, lang);
    let rows = services::admin::users(&state.db).await.map_err(fail)?;
    let orgs = organisation::Entity::find()
        .order_by_asc(organisation::Column::Id)
        .all(&state.db)
        .await
        .map_err(|e| fail(e.into()))?;
    let names: BTreeMap<&str, &str> = orgs
        .iter()
        .map(|o| (o.id.as_str(), o.name_ja.as_str()))
        .collect();
    let today = state.clock.today_jst();
    let users: Vec<Value> = rows
        .iter()
        .map(|row| {
            let u = &row.user;
            json!({
                "id": u.id,
                "login": u.login,
                "display_name": u.display_name,
                "email": u.email,
                "active": u.deactivated_at.is_none(),
                "deactivated": u.deactivated_at.map(|at| view::moment_label(lang, at)),
                "is_self": u.id == user.0.id,
                "memberships": row.memberships.iter().map(|m| json!({
                    "id": m.id,
                    "organisation": names.get(m.organisation_id.as_str()).copied().unwrap_or(m.organisation_id.as_str()),
                    "role": role_label(lang, &m.role),
                    "from": view::day_label(lang, m.valid_from),
                    "until": m.valid_until.map(|d| view::day_label(lang, d)).unwrap_or_default(),
                    "ended": m.valid_until.is_some_and(|d| d < today),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let (sections, order, labels) =
        render_sections(lang, &user_fields(lang), &outcome.values, &outcome.errors);
    let roles: Vec<Value> = crate::domain::ROLES
        .iter()
        .filter(|r| **r != "system")
        .map(|r| json!({ "value": r, "label": role_label(lang, r) }))
        .collect();
    let organisations: Vec<Value> = orgs
        .iter()
        .map(|o| json!({ "value": o.id, "label": o.name_ja }))
        .collect();
    let csrf = Csrf::of(request);
    let page = Page::for_user(state, &user.0, lang, &csrf.token, "/admin/users")
        .await
        .map_err(fail)?;
    let data = page.data(
        &lang.text("admin_ui.users_title", ""),
        json!({
            "users": users,
            "sections": sections,
            "summary": outcome.errors.summary(lang, &order, &labels),
            "roles": roles,
            "organisations": organisations,
            "today": today.to_string(),
            "created": outcome.created.map(|(login, password)| json!({ "login": login, "password": password })),
            "refused": outcome.refused.map(|(login, reasons)| json!({ "login": login, "reasons": reasons })),
            "done": outcome.done,
        }),
    );
    let body = view::render("admin_users", &data).map_err(fail)?;
    Ok(csrf.apply(html(status, body)))
}

/// Query of pages that show "done" after a redirect.
#[derive(Debug, Deserialize)]
pub struct DoneQuery {
    #[serde(default)]
    done: Option<String>,
}

/// `POST /admin/users`: creates a user and shows their one-time initial password (this
/// response only; the page is not cached).
pub async fn create_user(
    state: web::Data<AppState>,
    request: HttpRequest,
    user: UiUser,
    form: web::Form<Vec<(String, String)>>,
) -> Result<HttpResponse, UiError> {
    let values = Values::from_pairs(form.into_inner());
    let lang = admin_post(&request, &user, Some(values.get("csrf")))?;
    let email = Some(values.get("email").to_owned()).filter(|e| !e.trim().is_empty());
    let new = services::admin::NewAccount {
        login: values.get("login").to_owned(),
        display_name: values.get("display_name").to_owned(),
        email,
    };
    match services::admin::create_user(&state.db, &user.0.id, new, state.clock.now()).await {
        Ok((created, password)) => {
            let outcome = UsersOutcome {
                created: Some((created.login, password.expose_secret().to_owned())),
                ..UsersOutcome::default()
            };
            users_page(&state, &request, &user, outcome, StatusCode::OK).await
        }
        Err(e) => {
            let (errors, status) = form_errors(e, lang)?;
            let outcome = UsersOutcome {
                values,
                errors,
                ..UsersOutcome::default()
            };
            users_page(&state, &request, &user, outcome, status).await
        }
    }
}

/// The fields a refusal names, with its status; anything else than a validation failure or
/// a conflict stays an error page.
fn refusal_fields(e: ApiError, lang: Lang) -> Result<(Vec<FieldError>, StatusCode), UiError> {
    match e.code() {
        ErrorCode::ValidationFailed | ErrorCode::Conflict => {
            Ok((form::field_errors_of(&e), e.code().spec().status))
        }
        _ => Err(UiError::api(e, lang)),
    }
}

/// The form's errors of a refusal, with its status.
fn form_errors(e: ApiError, lang: Lang) -> Result<(Errors, StatusCode), UiError> {
    let (fields, status) = refusal_fields(e, lang)?;
    let mut errors = Errors::default();
    errors.extend(&fields, str::to_owned);
    Ok((errors, status))
}

/// `POST /admin/users/{id}/roles`: grants a role in an organisation from a day.
pub async fn grant_role(
    state: web::Data<AppState>,
    request: HttpRequest,
    user: UiUser,
    id: web::Path<String>,
    form: web::Form<Vec<(String, String)>>,
) -> Result<HttpResponse, UiError> {
    let values = Values::from_pairs(form.into_inner());
    let lang = admin_post(&request, &user, Some(values.get("csrf")))?;
    let target = target_user(&state, &id, lang).await?;
    let day = |name: &str| values.get(name).trim().parse::<NaiveDate>().ok();
    let mut reasons = Vec::new();
    let valid_from = day("valid_from");
    if valid_from.is_none() {
        reasons.push(FieldError::new(
            "valid_from",
            "開始日をYYYY-MM-DDの形式で入力してください。",
            "Enter the first day as YYYY-MM-DD.",
        ));
    }
    let valid_until = day("valid_until");
    if valid_until.is_none() && !values.get("valid_until").trim().is_empty() {
        reasons.push(FieldError::new(
            "valid_until",
            "終了日をYYYY-MM-DDの形式で入力してください。",
            "Enter the last day as YYYY-MM-DD.",
        ));
    }
    let result = match valid_from {
        Some(valid_from) if reasons.is_empty() => services::admin::grant_role(
            &state.db,
            &Vocabulary::product(),
            &user.0.id,
            NewMembership {
                user_id: target.id.clone(),
                organisation_id: values.get("organisation_id").to_owned(),
                role: values.get("role").to_owned(),
                valid_from,
                valid_until,
            },
            state.clock.now(),
        )
        .await
        .map(drop),
        _ => Err(ApiError::new(ErrorCode::ValidationFailed).with_details(reasons)),
    };
    after_user_action(&state, &request, &user, &target.login, result).await
}

/// `POST /admin/memberships/{id}/end`: ends a role today.
pub async fn end_role(
    state: web::Data<AppState>,
    request: HttpRequest,
    user: UiUser,
    id: web::Path<String>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, UiError> {
    let lang = admin_post(&request, &user, form.csrf.as_deref())?;
    let held = entity::membership::Entity::find_by_id(id.as_str())
        .one(&state.db)
        .await
        .map_err(|e| UiError::api(e.into(), lang))?
        .ok_or_else(|| UiError::not_found(lang))?;
    let target = target_user(&state, &held.user_id, lang).await?;
    let result = services::admin::end_role(
        &state.db,
        &user.0.id,
        &id,
        state.clock.today_jst(),
        state.clock.now(),
    )
    .await;
    after_user_action(&state, &request, &user, &target.login, result).await
}

/// `POST /admin/users/{id}/deactivate`.
pub async fn deactivate(
    state: web::Data<AppState>,
    request: HttpRequest,
    user: UiUser,
    id: web::Path<String>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, UiError> {
    let lang = admin_post(&request, &user, form.csrf.as_deref())?;
    let target = target_user(&state, &id, lang).await?;
    let result =
        services::admin::deactivate(&state.db, &user.0.id, &target.id, state.clock.now()).await;
    after_user_action(&state, &request, &user, &target.login, result).await
}

/// A form carrying only its token.
#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: Option<String>,
}

async fn target_user(
    state: &AppState,
    id: &str,
    lang: Lang,
) -> Result<entity::user::Model, UiError> {
    services::users::find_by_id(&state.db, id)
        .await
        .map_err(|e| UiError::api(e, lang))?
        .ok_or_else(|| UiError::not_found(lang))
}

/// Back to the list when done; otherwise the list again with the reasons, naming the user.
async fn after_user_action(
    state: &AppState,
    request: &HttpRequest,
    user: &UiUser,
    login: &str,
    result: Result<(), ApiError>,
) -> Result<HttpResponse, UiError> {
    let lang = Lang::of(request);
    match result {
        Ok(()) => Ok(see_other("/admin/users?done=1")),
        Err(e) => {
            let (fields, status) = refusal_fields(e, lang)?;
            let reasons = fields
                .into_iter()
                .map(|f| {
                    let label = lang.text(&format!("admin_ui.{}", f.field), &f.field);
                    format!("{label}: {}", lang.pick(&f.reason.ja, &f.reason.en))
                })
                .collect();
            let outcome = UsersOutcome {
                refused: Some((login.to_owned(), reasons)),
                ..UsersOutcome::default()
            };
            users_page(state, request, user, outcome, status).await
        }
    }
}

/// The organisation form's fields (the id and kind only when creating).
fn organisation_fields(lang: Lang, creating: bool) -> Vec<Section> {
    let t = |k: &str| lang.text(&format!("admin_ui.{k}"), k);
    let mut fields = Vec::new();
    if creating {
        fields.push(
            Field::new("id", t("organisation_id"), Input::Text).hint(t("organisation_id_hint")),
        );
        let kinds = ORGANISATION_KINDS
            .iter()
            .map(|k| ((*k).to_owned(), lang.text(&format!("admin_ui.kind_{k}"), k)))
            .collect();
        fields.push(Field::new("kind", t("kind"), Input::Select(kinds)).required());
    }
    fields.extend([
        Field::new("name_ja", t("name_ja"), Input::Text).required(),
        Field::new("name_en", t("name_en"), Input::Text),
        Field::new("address", t("address"), Input::Text),
        Field::new("representative", t("representative"), Input::Text),
        Field::new("corporate_number", t("corporate_number"), Input::Text),
        Field::new("contacts", t("contacts"), Input::Lines).hint(t("contacts_hint")),
    ]);
    vec![Section::new("", fields)]
}

const ORGANISATION_KINDS: &[&str] = &[
    "municipality",
    "nhi_federation",
    "central_association",
    "payment_fund",
    "vendor",
    "cloud_provider",
];

/// The organisation input a form gives, or the field errors of what does not parse.
fn organisation_input(
    values: &Values,
    id: Option<String>,
    kind: &str,
) -> Result<OrganisationInput, Vec<FieldError>> {
    let optional = |name: &str| Some(values.get(name).trim().to_owned()).filter(|v| !v.is_empty());
    let contacts: Vec<String> = values
        .get("contacts")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    let input = json!({
        "id": id,
        "kind": kind,
        "name_ja": values.get("name_ja").trim(),
        "name_en": optional("name_en"),
        "address": optional("address"),
        "representative": optional("representative"),
        "corporate_number": optional("corporate_number"),
        "contacts": contacts,
    });
    serde_json::from_value(input).map_err(|_| {
        vec![FieldError::new(
            "kind",
            "組織の種類を選んでください。",
            "Choose the kind of organisation.",
        )]
    })
}

/// `GET /admin/organisations`.
pub async fn organisations(
    state: web::Data<AppState>,
    request: HttpRequest,
    user: UiUser,
    q: web::Query<DoneQuery>,
) -> Result<HttpResponse, UiError> {
    admin_only(&user, Lang::of(&request))?;
    organisations_page(
        &state,
        &request,
        &user,
        &Values::default(),
        &Errors::default(),
        q.done.is_some(),
        StatusCode::OK,
    )
    .await
}

async fn organisations_page(
    state: &AppState,
    request: &HttpRequest,
    user: &UiUser,
    values: &Values,
    errors: &Errors,
    done: bool,
    status: StatusCode,
) -> Result<HttpResponse, UiError> {
    let lang = Lang::of(request);
    let fail = |e| UiError::api(e, lang);
    let orgs = organisation::Entity::find()
        .order_by_asc(organisation::Column::Id)
        .all(&state.db)
        .await
        .map_err(|e| fail(e.into()))?;
    let rows: Vec<Value> = orgs
        .iter()
        .map(|o| {
            json!({
                "id": o.id,
                "kind": lang.text(&format!("admin_ui.kind_{}", o.kind), &o.kind),
                "name": o.name_ja,
                "contacts": serde_json::from_str::<Vec<String>>(&o.contacts).unwrap_or_default().join(", "),
                "href": format!("/admin/organisations/{}", o.id),
            })
        })
        .collect();
    let (sections, order, labels) =
        render_sections(lang, &organisation_fields(lang, true), values, errors);
    let csrf = Csrf::of(request);
    let page = Page::for_user(state, &user.0, lang, &csrf.token, "/admin/organisations")
        .await
        .map_err(fail)?;
    let data = page.data(
        &lang.text("admin_ui.organisations_title", ""),
        json!({
            "organisations": rows,
            "sections": sections,
            "summary": errors.summary(lang, &order, &labels),
            "done": done,
        }),
    );
    let body = view::render("admin_organisations", &data).map_err(fail)?;
    Ok(csrf.apply(html(status, body)))
}

/// `POST /admin/organisations`.
pub async fn create_organisation(
    state: web::Data<AppState>,
    request: HttpRequest,
    user: UiUser,
    form: web::Form<Vec<(String, String)>>,
) -> Result<HttpResponse, UiError> {
    let values = Values::from_pairs(form.into_inner());
    let lang = admin_post(&request, &user, Some(values.get("csrf")))?;
    let id = Some(values.get("id").trim().to_owned()).filter(|i| !i.is_empty());
    let result = match organisation_input(&values, id, values.get("kind")) {
        Ok(input) => {
            services::admin::create_organisation(&state.db, &user.0.id, input, state.clock.now())
                .await
        }
        Err(fields) => Err(ApiError::new(ErrorCode::ValidationFailed).with_details(fields)),
    };
    match result {
        Ok(_) => Ok(see_other("/admin/organisations?done=1")),
        Err(e) => {
            let (errors, status) = form_errors(e, lang)?;
            organisations_page(&state, &request, &user, &values, &errors, false, status).await
        }
    }
}

/// `GET /admin/organisations/{id}`: the edit form.
pub async fn organisation(
    state: web::Data<AppState>,
    request: HttpRequest,
    user: UiUser,
    id: web::Path<String>,
    q: web::Query<DoneQuery>,
) -> Result<HttpResponse, UiError> {
    let lang = Lang::of(&request);
    admin_only(&user, lang)?;
    let found = find_organisation(&state, &id, lang).await?;
    let values = Values::from_pairs(
        [
            ("name_ja", Some(found.name_ja.clone())),
            ("name_en", found.name_en.clone()),
            ("address", found.address.clone()),
            ("representative", found.representative.clone()),
            ("corporate_number", found.corporate_number.clone()),
            (
                "contacts",
                Some(
                    serde_json::from_str::<Vec<String>>(&found.contacts)
                        .unwrap_or_default()
                        .join("\n"),
                ),
            ),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v))),
    );
    organisation_page(
        &state,
        &request,
        &user,
        &found,
        &values,
        &Errors::default(),
        q.done.is_some(),
        StatusCode::OK,
    )
    .await
}

async fn find_organisation(
    state: &AppState,
    id: &str,
    lang: Lang,
) -> Result<organisation::Model, UiError> {
    organisation::Entity::find_by_id(id)
        .one(&state.db)
        .await
        .map_err(|e| UiError::api(e.into(), lang))?
        .ok_or_else(|| UiError::not_found(lang))
}

#[allow(clippy::too_many_arguments)]
async fn organisation_page(
    state: &AppState,
    request: &HttpRequest,
    user: &UiUser,
    found: &organisation::Model,
    values: &Values,
    errors: &Errors,
    done: bool,
    status: StatusCode,
) -> Result<HttpResponse, UiError> {
    let lang = Lang::of(request);
    let fail = |e| UiError::api(e, lang);
    let (sections, order, labels) =
        render_sections(lang, &organisation_fields(lang, false), values, errors);
    let history = services::admin::events_of(&state.db, &found.id)
        .await
        .map_err(fail)?;
    let names = view::user_names(state, history.iter().map(|e| e.actor_id.clone()))
        .await
        .map_err(fail)?;
    let history: Vec<Value> = history
        .iter()
        .map(|e| {
            json!({
                "when": view::moment_label(lang, e.at),
                "who": names.get(&e.actor_id).cloned().unwrap_or_else(|| e.actor_id.clone()),
                "action": lang.text(&format!("admin_ui.action_{}", e.action), &e.action),
            })
        })
        .collect();
    let csrf = Csrf::of(request);
    let path = format!("/admin/organisations/{}", found.id);
    let page = Page::for_user(state, &user.0, lang, &csrf.token, &path)
        .await
        .map_err(fail)?;
    let data = page.data(
        &found.name_ja,
        json!({
            "org": {
                "id": found.id,
                "name": found.name_ja,
                "kind": lang.text(&format!("admin_ui.kind_{}", found.kind), &found.kind),
            },
            "sections": sections,
            "summary": errors.summary(lang, &order, &labels),
            "history": history,
            "done": done,
        }),
    );
    let body = view::render("admin_organisation", &data).map_err(fail)?;
    Ok(csrf.apply(html(status, body)))
}

/// `POST /admin/organisations/{id}`: saves the edit form.
pub async fn update_organisation(
    state: web::Data<AppState>,
    request: HttpRequest,
    user: UiUser,
    id: web::Path<String>,
    form: web::Form<Vec<(String, String)>>,
) -> Result<HttpResponse, UiError> {
    let values = Values::from_pairs(form.into_inner());
    let lang = admin_post(&request, &user, Some(values.get("csrf")))?;
    let found = find_organisation(&state, &id, lang).await?;
    let result = match organisation_input(&values, None, &found.kind) {
        Ok(input) => {
            services::admin::update_organisation(
                &state.db,
                &user.0.id,
                &found.id,
                input,
                state.clock.now(),
            )
            .await
        }
        Err(fields) => Err(ApiError::new(ErrorCode::ValidationFailed).with_details(fields)),
    };
    match result {
        Ok(_) => Ok(see_other(&format!(
            "/admin/organisations/{}?done=1",
            found.id
        ))),
        Err(e) => {
            let (errors, status) = form_errors(e, lang)?;
            organisation_page(
                &state, &request, &user, &found, &values, &errors, false, status,
            )
            .await
        }
    }
}

/// Query of the sent-mail page: a state (`pending`, `sent`, `failed`; all when empty), the
/// page, and the outcome of a retry.
#[derive(Debug, Deserialize)]
pub struct MailQuery {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    page: Option<u64>,
    #[serde(default)]
    done: Option<String>,
}

/// Messages per page of `/admin/mail`.
const MAIL_PER_PAGE: u64 = 50;

const MAIL_STATES: [(OutboxStatus, &str); 3] = [
    (OutboxStatus::Pending, "pending"),
    (OutboxStatus::Sent, "sent"),
    (OutboxStatus::Failed, "failed"),
];

fn status_code(status: OutboxStatus) -> &'static str {
    MAIL_STATES
        .iter()
        .find(|(s, _)| *s == status)
        .map_or("pending", |(_, code)| code)
}

/// A state's label.
fn status_label(lang: Lang, status: OutboxStatus) -> String {
    let code = status_code(status);
    lang.text(&format!("admin_ui.mail_status_{code}"), code)
}

/// The `.eml` file of a sent message, when mail is written to files: `mail_dir/<id>.eml`,
/// named only by an id read from the database and made of letters, digits and `-` (never a
/// path a request gives).
fn eml_path(state: &AppState, row: &entity::outbox::Model) -> Option<std::path::PathBuf> {
    let files = state.settings.mail.host().is_none();
    let safe = !row.id.is_empty()
        && row
            .id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-');
    (files && safe && row.status == OutboxStatus::Sent)
        .then(|| state.settings.mail_dir.join(format!("{}.eml", row.id)))
}

/// `GET /admin/mail`: mail messages, newest first, 50 a page, with the count of each state.
pub async fn mail(
    state: web::Data<AppState>,
    request: HttpRequest,
    user: UiUser,
    q: web::Query<MailQuery>,
) -> Result<HttpResponse, UiError> {
    admin_only(&user, Lang::of(&request))?;
    let notice = (q.done.as_deref() == Some("retried")).then_some("mail_retried");
    mail_page(&state, &request, &user, &q, notice, StatusCode::OK).await
}

async fn mail_page(
    state: &AppState,
    request: &HttpRequest,
    user: &UiUser,
    q: &MailQuery,
    notice: Option<&str>,
    status: StatusCode,
) -> Result<HttpResponse, UiError> {
    let lang = Lang::of(request);
    let fail = |e| UiError::api(e, lang);
    let t = |k: &str| lang.text(&format!("admin_ui.{k}"), k);
    let filter = MAIL_STATES
        .iter()
        .find(|(_, code)| Some(*code) == q.status.as_deref())
        .map(|(s, code)| (*s, *code));
    let page = services::chains::Page {
        page: q.page,
        per_page: Some(MAIL_PER_PAGE),
    };
    let counts = services::outbox::counts(&state.db)
        .await
        .map_err(|e| fail(e.into()))?;
    let list = services::outbox::list(&state.db, filter.map(|(s, _)| s), page)
        .await
        .map_err(|e| fail(e.into()))?;
    let ids: Vec<&str> = list.items.iter().map(|m| m.id.as_str()).collect();
    let rows = entity::outbox::Entity::find()
        .filter(entity::outbox::Column::Id.is_in(ids))
        .all(&state.db)
        .await
        .map_err(|e| fail(e.into()))?;
    let rows: BTreeMap<&str, &entity::outbox::Model> =
        rows.iter().map(|r| (r.id.as_str(), r)).collect();
    let messages: Vec<Value> = list
        .items
        .iter()
        .map(|m| {
            let row = rows.get(m.id.as_str());
            let recipients = row.map(|r| r.recipients.clone()).unwrap_or_default();
            json!({
                "id": m.id,
                "status": status_code(m.status),
                "status_label": status_label(lang, m.status),
                "failed": m.status == OutboxStatus::Failed,
                "template": m.template.clone().unwrap_or_default(),
                "recipients": recipients,
                "delivered_to": m.delivered_to.as_ref().map(|d| d.join(", ")).unwrap_or_default(),
                "attempts": m.attempts,
                "next_attempt": (m.status == OutboxStatus::Pending).then(|| view::moment_label(lang, m.next_attempt_at)),
                "last_error": m.last_error,
                "created": view::moment_label(lang, m.created_at),
                "sent": m.sent_at.map(|at| view::moment_label(lang, at)),
                "eml": row.and_then(|r| eml_path(state, r)).map(|_| format!("/admin/mail/{}/eml", m.id)),
            })
        })
        .collect();
    let query = |n: u64| match filter {
        Some((_, code)) => format!("/admin/mail?status={code}&page={n}"),
        None => format!("/admin/mail?page={n}"),
    };
    let last = list.total.div_ceil(MAIL_PER_PAGE).max(1);
    let current = list.page;
    let counts: Vec<Value> = counts
        .iter()
        .map(|(s, n)| json!({ "status": status_code(*s), "label": status_label(lang, *s), "count": n }))
        .collect();
    let options: Vec<Value> = std::iter::once(json!({ "value": "", "label": t("mail_all"), "selected": filter.is_none() }))
        .chain(MAIL_STATES.iter().map(|(s, code)| {
            json!({ "value": code, "label": status_label(lang, *s), "selected": filter.map(|(_, c)| c) == Some(*code) })
        }))
        .collect();
    let csrf = Csrf::of(request);
    let view_page = Page::for_user(state, &user.0, lang, &csrf.token, "/admin/mail")
        .await
        .map_err(fail)?;
    let data = view_page.data(
        &t("mail_title"),
        json!({
            "counts": counts,
            "options": options,
            "messages": messages,
            "filter": filter.map(|(_, c)| c).unwrap_or_default(),
            "page": current,
            "pages": last,
            "previous": (current > 1).then(|| query(current - 1)),
            "next": (current < last).then(|| query(current + 1)),
            "notice": notice.map(|k| json!({ "text": t(k), "ok": k == "mail_retried" })),
        }),
    );
    let body = view::render("admin_mail", &data).map_err(fail)?;
    Ok(csrf.apply(html(status, body)))
}

/// `POST /admin/mail/{id}/retry`: queues a permanently failed message again (audited). A
/// message that is not failed is left alone and the page says so (`409`).
pub async fn retry_mail(
    state: web::Data<AppState>,
    request: HttpRequest,
    user: UiUser,
    id: web::Path<String>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, UiError> {
    let lang = admin_post(&request, &user, form.csrf.as_deref())?;
    match services::admin::retry_mail(&state.db, &user.0.id, &id, state.clock.now()).await {
        Ok(_) => Ok(see_other("/admin/mail?done=retried")),
        Err(e) if e.code() == ErrorCode::Conflict => {
            let q = MailQuery {
                status: None,
                page: None,
                done: None,
            };
            mail_page(
                &state,
                &request,
                &user,
                &q,
                Some("mail_not_failed"),
                StatusCode::CONFLICT,
            )
            .await
        }
        Err(e) => Err(UiError::api(e, lang)),
    }
}

/// `GET /admin/mail/{id}/eml`: the `.eml` text of a sent message, when mail is written to
/// files; `404` otherwise.
pub async fn mail_eml(
    state: web::Data<AppState>,
    request: HttpRequest,
    user: UiUser,
    id: web::Path<String>,
) -> Result<HttpResponse, UiError> {
    let lang = Lang::of(&request);
    admin_only(&user, lang)?;
    let row = services::outbox::find_message(&state.db, &id)
        .await
        .map_err(|e| UiError::api(e.into(), lang))?
        .ok_or_else(|| UiError::not_found(lang))?;
    let path = eml_path(&state, &row).ok_or_else(|| UiError::not_found(lang))?;
    let text = match tokio::fs::read(&path).await {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(UiError::not_found(lang)),
        Err(e) => {
            return Err(UiError::api(
                ApiError::internal(format!("mail file: {e}")),
                lang,
            ))
        }
    };
    Ok(HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .body(text))
}
