//! Committee submissions (付議): the submission of a consignment (a tier-1 node) or a
//! subcontract (a node below) generated from the item, the node and its evidence checklist, and
//! the record of each submission as it went to the committee, against which the next one's
//! changes are marked. `crate::documents::committee` renders it.

use chrono::{DateTime, NaiveDate, Utc};
use entity::{application_target, chain_node, committee_submission, consignment_item};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, Set, TransactionTrait,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use validator::Validate;

use crate::documents::committee::{
    self, CommitteeSubmission, LastSubmission, SubmissionFields, SubmissionKind,
};
use crate::domain::policy;
use crate::error::{ApiError, ErrorCode, FieldError};
use crate::routes::ui::view::{Lang, UiLang};
use crate::services::access::Viewer;
use crate::services::applications::{chain_facts, policy_of, AppError, WORKFLOW};
use crate::services::chains::{names, node_and_item};
use crate::services::documents::{not_in_future, note_error};
use crate::services::instances::{self, Acting};
use crate::services::new_id;
use crate::validation;
use crate::workflow::{Grant, WorkflowSet};

/// The audit event of recording a submission in the permission instance's chain.
pub const SUBMITTED_EVENT: &str = "committee_submitted";

/// Node states for which there is nothing to put before the committee.
const CLOSED_STATES: [&str; 2] = ["rejected", "withdrawn"];

fn api(e: AppError) -> ApiError {
    match e {
        AppError::Api(e) => e,
        AppError::Instance(e) => ApiError::internal(e.to_string()),
    }
}

/// The node and its item, when the viewer is one of the item's municipality's staff.
async fn node_for(
    db: &impl ConnectionTrait,
    viewer: &Viewer,
    node_id: &str,
) -> Result<(chain_node::Model, consignment_item::Model), ApiError> {
    let (node, item) = node_and_item(db, node_id).await?;
    if !viewer.is_municipal(&item.municipality_id) {
        return Err(ErrorCode::NotFound.into());
    }
    Ok((node, item))
}

fn text(value: Option<&str>) -> String {
    value.map(str::trim).unwrap_or_default().to_owned()
}

/// The submission's fields from the data as it stands on `today`, and the names of the fields
/// the data does not hold.
async fn fields_of(
    db: &impl ConnectionTrait,
    workflows: &WorkflowSet,
    node: &chain_node::Model,
    item: &consignment_item::Model,
    today: NaiveDate,
) -> Result<(SubmissionKind, SubmissionFields, Vec<String>), ApiError> {
    let kind = if node.parent_id.is_none() {
        SubmissionKind::Consignment
    } else {
        SubmissionKind::Subcontract
    };
    let parent = match &node.parent_id {
        Some(p) => chain_node::Entity::find_by_id(p).one(db).await?,
        None => None,
    };
    let org_names = names(
        db,
        [node.contractor_id.clone()]
            .into_iter()
            .chain(parent.as_ref().map(|p| p.contractor_id.clone())),
    )
    .await?;
    let name = |id: &str| org_names.get(id).cloned().unwrap_or_else(|| id.to_owned());
    let data_items: Vec<String> = serde_json::from_str(&item.data_items).unwrap_or_default();
    let fields = match (kind, &parent) {
        (SubmissionKind::Subcontract, Some(p)) => SubmissionFields {
            subject: format!("{}に係る業務の再委託について", item.title),
            owning_section: text(item.owning_section.as_deref()),
            registered_work: text(item.registered_work.as_deref()),
            contractor: format!(
                "【委託先】 {} 【再委託先】 {}",
                name(&p.contractor_id),
                name(&node.contractor_id)
            ),
            data_items: node.data_scope.clone(),
            recording_medium: text(node.recording_medium.as_deref()),
            reason: node.reason.clone(),
            content: node.scope_of_work.clone(),
            period: committee::period_ja(node.period_start, node.period_end),
            safeguards: Vec::new(),
        },
        _ => SubmissionFields {
            subject: format!("{}に係る業務の委託について", item.title),
            owning_section: text(item.owning_section.as_deref()),
            registered_work: text(item.registered_work.as_deref()),
            contractor: name(&node.contractor_id),
            data_items: data_items.join("、"),
            recording_medium: item.recording_medium.clone(),
            reason: text(item.consignment_reason.as_deref()),
            content: item.content.clone(),
            period: committee::period_ja(item.period_start, item.period_end),
            safeguards: Vec::new(),
        },
    };
    let fields = SubmissionFields {
        safeguards: safeguards(db, workflows, node, today).await?,
        ..fields
    };
    let missing = fields
        .texts()
        .into_iter()
        .filter(|(_, v)| v.trim().is_empty())
        .map(|(k, _)| k.to_owned())
        .collect();
    Ok((kind, fields, missing))
}

