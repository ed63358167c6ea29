//! `magpie serve`: the dashboards over the warehouse until Ctrl-C or SIGTERM, then a
//! checkpoint so the file is complete on disk.

use std::process::ExitCode;

use anyhow::Context;
use magpie_core::{Config, Warehouse};

use crate::cli::ServeArgs;

pub fn run(config: &Config, args: &ServeArgs) -> anyhow::Result<ExitCode> {
    let warehouse = super::open_warehouse(config)?;
    serve_warehouse(config, &warehouse, args)?;
    Ok(ExitCode::SUCCESS)
}

/// Serve `warehouse` (already open, e.g. right after the demo's build) until shutdown.
pub fn serve_warehouse(
    config: &Config,
    warehouse: &Warehouse,
    args: &ServeArgs,
) -> anyhow::Result<()> {
    let bind = args
        .bind
        .clone()
        .unwrap_or_else(|| config.server.bind.clone());
    let port = args.port.unwrap_or(config.server.port);
    // The scheduler runs on this thread with its own connection; the web server on the
    // runtime's workers, with a handle to it (run now, pause, cancel).
    let scheduler_conn = warehouse.try_clone()?;
    let flows = magpie_core::scheduler::FlowSpec::built_in(config).map_err(anyhow::Error::msg)?;
    let cache = std::cell::OnceCell::<magpie_web::App>::new();
    let tasks = super::tasks::MagpieTasks::new(config, warehouse).after_publish(|| {
        if let Some(app) = cache.get()
            && let Err(e) = app.reload()
        {
            tracing::error!(error = %e, "the pages could not move to the new snapshot");
        }
    });
    let (scheduler, handle) = magpie_core::scheduler::Scheduler::new(
        flows,
        &scheduler_conn,
        magpie_core::scheduler::SystemClock,
        tasks,
        magpie_core::scheduler::alerts::Alerter::new(config.alerts.webhooks.clone()),
    );
    // The market collector, when enabled, on its own warehouse connection.
    let collector = if config.market.enabled {
        Some(magpie_market::Collector::new(
            &config.market,
            &config.data_dir,
            warehouse.try_clone()?,
        ))
    } else {
        None
    };
    let mut app = magpie_web::App::new(config, warehouse)?;
    if let Some(collector) = &collector {
        app = app.with_market(collector.handle());
    }
    let app = app
        .with_docs(model_docs(config))
        .with_alerts(spotify_alerts(config, warehouse)?)
        .with_connector(std::sync::Arc::new(SpotifyConnector::new(config)?))
        .with_flows(handle);
    // Prometheus metrics of this process (flow runs, API calls per service and status).
    const BUCKETS: &[f64] = &[
        0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
        1800.0,
    ];
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new()
        .set_buckets(BUCKETS)
        .and_then(|b| b.install_recorder());
    let app = match recorder {
        Ok(handle) => app.with_metrics(std::sync::Arc::new(move || handle.render())),
        Err(e) => {
            tracing::warn!(error = %e, "metrics are off");
            app
        }
    };
    let _ = cache.set(app.clone());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(8)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind((bind.as_str(), port))
            .await
            .with_context(|| {
                format!("cannot listen on {bind}:{port} (is another magpie running? try --port)")
            })?;
        let local = listener.local_addr()?;
        let shown = if local.ip().is_unspecified() {
            format!("http://localhost:{}", local.port())
        } else {
            format!("http://{local}")
        };
        println!("Dashboards on {shown} (Ctrl-C to stop)");
        tracing::info!(address = %local, "serving");
        if let Some(code) = app.setup_code() {
            // Like Jupyter's token: whoever can read this terminal or the log owns the box.
            eprintln!(
                "No admin password is set yet. Set one at {shown}/login with the setup code {code}\n\
                 (or on this machine with `magpie admin password`)."
            );
            tracing::warn!(setup_code = %code, "first run: no admin password yet; the setup code is needed to set one from the web");
        }
        // One shutdown signal for both: the server stops taking requests, the scheduler
        // records a run in progress as cancelled.
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        // A statement that runs on past the grace period (a long build) is interrupted, again
        // and again, so the process ends within Docker's 10 s: the model being built rolls
        // back and keeps its previous table; the run is recorded as cancelled.
        // (Only the connection builds run on: the scheduler's own must still record the stop.)
        let interrupt = warehouse.conn().interrupt_handle();
        tokio::spawn(async move {
            shutdown_signal().await;
            let _ = stop_tx.send(true);
            tokio::time::sleep(SHUTDOWN_GRACE).await;
            tracing::warn!("still busy after the grace period: interrupting the warehouse");
            loop {
                interrupt.interrupt();
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        });
        let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|stop| *stop).await;
        };
        let market_stop = tokio_util::sync::CancellationToken::new();
        let market = collector.map(|c| tokio::spawn(c.run(market_stop.clone())));
        let mut server = tokio::spawn(magpie_web::serve(
            listener,
            app.clone(),
            stopped(stop_rx.clone()),
        ));
        tokio::select! {
            served = &mut server => served??,
            result = scheduler.run_until(stopped(stop_rx)) => {
                if let Err(e) = result {
                    tracing::error!(error = %e, "the scheduler stopped with an error");
                }
                server.await??;
            }
        }
        // The collector closes its Parquet files before the warehouse is checkpointed.
        market_stop.cancel();
        if let Some(market) = market {
            match market.await? {
                Ok(summary) => tracing::info!(
                    rows = summary.rows.quotes + summary.rows.tickers + summary.rows.trades,
                    files = summary.files,
                    "market collector stopped"
                ),
                Err(e) => tracing::error!(error = %e, "the market collector failed"),
            }
        }
        anyhow::Ok(())
    })?;
    // Stop the interrupting watchdog before the final checkpoint.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    warehouse.checkpoint()?;
    println!("stopped");
    Ok(())
}

