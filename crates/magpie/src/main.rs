//! `magpie`: the command line. Parses arguments, loads and validates the configuration once,
//! and hands each subcommand to the crate that does the work.

mod cli;
mod commands;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    limit_malloc_arenas();
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

/// glibc gives each thread that allocates an arena of its own and keeps what is freed there;
/// with DuckDB's workers, tokio's and the query pool's threads that is tens of MB of RSS that
/// the memory budget never sees. Two arenas serve magpie's few busy threads.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only adjusts allocator parameters; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}
