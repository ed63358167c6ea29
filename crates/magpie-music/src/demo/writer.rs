//! Writes demo plays as Spotify extended-history files: a JSON array per file, records in the
//! field order Spotify uses, files named `Streaming_History_Audio_<years>_<n>.json` after the
//! years they cover (written under a temporary name, renamed when complete).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Datelike};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use super::catalog::{Artist, spotify_id};

/// One record, serialised exactly like Spotify's.
#[derive(Debug, Serialize)]
pub struct Record {
    pub ts: String,
    pub platform: &'static str,
    pub ms_played: i64,
    pub conn_country: &'static str,
    /// A documentation-range address (RFC 5737): the importer must drop it, as it drops real ones.
    pub ip_addr: &'static str,
    pub master_metadata_track_name: Option<String>,
    pub master_metadata_album_artist_name: Option<String>,
    pub master_metadata_album_album_name: Option<String>,
    pub spotify_track_uri: Option<String>,
    pub episode_name: Option<String>,
    pub episode_show_name: Option<String>,
    pub spotify_episode_uri: Option<String>,
    pub audiobook_title: Option<String>,
    pub audiobook_uri: Option<String>,
    pub audiobook_chapter_uri: Option<String>,
    pub audiobook_chapter_title: Option<String>,
    pub reason_start: &'static str,
    pub reason_end: &'static str,
    pub shuffle: bool,
    pub skipped: bool,
    pub offline: bool,
    pub offline_timestamp: Option<i64>,
    pub incognito_mode: bool,
    #[serde(skip)]
    pub ended_at_ms: i64,
}

fn iso(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

const SHOWS: &[(&str, &str)] = &[
    ("The Daily Loop", "Morning briefing"),
    ("Field Notes", "Birdsong at dawn"),
    ("Late Night Physics", "Why the sky is dark"),
    ("Kitchen Table", "Bread, slowly"),
];

impl Record {
    #[allow(clippy::too_many_arguments)]
    pub fn track(
        artist: &Artist,
        album: usize,
        track: usize,
        ended_at_ms: i64,
        ms_played: i64,
        skipped: bool,
        shuffle: bool,
        incognito: bool,
        platform: &'static str,
        first_in_session: bool,
    ) -> Self {
        let a = &artist.albums[album];
        let t = &a.tracks[track];
        Self {
            ts: iso(ended_at_ms),
            platform,
            ms_played,
            conn_country: "DE",
            ip_addr: "192.0.2.44",
            master_metadata_track_name: Some(t.name.clone()),
            master_metadata_album_artist_name: Some(artist.name.clone()),
            master_metadata_album_album_name: Some(a.name.clone()),
            spotify_track_uri: Some(format!("spotify:track:{}", t.spotify_id)),
            episode_name: None,
            episode_show_name: None,
            spotify_episode_uri: None,
            audiobook_title: None,
            audiobook_uri: None,
            audiobook_chapter_uri: None,
            audiobook_chapter_title: None,
            reason_start: if first_in_session {
                "clickrow"
            } else {
                "trackdone"
            },
            reason_end: if skipped {
                "fwdbtn"
            } else if ms_played < t.duration_ms {
                "endplay"
            } else {
                "trackdone"
            },
            shuffle,
            skipped,
            offline: false,
            offline_timestamp: Some((ended_at_ms - ms_played) / 1000),
            incognito_mode: incognito,
            ended_at_ms,
        }
    }

    pub fn episode(rng: &mut ChaCha8Rng, start_ms: i64, platform: &'static str) -> Self {
        let (show, episode) = SHOWS[rng.random_range(0..SHOWS.len())];
        let ms_played = rng.random_range(120_000..2_400_000);
        let ended_at_ms = start_ms + ms_played;
        Self {
            ts: iso(ended_at_ms),
            platform,
            ms_played,
            conn_country: "DE",
            ip_addr: "192.0.2.44",
            master_metadata_track_name: None,
            master_metadata_album_artist_name: None,
            master_metadata_album_album_name: None,
            spotify_track_uri: None,
            episode_name: Some(format!("{episode} #{}", rng.random_range(1..200))),
            episode_show_name: Some(show.to_string()),
            spotify_episode_uri: Some(format!("spotify:episode:{}", spotify_id(rng))),
            audiobook_title: None,
            audiobook_uri: None,
            audiobook_chapter_uri: None,
            audiobook_chapter_title: None,
            reason_start: "clickrow",
            reason_end: "endplay",
            shuffle: false,
            skipped: false,
            offline: false,
            offline_timestamp: Some(start_ms / 1000),
            incognito_mode: false,
            ended_at_ms,
        }
    }
}

/// Streams records into numbered files.
pub struct ExportWriter {
    dir: PathBuf,
    per_file: usize,
    current: Option<OpenFile>,
    files: Vec<PathBuf>,
    bytes: u64,
}

struct OpenFile {
    temp: PathBuf,
    out: BufWriter<File>,
    records: usize,
    first_year: i32,
    last_year: i32,
}

impl ExportWriter {
    pub fn new(dir: &Path, per_file: usize) -> Self {
        Self {
            dir: dir.to_path_buf(),
            per_file: per_file.max(1),
            current: None,
            files: Vec::new(),
            bytes: 0,
        }
    }

    pub fn write(&mut self, record: &Record) -> std::io::Result<()> {
        let year = DateTime::from_timestamp_millis(record.ended_at_ms).map_or(1970, |d| d.year());
        if self.current.is_none() {
            let temp = self.dir.join(format!(".writing_{}.json", self.files.len()));
            let mut out = BufWriter::with_capacity(1 << 20, File::create(&temp)?);
            out.write_all(b"[\n")?;
            self.current = Some(OpenFile {
                temp,
                out,
                records: 0,
                first_year: year,
                last_year: year,
            });
        }
        let file = self.current.as_mut().expect("opened above");
        if file.records > 0 {
            file.out.write_all(b",\n")?;
        }
        serde_json::to_writer(&mut file.out, record)?;
        file.records += 1;
        file.last_year = year;
        if file.records >= self.per_file {
            self.close()?;
        }
        Ok(())
    }

    fn close(&mut self) -> std::io::Result<()> {
        let Some(mut file) = self.current.take() else {
            return Ok(());
        };
        file.out.write_all(b"\n]\n")?;
        let f = file.out.into_inner().map_err(|e| e.into_error())?;
        f.sync_all()?;
        self.bytes += f.metadata()?.len();
        let years = if file.first_year == file.last_year {
            file.first_year.to_string()
        } else {
            format!("{}-{}", file.first_year, file.last_year)
        };
        let name = format!("Streaming_History_Audio_{years}_{}.json", self.files.len());
        let path = self.dir.join(name);
        std::fs::rename(&file.temp, &path)?;
        self.files.push(path);
        Ok(())
    }

    /// Close the last file; returns the files written and their total size.
    pub fn finish(mut self) -> std::io::Result<(Vec<PathBuf>, u64)> {
        self.close()?;
        Ok((self.files, self.bytes))
    }
}
