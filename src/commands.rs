//! The entry points of the CLI subcommands.

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs as _};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use crate::config::Settings;
use crate::db::{self, DbError};
use crate::startup::{Application, StartupError};

/// How long `healthcheck` waits for the server.
const HEALTHCHECK_TIMEOUT: Duration = Duration::from_secs(3);

/// A subcommand that failed.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Startup(#[from] StartupError),
    #[error(transparent)]
    Database(#[from] DbError),
    #[error("cannot migrate the database")]
    Migrate(#[source] sea_orm::DbErr),
    #[error("the server stopped with an error")]
    Serve(#[source] std::io::Error),
    #[error("`{0}` is not available in this build")]
    NotAvailable(&'static str),
    #[error("unhealthy: {0}")]
    Unhealthy(String),
}

/// `serve`: run the server until SIGTERM/SIGINT.
pub async fn serve(settings: Settings) -> Result<ExitCode, CommandError> {
    let application = Application::build(settings).await?;
    application
        .run_until_stopped()
        .await
        .map_err(CommandError::Serve)?;
    Ok(ExitCode::SUCCESS)
}

/// `migrate`: apply pending migrations and exit.
pub async fn migrate(settings: Settings) -> Result<ExitCode, CommandError> {
    let connection = db::connect(&settings).await?;
    let pending = db::migrations_pending(&connection)
        .await
        .map_err(CommandError::Migrate)?;
    db::migrate(&connection)
        .await
        .map_err(CommandError::Migrate)?;
    tracing::info!(applied = pending, "database is up to date");
    Ok(ExitCode::SUCCESS)
}

/// `check-workflows [DIR]`: filled in by the workflow engine's owner when merging.
pub fn check_workflows(_dir: &Path) -> Result<ExitCode, CommandError> {
    Err(CommandError::NotAvailable("check-workflows"))
}

/// `verify-audit`: filled in by the audit tables' owner when merging.
pub async fn verify_audit(_settings: Settings) -> Result<ExitCode, CommandError> {
    Err(CommandError::NotAvailable("verify-audit"))
}

/// `demo`: filled in by the workflow engine's owner when merging.
pub async fn demo(_settings: Settings) -> Result<ExitCode, CommandError> {
    Err(CommandError::NotAvailable("demo"))
}

/// `healthcheck`: `GET /healthz` on the configured port over plain HTTP/1.1, so that the
/// container image needs no curl. Exit 0 on `200`, 1 otherwise.
pub fn healthcheck(settings: &Settings) -> Result<ExitCode, CommandError> {
    let address = local_address(settings).ok_or_else(|| {
        CommandError::Unhealthy(format!(
            "cannot resolve {}:{}",
            settings.host, settings.port
        ))
    })?;
    let unhealthy = |error: std::io::Error| CommandError::Unhealthy(format!("{address}: {error}"));
    let mut stream =
        TcpStream::connect_timeout(&address, HEALTHCHECK_TIMEOUT).map_err(unhealthy)?;
    stream
        .set_read_timeout(Some(HEALTHCHECK_TIMEOUT))
        .map_err(unhealthy)?;
    stream
        .set_write_timeout(Some(HEALTHCHECK_TIMEOUT))
        .map_err(unhealthy)?;
    write!(
        stream,
        "GET /healthz HTTP/1.1\r\nHost: {address}\r\nUser-Agent: itaku-healthcheck\r\nConnection: close\r\n\r\n"
    )
    .map_err(unhealthy)?;
    let mut status_line = String::new();
    BufReader::new(stream)
        .read_line(&mut status_line)
        .map_err(unhealthy)?;
    if status_line.split_whitespace().nth(1) == Some("200") {
        Ok(ExitCode::SUCCESS)
    } else {
        Err(CommandError::Unhealthy(format!(
            "{address} answered {:?}",
            status_line.trim()
        )))
    }
}

/// Where to reach the server from inside its own host: a wildcard bind becomes loopback.
fn local_address(settings: &Settings) -> Option<SocketAddr> {
    let host = match settings.host.as_str() {
        "0.0.0.0" | "" => "127.0.0.1",
        "::" | "[::]" => "::1",
        host => host,
    };
    (host, settings.port).to_socket_addrs().ok()?.next()
}
