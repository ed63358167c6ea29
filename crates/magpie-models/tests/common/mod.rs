//! What the shipped-models tests share: building the embedded project on a warehouse, with
//! every model and data test required to succeed.

#![allow(dead_code)] // not every test binary uses every helper

use std::path::Path;

use magpie_core::Warehouse;
use magpie_models::runner::{BuildOptions, BuildReport, Runner, Status};

/// Build the embedded models (their offsets for `tz` written first) with `options` (data tests,
/// two threads and `tmp` for spills unless the caller says otherwise), asserting every node
/// succeeded.
pub fn build_with(
    wh: &Warehouse,
    tz: chrono_tz::Tz,
    tmp: &Path,
    options: BuildOptions,
) -> BuildReport {
    magpie_models::timezone::write_offsets(wh.conn(), tz).unwrap();
    let project = magpie_models::embedded::project().unwrap();
    let report = Runner::new(wh.conn(), &project)
        .build(
            &BuildOptions {
                run_tests: true,
                temp_dir: tmp.to_path_buf(),
                threads: 2,
                ..options
            },
            &mut |_| {},
        )
        .unwrap();
    let bad: Vec<_> = report
        .nodes
        .iter()
        .filter(|n| n.status != Status::Success)
        .collect();
    assert!(bad.is_empty(), "{bad:#?}");
    report
}
