//! Spotify Web API recently-played pages (`GET /v1/me/player/recently-played`): what the poller
//! receives, also importable from a saved file. `played_at` is when the track ended; the start is
//! that minus the track's full length (the API does not say how much was played).

use serde::Deserialize;
use serde_json::Value;

use super::error::{ParseFailure, Position};
use super::json::read;
use super::time;
use crate::event::{ContentKind, ListenEvent, Parsed, SkipReason, SourceFormat};

/// One `items[]` entry. Permissive: fields Spotify removed or may remove are optional.
#[derive(Deserialize)]
pub(super) struct ApiItem {
    #[serde(default)]
    track: Option<ApiTrack>,
    played_at: String,
    #[serde(default)]
    context: Option<ApiContext>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ApiTrack {
    name: Option<String>,
    uri: Option<String>,
    duration_ms: Option<i64>,
    explicit: Option<bool>,
    artists: Vec<ApiNamed>,
    album: Option<ApiNamed>,
    external_ids: Option<ApiExternalIds>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ApiNamed {
    name: Option<String>,
    uri: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ApiExternalIds {
    isrc: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ApiContext {
    uri: Option<String>,
}

impl ApiItem {
    pub(super) fn into_event(
        self,
        position: u64,
        range: &time::Plausible,
    ) -> Result<Parsed, String> {
        let ended = time::parse_spotify_ts(&self.played_at).ok_or_else(|| {
            format!(
                "item {position}: `played_at` is \"{}\", expected an ISO 8601 UTC time",
                self.played_at
            )
        })?;
        if !range.contains(ended) {
            return Err(format!(
                "item {position}: `played_at` is \"{}\", {}",
                self.played_at,
                range.outside()
            ));
        }
        let Some(track) = self
            .track
            .filter(|t| t.name.as_deref().is_some_and(|n| !n.is_empty()))
        else {
            return Ok(Err(SkipReason::NoMetadata));
        };
        let started = match track.duration_ms {
            None => None,
            Some(d) => {
                time::check_duration_ms(d)
                    .map_err(|why| format!("item {position}: `track.duration_ms` {why}"))?;
                Some(range.start(ended, d).ok_or_else(|| {
                    format!(
                        "item {position}: `track.duration_ms` is {d}: with `played_at` \"{}\" the \
                         track would start before 1970",
                        self.played_at
                    )
                })?)
            }
        };
        let mut extra = serde_json::Map::new();
        if track.artists.len() > 1 {
            extra.insert(
                "artists".into(),
                Value::Array(
                    track
                        .artists
                        .iter()
                        .map(|a| Value::from(a.name.clone()))
                        .collect(),
                ),
            );
        }
        if let Some(isrc) = track.external_ids.and_then(|x| x.isrc) {
            extra.insert("isrc".into(), Value::from(isrc));
        }
        if let Some(explicit) = track.explicit {
            extra.insert("explicit".into(), Value::from(explicit));
        }
        let first = track.artists.into_iter().next().unwrap_or_default();
        let album = track.album.unwrap_or_default();
        Ok(Ok(ListenEvent {
            position,
            content_kind: ContentKind::Track,
            ended_at_us: Some(ended),
            started_at_us: started,
            ms_played: None,
            track_name: track.name,
            artist_name: first.name,
            album_name: album.name,
            spotify_track_uri: track.uri,
            spotify_artist_uri: first.uri,
            spotify_album_uri: album.uri,
            track_duration_ms: track.duration_ms,
            context_uri: self.context.and_then(|c| c.uri),
            source_time_text: Some(self.played_at),
            extra_fields: (!extra.is_empty()).then(|| Value::Object(extra).to_string()),
            ..Default::default()
        }))
    }
}

/// Parse one recently-played page held in memory (what the poller receives).
pub fn parse_recently_played(body: &[u8]) -> Result<Vec<Parsed>, ParseFailure> {
    let mut out = Vec::new();
    let format = read(body, false, &mut |p| {
        out.push(p);
        Ok(())
    })?;
    if format != SourceFormat::SpotifyApiJson {
        return Err(ParseFailure::new(
            Position::default(),
            format!(
                "expected a recently-played page, found {}",
                format.describe()
            ),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recently_played_page() {
        let events = parse_recently_played(
            br#"{"items":[{"track":{"name":"Solitary Daze","uri":"spotify:track:1","duration_ms":347000,
              "artists":[{"name":"Maceo Plex","uri":"spotify:artist:3"}],"album":{"name":"Solitary Daze","uri":"spotify:album:9"}},
              "played_at":"2023-09-22T15:43:33.750Z","context":null}],
              "next":null,"cursors":{"after":"1695397413750","before":"1695396194294"},"limit":2,"href":"x"}"#,
        )
        .unwrap();
        let e = events[0].as_ref().unwrap();
        assert_eq!(e.ended_at_us, Some(1_695_397_413_750_000));
        assert_eq!(e.started_at_us, Some(1_695_397_413_750_000 - 347_000_000));
        assert_eq!(e.ms_played, None);
        assert_eq!(e.spotify_artist_uri.as_deref(), Some("spotify:artist:3"));
    }
}
