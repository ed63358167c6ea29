//! MusicBrainz (`/ws/2/`, JSON): an artist's MBID from a supplied one that checks out, else
//! by a supplied recording's artist credit, else by the Spotify URL relation
//! (`/ws/2/url?resource=https://open.spotify.com/artist/{id}&inc=artist-rels`), else by a name
//! search accepted only above a score threshold and when the name matches; then the lookup
//! `/ws/2/artist/{mbid}?inc=genres+tags+aliases` with genres, tags, type, country, areas,
//! life-span.
//!
//! An MBID the listening source supplied (Last.fm, ListenBrainz) is a claim, not a fact: some
//! are wrong at the source (Last.fm gives "Rihanna" the MBID of an artist named "Rhianna"). It
//! is looked up directly and kept only when MusicBrainz's artist of that id is called what was
//! played (its name or an alias, normalised as the name search compares); otherwise it is
//! distrusted, the check is kept (`entity = 'mbid_check'`, listed on the enrichment page), and
//! the artist is resolved as if no MBID had come: by the Spotify URL, else by name.
//!
//! Rules of the service: at most one request per second for the whole process (one
//! [`Limiter`] for every request made here, geography included), a User-Agent naming magpie,
//! its version and a contact, and a pause when it answers 503.

use std::time::Duration;

use magpie_core::config::EnrichmentConfig;
use serde_json::Value;

use super::http::{self, Fetched};
use super::limiter::Limiter;
use super::queue::{Item, Outcome, Queue, Response};
use super::{EnrichError, Looked, Source};
use crate::identity::normalise;

/// Why a request produced no usable answer.
#[derive(Debug, Clone)]
pub enum Stop {
    /// 503 (or 429): pause the whole service this long.
    Busy(Duration),
    /// Anything else: the item fails with this reason.
    Failed(String),
}

/// The MusicBrainz client.
pub struct MusicBrainz {
    http: reqwest::Client,
    base: String,
    timeout: Duration,
    min_score: u64,
    busy_streak: u32,
    pub limiter: Limiter,
}

/// `magpie/<version> ( contact )`, as MusicBrainz asks.
pub fn user_agent(contact: &str) -> String {
    format!(
        "magpie/{} ( {} )",
        env!("CARGO_PKG_VERSION"),
        contact.trim()
    )
}

impl MusicBrainz {
    pub fn new(config: &EnrichmentConfig) -> Result<Self, EnrichError> {
        Ok(Self {
            http: http::client(&user_agent(&config.contact), config.request_timeout)
                .map_err(EnrichError::Config)?,
            base: config.musicbrainz_url.trim_end_matches('/').to_string(),
            timeout: config.request_timeout,
            min_score: u64::from(config.search_min_score),
            busy_streak: 0,
            limiter: Limiter::per_second(config.musicbrainz_requests_per_second),
        })
    }

    /// GET `/ws/2/...` (the path and query, `fmt=json` added) behind the limiter.
    pub async fn get(&mut self, path: &str) -> Result<(String, Fetched), Stop> {
        let sep = if path.contains('?') { '&' } else { '?' };
        let request = format!("/ws/2/{path}{sep}fmt=json");
        self.limiter.ready().await;
        let fetched = http::get(
            "musicbrainz",
            &self.http,
            &format!("{}{request}", self.base),
            None,
            self.timeout,
        )
        .await
        .map_err(|e| Stop::Failed(e.to_string()))?;
        if fetched.status == 503 || fetched.status == 429 {
            self.busy_streak += 1;
            // 2, 4, 8 ... seconds, at most 5 minutes, unless the server says how long.
            let backoff = 2u64.saturating_pow(self.busy_streak.min(8)).min(300);
            let wait = fetched.retry_after.unwrap_or(backoff).max(1);
            return Err(Stop::Busy(Duration::from_secs(wait)));
        }
        self.busy_streak = 0;
        Ok((request, fetched))
    }

    /// A request whose answer is kept and reused: the cached response when there is one.
    async fn cached_get(
        &mut self,
        queue: &Queue<'_>,
        kept: &mut Vec<Response>,
        entity: &str,
        key: &str,
        path: &str,
    ) -> Result<(u16, Value), Stop> {
        if let Ok(Some(hit)) = queue.cached(Source::MusicBrainz, entity, key) {
            return Ok(hit);
        }
        let (request, fetched) = self.get(path).await?;
        let body = match (fetched.status, fetched.json) {
            (200, Ok(body)) => body,
            (200, Err(why)) => return Err(Stop::Failed(why)),
            (404, _) => Value::Null,
            (status, _) => {
                return Err(Stop::Failed(format!("MusicBrainz answered HTTP {status}")));
            }
        };
        kept.push(Response {
            source: Source::MusicBrainz,
            entity: entity.into(),
            key: key.into(),
            request,
            status: fetched.status,
            body: body.clone(),
        });
        Ok((fetched.status, body))
    }

