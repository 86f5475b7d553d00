//! Organisations, consignment items and their chains.

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use serde::Deserialize;

use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::services::access::Viewer;
use crate::services::chains::{self, CloudClassificationInput, ItemInput, OrganisationInput, Page};
use crate::startup::AppState;

/// `/organisations`, `/items`, `/items/{id}/tree`, `/nodes/{id}`, `/nodes/{id}/classification`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/organisations")
            .route(web::get().to(list_organisations))
            .route(web::post().to(create_organisation)),
    )
    .service(web::resource("/organisations/{id}").route(web::get().to(get_organisation)))
    .service(
        web::resource("/items")
            .route(web::get().to(list_items))
            .route(web::post().to(create_item)),
    )
    .service(web::resource("/items/{id}").route(web::get().to(get_item)))
    .service(web::resource("/items/{id}/tree").route(web::get().to(item_tree)))
    .service(web::resource("/nodes/{id}").route(web::get().to(get_node)))
    .service(web::resource("/nodes/{id}/classification").route(web::post().to(classify_node)));
}

pub(crate) fn viewer(user: &AuthUser) -> Viewer {
    Viewer::new(&user.id, &user.grants)
}

/// Filter of the organisation list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct OrganisationQuery {
    /// Only organisations of this kind.
    pub kind: Option<String>,
    pub page: Option<u64>,
    pub per_page: Option<u64>,
}

/// List the organisation directory.
#[utoipa::path(get, path = "/api/v1/organisations", tag = "organisations",
    params(OrganisationQuery),
    responses((status = 200, body = chains::Paged<chains::OrganisationView>)))]
pub async fn list_organisations(
    state: web::Data<AppState>,
    user: AuthUser,
    q: web::Query<OrganisationQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = Page {
        page: q.page,
        per_page: q.per_page,
    };
    let list =
        chains::list_organisations(&state.db, &viewer(&user), q.kind.as_deref(), page).await?;
    Ok(HttpResponse::Ok().json(list))
}

/// Register an organisation.
#[utoipa::path(post, path = "/api/v1/organisations", tag = "organisations",
    request_body = OrganisationInput,
    responses((status = 201, body = chains::OrganisationView),
        (status = 422, description = "validation_failed: every invalid field")))]
pub async fn create_organisation(
    state: web::Data<AppState>,
    user: AuthUser,
    body: web::Json<OrganisationInput>,
) -> Result<HttpResponse, ApiError> {
    let view = chains::create_organisation(
        &state.db,
        &viewer(&user),
        body.into_inner(),
        state.clock.now(),
    )
    .await?;
    Ok(HttpResponse::Created()
        .insert_header((
            header::LOCATION,
            format!("/api/v1/organisations/{}", view.id),
        ))
        .json(view))
}

/// One organisation.
#[utoipa::path(get, path = "/api/v1/organisations/{id}", tag = "organisations",
    responses((status = 200, body = chains::OrganisationView), (status = 404)))]
pub async fn get_organisation(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(chains::get_organisation(&state.db, &viewer(&user), &id).await?))
}

/// Consignment items the caller may see.
#[utoipa::path(get, path = "/api/v1/items", tag = "items", params(Page),
    responses((status = 200, body = chains::Paged<chains::ItemView>)))]
pub async fn list_items(
    state: web::Data<AppState>,
    user: AuthUser,
    page: web::Query<Page>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(chains::list_items(&state.db, &viewer(&user), *page).await?))
}

/// Register a consignment item with its tier-1 contractor.
#[utoipa::path(post, path = "/api/v1/items", tag = "items", request_body = ItemInput,
    responses((status = 201, body = chains::ItemView), (status = 403), (status = 422)))]
pub async fn create_item(
    state: web::Data<AppState>,
    user: AuthUser,
    body: web::Json<ItemInput>,
) -> Result<HttpResponse, ApiError> {
    let view = chains::create_item(
        &state.db,
        &viewer(&user),
        body.into_inner(),
        state.clock.now(),
    )
    .await?;
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/api/v1/items/{}", view.id)))
        .json(view))
}

/// One consignment item.
#[utoipa::path(get, path = "/api/v1/items/{id}", tag = "items",
    responses((status = 200, body = chains::ItemView), (status = 404)))]
pub async fn get_item(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let item = chains::get_item(&state.db, &viewer(&user), &id).await?;
    Ok(HttpResponse::Ok().json(chains::ItemView::from(item)))
}

/// The whole chain of an item in one call, cut to what the caller may see.
#[utoipa::path(get, path = "/api/v1/items/{id}/tree", tag = "items",
    responses((status = 200, body = chains::ItemTree), (status = 404)))]
pub async fn item_tree(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(chains::item_tree(&state.db, &viewer(&user), &id).await?))
}

/// One chain node.
#[utoipa::path(get, path = "/api/v1/nodes/{id}", tag = "items",
    responses((status = 200, body = chains::NodeView), (status = 404)))]
pub async fn get_node(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (view, _) = chains::get_node(&state.db, &viewer(&user), &id).await?;
    Ok(HttpResponse::Ok().json(view))
}

/// The body of `POST /nodes/{id}/classification`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClassificationBody {
    pub classification: CloudClassificationInput,
    /// The node version the caller saw.
    pub version: Option<i64>,
}

/// The root municipality classifies a cloud node: it handles data (a tier) or has no access.
#[utoipa::path(post, path = "/api/v1/nodes/{id}/classification", tag = "items",
    request_body = ClassificationBody,
    responses((status = 200, body = chains::NodeView), (status = 403), (status = 404), (status = 409)))]
pub async fn classify_node(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<String>,
    body: web::Json<ClassificationBody>,
) -> Result<HttpResponse, ApiError> {
    let view = chains::classify_node(
        &state.db,
        &viewer(&user),
        &id,
        body.classification,
        body.version,
        state.clock.now(),
    )
    .await?;
    Ok(HttpResponse::Ok().json(view))
}
