//! Command line: `itaku [serve|migrate|check-workflows [DIR]|verify-audit|sweep|remind|demo|healthcheck]`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::commands::{self, CommandError};
use crate::config::Settings;

/// Approval engine for consignments and subcontract chains of municipal personal data.
#[derive(Debug, Parser)]
#[command(name = "itaku", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// What to do; `serve` when none is given.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server (migrating the database first).
    Serve(PortArgs),
    /// Apply pending database migrations and exit.
    Migrate,
    /// Validate the workflow definitions in DIR (default: the `workflows_dir` setting).
    CheckWorkflows {
        /// Folder of `*.toml` definitions.
        dir: Option<PathBuf>,
        /// Also compare with the definitions deployed in the configured database, to catch a
        /// file changed without a version bump before it is deployed.
        #[arg(long)]
        database: bool,
    },
    /// Verify every audit hash chain and the global anchors.
    VerifyAudit,
    /// Suspend the nodes whose evidence expired before DATE (default: today in Japan), with
    /// their descendants; for cron and tests. Safe beside running servers.
    Sweep {
        /// The day to judge validity on (YYYY-MM-DD).
        #[arg(long)]
        at: Option<chrono::NaiveDate>,
    },
    /// Fire the workflow timers (reminders, escalations) due on or before DATE (default: today
    /// in Japan), once; for cron and tests. Safe beside running servers.
    Remind {
        /// The day to judge due dates on (YYYY-MM-DD).
        #[arg(long)]
        at: Option<chrono::NaiveDate>,
    },
    /// Seed demonstration data and serve it.
    Demo(PortArgs),
    /// GET /healthz on the configured port; exit 0 when healthy (for container HEALTHCHECK).
    Healthcheck(PortArgs),
}

/// The `--port` option shared by server commands.
#[derive(Debug, Clone, Copy, Args)]
pub struct PortArgs {
    /// Port to listen on (0: any free port); overrides the `port` setting.
    #[arg(long, env = "ITAKU_PORT")]
    pub port: Option<u16>,
}

impl PortArgs {
    fn apply(self, mut settings: Settings) -> Settings {
        if let Some(port) = self.port {
            settings.port = port;
        }
        settings
    }
}

impl Cli {
    /// The command to run (`serve` by default).
    pub fn into_command(self) -> Command {
        self.command
            .unwrap_or(Command::Serve(PortArgs { port: None }))
    }
}

/// Runs `command` with `settings`; failures are logged and become exit code 1.
pub async fn dispatch(command: Command, settings: Settings) -> ExitCode {
    let result: Result<ExitCode, CommandError> = match command {
        Command::Serve(args) => commands::serve(args.apply(settings)).await,
        Command::Migrate => commands::migrate(settings).await,
        Command::CheckWorkflows { dir, database } => {
            let dir = dir.unwrap_or_else(|| settings.workflows_dir.clone());
            commands::check_workflows(&dir, database.then_some(&settings)).await
        }
        Command::VerifyAudit => commands::verify_audit(settings).await,
        Command::Sweep { at } => commands::sweep(settings, at).await,
        Command::Remind { at } => commands::remind(settings, at).await,
        Command::Demo(args) => commands::demo(args.apply(settings)).await,
        Command::Healthcheck(args) => commands::healthcheck(&args.apply(settings)),
    };
    result.unwrap_or_else(|error| {
        tracing::error!(error = %error_chain(&error), "command failed");
        ExitCode::FAILURE
    })
}

/// `error: cause: cause`, for one log line; causes already quoted by their parent's message
/// (sqlx and sea-orm do that) are not repeated.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn serve_is_the_default_command() {
        let cli = Cli::try_parse_from(["itaku"]).unwrap();
        assert!(matches!(
            cli.into_command(),
            Command::Serve(PortArgs { port: None })
        ));
    }

    #[test]
    fn check_workflows_takes_an_optional_folder() {
        let cli = Cli::try_parse_from(["itaku", "check-workflows", "defs"]).unwrap();
        assert!(
            matches!(cli.into_command(), Command::CheckWorkflows { dir: Some(d), .. } if d == Path::new("defs"))
        );
        let cli = Cli::try_parse_from(["itaku", "check-workflows"]).unwrap();
        assert!(matches!(
            cli.into_command(),
            Command::CheckWorkflows { dir: None, .. }
        ));
    }

    #[test]
    fn the_port_option_overrides_the_setting() {
        let cli = Cli::try_parse_from(["itaku", "demo", "--port", "0"]).unwrap();
        let Command::Demo(args) = cli.into_command() else {
            panic!("not demo");
        };
        assert_eq!(args.apply(Settings::default()).port, 0);
    }

    #[test]
    fn an_error_chain_names_each_cause_once() {
        #[derive(Debug, thiserror::Error)]
        #[error("cannot start")]
        struct Outer(#[source] std::io::Error);
        #[derive(Debug, thiserror::Error)]
        #[error("cannot start: {0}")]
        struct Quoting(#[source] std::io::Error);

        let outer = Outer(std::io::Error::other("port taken"));
        assert_eq!(error_chain(&outer), "cannot start: port taken");
        let quoting = Quoting(std::io::Error::other("port taken"));
        assert_eq!(error_chain(&quoting), "cannot start: port taken");
    }

    #[test]
    fn unknown_subcommands_are_refused() {
        assert!(Cli::try_parse_from(["itaku", "frobnicate"]).is_err());
    }
}
