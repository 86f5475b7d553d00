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

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, NaiveDate, Utc};
use entity::{
    application_target, audit_record, chain_node, consignment_item, document_setting,
    pia_assessment,
};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder,
};
use tokio::sync::mpsc;

use crate::documents::history::{
    self, rows_between, Added, AssessmentFact, ChangeHistory, HistoryFormat, HistoryHead,
    HistoryInputs, HistoryItem, HistoryNode, HistoryRenderer, Period,
};
use crate::documents::significant::ChangeItem;
use crate::error::{ApiError, ErrorCode, FieldError};
use crate::services::access::Viewer;
use crate::services::applications::node_state;
use crate::services::chains::{names, HandlerBracket};
use crate::services::documents::{
    begin_snapshot, items_of_file, items_page, section_node, stored_change_items, EXPORT_CHANNEL,
    EXPORT_PAGE,
};
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

/// Only the municipality's own staff read its history (others `404`); `from` may not be after
/// `to` (default: today). Returns the last day.
fn check(viewer: &Viewer, q: &HistoryQuery<'_>, today: NaiveDate) -> Result<NaiveDate, ApiError> {
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
    Ok(to)
}

/// The items as the history needs them, each with its number in the file: its nodes below tier
/// 1 (a no-access cloud is not a tier) with the moments each entered or left force, from the
/// permission instances' audit trails.
async fn history_items(
    db: &impl ConnectionTrait,
    municipality: &str,
    items: &[(usize, &consignment_item::Model)],
) -> Result<Vec<HistoryItem>, ApiError> {
    let nodes = chain_node::Entity::find()
        .filter(chain_node::Column::ItemId.is_in(items.iter().map(|(_, i)| i.id.clone())))
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
            .chain([municipality.to_owned()]),
    )
    .await?;
    let name = |id: &str| org_names.get(id).cloned().unwrap_or_else(|| id.to_owned());
    let by_id: HashMap<&str, &chain_node::Model> =
        nodes.iter().map(|n| (n.id.as_str(), n)).collect();
    let mut of_item: BTreeMap<&str, Vec<&chain_node::Model>> = BTreeMap::new();
    for n in &nodes {
        of_item.entry(n.item_id.as_str()).or_default().push(n);
    }
    Ok(items
        .iter()
        .map(|(number, item)| {
            let nodes = of_item.get(item.id.as_str()).cloned().unwrap_or_default();
            let tier1 = nodes
                .iter()
                .find(|n| n.parent_id.is_none())
                .map_or_else(|| name(&item.contractor_id), |n| name(&n.contractor_id));
            HistoryItem {
                number: *number,
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
        .collect())
}

/// The assessments of the file that cover changes (withdrawn ones were recorded by mistake and
/// cover none), and the kinds of change the municipality counts as significant.
async fn assessments_and_settings(
    db: &impl ConnectionTrait,
    municipality: &str,
    pia_file: &str,
) -> Result<(Vec<AssessmentFact>, Vec<ChangeItem>), ApiError> {
    let assessments = pia_assessment::Entity::find()
        .filter(pia_assessment::Column::MunicipalityId.eq(municipality))
        .filter(pia_assessment::Column::PiaFile.eq(pia_file))
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
    let settings = document_setting::Entity::find_by_id(municipality)
        .one(db)
        .await?;
    Ok((assessments, stored_change_items(settings.as_ref())))
}

/// The change history of one PIA file of `municipality`, for its own staff only, in memory
/// (the JSON pages; CSV and the print view stream through [`export_changes`]).
pub async fn change_history(
    db: &impl ConnectionTrait,
    viewer: &Viewer,
    q: HistoryQuery<'_>,
    today: NaiveDate,
) -> Result<ChangeHistory, ApiError> {
    let to = check(viewer, &q, today)?;
    let items = items_of_file(q.municipality, q.pia_file)
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
    let numbered: Vec<(usize, &consignment_item::Model)> = items
        .iter()
        .enumerate()
        .map(|(ix, i)| (ix + 1, i))
        .collect();
    let history_items = history_items(db, q.municipality, &numbered).await?;
    let (assessments, significant) =
        assessments_and_settings(db, q.municipality, q.pia_file).await?;
    let municipality = names(db, [q.municipality.to_owned()])
        .await?
        .remove(q.municipality)
        .unwrap_or_else(|| q.municipality.to_owned());
    let inputs = HistoryInputs {
        municipality,
        pia_file: q.pia_file.to_owned(),
        items: history_items,
        assessments,
        significant,
    };
    Ok(history::history(&inputs, q.from, to, wanted))
}

/// A change history export under way: the names for its file name, and its bytes as they are
/// rendered (an error ends it early; the response is then cut off).
pub struct HistoryExport {
    pub municipality: String,
    pub pia_file: String,
    pub body: mpsc::Receiver<Result<Vec<u8>, ApiError>>,
}

/// The change history of one PIA file of `municipality` (its own staff only) as CSV or the
/// print view, rendered while it is read, from one snapshot, by a task that stops when the
/// receiver is dropped. The rows come in the order of [`change_history`] without the whole
/// history ever being held: a first pass reads the items a page at a time (registration order,
/// keyset) and keeps only when each changed; a second renders the moments in windows of up to a
/// page of items, each window's rows sorted as the whole history sorts them.
pub async fn export_changes(
    db: &DatabaseConnection,
    viewer: &Viewer,
    q: HistoryQuery<'_>,
    today: NaiveDate,
    format: HistoryFormat,
) -> Result<HistoryExport, ApiError> {
    let to = check(viewer, &q, today)?;
    let txn = begin_snapshot(db).await?;
    let wanted = match q.item_id {
        Some(id) => Some(item_number(&txn, q.municipality, q.pia_file, id).await?),
        None => None,
    };
    let municipality = names(&txn, [q.municipality.to_owned()])
        .await?
        .remove(q.municipality)
        .unwrap_or_else(|| q.municipality.to_owned());
    let mut renderer = HistoryRenderer::new(format);
    let first = renderer.head(&HistoryHead {
        municipality: municipality.clone(),
        pia_file: q.pia_file.to_owned(),
        from: q.from,
        to,
    });
    let (tx, body) = mpsc::channel(EXPORT_CHANNEL);
    let file = FileOf {
        municipality_id: q.municipality.to_owned(),
        municipality: municipality.clone(),
        pia_file: q.pia_file.to_owned(),
    };
    let period = Period {
        from: q.from,
        to,
        item: wanted,
    };
    tokio::spawn(async move {
        if tx.send(Ok(first)).await.is_err() {
            return;
        }
        if let Err(error) = export_rows(&txn, &file, period, renderer, &tx).await {
            tracing::error!(%error, "the change history export failed");
            let _ = tx.send(Err(error)).await;
        }
    });
    Ok(HistoryExport {
        municipality,
        pia_file: q.pia_file.to_owned(),
        body,
    })
}

/// Which file an export is of.
struct FileOf {
    municipality_id: String,
    /// Its name.
    municipality: String,
    pia_file: String,
}

/// The number of an item in its file (`404` when the file has no such item).
async fn item_number(
    db: &impl ConnectionTrait,
    municipality: &str,
    pia_file: &str,
    id: &str,
) -> Result<usize, ApiError> {
    let item = items_of_file(municipality, pia_file)
        .filter(consignment_item::Column::Id.eq(id))
        .one(db)
        .await?
        .ok_or(ErrorCode::NotFound)?;
    let before = items_of_file(municipality, pia_file)
        .filter(
            Expr::tuple([
                Expr::col(consignment_item::Column::CreatedAt).into(),
                Expr::col(consignment_item::Column::Id).into(),
            ])
            .lt(Expr::tuple([
                Expr::value(item.created_at),
                Expr::value(item.id.clone()),
            ])),
        )
        .count(db)
        .await?;
    Ok(usize::try_from(before).unwrap_or(usize::MAX) + 1)
}

/// Renders the rows into `tx`; stops quietly when the receiver is gone.
async fn export_rows(
    txn: &DatabaseTransaction,
    file: &FileOf,
    period: Period,
    mut renderer: HistoryRenderer,
    tx: &mpsc::Sender<Result<Vec<u8>, ApiError>>,
) -> Result<(), ApiError> {
    let municipality = file.municipality_id.as_str();
    // First pass: every item's id and registration, and the moments it changed.
    let mut ids: Vec<String> = Vec::new();
    let mut created: Vec<DateTime<Utc>> = Vec::new();
    let mut moments: Vec<(DateTime<Utc>, usize)> = Vec::new();
    let mut after: Option<(DateTime<Utc>, String)> = None;
    loop {
        let page = items_page(txn, municipality, &file.pia_file, after.as_ref()).await?;
        let Some(last) = page.last() else {
            break;
        };
        after = Some((last.created_at, last.id.clone()));
        let numbered: Vec<(usize, &consignment_item::Model)> = page
            .iter()
            .enumerate()
            .map(|(ix, i)| (ids.len() + ix + 1, i))
            .collect();
        for item in history_items(txn, municipality, &numbered).await? {
            let ix = item.number - 1;
            moments.push((item.created_at, ix));
            moments.extend(
                item.nodes
                    .iter()
                    .flat_map(|n| n.changes.iter().map(move |(at, _)| (*at, ix))),
            );
        }
        ids.extend(page.iter().map(|i| i.id.clone()));
        created.extend(page.iter().map(|i| i.created_at));
    }
    moments.sort();
    moments.dedup();
    let (assessments, significant) =
        assessments_and_settings(txn, municipality, &file.pia_file).await?;
    let index_of: HashMap<&str, usize> = ids
        .iter()
        .enumerate()
        .map(|(ix, id)| (id.as_str(), ix))
        .collect();
    let page = usize::try_from(EXPORT_PAGE).unwrap_or(usize::MAX);
    // Second pass: windows of moments holding up to a page of items; one instant is never
    // split, so each window ends where the next begins in the history's order.
    let mut start = 0;
    while start < moments.len() {
        let mut end = start;
        let mut in_window = BTreeSet::new();
        while end < moments.len() {
            if in_window.len() >= page && moments[end].0 != moments[end - 1].0 {
                break;
            }
            in_window.insert(moments[end].1);
            end += 1;
        }
        let (first, last) = (moments[start].0, moments[end - 1].0);
        let models = consignment_item::Entity::find()
            .filter(consignment_item::Column::Id.is_in(in_window.iter().map(|ix| ids[*ix].clone())))
            .all(txn)
            .await?;
        let mut numbered: Vec<(usize, &consignment_item::Model)> = models
            .iter()
            .filter_map(|m| index_of.get(m.id.as_str()).map(|ix| (ix + 1, m)))
            .collect();
        numbered.sort_by_key(|(number, _)| *number);
        let inputs = HistoryInputs {
            municipality: file.municipality.clone(),
            pia_file: file.pia_file.clone(),
            items: history_items(txn, municipality, &numbered).await?,
            assessments: assessments.clone(),
            significant: significant.clone(),
        };
        let mut added = Added::new();
        for (ix, at) in created.iter().enumerate() {
            if first <= *at && *at <= last {
                added.entry(*at).or_default().push(ix + 1);
            }
        }
        let count_before = created.iter().filter(|at| **at < first).count();
        for row in rows_between(&inputs, &added, count_before, Some((first, last)), period) {
            if tx.send(Ok(renderer.row(&row))).await.is_err() {
                return Ok(());
            }
        }
        start = end;
    }
    let _ = tx.send(Ok(renderer.finish())).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;
    use crate::services::documents::fixtures::{self, officer_of, CITY, FILE};
    use crate::services::test_db::{backend_tests, Backend, TestDb, TestResult};

    async fn read_to_end(export: HistoryExport) -> Result<Vec<u8>, ApiError> {
        fixtures::read_body(export.body).await
    }

    /// More than two windows of items, registered in threes at one instant; every third gets a
    /// subcontract permitted later, in the reverse order of the items (so the history's order is
    /// not the items'), and one of them is revoked again. The streamed CSV and print view are
    /// byte for byte the history rendered in memory, also for one item's rows.
    async fn the_streamed_history_is_the_history_in_memory_byte_for_byte(
        backend: Backend,
    ) -> TestResult {
        let db = TestDb::fresh(backend).await?;
        let (now, n) = fixtures::start(&db.conn).await?;
        let mut items = Vec::new();
        let mut nodes = Vec::new();
        for i in 0..n {
            let (id, at) = fixtures::nth(i, now);
            items.push(fixtures::item(&id, &format!("事務{i}"), at));
            let tier1 = format!("{id}-t1");
            nodes.push(fixtures::node(
                &tier1,
                &id,
                None,
                1,
                "t1",
                "permitted",
                at,
                at,
            ));
            if i % 3 == 0 {
                let later = now + Duration::seconds(i64::try_from(2 * n - i)?);
                let (state, until) = if i == 3 {
                    ("revoked", later + Duration::seconds(5))
                } else {
                    ("permitted", later)
                };
                let node = format!("{id}-t2");
                let t2 = fixtures::node(&node, &id, Some(&tier1), 2, "t2", state, later, until);
                nodes.push(t2);
            }
        }
        fixtures::insert(&db.conn, items, nodes).await?;

        let officer = officer_of(CITY);
        let today = NaiveDate::from_ymd_opt(2027, 3, 31).ok_or("a day")?;
        for item in [None, Some("item-00001-0")] {
            let query = HistoryQuery {
                municipality: CITY,
                pia_file: FILE,
                item_id: item,
                from: None,
                to: None,
            };
            let whole = change_history(&db.conn, &officer, query.clone(), today).await?;
            assert!(whole.rows.len() > if item.is_none() { 2 * n } else { 3 });
            let streamed =
                |format| export_changes(&db.conn, &officer, query.clone(), today, format);
            let csv = read_to_end(streamed(HistoryFormat::Csv).await?).await?;
            assert_eq!(csv, history::to_csv(&whole), "CSV of {item:?}");
            let html = read_to_end(streamed(HistoryFormat::Html).await?).await?;
            assert_eq!(
                String::from_utf8(html)?,
                history::to_html(&whole),
                "print view of {item:?}"
            );
        }
        // In the history's order, not the items': the first item's subcontract was permitted
        // after the seventh's, and the fourth's revocation is the last change.
        let whole = change_history(
            &db.conn,
            &officer,
            HistoryQuery {
                municipality: CITY,
                pia_file: FILE,
                item_id: None,
                from: None,
                to: None,
            },
            today,
        )
        .await?;
        assert_eq!(whole.rows.last().map(|r| r.items.clone()), Some(vec![4]));
        let subcontracted = |number: usize| {
            whole
                .rows
                .iter()
                .position(|r| r.items == [number] && r.item.ends_with("⑥再委託事項"))
        };
        assert!(subcontracted(1) > subcontracted(7) && subcontracted(7).is_some());

        let stranger = officer_of("elsewhere");
        let query = HistoryQuery {
            municipality: CITY,
            pia_file: FILE,
            item_id: None,
            from: None,
            to: None,
        };
        let refused = export_changes(&db.conn, &stranger, query, today, HistoryFormat::Csv).await;
        assert!(matches!(&refused, Err(e) if e.code() == ErrorCode::NotFound));
        db.close().await
    }

    backend_tests!(the_streamed_history_is_the_history_in_memory_byte_for_byte);
}
