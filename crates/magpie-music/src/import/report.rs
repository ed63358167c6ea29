//! What an import did, per file and in total, in words a person reads after `magpie import`.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use super::error::ImportError;
use crate::event::{SkipReason, SourceFormat};

/// How one file ended.
#[derive(Debug)]
pub enum Outcome {
    /// Committed as this batch.
    Imported { batch_id: i64 },
    /// The same content was imported before (as this batch); nothing changed.
    AlreadyImported { batch_id: i64 },
    /// Found in a folder or zip but not listening history; passed over.
    Ignored { why: String },
    /// Nothing of the file was kept.
    Failed(ImportError),
}

/// One file's result.
#[derive(Debug)]
pub struct FileReport {
    pub source: String,
    pub format: Option<SourceFormat>,
    pub outcome: Outcome,
    /// Events read from the file (including skipped ones).
    pub events_read: u64,
    /// New listens.
    pub imported: u64,
    /// Events already known (repeats, or the same listen from another source).
    pub duplicates: u64,
    /// Of the duplicates, those from another source, kept in raw and marked as such.
    pub cross_source: u64,
    pub skipped: BTreeMap<SkipReason, u64>,
    pub elapsed: Duration,
}

impl FileReport {
    pub(crate) fn failed(source: String, format: Option<SourceFormat>, error: ImportError) -> Self {
        Self::empty(source, format, Outcome::Failed(error))
    }

    pub(crate) fn ignored(source: String, why: String) -> Self {
        Self::empty(source, None, Outcome::Ignored { why })
    }

    fn empty(source: String, format: Option<SourceFormat>, outcome: Outcome) -> Self {
        Self {
            source,
            format,
            outcome,
            events_read: 0,
            imported: 0,
            duplicates: 0,
            cross_source: 0,
            skipped: BTreeMap::new(),
            elapsed: Duration::ZERO,
        }
    }

    pub fn is_ok(&self) -> bool {
        !matches!(self.outcome, Outcome::Failed(_))
    }

    pub fn skipped_total(&self) -> u64 {
        self.skipped.values().sum()
    }
}

impl fmt::Display for FileReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let skipped = if self.skipped.is_empty() {
            "0".to_string()
        } else {
            let parts: Vec<String> = self
                .skipped
                .iter()
                .map(|(r, n)| format!("{} {n}", r.as_str()))
                .collect();
            format!("{} ({})", self.skipped_total(), parts.join(", "))
        };
        let format = self.format.map_or("-", |f| f.as_str());
        match &self.outcome {
            Outcome::Imported { .. } => write!(
                f,
                "imported  {}: {format}, {} read, {} imported, {} duplicates, {} skipped [{:.2}s]",
                self.source,
                self.events_read,
                self.imported,
                self.duplicates,
                skipped,
                self.elapsed.as_secs_f64()
            ),
            Outcome::AlreadyImported { batch_id } => write!(
                f,
                "unchanged {}: {format}, already imported as batch {batch_id} ({} read, 0 imported, {} duplicates, {} skipped)",
                self.source, self.events_read, self.duplicates, skipped
            ),
            Outcome::Ignored { why } => write!(
                f,
                "ignored   {}: not listening history ({why})",
                self.source
            ),
            Outcome::Failed(e) => write!(f, "FAILED    {e}; nothing of this file was imported"),
        }
    }
}

/// All files of one `import` call.
#[derive(Debug, Default)]
pub struct ImportSummary {
    pub files: Vec<FileReport>,
}

impl ImportSummary {
    /// True when no file failed (the exit code of `magpie import`).
    pub fn all_ok(&self) -> bool {
        self.files.iter().all(FileReport::is_ok)
    }

    pub fn imported(&self) -> u64 {
        self.files.iter().map(|f| f.imported).sum()
    }

    pub fn duplicates(&self) -> u64 {
        self.files.iter().map(|f| f.duplicates).sum()
    }

    pub fn events_read(&self) -> u64 {
        self.files.iter().map(|f| f.events_read).sum()
    }

    pub fn skipped(&self) -> u64 {
        self.files.iter().map(FileReport::skipped_total).sum()
    }

    pub fn failed(&self) -> usize {
        self.files.iter().filter(|f| !f.is_ok()).count()
    }
}

impl fmt::Display for ImportSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let considered = self
            .files
            .iter()
            .filter(|r| !matches!(r.outcome, Outcome::Ignored { .. }))
            .count();
        write!(
            f,
            "{considered} file(s): {} events read, {} imported, {} duplicates, {} skipped, {} failed",
            self.events_read(),
            self.imported(),
            self.duplicates(),
            self.skipped(),
            self.failed()
        )
    }
}
