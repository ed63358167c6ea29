//! Committing one file's staged events (see [`super::stage`]) to the warehouse: a single
//! transaction deduplicates them (exact duplicates
//! within the file and against the same source; the same listen from another source within
//! the dedupe window) and moves them into `raw.listen_events` with an `import_batches` row.
//! Until that commit nothing of the file is visible, and a crash leaves nothing of it behind.

use duckdb::{Connection, params};

use crate::event::SourceFormat;

/// Counts a finished file contributes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreCounts {
    /// New listens.
    pub imported: u64,
    /// Events already known: exact repeats (in the file or from an earlier import of the same
    /// source) and the same listen from another source (kept in raw, marked `duplicate_of`).
    pub duplicates: u64,
    /// Of the duplicates, those kept in raw with `duplicate_of` set.
    pub cross_source: u64,
}

/// Everything the commit needs to know about the file.
pub struct BatchInfo<'a> {
    pub listener_id: i32,
    pub format: SourceFormat,
    pub source_path: &'a str,
    pub file_name: &'a str,
    pub content_sha256: &'a str,
    pub byte_size: u64,
    pub events_read: u64,
    pub skipped: u64,
    pub skipped_reasons_json: &'a str,
    pub started_at_us: i64,
    pub dedupe_window_secs: u32,
}

/// Deduplicate the staged rows and move them into the raw table, all in one transaction.
/// Returns the new batch id and the counts.
pub fn commit(
    conn: &Connection,
    staged: u64,
    b: &BatchInfo<'_>,
) -> duckdb::Result<(i64, StoreCounts)> {
    // New events take their ids inside this transaction: a build waits for it to end before
    // it reads the highest id (its watermark), so no id below that is still uncommitted.
    let _ingest = magpie_core::warehouse::ingest_gate()
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    conn.execute_batch("BEGIN TRANSACTION")?;
    match commit_inner(conn, staged, b) {
        Ok(done) => {
            conn.execute_batch("COMMIT")?;
            Ok(done)
        }
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

fn commit_inner(
    conn: &Connection,
    staged: u64,
    b: &BatchInfo<'_>,
) -> duckdb::Result<(i64, StoreCounts)> {
    let kind = b.format.source_kind().as_str();
    let window_us = i64::from(b.dedupe_window_secs.max(1)) * 1_000_000;
    let batch_id: i64 =
        conn.query_row("SELECT nextval('raw.import_batch_seq')", [], |r| r.get(0))?;

    // Exact duplicates: the first of equal fingerprints in the file, and none already stored
    // for this listener and source. Exact duplicates share their times, so only stored events
    // inside the file's time span can match; when there are none (a new export period, the
    // common case) the comparison is skipped. The span is passed as constants so DuckDB can
    // skip row groups by their min/max.
    let (lo, hi): (Option<i64>, Option<i64>) = conn.query_row(
        "SELECT min(coalesce(ended_us, started_us)), max(coalesce(ended_us, started_us)) FROM import_stage",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let overlaps: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM raw.listen_events
                        WHERE listener_id = ? AND source_kind = ?
                          AND (ended_at BETWEEN make_timestamp(?) AND make_timestamp(?)
                               OR (ended_at IS NULL AND started_at BETWEEN make_timestamp(?) AND make_timestamp(?))))",
        params![b.listener_id, kind, lo, hi, lo, hi],
        |r| r.get(0),
    )?;
    let existing = if overlaps {
        "ANTI JOIN (SELECT fingerprint FROM raw.listen_events WHERE listener_id = $1 AND source_kind = $2) e
           ON e.fingerprint = f.fingerprint"
    } else {
        "WHERE $1::INTEGER IS NOT NULL AND $2::VARCHAR IS NOT NULL"
    };
    conn.execute(
        &format!(
            "CREATE OR REPLACE TEMP TABLE import_new AS
             WITH firsts AS (
                 SELECT position, fingerprint, identity_key, ended_us, started_us FROM import_stage
                 QUALIFY row_number() OVER (PARTITION BY fingerprint ORDER BY position) = 1
             )
             SELECT f.position, f.identity_key, f.ended_us, f.started_us FROM firsts f {existing}"
        ),
        params![b.listener_id, kind],
    )?;
    let new_rows: i64 = conn.query_row("SELECT count(*) FROM temp.import_new", [], |r| r.get(0))?;

    // The same listen from another source: same identity, end times (or, where a source gives
    // only the start, start times) within the window. Skipped when this listener has no events
    // from other sources yet (the common case of a first import).
    let others: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM raw.listen_events WHERE listener_id = ? AND source_kind <> ?)",
        params![b.listener_id, kind],
        |r| r.get(0),
    )?;
    if others {
        conn.execute(MATCH_SQL, params![b.listener_id, kind, window_us])?;
    } else {
        conn.execute_batch(
            "CREATE OR REPLACE TEMP TABLE import_matches (position BIGINT, event_id BIGINT)",
        )?;
    }
    let matched: i64 =
        conn.query_row("SELECT count(*) FROM temp.import_matches", [], |r| r.get(0))?;

    conn.execute(
        "INSERT INTO raw.listen_events
         SELECT nextval('raw.listen_event_seq'), $1, $2, $3, $4, n.position, n.content_kind,
                make_timestamp(n.ended_us), make_timestamp(n.started_us), n.ms_played,
                n.track_name, n.artist_name, n.album_name, n.spotify_track_uri,
                n.spotify_artist_uri, n.spotify_album_uri, n.track_duration_ms, n.context_uri,
                n.episode_name, n.episode_show_name, n.spotify_episode_uri,
                n.audiobook_title, n.audiobook_uri, n.audiobook_chapter_uri, n.audiobook_chapter_title,
                n.platform, n.conn_country, n.reason_start, n.reason_end,
                n.shuffle, n.skipped, n.offline, n.offline_timestamp, n.incognito_mode,
                n.source_username, n.artist_mbid, n.album_mbid, n.track_mbid,
                n.source_time_text, n.extra_fields::JSON, n.identity_key, n.fingerprint, m.event_id
         FROM import_stage n SEMI JOIN temp.import_new USING (position)
         LEFT JOIN temp.import_matches m USING (position)",
        params![b.listener_id, batch_id, kind, b.format.as_str()],
    )?;

    let counts = StoreCounts {
        imported: (new_rows - matched) as u64,
        duplicates: staged - new_rows as u64 + matched as u64,
        cross_source: matched as u64,
    };
    conn.execute(
        "INSERT INTO raw.import_batches
         (batch_id, listener_id, source_path, file_name, content_sha256, format, byte_size, status,
          events_read, imported, duplicates, skipped, skipped_reasons, error, started_at, finished_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, 'completed', ?, ?, ?, ?, ?::JSON, NULL, make_timestamp(?), current_timestamp)",
        params![
            batch_id,
            b.listener_id,
            b.source_path,
            b.file_name,
            b.content_sha256,
            b.format.as_str(),
            b.byte_size as i64,
            b.events_read as i64,
            counts.imported as i64,
            counts.duplicates as i64,
            b.skipped as i64,
            b.skipped_reasons_json,
            b.started_at_us,
        ],
    )?;
    conn.execute_batch(
        "DROP TABLE temp.import_new; DROP TABLE temp.import_matches; DELETE FROM import_stage",
    )?;
    Ok((batch_id, counts))
}

