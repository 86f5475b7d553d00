//! The ISMAP cloud service list: imports (admins only), their history with the difference from
//! the previous one, and the current list's verdict on ISMAP evidence records.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use entity::{evidence_record, ismap_entry, ismap_import};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait,
    QueryFilter, QueryOrder, Set, TransactionTrait,
};
use serde::Serialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::documents::ismap::{self, Diff, Entry, Flag};
use crate::domain::evidence::EvidenceFields;
use crate::error::{ApiError, ErrorCode};
use crate::services::access::Viewer;
use crate::services::document_trail::{self, Actor};
use crate::services::new_id;

/// The trail event of an import.
pub const IMPORT_EVENT: &str = "ismap_import";

/// Entries per multi-row insert.
const INSERT_CHUNK: usize = 500;

/// Who may do what with the list: admins import; admins and every municipality's staff read;
/// anyone else is told it does not exist.
#[derive(Debug, Clone, Copy)]
pub struct Access {
    pub admin: bool,
    pub municipal: bool,
}

impl Access {
    /// From the signed-in user's roles of today.
    pub fn of(viewer: &Viewer, admin: bool) -> Self {
        Self {
            admin,
            municipal: !viewer.municipal.is_empty(),
        }
    }

    fn read(self) -> Result<(), ApiError> {
        if self.admin || self.municipal {
            Ok(())
        } else {
            Err(ErrorCode::NotFound.into())
        }
    }

    fn import(self) -> Result<(), ApiError> {
        self.read()?;
        if self.admin {
            Ok(())
        } else {
            Err(ErrorCode::Forbidden.into())
        }
    }
}

/// An uploaded list.
#[derive(Debug, Clone)]
pub struct ImportInput {
    pub filename: Option<String>,
    pub bytes: Vec<u8>,
    /// Field (`registration_number`, …) → the file's header, for layouts other than the
    /// documented and the Japanese one.
    pub mapping: Option<BTreeMap<String, String>>,
}

/// How many entries each kind of difference touched.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DiffCounts {
    pub added: usize,
    pub removed: usize,
    pub service_name_changed: usize,
    pub provider_changed: usize,
    pub registration_date_changed: usize,
    pub expiry_changed: usize,
    pub remarks_changed: usize,
}

impl From<&Diff> for DiffCounts {
    fn from(d: &Diff) -> Self {
        Self {
            added: d.added.len(),
            removed: d.removed.len(),
            service_name_changed: d.service_name_changed.len(),
            provider_changed: d.provider_changed.len(),
            registration_date_changed: d.registration_date_changed.len(),
            expiry_changed: d.expiry_changed.len(),
            remarks_changed: d.remarks_changed.len(),
        }
    }
}

/// One import: who, when, the file's hash, the rows, and the difference from the previous one.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ImportView {
    pub id: String,
    pub sequence: i32,
    pub imported_by: String,
    pub imported_at: DateTime<Utc>,
    pub filename: Option<String>,
    pub sha256: String,
    /// `utf-8`, `utf-8-bom` or `shift_jis`.
    pub encoding: String,
    /// Field → the header it was read from.
    pub mapping: BTreeMap<String, String>,
    pub row_count: i32,
    pub previous_id: Option<String>,
    /// Whether it is the current list (the newest import).
    pub current: bool,
    pub counts: DiffCounts,
    /// `added`, `removed` (whole entries), and `service_name_changed`, `provider_changed`,
    /// `registration_date_changed`, `expiry_changed`, `remarks_changed` (`registration_number`,
    /// `before`, `after`), each ordered by registration number.
    #[schema(value_type = Object)]
    pub diff: Diff,
}

fn view(m: ismap_import::Model, current: bool) -> ImportView {
    let diff: Diff = serde_json::from_str(&m.diff).unwrap_or_default();
    ImportView {
        counts: DiffCounts::from(&diff),
        diff,
        mapping: serde_json::from_str(&m.mapping).unwrap_or_default(),
        id: m.id,
        sequence: m.sequence,
        imported_by: m.imported_by,
        imported_at: m.imported_at,
        filename: m.filename,
        sha256: m.sha256,
        encoding: m.encoding,
        row_count: m.row_count,
        previous_id: m.previous_id,
        current,
    }
}