/// The admin page's Spotify connection: the same paste-back flow as `magpie spotify connect`,
/// one pending attempt per listener.
struct SpotifyConnector {
    config: magpie_core::config::SpotifyConfig,
    store: magpie_music::spotify::TokenStore,
    http: reqwest::Client,
    pending:
        std::sync::Mutex<std::collections::HashMap<String, magpie_music::spotify::PendingConnect>>,
}

impl SpotifyConnector {
    fn new(config: &Config) -> anyhow::Result<Self> {
        Ok(Self {
            config: config.spotify.clone(),
            store: magpie_music::spotify::TokenStore::new(&config.data_dir),
            http: magpie_music::spotify::http_client()?,
            pending: Default::default(),
        })
    }
}

impl magpie_web::admin::Connector for SpotifyConnector {
    fn redirect_uri(&self) -> String {
        self.config.redirect_uri.clone()
    }

    fn listeners(&self) -> Vec<magpie_web::admin::ConnectedListener> {
        let now = chrono::Utc::now();
        self.store
            .all()
            .unwrap_or_default()
            .into_iter()
            .map(|(name, tokens)| magpie_web::admin::ConnectedListener {
                name,
                status: if tokens.reconnect_soon(now) {
                    "reconnect soon".into()
                } else {
                    "connected".into()
                },
                authorisation_ends: tokens.refresh_expires_at().date_naive().to_string(),
            })
            .collect()
    }

    fn start(&self, listener: &str) -> Result<String, String> {
        let connected = self.store.all().map_err(|e| e.to_string())?;
        if !connected.contains_key(listener)
            && connected.len() >= magpie_music::spotify::MAX_LISTENERS
        {
            return Err(format!(
                "{} listeners are connected already, the most a Spotify development-mode app serves",
                magpie_music::spotify::MAX_LISTENERS
            ));
        }
        let pending = magpie_music::spotify::start_connect(&self.config, listener)
            .map_err(|e| e.to_string())?;
        let url = pending.url.clone();
        if let Ok(mut map) = self.pending.lock() {
            map.insert(listener.to_string(), pending);
        }
        Ok(url)
    }

    fn finish<'a>(
        &'a self,
        listener: &'a str,
        pasted: &'a str,
    ) -> magpie_web::admin::BoxFuture<'a, Result<String, String>> {
        Box::pin(async move {
            let pending = self
                .pending
                .lock()
                .ok()
                .and_then(|mut map| map.remove(listener))
                .ok_or_else(|| {
                    format!("no connect attempt for `{listener}` is waiting: start again")
                })?;
            self.complete(pending, pasted).await
        })
    }

    fn finish_redirect<'a>(
        &'a self,
        url: &'a str,
    ) -> magpie_web::admin::BoxFuture<'a, Result<String, String>> {
        Box::pin(async move {
            let pending = self
                .pending
                .lock()
                .ok()
                .and_then(|mut map| {
                    let listener = map
                        .iter()
                        .find(|(_, p)| p.matches(url))
                        .map(|(l, _)| l.clone())?;
                    map.remove(&listener)
                })
                .ok_or_else(|| {
                    "no connect attempt matches this redirect: start again from /admin/spotify"
                        .to_string()
                })?;
            self.complete(pending, url).await
        })
    }
}

