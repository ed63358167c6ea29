//! The one shape every listening source produces before it reaches the warehouse.

use std::fmt;

/// Which family of source an event came from. Events of the same family are deduplicated
/// only when identical; events of different families when they are the same listen seen twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SourceKind {
    SpotifyExtended,
    SpotifyBasic,
    LastFm,
    SpotifyApi,
    /// Listens submitted to magpie's ListenBrainz-compatible API (`/1/submit-listens`).
    ListenBrainzApi,
    /// Scrobbles submitted to magpie's Last.fm-compatible API (`/2.0/`, `track.scrobble`).
    LastFmApi,
    /// A ListenBrainz "Export listens" file.
    ListenBrainz,
    /// A Maloja export or backup.
    Maloja,
    /// Apple Music's Play Activity CSV from Apple's privacy export.
    AppleMusic,
}

impl SourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SpotifyExtended => "spotify_extended",
            Self::SpotifyBasic => "spotify_basic",
            Self::LastFm => "lastfm",
            Self::SpotifyApi => "spotify_api",
            Self::ListenBrainzApi => "listenbrainz_api",
            Self::LastFmApi => "lastfm_api",
            Self::ListenBrainz => "listenbrainz",
            Self::Maloja => "maloja",
            Self::AppleMusic => "apple_music",
        }
    }
}

/// The file layout an event was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SourceFormat {
    /// `Streaming_History_Audio_*.json` / `Streaming_History_Video_*.json`.
    ExtendedJson,
    /// The older extended layout, `endsong_*.json`.
    EndsongJson,
    /// `StreamingHistory_music_*.json` / `StreamingHistory*.json`.
    BasicJson,
    LastFmCsv,
    LastFmJson,
    /// A Web API `GET /v1/me/player/recently-played` page.
    SpotifyApiJson,
    /// The body of a ListenBrainz `POST /1/submit-listens` (listen type `single` or `import`).
    ListenBrainzSubmit,
    /// The parameters of a Last.fm `track.scrobble` call.
    LastFmScrobble,
    /// ListenBrainz's export: JSON lines (one listen per line; `listens/YYYY/M.jsonl` in the
    /// zip) or the older JSON array of listens.
    ListenBrainzJson,
    /// Maloja's export / backup: `{"maloja": {...}, "scrobbles": [...]}`.
    MalojaJson,
    /// `Apple Music Play Activity.csv`.
    AppleMusicCsv,
}

impl SourceFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ExtendedJson => "extended_json",
            Self::EndsongJson => "endsong_json",
            Self::BasicJson => "basic_json",
            Self::LastFmCsv => "lastfm_csv",
            Self::LastFmJson => "lastfm_json",
            Self::SpotifyApiJson => "api_json",
            Self::ListenBrainzSubmit => "listenbrainz_submit",
            Self::LastFmScrobble => "lastfm_scrobble",
            Self::ListenBrainzJson => "listenbrainz_json",
            Self::MalojaJson => "maloja_json",
            Self::AppleMusicCsv => "apple_music_csv",
        }
    }

    pub fn source_kind(self) -> SourceKind {
        match self {
            Self::ExtendedJson | Self::EndsongJson => SourceKind::SpotifyExtended,
            Self::BasicJson => SourceKind::SpotifyBasic,
            Self::LastFmCsv | Self::LastFmJson => SourceKind::LastFm,
            Self::SpotifyApiJson => SourceKind::SpotifyApi,
            Self::ListenBrainzSubmit => SourceKind::ListenBrainzApi,
            Self::LastFmScrobble => SourceKind::LastFmApi,
            Self::ListenBrainzJson => SourceKind::ListenBrainz,
            Self::MalojaJson => SourceKind::Maloja,
            Self::AppleMusicCsv => SourceKind::AppleMusic,
        }
    }

    /// How a person would name it.
    pub fn describe(self) -> &'static str {
        match self {
            Self::ExtendedJson => "Spotify extended streaming history",
            Self::EndsongJson => "Spotify extended streaming history (endsong layout)",
            Self::BasicJson => "Spotify basic streaming history",
            Self::LastFmCsv => "Last.fm scrobbles (CSV)",
            Self::LastFmJson => "Last.fm scrobbles (user.getrecenttracks JSON)",
            Self::SpotifyApiJson => "Spotify Web API recently-played page",
            Self::ListenBrainzSubmit => "ListenBrainz API submission",
            Self::LastFmScrobble => "Last.fm API scrobble",
            Self::ListenBrainzJson => "ListenBrainz listens export",
            Self::MalojaJson => "Maloja export",
            Self::AppleMusicCsv => "Apple Music Play Activity (CSV)",
        }
    }
}

impl fmt::Display for SourceFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What was listened to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ContentKind {
    #[default]
    Track,
    Episode,
    Audiobook,
    Video,
}

impl ContentKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Track => "track",
            Self::Episode => "episode",
            Self::Audiobook => "audiobook",
            Self::Video => "video",
        }
    }
}

/// One listening event as a source reported it. Times are microseconds since the Unix epoch,
/// UTC. Fields a source does not give are `None`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListenEvent {
    /// 1-based record number in the file (CSV: line number).
    pub position: u64,
    pub content_kind: ContentKind,
    pub ended_at_us: Option<i64>,
    pub started_at_us: Option<i64>,
    pub ms_played: Option<i64>,
    pub track_name: Option<String>,
    pub artist_name: Option<String>,
    pub album_name: Option<String>,
    pub spotify_track_uri: Option<String>,
    /// From the Web API: the (first) artist's and the album's URIs, the track's full length and
    /// what it was played from.
    pub spotify_artist_uri: Option<String>,
    pub spotify_album_uri: Option<String>,
    pub track_duration_ms: Option<i64>,
    pub context_uri: Option<String>,
    pub episode_name: Option<String>,
    pub episode_show_name: Option<String>,
    pub spotify_episode_uri: Option<String>,
    pub audiobook_title: Option<String>,
    pub audiobook_uri: Option<String>,
    pub audiobook_chapter_uri: Option<String>,
    pub audiobook_chapter_title: Option<String>,
    pub platform: Option<String>,
    pub conn_country: Option<String>,
    pub reason_start: Option<String>,
    pub reason_end: Option<String>,
    pub shuffle: Option<bool>,
    pub skipped: Option<bool>,
    pub offline: Option<bool>,
    pub offline_timestamp: Option<i64>,
    pub incognito_mode: Option<bool>,
    pub source_username: Option<String>,
    pub artist_mbid: Option<String>,
    pub album_mbid: Option<String>,
    pub track_mbid: Option<String>,
    /// The time exactly as the source wrote it.
    pub source_time_text: Option<String>,
    /// Fields this version does not know, as a JSON object (never IP or user-agent fields).
    pub extra_fields: Option<String>,
}

/// Why an event was read but not kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SkipReason {
    /// No track, episode or audiobook named (Spotify writes these for unavailable content).
    NoMetadata,
    /// A Last.fm scrobble without a date (timestamp 0).
    Undated,
    /// A Last.fm "now playing" entry: not a finished scrobble.
    NowPlaying,
}

impl SkipReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoMetadata => "no_metadata",
            Self::Undated => "undated",
            Self::NowPlaying => "now_playing",
        }
    }
}

/// Either an event to keep or the reason it is skipped.
pub type Parsed = Result<ListenEvent, SkipReason>;