async fn latest(conn: &impl ConnectionTrait) -> Result<Option<ismap_import::Model>, DbErr> {
    ismap_import::Entity::find()
        .order_by_desc(ismap_import::Column::Sequence)
        .one(conn)
        .await
}

fn to_entry(e: ismap_entry::Model) -> Entry {
    Entry {
        registration_number: e.registration_number,
        service_name: e.service_name,
        provider: e.provider,
        registration_date: e.registration_date,
        expiry_date: e.expiry_date,
        remarks: e.remarks,
    }
}

async fn entries_of(conn: &impl ConnectionTrait, import_id: &str) -> Result<Vec<Entry>, DbErr> {
    Ok(ismap_entry::Entity::find()
        .filter(ismap_entry::Column::ImportId.eq(import_id))
        .order_by_asc(ismap_entry::Column::RegistrationNumber)
        .all(conn)
        .await?
        .into_iter()
        .map(to_entry)
        .collect())
}

/// Imports a list: read whole (any error, with its row and column, and nothing is written),
/// then the import, its entries, its difference from the previous import and the trail entry
/// in one transaction. Two racing imports cannot both take the next sequence number: the loser
/// gets `concurrent_update` and may simply retry.
pub async fn import(
    db: &DatabaseConnection,
    access: Access,
    input: ImportInput,
    actor: Actor<'_>,
) -> Result<ImportView, ApiError> {
    access.import()?;
    let parsed =
        ismap::parse(&input.bytes, input.mapping.as_ref()).map_err(ApiError::validation)?;
    let sha256 = hex::encode(Sha256::digest(&input.bytes));
    let now = crate::services::db_time::to_db_precision(actor.at);
    let txn = db.begin().await?;
    let previous = latest(&txn).await?;
    let before = match &previous {
        Some(p) => entries_of(&txn, &p.id).await?,
        None => Vec::new(),
    };
    let diff = ismap::diff(&before, &parsed.entries);
    let id = new_id(now);
    let sequence = previous.as_ref().map_or(1, |p| p.sequence + 1);
    let row_count = i32::try_from(parsed.entries.len()).unwrap_or(i32::MAX);
    let row = ismap_import::ActiveModel {
        id: Set(id.clone()),
        sequence: Set(sequence),
        imported_by: Set(actor.user_id.to_owned()),
        imported_at: Set(now),
        filename: Set(input.filename.clone().filter(|f| !f.is_empty())),
        sha256: Set(sha256.clone()),
        encoding: Set(parsed.encoding.as_str().to_owned()),
        mapping: Set(serde_json::to_string(&parsed.mapping).map_err(ApiError::internal)?),
        row_count: Set(row_count),
        previous_id: Set(previous.as_ref().map(|p| p.id.clone())),
        diff: Set(serde_json::to_string(&diff).map_err(ApiError::internal)?),
    }
    .insert(&txn)
    .await
    .map_err(document_trail::numbered_insert_error)?;
    for chunk in parsed.entries.chunks(INSERT_CHUNK) {
        ismap_entry::Entity::insert_many(chunk.iter().map(|e| ismap_entry::ActiveModel {
            import_id: Set(id.clone()),
            registration_number: Set(e.registration_number.clone()),
            service_name: Set(e.service_name.clone()),
            provider: Set(e.provider.clone()),
            registration_date: Set(e.registration_date),
            expiry_date: Set(e.expiry_date),
            remarks: Set(e.remarks.clone()),
        }))
        .exec(&txn)
        .await?;
    }
    document_trail::record(
        &txn,
        actor,
        IMPORT_EVENT,
        &id,
        &json!({
            "sha256": sha256,
            "filename": input.filename,
            "row_count": row_count,
            "encoding": parsed.encoding.as_str(),
            "previous_id": previous.as_ref().map(|p| p.id.clone()),
            "changed_entries": diff.changed_entries(),
        }),
    )
    .await?;
    txn.commit().await?;
    Ok(view(row, true))
}

