//! Rebuild when anything under `models/` changes: the shipped project is embedded with
//! rust-embed, and a *new* model file is not a dependency cargo knows about otherwise.
fn main() {
    println!("cargo:rerun-if-changed=../../models");
}
