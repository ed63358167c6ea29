//! `magpie run FLOW [--param k=v]` runs a flow once in the foreground, recorded like a
//! scheduled run (for people who prefer cron or their own orchestrator); `magpie runs` lists
//! the recent runs.

use std::process::ExitCode;

use magpie_core::Config;
use magpie_core::scheduler::{FlowSpec, RunState, RunStore, Scheduler, SystemClock};

use crate::cli::{RunArgs, RunsArgs};

pub fn run(config: &Config, args: RunArgs) -> anyhow::Result<ExitCode> {
    let flows = FlowSpec::built_in(config).map_err(anyhow::Error::msg)?;
    if !flows.iter().any(|f| f.name == args.flow) {
        anyhow::bail!(
            "no flow `{}`: the flows are {}",
            args.flow,
            flows
                .iter()
                .map(|f| f.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let warehouse = super::open_warehouse(config)?;
    let conn = warehouse.try_clone()?;
    let tasks = super::tasks::MagpieTasks::new(config, &warehouse);
    let (scheduler, _handle) = Scheduler::new(
        flows,
        &conn,
        SystemClock,
        tasks,
        magpie_core::scheduler::alerts::Alerter::new(config.alerts.webhooks.clone()),
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (run_id, state) = runtime.block_on(async {
        scheduler.recover().await?;
        scheduler
            .run_now(&args.flow, "cli", args.params.into_iter().collect())
            .await
    })?;
    let store = RunStore::new(&conn);
    for task in store.tasks(run_id)? {
        println!(
            "{:<10} {:<9} attempt {}  {:>7.1}s  {}",
            task.task,
            task.state,
            task.attempt,
            task.duration_ms.unwrap_or(0) as f64 / 1000.0,
            task.error.unwrap_or_default()
        );
    }
    for line in store.logs(run_id)? {
        println!("  [{}] {}", line.task.unwrap_or_default(), line.message);
    }
    let run = store.run(run_id)?;
    println!(
        "run {run_id} of {}: {}{}",
        args.flow,
        state.as_str(),
        run.and_then(|r| r.error)
            .map(|e| format!(": {e}"))
            .unwrap_or_default()
    );
    if state != RunState::Completed {
        // Said above, and on record. No checkpoint: after a run that failed on a full disk it
        // would fail too (the changes stay in the write-ahead log until the next one).
        return Ok(ExitCode::FAILURE);
    }
    warehouse.checkpoint()?;
    Ok(ExitCode::SUCCESS)
}

pub fn runs(config: &Config, args: RunsArgs) -> anyhow::Result<ExitCode> {
    let conn = super::open_reader(config)?;
    let runs = RunStore::new(&conn).recent(args.flow.as_deref(), args.limit)?;
    if runs.is_empty() {
        println!("no runs yet");
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:>6}  {:<15} {:<10} {:<9} {:<20} {:>9}  error",
        "run", "flow", "state", "trigger", "started (UTC)", "seconds"
    );
    for r in runs {
        println!(
            "{:>6}  {:<15} {:<10} {:<9} {:<20} {:>9}  {}",
            r.run_id,
            r.flow,
            r.state,
            r.trigger,
            r.started_at
                .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
                .unwrap_or_default(),
            r.duration_ms
                .map(|d| format!("{:.1}", d as f64 / 1000.0))
                .unwrap_or_default(),
            r.error.unwrap_or_default()
        );
    }
    Ok(ExitCode::SUCCESS)
}
