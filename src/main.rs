use std::process::ExitCode;

use clap::Parser as _;
use itaku::cli::{self, Cli};
use itaku::config::Settings;

#[tokio::main]
async fn main() -> ExitCode {
    let command = Cli::parse().into_command();
    let settings = match Settings::load() {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("itaku: {error}");
            return ExitCode::FAILURE;
        }
    };
    itaku::telemetry::init(settings.log_format);
    cli::dispatch(command, settings).await
}
