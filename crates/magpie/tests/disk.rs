//! A full and a read-only data folder, on a small tmpfs mounted for each scenario: an import,
//! a flow run's build, a backup and the market collector's files running out of space
//! part-way, and a server watching its disk fill up and turn read-only. Each failure says
//! what happened and where, leaves nothing half-written (the warehouse opens with what it held
//! before; no partial backup, no unreadable Parquet file), is on record (a flow run is Failed,
//! not left Running), and once the filesystem is grown the same command finishes the job as an
//! uninterrupted run would have.
//!
//! Mounting needs root. Without it the tests say so and pass, unless REQUIRE_DISK_TESTS is
//! set (CI sets it): then they fail.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use magpie_core::host::DiskState;

mod common;

use common::{magpie, mart_rows, parquet_rows, recorded_ticker, run, stderr, stdout, wait_for};

/// A tmpfs mounted for one test, unmounted when dropped.
struct Tmpfs {
    /// Holds the mount point.
    _dir: tempfile::TempDir,
    mount: PathBuf,
}

impl Tmpfs {
    fn mount(size: &str) -> Result<Self, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let mount = dir.path().join("disk");
        std::fs::create_dir(&mount).map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&mount)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "cannot mount a tmpfs: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Tmpfs { _dir: dir, mount })
    }

    fn path(&self) -> &Path {
        &self.mount
    }

    /// `mount -o remount,OPTIONS`.
    fn remount(&self, options: &str) {
        let out = Command::new("mount")
            .args(["-o", &format!("remount,{options}")])
            .arg(&self.mount)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "remount,{options}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Resize to what is used now plus `headroom` bytes.
    fn leave_free(&self, headroom: u64) {
        let disk = DiskState::read(&self.mount);
        let used = disk.total_bytes - disk.available_bytes;
        self.remount(&format!("size={}k", (used + headroom).div_ceil(1024)));
        let free = DiskState::read(&self.mount).available_bytes;
        assert!(free < headroom + 64 * 1024, "{free} free");
    }

    fn available(&self) -> u64 {
        DiskState::read(&self.mount).available_bytes
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // With what is mounted inside it (a read-only bind of the data folder).
        let unmounted = Command::new("umount")
            .arg("-R")
            .arg(&self.mount)
            .status()
            .is_ok_and(|s| s.success());
        if !unmounted {
            // Still busy: detach it.
            let _ = Command::new("umount")
                .args(["-R", "-l"])
                .arg(&self.mount)
                .status();
        }
    }
}

/// A magpie started in the background, killed if the test ends before it does (a failed
/// assertion), so it does not hold the mount.
struct Running(std::process::Child);

impl Running {
    fn spawn(cmd: &mut Command) -> Self {
        Running(cmd.spawn().unwrap())
    }

