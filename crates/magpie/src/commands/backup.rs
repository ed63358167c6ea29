//! `magpie backup [--to DIR]`: a consistent, dated copy of the warehouse with retention;
//! `magpie restore BACKUP`: that copy back as the warehouse of an empty data folder.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use magpie_core::Config;
use magpie_core::warehouse::backup;

pub fn backup(config: &Config, to: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let warehouse = super::open_warehouse(config)?;
    let dir = to.unwrap_or_else(|| config.backup_dir());
    let (path, removed) =
        warehouse.backup(&dir, chrono::Utc::now().date_naive(), config.retention())?;
    let size = std::fs::metadata(&path)?.len();
    println!("backup {} ({:.1} MB)", path.display(), size as f64 / 1e6);
    for old in removed {
        println!("removed the old backup {}", old.display());
    }
    Ok(ExitCode::SUCCESS)
}

pub fn restore(config: &Config, path: &Path) -> anyhow::Result<ExitCode> {
    let target = config.warehouse_path();
    backup::restore(path, &target)?;
    println!(
        "restored {} as {}; start magpie as usual (the schema is migrated if it is older)",
        path.display(),
        target.display()
    );
    Ok(ExitCode::SUCCESS)
}
