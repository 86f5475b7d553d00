//! Loads what the documents need; `crate::documents` renders it.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use entity::{
    application_target, chain_node, consignment_item, document_setting, pia_assessment, pia_file,
};
use sea_orm::sea_query::Expr;
use sea_orm::{
    AccessMode, ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection,
    DatabaseTransaction, DbBackend, DbErr, EntityTrait, IsolationLevel, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, QueryTrait, Select, Set, TransactionTrait,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use validator::Validate;

use crate::documents::pia::{self, PermittedNode, PiaFormat, PiaHead, PiaItem, PiaRenderer};
use crate::documents::significant::{self, ChangeFacts, ChangeItem};
use crate::documents::threshold::{
    self, Contribution, PeopleBracket, ThresholdInputs, ThresholdTest,
};
use crate::domain::policy::Warning;
use crate::error::{ApiError, ErrorCode, FieldError, Msg};
use crate::services::access::Viewer;
use crate::services::chains::{chain_names, names, HandlerBracket};
use crate::services::instances::{self, Acting, InstanceError};
use crate::services::new_id;
use crate::validation::{self, not_blank};
use crate::workflow::registry::Unmet;

/// The audit event of recording an assessment in the permission instance's chain.
pub const ASSESSMENT_EVENT: &str = "record_assessment";

/// The audit event of withdrawing an assessment recorded by mistake.
pub const WITHDRAWAL_EVENT: &str = "withdraw_assessment";

/// A node below tier 1 as the consignment section names it (⑥再委託事項).
pub(crate) fn section_node(
    n: &chain_node::Model,
    by_id: &HashMap<&str, &chain_node::Model>,
    name: &impl Fn(&str) -> String,
) -> PermittedNode {
    PermittedNode {
        tier: n.tier,
        contractor: name(&n.contractor_id),
        parent_contractor: n
            .parent_id
            .as_deref()
            .and_then(|p| by_id.get(p))
            .map(|p| name(&p.contractor_id))
            .unwrap_or_default(),
        scope_of_work: n.scope_of_work.clone(),
        cloud: n.hosts_environment,
    }
}

/// Items read per page of a PIA export: bounds what is held in memory and keeps each
/// `IN (…)` list far below the databases' limits on bound parameters.
pub(crate) const EXPORT_PAGE: u64 = 500;

/// Chunks of an export in flight between the reading task and the response.
pub(crate) const EXPORT_CHANNEL: usize = 8;

/// A PIA section export under way: the names for its file name, and its bytes as they are
/// rendered (an error ends it early; the response is then cut off).
pub struct PiaExport {
    pub municipality: String,
    pub pia_file: String,
    pub body: tokio::sync::mpsc::Receiver<Result<Vec<u8>, ApiError>>,
}

/// Opens a read-only transaction whose reads all see one snapshot: on PostgreSQL `REPEATABLE
/// READ`; a SQLite transaction holds the snapshot of its first read anyway (WAL).
pub(crate) async fn begin_snapshot(db: &DatabaseConnection) -> Result<DatabaseTransaction, DbErr> {
    match db.get_database_backend() {
        DbBackend::Postgres => {
            db.begin_with_config(
                Some(IsolationLevel::RepeatableRead),
                Some(AccessMode::ReadOnly),
            )
            .await
        }
        _ => db.begin().await,
    }
}

pub(crate) fn items_of_file(
    municipality: &str,
    pia_file: &str,
) -> Select<consignment_item::Entity> {
    consignment_item::Entity::find()
        .filter(consignment_item::Column::MunicipalityId.eq(municipality))
        .filter(consignment_item::Column::PiaFile.eq(pia_file))
}

/// The consignment section of one PIA file of `municipality` (its own staff only), rendered in
/// `format` while it is read: the items a page at a time, in registration order, from one
/// snapshot, by a task that stops when the receiver is dropped.
pub async fn export_pia(
    db: &DatabaseConnection,
    viewer: &Viewer,
    municipality: &str,
    pia_file: &str,
    format: PiaFormat,
) -> Result<PiaExport, ApiError> {
    if !viewer.is_municipal(municipality) {
        return Err(ErrorCode::NotFound.into());
    }
    let txn = begin_snapshot(db).await?;
    let municipality_name = names(&txn, [municipality.to_owned()])
        .await?
        .remove(municipality)
        .unwrap_or_else(|| municipality.to_owned());
    let count = items_of_file(municipality, pia_file).count(&txn).await?;
    let head = PiaHead {
        municipality: municipality_name.clone(),
        pia_file: pia_file.to_owned(),
        count: usize::try_from(count).unwrap_or(usize::MAX),
    };
    let mut renderer = PiaRenderer::new(format);
    let first = renderer.head(&head).map_err(ApiError::internal)?;
    let (tx, body) = tokio::sync::mpsc::channel(EXPORT_CHANNEL);
    let (municipality, file) = (municipality.to_owned(), pia_file.to_owned());
    tokio::spawn(async move {
        if tx.send(Ok(first)).await.is_err() {
            return;
        }
        if let Err(error) = export_items(&txn, &municipality, &file, renderer, &tx).await {
            tracing::error!(%error, "the PIA export failed");
            let _ = tx.send(Err(error)).await;
        }
    });
    Ok(PiaExport {
        municipality: municipality_name,
        pia_file: pia_file.to_owned(),
        body,
    })
}

/// Renders the items page by page into `tx`; stops quietly when the receiver is gone.
async fn export_items(
    txn: &DatabaseTransaction,
    municipality: &str,
    pia_file: &str,
    mut renderer: PiaRenderer,
    tx: &tokio::sync::mpsc::Sender<Result<Vec<u8>, ApiError>>,
) -> Result<(), ApiError> {
    let mut after: Option<(DateTime<Utc>, String)> = None;
    let mut number = 0;
    loop {
        let items = items_page(txn, municipality, pia_file, after.as_ref()).await?;
        let Some(last) = items.last() else {
            break;
        };
        after = Some((last.created_at, last.id.clone()));
        for item in pia_items(txn, municipality, &items, number).await? {
            number += 1;
            let chunk = renderer.item(&item).map_err(ApiError::internal)?;
            if !chunk.is_empty() && tx.send(Ok(chunk)).await.is_err() {
                return Ok(());
            }
        }
    }
    // XLSX zips its rows at the end; that is CPU work, kept off the runtime's threads.
    let last = tokio::task::spawn_blocking(move || renderer.finish())
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    let _ = tx.send(Ok(last)).await;
    Ok(())
}

/// The next page of a PIA file's consignment items in registration order (`created_at`, then
/// id), after the item `after` names.
pub(crate) async fn items_page(
    db: &impl ConnectionTrait,
    municipality: &str,
    pia_file: &str,
    after: Option<&(DateTime<Utc>, String)>,
) -> Result<Vec<consignment_item::Model>, DbErr> {
    let mut page = items_of_file(municipality, pia_file);
    if let Some((at, id)) = after {
        page = page.filter(
            Expr::tuple([
                Expr::col(consignment_item::Column::CreatedAt).into(),
                Expr::col(consignment_item::Column::Id).into(),
            ])
            .gt(Expr::tuple([Expr::value(*at), Expr::value(id.clone())])),
        );
    }
    page.order_by_asc(consignment_item::Column::CreatedAt)
        .order_by_asc(consignment_item::Column::Id)
        .limit(EXPORT_PAGE)
        .all(db)
        .await
}

/// The section's items for a page of consignment items, numbered after `numbered_before`.
async fn pia_items(
    db: &impl ConnectionTrait,
    municipality: &str,
    items: &[consignment_item::Model],
    numbered_before: usize,
) -> Result<Vec<PiaItem>, ApiError> {
    let nodes = chain_node::Entity::find()
        .filter(chain_node::Column::ItemId.is_in(items.iter().map(|i| i.id.clone())))
        .all(db)
        .await?;
    let org_names = names(
        db,
        nodes
            .iter()
            .map(|n| n.contractor_id.clone())
            .chain(items.iter().map(|i| i.contractor_id.clone()))
            .chain([municipality.to_owned()]),
    )
    .await?;
    let name = |id: &str| org_names.get(id).cloned().unwrap_or_else(|| id.to_owned());
    let by_id: HashMap<&str, &chain_node::Model> =
        nodes.iter().map(|n| (n.id.as_str(), n)).collect();
    let mut out = Vec::with_capacity(items.len());
    for (ix, item) in items.iter().enumerate() {
        let of_item = nodes.iter().filter(|n| n.item_id == item.id);
        let tier1 = of_item
            .clone()
            .find(|n| n.parent_id.is_none())
            .map_or_else(|| name(&item.contractor_id), |n| name(&n.contractor_id));
        // Permitted tiers below tier 1; a no-access cloud is not a tier (BRIEF 3).
        let below = of_item
            .filter(|n| n.tier >= 2 && n.permission_state == "permitted")
            .filter(|n| n.cloud_classification.as_deref() != Some("no_access"))
            .map(|n| section_node(n, &by_id, &name))
            .collect();
        out.push(pia::item(
            numbered_before + ix + 1,
            &item.title,
            &item.content,
            HandlerBracket::parse(&item.handler_bracket).map_or("", HandlerBracket::label_ja),
            &tier1,
            &item.subcontract_policy,
            below,
        ));
    }
    Ok(out)
}

// --- The threshold test (しきい値判断) -------------------------------------------------------

/// Node states whose contractor handles the file: in force, or suspended while its cause is
/// fixed (its staff are still assigned). Applying, rejected, withdrawn, revoked and terminated
/// nodes do not count.
const HANDLING_STATES: [&str; 2] = ["permitted", "suspended"];

/// The inputs of a PIA file's threshold test, as the municipality records them.
#[derive(Debug, Clone, Serialize, Deserialize, Validate, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PiaFileInput {
    #[validate(length(min = 1, max = 64))]
    pub municipality_id: String,
    /// The PIA file's name, as recorded on the consignment items.
    #[validate(length(min = 1, max = 200), custom(function = "not_blank"))]
    pub pia_file: String,
    /// 対象人数.
    pub people_bracket: PeopleBracket,
    /// The municipality's own staff handling the file, as a handler bracket.
    pub own_staff_bracket: HandlerBracket,
    /// いつ時点の計数か.
    pub counted_on: NaiveDate,
    /// The version the caller saw, when it changes recorded inputs.
    pub version: Option<i64>,
}

