//! Live Spotify ingestion: connecting an account (Authorization Code with PKCE and the
//! paste-back flow a NAS needs), tokens kept with mode 0600, and polling recently-played into
//! the raw tables through the same importer as exports, so dedupe against exports holds.
//!
//! The HTTP client talks to `spotify.accounts_url` and `spotify.api_url`, which tests point at a
//! local fake server speaking Spotify's wire format: the production path is the tested path.

pub mod auth;
pub mod client;
pub mod poller;
pub mod tokens;

use std::path::PathBuf;

pub use auth::{PendingConnect, finish_connect, refresh, start_connect};
pub use poller::{PollOutcome, Poller};
pub use tokens::{TokenStore, Tokens};

/// The scope magpie asks for.
pub const SCOPE: &str = "user-read-recently-played";
/// Spotify development-mode apps serve at most five users.
pub const MAX_LISTENERS: usize = 5;

/// What can go wrong talking to Spotify.
#[derive(Debug, thiserror::Error)]
pub enum SpotifyError {
    #[error("spotify: {0}")]
    Config(String),
    #[error("the token file {path}: {reason}")]
    TokenFile { path: PathBuf, reason: String },
    #[error("{0}")]
    BadPaste(String),
    #[error("the pasted URL belongs to another connect attempt (state mismatch): start again")]
    StateMismatch,
    #[error("Spotify refused the authorisation: {0}")]
    Denied(String),
    #[error(
        "listener `{0}` must reconnect Spotify (the refresh token expired or was revoked): run `magpie spotify connect --listener {0}`"
    )]
    ReconnectNeeded(String),
    #[error("Spotify asks to wait until {0} (HTTP 429)")]
    RateLimited(chrono::DateTime<chrono::Utc>),
    #[error("Spotify answered HTTP {status}: {body}")]
    Api { status: u16, body: String },
    #[error("cannot reach Spotify: {0}")]
    Network(String),
    #[error("importing the polled plays failed: {0}")]
    Import(String),
    #[error(transparent)]
    Warehouse(#[from] magpie_core::WarehouseError),
    #[error("warehouse: {0}")]
    Db(#[from] duckdb::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// The HTTP client for Spotify: rustls, no redirects (OAuth token endpoints must not be
/// followed), bounded timeouts.
pub fn http_client() -> Result<reqwest::Client, SpotifyError> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(std::time::Duration::from_secs(10))
        .timeout(std::time::Duration::from_secs(30))
        .user_agent(concat!("magpie/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| SpotifyError::Network(e.to_string()))
}
