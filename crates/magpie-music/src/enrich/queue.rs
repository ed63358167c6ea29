//! The enrichment work queue (`raw.enrichment_queue`) and the raw responses
//! (`raw.enrichment_responses`): taking the next items most-played first, and recording each
//! item's outcome together with the responses it produced, in one transaction.

use chrono::{DateTime, NaiveDateTime, Utc};
use duckdb::{Connection, OptionalExt, params};
use magpie_core::warehouse::in_transaction;

use super::Source;

/// One entity to look up.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub source: Source,
    /// `track`, `artist` or `album`.
    pub entity: String,
    pub key: String,
    pub label: Option<String>,
    pub hints: serde_json::Value,
    pub attempts: u32,
    pub priority: i64,
}

/// A response to keep.
#[derive(Debug, Clone)]
pub struct Response {
    pub source: Source,
    /// `track`, `artist`, `album`, `url`, `search`, `area`.
    pub entity: String,
    pub key: String,
    /// Path and query, without the host.
    pub request: String,
    /// HTTP status; 0 for a body magpie derived.
    pub status: u16,
    pub body: serde_json::Value,
}

/// How an item ended this time.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Done,
    /// The service has no such entity, or no unambiguous match: not tried again unless what is
    /// known about it changes.
    NotFound(String),
    /// Tried and failed (server error, timeout, malformed body): tried again after a backoff
    /// until the attempts run out.
    Failed(String),
    /// Not tried: the service asked everyone to wait. The item stays queued.
    Deferred,
}

/// The queue over one connection.
pub struct Queue<'c> {
    conn: &'c Connection,
}

fn ts(t: DateTime<Utc>) -> NaiveDateTime {
    t.naive_utc()
}

impl<'c> Queue<'c> {
    pub fn new(conn: &'c Connection) -> Self {
        Self { conn }
    }

    /// Queue new entities and update priorities and hints (see `refresh.sql`); with `search`,
    /// also searches for tracks that came without a URI (`refresh_search.sql`).
    pub fn refresh(&self, now: DateTime<Utc>, search: bool) -> duckdb::Result<()> {
        let literal = format!("TIMESTAMP '{}'", ts(now).format("%Y-%m-%d %H:%M:%S%.6f"));
        let mut sql = include_str!("refresh.sql").to_string();
        if search {
            sql.push_str(include_str!("refresh_search.sql"));
        }
        let sql = sql.replace("$now", &literal);
        in_transaction(self.conn, || self.conn.execute_batch(&sql))
    }

