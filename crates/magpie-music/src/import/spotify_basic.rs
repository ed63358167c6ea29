//! Spotify's basic streaming history (`StreamingHistory_music_*`, `StreamingHistory_podcast_*`,
//! `StreamingHistory*`): one array element, already read by [`super::json`], into one event.
//! `endTime` is the end of the play to the minute, `msPlayed` its length; no URIs.

use super::json::{Record, non_empty};
use super::time;
use crate::event::{ContentKind, ListenEvent, Parsed, SkipReason};

impl Record {
    pub(super) fn into_basic(
        mut self,
        position: u64,
        range: &time::Plausible,
    ) -> Result<Parsed, String> {
        let text = self.end_time.take().unwrap_or_default();
        let ended = range.parse_field(
            "endTime",
            &text,
            time::parse_basic_end_time,
            "\"YYYY-MM-DD HH:MM\" (UTC)",
        )?;
        let ms = self.basic_ms.unwrap_or(0);
        let started = range.play_start(ended, ("endTime", &text), ("msPlayed", ms))?;
        let extra_fields = self.extra_json();
        let mut event = ListenEvent {
            position,
            ended_at_us: Some(ended),
            started_at_us: Some(started),
            ms_played: Some(ms),
            source_time_text: Some(text),
            extra_fields,
            ..Default::default()
        };
        if non_empty(&self.basic_track) {
            event.content_kind = ContentKind::Track;
            event.track_name = self.basic_track;
            event.artist_name = self.basic_artist;
        } else if non_empty(&self.basic_episode) {
            event.content_kind = ContentKind::Episode;
            event.episode_name = self.basic_episode;
            event.episode_show_name = self.podcast_name;
        } else {
            return Ok(Err(SkipReason::NoMetadata));
        }
        Ok(Ok(event))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::SourceFormat;
    use crate::import::json::tests::parse;

    #[test]
    fn basic_and_podcast_records() {
        let (f, events) = parse(
            r#"[{"endTime":"2023-09-22 20:15","artistName":"club2020","trackName":"Deszcz","msPlayed":111804},
               {"endTime":"2023-09-22 20:20","podcastName":"Show","episodeName":"Ep 1","msPlayed":5000}]"#,
        )
        .unwrap();
        assert_eq!(f, SourceFormat::BasicJson);
        assert_eq!(events[0].as_ref().unwrap().content_kind, ContentKind::Track);
        assert_eq!(
            events[1].as_ref().unwrap().content_kind,
            ContentKind::Episode
        );
    }
}
