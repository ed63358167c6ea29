//! The application state shared by handlers.
//!
//! Pages read the marts through [`App::reader`]: a locked-down read-only DuckDB instance over
//! the snapshot published after every build ([`magpie_core::warehouse::reader`]). When a build
//! publishes a new snapshot, [`App::reload`] moves the reader to it and starts a new cache
//! generation, so every page shows one build's data. Operational records come from
//! [`crate::live`].

use std::any::Any;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use duckdb::Connection;
use magpie_core::warehouse::reader::{self, ReaderOptions, SnapshotInfo};
use magpie_core::{Config, Warehouse};
use serde::Serialize;

use crate::WebError;
use crate::auth::Auth;
use crate::cache::QueryCache;
use crate::live::Live;
use crate::pool::ConnectionPool;
use crate::render::Templates;
use crate::scope::{Listener, Scope};
use crate::security::RequestSlots;

/// Every reader connection resolves unqualified names in the marts first, so questions can
/// say `FROM fact_plays` (once the marts exist: before the first build there is no such
/// schema to put on the path).
fn search_path(root: &Connection) -> Result<Option<&'static str>, WebError> {
    let marts: bool = root.query_row(
        "SELECT count(*) > 0 FROM duckdb_schemas() WHERE schema_name = 'marts'",
        [],
        |r| r.get(0),
    )?;
    Ok(marts.then_some("SET search_path = 'marts,main'"))
}

/// Bytes of page results the query cache keeps.
const CACHE_BYTES: usize = 8 * 1024 * 1024;

/// Messages every page shows at the top (e.g. "reconnect Spotify"), from whoever runs the
/// server; asked at most every [`ALERTS_EVERY`].
pub type Alerts = Arc<dyn Fn() -> Vec<String> + Send + Sync>;
const ALERTS_EVERY: Duration = Duration::from_secs(30);

/// How long the data folder's measured size is reused.
const FOLDER_SIZE_EVERY: Duration = Duration::from_secs(10 * 60);

/// Renders the process's metrics in Prometheus' text format (set by whoever installed the
/// recorder).
pub type Metrics = Arc<dyn Fn() -> String + Send + Sync>;

/// Everything a handler needs; cheap to clone.
#[derive(Clone)]
pub struct App {
    inner: Arc<Inner>,
    /// Whose listening this request's page is about (set by [`crate::scope::Scoped`]); the
    /// default listener's when unset.
    scope: Option<Arc<Scope>>,
}

struct Inner {
    reader: ConnectionPool,
    reader_options: ReaderOptions,
    snapshot: PathBuf,
    shown: RwLock<Shown>,
    live: Live,
    cache: QueryCache,
    templates: Templates,
    tz: chrono_tz::Tz,
    default_listener: String,
    started: Instant,
    alerts: Option<Alerts>,
    alerts_shown: Mutex<Option<(Instant, Vec<String>)>>,
    data_dir: PathBuf,
    auth: Auth,
    connector: Option<Arc<dyn crate::admin::Connector>>,
    enrichment_attempts: u32,
    /// Spotify client id and secret configured (an app token needs both).
    spotify_client: (bool, bool),
    flows: Option<magpie_core::scheduler::Handle>,
    memory_budget: u64,
    metrics: Option<Metrics>,
    market: Option<magpie_market::MarketHandle>,
    limits: Limits,
    request_slots: RequestSlots,
    folder_size: Mutex<Option<(Instant, u64)>>,
    /// User SQL: its limits, the queries running (for Cancel), the models' descriptions.
    explore: magpie_core::config::ExploreConfig,
    running: crate::explore::Running,
    docs: crate::explore::Docs,
    /// Public share links: requests per client address.
    public_limiter: crate::public::Limiter,
    /// Results being computed, by cache generation and key: one computation per key, which
    /// everyone asking for the same key meanwhile waits for.
    inflight: Mutex<HashMap<(u64, String), Arc<Computing>>>,
    /// The ListenBrainz and Last.fm submission APIs' tokens, writer and now-playing reports.
    scrobbling: crate::scrobble::Scrobbling,
    /// Told when a new snapshot is published, for [`crate::warm`].
    published: Arc<tokio::sync::Notify>,
    /// Adding, renaming, merging and removing listeners.
    listener_admin: magpie_music::listeners::ListenerAdmin,
}

