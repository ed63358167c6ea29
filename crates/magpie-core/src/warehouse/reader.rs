//! The read side of the warehouse: the published snapshot and the locked-down DuckDB instance
//! everything outside the writer reads through (the web pages, `magpie sql`, the read-only
//! commands).
//!
//! DuckDB has no per-connection read-only mode, and settings such as `enable_external_access`
//! belong to a whole database instance, so a connection cloned from the writer could always
//! write, read files and change its own limits. Readers therefore get an instance of their own,
//! opened with `access_mode = READ_ONLY`, external access off (but for the folders named in
//! [`ReaderOptions::readable`], e.g. the market data's Parquet), no extension loading, its own
//! memory limit and threads, and `lock_configuration = true` last, so no statement can undo
//! any of it (`SET memory_limit = '10GB'`, `SET enable_external_access = true` and the like
//! fail).
//!
//! While `magpie serve` holds the warehouse file, that instance reads the *published
//! snapshot*: a transaction-consistent copy written after every build
//! ([`Warehouse::publish`]). The snapshot carries the id of the build it shows, so a reader can
//! tell whether it is current ([`Warehouse::snapshot_is_current`]) and say which build it
//! shows ([`SnapshotInfo`]).
//!
//! ```no_run
//! use magpie_core::warehouse::{reader, Warehouse, OpenOptions};
//! let wh = Warehouse::open("data/magpie.duckdb", &OpenOptions::default()).unwrap();
//! wh.publish("data/snapshot/magpie-readonly.duckdb".as_ref()).unwrap();
//! let conn = reader::open_locked(
//!     "data/snapshot/magpie-readonly.duckdb".as_ref(),
//!     &reader::ReaderOptions::default(),
//! )
//! .unwrap();
//! assert!(conn.execute_batch("DELETE FROM listeners").is_err());
//! ```

use std::path::{Path, PathBuf};

use bytesize::ByteSize;
use duckdb::{AccessMode, Connection};

use super::{Warehouse, WarehouseError, db, migrations, open_error};

/// How a reading instance is opened.
#[derive(Debug, Clone)]
pub struct ReaderOptions {
    /// DuckDB's `memory_limit` for this instance.
    pub memory_limit: ByteSize,
    /// DuckDB worker threads for this instance.
    pub threads: usize,
    /// Folders whose files can be read (the market data's Parquet folder, which the
    /// `market.*` views read); nothing else on disk or the network can be.
    pub readable: Vec<PathBuf>,
}

/// DuckDB's `memory_limit` of the reading instance, in percent of magpie's `memory_budget`
/// (the writer has [`super::DUCKDB_SHARE_PERCENT`]). Page queries are small aggregates over the
/// marts; one that needs more than its share beside others runs again alone
/// ([`is_out_of_memory`]), which a burst of cold pages then waits for.
///
/// Measured with `scripts/bench-load.sh` (wrk, 50 connections over 8 pages x 16 ranges of the
/// 350,000-play demo, 10 s from a cold cache, two cores): 20 % (32 MB) had 50 queries run
/// again alone and a p99 of 664 ms; 30 % had 8 and 461 ms; 36 % had 3 and 401 ms; the whole
/// process ended at 92, 99 and 98 MB RSS. 30 % keeps most of 36 %'s latency for less memory.
pub const READER_SHARE_PERCENT: u64 = 30;

impl Default for ReaderOptions {
    fn default() -> Self {
        Self {
            memory_limit: ByteSize::mb(64),
            threads: 2,
            readable: Vec::new(),
        }
    }
}

impl ReaderOptions {
    /// A reader's share of `budget` ([`READER_SHARE_PERCENT`], at least 24 MB), reading files
    /// under `readable` only.
    pub fn from_budget(budget: ByteSize, readable: Vec<PathBuf>) -> Self {
        let limit = (budget.as_u64() * READER_SHARE_PERCENT / 100).max(ByteSize::mb(24).as_u64());
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self {
            memory_limit: ByteSize::b(limit),
            threads: cores.clamp(1, 4),
            readable,
        }
    }
}

