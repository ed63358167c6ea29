//! The tasks the built-in flows are made of, over one open warehouse: `poll` (Spotify
//! recently-played), `enrich` (a bounded pass of the enrichment queue), `build` (the models and
//! their tests, when an earlier task changed something or the flow is daily-etl, then the
//! read-only snapshot so the pages and outside readers see every build), `snapshot`
//! (publishing the read-only copy the web pages and outside readers open), `backup` (a
//! dated copy, `backup.keep_daily` daily and `backup.keep_weekly` weekly kept) and `alerts`
//! (the saved questions whose alert is due, run on the snapshot and delivered to the
//! webhooks when they fire: [`magpie_questions::alert`]).

use std::time::{Duration, Instant};

use magpie_core::scheduler::alerts::Alerter;
use magpie_core::scheduler::{TaskContext, TaskResult, TaskRunner};
use magpie_core::warehouse::reader::ReaderOptions;
use magpie_core::{Config, Warehouse};
use magpie_music::enrich::{Enricher, RunOptions};
use magpie_questions::alert::{self, Checker};

/// How long one scheduled enrichment pass may take new items.
const ENRICH_PASS: Duration = Duration::from_secs(8 * 60);

/// The built-in flows' tasks.
pub struct MagpieTasks<'w> {
    config: Config,
    warehouse: &'w Warehouse,
    /// One enricher for the process (its limiters keep the services' rates), made when first
    /// needed; a tokio mutex because a pass holds it across awaits.
    enricher: tokio::sync::Mutex<Option<Enricher>>,
    /// Moves the dashboards to a newly published snapshot (when serving).
    after_publish: Option<Box<dyn Fn() + 'w>>,
    /// Delivers question alerts that fire (the configured webhooks).
    alerter: Alerter,
}

impl<'w> MagpieTasks<'w> {
    pub fn new(config: &Config, warehouse: &'w Warehouse) -> Self {
        Self {
            config: config.clone(),
            warehouse,
            enricher: tokio::sync::Mutex::new(None),
            after_publish: None,
            alerter: Alerter::new(config.alerts.webhooks.clone()),
        }
    }

    /// Call `f` after every published snapshot.
    pub fn after_publish(mut self, f: impl Fn() + 'w) -> Self {
        self.after_publish = Some(Box::new(f));
        self
    }

    async fn poll(&self, ctx: &TaskContext) -> TaskResult {
        let poller = magpie_music::spotify::Poller::new(self.warehouse, &self.config)
            .map_err(|e| e.to_string())?;
        let results = poller.poll_all(true).await.map_err(|e| e.to_string())?;
        if results.is_empty() {
            ctx.info("no Spotify account is connected (magpie spotify connect)");
            return Ok(());
        }
        let mut failures = Vec::new();
        for (listener, result) in results {
            match result {
                Ok(magpie_music::spotify::PollOutcome::Polled {
                    imported,
                    full_page,
                    ..
                }) => {
                    ctx.info(format!("{listener}: {imported} new plays"));
                    if imported > 0 {
                        ctx.mark_changed();
                    }
                    if full_page {
                        ctx.warn(format!(
                            "{listener}: a full page of 50: plays may have been missed; polling again sooner"
                        ));
                        ctx.rerun_after(self.config.spotify.catch_up_interval);
                    }
                }
                Ok(other) => ctx.info(format!("{listener}: {other:?}")),
                Err(e) => failures.push(format!("{listener}: {e}")),
            }
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(failures.join("; "))
        }
    }

    async fn enrich(&self, ctx: &TaskContext) -> TaskResult {
        let mut slot = self.enricher.lock().await;
        if slot.is_none() {
            *slot = Some(Enricher::new(&self.config).map_err(|e| e.to_string())?);
        }
        let enricher = slot.as_mut().expect("set above");
        let a = self.warehouse.try_clone().map_err(|e| e.to_string())?;
        let b = self.warehouse.try_clone().map_err(|e| e.to_string())?;
        let options = RunOptions {
            max_wait: Duration::ZERO,
            deadline: Some(Instant::now() + ENRICH_PASS),
            ..Default::default()
        };
        let summary = enricher
            .run(&a, &b, &options)
            .await
            .map_err(|e| e.to_string())?;
        ctx.info(format!(
            "{} found, {} not found, {} failed",
            summary.done, summary.not_found, summary.failed
        ));
        for (source, until, reason) in &summary.waiting {
            ctx.info(format!("{source} waits until {until} ({reason})"));
        }
        for (source, why) in &summary.skipped {
            ctx.info(format!("{source} skipped: {why}"));
        }
        if summary.done > 0 {
            ctx.mark_changed();
        }
        Ok(())
    }

