//! Group commit: transitions written together, each as it would be alone.
//!
//! A transition that writes only its instance row and its audit record (the common case, and
//! every creation without timers) is handed to one task per process, which writes whatever has
//! queued up while the previous batch committed, with one commit for all of them.
//!
//! - SQLite: a durable commit (WAL, `synchronous=FULL`) costs an fsync, and through sqlx every
//!   statement is a round trip to the connection's worker thread; with one writing connection,
//!   that is time every other writer waits. A batch is `BEGIN`, one call holding every
//!   transition's two statements, `COMMIT`: eight clients share one fsync instead of queueing
//!   for eight.
//! - PostgreSQL: each statement costs the server a round trip, a commit and, through the pool,
//!   sqlx's liveness ping when the connection goes back. A batch is one statement of constant
//!   text (prepared once per connection) that inserts the new rows, updates the moved ones under
//!   their versions and inserts the audit records of those that were written, from one array
//!   per column (`unnest`).
//!
//! Each transition stays what it was alone: its audit record is written only if its own row
//! write (an insert, or the update under the version the caller read) wrote the row, so a
//! transition that lost a race writes nothing and the others are unaffected; no batch holds two
//! writes of one instance (the later waits for the next batch); and no caller hears of its
//! transition before the commit holding it. A batch that fails is written again one transition
//! per commit, so one bad write never fails another.

use std::collections::{HashSet, VecDeque};
use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use entity::workflow_instance;
use sea_orm::sea_query::{Expr, InsertStatement, UpdateStatement, Values};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, DbErr, EntityTrait, QueryFilter,
    QueryTrait, Statement, TransactionTrait,
};
use tokio::sync::{mpsc, oneshot};

use crate::services::audit::{self, RecordArrays, SealedRecord, SqliteRowWrite};
use crate::services::batch::TaskConnection;
use crate::services::recent::{epoch_holds, AUTHZ_EPOCH};
use crate::services::sql::insert_select;

/// The most transitions one batch holds (on SQLite each binds about twenty values, of the
/// 32,766 one call allows).
const MAX_BATCH: usize = 64;

/// A write of an instance row that a record can be chained to, as the group commit carries it.
#[derive(Clone, Debug)]
pub enum InstanceWrite {
    /// A new instance's row, with its first record's head; when decided on a kept session,
    /// written only if the authorisation epoch read with it has not moved (see
    /// [`crate::services::recent`]).
    Insert {
        row: workflow_instance::Model,
        authz_epoch: Option<i64>,
    },
    /// A transition's update of the row, under the version it was decided on.
    Update(RowUpdate),
}

/// What a transition changes on its instance's row.
#[derive(Clone, Debug)]
pub struct RowUpdate {
    pub id: String,
    /// The version the transition was decided on; the row is written only if it still has it,
    /// and then gets `version + 1`.
    pub version: i64,
    pub state: String,
    pub progress: String,
    pub updated_at: DateTime<Utc>,
    pub audit_seq: i64,
    pub audit_head: String,
    pub waiting_org: Option<String>,
    pub waiting_roles: Option<String>,
    /// The authorisation epoch of the session the transition was decided on, when that session
    /// was kept rather than read with the row: the row is written only if the epoch has not
    /// moved either (see [`crate::services::recent`]).
    pub authz_epoch: Option<i64>,
}

impl RowUpdate {
    /// The update as one statement.
    pub fn statement(&self) -> UpdateStatement {
        use workflow_instance::Column as I;
        let mut update = workflow_instance::Entity::update_many()
            .col_expr(I::State, Expr::value(self.state.clone()))
            .col_expr(I::Progress, Expr::value(self.progress.clone()))
            .col_expr(I::Version, Expr::value(self.version + 1))
            .col_expr(I::UpdatedAt, Expr::value(self.updated_at))
            .col_expr(I::AuditSeq, Expr::value(self.audit_seq))
            .col_expr(I::AuditHead, Expr::value(self.audit_head.clone()))
            .col_expr(I::WaitingOrg, Expr::value(self.waiting_org.clone()))
            .col_expr(I::WaitingRoles, Expr::value(self.waiting_roles.clone()))
            .filter(I::Id.eq(self.id.as_str()))
            .filter(I::Version.eq(self.version));
        if let Some(epoch) = self.authz_epoch {
            update = update.filter(epoch_holds(epoch));
        }
        update.into_query()
    }
}

