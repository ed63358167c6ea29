//! What each listener is playing now, as players report it (`playing_now` listens and
//! `track.updateNowPlaying`). Not a play and never stored: it lives in memory until the track's
//! length has passed (or ten minutes, when the length is unknown) or the next report replaces
//! it.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

/// How long a report without a track length counts as playing.
pub const DEFAULT_PLAYING: Duration = Duration::from_secs(600);

/// A track being played.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Playing {
    pub listener: String,
    pub artist: String,
    pub track: String,
    pub album: Option<String>,
    pub duration_ms: Option<i64>,
    /// The client that reported it.
    pub client: Option<String>,
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
}

/// Now-playing reports by listener.
#[derive(Debug, Default)]
pub struct NowPlaying {
    by_listener: Mutex<HashMap<String, Playing>>,
}

impl NowPlaying {
    /// Record a report; it ends after the track's length (or [`DEFAULT_PLAYING`]).
    pub fn set(&self, mut playing: Playing) {
        let length = playing
            .duration_ms
            .and_then(|ms| u64::try_from(ms).ok())
            .map_or(DEFAULT_PLAYING, Duration::from_millis);
        playing.until =
            playing.since + chrono::Duration::from_std(length).unwrap_or(chrono::Duration::zero());
        self.lock().insert(playing.listener.clone(), playing);
    }

    /// What `listener` is playing at `now`, if anything.
    pub fn get(&self, listener: &str, now: DateTime<Utc>) -> Option<Playing> {
        let mut map = self.lock();
        match map.get(listener) {
            Some(p) if p.until > now => Some(p.clone()),
            Some(_) => {
                map.remove(listener);
                None
            }
            None => None,
        }
    }

    /// Everyone playing at `now`, by listener name.
    pub fn all(&self, now: DateTime<Utc>) -> Vec<Playing> {
        let mut map = self.lock();
        map.retain(|_, p| p.until > now);
        let mut all: Vec<Playing> = map.values().cloned().collect();
        all.sort_by(|a, b| a.listener.cmp(&b.listener));
        all
    }

    /// A played listen ends the listener's now-playing report when it is the same track.
    pub fn played(&self, listener: &str, artist: &str, track: &str) {
        let mut map = self.lock();
        if map.get(listener).is_some_and(|p| {
            p.artist.eq_ignore_ascii_case(artist) && p.track.eq_ignore_ascii_case(track)
        }) {
            map.remove(listener);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Playing>> {
        self.by_listener
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn playing(listener: &str, since: DateTime<Utc>, duration_ms: Option<i64>) -> Playing {
        Playing {
            listener: listener.into(),
            artist: "A".into(),
            track: "T".into(),
            album: None,
            duration_ms,
            client: None,
            since,
            until: since,
        }
    }

    #[test]
    fn a_report_lasts_the_tracks_length_or_ten_minutes() {
        let now = Utc::now();
        let np = NowPlaying::default();
        np.set(playing("a", now, Some(180_000)));
        np.set(playing("b", now, None));
        assert!(np.get("a", now + chrono::Duration::seconds(179)).is_some());
        assert!(np.get("a", now + chrono::Duration::seconds(181)).is_none());
        assert!(np.get("b", now + chrono::Duration::seconds(599)).is_some());
        assert_eq!(np.all(now + chrono::Duration::seconds(601)).len(), 0);
        np.set(playing("a", now, None));
        np.played("a", "a", "t");
        assert!(np.get("a", now).is_none());
    }
}
