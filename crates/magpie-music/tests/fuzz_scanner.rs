//! Property tests of the JSON element scanner ([`Scanner`]; issue 27, the CI share of fuzzing),
//! with serde_json as the oracle on the same bytes:
//! - an array of arbitrary JSON values (nesting, escapes of every kind, any Unicode, random
//!   whitespace), split by the scanner, gives elements that serde_json reads as exactly those
//!   values, and each element's reported start (line, column) is where its bytes are;
//! - for arbitrary bytes (JSON-like token soup and mutated documents), whenever serde_json
//!   accepts the document as an array the scanner accepts it too, with the same elements;
//! - every position the scanner reports, in an element or an error, is inside the input, and an
//!   "unexpected byte" error points at that byte.
//!
//! The input is fed through a `BufReader` of a random small capacity, so values, strings and
//! escapes straddle the chunks the scanner sees (as they do at the importer's 256 KiB).
//!
//! `PROPTEST_CASES` sets the number of cases (default [`DEFAULT_CASES`]).

mod common;

use std::io::BufReader;

use magpie_music::import::scan::{At, ScanError, Scanner};
use proptest::prelude::*;
use serde_json::{Map, Value};

/// Cases per property when `PROPTEST_CASES` is not set: about 8 seconds for the two in a
/// release build.
const DEFAULT_CASES: u32 = 20_000;

/// What splitting a document found: each element's bytes and reported start.
type Elements = Vec<(Vec<u8>, At)>;

/// Why a split failed: the scanner's error, or this harness's (a byte where `,` or `]` or the
/// end belongs; these are not the scanner's to report).
#[derive(Debug)]
enum SplitError {
    Scan(ScanError),
    NotAnArray,
    Between,
}

impl From<ScanError> for SplitError {
    fn from(e: ScanError) -> Self {
        Self::Scan(e)
    }
}

/// Split a top-level array as the importer walks one, each element read with `read_value`
/// (`records`: with `read_element`, as the importer reads records, which must be objects or
/// arrays). `chunk` is the reader's buffer size.
fn split(bytes: &[u8], chunk: usize, records: bool) -> Result<Elements, SplitError> {
    let mut s = Scanner::new(BufReader::with_capacity(chunk, bytes));
    if s.peek_non_ws()? != Some(b'[') {
        return Err(SplitError::NotAnArray);
    }
    s.bump();
    let mut out = Vec::new();
    if s.peek_non_ws()? == Some(b']') {
        s.bump();
    } else {
        loop {
            let at = if records {
                s.read_element()?
            } else {
                s.read_value()?
            };
            out.push((s.element.clone(), at));
            match s.peek_non_ws()? {
                Some(b',') => s.bump(),
                Some(b']') => {
                    s.bump();
                    break;
                }
                _ => return Err(SplitError::Between),
            }
        }
    }
    if s.peek_non_ws()?.is_some() {
        return Err(SplitError::Between);
    }
    Ok(out)
}

/// The byte offset of a 1-based line and column, if both are inside `bytes` (the column may be
/// one past the end of its line: the end of the input, or a newline's position).
fn offset_of(bytes: &[u8], at: At) -> Option<usize> {
    let mut line_start = 0;
    for _ in 1..at.line {
        line_start += memchr_newline(&bytes[line_start..])? + 1;
    }
    let line_len = memchr_newline(&bytes[line_start..]).unwrap_or(bytes.len() - line_start);
    let column = usize::try_from(at.column).ok()?;
    (at.line >= 1 && column >= 1 && column <= line_len + 1).then_some(line_start + column - 1)
}

fn memchr_newline(bytes: &[u8]) -> Option<usize> {
    bytes.iter().position(|b| *b == b'\n')
}

