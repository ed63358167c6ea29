//! Polling recently-played for every connected listener.
//!
//! Each poll asks for the plays after the listener's cursor, stores the page as a file under
//! `DATA_DIR/spotify/<listener>/` and imports it with the export importer (one transaction,
//! content-hash idempotent, cross-source dedupe), then moves the cursor. A full page (50, the
//! most the API returns) means plays may have been missed: the window is recorded in
//! `raw.spotify_gaps` and the next poll comes sooner. A 429's `Retry-After` is stored in
//! `raw.spotify_poll_state`, so a restart keeps waiting; `invalid_grant` marks the listener
//! "reconnect needed" and the others go on.

use std::path::PathBuf;

use chrono::{DateTime, Duration, Utc};
use magpie_core::{Config, Warehouse};

use super::client::{self, FetchError};
use super::{SpotifyError, TokenStore, Tokens, refresh};
use crate::import::{ImportOptions, Importer};

/// The API returns at most this many plays.
const PAGE_LIMIT: usize = 50;

/// What one listener's poll did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PollOutcome {
    /// Polled: plays on the page, of which new in the warehouse; whether the page was full.
    Polled {
        items: usize,
        imported: u64,
        full_page: bool,
    },
    /// Not yet due (the interval, or sooner after a full page).
    NotDue(DateTime<Utc>),
    /// Waiting out a 429.
    RateLimited(DateTime<Utc>),
    /// Tokens are gone or revoked: the listener must reconnect.
    ReconnectNeeded,
}

#[derive(Debug, Default)]
struct State {
    cursor_ms: Option<i64>,
    next_poll_at: Option<DateTime<Utc>>,
    retry_after_until: Option<DateTime<Utc>>,
    failures: i32,
    status: String,
    /// When the state was last written (the poll that set the status).
    marked_at: Option<DateTime<Utc>>,
}

fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

fn from_micros(us: Option<i64>) -> Option<DateTime<Utc>> {
    us.and_then(DateTime::from_timestamp_micros)
}

/// Polls every connected listener of one warehouse.
pub struct Poller<'w> {
    warehouse: &'w Warehouse,
    config: Config,
    store: TokenStore,
    http: reqwest::Client,
}

impl<'w> Poller<'w> {
    pub fn new(warehouse: &'w Warehouse, config: &Config) -> Result<Self, SpotifyError> {
        Ok(Self {
            warehouse,
            config: config.clone(),
            store: TokenStore::new(&config.data_dir),
            http: super::http_client()?,
        })
    }

    fn load(&self, listener_id: i32) -> Result<State, SpotifyError> {
        let conn = self.warehouse.conn();
        let mut stmt = conn.prepare(
            "SELECT cursor_ms, epoch_us(next_poll_at), epoch_us(retry_after_until), failures, status,
                    epoch_us(last_poll_at)
             FROM raw.spotify_poll_state WHERE listener_id = ?",
        )?;
        let mut rows = stmt.query([listener_id])?;
        Ok(match rows.next()? {
            Some(r) => State {
                cursor_ms: r.get(0)?,
                next_poll_at: from_micros(r.get(1)?),
                retry_after_until: from_micros(r.get(2)?),
                failures: r.get(3)?,
                status: r.get(4)?,
                marked_at: from_micros(r.get(5)?),
            },
            None => State {
                status: "ok".into(),
                ..Default::default()
            },
        })
    }

    fn save(
        &self,
        listener_id: i32,
        state: &State,
        last_error: Option<&str>,
        polled: bool,
    ) -> Result<(), SpotifyError> {
        self.warehouse.conn().execute(
            "INSERT INTO raw.spotify_poll_state
                 (listener_id, cursor_ms, last_poll_at, next_poll_at, retry_after_until, failures, status, last_error)
             VALUES (?, ?, CASE WHEN ? THEN make_timestamp(?) END, make_timestamp(?), make_timestamp(?), ?, ?, ?)
             ON CONFLICT (listener_id) DO UPDATE SET
                 cursor_ms = excluded.cursor_ms,
                 last_poll_at = coalesce(excluded.last_poll_at, raw.spotify_poll_state.last_poll_at),
                 next_poll_at = excluded.next_poll_at,
                 retry_after_until = excluded.retry_after_until,
                 failures = excluded.failures,
                 status = excluded.status,
                 last_error = excluded.last_error",
            duckdb::params![
                listener_id,
                state.cursor_ms,
                polled,
                micros(Utc::now()),
                state.next_poll_at.map(micros),
                state.retry_after_until.map(micros),
                state.failures,
                state.status,
                last_error,
            ],
        )?;
        Ok(())
    }

