//! Evidence records (証跡) and their files.
//!
//! A record belongs to an organisation (and, where it applies, to one node); it counts for a
//! decision only once an officer of a municipality whose chain includes that organisation has
//! verified it, and only while valid. A verified record is frozen: a change is a new record.
//! Revoking a record, or its expiry found by the sweep, re-evaluates every permitted node that
//! relied on it and suspends those that no longer meet the policy, with their descendants, in
//! the same transaction.

use std::collections::BTreeSet;

use chrono::{DateTime, NaiveDate, Utc};
use entity::{chain_node, consignment_item, evidence_file, evidence_record, file};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Set, TransactionTrait,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::domain::evidence::EvidenceFields;
use crate::error::{ApiError, ErrorCode, FieldError, Msg};
use crate::services::access::Viewer;
use crate::services::applications::{self, AppError};
use crate::services::chains::{Page, Paged};
use crate::services::new_id;
use crate::validation;
use crate::workflow::{Now, WorkflowSet};

/// A new evidence record.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EvidenceInput {
    /// Whose evidence it is.
    pub organisation_id: String,
    /// The node it applies to, when it is about one node only (its structure chart, say).
    pub node_id: Option<String>,
    /// The kind's typed fields, tagged by `kind`.
    #[schema(value_type = Object)]
    pub fields: EvidenceFields,
}

/// An evidence record as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EvidenceView {
    pub id: String,
    pub organisation_id: String,
    pub node_id: Option<String>,
    pub kind: String,
    pub service_name: Option<String>,
    pub fields: serde_json::Value,
    pub valid_from: Option<NaiveDate>,
    pub valid_until: Option<NaiveDate>,
    pub renewal_pending: bool,
    /// `unverified`, `verified`, `expired` or `revoked` on the day asked.
    pub status: &'static str,
    pub verified_by: Option<String>,
    pub verified_at: Option<DateTime<Utc>>,
    pub revoked_by: Option<String>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub revoked_reason: Option<String>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub version: i64,
    pub files: Vec<FileView>,
    /// An ISMAP record that disagrees with the current ISMAP cloud service list: its
    /// registration number is not listed, or its service name or expiry differ. For the officer
    /// to look at; the record's verification is not changed by it.
    pub ismap_flags: Vec<crate::documents::ismap::Flag>,
}

/// A file attached to a record.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FileView {
    pub sha256: String,
    pub filename: String,
    pub media_type: String,
    pub size: i64,
    pub uploaded_by: String,
    pub uploaded_at: DateTime<Utc>,
}

fn status(r: &evidence_record::Model, today: NaiveDate) -> &'static str {
    if r.revoked_at.is_some() {
        "revoked"
    } else if r.valid_until.is_some_and(|u| u < today) && !(r.kind == "ismap" && r.renewal_pending)
    {
        "expired"
    } else if r.verified_at.is_some() {
        "verified"
    } else {
        "unverified"
    }
}

/// Municipalities whose chains include `org` (they may read and verify its evidence).
async fn municipalities_of(
    db: &impl ConnectionTrait,
    org: &str,
) -> Result<BTreeSet<String>, sea_orm::DbErr> {
    let items: Vec<String> = chain_node::Entity::find()
        .select_only()
        .column(chain_node::Column::ItemId)
        .filter(chain_node::Column::ContractorId.eq(org))
        .into_tuple()
        .all(db)
        .await?;
    Ok(consignment_item::Entity::find()
        .filter(consignment_item::Column::Id.is_in(items))
        .all(db)
        .await?
        .into_iter()
        .map(|i| i.municipality_id)
        .collect())
}

/// Organisations holding a node directly above one of `org`'s nodes.
async fn parents_of(
    db: &impl ConnectionTrait,
    org: &str,
) -> Result<BTreeSet<String>, sea_orm::DbErr> {
    let parent_ids: Vec<Option<String>> = chain_node::Entity::find()
        .select_only()
        .column(chain_node::Column::ParentId)
        .filter(chain_node::Column::ContractorId.eq(org))
        .into_tuple()
        .all(db)
        .await?;
    Ok(chain_node::Entity::find()
        .filter(chain_node::Column::Id.is_in(parent_ids.into_iter().flatten()))
        .all(db)
        .await?
        .into_iter()
        .map(|n| n.contractor_id)
        .collect())
}

