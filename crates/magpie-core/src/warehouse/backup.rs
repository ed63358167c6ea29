//! Consistent copies of the warehouse while it is in use: the read-only snapshot outside tools
//! open, dated backups with retention (keep N daily, M weekly), and restoring one into an
//! empty data folder.
//!
//! A copy is made by DuckDB itself (`COPY FROM DATABASE` into a new file attached beside the
//! target), so it is a transaction-consistent view of every table; it is written under a
//! temporary name and renamed, so a crash never leaves a half-written file under the real name.

use std::path::{Path, PathBuf};

use chrono::{Datelike, NaiveDate};

use super::{Warehouse, WarehouseError};

/// Backup files: `magpie-YYYY-MM-DD.duckdb`.
const PREFIX: &str = "magpie-";
const SUFFIX: &str = ".duckdb";

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> WarehouseError + '_ {
    move |source| WarehouseError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl Warehouse {
    /// Write a consistent copy of the whole warehouse to `target` (replacing it); its size.
    pub fn copy_to(&self, target: &Path) -> Result<u64, WarehouseError> {
        copy_database(&self.conn, target)
    }

    /// A dated backup in `dir` (`magpie-YYYY-MM-DD.duckdb`, replacing one of the same day),
    /// then old ones removed by [`prune`]. Returns the backup and the files removed.
    pub fn backup(
        &self,
        dir: &Path,
        today: NaiveDate,
        keep: Retention,
    ) -> Result<(PathBuf, Vec<PathBuf>), WarehouseError> {
        let path = dir.join(format!("{PREFIX}{today}{SUFFIX}"));
        self.copy_to(&path)?;
        let removed = prune(dir, keep)?;
        Ok((path, removed))
    }
}

/// Write a consistent copy of the warehouse `conn` is connected to (its default database) to
/// `target` (replacing it); its size. For code that holds a connection to the writing
/// instance rather than the [`Warehouse`] (the web's pool, `magpie_music::listeners`). Not
/// inside an open transaction.
pub fn copy_database(conn: &duckdb::Connection, target: &Path) -> Result<u64, WarehouseError> {
    let dir = target.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let partial = target.with_extension("duckdb.partial");
    let _ = std::fs::remove_file(&partial);
    let db = |e| WarehouseError::DuckDb {
        path: target.to_path_buf(),
        source: e,
    };
    let source: String = conn
        .query_row("SELECT current_database()", [], |r| r.get(0))
        .map_err(db)?;
    let quoted = partial.to_string_lossy().replace('\'', "''");
    let copied = conn.execute_batch(&format!(
        "ATTACH '{quoted}' AS magpie_copy;
         COPY FROM DATABASE \"{source}\" TO magpie_copy;
         DETACH magpie_copy;"
    ));
    if let Err(e) = copied {
        let _ = conn.execute_batch("DETACH DATABASE IF EXISTS magpie_copy");
        let _ = std::fs::remove_file(&partial);
        return Err(db(e));
    }
    std::fs::rename(&partial, target).map_err(io(target))?;
    std::fs::metadata(target)
        .map(|m| m.len())
        .map_err(io(target))
}

/// How many backups to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// The newest this many days.
    pub daily: usize,
    /// Beyond those, the newest backup of each of this many weeks.
    pub weekly: usize,
}

/// The backups in `dir`, newest first, with their dates.
pub fn list(dir: &Path) -> Result<Vec<(NaiveDate, PathBuf)>, WarehouseError> {
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let mut found: Vec<(NaiveDate, PathBuf)> = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let date = name.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?;
            let date = NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()?;
            Some((date, e.path()))
        })
        .collect();
    found.sort_by_key(|f| std::cmp::Reverse(f.0));
    Ok(found)
}

/// Which backups `keep` keeps, of dates sorted newest first: the first `daily`, then the
/// newest of each ISO week for `weekly` more weeks.
pub fn kept(dates: &[NaiveDate], keep: Retention) -> Vec<NaiveDate> {
    let mut out: Vec<NaiveDate> = dates.iter().take(keep.daily).copied().collect();
    let mut weeks = Vec::new();
    for date in dates.iter().skip(keep.daily) {
        let week = date.iso_week();
        let week = (week.year(), week.week());
        let week_of_kept = out.iter().any(|d| {
            let w = d.iso_week();
            (w.year(), w.week()) == week
        });
        if weeks.contains(&week) || week_of_kept {
            continue;
        }
        if weeks.len() == keep.weekly {
            break;
        }
        weeks.push(week);
        out.push(*date);
    }
    out
}

/// Remove the backups in `dir` that `keep` does not keep; the files removed.
pub fn prune(dir: &Path, keep: Retention) -> Result<Vec<PathBuf>, WarehouseError> {
    let all = list(dir)?;
    let dates: Vec<NaiveDate> = all.iter().map(|(d, _)| *d).collect();
    let keep = kept(&dates, keep);
    let mut removed = Vec::new();
    for (date, path) in all {
        if !keep.contains(&date) {
            std::fs::remove_file(&path).map_err(io(&path))?;
            removed.push(path);
        }
    }
    Ok(removed)
}

/// Restore `backup` as the warehouse at `target`, which must not exist (restore into an
/// empty data folder). The backup is checked first: it must open and be a magpie warehouse
/// this version can read.
pub fn restore(backup: &Path, target: &Path) -> Result<(), WarehouseError> {
    if target.exists() {
        return Err(WarehouseError::Other(format!(
            "{} exists: restore into an empty data folder (move the current warehouse away first)",
            target.display()
        )));
    }
    {
        let conn = Warehouse::open_read_only(backup)?;
        let plays: Result<i64, _> =
            conn.query_row("SELECT count(*) FROM raw.listen_events", [], |r| r.get(0));
        plays.map_err(|e| {
            WarehouseError::Other(format!(
                "{} is not a magpie warehouse: {e}",
                backup.display()
            ))
        })?;
    }
    let dir = target.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let partial = target.with_extension("duckdb.partial");
    std::fs::copy(backup, &partial).map_err(io(&partial))?;
    std::fs::rename(&partial, target).map_err(io(target))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn keeps_the_newest_days_then_one_per_week() {
        // Every day from 2026-03-31 back to 2026-01-01, newest first.
        let dates: Vec<NaiveDate> = (0..90)
            .map(|i| d("2026-03-31") - chrono::Duration::days(i))
            .collect();
        let chosen = kept(
            &dates,
            Retention {
                daily: 7,
                weekly: 4,
            },
        );
        assert_eq!(chosen.len(), 11);
        assert_eq!(chosen[..7], dates[..7]);
        // 2026-03-25 is a Wednesday: the week after the daily ones starts before it.
        let weekly: Vec<String> = chosen[7..].iter().map(|d| d.to_string()).collect();
        assert_eq!(
            weekly,
            ["2026-03-22", "2026-03-15", "2026-03-08", "2026-03-01"]
        );
        assert!(
            kept(
                &dates,
                Retention {
                    daily: 0,
                    weekly: 0
                }
            )
            .is_empty()
        );
    }
}