/// Checks every position the scanner gave: elements start where their bytes are; an error's
/// position is inside the input, and an unexpected byte is the byte found there.
fn check_positions(bytes: &[u8], result: &Result<Elements, SplitError>) {
    match result {
        Ok(elements) => {
            for (element, at) in elements {
                let off = offset_of(bytes, *at)
                    .unwrap_or_else(|| panic!("element start {at:?} is outside the input"));
                assert_eq!(
                    &bytes[off..off + element.len()],
                    &element[..],
                    "the element reported at {at:?} is not the bytes there"
                );
            }
        }
        Err(SplitError::Scan(ScanError::Truncated(at))) => {
            assert!(
                offset_of(bytes, *at).is_some(),
                "truncation reported at {at:?}, outside the input"
            );
        }
        Err(SplitError::Scan(ScanError::Unexpected { at, found, .. })) => {
            let off = offset_of(bytes, *at)
                .unwrap_or_else(|| panic!("unexpected byte at {at:?}, outside the input"));
            assert_eq!(bytes.get(off), Some(found), "the byte at {at:?}");
        }
        Err(SplitError::Scan(ScanError::Io(e))) => panic!("reading memory failed: {e}"),
        Err(SplitError::NotAnArray | SplitError::Between) => {}
    }
}

// ---------------------------------------------------------------------------------------------
// Arbitrary JSON values, written out with arbitrary whitespace and escapes.

/// Strings that stress a byte scanner: quotes, backslashes, brackets, separators, control
/// characters, multi-byte and astral characters.
fn tricky_string() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        prop::collection::vec(
            prop::sample::select(vec![
                '"', '\\', '{', '}', '[', ']', ',', ':', ' ', '\n', '\t', '\r', '\u{0}', '\u{1f}',
                '/', 'a', 'é', '€', '\u{2028}', '\u{feff}', '😀', '𝄞', 'u', '0'
            ]),
            0..12
        )
        .prop_map(|c| c.into_iter().collect()),
    ]
}

fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        // Short, exactly representable fractions: serde_json reads them back exactly.
        (any::<i16>(), 0u32..8).prop_map(|(m, e)| Value::from(f64::from(m) / f64::from(1u32 << e))),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number(),
        tricky_string().prop_map(Value::String),
    ];
    leaf.prop_recursive(6, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((tricky_string(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// A small deterministic generator driving the writer's choices (whitespace, escapes).
struct Choices(u64);

impl Choices {
    fn next(&mut self, n: u64) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }

    fn ws(&mut self, out: &mut Vec<u8>) {
        for _ in 0..self.next(4).saturating_sub(1) {
            out.push(*b" \t\n\r".get(self.next(4) as usize).unwrap());
        }
    }
}

fn write_string(s: &str, c: &mut Choices, out: &mut Vec<u8>) {
    out.push(b'"');
    for ch in s.chars() {
        let must = ch == '"' || ch == '\\' || (ch as u32) < 0x20;
        match (must, c.next(4)) {
            (false, 0 | 1) => {
                let mut buf = [0; 4];
                out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
            }
            (_, 2)
                if matches!(
                    ch,
                    '"' | '\\' | '/' | '\n' | '\t' | '\r' | '\u{8}' | '\u{c}'
                ) =>
            {
                let e = match ch {
                    '"' => "\\\"",
                    '\\' => "\\\\",
                    '/' => "\\/",
                    '\n' => "\\n",
                    '\t' => "\\t",
                    '\r' => "\\r",
                    '\u{8}' => "\\b",
                    _ => "\\f",
                };
                out.extend_from_slice(e.as_bytes());
            }
            _ => {
                let mut units = [0u16; 2];
                for u in ch.encode_utf16(&mut units) {
                    let hex = if c.next(2) == 0 {
                        format!("\\u{u:04x}")
                    } else {
                        format!("\\u{u:04X}")
                    };
                    out.extend_from_slice(hex.as_bytes());
                }
            }
        }
    }
    out.push(b'"');
}

fn write_value(v: &Value, c: &mut Choices, out: &mut Vec<u8>) {
    match v {
        Value::String(s) => write_string(s, c, out),
        Value::Array(items) => write_items(b"[]", items.iter().map(|v| (None, v)), c, out),
        Value::Object(map) => write_items(b"{}", map.iter().map(|(k, v)| (Some(k), v)), c, out),
        other => out.extend_from_slice(other.to_string().as_bytes()),
    }
}

/// An array's or object's items (keyed for an object) between `brackets`, spaced at random.
fn write_items<'v>(
    brackets: &[u8; 2],
    items: impl Iterator<Item = (Option<&'v String>, &'v Value)>,
    c: &mut Choices,
    out: &mut Vec<u8>,
) {
    out.push(brackets[0]);
    for (i, (key, item)) in items.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        c.ws(out);
        if let Some(k) = key {
            write_string(k, c, out);
            c.ws(out);
            out.push(b':');
            c.ws(out);
        }
        write_value(item, c, out);
        c.ws(out);
    }
    c.ws(out);
    out.push(brackets[1]);
}

/// JSON-like token soup: mostly well-formed pieces in any order, so that now and then the
/// bytes are a valid array and often nearly one.
fn token_soup() -> impl Strategy<Value = Vec<u8>> {
    let token = prop::sample::select(vec![
        "[",
        "]",
        "{",
        "}",
        ",",
        ":",
        "\"",
        "\\",
        "\"a\"",
        "\"\\\"\"",
        "\"\\\\\"",
        "\"]\"",
        "\"\\u00e9\"",
        "\"\\ud83d\\ude00\"",
        "1",
        "-0",
        "2.5e-3",
        "true",
        "false",
        "null",
        " ",
        "\n",
        "\t",
        "\r\n",
        "\u{c}",
        "é",
        "\u{0}",
    ]);
    prop::collection::vec(token, 0..40).prop_map(|t| {
        let mut out = b"[".to_vec();
        out.extend(t.concat().bytes());
        out
    })
}

/// A valid array of values, then a few bytes changed: near misses of every kind.
fn mutated_array() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::collection::vec(json_value(), 0..5),
        any::<u64>(),
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..4),
    )
        .prop_map(|(values, seed, edits)| {
            let mut out = Vec::new();
            write_value(&Value::Array(values), &mut Choices(seed | 1), &mut out);
            for (at, byte, how) in edits {
                let i = at.index(out.len() + 1);
                match how {
                    0 => out.insert(i, byte),
                    1 if i < out.len() => {
                        out.remove(i);
                    }
                    _ if i < out.len() => out[i] = byte,
                    _ => {}
                }
            }
            out
        })
}