/// How the viewer stands to an organisation's evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Standing {
    /// A member of the organisation: reads, records, attaches files.
    Owner,
    /// Staff of a municipality whose chain includes it: reads; writers also verify and revoke.
    Municipal { writer: bool },
    /// The contractor directly above it, which prepares the application for it (BRIEF C3):
    /// reads, records and attaches files.
    Parent,
}

async fn standing(
    db: &impl ConnectionTrait,
    viewer: &Viewer,
    org: &str,
) -> Result<Option<Standing>, sea_orm::DbErr> {
    let munis = municipalities_of(db, org).await?;
    if let Some(m) = munis.iter().find(|m| viewer.is_municipal(m)) {
        return Ok(Some(Standing::Municipal {
            writer: munis.iter().any(|x| viewer.writes_for(x)) || viewer.writes_for(m),
        }));
    }
    if viewer.is_member(org) {
        return Ok(Some(Standing::Owner));
    }
    if parents_of(db, org)
        .await?
        .iter()
        .any(|p| viewer.is_contractor(p))
    {
        return Ok(Some(Standing::Parent));
    }
    Ok(None)
}

async fn view(
    db: &impl ConnectionTrait,
    r: evidence_record::Model,
    today: NaiveDate,
) -> Result<EvidenceView, sea_orm::DbErr> {
    let attached = evidence_file::Entity::find()
        .filter(evidence_file::Column::EvidenceId.eq(r.id.as_str()))
        .order_by_asc(evidence_file::Column::UploadedAt)
        .all(db)
        .await?;
    let mut files = Vec::new();
    for a in attached {
        let meta: Option<(String, i64)> = file::Entity::find_by_id(&a.sha256)
            .select_only()
            .column(file::Column::MediaType)
            .column(file::Column::Size)
            .into_tuple()
            .one(db)
            .await?;
        let (media_type, size) = meta.unwrap_or_default();
        files.push(FileView {
            sha256: a.sha256,
            filename: a.filename,
            media_type,
            size,
            uploaded_by: a.uploaded_by,
            uploaded_at: a.uploaded_at,
        });
    }
    let ismap_flags = crate::services::ismap::flags_for(db, &r).await?;
    Ok(EvidenceView {
        ismap_flags,
        status: status(&r, today),
        fields: serde_json::from_str(&r.fields).unwrap_or_default(),
        id: r.id,
        organisation_id: r.organisation_id,
        node_id: r.node_id,
        kind: r.kind,
        service_name: r.service_name,
        valid_from: r.valid_from,
        valid_until: r.valid_until,
        renewal_pending: r.renewal_pending,
        verified_by: r.verified_by,
        verified_at: r.verified_at,
        revoked_by: r.revoked_by,
        revoked_at: r.revoked_at,
        revoked_reason: r.revoked_reason,
        created_by: r.created_by,
        created_at: r.created_at,
        version: r.version,
        files,
    })
}

/// The invalid fields of a new record, after checking that the viewer may record evidence of
/// its organisation (`NotFound` if it may not see the organisation, `Forbidden` if it may only
/// read). Every invalid field is listed, by its path in the request.
pub async fn check_input(
    db: &impl ConnectionTrait,
    viewer: &Viewer,
    input: &EvidenceInput,
) -> Result<Vec<FieldError>, ApiError> {
    let st = standing(db, viewer, &input.organisation_id).await?;
    match st {
        Some(Standing::Owner | Standing::Parent | Standing::Municipal { writer: true }) => {}
        Some(_) => return Err(ErrorCode::Forbidden.into()),
        None => return Err(ErrorCode::NotFound.into()),
    }
    let mut errors: Vec<FieldError> = input
        .fields
        .validate()
        .into_iter()
        .map(|mut e| {
            e.field = format!("fields.{}", e.field);
            e
        })
        .collect();
    errors.extend(validation::no_individual_numbers(input));
    if let Some(node_id) = &input.node_id {
        let node = chain_node::Entity::find_by_id(node_id).one(db).await?;
        if node.is_none_or(|n| n.contractor_id != input.organisation_id) {
            errors.push(FieldError::new(
                "node_id",
                "この組織が受託しているノードを指定してください。",
                "The node must be one the organisation holds.",
            ));
        }
    }
    Ok(errors)
}

