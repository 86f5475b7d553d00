//! The implementation structure chart (履行体制図) of a consignment item: as it stands (JSON,
//! SVG or the A4 landscape print view), its versions, their submission; and a node's chart
//! fields.

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use tracing_actix_web::RequestId;

use super::chains::viewer;
use super::documents::print_view;
use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::services::document_trail::Actor;
use crate::services::structure_chart::{
    self as charts, ChartView, NodeStructureInput, NodeStructureView, VersionSummary, VersionView,
};
use crate::startup::AppState;

/// `/items/{id}/structure-chart…`, `/nodes/{id}/structure`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/items/{id}/structure-chart").route(web::get().to(current)))
        .service(
            web::resource("/items/{id}/structure-chart/versions")
                .route(web::get().to(list_versions))
                .route(web::post().to(create_version)),
        )
        .service(
            web::resource("/items/{id}/structure-chart/versions/{number}")
                .route(web::get().to(get_version)),
        )
        .service(
            web::resource("/items/{id}/structure-chart/versions/{number}/submit")
                .route(web::post().to(submit_version)),
        )
        .service(web::resource("/nodes/{id}/structure").route(web::put().to(set_node_structure)));
}

/// The output format of a chart.
#[derive(Debug, Clone, Copy, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ChartFormat {
    #[default]
    Json,
    Svg,
    Html,
}

/// How to answer.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ChartQuery {
    #[serde(default)]
    pub format: ChartFormat,
}

fn svg(body: String) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("image/svg+xml; charset=utf-8")
        .insert_header((header::CONTENT_SECURITY_POLICY, "default-src 'none'"))
        .body(body)
}

/// Who acts on a document, now, under the request.
pub(crate) fn actor<'a>(state: &AppState, user: &'a AuthUser, rid: &'a str) -> Actor<'a> {
    Actor {
        user_id: &user.id,
        at: state.clock.now(),
        request_id: Some(rid),
    }
}

/// The chart as it stands today, with its differences from the last submitted version (changed
/// fields, added and removed nodes) and whether it must be resubmitted; `format=svg` or `html`
/// (A4 landscape) draw them marked. The item's municipality's staff only (others `404`).
#[utoipa::path(get, path = "/api/v1/items/{id}/structure-chart", tag = "documents", params(ChartQuery),
    responses((status = 200, body = ChartView), (status = 404)))]
pub async fn current(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<String>,
    q: web::Query<ChartQuery>,
) -> Result<HttpResponse, ApiError> {
    let view = charts::current(&state.db, &viewer(&user), &id, state.clock.today_jst()).await?;
    Ok(match q.format {
        ChartFormat::Json => HttpResponse::Ok().json(view),
        ChartFormat::Svg => svg(view.svg()),
        ChartFormat::Html => print_view(view.html()),
    })
}

/// Store the chart as it stands as the next version (`201`); when the newest version already
/// shows the same structure, that one (`200`). Officers, chiefs, managers of the municipality.
#[utoipa::path(post, path = "/api/v1/items/{id}/structure-chart/versions", tag = "documents",
    responses((status = 201, body = VersionSummary), (status = 200, body = VersionSummary),
        (status = 403), (status = 404)))]
pub async fn create_version(
    state: web::Data<AppState>,
    user: AuthUser,
    request_id: RequestId,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let rid = request_id.to_string();
    let (summary, created) = charts::create_version(
        &state.db,
        &viewer(&user),
        &id,
        actor(&state, &user, &rid),
        state.clock.today_jst(),
    )
    .await?;
    Ok(if created {
        HttpResponse::Created().json(summary)
    } else {
        HttpResponse::Ok().json(summary)
    })
}

/// The chart's versions, newest first.
#[utoipa::path(get, path = "/api/v1/items/{id}/structure-chart/versions", tag = "documents",
    responses((status = 200, body = Vec<VersionSummary>), (status = 404)))]
pub async fn list_versions(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(charts::list_versions(&state.db, &viewer(&user), &id).await?))
}

/// One version as stored (`format=svg` gives exactly the bytes its `svg_sha256` hashes).
#[utoipa::path(get, path = "/api/v1/items/{id}/structure-chart/versions/{number}", tag = "documents",
    params(ChartQuery), responses((status = 200, body = VersionView), (status = 404)))]
pub async fn get_version(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<(String, i32)>,
    q: web::Query<ChartQuery>,
) -> Result<HttpResponse, ApiError> {
    let (id, number) = path.into_inner();
    let view = charts::get_version(&state.db, &viewer(&user), &id, number).await?;
    Ok(match q.format {
        ChartFormat::Json => HttpResponse::Ok().json(view),
        ChartFormat::Svg => svg(view.svg()),
        ChartFormat::Html => print_view(view.html()),
    })
}

/// The version the caller saw.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitInput {
    pub version: Option<i64>,
}

/// Mark a version as submitted (the municipality has it on file); audited. Officers, chiefs,
/// managers of the municipality (auditors `403`); `409 conflict` when already submitted.
#[utoipa::path(post, path = "/api/v1/items/{id}/structure-chart/versions/{number}/submit", tag = "documents",
    request_body = SubmitInput,
    responses((status = 200, body = VersionView), (status = 403), (status = 404), (status = 409)))]
pub async fn submit_version(
    state: web::Data<AppState>,
    user: AuthUser,
    request_id: RequestId,
    path: web::Path<(String, i32)>,
    body: Option<web::Json<SubmitInput>>,
) -> Result<HttpResponse, ApiError> {
    let (id, number) = path.into_inner();
    let rid = request_id.to_string();
    let view = charts::submit_version(
        &state.db,
        &viewer(&user),
        &id,
        number,
        body.and_then(|b| b.into_inner().version),
        actor(&state, &user, &rid),
    )
    .await?;
    Ok(HttpResponse::Ok().json(view))
}

/// Record a node's chart fields (responsible person, manager, staff count, work location): the
/// node's contractor, or an officer, chief or manager of its municipality.
#[utoipa::path(put, path = "/api/v1/nodes/{id}/structure", tag = "items",
    request_body = NodeStructureInput,
    responses((status = 200, body = NodeStructureView), (status = 403), (status = 404),
        (status = 409, description = "stale_version"), (status = 422)))]
pub async fn set_node_structure(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<String>,
    body: web::Json<NodeStructureInput>,
) -> Result<HttpResponse, ApiError> {
    let view = charts::set_node_structure(
        &state.db,
        &viewer(&user),
        &id,
        body.into_inner(),
        state.clock.now(),
    )
    .await?;
    Ok(HttpResponse::Ok().json(view))
}
