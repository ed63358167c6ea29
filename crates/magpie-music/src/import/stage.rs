//! The staging table: parsed events are gathered column by column into Arrow arrays on the
//! parsing thread ([`BatchBuilder`]) and handed to DuckDB's appender a batch at a time
//! ([`StageWriter`]: one call per ~8,000 rows instead of one per value), into a
//! connection-local temporary table that only the commit reads.

use std::sync::Arc;

use duckdb::arrow::array::{
    ArrayRef, BooleanBuilder, Int64Builder, RecordBatch, StringBuilder, UInt64Builder,
};
use duckdb::arrow::datatypes::{DataType, Field, Schema};
use duckdb::{Appender, Connection};

use crate::event::ListenEvent;
use crate::identity;

/// Staging columns: the raw table's, with times as epoch microseconds. The order here is the
/// table's column order and the order of the arrays in [`Batch::finish`].
const STAGE_DDL: &str = "CREATE OR REPLACE TEMP TABLE import_stage (
    position BIGINT, content_kind VARCHAR, ended_us BIGINT, started_us BIGINT, ms_played BIGINT,
    track_name VARCHAR, artist_name VARCHAR, album_name VARCHAR, spotify_track_uri VARCHAR,
    spotify_artist_uri VARCHAR, spotify_album_uri VARCHAR, track_duration_ms BIGINT, context_uri VARCHAR,
    episode_name VARCHAR, episode_show_name VARCHAR, spotify_episode_uri VARCHAR,
    audiobook_title VARCHAR, audiobook_uri VARCHAR, audiobook_chapter_uri VARCHAR, audiobook_chapter_title VARCHAR,
    platform VARCHAR, conn_country VARCHAR, reason_start VARCHAR, reason_end VARCHAR,
    shuffle BOOLEAN, skipped BOOLEAN, offline BOOLEAN, offline_timestamp BIGINT, incognito_mode BOOLEAN,
    source_username VARCHAR, artist_mbid VARCHAR, album_mbid VARCHAR, track_mbid VARCHAR,
    source_time_text VARCHAR, extra_fields VARCHAR, identity_key VARCHAR, fingerprint UBIGINT
)";

/// Create the staging table for this connection (once per importer).
pub fn prepare(conn: &Connection) -> duckdb::Result<()> {
    conn.execute_batch(STAGE_DDL)
}

/// Rows per Arrow batch handed to the appender, unless configured (`import.batch_rows`, capped
/// by the memory budget).
pub const BATCH_ROWS: usize = 8192;

/// Turns parsed events into Arrow batches (on the parsing thread).
pub struct BatchBuilder {
    batch: Batch,
    /// Rows per batch.
    limit: usize,
    /// Events staged so far in this file.
    pub rows: u64,
}

impl Default for BatchBuilder {
    fn default() -> Self {
        Self::with_batch_rows(BATCH_ROWS)
    }
}

impl BatchBuilder {
    /// Batches of `rows` events (at least one).
    pub fn with_batch_rows(rows: usize) -> Self {
        Self {
            batch: Batch::default(),
            limit: rows.max(1),
            rows: 0,
        }
    }

    /// Add one event; `false` when it names nothing (no identity) and was not added.
    pub fn push(&mut self, e: &ListenEvent) -> bool {
        let Some(key) = identity::identity_key(e) else {
            return false;
        };
        let fingerprint = identity::fingerprint(e, &key);
        self.batch.push(e, &key, fingerprint);
        self.rows += 1;
        true
    }

    /// A full batch, ready to send.
    pub fn take_full(&mut self) -> Option<RecordBatch> {
        (self.batch.len >= self.limit).then(|| std::mem::take(&mut self.batch).finish())
    }

    /// Whatever is left.
    pub fn take_rest(&mut self) -> Option<RecordBatch> {
        (self.batch.len > 0).then(|| std::mem::take(&mut self.batch).finish())
    }
}

/// Appends batches to the staging table (on the warehouse thread).
pub struct StageWriter<'c> {
    appender: Appender<'c>,
}

