//! Documents: the PIA report's consignment section as JSON, CSV, XLSX or a print view.

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use serde::Deserialize;

use super::chains::viewer;
use crate::auth::AuthUser;
use crate::documents::pia;
use crate::error::ApiError;
use crate::startup::AppState;

/// `/documents/pia`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/documents/pia").route(web::get().to(pia_section)));
}

/// The output format.
#[derive(Debug, Clone, Copy, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    #[default]
    Json,
    Csv,
    Xlsx,
    Html,
}

/// Which PIA file, and how.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PiaQuery {
    pub municipality: String,
    /// The PIA file's name (特定個人情報ファイル), as recorded on the items.
    pub pia_file: String,
    #[serde(default)]
    pub format: Format,
}

fn attachment(name: &str) -> String {
    crate::domain::files::content_disposition(name)
}

/// 「4. 特定個人情報ファイルの取扱いの委託」 for one PIA file, from the chains (permitted tiers only).
#[utoipa::path(get, path = "/api/v1/documents/pia", tag = "documents", params(PiaQuery),
    responses((status = 200, body = pia::PiaSection, description = "JSON, or CSV (UTF-8 with BOM), XLSX, HTML by `format`"),
        (status = 404)))]
pub async fn pia_section(
    state: web::Data<AppState>,
    user: AuthUser,
    q: web::Query<PiaQuery>,
) -> Result<HttpResponse, ApiError> {
    let section = crate::services::documents::pia_section(
        &state.db,
        &viewer(&user),
        &q.municipality,
        &q.pia_file,
    )
    .await?;
    let stem = format!("PIA_委託_{}_{}", section.municipality, section.pia_file);
    Ok(match q.format {
        Format::Json => HttpResponse::Ok().json(section),
        Format::Csv => HttpResponse::Ok()
            .content_type("text/csv; charset=utf-8")
            .insert_header((
                header::CONTENT_DISPOSITION,
                attachment(&format!("{stem}.csv")),
            ))
            .body(pia::to_csv(&section)),
        Format::Xlsx => HttpResponse::Ok()
            .content_type("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
            .insert_header((
                header::CONTENT_DISPOSITION,
                attachment(&format!("{stem}.xlsx")),
            ))
            .body(pia::to_xlsx(&section).map_err(ApiError::internal)?),
        Format::Html => HttpResponse::Ok()
            .content_type("text/html; charset=utf-8")
            .insert_header((
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'unsafe-inline'",
            ))
            .body(pia::to_html(&section)),
    })
}
