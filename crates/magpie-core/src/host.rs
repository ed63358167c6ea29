//! The process and the machine it runs on: magpie's RSS and CPU time, host memory and swap
//! (via `sysinfo`), and the filesystem that holds the data folder ([`DiskState`]), with the
//! warnings a small box needs (swap in use, disk full or nearly full, data folder read-only,
//! RSS over the memory budget). Used by `/metrics`, the status page and `magpie doctor`;
//! [`disk_failure`] tells an error that came from a full or read-only disk.

use std::path::{Path, PathBuf};

use serde::Serialize;
use sysinfo::{ProcessesToUpdate, System};

/// A reading.
#[derive(Debug, Clone, Default, Serialize)]
pub struct HostStatus {
    pub process_rss_bytes: u64,
    pub process_cpu_seconds: f64,
    pub memory_budget_bytes: u64,
    pub host_memory_bytes: u64,
    pub host_available_bytes: u64,
    pub swap_total_bytes: u64,
    pub swap_used_bytes: u64,
    /// The filesystem holding the data folder.
    #[serde(flatten)]
    pub disk: DiskState,
    /// Everything under the data folder (warehouse, backups, logs, snapshot).
    pub data_dir_bytes: u64,
    pub warnings: Vec<String>,
}

/// Disk space below this share counts as nearly full.
const DISK_LOW: f64 = 0.10;

/// Disk space below this share of the filesystem, and below [`DISK_FULL_BYTES`], counts as
/// full: the next import, build, backup or market file may not fit.
const DISK_FULL: f64 = 0.02;
const DISK_FULL_BYTES: u64 = 100_000_000;

/// The filesystem holding the data folder, measured with `statvfs(3)` on the folder itself
/// (or its nearest existing parent), so a tmpfs or a volume mounted there is what is measured.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct DiskState {
    /// The folder measured.
    #[serde(rename = "disk_path")]
    pub path: PathBuf,
    /// 0 when it cannot be measured.
    #[serde(rename = "disk_total_bytes")]
    pub total_bytes: u64,
    /// Free to an unprivileged user (what is left before writes fail with "no space left").
    #[serde(rename = "disk_available_bytes")]
    pub available_bytes: u64,
    /// Mounted read-only.
    #[serde(rename = "disk_read_only")]
    pub read_only: bool,
    /// This process may create files in the folder (`access(2)`: false on a read-only mount
    /// or without write permission).
    #[serde(rename = "disk_writable")]
    pub writable: bool,
}

impl DiskState {
    /// Measure the filesystem of `dir` now.
    pub fn read(dir: &Path) -> Self {
        let path = dir
            .ancestors()
            .find(|p| p.is_dir())
            .unwrap_or(Path::new("."))
            .to_path_buf();
        let (total_bytes, available_bytes, read_only, writable) = statvfs(&path);
        DiskState {
            path,
            total_bytes,
            available_bytes,
            read_only,
            writable,
        }
    }

    /// Too little space for the next write: below [`DISK_FULL`] of the filesystem and below
    /// [`DISK_FULL_BYTES`].
    pub fn full(&self) -> bool {
        self.total_bytes > 0
            && (self.available_bytes as f64) < self.total_bytes as f64 * DISK_FULL
            && self.available_bytes < DISK_FULL_BYTES
    }

    /// What is wrong with the data folder's disk (read-only, not writable, full), in a
    /// sentence naming the folder; `None` when nothing is.
    pub fn problem(&self) -> Option<String> {
        let dir = self.path.display();
        if self.read_only {
            Some(format!(
                "the data folder {dir} is on a read-only file system: imports, builds, backups and market files fail until it is mounted read-write"
            ))
        } else if !self.writable {
            Some(format!(
                "magpie may not write in the data folder {dir}: give the user magpie runs write access (Docker: `user:` in the compose file)"
            ))
        } else if self.full() {
            Some(format!(
                "the disk holding the data folder {dir} is full ({:.1} MB free of {:.1} MB): imports, builds, backups and market files fail until space is freed",
                self.available_bytes as f64 / 1e6,
                self.total_bytes as f64 / 1e6
            ))
        } else {
            None
        }
    }
}

