//! The tamper-evident audit trail.
//!
//! Each instance has its own SHA-256 hash chain: record `seq` n carries `prev_hash` = the hash
//! of record n-1 (64 zeros for seq 1) and `hash` over all its fields (the canonical form is
//! defined in [`canonical`]). There is no global chain head, so unrelated transitions never wait
//! for each other; the instance row's `audit_seq` / `audit_head` is the chain head, guarded by
//! the same optimistic `version` update as the transition itself.
//!
//! A per-instance chain alone cannot show that its tail was cut off (delete the last records
//! and rewind the row's head, and what is left is a valid chain). [`anchor`] therefore commits
//! the instance heads periodically into one global chain of anchors; [`verify`] checks every
//! anchored head still exists with the same hash. An anchor's hash is only as safe as the
//! places it is copied to: whoever can rewrite the whole database can rewrite the anchors too,
//! so the CLI prints the latest anchor hash for keeping outside the database.

mod canonical;

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use entity::{audit_anchor, audit_anchor_head, audit_record, workflow_instance};
use sea_orm::sea_query::{
    Alias, Asterisk, CommonTableExpression, Expr, InsertStatement, OnConflict, Query,
    QueryStatementBuilder, SelectStatement, UpdateStatement, WithClause,
};
use sea_orm::{
    AccessMode, ActiveValue, ActiveValue::NotSet, ColumnTrait, Condition, ConnectionTrait,
    DatabaseConnection, DbBackend, DbErr, EntityTrait, IsolationLevel, QueryFilter, QueryOrder,
    QuerySelect, Set, SqlErr, Statement, TransactionTrait,
};
use serde_json::Value;

use self::canonical::{
    anchor_hash, canonical_json, heads_json, parse_heads, record_hash, AnchoredHead, RecordFields,
};
use crate::services::db_time::to_db_precision;

/// `prev_hash` of an instance's first record, and `audit_head` of an instance without records.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Records read per query while verifying.
const RECORD_PAGE: u64 = 1000;
/// Anchors read per query while verifying (an anchor can hold many heads).
const ANCHOR_PAGE: u64 = 8;
/// Anchored heads looked up per query while verifying.
const HEAD_LOOKUP_CHUNK: usize = 1000;
/// Rows per multi-row insert when an anchor updates `audit_anchor_heads`.
const UPSERT_CHUNK: usize = 1000;

/// The last link of an instance's chain, as kept on its row (`audit_seq`, `audit_head`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainHead {
    pub seq: i64,
    pub hash: String,
}

impl ChainHead {
    /// The head of an instance that has no record yet: seq 0, 64 zeros.
    pub fn genesis() -> Self {
        Self {
            seq: 0,
            hash: GENESIS_HASH.to_owned(),
        }
    }
}

/// One audit record to append; `seq`, `prev_hash` and `hash` are derived.
#[derive(Clone, Debug, PartialEq)]
pub struct NewAuditRecord {
    pub instance_id: String,
    /// Truncated to microseconds before it is hashed and stored.
    pub at: DateTime<Utc>,
    pub actor_id: String,
    /// The principal when the actor acted as deputy (代決).
    pub on_behalf_of: Option<String>,
    pub event: String,
    /// `None` for the record that creates the instance.
    pub from_state: Option<String>,
    pub to_state: String,
    pub step: Option<String>,
    pub comment: Option<String>,
    pub request_id: Option<String>,
    pub details: Value,
}

/// Appends the next record to an instance's chain and returns the new head.
///
/// `prev` is the instance row's `audit_seq` / `audit_head`, read in the caller's transaction
/// and guarded by its optimistic `version` update; the caller stores the returned head back on
/// the row in that transaction. The instance row must exist (`verify` reports a chain without
/// one), so a new instance is inserted with [`ChainHead::genesis`] first. Appending twice from the same head fails with
/// a unique violation on `(instance_id, seq)`. Insert only: the product never updates or deletes
/// audit records.
pub async fn append(
    conn: &impl ConnectionTrait,
    prev: ChainHead,
    rec: NewAuditRecord,
) -> Result<ChainHead, DbErr> {
    let sealed = seal(prev, rec)?;
    let head = sealed.head.clone();
    insert(conn, sealed).await?;
    Ok(head)
}

/// A record whose seq and hash are worked out, to be inserted with [`insert`].
#[derive(Debug, Clone)]
pub struct SealedRecord {
    row: audit_record::ActiveModel,
    head: ChainHead,
}

impl SealedRecord {
    /// The chain head once the record is inserted.
    pub fn head(&self) -> &ChainHead {
        &self.head
    }
}

/// Works out the next record of the chain that ends at `prev`, without writing it: a new
/// instance's row can then be inserted with its head already set (the record needs the row
/// to exist first). The rules of [`append`] apply.
pub fn seal(prev: ChainHead, rec: NewAuditRecord) -> Result<SealedRecord, DbErr> {
    let valid = prev.seq >= 0 && (prev.seq > 0 || prev.hash == GENESIS_HASH) && is_hash(&prev.hash);
    let Some(seq) = prev.seq.checked_add(1).filter(|_| valid) else {
        return Err(DbErr::Custom(format!(
            "audit chain head of instance {} is invalid: seq {} hash {:?}",
            rec.instance_id, prev.seq, prev.hash
        )));
    };
    let at = to_db_precision(rec.at);
    let hash = record_hash(&RecordFields {
        instance_id: &rec.instance_id,
        seq,
        at,
        actor_id: &rec.actor_id,
        on_behalf_of: rec.on_behalf_of.as_deref(),
        event: &rec.event,
        from_state: rec.from_state.as_deref(),
        to_state: &rec.to_state,
        step: rec.step.as_deref(),
        comment: rec.comment.as_deref(),
        request_id: rec.request_id.as_deref(),
        details: &rec.details,
        prev_hash: &prev.hash,
    });
    let row = audit_record::ActiveModel {
        id: NotSet,
        instance_id: Set(rec.instance_id),
        seq: Set(seq),
        at: Set(at),
        actor_id: Set(rec.actor_id),
        on_behalf_of: Set(rec.on_behalf_of),
        event: Set(rec.event),
        from_state: Set(rec.from_state),
        to_state: Set(rec.to_state),
        step: Set(rec.step),
        comment: Set(rec.comment),
        request_id: Set(rec.request_id),
        // Stored canonical, so the stored text is exactly what was hashed.
        details: Set(canonical_json(&rec.details)),
        prev_hash: Set(prev.hash),
        hash: Set(hash.clone()),
    };
    Ok(SealedRecord {
        row,
        head: ChainHead { seq, hash },
    })
}

/// Inserts a sealed record (see [`append`] for what the caller must guarantee).
pub async fn insert(conn: &impl ConnectionTrait, sealed: SealedRecord) -> Result<(), DbErr> {
    audit_record::Entity::insert(sealed.row)
        .exec_without_returning(conn)
        .await?;
    Ok(())
}

/// The columns of many sealed records, one array per column in the order of
/// [`RecordArrays::COLUMNS`], for one `INSERT … SELECT FROM unnest(…)` (PostgreSQL): the
/// statement's text stays the same whatever the number of records, so it is prepared once.
#[derive(Debug, Default)]
pub struct RecordArrays {
    pub instance_id: Vec<String>,
    pub seq: Vec<i64>,
    pub at: Vec<DateTime<Utc>>,
    pub actor_id: Vec<String>,
    pub on_behalf_of: Vec<Option<String>>,
    pub event: Vec<String>,
    pub from_state: Vec<Option<String>>,
    pub to_state: Vec<String>,
    pub step: Vec<Option<String>>,
    pub comment: Vec<Option<String>>,
    pub request_id: Vec<Option<String>>,
    pub details: Vec<String>,
    pub prev_hash: Vec<String>,
    pub hash: Vec<String>,
}

impl RecordArrays {
    /// The columns the arrays fill, with their PostgreSQL array types, in binding order.
    pub const COLUMNS: [(&'static str, &'static str); 14] = [
        ("instance_id", "text[]"),
        ("seq", "int8[]"),
        ("at", "timestamptz[]"),
        ("actor_id", "text[]"),
        ("on_behalf_of", "text[]"),
        ("event", "text[]"),
        ("from_state", "text[]"),
        ("to_state", "text[]"),
        ("step", "text[]"),
        ("comment", "text[]"),
        ("request_id", "text[]"),
        ("details", "text[]"),
        ("prev_hash", "text[]"),
        ("hash", "text[]"),
    ];

