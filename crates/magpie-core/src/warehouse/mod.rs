//! The warehouse: one DuckDB file, opened for writing by exactly one magpie process, with its
//! schema brought up to date by versioned migrations at open.
//!
//! ```no_run
//! use magpie_core::warehouse::{Warehouse, OpenOptions};
//! let wh = Warehouse::open("data/magpie.duckdb", &OpenOptions::default()).unwrap();
//! let n: i64 = wh.conn().query_row("SELECT count(*) FROM raw.listen_events", [], |r| r.get(0)).unwrap();
//! # let _ = n;
//! ```

pub mod backup;
mod migrations;
pub mod reader;

use std::path::{Path, PathBuf};

use bytesize::ByteSize;
use duckdb::{AccessMode, Connection};

pub use migrations::{MIGRATIONS, Migration};

/// Errors opening or migrating the warehouse.
#[derive(Debug, thiserror::Error)]
pub enum WarehouseError {
    #[error(
        "the warehouse {path} is open in another process (DuckDB allows one writer per file); \
         stop the other magpie, or read a snapshot instead"
    )]
    Locked { path: PathBuf },
    #[error("no warehouse at {path} yet: run `magpie import` or `magpie demo` first")]
    Missing { path: PathBuf },
    #[error(
        "the warehouse {path} has schema version {found}, newer than this magpie knows ({known}); \
         upgrade magpie or restore a backup made by this version"
    )]
    TooNew {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    #[error("migration {version} ({name}) failed on {path}: {source}")]
    Migration {
        path: PathBuf,
        version: i64,
        name: &'static str,
        source: duckdb::Error,
    },
    #[error("cannot create {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("warehouse {path}: {source}")]
    DuckDb {
        path: PathBuf,
        source: duckdb::Error,
    },
    #[error(
        "no space left on device for a checkpoint of {path}: it may need {} MB and {} MB are free; the changes are kept in its write-ahead log",
        needed.div_ceil(1_000_000),
        available / 1_000_000
    )]
    NoSpace {
        path: PathBuf,
        needed: u64,
        available: u64,
    },
    #[error("{0}")]
    Other(String),
}

/// The gate between transactions that add listening events (they hold it shared) and a build
/// reading the highest event id (it holds it alone, for that one query): every id up to that
/// watermark is then committed, so an incremental model that has read up to it has missed
/// none. (Ids come from a sequence when an insert runs; a transaction that took lower ids may
/// commit after one that took higher ones.) One per process, as the warehouse is.
pub fn ingest_gate() -> &'static std::sync::RwLock<()> {
    static GATE: std::sync::RwLock<()> = std::sync::RwLock::new(());
    &GATE
}

/// The gate between builds (they hold it shared for their whole run) and the operations that
/// rewrite or delete listening events already stored (merging and removing listeners hold it
/// alone): a build that read the old events must not record its incremental state after such
/// an operation cleared it. One per process, as the warehouse is; take it before
/// [`ingest_gate`].
pub fn rewrite_gate() -> &'static std::sync::RwLock<()> {
    static GATE: std::sync::RwLock<()> = std::sync::RwLock::new(());
    &GATE
}

/// Room a checkpoint needs beyond the WAL's size (DuckDB's metadata and free-list blocks).
const CHECKPOINT_MARGIN: u64 = 1 << 20;

/// How to open the warehouse.
#[derive(Debug, Clone)]
pub struct OpenOptions {
    /// DuckDB's `memory_limit`.
    pub memory_limit: ByteSize,
    /// DuckDB worker threads.
    pub threads: usize,
    /// Where DuckDB spills when a query needs more than `memory_limit`.
    pub temp_directory: Option<PathBuf>,
}

impl Default for OpenOptions {
    fn default() -> Self {
        Self {
            memory_limit: ByteSize::mb(160),
            threads: std::thread::available_parallelism().map_or(2, |n| n.get().min(4)),
            temp_directory: None,
        }
    }
}

/// DuckDB's `memory_limit`, in percent of magpie's `memory_budget`; the rest is the binary's
/// code pages (~45 MiB), DuckDB's allocations outside its pool (~15 MiB of small objects),
/// the pages jemalloc has not yet handed back (5-20 MiB) and the web server.
///
/// Measured on the 350,000-play demo build at the default 160 MB budget, two cores, ten runs
/// alternating each pair: 40 % peaked at 138-148 MiB, 38 % at 137-145, 36 % at 135-145
/// (median 137 MiB, 144 MB) and 34 % at 129-133 for 5 % more wall time; 36 % cost no
/// measurable wall time. The price is paid by far bigger histories: a 10,000,000-play build
/// is at the edge at any of these shares. int_plays ran out of memory on two threads (and then
/// took 35-70 s alone on one) in 1 of 3 runs of it at 40 % and 3 of 3 at 36 %; whole builds
/// at 36 % took 65, 67 and 104 s (65 s at 40 %), and 62 s at a 256 MB budget (45 s at 40 %).
pub const DUCKDB_SHARE_PERCENT: u64 = 36;

