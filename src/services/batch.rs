//! Reads that many requests ask for at once, answered by one statement.
//!
//! Every API request reads its session, and every event reads its instance (unless this replica
//! kept both from earlier requests: [`crate::services::recent`]). Asked one by one,
//! each read costs the database a round trip and, through the pool, sqlx's liveness ping when
//! the connection goes back. A [`Batcher`] hands its reads to one task, which reads every key
//! that has queued up while its previous statement ran with one statement, and answers each
//! caller with its own value.
//!
//! A read is never older than its request: a key is read by a statement that starts after it
//! was queued. Under low load a batch holds one key, and nothing waits for company. A batch
//! that fails is read again one key at a time, so that each caller gets its own answer or its
//! own error.
//!
//! On PostgreSQL the task reads on a connection of its own ([`TaskConnection`]): taking a
//! connection from sqlx's pool and giving it back costs a liveness ping each time, which is as
//! dear to the server as the read itself.

use std::future::Future;

use sea_orm::sea_query::{PostgresQueryBuilder, SelectStatement};
use sea_orm::sqlx::query::Query;
use sea_orm::sqlx::{Connection as _, IntoArguments, PgConnection, Postgres};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, DbErr, QueryResult, RuntimeErr};
use sea_query_binder::SqlxBinder as _;
use tokio::sync::{mpsc, oneshot};

/// The most keys one statement reads.
const MAX_BATCH: usize = 64;

/// Reads values for keys, many in one statement.
pub trait Load: Send + 'static {
    type Key: Send + 'static;
    type Value: Send + 'static;

    /// One value per key, in the order of `keys` (never empty).
    fn load(
        &mut self,
        keys: &[Self::Key],
    ) -> impl Future<Output = Result<Vec<Self::Value>, DbErr>> + Send;
}

type Reply<V> = oneshot::Sender<Result<V, DbErr>>;

/// A handle on the task that reads in batches; cheap to clone.
pub struct Batcher<L: Load> {
    jobs: mpsc::UnboundedSender<(L::Key, Reply<L::Value>)>,
}

impl<L: Load> Clone for Batcher<L> {
    fn clone(&self) -> Self {
        Self {
            jobs: self.jobs.clone(),
        }
    }
}

impl<L: Load> std::fmt::Debug for Batcher<L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher").finish_non_exhaustive()
    }
}

impl<L: Load> Batcher<L> {
    /// Starts the reading task; it ends when the last handle is dropped. Must be called inside
    /// a Tokio runtime.
    pub fn start(loader: L) -> Self {
        let (jobs, queue) = mpsc::unbounded_channel();
        tokio::spawn(serve(loader, queue));
        Self { jobs }
    }

    /// The value of `key`, read by the next statement.
    pub async fn load(&self, key: L::Key) -> Result<L::Value, DbErr> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send((key, reply))
            .map_err(|_| DbErr::Custom("a batched reader has stopped".to_owned()))?;
        answer
            .await
            .map_err(|_| DbErr::Custom("a batched reader ended before answering".to_owned()))?
    }
}

async fn serve<L: Load>(
    mut loader: L,
    mut queue: mpsc::UnboundedReceiver<(L::Key, Reply<L::Value>)>,
) {
    let mut jobs = Vec::with_capacity(MAX_BATCH);
    while queue.recv_many(&mut jobs, MAX_BATCH).await > 0 {
        let (keys, replies): (Vec<_>, Vec<_>) = jobs.drain(..).unzip();
        answer(&mut loader, keys, replies).await;
    }
}

/// Reads `keys` in one statement, or, if that fails, each alone; answers every reply.
async fn answer<L: Load>(loader: &mut L, keys: Vec<L::Key>, replies: Vec<Reply<L::Value>>) {
    let batch = loader.load(&keys).await;
    if keys.len() == 1 {
        if let Some(reply) = replies.into_iter().next() {
            let _ = reply.send(batch.and_then(one));
        }
        return;
    }
    match batch {
        Ok(values) if values.len() == keys.len() => {
            for (reply, value) in replies.into_iter().zip(values) {
                // A caller that went away no longer needs its value.
                let _ = reply.send(Ok(value));
            }
        }
        outcome => {
            if let Err(error) = outcome {
                tracing::warn!(%error, keys = keys.len(), "a batched read failed; reading each key alone");
            }
            for (key, reply) in keys.into_iter().zip(replies) {
                let keys = [key];
                let value = loader.load(&keys).await.and_then(one);
                let _ = reply.send(value);
            }
        }
    }
}

/// The only value of a read of one key.
fn one<V>(values: Vec<V>) -> Result<V, DbErr> {
    let got = values.len();
    <[V; 1]>::try_from(values)
        .map(|[value]| value)
        .map_err(|_| DbErr::Custom(format!("a read of one key answered {got} values")))
}

/// Where a batching task runs its statements: on PostgreSQL, a connection of its own, opened
/// with the pool's options when first needed and again after it broke; on SQLite, the pool
/// (whose connections are in-process).
#[derive(Debug)]
pub struct TaskConnection {
    db: DatabaseConnection,
    /// `application_name`, so the server's activity view tells the task's connection apart.
    name: &'static str,
    pg: Option<PgConnection>,
}