/// A PIA file's recorded inputs.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PiaFileView {
    pub municipality_id: String,
    pub pia_file: String,
    pub people_bracket: String,
    pub own_staff_bracket: String,
    pub counted_on: NaiveDate,
    pub updated_by: String,
    pub updated_at: DateTime<Utc>,
    pub version: i64,
}

impl From<pia_file::Model> for PiaFileView {
    fn from(m: pia_file::Model) -> Self {
        Self {
            municipality_id: m.municipality_id,
            pia_file: m.name,
            people_bracket: m.people_bracket,
            own_staff_bracket: m.own_staff_bracket,
            counted_on: m.counted_on,
            updated_by: m.updated_by,
            updated_at: m.updated_at,
            version: m.version,
        }
    }
}

/// The municipality's document settings.
#[derive(Debug, Clone, Serialize, Deserialize, Validate, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingsInput {
    #[validate(length(min = 1, max = 64))]
    pub municipality_id: String,
    /// The day of the latest serious incident (重大事故) concerning specific personal
    /// information at the municipality; `null` when there has been none.
    pub last_serious_incident_on: Option<NaiveDate>,
    /// The kinds of change that are significant (重要な変更) and need an assessment before
    /// permission; omitted: kept as they are (the default set until first set).
    pub significant_change_items: Option<Vec<ChangeItem>>,
    /// The version the caller saw, when settings are already recorded.
    pub version: Option<i64>,
}

/// The municipality's document settings as recorded (defaults until first set: version 0).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SettingsView {
    pub municipality_id: String,
    pub last_serious_incident_on: Option<NaiveDate>,
    pub significant_change_items: Vec<ChangeItem>,
    pub updated_by: Option<String>,
    pub updated_at: Option<DateTime<Utc>>,
    pub version: i64,
}

/// `stale_version` when the caller saw another version than `current` (0: not recorded yet).
fn expect_version(expected: Option<i64>, current: i64) -> Result<(), ApiError> {
    match expected {
        Some(v) if v != current => Err(ApiError::new(ErrorCode::StaleVersion)
            .with_details(json!({ "expected": expected, "current": current }))),
        _ => Ok(()),
    }
}

pub(crate) fn not_in_future(
    day: Option<NaiveDate>,
    today: NaiveDate,
    field: &str,
) -> Option<FieldError> {
    day.filter(|d| *d > today).map(|_| {
        FieldError::new(
            field,
            "未来の日付は指定できません。",
            "The date must not be in the future.",
        )
    })
}

/// Only the municipality's own staff see its documents; anyone else gets 404, and its auditors
/// may read but not change them (403).
fn may_write(viewer: &Viewer, municipality: &str) -> Result<(), ApiError> {
    if !viewer.is_municipal(municipality) {
        return Err(ErrorCode::NotFound.into());
    }
    if !viewer.writes_for(municipality) {
        return Err(ErrorCode::Forbidden.into());
    }
    Ok(())
}