    /// Find and look up one artist (`item.key` is magpie's artist key; hints may hold an
    /// `mbid` or a `spotify_artist_id`).
    pub async fn look_up_artist(&mut self, queue: &Queue<'_>, item: &Item) -> Looked {
        let mut kept = Vec::new();
        match self.artist(queue, item, &mut kept).await {
            Ok(outcome) => Looked::Finished(outcome, kept),
            Err(Stop::Busy(wait)) => {
                Looked::Wait(wait, "MusicBrainz is busy (HTTP 503)".into(), kept)
            }
            Err(Stop::Failed(why)) => Looked::Finished(Outcome::Failed(why), kept),
        }
    }

    async fn artist(
        &mut self,
        queue: &Queue<'_>,
        item: &Item,
        kept: &mut Vec<Response>,
    ) -> Result<Outcome, Stop> {
        let name = item.label.clone().unwrap_or_else(|| item.key.clone());
        // A supplied MBID (Last.fm, ListenBrainz) is a claim: used only when MusicBrainz's
        // artist of that id is called what was played.
        let mut claimed = None;
        let mut distrust = None;
        if let Some(mbid) = item.hints["mbid"].as_str() {
            let found = self.look_up(mbid).await?;
            let check = check_claim(mbid, &name, &item.key, found.as_ref().map(|f| &f.1));
            let trusted = check.trusted;
            kept.push(check.response(&item.key));
            if trusted {
                let (request, body) = found.expect("a trusted claim was found");
                kept.push(artist_response(item, request, body));
                return Ok(Outcome::Done);
            }
            distrust = check.reason;
            claimed = found;
        }
        let not_found = |why: String| match &distrust {
            Some(distrusted) => Outcome::NotFound(format!("{distrusted}; {why}")),
            None => Outcome::NotFound(why),
        };
        let mut mbid = None;
        // A recording MBID the plays carried: its artist credit that is called what was
        // played (so it needs no trust of its own).
        if let Some(recording) = item.hints["recording_mbid"].as_str() {
            let path = format!("recording/{recording}?inc=artist-credits");
            let (status, body) = self
                .cached_get(queue, kept, "recording", recording, &path)
                .await?;
            if status == 200 {
                mbid = credited_artist(&body, &item.key);
            }
        }
        if let Some(spotify_id) = item.hints["spotify_artist_id"].as_str()
            && mbid.is_none()
        {
            let path = format!(
                "url?resource={}&inc=artist-rels",
                urlencode(&format!("https://open.spotify.com/artist/{spotify_id}"))
            );
            let (status, body) = self
                .cached_get(queue, kept, "url", spotify_id, &path)
                .await?;
            if status == 200 {
                mbid = artist_from_url_relations(&body);
            }
        }
        if mbid.is_none() {
            let path = format!(
                "artist?query={}&limit=10",
                urlencode(&format!("artist:\"{}\"", lucene_escape(&name)))
            );
            let (_, body) = self
                .cached_get(queue, kept, "search", &item.key, &path)
                .await?;
            match choose_candidate(&body, &item.key, self.min_score) {
                Ok(id) => mbid = Some(id),
                Err(why) => return Ok(not_found(why)),
            }
        }
        let mbid = mbid.expect("set above or returned");
        // Spotify's link may name the claimed artist after all: its answer is at hand.
        let found = match claimed.filter(|(_, body)| body["id"] == mbid.as_str()) {
            Some(found) => Some(found),
            None => self.look_up(&mbid).await?,
        };
        match found {
            Some((request, body)) => {
                kept.push(artist_response(item, request, body));
                Ok(Outcome::Done)
            }
            None => Ok(not_found(format!("MusicBrainz has no artist {mbid}"))),
        }
    }

    /// `/ws/2/artist/{mbid}` with genres, tags and aliases: the request and the artist, or
    /// `None` when MusicBrainz has no such artist.
    async fn look_up(&mut self, mbid: &str) -> Result<Option<(String, Value)>, Stop> {
        let path = format!("artist/{mbid}?inc=genres+tags+aliases");
        let (request, fetched) = self.get(&path).await?;
        match (fetched.status, fetched.json) {
            (200, Ok(body)) if body["id"].is_string() => Ok(Some((request, body))),
            (200, Ok(_)) => Err(Stop::Failed("an artist without an `id`".into())),
            (200, Err(why)) => Err(Stop::Failed(why)),
            (404, _) => Ok(None),
            (status, _) => Err(Stop::Failed(format!("MusicBrainz answered HTTP {status}"))),
        }
    }