    /// SIGTERM, then its exit status.
    fn stop(&mut self) -> std::process::ExitStatus {
        let sent = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        self.0.wait().unwrap()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.0.try_wait().is_ok_and(|s| s.is_none()) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// A tmpfs of `size`, or None (with a notice) when this machine cannot mount one and
/// REQUIRE_DISK_TESTS is unset.
fn tmpfs(size: &str) -> Option<Tmpfs> {
    match Tmpfs::mount(size) {
        Ok(disk) => Some(disk),
        Err(why) if std::env::var_os("REQUIRE_DISK_TESTS").is_some() => {
            panic!("REQUIRE_DISK_TESTS is set, but {why}")
        }
        Err(why) => {
            eprintln!(
                "skipped: {why} (the disk tests need root to mount a tmpfs; REQUIRE_DISK_TESTS=1 fails instead)"
            );
            None
        }
    }
}

/// `magpie --data-dir DATA --config WORK/magpie.toml ARGS...` run in `work`.
fn magpie_in(work: &Path, data: &Path, args: &[&str]) -> Command {
    let mut cmd = magpie(work);
    cmd.arg("--data-dir")
        .arg(data)
        .args(["--config", "magpie.toml"]);
    cmd.args(args);
    cmd
}

/// A work folder (on the ordinary disk) with the configuration every scenario uses:
/// MusicBrainz unreachable at once (no network in a test), a failed daily-etl task not retried
/// a minute later, and `extra`.
fn work_folder(extra: &str) -> tempfile::TempDir {
    let work = tempfile::tempdir().unwrap();
    std::fs::write(
        work.path().join("magpie.toml"),
        format!(
            "[enrichment]\nmusicbrainz_url = \"http://127.0.0.1:9\"\nmusicbrainz_requests_per_second = 0.0\n\n[flows.daily_etl]\nretries = 0\n\n{extra}\n"
        ),
    )
    .unwrap();
    work
}

/// A work folder, and a demo warehouse of `plays` plays over a year in the folder `data` on
/// `disk`.
fn demo_on(disk: &Tmpfs, plays: &str) -> (tempfile::TempDir, PathBuf) {
    let work = work_folder("");
    let data = disk.path().join("data");
    let out = run(&mut magpie_in(
        work.path(),
        &data,
        &["demo", "--no-serve", "--plays", plays, "--years", "1"],
    ));
    assert!(out.status.success());
    (work, data)
}

/// A demo Spotify export of `plays` plays in several files under `work/export`.
fn export(work: &Path, plays: u32) {
    common::demo_export(work, plays.into(), 2, "export");
}

/// One number from `magpie sql`.
fn scalar(work: &Path, data: &Path, query: &str) -> i64 {
    let out = run(&mut magpie_in(
        work,
        data,
        &["sql", "--format", "csv", query],
    ));
    assert!(out.status.success(), "{query}");
    let text = stdout(&out);
    text.lines()
        .nth(1)
        .and_then(|l| l.parse().ok())
        .unwrap_or_else(|| panic!("{query}: {text}"))
}

/// Rows of every mart of the warehouse file `path`.
fn mart_counts(path: &Path) -> std::collections::BTreeMap<String, i64> {
    mart_rows(&magpie_core::Warehouse::open_read_only(path).unwrap())
}

/// The error line of a failed command (log lines may come before it).
fn error_line(out: &Output) -> String {
    assert!(!out.status.success(), "{}", stdout(out));
    let said = stderr(out);
    said.lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line: {said}"))
        .to_string()
}

/// The failed command's error, checked to say the disk was full and where.
fn says_no_space(out: &Output, data: &Path) {
    let said = error_line(out);
    assert!(
        said.starts_with(&format!(
            "error: no space left on device (the data folder {} has",
            data.display()
        )),
        "{said}"
    );
}

/// `magpie doctor --offline`'s line about `what`, and whether doctor failed.
fn doctor_line(work: &Path, data: &Path, what: &str) -> (String, bool) {
    let out = magpie_in(work, data, &["doctor", "--offline"])
        .output()
        .unwrap();
    let report = stdout(&out);
    let line = report
        .lines()
        .find(|l| l.get(6..).is_some_and(|rest| rest.starts_with(what)))
        .unwrap_or_else(|| panic!("no {what} line: {report}"))
        .to_string();
    (line, !out.status.success())
}

#[test]
fn an_import_that_fills_the_disk_fails_clearly_keeps_whole_files_and_resumes() {
    let Some(disk) = tmpfs("8m") else { return };
    let work = work_folder("");
    let work = work.path();
    let plays = 80_000;
    export(work, plays);
    let data = disk.path().join("data");

    // Six files, each needing a few MB while it is imported: the disk is full after one or two.
    let out = magpie_in(work, &data, &["import", "export"])
        .output()
        .unwrap();
    says_no_space(&out, &data);
    let lines = stdout(&out);
    assert!(lines.contains("imported  "), "some files fit: {lines}");
    assert!(
        lines.lines().any(|l| l.starts_with("FAILED")
            && l.contains("No space left on device")
            && l.contains(&data.display().to_string())),
        "{lines}"
    );
    // Whole files or nothing: the events are those of the completed batches.
    let events = scalar(work, &data, "SELECT count(*) FROM raw.listen_events");
    let completed = scalar(
        work,
        &data,
        "SELECT coalesce(sum(imported), 0) FROM raw.import_batches WHERE status = 'completed'",
    );
    assert_eq!(events, completed);
    assert!(events > 0 && events < i64::from(plays), "{events}");
    assert_eq!(
        scalar(
            work,
            &data,
            "SELECT count(*) FROM raw.import_batches WHERE status NOT IN ('completed', 'failed')"
        ),
        0
    );

    // Read-only: refused with the reason, and doctor says so.
    disk.remount("ro");
    let out = magpie_in(work, &data, &["import", "export"])
        .output()
        .unwrap();
    let said = error_line(&out);
    assert!(
        said.starts_with(&format!(
            "error: the data folder {} is on a read-only file system",
            data.display()
        )),
        "{said}"
    );
    let (line, failed) = doctor_line(work, &data, "data folder");
    assert!(failed && line.contains("read-only file system"), "{line}");
    disk.remount("rw");

    // Room again: the same command imports the rest, nothing twice.
    disk.remount("size=64m");
    let out = run(&mut magpie_in(work, &data, &["import", "export"]));
    assert!(out.status.success());
    assert_eq!(
        scalar(work, &data, "SELECT count(*) FROM raw.listen_events"),
        i64::from(plays)
    );
    assert_eq!(
        scalar(
            work,
            &data,
            "SELECT count(DISTINCT fingerprint) FROM raw.listen_events"
        ),
        i64::from(plays)
    );
    let (line, failed) = doctor_line(work, &data, "data folder");
    assert!(!failed && line.starts_with("ok"), "{line}");
    assert!(!data.join(".magpie-doctor-probe").exists());
}

#[test]
fn a_flow_run_whose_build_fills_the_disk_is_failed_and_the_next_run_completes() {
    let Some(disk) = tmpfs("96m") else { return };
    let work = work_folder("");
    let work = work.path();
    export(work, 80_000);
    // What an uninterrupted run builds, on the ordinary disk.
    let reference = work.join("reference");
    assert!(
        run(&mut magpie_in(work, &reference, &["import", "export"]))
            .status
            .success()
    );
    assert!(
        run(&mut magpie_in(work, &reference, &["build"]))
            .status
            .success()
    );
    let want = mart_counts(&reference.join("magpie.duckdb"));
    assert!(want.len() > 10, "{want:?}");

    let data = disk.path().join("data");
    assert!(
        run(&mut magpie_in(work, &data, &["import", "export"]))
            .status
            .success()
    );
    let events = scalar(work, &data, "SELECT count(*) FROM raw.listen_events");
    // Room for the space set aside to record the run (1 MiB) and a few models, not for the
    // marts: the disk is full when the build fails, and the run is recorded in that space
    // (without it, the run was left Running).
    disk.leave_free(3_500_000);
    let reserve = data.join("magpie.duckdb.reserve");
    let out = magpie_in(work, &data, &["run", "daily-etl"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = stdout(&out);
    let last = text.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("run 1 of daily-etl: Failed: build: ")
            && last.contains("No space left on device")
            && last.contains(&data.display().to_string()),
        "{text}"
    );
    let out = run(&mut magpie_in(work, &data, &["runs"]));
    let row = stdout(&out)
        .lines()
        .find(|l| l.split_whitespace().next() == Some("1"))
        .unwrap_or_default()
        .to_string();
    assert!(
        row.contains("daily-etl") && row.contains(" Failed ") && row.contains("No space left"),
        "{}",
        stdout(&out)
    );
    assert_eq!(
        scalar(
            work,
            &data,
            "SELECT count(*) FROM meta.task_runs WHERE run_id = 1 AND state NOT IN ('Completed', 'Failed')"
        ),
        0
    );
    assert_eq!(
        scalar(work, &data, "SELECT count(*) FROM raw.listen_events"),
        events
    );
    assert!(!reserve.exists(), "given back to record the run");

    disk.remount("size=160m");
    let out = run(&mut magpie_in(work, &data, &["run", "daily-etl"]));
    assert!(out.status.success());
    assert!(
        stdout(&out).contains("run 2 of daily-etl: Completed"),
        "{}",
        stdout(&out)
    );
    assert_eq!(mart_counts(&data.join("magpie.duckdb")), want);
    assert_eq!(
        mart_counts(&data.join("snapshot/magpie-readonly.duckdb")),
        want
    );
    assert!(reserve.exists(), "set aside again");
}

#[test]
fn a_backup_that_does_not_fit_leaves_no_backup_and_the_next_one_is_whole() {
    let Some(disk) = tmpfs("96m") else { return };
    let (work, data) = demo_on(&disk, "20000");
    let work = work.path();
    let before = mart_counts(&data.join("magpie.duckdb"));
    let warehouse = std::fs::metadata(data.join("magpie.duckdb")).unwrap().len();
    disk.leave_free(warehouse / 2);

    let out = magpie_in(work, &data, &["backup"]).output().unwrap();
    says_no_space(&out, &data);
    let backups = data.join("backups");
    let left: Vec<_> = std::fs::read_dir(&backups)
        .map(|d| d.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "nothing passed off as a backup: {left:?}");
    assert_eq!(mart_counts(&data.join("magpie.duckdb")), before);

    disk.remount("size=160m");
    let out = run(&mut magpie_in(work, &data, &["backup"]));
    assert!(out.status.success());
    let path = stdout(&out)
        .split_whitespace()
        .nth(1)
        .map(PathBuf::from)
        .unwrap();
    assert_eq!(mart_counts(&path), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_market_collector_on_a_full_disk_leaves_only_whole_files_and_goes_on() {
    use magpie_fakes::deribit::{self as fake, FakeDeribit};
    let Some(instruments) = fake::recorded_btc_eth_instruments() else {
        return;
    };
    let Some(template) = recorded_ticker() else {
        return;
    };
    let Some(disk) = tmpfs("64m") else { return };
    let wanted = instruments
        .iter()
        .filter(|i| i["kind"] == "option" || i["settlement_period"] == "perpetual")
        .count();
    let fake = FakeDeribit::start(0, instruments).await.unwrap();
    let work = work_folder(&format!(
        "[market]\nenabled = true\nurl = \"{}\"\nconnections = 2\nsubscribes_per_second = 20\nfile_interval = \"1s\"\nflush_rows = 256\nstall_timeout = \"60s\"",
        fake.url()
    ));
    let work = work.path();
    let data = disk.path().join("data");
    let root = data.join("market");
    let files = |extension: &str| magpie_market::sink::files::under(&root, extension);
    // Its log (stderr) on the ordinary disk.
    let log = work.join("stderr.log");
    let logged = || std::fs::read_to_string(&log).unwrap_or_default();
    let mut child = Running::spawn(
        magpie_in(work, &data, &["market", "run"])
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap()),
    );
    wait_for("subscriptions", 60, || {
        assert!(
            child.0.try_wait().unwrap().is_none(),
            "the collector ended: {}",
            logged()
        );
        let quotes = fake
            .subscriptions()
            .values()
            .flatten()
            .filter(|c| c.starts_with("quote."))
            .count();
        quotes >= wanted
    })
    .await;
    // Then the disk has little room left, and a stream far bigger than that arrives.
    disk.leave_free(2_000_000);
    let start = chrono::Utc::now().timestamp_millis();
    let asked = common::blast_generated(&fake, 3_000_000, &template, start);
    assert_eq!(asked, 2);
    wait_for("the disk full", 60, || disk.available() < 64 * 1024).await;
    // A few file intervals on a full disk.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let finished = files("parquet");
    for file in &finished {
        parquet_rows(file).unwrap_or_else(|e| panic!("{} is unreadable: {e}", file.display()));
    }
    let unfinished = files("tmp");
    assert!(
        unfinished.len() <= 8,
        "one open file per partition at most: {unfinished:?}"
    );
    assert!(
        child.0.try_wait().unwrap().is_none(),
        "the collector goes on"
    );

    // Room again: new files are written.
    disk.remount("size=256m");
    let before = finished.len();
    wait_for("new files", 30, || files("parquet").len() > before + 2).await;
    let status = child.stop();
    let mut said = String::new();
    child
        .0
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut said)
        .unwrap();
    let logged = logged();
    assert!(status.success(), "{said}\n{logged}");
    assert!(
        logged.contains("No space left on device"),
        "the log says why rows were lost: {logged}"
    );
    // A file whose write failed is dropped at once, not written on (its writer is broken),
    // and the failures are counted, not each logged.
    assert!(
        !logged.contains("Previous row group writer was not closed"),
        "{logged}"
    );
    assert!(logged.lines().count() < 20, "{logged}");
    assert!(files("tmp").is_empty());
    for file in files("parquet") {
        parquet_rows(&file).unwrap_or_else(|e| panic!("{} is unreadable: {e}", file.display()));
    }
}

#[test]
fn serve_shows_the_disk_filling_up_and_turning_read_only() {
    let Some(disk) = tmpfs("64m") else { return };
    let (work, data) = demo_on(&disk, "1500");
    let work = work.path();
    let mut child = Running::spawn(
        magpie_in(
            work,
            &data,
            &["serve", "--port", "0", "--bind", "127.0.0.1"],
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::null()),
    );
    let mut stdout = BufReader::new(child.0.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let address = line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("{line}"))
        .to_string();
    let get = |path: &str| {
        let mut stream = std::net::TcpStream::connect(&address).unwrap();
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response
    };
    let gauge = |metrics: &str, name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no {name} in /metrics"))
            .trim()
            .parse()
            .unwrap()
    };
    let status = || -> serde_json::Value {
        let response = get("/status?format=json");
        serde_json::from_str(response.split("\r\n\r\n").nth(1).unwrap_or_default())
            .unwrap_or_else(|e| panic!("{e}: {response}"))
    };

    // The tmpfs itself is measured, not the disk under it.
    let metrics = get("/metrics");
    assert_eq!(
        gauge(&metrics, "magpie_data_disk_total_bytes"),
        64.0 * 1024.0 * 1024.0
    );
    assert_eq!(gauge(&metrics, "magpie_data_disk_writable"), 1.0);
    assert_eq!(gauge(&metrics, "magpie_data_disk_full"), 0.0);
    let shown = status();
    assert_eq!(shown["disk_writable"], true);
    assert!(
        !shown["warnings"].to_string().contains("data folder"),
        "{shown}"
    );

    // Something else fills the disk.
    let filler = disk.path().join("filler");
    let mut file = std::fs::File::create(&filler).unwrap();
    let chunk = vec![1u8; 1 << 20];
    while file.write_all(&chunk).is_ok() {}
    drop(file);
    let metrics = get("/metrics");
    assert_eq!(gauge(&metrics, "magpie_data_disk_full"), 1.0);
    assert!(gauge(&metrics, "magpie_data_disk_available_bytes") < 1_000_000.0);
    let shown = status();
    let warnings = shown["warnings"].to_string();
    assert!(
        warnings.contains(&format!(
            "the disk holding the data folder {} is full",
            std::fs::canonicalize(&data).unwrap().display()
        )),
        "{shown}"
    );
    let page = get("/status");
    assert!(page.contains(" is full ("), "the page shows it");
    let (line, failed) = doctor_line(work, &data, "data folder");
    assert!(failed && line.contains("is full"), "{line}");

    // Read-only: the server holds its files open for writing, so a read-only bind mount of
    // the data folder over itself is what turns it read-only under it.
    std::fs::remove_file(&filler).unwrap();
    let mount = |args: &[&str]| {
        let out = Command::new("mount").args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let folder = data.to_str().unwrap();
    mount(&["--bind", folder, folder]);
    mount(&["-o", "remount,bind,ro", folder]);
    let metrics = get("/metrics");
    assert_eq!(gauge(&metrics, "magpie_data_disk_writable"), 0.0);
    let shown = status();
    assert_eq!(shown["disk_read_only"], true);
    assert!(
        shown["warnings"]
            .to_string()
            .contains("is on a read-only file system"),
        "{shown}"
    );
    assert!(get("/status").contains(", read-only</td>"));
    let (line, failed) = doctor_line(work, &data, "data folder");
    assert!(failed && line.contains("read-only file system"), "{line}");

    // And back.
    let out = Command::new("umount").arg(&data).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let metrics = get("/metrics");
    assert_eq!(gauge(&metrics, "magpie_data_disk_writable"), 1.0);
    assert_eq!(gauge(&metrics, "magpie_data_disk_full"), 0.0);
    assert!(child.stop().success());
}
