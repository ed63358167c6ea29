//! Logging set-up: human-readable lines on a terminal, JSON lines otherwise, filtered by the
//! configured level (`LOG_LEVEL`). Logs go to stderr so that command output on stdout stays
//! clean for pipes.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Install the global subscriber. Calling it twice is harmless (the second call is ignored).
pub fn init(level: &str) {
    let filter =
        EnvFilter::try_new(level.to_ascii_lowercase()).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if std::io::stderr().is_terminal() {
        builder.compact().try_init()
    } else {
        builder.json().flatten_event(true).try_init()
    };
}
