//! Import errors: each names the file, where in it (record, line, column or byte) and what was
//! expected, in one paragraph a person can act on.

use std::fmt;

/// Where in a file something went wrong.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Position {
    /// 1-based record number (JSON array element, CSV row).
    pub record: Option<u64>,
    pub line: Option<u64>,
    pub column: Option<u64>,
    pub byte: Option<u64>,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(r) = self.record {
            parts.push(format!("record {r}"));
        }
        if let Some(l) = self.line {
            parts.push(format!("line {l}"));
        }
        if let Some(c) = self.column {
            parts.push(format!("column {c}"));
        }
        if let Some(b) = self.byte {
            parts.push(format!("byte {b}"));
        }
        if parts.is_empty() {
            f.write_str("start of file")
        } else {
            f.write_str(&parts.join(", "))
        }
    }
}

/// Why one file could not be imported. Nothing of that file is kept.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{file}: cannot read it: {source}")]
    Unreadable {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{file}: the file is empty; expected a Spotify streaming-history JSON file, a Last.fm CSV/JSON export, ListenBrainz listens, a Maloja export or an Apple Music Play Activity CSV"
    )]
    Empty { file: String },
    #[error("{file}: unknown format at {position}: {detail}")]
    UnknownFormat {
        file: String,
        position: Position,
        detail: String,
    },
    #[error("{file}: not a valid {format} file at {position}: {detail}")]
    Malformed {
        file: String,
        format: &'static str,
        position: Position,
        detail: String,
    },
    #[error(
        "{file}: the zip archive holds no listening history (looked for Streaming_History_*.json, endsong_*.json, StreamingHistory*.json, listens/*.jsonl, *.json, *.csv)"
    )]
    EmptyArchive { file: String },
    #[error("{file}: cannot open the zip archive: {detail}")]
    BadArchive { file: String, detail: String },
    #[error("{file}: the import was stopped before this file was finished; nothing of it was kept")]
    Stopped { file: String },
    #[error("{file}: the warehouse refused the import ({source}); nothing of this file was kept")]
    Warehouse {
        file: String,
        #[source]
        source: duckdb::Error,
    },
}

impl ImportError {
    /// The file this error is about.
    pub fn file(&self) -> &str {
        match self {
            Self::Unreadable { file, .. }
            | Self::Empty { file }
            | Self::UnknownFormat { file, .. }
            | Self::Malformed { file, .. }
            | Self::EmptyArchive { file }
            | Self::BadArchive { file, .. }
            | Self::Stopped { file }
            | Self::Warehouse { file, .. } => file,
        }
    }
}

/// A parse failure inside a reader, before the file name is attached.
#[derive(Debug, Clone)]
pub struct ParseFailure {
    pub position: Position,
    pub detail: String,
    /// The content is not a layout magpie knows (as opposed to a known layout, broken).
    pub unknown_format: bool,
}

impl ParseFailure {
    /// A failure at `position`. The detail is made one line (see [`one_line`]): it often quotes a
    /// value from the file, which may hold line breaks or be megabytes long.
    pub fn new(position: Position, detail: impl Into<String>) -> Self {
        Self {
            position,
            detail: one_line(detail.into()),
            unknown_format: false,
        }
    }

    /// The same failure, marked as "not a layout magpie knows".
    pub fn unknown(mut self) -> Self {
        self.unknown_format = true;
        self
    }

    pub(crate) fn into_error(self, file: &str, format: &'static str) -> ImportError {
        if self.unknown_format {
            ImportError::UnknownFormat {
                file: file.to_string(),
                position: self.position,
                detail: self.detail,
            }
        } else {
            ImportError::Malformed {
                file: file.to_string(),
                format,
                position: self.position,
                detail: self.detail,
            }
        }
    }
}

/// The longest detail kept whole, in characters.
const MAX_DETAIL_CHARS: usize = 600;

/// `detail` as one line of reasonable length: control characters (line breaks inside a quoted
/// CSV cell or JSON string) and Unicode line and paragraph separators written as escapes, and
/// a detail longer than [`MAX_DETAIL_CHARS`] cut in the middle (a quoted value runs on; what
/// was expected comes last).
fn one_line(detail: String) -> String {
    let breaks = |c: char| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}');
    let detail = if detail.contains(breaks) {
        detail
            .chars()
            .map(|c| {
                if breaks(c) {
                    c.escape_default().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect()
    } else {
        detail
    };
    let chars = detail.chars().count();
    if chars <= MAX_DETAIL_CHARS {
        return detail;
    }
    let head: String = detail.chars().take(MAX_DETAIL_CHARS * 2 / 3).collect();
    let tail: String = detail.chars().skip(chars - MAX_DETAIL_CHARS / 3).collect();
    format!("{head} […] {tail}")
}

/// Path of a file for messages: a plain path, or `archive.zip!member` inside a zip.
pub(crate) fn display_path(path: &std::path::Path, member: Option<&str>) -> String {
    match member {
        Some(m) => format!("{}!{m}", path.display()),
        None => path.display().to_string(),
    }
}
