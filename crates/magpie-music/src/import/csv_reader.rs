//! The CSV reading loop's start: opens the CSV, reads its first row and hands the file to the
//! format whose header that is: Apple Music's Play Activity ([`super::apple_music`]) or a
//! Last.fm scrobble export ([`super::lastfm_csv`], with a header or without one). Also the
//! helpers both use.

use std::io::Read;

use super::error::{ParseFailure, Position};
use super::json::Sink;
use super::{apple_music, lastfm_csv};
use crate::event::SourceFormat;

/// Read a CSV export, sending every event to `sink`. Returns the layout found; a failure comes
/// with the layout it was read as.
pub fn read(
    reader: impl Read,
    sink: &mut Sink<'_>,
) -> Result<SourceFormat, (ParseFailure, SourceFormat)> {
    let mut csv = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(reader);
    let mut first = csv::StringRecord::new();
    let lastfm = |f| (f, SourceFormat::LastFmCsv);
    let more = csv
        .read_record(&mut first)
        .map_err(|e| lastfm(csv_failure(&e)))?;
    if !more {
        return Err(lastfm(ParseFailure::new(
            Position::default(),
            "the CSV has no rows",
        )));
    }
    if apple_music::is_header(&first) {
        apple_music::read(&mut csv, &first, sink).map_err(|f| (f, SourceFormat::AppleMusicCsv))?;
        Ok(SourceFormat::AppleMusicCsv)
    } else {
        lastfm_csv::read(&mut csv, first, sink).map_err(lastfm)?;
        Ok(SourceFormat::LastFmCsv)
    }
}

/// How a CSV layout is named in "not a valid … file" messages.
pub fn label(format: SourceFormat) -> &'static str {
    match format {
        SourceFormat::AppleMusicCsv => "Apple Music Play Activity CSV",
        _ => "Last.fm CSV",
    }
}

/// The trimmed, non-empty text of column `i`.
pub(super) fn cell(record: &csv::StringRecord, i: Option<usize>) -> Option<String> {
    i.and_then(|i| record.get(i))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

pub(super) fn csv_failure(e: &csv::Error) -> ParseFailure {
    let pos = e.position();
    ParseFailure::new(
        Position {
            line: pos.map(|p| p.line()),
            byte: pos.map(|p| p.byte()),
            record: pos.map(|p| p.record() + 1),
            column: None,
        },
        match e.kind() {
            csv::ErrorKind::Utf8 { .. } => {
                "the text is not UTF-8 (is this a binary file?)".to_string()
            }
            _ => e.to_string(),
        },
    )
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::event::Parsed;

    /// Every event of a CSV export held in memory, and its layout.
    pub(in crate::import) fn parse(
        text: &str,
    ) -> Result<(SourceFormat, Vec<Parsed>), ParseFailure> {
        let mut out = Vec::new();
        let format = read(text.as_bytes(), &mut |p| {
            out.push(p);
            Ok(())
        })
        .map_err(|(f, _)| f)?;
        Ok((format, out))
    }
}