/// Refuse anything but exactly one query (SELECT, WITH, FROM, VALUES), with the reason:
/// DuckDB parses the text first (`json_serialize_sql` serialises SELECT statements only), so
/// `SET`, `PRAGMA`, `CREATE TEMP TABLE`, `COPY`, `ATTACH`, `INSTALL` and two statements in one
/// text are refused before anything runs. (duckdb-rs' `prepare` runs every statement of a text
/// but the last, so user SQL must pass here first.)
pub fn check_single_select(conn: &Connection, sql: &str) -> Result<(), String> {
    let parsed: String = conn
        .query_row("SELECT json_serialize_sql(?::VARCHAR)", [sql], |r| r.get(0))
        .map_err(|e| format!("cannot parse the SQL: {e}"))?;
    let parsed: serde_json::Value =
        serde_json::from_str(&parsed).map_err(|e| format!("cannot read DuckDB's parse: {e}"))?;
    if parsed["error"].as_bool() == Some(true) {
        let message = parsed["error_message"]
            .as_str()
            .unwrap_or("cannot be parsed");
        return Err(if message.contains("Only SELECT statements") {
            "only a query (SELECT, WITH, FROM, VALUES) can run here: statements that change \
             data, settings or files are refused"
                .to_string()
        } else {
            message.to_string()
        });
    }
    match parsed["statements"].as_array().map(Vec::len) {
        Some(1) => Ok(()),
        Some(0) | None => Err("there is no query to run".into()),
        Some(n) => Err(format!("one statement per request: this text has {n}")),
    }
}

/// Whether `error` is DuckDB running out of its memory limit (worth a second try alone).
pub fn is_out_of_memory(error: &duckdb::Error) -> bool {
    error.to_string().contains("Out of Memory")
}

/// Open the DuckDB file at `path` as a locked-down reader: it cannot write, cannot read files
/// outside `options.readable` or reach the network, cannot load extensions and cannot change
/// its settings. Its schema version is checked like the writer's.
pub fn open_locked(path: &Path, options: &ReaderOptions) -> Result<Connection, WarehouseError> {
    if !path.is_file() {
        return Err(WarehouseError::Missing {
            path: path.to_path_buf(),
        });
    }
    let config = duckdb::Config::default()
        .access_mode(AccessMode::ReadOnly)
        .and_then(|c| c.max_memory(&format!("{}MB", options.memory_limit.as_u64() / 1_000_000)))
        .and_then(|c| c.threads(options.threads.max(1) as i64))
        .and_then(|c| c.enable_autoload_extension(false))
        .and_then(|c| c.with("autoinstall_known_extensions", "false"))
        .and_then(|c| c.with("allow_community_extensions", "false"))
        .map_err(|e| db(path, e))?;
    let conn = Connection::open_with_flags(path, config).map_err(|e| open_error(path, e))?;
    lock_down(&conn, &options.readable).map_err(|e| db(path, e))?;
    migrations::check_version(&conn, path)?;
    Ok(conn)
}

/// Allowed folders first (once external access is off they cannot change), then external
/// access off, then every setting frozen.
fn lock_down(conn: &Connection, readable: &[PathBuf]) -> duckdb::Result<()> {
    let mut sql = String::new();
    if !readable.is_empty() {
        let dirs: Vec<String> = readable
            .iter()
            .map(|d| {
                let d = std::path::absolute(d).unwrap_or_else(|_| d.clone());
                format!("'{}/'", d.display().to_string().replace('\'', "''"))
            })
            .collect();
        sql.push_str(&format!("SET allowed_directories = [{}];", dirs.join(", ")));
    }
    sql.push_str("SET enable_external_access = false; SET lock_configuration = true;");
    conn.execute_batch(&sql)
}

/// Which build a snapshot shows, and when it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotInfo {
    pub path: PathBuf,
    /// The newest `magpie build` in it (`meta.model_runs.run_id`), 0 before any build.
    pub build: i64,
    /// When the file was written (its modification time).
    pub written: Option<chrono::DateTime<chrono::Utc>>,
}

impl SnapshotInfo {
    /// Read what the snapshot at `path` shows (opening it read-only for a moment).
    pub fn read(path: &Path) -> Result<Self, WarehouseError> {
        Self::of(path, &open_locked(path, &ReaderOptions::default())?)
    }

    /// What the snapshot at `path`, open as `conn`, shows.
    pub fn of(path: &Path, conn: &Connection) -> Result<Self, WarehouseError> {
        Ok(Self {
            path: path.to_path_buf(),
            build: latest_build(conn).map_err(|e| db(path, e))?,
            written: std::fs::metadata(path)
                .and_then(|m| m.modified())
                .ok()
                .map(chrono::DateTime::<chrono::Utc>::from),
        })
    }

    /// "the snapshot of build 12, written 2026-12-07 10:31 UTC".
    pub fn describe(&self) -> String {
        let when = self.written.map_or(String::new(), |t| {
            format!(", written {}", t.format("%Y-%m-%d %H:%M UTC"))
        });
        if self.build == 0 {
            format!(
                "the snapshot {} (before any build{when})",
                self.path.display()
            )
        } else {
            format!(
                "the snapshot {} (build {}{when})",
                self.path.display(),
                self.build
            )
        }
    }
}

/// The newest build recorded in `conn`'s database, 0 before any.
pub fn latest_build(conn: &Connection) -> duckdb::Result<i64> {
    conn.query_row(
        "SELECT coalesce(max(run_id), 0) FROM meta.model_runs",
        [],
        |r| r.get(0),
    )
}