impl InstanceWrite {
    fn instance_id(&self) -> &str {
        match self {
            Self::Insert { row, .. } => &row.id,
            Self::Update(update) => &update.id,
        }
    }

    /// The insert of a new row as one statement.
    pub fn insert_statement(row: &workflow_instance::Model) -> InsertStatement {
        workflow_instance::Entity::insert(workflow_instance::ActiveModel::from(row.clone()))
            .into_query()
    }

    /// The insert of a new row as one statement that inserts it only while the authorisation
    /// epoch is `epoch` (an `INSERT … SELECT` of its values `WHERE` the epoch holds).
    fn insert_under_epoch(
        row: &workflow_instance::Model,
        epoch: i64,
    ) -> Result<InsertStatement, DbErr> {
        let (mut insert, mut values) =
            insert_select(&workflow_instance::ActiveModel::from(row.clone()));
        values.and_where(epoch_holds(epoch));
        insert
            .select_from(values)
            .map_err(|e| DbErr::Custom(format!("building a new row's insert: {e}")))?;
        Ok(insert)
    }

    fn sqlite(&self) -> Result<SqliteRowWrite, DbErr> {
        Ok(match self {
            Self::Insert {
                row,
                authz_epoch: None,
            } => SqliteRowWrite::build(&Self::insert_statement(row)),
            Self::Insert {
                row,
                authz_epoch: Some(epoch),
            } => SqliteRowWrite::build(&Self::insert_under_epoch(row, *epoch)?),
            Self::Update(update) => SqliteRowWrite::build(&update.statement()),
        })
    }
}

/// A handle on the task that writes transitions in groups; cheap to clone.
#[derive(Clone, Debug)]
pub struct GroupCommit {
    jobs: mpsc::UnboundedSender<Job>,
    backend: DbBackend,
}

#[derive(Debug)]
struct Job {
    instance_id: String,
    write: Write,
    sealed: SealedRecord,
    reply: oneshot::Sender<Result<bool, DbErr>>,
}

/// A row write as the backend's batch takes it: SQLite's is built by the caller, so that the
/// one writing task only runs statements.
#[derive(Debug)]
enum Write {
    Sqlite(SqliteRowWrite),
    Postgres(Box<InstanceWrite>),
}

impl GroupCommit {
    /// Starts the writing task on `db` (a SQLite or PostgreSQL pool); it ends when the last
    /// handle is dropped. Must be called inside a Tokio runtime.
    pub fn start(db: DatabaseConnection) -> Self {
        let (jobs, queue) = mpsc::unbounded_channel();
        let backend = db.get_database_backend();
        tokio::spawn(write_batches(db, queue));
        Self { jobs, backend }
    }

    /// Writes the instance row with `write` (its insert, or its update under a version) and, if
    /// that wrote a row, the sealed record; returns whether it did, once the commit holding it
    /// is done.
    pub async fn write(&self, write: InstanceWrite, sealed: SealedRecord) -> Result<bool, DbErr> {
        let (reply, answer) = oneshot::channel();
        let instance_id = write.instance_id().to_owned();
        let write = match self.backend {
            DbBackend::Sqlite => Write::Sqlite(write.sqlite()?),
            _ => Write::Postgres(Box::new(write)),
        };
        self.jobs
            .send(Job {
                instance_id,
                write,
                sealed,
                reply,
            })
            .map_err(|_| DbErr::Custom("the group commit task has stopped".to_owned()))?;
        answer
            .await
            .map_err(|_| DbErr::Custom("the group commit task ended before answering".to_owned()))?
    }
}

async fn write_batches(db: DatabaseConnection, mut queue: mpsc::UnboundedReceiver<Job>) {
    let mut writer = TaskConnection::new(db, "itaku group commit");
    let mut waiting = VecDeque::new();
    loop {
        if waiting.is_empty() {
            let mut jobs = Vec::with_capacity(MAX_BATCH);
            if queue.recv_many(&mut jobs, MAX_BATCH).await == 0 {
                return;
            }
            waiting.extend(jobs);
        } else {
            while waiting.len() < MAX_BATCH {
                match queue.try_recv() {
                    Ok(job) => waiting.push_back(job),
                    Err(_) => break,
                }
            }
        }
        let batch = take_batch(&mut waiting);
        commit(&mut writer, batch).await;
    }
}

