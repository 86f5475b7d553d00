//! The OpenAPI 3 document of the domain API, generated from the handlers and types.

use actix_web::{web, HttpResponse};
use utoipa::OpenApi;

use super::{
    admin, applications, chains, changes, documents, evidence, ismap, obligations, structure_chart,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "itaku API",
        description = "委託・再委託の許諾管理 / Consignments, subcontract chains and their permission. \
            Errors share one shape: {code, message: {ja, en}, details}.",
        version = "1"
    ),
    paths(
        chains::list_organisations,
        chains::create_organisation,
        chains::get_organisation,
        chains::list_items,
        chains::create_item,
        chains::get_item,
        chains::item_tree,
        chains::get_node,
        chains::classify_node,
        applications::list,
        applications::create,
        applications::get,
        applications::update,
        applications::fire,
        applications::checklist,
        evidence::list,
        evidence::create,
        evidence::get,
        evidence::upload,
        evidence::download,
        evidence::verify,
        evidence::revoke,
        obligations::list,
        obligations::get,
        obligations::upload,
        obligations::download,
        obligations::record,
        obligations::accept,
        obligations::return_record,
        documents::pia_section,
        documents::threshold_test,
        documents::list_pia_files,
        documents::set_pia_file,
        documents::settings,
        documents::set_settings,
        documents::list_assessments,
        documents::record_assessment,
        documents::withdraw_assessment,
        changes::changes,
        changes::committee_submission,
        changes::list_submissions,
        changes::mark_submitted,
        ismap::import,
        ismap::list,
        ismap::get,
        ismap::entries,
        structure_chart::current,
        structure_chart::create_version,
        structure_chart::list_versions,
        structure_chart::get_version,
        structure_chart::submit_version,
        structure_chart::set_node_structure,
        admin::list,
        admin::retry,
    ),
    tags(
        (name = "organisations", description = "組織 / Organisations"),
        (name = "items", description = "委託事項と委託の連鎖 / Consignment items and chains"),
        (name = "applications", description = "再委託申請 / Subcontract applications"),
        (name = "evidence", description = "証跡 / Evidence"),
        (name = "obligations", description = "義務(研修・立入調査) / Obligations (training, inspections)"),
        (name = "documents", description = "提出書類 / Documents"),
        (name = "ismap", description = "ISMAPクラウドサービスリスト / The ISMAP cloud service list"),
        (name = "admin", description = "管理: メール送信キュー / Administration: the mail outbox"),
    )
)]
pub struct ApiDoc;

/// `/openapi.json`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/openapi.json").route(web::get().to(document)));
}

async fn document() -> HttpResponse {
    HttpResponse::Ok().json(ApiDoc::openapi())
}
