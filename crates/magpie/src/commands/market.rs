//! `magpie market run`: the Deribit collector in the foreground until Ctrl-C or SIGTERM,
//! then a summary (messages, rows per dataset, files, bytes per row).

use std::process::ExitCode;

use magpie_core::Config;

pub fn run(config: &Config) -> anyhow::Result<ExitCode> {
    let warehouse = super::open_warehouse(config)?;
    let collector =
        magpie_market::Collector::new(&config.market, &config.data_dir, warehouse.try_clone()?);
    println!(
        "Collecting {} from {} into {} (Ctrl-C to stop)",
        config.market.currencies.join(", "),
        config.market.url,
        collector.root().display()
    );
    // One worker thread for the connections and the lifecycle, plus the writer's own thread.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .max_blocking_threads(2)
        .enable_all()
        .build()?;
    let summary = runtime.block_on(async {
        let stop = tokio_util::sync::CancellationToken::new();
        let signal_stop = stop.clone();
        tokio::spawn(async move {
            super::serve::shutdown_signal().await;
            signal_stop.cancel();
        });
        collector.run(stop).await
    })?;
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    warehouse.checkpoint()?;
    let rows = summary.rows.tickers + summary.rows.quotes + summary.rows.trades;
    let rate = if summary.data_seconds > 0.0 {
        summary.data_messages as f64 / summary.data_seconds
    } else {
        0.0
    };
    println!(
        "stopped: {} market messages in {:.2} s ({:.0}/s), {} malformed, {} reconnects; rows: {} tickers, {} quotes, {} trades; {} files, {} bytes ({:.1} bytes/row)",
        summary.data_messages,
        summary.data_seconds,
        rate,
        summary.malformed,
        summary.reconnects,
        summary.rows.tickers,
        summary.rows.quotes,
        summary.rows.trades,
        summary.files,
        summary.bytes,
        if rows > 0 {
            summary.bytes as f64 / rows as f64
        } else {
            0.0
        },
    );
    Ok(ExitCode::SUCCESS)
}