impl<'c> StageWriter<'c> {
    /// Empty the staging table and start appending to it.
    pub fn new(conn: &'c Connection) -> duckdb::Result<Self> {
        conn.execute_batch("DELETE FROM import_stage")?;
        Ok(Self {
            appender: conn.appender_to_catalog_and_db("import_stage", "temp", "main")?,
        })
    }

    pub fn append(&mut self, batch: RecordBatch) -> duckdb::Result<()> {
        self.appender.append_record_batch(batch)
    }

    /// Flush, surfacing any deferred append error.
    pub fn finish(mut self) -> duckdb::Result<()> {
        self.appender.flush()
    }
}

/// Column builders for one batch.
#[derive(Default)]
struct Batch {
    len: usize,
    position: Int64Builder,
    content_kind: StringBuilder,
    ended_us: Int64Builder,
    started_us: Int64Builder,
    ms_played: Int64Builder,
    track_name: StringBuilder,
    artist_name: StringBuilder,
    album_name: StringBuilder,
    spotify_track_uri: StringBuilder,
    spotify_artist_uri: StringBuilder,
    spotify_album_uri: StringBuilder,
    track_duration_ms: Int64Builder,
    context_uri: StringBuilder,
    episode_name: StringBuilder,
    episode_show_name: StringBuilder,
    spotify_episode_uri: StringBuilder,
    audiobook_title: StringBuilder,
    audiobook_uri: StringBuilder,
    audiobook_chapter_uri: StringBuilder,
    audiobook_chapter_title: StringBuilder,
    platform: StringBuilder,
    conn_country: StringBuilder,
    reason_start: StringBuilder,
    reason_end: StringBuilder,
    shuffle: BooleanBuilder,
    skipped: BooleanBuilder,
    offline: BooleanBuilder,
    offline_timestamp: Int64Builder,
    incognito_mode: BooleanBuilder,
    source_username: StringBuilder,
    artist_mbid: StringBuilder,
    album_mbid: StringBuilder,
    track_mbid: StringBuilder,
    source_time_text: StringBuilder,
    extra_fields: StringBuilder,
    identity_key: StringBuilder,
    fingerprint: UInt64Builder,
}

impl Batch {
    fn push(&mut self, e: &ListenEvent, key: &str, fingerprint: u64) {
        self.len += 1;
        self.position.append_value(e.position as i64);
        self.content_kind.append_value(e.content_kind.as_str());
        self.ended_us.append_option(e.ended_at_us);
        self.started_us.append_option(e.started_at_us);
        self.ms_played.append_option(e.ms_played);
        self.track_name.append_option(e.track_name.as_deref());
        self.artist_name.append_option(e.artist_name.as_deref());
        self.album_name.append_option(e.album_name.as_deref());
        self.spotify_track_uri
            .append_option(e.spotify_track_uri.as_deref());
        self.spotify_artist_uri
            .append_option(e.spotify_artist_uri.as_deref());
        self.spotify_album_uri
            .append_option(e.spotify_album_uri.as_deref());
        self.track_duration_ms.append_option(e.track_duration_ms);
        self.context_uri.append_option(e.context_uri.as_deref());
        self.episode_name.append_option(e.episode_name.as_deref());
        self.episode_show_name
            .append_option(e.episode_show_name.as_deref());
        self.spotify_episode_uri
            .append_option(e.spotify_episode_uri.as_deref());
        self.audiobook_title
            .append_option(e.audiobook_title.as_deref());
        self.audiobook_uri.append_option(e.audiobook_uri.as_deref());
        self.audiobook_chapter_uri
            .append_option(e.audiobook_chapter_uri.as_deref());
        self.audiobook_chapter_title
            .append_option(e.audiobook_chapter_title.as_deref());
        self.platform.append_option(e.platform.as_deref());
        self.conn_country.append_option(e.conn_country.as_deref());
        self.reason_start.append_option(e.reason_start.as_deref());
        self.reason_end.append_option(e.reason_end.as_deref());
        self.shuffle.append_option(e.shuffle);
        self.skipped.append_option(e.skipped);
        self.offline.append_option(e.offline);
        self.offline_timestamp.append_option(e.offline_timestamp);
        self.incognito_mode.append_option(e.incognito_mode);
        self.source_username
            .append_option(e.source_username.as_deref());
        self.artist_mbid.append_option(e.artist_mbid.as_deref());
        self.album_mbid.append_option(e.album_mbid.as_deref());
        self.track_mbid.append_option(e.track_mbid.as_deref());
        self.source_time_text
            .append_option(e.source_time_text.as_deref());
        self.extra_fields.append_option(e.extra_fields.as_deref());
        self.identity_key.append_value(key);
        self.fingerprint.append_value(fingerprint);
    }

