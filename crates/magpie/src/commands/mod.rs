//! One module per subcommand; this one loads the configuration and dispatches.

mod backup;
mod build;
mod demo;
mod doctor;
mod enrich;
mod flows;
mod health;
mod import;
mod listener;
mod market;
mod serve;
mod share;
mod spotify;
mod sql;
mod tasks;

use std::process::ExitCode;

use anyhow::Context;
use magpie_core::{Config, ConfigSources, OpenOptions, Warehouse};

use crate::cli::{Cli, Command};

/// Load configuration (flags over environment over file over defaults) and run the command.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let mut sources = ConfigSources {
        file: cli.config.clone(),
        ..Default::default()
    };
    if let Some(dir) = &cli.data_dir {
        sources = sources.with_override("data_dir", dir.to_string_lossy());
    }
    let mut config = Config::load(&sources)?;
    if matches!(cli.command, Command::Demo(_)) && cli.data_dir.is_none() {
        // The demo never mixes with real listening: its own folder unless told otherwise.
        config.data_dir = "demo-data".into();
        config.duckdb_path = None;
    }
    magpie_core::logging::init(&config.log, &config.data_dir);
    let result = match cli.command {
        Command::Import(args) => import::run(&config, args),
        Command::Build(args) => build::run(&config, args),
        Command::Sql(args) => sql::run(&config, args),
        Command::Demo(args) => demo::run(&config, args),
        Command::Serve(args) => serve::run(&config, &args),
        Command::Enrich(args) => enrich::run(&config, args),
        Command::Run(args) => flows::run(&config, args),
        Command::Backup { to } => backup::backup(&config, to),
        Command::Restore { path } => backup::restore(&config, &path),
        Command::Runs(args) => flows::runs(&config, args),
        Command::Spotify(command) => spotify::run(&config, command),
        Command::Market(crate::cli::MarketCommand::Run) => market::run(&config),
        Command::Share(command) => share::run(&config, command),
        Command::Listener(command) => listener::run(&config, command),
        Command::Admin(crate::cli::AdminCommand::Password) => {
            println!(
                "New admin password for the web pages (at least {} characters), then Enter:",
                magpie_core::secrets::MIN_PASSWORD_LEN
            );
            let mut password = String::new();
            std::io::stdin().read_line(&mut password)?;
            let password = password.trim_end_matches(['\r', '\n']);
            magpie_core::secrets::set_admin_password(&config.data_dir, password)?;
            println!(
                "Saved (as an argon2 hash in {}). Log in at /login.",
                magpie_core::secrets::dir(&config.data_dir).display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Doctor { offline } => doctor::run(&config, offline),
        Command::Health { url } => health::run(&config, url),
        Command::Config => {
            print!("{}", toml::to_string_pretty(&redacted(&config))?);
            Ok(ExitCode::SUCCESS)
        }
    };
    result.map_err(|e| explain_disk_failure(e, &config))
}

/// An error that came from a full or read-only disk, said first in plain words with the data
/// folder's filesystem as it is now (DuckDB's own message can read "Out of Memory" or end in
/// "Unknown error code"); other errors as they are.
fn explain_disk_failure(error: anyhow::Error, config: &Config) -> anyhow::Error {
    use magpie_core::host::{DiskFailure, DiskState, disk_failure};
    let Some(failure) = disk_failure(&format!("{error:#}")) else {
        return error;
    };
    let disk = DiskState::read(&config.data_dir);
    let dir = config.data_dir.display();
    let said = match failure {
        DiskFailure::Full => format!(
            "no space left on device (the data folder {dir} has {:.1} MB free of {:.1} MB now): free some space, then run it again",
            disk.available_bytes as f64 / 1e6,
            disk.total_bytes as f64 / 1e6
        ),
        DiskFailure::ReadOnly if disk.read_only => format!(
            "the data folder {dir} is on a read-only file system: mount it read-write, then run it again"
        ),
        DiskFailure::ReadOnly => {
            "a read-only file system refused the write: mount it read-write, then run it again"
                .to_string()
        }
    };
    error.context(said)
}

fn redacted(config: &Config) -> Config {
    let mut shown = config.clone();
    if shown.spotify.client_secret.is_some() {
        shown.spotify.client_secret = Some(magpie_core::Secret::new("***"));
    }
    for hook in &mut shown.alerts.webhooks {
        // Discord's and Slack's webhook URLs carry a token: keep the host only.
        let host = url::Url::parse(hook.url.expose())
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
            .unwrap_or_default();
        hook.url = magpie_core::Secret::new(format!("https://{host}/***"));
    }
    shown
}

/// Open the warehouse for writing with the configured memory budget.
pub fn open_warehouse(config: &Config) -> anyhow::Result<Warehouse> {
    std::fs::create_dir_all(&config.data_dir).with_context(|| {
        format!(
            "cannot create the data folder {}",
            config.data_dir.display()
        )
    })?;
    let options = OpenOptions::from_budget(config.memory_budget, &config.data_dir);
    Ok(Warehouse::open(config.warehouse_path(), &options)?)
}

/// A locked-down read-only connection for the read-only commands (`sql`, `runs`,
/// `spotify status`): to the warehouse itself when no other process holds it, else, while
/// `magpie serve` does, to the snapshot it publishes after every build, saying so on stderr.
/// It cannot write, read files (but the market data's Parquet) or change its settings, and
/// DuckDB gets the share of `memory_budget` a writer would.
pub fn open_reader(config: &Config) -> anyhow::Result<duckdb::Connection> {
    use magpie_core::warehouse::reader::{self, ReaderOptions, SnapshotInfo};
    let options = ReaderOptions {
        memory_limit: OpenOptions::from_budget(config.memory_budget, &config.data_dir).memory_limit,
        ..ReaderOptions::from_budget(
            config.memory_budget,
            vec![config.market.dir(&config.data_dir)],
        )
    };
    match reader::open_locked(&config.warehouse_path(), &options) {
        Err(magpie_core::WarehouseError::Locked { path }) => {
            let snapshot = config.snapshot_path();
            let conn = reader::open_locked(&snapshot, &options).with_context(|| {
                format!(
                    "{} is held by another magpie (magpie serve?), and its snapshot cannot be read",
                    path.display()
                )
            })?;
            let info = SnapshotInfo::of(&snapshot, &conn)?;
            eprintln!(
                "(another magpie, e.g. `magpie serve`, holds the warehouse: reading {})",
                info.describe()
            );
            Ok(conn)
        }
        other => Ok(other?),
    }
}