/// Cross-source matching into `temp.import_matches(position, event_id)`; parameters: listener,
/// source kind, window in microseconds. Times are bucketed by the window so the join stays a
/// hash join; each side is matched at most once, nearest first.
const MATCH_SQL: &str = "CREATE OR REPLACE TEMP TABLE import_matches AS
         WITH n AS (SELECT position, identity_key, ended_us, started_us FROM temp.import_new),
         e AS (
             SELECT event_id, identity_key, epoch_us(ended_at) AS ended_us, epoch_us(started_at) AS started_us
             FROM raw.listen_events
             WHERE listener_id = $1 AND source_kind <> $2 AND duplicate_of IS NULL
               AND identity_key IN (SELECT identity_key FROM n)
         ),
         offsets AS (SELECT unnest([-1, 0, 1]) AS o),
         cand AS (
             SELECT n.position, e.event_id, abs(n.ended_us - e.ended_us) AS diff
             FROM n CROSS JOIN offsets JOIN e
               ON e.identity_key = n.identity_key AND e.ended_us // $3 = n.ended_us // $3 + offsets.o
             WHERE abs(n.ended_us - e.ended_us) <= $3
             UNION ALL
             SELECT n.position, e.event_id, abs(n.started_us - e.started_us) AS diff
             FROM n CROSS JOIN offsets JOIN e
               ON e.identity_key = n.identity_key AND e.started_us // $3 = n.started_us // $3 + offsets.o
             WHERE (n.ended_us IS NULL OR e.ended_us IS NULL) AND abs(n.started_us - e.started_us) <= $3
         ),
         best AS (
             SELECT * FROM cand
             QUALIFY row_number() OVER (PARTITION BY position ORDER BY diff, event_id) = 1
         )
         SELECT position, event_id FROM best
         QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY diff, position) = 1";

/// Record a file that failed (its events were not kept) so the history shows the attempt.
pub fn record_failure(
    conn: &Connection,
    listener_id: i32,
    source_path: &str,
    file_name: &str,
    format: Option<SourceFormat>,
    error: &str,
    started_at_us: i64,
) -> duckdb::Result<()> {
    conn.execute(
        "INSERT INTO raw.import_batches
         (batch_id, listener_id, source_path, file_name, content_sha256, format, byte_size, status,
          error, started_at, finished_at)
         VALUES (nextval('raw.import_batch_seq'), ?, ?, ?, '', ?, 0, 'failed', ?, make_timestamp(?), current_timestamp)",
        params![listener_id, source_path, file_name, format.map(|f| f.as_str()), error, started_at_us],
    )?;
    Ok(())
}

/// The batch that already imported this exact content for this listener, if any.
pub fn already_imported(
    conn: &Connection,
    listener_id: i32,
    sha256: &str,
) -> duckdb::Result<Option<i64>> {
    let mut stmt = conn.prepare_cached(
        "SELECT min(batch_id) FROM raw.import_batches
         WHERE listener_id = ? AND content_sha256 = ? AND status = 'completed'",
    )?;
    stmt.query_row(params![listener_id, sha256], |r| r.get(0))
}
