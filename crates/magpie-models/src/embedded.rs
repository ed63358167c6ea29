//! The models shipped with magpie (the repository's `models/` folder), compiled into the
//! binary so `magpie build` works anywhere; a user project folder in config replaces them.

use std::path::PathBuf;

use rust_embed::RustEmbed;

use crate::ModelsError;
use crate::project::{Project, ProjectFile};

#[derive(RustEmbed)]
#[folder = "../../models/"]
#[include = "*.sql"]
#[include = "*.yml"]
#[include = "*.csv"]
struct Shipped;

/// The shipped project.
pub fn project() -> Result<Project, ModelsError> {
    let files = Shipped::iter()
        .filter_map(|path| {
            let file = Shipped::get(&path)?;
            Some(ProjectFile {
                path: PathBuf::from(path.as_ref()),
                text: String::from_utf8_lossy(&file.data).into_owned(),
            })
        })
        .collect();
    Project::from_files(files)
}
