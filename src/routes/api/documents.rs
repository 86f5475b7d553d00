//! Documents: the PIA report's consignment section as JSON, CSV, XLSX or a print view; the
//! threshold test (しきい値判断) of a PIA file as JSON or a print view, and its inputs.

use actix_web::http::header;
use actix_web::{web, HttpResponse, HttpResponseBuilder};
use futures_util::TryStreamExt;
use serde::Deserialize;

use super::chains::viewer;
use super::instances::acting;
use crate::auth::AuthUser;
use crate::documents::pia::{self, PiaFormat};
use crate::documents::threshold;
use crate::error::ApiError;
use crate::services::documents;
use crate::startup::AppState;
use tracing_actix_web::RequestId;

/// `/documents/pia`, `/documents/threshold`, `/documents/pia-files`, `/documents/settings`,
/// `/documents/assessments`, `/documents/assessments/{id}/withdraw`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/documents/pia").route(web::get().to(pia_section)))
        .service(web::resource("/documents/threshold").route(web::get().to(threshold_test)))
        .service(
            web::resource("/documents/pia-files")
                .route(web::get().to(list_pia_files))
                .route(web::put().to(set_pia_file)),
        )
        .service(
            web::resource("/documents/settings")
                .route(web::get().to(settings))
                .route(web::put().to(set_settings)),
        )
        .service(
            web::resource("/documents/assessments")
                .route(web::get().to(list_assessments))
                .route(web::post().to(record_assessment)),
        )
        .service(
            web::resource("/documents/assessments/{id}/withdraw")
                .route(web::post().to(withdraw_assessment)),
        );
}

/// A print view's headers: standalone, no script, inline style only.
pub(crate) fn print_view_headers() -> HttpResponseBuilder {
    let mut response = HttpResponse::Ok();
    response
        .content_type("text/html; charset=utf-8")
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'",
        ));
    response
}

/// A print view.
pub(crate) fn print_view(body: String) -> HttpResponse {
    print_view_headers().body(body)
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

/// A download: its content type and its name as an attachment (RFC 6266, with the UTF-8 form
/// for Japanese names), never sniffed; the body, whole or streamed, is the caller's.
pub(crate) fn download(content_type: &str, filename: &str) -> HttpResponseBuilder {
    let mut response = HttpResponse::Ok();
    response
        .content_type(content_type)
        .insert_header((
            header::CONTENT_DISPOSITION,
            crate::domain::files::content_disposition(filename),
        ))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"));
    response
}

/// A streamed export's chunks as a response body (an error cuts the response off).
pub(crate) fn chunks(
    mut body: tokio::sync::mpsc::Receiver<Result<Vec<u8>, ApiError>>,
) -> impl futures_util::Stream<Item = Result<web::Bytes, ApiError>> {
    futures_util::stream::poll_fn(move |cx| body.poll_recv(cx)).map_ok(web::Bytes::from)
}

/// The media type of CSV downloads (UTF-8 with a BOM).
pub(crate) const CSV: &str = "text/csv; charset=utf-8";

/// The media type of XLSX downloads.
pub(crate) const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

/// 「4. 特定個人情報ファイルの取扱いの委託」 for one PIA file, from the chains (permitted tiers only).
#[utoipa::path(get, path = "/api/v1/documents/pia", tag = "documents", params(PiaQuery),
    responses((status = 200, body = pia::PiaSection, description = "JSON, or CSV (UTF-8 with BOM), XLSX, HTML by `format`"),
        (status = 404)))]
