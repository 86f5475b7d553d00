//! Documents of changes: the change history (変更箇所) of a PIA file as JSON (paged), CSV or a
//! print view; the committee submission (付議) of a consignment or a subcontract as JSON or a
//! print view, with the record of each submission.

use actix_web::{web, HttpResponse};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::chains::viewer;
use super::documents::{chunks, download, print_view, print_view_headers, ViewFormat, CSV};
use super::instances::acting;
use crate::auth::AuthUser;
use crate::documents::{committee, history};
use crate::error::ApiError;
use crate::services::chains::Page;
use crate::services::committee::{self as submissions, SubmissionRecord, SubmittedInput};
use crate::services::history::{change_history, export_changes, HistoryQuery};
use crate::startup::AppState;
use tracing_actix_web::RequestId;

/// `/documents/changes`, `/documents/committee`, `/documents/committee/submissions`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/documents/changes").route(web::get().to(changes)))
        .service(web::resource("/documents/committee").route(web::get().to(committee_submission)))
        .service(
            web::resource("/documents/committee/submissions")
                .route(web::get().to(list_submissions))
                .route(web::post().to(mark_submitted)),
        );
}

/// The output format of the change history.
#[derive(Debug, Clone, Copy, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum HistoryFormat {
    #[default]
    Json,
    Csv,
    Html,
}

/// Which PIA file, which period, how.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ChangesQuery {
    pub municipality: String,
    /// The PIA file's name (特定個人情報ファイル), as recorded on the items.
    pub pia_file: String,
    /// Only the changes of this consignment item (its id).
    pub item: Option<String>,
    /// First day (in Japan) of the period; default: from the beginning.
    pub from: Option<NaiveDate>,
    /// Last day of the period; default: today.
    pub to: Option<NaiveDate>,
    #[serde(default)]
    pub format: HistoryFormat,
    /// JSON only: the page (from 1) and its size (default 50, at most 200).
    pub page: Option<u64>,
    pub per_page: Option<u64>,
}

/// A page of the change history.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct HistoryPage {
    #[serde(flatten)]
    pub history: history::ChangeHistory,
    /// Rows over every page.
    pub total: u64,
    pub page: u64,
    pub per_page: u64,
}

/// The change history (変更箇所) of a PIA file's consignment section over a period, derived from
/// the chains' audit trails: 変更日, 項目, 変更前の記載, 変更後の記載, 提出時期 (事前 / 事後),
/// 提出時期に係る説明, with the municipality's significant changes marked. The municipality's own
/// staff only (others `404`).
#[utoipa::path(get, path = "/api/v1/documents/changes", tag = "documents", params(ChangesQuery),
    responses((status = 200, body = HistoryPage, description = "JSON (paged), or CSV (UTF-8 with BOM, CRLF) or the print view (HTML) by `format`"),
        (status = 404), (status = 422, description = "validation_failed: `from` after `to`")))]
pub async fn changes(
    state: web::Data<AppState>,
    user: AuthUser,
    q: web::Query<ChangesQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = HistoryQuery {
        municipality: &q.municipality,
        pia_file: &q.pia_file,
        item_id: q.item.as_deref(),
        from: q.from,
        to: q.to,
    };
    let today = state.clock.today_jst();
    let format = match q.format {
        HistoryFormat::Json => {
            let mut h = change_history(&state.db, &viewer(&user), query, today).await?;
            let page = Page {
                page: q.page,
                per_page: q.per_page,
            };
            let total = u64::try_from(h.rows.len()).unwrap_or(u64::MAX);
            let skip = usize::try_from(page.offset()).unwrap_or(usize::MAX);
            let take = usize::try_from(page.limit()).unwrap_or(usize::MAX);
            h.rows = h.rows.into_iter().skip(skip).take(take).collect();
            return Ok(HttpResponse::Ok().json(HistoryPage {
                history: h,
                total,
                page: page.number(),
                per_page: page.limit(),
            }));
        }
        HistoryFormat::Csv => history::HistoryFormat::Csv,
        HistoryFormat::Html => history::HistoryFormat::Html,
    };
    let export = export_changes(&state.db, &viewer(&user), query, today, format).await?;
    let mut response = match format {
        history::HistoryFormat::Csv => download(
            CSV,
            &format!("変更箇所_{}_{}.csv", export.municipality, export.pia_file),
        ),
        history::HistoryFormat::Html => print_view_headers(),
    };
    Ok(response.streaming(chunks(export.body)))
}

/// Which node, and how.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct CommitteeQuery {
    /// The tier-1 node (the consignment) or a node below (a subcontract).
    pub node: String,
    #[serde(default)]
    pub format: ViewFormat,
}

/// The committee submission (付議) of a consignment or a subcontract as it stands today, with
/// what changed since the last recorded submission marked (太字下線 in the print view). The
/// root municipality's staff only (others `404`).
#[utoipa::path(get, path = "/api/v1/documents/committee", tag = "documents", params(CommitteeQuery),
    responses((status = 200, body = committee::CommitteeSubmission, description = "JSON, or the print view (HTML) by `format`"),
        (status = 404)))]
pub async fn committee_submission(
    state: web::Data<AppState>,
    user: AuthUser,
    q: web::Query<CommitteeQuery>,
) -> Result<HttpResponse, ApiError> {
    let s = submissions::submission(
        &state.db,
        &state.workflows,
        &viewer(&user),
        &q.node,
        state.clock.today_jst(),
    )
    .await?;
    Ok(match q.format {
        ViewFormat::Json => HttpResponse::Ok().json(s),
        ViewFormat::Html => print_view(committee::to_html(&s)),
    })
}

/// Which node.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct NodeQuery {
    pub node: String,
}

/// The submissions recorded for a node, newest first.
#[utoipa::path(get, path = "/api/v1/documents/committee/submissions", tag = "documents", params(NodeQuery),
    responses((status = 200, body = Vec<SubmissionRecord>), (status = 404)))]
pub async fn list_submissions(
    state: web::Data<AppState>,
    user: AuthUser,
    q: web::Query<NodeQuery>,
) -> Result<HttpResponse, ApiError> {
    let list = submissions::list_submissions(&state.db, &viewer(&user), &q.node).await?;
    Ok(HttpResponse::Ok().json(list))
}

/// Record that the node's committee submission, as generated now, was put before the
/// committee: the next one marks its changes against it. An officer of the root municipality
/// only (its other staff `403`, anyone else `404`); audited in the permission's trail.
#[utoipa::path(post, path = "/api/v1/documents/committee/submissions", tag = "documents",
    request_body = SubmittedInput,
    responses((status = 201, body = SubmissionRecord), (status = 403), (status = 404),
        (status = 422, description = "validation_failed: e.g. `submitted_on` in the future")))]
pub async fn mark_submitted(
    state: web::Data<AppState>,
    user: AuthUser,
    request_id: RequestId,
    body: web::Json<SubmittedInput>,
) -> Result<HttpResponse, ApiError> {
    let rid = request_id.to_string();
    let record = submissions::mark_submitted(
        &state.db,
        &state.workflows,
        &viewer(&user),
        body.into_inner(),
        &acting(&state, &user, &rid),
    )
    .await?;
    Ok(HttpResponse::Created().json(record))
}