    /// An area with its relations (cached), for walking up to a country.
    pub async fn area(
        &mut self,
        queue: &Queue<'_>,
        kept: &mut Vec<Response>,
        id: &str,
    ) -> Result<Value, Stop> {
        let path = format!("area/{id}?inc=area-rels");
        self.cached_get(queue, kept, "area", id, &path)
            .await
            .map(|(_, body)| body)
    }
}

/// The artist of a `/ws/2/recording/{mbid}?inc=artist-credits` answer that is called
/// `artist_key` (a recording may credit several).
pub fn credited_artist(recording: &Value, artist_key: &str) -> Option<String> {
    recording["artist-credit"]
        .as_array()?
        .iter()
        .map(|credit| &credit["artist"])
        .find(|artist| is_named(artist, artist_key))
        .and_then(|artist| artist["id"].as_str().map(String::from))
}

/// The artist a `/ws/2/url` answer links to.
pub fn artist_from_url_relations(body: &Value) -> Option<String> {
    body["relations"].as_array()?.iter().find_map(|r| {
        (r["target-type"] == "artist")
            .then(|| r["artist"]["id"].as_str().map(str::to_string))
            .flatten()
    })
}

/// The artist lookup kept for an item (what the models read).
fn artist_response(item: &Item, request: String, body: Value) -> Response {
    Response {
        source: Source::MusicBrainz,
        entity: "artist".into(),
        key: item.key.clone(),
        request,
        status: 200,
        body,
    }
}

/// Whether a MusicBrainz artist (a lookup or a search result) is called `artist_key`: its
/// name or one of its aliases, normalised as magpie's artist keys are.
pub fn is_named(artist: &Value, artist_key: &str) -> bool {
    let own = artist["name"].as_str().map(normalise);
    let aliases = artist["aliases"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|x| x["name"].as_str().map(normalise));
    own.into_iter().chain(aliases).any(|n| n == artist_key)
}

/// What the check of a supplied MBID found: kept as a derived response
/// (`entity = 'mbid_check'`), which the enrichment page lists when `trusted` is false.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimCheck {
    pub claimed_mbid: String,
    pub played_name: String,
    /// MusicBrainz's name for the claimed MBID; `None` when it has no such artist.
    pub musicbrainz_name: Option<String>,
    pub trusted: bool,
    /// Why the claim was not trusted.
    pub reason: Option<String>,
}

impl ClaimCheck {
    fn response(&self, artist_key: &str) -> Response {
        Response {
            source: Source::MusicBrainz,
            entity: "mbid_check".into(),
            key: artist_key.into(),
            request: "derived".into(),
            status: 0,
            body: serde_json::json!({
                "claimed_mbid": self.claimed_mbid,
                "played_name": self.played_name,
                "musicbrainz_name": self.musicbrainz_name,
                "trusted": self.trusted,
                "reason": self.reason,
            }),
        }
    }
}

/// Check a supplied MBID against what was played: `found` is MusicBrainz's artist of that id
/// (`None`: no such artist); trusted when its name or an alias normalises to `artist_key`.
pub fn check_claim(
    mbid: &str,
    played: &str,
    artist_key: &str,
    found: Option<&Value>,
) -> ClaimCheck {
    let musicbrainz_name = found.and_then(|b| b["name"].as_str()).map(str::to_string);
    let trusted = found.is_some_and(|b| is_named(b, artist_key));
    let reason = match (&musicbrainz_name, trusted) {
        (_, true) => None,
        (Some(theirs), false) => Some(format!(
            "the supplied MBID {mbid} is MusicBrainz's `{theirs}`, not `{played}`"
        )),
        (None, false) => Some(format!(
            "MusicBrainz has no artist {mbid} (the supplied MBID)"
        )),
    };
    ClaimCheck {
        claimed_mbid: mbid.to_string(),
        played_name: played.to_string(),
        musicbrainz_name,
        trusted,
        reason,
    }
}

