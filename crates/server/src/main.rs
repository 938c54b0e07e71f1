use std::process::ExitCode;

use clap::Parser;
use latchkey_server::cli::{Cli, run};
use latchkey_server::telemetry;

fn main() -> ExitCode {
    // A missing .env is normal; a malformed one is reported by the settings.
    let _ = dotenvy::dotenv();
    telemetry::init_logging();
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", error.0);
            ExitCode::FAILURE
        }
    }
}
