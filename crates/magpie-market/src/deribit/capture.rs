//! Reading cryptofeed's capture files (the recorded Deribit sessions in the test data): one
//! record per line, in four shapes.
//!
//! - `<url> -> <recv_unix_ts>: <body>`: an HTTP GET and its response body,
//! - `<ws_url> <-> <ts>`: a websocket connect,
//! - `<ws_url> <- <ts>: <json>`: a message the client sent,
//! - `<recv_unix_ts>: <json>`: a message the server sent,
//!
//! plus `configuration: {...}`, cryptofeed's own settings (not exchange data).

use std::path::Path;

/// One line of a capture.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    Http {
        url: String,
        received: f64,
        body: String,
    },
    Connect {
        url: String,
        at: f64,
    },
    Sent {
        url: String,
        at: f64,
        message: String,
    },
    Received {
        at: f64,
        message: String,
    },
    Configuration(String),
}

/// A line that is none of the shapes.
#[derive(Debug, thiserror::Error)]
#[error("{file}:{line}: not a cryptofeed capture record")]
pub struct CaptureError {
    pub file: String,
    pub line: usize,
}

/// Parse one line (without its newline); `None` for a line that is none of the shapes.
pub fn parse_line(line: &str) -> Option<Record> {
    if let Some(config) = line.strip_prefix("configuration: ") {
        return Some(Record::Configuration(config.to_string()));
    }
    if let Some((url, rest)) = line.split_once(" -> ") {
        let (ts, body) = rest.split_once(": ")?;
        return Some(Record::Http {
            url: url.to_string(),
            received: ts.trim().parse().ok()?,
            body: body.to_string(),
        });
    }
    if let Some((url, ts)) = line.split_once(" <-> ") {
        return Some(Record::Connect {
            url: url.to_string(),
            at: ts.trim().parse().ok()?,
        });
    }
    if let Some((url, rest)) = line.split_once(" <- ") {
        let (ts, message) = rest.split_once(": ")?;
        return Some(Record::Sent {
            url: url.to_string(),
            at: ts.trim().parse().ok()?,
            message: message.to_string(),
        });
    }
    let (ts, message) = line.split_once(": ")?;
    Some(Record::Received {
        at: ts.trim().parse().ok()?,
        message: message.to_string(),
    })
}

/// Every record of a capture file, or the first line that is not one.
pub fn read(path: &Path) -> std::io::Result<Result<Vec<Record>, CaptureError>> {
    let text = std::fs::read_to_string(path)?;
    let mut records = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match parse_line(line) {
            Some(record) => records.push(record),
            None => {
                return Ok(Err(CaptureError {
                    file: path.display().to_string(),
                    line: i + 1,
                }));
            }
        }
    }
    Ok(Ok(records))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_four_shapes_and_configuration() {
        assert!(matches!(
            parse_line("https://x/api?currency=BTC -> 1626993723.13: {\"result\":[]}"),
            Some(Record::Http { url, body, .. }) if url == "https://x/api?currency=BTC" && body == "{\"result\":[]}"
        ));
        assert!(matches!(
            parse_line("wss://x/ws <-> 1626993723.42"),
            Some(Record::Connect { at, .. }) if (at - 1626993723.42).abs() < 1e-6
        ));
        assert!(matches!(
            parse_line("wss://x/ws <- 1626993723.7: {\"id\":0}"),
            Some(Record::Sent { message, .. }) if message == "{\"id\":0}"
        ));
        assert!(matches!(
            parse_line("1626993723.8: {\"id\":0,\"result\":[]}"),
            Some(Record::Received { message, .. }) if message.starts_with("{\"id\"")
        ));
        assert!(matches!(
            parse_line("configuration: {\"a\":1}"),
            Some(Record::Configuration(_))
        ));
        assert_eq!(parse_line("garbage"), None);
    }
}