proptest! {
    #![proptest_config(common::proptest_config(DEFAULT_CASES))]

    /// An array of arbitrary values splits into elements serde_json reads as those values,
    /// each starting where the scanner says; arrays of objects split the same way as records.
    #[test]
    fn arrays_of_any_values_split_into_exactly_those_values(
        values in prop::collection::vec(json_value(), 0..8),
        seed in any::<u64>(),
        chunk in 1usize..40,
    ) {
        let mut bytes = Vec::new();
        let mut c = Choices(seed | 1);
        c.ws(&mut bytes);
        write_value(&Value::Array(values.clone()), &mut c, &mut bytes);
        c.ws(&mut bytes);
        let reference: Vec<Value> = serde_json::from_slice(&bytes)
            .map_err(|e| TestCaseError::fail(format!("the writer made bad JSON: {e}")))?;
        prop_assert_eq!(&reference, &values);
        let result = split(&bytes, chunk, false);
        check_positions(&bytes, &result);
        let elements = result.map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
        let read: Vec<Value> = elements
            .iter()
            .map(|(e, _)| serde_json::from_slice(e).expect("each element is JSON on its own"))
            .collect();
        prop_assert_eq!(read, values.clone());
        if values.iter().all(|v| v.is_object() || v.is_array()) {
            let records = split(&bytes, chunk, true).map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
            prop_assert_eq!(records, elements);
        }
    }

    /// Whatever the bytes, when serde_json reads them as an array the scanner splits them into
    /// the same elements; positions are inside the input either way.
    #[test]
    fn what_serde_json_accepts_the_scanner_splits_the_same(
        bytes in prop_oneof![token_soup(), mutated_array(), any::<Vec<u8>>()],
        chunk in 1usize..40,
    ) {
        let values = split(&bytes, chunk, false);
        check_positions(&bytes, &values);
        let records = split(&bytes, chunk, true);
        check_positions(&bytes, &records);
        if let Ok(reference) = serde_json::from_slice::<Vec<Value>>(&bytes) {
            let elements = values.map_err(|e| TestCaseError::fail(format!(
                "serde_json reads an array of {} but the scanner fails: {e:?}", reference.len()
            )))?;
            let read: Vec<Value> = elements
                .iter()
                .map(|(e, _)| serde_json::from_slice(e).expect("each element is JSON on its own"))
                .collect();
            prop_assert_eq!(&read, &reference);
            if reference.iter().all(|v| v.is_object() || v.is_array()) {
                prop_assert!(records.is_ok(), "records: {:?}", records);
            }
        }
    }
}
