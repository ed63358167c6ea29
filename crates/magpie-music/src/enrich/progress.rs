//! How far enrichment has got, per source: done / remaining / failed, the recent rate, an
//! estimate of the time left, and any wait a service asked for. Read from the queue, so the
//! CLI's progress bar and the web page show the same figures.

use chrono::{DateTime, NaiveDateTime, Utc};
use duckdb::{Connection, params};
use serde::Serialize;

use super::Source;

/// One source's figures.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct SourceProgress {
    pub source: String,
    pub queued: u64,
    pub done: u64,
    pub not_found: u64,
    /// Failed, to be tried again after a backoff.
    pub retrying: u64,
    /// Failed for good (attempts used up).
    pub failed: u64,
    /// Items finished in the last hour.
    pub last_hour: u64,
    /// The service asked to wait until then (429 / 503).
    pub waiting_until: Option<DateTime<Utc>>,
    pub wait_reason: Option<String>,
}

impl SourceProgress {
    pub fn total(&self) -> u64 {
        self.queued + self.done + self.not_found + self.retrying + self.failed
    }

    /// Items still to try.
    pub fn remaining(&self) -> u64 {
        self.queued + self.retrying
    }

    /// Finished items, whatever their result.
    pub fn finished(&self) -> u64 {
        self.done + self.not_found + self.failed
    }

    /// At the last hour's pace, how long the rest takes.
    pub fn eta(&self) -> Option<std::time::Duration> {
        (self.last_hour > 0 && self.remaining() > 0)
            .then(|| std::time::Duration::from_secs(self.remaining() * 3600 / self.last_hour))
    }
}

/// Every source's figures.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Progress {
    pub sources: Vec<SourceProgress>,
}

impl Progress {
    pub fn read(conn: &Connection, max_attempts: u32, now: DateTime<Utc>) -> duckdb::Result<Self> {
        let now_ts = now.naive_utc();
        let hour_ago = (now - chrono::Duration::hours(1)).naive_utc();
        let mut stmt = conn.prepare_cached(
            "SELECT
                 count(*) FILTER (WHERE state = 'queued'),
                 count(*) FILTER (WHERE state = 'done'),
                 count(*) FILTER (WHERE state = 'not_found'),
                 count(*) FILTER (WHERE state = 'failed' AND attempts < ?),
                 count(*) FILTER (WHERE state = 'failed' AND attempts >= ?),
                 count(*) FILTER (WHERE finished_at > ?),
                 (SELECT until FROM raw.enrichment_waits w WHERE w.source = ? AND w.until > ?),
                 (SELECT reason FROM raw.enrichment_waits w WHERE w.source = ? AND w.until > ?)
             FROM raw.enrichment_queue WHERE source = ?",
        )?;
        let mut sources = Vec::new();
        for source in Source::ALL {
            let s = source.as_str();
            let p = stmt.query_row(
                params![
                    max_attempts,
                    max_attempts,
                    hour_ago,
                    s,
                    now_ts,
                    s,
                    now_ts,
                    s
                ],
                |r| {
                    let n = |i: usize| r.get::<_, i64>(i).map(|v| v as u64);
                    Ok(SourceProgress {
                        source: s.to_string(),
                        queued: n(0)?,
                        done: n(1)?,
                        not_found: n(2)?,
                        retrying: n(3)?,
                        failed: n(4)?,
                        last_hour: n(5)?,
                        waiting_until: r.get::<_, Option<NaiveDateTime>>(6)?.map(|t| t.and_utc()),
                        wait_reason: r.get(7)?,
                    })
                },
            )?;
            sources.push(p);
        }
        Ok(Self { sources })
    }

    pub fn source(&self, source: Source) -> Option<&SourceProgress> {
        self.sources.iter().find(|s| s.source == source.as_str())
    }
}
