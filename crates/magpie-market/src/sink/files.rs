//! Walking the market folder: the files under it with a given extension (`parquet` for the
//! finished ones, `tmp` for those a writer had open).

use std::path::{Path, PathBuf};

/// Every file under `root` (recursively) whose extension is `extension`; a missing folder has
/// none.
pub fn under(root: &Path, extension: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == extension) {
                found.push(path);
            }
        }
    }
    found
}
