//! `magpie import`: listening history from files into the warehouse.
//!
//! Each path may be a file, a folder (walked) or a zip. The format is read from the content
//! (see [`input`] for what is looked at in folders and zips). Every file is parsed as a stream,
//! staged, deduplicated and committed in one transaction ([`store`]): all of it or none of it.
//! A failing file is reported with its position and does not stop the others.

pub mod error;
pub mod input;
mod json;
mod lastfm_csv;
mod report;
mod scan;
mod stage;
mod store;
pub mod time;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::time::Instant;

use duckdb::Connection;
use magpie_core::Warehouse;

pub use error::{ImportError, Position};
pub use input::Input;
pub use json::parse_recently_played;
pub use report::{FileReport, ImportSummary, Outcome};

use crate::event::{Parsed, SkipReason, SourceFormat};

/// How to import.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// Whose listening this is.
    pub listener: String,
    /// See `import.dedupe_window_secs` in the configuration.
    pub dedupe_window_secs: u32,
}

impl Default for ImportOptions {
    fn default() -> Self {
        Self {
            listener: "default".into(),
            dedupe_window_secs: 60,
        }
    }
}

impl ImportOptions {
    pub fn from_config(config: &magpie_core::Config) -> Self {
        Self {
            listener: config.default_listener.clone(),
            dedupe_window_secs: config.import.dedupe_window_secs,
        }
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
        for input in &inputs {
            progress(Progress::Started { input });
            let report = self.import_one(input);
            progress(Progress::Finished {
                report: &report,
                bytes: input.size,
            });
            summary.files.push(report);
        }
        summary
    }

    /// Import one file in one transaction.
    pub fn import_one(&self, input: &Input) -> FileReport {
        let started = Instant::now();
        let started_at_us = chrono::Utc::now().timestamp_micros();
        let display = input.display();
        let outcome = input::with_reader(input, |reader| {
            self.read_and_store(input, reader, started_at_us)
        })
        .map_err(FileFailure::from)
        .and_then(|r| r);
        let mut report = match outcome {
            Ok(report) => report,
            Err(FileFailure { error, format }) => {
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

    fn read_and_store(
        &self,
        input: &Input,
        reader: &mut input::HashingReader<&mut dyn Read>,
        started_at_us: i64,
    ) -> Result<FileReport, FileFailure> {
        let file = input.display();
        let mut buffered = BufReader::with_capacity(256 * 1024, &mut *reader);
        let sniffed = sniff(&mut buffered, &file)?;

        let parse_started = Instant::now();
        let mut stager =
            stage::Stager::new(&self.conn).map_err(|e| warehouse_failure(&file, None, e))?;
        let mut events_read = 0u64;
        let mut skipped: BTreeMap<SkipReason, u64> = BTreeMap::new();
        let mut sink = |parsed: Parsed| -> Result<(), String> {
            events_read += 1;
            match parsed {
                Ok(event) => {
                    if !stager
                        .push(&event)
                        .map_err(|e| format!("the warehouse refused a row: {e}"))?
                    {
                        *skipped.entry(SkipReason::NoMetadata).or_default() += 1;
                    }
                }
                Err(reason) => *skipped.entry(reason).or_default() += 1,
            }
            Ok(())
        };
        let format = match sniffed {
            Sniffed::Json => {
                json::read(&mut buffered, input.is_video(), &mut sink).map_err(|f| {
                    FileFailure::new(f.into_error(&file, "JSON listening history"), None)
                })?
            }
            Sniffed::Csv => {
                lastfm_csv::read(&mut buffered, &mut sink).map_err(|f| {
                    FileFailure::new(
                        f.into_error(&file, "Last.fm CSV"),
                        Some(SourceFormat::LastFmCsv),
                    )
                })?;
                SourceFormat::LastFmCsv
            }
        };
        let staged = stager
            .finish()
            .map_err(|e| warehouse_failure(&file, Some(format), e))?;
        let parsed_in = parse_started.elapsed();
        drop(buffered);
        let (sha256, bytes) = reader.finish().map_err(|source| {
            FileFailure::new(
                ImportError::Unreadable {
                    file: file.clone(),
                    source,
                },
                Some(format),
            )
        })?;

        let skipped_total: u64 = skipped.values().sum();
        if let Some(batch) = store::already_imported(&self.conn, self.listener_id, &sha256)
            .map_err(|e| warehouse_failure(&file, Some(format), e))?
        {
            let _ = self.conn.execute_batch("DELETE FROM import_stage");
            return Ok(FileReport {
                source: file,
                format: Some(format),
                outcome: Outcome::AlreadyImported { batch_id: batch },
                events_read,
                imported: 0,
                duplicates: staged,
                cross_source: 0,
                skipped,
                elapsed: Default::default(),
            });
        }
        let reasons = serde_json::to_string(
            &skipped
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
            content_sha256: &sha256,
            byte_size: bytes,
            events_read,
            skipped: skipped_total,
            skipped_reasons_json: &reasons,
            started_at_us,
            dedupe_window_secs: self.options.dedupe_window_secs,
        };
        let commit_started = Instant::now();
        let (batch_id, counts) = store::commit(&self.conn, staged, &info)
            .map_err(|e| warehouse_failure(&file, Some(format), e))?;
        tracing::debug!(
            file = %file,
            parse_and_stage_ms = parsed_in.as_millis() as u64,
            commit_ms = commit_started.elapsed().as_millis() as u64,
            "file committed"
        );
        Ok(FileReport {
            source: file,
            format: Some(format),
            outcome: Outcome::Imported { batch_id },
            events_read,
            imported: counts.imported,
            duplicates: counts.duplicates,
            cross_source: counts.cross_source,
            skipped,
            elapsed: Default::default(),
        })
    }
}

/// A failed file, with the format when it was known.
struct FileFailure {
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

enum Sniffed {
    Json,
    Csv,
}

/// Look at the first bytes: JSON (`[` or `{`) or text for the CSV reader; refuse empty and
/// binary files. Leading whitespace and a UTF-8 byte-order mark are consumed.
fn sniff(reader: &mut impl BufRead, file: &str) -> Result<Sniffed, ImportError> {
    let unreadable = |source| ImportError::Unreadable {
        file: file.to_string(),
        source,
    };
    let mut offset = 0u64;
    loop {
        let buf = reader.fill_buf().map_err(unreadable)?;
        if buf.is_empty() {
            return Err(ImportError::Empty {
                file: file.to_string(),
            });
        }
        if offset == 0 && buf.starts_with(b"\xEF\xBB\xBF") {
            reader.consume(3);
            offset += 3;
            continue;
        }
        let skip = buf.iter().take_while(|b| b.is_ascii_whitespace()).count();
        if skip == buf.len() {
            reader.consume(skip);
            offset += skip as u64;
            continue;
        }
        reader.consume(skip);
        offset += skip as u64;
        let buf = reader.fill_buf().map_err(unreadable)?;
        return match buf[0] {
            b'[' | b'{' => Ok(Sniffed::Json),
            _ if buf.iter().take(4096).any(|b| *b == 0) || buf.starts_with(b"PK\x03\x04") => {
                Err(ImportError::UnknownFormat {
                    file: file.to_string(),
                    position: Position {
                        byte: Some(offset),
                        ..Default::default()
                    },
                    detail: "binary data; expected a Spotify streaming-history JSON file, a Spotify zip, or a Last.fm CSV/JSON export".into(),
                })
            }
            _ => Ok(Sniffed::Csv),
        };
    }
}
