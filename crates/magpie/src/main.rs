//! `magpie`: the command line. Parses arguments, loads and validates the configuration once,
//! and hands each subcommand to the crate that does the work.

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod allocator;
mod cli;
mod commands;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // A `.env` beside the compose file (or in the working directory) fills in unset variables.
    let _ = dotenvy::dotenv();
    let cli = cli::Cli::parse();
    match commands::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