/// Records (or replaces) the inputs of a PIA file's threshold test.
pub async fn set_pia_file(
    db: &impl ConnectionTrait,
    viewer: &Viewer,
    input: PiaFileInput,
    now: DateTime<Utc>,
    today: NaiveDate,
) -> Result<PiaFileView, ApiError> {
    may_write(viewer, &input.municipality_id)?;
    let mut errors = validation::errors_of(&input);
    errors.extend(not_in_future(Some(input.counted_on), today, "counted_on"));
    validation::finish(errors)?;
    let name = input.pia_file.trim().to_owned();
    let now = crate::services::db_time::to_db_precision(now);
    let current = pia_file::Entity::find()
        .filter(pia_file::Column::MunicipalityId.eq(input.municipality_id.as_str()))
        .filter(pia_file::Column::Name.eq(name.as_str()))
        .one(db)
        .await?;
    let id = match current {
        None => {
            expect_version(input.version, 0)?;
            let id = new_id(now);
            pia_file::ActiveModel {
                id: Set(id.clone()),
                municipality_id: Set(input.municipality_id.clone()),
                name: Set(name),
                people_bracket: Set(input.people_bracket.as_str().to_owned()),
                own_staff_bracket: Set(input.own_staff_bracket.as_str().to_owned()),
                counted_on: Set(input.counted_on),
                updated_by: Set(viewer.user_id.clone()),
                created_at: Set(now),
                updated_at: Set(now),
                version: Set(1),
            }
            .insert(db)
            .await?;
            id
        }
        Some(row) => {
            expect_version(input.version, row.version)?;
            let done = pia_file::Entity::update_many()
                .col_expr(
                    pia_file::Column::PeopleBracket,
                    Expr::value(input.people_bracket.as_str()),
                )
                .col_expr(
                    pia_file::Column::OwnStaffBracket,
                    Expr::value(input.own_staff_bracket.as_str()),
                )
                .col_expr(pia_file::Column::CountedOn, Expr::value(input.counted_on))
                .col_expr(
                    pia_file::Column::UpdatedBy,
                    Expr::value(viewer.user_id.clone()),
                )
                .col_expr(pia_file::Column::UpdatedAt, Expr::value(now))
                .col_expr(pia_file::Column::Version, Expr::value(row.version + 1))
                .filter(pia_file::Column::Id.eq(row.id.as_str()))
                .filter(pia_file::Column::Version.eq(row.version))
                .exec(db)
                .await?;
            if done.rows_affected != 1 {
                return Err(ErrorCode::StaleVersion.into());
            }
            row.id
        }
    };
    let row = pia_file::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or(ErrorCode::NotFound)?;
    Ok(row.into())
}

/// The recorded PIA files of a municipality, by name.
pub async fn list_pia_files(
    db: &impl ConnectionTrait,
    viewer: &Viewer,
    municipality: &str,
) -> Result<Vec<PiaFileView>, ApiError> {
    if !viewer.is_municipal(municipality) {
        return Err(ErrorCode::NotFound.into());
    }
    Ok(pia_file::Entity::find()
        .filter(pia_file::Column::MunicipalityId.eq(municipality))
        .order_by_asc(pia_file::Column::Name)
        .all(db)
        .await?
        .into_iter()
        .map(PiaFileView::from)
        .collect())
}

/// The municipality's document settings.
pub async fn settings(
    db: &impl ConnectionTrait,
    viewer: &Viewer,
    municipality: &str,
) -> Result<SettingsView, ApiError> {
    if !viewer.is_municipal(municipality) {
        return Err(ErrorCode::NotFound.into());
    }
    let row = document_setting::Entity::find_by_id(municipality)
        .one(db)
        .await?;
    Ok(match row {
        Some(r) => SettingsView {
            significant_change_items: stored_change_items(Some(&r)),
            municipality_id: r.municipality_id,
            last_serious_incident_on: r.last_serious_incident_on,
            updated_by: Some(r.updated_by),
            updated_at: Some(r.updated_at),
            version: r.version,
        },
        None => SettingsView {
            significant_change_items: ChangeItem::DEFAULT.to_vec(),
            municipality_id: municipality.to_owned(),
            last_serious_incident_on: None,
            updated_by: None,
            updated_at: None,
            version: 0,
        },
    })
}

/// Replaces the municipality's document settings.
pub async fn set_settings(
    db: &impl ConnectionTrait,
    viewer: &Viewer,
    input: SettingsInput,
    now: DateTime<Utc>,
    today: NaiveDate,
) -> Result<SettingsView, ApiError> {
    may_write(viewer, &input.municipality_id)?;
    let mut errors = validation::errors_of(&input);
    errors.extend(not_in_future(
        input.last_serious_incident_on,
        today,
        "last_serious_incident_on",
    ));
    validation::finish(errors)?;
    let now = crate::services::db_time::to_db_precision(now);
    let current = document_setting::Entity::find_by_id(&input.municipality_id)
        .one(db)
        .await?;
    let items = match &input.significant_change_items {
        Some(items) => {
            let mut items = items.clone();
            items.sort();
            items.dedup();
            Some(serde_json::to_string(&items).map_err(ApiError::internal)?)
        }
        None => current.as_ref().and_then(|r| r.significant_changes.clone()),
    };
    match current {
        None => {
            expect_version(input.version, 0)?;
            document_setting::ActiveModel {
                municipality_id: Set(input.municipality_id.clone()),
                last_serious_incident_on: Set(input.last_serious_incident_on),
                significant_changes: Set(items),
                updated_by: Set(viewer.user_id.clone()),
                updated_at: Set(now),
                version: Set(1),
            }
            .insert(db)
            .await?;
        }
        Some(row) => {
            expect_version(input.version, row.version)?;
            let done = document_setting::Entity::update_many()
                .col_expr(
                    document_setting::Column::LastSeriousIncidentOn,
                    Expr::value(input.last_serious_incident_on),
                )
                .col_expr(
                    document_setting::Column::SignificantChanges,
                    Expr::value(items),
                )
                .col_expr(
                    document_setting::Column::UpdatedBy,
                    Expr::value(viewer.user_id.clone()),
                )
                .col_expr(document_setting::Column::UpdatedAt, Expr::value(now))
                .col_expr(
                    document_setting::Column::Version,
                    Expr::value(row.version + 1),
                )
                .filter(document_setting::Column::MunicipalityId.eq(row.municipality_id.as_str()))
                .filter(document_setting::Column::Version.eq(row.version))
                .exec(db)
                .await?;
            if done.rows_affected != 1 {
                return Err(ErrorCode::StaleVersion.into());
            }
        }
    }
    settings(db, viewer, &input.municipality_id).await
}

