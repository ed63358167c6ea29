//! What the binary's end-to-end tests share: the `magpie` command with a clean environment,
//! running it (its output shown when it fails), and its output as text.

#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

/// The built `magpie` binary, run in `dir`, with no configuration from the environment.
pub fn magpie(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_magpie"));
    cmd.current_dir(dir)
        .env_remove("MAGPIE_DATA_DIR")
        .env_remove("MAGPIE_CONFIG")
        .env_remove("DUCKDB_PATH")
        .env_remove("ENVIRONMENT")
        .env("LOG_LEVEL", "warn");
    cmd
}

/// Run `cmd` to the end; when it fails, its output goes to the test's stderr.
pub fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("magpie runs");
    if !out.status.success() {
        eprintln!(
            "stdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}