impl OpenOptions {
    /// Derive DuckDB settings from magpie's one memory budget. DuckDB's buffer pool gets
    /// [`DUCKDB_SHARE_PERCENT`] of it (at least 48 MB); the rest is the binary's code pages,
    /// DuckDB's allocations outside its pool, parse buffers and the web server.
    pub fn from_budget(budget: ByteSize, data_dir: &Path) -> Self {
        let limit = (budget.as_u64() * DUCKDB_SHARE_PERCENT / 100).max(ByteSize::mb(48).as_u64());
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        // Below 256 MB one thread per 64 MB keeps per-thread buffers inside the limit.
        let by_memory = (budget.as_u64() / ByteSize::mb(64).as_u64()).max(1) as usize;
        Self {
            memory_limit: ByteSize::b(limit),
            threads: cores.min(by_memory).clamp(1, 8),
            temp_directory: Some(data_dir.join("tmp")),
        }
    }
}

/// Run `work` in one transaction on `conn`: committed when it succeeds, rolled back when it
/// fails, so a reader (or a crash) sees all of it or none.
pub fn in_transaction<T>(
    conn: &Connection,
    work: impl FnOnce() -> duckdb::Result<T>,
) -> duckdb::Result<T> {
    conn.execute_batch("BEGIN TRANSACTION")?;
    match work() {
        Ok(value) => {
            conn.execute_batch("COMMIT")?;
            Ok(value)
        }
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

/// The open, migrated warehouse with its one writing connection.
pub struct Warehouse {
    path: PathBuf,
    conn: Connection,
}

impl Warehouse {
    /// Open (creating if needed) the warehouse for writing and apply pending migrations.
    pub fn open(path: impl AsRef<Path>, options: &OpenOptions) -> Result<Self, WarehouseError> {
        let path = path.as_ref().to_path_buf();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|source| WarehouseError::Io {
                path: parent.to_path_buf(),
                source,
            })?;
        }
        let config = duckdb_config(options, AccessMode::ReadWrite).map_err(|e| db(&path, e))?;
        let conn =
            Connection::open_in_memory_with_flags(config).map_err(|e| open_error(&path, e))?;
        attach_as_default(&conn, &path).map_err(|e| open_error(&path, e))?;
        apply_settings(&conn, options).map_err(|e| db(&path, e))?;
        migrations::migrate(&conn, &path)?;
        Ok(Self { path, conn })
    }

    /// Open an existing warehouse as a locked-down reader ([`reader::open_locked`] with its
    /// default options): it cannot write, read files or change its settings.
    pub fn open_read_only(path: impl AsRef<Path>) -> Result<Connection, WarehouseError> {
        reader::open_locked(path.as_ref(), &reader::ReaderOptions::default())
    }

    /// The writing connection. DuckDB connections are `Send` but not `Sync`: clone one per
    /// thread with [`Warehouse::try_clone`].
    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    /// A further connection to the same database (for another thread).
    pub fn try_clone(&self) -> Result<Connection, WarehouseError> {
        self.conn.try_clone().map_err(|e| db(&self.path, e))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The id of a listener by name, creating the listener when it does not exist yet.
    pub fn listener_id(&self, name: &str) -> Result<i32, WarehouseError> {
        listener_id_in(&self.conn, name).map_err(|e| db(&self.path, e))
    }

    /// Write everything to the database file and truncate the WAL.
    ///
    /// Not when the disk has less room than the WAL holds (what the checkpoint may have to
    /// write): a checkpoint that runs out of space invalidates the database for the rest of
    /// the process (DuckDB's rule), so nothing more, not even a failed run, could be recorded.
    /// The changes stay in the WAL, which the next open or checkpoint writes out.
    pub fn checkpoint(&self) -> Result<(), WarehouseError> {
        let wal = std::fs::metadata(format!("{}.wal", self.path.display())).map_or(0, |m| m.len());
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let disk = crate::host::DiskState::read(dir);
        let available = disk.available_bytes;
        if wal > 0 && disk.total_bytes > 0 && available < wal + CHECKPOINT_MARGIN {
            return Err(WarehouseError::NoSpace {
                path: self.path.clone(),
                needed: wal + CHECKPOINT_MARGIN,
                available,
            });
        }
        self.conn
            .execute_batch("CHECKPOINT")
            .map_err(|e| db(&self.path, e))
    }
}

fn duckdb_config(options: &OpenOptions, mode: AccessMode) -> duckdb::Result<duckdb::Config> {
    duckdb::Config::default()
        .access_mode(mode)?
        .max_memory(&format!("{}MB", options.memory_limit.as_u64() / 1_000_000))?
        .threads(options.threads as i64)?
        // Extensions are never fetched at run time: what magpie needs is compiled in.
        .enable_autoload_extension(false)
}

/// Rows per row group in the tables the writer creates (DuckDB's default: 122,880). A
/// 313,000-row model is then ten groups, not three: DuckDB's threads share its writing
/// evenly, each buffers a quarter as much before flushing (less spilling inside a small
/// `memory_limit`), and the part-filled groups left for the checkpoint are smaller. Measured,
/// `magpie build` at 350,000 plays, 8-10 runs alternating with the default: 4-14 % less
/// median wall in each of six sets (e.g. 2.53 -> 2.39 s); 65,536 gained 5 %, 16,384 as much
/// as this, 8,192 lost 4 %. The cost: a fifth more file (the 350k demo: 70 -> 85 MB), as
/// each group compresses on its own, and ~5 MiB more peak RSS.
pub const ROW_GROUP_SIZE: u32 = 32_768;

/// Attach the warehouse file to `conn`'s in-memory database with magpie's storage options
/// (DuckDB reads `ROW_GROUP_SIZE` only from `ATTACH`, not from a connection's settings), under
/// the name DuckDB gives it when opened directly (the file's stem), and make it the default
/// database of every connection, the ones cloned later included: the in-memory database is
/// detached, so nothing can be written there by mistake.
fn attach_as_default(conn: &Connection, path: &Path) -> duckdb::Result<()> {
    let quoted = path.to_string_lossy().replace('\'', "''");
    conn.execute_batch(&format!(
        "ATTACH '{quoted}' (ROW_GROUP_SIZE {ROW_GROUP_SIZE})"
    ))?;
    let name: String = conn.query_row(
        "SELECT database_name FROM duckdb_databases() WHERE NOT internal AND database_name <> 'memory'",
        [],
        |r| r.get(0),
    )?;
    let name = name.replace('"', "\"\"");
    conn.execute_batch(&format!("USE \"{name}\"; DETACH memory"))
}

fn apply_settings(conn: &Connection, options: &OpenOptions) -> duckdb::Result<()> {
    if let Some(dir) = &options.temp_directory {
        let dir = dir.to_string_lossy().replace('\'', "''");
        conn.execute_batch(&format!("SET temp_directory = '{dir}'"))?;
    }
    conn.execute_batch("SET preserve_insertion_order = false")
}

fn open_error(path: &Path, e: duckdb::Error) -> WarehouseError {
    let text = e.to_string();
    if text.contains("Could not set lock") || text.contains("Conflicting lock") {
        WarehouseError::Locked {
            path: path.to_path_buf(),
        }
    } else {
        db(path, e)
    }
}

fn db(path: &Path, source: duckdb::Error) -> WarehouseError {
    WarehouseError::DuckDb {
        path: path.to_path_buf(),
        source,
    }
}

/// The listener's id on `conn`, added to `listeners` when the name is new (what
/// [`Warehouse::listener_id`] does, for code that holds a connection of its own).
pub fn listener_id_in(conn: &Connection, name: &str) -> duckdb::Result<i32> {
    let found: Option<i32> = conn
        .query_row(
            "SELECT listener_id FROM listeners WHERE name = ?",
            [name],
            |r| r.get(0),
        )
        .map(Some)
        .or_else(|e| match e {
            duckdb::Error::QueryReturnedNoRows => Ok(None),
            e => Err(e),
        })?;
    if let Some(id) = found {
        return Ok(id);
    }
    conn.query_row(
        "INSERT INTO listeners (listener_id, name)
         SELECT coalesce(max(listener_id), 0) + 1, ? FROM listeners
         RETURNING listener_id",
        [name],
        |r| r.get(0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_written_in_row_groups_of_row_group_size() {
        let dir = tempfile::tempdir().unwrap();
        let wh = Warehouse::open(dir.path().join("w.duckdb"), &OpenOptions::default()).unwrap();
        wh.conn()
            .execute_batch("CREATE TABLE t AS SELECT range AS i FROM range(100000)")
            .unwrap();
        let (groups, largest): (i64, i64) = wh
            .conn()
            .query_row(
                "SELECT count(*), max(n) FROM (
                     SELECT row_group_id, sum(count) AS n FROM pragma_storage_info('t')
                     WHERE column_path = '[0]' GROUP BY row_group_id)",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert!(largest <= ROW_GROUP_SIZE as i64, "{largest}");
        assert!(groups > 100_000 / ROW_GROUP_SIZE as i64, "{groups}");
    }

    #[test]
    fn every_connection_reads_and_writes_the_warehouse_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.duckdb");
        {
            let wh = Warehouse::open(&path, &OpenOptions::default()).unwrap();
            let clone = wh.try_clone().unwrap();
            // A clone of a clone too (the web server's and the model runner's pools do that).
            let grandchild = clone.try_clone().unwrap();
            for conn in [wh.conn(), &clone, &grandchild] {
                let name: String = conn
                    .query_row("SELECT current_database()", [], |r| r.get(0))
                    .unwrap();
                assert_eq!(name, "w");
            }
            grandchild
                .execute_batch("CREATE TABLE main.written_by_a_clone AS SELECT 42 AS answer")
                .unwrap();
            // No other database is attached for anything to land in by mistake.
            let databases: i64 = wh
                .conn()
                .query_row(
                    "SELECT count(*) FROM duckdb_databases() WHERE NOT internal",
                    [],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(databases, 1);
        }
        let ro = Warehouse::open_read_only(&path).unwrap();
        let answer: i64 = ro
            .query_row("SELECT answer FROM main.written_by_a_clone", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(answer, 42);
    }

    #[test]
    fn open_creates_and_migrates_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.duckdb");
        {
            let wh = Warehouse::open(&path, &OpenOptions::default()).unwrap();
            let applied: i64 = wh
                .conn()
                .query_row("SELECT count(*) FROM schema_migrations", [], |r| r.get(0))
                .unwrap();
            assert_eq!(applied, MIGRATIONS.len() as i64);
            assert_eq!(wh.listener_id("default").unwrap(), 1);
            assert_eq!(wh.listener_id("sam").unwrap(), 2);
            assert_eq!(wh.listener_id("sam").unwrap(), 2);
        }
        let wh = Warehouse::open(&path, &OpenOptions::default()).unwrap();
        let applied: i64 = wh
            .conn()
            .query_row("SELECT count(*) FROM schema_migrations", [], |r| r.get(0))
            .unwrap();
        assert_eq!(applied, MIGRATIONS.len() as i64);
    }

    #[test]
    fn newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.duckdb");
        {
            let wh = Warehouse::open(&path, &OpenOptions::default()).unwrap();
            wh.conn()
                .execute(
                    "INSERT INTO schema_migrations VALUES (999, 'from the future', now())",
                    [],
                )
                .unwrap();
        }
        let err = Warehouse::open(&path, &OpenOptions::default())
            .err()
            .expect("must refuse");
        assert!(
            matches!(err, WarehouseError::TooNew { found: 999, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("newer than this magpie knows"));
        let err = Warehouse::open_read_only(&path).expect_err("must refuse");
        assert!(matches!(err, WarehouseError::TooNew { .. }));
    }

    #[test]
    fn read_only_connection_cannot_write_or_read_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.duckdb");
        drop(Warehouse::open(&path, &OpenOptions::default()).unwrap());
        let ro = Warehouse::open_read_only(&path).unwrap();
        assert!(ro.execute_batch("DELETE FROM listeners").is_err());
        let secret = dir.path().join("secret.csv");
        std::fs::write(&secret, "a\n1\n").unwrap();
        let sql = format!("SELECT * FROM read_csv('{}')", secret.display());
        assert!(
            ro.prepare(&sql)
                .and_then(|mut s| s.query([]).map(|_| ()))
                .is_err()
        );
        let missing = Warehouse::open_read_only(dir.path().join("nope.duckdb"))
            .err()
            .unwrap();
        assert!(matches!(missing, WarehouseError::Missing { .. }));
    }

    #[test]
    fn budget_drives_duckdb_settings() {
        let o = OpenOptions::from_budget(ByteSize::mb(256), Path::new("/d"));
        assert_eq!(o.memory_limit, ByteSize::mb(92) + ByteSize::kb(160));
        assert!(o.threads >= 1 && o.threads <= 4);
        assert_eq!(o.temp_directory.as_deref(), Some(Path::new("/d/tmp")));
    }
}
