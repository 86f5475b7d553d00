//! What the documents screen (`/documents`) lists for one municipality: its PIA files, its
//! consignment items with the nodes a committee submission is made for, the pending
//! subcontracts a significant change blocks until an assessment is recorded, and the
//! assessments recorded (withdrawn ones included). The municipality's own staff only.

use std::collections::{BTreeSet, HashMap};

use chrono::NaiveDate;
use entity::{chain_node, consignment_item, pia_file};
use sea_orm::sea_query::Query;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder};

use crate::error::{ApiError, ErrorCode};
use crate::services::access::Viewer;
use crate::services::chains::chain_names;
use crate::services::documents::{list_assessments, unassessed_changes, AssessmentView};
use crate::workflow::registry::Unmet;

/// A PIA file of the municipality: named on its items or with threshold inputs recorded.
#[derive(Debug, Clone)]
pub struct PiaFileEntry {
    pub name: String,
    /// Consignment items recorded under it.
    pub items: usize,
    /// The threshold test's inputs are recorded.
    pub inputs_recorded: bool,
}

/// A node of an item's chain, for its committee submission.
#[derive(Debug, Clone)]
pub struct IndexNode {
    pub id: String,
    pub tier: i32,
    pub contractor: String,
    pub permission_state: String,
}

/// A consignment item with the nodes that have (or may have) a committee submission.
#[derive(Debug, Clone)]
pub struct IndexItem {
    pub id: String,
    pub title: String,
    pub pia_file: String,
    pub nodes: Vec<IndexNode>,
}

/// A pending subcontract that a significant change blocks until its assessment is recorded.
#[derive(Debug, Clone)]
pub struct AwaitingAssessment {
    pub node_id: String,
    pub item_title: String,
    pub pia_file: String,
    pub contractor: String,
    /// What the permission would be refused for now.
    pub unmet: Vec<Unmet>,
}

/// An assessment, with what its node is called.
#[derive(Debug, Clone)]
pub struct IndexAssessment {
    pub view: AssessmentView,
    pub contractor: String,
    pub item_title: String,
    /// Not withdrawn, and its subcontract still awaits the decision (which may not rely on it
    /// yet): it may be withdrawn.
    pub withdrawable: bool,
}

/// Everything the documents screen shows of one municipality.
#[derive(Debug, Clone)]
pub struct DocumentIndex {
    pub municipality_id: String,
    pub municipality_name: String,
    pub pia_files: Vec<PiaFileEntry>,
    pub items: Vec<IndexItem>,
    pub awaiting: Vec<AwaitingAssessment>,
    pub assessments: Vec<IndexAssessment>,
}

/// Nodes no committee submission is made for: the application never became a subcontract.
const NOT_SUBMITTED: [&str; 2] = ["rejected", "withdrawn"];

/// The documents index of `municipality` on `today`; `404` for anyone but its own staff.
pub async fn index(
    db: &impl ConnectionTrait,
    viewer: &Viewer,
    municipality: &str,
    today: NaiveDate,
) -> Result<DocumentIndex, ApiError> {
    if !viewer.is_municipal(municipality) {
        return Err(ErrorCode::NotFound.into());
    }
    let items = consignment_item::Entity::find()
        .filter(consignment_item::Column::MunicipalityId.eq(municipality))
        .order_by_asc(consignment_item::Column::CreatedAt)
        .order_by_asc(consignment_item::Column::Id)
        .all(db)
        .await?;
    // A subquery, not a list of ids: a municipality may hold more items than a statement binds.
    let of_municipality = Query::select()
        .column(consignment_item::Column::Id)
        .from(consignment_item::Entity)
        .and_where(consignment_item::Column::MunicipalityId.eq(municipality))
        .to_owned();
    let nodes = chain_node::Entity::find()
        .filter(chain_node::Column::ItemId.in_subquery(of_municipality))
        .order_by_asc(chain_node::Column::Tier)
        .order_by_asc(chain_node::Column::CreatedAt)
        .order_by_asc(chain_node::Column::Id)
        .all(db)
        .await?;
    let org_names = chain_names(db, &nodes, municipality).await?;
    let name = |id: &str| org_names.get(id).cloned().unwrap_or_else(|| id.to_owned());
    let recorded: Vec<String> = pia_file::Entity::find()
        .filter(pia_file::Column::MunicipalityId.eq(municipality))
        .all(db)
        .await?
        .into_iter()
        .map(|f| f.name)
        .collect();
    let file_names: BTreeSet<&str> = items
        .iter()
        .map(|i| i.pia_file.as_str())
        .chain(recorded.iter().map(String::as_str))
        .collect();
    let pia_files = file_names
        .into_iter()
        .map(|f| PiaFileEntry {
            name: f.to_owned(),
            items: items.iter().filter(|i| i.pia_file == f).count(),
            inputs_recorded: recorded.iter().any(|r| r == f),
        })
        .collect();
    let item_by_id: HashMap<&str, &consignment_item::Model> =
        items.iter().map(|i| (i.id.as_str(), i)).collect();
    let mut awaiting = Vec::new();
    for n in nodes
        .iter()
        .filter(|n| n.permission_state == "applying" && n.parent_id.is_some())
    {
        let unmet = unassessed_changes(db, &n.id, today).await?;
        if unmet.is_empty() {
            continue;
        }
        let Some(item) = item_by_id.get(n.item_id.as_str()) else {
            continue;
        };
        awaiting.push(AwaitingAssessment {
            node_id: n.id.clone(),
            item_title: item.title.clone(),
            pia_file: item.pia_file.clone(),
            contractor: name(&n.contractor_id),
            unmet,
        });
    }
    let node_by_id: HashMap<&str, &chain_node::Model> =
        nodes.iter().map(|n| (n.id.as_str(), n)).collect();
    let assessments = list_assessments(db, viewer, municipality, None)
        .await?
        .into_iter()
        .map(|view| {
            let node = node_by_id.get(view.node_id.as_str());
            IndexAssessment {
                withdrawable: view.withdrawn_at.is_none()
                    && node.is_some_and(|n| n.permission_state == "applying"),
                contractor: node.map(|n| name(&n.contractor_id)).unwrap_or_default(),
                item_title: node
                    .and_then(|n| item_by_id.get(n.item_id.as_str()))
                    .map(|i| i.title.clone())
                    .unwrap_or_default(),
                view,
            }
        })
        .collect();
    let items = items
        .iter()
        .map(|i| IndexItem {
            id: i.id.clone(),
            title: i.title.clone(),
            pia_file: i.pia_file.clone(),
            nodes: nodes
                .iter()
                .filter(|n| n.item_id == i.id)
                .filter(|n| !NOT_SUBMITTED.contains(&n.permission_state.as_str()))
                .map(|n| IndexNode {
                    id: n.id.clone(),
                    tier: n.tier,
                    contractor: name(&n.contractor_id),
                    permission_state: n.permission_state.clone(),
                })
                .collect(),
        })
        .collect();
    Ok(DocumentIndex {
        municipality_id: municipality.to_owned(),
        municipality_name: name(municipality),
        pia_files,
        items,
        awaiting,
        assessments,
    })
}
