//! The `enclave` binary, built again inside the end-to-end test crate (same `main` as
//! services/enclave/src/main.rs) so the tests can start the real server as a child process.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = enclave::cli::Cli::parse();
    enclave::telemetry::init(cli.log_format);
    match enclave::cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