    /// Adds one record.
    pub fn push(&mut self, sealed: &SealedRecord) -> Result<(), DbErr> {
        let r = &sealed.row;
        self.instance_id.push(set(&r.instance_id, "instance_id")?);
        self.seq.push(set(&r.seq, "seq")?);
        self.at.push(set(&r.at, "at")?);
        self.actor_id.push(set(&r.actor_id, "actor_id")?);
        self.on_behalf_of
            .push(set(&r.on_behalf_of, "on_behalf_of")?);
        self.event.push(set(&r.event, "event")?);
        self.from_state.push(set(&r.from_state, "from_state")?);
        self.to_state.push(set(&r.to_state, "to_state")?);
        self.step.push(set(&r.step, "step")?);
        self.comment.push(set(&r.comment, "comment")?);
        self.request_id.push(set(&r.request_id, "request_id")?);
        self.details.push(set(&r.details, "details")?);
        self.prev_hash.push(set(&r.prev_hash, "prev_hash")?);
        self.hash.push(set(&r.hash, "hash")?);
        Ok(())
    }
}

/// The value of a column that [`seal`] sets.
fn set<T: Clone + Into<sea_orm::Value>>(value: &ActiveValue<T>, column: &str) -> Result<T, DbErr> {
    value
        .try_as_ref()
        .cloned()
        .ok_or_else(|| DbErr::Custom(format!("a sealed audit record has no {column}")))
}

/// A write of the instance row that a record can be chained to: the row's insert (a new
/// instance) or its update under the optimistic `version` (a transition).
pub trait RowWrite: QueryStatementBuilder + Send {
    /// Makes the statement return the instance id of the row it wrote (PostgreSQL only).
    fn returning_instance_id(&mut self);
}

impl RowWrite for InsertStatement {
    fn returning_instance_id(&mut self) {
        self.returning_col(workflow_instance::Column::Id);
    }
}

impl RowWrite for UpdateStatement {
    fn returning_instance_id(&mut self) {
        self.returning_col(workflow_instance::Column::Id);
    }
}

/// Writes the instance row with `row_write` and inserts the sealed record only if that wrote a
/// row, in one round trip. Returns whether anything was written: `false` when the update's
/// version condition matched no row (a racing writer won), in which case nothing was.
///
/// The caller guarantees what [`append`] requires, with `row_write` storing the record's head
/// on the row. On PostgreSQL this is one statement (a data-modifying `WITH`), atomic on its own,
/// so `conn` may be the pool when nothing else is written. SQLite allows no writes inside `WITH`:
/// there it is two statements in one call, the insert conditional on `changes()` of the first,
/// and `conn` must be a transaction.
pub async fn write_with_row(
    conn: &impl ConnectionTrait,
    mut row_write: impl RowWrite,
    sealed: SealedRecord,
) -> Result<bool, DbErr> {
    let backend = conn.get_database_backend();
    let executed = if backend == DbBackend::Sqlite {
        conn.execute(sqlite_write_with_row(
            &SqliteRowWrite::build(&row_write),
            &sealed,
            None,
        )?)
        .await?
    } else {
        const ROW: &str = "instance_row";
        let (mut insert, mut select) = record_insert(&sealed);
        row_write.returning_instance_id();
        let row_cte = CommonTableExpression::new()
            .query(row_write)
            .table_name(Alias::new(ROW))
            .to_owned();
        select.from(Alias::new(ROW));
        insert.select_from(select).map_err(query_error)?;
        let statement = insert.with(WithClause::new().cte(row_cte).to_owned());
        conn.execute(backend.build(&statement)).await?
    };
    // SQLite counts the rows of both statements, PostgreSQL those of the insert.
    let written = if backend == DbBackend::Sqlite { 2 } else { 1 };
    match executed.rows_affected() {
        0 => Ok(false),
        n if n == written => Ok(true),
        n => Err(DbErr::Custom(format!(
            "writing an audit record with its instance row changed {n} rows"
        ))),
    }
}

/// SQLite's form of [`write_with_row`]: the row write, then the record's insert conditional on
/// `changes()` of the first, as one two-statement [`Statement`]. With `tag`, the insert ends in
/// `RETURNING tag`, so that a caller running several of them in one call can tell which wrote.
pub fn sqlite_write_with_row(
    row_write: &SqliteRowWrite,
    sealed: &SealedRecord,
    tag: Option<u32>,
) -> Result<Statement, DbErr> {
    let builder = sea_orm::sea_query::SqliteQueryBuilder;
    let (mut insert, mut select) = record_insert(sealed);
    select.and_where(Expr::cust("changes() = 1"));
    insert.select_from(select).map_err(query_error)?;
    let SqliteRowWrite(first, mut values) = row_write.clone();
    let (second, more) = insert.build_any(&builder);
    values.0.extend(more.0);
    let sql = match tag {
        Some(tag) => format!("{first}; {second} RETURNING {tag}"),
        None => format!("{first}; {second}"),
    };
    Ok(Statement::from_sql_and_values(
        DbBackend::Sqlite,
        sql,
        values,
    ))
}

/// A row write built for SQLite: its SQL and values.
#[derive(Clone, Debug)]
pub struct SqliteRowWrite(String, sea_orm::sea_query::Values);

impl SqliteRowWrite {
    pub fn build(row_write: &impl RowWrite) -> Self {
        let (sql, values) = row_write.build_any(&sea_orm::sea_query::SqliteQueryBuilder);
        Self(sql, values)
    }
}

/// The insert of a sealed record's columns, and the `SELECT` of its values to insert from.
fn record_insert(sealed: &SealedRecord) -> (InsertStatement, SelectStatement) {
    crate::services::sql::insert_select(&sealed.row)
}

fn query_error(e: sea_orm::sea_query::error::Error) -> DbErr {
    DbErr::Custom(format!("building the audit record insert: {e}"))
}

/// What [`anchor`] wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnchorSummary {
    pub seq: i64,
    pub at: DateTime<Utc>,
    /// How many instance heads it commits.
    pub heads: usize,
    pub hash: String,
}

/// Writes the next anchor, committing the current head of every instance whose head changed
/// since it was last anchored, chained to the previous anchor by hash.
///
/// Returns `Ok(None)` when no anchor was written: either no head changed, or another replica
/// inserted the same anchor `seq` first (the primary key makes the racing insert fail; that
/// failure is rolled back and treated as "someone else anchored").
///
/// Only changed heads are committed, so an anchor's size follows the activity since the last
/// one, not the number of instances. Which heads changed is found by one join of
/// `workflow_instances` with `audit_anchor_heads` (the last anchored head per instance, a derived
/// index maintained here and never trusted by [`verify`]): a head is included when it differs
/// there in seq or hash, so a tampered index can only cause heads to be anchored again.
///
/// Runs in its own transaction (a savepoint when `conn` is already a transaction), which is why
/// it also needs [`TransactionTrait`]. On SQLite a concurrent anchor from another connection
/// fails with "database is locked" instead; SQLite runs one replica.
pub async fn anchor<C>(conn: &C, at: DateTime<Utc>) -> Result<Option<AnchorSummary>, DbErr>
where
    C: ConnectionTrait + TransactionTrait,
{
    let at = to_db_precision(at);
    let txn = conn.begin().await?;

    let previous: Option<(i64, String)> = audit_anchor::Entity::find()
        .select_only()
        .column(audit_anchor::Column::Seq)
        .column(audit_anchor::Column::Hash)
        .order_by_desc(audit_anchor::Column::Seq)
        .limit(1)
        .into_tuple()
        .one(&txn)
        .await?;
    let (prev_seq, prev_hash) = previous.unwrap_or_else(|| (0, GENESIS_HASH.to_owned()));

    let mut heads = changed_heads(&txn).await?;
    if heads.is_empty() {
        txn.rollback().await?;
        return Ok(None);
    }
    heads.sort_unstable_by(|a, b| a.instance_id.cmp(&b.instance_id));

    let seq = prev_seq + 1;
    let hash = anchor_hash(seq, at, &heads, &prev_hash);
    let row = audit_anchor::ActiveModel {
        seq: Set(seq),
        at: Set(at),
        heads: Set(heads_json(&heads)),
        prev_hash: Set(prev_hash),
        hash: Set(hash.clone()),
    };
    match audit_anchor::Entity::insert(row)
        .exec_without_returning(&txn)
        .await
    {
        Ok(_) => {}
        Err(err) if matches!(err.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
            txn.rollback().await?;
            return Ok(None);
        }
        Err(err) => return Err(err),
    }

    for chunk in heads.chunks(UPSERT_CHUNK) {
        let rows = chunk.iter().map(|head| audit_anchor_head::ActiveModel {
            instance_id: Set(head.instance_id.clone()),
            seq: Set(head.seq),
            hash: Set(head.hash.clone()),
            anchor_seq: Set(seq),
        });
        audit_anchor_head::Entity::insert_many(rows)
            .on_conflict(
                OnConflict::column(audit_anchor_head::Column::InstanceId)
                    .update_columns([
                        audit_anchor_head::Column::Seq,
                        audit_anchor_head::Column::Hash,
                        audit_anchor_head::Column::AnchorSeq,
                    ])
                    .to_owned(),
            )
            .exec_without_returning(&txn)
            .await?;
    }
    txn.commit().await?;
    Ok(Some(AnchorSummary {
        seq,
        at,
        heads: heads.len(),
        hash,
    }))
}

