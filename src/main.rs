use std::process::ExitCode;

use clap::Parser as _;
use itaku::cli::{self, Cli};
use itaku::config::Settings;

/// Loads the settings first, because they size the runtime (`runtime_threads`).
fn main() -> ExitCode {
    let command = Cli::parse().into_command();
    let settings = match Settings::load() {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("itaku: {error}");
            return ExitCode::FAILURE;
        }
    };
    itaku::telemetry::init(settings.log_format);
    let runtime = match settings.runtime() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("itaku: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(cli::dispatch(command, settings))
}
