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
    let app = magpie_web::App::new(config, warehouse)?;
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
        magpie_web::serve(listener, app, shutdown_signal()).await?;
        anyhow::Ok(())
    })?;
    warehouse.checkpoint()?;
    println!("stopped");
    Ok(())
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