/// Takes the next batch from the front of `waiting`: up to [`MAX_BATCH`] jobs, each on an
/// instance no earlier job of the batch writes. A later write of the same instance stays, in
/// order, for the next batch (where its version condition sees the earlier one's outcome).
fn take_batch(waiting: &mut VecDeque<Job>) -> Vec<Job> {
    let mut batch = Vec::with_capacity(waiting.len().min(MAX_BATCH));
    let mut instances = HashSet::new();
    let mut later = VecDeque::new();
    for job in waiting.drain(..) {
        if batch.len() < MAX_BATCH && instances.insert(job.instance_id.clone()) {
            batch.push(job);
        } else {
            later.push_back(job);
        }
    }
    *waiting = later;
    batch
}

/// Writes `jobs` with one commit, or, if that fails, each with its own; answers every job.
async fn commit(writer: &mut TaskConnection, jobs: Vec<Job>) {
    if jobs.len() > 1 {
        match write_batch(writer, &jobs).await {
            Ok(written) => {
                for (job, written) in jobs.into_iter().zip(written) {
                    // A caller that went away still had its transition written.
                    let _ = job.reply.send(Ok(written));
                }
                return;
            }
            Err(error) => {
                tracing::warn!(%error, transitions = jobs.len(),
                    "a group commit failed; writing its transitions one per commit");
            }
        }
    }
    for job in jobs {
        let result = write_batch(writer, std::slice::from_ref(&job))
            .await
            .map(|written| written.first().copied().unwrap_or(false));
        let _ = job.reply.send(result);
    }
}

/// Writes `jobs` with one commit; which of them wrote, in order.
async fn write_batch(writer: &mut TaskConnection, jobs: &[Job]) -> Result<Vec<bool>, DbErr> {
    let mut sqlite = Vec::new();
    let mut postgres = Vec::new();
    for job in jobs {
        match &job.write {
            Write::Sqlite(write) => sqlite.push((job.instance_id.as_str(), write, &job.sealed)),
            Write::Postgres(write) => postgres.push((&**write, &job.sealed)),
        }
    }
    let written = if postgres.is_empty() {
        write_sqlite(writer.pool(), &sqlite).await?
    } else if sqlite.is_empty() {
        write_postgres(writer, &postgres).await?
    } else {
        return Err(DbErr::Custom(
            "a group commit batch mixes two backends".to_owned(),
        ));
    };
    Ok(jobs
        .iter()
        .map(|job| written.contains(job.instance_id.as_str()))
        .collect())
}

/// SQLite: one transaction holding every job's two statements, in one call; the ids of the
/// instances written.
async fn write_sqlite(
    db: &DatabaseConnection,
    jobs: &[(&str, &SqliteRowWrite, &SealedRecord)],
) -> Result<HashSet<String>, DbErr> {
    let mut sql = String::new();
    let mut values = Values(Vec::new());
    for (ix, (_, write, sealed)) in jobs.iter().enumerate() {
        let tag = u32::try_from(ix).map_err(|e| DbErr::Custom(e.to_string()))?;
        let statement = audit::sqlite_write_with_row(write, sealed, Some(tag))?;
        if !sql.is_empty() {
            sql.push_str("; ");
        }
        sql.push_str(&statement.sql);
        values
            .0
            .extend(statement.values.map(|v| v.0).unwrap_or_default());
    }
    let txn = db.begin().await?;
    let rows = txn
        .query_all(Statement::from_sql_and_values(
            DbBackend::Sqlite,
            sql,
            values,
        ))
        .await?;
    txn.commit().await?;
    let mut written = HashSet::new();
    for row in rows {
        let tag: i64 = row.try_get_by_index(0)?;
        let (instance_id, _, _) = usize::try_from(tag)
            .ok()
            .and_then(|ix| jobs.get(ix))
            .ok_or_else(|| {
                DbErr::Custom(format!("a group commit returned the unknown tag {tag}"))
            })?;
        written.insert((*instance_id).to_owned());
    }
    Ok(written)
}

