//! The entry points of the CLI subcommands.

use std::io::{BufRead as _, BufReader, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs as _};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use crate::config::Settings;
use crate::db::{self, DbError};
use crate::services::audit;
use crate::startup::{Application, StartupError};
use crate::workflow::{load_dir, Kinds};

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
    #[error("cannot read the audit trail")]
    ReadAudit(#[source] sea_orm::DbErr),
    #[error("cannot print the report")]
    Print(#[source] std::io::Error),
    #[error("the server stopped with an error")]
    Serve(#[source] std::io::Error),
    #[error(transparent)]
    Demo(#[from] crate::demo::DemoError),
    #[error("unhealthy: {0}")]
    Unhealthy(String),
    #[error("the evidence sweep failed: {0}")]
    Sweep(String),
    #[error("the workflow definitions cannot be loaded: {0}")]
    Workflows(String),
    #[error("the scheduler pass failed: {0}")]
    Remind(String),
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

/// `check-workflows [DIR] [--database]`: validate every definition as start-up would; print a
/// line per definition, or every problem as `file:line: message`, and fail. With a database,
/// also refuse files changed under a version that is already deployed there.
pub async fn check_workflows(
    dir: &Path,
    database: Option<&Settings>,
) -> Result<ExitCode, CommandError> {
    let report = match workflow_report(dir) {
        Ok(report) => report,
        Err(problems) => {
            eprintln!("{problems}");
            return Ok(ExitCode::FAILURE);
        }
    };
    if let Some(settings) = database {
        let db = db::connect(settings).await?;
        let set = load_dir(dir, &Kinds::product()).unwrap_or_default();
        let changed = crate::services::definitions::changed_without_bump(&db, &set)
            .await
            .map_err(CommandError::Migrate)?;
        if !changed.is_empty() {
            eprintln!("{}", changed.join("\n"));
            return Ok(ExitCode::FAILURE);
        }
    }
    println!("{report}");
    Ok(ExitCode::SUCCESS)
}

/// `verify-audit`: check every audit chain and the anchors in one read-only snapshot and print
/// the report; exit 0 when clean, 1 otherwise. It never writes: anchoring is the server's job.
pub async fn verify_audit(settings: Settings) -> Result<ExitCode, CommandError> {
    verify_audit_to(&settings, &mut std::io::stdout()).await
}

/// [`verify_audit`], printing the report to `out`.
pub async fn verify_audit_to(
    settings: &Settings,
    out: &mut (impl Write + Send),
) -> Result<ExitCode, CommandError> {
    let connection = db::connect(settings).await?;
    let report = audit::verify_snapshot(&connection)
        .await
        .map_err(CommandError::ReadAudit)?;
    out.write_all(audit::render(&report).as_bytes())
        .and_then(|()| out.flush())
        .map_err(CommandError::Print)?;
    Ok(if report.is_clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// What the one-shot commands beside running servers need: the database, migrated, the
/// workflow definitions loaded and deployed, and "now" on the day asked for (default: today in
/// Japan).
async fn deployed(
    settings: &Settings,
    at: Option<chrono::NaiveDate>,
) -> Result<
    (
        sea_orm::DatabaseConnection,
        crate::workflow::WorkflowSet,
        crate::workflow::Now,
    ),
    CommandError,
> {
    let clock = crate::clock::Clock::System;
    let now = crate::workflow::Now {
        at: clock.now(),
        today: at.unwrap_or_else(|| clock.today_jst()),
    };
    let connection = db::connect(settings).await?;
    db::migrate(&connection)
        .await
        .map_err(CommandError::Migrate)?;
    let kinds = crate::workflow::Kinds::product();
    let mut workflows =
        crate::workflow::load_dir(&settings.workflows_dir, &kinds).map_err(|e| {
            CommandError::Workflows(
                e.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("\n"),
            )
        })?;
    crate::services::definitions::deploy(&connection, &mut workflows, &kinds, now.at)
        .await
        .map_err(|e| CommandError::Workflows(e.to_string()))?;
    Ok((connection, workflows, now))
}

/// `sweep [--at DATE]`: the evidence expiry sweep, once, printing the suspended nodes.
pub async fn sweep(
    settings: Settings,
    at: Option<chrono::NaiveDate>,
) -> Result<ExitCode, CommandError> {
    let (connection, workflows, now) = deployed(&settings, at).await?;
    let today = now.today;
    let nodes = crate::services::evidence::sweep(&connection, &workflows, now)
        .await
        .map_err(|e| CommandError::Sweep(format!("{e:?}")))?;
    println!(
        "証跡の期限切れ確認 / evidence sweep on {today}: {} node(s) suspended",
        nodes.len()
    );
    for n in nodes {
        println!("  {n}");
    }
    Ok(ExitCode::SUCCESS)
}

/// `remind [--at DATE]`: one scheduler pass for the day (default: today in Japan): fires the
/// workflow timers due, writes the evidence-expiry reminders reached, generates the 年度's
/// obligations and fires their due reminder stages, printing what it did; the mail waits in the
/// outbox for a server's dispatcher. Safe beside running servers: everything is written once.
pub async fn remind(
    settings: Settings,
    at: Option<chrono::NaiveDate>,
) -> Result<ExitCode, CommandError> {
    let policy =
        crate::schedule::load_obligation_policy(&settings).map_err(CommandError::Remind)?;
    let (connection, workflows, now) = deployed(&settings, at).await?;
    let today = now.today;
    let scheduler = crate::schedule::Scheduler {
        db: connection,
        workflows: std::sync::Arc::new(workflows),
        obligation_policy: std::sync::Arc::new(policy),
        evidence_reminder_days: settings.evidence_reminder_days.clone(),
    };
    let mut calendar = crate::schedule::calendar::BusinessCalendar::new();
    let report = scheduler
        .pass(&mut calendar, now)
        .await
        .map_err(|e| CommandError::Remind(e.to_string()))?;
    println!(
        "督促・エスカレーション / reminders and escalations due by {today}: {} fired",
        report.timers.len()
    );
    for t in &report.timers {
        println!(
            "  {} {} {} (due {}) instance {}",
            t.id, t.timer, t.action, t.due, t.instance_id
        );
    }
    println!(
        "証跡の期限通知 / evidence expiry reminders: {}",
        report.evidence_reminders.len()
    );
    for r in &report.evidence_reminders {
        println!(
            "  {} {} of {} valid until {} ({} days)",
            r.evidence_id, r.kind, r.organisation_id, r.valid_until, r.stage_days
        );
    }
    println!(
        "義務 / obligations: {} created, {} reminder stage(s) fired",
        report.obligations_created,
        report.obligation_reminders.len()
    );
    for o in &report.obligation_reminders {
        println!("  {} {} (due {})", o.obligation_id, o.stage, o.due_on);
    }
    println!("まとめメール / daily digests: {}", report.digests.len());
    for d in &report.digests {
        println!("  user {} on {}: {} message(s)", d.user_id, d.day, d.items);
    }
    Ok(ExitCode::SUCCESS)
}

/// `demo`: seed the demonstration data (once per database), print where to go and how to sign
/// in, and serve.
pub async fn demo(settings: Settings) -> Result<ExitCode, CommandError> {
    let application = Application::build(settings).await?;
    let state = application.state();
    let logins = crate::demo::seed(&state).await?;
    // The scheduler's first pass ran at start, before the seeding: run one over the demo data,
    // so that its obligations and reminders are there from the first screen.
    let scheduler = crate::schedule::Scheduler {
        db: state.db.clone(),
        workflows: state.workflows.clone(),
        obligation_policy: state.obligation_policy.clone(),
        evidence_reminder_days: state.settings.evidence_reminder_days.clone(),
    };
    let now = crate::workflow::Now {
        at: state.clock.now(),
        today: state.clock.today_jst(),
    };
    scheduler
        .pass(&mut crate::schedule::calendar::BusinessCalendar::new(), now)
        .await
        .map_err(|e| CommandError::Remind(e.to_string()))?;
    let url = format!("http://{}:{}", state.settings.host, application.port());
    let mut lines = vec![
        String::new(),
        format!("itaku デモ / demo: {url}"),
        format!("  API: {url}/api/v1   (GET {url}/api/v1/workflows, {url}/healthz)"),
        format!(
            "  サインイン / sign in: curl -X POST {url}/api/v1/auth/sign-in -H 'content-type: application/json' -d '{{\"login\":\"meguro.officer\",\"password\":\"{}\"}}'",
            crate::demo::DEMO_PASSWORD
        ),
        format!(
            "  デモ用ログイン (パスワードは全員 / password for all: {}):",
            crate::demo::DEMO_PASSWORD
        ),
    ];
    lines.extend(
        logins
            .iter()
            .map(|l| format!("    {:<18} {}", l.login, l.who)),
    );
    println!("{}\n", lines.join("\n"));
    application
        .run_until_stopped()
        .await
        .map_err(CommandError::Serve)?;
    Ok(ExitCode::SUCCESS)
}

/// Loads every definition in `dir` with the product's kinds: a line per definition when all
/// are valid, otherwise every problem as `file:line: message`, one per line.
pub fn workflow_report(dir: &Path) -> Result<String, String> {
    let set = load_dir(dir, &Kinds::product()).map_err(|errors| {
        errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    })?;
    let mut lines = Vec::new();
    for rt in set.iter() {
        let d = rt.describe();
        let hash = rt.content_hash();
        lines.push(format!(
            "ok  {} v{}  sha256={}  {}, {}",
            d.id,
            d.version,
            hash.get(..12).unwrap_or(hash),
            count(d.states.len(), "state"),
            count(d.transitions.len(), "transition"),
        ));
        if d.create_org.is_none() {
            lines.push(format!("note  {} v{}: {UNSCOPED}", d.id, d.version));
        }
    }
    Ok(lines.join("\n"))
}

/// What an operator should know of a definition without `create_org`.
pub const UNSCOPED: &str = "no create_org: an instance whose context names no organisation \
    is visible to every signed-in user, and a transition without an org scope is open to the \
    holders of its roles in any organisation (create_org がありません: 組織を指定しない\
    インスタンスはすべての利用者に表示され、org のない遷移はどの組織の該当ロール保持者も実行できます)";

fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workflow::content_hash;

    #[test]
    fn the_product_folder_reports_one_line_per_definition() -> std::io::Result<()> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("workflows");
        let source = std::fs::read_to_string(dir.join("subcontract_permission.toml"))?;
        let hash = content_hash(&source);
        assert_eq!(
            workflow_report(&dir),
            Ok(format!(
                "ok  subcontract_permission v1  sha256={}  9 states, 13 transitions",
                &hash[..12]
            ))
        );
        Ok(())
    }

    #[test]
    fn a_broken_folder_reports_every_problem_with_its_file_and_line() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let file = dir.path().join("broken.toml");
        std::fs::write(
            &file,
            "id = \"broken\"\nversion = 0\ncontext = \"generic\"\ncreate_roles = [\"mayor\"]\n",
        )?;
        let f = file.display();
        assert_eq!(
            workflow_report(dir.path()),
            Err([
                format!("{f}:1: title (ja and en) is missing"),
                format!("{f}:1: no initial state (mark one state with initial = true)"),
                format!("{f}:1: no terminal state (mark at least one with terminal = true)"),
                format!("{f}:2: version must be 1 or more"),
                format!("{f}:4: unknown role \"mayor\" in create_roles"),
            ]
            .join("\n"))
        );
        Ok(())
    }

    #[test]
    fn an_empty_folder_is_fine_and_reports_nothing() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        assert_eq!(workflow_report(dir.path()), Ok(String::new()));
        Ok(())
    }

    #[test]
    fn a_missing_folder_is_reported() {
        let dir = Path::new("/nonexistent/itaku-workflows");
        let result = workflow_report(dir);
        assert!(
            result.as_ref().is_err_and(
                |e| e.starts_with("/nonexistent/itaku-workflows:0: cannot read the folder: ")
            ),
            "{result:?}"
        );
    }
}
