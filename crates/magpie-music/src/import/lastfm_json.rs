//! Last.fm `user.getrecenttracks` pages saved as JSON (one page object, or an array of pages):
//! each page's `recenttracks.track[]` into events. A scrobble's `date.uts` is the start of the
//! play; "now playing" entries and undated scrobbles are skipped with their reason.

use serde::Deserialize;

use super::time;
use crate::event::{ContentKind, ListenEvent, Parsed, SkipReason};

#[derive(Deserialize, Default)]
pub(super) struct LfmRecentTracks {
    #[serde(default)]
    pub(super) track: OneOrMany<LfmTrack>,
}

/// Last.fm writes a lone track as an object rather than a one-element array.
#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum OneOrMany<T> {
    Many(Vec<T>),
    One(T),
}

impl<T> Default for OneOrMany<T> {
    fn default() -> Self {
        Self::Many(Vec::new())
    }
}

impl<T> OneOrMany<T> {
    pub(super) fn into_vec(self) -> Vec<T> {
        match self {
            Self::Many(v) => v,
            Self::One(t) => vec![t],
        }
    }
}

#[derive(Deserialize)]
pub(super) struct LfmTrack {
    artist: LfmText,
    #[serde(default)]
    album: Option<LfmText>,
    name: String,
    #[serde(default)]
    mbid: Option<String>,
    #[serde(default)]
    date: Option<LfmDate>,
    #[serde(default, rename = "@attr")]
    attr: Option<LfmAttr>,
}

/// `{"#text": "Name", "mbid": "…"}`, or with `extended=1`, `{"name": "Name", "mbid": "…"}`.
#[derive(Deserialize)]
struct LfmText {
    #[serde(default, rename = "#text")]
    text: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    mbid: Option<String>,
}

#[derive(Deserialize)]
struct LfmDate {
    uts: StringOrInt,
    #[serde(default, rename = "#text")]
    text: Option<String>,
}

#[derive(Deserialize)]
struct LfmAttr {
    #[serde(default)]
    nowplaying: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum StringOrInt {
    S(String),
    I(i64),
}

impl LfmTrack {
    pub(super) fn into_event(
        self,
        position: u64,
        range: &time::Plausible,
    ) -> Result<Parsed, String> {
        if self.attr.and_then(|a| a.nowplaying).as_deref() == Some("true") && self.date.is_none() {
            return Ok(Err(SkipReason::NowPlaying));
        }
        let Some(date) = self.date else {
            return Ok(Err(SkipReason::Undated));
        };
        let uts = match date.uts {
            StringOrInt::I(i) => i,
            StringOrInt::S(s) => s.trim().parse().map_err(|_| {
                format!("track {position}: `date.uts` is \"{s}\", expected unix seconds")
            })?,
        };
        // Last.fm writes 0 for a scrobble without a date.
        if uts == 0 {
            return Ok(Err(SkipReason::Undated));
        }
        let started = range
            .unix_seconds(uts)
            .map_err(|why| format!("track {position}: `date.uts` {why}"))?;
        let artist_name = self.artist.text.or(self.artist.name);
        if self.name.trim().is_empty() {
            return Ok(Err(SkipReason::NoMetadata));
        }
        Ok(Ok(ListenEvent {
            position,
            content_kind: ContentKind::Track,
            started_at_us: Some(started),
            track_name: Some(self.name),
            artist_name,
            album_name: self
                .album
                .as_ref()
                .and_then(|a| a.text.clone().or(a.name.clone()))
                .filter(|s| !s.is_empty()),
            artist_mbid: self.artist.mbid.filter(|s| !s.is_empty()),
            album_mbid: self.album.and_then(|a| a.mbid).filter(|s| !s.is_empty()),
            track_mbid: self.mbid.filter(|s| !s.is_empty()),
            source_time_text: date.text.or_else(|| Some(uts.to_string())),
            ..Default::default()
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::SourceFormat;
    use crate::import::json::tests::parse;

    #[test]
    fn lastfm_page() {
        let (f, events) = parse(
            r##"{"recenttracks":{"track":[
              {"artist":{"mbid":"","#text":"Now"},"name":"Playing","@attr":{"nowplaying":"true"}},
              {"artist":{"mbid":"a-mbid","#text":"Blackbird Blackbird"},"album":{"mbid":"","#text":"Summer Heart"},
               "name":"Hawaii","mbid":"t-mbid","date":{"uts":"1536407564","#text":"08 Sep 2018, 11:52"}}],
              "@attr":{"user":"x","page":"1"}}}"##,
        )
        .unwrap();
        assert_eq!(f, SourceFormat::LastFmJson);
        assert_eq!(events[0], Err(SkipReason::NowPlaying));
        let e = events[1].as_ref().unwrap();
        assert_eq!(e.started_at_us, Some(1_536_407_564_000_000));
        assert_eq!(e.artist_mbid.as_deref(), Some("a-mbid"));
        assert_eq!(e.album_mbid, None);
    }
}
