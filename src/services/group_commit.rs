//! Group commit for SQLite's single writing connection.
//!
//! A durable SQLite commit (WAL, `synchronous=FULL`) costs an fsync, and through sqlx every
//! statement is a round trip to the connection's worker thread; with one writing connection,
//! that is time every other writer waits. A transition that writes only its instance row and its
//! audit record is therefore handed to one task, which writes whatever has queued up while the
//! previous batch committed in one transaction: `BEGIN`, one call holding every transition's two
//! statements, `COMMIT`. So eight clients share one fsync instead of queueing for eight.
//!
//! Each transition stays what it was alone: its audit insert runs only if its own update, under
//! the version the caller read, wrote the row (see [`audit::sqlite_write_with_row`]), so a
//! transition that lost a race writes nothing and the others are unaffected; and no caller hears
//! of its transition before the transaction holding it committed. A batch that fails is rolled
//! back and its transitions written again one per transaction, so one bad write never fails
//! another.

use sea_orm::sea_query::Values;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, DbErr, Statement, TransactionTrait};
use tokio::sync::{mpsc, oneshot};

use crate::services::audit::{self, RowWrite, SealedRecord, SqliteRowWrite};

/// The most transitions one transaction holds (each binds about twenty values; SQLite allows
/// 32,766 per call).
const MAX_BATCH: usize = 64;

/// A handle on the task that writes transitions in groups; cheap to clone.
#[derive(Clone, Debug)]
pub struct GroupCommit {
    jobs: mpsc::UnboundedSender<Job>,
}

#[derive(Debug)]
struct Job {
    row_write: SqliteRowWrite,
    sealed: SealedRecord,
    reply: oneshot::Sender<Result<bool, DbErr>>,
}

impl GroupCommit {
    /// Starts the writing task on `db` (a SQLite pool); it ends when the last handle is dropped.
    /// Must be called inside a Tokio runtime.
    pub fn start(db: DatabaseConnection) -> Self {
        let (jobs, queue) = mpsc::unbounded_channel();
        tokio::spawn(write_batches(db, queue));
        Self { jobs }
    }

    /// Writes the instance row with `row_write` (its insert, or its update under a version)
    /// and, if that wrote a row, the sealed record; returns whether it did, once the
    /// transaction holding it has committed.
    pub async fn write(
        &self,
        row_write: &impl RowWrite,
        sealed: SealedRecord,
    ) -> Result<bool, DbErr> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job {
                row_write: SqliteRowWrite::build(row_write),
                sealed,
                reply,
            })
            .map_err(|_| DbErr::Custom("the SQLite group commit task has stopped".to_owned()))?;
        answer.await.map_err(|_| {
            DbErr::Custom("the SQLite group commit task ended before answering".to_owned())
        })?
    }
}

async fn write_batches(db: DatabaseConnection, mut queue: mpsc::UnboundedReceiver<Job>) {
    let mut jobs = Vec::with_capacity(MAX_BATCH);
    while queue.recv_many(&mut jobs, MAX_BATCH).await > 0 {
        commit(&db, std::mem::take(&mut jobs)).await;
    }
}

/// Writes `jobs` in one transaction, or, if that fails, each in its own; answers every job.
async fn commit(db: &DatabaseConnection, jobs: Vec<Job>) {
    if jobs.len() > 1 {
        match write_in_one_transaction(db, &jobs).await {
            Ok(written) => {
                for (job, written) in jobs.into_iter().zip(written) {
                    // A caller that went away still had its transition written.
                    let _ = job.reply.send(Ok(written));
                }
                return;
            }
            Err(error) => {
                tracing::warn!(%error, transitions = jobs.len(),
                    "a group commit failed; writing its transitions one per transaction");
            }
        }
    }
    for job in jobs {
        let result = write_in_one_transaction(db, std::slice::from_ref(&job))
            .await
            .map(|written| written.first().copied().unwrap_or(false));
        let _ = job.reply.send(result);
    }
}

/// One transaction holding every job's two statements; which jobs wrote, in order.
async fn write_in_one_transaction(
    db: &DatabaseConnection,
    jobs: &[Job],
) -> Result<Vec<bool>, DbErr> {
    let mut sql = String::new();
    let mut values = Values(Vec::new());
    for (ix, job) in jobs.iter().enumerate() {
        let tag = u32::try_from(ix).map_err(|e| DbErr::Custom(e.to_string()))?;
        let statement = audit::sqlite_write_with_row(&job.row_write, &job.sealed, Some(tag))?;
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
    let mut written = vec![false; jobs.len()];
    for row in rows {
        let tag: i64 = row.try_get_by_index(0)?;
        let slot = usize::try_from(tag)
            .ok()
            .and_then(|ix| written.get_mut(ix))
            .ok_or_else(|| {
                DbErr::Custom(format!("a group commit returned the unknown tag {tag}"))
            })?;
        *slot = true;
    }
    Ok(written)
}
