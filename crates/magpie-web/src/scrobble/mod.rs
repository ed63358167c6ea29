//! The submission APIs players and scrobblers speak: ListenBrainz's under `/1/`
//! ([`listenbrainz`]) and Last.fm's at `/2.0/` ([`lastfm`]). They sit outside the session and
//! CSRF layer (a scrobbler has no cookie; its token or signed session key is the credential,
//! so a page elsewhere cannot forge a submission) and hand what they accept to the same store
//! the importers use ([`magpie_music::submit`]).

pub mod lastfm;
pub mod listenbrainz;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use magpie_core::{Config, Warehouse};
use magpie_music::event::{ListenEvent, SourceFormat};
use magpie_music::submit::now_playing::{NowPlaying, Playing};
use magpie_music::submit::tokens::{TokenInfo, TokenStore};
use magpie_music::submit::{Provenance, SubmitError, Submitted, Submitter};

use crate::WebError;

/// Around the submission APIs: an error answered before a handler ran (a body over the limit,
/// a timeout) is given in the protocol's own shape, not as plain text.
pub async fn protocol_errors(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let lastfm = request.uri().path().starts_with("/2.0");
    let response = next.run(request).await;
    let status = response.status();
    let plain = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|v| v.starts_with("text/plain"));
    if !(status.is_client_error() || status.is_server_error()) || !plain {
        return response;
    }
    if lastfm {
        lastfm::refusal(status)
    } else {
        listenbrainz::refusal(status)
    }
}

/// How long a Last.fm request token waits for the admin's approval.
const REQUEST_TOKEN_LIFE: Duration = Duration::from_secs(3600);

/// What the submission APIs share: the tokens, the writer, the now-playing reports, and the
/// Last.fm desktop flow's request tokens.
pub struct Scrobbling {
    pub tokens: TokenStore,
    submitter: Arc<Submitter>,
    pub now_playing: NowPlaying,
    /// Request token → when made, and the listener once the admin approved it.
    requests: Mutex<HashMap<String, (Instant, Option<String>)>>,
}

impl Scrobbling {
    pub fn new(config: &Config, warehouse: &Warehouse) -> Result<Self, WebError> {
        Ok(Self {
            tokens: TokenStore::new(&config.data_dir),
            submitter: Arc::new(Submitter::new(warehouse, config)?),
            now_playing: NowPlaying::default(),
            requests: Mutex::new(HashMap::new()),
        })
    }

    /// Store `events` for the token's listener, off the async workers.
    pub async fn submit(
        &self,
        token: &TokenInfo,
        format: SourceFormat,
        events: Vec<ListenEvent>,
        client: Option<String>,
        body: Vec<u8>,
    ) -> Result<Submitted, SubmitError> {
        let submitter = self.submitter.clone();
        let listener = token.listener.clone();
        let provenance = Provenance {
            token_id: token.id.clone(),
            client,
        };
        for e in &events {
            if let (Some(a), Some(t)) = (&e.artist_name, &e.track_name) {
                self.now_playing.played(&listener, a, t);
            }
        }
        let started = Instant::now();
        let done = tokio::task::spawn_blocking(move || {
            submitter.submit(&listener, format, &events, &provenance, &body)
        })
        .await
        .unwrap_or_else(|e| Err(SubmitError::Task(e.to_string())));
        metrics::histogram!("magpie_submission_seconds", "format" => format.as_str())
            .record(started.elapsed().as_secs_f64());
        if let Ok(s) = &done {
            metrics::counter!("magpie_submitted_listens_total", "format" => format.as_str())
                .increment(s.imported);
            tracing::debug!(
                token = %token.id,
                format = format.as_str(),
                imported = s.imported,
                duplicates = s.duplicates,
                "listens submitted"
            );
        }
        done
    }

    /// Record a now-playing report from `token`'s listener.
    pub fn playing(&self, token: &TokenInfo, event: &ListenEvent, client: Option<String>) {
        let now = chrono::Utc::now();
        self.now_playing.set(Playing {
            listener: token.listener.clone(),
            artist: event.artist_name.clone().unwrap_or_default(),
            track: event.track_name.clone().unwrap_or_default(),
            album: event.album_name.clone(),
            duration_ms: event.track_duration_ms,
            client,
            since: now,
            until: now,
        });
    }

    /// Run a read on the writer's connection, off the async workers.
    pub async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Submitter) -> Result<T, SubmitError> + Send + 'static,
    ) -> Result<T, WebError> {
        let submitter = self.submitter.clone();
        tokio::task::spawn_blocking(move || f(&submitter))
            .await
            .map_err(|e| WebError::Internal(e.to_string()))?
            .map_err(|e| WebError::Internal(e.to_string()))
    }

    /// A new request token for the desktop flow.
    pub fn new_request(&self) -> String {
        let token = magpie_music::submit::tokens::random_hex32();
        let mut requests = self.requests.lock().unwrap_or_else(PoisonError::into_inner);
        requests.retain(|_, (made, _)| made.elapsed() < REQUEST_TOKEN_LIFE);
        requests.insert(token.clone(), (Instant::now(), None));
        token
    }

    /// The admin approves a request token for `listener`; false when it is unknown or old.
    pub fn approve(&self, request: &str, listener: &str) -> bool {
        let mut requests = self.requests.lock().unwrap_or_else(PoisonError::into_inner);
        match requests.get_mut(request) {
            Some((made, approved)) if made.elapsed() < REQUEST_TOKEN_LIFE => {
                *approved = Some(listener.to_string());
                true
            }
            _ => false,
        }
    }

    /// Whether a request token is waiting for approval.
    pub fn pending(&self, request: &str) -> bool {
        let requests = self.requests.lock().unwrap_or_else(PoisonError::into_inner);
        requests
            .get(request)
            .is_some_and(|(made, _)| made.elapsed() < REQUEST_TOKEN_LIFE)
    }

    /// Take an approved request token (once): its listener. `Err(true)` when it exists but
    /// is not approved yet, `Err(false)` when it is unknown or expired.
    pub fn take_approved(&self, request: &str) -> Result<String, bool> {
        let mut requests = self.requests.lock().unwrap_or_else(PoisonError::into_inner);
        match requests.get(request) {
            Some((made, _)) if made.elapsed() >= REQUEST_TOKEN_LIFE => {
                requests.remove(request);
                Err(false)
            }
            Some((_, None)) => Err(true),
            Some((_, Some(_))) => Ok(requests
                .remove(request)
                .and_then(|(_, l)| l)
                .unwrap_or_default()),
            None => Err(false),
        }
    }
}
