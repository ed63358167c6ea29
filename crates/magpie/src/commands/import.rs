//! `magpie import PATH...`: per-file lines on stdout, a progress bar on a terminal.

use std::io::IsTerminal;
use std::process::ExitCode;

use indicatif::{ProgressBar, ProgressStyle};
use magpie_core::Config;
use magpie_core::host::disk_failure;
use magpie_music::import::{ImportOptions, ImportSummary, Importer, Outcome, Progress};

use crate::cli::ImportArgs;

pub fn run(config: &Config, args: ImportArgs) -> anyhow::Result<ExitCode> {
    let warehouse = super::open_warehouse(config)?;
    let mut options = ImportOptions::from_config(config);
    if let Some(listener) = args.listener {
        options.listener = listener;
    }
    let summary = import_with_progress(&warehouse, options, &args.paths)?;
    warehouse.checkpoint()?;
    println!("{summary}");
    // Files a full or read-only disk refused end the import in an error saying so (see
    // `explain_disk_failure`): the same command imports them once there is room, skipping
    // the files already in.
    if let Some(refused) = summary.files.iter().find_map(|f| match &f.outcome {
        Outcome::Failed(e) if disk_failure(&e.to_string()).is_some() => Some(e),
        _ => None,
    }) {
        anyhow::bail!("{refused}");
    }
    Ok(if summary.all_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Run an import, printing a line per file (and a bar when stderr is a terminal).
pub fn import_with_progress(
    warehouse: &magpie_core::Warehouse,
    options: ImportOptions,
    paths: &[std::path::PathBuf],
) -> anyhow::Result<ImportSummary> {
    let importer = Importer::new(warehouse, options)?;
    let bar = if std::io::stderr().is_terminal() {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template("{spinner} [{bar:30}] {bytes}/{total_bytes} {msg}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        Some(bar)
    } else {
        None
    };
    let summary = importer.import_paths(paths, &mut |event| match event {
        Progress::Planned { bytes, .. } => {
            if let Some(bar) = &bar {
                bar.set_length(bytes);
            }
        }
        Progress::Started { input } => {
            if let Some(bar) = &bar {
                bar.set_message(input.file_name());
            }
        }
        Progress::Finished { report, bytes } => match &bar {
            Some(bar) => {
                bar.println(report.to_string());
                bar.inc(bytes);
            }
            None => println!("{report}"),
        },
    });
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    Ok(summary)
}
