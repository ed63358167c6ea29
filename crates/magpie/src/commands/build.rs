//! `magpie build`: the models runner over the warehouse, one line per node and a summary.

use std::process::ExitCode;

use magpie_core::{Config, Warehouse};
use magpie_models::project::Project;
use magpie_models::render::Materialized;
use magpie_models::runner::{BuildOptions, BuildReport, NodeKind, NodeResult, Runner, Status};

use crate::cli::BuildArgs;

pub fn run(config: &Config, args: BuildArgs) -> anyhow::Result<ExitCode> {
    let warehouse = super::open_warehouse(config)?;
    let options = BuildOptions {
        select: args.select,
        full_refresh: args.full_refresh,
        run_tests: !args.no_tests,
        temp_dir: config.data_dir.join("tmp"),
        ..Default::default()
    };
    let report = build(config, &warehouse, &options)?;
    Ok(if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Build the configured project (or the shipped one), printing progress; used by `demo` too.
pub fn build(
    config: &Config,
    warehouse: &Warehouse,
    options: &BuildOptions,
) -> anyhow::Result<BuildReport> {
    let report = build_quietly(config, warehouse, options, &mut print_node)?;
    println!(
        "build {}: {} models ({}), {} tests ({}) in {:.2}s",
        report.run_id,
        report
            .nodes
            .iter()
            .filter(|n| n.kind == NodeKind::Model)
            .count(),
        tally(
            &report,
            NodeKind::Model,
            &[
                ("success", "ok"),
                ("error", "error"),
                ("skipped", "skipped")
            ]
        ),
        report
            .nodes
            .iter()
            .filter(|n| n.kind == NodeKind::Test)
            .count(),
        tally(
            &report,
            NodeKind::Test,
            &[("success", "pass"), ("fail", "fail"), ("error", "error")]
        ),
        report.elapsed.as_secs_f64()
    );
    Ok(report)
}

/// The highest listening event id with every id below it committed: what the incremental
/// models read up to in this build (`var('event_watermark')`), the rest waiting for the next.
fn event_watermark(warehouse: &Warehouse) -> anyhow::Result<i64> {
    let _alone = magpie_core::warehouse::ingest_gate()
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    Ok(warehouse.conn().query_row(
        "SELECT coalesce(max(event_id), 0) FROM raw.listen_events",
        [],
        |r| r.get(0),
    )?)
}

/// Build the configured project, telling `progress` of each node (the scheduler logs them).
pub fn build_quietly(
    config: &Config,
    warehouse: &Warehouse,
    options: &BuildOptions,
    progress: &mut dyn FnMut(&NodeResult),
) -> anyhow::Result<BuildReport> {
    // Held for the whole build: a listener merge or removal waits for it (or, from the web,
    // is refused while it runs), so it never clears the incremental state mid-build.
    let _building = magpie_core::warehouse::rewrite_gate()
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let project = match &config.models.project_dir {
        Some(dir) => Project::from_dir(dir)?,
        None => magpie_models::embedded::project()?,
    };
    magpie_models::timezone::write_offsets(warehouse.conn(), config.tz())?;
    let runner = Runner::new(warehouse.conn(), &project);
    // The callers say what to build; how many nodes at once is configuration.
    let (threads, one_model_at_a_time) = config.build_threads();
    let mut run_vars = options.run_vars.clone();
    run_vars.insert(
        "event_watermark".into(),
        serde_json::json!(event_watermark(warehouse)?),
    );
    let options = &BuildOptions {
        threads,
        one_model_at_a_time,
        run_vars,
        ..options.clone()
    };
    // One checkpoint after the build instead of whenever the WAL crosses DuckDB's threshold
    // mid-build, which charged a second of checkpointing to whichever model committed then.
    warehouse
        .conn()
        .execute_batch("SET checkpoint_threshold = '16GB'")?;
    let report = runner.build(options, progress);
    warehouse
        .conn()
        .execute_batch("RESET checkpoint_threshold")?;
    let report = report?;
    if !report.ok() {
        // The failed nodes are the news; the checkpoint waits for a good build (a build that
        // failed on a full disk would only have it fail too).
        return Ok(report);
    }
    // Without vacuum tasks: a table built in parallel ends in one partly filled row group per
    // DuckDB thread, and the checkpoint's vacuum would rewrite (decompress and compress again)
    // those groups to merge them: ~0.8 s at 350k plays, to save one row group a table. Rebuilt
    // tables have no deleted rows to reclaim; later checkpoints vacuum as usual.
    warehouse.conn().execute_batch("SET max_vacuum_tasks = 0")?;
    let checkpoint = warehouse.checkpoint();
    warehouse.conn().execute_batch("RESET max_vacuum_tasks")?;
    checkpoint?;
    Ok(report)
}

/// "21 ok, 0 error, 0 skipped": counts of `kind` nodes per status, each under a display word.
fn tally(report: &BuildReport, kind: NodeKind, statuses: &[(&str, &str)]) -> String {
    statuses
        .iter()
        .map(|(status, word)| format!("{} {word}", report.count(kind, status)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn print_node(n: &NodeResult) {
    let status = match &n.status {
        Status::Success => "OK".to_string(),
        Status::Fail(count) => format!("FAIL {count}"),
        Status::Error(_) => "ERROR".to_string(),
        Status::Skipped => "SKIP".to_string(),
    };
    let rows = n.rows.map(|r| format!(" {r} rows")).unwrap_or_default();
    let what = match (n.kind, n.materialized) {
        (NodeKind::Model, Some(Materialized::Incremental)) if !n.incremental => {
            "model (full refresh)".to_string()
        }
        (NodeKind::Model, Some(m)) => format!("model ({})", format!("{m:?}").to_lowercase()),
        (kind, _) => kind.as_str().to_string(),
    };
    println!(
        "{status:<8} {what:<20} {}{rows} [{:.0} ms]",
        n.name,
        n.duration.as_secs_f64() * 1000.0
    );
    if let Status::Error(e) = &n.status {
        println!("         {e}");
    }
}
