//! `magpie sql "SELECT ..."`: a read-only query (external access disabled but for the market
//! data's Parquet folder, which the `market.*` views read), printed as an aligned table, CSV
//! or JSON.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use magpie_core::values::{self, ResultSet};
use magpie_core::{Config, Warehouse};

use crate::cli::{OutputFormat, SqlArgs};

pub fn run(config: &Config, args: SqlArgs) -> anyhow::Result<ExitCode> {
    let market = config.market.dir(&config.data_dir);
    let conn = Warehouse::open_read_only_reading(config.warehouse_path(), &[market])?;
    let limit = match args.format {
        OutputFormat::Table => args.max_rows,
        _ => usize::MAX,
    };
    let (result, truncated) = values::query(&conn, &args.query, limit).context("query failed")?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match args.format {
        OutputFormat::Table => {
            write_table(&mut out, &result)?;
            if truncated {
                writeln!(
                    out,
                    "(first {} rows shown; use --max-rows or --format csv for all)",
                    args.max_rows
                )?;
            }
        }
        OutputFormat::Csv => {
            let mut w = csv::Writer::from_writer(out);
            w.write_record(&result.columns)?;
            for row in &result.rows {
                w.write_record(row.iter().map(values::to_text))?;
            }
            w.flush()?;
        }
        OutputFormat::Json => {
            let rows: Vec<serde_json::Value> = result
                .rows
                .iter()
                .map(|row| {
                    serde_json::Value::Object(
                        result
                            .columns
                            .iter()
                            .cloned()
                            .zip(row.iter().map(values::to_json))
                            .collect(),
                    )
                })
                .collect();
            serde_json::to_writer_pretty(&mut out, &rows)?;
            writeln!(out)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn write_table(out: &mut impl Write, result: &ResultSet) -> std::io::Result<()> {
    const MAX_CELL: usize = 60;
    let cells: Vec<Vec<String>> = result
        .rows
        .iter()
        .map(|row| {
            row.iter()
                .map(|v| {
                    let text = values::to_text(v).replace('\n', " ");
                    if text.chars().count() > MAX_CELL {
                        format!("{}…", text.chars().take(MAX_CELL - 1).collect::<String>())
                    } else {
                        text
                    }
                })
                .collect()
        })
        .collect();
    let widths: Vec<usize> = result
        .columns
        .iter()
        .enumerate()
        .map(|(i, name)| {
            cells
                .iter()
                .map(|r| r[i].chars().count())
                .chain(std::iter::once(name.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let numeric: Vec<bool> = (0..result.columns.len())
        .map(|i| {
            result.rows.iter().all(|r| {
                matches!(
                    values::to_json(&r[i]),
                    serde_json::Value::Number(_) | serde_json::Value::Null
                )
            })
        })
        .collect();
    let line = |cols: Vec<String>| cols.join(" | ");
    writeln!(
        out,
        "{}",
        line(
            result
                .columns
                .iter()
                .zip(&widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect()
        )
    )?;
    writeln!(
        out,
        "{}",
        widths
            .iter()
            .map(|w| "-".repeat(*w))
            .collect::<Vec<_>>()
            .join("-+-")
    )?;
    for row in &cells {
        writeln!(
            out,
            "{}",
            line(
                row.iter()
                    .zip(&widths)
                    .zip(&numeric)
                    .map(|((c, w), num)| if *num {
                        format!("{c:>w$}")
                    } else {
                        format!("{c:<w$}")
                    })
                    .collect()
            )
        )?;
    }
    writeln!(
        out,
        "({} row{})",
        result.rows.len(),
        if result.rows.len() == 1 { "" } else { "s" }
    )
}
