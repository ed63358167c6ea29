//! Splits a JSON document's top level into elements without parsing them: a byte scanner that
//! follows strings, escapes and nesting, so each array element can be handed whole to
//! `serde_json::from_slice` (several times faster than parsing from a reader) while memory
//! holds one element at a time. It tracks lines and columns for error messages.

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
}

impl<R: BufRead> Scanner<R> {
    pub fn new(reader: R) -> Self {
        Self {
            reader,
            element: Vec::with_capacity(4096),
            at: At { line: 1, column: 1 },
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
            advance(&mut self.at, &chunk[..ws]);
            self.reader.consume(ws);
            if next.is_some() {
                return Ok(next);
            }
        }
    }

    /// Consume one byte (after `peek_non_ws` returned it).
    pub fn bump(&mut self) {
        let b = self.reader.fill_buf().ok().and_then(|c| c.first().copied());
        if let Some(b) = b {
            self.reader.consume(1);
            advance(&mut self.at, &[b]);
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
            advance(&mut self.at, &chunk[..n]);
            self.reader.consume(n);
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
