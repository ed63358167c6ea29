//! The dbt project loader: `dbt_project.yml`, a properties file and a model (YAML and Jinja
//! `config`) from arbitrary text either load or give an error naming the file; no panic.
#![no_main]

use std::path::PathBuf;

use libfuzzer_sys::fuzz_target;
use magpie_models::project::{Project, ProjectFile};

const PROJECT: &str =
    "name: fuzz\nversion: '1.0'\nconfig-version: 2\nprofile: fuzz\nmodel-paths: [models]\n";

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // Up to three parts split by NUL: the model's SQL, its properties YAML, the project file.
    let mut parts = text.split('\0');
    let sql = parts.next().unwrap_or_default();
    let properties = parts.next();
    let project = parts.next().unwrap_or(PROJECT);
    let mut files = vec![
        ProjectFile {
            path: PathBuf::from("dbt_project.yml"),
            text: project.to_string(),
        },
        ProjectFile {
            path: PathBuf::from("models/fuzzed.sql"),
            text: sql.to_string(),
        },
    ];
    if let Some(yaml) = properties {
        files.push(ProjectFile {
            path: PathBuf::from("models/schema.yml"),
            text: yaml.to_string(),
        });
    }
    if let Err(error) = Project::from_files(files) {
        let message = error.to_string();
        assert!(
            ["dbt_project.yml", "fuzzed.sql", "schema.yml", "models"]
                .iter()
                .any(|f| message.contains(f)),
            "the error names the file: {message}"
        );
    }
});
