//! The application state shared by handlers, the router, and serving with graceful shutdown.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::routing::get;
use chrono::NaiveDate;
use duckdb::Connection;
use magpie_core::{Config, Warehouse};
use tower_http::compression::CompressionLayer;
use tower_http::trace::TraceLayer;

use crate::admin;
use crate::cache::QueryCache;
use crate::pages;
use crate::pool::ReadPool;
use crate::render::Templates;
use crate::{WebError, render};

/// Results kept by the query cache.
const CACHE_ENTRIES: usize = 512;

/// Messages every page shows at the top (e.g. "reconnect Spotify"), from whoever runs the
/// server; asked at most every [`ALERTS_EVERY`].
pub type Alerts = Arc<dyn Fn() -> Vec<String> + Send + Sync>;
const ALERTS_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

/// Everything a handler needs; cheap to clone.
#[derive(Clone)]
pub struct App {
    inner: Arc<Inner>,
}

struct Inner {
    pool: ReadPool,
    cache: QueryCache,
    templates: Templates,
    tz: chrono_tz::Tz,
    listener_id: i32,
    listener_name: String,
    started: Instant,
    alerts: Option<Alerts>,
    shown: std::sync::Mutex<Option<(Instant, Vec<String>)>>,
    data_dir: std::path::PathBuf,
    sessions: crate::admin::Sessions,
    connector: Option<Arc<dyn crate::admin::Connector>>,
    enrichment_attempts: u32,
    /// Spotify client id and secret configured (an app token needs both).
    spotify_client: (bool, bool),
    flows: Option<magpie_core::scheduler::Handle>,
    /// `server.require_login`: dashboards need the login too.
    require_login: bool,
    memory_budget: u64,
    snapshot_path: Option<std::path::PathBuf>,
    metrics: Option<Metrics>,
    market: Option<magpie_market::MarketHandle>,
}

/// Renders the process's metrics in Prometheus' text format (set by whoever installed the
/// recorder).
pub type Metrics = Arc<dyn Fn() -> String + Send + Sync>;

impl App {
    /// State over an open warehouse: a pool of connections cloned from it, the listener from
    /// the configuration (or the first one in the warehouse), the listener's time zone.
    pub fn new(config: &Config, warehouse: &Warehouse) -> Result<Self, WebError> {
        let root = warehouse.try_clone()?;
        let (listener_id, listener_name) = listener(&root, &config.default_listener)?;
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        Ok(Self {
            inner: Arc::new(Inner {
                pool: ReadPool::new(&root, threads.clamp(2, 4))?,
                cache: QueryCache::new(CACHE_ENTRIES),
                templates: Templates::new()?,
                tz: config.tz(),
                listener_id,
                listener_name,
                started: Instant::now(),
                alerts: None,
                shown: std::sync::Mutex::new(None),
                data_dir: config.data_dir.clone(),
                sessions: crate::admin::Sessions::default(),
                connector: None,
                enrichment_attempts: config.enrichment.max_attempts,
                spotify_client: (
                    config.spotify.client_id.is_some(),
                    config.spotify.client_secret.is_some(),
                ),
                flows: None,
                require_login: config.server.require_login,
                memory_budget: config.memory_budget.as_u64(),
                snapshot_path: None,
                metrics: None,
                market: None,
            }),
        })
    }