/// What the threshold test of one PIA file needs, read from the current data; `None` when the
/// municipality has neither items nor recorded inputs under that name.
pub async fn threshold_inputs(
    db: &impl ConnectionTrait,
    municipality: &str,
    pia_file_name: &str,
) -> Result<Option<ThresholdInputs>, ApiError> {
    let recorded = recorded_file(db, municipality, pia_file_name).await?;
    let items = items_of_file(municipality, pia_file_name).all(db).await?;
    if recorded.is_none() && items.is_empty() {
        return Ok(None);
    }
    // A subquery, not a list of ids: a file may hold more items than a statement may bind.
    let nodes = chain_node::Entity::find()
        .filter(
            chain_node::Column::ItemId.in_subquery(
                items_of_file(municipality, pia_file_name)
                    .select_only()
                    .column(consignment_item::Column::Id)
                    .into_query(),
            ),
        )
        .filter(chain_node::Column::PermissionState.is_in(HANDLING_STATES))
        .all(db)
        .await?;
    let org_names = chain_names(db, &nodes, municipality).await?;
    let name = |id: &str| org_names.get(id).cloned().unwrap_or_else(|| id.to_owned());
    let items_by_id: HashMap<&str, &consignment_item::Model> =
        items.iter().map(|i| (i.id.as_str(), i)).collect();
    let contributions = nodes
        .iter()
        .filter_map(|n| {
            let item = items_by_id.get(n.item_id.as_str())?;
            contribution(n, item, &name)
        })
        .collect();
    let municipality_name = name(municipality);
    file_inputs(
        db,
        municipality,
        municipality_name,
        pia_file_name,
        recorded,
        contributions,
    )
    .await
    .map(Some)
}

/// The file's threshold inputs with one contribution per organisation and bracket, without
/// names or items: what the handler count needs (a contractor counts once, at its largest
/// bracket), read as a handful of rows however many nodes the file's chains hold. For the
/// checks on a pending node; the threshold test document uses [`threshold_inputs`].
async fn handler_count_inputs(
    db: &impl ConnectionTrait,
    municipality: &str,
    pia_file_name: &str,
) -> Result<Option<ThresholdInputs>, ApiError> {
    let recorded = recorded_file(db, municipality, pia_file_name).await?;
    let items = items_of_file(municipality, pia_file_name).count(db).await?;
    if recorded.is_none() && items == 0 {
        return Ok(None);
    }
    #[derive(Debug, sea_orm::FromQueryResult)]
    struct Row {
        contractor_id: String,
        bracket: Option<String>,
    }
    // The same rules as `contribution`: tier 1 counts at its item's bracket, a cloud provider
    // without access to the data not at all.
    let mut sql = crate::services::sql::Sql::new(db.get_database_backend());
    sql.push(
        "SELECT DISTINCT n.contractor_id AS contractor_id, \
         CASE WHEN n.parent_id IS NULL THEN i.handler_bracket ELSE n.handler_bracket END AS bracket \
         FROM chain_nodes n JOIN consignment_items i ON i.id = n.item_id \
         WHERE i.municipality_id = ",
    )
    .bind(municipality.to_owned())
    .push(" AND i.pia_file = ")
    .bind(pia_file_name.to_owned())
    .push(" AND ")
    .in_list(
        "n.permission_state",
        &HANDLING_STATES.map(str::to_owned),
    )
    .push(" AND (n.cloud_classification IS NULL OR n.cloud_classification <> 'no_access')");
    let rows = <Row as sea_orm::FromQueryResult>::find_by_statement(sql.statement())
        .all(db)
        .await?;
    let contributions = rows
        .into_iter()
        .map(|r| Contribution {
            organisation_name: r.contractor_id.clone(),
            organisation_id: r.contractor_id,
            item_title: String::new(),
            tier: 0,
            bracket: r.bracket.as_deref().and_then(HandlerBracket::parse),
        })
        .collect();
    file_inputs(
        db,
        municipality,
        municipality.to_owned(),
        pia_file_name,
        recorded,
        contributions,
    )
    .await
    .map(Some)
}

async fn recorded_file(
    db: &impl ConnectionTrait,
    municipality: &str,
    pia_file_name: &str,
) -> Result<Option<pia_file::Model>, DbErr> {
    pia_file::Entity::find()
        .filter(pia_file::Column::MunicipalityId.eq(municipality))
        .filter(pia_file::Column::Name.eq(pia_file_name))
        .one(db)
        .await
}

/// The inputs of a file's threshold test around its contributions.
async fn file_inputs(
    db: &impl ConnectionTrait,
    municipality: &str,
    municipality_name: String,
    pia_file_name: &str,
    recorded: Option<pia_file::Model>,
    contributions: Vec<Contribution>,
) -> Result<ThresholdInputs, ApiError> {
    let settings = document_setting::Entity::find_by_id(municipality)
        .one(db)
        .await?;
    Ok(ThresholdInputs {
        municipality: municipality_name,
        pia_file: pia_file_name.to_owned(),
        people: recorded
            .as_ref()
            .and_then(|r| PeopleBracket::parse(&r.people_bracket)),
        own_staff: recorded
            .as_ref()
            .and_then(|r| HandlerBracket::parse(&r.own_staff_bracket)),
        counted_on: recorded.as_ref().map(|r| r.counted_on),
        last_serious_incident_on: settings.and_then(|s| s.last_serious_incident_on),
        contributions,
    })
}

/// A node's part in the handler count; `None` for a cloud provider that by contract does not
/// handle the data (not a tier, BRIEF 3). Tier 1's bracket is its item's (②委託先における取扱者数).
fn contribution(
    n: &chain_node::Model,
    item: &consignment_item::Model,
    name: &impl Fn(&str) -> String,
) -> Option<Contribution> {
    if n.cloud_classification.as_deref() == Some("no_access") {
        return None;
    }
    let bracket = if n.parent_id.is_none() {
        HandlerBracket::parse(&item.handler_bracket)
    } else {
        n.handler_bracket.as_deref().and_then(HandlerBracket::parse)
    };
    Some(Contribution {
        organisation_id: n.contractor_id.clone(),
        organisation_name: name(&n.contractor_id),
        item_title: item.title.clone(),
        tier: n.tier,
        bracket,
    })
}

/// The threshold test of one PIA file of `municipality` on `today`, recomputed from the current
/// chains; for the municipality's own staff only.
pub async fn threshold_test(
    db: &impl ConnectionTrait,
    viewer: &Viewer,
    municipality: &str,
    pia_file_name: &str,
    today: NaiveDate,
) -> Result<ThresholdTest, ApiError> {
    if !viewer.is_municipal(municipality) {
        return Err(ErrorCode::NotFound.into());
    }
    let inputs = threshold_inputs(db, municipality, pia_file_name)
        .await?
        .ok_or(ErrorCode::NotFound)?;
    Ok(threshold::evaluate(&inputs, today))
}

/// The decision screen's warning when permitting the pending node would take its PIA file's
/// handlers from under 500 to 500 or more: the threshold test must be done again (BRIEF 5).
pub async fn reassessment_warning(
    db: &impl ConnectionTrait,
    node_id: &str,
    today: NaiveDate,
) -> Result<Option<Warning>, ApiError> {
    let Some((node, item)) = pending_node(db, node_id).await? else {
        return Ok(None);
    };
    let crossing = crossing_for(db, &node, &item, today).await?;
    Ok(crossing.map(|(before, after)| reassessment_of(&node, &item, before, after)))
}

