//! The web server's trust boundary: who is logged in, what a request may do, and how the
//! first admin password is set.
//!
//! - [`sessions`]: the admin session cookie and its CSRF token.
//! - [`guard`]: the router layers every route sits behind. State-changing routes and admin
//!   pages are nested under one layer that requires a session and, for anything but GET/HEAD,
//!   the session's CSRF token (form field `csrf` or header `X-CSRF-Token`, never the query
//!   string); pages need a session only with `server.require_login`; a POST from a foreign
//!   origin is refused before any handler runs; `/metrics` follows `server.metrics`.
//! - [`login`]: the login, logout and first-run pages, with argon2 run off the async workers,
//!   one at a time (each verification takes ~19 MiB).
//! - [`setup`]: the one-time code that first-run setup needs, printed at start.
//! - [`throttle`] and [`client_ip`]: failed logins counted per client address, the address
//!   read from `X-Forwarded-For` only behind a trusted proxy.

pub mod client_ip;
pub mod guard;
pub mod login;
pub mod sessions;
pub mod setup;
pub mod throttle;

use std::path::PathBuf;
use std::sync::Arc;

use axum_extra::extract::CookieJar;
use ipnet::IpNet;
use magpie_core::Secret;
use magpie_core::config::{MetricsAccess, ServerConfig};
use tokio::sync::Semaphore;

pub use sessions::{Session, Sessions};

/// Everything the boundary needs: sessions, throttling, the setup code, settings.
pub struct Auth {
    pub sessions: Sessions,
    pub throttle: throttle::Throttle,
    pub setup: setup::SetupCode,
    /// Password hashing and checking, one at a time.
    pub hashing: Arc<Semaphore>,
    pub data_dir: PathBuf,
    pub trusted_proxies: Vec<IpNet>,
    /// Cookies are `Secure` (magpie is reached over https).
    pub https: bool,
    pub require_login: bool,
    pub metrics: MetricsAccess,
    pub metrics_token: Option<Secret>,
    /// The origin people reach magpie at (`server.public_url`), accepted beside the request's
    /// own host.
    pub public_origin: Option<String>,
}

impl Auth {
    pub fn new(server: &ServerConfig, data_dir: PathBuf) -> Self {
        Self {
            sessions: Sessions::default(),
            throttle: throttle::Throttle::default(),
            setup: setup::SetupCode::new(&data_dir),
            hashing: Arc::new(Semaphore::new(1)),
            data_dir,
            trusted_proxies: server.trusted_proxy_nets(),
            https: server.https(),
            require_login: server.require_login,
            metrics: server.metrics_access(),
            metrics_token: server.metrics_token.clone(),
            public_origin: server
                .public_url
                .as_deref()
                .and_then(|u| url::Url::parse(u).ok())
                .map(|u| u.origin().ascii_serialization()),
        }
    }

    /// The live session of a request's cookie.
    pub fn session(&self, jar: &CookieJar) -> Option<Session> {
        self.sessions.from_jar(jar)
    }
}
