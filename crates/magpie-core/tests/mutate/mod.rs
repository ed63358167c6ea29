//! Text mutations for the property tests of magpie's file parsers (issue 27, the CI share of
//! fuzzing): a seed file (a shipped model, schema.yml, question, dashboard or configuration)
//! cut short, bytes flipped, fragments of the file's language or odd values inserted, lines
//! deleted, repeated, swapped or re-indented. Shared by the `fuzz_*.rs` tests of several
//! crates (`#[path]`): one place for how files are damaged.

#![allow(dead_code)]

use proptest::prelude::*;
use proptest::sample::Index;

/// One change to a text.
#[derive(Debug, Clone)]
pub enum Edit {
    Truncate(Index),
    FlipByte(Index, u8),
    Insert(Index, String),
    DeleteLine(Index),
    DuplicateLine(Index),
    SwapLines(Index, Index),
    Indent(Index, usize),
    Dedent(Index),
}

/// Values no file should hold, in any language.
pub const ODD: &[&str] = &[
    "",
    " ",
    "\t",
    "\n",
    "\r\n",
    "\0",
    "\u{feff}",
    "é",
    "🎵",
    "\u{202e}",
    "\\",
    "\"",
    "'",
    "-1",
    "0",
    "-0",
    "1e400",
    "-1e400",
    "NaN",
    "inf",
    "99999999999999999999999999",
    "18446744073709551616",
    "9223372036854775808",
    "-9223372036854775809",
    "4294967296",
    "65536",
    "256",
    "%41",
    "%ZZ",
    "%",
    "null",
    "~",
    "true",
    "[]",
    "{}",
];

/// One edit, inserting one of `fragments` (the file's own syntax) or of [`ODD`].
pub fn edit(fragments: &'static [&'static str]) -> impl Strategy<Value = Edit> {
    let insert = prop_oneof![
        3 => prop::sample::select(fragments).prop_map(str::to_string),
        2 => prop::sample::select(ODD).prop_map(str::to_string),
        1 => ".{0,6}",
        1 => (prop::sample::select(fragments), 2..40usize).prop_map(|(f, n)| f.repeat(n)),
    ];
    prop_oneof![
        1 => any::<Index>().prop_map(Edit::Truncate),
        2 => (any::<Index>(), 1..=127u8).prop_map(|(i, b)| Edit::FlipByte(i, b)),
        5 => (any::<Index>(), insert).prop_map(|(i, s)| Edit::Insert(i, s)),
        1 => any::<Index>().prop_map(Edit::DeleteLine),
        1 => any::<Index>().prop_map(Edit::DuplicateLine),
        1 => (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Edit::SwapLines(a, b)),
        1 => (any::<Index>(), 1..9usize).prop_map(|(i, n)| Edit::Indent(i, n)),
        1 => any::<Index>().prop_map(Edit::Dedent),
    ]
}

/// One to `max` edits.
pub fn edits(fragments: &'static [&'static str], max: usize) -> impl Strategy<Value = Vec<Edit>> {
    prop::collection::vec(edit(fragments), 1..=max)
}

/// The largest char boundary at or before `at`.
fn boundary(text: &str, mut at: usize) -> usize {
    at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// The byte offset where each line starts, and the text's end.
fn line_starts(text: &str) -> Vec<usize> {
    let mut starts = vec![0];
    starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
    starts
}

/// `text` with `edits` applied in turn.
pub fn apply(text: &str, edits: &[Edit]) -> String {
    let mut text = text.to_string();
    for e in edits {
        text = apply_one(&text, e);
    }
    text
}

fn apply_one(text: &str, e: &Edit) -> String {
    let mut lines: Vec<&str> = text.split_inclusive('\n').collect();
    match e {
        Edit::Truncate(i) => text[..boundary(text, i.index(text.len() + 1))].to_string(),
        Edit::FlipByte(i, b) => {
            let mut bytes = text.as_bytes().to_vec();
            if !bytes.is_empty() {
                let at = i.index(bytes.len());
                bytes[at] ^= b;
            }
            String::from_utf8_lossy(&bytes).into_owned()
        }
        Edit::Insert(i, s) => {
            let at = boundary(text, i.index(text.len() + 1));
            format!("{}{s}{}", &text[..at], &text[at..])
        }
        _ if lines.is_empty() => text.to_string(),
        Edit::DeleteLine(i) => {
            lines.remove(i.index(lines.len()));
            lines.concat()
        }
        Edit::DuplicateLine(i) => {
            let at = i.index(lines.len());
            lines.insert(at, lines[at]);
            lines.concat()
        }
        Edit::SwapLines(a, b) => {
            let n = lines.len();
            lines.swap(a.index(n), b.index(n));
            lines.concat()
        }
        Edit::Indent(i, n) => {
            let at = line_starts(text)[i.index(lines.len())];
            format!("{}{}{}", &text[..at], " ".repeat(*n), &text[at..])
        }
        Edit::Dedent(i) => {
            let at = i.index(lines.len());
            let line = lines[at];
            let trimmed = line.trim_start_matches([' ', '\t']);
            let cut = (line.len() - trimmed.len()).min(2);
            let owned = line[cut..].to_string();
            lines[at] = &owned;
            lines.concat()
        }
    }
}

/// Cases per property: `PROPTEST_CASES`, or `default` (sized for CI).
pub fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
