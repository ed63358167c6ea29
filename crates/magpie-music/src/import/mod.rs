//! `magpie import`: listening history from files into the warehouse.
//!
//! Each path may be a file, a folder (walked) or a zip. The format is read from the content
//! (see [`input`] for what is looked at in folders and zips). Every file is parsed as a stream,
//! staged, deduplicated and committed in one transaction ([`store`]): all of it or none of it.
//! A failing file is reported with its position and does not stop the others.

mod apple_music;
mod csv_reader;
pub mod error;
pub mod input;
mod json;
mod lastfm_csv;
mod lastfm_json;
mod listenbrainz;
mod maloja;
mod parse;
mod report;
pub mod scan;
mod spotify_api;
mod spotify_basic;
mod spotify_extended;
pub(crate) mod stage;
pub(crate) mod store;
pub mod time;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::mpsc::Receiver;
use std::time::Instant;

use duckdb::Connection;
use magpie_core::Warehouse;

pub use error::{ImportError, Position};
pub use input::Input;
pub use parse::{ParsedFile, parse_bytes};
pub use report::{FileReport, ImportSummary, Outcome};
pub use spotify_api::parse_recently_played;

use crate::event::SourceFormat;

/// How to import.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// Whose listening this is.
    pub listener: String,
    /// See `import.dedupe_window_secs` in the configuration.
    pub dedupe_window_secs: u32,
    /// Rows per batch handed to DuckDB (`import.batch_rows`, capped by the memory budget).
    pub batch_rows: usize,
}

impl Default for ImportOptions {
    fn default() -> Self {
        Self {
            listener: "default".into(),
            dedupe_window_secs: 60,
            batch_rows: stage::BATCH_ROWS,
        }
    }
}

impl ImportOptions {
    pub fn from_config(config: &magpie_core::Config) -> Self {
        Self {
            listener: config.default_listener.clone(),
            dedupe_window_secs: config.import.dedupe_window_secs,
            batch_rows: batch_rows(config),
        }
    }
}

/// `import.batch_rows`, no more than the memory budget allows: a staged row with its Arrow
/// buffers takes about 1 KB, and a batch may use a twentieth of the budget (8,000 rows at the
/// default 160 MB, 3,200 at the 64 MB minimum).
fn batch_rows(config: &magpie_core::Config) -> usize {
    let by_budget = (config.memory_budget.as_u64() / 20 / 1_000) as usize;
    config.import.batch_rows.min(by_budget.max(256))
}

#[cfg(test)]
mod tests {
    use super::*;
    use magpie_core::Config;

    #[test]
    fn the_batch_follows_the_setting_and_the_budget() {
        let mut config = Config::default();
        assert_eq!(batch_rows(&config), 8_000, "the default budget caps 8,192");
        config.memory_budget = bytesize::ByteSize::mb(64);
        assert_eq!(batch_rows(&config), 3_200);
        config.memory_budget = bytesize::ByteSize::gb(2);
        assert_eq!(
            batch_rows(&config),
            8_192,
            "the setting when the budget allows it"
        );
        config.import.batch_rows = 500;
        assert_eq!(batch_rows(&config), 500);
        assert_eq!(ImportOptions::from_config(&config).batch_rows, 500);
    }
}

/// What the importer tells its caller as it goes.
#[derive(Debug)]
pub enum Progress<'a> {
    /// The files found, and their total size in bytes.
    Planned { files: usize, bytes: u64 },
    /// A file is about to be read.
    Started { input: &'a Input },
    /// A file is done (imported, skipped or failed).
    Finished { report: &'a FileReport, bytes: u64 },
}

/// Imports files for one listener into one warehouse.
pub struct Importer<'w> {
    conn: Connection,
    listener_id: i32,
    options: ImportOptions,
    _warehouse: &'w Warehouse,
}

impl<'w> Importer<'w> {
    pub fn new(
        warehouse: &'w Warehouse,
        options: ImportOptions,
    ) -> Result<Self, magpie_core::WarehouseError> {
        let listener_id = warehouse.listener_id(&options.listener)?;
        let conn = warehouse.try_clone()?;
        stage::prepare(&conn).map_err(|source| magpie_core::WarehouseError::DuckDb {
            path: warehouse.path().to_path_buf(),
            source,
        })?;
        Ok(Self {
            conn,
            listener_id,
            options,
            _warehouse: warehouse,
        })
    }