/// Heads of instances with at least one record whose head is not the one last anchored.
async fn changed_heads(conn: &impl ConnectionTrait) -> Result<Vec<AnchoredHead>, DbErr> {
    use audit_anchor_head::Column as A;
    use workflow_instance::Column as I;
    let (inst, anch) = (workflow_instance::Entity, audit_anchor_head::Entity);
    let query = Query::select()
        .column((inst, I::Id))
        .column((inst, I::AuditSeq))
        .column((inst, I::AuditHead))
        .from(inst)
        .left_join(anch, Expr::col((anch, A::InstanceId)).equals((inst, I::Id)))
        .and_where(Expr::col((inst, I::AuditSeq)).gt(0))
        .cond_where(
            Condition::any()
                .add(Expr::col((anch, A::InstanceId)).is_null())
                .add(Expr::col((anch, A::Seq)).ne(Expr::col((inst, I::AuditSeq))))
                .add(Expr::col((anch, A::Hash)).ne(Expr::col((inst, I::AuditHead)))),
        )
        .to_owned();
    let rows = conn
        .query_all(conn.get_database_backend().build(&query))
        .await?;
    rows.iter()
        .map(|row| {
            Ok(AnchoredHead {
                instance_id: row.try_get_by_index(0)?,
                seq: row.try_get_by_index(1)?,
                hash: row.try_get_by_index(2)?,
            })
        })
        .collect()
}

/// One thing [`verify`] found wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    /// A record's stored hash is not the hash of its fields: the record was edited.
    HashMismatch {
        instance_id: String,
        seq: i64,
        stored: String,
        computed: String,
    },
    /// A record's `prev_hash` is not the stored hash of the record before it.
    PrevLink {
        instance_id: String,
        seq: i64,
        prev_hash: String,
        previous_hash: String,
    },
    /// A seq is missing from an instance's chain (chains start at 1 and have no gaps).
    MissingSeq {
        instance_id: String,
        expected: i64,
        found: i64,
    },
    /// A record's `details` is not JSON, so its hash cannot be recomputed.
    UnreadableDetails {
        instance_id: String,
        seq: i64,
        error: String,
    },
    /// The instance row's `audit_seq` / `audit_head` is not its last record
    /// (seq 0 and 64 zeros when it has none).
    HeadMismatch {
        instance_id: String,
        row_seq: i64,
        row_head: String,
        last_seq: i64,
        last_hash: String,
    },
    /// Records exist for an instance that has no row.
    InstanceRowMissing { instance_id: String, last_seq: i64 },
    /// An anchor seq is missing (anchors start at 1 and have no gaps).
    AnchorMissingSeq { expected: i64, found: i64 },
    /// An anchor's `prev_hash` is not the stored hash of the anchor before it.
    AnchorPrevLink {
        anchor_seq: i64,
        prev_hash: String,
        previous_hash: String,
    },
    /// An anchor's stored hash is not the hash of its fields.
    AnchorHashMismatch {
        anchor_seq: i64,
        stored: String,
        computed: String,
    },
    /// An anchor's `heads` cannot be read.
    UnreadableAnchor { anchor_seq: i64, error: String },
    /// An anchor committed a record that no longer exists.
    AnchoredHeadMissing {
        anchor_seq: i64,
        instance_id: String,
        seq: i64,
    },
    /// An anchor committed a record whose stored hash has since changed.
    AnchoredHeadChanged {
        anchor_seq: i64,
        instance_id: String,
        seq: i64,
        anchored: String,
        stored: String,
    },
}

impl Problem {
    /// One line in Japanese.
    pub fn ja(&self) -> String {
        self.describe().0
    }

    /// One line in English.
    pub fn en(&self) -> String {
        self.describe().1
    }

    /// Both lines, Japanese and English, side by side so they stay in step.
    fn describe(&self) -> (String, String) {
        match self {
            Self::HashMismatch { instance_id, seq, stored, computed } => (
                format!(
                    "インスタンス {instance_id} の記録 seq {seq}: ハッシュが一致しません（保存値 {stored}、再計算値 {computed}）"
                ),
                format!(
                    "instance {instance_id}, record seq {seq}: hash mismatch (stored {stored}, recomputed {computed})"
                ),
            ),
            Self::PrevLink { instance_id, seq, prev_hash, previous_hash } => (
                format!(
                    "インスタンス {instance_id} の記録 seq {seq}: prev_hash {prev_hash} が直前の記録のハッシュ {previous_hash} と一致しません"
                ),
                format!(
                    "instance {instance_id}, record seq {seq}: prev link broken (prev_hash {prev_hash}, but the previous record's hash is {previous_hash})"
                ),
            ),
            Self::MissingSeq { instance_id, expected, found } => (
                format!(
                    "インスタンス {instance_id}: 記録 seq {expected} が欠落しています（次にあるのは seq {found}）"
                ),
                format!(
                    "instance {instance_id}: record seq {expected} is missing (next present: seq {found})"
                ),
            ),
            Self::UnreadableDetails { instance_id, seq, error } => (
                format!(
                    "インスタンス {instance_id} の記録 seq {seq}: details を JSON として読めません（{error}）"
                ),
                format!(
                    "instance {instance_id}, record seq {seq}: details is not valid JSON ({error})"
                ),
            ),
            Self::HeadMismatch { instance_id, row_seq, row_head, last_seq, last_hash } => (
                format!(
                    "インスタンス {instance_id}: インスタンス行のヘッド（seq {row_seq}、{row_head}）が最後の記録（seq {last_seq}、{last_hash}）と一致しません"
                ),
                format!(
                    "instance {instance_id}: head mismatch (the instance row says seq {row_seq}, {row_head}; the last record is seq {last_seq}, {last_hash})"
                ),
            ),
            Self::InstanceRowMissing { instance_id, last_seq } => (
                format!(
                    "インスタンス {instance_id}: 記録（最後は seq {last_seq}）があるのにインスタンス行がありません"
                ),
                format!(
                    "instance {instance_id}: records exist (last seq {last_seq}) but the instance row is missing"
                ),
            ),
            Self::AnchorMissingSeq { expected, found } => (
                format!(
                    "アンカー seq {expected} が欠落しています（次にあるのは seq {found}）"
                ),
                format!(
                    "anchor seq {expected} is missing (next present: seq {found})"
                ),
            ),
            Self::AnchorPrevLink { anchor_seq, prev_hash, previous_hash } => (
                format!(
                    "アンカー seq {anchor_seq}: prev_hash {prev_hash} が直前のアンカーのハッシュ {previous_hash} と一致しません"
                ),
                format!(
                    "anchor seq {anchor_seq}: prev link broken (prev_hash {prev_hash}, but the previous anchor's hash is {previous_hash})"
                ),
            ),
            Self::AnchorHashMismatch { anchor_seq, stored, computed } => (
                format!(
                    "アンカー seq {anchor_seq}: ハッシュが一致しません（保存値 {stored}、再計算値 {computed}）"
                ),
                format!(
                    "anchor seq {anchor_seq}: anchor hash mismatch (stored {stored}, recomputed {computed})"
                ),
            ),
            Self::UnreadableAnchor { anchor_seq, error } => (
                format!(
                    "アンカー seq {anchor_seq}: heads を読めません（{error}）"
                ),
                format!(
                    "anchor seq {anchor_seq}: heads cannot be read ({error})"
                ),
            ),
            Self::AnchoredHeadMissing { anchor_seq, instance_id, seq } => (
                format!(
                    "アンカー seq {anchor_seq} が記録したインスタンス {instance_id} の記録 seq {seq} がありません"
                ),
                format!(
                    "anchor seq {anchor_seq}: anchored head missing (instance {instance_id}, record seq {seq} no longer exists)"
                ),
            ),
            Self::AnchoredHeadChanged { anchor_seq, instance_id, seq, anchored, stored } => (
                format!(
                    "アンカー seq {anchor_seq} が記録したインスタンス {instance_id} の記録 seq {seq} のハッシュが変わっています（アンカー {anchored}、現在 {stored}）"
                ),
                format!(
                    "anchor seq {anchor_seq}: anchored head changed (instance {instance_id}, record seq {seq}: anchored {anchored}, now {stored})"
                ),
            ),
        }
    }
}