/// Every import, newest first.
pub async fn list(db: &impl ConnectionTrait, access: Access) -> Result<Vec<ImportView>, ApiError> {
    access.read()?;
    let rows = ismap_import::Entity::find()
        .order_by_desc(ismap_import::Column::Sequence)
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .enumerate()
        .map(|(i, m)| view(m, i == 0))
        .collect())
}

/// One import with its difference from the previous one.
pub async fn get(
    db: &impl ConnectionTrait,
    access: Access,
    id: &str,
) -> Result<ImportView, ApiError> {
    access.read()?;
    let row = ismap_import::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or(ErrorCode::NotFound)?;
    let current = latest(db).await?.is_some_and(|l| l.id == row.id);
    Ok(view(row, current))
}

/// The entries of one import, by registration number.
pub async fn entries(
    db: &impl ConnectionTrait,
    access: Access,
    id: &str,
) -> Result<Vec<Entry>, ApiError> {
    access.read()?;
    ismap_import::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or(ErrorCode::NotFound)?;
    Ok(entries_of(db, id).await?)
}

/// How an ISMAP evidence record compares with the current list (the newest import): empty when
/// it agrees, when it is not an ISMAP record, when it is revoked, or when no list was imported.
/// The record itself is not changed; the officer sees the flags and decides.
pub async fn flags_for(
    db: &impl ConnectionTrait,
    record: &evidence_record::Model,
) -> Result<Vec<Flag>, DbErr> {
    if record.kind != "ismap" || record.revoked_at.is_some() {
        return Ok(Vec::new());
    }
    let Ok(EvidenceFields::Ismap(fields)) = serde_json::from_str::<EvidenceFields>(&record.fields)
    else {
        return Ok(Vec::new());
    };
    let Some(current) = latest(db).await? else {
        return Ok(Vec::new());
    };
    let key = ismap::number_key(&fields.registration_number);
    let listed = ismap_entry::Entity::find()
        .filter(ismap_entry::Column::ImportId.eq(current.id.as_str()))
        .filter(ismap_entry::Column::RegistrationNumber.eq(key.as_str()))
        .one(db)
        .await?
        .map(to_entry);
    Ok(ismap::flags(&fields, listed.as_ref(), &current.id))
}

/// The decision screen's warnings for the ISMAP records the checklist relies on that disagree
/// with the current list, one per disagreement (`ismap_not_listed`,
/// `ismap_service_name_differs`, `ismap_expiry_differs`), in checklist order.
pub async fn checklist_warnings(
    db: &impl ConnectionTrait,
    checklist: &[crate::domain::policy::ChecklistEntry],
) -> Result<Vec<crate::domain::policy::Warning>, DbErr> {
    let ids: Vec<&str> = checklist
        .iter()
        .filter_map(|c| c.evidence_id.as_deref())
        .collect();
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let records: BTreeMap<String, evidence_record::Model> = evidence_record::Entity::find()
        .filter(evidence_record::Column::Id.is_in(ids))
        .filter(evidence_record::Column::Kind.eq("ismap"))
        .all(db)
        .await?
        .into_iter()
        .map(|r| (r.id.clone(), r))
        .collect();
    let mut out = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for entry in checklist {
        let Some(record) = entry.evidence_id.as_deref().and_then(|id| records.get(id)) else {
            continue;
        };
        if !seen.insert((entry.node_id.as_str(), record.id.as_str())) {
            continue;
        }
        for flag in flags_for(db, record).await? {
            out.push(crate::domain::policy::Warning {
                code: flag.code.to_owned(),
                message: flag.message.clone(),
                detail: json!({
                    "evidence_id": record.id,
                    "node_id": entry.node_id,
                    "organisation_id": entry.organisation_id,
                    "tier": entry.tier,
                    "registration_number": flag.registration_number,
                    "listed": flag.listed,
                    "import_id": flag.import_id,
                }),
            });
        }
    }
    Ok(out)
}