/// Records evidence: by a member of the organisation, or by a municipal writer of a chain it
/// is in. Every invalid field is listed at once.
pub async fn create(
    db: &impl ConnectionTrait,
    viewer: &Viewer,
    input: EvidenceInput,
    now: DateTime<Utc>,
    today: NaiveDate,
) -> Result<EvidenceView, ApiError> {
    let errors = check_input(db, viewer, &input).await?;
    validation::finish(errors)?;
    let (valid_from, valid_until) = input.fields.validity();
    let renewal_pending = serde_json::to_value(&input.fields)
        .ok()
        .and_then(|v| {
            v.get("renewal_pending")
                .and_then(serde_json::Value::as_bool)
        })
        .unwrap_or(false);
    let model = evidence_record::ActiveModel {
        id: Set(new_id(now)),
        organisation_id: Set(input.organisation_id.clone()),
        node_id: Set(input.node_id.clone()),
        kind: Set(input.fields.kind().as_str().to_owned()),
        service_name: Set(input.fields.service_name().map(str::to_owned)),
        fields: Set(serde_json::to_string(&input.fields).map_err(ApiError::internal)?),
        valid_from: Set(valid_from),
        valid_until: Set(valid_until),
        renewal_pending: Set(renewal_pending),
        verified_by: Set(None),
        verified_at: Set(None),
        revoked_by: Set(None),
        revoked_at: Set(None),
        revoked_reason: Set(None),
        lapse_handled_on: Set(None),
        created_by: Set(viewer.user_id.clone()),
        created_at: Set(now),
        updated_at: Set(now),
        version: Set(1),
    }
    .insert(db)
    .await?;
    Ok(view(db, model, today).await?)
}

/// A record the viewer may see.
async fn visible(
    db: &impl ConnectionTrait,
    viewer: &Viewer,
    id: &str,
) -> Result<(evidence_record::Model, Standing), ApiError> {
    let r = evidence_record::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or(ErrorCode::NotFound)?;
    let st = standing(db, viewer, &r.organisation_id)
        .await?
        .ok_or(ErrorCode::NotFound)?;
    Ok((r, st))
}

pub async fn get(
    db: &impl ConnectionTrait,
    viewer: &Viewer,
    id: &str,
    today: NaiveDate,
) -> Result<EvidenceView, ApiError> {
    let (r, _) = visible(db, viewer, id).await?;
    Ok(view(db, r, today).await?)
}

/// Filters of the evidence list.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
pub struct EvidenceFilter {
    pub organisation: Option<String>,
    pub kind: Option<String>,
    /// Only records whose `valid_until` falls on or before this date.
    pub expiring_before: Option<NaiveDate>,
    /// Only records whose `valid_until` falls on or after this date.
    pub expiring_after: Option<NaiveDate>,
    pub page: Option<u64>,
    pub per_page: Option<u64>,
}

/// Which of `orgs` the viewer may read the evidence of (a few at a time: each is looked up).
pub async fn readable(
    db: &impl ConnectionTrait,
    viewer: &Viewer,
    orgs: impl IntoIterator<Item = String>,
) -> Result<BTreeSet<String>, ApiError> {
    let mut out = BTreeSet::new();
    for org in orgs {
        if !out.contains(&org) && standing(db, viewer, &org).await?.is_some() {
            out.insert(org);
        }
    }
    Ok(out)
}

/// The organisations whose evidence the viewer may read: its own, those in its
/// municipalities' chains, and those directly below its nodes.
pub async fn visible_organisations(
    db: &impl ConnectionTrait,
    viewer: &Viewer,
) -> Result<BTreeSet<String>, ApiError> {
    let mut orgs: BTreeSet<String> = viewer.member.clone();
    let items: Vec<String> = consignment_item::Entity::find()
        .select_only()
        .column(consignment_item::Column::Id)
        .filter(consignment_item::Column::MunicipalityId.is_in(viewer.municipal.iter().cloned()))
        .into_tuple()
        .all(db)
        .await?;
    orgs.extend(
        chain_node::Entity::find()
            .filter(chain_node::Column::ItemId.is_in(items))
            .all(db)
            .await?
            .into_iter()
            .map(|n| n.contractor_id),
    );
    let mine: Vec<String> = chain_node::Entity::find()
        .select_only()
        .column(chain_node::Column::Id)
        .filter(chain_node::Column::ContractorId.is_in(viewer.contractor.iter().cloned()))
        .into_tuple()
        .all(db)
        .await?;
    orgs.extend(
        chain_node::Entity::find()
            .filter(chain_node::Column::ParentId.is_in(mine))
            .all(db)
            .await?
            .into_iter()
            .map(|n| n.contractor_id),
    );
    Ok(orgs)
}

