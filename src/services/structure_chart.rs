//! The implementation structure chart (履行体制図) of a consignment item: drawn from the chain
//! as it stands, stored as numbered versions (snapshot and SVG hash), compared with the last
//! submitted version; and each node's chart fields (responsible person, manager, staff count,
//! work location). The chart is the municipality's document: its staff see it (auditors
//! included), its officers, chiefs and managers produce and submit versions; anyone else `404`.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use entity::{chain_node, chart_version, consignment_item};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, Set, TransactionTrait,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use validator::Validate;

use crate::documents::structure_chart::{self, Chart, ChartNode, NodeChange, VersionNote};
use crate::error::{ApiError, ErrorCode, FieldError};
use crate::services::access::Viewer;
use crate::services::chains::{chain_names, nodes_of_item};
use crate::services::document_trail::{self, Actor};
use crate::services::new_id;
use crate::validation::{self, not_blank};

/// Node states drawn: in force, suspended (its staff are still assigned) and applying (a
/// subcontract under review changes the chart too).
const DRAWN_STATES: [&str; 3] = ["permitted", "suspended", "applying"];

/// Trail events.
pub const VERSION_CREATED: &str = "chart_version_created";
pub const VERSION_SUBMITTED: &str = "chart_version_submitted";

async fn item_for(
    db: &impl ConnectionTrait,
    viewer: &Viewer,
    item_id: &str,
    write: bool,
) -> Result<consignment_item::Model, ApiError> {
    let item = consignment_item::Entity::find_by_id(item_id)
        .one(db)
        .await?
        .ok_or(ErrorCode::NotFound)?;
    if !viewer.is_municipal(&item.municipality_id) {
        return Err(ErrorCode::NotFound.into());
    }
    if write && !viewer.writes_for(&item.municipality_id) {
        return Err(ErrorCode::Forbidden.into());
    }
    Ok(item)
}

/// The chart of an item's chain as it stands on `as_of`.
pub async fn build(
    db: &impl ConnectionTrait,
    item: &consignment_item::Model,
    as_of: NaiveDate,
) -> Result<Chart, ApiError> {
    let nodes: Vec<chain_node::Model> = nodes_of_item(db, &item.id)
        .await?
        .into_iter()
        .filter(|n| DRAWN_STATES.contains(&n.permission_state.as_str()))
        // A cloud provider without access to the data is not a tier (BRIEF 3).
        .filter(|n| n.cloud_classification.as_deref() != Some("no_access"))
        .collect();
    let org_names = chain_names(db, &nodes, &item.municipality_id).await?;
    let name = |id: &str| org_names.get(id).cloned().unwrap_or_else(|| id.to_owned());
    // Tree order: each node after its parent, siblings in the order they joined the chain.
    let mut children: BTreeMap<Option<&str>, Vec<&chain_node::Model>> = BTreeMap::new();
    for n in &nodes {
        children.entry(n.parent_id.as_deref()).or_default().push(n);
    }
    for list in children.values_mut() {
        list.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    }
    let mut out = Vec::new();
    let mut stack: Vec<(&chain_node::Model, String)> = children
        .get(&None)
        .map(|v| {
            v.iter()
                .rev()
                .map(|n| (*n, name(&item.municipality_id)))
                .collect()
        })
        .unwrap_or_default();
    while let Some((n, supervisor)) = stack.pop() {
        let me = name(&n.contractor_id);
        if let Some(kids) = children.get(&Some(n.id.as_str())) {
            stack.extend(kids.iter().rev().map(|k| (*k, me.clone())));
        }
        out.push(ChartNode {
            node_id: n.id.clone(),
            parent_id: n.parent_id.clone(),
            tier: n.tier,
            organisation: me,
            responsible_person: n.responsible_person.clone(),
            manager: n.manager.clone(),
            staff_count: n.staff_count,
            work_location: n.work_location.clone(),
            supervised_by: supervisor,
            supervision: n.supervision.clone(),
            state: n.permission_state.clone(),
        });
    }
    Ok(Chart {
        item_title: item.title.clone(),
        municipality: name(&item.municipality_id),
        as_of,
        nodes: out,
    })
}

/// A stored version, without its snapshot.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct VersionSummary {
    pub id: String,
    pub item_id: String,
    pub number: i32,
    pub as_of: NaiveDate,
    pub svg_sha256: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub submitted_by: Option<String>,
    pub submitted_at: Option<DateTime<Utc>>,
    /// For `submit` (optimistic concurrency).
    pub version: i64,
}

