//! The CSV reading loop's start: opens the CSV, reads its first row and hands the file to the
//! format whose header that is: Apple Music's Play Activity ([`super::apple_music`]) or a
//! Last.fm scrobble export ([`super::lastfm_csv`], with a header or without one). Also the
//! helpers both use.

use std::io::{BufRead, Read};

use super::error::{ParseFailure, Position};
use super::json::Sink;
use super::{apple_music, lastfm_csv};
use crate::event::SourceFormat;

/// Read a CSV export, sending every event to `sink`. Returns the layout found; a failure comes
/// with the layout it was read as.
///
/// Rows end at `\n` (a CRLF row's `\r` ends its last cell, and every cell is trimmed), unless the
/// file's first block has no `\n` but a `\r` (old Mac line ends). With the csv crate's CRLF
/// terminator, the `\n` of a CRLF pair is only read with the next row, after that row's position
/// was taken, so every line number after the first was one short.
pub fn read(
    mut reader: impl BufRead,
    sink: &mut Sink<'_>,
) -> Result<SourceFormat, (ParseFailure, SourceFormat)> {
    // An I/O error here is met again, and reported, by the first read.
    let cr_only = reader
        .fill_buf()
        .is_ok_and(|b| !b.contains(&b'\n') && b.contains(&b'\r'));
    let terminator = if cr_only {
        csv::Terminator::CRLF
    } else {
        csv::Terminator::Any(b'\n')
    };
    let mut csv = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .terminator(terminator)
        .from_reader(Source::new(reader));
    let mut first = csv::StringRecord::new();
    let lastfm = |f| (f, SourceFormat::LastFmCsv);
    // The first row that is not blank (the file's leading blank lines are read here, so that
    // the line numbers count them).
    loop {
        let more = csv
            .read_record(&mut first)
            .map_err(|e| lastfm(csv_failure(&e)))?;
        if !more {
            return Err(lastfm(ParseFailure::new(
                Position::default(),
                "the CSV has no rows",
            )));
        }
        if !(first.len() == 1 && first[0].trim().is_empty()) {
            break;
        }
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

/// The file as the csv reader reads it: with a line break added at its end, so that every row
/// ends with one (see [`line_of`]), and the bytes handed out counted.
pub(super) struct Source<R> {
    inner: std::io::Chain<R, &'static [u8]>,
    read: u64,
    /// A read found nothing more.
    done: bool,
}

impl<R: Read> Source<R> {
    fn new(inner: R) -> Self {
        Self {
            inner: inner.chain(&b"\n"[..]),
            read: 0,
            done: false,
        }
    }
}

impl<R: Read> Read for Source<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        self.done |= n == 0 && !buf.is_empty();
        Ok(n)
    }
}

/// The line `record` (just read) starts on. The csv crate takes a row's position before the
/// empty lines it skips ahead of the row, so that undercounts them; the reader's position after
/// the row does not: the row starts that many lines back, less the line breaks inside its
/// quoted cells and the one ending it. Every row has one ([`Source`] adds a final line break),
/// except a row whose quote is left open at the end of the file: its last cell took that break.
pub(super) fn line_of<R: Read>(csv: &csv::Reader<Source<R>>, record: &csv::StringRecord) -> u64 {
    let inside: usize = record
        .iter()
        .map(|cell| memchr::memchr_iter(b'\n', cell.as_bytes()).count())
        .sum();
    let source = csv.get_ref();
    let open_at_end = source.done && csv.position().byte() == source.read;
    csv.position()
        .line()
        .saturating_sub(inside as u64 + u64::from(!open_at_end))
        .max(1)
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