/// Evidence the viewer may see, soonest expiry first.
pub async fn list(
    db: &impl ConnectionTrait,
    viewer: &Viewer,
    filter: &EvidenceFilter,
    today: NaiveDate,
) -> Result<Paged<EvidenceView>, ApiError> {
    let mut orgs = visible_organisations(db, viewer).await?;
    if let Some(o) = &filter.organisation {
        orgs.retain(|x| x == o);
    }
    let mut q = evidence_record::Entity::find()
        .filter(evidence_record::Column::OrganisationId.is_in(orgs))
        .order_by_asc(evidence_record::Column::ValidUntil)
        .order_by_asc(evidence_record::Column::Id);
    if let Some(k) = &filter.kind {
        q = q.filter(evidence_record::Column::Kind.eq(k.as_str()));
    }
    if let Some(d) = filter.expiring_before {
        q = q.filter(evidence_record::Column::ValidUntil.lte(d));
    }
    if let Some(d) = filter.expiring_after {
        q = q.filter(evidence_record::Column::ValidUntil.gte(d));
    }
    let page = Page {
        page: filter.page,
        per_page: filter.per_page,
    };
    let total = q.clone().count(db).await?;
    let rows = q.offset(page.offset()).limit(page.limit()).all(db).await?;
    let mut items = Vec::new();
    for r in rows {
        items.push(view(db, r, today).await?);
    }
    Ok(Paged::new(items, total, page))
}

/// Evidence the viewer may see that expires within `days` of `today` (from today on), nearest
/// first; revoked records are left out. `organisation` narrows it to one organisation.
pub async fn expiring(
    db: &impl ConnectionTrait,
    viewer: &Viewer,
    organisation: Option<&str>,
    today: NaiveDate,
    days: u32,
) -> Result<Vec<EvidenceView>, ApiError> {
    let until = today + chrono::Days::new(u64::from(days));
    expiring_between(db, viewer, organisation, (today, until), today).await
}

/// Evidence the viewer may see whose `valid_until` falls within `from..=to`, nearest first;
/// revoked records are left out (the calendar).
pub async fn expiring_between(
    db: &impl ConnectionTrait,
    viewer: &Viewer,
    organisation: Option<&str>,
    (from, to): (NaiveDate, NaiveDate),
    today: NaiveDate,
) -> Result<Vec<EvidenceView>, ApiError> {
    let mut out = Vec::new();
    let mut number = 1;
    loop {
        let filter = EvidenceFilter {
            organisation: organisation.map(str::to_owned),
            kind: None,
            expiring_before: Some(to),
            expiring_after: Some(from),
            page: Some(number),
            per_page: Some(200),
        };
        let page = list(db, viewer, &filter, today).await?;
        let done = page.items.is_empty() || page.page * page.per_page >= page.total;
        out.extend(page.items.into_iter().filter(|e| e.status != "revoked"));
        if done {
            return Ok(out);
        }
        number += 1;
    }
}

/// A node an organisation holds, as its evidence library names it.
#[derive(Debug, Clone, Serialize)]
pub struct LibraryNode {
    pub id: String,
    pub item_title: String,
    pub municipality_name: String,
    pub tier: i32,
}

/// One organisation's evidence as the viewer may see and handle it.
#[derive(Debug, Clone, Serialize)]
pub struct Library {
    pub organisation_id: String,
    pub organisation_name: String,
    /// The viewer may record evidence and attach files.
    pub may_record: bool,
    /// The viewer may verify and revoke (an officer of a municipality whose chain includes it).
    pub may_verify: bool,
    /// Every record, newest first.
    pub records: Vec<EvidenceView>,
    /// The organisation's nodes the viewer may see (a record may be about one of them).
    pub nodes: Vec<LibraryNode>,
    /// Whom its NDA may name: `(id, name)` of the organisations (or municipality) directly
    /// above its nodes.
    pub counterparties: Vec<(String, String)>,
}