/// A result being computed once for everyone who asks for it meanwhile.
type Computing = tokio::sync::OnceCell<Arc<dyn Any + Send + Sync>>;

/// What the published snapshot shows: which build, its listeners, and whose pages are shown
/// when a request names nobody.
#[derive(Debug, Clone, Serialize)]
pub struct Shown {
    pub build: i64,
    pub listener_id: i32,
    pub listener_name: String,
    /// Every listener of the snapshot, by name.
    pub listeners: Vec<Listener>,
}

/// The server's request limits (`server.*`).
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_body: usize,
    pub request_timeout: Duration,
    pub header_timeout: Duration,
    pub max_connections: usize,
}

impl App {
    /// State over an open warehouse: its snapshot published if it is not current, a reader over
    /// that, the operational door to the warehouse, the listener from the configuration (or
    /// the first one there), the listener's time zone.
    pub fn new(config: &Config, warehouse: &Warehouse) -> Result<Self, WebError> {
        let snapshot = config.snapshot_path();
        if warehouse.ensure_published(&snapshot)? {
            tracing::info!(path = %snapshot.display(), "published the warehouse's snapshot for the pages");
        }
        let reader_options = ReaderOptions::from_budget(
            config.memory_budget,
            vec![config.market.dir(&config.data_dir)],
        );
        let root = reader::open_locked(&snapshot, &reader_options)?;
        let shown = shown(&root, &config.default_listener)?;
        let server = &config.server;
        Ok(Self {
            inner: Arc::new(Inner {
                reader: ConnectionPool::with_init(
                    &root,
                    reader_options.threads.clamp(2, 4),
                    server.query_timeout,
                    search_path(&root)?,
                )?,
                reader_options,
                snapshot,
                shown: RwLock::new(shown),
                live: Live::new(&warehouse.try_clone()?, server.query_timeout)?,
                cache: QueryCache::new(CACHE_BYTES),
                templates: Templates::new()?,
                tz: config.tz(),
                default_listener: config.default_listener.clone(),
                started: Instant::now(),
                alerts: None,
                alerts_shown: Mutex::new(None),
                data_dir: config.data_dir.clone(),
                auth: Auth::new(server, config.data_dir.clone()),
                connector: None,
                enrichment_attempts: config.enrichment.max_attempts,
                spotify_client: (
                    config.spotify.client_id.is_some(),
                    config.spotify.client_secret.is_some(),
                ),
                flows: None,
                memory_budget: config.memory_budget.as_u64(),
                metrics: None,
                market: None,
                limits: Limits {
                    max_body: server.max_body.as_u64() as usize,
                    request_timeout: server.request_timeout,
                    header_timeout: server.header_timeout,
                    max_connections: server.max_connections,
                },
                request_slots: RequestSlots::new(server.max_concurrent_requests),
                folder_size: Mutex::new(None),
                explore: config.explore.clone(),
                running: crate::explore::Running::default(),
                docs: crate::explore::Docs::default(),
                public_limiter: crate::public::Limiter::new(
                    config.explore.public_requests_per_minute,
                ),
                inflight: Mutex::new(HashMap::new()),
                scrobbling: crate::scrobble::Scrobbling::new(config, warehouse)?,
                published: Arc::new(tokio::sync::Notify::new()),
                listener_admin: magpie_music::listeners::ListenerAdmin::from_config(config),
            }),
            scope: None,
        })
    }

    /// This app as the page of a request about `scope`.
    pub(crate) fn scoped(&self, scope: Arc<Scope>) -> App {
        App {
            inner: Arc::clone(&self.inner),
            scope: Some(scope),
        }
    }

