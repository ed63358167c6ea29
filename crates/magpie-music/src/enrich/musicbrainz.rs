//! MusicBrainz (`/ws/2/`, JSON): an artist's MBID by the Spotify URL relation
//! (`/ws/2/url?resource=https://open.spotify.com/artist/{id}&inc=artist-rels`), else by a name
//! search accepted only above a score threshold and when the name matches; then the lookup
//! `/ws/2/artist/{mbid}?inc=genres+tags` with genres, tags, type, country, areas, life-span.
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
        let mut mbid = item.hints["mbid"].as_str().map(str::to_string);
        if mbid.is_none()
            && let Some(spotify_id) = item.hints["spotify_artist_id"].as_str()
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
                Err(why) => return Ok(Outcome::NotFound(why)),
            }
        }
        let mbid = mbid.expect("set above or returned");
        let path = format!("artist/{mbid}?inc=genres+tags");
        let (request, fetched) = self.get(&path).await?;
        match (fetched.status, fetched.json) {
            (200, Ok(body)) if body["id"].is_string() => {
                kept.push(Response {
                    source: Source::MusicBrainz,
                    entity: "artist".into(),
                    key: item.key.clone(),
                    request,
                    status: 200,
                    body,
                });
                Ok(Outcome::Done)
            }
            (200, Ok(_)) => Err(Stop::Failed("an artist without an `id`".into())),
            (200, Err(why)) => Err(Stop::Failed(why)),
            (404, _) => Ok(Outcome::NotFound(format!(
                "MusicBrainz has no artist {mbid}"
            ))),
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

/// The artist a `/ws/2/url` answer links to.
pub fn artist_from_url_relations(body: &Value) -> Option<String> {
    body["relations"].as_array()?.iter().find_map(|r| {
        (r["target-type"] == "artist")
            .then(|| r["artist"]["id"].as_str().map(str::to_string))
            .flatten()
    })
}

/// The search result to accept: score at least `min_score` and the name (or an alias)
/// normalising to `artist_key`; of several, the best only when it scores strictly higher.
pub fn choose_candidate(body: &Value, artist_key: &str, min_score: u64) -> Result<String, String> {
    let empty = Vec::new();
    let artists = body["artists"].as_array().unwrap_or(&empty);
    let names_match = |a: &Value| {
        let own = a["name"].as_str().map(normalise);
        let aliases = a["aliases"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|x| x["name"].as_str().map(normalise));
        own.into_iter().chain(aliases).any(|n| n == artist_key)
    };
    let mut fits: Vec<(u64, &str)> = artists
        .iter()
        .filter(|a| a["score"].as_u64().unwrap_or(0) >= min_score && names_match(a))
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
    fn the_user_agent_names_version_and_contact() {
        let ua = user_agent("me@example.org");
        assert!(
            ua.starts_with("magpie/") && ua.ends_with("( me@example.org )"),
            "{ua}"
        );
    }
}
