//! Fresh migrated databases for service tests, on both backends.
//!
//! SQLite: a new file in a temporary directory. PostgreSQL: a new uniquely named database on
//! `ITAKU_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`). An
//! unreachable PostgreSQL fails the test; tests never skip a backend.
//!
//! ```ignore
//! async fn something_holds(backend: Backend) -> TestResult {
//!     let db = TestDb::fresh(backend).await?;
//!     // … use &db.conn …
//!     db.close().await
//! }
//! backend_tests!(something_holds);
//! ```

use std::time::Duration;

use chrono::{DateTime, Utc};
use entity::{workflow_definition, workflow_instance};
use migration::{Migrator, MigratorTrait};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbErr, EntityTrait, Set,
};

use crate::services::audit::GENESIS_HASH;
use crate::services::db_time::to_db_precision;

/// What a test returns; any error fails it with its message.
pub type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// The database a test runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A fresh, migrated, empty database.
pub struct TestDb {
    pub conn: DatabaseConnection,
    /// Kept so the SQLite file lives as long as the connection.
    _dir: Option<tempfile::TempDir>,
    /// Server URL and name of the PostgreSQL database, dropped by [`TestDb::close`].
    postgres: Option<(String, String)>,
}

impl TestDb {
    /// Creates and migrates a new database on `backend`.
    pub async fn fresh(backend: Backend) -> Result<Self, DbErr> {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().map_err(|e| DbErr::Custom(e.to_string()))?;
                let path = dir.path().join("itaku-test.db");
                let conn = connect(&format!("sqlite://{}?mode=rwc", path.display())).await?;
                Migrator::up(&conn, None).await?;
                Ok(Self {
                    conn,
                    _dir: Some(dir),
                    postgres: None,
                })
            }
            Backend::Postgres => {
                let server = std::env::var("ITAKU_TEST_POSTGRES_URL")
                    .unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_owned());
                let name = format!("itaku_test_{}", uuid::Uuid::new_v4().simple());
                let admin = connect(&server).await.map_err(|e| {
                    DbErr::Custom(format!(
                        "PostgreSQL is required for these tests and is unreachable at {server}: {e}"
                    ))
                })?;
                admin
                    .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
                    .await?;
                admin.close().await?;
                let conn = connect(&crate::db::database_url(&server, &name)).await?;
                Migrator::up(&conn, None).await?;
                Ok(Self {
                    conn,
                    _dir: None,
                    postgres: Some((server, name)),
                })
            }
        }
    }

    /// Closes the connection and drops the database. A failing test skips this, leaving its
    /// PostgreSQL database (`itaku_test_*`) behind for inspection.
    pub async fn close(self) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        self.conn.close().await?;
        if let Some((server, name)) = self.postgres {
            let admin = connect(&server).await?;
            admin
                .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                .await?;
            admin.close().await?;
        }
        Ok(())
    }
}

async fn connect(url: &str) -> Result<DatabaseConnection, DbErr> {
    let mut options = ConnectOptions::new(url);
    // Fail within seconds, not sqlx's default 30 s, when the server is down.
    options
        .max_connections(5)
        .connect_timeout(Duration::from_secs(5))
        .acquire_timeout(Duration::from_secs(10))
        .sqlx_logging(false);
    Database::connect(options).await
}

/// Inserts an instance of workflow `test` version 1 (created if absent) with no audit record:
/// state `draft`, version 1, head seq 0 / 64 zeros.
pub async fn insert_instance(
    conn: &impl ConnectionTrait,
    id: &str,
    at: DateTime<Utc>,
) -> Result<(), DbErr> {
    let at = to_db_precision(at);
    workflow_definition::Entity::insert(workflow_definition::ActiveModel {
        workflow_id: Set("test".to_owned()),
        version: Set(1),
        content_hash: Set("0".repeat(64)),
        source: Set("id = \"test\"\nversion = 1\n".to_owned()),
        deployed_at: Set(at),
    })
    .on_conflict(
        OnConflict::columns([
            workflow_definition::Column::WorkflowId,
            workflow_definition::Column::Version,
        ])
        .do_nothing()
        .to_owned(),
    )
    .exec_without_returning(conn)
    .await?;
    workflow_instance::Entity::insert(workflow_instance::ActiveModel {
        id: Set(id.to_owned()),
        workflow_id: Set("test".to_owned()),
        workflow_version: Set(1),
        state: Set("draft".to_owned()),
        version: Set(1),
        submitter: Set("user-1".to_owned()),
        organisation_id: Set(Some("org-1".to_owned())),
        context: Set("{}".to_owned()),
        progress: Set("{}".to_owned()),
        corrects_instance_id: Set(None),
        created_at: Set(at),
        updated_at: Set(at),
        audit_seq: Set(0),
        audit_head: Set(GENESIS_HASH.to_owned()),
        waiting_org: Set(None),
        waiting_roles: Set(None),
    })
    .exec_without_returning(conn)
    .await?;
    Ok(())
}

/// Generates a `sqlite` and a `postgres` test module, each with one `#[tokio::test]` per named
/// `async fn(Backend) -> TestResult` of the enclosing module.
macro_rules! backend_tests {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() -> $crate::services::test_db::TestResult {
                    super::$name($crate::services::test_db::Backend::Sqlite).await
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() -> $crate::services::test_db::TestResult {
                    super::$name($crate::services::test_db::Backend::Postgres).await
                }
            )+
        }
    };
}
pub(crate) use backend_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::{EntityTrait, PaginatorTrait};

    async fn migrating_down_and_up_again_leaves_an_empty_working_schema(
        backend: Backend,
    ) -> TestResult {
        let db = TestDb::fresh(backend).await?;
        let at = DateTime::from_timestamp(1_795_000_000, 0).ok_or("valid timestamp")?;
        insert_instance(&db.conn, "i1", at).await?;
        Migrator::down(&db.conn, None).await?;
        assert!(
            workflow_instance::Entity::find()
                .count(&db.conn)
                .await
                .is_err(),
            "down must drop the tables"
        );
        Migrator::up(&db.conn, None).await?;
        assert_eq!(workflow_instance::Entity::find().count(&db.conn).await?, 0);
        insert_instance(&db.conn, "i1", at).await?;
        db.close().await
    }

    backend_tests!(migrating_down_and_up_again_leaves_an_empty_working_schema);
}
