//! Evidence records, their files, verification, revocation and the expiry sweep's effects.

use actix_multipart::Multipart;
use actix_web::http::header;
use actix_web::{web, HttpResponse};
use futures_util::StreamExt;
use serde::Deserialize;
use tracing_actix_web::RequestId;

use super::applications::app_error;
use super::chains::viewer;
use crate::auth::AuthUser;
use crate::error::{ApiError, ErrorCode};
use crate::services::evidence::{self, EvidenceFilter, EvidenceInput, Upload};
use crate::startup::AppState;
use crate::workflow::Now;

/// `/evidence`, `/evidence/{id}`, `/evidence/{id}/files`, `/evidence/{id}/files/{sha256}`,
/// `/evidence/{id}/verify`, `/evidence/{id}/revoke`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/evidence")
            .route(web::get().to(list))
            .route(web::post().to(create)),
    )
    .service(web::resource("/evidence/{id}").route(web::get().to(get)))
    .service(web::resource("/evidence/{id}/files").route(web::post().to(upload)))
    .service(web::resource("/evidence/{id}/files/{sha256}").route(web::get().to(download)))
    .service(web::resource("/evidence/{id}/verify").route(web::post().to(verify)))
    .service(web::resource("/evidence/{id}/revoke").route(web::post().to(revoke)));
}

/// "Now" by the application's clock.
pub(crate) fn now(state: &AppState) -> Now {
    Now {
        at: state.clock.now(),
        today: state.clock.today_jst(),
    }
}

/// Evidence the caller may see; filter by organisation, kind, expiry.
#[utoipa::path(get, path = "/api/v1/evidence", tag = "evidence", params(EvidenceFilter),
    responses((status = 200, body = crate::services::chains::Paged<evidence::EvidenceView>)))]
pub async fn list(
    state: web::Data<AppState>,
    user: AuthUser,
    q: web::Query<EvidenceFilter>,
) -> Result<HttpResponse, ApiError> {
    let list = evidence::list(&state.db, &viewer(&user), &q, state.clock.today_jst()).await?;
    Ok(HttpResponse::Ok().json(list))
}

/// Record evidence (its files are attached next, then an officer verifies it).
#[utoipa::path(post, path = "/api/v1/evidence", tag = "evidence", request_body = EvidenceInput,
    responses((status = 201, body = evidence::EvidenceView), (status = 422)))]
pub async fn create(
    state: web::Data<AppState>,
    user: AuthUser,
    body: web::Json<EvidenceInput>,
) -> Result<HttpResponse, ApiError> {
    let n = now(&state);
    let view =
        evidence::create(&state.db, &viewer(&user), body.into_inner(), n.at, n.today).await?;
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/api/v1/evidence/{}", view.id)))
        .json(view))
}

/// One evidence record.
#[utoipa::path(get, path = "/api/v1/evidence/{id}", tag = "evidence",
    responses((status = 200, body = evidence::EvidenceView), (status = 404)))]
pub async fn get(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let view = evidence::get(&state.db, &viewer(&user), &id, state.clock.today_jst()).await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::ETAG, format!("\"{}\"", view.version)))
        .json(view))
}

/// Attach files (multipart/form-data, one or more parts named `file`): PDF, PNG or JPEG by
/// content, each at most `max_upload_mb`.
#[utoipa::path(post, path = "/api/v1/evidence/{id}/files", tag = "evidence",
    responses((status = 200, body = evidence::EvidenceView), (status = 413), (status = 415)))]
pub async fn upload(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<String>,
    mut payload: Multipart,
) -> Result<HttpResponse, ApiError> {
    let parts = read_multipart(&mut payload, upload_limit(&state)).await?;
    if parts.too_large {
        return Err(too_large(&state));
    }
    let uploads = parts.files;
    let n = now(&state);
    let view = evidence::attach(&state.db, &viewer(&user), &id, uploads, n.at, n.today).await?;
    Ok(HttpResponse::Ok().json(view))
}

/// The largest accepted file, in bytes.
pub(crate) fn upload_limit(state: &AppState) -> usize {
    usize::try_from(state.settings.max_upload_mb)
        .unwrap_or(usize::MAX)
        .saturating_mul(1024 * 1024)
}

/// The error of a file over the limit.
pub(crate) fn too_large(state: &AppState) -> ApiError {
    ApiError::new(ErrorCode::PayloadTooLarge)
        .with_details(serde_json::json!({ "max_upload_mb": state.settings.max_upload_mb }))
}

/// The largest text part of a multipart form (a field, not a file).
const TEXT_PART_LIMIT: usize = 64 * 1024;

/// What a multipart form held: its text fields in order, and its files (parts named `file`).
#[derive(Debug, Default)]
pub(crate) struct FormParts {
    pub texts: Vec<(String, String)>,
    pub files: Vec<Upload>,
    /// A file was over the limit: reading stopped there (the parts before it are kept).
    pub too_large: bool,
}