/// An organisation's evidence library; `NotFound` unless the viewer may see its evidence.
pub async fn library(
    db: &impl ConnectionTrait,
    viewer: &Viewer,
    org: &str,
    today: NaiveDate,
) -> Result<Library, ApiError> {
    let st = standing(db, viewer, org)
        .await?
        .ok_or(ErrorCode::NotFound)?;
    let rows = evidence_record::Entity::find()
        .filter(evidence_record::Column::OrganisationId.eq(org))
        .order_by_desc(evidence_record::Column::CreatedAt)
        .order_by_desc(evidence_record::Column::Id)
        .all(db)
        .await?;
    let mut records = Vec::new();
    for r in rows {
        records.push(view(db, r, today).await?);
    }
    let held = chain_node::Entity::find()
        .filter(chain_node::Column::ContractorId.eq(org))
        .order_by_asc(chain_node::Column::Tier)
        .order_by_asc(chain_node::Column::Id)
        .all(db)
        .await?;
    let mut nodes = Vec::new();
    let mut above = BTreeSet::new();
    for n in &held {
        let Ok((_, item)) = crate::services::chains::get_node(db, viewer, &n.id).await else {
            continue;
        };
        match &n.parent_id {
            None => {
                above.insert(item.municipality_id.clone());
            }
            Some(p) => {
                if let Some(parent) = chain_node::Entity::find_by_id(p).one(db).await? {
                    above.insert(parent.contractor_id);
                }
            }
        }
        nodes.push((n, item));
    }
    let names = crate::services::chains::names(
        db,
        nodes
            .iter()
            .map(|(_, i)| i.municipality_id.clone())
            .chain(above.iter().cloned())
            .chain([org.to_owned()]),
    )
    .await?;
    let name = |id: &str| names.get(id).cloned().unwrap_or_else(|| id.to_owned());
    Ok(Library {
        organisation_id: org.to_owned(),
        organisation_name: name(org),
        may_record: matches!(
            st,
            Standing::Owner | Standing::Parent | Standing::Municipal { writer: true }
        ),
        may_verify: st == (Standing::Municipal { writer: true }),
        records,
        nodes: nodes
            .iter()
            .map(|(n, item)| LibraryNode {
                id: n.id.clone(),
                item_title: item.title.clone(),
                municipality_name: name(&item.municipality_id),
                tier: n.tier,
            })
            .collect(),
        counterparties: above.iter().map(|id| (id.clone(), name(id))).collect(),
    })
}

/// An officer verifies a record: from then on it counts while valid, and it is frozen.
pub async fn verify(
    db: &impl ConnectionTrait,
    viewer: &Viewer,
    id: &str,
    expected_version: Option<i64>,
    now: DateTime<Utc>,
    today: NaiveDate,
) -> Result<EvidenceView, ApiError> {
    let (r, st) = visible(db, viewer, id).await?;
    if st != (Standing::Municipal { writer: true }) {
        return Err(ErrorCode::Forbidden.into());
    }
    if r.verified_at.is_some() || r.revoked_at.is_some() {
        return Err(
            ApiError::new(ErrorCode::Conflict).with_details(vec![FieldError::new(
                "status",
                "この証跡は既に確認済みか、取り消されています。",
                "This evidence is already verified or revoked.",
            )]),
        );
    }
    let files = evidence_file::Entity::find()
        .filter(evidence_file::Column::EvidenceId.eq(id))
        .count(db)
        .await?;
    if files == 0 {
        return Err(ApiError::invalid_field(
            "files",
            "確認する前に証跡のファイルを登録してください。",
            "Attach the evidence's file before verifying it.",
        ));
    }
    stale(&r, expected_version)?;
    let done = evidence_record::Entity::update_many()
        .col_expr(
            evidence_record::Column::VerifiedBy,
            Expr::value(viewer.user_id.clone()),
        )
        .col_expr(evidence_record::Column::VerifiedAt, Expr::value(now))
        .col_expr(evidence_record::Column::UpdatedAt, Expr::value(now))
        .col_expr(evidence_record::Column::Version, Expr::value(r.version + 1))
        .filter(evidence_record::Column::Id.eq(id))
        .filter(evidence_record::Column::Version.eq(r.version))
        .exec(db)
        .await?;
    if done.rows_affected != 1 {
        return Err(ErrorCode::StaleVersion.into());
    }
    get(db, viewer, id, today).await
}

