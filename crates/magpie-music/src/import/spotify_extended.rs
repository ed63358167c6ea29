//! Spotify's extended streaming history (`Streaming_History_Audio_*`, `Streaming_History_Video_*`,
//! older `endsong_*`): one array element, already read by [`super::json`], into one event. The
//! play ended at `ts` and lasted `ms_played`; IP and user-agent fields never get this far (the
//! record reader drops them).

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

use super::json::{Record, non_empty};
use super::time;
use crate::event::{ContentKind, ListenEvent, Parsed, SkipReason};

impl Record {
    pub(super) fn into_extended(
        mut self,
        position: u64,
        is_video: bool,
        range: &time::Plausible,
    ) -> Result<Parsed, String> {
        let ts = self.ts.take().unwrap_or_default();
        let ended = range.parse_field(
            "ts",
            &ts,
            time::parse_spotify_ts,
            "an ISO 8601 UTC time like 2024-08-02T16:07:53Z",
        )?;
        let ms = self.ms_played.unwrap_or(0);
        let started = range.play_start(ended, ("ts", &ts), ("ms_played", ms))?;
        let content_kind = if non_empty(&self.track_name) || non_empty(&self.spotify_track_uri) {
            ContentKind::Track
        } else if non_empty(&self.episode_name) || non_empty(&self.spotify_episode_uri) {
            if is_video {
                ContentKind::Video
            } else {
                ContentKind::Episode
            }
        } else if non_empty(&self.audiobook_title) || non_empty(&self.audiobook_uri) {
            ContentKind::Audiobook
        } else {
            return Ok(Err(SkipReason::NoMetadata));
        };
        let extra_fields = self.extra_json();
        Ok(Ok(ListenEvent {
            position,
            content_kind,
            ended_at_us: Some(ended),
            started_at_us: Some(started),
            ms_played: Some(ms),
            track_name: self.track_name,
            artist_name: self.artist_name,
            album_name: self.album_name,
            spotify_track_uri: self.spotify_track_uri,
            episode_name: self.episode_name,
            episode_show_name: self.episode_show_name,
            spotify_episode_uri: self.spotify_episode_uri,
            audiobook_title: self.audiobook_title,
            audiobook_uri: self.audiobook_uri,
            audiobook_chapter_uri: self.audiobook_chapter_uri,
            audiobook_chapter_title: self.audiobook_chapter_title,
            platform: self.platform.filter(|s| !s.is_empty()),
            conn_country: self.conn_country.filter(|s| !s.is_empty()),
            reason_start: self.reason_start,
            reason_end: self.reason_end,
            shuffle: self.shuffle,
            skipped: self.skipped,
            offline: self.offline,
            offline_timestamp: self.offline_timestamp,
            incognito_mode: self.incognito_mode,
            source_username: self.username.filter(|s| !s.is_empty()),
            source_time_text: Some(ts),
            extra_fields,
            ..Default::default()
        }))
    }
}

/// Older exports write `skipped` as 0/1 or a boolean.
pub(super) struct LooseBool(pub(super) bool);

impl<'de> Deserialize<'de> for LooseBool {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = LooseBool;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a boolean or 0/1")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<LooseBool, E> {
                Ok(LooseBool(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<LooseBool, E> {
                match v {
                    0 => Ok(LooseBool(false)),
                    1 => Ok(LooseBool(true)),
                    _ => Err(E::invalid_value(de::Unexpected::Unsigned(v), &self)),
                }
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use crate::event::SourceFormat;
    use crate::import::json::tests::parse;

    #[test]
    fn extended_record_keeps_fields_but_not_ip() {
        let (f, events) = parse(
            r#"[{"ts":"2024-08-02T16:07:53Z","platform":"android","ms_played":262974,"conn_country":"AR",
            "ip_addr":"10.0.0.1","master_metadata_track_name":"So Long, London",
            "master_metadata_album_artist_name":"Taylor Swift","master_metadata_album_album_name":"TTPD",
            "spotify_track_uri":"spotify:track:7wAkQFShJ27V8362MqevQr","episode_name":null,
            "episode_show_name":null,"spotify_episode_uri":null,"reason_start":"trackdone",
            "reason_end":"trackdone","shuffle":false,"skipped":false,"offline":false,
            "offline_timestamp":1722614450,"incognito_mode":false,"new_field":7}]"#,
        )
        .unwrap();
        assert_eq!(f, SourceFormat::ExtendedJson);
        let e = events[0].as_ref().unwrap();
        assert_eq!(e.ms_played, Some(262974));
        assert_eq!(e.ended_at_us, Some(1_722_614_873_000_000));
        assert_eq!(e.started_at_us, Some(1_722_614_873_000_000 - 262_974_000));
        assert_eq!(e.extra_fields.as_deref(), Some(r#"{"new_field":7}"#));
        assert!(!format!("{e:?}").contains("10.0.0.1"));
    }
}