/// The node with its item, when it is pending (`applying`); `None` otherwise.
async fn pending_node(
    db: &impl ConnectionTrait,
    node_id: &str,
) -> Result<Option<(chain_node::Model, consignment_item::Model)>, DbErr> {
    let Some(node) = chain_node::Entity::find_by_id(node_id).one(db).await? else {
        return Ok(None);
    };
    if node.permission_state != "applying" {
        return Ok(None);
    }
    let item = consignment_item::Entity::find_by_id(&node.item_id)
        .one(db)
        .await?;
    Ok(item.map(|item| (node, item)))
}

/// The warning of [`reassessment_warning`] for a crossing found.
fn reassessment_of(
    node: &chain_node::Model,
    item: &consignment_item::Model,
    before: ThresholdTest,
    after: ThresholdTest,
) -> Warning {
    let result = |t: &ThresholdTest| t.result.as_ref().map(|r| r.label.clone());
    let (ja_change, en_change) = match (result(&before), result(&after)) {
        (Some(b), Some(a)) if b != a => (
            format!(
                "しきい値判断結果が「{}」から「{}」に変わります。",
                b.ja, a.ja
            ),
            format!(
                " The required assessment changes from \"{}\" to \"{}\".",
                b.en, a.en
            ),
        ),
        _ => (String::new(), String::new()),
    };
    Warning {
        code: "reassessment_required".to_owned(),
        message: Msg::new(
            format!(
                "この再委託を許諾すると、特定個人情報ファイル「{}」の取扱者数(下限値)が{}人から{}人になり、500人以上となるため、しきい値判断の再実施(特定個人情報保護評価の再評価)が必要です。{ja_change}",
                item.pia_file, before.handlers.lower_bound, after.handlers.lower_bound
            ),
            format!(
                "Permitting this subcontract takes the handlers of the PIA file \"{}\" from {} to {} (lower bound), 500 or more, so the threshold test must be done again (re-assessment required).{en_change}",
                item.pia_file, before.handlers.lower_bound, after.handlers.lower_bound
            ),
        ),
        detail: json!({
            "pia_file": item.pia_file,
            "municipality_id": item.municipality_id,
            "node_id": node.id,
            "handlers_before": before.handlers.lower_bound,
            "handlers_after": after.handlers.lower_bound,
            "assessment_before": before.result.map(|r| r.assessment),
            "assessment_after": after.result.map(|r| r.assessment),
        }),
    }
}

/// The threshold test without and with a pending node, when the node takes its file's handlers
/// from under 500 to 500 or more.
async fn crossing_for(
    db: &impl ConnectionTrait,
    node: &chain_node::Model,
    item: &consignment_item::Model,
    today: NaiveDate,
) -> Result<Option<(ThresholdTest, ThresholdTest)>, ApiError> {
    let Some(inputs) = handler_count_inputs(db, &item.municipality_id, &item.pia_file).await?
    else {
        return Ok(None);
    };
    let org_names = names(db, [node.contractor_id.clone()]).await?;
    let name = |id: &str| org_names.get(id).cloned().unwrap_or_else(|| id.to_owned());
    let Some(pending) = contribution(node, item, &name) else {
        return Ok(None);
    };
    Ok(threshold::crossing(&inputs, pending, today))
}

// --- Significant changes (重要な変更) -------------------------------------------------------

/// The kinds of change the municipality counts as significant (the default until it sets them).
async fn change_items(
    db: &impl ConnectionTrait,
    municipality: &str,
) -> Result<Vec<ChangeItem>, ApiError> {
    let row = document_setting::Entity::find_by_id(municipality)
        .one(db)
        .await?;
    Ok(stored_change_items(row.as_ref()))
}

pub(crate) fn stored_change_items(row: Option<&document_setting::Model>) -> Vec<ChangeItem> {
    row.and_then(|r| r.significant_changes.as_deref())
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or_else(|| ChangeItem::DEFAULT.to_vec())
}

/// The significant changes permitting a pending node (tier 2 or below) of `item` would make;
/// `None` when the node is not pending or is tier 1. `crosses` is whether permitting it takes
/// the file's handlers to 500 or more, when the caller knows already; else it is worked out
/// when a significant change of that kind is counted.
async fn pending_changes(
    db: &impl ConnectionTrait,
    node: &chain_node::Model,
    item: &consignment_item::Model,
    today: NaiveDate,
    crosses: Option<bool>,
) -> Result<Option<Vec<ChangeItem>>, ApiError> {
    if node.permission_state != "applying" || node.parent_id.is_none() {
        return Ok(None);
    }
    let enabled = change_items(db, &item.municipality_id).await?;
    if enabled.is_empty() {
        return Ok(Some(Vec::new()));
    }
    let other_subcontracts = chain_node::Entity::find()
        .filter(chain_node::Column::ItemId.eq(item.id.as_str()))
        .filter(chain_node::Column::Tier.gte(2))
        .filter(chain_node::Column::Id.ne(node.id.as_str()))
        .filter(chain_node::Column::PermissionState.is_in(HANDLING_STATES))
        .count(db)
        .await?;
    let facts = ChangeFacts {
        first_subcontract: other_subcontracts == 0,
        cloud_handling_data: node.hosts_environment
            && node.cloud_classification.as_deref() != Some("no_access"),
        handlers_reach_500: enabled.contains(&ChangeItem::HandlersReach500)
            && match crosses {
                Some(known) => known,
                None => crossing_for(db, node, item, today).await?.is_some(),
            },
    };
    Ok(Some(significant::changes(&enabled, facts)))
}

/// Why the pending node may not be permitted yet: each significant change it would make while
/// no assessment is recorded for it (事前). Empty when nothing blocks.
pub async fn unassessed_changes(
    db: &impl ConnectionTrait,
    node_id: &str,
    today: NaiveDate,
) -> Result<Vec<Unmet>, ApiError> {
    let Some((node, item)) = pending_node(db, node_id).await? else {
        return Ok(Vec::new());
    };
    let Some(changes) = pending_changes(db, &node, &item, today, None).await? else {
        return Ok(Vec::new());
    };
    not_assessed(db, &item, node_id, changes).await
}

/// What the municipality's documents say of a node on `today` when it is pending: the
/// significant changes not assessed ([`unassessed_changes`]) and the re-assessment warning
/// ([`reassessment_warning`]), with the file's handlers counted once for both.
pub async fn pending_node_checks(
    db: &impl ConnectionTrait,
    node_id: &str,
    today: NaiveDate,
) -> Result<(Vec<Unmet>, Option<Warning>), ApiError> {
    let Some((node, item)) = pending_node(db, node_id).await? else {
        return Ok((Vec::new(), None));
    };
    let crossing = crossing_for(db, &node, &item, today).await?;
    let crosses = crossing.is_some();
    let warning = crossing.map(|(before, after)| reassessment_of(&node, &item, before, after));
    let unmet = match pending_changes(db, &node, &item, today, Some(crosses)).await? {
        Some(changes) => not_assessed(db, &item, node_id, changes).await?,
        None => Vec::new(),
    };
    Ok((unmet, warning))
}