fn stale(r: &evidence_record::Model, expected: Option<i64>) -> Result<(), ApiError> {
    match expected {
        Some(v) if v != r.version => Err(ApiError::new(ErrorCode::StaleVersion)
            .with_details(serde_json::json!({ "expected": v, "current": r.version }))),
        _ => Ok(()),
    }
}

/// What revoking did.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RevokeOutcome {
    pub evidence: EvidenceView,
    /// Nodes suspended because they relied on it, with their descendants.
    pub suspended_nodes: Vec<String>,
}

/// An officer revokes a record; the nodes that relied on it are re-evaluated and suspended
/// with their descendants, in the same transaction.
#[allow(clippy::too_many_arguments)]
pub async fn revoke(
    db: &DatabaseConnection,
    workflows: &WorkflowSet,
    viewer: &Viewer,
    id: &str,
    reason: &str,
    expected_version: Option<i64>,
    now: Now,
    request_id: Option<&str>,
) -> Result<RevokeOutcome, AppError> {
    if reason.trim().is_empty() {
        return Err(ApiError::invalid_field(
            "reason",
            "取消しの理由を入力してください。",
            "Give the reason for revoking.",
        )
        .into());
    }
    validation::finish(validation::no_individual_numbers(
        &serde_json::json!({ "reason": reason }),
    ))?;
    let txn = db.begin().await?;
    let (r, st) = visible(&txn, viewer, id).await?;
    if st != (Standing::Municipal { writer: true }) {
        return Err(ErrorCode::Forbidden.into());
    }
    if r.revoked_at.is_some() {
        return Err(ApiError::new(ErrorCode::Conflict).into());
    }
    stale(&r, expected_version)?;
    let at = crate::services::db_time::to_db_precision(now.at);
    let done = evidence_record::Entity::update_many()
        .col_expr(
            evidence_record::Column::RevokedBy,
            Expr::value(viewer.user_id.clone()),
        )
        .col_expr(evidence_record::Column::RevokedAt, Expr::value(at))
        .col_expr(
            evidence_record::Column::RevokedReason,
            Expr::value(reason.to_owned()),
        )
        .col_expr(evidence_record::Column::UpdatedAt, Expr::value(at))
        .col_expr(evidence_record::Column::Version, Expr::value(r.version + 1))
        .filter(evidence_record::Column::Id.eq(id))
        .filter(evidence_record::Column::Version.eq(r.version))
        .exec(&txn)
        .await?;
    if done.rows_affected != 1 {
        return Err(ErrorCode::StaleVersion.into());
    }
    let cause = Msg::new(
        format!("証跡({})が取り消されたため: {reason}", r.kind),
        format!("Evidence ({}) was revoked: {reason}", r.kind),
    );
    let suspended = applications::reevaluate_for_organisation(
        &txn,
        workflows,
        &r.organisation_id,
        &cause,
        now,
        request_id,
    )
    .await?;
    let evidence = get(&txn, viewer, id, now.today).await?;
    txn.commit().await?;
    Ok(RevokeOutcome {
        evidence,
        suspended_nodes: suspended,
    })
}