    /// Whose listening this request's page is about.
    pub(crate) fn scope(&self) -> Arc<Scope> {
        match &self.scope {
            Some(scope) => Arc::clone(scope),
            None => {
                let shown = self.shown();
                Arc::new(Scope::single(
                    Listener {
                        id: shown.listener_id,
                        name: shown.listener_name,
                    },
                    magpie_core::household::Viewer::Anonymous,
                ))
            }
        }
    }

    pub(crate) fn listener_admin(&self) -> &magpie_music::listeners::ListenerAdmin {
        &self.inner.listener_admin
    }

    /// After a listener was renamed (`Some(new)`) or merged away or removed (`None`) in the
    /// live warehouse: the pages show the change at once, before the next build's snapshot
    /// (the marts keep their listener ids; a merged or removed listener is no longer offered).
    pub(crate) fn listener_changed(&self, id: i32, now: Option<&str>) {
        if let Ok(mut shown) = self.inner.shown.write() {
            match now {
                Some(name) => {
                    for l in shown.listeners.iter_mut().filter(|l| l.id == id) {
                        l.name = name.to_string();
                    }
                    if shown.listener_id == id {
                        shown.listener_name = name.to_string();
                    }
                }
                None => shown.listeners.retain(|l| l.id != id),
            }
        }
        self.inner.cache.clear();
    }

    /// Every listener of the published snapshot, and the one shown when a request names
    /// nobody.
    pub(crate) fn listeners(&self) -> (Vec<Listener>, Listener) {
        let shown = self.shown();
        (
            shown.listeners,
            Listener {
                id: shown.listener_id,
                name: shown.listener_name,
            },
        )
    }

    /// Move the pages to the snapshot just published: later queries read it, running ones
    /// finish on the old one, and cached results of the old one are dropped.
    pub fn reload(&self) -> Result<(), WebError> {
        let root = reader::open_locked(&self.inner.snapshot, &self.inner.reader_options)?;
        let shown = shown(&root, &self.inner.default_listener)?;
        self.inner.reader.replace(&root, search_path(&root)?)?;
        if let Ok(mut current) = self.inner.shown.write() {
            *current = shown;
        }
        self.inner.cache.clear();
        self.inner.published.notify_one();
        Ok(())
    }

    /// Told whenever a new snapshot is published (the cache warmer waits on it).
    pub fn published(&self) -> Arc<tokio::sync::Notify> {
        Arc::clone(&self.inner.published)
    }

    /// Publish `warehouse`'s snapshot and move the pages to it (what a build's last step
    /// does; tests call it after changing the warehouse).
    pub fn publish(&self, warehouse: &Warehouse) -> Result<SnapshotInfo, WebError> {
        let info = warehouse.publish(&self.inner.snapshot)?;
        self.reload()?;
        Ok(info)
    }

    /// The snapshot the pages read.
    pub fn snapshot_path(&self) -> &std::path::Path {
        &self.inner.snapshot
    }

    /// The one-time code first-run setup needs, while no admin password is set (print it).
    pub fn setup_code(&self) -> Option<String> {
        self.inner.auth.setup.code()
    }

