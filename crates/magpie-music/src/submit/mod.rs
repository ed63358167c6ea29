//! Listens that players submit, over ListenBrainz's API (`/1/submit-listens`) or Last.fm's
//! (`track.scrobble`): the part that does not depend on HTTP.
//!
//! The web's handlers check the caller ([`tokens`]), parse the request ([`listenbrainz`],
//! [`lastfm`]) into [`ListenEvent`]s, and hand them to a [`Submitter`], which commits each
//! request in one transaction through the importers' own stage and store: the same exact and
//! cross-source deduplication as every file import (a retried request adds nothing; a listen a
//! player scrobbled and Spotify also reported is one play), with an `import_batches` row that
//! records the token and the client. `playing_now` reports are not plays ([`now_playing`]).

pub mod lastfm;
pub mod listenbrainz;
pub mod now_playing;
pub mod tokens;

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

use duckdb::Connection;
use magpie_core::{Config, Warehouse};
use sha2::{Digest, Sha256};

use crate::event::{ListenEvent, SourceFormat};
use crate::import::{stage, store};

/// A submission that could not be stored.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error("the warehouse refused the submission: {0}")]
    Warehouse(#[from] duckdb::Error),
    #[error("the submission's task failed: {0}")]
    Task(String),
}

/// Where a submission came from.
#[derive(Debug, Clone)]
pub struct Provenance {
    /// The token's public id.
    pub token_id: String,
    /// The submitting program, as it named itself.
    pub client: Option<String>,
}

impl Provenance {
    /// The `import_batches.source_path` of this token's submissions.
    pub fn source_path(token_id: &str) -> String {
        format!("token:{token_id}")
    }
}

/// What a stored submission added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Submitted {
    pub batch_id: i64,
    /// New listens.
    pub imported: u64,
    /// Listens already known (a retry, or the same listen from another source).
    pub duplicates: u64,
}

/// Commits submissions to the warehouse, one transaction each, on a connection of its own.
pub struct Submitter {
    conn: Mutex<Connection>,
    dedupe_window_secs: u32,
}

impl Submitter {
    pub fn new(
        warehouse: &Warehouse,
        config: &Config,
    ) -> Result<Self, magpie_core::WarehouseError> {
        let conn = warehouse.try_clone()?;
        stage::prepare(&conn).map_err(|source| magpie_core::WarehouseError::DuckDb {
            path: warehouse.path().to_path_buf(),
            source,
        })?;
        Ok(Self {
            conn: Mutex::new(conn),
            dedupe_window_secs: config.import.dedupe_window_secs,
        })
    }

    /// Store `events` for `listener`, all or none. `body` is the request as received (its
    /// hash is kept with the batch). Blocking: call it off the async workers.
    pub fn submit(
        &self,
        listener: &str,
        format: SourceFormat,
        events: &[ListenEvent],
        provenance: &Provenance,
        body: &[u8],
    ) -> Result<Submitted, SubmitError> {
        let started_at_us = chrono::Utc::now().timestamp_micros();
        let conn = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        let listener_id = magpie_core::warehouse::listener_id_in(&conn, listener)?;
        let mut builder = stage::BatchBuilder::with_batch_rows(events.len().max(1));
        let mut skipped = 0u64;
        for event in events {
            if !builder.push(event) {
                skipped += 1;
            }
        }
        let staged = builder.rows;
        let mut writer = stage::StageWriter::new(&conn)?;
        if let Some(batch) = builder.take_rest() {
            writer.append(batch)?;
        }
        writer.finish()?;
        let reasons: BTreeMap<&str, u64> = if skipped > 0 {
            BTreeMap::from([("no_identity", skipped)])
        } else {
            BTreeMap::new()
        };
        let reasons = serde_json::to_string(&reasons).unwrap_or_else(|_| "{}".into());
        let info = store::BatchInfo {
            listener_id,
            format,
            source_path: &Provenance::source_path(&provenance.token_id),
            file_name: provenance.client.as_deref().unwrap_or("unnamed client"),
            content_sha256: &hex::encode(Sha256::digest(body)),
            byte_size: body.len() as u64,
            events_read: events.len() as u64,
            skipped,
            skipped_reasons_json: &reasons,
            started_at_us,
            dedupe_window_secs: self.dedupe_window_secs,
        };
        let result = store::commit(&conn, staged, &info);
        if result.is_err() {
            let _ = conn.execute_batch("DELETE FROM import_stage");
        }
        let (batch_id, counts) = result?;
        Ok(Submitted {
            batch_id,
            imported: counts.imported,
            duplicates: counts.duplicates,
        })
    }

