//! Liveness and readiness probes.

use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::db;
use crate::error::{ApiError, ErrorCode};
use crate::startup::AppState;

/// `GET /healthz`, `GET /readyz`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/healthz").route(web::get().to(healthz)))
        .service(web::resource("/readyz").route(web::get().to(readyz)));
}

/// The process is up.
async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// The database answers and its schema matches this build.
async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    db::ping(&state.db)
        .await
        .map_err(|error| ApiError::new(ErrorCode::DatabaseUnavailable).with_cause(error))?;
    match db::migrations_pending(&state.db).await {
        Ok(0) => Ok(HttpResponse::Ok().json(json!({ "status": "ok" }))),
        Ok(pending) => {
            Err(ApiError::new(ErrorCode::MigrationsPending)
                .with_details(json!({ "pending": pending })))
        }
        Err(error) => Err(ApiError::new(ErrorCode::MigrationsPending)
            .with_details(json!({ "reason": error.to_string() }))
            .with_cause(error)),
    }
}
