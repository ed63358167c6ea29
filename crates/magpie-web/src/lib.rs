//! magpie's HTTP server: the listener's dashboards as HTML pages with server-side SVG charts,
//! the same data as JSON (`?format=json`) and CSV (`?format=csv`), and `/health`.
//!
//! Everything the browser needs (templates, CSS, a little JavaScript of our own, the world
//! map's country shapes) is embedded in the binary, so the dashboards work on a LAN without
//! internet. Pages read only the marts, through a small pool of connections to a locked-down,
//! read-only DuckDB instance over the snapshot each build publishes ([`pool`], [`App`]), and
//! each (query, range) result is cached until the next snapshot ([`cache`]). Operational pages
//! read the live warehouse only through the typed queries of [`live`].
//!
//! The trust boundary is one mechanism, not a check per handler: [`routes`] puts every route
//! in a class (public, pages, admin) whose router layer ([`auth::guard`]) enforces sessions
//! and CSRF; [`security`] adds the headers and limits every response and request gets.
//!
//! ```no_run
//! # async fn run() -> Result<(), magpie_web::WebError> {
//! let config = magpie_core::Config::default();
//! let warehouse = magpie_core::Warehouse::open(config.warehouse_path(), &Default::default())?;
//! let app = magpie_web::App::new(&config, &warehouse)?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! magpie_web::serve(listener, app, std::future::pending()).await?;
//! # Ok(()) }
//! ```

pub mod admin;
pub mod auth;
pub mod cache;
mod cards;
pub mod charts;
mod error;
pub mod explore;
mod format;
mod listen;
pub mod live;
mod pages;
pub mod pool;
mod public;
pub mod range;
mod render;
pub mod routes;
pub mod scope;
pub mod scrobble;
pub mod security;
mod server;
pub mod warm;

pub use error::WebError;
pub use listen::serve;
pub use routes::router;
pub use server::{Alerts, App, Limits, Metrics, Shown};
