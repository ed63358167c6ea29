//! The JSON element scanner against serde_json on the same bytes: whenever serde_json reads
//! the input as an array, the scanner splits it into the same elements; it never panics, and
//! its error positions lie inside the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use magpie_music::import::scan::{ScanError, Scanner};
use serde_json::Value;

/// The top-level array's elements as the importers read them.
fn split(data: &[u8]) -> Result<Vec<Value>, ScanError> {
    let mut scanner = Scanner::new(data);
    let mut values = Vec::new();
    if scanner.peek_non_ws()? != Some(b'[') {
        return Ok(values);
    }
    scanner.bump();
    if scanner.peek_non_ws()? == Some(b']') {
        return Ok(values);
    }
    loop {
        scanner.read_value()?;
        match serde_json::from_slice(&scanner.element) {
            Ok(value) => values.push(value),
            Err(_) => return Ok(values),
        }
        match scanner.peek_non_ws()? {
            Some(b',') => scanner.bump(),
            _ => return Ok(values),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let whole = serde_json::from_slice::<Value>(data);
    let lines = 1 + data.iter().filter(|&&b| b == b'\n').count() as u64;
    match split(data) {
        Ok(values) => {
            if let Ok(Value::Array(expected)) = whole {
                assert_eq!(values, expected, "the scanner's elements are serde_json's");
            }
        }
        Err(ScanError::Truncated(at) | ScanError::Unexpected { at, .. }) => {
            assert!(
                !matches!(whole, Ok(Value::Array(_))),
                "serde_json read it as an array"
            );
            assert!(
                at.line <= lines,
                "line {} past the input's {lines}",
                at.line
            );
        }
        Err(ScanError::Io(error)) => panic!("reading a slice failed: {error}"),
    }
});