/// The result of [`verify`]: what was checked, how many problems, and the first one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Instance chains walked.
    pub instances: u64,
    /// Audit records checked.
    pub records: u64,
    /// Anchors checked.
    pub anchors: u64,
    /// Anchored heads looked up.
    pub anchored_heads: u64,
    /// Problems found; the walk goes on after the first to count them.
    pub problems: u64,
    /// The first problem in walk order: chains by instance id and seq, then instance rows
    /// without records, then anchors by seq.
    pub first_problem: Option<Problem>,
    /// Seq and hash of the last anchor, to compare with a copy kept outside the database.
    pub last_anchor: Option<(i64, String)>,
}

impl VerifyReport {
    /// No problem found.
    pub fn is_clean(&self) -> bool {
        self.problems == 0
    }

    fn found(&mut self, problem: Problem) {
        self.problems += 1;
        if self.first_problem.is_none() {
            self.first_problem = Some(problem);
        }
    }
}

/// Checks the whole audit trail: every instance chain in seq order (hashes, prev links,
/// gap-free seqs from 1), every instance row's head against its last record, the anchor chain,
/// and that every anchored head still exists with the same hash.
///
/// Reads page by page (records by `(instance_id, seq)` keyset, anchors by seq), so memory stays
/// bounded whatever the table sizes. On a live database run it in one snapshot, see
/// [`verify_snapshot`]; otherwise a transition committing mid-walk can look like a head mismatch.
pub async fn verify(conn: &impl ConnectionTrait) -> Result<VerifyReport, DbErr> {
    let mut report = VerifyReport::default();
    verify_chains(conn, &mut report).await?;
    verify_rows_without_records(conn, &mut report).await?;
    verify_anchors(conn, &mut report).await?;
    Ok(report)
}

/// [`verify`] inside one read-only snapshot: `REPEATABLE READ` on PostgreSQL, a read
/// transaction on SQLite (which sees one snapshot in WAL mode and blocks writers otherwise).
pub async fn verify_snapshot(db: &DatabaseConnection) -> Result<VerifyReport, DbErr> {
    let txn = match db.get_database_backend() {
        DbBackend::Postgres => {
            db.begin_with_config(
                Some(IsolationLevel::RepeatableRead),
                Some(AccessMode::ReadOnly),
            )
            .await?
        }
        _ => db.begin().await?,
    };
    let report = verify(&txn).await?;
    txn.rollback().await?;
    Ok(report)
}

/// The chain being walked.
struct Chain {
    instance_id: String,
    last_seq: i64,
    last_hash: String,
}

async fn verify_chains(
    conn: &impl ConnectionTrait,
    report: &mut VerifyReport,
) -> Result<(), DbErr> {
    use audit_record::Column as R;
    let mut chain: Option<Chain> = None;
    // Instance rows (seq, head) of the chains seen in the current page, fetched per page.
    let mut rows: HashMap<String, (i64, String)> = HashMap::new();
    let mut after: Option<(String, i64)> = None;
    loop {
        let mut query = audit_record::Entity::find()
            .order_by_asc(R::InstanceId)
            .order_by_asc(R::Seq)
            .limit(RECORD_PAGE);
        if let Some((instance_id, seq)) = after.take() {
            // Row-value keyset: uses the (instance_id, seq) unique index on both backends and
            // compares with the database's own collation, as ORDER BY does.
            query = query.filter(
                Expr::tuple([Expr::col(R::InstanceId).into(), Expr::col(R::Seq).into()]).gt(
                    Expr::tuple([Expr::val(instance_id).into(), Expr::val(seq).into()]),
                ),
            );
        }
        let page = query.all(conn).await?;
        let Some(last) = page.last() else { break };
        after = Some((last.instance_id.clone(), last.seq));

        let missing: HashSet<&str> = page
            .iter()
            .map(|r| r.instance_id.as_str())
            .filter(|id| !rows.contains_key(*id))
            .collect();
        rows.extend(instance_heads(conn, missing.into_iter().map(str::to_owned).collect()).await?);

        for rec in &page {
            let starts_chain = chain
                .as_ref()
                .is_none_or(|c| c.instance_id != rec.instance_id);
            if starts_chain {
                let next = Chain {
                    instance_id: rec.instance_id.clone(),
                    last_seq: 0,
                    last_hash: GENESIS_HASH.to_owned(),
                };
                if let Some(done) = chain.replace(next) {
                    let row = rows.remove(&done.instance_id);
                    check_head(&done, row, report);
                }
                report.instances += 1;
            }
            if let Some(current) = chain.as_mut() {
                check_record(current, rec, report);
            }
        }
        if (page.len() as u64) < RECORD_PAGE {
            break;
        }
    }
    if let Some(done) = chain {
        let row = rows.remove(&done.instance_id);
        check_head(&done, row, report);
    }
    Ok(())
}

/// `(audit_seq, audit_head)` of the given instances, by id.
async fn instance_heads(
    conn: &impl ConnectionTrait,
    ids: Vec<String>,
) -> Result<HashMap<String, (i64, String)>, DbErr> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let found: Vec<(String, i64, String)> = workflow_instance::Entity::find()
        .select_only()
        .column(workflow_instance::Column::Id)
        .column(workflow_instance::Column::AuditSeq)
        .column(workflow_instance::Column::AuditHead)
        .filter(workflow_instance::Column::Id.is_in(ids))
        .into_tuple()
        .all(conn)
        .await?;
    Ok(found
        .into_iter()
        .map(|(id, seq, head)| (id, (seq, head)))
        .collect())
}

fn check_record(chain: &mut Chain, rec: &audit_record::Model, report: &mut VerifyReport) {
    report.records += 1;
    let expected = chain.last_seq + 1;
    if rec.seq != expected {
        report.found(Problem::MissingSeq {
            instance_id: rec.instance_id.clone(),
            expected,
            found: rec.seq,
        });
    } else if rec.prev_hash != chain.last_hash {
        report.found(Problem::PrevLink {
            instance_id: rec.instance_id.clone(),
            seq: rec.seq,
            prev_hash: rec.prev_hash.clone(),
            previous_hash: chain.last_hash.clone(),
        });
    }
    match stored_record_hash(rec) {
        Ok(computed) => {
            if computed != rec.hash {
                report.found(Problem::HashMismatch {
                    instance_id: rec.instance_id.clone(),
                    seq: rec.seq,
                    stored: rec.hash.clone(),
                    computed,
                });
            }
        }
        Err(err) => report.found(Problem::UnreadableDetails {
            instance_id: rec.instance_id.clone(),
            seq: rec.seq,
            error: err.to_string(),
        }),
    }
    // Links are checked against what is stored, so one edited record is reported once.
    chain.last_seq = rec.seq;
    chain.last_hash.clone_from(&rec.hash);
}