/// Total and available bytes, read-only mount, writable by this process.
#[cfg(unix)]
// statvfs's field types differ between platforms (u64 on Linux, u32 on some others).
#[allow(clippy::unnecessary_cast)]
fn statvfs(path: &Path) -> (u64, u64, bool, bool) {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c_path) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return (0, 0, false, false);
    };
    let mut stat = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c_path` is a NUL-terminated string and `stat` a buffer of the right type,
    // which statvfs fills in when it returns 0.
    let (measured, writable) = unsafe {
        let measured =
            (libc::statvfs(c_path.as_ptr(), stat.as_mut_ptr()) == 0).then(|| stat.assume_init());
        (measured, libc::access(c_path.as_ptr(), libc::W_OK) == 0)
    };
    match measured {
        Some(s) => {
            let unit = s.f_frsize as u64;
            (
                s.f_blocks as u64 * unit,
                s.f_bavail as u64 * unit,
                s.f_flag & libc::ST_RDONLY != 0,
                writable,
            )
        }
        None => (0, 0, false, writable),
    }
}

#[cfg(not(unix))]
fn statvfs(path: &Path) -> (u64, u64, bool, bool) {
    let writable = std::fs::metadata(path).is_ok_and(|m| !m.permissions().readonly());
    (0, 0, false, writable)
}

/// Why a write failed, when it was the disk: full (or over quota), or read-only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskFailure {
    Full,
    ReadOnly,
}

/// Whether an error's text (an I/O error, or DuckDB's, which carry the OS's message) says the
/// disk was full or read-only. DuckDB's "failed to offload data block" under
/// `max_temp_directory_size` counts as full: that limit is the free space of the disk holding
/// its temporary folder, though DuckDB calls it running out of memory.
pub fn disk_failure(message: &str) -> Option<DiskFailure> {
    const FULL: [&str; 5] = [
        "no space left on device",
        "os error 28",
        "disk quota exceeded",
        "os error 122",
        "max_temp_directory_size",
    ];
    const READ_ONLY: [&str; 2] = ["read-only file system", "os error 30"];
    let message = message.to_lowercase();
    if FULL.iter().any(|m| message.contains(m)) {
        Some(DiskFailure::Full)
    } else if READ_ONLY.iter().any(|m| message.contains(m)) {
        Some(DiskFailure::ReadOnly)
    } else {
        None
    }
}

impl HostStatus {
    /// Read it now; `budget` is the configured memory budget.
    pub fn read(data_dir: &Path, budget: u64) -> Self {
        Self::read_with_folder_size(data_dir, budget, folder_size)
    }

    /// Read it now, with the data folder's size from `folder_bytes` (a cached figure: walking
    /// a large data folder on every `/metrics` scrape costs more than the scrape).
    pub fn read_with_folder_size(
        data_dir: &Path,
        budget: u64,
        folder_bytes: impl FnOnce(&Path) -> u64,
    ) -> Self {
        let mut sys = System::new();
        sys.refresh_memory();
        let pid = sysinfo::get_current_pid().ok();
        if let Some(pid) = pid {
            sys.refresh_processes(ProcessesToUpdate::Some(&[pid]), false);
        }
        let process = pid.and_then(|p| sys.process(p));
        let data_dir = std::fs::canonicalize(data_dir).unwrap_or_else(|_| data_dir.to_path_buf());
        let mut status = HostStatus {
            process_rss_bytes: process.map_or(0, |p| p.memory()),
            process_cpu_seconds: process.map_or(0.0, |p| p.accumulated_cpu_time() as f64 / 1000.0),
            memory_budget_bytes: budget,
            host_memory_bytes: sys.total_memory(),
            host_available_bytes: sys.available_memory(),
            swap_total_bytes: sys.total_swap(),
            swap_used_bytes: sys.used_swap(),
            disk: DiskState::read(&data_dir),
            data_dir_bytes: folder_bytes(&data_dir),
            warnings: Vec::new(),
        };
        status.warnings = status.warn();
        status
    }

    fn warn(&self) -> Vec<String> {
        let mb = |b: u64| b as f64 / 1e6;
        let mut out = Vec::new();
        if self.swap_used_bytes > 64 * 1024 * 1024 {
            out.push(format!(
                "the machine is swapping ({:.0} MB of swap in use): pages and builds slow down; lower memory_budget or stop other containers",
                mb(self.swap_used_bytes)
            ));
        }
        if let Some(problem) = self.disk.problem() {
            out.push(problem);
        } else if self.disk.total_bytes > 0
            && (self.disk.available_bytes as f64) < self.disk.total_bytes as f64 * DISK_LOW
        {
            out.push(format!(
                "the disk holding the data folder is nearly full ({:.0} MB free of {:.0} MB)",
                mb(self.disk.available_bytes),
                mb(self.disk.total_bytes)
            ));
        }
        if self.memory_budget_bytes > 0 && self.process_rss_bytes > self.memory_budget_bytes {
            out.push(format!(
                "magpie uses {:.0} MB, more than its memory_budget of {:.0} MB",
                mb(self.process_rss_bytes),
                mb(self.memory_budget_bytes)
            ));
        }
        out
    }
}

/// Bytes of every file under `dir` (not following links).
pub fn folder_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => folder_size(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map_or(0, |m| m.len()),
            _ => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process_and_warns_over_budget() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), vec![0u8; 4096]).unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/b"), vec![0u8; 1000]).unwrap();
        let s = HostStatus::read(dir.path(), 1);
        assert!(s.process_rss_bytes > 1_000_000, "{s:?}");
        assert!(s.host_memory_bytes > s.process_rss_bytes);
        assert_eq!(s.data_dir_bytes, 5096);
        assert!(s.disk.total_bytes > 0 && s.disk.writable, "{s:?}");
        assert!(
            s.warnings
                .iter()
                .any(|w| w.contains("more than its memory_budget"))
        );
        let s = HostStatus::read(dir.path(), u64::MAX);
        assert!(!s.warnings.iter().any(|w| w.contains("memory_budget")));
    }

    #[test]
    fn tells_disk_failures_from_other_errors() {
        let full = "TransactionContext Error: Failed to commit: Could not write file \"/d/magpie.duckdb.wal\": No space left on device";
        assert_eq!(disk_failure(full), Some(DiskFailure::Full));
        let io = std::io::Error::from_raw_os_error(libc::ENOSPC).to_string();
        assert_eq!(disk_failure(&io), Some(DiskFailure::Full), "{io}");
        let ro = std::io::Error::from_raw_os_error(libc::EROFS).to_string();
        assert_eq!(disk_failure(&ro), Some(DiskFailure::ReadOnly), "{ro}");
        assert_eq!(
            disk_failure("Out of Memory Error: failed to allocate"),
            None
        );
    }

    #[test]
    fn a_full_or_read_only_disk_is_a_problem() {
        let roomy = DiskState {
            path: "/data".into(),
            total_bytes: 10_000_000_000,
            available_bytes: 2_000_000_000,
            read_only: false,
            writable: true,
        };
        assert_eq!(roomy.problem(), None);
        let full = DiskState {
            available_bytes: 50_000_000,
            ..roomy.clone()
        };
        assert!(
            full.problem()
                .unwrap()
                .contains("/data is full (50.0 MB free")
        );
        // A small filesystem is full only near its end; a large one below 100 MB.
        let small = DiskState {
            total_bytes: 8_000_000,
            available_bytes: 1_000_000,
            ..roomy.clone()
        };
        assert_eq!(small.problem(), None);
        let read_only = DiskState {
            read_only: true,
            writable: false,
            ..roomy
        };
        assert!(
            read_only
                .problem()
                .unwrap()
                .contains("read-only file system")
        );
    }
}