impl SpotifyConnector {
    /// Exchange the code and keep the tokens.
    async fn complete(
        &self,
        pending: magpie_music::spotify::PendingConnect,
        redirected: &str,
    ) -> Result<String, String> {
        let listener = pending.listener.clone();
        let tokens =
            magpie_music::spotify::finish_connect(&self.config, &self.http, pending, redirected)
                .await
                .map_err(|e| e.to_string())?;
        let ends = tokens.refresh_expires_at().date_naive();
        self.store
            .put(&listener, tokens)
            .map_err(|e| e.to_string())?;
        tracing::info!(listener, "Spotify connected from the admin page");
        Ok(format!(
            "Connected {listener}. Spotify ends this authorisation on {ends}; polling starts within a minute."
        ))
    }
}

/// The dashboards' banner about Spotify authorisations: refused ones (reconnect now) and those
/// Spotify ends within 14 days (reconnect soon).
fn spotify_alerts(config: &Config, warehouse: &Warehouse) -> anyhow::Result<magpie_web::Alerts> {
    let store = magpie_music::spotify::TokenStore::new(&config.data_dir);
    let conn = std::sync::Mutex::new(warehouse.try_clone()?);
    Ok(std::sync::Arc::new(move || {
        let Ok(listeners) = store.all() else {
            return Vec::new();
        };
        // Listeners marked "reconnect needed", with when that was written.
        let refused: std::collections::HashMap<String, i64> = conn
            .lock()
            .ok()
            .and_then(|conn| {
                let mut stmt = conn
                    .prepare(
                        "SELECT l.name, epoch_us(s.last_poll_at) FROM raw.spotify_poll_state s
                         JOIN listeners l USING (listener_id) WHERE s.status = 'reconnect_needed'",
                    )
                    .ok()?;
                let rows = stmt
                    .query_map([], |r| {
                        Ok((r.get(0)?, r.get::<_, Option<i64>>(1)?.unwrap_or(0)))
                    })
                    .ok()?;
                Some(rows.filter_map(Result::ok).collect())
            })
            .unwrap_or_default();
        let now = chrono::Utc::now();
        let mut alerts = Vec::new();
        for (name, tokens) in listeners {
            let since = refused.get(&name).copied();
            if since.is_some_and(|at| tokens.authorized_at.timestamp_micros() <= at) {
                alerts.push(format!(
                    "Spotify no longer accepts {name}'s authorisation, so their plays are not collected: \
                     reconnect under Connect Spotify (/admin/spotify) or with `magpie spotify connect --listener {name}`."
                ));
            } else if tokens.reconnect_soon(now) {
                alerts.push(format!(
                    "Spotify ends {name}'s authorisation on {}: reconnect before then under Connect Spotify \
                     (/admin/spotify) or with `magpie spotify connect --listener {name}`.",
                    tokens.refresh_expires_at().date_naive()
                ));
            }
        }
        alerts
    }))
}

/// The models' and seeds' descriptions from their `schema.yml`, for the explorer's schema
/// browser (none when the project cannot be read: the build reports that).
fn model_docs(config: &Config) -> magpie_web::explore::Docs {
    let project = match &config.models.project_dir {
        Some(dir) => magpie_models::project::Project::from_dir(dir),
        None => magpie_models::embedded::project(),
    };
    let Ok(project) = project else {
        return Default::default();
    };
    let tables = project
        .model_docs
        .values()
        .chain(project.seed_docs.values())
        .map(|doc| {
            (
                doc.name.clone(),
                magpie_web::explore::TableDoc {
                    description: doc.description.clone(),
                    columns: doc
                        .columns
                        .iter()
                        .filter_map(|c| Some((c.name.clone(), c.description.clone()?)))
                        .collect(),
                },
            )
        })
        .collect();
    magpie_web::explore::Docs { tables }
}

/// How long a stop waits for the current work before interrupting the warehouse.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(7);

/// Ctrl-C, or SIGTERM from `docker stop` / systemd.
pub(super) async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}
