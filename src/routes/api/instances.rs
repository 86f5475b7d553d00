//! Workflow instances: start one, read it, fire an event, read its audit trail and diagram.

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tracing_actix_web::RequestId;

use crate::auth::{AuthUser, Authenticating};
use crate::error::{ApiError, ErrorCode};
use crate::services::instances::{self, Acting, FireRequest, InstanceError, NewInstance, RowRead};
use crate::startup::AppState;
use crate::workflow::diagram::{self, Lang};
use crate::workflow::{Actor, Now, RejectionKind};

/// `/instances`, `/instances/{id}`, `/instances/{id}/events`, `/instances/{id}/audit`,
/// `/instances/{id}/diagram.svg`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/instances").route(web::post().to(create)))
        .service(web::resource("/instances/{id}").route(web::get().to(get)))
        .service(web::resource("/instances/{id}/events").route(web::post().to(fire)))
        .service(web::resource("/instances/{id}/audit").route(web::get().to(audit)))
        .service(web::resource("/instances/{id}/diagram.svg").route(web::get().to(diagram_svg)));
}

/// The body of `POST /instances`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    workflow: String,
    #[serde(default = "empty_object")]
    context: Value,
    /// The decided instance this one corrects.
    corrects: Option<String>,
}

fn empty_object() -> Value {
    Value::Object(serde_json::Map::new())
}

/// The body of `POST /instances/{id}/events`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventBody {
    event: String,
    /// The instance version the caller saw (optimistic concurrency).
    version: Option<i64>,
    comment: Option<String>,
    /// For `return`: the earlier step to send back to.
    to_step: Option<String>,
    /// For `proxy` (代決): the absent approver.
    on_behalf_of: Option<String>,
    data: Option<Value>,
}

/// `?lang=en` for the diagram.
#[derive(Debug, Deserialize)]
struct LangQuery {
    lang: Option<String>,
}

fn lang(q: &LangQuery) -> Lang {
    match q.lang.as_deref() {
        Some("en") => Lang::En,
        _ => Lang::Ja,
    }
}

pub(crate) fn acting<'a>(state: &AppState, user: &'a AuthUser, request_id: &'a str) -> Acting<'a> {
    let at = state.clock.now();
    Acting {
        actor: Actor {
            id: &user.id,
            grants: &user.grants,
            deputy_for: &user.deputy_for,
        },
        request_id: Some(request_id),
        now: Now {
            at,
            today: state.clock.today_jst(),
        },
    }
}

/// The one mapping from instance failures to API errors.
pub(crate) fn api_error(e: InstanceError) -> ApiError {
    #[derive(Serialize)]
    struct Unmet<'a> {
        unmet: &'a [crate::workflow::Unmet],
    }
    match e {
        InstanceError::NotFound => ApiError::new(ErrorCode::NotFound),
        InstanceError::UnknownWorkflow(w) => ApiError::new(ErrorCode::UnknownWorkflow)
            .with_details(serde_json::json!({ "workflow": w })),
        InstanceError::UnknownEvent { event, known } => ApiError::new(ErrorCode::UnknownEvent)
            .with_details(serde_json::json!({ "event": event, "known": known })),
        InstanceError::Rejected(r) => {
            let code = match r.kind {
                RejectionKind::NotApplicable => ErrorCode::EventNotApplicable,
                RejectionKind::Forbidden => ErrorCode::TransitionForbidden,
                RejectionKind::Unmet => ErrorCode::TransitionRejected,
                RejectionKind::InvalidInput => ErrorCode::InvalidEventInput,
            };
            ApiError::new(code).with_details(Unmet { unmet: &r.unmet })
        }
        InstanceError::StaleVersion { expected, current } => ApiError::new(ErrorCode::StaleVersion)
            .with_details(serde_json::json!({ "expected": expected, "current": current })),
        InstanceError::Concurrent => ApiError::new(ErrorCode::ConcurrentUpdate),
        InstanceError::NotCorrectable(why) => ApiError::new(ErrorCode::NotCorrectable)
            .with_details(serde_json::json!({ "reason": why })),
        InstanceError::Managed(kind) => ApiError::new(ErrorCode::ManagedWorkflow)
            .with_details(serde_json::json!({ "kind": kind, "use": "/api/v1/applications" })),
        InstanceError::Corrupt(why) => ApiError::internal(why),
        InstanceError::Db(e) => ApiError::internal(e),
    }
}

async fn create(
    state: web::Data<AppState>,
    authenticating: Authenticating,
    request_id: RequestId,
    body: web::Json<CreateBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let rid = request_id.to_string();
    let new = NewInstance {
        workflow: &body.workflow,
        context: body.context,
        corrects: body.corrects.as_deref(),
    };
    // Decided on the session this replica kept, if it kept it and it still holds; else read.
    let kept = match authenticating.kept() {
        Some((user, epoch)) => {
            let acting = acting(&state, &user, &rid);
            instances::create_recent(state.conns(), &state.workflows, new.clone(), epoch, &acting)
                .await
                .map_err(api_error)?
        }
        None => None,
    };
    let view = match kept {
        Some(view) => view,
        None => {
            let user = authenticating.user().await?;
            let acting = acting(&state, &user, &rid);
            instances::create(state.conns(), &state.workflows, new, &acting)
                .await
                .map_err(api_error)?
        }
    };
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/api/v1/instances/{}", view.id)))
        .insert_header((header::ETAG, format!("\"{}\"", view.version)))
        .json(view))
}