impl From<&chart_version::Model> for VersionSummary {
    fn from(m: &chart_version::Model) -> Self {
        Self {
            id: m.id.clone(),
            item_id: m.item_id.clone(),
            number: m.number,
            as_of: m.as_of,
            svg_sha256: m.svg_sha256.clone(),
            created_by: m.created_by.clone(),
            created_at: m.created_at,
            submitted_by: m.submitted_by.clone(),
            submitted_at: m.submitted_at,
            version: m.version,
        }
    }
}

/// The chart as it stands, compared with the last submitted version.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ChartView {
    pub chart: Chart,
    pub last_submitted: Option<VersionSummary>,
    pub latest_version: Option<VersionSummary>,
    /// Differences from the last submitted version (empty when none was submitted).
    pub changes: Vec<NodeChange>,
    /// The nodes of the submitted version that are gone (drawn dashed).
    pub removed: Vec<ChartNode>,
    /// The chart differs from the last submitted version: it must be resubmitted.
    pub resubmission_required: bool,
}

impl ChartView {
    /// The chart as SVG, the differences marked.
    pub fn svg(&self) -> String {
        structure_chart::to_svg(&self.chart, &self.changes, &self.removed)
    }

    /// The A4 landscape print view.
    pub fn html(&self) -> String {
        structure_chart::to_html(
            &self.chart,
            &self.changes,
            &self.removed,
            &VersionNote {
                submitted_number: self.last_submitted.as_ref().map(|v| v.number),
                submitted_on: self
                    .last_submitted
                    .as_ref()
                    .and_then(|v| v.submitted_at)
                    .map(crate::clock::jst_date),
            },
        )
    }
}

fn snapshot(m: &chart_version::Model) -> Result<Chart, ApiError> {
    serde_json::from_str(&m.snapshot).map_err(ApiError::internal)
}

async fn versions_of(
    db: &impl ConnectionTrait,
    item_id: &str,
) -> Result<Vec<chart_version::Model>, ApiError> {
    Ok(chart_version::Entity::find()
        .filter(chart_version::Column::ItemId.eq(item_id))
        .order_by_desc(chart_version::Column::Number)
        .all(db)
        .await?)
}

/// Compares `chart` with the newest submitted version among `versions` (newest first).
fn compare(chart: Chart, versions: &[chart_version::Model]) -> Result<ChartView, ApiError> {
    let submitted = versions.iter().find(|v| v.submitted_at.is_some());
    let (changes, removed) = match submitted {
        Some(v) => {
            let old = snapshot(v)?;
            let changes = structure_chart::diff(&old, &chart);
            let removed = old
                .nodes
                .into_iter()
                .filter(|n| {
                    changes
                        .iter()
                        .any(|c| c.kind == "removed" && c.node_id == n.node_id)
                })
                .collect();
            (changes, removed)
        }
        None => (Vec::new(), Vec::new()),
    };
    Ok(ChartView {
        resubmission_required: !changes.is_empty(),
        last_submitted: submitted.map(VersionSummary::from),
        latest_version: versions.first().map(VersionSummary::from),
        chart,
        changes,
        removed,
    })
}

/// The chart of an item as it stands on `today`, with its differences from the last submitted
/// version.
pub async fn current(
    db: &impl ConnectionTrait,
    viewer: &Viewer,
    item_id: &str,
    today: NaiveDate,
) -> Result<ChartView, ApiError> {
    let item = item_for(db, viewer, item_id, false).await?;
    let chart = build(db, &item, today).await?;
    let versions = versions_of(db, item_id).await?;
    compare(chart, &versions)
}