/// The search result to accept: score at least `min_score` and the name (or an alias)
/// normalising to `artist_key`; of several, the best only when it scores strictly higher.
pub fn choose_candidate(body: &Value, artist_key: &str, min_score: u64) -> Result<String, String> {
    let empty = Vec::new();
    let artists = body["artists"].as_array().unwrap_or(&empty);
    let mut fits: Vec<(u64, &str)> = artists
        .iter()
        .filter(|a| a["score"].as_u64().unwrap_or(0) >= min_score && is_named(a, artist_key))
        .filter_map(|a| Some((a["score"].as_u64()?, a["id"].as_str()?)))
        .collect();
    fits.sort_by_key(|f| std::cmp::Reverse(f.0));
    match fits.as_slice() {
        [] => Err(format!(
            "no MusicBrainz artist named `{artist_key}` scores {min_score} or more"
        )),
        [(_, id)] => Ok((*id).to_string()),
        [(best, id), (next, _), ..] if best > next => Ok((*id).to_string()),
        several => Err(format!(
            "ambiguous: {} MusicBrainz artists named `{artist_key}` score {} ({})",
            several.iter().filter(|f| f.0 == several[0].0).count(),
            several[0].0,
            several
                .iter()
                .filter(|f| f.0 == several[0].0)
                .map(|f| f.1)
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// Lucene's special characters, escaped for a quoted phrase.
fn lucene_escape(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"")
}

fn urlencode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_url_relation_names_the_artist() {
        let body = json!({"relations": [
            {"target-type": "release", "release": {"id": "r"}},
            {"target-type": "artist", "artist": {"id": "5b11f4ce", "name": "Nirvana"}}
        ]});
        assert_eq!(
            artist_from_url_relations(&body).as_deref(),
            Some("5b11f4ce")
        );
        assert_eq!(artist_from_url_relations(&json!({"relations": []})), None);
    }

    #[test]
    fn candidates_need_score_and_name_and_a_clear_winner() {
        let body = json!({"artists": [
            {"id": "a", "name": "Nirvana", "score": 100},
            {"id": "b", "name": "Nirvana", "score": 100},
            {"id": "c", "name": "Nirvana UK", "score": 95}
        ]});
        let err = choose_candidate(&body, "nirvana", 90).unwrap_err();
        assert!(err.starts_with("ambiguous: 2"), "{err}");
        let body = json!({"artists": [
            {"id": "a", "name": "Sigur Rós", "score": 100},
            {"id": "b", "name": "Sigur Ros Tribute", "score": 70}
        ]});
        assert_eq!(choose_candidate(&body, "sigur ros", 90).unwrap(), "a");
        let body = json!({"artists": [{"id": "a", "name": "Someone Else", "score": 100}]});
        assert!(choose_candidate(&body, "sigur ros", 90).is_err());
        let body = json!({"artists": [{"id": "a", "name": "X", "score": 80,
            "aliases": [{"name": "Sigur Rós"}]}]});
        assert!(
            choose_candidate(&body, "sigur ros", 90).is_err(),
            "below the threshold"
        );
        assert_eq!(
            choose_candidate(&body, "sigur ros", 80).unwrap(),
            "a",
            "alias"
        );
    }

    #[test]
    fn a_supplied_mbid_is_trusted_when_its_name_or_an_alias_is_the_played_one() {
        let rhianna = json!({"id": "db36a76f", "name": "Rhianna", "aliases": []});
        let check = check_claim("db36a76f", "Rihanna", "rihanna", Some(&rhianna));
        assert!(!check.trusted);
        assert_eq!(check.musicbrainz_name.as_deref(), Some("Rhianna"));
        assert_eq!(
            check.reason.as_deref(),
            Some("the supplied MBID db36a76f is MusicBrainz's `Rhianna`, not `Rihanna`")
        );
        let rihanna = json!({"id": "73e5e69d", "name": "Rihanna",
            "aliases": [{"name": "Robyn Rihanna Fenty"}]});
        assert!(check_claim("73e5e69d", "RIHANNA", "rihanna", Some(&rihanna)).trusted);
        let by_alias = check_claim(
            "73e5e69d",
            "Robyn Rihanna Fenty",
            "robyn rihanna fenty",
            Some(&rihanna),
        );
        assert!(by_alias.trusted && by_alias.reason.is_none());
        let missing = check_claim("00000000", "Rihanna", "rihanna", None);
        assert!(!missing.trusted && missing.musicbrainz_name.is_none());
        assert!(missing.reason.unwrap().contains("has no artist 00000000"));
    }

    #[test]
    fn the_user_agent_names_version_and_contact() {
        let ua = user_agent("me@example.org");
        assert!(
            ua.starts_with("magpie/") && ua.ends_with("( me@example.org )"),
            "{ua}"
        );
    }
}