/// 情報保護対策: the node's own lines of its evidence checklist on `today` (the requirement
/// policy of the permission workflow's newest definition), each as 「requirement: status」.
async fn safeguards(
    db: &impl ConnectionTrait,
    workflows: &WorkflowSet,
    node: &chain_node::Model,
    today: NaiveDate,
) -> Result<Vec<String>, ApiError> {
    let Some(latest) = workflows.latest(WORKFLOW) else {
        return Ok(Vec::new());
    };
    let version = i32::try_from(latest.version()).unwrap_or(i32::MAX);
    let policy = policy_of(workflows, WORKFLOW, version)?;
    let facts = chain_facts(db, &node.id).await.map_err(api)?;
    let tier = u32::try_from(node.tier).unwrap_or(0);
    Ok(policy::evaluate(&policy, &facts, today)
        .checklist
        .into_iter()
        .filter(|e| e.tier == tier && e.node_id == node.id)
        .map(|e| {
            let status = e.status.as_str();
            format!(
                "{}: {}",
                e.label.ja,
                Lang::Ja.text(&format!("status.{status}"), status)
            )
        })
        .collect())
}

/// The last recorded submission of the node, with its fields.
async fn last_of(
    db: &impl ConnectionTrait,
    node_id: &str,
) -> Result<Option<(LastSubmission, SubmissionFields)>, ApiError> {
    let row = committee_submission::Entity::find()
        .filter(committee_submission::Column::NodeId.eq(node_id))
        .order_by_desc(committee_submission::Column::SubmittedAt)
        .order_by_desc(committee_submission::Column::Id)
        .one(db)
        .await?;
    Ok(match row {
        None => None,
        Some(r) => Some((
            LastSubmission {
                id: r.id.clone(),
                submitted_on: r.submitted_on,
                submitted_at: r.submitted_at,
            },
            serde_json::from_str(&r.fields).map_err(ApiError::internal)?,
        )),
    })
}

/// The committee submission of a node as it stands on `today`, its changes since the last
/// recorded submission marked; the root municipality's staff only (anyone else 404).
pub async fn submission(
    db: &impl ConnectionTrait,
    workflows: &WorkflowSet,
    viewer: &Viewer,
    node_id: &str,
    today: NaiveDate,
) -> Result<CommitteeSubmission, ApiError> {
    let (node, item) = node_for(db, viewer, node_id).await?;
    let (kind, fields, missing) = fields_of(db, workflows, &node, &item, today).await?;
    let municipality = names(db, [item.municipality_id.clone()]).await?;
    Ok(committee::compare(
        kind,
        municipality
            .get(&item.municipality_id)
            .map_or(item.municipality_id.as_str(), String::as_str),
        &item.id,
        &node.id,
        fields,
        missing,
        last_of(db, &node.id).await?,
    ))
}

/// Marks the node's submission as put before the committee.
#[derive(Debug, Clone, Serialize, Deserialize, Validate, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmittedInput {
    /// The tier-1 node (a consignment) or the node below (a subcontract).
    #[validate(length(min = 1, max = 64))]
    pub node_id: String,
    /// The day it was put before the committee (付議日).
    pub submitted_on: NaiveDate,
}

/// A recorded submission.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SubmissionRecord {
    pub id: String,
    pub municipality_id: String,
    pub item_id: String,
    pub node_id: String,
    pub kind: String,
    pub fields: SubmissionFields,
    pub submitted_on: NaiveDate,
    pub submitted_by: String,
    pub submitted_at: DateTime<Utc>,
    pub instance_id: Option<String>,
    pub audit_seq: Option<i64>,
}

impl TryFrom<committee_submission::Model> for SubmissionRecord {
    type Error = ApiError;