    /// Import every file under `paths`. Never stops at a bad file: each gets its report.
    pub fn import_paths(
        &self,
        paths: &[PathBuf],
        progress: &mut dyn FnMut(Progress<'_>),
    ) -> ImportSummary {
        let (inputs, expand_errors) = input::expand(paths);
        let mut summary = ImportSummary::default();
        for error in expand_errors {
            let file = error.file().to_string();
            let name = std::path::Path::new(&file)
                .file_name()
                .map_or_else(|| file.clone(), |n| n.to_string_lossy().into_owned());
            let now = chrono::Utc::now().timestamp_micros();
            let _ = store::record_failure(
                &self.conn,
                self.listener_id,
                &file,
                &name,
                None,
                &error.to_string(),
                now,
            );
            summary.files.push(FileReport::failed(file, None, error));
        }
        progress(Progress::Planned {
            files: inputs.len(),
            bytes: inputs.iter().map(|i| i.size).sum(),
        });
        // Parse on a second thread while this one (which owns the connection) commits.
        let batch_rows = self.options.batch_rows;
        std::thread::scope(|scope| {
            let (tx, rx) = std::sync::mpsc::sync_channel(4);
            let to_parse = &inputs;
            scope.spawn(move || {
                for input in to_parse {
                    if !parse::parse_input(input, batch_rows, &tx) {
                        break;
                    }
                }
            });
            for input in &inputs {
                progress(Progress::Started { input });
                let report = self.receive_file(input, &rx);
                progress(Progress::Finished {
                    report: &report,
                    bytes: input.size,
                });
                summary.files.push(report);
            }
        });
        summary
    }

    /// Take one file's messages from the parser and commit it (or record why not).
    fn receive_file(&self, input: &Input, rx: &Receiver<parse::Msg>) -> FileReport {
        let started = Instant::now();
        let started_at_us = chrono::Utc::now().timestamp_micros();
        let display = input.display();
        let mut writer =
            stage::StageWriter::new(&self.conn).map_err(|e| warehouse_failure(&display, None, e));
        let parsed = loop {
            match rx.recv() {
                Ok(parse::Msg::Begin) => {}
                Ok(parse::Msg::Batch(batch)) => {
                    let appended = writer.as_mut().map(|w| w.append(batch));
                    if let Ok(Err(e)) = appended {
                        writer = Err(warehouse_failure(&display, None, e));
                    }
                }
                Ok(parse::Msg::End(result)) => break result,
                Err(_) => {
                    break Err(FileFailure::from(ImportError::Stopped {
                        file: display.clone(),
                    }));
                }
            }
        };
        let staged =
            writer.and_then(|w| w.finish().map_err(|e| warehouse_failure(&display, None, e)));
        let outcome = parsed
            .and_then(|p| staged.map(|()| p))
            .and_then(|p| self.commit_file(input, p, started_at_us));
        let mut report = match outcome {
            Ok(report) => report,
            Err(FileFailure { error, format }) => {
                let _ = self.conn.execute_batch("DELETE FROM import_stage");
                if input.discovered
                    && !input::is_history_name(&input.file_name())
                    && matches!(
                        error,
                        ImportError::UnknownFormat { .. } | ImportError::Empty { .. }
                    )
                {
                    FileReport::ignored(display, error.to_string())
                } else {
                    let _ = store::record_failure(
                        &self.conn,
                        self.listener_id,
                        &display,
                        &input.file_name(),
                        format,
                        &error.to_string(),
                        started_at_us,
                    );
                    FileReport::failed(display, format, error)
                }
            }
        };
        report.elapsed = started.elapsed();
        report
    }

    /// Commit a fully staged file, unless the same content was imported before.
    fn commit_file(
        &self,
        input: &Input,
        parsed: parse::ParsedFile,
        started_at_us: i64,
    ) -> Result<FileReport, FileFailure> {
        let file = input.display();
        let format = parsed.format;
        let fail = |e| warehouse_failure(&file, Some(format), e);
        let skipped_total: u64 = parsed.skipped.values().sum();
        if let Some(batch) =
            store::already_imported(&self.conn, self.listener_id, &parsed.sha256).map_err(fail)?
        {
            self.conn
                .execute_batch("DELETE FROM import_stage")
                .map_err(fail)?;
            return Ok(FileReport {
                source: file.clone(),
                format: Some(format),
                outcome: Outcome::AlreadyImported { batch_id: batch },
                events_read: parsed.events_read,
                imported: 0,
                duplicates: parsed.staged,
                cross_source: 0,
                skipped: parsed.skipped,
                elapsed: Default::default(),
            });
        }
        let reasons = serde_json::to_string(
            &parsed
                .skipped
                .iter()
                .map(|(k, v)| (k.as_str(), *v))
                .collect::<BTreeMap<_, _>>(),
        )
        .unwrap_or_else(|_| "{}".into());
        let info = store::BatchInfo {
            listener_id: self.listener_id,
            format,
            source_path: &file,
            file_name: &input.file_name(),
            content_sha256: &parsed.sha256,
            byte_size: parsed.bytes,
            events_read: parsed.events_read,
            skipped: skipped_total,
            skipped_reasons_json: &reasons,
            started_at_us,
            dedupe_window_secs: self.options.dedupe_window_secs,
        };
        let commit_started = Instant::now();
        let (batch_id, counts) = store::commit(&self.conn, parsed.staged, &info).map_err(fail)?;
        tracing::debug!(
            file = %file,
            parse_ms = parsed.elapsed.as_millis() as u64,
            commit_ms = commit_started.elapsed().as_millis() as u64,
            "file committed"
        );
        Ok(FileReport {
            source: file.clone(),
            format: Some(format),
            outcome: Outcome::Imported { batch_id },
            events_read: parsed.events_read,
            imported: counts.imported,
            duplicates: counts.duplicates,
            cross_source: counts.cross_source,
            skipped: parsed.skipped,
            elapsed: Default::default(),
        })
    }
}

/// A failed file, with the format when it was known.
pub(crate) struct FileFailure {
    error: ImportError,
    format: Option<SourceFormat>,
}

impl FileFailure {
    fn new(error: ImportError, format: Option<SourceFormat>) -> Self {
        Self { error, format }
    }
}

impl From<ImportError> for FileFailure {
    fn from(error: ImportError) -> Self {
        Self {
            error,
            format: None,
        }
    }
}

fn warehouse_failure(
    file: &str,
    format: Option<SourceFormat>,
    source: duckdb::Error,
) -> FileFailure {
    FileFailure::new(
        ImportError::Warehouse {
            file: file.to_string(),
            source,
        },
        format,
    )
}