/// Stores the chart as it stands as the item's next version (snapshot and the SHA-256 of its
/// plain SVG), with its trail entry, in one transaction. When the newest version already shows
/// the same structure, that version is returned instead (`false`: nothing was written).
pub async fn create_version(
    db: &DatabaseConnection,
    viewer: &Viewer,
    item_id: &str,
    actor: Actor<'_>,
    today: NaiveDate,
) -> Result<(VersionSummary, bool), ApiError> {
    let txn = db.begin().await?;
    let item = item_for(&txn, viewer, item_id, true).await?;
    let chart = build(&txn, &item, today).await?;
    let versions = versions_of(&txn, item_id).await?;
    if let Some(latest) = versions.first() {
        if structure_chart::same_structure(&snapshot(latest)?, &chart) {
            return Ok((VersionSummary::from(latest), false));
        }
    }
    let svg = structure_chart::to_svg(&chart, &[], &[]);
    let sha = hex::encode(Sha256::digest(svg.as_bytes()));
    let now = crate::services::db_time::to_db_precision(actor.at);
    let number = versions.first().map_or(1, |v| v.number + 1);
    let id = new_id(now);
    let row = chart_version::ActiveModel {
        id: Set(id.clone()),
        item_id: Set(item.id.clone()),
        number: Set(number),
        as_of: Set(today),
        snapshot: Set(serde_json::to_string(&chart).map_err(ApiError::internal)?),
        svg_sha256: Set(sha.clone()),
        created_by: Set(actor.user_id.to_owned()),
        created_at: Set(now),
        submitted_by: Set(None),
        submitted_at: Set(None),
        version: Set(1),
    }
    .insert(&txn)
    .await
    .map_err(document_trail::numbered_insert_error)?;
    document_trail::record(
        &txn,
        actor,
        VERSION_CREATED,
        &id,
        &json!({ "item_id": item.id, "number": number, "svg_sha256": sha }),
    )
    .await?;
    txn.commit().await?;
    Ok((VersionSummary::from(&row), true))
}

/// The versions of an item's chart, newest first.
pub async fn list_versions(
    db: &impl ConnectionTrait,
    viewer: &Viewer,
    item_id: &str,
) -> Result<Vec<VersionSummary>, ApiError> {
    item_for(db, viewer, item_id, false).await?;
    Ok(versions_of(db, item_id)
        .await?
        .iter()
        .map(VersionSummary::from)
        .collect())
}

/// One version with its chart as stored.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct VersionView {
    #[serde(flatten)]
    pub summary: VersionSummary,
    pub chart: Chart,
    /// Document actions on it (produced, submitted), oldest first.
    pub trail: Vec<document_trail::TrailEntry>,
}

impl VersionView {
    /// Its SVG, exactly as hashed when it was stored.
    pub fn svg(&self) -> String {
        structure_chart::to_svg(&self.chart, &[], &[])
    }

    /// Its print view.
    pub fn html(&self) -> String {
        structure_chart::to_html(
            &self.chart,
            &[],
            &[],
            &VersionNote {
                submitted_number: None,
                submitted_on: None,
            },
        )
    }
}

async fn version_row(
    db: &impl ConnectionTrait,
    item_id: &str,
    number: i32,
) -> Result<chart_version::Model, ApiError> {
    Ok(chart_version::Entity::find()
        .filter(chart_version::Column::ItemId.eq(item_id))
        .filter(chart_version::Column::Number.eq(number))
        .one(db)
        .await?
        .ok_or(ErrorCode::NotFound)?)
}

/// One version of an item's chart.
pub async fn get_version(
    db: &impl ConnectionTrait,
    viewer: &Viewer,
    item_id: &str,
    number: i32,
) -> Result<VersionView, ApiError> {
    item_for(db, viewer, item_id, false).await?;
    let row = version_row(db, item_id, number).await?;
    Ok(VersionView {
        summary: VersionSummary::from(&row),
        chart: snapshot(&row)?,
        trail: document_trail::of_subject(db, &row.id).await?,
    })
}

/// Marks a version as submitted (the municipality has it on file): an officer, chief or
/// manager of the item's municipality, once per version, under the version the caller saw;
/// with its trail entry in the same transaction.
pub async fn submit_version(
    db: &DatabaseConnection,
    viewer: &Viewer,
    item_id: &str,
    number: i32,
    expected: Option<i64>,
    actor: Actor<'_>,
) -> Result<VersionView, ApiError> {
    let txn = db.begin().await?;
    item_for(&txn, viewer, item_id, true).await?;
    let row = version_row(&txn, item_id, number).await?;
    if row.submitted_at.is_some() {
        return Err(
            ApiError::new(ErrorCode::Conflict).with_details(vec![FieldError::new(
                "number",
                "この版は既に提出済みです。",
                "This version is already submitted.",
            )]),
        );
    }
    if let Some(v) = expected.filter(|v| *v != row.version) {
        return Err(ApiError::new(ErrorCode::StaleVersion)
            .with_details(json!({ "expected": v, "current": row.version })));
    }
    let now = crate::services::db_time::to_db_precision(actor.at);
    let done = chart_version::Entity::update_many()
        .col_expr(
            chart_version::Column::SubmittedBy,
            Expr::value(actor.user_id.to_owned()),
        )
        .col_expr(chart_version::Column::SubmittedAt, Expr::value(now))
        .col_expr(chart_version::Column::Version, Expr::value(row.version + 1))
        .filter(chart_version::Column::Id.eq(row.id.as_str()))
        .filter(chart_version::Column::Version.eq(row.version))
        .exec(&txn)
        .await?;
    if done.rows_affected != 1 {
        return Err(ErrorCode::StaleVersion.into());
    }
    document_trail::record(
        &txn,
        actor,
        VERSION_SUBMITTED,
        &row.id,
        &json!({ "item_id": item_id, "number": number, "svg_sha256": row.svg_sha256 }),
    )
    .await?;
    let view = get_version(&txn, viewer, item_id, number).await?;
    txn.commit().await?;
    Ok(view)
}