    fn try_from(m: committee_submission::Model) -> Result<Self, ApiError> {
        Ok(Self {
            fields: serde_json::from_str(&m.fields).map_err(ApiError::internal)?,
            id: m.id,
            municipality_id: m.municipality_id,
            item_id: m.item_id,
            node_id: m.node_id,
            kind: m.kind,
            submitted_on: m.submitted_on,
            submitted_by: m.submitted_by,
            submitted_at: m.submitted_at,
            instance_id: m.instance_id,
            audit_seq: m.audit_seq,
        })
    }
}

/// Is the user an officer (担当者) of `org` today?
fn is_officer(grants: &[Grant], org: &str) -> bool {
    grants
        .iter()
        .any(|g| g.role == "officer" && g.org.as_deref() == Some(org))
}

/// Records that the node's submission, as generated now, was put before the committee: a
/// snapshot of its fields (the next one is marked against it) and, for a subcontract, a
/// `committee_submitted` record in the permission instance's audit chain — one transaction.
/// Only an officer of the root municipality records it (its other staff `403`, anyone else
/// `404`).
pub async fn mark_submitted(
    db: &DatabaseConnection,
    workflows: &WorkflowSet,
    viewer: &Viewer,
    input: SubmittedInput,
    acting: &Acting<'_>,
) -> Result<SubmissionRecord, ApiError> {
    let today = acting.now.today;
    let txn = db.begin().await?;
    let (node, item) = node_for(&txn, viewer, &input.node_id).await?;
    if !is_officer(acting.actor.grants, &item.municipality_id) {
        return Err(ErrorCode::Forbidden.into());
    }
    let mut errors = validation::errors_of(&input);
    errors.extend(not_in_future(
        Some(input.submitted_on),
        today,
        "submitted_on",
    ));
    if CLOSED_STATES.contains(&node.permission_state.as_str()) {
        errors.push(FieldError::new(
            "node_id",
            format!(
                "この委託先ノードは「{}」のため付議できません。",
                node.permission_state
            ),
            format!(
                "This node is {}; there is nothing to submit.",
                node.permission_state
            ),
        ));
    }
    validation::finish(errors)?;
    let (kind, fields, _) = fields_of(&txn, workflows, &node, &item, today).await?;
    let now = crate::services::db_time::to_db_precision(acting.now.at);
    let id = new_id(now);
    let target = application_target::Entity::find()
        .filter(application_target::Column::NodeId.eq(node.id.as_str()))
        .one(&txn)
        .await?;
    let (instance_id, audit_seq) = match target {
        Some(t) => {
            let seq = instances::append_note(
                &txn,
                &t.instance_id,
                SUBMITTED_EVENT,
                None,
                json!({
                    "submission_id": id,
                    "kind": kind,
                    "submitted_on": input.submitted_on,
                }),
                acting,
            )
            .await
            .map_err(note_error)?;
            (Some(t.instance_id), Some(seq))
        }
        None => (None, None),
    };
    let row = committee_submission::ActiveModel {
        id: Set(id),
        municipality_id: Set(item.municipality_id.clone()),
        item_id: Set(item.id.clone()),
        node_id: Set(node.id.clone()),
        kind: Set(kind.as_str().to_owned()),
        fields: Set(serde_json::to_string(&fields).map_err(ApiError::internal)?),
        submitted_on: Set(input.submitted_on),
        submitted_by: Set(viewer.user_id.clone()),
        submitted_at: Set(now),
        instance_id: Set(instance_id),
        audit_seq: Set(audit_seq),
    }
    .insert(&txn)
    .await?;
    txn.commit().await?;
    row.try_into()
}

/// The submissions recorded for a node, newest first.
pub async fn list_submissions(
    db: &impl ConnectionTrait,
    viewer: &Viewer,
    node_id: &str,
) -> Result<Vec<SubmissionRecord>, ApiError> {
    let (node, _) = node_for(db, viewer, node_id).await?;
    committee_submission::Entity::find()
        .filter(committee_submission::Column::NodeId.eq(node.id.as_str()))
        .order_by_desc(committee_submission::Column::SubmittedAt)
        .order_by_desc(committee_submission::Column::Id)
        .all(db)
        .await?
        .into_iter()
        .map(SubmissionRecord::try_from)
        .collect()
}