/// The columns of a new instance row, with their array types, in binding order.
const INSERT_COLUMNS: [(&str, &str); 16] = [
    ("id", "text[]"),
    ("workflow_id", "text[]"),
    ("workflow_version", "int4[]"),
    ("state", "text[]"),
    ("version", "int8[]"),
    ("submitter", "text[]"),
    ("organisation_id", "text[]"),
    ("context", "text[]"),
    ("progress", "text[]"),
    ("corrects_instance_id", "text[]"),
    ("created_at", "timestamptz[]"),
    ("updated_at", "timestamptz[]"),
    ("audit_seq", "int8[]"),
    ("audit_head", "text[]"),
    ("waiting_org", "text[]"),
    ("waiting_roles", "text[]"),
];

/// The columns of a row update, in binding order: the row's id and the version it must still
/// have, then the values it gets (`version` becomes one more).
const UPDATE_COLUMNS: [(&str, &str); 9] = [
    ("id", "text[]"),
    ("version", "int8[]"),
    ("state", "text[]"),
    ("progress", "text[]"),
    ("updated_at", "timestamptz[]"),
    ("audit_seq", "int8[]"),
    ("audit_head", "text[]"),
    ("waiting_org", "text[]"),
    ("waiting_roles", "text[]"),
];

/// What a new row or a row update is written on condition of (beside an update's version), in
/// binding order after [`INSERT_COLUMNS`] and after [`UPDATE_COLUMNS`]: the authorisation epoch
/// it was decided under, if any.
const CONDITIONS: [(&str, &str); 1] = [("authz_epoch", "int8[]")];

/// PostgreSQL's batch: one statement, whatever the batch holds.
static POSTGRES_BATCH: LazyLock<String> = LazyLock::new(postgres_batch_sql);

/// `unnest($first::type, …) AS alias(column, …)` over `columns`, numbering from `first`.
fn unnest(columns: &[(&str, &str)], first: usize, alias: &str) -> String {
    let arrays: Vec<String> = columns
        .iter()
        .enumerate()
        .map(|(ix, (_, ty))| format!("${}::{ty}", first + ix))
        .collect();
    let names: Vec<&str> = columns.iter().map(|(name, _)| *name).collect();
    format!(
        "unnest({}) AS {alias}({})",
        arrays.join(", "),
        names.join(", ")
    )
}