/// Of a pending node's significant changes, those no standing assessment covers.
async fn not_assessed(
    db: &impl ConnectionTrait,
    item: &consignment_item::Model,
    node_id: &str,
    changes: Vec<ChangeItem>,
) -> Result<Vec<Unmet>, ApiError> {
    if changes.is_empty() {
        return Ok(Vec::new());
    }
    // An assessment covers the changes it was recorded for: an application corrected after it
    // (差戻し) may make another one, which then needs its own. A withdrawn one covers nothing,
    // and the refusal names the withdrawal.
    let recorded = pia_assessment::Entity::find()
        .filter(pia_assessment::Column::NodeId.eq(node_id))
        .order_by_desc(pia_assessment::Column::RecordedAt)
        .order_by_desc(pia_assessment::Column::Id)
        .all(db)
        .await?;
    let covers = |a: &pia_assessment::Model, c: &ChangeItem| {
        serde_json::from_str::<Vec<ChangeItem>>(&a.items)
            .unwrap_or_default()
            .contains(c)
    };
    Ok(changes
        .into_iter()
        .filter(|c| {
            !recorded
                .iter()
                .any(|a| a.withdrawn_at.is_none() && covers(a, c))
        })
        .map(|c| {
            let unmet = significant::not_assessed(c, &item.pia_file, node_id);
            match recorded
                .iter()
                .find(|a| a.withdrawn_at.is_some() && covers(a, &c))
            {
                Some(a) => significant::withdrawn(
                    unmet,
                    &a.id,
                    a.assessed_on,
                    a.withdrawal_reason.as_deref().unwrap_or_default(),
                ),
                None => unmet,
            }
        })
        .collect())
}

/// A failed note in an instance's audit chain as the API answers it: a racing writer is a
/// `concurrent_update`, anything else internal.
pub(crate) fn note_error(e: InstanceError) -> ApiError {
    match e {
        InstanceError::Concurrent => ApiError::new(ErrorCode::ConcurrentUpdate),
        other => ApiError::internal(other.to_string()),
    }
}

/// The municipality's record of the assessment made for a pending subcontract.
#[derive(Debug, Clone, Serialize, Deserialize, Validate, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssessmentInput {
    /// The pending node (the application's target) whose permission makes the change.
    #[validate(length(min = 1, max = 64))]
    pub node_id: String,
    /// The day the assessment was made (実施日).
    pub assessed_on: NaiveDate,
    /// What was assessed and concluded (提出時期に係る説明).
    #[validate(length(min = 1, max = 4000), custom(function = "not_blank"))]
    pub summary: String,
}

/// A recorded assessment.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AssessmentView {
    pub id: String,
    pub municipality_id: String,
    pub pia_file: String,
    pub node_id: String,
    pub items: Vec<ChangeItem>,
    pub assessed_on: NaiveDate,
    pub summary: String,
    /// The permission instance whose audit trail holds the record, and the record's seq.
    pub instance_id: String,
    pub audit_seq: i64,
    pub recorded_by: String,
    pub recorded_at: DateTime<Utc>,
    /// Set when it was withdrawn (recorded by mistake): it then covers no change.
    pub withdrawn_at: Option<DateTime<Utc>>,
    pub withdrawn_by: Option<String>,
    pub withdrawal_reason: Option<String>,
    /// The withdrawal's seq in the permission instance's audit trail.
    pub withdrawal_audit_seq: Option<i64>,
}

impl From<pia_assessment::Model> for AssessmentView {
    fn from(m: pia_assessment::Model) -> Self {
        Self {
            items: serde_json::from_str(&m.items).unwrap_or_default(),
            id: m.id,
            municipality_id: m.municipality_id,
            pia_file: m.pia_file,
            node_id: m.node_id,
            assessed_on: m.assessed_on,
            summary: m.summary,
            instance_id: m.instance_id,
            audit_seq: m.audit_seq,
            recorded_by: m.recorded_by,
            recorded_at: m.recorded_at,
            withdrawn_at: m.withdrawn_at,
            withdrawn_by: m.withdrawn_by,
            withdrawal_reason: m.withdrawal_reason,
            withdrawal_audit_seq: m.withdrawal_audit_seq,
        }
    }
}

/// Records that the municipality assessed the significant changes a pending subcontract would
/// make, in advance: the record and its audit entry in the permission instance's chain, in one
/// transaction.
pub async fn record_assessment(
    db: &DatabaseConnection,
    viewer: &Viewer,
    input: AssessmentInput,
    acting: &Acting<'_>,
) -> Result<AssessmentView, ApiError> {
    let today = acting.now.today;
    let txn = db.begin().await?;
    let node = chain_node::Entity::find_by_id(&input.node_id)
        .one(&txn)
        .await?
        .ok_or(ErrorCode::NotFound)?;
    let item = consignment_item::Entity::find_by_id(&node.item_id)
        .one(&txn)
        .await?
        .ok_or(ErrorCode::NotFound)?;
    may_write(viewer, &item.municipality_id)?;
    let mut errors = validation::errors_of(&input);
    errors.extend(not_in_future(Some(input.assessed_on), today, "assessed_on"));
    let changes = match pending_changes(&txn, &node, &item, today, None).await? {
        None => {
            errors.push(FieldError::new(
                "node_id",
                "この委託先ノードは許諾の判断待ちではありません。",
                "This node is not awaiting a permission decision.",
            ));
            Vec::new()
        }
        Some(changes) if changes.is_empty() => {
            errors.push(FieldError::new(
                "node_id",
                "この再委託は重要な変更に当たらないため、事前の評価の記録は不要です。",
                "This subcontract makes no significant change; no assessment needs recording.",
            ));
            changes
        }
        Some(changes) => changes,
    };
    validation::finish(errors)?;
    let target = application_target::Entity::find()
        .filter(application_target::Column::NodeId.eq(node.id.as_str()))
        .one(&txn)
        .await?
        .ok_or(ErrorCode::NotFound)?;
    let now = crate::services::db_time::to_db_precision(acting.now.at);
    let id = new_id(now);
    let summary = input.summary.trim().to_owned();
    let seq = instances::append_note(
        &txn,
        &target.instance_id,
        ASSESSMENT_EVENT,
        Some(&summary),
        json!({
            "assessment_id": id,
            "pia_file": item.pia_file,
            "items": changes,
            "assessed_on": input.assessed_on,
            "timing": "事前",
        }),
        acting,
    )
    .await
    .map_err(note_error)?;
    let row = pia_assessment::ActiveModel {
        id: Set(id),
        municipality_id: Set(item.municipality_id.clone()),
        pia_file: Set(item.pia_file.clone()),
        node_id: Set(node.id.clone()),
        items: Set(serde_json::to_string(&changes).map_err(ApiError::internal)?),
        assessed_on: Set(input.assessed_on),
        summary: Set(summary),
        instance_id: Set(target.instance_id.clone()),
        audit_seq: Set(seq),
        recorded_by: Set(viewer.user_id.clone()),
        recorded_at: Set(now),
        withdrawn_at: Set(None),
        withdrawn_by: Set(None),
        withdrawal_reason: Set(None),
        withdrawal_audit_seq: Set(None),
    }
    .insert(&txn)
    .await?;
    txn.commit().await?;
    Ok(row.into())
}