/// Finds verified records that expired before `now.today` and have not lapsed yet, and for
/// each, in its own transaction, marks it lapsed, writes its `evidence_expired` notification and
/// suspends the nodes that relied on it (with their descendants). Safe with many replicas: the
/// mark is a conditional update, so exactly one of them handles each record. Returns the
/// suspended nodes.
pub async fn sweep(
    db: &DatabaseConnection,
    workflows: &WorkflowSet,
    now: Now,
) -> Result<Vec<String>, AppError> {
    let due = evidence_record::Entity::find()
        .filter(evidence_record::Column::ValidUntil.lt(now.today))
        .filter(evidence_record::Column::LapseHandledOn.is_null())
        .filter(evidence_record::Column::VerifiedAt.is_not_null())
        .filter(evidence_record::Column::RevokedAt.is_null())
        .filter(
            Condition::any()
                .add(evidence_record::Column::Kind.ne("ismap"))
                .add(evidence_record::Column::RenewalPending.eq(false)),
        )
        .order_by_asc(evidence_record::Column::ValidUntil)
        .all(db)
        .await?;
    let mut suspended = Vec::new();
    for r in due {
        let txn = db.begin().await?;
        let claimed = evidence_record::Entity::update_many()
            .col_expr(
                evidence_record::Column::LapseHandledOn,
                Expr::value(now.today),
            )
            .filter(evidence_record::Column::Id.eq(r.id.as_str()))
            .filter(evidence_record::Column::LapseHandledOn.is_null())
            .exec(&txn)
            .await?;
        if claimed.rows_affected != 1 {
            continue;
        }
        crate::services::reminders::notify_expired(&txn, &r, now).await?;
        let until = r.valid_until.map(|d| d.to_string()).unwrap_or_default();
        let cause = Msg::new(
            format!("証跡({})の有効期限({until})が切れたため", r.kind),
            format!("Evidence ({}) expired on {until}", r.kind),
        );
        let mut done = applications::reevaluate_for_organisation(
            &txn,
            workflows,
            &r.organisation_id,
            &cause,
            now,
            Some("evidence-sweep"),
        )
        .await?;
        txn.commit().await?;
        suspended.append(&mut done);
    }
    Ok(suspended)
}

/// One uploaded file, before checks.
#[derive(Debug)]
pub struct Upload {
    pub filename: String,
    pub bytes: Vec<u8>,
}

/// Every upload that is not a PDF, PNG or JPEG by its content (`files[i]`), or `files` when
/// there is none at all.
pub fn upload_errors(uploads: &[Upload]) -> Vec<FieldError> {
    if uploads.is_empty() {
        return vec![FieldError::new(
            "files",
            "ファイルを選択してください。",
            "Choose at least one file.",
        )];
    }
    uploads
        .iter()
        .enumerate()
        .filter(|(_, u)| crate::domain::files::MediaType::sniff(&u.bytes).is_none())
        .map(|(ix, _)| {
            FieldError::new(
                format!("files[{ix}]"),
                "PDF・PNG・JPEGのファイルのみ登録できます(内容で判定します)。",
                "Only PDF, PNG and JPEG files are accepted (judged by content).",
            )
        })
        .collect()
}

/// The uploads judged by content, with [`upload_errors`].
fn sniff_uploads(
    uploads: Vec<Upload>,
) -> (
    Vec<(Upload, crate::domain::files::MediaType)>,
    Vec<FieldError>,
) {
    let errors = upload_errors(&uploads);
    let checked = uploads
        .into_iter()
        .filter_map(|u| crate::domain::files::MediaType::sniff(&u.bytes).map(|kind| (u, kind)))
        .collect();
    (checked, errors)
}

/// Stores checked files (content once per SHA-256) and links them to record `id`.
async fn store_files(
    txn: &impl ConnectionTrait,
    viewer: &Viewer,
    id: &str,
    checked: Vec<(Upload, crate::domain::files::MediaType)>,
    now: DateTime<Utc>,
) -> Result<(), sea_orm::DbErr> {
    for (u, kind) in checked {
        let sha = store_file(txn, u.bytes, kind, now).await?;
        evidence_file::Entity::insert(evidence_file::ActiveModel {
            evidence_id: Set(id.to_owned()),
            sha256: Set(sha),
            filename: Set(crate::domain::files::safe_display_filename(
                &u.filename,
                kind,
            )),
            uploaded_by: Set(viewer.user_id.clone()),
            uploaded_at: Set(now),
        })
        .on_conflict(
            OnConflict::columns([
                evidence_file::Column::EvidenceId,
                evidence_file::Column::Sha256,
            ])
            .do_nothing()
            .to_owned(),
        )
        .exec_without_returning(txn)
        .await?;
    }
    Ok(())
}