/// A node's fields of the structure chart.
#[derive(Debug, Clone, Serialize, Deserialize, Validate, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeStructureInput {
    /// 責任者.
    #[validate(length(min = 1, max = 100), custom(function = "not_blank"))]
    pub responsible_person: String,
    /// 管理者.
    #[validate(length(min = 1, max = 100), custom(function = "not_blank"))]
    pub manager: String,
    /// 従事者数.
    #[validate(range(min = 1, max = 100_000))]
    pub staff_count: i32,
    /// 作業場所.
    #[validate(length(min = 1, max = 300), custom(function = "not_blank"))]
    pub work_location: String,
    /// The node version the caller saw.
    pub version: Option<i64>,
}

/// A node's chart fields as recorded.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct NodeStructureView {
    pub node_id: String,
    pub responsible_person: Option<String>,
    pub manager: Option<String>,
    pub staff_count: Option<i32>,
    pub work_location: Option<String>,
    pub version: i64,
}

/// Records a node's chart fields: its own contractor's users, or a writer of its item's
/// municipality (others who may see the node `403`, anyone else `404`). Nothing changes when a
/// field is invalid or holds an individual number.
pub async fn set_node_structure(
    db: &impl ConnectionTrait,
    viewer: &Viewer,
    node_id: &str,
    input: NodeStructureInput,
    now: DateTime<Utc>,
) -> Result<NodeStructureView, ApiError> {
    let (node, item) = crate::services::chains::node_and_item(db, node_id).await?;
    let owner = viewer.is_contractor(&node.contractor_id);
    if !owner && !viewer.writes_for(&item.municipality_id) {
        // What the viewer may see of the node decides between 403 and 404.
        crate::services::chains::get_node(db, viewer, node_id).await?;
        return Err(ErrorCode::Forbidden.into());
    }
    let mut errors = validation::errors_of(&input);
    errors.extend(validation::no_individual_numbers(&input));
    validation::finish(errors)?;
    if let Some(v) = input.version.filter(|v| *v != node.version) {
        return Err(ApiError::new(ErrorCode::StaleVersion)
            .with_details(json!({ "expected": v, "current": node.version })));
    }
    let now = crate::services::db_time::to_db_precision(now);
    let done = chain_node::Entity::update_many()
        .col_expr(
            chain_node::Column::ResponsiblePerson,
            Expr::value(input.responsible_person.trim().to_owned()),
        )
        .col_expr(
            chain_node::Column::Manager,
            Expr::value(input.manager.trim().to_owned()),
        )
        .col_expr(
            chain_node::Column::StaffCount,
            Expr::value(input.staff_count),
        )
        .col_expr(
            chain_node::Column::WorkLocation,
            Expr::value(input.work_location.trim().to_owned()),
        )
        .col_expr(chain_node::Column::UpdatedAt, Expr::value(now))
        .col_expr(chain_node::Column::Version, Expr::value(node.version + 1))
        .filter(chain_node::Column::Id.eq(node_id))
        .filter(chain_node::Column::Version.eq(node.version))
        .exec(db)
        .await?;
    if done.rows_affected != 1 {
        return Err(ErrorCode::StaleVersion.into());
    }
    Ok(NodeStructureView {
        node_id: node.id,
        responsible_person: Some(input.responsible_person.trim().to_owned()),
        manager: Some(input.manager.trim().to_owned()),
        staff_count: Some(input.staff_count),
        work_location: Some(input.work_location.trim().to_owned()),
        version: node.version + 1,
    })
}