/// Why an assessment is withdrawn.
#[derive(Debug, Clone, Serialize, Deserialize, Validate, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WithdrawalInput {
    /// Why it was recorded by mistake (取下げの理由).
    #[validate(length(min = 1, max = 4000), custom(function = "not_blank"))]
    pub reason: String,
}

/// Withdraws an assessment recorded by mistake, while its subcontract still awaits the
/// decision (the decision may not have relied on it yet): the row keeps who, when and why, and
/// a `withdraw_assessment` record joins the permission instance's audit chain, in one
/// transaction. Afterwards it covers nothing, so the permission is blocked again until another
/// assessment is recorded. The municipality's writers only (auditors `403`, others `404`);
/// `409 conflict` when it is already withdrawn or the node was decided.
pub async fn withdraw_assessment(
    db: &DatabaseConnection,
    viewer: &Viewer,
    id: &str,
    input: WithdrawalInput,
    acting: &Acting<'_>,
) -> Result<AssessmentView, ApiError> {
    let txn = db.begin().await?;
    let row = pia_assessment::Entity::find_by_id(id)
        .one(&txn)
        .await?
        .ok_or(ErrorCode::NotFound)?;
    may_write(viewer, &row.municipality_id)?;
    validation::finish(validation::errors_of(&input))?;
    let conflict = |ja: &str, en: &str| {
        ApiError::new(ErrorCode::Conflict).with_details(vec![FieldError::new("id", ja, en)])
    };
    if row.withdrawn_at.is_some() {
        return Err(conflict(
            "この評価の記録は既に取り下げられています。",
            "This assessment has already been withdrawn.",
        ));
    }
    let node = chain_node::Entity::find_by_id(&row.node_id)
        .one(&txn)
        .await?
        .ok_or(ErrorCode::NotFound)?;
    if node.permission_state != "applying" {
        return Err(conflict(
            "この再委託は既に判断されたため、評価の記録は取り下げられません。",
            "The subcontract has been decided; the assessment can no longer be withdrawn.",
        ));
    }
    let now = crate::services::db_time::to_db_precision(acting.now.at);
    let reason = input.reason.trim().to_owned();
    let seq = instances::append_note(
        &txn,
        &row.instance_id,
        WITHDRAWAL_EVENT,
        Some(&reason),
        json!({
            "assessment_id": row.id,
            "pia_file": row.pia_file,
            "items": serde_json::from_str::<Value>(&row.items).unwrap_or(Value::Null),
            "assessed_on": row.assessed_on,
        }),
        acting,
    )
    .await
    .map_err(note_error)?;
    let done = pia_assessment::Entity::update_many()
        .col_expr(pia_assessment::Column::WithdrawnAt, Expr::value(now))
        .col_expr(
            pia_assessment::Column::WithdrawnBy,
            Expr::value(viewer.user_id.clone()),
        )
        .col_expr(
            pia_assessment::Column::WithdrawalReason,
            Expr::value(reason),
        )
        .col_expr(pia_assessment::Column::WithdrawalAuditSeq, Expr::value(seq))
        .filter(pia_assessment::Column::Id.eq(row.id.as_str()))
        .filter(pia_assessment::Column::WithdrawnAt.is_null())
        .exec(&txn)
        .await?;
    if done.rows_affected != 1 {
        return Err(ErrorCode::ConcurrentUpdate.into());
    }
    let row = pia_assessment::Entity::find_by_id(id)
        .one(&txn)
        .await?
        .ok_or(ErrorCode::NotFound)?;
    txn.commit().await?;
    Ok(row.into())
}

/// The assessments a municipality recorded, newest first; optionally of one PIA file.
pub async fn list_assessments(
    db: &impl ConnectionTrait,
    viewer: &Viewer,
    municipality: &str,
    pia_file_name: Option<&str>,
) -> Result<Vec<AssessmentView>, ApiError> {
    if !viewer.is_municipal(municipality) {
        return Err(ErrorCode::NotFound.into());
    }
    let mut q = pia_assessment::Entity::find()
        .filter(pia_assessment::Column::MunicipalityId.eq(municipality))
        .order_by_desc(pia_assessment::Column::RecordedAt)
        .order_by_desc(pia_assessment::Column::Id);
    if let Some(name) = pia_file_name {
        q = q.filter(pia_assessment::Column::PiaFile.eq(name));
    }
    Ok(q.all(db)
        .await?
        .into_iter()
        .map(AssessmentView::from)
        .collect())
}

/// Rows written straight to a test database: a municipality, its contractors, items of one
/// PIA file and their nodes.
#[cfg(test)]
pub(crate) mod fixtures {
    use chrono::{DateTime, NaiveDate, Utc};
    use entity::{chain_node, consignment_item};
    use sea_orm::{DatabaseConnection, Set};

    use crate::services::access::Viewer;
    use crate::services::users::{self, NewOrganisation};

    pub const CITY: &str = "city";
    pub const FILE: &str = "国民健康保険関係情報ファイル";

    /// A streamed export read to its end.
    pub async fn read_body(
        mut body: tokio::sync::mpsc::Receiver<Result<Vec<u8>, crate::error::ApiError>>,
    ) -> Result<Vec<u8>, crate::error::ApiError> {
        let mut out = Vec::new();
        while let Some(chunk) = body.recv().await {
            out.extend(chunk?);
        }
        Ok(out)
    }

    /// An officer of `org`.
    pub fn officer_of(org: &str) -> Viewer {
        Viewer {
            user_id: "officer".to_owned(),
            municipal: [org.to_owned()].into(),
            municipal_writer: [org.to_owned()].into(),
            contractor: Default::default(),
            member: [org.to_owned()].into(),
        }
    }

    /// The instant the fixtures start at, with the organisations created then, and how many
    /// items make more than two pages of an export (the last page's first three).
    pub async fn start(db: &DatabaseConnection) -> Result<(DateTime<Utc>, usize), String> {
        let now = crate::services::db_time::to_db_precision(
            DateTime::from_timestamp(1_792_000_000, 0).ok_or("a time")?,
        );
        organisations(db, now).await?;
        let page = usize::try_from(super::EXPORT_PAGE).map_err(|e| e.to_string())?;
        Ok((now, 2 * page + 3))
    }

