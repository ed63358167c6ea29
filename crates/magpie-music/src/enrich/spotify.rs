//! Spotify metadata: one request per item (`GET /v1/tracks/{id}`, `/v1/artists/{id}`,
//! `/v1/albums/{id}`; the multi-id endpoints were removed in 2026) and, when configured, a
//! track search for plays that came without a URI.
//!
//! The token is an app token (Client Credentials) when the client secret is configured, else
//! a connected listener's token (refreshed as the poller does).

use std::time::{Duration, Instant};

use chrono::Utc;
use magpie_core::Config;

use super::http::{self, Fetched};
use super::limiter::Limiter;
use super::queue::{Item, Outcome, Response};
use super::{EnrichError, Looked, Source};
use crate::spotify::{self as account, TokenStore};

/// The Spotify metadata client.
pub struct SpotifyMeta {
    http: reqwest::Client,
    oauth_http: reqwest::Client,
    config: magpie_core::config::SpotifyConfig,
    tokens: TokenStore,
    token: Option<(String, Instant)>,
    timeout: Duration,
    pub limiter: Limiter,
}

impl SpotifyMeta {
    /// `None` when magpie has no way to get a token (no client secret, no connected listener):
    /// the Spotify part of the queue then waits.
    pub fn new(config: &Config) -> Result<Option<Self>, EnrichError> {
        let spotify = &config.spotify;
        let tokens = TokenStore::new(&config.data_dir);
        let has_app = spotify.client_id.is_some() && spotify.client_secret.is_some();
        let has_listener = spotify.client_id.is_some() && !tokens.all()?.is_empty();
        if !has_app && !has_listener {
            return Ok(None);
        }
        let timeout = config.enrichment.request_timeout;
        let http = http::client(concat!("magpie/", env!("CARGO_PKG_VERSION")), timeout)
            .map_err(EnrichError::Config)?;
        Ok(Some(Self {
            http,
            oauth_http: account::http_client()?,
            config: spotify.clone(),
            tokens,
            token: None,
            timeout,
            limiter: Limiter::per_second(config.enrichment.spotify_requests_per_second),
        }))
    }

