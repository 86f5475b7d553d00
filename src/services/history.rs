//! Loads the change history (変更箇所) of a PIA file from the chains and their audit trails;
//! `crate::documents::history` renders it.
//!
//! A node below tier 1 enters or leaves force only through its permission instance, so the
//! instance's audit trail (each record's `to_state`, mirrored on the node) gives every moment
//! it did. Tier-1 nodes are in force by the consignment contract from their item's creation;
//! items, and a node's fields, do not change once the node can be in force (fields change only
//! while the application is a draft). A node without a permission instance (registered as
//! already in force) counts from its creation and, when it is no longer in force, until its
//! last state change. The cloud classification is taken as it stands now: it is decided
//! before the permission and is not audited.

use std::collections::{BTreeMap, HashMap};

use chrono::NaiveDate;
use entity::{
    application_target, audit_record, chain_node, consignment_item, document_setting,
    pia_assessment,
};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder};

use crate::documents::history::{
    self, AssessmentFact, ChangeHistory, HistoryInputs, HistoryItem, HistoryNode,
};
use crate::error::{ApiError, ErrorCode, FieldError};
use crate::services::access::Viewer;
use crate::services::applications::node_state;
use crate::services::chains::{names, HandlerBracket};
use crate::services::documents::{section_node, stored_change_items};
use crate::validation;

/// What the caller asks for.
#[derive(Debug, Clone)]
pub struct HistoryQuery<'a> {
    pub municipality: &'a str,
    pub pia_file: &'a str,
    /// Only the rows of this consignment item.
    pub item_id: Option<&'a str>,
    pub from: Option<NaiveDate>,
    /// Default: today.
    pub to: Option<NaiveDate>,
}

/// The moments a node entered (`true`) or left (`false`) force, from its permission instance's
/// audit trail (records in `seq` order).
fn changes_of(
    node: &chain_node::Model,
    trail: Option<&Vec<audit_record::Model>>,
) -> Vec<(chrono::DateTime<chrono::Utc>, bool)> {
    let mut out = Vec::new();
    match trail {
        Some(records) => {
            let mut in_force = false;
            for r in records {
                let now = node_state(&r.to_state) == "permitted";
                if now != in_force {
                    out.push((r.at, now));
                    in_force = now;
                }
            }
        }
        None => {
            out.push((node.created_at, true));
            if node.permission_state != "permitted" {
                out.push((node.state_changed_at, false));
            }
        }
    }
    out
}