/// Reads a multipart form. A file part over `limit` bytes stops the reading with `too_large`
/// set; a text part over 64 KiB, or one that is not UTF-8, is a bad request. A file input left
/// empty by a browser (no name, no bytes) is skipped.
pub(crate) async fn read_multipart(
    payload: &mut Multipart,
    limit: usize,
) -> Result<FormParts, ApiError> {
    let bad = |e: String| ApiError::new(ErrorCode::BadRequest).with_cause(e);
    let mut parts = FormParts::default();
    while let Some(field) = payload.next().await {
        let mut field = field.map_err(|e| bad(e.to_string()))?;
        let name = field.name().unwrap_or_default().to_owned();
        let filename = field
            .content_disposition()
            .and_then(|cd| cd.get_filename().map(str::to_owned));
        let is_file = name == "file";
        let cap = if is_file { limit } else { TEXT_PART_LIMIT };
        let mut bytes = Vec::new();
        while let Some(chunk) = field.next().await {
            let chunk = chunk.map_err(|e| bad(e.to_string()))?;
            if bytes.len() + chunk.len() > cap {
                if is_file {
                    parts.too_large = true;
                    return Ok(parts);
                }
                return Err(bad(format!("the form field {name} is too long")));
            }
            bytes.extend_from_slice(&chunk);
        }
        if is_file {
            let filename = filename.unwrap_or_default();
            if filename.is_empty() && bytes.is_empty() {
                continue;
            }
            parts.files.push(Upload { filename, bytes });
        } else if filename.is_none() {
            let text = String::from_utf8(bytes).map_err(|e| bad(e.to_string()))?;
            parts.texts.push((name, text));
        }
    }
    Ok(parts)
}

/// Download a file: always as an attachment, never sniffed by the browser.
#[utoipa::path(get, path = "/api/v1/evidence/{id}/files/{sha256}", tag = "evidence",
    responses((status = 200, description = "the file"), (status = 404)))]
pub async fn download(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (id, sha) = path.into_inner();
    let (content, filename) = evidence::download(&state.db, &viewer(&user), &id, &sha).await?;
    Ok(attachment(content, &filename))
}

/// A stored file as a download: always an attachment, never sniffed or rendered by the browser.
pub(crate) fn attachment(content: entity::file::Model, filename: &str) -> HttpResponse {
    super::documents::download(&content.media_type, filename)
        .insert_header((header::CACHE_CONTROL, "private, no-store"))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; sandbox",
        ))
        .body(content.content)
}

/// The body of verify and revoke.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionBody {
    /// The record version the caller saw.
    pub version: Option<i64>,
    /// Why (required to revoke).
    pub reason: Option<String>,
}

/// An officer verifies the record.
#[utoipa::path(post, path = "/api/v1/evidence/{id}/verify", tag = "evidence",
    request_body = DecisionBody,
    responses((status = 200, body = evidence::EvidenceView), (status = 403), (status = 409)))]
pub async fn verify(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<String>,
    body: web::Json<DecisionBody>,
) -> Result<HttpResponse, ApiError> {
    let n = now(&state);
    let view =
        evidence::verify(&state.db, &viewer(&user), &id, body.version, n.at, n.today).await?;
    Ok(HttpResponse::Ok().json(view))
}

/// An officer revokes the record; nodes relying on it are suspended with their descendants.
#[utoipa::path(post, path = "/api/v1/evidence/{id}/revoke", tag = "evidence",
    request_body = DecisionBody,
    responses((status = 200, body = evidence::RevokeOutcome), (status = 403), (status = 422)))]
pub async fn revoke(
    state: web::Data<AppState>,
    user: AuthUser,
    request_id: RequestId,
    id: web::Path<String>,
    body: web::Json<DecisionBody>,
) -> Result<HttpResponse, ApiError> {
    let rid = request_id.to_string();
    let out = evidence::revoke(
        &state.db,
        &state.workflows,
        &viewer(&user),
        &id,
        body.reason.as_deref().unwrap_or_default(),
        body.version,
        now(&state),
        Some(&rid),
    )
    .await
    .map_err(app_error)?;
    Ok(HttpResponse::Ok().json(out))
}

/// The parts named `file` of a multipart body (other parts, such as a form's CSRF token, are
/// read and ignored); a file over `max_upload_mb` stops the upload with `payload_too_large`.
pub(crate) async fn file_parts(
    mut payload: Multipart,
    max_upload_mb: u32,
) -> Result<Vec<Upload>, ApiError> {
    let limit = usize::try_from(max_upload_mb)
        .unwrap_or(usize::MAX)
        .saturating_mul(1024 * 1024);
    let parts = read_multipart(&mut payload, limit).await?;
    if parts.too_large {
        return Err(ApiError::new(ErrorCode::PayloadTooLarge)
            .with_details(serde_json::json!({ "max_upload_mb": max_upload_mb })));
    }
    Ok(parts.files)
}
