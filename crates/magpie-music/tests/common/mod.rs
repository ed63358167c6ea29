//! Shared helpers for the music crate's integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use magpie_core::{OpenOptions, Warehouse};
use magpie_music::import::{ImportOptions, ImportSummary, Importer};

/// `../shared/realdata` beside the repository (or `REALDATA_DIR`); `None`, with a printed
/// notice, when it is absent so the test can skip. When `REQUIRE_REALDATA` is set (CI sets it)
/// a missing path fails the test instead, so the tests that need the data cannot pass unseen.
pub fn realdata(sub: &str) -> Option<PathBuf> {
    let base = std::env::var_os("REALDATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/realdata"));
    let path = base.join(sub);
    if path.exists() {
        return Some(path);
    }
    assert!(
        std::env::var_os("REQUIRE_REALDATA").is_none(),
        "REQUIRE_REALDATA is set but the real sample data is missing: no {} \
         (../shared/realdata beside the clone, or REALDATA_DIR)",
        path.display()
    );
    eprintln!(
        "SKIPPED: real sample data not found at {} (../shared is absent)",
        path.display()
    );
    None
}

pub fn warehouse(dir: &Path) -> Warehouse {
    Warehouse::open(dir.join("test.duckdb"), &OpenOptions::default()).expect("open warehouse")
}

pub fn import(wh: &Warehouse, paths: &[PathBuf]) -> ImportSummary {
    Importer::new(wh, ImportOptions::default())
        .expect("importer")
        .import_paths(paths, &mut |_| {})
}

pub fn count(wh: &Warehouse, sql: &str) -> i64 {
    wh.conn()
        .query_row(sql, [], |r| r.get(0))
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Events currently in raw, and listens (events that are not another's duplicate).
pub fn totals(wh: &Warehouse) -> (i64, i64) {
    (
        count(wh, "SELECT count(*) FROM raw.listen_events"),
        count(
            wh,
            "SELECT count(*) FROM raw.listen_events WHERE duplicate_of IS NULL",
        ),
    )
}

/// Every value of every raw row as text, to look for things that must never be stored.
pub fn all_raw_text(wh: &Warehouse) -> String {
    let (rs, _) =
        magpie_core::values::query(wh.conn(), "SELECT * FROM raw.listen_events", usize::MAX)
            .unwrap();
    let mut out = String::new();
    for row in rs.rows {
        for v in row {
            out.push_str(&magpie_core::values::to_text(&v));
            out.push('\u{1}');
        }
    }
    out
}

/// The property tests' settings: `default_cases` cases per property, unless `PROPTEST_CASES`
/// says how many (a long fuzzing run).
pub fn proptest_config(default_cases: u32) -> proptest::test_runner::Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default_cases);
    proptest::test_runner::Config {
        cases,
        ..Default::default()
    }
}