/// Records evidence together with its files, all or nothing: every invalid field and every
/// file that is not a PDF, PNG or JPEG is listed at once, and then nothing is stored.
pub async fn create_with_files(
    db: &DatabaseConnection,
    viewer: &Viewer,
    input: EvidenceInput,
    uploads: Vec<Upload>,
    now: DateTime<Utc>,
    today: NaiveDate,
) -> Result<EvidenceView, ApiError> {
    let (checked, file_errors) = sniff_uploads(uploads);
    let txn = db.begin().await?;
    let mut errors = check_input(&txn, viewer, &input).await?;
    if errors.is_empty() && !file_errors.is_empty() {
        return Err(ApiError::new(ErrorCode::UnsupportedFileType).with_details(file_errors));
    }
    errors.extend(file_errors);
    validation::finish(errors)?;
    let created = create(&txn, viewer, input, now, today).await?;
    store_files(&txn, viewer, &created.id, checked, now).await?;
    let out = get(&txn, viewer, &created.id, today).await?;
    txn.commit().await?;
    Ok(out)
}

/// Attaches files to an unverified record: each must be a PDF, PNG or JPEG by its content.
/// Content is stored once per SHA-256, in the same transaction as the link.
pub async fn attach(
    db: &DatabaseConnection,
    viewer: &Viewer,
    id: &str,
    uploads: Vec<Upload>,
    now: DateTime<Utc>,
    today: NaiveDate,
) -> Result<EvidenceView, ApiError> {
    let (checked, errors) = sniff_uploads(uploads);
    if errors.iter().any(|e| e.field == "files") {
        return Err(ApiError::validation(errors));
    }
    if !errors.is_empty() {
        return Err(ApiError::new(ErrorCode::UnsupportedFileType).with_details(errors));
    }
    let txn = db.begin().await?;
    let (r, st) = visible(&txn, viewer, id).await?;
    match st {
        Standing::Owner | Standing::Parent | Standing::Municipal { writer: true } => {}
        Standing::Municipal { writer: false } => return Err(ErrorCode::Forbidden.into()),
    }
    if r.verified_at.is_some() || r.revoked_at.is_some() {
        return Err(ApiError::new(ErrorCode::Conflict).with_details(vec![FieldError::new(
            "status",
            "確認済み・取消済みの証跡にはファイルを追加できません。新しい証跡として登録してください。",
            "A verified or revoked record is frozen; record a new one instead.",
        )]));
    }
    store_files(&txn, viewer, id, checked, now).await?;
    let out = view(&txn, r, today).await?;
    txn.commit().await?;
    Ok(out)
}

/// Stores a checked file's content once per SHA-256 (a second upload of the same bytes writes
/// nothing) and returns its hash.
pub(crate) async fn store_file(
    conn: &impl ConnectionTrait,
    bytes: Vec<u8>,
    kind: crate::domain::files::MediaType,
    now: DateTime<Utc>,
) -> Result<String, sea_orm::DbErr> {
    let sha = hex::encode(Sha256::digest(&bytes));
    let size = i64::try_from(bytes.len()).unwrap_or(i64::MAX);
    file::Entity::insert(file::ActiveModel {
        sha256: Set(sha.clone()),
        media_type: Set(kind.mime().to_owned()),
        size: Set(size),
        content: Set(bytes),
        created_at: Set(now),
    })
    .on_conflict(
        OnConflict::column(file::Column::Sha256)
            .do_nothing()
            .to_owned(),
    )
    .exec_without_returning(conn)
    .await?;
    Ok(sha)
}

/// A file's content and how to send it, if the viewer may see its record.
pub async fn download(
    db: &impl ConnectionTrait,
    viewer: &Viewer,
    id: &str,
    sha256: &str,
) -> Result<(file::Model, String), ApiError> {
    visible(db, viewer, id).await?;
    let link = evidence_file::Entity::find()
        .filter(evidence_file::Column::EvidenceId.eq(id))
        .filter(evidence_file::Column::Sha256.eq(sha256))
        .one(db)
        .await?
        .ok_or(ErrorCode::NotFound)?;
    let content = file::Entity::find_by_id(sha256)
        .one(db)
        .await?
        .ok_or(ErrorCode::NotFound)?;
    Ok((content, link.filename))
}