impl Warehouse {
    /// Publish a consistent copy of the warehouse at `target` for readers (replacing the
    /// previous one atomically); what it shows.
    pub fn publish(&self, target: &Path) -> Result<SnapshotInfo, WarehouseError> {
        self.copy_to(target)?;
        Ok(SnapshotInfo {
            path: target.to_path_buf(),
            build: latest_build(&self.conn).map_err(|e| db(&self.path, e))?,
            written: Some(chrono::Utc::now()),
        })
    }

    /// Whether the snapshot at `target` exists, opens, and shows the newest build.
    pub fn snapshot_is_current(&self, target: &Path) -> bool {
        let Ok(ours) = latest_build(&self.conn) else {
            return false;
        };
        SnapshotInfo::read(target).is_ok_and(|s| s.build == ours)
    }

    /// Publish to `target` unless the snapshot there already shows the newest build; whether
    /// a copy was written.
    pub fn ensure_published(&self, target: &Path) -> Result<bool, WarehouseError> {
        if self.snapshot_is_current(target) {
            return Ok(false);
        }
        self.publish(target)?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::warehouse::OpenOptions;

    fn refused(conn: &Connection, sql: &str) -> String {
        match conn.execute_batch(sql) {
            Ok(()) => panic!("`{sql}` was allowed"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn a_locked_reader_cannot_write_reach_files_or_change_settings() {
        let dir = tempfile::tempdir().unwrap();
        let wh = Warehouse::open(dir.path().join("w.duckdb"), &OpenOptions::default()).unwrap();
        let market = dir.path().join("market");
        std::fs::create_dir_all(&market).unwrap();
        std::fs::write(market.join("ok.csv"), "a\n1\n").unwrap();
        std::fs::write(dir.path().join("secret.csv"), "a\n2\n").unwrap();
        let snapshot = dir.path().join("snap/r.duckdb");
        let info = wh.publish(&snapshot).unwrap();
        assert_eq!(info.build, 0);
        let options = ReaderOptions {
            readable: vec![market.clone()],
            ..Default::default()
        };
        let ro = open_locked(&snapshot, &options).unwrap();
        let count = |c: &Connection| -> i64 {
            c.query_row("SELECT count(*) FROM listeners", [], |r| r.get(0))
                .unwrap()
        };
        assert_eq!(count(&ro), count(wh.conn()), "it reads the published copy");
        refused(&ro, "DELETE FROM listeners");
        refused(&ro, "CREATE TABLE t AS SELECT 1");
        refused(&ro, "SET memory_limit = '10GB'");
        refused(&ro, "SET enable_external_access = true");
        refused(&ro, "RESET lock_configuration");
        refused(&ro, "PRAGMA memory_limit = '10GB'");
        refused(&ro, "INSTALL httpfs");
        refused(
            &ro,
            &format!(
                "ATTACH '{}' AS other",
                dir.path().join("w2.duckdb").display()
            ),
        );
        let secret = format!(
            "SELECT * FROM read_csv('{}')",
            dir.path().join("secret.csv").display()
        );
        assert!(ro.query_row(&secret, [], |r| r.get::<_, i64>(0)).is_err());
        let allowed = format!(
            "SELECT a FROM read_csv('{}')",
            market.join("ok.csv").display()
        );
        let a: i64 = ro.query_row(&allowed, [], |r| r.get(0)).unwrap();
        assert_eq!(a, 1);
        let limit: String = ro
            .query_row("SELECT current_setting('memory_limit')", [], |r| r.get(0))
            .unwrap();
        assert!(limit.contains("MiB") || limit.contains("MB"), "{limit}");
    }

    #[test]
    fn a_snapshot_is_current_until_the_next_build() {
        let dir = tempfile::tempdir().unwrap();
        let wh = Warehouse::open(dir.path().join("w.duckdb"), &OpenOptions::default()).unwrap();
        let snapshot = dir.path().join("snap/r.duckdb");
        assert!(!wh.snapshot_is_current(&snapshot), "none yet");
        assert!(wh.ensure_published(&snapshot).unwrap());
        assert!(!wh.ensure_published(&snapshot).unwrap(), "already current");
        wh.conn()
            .execute_batch(
                "INSERT INTO meta.model_runs VALUES (7, 'm', 'model', 'success', 1, 1, now(), NULL)",
            )
            .unwrap();
        assert!(!wh.snapshot_is_current(&snapshot));
        assert!(wh.ensure_published(&snapshot).unwrap());
        let info = SnapshotInfo::read(&snapshot).unwrap();
        assert_eq!(info.build, 7);
        assert!(info.describe().contains("build 7"), "{}", info.describe());
    }
}
