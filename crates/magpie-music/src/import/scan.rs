//! Splits a JSON document's top level into elements without parsing them: a byte scanner that
//! follows strings, escapes and nesting, so each array element can be handed whole to
//! `serde_json::from_slice` (several times faster than parsing from a reader) while memory
//! holds one element at a time. It tracks lines and columns for error messages.
//!
//! It can also walk an object's fields one by one ([`Scanner::read_value`] for keys and values,
//! with [`Scanner::start_capture`] keeping the exact bytes walked), so a large array inside an
//! object (Maloja's `scrobbles`) streams like a top-level one, and read JSON lines
//! ([`Scanner::read_line`]).

use std::io::{self, BufRead};

/// Where the scanner is: 1-based line and column of the next byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct At {
    pub line: u64,
    pub column: u64,
}

/// Why scanning stopped.
#[derive(Debug)]
pub enum ScanError {
    Io(io::Error),
    /// The input ended inside a value.
    Truncated(At),
    /// A byte that cannot stand here.
    Unexpected {
        at: At,
        found: u8,
        expected: &'static str,
    },
}

fn advance(at: &mut At, bytes: &[u8]) {
    match memchr::memrchr(b'\n', bytes) {
        Some(last) => {
            at.line += memchr::memchr_iter(b'\n', bytes).count() as u64;
            at.column = (bytes.len() - last) as u64;
        }
        None => at.column += bytes.len() as u64,
    }
}

pub struct Scanner<R> {
    reader: R,
    /// The last element read.
    pub element: Vec<u8>,
    at: At,
    /// While capturing, every byte consumed is kept here too.
    capture: Option<Vec<u8>>,
}

impl<R: BufRead> Scanner<R> {
    pub fn new(reader: R) -> Self {
        Self {
            reader,
            element: Vec::with_capacity(4096),
            at: At { line: 1, column: 1 },
            capture: None,
        }
    }

    /// Keep every byte consumed from now on (see [`Self::take_capture`]).
    pub fn start_capture(&mut self) {
        self.capture = Some(Vec::new());
    }

    /// Stop capturing; the bytes consumed since [`Self::start_capture`].
    pub fn take_capture(&mut self) -> Vec<u8> {
        self.capture.take().unwrap_or_default()
    }

    /// Consume `n` bytes of the current chunk (`chunk` is that chunk's first `n` bytes).
    fn consumed(&mut self, n: usize) {
        if let Ok(chunk) = self.reader.fill_buf() {
            let n = n.min(chunk.len());
            advance(&mut self.at, &chunk[..n]);
            if let Some(capture) = &mut self.capture {
                capture.extend_from_slice(&chunk[..n]);
            }
            self.reader.consume(n);
        }
    }

    pub fn at(&self) -> At {
        self.at
    }

    /// Skip whitespace; the next byte, not consumed (`None` at the end).
    pub fn peek_non_ws(&mut self) -> Result<Option<u8>, ScanError> {
        loop {
            let chunk = self.reader.fill_buf().map_err(ScanError::Io)?;
            if chunk.is_empty() {
                return Ok(None);
            }
            let ws = chunk.iter().take_while(|b| b.is_ascii_whitespace()).count();
            let next = chunk.get(ws).copied();
            self.consumed(ws);
            if next.is_some() {
                return Ok(next);
            }
        }
    }

    /// Consume one byte (after `peek_non_ws` returned it).
    pub fn bump(&mut self) {
        self.consumed(1);
    }

    /// Read one value of any kind (object, array, string, number, `true`, `false`, `null`) into
    /// `element`; its start.
    pub fn read_value(&mut self) -> Result<At, ScanError> {
        match self.peek_non_ws()? {
            Some(b'{' | b'[') => self.read_element(),
            Some(b'"') => self.read_while(true),
            Some(_) => self.read_while(false),
            None => Err(ScanError::Truncated(self.at)),
        }
    }

    /// A string (`quoted`, from its opening quote to its closing one) or a bare scalar (up to
    /// the next delimiter) into `element`.
    fn read_while(&mut self, quoted: bool) -> Result<At, ScanError> {
        let start = self.at;
        self.element.clear();
        let (mut opened, mut escaped) = (false, false);
        loop {
            let chunk = self.reader.fill_buf().map_err(ScanError::Io)?;
            if chunk.is_empty() {
                return if quoted {
                    Err(ScanError::Truncated(self.at))
                } else {
                    Ok(start)
                };
            }
            let mut end = None;
            for (i, &b) in chunk.iter().enumerate() {
                if !quoted {
                    if matches!(b, b',' | b'}' | b']' | b':') || b.is_ascii_whitespace() {
                        end = Some(i);
                        break;
                    }
                } else if !opened {
                    opened = true;
                } else if escaped {
                    escaped = false;
                } else if b == b'\\' {
                    escaped = true;
                } else if b == b'"' {
                    end = Some(i + 1);
                    break;
                }
            }
            let n = end.unwrap_or(chunk.len());
            self.element.extend_from_slice(&chunk[..n]);
            self.consumed(n);
            if end.is_some() {
                return Ok(start);
            }
        }
    }

