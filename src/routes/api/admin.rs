//! Administration: the mail outbox (sent, pending and failed messages; retrying a failed one).
//! Only holders of the `admin` role see these routes; anyone else gets `404`.

use actix_web::{web, HttpResponse};
use entity::outbox::OutboxStatus;
use serde::Deserialize;

use crate::auth::AuthUser;
use crate::error::{ApiError, ErrorCode};
use crate::services::chains::Page;
use crate::services::outbox;
use crate::startup::AppState;

/// `/admin/outbox`, `/admin/outbox/{id}/retry`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/admin/outbox").route(web::get().to(list)))
        .service(web::resource("/admin/outbox/{id}/retry").route(web::post().to(retry)));
}

fn require_admin(user: &AuthUser) -> Result<(), ApiError> {
    if user.has_role("admin") {
        Ok(())
    } else {
        Err(ErrorCode::NotFound.into())
    }
}

/// Query of the outbox list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct OutboxQuery {
    /// `pending`, `sent` or `failed`; all when absent.
    pub status: Option<String>,
    pub page: Option<u64>,
    pub per_page: Option<u64>,
}

fn status(text: Option<&str>) -> Result<Option<OutboxStatus>, ApiError> {
    match text {
        None => Ok(None),
        Some("pending") => Ok(Some(OutboxStatus::Pending)),
        Some("sent") => Ok(Some(OutboxStatus::Sent)),
        Some("failed") => Ok(Some(OutboxStatus::Failed)),
        Some(other) => Err(ApiError::new(ErrorCode::InvalidParameter).with_details(
            serde_json::json!({ "parameter": "status", "value": other, "known": ["pending", "sent", "failed"] }),
        )),
    }
}

/// Mail messages, newest first, with their attempts, last error and where they went.
#[utoipa::path(get, path = "/api/v1/admin/outbox", tag = "admin", params(OutboxQuery),
    responses((status = 200, body = crate::services::chains::Paged<outbox::MessageView>), (status = 404)))]
pub async fn list(
    state: web::Data<AppState>,
    user: AuthUser,
    q: web::Query<OutboxQuery>,
) -> Result<HttpResponse, ApiError> {
    require_admin(&user)?;
    let page = Page {
        page: q.page,
        per_page: q.per_page,
    };
    let list = outbox::list(&state.db, status(q.status.as_deref())?, page).await?;
    Ok(HttpResponse::Ok().json(list))
}

/// Puts a failed message back in the queue for a fresh round of attempts, due now.
#[utoipa::path(post, path = "/api/v1/admin/outbox/{id}/retry", tag = "admin",
    responses((status = 200, body = outbox::MessageView), (status = 404), (status = 409)))]
pub async fn retry(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    require_admin(&user)?;
    let row =
        crate::services::admin::retry_mail(&state.db, &user.id, &id, state.clock.now()).await?;
    Ok(HttpResponse::Ok().json(outbox::MessageView::from(row)))
}
