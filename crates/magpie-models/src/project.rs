//! A dbt-style project: `dbt_project.yml` (name, vars, model/seed/test/macro paths),
//! `*.sql` models, `schema.yml` files (model columns and their tests, sources, seed column
//! types), `seeds/*.csv`, singular tests and macros. Read from a folder or from the copy
//! embedded in the binary.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::ModelsError;

/// One file of the project: its path relative to the project root and its text.
#[derive(Debug, Clone)]
pub struct ProjectFile {
    pub path: PathBuf,
    pub text: String,
}

/// A parsed project.
#[derive(Debug, Clone, Default)]
pub struct Project {
    pub name: String,
    pub vars: BTreeMap<String, serde_json::Value>,
    pub models: Vec<ModelFile>,
    pub seeds: Vec<SeedFile>,
    pub singular_tests: Vec<ProjectFile>,
    /// All macro files, concatenated: prepended to every template so models can call them.
    pub macros: String,
    pub sources: Vec<SourceDef>,
    pub model_docs: BTreeMap<String, ModelDoc>,
    /// What schema.yml says about each seed (its description and columns').
    pub seed_docs: BTreeMap<String, ModelDoc>,
}

/// A model: its name (the file stem, unique in the project) and SQL template.
#[derive(Debug, Clone)]
pub struct ModelFile {
    pub name: String,
    pub path: PathBuf,
    pub sql: String,
}

/// A seed CSV with optional declared column types.
#[derive(Debug, Clone)]
pub struct SeedFile {
    pub name: String,
    pub path: PathBuf,
    pub csv: String,
    pub column_types: BTreeMap<String, String>,
    pub schema: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SourceDef {
    pub name: String,
    #[serde(default)]
    pub schema: Option<String>,
    #[serde(default)]
    pub tables: Vec<SourceTable>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SourceTable {
    pub name: String,
    /// dbt's free-form `meta`; magpie reads `append_only: true` (rows are only ever added,
    /// never changed or removed), which lets incremental models read the table's new rows
    /// instead of rebuilding whenever it changes (see [`crate::state`]).
    #[serde(default)]
    pub meta: BTreeMap<String, serde_yaml_ng::Value>,
}

impl SourceTable {
    /// Whether `meta: {append_only: true}` is set.
    pub fn append_only(&self) -> bool {
        self.meta
            .get("append_only")
            .and_then(serde_yaml_ng::Value::as_bool)
            == Some(true)
    }
}

/// What schema.yml says about a model.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ModelDoc {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub columns: Vec<ColumnDoc>,
    /// Model-level tests in dbt's syntax: read so that a project using them is refused with
    /// a clear message (magpie runs column tests and singular tests).
    #[serde(default, alias = "data_tests")]
    pub tests: Vec<serde_yaml_ng::Value>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ColumnDoc {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default, alias = "data_tests")]
    pub tests: Vec<serde_yaml_ng::Value>,
}

#[derive(Debug, Default, Deserialize)]
struct DbtProjectYml {
    #[serde(default)]
    name: String,
    #[serde(default, rename = "model-paths")]
    model_paths: Option<Vec<String>>,
    #[serde(default, rename = "seed-paths")]
    seed_paths: Option<Vec<String>>,
    #[serde(default, rename = "test-paths")]
    test_paths: Option<Vec<String>>,
    #[serde(default, rename = "macro-paths")]
    macro_paths: Option<Vec<String>>,
    #[serde(default)]
    vars: BTreeMap<String, serde_yaml_ng::Value>,
}

#[derive(Debug, Default, Deserialize)]
struct SchemaYml {
    #[serde(default)]
    models: Vec<ModelDoc>,
    #[serde(default)]
    sources: Vec<SourceDef>,
    #[serde(default)]
    seeds: Vec<SeedDoc>,
}

#[derive(Debug, Default, Deserialize)]
struct SeedDoc {
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    columns: Vec<ColumnDoc>,
    #[serde(default)]
    config: SeedConfig,
}

#[derive(Debug, Default, Deserialize)]
struct SeedConfig {
    #[serde(default)]
    column_types: BTreeMap<String, String>,
    #[serde(default)]
    schema: Option<String>,
}

/// A YAML file's error, naming the file and the line the YAML library gives (its message
/// leaves out a location at the very start of the file: line 1, column 1).
fn yaml_error(path: &Path, e: &serde_yaml_ng::Error) -> ModelsError {
    let path = path.display();
    ModelsError::Project(match e.location() {
        Some(at) => format!("{path}: line {}: {e}", at.line()),
        None => format!("{path}: {e}"),
    })
}

fn under(path: &Path, roots: &[String]) -> bool {
    roots.iter().any(|r| path.starts_with(r))
}

impl Project {
    /// Read a project from a folder on disk.
    pub fn from_dir(root: &Path) -> Result<Self, ModelsError> {
        let mut files = Vec::new();
        collect(root, root, &mut files)?;
        Self::from_files(files)
    }