    /// Let the admin pages connect Spotify accounts through `connector` (call before serving).
    pub fn with_connector(mut self, connector: Arc<dyn crate::admin::Connector>) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.connector = Some(connector);
        }
        self
    }

    /// Control the scheduler from the flow pages (call before serving).
    pub fn with_flows(mut self, handle: magpie_core::scheduler::Handle) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.flows = Some(handle);
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

    /// The models' and columns' descriptions for the explorer's schema browser (call before
    /// serving).
    pub fn with_docs(mut self, docs: crate::explore::Docs) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.docs = docs;
        }
        self
    }

    pub(crate) fn explore_config(&self) -> &magpie_core::config::ExploreConfig {
        &self.inner.explore
    }

    pub(crate) fn running(&self) -> &crate::explore::Running {
        &self.inner.running
    }

    pub(crate) fn docs(&self) -> &crate::explore::Docs {
        &self.inner.docs
    }

    /// The submission APIs' state.
    pub fn scrobbling(&self) -> &crate::scrobble::Scrobbling {
        &self.inner.scrobbling
    }

    pub(crate) fn public_limiter(&self) -> &crate::public::Limiter {
        &self.inner.public_limiter
    }

    /// The saved questions and dashboards, read afresh (hand edits show at once).
    pub(crate) fn library(&self) -> magpie_questions::Library {
        magpie_questions::Library::load(&self.inner.data_dir)
    }

    /// Show `alerts` on every page (call before serving).
    pub fn with_alerts(mut self, alerts: Alerts) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.alerts = Some(alerts);
        }
        self
    }

    /// The result cache (cleared by [`App::reload`]).
    pub fn cache(&self) -> &QueryCache {
        &self.inner.cache
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

    pub(crate) fn auth(&self) -> &Auth {
        &self.inner.auth
    }

    pub(crate) fn data_dir(&self) -> &std::path::Path {
        &self.inner.data_dir
    }

    pub(crate) fn market(&self) -> Option<&magpie_market::MarketHandle> {
        self.inner.market.as_ref()
    }

    pub(crate) fn flows(&self) -> Option<&magpie_core::scheduler::Handle> {
        self.inner.flows.as_ref()
    }

    pub(crate) fn metrics(&self) -> Option<&Metrics> {
        self.inner.metrics.as_ref()
    }

    pub(crate) fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    pub(crate) fn max_body(&self) -> usize {
        self.inner.limits.max_body
    }

    pub(crate) fn request_slots(&self) -> &RequestSlots {
        &self.inner.request_slots
    }

    /// The current alerts, refreshed at most every 30 s.
    pub(crate) fn alerts(&self) -> Vec<String> {
        let Some(source) = &self.inner.alerts else {
            return Vec::new();
        };
        let Ok(mut shown) = self.inner.alerts_shown.lock() else {
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

    /// The locked-down connections to the published snapshot, for every page over the marts.
    pub(crate) fn reader(&self) -> &ConnectionPool {
        &self.inner.reader
    }

    /// The operational records of the live warehouse.
    pub(crate) fn live(&self) -> &Live {
        &self.inner.live
    }

    pub(crate) fn templates(&self) -> &Templates {
        &self.inner.templates
    }

    fn shown(&self) -> Shown {
        self.inner
            .shown
            .read()
            .map(|s| s.clone())
            .unwrap_or_else(|e| e.into_inner().clone())
    }

    /// The listener of a one-listener page; the everyone view is refused on pages it does not
    /// cover (a listener's discoveries, streaks, year, a single artist's history).
    pub(crate) fn listener_id(&self) -> Result<i32, WebError> {
        self.scope().one().map(|l| l.id).ok_or_else(|| {
            WebError::BadRequest(
                "this page shows one listener: the everyone view covers the overview, top lists, \
                 timeline, map and genres"
                    .into(),
            )
        })
    }

    /// The name of whose pages these are (`everyone` for the everyone view).
    pub(crate) fn listener_name(&self) -> String {
        self.scope().name()
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

    /// The process and host figures, with the data folder's size measured at most every
    /// [`FOLDER_SIZE_EVERY`].
    pub(crate) async fn host_status(&self) -> Result<magpie_core::host::HostStatus, WebError> {
        let app = self.clone();
        tokio::task::spawn_blocking(move || {
            let cached = app
                .inner
                .folder_size
                .lock()
                .ok()
                .and_then(|c| *c)
                .filter(|(at, _)| at.elapsed() < FOLDER_SIZE_EVERY)
                .map(|(_, bytes)| bytes);
            magpie_core::host::HostStatus::read_with_folder_size(
                &app.inner.data_dir,
                app.inner.memory_budget,
                |dir| {
                    cached.unwrap_or_else(|| {
                        let bytes = magpie_core::host::folder_size(dir);
                        if let Ok(mut slot) = app.inner.folder_size.lock() {
                            *slot = Some((Instant::now(), bytes));
                        }
                        bytes
                    })
                },
            )
        })
        .await
        .map_err(|e| WebError::Unavailable(format!("cannot read the host's figures: {e}")))
    }

    /// Memory the reading instance uses, in bytes.
    pub(crate) async fn reader_memory(&self) -> Result<i64, WebError> {
        self.inner
            .reader
            .run(|conn| {
                Ok(conn.query_row(
                    "SELECT coalesce(sum(memory_usage_bytes), 0)::BIGINT FROM duckdb_memory()",
                    [],
                    |r| r.get(0),
                )?)
            })
            .await
    }

    /// `work`'s result for `key`: from the cache, or computed on a reader connection and kept
    /// (unless a new snapshot arrived meanwhile). Requests that ask for a key while it is being
    /// computed wait for that computation instead of running the same query again; if it fails
    /// or its request goes away, the next waiter runs its own.
    pub(crate) async fn cached<T, F>(&self, key: String, work: F) -> Result<Arc<T>, WebError>
    where
        T: Serialize + Send + Sync + 'static,
        F: Fn(&Connection) -> Result<T, WebError> + Send + Sync + 'static,
    {
        if let Some(hit) = self.inner.cache.get::<T>(&key) {
            return Ok(hit);
        }
        let generation = self.inner.cache.generation();
        let slot = (generation, key);
        let cell = self
            .inner
            .inflight
            .lock()
            .map_err(|_| WebError::Internal("the result cache is poisoned".into()))?
            .entry(slot.clone())
            .or_default()
            .clone();
        let computed = cell
            .get_or_try_init(|| async {
                let value = Arc::new(self.inner.reader.run(work).await?);
                self.inner
                    .cache
                    .put(generation, slot.1.clone(), Arc::clone(&value));
                Ok::<_, WebError>(value as Arc<dyn Any + Send + Sync>)
            })
            .await
            .cloned();
        // Done (or failed with nobody else waiting): the cache has the result now.
        if let Ok(mut inflight) = self.inner.inflight.lock()
            && inflight.get(&slot).is_some_and(|c| Arc::ptr_eq(c, &cell))
            && (cell.initialized() || Arc::strong_count(&cell) == 2)
        {
            inflight.remove(&slot);
        }
        computed?
            .downcast::<T>()
            .map_err(|_| WebError::Internal(format!("`{}` holds another type", slot.1)))
    }
}

/// Which build the snapshot `conn` reads shows, and the listener whose pages these are.
fn shown(conn: &Connection, name: &str) -> Result<Shown, WebError> {
    let build = reader::latest_build(conn)?;
    let mut stmt = conn.prepare(
        "SELECT listener_id, name FROM listeners ORDER BY name = ? DESC, listener_id LIMIT 1",
    )?;
    let mut rows = stmt.query([name])?;
    let (listener_id, listener_name) = match rows.next()? {
        Some(row) => (row.get(0)?, row.get(1)?),
        None => (0, name.to_string()),
    };
    // Listeners with plays in the marts (and the default one): a name made for a token that
    // never submitted anything has no pages yet.
    let marts: bool = conn.query_row(
        "SELECT count(*) > 0 FROM information_schema.tables
         WHERE table_schema = 'marts' AND table_name = 'agg_daily_listening'",
        [],
        |r| r.get(0),
    )?;
    let with_plays = if marts {
        "SELECT DISTINCT listener_id FROM marts.agg_daily_listening"
    } else {
        "SELECT listener_id FROM listeners"
    };
    let mut stmt = conn.prepare(&format!(
        "SELECT listener_id, name FROM listeners
         WHERE listener_id = ? OR listener_id IN ({with_plays}) ORDER BY name"
    ))?;
    let listeners = stmt
        .query_map([listener_id], |r| {
            Ok(Listener {
                id: r.get(0)?,
                name: r.get(1)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Shown {
        build,
        listener_id,
        listener_name,
        listeners,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app_over(dir: &std::path::Path) -> (App, Warehouse) {
        let config = Config {
            data_dir: dir.to_path_buf(),
            ..Config::default()
        };
        let wh = Warehouse::open(dir.join("w.duckdb"), &Default::default()).unwrap();
        wh.conn()
            .execute_batch("CREATE SCHEMA marts; CREATE TABLE marts.t AS SELECT 1 AS v")
            .unwrap();
        let app = App::new(&config, &wh).unwrap();
        (app, wh)
    }

    #[tokio::test]
    async fn pages_read_through_a_connection_that_cannot_write_or_reach_files() {
        let dir = tempfile::tempdir().unwrap();
        let (app, _wh) = app_over(dir.path());
        std::fs::write(dir.path().join("secret.csv"), "a\n1\n").unwrap();
        let secret = dir.path().join("secret.csv").display().to_string();
        let v: i64 = app
            .reader()
            .run(|c| Ok(c.query_row("SELECT v FROM marts.t", [], |r| r.get(0))?))
            .await
            .unwrap();
        assert_eq!(v, 1);
        for sql in [
            "CREATE TABLE marts.x AS SELECT 1".to_string(),
            "DELETE FROM marts.t".into(),
            "SET memory_limit = '10GB'".into(),
            "SET enable_external_access = true".into(),
            format!("SELECT * FROM read_csv('{secret}')"),
            format!("COPY marts.t TO '{}/out.csv'", dir.path().display()),
        ] {
            let result = app.reader().run(move |c| Ok(c.execute_batch(&sql)?)).await;
            assert!(result.is_err(), "allowed on the pages' connection");
        }
        assert!(!dir.path().join("out.csv").exists());
    }

    #[tokio::test]
    async fn a_result_computed_while_a_build_publishes_is_not_cached() {
        let dir = tempfile::tempdir().unwrap();
        let (app, wh) = app_over(dir.path());
        let (started_tx, started_rx) = std::sync::mpsc::channel::<()>();
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let (started_tx, go_rx) = (Mutex::new(started_tx), Mutex::new(go_rx));
        let slow = {
            let app = app.clone();
            tokio::spawn(async move {
                app.cached("v".into(), move |c| {
                    let v: i64 = c.query_row("SELECT v FROM marts.t", [], |r| r.get(0))?;
                    started_tx.lock().unwrap().send(()).unwrap();
                    go_rx.lock().unwrap().recv().unwrap();
                    Ok(v)
                })
                .await
            })
        };
        // The page's query has read the old snapshot; now a build changes the marts and
        // publishes, and only then does the query finish.
        tokio::task::spawn_blocking(move || started_rx.recv().unwrap())
            .await
            .unwrap();
        wh.conn().execute_batch("UPDATE marts.t SET v = 2").unwrap();
        app.publish(&wh).unwrap();
        go_tx.send(()).unwrap();
        assert_eq!(
            *slow.await.unwrap().unwrap(),
            1,
            "that request saw the old data"
        );
        let now = app
            .cached("v".into(), |c| {
                Ok(c.query_row("SELECT v FROM marts.t", [], |r| r.get::<_, i64>(0))?)
            })
            .await
            .unwrap();
        assert_eq!(
            *now, 2,
            "the next one sees the new build, not a stale cache entry"
        );
    }

    #[tokio::test]
    async fn requests_for_a_key_being_computed_wait_for_that_one_computation() {
        let dir = tempfile::tempdir().unwrap();
        let (app, _wh) = app_over(dir.path());
        let runs = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let asks: Vec<_> = (0..10)
            .map(|_| {
                let (app, runs) = (app.clone(), Arc::clone(&runs));
                tokio::spawn(async move {
                    app.cached("slow".into(), move |c| {
                        runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(200));
                        Ok(c.query_row("SELECT v FROM marts.t", [], |r| r.get::<_, i64>(0))?)
                    })
                    .await
                })
            })
            .collect();
        for ask in asks {
            assert_eq!(*ask.await.unwrap().unwrap(), 1);
        }
        assert_eq!(
            runs.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "one query for ten asks"
        );
        assert!(
            app.inner.inflight.lock().unwrap().is_empty(),
            "nothing left in flight"
        );
    }
}