/// The hash a stored record should have, recomputed from its columns.
fn stored_record_hash(rec: &audit_record::Model) -> Result<String, serde_json::Error> {
    let details: Value = serde_json::from_str(&rec.details)?;
    Ok(record_hash(&RecordFields {
        instance_id: &rec.instance_id,
        seq: rec.seq,
        at: rec.at,
        actor_id: &rec.actor_id,
        on_behalf_of: rec.on_behalf_of.as_deref(),
        event: &rec.event,
        from_state: rec.from_state.as_deref(),
        to_state: &rec.to_state,
        step: rec.step.as_deref(),
        comment: rec.comment.as_deref(),
        request_id: rec.request_id.as_deref(),
        details: &details,
        prev_hash: &rec.prev_hash,
    }))
}

fn check_head(chain: &Chain, row: Option<(i64, String)>, report: &mut VerifyReport) {
    match row {
        None => report.found(Problem::InstanceRowMissing {
            instance_id: chain.instance_id.clone(),
            last_seq: chain.last_seq,
        }),
        Some((row_seq, row_head)) if row_seq != chain.last_seq || row_head != chain.last_hash => {
            report.found(Problem::HeadMismatch {
                instance_id: chain.instance_id.clone(),
                row_seq,
                row_head,
                last_seq: chain.last_seq,
                last_hash: chain.last_hash.clone(),
            })
        }
        Some(_) => {}
    }
}

/// Instance rows that claim a head but have no record at all (every record deleted).
async fn verify_rows_without_records(
    conn: &impl ConnectionTrait,
    report: &mut VerifyReport,
) -> Result<(), DbErr> {
    use audit_record::Column as R;
    use workflow_instance::Column as I;
    let records_of_instance = Query::select()
        .expr(Expr::val(1))
        .from(audit_record::Entity)
        .and_where(
            Expr::col((audit_record::Entity, R::InstanceId))
                .equals((workflow_instance::Entity, I::Id)),
        )
        .to_owned();
    let orphans: Vec<(String, i64, String)> = workflow_instance::Entity::find()
        .select_only()
        .column(I::Id)
        .column(I::AuditSeq)
        .column(I::AuditHead)
        .filter(Expr::exists(records_of_instance).not())
        .filter(
            Condition::any()
                .add(I::AuditSeq.ne(0))
                .add(I::AuditHead.ne(GENESIS_HASH)),
        )
        .order_by_asc(I::Id)
        .into_tuple()
        .all(conn)
        .await?;
    for (instance_id, row_seq, row_head) in orphans {
        report.found(Problem::HeadMismatch {
            instance_id,
            row_seq,
            row_head,
            last_seq: 0,
            last_hash: GENESIS_HASH.to_owned(),
        });
    }
    Ok(())
}

async fn verify_anchors(
    conn: &impl ConnectionTrait,
    report: &mut VerifyReport,
) -> Result<(), DbErr> {
    let mut expected = 1;
    let mut previous_hash = GENESIS_HASH.to_owned();
    let mut after = 0;
    loop {
        let page = audit_anchor::Entity::find()
            .filter(audit_anchor::Column::Seq.gt(after))
            .order_by_asc(audit_anchor::Column::Seq)
            .limit(ANCHOR_PAGE)
            .all(conn)
            .await?;
        for anchor in &page {
            report.anchors += 1;
            if anchor.seq != expected {
                report.found(Problem::AnchorMissingSeq {
                    expected,
                    found: anchor.seq,
                });
            } else if anchor.prev_hash != previous_hash {
                report.found(Problem::AnchorPrevLink {
                    anchor_seq: anchor.seq,
                    prev_hash: anchor.prev_hash.clone(),
                    previous_hash: previous_hash.clone(),
                });
            }
            match parse_heads(&anchor.heads) {
                Ok(heads) => {
                    let computed = anchor_hash(anchor.seq, anchor.at, &heads, &anchor.prev_hash);
                    if computed != anchor.hash {
                        report.found(Problem::AnchorHashMismatch {
                            anchor_seq: anchor.seq,
                            stored: anchor.hash.clone(),
                            computed,
                        });
                    }
                    check_anchored_heads(conn, anchor.seq, &heads, report).await?;
                }
                Err(error) => report.found(Problem::UnreadableAnchor {
                    anchor_seq: anchor.seq,
                    error,
                }),
            }
            expected = anchor.seq + 1;
            previous_hash.clone_from(&anchor.hash);
            after = anchor.seq;
            report.last_anchor = Some((anchor.seq, anchor.hash.clone()));
        }
        if (page.len() as u64) < ANCHOR_PAGE {
            break;
        }
    }
    Ok(())
}

async fn check_anchored_heads(
    conn: &impl ConnectionTrait,
    anchor_seq: i64,
    heads: &[AnchoredHead],
    report: &mut VerifyReport,
) -> Result<(), DbErr> {
    use audit_record::Column as R;
    for chunk in heads.chunks(HEAD_LOOKUP_CHUNK) {
        // `(instance_id, seq) IN (SELECT * FROM (VALUES …))`: SQLite accepts row values on the
        // right of IN only from a subquery, and both backends then probe the unique index.
        let wanted = Query::select()
            .column(Asterisk)
            .from_values(
                chunk
                    .iter()
                    .map(|head| (head.instance_id.clone(), head.seq)),
                Alias::new("wanted"),
            )
            .to_owned();
        let found: Vec<(String, i64, String)> = audit_record::Entity::find()
            .select_only()
            .column(R::InstanceId)
            .column(R::Seq)
            .column(R::Hash)
            .filter(
                Expr::tuple([Expr::col(R::InstanceId).into(), Expr::col(R::Seq).into()])
                    .in_subquery(wanted),
            )
            .into_tuple()
            .all(conn)
            .await?;
        let stored: HashMap<(String, i64), String> = found
            .into_iter()
            .map(|(instance_id, seq, hash)| ((instance_id, seq), hash))
            .collect();
        for head in chunk {
            report.anchored_heads += 1;
            match stored.get(&(head.instance_id.clone(), head.seq)) {
                None => report.found(Problem::AnchoredHeadMissing {
                    anchor_seq,
                    instance_id: head.instance_id.clone(),
                    seq: head.seq,
                }),
                Some(hash) if *hash != head.hash => report.found(Problem::AnchoredHeadChanged {
                    anchor_seq,
                    instance_id: head.instance_id.clone(),
                    seq: head.seq,
                    anchored: head.hash.clone(),
                    stored: hash.clone(),
                }),
                Some(_) => {}
            }
        }
    }
    Ok(())
}

/// The report as the CLI prints it: each line in Japanese, then in English.
pub fn render(report: &VerifyReport) -> String {
    let mut lines = Vec::new();
    if report.is_clean() {
        lines.push("監査証跡の検証: 異常なし".to_owned());
        lines.push("Audit trail verification: no problems found".to_owned());
    } else {
        lines.push(format!("監査証跡の検証: 異常 {} 件", report.problems));
        lines.push(format!(
            "Audit trail verification: {} problem(s) found",
            report.problems
        ));
    }
    lines.push(format!(
        "検証対象: インスタンス {} 件、記録 {} 件、アンカー {} 件（アンカー済みヘッド {} 件）",
        report.instances, report.records, report.anchors, report.anchored_heads
    ));
    lines.push(format!(
        "Checked: {} instance(s), {} record(s), {} anchor(s) ({} anchored head(s))",
        report.instances, report.records, report.anchors, report.anchored_heads
    ));
    if let Some(problem) = &report.first_problem {
        lines.push(format!("最初の異常: {}", problem.ja()));
        lines.push(format!("First problem: {}", problem.en()));
    }
    match &report.last_anchor {
        Some((seq, hash)) => {
            lines.push(format!(
                "最新アンカー: seq {seq}、ハッシュ {hash}（データベース外の控えと照合してください）"
            ));
            lines.push(format!(
                "Latest anchor: seq {seq}, hash {hash} (compare with the copy kept outside the database)"
            ));
        }
        None => {
            lines.push("アンカーはまだありません".to_owned());
            lines.push("No anchor yet".to_owned());
        }
    }
    let mut text = lines.join("\n");
    text.push('\n');
    text
}

