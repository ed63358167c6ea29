//! `magpie enrich`: work the enrichment queue in the foreground with a progress bar per source
//! (done / remaining, rate, ETA, waiting for the limiter or a service's wait). Every item is
//! committed as it finishes, so Ctrl-C or a kill loses at most the request in flight.

use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use chrono::Utc;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use magpie_core::Config;
use magpie_music::enrich::{Enricher, Progress, RunOptions, Source};

use crate::cli::EnrichArgs;

pub fn run(config: &Config, args: EnrichArgs) -> anyhow::Result<ExitCode> {
    let warehouse = super::open_warehouse(config)?;
    let sources: Vec<Source> = if args.source.is_empty() {
        Source::ALL.to_vec()
    } else {
        args.source
            .iter()
            .map(|s| s.parse().map_err(anyhow::Error::msg))
            .collect::<anyhow::Result<_>>()?
    };
    let mut enricher = Enricher::new(config)?;
    let options = RunOptions {
        sources: sources.clone(),
        limit: args.limit,
        ..Default::default()
    };
    let spotify_conn = warehouse.try_clone()?;
    let musicbrainz_conn = warehouse.try_clone()?;
    let progress_conn = warehouse.try_clone()?;
    let max_attempts = enricher.max_attempts();
    let finished = enricher.finished_counter();
    let limiter_flags = enricher.limiter_flags();
    let started = Instant::now();

    let bars = MultiProgress::new();
    let style = ProgressStyle::with_template("{prefix:>12} [{bar:30}] {pos}/{len} {msg}")?
        .progress_chars("=> ");
    let bar_of: Vec<(Source, ProgressBar)> = sources
        .iter()
        .map(|s| {
            let bar = bars.add(ProgressBar::new(0).with_style(style.clone()));
            bar.set_prefix(s.as_str());
            (*s, bar)
        })
        .collect();

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let summary = runtime.block_on(async {
        let work = enricher.run(&spotify_conn, &musicbrainz_conn, &options);
        tokio::pin!(work);
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            tokio::select! {
                result = &mut work => break result,
                _ = tick.tick() => {
                    if let Ok(progress) = Progress::read(&progress_conn, max_attempts, Utc::now()) {
                        draw(&bar_of, &progress, &limiter_flags);
                    }
                }
                _ = tokio::signal::ctrl_c() => {
                    break Ok(Default::default());
                }
            }
        }
    })?;
    if let Ok(progress) = Progress::read(&progress_conn, max_attempts, Utc::now()) {
        draw(&bar_of, &progress, &[]);
    }
    for (_, bar) in &bar_of {
        bar.finish();
    }
    let secs = started.elapsed().as_secs_f64();
    let n = finished.load(Ordering::Relaxed);
    println!(
        "{n} items in {secs:.1}s ({:.1}/s): {} found, {} not found, {} failed",
        n as f64 / secs.max(0.001),
        summary.done,
        summary.not_found,
        summary.failed
    );
    for (source, until, _) in &summary.waiting {
        println!("{source}: the service asked to wait until {until}; run again after that");
    }
    for (source, why) in &summary.skipped {
        println!("{source}: skipped: {why}");
    }
    if args.build && n > 0 {
        let options = magpie_models::runner::BuildOptions {
            run_tests: true,
            temp_dir: config.data_dir.join("tmp"),
            ..Default::default()
        };
        let report = super::build::build(config, &warehouse, &options)?;
        if !report.ok() {
            return Ok(ExitCode::FAILURE);
        }
    }
    warehouse.checkpoint()?;
    Ok(ExitCode::SUCCESS)
}

fn draw(
    bars: &[(Source, ProgressBar)],
    progress: &Progress,
    limiter_flags: &[(Source, std::sync::Arc<std::sync::atomic::AtomicBool>)],
) {
    for (source, bar) in bars {
        let Some(p) = progress.source(*source) else {
            continue;
        };
        bar.set_length(p.total());
        bar.set_position(p.finished());
        let mut msg = format!(
            "{} found, {} not found, {} failed, {} to go",
            p.done,
            p.not_found,
            p.failed + p.retrying,
            p.remaining()
        );
        if let Some(eta) = p.eta() {
            msg.push_str(&format!(
                ", {}/h, ETA {}",
                p.last_hour,
                humantime::format_duration(Duration::from_secs(eta.as_secs()))
            ));
        }
        if let Some(until) = p.waiting_until {
            msg.push_str(&format!(
                ", waiting until {} ({})",
                until.format("%H:%M:%S"),
                p.wait_reason.as_deref().unwrap_or("")
            ));
        }
        let limited = limiter_flags
            .iter()
            .any(|(s, flag)| s == source && flag.load(Ordering::Relaxed));
        if limited && p.remaining() > 0 {
            msg.push_str(", waiting for the rate limit");
        }
        bar.set_message(msg);
    }
}
