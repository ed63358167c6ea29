//! `magpie sql "SELECT ..."`: a query on a locked-down read-only connection (no writes, no
//! settings changed, no files or network but the market data's Parquet folder, which the
//! `market.*` views read, within the memory budget), printed as an aligned table, or streamed
//! as CSV or JSON rows as DuckDB produces them, so output of any size takes no more memory.
//! Beside a running `magpie serve` it reads the snapshot serve publishes, and says so.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use magpie_core::Config;
use magpie_core::values::{self, ResultSet, Streamed};

use crate::cli::{OutputFormat, SqlArgs};

pub fn run(config: &Config, args: SqlArgs) -> anyhow::Result<ExitCode> {
    let conn = super::open_reader(config)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    match args.format {
        OutputFormat::Table => {
            let (result, truncated) =
                values::query(&conn, &args.query, args.max_rows).context("query failed")?;
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
            let mut w = csv::Writer::from_writer(&mut out);
            values::stream(&conn, &args.query, |event| {
                match event {
                    Streamed::Columns(names) => w.write_record(names)?,
                    Streamed::Row(row) => w.write_record(row.iter().map(values::to_text))?,
                }
                Ok::<_, anyhow::Error>(true)
            })
            .context("query failed")?;
            w.flush()?;
        }
        OutputFormat::Json => {
            let mut columns = Vec::new();
            let mut rows = 0u64;
            writeln!(out, "[")?;
            values::stream(&conn, &args.query, |event| {
                match event {
                    Streamed::Columns(names) => columns = names.to_vec(),
                    Streamed::Row(row) => {
                        let object: serde_json::Map<String, serde_json::Value> = columns
                            .iter()
                            .cloned()
                            .zip(row.iter().map(values::to_json))
                            .collect();
                        if rows > 0 {
                            writeln!(out, ",")?;
                        }
                        rows += 1;
                        serde_json::to_writer(&mut out, &object)?;
                    }
                }
                Ok::<_, anyhow::Error>(true)
            })
            .context("query failed")?;
            writeln!(out, "{}]", if rows == 0 { "" } else { "\n" })?;
        }
    }
    out.flush()?;
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