    /// Read through the end of the line (or of the input) into `element`; its start, or `None`
    /// at the end of the input.
    pub fn read_line(&mut self) -> Result<Option<At>, ScanError> {
        let start = self.at;
        self.element.clear();
        loop {
            let chunk = self.reader.fill_buf().map_err(ScanError::Io)?;
            if chunk.is_empty() {
                return Ok((!self.element.is_empty()).then_some(start));
            }
            let end = memchr::memchr(b'\n', chunk).map(|i| i + 1);
            let n = end.unwrap_or(chunk.len());
            self.element.extend_from_slice(&chunk[..n]);
            self.consumed(n);
            if end.is_some() {
                return Ok(Some(start));
            }
        }
    }

    /// Read one object or array (the next non-space byte must open it) into `element`.
    pub fn read_element(&mut self) -> Result<At, ScanError> {
        match self.peek_non_ws()? {
            Some(b'{' | b'[') => {}
            Some(found) => {
                return Err(ScanError::Unexpected {
                    at: self.at,
                    found,
                    expected: "a JSON object",
                });
            }
            None => return Err(ScanError::Truncated(self.at)),
        }
        let start = self.at;
        self.element.clear();
        let (mut depth, mut in_string, mut escaped) = (0u32, false, false);
        loop {
            let chunk = self.reader.fill_buf().map_err(ScanError::Io)?;
            if chunk.is_empty() {
                return Err(ScanError::Truncated(self.at));
            }
            let mut end = None;
            let mut i = 0;
            while i < chunk.len() {
                if in_string {
                    if escaped {
                        // The byte after a backslash never ends the string.
                        escaped = false;
                        i += 1;
                        continue;
                    }
                    // Jump to the next quote or backslash.
                    match memchr::memchr2(b'"', b'\\', &chunk[i..]) {
                        None => {
                            i = chunk.len();
                            continue;
                        }
                        Some(off) => i += off,
                    }
                    if chunk[i] == b'\\' {
                        escaped = true;
                    } else {
                        in_string = false;
                    }
                    i += 1;
                    continue;
                }
                match chunk[i] {
                    b'"' => in_string = true,
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            end = Some(i + 1);
                            break;
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
            let n = end.unwrap_or(chunk.len());
            self.element.extend_from_slice(&chunk[..n]);
            self.consumed(n);
            if end.is_some() {
                return Ok(start);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_elements_with_tricky_strings() {
        let text = b"[ {\"a\": \"}]\\\"{\\n\"},\n {\"b\": [1, {\"c\": 2}]} ]";
        let mut s = Scanner::new(&text[..]);
        assert_eq!(s.peek_non_ws().unwrap(), Some(b'['));
        s.bump();
        s.read_element().unwrap();
        assert_eq!(s.element, b"{\"a\": \"}]\\\"{\\n\"}");
        assert_eq!(s.peek_non_ws().unwrap(), Some(b','));
        s.bump();
        let at = s.read_element().unwrap();
        assert_eq!(at.line, 2);
        assert_eq!(s.element, b"{\"b\": [1, {\"c\": 2}]}");
        assert_eq!(s.peek_non_ws().unwrap(), Some(b']'));
    }

    #[test]
    fn walks_an_object_and_captures_it_exactly() {
        let text =
            b"{ \"a\": \"x\\\"}\", \"n\": -1.5e3,\n \"b\": [1, {\"c\": null}], \"t\": true }";
        let mut s = Scanner::new(&text[..]);
        s.start_capture();
        assert_eq!(s.peek_non_ws().unwrap(), Some(b'{'));
        s.bump();
        let mut seen = Vec::new();
        loop {
            s.read_value().unwrap();
            seen.push(String::from_utf8(s.element.clone()).unwrap());
            assert_eq!(s.peek_non_ws().unwrap(), Some(b':'));
            s.bump();
            s.read_value().unwrap();
            seen.push(String::from_utf8(s.element.clone()).unwrap());
            match s.peek_non_ws().unwrap() {
                Some(b',') => s.bump(),
                Some(b'}') => {
                    s.bump();
                    break;
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(
            seen,
            [
                "\"a\"",
                "\"x\\\"}\"",
                "\"n\"",
                "-1.5e3",
                "\"b\"",
                "[1, {\"c\": null}]",
                "\"t\"",
                "true"
            ]
        );
        assert_eq!(s.take_capture(), text.to_vec());
        assert_eq!(s.at().line, 2);
    }

    #[test]
    fn reads_lines() {
        let mut s = Scanner::new(&b"{\"a\":1}\n\n{\"b\":2"[..]);
        assert_eq!(s.read_line().unwrap().map(|a| a.line), Some(1));
        assert_eq!(s.element, b"{\"a\":1}\n");
        assert_eq!(s.read_line().unwrap().map(|a| a.line), Some(2));
        assert_eq!(s.read_line().unwrap().map(|a| a.line), Some(3));
        assert_eq!(s.element, b"{\"b\":2");
        assert_eq!(s.read_line().unwrap(), None);
    }

    #[test]
    fn truncation_and_scalars_are_errors() {
        let mut s = Scanner::new(&b"{\"a\": [1, 2"[..]);
        assert!(matches!(s.read_element(), Err(ScanError::Truncated(_))));
        let mut s = Scanner::new(&b"  42"[..]);
        assert!(matches!(
            s.read_element(),
            Err(ScanError::Unexpected { found: b'4', .. })
        ));
    }
}