    /// Up to `limit` items of `sources` that may be tried at `now`, most-played first.
    pub fn next(
        &self,
        sources: &[Source],
        max_attempts: u32,
        now: DateTime<Utc>,
        limit: usize,
    ) -> duckdb::Result<Vec<Item>> {
        let names: Vec<&str> = sources.iter().map(|s| s.as_str()).collect();
        let list = names
            .iter()
            .map(|n| format!("'{n}'"))
            .collect::<Vec<_>>()
            .join(", ");
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT source, entity, entity_key, label, CAST(hints AS VARCHAR), attempts, priority
             FROM raw.enrichment_queue
             WHERE source IN ({list})
               AND (state = 'queued'
                    OR (state = 'failed' AND attempts < ? AND coalesce(not_before <= ?, true)))
             ORDER BY priority DESC, source, entity, entity_key
             LIMIT ?"
        ))?;
        let rows = stmt.query_map(params![max_attempts, ts(now), limit as i64], |r| {
            let source: String = r.get(0)?;
            let hints: Option<String> = r.get(4)?;
            Ok(Item {
                source: source.parse().unwrap_or(Source::Spotify),
                entity: r.get(1)?,
                key: r.get(2)?,
                label: r.get(3)?,
                hints: hints
                    .and_then(|h| serde_json::from_str(&h).ok())
                    .unwrap_or(serde_json::Value::Null),
                attempts: r.get::<_, i32>(5)? as u32,
                priority: r.get(6)?,
            })
        })?;
        rows.collect()
    }

    /// Record what happened to `item` and keep `responses`, atomically.
    pub fn finish(
        &self,
        item: &Item,
        outcome: &Outcome,
        responses: &[Response],
        now: DateTime<Utc>,
    ) -> duckdb::Result<()> {
        in_transaction(self.conn, || {
            self.finish_in_transaction(item, outcome, responses, now)
        })
    }

    fn finish_in_transaction(
        &self,
        item: &Item,
        outcome: &Outcome,
        responses: &[Response],
        now: DateTime<Utc>,
    ) -> duckdb::Result<()> {
        if item.source == Source::MusicBrainz
            && item.entity == "artist"
            && matches!(outcome, Outcome::Done | Outcome::NotFound(_))
        {
            self.supersede_artist(&item.key)?;
        }
        self.store(responses, now)?;
        let (state, error, attempts, not_before) = match outcome {
            Outcome::Done => ("done", None, item.attempts + 1, None),
            Outcome::NotFound(why) => ("not_found", Some(why.as_str()), item.attempts + 1, None),
            Outcome::Failed(why) => {
                // 1, 4, 16, 64 ... minutes.
                let minutes = 4i64.saturating_pow(item.attempts.min(6));
                let next = now + chrono::Duration::minutes(minutes);
                (
                    "failed",
                    Some(why.as_str()),
                    item.attempts + 1,
                    Some(ts(next)),
                )
            }
            Outcome::Deferred => return Ok(()),
        };
        self.conn
            .prepare_cached(
                "UPDATE raw.enrichment_queue
                 SET state = ?, last_error = ?, attempts = ?, not_before = ?, finished_at = ?
                 WHERE source = ? AND entity = ? AND entity_key = ?",
            )?
            .execute(params![
                state,
                error,
                attempts,
                not_before,
                ts(now),
                item.source.as_str(),
                item.entity,
                item.key
            ])?;
        Ok(())
    }

    /// A MusicBrainz artist looked up again (its hints changed: another MBID, a Spotify id)
    /// replaces what the last lookup found: its artist, its MBID check and the country derived
    /// from them go, and the country is derived again.
    fn supersede_artist(&self, key: &str) -> duckdb::Result<()> {
        self.conn
            .prepare_cached(
                "DELETE FROM raw.enrichment_responses
                 WHERE entity_key = ? AND ((source = 'musicbrainz' AND entity IN ('artist', 'mbid_check'))
                                           OR (source = 'geo' AND entity = 'artist'))",
            )?
            .execute([key])?;
        self.conn
            .prepare_cached(
                "UPDATE raw.enrichment_queue SET state = 'queued', attempts = 0, not_before = NULL
                 WHERE source = 'geo' AND entity = 'artist' AND entity_key = ? AND state <> 'queued'",
            )?
            .execute([key])?;
        Ok(())
    }

    /// Keep responses, replacing an earlier answer to the same lookup (also those of requests
    /// whose item is not finished yet, such as a MusicBrainz URL lookup before a 503, so they
    /// are not made again).
    pub fn store(&self, responses: &[Response], now: DateTime<Utc>) -> duckdb::Result<()> {
        let mut stmt = self.conn.prepare_cached(
            "INSERT OR REPLACE INTO raw.enrichment_responses
             (source, entity, entity_key, request, status, fetched_at, body)
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )?;
        for r in responses {
            stmt.execute(params![
                r.source.as_str(),
                r.entity,
                r.key,
                r.request,
                r.status,
                ts(now),
                r.body.to_string()
            ])?;
        }
        Ok(())
    }

    /// The kept response for (source, entity, key): (status, body).
    pub fn cached(
        &self,
        source: Source,
        entity: &str,
        key: &str,
    ) -> duckdb::Result<Option<(u16, serde_json::Value)>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT status, CAST(body AS VARCHAR) FROM raw.enrichment_responses
             WHERE source = ? AND entity = ? AND entity_key = ?",
        )?;
        stmt.query_row(params![source.as_str(), entity, key], |r| {
            let body: Option<String> = r.get(1)?;
            Ok((
                r.get::<_, i32>(0)? as u16,
                body.and_then(|b| serde_json::from_str(&b).ok())
                    .unwrap_or(serde_json::Value::Null),
            ))
        })
        .optional()
    }

    /// Until when a service asked to wait, if that is still ahead of `now`.
    pub fn wait_until(
        &self,
        source: Source,
        now: DateTime<Utc>,
    ) -> duckdb::Result<Option<DateTime<Utc>>> {
        let until: Option<NaiveDateTime> = self
            .conn
            .prepare_cached("SELECT until FROM raw.enrichment_waits WHERE source = ?")?
            .query_row([source.as_str()], |r| r.get(0))
            .optional()?;
        Ok(until.map(|u| u.and_utc()).filter(|u| *u > now))
    }

    /// Persist a service-wide wait (429 Retry-After, 503 backoff) across restarts.
    pub fn set_wait(
        &self,
        source: Source,
        until: DateTime<Utc>,
        reason: &str,
    ) -> duckdb::Result<()> {
        self.conn.execute(
            "INSERT INTO raw.enrichment_waits VALUES (?, ?, ?)
             ON CONFLICT (source) DO UPDATE SET until = excluded.until, reason = excluded.reason",
            params![source.as_str(), ts(until), reason],
        )?;
        Ok(())
    }
}