pub async fn pia_section(
    state: web::Data<AppState>,
    user: AuthUser,
    q: web::Query<PiaQuery>,
) -> Result<HttpResponse, ApiError> {
    let format = match q.format {
        Format::Json => PiaFormat::Json,
        Format::Csv => PiaFormat::Csv,
        Format::Xlsx => PiaFormat::Xlsx,
        Format::Html => PiaFormat::Html,
    };
    let export = crate::services::documents::export_pia(
        &state.reader,
        &viewer(&user),
        &q.municipality,
        &q.pia_file,
        format,
    )
    .await?;
    let stem = format!("PIA_委託_{}_{}", export.municipality, export.pia_file);
    let body = chunks(export.body);
    let mut response = match q.format {
        Format::Json => {
            let mut r = HttpResponse::Ok();
            r.content_type("application/json");
            r
        }
        Format::Csv => download(CSV, &format!("{stem}.csv")),
        Format::Xlsx => download(XLSX, &format!("{stem}.xlsx")),
        Format::Html => print_view_headers(),
    };
    Ok(response.streaming(body))
}

/// The output format of a view-only document.
#[derive(Debug, Clone, Copy, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ViewFormat {
    #[default]
    Json,
    Html,
}

/// Which PIA file, and how.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ThresholdQuery {
    pub municipality: String,
    /// The PIA file's name (特定個人情報ファイル), as recorded on the items.
    pub pia_file: String,
    #[serde(default)]
    pub format: ViewFormat,
}

/// The threshold test (しきい値判断) of one PIA file, recomputed from the current chains: people
/// in the file, handlers (the municipality's staff and every contractor's, at each bracket's
/// lower bound), a serious incident in the last year, and the assessment required.
#[utoipa::path(get, path = "/api/v1/documents/threshold", tag = "documents", params(ThresholdQuery),
    responses((status = 200, body = threshold::ThresholdTest, description = "JSON, or the print view (HTML) by `format`"),
        (status = 404)))]
pub async fn threshold_test(
    state: web::Data<AppState>,
    user: AuthUser,
    q: web::Query<ThresholdQuery>,
) -> Result<HttpResponse, ApiError> {
    let test = documents::threshold_test(
        &state.db,
        &viewer(&user),
        &q.municipality,
        &q.pia_file,
        state.clock.today_jst(),
    )
    .await?;
    Ok(match q.format {
        ViewFormat::Json => HttpResponse::Ok().json(test),
        ViewFormat::Html => print_view(threshold::to_html(&test)),
    })
}

/// Which municipality.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct MunicipalityQuery {
    pub municipality: String,
}

/// The PIA files of a municipality with their recorded threshold inputs.
#[utoipa::path(get, path = "/api/v1/documents/pia-files", tag = "documents", params(MunicipalityQuery),
    responses((status = 200, body = Vec<documents::PiaFileView>), (status = 404)))]
pub async fn list_pia_files(
    state: web::Data<AppState>,
    user: AuthUser,
    q: web::Query<MunicipalityQuery>,
) -> Result<HttpResponse, ApiError> {
    let list = documents::list_pia_files(&state.db, &viewer(&user), &q.municipality).await?;
    Ok(HttpResponse::Ok().json(list))
}

/// Record (or replace) a PIA file's threshold inputs: 対象人数, the municipality's own staff,
/// いつ時点の計数か.
#[utoipa::path(put, path = "/api/v1/documents/pia-files", tag = "documents",
    request_body = documents::PiaFileInput,
    responses((status = 200, body = documents::PiaFileView), (status = 403), (status = 404),
        (status = 409, description = "stale_version"), (status = 422)))]
pub async fn set_pia_file(
    state: web::Data<AppState>,
    user: AuthUser,
    body: web::Json<documents::PiaFileInput>,
) -> Result<HttpResponse, ApiError> {
    let view = documents::set_pia_file(
        &state.db,
        &viewer(&user),
        body.into_inner(),
        state.clock.now(),
        state.clock.today_jst(),
    )
    .await?;
    Ok(HttpResponse::Ok().json(view))
}

/// The municipality's document settings.
#[utoipa::path(get, path = "/api/v1/documents/settings", tag = "documents", params(MunicipalityQuery),
    responses((status = 200, body = documents::SettingsView), (status = 404)))]
