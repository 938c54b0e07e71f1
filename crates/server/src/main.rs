use std::process::ExitCode;

use clap::Parser;
use latchkey_server::cli::{Cli, run};
use latchkey_server::telemetry;

fn main() -> ExitCode {
    // Only the working directory's `.env`: dotenvy's default search walks
    // up to `/`, so anyone able to write a `.env` in a parent folder could
    // set the signing key.
    let dotenv = match dotenvy::from_path(".env") {
        Ok(()) => true,
        Err(dotenvy::Error::Io(error)) if error.kind() == std::io::ErrorKind::NotFound => false,
        Err(error) => {
            eprintln!("error: .env cannot be read: {error}");
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