    /// The `i`th item's id and registration: in threes at one instant, a second apart.
    pub fn nth(i: usize, now: DateTime<Utc>) -> (String, DateTime<Utc>) {
        let id = format!("item-{:05}-{}", i / 3, i % 3);
        let seconds = i64::try_from(i / 3).unwrap_or(i64::MAX);
        (id, now + chrono::Duration::seconds(seconds))
    }

    /// Writes the items and the nodes.
    pub async fn insert(
        db: &DatabaseConnection,
        items: Vec<consignment_item::ActiveModel>,
        nodes: Vec<chain_node::ActiveModel>,
    ) -> Result<(), sea_orm::DbErr> {
        use sea_orm::EntityTrait;
        for chunk in items.chunks(200) {
            consignment_item::Entity::insert_many(chunk.to_vec())
                .exec_without_returning(db)
                .await?;
        }
        for chunk in nodes.chunks(200) {
            chain_node::Entity::insert_many(chunk.to_vec())
                .exec_without_returning(db)
                .await?;
        }
        Ok(())
    }

    /// 目黒区 (`city`), 東京都国保連 (`t1`) and 国保中央会 (`t2`).
    pub async fn organisations(db: &DatabaseConnection, now: DateTime<Utc>) -> Result<(), String> {
        for (id, kind, name) in [
            (CITY, "municipality", "目黒区"),
            ("t1", "vendor", "東京都国保連"),
            ("t2", "vendor", "国保中央会"),
        ] {
            let org = NewOrganisation {
                id: id.to_owned(),
                kind: kind.to_owned(),
                name_ja: name.to_owned(),
                name_en: None,
            };
            users::create_organisation(db, org, now)
                .await
                .map_err(|e| format!("{e:?}"))?;
        }
        Ok(())
    }

    /// An item of `FILE` of `city` with `t1` at tier 1, registered at `at`.
    pub fn item(id: &str, title: &str, at: DateTime<Utc>) -> consignment_item::ActiveModel {
        let day = NaiveDate::from_ymd_opt(2026, 4, 1).unwrap_or_default();
        consignment_item::ActiveModel {
            id: Set(id.to_owned()),
            municipality_id: Set(CITY.to_owned()),
            owning_section: Set(None),
            title: Set(title.to_owned()),
            content: Set("内容".to_owned()),
            handler_bracket: Set("from_10_to_49".to_owned()),
            data_items: Set("[]".to_owned()),
            pia_file: Set(FILE.to_owned()),
            recording_medium: Set("電子".to_owned()),
            period_start: Set(day),
            period_end: Set(day),
            contractor_id: Set("t1".to_owned()),
            subcontract_policy: Set("書面により許諾する。".to_owned()),
            created_at: Set(at),
            updated_at: Set(at),
            version: Set(1),
            ..Default::default()
        }
    }

    /// A node of `item` in `state` since `at`, created then (no permission instance).
    #[allow(clippy::too_many_arguments)]
    pub fn node(
        id: &str,
        item: &str,
        parent: Option<&str>,
        tier: i32,
        contractor: &str,
        state: &str,
        created: DateTime<Utc>,
        at: DateTime<Utc>,
    ) -> chain_node::ActiveModel {
        let day = NaiveDate::from_ymd_opt(2026, 4, 1).unwrap_or_default();
        chain_node::ActiveModel {
            id: Set(id.to_owned()),
            item_id: Set(item.to_owned()),
            parent_id: Set(parent.map(str::to_owned)),
            tier: Set(tier),
            contractor_id: Set(contractor.to_owned()),
            scope_of_work: Set("運用".to_owned()),
            data_scope: Set("資格情報".to_owned()),
            reason: Set("運用".to_owned()),
            capability: Set("実績".to_owned()),
            inspection_requirements: Set("受け入れる".to_owned()),
            planned_amount: Set(None),
            structure_chart: Set("{}".to_owned()),
            supervision: Set("月次".to_owned()),
            period_start: Set(day),
            period_end: Set(day),
            hosts_environment: Set(false),
            cloud_classification: Set(None),
            handler_bracket: Set(None),
            service_name: Set(None),
            advance_permission: Set(None),
            permission_state: Set(state.to_owned()),
            state_changed_at: Set(at),
            state_reason: Set(None),
            created_at: Set(created),
            updated_at: Set(at),
            version: Set(1),
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::fixtures::{self, officer_of, CITY, FILE};
    use super::*;
    use crate::services::test_db::{backend_tests, Backend, TestDb, TestResult};

    async fn read_to_end(export: PiaExport) -> Result<Vec<u8>, ApiError> {
        fixtures::read_body(export.body).await
    }

    /// More items than two pages, registered in threes at the same instant (so a page boundary
    /// falls between items that only their ids order), every third with a permitted tier 2.
    async fn an_export_longer_than_a_page_keeps_registration_order(backend: Backend) -> TestResult {
        let db = TestDb::fresh(backend).await?;
        let (now, n) = fixtures::start(&db.conn).await?;
        let mut items = Vec::new();
        let mut nodes = Vec::new();
        for i in 0..n {
            // Items 498–500 share an instant across the first page's end: the id orders them.
            let (id, at) = fixtures::nth(i, now);
            items.push(fixtures::item(&id, &format!("事務{i}"), at));
            if i % 3 == 0 {
                let node = format!("{id}-t2");
                nodes.push(fixtures::node(
                    &node,
                    &id,
                    None,
                    2,
                    "t2",
                    "permitted",
                    at,
                    at,
                ));
            }
        }
        fixtures::insert(&db.conn, items, nodes).await?;

        let officer = officer_of(CITY);
        let export = export_pia(&db.conn, &officer, CITY, FILE, PiaFormat::Json).await?;
        assert_eq!(export.municipality, "目黒区");
        let json: Value = serde_json::from_slice(&read_to_end(export).await?)?;
        let listed = json["items"].as_array().ok_or("items")?;
        assert_eq!(listed.len(), n, "every item once, across the pages");
        for (i, item) in listed.iter().enumerate() {
            assert_eq!(item["number"], i + 1);
            assert_eq!(item["title"], format!("事務{i}"), "registration order");
            assert_eq!(item["subcontracts"], i % 3 == 0, "item {i}'s own nodes");
        }
        let csv =
            read_to_end(export_pia(&db.conn, &officer, CITY, FILE, PiaFormat::Csv).await?).await?;
        let csv = String::from_utf8(csv)?;
        assert!(csv.contains(&format!("\"[委託する] ({n}) 件\"")));
        assert!(csv.contains(&format!("\"委託事項{n}\",\"事務{}\"", n - 1)));

        for stranger in [officer_of("elsewhere"), Viewer::new("nobody", &[])] {
            let refused = export_pia(&db.conn, &stranger, CITY, FILE, PiaFormat::Csv).await;
            assert!(
                matches!(&refused, Err(e) if e.code() == ErrorCode::NotFound),
                "another municipality's officer and a contractor get 404"
            );
        }
        db.close().await
    }

    backend_tests!(an_export_longer_than_a_page_keeps_registration_order);
}