    /// Let the admin pages connect Spotify accounts through `connector` (call before serving).
    pub fn with_connector(mut self, connector: Arc<dyn crate::admin::Connector>) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.connector = Some(connector);
        }
        self
    }

    pub(crate) fn connector(&self) -> Option<&dyn crate::admin::Connector> {
        self.inner.connector.as_deref()
    }

    /// `enrichment.max_attempts`: failed items below it are retried.
    pub(crate) fn enrichment_attempts(&self) -> u32 {
        self.inner.enrichment_attempts
    }

    /// Whether enrichment can get a Spotify token: an app token (id and secret), or a
    /// connected listener's.
    pub(crate) fn spotify_metadata_ready(&self) -> bool {
        match self.inner.spotify_client {
            (true, true) => true,
            (true, false) => magpie_music::spotify::TokenStore::new(&self.inner.data_dir)
                .all()
                .is_ok_and(|all| !all.is_empty()),
            _ => false,
        }
    }

    pub(crate) fn sessions(&self) -> &crate::admin::Sessions {
        &self.inner.sessions
    }

    pub(crate) fn data_dir(&self) -> &std::path::Path {
        &self.inner.data_dir
    }

    /// Control the scheduler from the flow pages (call before serving).
    pub fn with_flows(mut self, handle: magpie_core::scheduler::Handle) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.flows = Some(handle);
        }
        self
    }

    /// Where the read-only snapshot for outside tools is written (shown on the flow page).
    pub fn with_snapshot_path(mut self, path: std::path::PathBuf) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.snapshot_path = Some(path);
        }
        self
    }

    /// Serve `/metrics` with `render` (call before serving).
    pub fn with_metrics(mut self, render: Metrics) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.metrics = Some(render);
        }
        self
    }

    /// Show the market collector's status (call before serving, when it runs).
    pub fn with_market(mut self, market: magpie_market::MarketHandle) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.market = Some(market);
        }
        self
    }

    pub(crate) fn market(&self) -> Option<&magpie_market::MarketHandle> {
        self.inner.market.as_ref()
    }

    pub(crate) fn flows(&self) -> Option<&magpie_core::scheduler::Handle> {
        self.inner.flows.as_ref()
    }

    pub(crate) fn require_login(&self) -> bool {
        self.inner.require_login
    }

    pub(crate) fn memory_budget(&self) -> u64 {
        self.inner.memory_budget
    }

    pub(crate) fn snapshot_path(&self) -> Option<&std::path::Path> {
        self.inner.snapshot_path.as_deref()
    }

    pub(crate) fn metrics(&self) -> Option<&Metrics> {
        self.inner.metrics.as_ref()
    }

    /// Show `alerts` on every page (call before serving).
    pub fn with_alerts(mut self, alerts: Alerts) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.alerts = Some(alerts);
        }
        self
    }

    /// The current alerts, refreshed at most every 30 s.
    pub(crate) fn alerts(&self) -> Vec<String> {
        let Some(source) = &self.inner.alerts else {
            return Vec::new();
        };
        let Ok(mut shown) = self.inner.shown.lock() else {
            return Vec::new();
        };
        match &*shown {
            Some((at, alerts)) if at.elapsed() < ALERTS_EVERY => alerts.clone(),
            _ => {
                let alerts = source();
                *shown = Some((Instant::now(), alerts.clone()));
                alerts
            }
        }
    }

    /// The result cache: call `clear()` after a build so pages show the new marts.
    pub fn cache(&self) -> &QueryCache {
        &self.inner.cache
    }

    pub(crate) fn pool(&self) -> &ReadPool {
        &self.inner.pool
    }

    pub(crate) fn templates(&self) -> &Templates {
        &self.inner.templates
    }

    pub(crate) fn listener_id(&self) -> i32 {
        self.inner.listener_id
    }

    pub(crate) fn listener_name(&self) -> &str {
        &self.inner.listener_name
    }

    pub(crate) fn uptime_secs(&self) -> u64 {
        self.inner.started.elapsed().as_secs()
    }

    /// Today in the listener's time zone.
    pub(crate) fn today(&self) -> NaiveDate {
        chrono::Utc::now()
            .with_timezone(&self.inner.tz)
            .date_naive()
    }

    /// `work`'s result for `key`: from the cache, or computed on a pooled connection and kept.
    pub(crate) async fn cached<T, F>(&self, key: String, work: F) -> Result<Arc<T>, WebError>
    where
        T: Send + Sync + 'static,
        F: FnOnce(&Connection) -> Result<T, WebError> + Send + 'static,
    {
        if let Some(hit) = self.inner.cache.get::<T>(&key) {
            return Ok(hit);
        }
        let value = Arc::new(self.inner.pool.run(work).await?);
        self.inner.cache.put(key, Arc::clone(&value));
        Ok(value)
    }
}

