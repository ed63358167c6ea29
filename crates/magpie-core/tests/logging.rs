//! The log file rotates at its size limit and keeps the configured number of old files.

use bytesize::ByteSize;
use magpie_core::config::LogConfig;

#[test]
fn the_log_file_rotates_at_the_size_limit() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        level: "info".into(),
        file: true,
        max_size: ByteSize::kb(64),
        files: 2,
    };
    magpie_core::logging::init(&config, dir.path());
    let line = "x".repeat(100);
    for i in 0..3000 {
        tracing::info!(i, "{line}");
    }
    let logs = dir.path().join("logs");
    let size = |name: &str| std::fs::metadata(logs.join(name)).map(|m| m.len()).ok();
    let current = size("magpie.log").expect("the current file");
    let first = size("magpie.log.1").expect("a rotated file");
    assert!(size("magpie.log.2").is_some(), "two rotated files are kept");
    assert!(size("magpie.log.3").is_none(), "and no more");
    // Each file stops just past the limit (one line over at most).
    for s in [current, first] {
        assert!(s <= 64_000 + 400, "{s} bytes");
    }
    assert!(
        first >= 64_000,
        "a file rotates once it passes the limit: {first}"
    );
    let text = std::fs::read_to_string(logs.join("magpie.log")).unwrap();
    let last: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(last["i"], 2999, "the newest line is in the current file");
}
