//! What the database benchmarks share: the backends and `BENCH_N` from the environment, and a
//! fresh, migrated database per run that is removed whatever happened.

use std::future::Future;
use std::process::ExitCode;

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
#[allow(dead_code)] // A bench that starts the whole application uses `on_scratch_url`.
pub async fn on_scratch_database<T, F, Fut>(backend: Backend, measure: F) -> BenchResult<T>
where
    F: FnOnce(DatabaseConnection) -> Fut,
    Fut: Future<Output = BenchResult<T>>,
{
    on_scratch_url(backend, |url| async move {
        let conn = connect(&url).await?;
        let result = measure(conn.clone()).await;
        let closed = conn.close().await;
        result.and_then(|r| closed.map(|()| r).map_err(Into::into))
    })
    .await
}

/// Runs `measure` with the URL of a fresh, empty database of `backend` (the application
/// migrates it when it starts), then removes the database whatever happened.
pub async fn on_scratch_url<T, F, Fut>(backend: Backend, measure: F) -> BenchResult<T>
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = BenchResult<T>>,
{
    match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir()?;
            let path = dir.path().join("itaku-bench.db");
            measure(format!("sqlite://{}?mode=rwc", path.display())).await
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
            let result = measure(itaku::db::database_url(&server, &name)).await;
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
#[allow(dead_code)]
async fn connect(url: &str) -> BenchResult<DatabaseConnection> {
    let settings = Settings {
        database_url: url.to_owned(),
        ..Settings::default()
    };
    let conn = itaku::db::connect(&settings).await?;
    Migrator::up(&conn, None).await?;
    Ok(conn)
}

/// Runs `each` for every backend on a two-thread runtime (the machine's cores), printing
/// failures under `bench`'s name; fails when the runtime or any backend fails.
#[allow(dead_code)] // Not every bench measures per backend.
pub fn per_backend<F, Fut>(bench: &str, backends: Vec<Backend>, each: F) -> ExitCode
where
    F: Fn(Backend) -> Fut,
    Fut: Future<Output = BenchResult<()>>,
{
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{bench}: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut status = ExitCode::SUCCESS;
    for backend in backends {
        if let Err(e) = runtime.block_on(each(backend)) {
            eprintln!("{bench}: {}: {e}", backend.name());
            status = ExitCode::FAILURE;
        }
    }
    status
}