/// Count every request by route and status, and time it (`magpie_http_requests_total`,
/// `magpie_http_request_duration_seconds`).
async fn count_request(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let started = Instant::now();
    let response = next.run(request).await;
    metrics::counter!(
        "magpie_http_requests_total",
        "route" => route.clone(),
        "status" => response.status().as_u16().to_string()
    )
    .increment(1);
    metrics::histogram!("magpie_http_request_duration_seconds", "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}

/// The listener whose pages these are.
fn listener(conn: &Connection, name: &str) -> Result<(i32, String), WebError> {
    let mut stmt = conn.prepare(
        "SELECT listener_id, name FROM listeners ORDER BY name = ? DESC, listener_id LIMIT 1",
    )?;
    let mut rows = stmt.query([name])?;
    match rows.next()? {
        Some(row) => Ok((row.get(0)?, row.get(1)?)),
        None => Ok((0, name.to_string())),
    }
}

/// All routes.
pub fn router(app: App) -> Router {
    Router::new()
        .route("/", get(pages::overview::page))
        .route("/top/{kind}", get(pages::top::page))
        .route("/timeline", get(pages::timeline::page))
        .route("/patterns", get(pages::patterns::page))
        .route("/genres", get(pages::genres::page))
        .route("/map", get(pages::map::page))
        .route("/artist/{id}", get(pages::detail::artist))
        .route("/album/{id}", get(pages::detail::album))
        .route("/track/{id}", get(pages::detail::track))
        .route("/discoveries", get(pages::discoveries::page))
        .route("/streaks", get(pages::streaks::page))
        .route("/year/{year}", get(pages::year::page))
        .route("/year", get(pages::year::latest))
        .route("/completeness", get(pages::completeness::page))
        .route("/enrichment", get(pages::enrichment::page))
        .route("/flows", get(pages::flows::page))
        .route(
            "/flows/{flow}/{action}",
            axum::routing::post(pages::flows::act),
        )
        .route("/runs/{id}", get(pages::flows::run))
        .route(
            "/runs/{id}/cancel",
            axum::routing::post(pages::flows::cancel),
        )
        .route("/metrics", get(pages::health::metrics))
        .route("/status", get(pages::status::page))
        .route("/market", get(pages::market::page))
        .route("/api/market/status", get(pages::market::api_status))
        .route("/login", get(admin::login_form).post(admin::login))
        .route("/logout", axum::routing::post(admin::logout))
        .route("/setup", axum::routing::post(admin::setup))
        .route("/admin/spotify", get(admin::spotify))
        .route(
            "/admin/spotify/start",
            axum::routing::post(admin::spotify_start),
        )
        .route(
            "/admin/spotify/finish",
            axum::routing::post(admin::spotify_finish),
        )
        .route("/callback", get(admin::callback))
        .route("/health", get(pages::health::live))
        .route("/health/ready", get(pages::health::ready))
        .route("/assets/{file}", get(render::asset))
        .route_layer(axum::middleware::from_fn_with_state(
            app.clone(),
            crate::admin::csrf_guard,
        ))
        .route_layer(axum::middleware::from_fn_with_state(
            app.clone(),
            crate::admin::login_guard,
        ))
        .route_layer(axum::middleware::from_fn(count_request))
        .fallback(pages::not_found)
        .layer(CompressionLayer::new())
        .layer(TraceLayer::new_for_http())
        .with_state(app)
}

/// Serve `app` on `listener` until `shutdown` completes, then finish in-flight requests.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: App,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), WebError> {
    axum::serve(listener, router(app))
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}
