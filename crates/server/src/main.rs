use std::process::ExitCode;

use clap::Parser;
use latchkey_server::cli::{Cli, run};
use latchkey_server::telemetry;

fn main() -> ExitCode {
    // Before anything opens a TLS connection (libpq, SMTP): OpenSSL is
    // initialised without its atexit cleanup, which would free what
    // threads still running at exit hold.
    openssl_sys::init();
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
