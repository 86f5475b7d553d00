//! The ISMAP cloud service list: imports (admins), their history and differences (admins and
//! municipal staff; anyone else `404`).

use std::collections::BTreeMap;

use actix_multipart::Multipart;
use actix_web::{web, HttpResponse};
use tracing_actix_web::RequestId;

use super::chains::viewer;
use super::evidence::{read_multipart, too_large, upload_limit};
use crate::auth::AuthUser;
use crate::documents::ismap::Entry;
use crate::error::{ApiError, ErrorCode};
use crate::services::document_trail::Actor;
use crate::services::ismap::{self, Access, ImportInput, ImportView};
use crate::startup::AppState;

/// `/ismap/imports`, `/ismap/imports/{id}`, `/ismap/imports/{id}/entries`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/ismap/imports")
            .route(web::get().to(list))
            .route(web::post().to(import)),
    )
    .service(web::resource("/ismap/imports/{id}").route(web::get().to(get)))
    .service(web::resource("/ismap/imports/{id}/entries").route(web::get().to(entries)));
}

/// The caller's access to the list.
pub(crate) fn access(user: &AuthUser) -> Access {
    Access::of(&viewer(user), user.has_role("admin"))
}

/// A column mapping sent with an upload: a JSON object from field to header.
pub(crate) fn parse_mapping(text: &str) -> Result<Option<BTreeMap<String, String>>, ApiError> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    serde_json::from_str(text).map(Some).map_err(|_| {
        ApiError::invalid_field(
            "mapping",
            "列の対応付けは {\"registration_number\": \"見出し\", …} の形のJSONで指定してください。",
            "Give the column mapping as JSON: {\"registration_number\": \"header\", …}.",
        )
    })
}

/// Import the ISMAP cloud service list (multipart/form-data: the CSV as part `file`; optionally
/// a part `mapping`, JSON from field to header). UTF-8 with or without BOM, or Shift_JIS.
/// Admins only (municipal staff `403`, anyone else `404`). Any error names its row and column,
/// and nothing is imported.
#[utoipa::path(post, path = "/api/v1/ismap/imports", tag = "ismap",
    responses((status = 201, body = ImportView), (status = 403), (status = 404),
        (status = 409, description = "concurrent_update: another import took the number; retry"),
        (status = 413), (status = 422, description = "validation_failed: each row and column named")))]
pub async fn import(
    state: web::Data<AppState>,
    user: AuthUser,
    request_id: RequestId,
    mut payload: Multipart,
) -> Result<HttpResponse, ApiError> {
    let access = access(&user);
    // Refuse before reading a body the caller may not send.
    if !access.admin {
        return Err(if access.municipal {
            ErrorCode::Forbidden
        } else {
            ErrorCode::NotFound
        }
        .into());
    }
    let parts = read_multipart(&mut payload, upload_limit(&state)).await?;
    if parts.too_large {
        return Err(too_large(&state));
    }
    let mut files = parts.files.into_iter();
    let (Some(file), None) = (files.next(), files.next()) else {
        return Err(ApiError::invalid_field(
            "file",
            "CSVファイルを1つ、file として送ってください。",
            "Send exactly one CSV file, as the part file.",
        ));
    };
    let mapping = match parts.texts.iter().find(|(name, _)| name == "mapping") {
        Some((_, text)) => parse_mapping(text)?,
        None => None,
    };
    let rid = request_id.to_string();
    let view = ismap::import(
        &state.db,
        access,
        ImportInput {
            filename: Some(file.filename),
            bytes: file.bytes,
            mapping,
        },
        Actor {
            user_id: &user.id,
            at: state.clock.now(),
            request_id: Some(&rid),
        },
    )
    .await?;
    Ok(HttpResponse::Created().json(view))
}

/// Every import, newest first (the first is the current list), with its difference counts.
#[utoipa::path(get, path = "/api/v1/ismap/imports", tag = "ismap",
    responses((status = 200, body = Vec<ImportView>), (status = 404)))]
pub async fn list(state: web::Data<AppState>, user: AuthUser) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(ismap::list(&state.db, access(&user)).await?))
}

/// One import with its difference from the previous one.
#[utoipa::path(get, path = "/api/v1/ismap/imports/{id}", tag = "ismap",
    responses((status = 200, body = ImportView), (status = 404)))]
pub async fn get(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(ismap::get(&state.db, access(&user), &id).await?))
}

/// The entries of one import, by registration number.
#[utoipa::path(get, path = "/api/v1/ismap/imports/{id}/entries", tag = "ismap",
    responses((status = 200, body = Vec<Entry>), (status = 404)))]
pub async fn entries(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(ismap::entries(&state.db, access(&user), &id).await?))
}