/// The instance, if the user may see it.
async fn fetch(
    state: &AppState,
    user: &AuthUser,
    request_id: &RequestId,
    id: &str,
) -> Result<instances::InstanceView, ApiError> {
    let rid = request_id.to_string();
    crate::services::applications::get_instance(
        &state.db,
        &state.workflows,
        id,
        &acting(state, user, &rid),
    )
    .await
    .map_err(crate::routes::api::applications::app_error)
}

async fn get(
    state: web::Data<AppState>,
    user: AuthUser,
    request_id: RequestId,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let view = fetch(&state, &user, &request_id, &id).await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::ETAG, format!("\"{}\"", view.version)))
        .json(view))
}

async fn fire(
    state: web::Data<AppState>,
    authenticating: Authenticating,
    request_id: RequestId,
    id: web::Path<String>,
    body: web::Json<EventBody>,
) -> Result<HttpResponse, ApiError> {
    let rid = request_id.to_string();
    let view = if let Some(view) = fire_kept(&state, &authenticating, &id, &body, &rid).await? {
        view
    } else {
        // The instance is read with the session, and returned only if the session holds.
        let (user, row) = authenticating.user_and_instance(id.clone()).await?;
        let row = RowRead::Done(row.map(Box::new));
        check_event(&body)?;
        // A subcontract instance fires through the domain, which gives its guards the chain's
        // facts and cascades a lapse; any other instance fires directly.
        crate::services::applications::fire_instance(
            state.conns(),
            &state.workflows,
            &id,
            row,
            &fire_request(&body),
            &acting(&state, &user, &rid),
        )
        .await
        .map_err(crate::routes::api::applications::app_error)?
    };
    Ok(HttpResponse::Ok()
        .insert_header((header::ETAG, format!("\"{}\"", view.version)))
        .json(view))
}

/// The event decided on the session and the instance's row this replica kept, without reading
/// them (see [`instances::fire_recent`]); `None` when it kept neither or they no longer hold,
/// and for a body the usual path refuses, so that every refusal is answered as without them.
async fn fire_kept(
    state: &AppState,
    authenticating: &Authenticating,
    id: &str,
    body: &EventBody,
    request_id: &str,
) -> Result<Option<instances::InstanceView>, ApiError> {
    let (Some((user, epoch)), Some(row)) = (authenticating.kept(), state.recent.row(id)) else {
        return Ok(None);
    };
    if check_event(body).is_err() {
        return Ok(None);
    }
    instances::fire_recent(
        state.conns(),
        &state.workflows,
        entity::workflow_instance::Model::clone(&row),
        epoch,
        &fire_request(body),
        &acting(state, &user, request_id),
    )
    .await
    .map_err(api_error)
}

/// A comment or event data never carries an individual number.
fn check_event(body: &EventBody) -> Result<(), ApiError> {
    crate::validation::finish(crate::validation::no_individual_numbers(
        &serde_json::json!({ "comment": body.comment, "data": body.data }),
    ))
}

fn fire_request(body: &EventBody) -> FireRequest<'_> {
    FireRequest {
        event: &body.event,
        expected_version: body.version,
        comment: body.comment.as_deref(),
        to_step: body.to_step.as_deref(),
        on_behalf_of: body.on_behalf_of.as_deref(),
        data: body.data.as_ref(),
    }
}

/// One audit record as the API shows it.
#[derive(Serialize)]
struct AuditView {
    seq: i64,
    at: chrono::DateTime<chrono::Utc>,
    actor_id: String,
    on_behalf_of: Option<String>,
    event: String,
    from_state: Option<String>,
    to_state: String,
    step: Option<String>,
    comment: Option<String>,
    request_id: Option<String>,
    details: Value,
    prev_hash: String,
    hash: String,
}

async fn audit(
    state: web::Data<AppState>,
    user: AuthUser,
    request_id: RequestId,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let rid = request_id.to_string();
    let records = instances::audit_trail(
        &state.db,
        &state.workflows,
        &id,
        &acting(&state, &user, &rid),
    )
    .await
    .map_err(api_error)?;
    let views: Vec<AuditView> = records
        .into_iter()
        .map(|r| AuditView {
            seq: r.seq,
            at: r.at,
            actor_id: r.actor_id,
            on_behalf_of: r.on_behalf_of,
            event: r.event,
            from_state: r.from_state,
            to_state: r.to_state,
            step: r.step,
            comment: r.comment,
            request_id: r.request_id,
            details: serde_json::from_str(&r.details).unwrap_or(Value::Null),
            prev_hash: r.prev_hash,
            hash: r.hash,
        })
        .collect();
    Ok(HttpResponse::Ok().json(views))
}

async fn diagram_svg(
    state: web::Data<AppState>,
    user: AuthUser,
    request_id: RequestId,
    id: web::Path<String>,
    query: web::Query<LangQuery>,
) -> Result<HttpResponse, ApiError> {
    let view = fetch(&state, &user, &request_id, &id).await?;
    let version = u32::try_from(view.workflow_version).unwrap_or(0);
    let rt = state
        .workflows
        .get(&view.workflow, version)
        .ok_or_else(|| ApiError::internal("definition of a stored instance is not loaded"))?;
    Ok(svg(diagram::render_svg(
        &rt.describe(),
        Some(&view.state),
        lang(&query),
    )))
}

/// An SVG response; the image may not run script or load anything.
pub(crate) fn svg(body: String) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("image/svg+xml; charset=utf-8")
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'",
        ))
        .body(body)
}