/// The change history of one PIA file of `municipality`, for its own staff only.
pub async fn change_history(
    db: &impl ConnectionTrait,
    viewer: &Viewer,
    q: HistoryQuery<'_>,
    today: NaiveDate,
) -> Result<ChangeHistory, ApiError> {
    if !viewer.is_municipal(q.municipality) {
        return Err(ErrorCode::NotFound.into());
    }
    let to = q.to.unwrap_or(today);
    if let Some(from) = q.from.filter(|f| *f > to) {
        validation::finish(vec![FieldError::new(
            "from",
            format!("開始日({from})は終了日({to})以前の日付にしてください。"),
            format!("The start ({from}) must not be after the end ({to})."),
        )])?;
    }
    let items = consignment_item::Entity::find()
        .filter(consignment_item::Column::MunicipalityId.eq(q.municipality))
        .filter(consignment_item::Column::PiaFile.eq(q.pia_file))
        .order_by_asc(consignment_item::Column::CreatedAt)
        .order_by_asc(consignment_item::Column::Id)
        .all(db)
        .await?;
    let wanted = match q.item_id {
        Some(id) => Some(
            items
                .iter()
                .position(|i| i.id == id)
                .map(|ix| ix + 1)
                .ok_or(ErrorCode::NotFound)?,
        ),
        None => None,
    };
    let nodes = chain_node::Entity::find()
        .filter(chain_node::Column::ItemId.is_in(items.iter().map(|i| i.id.clone())))
        .order_by_asc(chain_node::Column::Id)
        .all(db)
        .await?;
    let targets = application_target::Entity::find()
        .filter(application_target::Column::NodeId.is_in(nodes.iter().map(|n| n.id.clone())))
        .all(db)
        .await?;
    let instance_of: HashMap<&str, &str> = targets
        .iter()
        .map(|t| (t.node_id.as_str(), t.instance_id.as_str()))
        .collect();
    let mut trails: HashMap<String, Vec<audit_record::Model>> = HashMap::new();
    for r in audit_record::Entity::find()
        .filter(
            audit_record::Column::InstanceId.is_in(targets.iter().map(|t| t.instance_id.clone())),
        )
        .order_by_asc(audit_record::Column::InstanceId)
        .order_by_asc(audit_record::Column::Seq)
        .all(db)
        .await?
    {
        trails.entry(r.instance_id.clone()).or_default().push(r);
    }
    let org_names = names(
        db,
        nodes
            .iter()
            .map(|n| n.contractor_id.clone())
            .chain([q.municipality.to_owned()]),
    )
    .await?;
    let name = |id: &str| org_names.get(id).cloned().unwrap_or_else(|| id.to_owned());
    let by_id: HashMap<&str, &chain_node::Model> =
        nodes.iter().map(|n| (n.id.as_str(), n)).collect();
    let mut of_item: BTreeMap<&str, Vec<&chain_node::Model>> = BTreeMap::new();
    for n in &nodes {
        of_item.entry(n.item_id.as_str()).or_default().push(n);
    }
    let history_items = items
        .iter()
        .enumerate()
        .map(|(ix, item)| {
            let nodes = of_item.get(item.id.as_str()).cloned().unwrap_or_default();
            let tier1 = nodes
                .iter()
                .find(|n| n.parent_id.is_none())
                .map_or_else(|| name(&item.contractor_id), |n| name(&n.contractor_id));
            HistoryItem {
                number: ix + 1,
                title: item.title.clone(),
                content: item.content.clone(),
                handlers: HandlerBracket::parse(&item.handler_bracket)
                    .map_or("", HandlerBracket::label_ja)
                    .to_owned(),
                tier1,
                policy: item.subcontract_policy.clone(),
                created_at: item.created_at,
                nodes: nodes
                    .iter()
                    .filter(|n| n.parent_id.is_some())
                    .filter(|n| n.cloud_classification.as_deref() != Some("no_access"))
                    .map(|n| HistoryNode {
                        node_id: n.id.clone(),
                        node: section_node(n, &by_id, &name),
                        changes: changes_of(
                            n,
                            instance_of.get(n.id.as_str()).and_then(|i| trails.get(*i)),
                        ),
                    })
                    .collect(),
            }
        })
        .collect();
    let assessments = pia_assessment::Entity::find()
        .filter(pia_assessment::Column::MunicipalityId.eq(q.municipality))
        .filter(pia_assessment::Column::PiaFile.eq(q.pia_file))
        // A withdrawn assessment was recorded by mistake: it covers no change.
        .filter(pia_assessment::Column::WithdrawnAt.is_null())
        .order_by_asc(pia_assessment::Column::RecordedAt)
        .order_by_asc(pia_assessment::Column::Id)
        .all(db)
        .await?
        .into_iter()
        .map(|a| AssessmentFact {
            items: serde_json::from_str(&a.items).unwrap_or_default(),
            node_id: a.node_id,
            recorded_at: a.recorded_at,
            summary: a.summary,
        })
        .collect();
    let settings = document_setting::Entity::find_by_id(q.municipality)
        .one(db)
        .await?;
    let significant = stored_change_items(settings.as_ref());
    let inputs = HistoryInputs {
        municipality: name(q.municipality),
        pia_file: q.pia_file.to_owned(),
        items: history_items,
        assessments,
        significant,
    };
    Ok(history::history(&inputs, q.from, to, wanted))
}
