//! `magpie demo`: generate a listening history as Spotify export files and import it through
//! the real importer; `magpie demo generate` only writes the files.

use std::process::ExitCode;
use std::time::Instant;

use magpie_core::Config;
use magpie_music::demo::{self, GenerateOptions, GenerateSummary};
use magpie_music::import::ImportOptions;

use crate::cli::{DemoAction, DemoArgs, DemoShape};

fn options(config: &Config, shape: &DemoShape, out_dir: std::path::PathBuf) -> GenerateOptions {
    GenerateOptions {
        plays: shape.plays,
        years: shape.years,
        seed: shape.seed,
        end: shape.end,
        timezone: config.tz(),
        out_dir,
        ..Default::default()
    }
}

fn describe(summary: &GenerateSummary, elapsed: f64) -> String {
    format!(
        "wrote {} plays by {} artists ({} to {}) in {} files, {:.1} MB, {:.1}s",
        summary.plays,
        summary.artists,
        summary.first_day,
        summary.last_day,
        summary.files.len(),
        summary.bytes as f64 / 1e6,
        elapsed
    )
}

pub fn run(config: &Config, args: DemoArgs) -> anyhow::Result<ExitCode> {
    match args.action {
        Some(DemoAction::Generate { shape, out }) => {
            let started = Instant::now();
            let summary = demo::generate(&options(config, &shape, out.clone()))?;
            println!(
                "{} -> {}",
                describe(&summary, started.elapsed().as_secs_f64()),
                out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        None => {
            let export_dir = config.data_dir.join("demo-export");
            reset_demo_warehouse(config)?;
            if export_dir.exists() {
                std::fs::remove_dir_all(&export_dir)?;
            }
            let started = Instant::now();
            let generate_options = options(config, &args.shape, export_dir.clone());
            let generated = demo::generate(&generate_options)?;
            println!("{}", describe(&generated, started.elapsed().as_secs_f64()));

            let warehouse = super::open_warehouse(config)?;
            let import_options = ImportOptions::from_config(config);
            let started = Instant::now();
            let summary =
                super::import::import_with_progress(&warehouse, import_options, &[export_dir])?;
            warehouse.checkpoint()?;
            println!("{summary} in {:.1}s", started.elapsed().as_secs_f64());
            let artists = demo::enrichment::write(warehouse.conn(), &generate_options)?;
            println!(
                "added what MusicBrainz would say of the {artists} made-up artists (genres, countries)"
            );
            print_summary(&warehouse)?;
            let options = magpie_models::runner::BuildOptions {
                run_tests: true,
                temp_dir: config.data_dir.join("tmp"),
                ..Default::default()
            };
            let report = super::build::build(config, &warehouse, &options)?;
            if !report.ok() {
                anyhow::bail!("the models did not build cleanly (see above)");
            }
            println!(
                "\nThe demo warehouse is {}. Look inside with SQL, e.g. your top artists:\n  \
                 magpie --data-dir {} sql \"SELECT a.artist_name, count(*) AS plays FROM marts.fact_plays f \
                 JOIN marts.dim_artist a USING (artist_id) GROUP BY 1 ORDER BY 2 DESC LIMIT 10\"",
                warehouse.path().display(),
                config.data_dir.display()
            );
            if !summary.all_ok() {
                return Ok(ExitCode::FAILURE);
            }
            if args.no_serve {
                return Ok(ExitCode::SUCCESS);
            }
            super::serve::serve_warehouse(config, &warehouse, &args.serve)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Each `magpie demo` starts from an empty warehouse (a history generated on another day is
/// shifted, and would otherwise add to the old one), but never deletes one that holds anything
/// besides the demo's own imports.
fn reset_demo_warehouse(config: &Config) -> anyhow::Result<()> {
    let path = config.warehouse_path();
    if !path.exists() {
        return Ok(());
    }
    let foreign: i64 = {
        let conn = magpie_core::Warehouse::open_read_only(&path)?;
        conn.query_row(
            "SELECT count(*) FROM raw.import_batches WHERE source_path NOT LIKE '%demo-export%'",
            [],
            |r| r.get(0),
        )?
    };
    if foreign > 0 {
        anyhow::bail!(
            "{} holds imports that are not the demo's ({foreign} file(s)); the demo will not replace it. \
             Run the demo with another --data-dir.",
            path.display()
        );
    }
    std::fs::remove_file(&path)?;
    let wal = path.with_extension("duckdb.wal");
    if wal.exists() {
        std::fs::remove_file(wal)?;
    }
    Ok(())
}

fn print_summary(warehouse: &magpie_core::Warehouse) -> anyhow::Result<()> {
    let (events, listens, hours, artists, tracks, first, last): (
        i64,
        i64,
        f64,
        i64,
        i64,
        String,
        String,
    ) = warehouse.conn().query_row(
        "SELECT count(*), count(*) FILTER (duplicate_of IS NULL),
                    coalesce(sum(ms_played) FILTER (duplicate_of IS NULL), 0) / 3.6e6,
                    count(DISTINCT artist_name), count(DISTINCT spotify_track_uri),
                    coalesce(min(ended_at)::VARCHAR, ''), coalesce(max(ended_at)::VARCHAR, '')
             FROM raw.listen_events",
        [],
        |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
            ))
        },
    )?;
    println!(
        "warehouse: {events} events, {listens} listens, {hours:.0} hours, {artists} artists, {tracks} tracks, {first} to {last}"
    );
    Ok(())
}
