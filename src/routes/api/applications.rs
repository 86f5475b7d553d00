//! Subcontract applications: file one (for one or many municipalities), read it, act on it,
//! and see the evidence checklist of a decision.

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use tracing_actix_web::RequestId;

use super::chains::viewer;
use super::instances::{acting, api_error};
use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::services::applications::{
    self, AppError, ApplicationEvent, ApplicationFilter, ApplicationInput, ApplicationUpdate,
};
use crate::services::chains::Page;
use crate::startup::AppState;

/// `/applications`, `/applications/{id}`, `/applications/{id}/events`,
/// `/applications/{id}/targets/{target}/checklist`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/applications")
            .route(web::get().to(list))
            .route(web::post().to(create)),
    )
    .service(
        web::resource("/applications/{id}")
            .route(web::get().to(get))
            .route(web::patch().to(update)),
    )
    .service(web::resource("/applications/{id}/events").route(web::post().to(fire)))
    .service(
        web::resource("/applications/{id}/targets/{target}/checklist")
            .route(web::get().to(checklist)),
    );
}

/// The one mapping from application failures to API errors.
pub(crate) fn app_error(e: AppError) -> ApiError {
    match e {
        AppError::Api(e) => e,
        AppError::Instance(e) => api_error(e),
    }
}

/// Query of the application list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ListQuery {
    /// Workflow state of a target (`draft`, `endorsement`, `decision`, `permitted`, …).
    pub state: Option<String>,
    /// Applicant, proposed contractor or deciding municipality.
    pub organisation: Option<String>,
    /// Tier of the node applied for.
    pub tier: Option<i32>,
    pub page: Option<u64>,
    pub per_page: Option<u64>,
}

/// Applications the caller may see, newest first.
#[utoipa::path(get, path = "/api/v1/applications", tag = "applications", params(ListQuery),
    responses((status = 200, body = crate::services::chains::Paged<applications::ApplicationView>)))]
pub async fn list(
    state: web::Data<AppState>,
    user: AuthUser,
    request_id: RequestId,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let rid = request_id.to_string();
    let q = q.into_inner();
    let filter = ApplicationFilter {
        state: q.state,
        organisation: q.organisation,
        tier: q.tier,
    };
    let page = Page {
        page: q.page,
        per_page: q.per_page,
    };
    let list = applications::list(
        &state.db,
        &state.workflows,
        &viewer(&user),
        &filter,
        page,
        &acting(&state, &user, &rid),
    )
    .await
    .map_err(app_error)?;
    Ok(HttpResponse::Ok().json(list))
}

/// File a subcontract application (再委託申請) for one or several municipalities' chains.
#[utoipa::path(post, path = "/api/v1/applications", tag = "applications",
    request_body = ApplicationInput,
    responses((status = 201, body = applications::ApplicationView),
        (status = 422, description = "validation_failed: every invalid field")))]
pub async fn create(
    state: web::Data<AppState>,
    user: AuthUser,
    request_id: RequestId,
    body: web::Json<ApplicationInput>,
) -> Result<HttpResponse, ApiError> {
    let rid = request_id.to_string();
    let view = applications::create(
        &state.db,
        &state.workflows,
        &viewer(&user),
        body.into_inner(),
        &acting(&state, &user, &rid),
    )
    .await
    .map_err(app_error)?;
    Ok(HttpResponse::Created()
        .insert_header((
            header::LOCATION,
            format!("/api/v1/applications/{}", view.id),
        ))
        .json(view))
}

/// One application, with the targets the caller may see.
#[utoipa::path(get, path = "/api/v1/applications/{id}", tag = "applications",
    responses((status = 200, body = applications::ApplicationView), (status = 404)))]
pub async fn get(
    state: web::Data<AppState>,
    user: AuthUser,
    request_id: RequestId,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let rid = request_id.to_string();
    let view = applications::get(
        &state.db,
        &state.workflows,
        &viewer(&user),
        &id,
        &acting(&state, &user, &rid),
    )
    .await
    .map_err(app_error)?;
    Ok(HttpResponse::Ok().json(view))
}

/// Correct the fields of an application while every target is a draft (before submission or
/// after a return).
#[utoipa::path(patch, path = "/api/v1/applications/{id}", tag = "applications",
    request_body = ApplicationUpdate,
    responses((status = 200, body = applications::ApplicationView),
        (status = 409, description = "event_not_applicable (not a draft), stale_version"),
        (status = 422, description = "validation_failed")))]
pub async fn update(
    state: web::Data<AppState>,
    user: AuthUser,
    request_id: RequestId,
    id: web::Path<String>,
    body: web::Json<ApplicationUpdate>,
) -> Result<HttpResponse, ApiError> {
    let rid = request_id.to_string();
    let view = applications::update(
        &state.db,
        &state.workflows,
        &viewer(&user),
        &id,
        body.into_inner(),
        &acting(&state, &user, &rid),
    )
    .await
    .map_err(app_error)?;
    Ok(HttpResponse::Ok().json(view))
}

/// Act on an application: submit, endorse, approve, return, reject, withdraw, suspend,
/// reinstate, revoke, terminate, and the engine's proxy / skip / pull_up / recall.
#[utoipa::path(post, path = "/api/v1/applications/{id}/events", tag = "applications",
    request_body = ApplicationEvent,
    responses((status = 200, body = applications::EventOutcome),
        (status = 403, description = "transition_forbidden"),
        (status = 409, description = "event_not_applicable, concurrent_update, stale_version"),
        (status = 422, description = "transition_rejected: details.unmet lists every unmet requirement")))]
pub async fn fire(
    state: web::Data<AppState>,
    user: AuthUser,
    request_id: RequestId,
    id: web::Path<String>,
    body: web::Json<ApplicationEvent>,
) -> Result<HttpResponse, ApiError> {
    let rid = request_id.to_string();
    let outcome = applications::fire(
        &state.db,
        &state.workflows,
        &viewer(&user),
        &id,
        &body,
        &acting(&state, &user, &rid),
    )
    .await
    .map_err(app_error)?;
    Ok(HttpResponse::Ok().json(outcome))
}

/// The evidence checklist of one target's decision: per tier and requirement, met or why not;
/// the unmet list a decision would be refused with; and warnings (evidence expiring within
/// the node's period).
#[utoipa::path(get, path = "/api/v1/applications/{id}/targets/{target}/checklist",
    tag = "applications", responses((status = 200), (status = 404)))]
pub async fn checklist(
    state: web::Data<AppState>,
    user: AuthUser,
    request_id: RequestId,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let rid = request_id.to_string();
    let (id, target) = path.into_inner();
    let list = applications::checklist(
        &state.db,
        &state.workflows,
        &viewer(&user),
        &id,
        &target,
        &acting(&state, &user, &rid),
    )
    .await
    .map_err(app_error)?;
    Ok(HttpResponse::Ok().json(list))
}