fn is_hash(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::test_db::{backend_tests, insert_instance, Backend, TestDb, TestResult};
    use chrono::Duration;
    use sea_orm::{ExecResult, PaginatorTrait};
    use serde_json::json;

    /// A fixed instant with nanoseconds, `seconds` after it.
    fn t(seconds: i64) -> DateTime<Utc> {
        DateTime::<Utc>::UNIX_EPOCH
            + Duration::seconds(1_795_000_000 + seconds)
            + Duration::nanoseconds(123_456_789)
    }

    /// The `n`-th record of an instance, shaped like a real transition.
    fn nth_record(instance_id: &str, n: i64, at: DateTime<Utc>) -> NewAuditRecord {
        let (event, from, to) = match n {
            1 => ("create", None, "draft"),
            2 => ("submit", Some("draft"), "review"),
            _ => ("approve", Some("review"), "review"),
        };
        NewAuditRecord {
            instance_id: instance_id.to_owned(),
            at,
            actor_id: format!("user-{n}"),
            on_behalf_of: (n == 3).then(|| "manager-1".to_owned()),
            event: event.to_owned(),
            from_state: from.map(str::to_owned),
            to_state: to.to_owned(),
            step: (n >= 3).then(|| "chief".to_owned()),
            comment: Some(format!("コメント {n} \"quoted\"\n")),
            request_id: Some(format!("req-{instance_id}-{n}")),
            details: json!({"n": n, "unmet": [], "nested": {"z": 1.5, "a": "委託"}}),
        }
    }

    /// What the instances service does for one transition: read the row, then write the next
    /// record with the row's new head under the optimistic version guard, in one transaction.
    async fn transition(
        conn: &DatabaseConnection,
        instance_id: &str,
        at: DateTime<Utc>,
    ) -> Result<ChainHead, DbErr> {
        let txn = conn.begin().await?;
        let row = workflow_instance::Entity::find_by_id(instance_id)
            .one(&txn)
            .await?
            .ok_or_else(|| DbErr::RecordNotFound(instance_id.to_owned()))?;
        let prev = ChainHead {
            seq: row.audit_seq,
            hash: row.audit_head,
        };
        let rec = nth_record(instance_id, prev.seq + 1, at);
        let state = rec.to_state.clone();
        let sealed = seal(prev, rec)?;
        let head = sealed.head().clone();
        let update = head_update(instance_id, row.version, &state, &head, at);
        if !write_with_row(&txn, update, sealed).await? {
            return Err(DbErr::Custom("version conflict".to_owned()));
        }
        txn.commit().await?;
        Ok(head)
    }

    /// The instance row's update for a transition to `state` with `head`, if it still has `version`.
    fn head_update(
        instance_id: &str,
        version: i64,
        state: &str,
        head: &ChainHead,
        at: DateTime<Utc>,
    ) -> UpdateStatement {
        use sea_orm::QueryTrait as _;
        use workflow_instance::Column as I;
        workflow_instance::Entity::update_many()
            .col_expr(I::State, Expr::value(state))
            .col_expr(I::Version, Expr::value(version + 1))
            .col_expr(I::AuditSeq, Expr::value(head.seq))
            .col_expr(I::AuditHead, Expr::value(head.hash.clone()))
            .col_expr(I::UpdatedAt, Expr::value(to_db_precision(at)))
            .filter(I::Id.eq(instance_id))
            .filter(I::Version.eq(version))
            .into_query()
    }

    /// Instances with `records` records each.
    async fn seed(conn: &DatabaseConnection, instances: &[&str], records: i64) -> TestResult {
        for (i, id) in instances.iter().enumerate() {
            insert_instance(conn, id, t(0)).await?;
            for n in 1..=records {
                transition(conn, id, t(n * 60 + i as i64)).await?;
            }
        }
        Ok(())
    }

    async fn stored(
        conn: &impl ConnectionTrait,
        instance_id: &str,
        seq: i64,
    ) -> Result<audit_record::Model, Box<dyn std::error::Error + Send + Sync>> {
        Ok(audit_record::Entity::find()
            .filter(audit_record::Column::InstanceId.eq(instance_id))
            .filter(audit_record::Column::Seq.eq(seq))
            .one(conn)
            .await?
            .ok_or("record present")?)
    }

    /// Tampering as someone with write access to the database would.
    async fn tamper_record(
        conn: &impl ConnectionTrait,
        instance_id: &str,
        seq: i64,
        column: audit_record::Column,
        value: impl Into<sea_orm::Value>,
    ) -> Result<ExecResult, DbErr> {
        let query = Query::update()
            .table(audit_record::Entity)
            .value(column, value.into())
            .and_where(Expr::col(audit_record::Column::InstanceId).eq(instance_id))
            .and_where(Expr::col(audit_record::Column::Seq).eq(seq))
            .to_owned();
        conn.execute(conn.get_database_backend().build(&query))
            .await
    }

    async fn delete_record(
        conn: &impl ConnectionTrait,
        instance_id: &str,
        seq: i64,
    ) -> Result<u64, DbErr> {
        let deleted = audit_record::Entity::delete_many()
            .filter(audit_record::Column::InstanceId.eq(instance_id))
            .filter(audit_record::Column::Seq.eq(seq))
            .exec(conn)
            .await?;
        Ok(deleted.rows_affected)
    }

    async fn set_row_head(
        conn: &impl ConnectionTrait,
        instance_id: &str,
        seq: i64,
        hash: &str,
    ) -> Result<u64, DbErr> {
        let updated = workflow_instance::Entity::update_many()
            .col_expr(workflow_instance::Column::AuditSeq, Expr::value(seq))
            .col_expr(workflow_instance::Column::AuditHead, Expr::value(hash))
            .filter(workflow_instance::Column::Id.eq(instance_id))
            .exec(conn)
            .await?;
        Ok(updated.rows_affected)
    }

    async fn appending_three_records_to_two_instances_verifies_clean(
        backend: Backend,
    ) -> TestResult {
        let db = TestDb::fresh(backend).await?;
        seed(&db.conn, &["i1", "i2"], 3).await?;

        let first = stored(&db.conn, "i1", 1).await?;
        let second = stored(&db.conn, "i1", 2).await?;
        let third = stored(&db.conn, "i1", 3).await?;
        assert_eq!(first.prev_hash, GENESIS_HASH);
        assert_eq!(second.prev_hash, first.hash);
        assert_eq!(third.prev_hash, second.hash);
        assert!(is_hash(&third.hash));
        // Bit-exact round trip of the truncated timestamp, and of the canonical details text.
        assert_eq!(second.at, to_db_precision(t(120)));
        assert_eq!(second.at.timestamp_subsec_nanos(), 123_456_000);
        assert_eq!(
            second.details,
            r#"{"n":2,"nested":{"a":"委託","z":1.5},"unmet":[]}"#
        );
        assert_eq!(third.on_behalf_of.as_deref(), Some("manager-1"));
        let row = workflow_instance::Entity::find_by_id("i1")
            .one(&db.conn)
            .await?
            .ok_or("row present")?;
        assert_eq!((row.audit_seq, row.audit_head), (3, third.hash));

        let report = verify_snapshot(&db.conn).await?;
        assert!(report.is_clean(), "{}", render(&report));
        assert_eq!(
            (report.instances, report.records, report.anchors),
            (2, 6, 0)
        );

        let summary = anchor(&db.conn, t(1000))
            .await?
            .ok_or("an anchor is written")?;
        assert_eq!((summary.seq, summary.heads), (1, 2));
        let report = verify(&db.conn).await?;
        assert!(report.is_clean(), "{}", render(&report));
        assert_eq!((report.anchors, report.anchored_heads), (1, 2));
        assert_eq!(report.last_anchor, Some((1, summary.hash)));
        let text = render(&report);
        assert!(text.contains("異常なし"), "{text}");
        assert!(text.contains("no problems found"), "{text}");
        db.close().await
    }

    async fn an_edited_comment_is_reported_as_a_hash_mismatch_naming_instance_and_seq(
        backend: Backend,
    ) -> TestResult {
        let db = TestDb::fresh(backend).await?;
        seed(&db.conn, &["i1", "i2"], 3).await?;
        tamper_record(&db.conn, "i2", 2, audit_record::Column::Comment, "改ざん").await?;

        let report = verify(&db.conn).await?;
        assert_eq!(report.problems, 1, "{}", render(&report));
        let original = stored(&db.conn, "i2", 2).await?.hash;
        assert!(matches!(
            &report.first_problem,
            Some(Problem::HashMismatch { instance_id, seq: 2, stored, computed })
                if instance_id == "i2" && *stored == original && *computed != original
        ));
        let text = render(&report);
        assert!(
            text.contains("First problem: instance i2, record seq 2: hash mismatch"),
            "{text}"
        );
        assert!(
            text.contains("最初の異常: インスタンス i2 の記録 seq 2: ハッシュが一致しません"),
            "{text}"
        );
        db.close().await
    }

    async fn a_deleted_middle_record_is_reported_as_a_missing_seq(backend: Backend) -> TestResult {
        let db = TestDb::fresh(backend).await?;
        seed(&db.conn, &["i1", "i2"], 3).await?;
        assert_eq!(delete_record(&db.conn, "i1", 2).await?, 1);

        let report = verify(&db.conn).await?;
        assert_eq!(report.problems, 1, "{}", render(&report));
        assert_eq!(
            report.first_problem,
            Some(Problem::MissingSeq {
                instance_id: "i1".to_owned(),
                expected: 2,
                found: 3,
            })
        );
        db.close().await
    }

    async fn a_deleted_last_record_is_reported_as_a_head_mismatch(backend: Backend) -> TestResult {
        let db = TestDb::fresh(backend).await?;
        seed(&db.conn, &["i1", "i2"], 3).await?;
        let second = stored(&db.conn, "i2", 2).await?;
        assert_eq!(delete_record(&db.conn, "i2", 3).await?, 1);

        let report = verify(&db.conn).await?;
        assert_eq!(report.problems, 1, "{}", render(&report));
        assert!(matches!(
            &report.first_problem,
            Some(Problem::HeadMismatch { instance_id, row_seq: 3, last_seq: 2, last_hash, .. })
                if instance_id == "i2" && *last_hash == second.hash
        ));
        db.close().await
    }

    async fn an_instance_whose_records_are_all_deleted_is_reported_as_a_head_mismatch(
        backend: Backend,
    ) -> TestResult {
        let db = TestDb::fresh(backend).await?;
        seed(&db.conn, &["i1", "i2"], 2).await?;
        delete_record(&db.conn, "i1", 2).await?;
        delete_record(&db.conn, "i1", 1).await?;

        let report = verify(&db.conn).await?;
        assert_eq!(report.problems, 1, "{}", render(&report));
        assert!(matches!(
            &report.first_problem,
            Some(Problem::HeadMismatch { instance_id, row_seq: 2, last_seq: 0, .. })
                if instance_id == "i1"
        ));
        db.close().await
    }

    async fn an_edited_record_with_a_recomputed_hash_breaks_the_next_prev_link(
        backend: Backend,
    ) -> TestResult {
        let db = TestDb::fresh(backend).await?;
        seed(&db.conn, &["i1", "i2"], 3).await?;
        tamper_record(&db.conn, "i1", 2, audit_record::Column::Comment, "改ざん").await?;
        let edited = stored(&db.conn, "i1", 2).await?;
        let rehashed = stored_record_hash(&edited)?;
        tamper_record(
            &db.conn,
            "i1",
            2,
            audit_record::Column::Hash,
            rehashed.clone(),
        )
        .await?;

        let report = verify(&db.conn).await?;
        assert_eq!(report.problems, 1, "{}", render(&report));
        assert!(matches!(
            &report.first_problem,
            Some(Problem::PrevLink { instance_id, seq: 3, previous_hash, .. })
                if instance_id == "i1" && *previous_hash == rehashed
        ));
        db.close().await
    }

    async fn an_edited_last_record_with_recomputed_hash_and_head_is_caught_by_the_anchor(
        backend: Backend,
    ) -> TestResult {
        let db = TestDb::fresh(backend).await?;
        seed(&db.conn, &["i1", "i2"], 3).await?;
        anchor(&db.conn, t(1000)).await?.ok_or("anchored")?;
        let original = stored(&db.conn, "i1", 3).await?.hash;

        // A consistent forgery of the chain itself: record, its hash and the row's head.
        tamper_record(&db.conn, "i1", 3, audit_record::Column::Comment, "改ざん").await?;
        let rehashed = stored_record_hash(&stored(&db.conn, "i1", 3).await?)?;
        tamper_record(
            &db.conn,
            "i1",
            3,
            audit_record::Column::Hash,
            rehashed.clone(),
        )
        .await?;
        set_row_head(&db.conn, "i1", 3, &rehashed).await?;

        let report = verify(&db.conn).await?;
        assert_eq!(report.problems, 1, "{}", render(&report));
        assert_eq!(
            report.first_problem,
            Some(Problem::AnchoredHeadChanged {
                anchor_seq: 1,
                instance_id: "i1".to_owned(),
                seq: 3,
                anchored: original,
                stored: rehashed,
            })
        );
        db.close().await
    }

    async fn a_truncated_chain_with_a_rewound_head_is_caught_by_the_anchor(
        backend: Backend,
    ) -> TestResult {
        let db = TestDb::fresh(backend).await?;
        seed(&db.conn, &["i1", "i2"], 3).await?;
        anchor(&db.conn, t(1000)).await?.ok_or("anchored")?;

        let second = stored(&db.conn, "i1", 2).await?;
        delete_record(&db.conn, "i1", 3).await?;
        set_row_head(&db.conn, "i1", 2, &second.hash).await?;
        // A later anchor commits the rewound head but cannot hide the earlier one.
        let later = anchor(&db.conn, t(2000)).await?.ok_or("anchored")?;
        assert_eq!(later.heads, 1);

        let report = verify(&db.conn).await?;
        assert_eq!(report.problems, 1, "{}", render(&report));
        assert_eq!(
            report.first_problem,
            Some(Problem::AnchoredHeadMissing {
                anchor_seq: 1,
                instance_id: "i1".to_owned(),
                seq: 3,
            })
        );
        assert!(render(&report).contains("anchored head missing"));
        db.close().await
    }

    async fn an_anchor_commits_only_heads_changed_since_the_previous_one(
        backend: Backend,
    ) -> TestResult {
        let db = TestDb::fresh(backend).await?;
        seed(&db.conn, &["i1", "i2", "i3"], 1).await?;
        insert_instance(&db.conn, "i4", t(0)).await?; // no record yet: nothing to anchor

        let first = anchor(&db.conn, t(1000)).await?.ok_or("anchored")?;
        assert_eq!((first.seq, first.heads), (1, 3));
        assert_eq!(anchor(&db.conn, t(1001)).await?, None, "nothing changed");

        let head = transition(&db.conn, "i2", t(1002)).await?;
        let second = anchor(&db.conn, t(1003)).await?.ok_or("anchored")?;
        assert_eq!((second.seq, second.heads), (2, 1));
        let row = audit_anchor::Entity::find_by_id(2)
            .one(&db.conn)
            .await?
            .ok_or("anchor 2 present")?;
        assert_eq!(row.heads, format!(r#"[["i2",2,"{}"]]"#, head.hash));
        assert_eq!(row.prev_hash, first.hash);
        assert_eq!(row.at, to_db_precision(t(1003)));

        let report = verify(&db.conn).await?;
        assert!(report.is_clean(), "{}", render(&report));
        assert_eq!((report.anchors, report.anchored_heads), (2, 4));
        db.close().await
    }

    async fn edited_and_deleted_anchors_are_reported(backend: Backend) -> TestResult {
        let db = TestDb::fresh(backend).await?;
        seed(&db.conn, &["i1", "i2"], 1).await?;
        anchor(&db.conn, t(1000)).await?.ok_or("anchored")?;
        transition(&db.conn, "i1", t(1001)).await?;
        anchor(&db.conn, t(1002)).await?.ok_or("anchored")?;
        transition(&db.conn, "i2", t(1003)).await?;
        anchor(&db.conn, t(1004)).await?.ok_or("anchored")?;

        let original = audit_anchor::Entity::find_by_id(2)
            .one(&db.conn)
            .await?
            .ok_or("anchor 2 present")?;
        let forged = original.heads.replace("\"i1\",2,", "\"i1\",1,");
        assert_ne!(forged, original.heads);
        audit_anchor::Entity::update_many()
            .col_expr(audit_anchor::Column::Heads, Expr::value(forged))
            .filter(audit_anchor::Column::Seq.eq(2))
            .exec(&db.conn)
            .await?;
        let report = verify(&db.conn).await?;
        assert!(
            matches!(
                report.first_problem,
                Some(Problem::AnchorHashMismatch { anchor_seq: 2, .. })
            ),
            "{}",
            render(&report)
        );

        audit_anchor::Entity::delete_by_id(2).exec(&db.conn).await?;
        let report = verify(&db.conn).await?;
        assert_eq!(report.problems, 1, "{}", render(&report));
        assert_eq!(
            report.first_problem,
            Some(Problem::AnchorMissingSeq {
                expected: 2,
                found: 3
            })
        );
        db.close().await
    }

    async fn appending_from_a_stale_or_invalid_head_fails(backend: Backend) -> TestResult {
        let db = TestDb::fresh(backend).await?;
        seed(&db.conn, &["i1"], 1).await?;
        let stale = append(&db.conn, ChainHead::genesis(), nth_record("i1", 1, t(5))).await;
        assert!(
            matches!(
                stale.as_ref().map_err(DbErr::sql_err),
                Err(Some(SqlErr::UniqueConstraintViolation(_)))
            ),
            "{stale:?}"
        );
        let invalid = ChainHead {
            seq: 0,
            hash: "f".repeat(64),
        };
        let rejected = append(&db.conn, invalid, nth_record("i1", 1, t(5))).await;
        assert!(matches!(rejected, Err(DbErr::Custom(_))), "{rejected:?}");
        assert_eq!(audit_record::Entity::find().count(&db.conn).await?, 1);
        db.close().await
    }

    async fn version_and_head(
        conn: &DatabaseConnection,
        instance_id: &str,
    ) -> Result<(i64, ChainHead), Box<dyn std::error::Error + Send + Sync>> {
        let row = workflow_instance::Entity::find_by_id(instance_id)
            .one(conn)
            .await?
            .ok_or("row present")?;
        let head = ChainHead {
            seq: row.audit_seq,
            hash: row.audit_head,
        };
        Ok((row.version, head))
    }

    async fn a_record_is_written_with_its_row_only_while_the_row_has_the_version_read(
        backend: Backend,
    ) -> TestResult {
        let db = TestDb::fresh(backend).await?;
        seed(&db.conn, &["i1"], 1).await?;
        let (version, prev) = version_and_head(&db.conn, "i1").await?;
        // A racing writer moved the version on since it was read: nothing is written.
        let late = seal(prev.clone(), nth_record("i1", 2, t(120)))?;
        let head = late.head().clone();
        let txn = db.conn.begin().await?;
        let stale = head_update("i1", version - 1, "review", &head, t(120));
        assert!(!write_with_row(&txn, stale, late).await?);
        txn.commit().await?;
        assert_eq!(audit_record::Entity::find().count(&db.conn).await?, 1);
        let unchanged = workflow_instance::Entity::find_by_id("i1")
            .one(&db.conn)
            .await?
            .ok_or("row present")?;
        assert_eq!((unchanged.version, unchanged.audit_seq), (version, 1));

        // With the version read, the row and the record are written together.
        let sealed = seal(prev, nth_record("i1", 2, t(120)))?;
        let txn = db.conn.begin().await?;
        let current = head_update("i1", version, "review", &head, t(120));
        assert!(write_with_row(&txn, current, sealed).await?);
        txn.commit().await?;
        let moved = workflow_instance::Entity::find_by_id("i1")
            .one(&db.conn)
            .await?
            .ok_or("row present")?;
        assert_eq!((moved.version, moved.audit_seq), (version + 1, 2));
        assert_eq!(moved.audit_head, head.hash);
        let report = verify(&db.conn).await?;
        assert!(report.is_clean(), "{}", render(&report));
        assert_eq!(report.records, 2);
        db.close().await
    }

    /// PostgreSQL needs no transaction: the row's update and the record are one statement.
    #[tokio::test]
    async fn on_postgres_a_record_and_its_row_are_one_statement_without_a_transaction() -> TestResult
    {
        let db = TestDb::fresh(Backend::Postgres).await?;
        seed(&db.conn, &["i1"], 1).await?;
        let (version, prev) = version_and_head(&db.conn, "i1").await?;
        let sealed = seal(prev.clone(), nth_record("i1", 2, t(120)))?;
        let head = sealed.head().clone();
        let stale = head_update("i1", version + 1, "review", &head, t(120));
        assert!(!write_with_row(&db.conn, stale, sealed).await?);
        assert_eq!(audit_record::Entity::find().count(&db.conn).await?, 1);
        let sealed = seal(prev, nth_record("i1", 2, t(120)))?;
        let current = head_update("i1", version, "review", &head, t(120));
        assert!(write_with_row(&db.conn, current, sealed).await?);
        let report = verify(&db.conn).await?;
        assert!(report.is_clean(), "{}", render(&report));
        assert_eq!(report.records, 2);
        db.close().await
    }

    backend_tests!(
        a_record_is_written_with_its_row_only_while_the_row_has_the_version_read,
        appending_three_records_to_two_instances_verifies_clean,
        an_edited_comment_is_reported_as_a_hash_mismatch_naming_instance_and_seq,
        a_deleted_middle_record_is_reported_as_a_missing_seq,
        a_deleted_last_record_is_reported_as_a_head_mismatch,
        an_instance_whose_records_are_all_deleted_is_reported_as_a_head_mismatch,
        an_edited_record_with_a_recomputed_hash_breaks_the_next_prev_link,
        an_edited_last_record_with_recomputed_hash_and_head_is_caught_by_the_anchor,
        a_truncated_chain_with_a_rewound_head_is_caught_by_the_anchor,
        an_anchor_commits_only_heads_changed_since_the_previous_one,
        edited_and_deleted_anchors_are_reported,
        appending_from_a_stale_or_invalid_head_fails,
    );

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn racing_anchors_on_postgres_write_one_anchor_and_leave_a_valid_chain() -> TestResult {
        let db = TestDb::fresh(Backend::Postgres).await?;
        seed(&db.conn, &["i1", "i2"], 2).await?;

        // Deterministic race: A has inserted anchor 1 but not committed; B computes the same
        // seq, blocks on the primary key, and fails once A commits.
        let txn = db.conn.begin().await?;
        let won = anchor(&txn, t(1000)).await?.ok_or("A anchors")?;
        let other = db.conn.clone();
        let racer = tokio::spawn(async move { anchor(&other, t(1000)).await });
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert!(
            !racer.is_finished(),
            "B must wait for A's uncommitted anchor"
        );
        txn.commit().await?;
        assert_eq!(racer.await??, None, "B sees someone else anchored");
        assert_eq!(won.seq, 1);

        // Free-running races: whatever the interleaving, the chain stays gap-free and valid.
        let mut written = 1;
        for round in 0..5 {
            transition(
                &db.conn,
                if round % 2 == 0 { "i1" } else { "i2" },
                t(1100 + round),
            )
            .await?;
            let (a, b) = tokio::join!(
                anchor(&db.conn, t(1200 + round)),
                anchor(&db.conn, t(1200 + round))
            );
            let (a, b) = (a?, b?);
            assert!(a.is_some() || b.is_some(), "a changed head is anchored");
            written += u64::from(a.is_some()) + u64::from(b.is_some());
        }
        let report = verify_snapshot(&db.conn).await?;
        assert!(report.is_clean(), "{}", render(&report));
        assert_eq!(report.anchors, written);
        assert_eq!(audit_anchor::Entity::find().count(&db.conn).await?, written);
        db.close().await
    }
}