    /// Poll every connected listener; `force` ignores the schedule (not a 429's wait).
    pub async fn poll_all(
        &self,
        force: bool,
    ) -> Result<Vec<(String, Result<PollOutcome, SpotifyError>)>, SpotifyError> {
        let mut out = Vec::new();
        for (name, tokens) in self.store.all()? {
            let outcome = self.poll_listener(&name, tokens, force).await;
            if let Err(e) = &outcome {
                tracing::warn!(listener = %name, error = %e, "Spotify poll failed");
            }
            out.push((name, outcome));
        }
        Ok(out)
    }

    /// Poll one listener.
    pub async fn poll_listener(
        &self,
        name: &str,
        tokens: Tokens,
        force: bool,
    ) -> Result<PollOutcome, SpotifyError> {
        let listener_id = self.warehouse.listener_id(name)?;
        let mut state = self.load(listener_id)?;
        let now = Utc::now();
        if state.status == "reconnect_needed" {
            // Connecting again (possibly by `magpie spotify connect` while this process runs)
            // writes tokens authorised after the failure: polling resumes.
            if state.marked_at.is_some_and(|at| tokens.authorized_at > at) {
                state.status = "ok".into();
            } else {
                return Ok(PollOutcome::ReconnectNeeded);
            }
        }
        if let Some(until) = state.retry_after_until.filter(|u| *u > now) {
            return Ok(PollOutcome::RateLimited(until));
        }
        if let Some(due) = state.next_poll_at.filter(|d| *d > now && !force) {
            return Ok(PollOutcome::NotDue(due));
        }
        if tokens.reconnect_soon(now) {
            tracing::warn!(
                listener = %name,
                expires = %tokens.refresh_expires_at().date_naive(),
                "the Spotify authorisation expires soon: run `magpie spotify connect --listener {name}`"
            );
        }
        match self.fetch(name, tokens, state.cursor_ms).await {
            Ok(page) => self.store_page(name, listener_id, &mut state, page),
            Err(SpotifyError::ReconnectNeeded(who)) => {
                state.status = "reconnect_needed".into();
                let message = SpotifyError::ReconnectNeeded(who).to_string();
                self.save(listener_id, &state, Some(&message), true)?;
                Ok(PollOutcome::ReconnectNeeded)
            }
            Err(SpotifyError::RateLimited(until)) => {
                state.retry_after_until = Some(until);
                state.next_poll_at = Some(until);
                self.save(listener_id, &state, Some("HTTP 429"), true)?;
                Ok(PollOutcome::RateLimited(until))
            }
            Err(e) => {
                state.failures += 1;
                // Failed polls back off: 1, 2, 4 … minutes, at most the poll interval.
                let wait = Duration::minutes(1 << state.failures.clamp(0, 10)).min(
                    Duration::from_std(self.config.spotify.poll_interval)
                        .unwrap_or(Duration::minutes(30)),
                );
                state.next_poll_at = Some(now + wait);
                self.save(listener_id, &state, Some(&e.to_string()), true)?;
                Err(e)
            }
        }
    }

    /// Refresh `tokens` and keep the result, unless the stored tokens changed while the refresh
    /// was on the network (another writer refreshed first, or the listener reconnected): then
    /// those are used. A listener disconnected meanwhile is not connected again.
    async fn refreshed(&self, name: &str, tokens: Tokens) -> Result<Tokens, SpotifyError> {
        let fresh = refresh(&self.config.spotify, &self.http, name, &tokens).await?;
        self.store
            .put_refreshed(name, &tokens, fresh)?
            .ok_or_else(|| SpotifyError::ReconnectNeeded(name.to_string()))
    }