    async fn access_token(&mut self) -> Result<String, String> {
        if let Some((token, until)) = &self.token
            && Instant::now() < *until
        {
            return Ok(token.clone());
        }
        let (token, lasts) = if self.config.client_secret.is_some() {
            let (token, lasts) = account::auth::app_token(&self.config, &self.oauth_http)
                .await
                .map_err(|e| e.to_string())?;
            (token.expose().to_string(), lasts)
        } else {
            let all = self.tokens.all().map_err(|e| e.to_string())?;
            let (listener, mut tokens) = all
                .into_iter()
                .next()
                .ok_or("no connected Spotify account")?;
            if tokens.access_expired(Utc::now()) {
                let fresh = account::refresh(&self.config, &self.oauth_http, &listener, &tokens)
                    .await
                    .map_err(|e| e.to_string())?;
                // Another writer's newer tokens win; a listener disconnected meanwhile stays so.
                tokens = self
                    .tokens
                    .put_refreshed(&listener, &tokens, fresh)
                    .map_err(|e| e.to_string())?
                    .ok_or("the Spotify account was disconnected")?;
            }
            let lasts = (tokens.expires_at - Utc::now())
                .to_std()
                .unwrap_or(Duration::from_secs(60));
            (tokens.access_token.expose().to_string(), lasts)
        };
        let margin = Duration::from_secs(60).min(lasts / 2);
        self.token = Some((token.clone(), Instant::now() + lasts - margin));
        Ok(token)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.config.api_url.trim_end_matches('/'))
    }

    /// GET a path with the token, refreshing it once on 401.
    async fn get(&mut self, path: &str) -> Result<Fetched, String> {
        for _ in 0..2 {
            let token = self.access_token().await?;
            self.limiter.ready().await;
            let fetched = http::get(
                "spotify",
                &self.http,
                &self.url(path),
                Some(&token),
                self.timeout,
            )
            .await
            .map_err(|e| e.to_string())?;
            if fetched.status == 401 {
                self.token = None;
                continue;
            }
            return Ok(fetched);
        }
        Err("Spotify refused the token (HTTP 401) twice".into())
    }

    /// Look up one queued track, artist or album, or search for a track without a URI.
    pub async fn look_up(&mut self, item: &Item) -> Looked {
        if item.entity == "search" {
            return self.search(item).await;
        }
        let path = match item.entity.as_str() {
            "track" | "artist" | "album" => format!("/v1/{}s/{}", item.entity, item.key),
            other => {
                return Looked::Finished(
                    Outcome::Failed(format!("unknown Spotify entity `{other}`")),
                    vec![],
                );
            }
        };
        let fetched = match self.get(&path).await {
            Ok(f) => f,
            Err(e) => return Looked::Finished(Outcome::Failed(e), vec![]),
        };
        let not_found = format!("Spotify has no {} {}", item.entity, item.key);
        let body = match answer(fetched, Some(not_found)) {
            Ok(body) => body,
            Err(looked) => return looked,
        };
        if body["id"].as_str().is_none() {
            return Looked::Finished(
                Outcome::Failed(format!("a {} without an `id`", item.entity)),
                vec![],
            );
        }
        let response = Response {
            source: Source::Spotify,
            entity: item.entity.clone(),
            key: item.key.clone(),
            request: path,
            status: 200,
            body,
        };
        Looked::Finished(Outcome::Done, vec![response])
    }

    /// Search for a track the plays named without a URI (`item.key` is its identity key,
    /// "artist|track" normalised); the first result whose artist and title normalise to the
    /// same key is the match. The search response and the match are both kept.
    async fn search(&mut self, item: &Item) -> Looked {
        let (Some(artist), Some(track)) =
            (item.hints["artist"].as_str(), item.hints["track"].as_str())
        else {
            return Looked::Finished(
                Outcome::Failed("a search without artist and track".into()),
                vec![],
            );
        };
        let query = format!(
            "track:\"{}\" artist:\"{}\"",
            track.replace('"', ""),
            artist.replace('"', "")
        );
        let path = format!(
            "/v1/search?type=track&limit=10&q={}",
            url::form_urlencoded::byte_serialize(query.as_bytes()).collect::<String>()
        );
        let fetched = match self.get(&path).await {
            Ok(f) => f,
            Err(e) => return Looked::Finished(Outcome::Failed(e), vec![]),
        };
        let body = match answer(fetched, None) {
            Ok(body) => body,
            Err(looked) => return looked,
        };
        let matched = body["tracks"]["items"].as_array().and_then(|items| {
            items.iter().find_map(|t| {
                let artists = t["artists"].as_array()?;
                let same_artist = artists.iter().any(|a| {
                    a["name"]
                        .as_str()
                        .map(crate::identity::normalise)
                        .as_deref()
                        == item.key.split('|').next()
                });
                let same_title = t["name"]
                    .as_str()
                    .map(crate::identity::normalise)
                    .as_deref()
                    == item.key.split('|').nth(1);
                (same_artist && same_title)
                    .then(|| t["id"].as_str().map(str::to_string))
                    .flatten()
            })
        });
        let mut kept = vec![Response {
            source: Source::Spotify,
            entity: "search".into(),
            key: item.key.clone(),
            request: path,
            status: 200,
            body,
        }];
        match matched {
            Some(id) => {
                kept.push(Response {
                    source: Source::Spotify,
                    entity: "search_match".into(),
                    key: item.key.clone(),
                    request: "derived".into(),
                    status: 0,
                    body: serde_json::json!({ "spotify_track_id": id }),
                });
                Looked::Finished(Outcome::Done, kept)
            }
            None => Looked::Finished(
                Outcome::NotFound(format!("no Spotify track matches {artist} - {track}")),
                kept,
            ),
        }
    }
}

/// A response's JSON body, or what the item comes to: 429 waits, 400/404 is "not found" when
/// `not_found` says what was missing, any other status or a malformed body fails.
fn answer(fetched: Fetched, not_found: Option<String>) -> Result<serde_json::Value, Looked> {
    let finished = |outcome| Looked::Finished(outcome, vec![]);
    match (fetched.status, not_found) {
        (200, _) => fetched.json.map_err(|why| finished(Outcome::Failed(why))),
        (429, _) => {
            let wait = Duration::from_secs(fetched.retry_after.unwrap_or(60));
            Err(Looked::Wait(
                wait,
                "HTTP 429 Too Many Requests".into(),
                vec![],
            ))
        }
        (400 | 404, Some(what)) => Err(finished(Outcome::NotFound(what))),
        (status, _) => Err(finished(Outcome::Failed(format!(
            "Spotify answered HTTP {status}"
        )))),
    }
}
