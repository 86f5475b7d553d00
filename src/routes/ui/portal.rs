//! The contractor portal: for each organisation the user is a contractor of, its nodes, its
//! applications, what the requirement policy asks of it for its own nodes, and its evidence
//! that expires soon. Nothing of any other organisation.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};
use tracing_actix_web::RequestId;

use super::evidence::{calendar_rows, HORIZON_DAYS};
use super::view::{self, Lang, Page, UiLang};
use super::{html, Csrf, UiError, UiUser};
use crate::routes::api::applications::app_error;
use crate::routes::api::chains::viewer;
use crate::routes::api::instances::acting;
use crate::services::applications::{self, ApplicationFilter};
use crate::services::chains::{self, Page as ListPage};
use crate::services::evidence;
use crate::startup::AppState;

fn node_state(lang: Lang, state: &str) -> String {
    let code = match state {
        "applying" => "pending",
        "permitted" | "suspended" | "revoked" | "terminated" | "rejected" => state,
        _ => "other",
    };
    lang.text(&format!("node_state.{code}"), state)
}

/// `GET /portal`.
pub async fn home(
    state: web::Data<AppState>,
    request: HttpRequest,
    request_id: RequestId,
    user: UiUser,
) -> Result<HttpResponse, UiError> {
    let lang = Lang::of(&request);
    let fail = |e| UiError::api(e, lang);
    let today = state.clock.today_jst();
    let v = viewer(&user.0);
    let rid = request_id.to_string();
    let held = chains::nodes_held(&state.db, &v).await.map_err(fail)?;
    let names = chains::names(
        &state.db,
        v.contractor
            .iter()
            .cloned()
            .chain(held.iter().map(|(_, i)| i.municipality_id.clone())),
    )
    .await
    .map_err(fail)?;
    let name = |id: &str| names.get(id).cloned().unwrap_or_else(|| id.to_owned());
    let mut organisations = Vec::new();
    for org in &v.contractor {
        let nodes: Vec<Value> = held
            .iter()
            .filter(|(n, _)| &n.contractor_id == org)
            .map(|(n, item)| {
                json!({
                    "id": n.id,
                    "item": item.title,
                    "item_href": format!("/items/{}", item.id),
                    "municipality": name(&item.municipality_id),
                    "tier": n.tier,
                    "state": node_state(lang, &n.permission_state),
                    "state_code": n.permission_state,
                    "period": format!("{} — {}", view::day_label(lang, n.period_start), view::day_label(lang, n.period_end)),
                })
            })
            .collect();
        let may_apply = held
            .iter()
            .any(|(n, _)| &n.contractor_id == org && n.permission_state == "permitted");
        let requests =
            applications::requests_for(&state.db, &state.workflows, &v, org, today, HORIZON_DAYS)
                .await
                .map_err(|e| fail(app_error(e)))?;
        let requests: Vec<Value> = requests
            .iter()
            .map(|r| {
                let (item, municipality, tier) = held
                    .iter()
                    .find(|(n, _)| n.id == r.node_id)
                    .map(|(n, i)| (i.title.clone(), name(&i.municipality_id), n.tier))
                    .unwrap_or_default();
                let status = r.entry.status.as_str();
                let met = status == "met";
                json!({
                    "node_id": r.node_id,
                    "item": item,
                    "municipality": municipality,
                    "tier": tier,
                    "requirement": lang.pick(&r.entry.label.ja, &r.entry.label.en),
                    "status_code": if met { "expiring" } else { status },
                    "status": if met {
                        lang.text("portal.expiring", "")
                    } else {
                        lang.text(&format!("status.{status}"), status)
                    },
                    "valid_until": r.entry.valid_until.map(|d| view::day_label(lang, d)).unwrap_or_default(),
                })
            })
            .collect();
        let apps = applications::list(
            &state.db,
            &state.workflows,
            &v,
            &ApplicationFilter {
                organisation: Some(org.clone()),
                ..ApplicationFilter::default()
            },
            ListPage {
                page: Some(1),
                per_page: Some(200),
            },
            &acting(&state, &user.0, &rid),
        )
        .await
        .map_err(|e| fail(app_error(e)))?;
        let apps: Vec<Value> = apps
            .items
            .iter()
            .map(|a| {
                json!({
                    "id": a.id,
                    "number": a.number,
                    "applicant": a.applicant_name,
                    "contractor": a.contractor_name,
                    "role": lang.text(if &a.applicant_id == org { "portal.as_applicant" } else { "portal.as_subcontractor" }, ""),
                    "targets": a.targets.iter().map(|t| json!({
                        "municipality": t.municipality_name,
                        "state": t.state_label.as_ref().map_or_else(|| t.state.clone(), |l| lang.pick(&l.ja, &l.en).to_owned()),
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        let soon = evidence::expiring(&state.db, &v, Some(org), today, HORIZON_DAYS)
            .await
            .map_err(fail)?;
        organisations.push(json!({
            "id": org,
            "name": name(org),
            "nodes": nodes,
            "requests": requests,
            "applications": apps,
            "calendar": calendar_rows(lang, today, &soon, &names),
            "may_apply": may_apply,
        }));
    }
    let csrf = Csrf::of(&request);
    let page = Page::for_user(&state, &user.0, lang, &csrf.token, "/portal")
        .await
        .map_err(fail)?;
    let data = page.data(
        &lang.text("portal.title", ""),
        json!({ "organisations": organisations }),
    );
    let body = view::render("portal", &data).map_err(fail)?;
    Ok(csrf.apply(html(StatusCode::OK, body)))
}
