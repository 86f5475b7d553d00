//! Workflow definitions, read-only: the list, one definition as data, and its diagram.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};

use crate::auth::AuthUser;
use crate::error::{ApiError, ErrorCode};
use crate::routes::api::instances::svg;
use crate::startup::AppState;
use crate::workflow::definition::Label;
use crate::workflow::diagram::{self, Lang};
use crate::workflow::runtime::WorkflowRuntime;

/// `/workflows`, `/workflows/{id}/{version}`, `/workflows/{id}/{version}/diagram.svg`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/workflows").route(web::get().to(list)))
        .service(web::resource("/workflows/{id}/{version}").route(web::get().to(describe)))
        .service(
            web::resource("/workflows/{id}/{version}/diagram.svg").route(web::get().to(diagram)),
        );
}

/// One line of the list.
#[derive(Serialize)]
struct Summary {
    id: String,
    version: u32,
    title: Label,
    context: String,
    content_hash: String,
    /// Whether new instances start on this version.
    latest: bool,
}

async fn list(state: web::Data<AppState>, _user: AuthUser) -> web::Json<Vec<Summary>> {
    web::Json(
        state
            .workflows
            .iter()
            .map(|rt| {
                let d = rt.describe();
                Summary {
                    latest: state
                        .workflows
                        .latest(rt.id())
                        .is_some_and(|l| l.version() == rt.version()),
                    id: d.id,
                    version: d.version,
                    title: d.title,
                    context: d.context,
                    content_hash: d.content_hash,
                }
            })
            .collect(),
    )
}

fn find<'s>(
    state: &'s AppState,
    id: &str,
    version: u32,
) -> Result<&'s dyn WorkflowRuntime, ApiError> {
    state
        .workflows
        .get(id, version)
        .map(AsRef::as_ref)
        .ok_or_else(|| ApiError::new(ErrorCode::UnknownWorkflow))
}

async fn describe(
    state: web::Data<AppState>,
    _user: AuthUser,
    path: web::Path<(String, u32)>,
) -> Result<HttpResponse, ApiError> {
    let (id, version) = path.into_inner();
    Ok(HttpResponse::Ok().json(find(&state, &id, version)?.describe()))
}

/// `?state=…` highlights a state; `?lang=en` labels in English.
#[derive(Deserialize)]
struct DiagramQuery {
    state: Option<String>,
    lang: Option<String>,
}

async fn diagram(
    state: web::Data<AppState>,
    _user: AuthUser,
    path: web::Path<(String, u32)>,
    query: web::Query<DiagramQuery>,
) -> Result<HttpResponse, ApiError> {
    let (id, version) = path.into_inner();
    let rt = find(&state, &id, version)?;
    let lang = if query.lang.as_deref() == Some("en") {
        Lang::En
    } else {
        Lang::Ja
    };
    Ok(svg(diagram::render_svg(
        &rt.describe(),
        query.state.as_deref(),
        lang,
    )))
}
