//! When are two events the same listen? An event's identity key is its normalised
//! "artist|track" (or "show|episode", "book|chapter"): every source names what was played,
//! while only some give Spotify URIs, so names are what can match an export against Last.fm.
//! The fingerprint adds the time and duration, and equal fingerprints are exact duplicates.
//!
//! ```
//! use magpie_music::identity::normalise;
//! assert_eq!(normalise("  Beyoncé & JAY-Z "), "beyonce and jay z");
//! assert_eq!(normalise("Blinding Lights (feat. X) - 2020 Remaster"), "blinding lights");
//! ```

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

use crate::event::{ContentKind, ListenEvent};

/// Lower-case, accents stripped, `&` read as "and", punctuation folded to single spaces, and
/// decorations that differ between services ("(feat. …)", "- Remastered 2011") dropped.
pub fn normalise(text: &str) -> String {
    let stripped = strip_decorations(text);
    if stripped.is_ascii() {
        // Most names: no decomposition needed.
        fold(stripped.chars(), stripped.len())
    } else {
        fold(
            stripped.nfkd().filter(|c| !is_combining_mark(*c)),
            stripped.len(),
        )
    }
}

fn fold(chars: impl Iterator<Item = char>, capacity: usize) -> String {
    let mut out = String::with_capacity(capacity);
    let mut pending_space = false;
    for c in chars {
        if c == '&' {
            push_word(&mut out, "and", &mut pending_space);
            continue;
        }
        if c.is_alphanumeric() {
            if pending_space && !out.is_empty() {
                out.push(' ');
            }
            pending_space = false;
            out.extend(c.to_lowercase());
        } else if c != '\'' && c != '\u{2019}' {
            pending_space = true;
        }
    }
    out
}

fn push_word(out: &mut String, word: &str, pending_space: &mut bool) {
    if !out.is_empty() {
        out.push(' ');
    }
    out.push_str(word);
    *pending_space = true;
}

/// Drop "(feat. …)", "[with …]" and " - … Remaster(ed) …" style suffixes.
fn strip_decorations(text: &str) -> &str {
    let bytes = text.as_bytes();
    if memchr::memchr3(b'(', b'[', b'-', bytes).is_none() {
        return text.trim();
    }
    let lower = text.to_ascii_lowercase();
    let mut end = text.len();
    for marker in [" (feat", " [feat", " (ft.", " [ft.", " (with ", " [with "] {
        if let Some(i) = lower.find(marker) {
            end = end.min(i);
        }
    }
    if let Some(i) = lower.rfind(" - ") {
        let tail = &lower[i..];
        if tail.contains("remaster") || tail.contains("feat") {
            end = end.min(i);
        }
    }
    let cut = text[..end].trim();
    if cut.is_empty() { text.trim() } else { cut }
}

/// The identity key of an event, or `None` when it names nothing.
pub fn identity_key(event: &ListenEvent) -> Option<String> {
    let pair = |a: &Option<String>, b: &Option<String>| match (a.as_deref(), b.as_deref()) {
        (_, Some(b)) if !b.trim().is_empty() => Some(format!(
            "{}|{}",
            normalise(a.as_deref().unwrap_or("")),
            normalise(b)
        )),
        _ => None,
    };
    match event.content_kind {
        ContentKind::Track => {
            pair(&event.artist_name, &event.track_name).or_else(|| event.spotify_track_uri.clone())
        }
        ContentKind::Episode | ContentKind::Video => {
            pair(&event.episode_show_name, &event.episode_name)
                .or_else(|| event.spotify_episode_uri.clone())
        }
        ContentKind::Audiobook => pair(&event.audiobook_title, &event.audiobook_chapter_title)
            .or_else(|| event.audiobook_uri.clone()),
    }
}

/// A stable 64-bit FNV-1a hash over the fields that make an event itself: equal fingerprints
/// within one source family are one event recorded twice.
pub fn fingerprint(event: &ListenEvent, identity: &str) -> u64 {
    let mut h = Fnv::new();
    h.write(event.content_kind.as_str().as_bytes());
    h.write(identity.as_bytes());
    h.write(
        event
            .spotify_track_uri
            .as_deref()
            .or(event.spotify_episode_uri.as_deref())
            .unwrap_or("")
            .as_bytes(),
    );
    h.write(&event.ended_at_us.unwrap_or(i64::MIN).to_le_bytes());
    h.write(&event.started_at_us.unwrap_or(i64::MIN).to_le_bytes());
    h.write(&event.ms_played.unwrap_or(-1).to_le_bytes());
    h.finish()
}

/// FNV-1a, 64 bit: tiny, stable across Rust versions (unlike `DefaultHasher`), good enough for
/// telling events apart.
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
        // Field separator, so ("ab","c") and ("a","bc") differ.
        self.0 ^= 0xff;
        self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_from_different_services_meet() {
        assert_eq!(normalise("Sigur Rós"), normalise("Sigur Ros"));
        assert_eq!(
            normalise("Simon & Garfunkel"),
            normalise("Simon and Garfunkel")
        );
        assert_eq!(
            normalise("Here Comes The Sun - Remastered 2009"),
            normalise("Here Comes the Sun")
        );
        assert_eq!(
            normalise("Don't Stop Me Now"),
            normalise("Dont Stop Me Now")
        );
        assert_eq!(normalise("Señorita (feat. Someone)"), "senorita");
    }

    #[test]
    fn different_tracks_stay_apart() {
        assert_ne!(normalise("Song - Live"), normalise("Song"));
        assert_ne!(normalise("Song (Remix)"), normalise("Song"));
        assert_eq!(normalise("(feat. Only)"), "feat only");
    }

    #[test]
    fn identity_and_fingerprint() {
        let e = ListenEvent {
            artist_name: Some("Taylor Swift".into()),
            track_name: Some("So Long, London".into()),
            ended_at_us: Some(1),
            ms_played: Some(1000),
            ..Default::default()
        };
        let key = identity_key(&e).unwrap();
        assert_eq!(key, "taylor swift|so long london");
        let mut later = e.clone();
        later.ended_at_us = Some(2);
        assert_ne!(fingerprint(&e, &key), fingerprint(&later, &key));
        assert_eq!(fingerprint(&e, &key), fingerprint(&e.clone(), &key));
        let nothing = ListenEvent::default();
        assert_eq!(identity_key(&nothing), None);
    }
}
