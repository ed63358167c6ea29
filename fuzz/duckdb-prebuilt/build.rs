//! Build script of the fuzz build's stand-in for `libduckdb-sys`: instead of compiling
//! DuckDB's C++ again (45 minutes), link the static library and bindings the release build
//! left in `DUCKDB_PREBUILT_DIR` (its `libduckdb-sys-*/out` folder, found by scripts/fuzz.sh).

use std::path::PathBuf;
use std::{env, fs};

fn main() {
    println!("cargo:rerun-if-env-changed=DUCKDB_PREBUILT_DIR");
    let dir = PathBuf::from(
        env::var("DUCKDB_PREBUILT_DIR")
            .expect("DUCKDB_PREBUILT_DIR: the release build's libduckdb-sys out folder"),
    );
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    fs::copy(dir.join("bindgen.rs"), out.join("bindgen.rs"))
        .expect("bindgen.rs in DUCKDB_PREBUILT_DIR");
    let dir = dir.display();
    println!("cargo:rustc-link-search=native={dir}");
    println!("cargo:rustc-link-lib=static:+whole-archive=duckdb_static_extension_autoregister");
    println!("cargo:rustc-link-lib=static=duckdb");
    println!("cargo:rustc-link-lib=stdc++");
    println!("cargo:lib_dir={dir}");
}