    /// Build a project from its files (paths relative to the project root).
    pub fn from_files(mut files: Vec<ProjectFile>) -> Result<Self, ModelsError> {
        files.sort_by(|a, b| a.path.cmp(&b.path));
        let project_yml = files
            .iter()
            .find(|f| f.path == Path::new("dbt_project.yml"))
            .ok_or_else(|| ModelsError::Project("no dbt_project.yml at the project root".into()))?;
        let config: DbtProjectYml = serde_yaml_ng::from_str(&project_yml.text)
            .map_err(|e| yaml_error(&project_yml.path, &e))?;
        let model_paths = config.model_paths.unwrap_or_else(|| vec!["models".into()]);
        let seed_paths = config.seed_paths.unwrap_or_else(|| vec!["seeds".into()]);
        let test_paths = config.test_paths.unwrap_or_else(|| vec!["tests".into()]);
        let macro_paths = config.macro_paths.unwrap_or_else(|| vec!["macros".into()]);

        let mut project = Project {
            name: config.name,
            vars: config
                .vars
                .into_iter()
                .map(|(k, v)| (k, serde_json::to_value(v).unwrap_or_default()))
                .collect(),
            ..Default::default()
        };
        let mut seed_docs: BTreeMap<String, SeedConfig> = BTreeMap::new();
        for file in &files {
            let ext = file.path.extension().and_then(|e| e.to_str()).unwrap_or("");
            let stem = file
                .path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("")
                .to_string();
            if ext == "yml" || ext == "yaml" {
                if file.path == Path::new("dbt_project.yml")
                    || file.path.starts_with("profiles")
                    || stem == "profiles"
                {
                    continue;
                }
                let doc: SchemaYml =
                    serde_yaml_ng::from_str(&file.text).map_err(|e| yaml_error(&file.path, &e))?;
                for m in doc.models {
                    if !m.tests.is_empty() {
                        return Err(ModelsError::Project(format!(
                            "{}: `{}` has model-level tests, which magpie does not run yet; attach \
                             unique / not_null / accepted_values / relationships to columns, or write \
                             the check as a singular test in tests/",
                            file.path.display(),
                            m.name
                        )));
                    }
                    project.model_docs.insert(m.name.clone(), m);
                }
                project.sources.extend(doc.sources);
                for s in doc.seeds {
                    project.seed_docs.insert(
                        s.name.clone(),
                        ModelDoc {
                            name: s.name.clone(),
                            description: s.description,
                            columns: s.columns,
                            tests: Vec::new(),
                        },
                    );
                    seed_docs.insert(s.name, s.config);
                }
            } else if ext == "sql" && under(&file.path, &macro_paths) {
                project.macros.push_str(&file.text);
                project.macros.push('\n');
            } else if ext == "sql" && under(&file.path, &test_paths) {
                project.singular_tests.push(file.clone());
            } else if ext == "sql" && under(&file.path, &model_paths) {
                if let Some(other) = project.models.iter().find(|m| m.name == stem) {
                    return Err(ModelsError::Project(format!(
                        "two models are named `{stem}`: {} and {}",
                        other.path.display(),
                        file.path.display()
                    )));
                }
                project.models.push(ModelFile {
                    name: stem,
                    path: file.path.clone(),
                    sql: file.text.clone(),
                });
            } else if ext == "csv" && under(&file.path, &seed_paths) {
                project.seeds.push(SeedFile {
                    name: stem,
                    path: file.path.clone(),
                    csv: file.text.clone(),
                    column_types: BTreeMap::new(),
                    schema: None,
                });
            }
        }
        for seed in &mut project.seeds {
            if let Some(cfg) = seed_docs.remove(&seed.name) {
                seed.column_types = cfg.column_types;
                seed.schema = cfg.schema;
            }
        }
        Ok(project)
    }

    pub fn model(&self, name: &str) -> Option<&ModelFile> {
        self.models.iter().find(|m| m.name == name)
    }

    /// The schema a source lives in.
    pub fn source_schema(&self, source: &str) -> Option<String> {
        self.sources
            .iter()
            .find(|s| s.name == source)
            .map(|s| s.schema.clone().unwrap_or_else(|| s.name.clone()))
    }
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<ProjectFile>) -> Result<(), ModelsError> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| ModelsError::Project(format!("{}: {e}", dir.display())))?;
    for entry in entries {
        let path = entry
            .map_err(|e| ModelsError::Project(e.to_string()))?
            .path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with('.') || name == "target" || name == "dbt_packages" || name == "logs" {
            continue;
        }
        if path.is_dir() {
            collect(root, &path, out)?;
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("sql" | "yml" | "yaml" | "csv")
        ) {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| ModelsError::Project(format!("{}: {e}", path.display())))?;
            out.push(ProjectFile {
                path: path.strip_prefix(root).unwrap_or(&path).to_path_buf(),
                text,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(project_yml: &str, schema_yml: &str) -> Vec<ProjectFile> {
        vec![
            ProjectFile {
                path: "dbt_project.yml".into(),
                text: project_yml.into(),
            },
            ProjectFile {
                path: "models/schema.yml".into(),
                text: schema_yml.into(),
            },
        ]
    }

    /// Found by tests/fuzz_models.rs: serde_yaml_ng leaves "at line 1 column 1" out of its
    /// message, so an error at the file's start named no line.
    #[test]
    fn regression_a_yaml_error_names_the_file_and_line_even_at_the_start() {
        let e = Project::from_files(files("}name: x\n", "")).unwrap_err();
        assert!(e.to_string().contains("dbt_project.yml: line 1: "), "{e}");
        let e = Project::from_files(files("name: x\n", "models:\n  - name: [\n")).unwrap_err();
        assert!(e.to_string().contains("models/schema.yml: line "), "{e}");
    }
}
