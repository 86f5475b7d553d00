//! What the database benchmarks share: the backends and `BENCH_N` from the environment, and a
//! fresh, migrated database per run that is removed whatever happened.

use std::future::Future;

use itaku::config::Settings;
use migration::{Migrator, MigratorTrait};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection};

pub type BenchResult<T> = Result<T, Box<dyn std::error::Error>>;

/// Where the scratch PostgreSQL databases are created (`ITAKU_TEST_POSTGRES_URL` to change it).
const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }

    /// The backends `BENCH_DB` names (`sqlite`, `postgres`; both when unset).
    pub fn from_env() -> Result<Vec<Self>, String> {
        match std::env::var("BENCH_DB").ok().as_deref() {
            None | Some("") => Ok(vec![Self::Sqlite, Self::Postgres]),
            Some("sqlite") => Ok(vec![Self::Sqlite]),
            Some("postgres") => Ok(vec![Self::Postgres]),
            Some(other) => Err(format!(
                "BENCH_DB must be sqlite or postgres, not {other:?}"
            )),
        }
    }
}

/// `BENCH_N`, or `default` when unset.
pub fn env_n(default: u64) -> Result<u64, String> {
    match std::env::var("BENCH_N") {
        Err(_) => Ok(default),
        Ok(text) => match text.trim().parse::<u64>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(format!("BENCH_N must be a positive integer, not {text:?}")),
        },
    }
}

/// Runs `measure` on a fresh, migrated database of `backend` (a SQLite file in a temporary
/// folder, or a new PostgreSQL database), then removes the database whatever happened.
pub async fn on_scratch_database<T, F, Fut>(backend: Backend, measure: F) -> BenchResult<T>
where
    F: FnOnce(DatabaseConnection) -> Fut,
    Fut: Future<Output = BenchResult<T>>,
{
    match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir()?;
            let path = dir.path().join("itaku-bench.db");
            let conn = connect(&format!("sqlite://{}?mode=rwc", path.display())).await?;
            let result = measure(conn.clone()).await;
            conn.close().await?;
            result
        }
        Backend::Postgres => {
            let server = std::env::var("ITAKU_TEST_POSTGRES_URL")
                .unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_owned());
            let name = format!("itaku_bench_{}", uuid::Uuid::new_v4().simple());
            let admin = Database::connect(server.as_str())
                .await
                .map_err(|e| format!("PostgreSQL is unreachable at {server}: {e}"))?;
            admin
                .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
                .await?;
            let result = match connect(&itaku::db::database_url(&server, &name)).await {
                Ok(conn) => {
                    let result = measure(conn.clone()).await;
                    let closed = conn.close().await;
                    result.and_then(|r| closed.map(|()| r).map_err(Into::into))
                }
                Err(e) => Err(e),
            };
            let dropped = admin
                .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                .await;
            admin.close().await?;
            if let Err(e) = dropped {
                eprintln!("cannot drop the benchmark database {name}: {e}");
                return Err(e.into());
            }
            result
        }
    }
}

/// The product's own connection setup (WAL, `synchronous=FULL`, foreign keys on SQLite), and
/// its migrations.
async fn connect(url: &str) -> BenchResult<DatabaseConnection> {
    let settings = Settings {
        database_url: url.to_owned(),
        ..Settings::default()
    };
    let conn = itaku::db::connect(&settings).await?;
    Migrator::up(&conn, None).await?;
    Ok(conn)
}