    fn build(&self, flow: &str, changed: bool, ctx: &TaskContext) -> TaskResult {
        if !changed && flow != "daily-etl" {
            ctx.info("nothing new: the marts are up to date");
            return Ok(());
        }
        let options = magpie_models::runner::BuildOptions {
            run_tests: true,
            temp_dir: self.config.data_dir.join("tmp"),
            ..Default::default()
        };
        let mut failed = Vec::new();
        let report =
            super::build::build_quietly(&self.config, self.warehouse, &options, &mut |n| {
                if n.status != magpie_models::runner::Status::Success {
                    failed.push(format!("{} {}: {:?}", n.kind.as_str(), n.name, n.status));
                }
            })
            .map_err(|e| e.to_string())?;
        ctx.info(format!(
            "build {}: {} nodes in {:.1}s",
            report.run_id,
            report.nodes.len(),
            report.elapsed.as_secs_f64()
        ));
        if !report.ok() {
            return Err(failed.join("; "));
        }
        // The pages and outside readers see every good build (daily-etl publishes in its own
        // task); a failed one leaves them on the last good snapshot.
        if flow != "daily-etl" {
            self.snapshot(ctx)?;
        }
        Ok(())
    }

    fn snapshot(&self, ctx: &TaskContext) -> TaskResult {
        let path = self.config.snapshot_path();
        let info = self.warehouse.publish(&path).map_err(|e| e.to_string())?;
        if let Some(reload) = &self.after_publish {
            reload();
        }
        let bytes = std::fs::metadata(&path).map_or(0, |m| m.len());
        ctx.info(format!(
            "published the read-only snapshot of build {} for the pages and outside tools: {} ({:.1} MB)",
            info.build,
            path.display(),
            bytes as f64 / 1e6
        ));
        Ok(())
    }

    fn backup(&self, ctx: &TaskContext) -> TaskResult {
        let (path, removed) = self
            .warehouse
            .backup(
                &self.config.backup_dir(),
                chrono::Utc::now().date_naive(),
                self.config.retention(),
            )
            .map_err(|e| e.to_string())?;
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        ctx.info(format!(
            "backup {} ({:.1} MB)",
            path.display(),
            size as f64 / 1e6
        ));
        for old in removed {
            ctx.info(format!("removed the old backup {}", old.display()));
        }
        Ok(())
    }
}

impl MagpieTasks<'_> {
    /// Run the saved questions whose alert is due on the read-only snapshot (never on this
    /// writer: user SQL runs on a locked-down instance of its own), deliver what fires, and
    /// keep each question's state in `meta.question_alerts` through this task's connection.
    async fn alerts(&self, flow: &str, ctx: &TaskContext) -> TaskResult {
        let snapshot = self.config.snapshot_path();
        if self.after_publish.is_none() {
            // `magpie run`: this process holds the warehouse, and no server keeps the
            // snapshot current, so the alerts read the latest build.
            if self
                .warehouse
                .ensure_published(&snapshot)
                .map_err(|e| e.to_string())?
            {
                ctx.info("published the read-only snapshot of the latest build for the alerts");
            }
        } else if !snapshot.is_file() {
            self.snapshot(ctx)?;
        }
        let checker = Checker {
            data_dir: &self.config.data_dir,
            snapshot: &snapshot,
            reader: ReaderOptions::from_budget(
                self.config.memory_budget,
                vec![self.config.market.dir(&self.config.data_dir)],
            ),
            tz: self.config.tz(),
            timeout: alert::TIMEOUT,
            flow,
        };
        checker
            .run(
                self.warehouse.conn(),
                &self.alerter,
                ctx,
                chrono::Utc::now(),
            )
            .await
            .map(|_| ())
    }
}

impl TaskRunner for MagpieTasks<'_> {
    fn run<'a>(
        &'a self,
        flow: &'a str,
        task: &'a str,
        changed: bool,
        ctx: &'a TaskContext,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = TaskResult> + 'a>> {
        Box::pin(async move {
            match task {
                "poll" => self.poll(ctx).await,
                "enrich" => self.enrich(ctx).await,
                "build" => self.build(flow, changed, ctx),
                "snapshot" => self.snapshot(ctx),
                "backup" => self.backup(ctx),
                "alerts" => self.alerts(flow, ctx).await,
                other => Err(format!("no task named `{other}`")),
            }
        })
    }
}
