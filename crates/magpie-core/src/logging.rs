//! Logging set-up: human-readable lines on a terminal, JSON lines otherwise, filtered by the
//! configured level (`LOG_LEVEL`), on stderr so that command output on stdout stays clean for
//! pipes; and (by default) the same events as JSON lines in `DATA_DIR/logs/magpie.log`,
//! rotated by size (`log.max_size`, `log.files` kept) by `file-rotate`.
//!
//! Secrets never reach the logs: configuration values that are secret are [`crate::Secret`]s,
//! whose `Debug` is `Secret(***)`, and tokens are never formatted into messages.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use file_rotate::compression::Compression;
use file_rotate::suffix::AppendCount;
use file_rotate::{ContentLimit, FileRotate};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::LogConfig;

/// The log file under a data folder.
pub fn log_path(data_dir: &Path) -> PathBuf {
    data_dir.join("logs").join("magpie.log")
}

/// Install the global subscriber. Calling it twice is harmless (the second call is ignored).
/// A log file that cannot be opened (a read-only folder) leaves logging to stderr only.
pub fn init(config: &LogConfig, data_dir: &Path) {
    let filter = || {
        EnvFilter::try_new(config.level.to_ascii_lowercase())
            .unwrap_or_else(|_| EnvFilter::new("info"))
    };
    let terminal = std::io::stderr().is_terminal();
    let stderr_human = terminal.then(|| {
        tracing_subscriber::fmt::layer()
            .compact()
            .with_writer(std::io::stderr)
            .with_filter(filter())
    });
    let stderr_json = (!terminal).then(|| {
        tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_writer(std::io::stderr)
            .with_filter(filter())
    });
    let file = config
        .file
        .then(|| open_rotating(&log_path(data_dir), config))
        .flatten()
        .map(|writer| {
            tracing_subscriber::fmt::layer()
                .json()
                .flatten_event(true)
                .with_ansi(false)
                .with_writer(Mutex::new(writer))
                .with_filter(filter())
        });
    let _ = tracing_subscriber::registry()
        .with(stderr_human)
        .with(stderr_json)
        .with(file)
        .try_init();
}

use tracing_subscriber::Layer as _;

fn open_rotating(path: &Path, config: &LogConfig) -> Option<FileRotate<AppendCount>> {
    let dir = path.parent()?;
    std::fs::create_dir_all(dir).ok()?;
    // FileRotate panics on an unwritable file; check first.
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .ok()?;
    Some(FileRotate::new(
        path,
        AppendCount::new(config.files.max(1)),
        ContentLimit::BytesSurpassed(config.max_size.as_u64() as usize),
        Compression::None,
        #[cfg(unix)]
        None,
    ))
}