pub async fn settings(
    state: web::Data<AppState>,
    user: AuthUser,
    q: web::Query<MunicipalityQuery>,
) -> Result<HttpResponse, ApiError> {
    let view = documents::settings(&state.db, &viewer(&user), &q.municipality).await?;
    Ok(HttpResponse::Ok().json(view))
}

/// Replace the municipality's document settings.
#[utoipa::path(put, path = "/api/v1/documents/settings", tag = "documents",
    request_body = documents::SettingsInput,
    responses((status = 200, body = documents::SettingsView), (status = 403), (status = 404),
        (status = 409, description = "stale_version"), (status = 422)))]
pub async fn set_settings(
    state: web::Data<AppState>,
    user: AuthUser,
    body: web::Json<documents::SettingsInput>,
) -> Result<HttpResponse, ApiError> {
    let view = documents::set_settings(
        &state.db,
        &viewer(&user),
        body.into_inner(),
        state.clock.now(),
        state.clock.today_jst(),
    )
    .await?;
    Ok(HttpResponse::Ok().json(view))
}

/// Which municipality's assessments, optionally of one PIA file.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AssessmentQuery {
    pub municipality: String,
    pub pia_file: Option<String>,
}

/// The assessments a municipality recorded before significant changes, newest first.
#[utoipa::path(get, path = "/api/v1/documents/assessments", tag = "documents", params(AssessmentQuery),
    responses((status = 200, body = Vec<documents::AssessmentView>), (status = 404)))]
pub async fn list_assessments(
    state: web::Data<AppState>,
    user: AuthUser,
    q: web::Query<AssessmentQuery>,
) -> Result<HttpResponse, ApiError> {
    let list = documents::list_assessments(
        &state.db,
        &viewer(&user),
        &q.municipality,
        q.pia_file.as_deref(),
    )
    .await?;
    Ok(HttpResponse::Ok().json(list))
}

/// Record the assessment (特定個人情報保護評価) made in advance for the significant changes a
/// pending subcontract would make; audited in the permission's trail. Until it is recorded the
/// permission is refused with `significant_change_not_assessed`.
#[utoipa::path(post, path = "/api/v1/documents/assessments", tag = "documents",
    request_body = documents::AssessmentInput,
    responses((status = 201, body = documents::AssessmentView), (status = 403), (status = 404),
        (status = 422, description = "validation_failed: e.g. the node makes no significant change")))]
pub async fn record_assessment(
    state: web::Data<AppState>,
    user: AuthUser,
    request_id: RequestId,
    body: web::Json<documents::AssessmentInput>,
) -> Result<HttpResponse, ApiError> {
    let rid = request_id.to_string();
    let view = documents::record_assessment(
        &state.db,
        &viewer(&user),
        body.into_inner(),
        &acting(&state, &user, &rid),
    )
    .await?;
    Ok(HttpResponse::Created().json(view))
}

/// Withdraw an assessment recorded by mistake, with the reason, while its subcontract still
/// awaits the decision: kept with who, when and why, audited in the permission's trail; the
/// permission is then blocked again until an assessment is recorded.
#[utoipa::path(post, path = "/api/v1/documents/assessments/{id}/withdraw", tag = "documents",
    params(("id" = String, Path, description = "the assessment")),
    request_body = documents::WithdrawalInput,
    responses((status = 200, body = documents::AssessmentView), (status = 403), (status = 404),
        (status = 409, description = "conflict: already withdrawn, or the subcontract was decided"),
        (status = 422, description = "validation_failed: `reason` blank")))]
pub async fn withdraw_assessment(
    state: web::Data<AppState>,
    user: AuthUser,
    request_id: RequestId,
    id: web::Path<String>,
    body: web::Json<documents::WithdrawalInput>,
) -> Result<HttpResponse, ApiError> {
    let rid = request_id.to_string();
    let view = documents::withdraw_assessment(
        &state.db,
        &viewer(&user),
        &id,
        body.into_inner(),
        &acting(&state, &user, &rid),
    )
    .await?;
    Ok(HttpResponse::Ok().json(view))
}
