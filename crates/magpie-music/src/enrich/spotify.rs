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
                tokens = account::refresh(&self.config, &self.oauth_http, &listener, &tokens)
                    .await
                    .map_err(|e| e.to_string())?;
                self.tokens
                    .put(&listener, tokens.clone())
                    .map_err(|e| e.to_string())?;
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

    /// Look up one queued track, artist or album.
    pub async fn look_up(&mut self, item: &Item) -> Looked {
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
        match fetched.status {
            200 => {}
            429 => {
                let wait = Duration::from_secs(fetched.retry_after.unwrap_or(60));
                return Looked::Wait(wait, "HTTP 429 Too Many Requests".into(), vec![]);
            }
            400 | 404 => {
                return Looked::Finished(
                    Outcome::NotFound(format!("Spotify has no {} {}", item.entity, item.key)),
                    vec![],
                );
            }
            status => {
                return Looked::Finished(
                    Outcome::Failed(format!("Spotify answered HTTP {status}")),
                    vec![],
                );
            }
        }
        let body = match fetched.json {
            Ok(body) => body,
            Err(why) => return Looked::Finished(Outcome::Failed(why), vec![]),
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
}