    /// The page after the cursor, refreshing the access token when needed (once on a 401).
    async fn fetch(
        &self,
        name: &str,
        mut tokens: Tokens,
        cursor: Option<i64>,
    ) -> Result<client::Page, SpotifyError> {
        let spotify = &self.config.spotify;
        let mut refreshed = false;
        loop {
            if tokens.access_expired(Utc::now()) && !refreshed {
                tokens = self.refreshed(name, tokens).await?;
                refreshed = true;
            }
            match client::recently_played(
                &self.http,
                &spotify.api_url,
                tokens.access_token.expose(),
                cursor,
            )
            .await
            {
                Ok(page) => return Ok(page),
                Err(FetchError::Unauthorized) if !refreshed => {
                    tokens = self.refreshed(name, tokens).await?;
                    refreshed = true;
                }
                Err(FetchError::Unauthorized) => {
                    return Err(SpotifyError::Api {
                        status: 401,
                        body: "unauthorized after a token refresh".into(),
                    });
                }
                Err(FetchError::RateLimited(secs)) => {
                    return Err(SpotifyError::RateLimited(
                        Utc::now() + Duration::seconds(secs as i64),
                    ));
                }
                Err(FetchError::Server(status, body) | FetchError::Client(status, body)) => {
                    return Err(SpotifyError::Api { status, body });
                }
                Err(FetchError::Network(e) | FetchError::Invalid(e)) => {
                    return Err(SpotifyError::Network(e));
                }
            }
        }
    }

    /// Import a page, move the cursor, record a possible gap.
    fn store_page(
        &self,
        name: &str,
        listener_id: i32,
        state: &mut State,
        page: client::Page,
    ) -> Result<PollOutcome, SpotifyError> {
        let now = Utc::now();
        let mut imported = 0;
        if page.items > 0 {
            let dir = self.config.data_dir.join("spotify").join(name);
            std::fs::create_dir_all(&dir)?;
            let file: PathBuf =
                dir.join(format!("recently-played-{}.json", now.timestamp_millis()));
            std::fs::write(&file, &page.body)?;
            let importer = Importer::new(
                self.warehouse,
                ImportOptions {
                    listener: name.to_string(),
                    ..ImportOptions::from_config(&self.config)
                },
            )?;
            let summary = importer.import_paths(&[file], &mut |_| {});
            if !summary.all_ok() {
                let why = summary
                    .files
                    .iter()
                    .find(|f| !f.is_ok())
                    .map_or_else(String::new, |f| format!("{:?}", f.outcome));
                return Err(SpotifyError::Import(why));
            }
            imported = summary.imported();
        }
        let full_page = page.items >= PAGE_LIMIT;
        if full_page && let (Some(from), Some(to)) = (state.cursor_ms, page.oldest_ms) {
            self.warehouse.conn().execute(
                "INSERT INTO raw.spotify_gaps VALUES (?, make_timestamp(?), make_timestamp(?), make_timestamp(?), 'full_page')",
                duckdb::params![listener_id, from * 1000, to * 1000, micros(now)],
            )?;
            tracing::warn!(listener = %name, "a full page of plays: some may have been missed; polling sooner");
        }
        if let Some(after) = page.after {
            state.cursor_ms = Some(state.cursor_ms.map_or(after, |c| c.max(after)));
        }
        let interval = if full_page {
            self.config.spotify.catch_up_interval
        } else {
            self.config.spotify.poll_interval
        };
        state.next_poll_at =
            Some(now + Duration::from_std(interval).unwrap_or(Duration::minutes(30)));
        state.retry_after_until = None;
        state.failures = 0;
        self.save(listener_id, state, None, true)?;
        Ok(PollOutcome::Polled {
            items: page.items,
            imported,
            full_page,
        })
    }
}