fn postgres_batch_sql() -> String {
    let names = |columns: &[(&str, &str)]| {
        columns
            .iter()
            .map(|(name, _)| *name)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let new_rows = unnest(
        &[INSERT_COLUMNS.as_slice(), CONDITIONS.as_slice()].concat(),
        1,
        "n",
    );
    let moves = unnest(
        &[UPDATE_COLUMNS.as_slice(), CONDITIONS.as_slice()].concat(),
        1 + INSERT_COLUMNS.len() + CONDITIONS.len(),
        "u",
    );
    let records = unnest(
        &RecordArrays::COLUMNS,
        1 + INSERT_COLUMNS.len() + UPDATE_COLUMNS.len() + 2 * CONDITIONS.len(),
        "r",
    );
    let inserted_values = INSERT_COLUMNS
        .iter()
        .map(|(name, _)| format!("n.{name}"))
        .collect::<Vec<_>>()
        .join(", ");
    let set: Vec<String> = UPDATE_COLUMNS
        .iter()
        .skip(2)
        .map(|(name, _)| format!("{name} = u.{name}"))
        .collect();
    format!(
        "WITH inserted AS (\
           INSERT INTO workflow_instances ({insert_columns}) SELECT {inserted_values} \
           FROM {new_rows} WHERE n.authz_epoch IS NULL OR n.authz_epoch = {AUTHZ_EPOCH} \
           RETURNING id), \
         moved AS (\
           UPDATE workflow_instances AS i SET version = u.version + 1, {set} FROM {moves} \
           WHERE i.id = u.id AND i.version = u.version \
             AND (u.authz_epoch IS NULL OR u.authz_epoch = {AUTHZ_EPOCH}) RETURNING i.id), \
         recorded AS (\
           INSERT INTO audit_records ({record_columns}) SELECT r.* FROM {records} \
           WHERE r.instance_id IN (SELECT id FROM inserted UNION ALL SELECT id FROM moved) \
           RETURNING instance_id) \
         SELECT instance_id FROM recorded",
        insert_columns = names(&INSERT_COLUMNS),
        record_columns = names(&RecordArrays::COLUMNS),
        set = set.join(", "),
    )
}

/// One array per column of the new rows.
#[derive(Default)]
struct InsertArrays {
    id: Vec<String>,
    workflow_id: Vec<String>,
    workflow_version: Vec<i32>,
    state: Vec<String>,
    version: Vec<i64>,
    submitter: Vec<String>,
    organisation_id: Vec<Option<String>>,
    context: Vec<String>,
    progress: Vec<String>,
    corrects_instance_id: Vec<Option<String>>,
    created_at: Vec<DateTime<Utc>>,
    updated_at: Vec<DateTime<Utc>>,
    audit_seq: Vec<i64>,
    audit_head: Vec<String>,
    waiting_org: Vec<Option<String>>,
    waiting_roles: Vec<Option<String>>,
    authz_epoch: Vec<Option<i64>>,
}

/// One array per column of the row updates.
#[derive(Default)]
struct UpdateArrays {
    id: Vec<String>,
    version: Vec<i64>,
    state: Vec<String>,
    progress: Vec<String>,
    updated_at: Vec<DateTime<Utc>>,
    audit_seq: Vec<i64>,
    audit_head: Vec<String>,
    waiting_org: Vec<Option<String>>,
    waiting_roles: Vec<Option<String>>,
    authz_epoch: Vec<Option<i64>>,
}

/// PostgreSQL: the batch's one statement (atomic on its own, so without `BEGIN`/`COMMIT`); the
/// ids of the instances written.
async fn write_postgres(
    writer: &mut TaskConnection,
    jobs: &[(&InstanceWrite, &SealedRecord)],
) -> Result<HashSet<String>, DbErr> {
    let mut new = InsertArrays::default();
    let mut moved = UpdateArrays::default();
    let mut records = RecordArrays::default();
    for (write, sealed) in jobs {
        match write {
            InstanceWrite::Insert { row, authz_epoch } => {
                new.authz_epoch.push(*authz_epoch);
                let row = row.clone();
                new.id.push(row.id);
                new.workflow_id.push(row.workflow_id);
                new.workflow_version.push(row.workflow_version);
                new.state.push(row.state);
                new.version.push(row.version);
                new.submitter.push(row.submitter);
                new.organisation_id.push(row.organisation_id);
                new.context.push(row.context);
                new.progress.push(row.progress);
                new.corrects_instance_id.push(row.corrects_instance_id);
                new.created_at.push(row.created_at);
                new.updated_at.push(row.updated_at);
                new.audit_seq.push(row.audit_seq);
                new.audit_head.push(row.audit_head);
                new.waiting_org.push(row.waiting_org);
                new.waiting_roles.push(row.waiting_roles);
            }
            InstanceWrite::Update(update) => {
                let update = update.clone();
                moved.id.push(update.id);
                moved.version.push(update.version);
                moved.state.push(update.state);
                moved.progress.push(update.progress);
                moved.updated_at.push(update.updated_at);
                moved.audit_seq.push(update.audit_seq);
                moved.audit_head.push(update.audit_head);
                moved.waiting_org.push(update.waiting_org);
                moved.waiting_roles.push(update.waiting_roles);
                moved.authz_epoch.push(update.authz_epoch);
            }
        }
        records.push(sealed)?;
    }
    let query = sea_orm::sqlx::query_scalar::<_, String>(POSTGRES_BATCH.as_str());
    let query = query
        .bind(new.id)
        .bind(new.workflow_id)
        .bind(new.workflow_version)
        .bind(new.state)
        .bind(new.version)
        .bind(new.submitter)
        .bind(new.organisation_id)
        .bind(new.context)
        .bind(new.progress)
        .bind(new.corrects_instance_id)
        .bind(new.created_at)
        .bind(new.updated_at)
        .bind(new.audit_seq)
        .bind(new.audit_head)
        .bind(new.waiting_org)
        .bind(new.waiting_roles)
        .bind(new.authz_epoch)
        .bind(moved.id)
        .bind(moved.version)
        .bind(moved.state)
        .bind(moved.progress)
        .bind(moved.updated_at)
        .bind(moved.audit_seq)
        .bind(moved.audit_head)
        .bind(moved.waiting_org)
        .bind(moved.waiting_roles)
        .bind(moved.authz_epoch);
    let query = query
        .bind(records.instance_id)
        .bind(records.seq)
        .bind(records.at)
        .bind(records.actor_id)
        .bind(records.on_behalf_of)
        .bind(records.event)
        .bind(records.from_state)
        .bind(records.to_state)
        .bind(records.step)
        .bind(records.comment)
        .bind(records.request_id)
        .bind(records.details)
        .bind(records.prev_hash)
        .bind(records.hash);
    let conn = writer.postgres().await?;
    let written = match query.fetch_all(&mut *conn).await {
        Ok(written) => written,
        Err(e) => return Err(writer.failed(e)),
    };
    Ok(written.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A column added to a table must reach PostgreSQL's batch too, else a row written there
    /// would silently miss its value: the batch inserts every column of an instance and of an
    /// audit record (but the record's generated id), and updates every column a transition
    /// sets on SQLite.
    #[test]
    fn the_postgres_batch_writes_every_column_the_tables_and_the_update_have() {
        use std::collections::BTreeSet;

        use entity::audit_record;
        use sea_orm::sea_query::SqliteQueryBuilder;
        use sea_orm::{IdenStatic as _, Iterable as _};

        let names = |columns: &[(&str, &str)]| -> BTreeSet<String> {
            columns.iter().map(|(name, _)| (*name).to_owned()).collect()
        };
        let instance: BTreeSet<String> = workflow_instance::Column::iter()
            .map(|column| column.as_str().to_owned())
            .collect();
        assert_eq!(names(&INSERT_COLUMNS), instance);
        let record: BTreeSet<String> = audit_record::Column::iter()
            .filter(|column| !matches!(column, audit_record::Column::Id))
            .map(|column| column.as_str().to_owned())
            .collect();
        assert_eq!(names(&RecordArrays::COLUMNS), record);

        let update = RowUpdate {
            id: "i".to_owned(),
            version: 1,
            state: "s".to_owned(),
            progress: "{}".to_owned(),
            updated_at: DateTime::<Utc>::UNIX_EPOCH,
            audit_seq: 2,
            audit_head: "h".to_owned(),
            waiting_org: None,
            waiting_roles: None,
            authz_epoch: None,
        };
        let (sql, _) = update.statement().build(SqliteQueryBuilder);
        let set = sql
            .split_once(" SET ")
            .and_then(|(_, rest)| rest.split_once(" WHERE "))
            .map(|(set, _)| set)
            .unwrap_or_else(|| panic!("no SET … WHERE in {sql}"));
        let mut updated: BTreeSet<String> = set
            .split(", ")
            .map(|assignment| {
                assignment
                    .split('"')
                    .nth(1)
                    .unwrap_or(assignment)
                    .to_owned()
            })
            .collect();
        // The batch finds the row by its id.
        updated.insert("id".to_owned());
        assert_eq!(names(&UPDATE_COLUMNS), updated);
    }

    /// The batch statement binds every array once, in order, and names every column it fills.
    #[test]
    fn the_postgres_batch_binds_each_array_once_in_order() {
        let sql = postgres_batch_sql();
        let arrays = INSERT_COLUMNS.len()
            + UPDATE_COLUMNS.len()
            + 2 * CONDITIONS.len()
            + RecordArrays::COLUMNS.len();
        let mut at = 0;
        for n in 1..=arrays {
            let placeholder = format!("${n}::");
            let found = sql[at..]
                .find(&placeholder)
                .unwrap_or_else(|| panic!("{placeholder} missing or out of order in {sql}"));
            at += found + placeholder.len();
        }
        assert!(!sql.contains(&format!("${}", arrays + 1)));
        for (name, _) in INSERT_COLUMNS
            .iter()
            .chain(&UPDATE_COLUMNS)
            .chain(&CONDITIONS)
            .chain(&RecordArrays::COLUMNS)
        {
            assert!(sql.contains(name), "{name} missing in {sql}");
        }
    }
}