    fn finish(mut self) -> RecordBatch {
        let columns: Vec<(&str, ArrayRef)> = vec![
            ("position", Arc::new(self.position.finish())),
            ("content_kind", Arc::new(self.content_kind.finish())),
            ("ended_us", Arc::new(self.ended_us.finish())),
            ("started_us", Arc::new(self.started_us.finish())),
            ("ms_played", Arc::new(self.ms_played.finish())),
            ("track_name", Arc::new(self.track_name.finish())),
            ("artist_name", Arc::new(self.artist_name.finish())),
            ("album_name", Arc::new(self.album_name.finish())),
            (
                "spotify_track_uri",
                Arc::new(self.spotify_track_uri.finish()),
            ),
            (
                "spotify_artist_uri",
                Arc::new(self.spotify_artist_uri.finish()),
            ),
            (
                "spotify_album_uri",
                Arc::new(self.spotify_album_uri.finish()),
            ),
            (
                "track_duration_ms",
                Arc::new(self.track_duration_ms.finish()),
            ),
            ("context_uri", Arc::new(self.context_uri.finish())),
            ("episode_name", Arc::new(self.episode_name.finish())),
            (
                "episode_show_name",
                Arc::new(self.episode_show_name.finish()),
            ),
            (
                "spotify_episode_uri",
                Arc::new(self.spotify_episode_uri.finish()),
            ),
            ("audiobook_title", Arc::new(self.audiobook_title.finish())),
            ("audiobook_uri", Arc::new(self.audiobook_uri.finish())),
            (
                "audiobook_chapter_uri",
                Arc::new(self.audiobook_chapter_uri.finish()),
            ),
            (
                "audiobook_chapter_title",
                Arc::new(self.audiobook_chapter_title.finish()),
            ),
            ("platform", Arc::new(self.platform.finish())),
            ("conn_country", Arc::new(self.conn_country.finish())),
            ("reason_start", Arc::new(self.reason_start.finish())),
            ("reason_end", Arc::new(self.reason_end.finish())),
            ("shuffle", Arc::new(self.shuffle.finish())),
            ("skipped", Arc::new(self.skipped.finish())),
            ("offline", Arc::new(self.offline.finish())),
            (
                "offline_timestamp",
                Arc::new(self.offline_timestamp.finish()),
            ),
            ("incognito_mode", Arc::new(self.incognito_mode.finish())),
            ("source_username", Arc::new(self.source_username.finish())),
            ("artist_mbid", Arc::new(self.artist_mbid.finish())),
            ("album_mbid", Arc::new(self.album_mbid.finish())),
            ("track_mbid", Arc::new(self.track_mbid.finish())),
            ("source_time_text", Arc::new(self.source_time_text.finish())),
            ("extra_fields", Arc::new(self.extra_fields.finish())),
            ("identity_key", Arc::new(self.identity_key.finish())),
            ("fingerprint", Arc::new(self.fingerprint.finish())),
        ];
        let schema = Schema::new(
            columns
                .iter()
                .map(|(name, array)| Field::new(*name, array.data_type().clone(), true))
                .collect::<Vec<_>>(),
        );
        debug_assert!(
            columns
                .iter()
                .all(|(_, a)| a.data_type() != &DataType::Null)
        );
        RecordBatch::try_new(
            Arc::new(schema),
            columns.into_iter().map(|(_, a)| a).collect(),
        )
        .expect("all columns have the batch's length")
    }
}
