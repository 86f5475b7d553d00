//! Database connection and schema migrations, for SQLite (default) and PostgreSQL.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use std::collections::HashSet;

use migration::{Migrator, MigratorTrait, SchemaManager};
use sea_orm::sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbErr, Statement};

use crate::config::Settings;

/// sea-orm-migration's bookkeeping table.
const MIGRATIONS_TABLE: &str = "seaql_migrations";

/// How long a SQLite connection waits for another writer before giving up.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Read-only connections beside SQLite's single writing one (see [`connect_reader`]).
const SQLITE_READERS: u32 = 2;

/// Rows per index an `ANALYZE` reads at most (the value SQLite's manual recommends).
const SQLITE_ANALYSIS_LIMIT: u32 = 400;

/// A database that cannot be opened.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("cannot create the folder {path} for the SQLite database")]
    CreateDir {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid SQLite URL")]
    InvalidUrl(#[source] sea_orm::sqlx::Error),
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// Opens the pool described by the settings.
///
/// SQLite connections all get WAL, `synchronous=FULL` (a commit survives power loss),
/// `foreign_keys=ON` and a 5 s busy timeout, and keep the planner's statistics current
/// (`PRAGMA optimize`); the file's folder is created if missing.
pub async fn connect(settings: &Settings) -> Result<DatabaseConnection, DbError> {
    let url = settings.database_url.as_str();
    let mut options = ConnectOptions::new(url);
    // Statement logging goes through the `log` crate, which this binary does not collect.
    // No liveness ping on every acquisition: it is one more round trip per pooled statement
    // or transaction (two or more per request), and a connection that died is found out
    // anyway by its next statement, which fails and discards it (sqlx also pings every
    // connection given back to the pool, in the background).
    options
        .sqlx_logging(false)
        .test_before_acquire(false)
        .acquire_timeout(Duration::from_secs(10));
    if let Some(max) = settings.effective_max_connections() {
        options.max_connections(max);
    }
    if !settings.is_postgres() {
        create_sqlite_parent_dir(url)?;
        options.map_sqlx_sqlite_opts(|sqlite| {
            sqlite
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Full)
                .foreign_keys(true)
                .busy_timeout(SQLITE_BUSY_TIMEOUT)
                // Planner statistics, as SQLite's manual advises for long-lived connections:
                // at open, analyse the tables that have none (0x10002), and when a connection
                // closes (the pool recycles them), whatever its queries showed to be stale;
                // each ANALYZE reads at most about 400 rows per index.
                .analysis_limit(SQLITE_ANALYSIS_LIMIT)
                .pragma("optimize", "0x10002")
                .optimize_on_close(true, None)
        });
    }
    Ok(Database::connect(options).await?)
}

/// Opens the pool for reads that are not part of a write, such as the session check of every
/// request: on PostgreSQL that is `db` itself; on a SQLite file, a few read-only connections,
/// so that those reads neither wait for nor delay the single writing connection (in WAL mode
/// readers and the writer do not block each other, and a reader sees every committed write).
/// An in-memory SQLite database cannot be opened twice, so there it is `db` too.
pub async fn connect_reader(
    settings: &Settings,
    db: &DatabaseConnection,
) -> Result<DatabaseConnection, DbError> {
    let url = settings.database_url.as_str();
    if settings.is_postgres() || sqlite_file(url)?.is_none() {
        return Ok(db.clone());
    }
    let mut options = ConnectOptions::new(url);
    options
        .sqlx_logging(false)
        .test_before_acquire(false)
        .acquire_timeout(Duration::from_secs(10))
        .max_connections(SQLITE_READERS);
    options.map_sqlx_sqlite_opts(|sqlite| {
        sqlite
            .read_only(true)
            .foreign_keys(true)
            .busy_timeout(SQLITE_BUSY_TIMEOUT)
    });
    Ok(Database::connect(options).await?)
}

/// The file a SQLite URL names, or `None` for an in-memory database.
fn sqlite_file(url: &str) -> Result<Option<PathBuf>, DbError> {
    let options = SqliteConnectOptions::from_str(url).map_err(DbError::InvalidUrl)?;
    let file = options.get_filename();
    let in_memory =
        file == Path::new(":memory:") || file.as_os_str().is_empty() || url.contains("mode=memory");
    Ok((!in_memory).then(|| file.to_path_buf()))
}

/// Creates the folder that will hold a file-backed SQLite database.
fn create_sqlite_parent_dir(url: &str) -> Result<(), DbError> {
    let Some(file) = sqlite_file(url)? else {
        return Ok(());
    };
    match file.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => {
            std::fs::create_dir_all(parent).map_err(|source| DbError::CreateDir {
                path: parent.display().to_string(),
                source,
            })
        }
        _ => Ok(()),
    }
}

