//! The ISMAP cloud service list (`/ismap`): the imports with their differences, for admins and
//! municipal staff (anyone else `404`), and the import form for admins.

use actix_multipart::Multipart;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

use super::form;
use super::view::{self, Lang, Page, UiLang};
use super::{html, see_other, Csrf, UiError, UiUser};
use crate::documents::ismap::{Changed, Entry};
use crate::error::ApiError;
use crate::routes::api::evidence::too_large;
use crate::routes::api::ismap::{access, parse_mapping};
use crate::services::document_trail::Actor;
use crate::services::ismap::{self, ImportInput, ImportView};
use crate::startup::AppState;

/// Which import to show, and what just happened.
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    pub import: Option<String>,
    pub done: Option<String>,
}

fn changed_rows<T: std::fmt::Display>(list: &[Changed<T>]) -> Vec<Value> {
    list.iter()
        .map(|c| json!({ "number": c.registration_number, "before": c.before.to_string(), "after": c.after.to_string() }))
        .collect()
}

fn entry_text(e: &Entry) -> String {
    format!(
        "{} / {} / {} — {}",
        e.service_name, e.provider, e.registration_date, e.expiry_date
    )
}

/// The difference of one import, group by group.
fn diff_groups(lang: Lang, view: &ImportView) -> Vec<Value> {
    let d = &view.diff;
    let label = |k: &str| lang.text(&format!("ismap.{k}"), k);
    let whole = |list: &[Entry], added: bool| -> Vec<Value> {
        list.iter()
            .map(|e| {
                let (before, after) = if added {
                    ("—".to_owned(), entry_text(e))
                } else {
                    (entry_text(e), "—".to_owned())
                };
                json!({ "number": e.registration_number, "before": before, "after": after })
            })
            .collect()
    };
    [
        ("added", whole(&d.added, true)),
        ("removed", whole(&d.removed, false)),
        (
            "service_name_changed",
            changed_rows(&d.service_name_changed),
        ),
        ("provider_changed", changed_rows(&d.provider_changed)),
        (
            "registration_date_changed",
            changed_rows(&d.registration_date_changed),
        ),
        ("expiry_changed", changed_rows(&d.expiry_changed)),
        ("remarks_changed", changed_rows(&d.remarks_changed)),
    ]
    .into_iter()
    .map(|(key, rows)| {
        json!({
            "key": key,
            "label": label(key),
            "count": rows.len(),
            "rows": rows,
            "number_label": label("registration_number"),
            "before_label": label("before"),
            "after_label": label("after"),
        })
    })
    .collect()
}

#[allow(clippy::too_many_arguments)]
async fn page(
    state: &AppState,
    request: &HttpRequest,
    user: &UiUser,
    selected: Option<&str>,
    done: bool,
    errors: Vec<String>,
    status: StatusCode,
) -> Result<HttpResponse, UiError> {
    let lang = Lang::of(request);
    let fail = |e| UiError::api(e, lang);
    let access = access(&user.0);
    let imports = ismap::list(&state.db, access).await.map_err(fail)?;
    let names = view::user_names(state, imports.iter().map(|i| i.imported_by.clone()))
        .await
        .map_err(fail)?;
    let rows: Vec<Value> = imports
        .iter()
        .map(|i| {
            let c = &i.counts;
            json!({
                "id": i.id,
                "sequence": i.sequence,
                "current": i.current,
                "imported_at": view::moment_label(lang, i.imported_at),
                "imported_by": names.get(&i.imported_by).cloned().unwrap_or_else(|| i.imported_by.clone()),
                "filename": i.filename.clone().unwrap_or_default(),
                "row_count": i.row_count,
                "encoding": i.encoding,
                "summary": format!(
                    "+{} −{} ~{}",
                    c.added,
                    c.removed,
                    c.service_name_changed + c.provider_changed + c.registration_date_changed + c.expiry_changed + c.remarks_changed
                ),
                "sha_short": i.sha256.chars().take(16).collect::<String>(),
            })
        })
        .collect();
    let chosen = match selected {
        Some(id) => imports.iter().find(|i| i.id == id),
        None => imports.first(),
    };
    let selected = chosen.map(|i| {
        json!({
            "title": lang.text("ismap.diff_title", "").replace("{n}", &i.sequence.to_string()),
            "groups": diff_groups(lang, i),
        })
    });
    let csrf = Csrf::of(request);
    let page = Page::for_user(state, &user.0, lang, &csrf.token, "/ismap")
        .await
        .map_err(fail)?;
    let data = page.data(
        &lang.text("ismap.title", ""),
        json!({
            "may_import": access.admin,
            "imports": rows,
            "selected": selected,
            "done": done,
            "errors": errors,
        }),
    );
    let body = view::render("ismap", &data).map_err(fail)?;
    Ok(csrf.apply(html(status, body)))
}

/// `GET /ismap`.
pub async fn list(
    state: web::Data<AppState>,
    request: HttpRequest,
    user: UiUser,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, UiError> {
    page(
        &state,
        &request,
        &user,
        q.import.as_deref(),
        q.done.is_some(),
        Vec::new(),
        StatusCode::OK,
    )
    .await
}

/// `POST /ismap` (multipart: `csrf`, `file`, optional `mapping`): an admin imports a list; the
/// errors, each naming its row and column, are shown above the form and nothing is imported.
pub async fn import(
    state: web::Data<AppState>,
    request: HttpRequest,
    user: UiUser,
    mut payload: Multipart,
) -> Result<HttpResponse, UiError> {
    let lang = Lang::of(&request);
    let fail = |e| UiError::api(e, lang);
    let form::CheckedForm {
        values,
        files,
        too_large: too_big,
    } = form::read_checked(&state, &request, &mut payload).await?;
    let result = async {
        if too_big {
            return Err(too_large(&state));
        }
        let mapping = parse_mapping(values.get("mapping"))?;
        let mut files = files.into_iter();
        let file = files.next().ok_or_else(|| {
            ApiError::invalid_field(
                "file",
                "CSVファイルを選んでください。",
                "Choose the CSV file.",
            )
        })?;
        let rid = uuid::Uuid::new_v4().to_string();
        ismap::import(
            &state.db,
            access(&user.0),
            ImportInput {
                filename: Some(file.filename),
                bytes: file.bytes,
                mapping,
            },
            Actor {
                user_id: &user.0.id,
                at: state.clock.now(),
                request_id: Some(&rid),
            },
        )
        .await
    }
    .await;
    match result {
        Ok(view) => Ok(see_other(&format!("/ismap?import={}&done=1", view.id))),
        Err(e) if e.code() == crate::error::ErrorCode::ValidationFailed => {
            let errors = form::field_errors_of(&e)
                .iter()
                .map(|f| lang.pick(&f.reason.ja, &f.reason.en).to_owned())
                .collect();
            page(
                &state,
                &request,
                &user,
                None,
                false,
                errors,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
        Err(e) => Err(fail(e)),
    }
}