    /// Up to `count` listens of `listener` stored from any source with start times in
    /// `(min_ts, max_ts)` (Unix seconds), newest first: the newest ones, or with `min_ts` the
    /// ones just after it (what ListenBrainz's `/user/<name>/listens` returns).
    pub fn recent(
        &self,
        listener: &str,
        min_ts: Option<i64>,
        max_ts: Option<i64>,
        count: usize,
    ) -> Result<Vec<StoredListen>, SubmitError> {
        let conn = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        let mut stmt = conn.prepare_cached(
            "SELECT epoch(coalesce(e.started_at, e.ended_at))::BIGINT AS ts, e.artist_name,
                    e.track_name, e.album_name, e.track_mbid, e.album_mbid, e.artist_mbid,
                    e.spotify_track_uri, e.track_duration_ms, e.platform, e.source_kind
             FROM raw.listen_events e JOIN listeners l USING (listener_id)
             WHERE l.name = ? AND e.duplicate_of IS NULL AND e.content_kind = 'track'
               AND e.track_name IS NOT NULL AND e.artist_name IS NOT NULL
               AND coalesce(e.started_at, e.ended_at) > make_timestamp(? * 1000000)
               AND coalesce(e.started_at, e.ended_at) < make_timestamp(? * 1000000)
             ORDER BY CASE WHEN ? THEN ts ELSE -ts END, CASE WHEN ? THEN e.event_id ELSE -e.event_id END
             LIMIT ?",
        )?;
        let rows = stmt.query_map(
            duckdb::params![
                listener,
                min_ts.unwrap_or(0),
                max_ts.unwrap_or(i64::MAX / 2_000_000),
                min_ts.is_some(),
                min_ts.is_some(),
                count as i64
            ],
            |r| {
                Ok(StoredListen {
                    listened_at: r.get(0)?,
                    artist_name: r.get(1)?,
                    track_name: r.get(2)?,
                    release_name: r.get(3)?,
                    recording_mbid: r.get(4)?,
                    release_mbid: r.get(5)?,
                    artist_mbid: r.get(6)?,
                    spotify_track_uri: r.get(7)?,
                    duration_ms: r.get(8)?,
                    media_player: r.get(9)?,
                    source_kind: r.get(10)?,
                })
            },
        )?;
        let mut rows: Vec<StoredListen> = rows.collect::<Result<_, _>>()?;
        if min_ts.is_some() {
            rows.reverse();
        }
        Ok(rows)
    }

    /// Every listener's name, by id.
    pub fn listener_names(&self) -> Result<Vec<String>, SubmitError> {
        let conn = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        let mut stmt = conn.prepare_cached("SELECT name FROM listeners ORDER BY listener_id")?;
        let names = stmt.query_map([], |r| r.get(0))?;
        Ok(names.collect::<Result<_, _>>()?)
    }

    /// Whether a listener of that name exists.
    pub fn listener_exists(&self, listener: &str) -> Result<bool, SubmitError> {
        let conn = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(conn.query_row(
            "SELECT count(*) > 0 FROM listeners WHERE name = ?",
            [listener],
            |r| r.get(0),
        )?)
    }

    /// The newest start time of `listener`'s listens, in Unix seconds (0 when none).
    pub fn latest(&self, listener: &str) -> Result<i64, SubmitError> {
        let conn = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(conn.query_row(
            "SELECT coalesce(epoch(max(coalesce(e.started_at, e.ended_at)))::BIGINT, 0)
             FROM raw.listen_events e JOIN listeners l USING (listener_id)
             WHERE l.name = ? AND e.duplicate_of IS NULL",
            [listener],
            |r| r.get(0),
        )?)
    }

    /// The last submission received with each token: token id → (time, client).
    pub fn last_submissions(
        &self,
    ) -> Result<BTreeMap<String, (chrono::NaiveDateTime, String)>, SubmitError> {
        let conn = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        let mut stmt = conn.prepare_cached(
            "SELECT substr(source_path, 7), max(finished_at), arg_max(file_name, finished_at)
             FROM raw.import_batches
             WHERE source_path LIKE 'token:%' AND status = 'completed'
             GROUP BY source_path",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?))))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// A stored listen, as read back.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredListen {
    pub listened_at: i64,
    pub artist_name: String,
    pub track_name: String,
    pub release_name: Option<String>,
    pub recording_mbid: Option<String>,
    pub release_mbid: Option<String>,
    pub artist_mbid: Option<String>,
    pub spotify_track_uri: Option<String>,
    pub duration_ms: Option<i64>,
    pub media_player: Option<String>,
    pub source_kind: String,
}
