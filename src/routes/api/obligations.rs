//! Obligations: the list and one obligation, the closing record and its file, acceptance and
//! return.

use actix_multipart::Multipart;
use actix_web::{web, HttpResponse};

use super::chains::viewer;
use super::evidence::{attachment, file_parts, now};
use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::schedule::calendar::BusinessCalendar;
use crate::services::obligations::{self, DecisionInput, ObligationFilter, RecordInput};
use crate::startup::AppState;

/// `/obligations`, `/obligations/{id}`, `/obligations/{id}/file`, `/obligations/{id}/record`,
/// `/obligations/{id}/accept`, `/obligations/{id}/return`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/obligations").route(web::get().to(list)))
        .service(web::resource("/obligations/{id}").route(web::get().to(get)))
        .service(
            web::resource("/obligations/{id}/file")
                .route(web::post().to(upload))
                .route(web::get().to(download)),
        )
        .service(web::resource("/obligations/{id}/record").route(web::post().to(record)))
        .service(web::resource("/obligations/{id}/accept").route(web::post().to(accept)))
        .service(web::resource("/obligations/{id}/return").route(web::post().to(return_record)));
}

/// The obligations the caller may see, earliest due first.
#[utoipa::path(get, path = "/api/v1/obligations", tag = "obligations", params(ObligationFilter),
    responses((status = 200, body = crate::services::chains::Paged<obligations::ObligationView>)))]
pub async fn list(
    state: web::Data<AppState>,
    user: AuthUser,
    q: web::Query<ObligationFilter>,
) -> Result<HttpResponse, ApiError> {
    let page = obligations::list(&state.db, &viewer(&user), &q, state.clock.today_jst()).await?;
    Ok(HttpResponse::Ok().json(page))
}

/// One obligation (404 unless the caller's organisation owns it or watches it).
#[utoipa::path(get, path = "/api/v1/obligations/{id}", tag = "obligations",
    responses((status = 200, body = obligations::ObligationView), (status = 404)))]
pub async fn get(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let view = obligations::get(&state.db, &viewer(&user), &id, state.clock.today_jst()).await?;
    Ok(HttpResponse::Ok().json(view))
}

/// The owner attaches the record's file (multipart, one part named `file`; PDF, PNG or JPEG by
/// content), e.g. the attendance list.
#[utoipa::path(post, path = "/api/v1/obligations/{id}/file", tag = "obligations",
    responses((status = 200, body = obligations::ObligationView), (status = 413), (status = 415),
        (status = 422)))]
pub async fn upload(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<String>,
    payload: Multipart,
) -> Result<HttpResponse, ApiError> {
    let max_mb = state.settings.max_upload_mb;
    let mut parts = file_parts(payload, max_mb).await?;
    if parts.len() != 1 {
        return Err(ApiError::invalid_field(
            "file",
            "ファイルを1つ選択してください。",
            "Choose exactly one file.",
        ));
    }
    let part = parts.remove(0);
    let max_bytes = usize::try_from(max_mb)
        .unwrap_or(usize::MAX)
        .saturating_mul(1024 * 1024);
    let view = obligations::attach(
        &state.db,
        &viewer(&user),
        &id,
        &part.filename,
        part.bytes,
        max_bytes,
        now(&state),
    )
    .await?;
    Ok(HttpResponse::Ok().json(view))
}

/// The record's file, as an attachment.
#[utoipa::path(get, path = "/api/v1/obligations/{id}/file", tag = "obligations",
    responses((status = 200, description = "the file"), (status = 404)))]
pub async fn download(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (content, filename) = obligations::download(&state.db, &viewer(&user), &id).await?;
    Ok(attachment(content, &filename))
}

/// The closing record: the owner's attendance record or corrective action (then accepted by
/// the root municipality), or the root municipality's inspection report (closes it at once).
#[utoipa::path(post, path = "/api/v1/obligations/{id}/record", tag = "obligations",
    request_body = RecordInput,
    responses((status = 200, body = obligations::ObligationView), (status = 403), (status = 409),
        (status = 422)))]
pub async fn record(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<String>,
    body: web::Json<RecordInput>,
) -> Result<HttpResponse, ApiError> {
    let mut calendar = BusinessCalendar::new();
    let view = obligations::record(
        &state.db,
        &state.obligation_policy,
        &mut calendar,
        &viewer(&user),
        &id,
        body.into_inner(),
        now(&state),
    )
    .await?;
    Ok(HttpResponse::Ok().json(view))
}

/// An officer of the root municipality accepts the submitted record.
#[utoipa::path(post, path = "/api/v1/obligations/{id}/accept", tag = "obligations",
    request_body = DecisionInput,
    responses((status = 200, body = obligations::ObligationView), (status = 403), (status = 409)))]
pub async fn accept(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<String>,
    body: web::Json<DecisionInput>,
) -> Result<HttpResponse, ApiError> {
    let mut calendar = BusinessCalendar::new();
    let view = obligations::accept(
        &state.db,
        &state.obligation_policy,
        &mut calendar,
        &viewer(&user),
        &id,
        body.into_inner(),
        now(&state),
    )
    .await?;
    Ok(HttpResponse::Ok().json(view))
}

/// An officer of the root municipality returns the submitted record with a reason.
#[utoipa::path(post, path = "/api/v1/obligations/{id}/return", tag = "obligations",
    request_body = DecisionInput,
    responses((status = 200, body = obligations::ObligationView), (status = 403), (status = 409),
        (status = 422)))]
pub async fn return_record(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<String>,
    body: web::Json<DecisionInput>,
) -> Result<HttpResponse, ApiError> {
    let view = obligations::return_record(
        &state.db,
        &viewer(&user),
        &id,
        body.into_inner(),
        now(&state),
    )
    .await?;
    Ok(HttpResponse::Ok().json(view))
}