/// The settings of a task's PostgreSQL connection. A task runs a few statements of fixed shape
/// very often: each is prepared once and planned once (`force_generic_plan`), and its plan must
/// look rows up by key however small the tables were when it was planned. A plan made on an
/// empty database would otherwise scan `workflow_instances` for every batch as it grows
/// (`enable_seqscan = off` makes a scan the last resort, not forbidden: a table without a
/// usable index is still scanned).
const KEYED_PLANS: [(&str, &str); 2] = [
    ("plan_cache_mode", "force_generic_plan"),
    ("enable_seqscan", "off"),
];

impl TaskConnection {
    pub fn new(db: DatabaseConnection, name: &'static str) -> Self {
        Self { db, name, pg: None }
    }

    /// The pool, for what the task reads rarely.
    pub fn pool(&self) -> &DatabaseConnection {
        &self.db
    }

    /// The task's own PostgreSQL connection.
    pub async fn postgres(&mut self) -> Result<&mut PgConnection, DbErr> {
        if self.db.get_database_backend() != DbBackend::Postgres {
            return Err(DbErr::Custom(format!(
                "{} needs PostgreSQL, not {:?}",
                self.name,
                self.db.get_database_backend()
            )));
        }
        let conn = match self.pg.take() {
            Some(conn) => conn,
            None => {
                let options = self
                    .db
                    .get_postgres_connection_pool()
                    .connect_options()
                    .as_ref()
                    .clone()
                    .application_name(self.name)
                    .options(KEYED_PLANS);
                PgConnection::connect_with(&options)
                    .await
                    .map_err(|e| DbErr::Conn(RuntimeErr::SqlxError(e)))?
            }
        };
        Ok(self.pg.insert(conn))
    }

    /// Turns an error of the own connection into a `DbErr`, forgetting the connection unless
    /// the server merely refused the statement (a lost connection, a protocol error: the next
    /// statement opens a new one).
    pub fn failed(&mut self, e: sea_orm::sqlx::Error) -> DbErr {
        if !matches!(e, sea_orm::sqlx::Error::Database(_)) {
            self.pg = None;
        }
        DbErr::Query(RuntimeErr::SqlxError(e))
    }

    /// Runs a query: on PostgreSQL on the own connection, else on the pool.
    pub async fn query_all(&mut self, select: &SelectStatement) -> Result<Vec<QueryResult>, DbErr> {
        if self.db.get_database_backend() != DbBackend::Postgres {
            let statement = self.db.get_database_backend().build(select);
            return self.db.query_all(statement).await;
        }
        let (sql, values) = select.build_sqlx(PostgresQueryBuilder);
        self.fetch_all_postgres(sea_orm::sqlx::query_with(&sql, values))
            .await
    }

    /// Runs a query made with sqlx on the task's own PostgreSQL connection.
    pub async fn fetch_all_postgres<'q, A>(
        &mut self,
        query: Query<'q, Postgres, A>,
    ) -> Result<Vec<QueryResult>, DbErr>
    where
        A: IntoArguments<'q, Postgres> + 'q,
    {
        let conn = self.postgres().await?;
        match query.fetch_all(&mut *conn).await {
            Ok(rows) => Ok(rows.into_iter().map(QueryResult::from).collect()),
            Err(e) => Err(self.failed(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// Answers ten times each key, and records the size of every batch it reads; a batch
    /// holding 13 fails.
    struct Tens {
        batches: Arc<Mutex<Vec<usize>>>,
    }

    impl Load for Tens {
        type Key = u32;
        type Value = u32;

        async fn load(&mut self, keys: &[u32]) -> Result<Vec<u32>, DbErr> {
            if let Ok(mut batches) = self.batches.lock() {
                batches.push(keys.len());
            }
            if keys.contains(&13) {
                return Err(DbErr::Custom("13 is unlucky".to_owned()));
            }
            Ok(keys.iter().map(|k| k * 10).collect())
        }
    }

    fn start() -> (Batcher<Tens>, Arc<Mutex<Vec<usize>>>) {
        let batches = Arc::new(Mutex::new(Vec::new()));
        let batcher = Batcher::start(Tens {
            batches: Arc::clone(&batches),
        });
        (batcher, batches)
    }

    fn sizes(batches: &Mutex<Vec<usize>>) -> Vec<usize> {
        batches.lock().map(|b| b.clone()).unwrap_or_default()
    }

    #[tokio::test]
    async fn keys_queued_together_are_read_together_and_each_gets_its_own_value() {
        let (batcher, batches) = start();
        let values = futures_util::future::join_all((1..=5).map(|k| batcher.load(k))).await;
        let values: Vec<u32> = values.into_iter().collect::<Result<_, _>>().unwrap();
        assert_eq!(values, [10, 20, 30, 40, 50]);
        assert_eq!(sizes(&batches), [5]);

        // Alone, a key is read at once, without waiting for company.
        assert_eq!(batcher.load(7).await.unwrap(), 70);
        assert_eq!(sizes(&batches), [5, 1]);
    }

    #[tokio::test]
    async fn a_failed_batch_is_read_again_key_by_key() {
        let (batcher, batches) = start();
        let values = futures_util::future::join_all([1, 13, 2].map(|k| batcher.load(k))).await;
        assert_eq!(values[0].as_ref().ok(), Some(&10));
        assert!(values[1].is_err(), "{:?}", values[1]);
        assert_eq!(values[2].as_ref().ok(), Some(&20));
        assert_eq!(sizes(&batches), [3, 1, 1, 1]);
    }
}