/// Applies every pending migration.
pub async fn migrate(db: &DatabaseConnection) -> Result<(), DbErr> {
    Migrator::up(db, None).await
}

/// How many migrations this build knows that the database has not applied.
///
/// Errs when the database has applied a migration this build does not know (a newer schema).
/// Read-only, unlike sea-orm's own status calls, which create the bookkeeping table first:
/// readiness probes call this every few seconds.
pub async fn migrations_pending(db: &DatabaseConnection) -> Result<usize, DbErr> {
    let known: Vec<String> = Migrator::migrations()
        .iter()
        .map(|migration| migration.name().to_owned())
        .collect();
    if !SchemaManager::new(db).has_table(MIGRATIONS_TABLE).await? {
        return Ok(known.len());
    }
    let backend = db.get_database_backend();
    let rows = db
        .query_all(Statement::from_string(
            backend,
            format!("SELECT version FROM {MIGRATIONS_TABLE}"),
        ))
        .await?;
    let mut applied = HashSet::with_capacity(rows.len());
    for row in rows {
        applied.insert(row.try_get::<String>("", "version")?);
    }
    if let Some(unknown) = applied.iter().find(|version| !known.contains(*version)) {
        return Err(DbErr::Custom(format!(
            "the database has migration {unknown} applied, which this build does not know"
        )));
    }
    Ok(known
        .iter()
        .filter(|version| !applied.contains(*version))
        .count())
}

/// A trivial round trip, to prove the database answers.
pub async fn ping(db: &DatabaseConnection) -> Result<(), DbErr> {
    let backend = db.get_database_backend();
    db.query_one(Statement::from_string(backend, "SELECT 1"))
        .await?;
    Ok(())
}

/// A PostgreSQL URL naming database `name` on the same server as `server` (its last path
/// segment replaced, its query kept): where tests and benchmarks create scratch databases.
pub fn database_url(server: &str, name: &str) -> String {
    let (base, query) = match server.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (server, None),
    };
    let base = base.rsplit_once('/').map_or(base, |(prefix, _)| prefix);
    match query {
        Some(query) => format!("{base}/{name}?{query}"),
        None => format!("{base}/{name}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_name_replaces_the_last_path_segment() {
        assert_eq!(
            database_url("postgres://postgres@127.0.0.1:5432/postgres", "t1"),
            "postgres://postgres@127.0.0.1:5432/t1"
        );
        assert_eq!(
            database_url("postgres://u@h/postgres?sslmode=disable", "t1"),
            "postgres://u@h/t1?sslmode=disable"
        );
    }

    #[test]
    fn the_folder_of_a_sqlite_file_is_created() {
        let root = tempfile::tempdir().unwrap();
        let file = root.path().join("nested/deeper/itaku.db");
        create_sqlite_parent_dir(&format!("sqlite://{}?mode=rwc", file.display())).unwrap();
        assert!(root.path().join("nested/deeper").is_dir());
    }

    /// A SQLite file reopened after rows were written has planner statistics for its tables.
    #[tokio::test]
    async fn a_reopened_sqlite_file_has_statistics_for_the_planner() -> Result<(), DbError> {
        use sea_orm::{ConnectionTrait, Statement};
        let root = tempfile::tempdir().map_err(|source| DbError::CreateDir {
            path: "a temporary folder".to_owned(),
            source,
        })?;
        let settings = Settings {
            database_url: format!("sqlite://{}?mode=rwc", root.path().join("t.db").display()),
            ..Settings::default()
        };
        let count_stats = "SELECT count(*) AS n FROM sqlite_master WHERE name = 'sqlite_stat1'";
        let db = connect(&settings).await?;
        migrate(&db).await?;
        db.execute_unprepared(
            "INSERT INTO organisations (id, kind, name_ja, created_at) \
             VALUES ('o1', 'municipality', '目黒区', '2026-01-01T00:00:00Z')",
        )
        .await?;
        let stats = |db: DatabaseConnection| async move {
            let row = db
                .query_one(Statement::from_string(
                    db.get_database_backend(),
                    count_stats,
                ))
                .await?;
            let n: i64 = row.map(|r| r.try_get("", "n")).transpose()?.unwrap_or(0);
            db.close().await?;
            Ok::<i64, DbError>(n)
        };
        assert_eq!(stats(db).await?, 0, "a new database has no statistics yet");
        assert_eq!(stats(connect(&settings).await?).await?, 1);
        Ok(())
    }

    #[test]
    fn in_memory_databases_need_no_folder() {
        create_sqlite_parent_dir("sqlite::memory:").unwrap();
    }
}
