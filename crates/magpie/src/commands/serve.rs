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
    let app =
        magpie_web::App::new(config, warehouse)?.with_alerts(spotify_alerts(config, warehouse)?);
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
        // The server runs on the runtime's workers; this thread polls Spotify and rebuilds
        // the marts (blocking DuckDB work) without holding up a request.
        let mut server = tokio::spawn(magpie_web::serve(listener, app.clone(), shutdown_signal()));
        tokio::select! {
            served = &mut server => served??,
            () = poll_loop(config, warehouse, &app) => {}
        }
        anyhow::Ok(())
    })?;
    warehouse.checkpoint()?;
    println!("stopped");
    Ok(())
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
                     run `magpie spotify connect --listener {name}` to reconnect."
                ));
            } else if tokens.reconnect_soon(now) {
                alerts.push(format!(
                    "Spotify ends {name}'s authorisation on {}: reconnect before then with \
                     `magpie spotify connect --listener {name}`.",
                    tokens.refresh_expires_at().date_naive()
                ));
            }
        }
        alerts
    }))
}

/// How often the loop looks for listeners whose poll is due (the poll interval itself is
/// `spotify.poll_interval`, per listener).
const POLL_CHECK: std::time::Duration = std::time::Duration::from_secs(60);

/// Poll every connected Spotify listener when due; after new plays, rebuild the marts and
/// drop the dashboards' cache. Until the scheduler exists, this is magpie's collection loop.
async fn poll_loop(config: &Config, warehouse: &Warehouse, app: &magpie_web::App) {
    let poller = match magpie_music::spotify::Poller::new(warehouse, config) {
        Ok(poller) => poller,
        Err(e) => {
            tracing::error!(error = %e, "Spotify polling is off");
            return std::future::pending().await;
        }
    };
    loop {
        match poller.poll_all(false).await {
            Ok(results) => {
                let new: u64 = results
                    .iter()
                    .filter_map(|(_, r)| match r {
                        Ok(magpie_music::spotify::PollOutcome::Polled { imported, .. }) => {
                            Some(*imported)
                        }
                        _ => None,
                    })
                    .sum();
                if new > 0 {
                    tracing::info!(plays = new, "new plays from Spotify; rebuilding the marts");
                    let options = magpie_models::runner::BuildOptions {
                        run_tests: true,
                        temp_dir: config.data_dir.join("tmp"),
                        ..Default::default()
                    };
                    match super::build::build(config, warehouse, &options) {
                        Ok(report) if report.ok() => app.cache().clear(),
                        Ok(_) => tracing::error!("the marts did not build cleanly after a poll"),
                        Err(e) => {
                            tracing::error!(error = %e, "building the marts after a poll failed")
                        }
                    }
                }
            }
            Err(e) => tracing::error!(error = %e, "Spotify polling failed"),
        }
        tokio::time::sleep(POLL_CHECK).await;
    }
}

/// Ctrl-C, or SIGTERM from `docker stop` / systemd.
async fn shutdown_signal() {
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
