use std::process::ExitCode;

use clap::Parser;
use latchkey_server::cli::{Cli, run};
use latchkey_server::telemetry;

fn main() -> ExitCode {
    // Before anything opens a TLS connection (libpq, SMTP).
    latchkey_persistence::init_tls();
    let dotenv = match latchkey_server::settings::load_dotenv() {
        Ok(found) => found,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::FAILURE;
        }
    };
    telemetry::init_logging();
    if dotenv {
        log::info!("read settings from ./.env");
    }
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", error.0);
            ExitCode::FAILURE
        }
    }
}
