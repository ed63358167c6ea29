//! How far enrichment has got, per source: done / remaining / failed, the recent rate, an
//! estimate of the time left, and any wait a service asked for. Read from the queue, so the
//! CLI's progress bar and the web page show the same figures. Also the supplied MBIDs that
//! MusicBrainz enrichment distrusted, with what each artist was resolved to instead.

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

/// An MBID a listening source supplied that MusicBrainz names otherwise (or does not know).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct DistrustedMbid {
    pub artist_key: String,
    /// The name as played (the most played spelling).
    pub played_name: String,
    pub claimed_mbid: String,
    /// MusicBrainz's name for the claimed MBID; `None` when it has no such artist.
    pub musicbrainz_name: Option<String>,
    /// The artist found instead (by the Spotify URL or by name), if any.
    pub resolved_mbid: Option<String>,
    pub resolved_name: Option<String>,
    /// The queue's state of the artist (`done`, `not_found`, `queued`, ...) and its reason.
    pub state: String,
    pub error: Option<String>,
}

/// At most this many distrusted MBIDs are read (most played first); the total is counted.
const DISTRUSTED_LISTED: i64 = 200;

/// Every source's figures.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Progress {
    pub sources: Vec<SourceProgress>,
    /// Supplied MBIDs distrusted, most played first (at most [`DISTRUSTED_LISTED`]).
    pub distrusted: Vec<DistrustedMbid>,
    pub distrusted_total: u64,
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
        let (distrusted, distrusted_total) = distrusted(conn)?;
        Ok(Self {
            sources,
            distrusted,
            distrusted_total,
        })
    }

    pub fn source(&self, source: Source) -> Option<&SourceProgress> {
        self.sources.iter().find(|s| s.source == source.as_str())
    }
}

/// The supplied MBIDs the last lookup of their artist distrusted (`mbid_check` responses with
/// `trusted` false), most played first, and how many there are.
fn distrusted(conn: &Connection) -> duckdb::Result<(Vec<DistrustedMbid>, u64)> {
    let mut stmt = conn.prepare_cached(
        "SELECT c.entity_key,
                coalesce(c.body ->> '$.played_name', q.label, c.entity_key),
                c.body ->> '$.claimed_mbid',
                c.body ->> '$.musicbrainz_name',
                a.body ->> '$.id',
                a.body ->> '$.name',
                coalesce(q.state, 'unknown'),
                q.last_error,
                count(*) OVER ()
         FROM raw.enrichment_responses AS c
         LEFT JOIN raw.enrichment_queue AS q
             ON q.source = 'musicbrainz' AND q.entity = 'artist' AND q.entity_key = c.entity_key
         LEFT JOIN raw.enrichment_responses AS a
             ON a.source = 'musicbrainz' AND a.entity = 'artist' AND a.entity_key = c.entity_key
             AND a.status = 200
         WHERE c.source = 'musicbrainz' AND c.entity = 'mbid_check'
             AND (c.body ->> '$.trusted') = 'false'
         ORDER BY q.priority DESC NULLS LAST, c.entity_key
         LIMIT ?",
    )?;
    let mut total = 0;
    let rows = stmt
        .query_map([DISTRUSTED_LISTED], |r| {
            total = r.get::<_, i64>(8)? as u64;
            Ok(DistrustedMbid {
                artist_key: r.get(0)?,
                played_name: r.get(1)?,
                claimed_mbid: r.get::<_, Option<String>>(2)?.unwrap_or_default(),
                musicbrainz_name: r.get(3)?,
                resolved_mbid: r.get(4)?,
                resolved_name: r.get(5)?,
                state: r.get(6)?,
                error: r.get(7)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok((rows, total))
}
