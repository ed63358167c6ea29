//! The process and the machine it runs on: magpie's RSS and CPU time, host memory and swap,
//! and the disk that holds the data folder (via `sysinfo`), with the warnings a small box
//! needs (swap in use, disk nearly full, RSS over the memory budget). Used by `/metrics`, the
//! status page and `magpie doctor`.

use std::path::Path;

use serde::Serialize;
use sysinfo::{Disks, ProcessesToUpdate, System};

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
    /// The disk holding the data folder.
    pub disk_total_bytes: u64,
    pub disk_available_bytes: u64,
    /// Everything under the data folder (warehouse, backups, logs, snapshot).
    pub data_dir_bytes: u64,
    pub warnings: Vec<String>,
}

/// Disk space below this share counts as nearly full.
const DISK_LOW: f64 = 0.10;

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
        let disks = Disks::new_with_refreshed_list();
        let disk = disks
            .list()
            .iter()
            .filter(|d| data_dir.starts_with(d.mount_point()))
            .max_by_key(|d| d.mount_point().as_os_str().len());
        let mut status = HostStatus {
            process_rss_bytes: process.map_or(0, |p| p.memory()),
            process_cpu_seconds: process.map_or(0.0, |p| p.accumulated_cpu_time() as f64 / 1000.0),
            memory_budget_bytes: budget,
            host_memory_bytes: sys.total_memory(),
            host_available_bytes: sys.available_memory(),
            swap_total_bytes: sys.total_swap(),
            swap_used_bytes: sys.used_swap(),
            disk_total_bytes: disk.map_or(0, |d| d.total_space()),
            disk_available_bytes: disk.map_or(0, |d| d.available_space()),
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
        if self.disk_total_bytes > 0
            && (self.disk_available_bytes as f64) < self.disk_total_bytes as f64 * DISK_LOW
        {
            out.push(format!(
                "the disk holding the data folder is nearly full ({:.0} MB free of {:.0} MB)",
                mb(self.disk_available_bytes),
                mb(self.disk_total_bytes)
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
        assert!(s.disk_total_bytes > 0);
        assert!(
            s.warnings
                .iter()
                .any(|w| w.contains("more than its memory_budget"))
        );
        let s = HostStatus::read(dir.path(), u64::MAX);
        assert!(!s.warnings.iter().any(|w| w.contains("memory_budget")));
    }
}
